//! `slack-gitops controller`: keeps a clone of the config repository, applies every new
//! commit of the protected branch through exactly the code path of `apply`, re-plans on
//! `drift.every` (report or correct, as policy says), and serves `/livez`, `/readyz`,
//! `/status`, `/metrics` and the webhooks that make it sync at once.
//!
//! One loop does every sync, so there is one at a time; triggers that arrive during a
//! sync (webhooks, ticks) are coalesced into the next one by a `Notify`. SIGTERM sets the
//! stop flag the executor checks between actions: the actions in flight finish and are
//! journalled, the lock is released, and the loop ends.

pub mod audit;
pub mod canary;
pub mod git;
pub mod http;
pub mod inbox;
pub mod leader;
pub mod listener;
pub mod metrics;
pub mod mirror;
pub mod notify;
pub mod plans;
pub mod socket;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::apply::{ApplyOptions, ApplyOutcome};
use crate::pipeline::{self, Baseline, ConnectOptions};
use crate::store::Store;

/// A lookup of secrets and tokens by variable name.
pub type Environment = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How the controller runs.
pub struct Options {
    /// The repository to clone: a URL or a local path.
    pub repo: String,
    /// The protected branch.
    pub branch: String,
    /// The config directory inside the repository.
    pub config_path: PathBuf,
    /// Where the controller keeps its clone.
    pub workdir: PathBuf,
    /// How often to fetch without a webhook (real time).
    pub poll: Duration,
    pub connect: ConnectOptions,
    /// The secret of `POST /hooks/git` (GitHub's `X-Hub-Signature-256`).
    pub git_secret: Option<String>,
    /// The secret of `POST /hooks/identity`.
    pub identity_secret: Option<String>,
    /// The Slack app's signing secret, for `POST /hooks/slack` (Slack's Events API).
    pub slack_signing_secret: Option<String>,
    /// The Slack app's app-level token (`xapp-`, `connections:write`): events over
    /// Socket Mode.
    pub slack_app_token: Option<String>,
    /// An org owner's token with `auditlogs:read` (Grid): gaps in the event stream are
    /// filled from the Audit Logs.
    pub slack_audit_token: Option<String>,
    /// The token `POST /plan` requires (`SLACK_GITOPS_CONTROLLER_TOKEN`); without it,
    /// pull requests' plans are not served.
    pub plan_token: Option<String>,
    /// How many mirrored objects the refresher re-reads a minute.
    pub mirror_refresh_per_minute: f64,
    /// Secrets and tokens come from here (the environment, injected for tests).
    pub environment: Environment,
    /// How to authenticate to the repository.
    pub git: git::Access,
    /// How replicas sharing the store elect the one that syncs.
    pub election: leader::Election,
}

/// What set off a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Start,
    Poll,
    GitWebhook,
    IdentityEvent,
    Drift,
    /// Slack's events changed something the mirror holds: drift is checked from the
    /// mirror alone (and reported, never corrected: that waits for the drift tick).
    SlackEvent,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Poll => "poll",
            Trigger::GitWebhook => "git-webhook",
            Trigger::IdentityEvent => "identity-event",
            Trigger::Drift => "drift",
            Trigger::SlackEvent => "slack-event",
        }
    }
}

/// How a sync ended, as `/status`, the metrics and the digests name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncOutcome {
    Converged,
    Incomplete,
    Halted,
    Refused,
    Failed,
    DryRun,
    DriftReported,
    NoChange,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Converged => "converged",
            SyncOutcome::Incomplete => "incomplete",
            SyncOutcome::Halted => "halted",
            SyncOutcome::Refused => "refused",
            SyncOutcome::Failed => "failed",
            SyncOutcome::DryRun => "dry-run",
            SyncOutcome::DriftReported => "drift-reported",
            SyncOutcome::NoChange => "no-change",
        }
    }

    /// An apply's outcome, as a sync's.
    fn of(outcome: &ApplyOutcome) -> SyncOutcome {
        match outcome {
            ApplyOutcome::Converged => SyncOutcome::Converged,
            ApplyOutcome::Incomplete => SyncOutcome::Incomplete,
            ApplyOutcome::Halted { .. } => SyncOutcome::Halted,
            ApplyOutcome::Refused { .. } => SyncOutcome::Refused,
            ApplyOutcome::DryRun => SyncOutcome::DryRun,
        }
    }
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The first clone failed, or an existing clone could not be opened.
    #[error(transparent)]
    Git(#[from] git::GitError),
    /// The HTTP server (webhooks, probes) ended on its own.
    #[error("the HTTP server stopped: {0}")]
    Server(String),
    /// A blocking task could not finish.
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("{0}")]
    Setup(String),
}

/// Why a commit could not be loaded: refused by the checkout (not merged, a hostile
/// tree), or the identity source or Slack could not be connected to.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Checkout(#[from] crate::gitops::commit::GitopsError),
    #[error(transparent)]
    Connect(#[from] pipeline::PipelineError),
}

