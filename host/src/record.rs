//! What happens to one input record, whichever pipeline read it.
//!
//! Both pipelines (embedded, [`crate::pipeline`]; Kafka, [`crate::kafka`])
//! only move records in and results out; this module owns the step in
//! between. A record is parsed ([`crate::events::parse_input`]); a
//! malformed one becomes a dead letter with the reason; a customer's
//! confirmation and an analyst's unlock are applied to their account's state
//! and decided no further (one that does not apply is a dead letter);
//! a transaction already decided (by this run, an earlier one, or — on
//! Kafka — as the account's history shows) is skipped; every other
//! transaction is decided by the [`Evaluator`] against its account's state,
//! after its entity rules ran against their entities' states.
//! [`Counters`] counts what became of the records, the same way for both
//! pipelines.
//!
//! It also owns reading one record of a JSON-lines input ([`read_line`]),
//! for the embedded pipeline and a backtest's history: a line longer than
//! the size limit is never held whole — its first bytes are kept, the rest
//! is skipped as it is read, and its size is counted — so a record of any
//! size costs the reader at most the limit in memory.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};

use serde::Serialize;

use crate::engine::{Evaluator, RuleStats};
use crate::events::{
    AccountUnlocked, DecisionEvent, DecisionType, InputEvent, InputPosition, InvalidEvent, TransactionRecorded,
    dead_letter_reason,
};
use crate::state::{AccountState, Suspicion};

/// What one input record came to.
#[derive(Debug)]
pub enum Processed {
    /// A transaction, decided: write the decision.
    Decided(Box<DecisionEvent>),
    /// A malformed record: write it to the dead letters with this reason
    /// (bounded by [`dead_letter_reason`]).
    DeadLetter(String),
    /// A customer's confirmation, recorded in its account's state; nothing to write.
    Confirmation,
    /// An analyst's unlock, applied to its account's state. On Kafka it is
    /// written on to the account-locked topic, after the lock it lifts.
    Unlocked(Box<AccountUnlocked>),
    /// A transaction decided before; nothing to write.
    Duplicate,
}

/// Where a pipeline keeps the accounts it decides against, and what it
/// remembers of the transactions it decided.
pub trait Accounts {
    type Error;

    /// The account `id`, loaded if needed (a new account starts empty).
    fn account(&mut self, id: &str) -> Result<&mut AccountState, Self::Error>;

    /// Whether `tx` was decided before (then it is not decided again).
    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, Self::Error>;

    /// `tx` has just been decided.
    fn decided(&mut self, tx: &TransactionRecorded);

    /// Runs `tx`'s entity rules before its decision: each kind's against
    /// its entity's state, kept next to the accounts under a key no
    /// account can have. A pipeline whose entities live elsewhere (Kafka's
    /// entity hop) gives their verdicts instead.
    fn entity_rules(&mut self, evaluator: &mut Evaluator, tx: &TransactionRecorded) -> Result<(), Self::Error> {
        for k in 0..evaluator.entity_kinds().len() {
            let kind = evaluator.entity_kinds()[k];
            if let Some(key) = evaluator.entity_key(kind, tx) {
                let entity = self.account(key)?;
                evaluator.decide_entity(kind, tx, entity);
            }
        }
        Ok(())
    }
}

/// Accounts (and entities) in memory: for a backtest's side and the
/// self-test cases.
#[derive(Default, Clone)]
pub struct MemoryAccounts {
    pub accounts: foldhash::HashMap<String, AccountState>,
    decided: foldhash::HashSet<String>,
}

impl Accounts for MemoryAccounts {
    type Error = std::convert::Infallible;

    fn account(&mut self, id: &str) -> Result<&mut AccountState, Self::Error> {
        if !self.accounts.contains_key(id) {
            self.accounts.insert(id.to_owned(), AccountState::default());
        }
        Ok(self.accounts.get_mut(id).expect("inserted above"))
    }

