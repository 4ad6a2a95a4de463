//! The wire types of weir's four events and of its dead-letter record.
//!
//! This module owns:
//!
//! - [`TransactionRecorded`], the input contract other teams produce (its v1 shape is fixed by
//!   DESIGN.md; version 2 adds the optional `device_fingerprint`), with tolerant parsing and
//!   validation in [`parse_transaction`]: unknown fields are ignored, and anything else that is
//!   wrong becomes an [`InvalidEvent`] whose text goes to the dead-letter record;
//! - [`CustomerConfirmation`], the customer's "it was me" (`TransactionVerified` with
//!   `verified_by = "customer"`), the other event weir reads from its input topic, and
//!   [`parse_input`], which tells the two apart ([`InputEvent`]);
//! - what rules see of a transaction beyond its fields: [`TransactionRecorded::rule_attributes`]
//!   sets the reserved `weir.*` attributes (device fingerprint, customer-confirmed merchant) and
//!   drops any a producer sent;
//! - [`DecisionEvent`], one type for the three decisions (`TransactionVerified`,
//!   `FraudSuspected`, `AccountLocked`), discriminated by [`DecisionType`], with the per-rule
//!   explanation in [`RuleResult`];
//! - deterministic decision ids ([`decision_event_id`]): replaying an input yields the same id,
//!   so downstream consumers can deduplicate;
//! - [`DeadLetter`], what is written for a record that cannot be processed.
//!
//! The JSON Schemas in `schemas/` describe the same shapes for downstream teams; the `events`
//! integration tests check that schemas and types agree in both directions.
//!
//! Times are written as RFC 3339 in UTC with exactly three fractional digits
//! (`2026-11-28T19:42:07.512Z`); any RFC 3339 offset is accepted on input and normalized to UTC.
//! Event time has millisecond resolution: finer digits are truncated when an event is read.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use weir_sdk::{Channel, Money};

/// The default limit on the size of one input record's value, in bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The `event_type` of the input event.
pub const TRANSACTION_RECORDED: &str = "TransactionRecorded";

/// The `event_type` of a customer's confirmation on the input topic (and of weir's own
/// verified decisions, on their topic).
pub const TRANSACTION_VERIFIED: &str = "TransactionVerified";

/// The `verified_by` of a [`CustomerConfirmation`].
pub const VERIFIED_BY_CUSTOMER: &str = "customer";

/// The newest `schema_version` of `TransactionRecorded` weir knows: 2 added `device_fingerprint`.
/// Newer versions are read too (they may only add optional fields, which are ignored).
pub const TRANSACTION_RECORDED_SCHEMA_VERSION: u32 = 2;

/// The `schema_version` weir writes on its decision events.
pub const DECISION_SCHEMA_VERSION: u32 = 1;

/// The longest identifier (`event_id`, `transaction_id`, `account_id`, `merchant.id`), in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// `TransactionRecorded`, the input contract: the v1 wire shape exactly as DESIGN.md fixes it,
/// plus the optional fields of version 2 (`device_fingerprint`). Later versions may only add
/// optional fields, which this reader ignores.
///
/// Adding a field here means a new schema version: a copy of the latest
/// `schemas/transaction-recorded.v<N>.schema.json` with the field, optional (the tests compare
/// them), and the field in `offending_fields`, which names it in error messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecorded {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    /// Event time, the only clock rules see. Any RFC 3339 offset is accepted; it is held in UTC,
    /// truncated to milliseconds, and written back as RFC 3339 UTC with milliseconds.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    pub transaction_id: String,
    /// The Kafka key.
    pub account_id: String,
    #[serde(deserialize_with = "object")]
    pub amount: Money,
    #[serde(deserialize_with = "object")]
    pub merchant: Merchant,
    pub channel: Channel,
    /// String-to-string map for fields added after version 1. Keys starting with `weir.` are
    /// reserved for the host and never reach rules from here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Version 2: the fingerprint of the device the purchase was made from, when the producer
    /// knows it. Rules read it as the attribute `weir.device_fingerprint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_fingerprint: Option<String>,
}

/// What the host knows about a transaction beyond the event itself, from its account's state;
/// it reaches rules as reserved attributes (see [`TransactionRecorded::rule_attributes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The customer has confirmed an earlier purchase at this merchant as their own.
    pub merchant_confirmed_by_customer: bool,
}

