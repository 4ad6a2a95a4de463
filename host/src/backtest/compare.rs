//! The pairs of decisions, baseline and candidate, compared transaction by
//! transaction: which decisions change, by transition, every one of them
//! with the rules' evidence — in a total order, so the result does not
//! depend on how the accounts' records interleave.

use std::collections::BTreeMap;

use crate::events::DecisionEvent;
use crate::record::Counters;

use super::labels::{Label, Labels};
use super::report::{Changes, EXAMPLES, Example, Hit, LabelReport, Quality, Report, Side};

/// The pairs of decisions compared so far.
#[derive(Default)]
pub(super) struct Comparison {
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
    pub(super) fn add(&mut self, b: &DecisionEvent, c: &DecisionEvent, labels: Option<&Labels>) {
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
            baseline_hits: Hit::of(&b.rules),
            candidate_hits: Hit::of(&c.rules),
        });
    }

    pub(super) fn finish(
        mut self,
        input: Counters,
        baseline: Side,
        candidate: Side,
        quality: Option<(Quality, Quality)>,
    ) -> Report {
        // A total order: the result does not depend on how accounts'
        // records interleave.
        sort_examples(&mut self.changed);
        let examples = self.changed[..self.changed.len().min(EXAMPLES)].to_vec();
        let (labelled, fraud) = (self.labelled, self.fraud);
        Report {
            input,
            first_event: self.first.map(rfc3339),
            last_event: self.last.map(rfc3339),
            warm_up: None,
            baseline,
            candidate,
            changes: Changes {
                total: self.total_changes,
                by_transition: self.by_transition,
                examples,
                all: self.changed,
            },
            labels: quality.map(|(baseline, candidate)| LabelReport { labelled, fraud, baseline, candidate }),
        }
    }
}

fn sort_examples(examples: &mut [Example]) {
    examples.sort_by(|a, b| (&a.occurred_at, &a.transaction_id).cmp(&(&b.occurred_at, &b.transaction_id)));
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
