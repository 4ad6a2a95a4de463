//! [`DeadLetter`], what weir writes for a record it cannot process: the reason, where the record
//! was read, and its bytes (as text, or as base64, by a small encoder of its own), so that nothing
//! a producer sent is lost — up to the size limit. What a producer can make weir write is bounded:
//! a record over the limit keeps a prefix of [`DEAD_LETTER_PREFIX_BYTES`] with its size, the
//! reason is at most [`REASON_MAX_BYTES`], and a payload whose JSON escaping would grow it past
//! 1.5 times (control bytes escape to six) is written as base64 (4/3) instead.

use serde::{Deserialize, Serialize};

use super::InputPosition;

/// How much of a record over the size limit a dead letter keeps: its first bytes.
pub const DEAD_LETTER_PREFIX_BYTES: usize = 64 * 1024;

/// The longest reason a dead letter (or its log line) carries; longer ones are cut.
pub const REASON_MAX_BYTES: usize = 1024;

/// A record that could not be processed, as written to the dead-letter destination. The
/// original's bytes are in `payload` when they are UTF-8 and escape compactly, in
/// `payload_base64` otherwise; a record over the size limit keeps its first bytes only
/// (`truncated`, with its size in `payload_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub input: InputPosition,
    /// The original payload, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The original payload, base64 (standard alphabet, padded), when it is not UTF-8 or would
    /// escape to more than 1.5 times its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The record's size in bytes, when only its first bytes are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// Whether the payload is only the record's first bytes (it was over the size limit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl DeadLetter {
    /// A dead letter for a record of `size` bytes of which `payload` holds the first (all of
    /// them, unless the record was over the limit; at most [`DEAD_LETTER_PREFIX_BYTES`] are kept
    /// then).
    pub fn new(reason: &str, input: InputPosition, payload: &[u8], size: usize) -> Self {
        let truncated = size > payload.len();
        let payload =
            if truncated { utf8_prefix(&payload[..payload.len().min(DEAD_LETTER_PREFIX_BYTES)]) } else { payload };
        let (text, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) if escaped_len(text) <= text.len() + text.len() / 2 + 2 => (Some(text.to_owned()), None),
            _ => (None, Some(base64(payload))),
        };
        DeadLetter {
            reason: weir_sdk::limits::clean(reason, REASON_MAX_BYTES).into_owned(),
            input,
            payload: text,
            payload_base64,
            payload_bytes: truncated.then_some(size as u64),
            truncated,
        }
    }
}

/// `bytes` cut back to whole UTF-8 characters, when a cut split one (else unchanged).
fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    }
}

/// The length of `text` as a JSON string body (serde_json escapes `"`, `\` and control bytes).
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
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
