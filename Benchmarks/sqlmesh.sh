#!/usr/bin/env bash
# What a SQLMesh environment costs dagctl: a reconcile with nothing new (no Python may start), and
# explaining a plan (dagctl plan, which asks SQLMesh through its helper) next to `sqlmesh plan --explain`.
# Usage: Benchmarks/sqlmesh.sh [--runs N]   (prints a markdown table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=10
[ "${1:-}" = "--runs" ] && runs=$2
"$root/.ci/setup"
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
export PATH="$root/.venv/bin:$PATH"
(cd "$root" && swift build -q -c release --static-swift-stdlib --product dagctl)
bin="$root/.build/release/dagctl"

work=$(mktemp -d /tmp/dagctl-bench-sqlmesh.XXXXXX)
cp -R "$root/examples/sqlmesh/project" "$work/repo"
cp -R "$root/examples/sqlmesh/desired" "$work/desired"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=A -c user.email=alice@example.com commit -q -m v1
export DAGCTL_REPO="$work/repo" DAGCTL_DESIRED="$work/desired" DAGCTL_STATE="$work/state/state.json"
export SHOP_SQLMESH_DB="$work/shop.duckdb"
"$bin" reconcile --env dev >/dev/null 2>&1   # first deploy
"$bin" reconcile --env dev >/dev/null 2>&1   # settled

# A change to explain (not applied: plan only previews).
python3 - "$work/repo/models/orders_daily.sql" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(s.replace("SUM(amount_cents) AS amount_cents\n", "SUM(amount_cents) AS amount_cents,\n  MAX(amount_cents) AS largest_cents\n"))
PY
cp "$DAGCTL_STATE" "$work/settled.json"
git -C "$work/repo" -c user.name=A -c user.email=alice@example.com commit -q -am v2

# The settled state is at the old head; a copy whose head is the new commit, in sync, is "nothing new".
python3 - "$work/settled.json" "$work/idle.json" "$(git -C "$work/repo" rev-parse HEAD)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["environments"]["dev"]["in_sync"] = sys.argv[3]
json.dump(s, open(sys.argv[2], "w"))
PY
mkdir -p "$work/idle"
cp "$work/idle.json" "$work/idle/state.json"

hyperfine -N --runs "$runs" --warmup 2 --export-markdown "$work/table.md" \
    -n "dagctl reconcile, nothing new (no Python)" "env DAGCTL_STATE=$work/idle/state.json $bin reconcile --env dev" \
    -n "dagctl plan, explains a change (SQLMesh helper)" "$bin plan --env dev" \
    -n "sqlmesh plan dev --explain" "$root/.venv/bin/sqlmesh --paths $work/repo plan dev --explain"
cat "$work/table.md"
printf '\nwork folder: %s\n' "$work"
