//! The `weir` subcommands: arguments and what each prints.
//!
//! The binary (`main.rs`) only parses and dispatches; the work is in the
//! library modules, and this module turns it into terminal output.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cases::{CaseFile, describe, run_cases};
use crate::config::Config;
use crate::engine::{Engine, Evaluator, LoadedRule, RuleSet};
use crate::events::{DecisionEvent, DecisionType};
use crate::live::LiveRules;
use crate::manifest::RuleSpec;
use crate::packages::Deployed;
use crate::pipeline::{OutputPaths, PipelineOptions, Summary, run_embedded};
use crate::telemetry::{Hooks, Metrics};
use crate::{demo, packages, scaffold};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the input, decisions, dead letters, state and rule packages.
    #[arg(long, default_value = "weir-demo")]
    pub out: PathBuf,
    /// How many ordinary transactions to generate (the story's scenes come on top).
    #[arg(long, default_value_t = 20_000)]
    pub transactions: usize,
    /// How many ordinary customer accounts.
    #[arg(long, default_value_t = 2_000)]
    pub accounts: usize,
    /// Seed of the generator: the same seed gives the same stream.
    #[arg(long, default_value_t = 1029)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML); see `weir.example.toml`. WEIR_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// JSON-lines input: a file, or `-` for stdin.
    #[arg(long, short, default_value = "-")]
    pub input: String,
    /// Directory of rule packages (overrides `rules.dir`).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Output directory (overrides `embedded.output`).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Records per atomic batch (overrides `embedded.batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The rule's name and id: lowercase letters, digits and dashes.
    pub name: String,
    /// The directory to create the rule crate in.
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// Depend on the weir SDK at this path instead of a copy inside the
    /// crate (for work on the SDK itself). By default the crate gets its own
    /// copy (`weir-sdk/`) of the SDK this weir was built with, so it builds
    /// anywhere, without weir's source tree.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The rule component (.wasm).
    pub module: PathBuf,
    /// The sandbox cases (TOML).
    pub cases: PathBuf,
    /// The rule's manifest. Default: the package manifest next to the module
    /// (`<id>.toml`), else `rule.toml` next to the cases.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

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
    #[command(flatten)]
    pub report: ReportArgs,
    /// Configuration file (policy, baseline directory, Kafka, trusted keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// What a comparison is judged against and where it is written.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Labels: `transaction_id,label` lines (or JSON lines); a label is
    /// `legit` or `fraud` (or a fraud pattern's name). Adds precision,
    /// recall and false-positive rate per rule and for the decision.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Write the comparison as JSON here (reproducible: the same input and
    /// rules give the same bytes).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Runs a candidate rules directory over historical transactions next to a
/// baseline, read-only, and reports what changes.
pub fn backtest(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let baseline_dir = args.baseline.clone().unwrap_or_else(|| config.rules.dir.clone());
    let load = |dir: &Path, what: &str| -> anyhow::Result<crate::engine::RuleSet> {
        let live = LiveRules::load(dir, config.rules.validator()?)
            .with_context(|| format!("the {what} rules in {}", dir.display()))?;
        for r in live.refused() {
            eprintln!("{what}: refused {}: {}", r.path.display(), r.reason);
        }
        Ok(live.current().set.clone())
    };
    let baseline = load(&baseline_dir, "baseline")?;
    let candidate = load(&args.candidate, "candidate")?;
    let labels = read_labels(args.report.labels.as_deref())?;
    let started = std::time::Instant::now();
    let records: Vec<Vec<u8>> = match (&args.input, &args.topic) {
        (Some(input), None) => {
            let reader: Box<dyn BufRead> = if input == "-" {
                Box::new(BufReader::new(std::io::stdin()))
            } else {
                Box::new(BufReader::new(File::open(input).with_context(|| format!("cannot open {input}"))?))
            };
            let mut records = Vec::new();
            for line in reader.split(b'\n') {
                records.push(line.with_context(|| format!("reading {input}"))?);
            }
            records
        }
        (None, Some(topic)) => {
            let Some(kafka) = &config.kafka else {
                bail!("--topic needs brokers: a `[kafka]` table in the config, or WEIR_KAFKA_BOOTSTRAP");
            };
            let time = |flag: &str, text: &Option<String>| rfc3339_ms(flag, text.as_deref());
            use crate::kafka::Bound;
            let from = match (args.from_offset, time("--from-time", &args.from_time)?) {
                (Some(o), _) => Bound::Offset(o),
                (None, Some(t)) => Bound::Time(t),
                (None, None) => Bound::Edge,
            };
            let to = match (args.to_offset, time("--to-time", &args.to_time)?) {
                (Some(o), _) => Bound::Offset(o),
                (None, Some(t)) => Bound::Time(t),
                (None, None) => Bound::Edge,
            };
            crate::kafka::read_range(kafka, topic, from, to)?
        }
        _ => bail!("give the history with --input FILE or --topic TOPIC"),
    };
    let read = started.elapsed();
    let outcome = crate::backtest::run(
        &records,
        crate::backtest::RulesUnder { dir: &baseline_dir, rules: &baseline },
        crate::backtest::RulesUnder { dir: &args.candidate, rules: &candidate },
        &config.policy,
        labels.as_ref(),
    );
    let took = started.elapsed() - read;
    print!("{}", crate::backtest::render_text(&outcome));
    let transactions = outcome.report.input.decided();
    println!(
        "
{transactions} transactions decided by both rule sets in {:.2} s ({:.0} transactions/s; reading took {:.2} s)",
        took.as_secs_f64(),
        transactions as f64 / took.as_secs_f64().max(1e-9),
        read.as_secs_f64()
    );
    write_reports(&outcome, &args.report)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ShadowReportArgs {
    /// Decisions weir published (decisions.jsonl of an embedded run, or the
    /// decision topics exported as JSON lines).
    #[arg(long)]
    pub decisions: PathBuf,
    /// Only decisions of transactions at or after this event time (RFC 3339).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Only decisions of transactions before this event time (RFC 3339).
    #[arg(long)]
    pub to_time: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Configuration file: the `[policy]` weir decided with.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

fn rfc3339_ms(flag: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    text.map(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|e| anyhow::anyhow!("{flag} {t:?}: not an RFC 3339 time: {e}"))
    })
    .transpose()
}

