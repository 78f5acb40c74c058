//! One rule set for leavers: for each kind of account, the identity event's fast path
//! (`apply::apply_leaver`, one account read) and the full sync (`pipeline::plan_org`,
//! every account read, judged by the verdict) deactivate, or refuse, the same people.

use std::sync::atomic::AtomicBool;

use crate::common;
use crate::common::org::Org;
use slack_gitops::apply::{self, ApplyOptions, ApplyOutcome};
use slack_gitops::pipeline::{self, Baseline};
use slack_gitops::plan::action::Action;
use slack_gitops::policy::Verdict;
use slack_gitops::store::Store;

/// What a path did with one person.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Deactivated,
    Refused,
    Untouched,
}

struct Case {
    what: &'static str,
    email: &'static str,
    /// Suspend them in the identity provider first.
    suspend: bool,
    /// `limits.deactivate` set to `{ max: 0 }`.
    no_deactivation: bool,
    expected: Fate,
}

/// The full sync's fate for `email`: deactivated when its plan does and the verdict
/// allows the plan; refused when the plan would but the verdict does not, or when the
/// plan blocks them (protected, the primary owner).
async fn full_sync(org: &Org, email: &str) -> Fate {
    let connection = org.connect();
    let planned = pipeline::plan_org(&connection, &Baseline::default())
        .await
        .unwrap();
    let deactivates = planned.plan.actions.iter().any(
        |a| matches!(a, Action::DeactivateUser { removal, .. } if removal.person.email == email),
    );
    let blocked = planned
        .plan
        .blocked_by_protection
        .iter()
        .any(|r| r.person.email == email);
    match (deactivates, blocked, &planned.verdict) {
        (true, _, Verdict::Allowed { .. }) => Fate::Deactivated,
        (true, _, _) | (false, true, _) => Fate::Refused,
        (false, false, _) => Fate::Untouched,
    }
}

