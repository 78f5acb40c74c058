//! One client for Slack's SCIM 2.0 and Web APIs.
//!
//! **Pacing is proactive.** Every call first takes a token from its bucket (the Web API
//! method's tier, per method; SCIM's org-wide read or write bucket and the endpoint's
//! bucket), sleeping until one is available, so a healthy run sees almost no 429s. A 429
//! that comes anyway is honoured: the client waits `Retry-After` and tries again, and
//! empties the bucket so the calls behind it wait too.
//!
//! **Retries** with jittered exponential backoff cover 5xx, timeouts and connection
//! resets, for idempotent calls only (reads). A write that fails mid-flight is reported,
//! never blindly repeated: the apply journal decides what to do about it.
//!
//! **Time** is scaled: with `time_scale` N every wait is N times shorter, matching an
//! emulator run with `--time-scale N`, whose `Retry-After` is in emulated seconds.
//!
//! Tokens are [`Token`]s, which never print; errors name the call, never the token.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::limits::{self, ScimBucket};

/// A Slack token. Its `Debug` and `Display` are redacted, so it cannot leak into a log,
/// an error or a plan.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The secret, for the one place that sends it: the Authorization header.
    fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self
            .0
            .split('-')
            .next()
            .filter(|k| k.starts_with("xox"))
            .unwrap_or("token");
        write!(f, "{kind}-(redacted)")
    }
}

/// Which token a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The admin user token (`xoxp-`): SCIM, `admin.*`, and everything else by default.
    Admin,
    /// The bot token (`xoxb-`) when configured, for channel work; else the admin token.
    Bot,
}

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth trying again later (rate limits, 5xx, timeouts).
    Retryable,
    /// The request itself is wrong or refused.
    Permanent,
    /// The token is missing, invalid, revoked or of the wrong kind.
    Auth,
    /// The token lacks a scope.
    MissingScope,
}

/// A failed call, named by its method or SCIM path. Never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error(
        "{call}: Slack refused the token ({error}); check that the token is valid, active and of the right kind (an admin user token `xoxp-` for SCIM and admin.*)"
    )]
    Auth { call: String, error: String },
    #[error(
        "{call}: the token lacks the scope `{needed}` (it has: {provided}); add the scope to the Slack app and reinstall it"
    )]
    MissingScope {
        call: String,
        needed: String,
        provided: String,
    },
    #[error("{call}: Slack answered `{error}`")]
    Api { call: String, error: String },
    #[error(
        "{call}: HTTP {status}{detail} after {attempts} attempt(s); Slack may be degraded, try again later"
    )]
    Http {
        call: String,
        status: u16,
        detail: String,
        attempts: u32,
    },
    #[error("{call}: {message} after {attempts} attempt(s); check the network path to Slack")]
    Transport {
        call: String,
        message: String,
        attempts: u32,
    },
    #[error("{call}: unexpected response from Slack: {message}")]
    Protocol { call: String, message: String },
    /// The write gate refused the call before it was sent: this process may not write
    /// (a controller replica that no longer leads).
    #[error("{call}: not sent: {reason}")]
    Gated { call: String, reason: String },
}

impl SlackError {
    /// The same error, saying how many attempts were made.
    fn after_attempts(mut self, count: u32) -> SlackError {
        if let SlackError::Http { attempts, .. } | SlackError::Transport { attempts, .. } =
            &mut self
        {
            *attempts = count;
        }
        self
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            SlackError::Auth { .. } => ErrorClass::Auth,
            SlackError::MissingScope { .. } => ErrorClass::MissingScope,
            SlackError::Http { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Retryable
            }
            SlackError::Transport { .. } => ErrorClass::Retryable,
            SlackError::Api { error, .. }
                if matches!(
                    error.as_str(),
                    "ratelimited"
                        | "internal_error"
                        | "fatal_error"
                        | "service_unavailable"
                        | "request_timeout"
                ) =>
            {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }
}

const AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
    "no_permission",
    "not_an_admin",
];

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// One base for both APIs (`BASE/api/`, `BASE/scim/v2/`); real Slack when `None`.
    pub base_url: Option<String>,
    /// Waits are this many times shorter (to match an emulator's `--time-scale`).
    pub time_scale: f64,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Retries of an idempotent call after a 5xx, timeout or reset.
    pub max_retries: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            base_url: None,
            time_scale: 1.0,
            concurrency: 4,
            max_retries: 4,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: f64,
}

