//! The one pipeline that `plan`, `apply` and the controller share: config at a commit (or
//! a directory) + identity + live Slack -> plan -> verdict. What a reviewer saw and what
//! apply does are computed by the same code.
//!
//! This is the imperative shell around the pure core: it reads (files, the identity
//! provider, Slack), calls `plan` and `policy`, and returns data. It prints nothing;
//! commands render what it returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{self, Repository};
use crate::diagnostic::Diagnostic;
use crate::gitops::worktree;
use crate::identity::IdentityError;
use crate::model::directory::Directory;
use crate::model::live::{InstalledApps, Live};
use crate::plan::action::Plan;
use crate::policy::{IdentityCounts, Verdict};
use crate::render;
use crate::slack::client::{ClientOptions, SlackClient, SlackError, Token};
use crate::slack::reader::{ReadReport, ReadScope};

/// Why the pipeline could not produce a plan.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Worktree(#[from] worktree::WorktreeError),
    /// The repository has errors; `rendered` holds them as `file:line:col` text.
    #[error(
        "{dir} is not a valid config repository; run `slack-gitops validate` for details\n{rendered}"
    )]
    InvalidConfig { dir: PathBuf, rendered: String },
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The config names IdP groups the identity provider does not have (or has cycles).
    #[error("the config does not match the identity directory; nothing was planned\n{rendered}")]
    UnknownGroups { rendered: String },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// A read that only the mirror may serve ([`Connection::mirror_only`]) could not be.
    #[error("the mirror cannot serve this read: {0}")]
    MirrorOnly(String),
}

/// Loads a config repository for a command that needs a valid one.
pub fn load_repository(dir: &Path) -> Result<Repository, PipelineError> {
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
                    let text = String::from_utf8_lossy(&f.bytes).into_owned();
                    (f.path.clone(), text)
                })
                .collect();
            Err(PipelineError::InvalidConfig {
                dir: dir.to_path_buf(),
                rendered: render::diagnostics::text(&diagnostics, &sources, false),
            })
        }
    }
}

/// Tokens to use when the environment has none (the built-in emulator's own).
#[derive(Debug, Clone, Default)]
pub struct Fallback {
    pub admin: Option<String>,
    pub bot: Option<String>,
}

/// How to reach Slack.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// One base URL for both APIs; the config's `slack.url` or real Slack when `None`.
    pub slack_url: Option<String>,
    /// Wait this many times shorter (to match an emulator's `--time-scale`).
    pub time_scale: f64,
    pub fallback: Fallback,
    /// The state store (a path or a `postgres://` URL) to keep the identity directory in
    /// between reads, so that a read follows the provider's change feed. Without one,
    /// every read is a full read.
    pub identity_store: Option<String>,
    /// Read the members of every identity group, not only of those the config names
    /// (`import` looks for rules among all of them).
    pub every_group: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            slack_url: None,
            time_scale: 1.0,
            fallback: Fallback::default(),
            identity_store: None,
            every_group: false,
        }
    }
}

/// Everything a command needs to read and change the world: the repository, the identity
/// source and a Slack client, all configured from the repository and the environment.
pub struct Connection {
    /// Where the repository was read from (a directory, or a commit's checkout).
    pub dir: PathBuf,
    pub repository: Repository,
    pub source: crate::identity::Source,
    pub client: SlackClient,
    /// Where the identity directory is kept between reads, if anywhere.
    pub identity_store: Option<crate::store::Store>,
    /// What the last identity read did (how, calls, groups read), for the command's output.
    pub identity_read: std::sync::Mutex<Option<crate::identity::kept::Summary>>,
    /// Where full reads of Slack are written through (the controller's mirror).
    pub mirror: Option<crate::mirror::Sink>,
    /// Read Slack from the mirror when it can serve, taking copies verified before this
    /// time (unix ms: the event stream's last gap) as unverified; in full when `None`.
    /// The controller sets it while its event stream is healthy.
    pub mirror_trust: std::sync::Mutex<Option<i64>>,
    /// What the last read took from the mirror.
    pub mirror_read: std::sync::Mutex<Option<crate::mirror::read::FromMirror>>,
    /// Only the mirror may serve reads of Slack: where it cannot (untrusted, or too much
    /// to read live), the read fails with [`PipelineError::MirrorOnly`] instead of
    /// reading Slack in full. For checks that must stay cheap (a change an event names).
    pub mirror_only: std::sync::atomic::AtomicBool,
}

