//! What a backtest reads: the history — `TransactionRecorded` records as
//! JSON lines from a file or standard input, or a Kafka topic between two
//! offsets or timestamps — and, for a shadow report, the decisions weir
//! published. Reading is separate from running, so a program embedding weir
//! backtests any history it holds, and the `weir` commands read theirs here.
//! A history line over the size limit is held only in part, as the
//! embedded pipeline holds it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::events::{DecisionEvent, MAX_EVENT_BYTES};
use crate::kafka::{Bound, KafkaConfig, read_range};
use crate::record::read_line;

use super::error::BacktestError;

/// Where a backtest's history comes from.
#[derive(Debug, Clone, Copy)]
pub enum History<'a> {
    /// JSON lines on standard input.
    Stdin,
    /// A JSON-lines file.
    File(&'a Path),
    /// A Kafka topic from `from` up to `to` on every partition, read
    /// `read_committed` by a consumer that commits nothing.
    Topic { kafka: &'a KafkaConfig, topic: &'a str, from: Bound, to: Bound },
}

impl History<'_> {
    /// The raw records, in order: a file's lines (blank ones included, as
    /// the backtest skips them itself), or a topic range partition after
    /// partition. A line over [`MAX_EVENT_BYTES`] is never held whole: its
    /// first `MAX_EVENT_BYTES + 1` bytes stand for it, which the backtest
    /// counts as a dead letter, as weir would.
    pub fn read(&self) -> Result<Vec<Vec<u8>>, BacktestError> {
        match *self {
            History::Stdin => records(std::io::stdin().lock(), "standard input"),
            History::File(path) => records(open(path)?, &path.display().to_string()),
            History::Topic { kafka, topic, from, to } => read_range(kafka, topic, from, to)
                .map_err(|source| BacktestError::Topic { topic: topic.to_owned(), source }),
        }
    }
}

/// The decisions weir published, from a JSON-lines file (`decisions.jsonl`
/// of an embedded run, or the decision topics exported as JSON lines), for
/// a shadow report. Blank lines are skipped; a line that is not a decision
/// is an error naming it.
pub fn read_decisions(path: &Path) -> Result<Vec<DecisionEvent>, BacktestError> {
    let mut decisions = Vec::new();
    for (n, line) in lines(open(path)?, &path.display().to_string()).enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let decision = serde_json::from_slice(&line).map_err(|source| BacktestError::Decision {
            path: path.to_owned(),
            line: n + 1,
            source,
        })?;
        decisions.push(decision);
    }
    Ok(decisions)
}

/// An RFC 3339 time as ms since the epoch; `flag` names the option that
/// gave it, for the error.
pub fn parse_time(flag: &'static str, text: &str) -> Result<i64, BacktestError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|problem| BacktestError::Time { flag, value: text.to_owned(), problem })
}

fn open(path: &Path) -> Result<BufReader<File>, BacktestError> {
    File::open(path).map(BufReader::new).map_err(|source| BacktestError::Open { path: path.to_owned(), source })
}

/// The records of a JSON-lines history, without their newlines, each cut
/// to `MAX_EVENT_BYTES + 1` bytes as it is read (see [`read_line`]);
/// `input` names it in a read error.
fn records(mut reader: impl BufRead, input: &str) -> Result<Vec<Vec<u8>>, BacktestError> {
    let failed = |source| BacktestError::Read { input: input.to_owned(), source };
    let mut records = Vec::new();
    let mut line = Vec::new();
    while read_line(&mut reader, &mut line, MAX_EVENT_BYTES).map_err(failed)?.is_some() {
        records.push(line[..line.len().min(MAX_EVENT_BYTES + 1)].to_vec());
    }
    Ok(records)
}

/// The lines of a JSON-lines file of weir's own output, without their
/// newlines; `input` names it in a read error.
fn lines<'a>(reader: impl BufRead + 'a, input: &'a str) -> impl Iterator<Item = Result<Vec<u8>, BacktestError>> + 'a {
    reader.split(b'\n').map(move |line| line.map_err(|source| BacktestError::Read { input: input.to_owned(), source }))
}
