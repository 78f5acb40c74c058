//! The README, held to the tool: its config files validate, every `slack-gitops` command
//! it shows names a command and flags the binary has, its alert rules are the tested
//! ones in `deploy/prometheus/`, and the apply output it quotes is what an apply prints.

use crate::common;
use crate::common::org::Org;

fn readme() -> String {
    std::fs::read_to_string(common::fixture("README.md")).unwrap()
}

/// The fenced blocks of a Markdown text: (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The README's example config files, each a YAML block whose first line names it
/// (`# mappings/engineering.yaml`), written into acme's repository in place of its own
/// files: together they must validate.
#[test]
fn the_readmes_config_files_validate() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("config");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    for dir in ["mappings", "policies", "approvals"] {
        std::fs::remove_dir_all(repo.join(dir)).unwrap();
        std::fs::create_dir(repo.join(dir)).unwrap();
    }
    let mut written = Vec::new();
    for (info, body) in blocks(&readme()) {
        let first = body.lines().next().unwrap_or_default();
        let Some(path) = first.strip_prefix("# ").filter(|p| p.ends_with(".yaml")) else {
            continue;
        };
        assert_eq!(info, "yaml", "{path}");
        // An approval's hash is a placeholder in the README (`sha256:3f1c...`).
        if path.starts_with("approvals/") {
            continue;
        }
        std::fs::write(repo.join(path), &body).unwrap();
        written.push(path.to_string());
    }
    assert_eq!(
        written,
        [
            "slack-gitops.yaml",
            "mappings/engineering.yaml",
            "policies/guardrails.yaml"
        ]
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["validate", repo.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // Its mapping names IdP groups the README does not define; acme's export has them.
    assert_eq!(output.status.code(), Some(0), "{out}");
}

/// Every `slack-gitops SUBCOMMAND ... --flag` line of a shell or text block: the
/// subcommand exists and its `--help` lists each flag.
#[test]
fn every_command_the_readme_shows_exists_with_its_flags() {
    let help = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let mut checked = 0;
    for (info, body) in blocks(&readme()) {
        if !matches!(info.as_str(), "sh" | "text" | "yaml") {
            continue;
        }
        // Continuation lines join their command.
        let text = body.replace("\\\n", " ");
        for line in text.lines() {
            let line = line.trim_start_matches("- run: ").trim_start_matches("$ ");
            let Some(rest) = line.strip_prefix("slack-gitops ") else {
                continue;
            };
            let words: Vec<&str> = rest.split('#').next().unwrap().split_whitespace().collect();
            let mut command = vec![words[0]];
            if words[0] == "export" {
                command.push(words[1]);
            }
            let (ok, usage) = help(&command);
            assert!(
                ok,
                "`slack-gitops {}` is not a command: {line}",
                command.join(" ")
            );
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    usage.contains(&format!("{flag} ")) || usage.contains(&format!("{flag}\n")),
                    "`slack-gitops {}` has no {flag}: {line}",
                    command.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} commands found");
}

/// The README's alert rules are the ones `deploy/prometheus/alerts.yaml` holds (which
/// `promtool test rules` tests): each alert it shows stands there with the same `expr`
/// (white space aside) and `for`.
#[test]
fn the_readmes_alerts_are_the_tested_rules() {
    use serde_json::Value;
    let parse = |text: &str| -> Value { slack_gitops::config::yaml_data::from_str(text).unwrap() };
    let file = std::fs::read_to_string(common::fixture("deploy/prometheus/alerts.yaml")).unwrap();
    let rules: Vec<Value> = parse(&file)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect();
    let readme = readme();
    let block = blocks(&readme)
        .into_iter()
        .find(|(_, body)| body.contains("- alert: SlackGitops"))
        .unwrap()
        .1;
    let words = |v: &Value| {
        v.as_str()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let shown = parse(&block);
    let shown = shown.as_array().unwrap();
    // Every rule is shown.
    assert_eq!(shown.len(), rules.len());
    for alert in shown {
        let rule = rules
            .iter()
            .find(|r| r["alert"] == alert["alert"])
            .unwrap_or_else(|| panic!("{} is not in alerts.yaml", alert["alert"]));
        assert_eq!(
            words(&alert["expr"]),
            words(&rule["expr"]),
            "{}",
            alert["alert"]
        );
        assert_eq!(alert["for"], rule["for"], "{}", alert["alert"]);
    }
}

/// A line of quoted output as a pattern: numbers, hashes, commits and emails may differ.
fn shape(line: &str) -> String {
    let mut out = String::new();
    for word in line.split(' ') {
        let shaped = if word.contains('@') {
            "<email>".to_string()
        } else {
            word.chars()
                .map(|c| if c.is_ascii_hexdigit() { '#' } else { c })
                .collect::<String>()
        };
        out.push_str(&shaped);
        out.push(' ');
    }
    // Runs of digits (and hex) collapse, so `45` and `3` have one shape.
    let mut collapsed = String::new();
    for c in out.chars() {
        if !(c == '#' && collapsed.ends_with('#')) {
            collapsed.push(c);
        }
    }
    collapsed
}

/// The apply output the README quotes (`$ slack-gitops apply config`) has the shape of
/// what applying acme prints: each quoted line matches a printed one, numbers, hashes
/// and people aside.
#[tokio::test(flavor = "multi_thread")]
async fn the_readmes_apply_output_is_what_apply_prints() {
    let readme = readme();
    let quoted = blocks(&readme)
        .into_iter()
        .find(|(info, body)| info == "text" && body.starts_with("$ slack-gitops apply config\n"))
        .unwrap()
        .1;
    let org = Org::new(|_| {}).await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let printed: Vec<String> = out.lines().map(shape).collect();
    for line in quoted.lines().skip(1) {
        if line.trim() == "..." {
            continue;
        }
        // The README shortens the hash with an ellipsis.
        let wanted = shape(line.trim_end_matches("...."));
        let wanted = wanted.trim_end().trim_end_matches('.');
        assert!(
            printed
                .iter()
                .any(|p| p.starts_with(wanted.trim()) || p.trim().starts_with(wanted.trim())),
            "the README quotes `{line}`, and apply prints nothing of that shape:\n{out}"
        );
    }
}
