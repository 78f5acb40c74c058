//! The report of `import`: what was imported with which rule, the exceptions, and what
//! was left unmanaged. Text for people; the JSON document is the report serialised.

use std::fmt::Write as _;

use crate::adopt::{Imported, Report};

/// The JSON report, versioned.
pub fn json(report: &Report) -> String {
    let document = serde_json::json!({ "version": 1, "import": report });
    let mut text = serde_json::to_string_pretty(&document).expect("a report serialises");
    text.push('\n');
    text
}

/// The report for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for (what, items) in [
        ("usergroups", &report.usergroups),
        ("channels", &report.channels),
    ] {
        let _ = writeln!(out, "Imported {} {what}:", items.len());
        for item in items {
            line(&mut out, item);
        }
        out.push('\n');
    }
    if !report.unmanaged.is_empty() {
        let _ = writeln!(out, "Left unmanaged ({}):", report.unmanaged.len());
        for item in &report.unmanaged {
            let _ = writeln!(out, "  {} in {}: {}", item.target, item.workspace, item.why);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Wrote {} file(s):", report.files.len());
    for file in &report.files {
        let _ = writeln!(out, "  {file}");
    }
    if !report.removed.is_empty() {
        let _ = writeln!(
            out,
            "Removed {} file(s) an earlier import wrote:",
            report.removed.len()
        );
        for file in &report.removed {
            let _ = writeln!(out, "  {file}");
        }
    }
    out
}

fn line(out: &mut String, item: &Imported) {
    let mut rule: Vec<String> = Vec::new();
    if !item.usergroups.is_empty() {
        rule.push(format!("usergroups {}", item.usergroups.join(", ")));
    }
    if !item.groups.is_empty() {
        rule.push(format!("groups {}", item.groups.join(", ")));
    }
    if !item.exclude.is_empty() {
        rule.push(format!("minus {}", item.exclude.join(", ")));
    }
    let rule = if rule.is_empty() {
        "an explicit list".to_string()
    } else {
        rule.join(" ")
    };
    let target = if item.target.starts_with('#') {
        format!("{} in {}", item.target, item.workspaces.join(", "))
    } else {
        item.target.clone()
    };
    let _ = write!(
        out,
        "  {target} ({}): {rule}, explains {} of {}",
        item.file, item.explained, item.members
    );
    for (count, what) in [
        (item.added_by_hand.len(), "added by hand"),
        (item.left_out.len(), "left out by name"),
        (item.missed_deprovisions.len(), "missed deprovisions"),
        (item.unknown.len(), "unknown to the identity provider"),
        (item.protected.len(), "protected, kept"),
    ] {
        if count > 0 {
            let _ = write!(out, "; {count} {what}");
        }
    }
    out.push('\n');
}