/// The most objects a read from the mirror reads live before a full read is cheaper.
pub const MIRROR_MAX_LIVE: usize = 200;

/// How many times a plan from the mirror is made again after reading live what it
/// changes, before Slack is read in full instead.
pub const CONFIRM_ROUNDS: usize = 3;

/// Connects to the identity provider and Slack as the repository at `dir` says, with
/// secrets from `environment` (a lookup such as `std::env::var`, injected for tests).
pub fn connect(
    dir: &Path,
    options: &ConnectOptions,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Connection, PipelineError> {
    if !(options.time_scale.is_finite() && options.time_scale > 0.0) {
        return Err(PipelineError::Setup(
            "--time-scale must be a positive number".into(),
        ));
    }
    let repository = load_repository(dir)?;
    let settings = &repository.config.value;
    let environment = |name: &str| environment(name).filter(|v| !v.is_empty());
    let token_env = settings
        .slack
        .token_env
        .clone()
        .unwrap_or_else(|| "SLACK_ADMIN_TOKEN".into());
    let admin = environment(&token_env)
        .or_else(|| options.fallback.admin.clone())
        .map(Token::new)
        .ok_or_else(|| {
            PipelineError::Setup(format!(
                "the environment variable {token_env} is not set; it must hold the Slack admin user token (xoxp-)"
            ))
        })?;
    let bot = settings
        .slack
        .bot_token_env
        .as_deref()
        .and_then(environment)
        .or_else(|| options.fallback.bot.clone())
        .map(Token::new);
    let mut source = crate::identity::Source::from_settings(&settings.identity, dir, &environment)?;
    if !options.every_group {
        source = source.reading_members_of(repository.referenced_groups());
    }
    let client = SlackClient::new(
        admin,
        bot,
        ClientOptions {
            base_url: options
                .slack_url
                .clone()
                .or_else(|| settings.slack.url.clone()),
            time_scale: options.time_scale,
            ..ClientOptions::default()
        },
    )?;
    let identity_store = match (&options.identity_store, source.fingerprint()) {
        (Some(spec), Some(_)) => {
            let password = crate::store::password(&environment).ok().flatten();
            match crate::store::Store::open_spec(spec, password) {
                Ok(store) => Some(store),
                Err(error) => {
                    tracing::warn!(%error, "the identity directory cannot be kept in the state store; every read is a full read");
                    None
                }
            }
        }
        _ => None,
    };
    Ok(Connection {
        dir: dir.to_path_buf(),
        repository,
        source,
        client,
        identity_store,
        identity_read: std::sync::Mutex::new(None),
        mirror: None,
        mirror_trust: std::sync::Mutex::new(None),
        mirror_read: std::sync::Mutex::new(None),
        mirror_only: std::sync::atomic::AtomicBool::new(false),
    })
}

impl Connection {
    /// Reads the identity provider and live Slack at once; either read failing fails both.
    pub async fn read(&self) -> Result<(Directory, Live, ReadReport), PipelineError> {
        let scope = ReadScope::from_repository(&self.repository);
        tracing::info!("reading the identity provider and Slack");
        let (directory, live) = tokio::join!(self.read_identity(), self.read_slack(&scope));
        let (live, report) = live?;
        Ok((directory?, live, report))
    }

    /// Reads live Slack: from the mirror when trusted ([`Connection::mirror_trust`]) and
    /// it can serve, else in full (written through to the mirror, if any).
    async fn read_slack(&self, scope: &ReadScope) -> Result<(Live, ReadReport), PipelineError> {
        let trust = *self
            .mirror_trust
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let (Some(mirror), Some(unverified_before)) = (&self.mirror, trust) {
            let read = crate::mirror::read::read(
                &self.client,
                mirror,
                scope,
                MIRROR_MAX_LIVE,
                unverified_before,
            );
            match read.await {
                Ok((live, report, from)) => {
                    self.set_mirror_read(Some(from));
                    return Ok((live, report));
                }
                Err(declined) => {
                    self.may_read_in_full(&declined.to_string())?;
                    tracing::info!(reason = %declined, "reading Slack in full instead of from the mirror");
                }
            }
        }
        self.may_read_in_full("the event stream is not trusted")?;
        self.set_mirror_read(None);
        self.read_slack_in_full(scope).await
    }

    /// Reads live Slack in full, written through to the mirror, if any.
    async fn read_slack_in_full(
        &self,
        scope: &ReadScope,
    ) -> Result<(Live, ReadReport), PipelineError> {
        let started_at = crate::clock::now_millis();
        let (live, report) = crate::slack::reader::read_live(&self.client, scope).await?;
        if let Some(mirror) = &self.mirror {
            mirror.full_read(&live, &report.usergroup_updates, started_at);
        }
        Ok((live, report))
    }

    /// Whether Slack may be read in full, `why` the mirror could not serve.
    fn may_read_in_full(&self, why: &str) -> Result<(), PipelineError> {
        if self.mirror_only.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PipelineError::MirrorOnly(why.to_string()));
        }
        Ok(())
    }

    fn set_mirror_read(&self, from: Option<crate::mirror::read::FromMirror>) {
        *self
            .mirror_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = from;
    }

    /// The plan against `live`, after asking Slack for the apps the plan's leavers
    /// installed (what they lose includes them), so a plan is computed from inputs that
    /// are all read.
    async fn plan_against(
        &self,
        desired: &crate::plan::desired::Desired<'_>,
        directory: &Directory,
        live: &mut Live,
        warnings: &mut Vec<String>,
    ) -> Plan {
        let leavers = crate::plan::leaver::leaving(desired, directory, live);
        if !leavers.is_empty() {
            match crate::slack::reader::read_installed_apps(&self.client, &leavers).await {
                Ok(apps) => live.apps = InstalledApps::Known(apps),
                Err(error) => warnings.push(format!(
                    "the apps leavers installed are unknown ({error}); the plan is otherwise complete"
                )),
            }
        }
        crate::plan::diff::plan(desired, directory, live)
    }

    /// The plan, believed: when live Slack came from the mirror, every object the plan
    /// changes (those it removes from first) is read live and the plan made again, until
    /// it changes nothing it has not read ([`CONFIRM_ROUNDS`] at most); when that would
    /// read more than [`MIRROR_MAX_LIVE`] objects, Slack is read in full instead.
    async fn plan_confirmed(
        &self,
        desired: &crate::plan::desired::Desired<'_>,
        directory: &Directory,
        live: &mut Live,
        mut read: ReadReport,
        warnings: &mut Vec<String>,
    ) -> Result<(Plan, ReadReport), PipelineError> {
        let mut plan = self.plan_against(desired, directory, live, warnings).await;
        let (Some(sink), Some(mut from)) = (&self.mirror, self.mirror_read()) else {
            return Ok((plan, read));
        };
        let scope = ReadScope::from_repository(&self.repository);
        let before = self.client.counts();
        let mut confirmed = std::collections::BTreeSet::new();
        for round in 0..=CONFIRM_ROUNDS {
            let wanted: Vec<crate::mirror::Wanted> = crate::mirror::touched(&plan)
                .into_iter()
                .filter(|w| !confirmed.contains(w))
                .collect();
            if wanted.is_empty() {
                let after = self.client.counts();
                read.calls += after.calls - before.calls;
                read.minimum_calls += after.calls - before.calls;
                read.rate_limited += after.rate_limited - before.rate_limited;
                read.retries += after.retries - before.retries;
                self.set_mirror_read(Some(from));
                return Ok((plan, read));
            }
            if round == CONFIRM_ROUNDS || confirmed.len() + wanted.len() > MIRROR_MAX_LIVE {
                break;
            }
            from.read_live += crate::mirror::read::reread(
                &self.client,
                sink,
                &scope,
                &wanted,
                live,
                &mut read.usergroup_updates,
            )
            .await?;
            confirmed.extend(wanted);
            plan = self.plan_against(desired, directory, live, warnings).await;
        }
        self.may_read_in_full("the plan changes more than the mirror can confirm")?;
        tracing::info!("the plan changes more than the mirror can confirm; reading Slack in full");
        self.set_mirror_read(None);
        let (full, report) = self.read_slack_in_full(&scope).await?;
        *live = full;
        let plan = self.plan_against(desired, directory, live, warnings).await;
        Ok((plan, report))
    }

    /// What the last read took from the mirror, if it was served from it.
    pub fn mirror_read(&self) -> Option<crate::mirror::read::FromMirror> {
        self.mirror_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the identity provider: through the directory kept in the state store when
    /// there is one (following the provider's change feed, and in full when nothing is
    /// kept, the settings changed, or the periodic full read is due), else in full. The
    /// kept directory is a cache: a store that cannot be read or written costs a full
    /// read and a warning, never the read.
    pub async fn read_identity(&self) -> Result<Directory, PipelineError> {
        let read = self.read_identity_keeping().await?;
        let summary = read.summary();
        tracing::info!(how = %summary.how.describe(), calls = summary.calls, groups = summary.groups, groups_read = summary.groups_read, "read the identity provider");
        *self
            .identity_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(summary);
        Ok(read.directory)
    }

    /// What the last identity read did, if one was made.
    pub fn identity_summary(&self) -> Option<crate::identity::kept::Summary> {
        self.identity_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn read_identity_keeping(&self) -> Result<crate::identity::kept::Read, PipelineError> {
        let (Some(store), Some(fingerprint)) = (&self.identity_store, self.source.fingerprint())
        else {
            return Ok(self.source.read_once().await?);
        };
        let org = self.org();
        let kept = store.kept_identity(&org).unwrap_or_else(|error| {
            tracing::warn!(%error, "the kept identity directory cannot be read; reading in full");
            None
        });
        let every_hours = self
            .repository
            .config
            .value
            .identity
            .full_read_every_hours
            .unwrap_or(24);
        let now = crate::clock::now_millis();
        let full = kept.as_ref().and_then(|kept| {
            if kept.fingerprint != fingerprint {
                Some("the identity settings changed".to_string())
            } else if now - kept.full_read_at >= i64::from(every_hours) * 3_600_000 {
                Some(format!("the periodic full read (every {every_hours} h)"))
            } else {
                None
            }
        });
        let document = kept
            .as_ref()
            .filter(|_| full.is_none())
            .map(|k| k.document.as_str());
        let read = self.source.read_keeping(document, full).await?;
        if let Some(document) = read.kept.clone() {
            let full_read_at = match (&read.how, &kept) {
                (crate::identity::kept::HowRead::Incremental { .. }, Some(kept)) => {
                    kept.full_read_at
                }
                _ => now,
            };
            let keep = crate::store::KeptIdentity {
                fingerprint,
                document,
                full_read_at,
                read_at: now,
            };
            if let Err(error) = store.keep_identity(&org, &keep) {
                tracing::warn!(%error, "the identity directory read cannot be kept; the next read is a full read");
            }
        }
        Ok(read)
    }

    /// The key of the org in the state store: its workspaces' team ids, sorted.
    pub fn org(&self) -> String {
        org_key(&self.repository)
    }
}

/// The key of an org in the state store: its workspaces' team ids, sorted, joined.
pub fn org_key(repository: &Repository) -> String {
    team_ids(repository).join(",")
}

/// The team ids of the workspaces the repository manages, sorted.
pub fn team_ids(repository: &Repository) -> Vec<String> {
    let mut ids: Vec<String> = repository
        .config
        .value
        .slack
        .workspaces
        .values()
        .map(|id| id.to_string())
        .collect();
    ids.sort();
    ids
}

/// What a plan compares with from the last good one.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub identity: Option<IdentityCounts>,
    /// Mapping digests; empty when unknown.
    pub mappings: BTreeMap<String, String>,
    /// Set on a drift tick: the config is the commit already applied.
    pub drift: Option<DriftScope>,
    /// The earlier plan's change lines, when it recorded them ("since the last push").
    pub changes: Option<Vec<String>>,
}

