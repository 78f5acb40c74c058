//! The plan for a terminal: one line per action in execution order.

use super::*;

/// Terminal text; `color` adds ANSI colour to additions, removals and the verdict.
pub fn text(report: &PlanReport, color: bool) -> String {
    let plan = report.plan;
    let adoption = report.adoption();
    let paint = Paint(color);
    let mut out = String::new();
    if adoption {
        let _ = writeln!(
            out,
            "{}",
            paint.code(
                "1;33",
                "First run against an org with much drift: removals are summarised per usergroup and channel (--format json lists each one)."
            )
        );
    }
    action_lines(&mut out, plan, adoption, paint);
    if let Some(outcome) = report.policy {
        for finding in &outcome.findings {
            let overridden;
            let (mark, word) = match (&finding.level, &finding.overridden_by) {
                (crate::rego::Level::Deny, None) => ("1;31", "denies"),
                (crate::rego::Level::Deny, Some(file)) => {
                    overridden = format!("denies (overridden by {file})");
                    ("1;33", overridden.as_str())
                }
                (crate::rego::Level::Warn, _) => ("1;33", "warns"),
            };
            let id = finding
                .id
                .as_deref()
                .map_or_else(String::new, |id| format!("[{id}] "));
            let line = format!(
                "! policy {} {word}: {id}{}",
                finding.package, finding.message
            );
            let _ = writeln!(out, "{}", paint.code(mark, &line));
        }
        if let Some(hash) = &outcome.override_hash
            && outcome.findings.iter().any(|f| f.awaits_override())
        {
            let _ = writeln!(out, "! an approval overriding a denial carries hash {hash}");
            if let Some(plan) = &outcome.guardrail_hash {
                let _ = writeln!(
                    out,
                    "! the plan also exceeds a guardrail: a second approval carries hash {plan}"
                );
            }
        }
    }
    if adoption {
        adoption_lines(&mut out, plan, paint);
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
        let _ = writeln!(out, "{}", paint.code("35", &line));
    }
    for step in &plan.manual_steps {
        let _ = writeln!(out, "{}", paint.code("35", &manual_step_line(step)));
    }
    if let Some(read) = &report.context.slack_read {
        let mut words = read.words();
        words[..1].make_ascii_uppercase();
        let _ = writeln!(out, "{words}");
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
    let verdict = verdict_line(report.verdict);
    let _ = writeln!(out, "{}", paint.code(verdict_colour, &verdict));
    let _ = writeln!(out, "{}", paint.code("1", &summary(plan)));
    out
}

/// ANSI colour when on.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn code(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green for an addition (`+`), red for a removal (`-`), yellow otherwise.
    fn line(self, line: &str) -> String {
        let code = match line.chars().next() {
            Some('+') => "32",
            Some('-') => "31",
            _ => "33",
        };
        self.code(code, line)
    }
}

/// Each action's head and the people it lists (at most [`ROWS`]); under adoption,
/// membership removals are left to [`adoption_lines`].
fn action_lines(out: &mut String, plan: &Plan, adoption: bool, paint: Paint) {
    for action in &plan.actions {
        let adoption_summary = adoption
            && matches!(
                action,
                Action::SetUsergroupMembers { .. } | Action::KickFromChannel { .. }
            );
        if adoption_summary {
            continue;
        }
        let _ = writeln!(out, "{}", paint.line(&action_head(action)));
        let people = action_people(action);
        for line in people.iter().take(ROWS) {
            let _ = writeln!(out, "    {}", paint.line(line));
        }
        if let Some(line) = more(people.len(), ROWS) {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// One line per usergroup or channel whose members change, counted by kind of drift.
fn adoption_lines(out: &mut String, plan: &Plan, paint: Paint) {
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
        let _ = writeln!(out, "{}", paint.code("33", &line));
    }
}
