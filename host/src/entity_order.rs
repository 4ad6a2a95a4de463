//! The order the embedded pipeline and a backtest apply transactions to
//! their entities: the Kafka entity hop's order, for the same input.
//!
//! On Kafka ([`crate::kafka`]'s hop) an entity partition applies its tasks
//! in (order time, transaction id) order, once every input partition has
//! passed them, and an input record waits at the head of its partition
//! until its verdicts are in, so an account's transactions are decided in
//! input order. Here the input is one stream, and [`EntityOrder`] does the
//! same: a transaction with an entity of a kind the rules keep waits in a
//! queue, in input order, and every record behind it waits behind it. The
//! transactions waiting are applied to their entities in (order time,
//! transaction id) order: all of them at the end of the input (or, for a
//! live stream, when it pauses), and, while the queue holds more than its
//! limit, those up to the oldest record's. A transaction then decided
//! takes its entities' results as a Kafka decision takes its verdicts.
//!
//! So a stream whose disorder stays within the limit (20 000 records by
//! default) applies its entities in the order Kafka applies them when none
//! of its tasks comes late there, whichever way the input was interleaved.
//! A transaction dated before one already applied comes *late*: its entity
//! rules pass it unrun, as on Kafka, and it is counted.
//!
//! The order time is the event time, but never later than the clock when
//! the record was read (Kafka caps it at the record's timestamp): on a live
//! stream, whose event times follow the clock, a transaction dated in the
//! future (a wrong clock, a hostile producer) would otherwise hold every
//! record behind it until the queue overflowed, and then make late what is
//! dated before its date. A replay of history, all of it dated before the
//! clock, gains nothing from the cap: a transaction dated far ahead of the
//! rest is held until the queue overflows, and what is read after it and
//! dated before it then comes late, as on Kafka once its partition's queue
//! is full.
//!
//! Applying a transaction's entities changes state that commits with the
//! batch that is being decided, while the transaction itself may wait
//! behind an older one for a later batch. The embedded pipeline commits the
//! results of such transactions with the state ([`EntityOrder::take_held`])
//! and a rerun takes them from there instead of applying the entities again
//! ([`EntityOrder::restore`]), as Kafka's entity partitions recognize a task
//! taken in before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use foldhash::{HashMap, HashSet};

use crate::engine::Evaluator;
use crate::events::{InputEvent, InputPosition, InvalidEvent, RuleResult, TransactionRecorded};
use crate::record::{Accounts, Processed, process};

/// Records that may wait in the queue before the oldest is applied (and
/// with it everything dated before it): as many as a Kafka input
/// partition holds waiting for verdicts (`kafka.entity_max_waiting`).
pub const DEFAULT_LIMIT: usize = 20_000;

/// Where a record's entities stand.
enum Entities {
    /// Not routed: no entity of a kind the rules keep, a record that is no
    /// transaction, or one decided before (or queued already).
    None,
    /// Routed, not applied yet.
    Waiting,
    /// Applied: the entity rules' results. `held`: they were handed to the
    /// store (or taken from it), which forgets them once it is decided.
    Applied { results: Vec<RuleResult>, held: bool },
    /// Dated before a transaction already applied: its entity rules pass
    /// it unrun.
    Late,
}

/// One record in the queue.
struct Queued<T> {
    item: T,
    parsed: Result<InputEvent, InvalidEvent>,
    position: InputPosition,
    entities: Entities,
}

/// A record decided (or otherwise processed), in input order.
pub struct Done<T> {
    pub item: T,
    pub position: InputPosition,
    pub processed: Processed,
}

/// The queue of records waiting for their transactions' entities.
pub struct EntityOrder<T> {
    limit: usize,
    /// Boxed: a parsed record is large, and the queue holds thousands.
    queue: VecDeque<Box<Queued<T>>>,
    /// The sequence number of `queue[0]`.
    first: u64,
    /// Transactions waiting to be applied: (order time, id, sequence).
    waiting: BinaryHeap<Reverse<(i64, String, u64)>>,
    /// Ids of the transactions in the queue: a copy of one published
    /// twice is not routed while it waits (and one routed is decided
    /// before any later copy, so it needs no second look at the store).
    queued: HashSet<String>,
    /// (order time, id) of the last transaction applied.
    released: Option<(i64, String)>,
    /// Results of transactions applied in an earlier run whose decisions
    /// did not commit: taken instead of applying their entities again.
    restored: HashMap<String, Vec<RuleResult>>,
    /// Ids of transactions decided whose results the store holds.
    unheld: Vec<String>,
    /// Sequence numbers of the transactions applied since the last
    /// [`EntityOrder::take_held`].
    fresh: Vec<u64>,
    late: u64,
}

impl<T> Default for EntityOrder<T> {
    fn default() -> Self {
        EntityOrder::new(DEFAULT_LIMIT)
    }
}

