//! Okta's management API over an [`Idp`]: users (`DEPROVISIONED` ones only when a
//! search asks for them, as Okta does), one user by id or login, a user's groups, groups
//! and their members (nested groups flattened: Okta groups do not nest), and the System
//! Log. Pages at Okta's documented maximums (200 users, 10,000 groups, 1,000 members,
//! 1,000 log events) with `Link: <...>; rel="next"`; the System Log always sends a next
//! link, even after an empty page, as Okta does for polling. Each endpoint counts against
//! Okta's published default per-minute bucket (users 600, a user by id 2,000, groups 500,
//! logs 120), reported in `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`, and answered
//! 429 (`E0000047`) when used up. The System Log keeps 90 days. Okta groups do not nest:
//! a group of the directory is served with its nested groups' members taken in, and then
//! changes only when it is changed itself, as a flat Okta group would.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{ChangeKind, Idp, IdpState, Standing, parse_rfc3339, query, rfc3339};

/// The System Log's retention.
pub const RETENTION_DAYS: f64 = 90.0;

/// Okta's published default per-minute limits for the endpoints served.
pub const BUCKETS: &[(&str, u64)] = &[
    ("/api/v1/users", 600),
    ("/api/v1/users/{id}", 2000),
    ("/api/v1/groups", 500),
    ("/api/v1/logs", 120),
];

/// Serves Okta's API over `idp`; the base URL.
pub async fn serve(idp: Idp) -> String {
    let app = axum::Router::new()
        .route("/api/v1/users", get(users))
        .route("/api/v1/users/{user}", get(user))
        .route("/api/v1/users/{user}/groups", get(user_groups))
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{group}/users", get(group_users))
        .route("/api/v1/logs", get(logs))
        .layer(axum::middleware::from_fn_with_state(idp.clone(), admit))
        .with_state(idp);
    super::serve(app).await
}

/// Records the request, checks the token, injects a configured fault and takes a token
/// from the endpoint's bucket, adding the rate-limit headers to the answer.
async fn admit(State(idp): State<Idp>, request: Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path().to_string();
    let bucket = bucket_of(&path);
    let limit = BUCKETS
        .iter()
        .find(|(b, _)| *b == bucket)
        .map_or(1200, |(_, l)| *l);
    let taken = {
        let mut state = idp.state();
        state.requests.push(
            request
                .uri()
                .path_and_query()
                .map_or_else(String::new, |p| p.to_string()),
        );
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !(authorization.starts_with("SSWS ") || authorization.starts_with("Bearer ")) {
            return error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            );
        }
        if let Some(status) = state.fault() {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "E0000009",
                "Internal Server Error",
            );
        }
        state.take(bucket, limit, 60.0, 1)
    };
    match taken {
        Ok(taken) => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
            headers.insert("x-rate-limit-remaining", HeaderValue::from(taken.remaining));
            headers.insert("x-rate-limit-reset", HeaderValue::from(taken.reset_unix));
            response
        }
        Err(wait) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            );
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
                + wait;
            let headers = response.headers_mut();
            headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
            headers.insert("x-rate-limit-remaining", HeaderValue::from(0));
            headers.insert("x-rate-limit-reset", HeaderValue::from(reset.ceil() as u64));
            response
        }
    }
}

/// The bucket a path counts against.
fn bucket_of(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "users", _] => "/api/v1/users/{id}",
        ["api", "v1", "users", ..] => "/api/v1/users",
        ["api", "v1", "groups", ..] => "/api/v1/groups",
        ["api", "v1", "logs"] => "/api/v1/logs",
        _ => "/api/v1",
    }
}

/// Okta's error object.
fn error(status: StatusCode, code: &str, summary: &str) -> Response {
    error_with_causes(status, code, summary, &[])
}

fn error_with_causes(status: StatusCode, code: &str, summary: &str, causes: &[&str]) -> Response {
    let causes: Vec<Value> = causes.iter().map(|c| json!({"errorSummary": c})).collect();
    (
        status,
        axum::Json(json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": "oae0000000000000000000",
            "errorCauses": causes,
        })),
    )
        .into_response()
}

pub fn user_id(index: usize) -> String {
    format!("00u{index:017}")
}

