//! Identity sources: the file export (YAML, JSON, CSV), a real third-party SCIM 2.0
//! server (`scim2-server` from PyPI), and local fakes of Okta and Microsoft Graph that
//! follow their documented wire formats, paging and throttling.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use slack_gitops::identity::entra::EntraSource;
use slack_gitops::identity::file::FileSource;
use slack_gitops::identity::okta::OktaSource;
use slack_gitops::identity::scim::ScimSource;
use slack_gitops::identity::{IdentityError, IdentitySource};
use slack_gitops::model::directory::{Directory, PersonStatus};

fn acme_export() -> PathBuf {
    common::fixture("examples/acme/identity/directory.yaml")
}

#[tokio::test]
async fn reads_the_acme_export() {
    let directory = FileSource::new(acme_export()).read().await.unwrap();
    assert_eq!(directory.people.len(), 291);
    assert_eq!(directory.groups.len(), 28);
    let suspended = directory
        .people
        .iter()
        .filter(|p| p.status == PersonStatus::Suspended)
        .count();
    assert_eq!(suspended, 6);
    let resolution = directory.resolve();
    assert!(resolution.diagnostics.is_empty());
    // everyone = employees + contractors, through three levels of nesting.
    assert_eq!(resolution.member_emails("everyone").len(), 290);
    assert!(
        resolution
            .member_emails("engineering")
            .is_superset(&resolution.member_emails("sre"))
    );
}

#[tokio::test]
async fn json_and_csv_exports_read_the_same() {
    let yaml = FileSource::new(acme_export()).read().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let json_path = temp.path().join("directory.json");
    std::fs::write(
        &json_path,
        serde_json::to_string(&json!({"people": yaml.people, "groups": yaml.groups})).unwrap(),
    )
    .unwrap();
    let from_json = FileSource::new(json_path.clone()).read().await.unwrap();
    assert_eq!(
        (from_json.people.clone(), from_json.groups.clone()),
        (yaml.people.clone(), yaml.groups.clone())
    );

    let csv = temp.path().join("hr-export");
    std::fs::create_dir(&csv).unwrap();
    let mut people = String::from("email,given_name,family_name,title,department,manager,status\n");
    for p in &yaml.people {
        let status = if p.status == PersonStatus::Active {
            "active"
        } else {
            "terminated"
        };
        people.push_str(&format!(
            "{},{},{},\"{}\",{},{},{status}\n",
            p.email,
            p.given_name,
            p.family_name,
            p.title,
            p.department,
            p.manager.clone().unwrap_or_default()
        ));
    }
    std::fs::write(csv.join("people.csv"), people).unwrap();
    let mut memberships = String::from("group,member\n");
    for g in &yaml.groups {
        for m in &g.members {
            memberships.push_str(&format!("{},{m}\n", g.name));
        }
        for nested in &g.groups {
            memberships.push_str(&format!("{},group:{nested}\n", g.name));
        }
    }
    std::fs::write(csv.join("memberships.csv"), memberships).unwrap();
    let from_csv = FileSource::new(csv).read().await.unwrap();
    assert_eq!(from_csv.people, yaml.people);
    let names = |d: &Directory| {
        d.groups
            .iter()
            .map(|g| (g.name.clone(), g.members.clone(), g.groups.clone()))
            .collect::<Vec<_>>()
    };
    // A group with neither members nor nested groups has no row in a membership export.
    let expected: Vec<_> = names(&yaml)
        .into_iter()
        .filter(|(_, m, g)| !m.is_empty() || !g.is_empty())
        .collect();
    assert_eq!(names(&from_csv), expected);
}

#[tokio::test]
async fn bad_exports_fail_clearly() {
    let temp = tempfile::tempdir().unwrap();
    let message = |error: IdentityError| error.to_string();
    let missing = FileSource::new(temp.path().join("nope.yaml"))
        .read()
        .await
        .unwrap_err();
    assert!(message(missing).contains("cannot read the export"));

    let broken = temp.path().join("broken.yaml");
    std::fs::write(&broken, "people:\n  - email: a@x\n    status: [active\n").unwrap();
    let error = message(FileSource::new(broken.clone()).read().await.unwrap_err());
    assert!(error.contains("broken.yaml:3:"), "{error}");

    let empty = temp.path().join("empty.yaml");
    std::fs::write(&empty, "people: []\ngroups: []\n").unwrap();
    let error = message(FileSource::new(empty).read().await.unwrap_err());
    assert!(error.contains("holds nobody"), "{error}");

    let csv = temp.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    std::fs::write(
        csv.join("people.csv"),
        "email,status\na@x.example,on-leave\n",
    )
    .unwrap();
    std::fs::write(csv.join("memberships.csv"), "group,member\n").unwrap();
    let error = message(FileSource::new(csv).read().await.unwrap_err());
    assert!(error.contains("line 2: status `on-leave`"), "{error}");
}

