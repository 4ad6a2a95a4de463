//! What a Kafka transaction leaves out of its outboxes' records: the ones a
//! later record, or a decision, of the same transaction makes needless.
//! Nothing else reads them before the transaction commits, and once it has
//! committed they would say nothing the rest does not.
//!
//! - **A changelog key written several times:** only its newest record
//!   (compaction would keep only that one, and a restore reads only that).
//! - **The entity hop's task and verdict records of an input record decided
//!   in the same transaction** ([`OutRecord::carries`]). They serve a
//!   restart, or an entity partition on another instance, until the
//!   decision commits; here they would commit with it. A task record is
//!   visible to no one before its transaction commits, so a transaction
//!   that routes and decides an input record applied its task in memory,
//!   on this instance.
//! - **A router's progress records to one entity partition:** only the
//!   last, in its place (after every task the router sent there in the
//!   transaction), carrying them all merged (`hop::Progress::merge`: the
//!   watermark only grows, the position is the newest). An entity
//!   partition that reads it ends where it would have ended reading them
//!   all, only not before it has read that record.
//!
//! At 5 000 transactions/s with three entity kinds and every entity on its
//! instance, a transaction's records fall by about two fifths (BENCHMARKS.md,
//! "Fewer records per transaction").

use std::collections::HashMap;

use super::hop::{self, Progress};
use super::{Destination, Output, Source};

/// What to do with one record of an outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Keep {
    /// Produce it as it is.
    Yes,
    /// Leave it out.
    No,
    /// Produce it with this payload instead (a merged progress record).
    With(Vec<u8>),
}

/// A router's last progress record to an entity partition so far: where
/// it is (outbox, record), all of them merged, and how many there were.
struct LastProgress {
    at: (usize, usize),
    merged: Progress,
    count: usize,
}

