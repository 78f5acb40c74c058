//! The shared engine: PostgreSQL, for several controller replicas and for auditors who
//! back up a database they already run. TLS goes through rustls, verified against the
//! system's CAs (or `SSL_CERT_FILE`), or against the CA file `sslrootcert=` names as
//! libpq's does; `sslmode` in the URL says whether TLS is required.
//! The password comes from `SLACK_GITOPS_STATE_PASSWORD`, the file named by
//! `SLACK_GITOPS_STATE_PASSWORD_FILE`, or the URL, and is never shown: [`redact`] is
//! what messages print.
//!
//! The store's API is synchronous (SQLite is), and callers run on the async runtime, so
//! the connection lives on a thread of its own and each request is sent to it. A
//! connection found closed is opened again, retrying for a while (a database restart);
//! a transaction that failed before its `COMMIT` was sent is retried once on the new
//! connection, one that failed during it is not (it may have committed).

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Fence;
use super::engine::{
    Done, Engine, EngineError, FENCE_SQL, Row, Statement, Value, check_fence, dollar_placeholders,
};

/// How long a request waits for the database to come back before it fails.
const RECONNECT_FOR: Duration = Duration::from_secs(15);

/// Serializes migrations of one database (`pg_advisory_xact_lock`'s key).
const MIGRATION_LOCK: i64 = 0x5347_4f50_535f_4d49;

type Job = Box<dyn FnOnce(&mut Session) + Send>;

pub struct Postgres {
    shown: String,
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// Whether `spec` names a PostgreSQL database rather than a file.
pub fn is_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// The URL without a password, for messages.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail: Vec<String> = tail
        .split('&')
        .map(|part| match part.split_once("password=") {
            Some((before, _)) => format!("{before}password=***"),
            None => part.to_string(),
        })
        .collect();
    format!("{scheme}://{authority}{}", tail.join("&"))
}

