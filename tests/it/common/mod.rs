//! Shared by the emulator tests: an emulator served in-process on 127.0.0.1:0 and a
//! small HTTP client around it. Everything goes over real HTTP.

#![allow(dead_code)]

pub mod controller;
pub mod git_servers;
pub mod okta;
pub mod org;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use slack_emulator::{self as emulator, Emulator, Options, world::World};

pub struct Running {
    pub base: String,
    pub emulator: Arc<Emulator>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Copies a directory tree (a config repository to mutate in a test).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A directory export with `email` marked suspended.
pub fn suspend(text: &str, email: &str) -> String {
    let at = text.find(&format!("email: {email}")).unwrap();
    let status = at + text[at..].find("status: active").unwrap();
    format!(
        "{}status: suspended{}",
        &text[..status],
        &text[status + "status: active".len()..]
    )
}

/// A directory export with its first `count` active people suspended (a broken sync).
pub fn suspend_first(text: &str, count: usize) -> String {
    let mut shrunk = String::new();
    let mut left = count;
    for line in text.split_inclusive('\n') {
        if left > 0 && line == "    status: active\n" {
            shrunk.push_str("    status: suspended\n");
            left -= 1;
        } else {
            shrunk.push_str(line);
        }
    }
    shrunk
}

/// A command from a PyPI package (`package` pinned, as `name==version`), installed into
/// `target/ci-venv` on first use: the third-party servers and checkers tests run against.
pub fn python_tool(package: &str, command: &str) -> PathBuf {
    use std::process::Command;
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv");
    if !venv.join("bin/python").exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
    }
    let (name, version) = package.split_once("==").unwrap_or((package, ""));
    let installed = Command::new(venv.join("bin/pip"))
        .args(["show", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("Version: {version}")));
    if !installed {
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", package])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install {package} failed");
    }
    venv.join("bin").join(command)
}

/// Replaces `from` with `to` in the file at `path`, which must hold `from`.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// `policies/guardrails.yaml` of an Acme copy allows no deactivation.
pub fn allow_no_deactivation(repo: &Path) {
    edit(
        &repo.join("policies/guardrails.yaml"),
        "deactivate: { max: 10, max_percent: 2 }",
        "deactivate: { max: 0 }",
    );
}

pub fn small_seed() -> World {
    emulator::read_world(&fixture("tests/fixtures/emulator/small.json")).unwrap()
}

/// Starts an emulator with the seed and options.
pub async fn start(seed: World, options: Options) -> Running {
    let emulator = Emulator::new(seed, options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(emulator::serve(listener, emulator.clone(), async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        emulator,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
    }
}

/// The small seed at a time scale (rate limits and delays run that much faster).
pub async fn small(time_scale: f64) -> Running {
    start(
        small_seed(),
        Options {
            time_scale,
            ..Options::default()
        },
    )
    .await
}

impl Running {
    /// A Web API call with form arguments and a bearer token: (HTTP status, body).
    pub async fn web(&self, token: &str, method: &str, args: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/{method}", self.base))
            .bearer_auth(token)
            .form(args)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// A Web API call that must succeed; returns the body.
    pub async fn ok(&self, token: &str, method: &str, args: &[(&str, &str)]) -> Value {
        let (status, body) = self.web(token, method, args).await;
        assert_eq!(status, 200);
        assert_eq!(body["ok"], true, "{method} failed: {body}");
        body
    }

    /// The `error` of a Web API call that must fail with HTTP 200.
    pub async fn error(&self, token: &str, method: &str, args: &[(&str, &str)]) -> String {
        let (status, body) = self.web(token, method, args).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], false, "{method} unexpectedly succeeded: {body}");
        body["error"].as_str().unwrap().to_string()
    }

    /// A SCIM call: (HTTP status, body or Null).
    pub async fn scim(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.scim_as("xoxp-admin", method, path, body).await
    }

    pub async fn scim_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/scim/v2/{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, body)
    }

    /// Empties the call log, so that what follows is all it shows.
    pub async fn clear_log(&self) {
        let response = self
            .http
            .delete(format!("{}/_emulator/log", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204);
    }

    /// The call log through the control surface.
    pub async fn log(&self) -> Vec<slack_emulator::CallRecord> {
        let body: Value = self
            .http
            .get(format!("{}/_emulator/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        serde_json::from_value(body["calls"].clone()).unwrap()
    }

    /// Settings through the control surface.
    pub async fn settings(&self, change: impl FnOnce(&mut Value)) {
        let mut settings: Value = self
            .http
            .get(format!("{}/_emulator/settings", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        change(&mut settings);
        let response = self
            .http
            .put(format!("{}/_emulator/settings", self.base))
            .json(&settings)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204);
    }

    /// A GET on the control surface (`/_emulator/{path}`), as JSON.
    pub async fn control(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_emulator/{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A POST of JSON to the control surface (`/_emulator/{path}`): (status, text).
    pub async fn control_post(&self, path: &str, body: &Value) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/_emulator/{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn fault(&self, fault: Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/faults", self.base))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204);
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}
