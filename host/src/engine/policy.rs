//! The decision policy: how rule verdicts become one decision.
//!
//! Only enforced rules count; shadow rules are recorded, never decide.
//! In order:
//!
//! 1. any enforced `lock` verdict, or a total score at or above
//!    `lock_score` (when set) → `AccountLocked`;
//! 2. any enforced `suspect` verdict, a fail-closed rule that failed, or a
//!    total score at or above `suspect_score` → `FraudSuspected`;
//! 3. otherwise → `TransactionVerified`.
//!
//! An account that weir already locked is not locked again: a lock on a
//! locked account becomes `FraudSuspected` with reason `ACCOUNT_ALREADY_LOCKED`,
//! so downstream systems see one `AccountLocked` per lock.

use serde::{Deserialize, Serialize};

use super::verdict::enforced;
use crate::events::{DecisionType, FailurePolicy, RuleOutcome, RuleResult};
use crate::state::Lock;

/// Thresholds of the decision policy (the `[policy]` table of weir.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// A total score of enforced rules at or above this suspects fraud.
    pub suspect_score: u32,
    /// A total score at or above this locks the account; unset: scores never lock.
    pub lock_score: Option<u32>,
    /// How long after a suspected transaction (event time) the customer's
    /// confirmation of it is accepted, in days.
    pub confirmation_window_days: u32,
    /// The most fuel a rule may use per evaluation, on average over its
    /// last [`super::FUEL_WINDOW`] evaluations on a worker, before it is
    /// quarantined (default [`super::FUEL_AVERAGE_MAX`]). Raise it to run
    /// a costly rule (a model, say) at the cost of throughput.
    pub rule_fuel_average: u64,
    /// The same for a rule whose package carries a model (default
    /// [`super::MODEL_FUEL_AVERAGE_MAX`]).
    pub model_fuel_average: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            suspect_score: 50,
            lock_score: None,
            confirmation_window_days: 30,
            rule_fuel_average: super::FUEL_AVERAGE_MAX,
            model_fuel_average: super::MODEL_FUEL_AVERAGE_MAX,
        }
    }
}

/// The policy's answer for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    pub event_type: DecisionType,
    pub score: u32,
    pub reason: Option<String>,
}

impl Policy {
    /// The fuel average `rule` may use before it is quarantined: the
    /// model rules' or the others'.
    pub fn fuel_average_of(&self, rule: &super::LoadedRule) -> u64 {
        if rule.spec.model.is_some() { self.model_fuel_average } else { self.rule_fuel_average }
    }

    /// [`Policy::confirmation_window_days`] in ms.
    pub fn confirmation_window_ms(&self) -> i64 {
        i64::from(self.confirmation_window_days) * 86_400_000
    }

    pub fn combine(&self, results: &[RuleResult], existing_lock: Option<&Lock>) -> Combined {
        let score = results.iter().filter(|r| enforced(r)).map(|r| r.score).fold(0u32, u32::saturating_add);
        let locks = |r: &&RuleResult| enforced(r) && r.outcome == RuleOutcome::Lock;
        let score_locks = self.lock_score.is_some_and(|t| score >= t);
        if results.iter().any(|r| locks(&r)) || score_locks {
            // The reason is built in one string, in the order: the lock
            // already there, each locking rule, the score.
            let mut reason = String::new();
            if let Some(lock) = existing_lock {
                part(
                    &mut reason,
                    format_args!(
                        "ACCOUNT_ALREADY_LOCKED: locked by transaction {} ({})",
                        lock.transaction_id, lock.reason
                    ),
                );
            }
            for r in results.iter().filter(locks) {
                describe(&mut reason, r);
            }
            if score_locks {
                part(
                    &mut reason,
                    format_args!("risk score {score} reached the lock threshold {}", self.lock_score.unwrap_or(0)),
                );
            }
            let event_type =
                if existing_lock.is_some() { DecisionType::FraudSuspected } else { DecisionType::AccountLocked };
            return Combined { event_type, score, reason: Some(reason) };
        }
        let suspects = |r: &&RuleResult| {
            enforced(r)
                && (r.outcome == RuleOutcome::Suspect
                    || (r.outcome == RuleOutcome::Error && r.failure_policy == Some(FailurePolicy::FailClosed)))
        };
        let score_suspects = score >= self.suspect_score;
        if !score_suspects && !results.iter().any(|r| suspects(&r)) {
            return Combined { event_type: DecisionType::TransactionVerified, score, reason: None };
        }
        let mut reason = String::new();
        for r in results.iter().filter(suspects) {
            describe(&mut reason, r);
        }
        if score_suspects {
            part(&mut reason, format_args!("risk score {score} reached the suspect threshold {}", self.suspect_score));
        }
        Combined { event_type: DecisionType::FraudSuspected, score, reason: Some(reason) }
    }
}

