//! Plans for people (text, markdown) and machines (JSON).
//!
//! Text is for a terminal: one line per action in execution order, each person with the
//! reason they are added or removed. Markdown is for a pull-request comment: the verdict
//! first, leavers and what they lose next, then one collapsible section per usergroup and
//! channel, capped so the comment stays under GitHub's limit. JSON carries everything.
//!
//! On a first run against an org with much drift (no last good snapshot, many removals)
//! the people-facing formats show an adoption summary per usergroup and channel instead of
//! a wall of removals; the JSON still lists every action.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::plan::action::{
    Action, Addition, Awaiting, Drift, Grant, Impact, ManualStep, Person, Plan, Removal, SignOut,
};
use crate::policy::{Counts, IdentityCounts, Verdict, limit_words};

mod json;
mod markdown;
mod text;

pub use json::{PlanDocument, json, policy_plan, write_json};
pub use markdown::{GITHUB_COMMENT_LIMIT, MAX_COMMENTS, markdown, markdown_comments, marker};
pub use text::text;

/// The version of the JSON plan document.
pub const JSON_VERSION: u32 = 1;

/// GitHub refuses comments over 65,536 characters; stay under it with room to spare.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Rows shown per section before "and N more" (markdown) and people per action (text).
const ROWS: usize = 25;

/// More removals than this on a first run switch to the adoption summary.
const ADOPTION_THRESHOLD: usize = ROWS;

/// Everything a rendering needs: the plan, its verdict and the identity snapshot's size.
#[derive(Debug, Clone)]
pub struct PlanReport<'a> {
    pub plan: &'a Plan,
    pub verdict: &'a Verdict,
    pub identity: &'a IdentityCounts,
    /// No last good snapshot is known: this may be the first run against the org.
    pub first_run: bool,
    /// What selects each managed usergroup's and channel's members, digested
    /// ([`crate::plan::desired::Desired::mapping_digests`]), for later plans to compare.
    pub mappings: &'a BTreeMap<String, String>,
    /// Where the plan was made, for the pull-request comment.
    pub context: PlanContext,
    /// What the repository's Rego policies said of this plan, when it has any.
    pub policy: Option<&'a crate::rego::Outcome>,
}

/// Where a plan was made: what a reviewer needs to trust the comment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanContext {
    /// The config directory inside its repository (`examples/acme`, `.` at the root):
    /// the comment's marker, so it is found and updated in place.
    pub config_dir: Option<String>,
    /// The commit planned at.
    pub commit: Option<String>,
    /// The working tree had uncommitted changes.
    pub dirty: bool,
    /// Workspace keys from the config and their team ids.
    pub workspaces: Vec<(String, String)>,
    /// The change lines of the previous plan on the same pull request (`--baseline`),
    /// when it recorded them.
    pub previous: Option<Vec<String>>,
    /// Where live Slack came from, when the controller planned from its mirror.
    pub slack_read: Option<SlackRead>,
}

/// Live Slack taken from the controller's mirror: what a reviewer needs to know how
/// fresh the plan's view is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SlackRead {
    /// Objects read from Slack for this plan (stale copies, and everything it changes).
    pub read_live: usize,
    /// Objects taken from the mirror.
    pub mirrored: usize,
    /// The oldest verification (unix ms) among the mirrored copies taken.
    pub oldest_verified_at: Option<i64>,
    /// When the plan was made (unix ms).
    pub planned_at: i64,
}

impl SlackRead {
    /// "live Slack from the controller's mirror: 5 objects read live, 3412 mirrored,
    /// the oldest verified 4 min before this plan".
    pub fn words(&self) -> String {
        let oldest = match self.oldest_verified_at {
            Some(at) => format!(
                ", the oldest verified {} before this plan",
                age_words(self.planned_at - at)
            ),
            None => String::new(),
        };
        format!(
            "live Slack from the controller's mirror: {} read live, {} mirrored{oldest}",
            objects(self.read_live),
            self.mirrored
        )
    }
}

fn objects(count: usize) -> String {
    match count {
        1 => "1 object".to_string(),
        n => format!("{n} objects"),
    }
}

/// A duration in words, rounded down: "40 s", "4 min", "3 h", "2 days".
fn age_words(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} days", s / 86_400),
    }
}

