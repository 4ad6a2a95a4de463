//! The notification service: consumes `AccountLocked` and `FraudSuspected`
//! and writes one email or push message per decision to its outbox table,
//! even when Kafka delivers a decision again.
//!
//! ```sh
//! cargo run -p tributary --bin notifier -- --db notifier.sqlite          # until Ctrl-C
//! cargo run -p tributary --bin notifier -- --db notifier.sqlite --rewind # read everything again
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use tributary::notifier::{self, Handled, Notifier};
use tributary::{Kafka, Topics};

/// Tributary's notification service: one message per lock or suspicion, exactly once.
#[derive(Parser)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The notifier's SQLite database (its outbox and its offsets).
    #[arg(long, default_value = "notifier.sqlite")]
    db: PathBuf,
    /// The broker.
    #[arg(long, env = "TRIBUTARY_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:19092")]
    bootstrap: String,
    /// Prefix of the topic names (none: weir's defaults).
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Forget the stored offsets first and read both topics from the start
    /// (a forced redelivery: nothing is sent twice).
    #[arg(long)]
    rewind: bool,
}

fn main() -> anyhow::Result<()> {
    tributary::init_logging();
    let args = Args::parse();
    let kafka = Kafka { bootstrap: args.bootstrap, topics: Topics::with_prefix(&args.topic_prefix) };
    if args.rewind {
        notifier::rewind(&args.db)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Notifier::new(&args.db, &kafka)?.run(&stop, |h| match h {
        Handled::Sent(n) => println!("sent {} to {}: {}", n.channel, n.account_id, n.message),
        Handled::Duplicate { event_id } => println!("already sent for {event_id}; nothing sent"),
        Handled::Ignored => {}
    })
}
