//! The access review of generated orgs of 10k, 50k and 200k people (the planning
//! benchmark's org, with a store history of one account grant and one usergroup grant
//! per person): rows streamed to CSV, and the peak memory the review adds over its input,
//! against building every row in memory first.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use slack_gitops::review::{self, Event, History, Input};

#[path = "support/org.rs"]
mod org;
use org::{Org, generate, status_kib};

/// A history as a store keeps it after one converged run.
fn history(org: &Org) -> History {
    let mut events = Vec::new();
    for user in org.live.users.iter().filter(|u| u.active) {
        events.push(Event {
            run: 1,
            at: 1_795_000_000_000,
            email: user.email.clone(),
            entitlement: "account".into(),
            change: "granted".into(),
            commit: Some("c0ffee".into()),
            approval: None,
        });
    }
    let email: std::collections::HashMap<&str, &str> = org
        .live
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.email.as_str()))
        .collect();
    for group in &org.live.usergroups {
        for member in group.members.iter().take(5) {
            if let Some(email) = email.get(member.as_str()) {
                events.push(Event {
                    run: 1,
                    at: 1_795_000_000_000,
                    email: email.to_string(),
                    entitlement: format!("{}/@{}", group.workspace, group.handle),
                    change: "granted".into(),
                    commit: Some("c0ffee".into()),
                    approval: None,
                });
            }
        }
    }
    History {
        events,
        runs: vec![(1, 1_790_000_000_000, Some("c0ffee".into()))],
        leavers: Vec::new(),
    }
}

/// Streams every row to a CSV writer over a sink; returns the row count.
fn stream(input: &Input) -> u64 {
    let mut writer = csv::Writer::from_writer(std::io::sink());
    let mut digest = review::Digest::default();
    let mut rows = 0;
    review::entitlements(input, &mut |row| {
        digest.add(&row);
        writer
            .write_record(slack_gitops::render::review::entitlement_fields(&row))
            .unwrap();
        rows += 1;
    });
    let _ = digest.finish();
    rows
}

fn report(people: usize, input: &Input) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let rows = stream(input);
    let streamed = start.elapsed();
    let streamed_peak = status_kib("VmHWM:").saturating_sub(before);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let built = review::build(input);
    let in_memory = start.elapsed();
    let built_peak = status_kib("VmHWM:").saturating_sub(before);
    eprintln!(
        "{people} people: {rows} entitlement rows streamed to CSV in {:.2} s adding {} MiB at peak; \
         built in memory in {:.2} s adding {} MiB ({} exceptions, {} pending)",
        streamed.as_secs_f64(),
        streamed_peak / 1024,
        in_memory.as_secs_f64(),
        built_peak / 1024,
        built.summary.exceptions,
        built.summary.pending
    );
}

fn export(c: &mut Criterion) {
    let mut group = c.benchmark_group("access-review");
    group.sample_size(10);
    for people in [10_000, 50_000, 200_000] {
        let org = generate(people);
        let resolution = org.directory.resolve();
        let desired =
            slack_gitops::plan::desired::desired(&org.repository, &org.directory, &resolution);
        let history = history(&org);
        let input = Input {
            org: "T0000MAIN",
            commit: "c0ffeec0ffeec0ffee",
            generated_at: 1_796_000_000_000,
            since: 1_790_000_000_000,
            sources: vec!["generated".into()],
            desired: &desired,
            directory: &org.directory,
            live: &org.live,
            history: &history,
            approvals: Vec::new(),
            sla_seconds: Some(4 * 3600),
        };
        report(people, &input);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{people}-people")),
            &input,
            |b, input| b.iter(|| stream(input)),
        );
    }
    group.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
