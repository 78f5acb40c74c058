//! The live Slack mirror's tables: events as they arrived (`slack_events`) and one row
//! per mirrored object (`slack_mirror`). Rows are keyed by a scope: one controller
//! deployment (its lease name) mirrors one Slack org.
//!
//! Any replica takes events (unfenced: an insert that a duplicate cannot repeat); only
//! the leader drains them and writes rows (fenced). Events only ever mark rows stale,
//! keeping the earliest time; a full read verifies every row it read, unless an event
//! newer than the read's start says it changed since.

use super::engine::{Statement, Value};
use super::{Store, StoreError};
use crate::mirror::stream::Stream;
use crate::mirror::{Effect, Inbound, ObjectKind, Row};

/// Events waiting to be drained, at most; beyond, new events are refused (and the
/// stream counts as broken: the refresher must re-read).
pub const MAX_PENDING_EVENTS: i64 = 100_000;
/// Rows written per statement in a full read's write-through.
const ROWS_PER_STATEMENT: usize = 100;

/// What became of an offered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    New,
    /// Already taken (Slack retried, or a duplicate).
    Duplicate,
    /// Too many events wait to be drained.
    Full,
}

/// An event kept until the leader drains it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub event_id: String,
    pub kind: String,
    /// Unix seconds, Slack's.
    pub event_time: i64,
    /// Unix milliseconds, ours.
    pub received_at: i64,
    pub body: String,
}

/// A mirrored object.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorRow {
    pub kind: ObjectKind,
    pub id: String,
    /// The object as last read; `None` when known only from an event.
    pub document: Option<String>,
    pub date_update: Option<i64>,
    /// Unix milliseconds of the last authoritative read.
    pub verified_at: Option<i64>,
    /// Unix milliseconds since when an event says it may differ from the copy.
    pub stale_since: Option<i64>,
}

/// The mirror at a glance, for `/status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MirrorSummary {
    pub objects: u64,
    /// Rows an event marked stale, or never read.
    pub stale: u64,
    /// Unix milliseconds of the oldest verification of a clean row.
    pub oldest_verified_at: Option<i64>,
    pub pending_events: u64,
}

impl Store {
    /// Keeps an event for the leader, once per event id.
    pub fn offer_slack_event(
        &self,
        scope: &str,
        event: &Inbound,
        body: &str,
        now: i64,
    ) -> Result<Offered, StoreError> {
        // A soft bound: replicas taking events at once may pass it by a few.
        let waiting = self.unfenced(
            "SELECT COUNT(*) FROM slack_events WHERE org = ?1 AND drained_at IS NULL",
            vec![scope.into()],
        )?;
        if waiting.first().map_or(0, |row| row.int(0)) >= MAX_PENDING_EVENTS {
            let known = self.unfenced(
                "SELECT 1 FROM slack_events WHERE org = ?1 AND event_id = ?2",
                vec![scope.into(), (&event.event_id).into()],
            )?;
            return Ok(if known.is_empty() {
                Offered::Full
            } else {
                Offered::Duplicate
            });
        }
        let inserted = self.unfenced_change(
            "INSERT INTO slack_events (org, event_id, kind, event_time, received_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org, event_id) DO NOTHING",
            vec![
                scope.into(),
                (&event.event_id).into(),
                (&event.kind).into(),
                event.event_time.into(),
                now.into(),
                body.into(),
            ],
        )?;
        Ok(if inserted > 0 {
            Offered::New
        } else {
            Offered::Duplicate
        })
    }

    /// Events not drained yet, oldest first, at most `limit`.
    pub fn pending_slack_events(
        &self,
        scope: &str,
        limit: i64,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let rows = self.unfenced(
            "SELECT event_id, kind, event_time, received_at, body FROM slack_events
             WHERE org = ?1 AND drained_at IS NULL ORDER BY received_at, event_id LIMIT ?2",
            vec![scope.into(), limit.into()],
        )?;
        Ok(rows
            .iter()
            .map(|row| PendingEvent {
                event_id: row.text(0),
                kind: row.text(1),
                event_time: row.int(2),
                received_at: row.int(3),
                body: row.text(4),
            })
            .collect())
    }

