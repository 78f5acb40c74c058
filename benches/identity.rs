//! Reading the identity provider at 10k, 50k and 200k people (1k, 5k and 20k groups,
//! nested, as the other benchmarks generate them) through the Okta and Graph fakes: a
//! full read, and a read from the kept directory after ten changes (members added and
//! removed in groups the config reads, a suspension, a deactivation, a new title); and
//! the leaver fast path's read of the one person an identity event names.
//!
//! The fakes run at time scale 1,000,000, so their rate limits never bind and criterion
//! measures the work itself. What users live with is printed beside it: the calls each
//! read makes and, from them, the least time the read can take at the vendors' published
//! default limits (Okta's per-minute buckets: users 600, a user 2,000, groups 500, the
//! System Log 120; Graph's 8,000 resource units per 10 s for an application in a tenant
//! of more than 500 users).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use slack_emulator::idp::{Idp, Standing, graph, okta};
use slack_gitops::identity::Source;
use slack_gitops::identity::entra::EntraSource;
use slack_gitops::identity::okta::OktaSource;

#[path = "support/org.rs"]
mod org;

const SCALE: f64 = 1_000_000.0;
const SIZES: [usize; 3] = [10_000, 50_000, 200_000];

#[derive(Clone, Copy, Debug)]
enum Provider {
    Okta,
    Entra,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Okta => "okta",
            Provider::Entra => "entra",
        }
    }

    async fn serve(self, idp: Idp) -> String {
        match self {
            Provider::Okta => okta::serve(idp).await,
            Provider::Entra => graph::serve(idp).await,
        }
    }

    fn source(self, base: &str, wanted: &BTreeSet<String>) -> Source {
        match self {
            Provider::Okta => Source::Okta(
                OktaSource::new(base.into(), "token".into()).reading_members_of(wanted.clone()),
            ),
            Provider::Entra => Source::Entra(
                EntraSource::new(
                    "tenant".into(),
                    "client".into(),
                    "secret".into(),
                    Some(base.into()),
                )
                .reading_members_of(wanted.clone()),
            ),
        }
    }

    /// The least seconds the calls can take at the published limits: each bucket's
    /// windows run one after another, buckets side by side.
    fn floor_seconds(self, spent: &BTreeMap<String, u64>) -> f64 {
        spent
            .iter()
            .map(|(bucket, used)| {
                let (limit, window) = match self {
                    Provider::Okta => (
                        okta::BUCKETS
                            .iter()
                            .find(|(b, _)| b == bucket)
                            .map_or(1200, |(_, l)| *l),
                        60.0,
                    ),
                    Provider::Entra => (graph::RESOURCE_UNITS_PER_10S, 10.0),
                };
                (used.div_ceil(limit).saturating_sub(1)) as f64 * window
            })
            .fold(0.0, f64::max)
    }
}

/// Ten changes to people in groups the config reads.
fn ten_changes(
    idp: &Idp,
    directory: &slack_gitops::model::directory::Directory,
    wanted: &BTreeSet<String>,
) {
    let groups: Vec<&slack_gitops::model::directory::Group> = directory
        .groups
        .iter()
        .filter(|g| wanted.contains(&g.name) && g.members.len() >= 2)
        .take(4)
        .collect();
    for pair in groups.chunks(2) {
        let (from, to) = (pair[0], pair[1]);
        idp.remove_member(&from.name, &from.members[0]);
        idp.add_member(&to.name, &from.members[0]);
    }
    idp.add_member(&groups[0].name, &groups[3].members[1]);
    idp.remove_member(&groups[2].name, &groups[2].members[1]);
    let people = &directory.people;
    idp.set_standing(&people[people.len() / 2].email, Standing::Suspended);
    idp.set_standing(&people[people.len() / 3].email, Standing::Deactivated);
    idp.set_title(&people[people.len() / 4].email, "Staff Engineer");
    idp.set_title(&people[people.len() / 5].email, "Principal Engineer");
}

fn identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("identity");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for people in SIZES {
        let generated = org::generate(people);
        let wanted = generated.repository.referenced_groups();
        for provider in [Provider::Okta, Provider::Entra] {
            let idp = Idp::new(&generated.directory, SCALE);
            let base = runtime.block_on(provider.serve(idp.clone()));
            let source = || provider.source(&base, &wanted);
            // One full read and one incremental read, for their calls and floors.
            idp.state().spent.clear();
            let started = Instant::now();
            let full = runtime.block_on(source().read_keeping(None, None)).unwrap();
            let full_wall = started.elapsed();
            let full_spent: BTreeMap<String, u64> = idp.state().spent.drain().collect();
            ten_changes(&idp, &generated.directory, &wanted);
            let kept = full.kept.clone().unwrap();
            let started = Instant::now();
            let incremental = runtime
                .block_on(source().read_keeping(Some(&kept), None))
                .unwrap();
            let incremental_wall = started.elapsed();
            let incremental_spent: BTreeMap<String, u64> = idp.state().spent.drain().collect();
            let fresh = runtime.block_on(source().read()).unwrap();
            assert_eq!(incremental.directory, fresh, "the incremental read differs");
            idp.state().spent.clear();
            eprintln!(
                "{} {people} people, {} groups ({} read): full read {} calls ({full_spent:?}), {:.2} s here, \
                 at least {:.0} s at the published limits; after 10 changes ({}): {} calls \
                 ({incremental_spent:?}), {:.3} s here, at least {:.0} s at the published limits; \
                 kept document {:.1} MB",
                provider.name(),
                generated.directory.groups.len(),
                wanted.len(),
                full.calls,
                full_wall.as_secs_f64(),
                provider.floor_seconds(&full_spent),
                incremental.how.describe(),
                incremental.calls,
                incremental_wall.as_secs_f64(),
                provider.floor_seconds(&incremental_spent),
                kept.len() as f64 / 1e6,
            );
            let leaver = &generated.directory.people[people / 3].email;
            idp.state().spent.clear();
            let person = runtime.block_on(source().read_person(leaver)).unwrap();
            let person_spent: BTreeMap<String, u64> = idp.state().spent.drain().collect();
            assert_eq!(person.map(|d| d.people.len()), Some(1));
            eprintln!(
                "{} {people} people: the leaver fast path reads one person in {person_spent:?}",
                provider.name()
            );
            let label = format!("{}-{people}", provider.name());
            group.bench_function(BenchmarkId::new("leaver-fast-path", &label), |b| {
                b.iter(|| runtime.block_on(source().read_person(leaver)).unwrap())
            });
            if people < 200_000 {
                group.bench_function(BenchmarkId::new("full-read", &label), |b| {
                    b.iter(|| runtime.block_on(source().read_keeping(None, None)).unwrap())
                });
            }
            group.bench_function(BenchmarkId::new("after-10-changes", &label), |b| {
                b.iter(|| {
                    runtime
                        .block_on(source().read_keeping(Some(&kept), None))
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