impl<T> EntityOrder<T> {
    /// An empty queue of at most `limit` records (at least 1) before the
    /// oldest is applied.
    pub fn new(limit: usize) -> EntityOrder<T> {
        EntityOrder {
            limit: limit.max(1),
            queue: VecDeque::new(),
            first: 0,
            waiting: BinaryHeap::new(),
            queued: HashSet::default(),
            released: None,
            restored: HashMap::default(),
            unheld: Vec::new(),
            fresh: Vec::new(),
            late: 0,
        }
    }

    /// Carries on from an earlier run: the last transaction it applied, and
    /// the results of those it applied but did not decide.
    pub fn restore(&mut self, released: Option<(i64, String)>, held: HashMap<String, Vec<RuleResult>>) {
        self.released = released;
        self.restored = held;
    }

    /// Records waiting in the queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes in the record `parsed`, read at `position`, and hands every
    /// record that can now be decided, decided, to `done`, in input order
    /// (with the evaluator that decided it, for its scores).
    /// `now_ms`: the clock when it was read (caps its order time).
    #[allow(clippy::too_many_arguments)]
    pub fn push<A: Accounts>(
        &mut self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        item: T,
        parsed: Result<InputEvent, InvalidEvent>,
        position: InputPosition,
        now_ms: i64,
        done: &mut impl FnMut(Done<T>, &Evaluator),
    ) -> Result<(), A::Error> {
        let order = match &parsed {
            Ok(InputEvent::Transaction(tx)) if self.routes(evaluator, accounts, tx)? => {
                Some((tx.occurred_at_ms().min(now_ms), tx.transaction_id.clone()))
            }
            _ => None,
        };
        let Some((at, id)) = order else {
            if self.queue.is_empty() {
                // Nothing to wait behind: decided at once, as without entity rules.
                let processed = process(evaluator, parsed, position.clone(), accounts)?;
                done(Done { item, position, processed }, evaluator);
            } else {
                if let Ok(InputEvent::Transaction(tx)) = &parsed {
                    self.queued.insert(tx.transaction_id.clone());
                }
                self.queue.push_back(Box::new(Queued { item, parsed, position, entities: Entities::None }));
                self.overflow(evaluator, accounts, done)?;
            }
            return Ok(());
        };
        let entities = if let Some(results) = self.restored.remove(&id) {
            Entities::Applied { results, held: true }
        } else if self.released.as_ref().is_some_and(|(t, i)| (at, &id) <= (*t, i)) {
            self.late += 1;
            tracing::debug!(transaction_id = %id, offset = position.offset, "came to its entities late: its entity rules pass it unrun");
            Entities::Late
        } else {
            let sequence = self.first + self.queue.len() as u64;
            self.waiting.push(Reverse((at, id.clone(), sequence)));
            Entities::Waiting
        };
        self.queued.insert(id);
        self.queue.push_back(Box::new(Queued { item, parsed, position, entities }));
        self.overflow(evaluator, accounts, done)
    }

    /// Whether `tx` goes to its entities: it has one of a kind the rules
    /// keep, and it is neither decided before nor queued already.
    fn routes<A: Accounts>(
        &self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        tx: &TransactionRecorded,
    ) -> Result<bool, A::Error> {
        let kinds = evaluator.entity_kinds().len();
        let has_entity = (0..kinds).any(|k| {
            let kind = evaluator.entity_kinds()[k];
            evaluator.entity_key(kind, tx).is_some()
        });
        Ok(has_entity && !self.queued.contains(&tx.transaction_id) && !accounts.decided_before(tx)?)
    }

    /// While the queue holds more than its limit: applies what is dated up
    /// to its oldest record, and decides what it can.
    fn overflow<A: Accounts>(
        &mut self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        done: &mut impl FnMut(Done<T>, &Evaluator),
    ) -> Result<(), A::Error> {
        while self.queue.len() > self.limit {
            while self.queue.front().is_some_and(|q| matches!(q.entities, Entities::Waiting)) {
                self.apply_next(evaluator, accounts)?;
            }
            self.decide_ready(evaluator, accounts, done)?;
        }
        Ok(())
    }

    /// Decides the queue, at most `max` records, applying what waits in
    /// order as the head needs it: at the end of the input (a batch at a
    /// time), or when a live stream pauses. Returns how many it decided.
    pub fn flush<A: Accounts>(
        &mut self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        max: usize,
        done: &mut impl FnMut(Done<T>, &Evaluator),
    ) -> Result<usize, A::Error> {
        let mut decided = 0;
        while decided < max {
            match self.queue.front() {
                None => break,
                Some(q) if matches!(q.entities, Entities::Waiting) => self.apply_next(evaluator, accounts)?,
                Some(_) => {
                    self.decide_head(evaluator, accounts, done)?;
                    decided += 1;
                }
            }
        }
        Ok(decided)
    }

