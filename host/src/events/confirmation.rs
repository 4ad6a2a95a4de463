//! [`CustomerConfirmation`], the customer's "it was me": the other event weir reads from its
//! input topic, besides transactions. It is parsed and validated here with the same strictness
//! as a transaction; what weir does with it (accept it only as the answer to a `FraudSuspected`
//! weir published for the account, then record the merchant) is the state's business.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::input::object;
use super::invalid::{check_id, check_kind, invalid};
use super::malformed::explain_malformed_confirmation;
use super::{InvalidEvent, rfc3339_utc_millis};

/// The `event_type` of a customer's confirmation on the input topic (and of weir's own
/// verified decisions, on their topic).
pub const TRANSACTION_VERIFIED: &str = "TransactionVerified";

/// The `verified_by` of a [`CustomerConfirmation`].
pub const VERIFIED_BY_CUSTOMER: &str = "customer";

/// A customer's confirmation that a purchase was theirs ("it was me"), usually in answer to a
/// `FraudSuspected`: a `TransactionVerified` event with `verified_by = "customer"`, produced to
/// weir's input topic and keyed by account id like every input event.
///
/// weir does not decide it (it is not a transaction) and writes no decision for it. It accepts it
/// only when `causation_id` is the `event_id` of a `FraudSuspected` weir published for the account,
/// for the same transaction and merchant, within the policy's window (else it is dead-lettered);
/// then it records the merchant in the account's state, in the same batch as everything else, and from then on
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
    /// When the customer confirmed, in ms since the epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        rfc3339_utc_millis::epoch_ms(self.occurred_at)
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_kind(&self.event_type, TRANSACTION_VERIFIED, self.schema_version)?;
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

/// Parses and validates a record whose `event_type` is `TransactionVerified`.
pub(super) fn parse_confirmation(payload: &[u8]) -> Result<CustomerConfirmation, InvalidEvent> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    match object::<_, CustomerConfirmation>(&mut deserializer).and_then(|c| deserializer.end().map(|()| c)) {
        Ok(confirmation) => {
            confirmation.validate()?;
            Ok(confirmation)
        }
        Err(error) => Err(explain_malformed_confirmation(payload, &error)),
    }
}
