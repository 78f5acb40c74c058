//! `import`: adopting an existing org. Reads live Slack (with the members of every
//! channel the selection names) and the whole identity directory, lets the pure core
//! infer the mappings ([`crate::adopt`]), checks that the repository with them still
//! validates, and only then writes the files, inside the repository.
//!
//! A file is never overwritten: a mapping whose file name is taken goes to the next free
//! `-2`, `-3` name. With `--force`, the files an earlier import wrote (they open with
//! [`adopt::write::SIGNATURE`]) and whose every mapping the selection (`--only`) covers
//! are set aside: what they map is imported again, into fresh files at the usual names,
//! and those of them not written again are removed.
//! Files written by hand are never touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::adopt::{self, Adoption, Report};
use crate::config::{self, SourceFile};
use crate::gitops::worktree;
use crate::pipeline::{Connection, PipelineError};
use crate::slack::reader::ReadScope;

/// What `import` is asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The selection and the split (`taken` is filled here, from the repository).
    pub adopt: adopt::Options,
    /// Set aside the files an earlier import wrote, and import what they map again.
    pub force: bool,
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{0} is a symbolic link or leaves the repository; nothing was written")]
    Outside(String),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{0} exists; the flags that describe the org only write a new one")]
    ConfigExists(PathBuf),
    #[error(
        "{0} has no slack-gitops.yaml: write one, or let import write it from --slack-plan, --workspace, --identity-source (with its settings) and --scope"
    )]
    NoConfig(PathBuf),
    /// The written mappings would not validate: a fault of the import, never written.
    #[error("the imported mappings do not validate; nothing was written\n{0}")]
    Invalid(String),
}

/// Reads the org through `connection` (made with `every_group`), infers the mappings and
/// writes them into `dir`. Answers the report.
pub async fn import(
    dir: &Path,
    connection: &Connection,
    options: &ImportOptions,
) -> Result<Report, ImportError> {
    let present = present_files(dir);
    // With --force, the files an earlier import wrote whose every mapping the selection
    // imports again: a file holding anything else stays, so nothing unselected is lost.
    let selected = |file: &str| {
        connection
            .repository
            .mappings
            .iter()
            .filter(|m| m.file == file)
            .all(|m| {
                let only = &options.adopt;
                m.value
                    .usergroups
                    .iter()
                    .all(|u| only.wants_usergroup(u.handle.as_str()))
                    && m.value
                        .channels
                        .iter()
                        .all(|c| only.wants_channel(c.name.as_str()))
            })
    };
    let set_aside: BTreeSet<String> = if options.force {
        present
            .iter()
            .filter(|p| imported_before(dir, p) && selected(p))
            .cloned()
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut repository = connection.repository.clone();
    repository.mappings.retain(|f| !set_aside.contains(&f.file));
    let mut adopt_options = options.adopt.clone();
    adopt_options.taken = present.difference(&set_aside).cloned().collect();

    let mut scope = ReadScope::from_repository(&repository);
    scope.channels_matching = channel_patterns(&options.adopt.only);
    tracing::info!("reading the identity provider and Slack");
    let (directory, live) = tokio::join!(
        connection.read_identity(),
        crate::slack::reader::read_live(&connection.client, &scope)
    );
    let directory = directory?;
    let (live, _) = live.map_err(PipelineError::from)?;
    adopt_options.protect = acting_as(connection, &live).await.into_iter().collect();
    let adoption = adopt::adopt(&repository, &directory, &live, &adopt_options);
    let removed: Vec<String> = set_aside
        .iter()
        .filter(|p| !adoption.files.iter().any(|(path, _)| path == *p))
        .cloned()
        .collect();
    check_valid(dir, &adoption, &set_aside, &directory)?;
    write(dir, &adoption, &removed)?;
    let mut report = adoption.report;
    report.removed = removed;
    Ok(report)
}

/// The email of the account the admin token acts as, which the starting policy
/// protects (a plan must never deactivate the tool's own account).
async fn acting_as(connection: &Connection, live: &crate::model::live::Live) -> Option<String> {
    let credential = crate::slack::client::Credential::Admin;
    let (body, _) = connection.client.auth_test(credential).await.ok()?;
    let id = body.get("user_id")?.as_str()?;
    live.users
        .iter()
        .find(|u| u.id == id)
        .map(|u| u.email.clone())
}

/// The files under `mappings/` and `policies/`, relative to `dir`.
fn present_files(dir: &Path) -> BTreeSet<String> {
    let mut present = BTreeSet::new();
    for folder in ["mappings", "policies"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            present.insert(format!("{folder}/{}", entry.file_name().to_string_lossy()));
        }
    }
    present
}

/// Whether `path` is a regular file an earlier import wrote.
fn imported_before(dir: &Path, path: &str) -> bool {
    use std::io::Read;
    let target = dir.join(path);
    let regular = std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file());
    let mut head = vec![0; adopt::write::SIGNATURE.len()];
    regular
        && path.starts_with("mappings/")
        && std::fs::File::open(&target)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && head == adopt::write::SIGNATURE.as_bytes()
}

