//! The emulator's Web API through real HTTP: envelope, tokens and scopes, pagination,
//! usergroups, conversations, admin methods, and deactivation side effects.

use crate::common;

use std::collections::BTreeSet;

use serde_json::{Value, json};

#[tokio::test]
async fn envelope_tokens_and_scopes() {
    let slack = common::small(1.0).await;
    // Application errors are HTTP 200 with ok:false.
    assert_eq!(
        slack.error("xoxp-admin", "nope.method", &[]).await,
        "unknown_method"
    );
    assert_eq!(
        slack.error("xoxp-missing", "auth.test", &[]).await,
        "invalid_auth"
    );
    let (status, body) = {
        let response = slack
            .http
            .get(format!("{}/api/auth.test", slack.base))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (status, body),
        (200, json!({"ok": false, "error": "not_authed"}))
    );

    // missing_scope names what was needed and what the token has.
    let (_, body) = slack
        .web(
            "xoxp-readonly",
            "usergroups.create",
            &[("team_id", "T0000MAIN"), ("name", "X")],
        )
        .await;
    assert_eq!(body["error"], "missing_scope");
    assert_eq!(body["needed"], "usergroups:write");
    assert_eq!(body["provided"], "users:read,usergroups:read,channels:read");

    // Bot tokens cannot call admin methods; a deactivated person's token is dead.
    assert_eq!(
        slack.error("xoxb-bot", "admin.users.list", &[]).await,
        "not_allowed_token_type"
    );
    assert_eq!(
        slack.error("xoxp-dora", "users.list", &[]).await,
        "account_inactive"
    );

    // The token may come as a form parameter...
    let response = slack
        .http
        .post(format!("{}/api/auth.test", slack.base))
        .form(&[("token", "xoxp-admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["user_id"],
        "W00000002"
    );
    // ...but not in a JSON body.
    let response = slack
        .http
        .post(format!("{}/api/auth.test", slack.base))
        .json(&json!({"token": "xoxp-admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "not_authed"
    );

    // JSON bodies work for JSON-capable writers, with the token in the header.
    let response = slack
        .http
        .post(format!("{}/api/usergroups.create", slack.base))
        .bearer_auth("xoxp-admin")
        .json(&json!({"team_id": "T0000MAIN", "name": "Platform", "handle": "platform", "channels": ["C00000002"]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["usergroup"]["prefs"]["channels"], json!(["C00000002"]));
    // A JSON body on a reader that takes none is ignored, as Slack ignores it.
    let response = slack
        .http
        .post(format!("{}/api/users.info", slack.base))
        .bearer_auth("xoxp-admin")
        .json(&json!({"user": "W00000003"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_arguments"
    );
    slack.stop().await;
}

#[tokio::test]
async fn org_tokens_need_team_id_and_workspace_tokens_do_not() {
    let slack = common::small(1.0).await;
    // The names Slack's method reference gives the missing team, method by method.
    assert_eq!(
        slack.error("xoxp-admin", "usergroups.list", &[]).await,
        "missing_argument"
    );
    for (method, error) in [
        ("usergroups.update", "missing_argument"),
        (
            "usergroups.disable",
            "target_team_must_be_specified_in_org_context",
        ),
        ("usergroups.enable", "missing_argument"),
        ("usergroups.users.list", "missing_argument"),
        ("usergroups.users.update", "missing_argument"),
    ] {
        assert_eq!(
            slack
                .error(
                    "xoxp-admin",
                    method,
                    &[("usergroup", "S00000001"), ("users", "W00000004")]
                )
                .await,
            error,
            "{method} without team_id"
        );
    }
    assert_eq!(
        slack.error("xoxp-admin", "team.integrationLogs", &[]).await,
        "missing_argument"
    );
    assert_eq!(
        slack.error("xoxp-admin", "conversations.list", &[]).await,
        "missing_argument"
    );
    let body = slack
        .ok("xoxp-admin", "usergroups.list", &[("team_id", "T0000MAIN")])
        .await;
    assert_eq!(body["usergroups"].as_array().unwrap().len(), 1);
    // A workspace token ignores team_id.
    let body = slack
        .ok(
            "xoxp-workspace",
            "usergroups.list",
            &[("team_id", "T0000SIDE")],
        )
        .await;
    assert_eq!(body["usergroups"][0]["team_id"], "T0000MAIN");
    assert_eq!(
        slack
            .error("xoxp-admin", "users.list", &[("team_id", "T9999")])
            .await,
        "team_not_found"
    );
    slack.stop().await;
}

/// Follows `next_cursor` until it is empty; returns the ids and the page sizes.
async fn walk(
    slack: &common::Running,
    method: &str,
    key: &str,
    args: &[(&str, &str)],
) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut call: Vec<(&str, &str)> = args.to_vec();
        if !cursor.is_empty() {
            call.push(("cursor", &cursor));
        }
        let body = slack.ok("xoxp-admin", method, &call).await;
        let items = body[key].as_array().unwrap();
        sizes.push(items.len());
        ids.extend(items.iter().map(|i| {
            i.as_str()
                .map_or_else(|| i["id"].as_str().unwrap().to_string(), str::to_string)
        }));
        cursor = body["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            return (ids, sizes);
        }
    }
}

#[tokio::test]
async fn cursor_pages_can_be_short_or_empty_before_the_end() {
    let slack = common::small(1.0).await;
    let (ids, sizes) = walk(
        &slack,
        "users.list",
        "members",
        &[("team_id", "T0000MAIN"), ("limit", "2")],
    )
    .await;
    let expected: BTreeSet<String> = common::small_seed()
        .users
        .iter()
        .filter(|u| u.workspaces.iter().any(|w| w == "T0000MAIN"))
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(ids.len(), expected.len(), "no user twice");
    // An empty page came back with a cursor, before the last page.
    let empty = sizes
        .iter()
        .position(|s| *s == 0)
        .expect("an empty page mid-stream");
    assert!(empty < sizes.len() - 1, "{sizes:?}");

    // Filtering after the cut: excluding archived channels leaves short pages.
    let (channels, sizes) = walk(
        &slack,
        "conversations.list",
        "channels",
        &[
            ("team_id", "T0000MAIN"),
            ("limit", "1"),
            ("exclude_archived", "true"),
        ],
    )
    .await;
    assert_eq!(channels, ["C00000001", "C00000002"]);
    assert!(sizes.len() >= 4, "{sizes:?}");

    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "users.list",
                &[("team_id", "T0000MAIN"), ("cursor", "bogus")]
            )
            .await,
        "invalid_cursor"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.list",
                &[("team_id", "T0000MAIN"), ("limit", "1000")]
            )
            .await,
        "invalid_limit"
    );
    slack.stop().await;
}

#[tokio::test]
async fn usergroup_membership_is_a_full_replace_that_cannot_empty_a_group() {
    let slack = common::small(1.0).await;
    let update = |users: &'static str| {
        [
            ("usergroup", "S00000001"),
            ("users", users),
            ("team_id", "T0000MAIN"),
        ]
    };
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.users.update",
            &update("W00000004,W00000010"),
        )
        .await;
    assert_eq!(
        body["usergroup"]["users"],
        json!(["W00000004", "W00000010"])
    );
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.users.list",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    assert_eq!(body["users"], json!(["W00000004", "W00000010"]));

    for (users, error) in [
        ("", "no_users_provided"),
        ("W00000005", "invalid_users"), // a guest
        ("W00000007", "invalid_users"), // a bot
        ("W00000008", "invalid_users"), // deactivated
        ("W99999999", "invalid_users"),
        ("W00000009", "failed_for_some_users"), // not in this workspace
    ] {
        assert_eq!(
            slack
                .error("xoxp-admin", "usergroups.users.update", &update(users))
                .await,
            error,
            "{users}"
        );
    }
    // Nothing above changed the group.
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.users.list",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    assert_eq!(body["users"], json!(["W00000004", "W00000010"]));

    // Disable and enable toggle date_delete; a disabled group still holds its name.
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.disable",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    assert_ne!(body["usergroup"]["date_delete"], 0);
    let listed = slack
        .ok("xoxp-admin", "usergroups.list", &[("team_id", "T0000MAIN")])
        .await;
    assert_eq!(listed["usergroups"].as_array().unwrap().len(), 0);
    let listed = slack
        .ok(
            "xoxp-admin",
            "usergroups.list",
            &[("team_id", "T0000MAIN"), ("include_disabled", "true")],
        )
        .await;
    assert_eq!(listed["usergroups"].as_array().unwrap().len(), 2);
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "usergroups.create",
                &[("team_id", "T0000MAIN"), ("name", "old group")]
            )
            .await,
        "name_already_exists"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "usergroups.create",
                &[("team_id", "T0000MAIN"), ("name", "New"), ("handle", "eng")]
            )
            .await,
        "handle_already_exists"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "usergroups.create",
                &[
                    ("team_id", "T0000MAIN"),
                    ("name", "New"),
                    ("handle", "Bad Handle")
                ]
            )
            .await,
        "bad_handle"
    );
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.enable",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    assert_eq!(body["usergroup"]["date_delete"], 0);
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "usergroups.enable",
                &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")]
            )
            .await,
        "already_enabled"
    );
    // update replaces name, description and default channels.
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.update",
            &[
                ("usergroup", "S00000001"),
                ("team_id", "T0000MAIN"),
                ("description", "Builders"),
                ("channels", "C00000001,C00000003"),
            ],
        )
        .await;
    assert_eq!(body["usergroup"]["description"], "Builders");
    assert_eq!(
        body["usergroup"]["prefs"],
        json!({"channels": ["C00000001"], "groups": ["C00000003"]})
    );

    // When only admins may edit usergroups, the bot may not.
    slack
        .settings(|s| s["bots_may_edit_usergroups"] = json!(false))
        .await;
    assert_eq!(
        slack
            .error("xoxb-bot", "usergroups.users.update", &update("W00000004"))
            .await,
        "permission_denied"
    );
    slack
        .ok(
            "xoxp-admin",
            "usergroups.users.update",
            &update("W00000004"),
        )
        .await;
    slack.stop().await;
}

