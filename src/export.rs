//! `export access-review` and `history`: the shell around `review`. Reads the config at
//! a merged commit, the identity provider, live Slack and the state store; streams the
//! rows to CSV or JSON (the digest and summary accumulate as they pass), or builds the
//! HTML page.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pipeline::{Connection, PipelineError};
use crate::render::review as rendering;
use crate::review::{self, ApprovalRef, Digest, History, Input, Tally};
use crate::store::{Store, StoreError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// The export's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Html,
}

/// What to export and where.
pub struct Request<'a> {
    pub commit: &'a str,
    pub format: Format,
    /// A file (JSON, HTML) or a directory (CSV); standard output when `None` (CSV then
    /// prints the entitlements only).
    pub out: Option<&'a Path>,
    pub now: i64,
    /// Leavers first seen since (unix milliseconds).
    pub since: i64,
}

/// The store's history of an org, as the review reads it.
pub fn history(store: &Store, org: &str) -> Result<History, StoreError> {
    let runs = store
        .runs(org)?
        .into_iter()
        .map(|r| (r.id, r.started_at, r.commit))
        .collect();
    let events = store
        .events(org)?
        .into_iter()
        .map(|(run, e)| review::Event {
            run,
            at: e.at,
            email: e.email,
            entitlement: e.entitlement,
            change: e.change,
            commit: e.commit,
            approval: e.approval,
        })
        .collect();
    let leavers = store
        .leavers(org)?
        .into_iter()
        .map(|l| review::Leaver {
            email: l.email,
            slack_id: l.user_id,
            first_seen: l.first_seen,
            deactivated_at: l.deactivated_at,
            signed_out_at: l.signed_out_at,
            run: l.run_id,
        })
        .collect();
    Ok(History {
        events,
        runs,
        leavers,
    })
}

/// Reads everything and writes the review.
pub async fn access_review(
    connection: &Connection,
    store: &Store,
    request: &Request<'_>,
    slack_source: &str,
) -> Result<review::Summary, ExportError> {
    let repository = &connection.repository;
    let (directory, live, _) = connection.read().await?;
    let resolution = directory.resolve();
    let desired = crate::plan::desired::desired(repository, &directory, &resolution);
    let org = connection.org();
    let history = history(store, &org)?;
    let settings = &repository.config.value;
    let sources = vec![
        format!(
            "identity: {}{}",
            settings.identity.source.as_str(),
            settings
                .identity
                .path
                .as_deref()
                .map(|p| format!(" ({p} at the commit)"))
                .unwrap_or_default()
        ),
        format!("Slack: {slack_source}"),
        format!("state store: {}", store.describe()),
    ];
    let input = Input {
        org: &org,
        commit: request.commit,
        generated_at: request.now,
        since: request.since,
        sources,
        desired: &desired,
        directory: &directory,
        live: &live,
        history: &history,
        approvals: approvals(repository),
        sla_seconds: repository
            .policies
            .iter()
            .find_map(|p| p.value.leavers.as_ref())
            .and_then(|l| crate::config::semantic::parse_duration_seconds(&l.sla)),
    };
    match request.format {
        Format::Html => {
            let document = review::build(&input);
            write_all(request.out, rendering::html(&document).as_bytes())?;
            Ok(document.summary)
        }
        Format::Json => stream_json(&input, request.out),
        Format::Csv => stream_csv(&input, request.out),
    }
}

/// The approval files at the commit, as rows name them.
fn approvals(repository: &crate::config::Repository) -> Vec<ApprovalRef> {
    repository
        .approvals
        .iter()
        .map(|a| ApprovalRef {
            hash: a.value.hash.as_str().to_string(),
            approved_by: a
                .value
                .approved_by
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            ticket: a.value.ticket.clone(),
            reason: Some(a.value.reason.clone()),
        })
        .collect()
}

