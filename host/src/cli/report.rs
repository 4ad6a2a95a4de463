//! What `weir backtest` and `weir shadow-report` share: the labels to judge
//! against, the files the comparison is written to, and the time options.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use weir::backtest::{BacktestError, Labels, Outcome, parse_time, render_html};

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

impl ReportArgs {
    /// The labels file, read, if one was given.
    pub fn labels(&self) -> Result<Option<Labels>, BacktestError> {
        self.labels.as_deref().map(Labels::read).transpose()
    }

    /// Writes the comparison to the files asked for, saying where.
    pub fn write(&self, outcome: &Outcome) -> anyhow::Result<()> {
        if let Some(path) = &self.json {
            std::fs::write(path, outcome.report.to_json())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("JSON: {}", path.display());
        }
        if let Some(path) = &self.html {
            std::fs::write(path, render_html(outcome)).with_context(|| format!("cannot write {}", path.display()))?;
            println!("HTML report: {}", path.display());
        }
        Ok(())
    }
}

/// A time option (`--from-time`, `--to-time`) as ms since the epoch.
pub fn time_flag(flag: &'static str, text: Option<&str>) -> Result<Option<i64>, BacktestError> {
    text.map(|t| parse_time(flag, t)).transpose()
}
