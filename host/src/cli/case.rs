//! `weir case ...`: what analysts do about an account, as events.
//! `weir case unlock` lifts the lock weir put on an account (to weir's
//! input); `weir case resolve` records a verdict on flagged transactions
//! (to the dispositions topic), which backtests read as labels.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use weir::config::Config;
use weir::events::{AccountUnlocked, CaseResolved, Verdict};
use weir::kafka::KafkaConfig;

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
    /// Record a verdict on flagged transactions: fraud, or legitimate.
    ///
    /// Writes a CaseResolved event (schemas/case-resolved.v1.schema.json),
    /// keyed by the account: with a `[kafka]` table to the dispositions
    /// topic (`kafka.topics.dispositions`), otherwise as one JSON line
    /// (appended to --append FILE, or printed). `weir backtest` and `weir
    /// shadow-report` read them as labels (`--dispositions FILE|kafka`), so
    /// the verdict shows up in rule precision. A later verdict on a
    /// transaction replaces an earlier one.
    Resolve(ResolveArgs),
}

impl CaseCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            CaseCommand::Unlock(args) => args.run(),
            CaseCommand::Resolve(args) => args.run(),
        }
    }
}

/// Where an analyst's event goes, and how the command reports it.
#[derive(Args, Debug)]
pub struct Output {
    /// Configuration file (TOML); with a `[kafka]` table the event goes to Kafka.
    /// WEIR_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Without Kafka: append the event to this JSON-lines file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub append: Option<PathBuf>,
    /// Print what was written as JSON (the event, and where it landed).
    #[arg(long)]
    pub json: bool,
}

impl Output {
    /// Writes `event` (keyed by `account`) to the topic `topic` picks from
    /// the Kafka config, or to the file or stdout; `what` describes it.
    fn write<E: serde::Serialize>(
        &self,
        config: &Config,
        topic: impl Fn(&KafkaConfig) -> &str,
        account: &str,
        event: &E,
        what: &str,
    ) -> anyhow::Result<()> {
        let line = serde_json::to_string(event)?;
        if let Some(kafka) = &config.kafka {
            anyhow::ensure!(self.append.is_none(), "--append is for files; the config names a Kafka broker");
            let topic = topic(kafka);
            if kafka.create_topics {
                weir::kafka::create_topics(kafka, &Default::default()).context("cannot create weir's topics")?;
            }
            let at = weir::kafka::publish(kafka, topic, account, line.as_bytes())
                .with_context(|| format!("cannot write {what} to `{topic}`"))?;
            if self.json {
                let out = serde_json::json!({
                    "event": event, "topic": at.topic, "partition": at.partition, "offset": at.offset,
                });
                println!("{out}");
            } else {
                println!("{what} written to {} partition {} offset {}", at.topic, at.partition, at.offset);
            }
        } else if let Some(path) = &self.append {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {} to append {what}", path.display()))?;
            writeln!(file, "{line}").with_context(|| format!("cannot append {what} to {}", path.display()))?;
            if self.json {
                println!("{}", serde_json::json!({ "event": event, "file": path }));
            } else {
                println!("{what} appended to {}", path.display());
            }
        } else {
            println!("{line}");
        }
        Ok(())
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
    #[command(flatten)]
    pub output: Output,
}

impl UnlockArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.output.config.as_deref())?;
        let now = time::OffsetDateTime::now_utc();
        let unlock = AccountUnlocked::new(&self.account, &self.transaction, &self.analyst, self.note.as_deref(), now)
            .context("the unlock is not valid")?;
        let what = format!("unlock of {} (the lock by {})", unlock.account_id, unlock.transaction_id);
        self.output.write(&config, |k| &k.topics.input, &unlock.account_id, &unlock, &what)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// An analyst's verdict.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VerdictArg {
    /// The transactions were fraud.
    Fraud,
    /// They were the customer's own: a false alarm.
    Legitimate,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The account the transactions belong to.
    #[arg(long)]
    pub account: String,
    /// A transaction the verdict is about (repeat for several, up to 1000).
    #[arg(long = "transaction", required = true)]
    pub transactions: Vec<String>,
    #[arg(long, value_enum)]
    pub verdict: VerdictArg,
    /// For fraud, the pattern's name (e.g. `card-testing`): the label backtests show.
    #[arg(long)]
    pub pattern: Option<String>,
    /// Who resolved it, as the bank names its analysts.
    #[arg(long)]
    pub analyst: String,
    /// Why, in the analyst's words (at most 4096 bytes).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

impl ResolveArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.output.config.as_deref())?;
        let verdict = match self.verdict {
            VerdictArg::Fraud => Verdict::Fraud,
            VerdictArg::Legitimate => Verdict::Legitimate,
        };
        let now = time::OffsetDateTime::now_utc();
        let resolved = CaseResolved::new(
            &self.account,
            &self.transactions,
            verdict,
            self.pattern.as_deref(),
            &self.analyst,
            self.note.as_deref(),
            now,
        )
        .context("the disposition is not valid")?;
        let verdict = match verdict {
            Verdict::Fraud => "fraud",
            Verdict::Legitimate => "legitimate",
        };
        let what = format!(
            "verdict {verdict} on {} transaction(s) of {}",
            resolved.transaction_ids.len(),
            resolved.account_id
        );
        self.output.write(&config, |k| &k.topics.dispositions, &resolved.account_id, &resolved, &what)?;
        Ok(ExitCode::SUCCESS)
    }
}
