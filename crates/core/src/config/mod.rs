//! The config repository: from file contents to typed, checked config and diagnostics.
//!
//! This is a pure core. It takes `(path, bytes)` pairs and never touches the filesystem,
//! so a directory on disk (`gitops::worktree`) and a git commit read the same way. Every
//! problem becomes a [`Diagnostic`]; loading never stops at the first one and never
//! panics, whatever the bytes.
//!
//! The pipeline for each file: size and UTF-8 checks, YAML with positions (`yaml`),
//! `apiVersion` and `kind` (and that the kind matches where the file lives), the kind's
//! JSON schema (`schema`), then typed deserialisation. Checks that span files (duplicate
//! handles, workspace references, ...) run afterwards over every file that got that far
//! (`semantic`).

pub mod approval;
pub mod schema;
pub mod semantic;
pub mod types;
pub mod yaml;
pub mod yaml_data;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Span, has_errors};
pub use schema::Kind;
use types::{API_VERSION, ApprovalFile, ConfigFile, MappingsFile, PolicyFile};
pub use yaml::SpanIndex;

/// Files larger than this are refused before parsing (a config file is kilobytes).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The path of the top-level config file, relative to the repository root.
pub const CONFIG_PATH: &str = "slack-gitops.yaml";

/// The directories whose `*.yaml` files are part of the config, with their kind.
pub const KIND_DIRECTORIES: [(&str, Kind); 3] = [
    ("mappings", Kind::Mappings),
    ("policies", Kind::Policy),
    ("approvals", Kind::Approval),
];

/// One file's contents, as read from a directory or a git commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Repository-relative path with `/` separators.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A typed file with the spans of its nodes, so later stages can point at its lines.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub file: String,
    pub value: T,
    pub spans: SpanIndex,
}

impl<T> Located<T> {
    /// The span of the value at `pointer` (or its nearest ancestor).
    pub fn span(&self, pointer: &str) -> Option<Span> {
        self.spans.value_span(pointer)
    }
}

/// Every file of a config repository that loaded, typed.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub config: Option<Located<ConfigFile>>,
    pub mappings: Vec<Located<MappingsFile>>,
    pub policies: Vec<Located<PolicyFile>>,
    pub approvals: Vec<Located<ApprovalFile>>,
}

impl Repository {
    /// The channels the config manages, as `(team id, name)`: every `channels:` entry,
    /// and every usergroup's default channels in each workspace the usergroup is in. The
    /// one home of that rule: the reader reads these channels' members, and the desired
    /// state plans exactly these (a test holds `plan::desired` to it).
    pub fn managed_channels(&self) -> std::collections::BTreeSet<(String, String)> {
        let config = &self.config.value;
        let mut managed = std::collections::BTreeSet::new();
        for file in &self.mappings {
            for channel in &file.value.channels {
                if let Some(team) = config.team_id(&channel.workspace) {
                    managed.insert((team, channel.name.as_str().to_string()));
                }
            }
            for usergroup in &file.value.usergroups {
                for team in usergroup
                    .workspaces
                    .iter()
                    .filter_map(|w| config.team_id(w))
                {
                    for channel in &usergroup.channels {
                        managed.insert((team.clone(), channel.as_str().to_string()));
                    }
                }
            }
        }
        managed
    }

    /// Every IdP group the config names: `users.scope`, the mappings' `groups` and
    /// `exclude`, and the policies' protected groups. What an identity source needs the
    /// members of; no other group changes a plan.
    pub fn referenced_groups(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.config.value.users.scope.iter().cloned().collect();
        for file in &self.mappings {
            let specs = file.value.usergroups.iter().map(|u| &u.members).chain(
                file.value
                    .channels
                    .iter()
                    .filter_map(|c| c.members.as_ref()),
            );
            for spec in specs {
                names.extend(spec.groups.iter().cloned());
                names.extend(spec.exclude.iter().cloned());
            }
        }
        for policy in &self.policies {
            names.extend(policy.value.protected.groups.iter().cloned());
        }
        names
    }

    /// The IdP groups it names that `known` (the identity snapshot's group names) lacks,
    /// as errors at their lines: what [`load`] reports when given the known groups, for a
    /// repository already loaded without them.
    pub fn unknown_groups(self, known: &std::collections::BTreeSet<String>) -> Vec<Diagnostic> {
        let files = Files {
            config: Some(self.config),
            mappings: self.mappings,
            policies: self.policies,
            approvals: self.approvals,
        };
        semantic::unknown_groups(&files, known)
    }
}

