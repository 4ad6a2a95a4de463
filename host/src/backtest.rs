//! Backtests: what a candidate rules directory would have decided on
//! historical transactions, next to a baseline, before it goes live.
//!
//! Both rule sets run over the same records, each against its own
//! in-memory account state, exactly as the pipelines run them (the same
//! per-record core, [`crate::record::process`]): read-only, nothing written
//! to a live store or a topic. Decisions depend on event time and the rule
//! versions only, so the same input and rules give the same [`Report`],
//! byte for byte, whatever order the accounts' records interleave in
//! (records of one account keep their order, as on a Kafka partition).
//!
//! The report has, per side, each rule's invocations, hits by outcome,
//! errors and fuel; the decisions that change from baseline to candidate
//! (counts by transition, and examples with their reasons); with a labels
//! file, precision, recall and false-positive rate per rule and for the
//! whole decision; hits over event time and the score distribution for the
//! charts. What evaluations cost — time (mean, p99) and fuel — is kept apart
//! ([`Cost`]) from the report that must be reproducible: time is measured,
//! and fuel depends on the rule instance's history (its allocator's state),
//! which follows the order the accounts' records interleave in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::engine::{Evaluator, Policy, RuleSet};
use crate::events::{DecisionEvent, DecisionType, InputPosition, RuleOutcome, TransactionRecorded, parse_input};
use crate::record::{Accounts, Counters, Processed, process};
use crate::state::AccountState;

/// How many changed decisions the report shows as examples.
pub const EXAMPLES: usize = 20;
/// Width of a bucket of the hits-over-time chart.
const BUCKET_MS: i64 = 60 * 60 * 1000;

/// Transaction id → what it really was, from a labels file.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    by_transaction: HashMap<String, Label>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    Legitimate,
    /// Fraud, with the pattern's name when the file gives one.
    Fraud(String),
}

impl Labels {
    /// Reads a labels file: one `transaction_id,label` per line (CSV, an
    /// optional header line) or JSON lines with `transaction_id` and
    /// `label`. A label of `legit`, `legitimate`, `genuine`, `ok` or
    /// `not_fraud` marks a legitimate transaction; any other (`fraud`, or a
    /// pattern's name such as `card-testing`) marks fraud. Errors name the
    /// line.
    pub fn parse(text: &str, file: &Path) -> anyhow::Result<Labels> {
        let mut by_transaction = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, label) = if line.starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: not JSON: {e}", file.display(), n + 1))?;
                let field = |name: &str| {
                    v.get(name).and_then(|x| x.as_str()).map(str::to_owned).ok_or_else(|| {
                        anyhow::anyhow!("{}:{}: `{name}` missing or not a string", file.display(), n + 1)
                    })
                };
                (field("transaction_id")?, field("label")?)
            } else {
                let Some((id, label)) = line.split_once(',') else {
                    anyhow::bail!("{}:{}: expected `transaction_id,label`", file.display(), n + 1);
                };
                if n == 0 && id.trim() == "transaction_id" {
                    continue;
                }
                (id.trim().to_owned(), label.trim().to_owned())
            };
            if label.is_empty() {
                anyhow::bail!("{}:{}: the label of {id} is empty", file.display(), n + 1);
            }
            let label = match label.to_ascii_lowercase().as_str() {
                "legit" | "legitimate" | "genuine" | "ok" | "not_fraud" => Label::Legitimate,
                _ => Label::Fraud(label),
            };
            by_transaction.insert(id, label);
        }
        Ok(Labels { by_transaction })
    }

    fn get(&self, transaction_id: &str) -> Option<&Label> {
        self.by_transaction.get(transaction_id)
    }
}

/// The comparison of a backtest. Serializes to the `--json` output.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    /// What the records were.
    pub input: Counters,
    /// First and last event time of the transactions, RFC 3339.
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub baseline: Side,
    pub candidate: Side,
    pub changes: Changes,
    /// With a labels file: how well each side's rules and decisions match it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelReport>,
}