impl LoadError {
    fn outcome(&self) -> SyncOutcome {
        match self {
            LoadError::Checkout(_) => SyncOutcome::Refused,
            LoadError::Connect(_) => SyncOutcome::Failed,
        }
    }
}

/// One sync, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRecord {
    pub trigger: Trigger,
    pub commit: Option<String>,
    pub outcome: SyncOutcome,
    pub detail: String,
    pub at: String,
    pub actions: usize,
}

/// What `/status` answers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The newest commit of the protected branch seen.
    pub seen_commit: Option<String>,
    /// The last commit that applied (converged or not, never refused): in force.
    pub commit_in_force: Option<String>,
    pub last_syncs: Vec<SyncRecord>,
    /// Drift found by the last drift tick, by kind.
    pub drift: std::collections::BTreeMap<String, u64>,
    pub ready: bool,
    pub ready_detail: String,
    /// Readiness was withdrawn only because the remote is away, so the remote answering
    /// again gives it back.
    #[serde(skip)]
    pub unready_for_remote: bool,
    /// When the next drift tick is due (UTC), if the commit in force has a drift policy.
    pub next_drift_tick: Option<String>,
    /// Who holds the org locks now (a sync in progress, this controller's or another's).
    pub locks: Vec<LockStatus>,
    /// This replica, whether it leads, and who does.
    pub leadership: leader::LeaderStatus,
    /// Whether the config repository's remote answers.
    pub remote: RemoteStatus,
    /// The live Slack mirror and its event stream.
    pub mirror: mirror::MirrorStatus,
}

/// The config repository's remote, as the last fetches found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteStatus {
    /// Fetches that failed in a row; 0 while the remote answers.
    pub consecutive_failures: u64,
    /// When the current outage began (UTC), if the remote is away.
    pub unreachable_since: Option<String>,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<String>,
}

/// An org lock held, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    pub org: String,
    pub id: String,
    pub holder: String,
    pub since: String,
}

/// State shared between the loop and the HTTP server.
pub struct Shared {
    pub status: std::sync::Mutex<Status>,
    pub metrics: metrics::Metrics,
    /// Wakes the loop for a sync now; several wakes before it runs count as one.
    pub wake: tokio::sync::Notify,
    /// Why it was woken: a webhook's trigger.
    pub woken_by: std::sync::Mutex<Option<Trigger>>,
    pub stop: AtomicBool,
    /// Wakes the election loop to stop.
    pub stopping: tokio::sync::Notify,
    /// Stops the sync in flight between actions: SIGTERM, or this replica stopped leading.
    pub halt: AtomicBool,
    /// Whether this replica leads.
    pub leader: leader::Leadership,
    pub election: leader::Election,
    /// Hands webhooks to the leader when this replica does not lead.
    pub forwarder: reqwest::Client,
    /// Asked before every Slack write (set once the shared state exists).
    pub gate: std::sync::OnceLock<crate::slack::client::WriteGate>,
    pub git_secret: Option<String>,
    pub identity_secret: Option<String>,
    pub slack_signing_secret: Option<String>,
    pub slack_app_token: Option<crate::slack::client::Token>,
    /// The Socket Mode connection, when there is an app token.
    pub socket: socket::SocketCounters,
    pub slack_audit_token: Option<crate::slack::client::Token>,
    /// Gaps filled from the Audit Logs, when there is an audit token.
    pub gap_fill: audit::GapFillCounters,
    pub plan_token: Option<String>,
    /// What a pull request's plan needs from the commit in force (set when one loads).
    pub plan_with: std::sync::Mutex<Option<plans::PlanWith>>,
    /// One pull request's plan at a time.
    pub plan_lock: tokio::sync::Mutex<()>,
    /// Emulated seconds per real second (1 against Slack).
    pub time_scale: f64,
    /// Slack events received and drained into the mirror.
    pub events: mirror::EventCounters,
    /// Wakes the leader's event drain.
    pub mirror_wake: tokio::sync::Notify,
    /// What the mirror's refresher reads with (set when a commit loads).
    pub refresh_with: std::sync::Mutex<Option<mirror::RefreshWith>>,
    /// A sync is reading or writing: the refresher steps aside.
    pub syncing: AtomicBool,
    /// Drift checks woken by Slack events that ran to their end (not skipped because
    /// the mirror could not serve them): the drain asks again until one has.
    pub event_checks: std::sync::atomic::AtomicU64,

    /// People named by identity events, deactivated first at the next sync.
    pub inbox: std::sync::Mutex<inbox::Inbox>,
    /// The drift last posted, so the same drift is not posted every tick.
    pub posted_drift: std::sync::Mutex<Option<std::collections::BTreeMap<String, u64>>>,
    /// The state store, for `/status`'s locks.
    pub store: Arc<Store>,
    /// Webhook bodies being read at once (see `http::MAX_HOOK_BODIES`).
    pub hook_bodies: tokio::sync::Semaphore,
    /// What a halted sync's undo points `restore` at: the clone, the store, Slack.
    pub restore_with: Vec<String>,
}

