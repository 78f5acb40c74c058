//! `export access-review` and `history`: the record, for auditors.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{CommitArgs, EXIT_OK, SlackArgs, StateArgs, environment, progress, runtime};
use crate::pipeline;

/// What `export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Who has which access, since when, granted by which rule at which commit, under
    /// which approval; exceptions; leavers' offboarding evidence.
    AccessReview(AccessReviewArgs),
}

#[derive(Debug, Args)]
pub struct AccessReviewArgs {
    #[command(flatten)]
    commit: CommitArgs,
    #[command(flatten)]
    state: StateArgs,
    #[arg(long, value_enum, default_value_t = ReviewFormat::Html)]
    format: ReviewFormat,
    /// A file (json, html) or a directory (csv); standard output otherwise.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leavers first seen on or after this date (YYYY-MM-DD); default 90 days ago.
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    slack: SlackArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
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
    #[command(flatten)]
    state: StateArgs,
}

/// Formats of the access review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewFormat {
    Csv,
    Json,
    Html,
}

/// `export access-review`.
pub(super) fn access_review(args: &AccessReviewArgs) -> anyhow::Result<u8> {
    let checkout = args.commit.checkout()?;
    let store = args.state.open_existing()?;
    let now = crate::clock::now_millis();
    let since = match &args.since {
        Some(text) => crate::model::date_millis(text)
            .ok_or_else(|| anyhow::anyhow!("--since {text} is not a date (YYYY-MM-DD)"))?,
        None => now - 90 * 86_400_000,
    };
    let connect = args.slack.connect();
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
        format: match args.format {
            ReviewFormat::Csv => crate::export::Format::Csv,
            ReviewFormat::Json => crate::export::Format::Json,
            ReviewFormat::Html => crate::export::Format::Html,
        },
        out: args.out.as_deref(),
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

/// `history`.
pub(super) fn history(args: &HistoryArgs) -> anyhow::Result<u8> {
    use crate::export::About;
    let org = pipeline::org_key(&pipeline::load_repository(&args.dir)?);
    let about = match (&args.person, &args.usergroup, &args.channel) {
        (Some(email), _, _) => About::Person(email),
        (_, Some(handle), _) => About::Usergroup(handle),
        (_, _, Some(name)) => About::Channel(name),
        _ => anyhow::bail!("name what to tell the history of: --person, --usergroup or --channel"),
    };
    let store = args.state.open_existing()?;
    let lines = crate::export::history_lines(&store, &org, &about)?;
    let mut text = String::new();
    if lines.is_empty() {
        text.push_str("no recorded change\n");
    }
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    super::emit(&text)?;
    Ok(EXIT_OK)
}
