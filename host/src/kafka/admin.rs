//! Creating weir's topics: decisions, dead letters and the input with the
//! configured partitions, the changelog compacted with the input's.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaRunError};

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