/// Where the money went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ISO 18245 merchant category code: four digits, e.g. "7922" for ticket agencies.
    pub category_code: String,
    /// ISO 3166-1 alpha-2, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl TransactionRecorded {
    /// Event time in milliseconds since the Unix epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        self.occurred_at.unix_timestamp() * 1000 + i64::from(self.occurred_at.millisecond())
    }

    /// The attributes rules see, in key order: the producer's, except the reserved `weir.*`
    /// ones (a producer cannot forge them), plus those the host sets from the event and from
    /// `facts`: `weir.device_fingerprint` and `weir.customer_confirmed_merchant`. Both the wasm
    /// and the native lowering use this, so every rule sees the same list.
    pub fn rule_attributes(&self, facts: HostFacts) -> Vec<(String, String)> {
        let mut attributes: Vec<(String, String)> = self
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with(weir_sdk::RESERVED_ATTRIBUTE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if facts.merchant_confirmed_by_customer {
            attributes.push((weir_sdk::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE.to_owned(), "true".to_owned()));
        }
        if let Some(fingerprint) = &self.device_fingerprint {
            attributes.push((weir_sdk::DEVICE_FINGERPRINT_ATTRIBUTE.to_owned(), fingerprint.clone()));
        }
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        attributes
    }

    /// Appends the wire encoding rules of contract `weir:rule@2` read
    /// (`weir_sdk::wire`) to `out`: the event's fields and the same attribute
    /// list as [`rule_attributes`](Self::rule_attributes), without copying
    /// any string but into `out`.
    pub fn encode_for_rules(&self, facts: HostFacts, out: &mut Vec<u8>) {
        let fields = weir_sdk::wire::TransactionFields {
            event_id: &self.event_id,
            transaction_id: &self.transaction_id,
            account_id: &self.account_id,
            minor_units: self.amount.minor_units,
            currency: &self.amount.currency,
            merchant_id: &self.merchant.id,
            merchant_name: self.merchant.name.as_deref(),
            category_code: &self.merchant.category_code,
            country: self.merchant.country.as_deref(),
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
        };
        // Both lists are sorted by name; merged, they give rule_attributes' order.
        let producer = self
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with(weir_sdk::RESERVED_ATTRIBUTE_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let confirmed =
            facts.merchant_confirmed_by_customer.then_some((weir_sdk::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, "true"));
        let fingerprint = self.device_fingerprint.as_deref().map(|f| (weir_sdk::DEVICE_FINGERPRINT_ATTRIBUTE, f));
        let mut reserved = confirmed.into_iter().chain(fingerprint).peekable();
        let mut producer = producer.peekable();
        let merged = std::iter::from_fn(move || match (producer.peek(), reserved.peek()) {
            (Some(p), Some(r)) if r.0 < p.0 => reserved.next(),
            (Some(_), _) => producer.next(),
            (None, _) => reserved.next(),
        });
        weir_sdk::wire::encode_transaction(out, &fields, merged);
    }

    /// The SDK's view of it (for native rules and the test harness), with the
    /// [`rule_attributes`](Self::rule_attributes) for `facts`.
    pub fn to_rule_transaction(&self, facts: HostFacts) -> weir_sdk::Transaction {
        weir_sdk::Transaction {
            event_id: self.event_id.clone(),
            transaction_id: self.transaction_id.clone(),
            account_id: self.account_id.clone(),
            amount: self.amount.clone(),
            merchant: weir_sdk::Merchant {
                id: self.merchant.id.clone(),
                name: self.merchant.name.clone(),
                category_code: self.merchant.category_code.clone(),
                country: self.merchant.country.clone(),
            },
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
            attributes: self.rule_attributes(facts),
        }
    }

    /// What the account's history keeps of it.
    pub fn to_past(&self) -> weir_sdk::PastTransaction {
        weir_sdk::PastTransaction {
            transaction_id: self.transaction_id.clone(),
            amount: self.amount.clone(),
            merchant_id: self.merchant.id.clone(),
            category_code: self.merchant.category_code.clone(),
            country: self.merchant.country.clone(),
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
        }
    }

    /// Checks what serde cannot: the rules of DESIGN.md on values.
    fn validate(&self) -> Result<(), InvalidEvent> {
        if self.event_type != TRANSACTION_RECORDED {
            return Err(InvalidEvent::WrongType(self.event_type.clone()));
        }
        if self.schema_version < 1 {
            return Err(invalid("schema_version", "must be 1 or greater"));
        }
        check_id("event_id", &self.event_id)?;
        check_id("transaction_id", &self.transaction_id)?;
        check_id("account_id", &self.account_id)?;
        if let Some(fingerprint) = &self.device_fingerprint {
            check_id("device_fingerprint", fingerprint)?;
        }
        if self.amount.minor_units < 0 {
            return Err(invalid(
                "amount.minor_units",
                format!("must not be negative, got {}", self.amount.minor_units),
            ));
        }
        if !is_ascii_code(&self.amount.currency, 3, |b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "amount.currency",
                format!("must be an ISO 4217 code of 3 uppercase letters, got {:?}", self.amount.currency),
            ));
        }
        check_id("merchant.id", &self.merchant.id)?;
        if !is_ascii_code(&self.merchant.category_code, 4, |b| b.is_ascii_digit()) {
            return Err(invalid(
                "merchant.category_code",
                format!("must be an ISO 18245 MCC of 4 digits, got {:?}", self.merchant.category_code),
            ));
        }
        if let Some(country) = &self.merchant.country
            && !is_ascii_code(country, 2, |b| b.is_ascii_uppercase())
        {
            return Err(invalid(
                "merchant.country",
                format!("must be an ISO 3166-1 alpha-2 code of 2 uppercase letters, got {country:?}"),
            ));
        }
        Ok(())
    }
}

