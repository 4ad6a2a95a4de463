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
//! For an entity rule ([`Harness::entity`], or `[rule] entity` in the
//! manifest given to [`Harness::manifest`]) it keeps a state per entity id
//! instead, and passes a transaction without the entity without running the
//! rule — as the host does.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::context::{AccountHost, LogLevel};
use crate::params::declare::ParamSpec;
use crate::params::{ParamValue, Params};
use crate::state::{History, RuleState};
use crate::types::{Channel, Entity, Merchant, Money, PastTransaction, Transaction};
use crate::{Context, Error, NativeRule, Verdict};
use std::collections::HashMap;

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
    /// Runtime lists: list → value → expiry (event time, ms since the
    /// epoch; `None`: never). See [`Harness::list`].
    pub lists: HashMap<String, HashMap<String, Option<i64>>>,
    /// The package's model, loaded (see [`Harness::model`]).
    #[cfg(feature = "model")]
    pub model: Option<crate::model::Model>,
    /// The last row the rule scored with [`crate::Context::score`], and its
    /// score: what `weir features` writes to the training table.
    #[cfg(feature = "model")]
    pub scored: Option<(Vec<f32>, Option<f32>)>,
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
    fn distinct_add(&mut self, name: &str, member: &str) {
        self.state.distinct_add(self.now_ms, name, member)
    }
    fn distinct_count(&mut self, name: &str, window_ms: u64) -> u32 {
        self.state.distinct_count(self.now_ms, name, window_ms)
    }
    fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        self.state.last_seen(name, member)
    }
    fn in_list(&mut self, list: &str, value: &str) -> bool {
        let entry = self.lists.get(list).and_then(|l| l.get(value));
        entry.is_some_and(|expires| expires.is_none_or(|at| self.now_ms < at))
    }
    fn history(&self, limit: u32) -> Vec<PastTransaction> {
        self.history.recent(limit).cloned().collect()
    }
    #[cfg(feature = "model")]
    fn model(&self) -> Option<&crate::model::Model> {
        self.model.as_ref()
    }
    #[cfg(feature = "model")]
    fn scored(&mut self, row: &[f32], score: Option<f32>) {
        self.scored = Some((row.to_vec(), score));
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()))
    }
}

/// Runs one rule against one in-memory account, as the sandbox would.
///
/// Parameters are checked against the rule's declaration and take its
/// defaults, as the host does at deploy: a parameter the rule does not
/// declare, or of the wrong type, makes every run fail with the text the
/// host's refusal gives. [`Harness::manifest`] applies a manifest's
/// `[params]`, so `cargo test` runs the rule with the parameters it ships
/// with.
///
/// A run that takes longer than the step limit (one second unless
/// [`Harness::step_limit`] says otherwise) fails instead of hanging the
/// test: the sandbox stops such a rule when its fuel runs out. Native code
/// is faster than the sandbox and the limit is wall time, so a rule close
/// to its fuel can pass here and still run out in `weir rule test`.
///
/// A rule exported with `rule!(evaluate, Config)` parses its `Config` on
/// the first run and keeps it for the harness's life, as a wasm instance
/// does; [`Harness::param`] gives the harness new parameters, parsed afresh.
pub struct Harness {
    rule: NativeRule,
    declared: Vec<ParamSpec>,
    given: Vec<(String, ParamValue)>,
    /// The resolved parameters, or why the host would refuse them.
    params: Result<Arc<Params>, String>,
    step_limit: Duration,
    /// Set once a run overran the step limit: its thread still holds the
    /// account.
    overran: bool,
    /// The state the rule runs against: the account's, or (for an entity
    /// rule) the current transaction's entity's.
    pub account: MemoryAccount,
    /// For an entity rule: its kind, and the state of every entity id but
    /// the one in `account`.
    entity: Option<Entity>,
    entities: HashMap<String, RuleState>,
}

impl Harness {
    /// Puts `values` on the runtime list `list` (never expiring), as
    /// `weir list add` would; the rule reads them with
    /// [`Context::in_list`](crate::Context::in_list).
    pub fn list<const N: usize>(mut self, list: &str, values: [&str; N]) -> Self {
        let entries = self.account.lists.entry(list.to_owned()).or_default();
        entries.extend(values.iter().map(|v| ((*v).to_owned(), None)));
        self
    }

