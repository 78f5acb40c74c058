//! `apply`: converge Slack to a merged commit, within the guardrails.
//!
//! The order is the contract of DESIGN.md "The write side": take the org lock; re-plan
//! from fresh reads (the same pipeline as `plan`); refuse a refused verdict, a plan over
//! a limit without a valid approval at this commit, or a destructive action the reviewed
//! plan did not hold; report runs an earlier process left unfinished and read back their
//! actions of unknown outcome; save the snapshot the run starts from; execute (journalled,
//! canary first, verified); plan again to check that what succeeded stuck; release the
//! lock. Nothing here builds an HTTP request: `slack::writer` does, for the executor.

pub mod executor;
pub mod report;

use serde::Serialize;

use crate::config::types::CircuitBreaker;
use crate::model::snapshot::{ReadCalls, Snapshot};
use crate::pipeline::{Baseline, Connection, PipelineError, Planned, plan_org};
use crate::plan::action::{Action, SignOut};
use crate::plan::leaver::Leaver;
use crate::policy::Verdict;
use crate::render::plan::PlanDocument;
use crate::store::{RunOutcome, Store, StoreError};
use executor::{ActionResult, Context, Execution, Executor};

/// Why apply could not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ApplyOutcome {
    /// Nothing was written: the reasons say why (exit 3).
    Refused { reasons: Vec<String> },
    /// Every check passed; nothing was written (`--dry-run`).
    DryRun,
    /// A fresh plan after the run is empty.
    Converged,
    /// The run finished, but a fresh plan still shows changes (exit 1).
    Incomplete,
    /// The run stopped on a surprise or the circuit breaker (exit 1).
    Halted { reason: String },
}

/// An earlier run found unfinished, and what its actions of unknown outcome turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    pub run_id: i64,
    pub started_at: i64,
    /// Actions journalled as intended with no outcome: `(key, "done" | "not done")`, as
    /// the fresh read of Slack shows them.
    pub unknown: Vec<(String, String)>,
    /// Actions it had finished.
    pub finished: usize,
}

/// What an apply did, for every rendering.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub run_id: Option<i64>,
    pub commit: Option<String>,
    #[serde(flatten)]
    pub outcome: ApplyOutcome,
    pub plan_summary: String,
    /// The plan's actions as text, for a dry run.
    pub planned: Vec<String>,
    pub plan_hash: String,
    pub verdict: Verdict,
    pub interrupted: Vec<Interrupted>,
    pub execution: Execution,
    /// Changes a fresh plan after the run still shows, by key.
    pub remaining: Vec<String>,
    /// Changes that succeeded but that the fresh plan shows again: they did not stick.
    pub not_stuck: Vec<String>,
    /// The command that undoes the run, after a halt.
    pub undo: Option<String>,
    /// The leavers of this run: when first seen, deactivated and signed out, against
    /// `leavers.sla`, and the apps they installed for an admin to re-own.
    pub leavers: Vec<LeaverEvidence>,
    /// What the Slack plan has no API for (a role on Business+): for a person to do.
    pub manual_steps: Vec<crate::plan::action::ManualStep>,
    pub warnings: Vec<String>,
    /// Calls to Slack in all, and how many were rate limited.
    pub calls: u64,
    pub rate_limited: u64,
}

/// One leaver's offboarding, as the store recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaverEvidence {
    pub email: String,
    /// Unix milliseconds.
    pub first_seen: i64,
    pub deactivated_at: Option<i64>,
    pub signed_out_at: Option<i64>,
    /// From first seen to signed out.
    pub seconds_to_signed_out: Option<f64>,
    pub sla_seconds: Option<u64>,
    pub within_sla: Option<bool>,
    /// Apps they installed that Slack may disable (`None` when they could not be read).
    pub apps: Option<Vec<String>>,
}

/// What apply is asked to do.
pub struct ApplyOptions<'a> {
    /// The commit the config was read at.
    pub commit: Option<String>,
    /// The plan that was reviewed on the pull request (`--plan`).
    pub reviewed: Option<PlanDocument>,
    pub dry_run: bool,
    /// Break this stale lock first (`--force-unlock ID`).
    pub force_unlock: Option<String>,
    /// Who takes the lock: user, host and process.
    pub holder: String,
    /// Today, `YYYY-MM-DD` UTC, for approval expiry.
    pub today: String,
    /// Unix milliseconds.
    pub clock: &'a (dyn Fn() -> i64 + Sync),
    pub on_result: &'a (dyn Fn(&ActionResult, &Action) + Sync),
    /// Set to stop between actions (the controller's SIGTERM).
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// A drift tick of the commit in force (the controller), perhaps narrowed to some
    /// kinds of drift; `None` for a merge or the `apply` command.
    pub drift: Option<crate::pipeline::DriftScope>,
    /// The arguments that point `restore` at this run's repository, store and Slack (a
    /// directory, `--state`, `--slack-url`; never a secret), so the undo a halted run
    /// prints works verbatim from anywhere.
    pub restore_with: Vec<String>,
}