// ---- SCIM: a real third-party server -------------------------------------------------------

/// The `scim2-server` command, installed into `target/ci-venv` on first use.
fn scim2_server() -> PathBuf {
    common::python_tool("scim2-server==0.8.3", "scim2-server")
}

struct Scim2Server {
    child: Child,
    base: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_scim2_server() -> Scim2Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(scim2_server())
        .args([
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--bearer-token",
            "scim-secret",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned from here on, so the process is killed and reaped however this ends.
    let server = Scim2Server {
        child,
        base: format!("http://127.0.0.1:{port}/v2"),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{}/ServiceProviderConfig", server.base))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("scim2-server did not start");
}

async fn scim_post(http: &reqwest::Client, base: &str, resource: &str, body: Value) -> String {
    let response = http
        .post(format!("{base}/{resource}"))
        .bearer_auth("scim-secret")
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn reads_people_and_nested_groups_from_a_running_scim2_server() {
    let server = start_scim2_server().await;
    let http = reqwest::Client::new();
    // 150 people: more than one page of 100.
    let mut ids = Vec::new();
    for n in 0..150 {
        let id = scim_post(&http, &server.base, "Users", json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": format!("person{n}"),
            "emails": [{"value": format!("Person{n}@Example.COM"), "primary": true}],
            "name": {"givenName": "Person", "familyName": format!("{n}")},
            "title": "Engineer",
            "active": n % 50 != 7,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
        }))
        .await;
        ids.push(id);
    }
    let member = |id: &String| json!({"value": id, "type": "User"});
    let sre = scim_post(
        &http,
        &server.base,
        "Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "sre",
            "members": ids[..3].iter().map(member).collect::<Vec<_>>(),
        }),
    )
    .await;
    scim_post(&http, &server.base, "Groups", json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "engineering",
        "members": ids[3..10].iter().map(member).chain([json!({"value": sre, "type": "Group"})]).collect::<Vec<_>>(),
    }))
    .await;

    let directory = ScimSource::new(server.base.clone(), "scim-secret".into())
        .read()
        .await
        .unwrap();
    assert_eq!(directory.people.len(), 150);
    assert_eq!(
        directory
            .people
            .iter()
            .filter(|p| p.status == PersonStatus::Suspended)
            .count(),
        3
    );
    assert!(
        directory
            .people
            .iter()
            .all(|p| p.email.starts_with("person") && p.email.ends_with("@example.com"))
    );
    assert_eq!(directory.people[0].department, "R&D");
    let resolution = directory.resolve();
    assert_eq!(
        resolution.member_emails("engineering").len(),
        10,
        "7 direct and 3 through sre"
    );
    assert_eq!(
        directory
            .groups
            .iter()
            .find(|g| g.name == "engineering")
            .unwrap()
            .groups,
        ["sre"]
    );

    let error = ScimSource::new(server.base.clone(), "wrong".into())
        .read()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("HTTP 401; check the token"), "{error}");
}

// ---- Okta and Microsoft Graph fakes -------------------------------------------------------

/// Shared by the fakes: how many more answers are throttled, and whether one path fails.
#[derive(Default)]
struct FakeControl {
    throttle: usize,
    broken: Option<String>,
    requests: Vec<String>,
}

type Control = Arc<Mutex<FakeControl>>;

