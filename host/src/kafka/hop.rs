//! The entity hop: how a transaction reaches the partitions that own its
//! entities and how their verdicts come back to its account.
//!
//! A *task* is partition `p` of every topic weir reads (input,
//! `by-<kind>`, verdicts; all have the input's partition count and the
//! group's range assignor gives one instance all of them), with its state
//! on changelog partition `p`. Its worker
//!
//! - **routes** input `p`: each transaction with an entity of a routed kind
//!   goes, as a [`Record::Task`], to that kind's topic keyed by the entity
//!   id; after a chunk, every partition of every kind's topic gets a
//!   [`Progress`] of input `p` (what the router has read, the event time it
//!   has passed, whether it is at the end). The next offset to route is
//!   task state ([`RouterMeta`]), so a transaction read again after a crash
//!   is not routed twice. A task or progress for an entity partition on
//!   this instance is also handed over in memory ([`Memo`]), linked to the
//!   router's previous task there, so it is taken in before its copy
//!   comes back through Kafka and never out of the router's order;
//! - **holds the entities** of `by-<kind>` partition `p`
//!   ([`EntityPartition`]): tasks wait in (event time, transaction id)
//!   order until every input partition's progress has passed them, then run
//!   the kind's rules against the entity's state, and their results go back
//!   as a [`Verdict`] to the verdicts partition of the transaction's input
//!   partition. Progress and the last task released are task state
//!   ([`EntityMeta`]); the committed offset is the oldest task still
//!   waiting, so a restart reads again exactly what was not released;
//! - **decides** input `p` ([`Awaiting`]): a transaction waits for the
//!   verdicts of its routed kinds, and the ones after it wait behind it, so
//!   an account's transactions are decided in input order. The verdicts
//!   partition's committed offset is the oldest verdict still held.
//!
//! Every output and every offset of a task commits in the worker's Kafka
//! transaction, with its state: a crash between two hops re-reads what its
//! hop had not committed, and nothing is routed, applied or decided twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use weir_sdk::Entity;

use crate::events::{InputEvent, InvalidEvent, RuleResult, TransactionRecorded};

use super::Record as InputRecord;

/// A task written before tasks carried their ordering time (it is then
/// the transaction's event time).
const TASK_UNTIMED: u8 = b'T';
const TASK: u8 = b'S';
const PROGRESS: u8 = b'P';
const VERDICT: u8 = b'V';

/// When a transaction is applied to its entities (ms): its event time, but
/// never later than its input record's timestamp (when the producer sent
/// it, or when the broker appended it). A transaction dated in the future (a
/// wrong clock, a hostile producer) would otherwise wait until every
/// partition had passed its date, holding back its partition's decisions.
/// Both times are in the record, so a replay orders alike.
pub(super) fn order_time(tx: &TransactionRecorded, record_ms: Option<i64>) -> i64 {
    let at = tx.occurred_at_ms();
    record_ms.map_or(at, |r| at.min(r))
}

/// The partition of a kind's topic that keeps entity `id`: CRC-32 of the
/// id modulo the partition count, which is librdkafka's default
/// partitioner for a keyed record (`consistent_random`). The router names
/// it on the record, so the task lands where it is handed over in memory
/// whatever `partitioner` the producer is given.
pub(super) fn entity_partition(id: &str, partitions: i32) -> i32 {
    let n = partitions.max(1).unsigned_abs();
    // The remainder is below `partitions`, an i32.
    (crc32fast::hash(id.as_bytes()) % n) as i32
}

/// The kind's index in [`Entity::ALL`], its bit in a mask.
pub(super) fn bit(kind: Entity) -> u8 {
    1 << Entity::ALL.iter().position(|k| *k == kind).expect("a kind of Entity::ALL")
}

/// What an input partition's router had reached when it wrote a progress
/// record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Progress {
    /// The next input offset it would route.
    pub position: i64,
    /// Every later transaction of the partition is expected at or after this
    /// event time (ms): the latest seen less the grace. `None`: none seen.
    pub watermark: Option<i64>,
    /// Whether the partition holds nothing back: it is a replayed stream
    /// idle at its end for a second, or its router read nothing since it
    /// took it
    /// (versions before wrote it whenever the router had read the
    /// partition to its end).
    pub at_end: bool,
}

impl Progress {
    /// Takes in a report that may be older or newer: the watermark only
    /// grows; the position and whether it is at the end come from the
    /// newest report (at one position, the end is the later news).
    pub(super) fn merge(&mut self, other: Progress) {
        self.watermark = self.watermark.max(other.watermark);
        if other.position > self.position || (other.position == self.position && other.at_end) {
            self.position = other.position;
            self.at_end = other.at_end;
        }
    }

    /// The event time before which the partition sends nothing more
    /// (`i64::MAX` at its end); `None`: it holds everything back.
    fn passed(&self) -> Option<i64> {
        if self.at_end { Some(i64::MAX) } else { self.watermark }
    }
}

/// A record of a `by-<kind>` topic.
#[derive(Debug, PartialEq)]
pub(super) enum Record<'a> {
    /// A transaction for its entity: where it was read, when it is applied
    /// (see [`order_time`]; `None` in a record of an earlier version: its
    /// event time), and its payload.
    Task { partition: i32, offset: i64, at: Option<i64>, tx: &'a [u8] },
    /// A router's progress on an input partition.
    Progress { partition: i32, progress: Progress },
}

impl Record<'_> {
    pub(super) fn task(partition: i32, offset: i64, at: i64, tx: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + tx.len());
        out.push(TASK);
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&at.to_be_bytes());
        out.extend_from_slice(tx);
        out
    }

    pub(super) fn progress(partition: i32, p: &Progress) -> Vec<u8> {
        let mut out = Vec::with_capacity(23);
        out.push(PROGRESS);
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&p.position.to_be_bytes());
        out.push(u8::from(p.watermark.is_some()));
        out.extend_from_slice(&p.watermark.unwrap_or(0).to_be_bytes());
        out.push(u8::from(p.at_end));
        out
    }

    /// Reads a record weir wrote; `None` for anything else.
    pub(super) fn read(bytes: &[u8]) -> Option<Record<'_>> {
        let (&tag, rest) = bytes.split_first()?;
        let partition = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let rest = &rest[4..];
        let offset = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let rest = &rest[8..];
        match tag {
            TASK => {
                let at = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
                Some(Record::Task { partition, offset, at: Some(at), tx: &rest[8..] })
            }
            TASK_UNTIMED => Some(Record::Task { partition, offset, at: None, tx: rest }),
            PROGRESS => {
                let [has, w @ .., end] = rest else { return None };
                let watermark = i64::from_be_bytes(w.try_into().ok()?);
                let progress =
                    Progress { position: offset, watermark: (*has == 1).then_some(watermark), at_end: *end == 1 };
                Some(Record::Progress { partition, progress })
            }
            _ => None,
        }
    }
}