/// Applies the plan of `connection`'s repository to Slack.
pub async fn apply(
    connection: &Connection,
    store: &Store,
    options: &ApplyOptions<'_>,
) -> Result<ApplyReport, ApplyError> {
    let org = connection.org();
    with_lock(
        store,
        &org,
        options,
        locked(connection, store, options, &org),
    )
    .await
}

/// Runs `work` holding the org lock, or refuses naming who holds it.
async fn with_lock(
    store: &Store,
    org: &str,
    options: &ApplyOptions<'_>,
    work: impl std::future::Future<Output = Result<ApplyReport, ApplyError>>,
) -> Result<ApplyReport, ApplyError> {
    if let Some(id) = &options.force_unlock
        && store.force_unlock(org, id)?
    {
        tracing::warn!(lock = %id, "broke a stale lock as asked");
    }
    let started = (options.clock)();
    let lock_id = format!("{}-{started}", std::process::id());
    if let Err(held) = store.lock(org, &lock_id, &options.holder, started)? {
        let reason = format!(
            "the org lock is held by {} since {} (lock {}); another apply is running. If it died, run again with --force-unlock {}",
            held.holder,
            iso_time(held.since),
            held.id,
            held.id
        );
        return Ok(refused_early(options, vec![reason]));
    }
    let result = work.await;
    store.unlock(org, &lock_id)?;
    result
}

/// What `restore` puts back, from which snapshot.
pub struct RestoreRequest<'a> {
    /// The live state to go back to.
    pub saved: &'a crate::model::live::Live,
    /// Names the snapshot in the audit trail: `run 7` or the file.
    pub source: String,
    pub parts: crate::plan::restore::RestoreParts,
    /// Only these people (by email); everyone when `None`.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// The hash of a restore over the deactivation limit that was reviewed (`--approve`).
    pub approved: Option<String>,
}

impl ApplyReport {
    /// After a run that did not halt: converged when nothing remains, else incomplete.
    fn settle(&mut self) -> RunOutcome {
        if self.remaining.is_empty() {
            self.outcome = ApplyOutcome::Converged;
            RunOutcome::Converged
        } else {
            self.outcome = ApplyOutcome::Incomplete;
            RunOutcome::Incomplete
        }
    }
}

impl RestoreRequest<'_> {
    /// What putting the snapshot back takes against `live`, with what the connection's
    /// Slack plan offers.
    fn plan(
        &self,
        connection: &Connection,
        live: &crate::model::live::Live,
        rule: &crate::plan::desired::RuleRef,
    ) -> crate::plan::action::Plan {
        let slack_plan = connection.repository.config.value.slack.plan;
        crate::plan::restore::restore_plan(
            self.saved,
            live,
            self.parts,
            self.only.as_ref(),
            rule,
            slack_plan,
        )
    }
}

/// Puts people, roles, usergroup and channel memberships back as a snapshot saved them,
/// through the same lock, journal and executor as `apply`.
pub async fn restore(
    connection: &Connection,
    store: &Store,
    request: &RestoreRequest<'_>,
    options: &ApplyOptions<'_>,
) -> Result<ApplyReport, ApplyError> {
    let org = connection.org();
    let work = async {
        let client = &connection.client;
        let before = client.counts();
        let rule = crate::plan::desired::RuleRef {
            file: format!("snapshot of {}", request.source),
            line: 0,
        };
        let (directory, live, read) = connection.read().await?;
        let plan = request.plan(connection, &live, &rule);
        let hash = crate::policy::restore_hash(&plan);
        let mut report = ApplyReport {
            plan_summary: crate::render::plan::summary(&plan),
            plan_hash: hash.clone(),
            manual_steps: plan.manual_steps.clone(),
            ..blank_report(options)
        };
        let accounts = live.users.iter().filter(|u| u.active && !u.bot).count() as u64;
        if let Some(reason) =
            crate::policy::restore_over_limit(&connection.repository, &plan, accounts)
            && request.approved.as_deref() != Some(hash.as_str())
            && !options.dry_run
        {
            report.outcome = ApplyOutcome::Refused {
                reasons: vec![reason],
            };
            return Ok(finish(report, client, before));
        }
        if options.dry_run {
            report.planned = crate::render::plan::action_lines(&plan);
            return Ok(finish(report, client, before));
        }
        let started = Started {
            kind: "restore",
            hash: &hash,
            approvals: "[]",
            resumes: None,
            live: &live,
            directory: &directory,
            read,
            leavers: &[],
        };
        let run_id = begin(store, &org, options, &started)?;
        report.run_id = Some(run_id);
        report.execution = execute(
            connection,
            store,
            options,
            &org,
            run_id,
            None,
            &plan,
            &live,
            Read::of(connection),
        )
        .await?;
        let outcome = match &report.execution.halt {
            Some(halt) => {
                report.outcome = ApplyOutcome::Halted {
                    reason: halt.reason.clone(),
                };
                RunOutcome::Halted
            }
            None => restored(connection, request, &rule, &mut report).await?,
        };
        let counts = executor::to_json(&executor::tally(&report.execution.results));
        store.end_run(run_id, outcome, &counts, (options.clock)())?;
        Ok(finish(report, client, before))
    };
    with_lock(store, &org, options, work).await
}

