//! The state store's suite, run on both engines: an SQLite file in a temp dir and a
//! throwaway PostgreSQL cluster (one database per case). Each case gets a way to open
//! more handles on the same store: two handles are two processes, as two controller
//! replicas are.

use crate::common::postgres;

use slack_gitops::policy::IdentityCounts;
use slack_gitops::store::{
    AuditEvent, Fence, KeptIdentity, LeaverStep, NewRun, RunOutcome, Store, StoreError,
};

type Open<'a> = &'a dyn Fn() -> Store;
type Case = fn(Open);

fn new_run<'a>(org: &'a str, started_at: i64) -> NewRun<'a> {
    NewRun {
        org,
        kind: "apply",
        commit: Some("abc123"),
        plan_hash: "hash",
        approvals: "[]",
        started_at,
        resumes: None,
    }
}

fn runs_and_the_journal(open: Open) {
    let store = open();
    let run = store.begin_run(&new_run("acme", 1_000)).unwrap();
    let other = store.begin_run(&new_run("globex", 1_001)).unwrap();
    assert_ne!(run, other);
    store.intent(run, 0, "a", "{\"a\":1}", 1_010).unwrap();
    store.intent(run, 1, "b", "{}", 1_020).unwrap();
    // The same intent again (a retried write) is still one row.
    store.intent(run, 1, "b", "{}", 1_021).unwrap();
    store.outcome(run, 0, "done", "", "U1,U2", 1_030).unwrap();
    let journal = open().journal(run).unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(
        (journal[0].key.as_str(), journal[0].outcome.as_deref()),
        ("a", Some("done"))
    );
    assert_eq!(journal[0].slack_ids.as_deref(), Some("U1,U2"));
    assert_eq!(journal[0].outcome_at, Some(1_030));
    assert_eq!(
        (journal[1].outcome.clone(), journal[1].intent_at),
        (None, 1_020)
    );
    assert_eq!(journal[1].generation, None);
    let unfinished = store.unfinished_runs("acme").unwrap();
    assert_eq!(unfinished.iter().map(|r| r.id).collect::<Vec<_>>(), [run]);
    store
        .end_run(run, RunOutcome::Converged, "{\"done\":1}", 2_000)
        .unwrap();
    assert!(store.unfinished_runs("acme").unwrap().is_empty());
    let recorded = store.run(run).unwrap().unwrap();
    assert_eq!(
        (
            recorded.outcome.as_str(),
            recorded.ended_at,
            recorded.commit.as_deref()
        ),
        ("converged", Some(2_000), Some("abc123"))
    );
    assert_eq!(store.runs("acme").unwrap().len(), 1);
    assert!(store.run(9_999).unwrap().is_none());
}

fn the_org_lock(open: Open) {
    let (first, second) = (open(), open());
    assert_eq!(first.lock("acme", "1-1", "ci (pid 1)", 10).unwrap(), Ok(()));
    let held = second
        .lock("acme", "2-2", "laptop (pid 2)", 20)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (held.id.as_str(), held.holder.as_str(), held.since),
        ("1-1", "ci (pid 1)", 10)
    );
    // Another org is another lock.
    assert_eq!(second.lock("globex", "2-2", "laptop", 20).unwrap(), Ok(()));
    let locks = second.locks().unwrap();
    assert_eq!(
        locks
            .iter()
            .map(|(org, l)| (org.as_str(), l.id.as_str()))
            .collect::<Vec<_>>(),
        [("acme", "1-1"), ("globex", "2-2")]
    );
    // Unlocking someone else's lock does nothing; breaking it by id does.
    second.unlock("acme", "2-2").unwrap();
    assert!(second.lock("acme", "2-2", "laptop", 30).unwrap().is_err());
    assert!(second.force_unlock("acme", "1-1").unwrap());
    assert!(!second.force_unlock("acme", "1-1").unwrap());
    assert_eq!(second.lock("acme", "2-2", "laptop", 40).unwrap(), Ok(()));
}

