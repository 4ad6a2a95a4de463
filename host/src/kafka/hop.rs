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
//!   is not routed twice;
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
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Whether the router had read the partition to its end.
    pub at_end: bool,
}

impl Progress {
    /// Takes in a report that may be older or newer: the watermark only
    /// grows; the position and whether it is at the end come from the
    /// newest report (at one position, the end is the later news).
    fn merge(&mut self, other: Progress) {
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
}

/// A transaction waiting for its turn at its entity.
#[derive(Debug)]
pub(super) struct Task {
    pub hop_offset: i64,
    pub partition: i32,
    pub offset: i64,
    /// When it is applied ([`order_time`]).
    pub at: i64,
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
    /// Whether `meta` changed since it was last written.
    pub changed: bool,
    /// Tasks answered late since the last count was taken.
    pub late: u64,
}

impl EntityPartition {
    pub(super) fn new(meta: EntityMeta) -> EntityPartition {
        EntityPartition { meta, ..EntityPartition::default() }
    }

    /// Takes in a task read at `hop_offset`: it waits, or it is returned to
    /// be answered now, unrun, because a later one was applied already; or
    /// it is dropped, having been taken in before a restart.
    pub(super) fn arrive(&mut self, task: Task) -> Option<Task> {
        let order = (task.at, task.tx.transaction_id.clone(), task.partition, task.offset);
        let before_released = self.meta.released.as_ref().is_some_and(|(t, id)| (order.0, &order.1) <= (*t, id));
        let seen = task.hop_offset < self.meta.consumed;
        self.skip(task.hop_offset);
        if before_released {
            if seen {
                return None;
            }
            self.late += 1;
            return Some(task);
        }
        self.waiting_offsets.insert(task.hop_offset);
        self.waiting.insert(order, task);
        None
    }

    /// Takes in a router's progress read at `hop_offset`.
    pub(super) fn progress(&mut self, hop_offset: i64, partition: i32, progress: Progress) {
        self.meta.progress.entry(partition).or_default().merge(progress);
        self.skip(hop_offset);
    }

    /// Counts the record at `hop_offset` as taken in.
    pub(super) fn skip(&mut self, hop_offset: i64) {
        self.meta.consumed = self.meta.consumed.max(hop_offset + 1);
        self.changed = true;
    }

    /// The tasks every one of the `partitions` input partitions has passed,
    /// in order.
    pub(super) fn release(&mut self, partitions: i32) -> Vec<Task> {
        let mut frontier = i64::MAX;
        for p in 0..partitions {
            match self.meta.progress.get(&p).and_then(Progress::passed) {
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
            self.waiting_offsets.remove(&task.hop_offset);
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

/// Verdicts handed from one worker to another in memory, so a transaction
/// whose entity partition is on this instance is decided without waiting
/// for its verdict's round trip through Kafka. The verdict is produced to
/// the verdicts topic all the same (a restart reads it there); the copy
/// read later finds its transaction decided, or holds its offset until it
/// is. A worker posts only after its output (the verdict, the entity's new
/// state) is in its outbox, and the committer takes every outbox at once,
/// so a decision never commits before the verdict it used. Each post
/// carries the sender's count of resets: a verdict of work a failed
/// transaction undid is not taken.
#[derive(Debug)]
pub(super) struct Mail {
    boxes: Vec<Mutex<Vec<(u64, i32, Verdict)>>>,
}

impl Mail {
    pub(super) fn new(workers: usize) -> Mail {
        Mail { boxes: (0..workers).map(|_| Mutex::default()).collect() }
    }

    /// Posts to `worker` the verdict for its input partition `partition`.
    pub(super) fn post(&self, worker: usize, resets: u64, partition: i32, verdict: Verdict) {
        if let Some(b) = self.boxes.get(worker) {
            b.lock().unwrap_or_else(|e| e.into_inner()).push((resets, partition, verdict));
        }
    }

    /// Takes what was posted to `worker`.
    pub(super) fn take(&self, worker: usize) -> Vec<(u64, i32, Verdict)> {
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
        let case = crate::cases::CaseTx { after_secs: Some(at_secs), ..Default::default() };
        let tx = case.to_event(id);
        Task { hop_offset, partition, offset: hop_offset, at: order_time(&tx, None), tx }
    }

    #[test]
    fn tasks_are_released_in_event_time_order_once_every_partition_passed_them() {
        let mut e = EntityPartition::default();
        assert!(e.arrive(task(0, 0, 30, "c")).is_none());
        assert!(e.arrive(task(1, 1, 10, "a")).is_none());
        assert!(e.arrive(task(2, 0, 20, "b")).is_none());
        let at = |secs: i64| e_ms(secs);
        e.progress(3, 0, Progress { position: 2, watermark: Some(at(30)), at_end: false });
        assert!(e.release(2).is_empty(), "partition 1 has not reported");
        e.progress(4, 1, Progress { position: 1, watermark: Some(at(25)), at_end: false });
        let ids: Vec<String> = e.release(2).into_iter().map(|t| t.tx.transaction_id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(e.commit_offset(), 0, "c still waits");
        // One older than what was released comes late: answered now.
        assert!(e.arrive(task(5, 1, 15, "late")).is_some());
        assert_eq!(e.late, 1);
        e.progress(6, 1, Progress { position: 2, watermark: Some(at(25)), at_end: true });
        assert!(e.release(2).is_empty(), "partition 0 has not passed c's event time");
        e.progress(7, 0, Progress { position: 2, watermark: Some(at(30)), at_end: true });
        let ids: Vec<String> = e.release(2).into_iter().map(|t| t.tx.transaction_id).collect();
        assert_eq!(ids, ["c"], "a partition at its end holds nothing back");
        assert_eq!(e.commit_offset(), 8);
        // After a restart from the committed state, what was taken in is not
        // taken in again.
        let mut again = EntityPartition::new(e.meta.clone());
        assert!(again.arrive(task(2, 0, 20, "b")).is_none());
        assert!(again.arrive(task(5, 1, 15, "late")).is_none());
        assert_eq!(again.waiting() + again.late as usize, 0);
    }

    fn e_ms(secs: i64) -> i64 {
        crate::cases::CaseTx { after_secs: Some(secs), ..Default::default() }.to_event("x").occurred_at_ms()
    }
}