/// The fast path's fate for `email`, as the controller runs it on an identity event.
async fn fast_path(org: &Org, email: &str) -> Fate {
    let connection = org.connect();
    let store = Store::open(&org.state).unwrap();
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let stop = AtomicBool::new(false);
    let options = ApplyOptions {
        commit: None,
        reviewed: None,
        dry_run: false,
        force_unlock: None,
        holder: "the leaver rule test".into(),
        today: "2026-12-04".into(),
        clock: &clock,
        on_result: &|_, _| {},
        stop: Some(&stop),
        drift: None,
        restore_with: Vec::new(),
    };
    let report = apply::apply_leaver(&connection, &store, email, &options)
        .await
        .unwrap();
    let deactivated = report
        .execution
        .results
        .iter()
        .any(|r| r.key.starts_with("deactivate-user") && r.outcome.succeeded());
    match (&report.outcome, deactivated) {
        (ApplyOutcome::Refused { .. }, _) => Fate::Refused,
        (_, true) => Fate::Deactivated,
        (_, false) => Fate::Untouched,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fast_path_and_the_full_sync_deactivate_and_refuse_the_same_people() {
    let case = |what, email, suspend, no_deactivation, expected| Case {
        what,
        email,
        suspend,
        no_deactivation,
        expected,
    };
    let cases = [
        case(
            "a leaver",
            "ada.liskov@acme.example",
            true,
            false,
            Fate::Deactivated,
        ),
        case(
            "a ghost account",
            "old.contractor@contractors.acme.example",
            false,
            false,
            Fate::Deactivated,
        ),
        case(
            "someone who stays",
            "ada.clarke@acme.example",
            false,
            false,
            Fate::Untouched,
        ),
        case(
            "a protected leaver",
            "breakglass@acme.example",
            true,
            false,
            Fate::Refused,
        ),
        case(
            "the primary owner, leaving",
            "ruth.floyd@acme.example",
            true,
            false,
            Fate::Refused,
        ),
        case(
            "a guest",
            "pat.partner@agency.example",
            false,
            false,
            Fate::Untouched,
        ),
        case(
            "a bot",
            "deploybot@acme.example",
            false,
            false,
            Fate::Untouched,
        ),
        case(
            "a leaver with no deactivation allowed",
            "ada.liskov@acme.example",
            true,
            true,
            Fate::Refused,
        ),
    ];
    for case in cases {
        // Each path on an org of its own: the fast path writes.
        let mut fates = Vec::new();
        for fast in [false, true] {
            let org = Org::new(|_| {}).await;
            if case.suspend {
                let export = org.repo.join("identity/directory.yaml");
                let text = std::fs::read_to_string(&export).unwrap();
                std::fs::write(&export, common::suspend(&text, case.email)).unwrap();
            }
            if case.no_deactivation {
                common::allow_no_deactivation(&org.repo);
            }
            let fate = if fast {
                fast_path(&org, case.email).await
            } else {
                full_sync(&org, case.email).await
            };
            fates.push(fate);
        }
        assert_eq!(fates[0], case.expected, "{}: the full sync", case.what);
        assert_eq!(fates[1], case.expected, "{}: the fast path", case.what);
    }
}

/// Acme's directory served by Okta, and the org's config pointed at it.
async fn through_okta(org: &Org) -> slack_emulator::idp::Idp {
    let source =
        slack_gitops::identity::file::FileSource::new(org.repo.join("identity/directory.yaml"));
    use slack_gitops::identity::IdentitySource;
    let directory = source.read().await.unwrap();
    let (base, okta) = common::okta::serve(directory).await;
    common::edit(
        &org.repo.join("slack-gitops.yaml"),
        "  source: file\n  path: identity/directory.yaml\n",
        &format!("  source: okta\n  url: {base}\n  token_env: OKTA_TOKEN\n"),
    );
    okta
}

/// With Okta as the identity provider, the fast path reads the one person the event
/// names (the user and their groups: two calls, where the full read makes one per group)
/// and judges with the identity counts the last good run recorded, and still
/// deactivates, or refuses, whom the full sync does: a leaver deactivated in Okta, a
/// leaver suspended there, a person who stays, a protected leaver, one unknown to Okta.
#[tokio::test(flavor = "multi_thread")]
async fn through_okta_the_fast_path_reads_one_person_and_agrees_with_the_full_sync() {
    let cases: [(&str, &str, Option<&str>, Fate); 5] = [
        (
            "deactivated in Okta",
            "ada.liskov@acme.example",
            Some("deprovisioned"),
            Fate::Deactivated,
        ),
        (
            "suspended in Okta",
            "ada.liskov@acme.example",
            Some("suspended"),
            Fate::Deactivated,
        ),
        (
            "someone who stays",
            "ada.clarke@acme.example",
            None,
            Fate::Untouched,
        ),
        (
            "a protected leaver",
            "breakglass@acme.example",
            Some("deprovisioned"),
            Fate::Refused,
        ),
        (
            "unknown to Okta",
            "old.contractor@contractors.acme.example",
            None,
            Fate::Deactivated,
        ),
    ];
    for (what, email, change, expected) in cases {
        let mut fates = Vec::new();
        for fast in [false, true] {
            let org = Org::new(|_| {}).await;
            let okta = through_okta(&org).await;
            // The last good run's counts, as a full sync records them.
            let connection = org.connect();
            let planned = pipeline::plan_org(&connection, &Baseline::default())
                .await
                .unwrap();
            let store = Store::open(&org.state).unwrap();
            store
                .set_last_good_identity(&connection.org(), &planned.identity, 0, 0)
                .unwrap();
            use slack_emulator::idp::Standing;
            match change {
                Some("deprovisioned") => okta.set_standing(email, Standing::Deactivated),
                Some(_) => okta.set_standing(email, Standing::Suspended),
                None => {}
            }
            okta.take_requests();
            let fate = if fast {
                fast_path(&org, email).await
            } else {
                full_sync(&org, email).await
            };
            let requests = okta.take_requests();
            if fast {
                assert!(
                    requests.len() <= 2,
                    "{what}: the fast path read {requests:?}"
                );
            } else {
                assert!(requests.len() > 20, "{what}: {requests:?}");
            }
            fates.push(fate);
        }
        assert_eq!(fates[0], expected, "{what}: the full sync");
        assert_eq!(fates[1], expected, "{what}: the fast path");
    }
}

/// acme's Rego policy `acme.admin_deactivation` judges both paths alike: an admin leaving
/// is refused by the full sync and by the identity event's fast path (which would
/// otherwise deactivate them at once, before any approval).
#[tokio::test(flavor = "multi_thread")]
async fn the_repositorys_rego_policies_refuse_an_admin_leaver_on_both_paths() {
    const WHO: &str = "ada.liskov@acme.example";
    for fast in [false, true] {
        let org = Org::new(|world| {
            let ada = world.users.iter_mut().find(|u| u.email == WHO).unwrap();
            ada.admin = true;
        })
        .await;
        let export = org.repo.join("identity/directory.yaml");
        let text = std::fs::read_to_string(&export).unwrap();
        std::fs::write(&export, common::suspend(&text, WHO)).unwrap();
        let fate = if fast {
            fast_path(&org, WHO).await
        } else {
            full_sync(&org, WHO).await
        };
        assert_eq!(fate, Fate::Refused, "fast path: {fast}");
        let world = org.world().await;
        let ada = world.users.iter().find(|u| u.email == WHO).unwrap();
        assert!(ada.active, "fast path: {fast}: deactivated anyway");
    }
}
