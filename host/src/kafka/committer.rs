//! The committer: one Kafka transaction after another, each holding what
//! the workers decided while the previous one committed, and starting no
//! sooner than `commit_interval_ms` after the previous one started.
//!
//! A transaction takes every worker's outbox whole, produces its records
//! (decisions, dead letters, changelog and entity hop records, less those
//! the rest of the transaction makes needless: [`super::trim`]),
//! sends the partitions' next offsets with the consumer group's metadata,
//! and commits. A failed transaction is aborted and the intake is asked to
//! rewind every partition to its committed offsets (the workers drop what
//! was not committed, state included); the committer waits for that before
//! it commits again. The intake asks for a commit of everything decided so
//! far ([`Link::flush`]) before partitions are revoked and before it stops.
//!
//! It runs as an async task (see the module above): one `select` waits for
//! the workers' doorbell, the intake's requests and its timer. The
//! transactional calls themselves block; nothing else runs on its runtime
//! meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::retry::{ATTEMPT_TIMEOUT, Attempt, retry};
use super::trim::Keep;
use super::{
    Destination, Doorbell, Headers, KafkaConfig, KafkaRunError, KafkaSummary, OutRecord, Outbox, Output, Source,
    Topology,
};
use crate::engine::RuleStats;
use crate::events::ACCOUNT_UNLOCKED;
use crate::telemetry::Hooks;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt to abort a transaction waits, and how many are made
/// before the producer is replaced.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
const ABORT_ATTEMPTS: u32 = 3;

/// What the intake asks of the committer.
enum Request {
    /// Commit everything decided so far; answer whether that worked.
    Flush(oneshot::Sender<bool>),
    /// Stop (after the last flush).
    Stop,
}

/// The committer's end of a [`Link`].
pub(super) struct Requests(mpsc::Receiver<Request>);

/// The intake's handle on the committer (used from the intake's thread).
#[derive(Clone)]
pub(super) struct Link {
    requests: mpsc::Sender<Request>,
    reset: Arc<Reset>,
}

/// A rewind the committer needs after a failed transaction.
#[derive(Default)]
struct Reset {
    requested: AtomicBool,
    done: Notify,
}

impl Link {
    /// A link, and the committer's end of it.
    pub(super) fn new() -> (Link, Requests) {
        let (requests, from) = mpsc::channel(4);
        (Link { requests, reset: Arc::default() }, Requests(from))
    }

    /// Commits everything the workers decided so far (call after a barrier,
    /// so that is everything they were given). False if the transaction
    /// failed: the caller then rewinds ([`Link::rewound`]).
    pub(super) fn flush(&self) -> bool {
        let (ack, answer) = oneshot::channel();
        if self.requests.blocking_send(Request::Flush(ack)).is_err() {
            return false;
        }
        answer.blocking_recv().unwrap_or(false)
    }

    /// Whether the committer waits for a rewind.
    pub(super) fn rewind_requested(&self) -> bool {
        self.reset.requested.load(Ordering::Acquire)
    }

    /// Every partition was rewound to its committed offsets and nothing
    /// uncommitted is left: the committer may go on.
    pub(super) fn rewound(&self) {
        self.reset.requested.store(false, Ordering::Release);
        self.reset.done.notify_one();
    }

    /// Stops the committer.
    pub(super) fn stop(&self) {
        let _ = self.requests.try_send(Request::Stop);
        self.rewound();
    }
}

pub(super) struct Committer<'a, C: ConsumerContext> {
    config: &'a KafkaConfig,
    topology: &'a Topology,
    consumer: &'a BaseConsumer<C>,
    producer: ThreadedProducer<DefaultProducerContext>,
    outboxes: Vec<Arc<Outbox>>,
    doorbell: Arc<Doorbell>,
    hooks: Hooks,
    requests: mpsc::Receiver<Request>,
    link: Link,
    summary: KafkaSummary,
    /// Each worker's per-rule counters, as last reported.
    rules: Vec<Vec<(String, RuleStats)>>,
    /// When the producer was last replaced after being fenced.
    renewals: Vec<Instant>,
    /// Transactions in a row that failed on a call to the transaction
    /// coordinator timing out.
    coordinator_timeouts: u32,
    /// Set when weir is asked to stop: waits for the broker give up.
    stop: &'a AtomicBool,
    /// Deleting the entity hop's committed records (none without a hop).
    purge: Option<Purge>,
    /// The offset this instance last committed for each partition, while
    /// nothing can have moved it since (forgotten at every flush: a
    /// rebalance).
    committed: HashMap<(Source, i32), i64>,
}

