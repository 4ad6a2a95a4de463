//! [`TransactionRecorded`], the input contract other teams produce (version 1, plus the optional
//! `device_fingerprint` of version 2 and the `counterparty_account` and `card_fingerprint` of
//! version 3), and [`parse_transaction`], which reads one record of it:
//! tolerantly (unknown fields are ignored, later versions are read) but strictly on values, so
//! that anything wrong becomes an [`InvalidEvent`] naming the field at fault, for the dead-letter
//! record. What rules see of a transaction is in `rule_view`; the explanation of JSON that does
//! not even deserialize is in `malformed`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use weir_sdk::{Channel, Money};

use super::input::object;
use super::invalid::{check_id, check_kind, invalid, is_ascii_code};
use super::malformed::explain_malformed;
use super::{InvalidEvent, rfc3339_utc_millis};

/// The default limit on the size of one input record's value, in bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The `event_type` of the input event.
pub const TRANSACTION_RECORDED: &str = "TransactionRecorded";

/// The newest `schema_version` of `TransactionRecorded` weir knows: 2 added `device_fingerprint`,
/// 3 `counterparty_account` and `card_fingerprint`. Newer versions are read too (they may only
/// add optional fields, which are ignored).
pub const TRANSACTION_RECORDED_SCHEMA_VERSION: u32 = 3;

/// `TransactionRecorded`, the input contract: the v1 wire shape exactly as the contract fixes it
/// (`schemas/transaction-recorded.v1.schema.json`), plus the optional fields of version 2
/// (`device_fingerprint`) and version 3 (`counterparty_account`, `card_fingerprint`). Later
/// versions may only add optional fields, which this reader ignores.
///
/// Adding a field here means a new schema version: a copy of the latest
/// `schemas/transaction-recorded.v<N>.schema.json` with the field, optional (the tests compare
/// them), and the field in `malformed`'s list of fields, which names it in error messages.
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
    /// Version 3: the account a transfer goes to (an IBAN or the bank's own account id), when the
    /// producer knows it. Rules read it as the attribute `weir.counterparty_account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty_account: Option<String>,
    /// Version 3: a fingerprint of the card used (a token, never the card number), when the
    /// producer knows it. Rules read it as the attribute `weir.card_fingerprint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_fingerprint: Option<String>,
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

    /// Checks what serde cannot: the input contract's rules on values (the lengths, patterns and
    /// minimums its schemas state).
    fn validate(&self) -> Result<(), InvalidEvent> {
        check_kind(&self.event_type, TRANSACTION_RECORDED, self.schema_version)?;
        check_id("event_id", &self.event_id)?;
        check_id("transaction_id", &self.transaction_id)?;
        check_id("account_id", &self.account_id)?;
        for (field, value) in [
            ("device_fingerprint", &self.device_fingerprint),
            ("counterparty_account", &self.counterparty_account),
            ("card_fingerprint", &self.card_fingerprint),
        ] {
            if let Some(value) = value {
                check_id(field, value)?;
            }
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
