//! Decisions: [`DecisionEvent`], one type for the three decisions weir writes
//! (`TransactionVerified`, `FraudSuspected`, `AccountLocked`, told apart by [`DecisionType`]),
//! with what it records about where it came from ([`EngineInfo`], [`InputPosition`]), and its
//! deterministic id ([`decision_event_id`]): replaying an input yields the same id, so
//! downstream consumers can deduplicate. Each rule's part is a [`RuleResult`]; the bytes are
//! written by [`DecisionEvent::write_json`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use weir_sdk::Money;

use super::{RuleResult, rfc3339_utc_millis};

/// The `schema_version` weir writes on its decision events.
pub const DECISION_SCHEMA_VERSION: u32 = 1;

/// The three decisions; each input transaction yields exactly one. Serialized as these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum DecisionType {
    TransactionVerified,
    FraudSuspected,
    AccountLocked,
}

impl DecisionType {
    pub const ALL: [DecisionType; 3] =
        [DecisionType::TransactionVerified, DecisionType::FraudSuspected, DecisionType::AccountLocked];

    /// The wire name, as in `event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionType::TransactionVerified => "TransactionVerified",
            DecisionType::FraudSuspected => "FraudSuspected",
            DecisionType::AccountLocked => "AccountLocked",
        }
    }
}

/// A decision: `TransactionVerified`, `FraudSuspected` or `AccountLocked`, by `event_type`.
/// Everything in it is derived from the input and the rules, never from the wall clock, so a
/// replay with the same rule versions writes the same event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// Deterministic: [`decision_event_id`] of `causation_id`.
    pub event_id: uuid::Uuid,
    pub event_type: DecisionType,
    /// [`DECISION_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The input's event time.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// The input's `event_id`.
    pub causation_id: String,
    pub transaction_id: String,
    pub account_id: String,
    pub amount: Money,
    pub merchant_id: String,
    /// Sum of the score points of enforced rules.
    pub score: u32,
    /// Why: for `AccountLocked` the lock reason (required: `schemas/account-locked.v1.schema.json`
    /// lists it), for `FraudSuspected` a summary; absent for `TransactionVerified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every rule that took part, enforced and shadow, in rule-id order.
    pub rules: Vec<RuleResult>,
    pub engine: EngineInfo,
    pub input: InputPosition,
}

/// Which engine wrote a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
}

impl EngineInfo {
    /// This build: `weir` and the crate version.
    pub fn current() -> Self {
        EngineInfo { name: "weir".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// Where an input record was read. On Kafka: topic, partition, offset. In embedded mode: the
/// input file's name, partition 0, and the 1-based line number as offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The namespace of decision event ids (UUID v5). Fixed forever: changing it would change the
/// id of every decision, and downstream consumers deduplicate by id.
pub const DECISION_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x3d1f_5a0c_8e47_4b9a_a6c2_91e0_d4b7_5f28);

/// The id of the decision caused by the input event `causation_id`: UUID v5 of it in
/// [`DECISION_ID_NAMESPACE`]. The same input always yields the same id, so a replayed or
/// re-processed transaction can be recognized downstream.
///
/// The same UUID as `uuid::Uuid::new_v5` (RFC 9562, section 5.5), hashed with
/// the `sha1` crate, which uses the CPU's SHA instructions: one per decision.
pub fn decision_event_id(causation_id: &str) -> uuid::Uuid {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(DECISION_ID_NAMESPACE.as_bytes());
    hasher.update(causation_id.as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decision ids are promised forever: the hashing here gives, byte for
    /// byte, the UUID v5 the uuid crate computes (and weir wrote before),
    /// for ids of every length around SHA-1's 64-byte block.
    #[test]
    fn decision_ids_are_the_uuid_v5_of_the_input_event_id() {
        let mut ids: Vec<String> = (0..200).map(|n| "e".repeat(n)).collect();
        ids.push("9b2f4c1e-7a3d-4f5b-8c6e-1d2a3b4c5d6e".to_owned());
        ids.push("événement-ünïcode-✓".to_owned());
        for id in &ids {
            assert_eq!(decision_event_id(id), uuid::Uuid::new_v5(&DECISION_ID_NAMESPACE, id.as_bytes()), "{id:?}");
        }
    }
}
