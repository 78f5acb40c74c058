//! Reading live Slack from the emulator: exactly the minimum number of calls, no 429s at
//! time scale 1, and under faults either the same result or a clear error, never a
//! partial snapshot.

use crate::common;

use serde_json::json;
use slack_emulator::Options;
use slack_gitops::config;
use slack_gitops::model::live::Live;
use slack_gitops::slack::client::{ClientOptions, ErrorClass, SlackClient, Token};
use slack_gitops::slack::reader::{ReadReport, ReadScope, read_live};

fn acme_scope() -> ReadScope {
    let tree = slack_gitops::gitops::worktree::read(&common::fixture("examples/acme")).unwrap();
    ReadScope::from_repository(&config::load(&tree.files, None).repository.unwrap())
}

async fn acme() -> common::Running {
    let seed = slack_emulator::read_world(&common::fixture("examples/acme/slack.json")).unwrap();
    common::start(seed, Options::default()).await
}

fn client(base: &str, admin: &str) -> SlackClient {
    client_at(base, admin, 20.0)
}

/// A client whose waits are `time_scale` times shorter.
fn client_at(base: &str, admin: &str, time_scale: f64) -> SlackClient {
    SlackClient::new(
        Token::new(admin),
        Some(Token::new("xoxb-acme-bot")),
        ClientOptions {
            base_url: Some(base.to_string()),
            time_scale,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// A read whose backoff and Retry-After waits are twenty times shorter (quick tests).
async fn read(
    slack: &common::Running,
) -> Result<(Live, ReadReport), slack_gitops::slack::client::SlackError> {
    read_live(&client(&slack.base, "xoxp-acme-admin"), &acme_scope()).await
}

#[tokio::test]
async fn reads_everything_in_the_minimum_number_of_calls() {
    let slack = acme().await;
    // Both clocks at time scale 1: the real pacing against the real limits.
    let (live, report) = read_live(
        &client_at(&slack.base, "xoxp-acme-admin", 1.0),
        &acme_scope(),
    )
    .await
    .unwrap();
    let seed = slack.emulator.world();

    // SCIM Users and Groups (one page each), admin.users.list, usergroups.list and
    // conversations.list per workspace, and conversations.members for the ten managed or
    // default channels that exist (#eng-announce does not yet).
    let expected = 1 + 1 + 1 + 2 + 2 + 10;
    assert_eq!(report.minimum_calls, expected);
    assert_eq!(report.calls, expected);
    assert_eq!((report.rate_limited, report.retries), (0, 0));
    let calls = slack.emulator.calls();
    assert_eq!(calls.len() as u64, expected);
    assert!(calls.iter().all(|c| c.status == 200));

    assert_eq!(live.users.len(), seed.users.len());
    assert_eq!(live.usergroups.len(), seed.usergroups.len());
    assert_eq!(live.channels.len(), seed.channels.len());
    assert_eq!(live.idp_groups.len(), seed.idp_groups.len());
    // Flags come from the admin API, activity from SCIM.
    let owner = live.users.iter().find(|u| u.primary_owner).unwrap();
    assert!(owner.admin && owner.owner && owner.active);
    assert_eq!(
        live.users.iter().filter(|u| !u.active).count(),
        seed.users.iter().filter(|u| !u.active).count()
    );
    let guest = live
        .users
        .iter()
        .find(|u| u.email == "pat.partner@agency.example")
        .unwrap();
    assert_eq!(
        guest.guest,
        Some(slack_gitops::model::live::GuestKind::Multi)
    );
    assert_eq!(guest.workspaces, ["T0000SUPP"]);
    // Profiles, the manager included, come from SCIM as the seed holds them.
    for user in &seed.users {
        let read = live.users.iter().find(|u| u.id == user.id).unwrap();
        assert_eq!(
            (&read.title, &read.department, &read.manager),
            (&user.title, &user.department, &user.manager)
        );
    }
    assert!(live.users.iter().filter(|u| u.manager.is_some()).count() > 250);
    // Members are read for managed channels only.
    let with_members: Vec<&str> = live
        .channels
        .iter()
        .filter(|c| c.members.is_some())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(with_members.len(), 10);
    assert!(!with_members.contains(&"random"));
    let backend = live
        .usergroups
        .iter()
        .find(|g| g.handle == "backend")
        .unwrap();
    let seeded = seed
        .usergroups
        .iter()
        .find(|g| g.handle == "backend")
        .unwrap();
    assert_eq!(backend.members, seeded.users);
    slack.stop().await;
}

#[tokio::test]
async fn transient_faults_give_the_same_snapshot() {
    let slack = acme().await;
    let (baseline, _) = read(&slack).await.unwrap();
    for fault in [
        json!({"kind": "status", "status": 503, "target": "usergroups.list", "count": 2}),
        json!({"kind": "status", "status": 500, "target": "/scim/v2/Users", "count": 1}),
        json!({"kind": "reset", "target": "conversations.members", "count": 2}),
        json!({"kind": "reset", "target": "/scim/v2/Groups", "count": 1}),
        json!({"kind": "rate_limit", "retry_after": 1, "target": "admin.users.list", "count": 2}),
    ] {
        slack.fault(fault.clone()).await;
        let (live, report) = read(&slack)
            .await
            .unwrap_or_else(|e| panic!("{fault}: {e}"));
        assert_eq!(live, baseline, "{fault}");
        assert!(
            report.calls > report.minimum_calls,
            "{fault}: the fault cost a call"
        );
    }
    slack.stop().await;
}

#[tokio::test]
async fn a_persistent_failure_fails_the_whole_read_clearly() {
    let slack = acme().await;
    slack
        .fault(json!({"kind": "status", "status": 502, "target": "conversations.list"}))
        .await;
    let error = read(&slack).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Retryable);
    let message = error.to_string();
    assert!(
        message.starts_with("conversations.list: HTTP 502 after 5 attempt(s)"),
        "{message}"
    );
    slack.stop().await;
}

#[tokio::test]
async fn an_under_scoped_token_names_the_missing_scope() {
    let slack = acme().await;
    // The read as a whole fails: SCIM refuses a token without `admin` (auth), or
    // admin.users.list names its scope, whichever answers first.
    let error = read_live(&client(&slack.base, "xoxp-acme-readonly"), &acme_scope())
        .await
        .unwrap_err();
    assert!(
        matches!(error.class(), ErrorClass::MissingScope | ErrorClass::Auth),
        "{error}"
    );
    assert!(
        !error.to_string().contains("xoxp-acme-readonly"),
        "the token never appears"
    );

    // One call, one exact answer: listing private channels needs groups:read.
    let error = client(&slack.base, "xoxp-acme-readonly")
        .web_read(
            slack_gitops::slack::client::Credential::Admin,
            "conversations.list",
            &[
                ("team_id", "T0000MAIN".into()),
                ("types", "private_channel".into()),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::MissingScope);
    assert_eq!(
        error.to_string(),
        "conversations.list: the token lacks the scope `groups:read` (it has: users:read,usergroups:read,channels:read); add the scope to the Slack app and reinstall it"
    );
    slack.stop().await;
}

#[tokio::test]
async fn pacing_keeps_a_burst_of_reads_under_the_tier() {
    // 30 usergroups.list calls: Tier 2 allows 20 a minute. At time scale 60 the client
    // paces itself instead of collecting 429s.
    let seed = slack_emulator::read_world(&common::fixture("examples/acme/slack.json")).unwrap();
    let slack = common::start(
        seed,
        Options {
            time_scale: 60.0,
            ..Options::default()
        },
    )
    .await;
    let client = SlackClient::new(
        Token::new("xoxp-acme-admin"),
        None,
        ClientOptions {
            base_url: Some(slack.base.clone()),
            time_scale: 60.0,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    for _ in 0..30 {
        client
            .web_read(
                slack_gitops::slack::client::Credential::Admin,
                "usergroups.list",
                &[("team_id", "T0000MAIN".into())],
            )
            .await
            .unwrap();
    }
    assert_eq!(client.counts().rate_limited, 0);
    assert_eq!(
        slack
            .emulator
            .calls()
            .iter()
            .filter(|c| c.status == 429)
            .count(),
        0
    );
    slack.stop().await;
}

#[tokio::test]
async fn the_snapshot_command_writes_versioned_json() {
    let slack = acme().await;
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("snapshot.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .arg("snapshot")
        .arg(common::fixture("examples/acme"))
        .args(["--slack-url", &slack.base, "--out"])
        .arg(&out)
        .env("SLACK_ADMIN_TOKEN", "xoxp-acme-admin")
        .env("SLACK_BOT_TOKEN", "xoxb-acme-bot")
        .env("SLACK_GITOPS_LOG", "debug")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("xoxp-acme-admin") && !stderr.contains("xoxb-acme-bot"),
        "tokens never appear in logs"
    );
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(document["version"], 1);
    assert_eq!(document["calls"]["made"], document["calls"]["minimum"]);
    assert_eq!(document["calls"]["rate_limited"], 0);
    assert_eq!(document["live"]["users"].as_array().unwrap().len(), 292);
    assert_eq!(
        document["directory"]["people"].as_array().unwrap().len(),
        291
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("xoxp-") && !text.contains("xoxb-"),
        "tokens are never written to state"
    );

    // Without the token the command says which variable to set.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .arg("snapshot")
        .arg(common::fixture("examples/acme"))
        .args(["--slack-url", &slack.base])
        .env_remove("SLACK_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SLACK_ADMIN_TOKEN is not set"));
    slack.stop().await;
}

#[tokio::test]
async fn apps_a_leaver_installed_come_from_the_integration_logs() {
    use slack_emulator::world::IntegrationLog;
    use slack_gitops::slack::reader::read_installed_apps;
    let mut seed =
        slack_emulator::read_world(&common::fixture("examples/acme/slack.json")).unwrap();
    // The ghost account installed Google Drive and later removed it: the latest entry wins.
    let drive = seed.apps.iter().find(|a| a.id == "A0000DRIVE").unwrap();
    seed.integration_logs.push(IntegrationLog {
        app_id: drive.id.clone(),
        app_type: drive.name.clone(),
        user_id: drive.installed_by.clone(),
        user_name: String::new(),
        date: drive.date + 86_400,
        change_type: "removed".into(),
        scope: String::new(),
        workspace: drive.workspace.clone(),
    });
    let ghost_id = drive.installed_by.clone();
    // The support workspace's log runs to three pages, more than it has leavers.
    seed.integration_logs
        .extend((0..2_500u64).map(|n| IntegrationLog {
            app_id: format!("AOTHER{n}"),
            app_type: format!("Other app {n}"),
            user_id: "W00000001".into(),
            user_name: String::new(),
            date: 1_700_000_000 + n,
            change_type: "added".into(),
            scope: String::new(),
            workspace: "T0000SUPP".into(),
        }));
    seed.integration_logs.push(IntegrationLog {
        app_id: "A0000TRIAGE".into(),
        app_type: "Triage bot".into(),
        user_id: "W00000051".into(),
        user_name: String::new(),
        date: 1_600_000_000,
        change_type: "added".into(),
        scope: String::new(),
        workspace: "T0000SUPP".into(),
    });
    // Installed by a leaver there, then removed by someone else: recent enough to be on
    // the first page, so it is not counted although the leaver's own entries say added.
    for (change, user, date) in [
        ("added", "W00000051", 1_650_000_000),
        ("removed", "W00000001", 1_800_000_000),
    ] {
        seed.integration_logs.push(IntegrationLog {
            app_id: "A0000SHARED".into(),
            app_type: "Shared dashboard".into(),
            user_id: user.into(),
            user_name: String::new(),
            date,
            change_type: change.into(),
            scope: String::new(),
            workspace: "T0000SUPP".into(),
        });
    }
    let slack = common::start(seed, Options::default()).await;
    let client = client(&slack.base, "xoxp-acme-admin");
    let main = vec!["T0000MAIN".to_string()];
    let apps = read_installed_apps(
        &client,
        &[
            ("W00000051".into(), main.clone()),
            (ghost_id.clone(), main.clone()),
        ],
    )
    .await
    .unwrap();
    let named: Vec<(&str, &str, &str)> = apps
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str(), a.installed_by.as_str()))
        .collect();
    assert_eq!(named, [("A0000DEPLOY", "Deploy notifier", "W00000051")]);
    // Acme's log is one page, so it is read whole: one call for both leavers.
    let calls = client.counts();
    assert_eq!(calls.calls, 1, "{calls:?}");

    // There, each leaver's entries are asked for on their own after the first page:
    // 1 + 1 + 1 calls rather than 3 pages of other people's apps.
    let support = vec!["T0000SUPP".to_string()];
    let fresh = self::client(&slack.base, "xoxp-acme-admin");
    let apps = read_installed_apps(
        &fresh,
        &[
            ("W00000051".into(), support.clone()),
            (ghost_id.clone(), support),
        ],
    )
    .await
    .unwrap();
    let named: Vec<(&str, &str)> = apps
        .iter()
        .map(|a| (a.id.as_str(), a.installed_by.as_str()))
        .collect();
    assert_eq!(named, [("A0000TRIAGE", "W00000051")]);
    assert_eq!(fresh.counts().calls, 3, "{:?}", fresh.counts());

    // A token without the legacy `admin` scope gets a clear error naming it.
    let error = read_installed_apps(
        &SlackClient::new(
            Token::new("xoxp-acme-readonly"),
            None,
            ClientOptions {
                base_url: Some(slack.base.clone()),
                ..ClientOptions::default()
            },
        )
        .unwrap(),
        &[("W00000051".into(), main)],
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("`admin`"), "{error}");
    slack.stop().await;
}

/// An account is found by email through SCIM v2's documented `userName eq` filter first;
/// a server that refuses the v1 `email eq` filter is read page by page instead of
/// failing, so a userName Slack did not make from the email is still found.
#[tokio::test]
async fn accounts_are_found_by_the_documented_filter_or_by_reading() {
    use slack_gitops::slack::writer::find_user;
    let mut seed =
        slack_emulator::read_world(&common::fixture("examples/acme/slack.json")).unwrap();
    // A userName that is not the email's local part (renamed in Slack).
    let renamed = seed
        .users
        .iter_mut()
        .find(|u| u.email == "ada.liskov@acme.example")
        .unwrap();
    renamed.user_name = "ada.l".into();
    let slack = common::start(seed, Options::default()).await;
    slack
        .settings(|s| s["scim_email_filter"] = json!(false))
        .await;
    let client = client(&slack.base, "xoxp-acme-admin");

    // The usual case: one call, the documented filter.
    let found = find_user(&client, "grace.bernerslee@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.email, "grace.bernerslee@acme.example");
    let calls: Vec<String> = slack.log().await.into_iter().map(|c| c.call).collect();
    assert_eq!(calls, ["SCIM GET /Users"]);

    // A renamed userName, and a server that refuses `email eq`: found by reading.
    let found = find_user(&client, "ada.liskov@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_name, "ada.l");
    assert!(
        find_user(&client, "nobody@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    // An address with a quote is a string in the filter, not a way out of it: the server
    // answers the filter (two calls) rather than refusing it and being read in full.
    slack
        .settings(|s| s["scim_email_filter"] = json!(true))
        .await;
    let before = slack.log().await.len();
    assert!(
        find_user(&client, "ada\" or userName eq \"ada.l@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    let calls: Vec<String> = slack
        .log()
        .await
        .into_iter()
        .skip(before)
        .map(|c| c.call)
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
}
