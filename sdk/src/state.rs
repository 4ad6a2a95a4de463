//! The account state model a rule sees, with its exact semantics.
//!
//! [`RuleState`] is one rule's state for one account (or, for an entity
//! rule, for one device, merchant, counterparty or card): small key/values,
//! event-time series, and distinct sets (which members were seen, and when
//! last). [`History`] is the account's recent transactions,
//! shared read-only by all rules. The native test harness and the weir host
//! both use these types, so a rule's unit tests run against the same window
//! arithmetic that production uses.
//!
//! Limits: a series keeps its points for the longest window it has been
//! queried with (until its first query, [`SERIES_RETENTION_MS`]), and at
//! most [`SERIES_MAX_POINTS`] points; a distinct set likewise keeps its
//! members for its longest queried window, at most [`SERIES_MAX_POINTS`]
//! of them (the least recently seen go first); the history keeps the last
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
    /// Not in the derived encoding, which stays the one of states written
    /// before sets existed: a host stores them after it ([`Sets`]).
    #[cfg_attr(feature = "serde", serde(skip))]
    sets: Sets,
}

/// A rule state's distinct sets, by name: what a host stores after the rest
/// of the state ([`RuleState::sets`], [`RuleState::with_sets`]), so states
/// written before sets existed still read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sets(BTreeMap<String, Distinct>);

impl Sets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A distinct set: each member with the event time it was last added.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "DistinctRepr", into = "DistinctRepr"))]
struct Distinct {
    /// The longest window this set was queried with; members last seen
    /// before that are dropped.
    retention_ms: i64,
    members: BTreeMap<String, i64>,
    /// What the members hold for the quota (each its bytes and 8), kept
    /// as they change so a quota check does not walk the set.
    bytes: usize,
    /// No member was last seen before this: the set is walked for members
    /// past its retention only once one may be.
    oldest: i64,
}

/// What a [`Distinct`] is stored as; the rest is derived on reading.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct DistinctRepr {
    retention_ms: i64,
    members: BTreeMap<String, i64>,
}

#[cfg(feature = "serde")]
impl From<DistinctRepr> for Distinct {
    fn from(r: DistinctRepr) -> Distinct {
        let mut set = Distinct { retention_ms: r.retention_ms, ..Distinct::default() };
        for (member, t) in r.members {
            set.insert(member, t);
        }
        set
    }
}

#[cfg(feature = "serde")]
impl From<Distinct> for DistinctRepr {
    fn from(d: Distinct) -> DistinctRepr {
        DistinctRepr { retention_ms: d.retention_ms, members: d.members }
    }
}

/// Equal when retention and members are: the derived fields follow them.
impl PartialEq for Distinct {
    fn eq(&self, other: &Self) -> bool {
        self.retention_ms == other.retention_ms && self.members == other.members
    }
}

impl Eq for Distinct {}

impl Default for Distinct {
    fn default() -> Self {
        Distinct { retention_ms: SERIES_RETENTION_MS, members: BTreeMap::new(), bytes: 0, oldest: i64::MAX }
    }
}

impl Distinct {
    /// Sets `member`'s last sighting to `t`; its previous one, if any.
    fn insert(&mut self, member: String, t: i64) -> Option<i64> {
        self.oldest = self.oldest.min(t);
        let len = member.len();
        let old = self.members.insert(member, t);
        if old.is_none() {
            self.bytes += len + 8;
        }
        old
    }

    fn remove(&mut self, member: &str) -> Option<i64> {
        let old = self.members.remove(member);
        if old.is_some() {
            self.bytes -= member.len() + 8;
        }
        old
    }
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
    /// The set did not exist.
    NewSet { name: Name },
    /// The set had retention `old`.
    SetRetention { name: Name, old: i64 },
    /// `member` of the set was last seen at `old` (or was not in it).
    Member { name: Name, member: Name, old: Option<i64> },
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

    /// A second name for a record (a set's member), always appended.
    fn member(&mut self, member: &str) -> Name {
        let start = self.names.len() as u32;
        self.names.push_str(member);
        Name { start, len: member.len() as u32 }
    }
}

impl Undo {
    fn name(&self) -> Name {
        match *self {
            Undo::Value { key, .. } => key,
            Undo::NewSeries { name } | Undo::Retention { name, .. } => name,
            Undo::Inserted { name, .. } | Undo::Popped { name, .. } => name,
            Undo::NewSet { name } | Undo::SetRetention { name, .. } | Undo::Member { name, .. } => name,
        }
    }
}

