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
#[derive(Debug, Clone, Copy)]
pub struct PlanReport<'a> {
    pub plan: &'a Plan,
    pub verdict: &'a Verdict,
    pub identity: &'a IdentityCounts,
    /// No last good snapshot is known: this may be the first run against the org.
    pub first_run: bool,
    /// What selects each managed usergroup's and channel's members, digested
    /// ([`crate::plan::desired::Desired::mapping_digests`]), for later plans to compare.
    pub mappings: &'a BTreeMap<String, String>,
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

/// A pull-request comment: the verdict banner, a summary table, leavers first with what
/// they lose, then one collapsible section per usergroup and channel. Rows are capped and,
/// if the whole would still pass GitHub's comment limit, the caps tighten and the last
/// sections give way to a count; the JSON plan keeps everything.
pub fn markdown(report: &PlanReport) -> String {
    for rows in [ROWS, 10, 3, 1] {
        let text = markdown_with(report, rows, usize::MAX);
        if text.len() <= MARKDOWN_LIMIT {
            return text;
        }
    }
    // Still too long: keep as many sections as fit.
    let sections = target_sections(report.plan, report.adoption(), 1).len();
    let (mut low, mut high) = (0, sections);
    while low < high {
        let mid = (low + high).div_ceil(2);
        if markdown_with(report, 1, mid).len() <= MARKDOWN_LIMIT {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    markdown_with(report, 1, low)
}

fn markdown_with(report: &PlanReport, rows: usize, max_sections: usize) -> String {
    let plan = report.plan;
    let adoption = report.adoption();
    let mut out = String::from("## slack-gitops plan\n\n");
    out.push_str(&banner(report.verdict));
    let _ = writeln!(
        out,
        "**{}**\n\n{}\n",
        summary(plan),
        verdict_line(report.verdict).replace('\n', "<br>")
    );
    if adoption {
        out.push_str(
            "> [!WARNING]\n> First run against an org with much drift: the people the rules do not select are \
             counted per usergroup and channel below instead of listed. Review the JSON plan, then adopt \
             (apply with an approval) or change the mappings.\n\n",
        );
    }
    out.push_str(&summary_table(plan, report.identity));
    out.push_str(&leavers_section(plan, rows));
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
        let _ = writeln!(
            out,
            "### Protected, not deactivated ({})\n\n{}",
            lines.len(),
            table("| person | why it would go |\n|---|---|", &lines, rows)
        );
    }
    out.push_str(&accounts_section(plan, rows));
    if !plan.awaiting_first_login.is_empty() {
        let mut body = String::new();
        for awaiting in plan.awaiting_first_login.iter().take(rows) {
            let _ = writeln!(body, "{}", awaiting_line(awaiting).trim_start());
        }
        if let Some(line) = more(plan.awaiting_first_login.len(), rows) {
            let _ = writeln!(body, "{line}");
        }
        let _ = writeln!(
            out,
            "<details><summary>Joining at first login (just-in-time, {})</summary>\n\n```\n{body}```\n\n</details>\n",
            plan.awaiting_first_login.len()
        );
    }
    let sections = target_sections(plan, adoption, rows);
    if !sections.is_empty() {
        let _ = writeln!(out, "\n### Usergroups and channels ({})\n", sections.len());
        for section in sections.iter().take(max_sections) {
            out.push_str(section);
        }
        if sections.len() > max_sections {
            let _ = writeln!(
                out,
                "\n_... and {} more usergroups and channels, left out to fit GitHub's comment limit; every one is in the JSON plan._",
                sections.len() - max_sections
            );
        }
    }
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
    if !unmanaged.is_empty() {
        let shown: Vec<String> = unmanaged
            .iter()
            .take(rows)
            .map(|u| format!("`{u}`"))
            .collect();
        let _ = writeln!(
            out,
            "\n<details><summary>Unmanaged, never changed ({})</summary>\n\n{}{}\n\n</details>",
            unmanaged.len(),
            shown.join(", "),
            more(unmanaged.len(), rows)
                .map(|m| format!(" {m}"))
                .unwrap_or_default()
        );
    }
    out
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
    let mut text = serde_json::to_string_pretty(&JsonPlan {
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
        plan: report.plan,
    })
    .expect("a plan serialises");
    text.push('\n');
    text
}