fn read_labels(path: Option<&Path>) -> anyhow::Result<Option<crate::backtest::Labels>> {
    path.map(|path| {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        crate::backtest::Labels::parse(&text, path)
    })
    .transpose()
}

fn write_reports(outcome: &crate::backtest::Outcome, args: &ReportArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&outcome.report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        println!("JSON: {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, crate::backtest::render_html(outcome))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("HTML report: {}", path.display());
    }
    Ok(())
}

/// What the shadow rules in published decisions would have changed had
/// they been enforced.
pub fn shadow_report(args: &ShadowReportArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let labels = read_labels(args.report.labels.as_deref())?;
    let range =
        (rfc3339_ms("--from-time", args.from_time.as_deref())?, rfc3339_ms("--to-time", args.to_time.as_deref())?);
    let path = &args.decisions;
    let reader = BufReader::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?);
    let mut decisions = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let d: crate::events::DecisionEvent = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a weir decision", path.display(), n + 1))?;
        decisions.push(d);
    }
    let source = path.display().to_string();
    let outcome = crate::backtest::shadow(decisions, &source, &config.policy, labels.as_ref(), range);
    print!("{}", crate::backtest::render_text(&outcome));
    write_reports(&outcome, &args.report)?;
    Ok(ExitCode::SUCCESS)
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let paths = OutputPaths::in_dir(out);
    // A demo starts afresh: remove only the files an earlier demo wrote.
    for old in [&paths.decisions, &paths.dead_letters, &paths.state] {
        if old.exists() {
            std::fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
        }
    }
    let stream = demo::generate(args.transactions, args.accounts, args.seed);
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

    let engine = Engine::new()?;
    let loaded = packages::load_shipped(&engine).map_err(anyhow::Error::msg)?;
    let set = RuleSet::new(loaded)?;
    let mut evaluator = Evaluator::new(&set, Config::default().policy);
    let opts = PipelineOptions { input_name: "transactions.jsonl".to_owned(), ..PipelineOptions::default() };
    let reader = File::open(&input_path)?;
    let bar = progress(stream.lines.len() as u64);
    let summary = run_embedded(reader, &mut evaluator, &paths, &opts, |s| bar.set_position(s.records))?;
    bar.finish_and_clear();

    println!(
        "weir demo: {} transactions through {} shipped rules, embedded (no broker)\n",
        summary.records,
        set.rules().len()
    );
    print_summary(&summary, &set);
    let decided = read_decisions(&paths.decisions)?;
    println!("\nThe story");
    for (scene, tx_id) in &stream.story {
        match decided.get(tx_id.as_str()) {
            Some(d) => {
                let why = d.reason.as_deref().map(|r| format!("\n      {r}")).unwrap_or_default();
                println!("  {scene}\n    → {}{why}", d.event_type.as_str());
            }
            None => println!("  {scene}\n    → no decision found (this is a bug)"),
        }
    }
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
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.rules {
        config.rules.dir = dir.clone();
    }
    if let Some(out) = &args.output {
        config.embedded.output = out.clone();
    }
    if let Some(n) = args.batch_size {
        config.embedded.batch_size = n;
    }
    config.validate()?;
    let live = LiveRules::start(&config.rules.dir, config.rules.validator()?)?;
    for r in live.refused() {
        eprintln!("refused {}: {}", r.path.display(), r.reason);
    }
    let mut evaluator = Evaluator::new(&live.current().set, config.policy.clone());
    // Hot deploy: the watch lasts until the run ends.
    let _watch = if config.rules.watch { Some(live.watch()?) } else { None };
    let metrics = Arc::new(Metrics::default());
    if let Some(listen) = &config.status.listen {
        crate::http::serve(listen, Some(live.clone()), metrics.clone())?;
    }
    let hooks = Hooks { live: config.rules.watch.then(|| live.clone()), metrics: Some(metrics) };
    if let Some(kafka) = &config.kafka {
        if args.input != "-" || args.output.is_some() {
            bail!("--input and --output are for the embedded pipeline; on Kafka weir reads `{}`", kafka.topics.input);
        }
        return run_kafka(kafka, &config.policy, &live, &hooks);
    }
    let paths = OutputPaths::in_dir(&config.embedded.output);
    let mut opts = PipelineOptions {
        batch_size: config.embedded.batch_size,
        max_event_bytes: config.embedded.max_event_bytes,
        hooks,
        ..PipelineOptions::default()
    };
    let summary = if args.input == "-" {
        run_embedded(std::io::stdin(), &mut evaluator, &paths, &opts, |_| {})?
    } else {
        let path = Path::new(&args.input);
        let file = File::open(path).with_context(|| format!("cannot open the input {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        opts.input_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bar = progress(size);
        let counted = CountingReader { inner: file, bar: bar.clone() };
        let summary = run_embedded(counted, &mut evaluator, &paths, &opts, |_| {})?;
        bar.finish_and_clear();
        summary
    };
    print_summary(&summary, &live.current().set);
    println!("\nDecisions: {}\nDead letters: {}", paths.decisions.display(), paths.dead_letters.display());
    Ok(ExitCode::SUCCESS)
}

fn run_kafka(
    kafka: &crate::kafka::KafkaConfig,
    policy: &crate::engine::Policy,
    live: &LiveRules,
    hooks: &Hooks,
) -> anyhow::Result<ExitCode> {
    // The first SIGTERM or Ctrl-C finishes the open batch and leaves the
    // group; a second one exits at once.
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&shutdown))?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown))?;
    }
    let rules = live.current().set.clone();
    eprintln!(
        "weir: {} rules, consuming {} as {} in group {} with {} decide workers (Ctrl-C to stop)",
        rules.rules().len(),
        kafka.topics.input,
        kafka.transactional_id(),
        kafka.group_id,
        kafka.workers()
    );
    let summary = match crate::kafka::run(kafka, &rules, policy, &shutdown, hooks) {
        Err(crate::kafka::KafkaRunError::Stopped(waiting)) => {
            println!("Stopped as asked, while {waiting}: the broker did not answer; nothing was committed meanwhile.");
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    print_counters(&summary.counters);
    println!(
        "Transactions: {} committed, {} aborted and retried",
        summary.transactions_committed, summary.transactions_aborted
    );
    Ok(ExitCode::SUCCESS)
}

/// Counts bytes read for the progress bar.
struct CountingReader {
    inner: File,
    bar: ProgressBar,
}

impl std::io::Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What became of the records: the same for both pipelines.
fn print_counters(c: &crate::record::Counters) {
    println!("Decisions");
    for t in DecisionType::ALL {
        println!("  {:<22} {:>9}", t.as_str(), c.decisions.get(&t).copied().unwrap_or(0));
    }
    println!("  {:<22} {:>9}   (malformed input, written with the reason)", "dead-lettered", c.dead_letters);
    if c.duplicates > 0 {
        println!("  {:<22} {:>9}   (already decided; skipped)", "duplicates", c.duplicates);
    }
    if c.confirmations > 0 {
        println!("  {:<22} {:>9}   (customer confirmations; no decision)", "confirmations", c.confirmations);
    }
}

fn print_summary(summary: &Summary, set: &RuleSet) {
    print_counters(&summary.counters);
    println!(
        "\n  {:<16} {:<8} {:<8} {:>11} {:>7} {:>7} {:>9}",
        "rule", "version", "mode", "invocations", "hits", "errors", "avg fuel"
    );
    let versions: HashMap<&str, &LoadedRule> = set.rules().iter().map(|r| (r.spec.id.as_str(), &**r)).collect();
    for (id, s) in &summary.rules {
        let rule = versions.get(id.as_str());
        println!(
            "  {:<16} {:<8} {:<8} {:>11} {:>7} {:>7} {:>9}",
            id,
            rule.map(|r| r.spec.version_label.as_str()).unwrap_or("?"),
            rule.map(|r| r.spec.mode.to_string()).unwrap_or_default(),
            s.invocations,
            s.hits,
            s.errors,
            s.fuel.checked_div(s.invocations).unwrap_or(0)
        );
        if s.quarantined {
            println!(
                "  {:<16} quarantined: failed {} evaluations in a row; skipped until a new version is deployed",
                "",
                crate::engine::QUARANTINE_AFTER
            );
        }
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "\nThroughput: {:.0} records/s ({} records in {:.2} s, rules in wasm, batches committed durably; reading, deciding and committing overlap)",
        summary.records as f64 / secs.max(1e-9),
        summary.records,
        secs
    );
}

fn read_decisions(path: &Path) -> anyhow::Result<HashMap<String, DecisionEvent>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut map = HashMap::new();
    for line in BufReader::new(file).lines() {
        let d: DecisionEvent = serde_json::from_str(&line?)?;
        map.insert(d.transaction_id.clone(), d);
    }
    Ok(map)
}

