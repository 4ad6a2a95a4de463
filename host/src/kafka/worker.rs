//! A decide worker: owns some partitions' account state and turns their
//! records into output for the next transaction.
//!
//! The intake sends a worker chunks of records and, in the same channel, the
//! changes of its assignment, so a message always applies after the records
//! sent before it. On an assignment the worker reads the state of all its
//! new partitions back from the changelog at once, before their first
//! records. Each record goes through the
//! per-record core ([`crate::record::process`]); after a chunk, the worker
//! puts the chunk's output — decisions, dead letters, the changed parts of
//! the accounts it touched, the partitions' next offsets — into its
//! [`Outbox`], where the committer takes it. Rule swaps happen between two
//! chunks.
//!
//! A dead letter is the record's payload with the reason, source and size in
//! headers, cut to fit: a record over `max_event_bytes` keeps its first
//! 64 KiB, and no dead letter is larger than the producer's
//! `message.max.bytes` allows, so a record the consumer could receive never
//! fails the transaction that dead-letters it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::hop::{
    self, Awaiting, Delivery, EntityMeta, EntityPartition, Full, Mail, Memo, Pending, Post, Progress, RouterMeta, Task,
    Verdict,
};
use super::retry::{ATTEMPT_TIMEOUT, Attempt, GaveUp, retry};
use super::{
    Destination, Doorbell, Headers, KafkaConfig, KafkaRunError, OutRecord, Outbox, Output, Record, Source, Topology,
    changelog,
};
use crate::engine::{Evaluator, Policy, RuleSet, entity_id, entity_key};
use crate::events::{
    DecisionType, InputEvent, InputPosition, InvalidEvent, RuleResult, TRUNCATED_PAYLOAD_BYTES, TransactionRecorded,
    parse_input,
};
use crate::live::TookEffect;
use crate::record::{Accounts, Processed, process};
use crate::state::AccountState;
use crate::telemetry::Hooks;
use weir_sdk::Entity;

/// How long restoring a partition's state may wait for the broker.
const RESTORE_PATIENCE: Duration = Duration::from_secs(300);
/// How long a worker waits for records before it looks for new rules.
const IDLE: Duration = Duration::from_millis(50);
/// How long (ms) an input partition idle at its end holds the entities back
/// at most, on a stream replayed faster than the clock (see
/// [`TaskHop::progress`]).
pub(super) const IDLE_HOLDS_NOTHING_MS: i64 = 1000;

/// How often a router writes its progress to Kafka for an entity partition
/// that takes it in memory (an entity partition elsewhere gets every
/// change). The copy in Kafka serves a restart and an entity partition
/// that could not take a memo (not restored yet, or too far behind); its
/// first after the router takes its partition is written at once.
const PROGRESS_TO_KAFKA_EVERY: Duration = Duration::from_secs(1);
/// The most of an input record's key a dead letter keeps (keys are account
/// ids, at most 256 bytes when valid).
const DEAD_LETTER_KEY_MAX: usize = 1024;
/// Room a dead letter keeps in the producer's message size for its key,
/// headers (the reason is at most 1 KiB) and the record's framing.
const DEAD_LETTER_ENVELOPE: usize = 4096;

/// What the intake tells a worker.
pub(super) enum ToWorker {
    Records(Vec<Record>),
    /// These partitions are now this worker's; decisions start at these
    /// offsets (`None`: the partition's beginning).
    Assign(Vec<(i32, Option<i64>)>),
    /// These partitions are no longer this worker's: their state goes.
    Revoke(Vec<i32>),
    /// A transaction failed: everything not committed goes, state included
    /// (the assignment follows again, from the committed offsets).
    Reset,
    /// Answer once everything sent before is done.
    Barrier(SyncSender<()>),
    /// Where input partitions end, as far as the consumer knows:
    /// (partition, low, high watermark). For the entity hop's progress.
    Ends(Vec<(i32, i64, i64)>),
    /// Another worker posted to this one's [`Mail`].
    Mail,
}

pub(super) struct Worker<'a> {
    config: &'a KafkaConfig,
    index: usize,
    evaluator: Evaluator,
    hooks: Hooks,
    generation: u64,
    outbox: Arc<Outbox>,
    doorbell: Arc<Doorbell>,
    restorer: BaseConsumer,
    /// This worker's partitions, with the offset of the next record to decide.
    assigned: BTreeMap<i32, Option<i64>>,
    /// Account (and entity) states of the partitions restored so far.
    states: HashMap<i32, HashMap<String, AccountState>>,
    topology: Arc<Topology>,
    /// The entity hop's part of each task restored so far (when entities
    /// are routed).
    hops: HashMap<i32, TaskHop>,
    /// Where full input partitions are marked for the intake to pause.
    full: Arc<Full>,
    /// Verdicts and tasks for other workers' partitions, handed over in
    /// memory.
    mail: Arc<Mail>,
    /// Memos of this chunk's routers, for the entity partitions they go
    /// to: (kind's index, partition, input partition, memo).
    memos: Vec<(usize, i32, i32, Memo)>,
    /// Posts to other workers once this chunk's output is in the outbox.
    outgoing: Vec<(usize, Post)>,
    /// Resets (failed transactions) so far; the same count in every worker.
    resets: u64,
    /// How late input records have reached this worker lately.
    delivery: Delivery,
    /// The longest time a task that came late since the last warning took
    /// to reach weir (see [`Worker::answer_late`]).
    late_delay_ms: i64,
}

