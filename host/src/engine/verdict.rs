//! What a rule said, in the host's terms: a [`Verdict`] with its
//! [`Explanation`] from any backend, checked against the host's limits,
//! and the [`RuleResult`] a decision records for it (verdict or error,
//! with the failure policy applied).
//!
//! Each backend converts its own types into a `Verdict` (native rules
//! here, the contracts in [`super::wasm`]); from there on a rule's result
//! is the same whatever ran it.

use crate::events::{Evidence, FailurePolicy, RuleMode, RuleOutcome, RuleResult};

use super::{LoadedRule, RuleError};

/// Once the explanations of one decision's rules reach this many bytes,
/// later rules' messages and evidence are left out, so every decision fits
/// the output topic's message size (Kafka's default is 1 MB).
pub const DECISION_EXPLANATIONS_MAX: usize = 256 * 1024;

/// A rule's verdict in the host's terms, from any backend.
pub(crate) struct Verdict {
    pub outcome: RuleOutcome,
    pub score: u32,
    pub explanation: Explanation,
}

/// A verdict's reason code, message and evidence.
#[derive(Debug, Default)]
pub(crate) struct Explanation {
    pub reason_code: String,
    pub message: String,
    pub evidence: Vec<(String, String)>,
}

impl Verdict {
    /// Checks the explanation against the host's limits
    /// ([`weir_sdk::limits`]).
    pub(super) fn check(&self) -> Result<(), RuleError> {
        let e = &self.explanation;
        let evidence = e.evidence.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        weir_sdk::limits::check_verdict(&e.reason_code, &e.message, evidence).map_err(RuleError::Verdict)
    }

    /// A native rule's verdict (the SDK's type).
    pub(super) fn from_sdk(v: weir_sdk::Verdict) -> Verdict {
        let (outcome, score) = match v.outcome {
            weir_sdk::Outcome::Pass => (RuleOutcome::Pass, 0),
            weir_sdk::Outcome::Score(p) => (RuleOutcome::Score, p),
            weir_sdk::Outcome::Suspect => (RuleOutcome::Suspect, 0),
            weir_sdk::Outcome::Lock => (RuleOutcome::Lock, 0),
        };
        let evidence = v.evidence.into_iter().map(|e| (e.name, e.value)).collect();
        Verdict {
            outcome,
            score,
            explanation: Explanation { reason_code: v.reason_code, message: v.message, evidence },
        }
    }
}

/// The result a decision records for `rule`: its verdict, or its error
/// with the rule's failure policy.
pub(super) fn rule_result(rule: &LoadedRule, verdict: Result<Verdict, RuleError>) -> RuleResult {
    let base = RuleResult {
        rule_id: rule.id.clone(),
        rule_version: rule.hash.clone(),
        version_label: rule.label.clone(),
        mode: rule.spec.mode,
        outcome: RuleOutcome::Pass,
        score: 0,
        reason_code: String::new(),
        message: String::new(),
        evidence: Vec::new(),
        error: None,
        failure_policy: None,
        lists: Vec::new(),
    };
    match verdict {
        Ok(v) => RuleResult {
            outcome: v.outcome,
            score: v.score,
            reason_code: v.explanation.reason_code,
            message: v.explanation.message,
            evidence: v.explanation.evidence.into_iter().map(|(name, value)| Evidence { name, value }).collect(),
            ..base
        },
        Err(e) => RuleResult {
            outcome: RuleOutcome::Error,
            reason_code: match rule.spec.failure {
                FailurePolicy::FailOpen => String::new(),
                FailurePolicy::FailClosed => "RULE_FAILED".to_owned(),
            },
            error: Some(e.to_string()),
            failure_policy: Some(rule.spec.failure),
            ..base
        },
    }
}

/// Adds `result`'s explanation to `explained`, the bytes of one decision's
/// explanations so far; once they pass [`DECISION_EXPLANATIONS_MAX`], the
/// result's message and evidence are left out.
pub(super) fn limit_explanations(result: &mut RuleResult, explained: &mut usize) {
    *explained += result.reason_code.len() + result.message.len() + result.error.as_ref().map_or(0, String::len);
    *explained += result.evidence.iter().map(|e| e.name.len() + e.value.len()).sum::<usize>();
    if *explained > DECISION_EXPLANATIONS_MAX {
        result.message = "(left out: this decision's explanations reached their size limit)".to_owned();
        result.evidence = Vec::new();
    }
}

/// Whether a result counts towards the decision.
pub(crate) fn enforced(r: &RuleResult) -> bool {
    r.mode == RuleMode::Enforce
}
