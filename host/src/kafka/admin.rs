//! Creating weir's topics: decisions, dead letters and the input with the
//! configured partitions, the changelog compacted with the input's.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::retry::{ATTEMPT_TIMEOUT, Attempt, retry};
use super::{KafkaConfig, KafkaRunError};

/// How long weir waits for the broker to create and describe its topics.
const PATIENCE: Duration = Duration::from_secs(300);

/// Creates the topics that do not exist: decisions and dead letters with
/// `partitions`, the changelog compacted with the input's partition count.
/// Waits while the broker is away, unless `stop` is set.
pub fn create_topics(config: &KafkaConfig, stop: &AtomicBool) -> Result<(), KafkaRunError> {
    let admin: AdminClient<_> = config.client_config().create()?;
    let t = &config.topics;
    let rf = || TopicReplication::Fixed(config.replication_factor);
    let plain: Vec<NewTopic> =
        [&t.input, &t.transaction_verified, &t.fraud_suspected, &t.account_locked, &t.dead_letters]
            .into_iter()
            .map(|name| NewTopic::new(name, config.partitions, rf()))
            .collect();
    let wait = |what: &'static str, f: &mut dyn FnMut() -> Result<i32, Attempt<KafkaRunError>>| {
        retry(stop, what, PATIENCE, f).map_err(|g| KafkaRunError::gave_up(what, g))
    };
    wait("creating topics", &mut || create(&admin, &plain).map(|()| 0))?;
    // The changelog must have exactly the input's partitions.
    let input_partitions = wait("reading the input's partitions", &mut || partition_count(&admin, &t.input))?;
    let changelog = NewTopic::new(&t.changelog, input_partitions, rf()).set("cleanup.policy", "compact");
    wait("creating the changelog", &mut || create(&admin, std::slice::from_ref(&changelog)).map(|()| 0))?;
    let changelog_partitions =
        wait("reading the changelog's partitions", &mut || partition_count(&admin, &t.changelog))?;
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

/// The partition count of `topic` (a new topic's metadata may take a
/// moment to reach the broker we ask: no partitions yet is worth retrying).
fn partition_count(
    admin: &AdminClient<rdkafka::client::DefaultClientContext>,
    topic: &str,
) -> Result<i32, Attempt<KafkaRunError>> {
    let metadata = admin.inner().fetch_metadata(Some(topic), ATTEMPT_TIMEOUT).map_err(|e| Attempt::Again(e.into()))?;
    match metadata.topics().first().map(|m| m.partitions().len() as i32).unwrap_or(0) {
        0 => Err(Attempt::Again(KafkaRunError::Topic {
            topic: topic.to_owned(),
            problem: "has no partitions".to_owned(),
        })),
        n => Ok(n),
    }
}

fn create(
    admin: &AdminClient<rdkafka::client::DefaultClientContext>,
    topics: &[NewTopic],
) -> Result<(), Attempt<KafkaRunError>> {
    let options = AdminOptions::new().request_timeout(Some(ATTEMPT_TIMEOUT));
    let results =
        futures_executor::block_on(admin.create_topics(topics, &options)).map_err(|e| Attempt::Again(e.into()))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                let error = KafkaRunError::Topic { topic, problem: format!("cannot be created: {code}") };
                return Err(match code {
                    RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::NotController
                    | RDKafkaErrorCode::LeaderNotAvailable => Attempt::Again(error),
                    _ => Attempt::Fail(error),
                });
            }
        }
    }
    Ok(())
}
