//! What this tool persists and compares across versions is byte for byte what the
//! single-crate layout wrote for `examples/acme`: the JSON plan (with its approval hash
//! and destructive set), the journal keys of applying it, and the snapshot of its Slack.
//! The files under `tests/it/golden/` were written by the binary of that layout.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common;

fn golden(name: &str) -> String {
    std::fs::read_to_string(common::fixture(&format!("tests/it/golden/{name}"))).unwrap()
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slack-gitops"));
    command
        .env_remove("SLACK_ADMIN_TOKEN")
        .env_remove("SLACK_BOT_TOKEN");
    command
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.email=test@acme.example", "-c", "user.name=Test"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn the_json_plan_with_its_hash_is_what_the_previous_layout_wrote() {
    let temp = tempfile::tempdir().unwrap();
    let acme = temp.path().join("acme");
    common::copy_dir(&common::fixture("examples/acme"), &acme);
    // The golden plan predates the Rego policies (which add the JSON plan's `policy`
    // field): the same input without them.
    for entry in std::fs::read_dir(acme.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let output = binary()
        .arg("plan")
        .arg(&acme)
        .arg("--emulator")
        .arg(common::fixture("examples/acme/slack.json"))
        .args(["--format", "json", "--time-scale", common::org::TIME_SCALE])
        .output()
        .unwrap();
    let plan = String::from_utf8(output.stdout).unwrap();
    assert_eq!(plan, golden("acme-plan.json"));
}

#[test]
fn the_journal_keys_of_applying_acme_are_what_the_previous_layout_wrote() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "acme"]);
    git(
        temp.path(),
        &["init", "-q", "--bare", "-b", "main", "origin.git"],
    );
    let origin = temp.path().join("origin.git");
    git(
        &repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&repo, &["push", "-q", "-u", "origin", "main"]);
    let output = binary()
        .arg("apply")
        .arg(&repo)
        .arg("--emulator")
        .arg(common::fixture("examples/acme/slack.json"))
        .arg("--state")
        .arg(temp.path().join("state.db"))
        .args(["--format", "json", "--time-scale", common::org::TIME_SCALE])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: String = report["execution"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}\n", r["key"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, golden("acme-journal-keys.txt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_is_what_the_previous_layout_wrote() {
    let emulator = common::start(
        common::org::acme_seed(),
        slack_emulator::Options {
            time_scale: common::org::TIME_SCALE.parse().unwrap(),
            ..Default::default()
        },
    )
    .await;
    let temp = tempfile::tempdir().unwrap();
    let acme = temp.path().join("acme");
    common::copy_dir(&common::fixture("examples/acme"), &acme);
    let out = temp.path().join("snapshot.json");
    let seed = common::org::acme_seed();
    let token = |kind, scope| seed.token_with(kind, scope).unwrap();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .arg("snapshot")
        .arg(&acme)
        .args(["--slack-url", &emulator.base])
        .args(["--time-scale", common::org::TIME_SCALE, "--out"])
        .arg(&out)
        .env(
            "SLACK_ADMIN_TOKEN",
            token(slack_emulator::world::TokenKind::User, "admin"),
        )
        .env(
            "SLACK_BOT_TOKEN",
            token(slack_emulator::world::TokenKind::Bot, "channels:read"),
        )
        .status()
        .await
        .unwrap();
    assert!(status.success());
    // When it was taken, the calls it took and the export's path on this machine belong
    // to the run, not the format.
    let mut snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let object = snapshot.as_object_mut().unwrap();
    object.remove("taken_at");
    object.remove("calls");
    if let Some(directory) = object.get_mut("directory").and_then(Value::as_object_mut) {
        directory.remove("source");
    }
    let expected: Value = serde_json::from_str(&golden("acme-snapshot.json")).unwrap();
    if snapshot != expected {
        let seen = std::env::temp_dir().join("slack-gitops-acme-snapshot.json");
        std::fs::write(&seen, serde_json::to_string_pretty(&snapshot).unwrap()).unwrap();
        panic!(
            "the snapshot differs from the golden one; it is in {}",
            seen.display()
        );
    }
}
