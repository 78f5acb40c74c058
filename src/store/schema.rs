//! The store's tables, written once in SQLite's dialect; [`postgres`] turns them into
//! PostgreSQL's (64-bit integers, identity keys). The n-th migration takes the schema
//! from version n to n+1; a database is migrated forward when it is opened.

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migrations in SQLite's dialect.
pub const MIGRATIONS: &[&str] = &[
    r"
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
    run_id INTEGER NOT NULL PRIMARY KEY REFERENCES runs(id),
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
",
    // Leader election and fencing: the lease, and the generation each write ran under.
    r"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    address TEXT,
    generation INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    renewed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
ALTER TABLE runs ADD COLUMN generation INTEGER;
ALTER TABLE journal ADD COLUMN generation INTEGER;
ALTER TABLE locks ADD COLUMN generation INTEGER;
",
    // The identity provider's directory as an adapter keeps it between reads, with its
    // cursor (the System Log's position, Graph's delta links): a cache of the provider,
    // written by whoever reads it, so unfenced.
    r"
CREATE TABLE identity_kept (
    org TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    document TEXT NOT NULL,
    full_read_at INTEGER NOT NULL,
    read_at INTEGER NOT NULL
);
",
    // The live Slack mirror: Slack's events as they arrived (any replica takes them,
    // deduplicated by event id; the leader drains them), and one row per mirrored
    // object with the time of its last authoritative read and, while an event says it
    // changed since, the time it went stale.
    r"
CREATE TABLE slack_events (
    org TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    drained_at INTEGER,
    PRIMARY KEY (org, event_id)
);
CREATE INDEX slack_events_pending ON slack_events (org, drained_at, received_at);
CREATE TABLE slack_mirror (
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    document TEXT,
    date_update INTEGER,
    verified_at INTEGER,
    stale_since INTEGER,
    listed_at INTEGER,
    generation INTEGER,
    PRIMARY KEY (org, kind, id)
);
",
    // The health of the Slack event stream, shared by the replicas: the newest canary
    // sent, the watermark (when the newest canary that came back was sent), since when
    // one is overdue, and the last gap (copies verified before it count as unverified).
    r"
CREATE TABLE slack_stream (
    org TEXT PRIMARY KEY,
    gap_at INTEGER,
    canary_nonce INTEGER,
    canary_sent_at INTEGER,
    watermark INTEGER,
    frozen_since INTEGER
);
",
    // Filling a gap from Slack's Audit Logs needs Slack's clock: the `event_time` of the
    // newest canary that came back, and, while a gap is unfilled, that time as it was
    // when the gap began (events may have been lost since).
    r"
ALTER TABLE slack_stream ADD COLUMN watermark_slack INTEGER;
ALTER TABLE slack_stream ADD COLUMN gap_since_slack INTEGER;
",
];

/// A migration in PostgreSQL's dialect: integers are 64-bit, and a table's own `id` is
/// an identity column.
pub fn postgres(migration: &str) -> String {
    migration
        .replace(
            "\n    id INTEGER PRIMARY KEY",
            "\n    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER", "BIGINT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_keys_are_identities_and_integers_are_64_bit() {
        let first = postgres(MIGRATIONS[0]);
        assert!(first.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    org"));
        assert!(first.contains("run_id BIGINT NOT NULL PRIMARY KEY REFERENCES runs(id)"));
        assert!(!first.contains("INTEGER"));
    }
}
