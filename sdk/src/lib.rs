//! The weir rule SDK: write a fraud rule as one Rust function.
//!
//! ```
//! use weir_sdk::prelude::*;
//!
//! /// Suspects any transaction above a per-rule threshold.
//! pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
//!     let threshold: i64 = ctx.param_or("threshold", 100_000)?;
//!     if tx.amount.minor_units > threshold {
//!         return Ok(Verdict::suspect("LARGE_AMOUNT", "amount above the threshold")
//!             .with("amount", tx.amount.minor_units)
//!             .with("threshold", threshold));
//!     }
//!     Ok(Verdict::pass())
//! }
//!
//! weir_sdk::rule!(evaluate);
//! ```
//!
//! Built for `wasm32-wasip2`, [`rule!`] exports the function through the weir
//! rule contract (`wit/rule.wit`), and [`Context`] talks to the host: the
//! account's state, the rule's parameters from its manifest, and the log.
//! Built natively, [`rule!`] defines `pub const RULE: NativeRule` instead and
//! [`Context`] runs against an in-memory account, so `cargo test` on a rule
//! crate needs no wasm at all — see [`testing`].
//!
//! Layout: `types` holds the transaction and verdict types, `context` the
//! host-facing [`Context`], `params` typed parameters, `state` the account
//! state model (windows, key/values, history) that the native harness and
//! the weir host share, `testing` the native harness and event builders.

mod context;
mod params;
pub mod state;
mod types;

#[cfg(not(target_family = "wasm"))]
pub mod testing;

#[cfg(not(target_family = "wasm"))]
pub use context::AccountHost;
pub use context::{Context, LogLevel};
pub use params::{FromParam, ParamError, ParamValue, Params};
pub use types::{
    CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, Channel, DEVICE_FINGERPRINT_ATTRIBUTE, Error, Evidence, Merchant, Money,
    Outcome, PastTransaction, RESERVED_ATTRIBUTE_PREFIX, Transaction, Verdict,
};

/// The contract version this SDK builds rules for (the WIT package version).
pub const CONTRACT_VERSION: &str = "1.0.0";

/// The signature of a rule: one function from a transaction and its account
/// context to a verdict.
pub type RuleFn = fn(&Transaction, &mut Context<'_>) -> Result<Verdict, Error>;

/// A rule compiled natively, for unit tests and benchmarks.
#[derive(Clone, Copy)]
pub struct NativeRule {
    pub evaluate: RuleFn,
}

impl NativeRule {
    pub const fn new(evaluate: RuleFn) -> Self {
        Self { evaluate }
    }
}

/// Everything a rule author needs, in one import.
pub mod prelude {
    pub use crate::{Channel, Context, Error, Evidence, Money, Outcome, PastTransaction, Transaction, Verdict};
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
    use crate::bindings::weir::rule::types as wit;

    /// Runs `f` on a transaction handed over by the host.
    pub fn run(tx: wit::Transaction, f: crate::RuleFn) -> Result<wit::Verdict, String> {
        let tx = crate::Transaction::from(tx);
        let mut ctx = crate::Context::wasm(tx.occurred_at_ms);
        f(&tx, &mut ctx).map(Into::into).map_err(|e| e.message().to_owned())
    }
}

/// Exports `evaluate` as the rule.
///
/// On `wasm32-wasip2` this implements the contract's `evaluator` interface;
/// natively it defines `pub const RULE: weir_sdk::NativeRule` for tests and
/// benchmarks.
#[macro_export]
macro_rules! rule {
    ($evaluate:path) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            use $crate::bindings::weir::rule::types as wit;
            struct WeirRule;
            impl $crate::bindings::exports::weir::rule::evaluator::Guest for WeirRule {
                fn evaluate(tx: wit::Transaction) -> ::core::result::Result<wit::Verdict, ::std::string::String> {
                    $crate::__private::run(tx, $evaluate)
                }
            }
            $crate::bindings::__export_rule_world!(WeirRule);
        };

        /// This rule, compiled natively: run it with `weir_sdk::testing`.
        #[cfg(not(target_family = "wasm"))]
        pub const RULE: $crate::NativeRule = $crate::NativeRule::new($evaluate);
    };
}
