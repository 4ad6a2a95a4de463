//! [`ListChanged`], an analyst's change to a runtime block or allow list: an entry added (with an
//! optional expiry in event time) or removed. On Kafka it is a record of the compacted lists topic
//! keyed by [`ListChanged::key`], so the topic keeps each entry's last change; embedded, a line of
//! a JSON-lines file. What the lists are and how rules read them is [`crate::lists`]' business.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::input::object;
use super::invalid::{check_id, check_kind, invalid};
use super::unlock::{check_note, derived_event_id};
use super::{InvalidEvent, rfc3339_utc_millis};

/// The `event_type` of a list change.
pub const LIST_CHANGED: &str = "ListChanged";

/// The longest list name, in bytes.
pub const MAX_LIST_NAME_BYTES: usize = 64;

/// What a change does to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListAction {
    /// Puts the value on the list (or replaces its expiry).
    Add,
    /// Takes the value off the list.
    Remove,
}

impl ListAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ListAction::Add => "add",
            ListAction::Remove => "remove",
        }
    }
}

/// An analyst puts a value on a list or takes it off: a merchant id, a device fingerprint, a
/// country, an account, a counterparty, whatever the rules that read the list look up. Written by
/// `weir list add` / `weir list remove` (or the bank's own tool); every weir instance reads the
/// whole lists topic and applies the changes in order. Its schema is
/// `schemas/list-changed.v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChanged {
    pub event_id: String,
    /// Always [`LIST_CHANGED`].
    pub event_type: String,
    pub schema_version: u32,
    /// When the analyst made the change.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// The list: 1 to 64 bytes of lowercase ASCII letters, digits, `-`, `_` and `.`, starting
    /// with a letter or a digit.
    pub list: String,
    /// The value put on or taken off the list, compared exactly (no case folding).
    pub value: String,
    pub action: ListAction,
    /// For an add: from this event time on, the entry no longer matches (a transaction whose
    /// `occurred_at` is at or after it is not on the list). Absent: it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_time")]
    pub expires_at: Option<OffsetDateTime>,
    /// Who made the change.
    pub analyst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ListChanged {
    /// A change of `value` on `list`, validated like one read from the lists topic. Its
    /// `event_id` is derived from what it says, so the same change written twice carries the
    /// same id.
    pub fn new(
        list: &str,
        value: &str,
        action: ListAction,
        expires_at: Option<OffsetDateTime>,
        analyst: &str,
        note: Option<&str>,
        occurred_at: OffsetDateTime,
    ) -> Result<ListChanged, InvalidEvent> {
        let time = |field, t: OffsetDateTime| {
            rfc3339_utc_millis::normalize(t).ok_or_else(|| invalid(field, "must be within the years 0000 to 9999"))
        };
        let mut change = ListChanged {
            event_id: String::new(),
            event_type: LIST_CHANGED.to_owned(),
            schema_version: 1,
            occurred_at: time("occurred_at", occurred_at)?,
            list: list.to_owned(),
            value: value.to_owned(),
            action,
            expires_at: expires_at.map(|t| time("expires_at", t)).transpose()?,
            analyst: analyst.to_owned(),
            note: note.map(str::to_owned),
        };
        let name = format!(
            "{LIST_CHANGED}\n{list}\n{value}\n{}\n{analyst}\n{}",
            action.as_str(),
            rfc3339_utc_millis::epoch_ms(change.occurred_at)
        );
        change.event_id = derived_event_id(&name);
        change.validate()?;
        Ok(change)
    }

    /// The record key on the lists topic: the list and the value, so compaction keeps each
    /// entry's last change. List names hold no `/`, so the first one splits the key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.list, self.value)
    }

    /// The expiry in ms since the epoch, if any.
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expires_at.map(rfc3339_utc_millis::epoch_ms)
    }

    /// When the change was made, in ms since the epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        rfc3339_utc_millis::epoch_ms(self.occurred_at)
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_kind(&self.event_type, LIST_CHANGED, self.schema_version)?;
        check_id("event_id", &self.event_id)?;
        check_list_name(&self.list)?;
        check_id("value", &self.value)?;
        check_id("analyst", &self.analyst)?;
        if self.action == ListAction::Remove && self.expires_at.is_some() {
            return Err(invalid("expires_at", "is only for an add"));
        }
        check_note(self.note.as_deref())
    }
}