/// Why an input record is not a valid [`TransactionRecorded`]; the text goes to the dead-letter
/// record, so it names the field at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InvalidEvent {
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// Not JSON, or JSON of the wrong shape: serde's text (which gives line and column), plus the
    /// offending field paths when they can be found.
    #[error("payload is not valid JSON for TransactionRecorded: {0}")]
    Malformed(String),
    #[error("event_type is `{0}`, expected `TransactionRecorded` (or `TransactionVerified` by the customer)")]
    WrongType(String),
    /// A customer confirmation (`TransactionVerified` on the input topic) of the wrong shape.
    #[error("payload is not valid JSON for a customer confirmation (TransactionVerified): {0}")]
    MalformedConfirmation(String),
    #[error("field `{field}`: {problem}")]
    Invalid { field: &'static str, problem: String },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidEvent {
    InvalidEvent::Invalid { field, problem: problem.into() }
}

fn check_id(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else if value.len() > MAX_ID_BYTES {
        Err(invalid(field, format!("is {} bytes long, the limit is {MAX_ID_BYTES}", value.len())))
    } else {
        Ok(())
    }
}

fn is_ascii_code(value: &str, len: usize, allowed: fn(&u8) -> bool) -> bool {
    value.len() == len && value.as_bytes().iter().all(allowed)
}

