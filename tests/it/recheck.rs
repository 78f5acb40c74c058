//! A plan made from the mirror never takes anything away on trust: before each
//! destructive action the executor reads the object again, against the real emulator.
//! Each case changes Slack between the plan and the action, and shows what the action
//! would have done without the re-read.

use crate::common::org::Org;
use slack_gitops::apply::executor::{Context, Execution, Executor, Outcome};
use slack_gitops::model::live::Live;
use slack_gitops::pipeline;
use slack_gitops::plan::action::{Action, Addition, Drift, Person, Removal, SlackId};
use slack_gitops::plan::desired::RuleRef;
use slack_gitops::store::{NewRun, Store};

/// Live Slack as a plan saw it.
async fn live(connection: &pipeline::Connection) -> Live {
    let scope = slack_gitops::slack::reader::ReadScope::from_repository(&connection.repository);
    slack_gitops::slack::reader::read_live(&connection.client, &scope)
        .await
        .unwrap()
        .0
}

/// Runs `actions` against `live` as a plan from the mirror (`recheck`) or not.
async fn run(
    org: &Org,
    connection: &pipeline::Connection,
    live: &Live,
    actions: &[Action],
    recheck: bool,
) -> Execution {
    let store = Store::open(&org.temp.path().join(format!("recheck-{recheck}.db"))).unwrap();
    let run_id = store
        .begin_run(&NewRun {
            org: "acme",
            kind: "apply",
            commit: None,
            plan_hash: "test",
            approvals: "[]",
            started_at: 0,
            resumes: None,
        })
        .unwrap();
    let clock = slack_gitops::clock::now_millis;
    let on_result = |_: &slack_gitops::apply::executor::ActionResult, _: &Action| {};
    let executor = Executor::new(
        Context {
            client: &connection.client,
            store: &store,
            run_id,
            org: "acme",
            commit: None,
            approval: None,
            breaker: Default::default(),
            clock: &clock,
            on_result: &on_result,
            stop: None,
            recheck,
        },
        live,
    );
    executor.run(actions).await.unwrap()
}

fn person(world: &slack_emulator::world::World, id: &str) -> Person {
    let user = world.users.iter().find(|u| u.id == id).unwrap();
    Person {
        email: user.email.clone(),
        user_id: SlackId::Live(id.to_string()),
    }
}

fn removal(person: Person) -> Removal {
    Removal {
        person,
        drift: Drift::NotSelected,
        why: "in none of the mapping's groups".into(),
    }
}

