//! What the store asks of a database: run a few statements in one transaction, after
//! checking the caller still holds its lease when it is fenced. The SQL is written once,
//! with `?N` placeholders; each engine binds them its own way. Values are integers, text
//! and NULL: everything the store keeps is one of those.

use super::Fence;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_string())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Value {
        Value::Text(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// One statement and its parameters, `?1` being the first.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// What one statement gave back: its rows (for a `SELECT` or `RETURNING`) and how many
/// rows it changed.
#[derive(Debug, Clone, Default)]
pub struct Done {
    pub rows: Vec<Row>,
    pub changed: u64,
}

/// A result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn int(&self, index: usize) -> i64 {
        self.opt_int(index).unwrap_or_default()
    }

    pub fn opt_int(&self, index: usize) -> Option<i64> {
        match self.0.get(index) {
            Some(Value::Int(value)) => Some(*value),
            Some(Value::Text(text)) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn text(&self, index: usize) -> String {
        self.opt_text(index).unwrap_or_default()
    }

    pub fn opt_text(&self, index: usize) -> Option<String> {
        match self.0.get(index) {
            Some(Value::Text(text)) => Some(text.clone()),
            Some(Value::Int(value)) => Some(value.to_string()),
            _ => None,
        }
    }
}

/// Why an engine could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The database said no, or could not be reached.
    #[error("{0}")]
    Database(String),
    /// The lease named in the fence has moved on: a newer leader holds it.
    #[error("{0}")]
    Fenced(String),
    /// The schema is newer than this build.
    #[error("schema version {0}")]
    TooNew(i64),
}

/// A database the store runs on.
pub trait Engine: Send + Sync {
    /// Runs `statements` in one transaction, in order; with a fence, first checks that
    /// the lease it names is still held at its generation, holding the lease row against
    /// a takeover until the transaction ends, and runs nothing when it is not.
    fn transaction(
        &self,
        fence: Option<&Fence>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Done>, EngineError>;

    /// Brings the schema to the newest of `migrations` (the n-th takes version n to n+1),
    /// one migrator at a time; returns the version found.
    fn migrate(&self, migrations: &[&str]) -> Result<i64, EngineError>;

    /// The SQL for "now" in unix milliseconds, by the database's clock.
    fn now_sql(&self) -> &'static str;

    /// For messages: a path, or a URL without its password.
    fn describe(&self) -> String;
}

/// The fence's check, shared by the engines: the lease row's holder and generation.
pub const FENCE_SQL: &str = "SELECT holder, generation FROM leases WHERE name = ?1";

/// Whether the fence's lease row (`holder, generation`, if any) still names it.
pub fn check_fence(fence: &Fence, row: Option<&Row>) -> Result<(), EngineError> {
    match row {
        Some(row) if row.text(0) == fence.holder && row.int(1) == fence.generation => Ok(()),
        Some(row) => Err(EngineError::Fenced(format!(
            "the lease {} moved to {} (generation {}); this process held generation {}",
            fence.name,
            row.text(0),
            row.int(1),
            fence.generation
        ))),
        None => Err(EngineError::Fenced(format!(
            "the lease {} is not held",
            fence.name
        ))),
    }
}

/// `?N` placeholders as PostgreSQL's `$N`. The store's SQL has no `?` inside literals.
pub fn dollar_placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?2 WHERE id = ?1"),
            "UPDATE t SET a = $2 WHERE id = $1"
        );
    }

    #[test]
    fn a_fence_holds_only_at_its_generation() {
        let fence = Fence {
            name: "controller".into(),
            holder: "a".into(),
            generation: 3,
        };
        let row = |holder: &str, generation| Row(vec![holder.into(), Value::Int(generation)]);
        assert!(check_fence(&fence, Some(&row("a", 3))).is_ok());
        let moved = check_fence(&fence, Some(&row("b", 4))).unwrap_err();
        assert!(moved.to_string().contains("moved to b (generation 4)"));
        assert!(check_fence(&fence, Some(&row("a", 4))).is_err());
        assert!(check_fence(&fence, None).is_err());
    }
}
