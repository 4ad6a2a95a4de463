//! The embedded pipeline: JSON-lines source → engine → JSON-lines sinks,
//! with state in the embedded store.
//!
//! Three threads, so reading, deciding and making batches durable overlap:
//!
//! - the **reader** reads lines and parses them (a chunk at a time); a line
//!   over `max_event_bytes` is never held whole: its first bytes (at most
//!   64 KiB) and its size go to its dead letter, the rest is skipped as it
//!   is read, so the reader's memory is bounded by the limit, not the input;
//! - the **decider** (the calling thread) runs each record through
//!   [`crate::record::process`] and gathers a batch: its decisions, dead
//!   letters, the parts of account state it changed, and the transaction ids
//!   it decided;
//! - the **committer** appends a sealed batch's lines to their files and
//!   syncs them, then commits one store transaction with the batch's state,
//!   decided ids and the new file lengths — while the decider works on the
//!   next batch.
//!
//! A batch is sealed once it holds `batch_size` records and the committer
//! is free (or the input pauses, or ends); while a commit is in progress
//! the batch keeps growing, up to [`MAX_BATCH_FACTOR`] times `batch_size`,
//! so batches grow with the load instead of the load waiting on syncs. On
//! start, files are cut back to the committed lengths, so a crash mid-batch
//! leaves no half-written batch behind and the rerun decides it again —
//! once. A rerun over input that was already decided writes nothing new and
//! counts nothing twice. Rules are swapped only between two batches.
//!
//! With entity rules, records wait in input order while their transactions
//! are applied to their entities in event-time order, as on Kafka
//! ([`crate::entity_order`]): a batch commits the state of what was applied
//! and decides what reached the head of the queue; the results of a
//! transaction applied but not decided yet commit with it, and a rerun
//! takes them from there.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::engine::{Evaluator, RuleStats};
use crate::entity_order::{Done, EntityOrder};
use crate::events::{
    DeadLetter, InputEvent, InputPosition, InvalidEvent, TRUNCATED_PAYLOAD_BYTES, TransactionRecorded, parse_input,
};
use crate::live::TookEffect;
use crate::record::{Accounts, Counters, Processed, read_line, rule_stats};
use crate::state::AccountState;
use crate::store::{BatchCommit, SinkOffsets, StateStore, StoreError, StoreReader};
use crate::telemetry::Hooks;

/// File names inside the output directory.
pub const DECISIONS_FILE: &str = "decisions.jsonl";
pub const DEAD_LETTERS_FILE: &str = "dead-letters.jsonl";
pub const STATE_FILE: &str = "state.redb";

/// Accounts kept in memory between batches before the cache is emptied.
const ACCOUNT_CACHE_LIMIT: usize = 200_000;
/// How far a batch may grow past `batch_size` while a commit is in progress.
pub const MAX_BATCH_FACTOR: usize = 16;
/// Lines the reader hands over at a time.
const CHUNK_LINES: usize = 512;
/// Bytes of lines the reader hands over at a time, at most (plus one line):
/// what the reader holds ahead of the decider stays bounded however large
/// the records are.
const CHUNK_BYTES: usize = 4 << 20;
/// Bytes of dead letters at which a batch is sealed, whatever its count of
/// records: a flood of bad records does not grow a batch without bound.
const BATCH_DEAD_LETTER_BYTES: usize = 16 << 20;
/// How long the decider waits for input before it commits what it has.
const INPUT_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Records per atomic batch (more while a commit is in progress).
    pub batch_size: usize,
    /// Larger records are dead-lettered.
    pub max_event_bytes: usize,
    /// Name recorded as the input "topic" in decisions and dead letters.
    pub input_name: String,
    /// Live rules to swap to between batches, and counters to report.
    pub hooks: Hooks,
    /// With entity rules: records that may wait for their entities in
    /// input order before the oldest is applied.
    pub entity_max_waiting: usize,
    /// The input is a live stream (standard input): when it pauses, every
    /// transaction waiting for its entities is applied and decided. A file
    /// does not pause; its records wait until the queue is full or the
    /// file ends, so its order does not depend on how fast it was read.
    pub live: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_size: 4000,
            max_event_bytes: crate::events::MAX_EVENT_BYTES,
            input_name: "stdin".to_owned(),
            hooks: Hooks::default(),
            entity_max_waiting: crate::entity_order::DEFAULT_LIMIT,
            live: false,
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
    pub counters: Counters,
    /// Batches committed.
    pub batches: u64,
    pub rules: Vec<(String, RuleStats)>,
    pub elapsed: Duration,
}

