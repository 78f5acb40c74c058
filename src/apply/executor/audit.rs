//! What a successful action adds to the audit trail: who gained or lost which access,
//! when, by which rule, at which commit, under which approval; and which step of a
//! leaver's offboarding it was. Pure: the action in, rows out.

use crate::plan::action::{Action, Person, SignOut};
use crate::store::{AuditEvent, LeaverStep};

/// The run's side of every event.
pub(super) struct Trail<'a> {
    pub at: i64,
    /// Slack ids by email, people created in this run included.
    pub users: &'a std::collections::HashMap<String, String>,
    pub commit: Option<&'a str>,
    pub approval: Option<&'a str>,
}

impl Trail<'_> {
    fn event(
        &self,
        person: &Person,
        entitlement: String,
        change: &str,
        rule: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            at: self.at,
            email: person.email.clone(),
            user_id: person
                .user_id
                .live()
                .map(str::to_string)
                .or_else(|| self.users.get(&person.email).cloned()),
            entitlement,
            change: change.to_string(),
            rule,
            commit: self.commit.map(str::to_string),
            approval: self.approval.map(str::to_string),
        }
    }
}

/// The step of a leaver's offboarding an action is.
pub(super) fn leaver_step(action: &Action) -> Option<(&str, LeaverStep)> {
    match action {
        Action::DeactivateUser { removal, .. } => {
            Some((removal.person.email.as_str(), LeaverStep::Deactivated))
        }
        Action::ResetSessions { person, .. } => {
            Some((person.email.as_str(), LeaverStep::SignedOut))
        }
        _ => None,
    }
}

/// The audit events of a successful action.
///
/// One piece: one arm per [`Action`] variant, exhaustive, so every write leaves its
/// evidence; each arm builds its events and nothing else.
pub(super) fn events(action: &Action, trail: &Trail) -> Vec<AuditEvent> {
    let first_rule =
        |grants: &[crate::plan::action::Grant]| grants.first().map(|g| g.rule.to_string());
    match action {
        Action::CreateUser { person, grant, .. } => vec![trail.event(
            person,
            "account".into(),
            "granted",
            Some(grant.rule.to_string()),
        )],
        Action::ReactivateUser { person } => {
            vec![trail.event(person, "account".into(), "reactivated", None)]
        }
        Action::AssignWorkspace { person, workspace } => {
            vec![trail.event(person, format!("workspace {workspace}"), "granted", None)]
        }
        Action::SetUsergroupMembers {
            workspace,
            handle,
            adds,
            removes,
            rule,
            ..
        } => {
            let target = format!("{workspace}/@{handle}");
            let granted = adds.iter().map(|add| {
                trail.event(
                    &add.person,
                    target.clone(),
                    "granted",
                    first_rule(&add.grants),
                )
            });
            let removed = removes.iter().map(|removal| {
                trail.event(
                    &removal.person,
                    target.clone(),
                    "removed",
                    Some(rule.to_string()),
                )
            });
            granted.chain(removed).collect()
        }
        Action::InviteToChannel {
            workspace,
            channel,
            people,
            ..
        } => people
            .iter()
            .map(|add| {
                let target = format!("{workspace}/#{channel}");
                trail.event(&add.person, target, "granted", first_rule(&add.grants))
            })
            .collect(),
        Action::KickFromChannel {
            workspace,
            channel,
            removal,
            ..
        } => vec![trail.event(
            &removal.person,
            format!("{workspace}/#{channel}"),
            "removed",
            None,
        )],
        Action::DeactivateUser { removal, .. } => {
            vec![trail.event(&removal.person, "account".into(), "deactivated", None)]
        }
        Action::SetRole {
            person,
            workspace,
            role,
        } => vec![trail.event(
            person,
            format!("{} role in {workspace}", role.as_str()),
            "granted",
            None,
        )],
        Action::ResetSessions { person, by } => {
            let how = match by {
                SignOut::SessionReset => "sessions",
                SignOut::Deactivation => "sessions (ended by the deactivation)",
            };
            vec![trail.event(person, how.into(), "signed-out", None)]
        }
        Action::UpdateProfile { .. }
        | Action::CreateUsergroup { .. }
        | Action::UpdateUsergroup { .. }
        | Action::EnableUsergroup { .. }
        | Action::DisableUsergroup { .. }
        | Action::CreateChannel { .. } => Vec::new(),
    }
}
