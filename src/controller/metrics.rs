//! `/metrics` in Prometheus text format (prometheus-client): syncs by trigger and
//! outcome, actions by kind and outcome, drift by kind, the last successful sync, Slack
//! calls and 429s, identity read failures, and the deactivation latency as a histogram
//! (first seen as a leaver to signed out: the SLA, measured).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Trigger;
use crate::apply::ApplyReport;
use crate::apply::executor::Outcome;
use crate::plan::action::{Action, Plan};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    trigger: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The controller's metrics and their registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    syncs: Family<SyncLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    drift: Family<KindLabel, Gauge>,
    last_success: Gauge<f64, AtomicU64>,
    slack_calls: Counter,
    slack_rate_limited: Counter,
    identity_failures: Counter,
    deactivation_latency: Histogram,
    leader: Gauge,
    lease_generation: Gauge,
    git_fetch_failures: Counter,
    git_remote_up: Gauge,
    mirror_objects: Gauge,
    mirror_stale: Gauge,
    mirror_oldest_age: Gauge<f64, AtomicU64>,
    mirror_pending_events: Gauge,
    mirror_stream_healthy: Gauge,
    mirror_watermark_age: Gauge<f64, AtomicU64>,
    mirror_events: Family<KindLabel, Counter>,
}

impl Default for Metrics {
    /// One piece: every metric is declared and registered here, so `/metrics` lists in
    /// one place exactly what the struct holds.
    fn default() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("slack_gitops")),
            syncs: Family::default(),
            actions: Family::default(),
            drift: Family::default(),
            last_success: Gauge::default(),
            slack_calls: Counter::default(),
            slack_rate_limited: Counter::default(),
            identity_failures: Counter::default(),
            // 1 s to about 36 h.
            deactivation_latency: Histogram::new(exponential_buckets(1.0, 2.0, 18)),
            leader: Gauge::default(),
            lease_generation: Gauge::default(),
            git_fetch_failures: Counter::default(),
            git_remote_up: Gauge::default(),
            mirror_objects: Gauge::default(),
            mirror_stale: Gauge::default(),
            mirror_oldest_age: Gauge::default(),
            mirror_pending_events: Gauge::default(),
            mirror_stream_healthy: Gauge::default(),
            mirror_watermark_age: Gauge::default(),
            mirror_events: Family::default(),
        };
        {
            let mut registry = metrics.registry.lock().unwrap_or_else(|p| p.into_inner());
            registry.register(
                "syncs",
                "Syncs by trigger and outcome",
                metrics.syncs.clone(),
            );
            registry.register(
                "actions",
                "Actions applied, by kind and outcome",
                metrics.actions.clone(),
            );
            registry.register(
                "drift",
                "Changes the last drift tick found, by kind",
                metrics.drift.clone(),
            );
            registry.register(
                "last_successful_sync_timestamp_seconds",
                "When a sync last converged (unix seconds)",
                metrics.last_success.clone(),
            );
            registry.register(
                "slack_calls",
                "Calls made to Slack by applies",
                metrics.slack_calls.clone(),
            );
            registry.register(
                "slack_rate_limited",
                "Calls Slack answered with 429",
                metrics.slack_rate_limited.clone(),
            );
            registry.register(
                "identity_read_failures",
                "Syncs that could not read the identity provider or Slack",
                metrics.identity_failures.clone(),
            );
            registry.register(
                "deactivation_latency_seconds",
                "From first seen as a leaver to signed out",
                metrics.deactivation_latency.clone(),
            );
            registry.register(
                "leader",
                "1 while this replica leads (holds the lease), else 0",
                metrics.leader.clone(),
            );
            registry.register(
                "lease_generation",
                "The lease generation this replica last led in",
                metrics.lease_generation.clone(),
            );
            registry.register(
                "git_fetch_failures",
                "Fetches of the config repository that failed",
                metrics.git_fetch_failures.clone(),
            );
            registry.register(
                "git_remote_up",
                "1 while the last fetch of the config repository succeeded, else 0",
                metrics.git_remote_up.clone(),
            );
            registry.register(
                "mirror_objects",
                "Channels, usergroups and people in the live Slack mirror",
                metrics.mirror_objects.clone(),
            );
            registry.register(
                "mirror_stale",
                "Mirror objects an event marked stale, or never read",
                metrics.mirror_stale.clone(),
            );
            registry.register(
                "mirror_oldest_verification_age_seconds",
                "Age of the oldest verification of a clean mirror object",
                metrics.mirror_oldest_age.clone(),
            );
            registry.register(
                "mirror_pending_events",
                "Slack events received and not drained into the mirror yet",
                metrics.mirror_pending_events.clone(),
            );
            registry.register(
                "mirror_stream_healthy",
                "1 while the Slack event stream's canary comes back and reads trust the mirror",
                metrics.mirror_stream_healthy.clone(),
            );
            registry.register(
                "mirror_watermark_age_seconds",
                "Age of the watermark: when the newest canary event that came back was sent",
                metrics.mirror_watermark_age.clone(),
            );
            registry.register(
                "mirror_events",
                "Slack events by what became of them (received, deduplicated, rejected, overflowed, drained, delta_applied, rate_limited_minute)",
                metrics.mirror_events.clone(),
            );
        }
        metrics
    }
}

