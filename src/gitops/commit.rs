//! Reading the config repository at a merged commit (safety rule 4).
//!
//! `apply` never reads the working tree: the config directory's tree at the commit is
//! written into a private temporary directory (0700, files 0600) and every later stage
//! (config, a `file` identity export, approvals) reads from there, so an uncommitted edit
//! cannot reach Slack.
//!
//! **Merged means merged on the remote.** The commit must be reachable from the protected
//! branch as the remote has it (`refs/remotes/origin/<branch>`), never from a local branch
//! of the same name, which any commit can be put on. Which branch is protected comes from
//! the command line, or from `gitops.branch` at the tip of the remote's default branch:
//! never from the commit under test, so an unmerged commit cannot make itself protected.
//!
//! **A commit's tree is hostile.** A plain bare remote accepts trees that `git fsck`
//! would refuse: entries named `..` or `.git`, names with `/`, symlinks that lead out.
//! Each entry is checked before anything is written, nothing is written through an
//! existing path (so a duplicate entry cannot turn a symlink into a way out), and a
//! symlink that resolves outside the checkout refuses the whole commit.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::types::DEFAULT_BRANCH;

/// The prefix of every temporary checkout's directory name; the process id follows, so a
/// checkout left behind by a killed process can be told from one in use.
const CHECKOUT_PREFIX: &str = "slack-gitops-checkout-";

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
        "the protected branch `{branch}` is not a branch of the remote in {repository} (looked for {looked_for}); only a branch as the remote has it proves a commit merged, never a local one: fetch it (git fetch origin), or name it with --branch or gitops.branch in slack-gitops.yaml"
    )]
    UnknownBranch {
        branch: String,
        looked_for: String,
        repository: PathBuf,
    },
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
    /// Refused: the protected branch's own config names another branch (exit 3).
    #[error(
        "refused: the config at the tip of the protected branch `{branch}` ({tip}) names `{named}` as the protected branch; make them agree"
    )]
    BranchMismatch {
        tip: String,
        named: String,
        branch: String,
    },
    /// Refused: the commit's tree holds an entry that must never be written (exit 3).
    #[error("refused: the commit {commit} holds `{entry}`, {reason}; nothing of it is written")]
    UnsafeEntry {
        commit: String,
        /// The entry's path in the tree, escaped for display.
        entry: String,
        reason: &'static str,
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
            GitopsError::NotMerged { .. }
                | GitopsError::BranchMismatch { .. }
                | GitopsError::UnsafeEntry { .. }
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
    /// The protected branch it is reachable from, as configured (`main`, `origin/main`).
    pub branch: String,
    _temp: tempfile::TempDir,
}

/// Checks out the config at `reference` (default: the tip of the protected branch) for
/// `dir`, which may be the repository's root or a folder inside it. `protected` names the
/// protected branch (the command line's `--branch`); without it, the config at the tip
/// of the remote's default branch names it.
pub fn checkout(
    dir: &Path,
    reference: Option<&str>,
    protected: Option<&str>,
) -> Result<Checkout, GitopsError> {
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
    let (branch, tip) = protected_branch(&repository, &prefix, protected, &root)?;
    let (commit, reference) = match reference {
        Some(reference) => (
            resolve(&repository, reference, &root)?,
            reference.to_string(),
        ),
        None => (tip, branch.clone()),
    };
    if tip != commit && !repository.graph_descendant_of(tip, commit)? {
        return Err(GitopsError::NotMerged {
            reference,
            commit: commit.to_string(),
            branch,
            tip: tip.to_string(),
        });
    }
    let temp = private_temp_dir().map_err(|source| GitopsError::Write {
        commit: commit.to_string(),
        source,
    })?;
    let tree = repository.find_commit(commit)?.tree()?;
    let missing = || GitopsError::MissingDirectory {
        path: prefix.clone(),
        commit: commit.to_string(),
    };
    let subtree = if prefix.as_os_str().is_empty() {
        tree
    } else {
        let entry = tree.get_path(&prefix).map_err(|_| missing())?;
        repository.find_tree(entry.id()).map_err(|_| missing())?
    };
    let config_dir = temp.path().join(&prefix);
    create_private_dirs(temp.path(), &prefix).map_err(|source| GitopsError::Write {
        commit: commit.to_string(),
        source,
    })?;
    let mut writer = TreeWriter {
        repository: &repository,
        root: &config_dir,
        symlinks: Vec::new(),
    };
    let written = writer
        .write(&subtree, &config_dir, "")
        .and_then(|()| writer.check_symlinks());
    written.map_err(|error| match error {
        WriteError::Git(error) => GitopsError::Git(error),
        WriteError::Io(source) => GitopsError::Write {
            commit: commit.to_string(),
            source,
        },
        WriteError::Unsafe { entry, reason } => GitopsError::UnsafeEntry {
            commit: commit.to_string(),
            entry: entry.escape_debug().to_string(),
            reason,
        },
    })?;
    Ok(Checkout {
        dir: config_dir,
        commit: commit.to_string(),
        branch,
        _temp: temp,
    })
}

