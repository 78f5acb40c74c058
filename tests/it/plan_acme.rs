//! The plan for the Acme example against the emulator seeded with Acme's drift: every
//! kind of seeded drift shows up as the right action, in the right order.

use crate::common;

use slack_emulator::Options;
use slack_gitops::config;
use slack_gitops::identity::IdentitySource;
use slack_gitops::identity::file::FileSource;
use slack_gitops::plan::action::{Action, Drift, Plan};
use slack_gitops::plan::desired::desired;
use slack_gitops::plan::diff::plan;
use slack_gitops::policy::IdentityCounts;
use slack_gitops::slack::client::{ClientOptions, SlackClient, Token};
use slack_gitops::slack::reader::{ReadScope, read_live};

async fn acme_plan() -> Plan {
    acme().await.0
}

async fn acme() -> (
    Plan,
    slack_gitops::model::live::Live,
    config::Repository,
    IdentityCounts,
) {
    let seed = slack_emulator::read_world(&common::fixture("examples/acme/slack.json")).unwrap();
    let slack = common::start(seed, Options::default()).await;
    let tree = slack_gitops::gitops::worktree::read(&common::fixture("examples/acme")).unwrap();
    let repository = config::load(&tree.files, None).repository.unwrap();
    let directory = FileSource::new(common::fixture("examples/acme/identity/directory.yaml"))
        .read()
        .await
        .unwrap();
    let client = SlackClient::new(
        Token::new("xoxp-acme-admin"),
        Some(Token::new("xoxb-acme-bot")),
        ClientOptions {
            base_url: Some(slack.base.clone()),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let (live, _) = read_live(&client, &ReadScope::from_repository(&repository))
        .await
        .unwrap();
    slack.stop().await;
    let resolution = directory.resolve();
    let wanted = desired(&repository, &directory, &resolution);
    let first = plan(&wanted, &directory, &live);
    let second = plan(&wanted, &directory, &live);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap(),
        "deterministic"
    );
    let identity = IdentityCounts::of(&wanted, &directory);
    (first, live, repository, identity)
}

fn position(plan: &Plan, matches: impl Fn(&Action) -> bool) -> usize {
    plan.actions
        .iter()
        .position(matches)
        .expect("the action is in the plan")
}

#[tokio::test]
async fn every_seeded_drift_becomes_the_right_action() {
    let plan = acme_plan().await;
    let count = |f: &dyn Fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();

    // Joiners: four active people with no account, created (provisioning is eager).
    assert_eq!(count(&|a| matches!(a, Action::CreateUser { .. })), 4);
    // Leavers: two missed deprovisions and the ghost account; nobody else.
    let deactivations: Vec<(String, Drift)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeactivateUser { removal, .. } => {
                Some((removal.person.email.clone(), removal.drift))
            }
            _ => None,
        })
        .collect();
    assert_eq!(deactivations.len(), 3, "{deactivations:?}");
    assert_eq!(
        deactivations
            .iter()
            .filter(|(_, d)| *d == Drift::MissedDeprovision)
            .count(),
        2
    );
    assert!(deactivations.contains(&(
        "old.contractor@contractors.acme.example".into(),
        Drift::GhostAccount
    )));
    assert_eq!(count(&|a| matches!(a, Action::ResetSessions { .. })), 3);
    // Protected identities are reported, not deactivated; guests and bots are left alone.
    let blocked: Vec<&str> = plan
        .blocked_by_protection
        .iter()
        .map(|r| r.person.email.as_str())
        .collect();
    assert!(
        blocked.contains(&"breakglass@acme.example")
            && blocked.contains(&"slack-gitops@acme.example"),
        "{blocked:?}"
    );
    assert!(
        !deactivations
            .iter()
            .any(|(e, _)| e.contains("agency.example") || e.contains("bot"))
    );

    // The hand-added marketing person leaves @backend; the mover leaves @frontend and
    // joins @mobile.
    let set = |handle: &str| {
        plan.actions.iter().find_map(|a| match a {
            Action::SetUsergroupMembers {
                handle: h,
                adds,
                removes,
                ..
            } if h == handle => Some((adds.clone(), removes.clone())),
            _ => None,
        })
    };
    let (_, backend_removes) = set("backend").unwrap();
    assert_eq!(backend_removes.len(), 1);
    assert_eq!(backend_removes[0].drift, Drift::NotSelected);
    assert_eq!(
        backend_removes[0].why,
        "in none of `eng-backend` (added by hand in Slack, left the IdP group, or the mapping changed)"
    );
    let (_, frontend_removes) = set("frontend").unwrap();
    let (mobile_adds, _) = set("mobile").unwrap();
    assert_eq!(
        frontend_removes[0].person.email,
        mobile_adds[0].person.email
    );
    assert_eq!(frontend_removes[0].drift, Drift::Moved);
    // Provenance: the mover is in @mobile by the rule at its file:line, through the IdP
    // group chain from the rule's group down to the group that lists them.
    let grant = &mobile_adds[0].grants[0];
    assert_eq!(grant.rule.to_string(), "mappings/engineering.yaml:48");
    assert_eq!(grant.via.first().map(String::as_str), Some("eng-mobile"));
    // Joiners carry the users.scope chain.
    let joiner = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateUser { person, grant, .. }
                if person.email == "evelyn.dijkstra@acme.example" =>
            {
                Some(grant.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(joiner.rule.to_string(), "slack-gitops.yaml:17");
    assert_eq!(joiner.via, ["everyone", "employees", "sales", "sales-amer"]);
    // A leaver's impact lists what live Slack shows them in.
    let impact = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::DeactivateUser { removal, impact }
                if removal.drift == Drift::MissedDeprovision =>
            {
                Some(impact.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        !impact.usergroups.is_empty(),
        "a missed deprovision is still in usergroups: {impact:?}"
    );

    // A hand-edited description is put back; a missing usergroup and channel are created.
    assert!(plan.actions.iter().any(|a| matches!(a, Action::UpdateUsergroup { handle, fields, .. } if handle == "sales" && fields[0].field.as_str() == "description")));
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::CreateUsergroup { handle, .. } if handle == "data"))
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::CreateChannel { name, .. } if name == "eng-announce"))
    );
    // The stranger in #eng-oncall is kicked; #incidents gets its missing members.
    assert!(
        plan.actions.iter().any(
            |a| matches!(a, Action::KickFromChannel { channel, .. } if channel == "eng-oncall")
        )
    );
    assert!(plan.actions.iter().any(|a| matches!(a, Action::InviteToChannel { channel, people, .. } if channel == "incidents" && !people.is_empty())));
    // Unmanaged objects are listed, never changed.
    assert!(
        plan.unmanaged_usergroups
            .contains(&("T0000MAIN".into(), "design-crit".into()))
    );
    assert!(
        plan.unmanaged_channels
            .contains(&("T0000MAIN".into(), "random".into()))
    );

    // Order: creations first; membership removals before deactivations; sessions after.
    let first_create = position(&plan, |a| matches!(a, Action::CreateUser { .. }));
    let last_membership = plan
        .actions
        .iter()
        .rposition(|a| {
            matches!(
                a,
                Action::SetUsergroupMembers { .. } | Action::KickFromChannel { .. }
            )
        })
        .unwrap();
    let first_deactivation = position(&plan, |a| matches!(a, Action::DeactivateUser { .. }));
    let first_reset = position(&plan, |a| matches!(a, Action::ResetSessions { .. }));
    assert_eq!(first_create, 0);
    assert!(last_membership < first_deactivation && first_deactivation < first_reset);
}

