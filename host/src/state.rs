//! Per-account state: what rules remember about an account, and what the
//! host itself remembers (the lock).
//!
//! State is keyed by account id, so it is partitioned exactly like the
//! input events. Each rule owns a [`RuleState`] inside the account, keyed by
//! rule id: a rule can neither read nor damage another rule's state. The
//! [`History`] of recent transactions is shared, read-only for rules, and
//! appended by the host after every rule has seen the transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::state::{History, RuleState};

/// Everything weir keeps about one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Each rule's own state, by rule id.
    pub rules: BTreeMap<String, RuleState>,
    /// Recent transactions, newest first.
    pub history: History,
    /// Set when weir locked the account: one `AccountLocked` per lock.
    pub lock: Option<Lock>,
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

    pub fn decode(bytes: &[u8]) -> Result<AccountState, postcard::Error> {
        postcard::from_bytes(bytes)
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
        assert_eq!(AccountState::decode(&s.encode()).unwrap(), s);
    }
}
