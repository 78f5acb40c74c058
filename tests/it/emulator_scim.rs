//! The emulator's SCIM 2.0 API through real HTTP.

use crate::common;

use serde_json::{Value, json};

fn patch(operations: Value) -> Option<Value> {
    Some(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
    )
}

#[tokio::test]
async fn lists_page_from_one_with_a_default_of_ten_and_at_most_a_thousand() {
    let slack = common::small(1.0).await;
    let (status, body) = slack.scim("GET", "Users", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(body["totalResults"], 10);
    assert_eq!(body["itemsPerPage"], 10);
    assert_eq!(body["startIndex"], 1);
    // Deactivated users are listed, with active: false.
    let dora = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "W00000008")
        .unwrap();
    assert_eq!(dora["active"], false);

    let (_, body) = slack.scim("GET", "Users?startIndex=3&count=2", None).await;
    assert_eq!(body["itemsPerPage"], 2);
    assert_eq!(body["startIndex"], 3);
    assert_eq!(body["Resources"][0]["id"], "W00000003");
    let (_, body) = slack.scim("GET", "Users?count=5000", None).await;
    assert_eq!(
        body["itemsPerPage"], 10,
        "count is clamped to 1000, and there are 10"
    );
    let (_, body) = slack.scim("GET", "Users?startIndex=11", None).await;
    assert_eq!(body["Resources"], json!([]));
    let (_, body) = slack.scim("GET", "Groups", None).await;
    assert_eq!(body["Resources"][0]["displayName"], "engineering");
    assert_eq!(
        body["Resources"][0]["members"][0],
        json!({"value": "W00000003", "display": "rita"})
    );
    slack.stop().await;
}

#[tokio::test]
async fn filters_by_user_name_and_email() {
    let slack = common::small(1.0).await;
    for filter in [
        "userName%20eq%20%22rita%22",
        "username%20Eq%20%22RITA%22",
        "emails.value%20eq%20%22rita@test.example%22",
        "email%20eq%20%22rita@test.example%22",
    ] {
        let (status, body) = slack
            .scim("GET", &format!("Users?filter={filter}"), None)
            .await;
        assert_eq!(status, 200, "{filter}");
        assert_eq!(body["totalResults"], 1, "{filter}");
        assert_eq!(body["Resources"][0]["id"], "W00000003");
    }
    let (status, body) = slack.scim("GET", "Users?filter=userName%20eq", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["detail"], "no_filters (is_aggregate_call=1)");
    let (_, body) = slack
        .scim(
            "GET",
            "Groups?filter=displayName%20eq%20%22engineering%22",
            None,
        )
        .await;
    assert_eq!(body["totalResults"], 1);
    slack.stop().await;
}

#[tokio::test]
async fn creates_users_with_slacks_rules() {
    let slack = common::small(1.0).await;
    let (status, body) = slack
        .scim(
            "POST",
            "Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "New.Person+x@test.example",
                "emails": [{"value": "new.person@test.example", "primary": true}],
                "name": {"givenName": "New", "familyName": "Person"},
                "title": "Analyst",
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["userName"], "new.person_x");
    assert_eq!(body["active"], true);
    assert!(body["id"].as_str().unwrap().starts_with('W'));
    let id = body["id"].as_str().unwrap().to_string();
    let (status, fetched) = slack.scim("GET", &format!("Users/{id}"), None).await;
    assert_eq!((status, fetched["title"].clone()), (200, json!("Analyst")));

    // An email held by a deactivated account is still taken.
    let (status, body) = slack
        .scim(
            "POST",
            "Users",
            Some(json!({"userName": "dora2", "emails": [{"value": "dora@test.example"}]})),
        )
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (409, json!("email_taken"))
    );
    // userName shares a namespace with channel names.
    let (status, body) = slack
        .scim(
            "POST",
            "Users",
            Some(json!({"userName": "secret", "emails": [{"value": "s@test.example"}]})),
        )
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (409, json!("username_taken"))
    );
    let (status, body) = slack
        .scim(
            "POST",
            "Users",
            Some(json!({"emails": [{"value": "x@test.example"}]})),
        )
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (400, json!("username_required"))
    );
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], 400);
    let (status, _) = slack.scim("GET", "Users/W99999999", None).await;
    assert_eq!(status, 404);
    slack.stop().await;
}