/// After a restore ran to its end: what Slack, read again, still lacks of the snapshot.
async fn restored(
    connection: &Connection,
    request: &RestoreRequest<'_>,
    rule: &crate::plan::desired::RuleRef,
    report: &mut ApplyReport,
) -> Result<RunOutcome, ApplyError> {
    let (_, fresh, _) = connection.read().await?;
    let left = request.plan(connection, &fresh, rule);
    report.remaining = left.actions.iter().map(Action::journal_key).collect();
    Ok(report.settle())
}

/// The fast path for one leaver (an identity provider event): re-read the identity
/// provider (the event is a hint, never data) and, if the person should no longer have an
/// account, deactivate and sign out only them, at once, under the same lock, guards,
/// journal and executor as a full apply. The full sync that follows removes the rest of
/// their access. Reads one account from Slack instead of the whole org.
pub async fn apply_leaver(
    connection: &Connection,
    store: &Store,
    email: &str,
    options: &ApplyOptions<'_>,
) -> Result<ApplyReport, ApplyError> {
    let org = connection.org();
    let email = email.trim().to_lowercase();
    let work = async {
        let client = &connection.client;
        let before = client.counts();
        let mut report = refused_early(options, Vec::new());
        report.outcome = ApplyOutcome::Converged;
        match decide_leaver(connection, store, &org, &email).await? {
            LeaverRun::Nothing(why) => report.plan_summary = why,
            LeaverRun::Refused(reasons) => report.outcome = ApplyOutcome::Refused { reasons },
            LeaverRun::Deactivate(run) => {
                run_leaver(connection, store, options, &org, &run, &mut report).await?
            }
        }
        Ok(finish(report, client, before))
    };
    with_lock(store, &org, options, work).await
}

/// What an identity event's leaver run does, once decided.
enum LeaverRun {
    /// Nothing: why not.
    Nothing(String),
    /// Refused: why.
    Refused(Vec<String>),
    /// The leaver's deactivation and sign-out, from what was read.
    Deactivate(Box<LeaverPlan>),
}

struct LeaverPlan {
    plan: crate::plan::action::Plan,
    person: crate::plan::action::Person,
    live: crate::model::live::Live,
    directory: crate::model::directory::Directory,
}

