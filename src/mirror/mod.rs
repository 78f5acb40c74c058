//! The live Slack mirror: a copy of live Slack in the state store, one row per channel,
//! usergroup and person, each with the time of its last authoritative read.
//!
//! Slack's events are **invalidations, never data**: an event marks the object it names
//! stale, and only a read of Slack (a full read, or the read-back after our own write)
//! makes it verified again. The one exception is a `subteam_members_changed` whose
//! `date_previous_update` equals the mirror's `date_update` for that usergroup: an
//! unbroken chain of deltas, applied in place (the row keeps its verification time; the
//! chain only proves nothing was missed between the two updates).
//!
//! This module is the pure part: what an event body is ([`Inbound`]), what it does to the
//! mirror ([`Effect`]), and the rows a read of Slack gives ([`rows_of`]). The store
//! (`store::mirror`) keeps them; the controller receives events and drains them;
//! [`read`] serves live Slack from the mirror, reading live what it cannot vouch for.

pub mod read;
pub mod stream;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::live::Live;

/// What a mirror row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Channel,
    Usergroup,
    User,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Channel => "channel",
            ObjectKind::Usergroup => "usergroup",
            ObjectKind::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<ObjectKind> {
        match text {
            "channel" => Some(ObjectKind::Channel),
            "usergroup" => Some(ObjectKind::Usergroup),
            "user" => Some(ObjectKind::User),
            _ => None,
        }
    }
}

/// The largest event id taken (Slack's are about 11 characters).
pub const MAX_EVENT_ID: usize = 64;

/// One event callback as received: checked enough to be kept and deduplicated.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub event_id: String,
    /// The inner event's type (`member_joined_channel`).
    pub kind: String,
    /// Slack's `event_time`, unix seconds.
    pub event_time: i64,
}

/// What a delivery to `/hooks/slack` is.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Slack checks the request URL: answer the challenge.
    UrlVerification { challenge: String },
    /// An event to keep.
    Event(Inbound),
    /// Slack dropped events for this minute: the stream has a gap.
    RateLimited { minute: i64 },
}

/// Why a delivery was refused (400): never the body itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the body is not a JSON object")]
    NotJson,
    #[error("unknown delivery type")]
    UnknownType,
    #[error("the event has no valid event_id, event_time or event type")]
    Malformed,
}

impl Delivery {
    /// Reads a verified body.
    pub fn parse(body: &[u8]) -> Result<Delivery, Refusal> {
        let value: Value = serde_json::from_slice(body).map_err(|_| Refusal::NotJson)?;
        if !value.is_object() {
            return Err(Refusal::NotJson);
        }
        match value["type"].as_str() {
            Some("url_verification") => value["challenge"]
                .as_str()
                .filter(|c| !c.is_empty() && c.len() <= 256)
                .map(|c| Delivery::UrlVerification {
                    challenge: c.to_string(),
                })
                .ok_or(Refusal::Malformed),
            Some("app_rate_limited") => Ok(Delivery::RateLimited {
                minute: value["minute_rate_limited"].as_i64().unwrap_or_default(),
            }),
            Some("event_callback") => {
                let event_id = value["event_id"]
                    .as_str()
                    .filter(|id| valid_event_id(id))
                    .ok_or(Refusal::Malformed)?;
                let kind = value["event"]["type"]
                    .as_str()
                    .filter(|k| !k.is_empty() && k.len() <= 64)
                    .ok_or(Refusal::Malformed)?;
                let event_time = value["event_time"].as_i64().ok_or(Refusal::Malformed)?;
                Ok(Delivery::Event(Inbound {
                    event_id: event_id.to_string(),
                    kind: kind.to_string(),
                    event_time,
                }))
            }
            _ => Err(Refusal::UnknownType),
        }
    }
}

fn valid_event_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_EVENT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':')
}

/// What an event does to the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The object may have changed: re-read it before trusting the mirror's copy.
    Stale { kind: ObjectKind, id: String },
    /// A usergroup's members changed by this delta, from `previous` to `update`
    /// (Slack's `date_update`s). Applied in place only when the mirror is at `previous`.
    Members {
        usergroup: String,
        previous: i64,
        update: i64,
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// `subteam_updated`: the usergroup is stale, unless it is the update a delta just
    /// applied in place (same `date_update`) and the event agrees with the mirror's copy
    /// on every field it shows. The event is only compared with, never copied.
    Updated {
        usergroup: String,
        date_update: i64,
        subteam: Value,
    },
}

