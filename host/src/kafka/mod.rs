//! weir on Apache Kafka: exactly-once consume–decide–produce.
//!
//! One instance is a member of the consumer group on the input topic. For
//! each batch of records it opens a Kafka transaction that holds
//! - the decisions, one topic per decision type, keyed by account id;
//! - the dead letters (the original record, the reason in headers);
//! - the new state of every account the batch touched, on the compacted
//!   changelog topic, in the same partition number as the input record;
//! - the consumer offsets of the batch (with the group's metadata, so a
//!   zombie from an older generation cannot commit);
//!
//! and commits it, or aborts it and rewinds to the committed offsets with
//! the state restored from the changelog. Downstream `read_committed`
//! consumers therefore see each input transaction decided exactly once.
//!
//! State follows the account: the input is partitioned by account id, and
//! the changelog partition `p` holds the accounts of input partition `p`.
//! When a partition is assigned, its state is read back from the changelog
//! (`read_committed`) before any of its records is decided; when it is
//! revoked, its state is dropped. Each instance has a stable transactional
//! id (`<group>-<instance_id>`), so a restarted instance fences its zombie.
//!
//! Only this module knows rdkafka.

pub mod changelog;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

use crate::engine::Evaluator;
use crate::events::{DecisionType, InputEvent, InputPosition, parse_input};
use crate::state::AccountState;
use crate::status::Hooks;

/// The `[kafka]` table of weir.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// The consumer group all instances share.
    pub group_id: String,
    /// This instance's stable name; its transactional id is
    /// `<group_id>-<instance_id>`. Default: the host name.
    pub instance_id: Option<String>,
    /// Create missing topics at start (the changelog is compacted and gets
    /// the input's partition count).
    pub create_topics: bool,
    /// Partitions of topics weir creates (the changelog follows the input).
    pub partitions: i32,
    pub replication_factor: i32,
    /// A batch (one Kafka transaction) ends after this many records…
    pub batch_max_records: usize,
    /// …or after this long.
    pub batch_max_ms: u64,
    /// `transaction.timeout.ms`: how long a dead instance's open transaction
    /// can hold back `read_committed` readers.
    pub transaction_timeout_ms: u64,
    /// Records larger than this are dead-lettered.
    pub max_event_bytes: usize,
    pub topics: TopicsConfig,
    /// librdkafka properties for every client (TLS, SASL, …), passed through.
    pub client: BTreeMap<String, toml::Value>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            group_id: "weir".to_owned(),
            instance_id: None,
            create_topics: true,
            partitions: 6,
            replication_factor: 1,
            batch_max_records: 500,
            batch_max_ms: 100,
            transaction_timeout_ms: 10_000,
            max_event_bytes: crate::events::MAX_EVENT_BYTES,
            topics: TopicsConfig::default(),
            client: BTreeMap::new(),
        }
    }
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// `TransactionRecorded` events, keyed by account id.
    pub input: String,
    pub transaction_verified: String,
    pub fraud_suspected: String,
    pub account_locked: String,
    /// Records that are not valid `TransactionRecorded` events.
    pub dead_letters: String,
    /// Compacted topic of account state, co-partitioned with the input.
    pub changelog: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            input: "transactions.recorded".to_owned(),
            transaction_verified: "fraud.transaction-verified".to_owned(),
            fraud_suspected: "fraud.fraud-suspected".to_owned(),
            account_locked: "fraud.account-locked".to_owned(),
            dead_letters: "fraud.dead-letters".to_owned(),
            changelog: "weir.account-state".to_owned(),
        }
    }
}