impl Shared {
    /// Whether Slack's events reach this controller at all: over HTTP
    /// (`SLACK_SIGNING_SECRET`) or Socket Mode (`SLACK_APP_TOKEN`).
    pub fn events_configured(&self) -> bool {
        self.slack_signing_secret.is_some() || self.slack_app_token.is_some()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inbox(&self) -> std::sync::MutexGuard<'_, inbox::Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `/status` answers: the loop's view, the locks held now and the leader.
    pub fn snapshot(&self) -> Status {
        let mut status = self.status().clone();
        status.leadership = self.leadership();
        match self.store.locks() {
            Ok(locks) => {
                status.locks = locks
                    .into_iter()
                    .map(|(org, held)| LockStatus {
                        org,
                        id: held.id,
                        holder: held.holder,
                        since: crate::model::iso_time(held.since),
                    })
                    .collect()
            }
            Err(error) => tracing::warn!(%error, "cannot read the locks for /status"),
        }
        match mirror::mirror_status(self, crate::clock::now_millis()) {
            Ok(mirror) => status.mirror = mirror,
            Err(error) => tracing::warn!(%error, "cannot read the mirror for /status"),
        }
        status
    }

    /// This replica, and who leads as the store says.
    pub fn leadership(&self) -> leader::LeaderStatus {
        let mut view = leader::LeaderStatus {
            replica: self.election.replica.clone(),
            leading: self.leader.leading().is_some(),
            ..Default::default()
        };
        match self.store.lease_holder(&self.election.lease) {
            Ok(Some(holder)) if !holder.expired => {
                view.leader = Some(holder.holder);
                view.generation = Some(holder.generation);
                view.expires = Some(crate::model::iso_time(holder.expires_at));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the lease for /status"),
        }
        view
    }

    /// Asks the loop for a sync as soon as it can.
    pub fn wake(&self, trigger: Trigger) {
        let mut woken = self.woken_by.lock().unwrap_or_else(|p| p.into_inner());
        // An identity event outranks a git push: both sync, the name says why. A Slack
        // event ranks last: any sync plans what it would have checked.
        if woken.is_none_or(|w| w == Trigger::SlackEvent) || trigger == Trigger::IdentityEvent {
            *woken = Some(trigger);
        }
        self.wake.notify_one();
    }

    fn record(&self, record: SyncRecord) {
        self.record_applied(record, None);
    }

    /// Records a sync and, when it applied a commit, puts that commit in force, in one
    /// step: `/status` never shows a commit in force without the sync that applied it.
    fn record_applied(&self, record: SyncRecord, in_force: Option<&str>) {
        tracing::info!(
            trigger = record.trigger.as_str(),
            outcome = record.outcome.as_str(),
            commit = record.commit.as_deref().unwrap_or(""),
            detail = %record.detail,
            "sync"
        );
        self.metrics.sync(record.trigger, record.outcome);
        let mut status = self.status();
        if let Some(commit) = in_force {
            status.commit_in_force = Some(commit.to_string());
        }
        status.last_syncs.insert(0, record);
        status.last_syncs.truncate(20);
    }
}

use crate::clock::now_millis;

/// Runs the controller until `shutdown` resolves: the sync loop and the HTTP server.
pub async fn run(
    options: Options,
    store: Store,
    listeners: http::Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let store = Arc::new(store);
    let shared = Arc::new(Shared {
        status: Default::default(),
        metrics: metrics::Metrics::default(),
        wake: tokio::sync::Notify::new(),
        woken_by: Default::default(),
        stop: AtomicBool::new(false),
        stopping: tokio::sync::Notify::new(),
        halt: AtomicBool::new(false),
        leader: leader::Leadership::default(),
        election: options.election.clone(),
        gate: std::sync::OnceLock::new(),
        forwarder: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ControllerError::Setup(e.to_string()))?,
        git_secret: options.git_secret.clone(),
        identity_secret: options.identity_secret.clone(),
        slack_signing_secret: options.slack_signing_secret.clone(),
        slack_app_token: options
            .slack_app_token
            .clone()
            .map(crate::slack::client::Token::new),
        socket: Default::default(),
        slack_audit_token: options
            .slack_audit_token
            .clone()
            .map(crate::slack::client::Token::new),
        gap_fill: Default::default(),
        plan_token: options.plan_token.clone(),
        plan_with: Default::default(),
        plan_lock: tokio::sync::Mutex::new(()),
        time_scale: options.connect.time_scale,
        events: Default::default(),
        mirror_wake: tokio::sync::Notify::new(),
        refresh_with: Default::default(),
        syncing: AtomicBool::new(false),
        event_checks: std::sync::atomic::AtomicU64::new(0),

        posted_drift: Default::default(),
        inbox: Default::default(),
        store: store.clone(),
        hook_bodies: tokio::sync::Semaphore::new(http::MAX_HOOK_BODIES),
        restore_with: restore_with(&options, &store),
    });
    let _ = shared.gate.set(leader::gate(Arc::downgrade(&shared)));
    let election = tokio::spawn(leader::elect(shared.clone(), options.election.clone()));
    let drain = tokio::spawn(mirror::drain_loop(shared.clone()));
    let canary = tokio::spawn(canary::canary_loop(shared.clone()));
    let socket = tokio::spawn(socket::socket_loop(shared.clone()));
    let gap_fill = tokio::spawn(audit::fill_loop(shared.clone()));
    let refresher = tokio::spawn(mirror::refresh_loop(
        shared.clone(),
        options.mirror_refresh_per_minute,
    ));
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listeners, shared.clone(), async move {
        let _ = server_stopped.await;
    }));
    // Stops the loop on SIGTERM, or when the HTTP server ends on its own: a controller
    // that cannot receive webhooks or answer its probes must not look alive. Either way
    // the sync in flight finishes its actions first.
    let server_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let server = {
        let (shared, failure) = (shared.clone(), server_failure.clone());
        tokio::spawn(async move {
            let why = match server.await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            tracing::error!(error = %why, "the HTTP server stopped; stopping");
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            stop_syncing(&shared);
        })
    };
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("stopping: the actions in flight finish first");
            stop_syncing(&shared);
        })
    };
    let result = sync_loop(&options, &store, &shared).await.and_then(|()| {
        match server_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(why) => Err(ControllerError::Server(why)),
            None => Ok(()),
        }
    });
    watcher.abort();
    // The lease is let go last, after the sync in flight ended.
    shared.stop.store(true, Ordering::SeqCst);
    shared.stopping.notify_one();
    let _ = election.await;
    shared.mirror_wake.notify_one();
    let _ = drain.await;
    refresher.abort();
    canary.abort();
    socket.abort();
    gap_fill.abort();
    let _ = stop_server.send(());
    let _ = server.await;
    result
}

