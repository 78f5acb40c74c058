//! Slack's Socket Mode, the Events API without a public URL: with `SLACK_APP_TOKEN` (an
//! app-level `xapp-` token with `connections:write`) the replica holds a WebSocket from
//! `apps.connections.open` and takes each event Slack sends there as `/hooks/slack`
//! takes a POST: kept in the store once per event id (the leader drains them), then
//! acknowledged by its envelope id. An event the store could not keep is not
//! acknowledged, so Slack sends it again; a malformed one is acknowledged and counted
//! as rejected, never retried forever.
//!
//! Slack refreshes connections every few hours (`disconnect`: `warning`, then
//! `refresh_requested`): the replica opens a new one at once. A connection lost any other
//! way is opened again after a backoff (1 s, doubling to a minute). Slack retries an
//! event that was not acknowledged (at once, after a minute, after five); a connection
//! down for longer than that may have lost events, so coming back after such an outage
//! records a gap in the stream, as an `app_rate_limited` does.
//!
//! The connection carries its own liveness check: a ping every [`PING_EVERY`], and a
//! connection that has sent nothing for [`SILENT_FOR`] is dropped and opened again.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Shared;
use super::mirror::{Kept, MAX_SLACK_EVENT_BYTES};
use crate::mirror::Delivery;

/// How often the connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A connection silent for this long (no event, no pong) is dropped.
const SILENT_FOR: Duration = Duration::from_secs(90);
/// How long Slack has to say `hello` after the connection opens.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// The first pause after a failed connection, doubled each time up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Emulated seconds of Slack's retries of an unacknowledged event (at once, after one
/// minute, after five): an outage longer than this may have lost events.
const SLACK_RETRIES_SECS: f64 = 360.0;
/// Room for the envelope around an event of [`MAX_SLACK_EVENT_BYTES`].
const ENVELOPE_BYTES: usize = 4 * 1024;

/// The Socket Mode connection's counters, for `/status`.
#[derive(Debug, Default)]
pub struct SocketCounters {
    pub connected: AtomicBool,
    /// Connections opened (Slack said `hello`).
    pub opened: AtomicU64,
    /// Connections Slack asked to refresh (`disconnect`).
    pub refreshed: AtomicU64,
    /// Connections lost otherwise (closed, broken, silent, or not opened at all).
    pub lost: AtomicU64,
    /// Envelopes acknowledged.
    pub acknowledged: AtomicU64,
    /// Why the last connection failed, until one opens.
    pub last_error: Mutex<Option<String>>,
}

/// The Socket Mode connection as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SocketStatus {
    pub connected: bool,
    pub opened: u64,
    pub refreshed: u64,
    pub lost: u64,
    pub acknowledged: u64,
    pub last_error: Option<String>,
}

