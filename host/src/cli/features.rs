//! `weir features`: a model rule's training table over history.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use weir::backtest::{History, Labels};
use weir::config::Config;
use weir::engine::Engine;
use weir::features::{FeatureRule, write_table};

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    /// The model rule's package: its manifest (`fraud-model.toml`), with the
    /// component beside it. The model file may be missing (no model yet):
    /// the table then has the features without a score.
    pub package: PathBuf,
    /// Historical TransactionRecorded events, JSON lines (a file, or `-` for stdin).
    #[arg(long, short)]
    pub input: String,
    /// What each transaction really was (`transaction_id,label` CSV or JSON
    /// lines, as `weir backtest --labels` reads): adds a `label` column, 1
    /// for fraud, 0 for legitimate, empty when unknown.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Where to write the table (CSV); `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub out: PathBuf,
    /// The runtime lists the rule reads: a lists file (`weir list export`
    /// writes one). Without it every list is empty.
    #[arg(long, value_name = "FILE")]
    pub lists: Option<PathBuf>,
    /// Configuration file (the policy's settings).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl FeaturesArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        let engine = Engine::new()?;
        let rule = FeatureRule::load(&engine, &self.package)?;
        if !rule.has_model {
            eprintln!("weir features: {} has no model file yet: writing the features without a score", rule.id());
        }
        let labels = self.labels.as_deref().map(Labels::read).transpose()?;
        let records = match self.input.as_str() {
            "-" => History::Stdin.read()?,
            path => History::File(Path::new(path)).read()?,
        };
        let lists = super::backtest::lists_snapshot(&config, self.lists.as_deref())?;
        let summary = if self.out.as_os_str() == "-" {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            write_table(&rule, &records, &config.policy, labels.as_ref(), lists, &mut out)?
        } else {
            let file =
                std::fs::File::create(&self.out).with_context(|| format!("cannot write {}", self.out.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let summary = write_table(&rule, &records, &config.policy, labels.as_ref(), lists, &mut out)?;
            out.flush()?;
            summary
        };
        let labelled = if labels.is_some() {
            format!(", {} labelled ({} fraud)", summary.labelled, summary.fraud)
        } else {
            String::new()
        };
        eprintln!(
            "weir features: {} rows of {} features from {} transactions{labelled}",
            summary.rows,
            summary.features.len(),
            summary.transactions
        );
        if summary.rows == 0 {
            eprintln!(
                "weir features: {} scored no transaction; a rule hands its rows over when it scores with \
                 `ctx.score(&row)` and is built with weir-sdk for contract 2.4.0 or later",
                rule.id()
            );
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}
