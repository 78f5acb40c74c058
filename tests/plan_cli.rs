//! `slack-gitops plan` through the real binary against the built-in emulator: formats,
//! the JSON artifact, detailed exit codes, and a plan over a guardrail that an approval
//! file lets through.

mod common;

use std::path::Path;
use std::process::Command;

fn plan(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .arg("plan")
        .arg(dir)
        .arg("--emulator")
        .arg(common::fixture("examples/acme/slack.json"))
        .args(extra)
        .env_remove("SLACK_ADMIN_TOKEN")
        .env_remove("SLACK_BOT_TOKEN")
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_demo_plans_acme_in_every_format() {
    let acme = common::fixture("examples/acme");
    let (code, text, stderr) = plan(&acme, &["--color", "never"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("Plan: 4 people to create, 0 to reactivate, 3 to deactivate"),
        "{text}"
    );
    assert!(text.contains("(ghost account: active in Slack, unknown to the identity provider)"));
    assert!(text.contains("Guardrails: within limits"));

    let (code, _, _) = plan(&acme, &["--detailed-exitcode"]);
    assert_eq!(code, 2, "changes");

    let temp = tempfile::tempdir().unwrap();
    let artifact = temp.path().join("plan.json");
    let (code, json, _) = plan(
        &acme,
        &["--format", "json", "--out", artifact.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&artifact).unwrap(), json);
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(document["version"], 1);
    assert_eq!(document["verdict"]["verdict"], "allowed");
    assert!(
        document["plan"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "deactivate_user" && a["drift"] == "ghost_account")
    );

    let (code, markdown, _) = plan(&acme, &["--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(markdown.starts_with("## slack-gitops plan\n"));
    assert!(markdown.contains("<details open><summary>Leavers (6)</summary>"));
    assert!(markdown.len() < 65_536);
}

#[test]
fn over_a_guardrail_the_plan_needs_the_approval_of_its_hash() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    let policy = repo.join("policies/guardrails.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace(
            "deactivate: { max: 10, max_percent: 2 }",
            "deactivate: { max: 2 }",
        ),
    )
    .unwrap();

    let (code, output, _) = plan(&repo, &["--detailed-exitcode", "--color", "never"]);
    assert_eq!(code, 3, "{output}");
    let hash = output
        .split("carrying hash: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the plan prints the hash")
        .to_string();
    assert!(hash.starts_with("sha256:") && hash.len() == 71);

    std::fs::write(
        repo.join("approvals/offboarding.yaml"),
        format!("apiVersion: slack-gitops/v1\nkind: Approval\nhash: {hash}\nreason: three leavers\napproved_by: [ada@acme.example]\n"),
    )
    .unwrap();
    let (code, output, _) = plan(&repo, &["--detailed-exitcode", "--color", "never"]);
    assert_eq!(code, 2, "approved changes: {output}");
    assert!(output.contains("Guardrails: over a limit, approved"));
}
