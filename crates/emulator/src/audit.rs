//! Slack's Audit Logs API (`GET /audit/v1/logs`, Enterprise Grid only): the changes
//! calls made, as the audit entries an org owner's token can read, newest first, with
//! `oldest`/`latest` (inclusive, unix seconds), `action` (up to 30, comma-separated),
//! `actor`, `entity`, `limit` (1-9,999) and cursor pages. Its rate limit is one
//! org-wide bucket of 50 calls a minute (Tier 3), shared by every app.
//!
//! Entries are recorded from the same [`Change`]s as events, so the two never disagree
//! on what happened. Where Slack's action names for a change are not documented
//! (creating a usergroup), the nearest documented one is used (`usergroup_updated`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::changes::Change;
use crate::world::World;

/// The most entries a page may ask for.
pub const MAX_LIMIT: usize = 9_999;
/// The most actions one call may filter on.
pub const MAX_ACTIONS: usize = 30;
/// Entries kept; the oldest go first (a long benchmark makes hundreds of thousands).
pub const MAX_ENTRIES: usize = 100_000;

/// One audit entry as kept: the fields the filters use, and the entry as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Increasing from 1, whatever was dropped.
    #[serde(default)]
    pub number: u64,
    pub id: String,
    pub date_create: u64,
    pub action: String,
    pub actor: String,
    pub entity: String,
    /// The entry as the API serves it.
    pub body: Value,
}

/// Records the audit entries of a call's changes, made by `actor` at `now`.
pub fn record(world: &mut World, changes: &[Change], actor: &str, now: f64) {
    if world.enterprise.is_none() {
        return;
    }
    let mut entries = Vec::new();
    for change in changes {
        for (action, actor, entity, details) in actions(world, change, actor) {
            entries.push((action, actor, entity, details));
        }
    }
    for (action, actor, entity, details) in entries {
        let number = world.audit_log.back().map_or(0, |e| e.number) + 1;
        let id = format!("0123a4b5-{number:04x}-4000-8000-{number:012x}");
        let team = entity_team(world, &entity);
        let body = json!({
            "id": id,
            "date_create": now as u64,
            "action": action,
            "actor": {"type": "user", "user": person(world, &actor)},
            "entity": entity.render(world),
            "context": {
                "location": location(world, team.as_deref()),
                "ua": "slack-emulator",
                "ip_address": "127.0.0.1",
            },
            "details": details,
        });
        world.audit_log.push_back(AuditEntry {
            number,
            id,
            date_create: now as u64,
            action: action.to_string(),
            actor,
            entity: entity.id().to_string(),
            body,
        });
    }
    while world.audit_log.len() > MAX_ENTRIES {
        world.audit_log.pop_front();
    }
}

/// What an entry is about.
enum Entity {
    Channel(String),
    Usergroup(String),
    User(String),
}

impl Entity {
    fn id(&self) -> &str {
        match self {
            Entity::Channel(id) | Entity::Usergroup(id) | Entity::User(id) => id,
        }
    }

    fn render(&self, world: &World) -> Value {
        match self {
            Entity::Channel(id) => {
                let channel = world.channel(id);
                json!({"type": "channel", "channel": {
                    "id": id,
                    "name": channel.map(|c| c.name.as_str()),
                    "privacy": if channel.is_some_and(|c| c.private) { "private" } else { "public" },
                    "is_shared": false,
                    "is_org_shared": false,
                }})
            }
            Entity::Usergroup(id) => {
                let group = world.usergroups.iter().find(|g| g.id == *id);
                json!({"type": "usergroup", "usergroup": {
                    "id": id,
                    "name": group.map(|g| g.name.as_str()),
                }})
            }
            Entity::User(id) => json!({"type": "user", "user": person(world, id)}),
        }
    }
}

