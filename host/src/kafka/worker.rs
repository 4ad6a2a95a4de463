//! A decide worker: owns some partitions' account state and turns their
//! records into output for the next transaction.
//!
//! The intake sends a worker chunks of records and, in the same channel, the
//! changes of its assignment, so a message always applies after the records
//! sent before it. Before a partition's first record the worker reads the
//! partition's state back from the changelog. Each record goes through the
//! per-record core ([`crate::record::process`]); after a chunk, the worker
//! puts the chunk's output — decisions, dead letters, the changed parts of
//! the accounts it touched, the partitions' next offsets — into its
//! [`Outbox`], where the committer takes it. Rule swaps happen between two
//! chunks.
//!
//! A dead letter is the record's payload with the reason, source and size in
//! headers, cut to fit: a record over `max_event_bytes` keeps its first
//! 64 KiB, and no dead letter is larger than the producer's
//! `message.max.bytes` allows, so a record the consumer could receive never
//! fails the transaction that dead-letters it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::retry::{ATTEMPT_TIMEOUT, Attempt, GaveUp, retry};
use super::{Destination, Doorbell, Headers, KafkaConfig, KafkaRunError, OutRecord, Outbox, Output, Record, changelog};
use crate::engine::{Evaluator, Policy, RuleSet};
use crate::events::{InputPosition, TRUNCATED_PAYLOAD_BYTES, TransactionRecorded, parse_input};
use crate::live::TookEffect;
use crate::record::{Accounts, Processed, process};
use crate::state::AccountState;
use crate::telemetry::Hooks;

/// How long restoring a partition's state may wait for the broker.
const RESTORE_PATIENCE: Duration = Duration::from_secs(300);
/// How long a worker waits for records before it looks for new rules.
const IDLE: Duration = Duration::from_millis(50);
/// The most of an input record's key a dead letter keeps (keys are account
/// ids, at most 256 bytes when valid).
const DEAD_LETTER_KEY_MAX: usize = 1024;
/// Room a dead letter keeps in the producer's message size for its key,
/// headers (the reason is at most 1 KiB) and the record's framing.
const DEAD_LETTER_ENVELOPE: usize = 4096;

/// What the intake tells a worker.
pub(super) enum ToWorker {
    Records(Vec<Record>),
    /// These partitions are now this worker's; decisions start at these
    /// offsets (`None`: the partition's beginning).
    Assign(Vec<(i32, Option<i64>)>),
    /// These partitions are no longer this worker's: their state goes.
    Revoke(Vec<i32>),
    /// A transaction failed: everything not committed goes, state included
    /// (the assignment follows again, from the committed offsets).
    Reset,
    /// Answer once everything sent before is done.
    Barrier(SyncSender<()>),
}

pub(super) struct Worker<'a> {
    config: &'a KafkaConfig,
    index: usize,
    evaluator: Evaluator,
    hooks: Hooks,
    generation: u64,
    outbox: Arc<Outbox>,
    doorbell: Arc<Doorbell>,
    restorer: BaseConsumer,
    /// This worker's partitions, with the offset of the next record to decide.
    assigned: BTreeMap<i32, Option<i64>>,
    /// Account states of the partitions restored so far.
    states: HashMap<i32, HashMap<String, AccountState>>,
}