/// The entity hop's records below the committed offsets, deleted from its
/// topics every `kafka.hop_purge_interval_ms`: nothing reads them again
/// (a restart or a new owner starts at the committed offsets), so the hop
/// keeps on disk only what is still to be decided.
struct Purge {
    admin: AdminClient<DefaultClientContext>,
    every: Duration,
    last: Instant,
    /// The newest committed offset of each hop partition since the last purge.
    committed: HashMap<(Source, i32), i64>,
}

impl<'a, C: ConsumerContext> Committer<'a, C> {
    pub(super) fn new(
        (config, topology): (&'a KafkaConfig, &'a Topology),
        consumer: &'a BaseConsumer<C>,
        (link, requests): (Link, Requests),
        outboxes: Vec<Arc<Outbox>>,
        doorbell: Arc<Doorbell>,
        hooks: Hooks,
        stop: &'a AtomicBool,
    ) -> Result<Self, KafkaRunError> {
        let requests = requests.0;
        Ok(Committer {
            config,
            topology,
            consumer,
            producer: transactional_producer(config, stop)?,
            stop,
            rules: vec![Vec::new(); outboxes.len()],
            outboxes,
            doorbell,
            hooks,
            requests,
            link,
            summary: KafkaSummary::default(),
            renewals: Vec::new(),
            coordinator_timeouts: 0,
            committed: HashMap::new(),
            purge: match (topology.kinds.is_empty(), config.hop_purge_interval_ms) {
                (true, _) | (_, 0) => None,
                (false, ms) => Some(Purge {
                    admin: config.client_config().create()?,
                    every: Duration::from_millis(ms),
                    last: Instant::now(),
                    committed: HashMap::new(),
                }),
            },
        })
    }

    /// Deletes the hop's records below the offsets committed since the last
    /// purge, when one is due. A failure is logged; the next purge retries.
    async fn purge_hop(&mut self) {
        let patience = self.patience();
        let Some(purge) = self.purge.as_mut() else { return };
        if purge.committed.is_empty() || purge.last.elapsed() < purge.every {
            return;
        }
        purge.last = Instant::now();
        let mut offsets = TopicPartitionList::new();
        for ((source, p), o) in purge.committed.drain() {
            if let Err(e) = offsets.add_partition_offset(self.topology.topic(source), p, Offset::Offset(o)) {
                tracing::warn!(error = %e, "cannot name a hop partition to purge");
            }
        }
        let options = AdminOptions::new().request_timeout(Some(patience));
        match purge.admin.delete_records(&offsets, &options).await {
            Ok(result) => {
                let failed: Vec<String> = result
                    .elements()
                    .iter()
                    .filter_map(|e| e.error().err().map(|err| format!("{}/{}: {err}", e.topic(), e.partition())))
                    .collect();
                if failed.is_empty() {
                    tracing::debug!(partitions = result.count(), "entity hop purged up to the committed offsets");
                } else {
                    tracing::warn!(failed = ?failed, "some entity hop partitions were not purged; the next purge retries");
                }
            }
            Err(e) => tracing::warn!(error = %e, "purging the entity hop failed; the next purge retries"),
        }
    }