/// The effects of one event callback's body (nothing for events the mirror ignores).
pub fn effects(body: &Value) -> Vec<Effect> {
    let event = &body["event"];
    let stale = |kind: ObjectKind, id: Option<&str>| -> Vec<Effect> {
        id.filter(|id| !id.is_empty())
            .map(|id| Effect::Stale {
                kind,
                id: id.to_string(),
            })
            .into_iter()
            .collect()
    };
    fn text(value: &Value) -> Option<&str> {
        value.as_str()
    }
    match event["type"].as_str().unwrap_or_default() {
        "member_joined_channel"
        | "member_left_channel"
        | "channel_archive"
        | "channel_unarchive"
        | "group_archive"
        | "group_unarchive"
        | "channel_deleted"
        | "group_deleted"
        | "channel_left"
        | "group_left" => stale(ObjectKind::Channel, text(&event["channel"])),
        "channel_created" | "channel_rename" | "group_rename" => {
            stale(ObjectKind::Channel, text(&event["channel"]["id"]))
        }
        "channel_id_changed" => {
            let mut both = stale(ObjectKind::Channel, text(&event["old_channel_id"]));
            both.extend(stale(ObjectKind::Channel, text(&event["new_channel_id"])));
            both
        }
        "subteam_created" => stale(ObjectKind::Usergroup, text(&event["subteam"]["id"])),
        "subteam_updated" => match (
            text(&event["subteam"]["id"]),
            event["subteam"]["date_update"].as_i64(),
        ) {
            (Some(id), Some(date_update)) if !id.is_empty() => vec![Effect::Updated {
                usergroup: id.to_string(),
                date_update,
                subteam: event["subteam"].clone(),
            }],
            (id, _) => stale(ObjectKind::Usergroup, id),
        },
        "subteam_members_changed" => members_changed(event),
        "user_change" | "team_join" => stale(ObjectKind::User, text(&event["user"]["id"])),
        _ => Vec::new(),
    }
}

fn members_changed(event: &Value) -> Vec<Effect> {
    let Some(usergroup) = event["subteam_id"].as_str().filter(|id| !id.is_empty()) else {
        return Vec::new();
    };
    let ids = |value: &Value| -> Option<Vec<String>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let delta = (
        event["date_previous_update"].as_i64(),
        event["date_update"].as_i64(),
        ids(&event["added_users"]),
        ids(&event["removed_users"]),
    );
    match delta {
        (Some(previous), Some(update), Some(added), Some(removed)) => vec![Effect::Members {
            usergroup: usergroup.to_string(),
            previous,
            update,
            added,
            removed,
        }],
        // A delta that cannot be applied still says the usergroup changed.
        _ => vec![Effect::Stale {
            kind: ObjectKind::Usergroup,
            id: usergroup.to_string(),
        }],
    }
}

/// Where a connection writes its full reads of Slack through: the controller's store
/// (fenced while it leads) and its mirror's scope.
#[derive(Clone)]
pub struct Sink {
    pub store: std::sync::Arc<crate::store::Store>,
    pub scope: String,
}

impl Sink {
    /// Writes a full read that started at `started_at` (unix ms) through to the mirror.
    /// The mirror is a cache: a failure is a warning, never the read's.
    pub fn full_read(
        &self,
        live: &Live,
        usergroup_updates: &BTreeMap<String, i64>,
        started_at: i64,
    ) {
        let rows = rows_of(live, usergroup_updates);
        match self.store.mirror_full_read(&self.scope, &rows, started_at) {
            Ok(()) => tracing::debug!(
                rows = rows.len(),
                "live Slack written through to the mirror"
            ),
            Err(error) => tracing::warn!(%error, "the mirror was not updated from this read"),
        }
    }
}

/// One object as a read of Slack gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: ObjectKind,
    pub id: String,
    /// The object as JSON (a `LiveChannel`, `LiveUsergroup` or `LiveUser`).
    pub document: String,
    /// A usergroup's `date_update`, the link a delta chains from.
    pub date_update: Option<i64>,
}

