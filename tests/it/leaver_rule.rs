//! One rule set for leavers: for each kind of account, the identity event's fast path
//! (`apply::apply_leaver`, one account read) and the full sync (`pipeline::plan_org`,
//! every account read, judged by the verdict) deactivate, or refuse, the same people.

use std::sync::atomic::AtomicBool;

use crate::common;
use crate::common::org::Org;
use slack_gitops::apply::{self, ApplyOptions, ApplyOutcome};
use slack_gitops::pipeline::{self, Baseline, ConnectOptions};
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
    let connection = connect(org);
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
    let connection = connect(org);
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

fn connect(org: &Org) -> pipeline::Connection {
    let options = ConnectOptions {
        slack_url: Some(org.emulator.base.clone()),
        time_scale: common::org::TIME_SCALE.parse().unwrap(),
        ..Default::default()
    };
    let environment = |name: &str| match name {
        "SLACK_ADMIN_TOKEN" => Some(org.admin.clone()),
        "SLACK_BOT_TOKEN" => Some(org.bot.clone()),
        _ => None,
    };
    pipeline::connect(&org.repo, &options, &environment).unwrap()
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
