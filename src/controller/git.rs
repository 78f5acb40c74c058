//! The controller's own clone of the config repository: cloned once, fetched on every
//! sync, its protected branch moved to what the remote has. A local path, a `file://`
//! URL, HTTPS (a token from the environment, verified against the system's CAs or
//! `SSL_CERT_FILE`) or SSH (a key file, the server's host key checked against a
//! `known_hosts` file; an unknown host is refused, never trusted on first use).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

/// How long a remote may take to accept a connection. libgit2 waits as long as the
/// system does (minutes) by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a remote may stay silent once connected, on each read and write. libgit2
/// waits forever by default: a remote that accepts and never answers would hold the
/// controller's sync loop, or `doctor`, for good.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// The bounds on every connection to a remote, connect and then each read or write:
/// [`CONNECT_TIMEOUT`] and [`SERVER_TIMEOUT`], or both `SLACK_GITOPS_GIT_TIMEOUT_MS`
/// when it is set. They are libgit2's process-wide settings, so `main` sets them before
/// any thread starts.
pub fn timeouts() -> (Duration, Duration) {
    let configured = std::env::var("SLACK_GITOPS_GIT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    (
        configured.unwrap_or(CONNECT_TIMEOUT),
        configured.unwrap_or(SERVER_TIMEOUT),
    )
}

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub struct Access {
    /// An HTTPS token (`SLACK_GITOPS_GIT_TOKEN`): a GitHub or GitLab access token.
    pub token: Option<String>,
    /// The user name sent with the token; `x-access-token` by default (GitHub's for app
    /// tokens; personal tokens accept any).
    pub username: Option<String>,
    /// The SSH private key file (`--ssh-key`).
    pub ssh_key: Option<PathBuf>,
    /// Its passphrase, if any (`SLACK_GITOPS_GIT_SSH_PASSPHRASE`).
    pub ssh_passphrase: Option<String>,
    /// The `known_hosts` file SSH host keys are checked against (`--known-hosts`;
    /// `~/.ssh/known_hosts` by default).
    pub known_hosts: Option<PathBuf>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

impl Access {
    /// Fetch options carrying the credentials and the host key check. libgit2 asks for
    /// credentials again after a refusal; the second ask fails, so a bad token is an
    /// error, not a loop.
    fn fetch_options<'a>(&'a self, refusal: &'a Refusal) -> git2::FetchOptions<'a> {
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(self.callbacks(refusal));
        options
    }

    /// The credentials and the host key check, for a fetch or a probe.
    fn callbacks<'a>(&'a self, refusal: &'a Refusal) -> git2::RemoteCallbacks<'a> {
        let mut callbacks = git2::RemoteCallbacks::new();
        let mut asked = 0;
        callbacks.credentials(move |_url, user_from_url, allowed| {
            asked += 1;
            if asked > 2 {
                return Err(git2::Error::from_str(
                    "the remote refused the credentials (SLACK_GITOPS_GIT_TOKEN or --ssh-key)",
                ));
            }
            self.credentials(user_from_url, allowed)
        });
        callbacks.certificate_check(|certificate, host| {
            self.check_host(certificate, host).inspect_err(|error| {
                refusal.replace(Some(error.message().to_string()));
            })
        });
        callbacks
    }

    fn credentials(
        &self,
        user_from_url: Option<&str>,
        allowed: git2::CredentialType,
    ) -> Result<git2::Cred, git2::Error> {
        let ssh_user = user_from_url.unwrap_or("git");
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(ssh_user);
        }
        if allowed.contains(git2::CredentialType::SSH_KEY)
            && let Some(key) = &self.ssh_key
        {
            return git2::Cred::ssh_key(ssh_user, None, key, self.ssh_passphrase.as_deref());
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
            && let Some(token) = &self.token
        {
            let user = self.username.as_deref().unwrap_or("x-access-token");
            return git2::Cred::userpass_plaintext(user, token);
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials: set SLACK_GITOPS_GIT_TOKEN (HTTPS) or --ssh-key (SSH)",
        ))
    }

    /// TLS certificates are left to libgit2 (verified against the CAs); an SSH host key
    /// must be in `known_hosts`.
    fn check_host(
        &self,
        certificate: &git2::cert::Cert<'_>,
        host: &str,
    ) -> Result<git2::CertificateCheckStatus, git2::Error> {
        let Some(hostkey) = certificate.as_hostkey() else {
            return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(key) = hostkey.hostkey() else {
            return Err(git2::Error::from_str("the SSH server sent no host key"));
        };
        let file = self.known_hosts.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ssh/known_hosts"))
        });
        let Some(file) = file else {
            return Err(git2::Error::from_str(
                "no known_hosts file to check the SSH host key against (--known-hosts)",
            ));
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| git2::Error::from_str(&format!("cannot read {}: {e}", file.display())))?;
        if known_host(&text, host, key) {
            Ok(git2::CertificateCheckStatus::CertificateOk)
        } else {
            Err(git2::Error::from_str(&format!(
                "the SSH host key of {host} is not in {} (add it with `ssh-keyscan`); refusing to connect",
                file.display()
            )))
        }
    }
}

/// Why our own check refused the remote (libgit2 reports it in its own words).
type Refusal = std::cell::RefCell<Option<String>>;

/// The error of a clone or fetch: our refusal's reason when there is one.
fn explain(error: &git2::Error, refusal: &Refusal) -> String {
    refusal
        .borrow()
        .clone()
        .unwrap_or_else(|| error.message().to_string())
}

