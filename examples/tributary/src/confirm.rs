//! Customer confirmation: the customer answers a `FraudSuspected` with
//! "it was me".
//!
//! The answer is a `TransactionVerified` event with `verified_by =
//! "customer"`, produced to weir's input topic and keyed by account id, so
//! it lands in the same partition as the account's purchases, after the
//! suspected one and before any later one. weir records the merchant in the
//! account's state and decides nothing for it; from then on its rules see
//! the account's purchases at that merchant as confirmed by the customer
//! (the shipped `merchant-block` rule no longer suspects a blocked category
//! there). Consumers that want to see confirmations read them from the
//! input topic; this service publishes nowhere else.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::events::{CustomerConfirmation, Decision};
use crate::{Kafka, idempotent_producer, now_rfc3339};

/// The confirmation of the purchase `suspected` is about.
pub fn confirmation_of(suspected: &Decision) -> CustomerConfirmation {
    CustomerConfirmation {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: "TransactionVerified".to_owned(),
        schema_version: 1,
        occurred_at: now_rfc3339(),
        causation_id: suspected.event_id.clone(),
        transaction_id: suspected.transaction_id.clone(),
        account_id: suspected.account_id.clone(),
        merchant_id: suspected.merchant_id.clone(),
        verified_by: "customer".to_owned(),
    }
}

/// Publishes the customer's confirmation of `suspected` and waits until the
/// broker has it.
pub fn confirm(kafka: &Kafka, suspected: &Decision) -> anyhow::Result<CustomerConfirmation> {
    anyhow::ensure!(
        suspected.event_type == "FraudSuspected",
        "transaction {} was not suspected ({}): there is nothing to confirm",
        suspected.transaction_id,
        suspected.event_type
    );
    let confirmation = confirmation_of(suspected);
    let producer = idempotent_producer(kafka).context("creating the confirmation producer")?;
    let payload = serde_json::to_string(&confirmation)?;
    let record =
        BaseRecord::with_opaque_to(&kafka.topics.input, Box::new(0)).key(&confirmation.account_id).payload(&payload);
    producer.send(record).map_err(|(e, _)| anyhow::anyhow!("queueing the confirmation: {e}"))?;
    producer.flush(Duration::from_secs(30))?;
    match producer.context().take().pop() {
        Some((_, Ok(_))) => {}
        Some((_, Err(e))) => anyhow::bail!("publishing the confirmation to {}: {e}", kafka.topics.input),
        None => anyhow::bail!("no delivery report for the confirmation within 30 s"),
    }
    tracing::info!(account_id = %confirmation.account_id, transaction_id = %confirmation.transaction_id, "customer confirmation published");
    Ok(confirmation)
}

/// Finds weir's `FraudSuspected` decision for a transaction on the
/// fraud-suspected topic (`read_committed`), waiting up to `timeout`.
pub fn find_suspected(kafka: &Kafka, transaction_id: &str, timeout: Duration) -> anyhow::Result<Decision> {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", "tributary-confirm")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let topic = &kafka.topics.fraud_suspected;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics().first().map(|t| t.partitions()).unwrap_or_default() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            if let Some(Ok(d)) = message.payload().map(serde_json::from_slice::<Decision>)
                && d.transaction_id == transaction_id
            {
                return Ok(d);
            }
        }
    }
    anyhow::bail!("no FraudSuspected decision for transaction {transaction_id} on {topic} within {timeout:?}")
}
