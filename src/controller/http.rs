//! The controller's HTTP surface: `/livez`, `/readyz`, `/status`, `/metrics`, and the
//! webhooks. A webhook is verified (HMAC-SHA256 over the raw body with a secret from the
//! environment) before anything else; a bad or missing signature is 401 and changes
//! nothing. A verified webhook only wakes the loop: the event is a hint, never data, so
//! the sync re-reads the repository and the identity provider itself.
//!
//! A replica that does not lead hands a verified webhook to the one that does (the
//! address it advertised in the lease), and answers with the leader's answer; with no
//! leader to reach, it answers 503 so that the sender tries again.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};

use super::inbox::{IdentityEvent, Offer};
use super::listener::Bounded;
use super::{Shared, Trigger};

pub(super) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The largest git webhook body: GitHub's push events are kilobytes, but list the files
/// of up to 20 commits. A bigger one is refused (413) and the poll picks the push up.
pub const MAX_GIT_HOOK_BYTES: usize = 1024 * 1024;
/// The largest identity event body: an Okta delivery batches a few events.
pub const MAX_IDENTITY_HOOK_BYTES: usize = 256 * 1024;
/// Hook bodies read at once, before their signature can be checked; more wait for
/// [`BODY_TIMEOUT`] and are then told to try again (503). This bounds what unsigned
/// requests can make the process hold to a few MiB.
pub const MAX_HOOK_BODIES: usize = 4;
/// A hook body must arrive whole within this long.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The controller's listeners: the one webhooks arrive at (exposed to the forge and the
/// identity provider), and optionally a second for `/status` and `/metrics`, which need
/// not be exposed. Without the second, everything is served on the first.
pub struct Listeners {
    pub hooks: tokio::net::TcpListener,
    pub admin: Option<tokio::net::TcpListener>,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hooks = Router::new()
        .route("/hooks/git", post(git_hook))
        .route(
            "/hooks/identity",
            post(identity_hook).get(identity_verification),
        )
        .route("/hooks/slack", post(slack_hook))
        .route("/plan", post(plan))
        .with_state(shared.clone());
    let admin = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let Some(admin_listener) = listeners.admin else {
        return axum::serve(Bounded::new(listeners.hooks), hooks.merge(admin))
            .with_graceful_shutdown(until_stopped())
            .await;
    };
    // The webhook port answers /livez too, so a load balancer can check it.
    let hooks = hooks.route("/livez", get(|| async { "ok\n" }));
    let admin_server = axum::serve(Bounded::new(admin_listener), admin)
        .with_graceful_shutdown(until_stopped())
        .into_future();
    let hooks_server = axum::serve(Bounded::new(listeners.hooks), hooks)
        .with_graceful_shutdown(until_stopped())
        .into_future();
    let (admin_result, hooks_result) = tokio::join!(admin_server, hooks_server);
    admin_result.and(hooks_result)
}

/// Reads a hook's body: at most `limit` bytes (413 beyond, told by Content-Length before
/// anything is read when the sender says), within [`BODY_TIMEOUT`], and at most
/// [`MAX_HOOK_BODIES`] at once.
pub(super) async fn read_hook_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a webhook body is at most {limit} bytes\n"),
        )
            .into_response()
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let busy = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many webhooks at once; try again\n",
        )
            .into_response()
    };
    let Ok(Ok(_permit)) = tokio::time::timeout(BODY_TIMEOUT, shared.hook_bodies.acquire()).await
    else {
        return Err(busy());
    };
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "the webhook body did not arrive in time\n",
        )
            .into_response()),
    }
}

/// `POST /plan`: a pull request's plan from the mirror (see `plans`).
async fn plan(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    super::plans::serve(shared, headers, body).await
}

