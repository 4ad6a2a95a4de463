//! Per-account state: what rules remember about an account, and what the
//! host itself remembers (the lock).
//!
//! State is keyed by account id, so it is partitioned exactly like the
//! input events. Each rule owns a [`RuleState`] inside the account, keyed by
//! rule id: a rule can neither read nor damage another rule's state. The
//! [`History`] of recent transactions is shared, read-only for rules, and
//! appended by the host after every rule has seen the transaction.
//!
//! The host also keeps the merchants the customer confirmed ("it was me",
//! [`CustomerConfirmation`]); rules see them as the attribute
//! `weir.customer_confirmed_merchant` on the account's transactions at those
//! merchants ([`AccountState::facts`]).
//!
//! # Records
//!
//! An account is stored as **parts**, each its own record, so a transaction
//! writes what it changed and not the whole account (whose history alone is
//! 32 transactions): `m` holds the lock and the confirmed merchants, `r/<rule
//! id>` one rule's state, `h/<slot>` one history entry (slot = its sequence
//! number modulo [`HISTORY_LEN`]), so the history is a ring of records that
//! are overwritten in place, and `s/<slot>` one recent `FraudSuspected`
//! (slot modulo [`MAX_SUSPICIONS`]), a ring too: a suspicion writes one small
//! record, not all the account's suspicions again. [`AccountState`] remembers which parts changed
//! since they were last written ([`AccountState::take_changes`]); a part
//! that becomes empty is deleted. [`AccountState::from_parts`] puts an
//! account back together.
//!
//! Before parts, an account was one record (postcard of the whole state);
//! [`AccountState::decode`] still reads those, of both earlier shapes, and
//! an account read from one is written out whole, as parts, the next time
//! it changes. A meta part written before suspicions had their own parts
//! holds them inside; they are read from it and moved to their parts on the
//! next write. The encoding (postcard) is not self-describing: fields are
//! only ever added at the end. An older binary ignores parts it does not
//! know, so a rollback reads the account without its suspicions (a
//! customer's confirmation of one of them is then refused).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::PastTransaction;
use weir_sdk::state::{HISTORY_LEN, History, RuleState};

use crate::events::{AccountUnlocked, CustomerConfirmation, HostFacts, SharedStr, TransactionRecorded};

/// The most confirmed merchants kept per account; further confirmations are
/// logged and not kept.
pub const MAX_CONFIRMED_MERCHANTS: usize = 64;

/// The most recent `FraudSuspected` decisions kept per account, for the
/// customer's confirmations to answer; older ones go first.
pub const MAX_SUSPICIONS: usize = 16;

/// A `FraudSuspected` weir published for the account: what a customer's
/// confirmation must name to be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspicion {
    /// The decision's `event_id`: the confirmation's `causation_id`.
    pub decision_event_id: String,
    pub transaction_id: String,
    pub merchant_id: String,
    /// The suspected transaction's event time, ms since the epoch.
    pub at_ms: i64,
    /// Whether the customer confirmed it (a repeat is accepted, idempotent).
    pub confirmed: bool,
}

/// Why a customer's confirmation is not accepted; it is dead-lettered with
/// this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmationRefused {
    #[error(
        "its causation_id names no FraudSuspected weir published for this account (the newest {MAX_SUSPICIONS} are kept)"
    )]
    NoSuchSuspicion,
    #[error("its {field} is not the suspected transaction's")]
    Mismatch { field: &'static str },
    #[error("it came {days} days after the suspected transaction; confirmations are accepted for {window_days} days")]
    Expired { days: i64, window_days: i64 },
}

/// A rule's state part: its key/values and series as they were always
/// encoded, then its distinct sets, only if it has any — so a part
/// written before sets existed reads as a state without sets.
fn encode_rule_state(state: &RuleState) -> Vec<u8> {
    let mut bytes = encode(state);
    if !state.sets().is_empty() {
        bytes.extend_from_slice(&encode(state.sets()));
    }
    bytes
}

fn decode_rule_state(bytes: &[u8]) -> Result<RuleState, postcard::Error> {
    let (state, rest) = postcard::take_from_bytes::<RuleState>(bytes)?;
    if rest.is_empty() {
        return Ok(state);
    }
    Ok(state.with_sets(postcard::from_bytes(rest)?))
}