/// The entity rules of one kind on one transaction, for its account.
#[derive(Debug, PartialEq)]
pub(super) struct Verdict {
    /// The transaction's input offset (its partition is the verdict's).
    pub offset: i64,
    pub kind: Entity,
    /// The kind's rules' results; none for a transaction that came too late
    /// to be applied in order (its entity rules pass it unrun).
    pub results: Vec<RuleResult>,
}

impl Verdict {
    pub(super) fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(VERDICT);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.push(bit(self.kind));
        serde_json::to_writer(&mut out, &self.results).expect("results serialize");
        out
    }

    pub(super) fn read(bytes: &[u8]) -> Option<Verdict> {
        let (&VERDICT, rest) = bytes.split_first()? else { return None };
        let offset = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let mask = *rest.get(8)?;
        let kind = *Entity::ALL.iter().find(|k| bit(**k) == mask)?;
        let results = serde_json::from_slice(rest.get(9..)?).ok()?;
        Some(Verdict { offset, kind, results })
    }
}

/// A task's router state on the changelog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct RouterMeta {
    /// The next input offset to route: what comes before was routed.
    pub routed: i64,
}

/// A `by-<kind>` partition's state on the changelog (its entities'
/// states are kept like accounts').
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct EntityMeta {
    /// Per input partition: its router's progress.
    pub progress: BTreeMap<i32, Progress>,
    /// (event time, transaction id) of the last task released.
    pub released: Option<(i64, String)>,
    /// The next offset of the partition to read: what comes before was
    /// taken in (released, answered late, or waiting).
    pub consumed: i64,
    /// Per input partition: the input offset of the last task taken in,
    /// from Kafka or from memory.
    pub taken: BTreeMap<i32, i64>,
}

impl EntityMeta {
    /// Reads the state as written, by this version or by one before
    /// `taken` was kept.
    pub(super) fn decode(bytes: &[u8]) -> Option<EntityMeta> {
        #[derive(Deserialize)]
        struct Before {
            progress: BTreeMap<i32, Progress>,
            released: Option<(i64, String)>,
            consumed: i64,
        }
        postcard::from_bytes(bytes).ok().or_else(|| {
            let b: Before = postcard::from_bytes(bytes).ok()?;
            Some(EntityMeta {
                progress: b.progress,
                released: b.released,
                consumed: b.consumed,
                taken: BTreeMap::new(),
            })
        })
    }
}

/// A transaction waiting for its turn at its entity.
#[derive(Debug, Clone)]
pub(super) struct Task {
    /// Where it was read from the kind's topic; `None` for one handed over
    /// in memory whose copy was not read yet.
    pub hop_offset: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    /// When it is applied ([`order_time`]).
    pub at: i64,
    /// How long after it was sent (its record's timestamp) its input
    /// record reached the router, in ms, for a task handed over in
    /// memory; `None` for one read from the kind's topic. Said of a task
    /// that comes late: the allowance holds only for what is delivered
    /// within it.
    pub delay: Option<i64>,
    pub tx: TransactionRecorded,
}

/// The order tasks are applied in: [`order_time`], transaction id, then
/// where it was read (a transaction published twice).
type Order = (i64, String, i32, i64);

/// One `by-<kind>` partition of a task.
#[derive(Debug, Default)]
pub(super) struct EntityPartition {
    pub meta: EntityMeta,
    waiting: BTreeMap<Order, Task>,
    /// The offsets of the tasks waiting.
    waiting_offsets: BTreeSet<i64>,
    /// Tasks waiting that were handed over in memory and whose copies were
    /// not read yet: (input partition, offset) → their place in `waiting`.
    unanchored: HashMap<(i32, i64), Order>,
    /// Per input partition: memos that came before the one they follow.
    ahead: HashMap<i32, VecDeque<Memo>>,
    /// Per input partition: the furthest position of its progress read
    /// from Kafka since the partition was restored (so every task it
    /// routed before that was read too).
    read_progress: HashMap<i32, i64>,
    /// The next offset to read when the partition was restored: until the
    /// records before it are read again (the tasks that waited then among
    /// them), memos wait.
    replay_until: i64,
    /// The next offset to read, of what was read since the restore.
    read_next: i64,
    /// Whether `meta` changed since it was last written.
    pub changed: bool,
    /// Tasks answered late since the last count was taken.
    pub late: u64,
}

impl EntityPartition {
    pub(super) fn new(meta: EntityMeta) -> EntityPartition {
        EntityPartition { replay_until: meta.consumed, meta, ..EntityPartition::default() }
    }

    /// Whether what was read before a restart has been read again, so a
    /// memo cannot pass a task that waited then.
    fn replayed(&self) -> bool {
        self.read_next >= self.replay_until
    }

    /// Takes in a task read from the kind's topic: it waits, or it is
    /// added to `late` to be answered now, unrun, because a later one was
    /// applied already; or it is dropped, having been taken in before (from
    /// memory, or before a restart). Memos it was the missing link for are
    /// taken in after it.
    pub(super) fn arrive(&mut self, task: Task, late: &mut Vec<Task>) {
        let from = task.partition;
        let replayed = self.replayed();
        self.take(task, late);
        self.drain_after_read(from, replayed, late);
    }

    /// After a record of router `from` was read: takes in its memos that
    /// now follow, or every router's when that read finished the replay
    /// (`replayed`: whether it was finished before).
    fn drain_after_read(&mut self, from: i32, replayed: bool, late: &mut Vec<Task>) {
        if replayed || !self.replayed() {
            self.drain(from, late);
        } else {
            let routers: Vec<i32> = self.ahead.keys().copied().collect();
            for from in routers {
                self.drain(from, late);
            }
        }
    }