impl std::ops::Deref for Summary {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

/// Errors that stop the pipeline (bad input never does).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
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
        Ok(SinkFile { file, path: path.to_owned(), len: committed })
    }

    /// Appends `bytes` and syncs; returns the new length.
    fn append(&mut self, bytes: &[u8]) -> Result<u64, PipelineError> {
        if !bytes.is_empty() {
            let io = |source| PipelineError::Io { path: self.path.clone(), source };
            self.file.write_all(bytes).map_err(io)?;
            self.file.sync_data().map_err(io)?;
            self.len += bytes.len() as u64;
        }
        Ok(self.len)
    }
}

/// One input line, parsed by the reader.
struct Line {
    /// 1-based line number in the input.
    number: i64,
    parsed: Result<InputEvent, InvalidEvent>,
    /// The line itself, kept only when it is dead-lettered.
    raw: Option<Raw>,
}

/// What a dead letter keeps of a line.
struct Raw {
    /// The line, or the first bytes of one over the size limit.
    kept: Vec<u8>,
    /// The line's size in bytes.
    size: u64,
}

/// What the reader hands over.
enum Input {
    Lines(Vec<Line>),
    End,
    Failed(std::io::Error),
}

/// A sealed batch, for the committer.
#[derive(Default)]
struct Sealed {
    /// Serialized by the committer, off the deciding thread.
    decisions: Vec<crate::events::DecisionEvent>,
    dead_letters: Vec<u8>,
    accounts: Vec<(String, Vec<crate::state::Part>)>,
    decided: Vec<String>,
    /// The entity order's changes: see [`BatchCommit`].
    entity_held: Vec<(String, Vec<crate::events::RuleResult>)>,
    entity_unheld: Vec<String>,
    entity_released: Option<(i64, String)>,
}

/// Runs the embedded pipeline over `input` until it ends.
///
/// `on_batch` is called after every sealed batch with the counts so far
/// (for progress bars).
pub fn run_embedded(
    input: impl Read + Send,
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
    let (committed, ordered) = {
        let reader = store.reader()?;
        (reader.offsets()?, reader.entity_order()?)
    };
    let mut order = EntityOrder::new(opts.entity_max_waiting);
    let released = ordered.released.clone();
    order.restore(ordered.released, ordered.held);
    let mut decisions = SinkFile::open(&out.decisions, committed.decisions, &out.state)?;
    let mut dead = SinkFile::open(&out.dead_letters, committed.dead_letters, &out.state)?;
    let max_event_bytes = opts.max_event_bytes;
    let batch_size = opts.batch_size.max(1);
    // Whether the committer has committed every batch it was handed.
    let idle = AtomicBool::new(true);

    std::thread::scope(|scope| {
        let (lines_tx, lines_rx) = sync_channel::<Input>(8);
        let reader = std::thread::Builder::new().name("weir-reader".to_owned());
        reader.spawn_scoped(scope, move || read_lines(input, max_event_bytes, lines_tx)).expect("a thread starts");
        let (sealed_tx, sealed_rx) = sync_channel::<Sealed>(0);
        let committer = {
            let (store, idle, hooks) = (&store, &idle, &opts.hooks);
            let committer = std::thread::Builder::new().name("weir-committer".to_owned());
            committer
                .spawn_scoped(scope, move || commit_batches(sealed_rx, store, &mut decisions, &mut dead, idle, hooks))
                .expect("a thread starts")
        };
        let mut decider = Decider {
            evaluator,
            store: &store,
            opts,
            accounts: HashMap::new(),
            recent: VecDeque::new(),
            counters: Counters::default(),
            batches: 0,
            order,
            released,
        };
        let decided = decider.run(lines_rx, &sealed_tx, &idle, batch_size, started, &mut on_batch);
        drop(sealed_tx);
        let committed = committer.join().expect("the committer does not panic");
        // A failed commit explains a failed send; report the commit's error.
        committed?;
        let mut summary = decided?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    })
}

