//! HTTP for the identity adapters: JSON GETs that retry what is worth retrying (429 after
//! `Retry-After` or Okta's `X-Rate-Limit-Reset`, 5xx, timeouts, resets) and fail with a
//! message that names the source and the call otherwise.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::IdentityError;

/// The longest we wait for one rate-limit window before trying again.
const MAX_WAIT: Duration = Duration::from_secs(60);
const ATTEMPTS: u32 = 5;

/// The HTTP client the identity adapters share settings for: a 30-second timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client with a timeout builds")
}

/// The string at a JSON pointer (`/profile/email`), or empty when absent.
pub fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A JSON body with the response headers (for `Link` and rate-limit headers).
pub struct Fetched {
    pub body: Value,
    pub headers: HeaderMap,
}

/// Seconds to wait after a 429: `Retry-After`, else until `X-Rate-Limit-Reset` (unix
/// seconds, Okta), else one second.
pub fn rate_limit_wait(headers: &HeaderMap) -> Duration {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(seconds) = header("retry-after") {
        return Duration::from_secs_f64(seconds.max(0.0)).min(MAX_WAIT);
    }
    if let Some(reset) = header("x-rate-limit-reset") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        return Duration::from_secs_f64((reset - now).max(0.0)).min(MAX_WAIT);
    }
    Duration::from_secs(1)
}

/// GETs JSON, retrying 429s, 5xx and broken connections; any other failure is final.
pub async fn get_json(
    source: &str,
    call: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Fetched, IdentityError> {
    match get_json_or(source, call, request, &[]).await? {
        Answer::Body(fetched) => Ok(fetched),
        Answer::Status(..) => unreachable!("no status is expected"),
    }
}

/// As [`get_json`], with a 404 answered as `None`: for one resource that may not exist.
pub async fn get_json_if_found(
    source: &str,
    call: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Option<Fetched>, IdentityError> {
    Ok(match get_json_or(source, call, request, &[404]).await? {
        Answer::Body(fetched) => Some(fetched),
        Answer::Status(..) => None,
    })
}

/// A JSON body, or one of the statuses the caller handles itself (with the body's text,
/// for a log line; never echoed whole).
pub enum Answer {
    Body(Fetched),
    Status(u16, String),
}

/// GETs JSON as [`get_json`] does, except that a status in `expected` (an expired cursor's
/// 400 or 410, a missing resource's 404) is answered rather than failed or retried.
pub async fn get_json_or(
    source: &str,
    call: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
    expected: &[u16],
) -> Result<Answer, IdentityError> {
    let fail = |message: String| IdentityError::Call {
        source_name: source.to_string(),
        call: call.to_string(),
        message,
    };
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match request().send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                if status == 429 {
                    last = "rate limited (HTTP 429)".into();
                    tokio::time::sleep(rate_limit_wait(&headers)).await;
                    continue;
                }
                if expected.contains(&status) {
                    let text = response.text().await.unwrap_or_default();
                    return Ok(Answer::Status(status, text.chars().take(200).collect()));
                }
                if status >= 500 {
                    last = format!("HTTP {status}");
                } else {
                    match response.text().await {
                        Ok(text) if (200..300).contains(&status) => {
                            let body = serde_json::from_str(&text)
                                .map_err(|_| fail("the answer is not JSON".into()))?;
                            return Ok(Answer::Body(Fetched { body, headers }));
                        }
                        Ok(text) => {
                            let hint = match status {
                                401 | 403 => "; check the token and its permissions",
                                404 => "; check the URL",
                                _ => "",
                            };
                            let excerpt: String = text.chars().take(200).collect();
                            return Err(fail(format!("HTTP {status}{hint}: {excerpt}")));
                        }
                        Err(_) => last = "the connection broke while reading the answer".into(),
                    }
                }
            }
            Err(error) if error.is_timeout() => last = "the request timed out".into(),
            Err(error) if error.is_connect() => last = "could not connect".into(),
            Err(_) => last = "the request failed".into(),
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    Err(fail(format!(
        "{last} after {ATTEMPTS} attempts; the identity provider may be degraded, try again later"
    )))
}
