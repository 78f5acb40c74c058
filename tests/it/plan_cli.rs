//! `slack-gitops plan` through the real binary against the built-in emulator: formats,
//! the JSON artifact, detailed exit codes, and a plan over a guardrail that an approval
//! file lets through.

use crate::common;

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

/// The commit the project's checkout is at.
fn git_head() -> String {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
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
    assert!(text.contains(
        "- deactivate old.contractor@contractors.acme.example (W00000288) (ghost account: unknown to the identity provider)"
    ));
    // Provenance: joiners with the users.scope chain, removals with why.
    assert!(text.contains("+ create account evelyn.dijkstra@acme.example (joiner via everyone > employees > sales > sales-amer, slack-gitops.yaml:17)"), "{text}");
    assert!(text.contains("- adele.knuth@acme.example (W00000008) (not selected: in none of `eng-backend` (added by hand in Slack, left the IdP group, or the mapping changed))"), "{text}");
    // A removal where the same plan adds the person elsewhere is a mover.
    assert!(text.contains("- alan.borg@acme.example (W00000015) (moved in the IdP: in none of `eng-frontend`; joins @mobile in T0000MAIN)"), "{text}");
    // The mover's profile follows the IdP: title and manager.
    assert!(text.contains("~ update the profile of alan.borg@acme.example (W00000015): title: \"Frontend Engineer\" -> \"Mobile Engineer\", manager: \"maria.mccarthy@acme.example\" -> \"linus.johnson@acme.example\""), "{text}");
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
            .any(|a| a["action"] == "deactivate_user" && a["removal"]["drift"] == "ghost_account")
    );
    assert_eq!(document["identity"]["in_scope"], 284);

    let (code, markdown, _) = plan(&acme, &["--format", "markdown"]);
    assert_eq!(code, 0);
    // The marker a CI job finds the comment by, where it was planned, what it costs.
    assert!(
        markdown.starts_with("<!-- slack-gitops plan: examples/acme -->\n## slack-gitops plan\n"),
        "{markdown}"
    );
    let head = git_head();
    assert!(
        markdown.contains(&format!("Planned at `{}`", &head[..12])),
        "{markdown}"
    );
    assert!(markdown.contains("plan hash `sha256:"), "{markdown}");
    assert!(
        markdown.contains("workspaces main (`T0000MAIN`), support (`T0000SUPP`)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**Estimated apply time:** under a minute: 13 usergroup member updates at Tier 2 (20/min)"),
        "{markdown}"
    );
    assert!(markdown.contains("### Leavers (3): deactivated, then their sessions revoked"));
    // Leavers come first, with what they lose; then one section per usergroup and channel.
    let leavers = markdown.find("### Leavers").unwrap();
    let sections = markdown.find("### Usergroups and channels").unwrap();
    assert!(leavers < sections);
    assert!(markdown.contains("| `brian.hopper@acme.example (W00000051)` | missed deprovision: suspended in the identity provider | T0000MAIN/@"), "{markdown}");
    // What leavers lose includes the apps they installed, read from the integration logs.
    assert!(
        markdown.contains("app Deploy notifier (A0000DEPLOY) in T0000MAIN"),
        "{markdown}"
    );
    assert!(markdown.contains("<details><summary><code>@backend in T0000MAIN (mappings/engineering.yaml:32)</code>: +0 -1</summary>"));
    assert!(markdown.len() < 65_536);
}

