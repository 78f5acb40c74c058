//! How long a plan's writes take at Slack's published rate limits: what a reviewer needs
//! to know before merging an adoption that takes hours. Pure: the plan and the limits
//! table ([`crate::model::limits`]) in, an estimate out.
//!
//! The model is the executor's: actions run in plan order, one kind after the other, so
//! each run of one kind costs the calls beyond the client's burst at the rate of the
//! kind's bucket. Reads (the plan before, the check after) come on top, as long as `plan`
//! took to read.

use super::action::{Action, Plan, SignOut};
use crate::model::limits::{Tier, scim_buckets, web_tier};

/// People per `conversations.invite` call (the executor's batch).
const INVITES_PER_CALL: usize = 100;

/// People per `admin.users.session.resetBulk` call.
const SIGN_OUTS_PER_BULK: usize = 1000;

/// The calls of a run of `n` sign-outs by session reset: the first alone
/// (`admin.users.session.reset`, the canary), the rest a thousand a call
/// (`admin.users.session.resetBulk`) unless they fit in Tier 2's burst of 5, which is as
/// quick one at a time (`burst`: the bucket's). The read-back of the bulk job comes with
/// the reads.
fn sign_out_calls(n: usize, burst: f64) -> usize {
    let rest = n.saturating_sub(1);
    if rest as f64 > burst {
        1 + rest.div_ceil(SIGN_OUTS_PER_BULK)
    } else {
        n
    }
}

/// One kind of write in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// What is written, as a reviewer says it: "usergroup member updates".
    pub what: &'static str,
    /// The rate it is paced to: "Tier 2", "SCIM PATCH /Users".
    pub limit: String,
    pub per_minute: f64,
    pub calls: usize,
    /// Seconds beyond the burst, in all the runs of this kind.
    pub seconds: f64,
}

/// A plan's writes at Slack's published limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Estimate {
    pub seconds: f64,
    pub calls: usize,
    /// By kind, the slowest first.
    pub loads: Vec<Load>,
}

/// What an action writes: (what, the limit's name, calls per minute, burst, calls).
fn writes(action: &Action) -> (&'static str, String, f64, f64, usize) {
    let web = |what: &'static str, method: &str, calls: usize| {
        let tier = web_tier(method);
        let per_minute = tier.per_minute();
        (
            what,
            tier_name(tier),
            per_minute,
            (per_minute / 4.0).max(1.0),
            calls,
        )
    };
    let scim = |what: &'static str, method: &str, segments: &[&str]| {
        // The tightest of the org-wide and the endpoint's bucket paces the calls.
        let bucket = scim_buckets(method, segments)
            .into_iter()
            .min_by(|a, b| a.per_minute.total_cmp(&b.per_minute))
            .expect("every SCIM request has a bucket");
        let name = format!("SCIM {method} /{}", segments[0]);
        (what, name, bucket.per_minute, bucket.burst, 1)
    };
    match action {
        Action::CreateUser { .. } => scim("account creations", "POST", &["Users"]),
        Action::ReactivateUser { .. } => scim("reactivations", "PATCH", &["Users", "id"]),
        Action::UpdateProfile { .. } => scim("profile updates", "PATCH", &["Users", "id"]),
        Action::DeactivateUser { .. } => scim("deactivations", "PATCH", &["Users", "id"]),
        Action::AssignWorkspace { .. } => web("workspace assignments", "admin.users.assign", 1),
        Action::CreateUsergroup { .. } => web("usergroup creations", "usergroups.create", 1),
        Action::UpdateUsergroup { .. } => web("usergroup updates", "usergroups.update", 1),
        Action::EnableUsergroup { .. } | Action::DisableUsergroup { .. } => {
            web("usergroups enabled or disabled", "usergroups.disable", 1)
        }
        Action::SetUsergroupMembers { .. } => {
            web("usergroup member updates", "usergroups.users.update", 1)
        }
        Action::CreateChannel { .. } => web("channel creations", "conversations.create", 1),
        Action::InviteToChannel { people, .. } => web(
            "channel invites",
            "conversations.invite",
            people.len().div_ceil(INVITES_PER_CALL).max(1),
        ),
        Action::KickFromChannel { .. } => web("channel removals", "conversations.kick", 1),
        Action::ResetSessions {
            by: SignOut::SessionReset,
            ..
        } => web("sign-outs", "admin.users.session.reset", 1),
        // Business+: the deactivation signed them out; one read confirms it.
        Action::ResetSessions {
            by: SignOut::Deactivation,
            ..
        } => scim("sign-out checks", "GET", &["Users", "id"]),
        Action::SetRole { .. } => web("role changes", "admin.users.setAdmin", 1),
    }
}

