//! Microsoft Graph (v1.0) over an [`Idp`], for the Entra adapter: the client-credentials
//! token, users (by filter on `mail`/`userPrincipalName`, one by id, with the manager
//! expanded), a user's `transitiveMemberOf` groups, groups and their direct members
//! (users and nested groups by `@odata.type`), and the delta queries `/users/delta` and
//! `/groups/delta` (`members@delta`, `@removed`, `$deltatoken=latest`, a `410` for an
//! expired token). Pages of `$top` (999 at most) linked by `@odata.nextLink`, the last
//! delta page carrying `@odata.deltaLink`. Requests cost Graph's documented resource
//! units (`GET users` 2, `GET groups/{id}/members` 3, anything else 1; `$select` takes one
//! off, `$expand` adds one, never below 1) from the application-per-tenant budget of a
//! tenant over 500 users (8,000 per 10 seconds), reported in `x-ms-resource-unit`, and
//! answered 429 with `Retry-After` when spent.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{ChangeKind, Idp, IdpState, Standing, query};

/// Resource units per ten seconds for one application in a tenant of more than 500 users.
pub const RESOURCE_UNITS_PER_10S: u64 = 8_000;

/// Serves Graph and its token endpoint over `idp`; the base URL (both
/// `login.microsoftonline.com` and `graph.microsoft.com` are answered there).
pub async fn serve(idp: Idp) -> String {
    let app = axum::Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/v1.0/users", get(users))
        .route("/v1.0/users/delta", get(users_delta))
        .route("/v1.0/users/{id}", get(user))
        .route(
            "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group",
            get(transitive_groups),
        )
        .route("/v1.0/groups", get(groups))
        .route("/v1.0/groups/delta", get(groups_delta))
        .route("/v1.0/groups/{id}/members", get(members))
        .layer(axum::middleware::from_fn_with_state(idp.clone(), admit))
        .with_state(idp);
    super::serve(app).await
}

pub fn user_id(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

pub fn group_id(index: usize) -> String {
    format!("10000000-0000-4000-8000-{index:012}")
}

fn index_of(id: &str, prefix: &str) -> Option<usize> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// A request's resource units, by Graph's published base costs.
fn cost(uri: &Uri) -> u64 {
    let path = uri.path();
    let query = query(uri);
    let base: i64 = if path == "/v1.0/users" {
        2
    } else if path.starts_with("/v1.0/groups/") && path.ends_with("/members") {
        3
    } else {
        1
    };
    let select = i64::from(query.contains_key("$select"));
    let expand = i64::from(query.contains_key("$expand"));
    (base - select + expand).max(1) as u64
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message,
            "innerError": {"date": super::rfc3339(now()), "request-id": "00000000-0000-0000-0000-000000000000",
                           "client-request-id": "00000000-0000-0000-0000-000000000000"}}})),
    )
        .into_response()
}

/// Records the request, checks the bearer token (not on the token endpoint), injects a
/// configured fault and spends the request's resource units.
async fn admit(State(idp): State<Idp>, request: Request, next: axum::middleware::Next) -> Response {
    let is_token = request.uri().path().ends_with("/oauth2/v2.0/token");
    let units = cost(request.uri());
    let taken = {
        let mut state = idp.state();
        state.requests.push(
            request
                .uri()
                .path_and_query()
                .map_or_else(String::new, |p| p.to_string()),
        );
        if is_token {
            None
        } else {
            let bearer = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer "));
            if !bearer {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    "Access token is empty.",
                );
            }
            if let Some(status) = state.fault() {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = error(status, "serviceNotAvailable", "Injected fault.");
                if status == StatusCode::TOO_MANY_REQUESTS {
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from(1));
                }
                return response;
            }
            Some(state.take("graph", RESOURCE_UNITS_PER_10S, 10.0, units))
        }
    };
    match taken {
        None | Some(Ok(_)) => {
            let mut response = next.run(request).await;
            if taken.is_some() {
                response
                    .headers_mut()
                    .insert("x-ms-resource-unit", HeaderValue::from(units));
            }
            response
        }
        Some(Err(wait)) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests.",
            );
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&super::retry_after(wait)) {
                headers.insert("retry-after", value);
            }
            headers.insert(
                "x-ms-throttle-scope",
                HeaderValue::from_static("Tenant_Application/ReadWrite/app/tenant"),
            );
            response
        }
    }
}

