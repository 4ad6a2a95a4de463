//! Tributary Bank, runnable: every system of the case study weir comes from,
//! as small programs a bank can copy the patterns of.
//!
//! The case study: a bank extracts fraud detection from its legacy monolith
//! with asynchronous events instead of synchronous calls. Here:
//!
//! - [`bank`]: the legacy bank. It records purchases in its own SQLite
//!   database and writes each purchase's `TransactionRecorded` event in the
//!   same database transaction (a transactional outbox); a relay publishes
//!   the outbox to Kafka with an idempotent producer. It consumes
//!   `AccountLocked` and sets a flag in its own database; a purchase on a
//!   locked account is refused locally. It never calls weir.
//! - [`notifier`]: the notification service. It consumes `AccountLocked` and
//!   `FraudSuspected` and "sends" an email or a push message by writing it
//!   to its own outbox table, once per event even when Kafka redelivers.
//! - [`confirm`]: customer confirmation. The customer answers a
//!   `FraudSuspected` with "it was me", which is published as a
//!   `TransactionVerified` by the customer on weir's input topic.
//! - [`events`]: the wire shapes these systems write and read, written
//!   against weir's JSON Schemas (`schemas/`), not against weir's code.
//! - [`story`]: the scripted story that runs all of them around a real
//!   `weir` process on a real broker and narrates each step
//!   (`cargo run -p tributary --bin story`).
//!
//! Each system is also a binary (`legacy-bank`, `notifier`, `confirm`) with
//! `--help`; the story runs them in-process, on threads, and weir as a child
//! process so it can be stopped and restarted.

pub mod bank;
pub mod confirm;
pub mod events;
pub mod notifier;
pub mod story;

/// Where the systems meet: the broker and the topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kafka {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    pub topics: Topics,
}

/// The topics of the story; the names default to weir's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// weir's input: `TransactionRecorded` (from the bank's outbox) and the
    /// customers' confirmations, keyed by account id.
    pub input: String,
    pub transaction_verified: String,
    pub fraud_suspected: String,
    pub account_locked: String,
    pub dead_letters: String,
    /// weir's account-state changelog (only weir reads it).
    pub changelog: String,
}

impl Topics {
    /// weir's default topic names, each prefixed with `prefix.` when the
    /// prefix is not empty (the story gives each run its own topics).
    pub fn with_prefix(prefix: &str) -> Topics {
        let name = |t: &str| if prefix.is_empty() { t.to_owned() } else { format!("{prefix}.{t}") };
        Topics {
            input: name("transactions.recorded"),
            transaction_verified: name("fraud.transaction-verified"),
            fraud_suspected: name("fraud.fraud-suspected"),
            account_locked: name("fraud.account-locked"),
            dead_letters: name("fraud.dead-letters"),
            changelog: name("weir.account-state"),
        }
    }
}

impl Kafka {
    /// A client configuration for this broker.
    pub(crate) fn client(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }
}

/// A producer context that records each delivery report, by the opaque
/// number the record was sent with, so a caller can act on exactly what the
/// broker acknowledged.
#[derive(Default)]
pub(crate) struct Deliveries {
    reports: std::sync::Mutex<Vec<(i64, Delivery)>>,
}

/// Where the broker put a record (partition, offset), or why it did not.
pub(crate) type Delivery = Result<(i32, i64), String>;

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = Box<i64>;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, id: Box<i64>) {
        use rdkafka::Message;
        let report = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).push((*id, report));
    }
}

impl Deliveries {
    /// The reports received since the last call.
    pub(crate) fn take(&self) -> Vec<(i64, Delivery)> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// An idempotent producer (no duplicates or reordering from its own
/// retries; `acks=all`) that records its delivery reports.
pub(crate) fn idempotent_producer(kafka: &Kafka) -> anyhow::Result<rdkafka::producer::ThreadedProducer<Deliveries>> {
    Ok(kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())?)
}

/// Sets up `tracing` for a binary: to stderr, filtered by `TRIBUTARY_LOG`
/// (or `RUST_LOG`), `info` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// The current time as RFC 3339 UTC with milliseconds, as events carry it.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .expect("a UTC time formats")
}
