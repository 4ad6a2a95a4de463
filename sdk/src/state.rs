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

impl RuleState {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_owned(), value.to_owned());
    }

    pub fn remove(&mut self, key: &str) {
        self.values.remove(key);
    }

    /// Adds a point at event time `now_ms`, dropping points that fell out of
    /// retention or over the point limit.
    pub fn window_add(&mut self, now_ms: i64, name: &str, value: i64) {
        let series = match self.series.get_mut(name) {
            Some(series) => series,
            None => self.series.entry(name.to_owned()).or_default(),
        };
        // Events of one account may arrive out of event-time order: keep the
        // points sorted (a late point is inserted where it belongs).
        let at = series.points.partition_point(|&(t, _)| t <= now_ms);
        series.points.insert(at, (now_ms, value));
        let horizon = now_ms.saturating_sub(series.retention_ms);
        while series.points.front().is_some_and(|&(t, _)| t <= horizon) || series.points.len() > SERIES_MAX_POINTS {
            series.points.pop_front();
        }
    }

    /// Points of `name` in the window `(now_ms - window_ms, now_ms]`. The
    /// query extends the series' retention to `window_ms` if it is longer.
    fn window(&mut self, now_ms: i64, name: &str, window_ms: u64) -> impl Iterator<Item = i64> + '_ {
        let window_ms = i64::try_from(window_ms).unwrap_or(i64::MAX).min(SERIES_RETENTION_MS);
        let start = now_ms.saturating_sub(window_ms);
        let series = self.series.get_mut(name);
        let points = series.map(|series| {
            if series.retention_ms == SERIES_RETENTION_MS || series.retention_ms < window_ms {
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

    pub fn window_sum(&mut self, now_ms: i64, name: &str, window_ms: u64) -> i64 {
        self.window(now_ms, name, window_ms).fold(0i64, |acc, v| acc.saturating_add(v))
    }

    pub fn window_count(&mut self, now_ms: i64, name: &str, window_ms: u64) -> u32 {
        u32::try_from(self.window(now_ms, name, window_ms).count()).unwrap_or(u32::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.series.is_empty()
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

    pub fn recent(&self, limit: u32) -> impl Iterator<Item = &PastTransaction> {
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
