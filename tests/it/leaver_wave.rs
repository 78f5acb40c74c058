//! A wave of leavers (a layoff) signed out with `admin.users.session.resetBulk`, through
//! the real binary against the emulator: one person alone first (the canary), then the
//! rest in one bulk call, each read back with `admin.users.session.list` because Slack's
//! bulk reset is a job that `ok` only enqueues. Under faults the bulk call's outcome is
//! read back before anything is sent again, and whoever it missed is signed out one at a
//! time.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::org::{Org, applied_writes};

/// People of Acme marked suspended in the IdP by the test (besides Acme's own three
/// leavers), none of them protected.
const WAVE: usize = 40;

/// Acme with `WAVE` more people suspended in the IdP and limits that allow the layoff,
/// merged. Returns the org and every leaver's email.
async fn layoff() -> (Org, BTreeSet<String>) {
    let org = Org::new(|_| {}).await;
    let active: BTreeSet<String> = org
        .world()
        .await
        .users
        .into_iter()
        .filter(|u| u.active)
        .map(|u| u.email)
        .collect();
    let path = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut suspended = 0;
    // Acme's own leavers: two suspended in the IdP, one account the IdP does not know.
    let mut leavers: BTreeSet<String> = [
        "brian.hopper@acme.example",
        "evelyn.gosling@acme.example",
        "old.contractor@contractors.acme.example",
    ]
    .map(String::from)
    .into();
    let mut email = String::new();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("  - email: ") {
            email = e.to_string();
        }
        let protected = email.starts_with("breakglass") || email.starts_with("slack-gitops");
        let protected = protected || !active.contains(&email);
        if line == "    status: active" && suspended < WAVE && !protected {
            suspended += 1;
            leavers.insert(email.clone());
            out.push_str("    status: suspended\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
    org.replace_in(
        "policies/guardrails.yaml",
        &[
            (
                "deactivate: { max: 10, max_percent: 2 }",
                "deactivate: { max: 100, max_percent: 20 }",
            ),
            (
                "remove_from_usergroup: { max: 200, max_percent: 25 }",
                "remove_from_usergroup: { max: 400, max_percent: 50 }",
            ),
            (
                "remove_from_channel: { max: 200 }",
                "remove_from_channel: { max: 400 }",
            ),
        ],
    );
    org.merge("A layoff");
    (org, leavers)
}

/// Everyone with an active session, by Slack's own listing.
async fn signed_in(org: &Org) -> BTreeSet<String> {
    let body = org
        .emulator
        .ok(&org.admin, "admin.users.session.list", &[("limit", "1000")])
        .await;
    assert_eq!(body["response_metadata"]["next_cursor"], "", "{body}");
    body["active_sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap().to_string())
        .collect()
}

/// Applies and checks the outcome every test expects: each leaver deactivated and with
/// no session, everyone else still signed in, every sign-out `done`.
async fn apply_and_check(org: &Org, leavers: &BTreeSet<String>) -> Vec<Value> {
    let before = signed_in(org).await;
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--format", "json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let sign_outs: Vec<&Value> = report["execution"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key"].as_str().unwrap().starts_with("reset-sessions "))
        .collect();
    assert_eq!(sign_outs.len(), leavers.len(), "{out}");
    assert!(sign_outs.iter().all(|r| r["outcome"] == "done"), "{out}");

    let world = org.world().await;
    let ids: BTreeSet<String> = world
        .users
        .iter()
        .filter(|u| leavers.contains(&u.email))
        .inspect(|u| assert!(!u.active, "{} is still active", u.email))
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(ids.len(), leavers.len());
    let after = signed_in(org).await;
    assert!(after.is_disjoint(&ids), "leavers still signed in");
    // Everyone else signed in before still is (the run's joiners have sessions too).
    let lost: Vec<&String> = before
        .iter()
        .filter(|id| !ids.contains(*id) && !after.contains(*id))
        .collect();
    assert!(lost.is_empty(), "signed out though not leaving: {lost:?}");
    org.calls().await
}

fn count(calls: &[Value], name: &str) -> usize {
    calls.iter().filter(|c| c["call"] == name).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layoff_is_signed_out_with_one_bulk_call_after_one_alone() {
    let (org, leavers) = layoff().await;
    assert_eq!(leavers.len(), WAVE + 3);
    let calls = apply_and_check(&org, &leavers).await;
    let writes = applied_writes(&calls);
    assert_eq!(writes["admin.users.session.reset"], 1, "{writes:?}");
    assert_eq!(writes["admin.users.session.resetBulk"], 1, "{writes:?}");
    // The read-back: the job is given a few seconds, then one listing per person and
    // workspace or one org-wide listing, whichever is fewer calls (here the org's).
    let lists = count(&calls, "admin.users.session.list");
    assert!((1..=4).contains(&lists), "{lists} session listings");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_call_whose_answer_is_lost_is_read_back_not_sent_again() {
    let (org, leavers) = layoff().await;
    // The job is enqueued, then the connection breaks: the read-back finds everyone
    // signed out once the job has run.
    org.emulator
        .fault(json!({"kind": "reset", "target": "admin.users.session.resetBulk", "count": 1}))
        .await;
    let calls = apply_and_check(&org, &leavers).await;
    let writes = applied_writes(&calls);
    assert_eq!(writes["admin.users.session.resetBulk"], 1, "{writes:?}");
    assert_eq!(count(&calls, "admin.users.session.resetBulk"), 1);
    assert_eq!(writes["admin.users.session.reset"], 1, "{writes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_call_that_fails_is_read_back_then_sent_again() {
    let (org, leavers) = layoff().await;
    // A 503 means nothing was enqueued: the read-back shows everyone still signed in,
    // so the bulk call is sent once more.
    org.emulator
        .fault(json!({"kind": "status", "status": 503, "target": "admin.users.session.resetBulk", "count": 1}))
        .await;
    let calls = apply_and_check(&org, &leavers).await;
    assert_eq!(count(&calls, "admin.users.session.resetBulk"), 2);
    let writes = applied_writes(&calls);
    assert_eq!(writes["admin.users.session.resetBulk"], 1, "{writes:?}");
    assert_eq!(writes["admin.users.session.reset"], 1, "{writes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_bulk_call_falls_back_to_one_person_at_a_time() {
    let (org, leavers) = layoff().await;
    // Refused outright (and again under a 429 storm for the one-person calls): every
    // leaver is still signed out, one call each, and nobody else is.
    org.emulator
        .fault(json!({"kind": "status", "status": 400, "target": "admin.users.session.resetBulk"}))
        .await;
    org.emulator
        .fault(json!({"kind": "rate_limit", "retry_after": 2, "target": "admin.users.session.reset", "count": 5}))
        .await;
    let calls = apply_and_check(&org, &leavers).await;
    let writes = applied_writes(&calls);
    assert!(
        !writes.contains_key("admin.users.session.resetBulk"),
        "{writes:?}"
    );
    assert_eq!(
        writes["admin.users.session.reset"],
        leavers.len(),
        "{writes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_the_bulk_job_is_read_back_then_apply_again_signs_nobody_out_twice() {
    let (org, leavers) = layoff().await;
    // The read-back is slow, so the run is killed after the bulk call and before any
    // sign-out's outcome is journalled.
    org.emulator
        .fault(json!({"kind": "latency", "ms": 300_000, "target": "admin.users.session.list"}))
        .await;
    let mut child = org.spawn(&["apply", org.repo_arg()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(&org.calls().await, "admin.users.session.resetBulk") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no bulk call was sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    assert!(!child.wait().await.unwrap().success());
    org.clear_faults().await;

    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{out}");
    let id = crate::common::org::lock_id(&out);
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--force-unlock", &id])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Run 1 was interrupted"), "{out}");
    let world = org.world().await;
    let ids: BTreeSet<String> = world
        .users
        .iter()
        .filter(|u| leavers.contains(&u.email) && !u.active)
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(ids.len(), leavers.len());
    assert!(
        signed_in(&org).await.is_disjoint(&ids),
        "leavers still signed in"
    );
    // The second run read the sessions back and found the job done: no sign-out was
    // sent again.
    let writes = applied_writes(&org.calls().await);
    assert_eq!(writes["admin.users.session.resetBulk"], 1, "{writes:?}");
    assert_eq!(writes["admin.users.session.reset"], 1, "{writes:?}");
}
