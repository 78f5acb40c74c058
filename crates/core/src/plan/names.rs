//! The names an action goes by, side by side. Each grammar is persisted, so none may
//! change: the journal's keys (an interrupted run finds what it did by them), the
//! destructive lines an approval's hash covers, and the change lines a pull request's
//! plans are compared by.

use super::action::{Action, FieldChange};

impl Action {
    /// Its key in the journal and the reports (`deactivate-user ada@acme.example`,
    /// `set-usergroup-members T0000MAIN/@eng`): how an interrupted run finds what it did.
    pub fn journal_key(&self) -> String {
        match self {
            Action::CreateUser { person, .. } => format!("create-user {}", person.email),
            Action::ReactivateUser { person } => format!("reactivate-user {}", person.email),
            Action::UpdateProfile { person, fields } => {
                let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                format!("update-profile {} {}", person.email, names.join(","))
            }
            Action::AssignWorkspace { person, workspace } => {
                format!("assign-workspace {workspace} {}", person.email)
            }
            Action::CreateUsergroup {
                workspace, handle, ..
            } => format!("create-usergroup {workspace}/@{handle}"),
            Action::UpdateUsergroup {
                workspace, handle, ..
            } => format!("update-usergroup {workspace}/@{handle}"),
            Action::EnableUsergroup {
                workspace, handle, ..
            } => format!("enable-usergroup {workspace}/@{handle}"),
            Action::DisableUsergroup {
                workspace, handle, ..
            } => format!("disable-usergroup {workspace}/@{handle}"),
            Action::SetUsergroupMembers {
                workspace, handle, ..
            } => format!("set-usergroup-members {workspace}/@{handle}"),
            Action::CreateChannel {
                workspace, name, ..
            } => format!("create-channel {workspace}/#{name}"),
            Action::InviteToChannel {
                workspace,
                channel,
                people,
                ..
            } => {
                let first = people.first().map_or("", |p| p.person.email.as_str());
                format!(
                    "invite {workspace}/#{channel} {first} +{}",
                    people.len().saturating_sub(1)
                )
            }
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => format!("kick {workspace}/#{channel} {}", removal.person.email),
            Action::DeactivateUser { removal, .. } => {
                format!("deactivate-user {}", removal.person.email)
            }
            Action::ResetSessions { person, .. } => format!("reset-sessions {}", person.email),
            Action::SetRole {
                person,
                workspace,
                role,
            } => format!("set-role {workspace} {} {}", person.email, role.as_str()),
        }
    }

    /// Its destructive lines (`deactivate ada@acme.example`,
    /// `remove-from-usergroup T0000MAIN/eng ada@acme.example`): what an approval's hash
    /// covers. Empty for an action that removes nobody.
    pub fn destructive_lines(&self) -> Vec<String> {
        let mut set = Vec::new();
        match self {
            Action::DeactivateUser { removal, .. } => {
                set.push(format!("deactivate {}", removal.person.email));
            }
            Action::SetUsergroupMembers {
                workspace,
                handle,
                removes,
                ..
            } => {
                for removal in removes {
                    set.push(format!(
                        "remove-from-usergroup {workspace}/{handle} {}",
                        removal.person.email
                    ));
                }
            }
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => {
                set.push(format!(
                    "remove-from-channel {workspace}/#{channel} {}",
                    removal.person.email
                ));
            }
            _ => {}
        }
        set
    }

    /// Its change lines, added to `lines` (`create ada@acme.example`, one line per member
    /// added or removed): what two plans of a pull request are compared by.
    ///
    /// One piece: one arm per variant, exhaustive, beside `journal_key` and
    /// `destructive_lines` so the three grammars are read together.
    pub fn change_lines(&self, lines: &mut Vec<String>) {
        match self {
            Action::CreateUser { person, .. } => lines.push(format!("create {}", person.email)),
            Action::ReactivateUser { person } => lines.push(format!("reactivate {}", person.email)),
            Action::AssignWorkspace { person, workspace } => {
                lines.push(format!("assign {} to {workspace}", person.email))
            }
            Action::UpdateProfile { person, fields } => {
                lines.push(format!("update {} {}", person.email, fields_words(fields)))
            }
            Action::CreateUsergroup {
                workspace, handle, ..
            } => lines.push(format!("create usergroup {workspace}/@{handle}")),
            Action::UpdateUsergroup {
                workspace,
                handle,
                fields,
                ..
            } => lines.push(format!(
                "update usergroup {workspace}/@{handle} {}",
                fields_words(fields)
            )),
            Action::EnableUsergroup {
                workspace, handle, ..
            } => lines.push(format!("enable usergroup {workspace}/@{handle}")),
            Action::DisableUsergroup {
                workspace, handle, ..
            } => lines.push(format!("disable usergroup {workspace}/@{handle}")),
            Action::SetUsergroupMembers {
                workspace,
                handle,
                adds,
                removes,
                ..
            } => {
                for add in adds {
                    lines.push(format!("add {} to {workspace}/@{handle}", add.person.email));
                }
                for removal in removes {
                    lines.push(format!(
                        "remove {} from {workspace}/@{handle}",
                        removal.person.email
                    ));
                }
            }
            Action::CreateChannel {
                workspace, name, ..
            } => lines.push(format!("create channel {workspace}/#{name}")),
            Action::InviteToChannel {
                workspace,
                channel,
                people,
                ..
            } => {
                for add in people {
                    lines.push(format!(
                        "invite {} to {workspace}/#{channel}",
                        add.person.email
                    ));
                }
            }
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => lines.push(format!(
                "remove {} from {workspace}/#{channel}",
                removal.person.email
            )),
            Action::DeactivateUser { removal, .. } => {
                lines.push(format!("deactivate {}", removal.person.email))
            }
            Action::ResetSessions { person, .. } => {
                lines.push(format!("sign out {}", person.email))
            }
            Action::SetRole {
                person,
                workspace,
                role,
            } => lines.push(format!(
                "make {} {} in {workspace}",
                person.email,
                role.as_str()
            )),
        }
    }
}

fn fields_words<F: std::fmt::Display>(fields: &[FieldChange<F>]) -> String {
    let words: Vec<String> = fields
        .iter()
        .map(|f| format!("{}={:?}", f.field, f.to))
        .collect();
    words.join(" ")
}