#[tokio::test]
async fn private_channels_are_visible_only_to_members() {
    let slack = common::small(1.0).await;
    let types = [
        ("team_id", "T0000MAIN"),
        ("types", "public_channel,private_channel"),
        ("limit", "100"),
    ];
    let (ids, _) = walk(&slack, "conversations.list", "channels", &types).await;
    // The admin is in #secret but not in #hidden.
    assert!(ids.contains(&"C00000003".to_string()));
    assert!(!ids.contains(&"C00000005".to_string()));
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.info",
                &[("channel", "C00000005")]
            )
            .await,
        "channel_not_found"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.members",
                &[("channel", "C00000005")]
            )
            .await,
        "channel_not_found"
    );
    let body = slack
        .ok(
            "xoxp-admin",
            "conversations.members",
            &[("channel", "C00000003")],
        )
        .await;
    assert_eq!(body["members"], json!(["W00000002", "W00000007"]));
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.invite",
                &[("channel", "C00000005"), ("users", "W00000004")]
            )
            .await,
        "not_in_channel"
    );
    // Listing private channels needs groups:read.
    let (_, body) = slack
        .web(
            "xoxp-workspace",
            "conversations.list",
            &[("types", "private_channel")],
        )
        .await;
    assert_eq!(body["error"], "missing_scope");
    assert_eq!(body["needed"], "groups:read");
    slack.stop().await;
}

