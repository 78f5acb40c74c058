#!/usr/bin/env python3
"""Generates the Acme example's two data files:

- identity/directory.yaml: the IdP export, about 300 people of a fictional company, with
  nested groups, contractors and a few suspended people;
- slack.json: the emulator seed, a live Slack org that differs from what the config
  repository asks for in the ways real orgs do (see SEED DRIFT below).

Deterministic (fixed seed): running it again reproduces the committed files byte for
byte. Run from anywhere: python3 examples/acme/generate.py
"""

import os
import random

rng = random.Random(20261122)

GIVEN = ["Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
         "Edsger", "Radia", "Tim", "Hedy", "Donald", "Katherine", "John", "Sophie", "Niklaus",
         "Annie", "Guido", "Joan", "Bjarne", "Karen", "Leslie", "Mary", "Yukihiro", "Shafi",
         "Whitfield", "Jean", "Rasmus", "Anita", "Larry", "Sally", "James", "Evelyn", "Fernando",
         "Ruth", "Tony", "Adele", "Peter", "Lynn", "Brian", "Carol", "Robin", "Maria", "Omar",
         "Priya", "Wei", "Amara", "Lars", "Ingrid", "Mateo", "Yara", "Kenji", "Aisha", "Diego"]
FAMILY = ["Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov",
          "Ritchie", "Allen", "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "Knuth",
          "Johnson", "McCarthy", "Wilson", "Wirth", "Easley", "van Rossum", "Clarke",
          "Stroustrup", "Sparck Jones", "Lamport", "Keller", "Matsumoto", "Goldwasser", "Diffie",
          "Bartik", "Lerdorf", "Borg", "Page", "Floyd", "Gosling", "Berezin", "Corbato",
          "Teitelbaum", "Hoare", "Goldberg", "Naur", "Conway", "Kernighan", "Shaw", "Milner",
          "Klawe", "Haddad", "Raman", "Zhang", "Okafor", "Nilsen", "Berg", "Alvarez", "Haddad",
          "Tanaka", "Bello", "Ruiz"]

# (group, department, title, head count)
TEAMS = [
    ("eng-platform", "Engineering", "Platform Engineer", 18),
    ("eng-backend", "Engineering", "Backend Engineer", 30),
    ("eng-frontend", "Engineering", "Frontend Engineer", 22),
    ("eng-mobile", "Engineering", "Mobile Engineer", 12),
    ("data", "Engineering", "Data Engineer", 12),
    ("sre", "Engineering", "Site Reliability Engineer", 10),
    ("security", "Security", "Security Engineer", 8),
    ("product", "Product", "Product Manager", 14),
    ("design", "Design", "Product Designer", 10),
    ("sales-emea", "Sales", "Account Executive", 20),
    ("sales-amer", "Sales", "Account Executive", 22),
    ("marketing", "Marketing", "Marketing Manager", 14),
    ("support-tier1", "Support", "Support Specialist", 26),
    ("support-tier2", "Support", "Senior Support Engineer", 12),
    ("finance", "Finance", "Financial Analyst", 9),
    ("people-ops", "People", "People Partner", 8),
    ("it", "IT", "IT Engineer", 7),
    ("legal", "Legal", "Counsel", 5),
]
CONTRACTOR_TEAMS = [("eng-backend", 6), ("eng-frontend", 5), ("support-tier1", 5), ("marketing", 3)]

people = []
used = set()


def new_person(department, title, contractor=False):
    while True:
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        local = f"{given}.{family}".lower().replace(" ", "").replace("-", "")
        if local not in used:
            used.add(local)
            break
    domain = "contractors.acme.example" if contractor else "acme.example"
    person = {"email": f"{local}@{domain}", "given_name": given, "family_name": family,
              "title": ("Contract " + title) if contractor else title,
              "department": department, "manager": None, "status": "active"}
    people.append(person)
    return person


ceo = new_person("Leadership", "Chief Executive Officer")
leaders = {dept: new_person("Leadership", f"VP {dept}") for dept in
           ["Engineering", "Security", "Product", "Design", "Sales", "Marketing", "Support",
            "Finance", "People", "IT", "Legal"]}
