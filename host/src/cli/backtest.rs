//! `weir backtest`: a candidate rules directory next to a baseline over
//! historical transactions, read-only, and what changes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use weir::backtest::{History, RulesUnder, render_text};
use weir::config::Config;
use weir::engine::RuleSet;
use weir::kafka::Bound;
use weir::live::LiveRules;

use super::report::{ReportArgs, time_flag};

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// The candidate rules directory: what would it have decided?
    #[arg(long)]
    pub candidate: PathBuf,
    /// The baseline rules directory to compare with (default: `rules.dir`
    /// of the config, the rules that ran).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Historical TransactionRecorded events, JSON lines (a file, or `-` for stdin).
    #[arg(long, short, conflicts_with = "topic")]
    pub input: Option<String>,
    /// Read the history from this Kafka topic instead (brokers from the
    /// config's `[kafka]` table or WEIR_KAFKA_BOOTSTRAP); nothing is committed.
    #[arg(long)]
    pub topic: Option<String>,
    /// With --topic: start at this offset on every partition (default: the beginning).
    #[arg(long, requires = "topic", conflicts_with = "from_time")]
    pub from_offset: Option<i64>,
    /// With --topic: stop before this offset on every partition (default: the current end).
    #[arg(long, requires = "topic", conflicts_with = "to_time")]
    pub to_offset: Option<i64>,
    /// With --topic: start at the first record at or after this time (RFC 3339).
    #[arg(long, requires = "topic")]
    pub from_time: Option<String>,
    /// With --topic: stop at the first record at or after this time (RFC 3339).
    #[arg(long, requires = "topic")]
    pub to_time: Option<String>,
    /// Warm up the accounts' state first: transactions with event time
    /// before this time (RFC 3339, e.g. 2026-12-12T00:00:00Z) are decided by
    /// the baseline and the candidate only to build each account's state —
    /// windows, known devices and countries, locks — and are neither counted
    /// nor compared; the report measures from this time on and its first
    /// lines say how many came before. A rule that depends on an account's
    /// history (a 30-day window, a device or country never seen) is then
    /// judged on accounts with one, not from a cold start. Works with
    /// --input and --topic alike (event time, not the records' Kafka
    /// timestamps); an error if no transaction falls at or after it.
    #[arg(long, value_name = "TIME")]
    pub warm_up_until: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Compare even when packages of the candidate or the baseline are
    /// refused (they are left out, and the report's first line says so).
    /// Without it, a refused package stops the backtest: a rule that does
    /// not load would otherwise count as a rule that changes nothing.
    #[arg(long)]
    pub allow_refused: bool,
    /// Configuration file (policy, baseline directory, Kafka, trusted keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The runtime lists both sides read: a lists file (`weir list export`
    /// writes one). Without it every list is empty.
    #[arg(long, value_name = "FILE")]
    pub lists: Option<PathBuf>,
}

impl BacktestArgs {
    /// Runs the candidate over the history next to the baseline and
    /// reports what changes.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        let baseline_dir = self.baseline.clone().unwrap_or_else(|| config.rules.dir.clone());
        let (baseline, mut refused) = load_rules(&config, &baseline_dir, "baseline")?;
        let (candidate, refused_candidates) = load_rules(&config, &self.candidate, "candidate")?;
        refused.extend(refused_candidates);
        if !refused.is_empty() && !self.allow_refused {
            bail!(
                "{} refused (reasons above), so the backtest would leave them out; fix them, or pass --allow-refused to compare without them",
                refused.join(", ")
            );
        }
        let warm_up_until = time_flag("--warm-up-until", self.warm_up_until.as_deref())?;
        let labels = self.report.labels(&config)?;
        let started = Instant::now();
        let records = self.history(&config)?.read()?;
        let read = started.elapsed();
        let lists = lists_snapshot(&config, self.lists.as_deref())?;
        let baseline = RulesUnder { dir: &baseline_dir, rules: &baseline, lists: lists.clone() };
        let candidate = RulesUnder { dir: &self.candidate, rules: &candidate, lists };
        let outcome = match warm_up_until {
            None => weir::backtest::run(&records, baseline, candidate, &config.policy, labels.as_ref()),
            Some(until) => {
                weir::backtest::run_warmed_up(&records, baseline, candidate, &config.policy, labels.as_ref(), until)?
            }
        };
        let took = started.elapsed() - read;
        if !refused.is_empty() {
            println!("WARNING: compared without {} refused package(s): {}", refused.len(), refused.join(", "));
        }
        print!("{}", render_text(&outcome));
        let transactions =
            outcome.report.input.decided() + outcome.report.warm_up.as_ref().map_or(0, |w| w.transactions);
        println!(
            "\n{transactions} transactions decided by both rule sets in {:.2} s ({:.0} transactions/s; reading took {:.2} s)",
            took.as_secs_f64(),
            transactions as f64 / took.as_secs_f64().max(1e-9),
            read.as_secs_f64()
        );
        self.report.write(&outcome)?;
        Ok(ExitCode::SUCCESS)
    }

    /// Where the history comes from: --input, or --topic and its range.
    fn history<'a>(&'a self, config: &'a Config) -> anyhow::Result<History<'a>> {
        Ok(match (&self.input, &self.topic) {
            (Some(input), None) if input == "-" => History::Stdin,
            (Some(input), None) => History::File(Path::new(input)),
            (None, Some(topic)) => {
                let Some(kafka) = &config.kafka else {
                    bail!("--topic needs brokers: a `[kafka]` table in the config, or WEIR_KAFKA_BOOTSTRAP");
                };
                let from = bound(self.from_offset, time_flag("--from-time", self.from_time.as_deref())?);
                let to = bound(self.to_offset, time_flag("--to-time", self.to_time.as_deref())?);
                History::Topic { kafka, topic, from, to }
            }
            _ => bail!("give the history with --input FILE or --topic TOPIC"),
        })
    }
}

/// The runtime lists of a lists file, as they are now (`--lists` of the
/// commands that run rules over history); none without one.
pub(super) fn lists_snapshot(
    config: &Config,
    path: Option<&Path>,
) -> anyhow::Result<Option<std::sync::Arc<weir::lists::ListSet>>> {
    let Some(path) = path else { return Ok(None) };
    let lists = weir::lists::follow_file(path.to_owned(), config.lists.limits(), false)
        .with_context(|| format!("cannot read the lists file {}", path.display()))?;
    Ok(Some(lists.current()))
}

/// The rules in `dir`, as a running weir would load them, and the refused
/// packages (`candidate x.toml`), named with their reasons on stderr.
fn load_rules(config: &Config, dir: &Path, what: &str) -> anyhow::Result<(RuleSet, Vec<String>)> {
    let live = LiveRules::load(dir, config.rules.validator()?)
        .with_context(|| format!("the {what} rules in {}", dir.display()))?;
    let mut refused = Vec::new();
    for r in live.refused() {
        eprintln!("{what}: refused {}: {}", r.path.display(), r.reason);
        let name = r.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        refused.push(format!("{what} {name}"));
    }
    if let Some(set) = live.status().set_refused {
        bail!("the {what} rules in {} are not run: {}", dir.display(), set.reason);
    }
    Ok((live.current().set.clone(), refused))
}

/// A range's bound from its options: the offset if given, else the time,
/// else the partition's edge.
fn bound(offset: Option<i64>, time_ms: Option<i64>) -> Bound {
    match (offset, time_ms) {
        (Some(o), _) => Bound::Offset(o),
        (None, Some(t)) => Bound::Time(t),
        (None, None) => Bound::Edge,
    }
}
