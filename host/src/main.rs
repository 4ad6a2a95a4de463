//! The `weir` command line: parses arguments, sets up logging, and hands
//! over to `weir::commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;
use weir::commands;

/// Records and decisions move between threads; mimalloc handles that far
/// better than the system allocator (BENCHMARKS.md has the figures).
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

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
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a synthetic stream through the shipped rules, embedded, and show what happened.
    ///
    /// Needs no broker and no set-up. Writes the input, the decisions, the
    /// dead letters, the state store and the shipped rule packages to --out.
    Demo(commands::DemoArgs),
    /// Decide a stream of TransactionRecorded events (JSON lines) with the rules in a directory.
    ///
    /// Embedded mode: reads a file or stdin, writes decisions.jsonl,
    /// dead-letters.jsonl and the state store (state.redb) to the output
    /// directory. Batches commit atomically; a rerun never decides a
    /// transaction twice.
    Run(commands::RunArgs),
    /// What a candidate rules directory would have decided on past transactions, next to a baseline.
    ///
    /// Read-only: runs both rule sets over the history (a JSON-lines file or
    /// a Kafka topic range) in memory, writes nothing to a live store or
    /// topic. Prints each rule's hits, errors, fuel and evaluation time, the
    /// decisions that change and, with --labels, precision, recall and
    /// false-positive rate; --json and --html write the comparison.
    Backtest(commands::BacktestArgs),
    /// What the shadow rules in published decisions would have changed, had they been enforced.
    ///
    /// Reads decisions weir published (decisions.jsonl), optionally within
    /// an event-time range, and compares them with the same rule results
    /// with every shadow rule enforced, under the config's policy: changed
    /// decisions with examples, per-rule hits and, with --labels, precision,
    /// recall and false-positive rate. Judge a shadowed rule before promoting it.
    ShadowReport(commands::ShadowReportArgs),
    /// Write, build, test, deploy and roll back a rule.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Check the rule packages in a directory: which load, which are refused and why.
    ///
    /// Runs the same validation as a running weir does before a package
    /// goes live: manifest, signature (if required), compile, contract
    /// version, self-test cases. For what a running weir has active and
    /// refused, see its status endpoint (`/status`).
    Rules {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
        /// Configuration file (trusted keys, compile cache).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RuleCommand {
    /// Scaffold a rule crate that builds and passes its tests as is.
    New(commands::NewArgs),
    /// Build a rule crate for wasm32-wasip2 and lay out its package in target/weir/.
    Build {
        /// The rule crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run sandbox cases against a rule component, in the production sandbox.
    ///
    /// Reports each case; exits non-zero if any case fails or the rule errs.
    Test(commands::TestArgs),
    /// Deploy a package into the rules directory: validated first, then
    /// copied atomically; a running weir swaps to it without a restart.
    ///
    /// The package's manifest, component, self-test cases (`<id>.cases.toml`)
    /// and signature (`<id>.sig`) are written under hidden names and renamed
    /// into place, the manifest last. The replaced version is archived for
    /// `weir rule rollback`.
    Deploy(commands::DeployArgs),
    /// Redeploy the version of a rule that ran before the current one.
    Rollback(commands::RetireArgs),
    /// Remove a rule's package: a running weir stops running the rule.
    Retire(commands::RetireArgs),
    /// Sign a package (ed25519) for hosts with `rules.require_signed = true`.
    Sign(commands::SignArgs),
    /// Make a signing key pair: the secret key to a file, the public key printed.
    Keygen {
        /// Where to write the secret key (created with mode 0600).
        #[arg(long, short, default_value = "weir-signing.key")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("WEIR_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let result = match cli.command {
        Command::Demo(args) => commands::demo(&args),
        Command::Run(args) => commands::run(&args),
        Command::Backtest(args) => commands::backtest(&args),
        Command::ShadowReport(args) => commands::shadow_report(&args),
        Command::Rule(RuleCommand::New(args)) => commands::rule_new(&args),
        Command::Rule(RuleCommand::Build { dir }) => commands::rule_build(&dir),
        Command::Rule(RuleCommand::Test(args)) => commands::rule_test(&args),
        Command::Rule(RuleCommand::Deploy(args)) => commands::rule_deploy(&args),
        Command::Rule(RuleCommand::Rollback(args)) => commands::rule_rollback(&args),
        Command::Rule(RuleCommand::Retire(args)) => commands::rule_retire(&args),
        Command::Rule(RuleCommand::Sign(args)) => commands::rule_sign(&args),
        Command::Rule(RuleCommand::Keygen { out }) => commands::rule_keygen(&out),
        Command::Rules { dir, config } => commands::rules_check(&dir, config.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
