//! The guardrail verdict: count a plan's destructive actions per kind, compare them with
//! the limits in `policies/`, and bind any approval to the exact destructive set by hash.
//! Pure: plan, live state and policies in, [`Verdict`] out.

use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Repository;
use crate::config::types::Limit;
use crate::model::directory::Directory;
use crate::model::live::Live;
use crate::plan::action::{Action, Plan};
use crate::plan::desired::Desired;

/// The size of an identity snapshot, kept with every plan so the next one can tell a
/// shrunken source (an IdP outage, a broken scope filter) from real leavers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdentityCounts {
    /// People the source listed, active or not.
    pub people: u64,
    pub groups: u64,
    /// Active people in `users.scope`: those who should have an account.
    pub in_scope: u64,
}

impl IdentityCounts {
    pub fn of(desired: &Desired, directory: &Directory) -> IdentityCounts {
        IdentityCounts {
            people: directory.people.len() as u64,
            groups: directory.groups.len() as u64,
            in_scope: desired.accounts.len() as u64,
        }
    }
}

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
    /// Not to be applied, approval or not: the inputs cannot be trusted (safety rule 5).
    Refused {
        counts: Counts,
        reasons: Vec<String>,
    },
    /// Within every limit, or over one with a matching approval.
    Allowed { counts: Counts, approved: bool },
    /// Over a limit: an `approvals/*.yaml` carrying `hash` must be merged with the change.
    NeedsApproval {
        counts: Counts,
        hash: String,
        exceeded: Vec<Exceeded>,
    },
}

impl Verdict {
    /// `allowed`, `needs_approval` or `refused`: the JSON plan's `verdict`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Allowed { .. } => "allowed",
            Verdict::NeedsApproval { .. } => "needs_approval",
            Verdict::Refused { .. } => "refused",
        }
    }
}

/// The destructive action set as canonical lines, sorted, so the hash does not depend on
/// the order actions were planned in.
pub fn destructive_set(plan: &Plan) -> BTreeSet<String> {
    plan.actions
        .iter()
        .flat_map(Action::destructive_lines)
        .collect()
}

