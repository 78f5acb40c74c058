//! Slack Business+ end to end, on `examples/northwind` (one workspace, no Enterprise
//! organisation) and the emulator seeded as Business+: `validate` refuses what needs
//! Enterprise Grid; plan, apply (joiners, a mover, leavers), the April 2024 regression
//! and its restore, the controller's leaver fast path and the access review run to their
//! end; and the emulator's call log never shows a method Business+ does not have.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::controller::Controller;
use crate::common::org::Org;
use serde_json::{Value, json};
use slack_emulator::world::World;

/// The calls of the log that Business+ does not have (Enterprise-only `admin.*`).
fn enterprise_calls(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["call"].as_str().unwrap().to_string())
        .filter(|c| slack_emulator::web::not_enterprise_error(c).is_some())
        .collect()
}

fn user<'a>(world: &'a World, email: &str) -> &'a slack_emulator::world::User {
    world
        .users
        .iter()
        .find(|u| u.email == email)
        .unwrap_or_else(|| panic!("no account for {email}"))
}

/// The handles of the usergroups and the names of the channels `email` is in.
fn places(world: &World, email: &str) -> (Vec<String>, Vec<String>) {
    let id = &user(world, email).id;
    let mut groups: Vec<String> = world
        .usergroups
        .iter()
        .filter(|g| g.users.contains(id))
        .map(|g| g.handle.clone())
        .collect();
    groups.sort();
    let mut channels: Vec<String> = world
        .channels
        .iter()
        .filter(|c| c.members.contains(id))
        .map(|c| c.name.clone())
        .collect();
    channels.sort();
    (groups, channels)
}

const LEAVER: &str = "larry.page@northwind.example";
const GHOST: &str = "old.intern@northwind.example";
const MOVER: &str = "diego.ruiz@northwind.example";

#[tokio::test(flavor = "multi_thread")]
async fn validate_refuses_what_needs_enterprise_grid_at_file_and_line() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("acme");
    common::copy_dir(&common::fixture("examples/acme"), &repo);
    common::edit(
        &repo.join("slack-gitops.yaml"),
        "plan: enterprise-grid",
        "plan: business-plus",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args(["validate", repo.to_str().unwrap()])
        .output()
        .unwrap();
    let out =
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}");
    // The second workspace, where it is declared...
    assert!(
        out.contains("error[grid-only]: workspace `support`: Business+ has one workspace"),
        "{out}"
    );
    assert!(out.contains("/slack-gitops.yaml:9:5\n"), "{out}");
    // ...and each usergroup that spans both, at its second workspace.
    assert!(
        out.contains("error[grid-only]: usergroup `sre` spans 2 workspaces"),
        "{out}"
    );
    let spanning = out.matches("error[grid-only]: usergroup").count();
    assert_eq!(spanning, 5, "{out}");

    // The Business+ example itself is valid.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slack-gitops"))
        .args([
            "validate",
            common::fixture("examples/northwind").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_business_plus_example_applies_to_convergence_without_an_enterprise_call() {
    let org = Org::example("northwind", |_| {}).await;

    // The plan assigns no workspace and signs leavers out by their deactivation.
    let (code, plan, err) = org.run(&["plan", org.repo_arg(), "--format", "json"]).await;
    assert_eq!(code, 0, "{plan}{err}");
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let kinds: Vec<&str> = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"assign_workspace"), "{kinds:?}");
    let signouts: Vec<&Value> = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "reset_sessions")
        .collect();
    assert_eq!(signouts.len(), 2);
    assert!(
        signouts.iter().all(|a| a["by"] == "deactivation"),
        "{signouts:?}"
    );

    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Converged"), "{out}");
    assert!(
        out.contains(&format!("reset-sessions {LEAVER}: done")),
        "{out}"
    );
    let world = org.world().await;
    // Joiners are in the one workspace; the mover moved; leavers are out and signed out.
    for joiner in [
        "aisha.okafor@northwind.example",
        "kenji.tanaka@northwind.example",
    ] {
        let account = user(&world, joiner);
        assert!(account.active);
        assert_eq!(account.workspaces, ["T0000NWND"]);
    }
    assert_eq!(
        places(&world, "aisha.okafor@northwind.example").0,
        ["sales"]
    );
    let (groups, channels) = places(&world, MOVER);
    assert_eq!(groups, ["sales"]);
    assert!(
        channels.contains(&"sales-deals".to_string()),
        "{channels:?}"
    );
    for leaver in [LEAVER, GHOST] {
        let account = user(&world, leaver);
        assert!(!account.active, "{leaver}");
        assert!(
            world.session_resets.iter().any(|r| r.user == account.id),
            "{leaver} still has sessions"
        );
    }
    let calls = org.calls().await;
    assert_eq!(enterprise_calls(&calls), Vec::<String>::new());
    // Signed out by the deactivation: read back, never reset through an admin API.
    assert!(
        calls
            .iter()
            .any(|c| c["call"] == format!("SCIM GET /Users/{}", user(&world, LEAVER).id)),
        "no read-back of the leaver"
    );
    assert!(
        out.contains(&format!("Leaver {LEAVER}: signed out")),
        "{out}"
    );

    // Converged: a second apply has nothing to do.
    let (code, again, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{again}{err}");
    assert!(again.contains("Plan: no changes"), "{again}");

    // A leaver in the identity provider later: deactivated and signed out the same way.
    let directory = org.repo.join("identity/directory.yaml");
    let text = std::fs::read_to_string(&directory).unwrap();
    std::fs::write(
        &directory,
        common::suspend(&text, "alan.kay@northwind.example"),
    )
    .unwrap();
    org.merge("alan.kay leaves");
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let world = org.world().await;
    let alan = user(&world, "alan.kay@northwind.example");
    assert!(!alan.active);
    assert!(world.session_resets.iter().any(|r| r.user == alan.id));
    assert_eq!(
        places(&world, "alan.kay@northwind.example").0,
        Vec::<String>::new()
    );
    assert_eq!(enterprise_calls(&org.calls().await), Vec::<String>::new());
}

