//! The backtest proper: a baseline and a candidate rule set over the same
//! records, each deciding on its own thread against in-memory accounts
//! through the pipelines' per-record core, their decisions paired record
//! by record for the comparison. With entity rules, each side applies
//! transactions to their entities in the order the embedded pipeline and
//! Kafka do ([`crate::entity_order`]), its records waiting in input order.

use std::sync::Arc;

use crate::lists::ListSet;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use crate::engine::{Evaluator, Policy, RuleSet, RuleStats};
use crate::entity_order::{Done, EntityOrder};
use crate::events::{DecisionEvent, InputEvent, InputPosition, InvalidEvent, MAX_EVENT_BYTES, parse_input};
use crate::record::{Counters, MemoryAccounts, Processed};

use super::compare::{Comparison, rfc3339};
use super::error::BacktestError;
use super::labels::Labels;
use super::report::{Cost, Outcome, Quality, RuleCost, Side, WarmUp};
use super::tally::Tally;

/// Records per hand-over from a side's thread to the comparison.
const CHUNK: usize = 512;

/// Each record's decision (`None` for a record that was not decided), in
/// record order: what a side hands to the comparison at a time.
type Chunk = Vec<Option<Box<DecisionEvent>>>;

/// A rule set to backtest, and the directory it came from (for the report).
pub struct RulesUnder<'a> {
    pub dir: &'a Path,
    pub rules: &'a RuleSet,
    /// The runtime lists the rules read (none: every list is empty).
    pub lists: Option<Arc<ListSet>>,
}

/// Runs `baseline` and `candidate` over `records` (raw input records, in
/// order) and compares them. Each side decides on its own thread; the
/// comparison pairs their decisions record by record.
pub fn run(
    records: &[Vec<u8>],
    baseline: RulesUnder<'_>,
    candidate: RulesUnder<'_>,
    policy: &Policy,
    labels: Option<&Labels>,
) -> Outcome {
    run_from(records, baseline, candidate, policy, labels, None)
}

/// [`run`] with a warm-up: the transactions (and customer confirmations)
/// with event time before `until_ms` (ms since the epoch) are decided by
/// both sides only to build their accounts' state, exactly as the rest;
/// their decisions are neither counted nor compared, and the report says
/// how many there were ([`Report::warm_up`](super::Report::warm_up)). The
/// measured range starts at `until_ms`; a record without an event time (a
/// dead letter) counts where it is. An error if no transaction has an
/// event time at or after `until_ms`.
pub fn run_warmed_up(
    records: &[Vec<u8>],
    baseline: RulesUnder<'_>,
    candidate: RulesUnder<'_>,
    policy: &Policy,
    labels: Option<&Labels>,
    until_ms: i64,
) -> Result<Outcome, BacktestError> {
    let outcome = run_from(records, baseline, candidate, policy, labels, Some(until_ms));
    if outcome.report.input.decided() == 0 {
        let warm_up = outcome.report.warm_up.as_ref().map_or(0, |w| w.transactions);
        return Err(BacktestError::NothingAfterWarmUp { until: rfc3339(ms_to_time(until_ms)), warm_up });
    }
    Ok(outcome)
}

fn run_from(
    records: &[Vec<u8>],
    baseline: RulesUnder<'_>,
    candidate: RulesUnder<'_>,
    policy: &Policy,
    labels: Option<&Labels>,
    warm_up_until: Option<i64>,
) -> Outcome {
    let mut base = Running::new(&baseline, policy);
    let mut cand = Running::new(&candidate, policy);
    let mut input = Counters::default();
    let mut warm = Warming::default();
    let mut comparison = Comparison::default();
    let until = warm_up_until.map(ms_to_time);
    std::thread::scope(|scope| {
        let (to_compare_b, from_base) = sync_channel::<Chunk>(8);
        let (to_compare_c, from_cand) = sync_channel::<Chunk>(8);
        let base_side = &mut base;
        let counted = (&mut input, &mut warm);
        scope.spawn(move || decide_side(records, base_side, labels, until, Some(counted), to_compare_b));
        let cand_side = &mut cand;
        scope.spawn(move || decide_side(records, cand_side, labels, until, None, to_compare_c));
        for (b_chunk, c_chunk) in from_base.iter().zip(from_cand.iter()) {
            for (b, c) in b_chunk.into_iter().zip(c_chunk) {
                if let (Some(b), Some(c)) = (b, c) {
                    comparison.add(&b, &c, labels);
                }
            }
        }
    });
    let (baseline, base_quality, baseline_cost) = base.finish();
    let (candidate, cand_quality, candidate_cost) = cand.finish();
    let mut report = comparison.finish(input, baseline, candidate, labels.map(|_| (base_quality, cand_quality)));
    report.warm_up = until.map(|until| WarmUp {
        until: rfc3339(until),
        records: warm.records,
        transactions: warm.transactions,
        first_event: warm.first.map(rfc3339),
        last_event: warm.last.map(rfc3339),
    });
    Outcome { title: "weir backtest", report, baseline_cost, candidate_cost }
}

/// What the warm-up held, counted on one side.
#[derive(Default)]
struct Warming {
    records: u64,
    transactions: u64,
    first: Option<time::OffsetDateTime>,
    last: Option<time::OffsetDateTime>,
}