/// A drift tick's view of a plan. The config is the commit already in force, so its own
/// mappings are the baseline (a member they do not select was added by hand, not moved
/// by a mapping change), and the plan may be narrowed to some kinds of drift.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftScope {
    /// Only these kinds are converged; every change when `None`.
    pub only: Option<std::collections::BTreeSet<crate::config::types::DriftKind>>,
}

/// Reads the baseline from an earlier JSON plan (`plan --out`).
pub fn read_baseline(path: &Path) -> Result<Baseline, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|error| PipelineError::Read {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    let document =
        render::plan::PlanDocument::parse(&text).map_err(|message| PipelineError::Read {
            path: path.to_path_buf(),
            message: format!("not a JSON plan written by --out: {message}"),
        })?;
    Ok(Baseline {
        identity: Some(document.identity),
        mappings: document.mappings,
        drift: None,
        changes: document.changes,
    })
}

/// A plan with everything that judges and explains it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub verdict: Verdict,
    pub identity: IdentityCounts,
    pub mappings: BTreeMap<String, String>,
    pub live: Live,
    pub directory: Directory,
    pub read: ReadReport,
    /// Things the plan could not learn that do not stop it (the apps leavers installed).
    pub warnings: Vec<String>,
    /// No last good identity snapshot was known.
    pub first_run: bool,
    /// The config's workspace keys and their team ids.
    pub workspaces: Vec<(String, String)>,
    /// What the repository's Rego policies said of the plan, when it has any.
    pub policy: Option<crate::rego::Outcome>,
}

