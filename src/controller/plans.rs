//! `POST /plan`: a pull request's plan, made by the controller against its mirror of
//! live Slack (`slack-gitops plan DIR --controller URL`).
//!
//! The request carries the config repository's files; the controller plans them as it
//! plans its own syncs (the mirror while the event stream is healthy, every object the
//! plan changes read live), and answers with the plan rendered in every format, saying
//! how many objects were read live and how old the oldest mirrored copy is.
//!
//! Everything in the request is hostile until checked: the bearer token is checked
//! before the body is read; the body, the number of files and each file are bounded;
//! each path must be one a config repository has (`slack-gitops.yaml`, the files of
//! `mappings/`, `policies/`, `approvals/`, the identity export), relative and plain;
//! and the settings that decide where the controller's credentials go (`slack.url`,
//! the token variables, the whole `identity` section but an export's path) must be the
//! ones of the commit in force, so a pull request cannot send the controller's tokens
//! to a server of its choosing. Errors name the rule, never a file's content.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::config::types::ConfigFile;
use crate::pipeline;

/// The largest plan request: a config repository and an identity export.
pub const MAX_PLAN_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// The most files a plan request may carry.
pub const MAX_PLAN_FILES: usize = 5_000;
/// How long a request waits for the plan before it (one at a time) to finish.
const QUEUE_WAIT: Duration = Duration::from_secs(120);

/// What `plan --controller` sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub files: Vec<RequestFile>,
    /// The JSON plan of the last push (`--baseline`), as `--out` wrote it.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Where the plan was made, for the comment's marker and provenance.
    #[serde(default)]
    pub config_dir: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    /// Colour the text rendering.
    #[serde(default)]
    pub color: bool,
}

/// One file of the config repository, its bytes in base64; or, for an identity export
/// over [`BY_DIGEST_BYTES`], only its SHA-256 (hex), taken from the commit in force when
/// that has the same bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    pub path: String,
    #[serde(default)]
    pub base64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// An identity export larger than this is first sent by its digest: a pull request
/// seldom changes it, and at 50,000 people it is megabytes.
pub const BY_DIGEST_BYTES: usize = 1024 * 1024;

/// What the controller answers (409) when a file sent by digest is not the commit in
/// force's: the paths to send again with their bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendAgain {
    pub send: Vec<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PlanRequest {
    /// The request for the config repository at `dir` (valid: `repository`), with the
    /// identity export when the config names one.
    /// An identity export over [`BY_DIGEST_BYTES`] goes by its digest when `by_digest`.
    pub fn from_dir(
        dir: &Path,
        repository: &crate::config::Repository,
        by_digest: bool,
    ) -> Result<PlanRequest, String> {
        let tree = crate::gitops::worktree::read(dir).map_err(|e| e.to_string())?;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut files: Vec<RequestFile> = tree
            .files
            .iter()
            .map(|file| RequestFile {
                path: file.path.clone(),
                base64: encode(&file.bytes),
                sha256: None,
            })
            .collect();
        if let Some(path) = &repository.config.value.identity.path {
            if !plain_path(path) {
                return Err(format!(
                    "identity.path `{path}` is not a plain relative path"
                ));
            }
            let bytes = std::fs::read(dir.join(path))
                .map_err(|e| format!("cannot read the identity export {path}: {e}"))?;
            files.push(if by_digest && bytes.len() > BY_DIGEST_BYTES {
                RequestFile {
                    path: path.clone(),
                    base64: String::new(),
                    sha256: Some(sha256_hex(&bytes)),
                }
            } else {
                RequestFile {
                    path: path.clone(),
                    base64: encode(&bytes),
                    sha256: None,
                }
            });
        }
        Ok(PlanRequest {
            files,
            ..PlanRequest::default()
        })
    }
}

/// What the controller answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanAnswer {
    /// The JSON plan, as `plan --out` writes it.
    pub json: String,
    pub text: String,
    pub markdown: String,
    /// The pull-request comments (`--comment-dir`).
    pub comments: Vec<String>,
    /// How many actions the plan has.
    pub actions: usize,
    /// `allowed`, `needs_approval` or `refused` ([`crate::policy::Verdict::word`]).
    pub verdict: String,
    pub warnings: Vec<String>,
    /// Where live Slack came from; `None` when it was read in full.
    pub slack_read: Option<crate::render::plan::SlackRead>,
}

/// What a plan needs from the commit in force (set when a commit loads).
#[derive(Clone)]
pub struct PlanWith {
    pub connect: pipeline::ConnectOptions,
    pub environment: super::Environment,
    pub workdir: std::path::PathBuf,
    /// The commit in force's settings.
    pub settings: ConfigFile,
    /// The in-force connection's Slack client: its rate-limit buckets are shared.
    pub client: crate::slack::client::SlackClient,
    /// The controller's clone (its config directory) and the commit in force: files
    /// sent by digest come from that commit.
    pub clone_dir: std::path::PathBuf,
    pub commit: String,
}