/// Reads the identity provider and the one account, and asks the full sync's rule and
/// verdict about it (`plan::leaver`, `policy::verdict_over`). Where the source can read
/// one person (`identity::Source::read_person`) and a good run recorded the org's
/// identity counts, only that person is read, and the guardrails judge against the
/// recorded counts: the latency does not grow with the org. Otherwise the whole
/// directory is read.
async fn decide_leaver(
    connection: &Connection,
    store: &Store,
    org: &str,
    email: &str,
) -> Result<LeaverRun, ApplyError> {
    let baseline = store.last_good_identity(org)?;
    let one = match &baseline {
        Some(_) => connection
            .source
            .read_person(email)
            .await
            .map_err(PipelineError::from)?,
        None => None,
    };
    let partial = one.is_some();
    let directory = match one {
        Some(directory) => directory,
        None => connection
            .source
            .read()
            .await
            .map_err(PipelineError::from)?,
    };
    let resolution = directory.resolve();
    let desired = crate::plan::desired::desired(&connection.repository, &directory, &resolution);
    let user = crate::slack::writer::find_account(&connection.client, email)
        .await
        .map_err(PipelineError::from)?;
    let Some(user) = user.filter(|u| u.active) else {
        return Ok(LeaverRun::Nothing(format!(
            "{email} has no active Slack account: nothing to do"
        )));
    };
    let person = resolution.id(email);
    let removal = match crate::plan::leaver::leaver(&desired, &directory, person, &user) {
        Leaver::Stays => {
            return Ok(LeaverRun::Nothing(format!(
                "{email} should keep their account: nothing to do"
            )));
        }
        Leaver::NotOurs => {
            return Ok(LeaverRun::Nothing(format!(
                "{email} is a guest or a bot: never deactivated by this tool"
            )));
        }
        Leaver::Blocked(_) => {
            return Ok(LeaverRun::Refused(vec![format!(
                "{email} is protected or the primary owner: never deactivated"
            )]));
        }
        Leaver::Leaves(removal) => removal,
    };
    let person = removal.person.clone();
    let by = SignOut::on(desired.slack_plan);
    let plan = crate::plan::action::Plan {
        actions: crate::plan::leaver::leaver_actions(removal, Default::default(), by).into(),
        ..Default::default()
    };
    // One person read says nothing of the org's size: the recorded counts stand for it.
    let identity = match (&baseline, partial) {
        (Some(recorded), true) => *recorded,
        _ => crate::policy::IdentityCounts::of(&desired, &directory),
    };
    let live = crate::model::live::Live {
        users: vec![user],
        ..Default::default()
    };
    let judged = Judged {
        identity: &identity,
        baseline: baseline.as_ref(),
        directory: &directory,
        live: &live,
    };
    let refusals = leaver_refusals(&plan, connection, &judged).await;
    if !refusals.is_empty() {
        return Ok(LeaverRun::Refused(refusals));
    }
    Ok(LeaverRun::Deactivate(Box::new(LeaverPlan {
        plan,
        person,
        live,
        directory,
    })))
}

/// Runs a leaver's two actions as a run of their own: recorded, journalled, executed,
/// with the leaver's evidence.
async fn run_leaver(
    connection: &Connection,
    store: &Store,
    options: &ApplyOptions<'_>,
    org: &str,
    run: &LeaverPlan,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let hash = crate::policy::plan_hash(&run.plan);
    report.plan_summary = crate::render::plan::summary(&run.plan);
    report.plan_hash = hash.clone();
    let leavers = [&run.person];
    let started = Started {
        kind: "leaver",
        hash: &hash,
        approvals: "[]",
        resumes: None,
        live: &run.live,
        directory: &run.directory,
        read: Default::default(),
        leavers: &leavers,
    };
    let run_id = begin(store, org, options, &started)?;
    report.run_id = Some(run_id);
    report.execution = execute(
        connection,
        store,
        options,
        org,
        run_id,
        None,
        &run.plan,
        &run.live,
        Read::Fresh,
    )
    .await?;
    let outcome = match &report.execution.halt {
        Some(halt) => {
            report.outcome = ApplyOutcome::Halted {
                reason: halt.reason.clone(),
            };
            RunOutcome::Halted
        }
        None if report
            .execution
            .results
            .iter()
            .all(|r| r.outcome.succeeded()) =>
        {
            RunOutcome::Converged
        }
        None => {
            report.outcome = ApplyOutcome::Incomplete;
            RunOutcome::Incomplete
        }
    };
    report.leavers = leaver_evidence(store, org, connection, &run.plan)?;
    let counts = executor::to_json(&executor::tally(&report.execution.results));
    store.end_run(run_id, outcome, &counts, (options.clock)())?;
    Ok(())
}

/// What a leaver's own run is judged with: the identity counts (now and the last good
/// ones), the directory read, and live Slack as far as the run knows it (the account).
struct Judged<'a> {
    identity: &'a crate::policy::IdentityCounts,
    baseline: Option<&'a crate::policy::IdentityCounts>,
    directory: &'a crate::model::directory::Directory,
    live: &'a crate::model::live::Live,
}

