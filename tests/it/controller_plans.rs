//! `plan DIR --controller URL`: a pull request planned by the controller from its mirror
//! of live Slack, through the real binaries: the same actions as a plan that reads Slack
//! in full, a fraction of the calls, the comment saying how fresh its view is; and the
//! request treated as hostile (token, paths, the settings that route credentials).

use crate::common::controller::Controller;
use crate::common::org::{Org, git};

use serde_json::{Value, json};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN: &str = "plan-token-0123456789";

/// A controller with events and plans configured, its stream healthy.
async fn controller(org: &Org) -> Controller {
    let remote = org.bare_remote();
    let controller = Controller::start_with(
        org,
        &remote,
        &[
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("SLACK_GITOPS_CONTROLLER_TOKEN", TOKEN),
        ],
    )
    .await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    let settings = json!({
        "request_url": format!("{}/hooks/slack", controller.base),
        "signing_secret": SIGNING_SECRET,
    });
    assert_eq!(org.emulator.control_post("events", &settings).await.0, 204);
    // The canary sent before the subscription never comes back: the stream has a gap,
    // and the first read after it is a full one. A drift tick from the mirror says the
    // mirror is past it.
    controller
        .wait("a drift tick from the mirror", |s| {
            s["mirror"]["stream"]["healthy"] == true
                && s["last_syncs"][0]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("Slack from the mirror"))
        })
        .await;
    controller
}

/// The pull request's change: #eng-oncall for @sre only, no longer the whole rotation.
fn oncall_only(org: &Org) {
    org.replace_in(
        "mappings/engineering.yaml",
        &[
            (
                "    members: { groups: [oncall, sre] }",
                "    members: { groups: [sre] }",
            ),
            (
                "    channels: [eng-oncall, incidents]",
                "    channels: [incidents]",
            ),
        ],
    );
}

fn changes(plan: &str) -> Vec<String> {
    let document: Value = serde_json::from_str(plan).unwrap();
    serde_json::from_value(document["changes"].clone()).unwrap()
}

#[tokio::test]
async fn a_pull_request_is_planned_from_the_mirror_as_a_full_read_would_plan_it() {
    let org = Org::new(|_| {}).await;
    let controller = controller(&org).await;
    oncall_only(&org);
    let out = org.temp.path().join("remote-plan.json");
    let comments = org.temp.path().join("comments");
    org.emulator.clear_log().await;
    let output = org
        .spawn_with(
            &[
                "plan",
                org.repo_arg(),
                "--controller",
                &controller.base,
                "--format",
                "markdown",
                "--out",
                out.to_str().unwrap(),
                "--comment-dir",
                comments.to_str().unwrap(),
                "--detailed-exitcode",
            ],
            &[("SLACK_GITOPS_CONTROLLER_TOKEN", TOKEN)],
        )
        .wait_with_output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("live Slack from the controller's mirror: "),
        "{stdout}"
    );
    assert!(stdout.contains("before this plan"), "{stdout}");
    let comment = std::fs::read_to_string(comments.join("comment-1.md")).unwrap();
    assert!(comment.contains("read live"), "{comment}");
    // Only what the change touches was read live (the channel and the usergroups of the
    // workspaces it changes), as the plan itself says; the emulator's log also holds the
    // controller's own ticks and refreshes, so it is not asked.
    let remote = std::fs::read_to_string(&out).unwrap();
    let document: Value = serde_json::from_str(&remote).unwrap();
    let read = &document["slack_read"];
    let live = read["read_live"].as_u64().unwrap();
    assert!((1..=5).contains(&live), "{read}");
    assert!(read["mirrored"].as_u64() > Some(300), "{read}");

    // The same change planned here, reading Slack in full: the same actions.
    let local = org.temp.path().join("local-plan.json");
    let (code, _, stderr) = org
        .run(&["plan", org.repo_arg(), "--out", local.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let local = std::fs::read_to_string(&local).unwrap();
    let planned = changes(&remote);
    assert_eq!(planned, changes(&local));
    assert!(
        planned.iter().any(|c| c.contains("#eng-oncall")),
        "{planned:?}"
    );

    // Before the change is merged, #eng-oncall is renamed and a new one made with its
    // name. The reviewed plan removed people from C00000005; the apply does not act on
    // it by that id: the renamed channel keeps everyone, the new one gets @sre.
    let renamed_before = org
        .world()
        .await
        .channels
        .iter()
        .find(|c| c.id == "C00000005")
        .unwrap()
        .members
        .clone();
    org.emulator
        .ok(
            &org.bot,
            "conversations.rename",
            &[("channel", "C00000005"), ("name", "eng-oncall-2025")],
        )
        .await;
    org.emulator
        .ok(
            &org.bot,
            "conversations.create",
            &[
                ("team_id", "T0000MAIN"),
                ("name", "eng-oncall"),
                ("is_private", "true"),
            ],
        )
        .await;
    org.emulator.clear_log().await;
    let merged = org.merge("#eng-oncall for @sre only");
    controller
        .wait("the change applied", |s| {
            s["last_syncs"][0]["commit"] == merged.as_str()
                && s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    let world = org.world().await;
    let renamed = world.channels.iter().find(|c| c.id == "C00000005").unwrap();
    assert_eq!(renamed.name, "eng-oncall-2025");
    assert_eq!(renamed.members, renamed_before);
    let new = world
        .channels
        .iter()
        .find(|c| c.name == "eng-oncall" && c.workspace == "T0000MAIN")
        .unwrap();
    assert_ne!(new.id, "C00000005");
    let sre = world
        .usergroups
        .iter()
        .find(|g| g.handle == "sre" && g.workspace == "T0000MAIN")
        .unwrap();
    assert!(sre.users.iter().all(|u| new.members.contains(u)), "{new:?}");
    let calls = org.emulator.log().await;
    assert!(!calls.iter().any(|c| c.call == "conversations.kick"));
}

#[tokio::test]
async fn a_plan_request_is_refused_without_the_token_or_with_a_hostile_body() {
    let org = Org::new(|_| {}).await;
    let controller = controller(&org).await;

    // The CLI will not go without a token.
    let (code, _, stderr) = org
        .run(&["plan", org.repo_arg(), "--controller", &controller.base])
        .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("SLACK_GITOPS_CONTROLLER_TOKEN"), "{stderr}");
    // A wrong token is 401 before the body is read.
    let output = org
        .spawn_with(
            &["plan", org.repo_arg(), "--controller", &controller.base],
            &[("SLACK_GITOPS_CONTROLLER_TOKEN", "not-the-token")],
        )
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("401"), "{stderr}");

    let post = |body: Value| {
        let http = controller.http.clone();
        let url = format!("{}/plan", controller.base);
        async move {
            let response = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let encode = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    // A path that leaves the request's directory, or is not a config file.
    let outside = org.temp.path().join("escaped.yaml");
    for path in [
        "../escaped.yaml",
        outside.to_str().unwrap(),
        "mappings/../../escaped.yaml",
        "notes/secret.txt",
    ] {
        let (status, text) =
            post(json!({"files": [{"path": path, "base64": encode("x: 1\n")}]})).await;
        assert_eq!(status, 400, "{path}: {text}");
    }
    assert!(!outside.exists());
    // Only the identity export may go by its digest, and only the commit in force's.
    let digest = "0".repeat(64);
    let (status, text) =
        post(json!({"files": [{"path": "slack-gitops.yaml", "sha256": digest}]})).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("only the identity export"), "{text}");
    let config = std::fs::read_to_string(org.repo.join("slack-gitops.yaml")).unwrap();
    let (status, text) = post(json!({"files": [
        {"path": "slack-gitops.yaml", "base64": encode(&config)},
        {"path": "identity/directory.yaml", "sha256": digest},
    ]}))
    .await;
    assert_eq!(status, 409, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"send": ["identity/directory.yaml"]})
    );
    // Not JSON: the answer names the problem, never the body.
    let response = controller
        .http
        .post(format!("{}/plan", controller.base))
        .bearer_auth(TOKEN)
        .body("files: top-secret-content")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.text().await.unwrap();
    assert!(!text.contains("top-secret-content"), "{text}");

    // A change pointing Slack's URL at another server: refused, and that server never
    // hears from the controller.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let trap = format!("http://{}", listener.local_addr().unwrap());
    org.replace_in(
        "slack-gitops.yaml",
        &[(
            "  bot_token_env: SLACK_BOT_TOKEN\n",
            &format!("  bot_token_env: SLACK_BOT_TOKEN\n  url: {trap}\n"),
        )],
    );
    let output = org
        .spawn_with(
            &["plan", org.repo_arg(), "--controller", &controller.base],
            &[("SLACK_GITOPS_CONTROLLER_TOKEN", TOKEN)],
        )
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("422") && stderr.contains("slack.url"),
        "{stderr}"
    );
    assert!(listener.accept().is_err(), "the controller called the trap");
    git(&org.repo, &["checkout", "--", "slack-gitops.yaml"]);
}

