//! weir: a fraud-rule host. It reads `TransactionRecorded` events, runs
//! sandboxed WebAssembly rules on each, and writes exactly one decision per
//! transaction — `TransactionVerified`, `FraudSuspected` or `AccountLocked`.
//!
//! Layout (see ARCHITECTURE.md for the whole map):
//! - [`events`]: wire types of the input, decision and dead-letter events.
//! - [`manifest`]: rule manifests (`rule.toml`), parsed strictly.
//! - [`lists`]: runtime block and allow lists that rules read, with
//!   each list's version, and the snapshot the pipelines share.
//! - [`engine`]: the wasm sandbox, the rule set, the evaluator and the
//!   decision policy. Only `engine` knows wasmtime.
//! - [`state`]: per-account state (rule state, history, lock).
//! - [`store`]: the embedded, persistent state store (redb).
//! - [`record`]: what happens to one input record, in either pipeline, and
//!   the counters of what became of the records.
//! - [`pipeline`]: source → engine → sink, in batches that commit atomically.
//! - [`kafka`]: the same on Apache Kafka, exactly once, with state on a
//!   changelog topic. Only `kafka` knows rdkafka.
//! - [`packages`]: rule packages (validation, signatures, self-tests,
//!   deploy, rollback, retire, atomic install), and the shipped rules.
//! - [`live`]: hot deploy — the watched rules directory and the rule set
//!   the pipelines swap to between batches.
//! - [`telemetry`]: what the pipelines report (counters, histograms, the
//!   Prometheus exposition) and the [`telemetry::Hooks`] they are handed;
//!   below the pipelines.
//! - [`http`]: the HTTP side, above the pipelines: the status endpoint
//!   (`/health`, `/status`, `/metrics`).
//! - [`cases`]: sandbox test cases (`weir rule test`) and their runner.
//! - [`review`]: review cases for analysts, folded from published
//!   decisions and dispositions (`weir case list`, `weir case show`).
//! - [`scaffold`]: `weir rule new` and `weir rule build`.
//! - [`toolchain`]: the `wasm32-wasip2` target, added to the toolchain when
//!   it is missing (also used by host/build.rs).
//! - [`demo`]: the synthetic stream of `weir demo`.
//! - [`backtest`]: rule sets over history (a file or a topic range) next to
//!   a baseline, and the shadow report; the reports' text and HTML.
//! - [`config`]: `weir.toml` with environment overrides.
//!
//! The `weir` command line (arguments, terminal output) is the binary's
//! own (`src/cli/`): it calls these modules, as a program embedding weir
//! does.

pub mod backtest;
pub mod cases;
pub mod config;
pub mod console;
pub mod demo;
pub mod engine;
pub mod entity_order;
pub mod events;
pub mod features;
pub mod http;
pub mod kafka;
pub mod lists;
pub mod live;
pub mod manifest;
pub mod packages;
pub mod pipeline;
pub mod record;
pub mod review;
pub mod scaffold;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod toolchain;
