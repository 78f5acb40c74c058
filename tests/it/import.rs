//! `import` through the binary against the emulator: acme's live Slack and identity
//! adopted into a repository holding only `slack-gitops.yaml` and the identity export.
//! The repository validates, the plan right after changes no membership (beyond the
//! accounts it creates or deactivates), a second import writes the same bytes, files are
//! never overwritten without `--force`, never written outside the repository, and a
//! selection adopts piece by piece.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::org::Org;

/// A repository with only acme's `slack-gitops.yaml` and identity export.
fn bare_repository(org: &Org, name: &str) -> PathBuf {
    let dir = org.temp.path().join(name);
    std::fs::create_dir_all(dir.join("identity")).unwrap();
    for file in ["slack-gitops.yaml", "identity/directory.yaml"] {
        std::fs::copy(org.repo.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// Every file under `mappings/` and `policies/`, by relative path.
fn written(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for folder in ["mappings", "policies"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = format!("{folder}/{}", entry.file_name().to_string_lossy());
            files.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

async fn import(org: &Org, dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    org.run(&args).await
}

/// `validate DIR` passes.
fn validate(dir: &Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["validate", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{text}");
}

async fn plan(org: &Org, dir: &Path) -> Value {
    let (code, out, err) = org
        .run(&["plan", dir.to_str().unwrap(), "--format", "json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

/// What a plan changes in usergroups and channels, beyond the people whose account the
/// same plan creates, reactivates or deactivates.
fn membership_changes(plan: &Value) -> Vec<String> {
    let actions = plan["plan"]["actions"].as_array().unwrap();
    let email = |person: &Value| person["email"].as_str().unwrap().to_string();
    let mut accounts = BTreeSet::new();
    for action in actions {
        match action["action"].as_str().unwrap() {
            "create_user" | "reactivate_user" => {
                accounts.insert(email(&action["person"]));
            }
            "deactivate_user" => {
                accounts.insert(email(&action["removal"]["person"]));
            }
            _ => {}
        }
    }
    let mut changes = Vec::new();
    let people = |changes: &mut Vec<String>, what: &str, list: &Value, key: Option<&str>| {
        for item in list.as_array().unwrap() {
            let person = key.map_or(item, |k| &item[k]);
            if !accounts.contains(&email(person)) {
                changes.push(format!("{what} {}", email(person)));
            }
        }
    };
    for action in actions {
        let kind = action["action"].as_str().unwrap();
        let target = format!("{kind} {}{}", action["handle"], action["channel"]);
        match kind {
            "set_usergroup_members" => {
                people(&mut changes, &target, &action["adds"], Some("person"));
                people(&mut changes, &target, &action["removes"], Some("person"));
            }
            "invite_to_channel" => people(&mut changes, &target, &action["people"], Some("person")),
            "kick_from_channel" => {
                let removal = Value::Array(vec![action["removal"].clone()]);
                people(&mut changes, &target, &removal, Some("person"));
            }
            "create_usergroup" | "update_usergroup" | "enable_usergroup" | "disable_usergroup"
            | "create_channel" => changes.push(target),
            _ => {}
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_is_adopted_and_the_plan_after_changes_no_membership() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &["--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let report = &report["import"];
    let usergroups = report["usergroups"].as_array().unwrap();
    assert!(usergroups.len() >= 8, "{report:#}");
    let files = written(&dir);
    assert!(files.contains_key("policies/default.yaml"), "{files:?}");
    assert!(files.contains_key("mappings/eng.yaml"), "{files:?}");

    validate(&dir);
    let changes = membership_changes(&plan(&org, &dir).await);
    assert!(changes.is_empty(), "{changes:#?}\n{report:#}");

    // The rules are the ones behind the memberships: @backend follows eng-backend.
    let backend = usergroups
        .iter()
        .find(|u| u["target"] == "@backend")
        .unwrap();
    assert_eq!(
        backend["groups"],
        serde_json::json!(["eng-backend"]),
        "{backend:#}"
    );

    // The same input writes the same bytes, in another repository and over its own
    // files with --force; without it, what is mapped is skipped and nothing is written.
    let again = bare_repository(&org, "again");
    let (code, out, err) = import(&org, &again, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(written(&again), files, "a second import wrote other bytes");
    let (code, out, err) = import(&org, &dir, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Imported 0 usergroups"), "{out}");
    assert_eq!(written(&dir), files);
    let (code, out, err) = import(&org, &dir, &["--force"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(written(&dir), files, "--force wrote other bytes");
}

/// A file written by hand is never overwritten, not even with --force: the import takes
/// the next free name.
#[tokio::test(flavor = "multi_thread")]
async fn a_hand_written_file_is_never_overwritten() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let mine = "apiVersion: slack-gitops/v1\nkind: Mappings\n# mine\n";
    std::fs::write(dir.join("mappings/eng.yaml"), mine).unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let (code, out, err) = import(&org, &dir, extra).await;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("mappings/eng.yaml")).unwrap(),
            mine
        );
        let text = std::fs::read_to_string(dir.join("mappings/eng-2.yaml")).unwrap();
        assert!(text.contains("handle: eng\n"), "{text}");
    }
    validate(&dir);
}

/// Converged to acme's own mappings first: the rules found are acme's rules.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_converged_org_the_rules_found_are_the_rules_that_made_it() {
    let org = Org::new(|_| {}).await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &["--format", "json", "--only", "@*"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let found: BTreeMap<String, (Value, Value)> = report["import"]["usergroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let handle = u["target"]
                .as_str()
                .unwrap()
                .trim_start_matches('@')
                .to_string();
            (handle, (u["groups"].clone(), u["exclude"].clone()))
        })
        .collect();
    let repository = slack_gitops::pipeline::load_repository(&org.repo).unwrap();
    let mut same = Vec::new();
    let mut differ = Vec::new();
    for file in &repository.mappings {
        for group in &file.value.usergroups {
            let handle = group.handle.as_str().to_string();
            let expected = (
                serde_json::json!(group.members.groups),
                serde_json::json!(group.members.exclude),
            );
            match found.get(&handle) {
                Some(rule) if *rule == expected => same.push(handle),
                other => differ.push(format!("@{handle}: found {other:?}, made by {expected:?}")),
            }
        }
    }
    assert!(
        differ.len() <= 2 && same.len() >= 8,
        "same: {same:?}\ndiffer: {differ:#?}"
    );
    let changes = membership_changes(&plan(&org, &dir).await);
    assert!(changes.is_empty(), "{changes:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selection_adopts_piece_by_piece() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &["--only", "@backend", "--only", "#eng"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let text = String::from_utf8(written(&dir)["mappings/backend.yaml"].clone()).unwrap();
    assert!(text.contains("handle: backend"), "{text}");
    assert!(!written(&dir).contains_key("mappings/sre.yaml"));
    // The next piece: what is mapped already is skipped, the policy is not rewritten.
    let policy = written(&dir)["policies/default.yaml"].clone();
    std::fs::write(
        dir.join("policies/default.yaml"),
        b"# edited\n"
            .iter()
            .chain(&policy)
            .copied()
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (code, out, err) = import(&org, &dir, &["--only", "@*", "--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let targets: Vec<&str> = report["import"]["usergroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["target"].as_str().unwrap())
        .collect();
    assert!(
        !targets.contains(&"@backend") && targets.contains(&"@sre"),
        "{targets:?}"
    );
    assert!(written(&dir)["policies/default.yaml"].starts_with(b"# edited\n"));
    validate(&dir);
    let changes = membership_changes(&plan(&org, &dir).await);
    assert!(changes.is_empty(), "{changes:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_never_writes_through_a_link_out_of_the_repository() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    let outside = org.temp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("mappings")).unwrap();
    let (code, out, err) = import(&org, &dir, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(
        !dir.join("policies").exists(),
        "a file was written before the refusal"
    );
}

/// A folder with only the identity export: the flags write the starting
/// `slack-gitops.yaml`, checked like any config, never over an existing one; without
/// them, the refusal says how to make one.
#[tokio::test(flavor = "multi_thread")]
async fn the_flags_write_a_starting_config() {
    let org = Org::new(|_| {}).await;
    let dir = org.temp.path().join("fresh");
    std::fs::create_dir_all(dir.join("identity")).unwrap();
    std::fs::copy(
        org.repo.join("identity/directory.yaml"),
        dir.join("identity/directory.yaml"),
    )
    .unwrap();
    let (code, _, err) = import(&org, &dir, &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--slack-plan"), "{err}");

    let flags = |plan: &'static str| {
        vec![
            "--slack-plan",
            plan,
            "--workspace",
            "main=T0000MAIN",
            "--workspace",
            "support=T0000SUPP",
            "--identity-source",
            "file",
            "--identity-path",
            "identity/directory.yaml",
            "--scope",
            "everyone",
        ]
    };
    // A value the config does not accept: the loader's diagnostic, nothing written.
    let (code, _, err) = import(&org, &dir, &flags("gold")).await;
    assert_eq!(code, 1);
    assert!(err.contains("slack-gitops.yaml"), "{err}");
    assert!(!dir.join("slack-gitops.yaml").exists());

    let (code, out, err) = import(&org, &dir, &flags("enterprise-grid")).await;
    assert_eq!(code, 0, "{out}{err}");
    let config = std::fs::read_to_string(dir.join("slack-gitops.yaml")).unwrap();
    assert!(
        config.contains("  workspaces:\n    main: T0000MAIN\n"),
        "{config}"
    );
    assert!(config.contains("  scope: [everyone]\n"), "{config}");
    validate(&dir);
    let changes = membership_changes(&plan(&org, &dir).await);
    assert!(changes.is_empty(), "{changes:#?}");

    let (code, _, err) = import(&org, &dir, &flags("enterprise-grid")).await;
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("slack-gitops.yaml")).unwrap(),
        config
    );
}

/// A symbolic link planted where import writes its temporary file is removed, never
/// followed: the file it points to outside the repository is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_planted_as_the_temporary_file_is_not_followed() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let outside = org.temp.path().join("outside.txt");
    std::fs::write(&outside, "precious\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("mappings/.mappings_eng.yaml.import")).unwrap();
    let (code, out, err) = import(&org, &dir, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    assert!(
        std::fs::read_to_string(dir.join("mappings/eng.yaml"))
            .unwrap()
            .contains("handle: eng\n")
    );
}

/// `--force` with a selection imports again only the files the selection wholly covers:
/// the mappings of every other file an earlier import wrote stay as they are.
#[tokio::test(flavor = "multi_thread")]
async fn force_with_a_selection_keeps_what_it_does_not_select() {
    let org = Org::new(|_| {}).await;
    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    let before = written(&dir);
    let (code, out, err) = import(&org, &dir, &["--force", "--only", "@backend"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("@backend"), "{out}");
    assert_eq!(
        written(&dir),
        before,
        "a file the selection did not cover changed"
    );
    validate(&dir);
}

/// A bot in a usergroup in any workspace the mapping would cover leaves that usergroup
/// unmanaged (the config cannot select the bot, so a plan would remove it), not only a
/// bot in the first workspace.
#[tokio::test(flavor = "multi_thread")]
async fn a_bot_in_the_second_workspace_leaves_the_usergroup_unmanaged() {
    let org = Org::new(|world| {
        let sre = world
            .usergroups
            .iter_mut()
            .find(|g| g.handle == "sre" && g.workspace == "T0000SUPP")
            .unwrap();
        sre.users.push("W00000290".into());
    })
    .await;
    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &["--only", "@sre", "--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["import"]["usergroups"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{report:#}"
    );
    let unmanaged = report["import"]["unmanaged"].to_string();
    assert!(unmanaged.contains("deploybot@acme.example"), "{unmanaged}");
}

/// A primary owner the identity provider does not know. The starting policy protects
/// them (Slack never deactivates a primary owner), so they stay where they are and the
/// plan neither deactivates nor removes them; where the repository's own policies do
/// not protect them, what holds them is left unmanaged, saying how to fix it.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_owner_unknown_to_the_identity_provider_is_kept_or_left_unmanaged() {
    const OWNER: &str = "old.contractor@contractors.acme.example";
    let org = Org::new(|world| {
        for user in &mut world.users {
            user.primary_owner = user.email == OWNER;
        }
        let backend = world
            .usergroups
            .iter_mut()
            .find(|g| g.handle == "backend")
            .unwrap();
        backend.users.push("W00000288".into());
    })
    .await;

    let dir = bare_repository(&org, "adopted");
    let (code, out, err) = import(&org, &dir, &["--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let backend = report["import"]["usergroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["target"] == "@backend")
        .unwrap_or_else(|| panic!("@backend not imported: {report:#}"));
    assert_eq!(
        backend["protected"],
        serde_json::json!([OWNER]),
        "{backend:#}"
    );
    assert_eq!(backend["unknown"], serde_json::json!([]), "{backend:#}");
    let policy = String::from_utf8(written(&dir)["policies/default.yaml"].clone()).unwrap();
    assert!(
        policy.contains(&format!("    - {OWNER}   # the primary owner")),
        "{policy}"
    );
    let mapping = String::from_utf8(written(&dir)["mappings/backend.yaml"].clone()).unwrap();
    assert!(
        mapping
            .contains("1 not active in the identity provider but protected (the plan keeps them)"),
        "{mapping}"
    );
    validate(&dir);
    let planned = plan(&org, &dir).await;
    let changes = membership_changes(&planned);
    assert!(changes.is_empty(), "{changes:#?}");
    let text = planned["plan"]["actions"].to_string();
    assert!(!text.contains(OWNER), "the plan touches the owner: {text}");

    // The repository's own policy does not protect them: @backend is left unmanaged;
    // #eng (where the owner is a member too) is adopted, since nothing removes anyone
    // from an imported channel; and the plan still changes no membership.
    let own = bare_repository(&org, "own-policy");
    std::fs::create_dir_all(own.join("policies")).unwrap();
    std::fs::write(
        own.join("policies/limits.yaml"),
        "apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n  deactivate: { max: 10 }\n",
    )
    .unwrap();
    let (code, out, err) = import(&org, &own, &["--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let unmanaged = report["import"]["unmanaged"].as_array().unwrap();
    let why = unmanaged
        .iter()
        .find(|u| u["target"] == "@backend")
        .unwrap_or_else(|| panic!("@backend managed: {report:#}"))["why"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("primary owner") && why.contains(OWNER) && why.contains("protected.users"),
        "{why}"
    );
    let channels = report["import"]["channels"].as_array().unwrap();
    assert!(
        channels.iter().any(|c| c["target"] == "#eng"),
        "#eng not imported: {report:#}"
    );
    validate(&own);
    let changes = membership_changes(&plan(&org, &own).await);
    assert!(changes.is_empty(), "{changes:#?}");
}
