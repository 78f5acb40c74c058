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
    Action, Addition, Awaiting, Drift, Grant, Impact, Person, Plan, Removal,
};
use crate::policy::{Counts, IdentityCounts, Verdict, limit_words};

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

fn fields_words(fields: &[crate::plan::action::FieldChange]) -> String {
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

/// "1 person" / "2 people"; "1 group" / "2 groups".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The head line of an action, without the people it lists.
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
        Action::ResetSessions { person } => format!("- revoke the sessions of {}", who(person)),
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

/// Groups the membership and structure actions by the usergroup or channel they touch,
/// keyed so usergroups sort before channels, by workspace then name.
fn targets(plan: &Plan) -> BTreeMap<(u8, String, String), Target<'_>> {
    let mut targets: BTreeMap<(u8, String, String), Target> = BTreeMap::new();
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
            } => at(&mut targets, 0, workspace, handle)
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
                let target = at(&mut targets, 0, workspace, handle);
                target.title = format!("@{handle} in {workspace} ({rule})");
                target.adds.extend(adds);
                target.removes.extend(removes);
            }
            Action::CreateChannel {
                workspace, name, ..
            } => at(&mut targets, 1, workspace, name)
                .heads
                .push(action_head(action)),
            Action::InviteToChannel {
                workspace,
                channel,
                people,
                ..
            } => at(&mut targets, 1, workspace, channel).adds.extend(people),
            Action::KickFromChannel {
                workspace,
                channel,
                removal,
                ..
            } => at(&mut targets, 1, workspace, channel)
                .removes
                .push(removal),
            _ => {}
        }
    }
    targets
}