#[tokio::test]
async fn put_replaces_everything_and_patch_changes_what_it_names() {
    let slack = common::small(1.0).await;
    // PATCH with a path, with the enterprise extension in both spellings.
    let (status, body) = slack
        .scim("PATCH", "Users/W00000003", patch(json!([
            {"op": "replace", "path": "title", "value": "Staff Engineer"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Platform"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager.managerId", "value": "W00000002"},
        ])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Staff Engineer");
    let enterprise = &body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(enterprise["department"], "Platform");
    assert_eq!(enterprise["manager"]["managerId"], "W00000002");
    assert_eq!(body["name"]["givenName"], "Rita", "untouched");

    // PUT: what the body leaves out becomes blank, and without `active` the user is
    // deactivated (the stricter reading of an unconfirmed behaviour).
    let (status, body) = slack
        .scim(
            "PUT",
            "Users/W00000003",
            Some(json!({"userName": "rita", "emails": [{"value": "rita@test.example"}]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["title"], "");
    assert_eq!(body["active"], false);
    let (_, body) = slack
        .scim("PUT", "Users/W00000003", Some(json!({"userName": "rita", "active": true, "emails": [{"value": "rita@test.example"}], "title": "Back"})))
        .await;
    assert_eq!(
        (body["active"].clone(), body["title"].clone()),
        (json!(true), json!("Back"))
    );

    // A PatchOp needs its schema.
    let (status, body) = slack
        .scim("PATCH", "Users/W00000003", Some(json!({"Operations": []})))
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (400, json!("missing_schema_element"))
    );
    // The primary owner and bots cannot be deactivated through SCIM.
    let (status, body) = slack
        .scim(
            "PATCH",
            "Users/W00000001",
            patch(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (403, json!("cannot_disable_primary_owner"))
    );
    let (status, body) = slack.scim("DELETE", "Users/W00000007", None).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (403, json!("cannot_disable_bot_user_with_scim"))
    );
    slack.stop().await;
}

#[tokio::test]
async fn delete_deactivates_after_a_delay_and_repeats_harmlessly() {
    // At time scale 10 the two emulated seconds of delay are 200 ms.
    let slack = common::small(10.0).await;
    for _ in 0..3 {
        let (status, body) = slack.scim("DELETE", "Users/W00000004", None).await;
        assert_eq!((status, body), (204, Value::Null));
    }
    let (_, body) = slack.scim("GET", "Users/W00000004", None).await;
    assert_eq!(body["active"], true, "not yet");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, body) = slack.scim("GET", "Users/W00000004", None).await;
    assert_eq!(body["active"], false);
    // Never deleted: still readable, and the email stays taken.
    assert_eq!(slack.emulator.world().users.len(), 10);
    slack.stop().await;
}

#[tokio::test]
async fn group_membership_patches() {
    let slack = common::small(1.0).await;
    let (status, body) = slack
        .scim(
            "POST",
            "Groups",
            Some(json!({"displayName": "oncall", "members": [{"value": "W00000003"}]})),
        )
        .await;
    assert_eq!(status, 201);
    let id = body["id"].as_str().unwrap().to_string();
    let path = format!("Groups/{id}");
    let members = |body: &Value| -> Vec<String> {
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body) = slack.scim("PATCH", &path, patch(json!([{"op": "add", "path": "members", "value": [{"value": "W00000004"}, {"value": "W00000010"}]}]))).await;
    assert_eq!(members(&body), ["W00000003", "W00000004", "W00000010"]);
    let (_, body) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "remove", "path": "members[value eq \"W00000004\"]"}])),
        )
        .await;
    assert_eq!(members(&body), ["W00000003", "W00000010"]);
    let (_, body) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "remove", "path": "members[value eq W00000003]"}])),
        )
        .await;
    assert_eq!(members(&body), ["W00000010"]);
    // The value-list form of remove removes only those members.
    let (_, body) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "add", "path": "members", "value": [{"value": "W00000004"}]}])),
        )
        .await;
    let (_, body2) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "remove", "path": "members", "value": [{"value": "W00000004"}]}])),
        )
        .await;
    assert_eq!(members(&body), ["W00000010", "W00000004"]);
    assert_eq!(members(&body2), ["W00000010"]);
    let (_, body) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "replace", "path": "displayName", "value": "pager"}])),
        )
        .await;
    assert_eq!(body["displayName"], "pager");
    // Deactivated people and single-channel guests cannot be members.
    let (status, body) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "add", "path": "members", "value": [{"value": "W00000008"}]}])),
        )
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (400, json!("unable_to_add_deleted_or_guest_to_group"))
    );
    let (_, body) = slack
        .scim(
            "PUT",
            &path,
            Some(json!({"displayName": "pager", "members": [{"value": "W00000003"}]})),
        )
        .await;
    assert_eq!(members(&body), ["W00000003"]);
    let (status, _) = slack
        .scim(
            "PATCH",
            &path,
            patch(json!([{"op": "remove", "path": "members"}])),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = slack.scim("DELETE", &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = slack.scim("GET", &path, None).await;
    assert_eq!(status, 404);
    slack.stop().await;
}

#[tokio::test]
async fn discovery_endpoints_and_auth() {
    let slack = common::small(1.0).await;
    let (status, body) = slack.scim("GET", "ServiceProviderConfig", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["patch"]["supported"], true);
    assert_eq!(body["filter"]["maxResults"], 1000);
    let (_, body) = slack.scim("GET", "ResourceTypes", None).await;
    assert_eq!(body["Resources"][0]["endpoint"], "/Users");
    let (_, body) = slack.scim("GET", "Schemas", None).await;
    assert_eq!(
        body["Resources"][0]["id"],
        "urn:ietf:params:scim:schemas:core:2.0:User"
    );
    // Every schema and extension /ResourceTypes names is described in /Schemas, and each
    // is served on its own, by URN or by Slack's documented /Schemas/Users and /Groups.
    let described: Vec<String> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let (_, types) = slack.scim("GET", "ResourceTypes", None).await;
    for resource_type in types["Resources"].as_array().unwrap() {
        let mut named = vec![resource_type["schema"].as_str().unwrap().to_string()];
        for extension in resource_type["schemaExtensions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            named.push(extension["schema"].as_str().unwrap().to_string());
        }
        for urn in named {
            assert!(described.contains(&urn), "{urn} is not in /Schemas");
            let (status, schema) = slack.scim("GET", &format!("Schemas/{urn}"), None).await;
            assert_eq!((status, schema["id"].as_str()), (200, Some(urn.as_str())));
        }
    }
    for (path, urn) in [
        (
            "Schemas/Users",
            "urn:ietf:params:scim:schemas:core:2.0:User",
        ),
        (
            "Schemas/Groups",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
        ),
    ] {
        let (status, schema) = slack.scim("GET", path, None).await;
        assert_eq!((status, schema["id"].as_str()), (200, Some(urn)), "{path}");
    }
    assert_eq!(slack.scim("GET", "Schemas/nothing", None).await.0, 404);
    // Each resource type on its own; discovery is read-only.
    let (status, user) = slack.scim("GET", "ResourceTypes/User", None).await;
    assert_eq!((status, user["endpoint"].as_str()), (200, Some("/Users")));
    assert_eq!(
        slack.scim("GET", "ResourceTypes/Nothing", None).await.0,
        404
    );
    for (method, path) in [
        ("POST", "Schemas"),
        ("PUT", "Schemas/Users"),
        ("DELETE", "ResourceTypes/User"),
        ("PATCH", "ServiceProviderConfig"),
    ] {
        let (status, body) = slack.scim(method, path, Some(json!({}))).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}"
        );
    }

    let (status, body) = slack.scim_as("xoxp-nope", "GET", "Users", None).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (401, json!("invalid_authentication"))
    );
    let (status, _) = slack.scim_as("xoxb-bot", "GET", "Users", None).await;
    assert_eq!(status, 403);
    let (status, _) = slack.scim_as("xoxp-readonly", "GET", "Users", None).await;
    assert_eq!(status, 403, "SCIM needs the admin scope");
    let response = slack
        .http
        .get(format!("{}/scim/v2/Users", slack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    slack.stop().await;
}

/// Slack's SCIM API does not update `externalId` through PATCH (refused, by path or in a
/// partial resource) nor through PUT (kept as it was).
#[tokio::test]
async fn external_id_is_not_updated_by_patch_or_put() {
    let slack = common::small(1.0).await;
    let (_, before) = slack.scim("GET", "Users/W00000003", None).await;
    for operation in [
        json!({"op": "replace", "path": "externalId", "value": "x-1"}),
        json!({"op": "replace", "value": {"externalId": "x-1"}}),
    ] {
        let (status, body) = slack
            .scim("PATCH", "Users/W00000003", patch(json!([operation])))
            .await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (400, Some("invalid_attribute_format"))
        );
    }
    let mut replacement = before.clone();
    replacement["externalId"] = json!("x-2");
    replacement["title"] = json!("Changed by PUT");
    let (status, after) = slack
        .scim("PUT", "Users/W00000003", Some(replacement))
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["title"], "Changed by PUT");
    assert_eq!(after["externalId"], before["externalId"]);
    slack.stop().await;
}