async fn token() -> Response {
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                      "access_token": "graph-fake-access-token"}),
    )
    .into_response()
}

/// A Graph user, with `manager` when the query expands it.
fn user_object(state: &IdpState, index: usize, expand_manager: bool) -> Value {
    let person = &state.people[index];
    let mut user = json!({
        "id": user_id(index),
        "mail": person.email,
        "userPrincipalName": person.email,
        "givenName": person.given_name,
        "surname": person.family_name,
        "jobTitle": person.title,
        "department": person.department,
        "accountEnabled": state.standing[index] == Standing::Active,
    });
    if expand_manager
        && let Some(manager) = person
            .manager
            .as_deref()
            .and_then(|m| state.person_by_email(m))
    {
        user["manager"] = json!({"@odata.type": "#microsoft.graph.user", "id": user_id(manager)});
    }
    user
}

fn group_object(state: &IdpState, index: usize) -> Value {
    let group = &state.groups[index];
    json!({"id": group_id(index), "displayName": group.name, "description": group.description})
}

fn base_of(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A collection page: `$top` items (100 by default, 999 at most) from `$skiptoken`, with
/// `@odata.nextLink` when more follow, else the `last` entries (a delta link).
fn collection(
    len: usize,
    item: impl Fn(usize) -> Value,
    uri: &Uri,
    headers: &HeaderMap,
    last: BTreeMap<&str, Value>,
) -> Response {
    let query = query(uri);
    let top = query
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let start = query
        .get("$skiptoken")
        .and_then(|s| s.rsplit('.').next())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + top).min(len);
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#{}", base_of(headers), uri.path().trim_start_matches("/v1.0/")),
        "value": (start.min(end)..end).map(item).collect::<Vec<_>>(),
    });
    if end < len {
        let mut next: BTreeMap<String, String> = query.into_iter().collect();
        let prefix = next
            .get("$skiptoken")
            .and_then(|s| s.rsplit_once('.').map(|(p, _)| p.to_string()));
        let token = match prefix {
            Some(prefix) => format!("{prefix}.{end}"),
            None => format!("p.{end}"),
        };
        next.insert("$skiptoken".into(), token);
        body["@odata.nextLink"] = json!(format!(
            "{}{}?{}",
            base_of(headers),
            uri.path(),
            serde_urlencoded::to_string(&next).unwrap_or_default()
        ));
    } else {
        for (key, value) in last {
            body[key] = value;
        }
    }
    axum::Json(body).into_response()
}

/// The users a `$filter` of `mail eq '...' or userPrincipalName eq '...'` names.
fn filtered(state: &IdpState, filter: &str) -> Result<Vec<usize>, ()> {
    let mut found = BTreeSet::new();
    for clause in filter.split(" or ") {
        let (field, value) = clause.trim().split_once(" eq ").ok_or(())?;
        if field != "mail" && field != "userPrincipalName" {
            return Err(());
        }
        let value = value
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or(())?
            .replace("''", "'");
        found.extend(state.person_by_email(&value));
    }
    Ok(found.into_iter().collect())
}

fn expands_manager(uri: &Uri) -> bool {
    query(uri)
        .get("$expand")
        .is_some_and(|e| e.starts_with("manager"))
}

async fn users(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let indices: Vec<usize> = match query(&uri).get("$filter") {
        Some(filter) => match filtered(&state, filter) {
            Ok(found) => found,
            Err(()) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    "Unsupported query.",
                );
            }
        },
        None => (0..state.people.len()).collect(),
    };
    let expand = expands_manager(&uri);
    let item = |k: usize| user_object(&state, indices[k], expand);
    collection(indices.len(), item, &uri, &headers, BTreeMap::new())
}