    fn decided_before(&mut self, tx: &TransactionRecorded) -> Result<bool, Self::Error> {
        Ok(self.decided.contains(&tx.transaction_id))
    }

    fn decided(&mut self, tx: &TransactionRecorded) {
        self.decided.insert(tx.transaction_id.clone());
    }
}

/// Processes one parsed record read at `position`.
pub fn process<A: Accounts>(
    evaluator: &mut Evaluator,
    parsed: Result<InputEvent, InvalidEvent>,
    position: InputPosition,
    accounts: &mut A,
) -> Result<Processed, A::Error> {
    let tx = match parsed {
        Ok(InputEvent::Transaction(tx)) => tx,
        Ok(InputEvent::CustomerConfirmation(confirmation)) => {
            // Only an answer to a FraudSuspected weir published for the
            // account counts; idempotent, so one read again changes nothing.
            let window_ms = evaluator.policy().confirmation_window_ms();
            return match accounts.account(&confirmation.account_id)?.confirm(&confirmation, window_ms) {
                Ok(()) => {
                    tracing::debug!(account_id = %confirmation.account_id, merchant_id = %confirmation.merchant_id, transaction_id = %confirmation.transaction_id, "customer confirmation recorded");
                    Ok(Processed::Confirmation)
                }
                Err(why) => Ok(Processed::DeadLetter(format!("customer confirmation not accepted: {why}"))),
            };
        }
        Ok(InputEvent::AccountUnlocked(unlock)) => {
            // Only the lock it names is lifted: read twice, it lifts nothing.
            return match accounts.account(&unlock.account_id)?.unlock(&unlock) {
                Ok(lock) => {
                    tracing::info!(account_id = %unlock.account_id, transaction_id = %lock.transaction_id, analyst = %unlock.analyst, "account unlocked by an analyst");
                    Ok(Processed::Unlocked(Box::new(unlock)))
                }
                Err(why) => Ok(Processed::DeadLetter(format!("account unlock not accepted: {why}"))),
            };
        }
        Err(reason) => return Ok(Processed::DeadLetter(dead_letter_reason(&reason))),
    };
    if accounts.decided_before(&tx)? {
        tracing::debug!(transaction_id = %tx.transaction_id, partition = position.partition, offset = position.offset, "already decided; skipped");
        return Ok(Processed::Duplicate);
    }
    let decision = decide(evaluator, &tx, position, accounts)?;
    if decision.event_type == DecisionType::FraudSuspected {
        accounts.account(&tx.account_id)?.record_suspicion(Suspicion {
            decision_event_id: decision.event_id.to_string(),
            transaction_id: tx.transaction_id.clone(),
            merchant_id: tx.merchant.id.clone(),
            at_ms: tx.occurred_at_ms(),
            confirmed: false,
        });
    }
    accounts.decided(&tx);
    Ok(Processed::Decided(Box::new(decision)))
}

/// Decides `tx`: its entity rules first ([`Accounts::entity_rules`]),
/// then the account's rules against the account's state.
pub fn decide<A: Accounts>(
    evaluator: &mut Evaluator,
    tx: &TransactionRecorded,
    position: InputPosition,
    accounts: &mut A,
) -> Result<DecisionEvent, A::Error> {
    accounts.entity_rules(evaluator, tx)?;
    Ok(evaluator.decide(tx, accounts.account(&tx.account_id)?, position))
}

/// What became of the records a pipeline read, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Input records read (blank lines excepted).
    pub records: u64,
    pub decisions: BTreeMap<DecisionType, u64>,
    pub dead_letters: u64,
    /// Transactions skipped because they were decided before.
    pub duplicates: u64,
    /// Customer confirmations recorded in their account's state (no decision).
    pub confirmations: u64,
    /// Analysts' unlocks applied to their account's state (no decision).
    pub unlocks: u64,
    /// Transactions that came to an entity later than `kafka.entity_grace_ms`
    /// allows, once per entity (Kafka), or dated before one already
    /// applied once `embedded.entity_max_waiting` records waited
    /// ([`crate::entity_order`]): their entity rules passed them unrun.
    pub entity_late: u64,
}

