//! The apply report for people (text, markdown for a PR or chat) and machines (JSON).
//! Pure: the report in, text out.

use std::fmt::Write;

use super::{ApplyOutcome, ApplyReport};
use crate::apply::executor::{Outcome, tally};

/// The version of the JSON apply report.
pub const JSON_VERSION: u32 = 1;

/// Rows per list before "and N more".
const ROWS: usize = 50;

fn headline(report: &ApplyReport) -> String {
    let at = report
        .commit
        .as_deref()
        .map(|c| format!(" at {}", &c[..c.len().min(12)]))
        .unwrap_or_default();
    match &report.outcome {
        ApplyOutcome::Refused { .. } => format!("Apply refused{at}: nothing was written."),
        ApplyOutcome::DryRun => format!("Dry run{at}: every check passed; nothing was written."),
        ApplyOutcome::Converged => format!("Converged{at}: a fresh plan shows no changes."),
        ApplyOutcome::Incomplete => format!(
            "Applied{at}, not converged: {} change(s) remain.",
            report.remaining.len()
        ),
        ApplyOutcome::Halted { reason } => format!("HALTED{at}: {reason}"),
    }
}

fn outcome_words(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".into(),
        Outcome::AlreadyDone => "already done (read back)".into(),
        Outcome::Failed(why) => format!("FAILED: {why}"),
        Outcome::Skipped(why) => format!("skipped: {why}"),
    }
}

fn counts_line(report: &ApplyReport) -> String {
    let counts = tally(&report.execution.results);
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(
        "{} action(s): {}; {} call(s) to Slack, {} rate limited",
        report.execution.results.len(),
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        },
        report.calls,
        report.rate_limited
    )
}

/// For a terminal: the headline, each action with its outcome, what is left, the undo.
pub fn text(report: &ApplyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(report));
    match report.run_id {
        Some(run) => {
            let _ = writeln!(out, "Run {run}. Plan hash {}.", report.plan_hash);
        }
        None if !report.plan_hash.is_empty() => {
            let _ = writeln!(out, "Plan hash {}.", report.plan_hash);
        }
        None => {}
    }
    if !report.plan_summary.is_empty() {
        let _ = writeln!(out, "{}", report.plan_summary.trim_end());
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if let ApplyOutcome::Refused { reasons } = &report.outcome {
        for reason in reasons {
            let _ = writeln!(out, "  - {reason}");
        }
    }
    if !report.planned.is_empty() {
        let _ = writeln!(out, "Would do:");
        for line in &report.planned {
            let _ = writeln!(out, "  {line}");
        }
    }
    for run in &report.interrupted {
        let _ = writeln!(
            out,
            "Run {} was interrupted after {} action(s); {} had no recorded outcome and were read back:",
            run.run_id,
            run.finished,
            run.unknown.len()
        );
        for (key, verdict) in &run.unknown {
            let _ = writeln!(out, "  - {key}: {verdict}");
        }
    }
    for result in &report.execution.results {
        let _ = writeln!(
            out,
            "  [{}] {}: {} ({} ms)",
            result.seq + 1,
            result.key,
            outcome_words(&result.outcome),
            result.millis
        );
    }
    if !report.execution.results.is_empty() || report.calls > 0 {
        let _ = writeln!(out, "{}", counts_line(report));
    }
    for leaver in &report.leavers {
        let _ = writeln!(out, "Leaver {}", leaver_line(leaver));
    }
    if !report.manual_steps.is_empty() {
        let _ = writeln!(out, "Manual steps (this Slack plan has no API for them):");
        for step in &report.manual_steps {
            let _ = writeln!(out, "  {}", crate::render::plan::manual_step_line(step));
        }
    }
    if !report.not_stuck.is_empty() {
        let _ = writeln!(out, "Succeeded but shown again by a fresh plan:");
        for key in &report.not_stuck {
            let _ = writeln!(out, "  - {key}");
        }
    }
    if matches!(report.outcome, ApplyOutcome::Incomplete) {
        let _ = writeln!(out, "Still to do (a fresh plan shows):");
        for key in report.remaining.iter().take(ROWS) {
            let _ = writeln!(out, "  - {key}");
        }
        if report.remaining.len() > ROWS {
            let _ = writeln!(out, "  ... and {} more", report.remaining.len() - ROWS);
        }
    }
    if let (ApplyOutcome::Halted { .. }, Some(halt)) = (&report.outcome, &report.execution.halt) {
        if !halt.affected.is_empty() {
            let _ = writeln!(out, "Affected: {}", halt.affected.join(", "));
        }
        if let Some(undo) = &report.undo {
            let _ = writeln!(out, "To undo what this run did: {undo}");
        }
    }
    out
}

fn leaver_line(leaver: &super::LeaverEvidence) -> String {
    let timing = match (leaver.seconds_to_signed_out, leaver.sla_seconds) {
        (Some(seconds), Some(sla)) => format!(
            "signed out {seconds:.1} s after first seen ({} the SLA of {sla} s)",
            if seconds <= sla as f64 {
                "within"
            } else {
                "OVER"
            }
        ),
        (Some(seconds), None) => format!("signed out {seconds:.1} s after first seen"),
        (None, _) => "not signed out yet".to_string(),
    };
    let apps = match &leaver.apps {
        Some(apps) if !apps.is_empty() => format!("; apps to re-own: {}", apps.join(", ")),
        Some(_) => String::new(),
        None => "; installed apps unknown".to_string(),
    };
    format!("{}: {timing}{apps}", leaver.email)
}

/// For a pull request or a chat message.
pub fn markdown(report: &ApplyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### slack-gitops apply\n\n**{}**\n", headline(report));
    if let Some(run) = report.run_id {
        let _ = writeln!(out, "Run `{run}`, plan hash `{}`.\n", report.plan_hash);
    }
    if let ApplyOutcome::Refused { reasons } = &report.outcome {
        for reason in reasons {
            let _ = writeln!(out, "- {reason}");
        }
        out.push('\n');
    }
    if let Some(undo) = &report.undo {
        let _ = writeln!(out, "> To undo: `{undo}`\n");
    }
    if !report.execution.results.is_empty() {
        let _ = writeln!(out, "{}\n", counts_line(report));
        let _ = writeln!(
            out,
            "<details><summary>Actions</summary>\n\n| # | action | outcome | ms |\n|---|---|---|---|"
        );
        for result in report.execution.results.iter().take(ROWS * 4) {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                result.seq + 1,
                result.key,
                outcome_words(&result.outcome).replace('|', "\\|"),
                result.millis
            );
        }
        let _ = writeln!(out, "\n</details>");
    }
    if !report.leavers.is_empty() {
        let _ = writeln!(out, "\n**Leavers**\n");
        for leaver in &report.leavers {
            let _ = writeln!(out, "- {}", leaver_line(leaver));
        }
    }
    if !report.remaining.is_empty() {
        let _ = writeln!(out, "\nStill to do: {} change(s).", report.remaining.len());
    }
    out
}

/// The versioned JSON report.
pub fn json(report: &ApplyReport) -> String {
    #[derive(serde::Serialize)]
    struct Document<'a> {
        version: u32,
        #[serde(flatten)]
        report: &'a ApplyReport,
    }
    let mut text = serde_json::to_string_pretty(&Document {
        version: JSON_VERSION,
        report,
    })
    .expect("a report serialises");
    text.push('\n');
    text
}