/// One side of the comparison.
#[derive(Debug, Serialize, PartialEq)]
pub struct Side {
    /// The rules directory it ran.
    pub rules_dir: String,
    pub decisions: BTreeMap<DecisionType, u64>,
    pub rules: Vec<RuleReport>,
    /// Decisions by total score, in buckets of 10 points keyed by their
    /// lowest score (200 holds 200 and above), for the score distribution.
    pub scores: BTreeMap<u32, u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RuleReport {
    pub rule_id: String,
    pub version_label: String,
    pub rule_version: String,
    pub mode: String,
    pub invocations: u64,
    /// Verdicts by outcome (`pass`, `score`, `suspect`, `lock`, `error`).
    pub outcomes: BTreeMap<String, u64>,
    /// Hits (outcomes other than pass and error) per hour of event time,
    /// keyed by the hour's start in ms since the epoch.
    pub hits_by_hour: BTreeMap<i64, u64>,
}

/// The decisions that differ between baseline and candidate.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Changes {
    pub total: u64,
    /// `"TransactionVerified -> FraudSuspected"` → count.
    pub by_transition: BTreeMap<String, u64>,
    /// The first [`EXAMPLES`] by event time, then transaction id.
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Example {
    pub transaction_id: String,
    pub account_id: String,
    pub occurred_at: String,
    pub from: DecisionType,
    pub to: DecisionType,
    pub baseline_reason: Option<String>,
    pub candidate_reason: Option<String>,
    pub label: Option<String>,
}

/// Precision, recall and false-positive rate against the labels.
#[derive(Debug, Serialize, PartialEq)]
pub struct LabelReport {
    /// Transactions decided that have a label, and how many are fraud.
    pub labelled: u64,
    pub fraud: u64,
    pub baseline: Quality,
    pub candidate: Quality,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Quality {
    /// The decision flags fraud when it is not `TransactionVerified`.
    pub decision: Confusion,
    /// A rule flags fraud when its verdict is score, suspect or lock.
    pub rules: BTreeMap<String, Confusion>,
}

/// A confusion matrix and the rates people read from it.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct Confusion {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
    /// TP / (TP + FP); absent when nothing was flagged.
    pub precision: Option<f64>,
    /// TP / (TP + FN); absent without fraud.
    pub recall: Option<f64>,
    /// FP / (FP + TN); absent without legitimate transactions.
    pub false_positive_rate: Option<f64>,
}

impl Confusion {
    fn add(&mut self, flagged: bool, fraud: bool) {
        match (flagged, fraud) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (false, true) => self.false_negatives += 1,
        }
    }

    fn finish(mut self) -> Confusion {
        let ratio = |a: u64, b: u64| (a + b > 0).then(|| round4(a as f64 / (a + b) as f64));
        self.precision = ratio(self.true_positives, self.false_positives);
        self.recall = ratio(self.true_positives, self.false_negatives);
        self.false_positive_rate = ratio(self.false_positives, self.true_negatives);
        self
    }
}