impl PlanReport<'_> {
    /// Whether people see the adoption summary rather than every removal.
    pub fn adoption(&self) -> bool {
        self.first_run && removal_count(self.plan) > ADOPTION_THRESHOLD
    }
}

fn removal_count(plan: &Plan) -> usize {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::SetUsergroupMembers { removes, .. } => removes.len(),
            Action::KickFromChannel { .. } => 1,
            _ => 0,
        })
        .sum()
}

/// Words for a drift, as a reviewer reads them.
pub fn explain(drift: Drift) -> &'static str {
    match drift {
        Drift::GhostAccount => "ghost account",
        Drift::MissedDeprovision => "missed deprovision",
        Drift::OutOfScope => "out of scope",
        Drift::NotSelected => "not selected",
        Drift::Moved => "moved in the IdP",
        Drift::MappingChanged => "mapping changed",
        Drift::ManualAdd => "manual add in Slack",
    }
}

fn removal_words(removal: &Removal) -> String {
    format!("{}: {}", explain(removal.drift), removal.why)
}

fn grant_words(grant: &Grant) -> String {
    if grant.via.is_empty() {
        format!("listed by email, {}", grant.rule)
    } else {
        format!("via {}, {}", grant.via.join(" > "), grant.rule)
    }
}

fn addition_words(addition: &Addition) -> String {
    let grants: Vec<String> = addition.grants.iter().map(grant_words).collect();
    format!("{} ({})", who(&addition.person), grants.join("; "))
}

/// Counts per kind of change, for the summary line and table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub create: usize,
    pub reactivate: usize,
    pub deactivate: usize,
    pub usergroup_adds: usize,
    pub usergroup_removes: usize,
    pub channel_invites: usize,
    pub channel_removals: usize,
    pub profile_updates: usize,
    pub workspace_assignments: usize,
    pub structure: usize,
}

pub fn tally(plan: &Plan) -> Tally {
    let mut t = Tally::default();
    for action in &plan.actions {
        match action {
            Action::CreateUser { .. } => t.create += 1,
            Action::ReactivateUser { .. } => t.reactivate += 1,
            Action::DeactivateUser { .. } => t.deactivate += 1,
            Action::SetUsergroupMembers { adds, removes, .. } => {
                t.usergroup_adds += adds.len();
                t.usergroup_removes += removes.len();
            }
            Action::InviteToChannel { people, .. } => t.channel_invites += people.len(),
            Action::KickFromChannel { .. } => t.channel_removals += 1,
            Action::UpdateProfile { .. } => t.profile_updates += 1,
            Action::AssignWorkspace { .. } => t.workspace_assignments += 1,
            Action::CreateUsergroup { .. }
            | Action::UpdateUsergroup { .. }
            | Action::EnableUsergroup { .. }
            | Action::DisableUsergroup { .. }
            | Action::CreateChannel { .. } => t.structure += 1,
            Action::ResetSessions { .. } => {}
            Action::SetRole { .. } => t.profile_updates += 1,
        }
    }
    t
}

/// The one-line summary: "Plan: 4 people to create, 3 to deactivate, ...".
pub fn summary(plan: &Plan) -> String {
    if plan.actions.is_empty() {
        return "Plan: no changes. Slack matches the config.".into();
    }
    let t = tally(plan);
    format!(
        "Plan: {} to create, {} to reactivate, {} to deactivate, \
         {} usergroup memberships to add, {} to remove, {} channel invites, \
         {} channel removals, {} profile updates, {} usergroup and channel changes",
        count(t.create, "person", "people"),
        t.reactivate,
        t.deactivate,
        t.usergroup_adds,
        t.usergroup_removes,
        t.channel_invites,
        t.channel_removals,
        t.profile_updates,
        t.structure
    )
}

fn who(person: &Person) -> String {
    match person.user_id.live() {
        Some(id) => format!("{} ({id})", person.email),
        None => person.email.clone(),
    }
}

