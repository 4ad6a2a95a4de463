//! The backtest proper: a baseline and a candidate rule set over the same
//! records, each deciding on its own thread against in-memory accounts
//! through the pipelines' per-record core, their decisions paired record
//! by record for the comparison.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use crate::engine::{Evaluator, Policy, RuleSet, RuleStats};
use crate::events::{DecisionEvent, InputPosition, MAX_EVENT_BYTES, TransactionRecorded, parse_input};
use crate::record::{Accounts, Counters, Processed, process};
use crate::state::AccountState;

use super::compare::Comparison;
use super::labels::Labels;
use super::report::{Cost, Outcome, Quality, RuleCost, Side};
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
    let mut base = Running::new(baseline.dir, baseline.rules, policy);
    let mut cand = Running::new(candidate.dir, candidate.rules, policy);
    let mut input = Counters::default();
    let mut comparison = Comparison::default();
    std::thread::scope(|scope| {
        let (to_compare_b, from_base) = sync_channel::<Chunk>(8);
        let (to_compare_c, from_cand) = sync_channel::<Chunk>(8);
        let base_side = &mut base;
        let input = &mut input;
        scope.spawn(move || decide_side(records, base_side, labels, Some(input), to_compare_b));
        let cand_side = &mut cand;
        scope.spawn(move || decide_side(records, cand_side, labels, None, to_compare_c));
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
    let report = comparison.finish(input, baseline, candidate, labels.map(|_| (base_quality, cand_quality)));
    Outcome { title: "weir backtest", report, baseline_cost, candidate_cost }
}

/// One side: decides every record, counts into `side` (and `input`, if
/// given), and hands each record's decision (or `None`) to the comparison
/// in chunks, in record order.
fn decide_side(
    records: &[Vec<u8>],
    side: &mut Running,
    labels: Option<&Labels>,
    mut input: Option<&mut Counters>,
    to_compare: SyncSender<Chunk>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for (offset, record) in records.iter().enumerate() {
        if record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let position = InputPosition { topic: "backtest".to_owned(), partition: 0, offset: offset as i64 };
        let parsed = parse_input(record, MAX_EVENT_BYTES);
        let Ok(processed) = process(&mut side.evaluator, parsed, position, &mut side.accounts);
        if let Some(input) = input.as_deref_mut() {
            input.count(&processed);
        }
        let decided = match processed {
            Processed::Decided(decision) => {
                side.tally.count(&decision, labels.and_then(|l| l.get(&decision.transaction_id)));
                Some(decision)
            }
            _ => None,
        };
        chunk.push(decided);
        if chunk.len() == CHUNK && to_compare.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err() {
            return;
        }
    }
    let _ = to_compare.send(chunk);
}

/// Accounts in memory, for one side of a backtest.
#[derive(Default)]
struct Memory {
    accounts: HashMap<String, AccountState>,
    decided: HashSet<String>,
}

impl Accounts for Memory {
    type Error = std::convert::Infallible;

    fn account(&mut self, id: &str) -> Result<&mut AccountState, Self::Error> {
        Ok(self.accounts.entry(id.to_owned()).or_default())
    }

    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, Self::Error> {
        Ok(self.decided.contains(&tx.transaction_id))
    }

    fn decided(&mut self, tx: &TransactionRecorded) {
        self.decided.insert(tx.transaction_id.clone());
    }
}

/// One side while the backtest runs.
struct Running {
    tally: Tally,
    evaluator: Evaluator,
    accounts: Memory,
    params: BTreeMap<String, Vec<crate::engine::ParamLine>>,
}

impl Running {
    fn new(rules_dir: &Path, rules: &RuleSet, policy: &Policy) -> Running {
        let mut evaluator = Evaluator::new(rules, policy.clone());
        evaluator.time_evaluations();
        let params = rules.rules().iter().map(|r| (r.spec.id.clone(), r.parameters.lines())).collect();
        Running { tally: Tally::new(rules_dir.display().to_string()), evaluator, accounts: Memory::default(), params }
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