/// For each outbox, what to do with each of its records, in order.
pub(super) fn plan(outputs: &[Output]) -> Vec<Vec<Keep>> {
    // The input records decided in this transaction: below each input
    // partition's offset committed here.
    let mut decided: HashMap<i32, i64> = HashMap::new();
    for out in outputs {
        for ((source, p), offset) in &out.offsets {
            if *source == Source::Input {
                let d = decided.entry(*p).or_insert(*offset);
                *d = (*d).max(*offset);
            }
        }
    }
    let mut keep: Vec<Vec<Keep>> = outputs.iter().map(|o| vec![Keep::Yes; o.records.len()]).collect();
    // The newest record of each changelog key, and the last progress record
    // of each router to each entity partition with what it merges.
    let mut newest: HashMap<(i32, &[u8]), (usize, usize)> = HashMap::new();
    let mut progress: HashMap<(Destination, Option<i32>, i32), LastProgress> = HashMap::new();
    for (w, out) in outputs.iter().enumerate() {
        for (i, r) in out.records.iter().enumerate() {
            if r.carries.is_some_and(|(p, offset)| decided.get(&p).is_some_and(|d| offset < *d)) {
                keep[w][i] = Keep::No;
                continue;
            }
            match (r.destination, &r.key, &r.payload) {
                (Destination::Changelog, Some(key), _) => {
                    if let Some((w0, i0)) = newest.insert((r.partition, key.as_slice()), (w, i)) {
                        keep[w0][i0] = Keep::No;
                    }
                }
                (Destination::Entity(_), None, Some(payload)) => {
                    let Some(hop::Record::Progress { partition, progress: p }) = hop::Record::read(payload) else {
                        continue;
                    };
                    let last = progress.entry((r.destination, r.target, partition)).or_insert(LastProgress {
                        at: (w, i),
                        merged: p,
                        count: 0,
                    });
                    if last.count > 0 {
                        keep[last.at.0][last.at.1] = Keep::No;
                        last.merged.merge(p);
                        last.at = (w, i);
                    }
                    last.count += 1;
                }
                _ => {}
            }
        }
    }
    for ((_, _, partition), LastProgress { at: (w, i), merged, count }) in progress {
        if count > 1 {
            let own = outputs[w].records[i].payload.as_deref().and_then(hop::Record::read);
            if own != Some(hop::Record::Progress { partition, progress: merged }) {
                keep[w][i] = Keep::With(hop::Record::progress(partition, &merged));
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DecisionType;
    use crate::kafka::OutRecord;
    use weir_sdk::Entity;

    fn record(
        destination: Destination,
        partition: i32,
        target: i32,
        key: Option<&[u8]>,
        payload: Vec<u8>,
    ) -> OutRecord {
        OutRecord {
            destination,
            partition,
            target: Some(target),
            key: key.map(<[u8]>::to_vec),
            payload: Some(payload),
            headers: super::super::Headers::None,
            carries: None,
        }
    }

    fn output(records: Vec<OutRecord>) -> Output {
        Output { records, ..Output::default() }
    }

    fn progress(position: i64, watermark: i64, at_end: bool) -> Progress {
        Progress { position, watermark: Some(watermark), at_end }
    }

    fn task(from: i32, offset: i64, target: i32) -> OutRecord {
        let payload = hop::Record::task(from, offset, 1_000, b"{}");
        OutRecord {
            carries: Some((from, offset)),
            ..record(Destination::Entity(Entity::Device), from, target, Some(b"fp"), payload)
        }
    }

    fn verdict(entity_partition: i32, input: i32, offset: i64) -> OutRecord {
        OutRecord {
            carries: Some((input, offset)),
            ..record(Destination::Verdicts, entity_partition, input, Some(b"acct"), vec![1])
        }
    }

    fn decision(p: i32) -> OutRecord {
        record(Destination::Decision(DecisionType::TransactionVerified), p, p, Some(b"acct"), b"{}".to_vec())
    }

    #[test]
    fn tasks_and_verdicts_of_records_decided_in_the_transaction_are_left_out() {
        // Input partition 0 decided up to offset 12 (the next is 12): its
        // tasks and verdicts at 10 and 11 go, the one at 12 stays.
        let mut a = output(vec![task(0, 10, 1), task(0, 11, 1), task(0, 12, 1), decision(0), decision(0)]);
        a.offsets.insert((Source::Input, 0), 12);
        // Verdicts from another worker's entity partition: for partition 0
        // (decided above), and for partition 2 (not decided here).
        let b = output(vec![verdict(1, 0, 11), verdict(1, 0, 12), verdict(1, 2, 5), task(2, 5, 1)]);
        let plan = plan(&[a, b]);
        use Keep::*;
        assert_eq!(plan[0], [No, No, Yes, Yes, Yes]);
        assert_eq!(plan[1], [No, Yes, Yes, Yes]);
    }

    #[test]
    fn a_changelog_key_keeps_its_newest_record() {
        let a = output(vec![
            record(Destination::Changelog, 0, 0, Some(b"k1"), vec![1]),
            record(Destination::Changelog, 0, 0, Some(b"k2"), vec![2]),
            record(Destination::Changelog, 1, 1, Some(b"k1"), vec![3]),
            record(Destination::Changelog, 0, 0, Some(b"k1"), vec![4]),
        ]);
        use Keep::*;
        assert_eq!(plan(&[a]), [vec![No, Yes, Yes, Yes]]);
    }

    #[test]
    fn a_routers_progress_to_a_partition_is_one_record_in_the_last_place_with_all_merged() {
        let kind = Destination::Entity(Entity::Device);
        let p = |position, watermark, at_end| {
            record(kind, 0, 3, None, hop::Record::progress(0, &progress(position, watermark, at_end)))
        };
        let a = output(vec![
            // Router 0 to entity partition 3: an idle report with a high
            // watermark, a task, then a later position with a lower one.
            p(10, 5_000, false),
            task(0, 10, 3),
            p(11, 4_000, false),
            // To another entity partition: alone, kept as it is.
            record(kind, 0, 2, None, hop::Record::progress(0, &progress(11, 4_000, false))),
            // Another router to partition 3: its own.
            record(kind, 1, 3, None, hop::Record::progress(1, &progress(7, 3_000, false))),
        ]);
        let plan = plan(&[a]);
        let merged = hop::Record::progress(0, &progress(11, 5_000, false));
        use Keep::*;
        assert_eq!(plan[0], [No, Yes, With(merged), Yes, Yes]);
    }

    #[test]
    fn the_same_progress_twice_is_kept_as_the_last_record() {
        let kind = Destination::Entity(Entity::Merchant);
        let same = hop::Record::progress(0, &progress(4, 100, true));
        let a = output(vec![record(kind, 0, 1, None, same.clone()), record(kind, 0, 1, None, same)]);
        use Keep::*;
        assert_eq!(plan(&[a]), [vec![No, Yes]]);
    }
}