fn fields_words<F: std::fmt::Display>(fields: &[crate::plan::action::FieldChange<F>]) -> String {
    fields
        .iter()
        .map(|f| match f.from.as_str() {
            "" => format!("{}: (none) -> \"{}\"", f.field, f.to),
            from => format!("{}: \"{from}\" -> \"{}\"", f.field, f.to),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A just-in-time joiner: SSO creates the account; later syncs add the memberships.
fn awaiting_line(awaiting: &Awaiting) -> String {
    let joins: Vec<&str> = awaiting
        .usergroups
        .iter()
        .chain(&awaiting.channels)
        .map(String::as_str)
        .collect();
    format!(
        "  {} joins at first login through SSO (just-in-time, {}){}",
        awaiting.email,
        grant_words(&awaiting.grant),
        if joins.is_empty() {
            String::new()
        } else {
            format!("; then: {}", joins.join(", "))
        }
    )
}

/// What a leaver loses: "T0000MAIN/@eng, T0000MAIN/#eng, app Deploy notifier (A1) in T1".
fn impact_words(impact: &Impact) -> String {
    let mut parts: Vec<String> = impact
        .usergroups
        .iter()
        .chain(&impact.channels)
        .cloned()
        .collect();
    if let Some(apps) = &impact.apps {
        parts.extend(apps.iter().map(|a| format!("app {a}")));
    }
    parts.join(", ")
}

/// A step a person must do by hand: `! manual step for EMAIL: INSTRUCTION`.
pub fn manual_step_line(step: &ManualStep) -> String {
    format!("! manual step for {}: {}", step.email, step.instruction)
}

/// "1 person" / "2 people"; "1 group" / "2 groups".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The head line of an action, without the people it lists.
///
/// One piece: one arm per [`Action`] variant, exhaustive, so a new action cannot go
/// unrendered; each arm is a single `format!`.
fn action_head(action: &Action) -> String {
    match action {
        Action::CreateUser { person, grant, .. } => {
            format!(
                "+ create account {} (joiner {})",
                who(person),
                grant_words(grant)
            )
        }
        Action::ReactivateUser { person } => format!("+ reactivate {}", who(person)),
        Action::UpdateProfile { person, fields } => format!(
            "~ update the profile of {}: {}",
            who(person),
            fields_words(fields)
        ),
        Action::AssignWorkspace { person, workspace } => {
            format!("+ add {} to workspace {workspace}", who(person))
        }
        Action::CreateUsergroup {
            workspace,
            handle,
            name,
            rule,
            ..
        } => format!("+ create usergroup @{handle} \"{name}\" in {workspace} ({rule})"),
        Action::UpdateUsergroup {
            workspace,
            handle,
            fields,
            rule,
            ..
        } => format!(
            "~ update usergroup @{handle} in {workspace}: {} ({rule})",
            fields_words(fields)
        ),
        Action::EnableUsergroup {
            workspace, handle, ..
        } => format!("+ re-enable usergroup @{handle} in {workspace} (it has members again)"),
        Action::SetUsergroupMembers {
            workspace,
            handle,
            adds,
            removes,
            rule,
            ..
        } => format!(
            "~ usergroup @{handle} in {workspace} ({rule}): +{} -{}",
            adds.len(),
            removes.len()
        ),
        Action::CreateChannel {
            workspace,
            name,
            private,
            rule,
        } => {
            let kind = if *private {
                "private channel"
            } else {
                "channel"
            };
            let rule = rule.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!("+ create {kind} #{name} in {workspace}{rule}")
        }
        Action::InviteToChannel {
            workspace,
            channel,
            people,
            ..
        } => format!("+ invite {} to #{channel} in {workspace}", people.len()),
        Action::KickFromChannel {
            workspace,
            channel,
            removal,
            ..
        } => format!(
            "- remove {} from #{channel} in {workspace} ({})",
            who(&removal.person),
            removal_words(removal)
        ),
        Action::DisableUsergroup {
            workspace, handle, ..
        } => format!(
            "- disable usergroup @{handle} in {workspace} (it would be empty; Slack cannot empty a usergroup)"
        ),
        Action::DeactivateUser { removal, impact } => {
            let loses = impact_words(impact);
            format!(
                "- deactivate {} ({}){}",
                who(&removal.person),
                removal_words(removal),
                if loses.is_empty() {
                    String::new()
                } else {
                    format!("; loses {loses}")
                }
            )
        }
        Action::ResetSessions {
            person,
            by: SignOut::SessionReset,
        } => format!("- revoke the sessions of {}", who(person)),
        Action::ResetSessions {
            person,
            by: SignOut::Deactivation,
        } => format!(
            "- sign out {} by the deactivation (Business+ has no session API; confirmed by reading the account back)",
            who(person)
        ),
        Action::SetRole {
            person,
            workspace,
            role,
        } => format!(
            "+ give {} the {} role in {workspace}",
            who(person),
            role.as_str()
        ),
    }
}

/// The people an action lists, one line each: `+ email (why)` / `- email (why)`.
fn action_people(action: &Action) -> Vec<String> {
    match action {
        Action::SetUsergroupMembers { adds, removes, .. } => adds
            .iter()
            .map(|a| format!("+ {}", addition_words(a)))
            .chain(
                removes
                    .iter()
                    .map(|r| format!("- {} ({})", who(&r.person), removal_words(r))),
            )
            .collect(),
        Action::InviteToChannel { people, .. } => people
            .iter()
            .map(|a| format!("+ {}", addition_words(a)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Each action as the text plan shows it: its line, then its people indented.
pub fn action_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for action in &plan.actions {
        lines.push(action_head(action));
        lines.extend(
            action_people(action)
                .into_iter()
                .map(|p| format!("    {p}")),
        );
    }
    lines
}

/// "... and N more" after `shown` of `total` rows.
fn more(total: usize, shown: usize) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "... and {} more (every one is in the JSON plan)",
            total - shown
        )
    })
}

fn counts_line(counts: &Counts) -> String {
    format!(
        "{} deactivations, {} usergroup removals, {} channel removals",
        counts.deactivate, counts.remove_from_usergroup, counts.remove_from_channel
    )
}

fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allowed {
            counts,
            approved: false,
        } => format!("Guardrails: within limits ({})", counts_line(counts)),
        Verdict::Allowed {
            counts,
            approved: true,
        } => format!(
            "Guardrails: over a limit, approved ({})",
            counts_line(counts)
        ),
        Verdict::NeedsApproval {
            counts,
            hash,
            exceeded,
        } => {
            let over: Vec<String> = exceeded
                .iter()
                .map(|e| {
                    format!(
                        "{} {} ({:.1}%) exceeds {}",
                        e.kind,
                        e.count,
                        e.percent,
                        limit_words(&e.limit)
                    )
                })
                .collect();
            format!(
                "Guardrails: NEEDS APPROVAL ({}): {}\n  approve with approvals/<name>.yaml carrying hash: {hash}",
                counts_line(counts),
                over.join("; ")
            )
        }
        Verdict::Refused { counts, reasons } => format!(
            "Guardrails: REFUSED ({}): {}",
            counts_line(counts),
            reasons.join("; ")
        ),
    }
}