fn find_user(state: &IdpState, key: &str) -> Option<usize> {
    index_of(key, "00000000-0000-4000-8000-")
        .filter(|&i| i < state.people.len())
        .or_else(|| state.person_by_email(key))
}

fn no_user(key: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn user(State(idp): State<Idp>, Path(key): Path<String>, uri: Uri) -> Response {
    let state = idp.state();
    match find_user(&state, &key) {
        Some(i) => axum::Json(user_object(&state, i, expands_manager(&uri))).into_response(),
        None => no_user(&key),
    }
}

async fn transitive_groups(
    State(idp): State<Idp>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut state = idp.state();
    let Some(i) = find_user(&state, &key) else {
        return no_user(&key);
    };
    let groups: Vec<usize> = state
        .flattened()
        .iter()
        .enumerate()
        .filter(|(_, members)| members.contains(&i))
        .map(|(g, _)| g)
        .collect();
    let item = |k: usize| {
        let mut group = group_object(&state, groups[k]);
        group["@odata.type"] = json!("#microsoft.graph.group");
        group
    };
    collection(groups.len(), item, &uri, &headers, BTreeMap::new())
}

async fn groups(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let item = |g: usize| group_object(&state, g);
    collection(state.groups.len(), item, &uri, &headers, BTreeMap::new())
}

/// A group's direct members: users, then nested groups.
fn direct_members(state: &IdpState, g: usize) -> Vec<Value> {
    let group = &state.groups[g];
    group
        .members
        .iter()
        .map(|&p| json!({"@odata.type": "#microsoft.graph.user", "id": user_id(p)}))
        .chain(
            group
                .groups
                .iter()
                .map(|&c| json!({"@odata.type": "#microsoft.graph.group", "id": group_id(c)})),
        )
        .collect()
}

async fn members(
    State(idp): State<Idp>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = idp.state();
    let Some(g) = index_of(&key, "10000000-0000-4000-8000-").filter(|&g| g < state.groups.len())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{key}' does not exist."),
        );
    };
    let items = direct_members(&state, g);
    collection(
        items.len(),
        |k| items[k].clone(),
        &uri,
        &headers,
        BTreeMap::new(),
    )
}

/// Where a delta query starts: the whole set (`None`), or the changes after a sequence.
/// The token is `$deltatoken` on the first page and the prefix of `$skiptoken` after it.
enum DeltaFrom {
    Everything,
    After(u64),
    Latest,
}

fn delta_from(state: &IdpState, uri: &Uri) -> Option<(DeltaFrom, u64)> {
    let query = query(uri);
    // A page after the first carries the start and the end of its round in $skiptoken.
    if let Some(skip) = query.get("$skiptoken") {
        let parts: Vec<&str> = skip.split('.').collect();
        let [from, upto, _] = parts.as_slice() else {
            return None;
        };
        let upto: u64 = upto.parse().ok()?;
        return match *from {
            "all" => Some((DeltaFrom::Everything, upto)),
            n => Some((DeltaFrom::After(n.parse().ok()?), upto)),
        };
    }
    let upto = state.last_seq();
    match query.get("$deltatoken").map(String::as_str) {
        None => Some((DeltaFrom::Everything, upto)),
        Some("latest") => Some((DeltaFrom::Latest, upto)),
        Some(token) => match token.parse::<u64>() {
            Ok(seq) if seq + 1 >= state.expired_before => Some((DeltaFrom::After(seq), upto)),
            _ => None,
        },
    }
}

/// Graph's answer to an expired or unknown delta token.
fn resync_required() -> Response {
    error(
        StatusCode::GONE,
        "resyncRequired",
        "Resync required. Replace any local cached copy with a full sync.",
    )
}

