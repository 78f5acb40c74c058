//! Rate limits, time scale, faults, the call log, reset, and state across restarts.

use crate::common;

use std::time::Duration;

use serde_json::{Value, json};
use slack_emulator::Options;

#[tokio::test]
async fn a_burst_over_a_tier_gets_429_and_waiting_retry_after_succeeds() {
    // At time scale 6 the Tier 2 bucket refills two calls a real second, so the burst
    // below cannot be refilled while it runs, and Retry-After waits stay short.
    let slack = common::small(6.0).await;
    let args = [("team_id", "T0000MAIN")];
    for _ in 0..20 {
        slack.ok("xoxp-admin", "usergroups.list", &args).await;
    }
    let response = slack
        .http
        .post(format!("{}/api/usergroups.list", slack.base))
        .bearer_auth("xoxp-admin")
        .form(&args)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=3).contains(&retry_after),
        "Tier 2 refills one call every 3 s: {retry_after}"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "ratelimited"})
    );

    // Other methods and other apps have their own buckets.
    slack
        .ok(
            "xoxp-admin",
            "usergroups.users.list",
            &[("usergroup", "S00000001"), ("team_id", "T0000MAIN")],
        )
        .await;
    slack.ok("xoxp-workspace", "usergroups.list", &[]).await;

    // Waiting Retry-After emulated seconds (divided by the time scale) is enough.
    tokio::time::sleep(Duration::from_secs_f64(retry_after as f64 / 6.0)).await;
    slack.ok("xoxp-admin", "usergroups.list", &args).await;
    let calls = slack.log().await;
    assert_eq!(calls.iter().filter(|c| c.status == 429).count(), 1);
    slack.stop().await;
}

#[tokio::test]
async fn scim_writes_count_against_the_endpoint_bucket() {
    // At time scale 0.1 the POST /Users bucket (burst 20, 180 a minute) refills one call
    // every 3.3 real seconds, so the burst below cannot be refilled while it runs.
    let slack = common::small(0.1).await;
    slack.settings(|s| s["scim_write_secs"] = json!(0.0)).await;
    let mut statuses = Vec::new();
    for n in 0..21 {
        let (status, _) = slack
            .scim("POST", "Users", Some(json!({"userName": format!("p{n}"), "emails": [{"value": format!("p{n}@test.example")}]})))
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses[..20], [201; 20]);
    assert_eq!(statuses[20], 429);
    // Reads have their own, much larger bucket.
    let (status, _) = slack.scim("GET", "Users", None).await;
    assert_eq!(status, 200);
    slack.stop().await;
}

#[tokio::test]
async fn injected_faults_hit_the_matching_calls_and_are_logged() {
    let slack = common::small(1.0).await;
    slack
        .fault(json!({"kind": "status", "status": 503, "target": "users.list", "count": 2}))
        .await;
    let args = [("team_id", "T0000MAIN")];
    for _ in 0..2 {
        let response = slack
            .http
            .post(format!("{}/api/users.list", slack.base))
            .bearer_auth("xoxp-admin")
            .form(&args)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
    }
    slack.ok("xoxp-admin", "users.list", &args).await;

    slack
        .fault(json!({"kind": "rate_limit", "retry_after": 7, "count": 3}))
        .await;
    for _ in 0..3 {
        let response = slack
            .http
            .get(format!("{}/api/auth.test", slack.base))
            .bearer_auth("xoxp-admin")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
    }

    slack
        .fault(json!({"kind": "reset", "target": "/scim/v2/Users", "count": 1}))
        .await;
    let broken = async {
        let response = slack
            .http
            .get(format!("{}/scim/v2/Users", slack.base))
            .bearer_auth("xoxp-admin")
            .send()
            .await?;
        response.bytes().await
    }
    .await;
    assert!(broken.is_err(), "the connection breaks mid-response");
    let (status, _) = slack.scim("GET", "Users", None).await;
    assert_eq!(status, 200);

    slack
        .fault(json!({"kind": "latency", "ms": 300, "target": "auth.test", "count": 1}))
        .await;
    let started = std::time::Instant::now();
    slack.ok("xoxp-admin", "auth.test", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    let calls = slack.log().await;
    let faults: Vec<&str> = calls.iter().filter_map(|c| c.fault.as_deref()).collect();
    assert_eq!(
        faults,
        [
            "status 503",
            "status 503",
            "rate_limit",
            "rate_limit",
            "rate_limit",
            "reset",
            "latency 300ms"
        ]
    );
    assert_eq!(calls.len(), 9);
    assert!(
        calls
            .iter()
            .all(|c| c.bytes_out > 0 || c.fault.as_deref() == Some("reset"))
    );
    assert!(
        calls
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at)
    );
    let users_list = calls
        .iter()
        .find(|c| c.call == "users.list" && c.status == 200)
        .unwrap();
    assert!(users_list.bytes_in > 0 && users_list.bytes_out > 1000);
    slack.stop().await;
}

