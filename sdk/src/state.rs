//! The account state model a rule sees, with its exact semantics.
//!
//! [`RuleState`] is one rule's state for one account: small key/values and
//! event-time series. [`History`] is the account's recent transactions,
//! shared read-only by all rules. The native test harness and the weir host
//! both use these types, so a rule's unit tests run against the same window
//! arithmetic that production uses.
//!
//! Limits: a series keeps its points for the longest window it has been
//! queried with (until its first query, [`SERIES_RETENTION_MS`]), and at
//! most [`SERIES_MAX_POINTS`] points; the history keeps the last
//! [`HISTORY_LEN`] transactions. Older data is dropped when new data arrives,
//! so a velocity rule over one hour keeps one hour of points per account.

use std::collections::{BTreeMap, VecDeque};

use crate::types::PastTransaction;

/// The longest a series point is kept, in event time: 31 days.
pub const SERIES_RETENTION_MS: i64 = 31 * 24 * 60 * 60 * 1000;
/// The most points a single series keeps.
pub const SERIES_MAX_POINTS: usize = 4096;
/// How many earlier transactions the account history keeps.
pub const HISTORY_LEN: usize = 32;

/// One rule's state for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RuleState {
    values: BTreeMap<String, String>,
    series: BTreeMap<String, Series>,
}

/// An event-time series: points (event time in ms, value), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Series {
    /// The longest window this series was queried with; points older than
    /// that can never be counted again and are dropped.
    retention_ms: i64,
    points: VecDeque<(i64, i64)>,
}

impl Default for Series {
    fn default() -> Self {
        Series { retention_ms: SERIES_RETENTION_MS, points: VecDeque::new() }
    }
}

/// How to undo one write to a [`RuleState`]; see [`Journal`]. Names are
/// ranges of the journal's name buffer, so recording allocates nothing once
/// the journal has grown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// The key held `old` (or nothing).
    Value { key: Name, old: Option<String> },
    /// The series did not exist.
    NewSeries { name: Name },
    /// The series had retention `old`.
    Retention { name: Name, old: i64 },
    /// A point was inserted at `at` in the series.
    Inserted { name: Name, at: usize },
    /// `point` was dropped from the front of the series.
    Popped { name: Name, point: (i64, i64) },
}

/// Where a name lies in [`Journal::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    start: u32,
    len: u32,
}

/// The writes of one evaluation, recorded so they can be undone: a failed
/// evaluation leaves the state exactly as it was, at the cost of what it
/// wrote (not of the whole state, which a copy taken up front would cost).
#[derive(Debug, Default)]
pub struct Journal {
    undo: Vec<Undo>,
    names: String,
}

impl Journal {
    /// Whether anything was written since the journal was last cleared.
    pub fn is_empty(&self) -> bool {
        self.undo.is_empty()
    }

    /// Forgets the recorded writes: they stay.
    pub fn clear(&mut self) {
        self.undo.clear();
        self.names.clear();
    }

    fn name(&mut self, name: &str) -> Name {
        // The previous record is usually about the same series or key.
        if let Some(last) = self.undo.last().map(Undo::name)
            && self.get(last) == name
        {
            return last;
        }
        let start = self.names.len() as u32;
        self.names.push_str(name);
        Name { start, len: name.len() as u32 }
    }

    fn get(&self, name: Name) -> &str {
        &self.names[name.start as usize..(name.start + name.len) as usize]
    }
}

impl Undo {
    fn name(&self) -> Name {
        match *self {
            Undo::Value { key, .. } => key,
            Undo::NewSeries { name } | Undo::Retention { name, .. } => name,
            Undo::Inserted { name, .. } | Undo::Popped { name, .. } => name,
        }
    }
}

/// Where the write operations report what they changed: a [`Journal`], or
/// nowhere (`()`).
trait Record {
    fn record(&mut self, name: &str, undo: impl FnOnce(Name) -> Undo);
}

impl Record for () {
    fn record(&mut self, _: &str, _: impl FnOnce(Name) -> Undo) {}
}

impl Record for Journal {
    fn record(&mut self, name: &str, undo: impl FnOnce(Name) -> Undo) {
        let name = self.name(name);
        self.undo.push(undo(name))
    }
}

