//! Slack's Socket Mode through the real binaries: the emulator hands out a WebSocket
//! URL for the app-level token and sends its events there; the controller (with
//! `SLACK_APP_TOKEN`, no signing secret, no public URL) keeps them in its mirror and
//! acknowledges each, opens a new connection when Slack refreshes one, and its plans
//! read from the mirror as over HTTP.

use crate::common::controller::Controller;
use crate::common::org::Org;
use crate::common::postgres;

use serde_json::{Value, json};

const APP_TOKEN: &str = "xapp-acme-socket";

/// `apps.connections.open` takes only an app-level token with `connections:write`, and
/// answers a WebSocket URL whose ticket is good for one connection.
#[tokio::test]
async fn only_an_app_token_opens_a_socket_and_a_ticket_works_once() {
    let org = Org::new(|_| {}).await;
    let slack = &org.emulator;
    let error = slack
        .error("xoxb-acme-bot", "apps.connections.open", &[])
        .await;
    assert_eq!(error, "not_allowed_token_type");
    let error = slack.error(APP_TOKEN, "users.list", &[]).await;
    assert_eq!(error, "not_allowed_token_type");
    let body = slack.ok(APP_TOKEN, "apps.connections.open", &[]).await;
    let url = body["url"].as_str().unwrap();
    let expected = format!("{}/link/?ticket=", slack.base.replace("http://", "ws://"));
    assert!(url.starts_with(&expected), "{url}");

    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let hello = socket.next().await.unwrap().unwrap();
    let hello: Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["connection_info"]["app_id"], "A0000GITOPS");
    // The ticket is spent.
    let again = tokio_tungstenite::connect_async(url).await;
    assert!(again.is_err(), "a used ticket opened a second connection");
    let report = slack.control("events").await;
    assert_eq!(report["socket"]["connections"], 1, "{report}");
}

/// Events over Socket Mode, the state in SQLite: see [`through_a_refresh`].
#[tokio::test]
async fn over_socket_mode_the_mirror_stays_healthy_through_a_refresh() {
    let org = Org::new(|_| {}).await;
    socket_mode(&org).await;
    let remote = org.bare_remote();
    let controller = Controller::start_with(&org, &remote, &[("SLACK_APP_TOKEN", APP_TOKEN)]).await;
    through_a_refresh(&org, &controller).await;
}

/// The same with the state (events, mirror, stream) in PostgreSQL.
#[tokio::test]
async fn over_socket_mode_on_postgres_the_mirror_stays_healthy_through_a_refresh() {
    let cluster = postgres::Cluster::start();
    let url = cluster.database("socket");
    let org = Org::new(|_| {}).await;
    socket_mode(&org).await;
    let remote = org.bare_remote();
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[
            ("SLACK_APP_TOKEN", APP_TOKEN),
            ("SLACK_GITOPS_STATE_PASSWORD", postgres::PASSWORD),
        ],
        &[
            "--state",
            &url,
            "--workdir",
            org.temp.path().join("clone").to_str().unwrap(),
        ],
        std::process::Stdio::null(),
    )
    .await;
    through_a_refresh(&org, &controller).await;
}

/// Turns the emulator's subscription to Socket Mode.
async fn socket_mode(org: &Org) {
    let (code, text) = org
        .emulator
        .control_post("events", &json!({"socket_mode": true}))
        .await;
    assert_eq!(code, 204, "{text}");
}