    /// Applies drained events' effects, each with its time and when it was received
    /// (those that mark rows stale; the caller leaves out
    /// a `subteam_updated` that agrees with a delta applied in place) and marks them
    /// drained, in one fenced transaction. A delta applies in place only where the row is clean and at the
    /// delta's `previous` update (`applied` carries the new member documents the caller
    /// computed from the rows it read); otherwise the usergroup is marked stale.
    pub fn drain_slack_events(
        &self,
        scope: &str,
        drained: &[String],
        effects: &[(Effect, i64, i64)],
        applied: &[(String, i64, i64, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let generation = self.generation();
        let mut statements = Vec::new();
        for (id, previous, update, document) in applied {
            statements.push(Statement::new(
                "UPDATE slack_mirror SET document = ?4, date_update = ?5, generation = ?6
                 WHERE org = ?1 AND kind = 'usergroup' AND id = ?2 AND date_update = ?3
                   AND stale_since IS NULL AND document IS NOT NULL",
                vec![
                    scope.into(),
                    id.into(),
                    (*previous).into(),
                    document.into(),
                    (*update).into(),
                    generation.clone(),
                ],
            ));
        }
        for (effect, at, received) in effects {
            statements.push(stale_statement(
                scope,
                effect,
                *at,
                *received,
                generation.clone(),
            ));
        }
        for event_id in drained {
            statements.push(Statement::new(
                "UPDATE slack_events SET drained_at = ?3 WHERE org = ?1 AND event_id = ?2",
                vec![scope.into(), event_id.into(), now.into()],
            ));
        }
        self.write(statements).map(|_| ())
    }

    /// Forgets drained events received before `before` (a duplicate after that is
    /// taken again, and costs one more re-read at most).
    pub fn prune_slack_events(&self, scope: &str, before: i64) -> Result<(), StoreError> {
        self.unfenced_change(
            "DELETE FROM slack_events WHERE org = ?1 AND drained_at IS NOT NULL AND received_at < ?2",
            vec![scope.into(), before.into()],
        )
        .map(|_| ())
    }

    /// Writes through a full read of Slack that started at `started_at`: every row it
    /// read is verified at that time (unless an event after it marked the row stale, or
    /// the row holds a newer copy), and a row it did not list but an earlier read did is
    /// gone from Slack and deleted.
    pub fn mirror_full_read(
        &self,
        scope: &str,
        rows: &[Row],
        started_at: i64,
    ) -> Result<(), StoreError> {
        let mut statements = self.upserts(scope, rows, started_at);
        statements.push(Statement::new(
            "DELETE FROM slack_mirror WHERE org = ?1 AND listed_at < ?2 AND stale_since IS NULL",
            vec![scope.into(), started_at.into()],
        ));
        self.write(statements).map(|_| ())
    }

    /// Writes through a read of some objects (the refresher's) that started at
    /// `started_at`, as a full read does for what it read; and forgets `gone`, objects
    /// the read found Slack no longer has.
    pub fn mirror_partial_read(
        &self,
        scope: &str,
        rows: &[Row],
        gone: &[(ObjectKind, String)],
        started_at: i64,
    ) -> Result<(), StoreError> {
        let mut statements = self.upserts(scope, rows, started_at);
        for (kind, id) in gone {
            statements.push(Statement::new(
                "DELETE FROM slack_mirror WHERE org = ?1 AND kind = ?2 AND id = ?3
                   AND (stale_since IS NULL OR stale_since <= ?4)",
                vec![
                    scope.into(),
                    kind.as_str().into(),
                    id.into(),
                    started_at.into(),
                ],
            ));
        }
        self.write(statements).map(|_| ())
    }

    fn upserts(&self, scope: &str, rows: &[Row], started_at: i64) -> Vec<Statement> {
        let generation = self.generation();
        rows.chunks(ROWS_PER_STATEMENT)
            .map(|chunk| upsert(scope, chunk, started_at, &generation))
            .collect()
    }

    /// What the refresher reads next: the longest-stale row of `kinds`, else the one
    /// verified longest ago (never-read rows first).
    pub fn mirror_due(
        &self,
        scope: &str,
        kinds: &[ObjectKind],
    ) -> Result<Option<MirrorRow>, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
        let rows = self.unfenced(
            &format!(
                "SELECT {COLUMNS} FROM slack_mirror
                 WHERE org = ?1 AND kind IN ({})
                 ORDER BY CASE WHEN stale_since IS NULL AND verified_at IS NOT NULL THEN 1 ELSE 0 END,
                          COALESCE(stale_since, verified_at, 0), kind, id
                 LIMIT 1",
                kinds.join(", "),
            ),
            vec![scope.into()],
        )?;
        Ok(rows.first().and_then(mirror_row))
    }

    /// Every row of the scope.
    pub fn mirror_rows(&self, scope: &str) -> Result<Vec<MirrorRow>, StoreError> {
        let rows = self.unfenced(
            &format!("SELECT {COLUMNS} FROM slack_mirror WHERE org = ?1 ORDER BY kind, id"),
            vec![scope.into()],
        )?;
        Ok(rows.iter().filter_map(mirror_row).collect())
    }

    /// One usergroup row, for applying a delta.
    pub fn mirror_usergroup(&self, scope: &str, id: &str) -> Result<Option<MirrorRow>, StoreError> {
        let rows = self.unfenced(
            &format!(
                "SELECT {COLUMNS} FROM slack_mirror WHERE org = ?1 AND kind = 'usergroup' AND id = ?2"
            ),
            vec![scope.into(), id.into()],
        )?;
        Ok(rows.first().and_then(mirror_row))
    }

    /// Records a gap in the event stream at `at` (unix ms): copies verified before it
    /// count as unverified. A later gap moves it forward, never back. The window the
    /// Audit Logs must cover begins at the watermark (Slack's clock), or where the
    /// previous gap's began while copies read before that gap are still clean.
    pub fn slack_stream_gap(&self, scope: &str, at: i64) -> Result<(), StoreError> {
        self.unfenced_change(
            &format!(
                "INSERT INTO slack_stream (org, gap_at) VALUES (?1, ?2)
             ON CONFLICT (org) DO UPDATE SET
                gap_since_slack = CASE WHEN slack_stream.gap_at IS NULL OR NOT EXISTS ({UNSETTLED})
                    THEN slack_stream.watermark_slack ELSE slack_stream.gap_since_slack END,
                gap_at = excluded.gap_at
             WHERE slack_stream.gap_at IS NULL OR slack_stream.gap_at < excluded.gap_at"
            ),
            vec![scope.into(), at.into()],
        )
        .map(|_| ())
    }

    /// The event stream's state.
    pub fn slack_stream(&self, scope: &str) -> Result<Stream, StoreError> {
        let rows = self.unfenced(
            "SELECT gap_at, canary_nonce, canary_sent_at, watermark, frozen_since,
                    watermark_slack, gap_since_slack
             FROM slack_stream WHERE org = ?1",
            vec![scope.into()],
        )?;
        Ok(rows
            .first()
            .map(|row| Stream {
                gap_at: row.opt_int(0),
                canary_nonce: row.opt_int(1),
                canary_sent_at: row.opt_int(2),
                watermark: row.opt_int(3),
                frozen_since: row.opt_int(4),
                watermark_slack: row.opt_int(5),
                gap_since_slack: row.opt_int(6),
            })
            .unwrap_or_default())
    }

    /// A canary was sent at `at` with `nonce`; an earlier one not back by now is
    /// overdue, and freezes the stream from when it was sent.
    pub fn canary_sent(&self, scope: &str, nonce: i64, at: i64) -> Result<(), StoreError> {
        self.unfenced_change(
            "INSERT INTO slack_stream (org, canary_nonce, canary_sent_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (org) DO UPDATE SET
                frozen_since = CASE
                    WHEN slack_stream.frozen_since IS NOT NULL THEN slack_stream.frozen_since
                    WHEN slack_stream.canary_sent_at IS NOT NULL
                         AND (slack_stream.watermark IS NULL
                              OR slack_stream.watermark < slack_stream.canary_sent_at)
                    THEN slack_stream.canary_sent_at
                    ELSE NULL END,
                canary_nonce = excluded.canary_nonce,
                canary_sent_at = excluded.canary_sent_at",
            vec![scope.into(), nonce.into(), at.into()],
        )
        .map(|_| ())
    }

    /// The canary `nonce` came back at `now`, its event dated `event_time` by Slack
    /// (unix seconds): the watermark moves to when it was sent, and a freeze ends in a
    /// gap at `now`. Gives whether it was the newest canary.
    pub fn canary_seen(
        &self,
        scope: &str,
        nonce: i64,
        event_time: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Every right-hand side reads the row as it was before this update.
        let changed = self.unfenced_change(
            &format!(
                "UPDATE slack_stream SET
                watermark = canary_sent_at,
                watermark_slack = ?4,
                gap_since_slack = CASE
                    WHEN frozen_since IS NOT NULL AND (gap_at IS NULL OR NOT EXISTS ({UNSETTLED}))
                    THEN watermark_slack
                    ELSE gap_since_slack END,
                gap_at = CASE
                    WHEN frozen_since IS NOT NULL AND (gap_at IS NULL OR gap_at < ?3) THEN ?3
                    ELSE gap_at END,
                frozen_since = NULL
             WHERE org = ?1 AND canary_nonce = ?2"
            ),
            vec![scope.into(), nonce.into(), now.into(), event_time.into()],
        )?;
        Ok(changed > 0)
    }

    /// Fills the gap at `gap_at` from Slack's Audit Logs: each object they name as
    /// changed since the gap began (`stale`: kind, id) is marked stale unless a read
    /// after the gap already verified it, and the gap is forgotten, in one transaction.
    /// A newer gap is left alone: nothing is written when one is recorded, and one
    /// recorded while this writes keeps its place (the marks stay: one more read at
    /// most). Gives whether the gap was filled.
    pub fn fill_slack_gap(
        &self,
        scope: &str,
        gap_at: i64,
        stale: &[(ObjectKind, String)],
        now: i64,
    ) -> Result<bool, StoreError> {
        if self.slack_stream(scope)?.gap_at != Some(gap_at) {
            return Ok(false);
        }
        let generation = self.generation();
        let mut statements: Vec<Statement> = stale
            .iter()
            .map(|(kind, id)| {
                let effect = Effect::Stale {
                    kind: *kind,
                    id: id.clone(),
                };
                stale_statement(scope, &effect, now, gap_at, generation.clone())
            })
            .collect();
        statements.push(Statement::new(
            "UPDATE slack_stream SET gap_at = NULL, gap_since_slack = NULL
             WHERE org = ?1 AND gap_at = ?2",
            vec![scope.into(), gap_at.into()],
        ));
        let done = self.write(statements)?;
        Ok(done.last().is_some_and(|d| d.changed > 0))
    }

    /// Counts for `/status` and the metrics.
    pub fn mirror_summary(&self, scope: &str) -> Result<MirrorSummary, StoreError> {
        let rows = self.unfenced(
            "SELECT COUNT(*),
                    CAST(COALESCE(SUM(CASE WHEN stale_since IS NOT NULL OR verified_at IS NULL
                                           THEN 1 ELSE 0 END), 0) AS BIGINT),
                    MIN(CASE WHEN stale_since IS NULL THEN verified_at END),
                    (SELECT COUNT(*) FROM slack_events WHERE org = ?1 AND drained_at IS NULL)
             FROM slack_mirror WHERE org = ?1",
            vec![scope.into()],
        )?;
        Ok(rows
            .first()
            .map(|row| MirrorSummary {
                objects: row.int(0) as u64,
                stale: row.int(1) as u64,
                oldest_verified_at: row.opt_int(2),
                pending_events: row.int(3) as u64,
            })
            .unwrap_or_default())
    }
}

/// The clean copies a recorded gap still taints (read before it): while there are any,
/// a new gap's window begins where the old one's did. (In a statement on
/// `slack_stream`, with the org as `?1`.)
const UNSETTLED: &str = "SELECT 1 FROM slack_mirror WHERE slack_mirror.org = ?1
     AND slack_mirror.stale_since IS NULL AND slack_mirror.verified_at < slack_stream.gap_at";

/// The columns [`mirror_row`] reads, in its order.
const COLUMNS: &str = "kind, id, document, date_update, verified_at, stale_since";

fn mirror_row(row: &super::engine::Row) -> Option<MirrorRow> {
    Some(MirrorRow {
        kind: ObjectKind::parse(&row.text(0))?,
        id: row.text(1),
        document: row.opt_text(2),
        date_update: row.opt_int(3),
        verified_at: row.opt_int(4),
        stale_since: row.opt_int(5),
    })
}

/// Marks an effect's object stale from `at`, keeping an earlier time, unless a read that
/// started after the event was received (`received`, our clock) already saw the change.
/// For a delta, only if it was not applied in place (the row is not at its update).
fn stale_statement(
    scope: &str,
    effect: &Effect,
    at: i64,
    received: i64,
    generation: Value,
) -> Statement {
    let insert = "INSERT INTO slack_mirror (org, kind, id, stale_since, generation)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (org, kind, id) DO UPDATE
             SET stale_since = COALESCE(slack_mirror.stale_since, ?4), generation = ?5
             WHERE (slack_mirror.verified_at IS NULL OR slack_mirror.verified_at < ?6)";
    let (kind, id) = match effect {
        Effect::Stale { kind, id } => (*kind, id),
        Effect::Updated { usergroup, .. } | Effect::Members { usergroup, .. } => {
            (ObjectKind::Usergroup, usergroup)
        }
    };
    let mut params = vec![
        scope.into(),
        kind.as_str().into(),
        id.into(),
        at.into(),
        generation,
        received.into(),
    ];
    match effect {
        Effect::Members { update, .. } => {
            params.push((*update).into());
            Statement::new(
                format!(
                    "{insert}
                   AND (slack_mirror.date_update IS NULL OR slack_mirror.date_update <> ?7
                        OR slack_mirror.stale_since IS NOT NULL)"
                ),
                params,
            )
        }
        _ => Statement::new(insert, params),
    }
}

/// A row the read must not replace: verified by a later read, or a usergroup a delta
/// chain moved past the `date_update` this read saw.
const KEEP_NEWER: &str = "(slack_mirror.verified_at > excluded.verified_at
     OR (slack_mirror.date_update IS NOT NULL AND excluded.date_update IS NOT NULL
         AND slack_mirror.date_update > excluded.date_update))";