/// One managed usergroup or channel and what the plan does to it.
#[derive(Default)]
struct Target<'a> {
    title: String,
    heads: Vec<String>,
    adds: Vec<&'a Addition>,
    removes: Vec<&'a Removal>,
}

/// What a section of the plan is about. Usergroups sort before channels (the variants'
/// order), then by workspace and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TargetKind {
    Usergroup,
    Channel,
}

/// Groups the membership and structure actions by the usergroup or channel they touch.
fn targets(plan: &Plan) -> BTreeMap<(TargetKind, String, String), Target<'_>> {
    use TargetKind::{Channel, Usergroup};
    let mut targets: BTreeMap<(TargetKind, String, String), Target> = BTreeMap::new();
    for action in &plan.actions {
        match action {
            Action::CreateUsergroup {
                workspace, handle, ..
            }
            | Action::UpdateUsergroup {
                workspace, handle, ..
            }
            | Action::EnableUsergroup {
                workspace, handle, ..
            }
            | Action::DisableUsergroup {
                workspace, handle, ..
            } => at(&mut targets, Usergroup, workspace, handle)
                .heads
                .push(action_head(action)),
            Action::SetUsergroupMembers {
                workspace,
                handle,
                adds,
                removes,
                rule,
                ..
            } => {
                let target = at(&mut targets, Usergroup, workspace, handle);
                target.title = format!("@{handle} in {workspace} ({rule})");
                target.adds.extend(adds);
                target.removes.extend(removes);
            }
            Action::CreateChannel {
                workspace, name, ..
            } => at(&mut targets, Channel, workspace, name)
                .heads
                .push(action_head(action)),
            Action::InviteToChannel {
                workspace,
                channel,
                people,
                ..
            } => at(&mut targets, Channel, workspace, channel)
                .adds
                .extend(people),
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => at(&mut targets, Channel, workspace, channel)
                .removes
                .push(removal),
            _ => {}
        }
    }
    targets
}