fn snapshots_and_the_audit_trail(open: Open) {
    let store = open();
    let run = store.begin_run(&new_run("acme", 1)).unwrap();
    let other = store.begin_run(&new_run("globex", 2)).unwrap();
    let document = "{\"live\":\"ü — \\\"quoted\\\"\"}".repeat(1_000);
    store.save_snapshot(run, 5, &document).unwrap();
    assert_eq!(
        open().snapshot(run).unwrap().as_deref(),
        Some(document.as_str())
    );
    assert!(store.snapshot(other).unwrap().is_none());
    let event = |email: &str, change: &str| AuditEvent {
        at: 7,
        email: email.into(),
        user_id: Some("U1".into()),
        entitlement: "T1/#general".into(),
        change: change.into(),
        rule: None,
        commit: Some("abc".into()),
        approval: None,
    };
    store
        .audit(
            run,
            &[
                event("ana@acme.test", "granted"),
                event("bo@acme.test", "removed"),
            ],
        )
        .unwrap();
    store
        .audit(other, &[event("ana@acme.test", "deactivated")])
        .unwrap();
    store.audit(run, &[]).unwrap();
    let events = store.events("acme").unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], (run, event("ana@acme.test", "granted")));
    let ana = store.audit_events("ana@acme.test").unwrap();
    assert_eq!(
        ana.iter().map(|e| e.change.as_str()).collect::<Vec<_>>(),
        ["granted", "deactivated"]
    );
}

fn identity_counts_and_leavers(open: Open) {
    let store = open();
    assert!(store.last_good_identity("acme").unwrap().is_none());
    let counts = |people| IdentityCounts {
        people,
        groups: 3,
        in_scope: people - 1,
    };
    store
        .set_last_good_identity("acme", &counts(10), 1, 100)
        .unwrap();
    store
        .set_last_good_identity("acme", &counts(12), 2, 200)
        .unwrap();
    assert_eq!(open().last_good_identity("acme").unwrap(), Some(counts(12)));
    store
        .leaver_seen("acme", "bo@acme.test", Some("U2"), 1_000)
        .unwrap();
    store
        .leaver_seen("acme", "bo@acme.test", Some("U2"), 5_000)
        .unwrap();
    store
        .leaver_step("acme", "bo@acme.test", LeaverStep::Deactivated, 3, 1_200)
        .unwrap();
    store
        .leaver_step("acme", "bo@acme.test", LeaverStep::SignedOut, 3, 1_300)
        .unwrap();
    let leavers = store.leavers("acme").unwrap();
    assert_eq!(leavers.len(), 1);
    let bo = &leavers[0];
    assert_eq!(
        (
            bo.first_seen,
            bo.deactivated_at,
            bo.signed_out_at,
            bo.run_id
        ),
        (1_000, Some(1_200), Some(1_300), Some(3))
    );
    assert!(store.leavers("globex").unwrap().is_empty());
}

/// The identity directory kept between reads: absent, kept, replaced by a later read,
/// never by an earlier one (a slower reader finishing last); a document of megabytes.
fn the_kept_identity_directory(open: Open) {
    let store = open();
    assert!(store.kept_identity("acme").unwrap().is_none());
    let kept = |document: &str, read_at| KeptIdentity {
        fingerprint: "okta https://acme.okta.example manager managerId:Id".into(),
        document: document.into(),
        full_read_at: 100,
        read_at,
    };
    store.keep_identity("acme", &kept("first", 100)).unwrap();
    store.keep_identity("acme", &kept("second", 200)).unwrap();
    store
        .keep_identity("acme", &kept("late and older", 150))
        .unwrap();
    assert_eq!(
        open().kept_identity("acme").unwrap(),
        Some(kept("second", 200))
    );
    assert!(open().kept_identity("globex").unwrap().is_none());
    let big = "x".repeat(5 << 20);
    store.keep_identity("acme", &kept(&big, 300)).unwrap();
    assert_eq!(
        open()
            .kept_identity("acme")
            .unwrap()
            .unwrap()
            .document
            .len(),
        5 << 20
    );
}