#[tokio::test]
async fn invites_report_per_user_errors_and_kicks_take_one_user() {
    let slack = common::small(1.0).await;
    let (_, body) = slack
        .web(
            "xoxp-admin",
            "conversations.invite",
            &[
                ("channel", "C00000002"),
                ("users", "W00000004,W00000003,W99999999,W00000008"),
            ],
        )
        .await;
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"], "already_in_channel");
    assert_eq!(
        body["errors"],
        json!([
            {"user": "W00000003", "ok": false, "error": "already_in_channel"},
            {"user": "W99999999", "ok": false, "error": "user_not_found"},
            {"user": "W00000008", "ok": false, "error": "cant_invite"},
        ])
    );
    // Without force nobody was added; with force the valid ones are.
    let members = slack
        .ok(
            "xoxp-admin",
            "conversations.members",
            &[("channel", "C00000002")],
        )
        .await;
    assert_eq!(members["members"], json!(["W00000003", "W00000007"]));
    let body = slack
        .ok(
            "xoxp-admin",
            "conversations.invite",
            &[
                ("channel", "C00000002"),
                ("users", "W00000004,W99999999"),
                ("force", "true"),
            ],
        )
        .await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    let members = slack
        .ok(
            "xoxp-admin",
            "conversations.members",
            &[("channel", "C00000002")],
        )
        .await;
    assert_eq!(
        members["members"],
        json!(["W00000003", "W00000007", "W00000004"])
    );

    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("W{i:08}")).collect();
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.invite",
                &[
                    ("channel", "C00000002"),
                    ("users", &hundred_and_one.join(","))
                ]
            )
            .await,
        "too_many_users"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.invite",
                &[("channel", "C00000004"), ("users", "W00000004")]
            )
            .await,
        "not_in_channel".replace("not_in_channel", "is_archived")
    );

    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.kick",
                &[("channel", "C00000002"), ("user", "W00000003,W00000004")]
            )
            .await,
        "invalid_arguments"
    );
    let body = slack
        .ok(
            "xoxp-admin",
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000003")],
        )
        .await;
    assert_eq!(body["errors"], json!({}));
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.kick",
                &[("channel", "C00000002"), ("user", "W00000003")]
            )
            .await,
        "not_in_channel"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.kick",
                &[("channel", "C00000001"), ("user", "W00000003")]
            )
            .await,
        "cant_kick_from_general"
    );
    slack.stop().await;
}