fn tier_name(tier: Tier) -> String {
    match tier {
        Tier::Tier1 => "Tier 1",
        Tier::Tier2 => "Tier 2",
        Tier::Tier3 => "Tier 3",
        Tier::Tier4 => "Tier 4",
        Tier::Special => "its own limit",
        Tier::PerChannel => "one a second per channel",
    }
    .to_string()
}

/// The plan's writes at Slack's published limits.
pub fn estimate(plan: &Plan) -> Estimate {
    let mut estimate = Estimate::default();
    let mut start = 0;
    while start < plan.actions.len() {
        let (what, limit, per_minute, burst, _) = writes(&plan.actions[start]);
        let end = plan.actions[start..]
            .iter()
            .position(|a| writes(a).0 != what)
            .map_or(plan.actions.len(), |n| start + n);
        let run = &plan.actions[start..end];
        let calls: usize = match &run[0] {
            Action::ResetSessions {
                by: SignOut::SessionReset,
                ..
            } => sign_out_calls(run.len(), burst),
            _ => run.iter().map(|a| writes(a).4).sum(),
        };
        let seconds = (calls as f64 - burst).max(0.0) * 60.0 / per_minute;
        estimate.seconds += seconds;
        estimate.calls += calls;
        match estimate.loads.iter_mut().find(|l| l.what == what) {
            Some(load) => {
                load.calls += calls;
                load.seconds += seconds;
            }
            None => estimate.loads.push(Load {
                what,
                limit,
                per_minute,
                calls,
                seconds,
            }),
        }
        start = end;
    }
    estimate
        .loads
        .sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(b.calls.cmp(&a.calls)));
    estimate
}

/// "under a minute", "about 4 min", "about 2 h 10 min".
pub fn duration_words(seconds: f64) -> String {
    let minutes = (seconds / 60.0).round() as u64;
    match minutes {
        0 => "under a minute".into(),
        1..=89 => format!("about {minutes} min"),
        _ => format!("about {} h {} min", minutes / 60, minutes % 60),
    }
}