/// Parses and validates one record value (at most `limit` bytes; [`MAX_EVENT_BYTES`] is the
/// default). Tolerant: unknown fields, at the top level and inside objects, are ignored.
pub fn parse_transaction(payload: &[u8], limit: usize) -> Result<TransactionRecorded, InvalidEvent> {
    if payload.len() > limit {
        return Err(InvalidEvent::TooLarge { size: payload.len(), limit });
    }
    if payload.is_empty() {
        return Err(InvalidEvent::Malformed("the payload is empty".to_owned()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    match object::<_, TransactionRecorded>(&mut deserializer).and_then(|event| deserializer.end().map(|()| event)) {
        Ok(event) => {
            event.validate()?;
            Ok(event)
        }
        Err(error) => Err(explain_malformed(payload, &error)),
    }
}

/// Deserializes `T` from a JSON object only. Serde's derived structs also accept an array of
/// the field values in order; the contract (and its schema) says object, so the parser does too.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    struct ObjectOnly<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectOnly(PhantomData))
}

/// Turns a serde error into the most useful [`InvalidEvent`]: a record of another type is
/// [`InvalidEvent::WrongType`] (whatever its shape); otherwise serde's message, followed by the
/// paths of the fields that do not deserialize, since serde's type errors only give a position.
/// Runs only on the error path, so parsing the payload a second time costs nothing in the
/// normal case.
fn explain_malformed(payload: &[u8], error: &serde_json::Error) -> InvalidEvent {
    let mut text = error.to_string();
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(payload) {
        if let Some(Value::String(event_type)) = top.get("event_type")
            && event_type != TRANSACTION_RECORDED
        {
            return InvalidEvent::WrongType(event_type.clone());
        }
        name_offending_fields(&mut text, &offending_fields(&top));
    }
    InvalidEvent::Malformed(text)
}

/// Appends " (offending fields: `a`, `b`)" to an error text, if there are any.
fn name_offending_fields(text: &mut String, fields: &[String]) {
    if !fields.is_empty() {
        let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        text.push_str(&format!(" (offending field{}: {})", if list.len() == 1 { "" } else { "s" }, list.join(", ")));
    }
}

/// The paths of the fields of `top` that do not deserialize into [`TransactionRecorded`]'s
/// fields, in struct order.
fn offending_fields(top: &Map<String, Value>) -> Vec<String> {
    let mut bad = Vec::new();
    field::<String>(top, "", "event_id", true, &mut bad);
    field::<String>(top, "", "event_type", true, &mut bad);
    field::<u32>(top, "", "schema_version", true, &mut bad);
    match top.get("occurred_at") {
        None => bad.push("occurred_at".to_owned()),
        Some(v) => {
            if rfc3339_utc_millis::deserialize(v).is_err() {
                bad.push("occurred_at".to_owned());
            }
        }
    }
    field::<String>(top, "", "transaction_id", true, &mut bad);
    field::<String>(top, "", "account_id", true, &mut bad);
    match top.get("amount") {
        None => bad.push("amount".to_owned()),
        Some(Value::Object(amount)) => {
            field::<i64>(amount, "amount.", "minor_units", true, &mut bad);
            field::<String>(amount, "amount.", "currency", true, &mut bad);
        }
        Some(_) => bad.push("amount".to_owned()),
    }
    match top.get("merchant") {
        None => bad.push("merchant".to_owned()),
        Some(Value::Object(merchant)) => {
            field::<String>(merchant, "merchant.", "id", true, &mut bad);
            field::<Option<String>>(merchant, "merchant.", "name", false, &mut bad);
            field::<String>(merchant, "merchant.", "category_code", true, &mut bad);
            field::<Option<String>>(merchant, "merchant.", "country", false, &mut bad);
        }
        Some(_) => bad.push("merchant".to_owned()),
    }
    field::<Channel>(top, "", "channel", true, &mut bad);
    match top.get("attributes") {
        None => {}
        Some(Value::Object(attributes)) => {
            for (key, value) in attributes {
                if !value.is_string() {
                    bad.push(format!("attributes.{key}"));
                }
            }
        }
        Some(_) => bad.push("attributes".to_owned()),
    }
    field::<Option<String>>(top, "", "device_fingerprint", false, &mut bad);
    bad
}

fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    prefix: &str,
    key: &str,
    required: bool,
    bad: &mut Vec<String>,
) {
    let ok = match obj.get(key) {
        None => !required,
        Some(value) => T::deserialize(value).is_ok(),
    };
    if !ok {
        bad.push(format!("{prefix}{key}"));
    }
}

/// A customer's confirmation that a purchase was theirs ("it was me"), usually in answer to a
/// `FraudSuspected`: a `TransactionVerified` event with `verified_by = "customer"`, produced to
/// weir's input topic and keyed by account id like every input event.
///
/// weir does not decide it (it is not a transaction) and writes no decision for it: it records
/// the merchant in the account's state, in the same batch as everything else, and from then on
/// rules see the account's transactions at that merchant with the attribute
/// `weir.customer_confirmed_merchant = "true"`. Its schema is
/// `schemas/customer-confirmation.v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerConfirmation {
    pub event_id: String,
    /// Always [`TRANSACTION_VERIFIED`].
    pub event_type: String,
    pub schema_version: u32,
    /// When the customer confirmed.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// The `event_id` of the `FraudSuspected` decision the customer answered.
    pub causation_id: String,
    /// The confirmed purchase.
    pub transaction_id: String,
    /// The Kafka key.
    pub account_id: String,
    /// The merchant of the confirmed purchase: the one the customer vouches for.
    pub merchant_id: String,
    /// Always [`VERIFIED_BY_CUSTOMER`].
    pub verified_by: String,
}

