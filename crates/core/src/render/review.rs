//! The access review for auditors: CSV rows (columns documented in
//! docs/access-review.md), the pieces of the streamed JSON document, and one
//! self-contained HTML page (no external scripts, fonts or styles; it works offline and
//! prints to PDF). Pure: rows in, text out.

use std::fmt::Write;

use crate::review::{
    AccessReview, EXCEPTION, Entitlement, Header, LeaverRow, LeaverSummary, OutOfScope, Summary,
};

/// The entitlement CSV's columns, in order.
pub const ENTITLEMENT_COLUMNS: &[&str] = &[
    "email",
    "slack_id",
    "display_name",
    "idp_status",
    "slack_status",
    "account_type",
    "kind",
    "workspace",
    "name",
    "id",
    "status",
    "granted_since",
    "rule",
    "via",
    "last_change",
    "last_change_at",
    "last_change_run",
    "last_change_commit",
    "approval_hash",
    "approved_by",
    "ticket",
    "note",
];

/// The leaver CSV's columns, in order.
pub const LEAVER_COLUMNS: &[&str] = &[
    "email",
    "slack_id",
    "left_in_idp",
    "first_seen",
    "deactivated",
    "signed_out",
    "seconds_to_deactivation",
    "seconds_to_signed_out",
    "within_sla",
    "run",
    "commit",
];

/// The out-of-scope CSV's columns, in order.
pub const OUT_OF_SCOPE_COLUMNS: &[&str] = &["kind", "workspace", "name", "id", "members"];

/// An entitlement as CSV fields.
pub fn entitlement_fields(row: &Entitlement) -> Vec<String> {
    let change = row.last_change.as_ref();
    let approval = change.and_then(|c| c.approval.as_ref());
    vec![
        row.email.clone(),
        row.slack_id.clone().unwrap_or_default(),
        row.display_name.clone(),
        row.idp_status.clone(),
        row.slack_status.clone(),
        row.account_type.clone(),
        row.kind.clone(),
        row.workspace.clone().unwrap_or_default(),
        row.name.clone(),
        row.id.clone().unwrap_or_default(),
        row.status.clone(),
        row.granted_since.clone(),
        row.rule.clone().unwrap_or_default(),
        row.via.join(" > "),
        change.map(|c| c.change.clone()).unwrap_or_default(),
        change.map(|c| c.at.clone()).unwrap_or_default(),
        change.map(|c| c.run.to_string()).unwrap_or_default(),
        change.and_then(|c| c.commit.clone()).unwrap_or_default(),
        approval.map(|a| a.hash.clone()).unwrap_or_default(),
        approval
            .map(|a| a.approved_by.join(" "))
            .unwrap_or_default(),
        approval.and_then(|a| a.ticket.clone()).unwrap_or_default(),
        row.note.clone(),
    ]
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(T::to_string).unwrap_or_default()
}

/// A leaver as CSV fields.
pub fn leaver_fields(row: &LeaverRow) -> Vec<String> {
    vec![
        row.email.clone(),
        opt(&row.slack_id),
        row.left_in_idp.clone(),
        row.first_seen.clone(),
        opt(&row.deactivated),
        opt(&row.signed_out),
        opt(&row.seconds_to_deactivation),
        opt(&row.seconds_to_signed_out),
        opt(&row.within_sla),
        opt(&row.run),
        opt(&row.commit),
    ]
}

/// An out-of-scope usergroup or channel as CSV fields.
pub fn out_of_scope_fields(row: &OutOfScope) -> Vec<String> {
    vec![
        row.kind.clone(),
        row.workspace.clone(),
        row.name.clone(),
        row.id.clone(),
        opt(&row.members),
    ]
}

/// The JSON document's opening, up to the first entitlement row.
pub fn json_open(version: u32, header: &Header) -> String {
    format!(
        "{{\n\"version\": {version},\n\"header\": {},\n\"entitlements\": [\n",
        serde_json::to_string(header).expect("a header serialises")
    )
}