/// Where the write operations report what they changed: a [`Journal`], or
/// nowhere (`()`).
trait Record {
    fn record(&mut self, name: &str, undo: impl FnOnce(Name) -> Undo);
    /// Records that `member` of the set `name` was last seen at `old`.
    fn member(&mut self, name: &str, member: &str, old: Option<i64>);
}

impl Record for () {
    fn record(&mut self, _: &str, _: impl FnOnce(Name) -> Undo) {}
    fn member(&mut self, _: &str, _: &str, _: Option<i64>) {}
}

impl Record for Journal {
    fn record(&mut self, name: &str, undo: impl FnOnce(Name) -> Undo) {
        let name = self.name(name);
        self.undo.push(undo(name))
    }
    fn member(&mut self, name: &str, member: &str, old: Option<i64>) {
        let name = self.name(name);
        let member = Journal::member(self, member);
        self.undo.push(Undo::Member { name, member, old })
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

    /// Records `member` in the distinct set `name` as seen at `now_ms`,
    /// dropping members last seen before the set's retention, and the
    /// least recently seen over the member limit.
    pub fn distinct_add(&mut self, now_ms: i64, name: &str, member: &str) {
        self.distinct_add_in(now_ms, name, member, &mut ())
    }

    /// How many members of the set `name` were last seen in the window
    /// `(now_ms - window_ms, now_ms]`. Extends the set's retention like a
    /// series query.
    pub fn distinct_count(&mut self, now_ms: i64, name: &str, window_ms: u64) -> u32 {
        self.distinct_count_in(now_ms, name, window_ms, &mut ())
    }

    /// When `member` of the set `name` was last seen, if it is in the set.
    pub fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        self.sets.0.get(name)?.members.get(member).copied()
    }

    /// The distinct sets, for a host to store after the rest of the state.
    pub fn sets(&self) -> &Sets {
        &self.sets
    }