/// A config repository without errors.
#[derive(Debug, Clone)]
pub struct Repository {
    pub config: Located<ConfigFile>,
    pub mappings: Vec<Located<MappingsFile>>,
    pub policies: Vec<Located<PolicyFile>>,
    pub approvals: Vec<Located<ApprovalFile>>,
    /// `policies/*.rego`: the org's own policies and their tests, evaluated by `rego`.
    pub rego: Vec<crate::rego::RegoFile>,
}

/// What loading found: the repository when it has no errors, and every diagnostic.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub repository: Option<Repository>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Which kind a repository path holds, or `None` when the path is not config.
/// The protected branch a `slack-gitops.yaml` names (`gitops.branch`), read before the
/// rest of the file is checked; `None` when it names none or does not parse.
pub fn gitops_branch(text: &str) -> Option<String> {
    let document = yaml::parse("slack-gitops.yaml", text).ok()?;
    document
        .value
        .pointer("/gitops/branch")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

pub fn kind_for_path(path: &str) -> Option<Kind> {
    if path == CONFIG_PATH {
        return Some(Kind::Config);
    }
    let (directory, name) = path.split_once('/')?;
    let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    if !is_yaml || name.contains('/') || name.starts_with('.') {
        return None;
    }
    KIND_DIRECTORIES
        .iter()
        .find(|(dir, _)| *dir == directory)
        .map(|(_, kind)| *kind)
}

/// Loads a config repository from its files. `known_groups`, when given, is the set of
/// IdP group names in the identity snapshot; names not in it are reported.
pub fn load(
    files: &[SourceFile],
    known_groups: Option<&std::collections::BTreeSet<String>>,
) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut typed = Files::default();
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));

    let mut rego = Vec::new();
    for file in sorted {
        if crate::rego::is_rego_path(&file.path) {
            if file.bytes.len() > MAX_FILE_BYTES {
                diagnostics.push(Diagnostic::error(
                    Code::FileTooLarge,
                    &file.path,
                    None,
                    format!("the file is larger than {MAX_FILE_BYTES} bytes (4 MiB), the most a config file may be"),
                ));
            } else if let Ok(text) = std::str::from_utf8(&file.bytes) {
                rego.push(crate::rego::RegoFile {
                    path: file.path.clone(),
                    text: text.to_string(),
                });
            } else {
                diagnostics.push(Diagnostic::error(
                    Code::NotUtf8,
                    &file.path,
                    None,
                    "the policy is not valid UTF-8",
                ));
            }
            continue;
        }
        let Some(kind) = kind_for_path(&file.path) else {
            continue;
        };
        let Some(document) = load_document(file, kind, &mut diagnostics) else {
            continue;
        };
        match kind {
            Kind::Config => typed.config = deserialize(&file.path, document, &mut diagnostics),
            Kind::Mappings => {
                typed
                    .mappings
                    .extend(deserialize(&file.path, document, &mut diagnostics))
            }
            Kind::Policy => {
                typed
                    .policies
                    .extend(deserialize(&file.path, document, &mut diagnostics))
            }
            Kind::Approval => {
                typed
                    .approvals
                    .extend(deserialize(&file.path, document, &mut diagnostics))
            }
        }
    }

    if !files.iter().any(|f| f.path == CONFIG_PATH) {
        diagnostics.push(
            Diagnostic::error(
                Code::MissingConfig,
                CONFIG_PATH,
                None,
                "the repository has no `slack-gitops.yaml` at its root",
            )
            .with_help("a config repository needs `slack-gitops.yaml` (kind: Config); see `slack-gitops schema config`"),
        );
    }

    diagnostics.extend(semantic::check(&typed, known_groups));
    diagnostics.sort();
    diagnostics.dedup();

    let repository = match typed {
        Files {
            config: Some(config),
            mappings,
            policies,
            approvals,
        } if !has_errors(&diagnostics) => Some(Repository {
            config,
            mappings,
            policies,
            approvals,
            rego,
        }),
        _ => None,
    };
    Loaded {
        repository,
        diagnostics,
    }
}

