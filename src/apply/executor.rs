//! The executor: runs a plan's actions against Slack in plan order, one `match` over
//! [`Action`], journalling each action's intent before its first call and its outcome
//! after.
//!
//! **Canary, then waves.** Actions come in runs of one kind (the plan orders them so).
//! The first write of each kind goes alone and is read back before the next write of that
//! kind; after it, waves of 2, 4, 8, ... actions run at once, up to the burst of the
//! kind's rate-limit bucket. The client paces every call to Slack's published rates, so
//! waves only keep the pipe full; a regression like April 2024's costs one person.
//!
//! **Never a blind retry.** A write that times out, resets or gets a 5xx may or may not
//! have happened. The executor reads the object back and decides again: done already, or
//! worth one more try. A 429 means Slack did not process the request, so the client waits
//! `Retry-After` and sends it again.
//!
//! **Stop on surprises.** A SCIM reply or a read-back that shows an account inactive that
//! was not being deactivated halts the run at once. So does the circuit breaker: too many
//! failures in a row, or too high a failure rate after enough writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::config::types::CircuitBreaker;
use crate::model::live::Live;
use crate::plan::action::{Action, Person};
use crate::slack::client::{ErrorClass, SlackClient, SlackError};
use crate::store::{Store, StoreError};

mod actions;
mod audit;
mod bulk;
mod recheck;

/// How one action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "kebab-case")]
pub enum Outcome {
    /// Slack now shows what was asked.
    Done,
    /// A read-back after an unclear failure showed it had already happened.
    AlreadyDone,
    /// Slack refused it, or it could not be verified.
    Failed(String),
    /// Not attempted: something it depends on failed.
    Skipped(String),
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Done | Outcome::AlreadyDone)
    }

    /// `done`, `already-done`, `failed` or `skipped`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already-done",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// Why it failed or was skipped; empty otherwise.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Done | Outcome::AlreadyDone => "",
            Outcome::Failed(d) | Outcome::Skipped(d) => d,
        }
    }
}

/// One action's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    pub seq: usize,
    /// Stable key: what the action does to whom.
    pub key: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Milliseconds from intent to outcome.
    pub millis: i64,
    /// Slack ids the action touched or created.
    pub slack_ids: Vec<String>,
}

/// Why the run stopped before the end of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    pub reason: String,
    /// People whose accounts were found in a state nobody asked for.
    pub affected: Vec<String>,
}

/// What the executor did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub results: Vec<ActionResult>,
    pub halt: Option<Halt>,
    /// Write calls sent, and how many of them failed (a failure the read-back resolved
    /// counts here too). A bulk sign-out counts once for each person it carries.
    pub writes: u64,
    pub failed_writes: u64,
    /// Actions that wrote, and how many of them ended failed: what the circuit breaker
    /// judges.
    pub actions_written: u64,
    pub actions_failed: u64,
}

/// The executor's inputs besides the plan.
pub struct Context<'a> {
    pub client: &'a SlackClient,
    pub store: &'a Store,
    pub run_id: i64,
    pub org: &'a str,
    pub commit: Option<&'a str>,
    /// The approval hash the run is under, for the audit trail.
    pub approval: Option<&'a str>,
    pub breaker: CircuitBreaker,
    /// Unix milliseconds; injected so tests and the store never read a clock here.
    pub clock: &'a (dyn Fn() -> i64 + Sync),
    /// Called after each action (a progress bar, or a log line).
    pub on_result: &'a (dyn Fn(&ActionResult, &Action) + Sync),
    /// Set to stop: the actions in flight finish and are journalled, then the run halts.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// The plan was made from the mirror: each destructive action reads its object again
    /// first and goes ahead only if it is still needed (see `recheck`).
    pub recheck: bool,
}

/// Ids known so far: live ones, and those of objects created in this run.
#[derive(Debug, Default)]
struct Ids {
    users: HashMap<String, String>,
    usergroups: HashMap<(String, String), String>,
    channels: HashMap<(String, String), String>,
    /// Emails whose creation or deactivation failed: actions on them are skipped.
    failed_people: HashMap<String, String>,
    failed_usergroups: HashMap<(String, String), String>,
    failed_channels: HashMap<(String, String), String>,
}