/// Everything weir keeps about one account.
#[derive(Debug, Clone, Default)]
pub struct AccountState {
    /// Each rule's own state, by rule id.
    pub rules: BTreeMap<String, RuleState>,
    /// Recent transactions, newest first.
    pub history: History,
    /// Set when weir locked the account: one `AccountLocked` per lock.
    pub lock: Option<Lock>,
    /// Merchant ids the customer confirmed a purchase at, sorted, at most
    /// [`MAX_CONFIRMED_MERCHANTS`].
    pub confirmed_merchants: Vec<String>,
    /// The account's recent `FraudSuspected` decisions, oldest first, at
    /// most [`MAX_SUSPICIONS`].
    pub suspicions: Vec<Suspicion>,
    /// How many transactions the history has ever recorded: the newest
    /// entry's sequence number is `history_seq - 1`.
    pub history_seq: u64,
    /// How many suspicions the account has ever recorded: the newest one's
    /// sequence number is `suspicion_seq - 1`.
    pub suspicion_seq: u64,
    /// What changed since the parts were last taken for writing.
    pub(crate) changes: Changes,
    /// Hashes of the history's transaction ids, newest first like the
    /// history, for [`AccountState::has_transaction`]; in memory only, and
    /// used only while it has as many entries as the history.
    id_hashes: std::collections::VecDeque<u64>,
}

/// Equal when the state is: what is pending a write does not count, and a
/// rule with empty state is one with none (an empty part is not stored).
impl PartialEq for AccountState {
    fn eq(&self, other: &Self) -> bool {
        let rules = |s: &AccountState| {
            s.rules.iter().filter(|(_, r)| !r.is_empty()).map(|(k, r)| (k.clone(), r.clone())).collect::<Vec<_>>()
        };
        rules(self) == rules(other)
            && self.history == other.history
            && self.lock == other.lock
            && self.confirmed_merchants == other.confirmed_merchants
            && self.suspicions == other.suspicions
            && self.history_seq == other.history_seq
            && self.suspicion_seq == other.suspicion_seq
    }
}

impl Eq for AccountState {}

/// Which parts of an account changed since they were last written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Changes {
    /// Every part: the account was read from a whole-account record.
    all: bool,
    /// The lock or the confirmed merchants.
    meta: bool,
    /// Rule ids whose state changed (shared with the rule: noting a change
    /// copies a pointer, and the same rule is recognised by it first).
    rules: Vec<SharedStr>,
    /// History entries recorded since, newest last (at most [`HISTORY_LEN`] matter).
    history: u64,
    /// Suspicion slots written since, one bit per slot.
    suspicions: u32,
}

const _: () = assert!(MAX_SUSPICIONS <= 32, "one bit per suspicion slot in `Changes::suspicions`");

/// One part of an account to write: its name (`m`, `r/<rule id>`,
/// `h/<slot>`) and its record, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub value: Option<Vec<u8>>,
}

/// The `m` part.
#[derive(Serialize, Deserialize)]
struct Meta {
    lock: Option<Lock>,
    confirmed_merchants: Vec<String>,
    suspicions: Vec<Suspicion>,
}

/// The `m` part as written: [`Meta`] borrowed from the account, the same
/// bytes without copying it first. Its `suspicions` are always empty now
/// (they have their own parts); the field stays for the format.
#[derive(Serialize)]
struct MetaRef<'a> {
    lock: &'a Option<Lock>,
    confirmed_merchants: &'a [String],
    suspicions: &'a [Suspicion],
}

/// The `m` part before suspicions were kept.
#[derive(Deserialize)]
struct MetaV1 {
    lock: Option<Lock>,
    confirmed_merchants: Vec<String>,
}

/// An `h/<slot>` part.
#[derive(Serialize, Deserialize)]
struct HistoryEntry {
    seq: u64,
    transaction: PastTransaction,
}

/// An `h/<slot>` part as written: [`HistoryEntry`] borrowed.
#[derive(Serialize)]
struct HistoryEntryRef<'a> {
    seq: u64,
    transaction: &'a PastTransaction,
}

/// An `s/<slot>` part.
#[derive(Serialize, Deserialize)]
struct SuspicionEntry {
    seq: u64,
    suspicion: Suspicion,
}

/// An `s/<slot>` part as written: [`SuspicionEntry`] borrowed.
#[derive(Serialize)]
struct SuspicionEntryRef<'a> {
    seq: u64,
    suspicion: &'a Suspicion,
}

