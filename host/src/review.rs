//! Review cases: what analysts work on, folded from weir's published
//! decisions and the analysts' dispositions (`weir case list`, `weir case
//! show`).
//!
//! Every `FraudSuspected` and `AccountLocked` opens a case for its account,
//! or joins the account's open case. A disposition ([`CaseResolved`]) that
//! names a transaction of the open case resolves it with its verdict; the
//! account's flagged decisions after the last transaction a disposition
//! names open the next case. An accepted unlock is noted on the case it
//! falls in, and so is a customer's confirmation ("it was me") of one of
//! the case's transactions. Order within an account is the input's (a decision's input
//! partition and offset), never a wall clock, so the same decisions and
//! dispositions always give the same cases, whichever topic or file they
//! were read from and in whatever order the topics were read.
//!
//! The fold is a pure function of what was published; it holds the cases
//! in memory and is meant for the command line over a day's or a week's
//! decisions. A console over months of cases needs a store it keeps up to
//! date, not this fold run per request.

mod read;
mod write;

use std::collections::BTreeMap;

use serde::Serialize;

use weir_sdk::Money;

pub use read::{Files, ReadError, Record, Source, case_topics, read_published};
pub use write::append_lines;

use crate::events::{
    AccountUnlocked, CaseResolved, CustomerConfirmation, DecisionEvent, DecisionType, RuleOutcome, Verdict,
};

/// How many of an account's decisions before a case a case shows.
pub const RECENT_DECISIONS: usize = 10;

/// A case's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseState {
    Open,
    /// Resolved as fraud.
    Fraud,
    /// Resolved as legitimate (a false alarm).
    Legitimate,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Fraud => "fraud",
            CaseState::Legitimate => "legitimate",
        }
    }
}

/// One decision as a case shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseDecision {
    pub event_id: String,
    pub event_type: DecisionType,
    pub transaction_id: String,
    pub occurred_at: String,
    pub amount: Money,
    pub merchant_id: String,
    pub score: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The enforced and shadow rules that did not pass: `rule_id:REASON_CODE`
    /// (shadow ones marked), with their messages and evidence in `rules`.
    pub fired: Vec<String>,
    /// The rules that did not pass, in full (reason, message, evidence, version).
    pub rules: Vec<crate::events::RuleResult>,
    /// Where weir read the transaction.
    pub input: crate::events::InputPosition,
}

/// The verdict that closed a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub analyst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub at: String,
    pub event_id: String,
}

/// An unlock noted on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseUnlock {
    pub transaction_id: String,
    pub analyst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub at: String,
}

/// A customer's confirmation ("it was me") of one of a case's transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseConfirmation {
    pub transaction_id: String,
    pub merchant_id: String,
    pub at: String,
}

/// One review case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// Deterministic: UUID v5 of the first decision's event id.
    pub case_id: String,
    pub account_id: String,
    pub state: CaseState,
    /// The event time of the first decision.
    pub opened_at: String,
    /// The highest score among its decisions.
    pub max_score: u32,
    /// Whether weir locked the account in this case.
    pub locked: bool,
    /// Its flagged decisions, in input order.
    pub decisions: Vec<CaseDecision>,
    /// The account's decisions just before the case (at most [`RECENT_DECISIONS`]), any type.
    pub recent: Vec<CaseDecision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unlocks: Vec<CaseUnlock>,
    /// The customer's confirmations of the case's transactions, in input order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confirmations: Vec<CaseConfirmation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// What the cases are folded from; any order.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub decisions: Vec<DecisionEvent>,
    pub unlocks: Vec<AccountUnlocked>,
    pub dispositions: Vec<CaseResolved>,
    /// Customers' confirmations, from weir's input.
    pub confirmations: Vec<CustomerConfirmation>,
}