/// Steps one file through size, encoding, YAML, header and schema checks.
fn load_document(
    file: &SourceFile,
    kind: Kind,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<yaml::YamlDocument> {
    let path = file.path.as_str();
    if file.bytes.len() > MAX_FILE_BYTES {
        diagnostics.push(Diagnostic::error(
            Code::FileTooLarge,
            path,
            None,
            format!(
                "the file is larger than {MAX_FILE_BYTES} bytes (4 MiB), the most a config file may be"
            ),
        ));
        return None;
    }
    let text = match std::str::from_utf8(&file.bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = std::str::from_utf8(&file.bytes[..error.valid_up_to()])
                .expect("the prefix up to valid_up_to is UTF-8");
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            diagnostics.push(
                Diagnostic::error(
                    Code::NotUtf8,
                    path,
                    Some(Span::point(line, column)),
                    format!(
                        "the file is not valid UTF-8 (byte {} is not)",
                        error.valid_up_to()
                    ),
                )
                .with_help("save the file as UTF-8"),
            );
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = match yaml::parse(path, text) {
        Ok(document) => document,
        Err(errors) => {
            diagnostics.extend(errors);
            return None;
        }
    };
    if !check_header(path, kind, &document, diagnostics) {
        return None;
    }
    let errors = schema::validate(kind, path, &document.value, &document.spans);
    if !errors.is_empty() {
        diagnostics.extend(errors);
        return None;
    }
    Some(document)
}

/// Checks `apiVersion` and `kind`, and that the kind belongs where the file lives.
/// Without a known version and kind there is no schema to check the rest against.
fn check_header(
    path: &str,
    expected: Kind,
    document: &yaml::YamlDocument,
    diagnostics: &mut Vec<Diagnostic>,
) -> bool {
    let Value::Object(map) = &document.value else {
        diagnostics.push(Diagnostic::error(
            Code::NotAMapping,
            path,
            document.spans.value_span(""),
            "the file must be a mapping with `apiVersion`, `kind` and the kind's keys",
        ));
        return false;
    };
    let root = document.spans.value_span("");
    let mut ok = true;
    match map.get("apiVersion") {
        Some(Value::String(version)) if version == API_VERSION => {}
        found => {
            ok = false;
            let message = match found {
                None => format!("missing `apiVersion`; expected `apiVersion: {API_VERSION}`"),
                Some(value) => format!(
                    "unknown apiVersion {value}; this version of slack-gitops reads `{API_VERSION}`"
                ),
            };
            let span = found.and(document.spans.value_span("/apiVersion")).or(root);
            diagnostics.push(Diagnostic::error(
                Code::UnknownApiVersion,
                path,
                span,
                message,
            ));
        }
    }
    let kinds = "`Config`, `Mappings`, `Policy` or `Approval`";
    match map.get("kind") {
        Some(Value::String(name)) => match Kind::ALL.into_iter().find(|k| k.as_str() == name) {
            Some(kind) if kind == expected => {}
            Some(kind) => {
                ok = false;
                diagnostics.push(
                    Diagnostic::error(
                        Code::KindMismatch,
                        path,
                        document.spans.value_span("/kind"),
                        format!(
                            "this file holds kind `{}`, but files at this place hold kind `{}`",
                            kind.as_str(),
                            expected.as_str()
                        ),
                    )
                    .with_help(placement_help()),
                );
            }
            None => {
                ok = false;
                diagnostics.push(Diagnostic::error(
                    Code::UnknownKind,
                    path,
                    document.spans.value_span("/kind"),
                    format!("unknown kind `{name}`; expected {kinds}"),
                ));
            }
        },
        found => {
            ok = false;
            let message = match found {
                None => format!("missing `kind`; expected {kinds}"),
                Some(value) => format!("unknown kind {value}; expected {kinds}"),
            };
            let span = found.and(document.spans.value_span("/kind")).or(root);
            diagnostics.push(Diagnostic::error(Code::UnknownKind, path, span, message));
        }
    }
    ok
}

fn placement_help() -> String {
    format!(
        "`{CONFIG_PATH}` holds the Config; {}",
        KIND_DIRECTORIES
            .iter()
            .map(|(dir, kind)| format!("`{dir}/*.yaml` hold {}", kind.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn deserialize<T: DeserializeOwned>(
    path: &str,
    document: yaml::YamlDocument,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Located<T>> {
    match serde_json::from_value::<T>(document.value) {
        Ok(value) => Some(Located {
            file: path.to_string(),
            value,
            spans: document.spans,
        }),
        Err(error) => {
            // The schema is generated from these types, so this is a gap between the two;
            // it still gets a diagnostic rather than a panic.
            diagnostics.push(Diagnostic::error(
                Code::InvalidFormat,
                path,
                document.spans.value_span(""),
                format!("the file does not match its kind: {error}"),
            ));
            None
        }
    }
}
