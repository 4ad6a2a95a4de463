//! The weir rule SDK: write a fraud rule as one Rust function.
//!
//! ```
//! use weir_sdk::prelude::*;
//!
//! /// Suspects any transaction above a per-rule threshold.
//! pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
//!     let threshold: i64 = ctx.param("threshold")?;
//!     if tx.amount.minor_units > threshold {
//!         return Ok(Verdict::suspect("LARGE_AMOUNT", "amount above the threshold")
//!             .with("amount", tx.amount.minor_units)
//!             .with("threshold", threshold));
//!     }
//!     Ok(Verdict::pass())
//! }
//!
//! /// What the rule reads from its manifest's `[params]`.
//! const PARAMS: &[Param] = &[
//!     Param::integer("threshold", 100_000).min(0).doc("Suspect above this amount, in minor units."),
//! ];
//!
//! weir_sdk::rule!(evaluate, params = PARAMS);
//! ```
//!
//! Built for `wasm32-wasip2`, [`rule!`] exports the function through the weir
//! rule contract (`wit/rule.wit`), and [`Context`] talks to the host: the
//! account's state, the rule's parameters from its manifest, and the log.
//! Built natively, [`rule!`] defines `pub const RULE: NativeRule` instead and
//! [`Context`] runs against an in-memory account, so `cargo test` on a rule
//! crate needs no wasm at all — see [`testing`].
//!
//! # Declared parameters
//!
//! A rule declares every parameter it reads ([`Param`]: name, type,
//! default, range or allowed values, doc). [`rule!`] carries the
//! declaration in the component, and the host checks the manifest's
//! `[params]` against it at `weir rule build`, `weir rule test`, deploy and
//! `weir rules`: a misspelled name, a wrong type, a value out of range is a
//! refusal that names the parameter. What the manifest leaves out takes its
//! declared default, so the code reads values and repeats no default.
//!
//! # Parameters, read once
//!
//! A rule with several parameters can read them into one struct, parsed
//! once per rule instance rather than on every transaction: implement
//! [`FromParams`] (its `PARAMS` is the declaration) and export with
//! `rule!(evaluate, Config)`; `evaluate` then takes the parsed `&Config`.
//!
//! ```
//! use std::time::Duration;
//! use weir_sdk::prelude::*;
//!
//! /// Suspects spending over a per-currency limit within a window.
//! pub struct Config {
//!     /// `window_secs = 3600`: at most the host's series retention.
//!     window: Duration,
//!     /// `[params.limits] EUR = 500000`: non-negative, in minor units.
//!     limits: Table<u64>,
//!     /// `exempt_merchants = ["m-1"]`, empty when absent.
//!     exempt: Vec<String>,
//!     /// `action = "suspect"` or `"lock"`.
//!     lock: bool,
//!     /// `min_count = 1`, at least 1.
//!     min_count: u32,
//! }
//!
//! impl FromParams for Config {
//!     const PARAMS: &'static [Param] = &[
//!         Param::window_secs("window_secs", 3600)
//!             .doc("The window, in seconds of event time."),
//!         Param::integer_table("limits").min(0).doc("Spending limits per currency, in minor units."),
//!         Param::text_list("exempt_merchants", &[]).doc("Merchants never checked."),
//!         Param::choice("action", &["suspect", "lock"], "suspect").doc("What going over the limit does."),
//!         Param::integer("min_count", 1).min(1).doc("Transactions in the window before the limit applies."),
//!     ];
//!
//!     fn from_params(p: &Params) -> Result<Self, Error> {
//!         Ok(Config {
//!             window: Duration::from_secs(p.param("window_secs")?),
//!             limits: p.typed_table("limits")?,
//!             exempt: p.param("exempt_merchants")?,
//!             lock: p.param::<String>("action")? == "lock",
//!             min_count: p.param("min_count")?,
//!         })
//!     }
//! }
//!
//! pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
//!     let Some(&limit) = config.limits.get(&tx.amount.currency) else { return Ok(Verdict::pass()) };
//!     if config.exempt.contains(&tx.merchant.id) {
//!         return Ok(Verdict::pass());
//!     }
//!     let series = format!("spend:{}", tx.amount.currency);
//!     ctx.window_add(&series, tx.amount.minor_units.max(0));
//!     let spent = ctx.window_sum(&series, config.window);
//!     let count = ctx.window_count(&series, config.window);
//!     if count < config.min_count || u64::try_from(spent).is_ok_and(|s| s <= limit) {
//!         return Ok(Verdict::pass());
//!     }
//!     let message = "spent more than the limit in the window";
//!     let verdict = if config.lock { Verdict::lock("SPEND", message) } else { Verdict::suspect("SPEND", message) };
//!     Ok(verdict.with("spent", spent).with("limit", limit))
//! }
//!
//! weir_sdk::rule!(evaluate, Config);
//!
//! # use weir_sdk::testing::{tx, Harness};
//! let mut h = Harness::new(RULE).param("limits.EUR", 30_000);
//! assert!(h.run(&tx().amount(20_000, "EUR").build()).unwrap().is_pass());
//! assert_eq!(h.run(&tx().amount(20_000, "EUR").after_secs(60).build()).unwrap().reason_code, "SPEND");
//! let err = Harness::new(RULE).param("action", "block").run(&tx().build()).unwrap_err();
//! assert_eq!(err.message(), r#"parameter `action`: expected one of "suspect", "lock", found a string ("block")"#);
//! let err = Harness::new(RULE).param("min_cuont", 2).run(&tx().build()).unwrap_err();
//! assert_eq!(err.message(), "parameter `min_cuont`: not a parameter of this rule; did you mean `min_count`?");
//! ```
//!
//! Layout: `types` holds the transaction and verdict types, `context` the
//! host-facing [`Context`], `params` typed parameters (their checked
//! readers and the [`FromParams`] struct a rule parses once), `state` the
//! account state model (windows, key/values, history, the journal that
//! undoes a failed evaluation) that the native harness and the weir host
//! share, `limits` what the host enforces on a verdict and on state, `wire`
//! the encoding in which transactions and histories cross the contract,
//! `testing` the native harness and event builders.