/// Every case, oldest first by account then input order.
pub fn cases(published: Published) -> Vec<Case> {
    let mut by_account: BTreeMap<String, Vec<DecisionEvent>> = BTreeMap::new();
    for d in published.decisions {
        by_account.entry(d.account_id.clone()).or_default().push(d);
    }
    // Dispositions in the order they were written (a later one wins).
    let mut dispositions: BTreeMap<&str, Vec<&CaseResolved>> = BTreeMap::new();
    for r in &published.dispositions {
        dispositions.entry(r.account_id.as_str()).or_default().push(r);
    }
    let mut unlocks: BTreeMap<&str, Vec<&AccountUnlocked>> = BTreeMap::new();
    for u in &published.unlocks {
        unlocks.entry(u.account_id.as_str()).or_default().push(u);
    }
    let mut confirmations: BTreeMap<&str, Vec<&CustomerConfirmation>> = BTreeMap::new();
    for c in &published.confirmations {
        confirmations.entry(c.account_id.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    for (account, mut decisions) in by_account {
        decisions.sort_by_key(|d| (d.input.partition, d.input.offset));
        let resolutions = dispositions.get(account.as_str()).map(Vec::as_slice).unwrap_or_default();
        let unlocks = unlocks.get(account.as_str()).map(Vec::as_slice).unwrap_or_default();
        let first = out.len();
        fold_account(&decisions, resolutions, unlocks, &mut out);
        let confirmations = confirmations.get(account.as_str()).map(Vec::as_slice).unwrap_or_default();
        for case in &mut out[first..] {
            note_confirmations(case, confirmations);
        }
    }
    out
}

/// Notes on `case` the customer's confirmations of its transactions (the
/// account's confirmations, in input order).
fn note_confirmations(case: &mut Case, confirmations: &[&CustomerConfirmation]) {
    for c in confirmations {
        if case.decisions.iter().any(|d| d.transaction_id == c.transaction_id) {
            case.confirmations.push(CaseConfirmation {
                transaction_id: c.transaction_id.clone(),
                merchant_id: c.merchant_id.clone(),
                at: time_text(c.occurred_at),
            });
        }
    }
}

fn fold_account(
    decisions: &[DecisionEvent],
    resolutions: &[&CaseResolved],
    unlocks: &[&AccountUnlocked],
    out: &mut Vec<Case>,
) {
    let index_of = |tx: &str| decisions.iter().position(|d| d.transaction_id == tx);
    let mut open: Option<Case> = None;
    for (i, d) in decisions.iter().enumerate() {
        if d.event_type == DecisionType::TransactionVerified {
            continue;
        }
        let case = open.get_or_insert_with(|| {
            let recent = decisions[i.saturating_sub(RECENT_DECISIONS)..i].iter().map(case_decision).collect();
            Case {
                case_id: uuid::Uuid::new_v5(
                    &crate::events::DECISION_ID_NAMESPACE,
                    format!("case\n{}", d.event_id).as_bytes(),
                )
                .to_string(),
                account_id: d.account_id.clone(),
                state: CaseState::Open,
                opened_at: time_text(d.occurred_at),
                max_score: 0,
                locked: false,
                decisions: Vec::new(),
                recent,
                unlocks: Vec::new(),
                confirmations: Vec::new(),
                resolution: None,
            }
        });
        case.max_score = case.max_score.max(d.score);
        case.locked |= d.event_type == DecisionType::AccountLocked;
        case.decisions.push(case_decision(d));
        // The last disposition naming a transaction of the case resolves it, as of the
        // furthest transaction it names: decisions after that open the next case.
        let resolving = resolutions
            .iter()
            .rev()
            .find(|r| r.transaction_ids.iter().any(|t| case.decisions.iter().any(|c| &c.transaction_id == t)));
        if let Some(r) = resolving {
            let through = r.transaction_ids.iter().filter_map(|t| index_of(t)).max().unwrap_or(i);
            let next_flagged =
                decisions[i + 1..].iter().position(|n| n.event_type != DecisionType::TransactionVerified);
            if next_flagged.is_none_or(|n| i + 1 + n > through) {
                let mut case = open.take().expect("opened above");
                case.state = match r.verdict {
                    Verdict::Fraud => CaseState::Fraud,
                    Verdict::Legitimate => CaseState::Legitimate,
                };
                case.resolution = Some(Resolution {
                    verdict: r.verdict,
                    pattern: r.pattern.clone(),
                    analyst: r.analyst.clone(),
                    note: r.note.clone(),
                    at: time_text(r.occurred_at),
                    event_id: r.event_id.clone(),
                });
                note_unlocks(&mut case, unlocks);
                out.push(case);
            }
        }
    }
    if let Some(mut case) = open {
        note_unlocks(&mut case, unlocks);
        out.push(case);
    }
}

/// Notes on `case` the unlocks of the locks its decisions made.
fn note_unlocks(case: &mut Case, unlocks: &[&AccountUnlocked]) {
    for u in unlocks {
        let lifts_this_case = case
            .decisions
            .iter()
            .any(|d| d.event_type == DecisionType::AccountLocked && d.transaction_id == u.transaction_id);
        // An unlock repeated (weir refused the second) is noted once.
        let noted = case.unlocks.iter().any(|n| n.transaction_id == u.transaction_id);
        if lifts_this_case && !noted {
            case.unlocks.push(CaseUnlock {
                transaction_id: u.transaction_id.clone(),
                analyst: u.analyst.clone(),
                note: u.note.clone(),
                at: time_text(u.occurred_at),
            });
        }
    }
}

fn case_decision(d: &DecisionEvent) -> CaseDecision {
    let not_passed: Vec<_> = d.rules.iter().filter(|r| r.outcome != RuleOutcome::Pass).cloned().collect();
    CaseDecision {
        event_id: d.event_id.to_string(),
        event_type: d.event_type,
        transaction_id: d.transaction_id.clone(),
        occurred_at: time_text(d.occurred_at),
        amount: d.amount.clone(),
        merchant_id: d.merchant_id.clone(),
        score: d.score,
        reason: d.reason.clone(),
        fired: not_passed
            .iter()
            .map(|r| {
                let shadow = if r.mode == crate::events::RuleMode::Shadow { " (shadow)" } else { "" };
                format!("{}:{}{shadow}", r.rule_id, r.reason_code)
            })
            .collect(),
        rules: not_passed,
        input: d.input.clone(),
    }
}

fn time_text(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// An amount in minor units as a person reads it: `EUR 949.00`, `JPY 1200`,
/// `KWD 1.250` — the currency's ISO 4217 minor unit (two digits unless the
/// currency is known to have none, three or four).
pub fn amount_text(minor_units: i64, currency: &str) -> String {
    let digits: u32 = match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    };
    let currency = crate::events::shown(currency, 8);
    if digits == 0 {
        return format!("{currency} {minor_units}");
    }
    let scale = 10u64.pow(digits);
    let sign = if minor_units < 0 { "-" } else { "" };
    let abs = minor_units.unsigned_abs();
    format!("{currency} {sign}{}.{:0width$}", abs / scale, abs % scale, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::amount_text;

    #[test]
    fn amounts_read_in_their_currencys_minor_unit() {
        assert_eq!(amount_text(94_900, "EUR"), "EUR 949.00");
        assert_eq!(amount_text(5, "EUR"), "EUR 0.05");
        assert_eq!(amount_text(-150, "USD"), "USD -1.50");
        assert_eq!(amount_text(1_200, "JPY"), "JPY 1200");
        assert_eq!(amount_text(1_250, "KWD"), "KWD 1.250");
        assert_eq!(amount_text(i64::MIN, "EUR"), "EUR -92233720368547758.08");
    }
}
