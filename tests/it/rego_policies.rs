//! The repository's own Rego policies through the binary: acme's pass and their tests
//! run; a change that puts contractors into a private channel fails `validate` with the
//! policy's id at the mapping's line; a broken policy, a failing test and a runaway
//! policy are each a clear error, never a pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

/// A copy of acme's repository to change.
fn acme(temp: &Path) -> PathBuf {
    let repo = temp.join("acme");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    repo
}

fn run(args: &[&str], environment: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(args)
        .envs(environment.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn the_acme_policies_pass_and_their_tests_run() {
    let acme = common::fixture("examples/acme");
    let (code, out) = run(&["validate", acme.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["policy", "test", acme.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PASS data.acme.contractors_test.test_a_private_channel_selecting_nested_contractors_is_denied"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn contractors_in_a_private_channel_fail_validate_at_the_mapping() {
    let temp = tempfile::tempdir().unwrap();
    let repo = acme(temp.path());
    let path = repo.join("mappings/engineering.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace(
        "    members: { groups: [oncall, sre] }",
        "    members: { groups: [oncall, sre, contractors] }",
    );
    assert_ne!(changed, text);
    std::fs::write(&path, changed).unwrap();
    let line = text
        .lines()
        .position(|l| l == "  - name: eng-oncall")
        .unwrap()
        + 1;
    let (code, out) = run(
        &["validate", repo.to_str().unwrap(), "--format", "json"],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let denial = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "policy-denied")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        denial["message"]
            .as_str()
            .unwrap()
            .starts_with("[acme.contractors_private_channels] private channel #eng-oncall"),
        "{denial}"
    );
    assert!(
        denial["file"]
            .as_str()
            .unwrap()
            .ends_with("mappings/engineering.yaml"),
        "{denial}"
    );
    assert_eq!(denial["line"], line, "{denial}");
}

#[test]
fn a_broken_policy_or_test_is_an_error_never_a_pass() {
    let temp = tempfile::tempdir().unwrap();
    let repo = acme(temp.path());
    let dir = repo.to_str().unwrap();
    // A syntax error: a diagnostic at its line, in validate and in policy test.
    let broken = repo.join("policies/broken.rego");
    std::fs::write(
        &broken,
        "package broken\n\ndeny contains msg if {\n  msg := \n}\n",
    )
    .unwrap();
    let (code, out) = run(&["validate", dir], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[rego-syntax]"), "{out}");
    assert!(out.contains("policies/broken.rego:4:"), "{out}");
    let (code, out) = run(&["policy", "test", dir], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rego-syntax"), "{out}");
    // A message of the wrong shape.
    std::fs::write(&broken, "package broken\n\ndeny contains 42 if { true }\n").unwrap();
    let (code, out) = run(&["validate", dir], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error[rego-error]") && out.contains("neither a string nor an object"),
        "{out}"
    );
    std::fs::remove_file(&broken).unwrap();
    // A test that fails.
    std::fs::write(
        repo.join("policies/more_test.rego"),
        "package more_test\n\nimport data.acme.contractors\n\ntest_nothing_is_ever_denied if {\n  count(contractors.deny) == 0 with input as {\"config\": {\"channels\": [{\"name\": \"x\", \"private\": true, \"members\": {\"groups\": [\"contractors\"], \"users\": [], \"exclude\": [], \"exclude_users\": []}, \"file\": \"m\", \"line\": 1}], \"usergroups\": []}, \"identity\": {\"people\": {}, \"groups\": {\"contractors\": {\"members\": [\"c@x\"], \"groups\": []}}}}\n}\n",
    )
    .unwrap();
    let (code, out) = run(&["policy", "test", dir], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL data.more_test.test_nothing_is_ever_denied"),
        "{out}"
    );
    assert!(out.contains("8 passed, 1 failed"), "{out}");
}

/// A policy that would run for minutes is stopped at the time limit, and the command
/// fails saying so.
#[test]
fn a_runaway_policy_is_stopped_at_the_time_limit() {
    let temp = tempfile::tempdir().unwrap();
    let repo = acme(temp.path());
    std::fs::write(
        repo.join("policies/slow.rego"),
        "package slow\n\nwarn contains sprintf(\"%d\", [n]) if {\n  n := count([1 | some i in numbers.range(1, 5000); some j in numbers.range(1, 5000); some k in numbers.range(1, 50)])\n}\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, out) = run(
        &["validate", repo.to_str().unwrap()],
        &[("SLACK_GITOPS_POLICY_TIME_LIMIT_MS", "1000")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[rego-error]"), "{out}");
    assert!(
        out.contains("time limit") || out.contains("did not finish"),
        "{out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// The contractors change planned against the emulator: the policy refuses the plan (exit
/// 3 with `--detailed-exitcode`), the text, JSON and markdown say which policy and why,
/// apply refuses the merged change and writes nothing; the policy input `plan --format
/// policy-input` prints is the documented one (checked against its schema).
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_plan_is_refused_and_apply_writes_nothing() {
    let org = crate::common::org::Org::new(|_| {}).await;
    let dir = org.repo_arg();

    // As it is, acme's policies pass; the input is the documented document.
    let (code, out, err) = org.run(&["plan", dir, "--format", "policy-input"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let input: serde_json::Value = serde_json::from_str(&out).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("schema/policy-input.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&input)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(input["plan"]["plan"]["actions"].as_array().unwrap().len() > 10);
    let (code, out, err) = org.run(&["plan", dir, "--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        plan["policy"]["packages"],
        serde_json::json!(["acme.admins", "acme.contractors"])
    );
    assert_ne!(
        plan["verdict"]["verdict"], "refused",
        "{:#}",
        plan["verdict"]
    );

    org.replace_in(
        "mappings/engineering.yaml",
        &[(
            "    members: { groups: [oncall, sre] }",
            "    members: { groups: [oncall, sre, contractors] }",
        )],
    );
    let (code, out, _) = org.run(&["plan", dir, "--detailed-exitcode"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("! policy acme.contractors denies: [acme.contractors_private_channels] private channel #eng-oncall"), "{out}");
    let (_, out, _) = org.run(&["plan", dir, "--format", "json"]).await;
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["verdict"]["verdict"], "refused");
    let reasons = plan["verdict"]["reasons"].to_string();
    assert!(
        reasons.contains("acme.contractors_private_channels"),
        "{:#}",
        plan["verdict"]
    );
    assert_eq!(
        plan["policy"]["findings"][0]["id"],
        "acme.contractors_private_channels"
    );
    let (_, out, _) = org.run(&["plan", dir, "--format", "markdown"]).await;
    assert!(out.contains("### Policy checks (2)"), "{out}");
    // A denial no approval may override says so at the top.
    assert!(
        out.contains("**Refused.** This plan will not be applied, with or without approval"),
        "{out}"
    );
    assert!(out.contains("| `acme.contractors` | **denied** | `acme.contractors_private_channels` private channel #eng-oncall"), "{out}");

    org.merge("Contractors into the on-call channel");
    org.emulator.clear_log().await;
    let (code, out, err) = org.run(&["apply", dir]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("acme.contractors_private_channels"),
        "{out}{err}"
    );
    let writes: Vec<String> = org
        .calls()
        .await
        .iter()
        .map(|c| c["call"].as_str().unwrap_or_default().to_string())
        .filter(|c| crate::common::org::is_write(c))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

/// acme's second policy: a plan that deactivates a Slack admin is refused until an
/// approval of that plan names the policy's id in `overrides` and is approved by two
/// people of `it-admins`; one approver is not enough.
#[tokio::test(flavor = "multi_thread")]
async fn an_admins_deactivation_waits_for_two_it_admins() {
    const WHO: &str = "ada.liskov@acme.example";
    let org = crate::common::org::Org::new(|world| {
        let ada = world.users.iter_mut().find(|u| u.email == WHO).unwrap();
        ada.admin = true;
    })
    .await;
    let dir = org.repo_arg();
    let export = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, common::suspend(&text, WHO)).unwrap();
    // The deactivation is over a guardrail too, so it needs a guardrail approval as well.
    org.replace_in(
        "policies/guardrails.yaml",
        &[(
            "deactivate: { max: 10, max_percent: 2 }",
            "deactivate: { max: 0 }",
        )],
    );

    let first = plan_json(&org, dir).await;
    assert_eq!(
        first["verdict"]["verdict"], "refused",
        "{:#}",
        first["verdict"]
    );
    // The refusal hides the guardrail's verdict; the policy section keeps its hash.
    assert_eq!(first["policy"]["guardrail_hash"], first["hash"]);
    let (_, out, _) = org.run(&["plan", dir]).await;
    assert!(
        out.contains(&format!(
            "! the plan also exceeds a guardrail: a second approval carries hash {}",
            first["hash"].as_str().unwrap()
        )),
        "{out}"
    );
    let (_, out, _) = org.run(&["plan", dir, "--format", "markdown"]).await;
    assert!(
        out.contains("**Refused** until an approval overrides these policy denials"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "The plan also exceeds a guardrail: merge, with the override, an approval of the plan hash `{}`",
            first["hash"].as_str().unwrap()
        )),
        "{out}"
    );
    let denial = finding(&first, "acme.admin_deactivation");
    assert!(
        denial["message"].as_str().unwrap().contains(WHO),
        "{denial}"
    );
    let hash = first["policy"]["override_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first["hash"].as_str(), Some(hash.as_str()));

    // One it-admin approves: still refused.
    let approval = |by: &str| {
        format!(
            "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {hash}\nreason: Ada left\napproved_by: [{by}]\noverrides: [acme.admin_deactivation]\n"
        )
    };
    let path = org.repo.join("approvals/ada.yaml");
    std::fs::write(&path, approval("dennis.borg@acme.example")).unwrap();
    let (code, out, _) = org.run(&["plan", dir, "--detailed-exitcode"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("acme.admin_deactivation"), "{out}");

    // The same approver twice, in another case, is still one approver.
    std::fs::write(
        &path,
        approval("dennis.borg@acme.example, Dennis.Borg@acme.example"),
    )
    .unwrap();
    let (code, out, _) = org.run(&["plan", dir, "--detailed-exitcode"]).await;
    assert_eq!(code, 3, "{out}");

    // Two: the denial is overridden, and the plan is no longer refused by it.
    std::fs::write(
        &path,
        approval("dennis.borg@acme.example, leslie.matsumoto@acme.example"),
    )
    .unwrap();
    let second = plan_json(&org, dir).await;
    assert_eq!(
        second["verdict"]["verdict"], "needs_approval",
        "{:#}",
        second["verdict"]
    );
    assert_eq!(second["verdict"]["hash"], first["hash"]);
    let overridden = finding(&second, "acme.admin_deactivation");
    assert_eq!(
        overridden["overridden_by"], "approvals/ada.yaml",
        "{overridden}"
    );
    let (_, out, _) = org.run(&["plan", dir, "--format", "markdown"]).await;
    assert!(
        out.contains("denied, overridden by `approvals/ada.yaml`"),
        "{out}"
    );

    // With the guardrail's approval of the plan hash beside it, the plan is allowed.
    std::fs::write(
        org.repo.join("approvals/ada-guardrail.yaml"),
        format!(
            "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {}\nreason: Ada left\napproved_by: [dennis.borg@acme.example]\n",
            first["hash"].as_str().unwrap()
        ),
    )
    .unwrap();
    let third = plan_json(&org, dir).await;
    assert_eq!(
        third["verdict"]["verdict"], "allowed",
        "{:#}",
        third["verdict"]
    );
    assert_eq!(third["verdict"]["approved"], true);
}

async fn plan_json(org: &crate::common::org::Org, dir: &str) -> serde_json::Value {
    let (_, out, err) = org.run(&["plan", dir, "--format", "json"]).await;
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"))
}

/// The finding of a JSON plan with this id.
fn finding(plan: &serde_json::Value, id: &str) -> serde_json::Value {
    plan["policy"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {:#}", plan["policy"]))
        .clone()
}

/// An override is bound to the denials it overrides as well as to the plan's destructive
/// set: approving one person into a channel a policy guards does not let another in,
/// although both plans remove nobody (and so have the same plan hash).
#[tokio::test(flavor = "multi_thread")]
async fn an_override_approves_the_denials_it_saw_and_no_other() {
    let org = crate::common::org::Org::new(|_| {}).await;
    let dir = org.repo_arg();
    let (code, out, err) = org.run(&["apply", dir]).await;
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(
        org.repo.join("policies/leadership.rego"),
        r#"package acme.leadership

deny contains {
	"id": "acme.leadership_joiner",
	"msg": sprintf("%s joins #leadership", [person.person.email]),
	"overridable_by": ["ruth.floyd@acme.example"],
} if {
	some action in input.plan.plan.actions
	action.action == "invite_to_channel"
	action.channel == "leadership"
	some person in action.people
}
"#,
    )
    .unwrap();
    let invite = |who: &str| {
        let with = format!(
            "    members: {{ groups: [leadership], users: [{who}] }}\n    remove_unlisted: true"
        );
        org.replace_in(
            "mappings/company.yaml",
            &[(
                "    members: { groups: [leadership] }\n    remove_unlisted: true",
                with.as_str(),
            )],
        );
    };
    invite("ada.liskov@acme.example");
    let first = plan_json(&org, dir).await;
    assert_eq!(
        first["verdict"]["verdict"], "refused",
        "{:#}",
        first["verdict"]
    );
    let denial = finding(&first, "acme.leadership_joiner");
    assert!(
        denial["message"]
            .as_str()
            .unwrap()
            .starts_with("ada.liskov"),
        "{denial}"
    );
    let hash = first["policy"]["override_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, out, _) = org.run(&["plan", dir, "--format", "markdown"]).await;
    assert!(out.contains(&format!("hash: {hash}")), "{out}");
    assert!(out.contains("overrides: [acme.leadership_joiner]"), "{out}");
    assert!(
        out.contains("**Refused** until an approval overrides these policy denials"),
        "{out}"
    );
    assert!(
        out.contains("- `acme.leadership_joiner`: approved by 1 of ruth.floyd@acme.example"),
        "{out}"
    );

    // The approval of what the comment showed overrides the denial.
    let approval = |hash: &str| {
        format!(
            "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {hash}\nreason: Ada joins the exec team\napproved_by: [ruth.floyd@acme.example]\noverrides: [acme.leadership_joiner]\n"
        )
    };
    std::fs::write(org.repo.join("approvals/ada.yaml"), approval(&hash)).unwrap();
    let approved = plan_json(&org, dir).await;
    assert_ne!(
        approved["verdict"]["verdict"], "refused",
        "{:#}",
        approved["verdict"]
    );

    // Someone else instead: the plan removes nobody either way (the same plan hash), but
    // the denial is another, so the approval does not override it.
    org.replace_in(
        "mappings/company.yaml",
        &[(
            "users: [ada.liskov@acme.example]",
            "users: [dennis.borg@acme.example]",
        )],
    );
    let other = plan_json(&org, dir).await;
    assert_eq!(other["hash"], first["hash"]);
    assert_eq!(
        other["verdict"]["verdict"], "refused",
        "{:#}",
        other["verdict"]
    );
    assert!(finding(&other, "acme.leadership_joiner")["overridden_by"].is_null());
    let (code, out, _) = org.run(&["plan", dir, "--detailed-exitcode"]).await;
    assert_eq!(code, 3, "{out}");

    // An approval carrying the plan hash alone overrides nothing.
    let plan_hash = first["hash"].as_str().unwrap();
    std::fs::write(org.repo.join("approvals/ada.yaml"), approval(plan_hash)).unwrap();
    org.replace_in(
        "mappings/company.yaml",
        &[(
            "users: [dennis.borg@acme.example]",
            "users: [ada.liskov@acme.example]",
        )],
    );
    let by_plan_hash = plan_json(&org, dir).await;
    assert_eq!(
        by_plan_hash["verdict"]["verdict"], "refused",
        "{:#}",
        by_plan_hash["verdict"]
    );
}