#[tokio::test]
async fn the_guardrail_verdict_binds_approvals_to_the_exact_destructive_set() {
    use slack_gitops::config::types::{ApiVersion, ApprovalFile, Limit};
    use slack_gitops::policy::{Verdict, plan_hash, verdict};
    let (plan, live, mut repository, identity) = acme().await;
    let verdict = |plan: &Plan, live: &_, repository: &_| {
        verdict(plan, live, repository, &identity, Some(&identity))
    };
    // Acme's own limits allow the seeded drift (3 deactivations of about 290 accounts).
    assert!(matches!(
        verdict(&plan, &live, &repository),
        Verdict::Allowed {
            approved: false,
            ..
        }
    ));

    // At a limit of 3 deactivations the plan is allowed; at 2 it needs approval.
    repository.policies[0].value.limits.deactivate = Some(Limit {
        max: Some(3),
        max_percent: None,
    });
    assert!(matches!(
        verdict(&plan, &live, &repository),
        Verdict::Allowed { .. }
    ));
    repository.policies[0].value.limits.deactivate = Some(Limit {
        max: Some(2),
        max_percent: None,
    });
    let Verdict::NeedsApproval {
        hash,
        exceeded,
        counts,
    } = verdict(&plan, &live, &repository)
    else {
        panic!("over the limit");
    };
    assert_eq!(hash, plan_hash(&plan));
    assert_eq!(
        (exceeded[0].kind, exceeded[0].count, counts.deactivate),
        ("deactivate", 3, 3)
    );

    // An approval carrying that hash, merged with the change, allows it.
    let mut approval = repository.approvals[0].clone();
    approval.value = ApprovalFile {
        api_version: ApiVersion::V1,
        kind: "Approval".into(),
        hash: slack_gitops::model::PlanHash::parse(&hash).unwrap(),
        reason: "test".into(),
        approved_by: vec![slack_gitops::model::Email::parse("ada@acme.example").unwrap()],
        ticket: None,
        expires: None,
        overrides: Vec::new(),
    };
    repository.approvals.push(approval);
    assert!(matches!(
        verdict(&plan, &live, &repository),
        Verdict::Allowed { approved: true, .. }
    ));
}

#[tokio::test]
async fn profiles_follow_the_identity_provider() {
    let (before, mut live, repository, _) = acme().await;
    // The seed's profiles match but for the mover's title and manager, and a manager who
    // joins in this plan.
    let seeded: Vec<&str> = before
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateProfile { person, .. } if person.user_id.live().is_some() => {
                Some(person.email.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        seeded,
        ["ada.liskov@acme.example", "alan.borg@acme.example"]
    );
    // The four joiners this plan creates get their manager once both accounts exist.
    let joiners = before
        .actions
        .iter()
        .filter(|a| {
            matches!(a, Action::UpdateProfile { person, fields }
                if person.user_id.live().is_none() && fields[0].field.as_str() == "manager")
        })
        .count();
    assert_eq!(joiners, 4);
    let directory = FileSource::new(common::fixture("examples/acme/identity/directory.yaml"))
        .read()
        .await
        .unwrap();
    let person = directory
        .people
        .iter()
        .find(|p| p.email == "ada.liskov@acme.example")
        .unwrap();
    let user = live
        .users
        .iter_mut()
        .find(|u| u.email == person.email)
        .unwrap();
    user.title = "Edited in Slack".into();
    let resolution = directory.resolve();
    let after = plan(
        &desired(&repository, &directory, &resolution),
        &directory,
        &live,
    );
    let update = after
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateProfile { person, fields } => {
                Some((person.email.clone(), fields.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(update.0, "ada.liskov@acme.example");
    assert_eq!(
        (
            update.1[0].field.as_str(),
            update.1[0].from.as_str(),
            update.1[0].to.as_str()
        ),
        ("title", "Edited in Slack", person.title.as_str())
    );
}