#[test]
fn a_shrunken_identity_source_is_refused_against_the_last_good_plan() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    let baseline = temp.path().join("last-good.json");
    let (code, _, stderr) = plan(&repo, &["--out", baseline.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");

    // Against its own baseline the plan is as before, and the hand-added member of the
    // unchanged @backend mapping is a manual add.
    let (code, text, _) = plan(
        &repo,
        &[
            "--detailed-exitcode",
            "--color",
            "never",
            "--baseline",
            baseline.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(text.contains("- adele.knuth@acme.example (W00000008) (manual add in Slack: in none of `eng-backend`; the mapping is unchanged since the last good plan)"), "{text}");

    // A pull request narrows @backend to the platform team: its removals are the mapping's.
    let mapping = repo.join("mappings/engineering.yaml");
    let original = std::fs::read_to_string(&mapping).unwrap();
    let narrowed = original.replacen(
        "      groups: [eng-backend]\n",
        "      groups: [eng-platform]\n",
        1,
    );
    assert_ne!(narrowed, original);
    std::fs::write(&mapping, &narrowed).unwrap();
    let (_, text, _) = plan(
        &repo,
        &["--color", "never", "--baseline", baseline.to_str().unwrap()],
    );
    assert!(
        text.contains("(mapping changed: in none of `eng-platform` under the new mapping)"),
        "{text}"
    );
    std::fs::write(&mapping, original).unwrap();

    // The IdP now reports 20 active people as suspended (a broken sync, say): 284 -> 264
    // people in scope is over Acme's identity.max_shrink of 15. The plan is refused.
    let directory = repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&directory).unwrap();
    std::fs::write(&directory, common::suspend_first(&text, 20)).unwrap();
    let (code, output, _) = plan(
        &repo,
        &[
            "--detailed-exitcode",
            "--color",
            "never",
            "--baseline",
            baseline.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{output}");
    assert!(
        output.contains("Guardrails: REFUSED")
            && output.contains("from 284 to 264 people in scope (-20, 7.0%)"),
        "{output}"
    );
    let (_, markdown, _) = plan(
        &repo,
        &[
            "--format",
            "markdown",
            "--baseline",
            baseline.to_str().unwrap(),
        ],
    );
    assert!(markdown.contains("> **Refused.**"), "{markdown}");

    // A baseline that is not a plan is a clear error, not a silent first run.
    std::fs::write(&baseline, "{}").unwrap();
    let (code, _, stderr) = plan(&repo, &["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("not a JSON plan written by --out"),
        "{stderr}"
    );
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

/// `approve` takes its hash from a plan file that anyone could have edited: a hash that
/// is not one (a path, a newline and another key) is refused, and nothing is written.
#[test]
fn approve_refuses_a_plan_whose_hash_is_not_a_hash() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    let out = temp.path().join("plan.json");
    let (code, _, err) = plan(&repo, &["--out", out.to_str().unwrap()]);
    assert!(code == 0 || code == 2, "{err}");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let hash = document["hash"].as_str().unwrap().to_string();
    let approvals = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let before = approvals(&repo.join("approvals"));
    for forged in [
        "sha256:/../../../escaped".to_string(),
        format!("{hash}\\nexpires: 2999-01-01"),
        hash.to_uppercase(),
    ] {
        let text = std::fs::read_to_string(&out)
            .unwrap()
            .replace(&hash, &forged);
        let tampered = temp.path().join("tampered.json");
        std::fs::write(&tampered, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .args(["approve"])
            .arg(&repo)
            .arg("--plan")
            .arg(&tampered)
            .args(["--reason", "leavers", "--by", "ada@acme.example"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{forged}: {err}");
        assert!(err.contains("malformed hash"), "{forged}: {err}");
        assert_eq!(approvals(&repo.join("approvals")), before, "{forged}");
        assert!(!temp.path().join("escaped.yaml").exists());
    }
}

/// The identity export a config names is read only inside the repository, and no error
/// about it quotes more than a short, escaped excerpt: a pull request's config cannot
/// make CI read and print a file of the runner.
#[test]
fn the_identity_export_stays_inside_the_repository_and_is_never_echoed() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("config");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    let secret_line = "SECRET-7f3a9c:root:x:0:0:the-rest-of-a-private-file-that-must-not-leak";
    let outside = temp.path().join("private.txt");
    std::fs::write(&outside, format!("{secret_line}\n{secret_line}\n")).unwrap();
    let config = repo.join("slack-gitops.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let run = |command: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .arg(command)
            .arg(&repo)
            .args(if command == "plan" {
                vec![
                    "--emulator".into(),
                    common::fixture("examples/acme/slack.json"),
                ]
            } else {
                vec![]
            })
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap(), all)
    };

    // `..` and absolute paths: refused by validate at file:line, and by plan.
    for path in ["../private.txt", outside.to_str().unwrap()] {
        std::fs::write(
            &config,
            original.replace("path: identity/directory.yaml", &format!("path: {path}")),
        )
        .unwrap();
        let (code, out) = run("validate");
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("error[path-outside-repository]"), "{out}");
        assert!(!out.contains("SECRET-7f3a9c"), "{out}");
        let (code, out) = run("plan");
        assert_eq!(code, 1, "{out}");
        assert!(!out.contains("SECRET-7f3a9c"), "{out}");
    }

    // A symlinked export that resolves outside: not read.
    std::fs::write(&config, &original).unwrap();
    let export = repo.join("identity/directory.yaml");
    std::fs::remove_file(&export).unwrap();
    std::os::unix::fs::symlink(&outside, &export).unwrap();
    for command in ["validate", "plan"] {
        let (_, out) = run(command);
        assert!(
            out.contains("resolves outside the repository"),
            "{command}: {out}"
        );
        assert!(!out.contains("SECRET-7f3a9c"), "{command}: {out}");
    }

    // An export inside that does not parse: the error says where, with a short excerpt.
    std::fs::remove_file(&export).unwrap();
    std::fs::write(&export, format!("{secret_line}\n{secret_line}\n")).unwrap();
    for command in ["validate", "plan"] {
        let (_, out) = run(command);
        assert!(out.contains("not a directory export"), "{command}: {out}");
        assert!(!out.contains("must-not-leak"), "{command}: {out}");
    }

    // An export over the size limit is not read at all (a sparse file: no disk used).
    let file = std::fs::File::create(&export).unwrap();
    file.set_len(slack_gitops::identity::file::MAX_EXPORT_BYTES + 1)
        .unwrap();
    let (code, out) = run("plan");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("over the 536870912-byte limit"), "{out}");
}
