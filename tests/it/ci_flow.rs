//! The README's "use it in CI", end to end: the commands the example GitHub workflows
//! run (read from `examples/github-actions/*.yml`, so the test and the workflows cannot
//! drift apart), against the emulator, on a git repository with the config in `slack/`:
//! a pull request that needs approval is planned (exit 3, "needs approval"), approved and
//! planned again with the previous plan as baseline ("since the last push"), merged, and
//! applied with the reviewed plan; then the scheduled drift plan finds a member added by
//! hand. The only arguments added to the workflows' are the emulator's (`--slack-url`,
//! `--time-scale`).

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::org::{Org, commit, git};
use serde_json::Value;

/// One step of a workflow that runs the action: its command and arguments.
struct Step {
    name: String,
    command: String,
    args: String,
}

fn steps(workflow: &str) -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/github-actions")
        .join(workflow);
    let text = std::fs::read_to_string(&path).unwrap();
    let document = slack_gitops::config::yaml::parse(workflow, &text)
        .unwrap()
        .value;
    let mut found = Vec::new();
    for job in document["jobs"].as_object().unwrap().values() {
        for step in job["steps"].as_array().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("slack-gitops/slack-gitops@"))
            {
                found.push(Step {
                    name: step["name"].as_str().unwrap_or("").to_string(),
                    command: step["with"]["command"].as_str().unwrap().to_string(),
                    args: step["with"]["args"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    found
}

fn step(workflow: &str, name: &str) -> Step {
    steps(workflow)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{workflow} has no step {name}"))
}

/// Substitutes the workflow's `${{ ... }}` expressions; an unknown one fails the test.
fn expand(args: &str, values: &[(&str, &str)]) -> Vec<String> {
    let mut text = args.to_string();
    while let Some(start) = text.find("${{") {
        let end = start + text[start..].find("}}").unwrap() + 2;
        let expression = text[start + 3..end - 2].trim();
        let value = values
            .iter()
            .find(|(name, _)| *name == expression)
            .unwrap_or_else(|| panic!("no value for `{expression}` in `{args}`"))
            .1;
        text.replace_range(start..end, value);
    }
    text.split_whitespace().map(str::to_string).collect()
}

struct Site<'a> {
    org: &'a Org,
    root: PathBuf,
    state: PathBuf,
}

impl Site<'_> {
    /// Runs a step as the action does, in the repository's root.
    async fn run(&self, step: &Step, values: &[(&str, &str)]) -> (i32, String) {
        let mut args = vec![step.command.clone()];
        args.extend(expand(&step.args, values));
        if !matches!(step.command.as_str(), "validate" | "policy") {
            args.extend([
                "--slack-url".to_string(),
                self.org.emulator.base.clone(),
                "--time-scale".to_string(),
                common::org::TIME_SCALE.to_string(),
            ]);
        }
        self.raw(&args).await
    }

    async fn raw(&self, args: &[String]) -> (i32, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .args(args)
            .current_dir(&self.root)
            .env("SLACK_ADMIN_TOKEN", &self.org.admin)
            .env("SLACK_BOT_TOKEN", &self.org.bot)
            .env("SLACK_GITOPS_STATE", &self.state)
            .output()
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path)).unwrap()
    }

    fn comment(&self) -> String {
        self.read("comments/comment-1.md")
    }
}

