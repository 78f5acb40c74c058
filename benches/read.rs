//! Reading a generated 50,000-person Grid org from the emulator: wall time against the
//! rate-limit floor, and calls made against the minimum. Both the emulator and the client
//! run at time scale 1,000, so an emulated minute of Slack's limits is 60 real ms.
//!
//! The org: 50,000 people in two workspaces, 500 usergroups of 100, 2,000 channels of
//! which 200 are managed (their members are read), 200 IdP groups.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use slack_emulator::{self as emulator, Emulator, Options, world::World};
use slack_gitops::slack::client::{ClientOptions, SlackClient, Token};
use slack_gitops::slack::reader::{ReadScope, read_live};

const PEOPLE: usize = 50_000;
const SCALE: f64 = 1_000.0;

fn generate() -> World {
    let user = |n: usize| format!("W{n:08}");
    let users: Vec<Value> = (0..PEOPLE)
        .map(|n| {
            json!({"id": user(n), "user_name": format!("person{n}"), "email": format!("person{n}@big.example"),
                   "given_name": "Person", "family_name": n.to_string(), "active": n % 97 != 0,
                   "admin": n < 5, "workspaces": if n % 4 == 0 { json!(["T0000AAAA", "T0000BBBB"]) } else { json!(["T0000AAAA"]) }})
        })
        .collect();
    let usergroups: Vec<Value> = (0..500)
        .map(|g| json!({"id": format!("S{g:08}"), "workspace": "T0000AAAA", "handle": format!("team-{g}"), "name": format!("Team {g}"),
                        "users": (0..100).map(|m| user(g * 100 + m)).collect::<Vec<_>>()}))
        .collect();
    let channels: Vec<Value> = (0..2000)
        .map(|c| json!({"id": format!("C{c:08}"), "workspace": if c % 10 == 0 { "T0000BBBB" } else { "T0000AAAA" }, "name": format!("channel-{c}"),
                        "members": (0..50).map(|m| user((c * 50 + m) % PEOPLE)).chain(std::iter::once(user(1))).collect::<BTreeSet<_>>()}))
        .collect();
    let idp_groups: Vec<Value> = (0..200)
        .map(|g| json!({"id": format!("S1{g:07}"), "name": format!("idp-{g}"), "members": (0..250).map(|m| user(g * 250 + m)).collect::<Vec<_>>()}))
        .collect();
    let scopes = [
        "admin",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "channels:read",
        "groups:read",
        "admin.users:read",
    ];
    let seed = json!({
        "enterprise": {"id": "E0000BIG", "name": "Big Org"},
        "workspaces": [{"id": "T0000AAAA", "name": "A", "domain": "a"}, {"id": "T0000BBBB", "name": "B", "domain": "b"}],
        "users": users, "usergroups": usergroups, "channels": channels, "idp_groups": idp_groups,
        "tokens": [{"token": "xoxp-big", "kind": "user", "user": user(1), "org_level": true, "scopes": scopes}],
    });
    World::from_json(&seed.to_string()).unwrap()
}

fn scope() -> ReadScope {
    ReadScope {
        workspaces: vec!["T0000AAAA".into(), "T0000BBBB".into()],
        managed_channels: (0..2000)
            .step_by(10)
            .map(|c| {
                (
                    if c % 10 == 0 {
                        "T0000BBBB"
                    } else {
                        "T0000AAAA"
                    }
                    .to_string(),
                    format!("channel-{c}"),
                )
            })
            .collect(),
        grid: true,
        channels_matching: Vec::new(),
    }
}

/// The least emulated time the read can take: for each Slack bucket, the calls beyond
/// what the client's burst allows, at the published rate. Buckets run in parallel.
fn floor_seconds(calls_per_method: &[(&str, u64)]) -> f64 {
    calls_per_method
        .iter()
        .map(|(method, calls)| {
            let per_minute = if method.starts_with("SCIM") {
                1000.0
            } else {
                slack_gitops::slack::limits::web_tier(method).per_minute()
            };
            let burst = if method.starts_with("SCIM") {
                1000.0
            } else {
                (per_minute / 4.0).max(1.0)
            };
            (*calls as f64 - burst).max(0.0) * 60.0 / per_minute
        })
        .fold(0.0, f64::max)
}

fn read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = generate();
    let (base, emulator) = runtime.block_on(async {
        let emulator = Emulator::new(
            world,
            Options {
                time_scale: SCALE,
                ..Options::default()
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(emulator::serve(
            listener,
            emulator.clone(),
            std::future::pending(),
        ));
        (base, emulator)
    });
    let client = || {
        SlackClient::new(
            Token::new("xoxp-big"),
            None,
            ClientOptions {
                base_url: Some(base.clone()),
                time_scale: SCALE,
                ..ClientOptions::default()
            },
        )
        .unwrap()
    };

    // One read to report calls and the floor.
    let started = Instant::now();
    let (live, report) = runtime.block_on(read_live(&client(), &scope())).unwrap();
    let wall = started.elapsed();
    let calls = emulator.calls();
    let mut per_method: std::collections::BTreeMap<String, u64> = Default::default();
    for call in &calls {
        let name = if call.call.starts_with("SCIM") {
            "SCIM reads".to_string()
        } else {
            call.call.clone()
        };
        *per_method.entry(name).or_default() += 1;
    }
    let per_method: Vec<(&str, u64)> = per_method.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let floor = floor_seconds(&per_method);
    eprintln!(
        "read {} accounts, {} usergroups, {} channels: {} calls made, {} minimum, {} rate limited; \
         {:.1} emulated s against a floor of {:.1} emulated s; calls per method: {:?}",
        live.users.len(),
        live.usergroups.len(),
        live.channels.len(),
        report.calls,
        report.minimum_calls,
        report.rate_limited,
        wall.as_secs_f64() * SCALE,
        floor,
        per_method
    );

    let mut group = c.benchmark_group("read-live");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("50k-people-time-scale-1000", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let client = client();
                let started = Instant::now();
                runtime.block_on(read_live(&client, &scope())).unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