impl TopicsConfig {
    pub fn decisions(&self, t: DecisionType) -> &str {
        match t {
            DecisionType::TransactionVerified => &self.transaction_verified,
            DecisionType::FraudSuspected => &self.fraud_suspected,
            DecisionType::AccountLocked => &self.account_locked,
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("`kafka.bootstrap_servers` must not be empty".to_owned());
        }
        if self.batch_max_records == 0 || self.batch_max_ms == 0 {
            return Err("`kafka.batch_max_records` and `kafka.batch_max_ms` must be at least 1".to_owned());
        }
        for (key, value) in &self.client {
            if client_value(value).is_none() {
                return Err(format!("`kafka.client.\"{key}\"`: use a string, number or boolean"));
            }
        }
        Ok(())
    }

    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "weir".to_owned())
        })
    }

    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id())
    }

    /// A client configuration with the pass-through properties applied.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.client {
            if let Some(v) = client_value(value) {
                c.set(key, v);
            }
        }
        c
    }
}

fn client_value(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

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
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct KafkaSummary {
    pub decisions: BTreeMap<DecisionType, u64>,
    pub dead_letters: u64,
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Transactions skipped because the account's recent history shows them
    /// decided already (an event published twice upstream).
    pub duplicates: u64,
}

/// Rebalance events, recorded by the consumer's callbacks.
#[derive(Default)]
struct RebalanceLog {
    revoked: Mutex<HashSet<i32>>,
}

struct GroupContext {
    log: Arc<RebalanceLog>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.log.revoked.lock().unwrap_or_else(|e| e.into_inner());
            revoked.extend(tpl.elements().iter().map(|e| e.partition()));
            tracing::info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
        }
    }
}

