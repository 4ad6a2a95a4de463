//! The engine: runs every rule on a transaction and combines their
//! verdicts into exactly one decision.
//!
//! - [`Engine`] compiles rule packages ([`LoadedRule`]) — wasm components in
//!   the sandbox ([`wasm`]), or natively compiled rules for benchmarks.
//! - [`RuleSet`] is an immutable, ordered set of loaded rules: one version
//!   of each rule id. Swapping rules means building a new set.
//! - [`Evaluator`] owns one instance per rule and decides transactions, one
//!   at a time, against the account's [`AccountState`]. It is not shared
//!   between threads; each worker has its own.
//! - [`policy`] turns verdicts into the decision type.
//!
//! A rule's failure (trap, fuel, memory, stack, returned error) costs only
//! that rule's verdict: it is recorded in the decision with the failure
//! policy applied, its state changes are discarded, and its instance is
//! recreated for the next transaction.
//!
//! The files, one concept each:
//!
//! - `load.rs`: [`Engine`] and [`Compilation`], loading rule packages;
//! - `rule.rs`: [`LoadedRule`], one rule version, and [`content_hash`];
//! - `rule_set.rs`: [`RuleSet`];
//! - `evaluator.rs`: [`Evaluator`], one decision per transaction, and the
//!   transaction's fuel budget;
//! - `slot.rs`: a rule's place in an evaluator: [`RuleStats`], quarantine,
//!   rate-limited failure warnings;
//! - `call.rs`: the account state one evaluation runs against;
//! - `inputs.rs`: the transaction in the form each rule takes;
//! - `verdict.rs`: verdicts, their limits, and the result a decision records;
//! - `params.rs`: a rule's declared parameters, read from its component
//!   and checked against its manifest ([`Parameters`]);
//! - `error.rs`: [`LoadError`] and [`RuleError`];
//! - [`wasm`], [`cache`], [`policy`]: the sandbox, the compile cache, the
//!   decision policy.
//!
//! [`AccountState`]: crate::state::AccountState

pub mod cache;
mod call;
mod error;
mod evaluator;
mod inputs;
mod load;
mod params;
pub mod policy;
mod rule;
mod rule_set;
mod slot;
mod verdict;
pub mod wasm;

pub use error::{ERROR_KINDS, LoadError, PARAMS_REFUSED, RuleError};
pub use evaluator::{Evaluator, TRANSACTION_FUEL, entity_id, entity_key};
pub use load::{Compilation, Engine};
pub use params::{ParamLine, Parameters, declaration};
pub use policy::Policy;
pub use rule::{LoadedRule, content_hash, package_hash};
pub use rule_set::RuleSet;
pub use slot::{FAILURE_WINDOW, FUEL_AVERAGE_MAX, FUEL_WINDOW, MODEL_FUEL_AVERAGE_MAX, QUARANTINE_AFTER, RuleStats};
pub use verdict::DECISION_EXPLANATIONS_MAX;
