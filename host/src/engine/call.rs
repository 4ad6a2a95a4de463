//! [`CallCtx`]: the account state and event time one rule evaluation runs
//! against, and what the account imports of both contracts (and native
//! rules, through [`AccountHost`]) act on.
//!
//! It is a concept of its own because it is where a rule's writes are
//! journaled and charged against its state quota, whichever backend runs
//! the rule: the sandbox's imports ([`super::wasm`]) and native rules call
//! the same methods, so both see the same state semantics.

use std::sync::Arc;

use weir_sdk::state::{History, Journal, RuleState};
use weir_sdk::{AccountHost, LogLevel};

use super::RuleError;
use crate::events::{ListVersion, SharedStr};
use crate::lists::ListSet;

/// How many different lists one evaluation may read.
pub const MAX_LISTS_READ: usize = 8;

/// The account state and event time one rule evaluation runs against.
///
/// The rule's own state is moved in and out (no copy); its writes are
/// recorded in a journal, so a failed evaluation is undone at the cost of
/// what it wrote.
#[derive(Default)]
pub(crate) struct CallCtx {
    state: RuleState,
    journal: Journal,
    /// The evaluating rule's state quota, the bytes it has written so far
    /// in this evaluation, and whether a write was refused for the quota.
    quota: weir_sdk::limits::StateQuota,
    written: usize,
    over_quota: bool,
    pub(super) history: History,
    now_ms: i64,
    /// For log lines; a buffer reused from transaction to transaction.
    pub(super) transaction_id: String,
    /// The runtime lists in effect, and the lists the evaluation asked
    /// about (names reused from evaluation to evaluation; `lists_asked`
    /// are in use), each with its version if it has entries.
    lists: Arc<ListSet>,
    lists_read: Vec<(String, Option<(SharedStr, u64)>)>,
    lists_asked: usize,
    /// Whether the evaluation asked about more than [`MAX_LISTS_READ`].
    lists_over: bool,
}

impl CallCtx {
    /// Starts a transaction: its id (for log lines), its event time, and
    /// its account's history, lent for the transaction.
    pub(super) fn enter(&mut self, transaction_id: &str, now_ms: i64, history: History) {
        self.history = history;
        self.now_ms = now_ms;
        self.transaction_id.clear();
        self.transaction_id.push_str(transaction_id);
    }

    /// Ends the transaction, handing its account's history back.
    pub(super) fn leave(&mut self) -> History {
        std::mem::take(&mut self.history)
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.state.get(key).map(str::to_owned)
    }

    /// Writes `key`; false (nothing written) once the evaluation has gone
    /// over its state quota.
    pub(super) fn set(&mut self, key: &str, value: &str) -> bool {
        let ok = self.charge(key.len() + value.len());
        if ok {
            self.state.journaled(&mut self.journal).set(key, value)
        }
        ok
    }

    /// Counts `bytes` written by this evaluation; false (and the write is
    /// refused) once they pass the whole quota, so a rule writing in a loop
    /// cannot make the host hold more than its quota before it is stopped.
    fn charge(&mut self, bytes: usize) -> bool {
        self.written += bytes;
        self.over_quota |= self.written > self.quota.bytes;
        !self.over_quota
    }

    /// Starts an evaluation of a rule with its `state` (moved in) and its
    /// `quota`.
    pub(super) fn begin(&mut self, state: RuleState, quota: weir_sdk::limits::StateQuota) {
        self.state = state;
        self.quota = quota;
        self.written = 0;
        self.over_quota = false;
        self.lists_asked = 0;
        self.lists_over = false;
    }

    /// The runtime lists the next evaluations read.
    pub(super) fn set_lists(&mut self, lists: Arc<ListSet>) {
        self.lists = lists;
    }

    /// Whether `value` is on `list` at the transaction's event time. Once
    /// the evaluation has asked about more than [`MAX_LISTS_READ`]
    /// different lists, false, and the evaluation fails
    /// ([`CallCtx::check_lists`]).
    pub(super) fn list_contains(&mut self, list: &str, value: &str) -> bool {
        let found = self.lists.lookup(list, value, self.now_ms);
        let asked = &self.lists_read[..self.lists_asked];
        if !asked.iter().any(|(name, _)| name == list) {
            if self.lists_asked == MAX_LISTS_READ {
                self.lists_over = true;
                return false;
            }
            let version = found.map(|(_, name, v)| (name.clone(), v));
            match self.lists_read.get_mut(self.lists_asked) {
                Some((name, v)) => {
                    name.clear();
                    name.push_str(list);
                    *v = version;
                }
                None => self.lists_read.push((list.to_owned(), version)),
            }
            self.lists_asked += 1;
        }
        found.is_some_and(|(on, _, _)| on)
    }

