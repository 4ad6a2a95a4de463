//! The wire encoding in which a transaction and an account's history cross
//! the rule contract (`weir:rule@2`): one byte string per call instead of a
//! record of strings, so a call costs one copy however many fields it has.
//!
//! The host encodes ([`encode_transaction`], [`encode_history`]); the SDK
//! decodes, in wasm, into a [`Transaction`] it reuses from call to call
//! ([`decode_transaction_into`]: no allocation once its strings have grown
//! to size) and into borrowed views of the history ([`HistoryView`]: no
//! allocation at all). Both sides are this module, tested natively.
//!
//! Layout, little-endian; a string is a `u32` byte length and UTF-8 bytes:
//!
//! - transaction: `u8` format version (1); `i64` event time (ms since the
//!   epoch); `i64` amount in minor units; `u8` channel (0 card present,
//!   1 ecommerce, 2 transfer, 3 atm); `u8` flags (bit 0: merchant name
//!   present, bit 1: merchant country present); strings event id,
//!   transaction id, account id, currency, merchant id, merchant name (if
//!   flagged), category code, merchant country (if flagged); `u32`
//!   attribute count, then each attribute's name and value.
//! - history: `u8` format version (1); `u32` entry count; per entry, newest
//!   first: `i64` event time; `i64` amount; `u8` channel; `u8` flags (bit 1:
//!   country present); strings transaction id, currency, merchant id,
//!   category code, country (if flagged).
//!
//! Fields are only ever appended: a reader ignores bytes after the ones it
//! knows, so a newer host can add fields without breaking older rules.

use crate::types::{Channel, Merchant, Money, PastTransaction, Transaction};

/// The format version this SDK writes and reads.
pub const FORMAT: u8 = 1;

const NAME: u8 = 1;
const COUNTRY: u8 = 2;

/// Bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(&'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host sent bytes this SDK cannot read ({})", self.0)
    }
}

impl std::error::Error for WireError {}

fn channel_code(c: Channel) -> u8 {
    match c {
        Channel::CardPresent => 0,
        Channel::Ecommerce => 1,
        Channel::Transfer => 2,
        Channel::Atm => 3,
    }
}

fn channel_of(code: u8) -> Result<Channel, WireError> {
    Ok(match code {
        0 => Channel::CardPresent,
        1 => Channel::Ecommerce,
        2 => Channel::Transfer,
        3 => Channel::Atm,
        _ => return Err(WireError("unknown channel")),
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The transaction's fields, borrowed, as the host encodes them.
#[derive(Debug, Clone, Copy)]
pub struct TransactionFields<'a> {
    pub event_id: &'a str,
    pub transaction_id: &'a str,
    pub account_id: &'a str,
    pub minor_units: i64,
    pub currency: &'a str,
    pub merchant_id: &'a str,
    pub merchant_name: Option<&'a str>,
    pub category_code: &'a str,
    pub country: Option<&'a str>,
    pub channel: Channel,
    pub occurred_at_ms: i64,
}

/// Appends the encoding of a transaction to `out`.
pub fn encode_transaction<'a>(
    out: &mut Vec<u8>,
    tx: &TransactionFields<'_>,
    attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    out.push(FORMAT);
    out.extend_from_slice(&tx.occurred_at_ms.to_le_bytes());
    out.extend_from_slice(&tx.minor_units.to_le_bytes());
    out.push(channel_code(tx.channel));
    let flags = if tx.merchant_name.is_some() { NAME } else { 0 } | if tx.country.is_some() { COUNTRY } else { 0 };
    out.push(flags);
    for s in [tx.event_id, tx.transaction_id, tx.account_id, tx.currency, tx.merchant_id] {
        put_str(out, s);
    }
    if let Some(name) = tx.merchant_name {
        put_str(out, name);
    }
    put_str(out, tx.category_code);
    if let Some(country) = tx.country {
        put_str(out, country);
    }
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count = 0u32;
    for (k, v) in attributes {
        put_str(out, k);
        put_str(out, v);
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
}

/// Appends the encoding of `entries` (newest first) to `out`.
pub fn encode_history<'a>(out: &mut Vec<u8>, entries: impl ExactSizeIterator<Item = &'a PastTransaction>) {
    out.push(FORMAT);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for p in entries {
        out.extend_from_slice(&p.occurred_at_ms.to_le_bytes());
        out.extend_from_slice(&p.amount.minor_units.to_le_bytes());
        out.push(channel_code(p.channel));
        out.push(if p.country.is_some() { COUNTRY } else { 0 });
        for s in [&p.transaction_id, &p.amount.currency, &p.merchant_id, &p.category_code] {
            put_str(out, s);
        }
        if let Some(country) = &p.country {
            put_str(out, country);
        }
    }
}

/// Reads fields off the front of a byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<&'a str, WireError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        // The host encodes Rust strings, so the bytes are UTF-8: checking
        // them again on every call was a measurable share of a rule's time.
        // What is checked is every length, against the bytes there are.
        #[cfg(target_family = "wasm")]
        {
            // SAFETY: the bytes were written by `put_str` from a `&str` by
            // the host this rule runs in, the one party a rule trusts.
            Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
        }
        #[cfg(not(target_family = "wasm"))]
        std::str::from_utf8(bytes).map_err(|_| WireError("a string is not UTF-8"))
    }
    fn version(&mut self) -> Result<(), WireError> {
        match self.u8()? {
            0 => Err(WireError("format version 0")),
            _ => Ok(()),
        }
    }
}

