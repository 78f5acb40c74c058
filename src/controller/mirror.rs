//! The controller's side of the live Slack mirror: Slack's events in at `/hooks/slack`
//! (any replica: verified, deduplicated by event id in the store, acknowledged at once),
//! and the leader's drain, which turns them into the mirror's invalidations.
//!
//! Signing follows Slack's "Verifying requests from Slack": the HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{body}` under the app's signing secret, hex, after
//! `v0=`, compared in constant time; a timestamp more than five minutes from our clock
//! is a replay and refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use serde::Serialize;

use super::Shared;
use crate::mirror::stream::Health;
use crate::mirror::{Effect, agrees, effects};
use crate::model::live::LiveUsergroup;
use crate::store::{MirrorSummary, Store, StoreError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A request older or newer than this (five minutes) is refused as a replay.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;
/// The largest event body taken (a `subteam_updated` with 500 users is about 10 KB, a
/// `user_change` a few KB). With at most `store::MAX_PENDING_EVENTS` waiting, this
/// bounds what signed events can make the store hold.
pub const MAX_SLACK_EVENT_BYTES: usize = 64 * 1024;
/// Events drained per store transaction.
const DRAIN_BATCH: i64 = 1_000;
/// Drained events are remembered this long (a day) to recognise Slack's retries and
/// delayed deliveries.
const REMEMBER_MILLIS: i64 = 24 * 3_600_000;

/// What the receiver and the drain counted, for `/status` and the metrics.
#[derive(Debug, Default)]
pub struct EventCounters {
    pub received: AtomicU64,
    pub deduplicated: AtomicU64,
    pub rejected: AtomicU64,
    /// Events refused because too many waited to be drained.
    pub overflowed: AtomicU64,
    /// `app_rate_limited` notices: minutes in which Slack dropped events.
    pub rate_limited: AtomicU64,
    pub drained: AtomicU64,
    /// Deltas applied in place (an unbroken `subteam_members_changed` chain).
    pub chained: AtomicU64,
    /// Objects (a channel, or a workspace's usergroups) the refresher re-read.
    pub refreshed: AtomicU64,
    /// Managed channels the bot joined, and those it is not in and could not join.
    pub bot_joined: AtomicU64,
    pub bot_missing: Mutex<Vec<String>>,
    /// Canaries sent, and those that came back (see `mirror::stream`).
    pub canaries_sent: AtomicU64,
    pub canaries: AtomicU64,
    /// Why the last canary could not be sent, until one is.
    pub canary_error: Mutex<Option<String>>,
    /// When the last event arrived (unix ms), and when the stream last had a gap.
    pub last_event_at: Mutex<Option<i64>>,
    pub last_gap_at: Mutex<Option<i64>>,
}

/// The mirror as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorStatus {
    pub objects: u64,
    pub stale: u64,
    /// The oldest verification of a clean object (UTC), if any.
    pub oldest_verified: Option<String>,
    #[serde(skip)]
    pub oldest_verified_at: Option<i64>,
    pub pending_events: u64,
    pub events_received: u64,
    pub events_deduplicated: u64,
    pub events_rejected: u64,
    pub events_overflowed: u64,
    pub rate_limited_minutes: u64,
    pub events_drained: u64,
    /// `subteam_members_changed` deltas applied in place (an unbroken chain).
    pub deltas_applied: u64,
    /// Re-reads by the refresher (a channel, or a workspace's usergroups).
    pub refreshed: u64,
    /// Managed channels the bot joined to see their membership events.
    pub bot_joined: u64,
    /// Managed channels the bot is not in and could not join (a private one must invite
    /// it).
    pub bot_missing: Vec<String>,
    pub last_event: Option<String>,
    /// The event stream's health: whether reads trust the mirror, and why not.
    pub stream: StreamStatus,
    /// The last time the stream is known to have lost events (UTC).
    pub last_gap: Option<String>,
    /// The Socket Mode connection, when events come that way (`SLACK_APP_TOKEN`).
    pub socket: Option<super::socket::SocketStatus>,
    /// Gaps filled from the Audit Logs (`SLACK_AUDIT_TOKEN`).
    pub gap_fill: Option<super::audit::GapFillStatus>,
}

