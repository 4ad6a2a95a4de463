//! The embedded pipeline: JSON-lines source → engine → JSON-lines sinks,
//! with state in the embedded store.
//!
//! Input is read in batches. For each batch, decisions and dead letters are
//! appended to their files and synced, then one store transaction commits
//! the batch's account states, the decided transaction ids and the new file
//! lengths. On start, files are cut back to the committed lengths, so a
//! crash mid-batch leaves no half-written batch behind and the rerun decides
//! it again — once. A rerun over input that was already decided writes
//! nothing new and counts nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::{Evaluator, RuleStats};
use crate::events::{DeadLetter, DecisionType, InputEvent, InputPosition, parse_input};
use crate::state::AccountState;
use crate::status::Hooks;
use crate::store::{BatchCommit, SinkOffsets, StateStore};

/// File names inside the output directory.
pub const DECISIONS_FILE: &str = "decisions.jsonl";
pub const DEAD_LETTERS_FILE: &str = "dead-letters.jsonl";
pub const STATE_FILE: &str = "state.redb";

/// Accounts kept in memory between batches before the cache is emptied.
const ACCOUNT_CACHE_LIMIT: usize = 200_000;

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Records per atomic batch.
    pub batch_size: usize,
    /// Larger records are dead-lettered.
    pub max_event_bytes: usize,
    /// Name recorded as the input "topic" in decisions and dead letters.
    pub input_name: String,
    /// Live rules to swap to between batches, and counters to report.
    pub hooks: Hooks,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_size: 1000,
            max_event_bytes: crate::events::MAX_EVENT_BYTES,
            input_name: "stdin".to_owned(),
            hooks: Hooks::default(),
        }
    }
}

/// Where the embedded pipeline writes.
#[derive(Debug, Clone)]
pub struct OutputPaths {
    pub decisions: PathBuf,
    pub dead_letters: PathBuf,
    pub state: PathBuf,
}

impl OutputPaths {
    pub fn in_dir(dir: &Path) -> OutputPaths {
        OutputPaths {
            decisions: dir.join(DECISIONS_FILE),
            dead_letters: dir.join(DEAD_LETTERS_FILE),
            state: dir.join(STATE_FILE),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Input records read (blank lines excepted).
    pub records: u64,
    pub decisions: BTreeMap<DecisionType, u64>,
    pub dead_letters: u64,
    /// Records whose transaction was already decided (by this or an earlier run).
    pub duplicates: u64,
    /// Customer confirmations recorded in their account's state (no decision).
    pub confirmations: u64,
    pub rules: Vec<(String, RuleStats)>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn decided(&self) -> u64 {
        self.decisions.values().sum()
    }
}

/// Errors that stop the pipeline (bad input never does).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "{path} holds {actual} bytes but the state store committed {committed}: the output was changed by something else; remove {state} to start afresh"
    )]
    OutputTruncated { path: PathBuf, actual: u64, committed: u64, state: PathBuf },
}

/// An append-only JSON-lines file whose committed length lives in the store.
struct SinkFile {
    file: File,
    path: PathBuf,
    len: u64,
    buf: Vec<u8>,
}

impl SinkFile {
    /// Opens `path` and cuts it back to the committed length.
    fn open(path: &Path, committed: u64, state: &Path) -> Result<SinkFile, PipelineError> {
        let io = |source| PipelineError::Io { path: path.to_owned(), source };
        let file = OpenOptions::new().create(true).read(true).append(true).open(path).map_err(io)?;
        let actual = file.metadata().map_err(io)?.len();
        if actual < committed {
            return Err(PipelineError::OutputTruncated {
                path: path.to_owned(),
                actual,
                committed,
                state: state.to_owned(),
            });
        }
        if actual > committed {
            tracing::warn!(path = %path.display(), discarded_bytes = actual - committed, "discarding output of a batch that never committed");
            file.set_len(committed).map_err(io)?;
        }
        Ok(SinkFile { file, path: path.to_owned(), len: committed, buf: Vec::with_capacity(1 << 20) })
    }

    fn push(&mut self, value: &impl serde::Serialize) {
        serde_json::to_writer(&mut self.buf, value).expect("events always serialize");
        self.buf.push(b'\n');
    }

