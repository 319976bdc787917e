#!/usr/bin/env python3
"""A tiny in-memory Kubernetes API server that real kubectl can talk to.

It serves just enough of core/v1 (pods, pod logs) and batch/v1 (jobs) for dagctl's
Kubernetes backend, and plays the Job controller + kubelet: each created Job gets one
Pod at a time, which "runs" as decided by a JSON script file. See README.md.
"""
import argparse, copy, json, os, random, re, signal, subprocess, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

LOCK = threading.RLock()
LOG_CHANGED = threading.Condition(LOCK)   # notified whenever a pod log grows or ends
JOBS, PODS = {}, {}                        # (namespace, name) -> object
RUNTIME = {}                               # (namespace, pod name) -> PodRuntime
STATE = {"rv": 1000}
ARGS = None
TOKENS = {"fake-token": "fake", "other-token": "other"}

def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

def next_rv():
    STATE["rv"] += 1
    return str(STATE["rv"])

def random_suffix():
    # Same alphabet as apimachinery's utilrand.String (no vowels, no confusable digits).
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))

# ---------------------------------------------------------------- Status objects

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}
        if details is not None:
            self.status["details"] = details

def not_found(resource, group, name):
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource, **({"group": group} if group else {})}
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', details)

def invalid(name, causes):
    # causes: [(field, message)]; the message format mirrors apimachinery's NewInvalid.
    texts = [f"{field}: {msg}" for field, msg in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(422, "Invalid", f'Job.batch "{name}" is invalid: {joined}',
                    {"name": name, "group": "batch", "kind": "Job",
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})

# ---------------------------------------------------------------- discovery

def resource(name, kind, verbs, namespaced=True, short=None):
    r = {"name": name, "singularName": kind.lower() if "/" not in name else "", "namespaced": namespaced,
         "kind": kind, "verbs": verbs}
    if short:
        r["shortNames"] = short
    return r

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        resource("pods", "Pod", ALL_VERBS, short=["po"]),
        resource("pods/log", "Pod", ["get"]),
        resource("namespaces", "Namespace", ["get", "list"], namespaced=False, short=["ns"])]},
    "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": [
        {**resource("jobs", "Job", ALL_VERBS), "categories": ["all"]},
        resource("jobs/status", "Job", ["get", "patch", "update"])]},
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "0" * 40,
                 "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4",
                 "compiler": "gc", "platform": "linux/amd64"},
}

# ---------------------------------------------------------------- selectors

SELECTOR_TERM = re.compile(r"\s*(?:(!)\s*([\w./-]+)|([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)"
                           r"|\s+(in|notin)\s*\(([^)]*)\))?)\s*(?:,|$)")

def label_matcher(selector):
    """Parses a label selector (equality and set-based) into a predicate on a labels dict."""
    tests, pos, selector = [], 0, (selector or "").strip()
    while pos < len(selector):
        m = SELECTOR_TERM.match(selector, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {selector!r}")
        pos = m.end()
        neg_key, key, op, value, set_op, values = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6), m.group(7)
        if neg_key:
            tests.append(lambda l, k=neg_key: k not in l)
        elif op in ("=", "=="):
            tests.append(lambda l, k=key, v=value: l.get(k) == v)
        elif op == "!=":
            tests.append(lambda l, k=key, v=value: l.get(k) != v)
        elif set_op:
            vs = {v.strip() for v in values.split(",")}
            tests.append(lambda l, k=key, vs=vs, neg=set_op == "notin": (l.get(k) in vs) != neg)
        else:
            tests.append(lambda l, k=key: k in l)
    return lambda labels: all(t(labels or {}) for t in tests)

def field_matcher(selector):
    # kubectl delete --wait lists with fieldSelector=metadata.name=NAME to see the object is gone.
    tests = []
    for term in filter(None, (selector or "").split(",")):
        path, op, value = re.match(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term).groups()
        def get(obj, parts=path.split(".")):
            for p in parts:
                obj = obj.get(p, {}) if isinstance(obj, dict) else {}
            return obj if isinstance(obj, str) else ""
        tests.append(lambda o, get=get, v=value, neg=op == "!=": (get(o) == v) != neg)
    return lambda obj: all(t(obj) for t in tests)

# ---------------------------------------------------------------- the script

