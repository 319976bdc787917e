#!/usr/bin/env python3
"""Generates a synthetic dbt repository, a desired-state directory and state files for benchmarks.

Deterministic from --seed: the same arguments give the same commits (fixed dates and authors).

  generate.py --models N --commits M --envs E --out DIR [--seed S] [--past-plans P]

DIR/repo             git repository: N models in nested folders with schema.yml files, macros, seeds;
                     M commits that each change one or two models; every 100th and the last bump the version
DIR/desired          members.yaml and E unprotected environments (env-00 …), deploying without approval
DIR/states/behind/state.json    env-i deployed 20*(i+1) commits behind the head (each plan diffs another range)
DIR/states/settled/state.json   every environment deployed at the head (a reconcile has nothing to do)
DIR/states/history/             "behind" plus P past plans (succeeded, superseded) over the environments,
                                kept as dagctl keeps them: in history/<env>.jsonl beside state.json
DIR/info.json        the head, each environment's deployed commit, and the arguments
"""
import argparse
import json
import os
import random
import subprocess

EMAILS = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, required=True)
    p.add_argument("--commits", type=int, required=True)
    p.add_argument("--envs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--past-plans", type=int, default=10000)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    repo = os.path.join(a.out, "repo")
    os.makedirs(a.out, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)

    # Nested folders: models/<domain>/<layer>/<group>/m_<i>.sql, ~40 models per folder.
    domains = ["finance", "marketing", "product", "sales", "support", "ops"]
    layers = ["staging", "intermediate", "marts"]
    paths = []
    for i in range(a.models):
        folder = f"models/{domains[i % len(domains)]}/{layers[(i // 6) % 3]}/g{i // 240:03d}"
        paths.append(f"{folder}/m_{i:05d}.sql")
    folders = sorted({os.path.dirname(x) for x in paths})

    def model_sql(i, rev):
        dep = f"{{{{ ref('m_{i - 1:05d}') }}}}" if i % 10 and i > 0 else "(select 1 as id)"
        return f"-- model {i} revision {rev}\nselect id, {rev} as rev, '{{{{ var(\"region\", \"eu\") }}}}' as region\nfrom {dep} as upstream\n"

    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=repo, stdin=subprocess.PIPE)
    out = proc.stdin

    def data(text):
        b = text.encode()
        out.write(b"data %d\n" % len(b))
        out.write(b)
        out.write(b"\n")

    commits = []
    version = 1
    t0 = 1_700_000_000
    for c in range(a.commits):
        email = EMAILS[c % len(EMAILS)]
        files = {}
        if c == 0:
            files[".dagctl/config.yaml"] = "version: 1\n"
            files["dbt_project.yml"] = "name: bench\nversion: '1.0'\nprofile: bench\nmodel-paths: [models]\nseed-paths: [seeds]\n"
            files["README.md"] = "# synthetic benchmark project\n"
            for i, path in enumerate(paths):
                files[path] = model_sql(i, 0)
            for f in folders:
                names = [os.path.splitext(os.path.basename(x))[0] for x in paths if os.path.dirname(x) == f]
                files[f + "/schema.yml"] = "version: 2\nmodels:\n" + "".join(f"  - name: {n}\n    columns: [{{name: id, tests: [not_null]}}]\n" for n in names)
            for m in range(20):
                files[f"macros/macro_{m:02d}.sql"] = f"{{% macro macro_{m:02d}(x) %}}{{{{ x }}}} + {m}{{% endmacro %}}\n"
            for s in range(10):
                files[f"seeds/seed_{s:02d}.csv"] = "id,name\n" + "".join(f"{k},name {k}\n" for k in range(20))
        else:
            for _ in range(rng.choice([1, 1, 2])):
                i = rng.randrange(a.models)
                files[paths[i]] = model_sql(i, c)
            # Every 100th commit bumps the version, and so does the last: every environment has a new plan due.
            if c % 100 == 0 or c == a.commits - 1:
                version += 1
                files[".dagctl/config.yaml"] = f"version: {version}\n"
        out.write(b"commit refs/heads/main\n")
        out.write(b"mark :%d\n" % (c + 1))
        out.write(f"author Dev <{email}> {t0 + c * 60} +0000\ncommitter Dev <{email}> {t0 + c * 60} +0000\n".encode())
        data(f"change {c}\n")
        if c > 0:
            out.write(b"from :%d\n" % c)
        for path, content in sorted(files.items()):
            out.write(f"M 100644 inline {path}\n".encode())
            data(content)
        commits.append(c + 1)
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    shas = subprocess.run(["git", "rev-list", "--reverse", "main"], cwd=repo, check=True, capture_output=True, text=True).stdout.split()
    head = shas[-1]

    desired = os.path.join(a.out, "desired")
    os.makedirs(os.path.join(desired, "environments"), exist_ok=True)
    with open(os.path.join(desired, "members.yaml"), "w") as f:
        f.write("members:\n" + "".join(f"  - name: {e.split('@')[0]}\n    emails: [{e}]\n    roles: [deployer]\n" for e in EMAILS))
    envs = [f"env-{i:02d}" for i in range(a.envs)]
    for name in envs:
        with open(os.path.join(desired, "environments", name + ".yaml"), "w") as f:
            f.write("ref: main\nrequired_approvals: 0\n")

    def version_at(index):
        return 1 + index // 100 + (1 if index == len(shas) - 1 and index % 100 else 0)

    def plan(env, index, status, changes=0):
        sha = shas[index]
        return {"id": f"{env}-v{version_at(index)}-{sha[:10]}", "environment": env, "version": str(version_at(index)),
                "commit": sha, "created_at": "2026-01-01T00:00:00Z",
                "changes": [{"path": paths[(index * 7 + k) % len(paths)], "change": "modified", "category": "model"} for k in range(changes)],
                "scope": "selective" if changes else "all", "select": [], "warnings": [], "status": status,
                "attempts": [{"n": 1, "outcome": "succeeded", "phase": "run", "summary": {"models": {"success": changes, "error": 0, "skipped": 0, "warned": 0}}}]}

    def state(deployed_index, past=0):
        environments = {}
        for i, env in enumerate(envs):
            index = deployed_index(i)
            plans = []
            for k in range(past // max(1, len(envs))):
                plans.append(plan(env, max(0, index - 1 - k) , "succeeded" if k % 3 else "superseded", changes=5))
            plans.reverse()
            newest = plan(env, index, "succeeded")
            plans.append(newest)
            environments[env] = {"ref": "main", "deployed": {"commit": shas[index], "version": newest["version"], "plan": newest["id"]},
                                 "plans": plans}
        return {"schema_version": 1, "environments": environments}

    # Deployed a little behind the head, but at an older version, so each run explains a new plan.
    behind = lambda i: max(0, len(shas) - 1 - 20 * (i + 1))

    def write_state(name, deployed_index, past=0):
        folder = os.path.join(a.out, "states", name)
        os.makedirs(folder, exist_ok=True)
        full = state(deployed_index, past)
        # As dagctl keeps it: finished plans other than the newest live in history/<env>.jsonl.
        if past:
            os.makedirs(os.path.join(folder, "history"), exist_ok=True)
            for env, e in full["environments"].items():
                with open(os.path.join(folder, "history", env + ".jsonl"), "w") as f:
                    for p in e["plans"][:-1]:
                        f.write(json.dumps(p, sort_keys=True) + "\n")
                e["plans"] = e["plans"][-1:]
        with open(os.path.join(folder, "state.json"), "w") as f:
            json.dump(full, f)

    write_state("behind", behind)
    write_state("settled", lambda i: len(shas) - 1)
    write_state("history", behind, past=a.past_plans)
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump({"head": head, "deployed": {env: shas[behind(i)] for i, env in enumerate(envs)},
                   "models": a.models, "commits": a.commits, "envs": a.envs, "seed": a.seed}, f, indent=1)


if __name__ == "__main__":
    main()
