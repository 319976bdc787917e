#!/usr/bin/env python3
"""Measures `scope_mode: precise` against dbt's own `state:modified` on every commit of a history.

For each pair of consecutive commits (base, head) of each project:
  dbt:    `dbt parse` at base (not timed) gives the base manifest; then, timed, at head:
          dbt ls --select state:modified --resource-type model seed snapshot test --state <base target>
  dagctl: timed: dagctl plan --ref <head> --base <base> --manifest <base manifest.json> --output json
          and the nodes its plan would run: `dbt ls --select <its select>` at head (not timed; `all`
          is every node, build_only none).
Recall is the share of dbt's nodes that dagctl's plan runs. Extra nodes are split by why: tests of a
selected node (dbt build runs them: indirect selection), nodes of a plan that is `all` (with its reason),
and the rest. Where dbt selects a node whose only change is whitespace, dbt is wrong: those nodes are
counted apart and not held against dagctl.

  precise.py --dagctl BIN --work DIR [--projects example,jaffle,generated]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TYPES = ["model", "seed", "snapshot", "test"]


def sh(args, cwd=None, env=None, check=True):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def git(repo, *args):
    return sh(["git", "-C", repo, *args]).stdout.strip()


# ---------------------------------------------------------------- histories

def commit_all(repo, message, version):
    os.makedirs(os.path.join(repo, ".dagctl"), exist_ok=True)
    with open(os.path.join(repo, ".dagctl/config.yaml"), "w") as f:
        # dbt from PATH (the one dbt ls uses too), not a virtualenv of the project's own pins.
        f.write(f"version: {version}\nrequirements: none\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(path, fn):
    text = open(path).read() if os.path.exists(path) else ""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(fn(text))


def replay(repo, steps, start_version=1):
    """Applies each (message, fn(repo)) step and commits it with the next version; returns the commits."""
    commits = [git(repo, "rev-parse", "HEAD")]
    for i, (message, fn) in enumerate(steps):
        fn(repo)
        commits.append(commit_all(repo, message, start_version + i + 1))
    return commits


def common_steps(model, yml, seed, new_test):
    """Changes of every kind to a project: (label, function). `new_test` is an (old, new) replacement
    in `yml` that adds a test."""
    def p(repo, rel):
        return os.path.join(repo, rel)
    return [
        ("model: a comment", lambda r: edit(p(r, model), lambda t: t + "\n-- reviewed\n")),
        ("model: whitespace only", lambda r: edit(p(r, model), lambda t: t.replace("\n", "\n\n", 1))),
        ("yml: a description reworded", lambda r: edit(p(r, yml), lambda t: t.replace("description: ", "description: Reworded. ", 1))),
        ("yml: quoting and a comment only", lambda r: edit(p(r, yml), lambda t: "# a comment\n" + t.replace("- not_null", "- 'not_null'", 1))),
        ("yml: a new test", lambda r: edit(p(r, yml), lambda t: t.replace(new_test[0], new_test[1], 1))),
        ("seed: a row", lambda r: edit(p(r, seed), lambda t: t + (t.rstrip("\n").split("\n")[-1]) + "\n")),
        ("README only", lambda r: edit(p(r, "README.md"), lambda t: t + "\nmore\n")),
    ]


def example_project(work):
    repo = os.path.join(work, "repo")
    shutil.copytree(os.path.join(ROOT, "examples/project"), repo)
    git_init(repo)
    steps = common_steps("models/staging/stg_customers.sql", "models/staging/schema.yml", "seeds/raw_customers.csv",
                         ("      - name: first_name\n", "      - name: last_name\n        data_tests: [not_null]\n      - name: first_name\n"))
    steps += [
        ("macro: its code changed", lambda r: edit(os.path.join(r, "macros/cents_to_dollars.sql"), lambda t: t.replace("as decimal(18, 2))", "as decimal(19, 2))"))),
        ("macro: a Jinja comment only", lambda r: edit(os.path.join(r, "macros/cents_to_dollars.sql"), lambda t: t + "\n{# v2 #}\n")),
        ("singular test: changed", lambda r: edit(os.path.join(r, "tests/assert_no_negative_amounts.sql"), lambda t: t + "\n-- again\n")),
        ("dbt_project.yml: changed", lambda r: edit(os.path.join(r, "dbt_project.yml"), lambda t: t + "\n# touched\n")),
    ]
    return repo, replay(repo, steps)


def git_init(repo):
    sh(["git", "init", "-q", "-b", "main", repo])
    return commit_all(repo, "first version", 1)


def jaffle_project(work):
    """jaffle_shop_duckdb: its last real commits that dbt 1.11 parses, then changes of every kind."""
    src = os.path.join(work, "jaffle-src")
    sh(["git", "clone", "-q", os.path.join(ROOT, "../shared/corpus/jaffle_shop_duckdb.bundle"), src])
    real = git(src, "rev-list", "--first-parent", "--reverse", "02ee647..HEAD").split()
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    sh(["git", "init", "-q", "-b", "main", repo])
    commits = []
    for i, sha in enumerate(["02ee647"] + real):
        for name in os.listdir(repo):
            if name != ".git":
                path = os.path.join(repo, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        sh(["sh", "-c", f"git -C {src} archive {sha} | tar -x -C {repo}"])
        commits.append(commit_all(repo, f"jaffle_shop {sha}", i + 1))
    steps = common_steps("models/customers.sql", "models/schema.yml", "seeds/raw_customers.csv",
                         ("      - name: first_name\n", "      - name: first_name\n        tests: [not_null]\n"))
    steps += [
        ("macro: added and used", lambda r: (edit(os.path.join(r, "macros/money.sql"), lambda t: "{% macro money(c) %}({{ c }} / 100)::numeric(16, 2){% endmacro %}\n"),
                                            edit(os.path.join(r, "models/staging/stg_payments.sql"), lambda t: t.replace("amount / 100", "{{ money('amount') }}")))),
        ("macro: changed", lambda r: edit(os.path.join(r, "macros/money.sql"), lambda t: t.replace("(16, 2)", "(18, 2)"))),
    ]
    return repo, commits + replay(repo, steps, start_version=len(commits))[1:]


def generated_project(work, models=60):
    """Macros calling macros (three deep), yml patches per folder, seeds, and a generic test of its own."""
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    w = lambda rel, text: edit(os.path.join(repo, rel), lambda _: text)
    w("dbt_project.yml", "name: gen\nversion: '1.0'\nconfig-version: 2\nprofile: shop\nmodel-paths: [models]\nseed-paths: [seeds]\n"
                         "macro-paths: [macros]\ntest-paths: [tests]\nmodels:\n  gen:\n    +materialized: view\n")
    w("macros/base.sql", "{% macro base_fmt(c) %}cast({{ c }} as varchar){% endmacro %}\n")
    w("macros/mid.sql", "{% macro mid_fmt(c) %}upper({{ base_fmt(c) }}){% endmacro %}\n")
    w("macros/top.sql", "{% macro top_fmt(c) %}trim({{ mid_fmt(c) }}){% endmacro %}\n")
    w("macros/other.sql", "{% macro other_fmt(c) %}lower(cast({{ c }} as varchar)){% endmacro %}\n")
    w("tests/generic/positive.sql", "{% test positive(model, column_name) %}select * from {{ model }} where {{ column_name }} < 0{% endtest %}\n")
    w("seeds/numbers.csv", "n\n" + "".join(f"{i}\n" for i in range(1, 11)))
    w("seeds/letters.csv", "letter\na\nb\nc\n")
    macros = ["base_fmt", "mid_fmt", "top_fmt", "other_fmt", None]
    for folder in range(models // 20):
        entries = []
        for i in range(20):
            m = folder * 20 + i
            macro = macros[m % len(macros)]
            col = f"{{{{ {macro}('n') }}}}" if macro else "n"
            src = "{{ ref('numbers') }}" if m % 2 == 0 else "{{ ref('letters') }}, {{ ref('numbers') }}"
            if m >= 20 and m % 3 == 0:
                src = f"{{{{ ref('m_{m - 20}') }}}}"
                col = "n"
            w(f"models/f{folder}/m_{m}.sql", f"select {col} as v, n from {src}\n")
            tests = "        data_tests: [not_null]\n" if m % 4 == 0 else ("        data_tests: [positive]\n" if m % 4 == 1 else "")
            entries.append(f"  - name: m_{m}\n    description: Model {m}.\n    columns:\n      - name: n\n{tests}")
        w(f"models/f{folder}/schema.yml", "version: 2\nmodels:\n" + "".join(entries))
    git_init(repo)
    steps = common_steps("models/f0/m_2.sql", "models/f1/schema.yml", "seeds/letters.csv",
                         ("  - name: m_22\n    description: Model 22.\n    columns:\n      - name: n\n",
                          "  - name: m_22\n    description: Model 22.\n    columns:\n      - name: n\n        data_tests: [not_null]\n"))
    steps += [
        ("macro: the deepest, called through two others", lambda r: edit(os.path.join(r, "macros/base.sql"), lambda t: t.replace("varchar", "text"))),
        ("macro: a top one", lambda r: edit(os.path.join(r, "macros/top.sql"), lambda t: t + "\n{# v2 #}\n")),
        ("generic test definition", lambda r: edit(os.path.join(r, "tests/generic/positive.sql"), lambda t: t.replace("< 0", "< -1"))),
        ("yml: a column test in another folder", lambda r: edit(os.path.join(r, "models/f2/schema.yml"), lambda t: t.replace("  - name: m_42\n    description: Model 42.\n    columns:\n      - name: n\n",
                                                                                                                      "  - name: m_42\n    description: Model 42.\n    columns:\n      - name: n\n        data_tests: [unique]\n"))),
        ("macro: a new one nothing calls", lambda r: edit(os.path.join(r, "macros/unused.sql"), lambda t: "{% macro unused() %}1{% endmacro %}\n")),
        ("two models and a seed", lambda r: (edit(os.path.join(r, "models/f2/m_45.sql"), lambda t: t + "\n-- x\n"),
                                            edit(os.path.join(r, "models/f0/m_7.sql"), lambda t: t + "\n-- x\n"),
                                            edit(os.path.join(r, "seeds/numbers.csv"), lambda t: t + "11\n"))),
        ("generate_schema_name override added", lambda r: edit(os.path.join(r, "macros/schemas.sql"), lambda t: "{% macro generate_schema_name(custom, node) %}{{ target.schema }}{% endmacro %}\n")),
    ]
    return repo, replay(repo, steps)


# ---------------------------------------------------------------- measuring

def dbt_env(work):
    env = dict(os.environ)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["SHOP_WAREHOUSE_DIR"] = work
    env["DBT_PROFILES_DIR"] = os.path.join(work, "profiles")
    return env


def profiles(work, profile_names):
    os.makedirs(os.path.join(work, "profiles"), exist_ok=True)
    with open(os.path.join(work, "profiles/profiles.yml"), "w") as f:
        for name in profile_names:
            f.write(f"{name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: {work}/{name}.duckdb\n      threads: 1\n")


def checkout(repo, sha, into):
    if os.path.exists(into):
        shutil.rmtree(into)
    os.makedirs(into)
    sh(["sh", "-c", f"git -C {repo} archive {sha} | tar -x -C {into}"])


def dbt(args, cwd, env):
    start = time.monotonic()
    r = sh(["dbt", *args, "--quiet"], cwd=cwd, env=env, check=False)
    return r, time.monotonic() - start


def ls(cwd, env, select=None, state=None):
    args = ["ls", "--output", "json", "--output-keys", "unique_id"]
    for t in TYPES:
        args += ["--resource-type", t]
    if select:
        args += ["--select", *select]
    if state:
        args += ["--state", state]
    r, took = dbt(args, cwd, env)
    if r.returncode != 0:
        raise RuntimeError(f"dbt ls failed in {cwd}: {r.stdout[-1500:]}{r.stderr[-1500:]}")
    ids = set()
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            ids.add(json.loads(line)["unique_id"])
    return ids, took


def measure(name, repo, commits, dagctl, work):
    """Deploys each commit as cron would (dagctl reconcile, real dbt on DuckDB: the deploy keeps its
    manifest, or parses its commit when it ran no dbt), then times the next commit's plan, explained
    from that kept manifest, against dbt's state:modified given the same manifest."""
    env = dbt_env(work)
    desired = os.path.join(work, "desired")
    os.makedirs(os.path.join(desired, "environments"), exist_ok=True)
    shutil.copytree(os.path.join(work, "profiles"), os.path.join(desired, "profiles"), dirs_exist_ok=True)
    with open(os.path.join(desired, "members.yaml"), "w") as f:
        f.write("members:\n  - name: bench\n    emails: [bench@example.com]\n")
    with open(os.path.join(desired, "environments/dev.yaml"), "w") as f:
        f.write("ref: bench-base\ntarget: dev\nrequired_approvals: 0\nscope_mode: precise\n")
    state = os.path.join(work, "state/state.json")
    kept = os.path.join(work, "state/manifests/dev")
    common = ["--repo", repo, "--desired", desired, "--state", state]
    head_dir = os.path.join(work, "head")
    rows = []
    for base, head in zip(commits, commits[1:]):
        label = git(repo, "log", "-1", "--format=%s", head)
        git(repo, "branch", "-f", "bench-base", base)
        sh([dagctl, "reconcile", "--quiet", *common], env=env, check=False)
        deployed = json.load(open(state))["environments"]["dev"].get("deployed", {}).get("commit")
        index = json.load(open(os.path.join(kept, "index.json"))) if os.path.exists(os.path.join(kept, "index.json")) else {}
        if deployed != base or index.get("commit") != base:
            rows.append({"label": label, "skipped": "the deploy of the base failed"})
            continue
        checkout(repo, head, head_dir)
        if os.path.exists(os.path.join(head_dir, "packages.yml")):
            dbt(["deps"], head_dir, env)
        try:
            dbt_set, dbt_time = ls(head_dir, env, select=["state:modified"], state=kept)
        except RuntimeError:
            rows.append({"label": label, "skipped": "dbt ls fails at head"})
            continue
        git(repo, "branch", "-f", "bench-head", head)
        start = time.monotonic()
        out = sh([dagctl, "plan", "--env", "dev", "--ref", "bench-head", "--output", "json", *common], env=env, check=False)
        dagctl_time = time.monotonic() - start
        start = time.monotonic()
        sh([dagctl, "plan", "--env", "dev", "--ref", "bench-head", "--output", "json", "--manifest", os.path.join(kept, "manifest.json"), *common],
           env=env, check=False)
        given_time = time.monotonic() - start
        plan = json.loads(out.stdout)["environments"][0]["plan"]
        if plan["scope"] == "all":
            ours, _ = ls(head_dir, env)
        elif plan["scope"] == "build_only":
            ours = set()
        else:
            ours, _ = ls(head_dir, env, select=plan["select"])
        # dbt is wrong where a file's only change is whitespace.
        whitespace_files = set()
        for path in git(repo, "diff", "--name-only", base, head).splitlines():
            if sh(["git", "-C", repo, "diff", "-w", "--ignore-blank-lines", "--quiet", base, head, "--", path], check=False).returncode == 0:
                whitespace_files.add(path)
        nodes = json.load(open(os.path.join(head_dir, "target/manifest.json")))["nodes"]
        dbt_wrong = {n for n in dbt_set if nodes.get(n, {}).get("original_file_path") in whitespace_files}
        wanted = dbt_set - dbt_wrong
        extra = ours - dbt_set
        attached = {n for n in extra if n.startswith("test.") and any(dep in ours and not dep.startswith("test.")
                                                                     for dep in nodes.get(n, {}).get("depends_on", {}).get("nodes", []))}
        rows.append({"label": label, "scope": plan["scope"], "dbt": len(dbt_set), "dbt_wrong": len(dbt_wrong), "wanted": len(wanted),
                     "found": len(wanted & ours), "missed": sorted(wanted - ours), "extra_tests": len(attached),
                     "extra_all": len(extra - attached) if plan["scope"] == "all" else 0,
                     "extra_other": sorted(extra - attached) if plan["scope"] != "all" else [],
                     "all_because": next((w for w in plan.get("warnings", []) if w.startswith("precise scope:")), None),
                     "dbt_time": dbt_time, "dagctl_time": dagctl_time, "given_time": given_time, "selected": len(ours)})
    return rows


