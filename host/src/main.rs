//! The `weir` command line: parses arguments, sets up logging, and hands
//! over to `weir::commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use weir::commands;

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
    /// Write, build and test a rule.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Check the rule packages in a directory: which load, which are refused and why.
    Rules {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
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
        Command::Rule(RuleCommand::New(args)) => commands::rule_new(&args),
        Command::Rule(RuleCommand::Build { dir }) => commands::rule_build(&dir),
        Command::Rule(RuleCommand::Test(args)) => commands::rule_test(&args),
        Command::Rules { dir } => commands::rules_check(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
