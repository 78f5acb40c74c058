//! The identity events waiting for the next sync: who left, deduplicated and bounded.
//!
//! An identity event is signed, but a signature does not stop a copy: a retrying
//! provider, a replayed capture or a flood of one event would each cost a leaver run, an
//! identity read and Slack calls. So the inbox takes each provider event once (by its
//! id), each person once per [`PERSON_WINDOW_MILLIS`], refuses events older than
//! [`REPLAY_WINDOW_MILLIS`] when the provider dates them, and holds at most [`MAX_PENDING`]
//! people and [`MAX_EVENT_IDS`] remembered ids. It is pure: the caller passes the time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A person named again within this long (10 minutes) of being queued is not queued
/// again.
pub const PERSON_WINDOW_MILLIS: i64 = 10 * 60 * 1000;
/// A dated event older than this (1 hour) is a replay, or too late to be a hint.
pub const REPLAY_WINDOW_MILLIS: i64 = 60 * 60 * 1000;
/// People waiting for the next sync, at most.
pub const MAX_PENDING: usize = 10_000;
/// Provider event ids remembered, at most (the oldest are forgotten first).
pub const MAX_EVENT_IDS: usize = 100_000;

/// One provider event as the webhook parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityEvent {
    /// The provider's id of the event (Okta's `uuid`, the generic form's `id`).
    pub id: Option<String>,
    /// When the provider says it happened (unix milliseconds), if it says.
    pub published: Option<i64>,
    /// The people it names, lowercased emails.
    pub people: Vec<String>,
}

/// What the inbox did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// These people were queued; a sync should run.
    Queued(Vec<String>),
    /// Nothing new: every event was seen, stale, or named people already queued.
    Ignored { duplicates: usize, stale: usize },
    /// The queue is full; nothing was taken, the sender should try again later.
    Full,
}

#[derive(Debug, Default)]
pub struct Inbox {
    pending: BTreeSet<String>,
    /// When each person was last queued (unix milliseconds).
    queued_at: BTreeMap<String, i64>,
    seen_ids: BTreeSet<String>,
    /// The remembered ids, oldest first, to forget them in order.
    id_order: VecDeque<String>,
}

impl Inbox {
    /// Takes one delivery (one or more events) at `now` (unix milliseconds).
    pub fn offer(&mut self, events: &[IdentityEvent], now: i64) -> Offer {
        self.expire(now);
        let (mut duplicates, mut stale) = (0, 0);
        let mut fresh: BTreeSet<String> = BTreeSet::new();
        let mut new_ids = Vec::new();
        for event in events {
            if event
                .published
                .is_some_and(|at| now - at > REPLAY_WINDOW_MILLIS)
            {
                stale += 1;
                continue;
            }
            if let Some(id) = &event.id
                && (self.seen_ids.contains(id) || new_ids.contains(id))
            {
                duplicates += 1;
                continue;
            }
            new_ids.extend(event.id.clone());
            for person in &event.people {
                if self.pending.contains(person) || self.queued_at.contains_key(person) {
                    duplicates += 1;
                } else {
                    fresh.insert(person.clone());
                }
            }
        }
        if self.pending.len() + fresh.len() > MAX_PENDING {
            return Offer::Full;
        }
        for id in new_ids {
            self.remember(id);
        }
        if fresh.is_empty() {
            return Offer::Ignored { duplicates, stale };
        }
        for person in &fresh {
            self.queued_at.insert(person.clone(), now);
            self.pending.insert(person.clone());
        }
        Offer::Queued(fresh.into_iter().collect())
    }

    /// The people waiting, in order, and the queue emptied.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending).into_iter().collect()
    }

    /// A person's run failed: a later event may queue them again at once.
    pub fn forget(&mut self, person: &str) {
        self.queued_at.remove(person);
    }

    /// How many people wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn remember(&mut self, id: String) {
        if self.seen_ids.insert(id.clone()) {
            self.id_order.push_back(id);
        }
        while self.id_order.len() > MAX_EVENT_IDS {
            if let Some(oldest) = self.id_order.pop_front() {
                self.seen_ids.remove(&oldest);
            }
        }
    }

    /// People queued longer ago than the window may be queued again.
    fn expire(&mut self, now: i64) {
        self.queued_at
            .retain(|_, at| now - *at <= PERSON_WINDOW_MILLIS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, published: Option<i64>, people: &[&str]) -> IdentityEvent {
        IdentityEvent {
            id: id.map(str::to_string),
            published,
            people: people.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn one_event_is_taken_once_and_one_person_once_per_window() {
        let mut inbox = Inbox::default();
        let ada = event(Some("e1"), Some(1_000), &["ada@x"]);
        assert_eq!(
            inbox.offer(std::slice::from_ref(&ada), 2_000),
            Offer::Queued(vec!["ada@x".into()])
        );
        for _ in 0..1_000 {
            assert!(matches!(
                inbox.offer(std::slice::from_ref(&ada), 3_000),
                Offer::Ignored { .. }
            ));
        }
        // Another event about her, within the window: still once.
        let again = event(Some("e2"), Some(4_000), &["ada@x"]);
        assert!(matches!(
            inbox.offer(&[again], 5_000),
            Offer::Ignored { .. }
        ));
        assert_eq!(inbox.take(), vec!["ada@x".to_string()]);
        assert!(inbox.is_empty());
        // After the window, a new event queues her again; a failed run forgets at once.
        let later = 2_000 + PERSON_WINDOW_MILLIS + 1;
        let third = event(Some("e3"), Some(later), &["ada@x"]);
        assert!(matches!(inbox.offer(&[third], later), Offer::Queued(_)));
        inbox.take();
        inbox.forget("ada@x");
        let fourth = event(Some("e4"), Some(later), &["ada@x"]);
        assert!(matches!(
            inbox.offer(&[fourth], later + 1),
            Offer::Queued(_)
        ));
    }

    #[test]
    fn stale_events_are_refused_and_the_queue_is_bounded() {
        let mut inbox = Inbox::default();
        let old = event(None, Some(0), &["grace@x"]);
        assert_eq!(
            inbox.offer(&[old], REPLAY_WINDOW_MILLIS + 1),
            Offer::Ignored {
                duplicates: 0,
                stale: 1
            }
        );
        let many: Vec<String> = (0..MAX_PENDING).map(|i| format!("p{i}@x")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            inbox.offer(&[event(None, None, &refs)], 1),
            Offer::Queued(_)
        ));
        assert_eq!(
            inbox.offer(&[event(None, None, &["one-more@x"])], 2),
            Offer::Full
        );
        assert_eq!(inbox.len(), MAX_PENDING);
    }

    #[test]
    fn remembered_ids_are_bounded() {
        let mut inbox = Inbox::default();
        for i in 0..MAX_EVENT_IDS + 10 {
            inbox.remember(format!("id{i}"));
        }
        assert_eq!(inbox.seen_ids.len(), MAX_EVENT_IDS);
        assert!(!inbox.seen_ids.contains("id0"));
        assert!(inbox.seen_ids.contains(&format!("id{}", MAX_EVENT_IDS + 9)));
    }
}
