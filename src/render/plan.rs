//! Plans for people (text, markdown) and machines (JSON).

use std::fmt::Write;

use serde::Serialize;

use crate::plan::diff::{Action, Drift, Person, Plan};
use crate::policy::{Counts, Verdict};

/// The version of the JSON plan document.
pub const JSON_VERSION: u32 = 1;

/// GitHub refuses comments over 65,536 characters; stay well under it.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Rows shown per section in markdown before "and N more".
const ROWS: usize = 25;

/// Words for a drift, as a reviewer reads them.
pub fn explain(drift: Drift) -> &'static str {
    match drift {
        Drift::GhostAccount => "ghost account: active in Slack, unknown to the identity provider",
        Drift::MissedDeprovision => "missed deprovision: suspended in the identity provider",
        Drift::OutOfScope => "outside users.scope",
        Drift::NotSelected => {
            "not selected by the rule: added by hand in Slack, or the mapping changed"
        }
    }
}

/// The one-line summary: "Plan: 4 people to create, 3 to deactivate, ...".
pub fn summary(plan: &Plan) -> String {
    let mut create = 0;
    let mut reactivate = 0;
    let mut deactivate = 0;
    let mut group_adds = 0;
    let mut group_removes = 0;
    let mut invites = 0;
    let mut kicks = 0;
    let mut structure = 0;
    for action in &plan.actions {
        match action {
            Action::CreateUser { .. } => create += 1,
            Action::ReactivateUser { .. } => reactivate += 1,
            Action::DeactivateUser { .. } => deactivate += 1,
            Action::SetUsergroupMembers { adds, removes, .. } => {
                group_adds += adds.len();
                group_removes += removes.len();
            }
            Action::InviteToChannel { people, .. } => invites += people.len(),
            Action::KickFromChannel { .. } => kicks += 1,
            Action::CreateUsergroup { .. }
            | Action::UpdateUsergroup { .. }
            | Action::EnableUsergroup { .. }
            | Action::DisableUsergroup { .. }
            | Action::CreateChannel { .. } => structure += 1,
            Action::UpdateProfile { .. } => structure += 1,
            Action::AssignWorkspace { .. } | Action::ResetSessions { .. } => {}
        }
    }
    if plan.actions.is_empty() {
        return "Plan: no changes. Slack matches the config.".into();
    }
    format!(
        "Plan: {create} people to create, {reactivate} to reactivate, {deactivate} to deactivate, \
         {group_adds} usergroup memberships to add, {group_removes} to remove, {invites} channel invites, \
         {kicks} channel removals, {structure} profile, usergroup and channel changes"
    )
}

fn who(person: &Person) -> String {
    match &person.user_id {
        Some(id) => format!("{} ({id})", person.email),
        None => person.email.clone(),
    }
}

/// One line per action, in execution order.
fn action_line(action: &Action) -> String {
    match action {
        Action::CreateUser { person, rule } => format!("+ create account {} ({rule})", who(person)),
        Action::ReactivateUser { person } => format!("+ reactivate {}", who(person)),
        Action::UpdateProfile { person, fields } => {
            let changes: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: \"{}\" -> \"{}\"", f.field, f.from, f.to))
                .collect();
            format!(
                "~ update the profile of {}: {}",
                who(person),
                changes.join(", ")
            )
        }
        Action::AssignWorkspace { person, workspace } => {
            format!("+ add {} to workspace {workspace}", who(person))
        }
        Action::CreateUsergroup {
            workspace,
            handle,
            name,
            rule,
            ..
        } => {
            format!("+ create usergroup @{handle} \"{name}\" in {workspace} ({rule})")
        }
        Action::UpdateUsergroup {
            workspace,
            handle,
            fields,
            rule,
            ..
        } => {
            let changes: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: \"{}\" -> \"{}\"", f.field, f.from, f.to))
                .collect();
            format!(
                "~ update usergroup @{handle} in {workspace}: {} ({rule})",
                changes.join(", ")
            )
        }
        Action::EnableUsergroup {
            workspace, handle, ..
        } => format!("+ re-enable usergroup @{handle} in {workspace}"),
        Action::SetUsergroupMembers {
            workspace,
            handle,
            adds,
            removes,
            rule,
            ..
        } => {
            let mut line = format!(
                "~ usergroup @{handle} in {workspace} ({rule}): +{} -{}",
                adds.len(),
                removes.len()
            );
            for person in adds {
                let _ = write!(line, "\n    + {}", who(person));
            }
            for (person, drift) in removes {
                let _ = write!(line, "\n    - {} ({})", who(person), explain(*drift));
            }
            line
        }
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
        } => {
            let mut line = format!("+ invite {} to #{channel} in {workspace}", people.len());
            for person in people {
                let _ = write!(line, "\n    + {}", who(person));
            }
            line
        }
        Action::KickFromChannel {
            workspace,
            channel,
            person,
            drift,
            ..
        } => {
            format!(
                "- remove {} from #{channel} in {workspace} ({})",
                who(person),
                explain(*drift)
            )
        }
        Action::DisableUsergroup {
            workspace, handle, ..
        } => {
            format!(
                "- disable usergroup @{handle} in {workspace} (it would be empty; Slack cannot empty a usergroup)"
            )
        }
        Action::DeactivateUser { person, drift } => {
            format!("- deactivate {} ({})", who(person), explain(*drift))
        }
        Action::ResetSessions { person } => format!("- revoke the sessions of {}", who(person)),
    }
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
                        "{} {} ({:.1}%) exceeds max {} / {}%",
                        e.kind,
                        e.count,
                        e.percent,
                        e.limit.max.map_or("-".into(), |m| m.to_string()),
                        e.limit.max_percent.map_or("-".into(), |m| m.to_string())
                    )
                })
                .collect();
            format!(
                "Guardrails: NEEDS APPROVAL ({}): {}\n  approve with approvals/<name>.yaml carrying hash: {hash}",
                counts_line(counts),
                over.join("; ")
            )
        }
    }
}

