//! What `weir backtest` and `weir shadow-report` share: the labels to judge
//! against, the files the comparison is written to, and the time options.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use weir::backtest::{BacktestError, Labels, Outcome, parse_time, render_html};
use weir::config::Config;
use weir::kafka::Bound;

/// What a comparison is judged against and where it is written.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Labels: `transaction_id,label` lines (or JSON lines); a label is
    /// `legit` or `fraud` (or a fraud pattern's name). Adds precision,
    /// recall and false-positive rate per rule and for the decision.
    #[arg(long, conflicts_with = "dispositions")]
    pub labels: Option<PathBuf>,
    /// Labels from analysts' dispositions (CaseResolved, written by `weir
    /// case resolve`): a JSON-lines export, or `kafka` to read the config's
    /// dispositions topic to its end. A fraud verdict labels its
    /// transactions with its pattern (or `fraud`); a later disposition of a
    /// transaction replaces an earlier one.
    #[arg(long, value_name = "FILE|kafka")]
    pub dispositions: Option<String>,
    /// Write the comparison as JSON here (reproducible: the same input and
    /// rules give the same bytes).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

impl ReportArgs {
    /// The labels, read, if a labels file or dispositions were given;
    /// `config` names the dispositions topic for `--dispositions kafka`.
    pub fn labels(&self, config: &Config) -> anyhow::Result<Option<Labels>> {
        if let Some(path) = &self.labels {
            return Ok(Some(Labels::read(path)?));
        }
        let Some(source) = self.dispositions.as_deref() else { return Ok(None) };
        let labels = if source == "kafka" {
            let kafka = config.kafka.as_ref().context(
                "--dispositions kafka reads the dispositions topic: the config needs a [kafka] table (or WEIR_KAFKA_BOOTSTRAP)",
            )?;
            let topic = &kafka.topics.dispositions;
            let records = weir::kafka::read_range(kafka, topic, Bound::Edge, Bound::Edge)
                .with_context(|| format!("cannot read the dispositions topic `{topic}`"))?;
            Labels::from_dispositions(records.iter().map(Vec::as_slice), Path::new(&format!("topic {topic}, record")))?
        } else {
            let path = Path::new(source);
            let text = std::fs::read(path).map_err(|e| BacktestError::Read { input: source.to_owned(), source: e })?;
            Labels::from_dispositions(text.split(|b| *b == b'\n'), path)?
        };
        eprintln!("labels: {} transactions labelled by analysts' dispositions ({source})", labels.len());
        Ok(Some(labels))
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
