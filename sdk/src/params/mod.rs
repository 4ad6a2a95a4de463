//! Typed access to a rule's parameters.
//!
//! Parameters come from the `[params]` table of the rule's manifest. Nested
//! tables are flattened to dotted names, so `[params.limits] EUR = 500000`
//! is the entry `EUR` of the table `limits` ([`Params::typed_table`]), or
//! the parameter `limits.EUR`.
//!
//! A rule declares the parameters it reads ([`declare`]); the host checks
//! the manifest against the declaration before the rule runs and fills in
//! the declared defaults.
//!
//! Layout: `declare` holds the declaration (built in a `const`, carried in
//! the component, checked against a manifest); `value` holds one parameter's value, the types it can be read as
//! and the error naming a parameter; `set` the parameters of a rule
//! version; `read` the checked readers (ranges, choices, lists, tables,
//! windows); `config` the parameters struct a rule parses once per instance.

mod config;
pub mod declare;
#[cfg(not(target_family = "wasm"))]
mod manifest;
mod read;
mod set;
mod value;

pub use config::FromParams;
#[doc(hidden)]
pub use config::evaluate_configured;
#[cfg(not(target_family = "wasm"))]
pub use manifest::flatten;
pub use read::Table;
pub use set::Params;
pub use value::{FromParam, ParamError, ParamValue};
