//! Diagnostics as text (cargo-style snippets), GitHub annotations, and JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};

/// The version of the JSON document `validate --format json` prints. Bump it when a
/// field changes meaning or goes away; adding a field does not bump it.
pub const JSON_VERSION: u32 = 1;

/// Cargo-style text: a header, the location, the source line with the span underlined,
/// and the hint. `sources` maps each file to its text, for the snippet.
pub fn text(diagnostics: &[Diagnostic], sources: &BTreeMap<String, String>, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let (label, colour) = match diagnostic.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        let _ = writeln!(
            out,
            "{}{} {}",
            paint(colour, &format!("{label}[{}]", diagnostic.code)),
            paint("1", ":"),
            paint("1", &diagnostic.message)
        );
        let Some(span) = diagnostic.span else {
            let _ = writeln!(out, "  {} {}", paint("1;34", "-->"), diagnostic.file);
            write_help(&mut out, diagnostic, &paint);
            out.push('\n');
            continue;
        };
        let line_number = span.start.line.to_string();
        let gutter = " ".repeat(line_number.len());
        let _ = writeln!(
            out,
            "{gutter}{} {}:{}:{}",
            paint("1;34", "-->"),
            diagnostic.file,
            span.start.line,
            span.start.column
        );
        let source_line = sources
            .get(&diagnostic.file)
            .and_then(|text| text.lines().nth(span.start.line.saturating_sub(1)));
        if let Some(source_line) = source_line {
            let source_line = source_line.replace('\t', " ");
            let width = source_line.chars().count();
            let start = span.start.column.saturating_sub(1).min(width);
            let end = if span.end.line == span.start.line {
                span.end.column.saturating_sub(1).min(width)
            } else {
                width
            };
            let carets = "^".repeat(end.saturating_sub(start).max(1));
            let bar = paint("1;34", "|");
            let _ = writeln!(out, "{gutter} {bar}");
            let _ = writeln!(out, "{} {bar} {source_line}", paint("1;34", &line_number));
            let _ = writeln!(
                out,
                "{gutter} {bar} {}{}",
                " ".repeat(start),
                paint(colour, &carets)
            );
        }
        write_help(&mut out, diagnostic, &paint);
        out.push('\n');
    }
    out
}

fn write_help(out: &mut String, diagnostic: &Diagnostic, paint: &dyn Fn(&str, &str) -> String) {
    if let Some(help) = &diagnostic.help {
        let _ = writeln!(out, "  {} {help}", paint("1;36", "= help:"));
    }
}

/// One line per diagnostic in GitHub Actions' workflow-command syntax, which GitHub shows
/// as an annotation on that line of the pull request's diff.
pub fn github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let command = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = vec![format!("file={}", escape_property(&diagnostic.file))];
        if let Some(span) = diagnostic.span {
            properties.push(format!("line={}", span.start.line));
            properties.push(format!("col={}", span.start.column));
            if span.end.line == span.start.line && span.end.column > span.start.column {
                properties.push(format!("endColumn={}", span.end.column));
            }
        }
        properties.push(format!(
            "title={}",
            escape_property(diagnostic.code.as_str())
        ));
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&message)
        );
    }
    out
}

/// Workflow-command data escaping, as the GitHub Actions toolkit does it.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[derive(Serialize)]
struct JsonDocument<'a> {
    version: u32,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    severity: Severity,
    code: &'static str,
    message: &'a str,
    help: Option<&'a str>,
}

/// `{"version": 1, "diagnostics": [...]}` with one flat object per diagnostic.
pub fn json(diagnostics: &[Diagnostic]) -> String {
    let document = JsonDocument {
        version: JSON_VERSION,
        diagnostics: diagnostics
            .iter()
            .map(|d| JsonDiagnostic {
                file: &d.file,
                line: d.span.map(|s| s.start.line),
                column: d.span.map(|s| s.start.column),
                end_line: d.span.map(|s| s.end.line),
                end_column: d.span.map(|s| s.end.column),
                severity: d.severity,
                code: d.code.as_str(),
                message: &d.message,
                help: d.help.as_deref(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&document).expect("diagnostics serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Code, Span};

    #[test]
    fn github_lines_escape_what_would_break_them() {
        let diagnostic = Diagnostic::error(
            Code::UnknownKey,
            "mappings/a,b.yaml",
            Some(Span::point(3, 5)),
            "100% wrong\nreally",
        );
        assert_eq!(
            github(&[diagnostic]),
            "::error file=mappings/a%2Cb.yaml,line=3,col=5,title=unknown-key::100%25 wrong%0Areally\n"
        );
    }
}