/// The protected branch's name and its tip as the remote has it. The name comes from
/// `protected`, or from `gitops.branch` at the tip of the remote's default branch
/// (`origin/HEAD`, else `origin/main`); the config at the protected tip must name the
/// same branch.
fn protected_branch(
    repository: &git2::Repository,
    prefix: &Path,
    protected: Option<&str>,
    root: &Path,
) -> Result<(String, git2::Oid), GitopsError> {
    let branch = match protected {
        Some(branch) => branch.to_string(),
        None => {
            let (_, default_tip) = remote_default_branch(repository, root)?;
            branch_named_at(repository, &default_tip, prefix)?
                .unwrap_or_else(|| DEFAULT_BRANCH.to_string())
        }
    };
    let (reference, tip) = remote_branch(repository, &branch, root)?;
    // A tip that names no branch agrees with any: the default, or the command line's.
    if let Some(named) = branch_named_at(repository, &tip, prefix)? {
        let named_reference = remote_branch(repository, &named, root).map(|(r, _)| r);
        if named_reference.ok().as_ref() != Some(&reference) {
            return Err(GitopsError::BranchMismatch {
                tip: tip.to_string(),
                named,
                branch,
            });
        }
    }
    Ok((branch, tip))
}

/// The remote's default branch: what `origin/HEAD` points at, else `origin/main`.
fn remote_default_branch(
    repository: &git2::Repository,
    root: &Path,
) -> Result<(String, git2::Oid), GitopsError> {
    let symbolic = repository
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|head| head.symbolic_target().ok().flatten().map(str::to_string));
    let name = symbolic
        .as_deref()
        .and_then(|target| target.strip_prefix("refs/remotes/"))
        .unwrap_or(DEFAULT_BRANCH)
        .to_string();
    remote_branch(repository, &name, root)
}