impl Planned {
    /// The rendering input.
    pub fn report(&self) -> render::plan::PlanReport<'_> {
        render::plan::PlanReport {
            plan: &self.plan,
            verdict: &self.verdict,
            identity: &self.identity,
            first_run: self.first_run,
            mappings: &self.mappings,
            context: render::plan::PlanContext {
                workspaces: self.workspaces.clone(),
                ..Default::default()
            },
            policy: self.policy.as_ref(),
        }
    }
}

/// The repository's Rego policies over the plan (`input.plan`), the config and the
/// identity directory. A denial or a broken policy refuses the plan: the verdict becomes
/// `Refused` with each reason, whatever it was.
async fn judge_by_policies(
    repository: &config::Repository,
    directory: &Directory,
    planned: &mut Planned,
) {
    let outcome = policy_outcome(repository, directory, &planned.report(), &planned.live).await;
    let Some(mut outcome) = outcome else {
        return;
    };
    let reasons = outcome.refusals();
    if !reasons.is_empty() {
        if let Verdict::NeedsApproval { hash, .. } = &planned.verdict
            && outcome.only_overridable_refusals()
        {
            outcome.guardrail_hash = Some(hash.clone());
        }
        let counts = match &planned.verdict {
            Verdict::Refused { counts, .. }
            | Verdict::Allowed { counts, .. }
            | Verdict::NeedsApproval { counts, .. } => *counts,
        };
        let mut all = match &planned.verdict {
            Verdict::Refused { reasons, .. } => reasons.clone(),
            _ => Vec::new(),
        };
        all.extend(reasons);
        planned.verdict = Verdict::Refused {
            counts,
            reasons: all,
        };
    }
    planned.policy = Some(outcome);
}