/// The entry for one usergroup or channel.
fn at<'t, 'p>(
    targets: &'t mut BTreeMap<(TargetKind, String, String), Target<'p>>,
    kind: TargetKind,
    workspace: &str,
    name: &str,
) -> &'t mut Target<'p> {
    let key = (kind, workspace.to_string(), name.to_string());
    targets.entry(key).or_insert_with(|| Target {
        title: match kind {
            TargetKind::Usergroup => format!("@{name} in {workspace}"),
            TargetKind::Channel => format!("#{name} in {workspace}"),
        },
        ..Target::default()
    })
}

/// Removals per drift kind: "9 not selected, 3 missed deprovision".
fn by_drift(removes: &[&Removal]) -> String {
    let mut counts: BTreeMap<Drift, usize> = BTreeMap::new();
    for removal in removes {
        *counts.entry(removal.drift).or_default() += 1;
    }
    counts
        .iter()
        .map(|(drift, n)| {
            let words = explain(*drift);
            format!("{n} {}", words.split(':').next().unwrap_or(words))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::{Addition, Grant, Person, SlackId};
    use crate::plan::desired::RuleRef;

    /// `groups` usergroups, each gaining `people` members.
    fn big_plan(groups: usize, people: usize) -> Plan {
        let rule = RuleRef {
            file: "mappings/teams.yaml".into(),
            line: 3,
        };
        let actions = (0..groups)
            .map(|g| {
                let adds: Vec<Addition> = (0..people)
                    .map(|p| Addition {
                        person: Person {
                            email: format!("person-{g}-{p}@acme.example"),
                            user_id: SlackId::Live(format!("U{g:04}{p:04}")),
                        },
                        grants: vec![Grant {
                            rule: rule.clone(),
                            via: vec!["everyone".into(), format!("team-{g}")],
                        }],
                    })
                    .collect();
                Action::SetUsergroupMembers {
                    workspace: "T0000MAIN".into(),
                    usergroup_id: SlackId::Live(format!("S{g:05}")),
                    handle: format!("team-{g}"),
                    members: adds.iter().map(|a| a.person.clone()).collect(),
                    adds,
                    removes: Vec::new(),
                    rule: rule.clone(),
                }
            })
            .collect();
        Plan {
            actions,
            ..Default::default()
        }
    }

    fn report<'a>(
        plan: &'a Plan,
        verdict: &'a Verdict,
        identity: &'a IdentityCounts,
        mappings: &'a BTreeMap<String, String>,
    ) -> PlanReport<'a> {
        PlanReport {
            plan,
            verdict,
            identity,
            first_run: false,
            mappings,
            context: PlanContext {
                config_dir: Some("orgs/acme".into()),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                dirty: false,
                workspaces: vec![("main".into(), "T0000MAIN".into())],
                previous: None,
                slack_read: None,
            },
            policy: None,
        }
    }

    #[test]
    fn a_plan_from_the_mirror_says_how_fresh_its_view_is() {
        let read = SlackRead {
            read_live: 5,
            mirrored: 3412,
            oldest_verified_at: Some(1_000_000),
            planned_at: 1_000_000 + 4 * 60_000 + 30_000,
        };
        assert_eq!(
            read.words(),
            "live Slack from the controller's mirror: 5 objects read live, 3412 mirrored, the oldest verified 4 min before this plan"
        );
        let one = SlackRead {
            read_live: 1,
            oldest_verified_at: None,
            ..read
        };
        assert_eq!(
            one.words(),
            "live Slack from the controller's mirror: 1 object read live, 3412 mirrored"
        );
        assert_eq!(age_words(3 * 3_600_000 + 5), "3 h");
        assert_eq!(age_words(-5), "0 s");
    }

    fn allowed() -> Verdict {
        Verdict::Allowed {
            counts: Default::default(),
            approved: false,
        }
    }

    #[test]
    fn a_plan_too_long_for_one_comment_is_split_into_numbered_marked_comments_not_cut() {
        let plan = big_plan(400, 25);
        let (verdict, identity, mappings) = (allowed(), IdentityCounts::default(), BTreeMap::new());
        let report = report(&plan, &verdict, &identity, &mappings);
        let comments = markdown_comments(&report);
        assert!(
            comments.len() > 1 && comments.len() <= MAX_COMMENTS,
            "{}",
            comments.len()
        );
        let total = comments.len();
        for (i, comment) in comments.iter().enumerate() {
            assert!(comment.len() <= MARKDOWN_LIMIT && comment.len() < GITHUB_COMMENT_LIMIT);
            let first_line = comment.lines().next().unwrap();
            assert_eq!(first_line, marker("orgs/acme", i + 1));
            if i > 0 {
                assert!(
                    comment.contains(&format!("## slack-gitops plan, part {} of {total}", i + 1))
                );
            }
        }
        // Every usergroup is in exactly one comment, whole: nothing was cut.
        let all = comments.concat();
        for g in 0..400 {
            let summary = format!(
                "<code>@team-{g} in T0000MAIN (mappings/teams.yaml:3)</code>: +25 -0</summary>"
            );
            assert_eq!(all.matches(&summary).count(), 1, "@team-{g}");
        }
        assert!(!all.contains("left out to fit"));
        // The markers tell the comments apart: part 1 is not a prefix match of part 2's.
        assert_ne!(marker("orgs/acme", 1), marker("orgs/acme", 2));
        assert!(!marker("orgs/acme", 2).starts_with(&marker("orgs/acme", 1)));
    }

    #[test]
    fn a_small_plan_is_one_comment_with_its_provenance_and_estimate() {
        let plan = big_plan(37, 2);
        let (verdict, identity, mappings) = (allowed(), IdentityCounts::default(), BTreeMap::new());
        let report = report(&plan, &verdict, &identity, &mappings);
        let comments = markdown_comments(&report);
        assert_eq!(comments.len(), 1);
        let comment = &comments[0];
        assert!(
            comment.starts_with("<!-- slack-gitops plan: orgs/acme -->\n## slack-gitops plan\n")
        );
        assert!(comment.contains("Planned at `0123456789ab`"));
        assert!(comment.contains(&format!("plan hash `{}`", crate::policy::plan_hash(&plan))));
        assert!(comment.contains("workspaces main (`T0000MAIN`)"));
        // 37 usergroup updates at Tier 2 (20 a minute, 5 at once): 96 s.
        assert!(
            comment.contains("**Estimated apply time:** about 2 min: 37 usergroup member updates at Tier 2 (20/min)."),
            "{comment}"
        );
        assert!(!comment.contains("Since the last push"));
    }

    #[test]
    fn changes_since_the_last_push_are_listed_both_ways() {
        let before = big_plan(3, 2);
        let mut after = big_plan(3, 2);
        if let Action::SetUsergroupMembers { adds, .. } = &mut after.actions[0] {
            adds.pop();
        }
        after.actions.push(Action::DeactivateUser {
            removal: crate::plan::action::Removal {
                person: Person {
                    email: "gone@acme.example".into(),
                    user_id: SlackId::Live("U9".into()),
                },
                drift: Drift::MissedDeprovision,
                why: "suspended in the identity provider".into(),
            },
            impact: Default::default(),
        });
        let (verdict, identity, mappings) = (allowed(), IdentityCounts::default(), BTreeMap::new());
        let mut report = report(&after, &verdict, &identity, &mappings);
        report.context.previous = Some(before.change_lines());
        let comment = markdown(&report);
        assert!(
            comment.contains("**Since the last push:** 1 new, 1 no longer planned."),
            "{comment}"
        );
        assert!(comment.contains("+ deactivate gone@acme.example\n"));
        assert!(comment.contains("- add person-0-1@acme.example to T0000MAIN/@team-0\n"));
        report.context.previous = Some(after.change_lines());
        assert!(markdown(&report).contains("**Since the last push:** no change to the plan."));
    }
}
