"""A generated org on disk, as a new user would have it: a config repository (a YAML
identity export, mappings, a policy) and an emulator seed (Slack with drift). Shared by
the end-to-end benchmarks.

The shape follows the org of the 200,000-person report: IdP groups nested up to five
deep (leaf teams of about 11 people, ten groups to a parent), one usergroup per 40
people mapped to leaf teams and departments, one channel per 4 people of which 20% are
managed, and live Slack with drift spread as in real orgs: 1% leavers (suspended in
the identity provider, still active and in their usergroups and channels), 3% of
usergroup members missing, and one member added by hand to every tenth usergroup.
"""

import json
import os
import subprocess

WORKSPACE = "T0000MAIN"

# Org shapes, so a figure does not hold for one shape only. Each knob:
# - managed_every: one channel in N is managed (its members read and planned);
# - channel_scope: "team" (a managed channel maps a leaf team, ~11 people) or "department"
#   (one level up, ~110 people: ten times the membership density);
# - unmanaged_members: members of each unmanaged channel;
# - usergroup_department_every: one usergroup in N maps a department, the rest a team;
# - leavers_every: one person in N is a leaver (suspended, still active in Slack);
# - missing_every: one wanted member in N is missing from usergroups and channels;
# - by_hand_every: one usergroup in N has a member added by hand.
SHAPES = {
    "report": dict(managed_every=5, channel_scope="team", unmanaged_members=8,
                   usergroup_department_every=5, leavers_every=100, missing_every=33,
                   by_hand_every=10),
    "dense": dict(managed_every=2, channel_scope="department", unmanaged_members=30,
                  usergroup_department_every=2, leavers_every=200, missing_every=50,
                  by_hand_every=4),
    "sparse": dict(managed_every=20, channel_scope="team", unmanaged_members=4,
                   usergroup_department_every=50, leavers_every=500, missing_every=200,
                   by_hand_every=50),
    "drifty": dict(managed_every=5, channel_scope="team", unmanaged_members=8,
                   usergroup_department_every=5, leavers_every=20, missing_every=8,
                   by_hand_every=2),
}


