//! The wire types of weir's four events and of its dead-letter record.
//!
//! Layout, one concept per file (every public item is re-exported here, so callers name
//! `weir::events::X` whatever file holds it):
//!
//! - `transaction`: [`TransactionRecorded`], the input contract other teams produce (version 1,
//!   plus the optional `device_fingerprint` of version 2 and `counterparty_account` and
//!   `card_fingerprint` of version 3), with tolerant parsing and validation
//!   in [`parse_transaction`]: unknown fields are ignored, and anything else that is wrong
//!   becomes an [`InvalidEvent`] whose text goes to the dead-letter record;
//! - `rule_view`: what rules see of a transaction beyond its fields:
//!   [`TransactionRecorded::rule_attributes`] sets the reserved `weir.*` attributes (device
//!   fingerprint, customer-confirmed merchant, from [`HostFacts`]) and drops any a producer sent;
//! - `confirmation`: [`CustomerConfirmation`], the customer's "it was me" (`TransactionVerified`
//!   with `verified_by = "customer"`), the other event weir reads from its input topic;
//! - `unlock`: [`AccountUnlocked`], an analyst lifting the lock weir put on an account, the third
//!   event of the input topic;
//! - `disposition`: [`CaseResolved`], an analyst's verdict (fraud or legitimate) on flagged
//!   transactions, on its own topic, read back as a backtest's labels;
//! - `list_change`: [`ListChanged`], an analyst's change to a runtime block or allow list (an
//!   entry added, with an optional expiry in event time, or removed), on the compacted lists
//!   topic or a lists file;
//! - `input`: [`InputEvent`], one record of the input topic, and [`parse_input`], which tells
//!   the three events apart;
//! - `invalid`: [`InvalidEvent`], why a record is rejected, and the value checks both input
//!   events share; `malformed`: the offending fields of JSON that does not deserialize;
//! - `decision`: [`DecisionEvent`], one type for the three decisions (`TransactionVerified`,
//!   `FraudSuspected`, `AccountLocked`), discriminated by [`DecisionType`], and deterministic
//!   decision ids ([`decision_event_id`]): replaying an input yields the same id, so downstream
//!   consumers can deduplicate;
//! - `rule_result`: [`RuleResult`], the per-rule explanation in a decision, and its vocabulary
//!   ([`RuleMode`], [`RuleOutcome`], [`FailurePolicy`], [`Evidence`]);
//! - `json`: [`DecisionEvent::write_json`], the decision's bytes written by hand, exactly as
//!   serde_json writes them;
//! - `shared_str`: [`SharedStr`], the reference-counted rule names a decision holds;
//! - `dead_letter`: [`DeadLetter`], what is written for a record that cannot be processed,
//!   bounded: a record over the size limit keeps a capped prefix and its size, the payload is
//!   written at most 1.5 times its size, the reason is cut ([`dead_letter_reason`]);
//! - [`rfc3339_utc_millis`]: the serde format of event times.
//!
//! The JSON Schemas in `schemas/` describe the same shapes for downstream teams; the `events`
//! integration tests check that schemas and types agree in both directions.
//!
//! Times are written as RFC 3339 in UTC with exactly three fractional digits
//! (`2026-11-28T19:42:07.512Z`); any RFC 3339 offset is accepted on input and normalized to UTC.
//! Event time has millisecond resolution: finer digits are truncated when an event is read.

mod confirmation;
mod dead_letter;
mod decision;
mod disposition;
mod input;
mod invalid;
mod json;
mod list_change;
mod malformed;
pub mod rfc3339_utc_millis;
mod rule_result;
mod rule_view;
mod shared_str;
mod transaction;
mod unlock;

pub use confirmation::{CustomerConfirmation, TRANSACTION_VERIFIED, VERIFIED_BY_CUSTOMER};
pub use dead_letter::{DeadLetter, MAX_REASON_BYTES, TRUNCATED_PAYLOAD_BYTES, dead_letter_reason};
pub use decision::{
    DECISION_ID_NAMESPACE, DECISION_SCHEMA_VERSION, DecisionEvent, DecisionType, EngineInfo, InputPosition,
    decision_event_id,
};
pub use disposition::{CASE_RESOLVED, CaseResolved, MAX_RESOLVED_TRANSACTIONS, Verdict, parse_disposition};
pub use input::{InputEvent, parse_input};
pub use invalid::{InvalidEvent, MAX_ID_BYTES, forges_text, shown};
pub use list_change::{LIST_CHANGED, ListAction, ListChanged, MAX_LIST_NAME_BYTES, check_list_name, parse_list_change};
pub use rule_result::{
    Evidence, FailurePolicy, ListVersion, RuleMode, RuleOutcome, RuleResult, UnknownRuleMode, hex_u64,
};
pub use rule_view::HostFacts;
pub use shared_str::SharedStr;
pub use transaction::{
    MAX_EVENT_BYTES, Merchant, TRANSACTION_RECORDED, TRANSACTION_RECORDED_SCHEMA_VERSION, TransactionRecorded,
    parse_transaction,
};
pub use unlock::{ACCOUNT_UNLOCKED, AccountUnlocked, MAX_NOTE_BYTES};
