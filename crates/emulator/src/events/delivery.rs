//! Delivering events as Slack does: HTTP POSTs to the request URL, signed with the
//! signing secret (`X-Slack-Signature` v0), or envelopes on a Socket Mode connection
//! ([`super::socket`]), acknowledged within 3 s or retried at once,
//! after a minute and after five (emulated) minutes with `x-slack-retry-num` and
//! `x-slack-retry-reason`, then dropped. More than 95% failed deliveries in an hour
//! disable the subscription (when the app gets at least 1,000 events an hour) until it is
//! re-enabled; above 30,000 events per workspace an hour, events are dropped and
//! `app_rate_limited` is sent once a minute.
//!
//! Faults (`POST /_emulator/events/faults`) drop, duplicate, delay or reorder a fraction
//! of events, from a seeded generator so a run can be repeated.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Envelope, Subscription, rate_limited_notice};
use crate::{Emulator, lock};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Emulated seconds before each retry: at once, after a minute, after five minutes.
pub const RETRY_DELAYS: [f64; 3] = [0.0, 60.0, 300.0];
/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Events and attempts the log keeps (the oldest go first).
const LOG_CAP: usize = 50_000;
/// The window of the failure and volume limits, emulated seconds.
const HOUR: f64 = 3_600.0;

/// A fault on delivery, matched against each new event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFault {
    #[serde(flatten)]
    pub kind: EventFaultKind,
    /// The share of matching events it hits (1 = all).
    #[serde(default = "all")]
    pub fraction: f64,
    /// How many events it hits before it is spent; without it, until cleared.
    #[serde(default)]
    pub count: Option<u64>,
    /// Event types it applies to (`member_joined_channel`); empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
}

fn all() -> f64 {
    1.0
}

/// What an event fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventFaultKind {
    /// The event is never sent.
    Drop,
    /// The event is sent twice (same `event_id`).
    Duplicate,
    /// The event is sent this many emulated milliseconds late.
    Delay { ms: u64 },
    /// The event is held back a random time up to the window, so later events overtake
    /// it.
    Reorder {
        #[serde(default = "reorder_window")]
        window_ms: u64,
    },
}

fn reorder_window() -> u64 {
    10_000
}

/// Counters of the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Events the subscription's app could see.
    pub emitted: u64,
    pub delivered: u64,
    pub attempts: u64,
    pub failed_attempts: u64,
    pub gave_up: u64,
    pub dropped_by_fault: u64,
    pub duplicated: u64,
    /// Dropped over the hourly limit.
    pub rate_limited: u64,
    /// `app_rate_limited` notices sent.
    pub notices: u64,
    /// Dropped because the subscription was disabled.
    pub disabled_drops: u64,
    /// Recorded only: no request URL.
    pub unsent: u64,
    /// How many times failures disabled the subscription.
    pub disabled_by_failures: u64,
}

/// An event as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Emitted {
    /// Emulated unix time it was emitted.
    pub at: f64,
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened first: `queued`, `dropped`, `rate_limited`, `disabled`, `unsent`.
    pub fate: &'static str,
}

/// One delivery attempt as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at: f64,
    pub event_id: String,
    /// 0 for the first delivery, then the `x-slack-retry-num`.
    pub retry: u32,
    /// `ok`, or the retry reason Slack would state (`http_timeout`, `http_error`, ...).
    pub outcome: String,
}

/// Where a delivery goes.
#[derive(Debug, Clone)]
enum Target {
    /// POSTed, signed, to the request URL.
    Http { url: String, secret: String },
    /// Sent to one of the app's Socket Mode connections.
    Socket { app: String },
}

impl Target {
    /// Where `subscription` sends events: Socket Mode when it is on, else the request
    /// URL; none without either.
    fn of(subscription: &Subscription) -> Option<Target> {
        if subscription.socket_mode {
            return Some(Target::Socket {
                app: subscription.app.clone(),
            });
        }
        subscription.request_url.as_ref().map(|url| Target::Http {
            url: url.clone(),
            secret: subscription.signing_secret.clone(),
        })
    }
}

/// A delivery waiting for its time.
#[derive(Debug, Clone)]
struct Pending {
    event_id: String,
    body: Arc<Vec<u8>>,
    target: Target,
    timeout: Duration,
    retry: u32,
    reason: Option<String>,
    /// Counts towards the hourly volume and the failure rate (notices do not).
    counted: bool,
}

#[derive(Default)]
struct State {
    queue: BTreeMap<(i64, u64), Pending>,
    seq: u64,
    faults: Vec<EventFault>,
    rng: u64,
    stats: Stats,
    emitted: VecDeque<Emitted>,
    attempts: VecDeque<Attempt>,
    /// (time, ok) of counted attempts in the last hour.
    window: VecDeque<(f64, bool)>,
    /// Counted events sent per workspace in the last hour.
    volume: HashMap<String, VecDeque<f64>>,
    /// The last minute an `app_rate_limited` notice went to each workspace.
    noticed: HashMap<String, u64>,
    /// The last number used for event ids.
    number: u64,
}

