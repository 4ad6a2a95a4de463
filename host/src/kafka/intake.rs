//! The intake: the consumer group member. It polls the input topic (and,
//! with the entity hop, the entity and verdicts topics, co-partitioned) and
//! hands the records of partition `p` of each to worker `p % workers`, in
//! chunks; every 100 ms it tells the workers where their input partitions
//! end, as far as the consumer knows.
//!
//! It also keeps the pipeline consistent when the ground moves:
//!
//! - **Revoked partitions** (in the rebalance callback, before the group
//!   moves on): every record already handed over is decided (a barrier),
//!   everything decided is committed ([`Link::flush`]), then the workers drop
//!   the partitions' state. Their new owner starts from the committed offsets.
//! - **Assigned partitions**: the owning workers learn each partition's
//!   committed offset (where decisions resume), and restore their state at
//!   once, before their first records.
//! - **A failed transaction** ([`Link::rewind_requested`]): the workers drop
//!   everything not committed, every assigned partition is sought back to its
//!   committed offset, and the pipeline goes on from there.
//! - **Shutdown**: what was handed over is decided and committed, then the
//!   member leaves the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::committer::Link;
use super::retry::{ATTEMPT_TIMEOUT, Attempt, GaveUp, retry};
use super::worker::ToWorker;
use super::{KafkaConfig, KafkaRunError, Record, Topology};

/// Records handed to a worker at a time.
const CHUNK: usize = 256;
/// How long one poll waits for a record when nothing is pending.
const POLL: Duration = Duration::from_millis(100);
/// How often (ms) the workers learn which input partitions were read to
/// their end (for the entity hop's progress).
pub(super) const ENDS_EVERY_MS: i64 = 100;
const ENDS_EVERY: Duration = Duration::from_millis(ENDS_EVERY_MS as u64);
/// librdkafka's `fetch.wait.max.ms` unless the `client` table sets it.
const FETCH_WAIT_DEFAULT_MS: u64 = 500;
/// How much longer than the fetch wait a resumed partition's end goes
/// untold when the consumer's end of it does not move (see [`Resumed`]).
const RESUMED_MARGIN: Duration = Duration::from_millis(500);

/// The consumer's context: the routing to the workers, which the rebalance
/// callbacks (run inside `poll`, on the intake's thread) use too.
pub(super) struct IntakeContext {
    topology: Arc<Topology>,
    /// Input partitions to pause: too many of their records wait for
    /// entity verdicts.
    full: Arc<super::hop::Full>,
    link: Link,
    routing: Mutex<Routing>,
    /// Set once the intake stopped: a rebalance then (the consumer leaving
    /// the group as it closes) has nothing left to commit or hand over.
    closed: AtomicBool,
    /// Set when weir is asked to stop: waits for the broker give up.
    stop: Arc<AtomicBool>,
    /// Where the consumer lag is reported.
    hooks: crate::telemetry::Hooks,
    /// How long a resumed partition's end may go untold (see [`Resumed`]).
    resumed_wait: Duration,
}

struct Routing {
    workers: Vec<SyncSender<ToWorker>>,
    /// Polled records not yet handed over, per worker.
    pending: Vec<Vec<Record>>,
    /// A worker stopped (its error is reported by the run).
    broken: bool,
}

impl ClientContext for IntakeContext {
    /// librdkafka's statistics (every `statistics.interval.ms`, set when a
    /// status endpoint listens): the consumer lag of each input partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topology.input) else { return };
        for (partition, p) in &topic.partitions {
            // Offsets are committed by the transactional producer, not by
            // this consumer, so librdkafka's `consumer_lag` (from its own
            // commits) stays unknown: the lag is measured from what weir
            // consumed (the stored offset) to the last stable offset.
            let lag = if p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { p.consumer_lag };
            if *partition >= 0 && lag >= 0 {
                self.hooks.set_consumer_lag(*partition, lag);
            }
        }
    }
}

