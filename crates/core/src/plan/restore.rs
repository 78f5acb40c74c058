//! The way back to a saved snapshot: reactivate the people deactivated since, give back
//! the admin and owner roles they had, and put them back into the usergroups and
//! channels they were in. Slack drops usergroup and channel memberships on deactivation
//! and restores neither (nor roles) on reactivation, so all three are explicit actions.
//! Pure: the saved and the current [`Live`] in, a [`Plan`] out, run by the same executor
//! as `apply`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::action::{Action, Addition, Grant, ManualStep, Person, Plan, Role, SlackId};
use super::desired::RuleRef;
use crate::config::types::SlackPlan;
use crate::model::live::{Live, LiveUser};

/// What to restore (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreParts {
    pub people: bool,
    pub usergroups: bool,
    pub channels: bool,
    pub roles: bool,
}

impl Default for RestoreParts {
    fn default() -> Self {
        RestoreParts {
            people: true,
            usergroups: true,
            channels: true,
            roles: true,
        }
    }
}

impl RestoreParts {
    /// Parses `people,usergroups,channels,roles` (any subset).
    pub fn parse(text: &str) -> Result<RestoreParts, String> {
        let mut parts = RestoreParts {
            people: false,
            usergroups: false,
            channels: false,
            roles: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "people" => parts.people = true,
                "usergroups" => parts.usergroups = true,
                "channels" => parts.channels = true,
                "roles" => parts.roles = true,
                other => {
                    return Err(format!(
                        "`{other}` is not one of people, usergroups, channels, roles"
                    ));
                }
            }
        }
        Ok(parts)
    }
}

/// Plans the way back from `now` to `saved` for the people `only` names (everyone when
/// `None`). `source` names the snapshot in every grant, for the audit trail.
pub fn restore_plan(
    saved: &Live,
    now: &Live,
    parts: RestoreParts,
    only: Option<&BTreeSet<String>>,
    source: &RuleRef,
    slack_plan: SlackPlan,
) -> Plan {
    let current: HashMap<&str, &LiveUser> = now.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let chosen = |user: &LiveUser| only.is_none_or(|emails| emails.contains(&user.email));
    // People to bring back: active then, known now, human, chosen.
    let people: BTreeMap<&str, (&LiveUser, &LiveUser)> = saved
        .users
        .iter()
        .filter(|u| u.active && !u.bot && chosen(u))
        .filter_map(|u| {
            current
                .get(u.id.as_str())
                .map(|now| (u.id.as_str(), (u, *now)))
        })
        .collect();
    let person = |user: &LiveUser| Person {
        email: user.email.clone(),
        user_id: SlackId::Live(user.id.clone()),
    };
    let grant = || Grant {
        rule: source.clone(),
        via: Vec::new(),
    };
    let mut actions = Vec::new();
    // Who will be active once the plan ran: active now, or reactivated by it.
    let mut active: BTreeSet<&str> = now
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.id.as_str())
        .collect();
    if parts.people {
        for (id, (_, now_user)) in &people {
            if !now_user.active {
                actions.push(Action::ReactivateUser {
                    person: person(now_user),
                });
                active.insert(id);
            }
        }
    }
    let mut manual_steps = Vec::new();
    if parts.roles {
        let roles = roles(&people, &active, person);
        match slack_plan {
            SlackPlan::EnterpriseGrid => actions.extend(roles),
            // Business+ has no API for roles: a person gives them back.
            SlackPlan::BusinessPlus => manual_steps.extend(roles.iter().filter_map(manual_role)),
        }
    }
    if parts.usergroups {
        actions.extend(usergroups(saved, now, &people, &active, grant));
    }
    if parts.channels {
        actions.extend(channels(saved, now, &people, &active, grant));
    }
    Plan {
        actions,
        manual_steps,
        ..Plan::default()
    }
}

type People<'a> = BTreeMap<&'a str, (&'a LiveUser, &'a LiveUser)>;

/// Admin and owner roles held then and not now, in the person's first workspace (Slack's
/// role APIs are per workspace; the org-level flag is what the snapshot holds).
fn roles(
    people: &People,
    active: &BTreeSet<&str>,
    person: impl Fn(&LiveUser) -> Person,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, (then, now)) in people {
        let Some(workspace) = then.workspaces.first() else {
            continue;
        };
        if !active.contains(id) {
            continue;
        }
        // Reactivation drops roles, so a person this plan reactivates lacks theirs
        // whatever the listing of their deactivated account says.
        let reactivated = !now.active;
        let (owner, admin) = (now.owner && !reactivated, now.admin && !reactivated);
        let role = if then.owner && !owner {
            Role::Owner
        } else if then.admin && !admin && !owner {
            Role::Admin
        } else {
            continue;
        };
        actions.push(Action::SetRole {
            person: person(now),
            workspace: workspace.clone(),
            role,
        });
    }
    actions
}

