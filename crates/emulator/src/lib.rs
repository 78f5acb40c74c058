//! A local Slack: SCIM 2.0 under `/scim/v2/` and the Web API under `/api/`, on one host,
//! with Slack's wire formats, tokens and scopes, rate limits, pagination quirks and
//! errors. Tests, benchmarks and the README demo run against it, so its fidelity decides
//! whether our client works on real Slack.
//!
//! The server is a plain axum router over shared [`Emulator`] state. A request passes the
//! observation layer (which logs every call and injects configured faults), then the Web
//! API or SCIM handler, which authenticates, takes rate-limit tokens, and runs the
//! operation on the [`World`] under one mutex. Nothing awaits while that mutex is held.
//!
//! `/_emulator/` is the control surface real Slack does not have: faults, the call log,
//! reset, state and settings.

pub mod audit;
pub mod changes;
pub mod events;
pub mod idp;
pub mod limits;
pub mod scim;
pub mod web;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use limits::{Clock, RateLimiter};
use web::{ApiError, Args, Caller};
use world::{Bucket, Settings, TokenKind, World};

/// How an emulator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every clock runs this many times faster than real time.
    pub time_scale: f64,
    /// Where state is saved (atomically) and restored from across restarts.
    pub state_path: Option<PathBuf>,
    /// Emulated unix time at start.
    pub epoch: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_scale: 1.0,
            state_path: None,
            epoch: 1_767_225_600.0, // 2026-01-01T00:00:00Z
        }
    }
}

/// One call as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub seq: u64,
    /// Emulated seconds since the emulator started.
    pub at: f64,
    /// The Web API method (`usergroups.list`) or `SCIM <VERB> <path>`.
    pub call: String,
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The `error` of a Web API `ok: false` reply, or a SCIM `detail`.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub fault: Option<String>,
}

/// A fault injected through `/_emulator/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `*`, a Web API method name, or a path prefix such as `/scim/v2/Users`.
    #[serde(default = "any_target")]
    pub target: String,
    /// How many matching calls it hits; without it, every one until cleared.
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn any_target() -> String {
    "*".into()
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this HTTP status (5xx bursts).
    Status { status: u16 },
    /// Delay the answer by this many emulated milliseconds.
    Latency { ms: u64 },
    /// Process the request, send headers, then break the connection mid-body: a write
    /// takes effect but its answer is lost.
    Reset,
    /// Answer 429 with this `Retry-After` (a 429 storm).
    RateLimit { retry_after: u64 },
    /// A SCIM user update that lacks this attribute (`title`, `name.givenName`, ...)
    /// deactivates the user: Slack's April 2024 regression.
    RequiredField { field: String },
}

/// The emulator's shared state.
pub struct Emulator {
    world: Mutex<World>,
    seed: World,
    limiter: Mutex<RateLimiter>,
    log: Mutex<Vec<CallRecord>>,
    faults: Mutex<Vec<Fault>>,
    locks: Mutex<HashMap<String, f64>>,
    clock: Clock,
    events: events::delivery::Events,
    sockets: events::socket::Sockets,
    started_at: f64,
    seq: AtomicU64,
    dirty: AtomicBool,
    state_path: Option<PathBuf>,
    /// Seconds added to the real time in every answer's `Date` header: Slack's clock
    /// off from the client's (`POST /_emulator/clock {"date_skew_seconds": N}`).
    date_skew: std::sync::atomic::AtomicI64,
}