    /// This state with `sets`, as a host read them back.
    pub fn with_sets(mut self, sets: Sets) -> RuleState {
        self.sets = sets;
        self
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
                Undo::NewSet { .. } => {
                    self.sets.0.remove(name);
                }
                Undo::SetRetention { old, .. } => {
                    if let Some(set) = self.sets.0.get_mut(name) {
                        set.retention_ms = old;
                    }
                }
                Undo::Member { member, old, .. } => {
                    let member = journal.get(member);
                    if let Some(set) = self.sets.0.get_mut(name) {
                        match old {
                            Some(t) => set.insert(member.to_owned(), t),
                            None => set.remove(member),
                        };
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

    fn distinct_add_in(&mut self, now_ms: i64, name: &str, member: &str, r: &mut impl Record) {
        let set = match self.sets.0.get_mut(name) {
            Some(set) => set,
            None => {
                r.record(name, |name| Undo::NewSet { name });
                self.sets.0.entry(name.to_owned()).or_default()
            }
        };
        match set.members.get_mut(member) {
            Some(t) if *t >= now_ms => {}
            Some(t) => {
                let old = std::mem::replace(t, now_ms);
                r.member(name, member, Some(old));
            }
            None => {
                set.insert(member.to_owned(), now_ms);
                r.member(name, member, None);
            }
        }
        let horizon = now_ms.saturating_sub(set.retention_ms);
        if set.oldest > horizon && set.members.len() <= SERIES_MAX_POINTS {
            return;
        }
        // Someone may be past the retention, or the set is over its size.
        let gone: Vec<(String, i64)> =
            set.members.iter().filter(|&(_, &t)| t <= horizon).map(|(m, &t)| (m.clone(), t)).collect();
        for (m, t) in gone {
            set.remove(&m);
            r.member(name, &m, Some(t));
        }
        while set.members.len() > SERIES_MAX_POINTS {
            // The least recently seen goes first; of equals, the least.
            let Some((oldest, t)) = set.members.iter().min_by_key(|&(m, &t)| (t, m)).map(|(m, &t)| (m.clone(), t))
            else {
                break;
            };
            set.remove(&oldest);
            r.member(name, &oldest, Some(t));
        }
        set.oldest = set.members.values().copied().min().unwrap_or(i64::MAX);
    }

    fn distinct_count_in(&mut self, now_ms: i64, name: &str, window_ms: u64, r: &mut impl Record) -> u32 {
        let window_ms = i64::try_from(window_ms).unwrap_or(i64::MAX).min(SERIES_RETENTION_MS);
        let start = now_ms.saturating_sub(window_ms);
        let Some(set) = self.sets.0.get_mut(name) else {
            return 0;
        };
        if (set.retention_ms == SERIES_RETENTION_MS || set.retention_ms < window_ms) && set.retention_ms != window_ms {
            let old = set.retention_ms;
            r.record(name, |name| Undo::SetRetention { name, old });
            set.retention_ms = window_ms;
        }
        let n = set.members.values().filter(|&&t| t > start && t <= now_ms).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.series.is_empty() && self.sets.is_empty()
    }

    /// What this state holds: bytes of keys and values, series names and
    /// points (16 bytes each), set names and members (their bytes and 8
    /// for the time each).
    pub fn usage(&self) -> StateUsage {
        let values: usize = self.values.iter().map(|(k, v)| k.len() + v.len()).sum();
        let series: usize = self.series.iter().map(|(name, s)| name.len() + 16 * s.points.len()).sum();
        let sets: usize = self.sets.0.iter().map(|(name, s)| name.len() + s.bytes).sum();
        StateUsage {
            bytes: values + series + sets,
            keys: self.values.len(),
            series: self.series.len() + self.sets.0.len(),
        }
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

    pub fn distinct_add(&mut self, now_ms: i64, name: &str, member: &str) {
        self.state.distinct_add_in(now_ms, name, member, self.journal)
    }

    pub fn distinct_count(&mut self, now_ms: i64, name: &str, window_ms: u64) -> u32 {
        self.state.distinct_count_in(now_ms, name, window_ms, self.journal)
    }

    pub fn last_seen(&self, name: &str, member: &str) -> Option<i64> {
        self.state.last_seen(name, member)
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
    fn distinct_counts_members_last_seen_inside_the_window() {
        let mut s = RuleState::default();
        s.distinct_add(1_000, "accounts", "a");
        s.distinct_add(2_000, "accounts", "b");
        s.distinct_add(3_000, "accounts", "a"); // seen again: counted once
        assert_eq!(s.distinct_count(3_000, "accounts", 60_000), 2);
        // (1500, 3000] holds a (last seen 3000) and b (2000).
        assert_eq!(s.distinct_count(3_000, "accounts", 1_500), 2);
        // (2000, 3000] holds a only: the boundary is exclusive.
        assert_eq!(s.distinct_count(3_000, "accounts", 1_000), 1);
        assert_eq!(s.last_seen("accounts", "a"), Some(3_000));
        assert_eq!(s.last_seen("accounts", "c"), None);
        assert_eq!(s.distinct_count(3_000, "other", 60_000), 0);
        // An earlier sighting does not move the last one back.
        s.distinct_add(500, "accounts", "a");
        assert_eq!(s.last_seen("accounts", "a"), Some(3_000));
    }

    #[test]
    fn distinct_sets_keep_their_longest_window_and_a_bounded_count() {
        let mut s = RuleState::default();
        s.distinct_add(0, "d", "old");
        s.distinct_count(0, "d", 10_000);
        s.distinct_add(20_000, "d", "new");
        assert_eq!(s.last_seen("d", "old"), None, "dropped past the 10 s retention");
        for i in 0..SERIES_MAX_POINTS + 5 {
            s.distinct_add(30_000 + i as i64, "many", &format!("m{i}"));
        }
        assert_eq!(s.distinct_count(40_000, "many", 60_000) as usize, SERIES_MAX_POINTS);
        assert_eq!(s.last_seen("many", "m0"), None, "the least recently seen went first");
        assert!(s.last_seen("many", "m5").is_some());
        let bytes: usize = s.sets.0["many"].members.keys().map(|m| m.len() + 8).sum();
        assert_eq!(s.sets.0["many"].bytes, bytes, "the byte count follows the members");
    }

    #[test]
    fn undoing_distinct_writes_restores_the_sets() {
        let mut s = RuleState::default();
        s.distinct_add(1_000, "d", "a");
        s.distinct_count(1_000, "d", 5_000);
        let before = s.clone();
        let mut journal = Journal::default();
        {
            let mut j = s.journaled(&mut journal);
            j.distinct_add(2_000, "d", "a");
            j.distinct_add(2_000, "d", "b");
            j.distinct_add(9_000, "d", "c"); // drops a and b, past the 5 s retention
            j.distinct_add(9_000, "fresh", "x");
            j.distinct_count(9_000, "d", 60_000);
        }
        assert_ne!(s, before);
        s.undo(&mut journal);
        assert_eq!(s, before);
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