pub fn group_id(index: usize) -> String {
    format!("00g{index:017}")
}

fn index_of(id: &str, prefix: &str) -> Option<usize> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// An Okta user object.
fn user_object(state: &IdpState, index: usize, base: &str) -> Value {
    let person = &state.people[index];
    let status = match state.standing[index] {
        Standing::Active => "ACTIVE",
        Standing::Suspended => "SUSPENDED",
        Standing::Deactivated => "DEPROVISIONED",
    };
    let manager = person
        .manager
        .as_deref()
        .and_then(|m| state.person_by_email(m))
        .map(user_id);
    let created = rfc3339(state.epoch - 86_400.0 * 365.0);
    let id = user_id(index);
    json!({
        "id": id,
        "status": status,
        "created": created,
        "activated": created,
        "statusChanged": null,
        "lastLogin": null,
        "lastUpdated": created,
        "passwordChanged": null,
        "type": {"id": "oty00000000000000000"},
        "profile": {
            "login": person.email, "email": person.email,
            "firstName": person.given_name, "lastName": person.family_name,
            "title": person.title, "department": person.department,
            "managerId": manager, "employeeNumber": format!("E{index}"),
        },
        "_links": {"self": {"href": format!("{base}/api/v1/users/{id}")}},
    })
}

/// An Okta group object.
fn group_object(state: &IdpState, index: usize, base: &str) -> Value {
    let group = &state.groups[index];
    let created = rfc3339(state.epoch - 86_400.0 * 365.0);
    let id = group_id(index);
    json!({
        "id": id,
        "created": created,
        "lastUpdated": created,
        "lastMembershipUpdated": created,
        "objectClass": ["okta:user_group"],
        "type": "OKTA_GROUP",
        "profile": {"name": group.name, "description": group.description},
        "_links": {"self": {"href": format!("{base}/api/v1/groups/{id}")}},
    })
}

/// The request's own base URL, for links.
fn base_of(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// One page of `items` (indices into a listing) after the `after` cursor, at most
/// `limit` (capped at `max`), with the `Link` header to the next page when there is one.
fn page<T: Clone>(
    items: &[T],
    uri: &Uri,
    headers: &HeaderMap,
    default: usize,
    max: usize,
) -> (Vec<T>, Option<String>) {
    let query = query(uri);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, max);
    let start = query
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + limit).min(items.len());
    let slice = items.get(start..end).unwrap_or_default().to_vec();
    let next = (end < items.len()).then(|| {
        let mut next_query = query.clone();
        next_query.insert("after".into(), end.to_string());
        next_query.insert("limit".into(), limit.to_string());
        let encoded = serde_urlencoded::to_string(&next_query).unwrap_or_default();
        format!(
            "<{}{}?{encoded}>; rel=\"next\"",
            base_of(headers),
            uri.path()
        )
    });
    (slice, next)
}

/// A JSON list with the `Link` headers Okta sends: `self`, and `next` when there is more.
fn listing(items: Vec<Value>, uri: &Uri, headers: &HeaderMap, next: Option<String>) -> Response {
    let mut response = axum::Json(items).into_response();
    let this = format!(
        "<{}{}>; rel=\"self\"",
        base_of(headers),
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    if let Ok(value) = HeaderValue::from_str(&this) {
        response.headers_mut().append("link", value);
    }
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().append("link", next);
    }
    response
}

async fn users(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let query = query(&uri);
    let deprovisioned = match query.get("search").map(String::as_str) {
        None => false,
        Some("status eq \"DEPROVISIONED\"") => true,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "E0000031",
                "Invalid search criteria.",
            );
        }
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    // The cursor is the index to go on from, so a page costs its own size.
    let start = query
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let mut listed = Vec::with_capacity(limit);
    let mut next_index = start;
    for i in start..state.people.len() {
        if listed.len() == limit {
            break;
        }
        next_index = i + 1;
        if (state.standing[i] == Standing::Deactivated) == deprovisioned {
            listed.push(i);
        }
    }
    let more = (next_index..state.people.len())
        .any(|i| (state.standing[i] == Standing::Deactivated) == deprovisioned);
    let next = more.then(|| {
        let mut next_query = query.clone();
        next_query.insert("after".into(), next_index.to_string());
        next_query.insert("limit".into(), limit.to_string());
        let encoded = serde_urlencoded::to_string(&next_query).unwrap_or_default();
        format!(
            "<{}{}?{encoded}>; rel=\"next\"",
            base_of(&headers),
            uri.path()
        )
    });
    let base = base_of(&headers);
    let items = listed
        .into_iter()
        .map(|i| user_object(&state, i, &base))
        .collect();
    listing(items, &uri, &headers, next)
}

