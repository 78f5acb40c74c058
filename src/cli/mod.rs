//! The command line: parsing and rendering. Each command's arguments are one
//! `#[derive(Args)]` struct in the file of its family; the command reads what it needs
//! (files, environment), calls the library (`pipeline`, `apply`, `controller`, `export`)
//! and the pure core, renders, and returns the process exit code. `main` only sets up
//! logging and maps errors to exit code 1.

mod apply;
mod controller;
mod doctor;
mod emulator;
mod export;
mod import;
mod plan;
mod policy;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::pipeline;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (invalid config, API failure).
pub const EXIT_ERROR: u8 = 1;
/// Exit code of `plan --detailed-exitcode` when there are changes.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code when changes exceed a guardrail and need approval, or were refused.
pub const EXIT_NEEDS_APPROVAL: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "slack-gitops", version, about = "Slack identity as code")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines (stderr; the level from SLACK_GITOPS_LOG, default warn) are written:
    /// text, or one JSON object per line for a log pipeline.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up logging to stderr: the level from `SLACK_GITOPS_LOG` (default `warn`), text or
/// JSON lines.
pub fn init_logging(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLACK_GITOPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config repository: schema and semantic checks, every problem at file:line:col.
    Validate(validate::ValidateArgs),
    /// Run a local fake Slack (SCIM v2 + Web API) with Slack's rate limits, pagination
    /// and errors.
    Emulator(emulator::EmulatorArgs),
    /// Desired vs live: the ordered changes, each with its reason, and the guardrail verdict.
    Plan(plan::PlanArgs),
    /// Converge Slack to a merged commit of the config repository, within the guardrails.
    Apply(apply::ApplyArgs),
    /// Write the approval file for a plan's destructive set, to commit with the change.
    Approve(plan::ApproveArgs),
    /// Put people, roles, usergroup and channel memberships back as a snapshot saved them.
    Restore(apply::RestoreArgs),
    /// Keep Slack converged to the protected branch: apply new commits, reconcile drift on
    /// schedule, serve /metrics, /livez, /readyz, /status and the webhooks.
    Controller(controller::ControllerArgs),
    /// Evidence for auditors.
    Export {
        #[command(subcommand)]
        what: export::ExportWhat,
    },
    /// Who gained and lost which access, when and why, from the state store.
    History(export::HistoryArgs),
    /// Save the live Slack state and the identity directory as versioned JSON.
    Snapshot(plan::SnapshotArgs),
    /// Check what plan, apply and the controller need (tokens, scopes, the Slack plan,
    /// SCIM, the bot in private channels, the identity source), each problem with its fix.
    Doctor(doctor::DoctorArgs),
    /// Adopt an existing org: write mappings from live Slack and the identity provider,
    /// with the rule behind each membership and its exceptions; the plan right after
    /// changes no membership.
    Import(import::ImportArgs),
    /// The repository's Rego policies.
    Policy {
        #[command(subcommand)]
        what: policy::PolicyWhat,
    },
    /// Print the JSON schema of a file kind (config, mappings, policy, approval), or all.
    Schema(validate::SchemaArgs),
}

/// Runs one command and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(args) => validate::validate(&args),
        Command::Schema(args) => validate::print_schema(&args),
        Command::Snapshot(args) => plan::snapshot(&args),
        Command::Doctor(args) => doctor::doctor(&args),
        Command::Import(args) => import::run(&args),
        Command::Policy {
            what: policy::PolicyWhat::Test(args),
        } => policy::test(&args),
        Command::Plan(args) => plan::plan(&args),
        Command::Approve(args) => plan::approve(args),
        Command::Apply(args) => apply::apply(&args),
        Command::Restore(args) => apply::restore(&args),
        Command::Controller(args) => controller::controller(args),
        Command::Export {
            what: export::ExportWhat::AccessReview(args),
        } => export::access_review(&args),
        Command::History(args) => export::history(&args),
        Command::Emulator(args) => emulator::run(&args),
    }
}