/// Asks the loop to stop: the actions in flight finish and are journalled first.
fn stop_syncing(shared: &Shared) {
    shared.stop.store(true, Ordering::SeqCst);
    shared.halt.store(true, Ordering::SeqCst);
    shared.wake.notify_one();
    shared.leader.gained.notify_waiters();
}

/// The loop: fetch, apply new commits, re-plan on the drift schedule, until stopped.
async fn sync_loop(
    options: &Options,
    store: &Store,
    shared: &Shared,
) -> Result<(), ControllerError> {
    let workdir = options.workdir.clone();
    let (repo, branch) = (options.repo.clone(), options.branch.clone());
    let access = options.git.clone();
    tokio::task::spawn_blocking(move || git::prepare(&repo, &workdir, &branch, &access))
        .await
        .map_err(|e| ControllerError::Task(e.to_string()))??;
    let mut trigger = Trigger::Start;
    let mut next_drift: Option<tokio::time::Instant> = None;
    // The drift interval of the last commit loaded, kept while a commit cannot be.
    let mut drift_every: Option<Duration> = None;
    let mut term = None;
    loop {
        let Some(generation) = shared
            .leader
            .wait(|| shared.stop.load(Ordering::SeqCst))
            .await
        else {
            return Ok(());
        };
        if term != Some(generation) {
            // A new term: what another leader did meanwhile is unknown, so the tip is
            // applied as new and the drift schedule starts again.
            term = Some(generation);
            take_office(shared, generation);
            trigger = Trigger::Start;
            next_drift = None;
        }
        shared.syncing.store(true, Ordering::SeqCst);
        let every = sync_once(options, store, shared, trigger).await;
        shared.syncing.store(false, Ordering::SeqCst);
        if let Some(every) = every {
            drift_every = Some(every);
        }
        // A drift tick always schedules the next, even when this one could not load its
        // commit or reach the remote: a tick left in the past would fire again at once.
        if next_drift.is_none() || trigger == Trigger::Drift {
            next_drift = drift_every.map(|every| tokio::time::Instant::now() + every);
        }
        let poll = match shared.status().remote.consecutive_failures {
            0 => options.poll,
            failures => backoff(options.poll, failures),
        };
        // Without a drift policy there is no drift tick: a year is as good as never.
        let drift_at = next_drift
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(365 * 86_400));
        shared.status().next_drift_tick = next_drift.map(|at| {
            let wait = at.saturating_duration_since(tokio::time::Instant::now());
            crate::model::iso_time(now_millis() + wait.as_millis() as i64)
        });
        trigger = tokio::select! {
            _ = shared.wake.notified() => shared
                .woken_by
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or(Trigger::Poll),
            _ = tokio::time::sleep(poll) => Trigger::Poll,
            _ = tokio::time::sleep_until(drift_at) => Trigger::Drift,
        };
    }
}

/// How long to wait before the next fetch after `failures` failed in a row: the poll
/// interval doubled per failure, at most five minutes (or the poll interval, if longer),
/// with jitter so that replicas and restarts do not fetch in step.
fn backoff(poll: Duration, failures: u64) -> Duration {
    let ceiling = poll.max(Duration::from_secs(300));
    let doubled = poll.saturating_mul(1 << failures.min(16) as u32);
    let wait = doubled.min(ceiling);
    // Uniform in [wait / 2, wait]: the std hasher's random keys are the randomness.
    let random = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), failures);
    wait.mul_f64(0.5 + (random % 1_000) as f64 / 2_000.0)
}

