//! What users deploy, checked for what the linters cannot see: each Kustomization lists
//! every manifest, tokens and secrets only come from Secret references, the controller
//! runs non-root and read-only with its probes on `/livez` and `/readyz` (one replica on
//! a volume in the base, two on PostgreSQL in the ha overlay), and the workflows call
//! commands and flags the binary has. (`.ci/run` runs actionlint,
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
fn each_kustomization_lists_every_manifest_beside_it() {
    for dir in ["common", "base", "ha"] {
        let dir = root().join("deploy/kubernetes").join(dir);
        let kustomization = yaml(&dir.join("kustomization.yaml"));
        let listed: BTreeSet<String> = kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .filter(|r| !r.starts_with("../"))
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        assert_eq!(listed, present, "{}", dir.display());
    }
}

/// What both deployments promise: non-root, read-only, probed, sized, secrets only by
/// reference, and only flags the controller has.
fn locked_down(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
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
        if name.contains("TOKEN") || name.contains("SECRET") || name.contains("STATE") {
            assert!(
                variable.get("value").is_none()
                    && variable["valueFrom"]["secretKeyRef"].is_object(),
                "{name} must come from a Secret"
            );
        }
    }
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

fn env_names(deployment: &Value) -> BTreeSet<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_base_runs_one_locked_down_replica_on_a_volume() {
    let deployment = yaml(&root().join("deploy/kubernetes/base/deployment.yaml"));
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    locked_down(&deployment);
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[0]["persistentVolumeClaim"]["claimName"],
        "slack-gitops-state"
    );
}

#[test]
fn the_ha_overlay_rolls_two_replicas_on_postgres_from_a_secret() {
    let dir = root().join("deploy/kubernetes/ha");
    let deployment = yaml(&dir.join("deployment.yaml"));
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    locked_down(&deployment);
    let env = env_names(&deployment);
    for name in [
        "SLACK_GITOPS_STATE",
        "SLACK_GITOPS_STATE_PASSWORD",
        "POD_NAME",
        "POD_IP",
    ] {
        assert!(env.contains(name), "{name} is not set: {env:?}");
    }
    let args: Vec<&str> = spec["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--replica=$(POD_NAME)"), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--state")),
        "the URL comes from the Secret"
    );
    // No volume claim: a ReadWriteOnce volume would pin both replicas to one node.
    assert!(
        !std::fs::read_to_string(dir.join("deployment.yaml"))
            .unwrap()
            .contains("persistentVolumeClaim")
    );
    let budget = yaml(&dir.join("poddisruptionbudget.yaml"));
    assert_eq!(budget["spec"]["minAvailable"], 1);
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
        seen, 5,
        "validate, the policy tests and plan on pull requests, apply on merge, plan for drift"
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
        BTreeSet::from([
            "validate".to_string(),
            "policy".into(),
            "plan".into(),
            "apply".into()
        ])
    );
}

/// The alerts the README recommends are a rule file that `promtool` checks, and their
/// unit tests pass: each fires on the series the controller exports (bucket bounds as
/// `le="16384.0"`, subtracted `ignoring(le)`) and stays quiet otherwise.
#[test]
fn the_documented_alerts_fire_on_the_exported_series() {
    let dir = root().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yaml"],
        vec!["test", "rules", "alerts.test.yaml"],
    ] {
        let output = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool is needed: apt-get install prometheus (.ci/run installs it)");
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The README shows the same rules.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let rules = std::fs::read_to_string(dir.join("alerts.yaml")).unwrap();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
    {
        assert!(
            readme.contains(line.trim()),
            "README lacks `{}`",
            line.trim()
        );
    }
    assert!(readme.contains(r#"ignoring(le) increase(slack_gitops_deactivation_latency_seconds_bucket{le="16384.0"}[1d])"#));
}

/// The PrometheusRule manifest carries the tested alerts: its `spec` is alerts.yaml.
#[test]
fn the_prometheus_rule_manifest_is_the_tested_rule_file() {
    let manifest = yaml(&root().join("deploy/kubernetes/common/prometheusrule.yaml"));
    let rules = yaml(&root().join("deploy/prometheus/alerts.yaml"));
    assert_eq!(manifest["kind"], "PrometheusRule");
    assert_eq!(manifest["spec"], rules);
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/grafana/slack-gitops.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every PromQL query of the Grafana dashboard, Grafana's `$__rate_interval` as `5m`.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard = dashboard();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queries.push((
                panel["title"].as_str().unwrap().to_string(),
                expr.replace("$__rate_interval", "5m"),
            ));
        }
    }
    queries
}

/// The metric names the alerts and the dashboard query: each must be one the controller
/// exports (tests/it/controller.rs checks them against a real `/metrics`).
pub fn queried_metrics() -> BTreeSet<String> {
    let mut text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap();
    for (_, expr) in dashboard_queries() {
        text.push('\n');
        text.push_str(&expr);
    }
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("slack_gitops_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The Grafana dashboard (deploy/grafana): every query is PromQL that promtool parses
/// (each checked as a recording rule), every panel names the dashboard's data source
/// variable, and no two panels share an id or a place on the grid.
#[test]
fn the_grafana_dashboard_parses_and_its_panels_do_not_overlap() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = ["x", "y", "w", "h"]
            .map(|k| grid[k].as_u64().unwrap())
            .into();
        assert!(x + w <= 24, "{title}: wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title}: overlaps another panel");
            }
        }
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
            assert!(!panel["targets"].as_array().unwrap().is_empty(), "{title}");
        }
    }
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource")
    );

    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, expr)) in dashboard_queries().iter().enumerate() {
        let expr = serde_json::to_string(expr).unwrap();
        file.push_str(&format!(
            "      # {title}\n      - record: dashboard:query{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yaml"), &file).unwrap();
    let output = std::process::Command::new("promtool")
        .args(["check", "rules", "dashboard.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool is needed: apt-get install prometheus (.ci/run installs it)");
    assert!(
        output.status.success(),
        "promtool: {}{}\n{file}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
