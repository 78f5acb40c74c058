//! The state store: runs, the action journal, the snapshot each run started from, audit
//! events, the last good identity counts, leaver timestamps, the org locks and the
//! controller's lease. One interface on two engines: an SQLite file (the embedded
//! default; WAL, `synchronous=FULL`, mode 0600) or a PostgreSQL database
//! (`--state postgres://...`), for several controller replicas.
//!
//! **Fencing.** A controller replica that leads holds a lease with a generation
//! ([`Store::acquire_lease`]); it sets a [`Fence`] on its store, and from then on every
//! write (runs, journal, snapshots, audit, leavers, locks) checks in the same transaction
//! that the lease is still at that generation, and fails with [`StoreError::Fenced`]
//! when a newer leader took over. Runs and journal rows record the generation.
//!
//! Tokens never reach it: nothing here takes a token, and the rows hold actions, Slack
//! ids, emails and outcomes only. Times are passed in (unix milliseconds), except the
//! lease's, which are the database's clock so that replicas need not agree on the time.

mod engine;
mod lease;
mod mirror;
mod postgres;
mod schema;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use engine::{Done, Engine, EngineError, Row, Statement, Value};
pub use lease::{Fence, Lease, LeaseHolder};
pub use mirror::{MAX_PENDING_EVENTS, MirrorRow, MirrorSummary, Offered, PendingEvent};
pub use postgres::{is_url, redact as redact_url};
pub use schema::SCHEMA_VERSION;

use crate::policy::IdentityCounts;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store {store}: {message}")]
    Database { store: String, message: String },
    #[error(
        "the state store {store} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade slack-gitops"
    )]
    TooNew { store: String, found: i64 },
    /// A newer leader holds the lease: this process must not write.
    #[error("fenced off the state store {store}: {message}")]
    Fenced { store: String, message: String },
}

impl StoreError {
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

/// The org lock is held by another run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHeld {
    pub id: String,
    pub holder: String,
    /// Unix milliseconds.
    pub since: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Running,
    Converged,
    /// Done, but a fresh plan still shows changes (failed actions, or new drift).
    Incomplete,
    /// Stopped on a surprise or a tripped circuit breaker.
    Halted,
    Failed,
    /// Found still running by a later apply: the process died mid-run.
    Interrupted,
    DryRun,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Converged => "converged",
            RunOutcome::Incomplete => "incomplete",
            RunOutcome::Halted => "halted",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::DryRun => "dry-run",
        }
    }
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub org: String,
    pub kind: String,
    pub commit: Option<String>,
    pub plan_hash: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: String,
    /// The lease generation of the controller that ran it; `None` outside a controller.
    pub generation: Option<i64>,
}

/// What a new run records before its first write.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub org: &'a str,
    /// `apply` or `restore`.
    pub kind: &'a str,
    pub commit: Option<&'a str>,
    pub plan_hash: &'a str,
    /// The approvals it ran under, as JSON.
    pub approvals: &'a str,
    pub started_at: i64,
    /// The interrupted run this one finishes, if any.
    pub resumes: Option<i64>,
}

/// A journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub run_id: i64,
    pub seq: i64,
    pub key: String,
    /// The action as JSON.
    pub action: String,
    pub intent_at: i64,
    /// `None` while only the intent is recorded: the outcome is unknown.
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub slack_ids: Option<String>,
    pub outcome_at: Option<i64>,
    /// The lease generation it was written under, as for [`Run`].
    pub generation: Option<i64>,
}

/// An access change for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    pub email: String,
    pub user_id: Option<String>,
    /// `account`, `TEAM/@handle`, `TEAM/#channel`, `workspace TEAM`.
    pub entitlement: String,
    /// `granted`, `removed`, `deactivated`, `reactivated`, `signed-out`.
    pub change: String,
    pub rule: Option<String>,
    pub commit: Option<String>,
    pub approval: Option<String>,
}