    /// Whether the evaluation kept to [`MAX_LISTS_READ`] lists.
    pub(super) fn check_lists(&self) -> Result<(), RuleError> {
        if self.lists_over { Err(RuleError::TooManyLists(MAX_LISTS_READ)) } else { Ok(()) }
    }

    /// The lists with entries this evaluation read, with their versions.
    pub(super) fn lists_read(&self) -> Vec<ListVersion> {
        self.lists_read[..self.lists_asked]
            .iter()
            .filter_map(|(_, read)| {
                read.as_ref().map(|(list, version)| ListVersion { list: list.clone(), version: *version })
            })
            .collect()
    }

    /// Whether the evaluation left the rule's state within its quota.
    pub(super) fn check_quota(&self) -> Result<(), RuleError> {
        if self.over_quota {
            let quota = self.quota.bytes;
            return Err(RuleError::StateQuota(format!("wrote more than the whole quota of {quota} bytes")));
        }
        if self.journal.is_empty() {
            return Ok(());
        }
        self.quota.check(&self.state).map_err(RuleError::StateQuota)
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.state.journaled(&mut self.journal).remove(key)
    }

    /// Adds a point; false (nothing added) once the evaluation has gone
    /// over its state quota.
    pub(super) fn window_add(&mut self, name: &str, value: i64) -> bool {
        let now = self.now_ms;
        let ok = self.charge(name.len() + 16);
        if ok {
            self.state.journaled(&mut self.journal).window_add(now, name, value)
        }
        ok
    }

    /// Window queries may lengthen a series' retention, which is a write.
    pub(super) fn window_sum(&mut self, name: &str, window_ms: u64) -> i64 {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).window_sum(now, name, window_ms)
    }

    pub(super) fn window_count(&mut self, name: &str, window_ms: u64) -> u32 {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).window_count(now, name, window_ms)
    }

    /// Adds a member to a distinct set; false (nothing added) once the
    /// evaluation has gone over its state quota.
    pub(super) fn distinct_add(&mut self, name: &str, member: &str) -> bool {
        let now = self.now_ms;
        let ok = self.charge(name.len() + member.len() + 8);
        if ok {
            self.state.journaled(&mut self.journal).distinct_add(now, name, member)
        }
        ok
    }

    /// Counting may lengthen a set's retention, which is a write.
    pub(super) fn distinct_count(&mut self, name: &str, window_ms: u64) -> u32 {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).distinct_count(now, name, window_ms)
    }

    pub(super) fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        self.state.last_seen(name, member)
    }

    /// The rule state to keep — as written on success, as it was on
    /// failure — and whether it changed.
    pub(super) fn finish(&mut self, ok: bool) -> (RuleState, bool) {
        let changed = ok && !self.journal.is_empty();
        if !ok {
            self.state.undo(&mut self.journal);
        }
        self.journal.clear();
        (std::mem::take(&mut self.state), changed)
    }
}

impl AccountHost for CallCtx {
    fn get(&self, key: &str) -> Option<String> {
        CallCtx::get(self, key)
    }
    fn set(&mut self, key: &str, value: &str) {
        CallCtx::set(self, key, value);
    }
    fn remove(&mut self, key: &str) {
        CallCtx::remove(self, key)
    }
    fn window_add(&mut self, name: &str, value: i64) {
        CallCtx::window_add(self, name, value);
    }
    fn window_sum(&mut self, name: &str, window_ms: u64) -> i64 {
        CallCtx::window_sum(self, name, window_ms)
    }
    fn window_count(&mut self, name: &str, window_ms: u64) -> u32 {
        CallCtx::window_count(self, name, window_ms)
    }
    fn distinct_add(&mut self, name: &str, member: &str) {
        CallCtx::distinct_add(self, name, member);
    }
    fn distinct_count(&mut self, name: &str, window_ms: u64) -> u32 {
        CallCtx::distinct_count(self, name, window_ms)
    }
    fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        CallCtx::last_seen(self, name, member)
    }
    fn history(&self, limit: u32) -> Vec<weir_sdk::PastTransaction> {
        self.history.recent(limit).cloned().collect()
    }
    fn history_encoded(&self, limit: u32, out: &mut Vec<u8>) {
        weir_sdk::wire::encode_history(out, self.history.recent(limit))
    }
    fn in_list(&mut self, list: &str, value: &str) -> bool {
        CallCtx::list_contains(self, list, value)
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        let message = weir_sdk::limits::clean(message, weir_sdk::limits::LOG_LINE_MAX);
        let tx = self.transaction_id.as_str();
        match level {
            LogLevel::Debug => tracing::debug!(transaction_id = tx, "{message}"),
            LogLevel::Info => tracing::info!(transaction_id = tx, "{message}"),
            LogLevel::Warn => tracing::warn!(transaction_id = tx, "{message}"),
        }
    }
}
