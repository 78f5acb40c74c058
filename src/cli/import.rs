//! `import`: adopt an existing org into a config repository.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EXIT_OK, SlackArgs, emit, environment, runtime};
use crate::adopt::{Options, SplitBy};
use crate::adoption::{ImportOptions, import};
use crate::pipeline;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The config repository: a folder with a `slack-gitops.yaml` naming the org and the
    /// identity source (or, with `--slack-plan` and the flags after it, one is written).
    /// Mappings are written to `mappings/`, and a starting policy to
    /// `policies/default.yaml` when it has none.
    dir: PathBuf,
    /// How mappings are split into files: by the first word of a handle or channel name
    /// (`eng-backend` -> `mappings/eng.yaml`), by workspace, or into one file.
    #[arg(long, value_enum, default_value_t = SplitArg::Prefix)]
    split_by: SplitArg,
    /// Import only these (repeatable): `@eng*` usergroups by handle, `#eng-*` channels by
    /// name, `eng*` both. Usergroups and channels the repository already maps are
    /// skipped, so an org adopts piece by piece.
    #[arg(long)]
    only: Vec<String>,
    /// Import again what an earlier import wrote: its files (never hand-written ones)
    /// are set aside, their usergroups and channels imported afresh. Without it, a file
    /// is never overwritten: a taken name gets a `-2` (`-3`...) suffix.
    #[arg(long)]
    force: bool,
    /// `text` or `json` (the report, on standard output).
    #[arg(long, default_value = "text")]
    format: String,
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    slack: SlackArgs,
}

/// A starting `slack-gitops.yaml`, written when the folder has none and `--slack-plan`
/// is given.
#[derive(Debug, Args)]
struct StartArgs {
    /// The org's Slack plan (`enterprise-grid` or `business-plus`): writes a starting
    /// slack-gitops.yaml from these flags.
    #[arg(long)]
    slack_plan: Option<String>,
    /// A workspace as NAME=TEAM_ID (repeatable).
    #[arg(long, value_name = "NAME=TEAM_ID")]
    workspace: Vec<String>,
    /// The environment variable of the admin token (default SLACK_ADMIN_TOKEN).
    #[arg(long)]
    token_env: Option<String>,
    /// The environment variable of the bot token, if any.
    #[arg(long)]
    bot_token_env: Option<String>,
    /// `file`, `scim`, `okta` or `entra`.
    #[arg(long)]
    identity_source: Option<String>,
    /// `file`: the export's path in the repository.
    #[arg(long)]
    identity_path: Option<String>,
    /// `scim`, `okta` (and optionally `entra`): the server's base URL.
    #[arg(long)]
    identity_url: Option<String>,
    /// `scim`, `okta`: the environment variable of the API token.
    #[arg(long)]
    identity_token_env: Option<String>,
    /// `entra`: the tenant id, the application (client) id, and the environment
    /// variable of the client secret.
    #[arg(long)]
    identity_tenant_id: Option<String>,
    #[arg(long)]
    identity_client_id: Option<String>,
    #[arg(long)]
    identity_client_secret_env: Option<String>,
    /// `eager` (accounts made ahead) or `just-in-time` (made at first sign-in).
    #[arg(long, default_value = "eager")]
    provisioning: String,
    /// An IdP group whose members get a Slack account (repeatable).
    #[arg(long)]
    scope: Vec<String>,
}

impl StartArgs {
    fn start(&self, plan: &str) -> anyhow::Result<crate::adopt::write::Start> {
        let mut workspaces = Vec::new();
        for text in &self.workspace {
            let (name, team) = text
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--workspace takes NAME=TEAM_ID, not {text:?}"))?;
            workspaces.push((name.to_string(), team.to_string()));
        }
        let source = self
            .identity_source
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--slack-plan needs --identity-source too"))?;
        let mut identity = vec![("source".to_string(), source)];
        for (key, value) in [
            ("path", &self.identity_path),
            ("url", &self.identity_url),
            ("token_env", &self.identity_token_env),
            ("tenant_id", &self.identity_tenant_id),
            ("client_id", &self.identity_client_id),
            ("client_secret_env", &self.identity_client_secret_env),
        ] {
            if let Some(value) = value {
                identity.push((key.to_string(), value.clone()));
            }
        }
        Ok(crate::adopt::write::Start {
            plan: plan.to_string(),
            workspaces,
            token_env: self.token_env.clone(),
            bot_token_env: self.bot_token_env.clone(),
            identity,
            provisioning: self.provisioning.clone(),
            scope: self.scope.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SplitArg {
    Prefix,
    Workspace,
    One,
}

pub(super) fn run(args: &ImportArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "--format must be text or json"
    );
    match &args.start.slack_plan {
        Some(plan) => crate::adoption::write_config(&args.dir, &args.start.start(plan)?)?,
        None => crate::adoption::has_config(&args.dir)?,
    }
    let connect = pipeline::ConnectOptions {
        every_group: true,
        ..args.slack.connect()
    };
    let connection = pipeline::connect(&args.dir, &connect, &environment)?;
    let options = ImportOptions {
        adopt: Options {
            split_by: match args.split_by {
                SplitArg::Prefix => SplitBy::Prefix,
                SplitArg::Workspace => SplitBy::Workspace,
                SplitArg::One => SplitBy::One,
            },
            only: args.only.clone(),
            taken: Default::default(),
            protect: Vec::new(),
        },
        force: args.force,
    };
    let report = runtime()?.block_on(import(&args.dir, &connection, &options))?;
    let out = match args.format.as_str() {
        "json" => crate::render::adoption::json(&report),
        _ => crate::render::adoption::text(&report),
    };
    emit(&out)?;
    Ok(EXIT_OK)
}
