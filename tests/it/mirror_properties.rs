//! The live mirror's two claims, under random interleavings, against the real emulator
//! and a real SQLite store: people changing Slack by hand, the identity provider moving
//! people between groups, Slack's events arriving, lost, twice, late and out of order,
//! and applies that plan from the mirror.
//!
//! 1. **No destructive change that a read did not justify.** Every membership an apply
//!    from the mirror takes away, and every account it deactivates, is one that a plan
//!    from a full read of Slack, made just before it, takes away too.
//! 2. **A stated age is never younger than the truth.** Every clean copy in the mirror
//!    was Slack's state at some moment since the step its verification time falls in:
//!    a plan that says "the oldest verified at T" never serves a copy that was already
//!    wrong at T.
//!
//! The mirror is trusted throughout (as if the event stream were healthy), which is
//! harsher than the controller, which stops trusting it after a gap. The interleavings
//! that need the safeguards (a lost event, then a rewrite of that object) are rare in
//! random steps; the last test here spells one out, and `recheck.rs` builds more.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::org::Org;
use proptest::prelude::*;
use serde_json::Value;
use slack_gitops::config::types::DriftKind;
use slack_gitops::controller::mirror::{EventCounters, drain};
use slack_gitops::mirror::{Inbound, ObjectKind, Sink};
use slack_gitops::model::live::{LiveChannel, LiveUsergroup};
use slack_gitops::pipeline::{self, Baseline};
use slack_gitops::plan::action::{Action, SlackId};
use slack_gitops::store::Store;

const SCOPE: &str = "properties";

/// What happens next.
#[derive(Debug, Clone)]
enum Step {
    /// Someone adds or removes a person by hand (indexes into the objects and people).
    ByHand {
        object: usize,
        person: usize,
        add: bool,
    },
    /// The events emitted since the last delivery arrive, each with a fate.
    Deliver(Vec<Fate>),
    /// Events held back arrive, newest first.
    Late,
    /// The identity provider moves someone into or out of a group: below 4, the IdP
    /// group the usergroup `objects[group]` maps; from 4, the export's groups in order.
    Regroup {
        group: usize,
        person: usize,
        join: bool,
    },
    /// An apply that plans from the mirror; `narrowed`: a drift tick that corrects only
    /// missing members (a usergroup's list is Slack's plus them: hand-added people stay).
    Apply { narrowed: bool },
}

/// What becomes of one event.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Arrives,
    Lost,
    Twice,
    HeldBack,
}

fn step() -> impl Strategy<Value = Step> {
    let fate = prop_oneof![
        3 => Just(Fate::Arrives),
        2 => Just(Fate::Lost),
        1 => Just(Fate::Twice),
        2 => Just(Fate::HeldBack),
    ];
    prop_oneof![
        // Usergroups come first among the objects: half the changes by hand hit one of
        // the first four, where a stale copy would do the most harm (a whole list).
        4 => (prop_oneof![0usize..4, 0usize..64], 0usize..512, any::<bool>())
            .prop_map(|(object, person, add)| Step::ByHand { object, person, add }),
        3 => prop::collection::vec(fate, 1..6).prop_map(Step::Deliver),
        1 => Just(Step::Late),
        // Half the moves are into or out of the IdP group of one of the first four
        // usergroups, the objects changes by hand hit most.
        2 => (prop_oneof![0usize..4, 4usize..36], 0usize..512, any::<bool>())
            .prop_map(|(group, person, join)| Step::Regroup { group, person, join }),
        2 => any::<bool>().prop_map(|narrowed| Step::Apply { narrowed }),
    ]
}

/// Members of every channel and usergroup, by id.
type View = BTreeMap<String, BTreeSet<String>>;

fn view(world: &slack_emulator::world::World) -> View {
    let channels = world
        .channels
        .iter()
        .map(|c| (c.id.clone(), c.members.iter().cloned().collect()));
    let usergroups = world
        .usergroups
        .iter()
        .map(|g| (g.id.clone(), g.users.iter().cloned().collect()));
    channels.chain(usergroups).collect()
}

