# Deactivating a Slack admin needs two approvers from `it-admins`: the plan is refused
# until an approval of it, naming this policy's id in `overrides`, is approved by two of
# them.
package acme.admins

it_admins := [email | some email in input.identity.groups["it-admins"].members]

deny contains {
	"id": "acme.admin_deactivation",
	"msg": sprintf("deactivating %s, a Slack admin, needs two approvers from it-admins", [email]),
	"overridable_by": it_admins,
	"approvals": 2,
} if {
	some action in input.plan.plan.actions
	action.action == "deactivate_user"
	email := action.removal.person.email
	email in input.live.admins
}
