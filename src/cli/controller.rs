//! `controller`: the long-running process, its listeners bound and its options read.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, SlackArgs, StateArgs, environment, server_runtime, shutdown_signal};

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The config repository to clone: a local path, a file:// URL, an https:// URL
    /// (token in SLACK_GITOPS_GIT_TOKEN) or an ssh:// or user@host:path URL
    /// (--ssh-key).
    #[arg(long)]
    repo: String,
    /// The SSH private key for an SSH remote (its passphrase, if any, in
    /// SLACK_GITOPS_GIT_SSH_PASSPHRASE).
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// The known_hosts file the SSH server's host key must be in (default
    /// ~/.ssh/known_hosts); an unknown host is refused.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// The protected branch.
    #[arg(long, default_value = "main")]
    branch: String,
    /// The config directory inside the repository.
    #[arg(long, default_value = ".")]
    config_path: PathBuf,
    /// Where to listen for webhooks (port 0 picks a free one; the address is
    /// printed). Without --admin-listen, /livez, /readyz, /status and /metrics are
    /// served here too.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Serve /livez, /readyz, /status and /metrics here instead, so that only the
    /// webhooks need be exposed (/status names leavers).
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    state: StateArgs,
    /// The lease replicas sharing the store elect their leader by.
    #[arg(long, default_value = "controller")]
    lease: String,
    /// This replica's name, unique among the replicas (default: $HOSTNAME, a pod's
    /// name; else the host's name and the process id).
    #[arg(long)]
    replica: Option<String>,
    /// How long the leader's lease lasts without renewal, in seconds: the longest a
    /// dead leader holds up the others.
    #[arg(long, default_value_t = 15.0)]
    lease_ttl: f64,
    /// The URL other replicas reach this one at (http://POD_IP:8080): a replica that
    /// does not lead hands the webhooks it receives to the one that does.
    #[arg(long)]
    advertise: Option<String>,
    /// Where to keep the clone (default: beside the state store).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Fetch this often without a webhook, in seconds.
    #[arg(long, default_value_t = 30.0)]
    poll: f64,
    /// How many mirrored channels (or a workspace's usergroups) the live mirror's
    /// refresher re-reads a minute, stale ones first, then the oldest.
    #[arg(long, default_value_t = crate::controller::mirror::REFRESH_PER_MINUTE)]
    mirror_refresh_per_minute: f64,
    #[command(flatten)]
    slack: SlackArgs,
}

/// Runs the controller until SIGTERM.
pub(super) fn controller(args: ControllerArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        args.poll.is_finite() && args.poll > 0.0,
        "--poll must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.mirror_refresh_per_minute.is_finite() && args.mirror_refresh_per_minute > 0.0,
        "--mirror-refresh-per-minute must be a positive number"
    );
    anyhow::ensure!(
        args.lease_ttl.is_finite() && args.lease_ttl >= 1.0,
        "--lease-ttl must be at least 1 second"
    );
    let store = args.state.open()?;
    let (listen, admin_listen) = (args.listen, args.admin_listen);
    let options = options(args)?;
    server_runtime()?.block_on(async move {
        let listeners = bind(listen, admin_listen).await?;
        crate::controller::run(options, store, listeners, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(EXIT_OK)
}

/// The controller's options: the flags, and the secrets from the environment.
fn options(args: ControllerArgs) -> anyhow::Result<crate::controller::Options> {
    let workdir = match args.workdir {
        Some(dir) => dir,
        // Beside a file store; a database store has no directory: the working one.
        None => {
            let spec = args.state.spec()?;
            let beside = if crate::store::is_url(&spec.to_string_lossy()) {
                None
            } else {
                spec.parent().map(Path::to_path_buf)
            };
            beside
                .unwrap_or_else(|| PathBuf::from("."))
                .join("controller-clone")
        }
    };
    let secret = |name: &str| environment(name).filter(|v| !v.is_empty());
    let mut connect = args.slack.connect();
    connect.identity_store = Some(args.state.spec()?.to_string_lossy().into_owned());
    Ok(crate::controller::Options {
        repo: args.repo,
        branch: args.branch,
        config_path: args.config_path,
        workdir,
        poll: std::time::Duration::from_secs_f64(args.poll),
        connect,
        git_secret: secret("SLACK_GITOPS_GIT_WEBHOOK_SECRET"),
        identity_secret: secret("SLACK_GITOPS_IDENTITY_WEBHOOK_SECRET"),
        slack_signing_secret: secret("SLACK_SIGNING_SECRET"),
        slack_app_token: secret("SLACK_APP_TOKEN"),
        slack_audit_token: secret("SLACK_AUDIT_TOKEN"),
        plan_token: secret("SLACK_GITOPS_CONTROLLER_TOKEN"),
        mirror_refresh_per_minute: args.mirror_refresh_per_minute,
        environment: std::sync::Arc::new(environment),
        git: crate::controller::git::Access {
            token: secret("SLACK_GITOPS_GIT_TOKEN"),
            username: secret("SLACK_GITOPS_GIT_USERNAME"),
            ssh_key: args.ssh_key,
            ssh_passphrase: secret("SLACK_GITOPS_GIT_SSH_PASSPHRASE"),
            known_hosts: args.known_hosts,
        },
        election: crate::controller::leader::Election {
            lease: args.lease,
            replica: args.replica.unwrap_or_else(|| {
                crate::controller::leader::Election::default_replica(&environment)
            }),
            ttl: std::time::Duration::from_secs_f64(args.lease_ttl),
            advertise: args.advertise,
        },
    })
}

/// Binds the webhook listener and, if asked, the admin one; prints where each listens
/// (tests and scripts read the first line).
async fn bind(
    listen: std::net::SocketAddr,
    admin_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<crate::controller::http::Listeners> {
    use std::io::Write;
    let bind = |address: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))
    };
    let hooks = bind(listen).await?;
    println!(
        "slack-gitops controller listening on http://{}",
        hooks.local_addr()?
    );
    let admin = match admin_listen {
        Some(address) => {
            let admin = bind(address).await?;
            println!(
                "slack-gitops controller serving /livez, /readyz, /status and /metrics on http://{}",
                admin.local_addr()?
            );
            Some(admin)
        }
        None => None,
    };
    std::io::stdout().flush()?;
    Ok(crate::controller::http::Listeners { hooks, admin })
}
