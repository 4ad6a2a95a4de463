//! One side's decisions, counted as they come: decisions by type, the score
//! distribution, each rule's outcomes and hits per hour, and — with labels —
//! the confusion matrices. Everything of the report but the cost.

use std::collections::BTreeMap;

use crate::events::{DecisionEvent, DecisionType, RuleOutcome};

use super::labels::Label;
use super::report::{BUCKET_MS, Confusion, Quality, RuleReport, Side};
use super::scores::Scores;

/// What one side decided, counted: everything of the report but the cost.
pub(super) struct Tally {
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
    /// With labels: the decisions as a ranking, and each model rule's scores.
    ranking: Scores,
    model_scores: BTreeMap<String, Scores>,
}

impl Tally {
    pub(super) fn new(rules_dir: String) -> Tally {
        Tally {
            rules_dir,
            decisions: BTreeMap::new(),
            scores: BTreeMap::new(),
            versions: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            hits_by_hour: BTreeMap::new(),
            confusion: Confusion::default(),
            rule_confusion: BTreeMap::new(),
            ranking: Scores::default(),
            model_scores: BTreeMap::new(),
        }
    }

    pub(super) fn count(&mut self, d: &DecisionEvent, label: Option<&Label>) {
        *self.decisions.entry(d.event_type).or_default() += 1;
        *self.scores.entry((d.score / 10).min(20) * 10).or_default() += 1;
        let hour = (d.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64 / BUCKET_MS * BUCKET_MS;
        let fraud = label.map(|l| matches!(l, Label::Fraud(_)));
        if let Some(fraud) = fraud {
            self.confusion.add(d.event_type != DecisionType::TransactionVerified, fraud);
            let outcome = match d.event_type {
                DecisionType::TransactionVerified => 0.0,
                DecisionType::FraudSuspected => 1.0,
                DecisionType::AccountLocked => 2.0,
            };
            self.ranking.add(outcome * 1e9 + f64::from(d.score), fraud, &d.transaction_id);
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

    /// Counts a model rule's score for a decided transaction with `label`.
    pub(super) fn count_score(&mut self, rule_id: &str, score: f32, transaction_id: &str, label: Option<&Label>) {
        let Some(label) = label else { return };
        let fraud = matches!(label, Label::Fraud(_));
        if !self.model_scores.contains_key(rule_id) {
            self.model_scores.insert(rule_id.to_owned(), Scores::default());
        }
        if let Some(scores) = self.model_scores.get_mut(rule_id) {
            scores.add(f64::from(score), fraud, transaction_id);
        }
    }

    pub(super) fn finish(mut self) -> (Side, Quality) {
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
            ranking: self.ranking.finish(),
            models: self.model_scores.into_iter().map(|(id, s)| (id, s.finish())).collect(),
        };
        let side = Side {
            rules_dir: self.rules_dir,
            decisions: self.decisions,
            rules,
            scores: self.scores,
            params: BTreeMap::new(),
        };
        (side, quality)
    }
}