fn active(world: &slack_emulator::world::World) -> BTreeSet<String> {
    world
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.id.clone())
        .collect()
}

/// The state of the world at the end of each step, and when that step ended.
struct History {
    boundaries: Vec<(i64, View)>,
}

impl History {
    /// Claim 2 for one copy verified at `verified`: the copy's members are the object's
    /// at some boundary since the step `verified` falls in (or, within that step, between
    /// its start and its end: an apply changes a channel one person at a time).
    fn honest(&self, id: &str, verified: i64, copy: &BTreeSet<String>) -> bool {
        let members = |k: usize| self.boundaries[k].1.get(id).cloned().unwrap_or_default();
        let Some(end) = self.boundaries.iter().position(|(at, _)| *at >= verified) else {
            return false;
        };
        // A copy may be newer than its verification (a usergroup's delta chained onto
        // it): a stated age older than the truth is honest.
        if (end..self.boundaries.len()).any(|k| members(k) == *copy) {
            return true;
        }
        if end == 0 {
            return false;
        }
        let (before, after) = (members(end - 1), members(end));
        before.intersection(&after).all(|m| copy.contains(m))
            && copy.iter().all(|m| before.contains(m) || after.contains(m))
    }
}

struct Harness {
    org: Org,
    store: std::sync::Arc<Store>,
    /// Plans from the mirror (trusted throughout).
    mirrored: pipeline::Connection,
    /// Plans from a full read: what is justified.
    full: pipeline::Connection,
    objects: Vec<String>,
    /// The IdP group each of the first usergroups in `objects` maps (its first).
    mapped: Vec<String>,
    people: Vec<String>,
    emitted: usize,
    held: Vec<(Inbound, String)>,
    counters: EventCounters,
    history: History,
    applies: usize,
}

impl Harness {
    async fn new() -> Harness {
        let org = Org::new(|_| {}).await;
        let (status, text) = org
            .emulator
            .control_post("events", &serde_json::json!({"signing_secret": "s"}))
            .await;
        assert_eq!(status, 204, "{text}");
        let store = std::sync::Arc::new(Store::open(&org.temp.path().join("mirror.db")).unwrap());
        let mut mirrored = org.connect();
        mirrored.mirror = Some(Sink {
            store: store.clone(),
            scope: SCOPE.into(),
        });
        let full = org.connect();
        let mut harness = Harness {
            objects: Vec::new(),
            mapped: Vec::new(),
            people: Vec::new(),
            emitted: 0,
            held: Vec::new(),
            counters: EventCounters::default(),
            history: History {
                boundaries: Vec::new(),
            },
            applies: 0,
            org,
            store,
            mirrored,
            full,
        };
        // Converge acme first (a full read, written through), then read it once more:
        // the mirror starts full and right; the events so far are skipped.
        harness.apply(false).await;
        pipeline::plan_org(&harness.mirrored, &Baseline::default())
            .await
            .unwrap();
        harness.emitted = harness.events_since(0).await.len();
        let world = harness.org.world().await;
        let bot = "W00000292";
        // Usergroups first: a stale copy of one does the most harm (a whole list).
        harness.objects = world
            .usergroups
            .iter()
            .filter(|g| g.workspace == "T0000MAIN" && !g.disabled)
            .map(|g| g.id.clone())
            .chain(
                world
                    .channels
                    .iter()
                    .filter(|c| {
                        c.workspace == "T0000MAIN"
                            && !c.archived
                            && c.members.iter().any(|m| m == bot)
                    })
                    .map(|c| c.id.clone()),
            )
            .collect();
        let specs: Vec<_> = harness
            .full
            .repository
            .mappings
            .iter()
            .flat_map(|m| m.value.usergroups.iter())
            .collect();
        harness.mapped = harness
            .objects
            .iter()
            .take(4)
            .filter_map(|id| world.usergroups.iter().find(|g| &g.id == id))
            .filter_map(|g| specs.iter().find(|s| s.handle.as_str() == g.handle))
            .filter_map(|spec| spec.members.groups.first().cloned())
            .collect();
        harness.people = world
            .users
            .iter()
            .filter(|u| u.active && !u.bot && u.workspaces.iter().any(|w| w == "T0000MAIN"))
            .map(|u| u.id.clone())
            .collect();
        harness.boundary(&world);
        harness
    }

