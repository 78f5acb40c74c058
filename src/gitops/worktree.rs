//! A config repository read from a directory on disk.
//!
//! Only the files that make up a config repository are read: `slack-gitops.yaml` and the
//! `*.yaml` / `*.yml` files directly under `mappings/`, `policies/` and `approvals/`.
//! A symlink is followed only when it resolves inside the repository; one that leaves it
//! is refused with a diagnostic, so a config cannot pull in files from elsewhere on the
//! machine that runs it. No file is read past the loader's size limit.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::{CONFIG_PATH, KIND_DIRECTORIES, MAX_FILE_BYTES, SourceFile, kind_for_path};
use crate::diagnostic::{Code, Diagnostic};

/// The directory itself cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    #[error("cannot read config repository {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
}

/// The files read, and the problems met while reading them.
#[derive(Debug, Default)]
pub struct Worktree {
    pub files: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads the config files under `root`.
pub fn read(root: &Path) -> Result<Worktree, WorktreeError> {
    let unreadable = |source| WorktreeError::Unreadable {
        path: root.to_path_buf(),
        source,
    };
    let canonical_root = root.canonicalize().map_err(unreadable)?;
    if !canonical_root.is_dir() {
        return Err(WorktreeError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut worktree = Worktree::default();
    let mut candidates = vec![CONFIG_PATH.to_string()];
    for (directory, _) in KIND_DIRECTORIES {
        let Some(resolved) = resolve_inside(&canonical_root, directory, &mut worktree.diagnostics)
        else {
            continue;
        };
        let Ok(entries) = fs::read_dir(&resolved) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .map(|name| format!("{directory}/{name}"))
            .filter(|path| kind_for_path(path).is_some() || crate::rego::is_rego_path(path))
            .collect();
        names.sort();
        candidates.extend(names);
    }
    for path in candidates {
        let Some(resolved) = resolve_inside(&canonical_root, &path, &mut worktree.diagnostics)
        else {
            continue;
        };
        if !resolved.is_file() {
            continue;
        }
        match read_limited(&resolved) {
            Ok(bytes) => worktree.files.push(SourceFile { path, bytes }),
            Err(error) => worktree.diagnostics.push(Diagnostic::error(
                Code::UnreadableFile,
                path,
                None,
                format!("cannot read the file: {error}"),
            )),
        }
    }
    Ok(worktree)
}

/// Resolves `relative` under the root, following symlinks only while they stay inside.
/// Returns `None` when the path does not exist or must not be read.
fn resolve_inside(
    canonical_root: &Path,
    relative: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<PathBuf> {
    let path = canonical_root.join(relative);
    let metadata = fs::symlink_metadata(&path).ok()?;
    if !metadata.file_type().is_symlink() {
        return Some(path);
    }
    match path.canonicalize() {
        Ok(target) if target.starts_with(canonical_root) => Some(target),
        Ok(target) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::SymlinkEscapesRepository,
                    relative,
                    None,
                    format!(
                        "`{relative}` is a symlink to {}, outside the repository; it is not read",
                        target.display()
                    ),
                )
                .with_help("copy the file into the repository instead of linking to it"),
            );
            None
        }
        Err(error) => {
            diagnostics.push(Diagnostic::error(
                Code::UnreadableFile,
                relative,
                None,
                format!("`{relative}` is a symlink that cannot be followed: {error}"),
            ));
            None
        }
    }
}

/// Reads at most one byte past the size limit, so the loader can tell it was exceeded
/// without this process reading a huge file into memory.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