#[tokio::test]
async fn channels_are_created_archived_and_unarchived_with_slacks_errors() {
    let slack = common::small(1.0).await;
    let create = |name: &'static str| [("team_id", "T0000MAIN"), ("name", name)];
    let body = slack
        .ok("xoxp-admin", "conversations.create", &create("new-channel"))
        .await;
    let id = body["channel"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["channel"]["is_private"], false);
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.create", &create("new-channel"))
            .await,
        "name_taken"
    );
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.create", &create("rita"))
            .await,
        "name_taken"
    );
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.create", &create("Bad!Name"))
            .await,
        "invalid_name_specials"
    );
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.create", &create("has.dot"))
            .await,
        "invalid_name_punctuation"
    );
    slack
        .ok("xoxp-admin", "conversations.archive", &[("channel", &id)])
        .await;
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.archive", &[("channel", &id)])
            .await,
        "already_archived"
    );
    slack
        .ok("xoxp-admin", "conversations.unarchive", &[("channel", &id)])
        .await;
    assert_eq!(
        slack
            .error("xoxp-admin", "conversations.unarchive", &[("channel", &id)])
            .await,
        "not_archived"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.archive",
                &[("channel", "C00000001")]
            )
            .await,
        "cant_archive_general"
    );
    slack.stop().await;
}

#[tokio::test]
async fn admin_methods_on_grid() {
    let slack = common::small(1.0).await;
    // admin.usergroups.addChannels is Tier 1 (one a minute); this test is about behaviour.
    slack.settings(|s| s["rate_limits"] = json!(false)).await;
    let (inactive, _) = walk(
        &slack,
        "admin.users.list",
        "users",
        &[("is_active", "false"), ("limit", "3")],
    )
    .await;
    assert_eq!(inactive, ["W00000008"]);
    let (active, _) = walk(
        &slack,
        "admin.users.list",
        "users",
        &[("team_id", "T0000SIDE")],
    )
    .await;
    assert_eq!(active, ["W00000001", "W00000002", "W00000007", "W00000009"]);

    slack
        .ok(
            "xoxp-admin",
            "admin.users.assign",
            &[("team_id", "T0000SIDE"), ("user_id", "W00000003")],
        )
        .await;
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.assign",
                &[("team_id", "T0000SIDE"), ("user_id", "W00000003")]
            )
            .await,
        "user_already_team_member"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.assign",
                &[("team_id", "T0000SIDE"), ("user_id", "W00000007")]
            )
            .await,
        "user_is_bot"
    );
    slack
        .ok(
            "xoxp-admin",
            "admin.users.remove",
            &[("team_id", "T0000MAIN"), ("user_id", "W00000004")],
        )
        .await;
    let world = slack.emulator.world();
    assert_eq!(
        world.user("W00000004").unwrap().workspaces,
        Vec::<String>::new()
    );
    assert!(!world.usergroups[0].users.contains(&"W00000004".to_string()));
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.remove",
                &[("team_id", "T0000MAIN"), ("user_id", "W00000001")]
            )
            .await,
        "cannot_modify_primary_owner"
    );

    slack
        .ok(
            "xoxp-admin",
            "admin.users.session.reset",
            &[("user_id", "W00000003")],
        )
        .await;
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.session.reset",
                &[("user_id", "W00000007")]
            )
            .await,
        "cannot_reset_bot"
    );
    slack
        .ok(
            "xoxp-admin",
            "admin.users.session.resetBulk",
            &[("user_ids", "W00000010,W00000009")],
        )
        .await;
    let resets: Vec<String> = slack
        .emulator
        .world()
        .session_resets
        .iter()
        .map(|r| r.user.clone())
        .collect();
    assert_eq!(resets, ["W00000003", "W00000010", "W00000009"]);

    // IdP groups: link to a workspace, then to channels; members are added to them.
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.usergroups.addChannels",
                &[("usergroup_id", "S10000001"), ("channel_ids", "C00000006")]
            )
            .await,
        "usergroup_not_linked_to_team"
    );
    slack
        .ok(
            "xoxp-admin",
            "admin.usergroups.addTeams",
            &[
                ("usergroup_id", "S10000001"),
                ("team_ids", "T0000SIDE"),
                ("auto_provision", "true"),
            ],
        )
        .await;
    let body = slack
        .ok(
            "xoxp-admin",
            "admin.usergroups.addChannels",
            &[
                ("usergroup_id", "S10000001"),
                ("channel_ids", "C00000006,C99999999"),
            ],
        )
        .await;
    assert_eq!(body["invalid_channels"], json!(["C99999999"]));
    let body = slack
        .ok(
            "xoxp-admin",
            "admin.usergroups.listChannels",
            &[
                ("usergroup_id", "S10000001"),
                ("include_num_members", "true"),
            ],
        )
        .await;
    assert_eq!(body["channels"][0]["id"], "C00000006");
    assert_eq!(body["channels"][0]["num_members"], 4);
    slack
        .ok(
            "xoxp-admin",
            "admin.usergroups.removeChannels",
            &[("usergroup_id", "S10000001"), ("channel_ids", "C00000006")],
        )
        .await;
    let body = slack
        .ok(
            "xoxp-admin",
            "admin.usergroups.listChannels",
            &[("usergroup_id", "S10000001")],
        )
        .await;
    assert_eq!(body["channels"], json!([]));

    let (_, body) = slack
        .web(
            "xoxp-admin",
            "admin.conversations.invite",
            &[
                ("channel_id", "C00000005"),
                ("user_ids", "W00000010,W99999999"),
            ],
        )
        .await;
    assert_eq!(body["error"], "failed_for_some_users");
    assert!(
        slack
            .emulator
            .world()
            .channel("C00000005")
            .unwrap()
            .members
            .contains(&"W00000010".to_string())
    );

    let body = slack
        .ok(
            "xoxp-admin",
            "team.integrationLogs",
            &[("team_id", "T0000MAIN"), ("user", "W00000003")],
        )
        .await;
    assert_eq!(body["logs"][0]["app_id"], "A0000ONE");
    assert_eq!(body["logs"][0]["change_type"], "added");
    assert_eq!(
        body["paging"],
        json!({"count": 100, "total": 1, "page": 1, "pages": 1})
    );

    // Only admins may call admin methods.
    assert_eq!(
        slack.error("xoxp-rita", "admin.users.list", &[]).await,
        "missing_scope"
    );
    slack.stop().await;
}

