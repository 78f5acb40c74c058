//! `import`'s inference on generated orgs of 10k, 50k and 200k people (20,000 IdP groups
//! nested up to five deep, 5,000 usergroups, channels; live Slack with about 5% drift,
//! scaled down with the org): every usergroup and readable channel adopted into an empty
//! repository. Pure computation: the rules found, the YAML written. The report line says
//! how many usergroups' rules are the rules the org was generated from, and the peak
//! memory the import adds over its input.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "support/org.rs"]
mod org;
use org::{Org, generate, status_kib};

use slack_gitops::adopt::{Options, SplitBy, adopt};

fn options() -> Options {
    Options {
        split_by: SplitBy::Prefix,
        only: Vec::new(),
        taken: Default::default(),
        protect: Vec::new(),
    }
}

/// The org's repository without its mappings and policies: what an adoption starts from.
fn bare(org: &Org) -> slack_gitops::config::Repository {
    let mut repository = org.repository.clone();
    repository.mappings.clear();
    repository.policies.clear();
    repository
}

/// Times one import, measures the peak memory it adds (the kernel's peak-RSS mark reset
/// through `/proc/self/clear_refs`), and compares the rules found with the generating ones.
fn report(people: usize, org: &Org) {
    let repository = bare(org);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let adoption = adopt(&repository, &org.directory, &org.live, &options());
    let took = start.elapsed();
    let peak = status_kib("VmHWM:");
    let generating: std::collections::BTreeMap<String, Vec<String>> = org
        .repository
        .mappings
        .iter()
        .flat_map(|f| f.value.usergroups.iter())
        .map(|u| (format!("@{}", u.handle.as_str()), u.members.groups.clone()))
        .collect();
    let report = &adoption.report;
    let same = report
        .usergroups
        .iter()
        .filter(|u| generating.get(&u.target) == Some(&u.groups) && u.exclude.is_empty())
        .count();
    let bytes: usize = adoption.files.iter().map(|(_, text)| text.len()).sum();
    eprintln!(
        "{people} people: import {:.0} ms; {} usergroups imported, {same} with the rule \
         they were generated from ({} generated); {} channels imported, {} left unmanaged; \
         {} files, {} KiB of YAML; input RSS {} MiB, peak added by the import {} MiB",
        took.as_secs_f64() * 1e3,
        report.usergroups.len(),
        generating.len(),
        report.channels.len(),
        report.unmanaged.len(),
        adoption.files.len(),
        bytes / 1024,
        before / 1024,
        peak.saturating_sub(before) / 1024,
    );
}

fn import(c: &mut Criterion) {
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    for people in [10_000, 50_000, 200_000] {
        let org = generate(people);
        let repository = bare(&org);
        report(people, &org);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{people}-people")),
            &org,
            |b, org| {
                b.iter(|| {
                    adopt(&repository, &org.directory, &org.live, &options())
                        .files
                        .len()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
