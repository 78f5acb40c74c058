//! `slack-gitops controller` through the real binary: a bare git repository in a temp dir
//! is the remote, the emulator is Slack. It converges at start; a signed push webhook gets
//! a new commit applied within seconds; a commit on another branch is ignored; a broken
//! commit is reported and the previous one stays in force; a bad signature is 401 and
//! changes nothing; drift is reported; `/metrics`, `/readyz`, `/livez`, `/status` answer;
//! SIGTERM exits 0.

use crate::common;
use crate::common::git_servers;

use std::time::{Duration, Instant};

use crate::common::controller::{Controller, SECRET};
use crate::common::org::{Org, commit, git};
use serde_json::Value;

/// The newest sync that applied (or tried to apply) a commit, not a drift report. The
/// webhook, the poll and the drift tick (which fetches too) race for a pushed commit;
/// whichever wins applies it, once.
fn sync_of<'a>(status: &'a Value, commit: &str) -> Option<&'a Value> {
    status["last_syncs"].as_array().unwrap().iter().find(|s| {
        s["commit"] == commit
            && !matches!(s["outcome"].as_str(), Some("drift-reported" | "no-change"))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_applies_merged_commits_reports_drift_and_stops_cleanly() {
    let org = Org::new(|_| {}).await;
    // Digests go to #leadership, where the bot is.
    let config = org.repo.join("slack-gitops.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}notify: {{ channel: \"#leadership\" }}\n"),
    )
    .unwrap();
    commit(&org.repo, "notify #leadership");
    let remote = org.bare_remote();
    let first = git(&org.repo, &["rev-parse", "HEAD"]);

    let mut controller = Controller::start(&org, &remote).await;
    controller
        .wait("converging at start", |s| {
            s["commit_in_force"] == first.as_str() && s["last_syncs"][0]["outcome"] != "failed"
        })
        .await;
    let world = org.world().await;
    assert!(
        world
            .users
            .iter()
            .any(|u| u.email == "evelyn.dijkstra@acme.example" && u.active)
    );
    assert_eq!(controller.get("/livez").await.0, 200);
    assert_eq!(controller.get("/readyz").await.0, 200);

    // A bad signature is 401 and syncs nothing.
    assert_eq!(controller.push_hook("wrong secret").await, 401);

    // A commit on another branch is not applied.
    git(&org.repo, &["checkout", "-q", "-b", "feature"]);
    let mapping = org.repo.join("mappings/engineering.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace("name: Mobile\n", "name: Mobile Feature\n"),
    )
    .unwrap();
    commit(&org.repo, "feature work");
    git(&org.repo, &["push", "-q", "origin", "feature"]);
    git(&org.repo, &["checkout", "-q", "main"]);

    // A merged commit is applied within seconds of its webhook.
    common::org::rename_mobile(&org.repo);
    let second = commit(&org.repo, "rename @mobile");
    git(&org.repo, &["push", "-q", "origin", "main"]);
    let pushed = Instant::now();
    assert_eq!(controller.push_hook(SECRET).await, 202);
    let status = controller
        .wait("the pushed commit in force", |s| {
            s["commit_in_force"] == second.as_str()
        })
        .await;
    let latency = pushed.elapsed();
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    assert_eq!(
        sync_of(&status, &second).unwrap()["outcome"],
        "converged",
        "{status:#}"
    );
    let names: Vec<String> = org
        .world()
        .await
        .usergroups
        .iter()
        .filter(|g| g.handle == "mobile")
        .map(|g| g.name.clone())
        .collect();
    assert_eq!(names, ["Mobile Apps"]);

    // A broken commit is reported, and the previous one stays in force.
    std::fs::write(
        &mapping,
        "apiVersion: slack-gitops/v1\nkind: Mappings\nusergroups: [\n",
    )
    .unwrap();
    let broken = commit(&org.repo, "broken yaml");
    git(&org.repo, &["push", "-q", "origin", "main"]);
    assert_eq!(controller.push_hook(SECRET).await, 202);
    let status = controller
        .wait("the broken commit reported", |s| {
            s["seen_commit"] == broken.as_str() && sync_of(s, &broken).is_some()
        })
        .await;
    assert_eq!(
        sync_of(&status, &broken).unwrap()["outcome"],
        "failed",
        "{status:#}"
    );
    assert!(
        sync_of(&status, &broken).unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("not a valid config repository")
    );
    assert_eq!(status["commit_in_force"], second.as_str());

    // Drift: a member added by hand is reported (policy: report) and left in place.
    let hand = org.add_by_hand("mobile", "ada.clarke@acme.example").await;
    let status = controller
        .wait("the drift reported", |s| {
            s["drift"].as_object().is_some_and(|d| !d.is_empty())
        })
        .await;
    // The commit in force is the baseline: a member its mappings do not select was
    // added by hand.
    assert!(
        status["drift"]["manual_add"].as_u64().unwrap_or(0) >= 1,
        "{status:#}"
    );
    let (code, metrics) = controller.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(status["next_drift_tick"].is_string(), "{status:#}");
    assert!(status["locks"].is_array(), "{status:#}");
    assert!(
        metrics.contains("slack_gitops_drift{kind=\"manual_add\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("slack_gitops_syncs_total{trigger=\"start\",outcome=\"converged\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE slack_gitops_deactivation_latency_seconds histogram"));
    promtool_accepts(&metrics);
    exports_what_is_queried(&metrics);
    let world = org.world().await;
    let mobile = world
        .usergroups
        .iter()
        .find(|g| g.handle == "mobile")
        .unwrap();
    assert!(mobile.users.contains(&hand), "report must not correct");

    // Digests: the first apply, the rename, the broken commit's failure (through the
    // `notify:` of the commit in force: its own cannot be read), and the drift once, not
    // every tick.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages: Vec<String> = org
        .world()
        .await
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    let drift_posts = messages
        .iter()
        .filter(|t| t.contains("Drift found"))
        .count();
    assert_eq!(drift_posts, 1, "{messages:#?}");
    let failure_posts: Vec<&String> = messages
        .iter()
        .filter(|t| t.contains("Sync failed at"))
        .collect();
    assert_eq!(failure_posts.len(), 1, "{messages:#?}");
    assert!(
        failure_posts[0].contains(&broken[..12]),
        "{failure_posts:?}"
    );
    assert!(
        messages
            .iter()
            .filter(|t| t.contains("Converged at"))
            .count()
            >= 2,
        "{messages:#?}"
    );
    let world = org.world().await;
    let leadership = world
        .channels
        .iter()
        .find(|c| c.name == "leadership")
        .unwrap();
    assert!(world.messages.iter().all(|m| m.channel == leadership.id));
    assert!(
        world.messages[0]
            .blocks
            .as_array()
            .is_some_and(|b| b.len() >= 3)
    );

    // Under `correct`, a drift tick heals it: a merge converges everything (the member
    // goes), and a member added by hand again goes at the next tick.
    // The broken mappings go back to the second commit's.
    git(
        &org.repo,
        &["checkout", "-q", &second, "--", "mappings/engineering.yaml"],
    );
    let policy = org.repo.join("policies/guardrails.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace(
            "drift: { every: 15m, action: report }",
            "drift: { every: 15m, action: correct }",
        ),
    )
    .unwrap();
    let third = commit(&org.repo, "correct drift");
    git(&org.repo, &["push", "-q", "origin", "main"]);
    assert_eq!(controller.push_hook(SECRET).await, 202);
    controller
        .wait("the correcting commit in force", |s| {
            s["commit_in_force"] == third.as_str()
        })
        .await;
    let in_mobile = |world: &slack_emulator::world::World| {
        let mobile = world
            .usergroups
            .iter()
            .find(|g| g.handle == "mobile")
            .unwrap();
        mobile.users.clone()
    };
    let users = in_mobile(&org.world().await);
    assert!(!users.contains(&hand), "the merge did not converge");
    org.add_by_hand("mobile", "ada.clarke@acme.example").await;
    let started = Instant::now();
    while in_mobile(&org.world().await).contains(&hand) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the drift tick did not correct"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    controller
        .wait("the drift tick's sync recorded", |status| {
            status["last_syncs"].as_array().unwrap().iter().any(|s| {
                s["trigger"] == "drift" && s["outcome"] == "converged" && s["actions"] == 1
            })
        })
        .await;

    // SIGTERM: exits 0.
    let pid = controller.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), controller.child.wait())
        .await
        .expect("the controller stops within 10 s")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

