//! Per-account state: what rules remember about an account, and what the
//! host itself remembers (the lock).
//!
//! State is keyed by account id, so it is partitioned exactly like the
//! input events. Each rule owns a [`RuleState`] inside the account, keyed by
//! rule id: a rule can neither read nor damage another rule's state. The
//! [`History`] of recent transactions is shared, read-only for rules, and
//! appended by the host after every rule has seen the transaction.
//!
//! The host also keeps the merchants the customer confirmed ("it was me",
//! [`CustomerConfirmation`]); rules see them as the attribute
//! `weir.customer_confirmed_merchant` on the account's transactions at those
//! merchants ([`AccountState::facts`]).
//!
//! The encoding (postcard) is not self-describing: fields are only ever
//! added at the end, and [`AccountState::decode`] reads records written
//! before a field existed (on the changelog or in the embedded store) with
//! the field's default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::state::{History, RuleState};

use crate::events::{CustomerConfirmation, HostFacts, TransactionRecorded};

/// The most confirmed merchants kept per account; further confirmations are
/// logged and not kept.
pub const MAX_CONFIRMED_MERCHANTS: usize = 64;

/// Everything weir keeps about one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Each rule's own state, by rule id.
    pub rules: BTreeMap<String, RuleState>,
    /// Recent transactions, newest first.
    pub history: History,
    /// Set when weir locked the account: one `AccountLocked` per lock.
    pub lock: Option<Lock>,
    /// Merchant ids the customer confirmed a purchase at, sorted, at most
    /// [`MAX_CONFIRMED_MERCHANTS`]. Added after the first release: records
    /// written before decode with none.
    pub confirmed_merchants: Vec<String>,
}

/// The shape of [`AccountState`] before `confirmed_merchants`, to read old records.
#[derive(Deserialize)]
struct AccountStateV1 {
    rules: BTreeMap<String, RuleState>,
    history: History,
    lock: Option<Lock>,
}

/// Why and when weir locked an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub transaction_id: String,
    pub occurred_at_ms: i64,
    pub reason: String,
}

impl AccountState {
    /// Encodes for the state store (postcard: compact and fast).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("account state always serializes")
    }

    /// Decodes a record of this version or of an earlier one (see the module docs).
    pub fn decode(bytes: &[u8]) -> Result<AccountState, postcard::Error> {
        match postcard::from_bytes(bytes) {
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let old: AccountStateV1 = postcard::from_bytes(bytes)?;
                Ok(AccountState {
                    rules: old.rules,
                    history: old.history,
                    lock: old.lock,
                    confirmed_merchants: Vec::new(),
                })
            }
            other => other,
        }
    }

    /// Records the customer's confirmation of a purchase at `confirmation.merchant_id`.
    /// Idempotent: a redelivered confirmation changes nothing.
    pub fn record_confirmation(&mut self, confirmation: &CustomerConfirmation) {
        let merchant = &confirmation.merchant_id;
        match self.confirmed_merchants.binary_search(merchant) {
            Ok(_) => {}
            Err(at) if self.confirmed_merchants.len() < MAX_CONFIRMED_MERCHANTS => {
                self.confirmed_merchants.insert(at, merchant.clone());
            }
            Err(_) => tracing::warn!(
                account_id = %confirmation.account_id,
                merchant_id = %merchant,
                "the account already has {MAX_CONFIRMED_MERCHANTS} confirmed merchants; this confirmation is not kept"
            ),
        }
    }

    /// What rules learn about `tx` from this account's state.
    pub fn facts(&self, tx: &TransactionRecorded) -> HostFacts {
        HostFacts { merchant_confirmed_by_customer: self.confirmed_merchants.binary_search(&tx.merchant.id).is_ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let mut s = AccountState::default();
        let mut r = RuleState::default();
        r.set("k", "v");
        r.window_add(10, "n", 3);
        s.rules.insert("velocity".into(), r);
        s.lock = Some(Lock { transaction_id: "tx-1".into(), occurred_at_ms: 5, reason: "x".into() });
        s.confirmed_merchants = vec!["m-luckybets".into()];
        assert_eq!(AccountState::decode(&s.encode()).unwrap(), s);
    }

    /// Changelog and store records written before `confirmed_merchants` existed.
    #[test]
    fn records_of_the_first_release_still_decode() {
        #[derive(Serialize)]
        struct V1<'a> {
            rules: &'a BTreeMap<String, RuleState>,
            history: &'a History,
            lock: &'a Option<Lock>,
        }
        let mut r = RuleState::default();
        r.set("countries", "NL");
        let mut s = AccountState::default();
        s.rules.insert("new-country".into(), r);
        s.lock = Some(Lock { transaction_id: "tx-9".into(), occurred_at_ms: 7, reason: "card-testing".into() });
        let old = postcard::to_stdvec(&V1 { rules: &s.rules, history: &s.history, lock: &s.lock }).unwrap();
        assert_eq!(AccountState::decode(&old).unwrap(), s);
        assert!(AccountState::decode(&old[..old.len() - 1]).is_err(), "a truncated record is still an error");
    }

    #[test]
    fn confirmations_are_a_bounded_sorted_set() {
        let confirm = |merchant: &str| CustomerConfirmation {
            event_id: format!("c-{merchant}"),
            event_type: "TransactionVerified".into(),
            schema_version: 1,
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            causation_id: "d-1".into(),
            transaction_id: "tx-1".into(),
            account_id: "acct-1".into(),
            merchant_id: merchant.into(),
            verified_by: "customer".into(),
        };
        let mut s = AccountState::default();
        for m in ["m-b", "m-a", "m-b"] {
            s.record_confirmation(&confirm(m));
        }
        assert_eq!(s.confirmed_merchants, ["m-a", "m-b"]);
        for i in 0..100 {
            s.record_confirmation(&confirm(&format!("m-{i:03}")));
        }
        assert_eq!(s.confirmed_merchants.len(), MAX_CONFIRMED_MERCHANTS);
        assert!(s.confirmed_merchants.is_sorted());
    }
}
