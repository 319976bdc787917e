#!/usr/bin/env bash
# How fast `dagctl serve` answers with 1,000 finished plans in an environment's history, and its
# memory while a log streams (--soak SECONDS, default 0: skip). Prints a markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
soak=0
[ "${1:-}" = "--soak" ] && soak=$2
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
(cd "$root" && swift build -q -c release --static-swift-stdlib --scratch-path .build-release --product dagctl)
bin="$root/.build-release/release/dagctl"
work=$(mktemp -d /tmp/dagctl-bench-web.XXXXXX)
cd "$work"
git init -q -b main repo
printf 'version: 1\n' > repo/version && git -C repo add -A && git -C repo -c user.name=a -c user.email=a@x commit -q -m one
head=$(git -C repo rev-parse HEAD)
mkdir -p desired/environments state/history
printf 'members:\n  - name: alice\n    emails: [a@x]\n' > desired/members.yaml
printf 'ref: main\n' > desired/environments/dev.yaml
python3 - "$head" <<'PY'
import json, sys
head = sys.argv[1]
with open("state/history/dev.jsonl", "w") as f:
    for v in range(1, 1001):
        plan = {"id": f"dev-v{v}-{head[:10]}", "environment": "dev", "version": str(v), "commit": head,
                "changes": [{"path": f"models/m{i}.sql", "change": "modified", "category": "model"} for i in range(5)],
                "scope": "selective", "select": [f"m{i}" for i in range(5)], "warnings": [], "status": "succeeded",
                "status_reason": "approved by alice", "created_at": "2026-11-01T00:00:00Z",
                "attempts": [{"n": 1, "outcome": "succeeded", "phase": "run", "summary": {"models": {"success": 5, "error": 0, "skipped": 0, "warned": 0}}}]}
        f.write(json.dumps(plan) + "\n")
last = f"dev-v1001-{head[:10]}"
state = {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": head,
         "deployed": {"commit": head, "version": "1001", "plan": last},
         "plans": [{"id": last, "environment": "dev", "version": "1001", "commit": head, "changes": [], "scope": "all", "select": [],
                    "warnings": [], "status": "succeeded", "attempts": [{"n": 1, "outcome": "succeeded", "phase": "run", "summary": {}}]}]}}}
json.dump(state, open("state/state.json", "w"))
PY
DAGCTL_REPO=repo DAGCTL_DESIRED=desired DAGCTL_STATE=state/state.json "$bin" serve --listen 127.0.0.1:0 > serve.out 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q listening serve.out && break; sleep 0.2; done
url=$(grep -o "http://[^ ]*" serve.out)
hyperfine -N --runs 30 --warmup 3 --export-markdown table.md \
    -n "GET / (overview)" "curl -s -o /dev/null $url/" \
    -n "GET /plans/<id> (a plan from the 1,000 in history)" "curl -s -o /dev/null $url/plans/dev-v500-${head:0:10}" \
    -n "GET /environments/dev/history (1,000 plans)" "curl -s -o /dev/null $url/environments/dev/history" \
    -n "GET /api/status" "curl -s -o /dev/null $url/api/status" >/dev/null
cat table.md
printf '\nserve RSS after the requests: %s KiB\n' "$(ps -o rss= -p $server)"

[ "$soak" -gt 0 ] || exit 0
# The soak: a running plan whose log grows by a line every 50 ms, followed by one live stream.
kill $server; wait $server 2>/dev/null || true
id="dev-v1002-${head:0:10}"
mkdir -p "state/logs/$id/attempt-1"
: > "state/logs/$id/attempt-1/run.log"
cat > state/state.json <<JSON
{"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "$head", "plans": [{"id": "$id", "environment": "dev", "version": "1002", "commit": "$head", "changes": [], "scope": "all", "select": [], "warnings": [], "status": "running", "attempts": [{"n": 1, "outcome": "running", "phase": "run", "summary": {}}]}]}}}
JSON
: > serve.out
DAGCTL_REPO=repo DAGCTL_DESIRED=desired DAGCTL_STATE=state/state.json "$bin" serve --listen 127.0.0.1:0 > serve.out 2>/dev/null &
server=$!
for _ in $(seq 50); do grep -q listening serve.out && break; sleep 0.2; done
url=$(grep -o "http://[^ ]*" serve.out)
curl -s -N "$url/plans/$id/attempts/1/run/stream" > stream.out &
stream=$!
( end=$((SECONDS + soak)); i=0
  while [ $SECONDS -lt $end ]; do i=$((i + 1)); echo "line $i: some dbt output of a model being built, about eighty bytes" >> "state/logs/$id/attempt-1/run.log"; sleep 0.05; done ) &
writer=$!
step=$(( soak / 10 > 0 ? soak / 10 : 1 ))
printf '\n| seconds | serve RSS (KiB) | lines streamed |\n|---:|---:|---:|\n'
for t in $(seq 0 "$step" "$soak"); do
    printf '| %s | %s | %s |\n' "$t" "$(ps -o rss= -p $server | tr -d ' ')" "$(grep -c '^data:' stream.out || true)"
    [ "$t" -lt "$soak" ] && sleep "$step"
done
wait $writer; kill $stream 2>/dev/null || true
