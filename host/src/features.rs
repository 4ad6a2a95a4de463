//! Training tables: a model rule's features over history, exactly as the
//! rule computes them when it serves (`weir features`).
//!
//! The rule runs in the sandbox through the pipelines' per-record core
//! ([`crate::record::process`]) against in-memory accounts, alone (a rule
//! reads only its own state and the account's history, which the host
//! keeps whatever rules run), with its evaluator recording
//! ([`Evaluator::record_scores`]): each time the rule scores a row with
//! `Context::score`, the host is handed the row and the score. One CSV
//! line per transaction the rule scored: the transaction, the features in
//! the manifest's column order (`[model] features`), the model's score
//! (empty when the package has no model yet) and, with labels, the label
//! (1 fraud, 0 legitimate, empty when unknown). So the model is trained on
//! exactly the features it will be served: there is one implementation of
//! them, the rule's.
//!
//! A package whose model file does not exist yet still runs: the rule
//! hands over its row, and `Context::score` gives it 0 (a model that finds
//! nothing), so the rule goes on and keeps its state for the account's
//! next transactions exactly as it will when it serves. A rule built for a contract before
//! 2.4.0, or one that scores without `Context::score`, hands over nothing:
//! the table stays empty and the summary says so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backtest::{Label, Labels};
use crate::engine::{Engine, Evaluator, LoadError, Policy, RuleSet};
use crate::events::{InputEvent, InputPosition, MAX_EVENT_BYTES, parse_input};
use crate::lists::ListSet;
use crate::manifest::RuleSpec;
use crate::record::{MemoryAccounts, Processed, process};

/// Why a training table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("rule manifest {path}: {source}")]
    Manifest { path: PathBuf, source: crate::manifest::ManifestError },
    #[error("{path}: the rule has no `[model]` table, so it scores nothing to write a table of")]
    NoModel { path: PathBuf },
    #[error("{path}: {source}")]
    Load { path: PathBuf, source: LoadError },
    #[error(
        "{rule}: the rule scored a row of {found} features for transaction {transaction}, but {expected}; the table's columns must be the model's"
    )]
    RowLength { rule: String, transaction: String, found: usize, expected: String },
    #[error("cannot write the table: {0}")]
    Write(#[from] std::io::Error),
}

/// A model rule, loaded for a training table.
pub struct FeatureRule {
    set: RuleSet,
    spec: RuleSpec,
    /// Whether the package's model file exists (without it the table has
    /// features only).
    pub has_model: bool,
}

impl FeatureRule {
    /// Loads the package whose manifest is `manifest_path`, its component
    /// beside it; the model file named by `[model] file` is read if it
    /// exists.
    pub fn load(engine: &Engine, manifest_path: &Path) -> Result<FeatureRule, FeaturesError> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|source| FeaturesError::Read { path: path.to_owned(), source });
        let manifest = String::from_utf8_lossy(&read(manifest_path)?).into_owned();
        let spec = RuleSpec::parse(&manifest)
            .map_err(|source| FeaturesError::Manifest { path: manifest_path.to_owned(), source })?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let Some(model_file) = &spec.model else {
            return Err(FeaturesError::NoModel { path: manifest_path.to_owned() });
        };
        let model_path = dir.join(model_file);
        let model = model_path.is_file().then(|| read(&model_path)).transpose()?.map(Arc::<[u8]>::from);
        let has_model = model.is_some();
        let component_path = dir.join(&spec.component);
        let component = read(&component_path)?;
        let loaded = engine
            .load_with_model(spec.clone(), &component, &manifest, model)
            .and_then(|rule| RuleSet::new(vec![rule]))
            .map_err(|source| FeaturesError::Load { path: component_path, source })?;
        Ok(FeatureRule { set: loaded, spec, has_model })
    }

    /// The rule's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// What a training table holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TableSummary {
    /// Transactions decided (every one, scored or not).
    pub transactions: u64,
    /// Rows written: transactions the rule scored.
    pub rows: u64,
    /// Rows with a label, and of those, fraud.
    pub labelled: u64,
    pub fraud: u64,
    /// The table's feature columns.
    pub features: Vec<String>,
}

/// Runs `rule` over `records` (raw input records, in order) and writes its
/// training table to `out` as CSV (see the module docs); `lists` are the
/// runtime lists the rule reads.
pub fn write_table(
    rule: &FeatureRule,
    records: &[Vec<u8>],
    policy: &Policy,
    labels: Option<&Labels>,
    lists: Option<Arc<ListSet>>,
    out: &mut impl Write,
) -> Result<TableSummary, FeaturesError> {
    let mut evaluator = Evaluator::new(&rule.set, policy.clone());
    evaluator.quiet();
    evaluator.record_scores();
    if let Some(lists) = lists {
        evaluator.set_lists(1, lists);
    }
    let mut accounts = MemoryAccounts::default();
    let mut summary = TableSummary { features: rule.spec.model_features.clone(), ..TableSummary::default() };
    let mut header_written = false;
    let mut line = String::new();
    for (offset, record) in records.iter().enumerate() {
        if record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let position = InputPosition { topic: "features".to_owned(), partition: 0, offset: offset as i64 };
        let parsed = parse_input(record, MAX_EVENT_BYTES);
        let occurred_at = match &parsed {
            Ok(InputEvent::Transaction(tx)) => tx.occurred_at,
            _ => time::OffsetDateTime::UNIX_EPOCH,
        };
        let Ok(Processed::Decided(decision)) = process(&mut evaluator, parsed, position, &mut accounts) else {
            continue;
        };
        summary.transactions += 1;
        let Some((_, row, score)) = evaluator.scored().find(|(id, ..)| *id == rule.id()) else { continue };
        if summary.features.is_empty() {
            summary.features = (0..row.len()).map(|i| format!("f{i}")).collect();
        }
        if row.len() != summary.features.len() {
            let expected = if rule.spec.model_features.is_empty() {
                format!("its first row had {}", summary.features.len())
            } else {
                format!("the manifest's `[model] features` names {}", summary.features.len())
            };
            return Err(FeaturesError::RowLength {
                rule: rule.id().to_owned(),
                transaction: decision.transaction_id.clone(),
                found: row.len(),
                expected,
            });
        }
        if !header_written {
            let mut header = String::from("transaction_id,account_id,occurred_at");
            for name in &summary.features {
                header.push(',');
                header.push_str(name);
            }
            header.push_str(if labels.is_some() { ",score,label\n" } else { ",score\n" });
            out.write_all(header.as_bytes())?;
            header_written = true;
        }
        line.clear();
        csv_field(&mut line, &decision.transaction_id);
        line.push(',');
        csv_field(&mut line, &decision.account_id);
        line.push(',');
        line.push_str(&occurred_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
        for value in row {
            // Rust prints the shortest text that reads back as the same
            // f32: the table holds exactly what the model is served.
            line.push_str(&format!(",{value}"));
        }
        line.push(',');
        if let Some(score) = score {
            line.push_str(&format!("{score}"));
        }
        if let Some(labels) = labels {
            line.push(',');
            match labels.get(&decision.transaction_id) {
                Some(Label::Fraud(_)) => {
                    summary.labelled += 1;
                    summary.fraud += 1;
                    line.push('1');
                }
                Some(Label::Legitimate) => {
                    summary.labelled += 1;
                    line.push('0');
                }
                None => {}
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        summary.rows += 1;
    }
    out.flush()?;
    Ok(summary)
}

/// Appends `value` as a CSV field: quoted, with quotes doubled, when it
/// holds a comma, a quote or a line break.
fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}
