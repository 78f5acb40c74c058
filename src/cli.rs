//! The command line: argument parsing and the commands' imperative shells.
//!
//! Each command reads what it needs (files, environment), calls the pure core, renders,
//! and returns the process exit code. `main` only sets up logging and maps errors to
//! exit code 1.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Kind, schema};
use crate::diagnostic::{Diagnostic, Severity};
use crate::gitops::worktree;
use crate::model::snapshot::{ReadCalls, Snapshot};
use crate::pipeline;
use crate::render::{self, Format};
use slack_emulator as emulator;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (invalid config, API failure).
pub const EXIT_ERROR: u8 = 1;

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
    Validate {
        /// The config repository (the directory holding slack-gitops.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How to print the diagnostics.
        #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
        format: ValidateFormat,
        /// When to colour text output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Run a local fake Slack (SCIM v2 + Web API) with Slack's rate limits, pagination
    /// and errors.
    Emulator {
        /// The seed: workspaces, people, usergroups, channels, IdP groups, apps, tokens.
        #[arg(long)]
        seed: PathBuf,
        /// Where to listen. Loopback by default; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8765")]
        listen: std::net::SocketAddr,
        /// Keep state in this file across restarts (written atomically).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Run every clock (rate limits, Retry-After, delays) this many times faster.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Desired vs live: the ordered changes, each with its reason, and the guardrail verdict.
    Plan {
        /// The config repository.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// One base URL for Slack's APIs, such as the emulator's; real Slack by default.
        #[arg(long)]
        slack_url: Option<String>,
        /// How to print the plan.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also write the JSON plan here (for CI artifacts).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the pull-request comments here, `comment-1.md`, `comment-2.md`...
        /// (one unless the plan is longer than GitHub's comment limit), each opening
        /// with the marker a CI job finds it by; older `comment-*.md` are removed.
        #[arg(long)]
        comment_dir: Option<PathBuf>,
        /// Plan against a built-in emulator seeded from this file instead of Slack (the
        /// demo). Its tokens are used unless the token variables are set.
        #[arg(long, conflicts_with = "slack_url")]
        emulator: Option<PathBuf>,
        /// Exit 0 with no changes, 2 with changes, 3 with changes that need approval or
        /// were refused.
        #[arg(long)]
        detailed_exitcode: bool,
        /// The JSON plan of the last good run (`--out` of an earlier plan): the identity
        /// snapshot may not shrink past the policy's `identity.max_shrink` against it.
        /// Without it, the plan is treated as a first run.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// When to colour text output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// Wait this many times shorter (to match an emulator's --time-scale).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Converge Slack to a merged commit of the config repository, within the guardrails.
    Apply {
        /// The config repository: a git clone, or a folder inside one.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The commit to apply (default: the tip of the protected branch). It must be
        /// reachable from the protected branch.
        #[arg(long = "ref")]
        reference: Option<String>,
        /// The protected branch, as the remote has it (`main` is `origin/main`); default:
        /// `gitops.branch` at the tip of the remote's default branch.
        #[arg(long)]
        branch: Option<String>,
        /// The JSON plan that was reviewed (`plan --out`): a destructive action it does not
        /// hold refuses the run.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// The state store: an SQLite file or a postgres:// URL; default
        /// `$SLACK_GITOPS_STATE` or under the user's state directory.
        #[arg(long)]
        state: Option<PathBuf>,
        /// One base URL for Slack's APIs, such as the emulator's; real Slack by default.
        #[arg(long)]
        slack_url: Option<String>,
        /// Apply to a built-in emulator seeded from this file (a demo: its state is gone
        /// when the command ends).
        #[arg(long, conflicts_with = "slack_url")]
        emulator: Option<PathBuf>,
        /// Do every check; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to print the report.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Break this stale org lock first (its id is in the refusal message).
        #[arg(long)]
        force_unlock: Option<String>,
        /// Wait this many times shorter (to match an emulator's --time-scale).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Write the approval file for a plan's destructive set, to commit with the change.
    Approve {
        /// The config repository.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The JSON plan to approve (`plan --out`).
        #[arg(long)]
        plan: PathBuf,
        /// Why these destructive changes are intended.
        #[arg(long)]
        reason: String,
        /// A ticket or change-request reference.
        #[arg(long)]
        ticket: Option<String>,
        /// When the approval lapses: a number of days (`7d`) or a date (`2026-12-01`).
        #[arg(long)]
        expires: Option<String>,
        /// Who approves, by email (repeatable); default: git's user.email.
        #[arg(long = "by")]
        approved_by: Vec<String>,
    },
    /// Put people, roles, usergroup and channel memberships back as a snapshot saved them.
    Restore {
        /// The config repository (for how to reach Slack and the org's store key).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Go back to the snapshot this run started from (printed by a halted apply).
        #[arg(
            long,
            conflicts_with = "snapshot",
            required_unless_present = "snapshot"
        )]
        run: Option<i64>,
        /// Go back to a snapshot file (`snapshot --out`).
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// Only these parts: people,usergroups,channels,roles (default all).
        #[arg(long)]
        only: Option<String>,
        /// Only these people, by email (comma-separated).
        #[arg(long, value_delimiter = ',')]
        people: Vec<String>,
        /// The state store: an SQLite file or a postgres:// URL (default `$SLACK_GITOPS_STATE`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// One base URL for Slack's APIs, such as the emulator's; real Slack by default.
        #[arg(long)]
        slack_url: Option<String>,
        /// Plan the way back; write nothing (prints the hash `--approve` takes).
        #[arg(long)]
        dry_run: bool,
        /// A restore that reactivates more people than `limits.deactivate` allows runs
        /// only with the hash its dry run printed.
        #[arg(long)]
        approve: Option<String>,
        /// How to print the report.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Break this stale org lock first.
        #[arg(long)]
        force_unlock: Option<String>,
        /// Wait this many times shorter (to match an emulator's --time-scale).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Keep Slack converged to the protected branch: apply new commits, reconcile drift on
    /// schedule, serve /metrics, /livez, /readyz, /status and the webhooks.
    Controller {
        /// The config repository to clone: a local path, a file:// URL, an https:// URL
        /// (token in SLACK_GITOPS_GIT_TOKEN) or an ssh:// or user@host:path URL
        /// (--ssh-key).
        #[arg(long)]
        repo: String,
        /// The SSH private key for an SSH remote (its passphrase, if any, in
        /// SLACK_GITOPS_GIT_SSH_PASSPHRASE).
        #[arg(long)]
        ssh_key: Option<PathBuf>,
        /// The known_hosts file the SSH server's host key must be in (default
        /// ~/.ssh/known_hosts); an unknown host is refused.
        #[arg(long)]
        known_hosts: Option<PathBuf>,
        /// The protected branch.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The config directory inside the repository.
        #[arg(long, default_value = ".")]
        config_path: PathBuf,
        /// Where to listen for webhooks (port 0 picks a free one; the address is
        /// printed). Without --admin-listen, /livez, /readyz, /status and /metrics are
        /// served here too.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Serve /livez, /readyz, /status and /metrics here instead, so that only the
        /// webhooks need be exposed (/status names leavers).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// The state store: an SQLite file, or a postgres:// URL shared by replicas
        /// (password in SLACK_GITOPS_STATE_PASSWORD or the file
        /// SLACK_GITOPS_STATE_PASSWORD_FILE names).
        #[arg(long)]
        state: Option<PathBuf>,
        /// The lease replicas sharing the store elect their leader by.
        #[arg(long, default_value = "controller")]
        lease: String,
        /// This replica's name, unique among the replicas (default: $HOSTNAME, a pod's
        /// name; else the host's name and the process id).
        #[arg(long)]
        replica: Option<String>,
        /// How long the leader's lease lasts without renewal, in seconds: the longest a
        /// dead leader holds up the others.
        #[arg(long, default_value_t = 15.0)]
        lease_ttl: f64,
        /// The URL other replicas reach this one at (http://POD_IP:8080): a replica that
        /// does not lead hands the webhooks it receives to the one that does.
        #[arg(long)]
        advertise: Option<String>,
        /// Where to keep the clone (default: beside the state store).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Fetch this often without a webhook, in seconds.
        #[arg(long, default_value_t = 30.0)]
        poll: f64,
        /// One base URL for Slack's APIs, such as the emulator's; real Slack by default.
        #[arg(long)]
        slack_url: Option<String>,
        /// Wait this many times shorter (to match an emulator's --time-scale); drift
        /// intervals shrink with it.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Evidence for auditors.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Who gained and lost which access, when and why, from the state store.
    History {
        /// The config repository (for the org's key in the store).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// One person, by email.
        #[arg(long, group = "about")]
        person: Option<String>,
        /// One usergroup, by handle.
        #[arg(long, group = "about")]
        usergroup: Option<String>,
        /// One channel, by name.
        #[arg(long, group = "about")]
        channel: Option<String>,
        /// The state store: an SQLite file or a postgres:// URL (default `$SLACK_GITOPS_STATE`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Save the live Slack state and the identity directory as versioned JSON.
    Snapshot {
        /// The config repository.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// One base URL for Slack's APIs (`BASE/api/`, `BASE/scim/v2/`), such as the
        /// emulator's; real Slack by default (or `slack.url` in the config).
        #[arg(long)]
        slack_url: Option<String>,
        /// Write the snapshot here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Wait this many times shorter (to match an emulator's --time-scale).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Print the JSON schema of a file kind (config, mappings, policy, approval), or all.
    Schema {
        /// The kind; without it, an object of all four schemas keyed by kind.
        kind: Option<String>,
    },
}

/// What `export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Who has which access, since when, granted by which rule at which commit, under
    /// which approval; exceptions; leavers' offboarding evidence.
    AccessReview {
        /// The config repository: a git clone, or a folder inside one.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The commit to describe (default: the tip of the protected branch).
        #[arg(long = "ref")]
        reference: Option<String>,
        /// The protected branch, as the remote has it (`main` is `origin/main`); default:
        /// `gitops.branch` at the tip of the remote's default branch.
        #[arg(long)]
        branch: Option<String>,
        /// The state store: an SQLite file or a postgres:// URL (default `$SLACK_GITOPS_STATE`).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReviewFormat::Html)]
        format: ReviewFormat,
        /// A file (json, html) or a directory (csv); standard output otherwise.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leavers first seen on or after this date (YYYY-MM-DD); default 90 days ago.
        #[arg(long)]
        since: Option<String>,
        /// One base URL for Slack's APIs, such as the emulator's; real Slack by default.
        #[arg(long)]
        slack_url: Option<String>,
        /// Wait this many times shorter (to match an emulator's --time-scale).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
}

/// Formats of the access review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewFormat {
    Csv,
    Json,
    Html,
}

/// Output formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// For terminals: cargo-style snippets, colour on a TTY.
    Text,
    /// GitHub Actions workflow commands: annotations on the PR's lines.
    Github,
    /// A versioned JSON document, for machines.
    Json,
}

impl From<ValidateFormat> for Format {
    fn from(format: ValidateFormat) -> Format {
        match format {
            ValidateFormat::Text => Format::Text,
            ValidateFormat::Github => Format::Github,
            ValidateFormat::Json => Format::Json,
        }
    }
}

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For terminals.
    Text,
    /// A pull-request comment.
    Markdown,
    /// The versioned JSON plan.
    Json,
}

/// Exit code of `plan --detailed-exitcode` when there are changes.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code when changes exceed a guardrail and need approval.
pub const EXIT_NEEDS_APPROVAL: u8 = 3;

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

/// Runs one command and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate { dir, format, color } => validate(&dir, format.into(), color.enabled()),
        Command::Schema { kind } => print_schema(kind.as_deref()),
        Command::Snapshot {
            dir,
            slack_url,
            out,
            time_scale,
        } => snapshot(&dir, slack_url, out.as_deref(), time_scale),
        Command::Plan {
            dir,
            slack_url,
            format,
            out,
            comment_dir,
            emulator,
            detailed_exitcode,
            baseline,
            color,
            time_scale,
        } => plan(
            &dir,
            PlanTarget {
                slack_url,
                emulator,
            },
            &PlanOptions {
                format,
                out,
                comment_dir,
                detailed_exitcode,
                baseline,
                color: color.enabled(),
                time_scale,
            },
        ),
        Command::Apply {
            dir,
            reference,
            branch,
            plan,
            state,
            slack_url,
            emulator,
            dry_run,
            format,
            force_unlock,
            time_scale,
        } => apply(
            &dir,
            &ApplyArgs {
                reference,
                branch,
                plan,
                state,
                slack_url,
                emulator,
                dry_run,
                format,
                force_unlock,
                time_scale,
            },
        ),
        Command::Controller {
            repo,
            ssh_key,
            known_hosts,
            branch,
            config_path,
            listen,
            admin_listen,
            state,
            lease,
            replica,
            lease_ttl,
            advertise,
            workdir,
            poll,
            slack_url,
            time_scale,
        } => controller(ControllerArgs {
            repo,
            ssh_key,
            known_hosts,
            branch,
            config_path,
            listen,
            admin_listen,
            state,
            lease,
            replica,
            lease_ttl,
            advertise,
            workdir,
            poll,
            slack_url,
            time_scale,
        }),
        Command::Export {
            what:
                ExportWhat::AccessReview {
                    dir,
                    reference,
                    branch,
                    state,
                    format,
                    out,
                    since,
                    slack_url,
                    time_scale,
                },
        } => export_access_review(
            &dir,
            reference.as_deref(),
            branch.as_deref(),
            state.as_deref(),
            format,
            out.as_deref(),
            since.as_deref(),
            slack_url,
            time_scale,
        ),
        Command::History {
            dir,
            person,
            usergroup,
            channel,
            state,
        } => history(&dir, person, usergroup, channel, state.as_deref()),
        Command::Approve {
            dir,
            plan,
            reason,
            ticket,
            expires,
            approved_by,
        } => approve(
            &dir,
            &plan,
            &reason,
            ticket.as_deref(),
            expires.as_deref(),
            approved_by,
        ),
        Command::Restore {
            dir,
            run,
            snapshot,
            only,
            people,
            state,
            slack_url,
            dry_run,
            approve,
            format,
            force_unlock,
            time_scale,
        } => restore(
            &dir,
            &RestoreArgs {
                run,
                snapshot,
                only,
                people,
                approve,
                common: ApplyArgs {
                    reference: None,
                    branch: None,
                    plan: None,
                    state,
                    slack_url,
                    emulator: None,
                    dry_run,
                    format,
                    force_unlock,
                    time_scale,
                },
            },
        ),
        Command::Emulator {
            seed,
            listen,
            state,
            time_scale,
        } => run_emulator(&seed, listen, state, time_scale),
    }
}