impl ConsumerContext for IntakeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = tasks(tpl);
            tracing::info!(partitions = ?revoked, "partitions revoked; committing what was decided for them");
            let mut routing = self.routing();
            if self.link.rewind_requested() {
                routing.rewind(consumer, &self.topology, &self.link);
            }
            for pending in &mut routing.pending {
                pending.retain(|r| !revoked.contains(&r.partition));
            }
            routing.hand_over();
            routing.barrier();
            if !self.link.flush() {
                // Nothing of the revoked partitions is committed past their
                // committed offsets; the rest is rewound.
                routing.rewind(consumer, &self.topology, &self.link);
            }
            routing.each_worker(|_| ToWorker::Revoke(revoked.clone()));
            routing.barrier();
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions = tasks(tpl);
            tracing::info!(partitions = ?partitions, "partitions assigned");
            check_co_partitioned(tpl, &self.topology, &partitions);
            let starts = committed(consumer, &self.topology.input, &partitions, &self.stop);
            self.routing().assign(&starts);
            // A partition assigned again starts unpaused: pauses are applied
            // anew. Without the entity hop nothing is ever paused or resumed.
            if self.topology.routes() {
                self.full.touch();
            }
        }
    }
}

impl IntakeContext {
    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hangs up on the workers, which then stop.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut routing = self.routing();
        routing.workers.clear();
        routing.pending.clear();
    }
}

impl Routing {
    fn worker_of(&self, partition: i32) -> usize {
        super::worker_of(partition, self.workers.len())
    }

    fn send(&mut self, worker: usize, message: ToWorker) {
        if self.workers[worker].send(message).is_err() {
            self.broken = true;
        }
    }

    fn each_worker(&mut self, message: impl Fn(usize) -> ToWorker) {
        for w in 0..self.workers.len() {
            self.send(w, message(w));
        }
    }

    /// Hands every pending record to its worker.
    fn hand_over(&mut self) {
        for w in 0..self.pending.len() {
            if !self.pending[w].is_empty() {
                let chunk = std::mem::replace(&mut self.pending[w], Vec::with_capacity(CHUNK));
                self.send(w, ToWorker::Records(chunk));
            }
        }
    }

    /// Waits until every worker is done with what it was sent.
    fn barrier(&mut self) {
        let (done, wait) = sync_channel(self.workers.len());
        self.each_worker(|_| ToWorker::Barrier(done.clone()));
        drop(done);
        for _ in 0..self.workers.len() {
            if wait.recv().is_err() {
                self.broken = true;
                return;
            }
        }
    }

    /// Hands every pending record over, then tells each worker where its
    /// input partitions end, as far as the consumer knows (not yet for
    /// partitions just resumed, see [`Resumed`]).
    fn tell_ends<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, input: &str, resumed: &mut Resumed) {
        self.hand_over();
        let assigned = consumer.assignment().map(|tpl| tasks(&tpl)).unwrap_or_default();
        let mut per_worker: Vec<Vec<(i32, i64, i64)>> = vec![Vec::new(); self.workers.len()];
        for p in assigned {
            if let Some((low, high)) = cached_watermarks(consumer, input, p)
                && resumed.told(p, high)
            {
                per_worker[self.worker_of(p)].push((p, low, high));
            }
        }
        for (w, ends) in per_worker.into_iter().enumerate() {
            if !ends.is_empty() {
                self.send(w, ToWorker::Ends(ends));
            }
        }
    }

    /// Tells the workers which partitions are theirs and where they resume.
    fn assign(&mut self, starts: &[(i32, Option<i64>)]) {
        let mut per_worker: Vec<Vec<(i32, Option<i64>)>> = vec![Vec::new(); self.workers.len()];
        for (p, start) in starts {
            per_worker[self.worker_of(*p)].push((*p, *start));
        }
        for (w, partitions) in per_worker.into_iter().enumerate() {
            if !partitions.is_empty() {
                self.send(w, ToWorker::Assign(partitions));
            }
        }
    }

    /// After a failed transaction: drops everything not committed and seeks
    /// every assigned partition back to its committed offset.
    fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, topology: &Topology, link: &Link) {
        for pending in &mut self.pending {
            pending.clear();
        }
        self.each_worker(|_| ToWorker::Reset);
        self.barrier();
        let assigned: Vec<i32> = consumer.assignment().map(|tpl| tasks(&tpl)).unwrap_or_default();
        let mut starts = Vec::new();
        for topic in topology.topics() {
            let committed = committed(consumer, topic, &assigned, &AtomicBool::new(false));
            for (p, start) in &committed {
                let offset = start.map(Offset::Offset).unwrap_or(Offset::Beginning);
                if let Err(e) = consumer.seek(topic, *p, offset, Duration::from_secs(10)) {
                    // A partition not fetched from yet starts at its committed
                    // offset anyway.
                    tracing::debug!(topic, partition = p, error = %e, "seek refused: the partition had not been fetched from yet");
                }
            }
            if topic == topology.input {
                starts = committed;
            }
        }
        self.assign(&starts);
        self.barrier();
        tracing::info!(partitions = ?assigned, "rewound to the committed offsets");
        link.rewound();
    }
}