/// An identity export over 1 MiB goes by its SHA-256 when the commit in force has the
/// same bytes; when the pull request changes it, the controller answers 409 and the CLI
/// sends it whole, and the plan sees the change.
#[tokio::test]
async fn a_large_identity_export_goes_by_its_digest_unless_the_pull_request_changes_it() {
    let org = Org::new(|_| {}).await;
    let export = org.repo.join("identity/directory.yaml");
    let mut text = std::fs::read_to_string(&export).unwrap();
    let padding = format!("# {}\n", "padding ".repeat(16));
    text.push_str(&padding.repeat(1024 * 1024 / padding.len() + 1));
    std::fs::write(&export, &text).unwrap();
    crate::common::org::commit(&org.repo, "a large export");
    let controller = controller(&org).await;
    let plan = |name: &'static str| {
        let org = &org;
        let base = controller.base.clone();
        async move {
            let out = org.temp.path().join(name);
            let output = org
                .spawn_with(
                    &[
                        "plan",
                        org.repo_arg(),
                        "--controller",
                        &base,
                        "--out",
                        out.to_str().unwrap(),
                    ],
                    &[("SLACK_GITOPS_CONTROLLER_TOKEN", TOKEN)],
                )
                .wait_with_output()
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(0), "{stderr}");
            (stderr, std::fs::read_to_string(&out).unwrap())
        }
    };
    let (stderr, document) = plan("same.json").await;
    assert!(stderr.contains("sent by its SHA-256 only"), "{stderr}");
    assert!(changes(&document).is_empty(), "{document}");

    // The pull request changes someone's title in the export.
    let changed = text.replacen(
        "    title: Site Reliability Engineer\n",
        "    title: Principal Site Reliability Engineer\n",
        1,
    );
    std::fs::write(&export, changed).unwrap();
    let (stderr, document) = plan("changed.json").await;
    assert!(stderr.contains("sending it whole"), "{stderr}");
    let planned = changes(&document);
    assert!(
        planned.iter().any(|c| c.contains("ada.clarke")),
        "{planned:?}"
    );
}