/// The rows a read of live Slack gives: every channel, usergroup and person it read,
/// with each usergroup's `date_update` as the read saw it (`ReadReport::usergroup_updates`).
pub fn rows_of(live: &Live, usergroup_updates: &BTreeMap<String, i64>) -> Vec<Row> {
    let mut rows =
        Vec::with_capacity(live.channels.len() + live.usergroups.len() + live.users.len());
    rows.extend(live.channels.iter().map(Row::channel));
    rows.extend(
        live.usergroups
            .iter()
            .map(|g| Row::usergroup(g, usergroup_updates.get(&g.id).copied())),
    );
    rows.extend(live.users.iter().map(Row::user));
    rows
}

impl Row {
    pub fn user(user: &crate::model::live::LiveUser) -> Row {
        Row {
            kind: ObjectKind::User,
            id: user.id.clone(),
            document: json(user),
            date_update: None,
        }
    }

    pub fn channel(channel: &crate::model::live::LiveChannel) -> Row {
        Row {
            kind: ObjectKind::Channel,
            id: channel.id.clone(),
            document: json(channel),
            date_update: None,
        }
    }

    pub fn usergroup(group: &crate::model::live::LiveUsergroup, date_update: Option<i64>) -> Row {
        Row {
            kind: ObjectKind::Usergroup,
            id: group.id.clone(),
            document: json(group),
            date_update,
        }
    }
}

/// Whether a `subteam_updated` event's usergroup shows exactly what the mirror's copy
/// holds: name, handle, description, enabled, the member count, and the members when
/// Slack did not cut them (more than 500).
pub fn agrees(subteam: &Value, copy: &crate::model::live::LiveUsergroup) -> bool {
    let field = |name: &str| subteam[name].as_str().unwrap_or_default();
    let count = subteam["user_count"].as_u64();
    let users: Option<std::collections::BTreeSet<&str>> = subteam["users"]
        .as_array()
        .map(|users| users.iter().filter_map(Value::as_str).collect());
    let members: std::collections::BTreeSet<&str> =
        copy.members.iter().map(String::as_str).collect();
    field("name") == copy.name
        && field("handle") == copy.handle
        && field("description") == copy.description
        && (subteam["date_delete"].as_i64().unwrap_or(0) != 0) == copy.disabled
        && count == Some(copy.members.len() as u64)
        && (copy.members.len() > 500 || users.as_ref() == Some(&members))
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("a live object serialises")
}

/// An object to read live: a channel or person by id, or the usergroups of a workspace
/// (one `usergroups.list` reads them all; `id` is empty for a usergroup a plan creates).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wanted {
    pub kind: ObjectKind,
    pub id: String,
    /// A usergroup's workspace; every managed workspace when unknown.
    pub workspace: Option<String>,
}

impl Wanted {
    fn new(kind: ObjectKind, id: &str, workspace: Option<&str>) -> Wanted {
        Wanted {
            kind,
            id: id.to_string(),
            workspace: workspace.map(str::to_string),
        }
    }
}