/// Writes a starting `slack-gitops.yaml` into `dir` (created if missing) from `start`,
/// after loading it like any config; never over an existing one.
pub fn write_config(dir: &Path, start: &adopt::write::Start) -> Result<(), ImportError> {
    let target = dir.join(config::CONFIG_PATH);
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(ImportError::ConfigExists(target));
    }
    let text = adopt::write::starting_config(start);
    let file = SourceFile {
        path: config::CONFIG_PATH.to_string(),
        bytes: text.as_bytes().to_vec(),
    };
    let loaded = config::load(std::slice::from_ref(&file), None);
    if !loaded.diagnostics.is_empty() || loaded.repository.is_none() {
        let sources = [(file.path.clone(), text.clone())].into_iter().collect();
        return Err(ImportError::Invalid(crate::render::diagnostics::text(
            &loaded.diagnostics,
            &sources,
            false,
        )));
    }
    let failed = |error: std::io::Error| ImportError::Write {
        path: target.clone(),
        message: error.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let temporary = dir.join(".slack-gitops.yaml.import");
    write_new(&temporary, &text).map_err(failed)?;
    std::fs::rename(&temporary, &target).map_err(failed)?;
    Ok(())
}

/// Refuses a folder without a `slack-gitops.yaml`, saying how to make one.
pub fn has_config(dir: &Path) -> Result<(), ImportError> {
    if dir.join(config::CONFIG_PATH).is_file() {
        Ok(())
    } else {
        Err(ImportError::NoConfig(dir.to_path_buf()))
    }
}

/// The channel-name globs of a selection: `#x` and bare `x`; everything when empty.
fn channel_patterns(only: &[String]) -> Vec<String> {
    if only.is_empty() {
        return vec!["*".into()];
    }
    only.iter()
        .filter(|p| !p.starts_with('@'))
        .map(|p| p.strip_prefix('#').unwrap_or(p).to_string())
        .collect()
}

/// The repository as it would be (the files set aside gone, the adoption's added),
/// loaded and checked against the directory's groups, before anything is written.
fn check_valid(
    dir: &Path,
    adoption: &Adoption,
    set_aside: &BTreeSet<String>,
    directory: &crate::model::directory::Directory,
) -> Result<(), ImportError> {
    let tree = worktree::read(dir).map_err(PipelineError::from)?;
    let mut files: Vec<SourceFile> = tree
        .files
        .into_iter()
        .filter(|f| !set_aside.contains(&f.path))
        .collect();
    for (path, text) in &adoption.files {
        files.push(SourceFile {
            path: path.clone(),
            bytes: text.as_bytes().to_vec(),
        });
    }
    let known = directory.group_names();
    let loaded = config::load(&files, Some(&known));
    if loaded.diagnostics.is_empty() && loaded.repository.is_some() {
        return Ok(());
    }
    let sources = files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.bytes).into_owned(),
            )
        })
        .collect();
    Err(ImportError::Invalid(crate::render::diagnostics::text(
        &loaded.diagnostics,
        &sources,
        false,
    )))
}

/// Writes the files and removes `removed`: first checks every path (inside the
/// repository, no symbolic link), then writes each through a temporary file and a rename.
fn write(dir: &Path, adoption: &Adoption, removed: &[String]) -> Result<(), ImportError> {
    let root = dir.canonicalize().map_err(|error| ImportError::Write {
        path: dir.to_path_buf(),
        message: error.to_string(),
    })?;
    let paths = adoption.files.iter().map(|(path, _)| path).chain(removed);
    for path in paths {
        let target = root.join(path);
        let parent = target.parent().expect("a file has a folder");
        if let Ok(meta) = std::fs::symlink_metadata(parent) {
            let inside = parent.canonicalize().is_ok_and(|p| p.starts_with(&root));
            if meta.file_type().is_symlink() || !inside {
                return Err(ImportError::Outside(path.clone()));
            }
        }
        if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.file_type().is_file()) {
            return Err(ImportError::Outside(path.clone()));
        }
    }
    for (path, text) in &adoption.files {
        let target = root.join(path);
        let failed = |error: std::io::Error| ImportError::Write {
            path: target.clone(),
            message: error.to_string(),
        };
        let parent = target.parent().expect("a file has a folder");
        std::fs::create_dir_all(parent).map_err(failed)?;
        let temporary = parent.join(format!(".{}.import", path.replace('/', "_")));
        write_new(&temporary, text).map_err(failed)?;
        std::fs::rename(&temporary, &target).map_err(failed)?;
    }
    for path in removed {
        let target = root.join(path);
        std::fs::remove_file(&target).map_err(|error| ImportError::Write {
            path: target.clone(),
            message: error.to_string(),
        })?;
    }
    Ok(())
}

/// Writes `text` to a new file at `path`: whatever is there (a leftover, or a symbolic
/// link planted to point outside the repository) is removed first, never followed.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
