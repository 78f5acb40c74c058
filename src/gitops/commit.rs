//! Reading the config repository at a merged commit (safety rule 4).
//!
//! `apply` never reads the working tree: the commit's tree is written into a private
//! temporary directory and every later stage (config, a `file` identity export, approvals)
//! reads from there, so an uncommitted edit cannot reach Slack. The commit must be
//! reachable from the protected branch, which is `gitops.branch` in `slack-gitops.yaml`
//! (default `origin/main`); the config at that commit must name the same branch, so a
//! commit cannot make itself protected.

use std::path::{Path, PathBuf};

use crate::config::types::DEFAULT_BRANCH;

/// Why a commit cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error(
        "{path} is not inside a git repository; apply reads the config from a merged commit, so DIR must be a clone of the config repository (or a folder inside one)"
    )]
    NotARepository { path: PathBuf },
    #[error("{path} is in a bare repository; apply needs a clone with a work tree")]
    Bare { path: PathBuf },
    #[error("`{reference}` does not name a commit in {repository}")]
    UnknownRef {
        reference: String,
        repository: PathBuf,
    },
    #[error(
        "the protected branch `{branch}` does not exist in {repository}; fetch it (git fetch origin) or set gitops.branch in slack-gitops.yaml"
    )]
    UnknownBranch { branch: String, repository: PathBuf },
    /// Refused: the commit is not merged (exit 3).
    #[error(
        "refused: {reference} ({commit}) is not reachable from the protected branch `{branch}` ({tip}); only merged commits are applied"
    )]
    NotMerged {
        reference: String,
        commit: String,
        branch: String,
        tip: String,
    },
    /// Refused: the commit's config names another protected branch (exit 3).
    #[error(
        "refused: the config at {commit} names `{named}` as its protected branch, not `{branch}`"
    )]
    BranchMismatch {
        commit: String,
        named: String,
        branch: String,
    },
    #[error("{path} is not in the commit {commit}")]
    MissingDirectory { path: PathBuf, commit: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("cannot write the checkout of {commit}: {source}")]
    Write {
        commit: String,
        source: std::io::Error,
    },
}

impl GitopsError {
    /// Whether this is a refusal (exit 3) rather than an error (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            GitopsError::NotMerged { .. } | GitopsError::BranchMismatch { .. }
        )
    }
}

/// The config repository as it is at one merged commit, written to a private directory
/// that lives as long as this value.
#[derive(Debug)]
pub struct Checkout {
    /// The config directory inside the checkout (DIR's place in the commit's tree).
    pub dir: PathBuf,
    /// The full commit id.
    pub commit: String,
    /// The protected branch it is reachable from.
    pub branch: String,
    _temp: tempfile::TempDir,
}

/// Checks out the config at `reference` (default: the tip of the protected branch) for
/// `dir`, which may be the repository's root or a folder inside it.
pub fn checkout(dir: &Path, reference: Option<&str>) -> Result<Checkout, GitopsError> {
    let repository = git2::Repository::discover(dir).map_err(|_| GitopsError::NotARepository {
        path: dir.to_path_buf(),
    })?;
    let workdir = repository
        .workdir()
        .ok_or_else(|| GitopsError::Bare {
            path: dir.to_path_buf(),
        })?
        .to_path_buf();
    let prefix = relative_to(dir, &workdir)?;
    let root = workdir.clone();

    // The commit to apply: the named one, or the protected branch's tip. The branch comes
    // from the config at that commit; without --ref, the default branch's tip (or HEAD,
    // when it does not exist) tells which branch the config protects.
    let (commit, reference) = match reference {
        Some(reference) => (
            resolve(&repository, reference, &root)?,
            reference.to_string(),
        ),
        None => {
            let probe = resolve(&repository, DEFAULT_BRANCH, &root)
                .or_else(|_| resolve(&repository, "HEAD", &root))?;
            let branch = branch_named_at(&repository, &probe, &prefix)?;
            let tip =
                resolve(&repository, &branch, &root).map_err(|_| GitopsError::UnknownBranch {
                    branch: branch.clone(),
                    repository: root.clone(),
                })?;
            (tip, branch)
        }
    };
    let branch = branch_named_at(&repository, &commit, &prefix)?;
    let tip = resolve(&repository, &branch, &root).map_err(|_| GitopsError::UnknownBranch {
        branch: branch.clone(),
        repository: root.clone(),
    })?;
    if tip != commit && !repository.graph_descendant_of(tip, commit)? {
        return Err(GitopsError::NotMerged {
            reference,
            commit: commit.to_string(),
            branch,
            tip: tip.to_string(),
        });
    }
    let temp = tempfile::Builder::new()
        .prefix("slack-gitops-checkout-")
        .tempdir()
        .map_err(|source| GitopsError::Write {
            commit: commit.to_string(),
            source,
        })?;
    let tree = repository.find_commit(commit)?.tree()?;
    write_tree(&repository, &tree, temp.path()).map_err(|error| match error {
        WriteError::Git(error) => GitopsError::Git(error),
        WriteError::Io(source) => GitopsError::Write {
            commit: commit.to_string(),
            source,
        },
    })?;
    let config_dir = temp.path().join(&prefix);
    if !config_dir.is_dir() {
        return Err(GitopsError::MissingDirectory {
            path: prefix,
            commit: commit.to_string(),
        });
    }
    Ok(Checkout {
        dir: config_dir,
        commit: commit.to_string(),
        branch,
        _temp: temp,
    })
}

