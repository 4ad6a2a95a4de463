//! [`Metrics`]: the pipeline's counters since start and the histograms it
//! observes into, shared between the pipeline (which writes after each
//! batch) and whatever reads them (the status endpoint's thread). How they
//! are encoded for Prometheus is [`super::exposition`].
//!
//! The histograms are of per-rule evaluation time (one transaction in
//! [`EVALUATION_SAMPLE`]), batch decide and commit time and — on Kafka —
//! the time from an input record's timestamp to its decision; the consumer
//! lag per partition comes from librdkafka's statistics, and the entity
//! hop's delivery allowance from the decide workers. The same families
//! exist on Kafka and embedded.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;

use crate::engine::{Evaluator, RuleStats};

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

/// The labels of a series: (name, value) pairs.
pub(super) type Labels = Vec<(&'static str, String)>;

/// Counters shared between the pipeline and the status endpoint, and the
/// histograms the pipeline observes into.
#[derive(Debug)]
pub struct Metrics {
    /// Written after each committed batch, read at each scrape.
    counters: Mutex<Counters>,
    /// Per-rule evaluation time, sampled one transaction in [`EVALUATION_SAMPLE`].
    pub(super) evaluation: Family<Labels, Histogram>,
    /// Time to commit a batch (on Kafka, a transaction).
    pub(super) commit: Histogram,
    /// Time to decide a batch (on Kafka, a worker's chunk).
    pub(super) batch: Histogram,
    /// From an input record's timestamp to its decision (Kafka).
    pub(super) decision_latency: Histogram,
    /// Records not yet consumed, per input partition (Kafka).
    pub(super) consumer_lag: Family<Labels, Gauge>,
    /// How long the entity hop allows a record to be on its way (seconds;
    /// Kafka with `kafka.entities` only, else 0).
    pub(super) delivery_allowance: Gauge<f64, AtomicU64>,
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
            delivery_allowance: Gauge::default(),
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

    /// The counters as they are now.
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

    /// The entity hop's delivery allowance, in ms.
    pub fn set_delivery_allowance(&self, ms: i64) {
        self.delivery_allowance.set(ms as f64 / 1000.0);
    }
}