/// What the repository's Rego policies say of a plan (`report`), the directory and live
/// Slack, with the approvals that override denials applied; `None` without policies.
/// Shared by every path that plans: the full sync and a leaver's own run.
pub async fn policy_outcome(
    repository: &config::Repository,
    directory: &Directory,
    report: &render::plan::PlanReport<'_>,
    live: &Live,
) -> Option<crate::rego::Outcome> {
    if repository.rego.iter().all(crate::rego::RegoFile::is_test) {
        return None;
    }
    let plan = render::plan::policy_plan(report);
    let input = crate::rego::input_text(repository, Some(directory), Some((plan, live)));
    let mut outcome = check_policies_async(&repository.rego, input).await;
    let today = crate::model::iso_date(crate::clock::now_millis());
    let hash = crate::policy::plan_hash(report.plan);
    crate::rego::apply_overrides(&mut outcome, &repository.approvals, &hash, &today);
    Some(outcome)
}

/// Reads everything and plans: the shared pipeline.
pub async fn plan_org(
    connection: &Connection,
    baseline: &Baseline,
) -> Result<Planned, PipelineError> {
    let (directory, mut live, read) = connection.read().await?;
    let repository = &connection.repository;
    // The config may name only groups the identity provider has.
    let files = config::Files {
        config: Some(repository.config.clone()),
        mappings: repository.mappings.clone(),
        policies: repository.policies.clone(),
        approvals: repository.approvals.clone(),
    };
    let resolution = directory.resolve();
    let mut diagnostics: Vec<Diagnostic> =
        config::semantic::unknown_groups(&files, &directory.group_names());
    diagnostics.extend(resolution.diagnostics.iter().cloned());
    let mut warnings = Vec::new();
    if !diagnostics.is_empty() {
        let rendered = render::diagnostics::text(&diagnostics, &BTreeMap::new(), false);
        if crate::diagnostic::has_errors(&diagnostics) {
            return Err(PipelineError::UnknownGroups { rendered });
        }
        warnings.push(rendered.trim_end().to_string());
    }

    let desired = crate::plan::desired::desired(repository, &directory, &resolution);
    let (mut plan, read) = connection
        .plan_confirmed(&desired, &directory, &mut live, read, &mut warnings)
        .await?;
    // Against the last good plan, a removal the plans cannot explain is either the
    // mapping's doing or drift in Slack.
    let mappings = desired.mapping_digests();
    let before = match baseline.drift {
        Some(_) => &mappings,
        None => &baseline.mappings,
    };
    crate::plan::diff::explain_by_mapping(&mut plan, &mappings, before);
    if let Some(DriftScope { only: Some(kinds) }) = &baseline.drift {
        plan = crate::plan::select::drift_only(&plan, kinds);
    }
    let identity = IdentityCounts::of(&desired, &directory);
    let verdict = crate::policy::verdict(
        &plan,
        &live,
        repository,
        &identity,
        baseline.identity.as_ref(),
    );
    let mut planned = Planned {
        plan,
        verdict,
        identity,
        mappings,
        live,
        directory: Directory::default(),
        read,
        warnings,
        first_run: baseline.identity.is_none(),
        workspaces: repository
            .config
            .value
            .slack
            .workspaces
            .iter()
            .map(|(name, id)| (name.clone(), id.as_str().to_string()))
            .collect(),
        policy: None,
    };
    judge_by_policies(repository, &directory, &mut planned).await;
    planned.directory = directory;
    Ok(planned)
}