/// The entry for one usergroup (`kind` 0) or channel (`kind` 1).
fn at<'t, 'p>(
    targets: &'t mut BTreeMap<(u8, String, String), Target<'p>>,
    kind: u8,
    workspace: &str,
    name: &str,
) -> &'t mut Target<'p> {
    let key = (kind, workspace.to_string(), name.to_string());
    targets.entry(key).or_insert_with(|| Target {
        title: if kind == 0 {
            format!("@{name} in {workspace}")
        } else {
            format!("#{name} in {workspace}")
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

/// Terminal text; `color` adds ANSI colour to additions, removals and the verdict.
pub fn text(report: &PlanReport, color: bool) -> String {
    let plan = report.plan;
    let adoption = report.adoption();
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let colour_of = |line: &str| match line.chars().next() {
        Some('+') => "32",
        Some('-') => "31",
        _ => "33",
    };
    let mut out = String::new();
    if adoption {
        let _ = writeln!(
            out,
            "{}",
            paint(
                "1;33",
                "First run against an org with much drift: removals are summarised per usergroup and channel (--format json lists each one)."
            )
        );
    }
    for action in &plan.actions {
        let adoption_summary = adoption
            && matches!(
                action,
                Action::SetUsergroupMembers { .. } | Action::KickFromChannel { .. }
            );
        if adoption_summary {
            continue;
        }
        let head = action_head(action);
        let _ = writeln!(out, "{}", paint(colour_of(&head), &head));
        let people = action_people(action);
        for line in people.iter().take(ROWS) {
            let _ = writeln!(out, "    {}", paint(colour_of(line), line));
        }
        if let Some(line) = more(people.len(), ROWS) {
            let _ = writeln!(out, "    {line}");
        }
    }
    if adoption {
        for target in targets(plan).values() {
            if target.adds.is_empty() && target.removes.is_empty() {
                continue;
            }
            let line = format!(
                "~ {}: +{} -{} ({})",
                target.title,
                target.adds.len(),
                target.removes.len(),
                by_drift(&target.removes)
            );
            let _ = writeln!(out, "{}", paint("33", &line));
        }
    }
    for awaiting in plan.awaiting_first_login.iter().take(ROWS) {
        let _ = writeln!(out, "{}", awaiting_line(awaiting));
    }
    if let Some(line) = more(plan.awaiting_first_login.len(), ROWS) {
        let _ = writeln!(out, "  {line}");
    }
    for removal in &plan.blocked_by_protection {
        let line = format!(
            "! {} is protected: not deactivated ({})",
            who(&removal.person),
            removal_words(removal)
        );
        let _ = writeln!(out, "{}", paint("35", &line));
    }
    let _ = writeln!(
        out,
        "Unmanaged (never changed): {} usergroups, {} channels",
        plan.unmanaged_usergroups.len(),
        plan.unmanaged_channels.len()
    );
    let verdict_colour = match report.verdict {
        Verdict::Allowed { .. } => "1;32",
        _ => "1;31",
    };
    let _ = writeln!(
        out,
        "{}",
        paint(verdict_colour, &verdict_line(report.verdict))
    );
    let _ = writeln!(out, "{}", paint("1", &summary(plan)));
    out
}

/// The banner at the top of a pull-request comment.
fn banner(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allowed {
            approved: false, ..
        } => "> [!NOTE]\n> Within every guardrail.\n\n".into(),
        Verdict::Allowed { approved: true, .. } => {
            "> [!IMPORTANT]\n> Over a guardrail, and approved by a merged approval file.\n\n".into()
        }
        Verdict::NeedsApproval { hash, .. } => format!(
            "> [!CAUTION]\n> This change exceeds a guardrail and needs approval. To approve it, merge a file\n\
             > `approvals/<name>.yaml` with this change:\n>\n\
             > ```yaml\n> apiVersion: slack-gitops/v1\n> kind: Approval\n> hash: {hash}\n> reason: <why this change is right>\n> approved_by: [<your email>]\n> ```\n\n"
        ),
        Verdict::Refused { reasons, .. } => {
            let mut text = String::from(
                "> [!CAUTION]\n> **Refused.** This plan will not be applied, with or without approval:\n",
            );
            for reason in reasons {
                let _ = writeln!(text, "> - {reason}");
            }
            text.push('\n');
            text
        }
    }
}

/// A markdown table of rows, capped at `rows` with an "and N more" row.
fn table(header: &str, lines: &[String], rows: usize) -> String {
    let mut out = format!("{header}\n");
    for line in lines.iter().take(rows) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = more(lines.len(), rows) {
        let columns = header
            .lines()
            .next()
            .map_or(1, |h| h.matches('|').count() - 1);
        let _ = writeln!(out, "| {line} |{}", " |".repeat(columns.saturating_sub(1)));
    }
    out
}

/// Escapes `|` so a cell cannot break its table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The leaver table: who is deactivated, why, and what they lose.
fn leavers_section(plan: &Plan, rows: usize) -> String {
    let lines: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeactivateUser { removal, impact } => {
                let loses = impact_words(impact);
                Some(format!(
                    "| `{}` | {} | {} |",
                    cell(&who(&removal.person)),
                    cell(&removal_words(removal)),
                    if loses.is_empty() {
                        "-".to_string()
                    } else {
                        cell(&loses)
                    }
                ))
            }
            _ => None,
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "### Leavers ({}): deactivated, then their sessions revoked\n\n{}\n",
        lines.len(),
        table(
            "| person | why | loses (usergroups, channels, apps they installed) |\n|---|---|---|",
            &lines,
            rows
        )
    )
}

fn summary_table(plan: &Plan, identity: &IdentityCounts) -> String {
    let t = tally(plan);
    let rows: [(&str, usize); 10] = [
        ("accounts to create", t.create),
        ("accounts to reactivate", t.reactivate),
        ("accounts to deactivate", t.deactivate),
        ("usergroup memberships to add", t.usergroup_adds),
        ("usergroup memberships to remove", t.usergroup_removes),
        ("channel invites", t.channel_invites),
        ("channel removals", t.channel_removals),
        ("profile updates", t.profile_updates),
        ("workspace assignments", t.workspace_assignments),
        ("usergroups and channels created or changed", t.structure),
    ];
    let mut out = String::from("| change | count |\n|---|---:|\n");
    for (name, count) in rows.iter().filter(|(_, n)| *n > 0) {
        let _ = writeln!(out, "| {name} | {count} |");
    }
    if !plan.awaiting_first_login.is_empty() {
        let _ = writeln!(
            out,
            "| accounts SSO creates at first login (just-in-time) | {} |",
            plan.awaiting_first_login.len()
        );
    }
    if out.lines().count() == 2 {
        // Nothing changes: no table.
        out.clear();
    }
    let _ = writeln!(
        out,
        "\nIdentity snapshot: {}, {}, {} active in scope.\n",
        count(identity.people as usize, "person", "people"),
        count(identity.groups as usize, "group", "groups"),
        identity.in_scope
    );
    out
}

/// One collapsible section per usergroup and channel.
fn target_sections(plan: &Plan, adoption: bool, rows: usize) -> Vec<String> {
    targets(plan)
        .into_values()
        .map(|target| {
            let mut lines: Vec<String> = target.heads.clone();
            lines.extend(
                target
                    .adds
                    .iter()
                    .map(|a| format!("+ {}", addition_words(a))),
            );
            if adoption && !target.removes.is_empty() {
                lines.push(format!(
                    "- {} people the rules do not select ({}): listed in the JSON plan",
                    target.removes.len(),
                    by_drift(&target.removes)
                ));
            } else {
                lines.extend(
                    target
                        .removes
                        .iter()
                        .map(|r| format!("- {} ({})", who(&r.person), removal_words(r))),
                );
            }
            let mut body = String::new();
            for line in lines.iter().take(rows) {
                let _ = writeln!(body, "{line}");
            }
            if let Some(line) = more(lines.len(), rows) {
                let _ = writeln!(body, "{line}");
            }
            format!(
                "<details><summary><code>{}</code>: +{} -{}</summary>\n\n```diff\n{body}```\n\n</details>\n",
                target.title,
                target.adds.len(),
                target.removes.len()
            )
        })
        .collect()
}

fn accounts_section(plan: &Plan, rows: usize) -> String {
    let lines: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::CreateUser { .. }
                    | Action::ReactivateUser { .. }
                    | Action::UpdateProfile { .. }
                    | Action::AssignWorkspace { .. }
            )
        })
        .map(action_head)
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut body = String::new();
    for line in lines.iter().take(rows) {
        let _ = writeln!(body, "{line}");
    }
    if let Some(line) = more(lines.len(), rows) {
        let _ = writeln!(body, "{line}");
    }
    format!(
        "<details><summary>Accounts ({})</summary>\n\n```diff\n{body}```\n\n</details>\n",
        lines.len()
    )
}