    fn boundary(&mut self, world: &slack_emulator::world::World) {
        let now = slack_gitops::clock::now_millis();
        self.history.boundaries.push((now, view(world)));
    }

    async fn events_since(&self, since: usize) -> Vec<Value> {
        let report = self
            .org
            .emulator
            .control(&format!("events?since={since}"))
            .await;
        report["events"].as_array().unwrap().clone()
    }

    async fn run(&mut self, step: &Step) {
        match step {
            Step::ByHand {
                object,
                person,
                add,
            } => self.by_hand(*object, *person, *add).await,
            Step::Deliver(fates) => self.deliver(fates).await,
            Step::Late => {
                let held: Vec<_> = self.held.drain(..).rev().collect();
                for (inbound, body) in &held {
                    self.offer(inbound, body);
                }
                self.drain();
            }
            Step::Regroup {
                group,
                person,
                join,
            } => self.regroup(*group, *person, *join),
            Step::Apply { narrowed } => self.apply(*narrowed).await,
        }
        let world = self.org.world().await;
        self.boundary(&world);
        self.check_ages();
    }

    async fn by_hand(&self, object: usize, person: usize, add: bool) {
        let id = &self.objects[object % self.objects.len()];
        let who = &self.people[person % self.people.len()];
        let admin = self.org.admin.clone();
        let emulator = &self.org.emulator;
        if id.starts_with('C') {
            let (method, args) = if add {
                (
                    "admin.conversations.invite",
                    [("channel_id", id.as_str()), ("user_ids", who.as_str())],
                )
            } else {
                (
                    "conversations.kick",
                    [("channel", id.as_str()), ("user", who.as_str())],
                )
            };
            // Someone already there, or not there: Slack says so, nothing changes.
            let (_, answer) = emulator.web(&admin, method, &args).await;
            let refused = answer["error"].as_str().unwrap_or_default();
            assert!(
                answer["ok"] == true
                    || [
                        "already_in_channel",
                        "not_in_channel",
                        "cant_kick_from_general",
                        "cant_kick_self",
                    ]
                    .contains(&refused),
                "{method} {id} {who}: {answer}"
            );
            return;
        }
        let world = self.org.world().await;
        let group = world.usergroups.iter().find(|g| &g.id == id).unwrap();
        let mut users: Vec<String> = group.users.iter().filter(|u| *u != who).cloned().collect();
        if add {
            users.push(who.clone());
        }
        if users.is_empty() {
            return;
        }
        let users = users.join(",");
        emulator
            .ok(
                &admin,
                "usergroups.users.update",
                &[
                    ("usergroup", id),
                    ("team_id", "T0000MAIN"),
                    ("users", &users),
                ],
            )
            .await;
    }

