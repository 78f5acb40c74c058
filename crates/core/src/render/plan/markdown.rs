//! The plan as pull-request comments: the verdict first, leavers and what they lose,
//! one collapsible section per usergroup and channel, split under GitHub's limit.

use super::*;

/// The banner at the top of a pull-request comment. A refusal that only Rego denials an
/// approval may override make says so (the policy section shows the approval to write).
fn banner(verdict: &Verdict, policy: Option<&crate::rego::Outcome>) -> String {
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
            let overridable = policy.is_some_and(|outcome| {
                outcome.only_overridable_refusals() && outcome.refusals().len() == reasons.len()
            });
            let mut text = String::from(if overridable {
                "> [!CAUTION]\n> **Refused** until an approval overrides these policy denials (see Policy checks below):\n"
            } else {
                "> [!CAUTION]\n> **Refused.** This plan will not be applied, with or without approval:\n"
            });
            for reason in reasons {
                let _ = writeln!(text, "> - {reason}");
            }
            if let (true, Some(hash)) =
                (overridable, policy.and_then(|p| p.guardrail_hash.as_ref()))
            {
                let _ = writeln!(
                    text,
                    ">\n> The plan also exceeds a guardrail: merge, with the override, an approval of the plan hash `{hash}`."
                );
            }
            text.push('\n');
            text
        }
    }
}

/// The policy checks: each of the repository's Rego policies, passed, warned or denied,
/// with its messages; and any policy that is broken.
fn policy_section(outcome: &crate::rego::Outcome) -> String {
    let mut out = format!(
        "### Policy checks ({})

",
        outcome.packages.len()
    );
    out.push_str("| policy | result | message |\n|---|---|---|\n");
    for package in &outcome.packages {
        let findings: Vec<&crate::rego::Finding> = outcome
            .findings
            .iter()
            .filter(|f| &f.package == package)
            .collect();
        if findings.is_empty() {
            let _ = writeln!(out, "| `{}` | passed | |", cell(package));
        }
        for finding in findings {
            let result = match (&finding.level, &finding.overridden_by) {
                (crate::rego::Level::Deny, None) => "**denied**".to_string(),
                (crate::rego::Level::Deny, Some(file)) => {
                    format!("denied, overridden by `{}`", cell(file))
                }
                (crate::rego::Level::Warn, _) => "warned".to_string(),
            };
            let id = finding
                .id
                .as_deref()
                .map_or_else(String::new, |id| format!("`{}` ", cell(id)));
            let place = match (&finding.file, finding.line) {
                (Some(file), Some(line)) => format!(" ({}:{line})", cell(file)),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| `{}` | {result} | {id}{}{place} |",
                cell(package),
                cell(&finding.message)
            );
        }
    }
    for problem in &outcome.problems {
        let line = problem
            .span
            .map_or(String::new(), |s| format!(":{}", s.start.line));
        let _ = writeln!(
            out,
            "| `{}{line}` | **broken** ({}) | {} |",
            cell(&problem.file),
            problem.code.as_str(),
            cell(&problem.message)
        );
    }
    out.push('\n');
    out.push_str(&override_note(outcome));
    out
}

