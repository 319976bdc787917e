#!/usr/bin/env python3
"""A small webhook receiver for dagctl's notifications: what a team's own endpoint would do.

It accepts POSTs on 127.0.0.1, checks the X-Dagctl-Signature HMAC when given --secret, drops
duplicates by X-Dagctl-Event-Id (dagctl delivers at least once), prints one line per event, and
appends each request to --log as a JSON line. The examples' walkthrough and dagctl's tests use it.

  webhook-receiver.py [--port N] [--port-file F] [--log F] [--secret S] [--answer-file F]

--answer-file: when the file exists, its first line says how to answer instead of 200:
"500", "404 no such hook", or "delay 15" (answer 200 after 15 seconds).
"""
import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--port-file")
parser.add_argument("--log")
parser.add_argument("--secret")
parser.add_argument("--answer-file")
args = parser.parse_args()

seen = set()
lock = threading.Lock()


def answer():
    try:
        with open(args.answer_file) as f:
            words = f.readline().split(None, 1)
    except (TypeError, OSError):
        return 200, "", 0
    if not words:
        return 200, "", 0
    if words[0] == "delay":
        return 200, "", float(words[1])
    return int(words[0]), (words[1].strip() if len(words) > 1 else ""), 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event_id = self.headers.get("X-Dagctl-Event-Id", "")
        signature = self.headers.get("X-Dagctl-Signature")
        signature_ok = None
        if args.secret is not None:
            expected = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
            signature_ok = signature is not None and hmac.compare_digest(signature, expected)
        status, text, delay = answer()
        if delay:
            time.sleep(delay)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with lock:
            key = (self.path, event_id)  # one event goes to every webhook that wants it
            duplicate = status < 300 and key in seen
            if status < 300:
                seen.add(key)
            record = {"id": event_id, "path": self.path, "event": self.headers.get("X-Dagctl-Event"), "signature": signature,
                      "signature_ok": signature_ok, "content_type": self.headers.get("Content-Type"),
                      "answered": status, "duplicate": duplicate, "body": parsed}
            if args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps(record, sort_keys=True) + "\n")
            if status < 300 and not duplicate:
                if isinstance(parsed, dict) and "text" in parsed:
                    shown = parsed["text"]
                elif isinstance(parsed, dict):
                    shown = f"{parsed.get('event')} {parsed.get('plan')}" + (f": {parsed['reason']}" if parsed.get("reason") else "")
                else:
                    shown = body[:80].decode(errors="replace")
                mark = "" if signature_ok is None else "  [signature ok]" if signature_ok else "  [BAD SIGNATURE]"
                print(f"{self.path}  {shown}{mark}", flush=True)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # dagctl gave up waiting (its 10 s timeout)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
if args.port_file:
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
print(f"receiver: listening on http://127.0.0.1:{server.server_address[1]}/", file=sys.stderr, flush=True)
server.serve_forever()