/// The event stream as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStatus {
    /// Reads take the mirror's copies (what a plan changes is read live anyway).
    pub healthy: bool,
    /// Why reads do not trust the mirror, when they do not.
    pub untrusted: Option<String>,
    /// When the newest canary that came back was sent (UTC): up to then, every change's
    /// event has had its chance to arrive.
    pub watermark: Option<String>,
    pub watermark_age_seconds: Option<f64>,
    /// The last gap: copies verified before it count as unverified.
    pub gap: Option<String>,
    pub canaries_sent: u64,
    pub canaries_back: u64,
    /// Why the last canary could not be sent, until one is.
    pub canary_error: Option<String>,
}

/// The mirror, its events and its stream's health at `now`, for `/status` and the
/// metrics.
pub fn mirror_status(shared: &Shared, now: i64) -> Result<MirrorStatus, StoreError> {
    let summary = shared.store.mirror_summary(&shared.election.lease)?;
    let stream = shared.store.slack_stream(&shared.election.lease)?;
    let mut status = shared.events.status(summary);
    let health = health_of(shared, &stream, now);
    let counters = &shared.events;
    status.stream = StreamStatus {
        healthy: matches!(health, Health::Healthy { .. }),
        untrusted: match health {
            Health::Untrusted(why) => Some(why),
            Health::Healthy { .. } => None,
        },
        watermark: stream.watermark.map(crate::model::iso_time),
        watermark_age_seconds: stream.watermark.map(|at| (now - at).max(0) as f64 / 1000.0),
        gap: stream.gap_at.map(crate::model::iso_time),
        canaries_sent: counters.canaries_sent.load(Ordering::Relaxed),
        canaries_back: counters.canaries.load(Ordering::Relaxed),
        canary_error: counters
            .canary_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    };
    if shared.slack_app_token.is_some() {
        status.socket = Some(shared.socket.status());
    }
    if shared.slack_audit_token.is_some() {
        status.gap_fill = Some(shared.gap_fill.status());
    }
    Ok(status)
}

impl EventCounters {
    pub fn status(&self, summary: MirrorSummary) -> MirrorStatus {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let time = |at: &Mutex<Option<i64>>| {
            at.lock()
                .unwrap_or_else(|p| p.into_inner())
                .map(crate::model::iso_time)
        };
        MirrorStatus {
            objects: summary.objects,
            stale: summary.stale,
            oldest_verified: summary.oldest_verified_at.map(crate::model::iso_time),
            oldest_verified_at: summary.oldest_verified_at,
            pending_events: summary.pending_events,
            events_received: load(&self.received),
            events_deduplicated: load(&self.deduplicated),
            events_rejected: load(&self.rejected),
            events_overflowed: load(&self.overflowed),
            rate_limited_minutes: load(&self.rate_limited),
            events_drained: load(&self.drained),
            deltas_applied: load(&self.chained),
            refreshed: load(&self.refreshed),
            bot_joined: load(&self.bot_joined),
            bot_missing: self
                .bot_missing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            last_event: time(&self.last_event_at),
            last_gap: time(&self.last_gap_at),
            stream: StreamStatus::default(),
            socket: None,
            gap_fill: None,
        }
    }

    pub fn gap(&self, now: i64) {
        *self.last_gap_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    }
}

/// The event stream had a gap at `now` (Slack dropped events, or the receiver could not
/// keep one): counted, and recorded in the store, so that every replica's reads take
/// the copies verified before it as unverified.
pub async fn gap(shared: &Shared, now: i64) {
    shared.events.gap(now);
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let recorded = tokio::task::spawn_blocking(move || store.slack_stream_gap(&scope, now)).await;
    if !matches!(recorded, Ok(Ok(()))) {
        tracing::warn!(
            "a gap in the Slack event stream could not be recorded; reads may trust copies older than it"
        );
    }
}