/// A state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Seed {
        path: PathBuf,
        source: world::SeedError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked cannot leave the world half-changed (every operation
    // validates before it writes), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Emulator {
    /// An emulator seeded with `seed`. With a state path whose file exists, the saved
    /// state is loaded instead (the seed is still what `reset` goes back to).
    pub fn new(mut seed: World, options: Options) -> Result<Arc<Emulator>, StateError> {
        seed.reindex();
        let world = match &options.state_path {
            Some(path) if path.exists() => read_world(path)?,
            _ => seed.clone(),
        };
        let clock = Clock::new(options.epoch, options.time_scale);
        Ok(Arc::new(Emulator {
            started_at: clock.now(),
            world: Mutex::new(world),
            seed,
            limiter: Mutex::new(RateLimiter::default()),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            locks: Mutex::new(HashMap::new()),
            clock,
            events: events::delivery::Events::default(),
            sockets: events::socket::Sockets::default(),
            seq: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            state_path: options.state_path,
            date_skew: std::sync::atomic::AtomicI64::new(0),
        }))
    }

    /// A copy of the current world.
    pub fn world(&self) -> World {
        lock(&self.world).clone()
    }

    /// The call log so far.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.log).clone()
    }

    /// The Events API pipeline: what was emitted and delivered.
    pub fn events(&self) -> &events::delivery::Events {
        &self.events
    }

    /// The emulated clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Marks the state as changed since the last save.
    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Saves the world if it changed since the last save. Atomic: the file is written
    /// beside the target and renamed over it, so a kill never leaves a torn file.
    pub fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let text = serde_json::to_vec(&self.world()).expect("the world serialises");
        write_atomically(path, &text).map_err(|source| {
            self.dirty.store(true, Ordering::SeqCst);
            StateError::Write {
                path: path.clone(),
                source,
            }
        })
    }
}