    /// Commits until stopped.
    pub(super) async fn run(mut self) -> Result<KafkaSummary, KafkaRunError> {
        let idle = Duration::from_millis(self.config.batch_max_ms);
        let interval = Duration::from_millis(self.config.commit_interval_ms);
        let mut started = tokio::time::Instant::now();
        loop {
            // With a commit interval, the next transaction waits for it;
            // a flush (a rebalance, a stop) never does.
            let next = started + interval;
            tokio::select! {
                biased;
                request = self.requests.recv() => match request {
                    Some(Request::Flush(ack)) => {
                        // Partitions may move after this: a new owner may
                        // commit them.
                        self.committed.clear();
                        let ok = self.commit()?;
                        let _ = ack.send(ok);
                        continue;
                    }
                    Some(Request::Stop) | None => break,
                },
                () = async {
                    tokio::time::sleep_until(next).await;
                    self.doorbell.wait(idle).await;
                } => {}
            }
            started = tokio::time::Instant::now();
            if !self.commit()? && !self.wait_for_rewind().await {
                break;
            }
            self.purge_hop().await;
        }
        self.summary.rules = crate::record::rule_stats_of(self.rules.iter().map(Vec::as_slice));
        Ok(self.summary)
    }

    /// Takes every outbox and commits what they held as one transaction.
    /// False if the transaction failed (it is then aborted).
    fn commit(&mut self) -> Result<bool, KafkaRunError> {
        let outputs: Vec<Output> = {
            let _all_at_once = self.doorbell.epoch.write().unwrap_or_else(|e| e.into_inner());
            self.outboxes.iter().map(|o| take(o)).collect()
        };
        if outputs.iter().all(Output::is_empty) {
            return Ok(true);
        }
        let number = self.summary.transactions_committed + self.summary.transactions_aborted + 1;
        let span = tracing::debug_span!("transaction", number);
        let started = Instant::now();
        match span.in_scope(|| self.transact(&outputs)) {
            Ok(ran) => {
                self.coordinator_timeouts = 0;
                if ran {
                    self.hooks.observe_commit(started.elapsed());
                    self.summary.transactions_committed += 1;
                }
                if let Some(purge) = self.purge.as_mut() {
                    for ((source, p), o) in outputs.iter().flat_map(|out| &out.offsets) {
                        if *source != Source::Input {
                            let newest = purge.committed.entry((*source, *p)).or_insert(*o);
                            *newest = (*newest).max(*o);
                        }
                    }
                }
                for (worker, out) in outputs.iter().enumerate() {
                    self.summary.counters.add(&out.counters);
                    if !out.rules.is_empty() {
                        self.rules[worker] = out.rules.clone();
                    }
                }
                let rules = crate::record::rule_stats_of(self.rules.iter().map(Vec::as_slice));
                self.hooks.record(&self.summary.counters, &rules);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "transaction failed, aborting and rewinding");
                self.summary.transactions_aborted += 1;
                let timed_out = e.rdkafka_error_code() == Some(RDKafkaErrorCode::OperationTimedOut);
                self.coordinator_timeouts = if timed_out { self.coordinator_timeouts + 1 } else { 0 };
                if self.coordinator_timeouts >= ABORT_ATTEMPTS && !self.stopping() {
                    // After a broker restart librdkafka can keep each new
                    // request to the transaction coordinator queued on a
                    // connection that never comes back (as for an abort,
                    // below): every transaction then times out the same way.
                    // A new producer connects afresh, and registering it
                    // aborts the open transaction.
                    tracing::warn!(transactional_id = %self.config.transactional_id(), timeouts = self.coordinator_timeouts, "transactions keep timing out at the transaction coordinator; a new producer takes over the transactional id");
                    self.coordinator_timeouts = 0;
                    self.producer = transactional_producer(self.config, self.stop)?;
                } else {
                    self.abort()?;
                }
                Ok(false)
            }
        }
    }

    /// After a failed transaction: drops what the workers decided since
    /// (it will be decided again), asks the intake to rewind, and waits.
    /// False if stopped meanwhile.
    async fn wait_for_rewind(&mut self) -> bool {
        self.link.reset.requested.store(true, Ordering::Release);
        loop {
            for outbox in &self.outboxes {
                take(outbox);
            }
            tokio::select! {
                () = self.link.reset.done.notified() => {
                    if !self.link.reset.requested.load(Ordering::Acquire) {
                        return true;
                    }
                }
                request = self.requests.recv() => match request {
                    // A flush asked meanwhile (the intake, in a rebalance) is
                    // refused: the intake then rewinds itself.
                    Some(Request::Flush(ack)) => {
                        let _ = ack.send(false);
                    }
                    Some(Request::Stop) | None => return false,
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Produces the outputs and commits them with their offsets. False if
    /// there was nothing to commit (no record, no offset that moved): no
    /// transaction then.
    fn transact(&mut self, outputs: &[Output]) -> Result<bool, KafkaError> {
        let started = Instant::now();
        let mut produced = 0usize;
        // What a later record or a decision of this transaction makes
        // needless is left out (see `trim`).
        let plan = super::trim::plan(outputs);
        let has_records = plan.iter().flatten().any(|k| !matches!(k, Keep::No));
        let moved = offsets_to_send(outputs, &self.committed, has_records);
        if moved.is_empty() && !has_records {
            return Ok(false);
        }
        self.producer.begin_transaction()?;
        for (out, keep) in outputs.iter().zip(&plan) {
            for (r, keep) in out.records.iter().zip(keep) {
                match keep {
                    Keep::Yes => self.produce(r, r.payload.as_deref())?,
                    Keep::No => continue,
                    Keep::With(payload) => self.produce(r, Some(payload))?,
                }
                produced += 1;
            }
        }
        let sent = started.elapsed();
        let mut offsets = TopicPartitionList::new();
        for &((source, p), o) in &moved {
            offsets.add_partition_offset(self.topology.topic(source), p, Offset::Offset(o))?;
        }
        if offsets.count() > 0 {
            let metadata = self.consumer.group_metadata().ok_or(KafkaError::NoMessageReceived)?;
            self.producer.send_offsets_to_transaction(&offsets, &metadata, self.patience())?;
        }
        // rust-rdkafka's commit flushes first, and its flush sleeps a whole
        // 100 ms whenever a record is still in flight: wait for the
        // deliveries here, in small steps, instead.
        let offsets_sent = started.elapsed();
        let deadline = Instant::now() + self.patience();
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            if self.stopping() {
                // Asked to stop while deliveries hang: the commit below gets
                // one short attempt.
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let delivered = started.elapsed();
        loop {
            match self.producer.commit_transaction(self.patience()) {
                Ok(()) => {
                    self.committed.extend(moved);
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    tracing::debug!(
                        records = produced,
                        input = outputs.iter().map(|o| o.counters.records).sum::<u64>(),
                        offsets = offsets.count(),
                        produce_ms = ms(sent),
                        offsets_ms = ms(offsets_sent - sent),
                        deliveries_ms = ms(delivered - offsets_sent),
                        commit_ms = ms(started.elapsed() - delivered),
                        "transaction committed"
                    );
                    return Ok(true);
                }
                Err(KafkaError::Transaction(e)) if e.is_retriable() && !self.stopping() => {
                    tracing::warn!(error = %e, "commit of the transaction will be retried");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Produces `r` with `payload` (its own, or one [`super::trim`] merged).
    fn produce(&self, r: &OutRecord, payload: Option<&[u8]>) -> Result<(), KafkaError> {
        let topics = &self.config.topics;
        let topic = match r.destination {
            Destination::Decision(t) => topics.decisions(t),
            Destination::DeadLetter => &topics.dead_letters,
            Destination::Changelog => &topics.changelog,
            Destination::Entity(kind) => self.topology.topic(Source::Entity(kind)),
            Destination::Verdicts => &topics.entity_verdicts,
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        match &r.headers {
            Headers::None => {}
            Headers::Decision { id, event_type } => {
                let mut id_buf = uuid::Uuid::encode_buffer();
                let id = id.hyphenated().encode_lower(&mut id_buf);
                record = record.headers(
                    OwnedHeaders::new()
                        .insert(Header { key: "ce_id", value: Some(&*id) })
                        .insert(Header { key: "ce_type", value: Some(event_type.as_str()) })
                        .insert(Header { key: "ce_source", value: Some("weir") })
                        .insert(Header { key: "ce_specversion", value: Some("1.0") })
                        .insert(Header { key: "content-type", value: Some("application/json") }),
                );
            }
            Headers::Unlocked { id } => {
                record = record.headers(
                    OwnedHeaders::new()
                        .insert(Header { key: "ce_id", value: Some(id.as_str()) })
                        .insert(Header { key: "ce_type", value: Some(ACCOUNT_UNLOCKED) })
                        .insert(Header { key: "ce_source", value: Some("weir") })
                        .insert(Header { key: "ce_specversion", value: Some("1.0") })
                        .insert(Header { key: "content-type", value: Some("application/json") }),
                );
            }
            Headers::DeadLetter { reason, offset, size, truncated } => {
                let truncated = if *truncated { "true" } else { "false" };
                record = record.headers(
                    OwnedHeaders::new()
                        .insert(Header { key: "weir.reason", value: Some(reason.as_str()) })
                        .insert(Header { key: "weir.source.topic", value: Some(topics.input.as_str()) })
                        .insert(Header { key: "weir.source.partition", value: Some(&r.partition.to_string()) })
                        .insert(Header { key: "weir.source.offset", value: Some(&offset.to_string()) })
                        .insert(Header { key: "weir.payload.bytes", value: Some(&size.to_string()) })
                        .insert(Header { key: "weir.truncated", value: Some(truncated) }),
                );
            }
        }
        if let Some(p) = r.target {
            record = record.partition(p);
        }
        send(&self.producer, record, self.stop)
    }

    /// Whether weir was asked to stop: waits for the broker are then cut
    /// short. An uncommitted transaction left behind is never read by a
    /// `read_committed` reader; the next producer with this transactional
    /// id, or the coordinator's timeout, aborts it.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// How long one call to the transaction coordinator may wait: a few
    /// seconds once weir is stopping.
    fn patience(&self) -> Duration {
        if self.stopping() { ATTEMPT_TIMEOUT } else { TXN_TIMEOUT }
    }

    /// Aborts the open transaction, retrying while the broker is away
    /// (unless weir is stopping).
    fn abort(&mut self) -> Result<(), KafkaRunError> {
        let mut timeouts = 0;
        loop {
            let timeout = if self.stopping() { ATTEMPT_TIMEOUT } else { ABORT_TIMEOUT };
            match self.producer.abort_transaction(timeout) {
                Ok(()) => return Ok(()),
                Err(e) if self.stopping() => {
                    tracing::warn!(error = %e, "stopping: the open transaction is left for the coordinator to abort");
                    return Ok(());
                }
                Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                    // A new producer's registration aborts the open transaction.
                    return self.renew_producer();
                }
                Err(e) if timeouts + 1 >= ABORT_ATTEMPTS => {
                    // After a broker restart librdkafka can keep a request to
                    // the transaction coordinator queued on a connection that
                    // never comes back. A new producer connects afresh, and
                    // registering it aborts the open transaction.
                    tracing::warn!(transactional_id = %self.config.transactional_id(), error = %e, "the abort did not reach the transaction coordinator; a new producer takes over the transactional id");
                    self.producer = transactional_producer(self.config, self.stop)?;
                    return Ok(());
                }
                Err(e) => {
                    timeouts += 1;
                    tracing::warn!(error = %e, "abort of the transaction will be retried");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Replaces a producer that was fenced. That happens when its
    /// transaction timed out on the coordinator (the broker was away longer
    /// than `transaction.timeout.ms`); the new producer takes over the same
    /// transactional id. Fenced again and again means another live instance
    /// has this id: then weir stops.
    fn renew_producer(&mut self) -> Result<(), KafkaRunError> {
        let now = Instant::now();
        self.renewals.retain(|t| now.duration_since(*t) < Duration::from_secs(120));
        if self.renewals.len() >= 3 {
            return Err(KafkaRunError::Fenced(self.config.transactional_id()));
        }
        self.renewals.push(now);
        tracing::warn!(transactional_id = %self.config.transactional_id(), "the producer was fenced (its transaction timed out on the coordinator); starting a new one");
        self.producer = transactional_producer(self.config, self.stop)?;
        Ok(())
    }
}

/// The offsets a transaction of `outputs` commits: those that differ
/// from what this instance last committed (`committed`). An offset
/// committed again changes nothing but costs the broker a write, and with
/// the entity hop most of a transaction's partitions (the hop's topics,
/// whose committed offset is the oldest task or verdict still waiting)
/// stay where they were. A transaction with records but no offset that
/// moved sends them all anyway: the offsets carry the consumer group's
/// generation, which is what fences an instance that lost its partitions
/// (the broker refuses them, and the transaction fails).
fn offsets_to_send(
    outputs: &[Output],
    committed: &HashMap<(Source, i32), i64>,
    has_records: bool,
) -> Vec<((Source, i32), i64)> {
    let all = outputs.iter().flat_map(|out| out.offsets.iter().map(|(k, o)| (*k, *o)));
    let moved: Vec<((Source, i32), i64)> = all.clone().filter(|(k, o)| committed.get(k) != Some(o)).collect();
    if moved.is_empty() && has_records { all.collect() } else { moved }
}

/// Takes a worker's output, and lets a worker that waits for it go on.
fn take(outbox: &Outbox) -> Output {
    let mut output = outbox.output.lock().unwrap_or_else(|e| e.into_inner());
    let taken = std::mem::take(&mut *output);
    outbox.taken.notify_all();
    taken
}

/// A transactional producer, registered with the transaction coordinator
/// (which fences any older producer with the same transactional id and
/// aborts its open transaction). Waits while the broker is away, unless
/// `stop` is set.
fn transactional_producer(
    config: &KafkaConfig,
    stop: &AtomicBool,
) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaRunError> {
    // A threaded producer serves delivery reports in the background, which
    // committing and aborting transactions need.
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .client_config()
        .set("transactional.id", config.transactional_id())
        .set("transaction.timeout.ms", config.transaction_timeout_ms.to_string())
        .set("linger.ms", "2")
        // Decisions repeat their rules' names and versions: batches of them
        // compress many times over, for the broker's disk and network.
        .set("compression.type", "lz4")
        // After a commit the coordinator answers CONCURRENT_TRANSACTIONS
        // until its markers are written; librdkafka's default 100 ms backoff
        // would then stall every transaction by 100 ms.
        .set("retry.backoff.ms", "2")
        .set("retry.backoff.max.ms", "20")
        .set("queue.buffering.max.kbytes", "65536")
        .set("queue.buffering.max.messages", "100000")
        .create()?;
    let what = "registering the transactional producer";
    retry(stop, what, Duration::from_secs(600), || match producer.init_transactions(ATTEMPT_TIMEOUT) {
        Ok(()) => Ok(()),
        Err(KafkaError::Transaction(e)) if e.is_fatal() => {
            Err(Attempt::Fail(KafkaRunError::Fenced(config.transactional_id())))
        }
        Err(e) => Err(Attempt::Again(KafkaRunError::from(e))),
    })
    .map_err(|g| KafkaRunError::gave_up(what, g))?;
    Ok(producer)
}

/// Sends a record, waiting while the producer's queue is full (unless weir
/// is stopping: a full queue then fails the transaction, which is left
/// uncommitted).
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) if !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(1));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::Entity;

    fn output(offsets: &[((Source, i32), i64)]) -> Output {
        Output { offsets: offsets.iter().copied().collect(), ..Output::default() }
    }

    #[test]
    fn only_offsets_that_moved_are_committed_unless_none_did_and_records_need_fencing() {
        let device = Source::Entity(Entity::Device);
        let outputs = [
            output(&[((Source::Input, 0), 120), ((device, 0), 40), ((Source::Verdicts, 0), 7)]),
            output(&[((Source::Input, 1), 90), ((device, 1), 12)]),
        ];
        let mut committed = HashMap::new();
        // Nothing committed yet: all of them.
        assert_eq!(offsets_to_send(&outputs, &committed, true).len(), 5);
        committed.extend(offsets_to_send(&outputs, &committed, true));

        // The inputs moved, the hop's partitions did not.
        let next = [
            output(&[((Source::Input, 0), 150), ((device, 0), 40), ((Source::Verdicts, 0), 7)]),
            output(&[((Source::Input, 1), 91), ((device, 1), 12)]),
        ];
        assert_eq!(offsets_to_send(&next, &committed, true), vec![((Source::Input, 0), 150), ((Source::Input, 1), 91)]);

        // Nothing moved: nothing to commit without records; with records,
        // every offset again (they carry the group's generation).
        assert!(offsets_to_send(&outputs, &committed, false).is_empty());
        assert_eq!(offsets_to_send(&outputs, &committed, true).len(), 5);
    }
}