impl<'a> Worker<'a> {
    pub(super) fn new(
        config: &'a KafkaConfig,
        index: usize,
        rules: &RuleSet,
        policy: &Policy,
        hooks: Hooks,
        outbox: Arc<Outbox>,
        doorbell: Arc<Doorbell>,
    ) -> Result<Worker<'a>, KafkaRunError> {
        let restorer: BaseConsumer = config
            .client_config()
            .set("group.id", format!("{}-restore", config.group_id))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()?;
        let mut evaluator = Evaluator::new(rules, policy.clone());
        if hooks.observing() {
            evaluator.sample_evaluations(crate::telemetry::EVALUATION_SAMPLE);
        }
        Ok(Worker {
            config,
            index,
            evaluator,
            hooks,
            generation: 0,
            outbox,
            doorbell,
            restorer,
            assigned: BTreeMap::new(),
            states: HashMap::new(),
        })
    }

    /// Works until the intake hangs up.
    pub(super) fn run(mut self, from_intake: Receiver<ToWorker>, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        loop {
            let message = match from_intake.recv_timeout(IDLE) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    // An idle worker takes up new rules too, so every
                    // partition's cutover is known even without traffic.
                    self.adopt_rules();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match message {
                ToWorker::Records(records) => self.decide(records, stop)?,
                ToWorker::Assign(partitions) => self.assigned.extend(partitions),
                ToWorker::Revoke(partitions) => {
                    for p in &partitions {
                        self.assigned.remove(p);
                        self.states.remove(p);
                    }
                    self.outbox.output.lock().unwrap_or_else(|e| e.into_inner()).forget(&partitions);
                }
                ToWorker::Reset => {
                    self.assigned.clear();
                    self.states.clear();
                    *self.outbox.output.lock().unwrap_or_else(|e| e.into_inner()) = Output::default();
                }
                ToWorker::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Decides a chunk of records and puts its output in the outbox.
    fn decide(&mut self, records: Vec<Record>, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        // Records of partitions no longer assigned belong to their new owner.
        let records: Vec<Record> = records.into_iter().filter(|r| self.assigned.contains_key(&r.partition)).collect();
        if records.is_empty() {
            return Ok(());
        }
        self.adopt_rules();
        for p in records.iter().map(|r| r.partition).collect::<HashSet<i32>>() {
            if !self.states.contains_key(&p) {
                let restored = self.restore(p, stop)?;
                self.states.insert(p, restored);
            }
        }
        let topics = &self.config.topics;
        let mut out = Output::default();
        let mut touched: HashMap<i32, HashSet<String>> = HashMap::new();
        // The decision latency, from the chunk's last record's timestamp.
        let newest_ms = records.last().and_then(|r| r.timestamp_ms);
        let started = Instant::now();
        for record in records {
            let position =
                InputPosition { topic: topics.input.clone(), partition: record.partition, offset: record.offset };
            let parsed = parse_input(&record.payload, self.config.max_event_bytes);
            let accounts = self.states.get_mut(&record.partition).expect("restored above");
            let mut view = PartitionAccounts { accounts, touched: touched.entry(record.partition).or_default() };
            let processed = match process(&mut self.evaluator, parsed, position, &mut view) {
                Ok(p) => p,
                Err(never) => match never {},
            };
            out.counters.count(&processed);
            match processed {
                Processed::Decided(decision) => {
                    let mut payload = Vec::with_capacity(2048);
                    decision.write_json(&mut payload);
                    out.records.push(OutRecord {
                        destination: Destination::Decision(decision.event_type),
                        partition: record.partition,
                        key: Some(decision.account_id.into_bytes()),
                        payload: Some(payload),
                        headers: Headers::Decision { id: decision.event_id, event_type: decision.event_type },
                    });
                }
                Processed::DeadLetter(reason) => {
                    tracing::debug!(partition = record.partition, offset = record.offset, "dead-lettered: {reason}");
                    let size = record.payload.len();
                    let (mut key, mut payload) = (record.key, record.payload);
                    payload.truncate(self.dead_letter_payload_max(size));
                    if let Some(key) = key.as_mut() {
                        key.truncate(DEAD_LETTER_KEY_MAX);
                    }
                    let truncated = payload.len() < size;
                    out.records.push(OutRecord {
                        destination: Destination::DeadLetter,
                        partition: record.partition,
                        key,
                        payload: Some(payload),
                        headers: Headers::DeadLetter { reason, offset: record.offset, size, truncated },
                    });
                }
                Processed::Confirmation | Processed::Duplicate => {}
            }
            out.offsets.insert(record.partition, record.offset + 1);
            self.assigned.insert(record.partition, Some(record.offset + 1));
        }
        // What changed of every touched account, once per chunk.
        for (partition, account_id) in touched.into_iter().flat_map(|(p, ids)| ids.into_iter().map(move |id| (p, id))) {
            let Some(state) = self.states.get_mut(&partition).and_then(|a| a.get_mut(&account_id)) else { continue };
            for (key, value) in changelog::records(&account_id, state) {
                out.records.push(OutRecord {
                    destination: Destination::Changelog,
                    partition,
                    key: Some(key),
                    payload: value,
                    headers: Headers::None,
                });
            }
        }
        out.rules = self.evaluator.stats().map(|(id, s)| (id.to_owned(), s.clone())).collect();
        if self.hooks.observing() {
            self.hooks.observe_batch(started.elapsed());
            self.hooks.observe_evaluations(&mut self.evaluator);
            if let Some(ms) = newest_ms {
                let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                self.hooks.observe_decision_latency((now_ms as i64 - ms) as f64 / 1000.0);
            }
        }
        self.deliver(out);
        Ok(())
    }

    /// How much of a dead-lettered record of `size` bytes its dead letter
    /// keeps: all of a record within the size limit, the first
    /// [`TRUNCATED_PAYLOAD_BYTES`] of a larger one, and never more than fits
    /// the producer's message size with the key and headers.
    fn dead_letter_payload_max(&self, size: usize) -> usize {
        let limit = self.config.max_event_bytes;
        let kept = if size > limit { limit.min(TRUNCATED_PAYLOAD_BYTES) } else { size };
        kept.min(self.config.producer_message_max().saturating_sub(DEAD_LETTER_ENVELOPE))
    }

    /// Adds `out` to the outbox, then waits while the outbox holds more than
    /// `batch_max_records` records (the committer is behind).
    fn deliver(&self, out: Output) {
        let mut output = self.outbox.output.lock().unwrap_or_else(|e| e.into_inner());
        output.records.extend(out.records);
        output.offsets.extend(out.offsets);
        output.counters.add(&out.counters);
        output.rules = out.rules;
        self.doorbell.ring();
        while output.records.len() >= self.config.batch_max_records {
            let (next, _) =
                self.outbox.taken.wait_timeout(output, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner());
            output = next;
        }
    }

    /// Between two chunks: swaps to the newest rule set, if there is one,
    /// and reports from which offset of each of its partitions it decides.
    fn adopt_rules(&mut self) {
        if let Some(adopted) = self.hooks.adopt(&mut self.generation, &mut self.evaluator) {
            if self.assigned.is_empty() {
                tracing::debug!(
                    worker = self.index,
                    generation = adopted.number,
                    "rules adopted with no partition assigned"
                );
                return;
            }
            let position = TookEffect::Offsets {
                topic: self.config.topics.input.clone(),
                partitions: self.assigned.iter().map(|(p, next)| (*p, *next)).collect(),
            };
            self.hooks.took_effect(&adopted, &position);
        }
    }

    /// Reads a partition's account states back from the changelog.
    fn restore(&mut self, partition: i32, stop: &AtomicBool) -> Result<HashMap<String, AccountState>, KafkaRunError> {
        let topic = &self.config.topics.changelog;
        let err = |problem: String| KafkaRunError::Restore { topic: topic.clone(), partition, problem };
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning).map_err(|e| err(e.to_string()))?;
        self.restorer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        // The broker may be away or electing a leader: wait for it.
        let what = "reading the changelog's end";
        let (low, high) = retry(stop, what, RESTORE_PATIENCE, || {
            self.restorer.fetch_watermarks(topic, partition, ATTEMPT_TIMEOUT).map_err(Attempt::Again)
        })
        .map_err(|g| match g {
            GaveUp::Stopping => KafkaRunError::Stopped(what),
            GaveUp::Failed(e) => err(e.to_string()),
        })?;
        let mut restore = changelog::Restore::default();
        let mut records = 0u64;
        if high > low {
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(KafkaRunError::Stopped("restoring state from the changelog"));
                }
                if started.elapsed() > RESTORE_PATIENCE {
                    let waited = RESTORE_PATIENCE.as_secs();
                    return Err(err(format!("not finished after {waited} s (high watermark {high})")));
                }
                match self.restorer.poll(Duration::from_millis(500)) {
                    Some(Ok(m)) => {
                        if let Some(key) = m.key() {
                            restore.apply(key, m.payload());
                            records += 1;
                        }
                        if m.offset() + 1 >= high {
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => {
                        tracing::warn!(partition, error = %e, "a changelog record could not be read while restoring")
                    }
                    None => {}
                }
            }
        }
        let accounts = restore.finish().map_err(|e| err(e.to_string()))?;
        self.restorer.unassign().map_err(|e| err(e.to_string()))?;
        tracing::info!(
            partition,
            worker = self.index,
            accounts = accounts.len(),
            records,
            ms = started.elapsed().as_millis() as u64,
            "state restored from the changelog"
        );
        Ok(accounts)
    }
}

/// The accounts of one partition, as the per-record core sees them. A
/// transaction published twice upstream (e.g. by an outbox relay that died
/// before marking it sent) is recognized by its id among the account's
/// recent transactions.
struct PartitionAccounts<'a> {
    accounts: &'a mut HashMap<String, AccountState>,
    /// The accounts of the partition the chunk changed.
    touched: &'a mut HashSet<String>,
}

impl Accounts for PartitionAccounts<'_> {
    type Error = std::convert::Infallible;

    fn account(&mut self, id: &str) -> Result<&mut AccountState, Self::Error> {
        if !self.touched.contains(id) {
            self.touched.insert(id.to_owned());
        }
        if !self.accounts.contains_key(id) {
            self.accounts.insert(id.to_owned(), AccountState::default());
        }
        Ok(self.accounts.get_mut(id).expect("just inserted"))
    }

    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, Self::Error> {
        let id = tx.transaction_id.as_bytes();
        // Ids usually share their length and prefix: the last byte tells
        // most of them apart without a full comparison.
        let same = |p: &weir_sdk::PastTransaction| {
            let other = p.transaction_id.as_bytes();
            other.len() == id.len() && other.last() == id.last() && other == id
        };
        Ok(self.accounts.get(&tx.account_id).is_some_and(|a| a.history.recent(u32::MAX).any(same)))
    }

    fn decided(&mut self, _tx: &TransactionRecorded) {}
}