/// Slack dropped events in `minute` (`app_rate_limited`): a gap in the stream.
pub async fn rate_limited(shared: &Shared, minute: i64, now: i64) {
    shared.events.rate_limited.fetch_add(1, Ordering::Relaxed);
    gap(shared, now).await;
    tracing::warn!(
        minute,
        "Slack dropped events over its hourly limit (app_rate_limited); the mirror re-reads"
    );
}

/// What became of an event offered to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Kept for the leader's drain.
    New,
    /// Kept before (Slack sent it again, or another replica took it).
    Duplicate,
    /// Too many wait to be drained: dropped, and the stream counts a gap. The sender is
    /// told it arrived anyway: refusing would only make Slack disable the subscription.
    Overflowed,
    /// The store refused it: the sender should send it again.
    Failed,
}

/// Keeps a verified event in the store for the leader, once per event id (both
/// receivers, `/hooks/slack` and Socket Mode, come here).
pub async fn keep(
    shared: &Arc<Shared>,
    event: crate::mirror::Inbound,
    body: &[u8],
    now: i64,
) -> Kept {
    use crate::store::Offered;
    let counters = &shared.events;
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let text = String::from_utf8_lossy(body).into_owned();
    let offered =
        tokio::task::spawn_blocking(move || store.offer_slack_event(&scope, &event, &text, now))
            .await;
    let offered = offered
        .map_err(|e| e.to_string())
        .and_then(|o| o.map_err(|e| e.to_string()));
    match offered {
        Ok(Offered::New) => {
            counters.received.fetch_add(1, Ordering::Relaxed);
            *counters
                .last_event_at
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(now);
            shared.mirror_wake.notify_one();
            Kept::New
        }
        Ok(Offered::Duplicate) => {
            counters.deduplicated.fetch_add(1, Ordering::Relaxed);
            Kept::Duplicate
        }
        Ok(Offered::Full) => {
            counters.overflowed.fetch_add(1, Ordering::Relaxed);
            gap(shared, now).await;
            Kept::Overflowed
        }
        Err(error) => {
            tracing::warn!(%error, "a Slack event was not kept; Slack sends it again");
            Kept::Failed
        }
    }
}

/// The event stream's health at `now`: untrusted unless Slack events are configured and
/// the canary comes back (see `mirror::stream`).
pub fn health(shared: &Shared, now: i64) -> Health {
    match shared.store.slack_stream(&shared.election.lease) {
        Ok(stream) => health_of(shared, &stream, now),
        Err(error) => Health::Untrusted(format!("the stream's state cannot be read: {error}")),
    }
}

/// [`health`] from the stream's state as read.
fn health_of(shared: &Shared, stream: &crate::mirror::stream::Stream, now: i64) -> Health {
    if !shared.events_configured() {
        return Health::Untrusted(
            "Slack events are not configured (SLACK_SIGNING_SECRET or SLACK_APP_TOKEN)".into(),
        );
    }
    crate::mirror::stream::health(stream, now, super::canary::bound(shared.time_scale))
}

/// How far a read may trust the mirror now: `None` to read Slack in full, else the time
/// before which copies count as unverified.
pub fn trust(shared: &Shared) -> Option<i64> {
    let health = health(shared, crate::clock::now_millis());
    if let Health::Untrusted(why) = &health {
        tracing::debug!(%why, "reading Slack in full, not from the mirror");
    }
    health.trust()
}

/// Whether a request carries Slack's signature of `body` under `secret`, made within
/// [`SIGNATURE_WINDOW_SECS`] of `now` (unix seconds).
pub fn signed_by_slack(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return false;
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return false;
    };
    // `abs_diff`: a forged timestamp near i64::MIN must not overflow.
    if now.abs_diff(timestamp) > SIGNATURE_WINDOW_SECS as u64 {
        return false;
    }
    let Some(expected) = signature
        .strip_prefix("v0=")
        .and_then(super::http::decode_hex)
    else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// What the refresher reads with: the commit in force's Slack client, its workspaces,
