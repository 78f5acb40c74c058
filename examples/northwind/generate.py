#!/usr/bin/env python3
"""Generates the Northwind example's two data files:

- identity/directory.yaml: the IdP export of a 40-person company on Slack Business+
  (one workspace), with nested groups, contractors and a suspended leaver;
- slack.json: the emulator seed, a Business+ workspace (no Enterprise organisation)
  that differs from what the config repository asks for (see SEED DRIFT below).

Deterministic: running it again reproduces the committed files byte for byte.
Run from anywhere: python3 examples/northwind/generate.py
"""

import json
import os

DOMAIN = "northwind.example"
WORKSPACE = "T0000NWND"

# (email local part, given, family, title, department, IdP team group, manager local part)
PEOPLE = [
    ("nina.ortiz", "Nina", "Ortiz", "Chief Executive Officer", "Leadership", None, None),
    ("omar.haddad", "Omar", "Haddad", "VP Engineering", "Leadership", None, "nina.ortiz"),
    ("lena.berg", "Lena", "Berg", "VP Sales", "Leadership", None, "nina.ortiz"),
    ("ravi.raman", "Ravi", "Raman", "Head of Support", "Leadership", None, "nina.ortiz"),
    ("grace.hopper", "Grace", "Hopper", "Engineering Manager", "Engineering", "engineering", "omar.haddad"),
    ("alan.kay", "Alan", "Kay", "Backend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("barbara.liskov", "Barbara", "Liskov", "Backend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("ken.thompson", "Ken", "Thompson", "Platform Engineer", "Engineering", "engineering", "grace.hopper"),
    ("radia.perlman", "Radia", "Perlman", "Platform Engineer", "Engineering", "engineering", "grace.hopper"),
    ("frances.allen", "Frances", "Allen", "Frontend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("niklaus.wirth", "Niklaus", "Wirth", "Frontend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("hedy.lamarr", "Hedy", "Lamarr", "Mobile Engineer", "Engineering", "engineering", "grace.hopper"),
    ("tony.hoare", "Tony", "Hoare", "Data Engineer", "Engineering", "engineering", "grace.hopper"),
    ("mary.keller", "Mary", "Keller", "Sales Manager", "Sales", "sales", "lena.berg"),
    ("james.gosling", "James", "Gosling", "Account Executive", "Sales", "sales", "mary.keller"),
    ("anita.borg", "Anita", "Borg", "Account Executive", "Sales", "sales", "mary.keller"),
    ("larry.page", "Larry", "Page", "Account Executive", "Sales", "sales", "mary.keller"),
    ("sally.floyd", "Sally", "Floyd", "Sales Engineer", "Sales", "sales", "mary.keller"),
    ("evelyn.berezin", "Evelyn", "Berezin", "Account Executive", "Sales", "sales", "mary.keller"),
    ("joan.clarke", "Joan", "Clarke", "Support Lead", "Support", "support", "ravi.raman"),
    ("peter.naur", "Peter", "Naur", "Support Specialist", "Support", "support", "joan.clarke"),
    ("lynn.conway", "Lynn", "Conway", "Support Specialist", "Support", "support", "joan.clarke"),
    ("brian.kernighan", "Brian", "Kernighan", "Support Specialist", "Support", "support", "joan.clarke"),
    ("carol.shaw", "Carol", "Shaw", "Support Engineer", "Support", "support", "joan.clarke"),
    ("robin.milner", "Robin", "Milner", "Support Specialist", "Support", "support", "joan.clarke"),
    ("maria.klawe", "Maria", "Klawe", "IT Manager", "IT", "it", "nina.ortiz"),
    ("wei.zhang", "Wei", "Zhang", "IT Engineer", "IT", "it", "maria.klawe"),
    ("lars.nilsen", "Lars", "Nilsen", "IT Engineer", "IT", "it", "maria.klawe"),
    ("ingrid.alvarez", "Ingrid", "Alvarez", "Finance Manager", "Finance", "finance", "nina.ortiz"),
    ("mateo.ruiz", "Mateo", "Ruiz", "Financial Analyst", "Finance", "finance", "ingrid.alvarez"),
    ("yara.bello", "Yara", "Bello", "Accountant", "Finance", "finance", "ingrid.alvarez"),
    ("kenji.tanaka", "Kenji", "Tanaka", "Backend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("aisha.okafor", "Aisha", "Okafor", "Account Executive", "Sales", "sales", "mary.keller"),
    ("diego.ruiz", "Diego", "Ruiz", "Support Specialist", "Support", "support", "joan.clarke"),
    ("priya.raman", "Priya", "Raman", "Account Executive", "Sales", "sales", "mary.keller"),
]
CONTRACTORS = [
    ("sam.lee", "Sam", "Lee", "Contract Backend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("kim.park", "Kim", "Park", "Contract Frontend Engineer", "Engineering", "engineering", "grace.hopper"),
    ("alex.moreau", "Alex", "Moreau", "Contract Support Specialist", "Support", "support", "joan.clarke"),
]
SUSPENDED = {"larry.page", "robin.milner"}          # leavers
MISSED_LEAVER = "larry.page"                        # still active in Slack
JOINERS = {"kenji.tanaka", "aisha.okafor"}          # no Slack account yet
MOVER = "diego.ruiz"                                # support -> sales in the IdP
BREAKGLASS = "breakglass"

people = []
for local, given, family, title, dept, team, manager in PEOPLE:
    people.append({"local": local, "email": f"{local}@{DOMAIN}", "given": given, "family": family,
                   "title": title, "dept": dept, "team": team, "manager": manager,
                   "contractor": False, "status": "suspended" if local in SUSPENDED else "active"})
for local, given, family, title, dept, team, manager in CONTRACTORS:
    people.append({"local": local, "email": f"{local}@contractors.{DOMAIN}", "given": given,
                   "family": family, "title": title, "dept": dept, "team": team,
                   "manager": manager, "contractor": True, "status": "active"})
people.append({"local": BREAKGLASS, "email": f"{BREAKGLASS}@{DOMAIN}", "given": "Break",
               "family": "Glass", "title": "Emergency Admin Account", "dept": "IT", "team": None,
               "manager": None, "contractor": False, "status": "active"})
by_local = {p["local"]: p for p in people}
for p in people:
    if p["local"] == MOVER:
        p["team"], p["title"], p["manager"] = "sales", "Account Executive", "mary.keller"


def email(local):
    return by_local[local]["email"]


def team(name):
    return [p["email"] for p in people if p["team"] == name]


leaders = [email(l) for l in ["nina.ortiz", "omar.haddad", "lena.berg", "ravi.raman"]]
managers = [email(l) for l in ["grace.hopper", "mary.keller", "joan.clarke", "maria.klawe",
                               "ingrid.alvarez"]]
contractors = [p["email"] for p in people if p["contractor"]]
groups = [
    ("everyone", "Everyone with a Northwind account", [], ["employees", "contractors"]),
    ("employees", "All employees", leaders + [email(BREAKGLASS)],
     ["engineering", "sales", "support", "it", "finance"]),
    ("contractors", "External contractors", contractors, []),
    ("leadership", "Executive team", leaders, []),
    ("managers", "People managers", managers, ["leadership"]),
    ("engineering", "Engineering", [email("omar.haddad")] + team("engineering"), []),
    ("sales", "Sales", [email("lena.berg")] + team("sales"), []),
    ("support", "Customer support", [email("ravi.raman")] + team("support"), []),
    ("it", "Corporate IT", team("it"), []),
    ("finance", "Finance", team("finance"), []),
    ("it-admins", "Slack administrators", [email("maria.klawe"), email(BREAKGLASS)], []),
]
groups.sort(key=lambda g: g[0])

out = ["# Identity directory export for the `file` identity source.",
       "# Generated by ../generate.py; edit the script, not this file.",
       "apiVersion: slack-gitops/v1",
       "kind: Directory",
       "people:"]
for p in sorted(people, key=lambda p: p["email"]):
    out.append(f"  - email: {p['email']}")
    out.append(f"    given_name: {p['given']}")
    out.append(f"    family_name: {p['family']}")
    out.append(f"    title: {p['title']}")
    out.append(f"    department: {p['dept']}")
    if p["manager"]:
        out.append(f"    manager: {email(p['manager'])}")
    out.append(f"    status: {p['status']}")
out.append("groups:")
for name, description, members, nested in groups:
    out.append(f"  - name: {name}")
    out.append(f"    description: {description}")
    if members:
        out.append("    members:")
        out.extend(f"      - {e}" for e in sorted(set(members)))
    else:
        out.append("    members: []")
    out.append(f"    groups: [{', '.join(nested)}]")
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "identity", "directory.yaml"), "w") as f:
    f.write("\n".join(out) + "\n")

# ---------------------------------------------------------------------------------------
# slack.json: a Business+ workspace (no `enterprise`), ids `U...` as Slack mints them there.
#
# SEED DRIFT:
# - joiners: two active people in the IdP have no Slack account yet;
# - a leaver: one suspended person still has an active account and is in @sales; the other
#   suspended person is already deactivated;
# - a ghost account: an active account the IdP does not know;
# - a manual add: a sales person was added to @eng by hand;
# - a mover: a support specialist moved to sales in the IdP is still in @support;
# - a hand-edited description on @finance; a missing usergroup (@eng-contractors) and a
#   missing channel (#eng-announce); a stranger in #leadership (which removes unlisted
#   people); a guest, a bot, an unmanaged usergroup and unmanaged channels.
# ---------------------------------------------------------------------------------------
group_map = {name: (set(m), nested) for name, _, m, nested in groups}


def closure(name):
    direct, nested = group_map[name]
    result = set(direct)
    for child in nested:
        result |= closure(child)
    return result


def active(emails):
    by_email = {p["email"]: p for p in people}
    return {e for e in emails if by_email[e]["status"] == "active"}


users, ids = [], {}


def add_user(address, given, family, title, dept, is_active=True, **flags):
    uid = f"U{len(users) + 1:08d}"
    ids[address] = uid
    created = 1735689600 + len(users) * 3600
    user = {"id": uid, "user_name": address.split("@")[0][:21], "email": address,
            "given_name": given, "family_name": family, "display_name": "", "title": title,
            "department": dept, "active": is_active, "workspaces": [WORKSPACE],
            "created": created, "updated": created}
    user.update(flags)
    users.append(user)
    return user


for p in sorted(people, key=lambda p: p["email"]):
    if p["local"] in JOINERS:
        continue
    flags = {}
    if p["local"] == "nina.ortiz":
        flags = {"primary_owner": True, "owner": True, "admin": True}
    elif p["local"] in ("maria.klawe", "wei.zhang", BREAKGLASS):
        flags = {"admin": True}
    title = p["title"]
    if p["local"] == MOVER:
        title = "Support Specialist"          # the Slack profile still says support
    is_active = p["status"] == "active" or p["local"] == MISSED_LEAVER
    add_user(p["email"], p["given"], p["family"], title, p["dept"], is_active, **flags)
ghost = add_user(f"old.intern@{DOMAIN}", "Old", "Intern", "Intern", "Sales")
guest = add_user("casey@agency.example", "Casey", "Agency", "Agency Partner", "", guest="multi")
add_user(f"deploybot@{DOMAIN}", "Deploy", "Bot", "", "", bot=True)
service = add_user(f"slack-gitops@{DOMAIN}", "slack-gitops", "service account",
                   "Identity automation", "IT", admin=True)
gitops_bot = add_user(f"slack-gitops-bot@{DOMAIN}", "slack-gitops", "bot", "", "", bot=True)
for user in users:
    person = next((p for p in people if p["email"] == user["email"]), None)
    if person and person["manager"] and email(person["manager"]) in ids:
        manager = "joan.clarke" if person["local"] == MOVER else person["manager"]
        user["manager"] = ids[email(manager)]


def slack_ids(emails):
    return sorted(ids[e] for e in emails if e in ids)


everyone = [u["id"] for u in users if u["active"] and not u.get("bot")]
channels = []


def add_channel(name, private=False, members=(), general=False):
    cid = f"C{len(channels) + 1:08d}"
    channels.append({"id": cid, "workspace": WORKSPACE, "name": name, "private": private,
                     "archived": False, "general": general, "topic": "", "purpose": "",
                     "members": sorted(set(members)), "creator": ids[service["email"]],
                     "created": 1735689600})
    return cid


add_channel("general", members=everyone, general=True)
add_channel("random", members=everyone[::2])
eng = active(closure("engineering")) - set(contractors)
channel_ids = {
    "eng": add_channel("eng", members=slack_ids(active(closure("engineering")))),
    "sales-deals": add_channel("sales-deals", True, slack_ids(
        active(closure("sales") | closure("finance")) - {email(MOVER)}) + [ids[gitops_bot["email"]]]),
    "support-escalations": add_channel("support-escalations", members=slack_ids(
        active(closure("support")) | {email(MOVER)}) + [ids[guest["email"]]]),
    "leadership": add_channel("leadership", True, slack_ids(
        active(closure("leadership")) | {email("mary.keller")}) + [ids[gitops_bot["email"]]]),
    "managers": add_channel("managers", True, slack_ids(active(closure("managers")))
                            + [ids[gitops_bot["email"]]]),
    "it-helpdesk": add_channel("it-helpdesk", members=slack_ids(active(closure("it")))),
}
usergroups = []


def add_usergroup(handle, name, description, members, channel_names=()):
    usergroups.append({
        "id": f"S{len(usergroups) + 1:08d}", "workspace": WORKSPACE, "handle": handle,
        "name": name, "description": description, "users": sorted(set(members)),
        "channels": [channel_ids[c] for c in channel_names], "disabled": False,
        "created": 1735689600, "updated": 1735689600,
        "created_by": ids[service["email"]], "updated_by": ids[service["email"]]})


add_usergroup("eng", "Engineering", "Everyone who ships code",
              slack_ids(eng) + [ids[email("james.gosling")]], ["eng"])
add_usergroup("sales", "Sales", "All of sales",
              slack_ids((active(closure("sales")) | {email(MISSED_LEAVER)}) - {email(MOVER)}),
              ["sales-deals"])
add_usergroup("support", "Support", "Customer support",
              slack_ids(active(closure("support")) | {email(MOVER)}), ["support-escalations"])
add_usergroup("it", "IT", "Corporate IT and the Slack admins", slack_ids(active(closure("it"))),
              ["it-helpdesk"])
add_usergroup("finance", "Finance", "Finance team (edited by hand)",
              slack_ids(active(closure("finance"))))
add_usergroup("managers", "People managers", "Everyone with direct reports",
              slack_ids(active(closure("managers"))), ["managers"])
add_usergroup("leadership", "Leadership", "Executive team",
              slack_ids(active(closure("leadership"))), ["leadership"])
add_usergroup("book-club", "Book club", "Made by hand", slack_ids(sorted(eng)[:4]))

apps = [{"id": "A0000CRM", "name": "CRM sync", "workspace": WORKSPACE,
         "installed_by": ids[email(MISSED_LEAVER)], "scopes": ["chat:write"],
         "date": 1740787200}]
SCOPES = ["admin", "users:read", "users:read.email", "usergroups:read", "usergroups:write",
          "channels:read", "groups:read", "channels:manage", "groups:write",
          "channels:write.invites", "groups:write.invites"]
tokens = [
    {"token": "xoxp-northwind-admin", "kind": "user", "user": ids[service["email"]],
     "app": "A0000GITOPS", "org_level": False, "workspace": WORKSPACE, "scopes": SCOPES},
    {"token": "xoxb-northwind-bot", "kind": "bot", "user": ids[gitops_bot["email"]],
     "app": "A0000GITOPS", "org_level": False, "workspace": WORKSPACE,
     "scopes": ["users:read", "users:read.email", "usergroups:read", "usergroups:write",
                "channels:read", "groups:read", "channels:manage", "groups:write",
                "channels:write.invites", "groups:write.invites", "chat:write"]},
]
seed = {
    "workspaces": [{"id": WORKSPACE, "name": "Northwind", "domain": "northwind"}],
    "users": users, "usergroups": usergroups, "channels": channels, "apps": apps,
    "tokens": tokens, "next_id": 1,
}
with open(os.path.join(here, "slack.json"), "w") as f:
    json.dump(seed, f, indent=1)
    f.write("\n")
print(f"{len(people)} people, {len(users)} accounts, {len(usergroups)} usergroups, "
      f"{len(channels)} channels")