/// An identity directory kept between reads (times in unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptIdentity {
    /// What the document depends on (the adapter and its settings); another means a full
    /// read.
    pub fingerprint: String,
    /// The adapter's document: its directory by id, and its cursor.
    pub document: String,
    /// When the last full read (the verified resync) started.
    pub full_read_at: i64,
    pub read_at: i64,
}

/// A leaver's timestamps (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    pub email: String,
    pub user_id: Option<String>,
    pub first_seen: i64,
    pub deactivated_at: Option<i64>,
    pub signed_out_at: Option<i64>,
    pub run_id: Option<i64>,
}

/// The store on one of its engines. Several orgs may share one.
pub struct Store {
    engine: Box<dyn Engine>,
    /// Set while this process leads: every write checks it.
    fence: RwLock<Option<Fence>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("store", &self.engine.describe())
            .finish()
    }
}

/// The default store path: `$SLACK_GITOPS_STATE`, else under the user's state directory
/// (`$XDG_STATE_HOME/slack-gitops/state.db`, else `~/.local/state/slack-gitops/state.db`).
pub fn default_path(environment: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| environment(name).filter(|v| !v.is_empty());
    if let Some(path) = set("SLACK_GITOPS_STATE") {
        return Some(PathBuf::from(path));
    }
    let base = set("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
    Some(base.join("slack-gitops").join("state.db"))
}

/// The password of a PostgreSQL store: `SLACK_GITOPS_STATE_PASSWORD`, else the contents
/// of the file `SLACK_GITOPS_STATE_PASSWORD_FILE` names (a mounted secret), trimmed.
pub fn password(
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, StoreError> {
    if let Some(password) = environment("SLACK_GITOPS_STATE_PASSWORD").filter(|p| !p.is_empty()) {
        return Ok(Some(password));
    }
    let Some(file) = environment("SLACK_GITOPS_STATE_PASSWORD_FILE").filter(|f| !f.is_empty())
    else {
        return Ok(None);
    };
    std::fs::read_to_string(&file)
        .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_string()))
        .map_err(|e| StoreError::Database {
            store: "password".into(),
            message: format!("cannot read SLACK_GITOPS_STATE_PASSWORD_FILE {file}: {e}"),
        })
}