def report(name, rows):
    print(f"\n### {name}\n")
    print("| change | dbt state:modified | dagctl plan | recall | extra: tests of selected / all-plan / other | dbt ls | dagctl plan (kept) | plan --manifest |")
    print("|---|---|---|---|---|---|---|---|")
    tot = {"wanted": 0, "found": 0, "tests": 0, "all": 0, "other": 0, "dbt_time": 0.0, "dagctl_time": 0.0, "given_time": 0.0, "wrong": 0, "ours": 0}
    for r in rows:
        if "skipped" in r:
            print(f"| {r['label']} | — | — | — | — | {r['skipped']} | | |")
            continue
        recall = "n/a" if r["wanted"] == 0 else f"{100 * r['found'] / r['wanted']:.0f}%"
        wrong = f" ({r['dbt_wrong']} whitespace-only: dbt is wrong)" if r["dbt_wrong"] else ""
        ours = f"{r['scope']}: {r['selected']} nodes" + (f" — {r['all_because'][len('precise scope: '):]}" if r["all_because"] else "")
        other = len(r["extra_other"])
        print(f"| {r['label']} | {r['dbt']}{wrong} | {ours} | {recall}{' missed ' + ', '.join(r['missed']) if r['missed'] else ''} | "
              f"{r['extra_tests']} / {r['extra_all']} / {other}{' (' + ', '.join(r['extra_other'][:3]) + ')' if other else ''} | "
              f"{r['dbt_time']:.2f} s | {r['dagctl_time'] * 1000:.0f} ms | {r['given_time'] * 1000:.0f} ms |")
        tot["wanted"] += r["wanted"]; tot["found"] += r["found"]; tot["tests"] += r["extra_tests"]
        tot["all"] += r["extra_all"]; tot["other"] += other; tot["dbt_time"] += r["dbt_time"]
        tot["dagctl_time"] += r["dagctl_time"]; tot["wrong"] += r["dbt_wrong"]; tot["ours"] += r["selected"]
        tot["given_time"] += r["given_time"]
    recall = 100 * tot["found"] / tot["wanted"] if tot["wanted"] else 100.0
    extra_share = 100 * tot["other"] / max(1, tot["ours"])
    print(f"\n**{name}**: recall {recall:.1f}% of dbt's {tot['wanted']} nodes (plus {tot['wrong']} dbt selected for a "
          f"whitespace-only change); extra nodes: {tot['tests']} tests of selected nodes, {tot['all']} in plans that are all "
          f"(each with its reason), {tot['other']} other ({extra_share:.1f}% of what dagctl selected); time: dbt ls "
          f"{tot['dbt_time']:.1f} s in all, dagctl plan from the kept index {tot['dagctl_time'] * 1000:.0f} ms "
          f"({100 * tot['dagctl_time'] / max(tot['dbt_time'], 1e-9):.2f}% of dbt's), plan --manifest {tot['given_time'] * 1000:.0f} ms "
          f"({100 * tot['given_time'] / max(tot['dbt_time'], 1e-9):.2f}%).")
    return tot