def load_rule(job):
    """First rule whose match fits the Job; re-read each time so tests can swap it between runs."""
    try:
        with open(ARGS.script) as f:
            rules = json.load(f).get("rules", [])
    except FileNotFoundError:
        rules = []
    labels = job["metadata"].get("labels") or {}
    for rule in rules:
        match = rule.get("match", {})
        if all(labels.get(k) == v for k, v in match.get("label", {}).items()) \
                and re.search(match.get("name_regex", ""), job["metadata"]["name"]) \
                and match.get("namespace", job["metadata"]["namespace"]) == job["metadata"]["namespace"]:
            return rule
    return {"action": "succeed"}

# ---------------------------------------------------------------- Job controller + kubelet

class PodRuntime:
    """What the kubelet knows about a pod: its log, whether it ended, and how to stop it."""
    def __init__(self):
        self.log, self.done, self.proc, self.started = bytearray(), False, None, False
        self.stop = threading.Event()

    def append(self, data):
        with LOCK:
            self.log += data
            LOG_CHANGED.notify_all()

def create_job(namespace, body, dry_run):
    meta = body.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + random_suffix()
    name = meta.get("name", "")
    if body.get("apiVersion") != "batch/v1" or body.get("kind") != "Job":
        raise ApiError(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                       f"match the expected API version (batch/v1)")
    if meta.get("namespace", namespace) != namespace:
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                       "sent on the request")
    spec = body.setdefault("spec", {})
    template = spec.setdefault("template", {})
    pod_spec = template.setdefault("spec", {})
    causes = []
    # A Job name becomes the job-name label value, hence the 63-character limit.
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 63:
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 label must be no more '
                       "than 63 characters and consist of lower case alphanumeric characters or '-'"))
    pod_spec.setdefault("restartPolicy", "Always")
    if pod_spec["restartPolicy"] not in ("Never", "OnFailure"):
        causes.append(("spec.template.spec.restartPolicy",
                       f'Unsupported value: "{pod_spec["restartPolicy"]}": supported values: "OnFailure", "Never"'))
    if not pod_spec.get("containers"):
        causes.append(("spec.template.spec.containers", "Required value"))
    for i, c in enumerate(pod_spec.get("containers") or []):
        for field in ("name", "image"):
            if not c.get(field):
                causes.append((f"spec.template.spec.containers[{i}].{field}", "Required value"))
    if causes:
        raise invalid(name, causes)
    with LOCK:
        if (namespace, name) in JOBS:
            raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists',
                           {"name": name, "group": "batch", "kind": "jobs"})
        # Fields the real API server defaults, so `get -o json` looks like a real cluster's.
        uid = str(uuid.uuid4())
        meta.update(namespace=namespace, uid=uid, resourceVersion=next_rv(), generation=1, creationTimestamp=now())
        tmeta = template.setdefault("metadata", {})
        tlabels = tmeta.setdefault("labels", {})
        tlabels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid, "job-name": name})
        if not meta.get("labels"):
            meta["labels"] = dict(tlabels)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        for key, value in {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                           "suspend": False, "podReplacementPolicy": "TerminatingOrFailed"}.items():
            spec.setdefault(key, value)
        body["status"] = {}
        if dry_run:
            return copy.deepcopy(body)
        JOBS[(namespace, name)] = body
        rule = load_rule(body)
        job_status(body, startTime=now(), active=1, ready=0, terminating=0, uncountedTerminatedPods={})
        start_pod(body, rule)
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            timer = threading.Timer(float(deadline), deadline_exceeded, (namespace, name, uid))
            timer.daemon = True
            timer.start()
        return copy.deepcopy(body)

def job_status(job, **fields):
    job["status"].update(fields)
    job["metadata"]["resourceVersion"] = next_rv()

def job_finished(job):
    return any(c["type"] in ("Complete", "Failed") for c in job["status"].get("conditions", []))