/// One input record, copied out of the consumer.
struct Record {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt to abort a transaction waits, and how many are made
/// before the producer is replaced.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
const ABORT_ATTEMPTS: u32 = 3;
/// How long restoring a partition's state may wait for the broker.
const RESTORE_PATIENCE: Duration = Duration::from_secs(300);

/// Runs weir on Kafka until `shutdown` is set; then finishes the open
/// batch, commits it, and leaves the group.
///
/// Between two batches (two Kafka transactions) the evaluator swaps to the
/// newest rule set `hooks` has; the log and the status name the partition
/// offsets from which the new rules decide.
pub fn run(
    config: &KafkaConfig,
    evaluator: &mut Evaluator,
    shutdown: &AtomicBool,
    hooks: &Hooks,
) -> Result<KafkaSummary, KafkaRunError> {
    if config.create_topics {
        create_topics(config)?;
    }
    let log = Arc::new(RebalanceLog::default());
    let consumer: BaseConsumer<GroupContext> = config
        .client_config()
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("queued.max.messages.kbytes", "16384")
        .create_with_context(GroupContext { log: log.clone() })?;
    let producer = transactional_producer(config)?;
    consumer.subscribe(&[&config.topics.input])?;
    tracing::info!(group = %config.group_id, transactional_id = %config.transactional_id(), input = %config.topics.input, "weir is consuming");

    let restorer: BaseConsumer = config
        .client_config()
        .set("group.id", format!("{}-restore", config.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;

    let mut worker = Worker {
        config,
        consumer,
        producer,
        restorer,
        log,
        states: HashMap::new(),
        summary: KafkaSummary::default(),
        renewals: Vec::new(),
    };
    let mut generation = 0;
    while !shutdown.load(Ordering::Relaxed) {
        let batch = worker.poll_batch(shutdown);
        if batch.is_empty() {
            continue;
        }
        if let Some(adopted) = hooks.adopt(&mut generation, evaluator) {
            hooks.took_effect(&adopted, worker.positions(&batch));
        }
        worker.decide_batch(batch, evaluator)?;
        let s = &worker.summary;
        let records = s.decisions.values().sum::<u64>() + s.dead_letters;
        hooks.record_batch(records, &s.decisions, s.dead_letters, evaluator);
    }
    tracing::info!(committed = worker.summary.transactions_committed, "weir is leaving the group");
    worker.consumer.unsubscribe();
    Ok(worker.summary)
}

/// A transactional producer, registered with the transaction coordinator
/// (which fences any older producer with the same transactional id and
/// aborts its open transaction). Waits while the broker is away.
fn transactional_producer(config: &KafkaConfig) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaRunError> {
    // A threaded producer serves delivery reports in the background, which
    // committing and aborting transactions need.
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .client_config()
        .set("transactional.id", config.transactional_id())
        .set("transaction.timeout.ms", config.transaction_timeout_ms.to_string())
        .set("linger.ms", "5")
        // After a commit the coordinator answers CONCURRENT_TRANSACTIONS
        // until its markers are written; librdkafka's default 100 ms backoff
        // would then stall every transaction by 100 ms.
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "100")
        .set("queue.buffering.max.kbytes", "65536")
        .set("queue.buffering.max.messages", "100000")
        .create()?;
    let started = Instant::now();
    loop {
        match producer.init_transactions(TXN_TIMEOUT) {
            Ok(()) => return Ok(producer),
            Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                return Err(KafkaRunError::Fenced(config.transactional_id()));
            }
            Err(e) if started.elapsed() < Duration::from_secs(600) => {
                tracing::warn!("registering the transactional producer will be retried: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

struct Worker<'a> {
    config: &'a KafkaConfig,
    consumer: BaseConsumer<GroupContext>,
    producer: ThreadedProducer<DefaultProducerContext>,
    restorer: BaseConsumer,
    log: Arc<RebalanceLog>,
    /// Account states of the assigned partitions that have been restored.
    states: HashMap<i32, HashMap<String, AccountState>>,
    summary: KafkaSummary,
    /// When the producer was last replaced after being fenced.
    renewals: Vec<Instant>,
}

impl Worker<'_> {
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
        self.producer = transactional_producer(self.config)?;
        Ok(())
    }

    /// Polls until the batch is full or its time is up; drops records of
    /// partitions revoked meanwhile (their new owner decides them).
    fn poll_batch(&mut self, shutdown: &AtomicBool) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_millis(self.config.batch_max_ms);
        let mut batch = Vec::new();
        while batch.len() < self.config.batch_max_records && !shutdown.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left) {
                None => break,
                Some(Ok(m)) => batch.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                }),
                Some(Err(e)) => {
                    tracing::warn!("consumer: {e}");
                    break;
                }
            }
        }
        let revoked: HashSet<i32> = std::mem::take(&mut *self.log.revoked.lock().unwrap_or_else(|e| e.into_inner()));
        for p in &revoked {
            self.states.remove(p);
        }
        if !revoked.is_empty() {
            let assigned = self.assigned();
            batch.retain(|r| assigned.contains(&r.partition));
        }
        batch
    }

    /// Where `batch` starts on each assigned partition: its first offset
    /// there, or the consumer's position for partitions it has none of.
    fn positions(&self, batch: &[Record]) -> String {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for r in batch {
            first.entry(r.partition).and_modify(|o| *o = (*o).min(r.offset)).or_insert(r.offset);
        }
        let known = |tpl: Option<TopicPartitionList>| -> Vec<(i32, i64)> {
            tpl.map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
        };
        for (p, o) in known(self.consumer.position().ok()) {
            first.entry(p).or_insert(o);
        }
        // A partition not fetched from yet starts at its committed offset
        // (or, with none, at its beginning).
        let assigned: BTreeSet<i32> = self.assigned().into_iter().collect();
        if assigned.iter().any(|p| !first.contains_key(p)) {
            for (p, o) in known(self.consumer.committed(Duration::from_secs(10)).ok()) {
                first.entry(p).or_insert(o);
            }
        }
        let input = &self.config.topics.input;
        let mut parts: Vec<String> = first.iter().map(|(p, o)| format!("{input}[{p}]@{o}")).collect();
        parts.extend(assigned.iter().filter(|p| !first.contains_key(p)).map(|p| format!("{input}[{p}]@start")));
        parts.join(", ")
    }

    fn assigned(&self) -> HashSet<i32> {
        self.consumer.assignment().map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default()
    }

    /// Decides a batch in one Kafka transaction; on failure aborts and rewinds.
    fn decide_batch(&mut self, batch: Vec<Record>, evaluator: &mut Evaluator) -> Result<(), KafkaRunError> {
        let partitions: HashSet<i32> = batch.iter().map(|r| r.partition).collect();
        for p in partitions {
            if !self.states.contains_key(&p) {
                let restored = self.restore(p)?;
                self.states.insert(p, restored);
            }
        }
        let result = self.transact(&batch, evaluator);
        match result {
            Ok(counts) => {
                self.summary.transactions_committed += 1;
                for (t, n) in counts.0 {
                    *self.summary.decisions.entry(t).or_default() += n;
                }
                self.summary.dead_letters += counts.1;
                self.summary.duplicates += counts.2;
                Ok(())
            }
            Err(e) => {
                tracing::warn!("transaction failed, aborting and rewinding: {e}");
                self.summary.transactions_aborted += 1;
                // The batch changed these partitions' state in memory; the
                // committed state is read back from the changelog.
                for r in &batch {
                    self.states.remove(&r.partition);
                }
                self.abort_and_rewind(&batch)
            }
        }
    }

    /// Decides `batch` and commits decisions, dead letters, state and offsets
    /// in one transaction: (decisions by type, dead letters, duplicates).
    fn transact(
        &mut self,
        batch: &[Record],
        evaluator: &mut Evaluator,
    ) -> Result<(BTreeMap<DecisionType, u64>, u64, u64), KafkaError> {
        let topics = &self.config.topics;
        self.producer.begin_transaction()?;
        let mut decided: BTreeMap<DecisionType, u64> = BTreeMap::new();
        let mut dead = 0;
        let mut duplicates = 0;
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut touched: BTreeSet<(i32, String)> = BTreeSet::new();
        for r in batch {
            next.insert(r.partition, r.offset + 1);
            let position = InputPosition { topic: topics.input.clone(), partition: r.partition, offset: r.offset };
            let tx = match parse_input(&r.payload, self.config.max_event_bytes) {
                Ok(InputEvent::Transaction(tx)) => tx,
                Ok(InputEvent::CustomerConfirmation(confirmation)) => {
                    // No decision: the account's state changes, on the changelog in this transaction.
                    let accounts = self.states.entry(r.partition).or_default();
                    touched.insert((r.partition, confirmation.account_id.clone()));
                    accounts.entry(confirmation.account_id.clone()).or_default().record_confirmation(&confirmation);
                    tracing::info!(account_id = %confirmation.account_id, merchant_id = %confirmation.merchant_id, transaction_id = %confirmation.transaction_id, "customer confirmation recorded");
                    continue;
                }
                Err(reason) => {
                    let reason = reason.to_string();
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "weir.reason", value: Some(reason.as_str()) })
                        .insert(Header { key: "weir.source.topic", value: Some(topics.input.as_str()) })
                        .insert(Header { key: "weir.source.partition", value: Some(&r.partition.to_string()) })
                        .insert(Header { key: "weir.source.offset", value: Some(&r.offset.to_string()) });
                    let mut record =
                        BaseRecord::<[u8], [u8]>::to(&topics.dead_letters).payload(&r.payload).headers(headers);
                    if let Some(k) = &r.key {
                        record = record.key(k);
                    }
                    send(&self.producer, record)?;
                    dead += 1;
                    continue;
                }
            };
            let accounts = self.states.entry(r.partition).or_default();
            let account = accounts.entry(tx.account_id.clone()).or_default();
            // An event published twice upstream (e.g. by an outbox relay that
            // died before marking it sent) is recognized by its transaction
            // id among the account's recent transactions: one decision only.
            if account.history.recent(u32::MAX).any(|p| p.transaction_id == tx.transaction_id) {
                tracing::info!(transaction_id = %tx.transaction_id, partition = r.partition, offset = r.offset, "already decided; skipped");
                duplicates += 1;
                continue;
            }
            touched.insert((r.partition, tx.account_id.clone()));
            let decision = evaluator.decide(&tx, account, position);
            let json = serde_json::to_vec(&decision).expect("decisions always serialize");
            let id = decision.event_id.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "ce_id", value: Some(id.as_str()) })
                .insert(Header { key: "ce_type", value: Some(decision.event_type.as_str()) })
                .insert(Header { key: "ce_source", value: Some("weir") })
                .insert(Header { key: "ce_specversion", value: Some("1.0") })
                .insert(Header { key: "content-type", value: Some("application/json") });
            let record = BaseRecord::to(topics.decisions(decision.event_type))
                .key(tx.account_id.as_str())
                .payload(&json)
                .headers(headers);
            send(&self.producer, record)?;
            *decided.entry(decision.event_type).or_default() += 1;
        }
        // What changed of every touched account, once per batch.
        for (partition, account_id) in &touched {
            let Some(state) = self.states.get_mut(partition).and_then(|a| a.get_mut(account_id)) else { continue };
            for (key, value) in changelog::records(account_id, state) {
                let record = BaseRecord::<[u8], [u8]>::to(&topics.changelog).partition(*partition).key(&key);
                send(
                    &self.producer,
                    match &value {
                        Some(bytes) => record.payload(bytes),
                        None => record,
                    },
                )?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets.add_partition_offset(&topics.input, *p, Offset::Offset(*o))?;
        }
        let metadata = self.consumer.group_metadata().ok_or(KafkaError::NoMessageReceived)?;
        self.producer.send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)?;
        // rust-rdkafka's commit flushes first, and its flush sleeps a whole
        // 100 ms whenever a record is still in flight: wait for the
        // deliveries here, in small steps, instead.
        let deadline = Instant::now() + TXN_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            match self.producer.commit_transaction(TXN_TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                    tracing::warn!("commit of the transaction will be retried: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((decided, dead, duplicates))
    }

    /// Aborts the open transaction (retrying while the broker is away) and
    /// seeks the batch's partitions back to their committed offsets.
    fn abort_and_rewind(&mut self, batch: &[Record]) -> Result<(), KafkaRunError> {
        let mut timeouts = 0;
        loop {
            match self.producer.abort_transaction(ABORT_TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                    // A new producer's registration aborts the open transaction.
                    self.renew_producer()?;
                    break;
                }
                Err(e) if timeouts + 1 >= ABORT_ATTEMPTS => {
                    // After a broker restart librdkafka can keep a request to
                    // the transaction coordinator queued on a connection that
                    // never comes back. A new producer connects afresh, and
                    // registering it aborts the open transaction.
                    tracing::warn!(transactional_id = %self.config.transactional_id(), "the abort did not reach the transaction coordinator ({e}); a new producer takes over the transactional id");
                    self.producer = transactional_producer(self.config)?;
                    break;
                }
                Err(e) => {
                    timeouts += 1;
                    tracing::warn!("abort of the transaction will be retried: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let partitions: HashSet<i32> = batch.iter().map(|r| r.partition).collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&self.config.topics.input, *p);
        }
        let committed = loop {
            match self.consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!("reading committed offsets will be retried: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let assigned = self.assigned();
        for e in committed.elements() {
            if !assigned.contains(&e.partition()) {
                continue;
            }
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            if let Err(err) = self.consumer.seek(e.topic(), e.partition(), offset, Duration::from_secs(10)) {
                // A partition that cannot be rewound is restored from scratch.
                tracing::warn!(partition = e.partition(), "seek failed ({err}); the partition will be reassigned");
                self.states.remove(&e.partition());
            }
        }
        Ok(())
    }

    /// Reads a partition's account states back from the changelog.
    fn restore(&mut self, partition: i32) -> Result<HashMap<String, AccountState>, KafkaRunError> {
        let topic = &self.config.topics.changelog;
        let err = |problem: String| KafkaRunError::Restore { topic: topic.clone(), partition, problem };
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning).map_err(|e| err(e.to_string()))?;
        self.restorer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        // The broker may be away or electing a leader: wait for it.
        let (low, high) = loop {
            match self.restorer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
                Ok(w) => break w,
                Err(e) if started.elapsed() < RESTORE_PATIENCE => {
                    tracing::warn!(partition, "reading the changelog's end will be retried: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(err(e.to_string())),
            }
        };
        let mut restore = changelog::Restore::default();
        if high > low {
            loop {
                if started.elapsed() > RESTORE_PATIENCE {
                    let waited = RESTORE_PATIENCE.as_secs();
                    return Err(err(format!("not finished after {waited} s (high watermark {high})")));
                }
                match self.restorer.poll(Duration::from_millis(500)) {
                    Some(Ok(m)) => {
                        if let Some(key) = m.key() {
                            restore.apply(key, m.payload());
                        }
                        if m.offset() + 1 >= high {
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => tracing::warn!(partition, "restoring: {e}"),
                    None => {}
                }
            }
        }
        let accounts = restore.finish().map_err(err)?;
        self.restorer.unassign().map_err(|e| err(e.to_string()))?;
        tracing::info!(
            partition,
            accounts = accounts.len(),
            ms = started.elapsed().as_millis() as u64,
            "state restored from the changelog"
        );
        Ok(accounts)
    }
}

/// Sends a record, waiting while the producer's queue is full.
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                std::thread::sleep(Duration::from_millis(5));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Creates the topics that do not exist: decisions and dead letters with
/// `partitions`, the changelog compacted with the input's partition count.
pub fn create_topics(config: &KafkaConfig) -> Result<(), KafkaRunError> {
    let admin: AdminClient<_> = config.client_config().create()?;
    let t = &config.topics;
    let rf = || TopicReplication::Fixed(config.replication_factor);
    let plain: Vec<NewTopic> =
        [&t.input, &t.transaction_verified, &t.fraud_suspected, &t.account_locked, &t.dead_letters]
            .into_iter()
            .map(|name| NewTopic::new(name, config.partitions, rf()))
            .collect();
    create(&admin, &plain)?;
    // The changelog must have exactly the input's partitions.
    let input_partitions = partition_count(&admin, &t.input)?;
    let changelog = NewTopic::new(&t.changelog, input_partitions, rf()).set("cleanup.policy", "compact");
    create(&admin, std::slice::from_ref(&changelog))?;
    let changelog_partitions = partition_count(&admin, &t.changelog)?;
    if changelog_partitions != input_partitions {
        return Err(KafkaRunError::Topic {
            topic: t.changelog.clone(),
            problem: format!(
                "has {changelog_partitions} partitions but the input {} has {input_partitions}; they must match",
                t.input
            ),
        });
    }
    Ok(())
}

/// The partition count of `topic`, waiting a little for a new topic's
/// metadata to reach the broker we ask.
fn partition_count(
    admin: &AdminClient<rdkafka::client::DefaultClientContext>,
    topic: &str,
) -> Result<i32, KafkaRunError> {
    let started = Instant::now();
    loop {
        let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let n = metadata.topics().first().map(|m| m.partitions().len() as i32).unwrap_or(0);
        if n > 0 {
            return Ok(n);
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(KafkaRunError::Topic { topic: topic.to_owned(), problem: "has no partitions".to_owned() });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(
    admin: &AdminClient<rdkafka::client::DefaultClientContext>,
    topics: &[NewTopic],
) -> Result<(), KafkaRunError> {
    let results = futures_executor::block_on(admin.create_topics(topics, &AdminOptions::new()))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaRunError::Topic { topic, problem: format!("cannot be created: {code}") });
            }
        }
    }
    Ok(())
}