/// The user an id or a login names.
fn find_user(state: &IdpState, key: &str) -> Option<usize> {
    index_of(key, "00u")
        .filter(|&i| i < state.people.len())
        .or_else(|| state.person_by_email(key))
}

async fn user(State(idp): State<Idp>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    let state = idp.state();
    match find_user(&state, &key) {
        Some(i) => axum::Json(user_object(&state, i, &base_of(&headers))).into_response(),
        None => not_found(&key),
    }
}

fn not_found(key: &str) -> Response {
    error_with_causes(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {key} (User)"),
        &[],
    )
}

async fn user_groups(
    State(idp): State<Idp>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = idp.state();
    let Some(i) = find_user(&state, &key) else {
        return not_found(&key);
    };
    let groups: Vec<usize> = state
        .okta_members
        .iter()
        .enumerate()
        .filter(|(_, members)| members.contains(&i))
        .map(|(g, _)| g)
        .collect();
    let (slice, next) = page(&groups, &uri, &headers, 10_000, 10_000);
    let base = base_of(&headers);
    let items = slice
        .into_iter()
        .map(|g| group_object(&state, g, &base))
        .collect();
    listing(items, &uri, &headers, next)
}

async fn groups(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let all: Vec<usize> = (0..state.groups.len()).collect();
    let (slice, next) = page(&all, &uri, &headers, 10_000, 10_000);
    let base = base_of(&headers);
    let items = slice
        .into_iter()
        .map(|g| group_object(&state, g, &base))
        .collect();
    listing(items, &uri, &headers, next)
}

async fn group_users(
    State(idp): State<Idp>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = idp.state();
    let Some(g) = index_of(&key, "00g").filter(|&g| g < state.groups.len()) else {
        return error(
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {key} (UserGroup)"),
        );
    };
    let members: Vec<usize> = state.okta_members[g].iter().copied().collect();
    let (slice, next) = page(&members, &uri, &headers, 1000, 1000);
    let base = base_of(&headers);
    let items = slice
        .into_iter()
        .map(|i| user_object(&state, i, &base))
        .collect();
    listing(items, &uri, &headers, next)
}

/// The event types a filter admits: `eventType eq "a" or eventType eq "b"`, or all.
fn event_types(filter: Option<&String>) -> Result<Option<Vec<String>>, ()> {
    let Some(filter) = filter.map(|f| f.trim()).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    filter
        .split(" or ")
        .map(|clause| {
            let value = clause.trim().strip_prefix("eventType eq ").ok_or(())?;
            let value = value.trim().strip_prefix('"').ok_or(())?;
            value.strip_suffix('"').map(str::to_string).ok_or(())
        })
        .collect::<Result<Vec<_>, ()>>()
        .map(Some)
}

