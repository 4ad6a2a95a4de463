//! `weir shadow-report`: what the shadow rules in published decisions would
//! have changed had they been enforced.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir::backtest::{read_decisions, render_text, shadow};
use weir::config::Config;

use super::report::{ReportArgs, time_flag};

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

impl ShadowReportArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.config.as_deref())?;
        let labels = self.report.labels(&config)?;
        let range =
            (time_flag("--from-time", self.from_time.as_deref())?, time_flag("--to-time", self.to_time.as_deref())?);
        let decisions = read_decisions(&self.decisions)?;
        let source = self.decisions.display().to_string();
        let outcome = shadow(decisions, &source, &config.policy, labels.as_ref(), range);
        print!("{}", render_text(&outcome));
        self.report.write(&outcome)?;
        Ok(ExitCode::SUCCESS)
    }
}
