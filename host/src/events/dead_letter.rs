//! [`DeadLetter`], what weir writes for a record it cannot process: the reason, where the record
//! was read, the record's size, and its bytes — whole when the record is within the size limit,
//! its first [`TRUNCATED_PAYLOAD_BYTES`] otherwise — as text, or as base64 (by a small encoder of
//! its own) when they are not UTF-8 or when escaping them for JSON would make them more than half
//! as large again.
//!
//! A dead letter is bounded, whatever a producer sends: its payload is at most the record (or
//! the capped prefix of a record over the limit) and written at most 1.5 times its size, and the
//! reason is cut to [`MAX_REASON_BYTES`] ([`dead_letter_reason`]), so dead-letter output is at
//! most 1.5 times the input plus a small, bounded envelope per record.

use std::fmt::{self, Display, Write as _};

use serde::{Deserialize, Serialize};

use super::InputPosition;

/// The most of a record over the size limit a dead letter keeps: its first 64 KiB (or the limit,
/// when that is smaller). The rest is skipped as it is read, never held whole.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;

/// The longest reason a dead letter (or its `weir.reason` header, on Kafka) carries, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// A record that could not be processed, as written to the dead-letter destination. A record
/// within the size limit is kept whole; of a larger one the first bytes are kept, and
/// `truncated` says so. The bytes are in `payload` when they are UTF-8 and escape compactly, in
/// `payload_base64` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub input: InputPosition,
    /// The payload kept, when it is UTF-8 and its JSON escaping is at most 1.5 times its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload kept, base64 (standard alphabet, padded), otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The size of the original record, in bytes (newline excluded).
    /// Dead letters of earlier versions lack it (read as 0).
    #[serde(default)]
    pub payload_bytes: u64,
    /// Whether only the record's first bytes are kept (it was over the size limit).
    #[serde(default)]
    pub truncated: bool,
}

impl DeadLetter {
    /// The dead letter of the record `payload`, kept whole.
    pub fn new(reason: String, input: InputPosition, payload: &[u8]) -> Self {
        Self::of_record(reason, input, payload, payload.len() as u64)
    }

    /// The dead letter of a record of `size` bytes whose first bytes are `kept` (all of them
    /// when `kept` is as long as the record). Of a record not kept whole, at most
    /// [`TRUNCATED_PAYLOAD_BYTES`] are written, cut back to a character boundary when they are
    /// text. The reason is bounded by [`dead_letter_reason`].
    pub fn of_record(reason: String, input: InputPosition, kept: &[u8], size: u64) -> Self {
        let truncated = (kept.len() as u64) < size;
        let kept = if truncated { utf8_prefix(&kept[..kept.len().min(TRUNCATED_PAYLOAD_BYTES)]) } else { kept };
        let (payload, payload_base64) = match std::str::from_utf8(kept) {
            Ok(text) if json_escaped_len(text) <= kept.len() + kept.len() / 2 => (Some(text.to_owned()), None),
            _ => (None, Some(base64(kept))),
        };
        let reason = match super::shown(&reason, MAX_REASON_BYTES) {
            std::borrow::Cow::Borrowed(_) => reason,
            std::borrow::Cow::Owned(cleaned) => cleaned,
        };
        DeadLetter { reason, input, payload, payload_base64, payload_bytes: size, truncated }
    }
}

/// `reason` as a dead letter carries it: at most [`MAX_REASON_BYTES`], control characters
/// replaced by `�`, a cut marked by `…`. Formatting stops at the bound, so a reason quoting a
/// huge value (an `event_type` of a megabyte) costs no more than a short one.
pub fn dead_letter_reason(reason: &impl Display) -> String {
    let mut bounded = Bounded(String::new());
    // An error here only means the bound was reached.
    let _ = write!(bounded, "{reason}");
    super::shown(&bounded.0, MAX_REASON_BYTES).into_owned()
}

/// A `fmt::Write` that keeps whole characters up to a little past [`MAX_REASON_BYTES`], then
/// stops the formatting.
struct Bounded(String);

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // One character past the bound, so `clean` sees the cut and marks it.
        let room = MAX_REASON_BYTES + 4 - self.0.len();
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&s[..end]);
        Err(fmt::Error)
    }
}

/// `bytes` without a character cut at its end: a prefix of UTF-8 text stays text.
fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    }
}

/// The length of `text` as a JSON string's contents, escaped as serde_json escapes it.
fn json_escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Standard base64 (RFC 4648 section 4), padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