    fn take(&mut self, task: Task, late: &mut Vec<Task>) {
        let key = (task.partition, task.offset);
        // Read before a restart (the committed offset is the oldest task
        // that waited then).
        let read_before = task.hop_offset.is_some_and(|h| h < self.meta.consumed);
        if let Some(hop_offset) = task.hop_offset {
            self.skip(hop_offset);
            if let Some(order) = self.unanchored.remove(&key) {
                // The copy of a task taken in from memory that still waits:
                // from now on a restart reads it again from here.
                if let Some(waiting) = self.waiting.get_mut(&order) {
                    waiting.hop_offset = Some(hop_offset);
                    self.waiting_offsets.insert(hop_offset);
                }
                return;
            }
        }
        let order = (task.at, task.tx.transaction_id.clone(), task.partition, task.offset);
        let before_released = self.meta.released.as_ref().is_some_and(|(t, id)| (order.0, &order.1) <= (*t, id));
        let last = self.meta.taken.get(&task.partition).copied();
        let seen = read_before || last.is_some_and(|l| task.offset <= l);
        if last.is_none_or(|l| task.offset > l) {
            self.meta.taken.insert(task.partition, task.offset);
            self.changed = true;
        }
        if before_released {
            if !seen {
                self.late += 1;
                late.push(task);
            }
            return;
        }
        match task.hop_offset {
            Some(h) => {
                self.waiting_offsets.insert(h);
            }
            None => {
                self.unanchored.insert(key, order.clone());
            }
        }
        self.waiting.insert(order, task);
    }

    /// Takes in a memo of input partition `from`'s router, handed over in
    /// memory: once it follows what was taken in from that router, else
    /// when what it follows comes (at most [`AHEAD_MAX`] wait; one past
    /// that is left to its copy in Kafka). Tasks answered late go to
    /// `late`.
    pub(super) fn memo(&mut self, from: i32, memo: Memo, late: &mut Vec<Task>) {
        let ahead = self.ahead.entry(from).or_default();
        if ahead.len() >= AHEAD_MAX {
            return;
        }
        ahead.push_back(memo);
        self.drain(from, late);
    }

    /// Takes in, in order, the memos of `from`'s router that now follow
    /// what was taken in.
    fn drain(&mut self, from: i32, late: &mut Vec<Task>) {
        if !self.replayed() {
            return;
        }
        loop {
            let last = self.meta.taken.get(&from).copied();
            // Whether every task the router sent here before it took the
            // input partition was read.
            let read_to = self.read_progress.get(&from).copied();
            let before_read = |since: i64| read_to.is_some_and(|r| r >= since);
            let Some(ahead) = self.ahead.get_mut(&from) else { return };
            let Some(front) = ahead.front() else { return };
            match front {
                // Its copy came first: taken in already.
                Memo::Task { task, .. } if last.is_some_and(|l| task.offset <= l) => {
                    ahead.pop_front();
                }
                // It follows the last task taken in from this router, or it
                // is the router's first here and all before it was read.
                Memo::Task { prev, since, .. }
                    if (prev.is_some() && *prev == last) || (prev.is_none() && before_read(*since)) =>
                {
                    let Some(Memo::Task { task, .. }) = ahead.pop_front() else { return };
                    self.take(*task, late);
                }
                // The task it follows is not in yet.
                Memo::Task { .. } => return,
                // Every task the router sent here before it is in.
                Memo::Progress { last: Some(sent), progress, .. } if last.is_some_and(|l| *sent <= l) => {
                    let progress = *progress;
                    ahead.pop_front();
                    self.meta.progress.entry(from).or_default().merge(progress);
                    self.changed = true;
                }
                Memo::Progress { last: None, since, progress } if before_read(*since) => {
                    let progress = *progress;
                    ahead.pop_front();
                    self.meta.progress.entry(from).or_default().merge(progress);
                    self.changed = true;
                }
                // It waits for what the router sent here before it took the
                // input partition (its first progress then goes to Kafka at
                // once), or for the task it follows.
                Memo::Progress { .. } => return,
            }
        }
    }

    /// Takes in a router's progress read at `hop_offset`.
    pub(super) fn progress(&mut self, hop_offset: i64, partition: i32, progress: Progress, late: &mut Vec<Task>) {
        self.meta.progress.entry(partition).or_default().merge(progress);
        let read = self.read_progress.entry(partition).or_insert(progress.position);
        *read = (*read).max(progress.position);
        let replayed = self.replayed();
        self.skip(hop_offset);
        self.drain_after_read(partition, replayed, late);
    }

    /// Counts the record at `hop_offset` as taken in.
    pub(super) fn skip(&mut self, hop_offset: i64) {
        self.meta.consumed = self.meta.consumed.max(hop_offset + 1);
        self.read_next = self.read_next.max(hop_offset + 1);
        self.changed = true;
    }