/// GitHub's limit on a comment's body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// The most comments one plan is split into before its tables shrink.
pub const MAX_COMMENTS: usize = 10;

/// The hidden line that opens comment `part` (from 1) of the plan of `config_dir`, so a
/// CI job finds its comments and updates them in place.
pub fn marker(config_dir: &str, part: usize) -> String {
    if part == 1 {
        format!("<!-- slack-gitops plan: {config_dir} -->")
    } else {
        format!("<!-- slack-gitops plan: {config_dir} part {part} -->")
    }
}

/// The plan as one markdown document: the comments one after the other.
pub fn markdown(report: &PlanReport) -> String {
    markdown_comments(report).join("\n")
}

/// The plan as pull-request comments: the verdict banner, where it was planned (commit,
/// hash, workspaces), the estimated apply time, what changed since the last push, a
/// summary table, leavers first with what they lose, then one collapsible section per
/// usergroup and channel. Each comment opens with [`marker`] and stays under
/// [`MARKDOWN_LIMIT`]. A plan too long for one comment is split at section boundaries
/// into numbered comments, never cut; only past [`MAX_COMMENTS`] do the row caps tighten
/// and, last, the final sections give way to a count (the JSON plan keeps everything).
pub fn markdown_comments(report: &PlanReport) -> Vec<String> {
    for rows in [ROWS, 10, 3, 1] {
        if let Some(parts) = pack(report, &markdown_blocks(report, rows, usize::MAX))
            && parts.len() <= MAX_COMMENTS
        {
            return parts;
        }
    }
    let fits = |sections: usize| {
        pack(report, &markdown_blocks(report, 1, sections))
            .filter(|parts| parts.len() <= MAX_COMMENTS)
    };
    let (mut low, mut high) = (0, target_sections(report.plan, report.adoption(), 1).len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if fits(mid).is_some() {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    fits(low).unwrap_or_else(|| {
        vec![format!(
            "{}\n## slack-gitops plan\n\n**{}**\n\nThe plan is too large for comments; read the JSON plan.\n",
            marker(&config_dir(report), 1),
            summary(report.plan)
        )]
    })
}

fn config_dir(report: &PlanReport) -> String {
    report
        .context
        .config_dir
        .clone()
        .unwrap_or_else(|| ".".to_string())
}

/// Packs blocks into comments under [`MARKDOWN_LIMIT`], each opened by its marker and,
/// after the first, a heading saying which part it is. `None` when one block alone is
/// too long.
fn pack(report: &PlanReport, blocks: &[String]) -> Option<Vec<String>> {
    // Room for the marker and the part heading or the "continued" line.
    let room = MARKDOWN_LIMIT.checked_sub(300)?;
    let mut groups: Vec<String> = vec![String::new()];
    for block in blocks {
        if block.len() > room {
            return None;
        }
        let current = groups.last_mut().expect("there is a group");
        if current.len() + block.len() > room {
            groups.push(block.clone());
        } else {
            current.push_str(block);
        }
    }
    let dir = config_dir(report);
    let total = groups.len();
    Some(
        groups
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let part = i + 1;
                let mut text = marker(&dir, part);
                text.push('\n');
                if part > 1 {
                    let _ = writeln!(text, "## slack-gitops plan, part {part} of {total}\n");
                }
                text.push_str(&body);
                if part < total {
                    let _ = writeln!(
                        text,
                        "\n_Continued in the next comment (part {} of {total})._",
                        part + 1
                    );
                }
                text
            })
            .collect(),
    )
}

