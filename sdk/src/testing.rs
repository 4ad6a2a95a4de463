//! Native test harness: run a rule with `cargo test`, no wasm needed.
//!
//! ```
//! use weir_sdk::prelude::*;
//! use weir_sdk::testing::{tx, Harness};
//!
//! fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
//!     ctx.window_add("count", 1);
//!     let n = ctx.window_count("count", std::time::Duration::from_secs(3600));
//!     Ok(if n > 2 { Verdict::suspect("BUSY", "three in an hour") } else { Verdict::pass() })
//! }
//!
//! let mut h = Harness::new(weir_sdk::NativeRule::new(evaluate));
//! assert!(h.run(&tx().build()).unwrap().is_pass());
//! assert!(h.run(&tx().after_secs(60).build()).unwrap().is_pass());
//! assert_eq!(h.run(&tx().after_secs(120).build()).unwrap().reason_code, "BUSY");
//! ```
//!
//! The harness keeps one account's state between runs and records each
//! transaction in the history after the rule has seen it — as the host does.

use crate::context::{AccountHost, LogLevel};
use crate::params::{ParamValue, Params};
use crate::state::{History, RuleState};
use crate::types::{Channel, Merchant, Money, PastTransaction, Transaction};
use crate::{Context, Error, NativeRule, Verdict};

/// The event time test transactions start at: 2026-11-28T19:42:07Z.
pub const BASE_TIME_MS: i64 = 1_795_894_927_000;

/// One account's state in memory, implementing [`AccountHost`].
#[derive(Debug, Default, Clone)]
pub struct MemoryAccount {
    pub state: RuleState,
    pub history: History,
    /// Event time of the transaction being evaluated.
    pub now_ms: i64,
    /// What the rule logged, in order.
    pub logs: Vec<(LogLevel, String)>,
}

impl AccountHost for MemoryAccount {
    fn get(&self, key: &str) -> Option<String> {
        self.state.get(key).map(str::to_owned)
    }
    fn set(&mut self, key: &str, value: &str) {
        self.state.set(key, value)
    }
    fn remove(&mut self, key: &str) {
        self.state.remove(key)
    }
    fn window_add(&mut self, name: &str, value: i64) {
        self.state.window_add(self.now_ms, name, value)
    }
    fn window_sum(&mut self, name: &str, window_ms: u64) -> i64 {
        self.state.window_sum(self.now_ms, name, window_ms)
    }
    fn window_count(&mut self, name: &str, window_ms: u64) -> u32 {
        self.state.window_count(self.now_ms, name, window_ms)
    }
    fn history(&self, limit: u32) -> Vec<PastTransaction> {
        self.history.recent(limit).cloned().collect()
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()))
    }
}

/// Runs one rule against one in-memory account.
///
/// A rule exported with `rule!(evaluate, Config)` parses its `Config` on
/// the first run and keeps it for the harness's life, as a wasm instance
/// does; [`Harness::param`] gives the harness new parameters, parsed afresh.
pub struct Harness {
    rule: NativeRule,
    params: Params,
    pub account: MemoryAccount,
}

impl Harness {
    pub fn new(rule: NativeRule) -> Self {
        Harness { rule, params: Params::default(), account: MemoryAccount::default() }
    }

    /// Sets a parameter, as the manifest's `[params]` table would.
    pub fn param(mut self, name: &str, value: impl Into<ParamValue>) -> Self {
        let mut entries: Vec<_> = self.params.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        entries.retain(|(k, _)| k != name);
        entries.push((name.to_owned(), value.into()));
        self.params = Params::new(entries);
        self
    }

