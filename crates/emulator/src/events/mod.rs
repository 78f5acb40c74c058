//! Slack's Events API: the changes a call made, as the events an app subscribed to them
//! receives, and their delivery ([`delivery`]).
//!
//! Visibility follows Slack: `member_joined_channel`, `member_left_channel` and the
//! `group_*` events of a private channel go only to an app whose bot is a member of the
//! channel; channel creation, usergroup and user events go to every app installed in the
//! workspace (an org-level app sees every workspace). Objects in events are rendered as
//! the Web API renders them, once the call is done; `subteam_updated` cuts `users` at 500.

pub mod delivery;
pub mod socket;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::changes::Change;
use crate::world::{TokenKind, World};

/// An app's event subscription: where events go and how they are signed. Part of the
/// seed and the state file; also set through `POST /_emulator/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The app whose bot's memberships decide what it sees.
    #[serde(default = "default_app")]
    pub app: String,
    /// Where events are POSTed; without it (and without a Socket Mode connection) events
    /// are recorded but not sent.
    #[serde(default)]
    pub request_url: Option<String>,
    /// Socket Mode: events go over the app's WebSocket connections
    /// (`apps.connections.open`) instead of to the request URL.
    #[serde(default)]
    pub socket_mode: bool,
    /// The app's signing secret (`X-Slack-Signature`).
    #[serde(default)]
    pub signing_secret: String,
    /// The deprecated verification token, sent as `token` in every payload.
    #[serde(default)]
    pub verification_token: String,
    /// False once Slack disabled it (more than 95% of deliveries failed in an hour) or
    /// when turned off; only re-enabling it (as in the app's settings) resumes delivery.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Events a workspace may send the app in an hour before `app_rate_limited`.
    #[serde(default = "hourly_limit")]
    pub hourly_limit: u64,
    /// Below this many events an hour the subscription is never disabled for failures.
    #[serde(default = "disable_min_events")]
    pub disable_min_events: u64,
    /// How long a receiver has to answer, in real milliseconds (Slack: 3 s). Real time,
    /// because the receiver is a real server whatever the emulator's time scale.
    #[serde(default = "ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_app() -> String {
    "A0000GITOPS".into()
}
fn yes() -> bool {
    true
}
fn hourly_limit() -> u64 {
    30_000
}
fn disable_min_events() -> u64 {
    1_000
}
fn ack_timeout_ms() -> u64 {
    3_000
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            app: default_app(),
            request_url: None,
            socket_mode: false,
            signing_secret: String::new(),
            verification_token: String::new(),
            enabled: true,
            hourly_limit: hourly_limit(),
            disable_min_events: disable_min_events(),
            ack_timeout_ms: ack_timeout_ms(),
        }
    }
}

/// One event ready to deliver: the envelope Slack POSTs, and what delivery needs to know
/// without parsing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub event_id: String,
    /// The inner event's `type`.
    pub kind: String,
    pub team: String,
    pub body: Value,
}

/// The app's bot: who it is and which workspaces it is installed in.
struct Viewer<'w> {
    bot: &'w str,
    org_level: bool,
    workspace: Option<&'w str>,
}

impl Viewer<'_> {
    fn sees_workspace(&self, team: &str) -> bool {
        self.org_level || self.workspace == Some(team)
    }
}

/// Turns a call's changes into the envelopes `subscription`'s app receives, numbering
/// them from `next` (event ids and `event_ts` stay unique and increasing).
pub fn render(
    world: &World,
    subscription: &Subscription,
    changes: &[Change],
    now: f64,
    next: &mut u64,
) -> Vec<Envelope> {
    let Some(token) = world
        .tokens
        .iter()
        .find(|t| t.kind == TokenKind::Bot && t.app == subscription.app && !t.revoked)
    else {
        return Vec::new();
    };
    let viewer = Viewer {
        bot: &token.user,
        org_level: token.org_level,
        workspace: token.workspace.as_deref(),
    };
    let mut envelopes = Vec::new();
    // A call that changed a user or a usergroup twice (a SCIM update that deactivates)
    // sends one event about the object as it ended.
    let mut seen = std::collections::HashSet::new();
    for change in changes {
        let repeatable = matches!(
            change,
            Change::UserChanged { .. } | Change::SubteamUpdated { .. } | Change::Renamed { .. }
        );
        if repeatable && !seen.insert(format!("{change:?}")) {
            continue;
        }
        for (team, event) in events_for(world, &viewer, change) {
            *next += 1;
            envelopes.push(envelope(
                world,
                subscription,
                &viewer,
                team,
                event,
                now,
                *next,
            ));
        }
    }
    envelopes
}