/// Why a leaver's own run must not go ahead: the full sync's verdict on its two actions,
/// over the population a one-account run can know (see `Populations::estimated`), and
/// the repository's Rego policies over the same plan, as the full sync would judge it.
/// A deactivation over a limit waits for the full sync, which can carry an approval.
async fn leaver_refusals(
    plan: &crate::plan::action::Plan,
    connection: &Connection,
    judged: &Judged<'_>,
) -> Vec<String> {
    use crate::policy::Populations;
    let (identity, baseline) = (judged.identity, judged.baseline);
    let populations = Populations::estimated(identity, baseline);
    let verdict = crate::policy::verdict_over(
        plan,
        &populations,
        &connection.repository,
        identity,
        baseline,
    );
    let mappings = std::collections::BTreeMap::new();
    let report = crate::render::plan::PlanReport {
        plan,
        verdict: &verdict,
        identity,
        first_run: baseline.is_none(),
        mappings: &mappings,
        context: Default::default(),
        policy: None,
    };
    let policies = crate::pipeline::policy_outcome(
        &connection.repository,
        judged.directory,
        &report,
        judged.live,
    )
    .await
    .map(|outcome| outcome.refusals())
    .unwrap_or_default();
    let mut refusals = guardrail_refusals(verdict);
    refusals.extend(policies);
    refusals
}

/// The guardrails' reasons against a leaver's own run.
fn guardrail_refusals(verdict: Verdict) -> Vec<String> {
    match verdict {
        Verdict::Allowed { .. } => Vec::new(),
        Verdict::Refused { reasons, .. } => reasons,
        Verdict::NeedsApproval { exceeded, .. } => exceeded
            .iter()
            .map(|e| {
                format!(
                    "limits.{} ({}) allows no deactivation without an approval; the full sync asks for one",
                    e.kind,
                    crate::policy::limit_words(&e.limit)
                )
            })
            .collect(),
    }
}

/// Where the live state a plan was made against came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Read from Slack for this run.
    Fresh,
    /// Taken from the mirror (what the plan changes was read live): each destructive
    /// action reads its object again before it is sent.
    Mirror,
}

impl Read {
    fn of(connection: &Connection) -> Read {
        match connection.mirror_read() {
            Some(_) => Read::Mirror,
            None => Read::Fresh,
        }
    }
}

/// Runs a plan's actions through the executor for run `run_id`.
#[allow(clippy::too_many_arguments)]
async fn execute(
    connection: &Connection,
    store: &Store,
    options: &ApplyOptions<'_>,
    org: &str,
    run_id: i64,
    approval: Option<&str>,
    plan: &crate::plan::action::Plan,
    live: &crate::model::live::Live,
    from: Read,
) -> Result<Execution, ApplyError> {
    let executor = Executor::new(
        Context {
            client: &connection.client,
            store,
            run_id,
            org,
            commit: options.commit.as_deref(),
            approval,
            breaker: circuit_breaker(connection),
            clock: options.clock,
            on_result: options.on_result,
            stop: options.stop,
            recheck: from == Read::Mirror,
        },
        live,
    );
    Ok(executor.run(&plan.actions).await?)
}

fn refused_early(options: &ApplyOptions, reasons: Vec<String>) -> ApplyReport {
    ApplyReport {
        outcome: ApplyOutcome::Refused { reasons },
        ..blank_report(options)
    }
}

/// A report of nothing done yet, for `options.commit`.
fn blank_report(options: &ApplyOptions) -> ApplyReport {
    ApplyReport {
        run_id: None,
        commit: options.commit.clone(),
        outcome: ApplyOutcome::DryRun,
        plan_summary: String::new(),
        planned: Vec::new(),
        plan_hash: String::new(),
        verdict: Verdict::Allowed {
            counts: Default::default(),
            approved: false,
        },
        interrupted: Vec::new(),
        execution: Execution::default(),
        remaining: Vec::new(),
        not_stuck: Vec::new(),
        undo: None,
        leavers: Vec::new(),
        manual_steps: Vec::new(),
        warnings: Vec::new(),
        calls: 0,
        rate_limited: 0,
    }
}

/// Everything apply does while it holds the lock: plan (with pending sign-outs), refuse
/// or stop at a dry run, otherwise run the plan.
async fn locked(
    connection: &Connection,
    store: &Store,
    options: &ApplyOptions<'_>,
    org: &str,
) -> Result<ApplyReport, ApplyError> {
    let client = &connection.client;
    let before = client.counts();
    let baseline = Baseline {
        identity: store.last_good_identity(org)?,
        mappings: Default::default(),
        drift: options.drift.clone(),
        changes: None,
    };
    let mut planned = plan_org(connection, &baseline).await?;
    let signouts = pending_signouts(connection, store, org, &planned, options).await?;
    planned.plan.actions.extend(signouts);
    let hash = crate::policy::plan_hash(&planned.plan);
    let mut report = ApplyReport {
        outcome: ApplyOutcome::DryRun,
        manual_steps: planned.plan.manual_steps.clone(),
        plan_summary: crate::render::plan::summary(&planned.plan),
        plan_hash: hash.clone(),
        verdict: planned.verdict.clone(),
        warnings: planned.warnings.clone(),
        ..blank_report(options)
    };
    let reasons = refusals(connection, &planned, options, &hash);
    if !reasons.is_empty() {
        report.outcome = ApplyOutcome::Refused { reasons };
        return Ok(finish(report, client, before));
    }
    if options.dry_run {
        report.planned = crate::render::plan::action_lines(&planned.plan);
        return Ok(finish(report, client, before));
    }
    report.interrupted = interrupted_runs(store, org, &planned, (options.clock)())?;
    run_planned(
        connection,
        store,
        options,
        org,
        &baseline,
        &planned,
        &mut report,
    )
    .await?;
    Ok(finish(report, client, before))
}

