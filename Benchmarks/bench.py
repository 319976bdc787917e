#!/usr/bin/env python3
"""Runs the benchmarks of BENCHMARKS.md and prints them as a markdown table.

Every figure is a whole process: the median wall time of hyperfine's runs and the peak resident memory
(GNU time's maximum RSS, median of three runs)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def hyperfine(commands, runs, cwd):
    """Median seconds of each command."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", out.name, "--style", "none"]
        subprocess.run(args + commands, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def peak_kib(command, cwd):
    values = []
    for _ in range(3):
        r = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        values.append(int(r.stderr.strip().splitlines()[-1]))
    return statistics.median(values)


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def dbt_state_modified(work, info, runs):
    """`dbt ls --select state:modified` between the same two commits, on a DuckDB profile."""
    repo = os.path.join(work, "repo")
    base, head = info["deployed"]["env-00"], info["head"]
    scratch = os.path.join(work, "dbt")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    with open(os.path.join(scratch, "profiles.yml"), "w") as f:
        f.write(f"bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: {scratch}/bench.duckdb\n")
    for name, sha in (("base", base), ("head", head)):
        subprocess.run(["git", "-C", repo, "worktree", "add", "-q", "-f", "--detach", os.path.join(scratch, name), sha], check=True)
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    subprocess.run(["dbt", "parse", "--project-dir", os.path.join(scratch, "base"), "--profiles-dir", scratch,
                    "--target-path", os.path.join(scratch, "state")], check=True, env=env, stdout=subprocess.DEVNULL)
    command = ["dbt", "ls", "--select", "state:modified", "--state", os.path.join(scratch, "state"),
               "--project-dir", os.path.join(scratch, "head"), "--profiles-dir", scratch, "--quiet"]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--runs", str(runs), "--export-json", out.name, "--style", "none",
                        " ".join(command)], check=True, stdout=subprocess.DEVNULL, env=env)
        median = json.load(open(out.name))["results"][0]["median"]
    subprocess.run(["git", "-C", repo, "worktree", "prune"], check=True)
    return median, peak_kib(command, scratch)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dagctl", required=True)
    p.add_argument("--sizes", default="500 5000 20000")
    p.add_argument("--commits", type=int, default=10000)
    p.add_argument("--envs", type=int, default=20)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "dagctl-bench"))
    a = p.parse_args()
    d = a.dagctl
    rows = []
    for n in [int(x) for x in a.sizes.split()]:
        work = os.path.join(a.work, f"n{n}-m{a.commits}-e{a.envs}")
        if not os.path.exists(os.path.join(work, "info.json")):
            print(f"generating {n} models, {a.commits} commits, {a.envs} environments in {work}", file=sys.stderr)
            subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), "--models", str(n), "--commits", str(a.commits),
                            "--envs", str(a.envs), "--out", work], check=True)
        info = json.load(open(os.path.join(work, "info.json")))
        changed = subprocess.run(["git", "-C", "repo", "diff", "--name-only", info["deployed"]["env-00"], info["head"]],
                                 cwd=work, capture_output=True, text=True, check=True).stdout.count("\n")
        inputs = ["--repo", "repo", "--desired", "desired"]
        plan1 = [d, "plan", *inputs, "--state", "states/behind/state.json", "--env", "env-00", "--output", "json"]
        plan_all = [d, "plan", *inputs, "--state", "states/behind/state.json", "--output", "json"]
        git = ["git", "-C", "repo", "diff", "--name-status", "-M", info["deployed"]["env-00"], info["head"]]
        settled = os.path.join(work, "states", "settled-run")
        shutil.rmtree(settled, ignore_errors=True)
        shutil.copytree(os.path.join(work, "states", "settled"), settled)
        reconcile = [d, "reconcile", *inputs, "--state", "states/settled-run/state.json", "--output", "json"]
        history = [d, "plan", *inputs, "--state", "states/history/state.json", "--env", "env-00", "--output", "json"]
        cmds = [plan1, git, plan_all, reconcile, history]
        times = hyperfine([" ".join(c) for c in cmds], a.runs, work)
        mem = [peak_kib(c, work) for c in cmds]
        rows.append((n, changed, times, mem))
        print(f"N={n}: done", file=sys.stderr)

    print(f"| models | files changed (env-00) | `dagctl plan` 1 env | `git diff --name-status -M` | ratio | `dagctl plan` {a.envs} envs | reconcile, nothing to do ({a.envs} envs) | `plan` 1 env, 10,000 past plans | peak memory: plan 1 env / {a.envs} envs / git |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n, changed, t, m in rows:
        print(f"| {n:,} | {changed} | {ms(t[0])} | {ms(t[1])} | {t[0] / t[1]:.1f}x | {ms(t[2])} | {ms(t[3])} | {ms(t[4])} (+{(t[4] - t[0]) * 1000:.1f} ms) | {mib(m[0])} / {mib(m[2])} / {mib(m[1])} |")

    if shutil.which("dbt") and rows and rows[0][0] <= 500:
        work = os.path.join(a.work, f"n{rows[0][0]}-m{a.commits}-e{a.envs}")
        info = json.load(open(os.path.join(work, "info.json")))
        median, peak = dbt_state_modified(work, info, 3)
        print(f"\n`dbt ls --select state:modified` on the {rows[0][0]}-model project, same commits as env-00: "
              f"{ms(median)} (median of 3), peak memory {mib(peak)}; `dagctl plan` 1 env: {ms(rows[0][2][0])}.")


if __name__ == "__main__":
    main()