/// Counts the request, and answers 429 or 500 when the control says so.
fn intercept(
    control: &Control,
    path: &str,
    throttled: impl FnOnce() -> Response,
) -> Option<Response> {
    let mut control = control.lock().unwrap();
    control.requests.push(path.to_string());
    if control
        .broken
        .as_deref()
        .is_some_and(|b| path.starts_with(b))
    {
        return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if control.throttle > 0 {
        control.throttle -= 1;
        return Some(throttled());
    }
    None
}

/// Five users and, deprovisioned (deactivated in Okta), a sixth. Each names their
/// manager twice: by Okta id (`managerId`) and by employee number (`managerNumber`).
fn okta_users() -> Vec<Value> {
    (0..6)
        .map(|n| {
            let status = match n {
                4 => "SUSPENDED",
                5 => "DEPROVISIONED",
                _ => "ACTIVE",
            };
            json!({
                "id": format!("00u{n}"),
                "status": status,
                "profile": {"login": format!("o{n}@okta.example"), "email": format!("o{n}@okta.example"), "firstName": "O", "lastName": format!("{n}"), "title": "Staff", "department": "Ops", "employeeNumber": format!("E{n}"), "managerId": if n > 0 { json!("00u0") } else { json!(null) }, "managerNumber": if n > 1 { json!("E1") } else { json!(null) }},
            })
        })
        .collect()
}

/// `/api/v1/users` as Okta answers it: without a search, every user but the deprovisioned
/// ones; with `search=status eq "DEPROVISIONED"`, those alone.
fn okta_user_listing(query: &BTreeMap<String, String>) -> Vec<Value> {
    let deprovisioned = query
        .get("search")
        .is_some_and(|s| s == "status eq \"DEPROVISIONED\"");
    okta_users()
        .into_iter()
        .filter(|u| (u["status"] == "DEPROVISIONED") == deprovisioned)
        .collect()
}

/// Okta lists pages of two, linked with `Link: <...>; rel="next"`, and reports its limit.
async fn okta_list(
    State((control, base)): State<(Control, String)>,
    uri: axum::http::Uri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    let asked = uri.path_and_query().map_or(path.clone(), |p| p.to_string());
    if let Some(response) = intercept(&control, &asked, || {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1;
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("x-rate-limit-remaining", "0".to_string()),
                ("x-rate-limit-reset", reset.to_string()),
            ],
            "{}",
        )
            .into_response()
    }) {
        return response;
    }
    let all: Vec<Value> = match path.as_str() {
        "/api/v1/users" => okta_user_listing(&query),
        "/api/v1/groups" => vec![
            json!({"id": "00g1", "profile": {"name": "ops", "description": "Operations"}}),
            json!({"id": "00g2", "profile": {"name": "everyone", "description": ""}}),
        ],
        "/api/v1/groups/00g1/users" => [&okta_users()[..3], &okta_users()[5..]].concat(),
        "/api/v1/groups/00g2/users" => okta_users(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let after: usize = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(after).take(2).cloned().collect();
    let mut headers = HeaderMap::new();
    headers.insert("x-rate-limit-remaining", "100".parse().unwrap());
    if after + 2 < all.len() {
        let next = format!("<{base}{path}?limit=2&after={}>; rel=\"next\"", after + 2);
        headers.insert(
            "link",
            format!("<{base}{path}?limit=2>; rel=\"self\", {next}")
                .parse()
                .unwrap(),
        );
    }
    (headers, axum::Json(page)).into_response()
}

async fn serve_fake(router: impl FnOnce(String) -> axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn okta_fake(control: Control) -> String {
    serve_fake(|base| {
        axum::Router::new()
            .route("/api/v1/users", get(okta_list))
            .route("/api/v1/groups", get(okta_list))
            .route("/api/v1/groups/{id}/users", get(okta_list))
            .with_state((control, base))
    })
    .await
}

#[tokio::test]
async fn reads_okta_with_link_paging_and_its_rate_limit_headers() {
    let control: Control = Arc::default();
    let base = okta_fake(control.clone()).await;
    control.lock().unwrap().throttle = 1;
    let directory = OktaSource::new(base.clone(), "okta-token".into())
        .read()
        .await
        .unwrap();
    // The deprovisioned user is read, as a leaver, and stays in their group.
    assert_eq!(directory.people.len(), 6);
    assert_eq!(directory.people[4].status, PersonStatus::Suspended);
    assert_eq!(directory.people[5].email, "o5@okta.example");
    assert_eq!(directory.people[5].status, PersonStatus::Suspended);
    assert_eq!(
        directory.people[1].manager.as_deref(),
        Some("o0@okta.example")
    );
    let ops = directory.groups.iter().find(|g| g.name == "ops").unwrap();
    assert_eq!(
        ops.members,
        [
            "o0@okta.example",
            "o1@okta.example",
            "o2@okta.example",
            "o5@okta.example"
        ]
    );
    let requests = control.lock().unwrap().requests.clone();
    // Users: 3 pages and 1 of deprovisioned ones; groups: 1; members: 2 + 3 pages; and
    // the one throttled request. Each listing asks for Okta's largest page.
    assert_eq!(requests.len(), 3 + 1 + 1 + 2 + 3 + 1, "{requests:?}");
    for first in [
        "/api/v1/users?limit=200",
        "/api/v1/users?limit=200&search=status%20eq%20%22DEPROVISIONED%22",
        "/api/v1/groups?limit=10000",
        "/api/v1/groups/00g1/users?limit=1000",
    ] {
        assert!(requests.iter().any(|r| r == first), "{first}: {requests:?}");
    }

    // Managers named by employee number, in another attribute.
    let by_number = OktaSource::new(base.clone(), "okta-token".into())
        .with_manager(slack_gitops::config::types::ManagerSettings {
            attribute: "managerNumber".into(),
            matches: slack_gitops::config::types::ManagerMatch::EmployeeNumber,
        })
        .read()
        .await
        .unwrap();
    let managers: Vec<Option<&str>> = by_number
        .people
        .iter()
        .map(|p| p.manager.as_deref())
        .collect();
    assert_eq!(
        managers,
        [
            None,
            None,
            Some("o1@okta.example"),
            Some("o1@okta.example"),
            Some("o1@okta.example"),
            Some("o1@okta.example")
        ]
    );

    // Only the groups the config names have their members read; the rest are listed.
    control.lock().unwrap().requests.clear();
    let only_ops = OktaSource::new(base.clone(), "okta-token".into())
        .reading_members_of(["ops".to_string()].into())
        .read()
        .await
        .unwrap();
    let everyone = only_ops
        .groups
        .iter()
        .find(|g| g.name == "everyone")
        .unwrap();
    assert!(everyone.members.is_empty());
    assert_eq!(
        only_ops
            .groups
            .iter()
            .find(|g| g.name == "ops")
            .unwrap()
            .members
            .len(),
        4
    );
    let requests = control.lock().unwrap().requests.clone();
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("/api/v1/groups/00g2/users")),
        "{requests:?}"
    );

    control.lock().unwrap().broken = Some("/api/v1/groups/00g2".into());
    let error = OktaSource::new(base, "okta-token".into())
        .read()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("GET /api/v1/groups/00g2/users")
            && error.contains("HTTP 500 after 5 attempts"),
        "{error}"
    );
}

