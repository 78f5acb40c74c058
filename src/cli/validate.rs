//! `validate` and `schema`: a config repository checked, the schemas printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{Color, EXIT_ERROR, EXIT_OK};
use crate::config::{self, Kind, schema};
use crate::diagnostic::{Diagnostic, Severity};
use crate::gitops::worktree;
use crate::render::{self, Format};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config repository (the directory holding slack-gitops.yaml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// How to print the diagnostics.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    format: ValidateFormat,
    /// When to colour text output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The kind; without it, an object of all four schemas keyed by kind.
    kind: Option<String>,
}

/// Output formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// For terminals: cargo-style snippets, colour on a TTY.
    Text,
    /// GitHub Actions workflow commands: annotations on the PR's lines.
    Github,
    /// A versioned JSON document, for machines.
    Json,
}

impl From<ValidateFormat> for Format {
    fn from(format: ValidateFormat) -> Format {
        match format {
            ValidateFormat::Text => Format::Text,
            ValidateFormat::Github => Format::Github,
            ValidateFormat::Json => Format::Json,
        }
    }
}

pub(super) fn validate(args: &ValidateArgs) -> anyhow::Result<u8> {
    let (dir, format, color) = (
        args.dir.as_path(),
        Format::from(args.format),
        args.color.enabled(),
    );
    let tree = worktree::read(dir)?;
    let loaded = config::load(&tree.files, None);
    let mut diagnostics: Vec<Diagnostic> = tree.diagnostics;
    diagnostics.extend(loaded.diagnostics);
    // A repository that loaded names IdP groups: each must be in the export. Its Rego
    // policies then judge the config (and the export, when it is a file).
    if let Some(repository) = loaded.repository {
        let directory = match file_export(dir, &repository) {
            Ok(directory) => directory,
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                None
            }
        };
        let input = crate::rego::input_text(&repository, directory.as_ref(), None);
        let outcome = crate::pipeline::check_policies(&repository.rego, input);
        let paths: Vec<String> = tree.files.iter().map(|f| f.path.clone()).collect();
        diagnostics.extend(outcome.problems);
        let findings = &outcome.findings;
        diagnostics.extend(crate::rego::diagnostics(findings, &repository.rego, &paths));
        if let Some(directory) = &directory {
            diagnostics.extend(repository.unknown_groups(&directory.group_names()));
        }
    }
    diagnostics.sort();
    diagnostics.dedup();

    // Diagnostics name repository-relative files; shown paths are relative to where the
    // command runs, so GitHub annotations land on the right file of the checkout.
    let prefix = display_prefix(dir);
    let mut sources = BTreeMap::new();
    for file in &tree.files {
        sources.insert(
            format!("{prefix}{}", file.path),
            String::from_utf8_lossy(&file.bytes).into_owned(),
        );
    }
    for diagnostic in &mut diagnostics {
        diagnostic.file = format!("{prefix}{}", diagnostic.file);
    }

    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let output = match format {
        Format::Text => {
            let mut text = render::diagnostics::text(&diagnostics, &sources, color);
            text.push_str(&summary(tree.files.len(), &diagnostics));
            text
        }
        Format::Github => render::diagnostics::github(&diagnostics),
        Format::Json => render::diagnostics::json(&diagnostics),
    };
    super::emit(&output)?;
    Ok(if errors > 0 { EXIT_ERROR } else { EXIT_OK })
}

/// With a `file` identity source, the export is local and cheap to read, so `validate`
/// also checks every IdP group name in the config against it. Other sources are remote
/// and are checked when `plan` reads them.
fn file_export(
    dir: &Path,
    repository: &config::Repository,
) -> Result<Option<crate::model::directory::Directory>, Diagnostic> {
    use crate::config::types::IdentitySource as Kind;
    use crate::identity::IdentitySource;
    let identity = &repository.config.value.identity;
    let (Kind::File, Some(path)) = (identity.source, &identity.path) else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let environment = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let read = crate::identity::file::FileSource::configured(dir, path, &environment)
        .map(|source| runtime.block_on(source.read()));
    match read.and_then(|read| read) {
        Ok(directory) => Ok(Some(directory)),
        Err(error) => Err(Diagnostic::error(
            crate::diagnostic::Code::IdentityExportUnreadable,
            &repository.config.file,
            repository.config.span("/identity/path"),
            format!("{error}; IdP group names were not checked"),
        )
        .warning()),
    }
}

fn summary(files: usize, diagnostics: &[Diagnostic]) -> String {
    let count = |severity| {
        diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if errors == 0 && warnings == 0 {
        format!("{} checked: no problems\n", plural(files, "file"))
    } else {
        format!(
            "{} checked: {}, {}\n",
            plural(files, "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}

fn display_prefix(dir: &Path) -> String {
    let text = dir.to_string_lossy().replace('\\', "/");
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

pub(super) fn print_schema(args: &SchemaArgs) -> anyhow::Result<u8> {
    match args.kind.as_deref() {
        Some(name) => {
            let Some(kind) = Kind::parse(name) else {
                anyhow::bail!(
                    "unknown kind `{name}`; expected one of config, mappings, policy, approval"
                );
            };
            super::emit(&schema::schema_text(kind))?;
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> = Kind::ALL
                .into_iter()
                .map(|kind| (kind.as_str().to_string(), kind.schema().clone()))
                .collect();
            super::emit(&format!("{}\n", serde_json::to_string_pretty(&all)?))?;
        }
    }
    Ok(EXIT_OK)
}