pub fn rule_new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let dir = scaffold::new_rule(&args.path, &args.name, args.sdk.as_deref())?;
    println!("Created the rule crate {}", dir.display());
    if args.sdk.is_none() {
        println!("  with its own copy of the weir SDK {} in {}/", env!("CARGO_PKG_VERSION"), scaffold::SDK_DIR);
    }
    println!("\nNext:");
    println!("  cd {}", dir.display());
    println!("  cargo test                      # the rule's unit tests, natively");
    println!("  weir rule build                 # → target/weir/{0}.toml + {0}.wasm + {0}.cases.toml", args.name);
    println!("  weir rule test target/weir/{}.wasm cases.toml   # the cases, in the sandbox", args.name);
    println!("  weir rule deploy target/weir --rules RULES_DIR --mode shadow   # live, without a restart");
    Ok(ExitCode::SUCCESS)
}

pub fn rule_build(dir: &Path) -> anyhow::Result<ExitCode> {
    let package = scaffold::build_rule(dir)?;
    println!("Built the rule package {}", package.display());
    Ok(ExitCode::SUCCESS)
}

pub fn rule_test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = match &args.manifest {
        Some(p) => p.clone(),
        None => find_manifest(&args.module, &args.cases)?,
    };
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read the manifest {}", manifest_path.display()))?;
    let spec = RuleSpec::parse(&manifest_text).with_context(|| format!("rule manifest {}", manifest_path.display()))?;
    let component =
        std::fs::read(&args.module).with_context(|| format!("cannot read the component {}", args.module.display()))?;
    let cases_text =
        std::fs::read_to_string(&args.cases).with_context(|| format!("cannot read {}", args.cases.display()))?;
    let file: CaseFile =
        toml::from_str(&cases_text).with_context(|| format!("sandbox cases {}", args.cases.display()))?;
    if file.cases.is_empty() {
        bail!("{} has no [[case]]", args.cases.display());
    }
    let engine = Engine::new()?;
    let reports = run_cases(&engine, &component, &manifest_text, &spec, &file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.module.display()))?;
    println!("{} {} ({} cases, in the sandbox)", spec.id, spec.version_label, reports.len());
    let mut failed = 0;
    for r in &reports {
        match &r.failure {
            None => println!("  ok    {} — {}", r.name, describe(&r.result)),
            Some(why) => {
                failed += 1;
                println!("  FAIL  {} — {why}", r.name);
            }
        }
    }
    println!("{} passed, {} failed", reports.len() - failed, failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn find_manifest(module: &Path, cases: &Path) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let (Some(dir), Some(stem)) = (module.parent(), module.file_stem().and_then(|s| s.to_str())) {
        candidates.push(dir.join(format!("{stem}.toml")));
        candidates.push(dir.join(format!("{}.toml", stem.replace('_', "-"))));
    }
    if let Some(dir) = cases.parent() {
        candidates.push(dir.join("rule.toml"));
    }
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        format!("no manifest found next to {} or {}; pass --manifest", module.display(), cases.display())
    })
}