    /// The tasks every one of the `partitions` input partitions has passed,
    /// in order. A router whose progress says it holds nothing back holds
    /// back at its watermark instead while `trusts_end(router, position)`
    /// says no (see [`Mail::trusts_end`]).
    pub(super) fn release(&mut self, partitions: i32, trusts_end: impl Fn(i32, i64) -> bool) -> Vec<Task> {
        let mut frontier = i64::MAX;
        for p in 0..partitions {
            let passed = self.meta.progress.get(&p).and_then(|progress| {
                if progress.at_end && !trusts_end(p, progress.position) {
                    progress.watermark
                } else {
                    progress.passed()
                }
            });
            match passed {
                Some(passed) => frontier = frontier.min(passed),
                None => return Vec::new(),
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 >= frontier && frontier != i64::MAX {
                break;
            }
            let ((at, id, _, _), task) = entry.remove_entry();
            match task.hop_offset {
                Some(h) => self.waiting_offsets.remove(&h),
                None => self.unanchored.remove(&(task.partition, task.offset)).is_some(),
            };
            self.meta.released = Some((at, id));
            out.push(task);
        }
        if !out.is_empty() {
            self.changed = true;
        }
        out
    }

    /// The offset to commit: the oldest task waiting, else the next to read.
    pub(super) fn commit_offset(&self) -> i64 {
        self.waiting_offsets.first().copied().unwrap_or(self.meta.consumed)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// The input partitions whose records waiting for verdicts reached
/// `kafka.entity_max_waiting`: the workers mark them, the intake pauses
/// them until their queues drain to half.
#[derive(Debug, Default)]
pub(super) struct Full {
    partitions: Mutex<BTreeSet<i32>>,
    changed: AtomicBool,
}

impl Full {
    pub(super) fn set(&self, partition: i32, full: bool) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if full { partitions.insert(partition) } else { partitions.remove(&partition) };
        if changed {
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Asks for the partitions to be applied again (after a rebalance).
    pub(super) fn touch(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// The full partitions, if they changed since the last call.
    pub(super) fn take_changed(&self) -> Option<BTreeSet<i32>> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(self.partitions.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// How late records reach a worker after they were sent (their
/// timestamps), lately: the largest delay seen in the current window of
/// [`Delivery::WINDOW_MS`] and the one before, at most
/// [`Delivery::MAX_MS`]. A partition found at its end is taken to have
/// read what was sent up to twice this long before
/// ([`Mail::delivery_allowance`], `TaskHop::progress`): on a quiet
/// machine that is less than a report of where the partitions end, but a
/// loaded broker can take seconds to append what a producer sent, and
/// judged by a report alone, the records it held back came late at their
/// entities.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    started: i64,
    current: i64,
    previous: i64,
}

impl Delivery {
    /// How long a window lasts (ms).
    pub(super) const WINDOW_MS: i64 = 5_000;
    /// The most a delay counts for (ms): a backlog read after an outage
    /// is not a delivery delay, and a producer's clock may be wrong.
    pub(super) const MAX_MS: i64 = 3_000;

    /// A record sent at `sent_ms` arrived at `now_ms`.
    pub(super) fn observe(&mut self, now_ms: i64, sent_ms: i64) {
        self.rotate(now_ms);
        let delay = now_ms.saturating_sub(sent_ms).clamp(0, Delivery::MAX_MS);
        self.current = self.current.max(delay);
    }

    /// The largest delay seen in this window and the one before.
    pub(super) fn lately(&mut self, now_ms: i64) -> i64 {
        self.rotate(now_ms);
        self.current.max(self.previous)
    }

    fn rotate(&mut self, now_ms: i64) {
        let age = now_ms.saturating_sub(self.started);
        if age >= Delivery::WINDOW_MS {
            self.previous = if age >= 2 * Delivery::WINDOW_MS { 0 } else { self.current };
            self.current = 0;
            self.started = now_ms;
        }
    }
}

/// The most memos an entity partition keeps per router while waiting for
/// the one they follow; one past that is left to its copy in Kafka.
pub(super) const AHEAD_MAX: usize = 8192;

/// One item of a router's stream to one entity partition, handed over in
/// memory when the partition is on this instance (see [`Mail`]). Its copy
/// goes through Kafka all the same. Memos link to the router's previous
/// task to the same partition, so the partition takes in a router's tasks
/// and progress in the router's order, whichever way each came first.
#[derive(Debug, Clone)]
pub(super) enum Memo {
    /// A task; `prev`: the input offset of the router's previous task to
    /// this partition since it took the input partition, if any; `since`:
    /// where it took the input partition (what it routed before that went
    /// through Kafka only).
    Task { task: Box<Task>, prev: Option<i64>, since: i64 },
    /// The router's progress; `last`: its last task to this partition
    /// before it since it took the input partition, if any; `since` as for
    /// a task.
    Progress { last: Option<i64>, since: i64, progress: Progress },
}

/// What one worker hands another in memory.
#[derive(Debug)]
pub(super) enum Post {
    /// A verdict for the receiver's input partition `partition`.
    Verdict { partition: i32, verdict: Verdict },
    /// A memo of input partition `from`'s router for the receiver's
    /// partition `target` of the kind at `kind` (its index in the
    /// topology).
    Memo { kind: usize, target: i32, from: i32, memo: Memo },
}

/// Verdicts and routed tasks handed from one worker to another in memory,
/// so a transaction whose entity partition is on this instance is applied
/// and decided without waiting for the round trips through Kafka. Both
/// are produced all the same (a restart reads them there); a copy read
/// later is recognized and not taken in twice. A worker posts only after
/// its output (the task and the router's position, or the verdict and the
/// entity's new state) is in its outbox, and the committer takes every
/// outbox at once, so nothing commits before what it used. Each post
/// carries the sender's count of resets: one of work a failed transaction
/// undid is not taken. A post wakes its receiver.
pub(super) struct Mail {
    boxes: Vec<Mutex<Vec<(u64, Post)>>>,
    /// Per partition: whether its task is restored on this instance, so a
    /// router hands over in memory only what a worker here takes.
    held: Vec<AtomicBool>,
    /// Each worker's channel, to wake it; emptied when the intake stops,
    /// so the workers see their channels close.
    wake: Mutex<Vec<std::sync::mpsc::SyncSender<super::worker::ToWorker>>>,
    /// When (wall clock, ms) a router here last read a record after
    /// passing everything (see [`Mail::trusts_end`]); `i64::MIN`: never.
    woke_at: AtomicI64,
    /// Per input partition whose router is here: the report since which
    /// it has been found idle at its end; `i64::MIN` while it is not.
    idle_since: Vec<AtomicI64>,
    /// Per input partition whose router is here: the next offset it
    /// routes, so an end it claimed at an earlier position is known to be
    /// out of date (see [`Mail::trusts_end`]).
    routed: Vec<AtomicI64>,
    /// Per worker: how late records have reached it lately (see
    /// [`Delivery`]).
    delivery: Vec<AtomicI64>,
}

impl Mail {
    pub(super) fn new(workers: usize, partitions: i32) -> Mail {
        Mail {
            boxes: (0..workers).map(|_| Mutex::default()).collect(),
            held: (0..partitions.max(0)).map(|_| AtomicBool::new(false)).collect(),
            wake: Mutex::default(),
            woke_at: AtomicI64::new(i64::MIN),
            idle_since: (0..partitions.max(0)).map(|_| AtomicI64::new(i64::MIN)).collect(),
            routed: (0..partitions.max(0)).map(|_| AtomicI64::new(0)).collect(),
            delivery: (0..workers).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    /// The decide worker that owns partition `p` of every topic, among the
    /// workers the run started with (as the intake finds it; asking the
    /// configuration instead reads the cgroup's files on every call).
    pub(super) fn worker_of(&self, p: i32) -> usize {
        super::worker_of(p, self.boxes.len())
    }

    /// A router here read a record, at `now_ms`, after its progress had
    /// said it holds nothing back.
    pub(super) fn woke(&self, now_ms: i64) {
        self.woke_at.fetch_max(now_ms, Ordering::AcqRel);
    }

    /// Router `p`, here, has been idle at its end since the report at
    /// `since` (`None`: it is not idle).
    pub(super) fn router_idle(&self, p: i32, since: Option<i64>) {
        if let Some(at) = usize::try_from(p).ok().and_then(|p| self.idle_since.get(p)) {
            at.store(since.unwrap_or(i64::MIN), Ordering::Release);
        }
    }

    /// Worker `worker` has lately received records up to `delay_ms` after
    /// they were sent.
    pub(super) fn delivered(&self, worker: usize, delay_ms: i64) {
        if let Some(d) = self.delivery.get(worker) {
            d.store(delay_ms, Ordering::Release);
        }
    }

    /// How long a record sent to this instance's input may still be on its
    /// way: twice the latest delay any worker here has seen lately (see
    /// [`Delivery`]), at least a report of where the partitions end and
    /// at most [`Delivery::MAX_MS`]. Twice, because delays grow before
    /// they are seen: at a stream's start, a record took 713 ms where the
    /// largest delay seen so far was 589 ms, and an idle partition passed
    /// what it had not read yet.
    pub(super) fn delivery_allowance(&self) -> i64 {
        let seen = self.delivery.iter().map(|d| d.load(Ordering::Acquire)).max().unwrap_or(0);
        seen.saturating_mul(2).clamp(super::intake::ENDS_EVERY_MS, Delivery::MAX_MS)
    }

    /// Router `p`, here, routes `routed` next.
    pub(super) fn router_at(&self, p: i32, routed: i64) {
        if let Some(at) = usize::try_from(p).ok().and_then(|p| self.routed.get(p)) {
            at.store(routed, Ordering::Release);
        }
    }

    /// Whether router `p`'s progress saying it holds nothing back (a
    /// replay idle at its end for a second, or having read nothing since it
    /// took its partition), claimed at `position`, may be taken at its
    /// word, at `now_ms`. A router elsewhere is, except for a second after
    /// a router here woke up: what it read since is not known here, and a
    /// burst into idle instances reaches every partition within
    /// milliseconds, but its progress comes through Kafka only after its
    /// instance's transaction (taking its claim at once made two instances
    /// answer 1 286 to 1 638 of a replayed burst's transactions late, their
    /// entity rules unrun). A router here is not once
    /// it has read past `position`: its claim is out of date, and the
    /// progress that replaces it may still be on its way (a worker hands
    /// it over only once its output is in the outbox, which waits for the
    /// committer when the broker is slow); before, such a claim was taken
    /// a second after the wake, and a slow broker made tasks of the
    /// router's burst come late. Nor for a second after a router here
    /// woke up, unless `p` has been found at its end again since: a burst
    /// into an idle instance reaches every partition within milliseconds,
    /// and the partition read first must not release its tasks past the
    /// others' before they have read theirs.
    pub(super) fn trusts_end(&self, p: i32, position: i64, now_ms: i64) -> bool {
        let woke = self.woke_at.load(Ordering::Acquire);
        let woke_lately = woke != i64::MIN && now_ms.saturating_sub(woke) < super::worker::IDLE_HOLDS_NOTHING_MS;
        if !self.holds(p) {
            return !woke_lately;
        }
        let slot = usize::try_from(p).ok();
        if slot.and_then(|p| self.routed.get(p)).is_some_and(|r| r.load(Ordering::Acquire) > position) {
            return false;
        }
        if !woke_lately {
            return true;
        }
        slot.and_then(|p| self.idle_since.get(p)).is_none_or(|since| since.load(Ordering::Acquire) >= woke)
    }

    /// Marks whether partition `p`'s task is restored on this instance.
    pub(super) fn hold(&self, p: i32, held: bool) {
        if let Some(h) = usize::try_from(p).ok().and_then(|p| self.held.get(p)) {
            h.store(held, Ordering::Release);
        }
    }

    /// Whether partition `p`'s task is restored on this instance (a memo
    /// for one that is not would be dropped; one sent while it is being
    /// restored may be, and its copy in Kafka is read instead).
    pub(super) fn holds(&self, p: i32) -> bool {
        usize::try_from(p).ok().and_then(|p| self.held.get(p)).is_some_and(|h| h.load(Ordering::Acquire))
    }

    /// Wakes worker `i` through `channel` when something is posted to it.
    pub(super) fn wake_with(&self, channel: std::sync::mpsc::SyncSender<super::worker::ToWorker>) {
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).push(channel);
    }

    /// Stops waking the workers.
    pub(super) fn close(&self) {
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Posts `posts` to `worker` and wakes it.
    pub(super) fn post(&self, worker: usize, resets: u64, posts: impl IntoIterator<Item = Post>) {
        let Some(b) = self.boxes.get(worker) else { return };
        b.lock().unwrap_or_else(|e| e.into_inner()).extend(posts.into_iter().map(|p| (resets, p)));
        if let Some(channel) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).get(worker) {
            // A full channel wakes it anyway; a closed one has stopped.
            let _ = channel.try_send(super::worker::ToWorker::Mail);
        }
    }

    /// Takes what was posted to `worker`.
    pub(super) fn take(&self, worker: usize) -> Vec<(u64, Post)> {
        match self.boxes.get(worker) {
            Some(b) => std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        }
    }
}

/// An input record read and not decided yet.
pub(super) struct Pending {
    pub record: InputRecord,
    pub parsed: Result<InputEvent, InvalidEvent>,
    /// The kinds (bits) whose verdicts it waits for.
    pub expects: u8,
}

/// The verdicts of one transaction received so far.
#[derive(Default)]
struct Got {
    kinds: u8,
    results: Vec<RuleResult>,
    /// Where they were read.
    offsets: Vec<i64>,
}

/// An input partition's records waiting for their verdicts, in offset order.
#[derive(Default)]
pub(super) struct Awaiting {
    queue: VecDeque<Pending>,
    /// The ids of the transactions queued (a transaction published twice
    /// is routed once).
    queued: HashSet<String>,
    verdicts: HashMap<i64, Got>,
    /// Offsets of the verdicts held.
    held: BTreeSet<i64>,
    /// The next offset of the verdicts partition to read, once one was read.
    verdicts_next: Option<i64>,
    /// The next input offset to decide, once one was read.
    input_next: Option<i64>,
}

impl Awaiting {
    /// Decisions resume at `start`, the committed offset, when known.
    pub(super) fn starting_at(start: Option<i64>) -> Awaiting {
        Awaiting { input_next: start, ..Awaiting::default() }
    }

    /// How many records wait.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_queued(&self, transaction_id: &str) -> bool {
        self.queued.contains(transaction_id)
    }

    pub(super) fn push(&mut self, pending: Pending) {
        if let Ok(InputEvent::Transaction(tx)) = &pending.parsed {
            self.queued.insert(tx.transaction_id.clone());
        }
        if self.queue.is_empty() {
            // Nothing before it waits: verdicts held for offsets before it
            // are of transactions decided before (read again after a restart).
            let first = pending.record.offset;
            if !self.verdicts.is_empty() {
                let stale: Vec<i64> = self.verdicts.keys().copied().filter(|o| *o < first).collect();
                for o in stale {
                    for held in self.verdicts.remove(&o).map(|g| g.offsets).unwrap_or_default() {
                        self.held.remove(&held);
                    }
                }
            }
            self.input_next = Some(pending.record.offset);
        }
        self.queue.push_back(pending);
    }

    /// Takes in a verdict read at `offset` of the verdicts partition, or
    /// (`None`) handed over in memory by the worker that produced it.
    pub(super) fn verdict(&mut self, offset: Option<i64>, verdict: Verdict) {
        if let Some(offset) = offset {
            self.verdicts_next = Some(self.verdicts_next.map_or(offset + 1, |n| n.max(offset + 1)));
        }
        if self.input_commit().is_some_and(|next| verdict.offset < next) {
            // Its transaction was decided.
            return;
        }
        let got = self.verdicts.entry(verdict.offset).or_default();
        if let Some(offset) = offset {
            // Held until its transaction is decided, even when its copy in
            // memory came first: a restart before then reads it again.
            got.offsets.push(offset);
            self.held.insert(offset);
        }
        if got.kinds & bit(verdict.kind) != 0 {
            return;
        }
        got.kinds |= bit(verdict.kind);
        got.results.extend(verdict.results);
    }

    /// The next record whose verdicts are all in, with their results.
    pub(super) fn next_ready(&mut self) -> Option<(Pending, Vec<RuleResult>)> {
        let front = self.queue.front()?;
        let got_kinds = self.verdicts.get(&front.record.offset).map_or(0, |g| g.kinds);
        if front.expects & !got_kinds != 0 {
            return None;
        }
        let pending = self.queue.pop_front().expect("a front");
        self.input_next = Some(pending.record.offset + 1);
        if let Ok(InputEvent::Transaction(tx)) = &pending.parsed {
            self.queued.remove(&tx.transaction_id);
        }
        let results = match self.verdicts.remove(&pending.record.offset) {
            Some(got) => {
                for o in &got.offsets {
                    self.held.remove(o);
                }
                got.results
            }
            None => Vec::new(),
        };
        Some((pending, results))
    }

    /// The input offset to commit: the oldest record waiting, else the next.
    pub(super) fn input_commit(&self) -> Option<i64> {
        self.queue.front().map(|p| p.record.offset).or(self.input_next)
    }

    /// The verdicts offset to commit: the oldest verdict held, else the next.
    pub(super) fn verdicts_commit(&self) -> Option<i64> {
        self.held.first().copied().or(self.verdicts_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let task = Record::task(3, 42, -7, b"{\"a\":1}");
        assert_eq!(
            Record::read(&task),
            Some(Record::Task { partition: 3, offset: 42, at: Some(-7), tx: b"{\"a\":1}" })
        );
        let mut untimed = vec![b'T'];
        untimed.extend_from_slice(&3i32.to_be_bytes());
        untimed.extend_from_slice(&42i64.to_be_bytes());
        untimed.extend_from_slice(b"{}");
        assert_eq!(Record::read(&untimed), Some(Record::Task { partition: 3, offset: 42, at: None, tx: b"{}" }));
        for progress in [
            Progress { position: 7, watermark: Some(-5), at_end: true },
            Progress { position: 0, watermark: None, at_end: false },
        ] {
            assert_eq!(
                Record::read(&Record::progress(1, &progress)),
                Some(Record::Progress { partition: 1, progress })
            );
        }
        assert_eq!(Record::read(b"T\0\0"), None, "a cut record");
        let verdict = Verdict { offset: 9, kind: Entity::Counterparty, results: Vec::new() };
        assert_eq!(Verdict::read(&verdict.write()), Some(verdict));
        assert_eq!(Verdict::read(b"Vxx"), None);
    }

    #[test]
    fn progress_keeps_the_highest_watermark_and_the_newest_position() {
        let mut p = Progress { position: 10, watermark: Some(100), at_end: false };
        p.merge(Progress { position: 8, watermark: Some(50), at_end: true });
        assert_eq!(p, Progress { position: 10, watermark: Some(100), at_end: false }, "older news");
        p.merge(Progress { position: 10, watermark: Some(90), at_end: true });
        assert_eq!(p, Progress { position: 10, watermark: Some(100), at_end: true }, "the end at one position");
        p.merge(Progress { position: 12, watermark: Some(120), at_end: false });
        assert_eq!(p.passed(), Some(120));
    }

    fn task(hop_offset: i64, partition: i32, at_secs: i64, id: &str) -> Task {
        read_task(Some(hop_offset), partition, hop_offset, at_secs, id)
    }

    /// A task of input `partition` at `offset`, read from the kind's topic
    /// at `hop_offset` or (`None`) handed over in memory.
    fn read_task(hop_offset: Option<i64>, partition: i32, offset: i64, at_secs: i64, id: &str) -> Task {
        let case = crate::cases::CaseTx { after_secs: Some(at_secs), ..Default::default() };
        let tx = case.to_event(id);
        Task { hop_offset, partition, offset, at: order_time(&tx, None), delay: None, tx }
    }

    impl EntityPartition {
        /// Takes in one task read from Kafka; the one answered late, if so.
        fn arrive_one(&mut self, task: Task) -> Option<Task> {
            let mut late = Vec::new();
            self.arrive(task, &mut late);
            assert!(late.len() <= 1);
            late.pop()
        }

        fn memo_one(&mut self, from: i32, memo: Memo) -> Vec<Task> {
            let mut late = Vec::new();
            self.memo(from, memo, &mut late);
            late
        }
    }

    fn ids(tasks: Vec<Task>) -> Vec<String> {
        tasks.into_iter().map(|t| t.tx.transaction_id).collect()
    }

    #[test]
    fn a_router_at_its_end_holds_back_at_its_watermark_while_its_word_is_not_taken() {
        let mut e = EntityPartition::default();
        let at = |secs: i64| e_ms(secs);
        // Router 1 was idle at its end: it holds nothing back.
        e.progress(0, 1, Progress { position: 5, watermark: Some(at(10)), at_end: true }, &mut Vec::new());
        // Router 0 wakes with a burst; router 1 has not read its share yet.
        assert!(e.arrive_one(task(1, 0, 20, "a")).is_none());
        e.progress(2, 0, Progress { position: 8, watermark: Some(at(30)), at_end: false }, &mut Vec::new());
        assert!(e.release(2, |p, _| p != 1).is_empty(), "router 1's end is not taken at its word: it holds at 10");
        // Router 1 reads its share, dated before router 0's.
        assert!(e.arrive_one(task(3, 1, 15, "b")).is_none(), "b is not late");
        e.progress(4, 1, Progress { position: 6, watermark: Some(at(25)), at_end: false }, &mut Vec::new());
        assert_eq!(ids(e.release(2, |p, _| p != 1)), ["b", "a"]);
        // Taken at its word, an end passes everything.
        assert!(e.arrive_one(task(5, 0, 40, "c")).is_none());
        e.progress(6, 0, Progress { position: 9, watermark: Some(at(45)), at_end: false }, &mut Vec::new());
        e.progress(7, 1, Progress { position: 6, watermark: Some(at(25)), at_end: true }, &mut Vec::new());
        assert!(e.release(2, |p, _| p != 1).is_empty(), "router 1 holds at 25, c is at 40");
        assert_eq!(ids(e.release(2, |_, _| true)), ["c"]);
    }

    #[test]
    fn a_router_is_taken_at_its_end_unless_one_here_woke_since_it_was_found_there() {
        let mail = Mail::new(1, 3);
        for p in 0..3 {
            mail.hold(p, true);
        }
        mail.router_idle(1, Some(1_000));
        assert!(mail.trusts_end(1, 0, 5_000), "nothing woke");
        mail.woke(4_000);
        assert!(!mail.trusts_end(1, 0, 4_500), "found at its end before the wake");
        assert!(mail.trusts_end(1, 0, 5_000), "a second after the wake");
        mail.router_idle(1, Some(4_100));
        assert!(mail.trusts_end(1, 0, 4_500), "found at its end again since");
        assert!(!mail.trusts_end(2, 0, 4_500), "never found at its end");
        mail.hold(2, false);
        assert!(!mail.trusts_end(2, 0, 4_500), "a router elsewhere, within a second of a wake here");
        assert!(mail.trusts_end(2, 0, 5_000), "a router elsewhere, a second after the wake");
        let quiet = Mail::new(1, 3);
        assert!(quiet.trusts_end(2, 0, 4_500), "a router elsewhere, with no wake here");
    }

    #[test]
    fn the_delivery_allowance_is_twice_the_largest_delay_of_the_last_two_windows_within_bounds() {
        let w = Delivery::WINDOW_MS;
        let mut d = Delivery::default();
        d.observe(100_000, 99_700);
        d.observe(100_010, 100_000);
        assert_eq!(d.lately(100_020), 300);
        d.observe(100_000 + w, 100_000 + w - 20);
        assert_eq!(d.lately(100_000 + w), 300, "the window before still counts");
        assert_eq!(d.lately(100_000 + 2 * w), 20, "then it is forgotten");
        assert_eq!(d.lately(100_000 + 4 * w), 0, "and a quiet time forgets all");
        d.observe(200_000, 100_000);
        assert_eq!(d.lately(200_000), Delivery::MAX_MS, "a backlog counts for at most the bound");
        let mut d = Delivery::default();
        d.observe(1_000, 9_000);
        assert_eq!(d.lately(1_000), 0, "a record stamped ahead of this clock");

        let mail = Mail::new(2, 1);
        assert_eq!(mail.delivery_allowance(), crate::kafka::intake::ENDS_EVERY_MS, "at least a report");
        mail.delivered(1, 900);
        mail.delivered(0, 40);
        assert_eq!(mail.delivery_allowance(), 1_800, "twice the latest of any worker");
        mail.delivered(0, 2_000);
        assert_eq!(mail.delivery_allowance(), Delivery::MAX_MS, "within the bound");
    }

    #[test]
    fn an_end_claimed_before_the_router_read_on_is_not_taken_at_its_word() {
        let mail = Mail::new(1, 2);
        mail.hold(0, true);
        mail.router_at(0, 7);
        assert!(mail.trusts_end(0, 7, 1_000), "still at the position it claimed its end at");
        mail.router_at(0, 8);
        assert!(!mail.trusts_end(0, 7, 1_000), "it read on: the claim is out of date");
        assert!(!mail.trusts_end(0, 7, 60_000), "however long ago the claim was made");
        assert!(mail.trusts_end(0, 8, 60_000), "its next claim, at its new position");
        mail.router_at(1, 9);
        assert!(mail.trusts_end(1, 3, 1_000), "a router elsewhere is taken at its word");
    }

    #[test]
    fn tasks_are_released_in_event_time_order_once_every_partition_passed_them() {
        let mut e = EntityPartition::default();
        assert!(e.arrive_one(task(0, 0, 30, "c")).is_none());
        assert!(e.arrive_one(task(1, 1, 10, "a")).is_none());
        assert!(e.arrive_one(task(2, 0, 20, "b")).is_none());
        let at = |secs: i64| e_ms(secs);
        e.progress(3, 0, Progress { position: 2, watermark: Some(at(30)), at_end: false }, &mut Vec::new());
        assert!(e.release(2, |_, _| true).is_empty(), "partition 1 has not reported");
        e.progress(4, 1, Progress { position: 1, watermark: Some(at(25)), at_end: false }, &mut Vec::new());
        let ids: Vec<String> = e.release(2, |_, _| true).into_iter().map(|t| t.tx.transaction_id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(e.commit_offset(), 0, "c still waits");
        // One older than what was released comes late: answered now.
        assert!(e.arrive_one(task(5, 1, 15, "late")).is_some());
        assert_eq!(e.late, 1);
        e.progress(6, 1, Progress { position: 2, watermark: Some(at(25)), at_end: true }, &mut Vec::new());
        assert!(e.release(2, |_, _| true).is_empty(), "partition 0 has not passed c's event time");
        e.progress(7, 0, Progress { position: 2, watermark: Some(at(30)), at_end: true }, &mut Vec::new());
        let ids: Vec<String> = e.release(2, |_, _| true).into_iter().map(|t| t.tx.transaction_id).collect();
        assert_eq!(ids, ["c"], "a partition at its end holds nothing back");
        assert_eq!(e.commit_offset(), 8);
        // After a restart from the committed state, what was taken in is not
        // taken in again.
        let mut again = EntityPartition::new(e.meta.clone());
        assert!(again.arrive_one(task(2, 0, 20, "b")).is_none());
        assert!(again.arrive_one(task(5, 1, 15, "late")).is_none());
        assert_eq!(again.waiting() + again.late as usize, 0);
    }

    #[test]
    fn a_task_handed_over_in_memory_is_taken_in_once_and_its_copy_keeps_its_place_for_a_restart() {
        let mut e = EntityPartition::default();
        let at = |secs: i64| e_ms(secs);
        // Router 0's first task here comes through Kafka; the memos after it
        // link to it.
        assert!(e.arrive_one(read_task(Some(0), 0, 10, 10, "a")).is_none());
        let memo = |offset: i64, prev: i64, secs: i64, id: &str| Memo::Task {
            task: Box::new(read_task(None, 0, offset, secs, id)),
            prev: Some(prev),
            since: 0,
        };
        assert!(e.memo_one(0, memo(11, 10, 20, "b")).is_empty());
        assert!(e.memo_one(0, memo(13, 11, 30, "c")).is_empty());
        assert_eq!(e.waiting(), 3, "both memos follow what was taken in");
        assert_eq!(e.meta.taken.get(&0), Some(&13));
        e.memo_one(
            0,
            Memo::Progress {
                last: Some(13),
                since: 0,
                progress: Progress { position: 14, watermark: Some(at(25)), at_end: false },
            },
        );
        e.memo_one(
            1,
            Memo::Progress {
                last: Some(-1),
                since: 0,
                progress: Progress { position: 0, watermark: None, at_end: true },
            },
        );
        assert_eq!(e.meta.taken.get(&1), None);
        assert!(e.release(2, |_, _| true).is_empty(), "router 1's progress follows a task not taken in: it waits");
        e.progress(1, 1, Progress { position: 0, watermark: None, at_end: true }, &mut Vec::new());
        assert_eq!(
            ids(e.release(2, |_, _| true)),
            ["a", "b"],
            "router 0's progress from memory, router 1's from Kafka"
        );
        assert_eq!(e.commit_offset(), 2, "c was not read from Kafka yet: the next offset");
        // The copies come: b's (released) is dropped, c's (waiting) anchors it.
        assert!(e.arrive_one(read_task(Some(2), 0, 11, 20, "b")).is_none());
        assert!(e.arrive_one(read_task(Some(3), 0, 13, 30, "c")).is_none());
        assert_eq!((e.waiting(), e.late), (1, 0));
        assert_eq!(e.commit_offset(), 3, "a restart reads c again");
        // After a restart from the committed state: b's copy is not taken in
        // again, c's waits again.
        let mut again = EntityPartition::new(e.meta.clone());
        assert!(again.arrive_one(read_task(Some(2), 0, 11, 20, "b")).is_none());
        assert!(again.arrive_one(read_task(Some(3), 0, 13, 30, "c")).is_none());
        assert_eq!((again.waiting(), again.late), (1, 0));
        // Memos wait until what was read before the restart is read again:
        // c, which waited then, must not be passed.
        let mut restarted = EntityPartition::new(e.meta.clone());
        let d = Memo::Task { task: Box::new(read_task(None, 0, 20, 40, "d")), prev: Some(13), since: 0 };
        assert!(restarted.memo_one(0, d).is_empty());
        assert_eq!(restarted.waiting(), 0);
        assert!(restarted.arrive_one(read_task(Some(3), 0, 13, 30, "c")).is_none());
        assert_eq!(restarted.waiting(), 2, "c read again, then d");
    }

    #[test]
    fn a_memo_waits_for_the_task_it_follows_and_one_the_router_cannot_place_is_left_to_kafka() {
        let mut e = EntityPartition::default();
        let at = |secs: i64| e_ms(secs);
        // The router's first task since it took the partition: it does not
        // know the one before, so its copy in Kafka decides.
        let first = Memo::Task { task: Box::new(read_task(None, 0, 5, 10, "a")), prev: None, since: 3 };
        e.memo_one(0, first);
        e.memo_one(0, Memo::Task { task: Box::new(read_task(None, 0, 7, 20, "b")), prev: Some(5), since: 3 });
        e.memo_one(
            0,
            Memo::Progress {
                last: Some(7),
                since: 3,
                progress: Progress { position: 8, watermark: Some(at(30)), at_end: false },
            },
        );
        assert_eq!(e.waiting(), 0, "nothing is taken in out of the router's order");
        assert!(e.meta.progress.is_empty());
        // A progress from a router that sent nothing here since it started
        // waits until what the router sent before it started was read.
        e.memo_one(
            1,
            Memo::Progress { last: None, since: 3, progress: Progress { position: 3, watermark: None, at_end: true } },
        );
        assert!(!e.meta.progress.contains_key(&1));
        // The first task's copy comes: the memos after it follow.
        assert!(e.arrive_one(read_task(Some(0), 0, 5, 10, "a")).is_none());
        assert_eq!(e.waiting(), 2);
        assert_eq!(e.meta.progress.get(&0).map(|p| p.position), Some(8));
        e.progress(1, 1, Progress { position: 3, watermark: None, at_end: false }, &mut Vec::new());
        // Router 1's progress from where it started was read: the progress
        // that waited is taken in (at the same position, the end is the
        // later news), and its first task here since then comes in memory.
        assert_eq!(e.meta.progress.get(&1).map(|p| p.at_end), Some(true));
        e.memo_one(1, Memo::Task { task: Box::new(read_task(None, 1, 3, 40, "d")), prev: None, since: 3 });
        assert_eq!(e.meta.taken.get(&1), Some(&3));
        assert_eq!(ids(e.release(2, |_, _| true)), ["a", "b"]);
        // A task from memory older than what was released comes late, once.
        let late =
            e.memo_one(0, Memo::Task { task: Box::new(read_task(None, 0, 9, 15, "late")), prev: Some(7), since: 3 });
        assert_eq!(ids(late), ["late"]);
        assert!(e.arrive_one(read_task(Some(2), 0, 9, 15, "late")).is_none(), "its copy is not answered again");
        assert_eq!(e.late, 1);
    }

    #[test]
    fn entity_state_written_before_it_kept_what_was_taken_is_read() {
        #[derive(Serialize)]
        struct Before {
            progress: BTreeMap<i32, Progress>,
            released: Option<(i64, String)>,
            consumed: i64,
        }
        let progress = BTreeMap::from([(2, Progress { position: 4, watermark: Some(9), at_end: false })]);
        let before = Before { progress: progress.clone(), released: Some((9, "t".into())), consumed: 17 };
        let bytes = postcard::to_allocvec(&before).unwrap();
        let meta = EntityMeta::decode(&bytes).unwrap();
        assert_eq!((meta.progress, meta.released, meta.consumed), (progress, Some((9, "t".into())), 17));
        assert!(meta.taken.is_empty());
        let now = EntityMeta { taken: BTreeMap::from([(2, 3)]), ..EntityMeta::default() };
        assert_eq!(EntityMeta::decode(&postcard::to_allocvec(&now).unwrap()), Some(now));
    }

    #[test]
    fn the_entity_partition_is_librdkafkas_for_the_key() {
        for partitions in 1..=24 {
            for i in 0..200 {
                let id = format!("device-{i}-{}", "x".repeat(i % 7));
                // SAFETY: librdkafka's consistent partitioner reads only the
                // key (it ignores the topic and the opaques).
                let theirs = unsafe {
                    rdkafka::bindings::rd_kafka_msg_partitioner_consistent(
                        std::ptr::null(),
                        id.as_ptr().cast(),
                        id.len(),
                        partitions,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                assert_eq!(entity_partition(&id, partitions), theirs, "{id} of {partitions}");
            }
        }
    }

    fn e_ms(secs: i64) -> i64 {
        crate::cases::CaseTx { after_secs: Some(secs), ..Default::default() }.to_event("x").occurred_at_ms()
    }
}