/// A task's part in the entity hop (see [`hop`]).
struct TaskHop {
    router: RouterMeta,
    router_changed: bool,
    /// The latest event time of input transactions read since the task
    /// came here.
    latest: Option<i64>,
    /// When the transaction of `latest` was sent (its record's timestamp).
    latest_sent: i64,
    /// How many transactions read since `latest` last grew are dated at it.
    at_latest: usize,
    /// The progress last sent to the entities' partitions.
    sent: Option<Progress>,
    /// When progress was last written to Kafka for the partitions held
    /// here, and what.
    written: Option<(Instant, Progress)>,
    /// Per (kind's index, entity partition): the input offset of the last
    /// task routed there since the task came here, to link memos.
    last_sent: HashMap<(usize, i32), i64>,
    /// The next input offset to route when the task came here.
    since: i64,
    /// The position at which the intake last found the partition at its
    /// end, when it first found it there and when it last did (wall
    /// clock, ms), if it did in its last report.
    end_seen: Option<(i64, i64, i64)>,
    /// While the partition is idle at its end: the time (wall clock, ms)
    /// of the report before the last, before which every record sent has
    /// arrived (see [`TaskHop::progress`]).
    idle_since: Option<i64>,
    /// Whether it has been idle at its end for [`IDLE_HOLDS_NOTHING_MS`].
    idle_long: bool,
    /// Whether its queue of records waiting for verdicts is full (the
    /// intake pauses the input partition).
    full: bool,
    /// Per routed kind, in the topology's order.
    entities: Vec<EntityPartition>,
    awaiting: Awaiting,
}

impl TaskHop {
    /// What the router tells the entities' partitions: it has passed the
    /// latest time it read, less the grace.
    ///
    /// A full partition reads nothing more until its queue drains, so
    /// holding the entities back for what it might still send would hold
    /// its own verdicts back for good: it waives its grace and passes what
    /// is dated before its latest time (what it reads later before that
    /// time comes late). Not that time itself: transactions sent in the
    /// same millisecond share it, and those it has not read yet would come
    /// late behind other partitions' that were released. Only when more
    /// than half of `max_waiting` is dated at that time (a file of
    /// transactions dated by the day) does it pass that time too, since
    /// its queue could otherwise never drain to half.
    ///
    /// A partition idle at its end has read everything sent before the
    /// report before the last (a record on its way then would have arrived
    /// by the last), and before the last report less `allowance`, twice how
    /// long records have lately been on their way ([`Mail::delivery_allowance`]:
    /// a loaded broker can take seconds). A live stream's event time runs
    /// on with the clock, so it passes its latest time plus the time from
    /// when that transaction was sent to the earlier of the two (without
    /// the grace): on a live stream an idle partition holds the entities
    /// back for about two reports, or the allowance, and a burst sent to
    /// every partition at once is applied in its order. A stream replayed
    /// faster than the clock (dated well before it was sent) would wait at
    /// its end for the clock to catch up with its gaps, so such a
    /// partition idle for [`IDLE_HOLDS_NOTHING_MS`], or one that read
    /// nothing since it came here, holds nothing back. What comes later
    /// dated before what was passed (a record on its way longer than the
    /// allowance, a transaction recorded long after it happened) comes
    /// late, as it did when a partition found at its end once passed
    /// everything.
    fn progress(&self, grace_ms: i64, max_waiting: usize, allowance: i64) -> Progress {
        let mut watermark = if !self.full {
            self.latest.map(|t| t.saturating_sub(grace_ms))
        } else if self.at_latest > max_waiting / 2 {
            self.latest.map(|t| t.saturating_add(1))
        } else {
            self.latest
        };
        let mut at_end = false;
        if let Some(since) = self.idle_since {
            let since = match self.end_seen {
                Some((_, _, last)) => since.min(last.saturating_sub(allowance)),
                None => since,
            };
            match self.latest {
                Some(latest) if !self.idle_long => {
                    let idle = since.saturating_sub(self.latest_sent).max(0);
                    watermark = watermark.max(Some(latest.saturating_add(idle)));
                }
                _ => at_end = true,
            }
        }
        Progress { position: self.router.routed, watermark, at_end }
    }
}