/// Four decimals: the same figure on every machine, and easy to read.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// What each rule's evaluations cost on one side (not reproducible; see
/// the module's documentation).
#[derive(Debug, Default, Serialize)]
pub struct Cost {
    /// Rule id → its cost.
    pub rules: BTreeMap<String, RuleCost>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct RuleCost {
    pub mean_us: f64,
    pub p99_us: f64,
    pub fuel_mean: u64,
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

/// What one side decided, counted: everything of the report but the cost.
struct Tally {
    rules_dir: String,
    decisions: BTreeMap<DecisionType, u64>,
    scores: BTreeMap<u32, u64>,
    /// Per rule id: its version label, content hash and mode, as the
    /// decisions name them.
    versions: BTreeMap<String, (String, String, String)>,
    outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    hits_by_hour: BTreeMap<String, BTreeMap<i64, u64>>,
    confusion: Confusion,
    rule_confusion: BTreeMap<String, Confusion>,
}

impl Tally {
    fn new(rules_dir: String) -> Tally {
        Tally {
            rules_dir,
            decisions: BTreeMap::new(),
            scores: BTreeMap::new(),
            versions: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            hits_by_hour: BTreeMap::new(),
            confusion: Confusion::default(),
            rule_confusion: BTreeMap::new(),
        }
    }

    fn count(&mut self, d: &DecisionEvent, label: Option<&Label>) {
        *self.decisions.entry(d.event_type).or_default() += 1;
        *self.scores.entry((d.score / 10).min(20) * 10).or_default() += 1;
        let hour = (d.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64 / BUCKET_MS * BUCKET_MS;
        let fraud = label.map(|l| matches!(l, Label::Fraud(_)));
        if let Some(fraud) = fraud {
            self.confusion.add(d.event_type != DecisionType::TransactionVerified, fraud);
        }
        for r in &d.rules {
            let id = r.rule_id.as_str();
            if !self.versions.contains_key(id) {
                let version = (r.version_label.to_string(), r.rule_version.to_string(), r.mode.to_string());
                self.versions.insert(id.to_owned(), version);
            }
            *self.outcomes.entry(id.to_owned()).or_default().entry(r.outcome.to_string()).or_default() += 1;
            let hit = !matches!(r.outcome, RuleOutcome::Pass | RuleOutcome::Error);
            if hit {
                *self.hits_by_hour.entry(id.to_owned()).or_default().entry(hour).or_default() += 1;
            }
            if let Some(fraud) = fraud {
                self.rule_confusion.entry(id.to_owned()).or_default().add(hit, fraud);
            }
        }
    }

    fn finish(mut self) -> (Side, Quality) {
        let rules = std::mem::take(&mut self.versions)
            .into_iter()
            .map(|(id, (version_label, rule_version, mode))| {
                let outcomes = self.outcomes.remove(&id).unwrap_or_default();
                RuleReport {
                    invocations: outcomes.values().sum(),
                    hits_by_hour: self.hits_by_hour.remove(&id).unwrap_or_default(),
                    rule_id: id,
                    version_label,
                    rule_version,
                    mode,
                    outcomes,
                }
            })
            .collect();
        let quality = Quality {
            decision: self.confusion.finish(),
            rules: self.rule_confusion.into_iter().map(|(id, c)| (id, c.finish())).collect(),
        };
        (Side { rules_dir: self.rules_dir, decisions: self.decisions, rules, scores: self.scores }, quality)
    }
}

/// One side while the backtest runs.
struct Running {
    tally: Tally,
    evaluator: Evaluator,
    accounts: Memory,
}

impl Running {
    fn new(rules_dir: &Path, rules: &RuleSet, policy: &Policy) -> Running {
        let mut evaluator = Evaluator::new(rules, policy.clone());
        evaluator.time_evaluations();
        Running { tally: Tally::new(rules_dir.display().to_string()), evaluator, accounts: Memory::default() }
    }

    fn finish(self) -> (Side, Quality, Cost) {
        let stats: HashMap<&str, &crate::engine::RuleStats> = self.evaluator.stats().collect();
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
        let (side, quality) = self.tally.finish();
        (side, quality, Cost { rules: cost })
    }
}

/// What a backtest produced: the reproducible report, and what each
/// side's evaluations cost.
pub struct Outcome {
    /// What was compared: "weir backtest" or "weir shadow report".
    pub title: &'static str,
    pub report: Report,
    pub baseline_cost: Cost,
    pub candidate_cost: Cost,
}

/// A rule set to backtest, and the directory it came from (for the report).
pub struct RulesUnder<'a> {
    pub dir: &'a Path,
    pub rules: &'a RuleSet,
}

/// Runs `baseline` and `candidate` over `records` (raw input records, in
/// order) and compares them.
/// Records per hand-over from a side's thread to the comparison.
const CHUNK: usize = 512;

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
        let (to_compare_b, from_base) = std::sync::mpsc::sync_channel::<Vec<Option<Box<DecisionEvent>>>>(8);
        let (to_compare_c, from_cand) = std::sync::mpsc::sync_channel::<Vec<Option<Box<DecisionEvent>>>>(8);
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

/// The pairs of decisions compared so far.
#[derive(Default)]
struct Comparison {
    changed: Vec<Example>,
    by_transition: BTreeMap<String, u64>,
    first: Option<time::OffsetDateTime>,
    last: Option<time::OffsetDateTime>,
    total_changes: u64,
    labelled: u64,
    fraud: u64,
}

impl Comparison {
    /// One transaction's baseline and candidate decisions.
    fn add(&mut self, b: &DecisionEvent, c: &DecisionEvent, labels: Option<&Labels>) {
        self.first = Some(self.first.map_or(b.occurred_at, |f| f.min(b.occurred_at)));
        self.last = Some(self.last.map_or(b.occurred_at, |l| l.max(b.occurred_at)));
        let label = labels.and_then(|l| l.get(&b.transaction_id));
        if let Some(label) = label {
            self.labelled += 1;
            self.fraud += u64::from(matches!(label, Label::Fraud(_)));
        }
        if b.event_type == c.event_type {
            return;
        }
        self.total_changes += 1;
        let transition = format!("{} -> {}", b.event_type.as_str(), c.event_type.as_str());
        *self.by_transition.entry(transition).or_default() += 1;
        self.changed.push(Example {
            transaction_id: b.transaction_id.clone(),
            account_id: b.account_id.clone(),
            occurred_at: rfc3339(b.occurred_at),
            from: b.event_type,
            to: c.event_type,
            baseline_reason: b.reason.clone(),
            candidate_reason: c.reason.clone(),
            label: label.map(|l| match l {
                Label::Legitimate => "legitimate".to_owned(),
                Label::Fraud(p) => p.clone(),
            }),
        });
        // Keep the earliest examples only, by a total order: the result does
        // not depend on how accounts' records interleave.
        if self.changed.len() > 4 * EXAMPLES {
            sort_examples(&mut self.changed);
            self.changed.truncate(EXAMPLES);
        }
    }

    fn finish(
        mut self,
        input: Counters,
        baseline: Side,
        candidate: Side,
        quality: Option<(Quality, Quality)>,
    ) -> Report {
        sort_examples(&mut self.changed);
        self.changed.truncate(EXAMPLES);
        let (labelled, fraud) = (self.labelled, self.fraud);
        Report {
            input,
            first_event: self.first.map(rfc3339),
            last_event: self.last.map(rfc3339),
            baseline,
            candidate,
            changes: Changes { total: self.total_changes, by_transition: self.by_transition, examples: self.changed },
            labels: quality.map(|(baseline, candidate)| LabelReport { labelled, fraud, baseline, candidate }),
        }
    }
}

/// The shadow report: from decisions weir published, what the shadow rules
/// would have changed had they been enforced. The baseline is each
/// decision as published; the candidate is the same rule results with every
/// shadow rule enforced, combined by `policy` (the one weir ran with), with
/// the accounts' locks as that alternative would have set them. Only
/// decisions with event time in `[from_ms, to_ms)` count.
pub fn shadow(
    decisions: impl IntoIterator<Item = DecisionEvent>,
    source: &str,
    policy: &Policy,
    labels: Option<&Labels>,
    (from_ms, to_ms): (Option<i64>, Option<i64>),
) -> Outcome {
    let mut base = Tally::new(format!("{source} (as published)"));
    let mut cand = Tally::new(format!("{source} (shadow rules enforced)"));
    let mut comparison = Comparison::default();
    let mut input = Counters::default();
    let mut locks: HashMap<String, crate::state::Lock> = HashMap::new();
    for published in decisions {
        let ms = (published.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64;
        if from_ms.is_some_and(|f| ms < f) || to_ms.is_some_and(|t| ms >= t) {
            continue;
        }
        let mut promoted = published.clone();
        for r in &mut promoted.rules {
            r.mode = crate::events::RuleMode::Enforce;
        }
        let combined = policy.combine(&promoted.rules, locks.get(&promoted.account_id));
        if combined.event_type == DecisionType::AccountLocked {
            let lock = crate::state::Lock {
                transaction_id: promoted.transaction_id.clone(),
                occurred_at_ms: ms,
                reason: combined.reason.clone().unwrap_or_default(),
            };
            locks.insert(promoted.account_id.clone(), lock);
        }
        promoted.event_type = combined.event_type;
        promoted.score = combined.score;
        promoted.reason = combined.reason;
        input.records += 1;
        *input.decisions.entry(published.event_type).or_default() += 1;
        let label = labels.and_then(|l| l.get(&published.transaction_id));
        base.count(&published, label);
        cand.count(&promoted, label);
        comparison.add(&published, &promoted, labels);
    }
    let (baseline, base_quality) = base.finish();
    let (candidate, cand_quality) = cand.finish();
    let report = comparison.finish(input, baseline, candidate, labels.map(|_| (base_quality, cand_quality)));
    Outcome { title: "weir shadow report", report, baseline_cost: Cost::default(), candidate_cost: Cost::default() }
}

/// One side: decides every record, counts into `side` (and `input`, if
/// given), and hands each record's decision (or `None`) to the comparison
/// in chunks, in record order.
fn decide_side(
    records: &[Vec<u8>],
    side: &mut Running,
    labels: Option<&Labels>,
    mut input: Option<&mut Counters>,
    to_compare: std::sync::mpsc::SyncSender<Vec<Option<Box<DecisionEvent>>>>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for (offset, record) in records.iter().enumerate() {
        if record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let position = InputPosition { topic: "backtest".to_owned(), partition: 0, offset: offset as i64 };
        let parsed = parse_input(record, crate::events::MAX_EVENT_BYTES);
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

fn sort_examples(examples: &mut [Example]) {
    examples.sort_by(|a, b| (&a.occurred_at, &a.transaction_id).cmp(&(&b.occurred_at, &b.transaction_id)));
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The report as a terminal table.
pub fn render_text(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} records ({} transactions, {} dead letters, {} confirmations, {} duplicates), event time {} .. {}",
        outcome.title,
        r.input.records,
        r.input.decided(),
        r.input.dead_letters,
        r.input.confirmations,
        r.input.duplicates,
        r.first_event.as_deref().unwrap_or("-"),
        r.last_event.as_deref().unwrap_or("-")
    );
    for (name, side, cost) in
        [("baseline", &r.baseline, &outcome.baseline_cost), ("candidate", &r.candidate, &outcome.candidate_cost)]
    {
        let decisions: Vec<String> = DecisionType::ALL
            .iter()
            .map(|t| format!("{} {}", t.as_str(), side.decisions.get(t).unwrap_or(&0)))
            .collect();
        let _ = writeln!(out, "\n{name} ({}): {}", side.rules_dir, decisions.join(", "));
        let _ = writeln!(
            out,
            "  {:<18} {:<9} {:<8} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9}",
            "rule",
            "version",
            "mode",
            "evaluated",
            "score",
            "suspect",
            "lock",
            "error",
            "pass",
            "avg fuel",
            "mean µs",
            "p99 µs"
        );
        for rule in &side.rules {
            let n = |o: &str| rule.outcomes.get(o).copied().unwrap_or(0);
            let c = cost.rules.get(&rule.rule_id).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<18} {:<9} {:<8} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>9.1} {:>9.1}",
                rule.rule_id,
                rule.version_label,
                rule.mode,
                rule.invocations,
                n("score"),
                n("suspect"),
                n("lock"),
                n("error"),
                n("pass"),
                c.fuel_mean,
                c.mean_us,
                c.p99_us
            );
        }
    }
    let _ = writeln!(out, "\nChanged decisions: {}", r.changes.total);
    for (transition, n) in &r.changes.by_transition {
        let _ = writeln!(out, "  {transition}: {n}");
    }
    for e in r.changes.examples.iter().take(10) {
        let _ = writeln!(
            out,
            "  {} {} {} {} -> {}: {}{}",
            e.occurred_at,
            e.transaction_id,
            e.account_id,
            e.from.as_str(),
            e.to.as_str(),
            e.candidate_reason.as_deref().or(e.baseline_reason.as_deref()).unwrap_or("-"),
            e.label.as_ref().map(|l| format!(" [labelled {l}]")).unwrap_or_default()
        );
    }
    if let Some(l) = &r.labels {
        let _ = writeln!(out, "\nAgainst the labels ({} labelled transactions, {} fraud):", l.labelled, l.fraud);
        let _ = writeln!(out, "  {:<24} {:>10} {:>10} {:>10}", "", "precision", "recall", "FP rate");
        let rate = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.4}"));
        for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
            let c = &q.decision;
            let _ = writeln!(
                out,
                "  {:<24} {:>10} {:>10} {:>10}",
                format!("{name} decision"),
                rate(c.precision),
                rate(c.recall),
                rate(c.false_positive_rate)
            );
            for (id, c) in &q.rules {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>10} {:>10} {:>10}",
                    format!("  {id}"),
                    rate(c.precision),
                    rate(c.recall),
                    rate(c.false_positive_rate)
                );
            }
        }
    }
    out
}

