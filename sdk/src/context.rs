//! [`Context`]: what a rule can ask of the host while it decides.
//!
//! The account's state (small key/values, event-time windows, recent
//! history), the rule's parameters and the log. In wasm every call goes
//! through the contract's imports; natively the context wraps an
//! [`AccountHost`] — an in-memory one in [`crate::testing`], or the weir
//! host's own state in its benchmarks.

use std::time::Duration;

use crate::params::{FromParam, ParamError, Params};
use crate::types::PastTransaction;
use crate::wire::HistoryView;

/// A log line's importance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
}

/// The account state and log a native rule runs against.
///
/// Window operations are measured against the current transaction's event
/// time, which the implementation knows.
#[cfg(not(target_family = "wasm"))]
pub trait AccountHost {
    fn get(&self, key: &str) -> Option<String>;
    fn set(&mut self, key: &str, value: &str);
    fn remove(&mut self, key: &str);
    fn window_add(&mut self, name: &str, value: i64);
    fn window_sum(&mut self, name: &str, window_ms: u64) -> i64;
    fn window_count(&mut self, name: &str, window_ms: u64) -> u32;
    fn distinct_add(&mut self, name: &str, member: &str);
    fn distinct_count(&mut self, name: &str, window_ms: u64) -> u32;
    fn last_seen(&self, name: &str, member: &str) -> Option<i64>;
    /// Whether `value` is on the runtime list `list` at the transaction's
    /// event time. A host without runtime lists has none: false.
    fn in_list(&mut self, list: &str, value: &str) -> bool {
        let _ = (list, value);
        false
    }
    fn history(&self, limit: u32) -> Vec<PastTransaction>;
    /// The rule package's model, loaded. A host without one has none.
    #[cfg(feature = "model")]
    fn model(&self) -> Option<&crate::model::Model> {
        None
    }
    /// Keeps the row a rule scored with [`Context::score`] and its score,
    /// as a recording host does (`weir features`). A host that does not
    /// record ignores it.
    #[cfg(feature = "model")]
    fn scored(&mut self, row: &[f32], score: Option<f32>) {
        let _ = (row, score);
    }
    /// The same, in the wire encoding (`crate::wire`), appended to `out`.
    fn history_encoded(&self, limit: u32, out: &mut Vec<u8>) {
        let history = self.history(limit);
        crate::wire::encode_history(out, history.iter());
    }
    fn log(&mut self, level: LogLevel, message: &str);
}

/// The rule's view of the host for one transaction.
pub struct Context<'a> {
    #[cfg(not(target_family = "wasm"))]
    host: &'a mut dyn AccountHost,
    #[cfg(not(target_family = "wasm"))]
    params: &'a Params,
    #[cfg(target_family = "wasm")]
    _host: std::marker::PhantomData<&'a mut ()>,
    now_ms: i64,
}

#[cfg(not(target_family = "wasm"))]
impl<'a> Context<'a> {
    /// A context over a native account host, at event time `now_ms`.
    pub fn native(host: &'a mut dyn AccountHost, params: &'a Params, now_ms: i64) -> Self {
        Context { host, params, now_ms }
    }
}

#[cfg(target_family = "wasm")]
impl Context<'_> {
    pub(crate) fn wasm(now_ms: i64) -> Self {
        Context { _host: std::marker::PhantomData, now_ms }
    }
}

#[cfg(target_family = "wasm")]
mod imports {
    use crate::bindings::weir::rule::{account, distinct, lists, log, params, types as wit};
    use crate::params::{ParamValue, Params};
    use std::sync::OnceLock;

    pub use account::{get, history, remove, set, window_add, window_count, window_sum};
    pub use distinct::{add as distinct_add, count as distinct_count, last_seen};
    pub use lists::contains as in_list;

    pub fn log(level: crate::context::LogLevel, message: &str) {
        let level = match level {
            crate::context::LogLevel::Debug => wit::LogLevel::Debug,
            crate::context::LogLevel::Info => wit::LogLevel::Info,
            crate::context::LogLevel::Warn => wit::LogLevel::Warn,
        };
        log::log(level, message);
    }