/// The whole-account record before parts (second shape).
#[derive(Deserialize)]
struct WholeV2 {
    rules: BTreeMap<String, RuleState>,
    history: History,
    lock: Option<Lock>,
    confirmed_merchants: Vec<String>,
}

/// The whole-account record of the first release.
#[derive(Deserialize)]
struct WholeV1 {
    rules: BTreeMap<String, RuleState>,
    history: History,
    lock: Option<Lock>,
}

/// Why a record cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {source}")]
pub struct PartError {
    pub part: String,
    pub source: postcard::Error,
}

/// Why an analyst's unlock was not applied; the text goes to its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockRefused {
    #[error("the account is not locked")]
    NotLocked,
    #[error("the account is locked by transaction {transaction_id}, not the one the unlock names")]
    OtherLock { transaction_id: String },
}

/// Why and when weir locked an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub transaction_id: String,
    pub occurred_at_ms: i64,
    pub reason: String,
}

/// A transaction id's hash for [`AccountState::has_transaction`] (in memory only).
fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::with_seed(0x77e1_5eed).hash_one(id)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Sized for a typical part, so encoding does not grow the buffer step by step.
    postcard::to_extend(value, Vec::with_capacity(256)).expect("account state always serializes")
}

impl AccountState {
    /// Decodes a whole-account record of an earlier version (see the module
    /// docs); all of its parts count as changed, so it is written out as
    /// parts the next time it is written.
    pub fn decode(bytes: &[u8]) -> Result<AccountState, postcard::Error> {
        let (rules, history, lock, confirmed_merchants) = match postcard::from_bytes::<WholeV2>(bytes) {
            Ok(w) => (w.rules, w.history, w.lock, w.confirmed_merchants),
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let w: WholeV1 = postcard::from_bytes(bytes)?;
                (w.rules, w.history, w.lock, Vec::new())
            }
            Err(e) => return Err(e),
        };
        let history_seq = history.len() as u64;
        Ok(AccountState {
            rules,
            history,
            lock,
            confirmed_merchants,
            suspicions: Vec::new(),
            history_seq,
            suspicion_seq: 0,
            changes: Changes { all: true, ..Changes::default() },
            id_hashes: Default::default(),
        })
    }

    /// Puts an account back together from its parts, in any order.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<AccountState, PartError> {
        let mut account = AccountState::default();
        let mut entries: Vec<HistoryEntry> = Vec::new();
        let mut suspicions: Vec<SuspicionEntry> = Vec::new();
        for (name, bytes) in parts {
            let err = |source| PartError { part: name.to_owned(), source };
            if name == "m" {
                let meta = match postcard::from_bytes::<Meta>(bytes) {
                    Err(postcard::Error::DeserializeUnexpectedEnd) => postcard::from_bytes::<MetaV1>(bytes)
                        .map(|m| Meta { lock: m.lock, confirmed_merchants: m.confirmed_merchants, suspicions: vec![] }),
                    other => other,
                }
                .map_err(err)?;
                account.lock = meta.lock;
                account.confirmed_merchants = meta.confirmed_merchants;
                account.suspicions = meta.suspicions;
            } else if let Some(rule) = name.strip_prefix("r/") {
                account.rules.insert(rule.to_owned(), decode_rule_state(bytes).map_err(err)?);
            } else if name.starts_with("h/") {
                entries.push(postcard::from_bytes(bytes).map_err(err)?);
            } else if name.starts_with("s/") {
                suspicions.push(postcard::from_bytes(bytes).map_err(err)?);
            }
            // Parts of a later version are ignored.
        }
        entries.sort_by_key(|e| e.seq);
        account.history_seq = entries.last().map_or(0, |e| e.seq + 1);
        for entry in entries {
            account.history.push(entry.transaction);
        }
        if !account.suspicions.is_empty() {
            // Kept inside the meta part by an earlier version: moved to their
            // own parts, and the meta part rewritten without them, together.
            account.suspicion_seq = account.suspicions.len() as u64;
            account.changes.meta = true;
            account.changes.suspicions = u32::MAX;
        } else if !suspicions.is_empty() {
            suspicions.sort_by_key(|e| e.seq);
            account.suspicion_seq = suspicions.last().map_or(0, |e| e.seq + 1);
            account.suspicions = suspicions.into_iter().map(|e| e.suspicion).collect();
        }
        Ok(account)
    }

    /// Records a transaction in the history, once every rule has seen it.
    pub fn record_history(&mut self, transaction: PastTransaction) {
        let in_step = self.id_hashes.len() == self.history.len();
        let hash = id_hash(&transaction.transaction_id);
        self.history.push(transaction);
        self.history_seq += 1;
        self.changes.history += 1;
        if in_step {
            self.id_hashes.push_front(hash);
            self.id_hashes.truncate(HISTORY_LEN);
        } else {
            // Read back from parts, or built by hand: hashed once, here.
            self.id_hashes = self.history.recent(u32::MAX).map(|t| id_hash(&t.transaction_id)).collect();
        }
    }

    /// Whether the transaction `id` is in the account's history: one of
    /// its recent transactions (published twice upstream).
    pub fn has_transaction(&self, id: &str) -> bool {
        if self.id_hashes.len() != self.history.len() {
            return self.history.recent(u32::MAX).any(|t| t.transaction_id == id);
        }
        let hash = id_hash(id);
        self.id_hashes.iter().zip(self.history.recent(u32::MAX)).any(|(h, t)| *h == hash && t.transaction_id == id)
    }

    /// Locks the account.
    pub fn set_lock(&mut self, lock: Lock) {
        self.lock = Some(lock);
        self.changes.meta = true;
    }

    /// Notes that the rule `id`'s state changed.
    pub fn rule_changed(&mut self, id: &SharedStr) {
        if !self.changes.all && !self.changes.rules.contains(id) {
            self.changes.rules.push(id.clone());
        }
    }

    /// Whether the account was read from a whole-account record of an
    /// earlier version and not written since.
    pub fn read_whole(&self) -> bool {
        self.changes.all
    }

    /// Whether some part changed since the parts were last taken.
    pub fn has_changes(&self) -> bool {
        let c = &self.changes;
        c.all || c.meta || !c.rules.is_empty() || c.history > 0 || c.suspicions != 0
    }

    /// The parts that changed since the last call, encoded, and forgets
    /// the changes.
    pub fn take_changes(&mut self) -> Vec<Part> {
        let changes = std::mem::take(&mut self.changes);
        let mut parts = Vec::new();
        if changes.all || changes.meta {
            let empty = self.lock.is_none() && self.confirmed_merchants.is_empty();
            let meta = MetaRef { lock: &self.lock, confirmed_merchants: &self.confirmed_merchants, suspicions: &[] };
            parts.push(Part { name: "m".to_owned(), value: (!empty).then(|| encode(&meta)) });
        }
        let rule_part = |id: &str, state: Option<&RuleState>| Part {
            name: format!("r/{id}"),
            value: state.filter(|s| !s.is_empty()).map(encode_rule_state),
        };
        if changes.all {
            parts.extend(self.rules.iter().map(|(id, state)| rule_part(id, Some(state))));
        } else {
            parts.extend(changes.rules.iter().map(|id| rule_part(id, self.rules.get(id.as_str()))));
        }
        let fresh = if changes.all { self.history.len() as u64 } else { changes.history.min(HISTORY_LEN as u64) };
        for (age, transaction) in self.history.recent(fresh as u32).enumerate() {
            let seq = self.history_seq - 1 - age as u64;
            let entry = HistoryEntryRef { seq, transaction };
            parts.push(Part { name: format!("h/{}", seq % HISTORY_LEN as u64), value: Some(encode(&entry)) });
        }
        let written = if changes.all { u32::MAX } else { changes.suspicions };
        if written != 0 {
            let first = self.suspicion_seq - self.suspicions.len() as u64;
            for (seq, suspicion) in (first..).zip(&self.suspicions) {
                let slot = seq % MAX_SUSPICIONS as u64;
                if written & (1 << slot) != 0 {
                    let entry = SuspicionEntryRef { seq, suspicion };
                    parts.push(Part { name: format!("s/{slot}"), value: Some(encode(&entry)) });
                }
            }
        }
        parts
    }

    /// Notes that the suspicion at `index` (oldest first) changed.
    fn suspicion_changed(&mut self, index: usize) {
        let seq = self.suspicion_seq - self.suspicions.len() as u64 + index as u64;
        self.changes.suspicions |= 1 << (seq % MAX_SUSPICIONS as u64);
    }

    /// Remembers a `FraudSuspected` weir published for the account, for a
    /// confirmation to answer; the oldest goes past [`MAX_SUSPICIONS`].
    pub fn record_suspicion(&mut self, suspicion: Suspicion) {
        if self.suspicions.iter().any(|s| s.decision_event_id == suspicion.decision_event_id) {
            return;
        }
        if self.suspicions.len() >= MAX_SUSPICIONS {
            // Its slot is the new one's: overwritten, not deleted.
            self.suspicions.remove(0);
        }
        self.suspicions.push(suspicion);
        self.suspicion_seq += 1;
        self.suspicion_changed(self.suspicions.len() - 1);
    }

    /// Accepts the customer's confirmation ("it was me") when it answers a
    /// `FraudSuspected` weir published for this account — its decision's
    /// `event_id` as `causation_id`, the same transaction and merchant —
    /// within `window_ms` of the suspected transaction; then records the
    /// merchant. Idempotent: a confirmation read again changes nothing.
    pub fn confirm(&mut self, confirmation: &CustomerConfirmation, window_ms: i64) -> Result<(), ConfirmationRefused> {
        let index = self
            .suspicions
            .iter()
            .position(|s| s.decision_event_id == confirmation.causation_id)
            .ok_or(ConfirmationRefused::NoSuchSuspicion)?;
        let suspicion = &mut self.suspicions[index];
        if suspicion.transaction_id != confirmation.transaction_id {
            return Err(ConfirmationRefused::Mismatch { field: "transaction_id" });
        }
        if suspicion.merchant_id != confirmation.merchant_id {
            return Err(ConfirmationRefused::Mismatch { field: "merchant_id" });
        }
        let age_ms = confirmation.occurred_at_ms().saturating_sub(suspicion.at_ms);
        if age_ms > window_ms {
            const DAY_MS: i64 = 86_400_000;
            return Err(ConfirmationRefused::Expired { days: age_ms / DAY_MS, window_days: window_ms / DAY_MS });
        }
        if !suspicion.confirmed {
            suspicion.confirmed = true;
            self.suspicion_changed(index);
        }
        let merchant = &confirmation.merchant_id;
        match self.confirmed_merchants.binary_search(merchant) {
            Ok(_) => {}
            Err(at) if self.confirmed_merchants.len() < MAX_CONFIRMED_MERCHANTS => {
                self.confirmed_merchants.insert(at, merchant.clone());
                self.changes.meta = true;
            }
            Err(_) => tracing::warn!(
                account_id = %confirmation.account_id,
                "the account already has {MAX_CONFIRMED_MERCHANTS} confirmed merchants; this confirmation is not kept"
            ),
        }
        Ok(())
    }

    /// Lifts the lock `unlock` names: the account must be locked by its
    /// transaction. Then the account's next lock is announced again. An
    /// unlock read again finds no such lock and is refused, so it never
    /// lifts a newer lock. Returns the lock lifted.
    pub fn unlock(&mut self, unlock: &AccountUnlocked) -> Result<Lock, UnlockRefused> {
        match &self.lock {
            None => Err(UnlockRefused::NotLocked),
            Some(lock) if lock.transaction_id != unlock.transaction_id => {
                Err(UnlockRefused::OtherLock { transaction_id: lock.transaction_id.clone() })
            }
            Some(_) => {
                self.changes.meta = true;
                Ok(self.lock.take().expect("matched above"))
            }
        }
    }

    /// What rules learn about `tx` from this account's state.
    pub fn facts(&self, tx: &TransactionRecorded) -> HostFacts {
        HostFacts { merchant_confirmed_by_customer: self.confirmed_merchants.binary_search(&tx.merchant.id).is_ok() }
    }
}

