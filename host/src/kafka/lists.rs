//! The runtime lists on Kafka: the compacted lists topic
//! (`kafka.topics.lists`), read in full by every instance, like a Kafka
//! Streams global table. Its records are [`ListChanged`] events keyed by
//! `list/value`, so compaction keeps each entry's last change; a tombstone
//! (a record without a value) removes its key's entry.
//!
//! A reader thread of its own — its own consumer, assigned every partition
//! from the beginning, in no group's work and committing nothing — applies
//! the changes to [`LiveLists`] and publishes after every poll that brought
//! some, so a change is in effect on every instance as soon as its next
//! batch starts. [`start`] returns once the topic was read up to its end
//! as of the start (`crate::kafka::run` calls it before deciding anything):
//! an instance decides nothing on lists older than the topic it joins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;

use super::retry::{Attempt, retry};
use super::{KafkaConfig, KafkaRunError};
use crate::events::{ListAction, ListChanged};
use crate::lists::{LiveLists, Refusal, read_change};

/// How long the first read of the topic may take before weir gives up,
/// and one request to the broker.
const PATIENCE: Duration = Duration::from_secs(120);
const ATTEMPT: Duration = Duration::from_secs(5);
/// How long a fetch waits on the broker for new changes: the lists'
/// latency on an idle topic.
const FETCH_WAIT_MS: &str = "50";

/// Starts reading the lists topic into `lists` and returns once it was
/// read to its end; the reader stops when `stop` is set. Every wait for the
/// broker honours `stop`.
pub fn start(config: &KafkaConfig, lists: Arc<LiveLists>, stop: &Arc<AtomicBool>) -> Result<(), KafkaRunError> {
    let topic = config.topics.lists.clone();
    let consumer: BaseConsumer = config
        .client_config()
        .set("group.id", format!("{}-lists", config.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS)
        .create()?;
    let what = "reading the lists topic";
    let gave_up = |g| KafkaRunError::gave_up(what, g);
    let partitions = retry(stop, what, PATIENCE, || {
        let metadata = consumer.fetch_metadata(Some(&topic), ATTEMPT).map_err(|e| Attempt::Again(e.into()))?;
        let found: Vec<i32> =
            metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
        if found.is_empty() {
            return Err(Attempt::Again(KafkaRunError::Topic {
                topic: topic.clone(),
                problem: "has no partitions (does it exist?)".to_owned(),
            }));
        }
        Ok(found)
    })
    .map_err(gave_up)?;
    let mut tpl = TopicPartitionList::new();
    // Where each partition's first read ends: its end now.
    let mut ends = Vec::new();
    for &p in &partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        let high = retry(stop, what, PATIENCE, || {
            consumer.fetch_watermarks(&topic, p, ATTEMPT).map(|(_, high)| high).map_err(|e| Attempt::Again(e.into()))
        })
        .map_err(gave_up)?;
        ends.push((p, high));
    }
    consumer.assign(&tpl)?;
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
    let reader_stop = stop.clone();
    std::thread::Builder::new()
        .name("weir-lists".into())
        .spawn(move || follow(consumer, &topic, &lists, ends, &reader_stop, loaded_tx))
        .map_err(|e| KafkaRunError::Topic {
            topic: config.topics.lists.clone(),
            problem: format!("cannot start its reader: {e}"),
        })?;
    let started = Instant::now();
    loop {
        match loaded_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => return Ok(()),
            Err(_) if stop.load(Ordering::Relaxed) => return Err(KafkaRunError::Stopped(what)),
            Err(RecvTimeoutError::Timeout) if started.elapsed() < PATIENCE => {}
            Err(_) => {
                return Err(KafkaRunError::Topic {
                    topic: config.topics.lists.clone(),
                    problem: format!("was not read to its end in {} s", PATIENCE.as_secs()),
                });
            }
        }
    }
}

/// The reader: applies every change, publishes after each poll that
/// brought some, and says once when the first read reached `ends`.
fn follow(
    consumer: BaseConsumer,
    topic: &str,
    lists: &LiveLists,
    mut ends: Vec<(i32, i64)>,
    stop: &AtomicBool,
    loaded: std::sync::mpsc::Sender<()>,
) {
    let mut is_loaded = false;
    let mut errors = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut changed = false;
        let mut wait = Duration::from_millis(100);
        while let Some(polled) = consumer.poll(wait) {
            wait = Duration::ZERO;
            match polled {
                Ok(m) => {
                    let (partition, offset) = (m.partition(), m.offset());
                    let at = || format!("{topic} partition {partition} offset {offset}");
                    lists.apply(match m.payload() {
                        Some(payload) => read_change(payload, at),
                        None => tombstone(m.key(), at),
                    });
                    changed = true;
                }
                Err(e) => {
                    errors += 1;
                    if errors <= 10 || errors.is_multiple_of(1000) {
                        tracing::warn!(topic, errors, "reading the lists: {e}");
                    }
                    break;
                }
            }
        }
        // A partition at its end (nothing to read, or read) is loaded.
        if !is_loaded {
            ends.retain(|(p, end)| {
                let position = consumer.position().ok().and_then(|tpl| {
                    tpl.find_partition(topic, *p).and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                });
                *end > 0 && position.is_none_or(|o| o < *end)
            });
        }
        let now_loaded = !is_loaded && ends.is_empty();
        if changed || now_loaded {
            lists.publish(ends.is_empty());
        }
        if now_loaded {
            is_loaded = true;
            let _ = loaded.send(());
        }
    }
}

/// A tombstone: the removal of its key's entry (`list/value`).
fn tombstone(key: Option<&[u8]>, at: impl Fn() -> String) -> Result<ListChanged, Refusal> {
    let refuse = |reason: &str| Refusal { what: at(), reason: reason.to_owned() };
    let key = key.and_then(|k| std::str::from_utf8(k).ok()).ok_or_else(|| refuse("a tombstone without a text key"))?;
    let (list, value) = key.split_once('/').ok_or_else(|| refuse("a tombstone whose key is not `list/value`"))?;
    ListChanged::new(list, value, ListAction::Remove, None, "tombstone", None, OffsetDateTime::UNIX_EPOCH)
        .map_err(|e| refuse(&e.to_string()))
}