    /// Evaluates `tx`, then records it in the account's history.
    pub fn run(&mut self, tx: &Transaction) -> Result<Verdict, Error> {
        self.account.now_ms = tx.occurred_at_ms;
        let before = self.account.state.clone();
        let verdict = {
            let mut ctx = Context::native(&mut self.account, &self.params, tx.occurred_at_ms);
            (self.rule.evaluate)(tx, &mut ctx)
        };
        // The host's limits: an explanation over them, or state over the
        // default quota, is the rule's error, and its writes are undone.
        let verdict = verdict.and_then(|v| {
            let evidence = v.evidence.iter().map(|e| (e.name.as_str(), e.value.as_str()));
            crate::limits::check_verdict(&v.reason_code, &v.message, evidence).map_err(Error::msg)?;
            crate::limits::StateQuota::DEFAULT.check(&self.account.state).map_err(Error::msg)?;
            Ok(v)
        });
        if verdict.is_err() {
            self.account.state = before;
        }
        self.account.history.push(PastTransaction::from(tx));
        verdict
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Integer(v)
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}
impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Boolean(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Text(v.to_owned())
    }
}
impl<const N: usize> From<[&str; N]> for ParamValue {
    fn from(v: [&str; N]) -> Self {
        ParamValue::TextList(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// A test transaction: the concert-ticket purchase from the story
/// (EUR 189.00 at Tickets R Us, NL, e-commerce), to be adjusted.
pub fn tx() -> TxBuilder {
    TxBuilder(Transaction {
        event_id: "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41".to_owned(),
        transaction_id: "tx-000184467".to_owned(),
        account_id: "acct-1029".to_owned(),
        amount: Money { minor_units: 18_900, currency: "EUR".to_owned() },
        merchant: Merchant {
            id: "m-ticketsrus".to_owned(),
            name: Some("Tickets R Us".to_owned()),
            category_code: "7922".to_owned(),
            country: Some("NL".to_owned()),
        },
        channel: Channel::Ecommerce,
        occurred_at_ms: BASE_TIME_MS,
        attributes: Vec::new(),
    })
}

/// Builder returned by [`tx`].
#[derive(Debug, Clone)]
pub struct TxBuilder(Transaction);

impl TxBuilder {
    pub fn id(mut self, transaction_id: &str) -> Self {
        self.0.transaction_id = transaction_id.to_owned();
        self.0.event_id = format!("evt-{transaction_id}");
        self
    }
    pub fn account(mut self, account_id: &str) -> Self {
        self.0.account_id = account_id.to_owned();
        self
    }
    pub fn amount(mut self, minor_units: i64, currency: &str) -> Self {
        self.0.amount = Money { minor_units, currency: currency.to_owned() };
        self
    }
    /// Another merchant (its name is cleared; see [`TxBuilder::merchant_name`]).
    pub fn merchant(mut self, id: &str, category_code: &str) -> Self {
        self.0.merchant.id = id.to_owned();
        self.0.merchant.name = None;
        self.0.merchant.category_code = category_code.to_owned();
        self
    }
    pub fn merchant_name(mut self, name: &str) -> Self {
        self.0.merchant.name = Some(name.to_owned());
        self
    }
    /// A merchant whose country the producer did not send.
    pub fn no_country(mut self) -> Self {
        self.0.merchant.country = None;
        self
    }
    pub fn country(mut self, country: &str) -> Self {
        self.0.merchant.country = Some(country.to_owned());
        self
    }
    pub fn channel(mut self, channel: Channel) -> Self {
        self.0.channel = channel;
        self
    }
    /// Event time `secs` seconds after [`BASE_TIME_MS`].
    pub fn after_secs(mut self, secs: i64) -> Self {
        self.0.occurred_at_ms = BASE_TIME_MS + secs * 1000;
        self
    }
    /// Sets the attribute `name` (replacing an earlier value), keeping
    /// attributes in key order as the host does.
    pub fn attribute(mut self, name: &str, value: &str) -> Self {
        let attributes = &mut self.0.attributes;
        attributes.retain(|(k, _)| k != name);
        attributes.push((name.to_owned(), value.to_owned()));
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }
    /// A version 2 event from the device with this fingerprint.
    pub fn device_fingerprint(self, fingerprint: &str) -> Self {
        self.attribute(crate::types::DEVICE_FINGERPRINT_ATTRIBUTE, fingerprint)
    }
    /// The customer has confirmed an earlier purchase at this merchant.
    pub fn merchant_confirmed_by_customer(self) -> Self {
        self.attribute(crate::types::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, "true")
    }
    pub fn build(self) -> Transaction {
        self.0
    }
}
