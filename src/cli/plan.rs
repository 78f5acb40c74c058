//! `plan`, `snapshot` and `approve`: what a change would do, what Slack holds, and the
//! approval of a plan over a limit.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{
    Color, EXIT_CHANGES, EXIT_NEEDS_APPROVAL, EXIT_OK, PlanFormat, SlackArgs, environment,
    progress, read_plan_document, runtime,
};
use crate::model::snapshot::{ReadCalls, Snapshot};
use crate::pipeline;
use crate::render;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The config repository.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    slack: SlackArgs,
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
    /// Plan on the controller at this URL, against its mirror of live Slack: what the
    /// change touches is read live, the rest comes from the mirror, and the plan says
    /// how old the oldest mirrored copy is. The token is `SLACK_GITOPS_CONTROLLER_TOKEN`.
    #[arg(long, conflicts_with_all = ["emulator", "state"])]
    controller: Option<String>,
    /// Keep the identity directory in this state store between plans (a file or a
    /// `postgres://` URL; default `$SLACK_GITOPS_STATE` when set), so that a plan reads
    /// only what changed in Okta or Entra since the last read.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The config repository.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    slack: SlackArgs,
    /// Write the snapshot here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
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
}

pub(super) fn plan(options: &PlanArgs) -> anyhow::Result<u8> {
    if let Some(url) = &options.controller {
        return plan_on_controller(url, options);
    }
    let dir = options.dir.as_path();
    let baseline = match &options.baseline {
        Some(path) => pipeline::read_baseline(path)?,
        None => pipeline::Baseline::default(),
    };
    let runtime = runtime()?;
    let mut connect = options.slack.connect();
    connect.identity_store = options
        .state
        .as_ref()
        .map(|path| path.to_string_lossy().into_owned())
        .or_else(|| environment("SLACK_GITOPS_STATE").filter(|s| !s.is_empty()));
    let built_in = match &options.emulator {
        Some(seed) => {
            let built_in = super::emulator::start_built_in(seed, &runtime, &mut connect)?;
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
    if let Some(summary) = connection.identity_summary() {
        progress(&summary.line());
    }
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
    if options.format == PlanFormat::PolicyInput {
        let plan = render::plan::policy_plan(&report);
        let input = crate::rego::input(
            &connection.repository,
            Some(&planned.directory),
            Some((plan, &planned.live)),
        );
        let mut text = serde_json::to_string_pretty(&input)?;
        text.push('\n');
        super::emit(&text)?;
    } else {
        print_plan(&report, options)?;
    }
    if let Some(dir) = &options.comment_dir {
        write_comments(dir, &render::plan::markdown_comments(&report))?;
    }
    let code = exit_code(options, planned.verdict.word(), planned.plan.actions.len());
    // The process ends next: freeing the live model, the directory and the plan one
    // allocation at a time would cost about 5% of a 200,000-person plan for nothing.
    std::mem::forget(planned);
    Ok(code)
}

/// `--detailed-exitcode`: 0 with no changes, 2 with changes, 3 when they need approval
/// or were refused; 0 without the flag.
/// `verdict` is [`crate::policy::Verdict::word`].
fn exit_code(options: &PlanArgs, verdict: &str, actions: usize) -> u8 {
    match (options.detailed_exitcode, verdict) {
        (false, _) => EXIT_OK,
        (true, "refused") => EXIT_NEEDS_APPROVAL,
        (true, _) if actions == 0 => EXIT_OK,
        (true, "needs_approval") => EXIT_NEEDS_APPROVAL,
        (true, _) => EXIT_CHANGES,
    }
}

/// `plan --controller URL`: the repository is checked here, sent to the controller,
/// planned there against its mirror, and printed as a local plan is.
fn plan_on_controller(url: &str, options: &PlanArgs) -> anyhow::Result<u8> {
    use crate::controller::plans::{PlanAnswer, PlanRequest};
    let token = environment("SLACK_GITOPS_CONTROLLER_TOKEN")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "plan --controller needs SLACK_GITOPS_CONTROLLER_TOKEN: the token the controller was started with"
            )
        })?;
    let dir = options.dir.as_path();
    let repository = pipeline::load_repository(dir)?;
    let mut request = PlanRequest::from_dir(dir, &repository, true).map_err(anyhow::Error::msg)?;
    if let Some(path) = &options.baseline {
        request.baseline = Some(
            std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
        );
    }
    if let Some(tree) = crate::gitops::commit::describe(dir) {
        request.config_dir = Some(tree.config_dir);
        request.commit = tree.commit;
        request.dirty = tree.dirty;
    }
    request.color = options.color.enabled();
    let endpoint = format!("{}/plan", url.trim_end_matches('/'));
    progress(&format!("planning on the controller at {url}"));
    let answer: PlanAnswer = runtime()?.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(900))
            .build()?;
        let send = |request: &PlanRequest| {
            client
                .post(&endpoint)
                .bearer_auth(&token)
                .json(request)
                .send()
        };
        let reach =
            |e: reqwest::Error| anyhow::anyhow!("cannot reach the controller at {endpoint}: {e}");
        let by_digest = request.files.iter().any(|f| f.sha256.is_some());
        let mut response = send(&request).await.map_err(reach)?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            // The identity export went by its digest and the commit in force has other
            // bytes: send it whole.
            progress("the identity export differs from the commit in force's: sending it whole");
            let again =
                PlanRequest::from_dir(dir, &repository, false).map_err(anyhow::Error::msg)?;
            request.files = again.files;
            response = send(&request).await.map_err(reach)?;
        } else if by_digest {
            progress("the identity export is the commit in force's: sent by its SHA-256 only");
        }
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(4096).collect();
            anyhow::bail!(
                "the controller did not plan ({status}): {}",
                text.trim_end()
            );
        }
        Ok(response.json::<PlanAnswer>().await?)
    })?;
    if let Some(read) = &answer.slack_read {
        progress(&read.words());
    }
    for warning in &answer.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(path) = &options.out {
        std::fs::write(path, &answer.json)
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    }
    let shown = match options.format {
        PlanFormat::Json => &answer.json,
        PlanFormat::Text => &answer.text,
        PlanFormat::Markdown => &answer.markdown,
        PlanFormat::PolicyInput => {
            anyhow::bail!("--format policy-input is made locally: plan without --controller")
        }
    };
    super::emit(shown)?;
    if let Some(dir) = &options.comment_dir {
        write_comments(dir, &answer.comments)?;
    }
    Ok(exit_code(options, &answer.verdict, answer.actions))
}

