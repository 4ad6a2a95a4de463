//! Following topics as they grow, for readers beside the pipelines (the
//! console's cases): one consumer assigned every partition of the topics
//! from their beginning, `read_committed`, joining no group's work and
//! committing nothing. Each poll hands over what arrived since the last.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaRunError};

/// How long the follower waits for the broker's metadata.
const PATIENCE: Duration = Duration::from_secs(60);

/// A consumer of `topics`, from their beginning.
pub struct Follower {
    consumer: BaseConsumer,
    topics: Vec<String>,
}

impl Follower {
    /// Assigns every partition of `topics` from its beginning.
    pub fn new(config: &KafkaConfig, topics: &[&str], purpose: &str) -> Result<Follower, KafkaRunError> {
        let consumer: BaseConsumer = config
            .client_config()
            .set("group.id", format!("{}-{purpose}", config.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), PATIENCE)?;
            let partitions: Vec<i32> =
                metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
            if partitions.is_empty() {
                return Err(KafkaRunError::Topic {
                    topic: (*topic).to_owned(),
                    problem: "has no partitions".to_owned(),
                });
            }
            for p in partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
        Ok(Follower { consumer, topics: topics.iter().map(|t| (*t).to_owned()).collect() })
    }

    /// What arrived since the last poll, as (index of its topic in
    /// `topics`, payload), in each partition's order: polls for at most
    /// `budget`, returning early once a poll brings nothing after `quiet`.
    pub fn poll(&mut self, budget: Duration, quiet: Duration) -> Result<Vec<(usize, Vec<u8>)>, KafkaRunError> {
        let started = Instant::now();
        let mut out = Vec::new();
        while started.elapsed() < budget {
            match self.consumer.poll(quiet) {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => {
                    if let (Some(i), Some(payload)) = (self.topics.iter().position(|t| t == m.topic()), m.payload()) {
                        out.push((i, payload.to_vec()));
                    }
                }
            }
        }
        Ok(out)
    }
}