pub fn rules_check(dir: &Path, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(config)?;
    config.rules.dir = dir.to_owned();
    // The same loader as a running weir's: what it would run, what it would refuse.
    let live = LiveRules::load(dir, config.rules.validator()?)?;
    let generation = live.current();
    for r in generation.set.rules() {
        println!("  loaded   {:<16} {:<8} {:<8} {}", r.spec.id, r.spec.version_label, r.spec.mode.to_string(), r.hash);
    }
    let refused = live.refused();
    for r in &refused {
        println!("  REFUSED  {}: {}", r.path.display(), r.reason);
    }
    println!("{} loaded, {} refused", generation.set.rules().len(), refused.len());
    Ok(if refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The package: its manifest (`target/weir/<id>.toml` after `weir rule
    /// build`), or a directory holding exactly one package.
    pub package: PathBuf,
    /// The rules directory a running weir watches (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Deploy with this mode instead of the manifest's: `shadow` to try a
    /// rule on live traffic, `enforce` to promote it.
    #[arg(long, value_parser = ["shadow", "enforce"])]
    pub mode: Option<String>,
    /// Configuration file (for the rules directory, compile cache and trusted keys).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Validates a package like a running weir would, then installs it into the
/// rules directory atomically (the running weir picks it up).
pub fn rule_deploy(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    let dir = args.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
    // The compile cache is the directory's: a deploy compiles the package
    // into it, so the running weir swaps without compiling.
    config.rules.dir = dir.clone();
    let mode = args.mode.as_deref().map(str::parse).transpose().map_err(anyhow::Error::msg)?;
    let (deployed, signature_dropped) = packages::deploy(&args.package, &dir, mode, &config.rules.validator()?)?;
    if signature_dropped {
        eprintln!(
            "note: the signature was made for the manifest as it was; with --mode the package needs signing again"
        );
    }
    match deployed {
        Deployed::Already { spec, hash } => {
            println!("{} {} ({hash}) is already deployed in {}", spec.id, spec.version_label, dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        Deployed::Installed { spec, hash, manifest, replaced } => {
            let replacing =
                replaced.map(|p| format!(", replacing {} ({})", p.spec.version_label, p.hash)).unwrap_or_default();
            println!(
                "Deployed {} {} ({}, {hash}) to {}{replacing}.",
                spec.id,
                spec.version_label,
                spec.mode,
                manifest.display()
            );
            println!(
                "A running weir watching {} swaps to it between two batches; `weir rule rollback {}` undoes it.",
                dir.display(),
                spec.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct RetireArgs {
    /// The rule id.
    pub id: String,
    /// The rules directory (default: `rules.dir` of the config).
    #[arg(long, short)]
    pub rules: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Redeploys the version that ran before the current one.
pub fn rule_rollback(args: &RetireArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    let dir = args.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
    config.rules.dir = dir.clone();
    let done = packages::rollback(&dir, &args.id, &config.rules.validator()?)?;
    println!(
        "Rolled back {} to {} ({}){}.",
        args.id,
        done.to.spec.version_label,
        done.to.hash,
        done.replaced.map(|c| format!(", replacing {} ({})", c.spec.version_label, c.hash)).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes a rule's package: a running weir retires the rule.
pub fn rule_retire(args: &RetireArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let dir = args.rules.clone().unwrap_or_else(|| config.rules.dir.clone());
    let retired = packages::retire(&dir, &args.id)?;
    println!(
        "Retired {} {} ({}); `weir rule rollback {}` brings it back.",
        args.id, retired.spec.version_label, retired.hash, args.id
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The package manifest to sign (the signature covers it and its component).
    pub manifest: PathBuf,
    /// The secret key file written by `weir rule keygen`.
    #[arg(long, short)]
    pub key: PathBuf,
}

pub fn rule_sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let (package, path) = packages::sign_package(&args.manifest, &args.key)?;
    println!("Signed {} {} ({}) → {}", package.spec.id, package.spec.version_label, package.hash, path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn rule_keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let public = packages::write_key_pair(out)?;
    println!(
        "Secret key written to {} (keep it private; sign with `weir rule sign MANIFEST --key {}`).",
        out.display(),
        out.display()
    );
    println!("Public key, for `rules.trusted_keys`:\n  {public}");
    Ok(ExitCode::SUCCESS)
}