/// The event pipeline of one emulator: its queue, faults, counters and log.
pub struct Events {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    client: reqwest::Client,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            state: Mutex::new(State {
                rng: 0x5eed_cafe_f00d_0001,
                ..State::default()
            }),
            wake: tokio::sync::Notify::new(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(2))
                .build()
                .expect("an HTTP client builds"),
        }
    }
}

/// What `GET /_emulator/events` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subscription: Option<Subscription>,
    pub stats: Stats,
    pub faults: Vec<EventFault>,
    pub queued: usize,
    pub events: Vec<Emitted>,
    pub attempts: Vec<Attempt>,
}

impl Events {
    /// Records the world's noted changes, made by `actor`, in the audit log and renders
    /// them into events it queues. Runs under the world's lock, right after the call
    /// that made them.
    pub fn publish(&self, world: &mut crate::world::World, actor: &str, now: f64) {
        let changes = world.take_changes();
        crate::audit::record(world, &changes, actor, now);
        let Some(subscription) = &world.events else {
            return;
        };
        if changes.is_empty() {
            return;
        }
        let envelopes = {
            let mut state = lock(&self.state);
            super::render(world, subscription, &changes, now, &mut state.number)
        };
        self.enqueue(subscription, envelopes, now);
    }

    fn enqueue(&self, subscription: &Subscription, envelopes: Vec<Envelope>, now: f64) {
        let mut state = lock(&self.state);
        let mut woke = false;
        for envelope in envelopes {
            state.stats.emitted += 1;
            let fate = state.admit(subscription, &envelope, now);
            if fate == "queued" {
                woke = true;
            }
            state.log_event(Emitted {
                at: now,
                envelope,
                fate,
            });
        }
        drop(state);
        if woke {
            self.wake.notify_one();
        }
    }

    /// Sets the faults' seed and adds a fault.
    pub fn add_fault(&self, fault: EventFault, seed: Option<u64>) {
        let mut state = lock(&self.state);
        if let Some(seed) = seed {
            state.rng = seed.max(1);
        }
        state.faults.push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Forgets the queue, the counters and the log (an emulator reset).
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        let (rng, number) = (state.rng, state.number);
        *state = State {
            rng,
            number,
            ..State::default()
        };
    }

    pub fn report(&self, subscription: Option<Subscription>, since: usize) -> Report {
        let state = lock(&self.state);
        Report {
            subscription,
            stats: state.stats.clone(),
            faults: state.faults.clone(),
            queued: state.queue.len(),
            events: state.emitted.iter().skip(since).cloned().collect(),
            attempts: state.attempts.iter().cloned().collect(),
        }
    }

    /// Every event the log still holds.
    pub fn emitted(&self) -> Vec<Emitted> {
        lock(&self.state).emitted.iter().cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state).stats.clone()
    }

    /// Deliveries due at `now`, and how long until the next one (emulated seconds).
    fn take_due(&self, now: f64) -> (Vec<Pending>, Option<f64>) {
        let mut state = lock(&self.state);
        let now_ms = (now * 1000.0) as i64;
        let mut due = Vec::new();
        while let Some(entry) = state.queue.first_entry() {
            if entry.key().0 > now_ms {
                let next = entry.key().0 as f64 / 1000.0 - now;
                return (due, Some(next));
            }
            due.push(entry.remove());
        }
        (due, None)
    }

    /// Records an attempt's outcome: the next retry, or the end. True when failures
    /// have just disabled the subscription.
    fn finish(
        &self,
        pending: Pending,
        outcome: Result<(), Failure>,
        now: f64,
        subscription: &Subscription,
    ) -> bool {
        let mut state = lock(&self.state);
        state.stats.attempts += 1;
        let ok = outcome.is_ok();
        state.log_attempt(Attempt {
            at: now,
            event_id: pending.event_id.clone(),
            retry: pending.retry,
            outcome: match &outcome {
                Ok(()) => "ok".into(),
                Err(failure) => failure.reason.to_string(),
            },
        });
        if pending.counted {
            state.window.push_back((now, ok));
        }
        while state.window.front().is_some_and(|(at, _)| *at < now - HOUR) {
            state.window.pop_front();
        }
        match outcome {
            Ok(()) => state.stats.delivered += 1,
            Err(failure) => {
                state.stats.failed_attempts += 1;
                let next = pending.retry as usize;
                if failure.no_retry || next >= RETRY_DELAYS.len() {
                    state.stats.gave_up += 1;
                } else {
                    let retry = Pending {
                        retry: pending.retry + 1,
                        reason: Some(failure.reason.to_string()),
                        ..pending
                    };
                    state.schedule(now + RETRY_DELAYS[next], retry);
                }
            }
        }
        let attempts = state.window.len() as u64;
        let failed = state.window.iter().filter(|(_, ok)| !ok).count() as u64;
        let disable = !ok
            && attempts >= subscription.disable_min_events
            && failed * 100 > attempts * 95
            && subscription.enabled;
        if disable {
            state.stats.disabled_by_failures += 1;
            state.queue.clear();
            state.window.clear();
        }
        disable
    }
}