/// Where the plan was made: commit, hash and the workspaces by name.
fn provenance(report: &PlanReport) -> String {
    let context = &report.context;
    let mut parts = Vec::new();
    if let Some(commit) = &context.commit {
        let short = &commit[..commit.len().min(12)];
        let dirty = if context.dirty {
            " with uncommitted changes"
        } else {
            ""
        };
        parts.push(format!("Planned at `{short}`{dirty}"));
    }
    parts.push(format!(
        "plan hash `{}`",
        crate::policy::plan_hash(report.plan)
    ));
    if !context.workspaces.is_empty() {
        let names: Vec<String> = context
            .workspaces
            .iter()
            .map(|(name, id)| format!("{name} (`{id}`)"))
            .collect();
        parts.push(format!("workspaces {}", names.join(", ")));
    }
    let line = parts.join(" · ");
    let mut chars = line.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    format!("{}{}\n\n", first.unwrap_or_default(), chars.as_str())
}

/// "Since the last push": the changes that are new and those no longer planned.
fn since_last_push(report: &PlanReport, rows: usize) -> String {
    let Some(previous) = &report.context.previous else {
        return String::new();
    };
    let now = report.plan.change_lines();
    let before: std::collections::BTreeSet<&str> = previous.iter().map(String::as_str).collect();
    let after: std::collections::BTreeSet<&str> = now.iter().map(String::as_str).collect();
    let added: Vec<&str> = after.difference(&before).copied().collect();
    let gone: Vec<&str> = before.difference(&after).copied().collect();
    if added.is_empty() && gone.is_empty() {
        return "**Since the last push:** no change to the plan.\n\n".into();
    }
    let mut body = String::new();
    for line in added.iter().take(rows) {
        let _ = writeln!(body, "+ {line}");
    }
    if let Some(line) = more(added.len(), rows) {
        let _ = writeln!(body, "+ {line}");
    }
    for line in gone.iter().take(rows) {
        let _ = writeln!(body, "- {line}");
    }
    if let Some(line) = more(gone.len(), rows) {
        let _ = writeln!(body, "- {line}");
    }
    format!(
        "**Since the last push:** {} new, {} no longer planned.\n\n```diff\n{body}```\n\n",
        added.len(),
        gone.len()
    )
}

