//! Planning generated orgs of 10k, 50k and 200k people: 20,000 IdP groups nested up to five
//! deep, 5,000 usergroups, 50,000 channels (scaled down with the org), and live Slack with
//! about 5% drift. Measures resolve + desired + plan + verdict: pure computation.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "support/org.rs"]
mod org;
use org::{Org, generate, status_kib};

/// Times each phase once and measures the peak memory the plan adds over its input, by
/// resetting the kernel's peak-RSS mark (`/proc/self/clear_refs`) before the run.
fn report(people: usize, org: &Org) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let resolution = org.directory.resolve();
    let resolved = start.elapsed();
    let desired =
        slack_gitops::plan::desired::desired(&org.repository, &org.directory, &resolution);
    let desired_at = start.elapsed();
    let plan = slack_gitops::plan::diff::plan(&desired, &org.directory, &org.live);
    let planned = start.elapsed();
    let identity = slack_gitops::policy::IdentityCounts::of(&desired, &org.directory);
    let verdict = slack_gitops::policy::verdict(&plan, &org.live, &org.repository, &identity, None);
    let total = start.elapsed();
    let peak = status_kib("VmHWM:");
    drop(desired);
    drop(resolution);
    let kept = status_kib("VmRSS:").saturating_sub(before);
    eprintln!(
        "{people} people: resolve {:.0} ms, desired {:.0} ms, plan {:.0} ms, verdict {:.0} ms; \
         {} actions; input RSS {} MiB (directory {} MiB, live {} MiB), peak added by \
         planning {} MiB, the plan kept {} MiB ({})",
        resolved.as_secs_f64() * 1e3,
        (desired_at - resolved).as_secs_f64() * 1e3,
        (planned - desired_at).as_secs_f64() * 1e3,
        (total - planned).as_secs_f64() * 1e3,
        plan.actions.len(),
        before / 1024,
        org.directory_kib / 1024,
        org.live_kib / 1024,
        peak.saturating_sub(before) / 1024,
        kept / 1024,
        match verdict {
            slack_gitops::policy::Verdict::Allowed { .. } => "allowed",
            _ => "over a limit",
        }
    );
}

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    for people in [10_000, 50_000, 200_000] {
        let org = generate(people);
        let mut reported = false;
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{people}-people")),
            &org,
            |b, org| {
                if !reported {
                    report(people, org);
                    reported = true;
                }
                b.iter(|| {
                    let resolution = org.directory.resolve();
                    let desired = slack_gitops::plan::desired::desired(
                        &org.repository,
                        &org.directory,
                        &resolution,
                    );
                    let plan = slack_gitops::plan::diff::plan(&desired, &org.directory, &org.live);
                    let identity =
                        slack_gitops::policy::IdentityCounts::of(&desired, &org.directory);
                    let verdict = slack_gitops::policy::verdict(
                        &plan,
                        &org.live,
                        &org.repository,
                        &identity,
                        None,
                    );
                    (plan.actions.len(), verdict)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