impl SocketCounters {
    pub fn status(&self) -> SocketStatus {
        SocketStatus {
            connected: self.connected.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            refreshed: self.refreshed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn failed(&self, why: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.lost.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }
}

/// How a connection ended.
enum Ended {
    /// Slack asked for a new one (`disconnect`): open it at once.
    Refresh,
    /// Lost: open another after the backoff.
    Lost(String),
}

/// Holds a Socket Mode connection for as long as the controller runs, when it has an
/// app token and a commit has named the Slack it talks to.
pub async fn socket_loop(shared: Arc<Shared>) {
    let Some(token) = shared.slack_app_token.clone() else {
        return;
    };
    // The system's roots, loaded once for every connection.
    let tls = match crate::tls::client_config(None) {
        Ok(tls) => Arc::new(tls),
        Err(error) => {
            shared.socket.failed(format!("TLS: {error}"));
            tracing::error!(%error, "Socket Mode cannot start: no TLS settings");
            return;
        }
    };
    let mut backoff = MIN_BACKOFF;
    // When the stream was last known to be whole (unix ms): the end of the last
    // connection, or the start.
    let mut down_since: Option<i64> = None;
    loop {
        let client = shared
            .refresh_with
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|with| with.client.clone());
        let Some(client) = client else {
            tokio::time::sleep(MIN_BACKOFF).await;
            continue;
        };
        let ended = match client.open_socket(&token).await {
            Ok(url) => connect(&shared, &url, &tls, &mut backoff, &mut down_since).await,
            Err(error) => Ended::Lost(format!("apps.connections.open: {error}")),
        };
        shared.socket.connected.store(false, Ordering::Relaxed);
        down_since.get_or_insert_with(crate::clock::now_millis);
        match ended {
            Ended::Refresh => {
                shared.socket.refreshed.fetch_add(1, Ordering::Relaxed);
                tracing::info!("Slack refreshes the Socket Mode connection");
            }
            Ended::Lost(why) => {
                tracing::warn!(%why, retry_in = ?backoff, "the Socket Mode connection is down");
                shared.socket.failed(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection, from the WebSocket handshake to its end.
async fn connect(
    shared: &Arc<Shared>,
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    backoff: &mut Duration,
    down_since: &mut Option<i64>,
) -> Ended {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_SLACK_EVENT_BYTES + ENVELOPE_BYTES))
        .max_frame_size(Some(MAX_SLACK_EVENT_BYTES + ENVELOPE_BYTES));
    let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector));
    let mut socket = match tokio::time::timeout(HELLO_WITHIN, handshake).await {
        Ok(Ok((socket, _))) => socket,
        // The URL carries a one-time ticket: never put it in a message.
        Ok(Err(error)) => return Ended::Lost(format!("the WebSocket did not open: {error}")),
        Err(_) => return Ended::Lost("the WebSocket did not open in time".into()),
    };
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut heard = tokio::time::Instant::now();
    let mut greeted = false;
    loop {
        let deadline = if greeted { SILENT_FOR } else { HELLO_WITHIN };
        let message = tokio::select! {
            message = socket.next() => message,
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return Ended::Lost("the connection broke".into());
                }
                continue;
            }
            _ = tokio::time::sleep_until(heard + deadline) => {
                return Ended::Lost(if greeted {
                    "the connection went silent".into()
                } else {
                    "Slack did not say hello".into()
                });
            }
        };
        heard = tokio::time::Instant::now();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => {
                return Ended::Lost("Slack closed the connection".into());
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Ended::Lost(format!("the connection broke: {error}")),
        };
        let Ok(envelope) = serde_json::from_str::<Value>(text.as_str()) else {
            shared.events.rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match envelope["type"].as_str() {
            Some("hello") => {
                greeted = true;
                hello(shared, backoff, down_since).await;
            }
            Some("disconnect") if envelope["reason"] == "warning" => {
                tracing::debug!("Slack will refresh the Socket Mode connection soon");
            }
            Some("disconnect") => return Ended::Refresh,
            _ => {
                if let Some(ack) = take(shared, &envelope).await
                    && socket.send(Message::Text(ack.into())).await.is_err()
                {
                    return Ended::Lost("the connection broke".into());
                }
            }
        }
    }
}

/// Slack said `hello`: the connection is up. After an outage longer than Slack's
/// retries, the stream has a gap where the connection was down.
async fn hello(shared: &Arc<Shared>, backoff: &mut Duration, down_since: &mut Option<i64>) {
    *backoff = MIN_BACKOFF;
    shared.socket.connected.store(true, Ordering::Relaxed);
    shared.socket.opened.fetch_add(1, Ordering::Relaxed);
    *shared
        .socket
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = None;
    if let Some(since) = down_since.take() {
        let now = crate::clock::now_millis();
        let emulated = (now - since) as f64 / 1000.0 * shared.time_scale;
        if emulated > SLACK_RETRIES_SECS {
            tracing::warn!(
                down_seconds = emulated,
                "Socket Mode was down longer than Slack retries events; the mirror re-reads"
            );
            super::mirror::gap(shared, now).await;
        }
    }
    tracing::info!("Socket Mode connected");
}

/// Takes one envelope: an event is kept like a POSTed one. Answers the ack to send, or
/// `None` when the event must come again (the store did not keep it) or there is no
/// envelope id to acknowledge (counted as rejected).
async fn take(shared: &Arc<Shared>, envelope: &Value) -> Option<String> {
    let Some(id) = envelope["envelope_id"].as_str() else {
        // Nothing to acknowledge, nothing to keep.
        shared.events.rejected.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let ack = json!({ "envelope_id": id }).to_string();
    if envelope["type"] != "events_api" {
        // Interactivity and slash commands: not ours to answer, but acknowledged so
        // Slack does not send them again.
        shared.socket.acknowledged.fetch_add(1, Ordering::Relaxed);
        return Some(ack);
    }
    let body = serde_json::to_vec(&envelope["payload"]).unwrap_or_default();
    let now = crate::clock::now_millis();
    let parsed = Delivery::parse(&body)
        .ok()
        .filter(|_| body.len() <= MAX_SLACK_EVENT_BYTES);
    match parsed {
        Some(Delivery::Event(event)) => {
            if super::mirror::keep(shared, event, &body, now).await == Kept::Failed {
                return None;
            }
        }
        Some(Delivery::RateLimited { minute }) => {
            super::mirror::rate_limited(shared, minute, now).await;
        }
        Some(Delivery::UrlVerification { .. }) | None => {
            shared.events.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared.socket.acknowledged.fetch_add(1, Ordering::Relaxed);
    Some(ack)
}