impl Store {
    /// Opens (creating with mode 0600 when missing) and migrates the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let engine = sqlite::Sqlite::open(path).map_err(|e| StoreError::Database {
            store: path.display().to_string(),
            message: e.to_string(),
        })?;
        Store::migrated(Box::new(engine), schema::MIGRATIONS.to_vec())
    }

    /// Opens the store `spec` names: a `postgres://` URL (with `password`, if given), or
    /// an SQLite file.
    pub fn open_spec(spec: &str, password: Option<String>) -> Result<Store, StoreError> {
        if !postgres::is_url(spec) {
            return Store::open(Path::new(spec));
        }
        let engine =
            postgres::Postgres::connect(spec, password).map_err(|e| StoreError::Database {
                store: postgres::redact(spec),
                message: e.to_string(),
            })?;
        let migrations: Vec<String> = schema::MIGRATIONS
            .iter()
            .map(|m| schema::postgres(m))
            .collect();
        let migrations: Vec<&str> = migrations.iter().map(String::as_str).collect();
        Store::migrated(Box::new(engine), migrations)
    }

    fn migrated(engine: Box<dyn Engine>, migrations: Vec<&str>) -> Result<Store, StoreError> {
        let store = Store {
            engine,
            fence: RwLock::new(None),
        };
        store
            .engine
            .migrate(&migrations)
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// The file, or the URL without its password.
    pub fn describe(&self) -> String {
        self.engine.describe()
    }

    fn error(&self, error: EngineError) -> StoreError {
        let store = self.engine.describe();
        match error {
            EngineError::Database(message) => StoreError::Database { store, message },
            EngineError::Fenced(message) => StoreError::Fenced { store, message },
            EngineError::TooNew(found) => StoreError::TooNew { store, found },
        }
    }

    /// Sets (or clears) the fence every write checks from now on.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.write().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    pub fn fence(&self) -> Option<Fence> {
        self.fence.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the fence still holds: fails with [`StoreError::Fenced`] when a newer
    /// leader took over. Without a fence, always holds.
    pub fn check_fence(&self) -> Result<(), StoreError> {
        self.write(Vec::new()).map(|_| ())
    }

    /// Runs statements in one transaction, fenced when a fence is set.
    fn write(&self, statements: Vec<Statement>) -> Result<Vec<Done>, StoreError> {
        let fence = self.fence();
        self.engine
            .transaction(fence.as_ref(), statements)
            .map_err(|e| self.error(e))
    }

    fn write_one(&self, sql: &str, params: Vec<Value>) -> Result<Done, StoreError> {
        let mut done = self.write(vec![Statement::new(sql, params)])?;
        Ok(done.pop().unwrap_or_default())
    }

    /// One statement outside any fence, and its rows: reads, and the lease's own
    /// statements (which decide the fence).
    fn unfenced(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let mut done = self
            .engine
            .transaction(None, vec![Statement::new(sql, params)])
            .map_err(|e| self.error(e))?;
        Ok(done.pop().unwrap_or_default().rows)
    }

    /// One statement outside any fence, and how many rows it changed: caches any
    /// replica may write.
    fn unfenced_change(&self, sql: &str, params: Vec<Value>) -> Result<u64, StoreError> {
        let mut done = self
            .engine
            .transaction(None, vec![Statement::new(sql, params)])
            .map_err(|e| self.error(e))?;
        Ok(done.pop().unwrap_or_default().changed)
    }

    /// The generation writes run under, if fenced.
    fn generation(&self) -> Value {
        self.fence().map(|f| f.generation).into()
    }

    // ---- the org lock ------------------------------------------------------------------

    /// Takes the org lock for `holder`; returns who holds it when another does. A fenced
    /// store (a leading controller) first breaks locks held under older generations of
    /// its lease: their holder was a leader that died or was fenced off.
    pub fn lock(
        &self,
        org: &str,
        id: &str,
        holder: &str,
        now: i64,
    ) -> Result<Result<(), LockHeld>, StoreError> {
        let generation = self.generation();
        let mut statements = Vec::new();
        if let Value::Int(mine) = generation {
            statements.push(Statement::new(
                "DELETE FROM locks WHERE org = ?1 AND generation IS NOT NULL AND generation < ?2",
                vec![org.into(), Value::Int(mine)],
            ));
        }
        statements.push(Statement::new(
            "INSERT INTO locks (org, id, holder, acquired_at, generation) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (org) DO NOTHING",
            vec![org.into(), id.into(), holder.into(), now.into(), generation],
        ));
        statements.push(Statement::new(
            "SELECT id, holder, acquired_at FROM locks WHERE org = ?1",
            vec![org.into()],
        ));
        let done = self.write(statements)?;
        if done.len() == 3 && done[0].changed > 0 {
            tracing::warn!(org, "broke the org lock of a leader whose lease lapsed");
        }
        let held = done.last().and_then(|d| d.rows.first()).map(lock_held);
        Ok(match held {
            Some(held) if held.id != id => Err(held),
            _ => Ok(()),
        })
    }

    /// The org locks held now, by org.
    pub fn locks(&self) -> Result<Vec<(String, LockHeld)>, StoreError> {
        let rows = self.unfenced(
            "SELECT org, id, holder, acquired_at FROM locks ORDER BY org",
            vec![],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.text(0), lock_held(&Row(row.0[1..].to_vec()))))
            .collect())
    }

    /// Releases the lock if `id` still holds it.
    pub fn unlock(&self, org: &str, id: &str) -> Result<(), StoreError> {
        self.force_unlock(org, id).map(|_| ())
    }

    /// Breaks a stale lock by its id; whether it was there.
    pub fn force_unlock(&self, org: &str, id: &str) -> Result<bool, StoreError> {
        let done = self.write_one(
            "DELETE FROM locks WHERE org = ?1 AND id = ?2",
            vec![org.into(), id.into()],
        )?;
        Ok(done.changed > 0)
    }

    // ---- runs and the journal ----------------------------------------------------------

    /// Records a new run as running; returns its id.
    pub fn begin_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        let done = self.write_one(
            "INSERT INTO runs (org, kind, commit_sha, plan_hash, approvals, started_at, outcome, resumes, generation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8) RETURNING id",
            vec![
                run.org.into(),
                run.kind.into(),
                run.commit.into(),
                run.plan_hash.into(),
                run.approvals.into(),
                run.started_at.into(),
                run.resumes.into(),
                self.generation(),
            ],
        )?;
        Ok(done.rows.first().map_or(0, |row| row.int(0)))
    }

    /// Records how a run ended and its counts (JSON).
    pub fn end_run(
        &self,
        id: i64,
        outcome: RunOutcome,
        counts: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_one(
            "UPDATE runs SET outcome = ?2, counts = ?3, ended_at = ?4 WHERE id = ?1",
            vec![
                id.into(),
                outcome.as_str().into(),
                counts.into(),
                now.into(),
            ],
        )
        .map(|_| ())
    }

    /// Runs of `org` still marked running: the process that ran them died.
    pub fn unfinished_runs(&self, org: &str) -> Result<Vec<Run>, StoreError> {
        self.runs_where("org = ?1 AND outcome = 'running'", org.into())
    }

    /// Every run of `org`, oldest first.
    pub fn runs(&self, org: &str) -> Result<Vec<Run>, StoreError> {
        self.runs_where("org = ?1", org.into())
    }

    /// A run by id.
    pub fn run(&self, id: i64) -> Result<Option<Run>, StoreError> {
        Ok(self.runs_where("id = ?1", id.into())?.pop())
    }

    fn runs_where(&self, condition: &str, key: Value) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT id, org, kind, commit_sha, plan_hash, started_at, ended_at, outcome, generation
             FROM runs WHERE {condition} ORDER BY id"
        );
        Ok(self
            .unfenced(&sql, vec![key])?
            .iter()
            .map(run_row)
            .collect())
    }

    /// Journals an action's intent before its first call. Recording the same intent
    /// twice is one row.
    pub fn intent(
        &self,
        run_id: i64,
        seq: i64,
        key: &str,
        action: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO journal (run_id, seq, key, action, intent_at, generation) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (run_id, seq) DO NOTHING",
            vec![
                run_id.into(),
                seq.into(),
                key.into(),
                action.into(),
                now.into(),
                self.generation(),
            ],
        )
        .map(|_| ())
    }

    /// Journals an action's outcome (`done`, `failed`, `skipped`, `already-done`).
    pub fn outcome(
        &self,
        run_id: i64,
        seq: i64,
        outcome: &str,
        detail: &str,
        slack_ids: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_one(
            "UPDATE journal SET outcome = ?3, detail = ?4, slack_ids = ?5, outcome_at = ?6
             WHERE run_id = ?1 AND seq = ?2",
            vec![
                run_id.into(),
                seq.into(),
                outcome.into(),
                detail.into(),
                slack_ids.into(),
                now.into(),
            ],
        )
        .map(|_| ())
    }

    /// A run's journal in order.
    pub fn journal(&self, run_id: i64) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = self.unfenced(
            "SELECT run_id, seq, key, action, intent_at, outcome, detail, slack_ids, outcome_at, generation
             FROM journal WHERE run_id = ?1 ORDER BY seq",
            vec![run_id.into()],
        )?;
        Ok(rows
            .iter()
            .map(|row| JournalEntry {
                run_id: row.int(0),
                seq: row.int(1),
                key: row.text(2),
                action: row.text(3),
                intent_at: row.int(4),
                outcome: row.opt_text(5),
                detail: row.opt_text(6),
                slack_ids: row.opt_text(7),
                outcome_at: row.opt_int(8),
                generation: row.opt_int(9),
            })
            .collect())
    }

    // ---- snapshots, audit, identity counts, leavers ------------------------------------

    /// Saves the snapshot (JSON) a run started from.
    pub fn save_snapshot(
        &self,
        run_id: i64,
        taken_at: i64,
        document: &str,
    ) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO snapshots (run_id, taken_at, document) VALUES (?1, ?2, ?3)",
            vec![run_id.into(), taken_at.into(), document.into()],
        )
        .map(|_| ())
    }

    /// The snapshot a run started from.
    pub fn snapshot(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        let rows = self.unfenced(
            "SELECT document FROM snapshots WHERE run_id = ?1",
            vec![run_id.into()],
        )?;
        Ok(rows.first().map(|row| row.text(0)))
    }

    /// Records a run's access changes, all or none.
    pub fn audit(&self, run_id: i64, events: &[AuditEvent]) -> Result<(), StoreError> {
        let statements = events
            .iter()
            .map(|e| {
                Statement::new(
                    "INSERT INTO audit_events (run_id, at, email, user_id, entitlement, change, rule, commit_sha, approval)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    vec![
                        run_id.into(),
                        e.at.into(),
                        (&e.email).into(),
                        e.user_id.as_ref().into(),
                        (&e.entitlement).into(),
                        (&e.change).into(),
                        e.rule.as_ref().into(),
                        e.commit.as_ref().into(),
                        e.approval.as_ref().into(),
                    ],
                )
            })
            .collect();
        self.write(statements).map(|_| ())
    }

    /// Every audit event of an org's runs, oldest first, with its run.
    pub fn events(&self, org: &str) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let rows = self.unfenced(
            "SELECT e.run_id, e.at, e.email, e.user_id, e.entitlement, e.change, e.rule, e.commit_sha, e.approval
             FROM audit_events e JOIN runs r ON r.id = e.run_id
             WHERE r.org = ?1 ORDER BY e.id",
            vec![org.into()],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.int(0), audit_event(row, 1)))
            .collect())
    }

    /// Audit events about one person, oldest first.
    pub fn audit_events(&self, email: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self.unfenced(
            "SELECT at, email, user_id, entitlement, change, rule, commit_sha, approval
             FROM audit_events WHERE email = ?1 ORDER BY id",
            vec![email.into()],
        )?;
        Ok(rows.iter().map(|row| audit_event(row, 0)).collect())
    }

    /// The identity counts of the last run that converged.
    pub fn last_good_identity(&self, org: &str) -> Result<Option<IdentityCounts>, StoreError> {
        let rows = self.unfenced(
            "SELECT people, groups, in_scope FROM identity_counts WHERE org = ?1",
            vec![org.into()],
        )?;
        Ok(rows.first().map(|row| IdentityCounts {
            people: row.int(0) as u64,
            groups: row.int(1) as u64,
            in_scope: row.int(2) as u64,
        }))
    }

    pub fn set_last_good_identity(
        &self,
        org: &str,
        counts: &IdentityCounts,
        run_id: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO identity_counts (org, people, groups, in_scope, run_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org) DO UPDATE SET people = ?2, groups = ?3, in_scope = ?4, run_id = ?5, at = ?6",
            vec![
                org.into(),
                (counts.people as i64).into(),
                (counts.groups as i64).into(),
                (counts.in_scope as i64).into(),
                run_id.into(),
                now.into(),
            ],
        )
        .map(|_| ())
    }

    /// The identity directory kept for `org` by its adapter, if any.
    pub fn kept_identity(&self, org: &str) -> Result<Option<KeptIdentity>, StoreError> {
        let rows = self.unfenced(
            "SELECT fingerprint, document, full_read_at, read_at FROM identity_kept WHERE org = ?1",
            vec![org.into()],
        )?;
        Ok(rows.first().map(|row| KeptIdentity {
            fingerprint: row.text(0),
            document: row.text(1),
            full_read_at: row.int(2),
            read_at: row.int(3),
        }))
    }

    /// Keeps the identity directory an adapter read for `org`, unless a newer read was
    /// kept meanwhile (another process read later). Unfenced: it caches the provider and
    /// decides nothing, so any replica may write it.
    pub fn keep_identity(&self, org: &str, kept: &KeptIdentity) -> Result<(), StoreError> {
        self.engine
            .transaction(
                None,
                vec![Statement::new(
                    "INSERT INTO identity_kept (org, fingerprint, document, full_read_at, read_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (org) DO UPDATE SET fingerprint = ?2, document = ?3,
                         full_read_at = ?4, read_at = ?5
                     WHERE identity_kept.read_at <= ?5",
                    vec![
                        org.into(),
                        (&kept.fingerprint).into(),
                        (&kept.document).into(),
                        kept.full_read_at.into(),
                        kept.read_at.into(),
                    ],
                )],
            )
            .map_err(|e| self.error(e))
            .map(|_| ())
    }

    /// Records that `email` was seen as a leaver (the first time counts).
    pub fn leaver_seen(
        &self,
        org: &str,
        email: &str,
        user_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO leavers (org, email, user_id, first_seen) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (org, email) DO NOTHING",
            vec![org.into(), email.into(), user_id.into(), now.into()],
        )
        .map(|_| ())
    }

    /// Records a leaver's deactivation or sign-out (`deactivated_at` or `signed_out_at`).
    pub fn leaver_step(
        &self,
        org: &str,
        email: &str,
        step: LeaverStep,
        run_id: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let column = match step {
            LeaverStep::Deactivated => "deactivated_at",
            LeaverStep::SignedOut => "signed_out_at",
        };
        let sql =
            format!("UPDATE leavers SET {column} = ?3, run_id = ?4 WHERE org = ?1 AND email = ?2");
        self.write_one(
            &sql,
            vec![org.into(), email.into(), now.into(), run_id.into()],
        )
        .map(|_| ())
    }

    pub fn leavers(&self, org: &str) -> Result<Vec<Leaver>, StoreError> {
        let rows = self.unfenced(
            "SELECT email, user_id, first_seen, deactivated_at, signed_out_at, run_id
             FROM leavers WHERE org = ?1 ORDER BY email",
            vec![org.into()],
        )?;
        Ok(rows
            .iter()
            .map(|row| Leaver {
                email: row.text(0),
                user_id: row.opt_text(1),
                first_seen: row.int(2),
                deactivated_at: row.opt_int(3),
                signed_out_at: row.opt_int(4),
                run_id: row.opt_int(5),
            })
            .collect())
    }
}

