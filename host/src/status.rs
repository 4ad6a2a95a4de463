//! The status endpoint and the counters behind it.
//!
//! With `[status] listen = "127.0.0.1:9464"` (or `WEIR_STATUS_LISTEN`),
//! `weir run` serves, over plain HTTP:
//!
//! - `GET /health` — `ok` while the process runs;
//! - `GET /status` — JSON: the active rule versions, the refused packages
//!   with their reasons, recent swaps and where they took effect, and the
//!   pipeline's counters;
//! - `GET /metrics` — the Prometheus text format, written by
//!   `prometheus-client`: the same counters (decisions by type, dead
//!   letters, batches, per-rule invocations, hits, errors, fuel, quarantined
//!   rules, rule swaps and refused packages), and histograms of per-rule
//!   evaluation time (one transaction in [`EVALUATION_SAMPLE`]), batch
//!   commit time and — on Kafka — the time from an input record's timestamp
//!   to its decision, and the consumer lag per partition (librdkafka's
//!   statistics). The same families exist on Kafka and embedded;
//!   `dashboards/weir.json` is a Grafana dashboard over them.
//!
//! [`Metrics`] is written by the pipeline after each batch and read by the
//! server thread; [`Hooks`] is what a pipeline is handed to report there
//! and to swap rules between batches.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::engine::{Evaluator, RuleStats};
use crate::events::DecisionType;

use crate::live::{Generation, LiveRules};

/// The pipeline's counters since start, as the status shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// What became of the records (the same on Kafka and embedded: on
    /// Kafka, those of committed transactions).
    #[serde(flatten)]
    pub records: crate::record::Counters,
    /// Batches (on Kafka, transactions) committed.
    pub batches: u64,
    /// Per rule id, across its versions (and workers).
    pub rules: BTreeMap<String, RuleStats>,
}

/// One transaction in this many has its rules' evaluation times observed.
pub const EVALUATION_SAMPLE: u32 = 16;

type RuleLabel = Vec<(&'static str, String)>;

/// Counters shared between the pipeline and the status endpoint, and the
/// histograms the pipeline observes into.
#[derive(Debug)]
pub struct Metrics {
    counters: Mutex<Counters>,
    evaluation: Family<RuleLabel, Histogram>,
    commit: Histogram,
    batch: Histogram,
    decision_latency: Histogram,
    consumer_lag: Family<Vec<(&'static str, String)>, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            counters: Mutex::default(),
            // 1 µs to about 1 s.
            evaluation: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1e-6, 4.0, 11))),
            // 1 ms to about 16 s.
            commit: Histogram::new(exponential_buckets(1e-3, 2.0, 15)),
            // 100 µs to about 3 s.
            batch: Histogram::new(exponential_buckets(1e-4, 2.0, 15)),
            decision_latency: Histogram::new(exponential_buckets(1e-3, 2.0, 15)),
            consumer_lag: Family::default(),
        }
    }
}