/// Prints the plan in its format and writes the JSON plan to `--out`. The JSON streams
/// to the file and is rendered once: with `--format json` too, stdout gets a copy of the
/// file.
fn print_plan(report: &render::plan::PlanReport, options: &PlanArgs) -> anyhow::Result<()> {
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
            stdout.write_all(render::plan::text(report, options.color.enabled()).as_bytes())?
        }
        (PlanFormat::Markdown, _) => stdout.write_all(render::plan::markdown(report).as_bytes())?,
        (PlanFormat::PolicyInput, _) => {}
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

pub(super) fn snapshot(args: &SnapshotArgs) -> anyhow::Result<u8> {
    let connection = pipeline::connect(&args.dir, &args.slack.connect(), &environment)?;
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
    let taken_at = (crate::clock::now_millis() / 1000) as u64;
    let calls = ReadCalls {
        made: report.calls,
        minimum: report.minimum_calls,
        rate_limited: report.rate_limited,
        retries: report.retries,
    };
    let document = Snapshot::new(taken_at, calls, live, directory);
    let text = document.to_json();
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?,
        None => super::emit(&text)?,
    }
    Ok(EXIT_OK)
}

/// `approve`: writes `approvals/<date>-<hash prefix>.yaml` for a plan's destructive set.
pub(super) fn approve(args: ApproveArgs) -> anyhow::Result<u8> {
    let hash = approvable_hash(&args.plan)?;
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason must say why");
    let mut approved_by = args.approved_by;
    if approved_by.is_empty() {
        let email = git2::Config::open_default()
            .and_then(|c| c.get_string("user.email"))
            .map_err(|_| anyhow::anyhow!("pass --by EMAIL (git has no user.email)"))?;
        approved_by.push(email);
    }
    let now = crate::clock::now_millis();
    let today = crate::model::iso_date(now);
    let expires = args
        .expires
        .map(|text| match text.strip_suffix('d').map(str::parse::<i64>) {
            Some(Ok(days)) => crate::model::iso_date(now + days * 86_400_000),
            _ => text,
        });
    let draft = crate::config::approval::ApprovalDraft {
        hash: &hash,
        reason: &args.reason,
        approved_by: &approved_by,
        ticket: args.ticket.as_deref(),
        expires: expires.as_deref(),
        today: &today,
    };
    let yaml = draft.render().map_err(|problems| {
        anyhow::anyhow!("the approval would not validate: {}", problems.join("; "))
    })?;
    let path = args.dir.join(draft.path());
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(&path, yaml)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    super::emit(&format!("{}\n", path.display()))?;
    Ok(EXIT_OK)
}

/// The hash of the plan at `path`, when it is one to approve: it carries a well-formed
/// hash (it names the file and goes into the YAML) and destructive actions.
fn approvable_hash(path: &Path) -> anyhow::Result<crate::model::PlanHash> {
    let document = read_plan_document(path)?;
    let hash = document.hash.ok_or_else(|| {
        anyhow::anyhow!(
            "{} carries no hash (an older plan); plan again",
            path.display()
        )
    })?;
    let hash = crate::model::PlanHash::parse(&hash).map_err(|_| {
        anyhow::anyhow!(
            "{} carries a malformed hash (not `sha256:` and 64 lowercase hex digits); plan again",
            path.display()
        )
    })?;
    anyhow::ensure!(
        document.destructive.as_ref().is_some_and(|d| !d.is_empty()),
        "the plan has no destructive actions: there is nothing to approve"
    );
    Ok(hash)
}