/// Proactive token buckets, one per Slack bucket, on the client's scaled clock.
#[derive(Debug)]
struct Pacer {
    origin: tokio::time::Instant,
    scale: f64,
    levels: Mutex<HashMap<String, Level>>,
}

impl Pacer {
    /// Emulated seconds since the client started.
    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * self.scale
    }

    fn real(&self, emulated: f64) -> Duration {
        Duration::from_secs_f64((emulated / self.scale).max(0.0))
    }

    /// Waits until every bucket has a token, then takes one from each.
    async fn acquire(&self, buckets: &[ScimBucket]) {
        loop {
            let wait = {
                let mut levels = self.levels.lock().await;
                let now = self.now();
                let mut wait: f64 = 0.0;
                for bucket in buckets {
                    let level = levels.entry(bucket.name.clone()).or_insert(Level {
                        tokens: bucket.burst,
                        at: now,
                    });
                    let rate = bucket.per_minute / 60.0;
                    level.tokens = (level.tokens + (now - level.at) * rate).min(bucket.burst);
                    level.at = now;
                    if level.tokens < 1.0 {
                        wait = wait.max((1.0 - level.tokens) / rate);
                    }
                }
                if wait == 0.0 {
                    for bucket in buckets {
                        if let Some(level) = levels.get_mut(&bucket.name) {
                            level.tokens -= 1.0;
                        }
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(self.real(wait)).await;
        }
    }

    /// After a 429 the server's bucket is empty; ours should be too.
    async fn drain(&self, buckets: &[ScimBucket]) {
        let mut levels = self.levels.lock().await;
        let now = self.now();
        for bucket in buckets {
            levels.insert(
                bucket.name.clone(),
                Level {
                    tokens: 0.0,
                    at: now,
                },
            );
        }
    }
}

/// The client. Cheap to clone; clones share pacing, the concurrency limit and counters.
#[derive(Clone)]
pub struct SlackClient {
    inner: Arc<Inner>,
}

/// Asked before every write is sent, as late as can be: `Err(why)` and the write is not
/// sent. A controller replica's gate says whether it still leads.
pub type WriteGate = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

struct Inner {
    gate: std::sync::OnceLock<WriteGate>,
    http: reqwest::Client,
    api_base: String,
    scim_base: String,
    audit_base: String,
    admin: Token,
    bot: Option<Token>,
    pacer: Pacer,
    permits: Semaphore,
    options: ClientOptions,
    calls: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

/// Counters of what the client did, for reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCounts {
    /// HTTP requests sent, retries included.
    pub calls: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Requests repeated after a 5xx, timeout or reset.
    pub retries: u64,
}

/// What one HTTP exchange came to.
enum Attempt<T> {
    Done(T),
    /// Worth repeating: after `Retry-After` emulated seconds when rate limited, else
    /// after a backoff (idempotent calls only). `error` is reported if we give up.
    Retry {
        retry_after: Option<f64>,
        error: SlackError,
    },
    Fail(SlackError),
}

/// Jittered exponential backoff, in emulated seconds: about 0.5, 1, 2, 4 s.
fn backoff(attempt: u32) -> f64 {
    let base = 0.5 * f64::from(2u32.saturating_pow(attempt.saturating_sub(1).min(6)));
    // Jitter without a random crate: the clock's nanoseconds are noise enough to keep
    // clients that failed together from retrying together.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base * (0.5 + f64::from(nanos % 1000) / 1000.0)
}

impl SlackClient {
    pub fn new(
        admin: Token,
        bot: Option<Token>,
        options: ClientOptions,
    ) -> Result<SlackClient, SlackError> {
        let (api_base, scim_base, audit_base) = match &options.base_url {
            Some(base) => {
                let base = base.trim_end_matches('/');
                (
                    format!("{base}/api/"),
                    format!("{base}/scim/v2/"),
                    format!("{base}/audit/v1/"),
                )
            }
            None => (
                "https://slack.com/api/".to_string(),
                "https://api.slack.com/scim/v2/".to_string(),
                "https://api.slack.com/audit/v1/".to_string(),
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("slack-gitops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| SlackError::Transport {
                call: "client".into(),
                message: error.to_string(),
                attempts: 0,
            })?;
        Ok(SlackClient {
            inner: Arc::new(Inner {
                gate: std::sync::OnceLock::new(),
                http,
                api_base,
                scim_base,
                audit_base,
                admin,
                bot,
                pacer: Pacer {
                    origin: tokio::time::Instant::now(),
                    scale: options.time_scale.max(f64::MIN_POSITIVE),
                    levels: Mutex::new(HashMap::new()),
                },
                permits: Semaphore::new(options.concurrency.max(1)),
                options,
                calls: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        })
    }

    /// Sets the gate every write must pass (once; a second gate is ignored).
    pub fn set_write_gate(&self, gate: WriteGate) {
        let _ = self.inner.gate.set(gate);
    }

    /// Whether the gate lets a write through now.
    fn gate(&self, call: &str) -> Result<(), SlackError> {
        match self.inner.gate.get() {
            Some(gate) => gate().map_err(|reason| SlackError::Gated {
                call: call.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    pub fn counts(&self) -> CallCounts {
        CallCounts {
            calls: self.inner.calls.load(Ordering::SeqCst),
            rate_limited: self.inner.rate_limited.load(Ordering::SeqCst),
            retries: self.inner.retries.load(Ordering::SeqCst),
        }
    }

    /// Waits before a write is decided again after a failure: the same jittered,
    /// growing backoff reads use, on the client's clock.
    pub async fn backoff(&self, attempt: u32) {
        tokio::time::sleep(self.inner.pacer.real(backoff(attempt))).await;
    }

    fn token(&self, credential: Credential) -> &Token {
        match credential {
            Credential::Bot => self.inner.bot.as_ref().unwrap_or(&self.inner.admin),
            Credential::Admin => &self.inner.admin,
        }
    }

    /// The pacing buckets of a Web API method. Our bucket is a quarter of a minute's
    /// calls deep (Slack's bursts are unpublished), refilled at the published rate.
    fn web_buckets(method: &str) -> Vec<ScimBucket> {
        let tier = limits::web_tier(method);
        vec![ScimBucket {
            name: format!("web:{method}"),
            per_minute: tier.per_minute(),
            burst: (tier.per_minute() / 4.0).max(1.0),
        }]
    }

    /// `auth.test` for a credential, with the scopes Slack names in its `x-oauth-scopes`
    /// header (`None` when it sends none). One attempt: this is a check, not a read.
    pub async fn auth_test(
        &self,
        credential: Credential,
    ) -> Result<(Value, Option<Vec<String>>), SlackError> {
        let token = self.token(credential).clone();
        let (body, scopes) = self.post_once("auth.test", &token).await?;
        let scopes = scopes.map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        Ok((body, scopes))
    }

    /// One POST of a Web API method without arguments, with `token`, not paced or
    /// retried: the answer's body and its `x-oauth-scopes` header.
    /// How far Slack's clock is ahead of this machine's, in seconds: Slack's `Date`
    /// header (whole seconds) against the middle of one `auth.test` round trip. `None`
    /// when Slack sends no date. For `doctor`: signed events and timestamps assume the
    /// two agree.
    pub async fn clock_offset(&self, credential: Credential) -> Result<Option<f64>, SlackError> {
        let token = self.token(credential).clone();
        let sent = crate::clock::now_millis();
        let (_, headers) = self.post_once_headers("auth.test", &token).await?;
        let received = crate::clock::now_millis();
        let date = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|text| {
                jiff::fmt::rfc2822::DateTimeParser::new()
                    .parse_timestamp(text)
                    .ok()
            });
        Ok(date.map(|date| {
            // The header truncates to the second: its middle is half a second later.
            let slack = date.as_millisecond() as f64 + 500.0;
            (slack - (sent + received) as f64 / 2.0) / 1000.0
        }))
    }

    async fn post_once(
        &self,
        call: &str,
        token: &Token,
    ) -> Result<(Value, Option<String>), SlackError> {
        let (body, headers) = self.post_once_headers(call, token).await?;
        let scopes = headers
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((body, scopes))
    }

    /// One POST without arguments, not paced or retried: the body and the headers.
    async fn post_once_headers(
        &self,
        call: &str,
        token: &Token,
    ) -> Result<(Value, reqwest::header::HeaderMap), SlackError> {
        let url = format!("{}{call}", self.inner.api_base);
        let transport = |error: reqwest::Error| SlackError::Transport {
            call: call.into(),
            message: describe_transport(&error),
            attempts: 1,
        };
        let response = self
            .inner
            .http
            .post(&url)
            .bearer_auth(token.secret())
            .send()
            .await
            .map_err(transport)?;
        let headers = response.headers().clone();
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        Ok((web_body(call, status, &text)?, headers))
    }

    /// `apps.connections.open` with an app-level token (`xapp-`): the URL of a new
    /// Socket Mode WebSocket, good for one connection.
    pub async fn open_socket(&self, app_token: &Token) -> Result<String, SlackError> {
        const CALL: &str = "apps.connections.open";
        let (body, _) = self.post_once(CALL, app_token).await?;
        match body["url"].as_str() {
            Some(url) if url.starts_with("wss://") || url.starts_with("ws://") => {
                Ok(url.to_string())
            }
            _ => Err(SlackError::Protocol {
                call: CALL.into(),
                message: "the answer has no WebSocket URL".into(),
            }),
        }
    }

    /// One page of Slack's Audit Logs (`GET /audit/v1/logs`, Enterprise Grid, an org
    /// owner's token with `auditlogs:read`): entries dated `oldest` (unix seconds, Slack's
    /// clock) or later, newest first, from `cursor`. Gives the entries and the next
    /// cursor (empty at the end). A 429 is waited out (`Retry-After`, on the client's
    /// scaled clock) up to `max_retries` times: the limit, 50 calls a minute, is the
    /// whole org's.
    pub async fn audit_logs(
        &self,
        token: &Token,
        oldest: i64,
        cursor: &str,
    ) -> Result<(Vec<Value>, String), SlackError> {
        const CALL: &str = "audit.logs";
        let url = format!("{}logs", self.inner.audit_base);
        let transport = |error: reqwest::Error| SlackError::Transport {
            call: CALL.into(),
            message: describe_transport(&error),
            attempts: 1,
        };
        let mut query = vec![("oldest", oldest.to_string()), ("limit", "1000".into())];
        if !cursor.is_empty() {
            query.push(("cursor", cursor.to_string()));
        }
        let mut waited = 0;
        loop {
            self.inner.calls.fetch_add(1, Ordering::Relaxed);
            let response = self
                .inner
                .http
                .get(&url)
                .query(&query)
                .bearer_auth(token.secret())
                .send()
                .await
                .map_err(transport)?;
            let status = response.status().as_u16();
            if status == 429 && waited < self.inner.options.max_retries {
                self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
                let after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(1.0)
                    .clamp(1.0, 300.0);
                waited += 1;
                self.wait(after).await;
                continue;
            }
            let text = response.text().await.map_err(transport)?;
            let body: Value = serde_json::from_str(&text).map_err(|_| SlackError::Protocol {
                call: CALL.into(),
                message: format!("HTTP {status}, not JSON"),
            })?;
            if let Some(error) = body["error"].as_str() {
                return Err(SlackError::Api {
                    call: CALL.into(),
                    error: error.chars().take(100).collect(),
                });
            }
            let Some(entries) = body["entries"].as_array() else {
                return Err(SlackError::Protocol {
                    call: CALL.into(),
                    message: format!("HTTP {status} without entries"),
                });
            };
            let next = body["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return Ok((entries.clone(), next));
        }
    }

    /// Waits `emulated` seconds on the client's scaled clock (for an asynchronous Slack
    /// job to finish before it is read back).
    pub async fn wait(&self, emulated: f64) {
        tokio::time::sleep(self.inner.pacer.real(emulated)).await;
    }

    /// Whether a bot token was given (channel work falls back to the admin token).
    pub fn has_bot(&self) -> bool {
        self.inner.bot.is_some()
    }

    /// A Web API read (HTTP GET with query arguments). Retried when it fails in passing.
    pub async fn web_read(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        self.web(credential, method, args, false).await
    }

    /// A Web API write (HTTP POST, form body). Not retried after a failure in passing.
    pub async fn web_write(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        self.web(credential, method, args, true).await
    }

    async fn web(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
        write: bool,
    ) -> Result<Value, SlackError> {
        let url = format!("{}{method}", self.inner.api_base);
        let token = self.token(credential).clone();
        let buckets = Self::web_buckets(method);
        let build = || {
            let request = if write {
                self.inner.http.post(&url).form(args)
            } else {
                self.inner.http.get(&url).query(args)
            };
            request.bearer_auth(token.secret())
        };
        self.send(method, &buckets, !write, build, web_body).await
    }

    /// A Web API read deserialized straight into `T` (after `ok` is checked), with no
    /// `Value` tree in between.
    pub async fn web_read_as<T: DeserializeOwned>(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
    ) -> Result<T, SlackError> {
        self.web_as(credential, method, args, |call, status, text| {
            web_typed(call, status, text, |text| serde_json::from_str::<T>(text))
        })
        .await
    }

    async fn web_as<T>(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
        parse: impl Fn(&str, u16, &str) -> Result<T, SlackError>,
    ) -> Result<T, SlackError> {
        let url = format!("{}{method}", self.inner.api_base);
        let token = self.token(credential).clone();
        let buckets = Self::web_buckets(method);
        let build = || {
            self.inner
                .http
                .get(&url)
                .query(args)
                .bearer_auth(token.secret())
        };
        self.send(method, &buckets, true, build, parse).await
    }

    /// Every item of a cursor-paginated Web API listing, each page deserialized straight
    /// into `T` (the list under `key`; every other field is skipped, never built). The end
    /// is an empty `next_cursor`, never a short or empty page.
    pub async fn web_paginate_as<T: DeserializeOwned>(
        &self,
        credential: Credential,
        method: &str,
        args: &[(&str, String)],
        key: &str,
    ) -> Result<(Vec<T>, u64), SlackError> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let mut call: Vec<(&str, String)> = args.to_vec();
            if !cursor.is_empty() {
                call.push(("cursor", cursor.clone()));
            }
            let page = self
                .web_as(credential, method, &call, |call, status, text| {
                    web_typed(call, status, text, |text| {
                        let seed = super::wire::WebPageSeed::<T> {
                            key,
                            item: std::marker::PhantomData,
                        };
                        seed.deserialize(&mut serde_json::Deserializer::from_str(text))
                    })
                })
                .await?;
            pages += 1;
            let Some(page_items) = page.items else {
                return Err(SlackError::Protocol {
                    call: method.to_string(),
                    message: format!("no `{key}` list in the reply"),
                });
            };
            items.extend(page_items);
            cursor = page.next_cursor;
            if cursor.is_empty() {
                return Ok((items, pages));
            }
        }
    }

    /// Every resource of a SCIM listing, each page deserialized straight into `T`. Pages
    /// of 1,000; a page that comes back empty before `totalResults` is reached is an
    /// inconsistent read and fails the whole listing.
    pub async fn scim_list_as<T: DeserializeOwned>(
        &self,
        resource: &str,
    ) -> Result<(Vec<T>, u64), SlackError> {
        let call = format!("SCIM GET /{resource}");
        let mut items: Vec<T> = Vec::new();
        let mut pages = 0;
        loop {
            let start = items.len() + 1;
            let page: super::wire::ScimPage<T> = self
                .scim_get_as(&format!("{resource}?startIndex={start}&count=1000"))
                .await?;
            pages += 1;
            let Some(total) = page.total else {
                return Err(SlackError::Protocol {
                    call,
                    message: "no totalResults in the list response".into(),
                });
            };
            let total = total as usize;
            if page.resources.is_empty() && items.len() < total {
                return Err(SlackError::Protocol {
                    call,
                    message: format!(
                        "an empty page at {start} of {total}: the listing changed while it was read; read again"
                    ),
                });
            }
            items.extend(page.resources);
            if items.len() >= total {
                return Ok((items, pages));
            }
        }
    }

    /// A SCIM GET deserialized straight into `T` on success.
    async fn scim_get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, SlackError> {
        self.scim_get_with(path, |call: &str, status: u16, text: &str| {
            if (200..300).contains(&status) {
                serde_json::from_str::<T>(text).map_err(|error| SlackError::Protocol {
                    call: call.to_string(),
                    message: format!(
                        "HTTP {status} with a body that is not what SCIM lists: {error}"
                    ),
                })
            } else {
                scim_body(call, status, text).and_then(|_| {
                    Err(SlackError::Protocol {
                        call: call.to_string(),
                        message: format!("HTTP {status}"),
                    })
                })
            }
        })
        .await
    }

    /// A SCIM GET of `path` (relative to `scim/v2/`, query included).
    pub async fn scim_get(&self, path: &str) -> Result<Value, SlackError> {
        self.scim_get_with(path, scim_body).await
    }

    /// A SCIM GET, paced by its buckets and retried when it fails in passing; the reply
    /// read by `parse`.
    async fn scim_get_with<T>(
        &self,
        path: &str,
        parse: impl Fn(&str, u16, &str) -> Result<T, SlackError>,
    ) -> Result<T, SlackError> {
        let url = format!("{}{path}", self.inner.scim_base);
        let resource = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
        let buckets = limits::scim_buckets("GET", &segments);
        let call = format!("SCIM GET /{resource}");
        let token = self.token(Credential::Admin).clone();
        self.send(
            &call,
            &buckets,
            true,
            || self.inner.http.get(&url).bearer_auth(token.secret()),
            parse,
        )
        .await
    }

    /// A SCIM write (`POST`, `PATCH`, `PUT`, `DELETE`) of `path` (relative to `scim/v2/`)
    /// with a JSON body. Paced by the SCIM buckets; a 429 (the request was not processed,
    /// or the resource was locked) is waited out and sent again, but a timeout, reset or
    /// 5xx is returned: the write may have happened, and the caller reads it back.
    pub async fn scim_write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SlackError> {
        let url = format!("{}{path}", self.inner.scim_base);
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let buckets = limits::scim_buckets(method.as_str(), &segments);
        let call = format!("SCIM {method} /{path}");
        let token = self.token(Credential::Admin).clone();
        let build = || {
            let request = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.secret());
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        self.send(&call, &buckets, false, build, scim_body).await
    }

    /// Sends one call with pacing, 429 handling and (for idempotent calls) retries.
    async fn send<T>(
        &self,
        call: &str,
        buckets: &[ScimBucket],
        idempotent: bool,
        build: impl Fn() -> reqwest::RequestBuilder,
        parse: impl Fn(&str, u16, &str) -> Result<T, SlackError>,
    ) -> Result<T, SlackError> {
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            self.inner.pacer.acquire(buckets).await;
            let outcome = {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                // A write asks the gate last, after pacing and the permit.
                if !idempotent {
                    self.gate(call)?;
                }
                self.inner.calls.fetch_add(1, Ordering::SeqCst);
                self.attempt(call, &build, &parse).await
            };
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry {
                    retry_after: Some(after),
                    error,
                } => {
                    // Rate limited: the request was not processed, so any call may repeat.
                    self.inner.rate_limited.fetch_add(1, Ordering::SeqCst);
                    self.inner.pacer.drain(buckets).await;
                    tracing::warn!(
                        call,
                        retry_after = after,
                        "rate limited; waiting as Slack asks"
                    );
                    if attempts > self.inner.options.max_retries + 8 {
                        return Err(error.after_attempts(attempts));
                    }
                    tokio::time::sleep(self.inner.pacer.real(after)).await;
                    continue;
                }
                Attempt::Retry {
                    retry_after: None,
                    error,
                } => {
                    if !idempotent || attempts > self.inner.options.max_retries {
                        return Err(error.after_attempts(attempts));
                    }
                }
            }
            self.inner.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.inner.pacer.real(backoff(attempts))).await;
        }
    }

    async fn attempt<T>(
        &self,
        call: &str,
        build: &impl Fn() -> reqwest::RequestBuilder,
        parse: &impl Fn(&str, u16, &str) -> Result<T, SlackError>,
    ) -> Attempt<T> {
        let transport = |error: reqwest::Error| SlackError::Transport {
            call: call.to_string(),
            message: describe_transport(&error),
            attempts: 1,
        };
        let response = match build().send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    retry_after: None,
                    error: transport(error),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        // The body as bytes, checked as UTF-8 in one pass (copied and repaired only when it
        // is not: Slack's replies are UTF-8 JSON).
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => {
                return Attempt::Retry {
                    retry_after: None,
                    error: transport(error),
                };
            }
        };
        let text = match std::str::from_utf8(&body) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&body),
        };
        if status == 429 {
            return Attempt::Retry {
                retry_after: Some(retry_after.unwrap_or(1.0).max(1.0)),
                error: SlackError::Http {
                    call: call.to_string(),
                    status,
                    detail: " (rate limited)".into(),
                    attempts: 1,
                },
            };
        }
        if status >= 500 {
            return Attempt::Retry {
                retry_after: None,
                error: SlackError::Http {
                    call: call.to_string(),
                    status,
                    detail: String::new(),
                    attempts: 1,
                },
            };
        }
        match parse(call, status, &text) {
            Ok(value) => Attempt::Done(value),
            Err(error) if error.class() == ErrorClass::Retryable => Attempt::Retry {
                retry_after: None,
                error,
            },
            Err(error) => Attempt::Fail(error),
        }
    }
}

fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while reading the response".into()
    } else {
        "the request failed".into()
    }
}