#[tokio::test]
async fn admin_roles_are_set_as_on_grid() {
    let slack = common::small(1.0).await;
    let info = |user: &'static str| {
        let slack = &slack;
        async move {
            slack
                .ok(
                    "xoxp-admin",
                    "users.info",
                    &[("user", user), ("team_id", "T0000MAIN")],
                )
                .await["user"]
                .clone()
        }
    };
    let target = [("team_id", "T0000MAIN"), ("user_id", "W00000003")];
    slack
        .ok("xoxp-admin", "admin.users.setAdmin", &target)
        .await;
    let user = info("W00000003").await;
    assert_eq!(
        (user["is_admin"].clone(), user["is_owner"].clone()),
        (json!(true), json!(false))
    );
    slack
        .ok("xoxp-admin", "admin.users.setOwner", &target)
        .await;
    assert_eq!(info("W00000003").await["is_owner"], true);
    slack
        .ok("xoxp-admin", "admin.users.setRegular", &target)
        .await;
    let user = info("W00000003").await;
    assert_eq!(
        (user["is_admin"].clone(), user["is_owner"].clone()),
        (json!(false), json!(false))
    );

    let error = |user: &'static str, team: &'static str| {
        let slack = &slack;
        async move {
            slack
                .error(
                    "xoxp-admin",
                    "admin.users.setAdmin",
                    &[("team_id", team), ("user_id", user)],
                )
                .await
        }
    };
    assert_eq!(
        error("W00000001", "T0000MAIN").await,
        "cannot_modify_primary_owner"
    );
    assert_eq!(
        error("W00000007", "T0000MAIN").await,
        "invalid_role_for_user"
    );
    assert_eq!(
        error("W00000005", "T0000MAIN").await,
        "invalid_role_for_user"
    );
    assert_eq!(
        error("W00000008", "T0000MAIN").await,
        "invalid_role_for_user"
    );
    assert_eq!(error("W00000009", "T0000MAIN").await, "user_not_found");
    assert_eq!(error("W00000003", "T9999NONE").await, "team_not_found");
    assert_eq!(
        slack
            .error("xoxp-rita", "admin.users.setAdmin", &target)
            .await,
        "missing_scope"
    );
    slack.stop().await;
}

#[tokio::test]
async fn chat_post_message_keeps_the_message_and_refuses_as_slack_does() {
    let mut seed = common::small_seed();
    let bot = seed
        .tokens
        .iter_mut()
        .find(|t| t.token == "xoxb-bot")
        .unwrap();
    bot.scopes.push("chat:write".into());
    let slack = common::start(seed, Default::default()).await;
    let blocks = r#"[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]"#;
    let body = slack
        .ok(
            "xoxb-bot",
            "chat.postMessage",
            &[
                ("channel", "#eng"),
                ("team_id", "T0000MAIN"),
                ("text", "hi"),
                ("blocks", blocks),
            ],
        )
        .await;
    assert_eq!(body["channel"], "C00000002");
    assert!(body["ts"].as_str().unwrap().contains('.'));
    let world = slack.emulator.world();
    assert_eq!(world.messages.len(), 1);
    assert_eq!(world.messages[0].blocks[0]["type"], "section");
    // By id, into a private channel the bot is in.
    slack
        .ok(
            "xoxb-bot",
            "chat.postMessage",
            &[("channel", "C00000003"), ("text", "x")],
        )
        .await;
    let error = |args: Vec<(&'static str, &'static str)>| {
        let slack = &slack;
        async move { slack.error("xoxb-bot", "chat.postMessage", &args).await }
    };
    assert_eq!(error(vec![("channel", "C00000002")]).await, "no_text");
    assert_eq!(
        error(vec![("channel", "nowhere"), ("text", "x")]).await,
        "channel_not_found"
    );
    assert_eq!(
        error(vec![("channel", "C00000005"), ("text", "x")]).await,
        "channel_not_found"
    );
    assert_eq!(
        error(vec![("channel", "C00000004"), ("text", "x")]).await,
        "is_archived"
    );
    assert_eq!(
        error(vec![("channel", "C00000002"), ("blocks", "not json")]).await,
        "invalid_blocks"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-readonly",
                "chat.postMessage",
                &[("channel", "C00000002"), ("text", "x")]
            )
            .await,
        "missing_scope"
    );
    slack.stop().await;
}

