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
use crate::emulator;
use crate::gitops::worktree;
use crate::render::{self, Format};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (invalid config, API failure).
pub const EXIT_ERROR: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "slack-gitops", version, about = "Slack identity as code")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config repository: schema and semantic checks, every problem at file:line:col.
    Validate {
        /// The config repository (the directory holding slack-gitops.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How to print the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
        Command::Validate { dir, format, color } => validate(&dir, format, color.enabled()),
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
                detailed_exitcode,
                baseline,
                color: color.enabled(),
                time_scale,
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
    let source = crate::identity::file::FileSource::new(dir.join(path));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    match runtime.block_on(source.read()) {
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
    let mut loaded = config::load(&tree.files, None);
    let mut export_problem = None;
    if let Some(repository) = &loaded.repository {
        match file_export_groups(dir, repository) {
            Ok(Some(known)) => loaded = config::load(&tree.files, Some(&known)),
            Ok(None) => {}
            Err(diagnostic) => export_problem = Some(diagnostic),
        }
    }
    let mut diagnostics: Vec<Diagnostic> = tree.diagnostics;
    diagnostics.extend(export_problem);
    diagnostics.extend(loaded.diagnostics);
    diagnostics.sort();

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

/// The version of the snapshot document. Bump it when a field changes meaning.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Loads a config repository for a command that needs a valid one; prints the
/// diagnostics and fails otherwise.
fn load_repository(dir: &Path) -> anyhow::Result<config::Repository> {
    let tree = worktree::read(dir)?;
    let loaded = config::load(&tree.files, None);
    let mut diagnostics = tree.diagnostics;
    diagnostics.extend(loaded.diagnostics);
    match loaded.repository {
        Some(repository) if diagnostics.is_empty() => Ok(repository),
        _ => {
            let sources = tree
                .files
                .iter()
                .map(|f| {
                    (
                        f.path.clone(),
                        String::from_utf8_lossy(&f.bytes).into_owned(),
                    )
                })
                .collect();
            eprint!(
                "{}",
                render::diagnostics::text(&diagnostics, &sources, false)
            );
            anyhow::bail!(
                "{} is not a valid config repository; run `slack-gitops validate` for details",
                dir.display()
            )
        }
    }
}

/// A progress line on a terminal; a log line otherwise.
fn progress(message: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{message}");
    } else {
        tracing::info!("{message}");
    }
}

/// Everything a command needs to read the world: the repository, the identity source and
/// a Slack client, all configured from the repository and the environment.
struct Connection {
    repository: config::Repository,
    source: crate::identity::Source,
    client: crate::slack::client::SlackClient,
}

impl Connection {
    /// Reads the identity provider and live Slack at once; either read failing fails both.
    fn read(
        &self,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<(
        crate::model::directory::Directory,
        crate::model::live::Live,
        crate::slack::reader::ReadReport,
    )> {
        let scope = crate::slack::reader::ReadScope::from_repository(&self.repository);
        runtime.block_on(async {
            progress("reading the identity provider and Slack...");
            let (directory, live) = tokio::join!(
                self.source.read(),
                crate::slack::reader::read_live(&self.client, &scope)
            );
            let (live, report) = live?;
            Ok((directory?, live, report))
        })
    }
}

fn connect(dir: &Path, slack_url: Option<String>, time_scale: f64) -> anyhow::Result<Connection> {
    connect_with(dir, slack_url, time_scale, &Fallback::default())
}

/// Tokens to use when the environment has none (the built-in emulator's own).
#[derive(Default)]
struct Fallback {
    admin: Option<String>,
    bot: Option<String>,
}

fn connect_with(
    dir: &Path,
    slack_url: Option<String>,
    time_scale: f64,
    fallback: &Fallback,
) -> anyhow::Result<Connection> {
    use crate::slack::client::{ClientOptions, SlackClient, Token};
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let repository = load_repository(dir)?;
    let settings = &repository.config.value;
    let environment = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let token_env = settings
        .slack
        .token_env
        .clone()
        .unwrap_or_else(|| "SLACK_ADMIN_TOKEN".into());
    let admin = environment(&token_env).or_else(|| fallback.admin.clone()).map(Token::new).ok_or_else(|| {
        anyhow::anyhow!("the environment variable {token_env} is not set; it must hold the Slack admin user token (xoxp-)")
    })?;
    let bot = settings
        .slack
        .bot_token_env
        .as_deref()
        .and_then(environment)
        .or_else(|| fallback.bot.clone())
        .map(Token::new);
    let source = crate::identity::Source::from_settings(&settings.identity, dir, &environment)?;
    let client = SlackClient::new(
        admin,
        bot,
        ClientOptions {
            base_url: slack_url.or_else(|| settings.slack.url.clone()),
            time_scale,
            ..ClientOptions::default()
        },
    )?;
    Ok(Connection {
        repository,
        source,
        client,
    })
}

fn snapshot(
    dir: &Path,
    slack_url: Option<String>,
    out: Option<&Path>,
    time_scale: f64,
) -> anyhow::Result<u8> {
    let connection = connect(dir, slack_url, time_scale)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (directory, live, report) = connection.read(&runtime)?;
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
    let document = serde_json::json!({
        "version": SNAPSHOT_VERSION,
        "taken_at": taken_at,
        "calls": {"made": report.calls, "minimum": report.minimum_calls, "rate_limited": report.rate_limited, "retries": report.retries},
        "live": live,
        "directory": directory,
    });
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
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

#[allow(clippy::too_many_arguments)]
/// How `plan` prints and judges its result.
struct PlanOptions {
    format: PlanFormat,
    out: Option<PathBuf>,
    detailed_exitcode: bool,
    baseline: Option<PathBuf>,
    color: bool,
    time_scale: f64,
}

/// What a plan compares with from the last good one.
struct Baseline {
    identity: crate::policy::IdentityCounts,
    /// Mapping digests; empty for a plan written before they were recorded.
    mappings: BTreeMap<String, String>,
}

/// The identity counts and mapping digests of an earlier JSON plan.
fn read_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read the baseline {}: {error}", path.display()))?;
    let document: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "the baseline {} is not a JSON plan: {error}",
            path.display()
        )
    })?;
    let identity = serde_json::from_value(document["identity"].clone()).map_err(|error| {
        anyhow::anyhow!(
            "the baseline {} has no identity counts (is it a plan written by --out?): {error}",
            path.display()
        )
    })?;
    let mappings = match document.get("mappings") {
        None => BTreeMap::new(),
        Some(mappings) => serde_json::from_value(mappings.clone()).map_err(|error| {
            anyhow::anyhow!(
                "the baseline {} has malformed mapping digests: {error}",
                path.display()
            )
        })?,
    };
    Ok(Baseline { identity, mappings })
}