/// A branch as the remote has it: `origin/main` and `main` both name
/// `refs/remotes/origin/main`. A local branch is never taken.
fn remote_branch(
    repository: &git2::Repository,
    branch: &str,
    root: &Path,
) -> Result<(String, git2::Oid), GitopsError> {
    let candidates = if let Some(full) = branch.strip_prefix("refs/") {
        vec![format!("refs/{full}")]
    } else {
        vec![
            format!("refs/remotes/{branch}"),
            format!("refs/remotes/origin/{branch}"),
        ]
    };
    for name in &candidates {
        if !name.starts_with("refs/remotes/") {
            continue;
        }
        if let Ok(tip) = repository
            .find_reference(name)
            .and_then(|r| r.peel_to_commit())
        {
            return Ok((name.clone(), tip.id()));
        }
    }
    Err(GitopsError::UnknownBranch {
        branch: branch.to_string(),
        looked_for: candidates.join(", "),
        repository: root.to_path_buf(),
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

/// The bytes of `path` (inside the config directory `dir`) at `commit`, when it is a
/// regular file of at most `limit` bytes there; `None` otherwise (a symbolic link, a
/// directory, missing, too large, an unknown commit).
pub fn file_at(dir: &Path, commit: &str, path: &str, limit: usize) -> Option<Vec<u8>> {
    let repository = git2::Repository::discover(dir).ok()?;
    let prefix = relative_to(dir, repository.workdir()?).ok()?;
    let oid = git2::Oid::from_str(commit).ok()?;
    let tree = repository.find_commit(oid).ok()?.tree().ok()?;
    let entry = tree.get_path(&prefix.join(path)).ok()?;
    if !matches!(entry.filemode(), 0o100644 | 0o100755) {
        return None;
    }
    let blob = repository.find_blob(entry.id()).ok()?;
    (blob.size() <= limit).then(|| blob.content().to_vec())
}

/// The protected branch the config at `commit` names (`gitops.branch`), read without
/// checking the rest of the file: the full load happens on the checkout.
fn branch_named_at(
    repository: &git2::Repository,
    commit: &git2::Oid,
    prefix: &Path,
) -> Result<Option<String>, GitopsError> {
    let tree = repository.find_commit(*commit)?.tree()?;
    let path = prefix.join(crate::config::CONFIG_PATH);
    let Ok(entry) = tree.get_path(&path) else {
        return Ok(None);
    };
    let Ok(blob) = repository.find_blob(entry.id()) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(blob.content());
    Ok(crate::config::gitops_branch(&text))
}

/// A new checkout directory, readable by this user only (it holds the identity export:
/// names, emails, managers). Checkouts left behind by killed processes are swept first.
fn private_temp_dir() -> std::io::Result<tempfile::TempDir> {
    sweep_abandoned_checkouts(&std::env::temp_dir());
    let prefix = format!("{CHECKOUT_PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder.tempdir()
}

/// Removes checkouts whose process is gone (a `kill -9` leaves its checkout behind). A
/// checkout's name carries its process id; a process is alive while `/proc/<pid>` is
/// there. Checkouts of other users are left alone (removing them fails quietly).
fn sweep_abandoned_checkouts(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(CHECKOUT_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Creates `relative`'s directories under `base`, each private.
fn create_private_dirs(base: &Path, relative: &Path) -> std::io::Result<()> {
    let mut path = base.to_path_buf();
    for component in relative.components() {
        path.push(component);
        private_dir_builder().create(&path)?;
    }
    Ok(())
}

fn private_dir_builder() -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

enum WriteError {
    Git(git2::Error),
    Io(std::io::Error),
    /// An entry that must not be written; `entry` is its path in the tree.
    Unsafe {
        entry: String,
        reason: &'static str,
    },
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

/// Why an entry name must not be written, if it must not: the names `git fsck` refuses
/// (`.`, `..`, `.git` in any case and its NTFS short name, empty names, separators, NUL)
/// and names that are not UTF-8.
fn unsafe_name(name: &[u8]) -> Option<&'static str> {
    let Ok(name) = std::str::from_utf8(name) else {
        return Some("a name that is not UTF-8");
    };
    if name.is_empty() {
        return Some("an empty name");
    }
    if name == "." || name == ".." {
        return Some("a name that leaves its directory");
    }
    if name.contains(['/', '\\', '\0']) {
        return Some("a name with a path separator or NUL");
    }
    // Windows and macOS ignore trailing dots and spaces; `git~1` is `.git`'s short name.
    let folded = name.trim_end_matches(['.', ' ']).to_ascii_lowercase();
    if folded == ".git" || folded == "git~1" {
        return Some("a name git reserves for its own directory");
    }
    None
}

/// Writes a tree below `root`: blobs as files, symlinks as symlinks, submodules skipped.
/// Nothing is written through a path that exists, so no entry can follow a symlink that
/// an earlier entry made.
struct TreeWriter<'a> {
    repository: &'a git2::Repository,
    root: &'a Path,
    /// Every symlink written, with its path in the tree, checked once all are there.
    symlinks: Vec<(PathBuf, String)>,
}

impl TreeWriter<'_> {
    fn write(&mut self, tree: &git2::Tree, target: &Path, prefix: &str) -> Result<(), WriteError> {
        for entry in tree.iter() {
            let name_bytes = entry.name_bytes();
            let shown = format!("{prefix}{}", String::from_utf8_lossy(name_bytes));
            if let Some(reason) = unsafe_name(name_bytes) {
                return Err(WriteError::Unsafe {
                    entry: shown,
                    reason,
                });
            }
            let path = target.join(String::from_utf8_lossy(name_bytes).as_ref());
            match entry.kind() {
                Some(git2::ObjectType::Tree) => {
                    let subtree = self.repository.find_tree(entry.id())?;
                    private_dir_builder().create(&path)?;
                    self.write(&subtree, &path, &format!("{shown}/"))?;
                }
                Some(git2::ObjectType::Blob) if entry.filemode() == 0o120000 => {
                    let blob = self.repository.find_blob(entry.id())?;
                    let depth = shown.matches('/').count();
                    if let Some(reason) = unsafe_link(blob.content(), depth) {
                        return Err(WriteError::Unsafe {
                            entry: shown,
                            reason,
                        });
                    }
                    let link = String::from_utf8_lossy(blob.content()).into_owned();
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(&link, &path)?;
                    self.symlinks.push((path, shown));
                }
                Some(git2::ObjectType::Blob) => {
                    let blob = self.repository.find_blob(entry.id())?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    options.open(&path)?.write_all(blob.content())?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every symlink that resolves must resolve inside the checkout: the lexical check
    /// cannot see through a chain of links (`a/b -> ..`, `a/c -> b/..`), the file system
    /// can. A dangling link leads nowhere and is left for the reader to report.
    fn check_symlinks(&self) -> Result<(), WriteError> {
        let root = self.root.canonicalize()?;
        for (path, shown) in &self.symlinks {
            if let Ok(target) = path.canonicalize()
                && !target.starts_with(&root)
            {
                return Err(WriteError::Unsafe {
                    entry: shown.clone(),
                    reason: "a symlink that leads outside the checkout",
                });
            }
        }
        Ok(())
    }
}

/// Why a symlink's target must not be written, if it must not: an absolute target, NUL,
/// or `..` components that climb above the checkout from the link's `depth`.
fn unsafe_link(target: &[u8], depth: usize) -> Option<&'static str> {
    if target.is_empty() || target.contains(&0) {
        return Some("a symlink with an empty target or NUL");
    }
    if target.starts_with(b"/") || target.starts_with(b"\\") {
        return Some("a symlink to an absolute path");
    }
    let mut level = depth as isize;
    for component in target.split(|b| *b == b'/' || *b == b'\\') {
        match component {
            b"" | b"." => {}
            b".." => level -= 1,
            _ => level += 1,
        }
        if level < 0 {
            return Some("a symlink that leads outside the checkout");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_fsck_refuses_are_refused() {
        for name in [
            "", ".", "..", ".git", ".GIT", ".Git.", ".git ", "git~1", "a/b", "a\\b", "a\0b",
        ] {
            assert!(unsafe_name(name.as_bytes()).is_some(), "{name:?}");
        }
        assert!(unsafe_name(b"\xff").is_some());
        for name in [
            ".gitignore",
            "git",
            "..yaml",
            "slack-gitops.yaml",
            ".github",
        ] {
            assert!(unsafe_name(name.as_bytes()).is_none(), "{name:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn checkouts_are_private_and_abandoned_ones_are_swept() {
        use std::os::unix::fs::PermissionsExt;
        let origin = tempfile::tempdir().unwrap();
        let repository = git2::Repository::init(origin.path()).unwrap();
        let blob = repository.blob(b"people: []\n").unwrap();
        let mut inner = repository.treebuilder(None).unwrap();
        inner.insert("directory.yaml", blob, 0o100644).unwrap();
        let inner = inner.write().unwrap();
        let mut root = repository.treebuilder(None).unwrap();
        root.insert("identity", inner, 0o040000).unwrap();
        let tree = repository.find_tree(root.write().unwrap()).unwrap();

        // A checkout left by a process that is gone, and one of a live process (ours).
        let temp = std::env::temp_dir();
        let dead = temp.join(format!("{CHECKOUT_PREFIX}4194303999-test"));
        let live = temp.join(format!("{CHECKOUT_PREFIX}{}-test", std::process::id()));
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let checkout = private_temp_dir().unwrap();
        assert!(!dead.exists(), "an abandoned checkout was not swept");
        assert!(live.exists(), "a live process's checkout was swept");
        std::fs::remove_dir_all(&live).unwrap();

        let mut writer = TreeWriter {
            repository: &repository,
            root: checkout.path(),
            symlinks: Vec::new(),
        };
        assert!(writer.write(&tree, checkout.path(), "").is_ok());
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(checkout.path()), 0o700);
        assert_eq!(mode(&checkout.path().join("identity")), 0o700);
        assert_eq!(
            mode(&checkout.path().join("identity/directory.yaml")),
            0o600
        );
    }

    #[test]
    fn symlinks_may_not_climb_out_or_be_absolute() {
        assert!(unsafe_link(b"/etc/passwd", 0).is_some());
        assert!(unsafe_link(b"..", 0).is_some());
        assert!(unsafe_link(b"a/../../x", 0).is_some());
        assert!(unsafe_link(b"../../x", 1).is_some());
        assert!(unsafe_link(b"", 0).is_some());
        assert!(unsafe_link(b"../directory.yaml", 1).is_none());
        assert!(unsafe_link(b"b/../c", 0).is_none());
    }
}
