#!/usr/bin/env bash
# Walks the whole dagctl flow on the example projects: a git repository made from examples/project,
# the desired state from examples/desired, a state file, and real dbt on DuckDB; then the SQLMesh
# example (examples/sqlmesh) the same way with real sqlmesh.
# Usage: examples/walkthrough.sh DAGCTL_BINARY WORKDIR
set -euo pipefail
dagctl_bin=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

export DAGCTL_REPO="$work/repo" DAGCTL_DESIRED="$work/desired" DAGCTL_STATE="$work/state/state.json"
export SHOP_WAREHOUSE_DIR="$work/warehouse"
mkdir -p "$SHOP_WAREHOUSE_DIR"
dagctl() { "$dagctl_bin" "$@"; }
# A git repository at $2 made from the project folder $1, committed by alice with message $3.
new_repo() {
    cp -R "$1" "$2"
    git -C "$2" init -q -b main
    git -C "$2" config user.name "Alice"
    git -C "$2" config user.email "alice@example.com"
    git -C "$2" add -A
    git -C "$2" commit -q -m "$3"
}

step "1. The dbt repository: examples/project committed by alice (version 1)"
rm -rf "$work/repo" "$work/desired" "$work/state"
new_repo "$here/project" "$work/repo" "shop: first version"
git -C "$work/repo" log --oneline

step "2. The desired state: dev (unprotected) and prod (protected), members alice, bob, carol"
cp -R "$here/desired" "$work/desired"
# Each member gets an ed25519 key; its public half goes into members.yaml so signatures can be checked.
rm -rf "$work/keys"
mkdir -p "$work/keys"
for member in alice bob carol; do
    ssh-keygen -q -t ed25519 -N "" -C "$member@example" -f "$work/keys/$member"
done
awk -v keys="$work/keys" '
    /^  - name: / { name = $3 }
    { print }
    /^    roles: / { getline pub < (keys "/" name ".pub"); printf "    keys: [\"%s\"]\n", pub }
' "$here/desired/members.yaml" > "$work/desired/members.yaml"
show dagctl validate

step "2b. Notifications: a small webhook receiver on 127.0.0.1, and notifications.yaml pointing at it"
# examples/webhook-receiver.py stands in for a Slack channel and an audit endpoint: it checks each
# body's HMAC signature, drops repeats by event id and prints one line per event.
rm -f "$work/receiver.port" "$work/receiver.jsonl"
python3 "$here/webhook-receiver.py" --port-file "$work/receiver.port" --log "$work/receiver.jsonl" \
    --secret example-secret > "$work/receiver.out" 2>&1 &
receiver_pid=$!
trap 'kill "$receiver_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/receiver.port" ] && break; sleep 0.1; done
port=$(cat "$work/receiver.port")
# The Slack-style hook's URL is a secret: it comes from the environment, as it would in cron.
export EXAMPLE_SLACK_URL="http://127.0.0.1:$port/slack" EXAMPLE_WEBHOOK_SECRET=example-secret
cat > "$work/desired/notifications.yaml" <<YAML
dashboard_url: http://127.0.0.1:8080
webhooks:
  - name: team-slack
    url_env: EXAMPLE_SLACK_URL
    format: slack
    events: [plan_pending, plan_failed, plan_succeeded]
    secret_env: EXAMPLE_WEBHOOK_SECRET
  - name: audit
    url: http://127.0.0.1:$port/audit
    format: json
    secret_env: EXAMPLE_WEBHOOK_SECRET
YAML
show cat "$work/desired/notifications.yaml"
show dagctl notify test team-slack

step "3. dagctl plan: what each environment's next plan is"
show dagctl plan

step "4. Approvals: alice approves dev; prod refuses alice (not on its allowlist), bob signs"
plan_id() { dagctl plan --env "$1" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["environments"][0]["plan"]["id"])'; }
dev_plan=$(plan_id dev)
prod_plan=$(plan_id prod)
show dagctl approve "$dev_plan" --as alice --comment "first deploy of dev"
if dagctl approve "$prod_plan" --as alice --key "$work/keys/alice"; then echo "unexpected: alice approved her own plan" >&2; exit 1; fi
show dagctl approve "$prod_plan" --as bob --key "$work/keys/bob" --comment "reviewed the models"
show cat "$work/desired/approvals/$prod_plan/bob.yaml"
show dagctl plan --env prod