/// Whether `known_hosts` lists `key` (the server's key blob) for `host`: plain host
/// patterns, `[host]:port`, comma-separated names, `@revoked` honoured. Hashed names
/// (`|1|...`) are not matched; list the host in plain form.
pub fn known_host(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    let mut found = false;
    for line in known_hosts.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let revoked = first == "@revoked";
        if first.starts_with('@') {
            first = fields.next().unwrap_or("");
        }
        let (Some(_kind), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        let names_host = first.split(',').any(|name| {
            name == host
                || name
                    .strip_prefix('[')
                    .and_then(|rest| rest.split_once("]:"))
                    .is_some_and(|(name, _port)| name == host)
        });
        let same_key = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|decoded| decoded == key);
        if names_host && same_key {
            if revoked {
                return false;
            }
            found = true;
        }
    }
    found
}

/// Why the controller's clone could not be made or brought up to date. The messages name
/// the repository and the reason; never a token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open the clone {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot clone {repo}: {reason}")]
    Clone { repo: String, reason: String },
    #[error("fetch: {0}")]
    Fetch(String),
    #[error("the remote has no branch `{0}`")]
    NoBranch(String),
    #[error("{0}")]
    Repository(String),
}

fn open(workdir: &Path) -> Result<git2::Repository, GitError> {
    git2::Repository::open(workdir).map_err(|e| GitError::Open {
        path: workdir.to_path_buf(),
        message: e.message().to_string(),
    })
}

/// Clones `repo` into `workdir` unless a clone is there; points its `origin` at `repo`.
pub fn prepare(repo: &str, workdir: &Path, branch: &str, access: &Access) -> Result<(), GitError> {
    if workdir.join(".git").exists() {
        return open(workdir)?
            .remote_set_url("origin", repo)
            .map_err(|e| GitError::Repository(e.message().to_string()));
    }
    std::fs::create_dir_all(workdir).map_err(|source| GitError::Create {
        path: workdir.to_path_buf(),
        source,
    })?;
    let refusal = Refusal::default();
    let cloned = git2::build::RepoBuilder::new()
        .branch(branch)
        .fetch_options(access.fetch_options(&refusal))
        .clone(repo, workdir);
    cloned.map(|_| ()).map_err(|e| {
        // Nothing half-cloned is left for the next start to mistake for a clone.
        let _ = std::fs::remove_dir_all(workdir);
        GitError::Clone {
            repo: repo.to_string(),
            reason: explain(&e, &refusal),
        }
    })
}

/// Asks the remote `repo` for its refs, as the controller's fetch would authenticate,
/// without cloning: the tip of `branch`. For `doctor`.
pub fn probe(repo: &str, branch: &str, access: &Access) -> Result<String, GitError> {
    let mut remote =
        git2::Remote::create_detached(repo).map_err(|e| GitError::Fetch(e.message().into()))?;
    let refusal = Refusal::default();
    let connection = remote
        .connect_auth(
            git2::Direction::Fetch,
            Some(access.callbacks(&refusal)),
            None,
        )
        .map_err(|e| GitError::Fetch(explain(&e, &refusal)))?;
    let wanted = format!("refs/heads/{branch}");
    let tip = connection
        .list()
        .map_err(|e| GitError::Fetch(e.message().to_string()))?
        .iter()
        .find(|head| head.name() == wanted)
        .map(|head| head.oid().to_string());
    tip.ok_or_else(|| GitError::NoBranch(branch.to_string()))
}

/// Fetches the protected branch and moves the clone's branch of the same name to it
/// (the controller owns the clone; nothing is ever committed there). Returns the tip.
pub fn fetch(workdir: &Path, branch: &str, access: &Access) -> Result<String, GitError> {
    let repository = open(workdir)?;
    let mut remote = repository
        .find_remote("origin")
        .map_err(|e| GitError::Repository(e.message().to_string()))?;
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let refusal = Refusal::default();
    remote
        .fetch(
            &[refspec.as_str()],
            Some(&mut access.fetch_options(&refusal)),
            None,
        )
        .map_err(|e| GitError::Fetch(explain(&e, &refusal)))?;
    let tip = repository
        .revparse_single(&format!("refs/remotes/origin/{branch}"))
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| GitError::NoBranch(branch.to_string()))?;
    repository
        .reference(
            &format!("refs/heads/{branch}"),
            tip.id(),
            true,
            "slack-gitops controller: follow the remote",
        )
        .map_err(|e| GitError::Repository(e.message().to_string()))?;
    Ok(tip.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_match_by_name_port_and_key_and_honour_revocation() {
        let key = b"\x00\x00\x00\x0bssh-ed25519 key bytes";
        let blob = base64::engine::general_purpose::STANDARD.encode(key);
        let other = base64::engine::general_purpose::STANDARD.encode(b"another key");
        let file = format!(
            "# comment\ngithub.com,140.82.121.4 ssh-ed25519 {blob}\n[127.0.0.1]:2222 ssh-ed25519 {blob}\nevil.example ssh-ed25519 {other}\n"
        );
        assert!(known_host(&file, "github.com", key));
        assert!(known_host(&file, "140.82.121.4", key));
        assert!(known_host(&file, "127.0.0.1", key));
        assert!(!known_host(&file, "gitlab.com", key));
        assert!(!known_host(&file, "evil.example", key));
        let revoked = format!("{file}@revoked github.com ssh-ed25519 {blob}\n");
        assert!(!known_host(&revoked, "github.com", key));
    }
}