/// Appends one part of a decision's reason, after "; " if it is not the
/// first.
fn part(reason: &mut String, text: std::fmt::Arguments<'_>) {
    use std::fmt::Write as _;
    if !reason.is_empty() {
        reason.push_str("; ");
    }
    let _ = reason.write_fmt(text);
}

/// Appends a rule's part of a decision's reason: its id and what it said,
/// without trailing whitespace (a verdict without a message), or that it
/// failed and why.
fn describe(reason: &mut String, r: &RuleResult) {
    if r.outcome == RuleOutcome::Error {
        part(reason, format_args!("{}: rule failed ({})", r.rule_id, r.error.as_deref().unwrap_or("unknown error")));
    } else {
        let start = if reason.is_empty() { 0 } else { reason.len() + 2 };
        part(reason, format_args!("{}: {} {}", r.rule_id, r.reason_code, r.message));
        let kept = reason[start..].trim_end().len();
        reason.truncate(start + kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RuleMode;

    fn result(id: &str, mode: RuleMode, outcome: RuleOutcome, score: u32) -> RuleResult {
        RuleResult {
            rule_id: id.into(),
            rule_version: "sha256:00".into(),
            version_label: "1".into(),
            mode,
            outcome,
            score,
            reason_code: "CODE".into(),
            message: "msg".into(),
            evidence: vec![],
            error: (outcome == RuleOutcome::Error).then(|| "ran out of fuel after 10 units".into()),
            failure_policy: None,
            lists: vec![],
        }
    }

    #[test]
    fn lock_beats_suspect_and_shadow_never_decides() {
        let p = Policy::default();
        let r = [
            result("a", RuleMode::Enforce, RuleOutcome::Suspect, 0),
            result("b", RuleMode::Enforce, RuleOutcome::Lock, 0),
        ];
        assert_eq!(p.combine(&r, None).event_type, DecisionType::AccountLocked);
        let r = [result("b", RuleMode::Shadow, RuleOutcome::Lock, 0)];
        assert_eq!(p.combine(&r, None).event_type, DecisionType::TransactionVerified);
    }

    #[test]
    fn scores_add_up_to_the_thresholds() {
        let p = Policy { lock_score: Some(100), ..Policy::default() };
        let r = [
            result("a", RuleMode::Enforce, RuleOutcome::Score, 30),
            result("b", RuleMode::Enforce, RuleOutcome::Score, 19),
        ];
        assert_eq!(p.combine(&r, None).event_type, DecisionType::TransactionVerified);
        let r = [
            result("a", RuleMode::Enforce, RuleOutcome::Score, 30),
            result("b", RuleMode::Enforce, RuleOutcome::Score, 20),
        ];
        let c = p.combine(&r, None);
        assert_eq!((c.event_type, c.score), (DecisionType::FraudSuspected, 50));
        let r = [result("a", RuleMode::Enforce, RuleOutcome::Score, 100)];
        assert_eq!(p.combine(&r, None).event_type, DecisionType::AccountLocked);
    }

    #[test]
    fn failure_policy_decides_what_an_error_counts_as() {
        let p = Policy::default();
        let mut open = result("a", RuleMode::Enforce, RuleOutcome::Error, 0);
        open.failure_policy = Some(FailurePolicy::FailOpen);
        assert_eq!(p.combine(&[open.clone()], None).event_type, DecisionType::TransactionVerified);
        let mut closed = open;
        closed.failure_policy = Some(FailurePolicy::FailClosed);
        let c = p.combine(&[closed], None);
        assert_eq!(c.event_type, DecisionType::FraudSuspected);
        assert!(c.reason.unwrap().contains("ran out of fuel"));
    }

    /// The reason as it was written before it was built in one string:
    /// each part formatted on its own, trimmed, joined with "; ".
    fn reason_joined(p: &Policy, results: &[RuleResult], lock: Option<&Lock>) -> Option<String> {
        let enforced: Vec<&RuleResult> = results.iter().filter(|r| enforced(r)).collect();
        let score = enforced.iter().map(|r| r.score).fold(0u32, u32::saturating_add);
        let describe = |r: &RuleResult| {
            if r.outcome == RuleOutcome::Error {
                format!("{}: rule failed ({})", r.rule_id, r.error.as_deref().unwrap_or("unknown error"))
            } else {
                format!("{}: {} {}", r.rule_id, r.reason_code, r.message).trim_end().to_owned()
            }
        };
        let mut locks: Vec<String> =
            enforced.iter().filter(|r| r.outcome == RuleOutcome::Lock).map(|r| describe(r)).collect();
        let score_locks = p.lock_score.is_some_and(|t| score >= t);
        if !locks.is_empty() || score_locks {
            if score_locks {
                locks.push(format!("risk score {score} reached the lock threshold {}", p.lock_score.unwrap_or(0)));
            }
            if let Some(lock) = lock {
                let already =
                    format!("ACCOUNT_ALREADY_LOCKED: locked by transaction {} ({})", lock.transaction_id, lock.reason);
                locks.insert(0, already);
            }
            return Some(locks.join("; "));
        }
        let mut suspects: Vec<String> = enforced
            .iter()
            .filter(|r| {
                r.outcome == RuleOutcome::Suspect
                    || (r.outcome == RuleOutcome::Error && r.failure_policy == Some(FailurePolicy::FailClosed))
            })
            .map(|r| describe(r))
            .collect();
        if score >= p.suspect_score {
            suspects.push(format!("risk score {score} reached the suspect threshold {}", p.suspect_score));
        }
        (!suspects.is_empty()).then(|| suspects.join("; "))
    }

    #[test]
    fn the_reason_is_each_part_trimmed_and_joined() {
        let lock = Lock { transaction_id: "tx-1".into(), occurred_at_ms: 0, reason: "card testing".into() };
        let mut blank = result("blank", RuleMode::Enforce, RuleOutcome::Suspect, 10);
        blank.message = String::new();
        let mut spaces = result("spaces", RuleMode::Enforce, RuleOutcome::Lock, 0);
        spaces.message = "trailing  \t".into();
        let mut empty = result("empty", RuleMode::Enforce, RuleOutcome::Suspect, 0);
        (empty.reason_code, empty.message) = (String::new(), " ".into());
        let mut failed = result("failed", RuleMode::Enforce, RuleOutcome::Error, 0);
        failed.failure_policy = Some(FailurePolicy::FailClosed);
        let cases: Vec<Vec<RuleResult>> = vec![
            vec![],
            vec![blank.clone()],
            vec![empty.clone()],
            vec![empty.clone(), blank.clone(), failed.clone()],
            vec![result("s", RuleMode::Enforce, RuleOutcome::Score, 60), blank.clone()],
            vec![blank.clone(), spaces.clone(), result("l", RuleMode::Enforce, RuleOutcome::Lock, 0)],
            vec![result("shadow", RuleMode::Shadow, RuleOutcome::Lock, 0), failed],
            vec![result("s", RuleMode::Enforce, RuleOutcome::Score, 120), empty],
        ];
        for policy in [Policy::default(), Policy { lock_score: Some(100), ..Policy::default() }] {
            for results in &cases {
                for held in [None, Some(&lock)] {
                    let combined = policy.combine(results, held);
                    assert_eq!(combined.reason, reason_joined(&policy, results, held), "{results:?} {held:?}");
                }
            }
        }
    }

    #[test]
    fn a_locked_account_is_not_locked_twice() {
        let lock = Lock { transaction_id: "tx-1".into(), occurred_at_ms: 0, reason: "card testing".into() };
        let r = [result("b", RuleMode::Enforce, RuleOutcome::Lock, 0)];
        let c = Policy::default().combine(&r, Some(&lock));
        assert_eq!(c.event_type, DecisionType::FraudSuspected);
        assert!(c.reason.unwrap().starts_with("ACCOUNT_ALREADY_LOCKED"));
    }
}