/// Reads a Web API reply: HTTP 200 with `ok`, else an error by class.
fn web_body(call: &str, status: u16, text: &str) -> Result<Value, SlackError> {
    let protocol = |message: String| SlackError::Protocol {
        call: call.to_string(),
        message,
    };
    let body: Value = serde_json::from_str(text)
        .map_err(|_| protocol(format!("HTTP {status} with a body that is not JSON")))?;
    if body.get("ok") == Some(&Value::Bool(true)) {
        return Ok(body);
    }
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    let text_of = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Err(if error == "missing_scope" {
        SlackError::MissingScope {
            call: call.to_string(),
            needed: text_of("needed"),
            provided: text_of("provided"),
        }
    } else if AUTH_ERRORS.contains(&error.as_str()) {
        SlackError::Auth {
            call: call.to_string(),
            error,
        }
    } else {
        SlackError::Api {
            call: call.to_string(),
            error,
        }
    })
}

/// Reads a SCIM reply: 2xx with a JSON body (or none), else the v2 `detail` (or the v1
/// `Errors.description`, which Slack also sends).
/// A Web API reply read as `T` when `ok` is true (a skim that builds nothing, then the
/// typed parse); otherwise the same errors as [`web_body`].
fn web_typed<T, E: std::fmt::Display>(
    call: &str,
    status: u16,
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, SlackError> {
    #[derive(serde::Deserialize)]
    struct Ok {
        #[serde(default)]
        ok: bool,
    }
    match serde_json::from_str::<Ok>(text) {
        Result::Ok(Ok { ok: true }) => parse(text).map_err(|error| SlackError::Protocol {
            call: call.to_string(),
            message: format!("an `ok` reply that is not what was expected: {error}"),
        }),
        _ => web_body(call, status, text).and_then(|_| {
            Err(SlackError::Protocol {
                call: call.to_string(),
                message: format!("HTTP {status} with a reply that is not what was expected"),
            })
        }),
    }
}

fn scim_body(call: &str, status: u16, text: &str) -> Result<Value, SlackError> {
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).map_err(|_| SlackError::Protocol {
            call: call.to_string(),
            message: format!("HTTP {status} with a body that is not JSON"),
        })?
    };
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let detail = body
        .get("detail")
        .or_else(|| body.pointer("/Errors/description"))
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    Err(match status {
        401 | 403 => SlackError::Auth {
            call: call.to_string(),
            error: detail,
        },
        _ => SlackError::Api {
            call: call.to_string(),
            error: detail,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let token = Token::new("xoxp-1234-secret");
        assert_eq!(format!("{token}"), "xoxp-(redacted)");
        assert_eq!(format!("{token:?}"), "Token(redacted)");
        let error = SlackError::Auth {
            call: "auth.test".into(),
            error: "invalid_auth".into(),
        };
        assert!(!format!("{error} {error:?}").contains("secret"));
    }

    #[test]
    fn classifies_errors() {
        let api = |error: &str| {
            web_body("m", 200, &format!(r#"{{"ok":false,"error":"{error}"}}"#)).unwrap_err()
        };
        assert_eq!(api("invalid_auth").class(), ErrorClass::Auth);
        assert_eq!(api("channel_not_found").class(), ErrorClass::Permanent);
        assert_eq!(api("internal_error").class(), ErrorClass::Retryable);
        let scope = web_body("m", 200, r#"{"ok":false,"error":"missing_scope","needed":"groups:read","provided":"channels:read"}"#).unwrap_err();
        assert_eq!(scope.class(), ErrorClass::MissingScope);
        assert!(scope.to_string().contains("`groups:read`"));
        assert_eq!(
            scim_body("s", 401, r#"{"detail":"invalid_authentication"}"#)
                .unwrap_err()
                .class(),
            ErrorClass::Auth
        );
        assert_eq!(
            scim_body("s", 400, r#"{"Errors":{"description":"bad","code":400}}"#)
                .unwrap_err()
                .to_string(),
            "s: Slack answered `bad`"
        );
    }

    #[test]
    fn backoff_grows_with_jitter() {
        for attempt in 1..6 {
            let base = 0.5 * f64::from(1u32 << (attempt - 1));
            let wait = backoff(attempt);
            assert!(
                wait >= base * 0.5 && wait <= base * 1.5,
                "{attempt}: {wait}"
            );
        }
    }
}
