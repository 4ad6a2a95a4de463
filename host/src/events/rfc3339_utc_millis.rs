//! Serde for event times: RFC 3339 with any offset in, RFC 3339 UTC with exactly three fractional
//! digits out (`2026-11-28T19:42:07.512Z`). Values are truncated to the millisecond on input and
//! must fall within the years 0000 to 9999 in UTC, so every value read can be written back.
//!
//! Every event's `occurred_at` goes through this module (`#[serde(with = ...)]`), so input and
//! decisions agree on one format; the decision writer writes the same text without serde, from
//! [`normalize`].

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

/// `value` in ms since the Unix epoch (saturating).
pub fn epoch_ms(value: OffsetDateTime) -> i64 {
    i64::try_from(value.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
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
