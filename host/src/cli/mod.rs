//! The `weir` command line: the subcommands, their arguments and what each
//! prints. The work is in the library; this module parses, calls it as a
//! program embedding weir would, and turns the result into terminal output.
//!
//! One file per subcommand, each with its arguments (`XxxArgs`) and their
//! `run`; `rule/` holds the `weir rule ...` family, `case` the `weir case
//! ...` one; `report` the arguments
//! and output files a backtest and a shadow report share; `print` the
//! progress bar and the summary tables the pipelines share.

mod backtest;
mod case;
mod console;
mod demo;
mod features;
mod list;
mod print;
mod report;
mod rule;
mod rules;
mod run;
mod shadow_report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weir — a fraud-rule host for banks on Apache Kafka.
///
/// weir reads `TransactionRecorded` events, runs fraud rules (Rust compiled
/// to sandboxed WebAssembly components) on each, and writes exactly one
/// decision per transaction: `TransactionVerified`, `FraudSuspected` or
/// `AccountLocked`, with the reasons.
///
/// Logs go to stderr; set WEIR_LOG (or RUST_LOG), e.g. WEIR_LOG=debug.
#[derive(Parser)]
#[command(name = "weir", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a synthetic stream through the shipped rules, embedded, and show what happened.
    ///
    /// Needs no broker and no set-up. Writes the input, the decisions, the
    /// dead letters, the state store and the shipped rule packages to --out.
    /// --days spreads the stream over weeks of event time, for backtests of
    /// rules that depend on an account's history.
    Demo(demo::DemoArgs),
    /// Decide a stream of TransactionRecorded events (JSON lines) with the rules in a directory.
    ///
    /// Embedded mode: reads a file or stdin, writes decisions.jsonl,
    /// dead-letters.jsonl and the state store (state.redb) to the output
    /// directory. Batches commit atomically; a rerun never decides a
    /// transaction twice.
    Run(run::RunArgs),
    /// What a candidate rules directory would have decided on past transactions, next to a baseline.
    ///
    /// Read-only: runs both rule sets over the history (a JSON-lines file or
    /// a Kafka topic range) in memory, writes nothing to a live store or
    /// topic. Prints each rule's hits, errors, fuel and evaluation time, the
    /// decisions that change and, with --labels, precision, recall and
    /// false-positive rate; --json and --html write the comparison (the
    /// JSON holds every changed decision, with the rules' evidence).
    /// --warm-up-until builds the accounts' state on the history before a
    /// time and measures only from it on.
    Backtest(backtest::BacktestArgs),
    /// What the shadow rules in published decisions would have changed, had they been enforced.
    ///
    /// Reads decisions weir published (decisions.jsonl), optionally within
    /// an event-time range, and compares them with the same rule results
    /// with every shadow rule enforced, under the config's policy: changed
    /// decisions with examples, per-rule hits and, with --labels, precision,
    /// recall and false-positive rate. Judge a shadowed rule before promoting it.
    ShadowReport(shadow_report::ShadowReportArgs),
    /// Write a model rule's training table: its features over history, as it computes them when it serves.
    ///
    /// Runs the rule in the sandbox over a history (JSON lines) and writes
    /// one CSV line per transaction it scored: the transaction's id,
    /// account and time, the features the rule handed to its model (columns
    /// named by the manifest's `[model] features`), the model's score
    /// (empty before there is a model) and, with --labels, the label. Train
    /// on it, export the model to ONNX, put it in the package: the model is
    /// served exactly the features it was trained on.
    Features(features::FeaturesArgs),
    /// Write, build, test, deploy and roll back a rule.
    #[command(subcommand)]
    Rule(rule::RuleCommand),
    /// Review cases and what analysts do about them: unlock, resolve, list, show.
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Runtime block and allow lists that rules read: add, remove, show, export.
    ///
    /// Analysts change them without a deploy: on Kafka through the compacted
    /// lists topic every instance reads (in effect within a second),
    /// embedded through the lists file `weir run --lists` follows. Every
    /// decision records the versions of the lists its rules read.
    #[command(subcommand)]
    List(list::ListCommand),
    /// The analysts' console in the browser: the review queue, cases, lists and the audit log.
    ///
    /// Serves on `console.listen` (default 127.0.0.1:9190) for the users of
    /// `[[console.users]]`, each a viewer, an analyst or an admin. On Kafka
    /// (a `[kafka]` table) it reads the cases from weir's topics and writes
    /// what analysts do as events (verdicts, unlocks, list changes) and one
    /// audit record per action (`kafka.topics.audit`); embedded, the files
    /// `console.decisions`, `console.dispositions`, `console.input`,
    /// `lists.file` and `console.audit_file`.
    #[command(subcommand)]
    Console(console::ConsoleCommand),
    /// Check the rule packages in a directory: which load, which are refused and why.
    ///
    /// Runs the same validation as a running weir does before a package
    /// goes live: manifest, signature (if required), compile, contract
    /// version, self-test cases. For what a running weir has active and
    /// refused, see its status endpoint (`/status`).
    Rules(rules::RulesArgs),
}

impl Command {
    /// Runs the subcommand; the exit code says whether what it checked
    /// passed (`weir rules`, `weir rule test`).
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Demo(args) => args.run(),
            Command::Run(args) => args.run(),
            Command::Backtest(args) => args.run(),
            Command::ShadowReport(args) => args.run(),
            Command::Features(args) => args.run(),
            Command::Rule(command) => command.run(),
            Command::Case(command) => command.run(),
            Command::List(command) => command.run(),
            Command::Console(command) => command.run(),
            Command::Rules(args) => args.run(),
        }
    }
}
