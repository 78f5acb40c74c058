//! The ordered changes that take live Slack to the desired state, each with its reason.
//!
//! **Order** (the executor runs actions in this order, and it matters):
//! 1. accounts come into being first (creations, reactivations), then workspace
//!    assignments, because memberships need an active account in the workspace;
//! 2. usergroups and channels are created, updated and re-enabled;
//! 3. memberships are set (usergroup full lists, channel invites), then kicks;
//! 4. usergroups that would be empty are disabled (Slack cannot empty one);
//! 5. leavers are deactivated only after their memberships are removed, and their
//!    sessions are revoked after deactivation.
//!
//! **Ownership**: only usergroups and channels named in the config are touched; everything
//! else is listed as unmanaged. Guests and bots are never deactivated by this tool.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::desired::{Desired, RuleRef};
use crate::config::types::Provisioning;
use crate::model::directory::{Directory, PersonStatus};
use crate::model::live::{Live, LiveUser};

/// Why a person's account should go, or why a membership differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// Active in Slack, unknown to the identity provider.
    GhostAccount,
    /// Suspended or deprovisioned in the identity provider, still active in Slack.
    MissedDeprovision,
    /// Known to the identity provider but outside `users.scope`.
    OutOfScope,
    /// In a managed usergroup or channel that the rules do not select: added by hand in
    /// Slack, or the mapping changed.
    NotSelected,
}

/// One person affected by an action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Person {
    pub email: String,
    /// The Slack user id, when the account exists.
    pub user_id: Option<String>,
}

/// One change to Slack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateUser {
        person: Person,
        rule: String,
    },
    ReactivateUser {
        person: Person,
    },
    AssignWorkspace {
        person: Person,
        workspace: String,
    },
    /// Profile fields the identity provider says differ (names, title, department).
    UpdateProfile {
        person: Person,
        fields: Vec<FieldChange>,
    },
    CreateUsergroup {
        workspace: String,
        handle: String,
        name: String,
        description: String,
        rule: RuleRef,
    },
    UpdateUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
        fields: Vec<FieldChange>,
        rule: RuleRef,
    },
    EnableUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
    },
    SetUsergroupMembers {
        workspace: String,
        usergroup_id: Option<String>,
        handle: String,
        /// The full list sent to Slack (`usergroups.users.update` replaces it whole).
        members: Vec<Person>,
        adds: Vec<Person>,
        removes: Vec<(Person, Drift)>,
        rule: RuleRef,
    },
    CreateChannel {
        workspace: String,
        name: String,
        private: bool,
        rule: Option<RuleRef>,
    },
    InviteToChannel {
        workspace: String,
        channel: String,
        channel_id: Option<String>,
        people: Vec<Person>,
    },
    KickFromChannel {
        workspace: String,
        channel: String,
        channel_id: String,
        person: Person,
        drift: Drift,
    },
    DisableUsergroup {
        workspace: String,
        usergroup_id: String,
        handle: String,
    },
    DeactivateUser {
        person: Person,
        drift: Drift,
    },
    ResetSessions {
        person: Person,
    },
}

/// A usergroup field that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// The plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// People SSO will create at first login (`just-in-time`); their memberships wait.
    pub awaiting_first_login: Vec<String>,
    /// Leavers that are protected: reported, never deactivated.
    pub blocked_by_protection: Vec<(Person, Drift)>,
    /// Usergroups and channels in Slack that the config does not name (never changed).
    pub unmanaged_usergroups: Vec<(String, String)>,
    pub unmanaged_channels: Vec<(String, String)>,
}

/// Live accounts by lowercase email.
fn accounts_by_email(live: &Live) -> BTreeMap<&str, &LiveUser> {
    live.users.iter().map(|u| (u.email.as_str(), u)).collect()
}

