//! The emulator's Events API: events for every change whoever makes it, only where the
//! app's bot can see them; signed HTTP delivery with the url_verification handshake,
//! retries, disabling and the hourly limit; event faults; the run-time clock.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT: &str = "xoxb-bot";
const ADMIN: &str = "xoxp-admin";

/// How the receiver answers event callbacks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Status(u16),
    /// 500 with `x-slack-no-retry: 1`.
    NoRetry,
    /// Answers after this many real milliseconds.
    Slow(u64),
}

#[derive(Debug, Clone)]
struct Received {
    body: Value,
    retry_num: Option<String>,
    retry_reason: Option<String>,
}

#[derive(Default)]
struct Inbox {
    received: Vec<Received>,
    bad_signatures: usize,
    answer: Option<Answer>,
    echo_challenge: bool,
}

/// A request URL: checks every signature, echoes the challenge, records callbacks.
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
    _task: tokio::task::JoinHandle<()>,
}

fn signed(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(timestamp), Some(signature)) = (
        headers.get("x-slack-request-timestamp"),
        headers.get("x-slack-signature"),
    ) else {
        return false;
    };
    let timestamp: u64 = timestamp.to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(timestamp) > 300 {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature.to_str().unwrap() == format!("v0={hex}")
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !signed(SECRET, &headers, &body) {
        inbox.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    if body["type"] == "url_verification" {
        let echo = inbox.lock().unwrap().echo_challenge;
        let challenge = if echo {
            body["challenge"].clone()
        } else {
            json!("nope")
        };
        return axum::Json(json!({ "challenge": challenge })).into_response();
    }
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    let answer = {
        let mut inbox = inbox.lock().unwrap();
        inbox.received.push(Received {
            body,
            retry_num: header("x-slack-retry-num"),
            retry_reason: header("x-slack-retry-reason"),
        });
        inbox.answer.unwrap_or(Answer::Ok)
    };
    match answer {
        Answer::Ok => StatusCode::OK.into_response(),
        Answer::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Answer::NoRetry => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-slack-no-retry", "1")],
        )
            .into_response(),
        Answer::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox {
            echo_challenge: true,
            ..Inbox::default()
        }));
        let app = axum::Router::new()
            .route("/slack/events", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slack/events", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            inbox,
            _task: task,
        }
    }

    fn answer(&self, answer: Answer) {
        self.inbox.lock().unwrap().answer = Some(answer);
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Inner events received, by type, in arrival order.
    fn events(&self, kind: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.body["event"]["type"] == kind)
            .map(|r| r.body["event"].clone())
            .collect()
    }

    /// Waits until `done` holds for what was received (real time, bounded).
    async fn wait(&self, what: &str, done: impl Fn(&[Received]) -> bool) {
        for _ in 0..400 {
            if done(&self.received()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.received());
    }
}

async fn subscribe(slack: &common::Running, settings: Value) -> (u16, String) {
    slack.control_post("events", &settings).await
}

async fn report(slack: &common::Running) -> Value {
    slack.control("events").await
}

/// The small org at time scale 1,000 with its bot's app subscribed to `receiver`.
async fn subscribed(receiver: &Receiver, extra: Value) -> common::Running {
    let slack = common::small(1000.0).await;
    let mut settings =
        json!({"request_url": receiver.url, "signing_secret": SECRET, "verification_token": "vt"});
    for (key, value) in extra.as_object().unwrap() {
        settings[key] = value.clone();
    }
    let (status, text) = subscribe(&slack, settings).await;
    assert_eq!(status, 204, "{text}");
    slack
}