/// Replaces the contents of `into` with `s`, keeping its allocation.
fn assign(into: &mut String, s: &str) {
    into.clear();
    into.push_str(s);
}

fn assign_opt(into: &mut Option<String>, s: Option<&str>) {
    match (into.as_mut(), s) {
        (Some(old), Some(s)) => assign(old, s),
        (_, s) => *into = s.map(str::to_owned),
    }
}

/// An empty transaction, to decode into.
pub fn empty_transaction() -> Transaction {
    Transaction {
        event_id: String::new(),
        transaction_id: String::new(),
        account_id: String::new(),
        amount: Money { minor_units: 0, currency: String::new() },
        merchant: Merchant { id: String::new(), name: None, category_code: String::new(), country: None },
        channel: Channel::CardPresent,
        occurred_at_ms: 0,
        attributes: Vec::new(),
    }
}

/// Decodes a transaction into `into`, reusing its strings' allocations.
pub fn decode_transaction_into(bytes: &[u8], into: &mut Transaction) -> Result<(), WireError> {
    let mut r = Reader(bytes);
    r.version()?;
    into.occurred_at_ms = r.i64()?;
    into.amount.minor_units = r.i64()?;
    into.channel = channel_of(r.u8()?)?;
    let flags = r.u8()?;
    assign(&mut into.event_id, r.str()?);
    assign(&mut into.transaction_id, r.str()?);
    assign(&mut into.account_id, r.str()?);
    assign(&mut into.amount.currency, r.str()?);
    assign(&mut into.merchant.id, r.str()?);
    let name = if flags & NAME != 0 { Some(r.str()?) } else { None };
    assign_opt(&mut into.merchant.name, name);
    assign(&mut into.merchant.category_code, r.str()?);
    let country = if flags & COUNTRY != 0 { Some(r.str()?) } else { None };
    assign_opt(&mut into.merchant.country, country);
    let n = r.u32()? as usize;
    into.attributes.truncate(n);
    for i in 0..n {
        let (k, v) = (r.str()?, r.str()?);
        match into.attributes.get_mut(i) {
            Some((key, value)) => {
                assign(key, k);
                assign(value, v);
            }
            None => into.attributes.push((k.to_owned(), v.to_owned())),
        }
    }
    Ok(())
}

/// Decodes a transaction.
pub fn decode_transaction(bytes: &[u8]) -> Result<Transaction, WireError> {
    let mut tx = empty_transaction();
    decode_transaction_into(bytes, &mut tx)?;
    Ok(tx)
}

/// One earlier transaction, borrowed from an encoded history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastRef<'a> {
    pub transaction_id: &'a str,
    pub minor_units: i64,
    pub currency: &'a str,
    pub merchant_id: &'a str,
    pub category_code: &'a str,
    pub country: Option<&'a str>,
    pub channel: Channel,
    pub occurred_at_ms: i64,
}

impl PastRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> PastTransaction {
        PastTransaction {
            transaction_id: self.transaction_id.to_owned(),
            amount: Money { minor_units: self.minor_units, currency: self.currency.to_owned() },
            merchant_id: self.merchant_id.to_owned(),
            category_code: self.category_code.to_owned(),
            country: self.country.map(str::to_owned),
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms,
        }
    }
}

/// An account's recent transactions, newest first, read in place from
/// their encoding: iterating allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    bytes: Vec<u8>,
}

impl HistoryView {
    /// Wraps an encoded history; natively, checks every entry first.
    pub fn new(bytes: Vec<u8>) -> Result<HistoryView, WireError> {
        let view = HistoryView { bytes };
        // In wasm the host's encoding is trusted, and iterating stops at the
        // first entry that does not decode.
        #[cfg(not(target_family = "wasm"))]
        for entry in view.entries()? {
            entry?;
        }
        Ok(view)
    }

