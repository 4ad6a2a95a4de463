//! Writing one event to weir's input topic, for the commands that speak for
//! someone other than the bank's transaction producer (`weir case unlock`),
//! or to another of its topics (`weir case resolve`, the dispositions).
//! The record is keyed by its account, like every input event, so it lands
//! on the account's partition, after the transactions produced before it.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::KafkaConfig;

/// How long a publish waits for the broker to acknowledge the record.
const PATIENCE: Duration = Duration::from_secs(30);

/// Where an event landed on the input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Remembers the delivery reports a publish waits for.
#[derive(Default)]
struct Delivery(Mutex<Vec<Result<(i32, i64), KafkaError>>>);

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message as _;
        let report = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(report);
    }
}

/// Writes `payload` to the input topic keyed by `key`, with an idempotent
/// producer (`acks=all`, no duplicates from its own retries), and waits
/// until the broker has it.
pub fn publish_input(config: &KafkaConfig, key: &str, payload: &[u8]) -> Result<Published, KafkaError> {
    publish(config, &config.topics.input, key, payload)
}

/// [`publish_input`] to any topic.
pub fn publish(config: &KafkaConfig, topic: &str, key: &str, payload: &[u8]) -> Result<Published, KafkaError> {
    publish_all(config, topic, [(key, payload)])
}

/// Writes every (key, payload) record to `topic`, in order, with one
/// idempotent producer, and waits until the broker has them all: where the
/// last one landed. Any record the broker refuses fails the whole call
/// (the ones before it may have been written).
pub fn publish_all<'a>(
    config: &KafkaConfig,
    topic: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Published, KafkaError> {
    let producer = config.client_config().set("enable.idempotence", "true").create_with_context(Delivery::default())?;
    send_all(&producer, topic, records)
}

/// [`publish_all`] for records a duplicate of which changes nothing (list
/// changes: applying one twice leaves the lists as once): `acks=all`, one
/// request in flight so a retry cannot reorder them, but no idempotence,
/// whose producer id librdkafka takes about half a second to obtain — time
/// an analyst would wait on every `weir list` change.
pub fn publish_changes<'a>(
    config: &KafkaConfig,
    topic: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Published, KafkaError> {
    let producer = config
        .client_config()
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .create_with_context(Delivery::default())?;
    send_all(&producer, topic, records)
}

/// An idempotent producer kept for many writes, one at a time (the
/// console's actions): it obtains its producer id once, not per write.
pub struct Publisher {
    producer: Mutex<BaseProducer<Delivery>>,
}

impl Publisher {
    pub fn new(config: &KafkaConfig) -> Result<Publisher, KafkaError> {
        let producer =
            config.client_config().set("enable.idempotence", "true").create_with_context(Delivery::default())?;
        Ok(Publisher { producer: Mutex::new(producer) })
    }

    /// Writes one record and waits until the broker has it.
    pub fn publish(&self, topic: &str, key: &str, payload: &[u8]) -> Result<Published, KafkaError> {
        let producer = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        send_all(&producer, topic, [(key, payload)])
    }
}

fn send_all<'a>(
    producer: &BaseProducer<Delivery>,
    topic: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Published, KafkaError> {
    let mut sent = 0;
    for (key, payload) in records {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: let deliveries drain it.
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(50));
                    record = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
        sent += 1;
    }
    // Polled until every report is in: `flush` would wait in steps of 100 ms.
    let deadline = std::time::Instant::now() + PATIENCE;
    let delivered = |p: &BaseProducer<Delivery>| p.context().0.lock().unwrap_or_else(|e| e.into_inner()).len();
    while delivered(producer) < sent && std::time::Instant::now() < deadline {
        producer.poll(Duration::from_millis(5));
    }
    let reports = std::mem::take(&mut *producer.context().0.lock().unwrap_or_else(|p| p.into_inner()));
    if reports.len() < sent {
        return Err(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut));
    }
    let mut last = None;
    for report in reports {
        let (partition, offset) = report?;
        last = Some(Published { topic: topic.to_owned(), partition, offset });
    }
    last.ok_or(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut))
}
