#!/usr/bin/env python3
"""`slack-gitops import` end to end on generated orgs: the binary against the emulator,
as an org adopting the tool runs it.

    python3 benches/e2e/import.py [10000 50000 200000] [--shape report]
                                  [--binary target/release/slack-gitops] [--time-scale 100000]

For each size, the org of `org.py` (IdP groups nested up to five deep, usergroups mapped
to teams and departments, channels, live Slack with drift) is generated with its config
repository; a fresh repository holding only its `slack-gitops.yaml` and identity export
is then adopted with `import`. Reports import's wall time, CPU time and peak RSS; how
many usergroups' rules are the rules the org was generated from; that `validate`
passes; the membership changes of the plan right after (beyond the accounts it creates,
reactivates or deactivates: none is the claim); and whether a second import into
another fresh repository writes the same bytes.

The emulator runs at a high time scale so that Slack's rate limits (reading every
channel's members: one `conversations.members` per channel at Tier 4) do not hide the
tool's own cost. Build with `cargo build --release` first.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import org  # noqa: E402
from plan import run  # noqa: E402


def bare(repo, root, name):
    """A repository with only the config and the identity export of `repo`."""
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, "identity"))
    shutil.copy(os.path.join(repo, "slack-gitops.yaml"), path)
    for entry in os.listdir(os.path.join(repo, "identity")):
        shutil.copy(os.path.join(repo, "identity", entry), os.path.join(path, "identity"))
    return path


def files(path):
    found = {}
    for folder in ("mappings", "policies"):
        base = os.path.join(path, folder)
        for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            with open(os.path.join(base, entry), "rb") as f:
                found[f"{folder}/{entry}"] = f.read()
    return found


def generating_rules(repo):
    """handle -> the groups of its mapping, from the generated repository."""
    rules = {}
    for entry in os.listdir(os.path.join(repo, "mappings")):
        text = open(os.path.join(repo, "mappings", entry)).read()
        for handle, groups in re.findall(r"- handle: (\S+)\n(?:    .*\n)*?    members: \{ groups: \[([^\]]*)\]", text):
            rules[handle] = [g.strip() for g in groups.split(",")]
    return rules


def membership_changes(plan):
    """Usergroup and channel changes beyond the people whose account the plan creates,
    reactivates or deactivates."""
    actions = plan["plan"]["actions"]
    accounts = set()
    for a in actions:
        if a["action"] in ("create_user", "reactivate_user"):
            accounts.add(a["person"]["email"])
        elif a["action"] == "deactivate_user":
            accounts.add(a["removal"]["person"]["email"])
    changes = 0
    for a in actions:
        kind = a["action"]
        if kind == "set_usergroup_members":
            people = [x["person"]["email"] for x in a["adds"] + a["removes"]]
        elif kind == "invite_to_channel":
            people = [x["person"]["email"] for x in a["people"]]
        elif kind == "kick_from_channel":
            people = [a["removal"]["person"]["email"]]
        elif kind in ("create_usergroup", "update_usergroup", "enable_usergroup", "disable_usergroup",
                      "create_channel"):
            changes += 1
            continue
        else:
            continue
        changes += sum(1 for p in people if p not in accounts)
    return changes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", type=int, nargs="*", default=[10_000, 50_000, 200_000])
    parser.add_argument("--shape", default="report")
    parser.add_argument("--binary", default="target/release/slack-gitops")
    parser.add_argument("--time-scale", default="100000")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    results = []
    for people in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            repo = org.generate(people, root, args.shape)
            env = dict(os.environ, **org.TOKENS, SLACK_GITOPS_LOG="warn")
            emulator = subprocess.Popen([binary, "emulator", "--seed", os.path.join(root, "slack.json"),
                                         "--listen", "127.0.0.1:0", "--time-scale", args.time_scale],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            base = emulator.stdout.readline().split()[4]
            slack = ["--slack-url", base, "--time-scale", args.time_scale]
            try:
                first = bare(repo, root, "adopted")
                report_path = os.path.join(root, "import.json")
                errors_path = os.path.join(root, "import.err")
                with open(report_path, "w") as out, open(errors_path, "w") as errors:
                    started = run([binary, "import", first, "--format", "json", *slack], env, out, errors)
                if started["exit"] != 0:
                    raise SystemExit(f"import failed: {open(errors_path).read()[-2000:]}")
                report = json.load(open(report_path))["import"]
                validate = run([binary, "validate", first], env)
                plan_path = os.path.join(root, "plan.json")
                plan = run([binary, "plan", first, *slack, "--format", "json", "--out", plan_path], env)
                changes = membership_changes(json.load(open(plan_path)))
                second = bare(repo, root, "again")
                again = run([binary, "import", second, *slack], env)
                same_bytes = again["exit"] == 0 and files(first) == files(second)
            finally:
                emulator.terminate()
                emulator.wait()
            rules = generating_rules(repo)
            equal = sum(1 for u in report["usergroups"]
                        if rules.get(u["target"][1:]) == u["groups"] and not u["exclude"])
            result = {
                "people": people, "shape": args.shape, "import": started,
                "usergroups_imported": len(report["usergroups"]), "usergroups_generated": len(rules),
                "rules_equal_to_generating": equal, "channels_imported": len(report["channels"]),
                "left_unmanaged": len(report["unmanaged"]), "files": len(report["files"]),
                "validate_exit": validate["exit"], "plan": plan, "plan_membership_changes": changes,
                "second_import_same_bytes": same_bytes,
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    print()
    print("| people | import wall | import CPU | import peak RSS | rules equal to generating | channels | unmanaged "
          "| validate | plan membership changes | same bytes again |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for r in results:
        i = r["import"]
        print(f"| {r['people']:,} | {i['wall_s']} s | {i['cpu_s']} s | {i['peak_rss_mib']} MiB "
              f"| {r['rules_equal_to_generating']:,} of {r['usergroups_generated']:,} | {r['channels_imported']:,} "
              f"| {r['left_unmanaged']:,} | {'passes' if r['validate_exit'] == 0 else 'FAILS'} "
              f"| {r['plan_membership_changes']} | {'yes' if r['second_import_same_bytes'] else 'NO'} |")


if __name__ == "__main__":
    main()