/// Reads `input` line by line, parses each line, and hands the lines over
/// in chunks: a chunk is sent when full (in lines or in bytes), or when no
/// more input is buffered (so a trickle on stdin is decided as it comes).
///
/// A line over `max_event_bytes` is never held whole ([`read_line`]): it is
/// handed over as a too-large record with its size and its first bytes, for
/// its dead letter. Every line counts in the numbering, so later records keep
/// their line numbers.
fn read_lines(input: impl Read, max_event_bytes: usize, to: SyncSender<Input>) {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    let mut chunk_bytes = 0usize;
    let mut line = Vec::new();
    let mut number: i64 = 0;
    loop {
        let size = match read_line(&mut input, &mut line, max_event_bytes) {
            Ok(Some(size)) => size,
            Ok(None) => break,
            Err(e) => {
                let _ = to.send(Input::Failed(e));
                return;
            }
        };
        number += 1;
        if size > max_event_bytes as u64 {
            let size_in_memory = usize::try_from(size).unwrap_or(usize::MAX);
            let parsed = Err(InvalidEvent::TooLarge { size: size_in_memory, limit: max_event_bytes });
            let kept = line[..line.len().min(max_event_bytes).min(TRUNCATED_PAYLOAD_BYTES)].to_vec();
            chunk_bytes += kept.len();
            chunk.push(Line { number, parsed, raw: Some(Raw { kept, size }) });
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            let parsed = parse_input(&line, max_event_bytes);
            // Kept for a dead letter: what does not parse, a customer's
            // confirmation (refused when it answers no suspicion) and an
            // analyst's unlock (refused when it names no lock).
            let keep = !matches!(parsed, Ok(InputEvent::Transaction(_)));
            let raw = keep.then(|| Raw { kept: line.clone(), size });
            chunk_bytes += line.len();
            chunk.push(Line { number, parsed, raw });
        }
        // Nothing more buffered: the next read may wait for the input, so
        // what was read is handed over first.
        let buffered = !input.buffer().is_empty();
        if chunk.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES || (!buffered && !chunk.is_empty()) {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_LINES));
            chunk_bytes = 0;
            if to.send(Input::Lines(full)).is_err() {
                return;
            }
        }
    }
    if !chunk.is_empty() && to.send(Input::Lines(chunk)).is_err() {
        return;
    }
    let _ = to.send(Input::End);
}

/// Makes sealed batches durable, one at a time, in order.
fn commit_batches(
    from: Receiver<Sealed>,
    store: &StateStore,
    decisions: &mut SinkFile,
    dead: &mut SinkFile,
    idle: &AtomicBool,
    hooks: &Hooks,
) -> Result<(), PipelineError> {
    let mut lines = Vec::with_capacity(1 << 20);
    for batch in from {
        let started = Instant::now();
        lines.clear();
        for decision in &batch.decisions {
            decision.write_json(&mut lines);
            lines.push(b'\n');
        }
        let offsets =
            SinkOffsets { decisions: decisions.append(&lines)?, dead_letters: dead.append(&batch.dead_letters)? };
        let commit = BatchCommit {
            accounts: batch.accounts.iter().map(|(id, parts)| (id.as_str(), parts.as_slice())).collect(),
            decided: batch.decided.iter().map(String::as_str).collect(),
            offsets,
            entity_held: &batch.entity_held,
            entity_unheld: &batch.entity_unheld,
            entity_released: batch.entity_released.as_ref(),
        };
        store.commit(&commit)?;
        hooks.observe_commit(started.elapsed());
        idle.store(true, Ordering::Release);
    }
    Ok(())
}

/// The deciding thread's state.
struct Decider<'a> {
    evaluator: &'a mut Evaluator,
    store: &'a StateStore,
    opts: &'a PipelineOptions,
    /// Accounts read or decided so far, and what changed in them.
    accounts: HashMap<String, AccountState>,
    /// Transaction ids decided in the batches not known to be committed yet,
    /// newest last: the store's snapshot may not show them.
    recent: VecDeque<HashSet<String>>,
    counters: Counters,
    batches: u64,
    /// Records waiting for their transactions' entities, in input order;
    /// each keeps what its dead letter would need.
    order: EntityOrder<Option<Raw>>,
    /// The last transaction applied to its entities, as last committed.
    released: Option<(i64, String)>,
}

/// The accounts of one batch: the cache, backed by a snapshot of the store.
struct BatchAccounts<'a, 'b> {
    cache: &'a mut HashMap<String, AccountState>,
    reader: &'a StoreReader<'b>,
    recent: &'a mut VecDeque<HashSet<String>>,
    dirty: &'a mut HashSet<String>,
}

impl Accounts for BatchAccounts<'_, '_> {
    type Error = StoreError;

    fn account(&mut self, id: &str) -> Result<&mut AccountState, StoreError> {
        if !self.dirty.contains(id) {
            self.dirty.insert(id.to_owned());
        }
        if !self.cache.contains_key(id) {
            let loaded = self.reader.account(id)?.unwrap_or_default();
            self.cache.insert(id.to_owned(), loaded);
        }
        Ok(self.cache.get_mut(id).expect("just inserted"))
    }

    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, StoreError> {
        let id = tx.transaction_id.as_str();
        Ok(self.recent.iter().any(|ids| ids.contains(id)) || self.reader.is_decided(id)?)
    }

