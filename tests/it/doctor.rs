//! `doctor` against the emulator: a ready org passes; a wrong token, a missing scope, a
//! bot missing from a private managed channel and a Grid config against a Business+ org
//! each block, with the fix.

use crate::common;
use crate::common::org::Org;
use serde_json::Value;

async fn doctor(org: &Org) -> (i32, Value) {
    let (code, out, err) = org
        .run(&["doctor", org.repo_arg(), "--format", "json"])
        .await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    (code, report)
}

/// The check named `name` that blocks, with its detail and fix.
fn blocking<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["status"] == "blocking")
        .unwrap_or_else(|| panic!("no blocking {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_org_passes_every_check() {
    let org = Org::new(|_| {}).await;
    let (code, report) = doctor(&org).await;
    assert_eq!(code, 0, "{report:#}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "admin token",
        "slack plan",
        "admin token scopes",
        "bot token scopes",
        "scim",
        "private channels",
        "identity source",
    ] {
        assert!(names.contains(&name), "{name}: {report:#}");
    }
    // Text too, with the same verdict.
    let (code, out, _) = org.run(&["doctor", org.repo_arg()]).await;
    assert_eq!(code, 0);
    assert!(out.contains("ok      scim: reachable"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_blocks_with_its_fix() {
    let mut org = Org::new(|_| {}).await;
    org.admin = "xoxp-not-a-token".into();
    let (code, report) = doctor(&org).await;
    assert_eq!(code, 1);
    let check = blocking(&report, "admin token");
    assert!(
        check["detail"].as_str().unwrap().contains("invalid_auth"),
        "{check}"
    );
    assert!(check["fix"].as_str().unwrap().contains("slack.token_env"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_scope_is_named() {
    let org = Org::new(|world| {
        let admin = world
            .tokens
            .iter_mut()
            .find(|t| t.token == "xoxp-acme-admin")
            .unwrap();
        admin.scopes.retain(|s| s != "usergroups:write");
    })
    .await;
    let (code, report) = doctor(&org).await;
    assert_eq!(code, 1);
    let check = blocking(&report, "admin token scopes");
    assert_eq!(check["detail"], "missing: usergroups:write", "{check}");
    assert!(check["fix"].as_str().unwrap().contains("usergroups:write"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bot_missing_from_a_private_channel_is_named() {
    let org = Org::new(|world| {
        let bot = world
            .users
            .iter()
            .find(|u| u.email == "slack-gitops-bot@acme.example")
            .unwrap()
            .id
            .clone();
        let leadership = world
            .channels
            .iter_mut()
            .find(|c| c.name == "leadership")
            .unwrap();
        leadership.members.retain(|m| *m != bot);
    })
    .await;
    let (code, report) = doctor(&org).await;
    assert_eq!(code, 1);
    let check = blocking(&report, "private channels");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("#leadership in main"),
        "{check}"
    );
    assert!(check["fix"].as_str().unwrap().contains("/invite"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grid_config_against_a_business_plus_org_blocks() {
    let org = Org::example("northwind", |_| {}).await;
    common::edit(
        &org.repo.join("slack-gitops.yaml"),
        "plan: business-plus",
        "plan: enterprise-grid",
    );
    let (code, report) = doctor(&org).await;
    assert_eq!(code, 1);
    let check = blocking(&report, "slack plan");
    assert_eq!(
        check["fix"], "set `slack.plan: business-plus` in slack-gitops.yaml",
        "{check}"
    );
    // And the Grid-only scopes the config asks for are named missing.
    let scopes = blocking(&report, "admin token scopes");
    assert!(
        scopes["detail"]
            .as_str()
            .unwrap()
            .contains("admin.users:read")
    );
}

/// A store that does not exist yet is fine (apply creates it); one that cannot be opened
/// blocks, with the fix.
#[tokio::test(flavor = "multi_thread")]
async fn the_state_store_opens_or_is_yet_to_be_made() {
    let org = Org::new(|_| {}).await;
    let state = org.state.to_str().unwrap().to_string();
    let (code, out, _) = org
        .run(&["doctor", org.repo_arg(), "--state", &state])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("does not exist yet; apply and the controller create it"),
        "{out}"
    );
    // A directory where the file should be cannot be opened as a store.
    let broken = org.temp.path().join("not-a-store");
    std::fs::create_dir_all(&broken).unwrap();
    let (code, report) = {
        let (code, out, err) = org
            .run(&[
                "doctor",
                org.repo_arg(),
                "--state",
                broken.to_str().unwrap(),
                "--format",
                "json",
            ])
            .await;
        (
            code,
            serde_json::from_str::<Value>(&out).unwrap_or_else(|_| panic!("{out}{err}")),
        )
    };
    assert_eq!(code, 1);
    let check = blocking(&report, "state store");
    assert!(
        check["fix"].as_str().unwrap().contains("--state"),
        "{check}"
    );
}

/// The controller's mirror settings, when its environment sets them: the bot must be able
/// to join channels, the app-level token must open a Socket Mode connection, the audit
/// token must read the Audit Logs. Each falls back to full reads, so each only warns.
#[tokio::test(flavor = "multi_thread")]
async fn the_mirror_tokens_are_checked_when_set() {
    let org = Org::new(|_| {}).await;
    let doctor_with = |environment: Vec<(&'static str, &'static str)>| {
        let org = &org;
        async move {
            let child = org.spawn_with(
                &["doctor", org.repo_arg(), "--format", "json"],
                &environment,
            );
            let output = child.wait_with_output().await.unwrap();
            let out = String::from_utf8(output.stdout).unwrap();
            let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
            (output.status.code().unwrap(), report)
        }
    };
    let check = |report: &Value, name: &str| named(report, name).clone();

    // Acme's bot lacks channels:join: with events configured, that is a warning.
    let (code, report) = doctor_with(vec![("SLACK_SIGNING_SECRET", "secret")]).await;
    assert_eq!(code, 2, "{report:#}");
    let join = check(&report, "joins channels");
    assert_eq!(join["status"], "warning");
    assert!(join["detail"].as_str().unwrap().contains("channels:join"));
    assert!(join["fix"].as_str().unwrap().contains("invite the bot"));

    // The right tokens pass.
    let (_, report) = doctor_with(vec![
        ("SLACK_APP_TOKEN", "xapp-acme-socket"),
        ("SLACK_AUDIT_TOKEN", "xoxp-acme-audit"),
    ])
    .await;
    assert_eq!(check(&report, "socket mode")["status"], "ok", "{report:#}");
    assert_eq!(check(&report, "audit logs")["status"], "ok", "{report:#}");

    // A bot token where the app-level one belongs, a token without auditlogs:read.
    let (code, report) = doctor_with(vec![
        ("SLACK_APP_TOKEN", "xoxb-acme-bot"),
        ("SLACK_AUDIT_TOKEN", "xoxp-acme-readonly"),
    ])
    .await;
    assert_eq!(code, 2, "{report:#}");
    let socket = check(&report, "socket mode");
    assert_eq!(socket["status"], "warning");
    assert!(
        socket["detail"]
            .as_str()
            .unwrap()
            .contains("not_allowed_token_type"),
        "{socket}"
    );
    assert!(
        socket["fix"]
            .as_str()
            .unwrap()
            .contains("connections:write")
    );
    let audit = check(&report, "audit logs");
    assert_eq!(audit["status"], "warning");
    assert!(
        audit["detail"].as_str().unwrap().contains("missing_scope"),
        "{audit}"
    );
    assert!(audit["fix"].as_str().unwrap().contains("auditlogs:read"));
}

/// The check named `name`, whatever its status.
fn named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report:#}"))
}

/// This machine's clock against Slack's `Date` header: in sync passes; half a minute off
/// warns; past Slack's five-minute signature window blocks; each with the fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_clock_off_from_slacks_is_named() {
    let org = Org::new(|_| {}).await;
    let (_, report) = doctor(&org).await;
    assert_eq!(named(&report, "clock")["status"], "ok", "{report:#}");
    for (skew, status, code, words) in [
        (-40_i64, "warning", 2, "40 s ahead of Slack's"),
        (600, "blocking", 1, "600 s behind Slack's"),
    ] {
        let change = serde_json::json!({ "date_skew_seconds": skew });
        let (answer, text) = org.emulator.control_post("clock", &change).await;
        assert_eq!(answer, 204, "{text}");
        let (exit, report) = doctor(&org).await;
        assert_eq!(exit, code, "{report:#}");
        let clock = named(&report, "clock");
        assert_eq!(clock["status"], status, "{clock}");
        let detail = clock["detail"].as_str().unwrap();
        // One second either way: the header has whole seconds.
        let near =
            |n: i64| detail.contains(&words.replace(&skew.abs().to_string(), &n.to_string()));
        assert!(
            near(skew.abs()) || near(skew.abs() - 1) || near(skew.abs() + 1),
            "{clock}"
        );
        assert!(clock["fix"].as_str().unwrap().contains("NTP"), "{clock}");
    }
}

/// With `--repo`, the controller's remote is asked for its branch: a remote that answers
/// passes, a missing one or a missing branch blocks.
#[tokio::test(flavor = "multi_thread")]
async fn the_controllers_remote_is_checked() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let remote = remote.to_str().unwrap();
    let missing = org.temp.path().join("nowhere.git");
    for (repo, branch, status) in [
        (remote, "main", "ok"),
        (remote, "release", "blocking"),
        (missing.to_str().unwrap(), "main", "blocking"),
    ] {
        let (_, out, err) = org
            .run(&[
                "doctor",
                org.repo_arg(),
                "--format",
                "json",
                "--repo",
                repo,
                "--branch",
                branch,
            ])
            .await;
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        let check = named(&report, "git remote");
        assert_eq!(check["status"], status, "{repo} {branch}: {check}");
        if status == "blocking" {
            assert!(
                check["fix"]
                    .as_str()
                    .unwrap()
                    .contains("SLACK_GITOPS_GIT_TOKEN")
            );
        } else {
            assert!(
                check["detail"].as_str().unwrap().contains("main is at"),
                "{check}"
            );
        }
    }
}

/// A remote that accepts the connection and never answers: the check fails when the
/// read times out (`SLACK_GITOPS_GIT_TIMEOUT_MS`, a minute by default), not never.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_that_never_answers_times_out() {
    let org = Org::new(|_| {}).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/acme/config.git", listener.local_addr().unwrap());
    // Holds every connection open, reading nothing and writing nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let args = [
        "doctor",
        org.repo_arg(),
        "--format",
        "json",
        "--repo",
        url.as_str(),
    ];
    let child = org.spawn_with(&args, &[("SLACK_GITOPS_GIT_TIMEOUT_MS", "1500")]);
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("doctor waited on a silent remote")
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
    let check = named(&report, "git remote");
    assert_eq!(check["status"], "blocking", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.contains("timed out"), "{detail}");
    assert_eq!(output.status.code(), Some(1), "{report:#}");
}