/// Text made safe inside HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Colours of the chart series, in order.
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// The report as one self-contained HTML page: inline styles and SVG
/// charts, no script, nothing fetched.
pub fn render_html(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}}\n\
         table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}\n\
         th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}h2{{margin-top:2rem}}.muted{{color:#777}}\n\
         svg{{background:#fafafa;border:1px solid #ddd}}\n</style></head><body>\n<h1>{title}</h1>\n",
        title = outcome.title
    );
    let _ = writeln!(
        h,
        "<p>{} records: {} transactions, {} dead letters, {} confirmations, {} duplicates. Event time {} to {}.</p>",
        r.input.records,
        r.input.decided(),
        r.input.dead_letters,
        r.input.confirmations,
        r.input.duplicates,
        esc(r.first_event.as_deref().unwrap_or("-")),
        esc(r.last_event.as_deref().unwrap_or("-"))
    );
    h.push_str("<h2>Decisions</h2>\n<table><tr><th class=\"l\"></th>");
    for t in DecisionType::ALL {
        let _ = write!(h, "<th>{}</th>", t.as_str());
    }
    h.push_str("</tr>\n");
    for (name, side) in [("baseline", &r.baseline), ("candidate", &r.candidate)] {
        let _ = write!(h, "<tr><th class=\"l\">{name} <span class=\"muted\">{}</span></th>", esc(&side.rules_dir));
        for t in DecisionType::ALL {
            let _ = write!(h, "<td>{}</td>", side.decisions.get(&t).unwrap_or(&0));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");

    let _ = writeln!(h, "<h2>Changed decisions: {}</h2>", r.changes.total);
    let transitions: Vec<(String, f64)> = r.changes.by_transition.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    h.push_str(&bar_chart(&transitions));
    if !r.changes.examples.is_empty() {
        h.push_str("<table><tr><th class=\"l\">event time</th><th class=\"l\">transaction</th><th class=\"l\">account</th><th class=\"l\">from</th><th class=\"l\">to</th><th class=\"l\">baseline reason</th><th class=\"l\">candidate reason</th><th class=\"l\">label</th></tr>\n");
        for e in &r.changes.examples {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&e.occurred_at),
                esc(&e.transaction_id),
                esc(&e.account_id),
                e.from.as_str(),
                e.to.as_str(),
                esc(e.baseline_reason.as_deref().unwrap_or("")),
                esc(e.candidate_reason.as_deref().unwrap_or("")),
                esc(e.label.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }

    for (name, side, cost) in
        [("Baseline", &r.baseline, &outcome.baseline_cost), ("Candidate", &r.candidate, &outcome.candidate_cost)]
    {
        let _ = writeln!(h, "<h2>{name} rules <span class=\"muted\">{}</span></h2>", esc(&side.rules_dir));
        h.push_str("<table><tr><th class=\"l\">rule</th><th class=\"l\">version</th><th class=\"l\">mode</th><th>evaluated</th><th>score</th><th>suspect</th><th>lock</th><th>error</th><th>pass</th><th>mean fuel</th><th>mean µs</th><th>p99 µs</th></tr>\n");
        for rule in &side.rules {
            let n = |o: &str| rule.outcomes.get(o).copied().unwrap_or(0);
            let c = cost.rules.get(&rule.rule_id).copied().unwrap_or_default();
            let (mean, p99) = (c.mean_us, c.p99_us);
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{mean:.1}</td><td>{p99:.1}</td></tr>",
                esc(&rule.rule_id),
                esc(&rule.version_label),
                esc(&rule.mode),
                rule.invocations,
                n("score"),
                n("suspect"),
                n("lock"),
                n("error"),
                n("pass"),
                c.fuel_mean
            );
        }
        h.push_str("</table>\n");
        let _ = writeln!(h, "<h3>{name}: hits per hour of event time</h3>");
        let series: Vec<(String, &BTreeMap<i64, u64>)> =
            side.rules.iter().map(|rule| (rule.rule_id.clone(), &rule.hits_by_hour)).collect();
        h.push_str(&line_chart(&series));
    }

    h.push_str("<h2>Score distribution</h2>\n");
    h.push_str(&score_chart(&r.baseline.scores, &r.candidate.scores));

    if let Some(l) = &r.labels {
        let _ =
            writeln!(h, "<h2>Against the labels</h2>\n<p>{} labelled transactions, {} fraud.</p>", l.labelled, l.fraud);
        h.push_str("<table><tr><th class=\"l\"></th><th>precision</th><th>recall</th><th>false-positive rate</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th></tr>\n");
        let rate = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.4}"));
        for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
            let rows = std::iter::once((format!("{name} decision"), &q.decision))
                .chain(q.rules.iter().map(|(id, c)| (format!("{name}: {id}"), c)));
            for (row, c) in rows {
                let _ = writeln!(
                    h,
                    "<tr><th class=\"l\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&row),
                    rate(c.precision),
                    rate(c.recall),
                    rate(c.false_positive_rate),
                    c.true_positives,
                    c.false_positives,
                    c.true_negatives,
                    c.false_negatives
                );
            }
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Horizontal bars, one per (label, value).
fn bar_chart(bars: &[(String, f64)]) -> String {
    if bars.is_empty() {
        return "<p class=\"muted\">none</p>\n".to_owned();
    }
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let (width, row) = (720.0, 26.0);
    let height = row * bars.len() as f64 + 10.0;
    let mut s = format!("<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"bar chart\">\n");
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (width - 380.0) * value / max;
        let _ = writeln!(
            s,
            "<text x=\"5\" y=\"{:.1}\" font-size=\"12\">{}</text><rect x=\"330\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{value}</text>",
            y + 13.0,
            esc(label),
            COLOURS[i % COLOURS.len()],
            335.0 + w,
            y + 13.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One polyline per series over the hours any series has, with a legend.
fn line_chart(series: &[(String, &BTreeMap<i64, u64>)]) -> String {
    let with_hits: std::collections::BTreeSet<i64> = series.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let (Some(&first), Some(&last)) = (with_hits.first(), with_hits.last()) else {
        return "<p class=\"muted\">no hits</p>\n".to_owned();
    };
    // Every hour from the first hit to the last, quiet hours at zero.
    let hours: Vec<i64> = (0..=(last - first) / BUCKET_MS).map(|k| first + k * BUCKET_MS).collect();
    let span = ((last - first) / BUCKET_MS).max(1) as f64;
    let max = series.iter().flat_map(|(_, m)| m.values().copied()).max().unwrap_or(1).max(1) as f64;
    let (w, hgt, left, bottom) = (900.0, 260.0, 50.0, 30.0);
    let x = |hour: i64| left + (w - left - 150.0) * ((hour - first) / BUCKET_MS) as f64 / span;
    let y = |v: f64| hgt - bottom - (hgt - bottom - 10.0) * v / max;
    let mut s = format!("<svg width=\"{w}\" height=\"{hgt}\" role=\"img\" aria-label=\"hits per hour\">\n");
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text x=\"5\" y=\"15\" font-size=\"11\">{max}</text><text x=\"5\" y=\"{:.1}\" font-size=\"11\">0</text>",
        y(0.0),
        w - 150.0,
        y(0.0),
        y(0.0)
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
        hgt - 8.0,
        esc(&hour_label(first)),
        w - 150.0,
        hgt - 8.0,
        esc(&hour_label(last))
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut path = String::new();
        for hour in &hours {
            let v = points.get(hour).copied().unwrap_or(0) as f64;
            let _ = write!(path, "{:.1},{:.1} ", x(*hour), y(v));
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            path.trim_end(),
            w - 140.0,
            12.0 + 16.0 * i as f64,
            w - 125.0,
            21.0 + 16.0 * i as f64,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn hour_label(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:00Z")).ok())
        .unwrap_or_default()
}

/// Baseline and candidate bars side by side per score bucket.
fn score_chart(baseline: &BTreeMap<u32, u64>, candidate: &BTreeMap<u32, u64>) -> String {
    let buckets: std::collections::BTreeSet<u32> = baseline.keys().chain(candidate.keys()).copied().collect();
    if buckets.is_empty() {
        return "<p class=\"muted\">no decisions</p>\n".to_owned();
    }
    let max = baseline.values().chain(candidate.values()).copied().max().unwrap_or(1).max(1) as f64;
    let (hgt, bottom, slot) = (240.0, 30.0, 40.0);
    let w = 60.0 + slot * buckets.len() as f64 + 160.0;
    let mut s = format!("<svg width=\"{w}\" height=\"{hgt}\" role=\"img\" aria-label=\"score distribution\">\n");
    for (i, bucket) in buckets.iter().enumerate() {
        let x0 = 50.0 + slot * i as f64;
        for (k, (side, colour)) in [(baseline, COLOURS[0]), (candidate, COLOURS[1])].into_iter().enumerate() {
            let v = side.get(bucket).copied().unwrap_or(0) as f64;
            // A logarithmic scale: most decisions score 0.
            let bar = (hgt - bottom - 10.0) * (v + 1.0).ln() / (max + 1.0).ln();
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"16\" height=\"{bar:.1}\" fill=\"{colour}\"><title>{v}</title></rect>",
                x0 + 17.0 * k as f64,
                hgt - bottom - bar
            );
        }
        let label = if *bucket >= 200 { "200+".to_owned() } else { bucket.to_string() };
        let _ = writeln!(s, "<text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"11\">{label}</text>", hgt - 10.0);
    }
    let lx = w - 150.0;
    let _ = writeln!(
        s,
        "<rect x=\"{lx:.1}\" y=\"10\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"19\" font-size=\"11\">baseline</text><rect x=\"{lx:.1}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"35\" font-size=\"11\">candidate</text><text x=\"{lx:.1}\" y=\"55\" font-size=\"10\" fill=\"#777\">log scale</text>",
        COLOURS[0],
        lx + 15.0,
        COLOURS[1],
        lx + 15.0
    );
    s.push_str("</svg>\n");
    s
}
