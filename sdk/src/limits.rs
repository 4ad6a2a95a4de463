//! What a rule may hand the host and keep with it: the verdict limits and
//! the state quota. The host enforces them on every evaluation (going over
//! is that rule's error, and its failure policy applies); the native test
//! harness enforces the same, so `cargo test` on a rule fails the way
//! production would.

use std::borrow::Cow;

use crate::state::RuleState;
pub use crate::state::StateUsage;

/// Longest reason code, in bytes. A reason code is empty (a pass) or an
/// ASCII capital letter followed by capitals, digits, `_`, `.` or `-`.
pub const REASON_CODE_MAX: usize = 64;
/// Longest verdict message, in bytes.
pub const MESSAGE_MAX: usize = 1024;
/// Most evidence items in one verdict.
pub const EVIDENCE_MAX: usize = 16;
/// Longest evidence name (ASCII letters, digits, `_`, `.`, `-`), in bytes.
pub const EVIDENCE_NAME_MAX: usize = 64;
/// Longest evidence value, in bytes.
pub const EVIDENCE_VALUE_MAX: usize = 256;
/// How much of a rule's own error message (or panic) is kept, in bytes.
pub const ERROR_MESSAGE_MAX: usize = 512;
/// How much of one log line is kept, in bytes.
pub const LOG_LINE_MAX: usize = 1024;
/// The longest row of features a host keeps from a rule (`model.scored`):
/// as many as a model may take (`weir_sdk::model::MAX_FEATURES`). A longer
/// row stops the rule.
pub const MAX_SCORED_FEATURES: usize = 10_000;

/// How the errors of a rule's model reader begin (`weir_sdk::model`): the
/// host refuses a package whose rule fails reading its model with one.
pub const MODEL_ERROR_PREFIXES: [&str; 3] = ["invalid model: ", "unsupported model: ", "model too large: "];

/// Whether a rule's error message is its model reader's.
pub fn is_model_error(message: &str) -> bool {
    MODEL_ERROR_PREFIXES.iter().any(|p| message.starts_with(p))
}

/// The longest window of event time a rule can query, in seconds (31
/// days): series points older than this are not kept. A declared window
/// parameter's range: `.range(1, MAX_WINDOW_SECS)`.
pub const MAX_WINDOW_SECS: i64 = crate::state::SERIES_RETENTION_MS / 1000;
/// How many earlier transactions of an account the host keeps, the most
/// [`crate::Context::recent`] returns: `.range(1, MAX_HISTORY_LEN)`.
pub const MAX_HISTORY_LEN: i64 = crate::state::HISTORY_LEN as i64;

/// Checks a verdict's explanation against the limits above; the error says
/// which limit, in a sentence.
pub fn check_verdict<'a>(
    reason_code: &str,
    message: &str,
    evidence: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let code_ok = reason_code.is_empty()
        || (reason_code.len() <= REASON_CODE_MAX
            && reason_code.starts_with(|c: char| c.is_ascii_uppercase())
            && reason_code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"_.-".contains(&b)));
    if !code_ok {
        return Err(format!(
            "reason code {:?} is not 1-{REASON_CODE_MAX} capitals, digits, `_`, `.` or `-` starting with a capital",
            clean(reason_code, 80)
        ));
    }
    check_text("message", message, MESSAGE_MAX)?;
    if evidence.len() > EVIDENCE_MAX {
        return Err(format!("{} evidence items; at most {EVIDENCE_MAX} are allowed", evidence.len()));
    }
    for (name, value) in evidence {
        let name_ok = (1..=EVIDENCE_NAME_MAX).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(format!(
                "evidence name {:?} is not 1-{EVIDENCE_NAME_MAX} ASCII letters, digits, `_`, `.` or `-`",
                clean(name, 80)
            ));
        }
        check_text(name, value, EVIDENCE_VALUE_MAX)?;
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{what} is {} bytes; at most {max} are allowed", text.len()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("{what} holds the control character {c:?}; decisions and logs take printable text only"));
    }
    Ok(())
}