/// `POST /plan`.
pub async fn serve(shared: Arc<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(token) = shared.plan_token.clone() else {
        return answer(
            StatusCode::NOT_FOUND,
            "this controller does not serve plans: set SLACK_GITOPS_CONTROLLER_TOKEN in its environment",
        );
    };
    if !authorized(&token, &headers) {
        return answer(
            StatusCode::UNAUTHORIZED,
            "a plan request needs `Authorization: Bearer` with the controller's token",
        );
    }
    let body =
        match super::http::read_hook_body(&shared, &headers, body, MAX_PLAN_REQUEST_BYTES).await {
            Ok(body) => body,
            Err(response) => return response,
        };
    let request: PlanRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!(
                    "not a plan request ({:?} error at line {} column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                ),
            );
        }
    };
    let with = shared
        .plan_with
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(with) = with else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "no commit is loaded yet; try again shortly",
        );
    };
    let Ok(_one) = tokio::time::timeout(QUEUE_WAIT, shared.plan_lock.lock()).await else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "another plan is being made; try again shortly",
        );
    };
    match plan(&shared, &with, &request).await {
        Ok(done) => axum::Json(done).into_response(),
        Err((status, message)) => answer(status, &message),
    }
}

/// Whether the request carries the token, compared in constant time.
fn authorized(token: &str, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let digest = |text: &str| {
        let mut mac = super::http::HmacSha256::new_from_slice(b"slack-gitops plan token")
            .expect("any key length");
        mac.update(text.as_bytes());
        mac
    };
    let expected = digest(token).finalize().into_bytes();
    digest(given).verify_slice(&expected).is_ok()
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

type Refusal = (StatusCode, String);

/// The request's files written to a fresh directory, planned, and rendered.
async fn plan(
    shared: &Shared,
    with: &PlanWith,
    request: &PlanRequest,
) -> Result<PlanAnswer, Refusal> {
    let internal = |e: std::io::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    std::fs::create_dir_all(&with.workdir).map_err(internal)?;
    let dir = tempfile::tempdir_in(&with.workdir).map_err(internal)?;
    let in_force = |path: &str, digest: &str| in_force_bytes(with, path, digest);
    write_files(dir.path(), &request.files, &with.settings, &in_force)?;
    let repository = pipeline::load_repository(dir.path()).map_err(|error| {
        let message = match error {
            pipeline::PipelineError::InvalidConfig { rendered, .. } => {
                format!("the config is not valid:\n{rendered}")
            }
            other => other.to_string(),
        };
        (StatusCode::UNPROCESSABLE_ENTITY, message)
    })?;
    same_credentials(&with.settings, &repository.config.value)
        .map_err(|why| (StatusCode::UNPROCESSABLE_ENTITY, why))?;
    let mut connection = pipeline::connect(dir.path(), &with.connect, &*with.environment)
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    connection.client = with.client.clone();
    connection.mirror = Some(crate::mirror::Sink {
        store: shared.store.clone(),
        scope: shared.election.lease.clone(),
    });
    *connection
        .mirror_trust
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = super::mirror::trust(shared);
    let baseline = match &request.baseline {
        Some(text) => baseline(text)?,
        None => pipeline::Baseline::default(),
    };
    let planned = pipeline::plan_org(&connection, &baseline)
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    let mut report = planned.report();
    report.context.config_dir = request.config_dir.as_deref().map(bounded);
    report.context.commit = request.commit.as_deref().map(bounded);
    report.context.dirty = request.dirty;
    report.context.previous = baseline.changes.clone();
    report.context.slack_read =
        connection
            .mirror_read()
            .map(|from| crate::render::plan::SlackRead {
                read_live: from.read_live,
                mirrored: from.mirrored,
                oldest_verified_at: from.oldest_verified_at,
                planned_at: crate::clock::now_millis(),
            });
    let mut json = Vec::new();
    crate::render::plan::write_json(&report, &mut json)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(PlanAnswer {
        json: String::from_utf8_lossy(&json).into_owned(),
        text: crate::render::plan::text(&report, request.color),
        markdown: crate::render::plan::markdown(&report),
        comments: crate::render::plan::markdown_comments(&report),
        actions: planned.plan.actions.len(),
        verdict: planned.verdict.word().to_string(),
        warnings: planned.warnings.clone(),
        slack_read: report.context.slack_read.clone(),
    })
}

/// The baseline from an earlier JSON plan's text.
fn baseline(text: &str) -> Result<pipeline::Baseline, Refusal> {
    let document = crate::render::plan::PlanDocument::parse(text).map_err(|why| {
        (
            StatusCode::BAD_REQUEST,
            format!("the baseline is not a JSON plan written by --out: {why}"),
        )
    })?;
    Ok(pipeline::Baseline {
        identity: Some(document.identity),
        mappings: document.mappings,
        drift: None,
        changes: document.changes,
    })
}

/// A client's label (a directory, a commit), cut to 200 characters of a plain alphabet.
fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
        .take(200)
        .collect()
}

