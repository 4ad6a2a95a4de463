//! weir's integration tests: one binary, one module per capability.
//!
//! - `architecture`: the invariants of ARCHITECTURE.md about where things
//!   live (only the engine knows wasmtime, only `kafka/` knows rdkafka, the
//!   host's modules import only the layers below them, the SDK has no
//!   circle, the command line and `anyhow` belong to the binary).
//! - `events`: the JSON Schemas match the Rust event types; old fixtures parse.
//! - `sandbox`: hostile and broken rules cost only their own verdict;
//!   components for another contract, core modules and garbage are refused.
//! - `pipeline`: the embedded pipeline — dead letters (bounded, whatever the
//!   record's size), atomic batches, reruns, restarts and replays decide
//!   each transaction exactly once.
//! - `shipped`: the shipped rules pass their sandbox cases, agree between
//!   wasm and native builds, and tell the demo's story.
//! - `cli`: the `weir` binary — demo, run, rule new/build/test, rules; the
//!   README's walkthrough, run verbatim outside the source tree.
//! - `clean_text`: no text from a deployer, producer or rule reaches a
//!   terminal or log line with raw control characters.
//! - `deploy`: hot deploy under a continuous stream — new versions, bad
//!   packages, retirement, shadow rules, quarantine, signatures, the compile
//!   cache, the status endpoint; embedded here, Kafka in `kafka`.
//! - `entities`: entity state — features per device and beneficiary equal
//!   a brute-force oracle (1 h, 24 h, 7 days), embedded, across runs and in
//!   a backtest; Kafka refuses entity rules of kinds it does not route
//!   (the Kafka hop itself is tested in `kafka`).
//! - `idle_deploy`: a deploy while the input is idle decides the next record
//!   (embedded here, Kafka in `kafka`).
//! - `params`: declared parameters — a misspelled, mistyped or
//!   out-of-range parameter is refused at build, test, `weir rules` and
//!   deploy; error cases name their kind.
//! - `refusals`: a refused package is listed in `weir run`'s summary.
//! - `status_endpoint`: the status endpoint bounds requests, answers only
//!   GET and HEAD, and asks for its bearer token when one is configured.
//! - `signed_sets`: with `rules.require_signed`, deleting, replaying, mixing
//!   and failing cases cannot change what runs, and each is reported.
//! - `rules_files`: what a deployer can leave in the rules directory — links
//!   to secrets or to stdin, named pipes, huge and sparse files — is refused
//!   without hanging or being read, in bounded text that quotes none of it.
//! - `review`: review cases folded from decisions and dispositions, and
//!   `weir case list` / `weir case show` over the embedded files.
//! - `lists`: runtime lists — rules read the lists in effect, decisions
//!   record their versions, `weir run --lists` follows the file, a replay
//!   with the same versions is byte-identical, bad changes and lists over
//!   their bounds are refused with nothing written.
//! - `backtest`: `weir backtest` and `weir shadow-report` on labelled
//!   history whose answers are known; a Kafka topic range equal to the file.
//! - `kafka`: `weir run` on a real broker — exactly once across crashes,
//!   rebalances and a broker outage; dead letters; state follows the account;
//!   limits; the chaos run.
//! - `models`: ONNX models in rules — scores equal onnxruntime's for
//!   LightGBM, a random forest, XGBoost and an MLP (natively and in the
//!   sandbox), explanations name the features, a model is part of its
//!   package's version, and a broken model is refused at deploy.
//! - `fuzz`: seeded, time-bounded mutation fuzzing of events, the input
//!   reader, manifests, case files and components over the committed corpus.
//!
//! `util` gives each test its own temporary directory and the built guests;
//! `native_rules` the shipped rules compiled natively.

// A test stops at the first failure, with the panic as its message.
#![allow(clippy::unwrap_used)]

mod architecture;
mod backtest;
mod clean_text;
mod cli;
mod console;
mod deploy;
mod entities;
mod events;
mod fuzz;
mod idle_deploy;
mod kafka;
mod lists;
mod models;
mod native_rules;
mod params;
mod pipeline;
mod refusals;
mod review;
mod rules_files;
mod sandbox;
mod shipped;
mod signed_sets;
mod status_endpoint;
mod util;