/// Every live object a plan's actions change, those that lose something (a member, an
/// account, a name) first: what a plan made from the mirror reads live before it is
/// believed. An object created by the plan has no id and is not read.
pub fn touched(plan: &crate::plan::action::Plan) -> Vec<Wanted> {
    use crate::plan::action::Action;
    let mut removing = std::collections::BTreeSet::new();
    let mut adding = std::collections::BTreeSet::new();
    let user = |person: &crate::plan::action::Person| {
        person
            .user_id
            .live()
            .map(|id| Wanted::new(ObjectKind::User, id, None))
    };
    let usergroup =
        |workspace: &str, id: &str| Some(Wanted::new(ObjectKind::Usergroup, id, Some(workspace)));
    let channel = |id: &str| Some(Wanted::new(ObjectKind::Channel, id, None));
    for action in &plan.actions {
        let (wanted, removes) = match action {
            Action::CreateUser { .. } | Action::CreateChannel { .. } => (None, false),
            Action::ReactivateUser { person }
            | Action::AssignWorkspace { person, .. }
            | Action::UpdateProfile { person, .. }
            | Action::SetRole { person, .. } => (user(person), false),
            Action::DeactivateUser { removal, .. } => (user(&removal.person), true),
            Action::ResetSessions { person, .. } => (user(person), true),
            Action::CreateUsergroup { workspace, .. } => (usergroup(workspace, ""), false),
            Action::EnableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => (usergroup(workspace, usergroup_id), false),
            Action::UpdateUsergroup {
                workspace,
                usergroup_id,
                ..
            }
            | Action::DisableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => (usergroup(workspace, usergroup_id), true),
            Action::SetUsergroupMembers {
                workspace,
                usergroup_id,
                removes,
                ..
            } => (
                usergroup_id.live().and_then(|id| usergroup(workspace, id)),
                !removes.is_empty(),
            ),
            Action::InviteToChannel { channel_id, .. } => {
                (channel_id.live().and_then(channel), false)
            }
            Action::KickFromChannel { channel_id, .. } => (channel(channel_id), true),
        };
        if let Some(wanted) = wanted {
            if removes {
                removing.insert(wanted);
            } else {
                adding.insert(wanted);
            }
        }
    }
    adding.retain(|w| !removing.contains(w));
    removing.into_iter().chain(adding).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn callback(event: Value) -> Value {
        json!({"type": "event_callback", "event_id": "Ev01", "event_time": 1767225600, "event": event})
    }

    #[test]
    fn deliveries_are_read_and_malformed_ones_refused() {
        let parse = |v: Value| Delivery::parse(&serde_json::to_vec(&v).unwrap());
        assert_eq!(
            parse(json!({"type": "url_verification", "challenge": "abc"})),
            Ok(Delivery::UrlVerification {
                challenge: "abc".into()
            })
        );
        assert_eq!(
            parse(callback(json!({"type": "member_joined_channel"}))),
            Ok(Delivery::Event(Inbound {
                event_id: "Ev01".into(),
                kind: "member_joined_channel".into(),
                event_time: 1767225600
            }))
        );
        assert_eq!(
            parse(json!({"type": "app_rate_limited", "minute_rate_limited": 1518467820})),
            Ok(Delivery::RateLimited { minute: 1518467820 })
        );
        let long_id = "E".repeat(MAX_EVENT_ID + 1);
        for bad in [
            json!({"type": "event_callback", "event_id": long_id, "event_time": 1, "event": {"type": "x"}}),
            json!({"type": "event_callback", "event_id": "Ev 1", "event_time": 1, "event": {"type": "x"}}),
            json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "x"}}),
            json!({"type": "event_callback", "event_id": "Ev1", "event_time": 1, "event": {}}),
        ] {
            assert_eq!(parse(bad), Err(Refusal::Malformed));
        }
        assert_eq!(
            parse(json!({"type": "block_actions"})),
            Err(Refusal::UnknownType)
        );
        assert_eq!(Delivery::parse(b"[1]"), Err(Refusal::NotJson));
        assert_eq!(Delivery::parse(b"{"), Err(Refusal::NotJson));
    }

    #[test]
    fn events_mark_what_they_name_stale_and_deltas_chain() {
        let stale = |kind, id: &str| Effect::Stale {
            kind,
            id: id.into(),
        };
        assert_eq!(
            effects(&callback(
                json!({"type": "member_left_channel", "channel": "C1", "user": "U1"})
            )),
            [stale(ObjectKind::Channel, "C1")]
        );
        assert_eq!(
            effects(&callback(
                json!({"type": "channel_rename", "channel": {"id": "C2", "name": "x"}})
            )),
            [stale(ObjectKind::Channel, "C2")]
        );
        assert_eq!(
            effects(&callback(
                json!({"type": "user_change", "user": {"id": "U9"}})
            )),
            [stale(ObjectKind::User, "U9")]
        );
        assert_eq!(
            effects(&callback(
                json!({"type": "subteam_members_changed", "subteam_id": "S1",
                "date_previous_update": 10, "date_update": 20,
                "added_users": ["U1"], "removed_users": []})
            )),
            [Effect::Members {
                usergroup: "S1".into(),
                previous: 10,
                update: 20,
                added: vec!["U1".into()],
                removed: vec![]
            }]
        );
        assert_eq!(
            effects(&callback(
                json!({"type": "subteam_members_changed", "subteam_id": "S1"})
            )),
            [stale(ObjectKind::Usergroup, "S1")]
        );
        assert!(effects(&callback(json!({"type": "message", "channel": "C1"}))).is_empty());
    }
}
