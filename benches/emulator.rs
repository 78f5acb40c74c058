//! The emulator's sustained throughput on loopback, so it is never the bottleneck of an
//! end-to-end benchmark. The emulator runs on a single-threaded runtime on its own thread
//! (one core); clients on another runtime keep 64 requests in flight. Rate limits are off:
//! this measures the server, not Slack's tiers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use slack_emulator::{self as emulator, Emulator, Options};

const BATCH: usize = 4_000;
const IN_FLIGHT: usize = 64;

fn start_emulator() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme/slack.json");
    let mut world = emulator::read_world(&path).unwrap();
    world.settings.rate_limits = false;
    let emulator: Arc<Emulator> = Emulator::new(world, Options::default()).unwrap();
    let (address_sender, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            address_sender.send(listener.local_addr().unwrap()).unwrap();
            emulator::serve(listener, emulator, std::future::pending())
                .await
                .unwrap();
        });
    });
    format!("http://{}", address.recv().unwrap())
}

async fn batch(http: &reqwest::Client, base: &str, path: &str) -> Duration {
    let started = Instant::now();
    let per_task = BATCH / IN_FLIGHT;
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let http = http.clone();
        let url = format!("{base}{path}");
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let response = http
                    .get(&url)
                    .bearer_auth("xoxp-acme-admin")
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Keep the call log from growing across iterations.
    http.delete(format!("{base}/_emulator/log"))
        .send()
        .await
        .unwrap();
    started.elapsed()
}

fn throughput(c: &mut Criterion) {
    let base = start_emulator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("emulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, path) in [
        ("users.info", "/api/users.info?user=W00000010"),
        ("auth.test", "/api/auth.test"),
        ("scim-get-user", "/scim/v2/Users/W00000010"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        total += batch(&http, &base, path).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