/// Evaluates the repository's Rego policies over `input` on a thread of its own. The
/// engine stops itself at the time limit ([`crate::rego::TIME_LIMIT`], or
/// `SLACK_GITOPS_POLICY_TIME_LIMIT_MS`); a builtin that runs past it without yielding is
/// given up on here a little later (its thread is left to finish), so a policy can never
/// hold a command or the controller. For a command's own thread; async code awaits
/// [`check_policies_async`].
pub fn check_policies(files: &[crate::rego::RegoFile], input: String) -> crate::rego::Outcome {
    if files.is_empty() {
        return crate::rego::Outcome::default();
    }
    let limit = policy_time_limit();
    let deadline = limit + POLICY_GRACE;
    let (sender, receiver) = std::sync::mpsc::channel();
    if !evaluate_on_thread(files, input, limit, move |outcome| {
        let _ = sender.send(outcome);
    }) {
        return policies_unfinished(files, None);
    }
    receiver
        .recv_timeout(deadline)
        .unwrap_or_else(|_| policies_unfinished(files, Some(deadline)))
}

/// [`check_policies`] for async code: the evaluation is awaited, so the worker it runs
/// on goes on serving others (the controller's probes and webhooks) meanwhile.
pub async fn check_policies_async(
    files: &[crate::rego::RegoFile],
    input: String,
) -> crate::rego::Outcome {
    let limit = policy_time_limit();
    check_policies_within(files, input, limit, limit + POLICY_GRACE).await
}