for leader in leaders.values():
    leader["manager"] = ceo["email"]

members = {team: [] for team, *_ in TEAMS}
managers = []
for team, dept, title, count in TEAMS:
    lead = new_person(dept, f"{title} Manager")
    lead["manager"] = leaders[dept]["email"]
    managers.append(lead)
    members[team].append(lead)
    for _ in range(count - 1):
        person = new_person(dept, title)
        person["manager"] = lead["email"]
        members[team].append(person)

contractors = []
for team, count in CONTRACTOR_TEAMS:
    dept, title = next((d, t) for name, d, t, _ in TEAMS if name == team)
    for _ in range(count):
        person = new_person(dept, title, contractor=True)
        person["manager"] = members[team][0]["email"]
        members[team].append(person)
        contractors.append(person)

# A few people are suspended in the IdP: leavers whose Slack accounts must be deactivated.
employees_pool = [p for p in people if p not in contractors and p is not ceo
                  and p not in leaders.values() and p not in managers]
for person in rng.sample(employees_pool, 6):
    person["status"] = "suspended"

it_admins = members["it"][:3]
breakglass = {"email": "breakglass@acme.example", "given_name": "Break", "family_name": "Glass",
              "title": "Emergency Admin Account", "department": "IT", "manager": None,
              "status": "active"}
people.append(breakglass)

oncall = [p["email"] for p in members["sre"]] + \
    [p["email"] for p in rng.sample(members["eng-backend"][:24], 6)] + \
    [p["email"] for p in rng.sample(members["eng-platform"], 4)]

groups = [
    ("everyone", "Everyone with an Acme account", [], ["employees", "contractors"]),
    ("employees", "All employees", [ceo["email"]] + [l["email"] for l in leaders.values()],
     ["engineering", "security", "product", "design", "sales", "marketing", "support",
      "finance", "people-ops", "it", "legal"]),
    ("contractors", "External contractors", [p["email"] for p in contractors], []),
    ("leadership", "Executive team", [ceo["email"]] + [l["email"] for l in leaders.values()], []),
    ("managers", "People managers", [m["email"] for m in managers], ["leadership"]),
    ("engineering", "Engineering", [leaders["Engineering"]["email"]],
     ["eng-platform", "eng-backend", "eng-frontend", "eng-mobile", "data", "sre"]),
    ("sales", "Sales", [leaders["Sales"]["email"]], ["sales-emea", "sales-amer"]),
    ("support", "Customer support", [leaders["Support"]["email"]],
     ["support-tier1", "support-tier2"]),
    ("oncall", "Production on-call rotation", sorted(set(oncall)), []),
    ("it-admins", "Slack and identity administrators",
     [p["email"] for p in it_admins] + [breakglass["email"]], []),
]
nested_parents = {"engineering", "sales", "support"}
for team, dept, *_ in TEAMS:
    # Team groups hold employees only; contractors sit in `contractors` as well as their
    # team group, so `exclude: [contractors]` has something to do.
    groups.append((team, f"{dept}: {team}", [p["email"] for p in members[team]], []))
team_owner = {"security": "Security", "product": "Product", "design": "Design",
              "marketing": "Marketing", "finance": "Finance", "people-ops": "People",
              "it": "IT", "legal": "Legal"}
groups = [(n, d, m + ([leaders[team_owner[n]]["email"]] if n in team_owner else []), g)
          for n, d, m, g in groups]
groups.sort(key=lambda g: g[0])


def scalar(value):
    if value is None:
        return "null"
    text = str(value)
    if any(c in text for c in ":#'\"") or text.strip() != text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


out = ["# Identity directory export for the `file` identity source.",
       "# Generated by ../generate.py; edit the script, not this file.",
       "apiVersion: slack-gitops/v1",
       "kind: Directory",
       "people:"]
for p in sorted(people, key=lambda p: p["email"]):
    out.append(f"  - email: {p['email']}")
    for key in ["given_name", "family_name", "title", "department", "manager", "status"]:
        if p[key] is not None:
            out.append(f"    {key}: {scalar(p[key])}")