/// This replica starts a term as leader: it forgets the commits it saw in an earlier
/// term, and its syncs may run again.
fn take_office(shared: &Shared, generation: i64) {
    tracing::info!(generation, "syncing as the leader");
    shared.halt.store(false, Ordering::SeqCst);
    let mut status = shared.status();
    status.seen_commit = None;
    status.commit_in_force = None;
}

/// One sync: fetch; a commit not yet in force is applied (when new, and again at each
/// drift tick after a refusal); a drift tick or an identity event works on the commit in
/// force. Returns the drift interval of the commit it loaded (real time), if it names one.
async fn sync_once(
    options: &Options,
    store: &Store,
    shared: &Shared,
    trigger: Trigger,
) -> Option<Duration> {
    let in_force = shared.status().commit_in_force.clone();
    if trigger == Trigger::SlackEvent {
        // A check of what Slack's events changed: no fetch (a push wakes its own sync).
        return sync_in_force(options, store, shared, trigger, in_force?).await;
    }
    let fetched = fetch_tip(options, shared, trigger).await;
    if let Some(tip) = fetched {
        if let Some(done) = sync_tip(options, store, shared, trigger, tip, in_force.clone()).await {
            return done;
        }
    } else if !matches!(trigger, Trigger::Drift | Trigger::IdentityEvent) {
        return None;
    }
    // The remote may be away: drift ticks and leavers go on with the commit in force.
    sync_in_force(options, store, shared, trigger, in_force?).await
}

/// The tip of the protected branch, fetched; `None` when the remote is away. An outage is
/// logged, recorded and posted to `/readyz` once when it begins and once when it ends,
/// however many fetches fail in between.
async fn fetch_tip(options: &Options, shared: &Shared, trigger: Trigger) -> Option<String> {
    let workdir = options.workdir.clone();
    let branch = options.branch.clone();
    let access = options.git.clone();
    let fetched = tokio::task::spawn_blocking(move || git::fetch(&workdir, &branch, &access))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    shared.metrics.fetched(fetched.is_ok());
    match fetched {
        Ok(tip) => {
            let mut status = shared.status();
            if let Some(since) = status.remote.unreachable_since.take() {
                let failures = status.remote.consecutive_failures;
                tracing::info!(repo = %options.repo, %since, failures, "the remote answers again");
                if status.unready_for_remote && status.commit_in_force.is_some() {
                    status.unready_for_remote = false;
                    status.ready = true;
                    status.ready_detail = "config, identity and Slack were read".into();
                }
            }
            status.remote = RemoteStatus::default();
            Some(tip)
        }
        Err(detail) => {
            let began = {
                let mut status = shared.status();
                status.remote.consecutive_failures += 1;
                status.remote.last_error = Some(detail.clone());
                let began = status.remote.unreachable_since.is_none();
                if began {
                    status.remote.unreachable_since = Some(crate::model::iso_time(now_millis()));
                }
                began
            };
            if began {
                not_ready(shared, &format!("cannot fetch {}: {detail}", options.repo));
                shared.status().unready_for_remote = true;
                tracing::warn!(repo = %options.repo, error = %detail, "fetch failed; retrying with backoff");
                shared.record(record(trigger, None, SyncOutcome::Failed, detail, 0));
            } else {
                tracing::debug!(repo = %options.repo, error = %detail, "fetch failed again");
            }
            None
        }
    }
}

/// The fetched tip: a commit not yet in force is applied (when new, and again at each
/// drift tick after a refusal). `Some(result)` ends the sync; `None` goes on to the
/// commit in force.
async fn sync_tip(
    options: &Options,
    store: &Store,
    shared: &Shared,
    trigger: Trigger,
    tip: String,
    in_force: Option<String>,
) -> Option<Option<Duration>> {
    let seen = shared.status().seen_commit.replace(tip.clone());
    let new_commit = seen.as_deref() != Some(tip.as_str());
    let pending = in_force.as_deref() != Some(tip.as_str());
    if !(new_commit || (trigger == Trigger::Drift && pending)) {
        return None;
    }
    if new_commit {
        tracing::info!(commit = %tip, trigger = trigger.as_str(), "new commit on the protected branch");
    }
    match load(options, shared, &tip) {
        Ok(connection) => {
            leavers_first(&connection, store, shared, &tip).await;
            apply_commit(&connection, store, shared, trigger, &tip, None).await;
            Some(drift_interval(&connection, options))
        }
        Err(error) => {
            let done = record(trigger, Some(&tip), error.outcome(), error.to_string(), 0);
            // Said once, when the commit is new, through the commit in force's
            // `notify:` (this one could not be read).
            if new_commit
                && let Some(in_force) = &in_force
                && let Ok(connection) = load(options, shared, in_force)
            {
                notify::post(&connection, &done, &[]).await;
            }
            shared.record(done);
            // A drift tick still works on the commit in force.
            (trigger != Trigger::Drift).then_some(None)
        }
    }
}