/// A role to give back by hand (Business+), with the steps of Slack's admin pages.
fn manual_role(action: &Action) -> Option<ManualStep> {
    let Action::SetRole { person, role, .. } = action else {
        return None;
    };
    let title = match role {
        Role::Admin => "Workspace Admin",
        Role::Owner => "Workspace Owner",
    };
    Some(ManualStep {
        email: person.email.clone(),
        instruction: format!(
            "make them a {title} again (Business+ has no API for roles): in Slack, click the workspace name, then Tools & settings > Manage members; find {}, open the three dots menu, choose Change account type and pick {title}",
            person.email
        ),
    })
}

/// Usergroups the people were in then and are not now: the current list plus them.
fn usergroups(
    saved: &Live,
    now: &Live,
    people: &People,
    active: &BTreeSet<&str>,
    grant: impl Fn() -> Grant,
) -> Vec<Action> {
    let current: HashMap<(&str, &str), &crate::model::live::LiveUsergroup> = now
        .usergroups
        .iter()
        .map(|g| ((g.workspace.as_str(), g.handle.as_str()), g))
        .collect();
    let by_id: HashMap<&str, &LiveUser> = now.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut actions = Vec::new();
    for group in &saved.usergroups {
        let Some(live) = current.get(&(group.workspace.as_str(), group.handle.as_str())) else {
            continue;
        };
        let back: Vec<&str> = group
            .members
            .iter()
            .map(String::as_str)
            .filter(|m| people.contains_key(m) && active.contains(m))
            .filter(|m| !live.members.iter().any(|x| x == m))
            .collect();
        if back.is_empty() {
            continue;
        }
        if live.disabled {
            actions.push(Action::EnableUsergroup {
                workspace: live.workspace.clone(),
                usergroup_id: live.id.clone(),
                handle: live.handle.clone(),
            });
        }
        let mut members: Vec<Person> = live
            .members
            .iter()
            .map(String::as_str)
            .chain(back.iter().copied())
            .filter_map(|id| by_id.get(id).copied())
            .map(|u| Person {
                email: u.email.clone(),
                user_id: SlackId::Live(u.id.clone()),
            })
            .collect();
        members.sort();
        members.dedup();
        let adds = back
            .iter()
            .map(|id| Addition {
                person: person_of(people, id),
                grants: vec![grant()],
            })
            .collect();
        actions.push(Action::SetUsergroupMembers {
            workspace: live.workspace.clone(),
            usergroup_id: SlackId::Live(live.id.clone()),
            handle: live.handle.clone(),
            members,
            adds,
            removes: Vec::new(),
            rule: grant().rule,
        });
    }
    actions
}

/// Channels (those whose members the snapshot holds) the people were in then and not now.
fn channels(
    saved: &Live,
    now: &Live,
    people: &People,
    active: &BTreeSet<&str>,
    grant: impl Fn() -> Grant,
) -> Vec<Action> {
    let current: HashMap<&str, &crate::model::live::LiveChannel> =
        now.channels.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut actions = Vec::new();
    for channel in &saved.channels {
        let (Some(then), Some(live)) = (&channel.members, current.get(channel.id.as_str())) else {
            continue;
        };
        if live.archived {
            continue;
        }
        let members_now = live.members.as_deref().unwrap_or_default();
        let back: Vec<Addition> = then
            .iter()
            .map(String::as_str)
            .filter(|m| people.contains_key(m) && active.contains(m))
            .filter(|m| !members_now.iter().any(|x| x == m))
            .map(|id| Addition {
                person: person_of(people, id),
                grants: vec![grant()],
            })
            .collect();
        for batch in back.chunks(100) {
            actions.push(Action::InviteToChannel {
                workspace: live.workspace.clone(),
                channel: live.name.clone(),
                channel_id: SlackId::Live(live.id.clone()),
                people: batch.to_vec(),
            });
        }
    }
    actions
}

fn person_of(people: &People, id: &str) -> Person {
    let (_, user) = people[id];
    Person {
        email: user.email.clone(),
        user_id: SlackId::Live(user.id.clone()),
    }
}