/// Every metric the shipped alerts and Grafana dashboard query is one `/metrics` declares
/// (a counter's samples end in `_total`, a histogram's in `_bucket`, `_count`, `_sum`).
fn exports_what_is_queried(metrics: &str) {
    let families: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for name in crate::deploy::queried_metrics() {
        let exported = families.iter().any(|family| {
            ["", "_total", "_bucket", "_count", "_sum"]
                .iter()
                .any(|suffix| name == format!("{family}{suffix}"))
        });
        assert!(exported, "{name} is queried but not exported:\n{metrics}");
    }
}

/// `promtool check metrics` (the distribution's `prometheus` package) accepts the text.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed: apt-get install prometheus (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A signed identity event.
pub(crate) async fn identity_hook(controller: &Controller, secret: &str, body: &[u8]) -> u16 {
    controller
        .http
        .post(format!("{}/hooks/identity", controller.base))
        .header(
            "X-Signature-256",
            slack_gitops::controller::http::sign(secret, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Copies the identity export outside the repository, as an HR system's would be: it
/// changes without a commit, and the controller is pointed at it by the operator
/// (`SLACK_GITOPS_IDENTITY_EXPORT`). Returns its path.
pub(crate) fn hr_export(org: &Org) -> std::path::PathBuf {
    let export = org.temp.path().join("hr-export.yaml");
    std::fs::copy(org.repo.join("identity/directory.yaml"), &export).unwrap();
    export
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drift_kind_set_to_correct_is_corrected_and_the_others_only_reported() {
    let org = Org::new(|_| {}).await;
    let export = hr_export(&org);
    let policy = org.repo.join("policies/guardrails.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace(
            "drift: { every: 15m, action: report }",
            "drift: { every: 15m, action: report, correct: [missed_deprovision] }",
        ),
    )
    .unwrap();
    commit(
        &org.repo,
        "missed deprovisions are corrected between merges",
    );
    let remote = org.bare_remote();
    let controller = Controller::start_with(
        &org,
        &remote,
        &[("SLACK_GITOPS_IDENTITY_EXPORT", export.to_str().unwrap())],
    )
    .await;
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;

    // Two kinds of drift, no commit: a member added by hand and a leaver in the HR
    // export that no event announced.
    let hand = org.add_by_hand("mobile", "ada.clarke@acme.example").await;
    let leaver = "ada.liskov@acme.example";
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, common::suspend(&text, leaver)).unwrap();

    // The drift tick deactivates the leaver and leaves the hand-added member.
    let status = controller
        .wait("the drift tick's correction", |s| {
            s["last_syncs"].as_array().unwrap().iter().any(|s| {
                s["trigger"] == "drift" && s["outcome"] == "converged" && s["actions"] != 0
            })
        })
        .await;
    let world = org.world().await;
    let user = world.users.iter().find(|u| u.email == leaver).unwrap();
    assert!(!user.active, "the missed deprovision was not corrected");
    assert!(world.session_resets.iter().any(|r| r.user == user.id));
    let mobile = world
        .usergroups
        .iter()
        .find(|g| g.handle == "mobile")
        .unwrap();
    assert!(
        mobile.users.contains(&hand),
        "manual adds are only reported"
    );
    // Both were reported before the correction.
    let reported = status["last_syncs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["outcome"] == "drift-reported")
        .unwrap_or_else(|| panic!("no drift report: {status:#}"));
    assert!(
        reported["detail"]
            .as_str()
            .unwrap()
            .contains("1 to deactivate"),
        "{reported:#}"
    );
    // The next ticks report the hand-added member alone, and never touch it.
    controller
        .wait("the manual add reported alone", |s| {
            s["drift"]["manual_add"] == 1 && s["drift"].get("missed_deprovision").is_none()
        })
        .await;
    let world = org.world().await;
    let mobile = world
        .usergroups
        .iter()
        .find(|g| g.handle == "mobile")
        .unwrap();
    assert!(
        mobile.users.contains(&hand),
        "manual adds are only reported"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_identity_event_deactivates_a_leaver_within_seconds() {
    let org = Org::new(|_| {}).await;
    let export = hr_export(&org);
    let remote = org.bare_remote();
    let controller = Controller::converged_with_identity(&org, &remote, &export).await;

    // An unsigned or wrongly signed event is 401 and changes nothing.
    let leaver = "ada.liskov@acme.example";
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, common::suspend(&text, leaver)).unwrap();
    let event = format!(r#"{{"email":"{leaver}","event":"deactivated"}}"#);
    assert_eq!(
        identity_hook(&controller, "wrong", event.as_bytes()).await,
        401
    );
    let active = |world: &slack_emulator::world::World| {
        world
            .users
            .iter()
            .find(|u| u.email == leaver)
            .unwrap()
            .active
    };
    assert!(active(&org.world().await));

    // Signed: deactivated and signed out within seconds, not a polling interval.
    let sent = Instant::now();
    assert_eq!(
        identity_hook(&controller, "idp-secret", event.as_bytes()).await,
        202
    );
    loop {
        let world = org.world().await;
        let user = world.users.iter().find(|u| u.email == leaver).unwrap();
        if !user.active && world.session_resets.iter().any(|r| r.user == user.id) {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "not deactivated yet"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let real = sent.elapsed();
    eprintln!(
        "identity event to deactivated and signed out: {:.0} ms (the emulator's pacing scaled {}x)",
        real.as_secs_f64() * 1000.0,
        common::org::TIME_SCALE
    );
    assert!(real < Duration::from_secs(5));
    // The leaver alone first, then the full sync that removes the rest of their access.
    let status = controller
        .wait("the identity syncs recorded", |s| {
            s["last_syncs"][0]["trigger"] == "identity-event"
                && s["last_syncs"][1]["trigger"] == "identity-event"
        })
        .await;
    let leaver_sync = &status["last_syncs"][1];
    assert_eq!(leaver_sync["outcome"], "converged", "{status:#}");
    assert_eq!(leaver_sync["actions"], 2, "{status:#}");
    assert!(leaver_sync["detail"].as_str().unwrap().contains(leaver));
    let (_, metrics) = controller.get("/metrics").await;
    assert!(
        metrics.contains(
            "slack_gitops_syncs_total{trigger=\"identity-event\",outcome=\"converged\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("slack_gitops_deactivation_latency_seconds_count 4"),
        "{metrics}"
    );
    // The bucket the documented SLA alert selects, as the exporter writes its bound.
    assert!(
        metrics.contains("slack_gitops_deactivation_latency_seconds_bucket{le=\"16384.0\"}"),
        "{metrics}"
    );

    // An identity outage: not ready, and nobody is deactivated for it.
    let inactive =
        |world: &slack_emulator::world::World| world.users.iter().filter(|u| !u.active).count();
    let before = inactive(&org.world().await);
    std::fs::remove_file(&export).unwrap();
    let another = r#"{"email":"grace.bernerslee@acme.example","event":"deactivated"}"#;
    assert_eq!(
        identity_hook(&controller, "idp-secret", another.as_bytes()).await,
        202
    );
    let status = controller
        .wait("the outage noticed", |s| s["ready"] == false)
        .await;
    assert!(
        status["ready_detail"]
            .as_str()
            .unwrap()
            .contains("hr-export.yaml"),
        "{status:#}"
    );
    let (code, _) = controller.get("/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(
        inactive(&org.world().await),
        before,
        "an outage deactivated someone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_sync_stops_cleanly_and_a_restart_finishes_without_writing_twice() {
    let reference = common::org::clean_apply_writes().await;
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    // Every write takes 20 real ms, so the sync is mid-way when SIGTERM comes.
    org.slow_writes(20).await;
    let log = org.temp.path().join("controller.log");
    let mut controller = Controller::start_logged(&org, &remote, &log).await;
    let started = Instant::now();
    loop {
        let writes: usize = common::org::applied_writes(&org.calls().await)
            .values()
            .sum();
        if writes >= 12 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sync never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = controller.child.id().unwrap();
    // `/status` names the lock holder mid-sync.
    let status = controller.status().await;
    assert!(
        status["locks"][0]["holder"]
            .as_str()
            .is_some_and(|h| h.starts_with("controller ")
                && h.ends_with(&format!("(pid {pid}, generation 1)"))),
        "{status:#}"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let stopping = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(10), controller.child.wait())
        .await
        .expect("the controller stops within 10 s")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    eprintln!("stopped {:?} after SIGTERM", stopping.elapsed());
    let partial: usize = common::org::applied_writes(&org.calls().await)
        .values()
        .sum();
    let total: usize = reference.values().sum();
    assert!(partial < total, "the sync had finished before SIGTERM");
    // The log is JSON lines, one per decision, and carries no token.
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "new commit on the protected branch"),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stopping"))),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    assert!(
        !log.contains(&org.admin) && !log.contains(&org.bot),
        "a token was logged"
    );

    // Restarted, it finishes the job: the writes are a clean run's, none twice.
    org.clear_faults().await;
    let controller = Controller::start(&org, &remote).await;
    controller
        .wait("converging after the restart", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    assert_eq!(common::org::applied_writes(&org.calls().await), reference);
}

/// Starts a controller on `repo` (a URL) with its own clone in `clone`, logging to `log`.
async fn start_on_url(
    org: &Org,
    repo: &str,
    clone: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Controller {
    let mut all = vec!["--workdir", clone.to_str().unwrap()];
    all.extend_from_slice(args);
    let file = std::fs::File::create(log).unwrap();
    Controller::spawn(org, repo.as_ref(), env, &all, file.into()).await
}

/// Starts a controller on `repo` that must not be able to clone it: it exits 1 and its
/// log says `why`. Returns the log.
async fn refused_clone(
    org: &Org,
    repo: &str,
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
    why: &str,
) -> String {
    let dir = org.temp.path();
    let log = dir.join(format!("{name}.log"));
    let mut controller = start_on_url(
        org,
        repo,
        &dir.join(format!("clone-{name}")),
        &log,
        env,
        args,
    )
    .await;
    let code = tokio::time::timeout(Duration::from_secs(20), controller.child.wait())
        .await
        .expect("a controller that cannot clone exits")
        .unwrap()
        .code();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(why), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_clones_over_https_with_a_token_and_refuses_a_bad_one_or_an_unknown_ca() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let token = "ghs_the-right-token-7f3a";
    let server =
        git_servers::GitHttps::start(remote.parent().unwrap(), token, org.temp.path()).await;
    let url = format!("{}/remote.git", server.base);
    let ca = server.ca.to_str().unwrap();
    let dir = org.temp.path();

    // A wrong token: the clone fails, the controller says why and exits; no token leaks.
    let wrong = [
        ("SLACK_GITOPS_GIT_TOKEN", "ghs_a-wrong-token-0000"),
        ("SSL_CERT_FILE", ca),
    ];
    let text = refused_clone(
        &org,
        &url,
        "wrong-token",
        &wrong,
        &[],
        "refused the credentials",
    )
    .await;
    assert!(!text.contains("ghs_a-wrong-token"), "{text}");

    // A certificate no trusted CA signed: refused before any credential is sent.
    let no_ca = [("SLACK_GITOPS_GIT_TOKEN", token)];
    refused_clone(&org, &url, "unknown-ca", &no_ca, &[], "certificate").await;

    // The right token and CA: cloned over HTTPS, converged, and a new commit fetched.
    let controller = start_on_url(
        &org,
        &url,
        &dir.join("clone-https"),
        &dir.join("https.log"),
        &[("SLACK_GITOPS_GIT_TOKEN", token), ("SSL_CERT_FILE", ca)],
        &[],
    )
    .await;
    let first = git(&org.repo, &["rev-parse", "HEAD"]);
    controller
        .wait("converging from the HTTPS remote", |s| {
            s["commit_in_force"] == first.as_str() && s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    common::org::rename_mobile(&org.repo);
    let second = commit(&org.repo, "rename @mobile");
    git(&org.repo, &["push", "-q", "origin", "main"]);
    assert_eq!(controller.push_hook(SECRET).await, 202);
    controller
        .wait("the pushed commit fetched over HTTPS", |s| {
            s["commit_in_force"] == second.as_str()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_clones_over_ssh_with_a_key_and_refuses_an_unknown_host_key() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let dir = org.temp.path();
    let sshd_dir = dir.join("sshd");
    std::fs::create_dir_all(&sshd_dir).unwrap();
    let sshd = git_servers::Sshd::start(&sshd_dir);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        remote.display()
    );
    let key = sshd.key.to_str().unwrap();

    // A host key that is not in known_hosts: refused, never trusted on first use.
    let stranger = dir.join("known_hosts_other");
    std::fs::write(
        &stranger,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            sshd.port
        ),
    )
    .unwrap();
    let stranger_args = [
        "--ssh-key",
        key,
        "--known-hosts",
        stranger.to_str().unwrap(),
    ];
    refused_clone(&org, &url, "unknown-host", &[], &stranger_args, "is not in").await;

    // The key and the server's host key: cloned over SSH and converged.
    let controller = start_on_url(
        &org,
        &url,
        &dir.join("clone-ssh"),
        &dir.join("ssh.log"),
        &[],
        &[
            "--ssh-key",
            key,
            "--known-hosts",
            sshd.known_hosts.to_str().unwrap(),
        ],
    )
    .await;
    let first = git(&org.repo, &["rev-parse", "HEAD"]);
    controller
        .wait("converging from the SSH remote", |s| {
            s["commit_in_force"] == first.as_str() && s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
}

/// A remote that goes away does not make the controller spin: fetches back off, the
/// outage is logged once when it begins and once when it ends, `/readyz`, `/status` and
/// `/metrics` say so, drift ticks go on with the commit in force, and a commit pushed
/// while it was away is applied once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_outage_backs_off_is_reported_once_and_recovers() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let log = org.temp.path().join("controller.log");
    let controller = Controller::start_logged(&org, &remote, &log).await;
    let first = git(&org.repo, &["rev-parse", "HEAD"]);
    controller
        .wait("converging at start", |s| {
            s["commit_in_force"] == first.as_str()
        })
        .await;

    // The remote goes away for three seconds: over three drift ticks (15m at a time
    // scale of 1,000 is 0.9 s) and six polls.
    let away = org.temp.path().join("remote.git.away");
    std::fs::rename(&remote, &away).unwrap();
    let status = controller
        .wait("the outage noticed", |s| {
            s["remote"]["unreachable_since"].is_string()
        })
        .await;
    assert!(status["remote"]["last_error"].is_string(), "{status:#}");
    let (code, body) = controller.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cannot fetch"), "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = controller.get("/metrics").await;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("slack_gitops_git_fetch_failures_total "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    // Without backoff: tens of thousands of fetches in three seconds.
    assert!((1..=15).contains(&failures), "{failures} fetches failed");
    assert!(
        metrics.contains("slack_gitops_git_remote_up 0"),
        "{metrics}"
    );
    let status = controller.status().await;
    let failed = status["last_syncs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "failed")
        .count();
    assert_eq!(failed, 1, "the outage is recorded once: {status:#}");
    // Drift ticks went on against the commit in force.
    assert!(
        status["last_syncs"][0]["outcome"] == "drift-reported"
            || status["last_syncs"][0]["outcome"] == "no-change",
        "{status:#}"
    );

    // Back, with a commit merged meanwhile.
    std::fs::rename(&away, &remote).unwrap();
    common::org::rename_mobile(&org.repo);
    let second = org.merge("rename @mobile");
    assert_eq!(controller.push_hook(SECRET).await, 202);
    controller
        .wait("the commit pushed during the outage applied", |s| {
            s["commit_in_force"] == second.as_str() && s["remote"]["unreachable_since"].is_null()
        })
        .await;
    assert_eq!(controller.get("/readyz").await.0, 200);
    let log = std::fs::read_to_string(&log).unwrap();
    let said = |message: &str| log.lines().filter(|l| l.contains(message)).count();
    assert_eq!(said("fetch failed; retrying with backoff"), 1, "{log}");
    assert_eq!(said("the remote answers again"), 1, "{log}");
    assert!(
        log.lines().count() < 200,
        "{} log lines",
        log.lines().count()
    );
}

/// The controller's resident memory, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// The webhook port is exposed to anyone: it serves the webhooks alone (`/status` and
/// `/metrics` are on the admin port), unsigned bodies cannot fill memory, idle
/// connections cannot use up file descriptors, Okta's verification `GET` works, and a
/// thousand copies of one identity event make one leaver run.
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_port_holds_under_a_flood() {
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let controller = Controller::spawn(
        &org,
        remote.as_os_str(),
        &[("SLACK_GITOPS_IDENTITY_WEBHOOK_SECRET", "idp-secret")],
        &["--admin-listen", "127.0.0.1:0"],
        std::process::Stdio::null(),
    )
    .await;
    assert_ne!(controller.base, controller.admin);
    controller
        .wait("converging at start", |s| {
            s["last_syncs"][0]["outcome"] == "converged"
        })
        .await;
    let pid = controller.child.id().unwrap();

    // Only webhooks (and a liveness check) on the exposed port.
    for path in ["/status", "/metrics", "/readyz"] {
        assert_eq!(controller.get(path).await.0, 404, "{path}");
    }
    assert_eq!(controller.get("/livez").await.0, 200);
    let admin = |path: &str| format!("{}{path}", controller.admin);
    let (code, _) = (
        controller
            .http
            .get(admin("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert_eq!(code, 200);
    let hook_on_admin = controller
        .http
        .post(admin("/hooks/git"))
        .send()
        .await
        .unwrap();
    assert_eq!(hook_on_admin.status(), 404);

    // Okta's one-time verification is a GET with the hook's Authorization secret.
    let verify = |auth: Option<&str>| {
        let mut request = controller
            .http
            .get(format!("{}/hooks/identity", controller.base))
            .header("x-okta-verification-challenge", "challenge-123");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    let answer = verify(Some("idp-secret")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["verification"], "challenge-123");
    assert_eq!(verify(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(verify(None).await.unwrap().status(), 401);

    // 300 unsigned 2 MiB bodies at once: refused by size, memory barely moves.
    let before = rss_kib(pid);
    let big = vec![b'x'; 2 * 1024 * 1024];
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..300 {
        let request = controller
            .http
            .post(format!(
                "{}/hooks/{}",
                controller.base,
                ["git", "identity"][i % 2]
            ))
            .body(big.clone());
        sends.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(answer) = sends.join_next().await {
        // 413 before the body is read; a client still sending may see the reset instead.
        let answer = answer.unwrap();
        assert!(matches!(answer, Ok(413) | Err(_)), "{answer:?}");
    }
    // Chunked bodies (no length to refuse early) are cut off at the limit.
    let address = controller.base.trim_start_matches("http://").to_string();
    let mut chunked = tokio::task::JoinSet::new();
    for _ in 0..20 {
        chunked.spawn(chunked_post(address.clone(), "/hooks/git", 2 * 1024 * 1024));
    }
    while let Some(answer) = chunked.join_next().await {
        let answer = answer.unwrap();
        assert!(matches!(answer, Some(413 | 503) | None), "{answer:?}");
    }
    let after = rss_kib(pid);
    eprintln!("controller RSS {before} KiB before 320 oversized webhooks, {after} KiB after");
    assert!(after < before + 64 * 1024, "{before} KiB -> {after} KiB");

    // 1,000 idle connections: at most MAX_CONNECTIONS are taken, the admin port and the
    // syncs go on, and once they go the webhooks answer again.
    // Beyond what is served and what the kernel's backlog holds, a connect waits (SYNs
    // retried): those are given up on after two seconds.
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let address = address.clone();
        connecting.spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(address),
            )
            .await
        });
    }
    let mut idle = Vec::new();
    while let Some(connected) = connecting.join_next().await {
        if let Ok(Ok(stream)) = connected.unwrap() {
            idle.push(stream);
        }
    }
    eprintln!("{} idle connections open", idle.len());
    assert!(idle.len() > 300, "{} connections", idle.len());
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    eprintln!(
        "controller file descriptors with {} idle connections: {descriptors}",
        idle.len()
    );
    let limit = slack_gitops::controller::listener::MAX_CONNECTIONS;
    assert!(descriptors < limit + 64, "{descriptors} descriptors");
    let started = Instant::now();
    assert_eq!(
        controller
            .http
            .get(admin("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(controller.status().await["ready"] == true);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushed = Instant::now();
    assert_eq!(controller.push_hook(SECRET).await, 202);
    eprintln!(
        "push hook after the idle connections: {:?}",
        pushed.elapsed()
    );

    // One identity event delivered 1,000 times (a retrying sender, a replayed capture):
    // one leaver run and the one full sync after it; a stale event is refused.
    let event = br#"{"id":"evt-1","email":"ada.liskov@acme.example","event":"deactivated"}"#;
    let mut answers = std::collections::BTreeMap::new();
    let flood = Instant::now();
    for _ in 0..1_000 {
        *answers
            .entry(identity_hook(&controller, "idp-secret", event).await)
            .or_insert(0) += 1;
    }
    eprintln!("1,000 identity events answered in {:?}", flood.elapsed());
    assert_eq!(answers.get(&202), Some(&1), "{answers:?}");
    assert_eq!(answers.get(&200), Some(&999), "{answers:?}");
    let stale = br#"{"email":"grace.bernerslee@acme.example","time":"2020-01-01T00:00:00Z"}"#;
    assert_eq!(identity_hook(&controller, "idp-secret", stale).await, 200);
    controller
        .wait("the identity syncs recorded", |s| {
            let syncs = s["last_syncs"].as_array().unwrap();
            syncs
                .iter()
                .filter(|s| s["trigger"] == "identity-event")
                .count()
                == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, metrics) = controller.admin_get("/metrics").await;
    let identity_syncs: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("slack_gitops_syncs_total{trigger=\"identity-event\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(identity_syncs, 2, "{metrics}");
}

/// A chunked POST of `length` bytes over a raw connection, as an unsigned sender can
/// make it; the status the server answered, or `None` if it closed the connection first.
async fn chunked_post(address: String, path: &str, length: usize) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let chunk = vec![b'x'; 32 * 1024];
    let mut sent = 0;
    while sent < length {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer[..read]);
    text.split(' ').nth(1)?.parse().ok()
}

/// A crafted commit pushed to the remote is refused by the controller as by `apply`:
/// nothing is written outside its checkout, its clone's `.git/config` is untouched, and
/// the commit before stays in force.
#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_commit_is_refused_and_writes_nothing_outside() {
    use common::org::{RawEntry, blob, push_crafted, raw_tree};
    let org = Org::new(|_| {}).await;
    let remote = org.bare_remote();
    let controller = Controller::start(&org, &remote).await;
    let first = git(&org.repo, &["rev-parse", "HEAD"]);
    controller
        .wait("converging at start", |s| {
            s["commit_in_force"] == first.as_str()
        })
        .await;
    let nonce = format!("slack-gitops-escaped-controller-{}", std::process::id());
    let payload = blob(&org.repo, b"[remote \"origin\"]\n\turl = /elsewhere\n");
    let climbing = raw_tree(&org.repo, &[RawEntry::new("100644", &nonce, &payload)]);
    let git_dir = raw_tree(&org.repo, &[RawEntry::new("100644", "config", &payload)]);
    let crafted = push_crafted(
        &org.repo,
        &[
            RawEntry::new("40000", "..", &climbing),
            RawEntry::new("40000", ".git", &git_dir),
        ],
    );
    assert_eq!(controller.push_hook(SECRET).await, 202);
    let status = controller
        .wait("the crafted commit refused", |s| {
            sync_of(s, &crafted).is_some_and(|sync| sync["outcome"] == "refused")
        })
        .await;
    let detail = sync_of(&status, &crafted).unwrap()["detail"].clone();
    assert!(detail.as_str().unwrap().contains("holds `..`"), "{detail}");
    assert_eq!(status["commit_in_force"], first.as_str());
    assert!(!std::env::temp_dir().join(&nonce).exists());
    let clones = org.state.parent().unwrap();
    let configs: Vec<String> = walk(clones)
        .into_iter()
        .filter(|p| p.ends_with(".git/config"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(!configs.is_empty());
    assert!(
        configs.iter().all(|c| !c.contains("/elsewhere")),
        "{configs:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