    /// Appends the buffered lines and syncs; returns the new length.
    fn flush(&mut self) -> Result<u64, PipelineError> {
        if !self.buf.is_empty() {
            let io = |source| PipelineError::Io { path: self.path.clone(), source };
            self.file.write_all(&self.buf).map_err(io)?;
            self.file.sync_data().map_err(io)?;
            self.len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(self.len)
    }
}

/// Runs the embedded pipeline over `input` until it ends.
///
/// `on_batch` is called after every committed batch with the records read
/// so far (for progress bars).
pub fn run_embedded(
    mut input: impl BufRead,
    evaluator: &mut Evaluator,
    out: &OutputPaths,
    opts: &PipelineOptions,
    mut on_batch: impl FnMut(&Summary),
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    for p in [&out.decisions, &out.dead_letters, &out.state] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PipelineError::Io { path: dir.to_owned(), source })?;
        }
    }
    let store = StateStore::open(&out.state)?;
    let committed = store.reader()?.offsets()?;
    let mut decisions = SinkFile::open(&out.decisions, committed.decisions, &out.state)?;
    let mut dead = SinkFile::open(&out.dead_letters, committed.dead_letters, &out.state)?;

    let mut summary = Summary::default();
    let mut accounts: HashMap<String, AccountState> = HashMap::new();
    let mut line = Vec::new();
    let mut line_no: i64 = 0;
    let mut eof = false;
    let mut generation = 0;
    while !eof {
        // Rule swaps happen here, between two batches: a batch runs on one
        // rule set from its first record to its commit.
        if let Some(adopted) = opts.hooks.adopt(&mut generation, evaluator) {
            opts.hooks.took_effect(&adopted, format!("{} after line {line_no}", opts.input_name));
        }
        let reader = store.reader()?;
        let mut dirty: HashSet<String> = HashSet::new();
        let mut decided: Vec<String> = Vec::new();
        let mut batch_decided: HashSet<String> = HashSet::new();
        let mut in_batch = 0;
        while in_batch < opts.batch_size {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|source| PipelineError::Io { path: PathBuf::from(&opts.input_name), source })?;
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            let record = trim_newline(&line);
            if record.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            in_batch += 1;
            summary.records += 1;
            let position = InputPosition { topic: opts.input_name.clone(), partition: 0, offset: line_no };
            let tx = match parse_input(record, opts.max_event_bytes) {
                Ok(InputEvent::Transaction(tx)) => tx,
                Ok(InputEvent::CustomerConfirmation(confirmation)) => {
                    // Recording a confirmation is idempotent, so a rerun may apply it again.
                    let account = match accounts.get_mut(&confirmation.account_id) {
                        Some(a) => a,
                        None => {
                            let loaded = reader.account(&confirmation.account_id)?.unwrap_or_default();
                            accounts.entry(confirmation.account_id.clone()).or_insert(loaded)
                        }
                    };
                    account.record_confirmation(&confirmation);
                    dirty.insert(confirmation.account_id);
                    summary.confirmations += 1;
                    continue;
                }
                Err(reason) => {
                    tracing::debug!(line = line_no, "dead-lettered: {reason}");
                    dead.push(&DeadLetter::new(reason.to_string(), position, record));
                    summary.dead_letters += 1;
                    continue;
                }
            };
            if batch_decided.contains(&tx.transaction_id) || reader.is_decided(&tx.transaction_id)? {
                tracing::debug!(transaction_id = %tx.transaction_id, line = line_no, "already decided; skipped");
                summary.duplicates += 1;
                continue;
            }
            let account = match accounts.get_mut(&tx.account_id) {
                Some(a) => a,
                None => {
                    let loaded = reader.account(&tx.account_id)?.unwrap_or_default();
                    accounts.entry(tx.account_id.clone()).or_insert(loaded)
                }
            };
            let decision = evaluator.decide(&tx, account, position);
            *summary.decisions.entry(decision.event_type).or_default() += 1;
            decisions.push(&decision);
            dirty.insert(tx.account_id.clone());
            batch_decided.insert(tx.transaction_id.clone());
            decided.push(tx.transaction_id);
        }
        drop(reader);
        let offsets = SinkOffsets { decisions: decisions.flush()?, dead_letters: dead.flush()? };
        let commit = BatchCommit {
            accounts: dirty.iter().map(|id| (id.as_str(), &accounts[id])).collect(),
            decided: decided.iter().map(String::as_str).collect(),
            offsets,
        };
        store.commit(&commit)?;
        opts.hooks.record_batch(summary.records, &summary.decisions, summary.dead_letters, evaluator);
        if accounts.len() > ACCOUNT_CACHE_LIMIT {
            accounts.clear();
        }
        summary.elapsed = started.elapsed();
        on_batch(&summary);
    }
    summary.rules = evaluator.stats().map(|(id, s)| (id.to_owned(), s.clone())).collect();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