fn plan(dir: &Path, target: PlanTarget, options: &PlanOptions) -> anyhow::Result<u8> {
    let time_scale = options.time_scale;
    let baseline = options.baseline.as_deref().map(read_baseline).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut slack_url = target.slack_url;
    let mut fallback = Fallback::default();
    let mut stop_emulator = None;
    if let Some(seed) = &target.emulator {
        let world = emulator::read_world(seed)?;
        let user_token = |kind: emulator::world::TokenKind, scope: &str| {
            world
                .tokens
                .iter()
                .find(|t| t.kind == kind && t.scopes.iter().any(|s| s == scope))
                .map(|t| t.token.clone())
        };
        fallback = Fallback {
            admin: user_token(emulator::world::TokenKind::User, "admin"),
            bot: user_token(emulator::world::TokenKind::Bot, "channels:read"),
        };
        let emulator = emulator::Emulator::new(world, emulator::Options::default())?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        slack_url = Some(format!("http://{}", listener.local_addr()?));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(emulator::serve(listener, emulator, async move {
            let _ = stopped.await;
        }));
        stop_emulator = Some(stop);
        progress(&format!(
            "planning against the built-in emulator seeded from {}",
            seed.display()
        ));
    }
    let connection = connect_with(dir, slack_url, time_scale, &fallback)?;
    let (directory, live, _) = connection.read(&runtime)?;
    let repository = &connection.repository;

    // The config may name only groups the identity provider has.
    let files = config::Files {
        config: Some(repository.config.clone()),
        mappings: repository.mappings.clone(),
        policies: repository.policies.clone(),
        approvals: repository.approvals.clone(),
    };
    let resolution = directory.resolve();
    let mut diagnostics = config::semantic::unknown_groups(&files, &directory.group_names());
    diagnostics.extend(resolution.diagnostics.iter().cloned());
    if !diagnostics.is_empty() {
        eprint!(
            "{}",
            render::diagnostics::text(&diagnostics, &BTreeMap::new(), false)
        );
    }
    anyhow::ensure!(
        !crate::diagnostic::has_errors(&diagnostics),
        "the config does not match the identity directory; nothing was planned"
    );

    let desired = crate::plan::desired::desired(repository, &directory, &resolution);
    let mut plan = crate::plan::diff::plan(&desired, &directory, &live);
    // What leavers lose includes the apps they installed: asked of Slack for them only.
    let leavers = crate::plan::diff::leaver_ids(&plan, &live);
    if !leavers.is_empty() {
        match runtime.block_on(crate::slack::reader::read_installed_apps(
            &connection.client,
            &leavers,
        )) {
            Ok(apps) => crate::plan::diff::attach_apps(&mut plan, &apps),
            Err(error) => eprintln!(
                "warning: the apps leavers installed are unknown ({error}); the plan is otherwise complete"
            ),
        }
    }
    if let Some(stop) = stop_emulator {
        let _ = stop.send(());
    }
    // Against the last good plan, a removal the plans cannot explain is either the
    // mapping's doing or drift in Slack.
    let mappings = desired.mapping_digests();
    if let Some(baseline) = &baseline {
        crate::plan::diff::explain_by_mapping(&mut plan, &mappings, &baseline.mappings);
    }
    let identity = crate::policy::IdentityCounts::of(&desired, &directory);
    let verdict = crate::policy::verdict(
        &plan,
        &live,
        repository,
        &identity,
        baseline.as_ref().map(|b| &b.identity),
    );
    let report = render::plan::PlanReport {
        plan: &plan,
        verdict: &verdict,
        identity: &identity,
        first_run: baseline.is_none(),
        mappings: &mappings,
    };
    let output = match options.format {
        PlanFormat::Text => render::plan::text(&report, options.color),
        PlanFormat::Markdown => render::plan::markdown(&report),
        PlanFormat::Json => render::plan::json(&report),
    };
    print!("{output}");
    if let Some(path) = &options.out {
        std::fs::write(path, render::plan::json(&report))
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    }
    Ok(match (options.detailed_exitcode, &verdict) {
        (false, _) => EXIT_OK,
        (true, crate::policy::Verdict::Refused { .. }) => EXIT_NEEDS_APPROVAL,
        (true, _) if plan.actions.is_empty() => EXIT_OK,
        (true, crate::policy::Verdict::NeedsApproval { .. }) => EXIT_NEEDS_APPROVAL,
        (true, _) => EXIT_CHANGES,
    })
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
