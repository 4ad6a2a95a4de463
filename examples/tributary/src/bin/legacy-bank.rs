//! The legacy bank as a service: records purchases from the command line
//! into its SQLite database with a transactional outbox, relays the outbox
//! to Kafka, and applies weir's account locks.
//!
//! ```sh
//! cargo run -p tributary --bin legacy-bank -- --db bank.sqlite buy acct-1029 18900 m-ticketsrus 7922
//! cargo run -p tributary --bin legacy-bank -- --db bank.sqlite serve     # relay + lock listener
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use tributary::bank::{Bank, LockListener, Outcome, Purchase, Relay};
use tributary::events::{Merchant, Money};
use tributary::{Kafka, Topics};

/// The legacy bank: purchases, a transactional outbox to Kafka, and local account locks.
#[derive(Parser)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The bank's SQLite database.
    #[arg(long, default_value = "legacy-bank.sqlite")]
    db: PathBuf,
    /// The broker.
    #[arg(long, env = "TRIBUTARY_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:19092")]
    bootstrap: String,
    /// Prefix of the topic names (none: weir's defaults).
    #[arg(long, default_value = "")]
    topic_prefix: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record a purchase (refused if the account is locked).
    Buy {
        account: String,
        /// Amount in euro cents.
        amount: i64,
        merchant: String,
        /// ISO 18245 merchant category code.
        category: String,
        #[arg(long, default_value = "ecommerce")]
        channel: String,
        #[arg(long)]
        country: Option<String>,
        /// The device fingerprint (makes the event version 2).
        #[arg(long)]
        device: Option<String>,
    },
    /// Relay the outbox to Kafka and apply account locks until Ctrl-C.
    Serve,
}

fn main() -> anyhow::Result<()> {
    tributary::init_logging();
    let args = Args::parse();
    let kafka = Kafka { bootstrap: args.bootstrap, topics: Topics::with_prefix(&args.topic_prefix) };
    match args.command {
        Cmd::Buy { account, amount, merchant, category, channel, country, device } => {
            let mut bank = Bank::open(&args.db, &kafka.topics.input)?;
            let purchase = Purchase {
                account_id: account,
                amount: Money { minor_units: amount, currency: "EUR".to_owned() },
                merchant: Merchant { id: merchant, name: None, category_code: category, country },
                channel,
                device_fingerprint: device,
            };
            match bank.purchase(&purchase)? {
                Outcome::Accepted { transaction_id, .. } => println!("accepted {transaction_id}"),
                Outcome::Refused { transaction_id, reason } => println!("refused {transaction_id}: {reason}"),
            }
        }
        Cmd::Serve => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, Arc::clone(&stop))?;
            }
            let mut relay = Relay::new(&args.db, &kafka)?;
            let mut locks = LockListener::new(&args.db, &kafka, "tributary-legacy-bank")?;
            let relay_stop = Arc::clone(&stop);
            let relay = std::thread::spawn(move || relay.run(&relay_stop));
            locks.run(&stop)?;
            relay.join().map_err(|_| anyhow::anyhow!("the relay panicked"))??;
        }
    }
    Ok(())
}