impl<'a> Worker<'a> {
    pub(super) fn new(
        config: &'a KafkaConfig,
        topology: Arc<Topology>,
        index: usize,
        rules: &RuleSet,
        policy: &Policy,
        hooks: Hooks,
        (outbox, doorbell, full, mail): (Arc<Outbox>, Arc<Doorbell>, Arc<Full>, Arc<Mail>),
    ) -> Result<Worker<'a>, KafkaRunError> {
        let restorer: BaseConsumer = config
            .client_config()
            .set("group.id", format!("{}-restore", config.group_id))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            // A partition read to its end is known by a fetch that comes
            // back empty: it waits this long on the broker, not 500 ms.
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let mut evaluator = Evaluator::new(rules, policy.clone());
        if hooks.observing() {
            evaluator.sample_evaluations(crate::telemetry::EVALUATION_SAMPLE);
        }
        Ok(Worker {
            config,
            index,
            evaluator,
            hooks,
            generation: 0,
            outbox,
            doorbell,
            restorer,
            assigned: BTreeMap::new(),
            states: HashMap::new(),
            topology,
            hops: HashMap::new(),
            full,
            mail,
            memos: Vec::new(),
            outgoing: Vec::new(),
            resets: 0,
            delivery: Delivery::default(),
            late_delay_ms: 0,
        })
    }

    /// Works until the intake hangs up.
    pub(super) fn run(mut self, from_intake: Receiver<ToWorker>, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        loop {
            let message = match from_intake.recv_timeout(IDLE) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    // An idle worker takes up new rules too, so every
                    // partition's cutover is known even without traffic.
                    self.adopt_rules();
                    self.read_mail();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match message {
                ToWorker::Records(records) => self.decide(records, stop)?,
                ToWorker::Assign(partitions) => {
                    let fresh: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
                    self.assigned.extend(partitions);
                    self.restore_all(&fresh, stop)?;
                }
                ToWorker::Revoke(partitions) => {
                    for p in &partitions {
                        self.assigned.remove(p);
                        self.states.remove(p);
                        self.mail.hold(*p, false);
                        if self.hops.remove(p).is_some_and(|h| h.full) {
                            self.full.set(*p, false);
                        }
                    }
                    self.outbox.output.lock().unwrap_or_else(|e| e.into_inner()).forget(&partitions);
                }
                ToWorker::Reset => {
                    self.resets += 1;
                    self.mail.take(self.index);
                    self.memos.clear();
                    self.outgoing.clear();
                    self.assigned.clear();
                    self.states.clear();
                    for (p, hop) in self.hops.drain() {
                        self.mail.hold(p, false);
                        if hop.full {
                            self.full.set(p, false);
                        }
                    }
                    *self.outbox.output.lock().unwrap_or_else(|e| e.into_inner()) = Output::default();
                }
                ToWorker::Barrier(done) => {
                    let _ = done.send(());
                }
                ToWorker::Ends(ends) => self.ends(ends, stop)?,
                ToWorker::Mail => {}
            }
            self.read_mail();
        }
    }

    /// Takes the verdicts and memos other workers handed over for this
    /// worker's partitions and decides what they complete.
    fn read_mail(&mut self) {
        let mail = self.mail.take(self.index);
        if mail.is_empty() {
            return;
        }
        let mut tasks = HashSet::default();
        let mut out = Output::default();
        for (resets, post) in mail {
            // Of work a failed transaction undid: its copy in Kafka, if
            // any, is read again.
            if resets != self.resets {
                continue;
            }
            match post {
                Post::Verdict { partition, verdict } => {
                    if let Some(hop) = self.hops.get_mut(&partition) {
                        hop.awaiting.verdict(None, verdict);
                        tasks.insert(partition);
                    }
                }
                Post::Memo { kind, target, from, memo } => {
                    if self.take_memo(kind, target, from, memo, &mut out) {
                        tasks.insert(target);
                    }
                }
            }
        }
        if tasks.is_empty() && out.is_empty() {
            return;
        }
        let mut touched = HashMap::new();
        self.advance(&tasks, &mut out, &mut touched);
        if !out.is_empty() {
            self.finish(out, touched, None, Instant::now());
        }
    }

    /// Answers tasks that came too late to be applied in order: their
    /// entity rules pass them unrun, and the verdict goes to their input
    /// partition. Keeps the longest a late one took from being sent to
    /// reaching weir for the next warning (see [`Task::delay`]; for one
    /// read from the kind's topic, from its order time to now, which is at
    /// least that).
    fn answer_late(&mut self, task: i32, kind: Entity, late: Vec<Task>, out: &mut Output) {
        let now_ms = if late.is_empty() { 0 } else { wall_ms() };
        for task_late in late {
            let delay = task_late.delay.unwrap_or_else(|| now_ms.saturating_sub(task_late.at));
            self.late_delay_ms = self.late_delay_ms.max(delay);
            let account = task_late.tx.account_id.into_bytes();
            let verdict = Verdict { offset: task_late.offset, kind, results: Vec::new() };
            out.records.push(verdict_record(task, task_late.partition, &verdict, Some(account)));
        }
    }

    /// Takes in a memo for this worker's entity partition `target` of the
    /// kind at `kind`; a task it answers late gets its verdict in `out`.
    /// False when the partition is not this worker's (or not restored yet:
    /// the memo's copy in Kafka is read instead).
    fn take_memo(&mut self, kind: usize, target: i32, from: i32, memo: Memo, out: &mut Output) -> bool {
        let Some(entity) = self.hops.get_mut(&target).and_then(|h| h.entities.get_mut(kind)) else { return false };
        let mut late = Vec::new();
        entity.memo(from, memo, &mut late);
        let kind = self.topology.kinds[kind].0;
        self.answer_late(target, kind, late, out);
        true
    }

    /// Decides a chunk of records and puts its output in the outbox.
    fn decide(&mut self, records: Vec<Record>, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        // Records of partitions no longer assigned belong to their new owner.
        let records: Vec<Record> = records.into_iter().filter(|r| self.assigned.contains_key(&r.partition)).collect();
        if records.is_empty() {
            return Ok(());
        }
        self.adopt_rules();
        for p in records.iter().map(|r| r.partition).collect::<HashSet<i32>>() {
            self.ensure_restored(p, stop)?;
        }
        let mut out = Output::default();
        let mut touched: HashMap<i32, HashSet<String>> = HashMap::new();
        let mut tasks: HashSet<i32> = HashSet::default();
        // The decision latency, from the chunk's last record's timestamp.
        let newest_ms = records.last().and_then(|r| r.timestamp_ms);
        let started = Instant::now();
        let arrived = if self.topology.routes() { wall_ms() } else { 0 };
        for record in records {
            if !self.topology.routes() {
                let (p, offset) = (record.partition, record.offset);
                let parsed = parse_input(&record.payload, self.config.max_event_bytes);
                self.decide_one(record, parsed, None, &mut out, &mut touched);
                out.offsets.insert((Source::Input, p), offset + 1);
                self.assigned.insert(p, Some(offset + 1));
                continue;
            }
            tasks.insert(record.partition);
            match record.source {
                Source::Input => self.route(record, arrived, &mut out),
                Source::Entity(kind) => self.take_in(kind, record, &mut out),
                Source::Verdicts => {
                    let hop = self.hops.get_mut(&record.partition).expect("restored above");
                    match Verdict::read(&record.payload) {
                        Some(verdict) => hop.awaiting.verdict(Some(record.offset), verdict),
                        None => tracing::warn!(
                            partition = record.partition,
                            offset = record.offset,
                            "a record of the verdicts topic that weir did not write; skipped"
                        ),
                    }
                }
            }
        }
        if self.topology.routes() {
            self.mail.delivered(self.index, self.delivery.lately(arrived));
            self.advance(&tasks, &mut out, &mut touched);
        }
        self.finish(out, touched, newest_ms, started);
        Ok(())
    }

    /// What the consumer says of where input partitions end: a partition
    /// read to its end holds the entities' event time back no more.
    fn ends(&mut self, ends: Vec<(i32, i64, i64)>, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        let now_ms = wall_ms();
        self.mail.delivered(self.index, self.delivery.lately(now_ms));
        let mut tasks = HashSet::default();
        for (p, low, high) in ends {
            if !self.assigned.contains_key(&p) {
                continue;
            }
            self.ensure_restored(p, stop)?;
            let hop = self.hops.get_mut(&p).expect("restored above");
            if hop.router.routed < low {
                hop.router.routed = low;
                self.mail.router_at(p, low);
            }
            // A paused partition is not fetched from: the consumer's end of
            // it is stale, and more will come once it is resumed. The
            // consumer's end is as of its last fetch, and a record sent just
            // before may still be on its way: the partition counts as idle
            // (see `TaskHop::progress`) only once it was found at its end at
            // the same position twice, a report apart.
            let at_end = !hop.full && hop.router.routed >= high;
            let routed = hop.router.routed;
            let idle = hop.end_seen.filter(|(seen, _, _)| at_end && *seen == routed);
            hop.idle_since = idle.map(|(_, _, last)| last);
            self.mail.router_idle(p, hop.idle_since);
            // Only a stream behind the clock (a replay) needs it: a live
            // one's idle bound runs on with the clock (see `TaskHop::progress`).
            let replay = hop.latest.is_some_and(|l| hop.latest_sent.saturating_sub(l) > IDLE_HOLDS_NOTHING_MS);
            hop.idle_long = replay && idle.is_some_and(|(_, first, _)| now_ms - first >= IDLE_HOLDS_NOTHING_MS);
            let first = idle.map_or(now_ms, |(_, first, _)| first);
            hop.end_seen = at_end.then_some((routed, first, now_ms));
            tasks.insert(p);
        }
        let mut out = Output::default();
        let mut touched = HashMap::new();
        self.advance(&tasks, &mut out, &mut touched);
        if !out.is_empty() {
            self.finish(out, touched, None, Instant::now());
        }
        Ok(())
    }

    /// Reads a partition's state back before its first record, if it was
    /// not read on its assignment.
    fn ensure_restored(&mut self, p: i32, stop: &AtomicBool) -> Result<(), KafkaRunError> {
        self.restore_all(&[p], stop)
    }

    /// Reads the state of those of `partitions` not restored yet back from
    /// the changelog, all at once ([`Worker::restore`]), and sets up their
    /// tasks: on their assignment, so the first record of each waits for
    /// none of them.
    fn restore_all(&mut self, partitions: &[i32], stop: &AtomicBool) -> Result<(), KafkaRunError> {
        let missing: Vec<i32> = partitions.iter().copied().filter(|p| !self.states.contains_key(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (p, restored) in self.restore(&missing, stop)? {
            self.install(p, restored);
        }
        Ok(())
    }

    /// Takes a restored partition's accounts and, with the entity hop, its
    /// router's and entity partitions' state.
    fn install(&mut self, p: i32, (accounts, meta): changelog::Restored) {
        self.states.insert(p, accounts);
        if self.topology.routes() {
            fn read<T: serde::de::DeserializeOwned + Default>(
                meta: &std::collections::BTreeMap<String, Vec<u8>>,
                name: &str,
            ) -> T {
                meta.get(name).and_then(|v| postcard::from_bytes(v).ok()).unwrap_or_default()
            }
            let mut router: RouterMeta = read(&meta, "router");
            // Decisions resume at the committed offset: what comes before
            // was routed too (entities may have been switched on since).
            let start = self.assigned.get(&p).copied().flatten();
            router.routed = router.routed.max(start.unwrap_or(0));
            let entities = self
                .topology
                .kinds
                .iter()
                .map(|(kind, _)| {
                    let bytes = meta.get(&entity_meta_name(*kind));
                    EntityPartition::new(bytes.and_then(|b| EntityMeta::decode(b)).unwrap_or_default())
                })
                .collect();
            let since = router.routed;
            let hop = TaskHop {
                router,
                router_changed: false,
                latest: None,
                latest_sent: 0,
                at_latest: 0,
                sent: None,
                written: None,
                last_sent: HashMap::new(),
                since,
                end_seen: None,
                idle_since: None,
                idle_long: false,
                full: false,
                entities,
                awaiting: Awaiting::starting_at(start),
            };
            self.hops.insert(p, hop);
            self.mail.router_at(p, since);
            self.mail.hold(p, true);
        }
    }

    /// Reads input record: routes a transaction to its entities (unless it
    /// was routed before a restart) and queues it for its decision.
    /// `arrived`: when its chunk reached this worker (wall clock, ms).
    fn route(&mut self, record: Record, arrived: i64, out: &mut Output) {
        let p = record.partition;
        let hop = self.hops.get_mut(&p).expect("restored above");
        let parsed = parse_input(&record.payload, self.config.max_event_bytes);
        let mut expects = 0;
        let fresh = record.offset >= hop.router.routed;
        // Whether its progress said it holds nothing back (see
        // `TaskHop::progress`): reading a record now wakes it.
        let was_at_end = hop.idle_since.is_some() && (hop.idle_long || hop.latest.is_none());
        if let Ok(InputEvent::Transaction(tx)) = &parsed {
            let at = hop::order_time(tx, record.timestamp_ms);
            if fresh && let Some(sent) = record.timestamp_ms {
                self.delivery.observe(arrived, sent);
            }
            if hop.latest.is_none_or(|l| at > l) {
                hop.latest = Some(at);
                hop.latest_sent = record.timestamp_ms.unwrap_or(at);
                hop.at_latest = 1;
            } else if hop.latest == Some(at) {
                hop.at_latest += 1;
            }
            let accounts = self.states.get(&p).expect("restored above");
            let duplicate = hop.awaiting.is_queued(&tx.transaction_id) || seen_before(accounts, tx);
            for (index, (kind, _)) in self.topology.kinds.iter().enumerate().filter(|_| !duplicate) {
                let Some(id) = entity_id(*kind, tx) else { continue };
                expects |= hop::bit(*kind);
                if fresh {
                    let target = hop::entity_partition(id, self.topology.partitions);
                    out.records.push(OutRecord {
                        destination: Destination::Entity(*kind),
                        partition: p,
                        target: Some(target),
                        key: Some(id.as_bytes().to_vec()),
                        payload: Some(hop::Record::task(p, record.offset, at, &record.payload)),
                        headers: Headers::None,
                        carries: Some((p, record.offset)),
                    });
                    let prev = hop.last_sent.insert((index, target), record.offset);
                    if self.mail.holds(target) {
                        let task = Box::new(Task {
                            hop_offset: None,
                            partition: p,
                            offset: record.offset,
                            at,
                            delay: record.timestamp_ms.map(|sent| arrived.saturating_sub(sent)),
                            tx: tx.clone(),
                        });
                        self.memos.push((index, target, p, Memo::Task { task, prev, since: hop.since }));
                    }
                }
            }
        }
        if fresh {
            hop.router.routed = record.offset + 1;
            self.mail.router_at(p, record.offset + 1);
            hop.router_changed = true;
            if hop.idle_since.take().is_some() {
                self.mail.router_idle(p, None);
            }
            hop.idle_long = false;
            if was_at_end {
                self.mail.woke(wall_ms());
            }
        }
        hop.awaiting.push(Pending { record, parsed, expects });
    }

    /// Takes in a record of kind `kind`'s partitions: a task waits for its
    /// turn (or is answered now, unrun, when it came too late); a progress
    /// record moves the partition's event time on.
    fn take_in(&mut self, kind: Entity, record: Record, out: &mut Output) {
        let p = record.partition;
        let Some(index) = self.topology.kinds.iter().position(|(k, _)| *k == kind) else { return };
        let hop = self.hops.get_mut(&p).expect("restored above");
        let entity = &mut hop.entities[index];
        match hop::Record::read(&record.payload) {
            Some(hop::Record::Task { partition, offset, at, tx }) => {
                let task = match parse_input(tx, usize::MAX) {
                    Ok(InputEvent::Transaction(tx)) => {
                        let at = at.unwrap_or_else(|| tx.occurred_at_ms());
                        Task { hop_offset: Some(record.offset), partition, offset, at, delay: None, tx }
                    }
                    _ => {
                        // Never routed by weir; its account must not wait.
                        tracing::warn!(
                            partition = p,
                            offset = record.offset,
                            "an entity task that is not a transaction; answered unrun"
                        );
                        entity.skip(record.offset);
                        let verdict = Verdict { offset, kind, results: Vec::new() };
                        out.records.push(verdict_record(p, partition, &verdict, None));
                        return;
                    }
                };
                let mut late = Vec::new();
                entity.arrive(task, &mut late);
                self.answer_late(p, kind, late, out);
            }
            Some(hop::Record::Progress { partition, progress }) => {
                let mut late = Vec::new();
                entity.progress(record.offset, partition, progress, &mut late);
                self.answer_late(p, kind, late, out);
            }
            None => {
                tracing::warn!(
                    partition = p,
                    offset = record.offset,
                    "a record of an entity topic that weir did not write; skipped"
                );
                entity.skip(record.offset);
            }
        }
    }

    /// After a chunk, for each of `tasks`: tells the entities' partitions
    /// how far the router got, releases the tasks every input partition
    /// has passed against their entities, decides the transactions whose
    /// verdicts are all in, and records the task's positions.
    fn advance(&mut self, tasks: &HashSet<i32>, out: &mut Output, touched: &mut HashMap<i32, HashSet<String>>) {
        let topology = self.topology.clone();
        let mut late = 0;
        // Verdicts for input partitions of this instance, to hand over.
        let mut handed: Vec<(i32, Verdict)> = Vec::new();
        let allowance = self.mail.delivery_allowance();
        self.hooks.set_delivery_allowance(allowance);
        for &p in tasks {
            let Some(hop) = self.hops.get_mut(&p) else { continue };
            let progress = hop.progress(topology.grace_ms, topology.max_waiting, allowance);
            // Partitions held here take it in memory when it changes, and
            // their copy in Kafka only now and then: a Kafka transaction
            // with no other record for the hop's topics then touches none
            // of them. Partitions elsewhere get every change.
            let changed = hop.sent != Some(progress);
            let due = hop.written.is_none_or(|(at, w)| w != progress && at.elapsed() >= PROGRESS_TO_KAFKA_EVERY);
            if !changed && !due {
                continue;
            }
            hop.sent = Some(progress);
            if due {
                hop.written = Some((Instant::now(), progress));
            }
            let payload = hop::Record::progress(p, &progress);
            for (index, (kind, _)) in topology.kinds.iter().enumerate() {
                for target in 0..topology.partitions {
                    let held = self.mail.holds(target);
                    if held && changed {
                        let last = hop.last_sent.get(&(index, target)).copied();
                        self.memos.push((index, target, p, Memo::Progress { last, since: hop.since, progress }));
                    }
                    if held && !due {
                        continue;
                    }
                    out.records.push(OutRecord {
                        destination: Destination::Entity(*kind),
                        partition: p,
                        target: Some(target),
                        key: None,
                        payload: Some(payload.clone()),
                        headers: Headers::None,
                        carries: None,
                    });
                }
            }
        }
        // The routers' memos: this worker's entity partitions take theirs
        // now; the other workers' are posted once this output is delivered.
        let mut tasks = tasks.clone();
        for (kind, target, from, memo) in std::mem::take(&mut self.memos) {
            let owner = self.mail.worker_of(target);
            if owner != self.index {
                self.outgoing.push((owner, Post::Memo { kind, target, from, memo }));
            } else if self.take_memo(kind, target, from, memo, out) {
                tasks.insert(target);
            }
        }
        let now_ms = wall_ms();
        for &p in &tasks {
            let Some(hop) = self.hops.get_mut(&p) else { continue };
            let accounts = self.states.get_mut(&p).expect("restored with its hop");
            let touched = touched.entry(p).or_default();
            for (index, (kind, _)) in topology.kinds.iter().enumerate() {
                let entity = &mut hop.entities[index];
                for task in entity.release(topology.partitions, |r, position| self.mail.trusts_end(r, position, now_ms))
                {
                    let id = entity_id(*kind, &task.tx).expect("routed for its entity");
                    // One allocation for the key, which the touched set
                    // keeps; a copy only for an entity seen the first time.
                    let key = entity_key(*kind, id);
                    if !accounts.contains_key(&key) {
                        accounts.insert(key.clone(), AccountState::default());
                    }
                    let state = accounts.get_mut(&key).expect("inserted above");
                    let results = self.evaluator.entity_verdict(*kind, &task.tx, state);
                    touched.insert(key);
                    let account = task.tx.account_id.into_bytes();
                    let verdict = Verdict { offset: task.offset, kind: *kind, results };
                    out.records.push(verdict_record(p, task.partition, &verdict, Some(account)));
                    handed.push((task.partition, verdict));
                }
                late += std::mem::take(&mut entity.late);
                if std::mem::take(&mut entity.changed) {
                    out.records.push(meta_record(p, &entity_meta_name(*kind), &entity.meta));
                }
                out.offsets.insert((Source::Entity(*kind), p), entity.commit_offset());
            }
            if std::mem::take(&mut hop.router_changed) {
                out.records.push(meta_record(p, "router", &hop.router));
            }
        }
        out.counters.entity_late += late;
        if late > 0 {
            // The longest any of them was on its way, next to how long an
            // idle partition allows for (see `TaskHop::progress`): a record
            // on its way longer than the allowance can come late.
            let delay_ms = std::mem::take(&mut self.late_delay_ms);
            tracing::warn!(
                late,
                delay_ms,
                allowance_ms = allowance,
                "transactions came later than `kafka.entity_grace_ms` allows: their entity rules passed them unrun"
            );
        }
        // This worker's own partitions take their verdicts now (they commit
        // in this chunk's output); the other workers' once it is delivered.
        let mut deciding: Vec<i32> = tasks.iter().copied().collect();
        for (partition, verdict) in handed {
            let owner = self.mail.worker_of(partition);
            if owner != self.index {
                self.outgoing.push((owner, Post::Verdict { partition, verdict }));
            } else if let Some(hop) = self.hops.get_mut(&partition) {
                hop.awaiting.verdict(None, verdict);
                if !tasks.contains(&partition) && !deciding.contains(&partition) {
                    deciding.push(partition);
                }
            }
        }
        // Decisions whose verdicts are all in, in input order.
        let max_waiting = self.topology.max_waiting;
        for p in deciding {
            while let Some((pending, results)) = self.hops.get_mut(&p).and_then(|h| h.awaiting.next_ready()) {
                let Pending { record, parsed, .. } = pending;
                let offset = record.offset;
                self.decide_one(record, parsed, Some(results), out, touched);
                self.assigned.insert(p, Some(offset + 1));
            }
            let Some(hop) = self.hops.get_mut(&p) else { continue };
            // A full queue pauses its partition until half of it is decided.
            let waiting = hop.awaiting.len();
            let full = if hop.full { waiting > max_waiting / 2 } else { waiting >= max_waiting };
            if full != hop.full {
                hop.full = full;
                self.full.set(p, full);
                if full {
                    tracing::warn!(
                        partition = p,
                        waiting,
                        "records waiting for entity verdicts reached `kafka.entity_max_waiting`: the partition is paused until half are decided"
                    );
                } else {
                    tracing::info!(partition = p, waiting, "the partition's queue drained: it is read again");
                }
            }
            if let Some(o) = hop.awaiting.input_commit() {
                out.offsets.insert((Source::Input, p), o);
            }
            if let Some(o) = hop.awaiting.verdicts_commit() {
                out.offsets.insert((Source::Verdicts, p), o);
            }
        }
    }

    /// Decides one input record (with its entity rules' results from the
    /// hop, if entities are routed) and adds its output.
    fn decide_one(
        &mut self,
        record: Record,
        parsed: Result<InputEvent, InvalidEvent>,
        given: Option<Vec<RuleResult>>,
        out: &mut Output,
        touched: &mut HashMap<i32, HashSet<String>>,
    ) {
        let topics = &self.config.topics;
        let position =
            InputPosition { topic: topics.input.clone(), partition: record.partition, offset: record.offset };
        let accounts = self.states.get_mut(&record.partition).expect("restored before its records");
        let mut view = PartitionAccounts { accounts, touched: touched.entry(record.partition).or_default(), given };
        let processed = match process(&mut self.evaluator, parsed, position, &mut view) {
            Ok(p) => p,
            Err(never) => match never {},
        };
        out.counters.count(&processed);
        match processed {
            Processed::Decided(decision) => {
                let mut payload = Vec::with_capacity(2048);
                decision.write_json(&mut payload);
                out.records.push(OutRecord {
                    destination: Destination::Decision(decision.event_type),
                    partition: record.partition,
                    target: None,
                    key: Some(decision.account_id.into_bytes()),
                    payload: Some(payload),
                    headers: Headers::Decision { id: decision.event_id, event_type: decision.event_type },
                    carries: None,
                });
            }
            Processed::DeadLetter(reason) => {
                tracing::debug!(partition = record.partition, offset = record.offset, "dead-lettered: {reason}");
                let size = record.payload.len();
                let (mut key, mut payload) = (record.key, record.payload);
                payload.truncate(self.dead_letter_payload_max(size));
                if let Some(key) = key.as_mut() {
                    key.truncate(DEAD_LETTER_KEY_MAX);
                }
                let truncated = payload.len() < size;
                out.records.push(OutRecord {
                    destination: Destination::DeadLetter,
                    partition: record.partition,
                    target: None,
                    key,
                    payload: Some(payload),
                    headers: Headers::DeadLetter { reason, offset: record.offset, size, truncated },
                    carries: None,
                });
            }
            Processed::Unlocked(unlock) => {
                // Downstream (the bank's lock flag) learns of it on the topic
                // it learns of locks, in order with them, exactly once.
                let payload = serde_json::to_vec(&unlock).expect("an unlock serializes");
                out.records.push(OutRecord {
                    destination: Destination::Decision(DecisionType::AccountLocked),
                    partition: record.partition,
                    target: None,
                    key: Some(unlock.account_id.into_bytes()),
                    payload: Some(payload),
                    headers: Headers::Unlocked { id: unlock.event_id },
                    carries: None,
                });
            }
            Processed::Confirmation | Processed::Duplicate => {}
        }
    }

    /// Adds the changed parts of every touched account and entity to
    /// `out`, with the counters, and delivers it.
    fn finish(
        &mut self,
        mut out: Output,
        touched: HashMap<i32, HashSet<String>>,
        newest_ms: Option<i64>,
        started: Instant,
    ) {
        // What changed of every touched account, once per chunk.
        for (partition, account_id) in touched.into_iter().flat_map(|(p, ids)| ids.into_iter().map(move |id| (p, id))) {
            let Some(state) = self.states.get_mut(&partition).and_then(|a| a.get_mut(&account_id)) else { continue };
            for (key, value) in changelog::records(&account_id, state) {
                out.records.push(OutRecord {
                    destination: Destination::Changelog,
                    partition,
                    target: Some(partition),
                    key: Some(key),
                    payload: value,
                    headers: Headers::None,
                    carries: None,
                });
            }
        }
        out.rules = self.evaluator.stats().map(|(id, s)| (id.to_owned(), s.clone())).collect();
        if self.hooks.observing() {
            self.hooks.observe_batch(started.elapsed());
            self.hooks.observe_evaluations(&mut self.evaluator);
            if let Some(ms) = newest_ms {
                self.hooks.observe_decision_latency((wall_ms() - ms) as f64 / 1000.0);
            }
        }
        self.deliver(out);
        if !self.outgoing.is_empty() {
            let mut posts = std::mem::take(&mut self.outgoing);
            posts.sort_by_key(|(worker, _)| *worker);
            let mut posts = posts.into_iter().peekable();
            while let Some(&(worker, _)) = posts.peek() {
                let to_worker = std::iter::from_fn(|| posts.next_if(|(w, _)| *w == worker).map(|(_, post)| post));
                self.mail.post(worker, self.resets, to_worker);
            }
        }
    }

    /// How much of a dead-lettered record of `size` bytes its dead letter
    /// keeps: all of a record within the size limit, the first
    /// [`TRUNCATED_PAYLOAD_BYTES`] of a larger one, and never more than fits
    /// the producer's message size with the key and headers.
    fn dead_letter_payload_max(&self, size: usize) -> usize {
        let limit = self.config.max_event_bytes;
        let kept = if size > limit { limit.min(TRUNCATED_PAYLOAD_BYTES) } else { size };
        kept.min(self.config.producer_message_max().saturating_sub(DEAD_LETTER_ENVELOPE))
    }

    /// Adds `out` to the outbox, then waits while the outbox holds more than
    /// `batch_max_records` records (the committer is behind).
    fn deliver(&self, out: Output) {
        {
            let _in_step = self.doorbell.epoch.read().unwrap_or_else(|e| e.into_inner());
            let mut output = self.outbox.output.lock().unwrap_or_else(|e| e.into_inner());
            output.records.extend(out.records);
            output.offsets.extend(out.offsets);
            output.counters.add(&out.counters);
            output.rules = out.rules;
        }
        self.doorbell.ring();
        let mut output = self.outbox.output.lock().unwrap_or_else(|e| e.into_inner());
        while output.records.len() >= self.config.batch_max_records {
            let (next, _) =
                self.outbox.taken.wait_timeout(output, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner());
            output = next;
        }
    }

    /// Between two chunks: swaps to the newest rule set, if there is one,
    /// and reports from which offset of each of its partitions it decides.
    fn adopt_rules(&mut self) {
        if let Some(adopted) = self.hooks.adopt(&mut self.generation, &mut self.evaluator) {
            if self.assigned.is_empty() {
                tracing::debug!(
                    worker = self.index,
                    generation = adopted.number,
                    "rules adopted with no partition assigned"
                );
                return;
            }
            let position = TookEffect::Offsets {
                topic: self.config.topics.input.clone(),
                partitions: self.assigned.iter().map(|(p, next)| (*p, *next)).collect(),
            };
            self.hooks.took_effect(&adopted, &position);
        }
    }

    /// Reads the account states of `partitions` back from the changelog,
    /// all at once with one consumer, each to its end: a worker's
    /// partitions read together take about as long as the largest of them,
    /// where one after another each paid a fetch's round trips and its
    /// end's wait on its own.
    fn restore(
        &mut self,
        partitions: &[i32],
        stop: &AtomicBool,
    ) -> Result<Vec<(i32, changelog::Restored)>, KafkaRunError> {
        let topic = &self.config.topics.changelog;
        let first = partitions.first().copied().unwrap_or_default();
        let err = |partition: i32, problem: String| KafkaRunError::Restore { topic: topic.clone(), partition, problem };
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| err(p, e.to_string()))?;
        }
        self.restorer.assign(&tpl).map_err(|e| err(first, e.to_string()))?;
        // Per partition: its restore, the records read, and the offset it
        // ends at (the high watermark when reading began).
        let mut reading: BTreeMap<i32, (changelog::Restore, u64, i64)> = BTreeMap::new();
        // The partitions not read to their end yet.
        let mut open = HashSet::default();
        for &p in partitions {
            // The broker may be away or electing a leader: wait for it.
            let what = "reading the changelog's end";
            let (low, high) = retry(stop, what, RESTORE_PATIENCE, || {
                self.restorer.fetch_watermarks(topic, p, ATTEMPT_TIMEOUT).map_err(Attempt::Again)
            })
            .map_err(|g| match g {
                GaveUp::Stopping => KafkaRunError::Stopped(what),
                GaveUp::Failed(e) => err(p, e.to_string()),
            })?;
            reading.insert(p, (changelog::Restore::default(), 0, high));
            if high > low {
                open.insert(p);
            }
        }
        while !open.is_empty() {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(KafkaRunError::Stopped("restoring state from the changelog"));
            }
            if started.elapsed() > RESTORE_PATIENCE {
                let waited = RESTORE_PATIENCE.as_secs();
                let p = open.iter().copied().min().unwrap_or(first);
                return Err(err(p, format!("not finished after {waited} s")));
            }
            match self.restorer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    // What a partition read to its end still fetches is
                    // newer than its end when reading began: left alone.
                    let p = m.partition();
                    let Some((restore, records, high)) = reading.get_mut(&p).filter(|_| open.contains(&p)) else {
                        continue;
                    };
                    if let Some(key) = m.key() {
                        restore.apply(key, m.payload());
                        *records += 1;
                    }
                    if m.offset() + 1 >= *high {
                        open.remove(&p);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a changelog record could not be read while restoring")
                }
                None => {}
            }
        }
        self.restorer.unassign().map_err(|e| err(first, e.to_string()))?;
        let ms = started.elapsed().as_millis() as u64;
        let together = partitions.len();
        let mut restored = Vec::with_capacity(together);
        for (p, (restore, records, _)) in reading {
            let (accounts, meta) = restore.finish_with_meta().map_err(|e| err(p, e.to_string()))?;
            tracing::info!(
                partition = p,
                worker = self.index,
                accounts = accounts.len(),
                records,
                ms,
                together,
                "state restored from the changelog"
            );
            restored.push((p, (accounts, meta)));
        }
        Ok(restored)
    }
}