fn graph_users() -> Vec<Value> {
    (0..4)
        .map(|n| json!({"id": format!("u{n}"), "mail": format!("G{n}@Graph.Example"), "userPrincipalName": format!("g{n}@tenant.example"), "givenName": "G", "surname": format!("{n}"), "jobTitle": "Dev", "department": "Eng", "accountEnabled": n != 3, "manager": if n > 0 { json!({"id": "u0"}) } else { json!(null) }}))
        .collect()
}

async fn graph_list(
    State((control, base)): State<(Control, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some("Bearer graph-access-token")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(response) = intercept(&control, &path, || {
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{}").into_response()
    }) {
        return response;
    }
    let all: Vec<Value> = match path.as_str() {
        // `$filter=mail eq '...' or userPrincipalName eq '...'`: the one user it names.
        "/v1.0/users" if query.contains_key("$filter") => {
            let filter = &query["$filter"];
            let wanted = filter.split('\'').nth(1).unwrap_or_default().to_lowercase();
            graph_users()
                .into_iter()
                .filter(|u| {
                    u["mail"].as_str().unwrap().to_lowercase() == wanted
                        || u["userPrincipalName"] == wanted.as_str()
                })
                .collect()
        }
        "/v1.0/users" => graph_users(),
        // Nested groups resolved: u1 is in developers, so in all-staff too.
        "/v1.0/users/u1/transitiveMemberOf/microsoft.graph.group" => vec![
            json!({"id": "g-dev", "displayName": "developers"}),
            json!({"id": "g-all", "displayName": "all-staff"}),
        ],
        "/v1.0/users/u0/transitiveMemberOf/microsoft.graph.group"
        | "/v1.0/users/u3/transitiveMemberOf/microsoft.graph.group" => {
            vec![json!({"id": "g-all", "displayName": "all-staff"})]
        }
        "/v1.0/users/u2/transitiveMemberOf/microsoft.graph.group" => Vec::new(),
        "/v1.0/groups" => vec![
            json!({"id": "g-all", "displayName": "all-staff"}),
            json!({"id": "g-dev", "displayName": "developers"}),
        ],
        "/v1.0/groups/g-dev/members" => vec![
            json!({"@odata.type": "#microsoft.graph.user", "id": "u1"}),
            json!({"@odata.type": "#microsoft.graph.device", "id": "d1"}),
        ],
        "/v1.0/groups/g-all/members" => vec![
            json!({"@odata.type": "#microsoft.graph.user", "id": "u0"}),
            json!({"@odata.type": "#microsoft.graph.group", "id": "g-dev"}),
            json!({"@odata.type": "#microsoft.graph.user", "id": "u3"}),
        ],
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(skip).take(2).cloned().collect();
    let mut body = json!({"value": page});
    if skip + 2 < all.len() {
        body["@odata.nextLink"] = json!(format!("{base}{path}?$skiptoken={}", skip + 2));
    }
    axum::Json(body).into_response()
}

async fn graph_token(
    axum::extract::Path(tenant): axum::extract::Path<String>,
    body: String,
) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded::from_str(&body).unwrap();
    let good = tenant == "tenant-1"
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_secret").map(String::as_str) == Some("entra-secret");
    if good {
        axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "graph-access-token"})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response()
    }
}