/// `sha256:` and the hex digest of the destructive set, one line each.
pub fn plan_hash(plan: &Plan) -> String {
    let mut hasher = Sha256::new();
    for line in destructive_set(plan) {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", crate::model::hex(&hasher.finalize()))
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

/// Why the identity snapshot cannot be trusted, if it cannot: nobody in scope while Slack
/// has people, or a loss over a policy's `identity.max_shrink` against the last good
/// snapshot (`baseline`).
fn distrust(
    identity: &IdentityCounts,
    baseline: Option<&IdentityCounts>,
    accounts: u64,
    repository: &Repository,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if identity.in_scope == 0 && accounts > 0 {
        reasons.push(format!(
            "the identity source has nobody in users.scope while Slack has {accounts} active accounts; \
             an empty source is never taken as everyone leaving"
        ));
    }
    let Some(baseline) = baseline else {
        return reasons;
    };
    let lost = baseline.in_scope.saturating_sub(identity.in_scope);
    for policy in &repository.policies {
        let Some(guard) = &policy.value.identity else {
            continue;
        };
        if let Some(percent) = over(lost, baseline.in_scope, &guard.max_shrink) {
            reasons.push(format!(
                "the identity snapshot shrank from {} to {} people in scope (-{lost}, {percent:.1}%), \
                 over identity.max_shrink in {} ({}); check the identity provider before syncing",
                baseline.in_scope,
                identity.in_scope,
                policy.file,
                limit_words(&guard.max_shrink)
            ));
        }
    }
    reasons
}

/// "max 10 / 2%" for messages.
pub fn limit_words(limit: &Limit) -> String {
    match (limit.max, limit.max_percent) {
        (Some(max), Some(percent)) => format!("max {max} / {percent}%"),
        (Some(max), None) => format!("max {max}"),
        (None, Some(percent)) => format!("max {percent}%"),
        (None, None) => "no limit".into(),
    }
}

/// Judges a plan against the repository's limits and approvals, and the identity snapshot
/// (`identity`) against the last good one (`baseline`) when there is one.
pub fn verdict(
    plan: &Plan,
    live: &Live,
    repository: &Repository,
    identity: &IdentityCounts,
    baseline: Option<&IdentityCounts>,
) -> Verdict {
    verdict_over(plan, &Populations::of(live), repository, identity, baseline)
}

/// What a limit's `max_percent` is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Populations {
    /// Active human accounts.
    pub accounts: u64,
    /// Members of all usergroups, counted per usergroup.
    pub usergroup_members: u64,
    /// Members of the channels whose members were read.
    pub channel_members: u64,
}

impl Populations {
    /// As live Slack has them.
    pub fn of(live: &Live) -> Populations {
        Populations {
            accounts: live
                .users
                .iter()
                .filter(|u| u.active && !u.bot && u.guest.is_none())
                .count() as u64,
            usergroup_members: live.usergroups.iter().map(|g| g.members.len() as u64).sum(),
            channel_members: live
                .channels
                .iter()
                .filter_map(|c| c.members.as_ref())
                .map(|m| m.len() as u64)
                .sum(),
        }
    }

    /// For a run that reads one account, not all of Slack (an identity event's leaver):
    /// the accounts are estimated by the people in scope at the last good sync (or now,
    /// without one), and never fewer than the one account the run reads.
    pub fn estimated(identity: &IdentityCounts, baseline: Option<&IdentityCounts>) -> Populations {
        Populations {
            accounts: baseline.unwrap_or(identity).in_scope.max(1),
            usergroup_members: 0,
            channel_members: 0,
        }
    }
}

/// [`verdict`] with the populations given rather than counted from live Slack.
pub fn verdict_over(
    plan: &Plan,
    populations: &Populations,
    repository: &Repository,
    identity: &IdentityCounts,
    baseline: Option<&IdentityCounts>,
) -> Verdict {
    let counts = counts(plan);
    let Populations {
        accounts,
        usergroup_members,
        channel_members,
    } = *populations;
    let reasons = distrust(identity, baseline, accounts, repository);
    if !reasons.is_empty() {
        return Verdict::Refused { counts, reasons };
    }
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

/// Why the approvals that carry `hash` do not let a plan through at `today`
/// (`YYYY-MM-DD`, UTC): each expired one, and each approved by nobody the policies'
/// `approvers:` allow. Empty when at least one approval of the hash is valid, or when none
/// carries it (the verdict already says so).
pub fn approval_problems(repository: &Repository, hash: &str, today: &str) -> Vec<String> {
    let allowed: BTreeSet<&str> = repository
        .policies
        .iter()
        .flat_map(|p| p.value.approvers.iter().map(|e| e.as_str()))
        .collect();
    let mut problems = Vec::new();
    for approval in repository
        .approvals
        .iter()
        .filter(|a| a.value.hash.as_str() == hash)
    {
        let value = &approval.value;
        if let Some(expires) = value.expires.as_deref()
            && expires < today
        {
            problems.push(format!(
                "{}: the approval expired on {expires}",
                approval.file
            ));
            continue;
        }
        let by_allowed = allowed.is_empty()
            || value
                .approved_by
                .iter()
                .any(|e| allowed.contains(e.as_str()));
        if !by_allowed {
            let by: Vec<&str> = value.approved_by.iter().map(|e| e.as_str()).collect();
            problems.push(format!(
                "{}: approved by {}, none of whom the policy's approvers allow",
                approval.file,
                by.join(", ")
            ));
            continue;
        }
        return Vec::new();
    }
    problems
}

/// A restore undoes deactivations, so the deactivation limits bound it too: a restore
/// that reactivates more people than `limits.deactivate` allows needs `--approve` with
/// its hash ([`restore_hash`]). Returns why it is over, or `None`.
pub fn restore_over_limit(repository: &Repository, plan: &Plan, accounts: u64) -> Option<String> {
    let reactivations = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::ReactivateUser { .. }))
        .count() as u64;
    repository.policies.iter().find_map(|policy| {
        let limit = policy.value.limits.deactivate.as_ref()?;
        over(reactivations, accounts, limit).map(|percent| {
            format!(
                "the restore reactivates {reactivations} {} ({percent:.1}%), over the deactivation limit ({}); review it with --dry-run and pass --approve {}",
                if reactivations == 1 { "person" } else { "people" },
                limit_words(limit),
                restore_hash(plan)
            )
        })
    })
}

/// `sha256:` over the keys of a restore plan's actions, one a line, sorted: what
/// `restore --approve` names.
pub fn restore_hash(plan: &Plan) -> String {
    let mut lines: Vec<String> = plan
        .actions
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", crate::model::hex(&hasher.finalize()))
}

