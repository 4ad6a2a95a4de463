//! weir on Apache Kafka: exactly-once consume–decide–produce, pipelined.
//!
//! One instance is a member of the consumer group on the input topic. Three
//! kinds of thread share the work, so reading, deciding and committing
//! overlap:
//!
//! - the **intake** (`intake`) polls the consumer and hands the records of
//!   partition `p` to worker `p % workers`; it also answers the group's
//!   rebalances (a revoked partition's work is committed first, then its
//!   state dropped) and rewinds after a failed transaction;
//! - **decide workers** (`worker`) own their partitions' account state,
//!   restored from the changelog on assignment (all of a worker's new
//!   partitions at once, before their first records), and turn
//!   records into output — decisions, dead letters, the changed parts of
//!   account state for the changelog, the next input offsets — through the
//!   same per-record core as the embedded pipeline ([`crate::record`]);
//! - the **committer** (`committer`) takes what the workers decided so far
//!   and commits it as one Kafka transaction with the input offsets (sent
//!   with the consumer group's metadata, so a zombie of an older generation
//!   cannot commit), then takes the next: a transaction holds what was
//!   decided while the previous one committed, so transactions grow with
//!   the load.
//!
//! A failed transaction is aborted; every partition is rewound to its
//! committed offsets and its state read back from the changelog, so
//! downstream `read_committed` consumers see each input transaction decided
//! exactly once. State follows the account: the input is partitioned by
//! account id, and changelog partition `p` holds the accounts of input
//! partition `p`, as parts (see [`changelog`]). Each instance has a stable
//! transactional id (`<group>-<instance_id>`), so a restarted instance
//! fences its zombie.
//!
//! The committer is an async task on a tokio runtime: it waits for the
//! workers' output, the intake's requests and its timer at once, and is
//! woken from the threads without a syscall-heavy hand-off. The intake and
//! the workers block by nature (librdkafka's poll and rebalance callbacks,
//! the rules' CPU work), so they are threads, joined by bounded channels;
//! ARCHITECTURE.md has the measured comparison behind this split.
//!
//! With entity kinds routed (`kafka.entities`), a task — partition `p` of
//! the input, of each kind's topic and of the verdicts — also routes its
//! transactions to their entities, applies its entities' transactions in
//! event-time order and waits for their verdicts before deciding ([`hop`]);
//! all of it in the same transactions.
//!
//! Only this module knows rdkafka.

pub mod admin;
pub mod changelog;
mod committer;
pub mod config;
pub mod follow;
mod hop;
mod intake;
pub mod lists;
pub mod publish;
pub mod range;
mod retry;
mod trim;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

pub use self::admin::create_topics;
pub use self::config::{KafkaConfig, KafkaConfigError, TopicsConfig};
pub use self::publish::{Published, Publisher, publish, publish_all, publish_changes, publish_input};
pub use self::range::{Bound, read_range};
use crate::engine::{Policy, RuleSet, RuleStats};
use crate::events::DecisionType;
use crate::record::Counters;
use crate::telemetry::Hooks;

/// Why the Kafka pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRunError {
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error(
        "this instance was fenced: another instance uses the transactional id `{0}` (give each instance its own `kafka.instance_id`), or this one was restarted"
    )]
    Fenced(String),
    #[error("topic {topic}: {problem}")]
    Topic { topic: String, problem: String },
    #[error("restoring state from {topic} partition {partition}: {problem}")]
    Restore { topic: String, partition: i32, problem: String },
    #[error("the committer's runtime could not start: {0}")]
    Runtime(String),
    #[error("stopped while waiting for the broker ({0}); nothing was committed meanwhile")]
    Stopped(&'static str),
}