#[tokio::test]
async fn changes_arrive_signed_as_the_bot_sees_them_whoever_makes_them() {
    let receiver = Receiver::start().await;
    let slack = subscribed(&receiver, json!({})).await;

    // Web API: into and out of #eng (the bot is a member), and into #hidden (it is not).
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    slack
        .ok(
            ADMIN,
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000004")],
        )
        .await;
    slack
        .ok(
            ADMIN,
            "admin.conversations.invite",
            &[("channel_id", "C00000005"), ("user_ids", "W00000004")],
        )
        .await;
    // A usergroup's members, twice: the two deltas chain by date_update.
    slack
        .ok(
            BOT,
            "usergroups.users.update",
            &[
                ("usergroup", "S00000001"),
                ("users", "W00000003,W00000004,W00000010"),
                ("team_id", "T0000MAIN"),
            ],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    slack
        .ok(
            BOT,
            "usergroups.users.update",
            &[
                ("usergroup", "S00000001"),
                ("users", "W00000010"),
                ("team_id", "T0000MAIN"),
            ],
        )
        .await;
    // SCIM: a deactivation, which also takes the person out of channels and usergroups.
    let (status, _) = slack
        .scim(
            "PATCH",
            "Users/W00000010",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]
            })),
        )
        .await;
    assert_eq!(status, 200);

    receiver
        .wait("the deltas and the SCIM deactivation's user_change", |r| {
            let count = |kind: &str| r.iter().filter(|r| r.body["event"]["type"] == kind).count();
            count("user_change") == 1 && count("subteam_members_changed") == 3
        })
        .await;
    assert_eq!(receiver.inbox.lock().unwrap().bad_signatures, 0);

    let joined = receiver.events("member_joined_channel");
    assert_eq!(joined.len(), 1, "only #eng, not #hidden: {joined:?}");
    assert_eq!(joined[0]["channel"], "C00000002");
    assert_eq!(joined[0]["user"], "W00000004");
    assert_eq!(joined[0]["channel_type"], "C");
    assert_eq!(joined[0]["inviter"], "W00000002");
    let left = receiver.events("member_left_channel");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["user"], "W00000004");

    // Delivery is concurrent, so arrival order is not emission order.
    let mut deltas = receiver.events("subteam_members_changed");
    deltas.sort_by_key(|d| d["date_update"].as_u64().unwrap());
    assert_eq!(
        deltas.len(),
        3,
        "two updates and the deactivation: {deltas:?}"
    );
    assert_eq!(deltas[0]["added_users"], json!(["W00000010"]));
    assert_eq!(
        deltas[1]["removed_users"],
        json!(["W00000003", "W00000004"])
    );
    assert_eq!(deltas[2]["removed_users"], json!(["W00000010"]));
    for pair in deltas.windows(2) {
        assert_eq!(
            pair[1]["date_previous_update"], pair[0]["date_update"],
            "an unbroken chain"
        );
    }
    assert!(!receiver.events("subteam_updated").is_empty());
    let changed = receiver.events("user_change");
    assert_eq!(changed[0]["user"]["id"], "W00000010");
    assert_eq!(changed[0]["user"]["deleted"], true);

    // Envelopes as Slack sends them.
    let envelope = &receiver.received()[0].body;
    assert_eq!(envelope["type"], "event_callback");
    assert_eq!(envelope["token"], "vt");
    assert_eq!(envelope["api_app_id"], "A0000GITOPS");
    assert_eq!(envelope["team_id"], "T0000MAIN");
    assert_eq!(envelope["enterprise_id"], "E0000TEST");
    assert_eq!(envelope["authorizations"][0]["user_id"], "W00000007");
    let ids: std::collections::BTreeSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.body["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), receiver.received().len(), "event ids are unique");
    slack.stop().await;
}

