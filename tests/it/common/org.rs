//! An Acme org for write-side tests: the emulator in process (real HTTP), the config in a
//! temp git repository whose `origin` is a bare repository beside it (its `main` is the
//! protected branch: a commit is merged once it is pushed there), a SQLite store in the
//! temp dir, and the real binary run against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use slack_emulator::{self as emulator, Options, world::World};

use super::Running;

pub struct Org {
    pub temp: tempfile::TempDir,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub emulator: Running,
    pub admin: String,
    pub bot: String,
}

/// The emulator's time scale in these tests: Slack's limits, 1,000 times faster.
pub const TIME_SCALE: &str = "1000";

pub fn acme_seed() -> World {
    emulator::read_world(&super::fixture("examples/acme/slack.json")).unwrap()
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.email=test@acme.example", "-c", "user.name=Test"])
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Commits everything in the repository.
pub fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The change most tests make to Acme's config in `root`: @mobile's display name
/// becomes "Mobile Apps" (one `usergroups.update`). The caller commits it.
pub fn rename_mobile(root: &Path) {
    let mapping = root.join("mappings/engineering.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(text.contains("name: Mobile\n"), "{}", mapping.display());
    std::fs::write(
        &mapping,
        text.replace("name: Mobile\n", "name: Mobile Apps\n"),
    )
    .unwrap();
}

impl Org {
    /// Acme with its seed as given, or changed by `seed`.
    pub async fn new(seed: impl FnOnce(&mut World)) -> Org {
        Org::example("acme", seed).await
    }

    /// The example `examples/{name}` (its config repository and its seed `slack.json`),
    /// the seed changed by `seed`.
    pub async fn example(name: &str, seed: impl FnOnce(&mut World)) -> Org {
        let dir = format!("examples/{name}");
        let mut world =
            emulator::read_world(&super::fixture(&format!("{dir}/slack.json"))).unwrap();
        seed(&mut world);
        let admin = world
            .token_with(emulator::world::TokenKind::User, "admin")
            .unwrap();
        let bot = world
            .token_with(emulator::world::TokenKind::Bot, "channels:read")
            .unwrap();
        let emulator = super::start(
            world,
            Options {
                time_scale: TIME_SCALE.parse().unwrap(),
                ..Options::default()
            },
        )
        .await;
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("config");
        super::copy_dir(&super::fixture(&dir), &repo);
        let config = repo.join("slack-gitops.yaml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("gitops:\n  branch: main\n");
        std::fs::write(&config, text).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit(&repo, "Acme");
        let remote = temp.path().join("remote.git");
        git(
            temp.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(
            &repo,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        git(&repo, &["push", "-q", "-u", "origin", "main"]);
        let state = temp.path().join("state").join("slack-gitops.db");
        Org {
            temp,
            repo,
            state,
            emulator,
            admin,
            bot,
        }
    }

    /// Runs the binary with this org's tokens; `apply` and `restore` get the store,
    /// every command the emulator and time scale. Returns (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let child = self.spawn(args);
        let output = child.wait_with_output().await.unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.spawn_with(args, &[])
    }

    /// As [`Org::spawn`], with more environment variables (an identity provider's token).
    pub fn spawn_with(&self, args: &[&str], environment: &[(&str, &str)]) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"));
        command.args(args);
        if matches!(args.first(), Some(&"apply") | Some(&"restore")) {
            command.arg("--state").arg(&self.state);
        }
        if args.first() != Some(&"history") {
            command.args([
                "--slack-url",
                &self.emulator.base,
                "--time-scale",
                TIME_SCALE,
            ]);
        }
        command
            .env("SLACK_ADMIN_TOKEN", &self.admin)
            .env("SLACK_BOT_TOKEN", &self.bot)
            .env("SLACK_GITOPS_LOG", "info")
            .envs(environment.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command.spawn().unwrap()
    }

    /// Runs a printed undo (`slack-gitops restore ...`) verbatim from `/`, with this org's
    /// tokens. Returns (exit code, stdout, stderr).
    pub async fn run_printed(&self, command: &str) -> (i32, String, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
            .args(command.split(' ').skip(1))
            .current_dir("/")
            .env("SLACK_ADMIN_TOKEN", &self.admin)
            .env("SLACK_BOT_TOKEN", &self.bot)
            .output()
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    /// A library connection to this org's repository, emulator and tokens.
    pub fn connect(&self) -> slack_gitops::pipeline::Connection {
        let options = slack_gitops::pipeline::ConnectOptions {
            slack_url: Some(self.emulator.base.clone()),
            time_scale: TIME_SCALE.parse().unwrap(),
            ..Default::default()
        };
        let environment = |name: &str| match name {
            "SLACK_ADMIN_TOKEN" => Some(self.admin.clone()),
            "SLACK_BOT_TOKEN" => Some(self.bot.clone()),
            "OKTA_TOKEN" => Some("okta-token".to_string()),
            _ => None,
        };
        slack_gitops::pipeline::connect(&self.repo, &options, &environment).unwrap()
    }

    pub fn repo_arg(&self) -> &str {
        self.repo.to_str().unwrap()
    }

    /// The emulator's world, read over HTTP.
    pub async fn world(&self) -> World {
        let text = self
            .emulator
            .http
            .get(format!("{}/_emulator/state", self.emulator.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        World::from_json(&text).unwrap()
    }

    /// The emulator's call log, read over HTTP.
    pub async fn calls(&self) -> Vec<Value> {
        let body: Value = self
            .emulator
            .http
            .get(format!("{}/_emulator/log", self.emulator.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["calls"].as_array().unwrap().clone()
    }

    /// The config repository's `origin`, a bare repository, with `main` pushed to it.
    pub fn bare_remote(&self) -> PathBuf {
        git(&self.repo, &["push", "-q", "origin", "main"]);
        self.temp.path().join("remote.git")
    }

    /// Replaces text in a file of the config repository, each `(from, to)` in turn; each
    /// `from` must be there. The caller commits.
    pub fn replace_in(&self, file: &str, edits: &[(&str, &str)]) {
        let path = self.repo.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{file} has no {from:?}");
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).unwrap();
    }

    /// Commits everything on `main` and pushes it to `origin`: a merged commit.
    pub fn merge(&self, message: &str) -> String {
        let commit = commit(&self.repo, message);
        git(&self.repo, &["push", "-q", "origin", "main"]);
        commit
    }

    /// Adds a person to a usergroup by hand in Slack (`usergroups.users.update` with the
    /// current list plus them). Returns the person's Slack id.
    pub async fn add_by_hand(&self, handle: &str, email: &str) -> String {
        let world = self.world().await;
        let group = world
            .usergroups
            .iter()
            .find(|g| g.handle == handle)
            .unwrap();
        let person = world.users.iter().find(|u| u.email == email).unwrap();
        let mut users = group.users.clone();
        users.push(person.id.clone());
        self.emulator
            .ok(
                &self.admin,
                "usergroups.users.update",
                &[
                    ("usergroup", group.id.as_str()),
                    ("team_id", group.workspace.as_str()),
                    ("users", users.join(",").as_str()),
                ],
            )
            .await;
        person.id.clone()
    }

    /// Every write takes `ms` real milliseconds, so a run is mid-way for a while.
    pub async fn slow_writes(&self, ms: u64) {
        let emulated = ms * TIME_SCALE.parse::<u64>().unwrap();
        for target in [
            "/scim/v2/Users/",
            "usergroups.users.update",
            "usergroups.create",
            "usergroups.update",
            "conversations.create",
            "conversations.invite",
            "conversations.kick",
            "admin.users.assign",
        ] {
            self.emulator
                .fault(serde_json::json!({"kind": "latency", "ms": emulated, "target": target}))
                .await;
        }
    }

    pub async fn clear_faults(&self) {
        self.emulator
            .http
            .delete(format!("{}/_emulator/faults", self.emulator.base))
            .send()
            .await
            .unwrap();
    }
}

/// The writes of a clean `apply` of Acme, by call: what a run interrupted and finished
/// must come to.
pub async fn clean_apply_writes() -> BTreeMap<String, usize> {
    let org = Org::new(|_| {}).await;
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}");
    applied_writes(&org.calls().await)
}

/// The lock id a refused apply names after `--force-unlock`.
pub fn lock_id(refusal: &str) -> String {
    refusal
        .split("--force-unlock ")
        .nth(1)
        .unwrap_or_else(|| panic!("no lock named: {refusal}"))
        .trim()
        .to_string()
}

/// Web API methods and SCIM verbs that change Slack.
pub fn is_write(call: &str) -> bool {
    let web_writes = [
        "usergroups.create",
        "usergroups.update",
        "usergroups.enable",
        "usergroups.disable",
        "usergroups.users.update",
        "conversations.create",
        "conversations.invite",
        "conversations.kick",
        "admin.users.assign",
        "admin.users.session.reset",
        "admin.users.session.resetBulk",
        "admin.users.setAdmin",
        "admin.users.setOwner",
    ];
    web_writes.contains(&call)
        || ["SCIM POST", "SCIM PATCH", "SCIM PUT", "SCIM DELETE"]
            .iter()
            .any(|verb| call.starts_with(verb))
}

/// Writes that took effect, per call name (SCIM names carry the user id): answered 2xx
/// with no Slack error, or reset after the emulator applied them. A 5xx or 429 fault
/// answers before the write is made, so it does not count.
pub fn applied_writes(calls: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        let name = call["call"].as_str().unwrap();
        let status = call["status"].as_u64().unwrap();
        let fault = call["fault"].as_str();
        let applied = (200..300).contains(&status)
            && call["error"].is_null()
            && fault.is_none_or(|f| f == "reset" || f.starts_with("latency"));
        if is_write(name) && applied {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Who is in which usergroup and channel, and who is active with which role: the parts
/// of a world that apply and restore change.
pub fn memberships(world: &World) -> BTreeMap<String, Vec<String>> {
    // Ids minted for new accounts depend on the order of concurrent creations: name
    // people by email.
    let email: BTreeMap<&str, &str> = world
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.email.as_str()))
        .collect();
    let emails = |ids: &[String]| {
        let mut list: Vec<String> = ids
            .iter()
            .map(|id| email.get(id.as_str()).copied().unwrap_or(id).to_string())
            .collect();
        list.sort();
        list
    };
    let mut out = BTreeMap::new();
    for user in &world.users {
        out.insert(
            format!("user {}", user.email),
            vec![format!(
                "active={} admin={} owner={} workspaces={:?} manager={:?} title={}",
                user.active,
                user.admin,
                user.owner,
                user.workspaces,
                user.manager
                    .as_deref()
                    .map(|m| email.get(m).copied().unwrap_or(m)),
                user.title
            )],
        );
    }
    for group in &world.usergroups {
        out.insert(
            format!(
                "usergroup {}/{} disabled={}",
                group.workspace, group.handle, group.disabled
            ),
            emails(&group.users),
        );
    }
    for channel in &world.channels {
        out.insert(
            format!("channel {}/{}", channel.workspace, channel.name),
            emails(&channel.members),
        );
    }
    out
}

/// One entry of a tree written without git's checks (see [`raw_tree`]).
pub struct RawEntry {
    pub mode: String,
    pub name: Vec<u8>,
    pub id: String,
}

impl RawEntry {
    pub fn new(mode: &str, name: impl AsRef<[u8]>, id: &str) -> RawEntry {
        RawEntry {
            mode: mode.to_string(),
            name: name.as_ref().to_vec(),
            id: id.to_string(),
        }
    }
}

/// Writes `bytes` as a blob; returns its id.
pub fn blob(repo: &Path, bytes: &[u8]) -> String {
    git_with_input(repo, &["hash-object", "-w", "--stdin"], bytes)
}

/// Writes a tree object exactly as given, as a hostile pusher can: `git hash-object
/// --literally` skips the name checks that `git mktree` and `git fsck` make, and a plain
/// bare remote accepts the result.
pub fn raw_tree(repo: &Path, entries: &[RawEntry]) -> String {
    let mut bytes = Vec::new();
    for entry in entries {
        bytes.extend_from_slice(entry.mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(&entry.name);
        bytes.push(0);
        let id = (0..entry.id.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&entry.id[i..i + 2], 16).unwrap());
        bytes.extend(id);
    }
    git_with_input(
        repo,
        &["hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
        &bytes,
    )
}

/// The entries of a tree (`git ls-tree`), to build a changed copy of it.
pub fn tree_entries(repo: &Path, tree: &str) -> Vec<(String, Vec<u8>, String)> {
    git(repo, &["ls-tree", "-z", tree])
        .split('\0')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (meta, name) = line.split_once('\t').unwrap();
            let mut parts = meta.split(' ');
            let mode = parts.next().unwrap().to_string();
            let _kind = parts.next();
            let id = parts.next().unwrap().to_string();
            (mode, name.as_bytes().to_vec(), id)
        })
        .collect()
}

/// A commit on top of HEAD whose root tree is HEAD's with `extra` entries added (and
/// entries of the same name replaced), pushed to `origin/main` as if merged. Returns it.
pub fn push_crafted(repo: &Path, extra: &[RawEntry]) -> String {
    let head_tree = git(repo, &["rev-parse", "HEAD^{tree}"]);
    let mut entries: Vec<RawEntry> = tree_entries(repo, &head_tree)
        .into_iter()
        .filter(|(_, name, _)| !extra.iter().any(|e| &e.name == name))
        .map(|(mode, name, id)| RawEntry::new(&mode, name, &id))
        .collect();
    entries.extend(extra.iter().map(|e| RawEntry::new(&e.mode, &e.name, &e.id)));
    let tree = raw_tree(repo, &entries);
    let commit = git(repo, &["commit-tree", &tree, "-p", "HEAD", "-m", "crafted"]);
    git(
        repo,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{commit}:refs/heads/main"),
        ],
    );
    commit
}

fn git_with_input(repo: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}