impl State {
    /// Decides a new event's first fate and queues what is to be sent.
    fn admit(
        &mut self,
        subscription: &Subscription,
        envelope: &Envelope,
        now: f64,
    ) -> &'static str {
        if !subscription.enabled {
            self.stats.disabled_drops += 1;
            return "disabled";
        }
        let Some(target) = Target::of(subscription) else {
            self.stats.unsent += 1;
            return "unsent";
        };
        let sent = self.volume.entry(envelope.team.clone()).or_default();
        while sent.front().is_some_and(|at| *at < now - HOUR) {
            sent.pop_front();
        }
        if sent.len() as u64 >= subscription.hourly_limit {
            self.stats.rate_limited += 1;
            self.notice(subscription, target, &envelope.team, now);
            return "rate_limited";
        }
        sent.push_back(now);
        let pending = Pending {
            event_id: envelope.event_id.clone(),
            body: Arc::new(serde_json::to_vec(&envelope.body).expect("an event serialises")),
            target,
            timeout: Duration::from_millis(subscription.ack_timeout_ms),
            retry: 0,
            reason: None,
            counted: true,
        };
        let mut at = now;
        let mut copies = 1;
        for fault in self.matching_faults(&envelope.kind) {
            match fault {
                EventFaultKind::Drop => {
                    self.stats.dropped_by_fault += 1;
                    return "dropped";
                }
                EventFaultKind::Duplicate => {
                    self.stats.duplicated += 1;
                    copies = 2;
                }
                EventFaultKind::Delay { ms } => at += ms as f64 / 1000.0,
                EventFaultKind::Reorder { window_ms } => {
                    at += self.random() * window_ms as f64 / 1000.0;
                }
            }
        }
        for _ in 0..copies {
            self.schedule(at, pending.clone());
        }
        "queued"
    }

    /// `app_rate_limited`, at most once a minute per workspace.
    fn notice(&mut self, subscription: &Subscription, target: Target, team: &str, now: f64) {
        let minute = (now / 60.0).floor() as u64 * 60;
        if self.noticed.get(team) == Some(&minute) {
            return;
        }
        self.noticed.insert(team.to_string(), minute);
        self.stats.notices += 1;
        let body = rate_limited_notice(subscription, team, minute);
        let pending = Pending {
            event_id: format!("app_rate_limited:{team}:{minute}"),
            body: Arc::new(serde_json::to_vec(&body).expect("a notice serialises")),
            target,
            timeout: Duration::from_millis(subscription.ack_timeout_ms),
            retry: 0,
            reason: None,
            counted: false,
        };
        self.schedule(now, pending);
    }

    /// The faults that hit an event of this type, each counted down.
    fn matching_faults(&mut self, kind: &str) -> Vec<EventFaultKind> {
        let mut hits = Vec::new();
        let mut index = 0;
        while index < self.faults.len() {
            let fault = &self.faults[index];
            let applies = fault.types.is_empty() || fault.types.iter().any(|t| t == kind);
            let fraction = fault.fraction;
            if applies && self.random() < fraction {
                let fault = &mut self.faults[index];
                hits.push(fault.kind.clone());
                if let Some(count) = &mut fault.count {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.faults.remove(index);
                        continue;
                    }
                }
            }
            index += 1;
        }
        hits
    }

    /// A uniform number in [0, 1) from a splitmix64 sequence.
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn schedule(&mut self, at: f64, pending: Pending) {
        self.seq += 1;
        let key = ((at * 1000.0) as i64, self.seq);
        self.queue.insert(key, pending);
    }

    fn log_event(&mut self, emitted: Emitted) {
        if self.emitted.len() == LOG_CAP {
            self.emitted.pop_front();
        }
        self.emitted.push_back(emitted);
    }

    fn log_attempt(&mut self, attempt: Attempt) {
        if self.attempts.len() == LOG_CAP {
            self.attempts.pop_front();
        }
        self.attempts.push_back(attempt);
    }
}

