//! Ten typical Rego policies over the plan of generated orgs of 10k, 50k and 200k people
//! (20,000 nested IdP groups, 5,000 usergroups, channels; live Slack with about 5%
//! drift): the policy input built from the plan, and every policy evaluated in-process.
//! The report line gives the plan's actions, the time to build the input and to evaluate,
//! and the peak memory both add on top of the plan.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "support/org.rs"]
mod org;
use org::{generate, status_kib};

use slack_gitops::rego::{RegoFile, TIME_LIMIT, evaluate, input_text};

/// Ten policies of the kinds teams write: naming, privacy, who may be selected where,
/// removal and deactivation volumes, roles, and a people-set rule over nested groups.
const POLICIES: [(&str, &str); 10] = [
    (
        "handles",
        r##"package bench.handles
deny contains {"id": "bench.handle", "msg": sprintf("@%s is not a team handle", [u.handle]), "file": u.file, "line": u.line} if {
	some u in input.config.usergroups
	not regex.match(`^[a-z][a-z0-9-]*$`, u.handle)
}"##,
    ),
    (
        "descriptions",
        r##"package bench.descriptions
warn contains sprintf("@%s has no description", [u.handle]) if {
	some u in input.config.usergroups
	not u.description
}"##,
    ),
    (
        "legal",
        r##"package bench.legal
deny contains sprintf("#%s must be private", [c.name]) if {
	some c in input.config.channels
	endswith(c.name, "-legal")
	not c.private
}"##,
    ),
    (
        "everyone",
        r##"package bench.everyone
deny contains sprintf("#%s selects everyone but is private", [c.name]) if {
	some c in input.config.channels
	c.private
	"everyone" in c.members.groups
}"##,
    ),
    (
        "kicks",
        r##"package bench.kicks
warn contains sprintf("%d people leave #%s", [n, name]) if {
	some name in {a.channel | some a in input.plan.plan.actions; a.action == "kick_from_channel"}
	n := count([a | some a in input.plan.plan.actions; a.action == "kick_from_channel"; a.channel == name])
	n > 20
}"##,
    ),
    (
        "removals",
        r##"package bench.removals
deny contains sprintf("@%s loses %d members", [a.handle, count(a.removes)]) if {
	some a in input.plan.plan.actions
	a.action == "set_usergroup_members"
	count(a.removes) > 100
}"##,
    ),
    (
        "deactivations",
        r##"package bench.deactivations
deny contains {"id": "bench.mass_deactivation", "msg": sprintf("%d deactivations", [n]), "overridable_by": ["it@org.example"]} if {
	n := count([a | some a in input.plan.plan.actions; a.action == "deactivate_user"])
	n > count(input.identity.people) / 10
}"##,
    ),
    (
        "admins",
        r##"package bench.admins
deny contains sprintf("deactivating admin %s", [a.removal.person.email]) if {
	some a in input.plan.plan.actions
	a.action == "deactivate_user"
	a.removal.person.email in input.live.admins
}"##,
    ),
    (
        "excludes",
        r##"package bench.excludes
warn contains sprintf("@%s excludes %d people by name", [u.handle, count(u.members.exclude_users)]) if {
	some u in input.config.usergroups
	count(u.members.exclude_users) > 10
}"##,
    ),
    (
        "nested",
        r##"package bench.nested
edges[name] := {child | some child in group.groups} if {
	some name, group in input.identity.groups
}
people_of(name) := {email | some g in graph.reachable(edges, {name}); some email in input.identity.groups[g].members}
restricted := people_of("g1")
deny contains sprintf("@%s selects people of g1", [u.handle]) if {
	some u in input.config.usergroups
	some g in u.members.groups
	count(people_of(g) & restricted) > 0
}"##,
    ),
];

fn files() -> Vec<RegoFile> {
    POLICIES
        .iter()
        .map(|(name, text)| RegoFile {
            path: format!("policies/{name}.rego"),
            text: text.to_string(),
        })
        .collect()
}

fn rego(c: &mut Criterion) {
    let mut group = c.benchmark_group("rego");
    group.sample_size(10);
    let files = files();
    for people in [10_000, 50_000, 200_000] {
        let org = generate(people);
        let resolution = org.directory.resolve();
        let desired =
            slack_gitops::plan::desired::desired(&org.repository, &org.directory, &resolution);
        let plan = slack_gitops::plan::diff::plan(&desired, &org.directory, &org.live);
        let identity = slack_gitops::policy::IdentityCounts::of(&desired, &org.directory);
        let verdict =
            slack_gitops::policy::verdict(&plan, &org.live, &org.repository, &identity, None);
        let mappings = desired.mapping_digests();
        let report = slack_gitops::render::plan::PlanReport {
            plan: &plan,
            verdict: &verdict,
            identity: &identity,
            first_run: false,
            mappings: &mappings,
            context: Default::default(),
            policy: None,
        };
        let build = || {
            input_text(
                &org.repository,
                Some(&org.directory),
                Some((slack_gitops::render::plan::policy_plan(&report), &org.live)),
            )
        };
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_kib("VmRSS:");
        let started = Instant::now();
        let document = build();
        let built = started.elapsed();
        let outcome = evaluate(&files, &document, TIME_LIMIT);
        let total = started.elapsed();
        let peak = status_kib("VmHWM:");
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        eprintln!(
            "{people} people: {} actions; input built in {:.0} ms, ten policies evaluated in {:.0} ms \
             ({} findings); peak added over the plan {} MiB",
            plan.actions.len(),
            built.as_secs_f64() * 1e3,
            (total - built).as_secs_f64() * 1e3,
            outcome.findings.len(),
            peak.saturating_sub(before) / 1024,
        );
        let document = build();
        eprintln!("  input as JSON: {} MiB", document.len() / (1024 * 1024));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{people}-people")),
            &document,
            |b, document| b.iter(|| evaluate(&files, document, TIME_LIMIT).findings.len()),
        );
    }
    group.finish();
}

criterion_group!(benches, rego);
criterion_main!(benches);