/// and the time scale its waits run at.
#[derive(Clone)]
pub struct RefreshWith {
    pub client: crate::slack::client::SlackClient,
    pub workspaces: Vec<String>,
    /// `(team id, name)` of the channels the config manages.
    pub managed: std::collections::BTreeSet<(String, String)>,
    pub time_scale: f64,
    /// The commit loaded (the bot's memberships are checked once per commit, and hourly).
    pub commit: String,
}

/// How often the bot's membership of the managed channels is checked again (emulated
/// seconds: an hour).
const MEMBERSHIP_EVERY_SECS: f64 = 3_600.0;

/// The refresher's default pace: channels re-read a minute (half of
/// `conversations.info`'s Tier 3, so syncs keep the other half).
pub const REFRESH_PER_MINUTE: f64 = 25.0;

/// Re-reads the mirror's channels and usergroups while this replica leads: the stale
/// first, then the one verified longest ago, `per_minute` reads a minute (emulated
/// minutes under a time scale), stepping aside while a sync reads and writes. Every
/// object is re-read at least every `objects / per_minute` minutes, whatever events say.
pub async fn refresh_loop(shared: Arc<Shared>, per_minute: f64) {
    let mut checked: Option<(String, tokio::time::Instant)> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(context) = leading_with(&shared, !shared.syncing.load(Ordering::SeqCst)) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let pause = Duration::from_secs_f64(60.0 / per_minute / context.time_scale.max(1e-9));
        let recheck = Duration::from_secs_f64(MEMBERSHIP_EVERY_SECS / context.time_scale.max(1e-9));
        if checked
            .as_ref()
            .is_none_or(|(commit, at)| *commit != context.commit || at.elapsed() >= recheck)
        {
            checked = Some((context.commit.clone(), tokio::time::Instant::now()));
            if let Err(error) = bot_membership(&shared, &context).await {
                tracing::warn!(%error, "the bot's channel memberships could not be checked");
            }
        }
        match refresh_one(&shared, &context).await {
            Ok(true) => tokio::time::sleep(pause).await,
            Ok(false) => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(error) => {
                tracing::warn!(%error, "the mirror refresher could not read; trying again later");
                tokio::time::sleep(pause.max(Duration::from_secs(5))).await;
            }
        }
    }
}

