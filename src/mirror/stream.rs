//! The event stream's health: how far the mirror can be trusted.
//!
//! Slack's event delivery is best-effort, and a quiet org sends no events, so silence
//! proves nothing. The **canary** makes silence mean something: the controller changes a
//! usergroup it owns (`@slack-gitops-canary`, its description) on a fixed period, and its
//! `subteam_updated` event must come back. The **watermark** is when the newest canary
//! that came back was sent: up to it, every change's event has had its chance to arrive.
//!
//! - A canary that does not come back before the next is due **freezes** the stream:
//!   no read trusts the mirror (Slack is read in full) until one comes back.
//! - When one comes back after a freeze, or Slack says it dropped events
//!   (`app_rate_limited`), or the receiver could not keep one, the stream had a **gap**:
//!   every copy verified before it counts as unverified, so the next read re-reads it.
//!
//! This module is pure: the canary's text, and the verdict from the stream's state.

use serde_json::Value;

/// The handle of the usergroup the canary changes.
pub const CANARY_HANDLE: &str = "slack-gitops-canary";

/// The canary usergroup's name.
pub const CANARY_NAME: &str = "slack-gitops event canary";

const DESCRIPTION_PREFIX: &str =
    "Owned by slack-gitops: changed on a schedule to prove Slack's events arrive. Canary ";

/// The description a canary sets: it carries the canary's nonce.
pub fn canary_description(nonce: i64) -> String {
    format!("{DESCRIPTION_PREFIX}{nonce}")
}

/// The nonce of a canary, when an event callback body is one: a `subteam_updated` of
/// the canary usergroup.
pub fn canary_nonce(body: &Value) -> Option<i64> {
    let event = &body["event"];
    if event["type"] != "subteam_updated" || event["subteam"]["handle"] != CANARY_HANDLE {
        return None;
    }
    event["subteam"]["description"]
        .as_str()?
        .strip_prefix(DESCRIPTION_PREFIX)?
        .parse()
        .ok()
}

/// The stream's state as the store keeps it (unix milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stream {
    /// The last gap: copies verified before it count as unverified.
    pub gap_at: Option<i64>,
    /// The newest canary sent: its nonce and when.
    pub canary_nonce: Option<i64>,
    pub canary_sent_at: Option<i64>,
    /// When the newest canary that came back was sent.
    pub watermark: Option<i64>,
    /// Since when a canary is overdue, while one is.
    pub frozen_since: Option<i64>,
    /// Slack's `event_time` (unix seconds) of the newest canary that came back.
    pub watermark_slack: Option<i64>,
    /// While a gap is unfilled: Slack's time (unix seconds) of the watermark when it
    /// began. Events may have been lost from then on; `None` when no canary had come
    /// back, and then the gap cannot be filled from the Audit Logs.
    pub gap_since_slack: Option<i64>,
}

/// What a read may make of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Copies verified before `unverified_before` count as unverified.
    Healthy {
        unverified_before: i64,
        watermark: i64,
    },
    /// No read trusts the mirror, for this reason.
    Untrusted(String),
}

impl Health {
    /// What a read passes on: `None` to read Slack in full.
    pub fn trust(&self) -> Option<i64> {
        match self {
            Health::Healthy {
                unverified_before, ..
            } => Some(*unverified_before),
            Health::Untrusted(_) => None,
        }
    }
}

/// The verdict at `now`: healthy only while a canary came back within `bound` ms (the
/// canary's period and its grace), with no canary overdue.
pub fn health(stream: &Stream, now: i64, bound: i64) -> Health {
    if let Some(since) = stream.frozen_since {
        return Health::Untrusted(format!(
            "a canary event sent at {} has not come back",
            crate::model::iso_time(since)
        ));
    }
    let Some(watermark) = stream.watermark else {
        return Health::Untrusted("no canary event has come back yet".into());
    };
    if now - watermark > bound {
        return Health::Untrusted(format!(
            "the newest canary event that came back was sent at {}: over {} s ago",
            crate::model::iso_time(watermark),
            bound / 1000
        ));
    }
    Health::Healthy {
        unverified_before: stream.gap_at.unwrap_or(0),
        watermark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary(handle: &str, description: &str) -> Value {
        json!({"type": "event_callback", "event": {"type": "subteam_updated",
            "subteam": {"handle": handle, "description": description}}})
    }

    #[test]
    fn only_the_canary_usergroup_carries_a_nonce() {
        let description = canary_description(1_700_000_000_123);
        assert_eq!(
            canary_nonce(&canary(CANARY_HANDLE, &description)),
            Some(1_700_000_000_123)
        );
        assert_eq!(canary_nonce(&canary("sre", &description)), None);
        assert_eq!(canary_nonce(&canary(CANARY_HANDLE, "Canary 12")), None);
        let mut other = canary(CANARY_HANDLE, &description);
        other["event"]["type"] = json!("subteam_members_changed");
        assert_eq!(canary_nonce(&other), None);
    }

    #[test]
    fn the_mirror_is_trusted_only_while_canaries_come_back() {
        let bound = 150_000;
        let never = Stream::default();
        assert!(matches!(health(&never, 0, bound), Health::Untrusted(_)));
        let fresh = Stream {
            watermark: Some(1_000_000),
            gap_at: Some(900_000),
            ..Stream::default()
        };
        assert_eq!(
            health(&fresh, 1_100_000, bound),
            Health::Healthy {
                unverified_before: 900_000,
                watermark: 1_000_000
            }
        );
        assert_eq!(health(&fresh, 1_100_000, bound).trust(), Some(900_000));
        assert!(matches!(
            health(&fresh, 1_000_000 + bound + 1, bound),
            Health::Untrusted(_)
        ));
        let frozen = Stream {
            frozen_since: Some(1_050_000),
            ..fresh
        };
        assert_eq!(health(&frozen, 1_060_000, bound).trust(), None);
    }
}