/// Events over Socket Mode: the canary comes back, drift ticks plan from the mirror,
/// Slack's refresh of the connection is followed by a new one, and a change made after
/// it still reaches the mirror. Every event after the first connection went over a
/// socket and none was given up.
async fn through_a_refresh(org: &Org, controller: &Controller) {
    let status = controller
        .wait("connected, and the canary back over the socket", |s| {
            s["mirror"]["socket"]["connected"] == true && s["mirror"]["stream"]["healthy"] == true
        })
        .await;
    assert!(
        status["mirror"]["events_received"].as_u64() >= Some(1),
        "{status:#}"
    );
    let from_mirror = crate::mirror::drift_tick_from_mirror;
    controller
        .wait("a drift tick from the mirror", from_mirror)
        .await;

    // Slack refreshes the connection: a new one opens at once, and no gap is recorded.
    let (code, text) = org
        .emulator
        .control_post("events/socket", &json!({"disconnect": "refresh_requested"}))
        .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["connections"],
        1
    );
    let status = controller
        .wait("a new connection after the refresh", |s| {
            let socket = &s["mirror"]["socket"];
            socket["refreshed"].as_u64() >= Some(1)
                && socket["opened"].as_u64() >= Some(2)
                && socket["connected"] == true
        })
        .await;
    assert_eq!(status["mirror"]["socket"]["lost"], 0, "{status:#}");
    let received = status["mirror"]["events_received"].as_u64().unwrap();

    // A hand-made change after the refresh: its event comes over the new connection and
    // the drift tick reports it from the mirror.
    let extra = not_in_sre(org).await;
    org.add_by_hand("sre", &extra).await;
    let status = controller
        .wait("the drift reported from the mirror", |s| {
            s["last_syncs"][0]["outcome"] == "drift-reported" && from_mirror(s)
        })
        .await;
    assert_eq!(status["drift"]["manual_add"], 1, "{status:#}");
    assert!(status["mirror"]["events_received"].as_u64().unwrap() > received);
    assert!(status["mirror"]["stream"]["healthy"] == true, "{status:#}");

    // Slack's side: nothing was POSTed; events before the first connection failed (no
    // socket to send them to) and none after it was given up.
    let report = org.emulator.control("events").await;
    assert_eq!(report["stats"]["unsent"], 0, "{report:#}");
    assert!(report["socket"]["acked"].as_u64() >= Some(2), "{report:#}");
    assert!(report["socket"]["opened"].as_u64() >= Some(2), "{report:#}");
    let attempts = report["attempts"].as_array().unwrap();
    let connected_at = attempts
        .iter()
        .find(|a| a["outcome"] == "ok")
        .map(|a| a["at"].as_f64().unwrap())
        .unwrap();
    let first_try = |id: &Value| {
        attempts
            .iter()
            .find(|a| a["event_id"] == *id)
            .map(|a| a["at"].as_f64().unwrap())
            .unwrap()
    };
    let given_up: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["retry"] == 3 && a["outcome"] != "ok")
        .filter(|a| first_try(&a["event_id"]) >= connected_at)
        .collect();
    assert!(given_up.is_empty(), "{given_up:?}");
}

