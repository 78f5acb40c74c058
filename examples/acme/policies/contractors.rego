# Contractors never read private channels: no private channel may select anyone in the
# `contractors` IdP group (nested groups included), by its own members or through a
# usergroup that names it as a default channel.
package acme.contractors

# Each IdP group's nested groups, for graph.reachable.
edges[name] := {child | some child in group.groups} if {
	some name, group in input.identity.groups
}

# The people of a group, nested groups included.
people_of(name) := {email |
	some g in graph.reachable(edges, {name})
	some email in input.identity.groups[g].members
}

contractors := people_of("contractors")

excluded(spec, email) if {
	some g in spec.exclude
	email in people_of(g)
}

excluded(spec, email) if email in spec.exclude_users

# Whom a members spec selects.
selected(spec) := {email |
	some g in spec.groups
	some email in people_of(g)
	not excluded(spec, email)
} | {email | some email in spec.users}

deny contains {
	"id": "acme.contractors_private_channels",
	"msg": sprintf("private channel #%s selects %d contractor(s), such as %s", [c.name, count(found), min(found)]),
	"file": c.file,
	"line": c.line,
} if {
	some c in input.config.channels
	c.private
	found := selected(c.members) & contractors
	count(found) > 0
}

deny contains {
	"id": "acme.contractors_private_channels",
	"msg": sprintf("usergroup @%s puts %d contractor(s) into private channel #%s, such as %s", [u.handle, count(found), c.name, min(found)]),
	"file": u.file,
	"line": u.line,
} if {
	some u in input.config.usergroups
	some name in u.channels
	some c in input.config.channels
	c.name == name
	c.private
	found := selected(u.members) & contractors
	count(found) > 0
}
