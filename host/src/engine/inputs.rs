//! [`Inputs`]: the transaction in each form a rule may take it — the wire
//! encoding (`weir:rule@2`), the first contract's record, the SDK's type
//! (native rules) — built at most once per transaction, and only if a rule
//! needs that form.
//!
//! The evaluator keeps one; it is rebuilt when asked for another
//! transaction or other host facts (an entity rule's pass has none, the
//! account's pass has the account's), so the entity passes and a pass
//! with the same facts share one encoding, and the encoding buffer is
//! reused rather than allocated per transaction.

use super::wasm;
use crate::events::{HostFacts, TransactionRecorded};

/// The transaction in each form a rule may take it, built at most once per
/// transaction, and only if a rule needs that form.
#[derive(Default)]
pub(super) struct Inputs {
    /// `weir:rule@2`: the wire encoding.
    encoded: Vec<u8>,
    encoded_ready: bool,
    /// `weir:rule@1.0.0`: the contract's record.
    record: Option<wasm::wit::Transaction>,
    /// Native rules: the SDK's type.
    sdk: Option<weir_sdk::Transaction>,
    /// The transaction and facts the forms are of.
    transaction_id: String,
    facts: HostFacts,
}

impl Inputs {
    /// Forgets the last transaction's forms (keeping the buffer).
    fn clear(&mut self) {
        self.encoded.clear();
        self.encoded_ready = false;
        self.record = None;
        self.sdk = None;
    }

    /// Forgets the forms once a transaction is decided.
    pub(super) fn finish(&mut self) {
        self.clear();
        self.transaction_id.clear();
    }

    /// Makes the forms those of `tx` with `facts`: kept if they are,
    /// forgotten if not.
    pub(super) fn prepare(&mut self, tx: &TransactionRecorded, facts: HostFacts) {
        if self.transaction_id != tx.transaction_id || self.facts != facts {
            self.clear();
            self.transaction_id.clear();
            self.transaction_id.push_str(&tx.transaction_id);
            self.facts = facts;
        }
    }

    /// The wire encoding of `tx`, encoded on first use.
    pub(super) fn encoded(&mut self, tx: &TransactionRecorded, facts: HostFacts) -> &[u8] {
        if !self.encoded_ready {
            tx.encode_for_rules(facts, &mut self.encoded);
            self.encoded_ready = true;
        }
        &self.encoded
    }

    /// The first contract's record of `tx`, built on first use.
    pub(super) fn record(&mut self, tx: &TransactionRecorded, facts: HostFacts) -> &wasm::wit::Transaction {
        self.record.get_or_insert_with(|| wasm::transaction_to_wit(tx, facts))
    }

    /// The SDK's type for `tx` (native rules), built on first use.
    pub(super) fn sdk(&mut self, tx: &TransactionRecorded, facts: HostFacts) -> &weir_sdk::Transaction {
        self.sdk.get_or_insert_with(|| tx.to_rule_transaction(facts))
    }
}
