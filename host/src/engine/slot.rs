//! A rule's place in an evaluator ([`Slot`]): its live instance, its
//! counters ([`RuleStats`]), its run of failures and quarantine, and the
//! rate limit on logging its failures.
//!
//! A [`LoadedRule`] is immutable and shared; everything that changes as a
//! rule runs on one worker lives here, owned by that worker's evaluator, so
//! no lock is taken to count or to quarantine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::verdict::Verdict;
use super::{LoadedRule, RuleError, wasm};
use crate::events::RuleOutcome;

/// A rule that fails this many evaluations in a row is quarantined:
/// skipped (its failure policy applies) until a new version is deployed.
pub const QUARANTINE_AFTER: u32 = 50;
/// A rule's failures are logged at most once per this long; the log line
/// says how many were not.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counters per rule, for summaries and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleStats {
    pub invocations: u64,
    /// Verdicts other than pass.
    pub hits: u64,
    /// Evaluations that failed, and transactions the rule was skipped for
    /// while quarantined.
    pub errors: u64,
    pub fuel: u64,
    /// Whether the running version is quarantined ([`QUARANTINE_AFTER`]).
    pub quarantined: bool,
}

/// One rule of an evaluator, with what its evaluations leave behind.
pub(super) struct Slot {
    pub(super) rule: Arc<LoadedRule>,
    /// The live instance of a wasm rule; `None` until its first evaluation
    /// and after a failure poisoned it.
    pub(super) instance: Option<wasm::Instance>,
    pub(super) stats: RuleStats,
    /// Failed evaluations since the last success, and, once quarantined,
    /// the last one's error.
    failures_in_a_row: u32,
    quarantine: Option<String>,
    /// When a failure of this rule was last logged, and how many were not
    /// logged since.
    warned_at: Option<Instant>,
    unlogged: u64,
    /// Each evaluation's wall time in nanoseconds, when timing is on
    /// ([`super::Evaluator::time_evaluations`]).
    pub(super) nanos: Vec<u32>,
}

impl Slot {
    /// A slot for `rule`, carrying over the counters of the rule id (a new
    /// version starts out of quarantine).
    pub(super) fn new(rule: Arc<LoadedRule>, stats: RuleStats) -> Slot {
        let stats = RuleStats { quarantined: false, ..stats };
        Slot {
            rule,
            instance: None,
            stats,
            failures_in_a_row: 0,
            quarantine: None,
            warned_at: None,
            unlogged: 0,
            nanos: Vec::new(),
        }
    }

    /// The same slot for `rule`, a version with the same content hash: the
    /// live instance and every counter stay.
    pub(super) fn renewed(self, rule: Arc<LoadedRule>) -> Slot {
        Slot { rule, ..self }
    }

    /// The error that stands for an evaluation while the rule is
    /// quarantined; `None` if it is not.
    pub(super) fn quarantined(&self) -> Option<RuleError> {
        let last = self.quarantine.as_ref()?;
        Some(RuleError::Quarantined { failures: self.failures_in_a_row, last: last.clone() })
    }

    /// Keeps the wall time of an evaluation that started at `started`.
    pub(super) fn timed(&mut self, started: Instant) {
        self.nanos.push(u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }

    /// Counts an evaluation that used `fuel` and ended in `verdict`.
    pub(super) fn count(&mut self, verdict: &Result<Verdict, RuleError>, fuel: u64, transaction_id: &str, log: bool) {
        self.stats.invocations += 1;
        self.stats.fuel += fuel;
        match verdict {
            Err(e) => self.failed(e, transaction_id, log),
            Ok(v) => {
                self.failures_in_a_row = 0;
                self.stats.hits += u64::from(v.outcome != RuleOutcome::Pass);
            }
        }
    }

    /// Counts a failed evaluation: logs it (at most once per
    /// [`WARN_EVERY`]) and quarantines the rule after [`QUARANTINE_AFTER`]
    /// in a row.
    fn failed(&mut self, error: &RuleError, transaction_id: &str, log: bool) {
        self.stats.errors += 1;
        if matches!(error, RuleError::Quarantined { .. }) {
            return;
        }
        self.failures_in_a_row += 1;
        let rule = &self.rule.spec;
        let now = Instant::now();
        if !log {
            // Counted, not logged.
        } else if self.warned_at.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
            let unlogged = std::mem::take(&mut self.unlogged);
            tracing::warn!(rule = %rule.id, version = %rule.version_label, transaction_id, unlogged, "rule {error}; failure policy {:?} applied", rule.failure);
            self.warned_at = Some(now);
        } else {
            self.unlogged += 1;
        }
        if self.failures_in_a_row >= QUARANTINE_AFTER && log {
            tracing::error!(rule = %rule.id, version = %rule.version_label, failures = self.failures_in_a_row, "rule quarantined: it failed {QUARANTINE_AFTER} evaluations in a row (the last: {error}); it is skipped, with failure policy {:?}, until a new version is deployed", rule.failure);
            self.quarantine = Some(error.to_string());
            self.stats.quarantined = true;
            self.instance = None;
        }
    }
}
