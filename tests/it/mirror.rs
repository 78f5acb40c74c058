//! The controller's live Slack mirror through the real binaries: the emulator's Events
//! API delivering to `/hooks/slack`, the mirror written from the controller's reads,
//! invalidated by events, a usergroup's delta chain applied in place, and a later read
//! verifying everything again.

use crate::common::controller::Controller;
use crate::common::org::{Org, git};

use serde_json::{Value, json};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

async fn subscribe(org: &Org, url: &str) {
    let settings = json!({"request_url": url, "signing_secret": SIGNING_SECRET});
    let (status, text) = org.emulator.control_post("events", &settings).await;
    assert_eq!(status, 204, "{text}");
}

/// Acme with a drift tick a day: nothing but the refresher (and the gap filler) reads
/// Slack after the first sync.
async fn without_drift_ticks() -> Org {
    let org = Org::new(|_| {}).await;
    org.replace_in(
        "policies/guardrails.yaml",
        &[(
            "drift: { every: 15m, action: report }",
            "drift: { every: 24h, action: report }",
        )],
    );
    crate::common::org::commit(&org.repo, "no drift ticks");
    org
}

/// Acme's @sre, and an active person of its workspace who could join it.
pub fn sre_and_newcomer(
    world: &slack_emulator::world::World,
) -> (
    &slack_emulator::world::Usergroup,
    &slack_emulator::world::User,
) {
    let sre = world
        .usergroups
        .iter()
        .find(|g| g.handle == "sre" && g.workspace == "T0000MAIN")
        .unwrap();
    let newcomer = world
        .users
        .iter()
        .find(|u| {
            u.active
                && !u.bot
                && u.guest.is_none()
                && u.workspaces.contains(&sre.workspace)
                && !sre.users.contains(&u.id)
        })
        .unwrap();
    (sre, newcomer)
}

/// An active person of acme's main workspace who is not in #eng-oncall (C00000005).
fn not_on_call(world: &slack_emulator::world::World) -> &slack_emulator::world::User {
    world
        .users
        .iter()
        .find(|u| {
            u.active
                && !u.bot
                && u.workspaces.contains(&"T0000MAIN".to_string())
                && !world
                    .channels
                    .iter()
                    .any(|c| c.id == "C00000005" && c.members.contains(&u.id))
        })
        .unwrap()
}

/// Someone not in #eng-oncall joins it by hand (an admin invite); gives who.
async fn join_on_call<'w>(
    org: &Org,
    world: &'w slack_emulator::world::World,
) -> &'w slack_emulator::world::User {
    let joiner = not_on_call(world);
    invite_by_hand(org, "C00000005", &joiner.id).await;
    joiner
}

/// An admin invites `user` to `channel`, outside the tool.
async fn invite_by_hand(org: &Org, channel: &str, user: &str) {
    org.emulator
        .ok(
            &org.admin,
            "admin.conversations.invite",
            &[("channel_id", channel), ("user_ids", user)],
        )
        .await;
}

/// A controller on `org` that converged at start, subscribed to Slack's events over
/// HTTP, with its stream healthy (a canary back); and that status.
async fn streaming(org: &Org) -> (Controller, Value) {
    let remote = org.bare_remote();
    let controller =
        Controller::start_with(org, &remote, &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)]).await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    subscribe(org, &format!("{}/hooks/slack", controller.base)).await;
    let status = controller
        .wait("the canary back", |s| {
            s["mirror"]["stream"]["healthy"] == true
        })
        .await;
    (controller, status)
}

/// Whether the last sync was a drift tick that took Slack from the mirror.
pub fn drift_tick_from_mirror(status: &Value) -> bool {
    let last = &status["last_syncs"][0];
    last["trigger"] == "drift"
        && last["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Slack from the mirror"))
}

/// A new commit with no change: the controller syncs, and so reads Slack again.
fn nudge(org: &Org, message: &str) -> String {
    git(&org.repo, &["commit", "-q", "--allow-empty", "-m", message]);
    git(&org.repo, &["push", "-q", "origin", "main"]);
    git(&org.repo, &["rev-parse", "HEAD"])
}