/// On a workspace outside an Enterprise organisation (Business+), every `admin.*` method
/// answers an error its entry in Slack's method reference lists (`feature_not_enabled`
/// or `not_an_enterprise`; `admin.usergroups.addTeams` lists neither and answers as its
/// siblings do), and no other method is refused for the plan.
#[tokio::test]
async fn business_plus_has_no_admin_api() {
    let mut seed = common::small_seed();
    seed.enterprise = None;
    let slack = common::start(seed, Default::default()).await;
    let dir = common::fixture("tests/fixtures/slack-api-ref/docs.slack.dev/methods");
    let mut refused = Vec::new();
    for spec in slack_emulator::web::METHODS {
        let (_, body) = slack.web("xoxp-admin", spec.name, &[]).await;
        let error = body["error"].as_str().unwrap_or_default().to_string();
        let Some(expected) = slack_emulator::web::not_enterprise_error(spec.name) else {
            assert!(
                !["feature_not_enabled", "not_an_enterprise"].contains(&error.as_str()),
                "{}: {error}",
                spec.name
            );
            continue;
        };
        assert_eq!(error, expected, "{}", spec.name);
        let text = std::fs::read_to_string(dir.join(format!("{}.json", spec.name))).unwrap();
        let reference: Value = serde_json::from_str(&text).unwrap();
        if spec.name != "admin.usergroups.addTeams" {
            assert!(
                reference["errors"].get(&error).is_some(),
                "{}: {error} is not in its reference entry",
                spec.name
            );
        }
        refused.push(spec.name);
    }
    assert_eq!(refused.len(), 14, "{refused:?}");
    slack.stop().await;
}

#[tokio::test]
async fn deactivation_revokes_tokens_and_leaves_usergroups() {
    let slack = common::small(1.0).await;
    let (status, _) = slack
        .scim(
            "PATCH",
            "Users/W00000003",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]
            })),
        )
        .await;
    assert_eq!(status, 200);
    let body = slack
        .ok("xoxp-admin", "users.info", &[("user", "W00000003")])
        .await;
    assert_eq!(body["user"]["deleted"], true);
    assert_eq!(
        slack
            .error("xoxp-rita", "users.info", &[("user", "W00000003")])
            .await,
        "token_revoked"
    );
    let body = slack
        .ok(
            "xoxp-admin",
            "usergroups.users.list",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    assert_eq!(body["users"], json!(["W00000004"]));
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "users.lookupByEmail",
                &[("email", "rita@test.example")]
            )
            .await,
        "users_not_found"
    );
    // The other reading, as a setting: deactivated people are found.
    slack
        .settings(|s| s["lookup_by_email_skips_deactivated"] = json!(false))
        .await;
    let found = slack
        .ok(
            "xoxp-admin",
            "users.lookupByEmail",
            &[("email", "rita@test.example")],
        )
        .await;
    assert_eq!(found["user"]["deleted"], true);
    slack
        .settings(|s| s["lookup_by_email_skips_deactivated"] = json!(true))
        .await;
    // Reactivation brings the account back, not its old token or its roles.
    slack
        .scim(
            "PATCH",
            "Users/W00000002",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": true}}]
            })),
        )
        .await;
    slack
        .scim(
            "PATCH",
            "Users/W00000003",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": true}}]
            })),
        )
        .await;
    let body = slack
        .ok("xoxp-admin", "users.info", &[("user", "W00000003")])
        .await;
    assert_eq!(body["user"]["deleted"], false);
    assert_eq!(
        slack.error("xoxp-rita", "auth.test", &[]).await,
        "token_revoked"
    );
    slack.stop().await;
}

