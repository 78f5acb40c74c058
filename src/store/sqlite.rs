//! The embedded engine: one SQLite file in WAL mode with `synchronous=FULL`, so a row
//! that was written survives a crash or `kill -9`; created with mode 0600. Write
//! transactions are `IMMEDIATE`: the file's write lock is taken first, which is what
//! holds a fenced lease row against a takeover.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use super::Fence;
use super::engine::{Done, Engine, EngineError, FENCE_SQL, Row, Statement, Value, check_fence};

pub struct Sqlite {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl Sqlite {
    /// Opens the file at `path`, creating it (mode 0600) and its directory when missing.
    pub fn open(path: &Path) -> Result<Sqlite, EngineError> {
        let failed = |e: &dyn std::fmt::Display| EngineError::Database(e.to_string());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
        }
        if !path.exists() {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(path).map_err(|e| failed(&e))?;
        }
        let connection = Connection::open(path).map_err(|e| failed(&e))?;
        let setup = || -> rusqlite::Result<()> {
            connection.busy_timeout(std::time::Duration::from_secs(10))?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.pragma_update(None, "foreign_keys", "ON")
        };
        setup().map_err(|e| failed(&e))?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection)
    }
}

fn database(error: rusqlite::Error) -> EngineError {
    EngineError::Database(error.to_string())
}

/// Runs one statement, collecting its rows (if any) and the rows it changed.
fn run(connection: &Connection, statement: &Statement) -> rusqlite::Result<Done> {
    let mut prepared = connection.prepare_cached(&statement.sql)?;
    let params = rusqlite::params_from_iter(statement.params.iter().map(|value| match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
    }));
    let width = prepared.column_count();
    let mut rows = Vec::new();
    let mut cursor = prepared.query(params)?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(width);
        for index in 0..width {
            values.push(match row.get_ref(index)? {
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(r) => Value::Int(r as i64),
                ValueRef::Null | ValueRef::Blob(_) => Value::Null,
            });
        }
        rows.push(Row(values));
    }
    drop(cursor);
    Ok(Done {
        rows,
        changed: connection.changes(),
    })
}

impl Engine for Sqlite {
    fn transaction(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Done>, EngineError> {
        self.with(|c| {
            let transaction = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(database)?;
            if let Some(fence) = fence {
                let lease = run(
                    &transaction,
                    &Statement::new(FENCE_SQL, vec![fence.name.as_str().into()]),
                )
                .map_err(database)?;
                check_fence(fence, lease.rows.first())?;
            }
            let mut done = Vec::with_capacity(statements.len());
            for statement in &statements {
                done.push(run(&transaction, statement).map_err(database)?);
            }
            transaction.commit().map_err(database)?;
            Ok(done)
        })
    }

    fn migrate(&self, migrations: &[&str]) -> Result<i64, EngineError> {
        self.with(|c| {
            let transaction = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(database)?;
            let found: i64 = transaction
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(database)?;
            if found > migrations.len() as i64 {
                return Err(EngineError::TooNew(found));
            }
            for (version, migration) in migrations.iter().enumerate().skip(found as usize) {
                transaction.execute_batch(migration).map_err(database)?;
                transaction
                    .pragma_update(None, "user_version", version as i64 + 1)
                    .map_err(database)?;
            }
            transaction.commit().map_err(database)?;
            Ok(found)
        })
    }

    fn now_sql(&self) -> &'static str {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