/// A drift tick or an identity event works on the commit in force: leavers first, then
/// what policy reports or corrects.
async fn sync_in_force(
    options: &Options,
    store: &Store,
    shared: &Shared,
    trigger: Trigger,
    in_force: String,
) -> Option<Duration> {
    if !matches!(
        trigger,
        Trigger::Drift | Trigger::IdentityEvent | Trigger::SlackEvent
    ) {
        return None;
    }
    let connection = match load(options, shared, &in_force) {
        Ok(connection) => connection,
        Err(error) => {
            shared.record(record(
                trigger,
                Some(&in_force),
                error.outcome(),
                error.to_string(),
                0,
            ));
            return None;
        }
    };
    let policy = drift_policy(&connection);
    if trigger == Trigger::IdentityEvent {
        leavers_first(&connection, store, shared, &in_force).await;
        // The rest of the leavers' access, and what policy corrects anyway.
        let scope = correction(policy.as_ref(), true);
        apply_commit(&connection, store, shared, trigger, &in_force, scope).await;
        return drift_interval(&connection, options);
    }
    if trigger == Trigger::SlackEvent {
        if policy.is_some() {
            report_drift(&connection, store, shared, trigger, &in_force).await;
        } else {
            // No drift policy: nothing to check, and nothing for the drain to ask again.
            shared.event_checks.fetch_add(1, Ordering::SeqCst);
        }
        return drift_interval(&connection, options);
    }
    let scope = correction(policy.as_ref(), false);
    if scope.as_ref().is_none_or(|s| s.only.is_some()) {
        report_drift(&connection, store, shared, trigger, &in_force).await;
    }
    if scope.is_some() {
        apply_commit(&connection, store, shared, trigger, &in_force, scope).await;
    }
    drift_interval(&connection, options)
}

/// A commit checked out and connected to: the connection reads files of the checkout,
/// which lives as long as this value.
struct Loaded {
    connection: pipeline::Connection,
    _checkout: crate::gitops::commit::Checkout,
}

impl std::ops::Deref for Loaded {
    type Target = pipeline::Connection;
    fn deref(&self) -> &pipeline::Connection {
        &self.connection
    }
}

/// Checks out `commit` and connects to its identity source and Slack, every write behind
/// this replica's gate; on failure, the outcome word and why.
fn load(options: &Options, shared: &Shared, commit: &str) -> Result<Loaded, LoadError> {
    let checkout_dir = options.workdir.join(&options.config_path);
    let checkout =
        crate::gitops::commit::checkout(&checkout_dir, Some(commit), Some(&options.branch))?;
    let environment = options.environment.clone();
    let mut connection = pipeline::connect(&checkout.dir, &options.connect, &*environment)?;
    if let Some(gate) = shared.gate.get() {
        connection.client.set_write_gate(gate.clone());
    }
    connection.mirror = Some(crate::mirror::Sink {
        store: shared.store.clone(),
        scope: options.election.lease.clone(),
    });
    let scope = crate::slack::reader::ReadScope::from_repository(&connection.repository);
    *shared
        .refresh_with
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(mirror::RefreshWith {
        client: connection.client.clone(),
        workspaces: scope.workspaces,
        managed: scope.managed_channels,
        time_scale: options.connect.time_scale,
        commit: commit.to_string(),
    });
    *shared.plan_with.lock().unwrap_or_else(|p| p.into_inner()) = Some(plans::PlanWith {
        connect: options.connect.clone(),
        environment: options.environment.clone(),
        workdir: options.workdir.join("plans"),
        settings: connection.repository.config.value.clone(),
        client: connection.client.clone(),
        clone_dir: checkout_dir.clone(),
        commit: commit.to_string(),
    });
    Ok(Loaded {
        connection,
        _checkout: checkout,
    })
}

/// The commit's drift policy, if it has one.
fn drift_policy(connection: &pipeline::Connection) -> Option<crate::config::types::DriftPolicy> {
    connection
        .repository
        .policies
        .iter()
        .find_map(|p| p.value.drift.clone())
}

/// How often the commit asks for a drift tick, in real time.
fn drift_interval(connection: &pipeline::Connection, options: &Options) -> Option<Duration> {
    drift_policy(connection).and_then(|d| {
        crate::config::semantic::parse_duration_seconds(&d.every)
            .map(|s| Duration::from_secs_f64(s as f64 / options.connect.time_scale))
    })
}

/// What a sync of the commit in force converges: everything under `correct`; under
/// `report`, the kinds `drift.correct` names, and missed deprovisions when an identity
/// event asked for the sync. `None`: nothing (report only).
fn correction(
    policy: Option<&crate::config::types::DriftPolicy>,
    identity_event: bool,
) -> Option<pipeline::DriftScope> {
    use crate::config::types::{DriftAction, DriftKind};
    if policy.is_some_and(|p| p.action == DriftAction::Correct) {
        return Some(pipeline::DriftScope { only: None });
    }
    let mut kinds: std::collections::BTreeSet<DriftKind> = policy
        .map(|p| p.correct.iter().copied().collect())
        .unwrap_or_default();
    if identity_event {
        kinds.insert(DriftKind::MissedDeprovision);
    }
    (!kinds.is_empty()).then_some(pipeline::DriftScope { only: Some(kinds) })
}