def parse_times(work, models):
    """A deploy's parse, cold and warm: `dbt parse` in a fresh folder, then in another fresh folder
    holding the first one's partial_parse.msgpack, as each dagctl run starts in a new build folder."""
    gen = os.path.join(work, f"parse-{models}")
    shutil.rmtree(gen, ignore_errors=True)
    os.makedirs(gen)
    profiles(gen, ["shop"])
    repo, commits = generated_project(gen, models=models)
    env = dbt_env(gen)
    first, second = os.path.join(gen, "first"), os.path.join(gen, "second")
    checkout(repo, commits[-3], first)   # "macro: a new one nothing calls"
    checkout(repo, commits[-2], second)  # "two models and a seed": what a deploy usually brings
    r, cold = dbt(["parse"], first, env)
    os.makedirs(os.path.join(second, "target"))
    shutil.copy(os.path.join(first, "target/partial_parse.msgpack"), os.path.join(second, "target"))
    r2, warm = dbt(["parse"], second, env)
    load = lambda d: json.load(open(os.path.join(d, "target/perf_info.json")))["load_all_elapsed"]
    print(f"| {models} models | {cold:.2f} s (loading {load(first):.2f} s) | {warm:.2f} s (loading {load(second):.2f} s) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagctl", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--projects", default="example,jaffle,generated")
    ap.add_argument("--parse-models", default="60,600", help="sizes of generated projects whose cold and warm parse is timed")
    a = ap.parse_args()
    if a.parse_models:
        print("\n### A deploy's parse, cold and warm (the last deploy's partial_parse.msgpack, in a new folder)\n")
        print("| project | cold | warm |\n|---|---|---|")
        for n in a.parse_models.split(","):
            parse_times(os.path.abspath(a.work), int(n))
    makers = {"example": (example_project, ["shop"]), "jaffle": (jaffle_project, ["jaffle_shop"]), "generated": (generated_project, ["shop"])}
    for name in a.projects.split(","):
        work = os.path.join(os.path.abspath(a.work), name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        maker, names = makers[name]
        profiles(work, names)
        repo, commits = maker(work)
        print(f"{name}: {len(commits) - 1} commit pairs", file=sys.stderr, flush=True)
        report(name, measure(name, repo, commits, a.dagctl, work))


if __name__ == "__main__":
    main()