/// How a command reaches Slack: the flags every command that reads Slack shares.
#[derive(Debug, Clone, Args)]
pub struct SlackArgs {
    /// One base URL for Slack's APIs (`BASE/api/`, `BASE/scim/v2/`), such as the
    /// emulator's; real Slack by default (or `slack.url` in the config).
    #[arg(long)]
    pub slack_url: Option<String>,
    /// Wait this many times shorter (to match an emulator's --time-scale); the
    /// controller's drift intervals shrink with it.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}

impl SlackArgs {
    fn connect(&self) -> pipeline::ConnectOptions {
        pipeline::ConnectOptions {
            slack_url: self.slack_url.clone(),
            time_scale: self.time_scale,
            ..Default::default()
        }
    }
}

/// Which commit a command reads the config at: a clone, a commit reachable from the
/// protected branch, and that branch.
#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    /// The config repository: a git clone, or a folder inside one.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The commit (default: the tip of the protected branch). It must be reachable from
    /// the protected branch.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// The protected branch, as the remote has it (`main` is `origin/main`); default:
    /// `gitops.branch` at the tip of the remote's default branch.
    #[arg(long)]
    pub branch: Option<String>,
}

impl CommitArgs {
    fn checkout(
        &self,
    ) -> Result<crate::gitops::commit::Checkout, crate::gitops::commit::GitopsError> {
        crate::gitops::commit::checkout(
            &self.dir,
            self.reference.as_deref(),
            self.branch.as_deref(),
        )
    }
}

/// The state store flag of the commands that keep or read a record.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// The state store: an SQLite file or a postgres:// URL (password in
    /// SLACK_GITOPS_STATE_PASSWORD or the file SLACK_GITOPS_STATE_PASSWORD_FILE names);
    /// default `$SLACK_GITOPS_STATE` or under the user's state directory.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

impl StateArgs {
    /// The store `--state` names (a file or a `postgres://` URL), else the default file.
    pub(super) fn spec(&self) -> anyhow::Result<PathBuf> {
        match &self.state {
            Some(path) => Ok(path.clone()),
            None => crate::store::default_path(&environment).ok_or_else(|| {
                anyhow::anyhow!("no state store: pass --state or set SLACK_GITOPS_STATE")
            }),
        }
    }

    /// The store, for a command that only reads it: a file store must exist already, so
    /// a mistyped `--state` is an error, never an empty store read as "no record".
    fn open_existing(&self) -> anyhow::Result<crate::store::Store> {
        let spec = self.spec()?;
        let text = spec.to_string_lossy();
        anyhow::ensure!(
            crate::store::is_url(&text) || spec.exists(),
            "the state store {} does not exist: nothing has been recorded there (check --state or SLACK_GITOPS_STATE; apply and the controller create it)",
            spec.display()
        );
        self.open()
    }

    fn open(&self) -> anyhow::Result<crate::store::Store> {
        let spec = self.spec()?;
        let password = crate::store::password(&environment)?;
        Ok(crate::store::Store::open_spec(
            &spec.to_string_lossy(),
            password,
        )?)
    }
}

/// Output formats of `plan`, `apply` and `restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For terminals.
    Text,
    /// A pull-request comment.
    Markdown,
    /// The versioned JSON plan.
    Json,
    /// `plan` only: the input its Rego policies see (config, identity, plan), to run
    /// `opa` or `conftest` on it elsewhere.
    PolicyInput,
}

/// Colour choice for text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// The log format chosen on the command line, for the lines the CLI writes itself.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// Writes a command's output to standard output. A reader that went away (`| head`) is
/// an `io::Error` of kind `BrokenPipe`, which `main` takes as a quiet end, never a panic.
fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Whether an error is only the reader of standard output having gone away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A progress line on a terminal; a log line otherwise.
fn progress(message: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{message}");
    } else {
        tracing::info!("{message}");
    }
}

/// The commands' runtime: one thread drives every request (the work is waiting on Slack
/// within its rate limits), and CPU-bound reads such as a large identity export run on
/// the blocking pool beside it. Worker threads handing requests to each other cost more
/// CPU in wake-ups than they save: measured on `plan` at 200,000 people, 4.7 s of CPU
/// with two workers, 4.2 s with one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The controller's runtime: a server, whose probes and webhooks must be answered while a
/// sync plans a large org, so every core gets a worker.
fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The process environment, as the library's lookups take it.
fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads a JSON plan written by `plan --out`.
fn read_plan_document(path: &Path) -> anyhow::Result<crate::render::plan::PlanDocument> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    crate::render::plan::PlanDocument::parse(&text).map_err(|message| {
        anyhow::anyhow!(
            "{} is not a JSON plan written by --out: {message}",
            path.display()
        )
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
