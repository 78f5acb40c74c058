//! The desired state of the Acme example: who should have an account, and who belongs
//! in each usergroup and channel, with the rule that says so.

use crate::common;

use std::collections::BTreeSet;

use slack_gitops::config;
use slack_gitops::identity::IdentitySource;
use slack_gitops::identity::file::FileSource;
use slack_gitops::model::directory::PersonStatus;
use slack_gitops::plan::desired::desired;

#[tokio::test]
async fn acme_resolves_to_people_per_usergroup_and_channel() {
    let tree = slack_gitops::gitops::worktree::read(&common::fixture("examples/acme")).unwrap();
    let repository = config::load(&tree.files, None).repository.unwrap();
    let directory = FileSource::new(common::fixture("examples/acme/identity/directory.yaml"))
        .read()
        .await
        .unwrap();
    let resolution = directory.resolve();
    let wanted = desired(&repository, &directory, &resolution);

    let active: BTreeSet<&str> = directory
        .people
        .iter()
        .filter(|p| p.status == PersonStatus::Active)
        .map(|p| p.email.as_str())
        .collect();
    let closure = |group: &str| resolution.member_emails(group);
    let emails = |ids: &mut dyn Iterator<Item = &u32>| {
        ids.map(|&id| wanted.email(id)).collect::<BTreeSet<&str>>()
    };

    // Accounts: active people in `everyone` (suspended leavers and break-glass are not in scope).
    let expected: BTreeSet<&str> = closure("everyone").intersection(&active).copied().collect();
    assert_eq!(emails(&mut wanted.accounts.iter()), expected);
    assert_eq!(wanted.accounts.len(), 284);

    // The channels planned are exactly the ones the config manages (the reader's scope).
    let planned: BTreeSet<(String, String)> = wanted
        .channels
        .iter()
        .map(|c| (c.workspace.clone(), c.name.clone()))
        .collect();
    assert_eq!(planned, repository.managed_channels());
    assert!(planned.len() >= 10, "{planned:?}");

    // @eng: engineering less contractors, active only; rule at its file:line.
    let eng = wanted
        .usergroups
        .iter()
        .find(|g| g.handle == "eng")
        .unwrap();
    let expected: BTreeSet<&str> = closure("engineering")
        .difference(&closure("contractors"))
        .filter(|e| active.contains(*e))
        .copied()
        .collect();
    assert_eq!(emails(&mut eng.members.iter()), expected);
    assert_eq!(
        wanted.rule(eng.rule).at.to_string(),
        "mappings/engineering.yaml:6"
    );
    assert_eq!(wanted.rule(eng.rule).target, "usergroup @eng");
    assert_eq!(eng.workspace, "T0000MAIN");

    // A usergroup in two workspaces is one usergroup per workspace.
    let oncall: Vec<&str> = wanted
        .usergroups
        .iter()
        .filter(|g| g.handle == "oncall")
        .map(|g| g.workspace.as_str())
        .collect();
    assert_eq!(oncall, ["T0000MAIN", "T0000SUPP"]);
    // Explicit users join the groups' members.
    let tier2 = wanted
        .usergroups
        .iter()
        .find(|g| g.handle == "support-tier2")
        .unwrap();
    let ada = resolution.id("ada.clarke@acme.example").unwrap();
    assert!(tier2.members.contains(&ada));

    // #eng-oncall: its own members spec plus the members of @oncall, which lists it.
    let channel = wanted
        .channels
        .iter()
        .find(|c| c.name == "eng-oncall")
        .unwrap();
    assert!(channel.private && channel.remove_unlisted);
    let expected: BTreeSet<&str> = closure("oncall")
        .union(&closure("sre"))
        .filter(|e| active.contains(*e))
        .copied()
        .collect();
    assert_eq!(emails(&mut channel.members.keys()), expected);
    // #eng is not declared, only named as a default channel: no rule of its own.
    let eng_channel = wanted.channels.iter().find(|c| c.name == "eng").unwrap();
    assert_eq!(eng_channel.rule, None);
    assert!(eng_channel.members.values().all(|rules| {
        rules
            .iter()
            .all(|&r| wanted.rule(r).at.file == "mappings/engineering.yaml")
    }));

    // Protected: listed people and the members of it-admins.
    assert!(wanted.protected.contains("breakglass@acme.example"));
    assert!(wanted.protected.contains("slack-gitops@acme.example"));
    assert!(
        closure("it-admins")
            .iter()
            .all(|e| wanted.protected.contains(*e))
    );

    // Everyone in a support-workspace usergroup needs that workspace.
    let support = wanted
        .usergroups
        .iter()
        .find(|g| g.handle == "support" && g.workspace == "T0000SUPP")
        .unwrap();
    assert!(
        support
            .members
            .iter()
            .all(|&id| wanted.workspaces_of(id).any(|w| w == "T0000SUPP"))
    );
}