impl Ids {
    fn from_live(live: &Live) -> Ids {
        let mut ids = Ids::default();
        for user in &live.users {
            // An active account wins over a deactivated one with the same email.
            if user.active || !ids.users.contains_key(&user.email) {
                ids.users.insert(user.email.clone(), user.id.clone());
            }
        }
        for group in &live.usergroups {
            ids.usergroups.insert(
                (group.workspace.clone(), group.handle.clone()),
                group.id.clone(),
            );
        }
        for channel in &live.channels {
            ids.channels.insert(
                (channel.workspace.clone(), channel.name.clone()),
                channel.id.clone(),
            );
        }
        ids
    }

    /// The Slack ids of the people who have an account, and the emails of those who
    /// do not.
    fn users_of<'p>(
        &self,
        people: impl IntoIterator<Item = &'p Person>,
    ) -> (Vec<String>, Vec<String>) {
        let mut ids = Vec::new();
        let mut missing = Vec::new();
        for person in people {
            match self.user(person) {
                Ok(id) => ids.push(id),
                Err(_) => missing.push(person.email.clone()),
            }
        }
        (ids, missing)
    }

    fn user(&self, person: &Person) -> Result<String, Outcome> {
        if let Some(id) = person.user_id.live() {
            return Ok(id.to_string());
        }
        if let Some(why) = self.failed_people.get(&person.email) {
            return Err(Outcome::Skipped(format!("{}: {why}", person.email)));
        }
        self.users
            .get(&person.email)
            .cloned()
            .ok_or_else(|| Outcome::Skipped(format!("{} has no account yet", person.email)))
    }
}

/// The kind of write an action is, for canaries, waves and the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WriteKind {
    ScimCreate,
    ScimUpdate,
    Deactivate,
    Workspace,
    Usergroup,
    UsergroupMembers,
    ChannelCreate,
    Invite,
    Kick,
    Sessions,
    Role,
}

impl WriteKind {
    fn of(action: &Action) -> WriteKind {
        match action {
            Action::CreateUser { .. } => WriteKind::ScimCreate,
            Action::ReactivateUser { .. } | Action::UpdateProfile { .. } => WriteKind::ScimUpdate,
            Action::DeactivateUser { .. } => WriteKind::Deactivate,
            Action::AssignWorkspace { .. } => WriteKind::Workspace,
            Action::CreateUsergroup { .. }
            | Action::UpdateUsergroup { .. }
            | Action::EnableUsergroup { .. }
            | Action::DisableUsergroup { .. } => WriteKind::Usergroup,
            Action::SetUsergroupMembers { .. } => WriteKind::UsergroupMembers,
            Action::CreateChannel { .. } => WriteKind::ChannelCreate,
            Action::InviteToChannel { .. } => WriteKind::Invite,
            Action::KickFromChannel { .. } => WriteKind::Kick,
            Action::ResetSessions { .. } => WriteKind::Sessions,
            Action::SetRole { .. } => WriteKind::Role,
        }
    }

    /// The most actions of this kind in flight at once: the burst of its bucket (SCIM
    /// user writes: 20; Tier 2: 5; Tier 3: 12, as the client's pacing buckets hold).
    fn burst(self) -> usize {
        match self {
            WriteKind::ScimCreate | WriteKind::ScimUpdate | WriteKind::Deactivate => 20,
            WriteKind::Invite | WriteKind::Kick => 12,
            _ => 5,
        }
    }
}

/// What running one action yields besides its outcome.
struct Ran {
    outcome: Outcome,
    slack_ids: Vec<String>,
    /// A state nobody asked for: halts the run.
    surprise: Option<Halt>,
    /// Writes sent and failed, for the breaker.
    writes: u64,
    failed: u64,
}

impl Ran {
    fn new(outcome: Outcome) -> Ran {
        Ran {
            outcome,
            slack_ids: Vec::new(),
            surprise: None,
            writes: 0,
            failed: 0,
        }
    }
}

/// An error from a write, sorted: did the write perhaps happen?
enum WriteError {
    /// Slack answered and refused: it did not happen.
    Refused(String),
    /// Timeout, reset or 5xx: unknown; read back.
    Unclear(String),
}