fn mirror(status: &Value) -> &Value {
    &status["mirror"]
}

/// Writes `request` to the controller at `base` and reads the whole answer.
async fn raw_request(base: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Posts a body to `/hooks/slack` signed with `secret` at `timestamp`.
async fn post_signed(
    controller: &Controller,
    body: &Value,
    secret: &str,
    timestamp: i64,
) -> (u16, String) {
    let body = serde_json::to_vec(body).unwrap();
    let signature = slack_emulator::events::delivery::signature(secret, timestamp as u64, &body);
    let response = controller
        .http
        .post(format!("{}/hooks/slack", controller.base))
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn slack_events_invalidate_the_mirror_and_a_read_verifies_it_again() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let controller =
        Controller::start_with(&org, &remote, &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)]).await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    // A second read after the first apply's writes: the mirror holds Slack as it is now.
    let second = nudge(&org, "read again");
    let status = controller
        .wait("the mirror written from the second read", |s| {
            s["commit_in_force"] == second.as_str() && mirror(s)["objects"].as_u64() > Some(300)
        })
        .await;
    assert_eq!(mirror(&status)["stale"], 0, "{status:#}");
    assert!(mirror(&status)["oldest_verified"].is_string());

    // Slack checks the request URL through the controller (url_verification).
    subscribe(&org, &format!("{}/hooks/slack", controller.base)).await;

    // A member added to @sre by hand: subteam_members_changed chains from the mirror's
    // date_update and is applied in place; its subteam_updated agrees.
    let world = org.world().await;
    let (sre, extra) = sre_and_newcomer(&world);
    org.add_by_hand("sre", &extra.email).await;
    // Either the drain applies the delta in place, or a drift tick's read got there
    // first (and the event, received before that read began, changes nothing): either
    // way the mirror's @sre is clean and has them.
    let status = controller
        .wait("the delta drained", |s| {
            mirror(s)["events_drained"].as_u64() >= Some(2) && mirror(s)["pending_events"] == 0
        })
        .await;
    // A read in flight when the event arrived may have missed the change: the row is
    // then stale until the next drift tick's read. Never clean without them.
    let store = slack_gitops::store::Store::open(&org.state).unwrap();
    let started = std::time::Instant::now();
    loop {
        let rows = store.mirror_rows("controller").unwrap();
        let row = rows.iter().find(|r| r.id == sre.id).unwrap();
        let copy: slack_gitops::model::live::LiveUsergroup =
            serde_json::from_str(row.document.as_deref().unwrap()).unwrap();
        let has = copy.members.contains(&extra.id);
        if row.stale_since.is_none() {
            assert!(has, "a clean @sre without the person added: {row:?}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{row:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(mirror(&status)["events_received"].as_u64() >= Some(2));

    // Someone joins #eng-oncall (private; the bot is in it): the channel goes stale.
    let outsider = not_on_call(&world);
    let received = mirror(&controller.status().await)["events_received"]
        .as_u64()
        .unwrap();
    invite_by_hand(&org, "C00000005", &outsider.id).await;
    // Its event marks the channel stale; a drift tick or the refresher reads it again
    // (often before anyone could see it stale): the mirror never holds it clean without
    // the newcomer for long.
    let status = controller
        .wait("the join's event", |s| {
            mirror(s)["events_received"].as_u64() > Some(received)
        })
        .await;
    assert!(mirror(&status)["oldest_verified"].is_string());
    wait_for_row(&org, "C00000005", "#eng-oncall read again", |row| {
        row.stale_since.is_none()
            && row
                .document
                .as_deref()
                .is_some_and(|d| d.contains(&format!("\"{}\"", outsider.id)))
    })
    .await;

    // Slack's retries and duplicates are taken once.
    let fault = json!({"kind": "duplicate"});
    assert_eq!(
        org.emulator.control_post("events/faults", &fault).await.0,
        204
    );
    invite_by_hand(&org, "C00000007", &outsider.id).await;
    controller
        .wait("a duplicate recognised", |s| {
            mirror(s)["events_deduplicated"].as_u64() >= Some(1)
        })
        .await;

    // Forged, replayed and malformed deliveries are refused and change nothing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged = json!({"type": "event_callback", "event_id": "EvFORGED", "event_time": now,
        "event": {"type": "member_left_channel", "channel": "C00000011", "user": "W00000001"}});
    assert_eq!(
        post_signed(&controller, &forged, "not-the-secret", now)
            .await
            .0,
        401
    );
    assert_eq!(
        post_signed(&controller, &forged, SIGNING_SECRET, now - 600)
            .await
            .0,
        401,
        "a replay"
    );
    let malformed = json!({"type": "event_callback", "event_id": "Ev 1", "event_time": now, "event": {"type": "x"}});
    let (status, text) = post_signed(&controller, &malformed, SIGNING_SECRET, now).await;
    assert_eq!(status, 400);
    assert!(!text.contains("Ev 1"), "errors never echo the body: {text}");
    // A body over 64 KiB is refused from its Content-Length, before it is read (the
    // request is written by hand: a client still sending would see the connection close).
    let head = format!(
        "POST /hooks/slack HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        70 * 1024
    );
    let answer = raw_request(&controller.base, head.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "an event body is at most 64 KiB: {answer}"
    );
    let (status, text) = post_signed(
        &controller,
        &json!({"type": "url_verification", "challenge": "abc"}),
        SIGNING_SECRET,
        now,
    )
    .await;
    assert_eq!((status, text.as_str()), (200, r#"{"challenge":"abc"}"#));
    let status = controller.status().await;
    assert!(
        mirror(&status)["events_rejected"].as_u64() >= Some(3),
        "{status:#}"
    );

    // The next sync reads, and puts the hand-made changes right (its writes are events
    // again); the one after reads a converged Slack and verifies everything.
    let third = nudge(&org, "read once more");
    controller
        .wait("the third sync", |s| s["commit_in_force"] == third.as_str())
        .await;
    let fourth = nudge(&org, "and once more");
    let status = controller
        .wait("the mirror verified again", |s| {
            // A canary may be on its way into the store at any moment: waited out.
            s["commit_in_force"] == fourth.as_str()
                && mirror(s)["stale"] == 0
                && mirror(s)["pending_events"] == 0
        })
        .await;
    assert_eq!(mirror(&status)["pending_events"], 0);
    let (code, metrics) = controller.admin_get("/metrics").await;
    assert_eq!(code, 200);
    let sample = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(sample("slack_gitops_mirror_objects") > 300);
    assert!(sample("slack_gitops_mirror_events_total{kind=\"drained\"}") >= 5);
    // Canaries keep coming: one may be waiting when the metrics are read.
    assert!(sample("slack_gitops_mirror_pending_events") <= 2);
}

/// The mirror row of `id`, once it is clean and `done` holds for its copy (20 s at most).
async fn wait_for_row(
    org: &Org,
    id: &str,
    what: &str,
    done: impl Fn(&slack_gitops::store::MirrorRow) -> bool,
) -> slack_gitops::store::MirrorRow {
    let store = slack_gitops::store::Store::open(&org.state).unwrap();
    let started = std::time::Instant::now();
    loop {
        let rows = store.mirror_rows("controller").unwrap();
        if let Some(row) = rows.iter().find(|r| r.id == id && done(r)) {
            return row.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{what} did not happen: {:?}",
            rows.iter().find(|r| r.id == id)
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn with_every_event_lost_the_refresher_still_brings_the_mirror_up_to_date() {
    // No drift ticks: only the refresher reads Slack after the first sync.
    let org = without_drift_ticks().await;
    let remote = org.bare_remote();
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)],
        &["--mirror-refresh-per-minute", "600"],
        std::process::Stdio::null(),
    )
    .await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    // Every event is lost from the first: the fault is in place before the subscription.
    let fault = json!({"kind": "drop"});
    assert_eq!(
        org.emulator.control_post("events/faults", &fault).await.0,
        204
    );
    subscribe(&org, &format!("{}/hooks/slack", controller.base)).await;

    // Changes nobody hears of: someone joins #eng-oncall, someone is added to @sre.
    let world = org.world().await;
    let joiner = join_on_call(&org, &world).await;
    let (sre, extra) = sre_and_newcomer(&world);
    org.add_by_hand("sre", &extra.email).await;

    let has = |row: &slack_gitops::store::MirrorRow, person: &str| {
        row.stale_since.is_none()
            && row
                .document
                .as_deref()
                .is_some_and(|d| d.contains(&format!("\"{person}\"")))
    };
    wait_for_row(&org, "C00000005", "#eng-oncall re-read", |r| {
        has(r, &joiner.id)
    })
    .await;
    wait_for_row(&org, &sre.id, "@sre re-read", |r| has(r, &extra.id)).await;
    let status = controller.status().await;
    assert_eq!(mirror(&status)["events_received"], 0, "{status:#}");
    assert_eq!(mirror(&status)["stream"]["healthy"], false, "{status:#}");
    assert!(mirror(&status)["refreshed"].as_u64() >= Some(2));
    assert_eq!(
        status["last_syncs"].as_array().unwrap().len(),
        1,
        "no other sync read Slack"
    );
}

#[tokio::test]
async fn drift_ticks_plan_from_the_mirror_and_read_live_only_what_drifted() {
    let org = Org::new(|_| {}).await;
    let (controller, status) = streaming(&org).await;
    let stream = &mirror(&status)["stream"];
    assert!(stream["canaries_back"].as_u64() >= Some(1), "{stream}");
    assert!(stream["watermark"].is_string(), "{stream}");
    let from_mirror =
        |s: &Value| drift_tick_from_mirror(s) && s["last_syncs"][0]["outcome"] == "no-change";
    controller
        .wait("a drift tick from the mirror", from_mirror)
        .await;

    // Ticks without drift list no channels and no people.
    org.emulator.clear_log().await;
    let ticks = |s: &Value| s["last_syncs"].as_array().unwrap().len();
    let before = ticks(&controller.status().await);
    controller
        .wait("two more drift ticks", |s| {
            ticks(s) >= before + 2 && from_mirror(s)
        })
        .await;
    assert!(costly(&org.emulator.log().await).is_empty());

    // A hand-made change: its event makes @sre stale, the tick reads it live, and the
    // drift it shows is read live once more before it is reported; nothing else is.
    let world = org.world().await;
    let (_, extra) = sre_and_newcomer(&world);
    org.add_by_hand("sre", &extra.email).await;
    let status = controller
        .wait("the drift reported", |s| {
            s["last_syncs"][0]["outcome"] == "drift-reported"
        })
        .await;
    assert_eq!(status["drift"]["manual_add"], 1, "{status:#}");
    let detail = status["last_syncs"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("Slack from the mirror"), "{detail}");
    let calls = org.emulator.log().await;
    assert!(costly(&calls).is_empty(), "{:?}", costly(&calls));
    assert!(calls.iter().any(|c| c.call == "usergroups.list"));
}

#[tokio::test]
async fn a_change_by_hand_is_reported_from_its_event_without_waiting_for_a_drift_tick() {
    let org = without_drift_ticks().await;
    let (controller, _) = streaming(&org).await;
    let syncs = controller.status().await["last_syncs"].clone();

    org.emulator.clear_log().await;
    let world = org.world().await;
    let (_, extra) = sre_and_newcomer(&world);
    org.add_by_hand("sre", &extra.email).await;
    let status = controller
        .wait("the drift reported", |s| {
            s["last_syncs"][0]["outcome"] == "drift-reported"
        })
        .await;
    let last = &status["last_syncs"][0];
    assert_eq!(last["trigger"], "slack-event", "{status:#}");
    assert_eq!(status["drift"]["manual_add"], 1, "{status:#}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("Slack from the mirror")
    );
    // Checks of our own writes coming back found nothing and were not recorded.
    let earlier = status["last_syncs"].as_array().unwrap()[1..].to_vec();
    assert_eq!(earlier, syncs.as_array().unwrap()[..earlier.len()].to_vec());
    // Read from the mirror: @sre read live, nothing listed in full.
    let calls = org.emulator.log().await;
    assert!(costly(&calls).is_empty(), "{:?}", costly(&calls));
    assert!(calls.iter().any(|c| c.call == "usergroups.list"));
    let world = org.world().await;
    let (sre, _) = sre_and_newcomer(&world);
    assert!(sre.users.contains(&extra.id), "reported, not corrected");
}

/// The listings a full read of Slack always makes and a read from the mirror never does.
/// (`conversations.members` is not one of them: the refresher re-reads managed channels
/// with their members all along.)
fn costly(calls: &[slack_emulator::CallRecord]) -> Vec<&str> {
    calls
        .iter()
        .map(|c| c.call.as_str())
        .filter(|c| matches!(*c, "conversations.list" | "admin.users.list"))
        .collect()
}

#[tokio::test]
async fn a_canary_that_does_not_come_back_freezes_the_stream_and_reads_go_in_full() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let controller =
        Controller::start_with(&org, &remote, &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)]).await;
    let status = controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    let untrusted = mirror(&status)["stream"]["untrusted"].as_str().unwrap();
    assert!(untrusted.contains("canary"), "{untrusted}");
    subscribe(&org, &format!("{}/hooks/slack", controller.base)).await;
    controller
        .wait("the canary back", |s| {
            s["mirror"]["stream"]["healthy"] == true
        })
        .await;
    let read = |s: &Value, from_mirror: bool| {
        s["last_syncs"][0]["trigger"] == "drift"
            && s["last_syncs"][0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Slack from the mirror") == from_mirror)
    };
    controller
        .wait("a drift tick from the mirror", |s| read(s, true))
        .await;

    // Slack stops delivering: the next canary does not come back.
    let fault = json!({"kind": "drop"});
    assert_eq!(
        org.emulator.control_post("events/faults", &fault).await.0,
        204
    );
    let status = controller
        .wait("the stream frozen", |s| {
            s["mirror"]["stream"]["healthy"] == false
        })
        .await;
    let untrusted = mirror(&status)["stream"]["untrusted"].as_str().unwrap();
    assert!(untrusted.contains("has not come back"), "{untrusted}");
    controller
        .wait("a drift tick reading Slack in full", |s| read(s, false))
        .await;
    let (_, metrics) = controller.get("/metrics").await;
    assert!(
        metrics.contains("slack_gitops_mirror_stream_healthy 0"),
        "{metrics}"
    );

    // Delivery resumes: the stream is healthy again after a gap, and copies verified
    // before the gap were read again before the mirror served a tick.
    assert_eq!(
        org.emulator
            .http
            .delete(format!("{}/_emulator/events/faults", org.emulator.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let status = controller
        .wait("healthy again after a gap", |s| {
            s["mirror"]["stream"]["healthy"] == true && s["mirror"]["stream"]["gap"].is_string()
        })
        .await;
    let gap = mirror(&status)["stream"]["gap"]
        .as_str()
        .unwrap()
        .to_string();
    let status = controller
        .wait("a drift tick from the mirror again", |s| read(s, true))
        .await;
    let oldest = mirror(&status)["oldest_verified"].as_str().unwrap();
    assert!(oldest >= gap.as_str(), "{oldest} < {gap}");
}

#[tokio::test]
async fn the_bot_joins_the_managed_public_channels_and_names_those_it_cannot() {
    // With `channels:join` the bot joins; acme's own bot lacks it.
    let org = Org::new(|world| {
        for token in world
            .tokens
            .iter_mut()
            .filter(|t| t.token == "xoxb-acme-bot")
        {
            token.scopes.push("channels:join".into());
        }
    })
    .await;
    let remote = org.bare_remote();
    let controller = Controller::start(&org, &remote).await;
    let bot = "W00000292";
    let started = std::time::Instant::now();
    loop {
        let world = org.world().await;
        let helpdesk = world
            .channels
            .iter()
            .find(|c| c.name == "it-helpdesk")
            .unwrap();
        if helpdesk.members.iter().any(|m| m == bot) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the bot never joined #it-helpdesk"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let status = controller
        .wait("the bot's memberships checked", |s| {
            mirror(s)["bot_joined"].as_u64() >= Some(1) && mirror(s)["bot_missing"].is_array()
        })
        .await;
    let missing = mirror(&status)["bot_missing"].as_array().unwrap().clone();
    assert!(
        missing
            .iter()
            .all(|m| m.as_str().unwrap().contains("private: invite the bot")),
        "{missing:?}"
    );

    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let controller = Controller::start(&org, &remote).await;
    let status = controller
        .wait("the bot's memberships checked", |s| {
            mirror(s)["bot_missing"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        })
        .await;
    let missing = mirror(&status)["bot_missing"].to_string();
    assert!(
        missing.contains("#it-helpdesk") && missing.contains("channels:join"),
        "{missing}"
    );
    assert_eq!(mirror(&status)["bot_joined"], 0);
}

/// `app_rate_limited` during a big apply: Slack drops the apply's own events above the
/// subscription's hourly limit and says so; the controller records a gap, and the
/// mirror ends correct: after the next sync, no clean copy verified since the gap
/// differs from Slack, copies from before it are not trusted, and that sync (reading
/// live what it cannot trust) finds nothing left to do.
#[tokio::test]
async fn app_rate_limited_during_a_big_apply_leaves_the_mirror_correct() {
    let listen = format!("127.0.0.1:{}", crate::common::postgres::free_port());
    let url = format!("http://{listen}/hooks/slack");
    // The subscription is in the seed, so the first sync (45 actions, over a hundred
    // channel invites) is heard, and its events pass the limit of 20 an hour at once.
    let org = Org::new(|world| {
        world.events = Some(slack_emulator::events::Subscription {
            request_url: Some(url),
            signing_secret: SIGNING_SECRET.into(),
            hourly_limit: 20,
            ..Default::default()
        });
    })
    .await;
    let remote = org.bare_remote();
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)],
        &["--listen", &listen],
        std::process::Stdio::null(),
    )
    .await;
    let status = controller
        .wait("the big apply, and Slack's notice taken as a gap", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
                && mirror(s)["rate_limited_minutes"].as_u64() >= Some(1)
                && mirror(s)["last_gap"].is_string()
        })
        .await;
    assert!(
        status["last_syncs"][0]["actions"].as_u64() >= Some(40),
        "{status:#}"
    );
    let report = org.emulator.control("events").await;
    assert!(
        report["stats"]["rate_limited"].as_u64() > Some(0),
        "{report:#}"
    );
    assert!(report["stats"]["notices"].as_u64() >= Some(1), "{report:#}");

    // The limit's hour passes (3.6 s at this time scale); the canary comes back.
    controller
        .wait("the stream healthy again", |s| {
            mirror(s)["stream"]["healthy"] == true
        })
        .await;
    let store = slack_gitops::store::Store::open(&org.state).unwrap();
    let gap = store.slack_stream("controller").unwrap().gap_at.unwrap();
    let next = nudge(&org, "after the gap");
    let status = controller
        .wait("the sync after the gap", |s| {
            s["commit_in_force"] == next.as_str() && s["last_syncs"][0]["commit"] == next.as_str()
        })
        .await;
    assert_eq!(status["last_syncs"][0]["actions"], 0, "{status:#}");
    let detail = status["last_syncs"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("no changes"), "{detail}");
    assert!(
        status["drift"].as_object().unwrap().is_empty(),
        "{status:#}"
    );

    // Every clean copy verified since the gap is Slack as it is.
    let world = org.world().await;
    let rows = store.mirror_rows("controller").unwrap();
    let mut checked = 0;
    for row in &rows {
        let trusted = row.stale_since.is_none() && row.verified_at.is_some_and(|at| at >= gap);
        let Some(document) = row.document.as_deref().filter(|_| trusted) else {
            continue;
        };
        let copy: Value = serde_json::from_str(document).unwrap();
        let members = |value: &Value| -> Vec<String> {
            let mut ids: Vec<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            ids.sort();
            ids
        };
        if let Some(channel) = world.channels.iter().find(|c| c.id == row.id) {
            if copy["members"].is_array() {
                let mut truth = channel.members.clone();
                truth.sort();
                assert_eq!(members(&copy["members"]), truth, "#{}", channel.name);
                checked += 1;
            }
        } else if let Some(group) = world.usergroups.iter().find(|g| g.id == row.id) {
            let mut truth = group.users.clone();
            truth.sort();
            assert_eq!(members(&copy["members"]), truth, "@{}", group.handle);
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} copies verified since the gap"
    );
}

/// A gap filled from the Audit Logs (Grid, `SLACK_AUDIT_TOKEN`): events are lost while
/// someone joins #eng-oncall by hand, the canary stops and comes back (a gap), and the
/// controller reads the logs from the watermark the gap began at: #eng-oncall is marked
/// stale, the gap is forgotten, and every other copy is trusted again.
#[tokio::test]
async fn a_gap_is_filled_from_the_audit_logs_and_only_what_changed_is_stale() {
    let org = without_drift_ticks().await;
    let remote = org.bare_remote();
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("SLACK_AUDIT_TOKEN", "xoxp-acme-audit"),
        ],
        // The refresher all but stopped: only the gap filler marks what changed.
        &["--mirror-refresh-per-minute", "0.001"],
        std::process::Stdio::null(),
    )
    .await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    subscribe(&org, &format!("{}/hooks/slack", controller.base)).await;
    // A canary sent before the subscription never comes back: that first gap has no
    // start in Slack's clock and cannot be filled, so a sync after it (recorded once a
    // canary is back) re-reads what it taints.
    controller
        .wait("a canary back", |s| mirror(s)["stream"]["healthy"] == true)
        .await;
    let second = nudge(&org, "read after the subscription");
    controller
        .wait("the second sync", |s| {
            s["commit_in_force"] == second.as_str()
        })
        .await;
    // Three canaries back: the watermark is well past the first sync's writes (a
    // canary a second is 1,000 emulated seconds here, more than the logs' margin).
    controller
        .wait("three canaries back", |s| {
            mirror(s)["stream"]["healthy"] == true
                && mirror(s)["stream"]["canaries_back"].as_u64() >= Some(3)
        })
        .await;

    // Every event lost while someone joins #eng-oncall by hand: the canary stops too.
    let fault = json!({"kind": "drop"});
    assert_eq!(
        org.emulator.control_post("events/faults", &fault).await.0,
        204
    );
    let world = org.world().await;
    join_on_call(&org, &world).await;
    controller
        .wait("the stream frozen", |s| {
            mirror(s)["stream"]["healthy"] == false
        })
        .await;
    let cleared = org
        .emulator
        .http
        .delete(format!("{}/_emulator/events/faults", org.emulator.base))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());

    // The canary comes back: a gap, filled from the Audit Logs.
    // The fill waits for a canary sent after the gap; on a loaded machine at this time
    // scale (a canary a second, 5 s of grace) the stream may freeze again first, and
    // every freeze is a newer gap to wait past.
    let status = controller
        .wait_up_to("the gap filled", std::time::Duration::from_secs(180), |s| {
            mirror(s)["gap_fill"]["filled"].as_u64() >= Some(1)
                && mirror(s)["stream"]["healthy"] == true
                && mirror(s)["stream"]["gap"].is_null()
        })
        .await;
    let fill = &mirror(&status)["gap_fill"];
    assert!(fill["error"].is_null(), "{fill}");
    let marked = fill["marked"].as_u64().unwrap();
    // #eng-oncall, and the canary's own usergroup: nothing else changed.
    assert!((1..=3).contains(&marked), "{fill}");

    let store = slack_gitops::store::Store::open(&org.state).unwrap();
    let rows = store.mirror_rows("controller").unwrap();
    let on_call = rows.iter().find(|r| r.id == "C00000005").unwrap();
    assert!(on_call.stale_since.is_some(), "{on_call:?}");
    let clean_channels = rows
        .iter()
        .filter(|r| r.id.starts_with('C') && r.id != "C00000005")
        .filter(|r| r.stale_since.is_none() && r.verified_at.is_some())
        .count();
    assert!(
        clean_channels >= 5,
        "only {clean_channels} channels trusted"
    );
    assert!(store.slack_stream("controller").unwrap().gap_at.is_none());
}