impl CustomerConfirmation {
    fn validate(&self) -> Result<(), InvalidEvent> {
        if self.event_type != TRANSACTION_VERIFIED {
            return Err(InvalidEvent::WrongType(self.event_type.clone()));
        }
        if self.schema_version < 1 {
            return Err(invalid("schema_version", "must be 1 or greater"));
        }
        if self.verified_by != VERIFIED_BY_CUSTOMER {
            return Err(invalid(
                "verified_by",
                format!(
                    "a TransactionVerified on the input topic must be the customer's (\"{VERIFIED_BY_CUSTOMER}\"), got {:?}",
                    self.verified_by
                ),
            ));
        }
        check_id("event_id", &self.event_id)?;
        check_id("causation_id", &self.causation_id)?;
        check_id("transaction_id", &self.transaction_id)?;
        check_id("account_id", &self.account_id)?;
        check_id("merchant_id", &self.merchant_id)?;
        Ok(())
    }
}

/// One record of weir's input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// A purchase to decide.
    Transaction(TransactionRecorded),
    /// A customer's "it was me", recorded in the account's state; no decision.
    CustomerConfirmation(CustomerConfirmation),
}

impl InputEvent {
    /// The account, which is also the record key.
    pub fn account_id(&self) -> &str {
        match self {
            InputEvent::Transaction(tx) => &tx.account_id,
            InputEvent::CustomerConfirmation(c) => &c.account_id,
        }
    }
}

/// Parses one input record: a [`TransactionRecorded`] (see [`parse_transaction`]) or, when its
/// `event_type` is `TransactionVerified`, a [`CustomerConfirmation`]. Transactions take the
/// fast path; only a record that is not one is looked at a second time.
pub fn parse_input(payload: &[u8], limit: usize) -> Result<InputEvent, InvalidEvent> {
    match parse_transaction(payload, limit) {
        Ok(tx) => Ok(InputEvent::Transaction(tx)),
        Err(InvalidEvent::WrongType(t)) if t == TRANSACTION_VERIFIED => {
            parse_confirmation(payload).map(InputEvent::CustomerConfirmation)
        }
        Err(e) => Err(e),
    }
}

fn parse_confirmation(payload: &[u8]) -> Result<CustomerConfirmation, InvalidEvent> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    match object::<_, CustomerConfirmation>(&mut deserializer).and_then(|c| deserializer.end().map(|()| c)) {
        Ok(confirmation) => {
            confirmation.validate()?;
            Ok(confirmation)
        }
        Err(error) => {
            let mut text = error.to_string();
            if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(payload) {
                let mut bad = Vec::new();
                for key in ["event_id", "event_type", "causation_id", "transaction_id", "account_id", "merchant_id"] {
                    field::<String>(&top, "", key, true, &mut bad);
                }
                field::<u32>(&top, "", "schema_version", true, &mut bad);
                if top.get("occurred_at").is_none_or(|v| rfc3339_utc_millis::deserialize(v).is_err()) {
                    bad.push("occurred_at".to_owned());
                }
                field::<String>(&top, "", "verified_by", true, &mut bad);
                name_offending_fields(&mut text, &bad);
            }
            Err(InvalidEvent::MalformedConfirmation(text))
        }
    }
}

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
    /// Why: for `AccountLocked` the lock reason (required by DESIGN.md), for `FraudSuspected` a
    /// summary; absent for `TransactionVerified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every rule that took part, enforced and shadow, in rule-id order.
    pub rules: Vec<RuleResult>,
    pub engine: EngineInfo,
    pub input: InputPosition,
}