/// The document in blocks, each kept whole in one comment.
fn markdown_blocks(report: &PlanReport, rows: usize, max_sections: usize) -> Vec<String> {
    let plan = report.plan;
    let adoption = report.adoption();
    let mut blocks = Vec::new();
    let mut out = String::from("## slack-gitops plan\n\n");
    out.push_str(&banner(report.verdict));
    let _ = writeln!(
        out,
        "**{}**\n\n{}\n",
        summary(plan),
        verdict_line(report.verdict).replace('\n', "<br>")
    );
    out.push_str(&provenance(report));
    let estimate = crate::plan::estimate::estimate(plan);
    let _ = writeln!(
        out,
        "**Estimated apply time:** {}. The writes, paced to Slack's published rate limits; reading Slack before and after comes on top.\n",
        estimate.words()
    );
    out.push_str(&since_last_push(report, rows));
    if adoption {
        out.push_str(
            "> [!WARNING]\n> First run against an org with much drift: the people the rules do not select are \
             counted per usergroup and channel below instead of listed. Review the JSON plan, then adopt \
             (apply with an approval) or change the mappings.\n\n",
        );
    }
    out.push_str(&summary_table(plan, report.identity));
    blocks.push(out);
    blocks.push(leavers_section(plan, rows));
    if !plan.blocked_by_protection.is_empty() {
        let lines: Vec<String> = plan
            .blocked_by_protection
            .iter()
            .map(|r| {
                format!(
                    "| `{}` | {} |",
                    cell(&who(&r.person)),
                    cell(&removal_words(r))
                )
            })
            .collect();
        blocks.push(format!(
            "### Protected, not deactivated ({})\n\n{}\n",
            lines.len(),
            table("| person | why it would go |\n|---|---|", &lines, rows)
        ));
    }
    blocks.push(accounts_section(plan, rows));
    if !plan.awaiting_first_login.is_empty() {
        let mut body = String::new();
        for awaiting in plan.awaiting_first_login.iter().take(rows) {
            let _ = writeln!(body, "{}", awaiting_line(awaiting).trim_start());
        }
        if let Some(line) = more(plan.awaiting_first_login.len(), rows) {
            let _ = writeln!(body, "{line}");
        }
        blocks.push(format!(
            "<details><summary>Joining at first login (just-in-time, {})</summary>\n\n```\n{body}```\n\n</details>\n\n",
            plan.awaiting_first_login.len()
        ));
    }
    let sections = target_sections(plan, adoption, rows);
    if !sections.is_empty() {
        blocks.push(format!(
            "\n### Usergroups and channels ({})\n\n",
            sections.len()
        ));
        blocks.extend(sections.iter().take(max_sections).cloned());
        if sections.len() > max_sections {
            blocks.push(format!(
                "\n_... and {} more usergroups and channels, left out to fit GitHub's comment limit; every one is in the JSON plan._\n",
                sections.len() - max_sections
            ));
        }
    }
    blocks.push(unmanaged_section(plan, rows));
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn unmanaged_section(plan: &Plan, rows: usize) -> String {
    let unmanaged: Vec<String> = plan
        .unmanaged_usergroups
        .iter()
        .map(|(w, h)| format!("@{h} in {w}"))
        .chain(
            plan.unmanaged_channels
                .iter()
                .map(|(w, c)| format!("#{c} in {w}")),
        )
        .collect();
    if unmanaged.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = unmanaged
        .iter()
        .take(rows)
        .map(|u| format!("`{u}`"))
        .collect();
    format!(
        "\n<details><summary>Unmanaged, never changed ({})</summary>\n\n{}{}\n\n</details>\n",
        unmanaged.len(),
        shown.join(", "),
        more(unmanaged.len(), rows)
            .map(|m| format!(" {m}"))
            .unwrap_or_default()
    )
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    summary: String,
    counts: Tally,
    identity: &'a IdentityCounts,
    verdict: &'a Verdict,
    mappings: &'a BTreeMap<String, String>,
    /// The hash of the destructive set, which approvals name.
    hash: String,
    /// The destructive set itself, so `apply --plan` can tell what was reviewed.
    destructive: Vec<String>,
    /// Every change, one line each: what the next plan of the pull request compares with.
    changes: Vec<String>,
    /// The commit planned at, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a str>,
    plan: &'a Plan,
}

/// The parts of a JSON plan that later commands read back: `plan --baseline` (identity
/// counts, mapping digests) and `apply --plan` (the hash and destructive set that were
/// reviewed). Other fields are ignored, so plans of the same major version stay readable.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PlanDocument {
    pub version: u32,
    pub identity: IdentityCounts,
    /// Absent in plans written before they were recorded.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// Absent in plans written before it was recorded.
    #[serde(default)]
    pub hash: Option<String>,
    /// The destructive action set, one canonical line each ([`crate::policy::destructive_set`]).
    #[serde(default)]
    pub destructive: Option<Vec<String>>,
    /// Every change, one line each ([`Plan::change_lines`]); absent in older plans.
    #[serde(default)]
    pub changes: Option<Vec<String>>,
}

impl PlanDocument {
    /// Parses a JSON plan; the error says what is wrong.
    pub fn parse(text: &str) -> Result<PlanDocument, String> {
        let document: PlanDocument = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if document.version != JSON_VERSION {
            return Err(format!(
                "version {} is not {JSON_VERSION}, the version this build reads",
                document.version
            ));
        }
        Ok(document)
    }
}

/// The versioned JSON plan: every action with its provenance.
pub fn json(report: &PlanReport) -> String {
    let mut bytes = Vec::new();
    write_json(report, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// The versioned JSON plan written to `out` as it is serialised: a 200,000-person plan
/// (a hundred megabytes, mostly full member lists) never sits in memory as text.
pub fn write_json(report: &PlanReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_plan(report))?;
    out.write_all(b"\n")
}

fn json_plan<'a>(report: &'a PlanReport) -> JsonPlan<'a> {
    JsonPlan {
        version: JSON_VERSION,
        summary: summary(report.plan),
        counts: tally(report.plan),
        identity: report.identity,
        verdict: report.verdict,
        mappings: report.mappings,
        hash: crate::policy::plan_hash(report.plan),
        destructive: crate::policy::destructive_set(report.plan)
            .into_iter()
            .collect(),
        changes: report.plan.change_lines(),
        commit: report.context.commit.as_deref(),
        plan: report.plan,
    }
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
            },
        }
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
