//! Applying a generated org's plan of about 10,000 changes against the emulator: emulated
//! wall time against the rate-limit floor of the plan's call mix, the 429s, and the state
//! store's cost per action. The emulator and the client run at time scale 200, so an
//! emulated minute of Slack's limits is 300 real milliseconds. (At 1,000 the emulator's
//! own work, about a real millisecond per SCIM create in a 6,000-person world, already
//! counts as an emulated second and the benchmark would measure the emulator.)
//!
//! The org: 6,150 people in Slack, 6,400 in the identity provider. 400 joiners (SCIM
//! create, workspace assignment), 150 leavers (deactivation, sign-out), 600 title changes,
//! 100 usergroups with about 45 membership changes each, 60 channels with about 64 invites
//! each, 10 of them with 5 people to kick: about 9,900 changes in about 1,900 write calls.
//!
//! The floor: actions run in plan order, one kind after the other (accounts before
//! memberships, deactivations before sign-outs), so the plan's floor is the sum over its
//! kinds of the calls beyond the client's burst at the published rate of the kind's
//! bucket. The executor is measured alone (the plan's reads are not part of it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use slack_emulator::{self as emulator, Emulator, Options, world::World};
use slack_gitops::apply::executor::{Context, Executor};
use slack_gitops::pipeline::{self, Baseline, ConnectOptions};
use slack_gitops::plan::action::Action;
use slack_gitops::store::Store;

const SCALE: f64 = 200.0;
const IN_SLACK: usize = 6_150;
const JOINERS: usize = 400;
const LEAVERS: usize = 150;
const RETITLED: usize = 600;
const GROUPS: usize = 100;
const CHANNELS: usize = 60;
const KICKING: usize = 10;

fn email(n: usize) -> String {
    format!("p{n}@bench.example")
}

fn user(n: usize) -> String {
    format!("W{n:08}")
}

/// Who is in IdP group `team-g`: directory people (not leavers) with n % GROUPS == g.
fn in_team(n: usize, g: usize) -> bool {
    n % GROUPS == g && !(IN_SLACK - LEAVERS..IN_SLACK).contains(&n)
}

fn world() -> World {
    let users: Vec<Value> = (0..IN_SLACK)
        .map(|n| {
            json!({"id": user(n), "user_name": format!("p{n}"), "email": email(n), "given_name": "P",
                   "family_name": n.to_string(), "title": "Engineer", "workspaces": ["T0000AAAA"]})
        })
        .chain(std::iter::once(json!({"id": "W99999999", "user_name": "gitops", "email": "gitops@bench.example",
            "workspaces": ["T0000AAAA"], "admin": true})))
        .collect();
    // Slack's usergroups are off by one for the first 2,000 people: ~20 removals and ~20
    // additions a group, plus the joiners and leavers.
    let usergroups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            let members: Vec<String> = (0..IN_SLACK)
                .filter(|&n| if n < 2000 { (n + 1) % GROUPS == g } else { n % GROUPS == g })
                .map(user)
                .collect();
            json!({"id": format!("S{g:08}"), "workspace": "T0000AAAA", "handle": format!("team-{g}"),
                   "name": format!("Team {g}"), "users": members})
        })
        .collect();
    // Channels hold only the people from 3,000 on: the rest are invited. The kicking
    // ones also hold 5 people no rule lists.
    let channels: Vec<Value> = (0..CHANNELS)
        .map(|c| {
            let mut members: Vec<String> = (3000..IN_SLACK - LEAVERS)
                .filter(|&n| in_team(n, c) || in_team(n, (c + 50) % GROUPS))
                .map(user)
                .collect();
            if c < KICKING {
                members.extend((0..5).map(|k| user(4000 + c * 7 + k * 3 + 1)));
            }
            members.push("W99999999".into());
            json!({"id": format!("C{c:08}"), "workspace": "T0000AAAA", "name": format!("chan-{c}"), "members": members})
        })
        .collect();
    let scopes = [
        "admin",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "usergroups:write",
        "channels:read",
        "groups:read",
        "channels:manage",
        "groups:write",
        "channels:write.invites",
        "groups:write.invites",
        "admin.users:read",
        "admin.users:write",
    ];
    let seed = json!({
        "enterprise": {"id": "E0000BENCH", "name": "Bench"},
        "workspaces": [{"id": "T0000AAAA", "name": "A", "domain": "a"}],
        "users": users, "usergroups": usergroups, "channels": channels,
        "tokens": [{"token": "xoxp-bench", "kind": "user", "user": "W99999999", "org_level": true, "scopes": scopes}],
    });
    World::from_json(&seed.to_string()).unwrap()
}