/// Why a delivery failed, in Slack's `x-slack-retry-reason` words.
#[derive(Debug)]
struct Failure {
    reason: &'static str,
    /// The receiver answered `x-slack-no-retry: 1`.
    no_retry: bool,
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Real unix seconds: the signature's timestamp is checked against the receiver's own
/// clock, so it is real time whatever the emulator's time scale.
fn wall_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// POSTs one delivery, signed, with the retry headers from the second attempt on.
async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &[u8],
    timeout: Duration,
    retry: Option<(u32, &str)>,
) -> Result<reqwest::Response, Failure> {
    let timestamp = wall_seconds();
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature(secret, timestamp, body))
        .body(body.to_vec());
    if let Some((number, reason)) = retry {
        request = request
            .header("x-slack-retry-num", number.to_string())
            .header("x-slack-retry-reason", reason);
    }
    request.send().await.map_err(|error| Failure {
        reason: if error.is_timeout() {
            "http_timeout"
        } else if error.is_redirect() {
            "too_many_redirects"
        } else if error.is_connect() {
            "connection_failed"
        } else {
            "unknown_error"
        },
        no_retry: false,
    })
}

async fn attempt(emulator: &Emulator, pending: &Pending) -> Result<(), Failure> {
    let retry = pending
        .reason
        .as_deref()
        .map(|reason| (pending.retry, reason));
    let (url, secret) = match &pending.target {
        Target::Http { url, secret } => (url, secret),
        Target::Socket { app } => {
            let reason = pending.reason.as_deref();
            return emulator
                .sockets
                .deliver(app, &pending.body, pending.retry, reason, pending.timeout)
                .await
                .map_err(|reason| Failure {
                    reason,
                    no_retry: false,
                });
        }
    };
    let client = &emulator.events.client;
    let response = post(client, url, secret, &pending.body, pending.timeout, retry).await?;
    if response.status().is_success() {
        // The body is read so that the connection is reused; a receiver that is slow to
        // finish it is still inside the timeout.
        let _ = response.bytes().await;
        return Ok(());
    }
    let no_retry = response
        .headers()
        .get("x-slack-no-retry")
        .is_some_and(|v| v.as_bytes() == b"1");
    Err(Failure {
        reason: "http_error",
        no_retry,
    })
}

/// Sends due deliveries for as long as the emulator serves, [`CONCURRENCY`] at a time.
pub async fn dispatch(emulator: Arc<Emulator>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    loop {
        let now = emulator.clock.now();
        let (due, next) = emulator.events.take_due(now);
        if due.is_empty() {
            // Waits for the next due time, a new event, or a clock change (checked often).
            let wait = next
                .map(|secs| emulator.clock.real(secs))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            tokio::select! {
                _ = emulator.events.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for pending in due {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let emulator = emulator.clone();
            tokio::spawn(async move {
                let outcome = attempt(&emulator, &pending).await;
                let _slot = slot;
                let now = emulator.clock.now();
                let subscription = lock(&emulator.world).events.clone().unwrap_or_default();
                if emulator.events.finish(pending, outcome, now, &subscription) {
                    if let Some(subscription) = &mut lock(&emulator.world).events {
                        subscription.enabled = false;
                    }
                    emulator.mark_dirty();
                    tracing::warn!(
                        "event subscription disabled: over 95% of deliveries failed in an hour"
                    );
                }
                emulator.events.wake.notify_one();
            });
        }
    }
}

/// Answers Slack's `url_verification` handshake at `url`: the URL is saved only if the
/// receiver echoes the challenge.
pub async fn verify_url(
    events: &Events,
    subscription: &Subscription,
    url: &str,
) -> Result<(), String> {
    let challenge = format!("{:016x}{:016x}", wall_seconds(), lock(&events.state).seq);
    let body = serde_json::to_vec(&serde_json::json!({
        "token": subscription.verification_token,
        "challenge": challenge,
        "type": "url_verification",
    }))
    .expect("a challenge serialises");
    let timeout = Duration::from_millis(subscription.ack_timeout_ms);
    let response = post(
        &events.client,
        url,
        &subscription.signing_secret,
        &body,
        timeout,
        None,
    )
    .await
    .map_err(|failure| format!("the request URL did not answer ({})", failure.reason))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let echoed = text.trim() == challenge
        || serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|c| c == challenge);
    if status.is_success() && echoed {
        Ok(())
    } else {
        Err(format!(
            "the request URL answered HTTP {} without the challenge",
            status.as_u16()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_slack_documents() {
        // Slack's example: "Verifying requests from Slack".
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature(secret, 1531420618, body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn the_generator_repeats_from_its_seed() {
        let mut a = State {
            rng: 7,
            ..State::default()
        };
        let mut b = State {
            rng: 7,
            ..State::default()
        };
        let first: Vec<f64> = (0..5).map(|_| a.random()).collect();
        let second: Vec<f64> = (0..5).map(|_| b.random()).collect();
        assert_eq!(first, second);
        assert!(first.iter().all(|x| (0.0..1.0).contains(x)));
    }
}
