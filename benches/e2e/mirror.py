#!/usr/bin/env python3
"""The live mirror at Slack's real limits: a pull request's plan, its merge and a change
by hand, on a generated org, with the emulator at time scale 1.

    python3 benches/e2e/mirror.py 50000 [--shape report] [--warm-scale 1000]
                                  [--binary target/release/slack-gitops]

1. Warm-up, fast: the org of `org.py` (live Slack with drift), the emulator and the
   controller at `--warm-scale`, Slack's events delivered to `/hooks/slack`. The
   controller's first sync converges the org and fills the mirror; the benchmark waits
   until the event stream is healthy and nothing in the mirror is stale.
2. Slack's real limits: the emulator's clock is set to time scale 1
   (`POST /_emulator/clock`) and the controller restarted at time scale 1 on the same
   state store (as a pod is), so every figure below pays Slack's published limits.
3. A pull request that changes 3 usergroups and 2 channels, planned through the
   controller (`plan --controller`): wall time, the Slack calls made meanwhile (the
   refresher's and the canary's included), and its actions against a full-read plan of
   the same branch (made with the clock briefly fast again: at time scale 1 a full read
   of a 50,000-person org takes over half an hour).
4. The pull request merged: the push webhook, until the controller has the commit in
   force.
5. A member added to a usergroup by hand: until the controller reports the drift.
6. The mirror's size in the store, and the controller's peak RSS (warm-up and after the
   restart).

Prints one JSON document. Build with `cargo build --release` first.
"""

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import org  # noqa: E402
from controller_memory import kib  # noqa: E402

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
GIT_SECRET = "bench-git-webhook-secret"
CONTROLLER_TOKEN = "bench-controller-token"


def request(url, body=None, headers=None, method=None, timeout=60):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read()
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return text.decode(errors="replace")


def wait(what, check, limit_s, every=0.2):
    """Polls `check` until it answers something true; returns (answer, seconds)."""
    began = time.perf_counter()
    while True:
        answer = check()
        if answer:
            return answer, time.perf_counter() - began
        if time.perf_counter() - began > limit_s:
            raise SystemExit(f"timed out after {limit_s} s waiting for {what}")
        time.sleep(every)


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@org.example",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Controller:
    """The controller on `port`: the same address across a restart, as a Service's is, so
    Slack's request URL stays right."""

    def __init__(self, binary, root, repo, base, scale, env, port):
        self.process = subprocess.Popen(
            [binary, "controller", "--repo", repo, "--branch", "main", "--listen", f"127.0.0.1:{port}",
             "--state", os.path.join(root, "state.db"), "--workdir", os.path.join(root, "clone"),
             "--slack-url", base, "--time-scale", str(scale), "--poll", "3600"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(root, f"controller-{scale}.log"), "w"),
            text=True, env=env)
        self.url = self.process.stdout.readline().strip().split()[-1]

    def status(self):
        return request(self.url + "/status")

    def stop(self):
        self.process.terminate()
        self.process.wait()


def mirror_settled(status):
    """Healthy, nothing stale or waiting, and nothing verified before the stream's last
    gap (such copies count as unverified: a read would take them live). Times are ISO
    strings to the second, so "after" is strictly later as text."""
    m = status["mirror"]
    gap, oldest = m["stream"].get("gap"), m.get("oldest_verified")
    return (m["stream"]["healthy"] and m["stale"] == 0 and m["pending_events"] == 0
            and m["objects"] > 0 and (gap is None or (oldest is not None and oldest > gap))) and status


def converged(status, commit=None):
    syncs = status["last_syncs"]
    return (bool(syncs) and syncs[0]["outcome"] in ("converged", "no-change")
            and (commit is None or status.get("commit_in_force") == commit)) and status