    /// Gives the rule its package's model, as the host does from the
    /// manifest's `[model] file`: the same reader and the same scores as in
    /// the sandbox.
    ///
    /// # Panics
    /// If the file cannot be read or the model is refused (the message says
    /// why, as a deploy would).
    #[cfg(feature = "model")]
    pub fn model(mut self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read the model {}: {e}", path.display()));
        let model = crate::model::Model::load(&bytes).unwrap_or_else(|e| panic!("the model {}: {e}", path.display()));
        self.account.model = Some(model);
        self
    }

    /// Puts `value` on `list` until the event time `expires_at_ms` (a
    /// transaction at or after it does not match).
    pub fn list_entry_until(mut self, list: &str, value: &str, expires_at_ms: i64) -> Self {
        self.account.lists.entry(list.to_owned()).or_default().insert(value.to_owned(), Some(expires_at_ms));
        self
    }

    /// # Panics
    /// If the rule's declaration is malformed (a default outside its own
    /// range, two parameters with one name).
    pub fn new(rule: NativeRule) -> Self {
        let declared = rule.declared().unwrap_or_else(|e| panic!("{e}"));
        let mut h = Harness {
            rule,
            declared,
            given: Vec::new(),
            params: Ok(Arc::default()),
            step_limit: Duration::from_secs(1),
            overran: false,
            account: MemoryAccount::default(),
            entity: None,
            entities: HashMap::new(),
        };
        h.resolve();
        h
    }

    /// Sets a parameter, as the manifest's `[params]` table would.
    pub fn param(mut self, name: &str, value: impl Into<ParamValue>) -> Self {
        self.given.retain(|(k, _)| k != name);
        self.given.push((name.to_owned(), value.into()));
        self.resolve();
        self
    }

    /// Applies the `[params]` of a manifest's text, e.g.
    /// `Harness::new(RULE).manifest(include_str!("../rule.toml"))`.
    ///
    /// # Panics
    /// If the text is not TOML, or a parameter has a type no manifest
    /// can give (a date).
    pub fn manifest(mut self, manifest: &str) -> Self {
        let table: toml::Table = manifest.parse().unwrap_or_else(|e| panic!("the manifest is not valid TOML: {e}"));
        if let Some(entity) = table.get("rule").and_then(|r| r.get("entity")) {
            let name = entity.as_str().unwrap_or_else(|| panic!("the manifest's `rule.entity` is not text"));
            let entity = Entity::parse(name)
                .unwrap_or_else(|| panic!("the manifest's `rule.entity` {name:?} is no entity kind"));
            self = self.entity(entity);
        }
        if let Some(params) = table.get("params") {
            let toml::Value::Table(params) = params else { panic!("the manifest's `params` is not a table") };
            for (name, value) in crate::params::flatten(params).unwrap_or_else(|p| panic!("{p}")) {
                self.given.retain(|(k, _)| *k != name);
                self.given.push((name, value));
            }
        }
        self.resolve();
        self
    }

    /// Runs the rule as an entity rule of `kind`: against the state of the
    /// transaction's entity of that kind, with no history; a transaction
    /// without that entity passes without running the rule.
    pub fn entity(mut self, kind: Entity) -> Self {
        self.entity = Some(kind);
        self
    }

    /// The state the rule keeps for the entity `id` (an entity rule's).
    pub fn entity_state(&self, id: &str) -> Option<&RuleState> {
        self.entities.get(id)
    }

    /// Fails a run that takes longer than `limit` (default one second).
    pub fn step_limit(mut self, limit: Duration) -> Self {
        self.step_limit = limit;
        self
    }

    fn resolve(&mut self) {
        self.params = match crate::declare::resolve(&self.declared, &self.given) {
            Ok(resolution) => Ok(Arc::new(Params::new(resolution.flattened()))),
            Err(problems) => Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
        };
    }

    /// Evaluates `tx`, then records it in the account's history (an entity
    /// rule's entity keeps none).
    pub fn run(&mut self, tx: &Transaction) -> Result<Verdict, Error> {
        let Some(kind) = self.entity else { return self.run_on_account(tx) };
        let Some(id) = kind.of(tx) else { return Ok(Verdict::pass()) };
        self.account.state = self.entities.remove(id).unwrap_or_default();
        self.account.history = History::default();
        let verdict = self.run_on_account(tx);
        self.account.history = History::default();
        self.entities.insert(id.to_owned(), std::mem::take(&mut self.account.state));
        verdict
    }