out.append("groups:")
for name, description, group_members, nested in groups:
    out.append(f"  - name: {name}")
    out.append(f"    description: {scalar(description)}")
    if group_members:
        out.append("    members:")
        out.extend(f"      - {email}" for email in sorted(set(group_members)))
    else:
        out.append("    members: []")
    out.append(f"    groups: [{', '.join(nested)}]")

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "identity", "directory.yaml")
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(people)} people, {len(groups)} groups -> {path}")

# ---------------------------------------------------------------------------------------
# slack.json: the emulator seed.
#
# SEED DRIFT: live Slack differs from what the config repository asks for, as real orgs do:
# - joiners: four active people in the IdP have no Slack account yet;
# - leavers: two suspended people still have active accounts (missed deprovisions) and
#   are still in their usergroups; the other suspended people are already deactivated;
# - a ghost account: an active account whose person the IdP does not know at all;
# - a manual add: a marketing person was added to @backend by hand;
# - a mover: a mobile engineer is still in @frontend and not yet in @mobile, and their
#   Slack profile still has their frontend title and manager;
# - a hand-edited description on @sales;
# - a missing usergroup (@data) and a missing channel (#eng-announce);
# - a stranger in #eng-oncall, which removes unlisted people;
# - a few people missing from #incidents;
# - a guest, a bot, an unmanaged usergroup (@design-crit) and unmanaged channels.
# The usergroup mappings below mirror mappings/*.yaml.
# ---------------------------------------------------------------------------------------
import json

MAIN, SUPPORT = "T0000MAIN", "T0000SUPP"
MAPPED_USERGROUPS = [
    # handle, name, description, workspaces, groups, exclude, users, channels
    ("eng", "Engineering", "Everyone who ships code", [MAIN], ["engineering"], ["contractors"], [], ["eng", "eng-announce"]),
    ("eng-contractors", "Engineering contractors", "Contract engineers, for access reviews", [MAIN], ["contractors"], ["marketing", "support-tier1"], [], ["eng"]),
    ("platform", "Platform", "Platform engineering", [MAIN], ["eng-platform"], [], [], ["eng"]),
    ("backend", "Backend", "Backend engineering", [MAIN], ["eng-backend"], [], [], ["eng"]),
    ("frontend", "Frontend", "Web frontend engineering", [MAIN], ["eng-frontend"], [], [], ["eng"]),
    ("mobile", "Mobile", "iOS and Android", [MAIN], ["eng-mobile"], [], [], []),
    ("data", "Data", "Data engineering and analytics", [MAIN], ["data"], [], [], []),
    ("sre", "SRE", "Site reliability engineering", [MAIN, SUPPORT], ["sre"], [], [], ["incidents"]),
    ("oncall", "On-call", "Whoever carries the pager this week", [MAIN, SUPPORT], ["oncall"], ["contractors"], [], ["eng-oncall", "incidents"]),
    ("security", "Security", "Security engineering and incident response", [MAIN, SUPPORT], ["security"], [], [], ["security-alerts", "incidents"]),
    ("sales", "Sales", "All of sales", [MAIN], ["sales"], [], [], ["sales-deals"]),
    ("sales-emea", "Sales EMEA", "", [MAIN], ["sales-emea"], [], [], []),
    ("sales-amer", "Sales Americas", "", [MAIN], ["sales-amer"], [], [], []),
    ("marketing", "Marketing", "", [MAIN], ["marketing"], ["contractors"], [], []),
    ("support", "Support", "Customer support, both tiers", [MAIN, SUPPORT], ["support"], [], [], ["support-escalations"]),
    ("support-tier2", "Support tier 2", "Escalation engineers", [SUPPORT], ["support-tier2"], [], ["ada.clarke@acme.example"], ["support-tier2"]),
    ("leadership", "Leadership", "Executive team", [MAIN], ["leadership"], [], [], ["leadership"]),
    ("managers", "People managers", "Everyone with direct reports", [MAIN], ["managers"], [], [], ["managers"]),
    ("people-ops", "People Operations", "", [MAIN], ["people-ops"], [], [], ["it-helpdesk"]),
    ("it", "IT", "Corporate IT and the Slack admins", [MAIN, SUPPORT], ["it"], [], [], ["it-helpdesk"]),
    ("finance", "Finance", "", [MAIN], ["finance"], [], [], []),
]
MAPPED_CHANNELS = [
    # name, workspace, private, groups, users
    ("eng-announce", MAIN, False, ["engineering"], []),
    ("eng-oncall", MAIN, True, ["oncall", "sre"], []),
    ("incidents", MAIN, False, ["sre", "security"], ["breakglass@acme.example"]),
    ("security-alerts", MAIN, True, ["security"], []),
    ("sales-deals", MAIN, True, ["sales", "finance"], []),
    ("support-escalations", SUPPORT, False, ["support", "sre"], []),
    ("support-tier2", SUPPORT, True, ["support-tier2"], []),
    ("leadership", MAIN, True, ["leadership"], []),
    ("managers", MAIN, True, ["managers"], []),
    ("it-helpdesk", MAIN, False, ["it"], []),
]

