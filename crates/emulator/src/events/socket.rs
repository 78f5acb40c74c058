//! Socket Mode: the app opens a WebSocket (a URL from `apps.connections.open`, called
//! with an app-level token) and Slack sends it events there instead of POSTing them.
//!
//! As on Slack: the first message is `hello`; each event comes in an envelope
//! (`envelope_id`, `payload`, `type: events_api`, `retry_attempt`, `retry_reason`) that
//! the app acknowledges by sending back `{"envelope_id": ...}` within the subscription's
//! ack timeout, or the event is retried on Slack's schedule like an HTTP delivery. An
//! app holds at most [`MAX_CONNECTIONS`] connections and each event goes to one of them.
//! Slack refreshes connections with a `disconnect` message (`warning` first, then
//! `refresh_requested`); the control surface sends one on demand
//! (`POST /_emulator/events/socket`), which also sends raw frames for testing an app's
//! receiver against a broken Slack.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::{Emulator, lock};

/// Connections one app may hold at once (Slack: 10).
pub const MAX_CONNECTIONS: usize = 10;

/// Unpredictable bits for a ticket: a per-process random key hashed with its number.
pub fn ticket_noise(number: u64) -> u64 {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut hasher = KEY.get_or_init(Default::default).build_hasher();
    hasher.write_u64(number);
    hasher.finish()
}

enum Outgoing {
    Text(String),
    Close,
}

struct Connection {
    id: u64,
    app: String,
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

/// The open Socket Mode connections and the envelopes waiting for their ack.
#[derive(Default)]
pub struct Sockets {
    connections: Mutex<Vec<Connection>>,
    acks: Mutex<HashMap<String, oneshot::Sender<()>>>,
    opened: AtomicU64,
    acked: AtomicU64,
    disconnects: AtomicU64,
    turn: AtomicUsize,
    envelopes: AtomicU64,
}

/// What `GET /_emulator/events` shows of Socket Mode.
#[derive(Debug, Clone, Serialize)]
pub struct SocketReport {
    /// Connections open now.
    pub connections: usize,
    /// Connections opened since the emulator started.
    pub opened: u64,
    /// Envelopes acknowledged.
    pub acked: u64,
    /// `disconnect` messages sent.
    pub disconnects: u64,
}

impl Sockets {
    pub fn report(&self) -> SocketReport {
        SocketReport {
            connections: lock(&self.connections).len(),
            opened: self.opened.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
        }
    }

    fn open_for(&self, app: &str) -> usize {
        lock(&self.connections)
            .iter()
            .filter(|c| c.app == app)
            .count()
    }

    /// Sends one event envelope to one of `app`'s connections (in turn) and waits for
    /// its ack. The error is the retry reason.
    pub async fn deliver(
        &self,
        app: &str,
        payload: &[u8],
        retry: u32,
        reason: Option<&str>,
        timeout: Duration,
    ) -> Result<(), &'static str> {
        let number = self.envelopes.fetch_add(1, Ordering::Relaxed) + 1;
        let envelope_id = format!("{number:08x}-{:016x}", ticket_noise(number));
        let payload: Value = serde_json::from_slice(payload).map_err(|_| "unknown_error")?;
        let text = json!({
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": retry,
            "retry_reason": reason.unwrap_or_default(),
        })
        .to_string();
        let (done, acked) = oneshot::channel();
        lock(&self.acks).insert(envelope_id.clone(), done);
        let sent = {
            let connections = lock(&self.connections);
            let mine: Vec<&Connection> = connections.iter().filter(|c| c.app == app).collect();
            if mine.is_empty() {
                false
            } else {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed) % mine.len();
                mine[turn].outgoing.send(Outgoing::Text(text)).is_ok()
            }
        };
        if !sent {
            lock(&self.acks).remove(&envelope_id);
            return Err("connection_failed");
        }
        match tokio::time::timeout(timeout, acked).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                lock(&self.acks).remove(&envelope_id);
                Err("timeout")
            }
        }
    }

    /// Sends `disconnect` with `reason` to every connection; unless it is only a
    /// `warning`, closes them after it.
    pub fn disconnect(&self, reason: &str) -> usize {
        let text = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "slack-emulator"},
        })
        .to_string();
        let connections = lock(&self.connections);
        for connection in connections.iter() {
            let _ = connection.outgoing.send(Outgoing::Text(text.clone()));
            if reason != "warning" {
                let _ = connection.outgoing.send(Outgoing::Close);
            }
        }
        self.disconnects
            .fetch_add(connections.len() as u64, Ordering::Relaxed);
        connections.len()
    }

    /// Sends every connection `frames` as text, as they are.
    pub fn send_raw(&self, frames: &[String]) -> usize {
        let connections = lock(&self.connections);
        for connection in connections.iter() {
            for frame in frames {
                let _ = connection.outgoing.send(Outgoing::Text(frame.clone()));
            }
        }
        connections.len()
    }

    /// An ack from the app: `{"envelope_id": ...}`. Anything else is ignored.
    fn acknowledge(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(id) = message["envelope_id"].as_str() else {
            return;
        };
        if let Some(done) = lock(&self.acks).remove(id) {
            self.acked.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(());
        }
    }

    fn register(&self, app: &str, outgoing: mpsc::UnboundedSender<Outgoing>) -> u64 {
        let id = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.connections).push(Connection {
            id,
            app: app.to_string(),
            outgoing,
        });
        id
    }

    fn unregister(&self, id: u64) {
        lock(&self.connections).retain(|c| c.id != id);
    }
}

/// `GET /link/?ticket=...`: the WebSocket `apps.connections.open` pointed at. The ticket
/// is used up; an unknown or expired one is refused before the upgrade.
pub async fn link(
    State(emulator): State<Arc<Emulator>>,
    Query(params): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let app = {
        let now = emulator.clock.now();
        let mut world = lock(&emulator.world);
        let ticket = params.get("ticket").map(String::as_str).unwrap_or_default();
        match world.socket_tickets.remove(ticket) {
            Some(ticket) if ticket.expires > now => ticket.app,
            _ => return (StatusCode::UNAUTHORIZED, "invalid or used ticket\n").into_response(),
        }
    };
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(emulator, app, socket))
}

/// One connection: `hello`, then envelopes out and acks in until either side closes.
async fn serve(emulator: Arc<Emulator>, app: String, mut socket: WebSocket) {
    let sockets = &emulator.sockets;
    if sockets.open_for(&app) >= MAX_CONNECTIONS {
        let refusal = json!({"type": "disconnect", "reason": "too_many_websockets"});
        let _ = socket.send(Message::Text(refusal.to_string().into())).await;
        let _ = socket.send(Message::Close(None)).await;
        return;
    }
    let (outgoing, mut queued) = mpsc::unbounded_channel();
    let id = sockets.register(&app, outgoing);
    let hello = json!({
        "type": "hello",
        "num_connections": sockets.open_for(&app),
        "debug_info": {"host": "slack-emulator", "approximate_connection_time": 18060},
        "connection_info": {"app_id": app},
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                next = queued.recv() => match next {
                    Some(Outgoing::Text(text)) => {
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Close) | None => {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => sockets.acknowledge(&text),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    sockets.unregister(id);
}
