//! What the config asks for, resolved against the identity directory: who should have a
//! Slack account, who belongs in each usergroup and channel, and which rule (file:line)
//! says so. Pure: config, directory and resolution in, [`Desired`] out.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Repository;
use crate::config::types::{MemberSpec, Provisioning};
use crate::model::directory::{Directory, PersonStatus, Resolution};

/// A place in the config repository, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RuleRef {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A usergroup as the config wants it, in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUsergroup {
    pub rule: RuleRef,
    /// The team id of the workspace.
    pub workspace: String,
    pub handle: String,
    pub name: String,
    pub description: String,
    /// Default channel names.
    pub channels: Vec<String>,
    /// Emails of the active people it selects.
    pub members: BTreeSet<String>,
}

/// A channel as the config wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredChannel {
    /// The `channels:` entry, or `None` for a channel only named as a usergroup's default.
    pub rule: Option<RuleRef>,
    pub workspace: String,
    pub name: String,
    pub private: bool,
    pub remove_unlisted: bool,
    /// Emails of the people who should be in it, and the rules that put each there.
    pub members: BTreeMap<String, BTreeSet<RuleRef>>,
}

/// The whole desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub provisioning: Provisioning,
    /// Emails of active people in `users.scope`: they should have an active account.
    pub accounts: BTreeSet<String>,
    /// The workspaces (team ids) each person needs, from their usergroups and channels.
    pub workspaces: BTreeMap<String, BTreeSet<String>>,
    pub usergroups: Vec<DesiredUsergroup>,
    pub channels: Vec<DesiredChannel>,
    /// Emails that are never deactivated or removed.
    pub protected: BTreeSet<String>,
}

/// The active people a member spec selects.
fn select(
    spec: &MemberSpec,
    resolution: &Resolution,
    active: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut chosen: BTreeSet<String> = spec.users.iter().map(|e| e.as_str().to_string()).collect();
    for group in &spec.groups {
        if let Some(members) = resolution.members.get(group) {
            chosen.extend(members.iter().cloned());
        }
    }
    for group in &spec.exclude {
        if let Some(members) = resolution.members.get(group) {
            chosen.retain(|email| !members.contains(email));
        }
    }
    for email in &spec.exclude_users {
        chosen.remove(email.as_str());
    }
    chosen.retain(|email| active.contains(email));
    chosen
}

/// Resolves the config against the directory.
pub fn desired(repository: &Repository, directory: &Directory, resolution: &Resolution) -> Desired {
    let config = &repository.config.value;
    let active: BTreeSet<String> = directory
        .people
        .iter()
        .filter(|p| p.status == PersonStatus::Active)
        .map(|p| p.email.clone())
        .collect();
    let team = |key: &str| config.team_id(key);

    let mut accounts = BTreeSet::new();
    for group in &config.users.scope {
        if let Some(members) = resolution.members.get(group) {
            accounts.extend(members.iter().filter(|e| active.contains(*e)).cloned());
        }
    }

    let mut usergroups = Vec::new();
    let mut channels: BTreeMap<(String, String), DesiredChannel> = BTreeMap::new();
    for file in &repository.mappings {
        for (index, spec) in file.value.channels.iter().enumerate() {
            let Some(workspace) = team(&spec.workspace) else {
                continue;
            };
            let rule = RuleRef {
                file: file.file.clone(),
                line: file
                    .span(&format!("/channels/{index}"))
                    .map_or(0, |s| s.start.line),
            };
            let members = spec
                .members
                .as_ref()
                .map(|m| select(m, resolution, &active))
                .unwrap_or_default()
                .into_iter()
                .map(|email| (email, BTreeSet::from([rule.clone()])))
                .collect();
            channels.insert(
                (workspace.clone(), spec.name.as_str().to_string()),
                DesiredChannel {
                    rule: Some(rule),
                    workspace,
                    name: spec.name.as_str().to_string(),
                    private: spec.private,
                    remove_unlisted: spec.remove_unlisted,
                    members,
                },
            );
        }
    }
    for file in &repository.mappings {
        for (index, spec) in file.value.usergroups.iter().enumerate() {
            let rule = RuleRef {
                file: file.file.clone(),
                line: file
                    .span(&format!("/usergroups/{index}"))
                    .map_or(0, |s| s.start.line),
            };
            let members = select(&spec.members, resolution, &active);
            for workspace in spec.workspaces.iter().filter_map(|w| team(w)) {
                for channel in &spec.channels {
                    let entry = channels
                        .entry((workspace.clone(), channel.as_str().to_string()))
                        .or_insert_with(|| DesiredChannel {
                            rule: None,
                            workspace: workspace.clone(),
                            name: channel.as_str().to_string(),
                            private: false,
                            remove_unlisted: false,
                            members: BTreeMap::new(),
                        });
                    for email in &members {
                        entry
                            .members
                            .entry(email.clone())
                            .or_default()
                            .insert(rule.clone());
                    }
                }
                usergroups.push(DesiredUsergroup {
                    rule: rule.clone(),
                    workspace,
                    handle: spec.handle.as_str().to_string(),
                    name: spec.name.clone(),
                    description: spec.description.clone().unwrap_or_default(),
                    channels: spec
                        .channels
                        .iter()
                        .map(|c| c.as_str().to_string())
                        .collect(),
                    members: members.clone(),
                });
            }
        }
    }

    let mut workspaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in &usergroups {
        for email in &group.members {
            workspaces
                .entry(email.clone())
                .or_default()
                .insert(group.workspace.clone());
        }
    }
    for channel in channels.values() {
        for email in channel.members.keys() {
            workspaces
                .entry(email.clone())
                .or_default()
                .insert(channel.workspace.clone());
        }
    }
    let protected_groups = repository
        .policies
        .iter()
        .flat_map(|p| p.value.protected.groups.iter());
    let mut protected: BTreeSet<String> = repository
        .policies
        .iter()
        .flat_map(|p| {
            p.value
                .protected
                .users
                .iter()
                .map(|e| e.as_str().to_string())
        })
        .collect();
    for group in protected_groups {
        if let Some(members) = resolution.members.get(group) {
            protected.extend(members.iter().cloned());
        }
    }
    Desired {
        provisioning: config.users.provisioning,
        accounts,
        workspaces,
        usergroups,
        channels: channels.into_values().collect(),
        protected,
    }
}