impl Postgres {
    /// Connects to `url`, with `password` if given (else the URL's), and keeps the
    /// connection on its own thread.
    pub fn connect(url: &str, password: Option<String>) -> Result<Postgres, EngineError> {
        let shown = redact(url);
        let (url, root) = take_param(url, "sslrootcert");
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| EngineError::Database(format!("{shown} is not a PostgreSQL URL: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives_idle(Duration::from_secs(10));
        config.tcp_user_timeout(Duration::from_secs(30));
        // A process stopped mid-transaction (SIGSTOP, a frozen VM) must not hold the
        // lease row against the next leader: the server ends such a session, and a
        // statement waits for a lock only so long.
        let mut options = config.get_options().unwrap_or_default().to_string();
        options.push_str(" -c idle_in_transaction_session_timeout=2000 -c lock_timeout=5000");
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name("slack-gitops");
        }
        let session = Session {
            config,
            tls: tls(root.as_deref())?,
            client: None,
            shown: shown.clone(),
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("state-store".into())
            .spawn(move || {
                let mut session = session;
                for job in queue {
                    job(&mut session);
                }
            })
            .map_err(|e| EngineError::Database(e.to_string()))?;
        let postgres = Postgres {
            shown,
            jobs: Mutex::new(jobs),
        };
        // The first connection is made on the connection's thread too: the driver runs
        // its own runtime, which cannot start inside the caller's.
        postgres.call(|session| session.client(Duration::ZERO).map(|_| ()))?;
        Ok(postgres)
    }

    /// Runs `work` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Session) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session| {
            let _ = reply.send(work(session));
        });
        let stopped =
            || EngineError::Database(format!("{}: the connection thread stopped", self.shown));
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// The URL without the query parameter `name`, and its value (which the driver does not
/// know).
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|part| match part.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// rustls with the CA file `root` names, else the system's roots (and `SSL_CERT_FILE`,
/// `SSL_CERT_DIR`).
fn tls(root: Option<&str>) -> Result<MakeRustlsConnect, EngineError> {
    let config = crate::tls::client_config(root)
        .map_err(|e| EngineError::Database(format!("sslrootcert: {e}")))?;
    Ok(MakeRustlsConnect::new(config))
}

/// The connection, owned by its thread.
struct Session {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    client: Option<postgres::Client>,
    shown: String,
}

/// A transaction's failure, and whether its `COMMIT` had been sent.
struct Failed {
    error: EngineError,
    committing: bool,
}

impl From<EngineError> for Failed {
    fn from(error: EngineError) -> Failed {
        Failed {
            error,
            committing: false,
        }
    }
}

impl Session {
    /// The open connection, opening it (retrying for `patience`) when there is none.
    fn client(&mut self, patience: Duration) -> Result<&mut postgres::Client, EngineError> {
        if self
            .client
            .as_ref()
            .is_some_and(postgres::Client::is_closed)
        {
            tracing::warn!(store = %self.shown, "the state store's connection closed; reconnecting");
            self.client = None;
        }
        if self.client.is_none() {
            let deadline = Instant::now() + patience;
            let mut wait = Duration::from_millis(100);
            let client = loop {
                match self.config.connect(self.tls.clone()) {
                    Ok(client) => break client,
                    Err(error) if Instant::now() + wait < deadline => {
                        tracing::debug!(store = %self.shown, %error, "cannot connect yet");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(error) => {
                        return Err(EngineError::Database(format!(
                            "cannot connect to {}: {}",
                            self.shown,
                            describe(&error)
                        )));
                    }
                }
            };
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `attempt` on a connection; once more on a new one when the first failed on a
    /// closed connection before its `COMMIT` was sent.
    fn retrying<T>(
        &mut self,
        attempt: impl Fn(&mut postgres::Client) -> Result<T, Failed>,
    ) -> Result<T, EngineError> {
        let client = self.client(RECONNECT_FOR)?;
        match attempt(client) {
            Ok(value) => Ok(value),
            Err(failed) if !failed.committing && client.is_closed() => {
                let client = self.client(RECONNECT_FOR)?;
                attempt(client).map_err(|f| f.error)
            }
            Err(failed) => Err(failed.error),
        }
    }
}

fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

fn database(error: postgres::Error) -> EngineError {
    EngineError::Database(describe(&error))
}

/// A parameter as PostgreSQL takes it: NULL fits any column.
#[derive(Debug)]
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn row(row: &postgres::Row) -> Row {
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let t = column.type_();
            let value = if *t == Type::INT8 {
                row.get::<_, Option<i64>>(i).map(Value::Int)
            } else if *t == Type::INT4 {
                row.get::<_, Option<i32>>(i).map(|v| Value::Int(v.into()))
            } else if *t == Type::INT2 {
                row.get::<_, Option<i16>>(i).map(|v| Value::Int(v.into()))
            } else if *t == Type::BOOL {
                row.get::<_, Option<bool>>(i).map(|v| Value::Int(v.into()))
            } else {
                row.try_get::<_, Option<String>>(i)
                    .ok()
                    .flatten()
                    .map(Value::Text)
            };
            value.unwrap_or(Value::Null)
        })
        .collect();
    Row(values)
}

/// Runs one statement in `transaction`: rows for a query or `RETURNING`, else a count.
fn run(transaction: &mut postgres::Transaction, statement: &Statement) -> Result<Done, Failed> {
    let sql = dollar_placeholders(&statement.sql);
    let params: Vec<Param> = statement.params.iter().map(Param).collect();
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
    let returns = sql.trim_start().starts_with("SELECT") || sql.contains("RETURNING");
    if returns {
        let rows = transaction.query(&sql, &params).map_err(database)?;
        Ok(Done {
            changed: rows.len() as u64,
            rows: rows.iter().map(row).collect(),
        })
    } else {
        let changed = transaction.execute(&sql, &params).map_err(database)?;
        Ok(Done {
            rows: Vec::new(),
            changed,
        })
    }
}

fn transact(
    client: &mut postgres::Client,
    fence: Option<&Fence>,
    statements: &[Statement],
) -> Result<Vec<Done>, Failed> {
    let mut transaction = client.transaction().map_err(database)?;
    if let Some(fence) = fence {
        let lease = run(
            &mut transaction,
            &Statement::new(
                format!("{FENCE_SQL} FOR SHARE"),
                vec![fence.name.as_str().into()],
            ),
        )?;
        check_fence(fence, lease.rows.first())?;
    }
    let mut done = Vec::with_capacity(statements.len());
    for statement in statements {
        done.push(run(&mut transaction, statement)?);
    }
    transaction.commit().map_err(|e| Failed {
        error: database(e),
        committing: true,
    })?;
    Ok(done)
}

fn migrate(client: &mut postgres::Client, migrations: &[String]) -> Result<i64, Failed> {
    let mut transaction = client.transaction().map_err(database)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(database)?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .map_err(database)?;
    let found: i64 = transaction
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(database)?
        .map_or(0, |row| row.get(0));
    if found > migrations.len() as i64 {
        return Err(EngineError::TooNew(found).into());
    }
    for migration in migrations.iter().skip(found as usize) {
        transaction.batch_execute(migration).map_err(database)?;
    }
    let newest = migrations.len() as i64;
    transaction
        .execute("DELETE FROM schema_version", &[])
        .map_err(database)?;
    transaction
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&newest],
        )
        .map_err(database)?;
    transaction.commit().map_err(|e| Failed {
        error: database(e),
        committing: true,
    })?;
    Ok(found)
}

impl Engine for Postgres {
    fn transaction(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Done>, EngineError> {
        let fence = fence.cloned();
        self.call(move |session| {
            session.retrying(|client| transact(client, fence.as_ref(), &statements))
        })
    }

    fn migrate(&self, migrations: &[&str]) -> Result<i64, EngineError> {
        let migrations: Vec<String> = migrations.iter().map(|m| m.to_string()).collect();
        self.call(move |session| session.retrying(|client| migrate(client, &migrations)))
    }

    fn now_sql(&self) -> &'static str {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("postgres://gitops:s3cret@db.internal:5432/state?sslmode=require"),
            "postgres://gitops@db.internal:5432/state?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/state?user=a&password=s3cret&sslmode=require"),
            "postgresql://db/state?user=a&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://db/state"), "postgres://db/state");
    }

    #[test]
    fn the_ca_file_is_taken_out_of_the_url() {
        assert_eq!(
            take_param(
                "postgres://db/s?sslmode=require&sslrootcert=/ca.pem",
                "sslrootcert"
            ),
            (
                "postgres://db/s?sslmode=require".to_string(),
                Some("/ca.pem".to_string())
            )
        );
        assert_eq!(
            take_param("postgres://db/s?sslrootcert=/ca.pem", "sslrootcert"),
            ("postgres://db/s".to_string(), Some("/ca.pem".to_string()))
        );
        assert_eq!(take_param("postgres://db/s", "sslrootcert").1, None);
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("postgres://db/state"));
        assert!(is_url("postgresql://db/state"));
        assert!(!is_url("/var/lib/slack-gitops/state.db"));
    }
}
