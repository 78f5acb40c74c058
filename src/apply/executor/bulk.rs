//! A wave of leavers signed out together: `admin.users.session.resetBulk` takes up to
//! 1,000 people a call, where `admin.users.session.reset` is one person a call at Tier 2
//! (20 a minute: a layoff of 1,000 people would take 50 minutes).
//!
//! Slack runs a bulk reset as a job: `ok` means it was enqueued, not done. So every
//! person is read back (`admin.users.session.list`) after the job has had time to run,
//! polled a few times; whoever still has a session then, or whom the bulk call could not
//! take, goes through the one-person reset, as a run without bulk would.
//!
//! The read-back takes the cheaper of two ways: one listing per person and workspace, or
//! the whole org's active sessions at 1,000 a page (estimated from the live accounts).

use std::collections::HashSet;

use super::{Executor, Outcome, Ran, WriteError, classify};
use crate::plan::action::Action;
use crate::slack::client::SlackError;
use crate::slack::writer;

/// Bulk calls for one wave before the rest go one person at a time.
const BULK_ATTEMPTS: usize = 2;

/// Emulated seconds to wait for the job before each read-back: it usually runs within
/// seconds; the waits add up to about a minute before the one-person path takes over.
const JOB_WAITS: [f64; 4] = [3.0, 6.0, 15.0, 30.0];

/// What the executor knows about the org's sessions before it signs anyone out.
#[derive(Debug, Default, Clone)]
pub(super) struct Sessions {
    /// The workspaces anyone belongs to: a person's sessions are read in each.
    pub teams: Vec<String>,
    /// Pages of an org-wide `admin.users.session.list` (1,000 sessions a page, one
    /// session per active person and workspace).
    pub org_pages: usize,
}

impl Sessions {
    pub fn from_live(live: &crate::model::live::Live) -> Sessions {
        let mut teams: Vec<String> = live
            .users
            .iter()
            .flat_map(|u| u.workspaces.iter().cloned())
            .collect();
        teams.sort();
        teams.dedup();
        let sessions: usize = live
            .users
            .iter()
            .filter(|u| u.active && !u.bot)
            .map(|u| u.workspaces.len())
            .sum();
        Sessions {
            teams,
            org_pages: sessions.div_ceil(1000).max(1),
        }
    }
}

/// How many of the actions from `start` (not past `end`) go in one bulk call: the
/// sign-outs by session reset that follow, at most one call's worth; none when they fit
/// in the Tier 2 burst (one call each is then as quick and needs no job to finish).
pub(super) fn bulk_len(actions: &[Action], start: usize, end: usize, burst: usize) -> usize {
    let n = actions[start..end]
        .iter()
        .take(writer::RESET_BULK_MAX)
        .take_while(|a| {
            matches!(
                a,
                Action::ResetSessions {
                    by: crate::plan::action::SignOut::SessionReset,
                    ..
                }
            )
        })
        .count();
    if n > burst { n } else { 0 }
}

impl Executor<'_> {
    /// Signs out the people of `actions` (all `ResetSessions` by session reset) with one
    /// bulk call, read back; returns each action's [`Ran`], in order.
    pub(super) async fn sign_out_in_bulk(&self, actions: &[&Action]) -> Vec<Ran> {
        let mut rans: Vec<Option<Ran>> = Vec::with_capacity(actions.len());
        let mut ids: Vec<Option<String>> = Vec::with_capacity(actions.len());
        for action in actions {
            let Action::ResetSessions { person, .. } = action else {
                rans.push(Some(Ran::new(Outcome::Failed("not a sign-out".into()))));
                ids.push(None);
                continue;
            };
            match self.leaver_id(person) {
                Ok(id) => {
                    rans.push(None);
                    ids.push(Some(id));
                }
                Err(ran) => {
                    rans.push(Some(ran));
                    ids.push(None);
                }
            }
        }
        let wanted: HashSet<String> = ids.iter().flatten().cloned().collect();
        let pending = self.bulk_attempts(wanted).await;
        let mut out = Vec::with_capacity(actions.len());
        for ((action, ran), id) in actions.iter().zip(rans).zip(ids) {
            let ran = match (ran, id) {
                (Some(ran), _) => ran,
                (None, Some(id)) if !pending.contains(&id) => {
                    let mut ran = Ran::new(Outcome::Done);
                    ran.writes = 1;
                    ran.slack_ids = vec![id];
                    ran
                }
                (None, _) => {
                    let mut ran = self.execute(action, false).await;
                    // It was also carried by the bulk call.
                    ran.writes += 1;
                    ran
                }
            };
            out.push(ran);
        }
        out
    }

    /// Sends the bulk call and reads it back, twice at most (the second time for whoever
    /// the first left signed in). A refusal ends the attempts at once; an unclear failure
    /// (timeout, reset, 5xx) may have enqueued the job, so it is read back like an `ok`.
    /// Returns who is still signed in.
    async fn bulk_attempts(&self, mut pending: HashSet<String>) -> HashSet<String> {
        for _ in 0..BULK_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let mut ids: Vec<String> = pending.iter().cloned().collect();
            ids.sort();
            match writer::reset_sessions_bulk(self.context.client, &ids).await {
                Ok(()) => {}
                Err(error) => match classify(error) {
                    WriteError::Refused(message) => {
                        tracing::warn!(%message, people = ids.len(), "the bulk sign-out was refused; signing out one person at a time");
                        break;
                    }
                    WriteError::Unclear(message) => {
                        tracing::warn!(%message, people = ids.len(), "the bulk sign-out's outcome is unclear; reading the sessions back");
                    }
                },
            }
            pending = self.await_job(pending).await;
        }
        if !pending.is_empty() {
            tracing::warn!(
                people = pending.len(),
                "still signed in after the bulk sign-out; signing them out one at a time"
            );
        }
        pending
    }

    /// Waits for the bulk job and reads the sessions back until nobody of `pending` has
    /// one, or the waits are spent. Returns who still has one (or could not be read).
    async fn await_job(&self, mut pending: HashSet<String>) -> HashSet<String> {
        for wait in JOB_WAITS {
            self.context.client.wait(wait).await;
            match self.with_sessions(&pending).await {
                Ok(still) => pending = still,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the sessions back after a bulk sign-out");
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        pending
    }

    /// Who of `people` still has an active session, by the cheaper read.
    async fn with_sessions(&self, people: &HashSet<String>) -> Result<HashSet<String>, SlackError> {
        let client = self.context.client;
        let sessions = &self.sessions;
        if people.len().saturating_mul(sessions.teams.len().max(1)) > sessions.org_pages {
            let (active, _) = writer::people_with_sessions(client).await?;
            return Ok(people.intersection(&active).cloned().collect());
        }
        let mut still = HashSet::new();
        for id in people {
            if writer::has_sessions(client, id, &sessions.teams).await? {
                still.insert(id.clone());
            }
        }
        Ok(still)
    }
}
