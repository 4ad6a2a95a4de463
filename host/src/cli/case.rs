//! `weir case ...`: what analysts do about an account, as events, and the
//! review cases they work on. `weir case unlock` lifts the lock weir put on
//! an account (to weir's input); `weir case resolve` records a verdict on
//! flagged transactions (to the dispositions topic), which backtests read
//! as labels; `weir case list` and `weir case show` fold the cases from the
//! published decisions and the dispositions ([`weir::review`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use weir::config::Config;
use weir::events::{AccountUnlocked, CaseResolved, Verdict, shown};
use weir::kafka::KafkaConfig;
use weir::review::{Case, CaseState, Published};

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
    /// List review cases: every FraudSuspected and AccountLocked opens one for its account.
    ///
    /// Folded from weir's published decisions and the analysts'
    /// dispositions: on Kafka (--config with a `[kafka]` table) the decision
    /// topics, the unlocks on the account-locked topic and the dispositions
    /// topic, read to their end; embedded, --decisions FILE and
    /// --dispositions FILE. A flagged decision joins its account's open case;
    /// a disposition naming a transaction of the case resolves it, and the
    /// account's next flagged decision opens a new one.
    List(ListArgs),
    /// Show a case: its decisions with each rule's reason and evidence, the
    /// account's decisions before it, unlocks and the resolution.
    Show(ShowArgs),
}

impl CaseCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            CaseCommand::Unlock(args) => args.run(),
            CaseCommand::Resolve(args) => args.run(),
            CaseCommand::List(args) => args.run(),
            CaseCommand::Show(args) => args.run(),
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
            append_lines(path, std::slice::from_ref(&line), what)?;
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
    /// The case to resolve, as `weir case list` shows it (its id or first characters): the
    /// verdict covers every flagged decision of the case. The cases are read as `weir case
    /// list` reads them (the topics; embedded, --decisions and the --append file). Instead of
    /// --account and --transaction.
    #[arg(long = "case", value_name = "CASE", conflicts_with_all = ["account", "transactions"])]
    pub case_id: Option<String>,
    /// Embedded: the decisions weir wrote (decisions.jsonl), where --case is
    /// looked up and --transaction checked. On Kafka the decision topics are read.
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
    /// The account the transactions belong to.
    #[arg(long, required_unless_present = "case_id")]
    pub account: Option<String>,
    /// A transaction the verdict is about (repeat for several, up to 1000).
    #[arg(long = "transaction", required_unless_present = "case_id")]
    pub transactions: Vec<String>,
    /// What the analyst concluded.
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
    /// Label transactions weir did not decide (history from before weir ran,
    /// for backtests): --transaction is not checked against the decisions.
    #[arg(long, conflicts_with = "case_id")]
    pub unchecked: bool,
    #[command(flatten)]
    pub output: Output,
}

impl ResolveArgs {
    /// Refuses transactions weir decided nothing for on `account` (a
    /// disposition labels decisions), when the decisions can be read: on
    /// Kafka, or embedded with --decisions.
    fn check_decided(&self, config: &Config, account: &str) -> anyhow::Result<()> {
        if self.unchecked {
            return Ok(());
        }
        if config.kafka.is_none() && self.decisions.is_none() {
            eprintln!("note: the transactions were not checked against weir's decisions (give --decisions FILE)");
            return Ok(());
        }
        let published = read_published(config, self.decisions.as_deref(), None, None, false)?;
        let decided: std::collections::HashSet<&str> =
            published.decisions.iter().filter(|d| d.account_id == account).map(|d| d.transaction_id.as_str()).collect();
        let unknown: Vec<String> = self
            .transactions
            .iter()
            .filter(|t| !decided.contains(t.as_str()))
            .map(|t| shown(t, 80).into_owned())
            .collect();
        anyhow::ensure!(
            unknown.is_empty(),
            "weir decided no transaction {} of account {}: nothing was written (a verdict is about transactions weir decided; --unchecked labels others)",
            unknown.join(", "),
            shown(account, 80)
        );
        Ok(())
    }

    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.output.config.as_deref())?;
        let verdict = match self.verdict {
            VerdictArg::Fraud => Verdict::Fraud,
            VerdictArg::Legitimate => Verdict::Legitimate,
        };
        let now = time::OffsetDateTime::now_utc();
        let (account, transactions) = match &self.case_id {
            Some(id) => {
                let published =
                    read_published(&config, self.decisions.as_deref(), self.output.append.as_deref(), None, false)?;
                let cases = weir::review::cases(published);
                let case = the_case(&cases, id)?;
                if let Some(r) = &case.resolution {
                    eprintln!(
                        "case {} was resolved {:?} by {}; this verdict replaces it",
                        &case.case_id[..8],
                        r.verdict,
                        shown(&r.analyst, 256)
                    );
                }
                (case.account_id.clone(), case.decisions.iter().map(|d| d.transaction_id.clone()).collect())
            }
            None => {
                let account = self.account.clone().unwrap_or_default();
                self.check_decided(&config, &account)?;
                (account, self.transactions.clone())
            }
        };
        let resolved = CaseResolved::new(
            &account,
            &transactions,
            verdict,
            self.pattern.as_deref(),
            &self.analyst,
            self.note.as_deref(),
            now,
        )
        .context("the disposition is not valid")?;
        let verdict = verdict.as_str();
        let what = format!(
            "verdict {verdict} on {} transaction(s) of {}",
            resolved.transaction_ids.len(),
            resolved.account_id
        );
        self.output.write(&config, |k| &k.topics.dispositions, &resolved.account_id, &resolved, &what)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Where the cases are read from.