/// Calls to `method` in the emulator's log since it was last cleared.
async fn calls_to(org: &Org, method: &str) -> usize {
    org.emulator
        .log()
        .await
        .iter()
        .filter(|c| c.call == method)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_renamed_and_recreated_after_the_plan_is_not_acted_on_by_its_old_id() {
    for recheck in [true, false] {
        let org = Org::new(|_| {}).await;
        let connection = org.connect();
        let seen = live(&connection).await;
        let world = org.world().await;
        let oncall = world.channels.iter().find(|c| c.id == "C00000005").unwrap();
        assert_eq!(oncall.name, "eng-oncall");
        let member = oncall.members[0].clone();
        let kick = Action::KickFromChannel {
            workspace: "T0000MAIN".into(),
            channel: "eng-oncall".into(),
            channel_id: "C00000005".into(),
            removal: removal(person(&world, &member)),
        };

        // Between the plan and the action: #eng-oncall becomes #eng-oncall-2025 and a new
        // #eng-oncall is made.
        let bot = org.bot.clone();
        org.emulator
            .ok(
                &bot,
                "conversations.rename",
                &[("channel", "C00000005"), ("name", "eng-oncall-2025")],
            )
            .await;
        org.emulator
            .ok(
                &bot,
                "conversations.create",
                &[
                    ("team_id", "T0000MAIN"),
                    ("name", "eng-oncall"),
                    ("is_private", "true"),
                ],
            )
            .await;
        org.emulator.clear_log().await;

        let execution = run(&org, &connection, &seen, &[kick], recheck).await;
        let after = org.world().await;
        let still_in = after
            .channels
            .iter()
            .find(|c| c.id == "C00000005")
            .unwrap()
            .members
            .contains(&member);
        if recheck {
            match &execution.results[0].outcome {
                Outcome::Skipped(why) => {
                    assert!(why.contains("is #eng-oncall-2025 since the plan"), "{why}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(calls_to(&org, "conversations.kick").await, 0);
            assert!(still_in, "the renamed channel kept its member");
        } else {
            // What the re-read prevents: the kick lands on the renamed channel.
            assert!(execution.results[0].outcome.succeeded());
            assert!(!still_in);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usergroup_write_keeps_a_member_added_after_the_plan() {
    for recheck in [true, false] {
        let org = Org::new(|_| {}).await;
        let connection = org.connect();
        let seen = live(&connection).await;
        let world = org.world().await;
        let sre = world
            .usergroups
            .iter()
            .find(|g| g.handle == "sre" && g.workspace == "T0000MAIN")
            .unwrap()
            .clone();
        let outsiders: Vec<&slack_emulator::world::User> = world
            .users
            .iter()
            .filter(|u| {
                u.active
                    && !u.bot
                    && u.guest.is_none()
                    && u.workspaces.contains(&sre.workspace)
                    && !sre.users.contains(&u.id)
            })
            .collect();
        let (joiner, by_hand) = (outsiders[0], outsiders[1]);
        let leaving = sre.users[0].clone();
        // The plan, from its view of @sre: one in, one out, the list sent whole.
        let mut members: Vec<Person> = sre.users[1..].iter().map(|id| person(&world, id)).collect();
        members.push(person(&world, &joiner.id));
        let set = Action::SetUsergroupMembers {
            workspace: sre.workspace.clone(),
            usergroup_id: SlackId::Live(sre.id.clone()),
            handle: "sre".into(),
            members,
            adds: vec![Addition {
                person: person(&world, &joiner.id),
                grants: Vec::new(),
            }],
            removes: vec![removal(person(&world, &leaving))],
            rule: RuleRef {
                file: "mappings/engineering.yaml".into(),
                line: 1,
            },
        };

        // Between the plan and the action: someone is added to @sre by hand.
        org.add_by_hand("sre", &by_hand.email).await;

        let execution = run(&org, &connection, &seen, &[set], recheck).await;
        assert!(execution.results[0].outcome.succeeded(), "{execution:?}");
        let after = org.world().await;
        let now = &after
            .usergroups
            .iter()
            .find(|g| g.id == sre.id)
            .unwrap()
            .users;
        assert!(now.contains(&joiner.id));
        assert!(!now.contains(&leaving));
        // Only the plan's removal happens: the member it never saw stays, unless the
        // list is sent as the plan made it.
        assert_eq!(now.contains(&by_hand.id), recheck, "{now:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_already_happened_is_not_done_again() {
    let org = Org::new(|_| {}).await;
    let connection = org.connect();
    let seen = live(&connection).await;
    let world = org.world().await;
    let oncall = world.channels.iter().find(|c| c.id == "C00000005").unwrap();
    let gone = oncall.members[1].clone();
    // They left #eng-oncall after the plan.
    org.emulator
        .ok(
            &org.bot,
            "conversations.kick",
            &[("channel", "C00000005"), ("user", gone.as_str())],
        )
        .await;
    org.emulator.clear_log().await;
    let kick = Action::KickFromChannel {
        workspace: "T0000MAIN".into(),
        channel: "eng-oncall".into(),
        channel_id: "C00000005".into(),
        removal: removal(person(&world, &gone)),
    };
    let execution = run(&org, &connection, &seen, &[kick], true).await;
    assert_eq!(execution.results[0].outcome, Outcome::AlreadyDone);
    assert_eq!(execution.writes, 0);
    assert_eq!(calls_to(&org, "conversations.kick").await, 0);
    assert_eq!(calls_to(&org, "conversations.members").await, 1);
}