/// Computes the plan. Pure and deterministic.
pub fn plan(desired: &Desired, directory: &Directory, live: &Live) -> Plan {
    let by_email = accounts_by_email(live);
    let by_id: BTreeMap<&str, &LiveUser> = live.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let person = |email: &str| Person {
        email: email.to_string(),
        user_id: by_email.get(email).map(|u| u.id.clone()),
    };
    let known: BTreeMap<&str, PersonStatus> = directory
        .people
        .iter()
        .map(|p| (p.email.as_str(), p.status))
        .collect();
    // Why someone in Slack is not selected: the strongest reason wins.
    let drift_of = |email: &str| match known.get(email) {
        None => Drift::GhostAccount,
        Some(PersonStatus::Suspended) => Drift::MissedDeprovision,
        Some(PersonStatus::Active) if !desired.accounts.contains(email) => Drift::OutOfScope,
        Some(PersonStatus::Active) => Drift::NotSelected,
    };
    let mut plan = Plan::default();
    let mut creations = Vec::new();
    let mut assignments = Vec::new();
    let mut structure = Vec::new();
    let mut memberships = Vec::new();
    let mut kicks = Vec::new();
    let mut disables = Vec::new();
    let mut leavers = Vec::new();

    // 1. Accounts.
    let jit = desired.provisioning == Provisioning::JustInTime;
    let mut usable: BTreeSet<String> = BTreeSet::new();
    for email in &desired.accounts {
        match by_email.get(email.as_str()) {
            Some(user) if user.active => {
                usable.insert(email.clone());
            }
            Some(_) => {
                creations.push(Action::ReactivateUser {
                    person: person(email),
                });
                usable.insert(email.clone());
            }
            None if jit => plan.awaiting_first_login.push(email.clone()),
            None => {
                creations.push(Action::CreateUser {
                    person: person(email),
                    rule: "users.scope".into(),
                });
                usable.insert(email.clone());
            }
        }
    }
    // Profiles follow the identity provider for the fields it holds.
    let people: BTreeMap<&str, &crate::model::directory::Person> = directory
        .people
        .iter()
        .map(|p| (p.email.as_str(), p))
        .collect();
    for email in &desired.accounts {
        let (Some(user), Some(source)) = (by_email.get(email.as_str()), people.get(email.as_str()))
        else {
            continue;
        };
        let pairs: [(&'static str, &str, &str); 4] = [
            ("given_name", &user.given_name, &source.given_name),
            ("family_name", &user.family_name, &source.family_name),
            ("title", &user.title, &source.title),
            ("department", &user.department, &source.department),
        ];
        let fields: Vec<FieldChange> = pairs
            .into_iter()
            .filter(|(_, from, to)| from != to && !to.is_empty())
            .map(|(field, from, to)| FieldChange {
                field,
                from: from.to_string(),
                to: to.to_string(),
            })
            .collect();
        if !fields.is_empty() {
            assignments.push(Action::UpdateProfile {
                person: person(email),
                fields,
            });
        }
    }
    for (email, workspaces) in &desired.workspaces {
        if !usable.contains(email) {
            continue;
        }
        let have: BTreeSet<&str> = by_email
            .get(email.as_str())
            .map(|u| u.workspaces.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for workspace in workspaces.iter().filter(|w| !have.contains(w.as_str())) {
            assignments.push(Action::AssignWorkspace {
                person: person(email),
                workspace: workspace.clone(),
            });
        }
    }

    // 2-4. Usergroups.
    let mut managed_groups = BTreeSet::new();
    for group in &desired.usergroups {
        managed_groups.insert((group.workspace.clone(), group.handle.clone()));
        let members: BTreeSet<&String> = group
            .members
            .iter()
            .filter(|e| usable.contains(*e))
            .collect();
        let live_group = live
            .usergroups
            .iter()
            .find(|g| g.workspace == group.workspace && g.handle == group.handle);
        let current: BTreeSet<String> = live_group
            .map(|g| {
                g.members
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).map(|u| u.email.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let adds: Vec<Person> = members
            .iter()
            .filter(|e| !current.contains(**e))
            .map(|e| person(e))
            .collect();
        let removes: Vec<(Person, Drift)> = current
            .iter()
            .filter(|e| !group.members.contains(*e) && !desired.protected.contains(*e))
            .map(|e| (person(e), drift_of(e)))
            .collect();
        match live_group {
            None => structure.push(Action::CreateUsergroup {
                workspace: group.workspace.clone(),
                handle: group.handle.clone(),
                name: group.name.clone(),
                description: group.description.clone(),
                rule: group.rule.clone(),
            }),
            Some(live_group) => {
                let mut fields = Vec::new();
                if live_group.name != group.name {
                    fields.push(FieldChange {
                        field: "name",
                        from: live_group.name.clone(),
                        to: group.name.clone(),
                    });
                }
                if live_group.description != group.description {
                    fields.push(FieldChange {
                        field: "description",
                        from: live_group.description.clone(),
                        to: group.description.clone(),
                    });
                }
                if !fields.is_empty() {
                    structure.push(Action::UpdateUsergroup {
                        workspace: group.workspace.clone(),
                        usergroup_id: live_group.id.clone(),
                        handle: group.handle.clone(),
                        fields,
                        rule: group.rule.clone(),
                    });
                }
                if live_group.disabled && !members.is_empty() {
                    structure.push(Action::EnableUsergroup {
                        workspace: group.workspace.clone(),
                        usergroup_id: live_group.id.clone(),
                        handle: group.handle.clone(),
                    });
                }
            }
        }
        if members.is_empty() {
            if let Some(live_group) = live_group.filter(|g| !g.disabled) {
                disables.push(Action::DisableUsergroup {
                    workspace: group.workspace.clone(),
                    usergroup_id: live_group.id.clone(),
                    handle: group.handle.clone(),
                });
            }
        } else if !adds.is_empty() || !removes.is_empty() {
            // Protected people who are in the group stay in the full list.
            let mut full: BTreeSet<&String> = members.clone();
            full.extend(
                current
                    .iter()
                    .filter(|e| desired.protected.contains(*e) && usable.contains(*e)),
            );
            memberships.push(Action::SetUsergroupMembers {
                workspace: group.workspace.clone(),
                usergroup_id: live_group.map(|g| g.id.clone()),
                handle: group.handle.clone(),
                members: full.into_iter().map(|e| person(e)).collect(),
                adds,
                removes,
                rule: group.rule.clone(),
            });
        }
    }
    plan.unmanaged_usergroups = live
        .usergroups
        .iter()
        .filter(|g| !managed_groups.contains(&(g.workspace.clone(), g.handle.clone())))
        .map(|g| (g.workspace.clone(), g.handle.clone()))
        .collect();

    // Channels.
    let mut managed_channels = BTreeSet::new();
    for channel in &desired.channels {
        managed_channels.insert((channel.workspace.clone(), channel.name.clone()));
        let live_channel = live
            .channels
            .iter()
            .find(|c| c.workspace == channel.workspace && c.name == channel.name);
        if live_channel.is_none() {
            if channel.rule.is_none() {
                // A default channel the config does not declare must already exist; the
                // executor reports it rather than inventing its settings.
                continue;
            }
            structure.push(Action::CreateChannel {
                workspace: channel.workspace.clone(),
                name: channel.name.clone(),
                private: channel.private,
                rule: channel.rule.clone(),
            });
        }
        let current: BTreeSet<String> = live_channel
            .and_then(|c| c.members.as_ref())
            .map(|m| {
                m.iter()
                    .filter_map(|id| by_id.get(id.as_str()).map(|u| u.email.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<Person> = channel
            .members
            .keys()
            .filter(|e| usable.contains(*e) && !current.contains(*e))
            .map(|e| person(e))
            .collect();
        // conversations.invite takes at most 100 people.
        for batch in missing.chunks(100) {
            memberships.push(Action::InviteToChannel {
                workspace: channel.workspace.clone(),
                channel: channel.name.clone(),
                channel_id: live_channel.map(|c| c.id.clone()),
                people: batch.to_vec(),
            });
        }
        if let (true, Some(live_channel)) = (channel.remove_unlisted, live_channel) {
            for email in current
                .iter()
                .filter(|e| !channel.members.contains_key(*e) && !desired.protected.contains(*e))
            {
                let account = by_email[email.as_str()];
                if account.bot {
                    continue;
                }
                kicks.push(Action::KickFromChannel {
                    workspace: channel.workspace.clone(),
                    channel: channel.name.clone(),
                    channel_id: live_channel.id.clone(),
                    person: person(email),
                    drift: drift_of(email),
                });
            }
        }
    }
    plan.unmanaged_channels = live
        .channels
        .iter()
        .filter(|c| !managed_channels.contains(&(c.workspace.clone(), c.name.clone())))
        .map(|c| (c.workspace.clone(), c.name.clone()))
        .collect();

    // 5. Leavers: active human accounts that should not have one.
    for user in live
        .users
        .iter()
        .filter(|u| u.active && !u.bot && u.guest.is_none())
    {
        if desired.accounts.contains(&user.email) {
            continue;
        }
        let drift = drift_of(&user.email);
        if desired.protected.contains(&user.email) || user.primary_owner {
            plan.blocked_by_protection
                .push((person(&user.email), drift));
            continue;
        }
        leavers.push(Action::DeactivateUser {
            person: person(&user.email),
            drift,
        });
    }
    let resets: Vec<Action> = leavers
        .iter()
        .filter_map(|a| match a {
            Action::DeactivateUser { person, .. } => Some(Action::ResetSessions {
                person: person.clone(),
            }),
            _ => None,
        })
        .collect();

    plan.actions = [
        creations,
        assignments,
        structure,
        memberships,
        kicks,
        disables,
        leavers,
        resets,
    ]
    .concat();
    plan
}