#[tokio::test]
async fn a_request_url_that_does_not_echo_the_challenge_is_refused() {
    let receiver = Receiver::start().await;
    receiver.inbox.lock().unwrap().echo_challenge = false;
    let slack = common::small(1000.0).await;
    let (status, text) = subscribe(
        &slack,
        json!({"request_url": receiver.url, "signing_secret": SECRET}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("without the challenge"), "{text}");
    assert_eq!(report(&slack).await["subscription"], Value::Null);

    let (status, text) = subscribe(
        &slack,
        json!({"request_url": "http://127.0.0.1:9/nowhere", "signing_secret": SECRET}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("connection_failed"), "{text}");
    slack.stop().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_at_once_after_a_minute_and_after_five_then_dropped() {
    let receiver = Receiver::start().await;
    // Time scale 1,000: the one- and five-minute retries come after 60 and 300 ms.
    let slack = subscribed(&receiver, json!({})).await;
    receiver.answer(Answer::Status(503));
    let started = std::time::Instant::now();
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    receiver.wait("four attempts", |r| r.len() == 4).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(360),
        "retries wait 0, 60 and 300 emulated s: {elapsed:?}"
    );
    let attempts = receiver.received();
    let numbers: Vec<Option<&str>> = attempts.iter().map(|a| a.retry_num.as_deref()).collect();
    assert_eq!(numbers, [None, Some("1"), Some("2"), Some("3")]);
    assert!(
        attempts[1..]
            .iter()
            .all(|a| a.retry_reason.as_deref() == Some("http_error"))
    );
    let event_ids: std::collections::BTreeSet<&str> = attempts
        .iter()
        .map(|a| a.body["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(event_ids.len(), 1, "the same event each time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 4, "no fifth attempt");
    let stats = &report(&slack).await["stats"];
    assert_eq!(stats["gave_up"], 1);
    assert_eq!(stats["failed_attempts"], 4);

    // x-slack-no-retry stops the retries; a slow receiver is a timeout.
    receiver.inbox.lock().unwrap().received.clear();
    receiver.answer(Answer::NoRetry);
    slack
        .ok(
            ADMIN,
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000004")],
        )
        .await;
    receiver.wait("the refused event", |r| r.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "no retry after x-slack-no-retry"
    );

    let (status, _) = subscribe(&slack, json!({"ack_timeout_ms": 100})).await;
    assert_eq!(status, 204);
    receiver.inbox.lock().unwrap().received.clear();
    receiver.answer(Answer::Slow(300));
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    receiver
        .wait("a retry after the timeout", |r| r.len() >= 2)
        .await;
    assert_eq!(
        receiver.received()[1].retry_reason.as_deref(),
        Some("http_timeout")
    );
    slack.stop().await;
}

#[tokio::test]
async fn mostly_failed_deliveries_disable_the_subscription_until_it_is_re_enabled() {
    let receiver = Receiver::start().await;
    let slack = subscribed(&receiver, json!({"disable_min_events": 4})).await;
    receiver.answer(Answer::NoRetry);
    for user in ["W00000004", "W00000010"] {
        slack
            .ok(
                ADMIN,
                "conversations.invite",
                &[("channel", "C00000002"), ("users", user)],
            )
            .await;
        slack
            .ok(
                ADMIN,
                "conversations.kick",
                &[("channel", "C00000002"), ("user", user)],
            )
            .await;
    }
    for _ in 0..200 {
        if report(&slack).await["subscription"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = report(&slack).await;
    assert_eq!(state["subscription"]["enabled"], false, "{state}");
    assert_eq!(state["stats"]["disabled_by_failures"], 1);

    // While disabled nothing is sent; re-enabled, delivery resumes.
    receiver.answer(Answer::Ok);
    let before = receiver.received().len();
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.received().len(), before);
    assert_eq!(report(&slack).await["stats"]["disabled_drops"], 1);
    let (status, _) = subscribe(&slack, json!({"enabled": true})).await;
    assert_eq!(status, 204);
    slack
        .ok(
            ADMIN,
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000004")],
        )
        .await;
    receiver
        .wait("delivery after re-enabling", |r| r.len() == before + 1)
        .await;
    slack.stop().await;
}

#[tokio::test]
async fn over_the_hourly_limit_events_are_dropped_and_app_rate_limited_is_sent() {
    let receiver = Receiver::start().await;
    let slack = subscribed(&receiver, json!({"hourly_limit": 3})).await;
    for _ in 0..3 {
        slack
            .ok(
                ADMIN,
                "conversations.invite",
                &[("channel", "C00000002"), ("users", "W00000004")],
            )
            .await;
        slack
            .ok(
                ADMIN,
                "conversations.kick",
                &[("channel", "C00000002"), ("user", "W00000004")],
            )
            .await;
    }
    receiver
        .wait("three events and a notice", |r| {
            r.iter()
                .filter(|r| r.body["type"] == "event_callback")
                .count()
                == 3
                && r.iter().any(|r| r.body["type"] == "app_rate_limited")
        })
        .await;
    let notice = receiver
        .received()
        .into_iter()
        .find(|r| r.body["type"] == "app_rate_limited")
        .unwrap()
        .body;
    assert_eq!(notice["team_id"], "T0000MAIN");
    assert_eq!(notice["api_app_id"], "A0000GITOPS");
    assert_eq!(notice["minute_rate_limited"].as_u64().unwrap() % 60, 0);
    assert_eq!(report(&slack).await["stats"]["rate_limited"], 3);
    slack.stop().await;
}

async fn event_fault(slack: &common::Running, fault: Value) {
    assert_eq!(slack.control_post("events/faults", &fault).await.0, 204);
}

#[tokio::test]
async fn faults_drop_duplicate_and_reorder_events() {
    let receiver = Receiver::start().await;
    let slack = subscribed(&receiver, json!({})).await;
    event_fault(
        &slack,
        json!({"kind": "drop", "types": ["member_joined_channel"]}),
    )
    .await;
    event_fault(
        &slack,
        json!({"kind": "duplicate", "types": ["member_left_channel"], "count": 1}),
    )
    .await;
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    slack
        .ok(
            ADMIN,
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000004")],
        )
        .await;
    receiver
        .wait("the duplicated leave", |r| r.len() == 2)
        .await;
    assert!(receiver.events("member_joined_channel").is_empty());
    let left: Vec<Received> = receiver.received();
    assert_eq!(
        left[0].body["event_id"], left[1].body["event_id"],
        "the same event twice"
    );
    let stats = report(&slack).await["stats"].clone();
    assert_eq!(stats["dropped_by_fault"], 1);
    assert_eq!(stats["duplicated"], 1);

    // Reordered: every event arrives, not in the order emitted.
    let response = slack
        .http
        .delete(format!("{}/_emulator/events/faults", slack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    event_fault(
        &slack,
        json!({"kind": "reorder", "window_ms": 600000, "seed": 42}),
    )
    .await;
    receiver.inbox.lock().unwrap().received.clear();
    let people = [
        "W00000001",
        "W00000004",
        "W00000005",
        "W00000006",
        "W00000010",
    ];
    for user in people {
        slack
            .ok(
                ADMIN,
                "conversations.invite",
                &[("channel", "C00000002"), ("users", user)],
            )
            .await;
    }
    receiver.wait("five joins", |r| r.len() == 5).await;
    let arrived: Vec<String> = receiver
        .events("member_joined_channel")
        .iter()
        .map(|e| e["user"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = arrived.clone();
    sorted.sort();
    assert_eq!(sorted, people);
    assert_ne!(arrived, people, "a 10 min window at seed 42 reorders them");
    slack.stop().await;
}

#[tokio::test]
async fn events_are_recorded_without_a_request_url_and_private_creations_stay_private() {
    let slack = common::small(1000.0).await;
    let (status, _) = subscribe(&slack, json!({"signing_secret": SECRET})).await;
    assert_eq!(status, 204);
    slack
        .ok(
            BOT,
            "conversations.create",
            &[("name", "open-plan"), ("team_id", "T0000MAIN")],
        )
        .await;
    slack
        .ok(
            BOT,
            "conversations.create",
            &[
                ("name", "quiet-room"),
                ("is_private", "true"),
                ("team_id", "T0000MAIN"),
            ],
        )
        .await;
    let state = report(&slack).await;
    let kinds: Vec<&str> = state["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "channel_created",
            "member_joined_channel",
            "member_joined_channel"
        ],
        "a private channel is seen only as the bot joining it"
    );
    assert!(
        state["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["fate"] == "unsent")
    );
    assert_eq!(state["stats"]["unsent"], 3);
    slack.stop().await;
}

#[tokio::test]
async fn the_time_scale_changes_at_run_time_and_rate_limits_follow() {
    let slack = common::small(1000.0).await;
    let clock = |scale: f64| json!({"time_scale": scale});
    let args = [("team_id", "T0000MAIN")];
    // Tier 2: 20 a minute. At 1,000x the bucket refills in 60 ms.
    for _ in 0..20 {
        slack.ok(ADMIN, "usergroups.list", &args).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    slack.ok(ADMIN, "usergroups.list", &args).await;

    assert_eq!(slack.control_post("clock", &clock(1.0)).await.0, 204);
    assert_eq!(slack.control("clock").await["time_scale"], 1.0);
    for _ in 0..25 {
        let (status, _) = slack.web(ADMIN, "usergroups.list", &args).await;
        if status == 429 {
            // At Slack's real limits 100 ms refills nothing.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (status, _) = slack.web(ADMIN, "usergroups.list", &args).await;
            assert_eq!(status, 429);
            let (status, _) = slack.control_post("clock", &clock(0.0)).await;
            assert_eq!(status, 400, "a scale must be positive");
            slack.stop().await;
            return;
        }
    }
    panic!("the bucket never ran out at time scale 1");
}

async fn audit_response(
    slack: &common::Running,
    token: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    slack
        .http
        .get(format!("{}/audit/v1/logs", slack.base))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap()
}

async fn audit(slack: &common::Running, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = audit_response(slack, token, query).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The small org with an org owner's token that may read the audit logs.
async fn audited(time_scale: f64) -> common::Running {
    let mut seed = common::small_seed();
    seed.tokens.push(slack_emulator::world::Token {
        token: "xoxp-auditor".into(),
        kind: slack_emulator::world::TokenKind::User,
        user: "W00000002".into(),
        app: "A0000SIEM".into(),
        org_level: true,
        workspace: None,
        scopes: vec!["auditlogs:read".into()],
        revoked: false,
    });
    common::start(
        seed,
        slack_emulator::Options {
            time_scale,
            ..slack_emulator::Options::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_audit_logs_api_names_what_changed_newest_first_with_filters_and_pages() {
    let slack = audited(1000.0).await;
    slack
        .ok(
            ADMIN,
            "conversations.invite",
            &[("channel", "C00000002"), ("users", "W00000004")],
        )
        .await;
    slack
        .ok(
            ADMIN,
            "conversations.kick",
            &[("channel", "C00000002"), ("user", "W00000004")],
        )
        .await;
    slack
        .ok(
            BOT,
            "conversations.create",
            &[
                ("name", "quiet-room"),
                ("is_private", "true"),
                ("team_id", "T0000MAIN"),
            ],
        )
        .await;
    slack
        .ok(
            BOT,
            "usergroups.users.update",
            &[
                ("usergroup", "S00000001"),
                ("users", "W00000003,W00000004,W00000010"),
                ("team_id", "T0000MAIN"),
            ],
        )
        .await;

    let (status, body) = audit(&slack, "xoxp-auditor", &[]).await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "usergroup_updated",
            "user_added_to_usergroup",
            "user_channel_join",
            "private_channel_created",
            "user_channel_leave",
            "user_channel_join",
        ],
        "newest first"
    );
    let join = &body["entries"][5];
    assert_eq!(join["actor"]["user"]["id"], "W00000004");
    assert_eq!(join["entity"]["channel"]["id"], "C00000002");
    assert_eq!(join["entity"]["channel"]["privacy"], "public");
    assert_eq!(join["details"]["inviter"], "W00000002");
    assert_eq!(join["context"]["location"]["id"], "T0000MAIN");

    // Filters: action, entity, time; pages by cursor.
    let (_, body) = audit(
        &slack,
        "xoxp-auditor",
        &[
            ("action", "user_channel_join,user_channel_leave"),
            ("entity", "C00000002"),
        ],
    )
    .await;
    assert_eq!(
        body["entries"].as_array().unwrap().len(),
        2,
        "the join and the leave of #eng"
    );
    let (_, body) = audit(&slack, "xoxp-auditor", &[("oldest", "4102444800")]).await;
    assert!(body["entries"].as_array().unwrap().is_empty());
    let (_, first) = audit(&slack, "xoxp-auditor", &[("limit", "4")]).await;
    let cursor = first["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first["entries"].as_array().unwrap().len(), 4);
    let (_, second) = audit(
        &slack,
        "xoxp-auditor",
        &[("limit", "4"), ("cursor", &cursor)],
    )
    .await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 2);
    assert_eq!(second["response_metadata"]["next_cursor"], "");

    // Refusals, as Slack names them.
    assert_eq!(audit(&slack, BOT, &[]).await.1["error"], "missing_scope");
    assert_eq!(
        audit(&slack, "xoxp-nobody", &[]).await.1["error"],
        "invalid_auth"
    );
    assert_eq!(
        audit(&slack, "xoxp-auditor", &[("limit", "10000")]).await.1["error"],
        "invalid_arguments"
    );
    let many = vec!["user_channel_join"; 31].join(",");
    assert_eq!(
        audit(&slack, "xoxp-auditor", &[("action", &many)]).await.1["error"],
        "invalid_arguments"
    );
    let logged = slack.log().await;
    assert!(logged.iter().any(|c| c.call == "audit.logs"));
    slack.stop().await;
}

#[tokio::test]
async fn the_audit_logs_api_allows_fifty_calls_a_minute_for_the_whole_org() {
    let slack = audited(1.0).await;
    for _ in 0..50 {
        assert_eq!(audit(&slack, "xoxp-auditor", &[]).await.0, 200);
    }
    let response = audit_response(&slack, "xoxp-auditor", &[]).await;
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    slack.stop().await;
}
