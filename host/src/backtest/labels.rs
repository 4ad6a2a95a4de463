//! The labels: what each transaction really was (legitimate, or fraud of a
//! named pattern), against which a backtest measures precision, recall and
//! false-positive rate. From a labels file, or from analysts' dispositions
//! (`CaseResolved`), so their verdicts need no hand-made file.

use std::collections::HashMap;
use std::path::Path;

use super::error::{BacktestError, LabelProblem};
use crate::events::{Verdict, parse_disposition};

/// Transaction id → what it really was, from a labels file.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    by_transaction: HashMap<String, Label>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    Legitimate,
    /// Fraud, with the pattern's name when the file gives one.
    Fraud(String),
}

impl Labels {
    /// Reads and parses the labels file at `path` (see [`Labels::parse`]).
    pub fn read(path: &Path) -> Result<Labels, BacktestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BacktestError::Read { input: path.display().to_string(), source })?;
        Labels::parse(&text, path)
    }

    /// Reads a labels file: one `transaction_id,label` per line (CSV, an
    /// optional header line) or JSON lines with `transaction_id` and
    /// `label`. A label of `legit`, `legitimate`, `genuine`, `ok` or
    /// `not_fraud` marks a legitimate transaction; any other (`fraud`, or a
    /// pattern's name such as `card-testing`) marks fraud. Errors name the
    /// line.
    pub fn parse(text: &str, file: &Path) -> Result<Labels, BacktestError> {
        let mut by_transaction = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at_line = |problem| BacktestError::Label { path: file.to_owned(), line: n + 1, problem };
            let Some((id, label)) = parse_line(line, n == 0).map_err(at_line)? else {
                continue;
            };
            if label.is_empty() {
                return Err(at_line(LabelProblem::EmptyLabel { transaction_id: id }));
            }
            let label = match label.to_ascii_lowercase().as_str() {
                "legit" | "legitimate" | "genuine" | "ok" | "not_fraud" => Label::Legitimate,
                _ => Label::Fraud(label),
            };
            by_transaction.insert(id, label);
        }
        Ok(Labels { by_transaction })
    }

    /// Labels from analysts' dispositions (`CaseResolved`, one per record:
    /// a JSON-lines export's lines or a topic's records, in order), named
    /// `source` in errors. A fraud verdict labels its transactions with its
    /// pattern (or `fraud`), a legitimate one `legitimate`; a later
    /// disposition of a transaction replaces an earlier one, so an
    /// analyst's correction counts. Blank lines are skipped; any other
    /// record that is not a valid disposition is an error naming it.
    pub fn from_dispositions<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
        source: &Path,
    ) -> Result<Labels, BacktestError> {
        let mut by_transaction = HashMap::new();
        for (n, record) in records.into_iter().enumerate() {
            if record.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let resolved = parse_disposition(record).map_err(|e| BacktestError::Label {
                path: source.to_owned(),
                line: n + 1,
                problem: LabelProblem::Disposition(e),
            })?;
            let label = match resolved.verdict {
                Verdict::Fraud => Label::Fraud(resolved.pattern.unwrap_or_else(|| "fraud".to_owned())),
                Verdict::Legitimate => Label::Legitimate,
            };
            for id in resolved.transaction_ids {
                by_transaction.insert(id, label.clone());
            }
        }
        Ok(Labels { by_transaction })
    }

    /// How many transactions are labelled.
    pub fn len(&self) -> usize {
        self.by_transaction.len()
    }

    /// Whether no transaction is labelled.
    pub fn is_empty(&self) -> bool {
        self.by_transaction.is_empty()
    }

    /// The label of `transaction_id`, if the file gives one.
    pub fn get(&self, transaction_id: &str) -> Option<&Label> {
        self.by_transaction.get(transaction_id)
    }
}

/// One non-empty line: its transaction id and label, or `None` for the CSV
/// header (allowed on the first line only).
fn parse_line(line: &str, first: bool) -> Result<Option<(String, String)>, LabelProblem> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).map_err(LabelProblem::NotJson)?;
        let field = |name: &'static str| {
            v.get(name).and_then(|x| x.as_str()).map(str::to_owned).ok_or(LabelProblem::MissingField(name))
        };
        return Ok(Some((field("transaction_id")?, field("label")?)));
    }
    let Some((id, label)) = line.split_once(',') else {
        return Err(LabelProblem::NotCsv);
    };
    if first && id.trim() == "transaction_id" {
        return Ok(None);
    }
    Ok(Some((id.trim().to_owned(), label.trim().to_owned())))
}
