#!/usr/bin/env python3
"""`slack-gitops plan` end to end on generated orgs: the binary against the emulator,
as a user runs it. Reports the plan process's wall time, CPU time (user + system) and
peak RSS, and `validate`'s, for each size.

    python3 benches/e2e/plan.py [10000 50000 200000] [--shapes report,dense,sparse,drifty]
                                [--binary target/release/slack-gitops]

Each size is generated in each shape of `org.SHAPES` (membership density, managed share,
drift mix), so a figure is not one shape's.

The emulator runs at time scale 100,000 so that Slack's rate limits (the floor a real
org pays: see the README) do not hide the tool's own cost; the plan is given the same
scale. Build with `cargo build --release` first.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import org  # noqa: E402


def run(command, env, stdout=None, stderr=None):
    """Runs `command` alone and answers its exit code, wall time, CPU time and peak RSS;
    its standard output and error go to the files `stdout` and `stderr` when given, else
    nowhere."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(stdout.fileno() if stdout else devnull, 1)
        os.dup2(stderr.fileno() if stderr else devnull, 2)
        os.execve(command[0], command, env)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", type=int, nargs="*", default=[10_000, 50_000, 200_000])
    parser.add_argument("--binary", default="target/release/slack-gitops")
    parser.add_argument("--time-scale", default="100000")
    parser.add_argument("--shapes", default=",".join(org.SHAPES))
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    results = []
    cases = [(people, shape) for people in args.sizes for shape in args.shapes.split(",")]
    for people, shape in cases:
        with tempfile.TemporaryDirectory() as root:
            started = time.time()
            repo = org.generate(people, root, shape)
            generated = time.time() - started
            env = dict(os.environ, **org.TOKENS, SLACK_GITOPS_LOG="warn")
            # Alone on the machine: before the emulator starts loading its seed.
            validate = run([binary, "validate", repo], env)
            emulator = subprocess.Popen([binary, "emulator", "--seed", os.path.join(root, "slack.json"),
                                         "--listen", "127.0.0.1:0", "--time-scale", args.time_scale],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            base = emulator.stdout.readline().split()[4]
            try:
                out = os.path.join(root, "plan.json")
                plan = run([binary, "plan", repo, "--slack-url", base, "--time-scale", args.time_scale,
                            "--format", "json", "--out", out], env)
                with open(out) as f:
                    document = json.load(f)
                actions = len(document["plan"]["actions"])
            finally:
                emulator.terminate()
                emulator.wait()
            result = {"people": people, "shape": shape, "actions": actions, "plan": plan, "validate": validate,
                      "generated_s": round(generated, 1)}
            print(json.dumps(result), flush=True)
            results.append(result)
    print()
    print("| people | shape | actions | plan wall | plan CPU | plan peak RSS | validate wall | validate peak RSS |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        p, v = r["plan"], r["validate"]
        print(f"| {r['people']:,} | {r['shape']} | {r['actions']:,} | {p['wall_s']} s | {p['cpu_s']} s | {p['peak_rss_mib']} MiB "
              f"| {v['wall_s']} s | {v['peak_rss_mib']} MiB |")


if __name__ == "__main__":
    main()