def condition(type_, reason, message):
    t = now()
    return {"type": type_, "status": "True", "lastProbeTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}

def start_pod(job, rule):
    ns, tmpl = job["metadata"]["namespace"], job["spec"]["template"]
    name = f'{job["metadata"]["name"]}-{random_suffix()}'
    containers = tmpl["spec"]["containers"]
    PODS[(ns, name)] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "generateName": job["metadata"]["name"] + "-", "namespace": ns,
                     "uid": str(uuid.uuid4()), "resourceVersion": next_rv(), "creationTimestamp": now(),
                     "labels": dict(tmpl["metadata"]["labels"]),
                     **({"annotations": tmpl["metadata"]["annotations"]} if tmpl["metadata"].get("annotations") else {}),
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                          "uid": job["metadata"]["uid"], "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {**copy.deepcopy(tmpl["spec"]), "nodeName": "fake-node"},
        "status": {"phase": "Pending", "qosClass": "BestEffort", "hostIP": "10.0.0.1",
                   "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                                          "restartCount": 0, "started": False, "lastState": {},
                                          "state": {"waiting": {"reason": "ContainerCreating"}}}
                                         for c in containers]}}
    RUNTIME[(ns, name)] = rt = PodRuntime()
    threading.Thread(target=run_pod, args=(job, ns, name, rt, rule), daemon=True).start()

def set_pod(ns, name, phase, state, ready):
    pod = PODS.get((ns, name))
    if pod is None:   # deleted meanwhile
        return
    pod["status"]["phase"] = phase
    pod["status"].setdefault("startTime", now())
    pod["status"]["podIP"] = "10.244.0.7"
    pod["status"]["conditions"] = [{"type": t, "status": "True" if ok else "False", "lastTransitionTime": now()}
                                   for t, ok in (("PodScheduled", True), ("Initialized", True),
                                                 ("ContainersReady", ready), ("Ready", ready))]
    for cs in pod["status"]["containerStatuses"]:
        cs.update(state=copy.deepcopy(state), ready=ready, started=phase == "Running",
                  containerID="containerd://" + uuid.uuid4().hex)
    pod["metadata"]["resourceVersion"] = next_rv()

def run_pod(job, ns, name, rt, rule):
    rt.stop.wait(float(rule.get("pending_seconds", 0)))
    started = now()
    with LOCK:
        if rt.stop.is_set():
            exit_code = 137
        else:
            set_pod(ns, name, "Running", {"running": {"startedAt": started}}, True)
            job_status(job, ready=1)
            rt.started = True
    if rt.started:
        exit_code = run_exec(job, PODS[(ns, name)], rt, rule) if rule.get("action") == "exec" else run_canned(rt, rule)
    with LOCK:
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                      "startedAt": started, "finishedAt": now()}
        set_pod(ns, name, "Succeeded" if exit_code == 0 else "Failed", {"terminated": terminated}, False)
        rt.done = True
        LOG_CHANGED.notify_all()
        if rt.stop.is_set():
            # Stopped by the deadline or by deletion: like the kubelet, the pod is then removed. A
            # DeadlineExceeded job only turns Failed once its pod has actually terminated (as in 1.32).
            PODS.pop((ns, name), None)
            conds = job["status"].get("conditions", [])
            if JOBS.get((ns, job["metadata"]["name"])) is job and conds and not job_finished(job):
                job["status"].pop("active", None)
                job_status(job, ready=0, failed=job["status"].get("failed", 0) + 1,
                           conditions=conds + [condition("Failed", conds[-1]["reason"], conds[-1]["message"])])
            return
        if JOBS.get((ns, job["metadata"]["name"])) is not job:
            return
        st = job["status"]
        st.pop("active", None)
        if exit_code == 0:
            msg = ("CompletionsReached", "Reached expected number of succeeded pods")
            job_status(job, ready=0, succeeded=1, completionTime=now(),
                       conditions=[condition("SuccessCriteriaMet", *msg), condition("Complete", *msg)])
        elif st.get("failed", 0) + 1 <= job["spec"]["backoffLimit"]:
            # Like the real controller, a failed pod is replaced until backoffLimit is used up.
            job_status(job, ready=0, failed=st.get("failed", 0) + 1, active=1)
            start_pod(job, rule)
        else:
            reason = rule.get("reason", "BackoffLimitExceeded")
            msg = (reason, "Job has reached the specified backoff limit" if reason == "BackoffLimitExceeded"
                   else f"Job failed: {reason}")
            job_status(job, ready=0, failed=st.get("failed", 0) + 1,
                       conditions=[condition("FailureTarget", *msg), condition("Failed", *msg)])