#[tokio::test]
async fn email_is_shown_only_with_users_read_email() {
    let slack = common::small(1.0).await;
    let body = slack
        .ok("xoxp-admin", "users.info", &[("user", "W00000003")])
        .await;
    assert_eq!(body["user"]["profile"]["email"], "rita@test.example");
    assert_eq!(
        body["user"]["enterprise_user"]["enterprise_id"],
        "E0000TEST"
    );
    let body = slack
        .ok("xoxp-readonly", "users.info", &[("user", "W00000003")])
        .await;
    assert!(body["user"]["profile"].get("email").is_none());
    slack.stop().await;
}

/// Where the emulator once deviated from Slack's published method reference, it answers
/// as the reference says: the documented error names, cursors on the session listing,
/// punctuation-only channel names refused, a JSON body where JSON is allowed.
#[tokio::test]
async fn errors_and_arguments_follow_the_method_reference() {
    let slack = common::small(1.0).await;
    slack.settings(|s| s["rate_limits"] = json!(false)).await;
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "conversations.create",
                &[("name", "-__-"), ("team_id", "T0000MAIN")]
            )
            .await,
        "invalid_name_punctuation"
    );
    for method in [
        "admin.usergroups.listChannels",
        "admin.usergroups.addTeams",
        "admin.usergroups.addChannels",
    ] {
        assert_eq!(
            slack
                .error(
                    "xoxp-admin",
                    method,
                    &[
                        ("usergroup_id", "S99999999"),
                        ("team_ids", "T0000SIDE"),
                        ("channel_ids", "C00000006")
                    ]
                )
                .await,
            "usergroup_not_found",
            "{method}"
        );
    }
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.usergroups.addTeams",
                &[("usergroup_id", "S10000001")]
            )
            .await,
        "no_team_ids_given"
    );

    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.usergroups.listChannels",
                &[("usergroup_id", "S10000001"), ("team_id", "T9999NONE")]
            )
            .await,
        "team_not_found"
    );

    // admin.users.session.list pages by `limit` and `cursor`; a forged cursor is refused.
    let first = slack
        .ok("xoxp-admin", "admin.users.session.list", &[("limit", "2")])
        .await;
    assert_eq!(first["active_sessions"].as_array().unwrap().len(), 2);
    let cursor = first["response_metadata"]["next_cursor"].as_str().unwrap();
    assert!(!cursor.is_empty());
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let mut args = vec![("limit", "2")];
        if !cursor.is_empty() {
            args.push(("cursor", cursor.as_str()));
        }
        let page = slack
            .ok("xoxp-admin", "admin.users.session.list", &args)
            .await;
        seen += page["active_sessions"].as_array().unwrap().len();
        cursor = page["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    let all = slack
        .ok(
            "xoxp-admin",
            "admin.users.session.list",
            &[("limit", "1000")],
        )
        .await;
    assert_eq!(seen, all["active_sessions"].as_array().unwrap().len());
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.session.list",
                &[("cursor", "bogus")]
            )
            .await,
        "invalid_cursor"
    );

    // admin.conversations.invite takes a JSON body.
    let response = slack
        .http
        .post(format!("{}/api/admin.conversations.invite", slack.base))
        .bearer_auth("xoxp-admin")
        .json(&json!({"channel_id": "C00000005", "user_ids": "W00000010"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    slack.stop().await;
}

/// `chat.postMessage` is paced as Slack documents it: about one message a second per
/// channel with short bursts, each channel on its own, not a Tier 2 bucket per method.
#[tokio::test]
async fn messages_are_paced_per_channel() {
    let mut seed = common::small_seed();
    let bot = seed
        .tokens
        .iter_mut()
        .find(|t| t.token == "xoxb-bot")
        .unwrap();
    bot.scopes.push("chat:write".into());
    let slack = common::start(seed, Default::default()).await;
    let post = |channel: &'static str| {
        let slack = &slack;
        async move {
            slack
                .web(
                    "xoxb-bot",
                    "chat.postMessage",
                    &[("channel", channel), ("text", "x")],
                )
                .await
                .0
        }
    };
    for _ in 0..5 {
        assert_eq!(post("C00000002").await, 200);
    }
    assert_eq!(post("C00000002").await, 429, "a sixth message at once");
    assert_eq!(
        post("C00000003").await,
        200,
        "another channel has its own pace"
    );
}

/// The emulator's method table is Slack's published method reference (vendored verbatim
/// from `slack-ruby/slack-api-ref` under `tests/fixtures/slack-api-ref`): which methods
/// take a JSON body, which only user tokens may call, their scopes, and their rate tiers
/// (shared with the client through `model::limits`).
#[test]
fn the_method_table_is_the_method_reference() {
    use slack_gitops::model::limits::{Tier, web_tier};
    let dir = common::fixture("tests/fixtures/slack-api-ref/docs.slack.dev/methods");
    for spec in slack_emulator::web::METHODS {
        let path = dir.join(format!("{}.json", spec.name));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is not in the vendored reference", spec.name));
        let reference: Value = serde_json::from_str(&text).unwrap();
        let name = spec.name;
        let json_input = reference["json_input_supported"].as_bool().unwrap_or(false);
        assert_eq!(spec.json, json_input, "{name}: JSON body");
        // A method that needs no scope (auth.test) takes any token.
        let any_token = reference["no_scope_required"].as_bool().unwrap_or(false);
        let bot_scopes = reference["scope"]["bot"].as_array();
        if spec.app_only {
            // Slack lists no bot or user scope for a method of app-level tokens; its
            // errors name the token it takes.
            assert!(bot_scopes.is_none(), "{name}: app-level tokens only");
            let why = reference["errors"]["invalid_auth"]["desc"].as_str();
            assert!(
                why.unwrap_or_default().contains("app-level token"),
                "{name}"
            );
        }
        assert_eq!(
            spec.user_only,
            bot_scopes.is_none() && !any_token && !spec.app_only,
            "{name}: user tokens only"
        );
        let documented: Vec<&str> = ["bot", "user"]
            .iter()
            .flat_map(|kind| reference["scope"][kind].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        // An app-level token's one scope (`connections:write`) is on the token, not in
        // the method's entry.
        for scope in spec.scopes.iter().filter(|_| !spec.app_only) {
            assert!(
                documented.contains(scope),
                "{name}: scope {scope} is not documented"
            );
        }
        let tier = web_tier(name);
        let expected = match reference["rate_limits"].as_str() {
            Some("t1") => vec![Tier::Tier1],
            Some("t2") => vec![Tier::Tier2],
            Some("t3") => vec![Tier::Tier3],
            Some("t4") => vec![Tier::Tier4],
            // Slack's "special" tier: each such method documents its own limit.
            Some("t5") => vec![Tier::Special, Tier::PerChannel],
            other => panic!("{name}: rate limit {other:?}"),
        };
        assert!(
            expected.contains(&tier),
            "{name}: {tier:?}, the reference says {expected:?}"
        );
    }
}

/// The method table is the dispatch: every method it lists is served (none answers
/// `unknown_method`, even without arguments), and a name it does not list is not.
#[test]
fn every_method_in_the_table_is_served_and_no_other() {
    let seed = common::small_seed();
    let token = seed
        .tokens
        .iter()
        .find(|t| t.token == "xoxp-admin")
        .unwrap()
        .clone();
    let caller = slack_emulator::web::Caller { token, now: 0 };
    let args = slack_emulator::web::Args(Default::default());
    for spec in slack_emulator::web::METHODS {
        let mut world = seed.clone();
        let reply = slack_emulator::web::call(&mut world, &caller, spec.name, &args);
        if let Err(error) = reply {
            assert_ne!(error.body()["error"], "unknown_method", "{}", spec.name);
        }
    }
    let mut world = seed.clone();
    let reply = slack_emulator::web::call(&mut world, &caller, "users.setPhoto", &args);
    assert_eq!(reply.unwrap_err().body()["error"], "unknown_method");
}

/// `admin.users.session.resetBulk` is a job, as on Slack: `ok` means enqueued, and the
/// sessions stay listed until it has run a few emulated seconds later.
#[tokio::test]
async fn a_bulk_session_reset_signs_people_out_only_once_its_job_has_run() {
    let slack = common::small(10.0).await;
    let listed = |body: Value| body["active_sessions"].as_array().unwrap().len();
    let before = listed(
        slack
            .ok(
                "xoxp-admin",
                "admin.users.session.list",
                &[("user_id", "W00000010"), ("team_id", "T0000MAIN")],
            )
            .await,
    );
    assert_eq!(before, 1);
    slack
        .ok(
            "xoxp-admin",
            "admin.users.session.resetBulk",
            &[("user_ids", "W00000010,W00000009")],
        )
        .await;
    let args = [("user_id", "W00000010"), ("team_id", "T0000MAIN")];
    assert_eq!(
        listed(
            slack
                .ok("xoxp-admin", "admin.users.session.list", &args)
                .await
        ),
        1,
        "signed out before the job ran"
    );
    // Three emulated seconds at time scale 10, and some slack.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        slack
            .error("xoxp-admin", "admin.users.session.list", &args)
            .await,
        "no_active_sessions"
    );
    // Over a thousand people, or a bot among them, and nothing is enqueued.
    let many: Vec<String> = (0..1001).map(|n| format!("W{n:08}")).collect();
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.session.resetBulk",
                &[("user_ids", many.join(",").as_str())]
            )
            .await,
        "invalid_arguments"
    );
    assert_eq!(
        slack
            .error(
                "xoxp-admin",
                "admin.users.session.resetBulk",
                &[("user_ids", "W00000003,W00000007")]
            )
            .await,
        "failed_for_some_users"
    );
}
