//! [`DeadLetter`], what weir writes for a record it cannot process: the reason, where the record
//! was read, and its bytes whole (as text, or as base64 when they are not UTF-8, by a small
//! encoder of its own), so that nothing a producer sent is lost.

use serde::{Deserialize, Serialize};

use super::InputPosition;

/// A record that could not be processed, as written to the dead-letter destination. Nothing of
/// the original is lost: its bytes are in `payload` when they are UTF-8, in `payload_base64`
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub input: InputPosition,
    /// The original payload, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The original payload, base64 (standard alphabet, padded), when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

impl DeadLetter {
    pub fn new(reason: String, input: InputPosition, payload: &[u8]) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(base64(payload))),
        };
        DeadLetter { reason, input, payload, payload_base64 }
    }
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