#[derive(Args, Debug)]
pub struct CaseSource {
    /// Configuration file (TOML); with a `[kafka]` table the cases are read from the topics.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Embedded: the decisions weir wrote (decisions.jsonl).
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
    /// Embedded: the dispositions (`weir case resolve --append FILE`).
    #[arg(long, value_name = "FILE")]
    pub dispositions: Option<PathBuf>,
    /// Embedded: the input weir read, for the customers' confirmations
    /// ("it was me") of the cases' transactions and the analysts' unlocks.
    /// On Kafka the input topic is read for the confirmations.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}

impl CaseSource {
    fn cases(&self) -> anyhow::Result<Vec<Case>> {
        let config = Config::load(self.config.as_deref())?;
        read_cases(&config, self.decisions.as_deref(), self.dispositions.as_deref(), self.input.as_deref())
    }
}

/// The case `id` names (a case id or its first characters) among `cases`.
fn the_case<'a>(cases: &'a [Case], id: &str) -> anyhow::Result<&'a Case> {
    let found: Vec<&Case> = cases.iter().filter(|c| c.case_id.starts_with(id)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => anyhow::bail!("no case {} (see `weir case list --state all`)", shown(id, 80)),
        many => anyhow::bail!("{} cases start with {}; give more of the id", many.len(), shown(id, 80)),
    }
}

/// The cases, folded from the Kafka topics, or with `decisions` from the
/// embedded files (`dispositions`, if it exists).
fn read_cases(
    config: &Config,
    decisions: Option<&Path>,
    dispositions: Option<&Path>,
    input: Option<&Path>,
) -> anyhow::Result<Vec<Case>> {
    Ok(weir::review::cases(read_published(config, decisions, dispositions, input, true)?))
}

/// What the cases are folded from: the Kafka topics, or with `decisions`
/// the embedded files; the customers' confirmations only `with_confirmations`.
fn read_published(
    config: &Config,
    decisions: Option<&Path>,
    dispositions: Option<&Path>,
    input: Option<&Path>,
    with_confirmations: bool,
) -> anyhow::Result<Published> {
    if config.kafka.is_some() && decisions.is_none() {
        anyhow::ensure!(
            dispositions.is_none(),
            "dispositions from a file go with --decisions FILE; on Kafka the dispositions topic is read"
        );
        anyhow::ensure!(input.is_none(), "--input is for files; on Kafka the input topic is read");
    }
    let files = weir::review::Files {
        decisions: decisions.map(Path::to_owned),
        dispositions: dispositions.map(Path::to_owned),
        input: input.map(Path::to_owned),
    };
    Ok(weir::review::read_published(config.kafka.as_ref(), &files, with_confirmations)?)
}

/// Which cases to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Open,
    Fraud,
    Legitimate,
    All,
}