by_email = {p["email"]: p for p in people}
group_map = {name: (set(m), list(g)) for name, _, m, g in groups}


def closure(name, seen=None):
    seen = set() if seen is None else seen
    if name in seen or name not in group_map:
        return set()
    seen.add(name)
    direct, nested = group_map[name]
    result = set(direct)
    for child in nested:
        result |= closure(child, seen)
    return result


def selected(groups_, exclude, users):
    chosen = set(users)
    for g in groups_:
        chosen |= closure(g)
    for g in exclude:
        chosen -= closure(g)
    return {e for e in chosen if by_email[e]["status"] == "active"}


srng = random.Random(7)
active_people = sorted(p["email"] for p in people if p["status"] == "active")
suspended = sorted(p["email"] for p in people if p["status"] == "suspended")
it_admins_emails = {p["email"] for p in it_admins} | {breakglass["email"], ceo["email"]}
joiners = set(srng.sample([e for e in active_people if e not in it_admins_emails], 4))
missed_leavers = suspended[:2]

users = []
ids = {}


def add_user(email, given, family, title, department, active=True, **flags):
    uid = f"W{len(users) + 1:08d}"
    ids[email] = uid
    user_name = email.split("@")[0].replace("'", "_")[:21]
    user = {"id": uid, "user_name": user_name, "email": email, "given_name": given,
            "family_name": family, "display_name": "", "title": title,
            "department": department, "active": active, "workspaces": [MAIN],
            "created": 1735689600 + len(users) * 3600, "updated": 1735689600 + len(users) * 3600}
    user.update(flags)
    users.append(user)
    return user


support_side = closure("support") | closure("sre") | closure("security") | closure("it") | closure("oncall")
for p in sorted(people, key=lambda p: p["email"]):
    email = p["email"]
    if email in joiners:
        continue
    active = p["status"] == "active" or email in missed_leavers
    flags = {}
    if p is ceo:
        flags = {"primary_owner": True, "owner": True, "admin": True}
    elif email in it_admins_emails:
        flags = {"admin": True}
    user = add_user(email, p["given_name"], p["family_name"], p["title"], p["department"],
                    active=active, **flags)
    if email in support_side:
        user["workspaces"].append(SUPPORT)
ghost = add_user("old.contractor@contractors.acme.example", "Old", "Contractor",
                 "Contract Backend Engineer", "Engineering")
guest = add_user("pat.partner@agency.example", "Pat", "Partner", "Agency Partner", "",
                 guest="multi")
guest["workspaces"] = [SUPPORT]
deploybot = add_user("deploybot@acme.example", "Deploy", "Bot", "", "", bot=True)
service = add_user("slack-gitops@acme.example", "slack-gitops", "service account",
                   "Identity automation", "IT", admin=True)
service["workspaces"] = [MAIN, SUPPORT]
gitops_bot = add_user("slack-gitops-bot@acme.example", "slack-gitops", "bot", "", "", bot=True)
gitops_bot["workspaces"] = [MAIN, SUPPORT]
# SCIM has synced each person's manager (Slack keeps the manager's user id).
for user in users:
    manager = by_email.get(user["email"], {}).get("manager")
    if manager in ids:
        user["manager"] = ids[manager]