impl Estimate {
    /// "about 4 min: 37 usergroup member updates at Tier 2 (20/min), 3 deactivations at
    /// SCIM PATCH /Users (180/min)": the duration and the kinds that make it.
    pub fn words(&self) -> String {
        if self.calls == 0 {
            return "nothing to write".into();
        }
        let parts: Vec<String> = self
            .loads
            .iter()
            .take(3)
            .map(|l| {
                format!(
                    "{} {} at {} ({}/min)",
                    l.calls, l.what, l.limit, l.per_minute
                )
            })
            .collect();
        let rest = self.loads.len().saturating_sub(3);
        let more = if rest > 0 {
            format!(", and {rest} more kinds")
        } else {
            String::new()
        };
        format!(
            "{}: {}{more}",
            duration_words(self.seconds),
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::{Person, SlackId};
    use crate::plan::desired::RuleRef;

    fn members(handle: &str) -> Action {
        Action::SetUsergroupMembers {
            workspace: "T1".into(),
            usergroup_id: SlackId::Live("S1".into()),
            handle: handle.into(),
            members: Vec::new(),
            adds: Vec::new(),
            removes: Vec::new(),
            rule: RuleRef {
                file: "m.yaml".into(),
                line: 1,
            },
        }
    }

    fn signout(n: usize) -> Action {
        Action::ResetSessions {
            person: Person {
                email: format!("p{n}@x"),
                user_id: SlackId::Live(format!("U{n}")),
            },
            by: SignOut::SessionReset,
        }
    }

    #[test]
    fn thirty_seven_usergroup_updates_take_about_a_minute_and_a_half_at_tier_2() {
        // Tier 2 is 20 a minute; the client bursts 5 at once, so 32 are paced: 96 s.
        let plan = Plan {
            actions: (0..37).map(|i| members(&format!("g{i}"))).collect(),
            ..Default::default()
        };
        let estimate = estimate(&plan);
        assert_eq!(estimate.calls, 37);
        assert!((estimate.seconds - 96.0).abs() < 1e-9, "{estimate:?}");
        assert_eq!(
            estimate.words(),
            "about 2 min: 37 usergroup member updates at Tier 2 (20/min)"
        );
    }

    fn role(n: usize) -> Action {
        Action::SetRole {
            person: Person {
                email: format!("p{n}@x"),
                user_id: SlackId::Live(format!("U{n}")),
            },
            workspace: "T1".into(),
            role: crate::plan::action::Role::Admin,
        }
    }

    #[test]
    fn runs_of_one_kind_each_pay_beyond_their_burst_and_add_up() {
        // 10 role changes, 10 group updates, 10 role changes: each run bursts 5 and
        // paces 5 at 20 a minute (15 s each).
        let mut actions: Vec<Action> = (0..10).map(role).collect();
        actions.extend((0..10).map(|i| members(&format!("g{i}"))));
        actions.extend((10..20).map(role));
        let estimate = estimate(&Plan {
            actions,
            ..Default::default()
        });
        assert!((estimate.seconds - 45.0).abs() < 1e-9, "{estimate:?}");
        assert_eq!(estimate.loads[0].what, "role changes");
        assert_eq!(estimate.loads[0].calls, 20);
        assert_eq!(duration_words(estimate.seconds), "about 1 min");
        assert_eq!(duration_words(2.0 * 3600.0 + 600.0), "about 2 h 10 min");
        assert_eq!(duration_words(20.0), "under a minute");
    }

    #[test]
    fn a_wave_of_leavers_is_signed_out_a_thousand_a_call_after_one_alone() {
        // 2,400 sign-outs: one reset, then 2,399 in three bulk calls, inside the burst.
        let estimate = estimate(&Plan {
            actions: (0..2400).map(signout).collect(),
            ..Default::default()
        });
        assert_eq!(estimate.calls, 4);
        assert_eq!(estimate.seconds, 0.0);
        assert_eq!(estimate.loads[0].what, "sign-outs");
        let one = super::estimate(&Plan {
            actions: vec![signout(1)],
            ..Default::default()
        });
        assert_eq!(one.calls, 1);
        let few = super::estimate(&Plan {
            actions: (0..6).map(signout).collect(),
            ..Default::default()
        });
        assert_eq!(few.calls, 6);
    }

    #[test]
    fn invites_go_a_hundred_people_a_call_and_nothing_is_nothing() {
        let people = (0..250)
            .map(|n| crate::plan::action::Addition {
                person: Person {
                    email: format!("p{n}@x"),
                    user_id: SlackId::Live(format!("U{n}")),
                },
                grants: Vec::new(),
            })
            .collect();
        let plan = Plan {
            actions: vec![Action::InviteToChannel {
                workspace: "T1".into(),
                channel: "general".into(),
                channel_id: SlackId::Live("C1".into()),
                people,
            }],
            ..Default::default()
        };
        assert_eq!(estimate(&plan).calls, 3);
        assert_eq!(estimate(&Plan::default()).words(), "nothing to write");
    }
}
