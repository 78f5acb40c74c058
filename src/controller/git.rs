//! The controller's own clone of the config repository: cloned once, fetched on every
//! sync, its protected branch moved to what the remote has. Local paths and `file://`
//! URLs; the build carries no TLS stack for git (libgit2 is vendored without OpenSSL), so
//! an HTTPS remote is mirrored to a path by the deployment (a sidecar `git fetch`).

use std::path::Path;

/// Clones `repo` into `workdir` unless a clone of it is there.
pub fn prepare(repo: &str, workdir: &Path, branch: &str) -> Result<(), String> {
    if workdir.join(".git").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(workdir)
        .map_err(|e| format!("cannot create {}: {e}", workdir.display()))?;
    git2::build::RepoBuilder::new()
        .branch(branch)
        .clone(repo, workdir)
        .map(|_| ())
        .map_err(|e| format!("cannot clone {repo}: {}", e.message()))
}

/// Fetches the protected branch and moves the clone's branch of the same name to it
/// (the controller owns the clone; nothing is ever committed there). Returns the tip.
pub fn fetch(workdir: &Path, branch: &str) -> Result<String, String> {
    let repository = git2::Repository::open(workdir).map_err(|e| {
        format!(
            "cannot open the clone {}: {}",
            workdir.display(),
            e.message()
        )
    })?;
    let mut remote = repository
        .find_remote("origin")
        .map_err(|e| e.message().to_string())?;
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    remote
        .fetch(&[refspec.as_str()], None, None)
        .map_err(|e| format!("fetch: {}", e.message()))?;
    let tip = repository
        .revparse_single(&format!("refs/remotes/origin/{branch}"))
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| format!("the remote has no branch `{branch}`"))?;
    repository
        .reference(
            &format!("refs/heads/{branch}"),
            tip.id(),
            true,
            "slack-gitops controller: follow the remote",
        )
        .map_err(|e| e.message().to_string())?;
    Ok(tip.id().to_string())
}