    fn decided(&mut self, tx: &TransactionRecorded) {
        if let Some(current) = self.recent.back_mut() {
            current.insert(tx.transaction_id.clone());
        }
    }
}

impl Decider<'_> {
    /// Decides batch after batch until the input ends, handing each sealed
    /// batch to the committer.
    fn run(
        &mut self,
        lines: Receiver<Input>,
        sealed: &SyncSender<Sealed>,
        idle: &AtomicBool,
        batch_size: usize,
        started: Instant,
        on_batch: &mut impl FnMut(&Summary),
    ) -> Result<Summary, PipelineError> {
        if self.opts.hooks.observing() {
            self.evaluator.sample_evaluations(crate::telemetry::EVALUATION_SAMPLE);
        }
        let mut generation = 0;
        let mut last_line: i64 = 0;
        let mut eof = false;
        loop {
            let batch_started = Instant::now();
            self.between_batches(&mut generation, last_line, idle);
            let reader = self.store.reader()?;
            let mut batch = Sealed::default();
            let mut dirty = HashSet::new();
            let mut in_batch = 0usize;
            let mut sealed_early = false;
            while let Some(chunk) = if eof { None } else { self.next_chunk(&lines, in_batch, &mut eof)? } {
                if in_batch == 0 {
                    // An empty batch waited for input: rules published
                    // meanwhile (a deploy while idle) decide its first record.
                    self.adopt(&mut generation, last_line);
                }
                in_batch += self.decide_chunk(chunk, &reader, &mut dirty, &mut batch, &mut last_line)?;
                let full = in_batch >= batch_size && idle.load(Ordering::Acquire);
                let largest = in_batch >= batch_size * MAX_BATCH_FACTOR;
                if full || largest || batch.dead_letters.len() >= BATCH_DEAD_LETTER_BYTES {
                    sealed_early = true;
                    break;
                }
            }
            // The input ended (what it held back is decided a batch at a
            // time, so deciding and committing still overlap), or a live
            // stream paused (all of it: nothing waits for more).
            let flushed = if eof {
                self.flush(&reader, &mut dirty, &mut batch, batch_size.saturating_sub(in_batch).max(1))?
            } else if self.opts.live && !sealed_early {
                self.flush(&reader, &mut dirty, &mut batch, usize::MAX)?
            } else {
                0
            };
            if in_batch == 0 && flushed == 0 && eof {
                break;
            }
            drop(reader);
            self.take_changes(&dirty, &mut batch);
            self.take_order(&mut batch);
            self.opts.hooks.observe_batch(batch_started.elapsed());
            // Busy from the hand-over to the end of the commit.
            idle.store(false, Ordering::Release);
            if sealed.send(batch).is_err() {
                // The committer stopped: its error is reported.
                break;
            }
            self.batches += 1;
            self.opts.hooks.record(&self.counters, &rule_stats([&*self.evaluator]));
            self.opts.hooks.observe_evaluations(self.evaluator);
            on_batch(&self.summary(started));
        }
        Ok(self.summary(started))
    }

    /// Before a batch: swaps rules if a newer set is published, and empties
    /// the account cache once it is too large.
    fn between_batches(&mut self, generation: &mut u64, last_line: i64, idle: &AtomicBool) {
        self.adopt(generation, last_line);
        if self.accounts.len() > ACCOUNT_CACHE_LIMIT {
            // Emptied only once every batch is committed: until then the
            // cache holds state the store does not have yet.
            self.recent.clear();
            wait_idle(idle);
            self.accounts.clear();
        }
        self.recent.push_back(HashSet::new());
        while self.recent.len() > 3 {
            self.recent.pop_front();
        }
    }

    /// Swaps rules if a newer set is published. Rule swaps happen only
    /// between two batches (before a batch's first record is decided): a
    /// batch runs on one rule set from its first record to its commit.
    fn adopt(&mut self, generation: &mut u64, last_line: i64) {
        if let Some(adopted) = self.opts.hooks.adopt(generation, self.evaluator) {
            let position = TookEffect::Line { input: self.opts.input_name.clone(), after_line: last_line };
            self.opts.hooks.took_effect(&adopted, &position);
        }
    }

    /// The next chunk of lines for a batch holding `in_batch` records, or
    /// `None` to seal it: the input paused with records in the batch, or
    /// ended (then `eof` is set). An empty batch waits for input.
    fn next_chunk(
        &self,
        lines: &Receiver<Input>,
        in_batch: usize,
        eof: &mut bool,
    ) -> Result<Option<Vec<Line>>, PipelineError> {
        let failed = |source| PipelineError::Io { path: PathBuf::from(&self.opts.input_name), source };
        loop {
            let received = match lines.try_recv() {
                Ok(input) => input,
                Err(TryRecvError::Empty) if in_batch > 0 => return Ok(None),
                Err(TryRecvError::Empty) => match lines.recv_timeout(INPUT_PAUSE) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Input::End,
                },
                Err(TryRecvError::Disconnected) => Input::End,
            };
            return match received {
                Input::Lines(chunk) => Ok(Some(chunk)),
                Input::End => {
                    *eof = true;
                    Ok(None)
                }
                Input::Failed(source) => Err(failed(source)),
            };
        }
    }

    /// Decides a chunk of lines into `batch`; returns how many records it held.
    fn decide_chunk(
        &mut self,
        chunk: Vec<Line>,
        reader: &StoreReader<'_>,
        dirty: &mut HashSet<String>,
        batch: &mut Sealed,
        last_line: &mut i64,
    ) -> Result<usize, PipelineError> {
        let records = chunk.len();
        let mut accounts = BatchAccounts { cache: &mut self.accounts, reader, recent: &mut self.recent, dirty };
        let counters = &mut self.counters;
        let mut done = |done: Done<Option<Raw>>, _: &Evaluator| write_done(done, counters, batch);
        let now_ms = crate::entity_order::now_ms();
        for line in chunk {
            *last_line = line.number;
            let position = InputPosition { topic: self.opts.input_name.clone(), partition: 0, offset: line.number };
            self.order.push(self.evaluator, &mut accounts, line.raw, line.parsed, position, now_ms, &mut done)?;
        }
        Ok(records)
    }

    /// Decides at most `max` records of the entity order's queue into
    /// `batch`, applying what waits as needed; returns how many it decided.
    fn flush(
        &mut self,
        reader: &StoreReader<'_>,
        dirty: &mut HashSet<String>,
        batch: &mut Sealed,
        max: usize,
    ) -> Result<usize, PipelineError> {
        if self.order.is_empty() {
            return Ok(0);
        }
        let mut accounts = BatchAccounts { cache: &mut self.accounts, reader, recent: &mut self.recent, dirty };
        let counters = &mut self.counters;
        let mut done = |done, _: &Evaluator| write_done(done, counters, batch);
        Ok(self.order.flush(self.evaluator, &mut accounts, max, &mut done)?)
    }

    /// The entity order's changes since the last batch, for the committer.
    fn take_order(&mut self, batch: &mut Sealed) {
        batch.entity_held = self.order.take_held();
        batch.entity_unheld = self.order.take_unheld();
        self.counters.entity_late += self.order.take_late();
        if self.order.released() != self.released.as_ref() {
            self.released = self.order.released().cloned();
            batch.entity_released = self.released.clone();
        }
    }

    /// The state the batch changed, for the committer: each touched
    /// account's changed parts.
    fn take_changes(&mut self, dirty: &HashSet<String>, batch: &mut Sealed) {
        for id in dirty {
            if let Some(account) = self.accounts.get_mut(id) {
                let parts = account.take_changes();
                if !parts.is_empty() {
                    batch.accounts.push((id.clone(), parts));
                }
            }
        }
    }

    fn summary(&self, started: Instant) -> Summary {
        Summary {
            counters: self.counters.clone(),
            batches: self.batches,
            rules: rule_stats([&*self.evaluator]),
            elapsed: started.elapsed(),
        }
    }
}

/// Counts a record that came out of the entity order and writes what it
/// came to into `batch`.
fn write_done(done: Done<Option<Raw>>, counters: &mut Counters, batch: &mut Sealed) {
    let Done { item: raw, position, processed } = done;
    counters.count(&processed);
    match processed {
        Processed::Decided(decision) => {
            batch.decided.push(decision.transaction_id.clone());
            batch.decisions.push(*decision);
        }
        Processed::DeadLetter(reason) => {
            tracing::debug!(line = position.offset, "dead-lettered: {reason}");
            let (kept, size) = raw.as_ref().map_or((&[][..], 0), |r| (r.kept.as_slice(), r.size));
            let letter = DeadLetter::of_record(reason, position, kept, size);
            serde_json::to_writer(&mut batch.dead_letters, &letter).expect("dead letters serialize");
            batch.dead_letters.push(b'\n');
        }
        Processed::Confirmation | Processed::Unlocked(_) | Processed::Duplicate => {}
    }
}

/// Waits until the committer has committed every batch it was given.
fn wait_idle(idle: &AtomicBool) {
    while !idle.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
}
