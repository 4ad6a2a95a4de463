//! Customer confirmation: the customer says "it was me" about a suspected
//! purchase. Finds weir's `FraudSuspected` for the transaction and publishes
//! the customer's `TransactionVerified` to weir's input topic.
//!
//! ```sh
//! cargo run -p tributary --bin confirm -- tx-3f9a1c2b7d4e
//! ```

use std::time::Duration;

use clap::Parser;
use tributary::{Kafka, Topics, confirm};

/// Confirm a suspected purchase as the customer's own ("it was me").
#[derive(Parser)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The suspected transaction.
    transaction: String,
    /// The broker.
    #[arg(long, env = "TRIBUTARY_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:19092")]
    bootstrap: String,
    /// Prefix of the topic names (none: weir's defaults).
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// How long to look for the FraudSuspected decision, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    tributary::init_logging();
    let args = Args::parse();
    let kafka = Kafka { bootstrap: args.bootstrap, topics: Topics::with_prefix(&args.topic_prefix) };
    let suspected = confirm::find_suspected(&kafka, &args.transaction, Duration::from_secs(args.timeout_secs))?;
    let confirmation = confirm::confirm(&kafka, &suspected)?;
    println!("{}", serde_json::to_string_pretty(&confirmation)?);
    Ok(())
}