/// A list name: 1 to [`MAX_LIST_NAME_BYTES`] of `[a-z0-9._-]`, starting with a letter or digit.
pub fn check_list_name(name: &str) -> Result<(), InvalidEvent> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_LIST_NAME_BYTES {
        return Err(invalid("list", format!("must be 1 to {MAX_LIST_NAME_BYTES} bytes long")));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            "list",
            format!(
                "`{}` is not a list name: lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit",
                super::shown(name, 80)
            ),
        ));
    }
    Ok(())
}

/// Parses and validates a list change (a record of the lists topic, a line of a lists file).
pub fn parse_list_change(payload: &[u8]) -> Result<ListChanged, InvalidEvent> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let change = object::<_, ListChanged>(&mut deserializer)
        .and_then(|c| deserializer.end().map(|()| c))
        .map_err(|e| InvalidEvent::MalformedListChange(e.to_string()))?;
    change.validate()?;
    Ok(change)
}

/// [`rfc3339_utc_millis`] for an optional time.
mod optional_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(value: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => super::rfc3339_utc_millis::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::rfc3339_utc_millis")] OffsetDateTime);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change_json() -> serde_json::Value {
        serde_json::json!({
            "event_id": "l-1", "event_type": "ListChanged", "schema_version": 1,
            "occurred_at": "2026-11-28T20:00:00Z", "list": "blocked-devices", "value": "fp-9",
            "action": "add", "expires_at": "2026-12-28T20:00:00+01:00", "analyst": "analyst-7",
        })
    }

    #[test]
    fn a_change_parses_and_its_fields_are_checked() {
        let c = parse_list_change(change_json().to_string().as_bytes()).unwrap();
        assert_eq!((c.list.as_str(), c.value.as_str(), c.action), ("blocked-devices", "fp-9", ListAction::Add));
        assert_eq!(c.key(), "blocked-devices/fp-9");
        assert_eq!(serde_json::to_value(&c).unwrap()["expires_at"], "2026-12-28T19:00:00.000Z");
        let with = |key: &str, value: serde_json::Value| {
            let mut v = change_json();
            v[key] = value;
            parse_list_change(v.to_string().as_bytes()).unwrap_err().to_string()
        };
        assert!(with("list", "Blocked".into()).contains("field `list`"));
        assert!(with("list", "a/b".into()).contains("field `list`"));
        assert!(with("list", "x".repeat(65).into()).contains("field `list`"));
        assert!(with("value", "".into()).contains("field `value`"));
        assert!(with("value", "x".repeat(257).into()).contains("field `value`"));
        assert!(with("action", "block".into()).contains("unknown variant"));
        assert!(with("expires_at", "tomorrow".into()).contains("ListChanged"));
        let mut remove = change_json();
        remove["action"] = "remove".into();
        assert!(parse_list_change(remove.to_string().as_bytes()).unwrap_err().to_string().contains("`expires_at`"));
    }

    #[test]
    fn a_made_change_has_an_id_derived_from_what_it_says() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = ListChanged::new("l", "v", ListAction::Add, None, "a", None, at).unwrap();
        let b = ListChanged::new("l", "v", ListAction::Add, None, "a", Some("again"), at).unwrap();
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, ListChanged::new("l", "v", ListAction::Remove, None, "a", None, at).unwrap().event_id);
        assert!(ListChanged::new("L", "v", ListAction::Add, None, "a", None, at).is_err());
    }
}