fn sink(out: Option<&Path>) -> Result<Box<dyn Write>, ExportError> {
    Ok(match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| ExportError::Write {
                path: path.to_path_buf(),
                source,
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

fn write_all(out: Option<&Path>, bytes: &[u8]) -> Result<(), ExportError> {
    let mut sink = sink(out)?;
    sink.write_all(bytes)
        .and_then(|_| sink.flush())
        .map_err(|source| write_error(out, source))
}

fn write_error(out: Option<&Path>, source: std::io::Error) -> ExportError {
    ExportError::Write {
        path: out.map_or_else(|| PathBuf::from("standard output"), Path::to_path_buf),
        source,
    }
}

/// The JSON document, rows written as they are made.
fn stream_json(input: &Input, out: Option<&Path>) -> Result<review::Summary, ExportError> {
    let mut sink = sink(out)?;
    let mut digest = Digest::default();
    let mut tally = Tally::default();
    let mut failed = None;
    let header = review::header(input);
    let mut write = |text: String| {
        if failed.is_none()
            && let Err(error) = sink.write_all(text.as_bytes())
        {
            failed = Some(error);
        }
    };
    write(rendering::json_open(review::REVIEW_VERSION, &header));
    let mut first = true;
    review::entitlements(input, &mut |row| {
        digest.add(&row);
        tally.add(&row);
        write(rendering::json_row(&row, first));
        first = false;
    });
    let out_of_scope = review::out_of_scope(input);
    let (leavers, leaver_summary) = review::leavers(input);
    out_of_scope.iter().for_each(|r| digest.add(r));
    leavers.iter().for_each(|r| digest.add(r));
    let mut summary = tally.summary;
    summary.out_of_scope = out_of_scope.len() as u64;
    write(rendering::json_close(
        &out_of_scope,
        &leavers,
        &leaver_summary,
        &summary,
        &digest.finish(),
    ));
    if let Some(error) = failed {
        return Err(write_error(out, error));
    }
    sink.flush().map_err(|e| write_error(out, e))?;
    Ok(summary)
}

/// CSV: with `out` a directory, `entitlements.csv`, `leavers.csv`, `out-of-scope.csv` and
/// `digest.txt` (the same digest as the JSON document's); without, the entitlements on
/// standard output.
fn stream_csv(input: &Input, out: Option<&Path>) -> Result<review::Summary, ExportError> {
    let file = |name: &str| out.map(|dir| dir.join(name));
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let entitlements_path = file("entitlements.csv");
    let mut writer = csv::Writer::from_writer(sink(entitlements_path.as_deref())?);
    let csv_error = |path: Option<&Path>, error: csv::Error| {
        write_error(path, std::io::Error::other(error.to_string()))
    };
    writer
        .write_record(rendering::ENTITLEMENT_COLUMNS)
        .map_err(|e| csv_error(entitlements_path.as_deref(), e))?;
    let mut digest = Digest::default();
    let mut tally = Tally::default();
    let mut failed = None;
    review::entitlements(input, &mut |row| {
        digest.add(&row);
        tally.add(&row);
        if failed.is_none() {
            failed = writer
                .write_record(rendering::entitlement_fields(&row))
                .err();
        }
    });
    if let Some(error) = failed {
        return Err(csv_error(entitlements_path.as_deref(), error));
    }
    writer
        .flush()
        .map_err(|e| write_error(entitlements_path.as_deref(), e))?;
    let out_of_scope = review::out_of_scope(input);
    let (leavers, _) = review::leavers(input);
    out_of_scope.iter().for_each(|r| digest.add(r));
    leavers.iter().for_each(|r| digest.add(r));
    let mut summary = tally.summary;
    summary.out_of_scope = out_of_scope.len() as u64;
    let Some(dir) = out else {
        return Ok(summary);
    };
    let table = |name: &str, columns: &[&str], rows: Vec<Vec<String>>| {
        let path = dir.join(name);
        let mut writer = csv::Writer::from_path(&path).map_err(|e| csv_error(Some(&path), e))?;
        writer
            .write_record(columns)
            .map_err(|e| csv_error(Some(&path), e))?;
        for row in rows {
            writer
                .write_record(row)
                .map_err(|e| csv_error(Some(&path), e))?;
        }
        writer.flush().map_err(|e| write_error(Some(&path), e))
    };
    table(
        "leavers.csv",
        rendering::LEAVER_COLUMNS,
        leavers.iter().map(rendering::leaver_fields).collect(),
    )?;
    table(
        "out-of-scope.csv",
        rendering::OUT_OF_SCOPE_COLUMNS,
        out_of_scope
            .iter()
            .map(rendering::out_of_scope_fields)
            .collect(),
    )?;
    let header = review::header(input);
    let text = format!(
        "{}  access review of {} at {}, generated {}\n",
        digest.finish(),
        header.org,
        header.commit,
        header.generated_at
    );
    write_all(Some(&dir.join("digest.txt")), text.as_bytes())?;
    Ok(summary)
}

/// What `history` asks about.
pub enum About<'a> {
    Person(&'a str),
    Usergroup(&'a str),
    Channel(&'a str),
}

/// The recorded access changes about a person, usergroup or channel, oldest first, as
/// lines: when, what, who, where, by which rule at which commit, under which approval.
pub fn history_lines(store: &Store, org: &str, about: &About) -> Result<Vec<String>, StoreError> {
    let matches = |e: &crate::store::AuditEvent| match about {
        About::Person(email) => e.email.eq_ignore_ascii_case(email),
        About::Usergroup(handle) => e
            .entitlement
            .ends_with(&format!("/@{}", handle.trim_start_matches('@'))),
        About::Channel(name) => e
            .entitlement
            .ends_with(&format!("/#{}", name.trim_start_matches('#'))),
    };
    Ok(store
        .events(org)?
        .into_iter()
        .filter(|(_, e)| matches(e))
        .map(|(run, e)| {
            let mut line = format!(
                "{}  {:<11} {} {}",
                crate::model::iso_time(e.at),
                e.change,
                e.email,
                e.entitlement
            );
            if let Some(rule) = &e.rule {
                line.push_str(&format!("  by {rule}"));
            }
            line.push_str(&format!("  (run {run}"));
            if let Some(commit) = &e.commit {
                line.push_str(&format!(", commit {}", &commit[..commit.len().min(12)]));
            }
            if let Some(approval) = &e.approval {
                line.push_str(&format!(", approval {approval}"));
            }
            line.push(')');
            line
        })
        .collect())
}