/// A `locks` row selected as `id, holder, acquired_at`.
fn lock_held(row: &Row) -> LockHeld {
    LockHeld {
        id: row.text(0),
        holder: row.text(1),
        since: row.int(2),
    }
}

/// A `runs` row selected as `id, org, kind, commit_sha, plan_hash, started_at, ended_at,
/// outcome, generation`.
fn run_row(row: &Row) -> Run {
    Run {
        id: row.int(0),
        org: row.text(1),
        kind: row.text(2),
        commit: row.opt_text(3),
        plan_hash: row.text(4),
        started_at: row.int(5),
        ended_at: row.opt_int(6),
        outcome: row.text(7),
        generation: row.opt_int(8),
    }
}

/// An `audit_events` row selected as `at, email, user_id, entitlement, change, rule,
/// commit_sha, approval` from column `first` on.
fn audit_event(row: &Row, first: usize) -> AuditEvent {
    AuditEvent {
        at: row.int(first),
        email: row.text(first + 1),
        user_id: row.opt_text(first + 2),
        entitlement: row.text(first + 3),
        change: row.text(first + 4),
        rule: row.opt_text(first + 5),
        commit: row.opt_text(first + 6),
        approval: row.opt_text(first + 7),
    }
}

/// A step of a leaver's offboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaverStep {
    Deactivated,
    SignedOut,
}