type Action = (&'static str, String, Entity, Value);

/// The audit actions a change is, with their actor, entity and details.
fn actions(world: &World, change: &Change, actor: &str) -> Vec<Action> {
    let by = actor.to_string();
    match change {
        Change::Joined {
            channel,
            user,
            inviter,
        } => vec![(
            "user_channel_join",
            user.clone(),
            Entity::Channel(channel.clone()),
            json!({"inviter": inviter}),
        )],
        Change::Left { channel, user } => vec![(
            "user_channel_leave",
            user.clone(),
            Entity::Channel(channel.clone()),
            json!({}),
        )],
        Change::ChannelCreated { channel } => {
            let private = world.channel(channel).is_some_and(|c| c.private);
            let action = if private {
                "private_channel_created"
            } else {
                "public_channel_created"
            };
            vec![(action, by, Entity::Channel(channel.clone()), json!({}))]
        }
        Change::Archived {
            channel,
            by: who,
            archived,
        } => {
            let private = world.channel(channel).is_some_and(|c| c.private);
            let action = match (private, archived) {
                (false, true) => "public_channel_archive",
                (true, true) => "private_channel_archive",
                (false, false) => "public_channel_unarchive",
                (true, false) => "private_channel_unarchive",
            };
            vec![(
                action,
                who.clone(),
                Entity::Channel(channel.clone()),
                json!({}),
            )]
        }
        Change::Renamed { channel } => vec![(
            "channel_renamed",
            by,
            Entity::Channel(channel.clone()),
            json!({}),
        )],
        Change::SubteamCreated { id } | Change::SubteamUpdated { id } => vec![(
            "usergroup_updated",
            by,
            Entity::Usergroup(id.clone()),
            json!({}),
        )],
        Change::SubteamMembers {
            id, added, removed, ..
        } => added
            .iter()
            .map(|user| ("user_added_to_usergroup", user))
            .chain(
                removed
                    .iter()
                    .map(|user| ("user_removed_from_usergroup", user)),
            )
            .map(|(action, user)| {
                (
                    action,
                    by.clone(),
                    Entity::Usergroup(id.clone()),
                    json!({"user_id": user}),
                )
            })
            .collect(),
        Change::UserChanged { id } => match world.user(id) {
            Some(user) if !user.active => {
                vec![("user_deactivated", by, Entity::User(id.clone()), json!({}))]
            }
            _ => Vec::new(),
        },
        Change::TeamJoin { .. } => Vec::new(),
    }
}

fn person(world: &World, id: &str) -> Value {
    match world.user(id) {
        Some(user) => json!({"id": id, "name": user.user_name, "email": user.email}),
        None => json!({"id": "USLACKUSER", "name": "Slack", "email": ""}),
    }
}

fn entity_team(world: &World, entity: &Entity) -> Option<String> {
    match entity {
        Entity::Channel(id) => world.channel(id).map(|c| c.workspace.clone()),
        Entity::Usergroup(id) => world
            .usergroups
            .iter()
            .find(|g| g.id == *id)
            .map(|g| g.workspace.clone()),
        Entity::User(_) => None,
    }
}

fn location(world: &World, team: Option<&str>) -> Value {
    match team.and_then(|t| world.workspaces.iter().find(|w| w.id == t)) {
        Some(workspace) => json!({"type": "workspace", "id": workspace.id,
            "name": workspace.name, "domain": workspace.domain}),
        None => {
            let enterprise = world.enterprise.as_ref();
            json!({"type": "enterprise", "id": enterprise.map(|e| e.id.as_str()),
                "name": enterprise.map(|e| e.name.as_str()), "domain": ""})
        }
    }
}

/// A `GET /audit/v1/logs` query.
#[derive(Debug, Default, Deserialize)]
pub struct Query {
    pub oldest: Option<u64>,
    pub latest: Option<u64>,
    pub limit: Option<usize>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub cursor: Option<String>,
}

/// One page of entries, newest first, or the error Slack names.
pub fn logs(world: &World, query: &Query) -> Result<Value, &'static str> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err("invalid_arguments");
    }
    let actions: Vec<&str> = query
        .action
        .as_deref()
        .map(|a| {
            a.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if actions.len() > MAX_ACTIONS {
        return Err("invalid_arguments");
    }
    let offset = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => cursor
            .strip_prefix("audit:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or("invalid_cursor")?,
        None => 0,
    };
    let matching: Vec<&AuditEntry> = world
        .audit_log
        .iter()
        .rev()
        .filter(|e| query.oldest.is_none_or(|t| e.date_create >= t))
        .filter(|e| query.latest.is_none_or(|t| e.date_create <= t))
        .filter(|e| actions.is_empty() || actions.contains(&e.action.as_str()))
        .filter(|e| query.actor.as_deref().is_none_or(|a| e.actor == a))
        .filter(|e| query.entity.as_deref().is_none_or(|id| e.entity == id))
        .collect();
    let page: Vec<&Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| &e.body)
        .collect();
    let next = if offset + limit < matching.len() {
        format!("audit:{}", offset + limit)
    } else {
        String::new()
    };
    Ok(json!({"entries": page, "response_metadata": {"next_cursor": next}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{Channel, Enterprise};

    #[test]
    fn the_log_keeps_the_newest_entries_and_numbers_on() {
        let mut world = World::default();
        world.enterprise = Some(Enterprise {
            id: "E1".into(),
            name: "Org".into(),
        });
        world.add_channel(Channel {
            id: "C1".into(),
            workspace: "T1".into(),
            name: "eng".into(),
            private: false,
            archived: false,
            general: false,
            topic: String::new(),
            purpose: String::new(),
            members: Vec::new(),
            creator: String::new(),
            created: 0,
        });
        world.audit_log = (1..=MAX_ENTRIES as u64)
            .map(|number| AuditEntry {
                number,
                id: number.to_string(),
                date_create: 0,
                action: "old".into(),
                actor: String::new(),
                entity: String::new(),
                body: Value::Null,
            })
            .collect();
        let join = Change::Joined {
            channel: "C1".into(),
            user: "U1".into(),
            inviter: None,
        };
        record(&mut world, &[join], "U2", 10.0);
        assert_eq!(world.audit_log.len(), MAX_ENTRIES);
        assert_eq!(
            world.audit_log.front().unwrap().number,
            2,
            "the oldest went"
        );
        let newest = world.audit_log.back().unwrap();
        assert_eq!(
            (newest.number, newest.action.as_str()),
            (MAX_ENTRIES as u64 + 1, "user_channel_join")
        );
    }
}
