//! Creating weir's topics: decisions, dead letters and the input with the
//! configured partitions; the changelog (compacted) and the entity hop's
//! topics with the input's.

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
        [&t.input, &t.transaction_verified, &t.fraud_suspected, &t.account_locked, &t.dead_letters, &t.dispositions]
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
    // The runtime lists: one partition (every instance reads all of it, in
    // the order the changes were made), compacted to each entry's last change.
    let lists = NewTopic::new(&t.lists, 1, rf()).set("cleanup.policy", "compact");
    wait("creating the lists topic", &mut || create(&admin, std::slice::from_ref(&lists)).map(|()| 0))?;
    // The console's audit log: one partition, so it reads in the order the
    // actions were taken.
    let audit = NewTopic::new(&t.audit, 1, rf());
    wait("creating the audit topic", &mut || create(&admin, std::slice::from_ref(&audit)).map(|()| 0))?;
    // The entity hop's topics, when entities are routed.
    let hop: Vec<String> = hop_topics(config);
    let hop_new: Vec<NewTopic> = hop.iter().map(|name| NewTopic::new(name, input_partitions, rf())).collect();
    if !hop_new.is_empty() {
        wait("creating the entity topics", &mut || create(&admin, &hop_new).map(|()| 0))?;
    }
    for topic in std::iter::once(&t.changelog).chain(&hop) {
        let partitions = wait("reading a co-partitioned topic's partitions", &mut || partition_count(&admin, topic))?;
        if partitions != input_partitions {
            return Err(KafkaRunError::Topic {
                topic: topic.clone(),
                problem: format!(
                    "has {partitions} partitions but the input {} has {input_partitions}; they must match",
                    t.input
                ),
            });
        }
    }
    Ok(())
}

/// The topics of the entity hop: one per routed kind, and the verdicts
/// (none without routed kinds).
pub(super) fn hop_topics(config: &KafkaConfig) -> Vec<String> {
    let kinds = config.entity_kinds();
    let t = &config.topics;
    let mut topics: Vec<String> = kinds.iter().map(|k| t.entity(*k)).collect();
    if !kinds.is_empty() {
        topics.push(t.entity_verdicts.clone());
    }
    topics
}

/// The input topic's partition count (every co-partitioned topic has as many).
pub(super) fn input_partitions(config: &KafkaConfig, stop: &AtomicBool) -> Result<i32, KafkaRunError> {
    let admin: AdminClient<_> = config.client_config().create()?;
    let what = "reading the input's partitions";
    retry(stop, what, PATIENCE, || partition_count(&admin, &config.topics.input))
        .map_err(|g| KafkaRunError::gave_up(what, g))
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