impl Metrics {
    /// After a committed batch: the pipeline's totals so far.
    pub fn record(&self, records: &crate::record::Counters, rules: &[(String, RuleStats)]) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.records = records.clone();
        c.batches += 1;
        for (id, stats) in rules {
            c.rules.insert(id.clone(), stats.clone());
        }
    }

    pub fn snapshot(&self) -> Counters {
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Moves the evaluation times `evaluator` sampled into the histograms.
    pub fn observe_evaluations(&self, evaluator: &mut Evaluator) {
        evaluator.drain_timings(|rule, nanos| {
            let histogram = self.evaluation.get_or_create(&vec![("rule", rule.to_owned())]);
            for &n in nanos {
                histogram.observe(f64::from(n) / 1e9);
            }
        });
    }

    /// How long committing a batch (on Kafka, a transaction) took.
    pub fn observe_commit(&self, took: Duration) {
        self.commit.observe(took.as_secs_f64());
    }

    /// From an input record's timestamp to its decision.
    pub fn observe_decision_latency(&self, seconds: f64) {
        self.decision_latency.observe(seconds.max(0.0));
    }

    /// How long deciding a batch (on Kafka, a worker's chunk) took.
    pub fn observe_batch(&self, took: Duration) {
        self.batch.observe(took.as_secs_f64());
    }

    /// The consumer's lag on an input partition, in records.
    pub fn set_consumer_lag(&self, partition: i32, lag: i64) {
        self.consumer_lag.get_or_create(&vec![("partition", partition.to_string())]).set(lag);
    }

    /// The Prometheus text exposition of everything above, with the rule
    /// versions of `live`.
    pub fn exposition(&self, live: Option<&LiveRules>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot { counters: self.snapshot(), live: live.map(|l| l.status()) }));
        registry.register(
            "weir_rule_evaluation_seconds",
            format!("Time of one rule evaluation, by rule (one transaction in {EVALUATION_SAMPLE} is timed)"),
            self.evaluation.clone(),
        );
        registry.register(
            "weir_commit_seconds",
            "Time to commit one batch (on Kafka, one transaction)",
            self.commit.clone(),
        );
        registry.register(
            "weir_batch_decide_seconds",
            "Time to decide one batch (on Kafka, one decide worker's chunk of records)",
            self.batch.clone(),
        );
        registry.register(
            "weir_decision_latency_seconds",
            "From an input record's Kafka timestamp to its decision (Kafka only)",
            self.decision_latency.clone(),
        );
        registry.register(
            "weir_consumer_lag",
            "Records on the input partition not yet consumed, from librdkafka's statistics (Kafka only)",
            self.consumer_lag.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// The counters as they were at a scrape, encoded by `prometheus-client`
/// (which escapes every label value).
#[derive(Debug)]
struct Snapshot {
    counters: Counters,
    live: Option<crate::live::RulesStatus>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        }
        fn by_label<'a, T: EncodeMetric + 'a>(
            encoder: &mut DescriptorEncoder,
            (name, help, kind): (&str, &str, MetricType),
            series: impl IntoIterator<Item = (Vec<(&'static str, String)>, T)>,
        ) -> std::fmt::Result {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (labels, metric) in series {
                metric.encode(family.encode_family(&labels)?)?;
            }
            Ok(())
        }
        let c = &self.counters;
        let r = &c.records;
        counter(
            &mut encoder,
            "weir_records",
            "Input records processed (on Kafka: in committed transactions)",
            r.records,
        )?;
        by_label(
            &mut encoder,
            ("weir_decisions", "Decisions published, by type", MetricType::Counter),
            DecisionType::ALL.map(|t| {
                (vec![("type", t.as_str().to_owned())], ConstCounter::new(r.decisions.get(&t).copied().unwrap_or(0)))
            }),
        )?;
        counter(&mut encoder, "weir_dead_letters", "Malformed records dead-lettered", r.dead_letters)?;
        counter(
            &mut encoder,
            "weir_duplicates",
            "Transactions skipped because they were decided before",
            r.duplicates,
        )?;
        counter(
            &mut encoder,
            "weir_confirmations",
            "Customer confirmations recorded in account state",
            r.confirmations,
        )?;
        counter(&mut encoder, "weir_batches", "Batches committed (on Kafka: transactions)", c.batches)?;
        let rule = |id: &String| vec![("rule", id.clone())];
        let per_rule =
            |f: fn(&RuleStats) -> u64| c.rules.iter().map(move |(id, s)| (rule(id), ConstCounter::new(f(s))));
        type PerRule = (&'static str, &'static str, fn(&RuleStats) -> u64);
        let families: [PerRule; 4] = [
            ("weir_rule_invocations", "Rule evaluations, by rule", |s| s.invocations),
            ("weir_rule_hits", "Rule verdicts other than pass, by rule", |s| s.hits),
            ("weir_rule_errors", "Rule evaluations that failed or were skipped in quarantine, by rule", |s| s.errors),
            ("weir_rule_fuel", "Wasm fuel consumed, by rule", |s| s.fuel),
        ];
        for (name, help, f) in families {
            by_label(&mut encoder, (name, help, MetricType::Counter), per_rule(f))?;
        }
        by_label(
            &mut encoder,
            (
                "weir_rule_quarantined",
                "1 while a rule's running version is quarantined (skipped after failing too often in a row), by rule",
                MetricType::Gauge,
            ),
            c.rules.iter().map(|(id, s)| (rule(id), ConstGauge::new(i64::from(s.quarantined)))),
        )?;
        if let Some(status) = &self.live {
            let swaps = status.swaps_total.saturating_sub(1);
            counter(
                &mut encoder,
                "weir_rule_swaps",
                "Rule sets published after a change in the rules directory",
                swaps,
            )?;
            let refused = status.refusals_total;
            counter(&mut encoder, "weir_rule_packages_refused", "Rule packages refused while running", refused)?;
            by_label(
                &mut encoder,
                ("weir_rule_active", "Active rule versions (1 per rule id and content hash)", MetricType::Gauge),
                status.active.iter().map(|v| {
                    let labels = vec![
                        ("rule", v.rule_id.clone()),
                        ("version", v.version_label.clone()),
                        ("hash", v.hash.clone()),
                        ("mode", v.mode.to_string()),
                    ];
                    (labels, ConstGauge::new(1i64))
                }),
            )?;
        }
        Ok(())
    }
}

/// What a pipeline shares with the running host; both parts optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The watched rules directory: swap to its newest generation between batches.
    pub live: Option<Arc<LiveRules>>,
    /// Where to count batches for the status endpoint.
    pub metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("live", &self.live.as_ref().map(|l| l.dir().to_owned()))
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Hooks {
    /// Between two batches: swaps `evaluator` to a newer generation if
    /// there is one (`running` is the generation it runs now).
    pub fn adopt(&self, running: &mut u64, evaluator: &mut Evaluator) -> Option<Arc<Generation>> {
        self.live.as_ref()?.adopt(running, evaluator)
    }

    /// Reports where a generation was first used.
    pub fn took_effect(&self, generation: &Generation, position: &crate::live::TookEffect) {
        if let Some(live) = &self.live {
            live.took_effect(generation, position);
        }
    }

    /// After a committed batch: the pipeline's totals so far.
    pub fn record(&self, records: &crate::record::Counters, rules: &[(String, RuleStats)]) {
        if let Some(m) = &self.metrics {
            m.record(records, rules);
        }
    }

    /// After deciding a batch or chunk: the evaluation times sampled.
    pub fn observe_evaluations(&self, evaluator: &mut Evaluator) {
        if let Some(m) = &self.metrics {
            m.observe_evaluations(evaluator);
        }
    }

    /// How long a commit took.
    pub fn observe_commit(&self, took: Duration) {
        if let Some(m) = &self.metrics {
            m.observe_commit(took);
        }
    }

    /// From an input record's timestamp to its decision (Kafka).
    pub fn observe_decision_latency(&self, seconds: f64) {
        if let Some(m) = &self.metrics {
            m.observe_decision_latency(seconds);
        }
    }

    /// How long deciding a batch or chunk took.
    pub fn observe_batch(&self, took: Duration) {
        if let Some(m) = &self.metrics {
            m.observe_batch(took);
        }
    }

    /// The consumer's lag on an input partition (Kafka).
    pub fn set_consumer_lag(&self, partition: i32, lag: i64) {
        if let Some(m) = &self.metrics {
            m.set_consumer_lag(partition, lag);
        }
    }

    /// Whether anything reads what is observed (a status endpoint).
    pub fn observing(&self) -> bool {
        self.metrics.is_some()
    }
}

#[derive(Serialize)]
struct StatusBody {
    engine_version: &'static str,
    pipeline: Counters,
    rules: Option<crate::live::RulesStatus>,
}

/// Serves `/health`, `/status` and `/metrics` on `listen` from a
/// background thread.
pub fn serve(listen: &str, live: Option<Arc<LiveRules>>, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(listen)
        .map_err(|e| anyhow::anyhow!("cannot serve the status endpoint on {listen}: {e}"))?;
    tracing::info!(listen, "status endpoint: /health /status /metrics");
    std::thread::Builder::new().name("weir-status".to_owned()).spawn(move || {
        for request in server.incoming_requests() {
            let (code, content_type, body) = match request.url() {
                "/health" => (200, "text/plain", "ok\n".to_owned()),
                "/status" => {
                    let body = StatusBody {
                        engine_version: env!("CARGO_PKG_VERSION"),
                        pipeline: metrics.snapshot(),
                        rules: live.as_ref().map(|l| l.status()),
                    };
                    (200, "application/json", serde_json::to_string_pretty(&body).unwrap_or_default())
                }
                "/metrics" => (
                    200,
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    metrics.exposition(live.as_deref()),
                ),
                _ => (404, "text/plain", "not found: try /health, /status or /metrics\n".to_owned()),
            };
            let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
            let response = tiny_http::Response::from_string(body).with_status_code(code).with_header(header);
            if let Err(e) = request.respond(response) {
                tracing::debug!("status endpoint: {e}");
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_escapes_labels_and_has_every_family() {
        let metrics = Metrics::default();
        let mut rules = BTreeMap::new();
        rules.insert("velocity".to_owned(), RuleStats { invocations: 3, hits: 1, ..Default::default() });
        let stats: Vec<(String, RuleStats)> = rules.into_iter().collect();
        metrics.record(&crate::record::Counters { records: 3, ..Default::default() }, &stats);
        metrics.observe_commit(Duration::from_millis(5));
        metrics.set_consumer_lag(2, 40);
        let text = metrics.exposition(None);
        assert!(text.contains("weir_records_total 3"), "{text}");
        assert!(text.contains("weir_rule_invocations_total{rule=\"velocity\"} 3"), "{text}");
        assert!(text.contains("weir_commit_seconds_count 1"), "{text}");
        assert!(text.contains("weir_consumer_lag{partition=\"2\"} 40"), "{text}");
        // A label value with a quote, a backslash and a line feed.
        let family: Family<RuleLabel, Gauge> = Family::default();
        family.get_or_create(&vec![("version", "2.0 \"beta\"\\x\ny".to_owned())]).set(1);
        let mut registry = Registry::default();
        registry.register("probe", "a probe", family);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains(r#"probe{version="2.0 \"beta\"\\x\ny"} 1"#), "{out}");
    }
}
