//! A controller process for the tests: spawned from the real binary against an org's
//! emulator, its HTTP surface read over real HTTP.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use super::org::Org;

/// The push webhook's secret the controllers are started with.
pub const SECRET: &str = "git-hook-secret";

pub struct Controller {
    pub child: tokio::process::Child,
    /// Where webhooks go (and everything else, unless `--admin-listen` split it off).
    pub base: String,
    /// Where `/status`, `/metrics` and the probes are served.
    pub admin: String,
    pub http: reqwest::Client,
}

impl Controller {
    pub async fn start(org: &Org, remote: &std::path::Path) -> Controller {
        Controller::start_with(org, remote, &[]).await
    }

    pub async fn start_with(
        org: &Org,
        remote: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Controller {
        Controller::spawn(
            org,
            remote.as_os_str(),
            env,
            &[],
            std::process::Stdio::null(),
        )
        .await
    }

    /// Taking identity events (secret `idp-secret`) and reading the HR export at
    /// `export`, once its first sync converged.
    pub async fn converged_with_identity(
        org: &Org,
        remote: &std::path::Path,
        export: &std::path::Path,
    ) -> Controller {
        let controller = Controller::start_with(
            org,
            remote,
            &[
                ("SLACK_GITOPS_IDENTITY_WEBHOOK_SECRET", "idp-secret"),
                ("SLACK_GITOPS_IDENTITY_EXPORT", export.to_str().unwrap()),
            ],
        )
        .await;
        controller
            .wait("converging at start", |s| {
                s["last_syncs"][0]["outcome"] == "converged"
            })
            .await;
        controller
    }

    /// Logging JSON lines (`--log-format json`) at info level to `log`.
    pub async fn start_logged(
        org: &Org,
        remote: &std::path::Path,
        log: &std::path::Path,
    ) -> Controller {
        let file = std::fs::File::create(log).unwrap();
        Controller::spawn(
            org,
            remote.as_os_str(),
            &[],
            &["--log-format", "json"],
            file.into(),
        )
        .await
    }

    /// `args` may name their own `--state` and `--listen`; the org's file and a free port
    /// are the defaults.
    pub async fn spawn(
        org: &Org,
        remote: &std::ffi::OsStr,
        env: &[(&str, &str)],
        args: &[&str],
        stderr: std::process::Stdio,
    ) -> Controller {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"));
        command.args(["controller", "--repo"]).arg(remote);
        if !args.contains(&"--state") {
            command.arg("--state").arg(&org.state);
        }
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(["--branch", "main", "--poll", "0.5"])
            .args([
                "--slack-url",
                &org.emulator.base,
                "--time-scale",
                super::org::TIME_SCALE,
            ])
            .env("SLACK_ADMIN_TOKEN", &org.admin)
            .env("SLACK_BOT_TOKEN", &org.bot)
            .env("SLACK_GITOPS_GIT_WEBHOOK_SECRET", SECRET)
            .args(args)
            .env("SLACK_GITOPS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let base = first
            .strip_prefix("slack-gitops controller listening on ")
            .unwrap()
            .to_string();
        let admin = if args.contains(&"--admin-listen") {
            let second = lines.next_line().await.unwrap().unwrap();
            second
                .rsplit_once(" on ")
                .map(|(_, url)| url.to_string())
                .unwrap()
        } else {
            base.clone()
        };
        Controller {
            child,
            base,
            admin,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    pub async fn status(&self) -> Value {
        self.http
            .get(format!("{}/status", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A GET on the admin listener (`/status`, `/metrics`, the probes).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A push webhook signed with `secret`.
    pub async fn push_hook(&self, secret: &str) -> u16 {
        let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
        self.http
            .post(format!("{}/hooks/git", self.base))
            .header("X-GitHub-Event", "push")
            .header(
                "X-Hub-Signature-256",
                slack_gitops::controller::http::sign(secret, &body),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until `/status` satisfies `done`, for at most 20 s.
    pub async fn wait(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.wait_up_to(what, Duration::from_secs(20), done).await
    }

    /// Waits until `/status` satisfies `done`, for at most `limit`.
    pub async fn wait_up_to(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{what} did not happen: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
