//! The events Tributary's systems write and read, as a team outside weir
//! would write them: from the JSON Schemas in `schemas/`, tolerant on input
//! (unknown fields are ignored, only what is used is read).
//!
//! - [`TransactionRecorded`]: what the bank's outbox holds for a purchase,
//!   version 1, or version 2 when the bank knows the customer's device.
//! - [`Decision`]: what the bank and the notifier read of weir's decisions.
//! - [`CustomerConfirmation`]: the customer's "it was me".

use serde::{Deserialize, Serialize};

/// Money: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor_units: i64,
    pub currency: String,
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}.{:02}", self.currency, self.minor_units / 100, self.minor_units % 100)
    }
}

/// Where the money went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ISO 18245 merchant category code.
    pub category_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// `TransactionRecorded`, `schemas/transaction-recorded.v2.schema.json`.
/// The bank writes version 2 when it knows the device, version 1 otherwise:
/// both kinds share the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecorded {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: String,
    pub transaction_id: String,
    pub account_id: String,
    pub amount: Money,
    pub merchant: Merchant,
    /// `card_present`, `ecommerce`, `transfer` or `atm`.
    pub channel: String,
    /// Version 2 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_fingerprint: Option<String>,
}

/// The customer's confirmation, `schemas/customer-confirmation.v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerConfirmation {
    pub event_id: String,
    /// `TransactionVerified`.
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: String,
    /// The `FraudSuspected` decision the customer answered.
    pub causation_id: String,
    pub transaction_id: String,
    pub account_id: String,
    pub merchant_id: String,
    /// `customer`.
    pub verified_by: String,
}

/// What Tributary reads of weir's three decision events
/// (`schemas/{transaction-verified,fraud-suspected,account-locked}.v1.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Deterministic per input event: consumers deduplicate by it.
    pub event_id: String,
    /// `TransactionVerified`, `FraudSuspected` or `AccountLocked`.
    pub event_type: String,
    /// The input event's id.
    pub causation_id: String,
    pub transaction_id: String,
    pub account_id: String,
    pub amount: Money,
    pub merchant_id: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleResult>,
}

/// An analyst's unlock that weir accepted, written on to the account-locked
/// topic after the lock it lifts (`schemas/account-unlocked.v1.schema.json`;
/// what the bank reads of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUnlocked {
    pub event_id: String,
    /// `AccountUnlocked`.
    pub event_type: String,
    pub account_id: String,
    /// The transaction whose lock it lifted.
    pub transaction_id: String,
    pub analyst: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// One rule's part in a decision (what the story shows of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule_id: String,
    pub outcome: String,
    #[serde(default)]
    pub reason_code: String,
}

impl Decision {
    /// The reason codes of the rules that fired, e.g. `["merchant-block:BLOCKED_CATEGORY"]`.
    pub fn fired(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.outcome != "pass" && !r.reason_code.is_empty())
            .map(|r| format!("{}:{}", r.rule_id, r.reason_code))
            .collect()
    }
}