/// Terminal text; `color` adds ANSI colour to additions, removals and the verdict.
pub fn text(plan: &Plan, verdict: &Verdict, color: bool) -> String {
    let paint = |code: &str, text: String| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let mut out = String::new();
    for action in &plan.actions {
        let line = action_line(action);
        let colour = match line.chars().next() {
            Some('+') => "32",
            Some('-') => "31",
            _ => "33",
        };
        let _ = writeln!(out, "{}", paint(colour, line));
    }
    if !plan.awaiting_first_login.is_empty() {
        let _ = writeln!(
            out,
            "  {} people will get accounts from SSO at first login (just-in-time)",
            plan.awaiting_first_login.len()
        );
    }
    for (person, drift) in &plan.blocked_by_protection {
        let _ = writeln!(
            out,
            "{}",
            paint(
                "35",
                format!(
                    "! {} is protected: not deactivated ({})",
                    who(person),
                    explain(*drift)
                )
            )
        );
    }
    let _ = writeln!(
        out,
        "Unmanaged (never changed): {} usergroups, {} channels",
        plan.unmanaged_usergroups.len(),
        plan.unmanaged_channels.len()
    );
    let verdict_colour = if matches!(verdict, Verdict::NeedsApproval { .. }) {
        "1;31"
    } else {
        "1;32"
    };
    let _ = writeln!(out, "{}", paint(verdict_colour, verdict_line(verdict)));
    let _ = writeln!(out, "{}", paint("1", summary(plan)));
    out
}

/// A markdown section: its title and which actions belong in it.
type Section = (&'static str, fn(&Action) -> bool);

/// A pull-request comment: verdict banner, leavers first, then one collapsible section per
/// kind of change, each capped, and the whole kept under GitHub's comment limit.
pub fn markdown(plan: &Plan, verdict: &Verdict) -> String {
    let mut out = String::from("## slack-gitops plan\n\n");
    match verdict {
        Verdict::Allowed {
            approved: false, ..
        } => out.push_str("> [!NOTE]\n> Within every guardrail.\n\n"),
        Verdict::Allowed { approved: true, .. } => out.push_str(
            "> [!IMPORTANT]\n> Over a guardrail, and approved by a merged approval file.\n\n",
        ),
        Verdict::NeedsApproval { hash, .. } => {
            let _ = write!(
                out,
                "> [!CAUTION]\n> This change exceeds a guardrail and needs approval. Merge an `approvals/*.yaml` with\n> `hash: {hash}` alongside it.\n\n"
            );
        }
    }
    let _ = writeln!(
        out,
        "**{}**\n\n{}\n",
        summary(plan),
        verdict_line(verdict).replace('\n', "<br>")
    );
    let sections: [Section; 4] = [
        ("Leavers", |a| {
            matches!(
                a,
                Action::DeactivateUser { .. } | Action::ResetSessions { .. }
            )
        }),
        ("Accounts", |a| {
            matches!(
                a,
                Action::CreateUser { .. }
                    | Action::ReactivateUser { .. }
                    | Action::UpdateProfile { .. }
                    | Action::AssignWorkspace { .. }
            )
        }),
        ("Usergroups", |a| {
            matches!(
                a,
                Action::CreateUsergroup { .. }
                    | Action::UpdateUsergroup { .. }
                    | Action::EnableUsergroup { .. }
                    | Action::SetUsergroupMembers { .. }
                    | Action::DisableUsergroup { .. }
            )
        }),
        ("Channels", |a| {
            matches!(
                a,
                Action::CreateChannel { .. }
                    | Action::InviteToChannel { .. }
                    | Action::KickFromChannel { .. }
            )
        }),
    ];
    for (title, belongs) in sections {
        let lines: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| belongs(a))
            .map(action_line)
            .collect();
        if lines.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<details{}><summary>{title} ({})</summary>\n\n```diff\n",
            if title == "Leavers" { " open" } else { "" },
            lines.len()
        );
        for line in lines.iter().take(ROWS) {
            let _ = writeln!(out, "{line}");
        }
        if lines.len() > ROWS {
            let _ = writeln!(
                out,
                "... and {} more (the full list is in the JSON plan)",
                lines.len() - ROWS
            );
        }
        out.push_str("```\n\n</details>\n\n");
    }
    if !plan.blocked_by_protection.is_empty() {
        let _ = writeln!(
            out,
            "Protected, not deactivated: {}\n",
            plan.blocked_by_protection
                .iter()
                .map(|(p, _)| format!("`{}`", p.email))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        out,
        "Unmanaged (never changed): {} usergroups, {} channels.",
        plan.unmanaged_usergroups.len(),
        plan.unmanaged_channels.len()
    );
    if out.len() > MARKDOWN_LIMIT {
        let mut cut = MARKDOWN_LIMIT - 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n```\n\n</details>\n\n_The comment was cut to fit GitHub's limit; the full plan is in the JSON artifact._\n");
    }
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    summary: String,
    verdict: &'a Verdict,
    plan: &'a Plan,
}

/// The versioned JSON plan: every action with its reason and rule.
pub fn json(plan: &Plan, verdict: &Verdict) -> String {
    let mut text = serde_json::to_string_pretty(&JsonPlan {
        version: JSON_VERSION,
        summary: summary(plan),
        verdict,
        plan,
    })
    .expect("a plan serialises");
    text.push('\n');
    text
}