def run_canned(rt, rule):
    for line in rule.get("logs", []):
        if rt.stop.wait(float(rule.get("delay_seconds", 0))):
            return 143
        rt.append(line.encode() + b"\n")
    return 0 if rule.get("action") != "fail" else int(rule.get("exit_code", 1))

def run_exec(job, pod, rt, rule):
    spec = rule.get("exec", {})
    mapping = sorted(spec.get("map_paths", {}).items(), key=lambda kv: -len(kv[0]))
    def mapped(value):
        # Rewrites container paths to host paths, also in `--flag=/path` arguments.
        for prefix, real in mapping:
            value = re.sub(rf"(^|=){re.escape(prefix)}(?=/|$)", lambda m: m.group(1) + real, value)
        return value
    container = pod["spec"]["containers"][0]
    argv = list(spec.get("command_prefix", [])) + [mapped(a) for a in container.get("command", []) + container.get("args", [])]
    env = dict(os.environ, HOSTNAME=pod["metadata"]["name"])
    env.update({e["name"]: mapped(str(e.get("value", ""))) for e in container.get("env", []) if "name" in e})
    env.update(spec.get("env", {}))
    cwd = spec.get("cwd") or (mapped(container["workingDir"]) if container.get("workingDir") else None)
    try:
        # Own session so a deadline can kill the whole process tree.
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, IndexError) as e:
        rt.append(f"fake-apiserver: cannot start {argv!r}: {e}\n".encode())
        return 128
    with LOCK:
        rt.proc = proc
        if rt.stop.is_set():
            kill(rt)
    while chunk := proc.stdout.read1(65536):
        rt.append(chunk)
    code = proc.wait()
    return code if code >= 0 else 128 - code