impl DecisionEvent {
    /// Appends the decision's JSON to `out`: byte for byte what
    /// `serde_json::to_writer` writes for it (a test checks that on every
    /// kind of decision), written directly, without serde's per-field
    /// machinery — decisions are written at the rate they are made.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":\"");
        let mut id = uuid::Uuid::encode_buffer();
        out.extend_from_slice(self.event_id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"event_type\":\"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"schema_version\":");
        push_number(out, self.schema_version);
        out.extend_from_slice(b",\"occurred_at\":\"");
        push_time(out, self.occurred_at);
        out.extend_from_slice(b"\",\"causation_id\":");
        push_str(out, &self.causation_id);
        out.extend_from_slice(b",\"transaction_id\":");
        push_str(out, &self.transaction_id);
        out.extend_from_slice(b",\"account_id\":");
        push_str(out, &self.account_id);
        out.extend_from_slice(b",\"amount\":{\"minor_units\":");
        push_number(out, self.amount.minor_units);
        out.extend_from_slice(b",\"currency\":");
        push_str(out, &self.amount.currency);
        out.extend_from_slice(b"},\"merchant_id\":");
        push_str(out, &self.merchant_id);
        out.extend_from_slice(b",\"score\":");
        push_number(out, self.score);
        if let Some(reason) = &self.reason {
            out.extend_from_slice(b",\"reason\":");
            push_str(out, reason);
        }
        out.extend_from_slice(b",\"rules\":[");
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            r.write_json(out);
        }
        out.extend_from_slice(b"],\"engine\":{\"name\":");
        push_str(out, &self.engine.name);
        out.extend_from_slice(b",\"version\":");
        push_str(out, &self.engine.version);
        out.extend_from_slice(b"},\"input\":{\"topic\":");
        push_str(out, &self.input.topic);
        out.extend_from_slice(b",\"partition\":");
        push_number(out, self.input.partition);
        out.extend_from_slice(b",\"offset\":");
        push_number(out, self.input.offset);
        out.extend_from_slice(b"}}");
    }
}

impl RuleResult {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"rule_id\":");
        push_str(out, &self.rule_id);
        out.extend_from_slice(b",\"rule_version\":");
        push_str(out, &self.rule_version);
        out.extend_from_slice(b",\"version_label\":");
        push_str(out, &self.version_label);
        out.extend_from_slice(b",\"mode\":\"");
        out.extend_from_slice(self.mode.to_string().as_bytes());
        out.extend_from_slice(b"\",\"outcome\":\"");
        out.extend_from_slice(self.outcome.to_string().as_bytes());
        out.push(b'"');
        if self.score != 0 {
            out.extend_from_slice(b",\"score\":");
            push_number(out, self.score);
        }
        if !self.reason_code.is_empty() {
            out.extend_from_slice(b",\"reason_code\":");
            push_str(out, &self.reason_code);
        }
        if !self.message.is_empty() {
            out.extend_from_slice(b",\"message\":");
            push_str(out, &self.message);
        }
        if !self.evidence.is_empty() {
            out.extend_from_slice(b",\"evidence\":[");
            for (i, e) in self.evidence.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                push_str(out, &e.name);
                out.extend_from_slice(b",\"value\":");
                push_str(out, &e.value);
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(error) = &self.error {
            out.extend_from_slice(b",\"error\":");
            push_str(out, error);
        }
        if let Some(policy) = self.failure_policy {
            out.extend_from_slice(b",\"failure_policy\":\"");
            out.extend_from_slice(policy.to_string().as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// An event time as [`rfc3339_utc_millis`] writes it.
fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) {
    // Event times are read within the years 0000 to 9999 (see
    // `rfc3339_utc_millis`), so they can always be written.
    match rfc3339_utc_millis::normalize(t) {
        Some(utc) => {
            let two = |out: &mut Vec<u8>, n: u8| out.extend_from_slice(&[b'0' + n / 10, b'0' + n % 10]);
            let year = utc.year() as u32;
            out.extend_from_slice(&[
                b'0' + (year / 1000) as u8,
                b'0' + (year / 100 % 10) as u8,
                b'0' + (year / 10 % 10) as u8,
                b'0' + (year % 10) as u8,
                b'-',
            ]);
            two(out, utc.month() as u8);
            out.push(b'-');
            two(out, utc.day());
            out.push(b'T');
            two(out, utc.hour());
            out.push(b':');
            two(out, utc.minute());
            out.push(b':');
            two(out, utc.second());
            let ms = utc.millisecond();
            out.extend_from_slice(&[
                b'.',
                b'0' + (ms / 100) as u8,
                b'0' + (ms / 10 % 10) as u8,
                b'0' + (ms % 10) as u8,
                b'Z',
            ]);
        }
        None => unreachable!("an event time outside the years 0000 to 9999 was never read in"),
    }
}

/// One rule's part in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Shared with the rule's other results (as are `rule_version` and
    /// `version_label`): a decision copies no rule's names.
    pub rule_id: SharedStr,
    /// Content hash of the rule package (component and manifest), `sha256:<64 lowercase hex digits>`.
    pub rule_version: SharedStr,
    /// The version label from the rule's manifest.
    pub version_label: SharedStr,
    pub mode: RuleMode,
    pub outcome: RuleOutcome,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub score: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// For outcome = error: what went wrong (trap, out of fuel, memory limit, rule error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For outcome = error: the failure policy that was applied. Only set on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
}

/// An immutable string shared by reference count: cloning it copies a
/// pointer. Serialized as a plain JSON string; compares with `str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(s.into())
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(s.into())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        SharedStr(s)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SharedStr::from)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether a rule's verdict counts (`enforce`) or is only recorded (`shadow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    Enforce,
    Shadow,
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleMode::Enforce => "enforce",
            RuleMode::Shadow => "shadow",
        })
    }
}