/// The destructive actions of `plan` that a reviewed plan's destructive set does not
/// hold: changes that appeared between review and merge and were never reviewed.
pub fn unreviewed(plan: &Plan, reviewed: &[String]) -> Vec<String> {
    let reviewed: BTreeSet<&str> = reviewed.iter().map(String::as_str).collect();
    destructive_set(plan)
        .into_iter()
        .filter(|line| !reviewed.contains(line.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, SourceFile};
    use crate::plan::action::{Drift, Person, Removal, SlackId};

    fn repository(policy: &str) -> Repository {
        let files = [
            SourceFile {
                path: "slack-gitops.yaml".into(),
                bytes: b"apiVersion: slack-gitops/v1\nkind: Config\nslack:\n  plan: business-plus\n  workspaces: { main: T0000MAIN }\nidentity:\n  source: file\n  path: d.yaml\nusers:\n  provisioning: eager\n  scope: [everyone]\n".to_vec(),
            },
            SourceFile {
                path: "policies/p.yaml".into(),
                bytes: format!("apiVersion: slack-gitops/v1\nkind: Policy\n{policy}").into_bytes(),
            },
        ];
        let loaded = config::load(&files, None);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.repository.unwrap()
    }

    fn live(accounts: usize) -> Live {
        Live {
            users: (0..accounts)
                .map(|n| crate::model::live::LiveUser {
                    id: format!("W{n}"),
                    email: format!("p{n}@x"),
                    user_name: format!("p{n}"),
                    given_name: String::new(),
                    family_name: String::new(),
                    title: String::new(),
                    department: String::new(),
                    manager: None,
                    active: true,
                    admin: false,
                    owner: false,
                    primary_owner: false,
                    guest: None,
                    bot: false,
                    workspaces: Vec::new(),
                })
                .collect(),
            ..Live::default()
        }
    }

    fn in_scope(n: u64) -> IdentityCounts {
        IdentityCounts {
            people: n,
            groups: 1,
            in_scope: n,
        }
    }

    #[test]
    fn a_shrunken_identity_snapshot_is_refused_at_one_over_the_limit() {
        let repository = repository("identity:\n  max_shrink: { max: 10, max_percent: 5 }\n");
        let plan = Plan::default();
        let live = live(3);
        // 200 -> 190 loses exactly 10 (5%): allowed.
        let at_limit = verdict_of(&repository, &live, 190, 200);
        assert!(matches!(at_limit, Verdict::Allowed { .. }), "{at_limit:?}");
        // 200 -> 189 loses 11: refused, naming the numbers and the policy file.
        let verdict = verdict_of(&repository, &live, 189, 200);
        let Verdict::Refused { reasons, .. } = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].contains("from 200 to 189 people in scope (-11, 5.5%)")
                && reasons[0].contains("policies/p.yaml (max 10 / 5%)"),
            "{}",
            reasons[0]
        );
        // Without a baseline there is nothing to compare with.
        let first = super::verdict(&plan, &live, &repository, &in_scope(1), None);
        assert!(matches!(first, Verdict::Allowed { .. }));
    }

    fn verdict_of(repository: &Repository, live: &Live, now: u64, before: u64) -> Verdict {
        verdict(
            &Plan::default(),
            live,
            repository,
            &in_scope(now),
            Some(&in_scope(before)),
        )
    }

    #[test]
    fn an_empty_identity_source_is_refused_whatever_the_limits() {
        let repository = repository("limits:\n  deactivate: { max: 100000 }\n");
        let empty = verdict(&Plan::default(), &live(5), &repository, &in_scope(0), None);
        let Verdict::Refused { reasons, .. } = empty else {
            panic!("{empty:?}")
        };
        assert!(reasons[0].contains("nobody in users.scope while Slack has 5 active accounts"));
        // An empty org with an empty source is fine.
        let nobody = verdict_of(&repository, &live(0), 0, 0);
        assert!(matches!(nobody, Verdict::Allowed { .. }));
    }

    fn deactivate(email: &str) -> Action {
        Action::DeactivateUser {
            removal: Removal {
                person: Person {
                    email: email.into(),
                    user_id: SlackId::New,
                },
                drift: Drift::MissedDeprovision,
                why: "suspended in the identity provider".into(),
            },
            impact: Default::default(),
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
            by: Default::default(),
            person: Person {
                email: "a@x".into(),
                user_id: SlackId::New,
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
