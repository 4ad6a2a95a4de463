//! The Tributary Bank story, narrated, against a real broker: concert
//! tickets, a card-testing fraud ending in `AccountLocked` and a refusal by
//! the bank itself, a customer's confirmation, weir stopped and restarted
//! with nothing missed, and notifications sent exactly once.
//!
//! Run it with `cargo run -p tributary --bin story`. It starts the
//! project's broker (`scripts/kafka.sh`) unless `TRIBUTARY_KAFKA_BOOTSTRAP`
//! names one, builds `weir` unless `WEIR_BIN` names it, and exits non-zero
//! if any step's outcome is not the expected one.

use std::process::ExitCode;

use clap::Parser;
use tributary::story;

/// Tributary Bank's story, narrated as it happens: the legacy bank, weir,
/// the notifier and a customer's confirmation working together on Kafka.
#[derive(Parser)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The broker; default: the project's own, started if needed.
    #[arg(long, env = "TRIBUTARY_KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// The weir binary; default: built with cargo.
    #[arg(long, env = "WEIR_BIN")]
    weir: Option<std::path::PathBuf>,
    /// Keep the databases, weir's configuration and log here (default: a
    /// temporary directory, kept only if the story fails).
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = std::env::var("TRIBUTARY_LOG").unwrap_or_else(|_| "warn,librdkafka=error".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nThe story failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let bootstrap = match args.bootstrap {
        Some(b) => b,
        None => story::broker()?,
    };
    let weir = match args.weir {
        Some(w) => w,
        None => story::weir_binary()?,
    };
    let temp = tempfile::Builder::new().prefix("tributary-").tempdir()?;
    let work_dir = args.work_dir.unwrap_or_else(|| temp.path().to_owned());
    let opts = story::Options { bootstrap, weir, work_dir, prefix: story::fresh_prefix() };
    let result = story::run(&opts, &mut std::io::stdout());
    if result.is_err() {
        // Keep what the failed run left for a look.
        let kept = temp.keep();
        eprintln!("The run's files are in {}", kept.display());
    }
    result.map(|_| ())
}