step "5. dagctl reconcile: both approved plans are built from their commit and run with dbt on DuckDB"
show dagctl reconcile
show dagctl status

step "6. A second reconcile with nothing new does nothing"
show dagctl reconcile --env prod

step "7. A pull-request preview: change one model on a branch and bump the version"
git -C "$work/repo" checkout -q -b feature/customers
printf -- '-- customers: lifetime value first\n' >> "$work/repo/models/marts/customers.sql"
sed -i 's/^version: .*/version: 2/' "$work/repo/.dagctl/config.yaml"
git -C "$work/repo" -c user.name=Carol -c user.email=carol@example.com commit -q -am "customers: comment; version 2"
show dagctl plan --env prod --ref feature/customers --output markdown

step "8. Merged: plan shows a selective plan for one model"
git -C "$work/repo" checkout -q main
git -C "$work/repo" merge -q --ff-only feature/customers
show dagctl plan --env prod
prod_v1=$prod_plan
prod_plan=$(plan_id prod)
dev_plan=$(plan_id dev)

step "9. Approve (carol bumped the version, so bob signs for prod) and reconcile: dbt runs one model"
show dagctl approve "$dev_plan" --as carol
show dagctl approve "$prod_plan" --as bob --key "$work/keys/bob"
show dagctl reconcile
python3 - "$DAGCTL_STATE" "$prod_plan" <<'PY'
import json, os, sys
state, plan = sys.argv[1], sys.argv[2]
results = json.load(open(os.path.join(os.path.dirname(state), "logs", plan, "attempt-1", "run_results.json")))
models = [r["unique_id"] for r in results["results"] if r["unique_id"].startswith("model.")]
print("models run by", plan + ":", ", ".join(models))
assert models == ["model.shop.customers"], models
PY
show dagctl logs "$prod_plan" --phase run

step "9b. Rollback: bob asks to take prod back to v1; carol approves the rollback plan; prod stays pinned until the file is deleted"
show dagctl rollback prod --to "$prod_v1" --as bob --key "$work/keys/bob"
show dagctl reconcile --env prod   # explains prod-rollback-…: customers.sql back to v1; bob asked, so carol approves
rollback_plan=$(plan_id prod)
show dagctl approve "$rollback_plan" --as carol --key "$work/keys/carol"
show dagctl reconcile --env prod
show dagctl plan --env prod        # pinned: version 2 at main is explained again (a fresh id) but not deployed
python3 - "$DAGCTL_STATE" "$rollback_plan" "$prod_v1" <<'PY'
import json, sys
state, rollback, v1 = sys.argv[1:]
prod = json.load(open(state))["environments"]["prod"]
assert prod["deployed"]["plan"] == rollback and prod["deployed"]["version"] == "1", prod["deployed"]
print(f"prod runs {rollback} (version 1, the commit of {v1}) and is pinned by rollbacks/prod.yaml")
PY
rm "$work/desired/rollbacks/prod.yaml"
again=$(plan_id prod)
show dagctl approve "$again" --as bob --key "$work/keys/bob"
show dagctl reconcile --env prod   # unpinned: version 2 deploys again


step "10. The SQLMesh example: examples/sqlmesh/project, its own repository, desired state and state file"
sq="$work/sqlmesh"
rm -rf "$sq"
mkdir -p "$sq"
new_repo "$here/sqlmesh/project" "$sq/repo" "shop (SQLMesh): first version"
cp -R "$here/sqlmesh/desired" "$sq/desired"
cp "$work/desired/members.yaml" "$sq/desired/members.yaml"   # the same people and keys
cp "$work/desired/notifications.yaml" "$sq/desired/"         # and the same webhooks
export DAGCTL_REPO="$sq/repo" DAGCTL_DESIRED="$sq/desired" DAGCTL_STATE="$sq/state/state.json"
export SHOP_SQLMESH_DB="$sq/shop.duckdb"
show dagctl validate
show dagctl plan --env dev

