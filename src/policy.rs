//! The guardrail verdict: count a plan's destructive actions per kind, compare them with
//! the limits in `policies/`, and bind any approval to the exact destructive set by hash.
//! Pure: plan, live state and policies in, [`Verdict`] out.

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Repository;
use crate::config::types::Limit;
use crate::model::live::Live;
use crate::plan::diff::{Action, Plan};

/// Destructive actions per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub deactivate: u64,
    pub remove_from_usergroup: u64,
    pub remove_from_channel: u64,
}

/// A limit a plan goes over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exceeded {
    pub kind: &'static str,
    pub count: u64,
    /// Of the population the action applies to.
    pub percent: f64,
    pub limit: Limit,
}

/// What the policy says about a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Within every limit, or over one with a matching approval.
    Allowed { counts: Counts, approved: bool },
    /// Over a limit: an `approvals/*.yaml` carrying `hash` must be merged with the change.
    NeedsApproval {
        counts: Counts,
        hash: String,
        exceeded: Vec<Exceeded>,
    },
}

/// The destructive action set as canonical lines, sorted, so the hash does not depend on
/// the order actions were planned in.
pub fn destructive_set(plan: &Plan) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for action in &plan.actions {
        match action {
            Action::DeactivateUser { person, .. } => {
                set.insert(format!("deactivate {}", person.email));
            }
            Action::SetUsergroupMembers {
                workspace,
                handle,
                removes,
                ..
            } => {
                for (person, _) in removes {
                    set.insert(format!(
                        "remove-from-usergroup {workspace}/{handle} {}",
                        person.email
                    ));
                }
            }
            Action::KickFromChannel {
                workspace,
                channel,
                person,
                ..
            } => {
                set.insert(format!(
                    "remove-from-channel {workspace}/#{channel} {}",
                    person.email
                ));
            }
            _ => {}
        }
    }
    set
}

/// `sha256:` and the hex digest of the destructive set, one line each.
pub fn plan_hash(plan: &Plan) -> String {
    let mut hasher = Sha256::new();
    for line in destructive_set(plan) {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn counts(plan: &Plan) -> Counts {
    let mut counts = Counts::default();
    for line in destructive_set(plan) {
        match line.split(' ').next() {
            Some("deactivate") => counts.deactivate += 1,
            Some("remove-from-usergroup") => counts.remove_from_usergroup += 1,
            Some("remove-from-channel") => counts.remove_from_channel += 1,
            _ => {}
        }
    }
    counts
}

fn over(count: u64, population: u64, limit: &Limit) -> Option<f64> {
    let percent = if population == 0 {
        if count == 0 { 0.0 } else { 100.0 }
    } else {
        count as f64 * 100.0 / population as f64
    };
    let over_max = limit.max.is_some_and(|max| count > max);
    let over_percent = limit.max_percent.is_some_and(|max| percent > max);
    (over_max || over_percent).then_some(percent)
}

/// Judges a plan against the repository's limits and approvals.
pub fn verdict(plan: &Plan, live: &Live, repository: &Repository) -> Verdict {
    let counts = counts(plan);
    let accounts = live.users.iter().filter(|u| u.active && !u.bot).count() as u64;
    let usergroup_members: u64 = live.usergroups.iter().map(|g| g.members.len() as u64).sum();
    let channel_members: u64 = live
        .channels
        .iter()
        .filter_map(|c| c.members.as_ref())
        .map(|m| m.len() as u64)
        .sum();
    let mut exceeded = Vec::new();
    for policy in &repository.policies {
        let limits = &policy.value.limits;
        let checks: [(&'static str, Option<&Limit>, u64, u64); 3] = [
            (
                "deactivate",
                limits.deactivate.as_ref(),
                counts.deactivate,
                accounts,
            ),
            (
                "remove_from_usergroup",
                limits.remove_from_usergroup.as_ref(),
                counts.remove_from_usergroup,
                usergroup_members,
            ),
            (
                "remove_from_channel",
                limits.remove_from_channel.as_ref(),
                counts.remove_from_channel,
                channel_members,
            ),
        ];
        for (kind, limit, count, population) in checks {
            if let Some(limit) = limit
                && let Some(percent) = over(count, population, limit)
            {
                exceeded.push(Exceeded {
                    kind,
                    count,
                    percent,
                    limit: *limit,
                });
            }
        }
    }
    if exceeded.is_empty() {
        return Verdict::Allowed {
            counts,
            approved: false,
        };
    }
    let hash = plan_hash(plan);
    let approved = repository
        .approvals
        .iter()
        .any(|a| a.value.hash.as_str() == hash);
    if approved {
        Verdict::Allowed {
            counts,
            approved: true,
        }
    } else {
        Verdict::NeedsApproval {
            counts,
            hash,
            exceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff::{Drift, Person};

    fn deactivate(email: &str) -> Action {
        Action::DeactivateUser {
            person: Person {
                email: email.into(),
                user_id: None,
            },
            drift: Drift::MissedDeprovision,
        }
    }

    #[test]
    fn the_hash_ignores_order_and_covers_only_destructive_actions() {
        let a = Plan {
            actions: vec![deactivate("a@x"), deactivate("b@x")],
            ..Plan::default()
        };
        let mut b = Plan {
            actions: vec![deactivate("b@x"), deactivate("a@x")],
            ..Plan::default()
        };
        assert_eq!(plan_hash(&a), plan_hash(&b));
        b.actions.push(Action::ResetSessions {
            person: Person {
                email: "a@x".into(),
                user_id: None,
            },
        });
        assert_eq!(plan_hash(&a), plan_hash(&b));
        b.actions.push(deactivate("c@x"));
        assert_ne!(plan_hash(&a), plan_hash(&b));
        assert!(crate::model::PlanHash::parse(&plan_hash(&a)).is_ok());
    }

    #[test]
    fn limits_are_inclusive() {
        let limit = Limit {
            max: Some(2),
            max_percent: Some(10.0),
        };
        assert_eq!(
            over(2, 100, &limit),
            None,
            "exactly at the limit is allowed"
        );
        assert!(over(3, 100, &limit).is_some(), "one over is not");
        assert_eq!(over(2, 20, &limit), None, "10% of 20 is 2");
        assert!(over(2, 19, &limit).is_some());
    }
}