/// One entitlement row of the JSON document (`first` has no comma before it).
pub fn json_row(row: &Entitlement, first: bool) -> String {
    let line = serde_json::to_string(row).expect("a row serialises");
    if first {
        format!("{line}\n")
    } else {
        format!(",{line}\n")
    }
}

/// The JSON document's close: the other lists, the summaries and the digest.
pub fn json_close(
    out_of_scope: &[OutOfScope],
    leavers: &[LeaverRow],
    leaver_summary: &LeaverSummary,
    summary: &Summary,
    digest: &str,
) -> String {
    fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
        serde_json::to_string(value).expect("serialises")
    }
    format!(
        "],\n\"out_of_scope\": {},\n\"leavers\": {},\n\"leaver_summary\": {},\n\"summary\": {},\n\"digest\": {}\n}}\n",
        json(out_of_scope),
        json(leavers),
        json(leaver_summary),
        json(summary),
        json(digest)
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ink:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#f6f7f9; --ok:#1f7a4d; --warn:#a15c00; --bad:#b42318; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); margin: 0; background: #fff; }
header { padding: 28px 40px 18px; border-bottom: 3px solid var(--ink); }
header h1 { margin: 0 0 6px; font-size: 22px; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 10px 0 0; color: var(--muted); }
header dt { font-weight: 600; color: var(--ink); }
main { padding: 18px 40px 40px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
.card b { display: block; font-size: 24px; }
.card span { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); position: sticky; top: 0; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \25B2"; } th[aria-sort="descending"]::after { content: " \25BC"; }
tr.exception td.status { color: var(--warn); font-weight: 600; } tr.pending td.status { color: var(--muted); }
td.breach { color: var(--bad); font-weight: 600; } td.within { color: var(--ok); }
.controls { display: flex; gap: 10px; margin: 8px 0 10px; }
.controls input, .controls select { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; }
.muted { color: var(--muted); } code { font-size: 12px; }
@media print { th { position: static; } .controls { display: none; } header { border-bottom-width: 1px; } a { color: inherit; } }
"#;

const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('entitlements');
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var search = document.getElementById('filter');
  var status = document.getElementById('status');
  var shown = document.getElementById('shown');
  function apply() {
    var q = search.value.toLowerCase(), s = status.value, n = 0;
    rows.forEach(function (row) {
      var visible = (!q || row.textContent.toLowerCase().indexOf(q) >= 0) && (!s || row.getAttribute('data-status') === s);
      row.hidden = !visible; if (visible) { n++; }
    });
    shown.textContent = n;
  }
  search.addEventListener('input', apply);
  status.addEventListener('change', apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
    th.addEventListener('click', function () {
      var descending = th.getAttribute('aria-sort') === 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
      rows.sort(function (a, b) {
        var x = a.cells[column].textContent, y = b.cells[column].textContent;
        return (descending ? -1 : 1) * x.localeCompare(y, undefined, { numeric: true });
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  // A link may carry a filter: #q=alice&status=exception.
  var params = new URLSearchParams(location.hash.slice(1));
  if (params.get('q')) { search.value = params.get('q'); }
  if (params.get('status')) { status.value = params.get('status'); }
  apply();
})();
"#;

fn card(out: &mut String, figure: String, label: &str, id: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><b id=\"count-{id}\">{figure}</b><span>{label}</span></div>"
    );
}

fn entitlement_row(out: &mut String, row: &Entitlement) {
    let change = row.last_change.as_ref().map_or(String::new(), |c| {
        let approval = c.approval.as_ref().map_or(String::new(), |a| {
            format!(
                "<br><span class=\"muted\">approved {} by {}{}</span>",
                escape(&a.hash[..a.hash.len().min(19)]),
                escape(&a.approved_by.join(", ")),
                a.ticket
                    .as_deref()
                    .map(|t| format!(" ({})", escape(t)))
                    .unwrap_or_default()
            )
        });
        format!(
            "{} in run {} at <code>{}</code>{approval}",
            escape(&c.change),
            c.run,
            escape(c.commit.as_deref().map_or("", |s| &s[..s.len().min(12)]))
        )
    });
    let class = match row.status.as_str() {
        EXCEPTION => "exception",
        crate::review::PENDING => "pending",
        _ => "granted",
    };
    let _ = writeln!(
        out,
        "<tr class=\"{class}\" data-status=\"{}\"><td>{}<br><span class=\"muted\">{} {}</span></td><td>{}</td><td>{}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td><td><code>{}</code><br><span class=\"muted\">{}</span></td><td>{change}</td><td>{}</td></tr>",
        escape(&row.status),
        escape(&row.email),
        escape(&row.display_name),
        escape(row.slack_id.as_deref().unwrap_or("")),
        escape(&format!(
            "{} / {} ({})",
            row.idp_status, row.slack_status, row.account_type
        )),
        escape(&row.kind),
        escape(&match (row.kind.as_str(), row.workspace.as_deref()) {
            ("usergroup" | "channel" | "role", Some(workspace)) =>
                format!("{workspace} {}", row.name),
            _ => row.name.clone(),
        }),
        escape(&row.status),
        escape(&row.granted_since),
        escape(row.rule.as_deref().unwrap_or("")),
        escape(&row.via.join(" > ")),
        escape(&row.note),
    );
}

const ENTITLEMENT_HEAD: &str = "<thead><tr><th>Person</th><th>IdP / Slack</th><th>Kind</th><th>Entitlement</th><th>Status</th><th>Granted since</th><th>Rule and IdP groups</th><th>Last change</th><th>Note</th></tr></thead>";

/// The whole report as one self-contained page: summary, exceptions, every entitlement
/// (sortable, filterable), leaver evidence, what is out of scope.
pub fn html(review: &AccessReview) -> String {
    let header = &review.header;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Slack access review {org} at {commit12}</title><style>{STYLE}</style></head><body>\n<header><h1>Slack access review</h1><div class=\"muted\">Who holds which access in Slack, granted by which rule, and the evidence that leavers were removed.</div><dl><dt>Org</dt><dd>{org}</dd><dt>Config commit</dt><dd><code>{commit}</code></dd><dt>Generated</dt><dd>{generated}</dd><dt>Leavers since</dt><dd>{since}</dd><dt>Sources</dt><dd>{sources}</dd><dt>History from</dt><dd>{first}</dd><dt>Digest</dt><dd><code id=\"digest\">{digest}</code></dd></dl></header>\n<main>\n",
        org = escape(&header.org),
        commit = escape(&header.commit),
        commit12 = escape(&header.commit[..header.commit.len().min(12)]),
        generated = escape(&header.generated_at),
        since = escape(&header.since),
        sources = escape(&header.sources.join("; ")),
        first = escape(
            header
                .first_recorded_run
                .as_deref()
                .unwrap_or("no recorded run")
        ),
        digest = escape(&review.digest),
    );
    summary_cards(&mut out, review);

    entitlement_sections(&mut out, review);
    leaver_section(&mut out, review);
    out_of_scope_section(&mut out, &review.out_of_scope);
    let _ = writeln!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}

/// The summary's cards: people, entitlements by status, leavers, out of scope.
fn summary_cards(out: &mut String, review: &AccessReview) {
    let (summary, leavers) = (&review.summary, &review.leaver_summary);
    out.push_str("<h2>Summary</h2><div class=\"cards\">");
    for (value, label, id) in [
        (summary.people, "people", "people"),
        (summary.entitlements, "entitlements", "entitlements"),
        (summary.granted_by_rule, "granted by rule", "granted"),
        (summary.exceptions, "exceptions", "exceptions"),
        (summary.pending, "pending", "pending"),
        (leavers.leavers, "leavers", "leavers"),
        (leavers.within_sla, "within SLA", "within-sla"),
        (leavers.breaches, "SLA breaches", "breaches"),
        (summary.out_of_scope, "out of scope", "out-of-scope"),
    ] {
        card(out, value.to_string(), label, id);
    }
    out.push_str("</div>\n");
}

/// The exceptions, then every entitlement with its filter and sort controls.
fn entitlement_sections(out: &mut String, review: &AccessReview) {
    let exceptions: Vec<&Entitlement> = review
        .entitlements
        .iter()
        .filter(|r| r.status == EXCEPTION)
        .collect();
    let _ = writeln!(
        out,
        "<h2>Exceptions ({})</h2><p class=\"muted\">Access held in Slack that no rule of the config grants: added by hand, held outside the config (roles), or awaiting removal.</p><table>{ENTITLEMENT_HEAD}<tbody>",
        exceptions.len()
    );
    for row in exceptions {
        entitlement_row(out, row);
    }
    out.push_str("</tbody></table>\n");

    let _ = writeln!(
        out,
        "<h2>Every entitlement ({})</h2><div class=\"controls\"><input id=\"filter\" type=\"search\" placeholder=\"Filter: email, usergroup, rule...\" aria-label=\"Filter\"><select id=\"status\" aria-label=\"Status\"><option value=\"\">every status</option><option value=\"granted by rule\">granted by rule</option><option value=\"exception\">exception</option><option value=\"pending\">pending</option></select><span class=\"muted\"><span id=\"shown\">{}</span> shown; click a heading to sort</span></div><table id=\"entitlements\">{ENTITLEMENT_HEAD}<tbody>",
        review.entitlements.len(),
        review.entitlements.len()
    );
    for row in &review.entitlements {
        entitlement_row(out, row);
    }
    out.push_str("</tbody></table>\n");
}

fn seconds_words(seconds: Option<f64>) -> String {
    match seconds {
        None => String::new(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn leaver_section(out: &mut String, review: &AccessReview) {
    let summary = &review.leaver_summary;
    let _ = writeln!(
        out,
        "<h2>Leavers since {} ({})</h2><p>{} within the SLA{}, {} breaches, {} not judged; median {}, worst {} from first seen to signed out.</p><table><thead><tr><th>Person</th><th>In the IdP</th><th>First seen as a leaver</th><th>Deactivated</th><th>Signed out</th><th>To deactivation</th><th>To sign-out</th><th>SLA</th><th>Run / commit</th></tr></thead><tbody>",
        escape(&review.header.since),
        summary.leavers,
        summary.within_sla,
        summary
            .sla_seconds
            .map(|s| format!(" ({})", seconds_words(Some(s as f64))))
            .unwrap_or_else(|| " (no leavers.sla set)".into()),
        summary.breaches,
        summary.unjudged,
        seconds_words(summary.median_seconds),
        seconds_words(summary.worst_seconds),
    );
    for row in &review.leavers {
        let (class, verdict) = match row.within_sla {
            Some(true) => ("within", "within"),
            Some(false) => ("breach", "BREACH"),
            None => ("", "not judged"),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td><td>{} <code>{}</code></td></tr>",
            escape(&row.email),
            escape(row.slack_id.as_deref().unwrap_or("")),
            escape(&row.left_in_idp),
            escape(&row.first_seen),
            escape(row.deactivated.as_deref().unwrap_or("")),
            escape(row.signed_out.as_deref().unwrap_or("")),
            seconds_words(row.seconds_to_deactivation),
            seconds_words(row.seconds_to_signed_out),
            row.run.map(|r| format!("run {r}")).unwrap_or_default(),
            escape(row.commit.as_deref().map_or("", |c| &c[..c.len().min(12)])),
        );
    }
    out.push_str("</tbody></table>\n");
}

fn out_of_scope_section(out: &mut String, rows: &[OutOfScope]) {
    let _ = writeln!(
        out,
        "<h2>Out of scope ({})</h2><p class=\"muted\">Usergroups and channels the config does not manage: their members are not reviewed here.</p><table><thead><tr><th>Kind</th><th>Workspace</th><th>Name</th><th>Id</th><th>Members</th></tr></thead><tbody>",
        rows.len()
    );
    for row in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.kind),
            escape(&row.workspace),
            escape(&row.name),
            escape(&row.id),
            row.members
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unknown".into())
        );
    }
    out.push_str("</tbody></table>\n");
}