fn classify(error: SlackError) -> WriteError {
    match error.class() {
        ErrorClass::Retryable => WriteError::Unclear(error.to_string()),
        _ => WriteError::Refused(error.to_string()),
    }
}

/// How many times an unclear write is decided again after a read-back.
const DECISIONS: usize = 4;

pub struct Executor<'a> {
    context: Context<'a>,
    ids: Mutex<Ids>,
    sessions: bulk::Sessions,
    /// Channels read again before their kicks, by id (`None`: gone from Slack).
    channels_now: tokio::sync::Mutex<HashMap<String, Option<crate::model::live::LiveChannel>>>,
}

impl<'a> Executor<'a> {
    pub fn new(context: Context<'a>, live: &Live) -> Executor<'a> {
        Executor {
            context,
            ids: Mutex::new(Ids::from_live(live)),
            sessions: bulk::Sessions::from_live(live),
            channels_now: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, Ids> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the plan's actions in order, in canary-first waves per kind.
    pub async fn run(&self, actions: &[Action]) -> Result<Execution, StoreError> {
        let mut execution = Execution::default();
        let mut canaried: HashMap<WriteKind, bool> = HashMap::new();
        let mut consecutive_failures = 0u32;
        let mut start = 0;
        while start < actions.len() {
            let kind = WriteKind::of(&actions[start]);
            let end = actions[start..]
                .iter()
                .position(|a| WriteKind::of(a) != kind)
                .map_or(actions.len(), |n| start + n);
            let mut wave = 1usize;
            let mut next = start;
            while next < end {
                if self
                    .context
                    .stop
                    .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst))
                {
                    execution.halt = Some(Halt {
                        reason: "stopped on request (SIGTERM, or this controller replica stopped leading); the next run finishes the plan"
                            .into(),
                        affected: Vec::new(),
                    });
                    return Ok(execution);
                }
                let canary = !canaried.get(&kind).copied().unwrap_or(false);
                let bulk = match kind {
                    WriteKind::Sessions if !canary => {
                        bulk::bulk_len(actions, next, end, kind.burst())
                    }
                    _ => 0,
                };
                let size = if canary {
                    1
                } else if bulk > 0 {
                    bulk
                } else {
                    wave.min(kind.burst())
                };
                let batch = next..(next + size).min(end);
                let results = if bulk > 0 {
                    self.journalled_bulk(batch.clone(), actions).await
                } else {
                    let runs = batch
                        .clone()
                        .map(|seq| self.journalled(seq, &actions[seq], canary));
                    futures_util::future::join_all(runs).await
                };
                for (seq, ran) in batch.clone().zip(results) {
                    let (result, ran) = ran?;
                    (self.context.on_result)(&result, &actions[seq]);
                    execution.writes += ran.writes;
                    execution.failed_writes += ran.failed;
                    if ran.writes > 0 {
                        execution.actions_written += 1;
                        if ran.outcome.succeeded() {
                            consecutive_failures = 0;
                        } else {
                            execution.actions_failed += 1;
                            consecutive_failures += 1;
                        }
                    }
                    if let Some(surprise) = ran.surprise {
                        execution.halt.get_or_insert(surprise);
                    }
                    execution.results.push(result);
                }
                if execution.halt.is_none() {
                    execution.halt = self.breaker(&execution, consecutive_failures);
                }
                if execution.halt.is_some() {
                    return Ok(execution);
                }
                // Waves grow while writes succeed and fall back to one at a time after a
                // failure, so a failing kind is probed, not flooded.
                let failed = execution.results[execution.results.len() - batch.len()..]
                    .iter()
                    .any(|r| !r.outcome.succeeded());
                if canary {
                    canaried.insert(kind, true);
                } else if failed {
                    wave = 1;
                } else {
                    wave = (wave * 2).min(kind.burst());
                }
                next = batch.end;
            }
            start = end;
        }
        Ok(execution)
    }

    /// The circuit breaker: writes that ended failed (after any read-back and second
    /// decision) in a row, or their share after enough writes.
    fn breaker(&self, execution: &Execution, consecutive: u32) -> Option<Halt> {
        let breaker = &self.context.breaker;
        if consecutive >= breaker.consecutive_failures {
            return Some(Halt {
                reason: format!(
                    "circuit breaker: {consecutive} writes failed in a row (circuit_breaker.consecutive_failures is {})",
                    breaker.consecutive_failures
                ),
                affected: Vec::new(),
            });
        }
        if execution.actions_written >= u64::from(breaker.min_writes) {
            let percent =
                execution.actions_failed as f64 * 100.0 / execution.actions_written as f64;
            if percent > breaker.max_error_percent {
                return Some(Halt {
                    reason: format!(
                        "circuit breaker: {} of {} writes failed ({percent:.1}%, over circuit_breaker.max_error_percent {}%)",
                        execution.actions_failed,
                        execution.actions_written,
                        breaker.max_error_percent
                    ),
                    affected: Vec::new(),
                });
            }
        }
        None
    }

    /// One action between its intent and its outcome in the journal.
    async fn journalled(
        &self,
        seq: usize,
        action: &Action,
        canary: bool,
    ) -> Result<(ActionResult, Ran), StoreError> {
        let started = self.intent(seq, action)?;
        let ran = self.execute(action, canary).await;
        self.outcome(seq, action, started, ran)
    }

    /// Sign-outs carried by one bulk call: every intent journalled before it, every
    /// outcome after the read-back.
    async fn journalled_bulk(
        &self,
        seqs: std::ops::Range<usize>,
        actions: &[Action],
    ) -> Vec<Result<(ActionResult, Ran), StoreError>> {
        let mut started = Vec::with_capacity(seqs.len());
        for seq in seqs.clone() {
            match self.intent(seq, &actions[seq]) {
                Ok(at) => started.push(at),
                Err(error) => return vec![Err(error)],
            }
        }
        let batch: Vec<&Action> = actions[seqs.clone()].iter().collect();
        let rans = self.sign_out_in_bulk(&batch).await;
        seqs.zip(started)
            .zip(rans)
            .map(|((seq, at), ran)| self.outcome(seq, &actions[seq], at, ran))
            .collect()
    }

    /// Journals an action's intent; returns when it started.
    fn intent(&self, seq: usize, action: &Action) -> Result<i64, StoreError> {
        let context = &self.context;
        let started = (context.clock)();
        let json = serde_json::to_string(action).unwrap_or_default();
        context.store.intent(
            context.run_id,
            seq as i64,
            &action.journal_key(),
            &json,
            started,
        )?;
        Ok(started)
    }

    /// Journals an action's outcome and records what it did.
    fn outcome(
        &self,
        seq: usize,
        action: &Action,
        started: i64,
        ran: Ran,
    ) -> Result<(ActionResult, Ran), StoreError> {
        let context = &self.context;
        let key = action.journal_key();
        let ended = (context.clock)();
        context.store.outcome(
            context.run_id,
            seq as i64,
            ran.outcome.word(),
            ran.outcome.detail(),
            &ran.slack_ids.join(","),
            ended,
        )?;
        if ran.outcome.succeeded() {
            self.record(action, ended)?;
        }
        let result = ActionResult {
            seq,
            key,
            outcome: ran.outcome.clone(),
            millis: ended - started,
            slack_ids: ran.slack_ids.clone(),
        };
        Ok((result, ran))
    }

    /// The audit trail and leaver timestamps of a successful action.
    fn record(&self, action: &Action, now: i64) -> Result<(), StoreError> {
        let context = &self.context;
        let ids = self.ids();
        let trail = audit::Trail {
            at: now,
            users: &ids.users,
            commit: context.commit,
            approval: context.approval,
        };
        if let Some((email, step)) = audit::leaver_step(action) {
            context
                .store
                .leaver_step(context.org, email, step, context.run_id, now)?;
        }
        let events = audit::events(action, &trail);
        if events.is_empty() {
            return Ok(());
        }
        context.store.audit(context.run_id, &events)
    }
}

/// Counts of outcomes, for reports and the run's row.
pub fn tally(results: &[ActionResult]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for result in results {
        *counts.entry(result.outcome.word()).or_insert(0) += 1;
    }
    counts
}

/// The JSON of a value for the journal; `null` when it cannot be written.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| Value::Null.to_string())
}