    /// Edits the identity export: someone joins a group's members, or one leaves.
    fn regroup(&self, group: usize, person: usize, join: bool) {
        let path = self.org.repo.join("identity/directory.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let start = lines.iter().position(|l| l == "groups:").unwrap();
        // Each group's `    members:` line, and the member lines after it.
        let lists: Vec<usize> = (start..lines.len())
            .filter(|&n| lines[n] == "    members:")
            .collect();
        // The members line of a group named by a usergroup, if it lists people itself.
        let named = self.mapped.get(group).and_then(|name| {
            let header = format!("  - name: {name}");
            let from = (start..lines.len()).find(|&n| lines[n] == header)?;
            (from + 1..lines.len())
                .take_while(|&n| !lines[n].starts_with("  - name: "))
                .find(|&n| lines[n] == "    members:")
        });
        let at = named.unwrap_or(lists[group.saturating_sub(4) % lists.len()]);
        let members: Vec<usize> = (at + 1..lines.len())
            .take_while(|&n| lines[n].starts_with("      - "))
            .collect();
        if join {
            let emails: Vec<&str> = lines[..start]
                .iter()
                .filter_map(|l| l.strip_prefix("  - email: "))
                .collect();
            let email = emails[person % emails.len()].to_string();
            if !members.iter().any(|&n| lines[n].ends_with(&email)) {
                lines.insert(at + 1, format!("      - {email}"));
            }
        } else if members.len() > 1 {
            lines.remove(members[person % members.len()]);
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    async fn deliver(&mut self, fates: &[Fate]) {
        let events = self.events_since(self.emitted).await;
        self.emitted += events.len();
        for (n, event) in events.iter().enumerate() {
            let body = event["body"].to_string();
            let inbound = Inbound {
                event_id: event["event_id"].as_str().unwrap().into(),
                kind: event["kind"].as_str().unwrap().into(),
                event_time: event["body"]["event_time"].as_i64().unwrap_or_default(),
            };
            match fates[n % fates.len()] {
                Fate::Arrives => self.offer(&inbound, &body),
                Fate::Lost => {}
                Fate::Twice => {
                    self.offer(&inbound, &body);
                    self.offer(&inbound, &body);
                }
                Fate::HeldBack => self.held.push((inbound, body)),
            }
        }
        self.drain();
    }

    fn offer(&self, inbound: &Inbound, body: &str) {
        let now = slack_gitops::clock::now_millis();
        self.store
            .offer_slack_event(SCOPE, inbound, body, now)
            .unwrap();
    }

    fn drain(&self) {
        while drain(
            &self.store,
            SCOPE,
            &self.counters,
            slack_gitops::clock::now_millis(),
        )
        .unwrap()
        .events
            > 0
        {}
    }

    /// Claim 1: the apply takes away nothing a full read's plan does not.
    async fn apply(&mut self, narrowed: bool) {
        let drift = narrowed.then(|| pipeline::DriftScope {
            only: Some([DriftKind::MissingMember].into()),
        });
        let justified = self.justified(drift.clone()).await;
        let before = self.org.world().await;
        // The first apply converges from a full read; the rest plan from the mirror.
        *self.mirrored.mirror_trust.lock().unwrap() = (self.applies > 0).then_some(0);
        self.applies += 1;
        let clock = slack_gitops::clock::now_millis;
        let on_result = |_: &slack_gitops::apply::executor::ActionResult, _: &Action| {};
        let options = slack_gitops::apply::ApplyOptions {
            commit: None,
            reviewed: None,
            dry_run: false,
            force_unlock: None,
            holder: "properties".into(),
            today: slack_gitops::apply::iso_date(clock()),
            clock: &clock,
            on_result: &on_result,
            stop: None,
            drift,
            restore_with: Vec::new(),
        };
        let report = slack_gitops::apply::apply(&self.mirrored, &self.store, &options)
            .await
            .unwrap();
        let done: Vec<&str> = report
            .execution
            .results
            .iter()
            .map(|r| r.key.as_str())
            .collect();
        let after = self.org.world().await;
        let (was, now) = (view(&before), view(&after));
        for (id, members) in &was {
            let kept = now.get(id).cloned().unwrap_or_default();
            for gone in members.difference(&kept) {
                // A deactivated account leaves its channels and usergroups with it.
                let deactivated = justified.contains(&(String::new(), gone.clone()));
                assert!(
                    deactivated || justified.contains(&(id.clone(), gone.clone())),
                    "{gone} was taken out of {id} and a full read did not say to: {done:?}"
                );
            }
        }
        for gone in active(&before).difference(&active(&after)) {
            assert!(
                justified.contains(&(String::new(), gone.clone())),
                "{gone} was deactivated and a full read did not say to: {done:?}"
            );
        }
    }

    /// What a plan from a full read of Slack takes away: `(object, person)`, and
    /// `("", person)` for a deactivation.
    async fn justified(&self, drift: Option<pipeline::DriftScope>) -> BTreeSet<(String, String)> {
        // The baseline an apply plans with.
        let baseline = Baseline {
            identity: self.store.last_good_identity(&self.full.org()).unwrap(),
            mappings: Default::default(),
            drift,
            changes: None,
        };
        let planned = pipeline::plan_org(&self.full, &baseline).await.unwrap();
        let id = |id: &SlackId| match id {
            SlackId::Live(id) => id.clone(),
            SlackId::New => String::new(),
        };
        let mut out = BTreeSet::new();
        for action in &planned.plan.actions {
            match action {
                Action::KickFromChannel {
                    channel_id,
                    removal,
                    ..
                } => {
                    out.insert((channel_id.clone(), id(&removal.person.user_id)));
                }
                Action::SetUsergroupMembers {
                    usergroup_id,
                    removes,
                    ..
                } => {
                    for removal in removes {
                        out.insert((id(usergroup_id), id(&removal.person.user_id)));
                    }
                }
                Action::DeactivateUser { removal, .. } => {
                    out.insert((String::new(), id(&removal.person.user_id)));
                }
                _ => {}
            }
        }
        out
    }

    /// Claim 2, for every clean copy of a channel or usergroup.
    fn check_ages(&self) {
        for row in self.store.mirror_rows(SCOPE).unwrap() {
            let (Some(document), Some(verified), None) =
                (&row.document, row.verified_at, row.stale_since)
            else {
                continue;
            };
            let members: BTreeSet<String> = match row.kind {
                ObjectKind::Channel => match serde_json::from_str::<LiveChannel>(document)
                    .ok()
                    .and_then(|c| c.members)
                {
                    Some(members) => members.into_iter().collect(),
                    None => continue,
                },
                ObjectKind::Usergroup => serde_json::from_str::<LiveUsergroup>(document)
                    .unwrap()
                    .members
                    .into_iter()
                    .collect(),
                ObjectKind::User => continue,
            };
            assert!(
                self.history.honest(&row.id, verified, &members),
                "the mirror's copy of {} says it was verified at {verified}, and Slack never held it since: {members:?} against {:?}",
                row.id,
                self.history
                    .boundaries
                    .iter()
                    .map(|(at, view)| (at, view.get(&row.id)))
                    .collect::<Vec<_>>()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn destructive_changes_are_justified_and_stated_ages_are_honest(
        steps in prop::collection::vec(step(), 4..14)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut harness = Harness::new().await;
            for step in &steps {
                harness.run(step).await;
            }
            // Whatever came before, a last apply from the mirror is checked too.
            harness.run(&Step::Deliver(vec![Fate::Arrives])).await;
            harness.run(&Step::Apply { narrowed: true }).await;
        });
    }
}

/// The interleaving both safeguards exist for, spelled out: someone is added to @backend
/// by hand and the event is lost, then the identity provider adds someone to its group
/// and a drift correction of missing members rewrites the list. Read from the mirror
/// alone, the hand-added member would be dropped; with the live re-read they stay.
/// (Seen failing with both the re-read and the executor's re-check turned off.)
#[test]
fn a_lost_hand_added_member_survives_a_narrowed_correction_of_that_usergroup() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut harness = Harness::new().await;
        assert_eq!(harness.mapped[3], "eng-backend", "{:?}", harness.mapped);
        for step in [
            Step::ByHand {
                object: 3,
                person: 200,
                add: true,
            },
            Step::Deliver(vec![Fate::Lost]),
            Step::Regroup {
                group: 3,
                person: 11,
                join: true,
            },
            Step::Apply { narrowed: true },
        ] {
            harness.run(&step).await;
        }
        assert_eq!(
            harness.mirrored.mirror_read().map(|r| r.read_live > 0),
            Some(true)
        );
    });
}