#[tokio::test]
async fn reads_entra_through_graph_with_next_links_and_throttling() {
    let control: Control = Arc::default();
    let base = serve_fake(|base| {
        axum::Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(graph_token))
            .route("/v1.0/users", get(graph_list))
            .route("/v1.0/groups", get(graph_list))
            .route("/v1.0/groups/{id}/members", get(graph_list))
            .route(
                "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group",
                get(graph_list),
            )
            .with_state((control.clone(), base))
    })
    .await;
    control.lock().unwrap().throttle = 2;
    let source = EntraSource::new(
        "tenant-1".into(),
        "app-1".into(),
        "entra-secret".into(),
        Some(base.clone()),
    );
    let directory = source.read().await.unwrap();
    assert_eq!(directory.people.len(), 4);
    assert_eq!(directory.people[0].email, "g0@graph.example");
    assert_eq!(directory.people[3].status, PersonStatus::Suspended);
    assert_eq!(
        directory.people[2].manager.as_deref(),
        Some("g0@graph.example")
    );
    let all = directory
        .groups
        .iter()
        .find(|g| g.name == "all-staff")
        .unwrap();
    assert_eq!(all.members, ["g0@graph.example", "g3@graph.example"]);
    assert_eq!(all.groups, ["developers"]);
    assert_eq!(directory.resolve().member_emails("all-staff").len(), 3);

    // Only the groups the config names, and those nested in them, have their members
    // read: naming all-staff reads developers too; naming developers reads it alone.
    let nested = EntraSource::new(
        "tenant-1".into(),
        "app-1".into(),
        "entra-secret".into(),
        Some(base.clone()),
    )
    .reading_members_of(["all-staff".to_string()].into())
    .read()
    .await
    .unwrap();
    assert_eq!(nested.resolve().member_emails("all-staff").len(), 3);
    control.lock().unwrap().requests.clear();
    let developers = EntraSource::new(
        "tenant-1".into(),
        "app-1".into(),
        "entra-secret".into(),
        Some(base.clone()),
    )
    .reading_members_of(["developers".to_string()].into())
    .read()
    .await
    .unwrap();
    let all = developers
        .groups
        .iter()
        .find(|g| g.name == "all-staff")
        .unwrap();
    assert!(all.members.is_empty() && all.groups.is_empty());
    assert_eq!(developers.resolve().member_emails("developers").len(), 1);
    let requests = control.lock().unwrap().requests.clone();
    assert!(
        !requests.iter().any(|r| r.contains("g-all/members")),
        "{requests:?}"
    );

    // One person, for an identity event: found by mail, with every group Graph resolves
    // for them (nested ones included), in two Graph calls after the token.
    control.lock().unwrap().requests.clear();
    let one = source.read_person("G1@graph.example").await.unwrap();
    assert_eq!(one.people.len(), 1);
    assert_eq!(one.people[0].email, "g1@graph.example");
    let names: Vec<&str> = one.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["all-staff", "developers"]);
    assert!(one.groups.iter().all(|g| g.members == ["g1@graph.example"]));
    assert_eq!(control.lock().unwrap().requests.len(), 2);
    let unknown = source.read_person("nobody@graph.example").await.unwrap();
    assert!(unknown.people.is_empty() && unknown.groups.is_empty());

    let wrong = EntraSource::new("tenant-1".into(), "app-1".into(), "nope".into(), Some(base));
    let error = wrong.read().await.unwrap_err().to_string();
    assert!(
        error.contains("POST /oauth2/v2.0/token") && error.contains("HTTP 401"),
        "{error}"
    );
}