/// The config repository and identity export, written under `dir`.
fn write_config(dir: &Path) {
    let people: Vec<Value> = (0..IN_SLACK - LEAVERS)
        .chain(IN_SLACK..IN_SLACK + JOINERS)
        .map(|n| {
            let title = if n < RETITLED { "Staff Engineer" } else { "Engineer" };
            json!({"email": email(n), "given_name": "P", "family_name": n.to_string(), "title": title, "status": "active"})
        })
        .collect();
    let mut groups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            let members: Vec<String> = (0..IN_SLACK + JOINERS)
                .filter(|&n| in_team(n, g))
                .map(email)
                .collect();
            json!({"name": format!("team-{g}"), "members": members})
        })
        .collect();
    groups.push(json!({"name": "everyone", "groups": (0..GROUPS).map(|g| format!("team-{g}")).collect::<Vec<_>>(),
                       "members": ["gitops@bench.example"]}));
    std::fs::write(
        dir.join("directory.json"),
        json!({"people": people, "groups": groups}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("slack-gitops.yaml"),
        "apiVersion: slack-gitops/v1\nkind: Config\nslack:\n  plan: enterprise-grid\n  workspaces: { main: T0000AAAA }\nidentity:\n  source: file\n  path: directory.json\nusers:\n  provisioning: eager\n  scope: [everyone]\n",
    )
    .unwrap();
    let mut mappings = String::from("apiVersion: slack-gitops/v1\nkind: Mappings\nusergroups:\n");
    for g in 0..GROUPS {
        mappings.push_str(&format!(
            "  - handle: team-{g}\n    name: Team {g}\n    workspaces: [main]\n    members: {{ groups: [team-{g}] }}\n"
        ));
    }
    mappings.push_str("channels:\n");
    for c in 0..CHANNELS {
        mappings.push_str(&format!(
            "  - name: chan-{c}\n    workspace: main\n    members: {{ groups: [team-{c}, team-{}], users: [gitops@bench.example] }}\n    remove_unlisted: {}\n",
            (c + 50) % GROUPS,
            c < KICKING
        ));
    }
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::write(dir.join("mappings/all.yaml"), mappings).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/limits.yaml"),
        "apiVersion: slack-gitops/v1\nkind: Policy\nlimits:\n  deactivate: { max: 1000 }\n  remove_from_usergroup: { max: 100000 }\n  remove_from_channel: { max: 1000 }\nprotected:\n  users: [gitops@bench.example]\n",
    )
    .unwrap();
}

/// The rate-limit bucket of an action's write and its published rate and the client's
/// burst: (name, calls per minute, burst).
fn bucket(action: &Action) -> (&'static str, f64, f64) {
    use slack_gitops::slack::limits::{Tier, web_tier};
    let web = |method: &'static str| {
        let per_minute = web_tier(method).per_minute();
        (method, per_minute, (per_minute / 4.0).max(1.0))
    };
    match action {
        Action::CreateUser { .. } => ("SCIM POST /Users", 180.0, 20.0),
        Action::ReactivateUser { .. }
        | Action::UpdateProfile { .. }
        | Action::DeactivateUser { .. } => ("SCIM PATCH /Users/{id}", 180.0, 20.0),
        Action::AssignWorkspace { .. } => web("admin.users.assign"),
        Action::SetUsergroupMembers { .. } => web("usergroups.users.update"),
        Action::InviteToChannel { .. } => web("conversations.invite"),
        Action::KickFromChannel { .. } => web("conversations.kick"),
        Action::ResetSessions { .. } => web("admin.users.session.reset"),
        _ => ("other", Tier::Tier2.per_minute(), 5.0),
    }
}

/// The plan's floor in emulated seconds: per run of one kind, the calls beyond the burst
/// at the bucket's rate; runs follow one another.
fn floor_seconds(actions: &[Action]) -> (f64, BTreeMap<&'static str, usize>) {
    let mut floor = 0.0;
    let mut mix = BTreeMap::new();
    let mut start = 0;
    while start < actions.len() {
        let (name, per_minute, burst) = bucket(&actions[start]);
        let end = actions[start..]
            .iter()
            .position(|a| bucket(a).0 != name)
            .map_or(actions.len(), |n| start + n);
        let calls = end - start;
        *mix.entry(name).or_insert(0) += calls;
        floor += (calls as f64 - burst).max(0.0) * 60.0 / per_minute;
        start = end;
    }
    (floor, mix)
}