/// The April 2024 regression on Business+: the run halts after the first person it cost,
/// and the printed undo brings them back with their usergroups and channels; their admin
/// role, which Business+ has no API for, is printed as a manual step, never attempted.
#[tokio::test(flavor = "multi_thread")]
async fn the_april_2024_regression_is_undone_with_the_role_as_a_manual_step() {
    // Diego (the mover) is an admin; the joiners already have accounts, so his profile
    // update is the first SCIM user update of the plan.
    let org = Org::example("northwind", |world| {
        let manager = |world: &World, email: &str| Some(user(world, email).id.clone());
        for (n, (email, given, family, title, dept, boss)) in [
            (
                "aisha.okafor@northwind.example",
                "Aisha",
                "Okafor",
                "Account Executive",
                "Sales",
                "mary.keller@northwind.example",
            ),
            (
                "kenji.tanaka@northwind.example",
                "Kenji",
                "Tanaka",
                "Backend Engineer",
                "Engineering",
                "grace.hopper@northwind.example",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut account = user(world, MOVER).clone();
            account.id = format!("U0000009{n}");
            account.email = email.into();
            account.user_name = email.split('@').next().unwrap().into();
            (account.given_name, account.family_name) = (given.into(), family.into());
            (account.title, account.department) = (title.into(), dept.into());
            account.manager = manager(world, boss);
            account.admin = false;
            world.users.push(account);
        }
        world
            .users
            .iter_mut()
            .find(|u| u.email == MOVER)
            .unwrap()
            .admin = true;
        world.reindex();
    })
    .await;
    let before = org.world().await;
    org.emulator
        .fault(json!({"kind": "required_field", "field": "displayName"}))
        .await;
    let (code, out, err) = org.run(&["apply", org.repo_arg()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HALTED"), "{out}");
    assert!(out.contains(&format!("Affected: {MOVER}")), "{out}");
    let undo = out
        .lines()
        .find_map(|l| l.strip_prefix("To undo what this run did: "))
        .unwrap()
        .to_string();
    assert!(!user(&org.world().await, MOVER).active);

    org.clear_faults().await;
    let (code, out, err) = org.run_printed(&undo).await;
    assert_eq!(code, 0, "{out}{err}");
    // Back, in what they were in; the role is the admin's to give back, as printed.
    let restored = org.world().await;
    assert!(user(&restored, MOVER).active);
    assert_eq!(places(&restored, MOVER), places(&before, MOVER));
    assert!(!user(&restored, MOVER).admin);
    assert!(
        out.contains(&format!(
            "! manual step for {MOVER}: make them a Workspace Admin again (Business+ has no API for roles)"
        )),
        "{out}"
    );
    assert!(out.contains("Change account type"), "{out}");
    assert_eq!(enterprise_calls(&org.calls().await), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_signs_a_leaver_out_by_deactivation_and_the_review_exports() {
    let org = Org::example("northwind", |_| {}).await;
    let export = crate::controller::hr_export(&org);
    let remote = org.bare_remote();
    let controller = Controller::converged_with_identity(&org, &remote, &export).await;

    let leaver = "sally.floyd@northwind.example";
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, common::suspend(&text, leaver)).unwrap();
    let event = format!(r#"{{"email":"{leaver}","event":"deactivated"}}"#);
    let sent = Instant::now();
    assert_eq!(
        crate::controller::identity_hook(&controller, "idp-secret", event.as_bytes()).await,
        202
    );
    loop {
        let world = org.world().await;
        let account = user(&world, leaver);
        if !account.active && world.session_resets.iter().any(|r| r.user == account.id) {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "not signed out yet"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = controller
        .wait("the identity syncs recorded", |s| {
            s["last_syncs"][0]["trigger"] == "identity-event"
                && s["last_syncs"][1]["trigger"] == "identity-event"
        })
        .await;
    assert_eq!(
        status["last_syncs"][1]["outcome"], "converged",
        "{status:#}"
    );
    assert_eq!(enterprise_calls(&org.calls().await), Vec::<String>::new());

    // The access review: the leaver's evidence, with no Enterprise-only read.
    let review = org.temp.path().join("review.json");
    let (code, out, err) = org
        .run(&[
            "export",
            "access-review",
            org.repo_arg(),
            "--state",
            org.state.to_str().unwrap(),
            "--format",
            "json",
            "--out",
            review.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let review: Value = serde_json::from_str(&std::fs::read_to_string(&review).unwrap()).unwrap();
    let text = review.to_string();
    assert!(text.contains(leaver), "the review does not name the leaver");
    assert_eq!(enterprise_calls(&org.calls().await), Vec::<String>::new());
}

/// On Business+ Slack's SCIM groups are the workspace's usergroups: `/Groups` lists them,
/// a user's `groups` name them, and a SCIM write to a group changes the usergroup the
/// Web API shows (members, a new group, a deleted one).
#[tokio::test]
async fn scim_groups_are_the_workspaces_usergroups() {
    let seed =
        slack_emulator::read_world(&common::fixture("examples/northwind/slack.json")).unwrap();
    let slack = common::start(seed, Default::default()).await;
    let token = "xoxp-northwind-admin";
    let (status, groups) = slack.scim_as(token, "GET", "Groups?count=100", None).await;
    assert_eq!(status, 200);
    assert_eq!(groups["totalResults"], 8);
    let sales = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == "Sales")
        .unwrap()
        .clone();
    let id = sales["id"].as_str().unwrap().to_string();
    let (_, mary) = slack
        .scim_as(
            token,
            "GET",
            "Users?filter=userName%20eq%20%22mary.keller%22",
            None,
        )
        .await;
    let mary = &mary["Resources"][0];
    assert!(
        mary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["value"] == id.as_str()),
        "{mary}"
    );

    // A member added through SCIM is in the usergroup.
    let newcomer = "U00000001";
    let (status, _) = slack
        .scim_as(
            token,
            "PATCH",
            &format!("Groups/{id}"),
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": newcomer}]}]
            })),
        )
        .await;
    assert_eq!(status, 200);
    let listed = slack
        .ok(
            token,
            "usergroups.users.list",
            &[("usergroup", id.as_str())],
        )
        .await;
    assert!(
        listed["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == newcomer),
        "{listed}"
    );

    // A group SCIM creates is a usergroup; one it deletes is gone.
    let (status, created) = slack
        .scim_as(
            token,
            "POST",
            "Groups",
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Night Shift",
                "members": [{"value": newcomer}]
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let handles = |body: &Value| -> Vec<String> {
        body["usergroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["handle"].as_str().unwrap().to_string())
            .collect()
    };
    let list = slack
        .ok(token, "usergroups.list", &[("include_disabled", "true")])
        .await;
    assert!(
        handles(&list).contains(&"night-shift".to_string()),
        "{list}"
    );
    let new_id = created["id"].as_str().unwrap();
    let (status, _) = slack
        .scim_as(token, "DELETE", &format!("Groups/{new_id}"), None)
        .await;
    assert_eq!(status, 204);
    let list = slack
        .ok(token, "usergroups.list", &[("include_disabled", "true")])
        .await;
    assert!(!handles(&list).contains(&"night-shift".to_string()));
    slack.stop().await;
}