/// How to override the denials an approval may override and none has yet: the approval
/// file to merge, with the override hash and the ids.
fn override_note(outcome: &crate::rego::Outcome) -> String {
    let open: Vec<&crate::rego::Finding> = outcome
        .findings
        .iter()
        .filter(|f| f.awaits_override())
        .collect();
    let (Some(hash), false) = (&outcome.override_hash, open.is_empty()) else {
        return String::new();
    };
    // Ids are the policy's words: quoted as YAML strings, and fenced past any backticks.
    let ids: std::collections::BTreeSet<String> = open
        .iter()
        .filter_map(|f| f.id.as_deref())
        .map(yaml_scalar)
        .collect();
    let mut out = String::from(
        "To override a denial above, merge a file `approvals/<name>.yaml` with this change (its hash covers this plan and these denials):\n\n",
    );
    let body = format!(
        "apiVersion: slack-gitops/v1\nkind: Approval\nhash: {hash}\nreason: <why this change is right>\napproved_by: [<emails>]\noverrides: [{}]\n",
        ids.into_iter().collect::<Vec<_>>().join(", ")
    );
    let _ = write!(
        out,
        "{fence}yaml\n{body}{fence}\n\n",
        fence = fence_for(&body)
    );
    for finding in open {
        let _ = writeln!(
            out,
            "- {}: approved by {} of {}",
            code_span(finding.id.as_deref().unwrap_or_default()),
            finding.approvals_needed(),
            finding.overridable_by.join(", ")
        );
    }
    out.push('\n');
    out
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

/// `text` as a YAML flow scalar: plain when it reads back as the same string (a name
/// such as `acme.admin_deactivation`), else double-quoted.
fn yaml_scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A code fence longer than any run of backticks in `body`, so the body cannot close it.
fn fence_for(body: &str) -> String {
    "`".repeat(longest_backtick_run(body).max(2) + 1)
}

/// `text` as a code span, delimited by more backticks than any run inside it.
fn code_span(text: &str) -> String {
    let ticks = "`".repeat(longest_backtick_run(text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
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
            let body = capped(&lines, rows);
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
    let body = capped(&lines, rows);
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
    if let Some(read) = &context.slack_read {
        parts.push(read.words());
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
    out.push_str(&banner(report.verdict, report.policy));
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
    if let Some(outcome) = report.policy {
        out.push_str(&policy_section(outcome));
    }
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
    if !plan.manual_steps.is_empty() {
        let lines: Vec<String> = plan
            .manual_steps
            .iter()
            .map(|step| format!("| `{}` | {} |", cell(&step.email), cell(&step.instruction)))
            .collect();
        blocks.push(format!(
            "### Manual steps ({}): no API for these on this Slack plan\n\n{}\n",
            lines.len(),
            table("| person | what to do in Slack |\n|---|---|", &lines, rows)
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

/// At most `rows` of `lines`, then how many more there are: a line each.
fn capped(lines: &[String], rows: usize) -> String {
    let mut body = String::new();
    for line in lines.iter().take(rows) {
        let _ = writeln!(body, "{line}");
    }
    if let Some(line) = more(lines.len(), rows) {
        let _ = writeln!(body, "{line}");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The approval the comment suggests reads back with every id as the policy wrote it,
    /// whatever the id holds, and its fence holds whatever backticks an id has.
    #[test]
    fn the_suggested_override_approval_reads_back_with_its_ids() {
        let ids = [
            "acme.admin_deactivation",
            "a: b, c]",
            "x # y",
            "true",
            "```",
            "quote \" and \\ slash",
            ".inf",
            "-",
            "~",
            "y",
            "1e3",
            "Null",
        ];
        let findings = ids
            .iter()
            .map(|id| crate::rego::Finding::overridable_denial("p", id, &format!("denied {id}")))
            .collect::<Vec<_>>();
        let outcome = crate::rego::Outcome {
            override_hash: crate::rego::override_hash("sha256:00", &findings),
            findings,
            ..Default::default()
        };
        let note = override_note(&outcome);
        assert!(note.contains(", \"```\", "), "{note}");
        assert!(note.contains(", acme.admin_deactivation]"), "{note}");
        assert!(
            note.contains("- ```` ``` ````: approved by 1 of a@x.example"),
            "{note}"
        );
        let (fence, rest) = note.split_once("yaml\n").unwrap();
        let fence = fence.rsplit('\n').next().unwrap();
        assert_eq!(fence, "````");
        let body = rest.split_once(&format!("\n{fence}\n")).unwrap().0;
        let document = crate::config::yaml::parse("approvals/a.yaml", body).unwrap();
        let mut read: Vec<&str> = document.value["overrides"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .collect();
        read.sort_unstable();
        let mut expected = ids.to_vec();
        expected.sort_unstable();
        assert_eq!(read, expected);
    }
}