mod context;
pub mod limits;
#[cfg(feature = "model")]
pub mod model;
mod params;
pub mod state;
mod types;
pub mod wire;

#[cfg(not(target_family = "wasm"))]
pub mod testing;

#[cfg(not(target_family = "wasm"))]
pub use context::AccountHost;
pub use context::{Context, LogLevel};
pub use params::declare::{self, Param};
#[doc(hidden)]
pub use params::evaluate_configured as __evaluate_configured;
#[cfg(not(target_family = "wasm"))]
pub use params::flatten as params_from_toml;
pub use params::{FromParam, FromParams, ParamError, ParamValue, Params, Table};
pub use types::{
    CARD_FINGERPRINT_ATTRIBUTE, COUNTERPARTY_ACCOUNT_ATTRIBUTE, CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, Channel,
    DEVICE_FINGERPRINT_ATTRIBUTE, Entity, Error, Evidence, Merchant, Money, Outcome, PastTransaction,
    RESERVED_ATTRIBUTE_PREFIX, Transaction, Verdict,
};

/// The contract version this SDK builds rules for (the WIT package version).
pub const CONTRACT_VERSION: &str = "2.4.0";

/// The signature of a rule: one function from a transaction and its account
/// context to a verdict.
pub type RuleFn = fn(&Transaction, &mut Context<'_>) -> Result<Verdict, Error>;

/// A rule compiled natively, for unit tests and benchmarks.
#[derive(Clone, Copy)]
pub struct NativeRule {
    pub evaluate: RuleFn,
    /// Its declared parameters, encoded as in the component's custom
    /// section (see [`declare`]).
    pub params: &'static [u8],
}

impl NativeRule {
    /// A rule that declares no parameters.
    pub const fn new(evaluate: RuleFn) -> Self {
        const NONE: [u8; declare::encoded_len(&[])] = declare::encode(&[]);
        Self { evaluate, params: &NONE }
    }

    /// The same rule declaring the parameters encoded in `params`.
    pub const fn with_params(self, params: &'static [u8]) -> Self {
        Self { params, ..self }
    }

    /// Its declared parameters.
    pub fn declared(&self) -> Result<Vec<declare::ParamSpec>, declare::DeclarationError> {
        declare::decode(self.params)
    }
}

/// Everything a rule author needs, in one import.
pub mod prelude {
    pub use crate::{
        Channel, Context, Entity, Error, Evidence, FromParams, Money, Outcome, Param, Params, PastTransaction, Table,
        Transaction, Verdict,
    };
}

/// Generated bindings for the rule contract (wasm only; used by [`rule!`]).
#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "rule",
        pub_export_macro: true,
        export_macro_name: "__export_rule_world",
        default_bindings_module: "weir_sdk::bindings",
    });
}