/// Runs an allowed plan as a recorded run: begins it (snapshot, leavers), executes it,
/// and ends it halted or converged, with the leavers' evidence and, after a halt, the
/// undo command.
async fn run_planned(
    connection: &Connection,
    store: &Store,
    options: &ApplyOptions<'_>,
    org: &str,
    baseline: &Baseline,
    planned: &Planned,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let hash = report.plan_hash.clone();
    let approval =
        matches!(planned.verdict, Verdict::Allowed { approved: true, .. }).then_some(hash.as_str());
    let approvals = executor::to_json(&approval.into_iter().collect::<Vec<_>>());
    let leavers: Vec<&crate::plan::action::Person> = planned
        .plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeactivateUser { removal, .. } => Some(&removal.person),
            _ => None,
        })
        .collect();
    let started = Started {
        kind: "apply",
        hash: &hash,
        approvals: &approvals,
        resumes: report.interrupted.last().map(|r| r.run_id),
        live: &planned.live,
        directory: &planned.directory,
        read: planned.read.clone(),
        leavers: &leavers,
    };
    let run_id = begin(store, org, options, &started)?;
    report.run_id = Some(run_id);
    report.execution = execute(
        connection,
        store,
        options,
        org,
        run_id,
        approval,
        &planned.plan,
        &planned.live,
        Read::of(connection),
    )
    .await?;
    let outcome = match &report.execution.halt {
        Some(halt) => {
            report.undo = Some(undo_command(options, run_id, &halt.affected));
            report.outcome = ApplyOutcome::Halted {
                reason: halt.reason.clone(),
            };
            RunOutcome::Halted
        }
        None => converged(connection, baseline, report).await?,
    };
    if outcome == RunOutcome::Converged {
        store.set_last_good_identity(org, &planned.identity, run_id, (options.clock)())?;
    }
    report.leavers = leaver_evidence(store, org, connection, &planned.plan)?;
    let counts = executor::to_json(&executor::tally(&report.execution.results));
    store.end_run(run_id, outcome, &counts, (options.clock)())?;
    Ok(())
}

