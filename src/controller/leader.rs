//! Leader election among controller replicas sharing one store. Each replica runs
//! [`elect`]: it tries to take the lease, and once it holds it, renews it every third of
//! its time to live. Only the leader syncs; the others serve `/livez`, `/readyz` and
//! `/status` and try again every second.
//!
//! Fencing, in three layers, so that a leader that was paused (SIGSTOP, a long GC, a VM
//! migration) or cut off from the database cannot write once another took over:
//!
//! 1. **Its own clock.** A term is good until the time the last renewal was *sent* plus
//!    the time to live, less a fifth of it; the database's expiry is later than that.
//!    A replica whose deadline passed does not write, whatever it believes.
//! 2. **The store.** The store carries a [`Fence`]: every write checks, in the same
//!    transaction, that the lease is still at this generation.
//! 3. **The write gate.** Before each call that writes to Slack, the client asks
//!    [`gate`]: the deadline, the store's fence, and the deadline again (the fence's
//!    answer may have waited out a pause). The call is not sent when any says no.
//!
//! What is left is the instant between the last check and the request leaving the
//! socket: a process frozen exactly there sends one write when it thaws. Slack takes no
//! fencing token, so no client can close that gap; it is microseconds wide.
//!
//! The lease's expiry is the database's clock, so the replicas' clocks need not agree;
//! only their rates matter, within the fifth kept in hand.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Shared;
use crate::store::{Fence, Store};

/// How replicas elect a leader.
#[derive(Debug, Clone)]
pub struct Election {
    /// The lease's name: replicas of one deployment share it.
    pub lease: String,
    /// This replica's name, unique among the replicas (a pod's name, by default the
    /// host's name and the process id).
    pub replica: String,
    /// How long a lease lasts without renewal: the longest a dead leader holds up the
    /// others.
    pub ttl: Duration,
    /// The URL the other replicas reach this one at, to hand it webhooks while it leads.
    pub advertise: Option<String>,
}

impl Election {
    /// The default name of this replica: `$HOSTNAME` (a pod's name), else the host's
    /// name and the process id.
    pub fn default_replica(environment: &dyn Fn(&str) -> Option<String>) -> String {
        if let Some(pod) = environment("HOSTNAME").filter(|h| !h.is_empty()) {
            return pod;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}-{}", std::process::id())
    }

    fn ttl_millis(&self) -> i64 {
        self.ttl.as_millis() as i64
    }
}

/// A term of leadership.
#[derive(Debug, Clone, Copy)]
struct Term {
    generation: i64,
    /// After this, this replica does not write until a renewal succeeds.
    deadline: Instant,
}

/// Who leads, as this replica knows it.
#[derive(Default)]
pub struct Leadership {
    term: std::sync::Mutex<Option<Term>>,
    /// Wakes the sync loop when this replica becomes the leader.
    pub gained: tokio::sync::Notify,
}

/// The leader as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeaderStatus {
    /// This replica's name.
    pub replica: String,
    /// Whether this replica leads now.
    pub leading: bool,
    /// Who holds the lease, its generation and when it expires (the database's clock).
    pub leader: Option<String>,
    pub generation: Option<i64>,
    pub expires: Option<String>,
}

impl Leadership {
    fn term(&self) -> std::sync::MutexGuard<'_, Option<Term>> {
        self.term.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation this replica leads in, if it leads now (its deadline not passed).
    pub fn leading(&self) -> Option<i64> {
        self.term()
            .filter(|t| Instant::now() < t.deadline)
            .map(|t| t.generation)
    }

    /// Whether this replica may write now: it leads, within its deadline.
    pub fn check(&self) -> Result<i64, String> {
        match *self.term() {
            Some(term) if Instant::now() < term.deadline => Ok(term.generation),
            Some(term) => Err(format!(
                "this replica's lease (generation {}) lapsed without renewal; it no longer leads",
                term.generation
            )),
            None => Err("this replica does not lead".into()),
        }
    }

    /// Waits until this replica leads, or `stopped` says to stop; its generation.
    pub async fn wait(&self, stopped: impl Fn() -> bool) -> Option<i64> {
        loop {
            let gained = self.gained.notified();
            if stopped() {
                return None;
            }
            if let Some(generation) = self.leading() {
                return Some(generation);
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), gained).await;
        }
    }
}