/// Writes the request's files under `dir`, each checked: a path a config repository
/// has, plain and relative, decoded, within the loader's size limit.
/// A file sent by digest that the commit in force does not have is not written: the
/// answer is 409 with the paths to send again ([`SendAgain`]).
fn write_files(
    dir: &Path,
    files: &[RequestFile],
    settings: &ConfigFile,
    in_force: &dyn Fn(&str, &str) -> Option<Vec<u8>>,
) -> Result<(), Refusal> {
    let mut send_again = Vec::new();
    let refuse = |why: String| (StatusCode::BAD_REQUEST, why);
    if files.len() > MAX_PLAN_FILES {
        return Err(refuse(format!(
            "{} files: a plan request carries at most {MAX_PLAN_FILES}",
            files.len()
        )));
    }
    let export = settings.identity.path.as_deref();
    for file in files {
        let path = file.path.as_str();
        if !plain_path(path) {
            return Err(refuse(format!(
                "`{}` is not a plain relative path",
                path.escape_debug()
            )));
        }
        let wanted = path == crate::config::CONFIG_PATH
            || crate::config::kind_for_path(path).is_some()
            || crate::rego::is_rego_path(path)
            || Some(path) == export;
        if !wanted {
            return Err(refuse(format!(
                "`{path}` is not a file of a config repository (slack-gitops.yaml, mappings/, policies/ (YAML and Rego), approvals/, the identity export)"
            )));
        }
        let is_export = Some(path) == export;
        let bytes = match &file.sha256 {
            None => base64::engine::general_purpose::STANDARD
                .decode(&file.base64)
                .map_err(|_| refuse(format!("`{path}` is not valid base64")))?,
            Some(digest) if is_export && file.base64.is_empty() => match in_force(path, digest) {
                Some(bytes) => bytes,
                None => {
                    send_again.push(path.to_string());
                    continue;
                }
            },
            Some(_) => {
                return Err(refuse(format!(
                    "`{path}`: only the identity export may be sent by its digest alone"
                )));
            }
        };
        // The export is bounded by the request; every other file by the loader's limit.
        if !is_export && bytes.len() > crate::config::MAX_FILE_BYTES {
            return Err(refuse(format!(
                "`{path}` is {} bytes: a file is at most {}",
                bytes.len(),
                crate::config::MAX_FILE_BYTES
            )));
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        // `create_new`: a path sent twice is refused, never a file overwritten.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|_| refuse(format!("`{path}` is sent twice")))?;
        std::io::Write::write_all(&mut out, &bytes)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    if !send_again.is_empty() {
        let again = SendAgain { send: send_again };
        return Err((
            StatusCode::CONFLICT,
            serde_json::to_string(&again).expect("serialises"),
        ));
    }
    Ok(())
}

/// The commit in force's bytes of `path` when their SHA-256 is `digest` (read from the
/// controller's clone: a regular file of that commit, within an export's size limit).
fn in_force_bytes(with: &PlanWith, path: &str, digest: &str) -> Option<Vec<u8>> {
    let limit = crate::identity::file::MAX_EXPORT_BYTES as usize;
    let bytes = crate::gitops::commit::file_at(&with.clone_dir, &with.commit, path, limit)?;
    (sha256_hex(&bytes) == digest.to_ascii_lowercase()).then_some(bytes)
}

/// A path of plain names joined by `/`: not empty, not absolute, no `.` or `..`, no
/// backslash or control character, each name at most 255 bytes.
pub fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && path.split('/').all(|name| {
            !name.is_empty()
                && name != "."
                && name != ".."
                && name.len() <= 255
                && !name
                    .chars()
                    .any(|c| c == '\\' || c == ':' || c.is_control())
        })
}

/// The settings that decide where the controller's credentials go must be those of the
/// commit in force: a pull request cannot point them elsewhere.
fn same_credentials(in_force: &ConfigFile, requested: &ConfigFile) -> Result<(), String> {
    let (a, b) = (&in_force.slack, &requested.slack);
    let mut changed = Vec::new();
    if a.url != b.url {
        changed.push("slack.url");
    }
    if a.token_env != b.token_env {
        changed.push("slack.token_env");
    }
    if a.bot_token_env != b.bot_token_env {
        changed.push("slack.bot_token_env");
    }
    let identity = |settings: &ConfigFile| {
        let mut identity = settings.identity.clone();
        identity.path = None;
        serde_json::to_value(identity).unwrap_or_default()
    };
    if identity(in_force) != identity(requested) {
        changed.push("identity");
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this change sets {} differently from the commit in force; they decide where the controller's credentials go, so plan it without --controller",
            changed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_path;

    #[test]
    fn only_plain_relative_paths_are_taken() {
        for good in [
            "slack-gitops.yaml",
            "mappings/eng.yaml",
            "identity/export.json",
        ] {
            assert!(plain_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x.yaml",
            "mappings/../../x.yaml",
            "mappings//x.yaml",
            "./slack-gitops.yaml",
            "mappings\\..\\x.yaml",
            "C:/x.yaml",
            "mappings/x\n.yaml",
        ] {
            assert!(!plain_path(bad), "{bad:?}");
        }
    }
}
