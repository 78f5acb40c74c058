//! `slack-gitops apply` through the real binary against the emulator (real HTTP), from
//! commits of a temp git repository. Each test asserts the final Slack state (from
//! `GET /_emulator/state`) and the call log, not only the exit code.

use crate::common;

use crate::common::org::{Org, applied_writes, commit, git, is_write, memberships};
use serde_json::{Value, json};

/// The acme plan's writes when applied cleanly, per call name.
async fn reference_writes() -> (
    std::collections::BTreeMap<String, usize>,
    std::collections::BTreeMap<String, Vec<String>>,
) {
    let org = Org::new(|_| {}).await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    (
        applied_writes(&org.calls().await),
        memberships(&org.world().await),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_converges_from_a_merged_commit() {
    let org = Org::new(|_| {}).await;
    let (code, out, err) = org
        .run(&[
            "apply",
            org.repo_arg(),
            "--format",
            "json",
            "--log-format",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    // Under --log-format json every line on stderr is a JSON object, progress included.
    assert!(err.lines().count() >= 45, "{err}");
    for line in err.lines() {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            line["timestamp"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    assert_eq!(report["outcome"], "converged", "{out}");
    let head = git(&org.repo, &["rev-parse", "HEAD"]);
    assert_eq!(report["commit"], head.as_str());
    let results = report["execution"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 45);
    assert!(results.iter().all(|r| r["outcome"] == "done"), "{out}");

    // Slack now is what the config says: joiners active, leavers deactivated (never
    // deleted) and signed out, the mover in @mobile and out of @frontend.
    let world = org.world().await;
    let user = |email: &str| world.users.iter().find(|u| u.email == email).unwrap();
    assert!(user("evelyn.dijkstra@acme.example").active);
    for leaver in [
        "brian.hopper@acme.example",
        "evelyn.gosling@acme.example",
        "old.contractor@contractors.acme.example",
    ] {
        let account = user(leaver);
        assert!(!account.active, "{leaver} is still active");
        assert!(world.session_resets.iter().any(|r| r.user == account.id));
    }
    let group = |handle: &str| {
        world
            .usergroups
            .iter()
            .find(|g| g.workspace == "T0000MAIN" && g.handle == handle)
            .unwrap()
    };
    let mover = &user("alan.borg@acme.example").id;
    assert!(group("mobile").users.contains(mover));
    assert!(!group("frontend").users.contains(mover));
    assert_eq!(user("alan.borg@acme.example").title, "Mobile Engineer");
    // The joiners' managers are set in the same run.
    let manager = user("evelyn.dijkstra@acme.example")
        .manager
        .clone()
        .unwrap();
    assert!(world.users.iter().any(|u| u.id == manager));

    // Every write exactly once: no object was written twice.
    let calls = org.calls().await;
    let writes = applied_writes(&calls);
    for (call, count) in &writes {
        if call.starts_with("SCIM") && call != "SCIM POST /Users" {
            assert_eq!(*count, 1, "{call} was written {count} times");
        }
    }
    assert_eq!(writes["SCIM POST /Users"], 4);
    assert_eq!(writes["usergroups.users.update"], 13);
    assert_eq!(writes["admin.users.session.reset"], 3);

    // The store holds the run's evidence: audit events with rule, commit and the new
    // account's id, and each leaver's offboarding times.
    let store = slack_gitops::store::Store::open(&org.state).unwrap();
    let events = store.audit_events("evelyn.dijkstra@acme.example").unwrap();
    let joiner = &user("evelyn.dijkstra@acme.example").id;
    let account = events.iter().find(|e| e.entitlement == "account").unwrap();
    assert_eq!(
        (
            account.change.as_str(),
            account.rule.as_deref(),
            account.commit.as_deref()
        ),
        ("granted", Some("slack-gitops.yaml:17"), Some(head.as_str()))
    );
    assert!(
        events.iter().all(|e| e.user_id.as_ref() == Some(joiner)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.entitlement.starts_with("T0000MAIN/@"))
    );
    let leavers = store.leavers("T0000MAIN,T0000SUPP").unwrap();
    assert_eq!(leavers.len(), 3);
    assert!(
        leavers
            .iter()
            .all(|l| l.signed_out_at >= l.deactivated_at && l.deactivated_at.is_some())
    );
    let runs = store.runs("T0000MAIN,T0000SUPP").unwrap();
    assert_eq!((runs.len(), runs[0].outcome.as_str()), (1, "converged"));
    assert!(store.snapshot(runs[0].id).unwrap().is_some());
    drop(store);

    // The plan afterwards is empty, and a second apply writes nothing.
    let (code, out, _) = org
        .run(&["plan", org.repo_arg(), "--detailed-exitcode"])
        .await;
    assert_eq!(code, 0, "{out}");
    let before = org.calls().await.len();
    let (code, out, _) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Converged") && out.contains("0 action(s)"),
        "{out}"
    );
    let after = org.calls().await;
    assert!(
        after[before..]
            .iter()
            .all(|c| !is_write(c["call"].as_str().unwrap())),
        "a converged org got writes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_merged_commits_are_applied_and_the_working_tree_is_ignored() {
    let org = Org::new(|_| {}).await;
    // A commit on a feature branch, not merged into main.
    git(&org.repo, &["checkout", "-q", "-b", "feature"]);
    common::org::rename_mobile(&org.repo);
    let feature = commit(&org.repo, "rename @mobile");
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--ref", "feature"])
        .await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("refused: feature")
            && err.contains(&feature)
            && err.contains("not reachable from the protected branch `main`"),
        "{err}"
    );
    assert!(org.calls().await.is_empty(), "a refused apply called Slack");

    // Back on main, an uncommitted edit (a new usergroup) must not reach Slack.
    git(&org.repo, &["checkout", "-q", "main"]);
    let mapping = org.repo.join("mappings/engineering.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        format!(
            "{text}  - handle: uncommitted\n    name: Uncommitted\n    workspaces: [main]\n    members: {{ groups: [engineering] }}\n"
        ),
    )
    .unwrap();
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let world = org.world().await;
    assert!(!world.usergroups.iter().any(|g| g.handle == "uncommitted"));
    assert!(world.usergroups.iter().any(|g| g.name == "Mobile"));
    assert!(!world.usergroups.iter().any(|g| g.name == "Mobile Apps"));

    // A path outside any git repository is a clear error.
    let outside = tempfile::tempdir().unwrap();
    common::copy_dir(&common::fixture("examples/acme"), outside.path());
    let (code, _, err) = org.run(&["apply", outside.path().to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("is not inside a git repository"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_writes_converge_without_writing_twice() {
    let (reference, converged) = reference_writes().await;
    let org = Org::new(|_| {}).await;
    for fault in [
        // A reset after the emulator applied the write: the first SCIM user write, and
        // two channel invites. The client cannot know; it reads back and sees it done.
        json!({"kind": "reset", "target": "/scim/v2/Users/", "count": 1}),
        json!({"kind": "reset", "target": "conversations.invite", "count": 2}),
        // A 5xx burst: not applied; read back, decided again (twice for one group).
        json!({"kind": "status", "status": 503, "target": "usergroups.users.update", "count": 2}),
        json!({"kind": "status", "status": 502, "target": "usergroups.users.update", "count": 1}),
        json!({"kind": "status", "status": 500, "target": "admin.users.assign", "count": 1}),
        // A 429 storm: Retry-After honoured, the request sent again.
        json!({"kind": "rate_limit", "retry_after": 5, "target": "conversations.kick", "count": 4}),
        json!({"kind": "rate_limit", "retry_after": 2, "target": "usergroups.create", "count": 3}),
    ] {
        org.emulator.fault(fault).await;
    }
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Converged"), "{out}");
    assert!(out.contains("already done (read back)"), "{out}");

    // The same writes took effect as in a clean run: none twice, none lost.
    let calls = org.calls().await;
    assert_eq!(applied_writes(&calls), reference);
    assert_eq!(memberships(&org.world().await), converged);

    // 429s were honoured: the next kick came no sooner than Retry-After said.
    let kicks: Vec<&Value> = calls
        .iter()
        .filter(|c| c["call"] == "conversations.kick")
        .collect();
    assert_eq!(kicks.len(), 5);
    for pair in kicks.windows(2) {
        let waited = pair[1]["at"].as_f64().unwrap() - pair[0]["at"].as_f64().unwrap();
        assert!(
            waited >= 5.0 * 0.95,
            "the kick was sent again after {waited} s"
        );
    }
    let (code, out, _) = org
        .run(&["plan", org.repo_arg(), "--detailed-exitcode"])
        .await;
    assert_eq!(code, 0, "{out}");
}

/// A pushed commit is hostile: entries that climb out of the checkout, that name git's
/// own directory, or symlinks that lead outside are refused before anything is written
/// or any Slack call is made, through `apply` and `export`.
#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_tree_never_writes_outside_its_checkout() {
    use common::org::{RawEntry, blob, push_crafted, raw_tree};
    let org = Org::new(|_| {}).await;
    let repo = &org.repo;
    let nonce = format!("slack-gitops-escaped-{}", std::process::id());
    let payload = blob(repo, b"written outside the checkout\n");
    let file = |name: &str| RawEntry::new("100644", name, &payload);
    let climbing = raw_tree(repo, &[file(&nonce)]);
    let git_config = raw_tree(repo, &[file("config")]);
    let identity_tree = git(repo, &["rev-parse", "HEAD:identity"]);
    let identity = common::org::tree_entries(repo, &identity_tree);
    let with_identity = |extra: Vec<RawEntry>| {
        let mut entries: Vec<RawEntry> = identity
            .iter()
            .filter(|(_, name, _)| !extra.iter().any(|e| &e.name == name))
            .map(|(mode, name, id)| RawEntry::new(mode, name, id))
            .collect();
        entries.extend(extra);
        RawEntry::new("40000", "identity", &raw_tree(repo, &entries))
    };
    let link =
        |name: &str, target: &str| RawEntry::new("120000", name, &blob(repo, target.as_bytes()));
    let attacks: Vec<(&str, Vec<RawEntry>)> = vec![
        ("..", vec![RawEntry::new("40000", "..", &climbing)]),
        (".git", vec![RawEntry::new("40000", ".git", &git_config)]),
        (".GIT.", vec![RawEntry::new("40000", ".GIT.", &git_config)]),
        ("GIT~1", vec![RawEntry::new("40000", "GIT~1", &git_config)]),
        ("..\\\\x", vec![file("..\\x")]),
        (".", vec![RawEntry::new("40000", ".", &climbing)]),
        (
            "identity/directory.yaml",
            vec![with_identity(vec![link("directory.yaml", "/etc/passwd")])],
        ),
        (
            // Each link stays inside on paper; followed, `up/..` is above the checkout.
            "identity/out",
            vec![with_identity(vec![link("up", ".."), link("out", "up/..")])],
        ),
    ];
    for (entry, extra) in attacks {
        let crafted = push_crafted(repo, &extra);
        let (code, out, err) = org
            .run(&["apply", org.repo_arg(), "--ref", &crafted, "--dry-run"])
            .await;
        assert_eq!(code, 3, "{entry}: {out}{err}");
        assert!(
            err.contains(&format!("refused: the commit {crafted} holds `{entry}`")),
            "{entry}: {err}"
        );
        assert!(!std::env::temp_dir().join(&nonce).exists(), "{entry}");
    }
    assert!(
        org.calls().await.is_empty(),
        "a refused commit reached Slack"
    );

    // The access review reads commits the same way.
    let crafted = push_crafted(repo, &[RawEntry::new("40000", "..", &climbing)]);
    let (code, _, err) = org
        .run(&["export", "access-review", org.repo_arg(), "--ref", &crafted])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds `..`"), "{err}");
    assert!(!std::env::temp_dir().join(&nonce).exists());
}

/// The protected branch is never the commit's own word, nor a local branch: a feature
/// commit that names itself protected is refused, and so is a commit on a local `main`
/// that was never pushed.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_cannot_make_itself_protected_and_local_branches_prove_nothing() {
    let org = Org::new(|_| {}).await;
    git(&org.repo, &["checkout", "-q", "-b", "feature"]);
    let config = org.repo.join("slack-gitops.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("branch: main", "branch: feature")).unwrap();
    let feature = commit(&org.repo, "I am protected");
    git(&org.repo, &["push", "-q", "origin", "feature"]);
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--ref", &feature, "--dry-run"])
        .await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("not reachable from the protected branch `main`"),
        "{err}"
    );

    // A commit on the local `main`, never pushed: the remote's `main` is what is applied,
    // and the local commit by name is refused.
    git(&org.repo, &["checkout", "-q", "main"]);
    common::org::rename_mobile(&org.repo);
    let local = commit(&org.repo, "not pushed");
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--ref", &local, "--dry-run"])
        .await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("not reachable from the protected branch"),
        "{err}"
    );
    let (code, out, err) = org
        .run(&["apply", org.repo_arg(), "--dry-run", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(report["commit"], local.as_str());
    assert!(!out.contains("Mobile Apps"), "{out}");
    assert!(
        org.calls()
            .await
            .iter()
            .all(|c| !is_write(c["call"].as_str().unwrap()))
    );

    // Without the remote, nothing is merged.
    git(&org.repo, &["remote", "remove", "origin"]);
    let (code, _, err) = org.run(&["apply", org.repo_arg(), "--dry-run"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a branch of the remote"), "{err}");
}