/// The expressions the workflows' arguments use, at commit `sha`.
fn env(sha: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("env.CONFIG_DIR", "slack"),
        ("github.sha", sha),
        ("env.BASELINE", ""),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_is_planned_approved_merged_and_applied_as_the_workflows_do() {
    let org = Org::new(|_| {}).await;
    let root = org.temp.path().join("site");
    common::copy_dir(&org.repo, &root.join("slack"));
    std::fs::remove_dir_all(root.join("slack/.git")).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    let bootstrap = commit(&root, "Slack as code");
    // The forge: what is pushed to its `main` is merged.
    let forge = org.temp.path().join("site.git");
    git(
        org.temp.path(),
        &["init", "-q", "--bare", "-b", "main", "site.git"],
    );
    git(&root, &["remote", "add", "origin", forge.to_str().unwrap()]);
    git(&root, &["push", "-q", "-u", "origin", "main"]);
    let site = Site {
        org: &org,
        root: root.clone(),
        state: org.temp.path().join("ci-state/state.db"),
    };

    // Slack converged to main once (the first merge).
    let apply = step("apply.yml", "Apply");
    let (code, out) = site
        .raw(&[
            "apply".into(),
            "slack".into(),
            "--ref".into(),
            bootstrap.clone(),
            "--slack-url".into(),
            org.emulator.base.clone(),
            "--time-scale".into(),
            common::org::TIME_SCALE.into(),
        ])
        .await;
    assert_eq!(code, 0, "{out}");

    // A pull request offboards twelve people: over `limits.deactivate` (10).
    git(&root, &["checkout", "-q", "-b", "offboarding"]);
    let export = root.join("slack/identity/directory.yaml");
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, common::suspend_first(&text, 12)).unwrap();
    let first_push = commit(&root, "Offboard the Q4 cohort");

    // plan.yml: validate, the policy tests, then plan; exit 3 is the job's "needs
    // approval".
    let (code, out) = site
        .run(&step("plan.yml", "Validate"), &env(&first_push))
        .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = site
        .run(&step("plan.yml", "Policy tests"), &env(&first_push))
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 passed, 0 failed"), "{out}");
    let plan = step("plan.yml", "Plan");
    let (code, out) = site.run(&plan, &env(&first_push)).await;
    assert_eq!(code, 3, "{out}");
    let comment = site.comment();
    assert!(
        comment.starts_with("<!-- slack-gitops plan: slack -->\n"),
        "{comment}"
    );
    assert!(comment.contains("needs approval"), "{comment}");
    assert!(comment.contains(&format!("Planned at `{}`", &first_push[..12])));
    assert!(!comment.contains("Since the last push"));
    let reviewed: Value = serde_json::from_str(&site.read("plan.json")).unwrap();
    assert_eq!(reviewed["verdict"]["verdict"], "needs_approval");

    // A reviewer approves this exact plan, and the author renames a usergroup too; the
    // workflow hands the previous push's plan as baseline.
    let (code, out) = site
        .raw(&[
            "approve".into(),
            "slack".into(),
            "--plan".into(),
            "plan.json".into(),
            "--reason".into(),
            "The Q4 cohort leaves".into(),
            "--by".into(),
            "karen.keller@acme.example".into(),
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    common::org::rename_mobile(&root.join("slack"));
    std::fs::create_dir_all(root.join("previous")).unwrap();
    std::fs::rename(root.join("plan.json"), root.join("previous/plan.json")).unwrap();
    std::fs::remove_dir_all(root.join("comments")).unwrap();
    let second_push = commit(&root, "Approve the offboarding; rename @mobile");
    let mut values = env(&second_push);
    values[2] = ("env.BASELINE", "--baseline previous/plan.json");
    let (code, out) = site.run(&plan, &values).await;
    assert_eq!(code, 2, "{out}");
    let comment = site.comment();
    assert!(
        comment.contains("approved by a merged approval file"),
        "{comment}"
    );
    assert!(
        comment.contains("**Since the last push:** 1 new, 0 no longer planned."),
        "{comment}"
    );
    assert!(
        comment.contains("+ update usergroup T0000MAIN/@mobile name=\"Mobile Apps\""),
        "{comment}"
    );

    // Merged; apply.yml applies the reviewed plan at the merge commit.
    git(&root, &["checkout", "-q", "main"]);
    git(
        &root,
        &[
            "merge",
            "-q",
            "--no-ff",
            "offboarding",
            "-m",
            "Merge offboarding",
        ],
    );
    git(&root, &["push", "-q", "origin", "main"]);
    let merge = git(&root, &["rev-parse", "HEAD"]);
    std::fs::create_dir_all(root.join("reviewed")).unwrap();
    std::fs::copy(root.join("plan.json"), root.join("reviewed/plan.json")).unwrap();
    let (code, report) = site.run(&apply, &env(&merge)).await;
    assert_eq!(code, 0, "{report}");
    let world = org.world().await;
    let inactive = world.users.iter().filter(|u| !u.active).count();
    assert!(inactive >= 12, "{report}");
    assert!(
        world
            .usergroups
            .iter()
            .any(|g| g.handle == "mobile" && g.name == "Mobile Apps")
    );

    // drift.yml: nothing to report right after the apply; a member added by hand is.
    let drift = step("drift.yml", "Plan the protected branch");
    let drift_values = env(&merge);
    let (code, out) = site.run(&drift, &drift_values).await;
    assert_eq!(code, 0, "{out}");
    let world = org.world().await;
    let mobile = world
        .usergroups
        .iter()
        .find(|g| g.handle == "mobile")
        .unwrap();
    let outsider = world
        .users
        .iter()
        .rev()
        .find(|u| {
            u.active
                && !u.bot
                && u.email.ends_with("@acme.example")
                && !mobile.users.contains(&u.id)
        })
        .unwrap()
        .email
        .clone();
    org.add_by_hand("mobile", &outsider).await;
    let (code, out) = site.run(&drift, &drift_values).await;
    assert_eq!(code, 2, "{out}");
    let issue = site.read("drift/comment-1.md");
    assert!(issue.contains(&outsider), "{issue}");
}

/// The `script:` of a workflow step that runs actions/github-script.
fn github_script(workflow: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/github-actions")
        .join(workflow);
    let text = std::fs::read_to_string(&path).unwrap();
    let document = slack_gitops::config::yaml::parse(workflow, &text)
        .unwrap()
        .value;
    document["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_array().unwrap().clone())
        .find(|step| step["name"] == name)
        .and_then(|step| step["with"]["script"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{workflow} has no github-script step {name}"))
}

/// Runs the plan workflow's comment script (Node.js, as actions/github-script does)
/// against a stand-in for the comments API with `parts` comment files.
fn post_comments(dir: &Path, state: &mut Value, parts: &[String]) {
    let comments = dir.join("comments");
    let _ = std::fs::remove_dir_all(&comments);
    std::fs::create_dir_all(&comments).unwrap();
    for (i, body) in parts.iter().enumerate() {
        std::fs::write(comments.join(format!("comment-{}.md", i + 1)), body).unwrap();
    }
    let script = dir.join("script.js");
    std::fs::write(
        &script,
        github_script("plan.yml", "Post or update the plan comment"),
    )
    .unwrap();
    state["calls"] = serde_json::json!([]);
    let state_file = dir.join("state.json");
    std::fs::write(&state_file, state.to_string()).unwrap();
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint/github_script.cjs");
    let output = std::process::Command::new("node")
        .arg(harness)
        .arg(&script)
        .arg(&state_file)
        .current_dir(dir)
        .env("CONFIG_DIR", "slack")
        .output()
        .expect("node is needed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    *state = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
}

#[test]
fn the_plan_comment_is_updated_in_place_split_and_shrunk_never_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let marker = slack_gitops::render::plan::marker;
    let part = |n: usize, text: &str| format!("{}\n{text}\n", marker("slack", n));
    // A person quoting the marker, and another config directory's plan: never touched.
    let mut state = serde_json::json!({
        "next_id": 100,
        "comments": [
            {"id": 1, "body": format!("{}\nI quote it", marker("slack", 1)), "user": {"type": "User"}},
            {"id": 2, "body": format!("{}\nthe EU org", marker("slack-eu", 1)), "user": {"type": "Bot"}},
        ],
    });
    let ours = |state: &Value| -> Vec<(u64, String)> {
        state["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"].as_u64().unwrap() >= 100)
            .map(|c| {
                (
                    c["id"].as_u64().unwrap(),
                    c["body"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    post_comments(dir.path(), &mut state, &[part(1, "first push")]);
    assert_eq!(ours(&state), [(100, part(1, "first push"))]);

    // A longer plan: part 1 updated in place, parts 2 and 3 created.
    let three = [part(1, "a"), part(2, "b"), part(3, "c")];
    post_comments(dir.path(), &mut state, &three);
    assert_eq!(
        ours(&state),
        [
            (100, three[0].clone()),
            (101, three[1].clone()),
            (102, three[2].clone())
        ]
    );

    // Shorter again: part 1 updated, the surplus deleted; nobody else's comment moved.
    post_comments(dir.path(), &mut state, &[part(1, "third push")]);
    assert_eq!(ours(&state), [(100, part(1, "third push"))]);
    let calls: Vec<String> = state["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["name"].as_str().unwrap(), c["id"]))
        .collect();
    assert_eq!(
        calls,
        ["list null", "update 100", "delete 101", "delete 102"]
    );
    let bodies: Vec<&str> = state["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert!(bodies[0].ends_with("I quote it") && bodies[1].ends_with("the EU org"));
}
