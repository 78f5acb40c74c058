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

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};

use super::{Shared, Trigger};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/hooks/git", post(git_hook))
        .route("/hooks/identity", post(identity_hook))
        .with_state(shared);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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

fn decode_hex(text: &str) -> Option<Vec<u8>> {
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
async fn git_hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
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

/// An identity provider event: Okta's event hook (with its one-time verification
/// challenge) or the generic signed `{"email": ..., "event": "deactivated"}`.
async fn identity_hook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Okta verifies an event hook once with a GET-like challenge header echoed back.
    if let Some(challenge) = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    {
        if !signed(
            shared.identity_secret.as_deref(),
            &headers,
            "x-signature-256",
            &body,
        ) && !authorized(shared.identity_secret.as_deref(), &headers)
        {
            return (StatusCode::UNAUTHORIZED, "bad or missing signature\n").into_response();
        }
        return axum::Json(serde_json::json!({ "verification": challenge })).into_response();
    }
    let okta = authorized(shared.identity_secret.as_deref(), &headers);
    if !okta
        && !signed(
            shared.identity_secret.as_deref(),
            &headers,
            "x-signature-256",
            &body,
        )
    {
        return (StatusCode::UNAUTHORIZED, "bad or missing signature\n").into_response();
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the event is not JSON\n").into_response();
    };
    if let Some(answer) = to_the_leader(&shared, "/hooks/identity", &headers, &body).await {
        return answer;
    }
    let people = people_of(&event);
    shared
        .leavers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(people);
    shared.wake(Trigger::IdentityEvent);
    queued(&shared)
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

/// The people an event names: the generic form's `email`, or the users that Okta's
/// `data.events[].target[]` name by `alternateId`.
fn people_of(event: &serde_json::Value) -> Vec<String> {
    if let Some(email) = event.get("email").and_then(|e| e.as_str()) {
        return vec![email.to_lowercase()];
    }
    let events = event
        .pointer("/data/events")
        .and_then(|e| e.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    events
        .iter()
        .flat_map(|e| {
            e.get("target")
                .and_then(|t| t.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter(|t| t.get("type").and_then(|v| v.as_str()) == Some("User"))
        .filter_map(|t| {
            t.get("alternateId")
                .and_then(|v| v.as_str())
                .map(str::to_lowercase)
        })
        .filter(|email| email.contains('@'))
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