impl RuleState {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.set_in(key, value, &mut ())
    }

    pub fn remove(&mut self, key: &str) {
        self.remove_in(key, &mut ())
    }

    /// Adds a point at event time `now_ms`, dropping points that fell out of
    /// retention or over the point limit.
    pub fn window_add(&mut self, now_ms: i64, name: &str, value: i64) {
        self.window_add_in(now_ms, name, value, &mut ())
    }

    pub fn window_sum(&mut self, now_ms: i64, name: &str, window_ms: u64) -> i64 {
        self.window_sum_in(now_ms, name, window_ms, &mut ())
    }

    pub fn window_count(&mut self, now_ms: i64, name: &str, window_ms: u64) -> u32 {
        self.window_count_in(now_ms, name, window_ms, &mut ())
    }

    /// The same operations, recording in `journal` how to undo them.
    pub fn journaled<'a>(&'a mut self, journal: &'a mut Journal) -> Journaled<'a> {
        Journaled { state: self, journal }
    }

    /// Undoes the writes recorded in `journal`, newest first, and clears it.
    pub fn undo(&mut self, journal: &mut Journal) {
        while let Some(undo) = journal.undo.pop() {
            let name = journal.get(undo.name());
            match undo {
                Undo::Value { old: Some(old), .. } => {
                    self.values.insert(name.to_owned(), old);
                }
                Undo::Value { old: None, .. } => {
                    self.values.remove(name);
                }
                Undo::NewSeries { .. } => {
                    self.series.remove(name);
                }
                Undo::Retention { old, .. } => {
                    if let Some(series) = self.series.get_mut(name) {
                        series.retention_ms = old;
                    }
                }
                Undo::Inserted { at, .. } => {
                    if let Some(series) = self.series.get_mut(name) {
                        series.points.remove(at);
                    }
                }
                Undo::Popped { point, .. } => {
                    if let Some(series) = self.series.get_mut(name) {
                        series.points.push_front(point);
                    }
                }
            }
        }
        journal.clear();
    }

    fn set_in(&mut self, key: &str, value: &str, r: &mut impl Record) {
        match self.values.get_mut(key) {
            Some(old) if old == value => {}
            Some(old) => {
                let previous = std::mem::replace(old, value.to_owned());
                r.record(key, |key| Undo::Value { key, old: Some(previous) });
            }
            None => {
                self.values.insert(key.to_owned(), value.to_owned());
                r.record(key, |key| Undo::Value { key, old: None });
            }
        }
    }

    fn remove_in(&mut self, key: &str, r: &mut impl Record) {
        if let Some(old) = self.values.remove(key) {
            r.record(key, |key| Undo::Value { key, old: Some(old) });
        }
    }

    fn window_add_in(&mut self, now_ms: i64, name: &str, value: i64, r: &mut impl Record) {
        let series = match self.series.get_mut(name) {
            Some(series) => series,
            None => {
                r.record(name, |name| Undo::NewSeries { name });
                self.series.entry(name.to_owned()).or_default()
            }
        };
        // Events of one account may arrive out of event-time order: keep the
        // points sorted (a late point is inserted where it belongs).
        let at = series.points.partition_point(|&(t, _)| t <= now_ms);
        series.points.insert(at, (now_ms, value));
        r.record(name, |name| Undo::Inserted { name, at });
        let horizon = now_ms.saturating_sub(series.retention_ms);
        while series.points.front().is_some_and(|&(t, _)| t <= horizon) || series.points.len() > SERIES_MAX_POINTS {
            if let Some(point) = series.points.pop_front() {
                r.record(name, |name| Undo::Popped { name, point });
            }
        }
    }

    /// Points of `name` in the window `(now_ms - window_ms, now_ms]`. The
    /// query extends the series' retention to `window_ms` if it is longer.
    fn window(
        &mut self,
        now_ms: i64,
        name: &str,
        window_ms: u64,
        r: &mut impl Record,
    ) -> impl Iterator<Item = i64> + '_ {
        let window_ms = i64::try_from(window_ms).unwrap_or(i64::MAX).min(SERIES_RETENTION_MS);
        let start = now_ms.saturating_sub(window_ms);
        let series = self.series.get_mut(name);
        let points = series.map(|series| {
            if (series.retention_ms == SERIES_RETENTION_MS || series.retention_ms < window_ms)
                && series.retention_ms != window_ms
            {
                let old = series.retention_ms;
                r.record(name, |name| Undo::Retention { name, old });
                series.retention_ms = window_ms;
            }
            &series.points
        });
        points
            .into_iter()
            .flat_map(|points| points.iter().rev())
            .filter(move |&&(t, _)| t <= now_ms)
            .take_while(move |&&(t, _)| t > start)
            .map(|&(_, v)| v)
    }

    fn window_sum_in(&mut self, now_ms: i64, name: &str, window_ms: u64, r: &mut impl Record) -> i64 {
        self.window(now_ms, name, window_ms, r).fold(0i64, |acc, v| acc.saturating_add(v))
    }

    fn window_count_in(&mut self, now_ms: i64, name: &str, window_ms: u64, r: &mut impl Record) -> u32 {
        u32::try_from(self.window(now_ms, name, window_ms, r).count()).unwrap_or(u32::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.series.is_empty()
    }

    /// What this state holds: bytes of keys and values, series names and
    /// points (16 bytes each).
    pub fn usage(&self) -> StateUsage {
        let values: usize = self.values.iter().map(|(k, v)| k.len() + v.len()).sum();
        let series: usize = self.series.iter().map(|(name, s)| name.len() + 16 * s.points.len()).sum();
        StateUsage { bytes: values + series, keys: self.values.len(), series: self.series.len() }
    }
}

