#!/usr/bin/env bash
# Walks the whole dagctl flow on the example project: a git repository made from examples/project,
# the desired state from examples/desired, a state file, and real dbt on DuckDB.
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

step "1. The dbt repository: examples/project committed by alice (version 1)"
rm -rf "$work/repo" "$work/desired" "$work/state"
cp -R "$here/project" "$work/repo"
git -C "$work/repo" init -q -b main
git -C "$work/repo" config user.name "Alice"
git -C "$work/repo" config user.email "alice@example.com"
git -C "$work/repo" add -A
git -C "$work/repo" commit -q -m "shop: first version"
git -C "$work/repo" log --oneline

step "2. The desired state: dev (unprotected) and prod (protected), members alice, bob, carol"
cp -R "$here/desired" "$work/desired"
# Each member gets an ed25519 key; its public half goes into members.yaml so signatures can be checked.
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

step "5. A pull-request preview: change one model on a branch and bump the version"
git -C "$work/repo" checkout -q -b feature/customers
printf -- '-- the number of orders is what marketing wants first\n' >> "$work/repo/models/marts/customers.sql"
sed -i 's/^version: .*/version: 2/' "$work/repo/.dagctl/config.yaml"
git -C "$work/repo" commit -q -am "customers: comment; version 2"
git -C "$work/repo" checkout -q main
base=$(git -C "$work/repo" rev-parse main)
show dagctl plan --env prod --ref feature/customers --base "$base" --output markdown

printf '\nWork folder: %s\n' "$work"