/// Leavers named by identity events go first, alone: seconds, not a full sync.
async fn leavers_first(
    connection: &pipeline::Connection,
    store: &Store,
    shared: &Shared,
    commit: &str,
) {
    let leavers = shared.inbox().take();
    for email in leavers {
        deactivate_leaver(connection, store, shared, commit, &email).await;
    }
}

/// How the controller applies: as the controller, stoppable by SIGTERM, counting actions.
fn apply_options<'a>(
    shared: &'a Shared,
    commit: &str,
    drift: Option<pipeline::DriftScope>,
    on_result: &'a (
            dyn Fn(&crate::apply::executor::ActionResult, &crate::plan::action::Action) + Sync
        ),
) -> ApplyOptions<'a> {
    ApplyOptions {
        commit: Some(commit.to_string()),
        reviewed: None,
        dry_run: false,
        force_unlock: None,
        holder: format!(
            "controller {} (pid {}, generation {})",
            shared.election.replica,
            std::process::id(),
            shared.leader.leading().unwrap_or_default()
        ),
        today: crate::apply::iso_date(now_millis()),
        clock: &now_millis,
        on_result,
        stop: Some(&shared.halt),
        drift,
        restore_with: shared.restore_with.clone(),
    }
}

/// The arguments that point `restore` where this controller points: its clone's config
/// directory, its store (a URL without its password), and Slack when not the default.
fn restore_with(options: &Options, store: &Store) -> Vec<String> {
    let dir = options.workdir.join(&options.config_path);
    let dir = dir.canonicalize().unwrap_or(dir);
    let mut words = vec![
        dir.display().to_string(),
        "--state".into(),
        store.describe(),
    ];
    if let Some(url) = &options.connect.slack_url {
        words.extend(["--slack-url".into(), url.clone()]);
    }
    if options.connect.time_scale != 1.0 {
        words.extend([
            "--time-scale".into(),
            options.connect.time_scale.to_string(),
        ]);
    }
    words
}

/// The fast path of an identity event: that person alone, through `apply_leaver`.
async fn deactivate_leaver(
    connection: &pipeline::Connection,
    store: &Store,
    shared: &Shared,
    commit: &str,
    email: &str,
) {
    let on_result = |result: &crate::apply::executor::ActionResult,
                     _: &crate::plan::action::Action| {
        action_done(shared, result)
    };
    let options = apply_options(shared, commit, None, &on_result);
    let done = match crate::apply::apply_leaver(connection, store, email, &options).await {
        Ok(report) => {
            shared.metrics.report(&report);
            let outcome = SyncOutcome::of(&report.outcome);
            let detail = match &report.outcome {
                ApplyOutcome::Refused { reasons } => reasons.join("; "),
                _ => report.plan_summary.clone(),
            };
            record(
                Trigger::IdentityEvent,
                Some(commit),
                outcome,
                format!("leaver {email}: {detail}"),
                report.execution.results.len(),
            )
        }
        Err(error) => {
            shared.metrics.read_failure();
            not_ready(shared, &error.to_string());
            // The next event about them is not a duplicate: this run did not happen.
            shared.inbox().forget(email);
            record(
                Trigger::IdentityEvent,
                Some(commit),
                SyncOutcome::Failed,
                format!("leaver {email}: {error}"),
                0,
            )
        }
    };
    shared.record(done);
}

/// One log line and the metrics of each action.
fn action_done(shared: &Shared, result: &crate::apply::executor::ActionResult) {
    tracing::info!(
        action = %result.key,
        outcome = result.outcome.word(),
        detail = result.outcome.detail(),
        millis = result.millis,
        "action"
    );
    shared.metrics.action(&result.key, &result.outcome);
}

fn record(
    trigger: Trigger,
    commit: Option<&str>,
    outcome: SyncOutcome,
    detail: String,
    actions: usize,
) -> SyncRecord {
    SyncRecord {
        trigger,
        commit: commit.map(str::to_string),
        outcome,
        detail,
        at: crate::model::iso_time(now_millis()),
        actions,
    }
}

/// A sync of `commit` failed; when a read of the identity provider or Slack failed, it
/// is counted and readiness is withdrawn until one succeeds.
fn failed(shared: &Shared, trigger: Trigger, commit: &str, detail: String, read: bool) {
    if read {
        shared.metrics.read_failure();
        not_ready(shared, &detail);
    }
    shared.record(record(
        trigger,
        Some(commit),
        SyncOutcome::Failed,
        detail,
        0,
    ));
}

fn not_ready(shared: &Shared, why: &str) {
    let mut status = shared.status();
    status.ready = false;
    status.ready_detail = why.to_string();
    status.unready_for_remote = false;
}

