//! `apply` and `restore`: the commands that write to Slack through the executor.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::{
    CommitArgs, EXIT_ERROR, EXIT_NEEDS_APPROVAL, EXIT_OK, PlanFormat, SlackArgs, StateArgs,
    environment, progress, read_plan_document, runtime,
};
use crate::apply::executor::ActionResult;
use crate::pipeline;
use crate::plan::action::Action;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    commit: CommitArgs,
    /// The JSON plan that was reviewed (`plan --out`): a destructive action it does not
    /// hold refuses the run.
    #[arg(long)]
    plan: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    slack: SlackArgs,
    /// Apply to a built-in emulator seeded from this file (a demo: its state is gone
    /// when the command ends).
    #[arg(long, conflicts_with = "slack_url")]
    emulator: Option<PathBuf>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
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
    /// A restore that reactivates more people than `limits.deactivate` allows runs
    /// only with the hash its dry run printed.
    #[arg(long)]
    approve: Option<String>,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    slack: SlackArgs,
    #[command(flatten)]
    write: WriteArgs,
}

/// How a writing command runs and reports.
#[derive(Debug, Args)]
struct WriteArgs {
    /// Do every check; write nothing (restore: plan the way back and print the hash
    /// `--approve` takes).
    #[arg(long)]
    dry_run: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Break this stale org lock first (its id is in the refusal message).
    #[arg(long)]
    force_unlock: Option<String>,
}

pub(super) fn apply(args: &ApplyArgs) -> anyhow::Result<u8> {
    let dir = args.commit.dir.as_path();
    let checkout = match args.commit.checkout() {
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
    let reviewed = args.plan.as_deref().map(read_plan_document).transpose()?;
    let store = args.state.open()?;
    let runtime = runtime()?;
    let mut connect = args.slack.connect();
    connect.identity_store = Some(args.state.spec()?.to_string_lossy().into_owned());
    let built_in = match &args.emulator {
        Some(seed) => Some(super::emulator::start_built_in(
            seed,
            &runtime,
            &mut connect,
        )?),
        None => None,
    };
    let connection = pipeline::connect(&checkout.dir, &connect, &environment)?;
    let bar = ActionProgress::new();
    let on_result = |result: &ActionResult, _: &Action| bar.step(result);
    let mut options = apply_options(&args.write, &on_result);
    options.commit = Some(checkout.commit.clone());
    if args.emulator.is_none() {
        options.restore_with = restore_with(dir, &args.state, &args.slack)?;
    }
    options.reviewed = reviewed;
    let report = runtime.block_on(crate::apply::apply(&connection, &store, &options))?;
    bar.finish();
    drop(built_in);
    print_report(&report, args.write.format)
}

pub(super) fn restore(args: &RestoreArgs) -> anyhow::Result<u8> {
    use crate::model::snapshot::Snapshot;
    let store = args.state.open()?;
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
    let connection = pipeline::connect(&args.dir, &args.slack.connect(), &environment)?;
    let bar = ActionProgress::new();
    let on_result = |result: &ActionResult, _: &Action| bar.step(result);
    let options = apply_options(&args.write, &on_result);
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
    print_report(&report, args.write.format)
}

/// The arguments that point `restore` where this apply pointed: the directory and the
/// store made absolute, and Slack's URL when it is not the default.
fn restore_with(
    dir: &std::path::Path,
    state: &StateArgs,
    slack: &SlackArgs,
) -> anyhow::Result<Vec<String>> {
    let absolute = |path: &std::path::Path| {
        path.canonicalize()
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    let spec = state.spec()?;
    let store = if crate::store::is_url(&spec.to_string_lossy()) {
        state.open()?.describe()
    } else {
        absolute(&spec)
    };
    let mut words = vec![absolute(dir), "--state".into(), store];
    if let Some(url) = &slack.slack_url {
        words.extend(["--slack-url".into(), url.clone()]);
    }
    if slack.time_scale != 1.0 {
        words.extend(["--time-scale".into(), slack.time_scale.to_string()]);
    }
    Ok(words)
}

/// A progress callback for the executor.
type OnResult<'a> = &'a (dyn Fn(&ActionResult, &Action) + Sync);

/// The options `apply` and `restore` share.
fn apply_options<'a>(args: &WriteArgs, on_result: OnResult<'a>) -> crate::apply::ApplyOptions<'a> {
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
        today: crate::model::iso_date(crate::clock::now_millis()),
        clock: &crate::clock::now_millis,
        on_result,
        stop: None,
        drift: None,
        restore_with: Vec::new(),
    }
}

/// Prints an apply or restore report; returns the exit code.
fn print_report(report: &crate::apply::ApplyReport, format: PlanFormat) -> anyhow::Result<u8> {
    use crate::apply::{ApplyOutcome, report as rendering};
    let output = match format {
        PlanFormat::Text => rendering::text(report),
        PlanFormat::Markdown => rendering::markdown(report),
        PlanFormat::Json => rendering::json(report),
        PlanFormat::PolicyInput => anyhow::bail!("--format policy-input is plan's only"),
    };
    super::emit(&output)?;
    Ok(match report.outcome {
        ApplyOutcome::Refused { .. } => EXIT_NEEDS_APPROVAL,
        ApplyOutcome::DryRun | ApplyOutcome::Converged => EXIT_OK,
        ApplyOutcome::Incomplete | ApplyOutcome::Halted { .. } => EXIT_ERROR,
    })
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

    fn step(&self, result: &ActionResult) {
        let line = format!("{}: {}", result.key, result.outcome.word());
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line);
            }
            None => match super::log_format() {
                super::LogFormat::Text => eprintln!("apply [{}] {line}", result.seq + 1),
                // One JSON object per line, in the shape of the log's own lines.
                super::LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({
                        "timestamp": crate::model::iso_time(crate::clock::now_millis()),
                        "level": "INFO",
                        "message": "action",
                        "seq": result.seq + 1,
                        "action": result.key,
                        "outcome": result.outcome.word(),
                    })
                ),
            },
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
