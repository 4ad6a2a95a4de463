//! `weir case ...`: what analysts do about an account, as events on weir's
//! input. `weir case unlock` lifts the lock weir put on an account.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use weir::config::Config;
use weir::events::AccountUnlocked;

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Lift the lock weir put on an account: writes an AccountUnlocked event to weir's input.
    ///
    /// With a config that has a `[kafka]` table, the event goes to the input
    /// topic, keyed by the account (an idempotent producer; the command
    /// returns once the broker has it). Otherwise it is written as one JSON
    /// line for the embedded pipeline: appended to --append FILE, or printed
    /// on stdout (pipe it into `weir run -i -`).
    ///
    /// weir applies it in order with the account's transactions: the lock
    /// named by --transaction (the AccountLocked decision's transaction_id)
    /// is cleared, and the account's next lock emits AccountLocked again.
    /// An unlock that names no current lock (the account is not locked, or
    /// a later lock replaced it) is dead-lettered with the reason, so
    /// running the command twice never lifts a newer lock. The event's
    /// schema is schemas/account-unlocked.v1.schema.json.
    Unlock(UnlockArgs),
}

impl CaseCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            CaseCommand::Unlock(args) => args.run(),
        }
    }
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// The locked account.
    #[arg(long)]
    pub account: String,
    /// The transaction whose AccountLocked decision locked the account.
    #[arg(long)]
    pub transaction: String,
    /// Who unlocks it, as the bank names its analysts (recorded in the event).
    #[arg(long)]
    pub analyst: String,
    /// Why, in the analyst's words (at most 4096 bytes).
    #[arg(long)]
    pub note: Option<String>,
    /// Configuration file (TOML); with a `[kafka]` table the event goes to the input topic.
    /// WEIR_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Embedded: append the event to this JSON-lines input file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub append: Option<PathBuf>,
    /// Print what was written as JSON (the event, and where it landed).
    #[arg(long)]
    pub json: bool,
}

impl UnlockArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        let now = time::OffsetDateTime::now_utc();
        let unlock = AccountUnlocked::new(&self.account, &self.transaction, &self.analyst, self.note.as_deref(), now)
            .context("the unlock is not valid")?;
        let line = serde_json::to_string(&unlock)?;
        if let Some(kafka) = &config.kafka {
            anyhow::ensure!(
                self.append.is_none(),
                "--append is for the embedded pipeline; the config names a Kafka broker"
            );
            let at = weir::kafka::publish_input(kafka, &unlock.account_id, line.as_bytes())
                .with_context(|| format!("cannot write the unlock to `{}`", kafka.topics.input))?;
            if self.json {
                let out = serde_json::json!({
                    "event": unlock, "topic": at.topic, "partition": at.partition, "offset": at.offset,
                });
                println!("{out}");
            } else {
                println!(
                    "unlock of {} (the lock by {}) written to {} partition {} offset {}; weir applies it in order with the account's transactions",
                    unlock.account_id, unlock.transaction_id, at.topic, at.partition, at.offset
                );
            }
        } else if let Some(path) = &self.append {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {} to append the unlock", path.display()))?;
            writeln!(file, "{line}").with_context(|| format!("cannot append the unlock to {}", path.display()))?;
            if self.json {
                println!("{}", serde_json::json!({ "event": unlock, "file": path }));
            } else {
                println!(
                    "unlock of {} (the lock by {}) appended to {}; `weir run` applies it in order with the account's transactions",
                    unlock.account_id,
                    unlock.transaction_id,
                    path.display()
                );
            }
        } else {
            println!("{line}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