def kill(rt):
    rt.stop.set()
    if rt.proc and rt.proc.poll() is None:
        # SIGTERM first like the kubelet, SIGKILL after a (shortened) grace period.
        os.killpg(rt.proc.pid, signal.SIGTERM)
        timer = threading.Timer(2.0, lambda: rt.proc.poll() is None and os.killpg(rt.proc.pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

def pods_of(job):
    return [key for key, pod in PODS.items() if any(o["uid"] == job["metadata"]["uid"]
                                                    for o in pod["metadata"].get("ownerReferences", []))]

def deadline_exceeded(ns, name, uid):
    with LOCK:
        job = JOBS.get((ns, name))
        if not job or job["metadata"]["uid"] != uid or job_finished(job):
            return
        job_status(job, conditions=job["status"].get("conditions", []) + [
            condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")])
        for key in pods_of(job):
            if not RUNTIME[key].done:
                kill(RUNTIME[key])

def delete_job(ns, name):
    with LOCK:
        job = JOBS.pop((ns, name), None)
        if job is None:
            raise not_found("jobs", "batch", name)
        # Background propagation: the garbage collector removes (and so stops) the pods right after.
        for key in pods_of(job):
            kill(RUNTIME[key])
            PODS.pop(key, None)
        job["metadata"]["resourceVersion"] = next_rv()
        return job

def delete_pod(ns, name):
    with LOCK:
        pod = PODS.pop((ns, name), None)
        if pod is None:
            raise not_found("pods", "", name)
        kill(RUNTIME[(ns, name)])
        return pod

# ---------------------------------------------------------------- HTTP

ROUTES = [("pods", "", re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?pods(?:/([^/]+)(?:/(log|status))?)?$")),
          ("jobs", "batch", re.compile(r"^/apis/batch/v1/(?:namespaces/([^/]+)/)?jobs(?:/([^/]+)(?:/(status))?)?$"))]

def list_of(store, kind, ns, query):
    labels = label_matcher(query.get("labelSelector"))
    fields = field_matcher(query.get("fieldSelector"))
    items = [copy.deepcopy(o) for (ons, _), o in sorted(store.items(), key=lambda kv: kv[1]["metadata"]["creationTimestamp"])
             if (ns is None or ons == ns) and labels(o["metadata"].get("labels")) and fields(o)]
    for item in items:   # real list items omit apiVersion/kind
        item.pop("apiVersion"), item.pop("kind")
    return {"apiVersion": "batch/v1" if kind == "Job" else "v1", "kind": kind + "List",
            "metadata": {"resourceVersion": str(STATE["rv"])}, "items": items}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive and chunked streaming, as kubectl expects from a real server

    def log_message(self, *args):
        if ARGS.verbose:
            super().log_message(*args)

    def handle_any(self):
        url = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        record = {"time": time.time(), "method": self.command, "path": url.path, "query": query,
                  "context": TOKENS.get(token), "accept": self.headers.get("Accept"),
                  "user_agent": self.headers.get("User-Agent")}
        if body is not None:
            record["body"] = body
        with LOCK, open(ARGS.record, "a") as f:
            f.write(json.dumps(record) + "\n")
        try:
            if self.command == "GET" and url.path in DISCOVERY:
                return self.send_json(200, DISCOVERY[url.path])
            for plural, group, pattern in ROUTES:
                if m := pattern.match(url.path):
                    return self.resource(plural, group, *m.groups(), query, body)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        except ApiError as e:
            self.send_json(e.status["code"], e.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def resource(self, plural, group, ns, name, sub, query, body):
        store, kind = (JOBS, "Job") if plural == "jobs" else (PODS, "Pod")
        if self.command == "GET" and name is None:
            if query.get("watch") in ("true", "1"):
                raise ApiError(405, "MethodNotAllowed", "watch is not supported by the fake API server")
            with LOCK:
                return self.send_json(200, list_of(store, kind, ns, query))
        if ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if self.command == "POST" and name is None and plural == "jobs":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
            return self.send_json(201, create_job(ns, body, "dryRun" in query))
        if self.command == "GET" and sub == "log":
            return self.stream_log(ns, name, query)
        if self.command == "GET":
            with LOCK:
                obj = store.get((ns, name))
                if obj is None:
                    raise not_found(plural, group, name)
                return self.send_json(200, copy.deepcopy(obj))
        if self.command == "DELETE" and sub is None and name is not None:
            return self.send_json(200, (delete_job if plural == "jobs" else delete_pod)(ns, name))
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource")

    def stream_log(self, ns, name, query):
        with LOCK:
            pod, rt = PODS.get((ns, name)), RUNTIME.get((ns, name))
            if pod is None:
                raise not_found("pods", "", name)
            container = query.get("container") or pod["spec"]["containers"][0]["name"]
            if container not in [c["name"] for c in pod["spec"]["containers"]]:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if not rt.started and not rt.done:
                # What the kubelet answers before the container has started.
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                               "ContainerCreating")
            sent = len(rt.log)
            first = bytes(rt.log)
            if "tailLines" in query:
                lines = first.splitlines(keepends=True)
                first = b"".join(lines[max(0, len(lines) - int(query["tailLines"])):])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        follow = query.get("follow") in ("true", "1")
        try:
            self.chunk(first)
            while follow:
                with LOCK:
                    LOG_CHANGED.wait_for(lambda: len(rt.log) > sent or rt.done, timeout=1.0)
                    data, ended = bytes(rt.log[sent:]), rt.done
                sent += len(data)
                self.chunk(data)
                if ended and sent >= len(rt.log):
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)

def kubeconfig(port):
    # One user per context so the --record file tells which context kubectl used.
    ctx = lambda name, **extra: {"name": name, "context": {"cluster": "fake", "user": name, **extra}}
    return {"apiVersion": "v1", "kind": "Config", "current-context": "other", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": n, "user": {"token": t}} for t, n in TOKENS.items()],
            "contexts": [ctx("fake", namespace=ARGS.namespace), ctx("other")]}

def shutdown(*_):
    with LOCK:
        for rt in RUNTIME.values():
            if rt.proc and rt.proc.poll() is None:
                os.killpg(rt.proc.pid, signal.SIGKILL)
    os._exit(0)

def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--script", required=True, help="JSON rules deciding what each Job does")
    p.add_argument("--record", default=os.devnull, help="JSONL file, one line per request")
    p.add_argument("--kubeconfig", help="where to write a kubeconfig (contexts: fake, other)")
    p.add_argument("--namespace", default="default", help="namespace of the 'fake' context")
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--verbose", action="store_true")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if ARGS.kubeconfig:
        write_atomically(ARGS.kubeconfig, json.dumps(kubeconfig(port), indent=2))
    if ARGS.port_file:   # written last: once it exists, everything is ready
        write_atomically(ARGS.port_file, str(port))
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Timer(ARGS.max_seconds, shutdown).start()
    server.serve_forever()

if __name__ == "__main__":
    main()