#[tokio::test]
async fn the_required_field_regression_deactivates_on_update() {
    let slack = common::small(1.0).await;
    slack
        .fault(json!({"kind": "required_field", "field": "title"}))
        .await;
    // An update that sends the title is fine...
    let (_, body) = slack
        .scim(
            "PATCH",
            "Users/W00000003",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]
            })),
        )
        .await;
    assert_eq!(body["active"], true);
    // ...one that lacks it deactivates the person, as Slack did in April 2024.
    let (status, body) = slack
        .scim(
            "PATCH",
            "Users/W00000004",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "name.familyName", "value": "Changed"}]
            })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], false);
    assert!(!slack.emulator.world().user("W00000004").unwrap().active);
    slack.stop().await;
}

#[tokio::test]
async fn reset_puts_everything_back_as_seeded() {
    let slack = common::small(1.0).await;
    slack
        .ok(
            "xoxp-admin",
            "conversations.create",
            &[("team_id", "T0000MAIN"), ("name", "temporary")],
        )
        .await;
    slack.fault(json!({"kind": "status", "status": 500})).await;
    let response = slack
        .http
        .post(format!("{}/_emulator/reset", slack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(slack.emulator.world(), common::small_seed());
    assert!(slack.log().await.is_empty());
    slack.ok("xoxp-admin", "auth.test", &[]).await;
    slack.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("state.json");
    let options = || Options {
        state_path: Some(state.clone()),
        ..Options::default()
    };
    let slack = common::start(common::small_seed(), options()).await;
    let body = slack
        .ok(
            "xoxp-admin",
            "conversations.create",
            &[("team_id", "T0000MAIN"), ("name", "persisted")],
        )
        .await;
    let id = body["channel"]["id"].as_str().unwrap().to_string();
    slack.stop().await;
    // Only the state file remains: the temporary file was renamed over it.
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["state.json"]);

    let slack = common::start(common::small_seed(), options()).await;
    let body = slack
        .ok("xoxp-admin", "conversations.info", &[("channel", &id)])
        .await;
    assert_eq!(body["channel"]["name"], "persisted");
    slack.stop().await;
}

#[test]
fn the_command_serves_the_acme_seed() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["emulator", "--seed"])
        .arg(common::fixture("examples/acme/slack.json"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (auth, users) = runtime.block_on(async {
        let http = reqwest::Client::new();
        let auth: Value = http
            .get(format!("http://{address}/api/auth.test"))
            .bearer_auth("xoxp-acme-admin")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let users: Value = http
            .get(format!("http://{address}/scim/v2/Users?count=1"))
            .bearer_auth("xoxp-acme-admin")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (auth, users)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(auth["ok"], true);
    assert_eq!(auth["enterprise_id"], "E0000ACME");
    assert!(users["totalResults"].as_u64().unwrap() > 280);
}

#[test]
fn a_broken_seed_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let seed = directory.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"workspaces": [], "tokens": [{"token": "x", "kind": "user", "user": "W1"}]}"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the seed is inconsistent: a token acts as unknown user W1"),
        "{stderr}"
    );
}

/// A seed without `enterprise` is a Business+ workspace: a second workspace or an
/// org-level token in it is refused, with the reason.
#[test]
fn a_business_plus_seed_has_one_workspace_and_no_org_token() {
    let northwind =
        std::fs::read_to_string(common::fixture("examples/northwind/slack.json")).unwrap();
    let mut seed: serde_json::Value = serde_json::from_str(&northwind).unwrap();
    assert!(slack_emulator::world::World::from_json(&seed.to_string()).is_ok());
    seed["workspaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": "T0000TWO", "name": "Two", "domain": "two"}));
    let error = slack_emulator::world::World::from_json(&seed.to_string()).unwrap_err();
    assert!(
        error.to_string().contains("exactly one workspace, not 2"),
        "{error}"
    );
    seed["workspaces"].as_array_mut().unwrap().pop();
    seed["tokens"][0]["org_level"] = serde_json::json!(true);
    let error = slack_emulator::world::World::from_json(&seed.to_string()).unwrap_err();
    assert!(error.to_string().contains("org-level"), "{error}");
}