/// The gate of every Slack write of this replica: it leads, within its deadline, and the
/// store agrees that its generation is current.
pub fn gate(shared: std::sync::Weak<Shared>) -> crate::slack::client::WriteGate {
    Arc::new(move || {
        let shared = shared
            .upgrade()
            .ok_or_else(|| "the controller stopped".to_string())?;
        shared.leader.check()?;
        shared.store.check_fence().map_err(|e| e.to_string())?;
        // Again after the database answered: a process paused while the answer was on
        // its way would otherwise act on a stale "yes" when it resumes.
        shared.leader.check().map(|_| ())
    })
}

/// Runs a store call off the async runtime (the database may be slow to answer).
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    call: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store)).await.ok()
}

/// Campaigns and holds the lease until the controller stops, then lets it go.
pub async fn elect(shared: Arc<Shared>, election: Election) {
    let store = shared.store.clone();
    let ttl = election.ttl;
    let retry = (ttl / 5).min(Duration::from_secs(1));
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let held = *shared.leader.term();
        let wait = match held {
            Some(term) => {
                renew(&shared, &store, &election, term).await;
                ttl / 3
            }
            None => {
                campaign(&shared, &store, &election).await;
                if shared.leader.leading().is_some() {
                    ttl / 3
                } else {
                    retry
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.stopping.notified() => {}
        }
    }
    let held = *shared.leader.term();
    if let Some(term) = held {
        let (lease, replica) = (election.lease.clone(), election.replica.clone());
        let released = blocking(&store, move |s| {
            s.release_lease(&lease, &replica, term.generation)
        })
        .await;
        if let Some(Err(error)) = released {
            tracing::warn!(%error, "could not release the lease; the next leader waits for it to expire");
        } else {
            tracing::info!(generation = term.generation, "released the lease");
        }
    }
}

/// Tries to take the lease.
async fn campaign(shared: &Shared, store: &Arc<Store>, election: &Election) {
    let sent = Instant::now();
    let (lease, replica, ttl) = (
        election.lease.clone(),
        election.replica.clone(),
        election.ttl_millis(),
    );
    let address = election.advertise.clone();
    let taken = blocking(store, move |s| {
        s.acquire_lease(&lease, &replica, address.as_deref(), ttl)
    })
    .await;
    match taken {
        Some(Ok(Some(lease))) => {
            store.set_fence(Some(Fence {
                name: election.lease.clone(),
                holder: election.replica.clone(),
                generation: lease.generation,
            }));
            *shared.leader.term() = Some(Term {
                generation: lease.generation,
                deadline: deadline(sent, election.ttl),
            });
            shared.metrics.leading(true, lease.generation);
            tracing::info!(
                replica = %election.replica,
                generation = lease.generation,
                "leading: took the lease"
            );
            shared.leader.gained.notify_waiters();
        }
        Some(Ok(None)) => {}
        Some(Err(error)) => tracing::warn!(%error, "cannot campaign for the lease"),
        None => {}
    }
}

/// Renews the lease; on losing it, stops the sync in flight.
async fn renew(shared: &Shared, store: &Arc<Store>, election: &Election, term: Term) {
    let sent = Instant::now();
    let (lease, replica, ttl) = (
        election.lease.clone(),
        election.replica.clone(),
        election.ttl_millis(),
    );
    let renewed = blocking(store, move |s| {
        s.renew_lease(&lease, &replica, term.generation, ttl)
    })
    .await;
    match renewed {
        Some(Ok(Some(_))) => {
            if let Some(held) = shared.leader.term().as_mut() {
                held.deadline = deadline(sent, election.ttl);
            }
        }
        Some(Ok(None)) => {
            *shared.leader.term() = None;
            demoted(shared, term.generation, "another replica took the lease");
        }
        Some(Err(error)) if Instant::now() >= term.deadline => {
            *shared.leader.term() = None;
            demoted(
                shared,
                term.generation,
                &format!("cannot renew the lease: {error}"),
            );
        }
        Some(Err(error)) => tracing::warn!(%error, "cannot renew the lease; trying again"),
        None => {}
    }
}

/// This replica stopped leading: the sync in flight halts between actions (the gate
/// already refuses its writes).
fn demoted(shared: &Shared, generation: i64, why: &str) {
    shared.metrics.leading(false, generation);
    shared.halt.store(true, Ordering::SeqCst);
    tracing::warn!(generation, reason = why, "no longer leading");
}

/// The end of a term whose renewal was sent at `sent`: a fifth of the time to live is
/// kept in hand.
fn deadline(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 5
}