/// What the loaded commit reads Slack with, while this replica leads and `also` holds.
pub fn leading_with(shared: &Shared, also: bool) -> Option<RefreshWith> {
    if !also || shared.leader.leading().is_none() {
        return None;
    }
    shared
        .refresh_with
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Makes sure the bot is a member of every managed channel the mirror holds (it sees
/// no membership event of a channel it is not in): joins the public ones, and says which
/// private ones it must be invited to.
async fn bot_membership(shared: &Arc<Shared>, context: &RefreshWith) -> Result<(), String> {
    use crate::slack::client::Credential;
    let (identity, _) = context
        .client
        .auth_test(Credential::Bot)
        .await
        .map_err(|e| e.to_string())?;
    let Some(bot) = identity.get("user_id").and_then(serde_json::Value::as_str) else {
        return Err("auth.test did not name the bot".into());
    };
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let rows = tokio::task::spawn_blocking(move || store.mirror_rows(&scope))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.kind == crate::mirror::ObjectKind::Channel)
    {
        let Some(channel) = row
            .document
            .as_deref()
            .and_then(|d| serde_json::from_str::<crate::model::live::LiveChannel>(d).ok())
        else {
            continue;
        };
        let managed = context
            .managed
            .contains(&(channel.workspace.clone(), channel.name.clone()));
        let member = channel
            .members
            .as_ref()
            .is_none_or(|m| m.iter().any(|id| id == bot));
        if !managed || member || channel.archived {
            continue;
        }
        if channel.private {
            missing.push(format!("#{} (private: invite the bot)", channel.name));
            continue;
        }
        let joined = context
            .client
            .web_write(
                Credential::Bot,
                "conversations.join",
                &[("channel", channel.id.clone())],
            )
            .await;
        match joined {
            Ok(_) => {
                shared.events.bot_joined.fetch_add(1, Ordering::Relaxed);
                tracing::info!(channel = %channel.name, "the bot joined a managed channel");
            }
            Err(error) => missing.push(format!("#{} ({error})", channel.name)),
        }
    }
    if !missing.is_empty() {
        tracing::warn!(channels = ?missing, "the bot is not in every managed channel; their membership events are not seen");
    }
    *shared
        .events
        .bot_missing
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = missing;
    Ok(())
}

/// Re-reads the one object most due; false when the mirror is empty.
async fn refresh_one(shared: &Arc<Shared>, context: &RefreshWith) -> Result<bool, String> {
    use crate::mirror::{ObjectKind, Row};
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let due = {
        let (store, scope) = (store.clone(), scope.clone());
        tokio::task::spawn_blocking(move || {
            store.mirror_due(
                &scope,
                &[ObjectKind::Channel, ObjectKind::Usergroup, ObjectKind::User],
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    let Some(due) = due else {
        return Ok(false);
    };
    let started = crate::clock::now_millis();
    let (rows, gone) = match due.kind {
        ObjectKind::Channel => {
            // Members only where they were read before (a managed channel), or when the
            // channel is known only from an event.
            let with_members = due.document.as_deref().is_none_or(|d| {
                serde_json::from_str::<crate::model::live::LiveChannel>(d)
                    .is_ok_and(|c| c.members.is_some())
            });
            match crate::slack::reader::read_channel(&context.client, &due.id, with_members)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(channel) => (vec![Row::channel(&channel)], Vec::new()),
                None => (Vec::new(), vec![(ObjectKind::Channel, due.id.clone())]),
            }
        }
        ObjectKind::User => {
            match crate::slack::reader::read_user(&context.client, &due.id)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(user) => (vec![Row::user(&user)], Vec::new()),
                None => (Vec::new(), vec![(ObjectKind::User, due.id.clone())]),
            }
        }
        ObjectKind::Usergroup => {
            // One usergroups.list re-reads every usergroup of the workspace.
            let team = due
                .document
                .as_deref()
                .and_then(|d| serde_json::from_str::<LiveUsergroup>(d).ok())
                .map(|g| g.workspace);
            let teams = team.map_or_else(|| context.workspaces.clone(), |t| vec![t]);
            let mut rows = Vec::new();
            for team in &teams {
                let (groups, updates) =
                    crate::slack::reader::read_usergroups_in(&context.client, team)
                        .await
                        .map_err(|e| e.to_string())?;
                rows.extend(
                    groups
                        .iter()
                        .map(|g| Row::usergroup(g, updates.get(&g.id).copied())),
                );
            }
            let gone = if rows.iter().any(|r| r.id == due.id) {
                Vec::new()
            } else {
                vec![(ObjectKind::Usergroup, due.id.clone())]
            };
            (rows, gone)
        }
    };
    tokio::task::spawn_blocking(move || store.mirror_partial_read(&scope, &rows, &gone, started))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    shared.events.refreshed.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Drains events while this replica leads: woken by each new event, and every second.
/// Events that changed the mirror wake a drift check ([`super::Trigger::SlackEvent`]),
/// at most every [`CHECK_EVERY`] and never while a sync runs (it plans anyway). A check
/// that did not run to its end (the mirror could not serve it, or the wake was taken by
/// another sync) is asked for again, up to [`CHECK_RETRIES`] times.
pub async fn drain_loop(shared: Arc<Shared>) {
    let mut check_due: Option<tokio::time::Instant> = None;
    let mut last_check: Option<tokio::time::Instant> = None;
    // The checks that had run when the last one was asked for, and the retries left.
    let mut awaiting: Option<(u64, u32)> = None;
    loop {
        tokio::select! {
            _ = shared.mirror_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if shared.leader.leading().is_none() {
            continue;
        }
        let (store, scope, counters) = (
            shared.store.clone(),
            shared.election.lease.clone(),
            shared.clone(),
        );
        let drained = tokio::task::spawn_blocking(move || {
            drain(&store, &scope, &counters.events, crate::clock::now_millis())
        })
        .await;
        match drained {
            Ok(Ok(drained)) => {
                if drained.events as i64 == DRAIN_BATCH {
                    shared.mirror_wake.notify_one();
                }
                if drained.changes > 0 {
                    // New changes: a check owed for them gets its retries afresh.
                    if let Some((asked_at, _)) = awaiting {
                        awaiting = Some((asked_at, CHECK_RETRIES));
                    }
                    check_due.get_or_insert(
                        last_check.map_or_else(tokio::time::Instant::now, |at| at + CHECK_EVERY),
                    );
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "Slack events not drained; retrying"),
            Err(error) => tracing::warn!(%error, "the event drain failed"),
        }
        let checks = shared.event_checks.load(Ordering::SeqCst);
        if let Some((asked_at, retries)) = awaiting {
            let waited = last_check.is_some_and(|at| at.elapsed() >= 2 * CHECK_EVERY);
            if checks > asked_at {
                awaiting = None;
            } else if waited && check_due.is_none() && retries > 0 {
                check_due = Some(tokio::time::Instant::now());
                awaiting = Some((asked_at, retries - 1));
            }
        }
        if check_due.is_some_and(|due| due <= tokio::time::Instant::now())
            && !shared.syncing.load(Ordering::SeqCst)
        {
            check_due = None;
            last_check = Some(tokio::time::Instant::now());
            let retries = awaiting.map_or(CHECK_RETRIES, |(_, left)| left);
            awaiting = Some((checks, retries));
            shared.wake(super::Trigger::SlackEvent);
        }
    }
}

/// How many times a drift check that did not run is asked for again, [`CHECK_EVERY`]
/// twice apart; after that the drift tick has it.
const CHECK_RETRIES: u32 = 6;

/// Events that changed the mirror ask for a drift check from it at most this often.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What one drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Events drained.
    pub events: usize,
    /// Changes they made to the mirror (objects marked stale, deltas applied).
    pub changes: usize,
}

/// Drains one batch of events into the mirror.
pub fn drain(
    store: &Store,
    scope: &str,
    counters: &EventCounters,
    now: i64,
) -> Result<Drained, StoreError> {
    let pending = store.pending_slack_events(scope, DRAIN_BATCH)?;
    if pending.is_empty() {
        return Ok(Drained {
            events: 0,
            changes: 0,
        });
    }
    let mut all = Vec::new();
    let mut applied = Vec::new();
    // Usergroups as this batch leaves them: (date_update, document), for deltas that
    // chain within the batch.
    let mut chained: BTreeMap<String, Option<(i64, String)>> = BTreeMap::new();
    for event in &pending {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&event.body) else {
            continue;
        };
        // Our clock, not Slack's `event_time`: a read that started before the event
        // arrived may have missed the change, and only our own times compare safely with
        // a read's start.
        let at = event.received_at;
        // The canary's own change says the stream works; the usergroup is not managed,
        // so it is not marked stale either.
        if let Some(nonce) = crate::mirror::stream::canary_nonce(&body) {
            if store.canary_seen(scope, nonce, event.event_time, now)? {
                counters.canaries.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        for effect in effects(&body) {
            let keep = match &effect {
                Effect::Members {
                    usergroup,
                    previous,
                    update,
                    added,
                    removed,
                } => {
                    let state = chain_state(store, scope, &chained, usergroup)?;
                    let next = state
                        .filter(|(date, _)| date == previous)
                        .and_then(|(_, document)| with_delta(&document, added, removed))
                        .map(|document| (*update, document));
                    if let Some((date, document)) = &next {
                        applied.push((usergroup.clone(), *previous, *date, document.clone()));
                        counters.chained.fetch_add(1, Ordering::Relaxed);
                    }
                    chained.insert(usergroup.clone(), next);
                    true
                }
                Effect::Updated {
                    usergroup,
                    date_update,
                    subteam,
                } => {
                    // The update a delta applied: stale only if it shows something else.
                    let state = chain_state(store, scope, &chained, usergroup)?;
                    let same = state.is_some_and(|(date, document)| {
                        date == *date_update
                            && serde_json::from_str::<LiveUsergroup>(&document)
                                .is_ok_and(|copy| agrees(subteam, &copy))
                    });
                    if !same {
                        chained.insert(usergroup.clone(), None);
                    }
                    !same
                }
                Effect::Stale { .. } => true,
            };
            if keep {
                all.push((effect, at, event.received_at));
            }
        }
    }
    let ids: Vec<String> = pending.iter().map(|e| e.event_id.clone()).collect();
    store.drain_slack_events(scope, &ids, &all, &applied, now)?;
    counters
        .drained
        .fetch_add(pending.len() as u64, Ordering::Relaxed);
    store.prune_slack_events(scope, now - REMEMBER_MILLIS)?;
    Ok(Drained {
        events: pending.len(),
        changes: all.len(),
    })
}

/// A usergroup's `(date_update, document)` as this batch left it, else as the mirror
/// holds it; `None` when stale or unknown.
fn chain_state(
    store: &Store,
    scope: &str,
    chained: &BTreeMap<String, Option<(i64, String)>>,
    usergroup: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    if let Some(state) = chained.get(usergroup) {
        return Ok(state.clone());
    }
    Ok(store
        .mirror_usergroup(scope, usergroup)?
        .filter(|row| row.stale_since.is_none())
        .and_then(|row| Some((row.date_update?, row.document?))))
}

/// A usergroup document with a delta applied, or `None` if it is not a usergroup.
fn with_delta(document: &str, added: &[String], removed: &[String]) -> Option<String> {
    let mut group: LiveUsergroup = serde_json::from_str(document).ok()?;
    group.members.retain(|m| !removed.contains(m));
    for member in added {
        if !group.members.contains(member) {
            group.members.push(member.clone());
        }
    }
    serde_json::to_string(&group).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn slack_signatures_are_checked_with_their_timestamp() {
        // Slack's example: "Verifying requests from Slack".
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-slack-request-timestamp",
            HeaderValue::from_static("1531420618"),
        );
        headers.insert(
            "x-slack-signature",
            HeaderValue::from_static(
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        );
        assert!(signed_by_slack(secret, &headers, body, 1531420618 + 299));
        assert!(
            !signed_by_slack(secret, &headers, body, 1531420618 + 301),
            "a replay"
        );
        assert!(!signed_by_slack("another", &headers, body, 1531420618));
        assert!(!signed_by_slack(
            secret,
            &headers,
            b"token=changed",
            1531420618
        ));
        headers.insert(
            "x-slack-request-timestamp",
            HeaderValue::from_static("1531420619"),
        );
        assert!(
            !signed_by_slack(secret, &headers, body, 1531420618),
            "the timestamp is signed"
        );
    }

    #[test]
    fn a_delta_adds_and_removes_members() {
        let group = LiveUsergroup {
            id: "S1".into(),
            workspace: "T1".into(),
            handle: "eng".into(),
            name: "Eng".into(),
            description: String::new(),
            members: vec!["U1".into(), "U2".into()],
            channels: Vec::new(),
            disabled: false,
        };
        let document = serde_json::to_string(&group).unwrap();
        let next = with_delta(&document, &["U3".into(), "U1".into()], &["U2".into()]).unwrap();
        let next: LiveUsergroup = serde_json::from_str(&next).unwrap();
        assert_eq!(next.members, ["U1", "U3"]);
        assert_eq!(with_delta("{}", &[], &[]), None);
    }
}
