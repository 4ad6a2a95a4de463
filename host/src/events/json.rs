//! The decision's JSON, written by hand: [`DecisionEvent::write_json`] appends byte for byte what
//! `serde_json::to_writer` writes for a [`DecisionEvent`] (the `events` tests compare the two on
//! every kind of decision), without serde's per-field machinery, because decisions are written
//! at the rate they are made. Strings are escaped as serde_json escapes them, numbers written by
//! `itoa`, times as [`rfc3339_utc_millis`] writes them.

use time::OffsetDateTime;

use super::{DecisionEvent, RuleResult, rfc3339_utc_millis};

impl DecisionEvent {
    /// Appends the decision's JSON to `out`: byte for byte what
    /// `serde_json::to_writer` writes for it (a test checks that on every
    /// kind of decision), written directly, without serde's per-field
    /// machinery — decisions are written at the rate they are made.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":\"");
        let mut id = uuid::Uuid::encode_buffer();
        out.extend_from_slice(self.event_id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"event_type\":\"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"schema_version\":");
        push_number(out, self.schema_version);
        out.extend_from_slice(b",\"occurred_at\":\"");
        push_time(out, self.occurred_at);
        out.extend_from_slice(b"\",\"causation_id\":");
        push_str(out, &self.causation_id);
        out.extend_from_slice(b",\"transaction_id\":");
        push_str(out, &self.transaction_id);
        out.extend_from_slice(b",\"account_id\":");
        push_str(out, &self.account_id);
        out.extend_from_slice(b",\"amount\":{\"minor_units\":");
        push_number(out, self.amount.minor_units);
        out.extend_from_slice(b",\"currency\":");
        push_str(out, &self.amount.currency);
        out.extend_from_slice(b"},\"merchant_id\":");
        push_str(out, &self.merchant_id);
        out.extend_from_slice(b",\"score\":");
        push_number(out, self.score);
        if let Some(reason) = &self.reason {
            out.extend_from_slice(b",\"reason\":");
            push_str(out, reason);
        }
        out.extend_from_slice(b",\"rules\":[");
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            r.write_json(out);
        }
        out.extend_from_slice(b"],\"engine\":{\"name\":");
        push_str(out, &self.engine.name);
        out.extend_from_slice(b",\"version\":");
        push_str(out, &self.engine.version);
        out.extend_from_slice(b"},\"input\":{\"topic\":");
        push_str(out, &self.input.topic);
        out.extend_from_slice(b",\"partition\":");
        push_number(out, self.input.partition);
        out.extend_from_slice(b",\"offset\":");
        push_number(out, self.input.offset);
        out.extend_from_slice(b"}}");
    }
}

impl RuleResult {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"rule_id\":");
        push_str(out, &self.rule_id);
        out.extend_from_slice(b",\"rule_version\":");
        push_str(out, &self.rule_version);
        out.extend_from_slice(b",\"version_label\":");
        push_str(out, &self.version_label);
        out.extend_from_slice(b",\"mode\":\"");
        out.extend_from_slice(self.mode.as_str().as_bytes());
        out.extend_from_slice(b"\",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.push(b'"');
        if self.score != 0 {
            out.extend_from_slice(b",\"score\":");
            push_number(out, self.score);
        }
        if !self.reason_code.is_empty() {
            out.extend_from_slice(b",\"reason_code\":");
            push_str(out, &self.reason_code);
        }
        if !self.message.is_empty() {
            out.extend_from_slice(b",\"message\":");
            push_str(out, &self.message);
        }
        if !self.evidence.is_empty() {
            out.extend_from_slice(b",\"evidence\":[");
            for (i, e) in self.evidence.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                push_str(out, &e.name);
                out.extend_from_slice(b",\"value\":");
                push_str(out, &e.value);
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(error) = &self.error {
            out.extend_from_slice(b",\"error\":");
            push_str(out, error);
        }
        if let Some(policy) = self.failure_policy {
            out.extend_from_slice(b",\"failure_policy\":\"");
            out.extend_from_slice(policy.as_str().as_bytes());
            out.push(b'"');
        }
        if !self.lists.is_empty() {
            out.extend_from_slice(b",\"lists\":[");
            for (i, l) in self.lists.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"list\":");
                push_str(out, &l.list);
                out.extend_from_slice(b",\"version\":\"");
                out.extend_from_slice(&super::rule_result::hex_u64::digits(l.version));
                out.extend_from_slice(b"\"}");
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// A JSON string, escaped as serde_json escapes it.
/// What each byte becomes in a JSON string: 0 itself, `u` a `\u00XX`
/// escape, any other the letter after the backslash (serde_json's choices).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table
};

fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// An event time as [`rfc3339_utc_millis`] writes it.
fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) {
    // Event times are read within the years 0000 to 9999 (see
    // `rfc3339_utc_millis`), so they can always be written.
    match rfc3339_utc_millis::normalize(t) {
        Some(utc) => {
            let two = |out: &mut Vec<u8>, n: u8| out.extend_from_slice(&[b'0' + n / 10, b'0' + n % 10]);
            let year = utc.year() as u32;
            out.extend_from_slice(&[
                b'0' + (year / 1000) as u8,
                b'0' + (year / 100 % 10) as u8,
                b'0' + (year / 10 % 10) as u8,
                b'0' + (year % 10) as u8,
                b'-',
            ]);
            two(out, utc.month() as u8);
            out.push(b'-');
            two(out, utc.day());
            out.push(b'T');
            two(out, utc.hour());
            out.push(b':');
            two(out, utc.minute());
            out.push(b':');
            two(out, utc.second());
            let ms = utc.millisecond();
            out.extend_from_slice(&[
                b'.',
                b'0' + (ms / 100) as u8,
                b'0' + (ms / 10 % 10) as u8,
                b'0' + (ms % 10) as u8,
                b'Z',
            ]);
        }
        None => unreachable!("an event time outside the years 0000 to 9999 was never read in"),
    }
}
