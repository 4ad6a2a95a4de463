//! [`Hooks`]: what a pipeline shares with the running host. Both parts are
//! optional — a backtest or a benchmark runs without them — so a pipeline
//! calls the hooks unconditionally and each call is a no-op when nothing
//! is attached.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Evaluator, RuleStats};
use crate::lists::LiveLists;
use crate::live::{Generation, LiveRules, TookEffect};

use super::Metrics;

/// What a pipeline shares with the running host; both parts optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The watched rules directory: swap to its newest generation between batches.
    pub live: Option<Arc<LiveRules>>,
    /// Where to count batches for the status endpoint.
    pub metrics: Option<Arc<Metrics>>,
    /// The runtime lists: the newest snapshot is adopted between batches.
    pub lists: Option<Arc<LiveLists>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("live", &self.live.as_ref().map(|l| l.dir().to_owned()))
            .field("metrics", &self.metrics.is_some())
            .field("lists", &self.lists.as_ref().map(|l| l.generation()))
            .finish()
    }
}

impl Hooks {
    /// Between two batches: swaps `evaluator` to a newer generation if
    /// there is one (`running` is the generation it runs now), and to the
    /// newest runtime lists.
    pub fn adopt(&self, running: &mut u64, evaluator: &mut Evaluator) -> Option<Arc<Generation>> {
        if let Some(lists) = &self.lists {
            let mut generation = evaluator.lists_generation();
            if let Some(set) = lists.adopt(&mut generation) {
                evaluator.set_lists(generation, set);
            }
        }
        self.live.as_ref()?.adopt(running, evaluator)
    }

    /// Reports where a generation was first used.
    pub fn took_effect(&self, generation: &Generation, position: &TookEffect) {
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

    /// The entity hop's delivery allowance, in ms (Kafka).
    pub fn set_delivery_allowance(&self, ms: i64) {
        if let Some(m) = &self.metrics {
            m.set_delivery_allowance(ms);
        }
    }

    /// Whether anything reads what is observed (a status endpoint).
    pub fn observing(&self) -> bool {
        self.metrics.is_some()
    }
}