/// The `restore` command that undoes run `run_id` for the people it affected, shell-quoted.
fn undo_command(options: &ApplyOptions<'_>, run_id: i64, affected: &[String]) -> String {
    let mut words: Vec<String> = vec!["slack-gitops".into(), "restore".into()];
    words.extend(options.restore_with.iter().cloned());
    words.extend(["--run".into(), run_id.to_string()]);
    if !affected.is_empty() {
        words.extend(["--people".into(), affected.join(",")]);
    }
    words
        .iter()
        .map(|word| shell_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell reads it back: as is when it is plain, single-quoted otherwise.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn finish(
    mut report: ApplyReport,
    client: &crate::slack::client::SlackClient,
    before: crate::slack::client::CallCounts,
) -> ApplyReport {
    let after = client.counts();
    report.calls = after.calls - before.calls;
    report.rate_limited = after.rate_limited - before.rate_limited;
    report
}

/// The policies' circuit breaker (the first that sets one), or the defaults.
fn circuit_breaker(connection: &Connection) -> CircuitBreaker {
    connection
        .repository
        .policies
        .iter()
        .find_map(|p| p.value.circuit_breaker)
        .unwrap_or_default()
}

/// Why the plan may not be applied; empty when it may.
fn refusals(
    connection: &Connection,
    planned: &Planned,
    options: &ApplyOptions,
    hash: &str,
) -> Vec<String> {
    let mut reasons = Vec::new();
    match &planned.verdict {
        Verdict::Refused { reasons: why, .. } => reasons.extend(why.iter().cloned()),
        Verdict::NeedsApproval { exceeded, .. } => {
            for over in exceeded {
                reasons.push(format!(
                    "{} {} is over the limit ({}); an approvals/*.yaml with hash {hash}, merged with the change, allows it (slack-gitops approve)",
                    over.count,
                    over.kind,
                    crate::policy::limit_words(&over.limit)
                ));
            }
        }
        Verdict::Allowed { approved: true, .. } => reasons.extend(
            crate::policy::approval_problems(&connection.repository, hash, &options.today),
        ),
        Verdict::Allowed { .. } => {}
    }
    if let Some(reviewed) = &options.reviewed {
        match &reviewed.destructive {
            Some(set) => {
                for line in crate::policy::unreviewed(&planned.plan, set) {
                    reasons.push(format!(
                        "stale plan: `{line}` was not in the reviewed plan; plan again and review it"
                    ));
                }
            }
            None => reasons.push(
                "the reviewed plan carries no destructive set (written by an older version); plan again".into(),
            ),
        }
    }
    reasons
}

/// The offboarding evidence of this plan's leavers, measured against `leavers.sla`.
fn leaver_evidence(
    store: &Store,
    org: &str,
    connection: &Connection,
    plan: &crate::plan::action::Plan,
) -> Result<Vec<LeaverEvidence>, StoreError> {
    let sla = connection
        .repository
        .policies
        .iter()
        .find_map(|p| p.value.leavers.as_ref())
        .and_then(|l| crate::config::semantic::parse_duration_seconds(&l.sla));
    let mut apps: std::collections::HashMap<&str, Option<Vec<String>>> = Default::default();
    for action in &plan.actions {
        match action {
            Action::DeactivateUser { removal, impact } => {
                apps.insert(removal.person.email.as_str(), impact.apps.clone());
            }
            Action::ResetSessions { person, .. } => {
                apps.entry(person.email.as_str()).or_insert(None);
            }
            _ => {}
        }
    }
    Ok(store
        .leavers(org)?
        .into_iter()
        .filter_map(|leaver| {
            let installed = apps.get(leaver.email.as_str())?.clone();
            let seconds = leaver
                .signed_out_at
                .map(|at| (at - leaver.first_seen) as f64 / 1000.0);
            Some(LeaverEvidence {
                within_sla: seconds.zip(sla).map(|(s, sla)| s <= sla as f64),
                email: leaver.email,
                first_seen: leaver.first_seen,
                deactivated_at: leaver.deactivated_at,
                signed_out_at: leaver.signed_out_at,
                seconds_to_signed_out: seconds,
                sla_seconds: sla,
                apps: installed,
            })
        })
        .collect())
}

/// Leavers an earlier run deactivated but did not record as signed out (it failed, or the
/// process died between the two): their accounts are inactive now, so the plan no longer
/// lists them. On Enterprise Grid their sessions are read back
/// (`admin.users.session.list`): one with no active session was signed out (recorded
/// now, and not reset again); one still signed in, or whose sessions cannot be read, is
/// reset here (repeating a reset is harmless). On Business+ the deactivation was the
/// sign-out, and the live read just made shows the account inactive: recorded now.
async fn pending_signouts(
    connection: &Connection,
    store: &Store,
    org: &str,
    planned: &Planned,
    options: &ApplyOptions<'_>,
) -> Result<Vec<Action>, StoreError> {
    let planned_resets: std::collections::HashSet<&str> = planned
        .plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ResetSessions { person, .. } => Some(person.email.as_str()),
            _ => None,
        })
        .collect();
    let inactive: std::collections::HashMap<&str, &str> = planned
        .live
        .users
        .iter()
        .filter(|u| !u.active)
        .map(|u| (u.email.as_str(), u.id.as_str()))
        .collect();
    let teams = crate::pipeline::team_ids(&connection.repository);
    let by = SignOut::on(connection.repository.config.value.slack.plan);
    let mut actions = Vec::new();
    for leaver in store.leavers(org)? {
        if leaver.signed_out_at.is_some() || planned_resets.contains(leaver.email.as_str()) {
            continue;
        }
        let Some(id) = inactive.get(leaver.email.as_str()) else {
            continue;
        };
        let read_back = match by {
            SignOut::Deactivation => Ok(false),
            SignOut::SessionReset => {
                crate::slack::writer::has_sessions(&connection.client, id, &teams).await
            }
        };
        match read_back {
            Ok(false) => {
                tracing::info!(email = %leaver.email, "signed out already (read back): not reset again");
                if !options.dry_run {
                    let (run, now) = (leaver.run_id.unwrap_or_default(), (options.clock)());
                    let step = crate::store::LeaverStep::SignedOut;
                    store.leaver_step(org, &leaver.email, step, run, now)?;
                }
                continue;
            }
            Ok(true) => {}
            Err(error) => {
                tracing::warn!(email = %leaver.email, %error, "cannot read sessions back; resetting them again")
            }
        }
        actions.push(Action::ResetSessions {
            by,
            person: crate::plan::action::Person {
                email: leaver.email.clone(),
                user_id: crate::plan::action::SlackId::Live(id.to_string()),
            },
        });
    }
    Ok(actions)
}

