package acme.contractors_test

import data.acme.contractors

identity := {
	"people": {},
	"groups": {
		"contractors": {"members": ["casey@acme.example"], "groups": []},
		"engineering": {"members": ["erin@acme.example"], "groups": ["vendors"]},
		"vendors": {"members": [], "groups": ["contractors"]},
		"security": {"members": ["sam@acme.example"], "groups": []},
	},
}

spec(groups, exclude) := {"groups": groups, "users": [], "exclude": exclude, "exclude_users": []}

channel(private, members) := {"name": "secret", "workspace": "main", "private": private, "members": members, "file": "mappings/x.yaml", "line": 7}

config(channels, usergroups) := {"channels": channels, "usergroups": usergroups}

test_a_private_channel_selecting_nested_contractors_is_denied if {
	some denial in contractors.deny with input as {"config": config([channel(true, spec(["engineering"], []))], []), "identity": identity}
	denial.id == "acme.contractors_private_channels"
	denial.file == "mappings/x.yaml"
	denial.line == 7
}

test_excluding_contractors_passes if {
	count(contractors.deny) == 0 with input as {"config": config([channel(true, spec(["engineering"], ["contractors"]))], []), "identity": identity}
}

test_a_public_channel_passes if {
	count(contractors.deny) == 0 with input as {"config": config([channel(false, spec(["engineering"], []))], []), "identity": identity}
}

test_a_usergroup_naming_a_private_channel_is_denied if {
	usergroup := {"handle": "eng", "members": spec(["engineering"], []), "channels": ["secret"], "file": "mappings/y.yaml", "line": 3}
	some denial in contractors.deny with input as {"config": config([channel(true, spec(["security"], []))], [usergroup]), "identity": identity}
	denial.file == "mappings/y.yaml"
}

test_without_the_identity_nothing_is_denied if {
	count(contractors.deny) == 0 with input as {"config": config([channel(true, spec(["engineering"], []))], []), "identity": null}
}