impl KafkaRunError {
    /// The error of a wait for the broker that gave up.
    fn gave_up(what: &'static str, gave_up: retry::GaveUp<KafkaRunError>) -> KafkaRunError {
        match gave_up {
            retry::GaveUp::Stopping => KafkaRunError::Stopped(what),
            retry::GaveUp::Failed(e) => e,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct KafkaSummary {
    /// What became of the records of committed transactions.
    pub counters: Counters,
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Per-rule counters, summed over the workers.
    pub rules: Vec<(String, RuleStats)>,
}

impl std::ops::Deref for KafkaSummary {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

/// Which of weir's topics a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Source {
    Input,
    /// A kind's partitions of the entity hop.
    Entity(weir_sdk::Entity),
    /// Entity rules' verdicts on their way back to the accounts.
    Verdicts,
}

/// The topics an instance reads and the shape of its entity hop.
#[derive(Debug, Clone)]
struct Topology {
    input: String,
    /// The kinds routed, with their topics (none: no hop).
    kinds: Vec<(weir_sdk::Entity, String)>,
    verdicts: String,
    /// The input's partition count (every topic read has as many).
    partitions: i32,
    grace_ms: i64,
    /// `kafka.entity_max_waiting`.
    max_waiting: usize,
}

impl Topology {
    fn new(config: &KafkaConfig, partitions: i32) -> Topology {
        let t = &config.topics;
        Topology {
            input: t.input.clone(),
            kinds: config.entity_kinds().into_iter().map(|k| (k, t.entity(k))).collect(),
            verdicts: t.entity_verdicts.clone(),
            partitions,
            grace_ms: i64::try_from(config.entity_grace_ms).unwrap_or(i64::MAX),
            max_waiting: config.entity_max_waiting,
        }
    }

    fn routes(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// Every topic read.
    fn topics(&self) -> Vec<&str> {
        let mut topics = vec![self.input.as_str()];
        if self.routes() {
            topics.extend(self.kinds.iter().map(|(_, t)| t.as_str()));
            topics.push(&self.verdicts);
        }
        topics
    }

    fn topic(&self, source: Source) -> &str {
        match source {
            Source::Input => &self.input,
            Source::Entity(kind) => self.kinds.iter().find(|(k, _)| *k == kind).map_or("", |(_, t)| t.as_str()),
            Source::Verdicts => &self.verdicts,
        }
    }

    fn source(&self, topic: &str) -> Option<Source> {
        if topic == self.input {
            return Some(Source::Input);
        }
        if self.routes() && topic == self.verdicts {
            return Some(Source::Verdicts);
        }
        self.kinds.iter().find(|(_, t)| t == topic).map(|(k, _)| Source::Entity(*k))
    }
}

/// One record, copied out of the consumer.
struct Record {
    source: Source,
    partition: i32,
    offset: i64,
    /// The record's Kafka timestamp (ms), for the decision latency.
    timestamp_ms: Option<i64>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Where an output record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Destination {
    Decision(DecisionType),
    DeadLetter,
    /// The changelog, in the input record's partition.
    Changelog,
    /// A kind's partitions of the entity hop.
    Entity(weir_sdk::Entity),
    /// The verdicts topic.
    Verdicts,
}

/// What travels with an output record in its headers.
enum Headers {
    None,
    /// CloudEvents attributes of a decision.
    Decision {
        id: uuid::Uuid,
        event_type: DecisionType,
    },
    /// CloudEvents attributes of an analyst's unlock, written on after the
    /// locks on their topic.
    Unlocked {
        id: String,
    },
    /// Why a record was dead-lettered, where it was read, its size, and
    /// whether the payload is only its first bytes.
    DeadLetter {
        reason: String,
        offset: i64,
        size: usize,
        truncated: bool,
    },
}

/// One record to produce in the next transaction.
struct OutRecord {
    destination: Destination,
    /// The task (partition number) it comes from.
    partition: i32,
    /// The partition it goes to; `None`: the producer's, by key.
    target: Option<i32>,
    key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    payload: Option<Vec<u8>>,
    headers: Headers,
    /// For the entity hop's task and verdict records: the input record
    /// (partition, offset) they carry. They serve only until that record is
    /// decided, so the committer leaves them out of a Kafka transaction that
    /// also commits its decision (see `committer::Trim`).
    carries: Option<(i32, i64)>,
}

/// What a worker decided since the committer last took its output.
#[derive(Default)]
struct Output {
    records: Vec<OutRecord>,
    /// Per topic and partition: the offset to commit (after the last
    /// record decided, or of the oldest still waiting in the entity hop).
    offsets: BTreeMap<(Source, i32), i64>,
    counters: Counters,
    /// The worker's per-rule counters so far (not a delta).
    rules: Vec<(String, RuleStats)>,
}

impl Output {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.offsets.is_empty()
    }

    /// Drops what concerns `partitions`.
    fn forget(&mut self, partitions: &[i32]) {
        self.records.retain(|r| !partitions.contains(&r.partition));
        self.offsets.retain(|(_, p), _| !partitions.contains(p));
    }
}

/// A worker's output, shared with the committer, which takes it whole
/// between two of the worker's chunks.
#[derive(Default)]
struct Outbox {
    output: Mutex<Output>,
    /// Signalled when the committer took the output (a worker that is
    /// `batch_max_records` ahead waits for it).
    taken: Condvar,
}

/// The decide worker (of `workers`) that owns partition `p` of every topic.
fn worker_of(partition: i32, workers: usize) -> usize {
    partition.unsigned_abs() as usize % workers.max(1)
}

/// Signals from the workers (threads) to the committer (an async task)
/// that output is waiting; and the lock that makes the committer's taking
/// of every outbox one step for the workers (a worker adds to its outbox
/// under `epoch.read()`, the committer takes them all under `epoch.write()`):
/// what a worker added before another worker added its own never commits
/// in a later transaction than that (see [`hop::Mail`]).
#[derive(Default)]
struct Doorbell {
    notify: tokio::sync::Notify,
    epoch: std::sync::RwLock<()>,
}

impl Doorbell {
    fn ring(&self) {
        self.notify.notify_one();
    }

    /// Waits until rung or `timeout` passes.
    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }
}

/// Runs weir on Kafka until `shutdown` is set; then commits what was
/// decided and leaves the group.
///
/// Each worker decides with its own evaluator over `rules`; between two of
/// its chunks of records it swaps to the newest rule set `hooks` has, and
/// the log and the status name the partition offsets from which the new
/// rules decide.
pub fn run(
    config: &KafkaConfig,
    rules: &RuleSet,
    policy: &Policy,
    shutdown: &Arc<AtomicBool>,
    hooks: &Hooks,
) -> Result<KafkaSummary, KafkaRunError> {
    if config.create_topics {
        create_topics(config, shutdown)?;
    }
    if let Some(live) = &hooks.lists {
        lists::start(config, live.clone(), shutdown)?;
    }
    // The entity hop needs the input's partition count; without it, nothing
    // is asked of the broker.
    let partitions = if config.entity_kinds().is_empty() { 0 } else { admin::input_partitions(config, shutdown)? };
    let topology = Arc::new(Topology::new(config, partitions));
    let n = config.workers();
    let outboxes: Vec<Arc<Outbox>> = (0..n).map(|_| Arc::default()).collect();
    let doorbell = Arc::new(Doorbell::default());
    let full = Arc::new(hop::Full::default());
    let mail = Arc::new(hop::Mail::new(n, partitions));
    let mut workers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for (index, outbox) in outboxes.iter().enumerate() {
        workers.push(worker::Worker::new(
            config,
            topology.clone(),
            index,
            rules,
            policy,
            hooks.clone(),
            (outbox.clone(), doorbell.clone(), full.clone(), mail.clone()),
        )?);
        let (to_worker, from_intake) = std::sync::mpsc::sync_channel(4);
        mail.wake_with(to_worker.clone());
        senders.push(to_worker);
        receivers.push(from_intake);
    }
    let (link, requests) = committer::Link::new();
    let consumer =
        intake::consumer(config, (topology.clone(), full), senders, link.clone(), shutdown.clone(), hooks.clone())?;
    let committer = committer::Committer::new(
        (config, &topology),
        &consumer,
        (link.clone(), requests),
        outboxes,
        doorbell,
        hooks.clone(),
        shutdown,
    )?;
    let entities: Vec<&str> = topology.kinds.iter().map(|(k, _)| k.name()).collect();
    tracing::info!(group = %config.group_id, transactional_id = %config.transactional_id(), input = %config.topics.input, workers = n, ?entities, "weir is consuming");
    let workers = workers.into_iter().zip(receivers).collect();
    run_threads(&consumer, committer, workers, (&link, &mail), shutdown)
}

/// Runs the committer (on its runtime) and the workers on threads of their
/// own and the intake on this one; once the intake stops, stops and joins
/// the others. The first error is reported: the intake's, a worker's, then
/// the committer's.
fn run_threads(
    consumer: &BaseConsumer<intake::IntakeContext>,
    committer: committer::Committer<'_, intake::IntakeContext>,
    workers: Vec<(worker::Worker<'_>, Receiver<worker::ToWorker>)>,
    (link, mail): (&committer::Link, &hop::Mail),
    shutdown: &AtomicBool,
) -> Result<KafkaSummary, KafkaRunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .thread_name("weir-committer")
        .build()
        .map_err(|e| KafkaRunError::Runtime(e.to_string()))?;
    std::thread::scope(|scope| {
        let spawn = |name: String| std::thread::Builder::new().name(name);
        let runtime = &runtime;
        let committer =
            spawn("weir-committer".to_owned()).spawn_scoped(scope, move || runtime.block_on(committer.run()));
        let committer = committer.expect("a thread starts");
        let worker_threads: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(i, (worker, from_intake))| {
                spawn(format!("weir-worker-{i}"))
                    .spawn_scoped(scope, move || worker.run(from_intake, shutdown))
                    .expect("a thread starts")
            })
            .collect();
        let polled = intake::run(consumer, shutdown);
        // The intake has stopped, after committing what it handed over (or
        // on a failure): the committer and the workers stop too.
        link.stop();
        let summary = committer.join().expect("the committer does not panic");
        consumer.context().close();
        // The workers' channels close with the intake's senders and these.
        mail.close();
        let mut worker_error = None;
        for thread in worker_threads {
            if let Err(e) = thread.join().expect("a worker does not panic") {
                worker_error.get_or_insert(e);
            }
        }
        polled?;
        if let Some(e) = worker_error {
            return Err(e);
        }
        let summary = summary?;
        tracing::info!(
            committed = summary.transactions_committed,
            aborted = summary.transactions_aborted,
            "weir has left the group"
        );
        Ok(summary)
    })
}