/// Marks runs left running by a dead process as interrupted, and reads back their
/// actions of unknown outcome against the fresh plan: an action the fresh plan no longer
/// needs was done; one it still needs was not, and this run does it.
fn interrupted_runs(
    store: &Store,
    org: &str,
    planned: &Planned,
    now: i64,
) -> Result<Vec<Interrupted>, StoreError> {
    let pending: std::collections::HashSet<String> = planned
        .plan
        .actions
        .iter()
        .map(Action::journal_key)
        .collect();
    let mut found = Vec::new();
    for run in store.unfinished_runs(org)? {
        let journal = store.journal(run.id)?;
        let mut unknown = Vec::new();
        for entry in journal.iter().filter(|e| e.outcome.is_none()) {
            let verdict = if pending.contains(&entry.key) {
                "not done"
            } else {
                "done"
            };
            store.outcome(
                run.id,
                entry.seq,
                &format!("read-back: {verdict}"),
                "the process stopped before it journalled the outcome",
                "",
                now,
            )?;
            unknown.push((entry.key.clone(), verdict.to_string()));
        }
        store.end_run(run.id, RunOutcome::Interrupted, "{}", now)?;
        found.push(Interrupted {
            run_id: run.id,
            started_at: run.started_at,
            finished: journal.len() - unknown.len(),
            unknown,
        });
    }
    Ok(found)
}

/// What a run records before its first write.
struct Started<'a> {
    kind: &'a str,
    hash: &'a str,
    approvals: &'a str,
    resumes: Option<i64>,
    live: &'a crate::model::live::Live,
    directory: &'a crate::model::directory::Directory,
    read: crate::slack::reader::ReadReport,
    leavers: &'a [&'a crate::plan::action::Person],
}

/// Records the run, the snapshot it starts from, and leavers as first seen.
fn begin(
    store: &Store,
    org: &str,
    options: &ApplyOptions,
    started: &Started,
) -> Result<i64, StoreError> {
    let now = (options.clock)();
    let run_id = store.begin_run(&crate::store::NewRun {
        org,
        kind: started.kind,
        commit: options.commit.as_deref(),
        plan_hash: started.hash,
        approvals: started.approvals,
        started_at: now,
        resumes: started.resumes,
    })?;
    let calls = ReadCalls {
        made: started.read.calls,
        minimum: started.read.minimum_calls,
        rate_limited: started.read.rate_limited,
        retries: started.read.retries,
    };
    let snapshot = Snapshot::new(
        (now / 1000) as u64,
        calls,
        started.live.clone(),
        started.directory.clone(),
    );
    store.save_snapshot(run_id, now, &snapshot.to_json())?;
    for person in started.leavers {
        store.leaver_seen(org, &person.email, person.user_id.live(), now)?;
    }
    Ok(run_id)
}

/// Plans again: converged when nothing is left; what succeeded must not reappear.
async fn converged(
    connection: &Connection,
    baseline: &Baseline,
    report: &mut ApplyReport,
) -> Result<RunOutcome, ApplyError> {
    let fresh = plan_org(connection, baseline).await?;
    report.remaining = fresh.plan.actions.iter().map(Action::journal_key).collect();
    let remaining: std::collections::HashSet<&str> =
        report.remaining.iter().map(String::as_str).collect();
    report.not_stuck = report
        .execution
        .results
        .iter()
        .filter(|r| r.outcome.succeeded() && remaining.contains(r.key.as_str()))
        .map(|r| r.key.clone())
        .collect();
    Ok(report.settle())
}

pub use crate::model::{iso_date, iso_time};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_time(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso_date(951_782_400_000), "2000-02-29");
        assert_eq!(
            crate::model::date_millis("2000-02-29"),
            Some(951_782_400_000)
        );
        assert_eq!(crate::model::date_millis("2001-02-29"), None);
        assert_eq!(
            crate::model::rfc3339_millis("2026-11-18T12:06:40+01:00"),
            Some(1_795_000_000_000)
        );
    }
}
