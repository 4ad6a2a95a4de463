//! A rule's place in an evaluator ([`Slot`]): its live instance, its
//! counters ([`RuleStats`]), its recent evaluations ([`Recent`]) and
//! quarantine, and the rate limit on logging its failures.
//!
//! A [`LoadedRule`] is immutable and shared; everything that changes as a
//! rule runs on one worker lives here, owned by that worker's evaluator, so
//! no lock is taken to count or to quarantine.
//!
//! Quarantine is a circuit breaker that stays open until a new version is
//! deployed. It opens on either of two shares of the rule's recent
//! evaluations on this worker, so that no rule can slow every transaction:
//! - failures: half of its last [`FAILURE_WINDOW`] evaluations failed
//!   ([`QUARANTINE_AFTER`]), which also covers that many in a row;
//! - cost: its last [`FUEL_WINDOW`] evaluations used more than
//!   [`FUEL_AVERAGE_MAX`] fuel units each on average (the policy's
//!   `rule_fuel_average`), whether they failed or not. Fuel stands for CPU
//!   time, and unlike wall time it is the same on every run, so a replay
//!   or a backtest quarantines at the same transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::verdict::Verdict;
use super::{LoadedRule, RuleError, wasm};
use crate::events::RuleOutcome;

/// A rule is quarantined when this many of its last [`FAILURE_WINDOW`]
/// evaluations failed (half, a circuit breaker's usual threshold): skipped,
/// its failure policy applied, until a new version is deployed.
pub const QUARANTINE_AFTER: u32 = 50;
/// How many of a rule's last evaluations its failure share is taken over.
pub const FAILURE_WINDOW: u32 = 100;
/// How many of a rule's last evaluations its fuel is averaged over.
pub const FUEL_WINDOW: usize = 1000;
/// The most fuel a rule may use per evaluation on average over its last
/// [`FUEL_WINDOW`] evaluations before it is quarantined, by default
/// (`policy.rule_fuel_average` sets another).
///
/// Derived from the throughput target of 120 000 decisions a second on 1.8
/// cores: 15 µs of a core per decision for everything. A rule may take a
/// quarter of that, about 3.75 µs, or 15 000 units at the slowest fuel
/// rate measured (4e9 units a second, BENCHMARKS.md). The shipped rules
/// use 1 300 to 4 600. The most one evaluation may ask for
/// ([`crate::manifest::MAX_FUEL`]) is a third of the window's allowance, so
/// a rule that needs it now and then is not quarantined for it.
pub const FUEL_AVERAGE_MAX: u64 = 15_000;
/// [`FUEL_AVERAGE_MAX`] for a rule that scores a model
/// (`policy.model_fuel_average` sets another): the model target is 50 000
/// decisions a second per core, 20 µs a decision, or 80 000 units at the
/// slowest fuel rate measured.
pub const MODEL_FUEL_AVERAGE_MAX: u64 = 250_000;
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
    /// Whether the running version is quarantined (see the module docs).
    pub quarantined: bool,
    /// Why it is, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_reason: Option<String>,
}

/// A rule's last evaluations on one worker: which failed and the fuel each
/// used, as a ring.
struct Recent {
    /// Bit `i` is set if the evaluation `i` places back failed (bit 0 the
    /// newest).
    failed: u128,
    /// Fuel of each of the last [`FUEL_WINDOW`] evaluations; `next` is the
    /// oldest's place, the next to be overwritten.
    fuel: Box<[u32; FUEL_WINDOW]>,
    next: usize,
    /// How many evaluations `fuel` holds (at most [`FUEL_WINDOW`]).
    len: usize,
    /// The fuel an evaluation may use on average over the window.
    average: u64,
    /// The sum of `fuel`.
    fuel_sum: u64,
}

impl Recent {
    fn new(average: u64) -> Recent {
        Recent { failed: 0, fuel: Box::new([0; FUEL_WINDOW]), next: 0, len: 0, average, fuel_sum: 0 }
    }

    /// Adds an evaluation that used `fuel` and did or did not fail.
    fn push(&mut self, failed: bool, fuel: u64) {
        self.failed = (self.failed << 1) | u128::from(failed);
        let fuel = u32::try_from(fuel).unwrap_or(u32::MAX);
        let oldest = std::mem::replace(&mut self.fuel[self.next], fuel);
        self.fuel_sum = self.fuel_sum - u64::from(oldest) + u64::from(fuel);
        self.next = (self.next + 1) % FUEL_WINDOW;
        self.len = (self.len + 1).min(FUEL_WINDOW);
    }

    /// How many of the last [`FAILURE_WINDOW`] evaluations failed.
    fn failures(&self) -> u32 {
        (self.failed & ((1u128 << FAILURE_WINDOW) - 1)).count_ones()
    }

    /// Why the rule should be quarantined now, if it should; `last` is its
    /// latest failure.
    fn verdict(&self, last: Option<&RuleError>) -> Option<String> {
        let failures = self.failures();
        if failures >= QUARANTINE_AFTER {
            let last = last.map(|e| format!(" (the last: {e})")).unwrap_or_default();
            return Some(format!("{failures} of its last {FAILURE_WINDOW} evaluations failed{last}"));
        }
        let allowed = self.average.saturating_mul(FUEL_WINDOW as u64);
        (self.fuel_sum > allowed).then(|| {
            format!(
                "its last {} evaluations used {} fuel units, more than its last {FUEL_WINDOW} may use ({allowed}, {} each on average)",
                self.len, self.fuel_sum, self.average
            )
        })
    }
}

