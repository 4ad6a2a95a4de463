//! Reading a topic between two offsets or two timestamps, for backtests:
//! its own consumer, assigned every partition, committing nothing and
//! joining no group's work.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaRunError};

/// Where a range starts or ends, on every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The partition's beginning (start) or its current end (end).
    Edge,
    /// This offset on every partition (start: inclusive; end: exclusive).
    Offset(i64),
    /// The first record at or after this event time in ms (Kafka's record
    /// timestamps).
    Time(i64),
}

/// How long a range read waits for the broker.
const PATIENCE: Duration = Duration::from_secs(60);

/// The records of `topic` from `from` up to `to`, partition after
/// partition (each in offset order), read `read_committed` by a consumer
/// that commits nothing.
pub fn read_range(config: &KafkaConfig, topic: &str, from: Bound, to: Bound) -> Result<Vec<Vec<u8>>, KafkaRunError> {
    let consumer: BaseConsumer = config
        .client_config()
        .set("group.id", format!("{}-backtest", config.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), PATIENCE)?;
    let partitions: Vec<i32> =
        metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    if partitions.is_empty() {
        return Err(KafkaRunError::Topic { topic: topic.to_owned(), problem: "has no partitions".to_owned() });
    }
    let offsets_at = |bound: Bound, edge_is_end: bool| -> Result<Vec<(i32, i64)>, KafkaRunError> {
        let mut out = Vec::new();
        for &p in &partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, PATIENCE)?;
            let offset = match bound {
                Bound::Edge if edge_is_end => high,
                Bound::Edge => low,
                Bound::Offset(o) => o.clamp(low, high),
                Bound::Time(ms) => {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(topic, p, Offset::Offset(ms))?;
                    let found = consumer.offsets_for_times(tpl, PATIENCE)?;
                    match found.elements().first().map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        // No record at or after that time.
                        _ => high,
                    }
                }
            };
            out.push((p, offset));
        }
        Ok(out)
    };
    let starts = offsets_at(from, false)?;
    let ends = offsets_at(to, true)?;
    let mut records = Vec::new();
    for ((p, start), (_, end)) in starts.into_iter().zip(ends) {
        if start >= end {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
        consumer.assign(&tpl)?;
        let started = Instant::now();
        loop {
            if started.elapsed() > PATIENCE {
                return Err(KafkaRunError::Topic {
                    topic: topic.to_owned(),
                    problem: format!("partition {p}: offsets {start}..{end} not read within {} s", PATIENCE.as_secs()),
                });
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    if m.offset() >= end {
                        break;
                    }
                    records.push(m.payload().unwrap_or_default().to_vec());
                    if m.offset() + 1 >= end {
                        break;
                    }
                }
                // With read_committed, the end may be a transaction marker.
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
    }
    Ok(records)
}