slack_ids = lambda emails: sorted(ids[e] for e in emails if e in ids and e not in joiners)
channels = []


def add_channel(name, workspace, private=False, members=(), general=False, topic=""):
    cid = f"C{len(channels) + 1:08d}"
    channel = {"id": cid, "workspace": workspace, "name": name, "private": private,
               "archived": False, "general": general, "topic": topic, "purpose": "",
               "members": sorted(set(members)), "creator": ids["slack-gitops@acme.example"],
               "created": 1735689600}
    channels.append(channel)
    return channel


everyone_main = [u["id"] for u in users if MAIN in u["workspaces"] and u["active"] and not u.get("bot")]
everyone_support = [u["id"] for u in users if SUPPORT in u["workspaces"] and u["active"] and not u.get("bot")]
add_channel("general", MAIN, members=everyone_main, general=True)
add_channel("general", SUPPORT, members=everyone_support, general=True)
add_channel("random", MAIN, members=everyone_main[::3])
eng_people = slack_ids(selected(["engineering"], [], []))
add_channel("eng", MAIN, members=eng_people + [ids[ghost["email"]]])
channel_ids = {}
for name, workspace, private, gs, us in MAPPED_CHANNELS:
    if name == "eng-announce":
        continue  # missing: the plan creates it
    members = set(slack_ids(selected(gs, [], us)))
    for handle, _, _, wss, ug, ex, uu, chs in MAPPED_USERGROUPS:
        if name in chs and workspace in wss:
            members |= set(slack_ids(selected(ug, ex, uu)))
    if workspace == SUPPORT:
        members &= set(everyone_support)
    if private:
        members.add(ids["slack-gitops-bot@acme.example"])
    if name == "incidents":
        members -= set(sorted(members)[:3])
    if name == "eng-oncall":
        members.add(ids[by_email[sorted(closure("marketing"))[0]]["email"]])
    if name == "support-escalations":
        members.add(ids[guest["email"]])
    channel_ids[(name, workspace)] = add_channel(name, workspace, private, members)["id"]
channel_ids[("eng", MAIN)] = channels[3]["id"]

usergroups = []
marketing_person = ids[sorted(selected(["marketing"], ["contractors"], []))[0]]
mobile_person = ids[sorted(selected(["eng-mobile"], [], []))[0]]
# The mover's Slack profile still has their frontend title and manager.
mover = next(u for u in users if u["id"] == mobile_person)
mover["title"] = next(t for team, _, t, _ in TEAMS if team == "eng-frontend")
mover["manager"] = ids[next(m["email"] for m in managers if m["email"] in closure("eng-frontend"))]
for handle, name, description, workspaces, gs, ex, us, chs in MAPPED_USERGROUPS:
    if handle == "data":
        continue  # missing: the plan creates it
    for workspace in workspaces:
        members = set(slack_ids(selected(gs, ex, us)))
        if workspace == SUPPORT:
            members &= set(everyone_support)
        if handle == "backend":
            members.add(marketing_person)            # added by hand
        if handle == "frontend":
            members.add(mobile_person)               # a mover, not yet moved
        if handle == "mobile":
            members.discard(mobile_person)
        # Missed deprovisions are still in the usergroups their IdP groups mapped to.
        members |= set(slack_ids([e for e in missed_leavers
                                  if any(e in closure(g) for g in gs) and workspace == MAIN]))
        sid = f"S{len(usergroups) + 1:08d}"
        usergroups.append({
            "id": sid, "workspace": workspace, "handle": handle, "name": name,
            "description": "Sales team (edited by hand)" if handle == "sales" else description,
            "users": sorted(members),
            "channels": [channel_ids[(c, workspace)] for c in chs if (c, workspace) in channel_ids],
            "disabled": False, "created": 1735689600, "updated": 1735689600,
            "created_by": ids["slack-gitops@acme.example"],
            "updated_by": ids["slack-gitops@acme.example"]})