fn ms_to_time(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The event time of a parsed input record, if it has one.
fn event_time(parsed: &Result<InputEvent, InvalidEvent>) -> Option<time::OffsetDateTime> {
    match parsed {
        Ok(InputEvent::Transaction(tx)) => Some(tx.occurred_at),
        Ok(InputEvent::CustomerConfirmation(c)) => Some(c.occurred_at),
        Ok(InputEvent::AccountUnlocked(u)) => Some(u.occurred_at),
        Err(_) => None,
    }
}

/// One side: decides every record, counts into `side` (and the input and
/// the warm-up, if given), and hands each record's decision (or `None`) to
/// the comparison in chunks, in record order. A record with event time
/// before `warm_up_until` only builds the accounts' state: it is decided
/// like any other, counted in the warm-up, and handed on as `None`.
fn decide_side(
    records: &[Vec<u8>],
    side: &mut Running,
    labels: Option<&Labels>,
    warm_up_until: Option<time::OffsetDateTime>,
    mut counted: Option<(&mut Counters, &mut Warming)>,
    to_compare: SyncSender<Chunk>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut stopped = false;
    let Running { tally, evaluator, accounts, .. } = side;
    let mut done = |done: Done<Option<time::OffsetDateTime>>, evaluator: &Evaluator| {
        let Done { item: warming, processed, .. } = done;
        if let Some(at) = warming {
            if let Some((_, warm)) = counted.as_mut() {
                warm.records += 1;
                warm.transactions += u64::from(matches!(processed, Processed::Decided(_)));
                warm.first = Some(warm.first.map_or(at, |f| f.min(at)));
                warm.last = Some(warm.last.map_or(at, |l| l.max(at)));
            }
            chunk.push(None);
        } else {
            if let Some((input, _)) = counted.as_mut() {
                input.count(&processed);
            }
            chunk.push(match processed {
                Processed::Decided(decision) => {
                    let label = labels.and_then(|l| l.get(&decision.transaction_id));
                    tally.count(&decision, label);
                    for (rule_id, _, score) in evaluator.scored() {
                        if let Some(score) = score {
                            tally.count_score(rule_id, score, &decision.transaction_id, label);
                        }
                    }
                    Some(decision)
                }
                _ => None,
            });
        }
        if chunk.len() == CHUNK && !stopped {
            stopped = to_compare.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err();
        }
    };
    // A history is read at once: its records are dated before now, unless
    // dated in the future.
    let now_ms = crate::entity_order::now_ms();
    let mut order = EntityOrder::default();
    for (offset, record) in records.iter().enumerate() {
        if record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let position = InputPosition { topic: "backtest".to_owned(), partition: 0, offset: offset as i64 };
        let parsed = parse_input(record, MAX_EVENT_BYTES);
        let warming = warm_up_until.and_then(|until| event_time(&parsed).filter(|&t| t < until));
        let Ok(()) = order.push(evaluator, accounts, warming, parsed, position, now_ms, &mut done);
    }
    let Ok(_) = order.flush(evaluator, accounts, usize::MAX, &mut done);
    if let Some((input, _)) = counted.as_mut() {
        input.entity_late += order.take_late();
    }
    if !stopped {
        let _ = to_compare.send(chunk);
    }
}

/// One side while the backtest runs.
struct Running {
    tally: Tally,
    evaluator: Evaluator,
    accounts: MemoryAccounts,
    params: BTreeMap<String, Vec<crate::engine::ParamLine>>,
}

impl Running {
    fn new(under: &RulesUnder<'_>, policy: &Policy) -> Running {
        let (rules_dir, rules) = (under.dir, under.rules);
        let mut evaluator = Evaluator::new(rules, policy.clone());
        evaluator.time_evaluations();
        evaluator.record_scores();
        if let Some(lists) = &under.lists {
            evaluator.set_lists(1, lists.clone());
        }
        let params = rules.rules().iter().map(|r| (r.spec.id.clone(), r.parameters.lines())).collect();
        Running {
            tally: Tally::new(rules_dir.display().to_string()),
            evaluator,
            accounts: MemoryAccounts::default(),
            params,
        }
    }

    fn finish(self) -> (Side, Quality, Cost) {
        let stats: HashMap<&str, &RuleStats> = self.evaluator.stats().collect();
        let mut cost = BTreeMap::new();
        for (id, nanos) in self.evaluator.timings() {
            if nanos.is_empty() {
                continue;
            }
            let mean_us = nanos.iter().map(|&n| u64::from(n)).sum::<u64>() as f64 / nanos.len() as f64 / 1000.0;
            let mut sorted = nanos.to_vec();
            sorted.sort_unstable();
            let p99_us = f64::from(sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]) / 1000.0;
            let s = stats.get(id).copied().cloned().unwrap_or_default();
            let fuel_mean = s.fuel.checked_div(s.invocations).unwrap_or(0);
            cost.insert(id.to_owned(), RuleCost { mean_us, p99_us, fuel_mean });
        }
        let (mut side, quality) = self.tally.finish();
        side.params = self.params;
        (side, quality, Cost { rules: cost })
    }
}