/// The whole-account record an earlier version wrote for `s` (tests of
/// reading old records).
#[cfg(test)]
pub(crate) fn whole_record(s: &AccountState) -> Vec<u8> {
    #[derive(Serialize)]
    struct Whole<'a> {
        rules: &'a BTreeMap<String, RuleState>,
        history: &'a History,
        lock: &'a Option<Lock>,
        confirmed_merchants: &'a Vec<String>,
    }
    postcard::to_stdvec(&Whole {
        rules: &s.rules,
        history: &s.history,
        lock: &s.lock,
        confirmed_merchants: &s.confirmed_merchants,
    })
    .expect("serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::tx;

    fn sample() -> AccountState {
        let mut s = AccountState::default();
        let mut r = RuleState::default();
        r.set("k", "v");
        r.window_add(10, "n", 3);
        s.rules.insert("velocity".into(), r);
        s.lock = Some(Lock { transaction_id: "tx-1".into(), occurred_at_ms: 5, reason: "x".into() });
        s.confirmed_merchants = vec!["m-luckybets".into()];
        for i in 0..3 {
            s.history.push(weir_sdk::PastTransaction::from(&tx().id(&format!("tx-{i}")).build()));
        }
        s.history_seq = 3;
        s
    }

    /// Applies parts as a store would: the last record of each name wins,
    /// `None` deletes it.
    fn apply(store: &mut BTreeMap<String, Vec<u8>>, parts: Vec<Part>) {
        for p in parts {
            match p.value {
                Some(v) => store.insert(p.name, v),
                None => store.remove(&p.name),
            };
        }
    }

    fn load(store: &BTreeMap<String, Vec<u8>>) -> AccountState {
        AccountState::from_parts(store.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap()
    }

    #[test]
    fn a_rule_part_keeps_its_sets_and_parts_written_before_sets_still_read() {
        let mut r = RuleState::default();
        r.set("k", "v");
        r.window_add(10, "n", 3);
        // What a part was before sets existed: the state's own encoding.
        let before_sets = encode(&r);
        assert_eq!(decode_rule_state(&before_sets).unwrap(), r);
        assert_eq!(encode_rule_state(&r), before_sets, "a state without sets is written as before");
        r.distinct_add(20, "accounts", "acct-1");
        r.distinct_add(30, "accounts", "acct-2");
        let read = decode_rule_state(&encode_rule_state(&r)).unwrap();
        assert_eq!(read, r);
        assert_eq!(read.last_seen("accounts", "acct-2"), Some(30));
    }

    #[test]
    fn whole_records_read_and_are_written_out_as_parts() {
        let s = sample();
        let mut read = AccountState::decode(&whole_record(&s)).unwrap();
        assert_eq!(read, s);
        let mut store = BTreeMap::new();
        apply(&mut store, read.take_changes());
        let names: Vec<&str> = store.keys().map(String::as_str).collect();
        assert_eq!(names, ["h/0", "h/1", "h/2", "m", "r/velocity"]);
        assert_eq!(load(&store), s);
        assert!(read.take_changes().is_empty(), "nothing changed since");
    }

    #[test]
    fn a_transaction_writes_what_it_changed_and_the_history_is_a_ring() {
        let mut s = AccountState::default();
        let mut store = BTreeMap::new();
        for i in 0..40 {
            s.record_history(weir_sdk::PastTransaction::from(&tx().id(&format!("tx-{i}")).build()));
            if i == 5 {
                s.rules.entry("velocity".into()).or_default().set("k", "v");
                s.rule_changed(&"velocity".into());
            }
            let parts = s.take_changes();
            let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
            let slot = format!("h/{}", i % 32);
            if i == 5 {
                assert_eq!(names, ["r/velocity", slot.as_str()]);
            } else {
                assert_eq!(names, [slot.as_str()], "one history slot per transaction");
            }
            apply(&mut store, parts);
        }
        assert_eq!(store.len(), 33, "32 history slots and one rule");
        let back = load(&store);
        assert_eq!(back, s);
        assert_eq!(back.history.recent(1).next().unwrap().transaction_id, "tx-39");
        assert_eq!(back.history.len(), 32);

        // A rule whose state became empty, and the lock.
        s.rules.get_mut("velocity").unwrap().remove("k");
        s.rule_changed(&"velocity".into());
        s.set_lock(Lock { transaction_id: "tx-39".into(), occurred_at_ms: 1, reason: "r".into() });
        apply(&mut store, s.take_changes());
        assert!(!store.contains_key("r/velocity"), "an empty rule state is deleted");
        assert_eq!(load(&store), s);
    }

    /// Changelog and store records written before `confirmed_merchants` existed.
    #[test]
    fn records_of_the_first_release_still_decode() {
        #[derive(Serialize)]
        struct V1<'a> {
            rules: &'a BTreeMap<String, RuleState>,
            history: &'a History,
            lock: &'a Option<Lock>,
        }
        let mut r = RuleState::default();
        r.set("countries", "NL");
        let mut s = AccountState::default();
        s.rules.insert("new-country".into(), r);
        s.lock = Some(Lock { transaction_id: "tx-9".into(), occurred_at_ms: 7, reason: "card-testing".into() });
        let old = postcard::to_stdvec(&V1 { rules: &s.rules, history: &s.history, lock: &s.lock }).unwrap();
        assert_eq!(AccountState::decode(&old).unwrap(), s);
        assert!(AccountState::decode(&old[..old.len() - 1]).is_err(), "a truncated record is still an error");
    }

    fn confirmation(causation: &str, tx: &str, merchant: &str, at_ms: i64) -> CustomerConfirmation {
        CustomerConfirmation {
            event_id: format!("c-{causation}"),
            event_type: "TransactionVerified".into(),
            schema_version: 1,
            occurred_at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).unwrap(),
            causation_id: causation.into(),
            transaction_id: tx.into(),
            account_id: "acct-1".into(),
            merchant_id: merchant.into(),
            verified_by: "customer".into(),
        }
    }

    fn suspicion(n: usize) -> Suspicion {
        Suspicion {
            decision_event_id: format!("d-{n}"),
            transaction_id: format!("tx-{n}"),
            merchant_id: format!("m-{n}"),
            at_ms: 1_000,
            confirmed: false,
        }
    }

    #[test]
    fn only_a_confirmation_of_a_suspicion_weir_published_is_accepted() {
        const WINDOW: i64 = 30 * 86_400_000;
        let mut s = AccountState::default();
        s.record_suspicion(suspicion(1));
        let _ = s.take_changes();
        let refused = |s: &mut AccountState, c| s.confirm(&c, WINDOW).unwrap_err();
        assert_eq!(
            refused(&mut s, confirmation("d-forged", "tx-1", "m-1", 2_000)),
            ConfirmationRefused::NoSuchSuspicion
        );
        let wrong_tx = refused(&mut s, confirmation("d-1", "tx-9", "m-1", 2_000));
        assert_eq!(wrong_tx, ConfirmationRefused::Mismatch { field: "transaction_id" });
        let wrong_merchant = refused(&mut s, confirmation("d-1", "tx-1", "m-9", 2_000));
        assert_eq!(wrong_merchant, ConfirmationRefused::Mismatch { field: "merchant_id" });
        assert!(matches!(
            refused(&mut s, confirmation("d-1", "tx-1", "m-1", WINDOW + 2_000)),
            ConfirmationRefused::Expired { .. }
        ));
        assert!(s.confirmed_merchants.is_empty() && !s.has_changes(), "nothing refused is kept");
        s.confirm(&confirmation("d-1", "tx-1", "m-1", 2_000), WINDOW).unwrap();
        assert_eq!(s.confirmed_merchants, ["m-1"]);
        let names: Vec<String> = s.take_changes().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["m", "s/0"], "the confirmed merchants and the confirmed suspicion");
        s.confirm(&confirmation("d-1", "tx-1", "m-1", 2_000), WINDOW).unwrap();
        assert!(s.take_changes().is_empty(), "a redelivered confirmation changes nothing");
    }

    #[test]
    fn suspicions_are_bounded_and_written_as_a_ring() {
        let mut s = AccountState::default();
        for n in 0..MAX_SUSPICIONS + 5 {
            s.record_suspicion(suspicion(n));
        }
        assert_eq!(s.suspicions.len(), MAX_SUSPICIONS);
        assert_eq!(s.suspicions[0].decision_event_id, "d-5", "the oldest go first");
        let mut store = BTreeMap::new();
        let parts = s.take_changes();
        assert_eq!(parts.len(), MAX_SUSPICIONS, "one part per slot, no meta part: {parts:?}");
        apply(&mut store, parts);
        assert_eq!(load(&store), s);

        // One more suspicion writes its slot only, over the oldest's.
        s.record_suspicion(suspicion(99));
        let parts = s.take_changes();
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [format!("s/{}", (MAX_SUSPICIONS + 5) % MAX_SUSPICIONS)]);
        apply(&mut store, parts);
        let back = load(&store);
        assert_eq!(back, s);
        assert_eq!(back.suspicions[0].decision_event_id, "d-6");
        assert_eq!(back.suspicions.last().unwrap().decision_event_id, "d-99");
    }

    #[test]
    fn the_history_knows_its_transactions_whether_kept_in_step_or_read_back() {
        let past = |i: usize| weir_sdk::PastTransaction::from(&tx().id(&format!("tx-{i}")).build());
        let mut s = AccountState::default();
        for i in 0..40 {
            s.record_history(past(i));
        }
        assert!(s.has_transaction("tx-39") && s.has_transaction("tx-8"));
        assert!(!s.has_transaction("tx-7"), "beyond the history's 32");
        assert!(!s.has_transaction("tx-40"));
        // Read back from parts: the hashes are rebuilt on the next transaction.
        let mut store = BTreeMap::new();
        apply(&mut store, s.take_changes());
        let mut back = load(&store);
        assert!(back.has_transaction("tx-39") && !back.has_transaction("tx-7"));
        back.record_history(past(40));
        assert!(back.has_transaction("tx-40") && back.has_transaction("tx-9") && !back.has_transaction("tx-8"));
    }

    #[test]
    fn an_unlock_lifts_only_the_lock_it_names() {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let unlock = |tx: &str| AccountUnlocked::new("acct-1", tx, "analyst-7", None, at).unwrap();
        let mut s = AccountState::default();
        assert_eq!(s.unlock(&unlock("tx-1")), Err(UnlockRefused::NotLocked));
        s.set_lock(Lock { transaction_id: "tx-2".into(), occurred_at_ms: 5, reason: "card testing".into() });
        let _ = s.take_changes();
        let other = s.unlock(&unlock("tx-1")).unwrap_err();
        assert_eq!(other, UnlockRefused::OtherLock { transaction_id: "tx-2".into() });
        assert!(!s.has_changes(), "a refused unlock changes nothing");
        assert_eq!(s.unlock(&unlock("tx-2")).unwrap().transaction_id, "tx-2");
        assert!(s.lock.is_none());
        let mut store = BTreeMap::new();
        apply(&mut store, s.take_changes());
        assert!(store.is_empty(), "the emptied meta part is deleted: {store:?}");
        assert_eq!(s.unlock(&unlock("tx-2")), Err(UnlockRefused::NotLocked), "read twice, it lifts nothing");
    }

    /// A meta part of the previous version kept the suspicions inside: they
    /// read, and the next write moves them to their own parts.
    #[test]
    fn suspicions_kept_in_the_meta_part_move_to_their_own_parts() {
        let suspicions: Vec<Suspicion> = (0..3).map(suspicion).collect();
        let old = Meta { lock: None, confirmed_merchants: vec!["m-a".into()], suspicions: suspicions.clone() };
        let mut store = BTreeMap::from([("m".to_owned(), encode(&old))]);
        let mut read = load(&store);
        assert_eq!(read.suspicions, suspicions);
        apply(&mut store, read.take_changes());
        let names: Vec<&str> = store.keys().map(String::as_str).collect();
        assert_eq!(names, ["m", "s/0", "s/1", "s/2"]);
        let meta: Meta = postcard::from_bytes(&store["m"]).unwrap();
        assert!(meta.suspicions.is_empty(), "the meta part no longer holds them");
        assert_eq!(load(&store), read);
        assert_eq!(load(&store).suspicions, suspicions);
    }

    /// The parts are written from borrowed views: the bytes are those of
    /// the owned types they are read back as.
    #[test]
    fn borrowed_parts_encode_as_the_owned_ones() {
        let mut s = sample();
        s.record_suspicion(Suspicion {
            decision_event_id: "d-1".into(),
            transaction_id: "tx-1".into(),
            merchant_id: "m-1".into(),
            at_ms: 7,
            confirmed: true,
        });
        let owned = Meta {
            lock: s.lock.clone(),
            confirmed_merchants: s.confirmed_merchants.clone(),
            suspicions: s.suspicions.clone(),
        };
        let borrowed =
            MetaRef { lock: &s.lock, confirmed_merchants: &s.confirmed_merchants, suspicions: &s.suspicions };
        assert_eq!(encode(&borrowed), encode(&owned));
        let transaction = s.history.recent(1).next().unwrap();
        let owned = HistoryEntry { seq: 2, transaction: transaction.clone() };
        assert_eq!(encode(&HistoryEntryRef { seq: 2, transaction }), encode(&owned));
    }

    #[test]
    fn a_meta_part_written_before_suspicions_still_reads() {
        #[derive(Serialize)]
        struct OldMeta {
            lock: Option<Lock>,
            confirmed_merchants: Vec<String>,
        }
        let old = postcard::to_stdvec(&OldMeta { lock: None, confirmed_merchants: vec!["m-a".into()] }).unwrap();
        let back = AccountState::from_parts([("m", old.as_slice())]).unwrap();
        assert_eq!(back.confirmed_merchants, ["m-a"]);
        assert!(back.suspicions.is_empty());
    }
}
