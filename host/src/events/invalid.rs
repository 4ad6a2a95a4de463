//! [`InvalidEvent`], why an input record is rejected: its text goes to the dead-letter record, so
//! it names the field at fault. Also the checks on values both input events share (identifiers,
//! ISO codes), so a transaction and a customer confirmation are held to the same limits.

/// The longest identifier (`event_id`, `transaction_id`, `account_id`, `merchant.id`), in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Why an input record is not a valid [`TransactionRecorded`](super::TransactionRecorded); the text goes to the dead-letter
/// record, so it names the field at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InvalidEvent {
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// Not JSON, or JSON of the wrong shape: serde's text (which gives line and column), plus the
    /// offending field paths when they can be found.
    #[error("payload is not valid JSON for TransactionRecorded: {0}")]
    Malformed(String),
    #[error(
        "event_type is `{0}`, expected `TransactionRecorded` (or `TransactionVerified` by the customer, or `AccountUnlocked`)"
    )]
    WrongType(String),
    /// A customer confirmation (`TransactionVerified` on the input topic) of the wrong shape.
    #[error("payload is not valid JSON for a customer confirmation (TransactionVerified): {0}")]
    MalformedConfirmation(String),
    /// An analyst's unlock (`AccountUnlocked` on the input topic) of the wrong shape.
    #[error("payload is not valid JSON for an analyst's unlock (AccountUnlocked): {0}")]
    MalformedUnlock(String),
    /// An analyst's disposition (`CaseResolved`) of the wrong shape.
    #[error("not valid JSON for an analyst's disposition (CaseResolved): {0}")]
    MalformedDisposition(String),
    /// A list change (`ListChanged`) of the wrong shape.
    #[error("not valid JSON for a list change (ListChanged): {0}")]
    MalformedListChange(String),
    #[error("field `{field}`: {problem}")]
    Invalid { field: &'static str, problem: String },
}

pub(super) fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidEvent {
    InvalidEvent::Invalid { field, problem: problem.into() }
}

/// The checks every input event starts with: its `event_type` is `expected` (else it is another
/// event, [`InvalidEvent::WrongType`]) and its `schema_version` at least 1.
pub(super) fn check_kind(event_type: &str, expected: &str, schema_version: u32) -> Result<(), InvalidEvent> {
    if event_type != expected {
        return Err(InvalidEvent::WrongType(event_type.to_owned()));
    }
    if schema_version < 1 {
        return Err(invalid("schema_version", "must be 1 or greater"));
    }
    Ok(())
}

pub(super) fn check_id(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else if value.len() > MAX_ID_BYTES {
        Err(invalid(field, format!("is {} bytes long, the limit is {MAX_ID_BYTES}", value.len())))
    } else if value.chars().any(forges_text) {
        Err(invalid(field, "holds a control or bidirectional-override character"))
    } else {
        Ok(())
    }
}

/// Text bound for a log line or a terminal: at most `max` bytes (cut at a
/// character), with every character that [`forges_text`] replaced by `�`.
/// The one helper for text from a deployer, a producer or a rule that is
/// shown (the SDK's `limits::clean`, plus bidirectional overrides).
pub fn shown(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let cleaned = weir_sdk::limits::clean(text, max);
    if !cleaned.chars().any(forges_text) {
        return cleaned;
    }
    std::borrow::Cow::Owned(cleaned.chars().map(|c| if forges_text(c) { '\u{FFFD}' } else { c }).collect())
}

/// Whether `c` could forge what a log line or a terminal shows: a control
/// character (escape sequences, line breaks) or a bidirectional override.
/// Identifiers in events and a manifest's labels may not hold one; text
/// that may (refusal reasons, rule messages) is cleaned where it is shown.
pub fn forges_text(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

pub(super) fn is_ascii_code(value: &str, len: usize, allowed: fn(&u8) -> bool) -> bool {
    value.len() == len && value.as_bytes().iter().all(allowed)
}