    fn run_on_account(&mut self, tx: &Transaction) -> Result<Verdict, Error> {
        let params = self.params.clone().map_err(Error::msg)?;
        if self.overran {
            return Err(Error::msg("an earlier run overran the step limit; this harness has no account left"));
        }
        self.account.now_ms = tx.occurred_at_ms;
        let before = self.account.state.clone();
        let verdict = self.evaluate(tx, params)?;
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

    /// Runs the rule on its own thread, so a rule that never returns fails
    /// the run after the step limit. A panic in the rule is the test's
    /// panic, as if the rule ran on the test's thread.
    fn evaluate(&mut self, tx: &Transaction, params: Arc<Params>) -> Result<Result<Verdict, Error>, Error> {
        let (rule, tx, mut account) = (self.rule, tx.clone(), std::mem::take(&mut self.account));
        let (done, outcome) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let verdict = {
                let mut ctx = Context::native(&mut account, &params, tx.occurred_at_ms);
                (rule.evaluate)(&tx, &mut ctx)
            };
            let _ = done.send((account, verdict));
        });
        match outcome.recv_timeout(self.step_limit) {
            Ok((account, verdict)) => {
                self.account = account;
                Ok(verdict)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.overran = true;
                Err(Error::msg(format!(
                    "ran past the harness's step limit of {} ms; in the sandbox it would run out of fuel",
                    self.step_limit.as_millis()
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the rule's thread sends before it ends"),
            },
        }
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
    /// A version 3 transfer to this account.
    pub fn counterparty_account(self, account: &str) -> Self {
        self.attribute(crate::types::COUNTERPARTY_ACCOUNT_ATTRIBUTE, account)
    }
    /// A version 3 event paid with the card of this fingerprint.
    pub fn card_fingerprint(self, fingerprint: &str) -> Self {
        self.attribute(crate::types::CARD_FINGERPRINT_ATTRIBUTE, fingerprint)
    }
    /// The customer has confirmed an earlier purchase at this merchant.
    pub fn merchant_confirmed_by_customer(self) -> Self {
        self.attribute(crate::types::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, "true")
    }
    pub fn build(self) -> Transaction {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Harness, tx};
    use crate::prelude::*;

    const PARAMS: &[Param] =
        &[Param::integer("limit", 100).min(0), Param::choice("behaviour", &["pass", "loop", "panic"], "pass")];

    fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
        match ctx.param::<String>("behaviour")?.as_str() {
            "loop" => loop {
                std::hint::black_box(());
            },
            "panic" => panic!("the rule panicked on purpose"),
            _ => {}
        }
        let limit: i64 = ctx.param("limit")?;
        Ok(if tx.amount.minor_units > limit { Verdict::suspect("OVER", "over the limit") } else { Verdict::pass() })
    }

    crate::rule!(evaluate, params = PARAMS);

    #[test]
    fn a_manifest_sets_the_parameters_and_the_rest_take_their_defaults() {
        let mut h = Harness::new(RULE);
        assert_eq!(h.run(&tx().amount(101, "EUR").build()).unwrap().reason_code, "OVER");
        let manifest = "[rule]\nid = \"t\"\n\n[params]\nlimit = 50000\n";
        let mut h = Harness::new(RULE).manifest(manifest);
        assert!(h.run(&tx().amount(101, "EUR").build()).unwrap().is_pass());
    }

    #[test]
    fn a_manifest_the_declaration_refuses_fails_every_run_naming_the_parameter() {
        let mut h = Harness::new(RULE).manifest("[params]\nlimt = 5\n");
        let err = h.run(&tx().build()).unwrap_err();
        assert_eq!(err.message(), "parameter `limt`: not a parameter of this rule; did you mean `limit`?");
        let mut h = Harness::new(RULE).manifest("[params]\nlimit = \"5\"\n");
        let err = h.run(&tx().build()).unwrap_err();
        assert_eq!(err.message(), "parameter `limit`: expected an integer of at least 0, found a string (\"5\")");
    }

    #[test]
    fn a_rule_that_never_returns_fails_at_the_step_limit() {
        let mut h = Harness::new(RULE).param("behaviour", "loop").step_limit(Duration::from_millis(100));
        let started = Instant::now();
        let err = h.run(&tx().build()).unwrap_err();
        assert!(err.message().contains("step limit of 100 ms"), "{}", err.message());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(h.run(&tx().build()).is_err(), "the overrun run still holds the account");
    }

    #[test]
    #[should_panic(expected = "the rule panicked on purpose")]
    fn a_panic_in_the_rule_is_the_tests_panic() {
        let _ = Harness::new(RULE).param("behaviour", "panic").run(&tx().build());
    }
}
