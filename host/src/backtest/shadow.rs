//! The shadow report: from decisions weir published, what the shadow rules
//! would have changed had they been enforced — the same comparison as a
//! backtest, without running a rule.

use std::collections::HashMap;

use crate::engine::Policy;
use crate::events::{DecisionEvent, DecisionType, RuleMode};
use crate::record::Counters;
use crate::state::Lock;

use super::compare::Comparison;
use super::labels::Labels;
use super::report::{Cost, Outcome};
use super::tally::Tally;

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
    let mut locks: HashMap<String, Lock> = HashMap::new();
    for published in decisions {
        let ms = (published.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64;
        if from_ms.is_some_and(|f| ms < f) || to_ms.is_some_and(|t| ms >= t) {
            continue;
        }
        let promoted = enforce_shadow_rules(&published, ms, policy, &mut locks);
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

/// `published` as it would have been with every shadow rule enforced: its
/// rule results combined again by `policy`, against the account's lock as
/// this alternative would have set it (`locks`, updated when it locks).
fn enforce_shadow_rules(
    published: &DecisionEvent,
    occurred_at_ms: i64,
    policy: &Policy,
    locks: &mut HashMap<String, Lock>,
) -> DecisionEvent {
    let mut promoted = published.clone();
    for r in &mut promoted.rules {
        r.mode = RuleMode::Enforce;
    }
    let combined = policy.combine(&promoted.rules, locks.get(&promoted.account_id));
    if combined.event_type == DecisionType::AccountLocked {
        let lock = Lock {
            transaction_id: promoted.transaction_id.clone(),
            occurred_at_ms,
            reason: combined.reason.clone().unwrap_or_default(),
        };
        locks.insert(promoted.account_id.clone(), lock);
    }
    promoted.event_type = combined.event_type;
    promoted.score = combined.score;
    promoted.reason = combined.reason;
    promoted
}