    fn entries(&self) -> Result<Entries<'_>, WireError> {
        if self.bytes.is_empty() {
            return Ok(Entries { r: Reader(&[]), left: 0 });
        }
        let mut r = Reader(&self.bytes);
        r.version()?;
        let left = r.u32()?;
        Ok(Entries { r, left })
    }

    /// The entries, newest first.
    pub fn iter(&self) -> impl Iterator<Item = PastRef<'_>> + '_ {
        self.entries().into_iter().flatten().map_while(Result::ok)
    }

    pub fn len(&self) -> usize {
        self.entries().map(|e| e.left as usize).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Entries<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<PastRef<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = &mut self.r;
        let entry = (|| {
            let occurred_at_ms = r.i64()?;
            let minor_units = r.i64()?;
            let channel = channel_of(r.u8()?)?;
            let flags = r.u8()?;
            let (transaction_id, currency, merchant_id, category_code) = (r.str()?, r.str()?, r.str()?, r.str()?);
            let country = if flags & COUNTRY != 0 { Some(r.str()?) } else { None };
            Ok(PastRef {
                transaction_id,
                minor_units,
                currency,
                merchant_id,
                category_code,
                country,
                channel,
                occurred_at_ms,
            })
        })();
        if entry.is_err() {
            self.left = 0;
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(tx: &Transaction) -> TransactionFields<'_> {
        TransactionFields {
            event_id: &tx.event_id,
            transaction_id: &tx.transaction_id,
            account_id: &tx.account_id,
            minor_units: tx.amount.minor_units,
            currency: &tx.amount.currency,
            merchant_id: &tx.merchant.id,
            merchant_name: tx.merchant.name.as_deref(),
            category_code: &tx.merchant.category_code,
            country: tx.merchant.country.as_deref(),
            channel: tx.channel,
            occurred_at_ms: tx.occurred_at_ms,
        }
    }

    fn encode(tx: &Transaction) -> Vec<u8> {
        let mut out = Vec::new();
        encode_transaction(&mut out, &fields(tx), tx.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out
    }

    fn sample() -> Transaction {
        let mut tx = crate::testing::tx().build();
        tx.attributes = vec![("card_last4".into(), "4242".into()), ("weir.device_fingerprint".into(), "d-1".into())];
        tx
    }

    #[test]
    fn a_transaction_round_trips() {
        let tx = sample();
        assert_eq!(decode_transaction(&encode(&tx)).unwrap(), tx);
        let mut bare = tx.clone();
        bare.merchant.name = None;
        bare.merchant.country = None;
        bare.attributes.clear();
        bare.channel = Channel::Atm;
        bare.amount.minor_units = -5;
        assert_eq!(decode_transaction(&encode(&bare)).unwrap(), bare);
    }

    #[test]
    fn decoding_into_a_used_transaction_leaves_nothing_of_the_old_one() {
        let full = sample();
        let mut bare = full.clone();
        bare.merchant.name = None;
        bare.attributes.truncate(1);
        bare.transaction_id = "tx-2".into();
        let mut into = empty_transaction();
        decode_transaction_into(&encode(&full), &mut into).unwrap();
        decode_transaction_into(&encode(&bare), &mut into).unwrap();
        assert_eq!(into, bare);
        decode_transaction_into(&encode(&full), &mut into).unwrap();
        assert_eq!(into, full);
    }

    #[test]
    fn bytes_appended_by_a_newer_host_are_ignored_and_damage_is_an_error() {
        let tx = sample();
        let mut bytes = encode(&tx);
        bytes.extend_from_slice(b"a field from the future");
        assert_eq!(decode_transaction(&bytes).unwrap(), tx);
        let bytes = encode(&tx);
        for cut in [0, 1, 9, 20, bytes.len() - 1] {
            assert!(decode_transaction(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[17] = 9; // the channel
        assert_eq!(decode_transaction(&bad).unwrap_err(), WireError("unknown channel"));
    }

    #[test]
    fn a_history_is_read_in_place() {
        let mut older = sample();
        older.transaction_id = "tx-1".into();
        older.merchant.country = None;
        let newer = sample();
        let entries = [PastTransaction::from(&newer), PastTransaction::from(&older)];
        let mut bytes = Vec::new();
        encode_history(&mut bytes, entries.iter());
        let view = HistoryView::new(bytes.clone()).unwrap();
        assert_eq!(view.len(), 2);
        let owned: Vec<PastTransaction> = view.iter().map(|p| p.to_owned()).collect();
        assert_eq!(owned, entries);
        assert!(HistoryView::new(bytes[..bytes.len() - 2].to_vec()).is_err());
        assert!(HistoryView::new(Vec::new()).unwrap().is_empty());
    }
}