#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod __private {
    use crate::bindings::weir::rule::{types as wit, verdict};
    use std::cell::RefCell;

    thread_local! {
        /// The transaction being decided, decoded in place call after call:
        /// once its strings have grown, a call allocates nothing for it.
        static TX: RefCell<crate::Transaction> = RefCell::new(crate::wire::empty_transaction());
    }

    /// Runs `f` on a transaction handed over by the host (wire-encoded),
    /// hands the explanation of a verdict to the host, and returns its outcome.
    pub fn run(bytes: Vec<u8>, f: crate::RuleFn) -> Result<wit::Outcome, ()> {
        // The package's model is read before anything else, so the host
        // can have it checked at deploy by evaluating an empty input.
        #[cfg(feature = "model")]
        if let Err(e) = crate::context::wasm_model()
            && e != crate::model::ModelError::Missing
        {
            verdict::fail(&e.to_string());
            return Err(());
        }
        TX.with_borrow_mut(|tx| {
            if let Err(e) = crate::wire::decode_transaction_into(&bytes, tx) {
                verdict::fail(&e.to_string());
                return Err(());
            }
            drop(bytes);
            let mut ctx = crate::Context::wasm(tx.occurred_at_ms);
            match f(tx, &mut ctx) {
                Ok(v) => {
                    if !(v.reason_code.is_empty() && v.message.is_empty() && v.evidence.is_empty()) {
                        let evidence: Vec<wit::Evidence> =
                            v.evidence.into_iter().map(|e| wit::Evidence { name: e.name, value: e.value }).collect();
                        verdict::explain(&v.reason_code, &v.message, &evidence);
                    }
                    Ok(match v.outcome {
                        crate::Outcome::Pass => wit::Outcome::Pass,
                        crate::Outcome::Score(p) => wit::Outcome::Score(p),
                        crate::Outcome::Suspect => wit::Outcome::Suspect,
                        crate::Outcome::Lock => wit::Outcome::Lock,
                    })
                }
                Err(e) => {
                    verdict::fail(e.message());
                    Err(())
                }
            }
        })
    }
}

/// Exports `evaluate` as the rule, with its declared parameters.
///
/// On `wasm32-wasip2` this implements the contract's `evaluator` interface
/// and writes the declaration into the component's custom section
/// `weir:params` ([`declare`]); natively it defines
/// `pub const RULE: weir_sdk::NativeRule` for tests and benchmarks.
///
/// Three forms:
/// - `rule!(evaluate)`: a rule without parameters; a manifest that gives it
///   any is refused.
/// - `rule!(evaluate, params = PARAMS)`: `PARAMS: &[Param]` declares the
///   parameters `evaluate(tx, ctx)` reads through [`Context::param`].
/// - `rule!(evaluate, Config)`: `Config` implements [`FromParams`], whose
///   `PARAMS` declares them; `Config` is parsed once per rule instance and
///   `evaluate(tx, ctx, &config)` gets it, and a parse error is the rule's
///   error on every evaluation (see the crate docs for an example).
#[macro_export]
macro_rules! rule {
    // The wasm export of a function with the `RuleFn` signature.
    (@wasm $evaluate:path, $params:expr) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            use $crate::bindings::weir::rule::types as wit;
            struct WeirRule;
            impl $crate::bindings::exports::weir::rule::evaluator::Guest for WeirRule {
                fn evaluate(tx: ::std::vec::Vec<u8>) -> ::core::result::Result<wit::Outcome, ()> {
                    $crate::__private::run(tx, $evaluate)
                }
            }
            $crate::bindings::__export_rule_world!(WeirRule);

            const DECLARATION: &[$crate::Param] = $params;
            const LEN: usize = $crate::declare::encoded_len(DECLARATION);
            /// The declaration, read by the host without running the rule.
            #[used]
            #[unsafe(link_section = "weir:params")]
            static DECLARED: [u8; LEN] = $crate::declare::encode::<LEN>(DECLARATION);
        };
    };
    // The native rule for a function with the `RuleFn` signature.
    (@native $evaluate:path, $params:expr) => {
        /// This rule, compiled natively: run it with `weir_sdk::testing`.
        #[cfg(not(target_family = "wasm"))]
        pub const RULE: $crate::NativeRule = {
            const DECLARATION: &[$crate::Param] = $params;
            const LEN: usize = $crate::declare::encoded_len(DECLARATION);
            const DECLARED: [u8; LEN] = $crate::declare::encode::<LEN>(DECLARATION);
            $crate::NativeRule::new($evaluate).with_params(&DECLARED)
        };
    };
    ($evaluate:path) => {
        $crate::rule!($evaluate, params = &[]);
    };
    ($evaluate:path, params = $params:expr) => {
        $crate::rule!(@wasm $evaluate, $params);
        $crate::rule!(@native $evaluate, $params);
    };
    ($evaluate:path, $config:ty) => {
        #[doc(hidden)]
        fn __weir_configured(
            tx: &$crate::Transaction,
            ctx: &mut $crate::Context<'_>,
        ) -> ::core::result::Result<$crate::Verdict, $crate::Error> {
            $crate::__evaluate_configured::<$config, _>(tx, ctx, $evaluate)
        }
        $crate::rule!(@wasm __weir_configured, <$config as $crate::FromParams>::PARAMS);
        $crate::rule!(@native __weir_configured, <$config as $crate::FromParams>::PARAMS);
    };
}