/// A delta query's pages: `items` paged by `$top` (with the round's bounds carried in
/// `$skiptoken`), the last page carrying the delta link for the next round.
fn delta_pages(
    len: usize,
    item: impl Fn(usize) -> Value,
    uri: &Uri,
    headers: &HeaderMap,
    from: &DeltaFrom,
    upto: u64,
) -> Response {
    let delta_link = format!("{}{}?$deltatoken={upto}", base_of(headers), uri.path());
    // Keep the round's bounds in the skip token, so the next page lists the same set.
    let round = match from {
        DeltaFrom::Everything | DeltaFrom::Latest => "all".to_string(),
        DeltaFrom::After(seq) => seq.to_string(),
    };
    let mut rewritten = query(uri);
    let offset = rewritten
        .get("$skiptoken")
        .and_then(|s| s.rsplit('.').next().map(str::to_string))
        .unwrap_or_else(|| "0".into());
    rewritten.remove("$deltatoken");
    rewritten.insert("$skiptoken".into(), format!("{round}.{upto}.{offset}"));
    let uri: Uri = format!(
        "{}?{}",
        uri.path(),
        serde_urlencoded::to_string(&rewritten).unwrap_or_default()
    )
    .parse()
    .unwrap_or_else(|_| uri.clone());
    collection(
        len,
        item,
        &uri,
        headers,
        BTreeMap::from([("@odata.deltaLink", json!(delta_link))]),
    )
}

/// The changes in `(after, upto]`.
fn changes(state: &IdpState, after: u64, upto: u64) -> impl Iterator<Item = &ChangeKind> {
    state
        .changes
        .iter()
        .filter(move |c| c.seq > after && c.seq <= upto)
        .map(|c| &c.kind)
}

async fn users_delta(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let Some((from, upto)) = delta_from(&state, &uri) else {
        return resync_required();
    };
    let indices: Vec<usize> = match from {
        DeltaFrom::Latest => Vec::new(),
        DeltaFrom::Everything => (0..state.people.len()).collect(),
        DeltaFrom::After(after) => changes(&state, after, upto)
            .filter_map(|kind| match kind {
                ChangeKind::Standing { person, .. }
                | ChangeKind::Profile { person }
                | ChangeKind::PersonCreated { person } => Some(*person),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let item = |k: usize| user_object(&state, indices[k], false);
    delta_pages(indices.len(), item, &uri, &headers, &from, upto)
}

async fn groups_delta(State(idp): State<Idp>, uri: Uri, headers: HeaderMap) -> Response {
    let state = idp.state();
    let Some((from, upto)) = delta_from(&state, &uri) else {
        return resync_required();
    };
    let items: Vec<Value> = match from {
        DeltaFrom::Latest => Vec::new(),
        DeltaFrom::Everything => (0..state.groups.len())
            .map(|g| {
                let mut group = group_object(&state, g);
                group["members@delta"] = json!(direct_members(&state, g));
                group
            })
            .collect(),
        DeltaFrom::After(after) => {
            let mut touched: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
            for kind in changes(&state, after, upto) {
                match kind {
                    ChangeKind::MemberAdded { group, person } => {
                        touched.entry(*group).or_default().push(
                            json!({"@odata.type": "#microsoft.graph.user", "id": user_id(*person)}),
                        );
                    }
                    ChangeKind::MemberRemoved { group, person } => {
                        touched.entry(*group).or_default().push(json!({
                            "@odata.type": "#microsoft.graph.user", "id": user_id(*person),
                            "@removed": {"reason": "deleted"}}));
                    }
                    _ => {}
                }
            }
            touched
                .into_iter()
                .map(|(g, members)| {
                    let mut group = group_object(&state, g);
                    group["members@delta"] = json!(members);
                    group
                })
                .collect()
        }
    };
    delta_pages(
        items.len(),
        |k| items[k].clone(),
        &uri,
        &headers,
        &from,
        upto,
    )
}