/// What a [`RuleState`] holds ([`RuleState::usage`]): what the per-rule
/// state quota is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateUsage {
    /// Bytes of keys, values, series names and points (16 bytes each).
    pub bytes: usize,
    /// Key/value entries.
    pub keys: usize,
    /// Series.
    pub series: usize,
}

/// A [`RuleState`] whose writes are recorded in a [`Journal`]
/// ([`RuleState::journaled`]).
pub struct Journaled<'a> {
    state: &'a mut RuleState,
    journal: &'a mut Journal,
}

impl Journaled<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.state.get(key)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.state.set_in(key, value, self.journal)
    }

    pub fn remove(&mut self, key: &str) {
        self.state.remove_in(key, self.journal)
    }

    pub fn window_add(&mut self, now_ms: i64, name: &str, value: i64) {
        self.state.window_add_in(now_ms, name, value, self.journal)
    }

    pub fn window_sum(&mut self, now_ms: i64, name: &str, window_ms: u64) -> i64 {
        self.state.window_sum_in(now_ms, name, window_ms, self.journal)
    }

    pub fn window_count(&mut self, now_ms: i64, name: &str, window_ms: u64) -> u32 {
        self.state.window_count_in(now_ms, name, window_ms, self.journal)
    }
}

/// An account's recent transactions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct History(VecDeque<PastTransaction>);

impl History {
    /// Records a transaction once every rule has seen it.
    pub fn push(&mut self, tx: PastTransaction) {
        self.0.push_front(tx);
        self.0.truncate(HISTORY_LEN);
    }

    pub fn recent(&self, limit: u32) -> impl ExactSizeIterator<Item = &PastTransaction> {
        self.0.iter().take(limit as usize)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_only_points_inside_the_window() {
        let mut s = RuleState::default();
        s.window_add(1_000, "n", 1);
        s.window_add(5_000, "n", 2);
        s.window_add(9_000, "n", 4);
        // (9000 - 5000, 9000] holds 9000 only: the boundary is exclusive.
        assert_eq!(s.window_count(9_000, "n", 4_000), 1);
        assert_eq!(s.window_sum(9_000, "n", 4_001), 6);
        assert_eq!(s.window_sum(9_000, "n", 60_000), 7);
        assert_eq!(s.window_sum(9_000, "other", 60_000), 0);
    }

    #[test]
    fn late_events_are_counted_in_their_window() {
        let mut s = RuleState::default();
        for t in [100_000, 200_000, 50_000, 210_000] {
            s.window_add(t, "n", 1);
        }
        // (160 s, 210 s] holds 200 s and 210 s, whatever the arrival order.
        assert_eq!(s.window_count(210_000, "n", 50_000), 2);
        // A late event sees the window around its own time.
        assert_eq!(s.window_count(100_000, "n", 60_000), 2);
    }

    #[test]
    fn window_drops_points_past_retention() {
        let mut s = RuleState::default();
        s.window_add(0, "n", 1);
        s.window_add(SERIES_RETENTION_MS + 1, "n", 1);
        assert_eq!(s.window_count(SERIES_RETENTION_MS + 1, "n", u64::MAX), 1);
    }

    #[test]
    fn undoing_a_journal_restores_the_state_exactly() {
        let mut s = RuleState::default();
        s.set("kept", "1");
        s.set("changed", "old");
        for t in 0..20 {
            s.window_add(t * 1_000, "n", 1);
        }
        s.window_count(19_000, "n", 5_000);
        let before = s.clone();
        let mut journal = Journal::default();
        {
            let mut j = s.journaled(&mut journal);
            j.set("changed", "new");
            j.set("added", "x");
            j.remove("kept");
            j.window_add(25_000, "n", 7); // drops points older than the 5 s retention
            j.window_add(3_000, "late", 2);
            j.window_count(25_000, "late", 60_000);
            j.window_sum(25_000, "n", 10_000); // a longer retention
        }
        assert!(!journal.is_empty());
        assert_ne!(s, before);
        s.undo(&mut journal);
        assert_eq!(s, before);
        assert!(journal.is_empty());
    }

    #[test]
    fn reads_and_unchanged_writes_journal_nothing() {
        let mut s = RuleState::default();
        s.set("k", "v");
        s.window_add(1_000, "n", 1);
        s.window_count(1_000, "n", 60_000);
        let mut journal = Journal::default();
        let mut j = s.journaled(&mut journal);
        assert_eq!(j.get("k"), Some("v"));
        j.set("k", "v");
        j.remove("absent");
        assert_eq!(j.window_count(2_000, "n", 60_000), 1);
        assert!(journal.is_empty());
    }

    #[test]
    fn series_keeps_only_its_longest_queried_window() {
        let mut s = RuleState::default();
        for t in 0..100 {
            s.window_add(t * 1_000, "n", 1);
            s.window_count(t * 1_000, "n", 10_000);
        }
        // Points older than the 10 s window were dropped as new ones came.
        assert_eq!(s.series["n"].points.len(), 10);
        assert_eq!(s.window_count(99_000, "n", 60_000), 10);
    }
}
