//! The wasm sandbox: compiling, checking, instantiating and calling rule
//! components with wasmtime.
//!
//! Two contracts are linked: `weir:rule@2.4.0` (`sdk/wit/rule.wit`, what
//! the SDK builds, which also runs rules built for 2.0.0), where the transaction and the history cross as one
//! wire-encoded byte string and a verdict's explanation is handed over only
//! when there is one; and the frozen `weir:rule@1.0.0` (`host/wit/v1`), so
//! rules built with the first SDK keep running unchanged, on a slower path
//! (a record of strings per call).
//!
//! Only the rule contract is linked, plus WASI with nothing granted. Each
//! rule instance lives in its own store with a fuel budget per evaluation,
//! a linear-memory cap and a bounded wasm stack; a trap poisons only that
//! instance, which the caller drops and recreates.
//!
//! - [`contract`]: the two contracts' bindings and the checks a component
//!   passes at load.
//! - [`sandbox`]: the wasmtime engine, its configuration and the linker.
//! - [`instance`]: a compiled rule with its limits, and a live instance.
//! - [`store`]: what each instance's store holds; telling failures apart.
//! - [`imports`]: the host side of the contracts' imports.
//! - [`convert`]: host types to and from the contracts' types.

mod contract;
mod convert;
mod imports;
mod instance;
mod sandbox;
mod store;

pub(crate) use contract::wit;
pub use contract::{CONTRACT_VERSION, LEGACY_CONTRACT_VERSION};
pub(crate) use convert::transaction_to_wit;
pub(crate) use instance::Input;
pub use instance::{Compiled, Instance};
pub use sandbox::Sandbox;
pub use store::Scored;