fn run_emulator(
    seed: &Path,
    listen: std::net::SocketAddr,
    state: Option<PathBuf>,
    time_scale: f64,
) -> anyhow::Result<u8> {
    use std::io::Write;
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let world = emulator::read_world(seed)?;
    let options = emulator::Options {
        time_scale,
        state_path: state,
        ..emulator::Options::default()
    };
    let emulator = emulator::Emulator::new(world, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
        let address = listener.local_addr()?;
        println!(
            "slack-gitops emulator listening on http://{address} (Web API: http://{address}/api/, SCIM: http://{address}/scim/v2/)"
        );
        std::io::stdout().flush()?;
        emulator::serve(listener, emulator, shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(EXIT_OK)
}

/// Starts the built-in emulator seeded from `seed` (the `--emulator` demo), its clocks
/// scaled like the client's, and points `connect` at it with the seed's own tokens for
/// when the environment has none. Slack is served for as long as the value lives.
fn start_built_in(
    seed: &Path,
    runtime: &tokio::runtime::Runtime,
    connect: &mut pipeline::ConnectOptions,
) -> anyhow::Result<emulator::InProcess> {
    use emulator::world::TokenKind;
    let world = emulator::read_world(seed)?;
    connect.fallback = pipeline::Fallback {
        admin: world.token_with(TokenKind::User, "admin"),
        bot: world.token_with(TokenKind::Bot, "channels:read"),
    };
    let options = emulator::Options {
        time_scale: connect.time_scale,
        ..emulator::Options::default()
    };
    let built_in = runtime.block_on(emulator::InProcess::start(world, options))?;
    connect.slack_url = Some(built_in.url.clone());
    Ok(built_in)
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

/// With a `file` identity source, the export is local and cheap to read, so `validate`
/// also checks every IdP group name in the config against it. Other sources are remote
/// and are checked when `plan` reads them.
fn file_export_groups(
    dir: &Path,
    repository: &config::Repository,
) -> Result<Option<std::collections::BTreeSet<String>>, Diagnostic> {
    use crate::config::types::IdentitySource as Kind;
    use crate::identity::IdentitySource;
    let identity = &repository.config.value.identity;
    let (Kind::File, Some(path)) = (identity.source, &identity.path) else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let environment = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let read = crate::identity::file::FileSource::configured(dir, path, &environment)
        .map(|source| runtime.block_on(source.read()));
    match read.and_then(|read| read) {
        Ok(directory) => Ok(Some(directory.group_names())),
        Err(error) => Err(Diagnostic::error(
            crate::diagnostic::Code::IdentityExportUnreadable,
            &repository.config.file,
            repository.config.span("/identity/path"),
            format!("{error}; IdP group names were not checked"),
        )
        .warning()),
    }
}

fn validate(dir: &Path, format: Format, color: bool) -> anyhow::Result<u8> {
    let tree = worktree::read(dir)?;
    let loaded = config::load(&tree.files, None);
    let mut diagnostics: Vec<Diagnostic> = tree.diagnostics;
    diagnostics.extend(loaded.diagnostics);
    // A repository that loaded names IdP groups: each must be in the export.
    if let Some(repository) = loaded.repository {
        match file_export_groups(dir, &repository) {
            Ok(Some(known)) => diagnostics.extend(repository.unknown_groups(&known)),
            Ok(None) => {}
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    diagnostics.sort();
    diagnostics.dedup();

    // Diagnostics name repository-relative files; shown paths are relative to where the
    // command runs, so GitHub annotations land on the right file of the checkout.
    let prefix = display_prefix(dir);
    let mut sources = BTreeMap::new();
    for file in &tree.files {
        sources.insert(
            format!("{prefix}{}", file.path),
            String::from_utf8_lossy(&file.bytes).into_owned(),
        );
    }
    for diagnostic in &mut diagnostics {
        diagnostic.file = format!("{prefix}{}", diagnostic.file);
    }

    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let output = match format {
        Format::Text => {
            let mut text = render::diagnostics::text(&diagnostics, &sources, color);
            text.push_str(&summary(tree.files.len(), &diagnostics));
            text
        }
        Format::Github => render::diagnostics::github(&diagnostics),
        Format::Json => render::diagnostics::json(&diagnostics),
    };
    print!("{output}");
    Ok(if errors > 0 { EXIT_ERROR } else { EXIT_OK })
}

/// A progress line on a terminal; a log line otherwise.
fn progress(message: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{message}");
    } else {
        tracing::info!("{message}");
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn snapshot(
    dir: &Path,
    slack_url: Option<String>,
    out: Option<&Path>,
    time_scale: f64,
) -> anyhow::Result<u8> {
    let options = pipeline::ConnectOptions {
        slack_url,
        time_scale,
        ..Default::default()
    };
    let connection = pipeline::connect(dir, &options, &environment)?;
    let (directory, live, report) = runtime()?.block_on(connection.read())?;
    progress(&format!(
        "read {} people and {} groups from the identity provider; {} accounts, {} usergroups, {} channels from Slack in {} calls ({} rate limited)",
        directory.people.len(),
        directory.groups.len(),
        live.users.len(),
        live.usergroups.len(),
        live.channels.len(),
        report.calls,
        report.rate_limited
    ));
    let taken_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let calls = ReadCalls {
        made: report.calls,
        minimum: report.minimum_calls,
        rate_limited: report.rate_limited,
        retries: report.retries,
    };
    let document = Snapshot::new(taken_at, calls, live, directory);
    let text = document.to_json();
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(EXIT_OK)
}

/// Where `plan` reads Slack from.
struct PlanTarget {
    slack_url: Option<String>,
    /// A seed for a built-in emulator.
    emulator: Option<PathBuf>,
}

/// How `plan` prints and judges its result.
struct PlanOptions {
    format: PlanFormat,
    out: Option<PathBuf>,
    comment_dir: Option<PathBuf>,
    detailed_exitcode: bool,
    baseline: Option<PathBuf>,
    color: bool,
    time_scale: f64,
}

fn plan(dir: &Path, target: PlanTarget, options: &PlanOptions) -> anyhow::Result<u8> {
    let baseline = match &options.baseline {
        Some(path) => pipeline::read_baseline(path)?,
        None => pipeline::Baseline::default(),
    };
    let runtime = runtime()?;
    let mut connect = pipeline::ConnectOptions {
        slack_url: target.slack_url,
        time_scale: options.time_scale,
        ..Default::default()
    };
    let built_in = match &target.emulator {
        Some(seed) => {
            let built_in = start_built_in(seed, &runtime, &mut connect)?;
            progress(&format!(
                "planning against the built-in emulator seeded from {}",
                seed.display()
            ));
            Some(built_in)
        }
        None => None,
    };
    let connection = pipeline::connect(dir, &connect, &environment)?;
    let planned = runtime.block_on(pipeline::plan_org(&connection, &baseline))?;
    drop(built_in);
    for warning in &planned.warnings {
        eprintln!("warning: {warning}");
    }
    let mut report = planned.report();
    if let Some(tree) = crate::gitops::commit::describe(dir) {
        report.context.config_dir = Some(tree.config_dir);
        report.context.commit = tree.commit;
        report.context.dirty = tree.dirty;
    }
    report.context.previous = baseline.changes.clone();
    print_plan(&report, options)?;
    if let Some(dir) = &options.comment_dir {
        write_comments(dir, &render::plan::markdown_comments(&report))?;
    }
    let code = match (options.detailed_exitcode, &planned.verdict) {
        (false, _) => EXIT_OK,
        (true, crate::policy::Verdict::Refused { .. }) => EXIT_NEEDS_APPROVAL,
        (true, _) if planned.plan.actions.is_empty() => EXIT_OK,
        (true, crate::policy::Verdict::NeedsApproval { .. }) => EXIT_NEEDS_APPROVAL,
        (true, _) => EXIT_CHANGES,
    };
    // The process ends next: freeing the live model, the directory and the plan one
    // allocation at a time would cost about 5% of a 200,000-person plan for nothing.
    std::mem::forget(planned);
    Ok(code)
}

/// Prints the plan in its format and writes the JSON plan to `--out`. The JSON streams
/// to the file and is rendered once: with `--format json` too, stdout gets a copy of the
/// file.
fn print_plan(report: &render::plan::PlanReport, options: &PlanOptions) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut stdout = std::io::BufWriter::new(stdout.lock());
    if let Some(path) = &options.out {
        let fail =
            |error: std::io::Error| anyhow::anyhow!("cannot write {}: {error}", path.display());
        let file = std::fs::File::create(path).map_err(fail)?;
        let mut file = std::io::BufWriter::new(file);
        render::plan::write_json(report, &mut file).map_err(fail)?;
        file.flush().map_err(fail)?;
    }
    match (options.format, &options.out) {
        (PlanFormat::Json, Some(path)) => {
            let mut file = std::fs::File::open(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            std::io::copy(&mut file, &mut stdout)?;
        }
        (PlanFormat::Json, None) => render::plan::write_json(report, &mut stdout)?,
        (PlanFormat::Text, _) => {
            stdout.write_all(render::plan::text(report, options.color).as_bytes())?
        }
        (PlanFormat::Markdown, _) => stdout.write_all(render::plan::markdown(report).as_bytes())?,
    }
    stdout.flush()?;
    Ok(())
}

/// Writes `comment-N.md` into `dir` and removes the ones an earlier, longer plan left.
fn write_comments(dir: &Path, comments: &[String]) -> anyhow::Result<()> {
    let fail =
        |error: std::io::Error| anyhow::anyhow!("cannot write to {}: {error}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("comment-") && name.ends_with(".md") {
            std::fs::remove_file(&path).map_err(fail)?;
        }
    }
    for (i, comment) in comments.iter().enumerate() {
        std::fs::write(dir.join(format!("comment-{}.md", i + 1)), comment).map_err(fail)?;
    }
    Ok(())
}

/// The arguments of `apply`.
struct ApplyArgs {
    reference: Option<String>,
    branch: Option<String>,
    plan: Option<PathBuf>,
    state: Option<PathBuf>,
    slack_url: Option<String>,
    emulator: Option<PathBuf>,
    dry_run: bool,
    format: PlanFormat,
    force_unlock: Option<String>,
    time_scale: f64,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn apply(dir: &Path, args: &ApplyArgs) -> anyhow::Result<u8> {
    use crate::apply as applying;
    let checkout = match crate::gitops::commit::checkout(
        dir,
        args.reference.as_deref(),
        args.branch.as_deref(),
    ) {
        Ok(checkout) => checkout,
        Err(error) if error.is_refusal() => {
            eprintln!("{error}");
            return Ok(EXIT_NEEDS_APPROVAL);
        }
        Err(error) => return Err(error.into()),
    };
    progress(&format!(
        "applying {} at {} (reachable from {})",
        dir.display(),
        checkout.commit,
        checkout.branch
    ));
    let reviewed = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            Some(render::plan::PlanDocument::parse(&text).map_err(|message| {
                anyhow::anyhow!(
                    "{} is not a JSON plan written by --out: {message}",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let store = open_store(args.state.as_deref())?;
    let runtime = runtime()?;
    let mut connect = pipeline::ConnectOptions {
        slack_url: args.slack_url.clone(),
        time_scale: args.time_scale,
        ..Default::default()
    };
    let built_in = match &args.emulator {
        Some(seed) => Some(start_built_in(seed, &runtime, &mut connect)?),
        None => None,
    };
    let connection = pipeline::connect(&checkout.dir, &connect, &environment)?;
    let bar = ActionProgress::new();
    let on_result = |result: &applying::executor::ActionResult, _: &crate::plan::action::Action| {
        bar.step(result);
    };
    let mut options = apply_options(args, &on_result);
    options.commit = Some(checkout.commit.clone());
    options.reviewed = reviewed;
    let report = runtime.block_on(applying::apply(&connection, &store, &options))?;
    bar.finish();
    drop(built_in);
    Ok(print_report(&report, args.format))
}

/// The store `--state` names (a file or a `postgres://` URL), else the default file.
fn state_spec(state: Option<&Path>) -> anyhow::Result<PathBuf> {
    match state {
        Some(path) => Ok(path.to_path_buf()),
        None => crate::store::default_path(&environment).ok_or_else(|| {
            anyhow::anyhow!("no state store: pass --state or set SLACK_GITOPS_STATE")
        }),
    }
}

fn open_store(state: Option<&Path>) -> anyhow::Result<crate::store::Store> {
    let spec = state_spec(state)?;
    let password = crate::store::password(&environment)?;
    Ok(crate::store::Store::open_spec(
        &spec.to_string_lossy(),
        password,
    )?)
}

/// A progress callback for the executor.
type OnResult<'a> =
    &'a (dyn Fn(&crate::apply::executor::ActionResult, &crate::plan::action::Action) + Sync);

/// The options `apply` and `restore` share.
fn apply_options<'a>(args: &ApplyArgs, on_result: OnResult<'a>) -> crate::apply::ApplyOptions<'a> {
    let host = environment("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    let holder = format!(
        "{}@{host} (pid {})",
        environment("USER").unwrap_or_else(|| "someone".into()),
        std::process::id()
    );
    crate::apply::ApplyOptions {
        commit: None,
        reviewed: None,
        dry_run: args.dry_run,
        force_unlock: args.force_unlock.clone(),
        holder,
        today: crate::apply::iso_date(now_millis()),
        clock: &now_millis,
        on_result,
        stop: None,
        drift: None,
    }
}

/// Prints an apply or restore report; returns the exit code.
fn print_report(report: &crate::apply::ApplyReport, format: PlanFormat) -> u8 {
    use crate::apply::{ApplyOutcome, report as rendering};
    let output = match format {
        PlanFormat::Text => rendering::text(report),
        PlanFormat::Markdown => rendering::markdown(report),
        PlanFormat::Json => rendering::json(report),
    };
    print!("{output}");
    match report.outcome {
        ApplyOutcome::Refused { .. } => EXIT_NEEDS_APPROVAL,
        ApplyOutcome::DryRun | ApplyOutcome::Converged => EXIT_OK,
        ApplyOutcome::Incomplete | ApplyOutcome::Halted { .. } => EXIT_ERROR,
    }
}

/// The arguments of `controller`.
struct ControllerArgs {
    repo: String,
    ssh_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    branch: String,
    config_path: PathBuf,
    listen: std::net::SocketAddr,
    admin_listen: Option<std::net::SocketAddr>,
    state: Option<PathBuf>,
    lease: String,
    replica: Option<String>,
    lease_ttl: f64,
    advertise: Option<String>,
    workdir: Option<PathBuf>,
    poll: f64,
    slack_url: Option<String>,
    time_scale: f64,
}

fn controller(args: ControllerArgs) -> anyhow::Result<u8> {
    use std::io::Write;
    anyhow::ensure!(
        args.poll.is_finite() && args.poll > 0.0,
        "--poll must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.lease_ttl.is_finite() && args.lease_ttl >= 1.0,
        "--lease-ttl must be at least 1 second"
    );
    let store = open_store(args.state.as_deref())?;
    let workdir = match args.workdir {
        Some(dir) => dir,
        // Beside a file store; a database store has no directory: the working one.
        None => {
            let spec = state_spec(args.state.as_deref())?;
            let beside = if crate::store::is_url(&spec.to_string_lossy()) {
                None
            } else {
                spec.parent().map(Path::to_path_buf)
            };
            beside
                .unwrap_or_else(|| PathBuf::from("."))
                .join("controller-clone")
        }
    };
    let secret = |name: &str| environment(name).filter(|v| !v.is_empty());
    let options = crate::controller::Options {
        repo: args.repo,
        branch: args.branch,
        config_path: args.config_path,
        workdir,
        poll: std::time::Duration::from_secs_f64(args.poll),
        connect: pipeline::ConnectOptions {
            slack_url: args.slack_url,
            time_scale: args.time_scale,
            ..Default::default()
        },
        git_secret: secret("SLACK_GITOPS_GIT_WEBHOOK_SECRET"),
        identity_secret: secret("SLACK_GITOPS_IDENTITY_WEBHOOK_SECRET"),
        environment: std::sync::Arc::new(environment),
        git: crate::controller::git::Access {
            token: secret("SLACK_GITOPS_GIT_TOKEN"),
            username: secret("SLACK_GITOPS_GIT_USERNAME"),
            ssh_key: args.ssh_key,
            ssh_passphrase: secret("SLACK_GITOPS_GIT_SSH_PASSPHRASE"),
            known_hosts: args.known_hosts,
        },
        election: crate::controller::leader::Election {
            lease: args.lease,
            replica: args.replica.unwrap_or_else(|| {
                crate::controller::leader::Election::default_replica(&environment)
            }),
            ttl: std::time::Duration::from_secs_f64(args.lease_ttl),
            advertise: args.advertise,
        },
    };
    runtime()?.block_on(async move {
        let bind = |address: std::net::SocketAddr| async move {
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))
        };
        let hooks = bind(args.listen).await?;
        println!(
            "slack-gitops controller listening on http://{}",
            hooks.local_addr()?
        );
        let admin = match args.admin_listen {
            Some(address) => {
                let admin = bind(address).await?;
                println!(
                    "slack-gitops controller serving /livez, /readyz, /status and /metrics on http://{}",
                    admin.local_addr()?
                );
                Some(admin)
            }
            None => None,
        };
        std::io::stdout().flush()?;
        let listeners = crate::controller::http::Listeners { hooks, admin };
        crate::controller::run(options, store, listeners, shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    })?;
    Ok(EXIT_OK)
}

/// Unix milliseconds of a `YYYY-MM-DD` date (UTC midnight).
fn date_millis(text: &str) -> Option<i64> {
    let mut parts = text.split('-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

#[allow(clippy::too_many_arguments)]
fn export_access_review(
    dir: &Path,
    reference: Option<&str>,
    branch: Option<&str>,
    state: Option<&Path>,
    format: ReviewFormat,
    out: Option<&Path>,
    since: Option<&str>,
    slack_url: Option<String>,
    time_scale: f64,
) -> anyhow::Result<u8> {
    let checkout = crate::gitops::commit::checkout(dir, reference, branch)?;
    let store = open_store(state)?;
    let now = now_millis();
    let since = match since {
        Some(text) => date_millis(text)
            .ok_or_else(|| anyhow::anyhow!("--since {text} is not a date (YYYY-MM-DD)"))?,
        None => now - 90 * 86_400_000,
    };
    let connect = pipeline::ConnectOptions {
        slack_url,
        time_scale,
        ..Default::default()
    };
    let connection = pipeline::connect(&checkout.dir, &connect, &environment)?;
    let slack_source = connection
        .repository
        .config
        .value
        .slack
        .url
        .clone()
        .or(connect.slack_url.clone())
        .unwrap_or_else(|| "https://slack.com/api/ and https://api.slack.com/scim/v2/".into());
    let request = crate::export::Request {
        commit: &checkout.commit,
        format: match format {
            ReviewFormat::Csv => crate::export::Format::Csv,
            ReviewFormat::Json => crate::export::Format::Json,
            ReviewFormat::Html => crate::export::Format::Html,
        },
        out,
        now,
        since,
    };
    let summary = runtime()?.block_on(crate::export::access_review(
        &connection,
        &store,
        &request,
        &slack_source,
    ))?;
    progress(&format!(
        "access review at {}: {} people, {} entitlements ({} by rule, {} exceptions, {} pending), {} out of scope",
        &checkout.commit[..12],
        summary.people,
        summary.entitlements,
        summary.granted_by_rule,
        summary.exceptions,
        summary.pending,
        summary.out_of_scope
    ));
    Ok(EXIT_OK)
}

fn history(
    dir: &Path,
    person: Option<String>,
    usergroup: Option<String>,
    channel: Option<String>,
    state: Option<&Path>,
) -> anyhow::Result<u8> {
    use crate::export::About;
    let org = pipeline::org_key(&pipeline::load_repository(dir)?);
    let about = match (&person, &usergroup, &channel) {
        (Some(email), _, _) => About::Person(email),
        (_, Some(handle), _) => About::Usergroup(handle),
        (_, _, Some(name)) => About::Channel(name),
        _ => anyhow::bail!("name what to tell the history of: --person, --usergroup or --channel"),
    };
    let store = open_store(state)?;
    let lines = crate::export::history_lines(&store, &org, &about)?;
    if lines.is_empty() {
        println!("no recorded change");
    }
    for line in lines {
        println!("{line}");
    }
    Ok(EXIT_OK)
}

/// `approve`: writes `approvals/<date>-<hash prefix>.yaml`.
fn approve(
    dir: &Path,
    plan: &Path,
    reason: &str,
    ticket: Option<&str>,
    expires: Option<&str>,
    mut approved_by: Vec<String>,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(plan)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", plan.display()))?;
    let document = render::plan::PlanDocument::parse(&text).map_err(|message| {
        anyhow::anyhow!(
            "{} is not a JSON plan written by --out: {message}",
            plan.display()
        )
    })?;
    let hash = document.hash.ok_or_else(|| {
        anyhow::anyhow!(
            "{} carries no hash (an older plan); plan again",
            plan.display()
        )
    })?;
    // The hash names the file and goes into the YAML: it must be a hash, nothing else.
    let hash = crate::model::PlanHash::parse(&hash)
        .map_err(|_| {
            anyhow::anyhow!(
                "{} carries a malformed hash (not `sha256:` and 64 lowercase hex digits); plan again",
                plan.display()
            )
        })?
        .to_string();
    anyhow::ensure!(
        document.destructive.as_ref().is_some_and(|d| !d.is_empty()),
        "the plan has no destructive actions: there is nothing to approve"
    );
    anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
    if approved_by.is_empty() {
        let email = git2::Config::open_default()
            .and_then(|c| c.get_string("user.email"))
            .map_err(|_| anyhow::anyhow!("pass --by EMAIL (git has no user.email)"))?;
        approved_by.push(email);
    }
    let today = crate::apply::iso_date(now_millis());
    let expires = expires.map(|text| match text.strip_suffix('d').map(str::parse::<i64>) {
        Some(Ok(days)) => crate::apply::iso_date(now_millis() + days * 86_400_000),
        _ => text.to_string(),
    });
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut yaml = format!(
        "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {hash}\nreason: {}\napproved_by: [{}]\n",
        quote(reason),
        approved_by
            .iter()
            .map(|e| quote(e))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(ticket) = ticket {
        yaml.push_str(&format!("ticket: {}\n", quote(ticket)));
    }
    if let Some(expires) = &expires {
        yaml.push_str(&format!("expires: {}\n", quote(expires)));
    }
    let prefix: String = hash
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    let folder = dir.join("approvals");
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{today}-{prefix}.yaml"));
    // The file must load: check it as `validate` would before anyone commits it.
    let loaded = config::load(
        &[config::SourceFile {
            path: format!("approvals/{today}-{prefix}.yaml"),
            bytes: yaml.clone().into_bytes(),
        }],
        None,
    );
    let problems: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.file.starts_with("approvals/"))
        .map(|d| d.message.clone())
        .collect();
    anyhow::ensure!(
        problems.is_empty(),
        "the approval would not validate: {}",
        problems.join("; ")
    );
    std::fs::write(&path, yaml)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    println!("{}", path.display());
    Ok(EXIT_OK)
}

/// The arguments of `restore`.
struct RestoreArgs {
    approve: Option<String>,
    run: Option<i64>,
    snapshot: Option<PathBuf>,
    only: Option<String>,
    people: Vec<String>,
    common: ApplyArgs,
}

fn restore(dir: &Path, args: &RestoreArgs) -> anyhow::Result<u8> {
    use crate::model::snapshot::Snapshot;
    let store = open_store(args.common.state.as_deref())?;
    let (text, source) = match (&args.snapshot, args.run) {
        (Some(path), _) => (
            std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(run)) => (
            store.snapshot(run)?.ok_or_else(|| {
                anyhow::anyhow!("the state store {} has no run {run}", store.describe())
            })?,
            format!("run {run}"),
        ),
        (None, None) => anyhow::bail!("pass --run ID or --snapshot FILE"),
    };
    let saved = Snapshot::parse(&text)
        .map_err(|message| anyhow::anyhow!("the snapshot of {source} is unreadable: {message}"))?;
    let parts = match &args.only {
        Some(only) => {
            crate::plan::restore::RestoreParts::parse(only).map_err(anyhow::Error::msg)?
        }
        None => crate::plan::restore::RestoreParts::default(),
    };
    let only = (!args.people.is_empty()).then(|| {
        args.people
            .iter()
            .map(|e| e.trim().to_lowercase())
            .collect()
    });
    let runtime = runtime()?;
    let connect = pipeline::ConnectOptions {
        slack_url: args.common.slack_url.clone(),
        time_scale: args.common.time_scale,
        ..Default::default()
    };
    let connection = pipeline::connect(dir, &connect, &environment)?;
    let bar = ActionProgress::new();
    let on_result = |result: &crate::apply::executor::ActionResult,
                     _: &crate::plan::action::Action| {
        bar.step(result);
    };
    let options = apply_options(&args.common, &on_result);
    let request = crate::apply::RestoreRequest {
        saved: &saved.live,
        source,
        parts,
        only,
        approved: args.approve.clone(),
    };
    let report = runtime.block_on(crate::apply::restore(
        &connection,
        &store,
        &request,
        &options,
    ))?;
    bar.finish();
    Ok(print_report(&report, args.common.format))
}

/// A progress bar on a terminal; one log line per action otherwise.
struct ActionProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl ActionProgress {
    fn new() -> ActionProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} actions {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        });
        ActionProgress { bar }
    }

    fn step(&self, result: &crate::apply::executor::ActionResult) {
        let line = format!(
            "{}: {}",
            result.key,
            serde_json::to_value(&result.outcome)
                .ok()
                .and_then(|v| v
                    .get("outcome")
                    .and_then(|o| o.as_str())
                    .map(str::to_string))
                .unwrap_or_default()
        );
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line);
            }
            None => eprintln!("apply [{}] {line}", result.seq + 1),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn summary(files: usize, diagnostics: &[Diagnostic]) -> String {
    let count = |severity| {
        diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if errors == 0 && warnings == 0 {
        format!("{} checked: no problems\n", plural(files, "file"))
    } else {
        format!(
            "{} checked: {}, {}\n",
            plural(files, "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}

fn display_prefix(dir: &Path) -> String {
    let text = dir.to_string_lossy().replace('\\', "/");
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

fn print_schema(kind: Option<&str>) -> anyhow::Result<u8> {
    match kind {
        Some(name) => {
            let Some(kind) = Kind::parse(name) else {
                anyhow::bail!(
                    "unknown kind `{name}`; expected one of config, mappings, policy, approval"
                );
            };
            print!("{}", schema::schema_text(kind));
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> = Kind::ALL
                .into_iter()
                .map(|kind| (kind.as_str().to_string(), kind.schema().clone()))
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(EXIT_OK)
}
