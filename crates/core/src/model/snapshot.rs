//! The snapshot document: live Slack and the identity directory as they were at one
//! moment, versioned, written by `snapshot --out` and by every apply before its first
//! write, and read back by `restore`. Pure: text in, text out.

use serde::{Deserialize, Serialize};

use super::directory::Directory;
use super::live::Live;

/// The version of the snapshot document. Bump it when a field changes meaning.
pub const SNAPSHOT_VERSION: u32 = 1;

/// How many calls reading the snapshot took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCalls {
    pub made: u64,
    pub minimum: u64,
    pub rate_limited: u64,
    pub retries: u64,
}

/// A saved state of Slack and the identity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// Unix seconds.
    pub taken_at: u64,
    pub calls: ReadCalls,
    pub live: Live,
    pub directory: Directory,
}

impl Snapshot {
    pub fn new(taken_at: u64, calls: ReadCalls, live: Live, directory: Directory) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            taken_at,
            calls,
            live,
            directory,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a snapshot serialises");
        text.push('\n');
        text
    }

    /// Reads a snapshot document; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Snapshot, String> {
        let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot version {} is not {SNAPSHOT_VERSION}, the version this build reads",
                snapshot.version
            ));
        }
        Ok(snapshot)
    }
}
