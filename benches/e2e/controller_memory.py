#!/usr/bin/env python3
"""The controller's memory on a generated org of N people: what the Kubernetes manifests'
requests and limits are sized from.

    python3 benches/e2e/controller_memory.py 50000 [--binary target/release/slack-gitops]

Writes a config repository (a YAML identity export, one usergroup per 100-person team,
one managed channel per 10 teams) and an emulator seed (Slack as the config wants it,
with about 5% drift and 1% leavers) under a temp dir, starts the emulator and the
controller (time scale 1,000: an emulated minute of rate limits is 60 real ms), waits for the
first sync to converge and a drift tick, and prints the controller's peak RSS (VmHWM)
and the emulator's for comparison.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

TEAM = 100
WORKSPACE = "T0000MAIN"


def generate(people, root):
    teams = people // TEAM
    email = lambda n: f"p{n}@org.example"
    uid = lambda n: f"W{n:08d}"
    repo = os.path.join(root, "repo")
    os.makedirs(os.path.join(repo, "identity"))
    os.makedirs(os.path.join(repo, "mappings"))
    os.makedirs(os.path.join(repo, "policies"))
    leavers = set(range(0, people, 100))  # 1%: suspended in the IdP, active in Slack
    with open(os.path.join(repo, "slack-gitops.yaml"), "w") as f:
        f.write(
            "apiVersion: slack-gitops/v1\nkind: Config\nslack:\n  plan: enterprise-grid\n"
            f"  workspaces:\n    main: {WORKSPACE}\n  token_env: SLACK_ADMIN_TOKEN\n  bot_token_env: SLACK_BOT_TOKEN\n"
            "identity:\n  source: file\n  path: identity/directory.yaml\n"
            "users:\n  provisioning: eager\n  scope: [everyone]\ngitops: { branch: main }\n"
        )
    with open(os.path.join(repo, "identity", "directory.yaml"), "w") as f:
        f.write("apiVersion: slack-gitops/v1\nkind: Directory\npeople:\n")
        for n in range(people):
            status = "suspended" if n in leavers else "active"
            f.write(f"  - email: {email(n)}\n    given_name: Person\n    family_name: N{n}\n    status: {status}\n")
        f.write("groups:\n  - name: everyone\n    groups: [")
        f.write(", ".join(f"team-{t}" for t in range(teams)))
        f.write("]\n")
        for t in range(teams):
            f.write(f"  - name: team-{t}\n    members:\n")
            for n in range(t * TEAM, (t + 1) * TEAM):
                f.write(f"      - {email(n)}\n")
    with open(os.path.join(repo, "mappings", "teams.yaml"), "w") as f:
        f.write("apiVersion: slack-gitops/v1\nkind: Mappings\nusergroups:\n")
        for t in range(teams):
            f.write(f"  - handle: team-{t}\n    name: Team {t}\n    workspaces: [main]\n    members: {{ groups: [team-{t}] }}\n")
        f.write("channels:\n")
        for c in range(0, teams, 10):
            f.write(f"  - name: team-{c}-chat\n    workspace: main\n    members: {{ groups: [team-{c}] }}\n    remove_unlisted: true\n")
    with open(os.path.join(repo, "policies", "limits.yaml"), "w") as f:
        f.write(
            "apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n"
            f"  deactivate: {{ max: {people}, max_percent: 100 }}\n"
            "  remove_from_usergroup: { max: 1000000, max_percent: 100 }\n"
            "  remove_from_channel: { max: 1000000 }\n"
            "drift: { every: 15m, action: report }\n"
            "protected:\n  users: [gitops@org.example]\n"
        )
    users = [
        {"id": uid(n), "user_name": f"p{n}", "email": email(n), "given_name": "Person",
         "family_name": f"N{n}", "active": True, "workspaces": [WORKSPACE]}
        for n in range(people)
    ]
    admin, bot = people, people + 1
    users.append({"id": uid(admin), "user_name": "gitops", "email": "gitops@org.example", "given_name": "Git",
                  "family_name": "Ops", "active": True, "admin": True, "workspaces": [WORKSPACE]})
    users.append({"id": uid(bot), "user_name": "gitops-bot", "email": "bot@org.example", "given_name": "Bot",
                  "family_name": "Bot", "active": True, "workspaces": [WORKSPACE], "bot": True})
    usergroups = []
    for t in range(teams):
        members = [uid(n) for n in range(t * TEAM, (t + 1) * TEAM) if n % 20 != 7]  # 5% missing
        members.append(uid((t * TEAM + 4 * TEAM) % people))  # one added by hand
        usergroups.append({"id": f"S{t:08d}", "workspace": WORKSPACE, "handle": f"team-{t}",
                           "name": f"Team {t}", "users": members})
    channels = [{"id": "C00000000", "workspace": WORKSPACE, "name": "general", "general": True,
                 "members": [uid(n) for n in range(people)] + [uid(bot)]}]
    for c in range(people // 25):
        members = [uid((c * 25 + m) % people) for m in range(25)] + [uid(bot)]
        channels.append({"id": f"C{c + 1:08d}", "workspace": WORKSPACE, "name": f"team-{c}-chat" if c % 10 == 0 and c < teams else f"channel-{c}",
                         "members": members})
    scopes_admin = ["admin", "users:read", "users:read.email", "usergroups:read", "usergroups:write", "channels:read",
                    "groups:read", "channels:manage", "groups:write", "channels:write.invites", "groups:write.invites",
                    "admin.users:read", "admin.users:write", "admin.usergroups:read", "admin.usergroups:write",
                    "admin.teams:write", "admin.conversations:write"]
    scopes_bot = ["users:read", "users:read.email", "usergroups:read", "usergroups:write", "channels:read",
                  "groups:read", "channels:manage", "groups:write", "channels:write.invites",
                  "groups:write.invites", "chat:write"]
    seed = {
        "enterprise": {"id": "E0000ORG", "name": "Generated"},
        "workspaces": [{"id": WORKSPACE, "name": "Main", "domain": "main"}],
        "users": users, "usergroups": usergroups, "channels": channels, "idp_groups": [],
        "tokens": [
            {"token": "xoxp-gen-admin", "kind": "user", "user": uid(admin), "org_level": True, "scopes": scopes_admin},
            {"token": "xoxb-gen-bot", "kind": "bot", "user": uid(bot), "org_level": True, "scopes": scopes_bot},
        ],
    }
    with open(os.path.join(root, "slack.json"), "w") as f:
        json.dump(seed, f)
    git = lambda *args: subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=bench", "-c", "user.email=bench@org.example", "commit", "-qm", "generated org")
    return repo


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
        repo = generate(args.people, root)
        print(f"generated {args.people} people in {time.time() - started:.1f} s", file=sys.stderr)
        env = dict(os.environ, SLACK_ADMIN_TOKEN="xoxp-gen-admin", SLACK_BOT_TOKEN="xoxb-gen-bot", SLACK_GITOPS_LOG="warn")
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
