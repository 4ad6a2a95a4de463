//! [`AccountUnlocked`], an analyst's decision to lift the lock weir put on an account: the third
//! event weir reads from its input topic, besides transactions and customer confirmations. It is
//! parsed and validated here with the same strictness; what weir does with it (clear the lock it
//! names, so the account's next lock is announced again) is the state's business.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::input::object;
use super::invalid::{check_id, check_kind, invalid};
use super::malformed::explain_malformed_unlock;
use super::{DECISION_ID_NAMESPACE, InvalidEvent, forges_text, rfc3339_utc_millis};

/// The `event_type` of an analyst's unlock on the input topic.
pub const ACCOUNT_UNLOCKED: &str = "AccountUnlocked";

/// The longest note an analyst may attach to an unlock, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;

/// An analyst lifts the lock weir put on an account (the customer called and proved who they
/// are, the case was a false alarm): produced to weir's input topic, keyed by account id like
/// every input event, by `weir case unlock` or the bank's own case tool.
///
/// weir does not decide it and writes no decision for it. It accepts it only when the account is
/// locked by the transaction it names (`transaction_id`, as in the `AccountLocked` decision);
/// then it clears the lock in the account's state, in the same batch (on Kafka, the same
/// transaction) as everything else, so the account's next lock emits `AccountLocked` again. Any
/// other unlock (the account is not locked, or a later lock replaced the one it names) is
/// dead-lettered with the reason: an unlock read twice never lifts a newer lock. Its schema is
/// `schemas/account-unlocked.v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUnlocked {
    pub event_id: String,
    /// Always [`ACCOUNT_UNLOCKED`].
    pub event_type: String,
    pub schema_version: u32,
    /// When the analyst unlocked the account.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// The Kafka key.
    pub account_id: String,
    /// The transaction whose decision locked the account: the lock this lifts.
    pub transaction_id: String,
    /// Who unlocked it.
    pub analyst: String,
    /// Why, in the analyst's words (at most [`MAX_NOTE_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AccountUnlocked {
    /// An unlock of `account_id`'s lock by `transaction_id`, at `occurred_at`, validated like one
    /// read from the input. Its `event_id` is derived from what it says, so the same unlock
    /// written twice carries the same id.
    pub fn new(
        account_id: &str,
        transaction_id: &str,
        analyst: &str,
        note: Option<&str>,
        occurred_at: OffsetDateTime,
    ) -> Result<AccountUnlocked, InvalidEvent> {
        let mut unlock = AccountUnlocked {
            event_id: String::new(),
            event_type: ACCOUNT_UNLOCKED.to_owned(),
            schema_version: 1,
            occurred_at: rfc3339_utc_millis::normalize(occurred_at)
                .ok_or_else(|| invalid("occurred_at", "must be within the years 0000 to 9999"))?,
            account_id: account_id.to_owned(),
            transaction_id: transaction_id.to_owned(),
            analyst: analyst.to_owned(),
            note: note.map(str::to_owned),
        };
        let name =
            format!("{ACCOUNT_UNLOCKED}\n{account_id}\n{transaction_id}\n{analyst}\n{}", unlock.occurred_at_ms());
        unlock.event_id = derived_event_id(&name);
        unlock.validate()?;
        Ok(unlock)
    }

    /// When the analyst unlocked the account, in ms since the epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        rfc3339_utc_millis::epoch_ms(self.occurred_at)
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_kind(&self.event_type, ACCOUNT_UNLOCKED, self.schema_version)?;
        check_id("event_id", &self.event_id)?;
        check_id("account_id", &self.account_id)?;
        check_id("transaction_id", &self.transaction_id)?;
        check_id("analyst", &self.analyst)?;
        check_note(self.note.as_deref())
    }
}

/// The id of an analyst's event made by weir's commands: UUID v5 of what it says, so the same
/// event written twice carries the same id.
pub(super) fn derived_event_id(name: &str) -> String {
    uuid::Uuid::new_v5(&DECISION_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// An analyst's note: at most [`MAX_NOTE_BYTES`], line breaks and tabs allowed, no other control
/// character (one could forge a log line).
pub(super) fn check_note(note: Option<&str>) -> Result<(), InvalidEvent> {
    let note = note.unwrap_or_default();
    if note.len() > MAX_NOTE_BYTES {
        return Err(invalid("note", format!("is {} bytes long, the limit is {MAX_NOTE_BYTES}", note.len())));
    }
    if note.chars().any(|c| forges_text(c) && !matches!(c, '\n' | '\t')) {
        return Err(invalid("note", "holds a control or bidirectional-override character"));
    }
    Ok(())
}

/// Parses and validates a record whose `event_type` is `AccountUnlocked`.
pub(super) fn parse_unlock(payload: &[u8]) -> Result<AccountUnlocked, InvalidEvent> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    match object::<_, AccountUnlocked>(&mut deserializer).and_then(|u| deserializer.end().map(|()| u)) {
        Ok(unlock) => {
            unlock.validate()?;
            Ok(unlock)
        }
        Err(error) => Err(explain_malformed_unlock(payload, &error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlock_json(note: &str) -> String {
        serde_json::json!({
            "event_id": "u-1", "event_type": "AccountUnlocked", "schema_version": 1,
            "occurred_at": "2026-11-28T20:00:00Z", "account_id": "acct-1",
            "transaction_id": "tx-9", "analyst": "analyst-7", "note": note,
        })
        .to_string()
    }

    #[test]
    fn an_unlock_parses_and_its_fields_are_checked() {
        let u = parse_unlock(unlock_json("customer called\nidentity checked").as_bytes()).unwrap();
        assert_eq!(
            (u.account_id.as_str(), u.transaction_id.as_str(), u.analyst.as_str()),
            ("acct-1", "tx-9", "analyst-7")
        );
        let err = parse_unlock(unlock_json(&"x".repeat(MAX_NOTE_BYTES + 1)).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`note`"), "{err}");
        let err = parse_unlock(unlock_json("forged\u{1b}[31m").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`note`"), "{err}");
        let err = parse_unlock(br#"{"event_type":"AccountUnlocked","account_id":7}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AccountUnlocked") && text.contains("`account_id`"), "{text}");
    }
}
