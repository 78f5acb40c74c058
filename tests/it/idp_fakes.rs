//! The Okta and Graph fakes answer as the vendors document: every response body of every
//! endpoint the adapters call (listings, one resource, the System Log, delta rounds,
//! errors) is validated against the vendors' published OpenAPI descriptions, vendored
//! under `tests/fixtures/openapi/` (see its NOTICE.md), formats included.

use serde_json::{Value, json};
use slack_emulator::idp::{Idp, Standing, graph, okta};

use crate::common;

/// A validator for one entry of a vendored schema document (`#/$defs/{entry}`).
fn validator(file: &str, entry: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::fixture(&format!("tests/fixtures/openapi/{file}")))
        .unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    if file == "graph.schema.json" {
        // Graph's metadata requires `@odata.type` on every object, where the service
        // sends it only on items of polymorphic collections (a group's members), as the
        // fake does (microsoftgraph/msgraph-metadata#1166). The adapters never depend on
        // it elsewhere.
        unrequire_odata_type(&mut schema);
    }
    assert!(
        schema["$defs"].get(entry).is_some(),
        "{file} has no {entry}"
    );
    schema["$ref"] = json!(format!("#/$defs/{entry}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn unrequire_odata_type(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required.retain(|r| r != "@odata.type");
            }
            map.values_mut().for_each(unrequire_odata_type);
        }
        Value::Array(items) => items.iter_mut().for_each(unrequire_odata_type),
        _ => {}
    }
}

fn check(file: &str, entry: &str, what: &str, body: &Value) {
    let validator = validator(file, entry);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not a valid {entry}: {errors:#?}\n{body:#}"
    );
}