/// Where a config directory stands in its working tree: what the plan's pull-request
/// comment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingTree {
    /// DIR relative to the repository's root, `/`-separated; `.` at the root.
    pub config_dir: String,
    /// HEAD's commit, when there is one.
    pub commit: Option<String>,
    /// Files under DIR differ from HEAD (changed, staged or untracked).
    pub dirty: bool,
}

/// Where `dir` stands in its repository; `None` outside one (or in a bare one).
pub fn describe(dir: &Path) -> Option<WorkingTree> {
    let repository = git2::Repository::discover(dir).ok()?;
    let workdir = repository.workdir()?.to_path_buf();
    let prefix = relative_to(dir, &workdir).ok()?;
    let parts: Vec<String> = prefix
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let config_dir = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    let commit = repository
        .head()
        .ok()
        .and_then(|head| head.peel_to_commit().ok())
        .map(|commit| commit.id().to_string());
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).include_ignored(false);
    if !parts.is_empty() {
        options.pathspec(&config_dir);
    }
    let dirty = repository
        .statuses(Some(&mut options))
        .map(|statuses| !statuses.is_empty())
        .unwrap_or(false);
    Some(WorkingTree {
        config_dir,
        commit,
        dirty,
    })
}

/// `dir` relative to the work tree's root.
fn relative_to(dir: &Path, workdir: &Path) -> Result<PathBuf, GitopsError> {
    let not_inside = || GitopsError::NotARepository {
        path: dir.to_path_buf(),
    };
    let dir = dir.canonicalize().map_err(|_| not_inside())?;
    let workdir = workdir.canonicalize().map_err(|_| not_inside())?;
    dir.strip_prefix(&workdir)
        .map(Path::to_path_buf)
        .map_err(|_| not_inside())
}

fn resolve(
    repository: &git2::Repository,
    reference: &str,
    root: &Path,
) -> Result<git2::Oid, GitopsError> {
    repository
        .revparse_single(reference)
        .and_then(|object| object.peel_to_commit())
        .map(|commit| commit.id())
        .map_err(|_| GitopsError::UnknownRef {
            reference: reference.to_string(),
            repository: root.to_path_buf(),
        })
}

/// The protected branch the config at `commit` names (`gitops.branch`), read without
/// checking the rest of the file: the full load happens on the checkout.
fn branch_named_at(
    repository: &git2::Repository,
    commit: &git2::Oid,
    prefix: &Path,
) -> Result<String, GitopsError> {
    let tree = repository.find_commit(*commit)?.tree()?;
    let path = prefix.join("slack-gitops.yaml");
    let Ok(entry) = tree.get_path(&path) else {
        return Ok(DEFAULT_BRANCH.to_string());
    };
    let blob = repository.find_blob(entry.id())?;
    let text = String::from_utf8_lossy(blob.content());
    Ok(crate::config::gitops_branch(&text).unwrap_or_else(|| DEFAULT_BRANCH.to_string()))
}

enum WriteError {
    Git(git2::Error),
    Io(std::io::Error),
}

impl From<git2::Error> for WriteError {
    fn from(error: git2::Error) -> Self {
        WriteError::Git(error)
    }
}

impl From<std::io::Error> for WriteError {
    fn from(error: std::io::Error) -> Self {
        WriteError::Io(error)
    }
}

/// Writes a tree's files under `target`: blobs as files, symlinks as symlinks (the
/// worktree reader follows them only while they stay inside), submodules skipped.
fn write_tree(
    repository: &git2::Repository,
    tree: &git2::Tree,
    target: &Path,
) -> Result<(), WriteError> {
    std::fs::create_dir_all(target)?;
    for entry in tree.iter() {
        let Ok(name) = entry.name() else { continue };
        let path = target.join(name);
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                let subtree = repository.find_tree(entry.id())?;
                write_tree(repository, &subtree, &path)?;
            }
            Some(git2::ObjectType::Blob) => {
                let blob = repository.find_blob(entry.id())?;
                if entry.filemode() == 0o120000 {
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(
                        String::from_utf8_lossy(blob.content()).as_ref(),
                        &path,
                    )?;
                } else {
                    std::fs::write(&path, blob.content())?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
