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

/// Remembers the one delivery report a publish waits for.
#[derive(Default)]
struct Delivery(Mutex<Option<Result<(i32, i64), KafkaError>>>);

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message as _;
        let report = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
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
    let producer: BaseProducer<Delivery> =
        config.client_config().set("enable.idempotence", "true").create_with_context(Delivery::default())?;
    producer.send(BaseRecord::to(topic).key(key).payload(payload)).map_err(|(e, _)| e)?;
    producer.flush(PATIENCE)?;
    let report = producer.context().0.lock().unwrap_or_else(|p| p.into_inner()).take();
    match report {
        Some(Ok((partition, offset))) => Ok(Published { topic: topic.to_owned(), partition, offset }),
        Some(Err(e)) => Err(e),
        None => Err(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)),
    }
}