/// One rule of an evaluator, with what its evaluations leave behind.
pub(super) struct Slot {
    pub(super) rule: Arc<LoadedRule>,
    /// The live instance of a wasm rule; `None` until its first evaluation
    /// and after a failure poisoned it.
    pub(super) instance: Option<wasm::Instance>,
    pub(super) stats: RuleStats,
    /// Its last evaluations, judged after each one.
    recent: Recent,
    /// When a failure of this rule was last logged, and how many were not
    /// logged since.
    warned_at: Option<Instant>,
    unlogged: u64,
    /// Each evaluation's wall time in nanoseconds, when timing is on
    /// ([`super::Evaluator::time_evaluations`]).
    pub(super) nanos: Vec<u32>,
    /// Whether an instance of this version has read its model: a read
    /// again is counted against the fuel average.
    pub(super) model_read: bool,
    /// The row the rule scored in its last evaluation and the score, while
    /// the evaluator records ([`super::Evaluator::record_scores`]).
    pub(super) scored: Option<wasm::Scored>,
}

impl Slot {
    /// A slot for `rule`, carrying over the counters of the rule id (a new
    /// version starts out of quarantine), that may use `fuel_average` units
    /// per evaluation on average.
    pub(super) fn new(rule: Arc<LoadedRule>, stats: RuleStats, fuel_average: u64) -> Slot {
        let stats = RuleStats { quarantined: false, quarantine_reason: None, ..stats };
        Slot {
            rule,
            instance: None,
            stats,
            recent: Recent::new(fuel_average),
            warned_at: None,
            unlogged: 0,
            nanos: Vec::new(),
            model_read: false,
            scored: None,
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
        let why = self.stats.quarantine_reason.as_ref()?;
        Some(RuleError::Quarantined { why: why.clone() })
    }

    /// Keeps the wall time of an evaluation that started at `started`.
    pub(super) fn timed(&mut self, started: Instant) {
        self.nanos.push(u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }

    /// Counts an evaluation that used `fuel` and ended in `verdict`, and
    /// quarantines the rule if its recent evaluations say so.
    pub(super) fn count(&mut self, verdict: &Result<Verdict, RuleError>, fuel: u64, transaction_id: &str, log: bool) {
        self.stats.invocations += 1;
        self.stats.fuel += fuel;
        let failure = match verdict {
            // Skipped while quarantined: nothing more to judge.
            Err(RuleError::Quarantined { .. }) => {
                self.stats.errors += 1;
                return;
            }
            Err(e) => {
                self.failed(e, transaction_id, log);
                // Not run because other rules spent the transaction's fuel:
                // not this rule's failure.
                (!matches!(e, RuleError::BudgetSpent)).then_some(e)
            }
            Ok(v) => {
                self.stats.hits += u64::from(v.outcome != RuleOutcome::Pass);
                None
            }
        };
        if !log {
            // Self-test cases: never quarantined (see `Evaluator::quiet`).
            return;
        }
        self.recent.push(failure.is_some(), fuel);
        if let Some(why) = self.recent.verdict(failure) {
            let rule = &self.rule.spec;
            tracing::error!(rule = %rule.id, version = %rule.version_label, transaction_id, "rule quarantined: {why}; it is skipped, with failure policy {:?}, until a new version is deployed", rule.failure);
            self.stats.quarantined = true;
            self.stats.quarantine_reason = Some(why);
            self.instance = None;
        }
    }

    /// Counts a failed evaluation and logs it (at most once per
    /// [`WARN_EVERY`]).
    fn failed(&mut self, error: &RuleError, transaction_id: &str, log: bool) {
        self.stats.errors += 1;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_evaluations_leave_the_windows() {
        let mut recent = Recent::new(FUEL_AVERAGE_MAX);
        let error = RuleError::Returned("no".into());
        // 49 failures, then passes until they have left the failure window.
        for _ in 0..49 {
            recent.push(true, 10);
        }
        assert_eq!(recent.verdict(Some(&error)), None);
        for _ in 0..FAILURE_WINDOW {
            recent.push(false, 10);
        }
        assert_eq!(recent.failures(), 0);
        // 49 more: still under half of the last 100.
        for _ in 0..49 {
            recent.push(true, 10);
        }
        assert_eq!(recent.verdict(Some(&error)), None);
        recent.push(true, 10);
        assert!(recent.verdict(Some(&error)).is_some_and(|why| why.starts_with("50 of its last 100")));

        // Fuel: a window's worth at the average is allowed for ever; one
        // unit more is not, until the expensive one has left the window.
        let mut recent = Recent::new(FUEL_AVERAGE_MAX);
        for _ in 0..3 * FUEL_WINDOW {
            recent.push(false, FUEL_AVERAGE_MAX);
        }
        assert_eq!(recent.verdict(None), None);
        assert_eq!(recent.fuel_sum, FUEL_AVERAGE_MAX * FUEL_WINDOW as u64);
        recent.push(false, FUEL_AVERAGE_MAX + 1);
        let why = recent.verdict(None).unwrap();
        assert!(why.starts_with("its last 1000 evaluations used 15000001 fuel units"), "{why}");
        for _ in 0..FUEL_WINDOW {
            recent.push(false, FUEL_AVERAGE_MAX);
        }
        assert_eq!(recent.verdict(None), None, "the expensive one left the window");
    }
}
