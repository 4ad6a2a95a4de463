//! Conversions between the host's types and the contracts' generated
//! types: verdicts in (both contracts), and the transaction and history
//! out in the first contract's records (`weir:rule@2` takes them
//! wire-encoded instead, see `weir_sdk::wire`).

use super::contract::{wit, wit2};
use crate::engine::verdict::{Explanation, Verdict};
use crate::events::{HostFacts, RuleOutcome as O, TransactionRecorded};

impl Verdict {
    /// A `weir:rule@2` outcome, with the explanation the rule gave through
    /// `verdict.explain` (if any).
    pub(super) fn from_v2(outcome: wit2::Outcome, explanation: Explanation) -> Verdict {
        let (outcome, score) = match outcome {
            wit2::Outcome::Pass => (O::Pass, 0),
            wit2::Outcome::Score(p) => (O::Score, p),
            wit2::Outcome::Suspect => (O::Suspect, 0),
            wit2::Outcome::Lock => (O::Lock, 0),
        };
        Verdict { outcome, score, explanation }
    }

    /// A `weir:rule@1.0.0` verdict.
    pub(super) fn from_v1(v: wit::Verdict) -> Verdict {
        let (outcome, score) = match v.outcome {
            wit::Outcome::Pass => (O::Pass, 0),
            wit::Outcome::Score(p) => (O::Score, p),
            wit::Outcome::Suspect => (O::Suspect, 0),
            wit::Outcome::Lock => (O::Lock, 0),
        };
        let evidence = v.evidence.into_iter().map(|e| (e.name, e.value)).collect();
        Verdict {
            outcome,
            score,
            explanation: Explanation { reason_code: v.reason_code, message: v.message, evidence },
        }
    }
}

fn channel_to_wit(c: weir_sdk::Channel) -> wit::Channel {
    match c {
        weir_sdk::Channel::CardPresent => wit::Channel::CardPresent,
        weir_sdk::Channel::Ecommerce => wit::Channel::Ecommerce,
        weir_sdk::Channel::Transfer => wit::Channel::Transfer,
        weir_sdk::Channel::Atm => wit::Channel::Atm,
    }
}

pub(super) fn past_to_wit(p: &weir_sdk::PastTransaction) -> wit::PastTransaction {
    wit::PastTransaction {
        transaction_id: p.transaction_id.clone(),
        amount: wit::Money { minor_units: p.amount.minor_units, currency: p.amount.currency.clone() },
        merchant_id: p.merchant_id.clone(),
        category_code: p.category_code.clone(),
        country: p.country.clone(),
        channel: channel_to_wit(p.channel),
        occurred_at_ms: p.occurred_at_ms,
    }
}

/// The transaction as the first contract carries it.
pub(crate) fn transaction_to_wit(tx: &TransactionRecorded, facts: HostFacts) -> wit::Transaction {
    wit::Transaction {
        event_id: tx.event_id.clone(),
        transaction_id: tx.transaction_id.clone(),
        account_id: tx.account_id.clone(),
        amount: wit::Money { minor_units: tx.amount.minor_units, currency: tx.amount.currency.clone() },
        merchant: wit::Merchant {
            id: tx.merchant.id.clone(),
            name: tx.merchant.name.clone(),
            category_code: tx.merchant.category_code.clone(),
            country: tx.merchant.country.clone(),
        },
        channel: channel_to_wit(tx.channel),
        occurred_at_ms: tx.occurred_at_ms(),
        attributes: tx.rule_attributes(facts),
    }
}
