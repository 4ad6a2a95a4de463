//! `weir run`: the pipeline — embedded over a file or stdin, or on Kafka
//! when the config has a `[kafka]` table — with hot deploy and the status
//! endpoint, and the summary printed at the end.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use clap::Args;
use weir::config::Config;
use weir::engine::{Evaluator, Policy};
use weir::kafka::{KafkaConfig, KafkaRunError};
use weir::lists::LiveLists;
use weir::live::LiveRules;
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};
use weir::telemetry::{Hooks, Metrics};

use super::print::{CountingReader, print_counters, print_refused, print_summary, progress};

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
    /// Embedded: the runtime lists, a JSON-lines file of list changes that
    /// `weir list add --append` writes, followed while weir runs (overrides
    /// `lists.file`). On Kafka the lists come from `kafka.topics.lists`.
    #[arg(long, value_name = "FILE")]
    pub lists: Option<PathBuf>,
}

impl RunArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let config = self.config()?;
        // On Kafka, SIGTERM is answered from the start: one that arrives
        // while the rules load stops weir cleanly once it has joined.
        let shutdown = Arc::new(AtomicBool::new(false));
        if config.kafka.is_some() {
            // The first SIGTERM or Ctrl-C finishes the open batch and leaves
            // the group; a second one exits at once.
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&shutdown))?;
                signal_hook::flag::register(signal, Arc::clone(&shutdown))?;
            }
        }
        let mut validator = config.rules.validator()?;
        if let Some(kafka) = &config.kafka {
            validator = validator.only_entity_kinds(kafka.entity_kinds());
        }
        let live = LiveRules::start(&config.rules.dir, validator)?;
        for r in live.refused() {
            eprintln!("refused {}: {}", r.path.display(), r.reason);
        }
        let mut evaluator = Evaluator::new(&live.current().set, config.policy.clone());
        // Hot deploy: the watch lasts until the run ends.
        let _watch = if config.rules.watch { Some(live.watch()?) } else { None };
        let metrics = Arc::new(Metrics::default());
        let lists = match (&config.kafka, &config.lists.file) {
            // Read by the Kafka pipeline before it decides anything.
            (Some(kafka), _) => Some(LiveLists::new(format!("kafka:{}", kafka.topics.lists), config.lists.limits())),
            (None, Some(file)) => Some(
                weir::lists::follow_file(file.clone(), config.lists.limits(), true)
                    .with_context(|| format!("cannot read the lists file {}", file.display()))?,
            ),
            (None, None) => None,
        };
        if let Some(listen) = &config.status.listen {
            let token = config.status.token_file.as_deref();
            weir::http::serve(listen, token, Some(live.clone()), lists.clone(), metrics.clone())?;
        }
        let hooks = Hooks { live: config.rules.watch.then(|| live.clone()), metrics: Some(metrics), lists };
        if let Some(kafka) = &config.kafka {
            if self.input != "-" || self.output.is_some() {
                bail!(
                    "--input and --output are for the embedded pipeline; on Kafka weir reads `{}`",
                    kafka.topics.input
                );
            }
            return run_kafka(kafka, &config.policy, &live, &hooks, &shutdown);
        }
        let paths = OutputPaths::in_dir(&config.embedded.output);
        let mut opts = PipelineOptions {
            batch_size: config.embedded.batch_size,
            max_event_bytes: config.embedded.max_event_bytes,
            hooks,
            entity_max_waiting: config.embedded.entity_max_waiting,
            // Standard input may be a live stream; a file is read through.
            live: self.input == "-",
            ..PipelineOptions::default()
        };
        let summary = if self.input == "-" {
            run_embedded(std::io::stdin(), &mut evaluator, &paths, &opts, |_| {})?
        } else {
            let path = Path::new(&self.input);
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
        print_refused(&live);
        println!("\nDecisions: {}\nDead letters: {}", paths.decisions.display(), paths.dead_letters.display());
        Ok(ExitCode::SUCCESS)
    }

    /// The config file with the flags that override it, validated.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.rules {
            config.rules.dir = dir.clone();
        }
        if let Some(out) = &self.output {
            config.embedded.output = out.clone();
        }
        if let Some(n) = self.batch_size {
            config.embedded.batch_size = n;
        }
        if let Some(file) = &self.lists {
            config.lists.file = Some(file.clone());
        }
        config.validate()?;
        Ok(config)
    }
}

fn run_kafka(
    kafka: &KafkaConfig,
    policy: &Policy,
    live: &LiveRules,
    hooks: &Hooks,
    shutdown: &Arc<AtomicBool>,
) -> anyhow::Result<ExitCode> {
    let rules = live.current().set.clone();
    eprintln!(
        "weir: {} rules, consuming {} as {} in group {} with {} decide workers (Ctrl-C to stop)",
        rules.rules().len(),
        kafka.topics.input,
        kafka.transactional_id(),
        kafka.group_id,
        kafka.workers()
    );
    let summary = match weir::kafka::run(kafka, &rules, policy, shutdown, hooks) {
        Err(KafkaRunError::Stopped(waiting)) => {
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
    print_refused(live);
    Ok(ExitCode::SUCCESS)
}
