#!/usr/bin/env python3
"""The controller's memory on a generated org of N people: what the Kubernetes manifests'
requests and limits are sized from.

    python3 benches/e2e/controller_memory.py 50000 [--binary target/release/slack-gitops]

Generates the org of `org.py` (the end-to-end benchmarks' own) under a temp dir, starts
the emulator and the controller (time scale 1,000: an emulated minute of rate limits is
60 real ms), waits for the first sync to converge and a drift tick, and prints the
controller's peak RSS (VmHWM) and the emulator's for comparison.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import org  # noqa: E402


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("people", type=int)
    parser.add_argument("--binary", default="target/release/slack-gitops")
    parser.add_argument("--time-scale", default="1000")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory() as root:
        started = time.time()
        repo = org.generate(args.people, root)
        print(f"generated {args.people} people in {time.time() - started:.1f} s", file=sys.stderr)
        env = dict(os.environ, **org.TOKENS, SLACK_GITOPS_LOG="warn")
        emulator = subprocess.Popen([binary, "emulator", "--seed", os.path.join(root, "slack.json"),
                                     "--listen", "127.0.0.1:0", "--time-scale", args.time_scale],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = emulator.stdout.readline()
        base = line.split()[4]
        controller = subprocess.Popen([binary, "controller", "--repo", repo, "--branch", "main",
                                       "--listen", "127.0.0.1:0", "--state", os.path.join(root, "state.db"),
                                       "--slack-url", base, "--time-scale", args.time_scale, "--poll", "5"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        status_url = controller.stdout.readline().strip().split()[-1] + "/status"
        try:
            began = time.time()
            synced = None
            while time.time() - began < 1800:
                status = get(status_url)
                syncs = status["last_syncs"]
                if any(s["trigger"] == "drift" for s in syncs) and syncs[-1]["outcome"] in ("converged", "incomplete"):
                    synced = syncs
                    break
                time.sleep(0.5)
            took = time.time() - began
            print(json.dumps({
                "people": args.people,
                "first_sync": synced[-1] if synced else None,
                "until_first_drift_tick_s": round(took, 1),
                "controller_peak_rss_mib": round(kib(controller.pid, "VmHWM:") / 1024),
                "controller_rss_now_mib": round(kib(controller.pid, "VmRSS:") / 1024),
                "emulator_peak_rss_mib": round(kib(emulator.pid, "VmHWM:") / 1024),
            }, indent=1))
        finally:
            controller.terminate()
            emulator.terminate()
            controller.wait()
            emulator.wait()


if __name__ == "__main__":
    main()
