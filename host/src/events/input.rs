//! One record of weir's input topic, [`InputEvent`]: a transaction to decide, a customer's
//! confirmation or an analyst's unlock. [`parse_input`] tells them apart, transactions first,
//! since they are nearly every record. Both are JSON objects and nothing else ([`object`]), as the input contract says.

use std::fmt;
use std::marker::PhantomData;

use serde::de;
use serde::{Deserialize, Deserializer};

use super::confirmation::parse_confirmation;
use super::unlock::parse_unlock;
use super::{
    ACCOUNT_UNLOCKED, AccountUnlocked, CustomerConfirmation, InvalidEvent, TRANSACTION_VERIFIED, TransactionRecorded,
    parse_transaction,
};

/// One record of weir's input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// A purchase to decide.
    Transaction(TransactionRecorded),
    /// A customer's "it was me", recorded in the account's state; no decision.
    CustomerConfirmation(CustomerConfirmation),
    /// An analyst lifts the account's lock, recorded in the account's state; no decision.
    AccountUnlocked(AccountUnlocked),
}

impl InputEvent {
    /// The account, which is also the record key.
    pub fn account_id(&self) -> &str {
        match self {
            InputEvent::Transaction(tx) => &tx.account_id,
            InputEvent::CustomerConfirmation(c) => &c.account_id,
            InputEvent::AccountUnlocked(u) => &u.account_id,
        }
    }
}

/// Parses one input record: a [`TransactionRecorded`] (see [`parse_transaction`]) or, when its
/// `event_type` is `TransactionVerified`, a [`CustomerConfirmation`], or `AccountUnlocked`, an
/// [`AccountUnlocked`]. Transactions take the
/// fast path; only a record that is not one is looked at a second time.
pub fn parse_input(payload: &[u8], limit: usize) -> Result<InputEvent, InvalidEvent> {
    match parse_transaction(payload, limit) {
        Ok(tx) => Ok(InputEvent::Transaction(tx)),
        Err(InvalidEvent::WrongType(t)) if t == TRANSACTION_VERIFIED => {
            parse_confirmation(payload).map(InputEvent::CustomerConfirmation)
        }
        Err(InvalidEvent::WrongType(t)) if t == ACCOUNT_UNLOCKED => {
            parse_unlock(payload).map(InputEvent::AccountUnlocked)
        }
        Err(e) => Err(e),
    }
}

/// Deserializes `T` from a JSON object only. Serde's derived structs also accept an array of
/// the field values in order; the contract (and its schema) says object, so the parser does too.
pub(super) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
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