impl Counters {
    /// Counts one processed record.
    pub fn count(&mut self, processed: &Processed) {
        self.records += 1;
        match processed {
            Processed::Decided(d) => *self.decisions.entry(d.event_type).or_default() += 1,
            Processed::DeadLetter(_) => self.dead_letters += 1,
            Processed::Confirmation => self.confirmations += 1,
            Processed::Unlocked(_) => self.unlocks += 1,
            Processed::Duplicate => self.duplicates += 1,
        }
    }

    /// Decisions of every type.
    pub fn decided(&self) -> u64 {
        self.decisions.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Counters) {
        self.records += other.records;
        for (t, n) in &other.decisions {
            *self.decisions.entry(*t).or_default() += n;
        }
        self.dead_letters += other.dead_letters;
        self.duplicates += other.duplicates;
        self.confirmations += other.confirmations;
        self.unlocks += other.unlocks;
        self.entity_late += other.entity_late;
    }
}

/// Per-rule counters of one or more evaluators, summed by rule id.
pub fn rule_stats<'a>(evaluators: impl IntoIterator<Item = &'a Evaluator>) -> Vec<(String, RuleStats)> {
    let each: Vec<Vec<(String, RuleStats)>> =
        evaluators.into_iter().map(|e| e.stats().map(|(id, s)| (id.to_owned(), s.clone())).collect()).collect();
    rule_stats_of(each.iter().map(Vec::as_slice))
}

/// Per-rule counters of several workers, summed by rule id.
pub fn rule_stats_of<'a>(workers: impl IntoIterator<Item = &'a [(String, RuleStats)]>) -> Vec<(String, RuleStats)> {
    let mut by_id: BTreeMap<String, RuleStats> = BTreeMap::new();
    for stats in workers {
        for (id, s) in stats {
            let total = by_id.entry(id.clone()).or_default();
            total.invocations += s.invocations;
            total.hits += s.hits;
            total.errors += s.errors;
            total.fuel += s.fuel;
            total.quarantined |= s.quarantined;
            if total.quarantine_reason.is_none() {
                total.quarantine_reason.clone_from(&s.quarantine_reason);
            }
        }
    }
    by_id.into_iter().collect()
}

/// Reads the next line of a JSON-lines `input` into `line` (cleared first,
/// its capacity reused) and returns the line's size in bytes, without its
/// newline (`\n` or `\r\n`); `None` at the end of the input.
///
/// When the size is at most `limit`, `line` holds the whole line. A longer
/// line is held only in part — at most its first `limit + 2` bytes, the rest
/// skipped as it is read — while the size returned counts all of it. So
/// `line` never grows past `limit + 2` bytes, whatever the input, and the
/// next call reads the next line from its start.
pub fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, limit: usize) -> io::Result<Option<u64>> {
    line.clear();
    let room = limit.saturating_add(2);
    let read = input.by_ref().take(room as u64).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') || read < room {
        // Whole: the newline was read, or the input ended first.
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        return Ok(Some(line.len() as u64));
    }
    // Over the limit: count the rest of the line as it goes by.
    let mut size = read as u64;
    let mut last = line.last().copied();
    loop {
        let buffered = match input.fill_buf() {
            Ok(buffered) => buffered,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffered.is_empty() {
            break;
        }
        match buffered.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if end > 0 {
                    last = Some(buffered[end - 1]);
                }
                size += end as u64;
                input.consume(end + 1);
                break;
            }
            None => {
                let n = buffered.len();
                last = Some(buffered[n - 1]);
                size += n as u64;
                input.consume(n);
            }
        }
    }
    if last == Some(b'\r') {
        size -= 1;
    }
    Ok(Some(size))
}