/// One multi-row upsert of read rows, verified at `at` unless marked stale after it. A
/// read never replaces a newer copy: an earlier read's, or a usergroup that a delta
/// chain moved past the `date_update` this read saw (a read still in flight when the
/// delta was applied).
fn upsert(scope: &str, rows: &[Row], at: i64, generation: &Value) -> Statement {
    let mut values = Vec::with_capacity(rows.len());
    let mut params: Vec<Value> = vec![scope.into(), at.into(), generation.clone()];
    for row in rows {
        let n = params.len();
        values.push(format!(
            "(?1, ?{}, ?{}, ?{}, ?{}, ?2, NULL, ?2, ?3)",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ));
        params.push(row.kind.as_str().into());
        params.push((&row.id).into());
        params.push((&row.document).into());
        params.push(row.date_update.into());
    }
    Statement::new(
        format!(
            "INSERT INTO slack_mirror
                 (org, kind, id, document, date_update, verified_at, stale_since, listed_at, generation)
             VALUES {}
             ON CONFLICT (org, kind, id) DO UPDATE SET
                 document = CASE WHEN {KEEP} THEN slack_mirror.document ELSE excluded.document END,
                 date_update = CASE WHEN {KEEP} THEN slack_mirror.date_update ELSE excluded.date_update END,
                 stale_since = CASE WHEN {KEEP} OR slack_mirror.stale_since > excluded.verified_at
                                    THEN slack_mirror.stale_since ELSE NULL END,
                 verified_at = CASE WHEN {KEEP} THEN slack_mirror.verified_at ELSE excluded.verified_at END,
                 listed_at = excluded.listed_at,
                 generation = excluded.generation",
            values.join(", "),
            KEEP = KEEP_NEWER,
        ),
        params,
    )
}