/// The accounts of one partition, as the per-record core sees them. A
/// transaction published twice upstream (e.g. by an outbox relay that died
/// before marking it sent) is recognized by its id among the account's
/// recent transactions.
struct PartitionAccounts<'a> {
    accounts: &'a mut HashMap<String, AccountState>,
    /// The accounts of the partition the chunk changed.
    touched: &'a mut HashSet<String>,
    /// The entity rules' results from the entity hop (when entities are
    /// routed, entity rules never run here).
    given: Option<Vec<RuleResult>>,
}

/// The changelog name of a kind's [`EntityMeta`].
fn entity_meta_name(kind: Entity) -> String {
    format!("entity/{kind}")
}

/// A task's own state for the changelog.
fn meta_record(task: i32, name: &str, value: &impl serde::Serialize) -> OutRecord {
    OutRecord {
        destination: Destination::Changelog,
        partition: task,
        target: Some(task),
        key: Some(changelog::meta_key(name)),
        payload: Some(postcard::to_allocvec(value).expect("task state serializes")),
        headers: Headers::None,
        carries: None,
    }
}

/// A verdict on a transaction read from input partition `partition`, to
/// that partition's verdicts.
fn verdict_record(task: i32, partition: i32, verdict: &Verdict, account: Option<Vec<u8>>) -> OutRecord {
    OutRecord {
        destination: Destination::Verdicts,
        partition: task,
        target: Some(partition),
        key: account,
        payload: Some(verdict.write()),
        headers: Headers::None,
        carries: Some((partition, verdict.offset)),
    }
}