/// Reads a world from a seed or state file.
pub fn read_world(path: &Path) -> Result<World, StateError> {
    let text = std::fs::read_to_string(path).map_err(|source| StateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    World::from_json(&text).map_err(|source| StateError::Seed {
        path: path.to_path_buf(),
        source,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = directory.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Ok(directory) = std::fs::File::open(directory) {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// The router: Slack's two APIs and the control surface.
pub fn router(emulator: Arc<Emulator>) -> Router {
    let control = Router::new()
        .route("/_emulator/log", get(get_log).delete(clear_log))
        .route(
            "/_emulator/faults",
            get(get_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/state", get(get_state))
        .route("/_emulator/settings", get(get_settings).put(put_settings))
        .route("/_emulator/clock", get(get_clock).post(set_clock))
        .route("/_emulator/events", get(get_events).post(set_events))
        .route(
            "/_emulator/events/faults",
            post(add_event_fault).delete(clear_event_faults),
        )
        .route("/_emulator/events/socket", post(socket_control));
    let slack = Router::new()
        .route("/api/{method}", any(web_api))
        .route("/scim/v2/{*rest}", any(scim_api))
        .route("/audit/v1/logs", get(audit_api))
        .route("/link/", get(events::socket::link))
        .layer(middleware::from_fn_with_state(emulator.clone(), observe));
    control.merge(slack).with_state(emulator)
}

/// Serves until `shutdown` resolves, saving state in the background and once more at
/// the end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    emulator: Arc<Emulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let saver = {
        let emulator = emulator.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(250));
            loop {
                ticker.tick().await;
                if let Err(error) = emulator.save() {
                    tracing::error!("emulator state not saved: {error}");
                }
            }
        })
    };
    let dispatcher = tokio::spawn(events::delivery::dispatch(emulator.clone()));
    let result = axum::serve(listener, router(emulator.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    saver.abort();
    dispatcher.abort();
    if let Err(error) = emulator.save() {
        tracing::error!("emulator state not saved: {error}");
    }
    result
}

/// An emulator serving on a loopback port in this process, for as long as this value
/// lives: the CLI's `--emulator` demo, benchmarks and tests.
pub struct InProcess {
    /// The base URL (`http://127.0.0.1:PORT`): the Web API under `/api/`, SCIM under
    /// `/scim/v2/`.
    pub url: String,
    pub emulator: Arc<Emulator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcess {
    /// Starts an emulator of `world` on a free loopback port, on the current runtime.
    pub async fn start(world: World, options: Options) -> Result<InProcess, StartError> {
        let emulator = Emulator::new(world, options)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StartError::Listen)?;
        let address = listener.local_addr().map_err(StartError::Listen)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, emulator.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(InProcess {
            url: format!("http://{address}"),
            emulator,
            stop: Some(stop),
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Why an in-process emulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on loopback: {0}")]
    Listen(std::io::Error),
}

// ---- observation and faults ------------------------------------------------------------

/// The name a call has in the log and in fault targets.
fn call_name(method: &Method, path: &str) -> String {
    match path.strip_prefix("/api/") {
        Some(name) => name.to_string(),
        None if path.starts_with("/audit/") => "audit.logs".to_string(),
        None => format!("SCIM {method} {}", path.trim_start_matches("/scim/v2")),
    }
}

/// Logs every call and applies matching faults.
async fn observe(State(emulator): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let call = call_name(request.method(), &path);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    // The work runs in its own task: a client that hangs up mid-request (a timeout, a
    // `kill -9`) does not cancel it, so a write takes effect and is logged as on Slack.
    let skew = emulator.date_skew.load(Ordering::Relaxed);
    let work = tokio::spawn(observed(emulator, call, path, parts, body, next));
    let mut response = work
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    if let Some(date) = http_date(skew) {
        response
            .headers_mut()
            .insert(axum::http::header::DATE, date);
    }
    response
}

/// An HTTP `Date` header for the real time plus `skew` seconds, as Slack sends one.
fn http_date(skew: i64) -> Option<axum::http::HeaderValue> {
    let now = jiff::Timestamp::now().as_second().checked_add(skew)?;
    let text = jiff::Timestamp::from_second(now)
        .ok()?
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    axum::http::HeaderValue::from_str(&text).ok()
}

/// One call after its request was read: faults, the handler, the log.
async fn observed(
    emulator: Arc<Emulator>,
    call: String,
    path: String,
    parts: axum::http::request::Parts,
    body: Bytes,
    next: Next,
) -> Response {
    let bytes_in = body.len();
    let fault = take_fault(&emulator, &call, &path);
    let mut fault_name = None;
    let response = match &fault {
        Some(FaultKind::Status { status }) => {
            fault_name = Some(format!("status {status}"));
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = slack_json(json!({"ok": false, "error": "service_unavailable"}));
            *response.status_mut() = status;
            response
        }
        Some(FaultKind::RateLimit { retry_after }) => {
            fault_name = Some("rate_limit".into());
            rate_limited(*retry_after, path.starts_with("/scim/"))
        }
        Some(FaultKind::Latency { ms }) => {
            fault_name = Some(format!("latency {ms}ms"));
            tokio::time::sleep(emulator.clock.real(*ms as f64 / 1000.0)).await;
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Some(FaultKind::Reset) => {
            // The request is processed (a write takes effect), then the connection
            // breaks before the answer is read: the client cannot know what happened.
            fault_name = Some("reset".into());
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Some(FaultKind::RequiredField { .. }) | None => {
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
    };

    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 256 << 20)
        .await
        .unwrap_or_default();
    let error = parts.extensions.get::<CallError>().map(|e| e.0.clone());
    let record = CallRecord {
        seq: emulator.seq.fetch_add(1, Ordering::SeqCst),
        at: emulator.clock.now() - emulator.started_at,
        call,
        status: parts.status.as_u16(),
        bytes_in,
        bytes_out: bytes.len(),
        error,
        fault: fault_name,
    };
    lock(&emulator.log).push(record);
    if matches!(fault, Some(FaultKind::Reset)) {
        // Headers go out, then the body fails: the client sees the connection break.
        let broken = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by the emulator",
            ))
        });
        return Response::from_parts(parts, Body::from_stream(broken));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Finds the first fault that matches a call, counting it down.
fn take_fault(emulator: &Emulator, call: &str, path: &str) -> Option<FaultKind> {
    let mut faults = lock(&emulator.faults);
    let index = faults.iter().position(|fault| {
        !matches!(fault.kind, FaultKind::RequiredField { .. })
            && (fault.target == "*" || fault.target == call || path.starts_with(&fault.target))
    })?;
    let kind = faults[index].kind.clone();
    if let Some(count) = &mut faults[index].count {
        *count = count.saturating_sub(1);
        if *count == 0 {
            faults.remove(index);
        }
    }
    Some(kind)
}

/// The `error` (Web API) or `detail` (SCIM) of a reply, handed to the log as a response
/// extension so the log never parses bodies.
#[derive(Debug, Clone)]
struct CallError(String);

/// 429 with an integer `Retry-After`, in the body shape of the API.
fn rate_limited(retry_after: u64, scim: bool) -> Response {
    let body = if scim {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "too_many_requests", "status": 429})
    } else {
        json!({"ok": false, "error": "ratelimited"})
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.extensions_mut().insert(CallError(
        if scim {
            "too_many_requests"
        } else {
            "ratelimited"
        }
        .into(),
    ));
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&retry_after.to_string()).expect("digits are a valid header"),
    );
    response
}

// ---- Web API ---------------------------------------------------------------------------------

fn slack_json(body: Value) -> Response {
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(error) = error {
        response.extensions_mut().insert(CallError(error));
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .map(|token| token.trim().to_string())
}

fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// One Web API call: its arguments, its token, its rate-limit bucket, then the method
/// under the world's lock.
async fn web_api(
    State(emulator): State<Arc<Emulator>>,
    axum::extract::Path(method): axum::extract::Path<String>,
    http_method: Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let Some(spec) = web::method_spec(&method) else {
        return slack_json(ApiError::new("unknown_method").body());
    };
    let (args, json_body) = match web_args(spec, &http_method, &headers, query.as_deref(), &body) {
        Ok(parsed) => parsed,
        Err(error) => return slack_json(error.body()),
    };
    // With a JSON body the token must come in the Authorization header.
    let token_text = bearer(&headers).or_else(|| {
        (!json_body)
            .then(|| args.get("token").map(str::to_string))
            .flatten()
    });
    let Some(token_text) = token_text else {
        return slack_json(ApiError::new("not_authed").body());
    };
    let now = emulator.clock.now();
    let token = match admit(&emulator, spec, &token_text, &args, now) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    // Slack names the token's scopes on every answer (`x-oauth-scopes`).
    let scopes = token.scopes.join(",");
    let caller = Caller {
        token,
        now: now as u64,
    };
    let reply = {
        let mut world = lock(&emulator.world);
        world.run_due_jobs(now);
        let reply = web::call(&mut world, &caller, &method, &args);
        emulator.events.publish(&mut world, &caller.token.user, now);
        reply
    };
    if http_method == Method::POST {
        emulator.dirty.store(true, Ordering::SeqCst);
    }
    let mut response = match reply {
        Ok(mut fields) => {
            if spec.app_only {
                socket_url(&mut fields, &headers);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                web::success_body(&fields),
            )
                .into_response()
        }
        Err(error) => slack_json(error.body()),
    };
    if let Ok(value) = header::HeaderValue::from_str(&scopes) {
        response.headers_mut().insert("x-oauth-scopes", value);
    }
    response
}

/// `apps.connections.open` answers a path; Slack answers a full `wss://` URL, so the
/// path gets the `ws://` form of the address the caller reached.
fn socket_url(fields: &mut web::Fields, headers: &HeaderMap) {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    for (name, value) in fields.iter_mut() {
        if *name == "url"
            && let Ok(path) = serde_json::from_str::<String>(value.get())
        {
            *value = serde_json::value::to_raw_value(&format!("ws://{host}{path}"))
                .expect("a string serialises");
        }
    }
}

/// A call's arguments from the query string and the body: a form, or JSON where the
/// method takes it (other methods ignore a JSON body, as Slack does). Also whether the
/// body was JSON.
fn web_args(
    spec: &web::MethodSpec,
    http_method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Args, bool), ApiError> {
    let mut args = Args(parse_pairs(query.unwrap_or_default()));
    if *http_method != Method::POST || body.is_empty() {
        return Ok((args, false));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        if spec.json {
            let parsed = serde_json::from_slice::<Value>(body)
                .ok()
                .as_ref()
                .and_then(Args::from_json)
                .ok_or_else(|| ApiError::new("invalid_json"))?;
            args.0.extend(parsed.0);
        }
        return Ok((args, true));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") || content_type.is_empty() {
        args.0.extend(parse_pairs(&String::from_utf8_lossy(body)));
        return Ok((args, false));
    }
    Err(ApiError::new("invalid_form_data"))
}

/// The token, if it is known and may call the method, and a token from the method's
/// rate-limit bucket (per app and workspace; per channel for messages). The refusal
/// otherwise, as Slack answers it.
fn admit(
    emulator: &Emulator,
    spec: &web::MethodSpec,
    token_text: &str,
    args: &Args,
    now: f64,
) -> Result<world::Token, Box<Response>> {
    use slack_gitops_core::model::limits::{Tier, web_tier};
    let (token, team, limits) = {
        let world = lock(&emulator.world);
        let Some(token) = world.tokens.iter().find(|t| t.token == token_text).cloned() else {
            return Err(Box::new(slack_json(ApiError::new("invalid_auth").body())));
        };
        web::authorize(&world, &token, spec).map_err(|error| Box::new(slack_json(error.body())))?;
        let team = web::team_for(&world, &token, args).unwrap_or_default();
        let tier = web_tier(spec.name);
        let limits = world.settings.rate_limits.then(|| {
            world
                .settings
                .tiers
                .get(tier.name())
                .copied()
                .unwrap_or(Bucket {
                    per_minute: tier.per_minute(),
                    burst: tier.per_minute(),
                })
        });
        (token, team, limits)
    };
    if let Some(bucket) = limits {
        let method = spec.name;
        let key = match web_tier(method) {
            Tier::PerChannel => {
                let channel = args.get("channel").unwrap_or_default();
                format!("web:{}:{team}:{method}:{channel}", token.app)
            }
            _ => format!("web:{}:{team}:{method}", token.app),
        };
        if let Err(retry_after) = lock(&emulator.limiter).take(now, &[(key, bucket)]) {
            return Err(Box::new(rate_limited(retry_after, false)));
        }
    }
    Ok(token)
}

// ---- Audit Logs API ----------------------------------------------------------------------

/// Calls to the Audit Logs API a minute, org-wide (Tier 3, shared by every app).
const AUDIT_PER_MINUTE: f64 = 50.0;

/// `GET /audit/v1/logs`: an org owner's user token with `auditlogs:read`, Enterprise
/// Grid only, 50 calls a minute for the whole org.
async fn audit_api(
    State(emulator): State<Arc<Emulator>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<audit::Query>,
) -> Response {
    let Some(token_text) = bearer(&headers) else {
        return slack_json(ApiError::new("not_authed").body());
    };
    let now = emulator.clock.now();
    let rate_limits = {
        let world = lock(&emulator.world);
        let Some(token) = world
            .tokens
            .iter()
            .find(|t| t.token == token_text && !t.revoked)
        else {
            return slack_json(ApiError::new("invalid_auth").body());
        };
        if world.enterprise.is_none() {
            return slack_json(ApiError::new("feature_not_enabled").body());
        }
        if token.kind != TokenKind::User || !token.scopes.iter().any(|s| s == "auditlogs:read") {
            return slack_json(ApiError::new("missing_scope").body());
        }
        world.settings.rate_limits
    };
    if rate_limits {
        let bucket = Bucket {
            per_minute: AUDIT_PER_MINUTE,
            burst: AUDIT_PER_MINUTE,
        };
        if let Err(retry_after) = lock(&emulator.limiter).take(now, &[("audit:org".into(), bucket)])
        {
            return rate_limited(retry_after, false);
        }
    }
    match audit::logs(&lock(&emulator.world), &query) {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(error) => slack_json(ApiError::new(error).body()),
    }
}

// ---- SCIM ------------------------------------------------------------------------------------

fn scim_response(reply: scim::ScimReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(raw) = reply.raw {
        return (status, [(header::CONTENT_TYPE, "application/json")], raw).into_response();
    }
    match reply.body {
        Some(body) => {
            let detail = body
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(detail) = detail {
                response.extensions_mut().insert(CallError(detail));
            }
            response
        }
        None => status.into_response(),
    }
}

/// One SCIM call: its token, its rate-limit buckets, the resource's write lock, then the
/// endpoint under the world's lock. A write holds its resource for the emulated write
/// time.
async fn scim_api(
    State(emulator): State<Arc<Emulator>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    http_method: Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let Some(token_text) = bearer(&headers) else {
        return scim_response(scim::error(401, "missing_authentication"));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = http_method.as_str().to_string();
    let now = emulator.clock.now();
    let (required_fields, settings) = match scim_admit(&emulator, &token_text) {
        Ok(admitted) => admitted,
        Err(reply) => return scim_response(reply),
    };
    if settings.rate_limits {
        let buckets: Vec<(String, Bucket)> =
            slack_gitops_core::model::limits::scim_buckets(&method, &segments)
                .into_iter()
                .map(|b| {
                    let bucket = Bucket {
                        per_minute: b.per_minute,
                        burst: b.burst,
                    };
                    (format!("scim:{}", b.name), bucket)
                })
                .collect();
        if let Err(retry_after) = lock(&emulator.limiter).take(now, &buckets) {
            return rate_limited(retry_after, true);
        }
    }
    // One write at a time per user or group: a second write while the first is in
    // flight is refused with 429, as Slack's resource lock does.
    let lock_key = scim::lock_key(&method, &segments);
    if let Some(key) = &lock_key {
        let mut locks = lock(&emulator.locks);
        if locks.get(key).is_some_and(|until| *until > now) {
            return rate_limited(1, true);
        }
        locks.insert(key.clone(), now + settings.scim_write_secs);
    }
    let body = if body.is_empty() {
        None
    } else if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        Some(value)
    } else {
        release(&emulator, lock_key.as_deref());
        return scim_response(scim::error(400, "invalid_request_payload"));
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let request = scim::ScimRequest {
        method: &method,
        segments,
        query: parse_pairs(query.as_deref().unwrap_or_default()),
        body,
        now,
        base: format!("http://{host}/scim/v2"),
        required_fields,
    };
    let reply = {
        let mut world = lock(&emulator.world);
        let reply = scim::handle(&mut world, &request);
        let actor = world
            .tokens
            .iter()
            .find(|t| t.token == token_text)
            .map(|t| t.user.clone())
            .unwrap_or_default();
        emulator.events.publish(&mut world, &actor, now);
        reply
    };
    if method != "GET" {
        emulator.dirty.store(true, Ordering::SeqCst);
        // The write is in flight for this long; its resource stays locked meanwhile.
        tokio::time::sleep(emulator.clock.real(settings.scim_write_secs)).await;
        release(&emulator, lock_key.as_deref());
    }
    scim_response(reply)
}

/// SCIM takes only a live admin user token. Gives the fields a `RequiredField` fault
/// demands and the settings in force, or the refusal.
fn scim_admit(
    emulator: &Emulator,
    token_text: &str,
) -> Result<(Vec<String>, world::Settings), scim::ScimReply> {
    let world = lock(&emulator.world);
    let Some(token) = world.tokens.iter().find(|t| t.token == token_text) else {
        return Err(scim::error(401, "invalid_authentication"));
    };
    if token.revoked || world.user(&token.user).is_some_and(|u| !u.active) {
        return Err(scim::error(401, "invalid_authentication"));
    }
    if token.kind != TokenKind::User || !token.scopes.iter().any(|s| s == "admin") {
        return Err(scim::error(403, "permission_denied"));
    }
    let required: Vec<String> = lock(&emulator.faults)
        .iter()
        .filter_map(|f| match &f.kind {
            FaultKind::RequiredField { field } => Some(field.clone()),
            _ => None,
        })
        .collect();
    Ok((required, world.settings.clone()))
}

fn release(emulator: &Emulator, key: Option<&str>) {
    if let Some(key) = key {
        lock(&emulator.locks).remove(key);
    }
}

// ---- control surface ----------------------------------------------------------------------

async fn get_log(State(emulator): State<Arc<Emulator>>) -> Response {
    axum::Json(json!({"calls": emulator.calls()})).into_response()
}

async fn clear_log(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    lock(&emulator.log).clear();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(emulator): State<Arc<Emulator>>) -> Response {
    axum::Json(json!({"faults": *lock(&emulator.faults)})).into_response()
}

async fn add_fault(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            lock(&emulator.faults).push(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("not a fault: {error}\n")).into_response(),
    }
}

async fn clear_faults(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    lock(&emulator.faults).clear();
    StatusCode::NO_CONTENT
}

/// Puts everything back as seeded: state, rate limits, log, faults and locks.
async fn reset(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    *lock(&emulator.world) = emulator.seed.clone();
    emulator.events.clear();
    lock(&emulator.limiter).clear();
    lock(&emulator.log).clear();
    lock(&emulator.faults).clear();
    lock(&emulator.locks).clear();
    emulator.dirty.store(true, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn get_state(State(emulator): State<Arc<Emulator>>) -> Response {
    axum::Json(emulator.world()).into_response()
}

async fn get_settings(State(emulator): State<Arc<Emulator>>) -> Response {
    axum::Json(lock(&emulator.world).settings.clone()).into_response()
}

async fn put_settings(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Settings>(&body) {
        Ok(settings) => {
            lock(&emulator.world).settings = settings;
            emulator.dirty.store(true, Ordering::SeqCst);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("not settings: {error}\n")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    /// Emulated seconds per real second from now on.
    #[serde(default)]
    time_scale: Option<f64>,
    /// Seconds Slack's `Date` header is ahead of the real time (negative: behind).
    #[serde(default)]
    date_skew_seconds: Option<i64>,
}

async fn get_clock(State(emulator): State<Arc<Emulator>>) -> Response {
    let skew = emulator.date_skew.load(Ordering::Relaxed);
    let now = emulator.clock.now();
    axum::Json(json!({"now": now, "time_scale": emulator.clock.scale(), "date_skew_seconds": skew}))
        .into_response()
}

/// `{"time_scale": N}`: emulated time runs N times faster from now on (rate limits,
/// retries and delays follow). `{"date_skew_seconds": N}`: the `Date` header of every
/// answer is N seconds off the real time, as a Slack whose clock disagrees with the
/// client's would look.
async fn set_clock(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let change = match serde_json::from_slice::<ClockChange>(&body) {
        Ok(change) => change,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a clock change: {error}\n"),
            )
                .into_response();
        }
    };
    if let Some(scale) = change.time_scale {
        if !(scale.is_finite() && scale > 0.0) {
            let why = "time_scale must be a positive number\n";
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
        emulator.clock.set_scale(scale);
    }
    if let Some(skew) = change.date_skew_seconds {
        emulator.date_skew.store(skew, Ordering::Relaxed);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: usize,
}

async fn get_events(
    State(emulator): State<Arc<Emulator>>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Response {
    let subscription = lock(&emulator.world).events.clone();
    let mut report = serde_json::to_value(emulator.events.report(subscription, query.since))
        .expect("a report serialises");
    report["socket"] = serde_json::to_value(emulator.sockets.report()).expect("serialises");
    axum::Json(report).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketControl {
    /// Sends every Socket Mode connection a `disconnect` with this reason (`warning`,
    /// `refresh_requested`, `link_disabled`); all but `warning` then close.
    #[serde(default)]
    disconnect: Option<String>,
    /// Sends every connection these text frames as they are, whatever they hold: a
    /// hostile or broken Slack, for testing the app's receiver.
    #[serde(default)]
    send: Vec<String>,
}

/// `POST /_emulator/events/socket {"disconnect": "refresh_requested"}`: what Slack does
/// every few hours to each connection, on demand; `{"send": ["..."]}`: raw frames. Answers
/// how many connections it reached.
async fn socket_control(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let control = match serde_json::from_slice::<SocketControl>(&body) {
        Ok(control) if control.disconnect.is_some() == control.send.is_empty() => control,
        Ok(_) => {
            let why = "name either `disconnect` or `send`\n";
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    let reached = match control.disconnect {
        Some(reason) => emulator.sockets.disconnect(&reason),
        None => emulator.sockets.send_raw(&control.send),
    };
    axum::Json(serde_json::json!({ "connections": reached })).into_response()
}

/// Changes the subscription: any of its fields. A new request URL must pass Slack's
/// `url_verification` handshake first, as when it is entered in the app's settings.
async fn set_events(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let current = lock(&emulator.world).events.clone().unwrap_or_default();
    let mut merged = serde_json::to_value(&current).expect("a subscription serialises");
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a JSON object\n").into_response();
    };
    for (key, value) in changes {
        merged[key] = value;
    }
    let next: events::Subscription = match serde_json::from_value(merged) {
        Ok(next) => next,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a subscription: {error}\n"),
            )
                .into_response();
        }
    };
    if let Some(url) = &next.request_url
        && current.request_url.as_ref() != Some(url)
        && let Err(why) = events::delivery::verify_url(&emulator.events, &next, url).await
    {
        return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    }
    lock(&emulator.world).events = Some(next);
    emulator.mark_dirty();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct EventFaultRequest {
    #[serde(flatten)]
    fault: events::delivery::EventFault,
    /// Seeds the generator that decides which events a fraction hits.
    #[serde(default)]
    seed: Option<u64>,
}

async fn add_event_fault(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    match serde_json::from_slice::<EventFaultRequest>(&body) {
        Ok(request) => {
            emulator.events.add_fault(request.fault, request.seed);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            format!("not an event fault: {error}\n"),
        )
            .into_response(),
    }
}

async fn clear_event_faults(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    emulator.events.clear_faults();
    StatusCode::NO_CONTENT
}
