//! What is wrong with an input record that does not even deserialize. serde's type errors give a
//! line and column but not the field, so on the error path (and only there) the payload is read
//! again as plain JSON and each field of the event type is tried on its own; the error text then
//! names the offending fields, for the dead-letter record. A record of another `event_type` is
//! reported as that, whatever its shape.
//!
//! The lists of fields here follow the structs: a field added to
//! [`TransactionRecorded`](super::TransactionRecorded),
//! [`CustomerConfirmation`](super::CustomerConfirmation) or
//! [`AccountUnlocked`](super::AccountUnlocked) is added here too.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use weir_sdk::Channel;

use super::{InvalidEvent, TRANSACTION_RECORDED, rfc3339_utc_millis};

/// Turns a serde error into the most useful [`InvalidEvent`]: a record of another type is
/// [`InvalidEvent::WrongType`] (whatever its shape); otherwise serde's message, followed by the
/// paths of the fields that do not deserialize, since serde's type errors only give a position.
/// Runs only on the error path, so parsing the payload a second time costs nothing in the
/// normal case.
pub(super) fn explain_malformed(payload: &[u8], error: &serde_json::Error) -> InvalidEvent {
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

/// The paths of the fields of `top` that do not deserialize into
/// [`TransactionRecorded`](super::TransactionRecorded)'s fields, in struct order.
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
    for name in ["device_fingerprint", "counterparty_account", "card_fingerprint"] {
        field::<Option<String>>(top, "", name, false, &mut bad);
    }
    bad
}

/// Turns a serde error on a customer confirmation into [`InvalidEvent::MalformedConfirmation`]:
/// serde's message, followed by the paths of the fields that do not deserialize.
pub(super) fn explain_malformed_confirmation(payload: &[u8], error: &serde_json::Error) -> InvalidEvent {
    let mut text = error.to_string();
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(payload) {
        name_offending_fields(&mut text, &confirmation_offending_fields(&top));
    }
    InvalidEvent::MalformedConfirmation(text)
}

/// Turns a serde error on an analyst's unlock into [`InvalidEvent::MalformedUnlock`]: serde's
/// message, followed by the paths of the fields that do not deserialize.
pub(super) fn explain_malformed_unlock(payload: &[u8], error: &serde_json::Error) -> InvalidEvent {
    let mut text = error.to_string();
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(payload) {
        let mut bad = Vec::new();
        for key in ["event_id", "event_type", "account_id", "transaction_id", "analyst"] {
            field::<String>(&top, "", key, true, &mut bad);
        }
        field::<u32>(&top, "", "schema_version", true, &mut bad);
        if top.get("occurred_at").is_none_or(|v| rfc3339_utc_millis::deserialize(v).is_err()) {
            bad.push("occurred_at".to_owned());
        }
        field::<String>(&top, "", "note", false, &mut bad);
        name_offending_fields(&mut text, &bad);
    }
    InvalidEvent::MalformedUnlock(text)
}

/// The names of the fields of `top` that do not deserialize into
/// [`CustomerConfirmation`](super::CustomerConfirmation)'s fields.
fn confirmation_offending_fields(top: &Map<String, Value>) -> Vec<String> {
    let mut bad = Vec::new();
    for key in ["event_id", "event_type", "causation_id", "transaction_id", "account_id", "merchant_id"] {
        field::<String>(top, "", key, true, &mut bad);
    }
    field::<u32>(top, "", "schema_version", true, &mut bad);
    if top.get("occurred_at").is_none_or(|v| rfc3339_utc_millis::deserialize(v).is_err()) {
        bad.push("occurred_at".to_owned());
    }
    field::<String>(top, "", "verified_by", true, &mut bad);
    bad
}

/// Pushes `prefix` + `key` onto `bad` when `obj[key]` does not deserialize as `T` (or is
/// missing and `required`).
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
