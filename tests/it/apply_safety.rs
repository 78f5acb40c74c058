//! The safety rules of the write side, proven against the emulator through the binary:
//! the April 2024 regression costs one person and the printed undo brings them back
//! whole; guardrails, approvals (expiry, approvers) and stale reviewed plans refuse before
//! any write; a shrunken identity source is refused against the stored counts; the org
//! lock lets one apply in at a time; `kill -9` at several points never loses or repeats a
//! write; and no token reaches any output, log or the state file.

use crate::common;

use crate::common::org::{Org, applied_writes, is_write, memberships};
use serde_json::{Value, json};

fn writes_in(calls: &[Value]) -> usize {
    calls
        .iter()
        .filter(|c| is_write(c["call"].as_str().unwrap()))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_april_2024_regression_costs_one_person_and_the_undo_restores_them() {
    // Ada is an admin, in @finance and @managers, and in #general, #managers and
    // #sales-deals. Her profile update is the first SCIM user update of the plan.
    let org = Org::new(|world| {
        let ada = world
            .users
            .iter_mut()
            .find(|u| u.email == "ada.liskov@acme.example")
            .unwrap();
        ada.admin = true;
    })
    .await;
    let before = org.world().await;
    org.emulator
        .fault(json!({"kind": "required_field", "field": "displayName"}))
        .await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HALTED"), "{out}");
    assert!(out.contains("Affected: ada.liskov@acme.example"), "{out}");
    let undo = out
        .lines()
        .find_map(|l| l.strip_prefix("To undo what this run did: "))
        .unwrap()
        .to_string();
    // The directory and the store as absolute paths, and the Slack it was pointed at:
    // the command works verbatim from anywhere.
    let repo = org.repo.canonicalize().unwrap();
    let state = org.state.canonicalize().unwrap();
    assert_eq!(
        undo,
        format!(
            "slack-gitops restore {} --state {} --slack-url {} --time-scale {} --run 1 --people ada.liskov@acme.example",
            repo.display(),
            state.display(),
            org.emulator.base,
            common::org::TIME_SCALE
        )
    );

    // Exactly one person was hit: one SCIM user update went out, and nobody else who was
    // active is inactive now.
    let calls = org.calls().await;
    let updates: Vec<&str> = calls
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .filter(|c| c.starts_with("SCIM PATCH /Users"))
        .collect();
    assert_eq!(updates, ["SCIM PATCH /Users/W00000002"]);
    let after = org.world().await;
    let lost: Vec<&str> = before
        .users
        .iter()
        .filter(|u| u.active)
        .filter(|u| after.users.iter().any(|a| a.id == u.id && !a.active))
        .map(|u| u.email.as_str())
        .collect();
    assert_eq!(lost, ["ada.liskov@acme.example"]);

    // The printed command, run as printed, brings her back whole.
    org.clear_faults().await;
    let (code, out, err) = org.run_printed(&undo).await;
    assert_eq!(code, 0, "{out}{err}");
    let restored = org.world().await;
    let ada = |world: &slack_emulator::world::World| {
        let user = world
            .users
            .iter()
            .find(|u| u.email == "ada.liskov@acme.example")
            .unwrap()
            .clone();
        let mut groups: Vec<String> = world
            .usergroups
            .iter()
            .filter(|g| g.users.contains(&user.id))
            .map(|g| g.handle.clone())
            .collect();
        groups.sort();
        let mut channels: Vec<String> = world
            .channels
            .iter()
            .filter(|c| c.members.contains(&user.id))
            .map(|c| c.name.clone())
            .collect();
        channels.sort();
        (user.active, user.admin, groups, channels)
    };
    assert_eq!(ada(&restored), ada(&before));
    assert_eq!(
        ada(&before),
        (
            true,
            true,
            vec!["finance".to_string(), "managers".into()],
            vec![
                "general".to_string(),
                "managers".into(),
                "sales-deals".into()
            ]
        )
    );
}

/// Acme with the deactivation limit at 2: its 3 leavers need an approval.
async fn over_the_limit() -> Org {
    let org = Org::new(|_| {}).await;
    org.replace_in(
        "policies/guardrails.yaml",
        &[(
            "deactivate: { max: 10, max_percent: 2 }",
            "deactivate: { max: 2 }",
        )],
    );
    org.merge("tighter deactivation limit");
    org
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a_guardrail_only_a_valid_approval_at_the_commit_lets_apply_write() {
    let org = over_the_limit().await;
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("Apply refused") && out.contains("3 deactivate is over the limit (max 2)"),
        "{out}"
    );
    assert_eq!(writes_in(&org.calls().await), 0, "a refused apply wrote");

    // The reviewed plan, approved with `approve`.
    let plan = org.temp.path().join("plan.json");
    let (code, _, err) = org
        .run(&[
            "plan",
            org.repo_arg(),
            "--out",
            plan.to_str().unwrap(),
            "--format",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let approve = |extra: &[&str]| {
        let mut args = vec![
            "approve",
            org.repo_arg(),
            "--plan",
            plan.to_str().unwrap(),
            "--reason",
            "offboarding contractors",
            "--ticket",
            "IT-42",
        ];
        args.extend_from_slice(extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };

    // Expired: refused, nothing written.
    let file = approve(&["--by", "ada.liskov@acme.example", "--expires", "2000-01-01"]);
    org.merge("expired approval");
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("the approval expired on 2000-01-01"), "{out}");
    std::fs::remove_file(&file).unwrap();

    // By someone the policy does not name as an approver: refused.
    let policy = org.repo.join("policies/guardrails.yaml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str("approvers: [breakglass@acme.example]\n");
    std::fs::write(&policy, text).unwrap();
    approve(&["--by", "ada.liskov@acme.example", "--expires", "7d"]);
    org.merge("approval by a non-approver");
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("none of whom the policy's approvers allow"),
        "{out}"
    );
    assert_eq!(writes_in(&org.calls().await), 0);

    // By an approver, unexpired, merged at the commit: applied.
    approve(&["--by", "breakglass@acme.example", "--expires", "7d"]);
    org.merge("approval");
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--plan", plan.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let world = org.world().await;
    assert!(
        !world
            .users
            .iter()
            .find(|u| u.email == "brian.hopper@acme.example")
            .unwrap()
            .active
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destructive_action_added_after_review_refuses_the_run() {
    let org = Org::new(|_| {}).await;
    let plan = org.temp.path().join("reviewed.json");
    let (code, _, err) = org
        .run(&["plan", org.repo_arg(), "--out", plan.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{err}");
    // Between review and merge, someone is suspended in the identity provider.
    let directory = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&directory).unwrap();
    std::fs::write(
        &directory,
        common::suspend(&text, "ada.liskov@acme.example"),
    )
    .unwrap();
    org.merge("ada leaves");
    let (code, out, _) = org
        .run(&["apply", org.repo_arg(), "--plan", plan.to_str().unwrap()])
        .await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "stale plan: `deactivate ada.liskov@acme.example` was not in the reviewed plan"
        ),
        "{out}"
    );
    assert_eq!(writes_in(&org.calls().await), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shrunken_identity_source_is_refused_against_the_stored_counts() {
    let org = Org::new(|_| {}).await;
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}");
    // 20 people suspended at once (a broken sync): 284 -> 264 in scope, over the
    // policy's max_shrink of 15. No --baseline: the store remembers the last good counts.
    let directory = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&directory).unwrap();
    std::fs::write(&directory, common::suspend_first(&text, 20)).unwrap();
    org.merge("a broken sync");
    let before = writes_in(&org.calls().await);
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("from 284 to 264 people in scope"), "{out}");
    assert_eq!(
        writes_in(&org.calls().await),
        before,
        "a refused apply wrote"
    );
}

/// Waits until the emulator has logged at least `n` writes.
async fn wait_for_writes(org: &Org, n: usize) {
    for _ in 0..2000 {
        if writes_in(&org.calls().await) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the emulator never saw {n} writes");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_apply_then_apply_again_never_loses_or_repeats_a_write() {
    let (reference_writes, reference_state) = {
        let org = Org::new(|_| {}).await;
        let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
        assert_eq!(code, 0, "{out}");
        (
            applied_writes(&org.calls().await),
            memberships(&org.world().await),
        )
    };
    // Points across the plan: the first account, profiles, usergroups, invites, leavers.
    // `SLACK_GITOPS_KILL_POINTS=3,17,...` tries others (a soak run picks them at random).
    let points: Vec<usize> = std::env::var("SLACK_GITOPS_KILL_POINTS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 6, 14, 24, 33, 40]);
    let mut unknown_outcomes = 0;
    for point in points {
        let org = Org::new(|_| {}).await;
        org.slow_writes(20).await;
        let mut child = org.spawn(&["apply", org.repo_arg()]);
        wait_for_writes(&org, point).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "killed at {point}");
        org.clear_faults().await;
        // The killed run left its lock: a second apply is refused and names it.
        let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("the org lock is held by"), "{out}");
        let id = common::org::lock_id(&out);
        let (code, out, err) = org
            .run(&["apply", org.repo_arg(), "--force-unlock", &id])
            .await;
        assert_eq!(code, 0, "killed at {point}: {out}{err}");
        assert!(out.contains("Run 1 was interrupted"), "{out}");
        assert!(out.contains("Converged"), "{out}");
        let unknown: usize = out
            .split("; ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        unknown_outcomes += unknown;
        assert_eq!(
            applied_writes(&org.calls().await),
            reference_writes,
            "killed after {point} writes: the writes differ from a clean run"
        );
        assert_eq!(memberships(&org.world().await), reference_state);
    }
    // The kills landed while writes were in flight: some actions had an intent and no
    // outcome, and were read back rather than repeated.
    assert!(unknown_outcomes > 0, "no kill caught a write in flight");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_apply_at_a_time_and_no_token_anywhere() {
    let org = Org::new(|_| {}).await;
    org.slow_writes(10).await;
    let first = org.spawn(&["apply", org.repo_arg()]);
    wait_for_writes(&org, 1).await;
    let (code, second, second_err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 3, "{second}");
    assert!(second.contains("the org lock is held by"), "{second}");
    let output = first.wait_with_output().await.unwrap();
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert_eq!(output.status.code(), Some(0), "{out}{err}");

    // Tokens: not in any output or log line (at info level), nor in the state file.
    let mut state = Vec::new();
    for entry in std::fs::read_dir(org.state.parent().unwrap()).unwrap() {
        state.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let state = String::from_utf8_lossy(&state);
    for secret in [&org.admin, &org.bot] {
        for text in [&out, &err, &second, &second_err, &state.to_string()] {
            assert!(!text.contains(secret.as_str()), "a token leaked");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&org.state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_writes_nothing_and_restore_takes_a_snapshot_file() {
    let org = Org::new(|_| {}).await;
    let (code, out, _) = org
        .run(&["apply", org.repo_arg(), "--dry-run", "--format", "markdown"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("### slack-gitops apply") && out.contains("Dry run"),
        "{out}"
    );
    assert_eq!(writes_in(&org.calls().await), 0, "a dry run wrote");

    // A snapshot file from `snapshot --out`, then a person deactivated by hand (Slack
    // drops their usergroups and channels): restore puts them back from the file.
    let file = org.temp.path().join("before.json");
    let (code, _, err) = org
        .run(&["snapshot", org.repo_arg(), "--out", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{err}");
    let before = memberships(&org.world().await);
    let (status, _) = org
        .emulator
        .scim_as(
            &org.admin,
            "PATCH",
            "Users/W00000002",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let deactivated = memberships(&org.world().await);
    assert_ne!(deactivated, before);
    let (code, out, _) = org
        .run(&[
            "restore",
            org.repo_arg(),
            "--snapshot",
            file.to_str().unwrap(),
            "--dry-run",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Would do:")
            && out.contains("+ reactivate ada.liskov@acme.example (W00000002)"),
        "{out}"
    );
    assert_eq!(
        memberships(&org.world().await),
        deactivated,
        "a dry run wrote"
    );

    // A restore bigger than the deactivation limit runs only with the hash of the plan
    // that was reviewed.
    common::allow_no_deactivation(&org.repo);
    let restore = [
        "restore",
        org.repo_arg(),
        "--snapshot",
        file.to_str().unwrap(),
        "--people",
        "ada.liskov@acme.example",
    ];
    let (code, out, _) = org.run(&restore).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("over the deactivation limit (max 0)"), "{out}");
    let hash = out
        .split("--approve ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert_eq!(
        memberships(&org.world().await),
        deactivated,
        "a refused restore wrote"
    );
    let wrong = [&restore[..], &["--approve", "sha256:0000"]].concat();
    let (code, out, _) = org.run(&wrong).await;
    assert_eq!(code, 3, "a wrong hash: {out}");
    let approved = [&restore[..], &["--approve", &hash]].concat();
    let (code, out, err) = org.run(&approved).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("reactivate-user ada.liskov@acme.example: done"),
        "{out}"
    );
    assert_eq!(memberships(&org.world().await), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_circuit_breaker_halts_a_run_whose_writes_keep_failing() {
    // Slack fails every usergroup write: after five failed in a row the run stops, before
    // kicks and deactivations, and says so.
    let org = Org::new(|_| {}).await;
    org.emulator
        .fault(json!({"kind": "status", "status": 500, "target": "usergroups.users.update"}))
        .await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("HALTED") && out.contains("circuit breaker: 5 writes failed in a row"),
        "{out}"
    );
    assert!(
        out.contains("To undo what this run did: slack-gitops restore /")
            && out.contains(" --run 1"),
        "{out}"
    );
    let calls = org.calls().await;
    let writes = applied_writes(&calls);
    assert!(!writes.contains_key("conversations.kick"), "{writes:?}");
    assert!(
        !writes.contains_key("admin.users.session.reset"),
        "{writes:?}"
    );
    let world = org.world().await;
    assert!(
        world
            .users
            .iter()
            .find(|u| u.email == "brian.hopper@acme.example")
            .unwrap()
            .active,
        "a leaver was deactivated after the breaker tripped"
    );
    // Four sends per failing action (one write and three decided again), five actions.
    let attempts = calls
        .iter()
        .filter(|c| c["call"] == "usergroups.users.update")
        .count();
    assert_eq!(attempts, 20);
}
