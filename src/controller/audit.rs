//! Filling the event stream's gaps from Slack's Audit Logs (Enterprise Grid).
//!
//! A gap (Slack's `app_rate_limited`, an event the store could not keep, a canary that
//! stopped coming back) makes every copy verified before it unverified: the next reads
//! go live for everything, which at 50,000 people costs half an hour of Slack's limits.
//! With `SLACK_AUDIT_TOKEN` (an org owner's user token with `auditlogs:read`), once a
//! canary sent after the gap has come back, the leader reads the Audit Logs from the
//! watermark the gap began at (Slack's clock, less [`MARGIN_SECS`]) to now, marks stale
//! every channel, usergroup and person they name as changed (unless a read after the
//! gap verified it since), and forgets the gap, in one transaction: the other copies
//! are trusted again, and only what changed is read live. Where the logs cannot be read
//! (Business+, a token without the scope, more than [`MAX_ENTRIES`] changes) the gap
//! stays, and reads stay live for everything older than it.
//!
//! The Audit Logs' limit, 50 calls a minute, is the whole org's, shared with every SIEM
//! that reads them: one fill takes one call per 1,000 changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::Shared;
use super::mirror::RefreshWith;
use crate::mirror::ObjectKind;
use crate::slack::client::Token;

/// Slack seconds read before the watermark a gap began at: Slack retries an event for
/// six minutes, and the canary's period and grace come on top.
pub const MARGIN_SECS: i64 = 600;
/// The most entries one fill reads; past it, the gap stays.
pub const MAX_ENTRIES: usize = 100_000;

/// What the gap filler did, for `/status`.
#[derive(Debug, Default)]
pub struct GapFillCounters {
    pub filled: AtomicU64,
    /// Objects the Audit Logs named and were marked stale.
    pub marked: AtomicU64,
    /// Why the last fill failed, until one works.
    pub error: Mutex<Option<String>>,
}

/// The gap filler as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GapFillStatus {
    pub filled: u64,
    pub marked: u64,
    pub error: Option<String>,
}

impl GapFillCounters {
    pub fn status(&self) -> GapFillStatus {
        GapFillStatus {
            filled: self.filled.load(Ordering::Relaxed),
            marked: self.marked.load(Ordering::Relaxed),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    fn failed(&self, why: Option<String>) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// Fills gaps from the leader, once a canary period, for as long as the controller runs
/// with an audit token.
pub async fn fill_loop(shared: Arc<Shared>) {
    let Some(token) = shared.slack_audit_token.clone() else {
        return;
    };
    loop {
        tokio::time::sleep(super::canary::pause(shared.time_scale)).await;
        let Some(context) = super::mirror::leading_with(&shared, shared.events_configured()) else {
            continue;
        };
        match fill_once(&shared, &context, &token).await {
            Ok(_) => shared.gap_fill.failed(None),
            Err(why) => {
                tracing::warn!(%why, "the event stream's gap was not filled from the Audit Logs");
                shared.gap_fill.failed(Some(why));
            }
        }
    }
}

/// One try: fills the stream's gap if there is one, it can be dated in Slack's clock,
/// and the stream has been whole since. Gives whether it filled one.
async fn fill_once(
    shared: &Arc<Shared>,
    context: &RefreshWith,
    token: &Token,
) -> Result<bool, String> {
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let stream = tokio::task::spawn_blocking(move || store.slack_stream(&scope))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let (Some(gap_at), Some(since)) = (stream.gap_at, stream.gap_since_slack) else {
        return Ok(false);
    };
    // Only once a canary sent after the gap came back: until then events may still be
    // lost, and the logs read now would not cover them.
    if stream.frozen_since.is_some() || stream.watermark.is_none_or(|w| w <= gap_at) {
        return Ok(false);
    }
    let stale = changed_since(context, token, since - MARGIN_SECS).await?;
    let (store, scope) = (shared.store.clone(), shared.election.lease.clone());
    let count = stale.len() as u64;
    let now = crate::clock::now_millis();
    let filled =
        tokio::task::spawn_blocking(move || store.fill_slack_gap(&scope, gap_at, &stale, now))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    if filled {
        shared.gap_fill.filled.fetch_add(1, Ordering::Relaxed);
        shared.gap_fill.marked.fetch_add(count, Ordering::Relaxed);
        tracing::info!(
            objects = count,
            "the event stream's gap was filled from the Audit Logs"
        );
    }
    Ok(filled)
}

/// The objects the Audit Logs name as changed since `oldest` (Slack's unix seconds).
async fn changed_since(
    context: &RefreshWith,
    token: &Token,
    oldest: i64,
) -> Result<Vec<(ObjectKind, String)>, String> {
    let mut named = BTreeSet::new();
    let (mut cursor, mut read) = (String::new(), 0);
    loop {
        let (entries, next) = context
            .client
            .audit_logs(token, oldest, &cursor)
            .await
            .map_err(|e| e.to_string())?;
        read += entries.len();
        if read > MAX_ENTRIES {
            return Err(format!(
                "more than {MAX_ENTRIES} changes since the gap began; reads stay live until the mirror is read again"
            ));
        }
        named.extend(entries.iter().filter_map(object_of));
        if next.is_empty() || entries.is_empty() {
            return Ok(named.into_iter().collect());
        }
        cursor = next;
    }
}

/// The mirrored object an audit entry names: a channel, a usergroup or a person. An id
/// that is not one of Slack's is ignored.
fn object_of(entry: &Value) -> Option<(ObjectKind, String)> {
    let entity = &entry["entity"];
    let (kind, object) = match entity["type"].as_str()? {
        "channel" => (ObjectKind::Channel, &entity["channel"]),
        "usergroup" => (ObjectKind::Usergroup, &entity["usergroup"]),
        "user" => (ObjectKind::User, &entity["user"]),
        _ => return None,
    };
    let id = object["id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 32)
        .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))?;
    Some((kind, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_name_channels_usergroups_and_people_and_nothing_else() {
        let channel = json!({"entity": {"type": "channel", "channel": {"id": "C0123"}}});
        let group = json!({"entity": {"type": "usergroup", "usergroup": {"id": "S0123"}}});
        let person = json!({"entity": {"type": "user", "user": {"id": "W0123"}}});
        let workflow = json!({"entity": {"type": "workflow", "workflow": {"id": "Wf1"}}});
        let hostile = json!({"entity": {"type": "channel", "channel": {"id": "C1' OR 1=1"}}});
        assert_eq!(
            object_of(&channel),
            Some((ObjectKind::Channel, "C0123".into()))
        );
        assert_eq!(
            object_of(&group),
            Some((ObjectKind::Usergroup, "S0123".into()))
        );
        assert_eq!(object_of(&person), Some((ObjectKind::User, "W0123".into())));
        assert_eq!(object_of(&workflow), None);
        assert_eq!(object_of(&hostile), None);
        assert_eq!(object_of(&json!({})), None);
    }
}