/// The leader is ready once it read config, identity and Slack; a replica that does not
/// lead is ready while it can read the lease, and says who leads.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.leader.leading().is_none() {
        let reading = shared.clone();
        let view = tokio::task::spawn_blocking(move || {
            reading.store.lease_holder(&reading.election.lease)
        })
        .await;
        return match view {
            Ok(Ok(holder)) => {
                let leader = holder
                    .filter(|h| !h.expired)
                    .map(|h| format!("; {} leads (generation {})", h.holder, h.generation))
                    .unwrap_or_else(|| "; no replica leads yet".into());
                (StatusCode::OK, format!("ready, not leading{leader}\n")).into_response()
            }
            Ok(Err(error)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: cannot read the lease: {error}\n"),
            )
                .into_response(),
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        };
    }
    let status = shared.status.lock().unwrap_or_else(|p| p.into_inner());
    if status.ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = if status.ready_detail.is_empty() {
            "no successful read of config, identity and Slack yet"
        } else {
            &status.ready_detail
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response()
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let status = tokio::task::spawn_blocking(move || shared.snapshot()).await;
    match status {
        Ok(status) => axum::Json(status).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// OpenMetrics when the scraper asks for it, the classic text format otherwise.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mirror = shared.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let now = crate::clock::now_millis();
        match super::mirror::mirror_status(&mirror, now) {
            Ok(status) => mirror.metrics.mirror(&status, now),
            Err(error) => tracing::warn!(%error, "cannot read the mirror for /metrics"),
        }
    })
    .await;
    let open = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if open {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.encode(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics.encode_text(),
        )
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=<hex>` of `body` under `secret`: what a sender puts in the header.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", crate::model::hex(&mac.finalize().into_bytes()))
}

pub(super) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn signed(secret: Option<&str>, headers: &HeaderMap, header: &str, body: &[u8]) -> bool {
    let (Some(secret), Some(signature)) =
        (secret, headers.get(header).and_then(|v| v.to_str().ok()))
    else {
        return false;
    };
    verify(secret, body, signature)
}

/// GitHub's push event: fetch and apply now.
async fn git_hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_hook_body(&shared, &headers, body, MAX_GIT_HOOK_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if !signed(
        shared.git_secret.as_deref(),
        &headers,
        "x-hub-signature-256",
        &body,
    ) {
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256\n",
        )
            .into_response();
    }
    if headers.get("x-github-event").and_then(|v| v.to_str().ok()) == Some("ping") {
        return (StatusCode::OK, "pong\n").into_response();
    }
    if let Some(answer) = to_the_leader(&shared, "/hooks/git", &headers, &body).await {
        return answer;
    }
    shared.wake(Trigger::GitWebhook);
    queued(&shared)
}

/// Okta's one-time verification of an event hook: a `GET` carrying
/// `x-okta-verification-challenge`, authenticated by the hook's `Authorization` secret,
/// answered with the challenge echoed back.
async fn identity_verification(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(challenge) = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    else {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "identity events are POSTed; a GET is Okta's verification, with x-okta-verification-challenge\n",
        )
            .into_response();
    };
    if !authorized(shared.identity_secret.as_deref(), &headers) {
        return (StatusCode::UNAUTHORIZED, "bad or missing authorization\n").into_response();
    }
    axum::Json(serde_json::json!({ "verification": challenge })).into_response()
}

/// An identity provider event: Okta's event hook (with its one-time verification
/// challenge) or the generic signed `{"email": ..., "event": "deactivated"}`. Each event
/// is taken once and each person once in a while (see `inbox`).
async fn identity_hook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_hook_body(&shared, &headers, body, MAX_IDENTITY_HOOK_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let signed_body = signed(
        shared.identity_secret.as_deref(),
        &headers,
        "x-signature-256",
        &body,
    );
    if !signed_body && !authorized(shared.identity_secret.as_deref(), &headers) {
        return (StatusCode::UNAUTHORIZED, "bad or missing signature\n").into_response();
    }
    // Okta verifies an event hook once with a challenge header echoed back.
    if let Some(challenge) = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    {
        return axum::Json(serde_json::json!({ "verification": challenge })).into_response();
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the event is not JSON\n").into_response();
    };
    if let Some(answer) = to_the_leader(&shared, "/hooks/identity", &headers, &body).await {
        return answer;
    }
    let offer = shared
        .inbox()
        .offer(&events_of(&event), crate::clock::now_millis());
    match offer {
        Offer::Queued(people) => {
            tracing::info!(people = people.len(), "identity event queued");
            shared.wake(Trigger::IdentityEvent);
            queued(&shared)
        }
        Offer::Ignored { duplicates, stale } => (
            StatusCode::OK,
            format!(
                "nothing new: {duplicates} already queued or handled, {stale} older than the replay window\n"
            ),
        )
            .into_response(),
        Offer::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many leavers wait for the next sync; try again\n",
        )
            .into_response(),
    }
}

/// Slack's Events API: verified with `SLACK_SIGNING_SECRET`, the `url_verification`
/// challenge answered, an event kept in the store once per event id (any replica; the
/// leader drains them) and acknowledged at once, well within Slack's 3 s. Events only
/// invalidate the mirror, so a lost one costs a re-read, never a wrong action.
async fn slack_hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    use crate::mirror::Delivery;
    use std::sync::atomic::Ordering;
    let counters = &shared.events;
    let Some(secret) = shared.slack_signing_secret.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "Slack events are not configured (SLACK_SIGNING_SECRET)\n",
        )
            .into_response();
    };
    let body = match read_hook_body(
        &shared,
        &headers,
        body,
        super::mirror::MAX_SLACK_EVENT_BYTES,
    )
    .await
    {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let now = crate::clock::now_millis();
    if !super::mirror::signed_by_slack(&secret, &headers, &body, now / 1000) {
        counters.rejected.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNAUTHORIZED,
            "bad, missing or expired X-Slack-Signature\n",
        )
            .into_response();
    }
    let event = match Delivery::parse(&body) {
        Ok(Delivery::UrlVerification { challenge }) => {
            return axum::Json(serde_json::json!({ "challenge": challenge })).into_response();
        }
        Ok(Delivery::RateLimited { minute }) => {
            super::mirror::rate_limited(&shared, minute, now).await;
            return StatusCode::OK.into_response();
        }
        Ok(Delivery::Event(event)) => event,
        Err(refusal) => {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::BAD_REQUEST, format!("{refusal}\n")).into_response();
        }
    };
    keep_slack_event(&shared, event, &body, now).await
}

/// Keeps a verified event for the leader ([`super::mirror::keep`]) and answers Slack:
/// 200 unless it could not be kept (then Slack sends it again).
async fn keep_slack_event(
    shared: &Arc<Shared>,
    event: crate::mirror::Inbound,
    body: &[u8],
    now: i64,
) -> Response {
    match super::mirror::keep(shared, event, body, now).await {
        super::mirror::Kept::New
        | super::mirror::Kept::Duplicate
        | super::mirror::Kept::Overflowed => StatusCode::OK.into_response(),
        super::mirror::Kept::Failed => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the event was not kept; retry\n",
        )
            .into_response(),
    }
}

/// 202, naming the replica that queued the sync (the leader, wherever it arrived).
fn queued(shared: &Shared) -> Response {
    let by = &shared.election.replica;
    (StatusCode::ACCEPTED, format!("sync queued by {by}\n")).into_response()
}

/// Marks a webhook one replica handed to another, so it is handed on at most once.
const FORWARDED: &str = "x-slack-gitops-forwarded";

/// Headers a webhook's sender sets that its receiver reads.
const CARRIED: &[&str] = &[
    "content-type",
    "authorization",
    "x-github-event",
    "x-hub-signature-256",
    "x-signature-256",
];

/// `None` when this replica leads (it acts on the webhook itself); otherwise the answer
/// of the leader the webhook was handed to, or 503.
async fn to_the_leader(
    shared: &Arc<Shared>,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    if shared.leader.leading().is_some() {
        return None;
    }
    let unavailable = |why: String| {
        tracing::warn!(path, reason = %why, "a webhook could not be handed to the leader");
        Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not the leader: {why}; try again\n"),
            )
                .into_response(),
        )
    };
    if headers.contains_key(FORWARDED) {
        return unavailable("it was handed here by another replica".into());
    }
    let reading = shared.clone();
    let holder =
        tokio::task::spawn_blocking(move || reading.store.lease_holder(&reading.election.lease))
            .await;
    let address = match holder {
        Ok(Ok(Some(h))) if !h.expired => match h.address {
            Some(address) if h.holder != shared.election.replica => address,
            _ => return unavailable(format!("{} leads but advertised no address", h.holder)),
        },
        Ok(Ok(_)) => return unavailable("no replica leads".into()),
        Ok(Err(error)) => return unavailable(error.to_string()),
        Err(error) => return unavailable(error.to_string()),
    };
    let mut request = shared
        .forwarder
        .post(format!("{}{path}", address.trim_end_matches('/')))
        .header(FORWARDED, shared.election.replica.as_str())
        .body(body.clone());
    for name in CARRIED {
        if let Some(value) = headers.get(*name) {
            request = request.header(*name, value.as_bytes());
        }
    }
    match request.send().await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = response.text().await.unwrap_or_default();
            Some((status, text).into_response())
        }
        Err(error) => unavailable(format!("the leader at {address} did not answer: {error}")),
    }
}

/// The events a delivery holds: the generic form (`email`, with an optional `id` and
/// RFC 3339 `time`), or Okta's `data.events[]`, each with its `uuid`, its `published`
/// time and the users its `target[]` names by `alternateId`.
fn events_of(body: &serde_json::Value) -> Vec<IdentityEvent> {
    let text = |value: &serde_json::Value, key: &str| {
        value.get(key).and_then(|v| v.as_str()).map(str::to_string)
    };
    let time = |value: &serde_json::Value, key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(crate::model::rfc3339_millis)
    };
    if let Some(email) = body.get("email").and_then(|e| e.as_str()) {
        return vec![IdentityEvent {
            id: text(body, "id"),
            published: time(body, "time"),
            people: vec![email.to_lowercase()],
        }];
    }
    let events = body
        .pointer("/data/events")
        .and_then(|e| e.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    events
        .iter()
        .map(|event| IdentityEvent {
            id: text(event, "uuid"),
            published: time(event, "published"),
            people: event
                .get("target")
                .and_then(|t| t.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|t| t.get("type").and_then(|v| v.as_str()) == Some("User"))
                .filter_map(|t| t.get("alternateId").and_then(|v| v.as_str()))
                .map(str::to_lowercase)
                .filter(|email| email.contains('@'))
                .collect(),
        })
        .collect()
}

/// Okta event hooks authenticate with a shared secret in the `Authorization` header.
fn authorized(secret: Option<&str>, headers: &HeaderMap) -> bool {
    let (Some(secret), Some(value)) = (
        secret,
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    // Constant-time enough for a fixed-length comparison of secrets: compare HMACs.
    sign(secret, b"okta") == sign(value, b"okta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let signature = sign("s3cret", body);
        assert!(verify("s3cret", body, &signature));
        assert!(!verify("other", body, &signature));
        assert!(!verify("s3cret", b"{}", &signature));
        assert!(!verify("s3cret", body, "sha256=zz"));
        assert!(!verify("s3cret", body, "sha1=00"));
        // GitHub's documented example.
        assert_eq!(
            sign("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