/// A change as a System Log event.
fn log_event(state: &IdpState, change: &super::Change) -> Value {
    let user = |p: usize| {
        json!({"id": user_id(p), "type": "User", "alternateId": state.people[p].email,
               "displayName": format!("{} {}", state.people[p].given_name, state.people[p].family_name),
               "detailEntry": {}})
    };
    let group = |g: usize| {
        json!({"id": group_id(g), "type": "UserGroup", "alternateId": "unknown",
               "displayName": state.groups[g].name, "detailEntry": {}})
    };
    let (event_type, message, target) = match &change.kind {
        ChangeKind::MemberAdded { group: g, person } => (
            "group.user_membership.add",
            "Add user to group membership",
            vec![user(*person), group(*g)],
        ),
        ChangeKind::MemberRemoved { group: g, person } => (
            "group.user_membership.remove",
            "Remove user from group membership",
            vec![user(*person), group(*g)],
        ),
        ChangeKind::Standing { person, standing } => {
            let (kind, message) = match standing {
                Standing::Active => ("user.lifecycle.activate", "Activate Okta user"),
                Standing::Suspended => ("user.lifecycle.suspend", "Suspend Okta user"),
                Standing::Deactivated => ("user.lifecycle.deactivate", "Deactivate Okta user"),
            };
            (kind, message, vec![user(*person)])
        }
        ChangeKind::Profile { person } => (
            "user.account.update_profile",
            "Update user profile for Okta",
            vec![user(*person)],
        ),
        ChangeKind::PersonCreated { person } => (
            "user.lifecycle.create",
            "Create Okta user",
            vec![user(*person)],
        ),
    };
    let legacy = match &change.kind {
        ChangeKind::MemberAdded { .. } => "core.user_group_member.user_add",
        ChangeKind::MemberRemoved { .. } => "core.user_group_member.user_remove",
        ChangeKind::Standing { .. } => "core.user.config.user_status.change",
        ChangeKind::Profile { .. } => "core.user.config.profile_update_success",
        ChangeKind::PersonCreated { .. } => "core.user.config.user_creation.success",
    };
    json!({
        "uuid": format!("{:08x}-0000-4000-8000-000000000000", change.seq),
        "published": rfc3339(change.at),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "legacyEventType": legacy,
        "displayMessage": message,
        "actor": {"id": "00u_admin", "type": "User", "alternateId": "admin@okta.example",
                  "displayName": "Admin", "detailEntry": {}},
        "client": {"id": "okta-fake", "zone": "null", "device": "Unknown", "ipAddress": "127.0.0.1"},
        "request": {"ipChain": []},
        "outcome": {"result": "SUCCESS"},
        "target": target,
        "transaction": {"type": "WEB", "id": format!("tx{}", change.seq), "detail": {}},
        "debugContext": {"debugData": {}},
        "authenticationContext": {"externalSessionId": "trs0000000000000000000"},
        "securityContext": {},
    })
}

/// `GET /api/v1/logs`: events from `since` (default seven days ago) to `until` (default
/// now), oldest first, at most `limit` (100 by default, 1,000 at most) a page after the
/// `after` cursor; a `since` beyond the retention is refused (`E0000001`).
async fn logs(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let mut state = idp.state();
    let query = query(&uri);
    let now = state.now();
    let since = match query.get("since") {
        Some(text) => match parse_rfc3339(text) {
            Some(t) => t,
            None => return invalid("since", "since must be an ISO 8601 date"),
        },
        None => now - 7.0 * 86_400.0,
    };
    let until = match query.get("until").map(|t| parse_rfc3339(t)) {
        Some(Some(t)) => t,
        Some(None) => return invalid("until", "until must be an ISO 8601 date"),
        None => now,
    };
    let refused = query.contains_key("since") && std::mem::take(&mut state.refuse_next_since);
    if since < now - RETENTION_DAYS * 86_400.0 || refused {
        return invalid(
            "since",
            "since: the date is before the oldest event the System Log retains",
        );
    }
    let Ok(types) = event_types(query.get("filter")) else {
        return invalid("filter", "filter: invalid expression");
    };
    let after: u64 = match query.get("after").map(|a| a.parse::<u64>()) {
        Some(Ok(a)) => a,
        Some(Err(_)) => return invalid("after", "after: invalid cursor"),
        None => 0,
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let matching: Vec<&super::Change> = state
        .changes
        .iter()
        .filter(|c| c.seq > after && c.at >= since && c.at <= until)
        .filter(|c| {
            let event = log_event(&state, c);
            types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| event["eventType"] == t.as_str()))
        })
        .take(limit)
        .collect();
    let last = matching.last().map_or(after, |c| c.seq);
    let items: Vec<Value> = matching.iter().map(|c| log_event(&state, c)).collect();
    let mut next_query: std::collections::BTreeMap<String, String> = query.into_iter().collect();
    next_query.insert("after".into(), last.to_string());
    let next = format!(
        "<{}/api/v1/logs?{}>; rel=\"next\"",
        base_of(&headers),
        serde_urlencoded::to_string(&next_query).unwrap_or_default()
    );
    listing(items, &uri, &headers, Some(next))
}

fn invalid(parameter: &str, cause: &str) -> Response {
    error_with_causes(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: {parameter}"),
        &[cause],
    )
}
