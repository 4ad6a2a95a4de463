//! [`CaseResolved`], an analyst's verdict on what weir flagged: the transactions were fraud, or
//! they were legitimate. Dispositions are written by `weir case resolve` to their own topic (or a
//! JSON-lines export) and read back as the labels of a backtest or a shadow report
//! ([`crate::backtest::Labels::from_dispositions`]), so what analysts conclude shows up in rule
//! precision without a hand-made labels file. weir's pipelines do not read them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::input::object;
use super::invalid::{check_id, check_kind, invalid};
use super::unlock::{check_note, derived_event_id};
use super::{InvalidEvent, rfc3339_utc_millis};

/// The `event_type` of a disposition.
pub const CASE_RESOLVED: &str = "CaseResolved";

/// The most transactions one disposition may name.
pub const MAX_RESOLVED_TRANSACTIONS: usize = 1000;

/// What the analyst concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The transactions were fraud.
    Fraud,
    /// The transactions were the customer's own: a false alarm.
    Legitimate,
}

/// An analyst's verdict on one or more of an account's transactions, keyed by account id.
/// A later disposition of the same transaction replaces an earlier one (an analyst's
/// correction). Its schema is `schemas/case-resolved.v1.schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResolved {
    pub event_id: String,
    /// Always [`CASE_RESOLVED`].
    pub event_type: String,
    pub schema_version: u32,
    /// When the analyst resolved the case.
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// The Kafka key.
    pub account_id: String,
    /// The transactions the verdict is about (1 to [`MAX_RESOLVED_TRANSACTIONS`]).
    pub transaction_ids: Vec<String>,
    pub verdict: Verdict,
    /// For fraud, the pattern's name (`card-testing`, `account-takeover`): the label a backtest
    /// shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Who resolved it.
    pub analyst: String,
    /// Why, in the analyst's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fraud => "fraud",
            Verdict::Legitimate => "legitimate",
        }
    }
}

impl CaseResolved {
    /// A disposition, validated like one read back. Its `event_id` is derived from what it says.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        account_id: &str,
        transaction_ids: &[String],
        verdict: Verdict,
        pattern: Option<&str>,
        analyst: &str,
        note: Option<&str>,
        occurred_at: OffsetDateTime,
    ) -> Result<CaseResolved, InvalidEvent> {
        let mut resolved = CaseResolved {
            event_id: String::new(),
            event_type: CASE_RESOLVED.to_owned(),
            schema_version: 1,
            occurred_at: rfc3339_utc_millis::normalize(occurred_at)
                .ok_or_else(|| invalid("occurred_at", "must be within the years 0000 to 9999"))?,
            account_id: account_id.to_owned(),
            transaction_ids: transaction_ids.to_vec(),
            verdict,
            pattern: pattern.map(str::to_owned),
            analyst: analyst.to_owned(),
            note: note.map(str::to_owned),
        };
        let name = format!(
            "{CASE_RESOLVED}\n{account_id}\n{}\n{verdict:?}\n{analyst}\n{}",
            transaction_ids.join("\n"),
            resolved.occurred_at_ms()
        );
        resolved.event_id = derived_event_id(&name);
        resolved.validate()?;
        Ok(resolved)
    }

    /// When the analyst resolved the case, in ms since the epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        rfc3339_utc_millis::epoch_ms(self.occurred_at)
    }

    fn validate(&self) -> Result<(), InvalidEvent> {
        check_kind(&self.event_type, CASE_RESOLVED, self.schema_version)?;
        check_id("event_id", &self.event_id)?;
        check_id("account_id", &self.account_id)?;
        check_id("analyst", &self.analyst)?;
        if self.transaction_ids.is_empty() || self.transaction_ids.len() > MAX_RESOLVED_TRANSACTIONS {
            return Err(invalid(
                "transaction_ids",
                format!(
                    "names {} transactions; 1 to {MAX_RESOLVED_TRANSACTIONS} are allowed",
                    self.transaction_ids.len()
                ),
            ));
        }
        for id in &self.transaction_ids {
            check_id("transaction_ids", id)?;
        }
        if let Some(pattern) = &self.pattern {
            check_id("pattern", pattern)?;
            if self.verdict == Verdict::Legitimate {
                return Err(invalid("pattern", "names a fraud pattern, but the verdict is legitimate"));
            }
        }
        check_note(self.note.as_deref())
    }
}

/// Parses and validates one disposition record.
pub fn parse_disposition(payload: &[u8]) -> Result<CaseResolved, InvalidEvent> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let resolved = object::<_, CaseResolved>(&mut deserializer)
        .and_then(|r| deserializer.end().map(|()| r))
        .map_err(|e| InvalidEvent::MalformedDisposition(e.to_string()))?;
    resolved.validate()?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disposition_round_trips_and_its_fields_are_checked() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let ids = vec!["tx-1".to_owned(), "tx-2".to_owned()];
        let r = CaseResolved::new("acct-1", &ids, Verdict::Fraud, Some("card-testing"), "a-7", None, at).unwrap();
        let back = parse_disposition(serde_json::to_string(&r).unwrap().as_bytes()).unwrap();
        assert_eq!(back, r);
        let err = CaseResolved::new("acct-1", &ids, Verdict::Legitimate, Some("x"), "a-7", None, at).unwrap_err();
        assert!(err.to_string().contains("`pattern`"), "{err}");
        let err = CaseResolved::new("acct-1", &[], Verdict::Fraud, None, "a-7", None, at).unwrap_err();
        assert!(err.to_string().contains("`transaction_ids`"), "{err}");
        let err = parse_disposition(br#"{"event_type":"CaseResolved","verdict":"maybe"}"#).unwrap_err();
        assert!(err.to_string().contains("CaseResolved"), "{err}");
    }
}