step "11. First deploy: dev applies without approval; prod waits for bob's signature"
show dagctl reconcile
sq_prod=$(plan_id prod)
show dagctl approve "$sq_prod" --as bob --key "$work/keys/bob" --comment "first SQLMesh deploy"
show dagctl reconcile --env prod
show dagctl reconcile --env dev   # nothing moved: no Python is started

step "12. A non-breaking change (a new column): applied to dev, then to prod after approval"
python3 - "$sq/repo/models/orders_daily.sql" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
open(path, "w").write(text.replace("SUM(amount_cents) AS amount_cents\n", "SUM(amount_cents) AS amount_cents,\n  MAX(amount_cents) AS largest_cents\n"))
PY
git -C "$sq/repo" -c user.name=Carol -c user.email=carol@example.com commit -q -am "orders_daily: largest order"
show dagctl plan --env prod
show dagctl reconcile   # dev applies it; prod records its plan (with the SQLMesh plan it applies on top of) and waits
sq_prod=$(plan_id prod)
show dagctl approve "$sq_prod" --as bob --key "$work/keys/bob"
show dagctl reconcile --env prod
python3 - "$SHOP_SQLMESH_DB" <<'PY'
import sys
import duckdb
db = duckdb.connect(sys.argv[1], read_only=True)
catalog = db.execute("select current_database()").fetchone()[0]   # the file's name: shop
for env in ("shop__dev", "shop"):
    rows = db.execute(f"select order_date, orders, largest_cents from {catalog}.{env}.orders_daily order by order_date").fetchall()
    print(f"{env}.orders_daily:", rows)
    assert rows[0][2] == 2500 and len(rows) == 4, rows
print("the new column is in dev and prod, computed from the seed")
PY

step "13. Notifications: what the receiver got (each reconcile sent its events after each environment's work)"
cat "$work/receiver.out"
show dagctl status --env prod
python3 - "$work/receiver.jsonl" "$prod_plan" "$sq_prod" <<'PY'
import json, sys
requests = [json.loads(line) for line in open(sys.argv[1])]
dbt_plan, sqlmesh_plan = sys.argv[2], sys.argv[3]
assert requests and all(r["signature_ok"] for r in requests), "every body is signed"
audit = [r["body"] for r in requests if r["path"] == "/audit"]
def events(plan): return [e["event"] for e in audit if e["plan"] == plan]
# Bob had signed the dbt plan before the reconcile that explained it, so it never waited.
assert events(dbt_plan) == ["plan_approved", "attempt_started", "plan_succeeded"], events(dbt_plan)
assert events(sqlmesh_plan) == ["plan_pending", "plan_approved", "attempt_started", "plan_succeeded"], events(sqlmesh_plan)
pending = next(e for e in audit if e["plan"] == sqlmesh_plan and e["event"] == "plan_pending")
print(f"{len(requests)} requests, all signed; the audit hook's plan_pending of {sqlmesh_plan}:")
print(json.dumps(pending, indent=2, sort_keys=True))
PY

step "14. The dashboard: static reports of both examples, and how to serve them live"
dagctl report --html "$work/report-sqlmesh"
export DAGCTL_REPO="$work/repo" DAGCTL_DESIRED="$work/desired" DAGCTL_STATE="$work/state/state.json"
show dagctl report --html "$work/report"
printf '\nOpen %s/report/index.html (and %s/report-sqlmesh/index.html) in a browser,\n' "$work" "$work"
printf 'or serve the dashboard live (it follows running logs):\n  %q serve --repo %q --desired %q --state %q   # then http://127.0.0.1:8080\n' \
    "$dagctl_bin" "$DAGCTL_REPO" "$DAGCTL_DESIRED" "$DAGCTL_STATE"

printf '\nWork folder: %s\n' "$work"