/// The inner events a change shows this viewer, with their workspace.
fn events_for(world: &World, viewer: &Viewer, change: &Change) -> Vec<(String, Value)> {
    match change {
        Change::Joined {
            channel,
            user,
            inviter,
        } => membership_event(world, viewer, channel, user, inviter.as_deref(), true),
        Change::Left { channel, user } => {
            membership_event(world, viewer, channel, user, None, false)
        }
        Change::ChannelCreated { channel } => channel_created(world, viewer, channel),
        Change::Archived {
            channel,
            by,
            archived,
        } => channel_event(
            world,
            viewer,
            channel,
            if *archived { "archive" } else { "unarchive" },
        )
        .map(|(team, mut event)| {
            if event["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("channel_"))
            {
                event["user"] = json!(by);
            }
            (team, event)
        })
        .into_iter()
        .collect(),
        Change::Renamed { channel } => channel_event(world, viewer, channel, "rename")
            .map(|(team, mut event)| {
                let object = world.channel(channel).expect("rendered above");
                event["channel"] =
                    json!({"id": object.id, "name": object.name, "created": object.created});
                (team, event)
            })
            .into_iter()
            .collect(),
        Change::SubteamCreated { id } => subteam_event(world, viewer, id, "subteam_created"),
        Change::SubteamUpdated { id } => subteam_event(world, viewer, id, "subteam_updated"),
        Change::SubteamMembers {
            id,
            added,
            removed,
            previous,
            update,
        } => members_changed(world, viewer, id, added, removed, (*previous, *update)),
        Change::UserChanged { id } => user_changed(world, viewer, id),
        Change::TeamJoin { user, team } => match world.user(user) {
            Some(person) if viewer.sees_workspace(team) => vec![(
                team.clone(),
                json!({"type": "team_join", "user": crate::web::user_json(world, person)}),
            )],
            _ => Vec::new(),
        },
    }
}

/// `subteam_members_changed`: the delta, and the two `date_update`s it links.
fn members_changed(
    world: &World,
    viewer: &Viewer,
    id: &str,
    added: &[String],
    removed: &[String],
    (previous, update): (u64, u64),
) -> Vec<(String, Value)> {
    let Some(group) = world.usergroups.iter().find(|g| g.id == id) else {
        return Vec::new();
    };
    if !viewer.sees_workspace(&group.workspace) {
        return Vec::new();
    }
    vec![(
        group.workspace.clone(),
        json!({
            "type": "subteam_members_changed",
            "subteam_id": id,
            "team_id": group.workspace,
            "date_previous_update": previous,
            "date_update": update,
            "added_users": added,
            "added_users_count": added.len().to_string(),
            "removed_users": removed,
            "removed_users_count": removed.len().to_string(),
        }),
    )]
}

/// `user_change`, to the first workspace of the person's that the app sees.
fn user_changed(world: &World, viewer: &Viewer, id: &str) -> Vec<(String, Value)> {
    let Some(user) = world.user(id) else {
        return Vec::new();
    };
    user.workspaces
        .iter()
        .find(|w| viewer.sees_workspace(w))
        .map(|team| {
            (
                team.clone(),
                json!({"type": "user_change", "user": crate::web::user_json(world, user)}),
            )
        })
        .into_iter()
        .collect()
}

/// `member_joined_channel` / `member_left_channel`: only where the bot is a member (a
/// bot that left gets no event for its own leaving, as on Slack).
fn membership_event(
    world: &World,
    viewer: &Viewer,
    channel: &str,
    user: &str,
    inviter: Option<&str>,
    joined: bool,
) -> Vec<(String, Value)> {
    let Some(object) = world.channel(channel) else {
        return Vec::new();
    };
    if !object.members.iter().any(|m| m == viewer.bot) {
        return Vec::new();
    }
    let mut event = json!({
        "type": if joined { "member_joined_channel" } else { "member_left_channel" },
        "user": user,
        "channel": channel,
        "channel_type": if object.private { "G" } else { "C" },
        "team": object.workspace,
    });
    if let Some(inviter) = inviter {
        event["inviter"] = json!(inviter);
    }
    if let Some(enterprise) = &world.enterprise {
        event["enterprise"] = json!(enterprise.id);
    }
    vec![(object.workspace.clone(), event)]
}

fn channel_created(world: &World, viewer: &Viewer, channel: &str) -> Vec<(String, Value)> {
    match world.channel(channel) {
        Some(object) if !object.private && viewer.sees_workspace(&object.workspace) => vec![(
            object.workspace.clone(),
            json!({
                "type": "channel_created",
                "channel": {
                    "id": object.id,
                    "name": object.name,
                    "created": object.created,
                    "creator": object.creator,
                },
            }),
        )],
        _ => Vec::new(),
    }
}

/// `channel_{what}` for a public channel the app's workspace has, `group_{what}` for a
/// private one the bot is in.
fn channel_event(
    world: &World,
    viewer: &Viewer,
    channel: &str,
    what: &str,
) -> Option<(String, Value)> {
    let object = world.channel(channel)?;
    let visible = if object.private {
        object.members.iter().any(|m| m == viewer.bot)
    } else {
        viewer.sees_workspace(&object.workspace)
    };
    if !visible {
        return None;
    }
    let prefix = if object.private { "group" } else { "channel" };
    Some((
        object.workspace.clone(),
        json!({"type": format!("{prefix}_{what}"), "channel": object.id}),
    ))
}

/// Slack cuts a usergroup's `users` at 500 in `subteam_*` events; `user_count` stays
/// exact.
pub const SUBTEAM_USERS_CUT: usize = 500;

fn subteam_event(world: &World, viewer: &Viewer, id: &str, kind: &str) -> Vec<(String, Value)> {
    let Some(group) = world.usergroups.iter().find(|g| g.id == id) else {
        return Vec::new();
    };
    if !viewer.sees_workspace(&group.workspace) {
        return Vec::new();
    }
    let mut subteam = crate::web::usergroup_json(world, group);
    subteam["users"] = json!(
        group
            .users
            .iter()
            .take(SUBTEAM_USERS_CUT)
            .collect::<Vec<_>>()
    );
    vec![(
        group.workspace.clone(),
        json!({"type": kind, "subteam": subteam}),
    )]
}

/// The `event_callback` envelope around one inner event.
fn envelope(
    world: &World,
    subscription: &Subscription,
    viewer: &Viewer,
    team: String,
    mut event: Value,
    now: f64,
    number: u64,
) -> Envelope {
    let seconds = now.floor() as u64;
    let event_ts = format!("{seconds}.{:06}", number % 1_000_000);
    event["event_ts"] = json!(event_ts);
    let kind = event["type"].as_str().unwrap_or_default().to_string();
    let enterprise = world.enterprise.as_ref().map(|e| e.id.clone());
    let event_id = format!("Ev{number:010}");
    let body = json!({
        "token": subscription.verification_token,
        "team_id": team,
        "enterprise_id": enterprise,
        "context_team_id": team,
        "context_enterprise_id": enterprise,
        "api_app_id": subscription.app,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": seconds,
        "authorizations": [{
            "enterprise_id": enterprise,
            "team_id": team,
            "user_id": viewer.bot,
            "is_bot": true,
            "is_enterprise_install": viewer.org_level,
        }],
        "is_ext_shared_channel": false,
        "event_context": format!("4-{}", event_id.to_lowercase()),
    });
    Envelope {
        event_id,
        kind,
        team,
        body,
    }
}

/// The `app_rate_limited` notice Slack sends, once a minute, while a workspace is over
/// its hourly event limit.
pub fn rate_limited_notice(subscription: &Subscription, team: &str, minute: u64) -> Value {
    json!({
        "token": subscription.verification_token,
        "type": "app_rate_limited",
        "team_id": team,
        "minute_rate_limited": minute,
        "api_app_id": subscription.app,
    })
}