async fn get(url: &str, authorization: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A small directory with a nested group, and changes for the change feeds to report.
async fn changed(
    serve: fn(Idp) -> std::pin::Pin<Box<dyn Future<Output = String> + Send>>,
) -> (String, Idp) {
    let mut directory = common::okta::acme_directory().await;
    directory.groups.truncate(12);
    let idp = Idp::new(&directory.normalise(), common::okta::TIME_SCALE);
    let base = serve(idp.clone()).await;
    let people: Vec<String> = idp.state().people.iter().map(|p| p.email.clone()).collect();
    let group = idp.state().groups[0].name.clone();
    idp.add_member(&group, &people[0]);
    idp.remove_member(&group, &people[0]);
    idp.set_standing(&people[1], Standing::Suspended);
    idp.set_standing(&people[2], Standing::Deactivated);
    idp.set_title(&people[3], "Principal");
    (base, idp)
}

/// Validation is not vacuous: a user with a status Okta does not have, and a Graph
/// collection whose `value` is not a list, fail.
#[test]
fn the_vendored_schemas_reject_what_the_vendors_would_not_send() {
    let user = json!({"id": "00u1", "status": "GONE", "profile": {"login": "a@b.example", "email": "a@b.example"}});
    assert!(!validator("okta.schema.json", "User").is_valid(&user));
    let log = json!([{"uuid": "x", "severity": "LOUD"}]);
    assert!(!validator("okta.schema.json", "LogEventList").is_valid(&log));
    let page = json!({"value": {"id": "1"}});
    assert!(!validator("graph.schema.json", "UserCollection").is_valid(&page));
    let user = json!({"@odata.type": "#microsoft.graph.user", "id": "1", "accountEnabled": "yes"});
    assert!(!validator("graph.schema.json", "User").is_valid(&user));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_okta_fake_answers_as_okta_s_openapi_description_says() {
    let (base, idp) = changed(|idp| Box::pin(okta::serve(idp))).await;
    let auth = "SSWS token";
    let file = "okta.schema.json";
    let (user_id, group_id) = (okta::user_id(3), okta::group_id(0));
    let since = "2000-01-01T00:00:00.000Z";
    let lists = [
        ("/api/v1/users?limit=200", "UserList"),
        (
            "/api/v1/users?search=status%20eq%20%22DEPROVISIONED%22",
            "UserList",
        ),
        (
            &format!("/api/v1/users/{user_id}") as &str,
            "UserGetSingleton",
        ),
        (&format!("/api/v1/users/{user_id}/groups"), "GroupList"),
        ("/api/v1/groups?limit=10000", "GroupList"),
        (
            &format!("/api/v1/groups/{group_id}/users?limit=1000"),
            "UserList",
        ),
        ("/api/v1/logs?limit=1000", "LogEventList"),
    ];
    for (path, entry) in lists {
        let (status, body) = get(&format!("{base}{path}"), auth).await;
        assert_eq!(status, 200, "{path}: {body}");
        check(file, entry, path, &body);
    }
    // The System Log reports every change (the default window is the last seven days).
    let (_, events) = get(&format!("{base}/api/v1/logs"), auth).await;
    assert_eq!(events.as_array().unwrap().len(), 5, "{events:#}");
    // Errors: an unknown user, a `since` past the retention, a bad token, a fault.
    let (status, body) = get(&format!("{base}/api/v1/users/nobody@nowhere.example"), auth).await;
    assert_eq!(status, 404);
    check(file, "Error", "a 404", &body);
    let (status, body) = get(&format!("{base}/api/v1/logs?since={since}"), auth).await;
    assert_eq!(status, 400);
    check(file, "Error", "a refused since", &body);
    let (status, body) = get(&format!("{base}/api/v1/users"), "nothing").await;
    assert_eq!(status, 401);
    check(file, "Error", "a 401", &body);
    idp.state().faults.push(429);
    let (status, body) = get(&format!("{base}/api/v1/users"), auth).await;
    assert_eq!(status, 429);
    check(file, "Error", "a 429", &body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_fake_answers_as_graph_s_openapi_description_says() {
    let (base, idp) = changed(|idp| Box::pin(graph::serve(idp))).await;
    let auth = "Bearer token";
    let file = "graph.schema.json";
    let (user_id, group_id) = (graph::user_id(3), graph::group_id(0));
    let lists = [
        (
            "/v1.0/users?$top=5&$expand=manager($select=id)",
            "UserCollection",
        ),
        (
            &format!("/v1.0/users/{user_id}?$expand=manager($select=id)") as &str,
            "User",
        ),
        (
            &format!("/v1.0/users/{user_id}/transitiveMemberOf/microsoft.graph.group"),
            "GroupCollection",
        ),
        ("/v1.0/groups?$top=999", "GroupCollection"),
        (
            &format!("/v1.0/groups/{group_id}/members?$top=999"),
            "DirectoryObjectCollection",
        ),
        ("/v1.0/users/delta?$top=5", "UserDelta"),
        ("/v1.0/users/delta?$deltatoken=0", "UserDelta"),
        ("/v1.0/users/delta?$deltatoken=latest", "UserDelta"),
        ("/v1.0/groups/delta", "GroupDelta"),
        ("/v1.0/groups/delta?$deltatoken=0", "GroupDelta"),
    ];
    for (path, entry) in lists {
        let (status, body) = get(&format!("{base}{path}"), auth).await;
        assert_eq!(status, 200, "{path}: {body}");
        check(file, entry, path, &body);
    }
    // A delta round from the start reports the three users changed and the group whose
    // members changed.
    let (_, users) = get(&format!("{base}/v1.0/users/delta?$deltatoken=0"), auth).await;
    assert_eq!(users["value"].as_array().unwrap().len(), 3, "{users:#}");
    let (_, groups) = get(&format!("{base}/v1.0/groups/delta?$deltatoken=0"), auth).await;
    assert_eq!(
        groups["value"][0]["members@delta"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    idp.expire_cursors();
    let (status, body) = get(&format!("{base}/v1.0/users/delta?$deltatoken=0"), auth).await;
    assert_eq!(status, 410);
    check(file, "ODataError", "a 410", &body);
    let (status, body) = get(&format!("{base}/v1.0/users/nobody"), auth).await;
    assert_eq!(status, 404);
    check(file, "ODataError", "a 404", &body);
    idp.state().faults.push(429);
    let (status, body) = get(&format!("{base}/v1.0/users"), auth).await;
    assert_eq!(status, 429);
    check(file, "ODataError", "a 429", &body);
}
