//! The state store: runs, the action journal, the snapshot each run started from, audit
//! events, the last good identity counts, leaver timestamps and the org lock. SQLite in
//! WAL mode with `synchronous=FULL`, so a journal row that was written survives a crash
//! or `kill -9` of the process; the file is created with mode 0600.
//!
//! Tokens never reach it: nothing here takes a token, and the rows hold actions, Slack
//! ids, emails and outcomes only. Times are passed in (unix milliseconds), never read
//! from a clock here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::policy::IdentityCounts;

/// The schema version this build writes; older files are migrated forward on open.
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations, the n-th taking the schema from version n to n+1.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    commit_sha TEXT,
    plan_hash TEXT NOT NULL,
    approvals TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT NOT NULL,
    counts TEXT,
    resumes INTEGER REFERENCES runs(id)
);
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    action TEXT NOT NULL,
    intent_at INTEGER NOT NULL,
    outcome TEXT,
    detail TEXT,
    slack_ids TEXT,
    outcome_at INTEGER,
    UNIQUE (run_id, seq)
);
CREATE TABLE snapshots (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    taken_at INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    at INTEGER NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT,
    entitlement TEXT NOT NULL,
    change TEXT NOT NULL,
    rule TEXT,
    commit_sha TEXT,
    approval TEXT
);
CREATE INDEX audit_events_email ON audit_events (email);
CREATE TABLE identity_counts (
    org TEXT PRIMARY KEY,
    people INTEGER NOT NULL,
    groups INTEGER NOT NULL,
    in_scope INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE leavers (
    org TEXT NOT NULL,
    email TEXT NOT NULL,
    user_id TEXT,
    first_seen INTEGER NOT NULL,
    deactivated_at INTEGER,
    signed_out_at INTEGER,
    run_id INTEGER,
    PRIMARY KEY (org, email)
);
CREATE TABLE locks (
    org TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    holder TEXT NOT NULL,
    acquired_at INTEGER NOT NULL
);
"];

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the state store {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the state store {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade slack-gitops"
    )]
    TooNew { path: PathBuf, found: i64 },
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

/// The store: one SQLite file per org (several orgs may share one).
pub struct Store {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
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

impl Store {
    /// Opens (creating with mode 0600 when missing) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |message: String| StoreError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        if !path.exists() {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(path).map_err(|e| open_error(e.to_string()))?;
        }
        let connection = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection).map_err(|e| self.sqlite(e))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.with(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            c.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
            });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            self.with(|c| {
                let transaction = c.transaction()?;
                transaction.execute_batch(migration)?;
                transaction.pragma_update(None, "user_version", version as i64 + 1)?;
                transaction.commit()
            })?;
        }
        Ok(())
    }

    // ---- the org lock ------------------------------------------------------------------

    /// Takes the org lock for `holder`; returns its id, or who holds it.
    pub fn lock(
        &self,
        org: &str,
        id: &str,
        holder: &str,
        now: i64,
    ) -> Result<Result<(), LockHeld>, StoreError> {
        self.with(|c| {
            let transaction =
                c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let held = transaction
                .query_row(
                    "SELECT id, holder, acquired_at FROM locks WHERE org = ?1",
                    [org],
                    |row| {
                        Ok(LockHeld {
                            id: row.get(0)?,
                            holder: row.get(1)?,
                            since: row.get(2)?,
                        })
                    },
                )
                .optional()?;
            if let Some(held) = held {
                return Ok(Err(held));
            }
            transaction.execute(
                "INSERT INTO locks (org, id, holder, acquired_at) VALUES (?1, ?2, ?3, ?4)",
                params![org, id, holder, now],
            )?;
            transaction.commit()?;
            Ok(Ok(()))
        })
    }

    /// The org locks held now, by org.
    pub fn locks(&self) -> Result<Vec<(String, LockHeld)>, StoreError> {
        self.with(|c| {
            let mut statement =
                c.prepare("SELECT org, id, holder, acquired_at FROM locks ORDER BY org")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get(0)?,
                    LockHeld {
                        id: row.get(1)?,
                        holder: row.get(2)?,
                        since: row.get(3)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// Releases the lock if `id` still holds it.
    pub fn unlock(&self, org: &str, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM locks WHERE org = ?1 AND id = ?2",
                params![org, id],
            )
            .map(|_| ())
        })
    }

    /// Breaks a stale lock by its id; whether it was there.
    pub fn force_unlock(&self, org: &str, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM locks WHERE org = ?1 AND id = ?2",
                params![org, id],
            )
            .map(|n| n > 0)
        })
    }

    // ---- runs and the journal ----------------------------------------------------------

    /// Records a new run as running; returns its id.
    pub fn begin_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (org, kind, commit_sha, plan_hash, approvals, started_at, outcome, resumes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                params![
                    run.org,
                    run.kind,
                    run.commit,
                    run.plan_hash,
                    run.approvals,
                    run.started_at,
                    run.resumes
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records how a run ended and its counts (JSON).
    pub fn end_run(
        &self,
        id: i64,
        outcome: RunOutcome,
        counts: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET outcome = ?2, counts = ?3, ended_at = ?4 WHERE id = ?1",
                params![id, outcome.as_str(), counts, now],
            )
            .map(|_| ())
        })
    }

    /// Runs of `org` still marked running: the process that ran them died.
    pub fn unfinished_runs(&self, org: &str) -> Result<Vec<Run>, StoreError> {
        self.runs_where("org = ?1 AND outcome = 'running'", org)
    }

    /// Every run of `org`, oldest first.
    pub fn runs(&self, org: &str) -> Result<Vec<Run>, StoreError> {
        self.runs_where("org = ?1", org)
    }

    fn runs_where(&self, condition: &str, org: &str) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT id, org, kind, commit_sha, plan_hash, started_at, ended_at, outcome
             FROM runs WHERE {condition} ORDER BY id"
        );
        self.with(|c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map([org], run_row)?;
            rows.collect()
        })
    }

    /// A run by id.
    pub fn run(&self, id: i64) -> Result<Option<Run>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, org, kind, commit_sha, plan_hash, started_at, ended_at, outcome
                 FROM runs WHERE id = ?1",
                [id],
                run_row,
            )
            .optional()
        })
    }

    /// Journals an action's intent before its first call.
    pub fn intent(
        &self,
        run_id: i64,
        seq: i64,
        key: &str,
        action: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO journal (run_id, seq, key, action, intent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, seq, key, action, now],
            )
            .map(|_| ())
        })
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
        self.with(|c| {
            c.execute(
                "UPDATE journal SET outcome = ?3, detail = ?4, slack_ids = ?5, outcome_at = ?6
                 WHERE run_id = ?1 AND seq = ?2",
                params![run_id, seq, outcome, detail, slack_ids, now],
            )
            .map(|_| ())
        })
    }

    /// A run's journal in order.
    pub fn journal(&self, run_id: i64) -> Result<Vec<JournalEntry>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT run_id, seq, key, action, intent_at, outcome, detail, slack_ids, outcome_at
                 FROM journal WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map([run_id], |row| {
                Ok(JournalEntry {
                    run_id: row.get(0)?,
                    seq: row.get(1)?,
                    key: row.get(2)?,
                    action: row.get(3)?,
                    intent_at: row.get(4)?,
                    outcome: row.get(5)?,
                    detail: row.get(6)?,
                    slack_ids: row.get(7)?,
                    outcome_at: row.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    // ---- snapshots, audit, identity counts, leavers ------------------------------------

    /// Saves the snapshot (JSON) a run started from.
    pub fn save_snapshot(
        &self,
        run_id: i64,
        taken_at: i64,
        document: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO snapshots (run_id, taken_at, document) VALUES (?1, ?2, ?3)",
                params![run_id, taken_at, document],
            )
            .map(|_| ())
        })
    }

    /// The snapshot a run started from.
    pub fn snapshot(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT document FROM snapshots WHERE run_id = ?1",
                [run_id],
                |row| row.get(0),
            )
            .optional()
        })
    }

    pub fn audit(&self, run_id: i64, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            {
                let mut statement = transaction.prepare(
                    "INSERT INTO audit_events (run_id, at, email, user_id, entitlement, change, rule, commit_sha, approval)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for e in events {
                    statement.execute(params![
                        run_id,
                        e.at,
                        e.email,
                        e.user_id,
                        e.entitlement,
                        e.change,
                        e.rule,
                        e.commit,
                        e.approval
                    ])?;
                }
            }
            transaction.commit()
        })
    }

    /// Every audit event of an org's runs, oldest first, with its run.
    pub fn events(&self, org: &str) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT e.run_id, e.at, e.email, e.user_id, e.entitlement, e.change, e.rule, e.commit_sha, e.approval
                 FROM audit_events e JOIN runs r ON r.id = e.run_id
                 WHERE r.org = ?1 ORDER BY e.id",
            )?;
            let rows = statement.query_map([org], |row| Ok((row.get(0)?, audit_event(row, 1)?)))?;
            rows.collect()
        })
    }

    /// Audit events about one person, oldest first.
    pub fn audit_events(&self, email: &str) -> Result<Vec<AuditEvent>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT at, email, user_id, entitlement, change, rule, commit_sha, approval
                 FROM audit_events WHERE email = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([email], |row| audit_event(row, 0))?;
            rows.collect()
        })
    }

    /// The identity counts of the last run that converged.
    pub fn last_good_identity(&self, org: &str) -> Result<Option<IdentityCounts>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT people, groups, in_scope FROM identity_counts WHERE org = ?1",
                [org],
                |row| {
                    Ok(IdentityCounts {
                        people: row.get::<_, i64>(0)? as u64,
                        groups: row.get::<_, i64>(1)? as u64,
                        in_scope: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
        })
    }

    pub fn set_last_good_identity(
        &self,
        org: &str,
        counts: &IdentityCounts,
        run_id: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO identity_counts (org, people, groups, in_scope, run_id, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (org) DO UPDATE SET people = ?2, groups = ?3, in_scope = ?4, run_id = ?5, at = ?6",
                params![
                    org,
                    counts.people as i64,
                    counts.groups as i64,
                    counts.in_scope as i64,
                    run_id,
                    now
                ],
            )
            .map(|_| ())
        })
    }

    /// Records that `email` was seen as a leaver (the first time counts).
    pub fn leaver_seen(
        &self,
        org: &str,
        email: &str,
        user_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO leavers (org, email, user_id, first_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org, email) DO NOTHING",
                params![org, email, user_id, now],
            )
            .map(|_| ())
        })
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
        self.with(|c| {
            c.execute(&sql, params![org, email, now, run_id])
                .map(|_| ())
        })
    }

    pub fn leavers(&self, org: &str) -> Result<Vec<Leaver>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT email, user_id, first_seen, deactivated_at, signed_out_at, run_id
                 FROM leavers WHERE org = ?1 ORDER BY email",
            )?;
            let rows = statement.query_map([org], |row| {
                Ok(Leaver {
                    email: row.get(0)?,
                    user_id: row.get(1)?,
                    first_seen: row.get(2)?,
                    deactivated_at: row.get(3)?,
                    signed_out_at: row.get(4)?,
                    run_id: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// A `runs` row selected as `id, org, kind, commit_sha, plan_hash, started_at, ended_at,
/// outcome`.
fn run_row(row: &rusqlite::Row) -> rusqlite::Result<Run> {
    Ok(Run {
        id: row.get(0)?,
        org: row.get(1)?,
        kind: row.get(2)?,
        commit: row.get(3)?,
        plan_hash: row.get(4)?,
        started_at: row.get(5)?,
        ended_at: row.get(6)?,
        outcome: row.get(7)?,
    })
}

/// An `audit_events` row selected as `at, email, user_id, entitlement, change, rule,
/// commit_sha, approval` from column `first` on.
fn audit_event(row: &rusqlite::Row, first: usize) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        at: row.get(first)?,
        email: row.get(first + 1)?,
        user_id: row.get(first + 2)?,
        entitlement: row.get(first + 3)?,
        change: row.get(first + 4)?,
        rule: row.get(first + 5)?,
        commit: row.get(first + 6)?,
        approval: row.get(first + 7)?,
    })
}

/// A step of a leaver's offboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaverStep {
    Deactivated,
    SignedOut,
}