    /// Parameters are constant for an instance, so they are fetched once.
    pub fn params() -> &'static Params {
        static PARAMS: OnceLock<Params> = OnceLock::new();
        PARAMS.get_or_init(|| {
            Params::new(
                params::all()
                    .into_iter()
                    .map(|(name, value)| {
                        let value = match value {
                            wit::ParamValue::Integer(i) => ParamValue::Integer(i),
                            wit::ParamValue::Float(f) => ParamValue::Float(f),
                            wit::ParamValue::Boolean(b) => ParamValue::Boolean(b),
                            wit::ParamValue::Text(s) => ParamValue::Text(s),
                            wit::ParamValue::TextList(l) => ParamValue::TextList(l),
                        };
                        (name, value)
                    })
                    .collect(),
            )
        })
    }
}

/// The package's model, loaded once per instance from the host's
/// `model.bytes` (whose first call grants the load its own fuel).
#[cfg(all(target_family = "wasm", feature = "model"))]
thread_local! {
    /// Whether the host keeps the rows this instance scores (`model.recording`).
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(all(target_family = "wasm", feature = "model"))]
pub(crate) fn wasm_model() -> Result<&'static crate::model::Model, crate::model::ModelError> {
    use crate::model::{Model, ModelError};
    thread_local! {
        static MODEL: std::cell::OnceCell<Result<&'static Model, ModelError>> = const { std::cell::OnceCell::new() };
    }
    MODEL.with(|cell| {
        cell.get_or_init(|| {
            let bytes = crate::bindings::weir::rule::model::bytes();
            // Asked once: the host records for the life of the instance or never.
            RECORDING.set(crate::bindings::weir::rule::model::recording());
            if bytes.is_empty() {
                return Err(ModelError::Missing);
            }
            // Kept for the life of the instance, as the parameters are.
            Model::load(&bytes).map(|m| &*Box::leak(Box::new(m)))
        })
        .clone()
    })
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> Context<'a> {
    /// The current transaction's event time, in ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The model in the rule's package (`[model] file` in its manifest),
    /// loaded and checked once per rule instance: score rows with
    /// [`crate::model::Model::score`]. An error says why there is none (no
    /// model in the package, or one that cannot be loaded); `?` makes it
    /// the rule's error.
    #[cfg(feature = "model")]
    pub fn model(&self) -> Result<&crate::model::Model, crate::model::ModelError> {
        #[cfg(target_family = "wasm")]
        return wasm_model();
        #[cfg(not(target_family = "wasm"))]
        return self.host.model().ok_or(crate::model::ModelError::Missing);
    }

    /// Scores `row` with the package's model ([`crate::model::Model::score`]):
    /// the way a model rule should score, because a host that records
    /// (`weir features` writing a training table, `weir backtest` measuring
    /// scores) is handed the row and the score, so a model is trained on
    /// exactly the features the rule serves.
    ///
    /// Without a model in the package the error is
    /// [`crate::model::ModelError::Missing`], except for a recording host
    /// (a training table written before there is a model): it gets the row,
    /// and the score is 0, so the rule goes on as with a model that finds
    /// nothing, and the state it keeps for the next transactions is kept.
    #[cfg(feature = "model")]
    pub fn score(&mut self, row: &[f32]) -> Result<f32, crate::model::ModelError> {
        let scored = self.model().and_then(|model| model.score(row));
        #[cfg(target_family = "wasm")]
        if RECORDING.get() {
            crate::bindings::weir::rule::model::scored(row, scored.as_ref().ok().copied());
            if scored == Err(crate::model::ModelError::Missing) {
                return Ok(0.0);
            }
        }
        #[cfg(not(target_family = "wasm"))]
        self.host.scored(row, scored.as_ref().ok().copied());
        scored
    }

    /// All of this rule version's parameters, with their checked readers
    /// ([`Params::list`], [`Params::in_range`], [`Params::typed_table`], ...).
    /// They outlive the context: a rule can keep reading them while it
    /// calls the host.
    pub fn params(&self) -> &'a Params {
        #[cfg(target_family = "wasm")]
        return imports::params();
        #[cfg(not(target_family = "wasm"))]
        return self.params;
    }

    /// The parameter `name`, which must be present and of type `T`.
    pub fn param<T: FromParam>(&self, name: &str) -> Result<T, ParamError> {
        self.params().param(name)
    }

    /// The parameter `name` if present (it must then be of type `T`).
    pub fn param_opt<T: FromParam>(&self, name: &str) -> Result<Option<T>, ParamError> {
        self.params().param_opt(name)
    }

    /// The parameter `name` if present (it must then be of type `T`), else `default`.
    pub fn param_or<T: FromParam>(&self, name: &str, default: T) -> Result<T, ParamError> {
        self.params().param_or(name, default)
    }

    /// A value this rule stored for the account.
    pub fn get(&self, key: &str) -> Option<String> {
        #[cfg(target_family = "wasm")]
        return imports::get(key);
        #[cfg(not(target_family = "wasm"))]
        return self.host.get(key);
    }

    /// Stores a value for the account; committed with the decision.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string();
        #[cfg(target_family = "wasm")]
        imports::set(key, &value);
        #[cfg(not(target_family = "wasm"))]
        self.host.set(key, &value);
    }

    pub fn remove(&mut self, key: &str) {
        #[cfg(target_family = "wasm")]
        imports::remove(key);
        #[cfg(not(target_family = "wasm"))]
        self.host.remove(key);
    }

    /// Adds `value` to the series `name` at this transaction's event time.
    pub fn window_add(&mut self, name: &str, value: i64) {
        #[cfg(target_family = "wasm")]
        imports::window_add(name, value);
        #[cfg(not(target_family = "wasm"))]
        self.host.window_add(name, value);
    }

    /// Sum of the series `name` over the last `window` of event time.
    ///
    /// The series keeps points for the longest window it is queried with.
    pub fn window_sum(&mut self, name: &str, window: Duration) -> i64 {
        #[cfg(target_family = "wasm")]
        return imports::window_sum(name, window_ms(window));
        #[cfg(not(target_family = "wasm"))]
        return self.host.window_sum(name, window_ms(window));
    }

    /// Number of additions to the series `name` over the last `window`.
    pub fn window_count(&mut self, name: &str, window: Duration) -> u32 {
        #[cfg(target_family = "wasm")]
        return imports::window_count(name, window_ms(window));
        #[cfg(not(target_family = "wasm"))]
        return self.host.window_count(name, window_ms(window));
    }

    /// Records `member` in the distinct set `name` at this transaction's
    /// event time: e.g. the account, in a device rule's set of accounts.
    pub fn distinct_add(&mut self, name: &str, member: &str) {
        #[cfg(target_family = "wasm")]
        imports::distinct_add(name, member);
        #[cfg(not(target_family = "wasm"))]
        self.host.distinct_add(name, member);
    }

    /// How many members of the set `name` were last added within the last
    /// `window` of event time, this transaction's included.
    ///
    /// Like a series, the set keeps members for the longest window it is
    /// counted over (and at most 4096 members, the least recently seen
    /// going first).
    pub fn distinct_count(&mut self, name: &str, window: Duration) -> u32 {
        #[cfg(target_family = "wasm")]
        return imports::distinct_count(name, window_ms(window));
        #[cfg(not(target_family = "wasm"))]
        return self.host.distinct_count(name, window_ms(window));
    }

    /// When `member` was last added to the set `name`, in ms since the Unix
    /// epoch, if it is in the set. Asked before [`Context::distinct_add`],
    /// it tells whether the member is new (e.g. a first-time sender).
    pub fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        #[cfg(target_family = "wasm")]
        return imports::last_seen(name, member);
        #[cfg(not(target_family = "wasm"))]
        return self.host.last_seen(name, member);
    }

    /// Whether `value` is on the runtime list `list` — a block or allow
    /// list analysts change without a deploy (`weir list add`) — and its
    /// entry has not expired at this transaction's event time. Exact match;
    /// a list without entries holds nothing. Take the list's name from a
    /// parameter, so the bank names its lists.
    ///
    /// The decision records the version of each list the rule read, so a
    /// replay with the same list versions decides the same. One evaluation
    /// may read at most 8 different lists; asking about a ninth fails it.
    ///
    /// ```
    /// use weir_sdk::prelude::*;
    /// use weir_sdk::testing::{tx, Harness};
    ///
    /// fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    ///     let device = tx.device_fingerprint().unwrap_or_default();
    ///     Ok(if ctx.in_list("blocked-devices", device) {
    ///         Verdict::suspect("BLOCKED_DEVICE", "the device is on a block list").with("device", device)
    ///     } else {
    ///         Verdict::pass()
    ///     })
    /// }
    ///
    /// let mut h = Harness::new(weir_sdk::NativeRule::new(evaluate)).list("blocked-devices", ["fp-stolen"]);
    /// assert_eq!(h.run(&tx().device_fingerprint("fp-stolen").build()).unwrap().reason_code, "BLOCKED_DEVICE");
    /// assert!(h.run(&tx().device_fingerprint("fp-mine").build()).unwrap().is_pass());
    /// ```
    pub fn in_list(&mut self, list: &str, value: &str) -> bool {
        #[cfg(target_family = "wasm")]
        return imports::in_list(list, value);
        #[cfg(not(target_family = "wasm"))]
        return self.host.in_list(list, value);
    }

    /// Up to `limit` earlier transactions of this account, newest first.
    ///
    /// Each entry is copied into owned strings; [`Context::recent`] reads
    /// the same entries without allocating.
    pub fn history(&self, limit: u32) -> Vec<PastTransaction> {
        self.recent(limit).iter().map(|p| p.to_owned()).collect()
    }

    /// Up to `limit` earlier transactions of this account, newest first,
    /// read in place: iterating allocates nothing, so a rule pays for the
    /// entries it looks at and not for copies of them.
    ///
    /// ```
    /// use weir_sdk::prelude::*;
    /// use weir_sdk::testing::{tx, Harness};
    ///
    /// /// Scores a purchase when most of the last eight were made abroad.
    /// fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    ///     let recent = ctx.recent(8);
    ///     let abroad = recent.iter().filter(|p| p.country.is_some_and(|c| c != "NL")).count();
    ///     Ok(if abroad * 2 > recent.len() { Verdict::score(10, "ABROAD", "mostly abroad") } else { Verdict::pass() })
    /// }
    ///
    /// let mut h = Harness::new(weir_sdk::NativeRule::new(evaluate));
    /// assert!(h.run(&tx().country("DE").build()).unwrap().is_pass(), "no history yet");
    /// assert_eq!(h.run(&tx().after_secs(60).build()).unwrap().reason_code, "ABROAD");
    /// ```
    pub fn recent(&self, limit: u32) -> HistoryView {
        #[cfg(target_family = "wasm")]
        let bytes = imports::history(limit);
        #[cfg(not(target_family = "wasm"))]
        let bytes = {
            let mut out = Vec::new();
            self.host.history_encoded(limit, &mut out);
            out
        };
        // The host wrote it; an unreadable history reads as empty.
        HistoryView::new(bytes).unwrap_or_default()
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        #[cfg(target_family = "wasm")]
        imports::log(level, message);
        #[cfg(not(target_family = "wasm"))]
        self.host.log(level, message);
    }

    pub fn debug(&mut self, message: &str) {
        self.log(LogLevel::Debug, message)
    }

    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message)
    }

    pub fn warn(&mut self, message: &str) {
        self.log(LogLevel::Warn, message)
    }
}