impl Metrics {
    /// This replica started or stopped leading, in `generation`.
    pub fn leading(&self, leading: bool, generation: i64) {
        self.leader.set(i64::from(leading));
        self.lease_generation.set(generation);
    }

    pub fn sync(&self, trigger: Trigger, outcome: super::SyncOutcome) {
        self.syncs
            .get_or_create(&SyncLabels {
                trigger: trigger.as_str().into(),
                outcome: outcome.as_str().into(),
            })
            .inc();
    }

    /// One action's outcome; its kind is the first word of its key.
    pub fn action(&self, key: &str, outcome: &Outcome) {
        let kind = key.split(' ').next().unwrap_or("unknown");
        let outcome = outcome.word().to_string();
        self.actions
            .get_or_create(&ActionLabels {
                kind: kind.into(),
                outcome,
            })
            .inc();
    }

    /// What an apply's report says: calls, 429s, leavers' latency, a converged time.
    pub fn report(&self, report: &ApplyReport) {
        self.slack_calls.inc_by(report.calls);
        self.slack_rate_limited.inc_by(report.rate_limited);
        for leaver in &report.leavers {
            if let Some(seconds) = leaver.seconds_to_signed_out {
                self.deactivation_latency.observe(seconds);
            }
        }
        if matches!(report.outcome, crate::apply::ApplyOutcome::Converged) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_success.set(now);
        }
    }

    /// A fetch of the config repository succeeded or failed.
    pub fn fetched(&self, ok: bool) {
        self.git_remote_up.set(i64::from(ok));
        if !ok {
            self.git_fetch_failures.inc();
        }
    }

    /// The mirror as the store and this replica's receiver see it, at a scrape.
    pub fn mirror(&self, status: &super::mirror::MirrorStatus, now: i64) {
        self.mirror_objects.set(status.objects as i64);
        self.mirror_stale.set(status.stale as i64);
        let oldest_age = status
            .oldest_verified_at
            .map(|at| (now - at).max(0) as f64 / 1000.0);
        self.mirror_oldest_age.set(oldest_age.unwrap_or(0.0));
        self.mirror_stream_healthy
            .set(i64::from(status.stream.healthy));
        self.mirror_watermark_age
            .set(status.stream.watermark_age_seconds.unwrap_or(0.0));
        self.mirror_pending_events.set(status.pending_events as i64);
        for (kind, value) in [
            ("received", status.events_received),
            ("deduplicated", status.events_deduplicated),
            ("rejected", status.events_rejected),
            ("overflowed", status.events_overflowed),
            ("drained", status.events_drained),
            ("delta_applied", status.deltas_applied),
            ("rate_limited_minute", status.rate_limited_minutes),
        ] {
            let counter = self
                .mirror_events
                .get_or_create(&KindLabel { kind: kind.into() });
            // The receiver counts; the metric follows (counts only grow).
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    pub fn read_failure(&self) {
        self.identity_failures.inc();
    }

    pub fn set_drift(&self, drift: &BTreeMap<String, u64>) {
        self.drift.clear();
        for (kind, count) in drift {
            self.drift
                .get_or_create(&KindLabel { kind: kind.clone() })
                .set(*count as i64);
        }
    }

    /// The classic Prometheus text format (0.0.4), which every scraper and `promtool`
    /// read: OpenMetrics with counters' HELP and TYPE named as their `_total` samples and
    /// no `# EOF`.
    pub fn encode_text(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<String> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(" counter"))
            .map(str::to_string)
            .collect();
        let mut text = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            text.push_str(renamed.as_deref().unwrap_or(line));
            text.push('\n');
        }
        text
    }

    /// The OpenMetrics exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The drift a plan shows, by kind: each removal's reason, leavers, and additions.
pub fn drift_by_kind(plan: &Plan) -> BTreeMap<String, u64> {
    let mut drift = BTreeMap::new();
    let mut add = |kind: String, n: u64| *drift.entry(kind).or_insert(0) += n;
    let name = |d: crate::plan::action::Drift| crate::plan::select::kind_of(d).as_str().to_string();
    for action in &plan.actions {
        match action {
            Action::SetUsergroupMembers { adds, removes, .. } => {
                for removal in removes {
                    add(name(removal.drift), 1);
                }
                if !adds.is_empty() {
                    add("missing_member".into(), adds.len() as u64);
                }
            }
            Action::KickFromChannel { removal, .. } => add(name(removal.drift), 1),
            Action::DeactivateUser { removal, .. } => add(name(removal.drift), 1),
            Action::InviteToChannel { people, .. } => {
                add("missing_member".into(), people.len() as u64)
            }
            Action::ResetSessions { .. } => {}
            _ => add("other".into(), 1),
        }
    }
    drift
}