usergroups.append({
    "id": f"S{len(usergroups) + 1:08d}", "workspace": MAIN, "handle": "design-crit",
    "name": "Design critique", "description": "Weekly design critique (made by hand)",
    "users": slack_ids(sorted(selected(["design"], [], []))[:5]), "channels": [],
    "disabled": False, "created": 1735689600, "updated": 1735689600,
    "created_by": ids[sorted(selected(["design"], [], []))[0]],
    "updated_by": ids[sorted(selected(["design"], [], []))[0]]})

idp_groups = []
for name in ["everyone", "engineering", "contractors", "support"]:
    idp_groups.append({"id": f"S1{len(idp_groups) + 1:07d}", "name": name,
                       "members": slack_ids(selected([name], [], [])),
                       "workspaces": [MAIN] if name != "support" else [MAIN, SUPPORT],
                       "channels": [], "external_id": name, "created": 1735689600})

apps = [
    {"id": "A0000JIRA", "name": "Jira Cloud", "workspace": MAIN,
     "installed_by": ids[sorted(selected(["eng-platform"], [], []))[0]],
     "scopes": ["chat:write", "links:read"], "date": 1738368000},
    {"id": "A0000DEPLOY", "name": "Deploy notifier", "workspace": MAIN,
     "installed_by": ids[missed_leavers[0]], "scopes": ["chat:write", "incoming-webhook"],
     "date": 1740787200},
    {"id": "A0000DRIVE", "name": "Google Drive", "workspace": MAIN,
     "installed_by": ids[ghost["email"]], "scopes": ["links:read", "files:read"],
     "date": 1743465600},
]
ADMIN_SCOPES = ["admin", "users:read", "users:read.email", "usergroups:read", "usergroups:write",
                "channels:read", "groups:read", "channels:manage", "groups:write",
                "channels:write.invites", "groups:write.invites", "admin.users:read",
                "admin.users:write", "admin.usergroups:read", "admin.usergroups:write",
                "admin.teams:write", "admin.conversations:write"]
tokens = [
    {"token": "xoxp-acme-admin", "kind": "user", "user": ids["slack-gitops@acme.example"],
     "app": "A0000GITOPS", "org_level": True, "scopes": ADMIN_SCOPES},
    {"token": "xoxb-acme-bot", "kind": "bot", "user": ids["slack-gitops-bot@acme.example"],
     "app": "A0000GITOPS", "org_level": True,
     "scopes": ["users:read", "users:read.email", "usergroups:read", "usergroups:write",
                "channels:read", "groups:read", "channels:manage", "groups:write",
                "channels:write.invites", "groups:write.invites", "chat:write"]},
    {"token": "xoxp-acme-readonly", "kind": "user", "user": ids["slack-gitops@acme.example"],
     "app": "A0000AUDIT", "org_level": True,
     "scopes": ["users:read", "usergroups:read", "channels:read"]},
    # An org owner's token for the Audit Logs (SLACK_AUDIT_TOKEN).
    {"token": "xoxp-acme-audit", "kind": "user", "user": ids["slack-gitops@acme.example"],
     "app": "A0000GITOPS", "org_level": True, "scopes": ["auditlogs:read"]},
    # The app-level token for Socket Mode (SLACK_APP_TOKEN).
    {"token": "xapp-acme-socket", "kind": "app", "user": ids["slack-gitops-bot@acme.example"],
     "app": "A0000GITOPS", "org_level": True, "scopes": ["connections:write"]},
]
seed = {
    "enterprise": {"id": "E0000ACME", "name": "Acme Corp"},
    "workspaces": [{"id": MAIN, "name": "Acme", "domain": "acme"},
                   {"id": SUPPORT, "name": "Acme Support", "domain": "acme-support"}],
    "users": users, "usergroups": usergroups, "channels": channels, "idp_groups": idp_groups,
    "apps": apps, "tokens": tokens, "next_id": 1,
}
seed_path = os.path.join(here, "slack.json")
with open(seed_path, "w") as f:
    json.dump(seed, f, indent=1, sort_keys=False)
    f.write("\n")
print(f"{len(users)} accounts, {len(usergroups)} usergroups, {len(channels)} channels -> {seed_path}")
