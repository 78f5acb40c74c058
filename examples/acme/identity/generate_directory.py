#!/usr/bin/env python3
"""Generates identity/directory.yaml for the Acme example: about 300 people of a
fictional company, with nested IdP groups, contractors and a few suspended people.

Deterministic (fixed seed): running it again reproduces the committed file byte for
byte. Run from anywhere: python3 examples/acme/identity/generate_directory.py
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
       "# Generated by generate_directory.py; edit the script, not this file.",
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

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "directory.yaml")
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(people)} people, {len(groups)} groups -> {path}")
