//! The comparison a backtest or shadow report produces: the reproducible,
//! serializable [`Report`] (the `--json` output), kept apart from what the
//! evaluations cost ([`Cost`]: measured time, and fuel that follows the
//! records' interleaving), and the [`Outcome`] holding both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::ParamLine;
use crate::events::{DecisionType, Evidence, RuleMode, RuleOutcome, RuleResult};
use crate::record::Counters;

use super::scores::ScoreQuality;

/// How many changed decisions the report shows as examples (the JSON
/// report holds every one in [`Changes::all`]).
pub const EXAMPLES: usize = 20;
/// Width of a bucket of [`RuleReport::hits_by_hour`], in ms.
pub(super) const BUCKET_MS: i64 = 60 * 60 * 1000;

/// The comparison of a backtest. Serializes to the `--json` output.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    /// What the records were.
    pub input: Counters,
    /// First and last event time of the transactions, RFC 3339.
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// With a warm-up: what was decided only to build the accounts' state,
    /// counted nowhere else in the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<WarmUp>,
    pub baseline: Side,
    pub candidate: Side,
    pub changes: Changes,
    /// With a labels file: how well each side's rules and decisions match it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelReport>,
}

/// The warm-up of a backtest (`weir backtest --warm-up-until`): records
/// with event time before `until`, decided by both sides only to build the
/// accounts' state; their decisions are neither counted nor compared.
#[derive(Debug, Serialize, PartialEq)]
pub struct WarmUp {
    /// Where the measured range starts, RFC 3339.
    pub until: String,
    /// Records of the warm-up: transactions, customer confirmations and
    /// duplicates.
    pub records: u64,
    /// Transactions decided in the warm-up.
    pub transactions: u64,
    /// First and last event time of the warm-up's records, RFC 3339.
    pub first_event: Option<String>,
    pub last_event: Option<String>,
}

/// One side of the comparison.
#[derive(Debug, Serialize, PartialEq)]
pub struct Side {
    /// The rules directory it ran.
    pub rules_dir: String,
    pub decisions: BTreeMap<DecisionType, u64>,
    pub rules: Vec<RuleReport>,
    /// Each rule's parameters: the value it ran with and where the value
    /// came from, by rule id (none for `weir shadow-report`, which reads
    /// decisions, not packages).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<ParamLine>>,
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
    /// Every changed decision (`total` of them), in the same order: the
    /// examples are its first ones.
    pub all: Vec<Example>,
}

/// A changed decision: both sides' decision and reason, and the rules that
/// did not pass on each side, with their evidence.
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
    /// The baseline's rules whose verdict was not pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baseline_hits: Vec<Hit>,
    /// The candidate's rules whose verdict was not pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidate_hits: Vec<Hit>,
}

/// A rule's verdict other than pass in a changed decision, as the
/// decision recorded it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub rule_id: String,
    pub mode: RuleMode,
    pub outcome: RuleOutcome,
    #[serde(skip_serializing_if = "is_zero")]
    pub score: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Hit {
    /// The results of `rules` whose outcome is not pass.
    pub(super) fn of(rules: &[RuleResult]) -> Vec<Hit> {
        rules
            .iter()
            .filter(|r| r.outcome != RuleOutcome::Pass)
            .map(|r| Hit {
                rule_id: r.rule_id.to_string(),
                mode: r.mode,
                outcome: r.outcome,
                score: r.score,
                reason_code: r.reason_code.clone(),
                message: r.message.clone(),
                evidence: r.evidence.clone(),
                error: r.error.clone(),
            })
            .collect()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// The decisions as a ranking — by outcome (locked, suspected,
    /// verified), then by risk score — measured without a threshold, to
    /// set the rules next to a model.
    pub ranking: ScoreQuality,
    /// Each model rule's scores (`Context::score`), without a threshold:
    /// by rule id; none for rules that score no model.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ScoreQuality>,
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
    pub(super) fn add(&mut self, flagged: bool, fraud: bool) {
        match (flagged, fraud) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (false, true) => self.false_negatives += 1,
        }
    }

    pub(super) fn finish(mut self) -> Confusion {
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

/// What a backtest produced: the reproducible report, and what each
/// side's evaluations cost.
pub struct Outcome {
    /// What was compared: "weir backtest" or "weir shadow report".
    pub title: &'static str,
    pub report: Report,
    pub baseline_cost: Cost,
    pub candidate_cost: Cost,
}

impl Report {
    /// The `--json` output: pretty-printed and ending in a newline; the
    /// same report gives the same bytes.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .expect("a report serializes: every map key is a string, an integer or a unit variant");
        text.push('\n');
        text
    }
}