def pull_request(repo, root):
    """A branch that re-maps 3 usergroups and 2 channels to other teams."""
    pr = os.path.join(root, "pr")
    subprocess.run(["git", "clone", "-q", repo, pr], check=True)
    path = os.path.join(pr, "mappings", "teams.yaml")
    text = open(path).read()
    changed = []
    for handle in ("ug-1", "ug-2", "ug-3"):
        text, n = re.subn(rf"(  - handle: {handle}\n(?:    .*\n)*?    members: {{ groups: \[)t(\d+)\]",
                          lambda m: f"{m.group(1)}t{int(m.group(2)) + 7}]", text, count=1)
        changed.append((handle, n))
    for name in ("ch-5", "ch-10"):
        text, n = re.subn(rf"(  - name: {name}\n    workspace: main\n    members: {{ groups: \[)t(\d+)\]",
                          lambda m: f"{m.group(1)}t{int(m.group(2)) + 3}]", text, count=1)
        changed.append((name, n))
    missing = [what for what, n in changed if n != 1]
    if missing:
        raise SystemExit(f"the pull request could not change {missing}")
    open(path, "w").write(text)
    git(pr, "commit", "-qam", "Re-map 3 usergroups and 2 channels")
    return pr


def plan_keys(document):
    return sorted(json.dumps(a, sort_keys=True) for a in document["plan"]["actions"])


def run_plan(binary, pr, env, extra):
    out = os.path.join(pr, "..", f"plan-{len(extra)}.json")
    began = time.perf_counter()
    done = subprocess.run([binary, "plan", pr, "--format", "json", "--out", out, *extra],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode not in (0, 2, 3):
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f), wall


def calls_since_clear(base):
    log = request(base + "/_emulator/log")
    records = log if isinstance(log, list) else log.get("calls", log.get("log", []))
    by_method = {}
    for record in records:
        by_method[record["call"]] = by_method.get(record["call"], 0) + 1
    return len(records), dict(sorted(by_method.items(), key=lambda kv: -kv[1]))