/// Whether `tx` is among its account's recent transactions (published
/// twice upstream, e.g. by an outbox relay that died before marking it sent).
fn seen_before(accounts: &HashMap<String, AccountState>, tx: &TransactionRecorded) -> bool {
    accounts.get(&tx.account_id).is_some_and(|a| a.has_transaction(&tx.transaction_id))
}

impl Accounts for PartitionAccounts<'_> {
    type Error = std::convert::Infallible;

    fn account(&mut self, id: &str) -> Result<&mut AccountState, Self::Error> {
        if !self.touched.contains(id) {
            self.touched.insert(id.to_owned());
        }
        if !self.accounts.contains_key(id) {
            self.accounts.insert(id.to_owned(), AccountState::default());
        }
        Ok(self.accounts.get_mut(id).expect("just inserted"))
    }

    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, Self::Error> {
        Ok(seen_before(self.accounts, tx))
    }

    fn decided(&mut self, _tx: &TransactionRecorded) {}

    fn entity_rules(&mut self, evaluator: &mut Evaluator, tx: &TransactionRecorded) -> Result<(), Self::Error> {
        if let Some(results) = self.given.take() {
            evaluator.accept_entity_results(tx, results);
        }
        Ok(())
    }
}

/// The wall clock in ms since the epoch (the intake's reports of where
/// partitions end, a router's wake and a decision's latency are timed by
/// it).
fn wall_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
