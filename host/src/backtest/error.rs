//! What can go wrong reading a backtest's inputs — the history, the labels,
//! published decisions, a time bound — each naming the file and line, or
//! the option, a user has to fix. Running the rule sets cannot fail: a
//! malformed record is counted as a dead letter, a failing rule as an error.

use std::path::PathBuf;

use crate::kafka::KafkaRunError;

/// A backtest or shadow report could not read what it was given. An I/O
/// or Kafka failure is the variant's `source()`: print the whole chain
/// (`weir` prints `error: what: why`).
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input stopped partway: `input` is a file's path or "standard input".
    #[error("cannot read {input}")]
    Read {
        input: String,
        #[source]
        source: std::io::Error,
    },
    /// A line of a labels file is not a label.
    #[error("{}:{line}: {problem}", path.display())]
    Label { path: PathBuf, line: usize, problem: LabelProblem },
    /// A line of a decisions file is not a decision weir published.
    #[error("{}:{line}: not a weir decision", path.display())]
    Decision {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A time bound is not an RFC 3339 time; `flag` is the option that gave
    /// it (e.g. `--from-time`).
    #[error("{flag} {value:?}: not an RFC 3339 time: {problem}")]
    Time { flag: &'static str, value: String, problem: time::error::Parse },
    /// A warm-up left nothing to measure: no transaction of the history has
    /// an event time at or after `until`.
    #[error(
        "no transaction has an event time at or after the warm-up's end, {until} ({warm_up} transactions before it)"
    )]
    NothingAfterWarmUp { until: String, warm_up: u64 },
    /// The history's Kafka topic could not be read.
    #[error("cannot read the topic {topic}")]
    Topic {
        topic: String,
        #[source]
        source: KafkaRunError,
    },
}

/// Why a line of a labels file is not a label.
#[derive(Debug, thiserror::Error)]
pub enum LabelProblem {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("`{0}` missing or not a string")]
    MissingField(&'static str),
    #[error("expected `transaction_id,label`")]
    NotCsv,
    #[error("the label of {transaction_id} is empty")]
    EmptyLabel { transaction_id: String },
    /// A record of the dispositions is not a valid `CaseResolved`.
    #[error("not a disposition: {0}")]
    Disposition(crate::events::InvalidEvent),
}