/// The low and high watermarks of a partition as the consumer last learnt
/// them from the broker (with its fetches; no request is made). `None`
/// until known.
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`; librdkafka
    // only reads the topic name and writes the two offsets, which outlive
    // the call. rust-rdkafka has no safe wrapper for this cached read
    // (`fetch_watermarks` asks the broker every time).
    let code = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0 && high >= 0)
        .then_some((low, high))
}

/// Input partitions resumed after a pause whose end the workers are not
/// told yet. A paused partition is not fetched from, so the consumer's end
/// of it stays as it was before the pause until a fetch includes it again,
/// which waits for the fetch in flight (up to `fetch.wait.max.ms`). Told
/// that stale end, a worker would find the partition idle at it while
/// records sent during the pause wait in Kafka, and those would come late
/// at their entities. So a resumed partition's end is told again once
/// the consumer's end of it moves, or, if nothing was sent meanwhile and
/// it does not move, once a fetch must have included it.
#[derive(Debug)]
struct Resumed {
    /// Per partition: when it was resumed and the consumer's end of it then.
    since: BTreeMap<i32, (Instant, Option<i64>)>,
    /// How long after its resume a partition's end stays untold at most.
    wait: Duration,
}

impl Resumed {
    fn new(wait: Duration) -> Resumed {
        Resumed { since: BTreeMap::new(), wait }
    }

    fn resumed<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, input: &str, partitions: &[i32]) {
        for p in partitions {
            let high = cached_watermarks(consumer, input, *p).map(|(_, high)| high);
            self.since.insert(*p, (Instant::now(), high));
        }
    }

    /// Whether partition `p`'s end, `high` as the consumer knows it, may be
    /// told now.
    fn told(&mut self, p: i32, high: i64) -> bool {
        let Some((at, then)) = self.since.get(&p) else { return true };
        if *then == Some(high) && at.elapsed() < self.wait {
            return false;
        }
        self.since.remove(&p);
        true
    }
}

/// Pauses the assigned input partitions in `full` and resumes those this
/// intake paused that are no longer full; `paused` is what it paused
/// before, and becomes what it has paused now. A partition it never paused
/// is never resumed, so nothing is asked of the consumer for partitions
/// that were never full.
fn pause_full<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    input: &str,
    full: &BTreeSet<i32>,
    paused: &mut BTreeSet<i32>,
    resumed: &mut Resumed,
) {
    let assigned: BTreeSet<i32> = consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().filter(|e| e.topic() == input).map(|e| e.partition()).collect())
        .unwrap_or_default();
    let (to_pause, to_resume) = pause_plan(&assigned, full, paused);
    let list = |partitions: &[i32]| {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(input, *p);
        }
        tpl
    };
    if !to_pause.is_empty()
        && let Err(e) = consumer.pause(&list(&to_pause))
    {
        tracing::warn!(error = %e, "pausing full input partitions failed");
    }
    if !to_resume.is_empty() {
        match consumer.resume(&list(&to_resume)) {
            Ok(()) => resumed.resumed(consumer, input, &to_resume),
            Err(e) => tracing::warn!(error = %e, "resuming input partitions failed"),
        }
    }
    *paused = to_pause.into_iter().collect();
}

/// What [`pause_full`] asks of the consumer: pause every assigned partition
/// that is full (again, since a partition assigned anew starts unpaused),
/// and resume the assigned ones paused before that are full no more.
fn pause_plan(assigned: &BTreeSet<i32>, full: &BTreeSet<i32>, paused: &BTreeSet<i32>) -> (Vec<i32>, Vec<i32>) {
    let pause = assigned.intersection(full).copied().collect();
    let resume = paused.difference(full).filter(|p| assigned.contains(p)).copied().collect();
    (pause, resume)
}

/// The partition numbers (tasks) of a list of topic partitions, each once.
fn tasks(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut tasks: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks
}

/// Logs an assignment that does not give every topic's partition of each
/// task to this member: the entity hop would wait for what another member
/// holds.
fn check_co_partitioned(tpl: &TopicPartitionList, topology: &Topology, tasks: &[i32]) {
    for topic in topology.topics() {
        let mut got: Vec<i32> = tpl.elements().iter().filter(|e| e.topic() == topic).map(|e| e.partition()).collect();
        got.sort_unstable();
        if got != tasks {
            tracing::error!(topic, partitions = ?got, tasks = ?tasks, "the group's assignment is not co-partitioned: every member must use the `range` assignor and read the same topics");
        }
    }
}

/// The committed offset of each of `partitions` (`None`: none committed,
/// the partition is read from its beginning). Waits while the broker is
/// away, unless `stop` is set: the partitions then resume where the group
/// left them, and the intake, stopping, hands nothing of them over.
fn committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    input: &str,
    partitions: &[i32],
    stop: &AtomicBool,
) -> Vec<(i32, Option<i64>)> {
    if partitions.is_empty() {
        return Vec::new();
    }
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(input, *p);
    }
    let read = retry(stop, "reading committed offsets", Duration::from_secs(300), || {
        consumer.committed_offsets(tpl.clone(), ATTEMPT_TIMEOUT).map_err(Attempt::Again)
    });
    match read {
        Ok(c) => c
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect(),
        Err(GaveUp::Stopping) => partitions.iter().map(|p| (*p, None)).collect(),
        Err(GaveUp::Failed(e)) => {
            tracing::error!(error = %e, "committed offsets unreadable: the partitions resume where the group left them");
            partitions.iter().map(|p| (*p, None)).collect()
        }
    }
}

/// Creates the group member.
pub(super) fn consumer(
    config: &KafkaConfig,
    (topology, full): (Arc<Topology>, Arc<super::hop::Full>),
    workers: Vec<SyncSender<ToWorker>>,
    link: Link,
    stop: Arc<AtomicBool>,
    hooks: crate::telemetry::Hooks,
) -> Result<BaseConsumer<IntakeContext>, KafkaRunError> {
    let statistics_ms = if hooks.observing() { "5000" } else { "0" };
    let fetch_wait_ms = config
        .client_config()
        .get("fetch.wait.max.ms")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(FETCH_WAIT_DEFAULT_MS);
    let pending = workers.iter().map(|_| Vec::with_capacity(CHUNK)).collect();
    let context = IntakeContext {
        topology,
        full,
        link,
        routing: Mutex::new(Routing { workers, pending, broken: false }),
        closed: AtomicBool::new(false),
        stop,
        hooks,
        resumed_wait: Duration::from_millis(fetch_wait_ms) + RESUMED_MARGIN,
    };
    let consumer: BaseConsumer<IntakeContext> = config
        .client_config()
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("queued.max.messages.kbytes", "16384")
        // Partition p of every topic read goes to one member (a task), as
        // the entity hop needs: the range assignor gives co-partitioned
        // topics to members alike.
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", statistics_ms)
        .create_with_context(context)?;
    Ok(consumer)
}

/// Polls until `shutdown` is set, then commits what was handed over.
pub(super) fn run(consumer: &BaseConsumer<IntakeContext>, shutdown: &AtomicBool) -> Result<(), KafkaRunError> {
    let context = consumer.context();
    consumer.subscribe(&context.topology.topics())?;
    let mut ends_told = Instant::now();
    let mut paused = BTreeSet::new();
    let mut resumed = Resumed::new(context.resumed_wait);
    while !shutdown.load(Ordering::Relaxed) {
        if context.link.rewind_requested() {
            context.routing().rewind(consumer, &context.topology, &context.link);
        }
        if let Some(full) = context.full.take_changed() {
            pause_full(consumer, &context.topology.input, &full, &mut paused, &mut resumed);
        }
        if context.topology.routes() && ends_told.elapsed() >= ENDS_EVERY {
            ends_told = Instant::now();
            context.routing().tell_ends(consumer, &context.topology.input, &mut resumed);
        }
        let idle = context.routing().pending.iter().all(Vec::is_empty);
        match consumer.poll(if idle { POLL } else { Duration::ZERO }) {
            Some(Ok(m)) => {
                let Some(source) = context.topology.source(m.topic()) else { continue };
                let record = Record {
                    source,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                };
                let mut routing = context.routing();
                let w = routing.worker_of(record.partition);
                routing.pending[w].push(record);
                if routing.pending[w].len() >= CHUNK {
                    let chunk = std::mem::replace(&mut routing.pending[w], Vec::with_capacity(CHUNK));
                    routing.send(w, ToWorker::Records(chunk));
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "the consumer reported an error"),
            None => context.routing().hand_over(),
        }
        if context.routing().broken {
            tracing::error!("a decide worker stopped; weir stops");
            context.closed.store(true, Ordering::Release);
            consumer.unsubscribe();
            return Ok(());
        }
    }
    tracing::info!("stopping: committing what was handed over");
    let mut routing = context.routing();
    routing.hand_over();
    routing.barrier();
    if !context.link.flush() {
        tracing::warn!(
            "the last transaction failed; its records are decided again by the next owner of their partitions"
        );
    }
    drop(routing);
    context.closed.store(true, Ordering::Release);
    tracing::info!("weir is leaving the group");
    consumer.unsubscribe();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use super::{Resumed, pause_plan};

    fn set(partitions: &[i32]) -> BTreeSet<i32> {
        partitions.iter().copied().collect()
    }

    #[test]
    fn only_partitions_the_intake_paused_are_resumed() {
        let assigned = set(&[0, 1, 2, 3]);
        // Nothing full, nothing paused: the consumer is asked nothing.
        assert_eq!(pause_plan(&assigned, &set(&[]), &set(&[])), (vec![], vec![]));
        // 1 fills: only it is paused.
        assert_eq!(pause_plan(&assigned, &set(&[1]), &set(&[])), (vec![1], vec![]));
        // 2 fills while 1 is still full: both paused (again), none resumed.
        assert_eq!(pause_plan(&assigned, &set(&[1, 2]), &set(&[1])), (vec![1, 2], vec![]));
        // 1 drains: only 1 is resumed, not 0 and 3, which were never paused.
        assert_eq!(pause_plan(&assigned, &set(&[2]), &set(&[1, 2])), (vec![2], vec![1]));
        // A paused partition revoked since is neither paused nor resumed.
        assert_eq!(pause_plan(&set(&[0, 1]), &set(&[2]), &set(&[2])), (vec![], vec![]));
    }

    #[test]
    fn a_resumed_partitions_end_is_told_once_it_moves_or_a_fetch_must_have_come() {
        let mut resumed = Resumed::new(Duration::from_millis(600));
        let now = Instant::now();
        resumed.since.insert(1, (now, Some(40)));
        resumed.since.insert(2, (now, Some(70)));
        resumed.since.insert(3, (now - Duration::from_millis(601), Some(90)));
        // Never paused: told.
        assert!(resumed.told(0, 10));
        // The consumer's end has not moved since the resume: not told.
        assert!(!resumed.told(1, 40));
        assert!(!resumed.told(1, 40));
        // It moved: told from now on.
        assert!(resumed.told(2, 75));
        assert!(resumed.told(2, 75));
        // It did not move, but a fetch must have included it by now.
        assert!(resumed.told(3, 90));
        assert_eq!(resumed.since.keys().copied().collect::<Vec<_>>(), vec![1]);
    }
}
