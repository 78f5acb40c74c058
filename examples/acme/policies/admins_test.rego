package acme.admins_test

import data.acme.admins

identity := {"people": {}, "groups": {"it-admins": {"members": ["ana@acme.example", "ben@acme.example"], "groups": []}}}

deactivate(email) := {"action": "deactivate_user", "removal": {"person": {"email": email}}}

test_deactivating_an_admin_is_denied_for_two_it_admins if {
	some denial in admins.deny with input as {
		"plan": {"plan": {"actions": [deactivate("boss@acme.example")]}},
		"live": {"admins": ["boss@acme.example"], "owners": []},
		"identity": identity,
	}
	denial.id == "acme.admin_deactivation"
	denial.approvals == 2
	denial.overridable_by == ["ana@acme.example", "ben@acme.example"]
}

test_deactivating_anyone_else_passes if {
	count(admins.deny) == 0 with input as {
		"plan": {"plan": {"actions": [deactivate("dev@acme.example")]}},
		"live": {"admins": ["boss@acme.example"], "owners": []},
		"identity": identity,
	}
}

test_validate_has_no_plan_and_passes if {
	count(admins.deny) == 0 with input as {"plan": null, "live": null, "identity": identity}
}
