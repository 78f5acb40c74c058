//! What users deploy, checked for what the linters cannot see: the Kustomize base lists
//! every manifest, tokens and secrets only come from Secret references, the controller
//! runs as one non-root, read-only replica with its probes on `/livez` and `/readyz`, and
//! the workflows call commands and flags the binary has. (`.ci/run` runs actionlint,
//! hadolint and kubernetes-validate over the same files.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    slack_gitops::config::yaml::parse(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
        .value
}

#[test]
fn the_kustomize_base_lists_every_manifest() {
    let base = root().join("deploy/kubernetes/base");
    let kustomization = yaml(&base.join("kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn the_controller_runs_as_one_locked_down_replica_with_secrets_by_reference() {
    let deployment = yaml(&root().join("deploy/kubernetes/base/deployment.yaml"));
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    for variable in container["env"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        if name.contains("TOKEN") || name.contains("SECRET") {
            assert!(
                variable.get("value").is_none()
                    && variable["valueFrom"]["secretKeyRef"].is_object(),
                "{name} must come from a Secret"
            );
        }
    }
    // The args are the controller's own flags.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["controller", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in container["args"].as_array().unwrap().iter().skip(1) {
        let flag = arg.as_str().unwrap().split('=').next().unwrap();
        assert!(help.contains(flag), "`controller` has no {flag}");
    }
}

/// Every `command`/`args` pair the example workflows give the action.
fn action_steps(workflow: &Path) -> Vec<(String, String)> {
    let document = yaml(workflow);
    let mut steps = Vec::new();
    for job in document["jobs"].as_object().unwrap().values() {
        for step in job["steps"].as_array().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("slack-gitops/slack-gitops@"))
            {
                let with = &step["with"];
                steps.push((
                    with["command"].as_str().unwrap().to_string(),
                    with["args"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    steps
}

#[test]
fn the_workflows_use_commands_and_flags_the_binary_has() {
    let workflows = root().join("examples/github-actions");
    let mut seen = 0;
    for name in ["plan.yml", "apply.yml", "drift.yml"] {
        for (command, args) in action_steps(&workflows.join(name)) {
            let help = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
                .args([command.as_str(), "--help"])
                .output()
                .unwrap();
            assert!(help.status.success(), "{name}: no command {command}");
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in args.split_whitespace().filter(|w| w.starts_with("--")) {
                assert!(help.contains(flag), "{name}: `{command}` has no {flag}");
            }
            seen += 1;
        }
    }
    assert_eq!(
        seen, 4,
        "validate and plan on pull requests, apply on merge, plan for drift"
    );
}

#[test]
fn the_gitlab_pipeline_uses_commands_and_flags_the_binary_has() {
    let pipeline = root().join("examples/gitlab-ci/.gitlab-ci.yml");
    let document = yaml(&pipeline);
    let mut seen = BTreeSet::new();
    for job in ["plan", "apply"] {
        for line in document[job]["script"].as_array().unwrap() {
            let line = line.as_str().unwrap();
            // Each `slack-gitops COMMAND ...` up to the end of its shell command.
            for invocation in line.split("slack-gitops ").skip(1) {
                let words: Vec<&str> = invocation
                    .split([';', '|', '\n'])
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                let command = words[0];
                if command.ends_with(':') {
                    continue; // the marker text, `<!-- slack-gitops plan: ... -->`
                }
                let help = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
                    .args([command, "--help"])
                    .output()
                    .unwrap();
                assert!(help.status.success(), "no command {command}");
                let help = String::from_utf8_lossy(&help.stdout);
                for flag in words.iter().filter(|w| w.starts_with("--")) {
                    assert!(help.contains(*flag), "`{command}` has no {flag}");
                }
                seen.insert(command.to_string());
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["validate".to_string(), "plan".into(), "apply".into()])
    );
}