    /// Applies the transaction waiting first in order to its entities.
    fn apply_next<A: Accounts>(&mut self, evaluator: &mut Evaluator, accounts: &mut A) -> Result<(), A::Error> {
        let Some(Reverse((at, id, sequence))) = self.waiting.pop() else { return Ok(()) };
        let queued = &mut self.queue[(sequence - self.first) as usize];
        let mut results = Vec::new();
        if let Ok(InputEvent::Transaction(tx)) = &queued.parsed {
            for k in 0..evaluator.entity_kinds().len() {
                let kind = evaluator.entity_kinds()[k];
                if let Some(key) = evaluator.entity_key(kind, tx) {
                    let entity = accounts.account(key)?;
                    results.extend(evaluator.entity_verdict(kind, tx, entity));
                }
            }
        }
        queued.entities = Entities::Applied { results, held: false };
        if self.fresh.len() > 2 * self.limit {
            // Nobody takes them (a backtest): those decided are dropped.
            let first = self.first;
            self.fresh.retain(|&s| s >= first);
        }
        self.fresh.push(sequence);
        self.released = Some((at, id));
        Ok(())
    }

    /// Decides the records at the head of the queue up to the first still
    /// waiting for its entities.
    fn decide_ready<A: Accounts>(
        &mut self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        done: &mut impl FnMut(Done<T>, &Evaluator),
    ) -> Result<(), A::Error> {
        while self.queue.front().is_some_and(|q| !matches!(q.entities, Entities::Waiting)) {
            self.decide_head(evaluator, accounts, done)?;
        }
        Ok(())
    }

    /// Decides the record at the head of the queue, which is not waiting.
    fn decide_head<A: Accounts>(
        &mut self,
        evaluator: &mut Evaluator,
        accounts: &mut A,
        done: &mut impl FnMut(Done<T>, &Evaluator),
    ) -> Result<(), A::Error> {
        let Queued { item, parsed, position, entities } = *self.queue.pop_front().expect("a head");
        self.first += 1;
        if let Ok(InputEvent::Transaction(tx)) = &parsed {
            self.queued.remove(&tx.transaction_id);
        }
        let results = match entities {
            Entities::None => None,
            Entities::Applied { results, held } => {
                if held && let Ok(InputEvent::Transaction(tx)) = &parsed {
                    self.unheld.push(tx.transaction_id.clone());
                }
                Some(results)
            }
            // Its entity rules pass it unrun.
            Entities::Late => Some(Vec::new()),
            Entities::Waiting => unreachable!("the head is not waiting"),
        };
        let processed = match results {
            None => process(evaluator, parsed, position.clone(), accounts)?,
            Some(results) => {
                process(evaluator, parsed, position.clone(), &mut Given { accounts, results: Some(results) })?
            }
        };
        done(Done { item, position, processed }, evaluator);
        Ok(())
    }

    /// The results of transactions applied and not decided yet that the
    /// store does not hold: (transaction id, results), for a commit. From
    /// now on they count as held.
    pub fn take_held(&mut self) -> Vec<(String, Vec<RuleResult>)> {
        let mut held = Vec::new();
        for sequence in self.fresh.drain(..) {
            // Decided already: the sequence is behind the queue's head.
            let Some(queued) = sequence.checked_sub(self.first).and_then(|i| self.queue.get_mut(i as usize)) else {
                continue;
            };
            if let (Entities::Applied { results, held: h @ false }, Ok(InputEvent::Transaction(tx))) =
                (&mut queued.entities, &queued.parsed)
            {
                *h = true;
                held.push((tx.transaction_id.clone(), results.clone()));
            }
        }
        held
    }

    /// Ids of transactions decided since the last call whose results the
    /// store holds (it can forget them once their decisions commit).
    pub fn take_unheld(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unheld)
    }

    /// (order time, id) of the last transaction applied.
    pub fn released(&self) -> Option<&(i64, String)> {
        self.released.as_ref()
    }

    /// Transactions that came late since the last call.
    pub fn take_late(&mut self) -> u64 {
        std::mem::take(&mut self.late)
    }
}

/// The clock, in ms since the epoch: what [`EntityOrder::push`] caps a
/// transaction's order time at when it is read now.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Accounts whose transaction's entity results are given: its entities
/// were applied in order before it came to be decided.
struct Given<'a, A> {
    accounts: &'a mut A,
    results: Option<Vec<RuleResult>>,
}

impl<A: Accounts> Accounts for Given<'_, A> {
    type Error = A::Error;

    fn account(&mut self, id: &str) -> Result<&mut crate::state::AccountState, A::Error> {
        self.accounts.account(id)
    }

    /// Looked up when it was routed: no copy was decided then, none was
    /// waiting, and none routed since is decided before it.
    fn decided_before(&mut self, _: &TransactionRecorded) -> Result<bool, A::Error> {
        Ok(false)
    }

    fn decided(&mut self, tx: &TransactionRecorded) {
        self.accounts.decided(tx);
    }

    fn entity_rules(&mut self, evaluator: &mut Evaluator, tx: &TransactionRecorded) -> Result<(), A::Error> {
        evaluator.accept_entity_results(tx, self.results.take().unwrap_or_default());
        Ok(())
    }
}