/// An envelope not acknowledged in time is sent again (`retry_attempt` 1, reason
/// `timeout`), as over HTTP; once acknowledged it is done.
#[tokio::test]
async fn an_envelope_not_acknowledged_is_sent_again() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let org = Org::new(|_| {}).await;
    let slack = &org.emulator;
    let settings = json!({"socket_mode": true, "ack_timeout_ms": 300});
    let (code, text) = slack.control_post("events", &settings).await;
    assert_eq!(code, 204, "{text}");
    let body = slack.ok(APP_TOKEN, "apps.connections.open", &[]).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(body["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["type"], "hello");
    org.add_by_hand("sre", &not_in_sre(&org).await).await;
    let first = next(&mut socket).await;
    assert_eq!(first["type"], "events_api", "{first}");
    assert_eq!(first["retry_attempt"], 0, "{first}");
    let event_id = first["payload"]["event_id"].as_str().unwrap().to_string();
    let mut acks = Vec::new();
    let retried = loop {
        let envelope = next(&mut socket).await;
        if envelope["payload"]["event_id"] == event_id.as_str() {
            break envelope;
        }
        // Every other event is acknowledged at once.
        acks.push(json!({"envelope_id": envelope["envelope_id"]}).to_string());
        for ack in acks.drain(..) {
            socket.send(Message::Text(ack.into())).await.unwrap();
        }
    };
    assert_eq!(retried["retry_attempt"], 1, "{retried}");
    assert_eq!(retried["retry_reason"], "timeout", "{retried}");
    assert_ne!(retried["envelope_id"], first["envelope_id"]);
    let ack = json!({"envelope_id": retried["envelope_id"]}).to_string();
    socket.send(Message::Text(ack.into())).await.unwrap();
    // The emulator records the ack as the attempt's outcome.
    let outcomes = |report: &Value| -> Vec<String> {
        report["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["event_id"] == event_id.as_str())
            .map(|a| a["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    for _ in 0..100 {
        if outcomes(&slack.control("events").await).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let report = slack.control("events").await;
    assert_eq!(outcomes(&report), ["timeout", "ok"], "{report:#}");
    assert!(report["socket"]["acked"].as_u64() >= Some(1), "{report:#}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message on `socket`, as JSON, within 20 s.
async fn next(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    let message = tokio::time::timeout(std::time::Duration::from_secs(20), socket.next())
        .await
        .expect("a message within 20 s")
        .unwrap()
        .unwrap();
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

/// The email of an active person of acme's main workspace who is not in @sre.
async fn not_in_sre(org: &Org) -> String {
    let world = org.world().await;
    crate::mirror::sre_and_newcomer(&world).1.email.clone()
}

/// A broken or hostile Slack on the socket: frames that are not JSON, nested past any
/// sane depth, envelopes without an id, payloads that are not events or are over the
/// size limit, well-formed events whose fields are nonsense, and a frame over the
/// connection's limit. The receiver counts the broken ones as rejected and acknowledges
/// every envelope it can name (so Slack does not send it forever), drains the odd events
/// without harm, drops the connection only for the oversized frame and opens a new one,
/// and never writes what a frame held into its status or its log. Afterwards a change by
/// hand still arrives and is reported from the mirror.
#[tokio::test]
async fn hostile_frames_on_the_socket_are_rejected_and_the_stream_goes_on() {
    let org = Org::new(|_| {}).await;
    socket_mode(&org).await;
    let remote = org.bare_remote();
    let log = org.temp.path().join("controller.log");
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[("SLACK_APP_TOKEN", APP_TOKEN)],
        &[],
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let before = controller
        .wait("connected, the canary back, nothing waiting", |s| {
            let mirror = &s["mirror"];
            mirror["socket"]["connected"] == true
                && mirror["stream"]["healthy"] == true
                && mirror["pending_events"] == 0
        })
        .await;
    let count = |s: &Value, field: &str| s["mirror"][field].as_u64().unwrap();
    let acknowledged = |s: &Value| s["mirror"]["socket"]["acknowledged"].as_u64().unwrap();

    const MARK: &str = "HOSTILE7f3a";
    let event = |id: &str, inner: Value| {
        json!({
            "type": "events_api",
            "envelope_id": id,
            "payload": {"type": "event_callback", "event_id": id, "event_time": 1, "event": inner},
        })
        .to_string()
    };
    let rejected = [
        format!("not json {MARK}"),
        format!("{}{MARK}{}", "[".repeat(10_000), "]".repeat(10_000)),
        json!([MARK, 1]).to_string(),
        json!({"type": "events_api", "payload": {"type": MARK}}).to_string(),
        json!({"type": "events_api", "envelope_id": "bad-1", "payload": MARK}).to_string(),
        json!({"type": "events_api", "envelope_id": "bad-2",
               "payload": {"type": "url_verification", "challenge": MARK}})
        .to_string(),
        event(
            "bad-3",
            json!({"type": "user_change", "pad": MARK.repeat(6_100)}),
        ),
    ];
    let odd = [
        event(
            "odd-1",
            json!({"type": "subteam_members_changed", "subteam_id": 5,
                   "added_users": MARK, "date_previous_update": "never"}),
        ),
        event(
            "odd-2",
            json!({"type": "member_joined_channel", "channel": {"id": MARK}, "user": []}),
        ),
        event("odd-3", json!({"type": "user_change", "user": null})),
        event("odd-4", json!({"type": MARK, "subteam": {"id": MARK}})),
    ];
    let frames: Vec<&String> = rejected.iter().chain(&odd).collect();
    let (code, text) = org
        .emulator
        .control_post("events/socket", &json!({"send": frames}))
        .await;
    assert_eq!(code, 200, "{text}");
    let after = controller
        .wait("every frame taken, the odd events drained", |s| {
            count(s, "events_rejected") >= count(&before, "events_rejected") + 7
                && count(s, "events_received") >= count(&before, "events_received") + 4
                && s["mirror"]["pending_events"] == 0
        })
        .await;
    let socket = &after["mirror"]["socket"];
    assert_eq!(
        count(&after, "events_rejected"),
        count(&before, "events_rejected") + 7,
        "{after:#}"
    );
    // Named envelopes are acknowledged, broken or not: three of the rejected, the four odd.
    assert!(
        acknowledged(&after) >= acknowledged(&before) + 7,
        "{after:#}"
    );
    assert_eq!(socket["lost"], 0, "{after:#}");
    assert_eq!(socket["connected"], true, "{after:#}");
    assert_eq!(after["mirror"]["stream"]["healthy"], true, "{after:#}");

    // A frame over the connection's limit ends the connection; a new one opens.
    let oversized = format!("{{\"pad\": \"{}\"}}", MARK.repeat(8_000));
    let (code, text) = org
        .emulator
        .control_post("events/socket", &json!({"send": [oversized]}))
        .await;
    assert_eq!(code, 200, "{text}");
    controller
        .wait("a new connection after the oversized frame", |s| {
            let socket = &s["mirror"]["socket"];
            socket["lost"] == 1
                && socket["opened"].as_u64() >= Some(2)
                && socket["connected"] == true
        })
        .await;

    // The stream goes on: a change by hand is reported from the mirror.
    org.add_by_hand("sre", &not_in_sre(&org).await).await;
    let from_mirror = crate::mirror::drift_tick_from_mirror;
    let status = controller
        .wait_up_to(
            "the drift reported from the mirror",
            std::time::Duration::from_secs(120),
            |s| s["last_syncs"][0]["outcome"] == "drift-reported" && from_mirror(s),
        )
        .await;
    assert_eq!(status["drift"]["manual_add"], 1, "{status:#}");
    assert_eq!(status["mirror"]["stream"]["healthy"], true, "{status:#}");
    drop(controller);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(MARK), "a frame's content reached the log");
    assert!(!status.to_string().contains(MARK), "{status:#}");
}