#[tokio::test]
async fn one_write_at_a_time_per_user() {
    let slack = common::small(1.0).await;
    // Each write holds its user's lock for half a second.
    slack.settings(|s| s["scim_write_secs"] = json!(0.5)).await;
    let body = patch(json!([{"op": "replace", "path": "title", "value": "x"}]));
    let (first, second) = tokio::join!(
        slack.scim("PATCH", "Users/W00000003", body.clone()),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            slack.scim("PATCH", "Users/W00000003", body.clone()).await
        }
    );
    assert_eq!(first.0, 200);
    assert_eq!(second.0, 429);
    // A different user is not locked.
    let (third, fourth) = tokio::join!(
        slack.scim("PATCH", "Users/W00000004", body.clone()),
        slack.scim("PATCH", "Users/W00000010", body.clone()),
    );
    assert_eq!((third.0, fourth.0), (200, 200));
    slack.stop().await;
}

/// A third-party SCIM 2.0 checker (`scim2-cli`'s `test`, from PyPI) runs against the
/// emulator: every schema and resource type the emulator announces can be read, alone
/// too, and is well formed, and discovery refuses writes (405). Its other checks write
/// what Slack refuses as the emulator does: users without an email (`email_empty`),
/// groups with members that do not exist (`no_such_user`), `externalId` through PATCH,
/// and `POST /.search`, which Slack does not offer.
#[tokio::test(flavor = "multi_thread")]
async fn a_third_party_scim_checker_reads_the_emulators_discovery() {
    let slack = common::small(1000.0).await;
    let checker = common::python_tool("scim2-cli==0.6.0", "scim2");
    let output = tokio::process::Command::new(checker)
        .args(["--url", &format!("{}/scim/v2", slack.base), "test"])
        .env("SCIM_CLI_HEADERS", "Authorization: Bearer xoxp-admin")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let results: Vec<(&str, &str)> = report
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(verdict, _)| matches!(*verdict, "SUCCESS" | "ERROR" | "CRITICAL"))
        .collect();
    for check in [
        "query_all_schemas",
        "query_all_resource_types",
        "access_schema_by_id",
        "resource_types_schema_validation",
        "service_provider_config_endpoint",
        "query_resource_type_by_id",
        "schemas_endpoint_methods",
        "resource_types_endpoint_methods",
        "service_provider_config_endpoint_methods",
    ] {
        assert!(
            results.iter().any(|(v, c)| *v == "SUCCESS" && *c == check),
            "{check} did not succeed:\n{report}"
        );
        assert!(
            !results.iter().any(|(v, c)| *v != "SUCCESS" && *c == check),
            "{check} failed:\n{report}"
        );
    }
    assert!(
        !report.contains("No extension describes"),
        "discovery is incomplete:\n{report}"
    );
}