def hand_drift(base, env):
    """Adds someone to ug-7 by hand (the admin's token, as a person would)."""
    token = env["SLACK_ADMIN_TOKEN"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"}
    form = lambda fields: urllib.parse.urlencode(fields).encode()
    groups = request(base + "/api/usergroups.list", form({"include_users": "true", "team_id": org.WORKSPACE}),
                     auth)
    group = next(g for g in groups["usergroups"] if g["handle"] == "ug-7")
    users = list(group["users"])
    stranger = next(f"W{n:08d}" for n in range(1000, 10_000) if f"W{n:08d}" not in users)
    answer = request(base + "/api/usergroups.users.update",
                     form({"usergroup": group["id"], "users": ",".join(users + [stranger]),
                           "team_id": org.WORKSPACE}), auth)
    if not answer.get("ok"):
        raise SystemExit(f"the change by hand failed: {answer}")
    return group["id"], stranger


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("people", type=int)
    parser.add_argument("--shape", default="report")
    parser.add_argument("--binary", default="target/release/slack-gitops")
    parser.add_argument("--warm-scale", type=float, default=1000)
    parser.add_argument("--keep", help="work in this directory and keep it (logs, the store)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    result = {"people": args.people, "shape": args.shape, "warm_time_scale": args.warm_scale}
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as root:
        os.makedirs(root, exist_ok=True)
        started = time.time()
        repo = org.generate(args.people, root, args.shape)
        result["generated_s"] = round(time.time() - started, 1)
        env = dict(os.environ, **org.TOKENS, SLACK_GITOPS_LOG="info", SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   SLACK_GITOPS_GIT_WEBHOOK_SECRET=GIT_SECRET, SLACK_GITOPS_CONTROLLER_TOKEN=CONTROLLER_TOKEN)
        emulator = subprocess.Popen([binary, "emulator", "--seed", os.path.join(root, "slack.json"),
                                     "--listen", "127.0.0.1:0", "--time-scale", str(args.warm_scale)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        base = emulator.stdout.readline().split()[4]
        controller = None
        try:
            # 1. Warm-up.
            began = time.perf_counter()
            port = free_port()
            controller = Controller(binary, root, repo, base, args.warm_scale, env, port)
            request(base + "/_emulator/events", {"request_url": controller.url + "/hooks/slack",
                                                 "signing_secret": SIGNING_SECRET})
            wait("the first sync", lambda: converged(controller.status()), 3600, 1)
            status, _ = wait("the mirror settled", lambda: mirror_settled(controller.status()), 3600, 1)
            result["warm_up"] = {
                "wall_s": round(time.perf_counter() - began, 1),
                "first_sync": status["last_syncs"][-1],
                "controller_peak_rss_mib": round(kib(controller.process.pid, "VmHWM:") / 1024),
            }
            controller.stop()

            # 2. Slack's real limits, the controller restarted on the same store.
            request(base + "/_emulator/clock", {"time_scale": 1})
            began = time.perf_counter()
            controller = Controller(binary, root, repo, base, 1, env, port)
            status, _ = wait("the restart's sync", lambda: converged(controller.status()), 3600, 0.5)
            start_sync_s = time.perf_counter() - began
            status, _ = wait("the mirror settled at scale 1", lambda: mirror_settled(controller.status()), 600, 0.5)
            result["restart"] = {"start_sync_s": round(start_sync_s, 1), "start_sync": status["last_syncs"][-1],
                                 "mirror": {k: status["mirror"][k] for k in ("objects", "stale", "oldest_verified")}}

            # 3. The pull request's plan through the controller, and a full read's.
            pr = pull_request(repo, root)
            request(base + "/_emulator/log", method="DELETE")
            mirrored, wall = run_plan(binary, pr, env, ["--controller", controller.url])
            calls, by_method = calls_since_clear(base)
            request(base + "/_emulator/clock", {"time_scale": 100_000})
            full, full_wall = run_plan(binary, pr, env, ["--slack-url", base, "--time-scale", "100000"])
            request(base + "/_emulator/clock", {"time_scale": 1})
            result["pr_plan"] = {
                "wall_s": round(wall, 2),
                "slack_calls_meanwhile": calls,
                "calls_by_method": by_method,
                "actions": len(mirrored["plan"]["actions"]),
                "equals_full_read_plan": plan_keys(mirrored) == plan_keys(full),
                "full_read_actions": len(full["plan"]["actions"]),
                "full_read_wall_s_at_time_scale_100000": round(full_wall, 1),
                "slack_read": mirrored.get("slack_read"),
            }

            # 4. The merge: pushed, the webhook sent, until the commit is in force.
            git(repo, "pull", "-q", "--ff-only", pr, "HEAD")
            commit = git(repo, "rev-parse", "HEAD")
            body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
            signature = "sha256=" + hmac.new(GIT_SECRET.encode(), body, hashlib.sha256).hexdigest()
            request(base + "/_emulator/log", method="DELETE")
            began = time.perf_counter()
            request(controller.url + "/hooks/git", body, {"X-Hub-Signature-256": signature,
                                                           "X-GitHub-Event": "push",
                                                           "Content-Type": "application/json"})
            status, applied_s = wait("the merge applied", lambda: converged(controller.status(), commit), 600)
            calls, by_method = calls_since_clear(base)
            result["merge"] = {"applied_s": round(applied_s, 2), "sync": status["last_syncs"][0],
                               "slack_calls_meanwhile": calls, "calls_by_method": by_method}

            # 5. A change by hand.
            wait("the mirror settled after the merge", lambda: mirror_settled(controller.status()), 600, 0.5)
            before = len(controller.status()["last_syncs"])
            began = time.perf_counter()
            usergroup, stranger = hand_drift(base, env)

            def reported():
                s = controller.status()
                last = s["last_syncs"][0]
                return (len(s["last_syncs"]) > before or last["outcome"] == "drift-reported") \
                    and last["outcome"] == "drift-reported" and s

            status, reported_s = wait("the drift reported", reported, 120, 0.1)
            result["hand_drift"] = {"reported_s": round(reported_s, 2), "usergroup": usergroup,
                                    "sync": status["last_syncs"][0], "drift": status["drift"]}

            # 6. Sizes.
            store = sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root)
                        if f.startswith("state.db"))
            result["mirror"] = {"objects": status["mirror"]["objects"],
                                "store_bytes_mib": round(store / 2**20, 1)}
            result["controller_peak_rss_mib_after_restart"] = round(kib(controller.process.pid, "VmHWM:") / 1024)
            result["emulator_peak_rss_mib"] = round(kib(emulator.pid, "VmHWM:") / 1024)
        except BaseException:
            print(json.dumps(result, indent=1), file=sys.stderr)
            with open(os.path.join(root, "emulator-events.json"), "w") as f:
                json.dump(request(base + "/_emulator/events"), f)
            if controller:
                with open(os.path.join(root, "status.json"), "w") as f:
                    json.dump(controller.status(), f)
            raise
        finally:
            if controller:
                controller.stop()
            emulator.terminate()
            emulator.wait()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