struct Run {
    /// The first few failures, for the report.
    failures: Vec<String>,
    wall: Duration,
    rate_limited: u64,
    actions: usize,
    changes: usize,
    failed: usize,
    floor: f64,
    mix: BTreeMap<&'static str, usize>,
}

/// One apply: a fresh emulator, plan, then the executor against a fresh store.
fn apply_once(runtime: &tokio::runtime::Runtime, config: &Path, seed: &World) -> Run {
    let state = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let emulator = Emulator::new(
            seed.clone(),
            Options {
                time_scale: SCALE,
                ..Options::default()
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(emulator::serve(listener, emulator.clone(), async move {
            let _ = stopped.await;
        }));
        let options = ConnectOptions {
            slack_url: Some(base),
            time_scale: SCALE,
            ..ConnectOptions::default()
        };
        let environment =
            |name: &str| (name == "SLACK_ADMIN_TOKEN").then(|| "xoxp-bench".to_string());
        let connection = pipeline::connect(config, &options, &environment).unwrap();
        let planned = pipeline::plan_org(&connection, &Baseline::default())
            .await
            .unwrap();
        let actions = &planned.plan.actions;
        let (floor, mix) = floor_seconds(actions);
        let tally = slack_gitops::render::plan::tally(&planned.plan);
        let changes = tally.create
            + tally.deactivate
            + tally.usergroup_adds
            + tally.usergroup_removes
            + tally.channel_invites
            + tally.channel_removals
            + tally.profile_updates
            + tally.workspace_assignments
            + actions
                .iter()
                .filter(|a| matches!(a, Action::ResetSessions { .. }))
                .count();
        let (store, run_id) = fresh_run(state.path());
        let clock = || 0i64;
        let on_result = |_: &slack_gitops::apply::executor::ActionResult, _: &Action| {};
        let executor = Executor::new(
            Context {
                client: &connection.client,
                store: &store,
                run_id,
                org: "bench",
                commit: None,
                approval: None,
                breaker: Default::default(),
                clock: &clock,
                on_result: &on_result,
                stop: None,
                recheck: false,
            },
            &planned.live,
        );
        let before = connection.client.counts();
        let started = Instant::now();
        let execution = executor.run(actions).await.unwrap();
        let wall = started.elapsed();
        let _ = stop.send(());
        Run {
            failures: execution
                .results
                .iter()
                .filter(|r| !r.outcome.succeeded())
                .take(5)
                .map(|r| format!("{}: {:?}", r.key, r.outcome))
                .collect(),
            wall,
            rate_limited: connection.client.counts().rate_limited - before.rate_limited,
            actions: actions.len(),
            changes,
            failed: execution
                .results
                .iter()
                .filter(|r| !r.outcome.succeeded())
                .count(),
            floor,
            mix,
        }
    })
}

/// A new store in `dir` with one run begun.
fn fresh_run(dir: &Path) -> (Store, i64) {
    let store = Store::open(&dir.join("state.db")).unwrap();
    let run = store
        .begin_run(&slack_gitops::store::NewRun {
            org: "bench",
            kind: "apply",
            commit: None,
            plan_hash: "bench",
            approvals: "[]",
            started_at: 0,
            resumes: None,
        })
        .unwrap();
    (store, run)
}

/// The store's own cost per action: an intent and an outcome, each a durable commit.
fn store_cost(actions: usize) -> Duration {
    let state = tempfile::tempdir().unwrap();
    let (store, run) = fresh_run(state.path());
    let action = r#"{"action":"set_usergroup_members","workspace":"T0000AAAA","handle":"team-1"}"#;
    let started = Instant::now();
    for seq in 0..actions as i64 {
        store
            .intent(run, seq, "set-usergroup-members T/@team-1", action, 0)
            .unwrap();
        store.outcome(run, seq, "done", "", "S00000001", 0).unwrap();
    }
    started.elapsed() / actions as u32
}

fn apply(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    write_config(config.path());
    let seed = world();

    let run = apply_once(&runtime, config.path(), &seed);
    let emulated = run.wall.as_secs_f64() * SCALE;
    let store = store_cost(2_000);
    eprintln!(
        "apply: {} changes in {} actions ({} failed); {:.0} emulated s against a floor of {:.0} emulated s ({:.3}x); \
         {} rate limited; store {:.2} ms per action; call mix {:?}",
        run.changes,
        run.actions,
        run.failed,
        emulated,
        run.floor,
        emulated / run.floor,
        run.rate_limited,
        store.as_secs_f64() * 1000.0,
        run.mix
    );
    assert!(run.failures.is_empty(), "failures: {:?}", run.failures);

    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("10k-changes-time-scale-200", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| apply_once(&runtime, config.path(), &seed).wall)
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