/// [`check_policies_async`] with the engine's time `limit` and the `deadline` it is
/// given up at.
async fn check_policies_within(
    files: &[crate::rego::RegoFile],
    input: String,
    limit: std::time::Duration,
    deadline: std::time::Duration,
) -> crate::rego::Outcome {
    if files.is_empty() {
        return crate::rego::Outcome::default();
    }
    let (sender, receiver) = tokio::sync::oneshot::channel();
    if !evaluate_on_thread(files, input, limit, move |outcome| {
        let _ = sender.send(outcome);
    }) {
        return policies_unfinished(files, None);
    }
    match tokio::time::timeout(deadline, receiver).await {
        Ok(Ok(outcome)) => outcome,
        _ => policies_unfinished(files, Some(deadline)),
    }
}

/// How long past the engine's own time limit an evaluation is waited for.
const POLICY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine's time limit: `SLACK_GITOPS_POLICY_TIME_LIMIT_MS`, else
/// [`crate::rego::TIME_LIMIT`].
fn policy_time_limit() -> std::time::Duration {
    std::env::var("SLACK_GITOPS_POLICY_TIME_LIMIT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(crate::rego::TIME_LIMIT, std::time::Duration::from_millis)
}

/// Starts the evaluation on a thread named `rego`, stopped by the engine at `limit`,
/// handing its outcome to `deliver`. `false` when no thread could be started.
fn evaluate_on_thread(
    files: &[crate::rego::RegoFile],
    input: String,
    limit: std::time::Duration,
    deliver: impl FnOnce(crate::rego::Outcome) + Send + 'static,
) -> bool {
    let owned = files.to_vec();
    std::thread::Builder::new()
        .name("rego".into())
        .spawn(move || deliver(crate::rego::evaluate(&owned, &input, limit)))
        .is_ok()
}

/// The outcome of policies that did not finish (`waited`) or could not start: a problem,
/// so nothing they check is passed.
fn policies_unfinished(
    files: &[crate::rego::RegoFile],
    waited: Option<std::time::Duration>,
) -> crate::rego::Outcome {
    let message = match waited {
        Some(deadline) => format!(
            "the policies did not finish within {:.1} s; nothing they check was passed",
            deadline.as_secs_f64()
        ),
        None => {
            "no thread could be started to evaluate the policies; nothing they check was passed"
                .to_string()
        }
    };
    crate::rego::Outcome {
        problems: vec![crate::diagnostic::Diagnostic::error(
            crate::diagnostic::Code::RegoError,
            &files[0].path,
            None,
            message,
        )
        .with_help("a policy must finish within the time limit: look for a builtin building a huge value (numbers.range, a comprehension over a cross product)")],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy still running at the deadline is given up on while the runtime goes on,
    /// and its outcome is a problem, never a pass; the same policy given time passes.
    #[tokio::test]
    async fn policies_past_their_deadline_are_a_problem_and_do_not_hold_the_runtime() {
        let files = [crate::rego::RegoFile {
            path: "policies/slow.rego".into(),
            text: "package slow\n\nwarn contains sprintf(\"%d\", [n]) if {\n  n := count([1 | some i in numbers.range(1, 300000)])\n}\n".into(),
        }];
        let limit = std::time::Duration::from_secs(60);
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticking = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let late =
            check_policies_within(&files, "{}".into(), limit, std::time::Duration::ZERO).await;
        assert_eq!(late.problems.len(), 1, "{late:?}");
        assert!(
            late.problems[0]
                .message
                .contains("did not finish within 0.0 s"),
            "{late:?}"
        );
        assert!(late.findings.is_empty());

        // While the policy is awaited to the end, the current-thread runtime runs the
        // other task: awaiting never blocks the thread.
        let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
        let done = check_policies_within(&files, "{}".into(), limit, limit).await;
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > before);
        ticking.abort();
        assert!(done.problems.is_empty(), "{done:?}");
        assert_eq!(done.findings.len(), 1, "{done:?}");
        assert_eq!(done.findings[0].message, "300000");
    }
}