/// The live Slack mirror: events taken once, drained into invalidations, a delta chain
/// applied in place and agreed with by its `subteam_updated`, a broken chain marking the
/// usergroup stale, and a full read verifying what it read and dropping what it did not.
fn the_slack_mirror(open: Open) {
    use slack_gitops::controller::mirror::{Drained, EventCounters, drain};
    use slack_gitops::mirror::{Inbound, ObjectKind, Row};
    use slack_gitops::model::live::LiveUsergroup;
    use slack_gitops::store::Offered;

    let store = open();
    let group = |members: &[&str]| LiveUsergroup {
        id: "S1".into(),
        workspace: "T1".into(),
        handle: "eng".into(),
        name: "Eng".into(),
        description: "Engineers".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        channels: Vec::new(),
        disabled: false,
    };
    let row = |kind, id: &str, document: String, date_update| Row {
        kind,
        id: id.into(),
        document,
        date_update,
    };
    let read = |at: i64, with_user: bool, date_update: i64| {
        let mut rows = vec![
            row(
                ObjectKind::Usergroup,
                "S1",
                serde_json::to_string(&group(&["U1"])).unwrap(),
                Some(date_update),
            ),
            row(ObjectKind::Channel, "C1", r#"{"id":"C1"}"#.into(), None),
        ];
        if with_user {
            rows.push(row(ObjectKind::User, "U9", r#"{"id":"U9"}"#.into(), None));
        }
        open().mirror_full_read("controller", &rows, at).unwrap();
    };
    read(1_000, true, 10);
    let summary = store.mirror_summary("controller").unwrap();
    assert_eq!(
        (summary.objects, summary.stale, summary.oldest_verified_at),
        (3, 0, Some(1_000))
    );

    let offer = |id: &str, event: serde_json::Value, now: i64| {
        let body = serde_json::json!({"type": "event_callback", "event_id": id, "event_time": 2, "event": event});
        let inbound = Inbound {
            event_id: id.into(),
            kind: event["type"].as_str().unwrap().into(),
            event_time: 2,
        };
        open()
            .offer_slack_event("controller", &inbound, &body.to_string(), now)
            .unwrap()
    };
    let delta = serde_json::json!({"type": "subteam_members_changed", "subteam_id": "S1",
        "date_previous_update": 10, "date_update": 20, "added_users": ["U2"], "removed_users": []});
    assert_eq!(offer("Ev1", delta.clone(), 3_000), Offered::New);
    assert_eq!(
        offer("Ev1", delta, 3_001),
        Offered::Duplicate,
        "a retry is taken once"
    );
    let updated = serde_json::json!({"type": "subteam_updated", "subteam": {"id": "S1", "name": "Eng",
        "handle": "eng", "description": "Engineers", "date_update": 20, "date_delete": 0,
        "user_count": 2, "users": ["U1", "U2"]}});
    assert_eq!(offer("Ev2", updated, 3_002), Offered::New);
    assert_eq!(
        offer(
            "Ev3",
            serde_json::json!({"type": "member_joined_channel", "channel": "C1", "user": "U2"}),
            3_003
        ),
        Offered::New
    );
    assert_eq!(
        store.mirror_summary("controller").unwrap().pending_events,
        3
    );

    let counters = EventCounters::default();
    assert_eq!(
        drain(&open(), "controller", &counters, 4_000).unwrap(),
        Drained {
            events: 3,
            changes: 2
        },
        "the delta applied and the channel marked stale; the update the delta applied changes nothing"
    );
    assert_eq!(
        drain(&open(), "controller", &counters, 4_001)
            .unwrap()
            .events,
        0,
        "drained once"
    );
    let rows = open().mirror_rows("controller").unwrap();
    let find = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
    let s1 = find("S1");
    assert_eq!(
        s1.stale_since, None,
        "the chain and its subteam_updated agree"
    );
    assert_eq!(s1.date_update, Some(20));
    let members: LiveUsergroup = serde_json::from_str(s1.document.as_deref().unwrap()).unwrap();
    assert_eq!(members.members, ["U1", "U2"]);
    assert_eq!(s1.verified_at, Some(1_000), "a delta never verifies");
    assert_eq!(
        find("C1").stale_since,
        Some(3_003),
        "stale from its arrival, by our clock"
    );

    // A read still in flight from before the delta (it saw update 10) does not undo it,
    // nor clear what became stale after it started.
    read(1_500, true, 10);
    let s1 = open()
        .mirror_usergroup("controller", "S1")
        .unwrap()
        .unwrap();
    assert_eq!((s1.date_update, s1.verified_at), (Some(20), Some(1_000)));
    assert!(s1.document.unwrap().contains("U2"));
    let rows = open().mirror_rows("controller").unwrap();
    assert_eq!(
        rows.iter().find(|r| r.id == "C1").unwrap().stale_since,
        Some(3_003)
    );

    // A delta from an update the mirror never saw: stale.
    offer(
        "Ev4",
        serde_json::json!({"type": "subteam_members_changed", "subteam_id": "S1",
        "date_previous_update": 25, "date_update": 30, "added_users": ["U3"], "removed_users": []}),
        5_000,
    );
    // An event about an object never read: a stale row without a copy.
    offer(
        "Ev5",
        serde_json::json!({"type": "channel_created", "channel": {"id": "C2", "name": "new"}}),
        5_001,
    );
    drain(&open(), "controller", &counters, 5_002).unwrap();
    let summary = open().mirror_summary("controller").unwrap();
    assert_eq!((summary.objects, summary.stale), (4, 3));

    // A full read verifies what it read and forgets U9, which it did not read; C2, known
    // only from an event, waits for a read of it.
    read(6_000, false, 30);
    let rows = open().mirror_rows("controller").unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["C1", "C2", "S1"]);
    assert!(
        rows.iter()
            .filter(|r| r.id != "C2")
            .all(|r| r.stale_since.is_none() && r.verified_at == Some(6_000))
    );
    assert_eq!(
        counters.chained.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The refresher reads the stale first, then the oldest; a read that finds an
    // object gone forgets it.
    let kinds = [ObjectKind::Channel, ObjectKind::Usergroup];
    let due = open().mirror_due("controller", &kinds).unwrap().unwrap();
    assert_eq!(due.id, "C2");
    open()
        .mirror_partial_read(
            "controller",
            &[],
            &[(ObjectKind::Channel, "C2".into())],
            7_000,
        )
        .unwrap();
    open()
        .mirror_partial_read(
            "controller",
            &[row(
                ObjectKind::Channel,
                "C1",
                r#"{"id":"C1"}"#.into(),
                None,
            )],
            &[],
            8_000,
        )
        .unwrap();
    let due = open().mirror_due("controller", &kinds).unwrap().unwrap();
    assert_eq!((due.id.as_str(), due.verified_at), ("S1", Some(6_000)));
    assert_eq!(open().mirror_rows("controller").unwrap().len(), 2);
}

/// The event stream's state: a gap dated in Slack's clock from the watermark it began
/// at, and filled from the Audit Logs: what the logs name is marked stale unless read
/// after the gap, and a newer gap recorded meanwhile is left alone.
fn a_gap_and_its_filling(open: Open) {
    use slack_gitops::mirror::{ObjectKind, Row};
    let store = open();
    let scope = "controller";
    store.canary_sent(scope, 1, 1_000).unwrap();
    assert!(store.canary_seen(scope, 1, 500, 1_100).unwrap());
    let stream = store.slack_stream(scope).unwrap();
    assert_eq!(
        (stream.watermark, stream.watermark_slack),
        (Some(1_000), Some(500))
    );
    let channel = |id: &str| Row {
        kind: ObjectKind::Channel,
        id: id.into(),
        document: format!(r#"{{"id":"{id}"}}"#),
        date_update: None,
    };
    // C1 read before the gap, C2 after it.
    store
        .mirror_partial_read(scope, &[channel("C1")], &[], 1_500)
        .unwrap();
    store.slack_stream_gap(scope, 2_000).unwrap();
    store
        .mirror_partial_read(scope, &[channel("C2")], &[], 2_500)
        .unwrap();
    let stream = store.slack_stream(scope).unwrap();
    assert_eq!(
        (stream.gap_at, stream.gap_since_slack),
        (Some(2_000), Some(500))
    );
    // A later gap keeps when the first began.
    store.slack_stream_gap(scope, 2_200).unwrap();
    let stream = store.slack_stream(scope).unwrap();
    assert_eq!(
        (stream.gap_at, stream.gap_since_slack),
        (Some(2_200), Some(500))
    );

    // A fill for a gap that is no longer the newest writes nothing.
    let named = [
        (ObjectKind::Channel, "C1".to_string()),
        (ObjectKind::Channel, "C2".to_string()),
    ];
    assert!(!store.fill_slack_gap(scope, 2_000, &named, 3_000).unwrap());
    assert!(
        store
            .mirror_rows(scope)
            .unwrap()
            .iter()
            .all(|r| r.stale_since.is_none())
    );
    // The newest gap is filled: C1 (read before it) is stale, C2 (read after) is not.
    assert!(store.fill_slack_gap(scope, 2_200, &named, 3_000).unwrap());
    let rows = store.mirror_rows(scope).unwrap();
    let stale = |id: &str| rows.iter().find(|r| r.id == id).unwrap().stale_since;
    assert_eq!((stale("C1"), stale("C2")), (Some(3_000), None));
    let stream = store.slack_stream(scope).unwrap();
    assert_eq!((stream.gap_at, stream.gap_since_slack), (None, None));

    // A new gap begins at the watermark of its time; while copies read before it stay
    // clean, a later gap keeps that start, and once all were read again, it does not.
    assert!(store.canary_seen(scope, 1, 900, 3_200).unwrap());
    store.slack_stream_gap(scope, 3_300).unwrap();
    assert_eq!(
        store.slack_stream(scope).unwrap().gap_since_slack,
        Some(900)
    );
    assert!(store.canary_seen(scope, 1, 1_200, 3_400).unwrap());
    store.slack_stream_gap(scope, 3_500).unwrap();
    assert_eq!(
        store.slack_stream(scope).unwrap().gap_since_slack,
        Some(900)
    );
    store
        .mirror_partial_read(scope, &[channel("C1"), channel("C2")], &[], 3_600)
        .unwrap();
    assert!(store.canary_seen(scope, 1, 1_500, 3_700).unwrap());
    store.slack_stream_gap(scope, 3_800).unwrap();
    assert_eq!(
        store.slack_stream(scope).unwrap().gap_since_slack,
        Some(1_500)
    );
}

fn the_lease_moves_only_when_it_expires(open: Open) {
    let (a, b) = (open(), open());
    let lease = a
        .acquire_lease("controller", "a", Some("http://10.0.0.1:8080"), 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(lease.generation, 1);
    assert!(
        b.acquire_lease("controller", "b", None, 60_000)
            .unwrap()
            .is_none()
    );
    let renewed = a
        .renew_lease("controller", "a", 1, 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(renewed.generation, 1);
    assert!(renewed.expires_at >= lease.expires_at);
    assert!(
        b.renew_lease("controller", "b", 1, 60_000)
            .unwrap()
            .is_none()
    );
    let holder = b.lease_holder("controller").unwrap().unwrap();
    assert_eq!(
        (holder.holder.as_str(), holder.generation, holder.expired),
        ("a", 1, false)
    );
    // A short lease lapses; the next holder's generation is one more.
    a.renew_lease("controller", "a", 1, 50).unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert!(b.lease_holder("controller").unwrap().unwrap().expired);
    let taken = b
        .acquire_lease("controller", "b", None, 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(taken.generation, 2);
    assert!(
        a.renew_lease("controller", "a", 1, 60_000)
            .unwrap()
            .is_none()
    );
    // A clean release lets the next replica take it at once.
    b.release_lease("controller", "b", 2).unwrap();
    assert_eq!(
        a.acquire_lease("controller", "a", None, 60_000)
            .unwrap()
            .unwrap()
            .generation,
        3
    );
    // A replica restarted under its own name takes its lease back at once, in a new
    // generation.
    assert_eq!(
        a.acquire_lease("controller", "a", None, 60_000)
            .unwrap()
            .unwrap()
            .generation,
        4
    );
    // Leases by other names are other leases.
    assert_eq!(
        b.acquire_lease("other", "b", None, 60_000)
            .unwrap()
            .unwrap()
            .generation,
        1
    );
}

fn one_replica_wins_a_race_for_the_lease(open: Open) {
    let handles: Vec<Store> = (0..4).map(|_| open()).collect();
    let winners: Vec<bool> = std::thread::scope(|scope| {
        let racing: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, store)| {
                scope.spawn(move || {
                    store
                        .acquire_lease("controller", &format!("r{i}"), None, 60_000)
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        racing.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
}

fn a_stale_leader_is_fenced_off(open: Open) {
    let (old, new) = (open(), open());
    let first = old
        .acquire_lease("controller", "old", None, 50)
        .unwrap()
        .unwrap();
    old.set_fence(Some(Fence {
        name: "controller".into(),
        holder: "old".into(),
        generation: first.generation,
    }));
    let run = old.begin_run(&new_run("acme", 1)).unwrap();
    old.intent(run, 0, "a", "{}", 2).unwrap();
    assert_eq!(
        old.lock("acme", "old-1", "controller (old)", 3).unwrap(),
        Ok(())
    );
    assert_eq!(
        old.journal(run).unwrap()[0].generation,
        Some(first.generation)
    );
    assert_eq!(
        old.run(run).unwrap().unwrap().generation,
        Some(first.generation)
    );
    std::thread::sleep(std::time::Duration::from_millis(120));
    let second = new
        .acquire_lease("controller", "new", None, 60_000)
        .unwrap()
        .unwrap();
    new.set_fence(Some(Fence {
        name: "controller".into(),
        holder: "new".into(),
        generation: second.generation,
    }));
    // Every write of the old leader is refused, and changes nothing.
    let refused: Vec<StoreError> = vec![
        old.check_fence().unwrap_err(),
        old.intent(run, 1, "b", "{}", 4).unwrap_err(),
        old.outcome(run, 0, "done", "", "", 5).unwrap_err(),
        old.begin_run(&new_run("acme", 6)).unwrap_err(),
        old.end_run(run, RunOutcome::Converged, "{}", 7)
            .unwrap_err(),
        old.save_snapshot(run, 8, "{}").unwrap_err(),
        old.leaver_seen("acme", "bo@acme.test", None, 9)
            .unwrap_err(),
        old.unlock("acme", "old-1").unwrap_err(),
    ];
    for error in &refused {
        assert!(error.is_fenced(), "{error}");
        assert!(error.to_string().contains("moved to new"), "{error}");
    }
    let journal = new.journal(run).unwrap();
    assert_eq!((journal.len(), journal[0].outcome.clone()), (1, None));
    assert_eq!(new.runs("acme").unwrap().len(), 1);
    // The new leader takes over the old leader's lock, not a lock taken outside a
    // controller.
    assert_eq!(
        new.lock("acme", "new-1", "controller (new)", 10).unwrap(),
        Ok(())
    );
    let cli = open();
    assert_eq!(cli.lock("globex", "cli-1", "laptop", 11).unwrap(), Ok(()));
    assert!(
        new.lock("globex", "new-2", "controller (new)", 12)
            .unwrap()
            .is_err()
    );
    new.check_fence().unwrap();
    new.intent(run, 1, "b", "{}", 13).unwrap();
    assert_eq!(
        new.journal(run).unwrap()[1].generation,
        Some(second.generation)
    );
    // Without a fence, a store writes as it always did.
    old.set_fence(None);
    old.leaver_seen("acme", "bo@acme.test", None, 14).unwrap();
}

fn reopening_keeps_everything(open: Open) {
    let run = {
        let store = open();
        let run = store.begin_run(&new_run("acme", 1)).unwrap();
        store.intent(run, 0, "a", "{}", 2).unwrap();
        run
    };
    let store = open();
    assert_eq!(store.journal(run).unwrap().len(), 1);
    assert_eq!(store.unfinished_runs("acme").unwrap()[0].id, run);
}

const CASES: &[(&str, Case)] = &[
    ("runs and the journal", runs_and_the_journal),
    ("the org lock", the_org_lock),
    (
        "snapshots and the audit trail",
        snapshots_and_the_audit_trail,
    ),
    ("identity counts and leavers", identity_counts_and_leavers),
    ("the kept identity directory", the_kept_identity_directory),
    ("the slack mirror", the_slack_mirror),
    (
        "the lease moves only when it expires",
        the_lease_moves_only_when_it_expires,
    ),
    (
        "one replica wins a race for the lease",
        one_replica_wins_a_race_for_the_lease,
    ),
    ("a stale leader is fenced off", a_stale_leader_is_fenced_off),
    ("reopening keeps everything", reopening_keeps_everything),
    ("a gap and its filling", a_gap_and_its_filling),
];

#[test]
fn the_suite_on_sqlite() {
    for (name, case) in CASES {
        eprintln!("sqlite: {name}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        case(&|| Store::open(&path).unwrap());
    }
}

#[test]
fn the_suite_on_postgres() {
    let cluster = postgres::Cluster::start();
    for (i, (name, case)) in CASES.iter().enumerate() {
        eprintln!("postgres: {name}");
        let url = cluster.database(&format!("case{i}"));
        case(&|| Store::open_spec(&url, Some(postgres::PASSWORD.into())).unwrap());
    }
}

#[test]
fn postgres_over_tls_with_the_password_from_a_file() {
    let cluster = postgres::Cluster::start();
    let secure = cluster.database("tls");
    let url = cluster.bare_url("tls");
    let environment = |name: &str| {
        (name == "SLACK_GITOPS_STATE_PASSWORD_FILE")
            .then(|| cluster.dir.path().join("password").display().to_string())
    };
    let password = slack_gitops::store::password(&environment).unwrap();
    let store = Store::open_spec(&secure, password).unwrap();
    store.begin_run(&new_run("acme", 1)).unwrap();
    assert!(!store.describe().contains(postgres::PASSWORD));
    // The certificate is checked: the system's CAs do not know this one.
    let unknown = Store::open_spec(
        &format!("{url}?sslmode=require"),
        Some(postgres::PASSWORD.into()),
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("certificate"), "{unknown}");
    // A wrong password is refused, and no password is in the message.
    let url_password = secure.replace("gitops@", &format!("gitops:{}@", postgres::PASSWORD));
    let wrong = Store::open_spec(&url_password, Some("wrong-password".into()))
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    assert!(
        !wrong.contains(postgres::PASSWORD) && !wrong.contains("wrong-password"),
        "{wrong}"
    );
    assert!(!cluster.log().contains(postgres::PASSWORD));
}

#[test]
fn postgres_restarted_under_an_open_store() {
    let cluster = postgres::Cluster::start();
    let url = cluster.database("restart");
    let store = Store::open_spec(&url, Some(postgres::PASSWORD.into())).unwrap();
    let run = store.begin_run(&new_run("acme", 1)).unwrap();
    store.intent(run, 0, "a", "{}", 2).unwrap();
    cluster.restart();
    // The next request finds the connection closed and opens a new one.
    store.outcome(run, 0, "done", "", "", 3).unwrap();
    store.intent(run, 1, "b", "{}", 4).unwrap();
    let journal = store.journal(run).unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].outcome.as_deref(), Some("done"));
    // Down for longer than a request waits: a clear error, then it recovers.
    cluster.stop();
    let started = std::time::Instant::now();
    let down = store.journal(run).unwrap_err().to_string();
    assert!(down.contains("cannot connect"), "{down}");
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    let error = Store::open(&path).unwrap_err().to_string();
    assert!(
        error.contains("schema version 99, newer than this build's"),
        "{error}"
    );

    let cluster = postgres::Cluster::start();
    let url = cluster.database("newer");
    drop(Store::open_spec(&url, Some(postgres::PASSWORD.into())).unwrap());
    let mut client = postgres_client(&cluster, "newer");
    client
        .execute("UPDATE schema_version SET version = 99", &[])
        .unwrap();
    let error = Store::open_spec(&url, Some(postgres::PASSWORD.into()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("schema version 99, newer than this build's"),
        "{error}"
    );
}

/// A plain client on the cluster's socket, for what the store does not do.
fn postgres_client(cluster: &postgres::Cluster, database: &str) -> ::postgres::Client {
    ::postgres::Config::new()
        .host_path(cluster.dir.path())
        .port(cluster.port)
        .user("gitops")
        .dbname(database)
        .connect(::postgres::NoTls)
        .unwrap()
}