/// `text` made safe for a log line or a decision: control characters (line
/// breaks, terminal escapes) replaced by `�`, cut to at most `max` bytes at
/// a character boundary with `…` marking the cut.
pub fn clean(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max && !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > max.saturating_sub('…'.len_utf8()) {
            out.push('…');
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// How much account state one rule may keep per account, in the terms of
/// [`StateUsage`]. A write that would go over is that evaluation's error,
/// and none of its writes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// Bytes of keys, values, series names and points (16 bytes each).
    pub bytes: usize,
    /// Key/value entries.
    pub keys: usize,
    /// Series.
    pub series: usize,
}

impl StateQuota {
    /// What a rule gets unless its manifest asks otherwise.
    pub const DEFAULT: StateQuota = StateQuota { bytes: 64 * 1024, keys: 1024, series: 64 };
    /// The most a manifest may ask for. An account's state part for one
    /// rule then stays well within Kafka's default message size (1 MB).
    pub const MAX: StateQuota = StateQuota { bytes: 512 * 1024, keys: 16 * 1024, series: 1024 };

    /// Checks `state` against the quota, naming the limit it exceeds.
    pub fn check(&self, state: &RuleState) -> Result<(), String> {
        let usage = state.usage();
        if usage.keys > self.keys {
            return Err(format!("state has {} keys; the quota is {}", usage.keys, self.keys));
        }
        if usage.series > self.series {
            return Err(format!("state has {} series; the quota is {}", usage.series, self.series));
        }
        if usage.bytes > self.bytes {
            return Err(format!("state holds {} bytes; the quota is {}", usage.bytes, self.bytes));
        }
        Ok(())
    }
}

impl Default for StateQuota {
    fn default() -> Self {
        StateQuota::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_within_limits_pass_and_others_name_the_limit() {
        let none = std::iter::empty::<(&str, &str)>;
        assert!(check_verdict("", "", none()).is_ok());
        assert!(check_verdict("VELOCITY_COUNT", "too many", [("count", "12")].into_iter()).is_ok());
        let err = check_verdict("velocity", "", none()).unwrap_err();
        assert!(err.contains("reason code"), "{err}");
        let err = check_verdict("A", &"x".repeat(MESSAGE_MAX + 1), none()).unwrap_err();
        assert!(err.contains("message is 1025 bytes"), "{err}");
        let err = check_verdict("A", "red\x1b[31m", none()).unwrap_err();
        assert!(err.contains("control character"), "{err}");
        let many: Vec<(String, String)> = (0..=EVIDENCE_MAX).map(|i| (format!("e{i}"), String::new())).collect();
        let err = check_verdict("A", "", many.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap_err();
        assert!(err.contains("17 evidence items"), "{err}");
        let err = check_verdict("A", "", [("bad name", "1")].into_iter()).unwrap_err();
        assert!(err.contains("evidence name"), "{err}");
        let long = "v".repeat(EVIDENCE_VALUE_MAX + 1);
        let err = check_verdict("A", "", [("count", long.as_str())].into_iter()).unwrap_err();
        assert!(err.contains("count is 257 bytes"), "{err}");
    }

    #[test]
    fn clean_replaces_control_characters_and_cuts_at_a_boundary() {
        assert!(matches!(clean("plain", 10), Cow::Borrowed("plain")));
        assert_eq!(clean("a\nb\x1b[2J", 100), "a\u{FFFD}b\u{FFFD}[2J");
        let long = "é".repeat(100);
        let cut = clean(&long, 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn the_quota_counts_keys_series_and_bytes() {
        let mut state = RuleState::default();
        state.set("k", &"v".repeat(100));
        state.window_add(0, "s", 1);
        assert_eq!(state.usage(), StateUsage { bytes: 1 + 100 + 1 + 16, keys: 1, series: 1 });
        assert!(StateQuota::DEFAULT.check(&state).is_ok());
        let tight = StateQuota { bytes: 100, ..StateQuota::DEFAULT };
        assert!(tight.check(&state).unwrap_err().contains("118 bytes"));
        let one_key = StateQuota { keys: 0, ..StateQuota::DEFAULT };
        assert!(one_key.check(&state).unwrap_err().contains("1 keys"));
    }
}
