//! An Okta org served from a [`Directory`], for the identity source's tests at the size
//! of an example: users (`/api/v1/users`, with `DEPROVISIONED` ones only when searched
//! for), one user by id or login, a user's groups, groups and their members. Okta groups
//! do not nest, so a nested group of the directory is served flattened. Every request's
//! path and query is recorded. One page per listing: `Link` paging is tested on its own.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use slack_gitops::model::directory::{Directory, PersonStatus};

#[derive(Default)]
pub struct OktaState {
    pub directory: Directory,
    /// Emails deactivated in Okta (`DEPROVISIONED`), beside the directory's suspended.
    pub deprovisioned: Vec<String>,
    pub requests: Vec<String>,
}

pub type Okta = Arc<Mutex<OktaState>>;

/// Serves `directory` as Okta; returns its base URL and its state.
pub async fn serve(directory: Directory) -> (String, Okta) {
    let state: Okta = Arc::new(Mutex::new(OktaState {
        directory,
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/api/v1/users", get(users))
        .route("/api/v1/users/{user}", get(user))
        .route("/api/v1/users/{user}/groups", get(user_groups))
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{group}/users", get(group_users))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

async fn record(
    State(state): State<Okta>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let asked = request
        .uri()
        .path_and_query()
        .map_or_else(String::new, |p| p.to_string());
    state.lock().unwrap().requests.push(asked);
    next.run(request).await
}

fn user_object(state: &OktaState, index: usize) -> Value {
    let person = &state.directory.people[index];
    let status = if state.deprovisioned.contains(&person.email) {
        "DEPROVISIONED"
    } else if person.status == PersonStatus::Suspended {
        "SUSPENDED"
    } else {
        "ACTIVE"
    };
    let manager = person.manager.as_deref().and_then(|m| {
        state
            .directory
            .people
            .iter()
            .position(|p| p.email == m)
            .map(|i| format!("00u{i}"))
    });
    json!({
        "id": format!("00u{index}"),
        "status": status,
        "profile": {
            "login": person.email, "email": person.email,
            "firstName": person.given_name, "lastName": person.family_name,
            "title": person.title, "department": person.department, "managerId": manager,
        },
    })
}

/// The index of the user an id (`00u7`) or a login names.
fn find(state: &OktaState, key: &str) -> Option<usize> {
    key.strip_prefix("00u")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&i| i < state.directory.people.len())
        .or_else(|| {
            state
                .directory
                .people
                .iter()
                .position(|p| p.email.eq_ignore_ascii_case(key))
        })
}

/// A group's members, nested groups flattened.
fn members(directory: &Directory, name: &str, seen: &mut Vec<String>) -> Vec<String> {
    if seen.iter().any(|s| s == name) {
        return Vec::new();
    }
    seen.push(name.to_string());
    let Some(group) = directory.groups.iter().find(|g| g.name == name) else {
        return Vec::new();
    };
    let mut out = group.members.clone();
    for child in &group.groups {
        out.extend(members(directory, child, seen));
    }
    out.sort();
    out.dedup();
    out
}

fn group_object(index: usize, name: &str, description: &str) -> Value {
    json!({"id": format!("00g{index}"), "profile": {"name": name, "description": description}})
}

async fn users(
    State(state): State<Okta>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let state = state.lock().unwrap();
    let deprovisioned = query
        .get("search")
        .is_some_and(|s| s == "status eq \"DEPROVISIONED\"");
    let listed: Vec<Value> = (0..state.directory.people.len())
        .map(|i| user_object(&state, i))
        .filter(|u| (u["status"] == "DEPROVISIONED") == deprovisioned)
        .collect();
    axum::Json(listed).into_response()
}

async fn user(State(state): State<Okta>, Path(key): Path<String>) -> Response {
    let state = state.lock().unwrap();
    match find(&state, &key) {
        Some(i) => axum::Json(user_object(&state, i)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn user_groups(State(state): State<Okta>, Path(key): Path<String>) -> Response {
    let state = state.lock().unwrap();
    let Some(i) = find(&state, &key) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let email = &state.directory.people[i].email;
    let listed: Vec<Value> = state
        .directory
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| members(&state.directory, &g.name, &mut Vec::new()).contains(email))
        .map(|(n, g)| group_object(n, &g.name, &g.description))
        .collect();
    axum::Json(listed).into_response()
}

async fn groups(State(state): State<Okta>) -> Response {
    let state = state.lock().unwrap();
    let listed: Vec<Value> = state
        .directory
        .groups
        .iter()
        .enumerate()
        .map(|(n, g)| group_object(n, &g.name, &g.description))
        .collect();
    axum::Json(listed).into_response()
}

async fn group_users(State(state): State<Okta>, Path(key): Path<String>) -> Response {
    let state = state.lock().unwrap();
    let Some(group) = key
        .strip_prefix("00g")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| state.directory.groups.get(n))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let listed: Vec<Value> = members(&state.directory, &group.name, &mut Vec::new())
        .iter()
        .filter_map(|email| find(&state, email))
        .map(|i| user_object(&state, i))
        .collect();
    axum::Json(listed).into_response()
}
