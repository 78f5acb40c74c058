//! What an identity adapter keeps between reads so the next one reads only what changed:
//! the directory in the adapter's own terms (ids, not emails) and the provider's cursor
//! (Okta's System Log position, Graph's delta links), saved as JSON in the state store.
//!
//! A full read takes its cursor before it starts, so nothing that changes during the read
//! is missed. An incremental read follows the cursor and re-reads each person it names
//! (the change feed is a hint, never data); a cursor the provider refuses or has expired,
//! or more changes than a full read would cost, means a full read instead, with the
//! reason logged.

use serde::{Deserialize, Serialize};

use super::IdentityError;
use crate::model::directory::Directory;

/// The version of the kept documents' format: a kept document of another version is
/// read again in full.
pub const FORMAT: u32 = 1;

/// How a directory was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HowRead {
    /// The whole directory, with nothing kept (a file or a SCIM server).
    Whole,
    /// Every person and group, and a cursor kept for next time.
    Full { reason: String },
    /// Only what changed since the kept cursor.
    Incremental { changes: usize },
}

impl HowRead {
    /// For the log and the plan's read line.
    pub fn describe(&self) -> String {
        match self {
            HowRead::Whole => "read whole".into(),
            HowRead::Full { reason } => format!("read in full ({reason})"),
            HowRead::Incremental { changes } => {
                format!("read incrementally ({changes} changes since the last read)")
            }
        }
    }
}

/// What an incremental read found.
pub enum Followed<K> {
    /// The kept directory brought up to date, and how many changes that took.
    Updated { kept: K, changes: usize },
    /// The cursor cannot be followed: read in full, for this reason.
    ReadInFull(String),
}

/// A directory read, with the document to keep for the next read.
pub struct Read {
    pub directory: Directory,
    pub how: HowRead,
    /// The adapter's kept document (JSON), when the adapter keeps one.
    pub kept: Option<String>,
    /// Calls made to the identity provider.
    pub calls: u64,
    /// Groups whose members are known (the rest are listed by name only).
    pub groups_read: usize,
}

impl Read {
    /// What the read did, without the directory.
    pub fn summary(&self) -> Summary {
        Summary {
            how: self.how.clone(),
            calls: self.calls,
            groups: self.directory.groups.len(),
            groups_read: self.groups_read,
        }
    }
}

/// What a read did: how, its calls, and the groups whose members it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub how: HowRead,
    pub calls: u64,
    pub groups: usize,
    pub groups_read: usize,
}

impl Summary {
    /// One line for a command's progress output.
    pub fn line(&self) -> String {
        let calls = match self.how {
            HowRead::Whole => String::new(),
            _ => format!("; {} calls", self.calls),
        };
        format!(
            "identity provider {}: {} groups, members of {} read, {} skipped (no mapping names them){calls}",
            self.how.describe(),
            self.groups,
            self.groups_read,
            self.groups - self.groups_read.min(self.groups),
        )
    }
}

/// A kept document with its format version.
#[derive(Serialize, Deserialize)]
struct Envelope<K> {
    format: u32,
    kept: K,
}

/// The kept document as JSON.
pub fn to_json<K: Serialize>(kept: K) -> String {
    serde_json::to_string(&Envelope {
        format: FORMAT,
        kept,
    })
    .expect("a kept identity document serialises")
}

/// A kept document, when it is one of this format.
pub fn from_json<K: for<'de> Deserialize<'de>>(text: &str) -> Option<K> {
    serde_json::from_str::<Envelope<K>>(text)
        .ok()
        .filter(|e| e.format == FORMAT)
        .map(|e| e.kept)
}

/// Refuses an empty directory rather than read it as "everyone left".
pub fn not_empty(source_name: &str, people: usize) -> Result<(), IdentityError> {
    if people == 0 {
        return Err(IdentityError::Read {
            source_name: source_name.to_string(),
            message: "the identity provider lists nobody; an empty directory is refused rather than read as \"everyone left\"".into(),
        });
    }
    Ok(())
}