/// Applies a commit through `apply`, exactly as the command does.
async fn apply_commit(
    connection: &pipeline::Connection,
    store: &Store,
    shared: &Shared,
    trigger: Trigger,
    commit: &str,
    drift: Option<pipeline::DriftScope>,
) {
    let on_result = |result: &crate::apply::executor::ActionResult,
                     _: &crate::plan::action::Action| {
        action_done(shared, result)
    };
    let options = apply_options(shared, commit, drift, &on_result);
    trust_mirror(connection, shared);
    match crate::apply::apply(connection, store, &options).await {
        Ok(report) => {
            {
                let mut status = shared.status();
                status.ready = true;
                status.ready_detail = "config, identity and Slack were read".into();
                status.unready_for_remote = false;
            }
            let in_force =
                (!matches!(report.outcome, ApplyOutcome::Refused { .. })).then_some(commit);
            shared.metrics.report(&report);
            let outcome = SyncOutcome::of(&report.outcome);
            let detail = match &report.outcome {
                ApplyOutcome::Incomplete => {
                    format!("{} change(s) remain", report.remaining.len())
                }
                ApplyOutcome::Halted { reason } => reason.clone(),
                ApplyOutcome::Refused { reasons } => reasons.join("; "),
                ApplyOutcome::Converged | ApplyOutcome::DryRun => report.plan_summary.clone(),
            };
            let actions = report.execution.results.len();
            let done = record(trigger, Some(commit), outcome, detail, actions);
            shared.record_applied(done.clone(), in_force);
            if actions > 0 || outcome != SyncOutcome::Converged {
                let keys: Vec<String> = report
                    .execution
                    .results
                    .iter()
                    .map(|r| r.key.clone())
                    .collect();
                notify::post(connection, &done, &keys).await;
            }
        }
        Err(error) => {
            let read = matches!(
                error,
                crate::apply::ApplyError::Pipeline(
                    pipeline::PipelineError::Identity(_) | pipeline::PipelineError::Slack(_)
                )
            );
            failed(shared, trigger, commit, error.to_string(), read);
        }
    }
}

/// Lets the connection's next reads come from the mirror as far as the event stream's
/// health allows.
fn trust_mirror(connection: &pipeline::Connection, shared: &Shared) {
    *connection
        .mirror_trust
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = mirror::trust(shared);
}

/// A drift tick under `report`: plan the commit in force and tell what drifted.
async fn report_drift(
    connection: &pipeline::Connection,
    store: &Store,
    shared: &Shared,
    trigger: Trigger,
    commit: &str,
) {
    let baseline = Baseline {
        identity: store.last_good_identity(&connection.org()).ok().flatten(),
        mappings: Default::default(),
        drift: Some(pipeline::DriftScope { only: None }),
        changes: None,
    };
    // From the mirror while the event stream is healthy: what the plan changes is read
    // live before it is believed (`plan_org`), so a copy that missed an event can hide
    // drift until the refresher re-reads it, never invent it.
    trust_mirror(connection, shared);
    // A check an event asked for stays cheap: from the mirror, or not at all.
    let from_events = trigger == Trigger::SlackEvent;
    connection.mirror_only.store(from_events, Ordering::SeqCst);
    let planned = pipeline::plan_org(connection, &baseline).await;
    connection.mirror_only.store(false, Ordering::SeqCst);
    let source = connection.mirror_read().map(|from| {
        format!(
            " (Slack from the mirror: {} objects read live, {} mirrored, the oldest verified {})",
            from.read_live,
            from.mirrored,
            from.oldest_verified_at
                .map_or_else(|| "never".to_string(), crate::model::iso_time)
        )
    });
    match planned {
        Ok(planned) => {
            if from_events {
                shared.event_checks.fetch_add(1, Ordering::SeqCst);
            }
            let drift = metrics::drift_by_kind(&planned.plan);
            for (kind, count) in &drift {
                tracing::info!(commit, kind = %kind, count, "drift");
            }
            shared.metrics.set_drift(&drift);
            let total: u64 = drift.values().sum();
            shared.status().drift = drift.clone();
            if from_events && total == 0 {
                // Most events are our own writes coming back: nothing to say.
                *shared
                    .posted_drift
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(drift);
                return;
            }
            let done = record(
                trigger,
                Some(commit),
                if total == 0 {
                    SyncOutcome::NoChange
                } else {
                    SyncOutcome::DriftReported
                },
                format!(
                    "{}{}",
                    crate::render::plan::summary(&planned.plan),
                    source.unwrap_or_default()
                ),
                planned.plan.actions.len(),
            );
            // Post drift when it is new: not the same drift every tick.
            let new = {
                let mut posted = shared
                    .posted_drift
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let new = total > 0 && posted.as_ref() != Some(&drift);
                *posted = Some(drift);
                new
            };
            if new {
                let keys: Vec<String> = planned
                    .plan
                    .actions
                    .iter()
                    .map(crate::plan::action::Action::journal_key)
                    .collect();
                notify::post(connection, &done, &keys).await;
            }
            shared.record(done);
        }
        Err(pipeline::PipelineError::MirrorOnly(why)) => {
            tracing::info!(%why, "drift named by Slack events is left to the refresher and the drift tick");
        }
        Err(error) => failed(shared, trigger, commit, error.to_string(), true),
    }
}
