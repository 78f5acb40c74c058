//! `doctor`: what plan, apply and the controller need, checked before they need it.

use std::path::PathBuf;

use clap::Args;

use super::{SlackArgs, StateArgs, emit, environment, runtime};
use crate::doctor::{Check, Status};
use crate::pipeline;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The config repository.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    slack: SlackArgs,
    #[command(flatten)]
    state: StateArgs,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    format: String,
    /// The remote the controller will follow (as `controller --repo`): checked to answer
    /// and to have `--branch`, with the controller's credentials.
    #[arg(long)]
    repo: Option<String>,
    /// The protected branch on `--repo`.
    #[arg(long, default_value = "main")]
    branch: String,
    /// The SSH key for `--repo` (as the controller's).
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// The known_hosts file for `--repo` (as the controller's).
    #[arg(long)]
    known_hosts: Option<PathBuf>,
}

/// With `SLACK_SIGNING_SECRET`, `SLACK_APP_TOKEN` or `SLACK_AUDIT_TOKEN` in the
/// environment (the controller's), their needs are checked too.
/// Exit 0 when all is ready, 1 when something blocks a command, 2 for warnings only.
pub(super) fn doctor(args: &DoctorArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "--format must be text or json"
    );
    let connection = pipeline::connect(&args.dir, &args.slack.connect(), &environment)?;
    let secret = |name: &str| environment(name).filter(|v| !v.is_empty());
    let mirror = crate::doctor::Mirror {
        events: secret("SLACK_SIGNING_SECRET").is_some() || secret("SLACK_APP_TOKEN").is_some(),
        app_token: secret("SLACK_APP_TOKEN").map(crate::slack::client::Token::new),
        audit_token: secret("SLACK_AUDIT_TOKEN").map(crate::slack::client::Token::new),
    };
    let mut checks = runtime()?.block_on(crate::doctor::check(&connection, &mirror));
    if let Some(repo) = &args.repo {
        checks.push(crate::doctor::remote(&crate::doctor::Remote {
            repo: repo.clone(),
            branch: args.branch.clone(),
            access: crate::controller::git::Access {
                token: secret("SLACK_GITOPS_GIT_TOKEN"),
                username: secret("SLACK_GITOPS_GIT_USERNAME"),
                ssh_key: args.ssh_key.clone(),
                ssh_passphrase: secret("SLACK_GITOPS_GIT_SSH_PASSPHRASE"),
                known_hosts: args.known_hosts.clone(),
            },
        }));
    }
    if let Ok(spec) = args.state.spec() {
        let text = spec.to_string_lossy().to_string();
        let exists = crate::store::is_url(&text) || spec.exists();
        let shown = if crate::store::is_url(&text) {
            crate::store::redact_url(&text)
        } else {
            text.clone()
        };
        checks.push(crate::doctor::store(&shown, exists, || {
            args.state.open().map(|_| ()).map_err(|e| e.to_string())
        }));
    }
    let out = match args.format.as_str() {
        "json" => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({ "checks": checks }))?;
            text.push('\n');
            text
        }
        _ => text(&checks),
    };
    emit(&out)?;
    Ok(crate::doctor::exit_code(&checks) as u8)
}

fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let mark = match check.status {
            Status::Ok => "ok     ",
            Status::Warning => "warning",
            Status::Blocking => "BLOCKS ",
        };
        out.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    out
}