def shape(people):
    return {
        "groups": min(people // 10, 20_000),
        "usergroups": min(people // 40, 5_000),
        "channels": min(people // 4, 50_000),
    }


def generate(people, root, shape_name="report"):
    """Writes ROOT/repo (a git repository) and ROOT/slack.json; returns the repo path."""
    knobs = SHAPES[shape_name]
    size = shape(people)
    email = lambda n: f"p{n}@org.example"
    uid = lambda n: f"W{n:08d}"
    leaves = size["groups"] * 9 // 10
    per_leaf = people // leaves
    # Leaf teams, then levels of ten, up to five deep; the top is `everyone`.
    levels = [[f"t{g}" for g in range(leaves)]]
    children = {}
    while len(levels[-1]) > 10 and len(levels) < 4:
        parents = []
        for i in range(0, len(levels[-1]), 10):
            name = f"d{len(levels)}-{i // 10}"
            children[name] = levels[-1][i:i + 10]
            parents.append(name)
        levels.append(parents)
    children["everyone"] = levels[-1]
    team_members = lambda g: range(g * per_leaf, (g + 1) * per_leaf)
    leavers = set(range(37 % knobs["leavers_every"], people, knobs["leavers_every"]))

    repo = os.path.join(root, "repo")
    for d in ("identity", "mappings", "policies"):
        os.makedirs(os.path.join(repo, d), exist_ok=True)
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
            f.write(f"  - email: {email(n)}\n    given_name: Person\n    family_name: N{n}\n"
                    f"    title: Engineer\n    department: Dept {n % 50}\n    status: {status}\n")
        f.write("groups:\n")
        for g in range(leaves):
            f.write(f"  - name: t{g}\n    members:\n")
            for n in team_members(g):
                f.write(f"      - {email(n)}\n")
        for name, kids in children.items():
            f.write(f"  - name: {name}\n    groups: [{', '.join(kids)}]\n")
    # Usergroups: mostly one leaf team each, every fifth a department one level up.
    usergroup_groups = []
    for u in range(size["usergroups"]):
        if u % knobs["usergroup_department_every"] == 0 and len(levels) > 1:
            usergroup_groups.append(levels[1][u % len(levels[1])])
        else:
            usergroup_groups.append(f"t{u % leaves}")
    managed = [c for c in range(size["channels"]) if c % knobs["managed_every"] == 0]
    departments = levels[1] if len(levels) > 1 else levels[0]
    channel_group = lambda c: (departments[c % len(departments)]
                               if knobs["channel_scope"] == "department" else f"t{c % leaves}")
    with open(os.path.join(repo, "mappings", "teams.yaml"), "w") as f:
        f.write("apiVersion: slack-gitops/v1\nkind: Mappings\nusergroups:\n")
        for u, group in enumerate(usergroup_groups):
            f.write(f"  - handle: ug-{u}\n    name: Usergroup {u}\n    workspaces: [main]\n"
                    f"    members: {{ groups: [{group}] }}\n")
        f.write("channels:\n")
        for c in managed:
            f.write(f"  - name: ch-{c}\n    workspace: main\n    members: {{ groups: [{channel_group(c)}] }}\n"
                    f"    remove_unlisted: true\n")
    with open(os.path.join(repo, "policies", "limits.yaml"), "w") as f:
        f.write(
            "apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n"
            f"  deactivate: {{ max: {people}, max_percent: 100 }}\n"
            "  remove_from_usergroup: { max: 10000000, max_percent: 100 }\n"
            "  remove_from_channel: { max: 10000000 }\n"
            "drift: { every: 15m, action: report }\n"
            "protected:\n  users: [gitops@org.example]\n"
        )

    # Live Slack: what the config wants, with drift.
    def members_of(group):
        if group.startswith("t"):
            return list(team_members(int(group[1:])))
        out = []
        for kid in children[group]:
            out.extend(members_of(kid))
        return out

    users = [{"id": uid(n), "user_name": f"p{n}", "email": email(n), "given_name": "Person",
              "family_name": f"N{n}", "title": "Engineer", "department": f"Dept {n % 50}",
              "active": True, "workspaces": [WORKSPACE]} for n in range(people)]
    admin, bot = people, people + 1
    users.append({"id": uid(admin), "user_name": "gitops", "email": "gitops@org.example", "given_name": "Git",
                  "family_name": "Ops", "active": True, "admin": True, "workspaces": [WORKSPACE]})
    users.append({"id": uid(bot), "user_name": "gitops-bot", "email": "bot@org.example", "given_name": "Bot",
                  "family_name": "Bot", "active": True, "bot": True, "workspaces": [WORKSPACE]})
    usergroups = []
    for u, group in enumerate(usergroup_groups):
        wanted = members_of(group)
        live = [uid(n) for n in wanted if n % knobs["missing_every"] != 5]  # missing
        if u % knobs["by_hand_every"] == 0:
            live.append(uid((wanted[0] + people // 2) % people))  # added by hand
        usergroups.append({"id": f"S{u:08d}", "workspace": WORKSPACE, "handle": f"ug-{u}",
                           "name": f"Usergroup {u}", "users": live})
    channels = []
    managed_set = set(managed)
    for c in range(size["channels"]):
        if c in managed_set:
            wanted = members_of(channel_group(c))
            members = [uid(n) for n in wanted if n % knobs["missing_every"] != 6] + [uid(bot)]
        else:
            members = [uid((c * 7 + m * 131) % people)
                       for m in range(knobs["unmanaged_members"])] + [uid(bot)]
        channels.append({"id": f"C{c:08d}", "workspace": WORKSPACE,
                         "name": f"ch-{c}", "members": sorted(set(members))})
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


TOKENS = {"SLACK_ADMIN_TOKEN": "xoxp-gen-admin", "SLACK_BOT_TOKEN": "xoxb-gen-bot"}
