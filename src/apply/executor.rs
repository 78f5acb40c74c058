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
use crate::model::live::{Live, LiveUser};
use crate::plan::action::{Action, Person, Role, SlackId};
use crate::slack::client::{ErrorClass, SlackClient, SlackError};
use crate::slack::writer;
use crate::store::{AuditEvent, LeaverStep, Store, StoreError};

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

    fn word(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already-done",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    fn detail(&self) -> &str {
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
    /// counts here too).
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

/// The stable key of an action: what it does to whom. The same change planned again
/// (after a crash, say) has the same key.
pub fn action_key(action: &Action) -> String {
    match action {
        Action::CreateUser { person, .. } => format!("create-user {}", person.email),
        Action::ReactivateUser { person } => format!("reactivate-user {}", person.email),
        Action::UpdateProfile { person, fields } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            format!("update-profile {} {}", person.email, names.join(","))
        }
        Action::AssignWorkspace { person, workspace } => {
            format!("assign-workspace {workspace} {}", person.email)
        }
        Action::CreateUsergroup {
            workspace, handle, ..
        } => format!("create-usergroup {workspace}/@{handle}"),
        Action::UpdateUsergroup {
            workspace, handle, ..
        } => format!("update-usergroup {workspace}/@{handle}"),
        Action::EnableUsergroup {
            workspace, handle, ..
        } => format!("enable-usergroup {workspace}/@{handle}"),
        Action::DisableUsergroup {
            workspace, handle, ..
        } => format!("disable-usergroup {workspace}/@{handle}"),
        Action::SetUsergroupMembers {
            workspace, handle, ..
        } => format!("set-usergroup-members {workspace}/@{handle}"),
        Action::CreateChannel {
            workspace, name, ..
        } => format!("create-channel {workspace}/#{name}"),
        Action::InviteToChannel {
            workspace,
            channel,
            people,
            ..
        } => {
            let first = people.first().map_or("", |p| p.person.email.as_str());
            format!(
                "invite {workspace}/#{channel} {first} +{}",
                people.len().saturating_sub(1)
            )
        }
        Action::KickFromChannel {
            workspace,
            channel,
            removal,
            ..
        } => format!("kick {workspace}/#{channel} {}", removal.person.email),
        Action::DeactivateUser { removal, .. } => {
            format!("deactivate-user {}", removal.person.email)
        }
        Action::ResetSessions { person } => format!("reset-sessions {}", person.email),
        Action::SetRole {
            person,
            workspace,
            role,
        } => format!("set-role {workspace} {} {}", person.email, role.as_str()),
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
}

impl<'a> Executor<'a> {
    pub fn new(context: Context<'a>, live: &Live) -> Executor<'a> {
        Executor {
            context,
            ids: Mutex::new(Ids::from_live(live)),
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
                let canary = !canaried.get(&kind).copied().unwrap_or(false);
                let size = if canary { 1 } else { wave.min(kind.burst()) };
                let batch = next..(next + size).min(end);
                let runs = batch
                    .clone()
                    .map(|seq| self.journalled(seq, &actions[seq], canary));
                let results = futures_util::future::join_all(runs).await;
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
                if canary {
                    canaried.insert(kind, true);
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
        let context = &self.context;
        let key = action_key(action);
        let started = (context.clock)();
        let json = serde_json::to_string(action).unwrap_or_default();
        context
            .store
            .intent(context.run_id, seq as i64, &key, &json, started)?;
        let ran = self.execute(action, canary).await;
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
            self.record(action, &ran, ended)?;
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
    fn record(&self, action: &Action, ran: &Ran, now: i64) -> Result<(), StoreError> {
        let context = &self.context;
        let event =
            |person: &Person, entitlement: String, change: &str, rule: Option<String>| AuditEvent {
                at: now,
                email: person.email.clone(),
                user_id: person
                    .user_id
                    .live()
                    .map(str::to_string)
                    .or_else(|| ran.slack_ids.first().cloned()),
                entitlement,
                change: change.to_string(),
                rule,
                commit: context.commit.map(str::to_string),
                approval: context.approval.map(str::to_string),
            };
        let mut events = Vec::new();
        match action {
            Action::CreateUser { person, grant, .. } => events.push(event(
                person,
                "account".into(),
                "granted",
                Some(grant.rule.to_string()),
            )),
            Action::ReactivateUser { person } => {
                events.push(event(person, "account".into(), "reactivated", None))
            }
            Action::AssignWorkspace { person, workspace } => events.push(event(
                person,
                format!("workspace {workspace}"),
                "granted",
                None,
            )),
            Action::SetUsergroupMembers {
                workspace,
                handle,
                adds,
                removes,
                rule,
                ..
            } => {
                let target = format!("{workspace}/@{handle}");
                for add in adds {
                    let rule = add.grants.first().map(|g| g.rule.to_string());
                    events.push(event(&add.person, target.clone(), "granted", rule));
                }
                for removal in removes {
                    let rule = Some(rule.to_string());
                    events.push(event(&removal.person, target.clone(), "removed", rule));
                }
            }
            Action::InviteToChannel {
                workspace,
                channel,
                people,
                ..
            } => {
                let target = format!("{workspace}/#{channel}");
                for add in people {
                    let rule = add.grants.first().map(|g| g.rule.to_string());
                    events.push(event(&add.person, target.clone(), "granted", rule));
                }
            }
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => events.push(event(
                &removal.person,
                format!("{workspace}/#{channel}"),
                "removed",
                None,
            )),
            Action::DeactivateUser { removal, .. } => {
                events.push(event(
                    &removal.person,
                    "account".into(),
                    "deactivated",
                    None,
                ));
                context.store.leaver_step(
                    context.org,
                    &removal.person.email,
                    LeaverStep::Deactivated,
                    context.run_id,
                    now,
                )?;
            }
            Action::SetRole {
                person,
                workspace,
                role,
            } => events.push(event(
                person,
                format!("{} role in {workspace}", role.as_str()),
                "granted",
                None,
            )),
            Action::ResetSessions { person } => {
                events.push(event(person, "sessions".into(), "signed-out", None));
                context.store.leaver_step(
                    context.org,
                    &person.email,
                    LeaverStep::SignedOut,
                    context.run_id,
                    now,
                )?;
            }
            _ => {}
        }
        if events.is_empty() {
            return Ok(());
        }
        context.store.audit(context.run_id, &events)
    }

    /// One `match` over the action.
    async fn execute(&self, action: &Action, canary: bool) -> Ran {
        match action {
            Action::CreateUser {
                person, profile, ..
            } => self.create_user(&person.email, profile).await,
            Action::ReactivateUser { person } => self.set_active(person, true, canary).await,
            Action::DeactivateUser { removal, .. } => {
                self.set_active(&removal.person, false, true).await
            }
            Action::UpdateProfile { person, fields } => {
                let changes: Vec<(&str, &str)> =
                    fields.iter().map(|f| (f.field, f.to.as_str())).collect();
                self.update_profile(person, &changes, canary).await
            }
            Action::AssignWorkspace { person, workspace } => {
                self.assign_workspace(person, workspace).await
            }
            Action::CreateUsergroup {
                workspace,
                handle,
                name,
                description,
                channels,
                ..
            } => {
                self.create_usergroup(workspace, handle, name, description, channels)
                    .await
            }
            Action::UpdateUsergroup {
                workspace,
                usergroup_id,
                fields,
                ..
            } => {
                let changes: Vec<(&str, &str)> =
                    fields.iter().map(|f| (f.field, f.to.as_str())).collect();
                self.update_usergroup(workspace, usergroup_id, &changes)
                    .await
            }
            Action::EnableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => self.set_enabled(workspace, usergroup_id, true).await,
            Action::DisableUsergroup {
                workspace,
                usergroup_id,
                ..
            } => self.set_enabled(workspace, usergroup_id, false).await,
            Action::SetUsergroupMembers {
                workspace,
                usergroup_id,
                handle,
                members,
                ..
            } => {
                self.set_members(workspace, usergroup_id, handle, members, canary)
                    .await
            }
            Action::CreateChannel {
                workspace,
                name,
                private,
                ..
            } => self.create_channel(workspace, name, *private).await,
            Action::InviteToChannel {
                workspace,
                channel,
                channel_id,
                people,
                ..
            } => {
                let people: Vec<&Person> = people.iter().map(|a| &a.person).collect();
                self.invite(workspace, channel, channel_id, &people, canary)
                    .await
            }
            Action::KickFromChannel {
                channel_id,
                removal,
                ..
            } => self.kick(channel_id, &removal.person).await,
            Action::ResetSessions { person } => self.reset_sessions(person).await,
            Action::SetRole {
                person,
                workspace,
                role,
            } => self.set_role(person, workspace, *role).await,
        }
    }

    /// Runs `write` and, when its outcome is unclear, `read_back` to decide: done, or try
    /// again (at most [`DECISIONS`] times in all). Never retries a refusal.
    async fn decide<W, R, WF, RF>(&self, write: W, read_back: R) -> Ran
    where
        W: Fn() -> WF,
        WF: std::future::Future<Output = Result<Vec<String>, WriteError>>,
        R: Fn() -> RF,
        RF: std::future::Future<Output = Result<bool, SlackError>>,
    {
        let mut ran = Ran::new(Outcome::Failed(String::new()));
        for attempt in 0..DECISIONS {
            ran.writes += 1;
            match write().await {
                Ok(ids) => {
                    ran.outcome = Outcome::Done;
                    ran.slack_ids = ids;
                    return ran;
                }
                Err(WriteError::Refused(message)) => {
                    ran.failed += 1;
                    ran.outcome = Outcome::Failed(message);
                    return ran;
                }
                Err(WriteError::Unclear(message)) => {
                    ran.failed += 1;
                    tracing::warn!(%message, "a write's outcome is unclear; reading it back");
                    match read_back().await {
                        Ok(true) => {
                            ran.outcome = if attempt == 0 {
                                Outcome::AlreadyDone
                            } else {
                                Outcome::Done
                            };
                            return ran;
                        }
                        Ok(false) => {
                            ran.outcome = Outcome::Failed(message);
                            self.context.client.backoff(attempt as u32 + 1).await;
                        }
                        Err(error) => {
                            ran.outcome = Outcome::Failed(format!(
                                "{message}; the read-back failed too ({error})"
                            ));
                            return ran;
                        }
                    }
                }
            }
        }
        ran
    }

    async fn create_user(&self, email: &str, profile: &crate::plan::action::NewProfile) -> Ran {
        let client = self.context.client;
        let created: Mutex<Option<LiveUser>> = Mutex::new(None);
        let write = || async {
            match writer::create_user(client, email, profile).await {
                Ok(user) => {
                    let id = user.id.clone();
                    *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
                    Ok(vec![id])
                }
                Err(SlackError::Api { error, .. }) if error == "email_taken" => {
                    // Taken by an account we did not see when planning: look it up.
                    match writer::find_user(client, email).await {
                        Ok(Some(user)) if user.active => {
                            let id = user.id.clone();
                            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
                            Ok(vec![id])
                        }
                        _ => Err(WriteError::Refused(format!(
                            "{email}: email_taken by a deactivated account; reactivate it instead"
                        ))),
                    }
                }
                Err(error) => Err(classify(error)),
            }
        };
        let read_back = || async {
            let found = writer::find_user(client, email).await?;
            let exists = found.as_ref().is_some_and(|u| u.active);
            if exists {
                *created.lock().unwrap_or_else(|p| p.into_inner()) = found;
            }
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        let user = created.into_inner().unwrap_or_else(|p| p.into_inner());
        match (&ran.outcome, user) {
            (outcome, Some(user)) if outcome.succeeded() => {
                if !user.active {
                    ran.surprise = Some(Halt {
                        reason: format!("{email} was created inactive; nobody asked for that"),
                        affected: vec![email.to_string()],
                    });
                }
                ran.slack_ids = vec![user.id.clone()];
                self.ids().users.insert(email.to_string(), user.id);
            }
            (Outcome::Failed(why), _) => {
                self.ids().failed_people.insert(
                    email.to_string(),
                    format!("its account was not created ({why})"),
                );
            }
            _ => {}
        }
        ran
    }

    /// Reactivation (`active: true`) or deactivation (`active: false`): the reply must
    /// show it, and a read-back (always for deactivations, for canaries otherwise) too.
    async fn set_active(&self, person: &Person, active: bool, read_back_always: bool) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let shown: Mutex<Option<bool>> = Mutex::new(None);
        let write = || async {
            let user = writer::patch_user(client, &id, vec![writer::set_active(active)])
                .await
                .map_err(classify)?;
            *shown.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.active);
            Ok(vec![id.clone()])
        };
        let read_back = || async { Ok(writer::read_user(client, &id).await?.active == active) };
        let mut ran = self.decide(write, read_back).await;
        ran.slack_ids = vec![id.clone()];
        if !ran.outcome.succeeded() {
            if !active {
                let why = format!("its deactivation failed ({})", ran.outcome.detail());
                self.ids().failed_people.insert(person.email.clone(), why);
            }
            return ran;
        }
        let replied = shown.into_inner().unwrap_or_else(|p| p.into_inner());
        let verified = if read_back_always {
            match writer::read_user(client, &id).await {
                Ok(user) => Some(user.active),
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the read-back failed: {error}"));
                    return ran;
                }
            }
        } else {
            replied
        };
        if replied.is_some_and(|a| a != active) || verified.is_some_and(|a| a != active) {
            let word = if active { "active" } else { "inactive" };
            ran.outcome = Outcome::Failed(format!("Slack does not show {} {word}", person.email));
            if active {
                ran.surprise = Some(Halt {
                    reason: format!(
                        "{} is inactive after a reactivation; nobody asked for that",
                        person.email
                    ),
                    affected: vec![person.email.clone()],
                });
            }
        }
        ran
    }

    async fn update_profile(&self, person: &Person, changes: &[(&str, &str)], canary: bool) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        // The manager is named by email in the plan and by Slack id on the wire.
        let mut operations = Vec::new();
        for (field, value) in changes {
            let value = if *field == "manager" {
                match self.ids().users.get(*value) {
                    Some(manager) => manager.clone(),
                    None => {
                        return Ran::new(Outcome::Skipped(format!(
                            "the manager {value} has no account"
                        )));
                    }
                }
            } else {
                value.to_string()
            };
            if let Some(operation) = writer::profile_field(field, &value) {
                operations.push(operation);
            }
        }
        let client = self.context.client;
        let replied: Mutex<Option<LiveUser>> = Mutex::new(None);
        let write = || async {
            let user = writer::patch_user(client, &id, operations.clone())
                .await
                .map_err(classify)?;
            *replied.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
            Ok(vec![id.clone()])
        };
        let read_back = || async {
            let user = writer::read_user(client, &id).await?;
            let holds = profile_holds(&user, changes, &self.ids().users);
            *replied.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
            Ok(holds)
        };
        let mut ran = self.decide(write, read_back).await;
        ran.slack_ids = vec![id.clone()];
        if !ran.outcome.succeeded() {
            return ran;
        }
        let mut shown = replied.into_inner().unwrap_or_else(|p| p.into_inner());
        if canary {
            match writer::read_user(client, &id).await {
                Ok(user) => shown = Some(user),
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the canary read-back failed: {error}"));
                    return ran;
                }
            }
        }
        self.verify_update(person, &id, shown.as_ref(), changes, &mut ran);
        ran
    }

    /// A profile update must leave the account active and show the new values.
    fn verify_update(
        &self,
        person: &Person,
        id: &str,
        shown: Option<&LiveUser>,
        changes: &[(&str, &str)],
        ran: &mut Ran,
    ) {
        let Some(user) = shown else { return };
        if !user.active {
            ran.outcome = Outcome::Failed(format!(
                "{} ({id}) is inactive after a profile update",
                person.email
            ));
            ran.surprise = Some(Halt {
                reason: format!(
                    "{} ({id}) was deactivated by a profile update nobody meant to deactivate them with (Slack's April 2024 SCIM regression behaved so)",
                    person.email
                ),
                affected: vec![person.email.clone()],
            });
        } else if !profile_holds(user, changes, &self.ids().users) {
            ran.outcome = Outcome::Failed(format!(
                "Slack does not show the new profile of {}",
                person.email
            ));
        }
    }

    async fn assign_workspace(&self, person: &Person, workspace: &str) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::assign_workspace(client, &id, workspace)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let read_back = || async { writer::in_workspace(client, &id, workspace).await };
        self.decide(write, read_back).await
    }

    async fn create_usergroup(
        &self,
        workspace: &str,
        handle: &str,
        name: &str,
        description: &str,
        channels: &[String],
    ) -> Ran {
        let key = (workspace.to_string(), handle.to_string());
        // Default channels that exist (live or created earlier in this run) by id.
        let channel_ids: Vec<String> = {
            let ids = self.ids();
            channels
                .iter()
                .filter_map(|c| {
                    ids.channels
                        .get(&(workspace.to_string(), c.clone()))
                        .cloned()
                })
                .collect()
        };
        let client = self.context.client;
        let created: Mutex<Option<String>> = Mutex::new(None);
        let write = || async {
            let group = writer::create_usergroup(
                client,
                workspace,
                handle,
                name,
                description,
                &channel_ids,
            )
            .await
            .map_err(classify)?;
            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(group.id.clone());
            Ok(vec![group.id])
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            let found = groups.into_iter().find(|g| g.handle == handle);
            let exists = found.is_some();
            *created.lock().unwrap_or_else(|p| p.into_inner()) = found.map(|g| g.id);
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        match created.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(id) if ran.outcome.succeeded() => {
                ran.slack_ids = vec![id.clone()];
                self.ids().usergroups.insert(key, id);
            }
            _ => {
                let why = format!("it was not created ({})", ran.outcome.detail());
                self.ids().failed_usergroups.insert(key, why);
            }
        }
        ran
    }

    async fn update_usergroup(&self, workspace: &str, id: &str, changes: &[(&str, &str)]) -> Ran {
        let client = self.context.client;
        let write = || async {
            let group = writer::update_usergroup(client, workspace, id, changes)
                .await
                .map_err(classify)?;
            Ok(vec![group.id])
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| {
                g.id == id
                    && changes.iter().all(|(field, to)| match *field {
                        "name" => g.name == *to,
                        "description" => g.description == *to,
                        _ => true,
                    })
            }))
        };
        self.decide(write, read_back).await
    }

    async fn set_enabled(&self, workspace: &str, id: &str, enabled: bool) -> Ran {
        let client = self.context.client;
        let write = || async {
            match writer::set_usergroup_enabled(client, workspace, id, enabled).await {
                Ok(group) => Ok(vec![group.id]),
                Err(SlackError::Api { error, .. })
                    if error == "already_enabled" || error == "already_disabled" =>
                {
                    Ok(vec![id.to_string()])
                }
                Err(error) => Err(classify(error)),
            }
        };
        let read_back = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| g.id == id && g.disabled != enabled))
        };
        self.decide(write, read_back).await
    }

    async fn set_members(
        &self,
        workspace: &str,
        usergroup_id: &SlackId,
        handle: &str,
        members: &[Person],
        canary: bool,
    ) -> Ran {
        let key = (workspace.to_string(), handle.to_string());
        let (group, users, skipped) = {
            let ids = self.ids();
            let group = match usergroup_id {
                SlackId::Live(id) => Some(id.clone()),
                SlackId::New => ids.usergroups.get(&key).cloned(),
            };
            let mut users = Vec::new();
            let mut skipped = Vec::new();
            for person in members {
                match ids.user(person) {
                    Ok(id) => users.push(id),
                    Err(_) => skipped.push(person.email.clone()),
                }
            }
            if group.is_none()
                && let Some(why) = ids.failed_usergroups.get(&key)
            {
                return Ran::new(Outcome::Skipped(format!("@{handle}: {why}")));
            }
            (group, users, skipped)
        };
        let Some(group) = group else {
            return Ran::new(Outcome::Skipped(format!("@{handle} does not exist")));
        };
        if users.is_empty() {
            return Ran::new(Outcome::Skipped(format!(
                "@{handle}: none of its members has an account ({})",
                skipped.join(", ")
            )));
        }
        let mut wanted = users.clone();
        wanted.sort();
        let client = self.context.client;
        let holds = || async {
            let groups = writer::list_usergroups(client, workspace).await?;
            Ok(groups.iter().any(|g| g.id == group && g.users == wanted))
        };
        let write = || async {
            writer::set_usergroup_members(client, workspace, &group, &users)
                .await
                .map_err(classify)?;
            Ok(vec![group.clone()])
        };
        let mut ran = self.decide(write, holds).await;
        if ran.outcome.succeeded() && canary {
            match holds().await {
                Ok(true) => {}
                Ok(false) => {
                    ran.outcome = Outcome::Failed(format!(
                        "the read-back of @{handle} does not show the members that were set"
                    ))
                }
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the canary read-back failed: {error}"))
                }
            }
        }
        if ran.outcome.succeeded() && !skipped.is_empty() {
            ran.outcome =
                Outcome::Failed(format!("set without {} (no account)", skipped.join(", ")));
        }
        ran
    }

    async fn create_channel(&self, workspace: &str, name: &str, private: bool) -> Ran {
        let key = (workspace.to_string(), name.to_string());
        let client = self.context.client;
        let created: Mutex<Option<String>> = Mutex::new(None);
        let write = || async {
            let id = match writer::create_channel(client, workspace, name, private).await {
                Ok(id) => id,
                Err(SlackError::Api { error, .. }) if error == "name_taken" => {
                    match writer::find_channel(client, workspace, name).await {
                        Ok(Some(id)) => id,
                        _ => {
                            return Err(WriteError::Refused(format!(
                                "#{name}: name_taken by a channel the bot cannot see"
                            )));
                        }
                    }
                }
                Err(error) => return Err(classify(error)),
            };
            *created.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            Ok(vec![id])
        };
        let read_back = || async {
            let found = writer::find_channel(client, workspace, name).await?;
            let exists = found.is_some();
            *created.lock().unwrap_or_else(|p| p.into_inner()) = found;
            Ok(exists)
        };
        let mut ran = self.decide(write, read_back).await;
        match created.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(id) if ran.outcome.succeeded() => {
                ran.slack_ids = vec![id.clone()];
                self.ids().channels.insert(key, id);
            }
            _ => {
                let why = format!("it was not created ({})", ran.outcome.detail());
                self.ids().failed_channels.insert(key, why);
            }
        }
        ran
    }

    async fn invite(
        &self,
        workspace: &str,
        channel: &str,
        channel_id: &SlackId,
        people: &[&Person],
        canary: bool,
    ) -> Ran {
        let key = (workspace.to_string(), channel.to_string());
        let (id, users, skipped) = {
            let ids = self.ids();
            let id = match channel_id {
                SlackId::Live(id) => Some(id.clone()),
                SlackId::New => ids.channels.get(&key).cloned(),
            };
            if id.is_none()
                && let Some(why) = ids.failed_channels.get(&key)
            {
                return Ran::new(Outcome::Skipped(format!("#{channel}: {why}")));
            }
            let mut users = Vec::new();
            let mut skipped = Vec::new();
            for person in people {
                match ids.user(person) {
                    Ok(id) => users.push(id),
                    Err(_) => skipped.push(person.email.clone()),
                }
            }
            (id, users, skipped)
        };
        let Some(id) = id else {
            return Ran::new(Outcome::Skipped(format!(
                "#{channel} does not exist in {workspace}"
            )));
        };
        if users.is_empty() {
            return Ran::new(Outcome::Skipped(format!(
                "#{channel}: nobody to invite has an account ({})",
                skipped.join(", ")
            )));
        }
        let client = self.context.client;
        let missing = Mutex::new(users.clone());
        let all_in = || async {
            let members = writer::channel_members(client, &id).await?;
            let left: Vec<String> = users
                .iter()
                .filter(|u| !members.contains(u))
                .cloned()
                .collect();
            let done = left.is_empty();
            *missing.lock().unwrap_or_else(|p| p.into_inner()) = left;
            Ok(done)
        };
        let write = || async {
            // After an unclear invite, only those still missing are invited again.
            let batch = missing.lock().unwrap_or_else(|p| p.into_inner()).clone();
            writer::invite(client, &id, &batch)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let mut ran = self.decide(write, all_in).await;
        if ran.outcome.succeeded() && canary {
            match all_in().await {
                Ok(true) => {}
                Ok(false) => {
                    ran.outcome = Outcome::Failed(format!(
                        "the read-back of #{channel} does not show everyone invited"
                    ))
                }
                Err(error) => {
                    ran.outcome = Outcome::Failed(format!("the canary read-back failed: {error}"))
                }
            }
        }
        if ran.outcome.succeeded() && !skipped.is_empty() {
            ran.outcome = Outcome::Failed(format!(
                "invited all but {} (no account)",
                skipped.join(", ")
            ));
        }
        ran
    }

    async fn kick(&self, channel: &str, person: &Person) -> Ran {
        let user = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::kick(client, channel, &user)
                .await
                .map_err(classify)?;
            Ok(vec![channel.to_string(), user.clone()])
        };
        let read_back = || async {
            Ok(!writer::channel_members(client, channel)
                .await?
                .contains(&user))
        };
        self.decide(write, read_back).await
    }

    async fn set_role(&self, person: &Person, workspace: &str, role: Role) -> Ran {
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::set_role(client, workspace, &id, role)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        let read_back = || async { writer::has_role(client, workspace, &id, role).await };
        self.decide(write, read_back).await
    }

    /// Signing out cannot be read back (no API lists a person's sessions on every
    /// plan); a reset is harmless to repeat, so an unclear one is sent once more.
    async fn reset_sessions(&self, person: &Person) -> Ran {
        if let Some(why) = self.ids().failed_people.get(&person.email) {
            return Ran::new(Outcome::Skipped(format!("{}: {why}", person.email)));
        }
        let id = match self.ids().user(person) {
            Ok(id) => id,
            Err(outcome) => return Ran::new(outcome),
        };
        let client = self.context.client;
        let write = || async {
            writer::reset_sessions(client, &id)
                .await
                .map_err(classify)?;
            Ok(vec![id.clone()])
        };
        self.decide(write, || async { Ok(false) }).await
    }
}

/// Whether an account shows every changed profile field (the manager by Slack id).
fn profile_holds(
    user: &LiveUser,
    changes: &[(&str, &str)],
    users: &HashMap<String, String>,
) -> bool {
    changes.iter().all(|(field, to)| match *field {
        "given_name" => user.given_name == *to,
        "family_name" => user.family_name == *to,
        "title" => user.title == *to,
        "department" => user.department == *to,
        "manager" => user.manager.as_deref() == users.get(*to).map(String::as_str),
        _ => true,
    })
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
