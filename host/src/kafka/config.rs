//! The `[kafka]` table of weir.toml: brokers, group, topics, batching,
//! and librdkafka properties passed through to every client.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::events::DecisionType;

/// The `[kafka]` table of weir.toml.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// How many records a decide worker may decide ahead of the transaction
    /// that commits them; a worker that is this far ahead waits for the
    /// commit. It bounds memory and the size of a transaction.
    pub batch_max_records: usize,
    /// The longest a decided record waits for its transaction to start when
    /// the committer is idle. Transactions otherwise start as soon as the
    /// previous one is committed and `commit_interval_ms` allows, holding
    /// what was decided meanwhile.
    pub batch_max_ms: u64,
    /// The shortest time from the start of one Kafka transaction to the
    /// start of the next: the one setting that trades latency for broker
    /// CPU. 0: back to back, each holding what was decided while the
    /// previous one committed. The default, 20 ms, halves the broker's CPU
    /// per decision and, on a broker that shares the machine, shortens
    /// the p99 too (BENCHMARKS.md has the trade); more saves the broker
    /// more, for up to that much more latency.
    pub commit_interval_ms: u64,
    /// Threads that decide records in parallel (each owns the partitions
    /// `p` with `p % workers` = its index, with their state). Default: the
    /// machine's cores.
    pub workers: Option<usize>,
    /// `transaction.timeout.ms`: how long a dead instance's open transaction
    /// can hold back `read_committed` readers.
    pub transaction_timeout_ms: u64,
    /// Records larger than this are dead-lettered.
    pub max_event_bytes: usize,
    /// The entity kinds (`device`, `merchant`, `counterparty`, `card`)
    /// whose rules run here: each gets partitions of its own (the topic
    /// `<topics.entity_prefix><kind>`) that a transaction with the entity
    /// visits before its decision. Entity rules of other kinds are refused.
    /// Empty (the default): no hop, and no entity rules.
    pub entities: Vec<String>,
    /// How far behind the latest event time of its input partition a
    /// transaction may come and still be applied to its entities in
    /// event-time order (ms). Entities apply a transaction once every input
    /// partition has passed its event time by this much; a transaction that
    /// comes later than that passes its entity rules unrun, and is counted.
    /// A partition idle at its end passes its latest event time plus the
    /// time it has been idle, less how long records have lately been on
    /// their way to weir, without the grace; a replayed stream (dated well
    /// before it was sent) idle for a second passes everything.
    pub entity_grace_ms: u64,
    /// The most records of one input partition that may wait for their
    /// entities' verdicts in memory. A partition that reaches it is paused
    /// (the records stay in Kafka) until half have been decided; while it
    /// is paused, its grace is waived (it holds the entities back only by
    /// its latest event time), so a full queue always drains.
    pub entity_max_waiting: usize,
    /// How often the entity hop's records below the committed offsets are
    /// deleted from its topics (Kafka's DeleteRecords), so the hop holds on
    /// disk only what is not yet decided. 0: never (the topics' retention
    /// applies).
    pub hop_purge_interval_ms: u64,
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
            batch_max_records: 20_000,
            batch_max_ms: 10,
            commit_interval_ms: 20,
            workers: None,
            transaction_timeout_ms: 10_000,
            max_event_bytes: crate::events::MAX_EVENT_BYTES,
            entities: Vec::new(),
            entity_grace_ms: 0,
            entity_max_waiting: 20_000,
            hop_purge_interval_ms: 30_000,
            topics: TopicsConfig::default(),
            client: BTreeMap::new(),
        }
    }
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// The entity kinds' topics are this followed by the kind
    /// (`weir.by-device`), co-partitioned with the input.
    pub entity_prefix: String,
    /// Where entity rules' verdicts go back to the transactions' accounts,
    /// co-partitioned with the input.
    pub entity_verdicts: String,
    /// Analysts' dispositions (`CaseResolved`), keyed by account id: written
    /// by `weir case resolve`, read as labels by `weir backtest` and `weir
    /// shadow-report` (`--dispositions kafka`).
    pub dispositions: String,
    /// The runtime lists (`ListChanged`, keyed by `list/value`), compacted,
    /// one partition: written by `weir list`, read in full by every
    /// instance.
    pub lists: String,
    /// The console's audit log (`ConsoleAction`, keyed by user), one
    /// partition, kept like any topic: what every analyst did, with what
    /// was there before and after (`weir console`).
    pub audit: String,
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
            entity_prefix: "weir.by-".to_owned(),
            entity_verdicts: "weir.entity-verdicts".to_owned(),
            dispositions: "fraud.dispositions".to_owned(),
            lists: "fraud.lists".to_owned(),
            audit: "fraud.console-audit".to_owned(),
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

    /// The topic of an entity kind's partitions.
    pub fn entity(&self, kind: weir_sdk::Entity) -> String {
        format!("{}{}", self.entity_prefix, kind.name())
    }
}

/// What is wrong with a `[kafka]` table; the text names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("`kafka.bootstrap_servers` must not be empty")]
    NoBootstrapServers,
    #[error("`kafka.batch_max_records` and `kafka.batch_max_ms` must be at least 1")]
    EmptyBatch,
    #[error("`kafka.workers` must be at least 1")]
    NoWorkers,
    #[error("`kafka.entity_max_waiting` must be at least 2")]
    NoWaiting,
    /// A `[kafka.client]` property that is not a string, number or boolean.
    #[error("`kafka.client.\"{key}\"`: use a string, number or boolean")]
    ClientValue { key: String },
    #[error("`kafka.entities`: `{0}` is not an entity kind (device, merchant, counterparty or card)")]
    Entity(String),
}

impl KafkaConfig {
    /// Checks what serde cannot: non-empty servers, positive sizes, and
    /// pass-through values librdkafka can take.
    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(KafkaConfigError::NoBootstrapServers);
        }
        if self.batch_max_records == 0 || self.batch_max_ms == 0 {
            return Err(KafkaConfigError::EmptyBatch);
        }
        if self.workers == Some(0) {
            return Err(KafkaConfigError::NoWorkers);
        }
        if self.entity_max_waiting < 2 {
            return Err(KafkaConfigError::NoWaiting);
        }
        if let Some(bad) = self.entities.iter().find(|e| weir_sdk::Entity::parse(e).is_none()) {
            return Err(KafkaConfigError::Entity(bad.clone()));
        }
        for (key, value) in &self.client {
            if client_value(value).is_none() {
                return Err(KafkaConfigError::ClientValue { key: key.clone() });
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

    /// The entity kinds routed, in the order their rules run (a kind named
    /// twice, once; one that is not a kind, none — see `validate`).
    pub fn entity_kinds(&self) -> Vec<weir_sdk::Entity> {
        weir_sdk::Entity::ALL.into_iter().filter(|k| self.entities.iter().any(|e| e == k.name())).collect()
    }

    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id())
    }

    /// Decide workers to run. Unset, the CPUs available, which on Linux
    /// reads the cgroup's files on every call: ask once per run.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).clamp(1, 64)
    }

    /// A client configuration with the pass-through properties applied.
    /// The largest message weir's producer sends: `message.max.bytes` of
    /// the `client` table, else librdkafka's default. A dead letter is cut
    /// to fit it.
    pub fn producer_message_max(&self) -> usize {
        self.client.get("message.max.bytes").and_then(client_value).and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
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