/// How to order the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    /// Oldest first.
    Age,
    /// Highest score first.
    Score,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: CaseSource,
    /// Which cases.
    #[arg(long, value_enum, default_value = "open")]
    pub state: StateArg,
    #[arg(long, value_enum, default_value = "age")]
    pub sort: SortArg,
    /// Print the cases as JSON (an array), in full.
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let mut cases: Vec<Case> = self
            .source
            .cases()?
            .into_iter()
            .filter(|c| match self.state {
                StateArg::All => true,
                StateArg::Open => c.state == CaseState::Open,
                StateArg::Fraud => c.state == CaseState::Fraud,
                StateArg::Legitimate => c.state == CaseState::Legitimate,
            })
            .collect();
        match self.sort {
            SortArg::Age => cases.sort_by(|a, b| a.opened_at.cmp(&b.opened_at).then(a.case_id.cmp(&b.case_id))),
            SortArg::Score => cases.sort_by(|a, b| b.max_score.cmp(&a.max_score).then(a.opened_at.cmp(&b.opened_at))),
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&cases)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{} case(s)", cases.len());
        if !cases.is_empty() {
            println!(
                "{:<10} {:<20} {:<10} {:<24} {:>9} {:>5} {:<6}  first rule",
                "case", "account", "state", "opened", "decisions", "score", "locked"
            );
        }
        for c in &cases {
            let state = c.state.as_str();
            let first = c.decisions.first().and_then(|d| d.fired.first()).map_or("", String::as_str);
            println!(
                "{:<10} {:<20} {:<10} {:<24} {:>9} {:>5} {:<6}  {}",
                &c.case_id[..8],
                shown(&c.account_id, 20),
                state,
                c.opened_at,
                c.decisions.len(),
                c.max_score,
                if c.locked { "yes" } else { "no" },
                shown(first, 60)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The case id (or its first characters, as `weir case list` shows), or an account id:
    /// that account's cases.
    pub case: String,
    #[command(flatten)]
    pub source: CaseSource,
    /// Print the case(s) as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ShowArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let found: Vec<Case> = self
            .source
            .cases()?
            .into_iter()
            .filter(|c| c.account_id == self.case || c.case_id.starts_with(&self.case))
            .collect();
        anyhow::ensure!(
            !found.is_empty(),
            "no case {} (a case id, its first characters, or an account id)",
            shown(&self.case, 80)
        );
        if self.json {
            println!("{}", serde_json::to_string_pretty(&found)?);
            return Ok(ExitCode::SUCCESS);
        }
        for c in &found {
            print_case(c);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_case(c: &Case) {
    println!("case {} — account {} — {:?}", c.case_id, shown(&c.account_id, 256), c.state);
    println!(
        "  opened {}, highest score {}, {}",
        c.opened_at,
        c.max_score,
        if c.locked { "account locked" } else { "not locked" }
    );
    println!("  decisions:");
    for d in &c.decisions {
        print_decision(d, "    ");
        for r in &d.rules {
            let evidence: Vec<String> =
                r.evidence.iter().map(|e| format!("{}={}", shown(&e.name, 64), shown(&e.value, 128))).collect();
            println!(
                "        {} {} {:?} {}: {} [{}]",
                shown(&r.rule_id, 64),
                shown(&r.rule_version, 32),
                r.mode,
                shown(&r.reason_code, 64),
                shown(&r.message, 256),
                evidence.join(", ")
            );
        }
    }
    if !c.recent.is_empty() {
        println!("  the account's decisions before:");
        for d in &c.recent {
            print_decision(d, "    ");
        }
    }
    for u in &c.unlocks {
        println!(
            "  unlocked (the lock by {}) by {} at {}: {}",
            shown(&u.transaction_id, 256),
            shown(&u.analyst, 256),
            u.at,
            shown(u.note.as_deref().unwrap_or(""), 512)
        );
    }
    for f in &c.confirmations {
        println!(
            "  the customer confirmed {} (at {}) at {}: \"it was me\"",
            shown(&f.transaction_id, 256),
            shown(&f.merchant_id, 256),
            f.at
        );
    }
    if let Some(r) = &c.resolution {
        println!(
            "  resolved {:?}{} by {} at {}: {}",
            r.verdict,
            r.pattern.as_deref().map(|p| format!(" ({})", shown(p, 64))).unwrap_or_default(),
            shown(&r.analyst, 256),
            r.at,
            shown(r.note.as_deref().unwrap_or(""), 512)
        );
    }
    println!();
}

fn print_decision(d: &weir::review::CaseDecision, indent: &str) {
    println!(
        "{indent}{} {} {} {} at {} score {}{}",
        d.occurred_at,
        shown(&d.transaction_id, 256),
        d.event_type.as_str(),
        weir::review::amount_text(d.amount.minor_units, &d.amount.currency),
        shown(&d.merchant_id, 256),
        d.score,
        d.reason.as_deref().map(|r| format!(" — {}", shown(r, 256))).unwrap_or_default()
    );
}

/// Appends `lines` to the JSON-lines file `path` ([`weir::review::append_lines`]);
/// `what` names them in the error.
pub(super) fn append_lines(path: &Path, lines: &[String], what: &str) -> anyhow::Result<()> {
    weir::review::append_lines(path, lines).with_context(|| format!("cannot append {what} to {}", path.display()))
}