impl std::str::FromStr for RuleMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforce" => Ok(RuleMode::Enforce),
            "shadow" => Ok(RuleMode::Shadow),
            other => Err(format!("mode {other:?}: use `enforce` or `shadow`")),
        }
    }
}

/// What a rule concluded, or `error` when it could not conclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Pass,
    Score,
    Suspect,
    Lock,
    Error,
}

impl fmt::Display for RuleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleOutcome::Pass => "pass",
            RuleOutcome::Score => "score",
            RuleOutcome::Suspect => "suspect",
            RuleOutcome::Lock => "lock",
            RuleOutcome::Error => "error",
        })
    }
}

/// What a rule error does to the decision: `fail-open` (as if the rule passed) or `fail-closed`
/// (as if it suspected the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    #[default]
    FailOpen,
    FailClosed,
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailurePolicy::FailOpen => "fail-open",
            FailurePolicy::FailClosed => "fail-closed",
        })
    }
}

/// A name/value pair that explains a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
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
pub fn decision_event_id(causation_id: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&DECISION_ID_NAMESPACE, causation_id.as_bytes())
}

/// A record that could not be processed, as written to the dead-letter destination. Nothing of
/// the original is lost: its bytes are in `payload` when they are UTF-8, in `payload_base64`
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub input: InputPosition,
    /// The original payload, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The original payload, base64 (standard alphabet, padded), when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

impl DeadLetter {
    pub fn new(reason: String, input: InputPosition, payload: &[u8]) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(base64(payload))),
        };
        DeadLetter { reason, input, payload, payload_base64 }
    }
}

/// Standard base64 (RFC 4648 section 4), padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Serde for event times: RFC 3339 with any offset in, RFC 3339 UTC with exactly three fractional
/// digits out (`2026-11-28T19:42:07.512Z`). Values are truncated to the millisecond on input and
/// must fall within the years 0000 to 9999 in UTC, so every value read can be written back.
pub mod rfc3339_utc_millis {
    use std::fmt;

    use serde::{Deserializer, Serializer, de};
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

    /// `value` in UTC, truncated to the millisecond; `None` outside the years 0000 to 9999 in
    /// UTC, which RFC 3339 cannot write.
    pub fn normalize(value: OffsetDateTime) -> Option<OffsetDateTime> {
        let utc = value.checked_to_offset(UtcOffset::UTC).filter(|utc| (0..=9999).contains(&utc.year()))?;
        utc.replace_millisecond(utc.millisecond()).ok()
    }

    const OUT_OF_RANGE: &str = "is outside the years 0000 to 9999 in UTC";

    pub fn serialize<S: Serializer>(value: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let utc = normalize(*value).ok_or_else(|| S::Error::custom(format!("event time {value} {OUT_OF_RANGE}")))?;
        let text = utc.format(FORMAT).map_err(S::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        deserializer.deserialize_str(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = OffsetDateTime;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 date-time such as \"2026-11-28T19:42:07.512Z\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<OffsetDateTime, E> {
            let parsed = OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|e| E::custom(format!("invalid RFC 3339 date-time {text:?}: {e}")))?;
            normalize(parsed).ok_or_else(|| E::custom(format!("date-time {text:?} {OUT_OF_RANGE}")))
        }
    }
}
