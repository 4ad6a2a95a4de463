//! `weir demo`: a synthetic stream through the shipped rules, embedded, with
//! the story of a few transactions told from their decisions.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use weir::config::Config;
use weir::demo::{self, Stream};
use weir::engine::{Engine, Evaluator, RuleSet};
use weir::events::DecisionEvent;
use weir::packages;
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};

use super::print::{print_summary, progress};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the input, decisions, dead letters, state and rule packages.
    #[arg(long, default_value = "weir-demo")]
    pub out: PathBuf,
    /// How many ordinary transactions to generate (the story's scenes come
    /// on top) [default: 20000, or 2000 a day with --days].
    #[arg(long)]
    pub transactions: Option<usize>,
    /// How many ordinary customer accounts.
    #[arg(long, default_value_t = 2_000)]
    pub accounts: usize,
    /// Seed of the generator: the same seed gives the same stream.
    #[arg(long, default_value_t = 1029)]
    pub seed: u64,
    /// Spread the stream over this many days of event time (default: 12
    /// hours), so that accounts have a history to judge a rule on: each
    /// customer returns to its favourite merchants, shops online from the
    /// same one to three devices (version 2 events with a device
    /// fingerprint), in a daily rhythm (quiet nights, quieter weekends).
    /// The story is played once, and about three labelled fraud incidents a
    /// day strike accounts with a history: account takeover and card
    /// testing from a new device, bursts, impossible travel. Backtest a
    /// rule over such a stream with `weir backtest --warm-up-until`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(demo::MAX_DAYS)))]
    pub days: Option<u32>,
}

impl DemoArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let out = &self.out;
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let paths = OutputPaths::in_dir(out);
        // A demo starts afresh: remove only the files an earlier demo wrote.
        for old in [&paths.decisions, &paths.dead_letters, &paths.state] {
            if old.exists() {
                std::fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
            }
        }
        let stream = match self.days {
            None => demo::generate(self.transactions.unwrap_or(20_000), self.accounts, self.seed),
            Some(days) => {
                let n = self.transactions.unwrap_or(2_000 * days as usize);
                demo::generate_days(n, self.accounts, days, self.seed)
            }
        };
        let input_path = write_inputs(out, &stream)?;

        let engine = Engine::new()?;
        let loaded = packages::load_shipped(&engine)?;
        let set = RuleSet::new(loaded)?;
        let mut evaluator = Evaluator::new(&set, Config::default().policy);
        let opts = PipelineOptions { input_name: "transactions.jsonl".to_owned(), ..PipelineOptions::default() };
        let reader = File::open(&input_path)?;
        let bar = progress(stream.lines.len() as u64);
        let summary = run_embedded(reader, &mut evaluator, &paths, &opts, |s| bar.set_position(s.records))?;
        bar.finish_and_clear();

        let span = self.days.map(|d| format!(" over {d} days of event time")).unwrap_or_default();
        println!(
            "weir demo: {} transactions{span} through {} shipped rules, embedded (no broker)\n",
            summary.records,
            set.rules().len()
        );
        print_summary(&summary, &set);
        print_story(&stream, &read_decisions(&paths.decisions)?);
        print_written(out);
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes the generated input, its labels and the shipped rule packages to
/// `out`; returns the input's path.
fn write_inputs(out: &Path, stream: &Stream) -> anyhow::Result<PathBuf> {
    let input_path = out.join("transactions.jsonl");
    let mut input = std::io::BufWriter::new(
        File::create(&input_path).with_context(|| format!("cannot write {}", input_path.display()))?,
    );
    for line in &stream.lines {
        writeln!(input, "{line}")?;
    }
    input.flush()?;
    drop(input);
    let labels_path = out.join("labels.csv");
    let mut labels = String::from("transaction_id,label\n");
    for (tx_id, label) in &stream.labels {
        labels.push_str(&format!("{tx_id},{label}\n"));
    }
    std::fs::write(&labels_path, labels).with_context(|| format!("cannot write {}", labels_path.display()))?;
    let rules_dir = out.join("rules");
    packages::export_shipped(&rules_dir).with_context(|| format!("cannot write {}", rules_dir.display()))?;
    Ok(input_path)
}

/// The demo's decisions by transaction id.
fn read_decisions(path: &Path) -> anyhow::Result<HashMap<String, DecisionEvent>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut map = HashMap::new();
    for line in BufReader::new(file).lines() {
        let d: DecisionEvent = serde_json::from_str(&line?)?;
        map.insert(d.transaction_id.clone(), d);
    }
    Ok(map)
}

/// Each scene of the story and what weir decided.
fn print_story(stream: &Stream, decided: &HashMap<String, DecisionEvent>) {
    println!("\nThe story");
    for (scene, tx_id) in &stream.story {
        match decided.get(tx_id.as_str()) {
            Some(d) => {
                let why = d.reason.as_deref().map(|r| format!("\n      {r}")).unwrap_or_default();
                // Points that did not make the decision are still shown.
                let scored = d
                    .rules
                    .iter()
                    .filter(|r| d.reason.is_none() && r.score > 0)
                    .map(|r| {
                        format!("\n      {}: {} (+{} points, score {})", r.rule_id, r.reason_code, r.score, d.score)
                    })
                    .collect::<String>();
                println!("  {scene}\n    → {}{why}{scored}", d.event_type.as_str());
            }
            None => println!("  {scene}\n    → no decision found (this is a bug)"),
        }
    }
}

/// What the demo wrote, and what to try next.
fn print_written(out: &Path) {
    println!("\nWritten to {}:", out.display());
    println!("  transactions.jsonl   the generated input");
    println!("  labels.csv           what each transaction really was (for `weir backtest --labels`)");
    println!("  decisions.jsonl      one decision per transaction, with every rule's verdict");
    println!("  dead-letters.jsonl   malformed records, with the reason");
    println!("  state.redb           per-account rule state (embedded store)");
    println!("  rules/               the shipped rule packages (manifest, component, self-test cases)");
    println!(
        "\nNext: copy {0}/rules, edit a manifest in the copy, and see what it would change with\n  \
         weir backtest --baseline {0}/rules --candidate COPY --input {0}/transactions.jsonl --labels {0}/labels.csv\n\
         or run it with\n  weir run --rules {0}/rules --input {0}/transactions.jsonl --output {0}/rerun\n\
         While it runs, a changed package goes live between two batches (see `weir rule deploy --help`).",
        out.display()
    );
}
