//! Where the entity rules' cost goes: one long stream decided from an
//! empty state by the seven shipped account rules and by all ten shipped
//! rules (the three entity rules added), each rule's evaluations timed.
//!
//! Run: `cargo bench -p weir --bench rule_times`. Method and figures are
//! in BENCHMARKS.md ("Entity rules", "Where an entity rule's cost goes").
//!
//! Each round decides the stream (`common/entity_stream.rs`, the one the
//! engine bench's `entity/*` groups decide) twice per rule set, through
//! the pipelines' own step (`record::decide`) with accounts and entities
//! in memory: once untimed, for the cost of a transaction, and once with
//! every evaluation's wall time kept ([`Evaluator::time_evaluations`]),
//! for each rule's share. Rounds alternate the sets, so a noisy machine
//! touches both alike. Each rule's mean and median are over the second
//! half of the stream (the state has grown to its steady size by then);
//! what is left of a transaction's cost outside the evaluations is the
//! host's own work: finding the account and the entities, lending them,
//! the decision.
//!
//! Environment: `WEIR_BENCH_N` transactions (default 200 000),
//! `WEIR_BENCH_ROUNDS` (default 2), `WEIR_BENCH_NATIVE=1` for the rules
//! compiled natively through the SDK instead of wasm.

#![allow(clippy::unwrap_used)] // a benchmark stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use weir::engine::{Engine, Evaluator, LoadedRule, Policy, RuleSet};
use weir::events::{InputPosition, TransactionRecorded};
use weir::packages::load_shipped;
use weir::record::MemoryAccounts;

#[path = "../../tests/native_rules.rs"]
mod native_rules;

#[path = "common/entity_stream.rs"]
mod entity_stream;

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Decides `stream` from an empty state: microseconds per transaction, and
/// with `timed` each rule's (id, mean, median) evaluation time in
/// microseconds over the second half of the stream, and how many it ran.
fn decide(set: &RuleSet, stream: &[TransactionRecorded], timed: bool) -> (f64, Vec<(String, f64, f64, usize)>) {
    let mut evaluator = Evaluator::new(set, Policy::default());
    if timed {
        evaluator.time_evaluations();
    }
    let mut accounts = MemoryAccounts::default();
    let started = Instant::now();
    for (i, tx) in stream.iter().enumerate() {
        let position = InputPosition { topic: "bench".to_owned(), partition: 0, offset: i as i64 };
        std::hint::black_box(weir::record::decide(&mut evaluator, tx, position, &mut accounts).unwrap());
    }
    let per_tx = started.elapsed().as_secs_f64() * 1e6 / stream.len() as f64;
    let times = evaluator
        .timings()
        .filter(|(_, nanos)| !nanos.is_empty())
        .map(|(id, nanos)| {
            let mut half = nanos[nanos.len() / 2..].to_vec();
            half.sort_unstable();
            let mean = half.iter().map(|&n| f64::from(n)).sum::<f64>() / half.len() as f64 / 1e3;
            (id.to_owned(), mean, f64::from(half[half.len() / 2]) / 1e3, nanos.len())
        })
        .collect();
    (per_tx, times)
}

fn main() {
    let n = env_or("WEIR_BENCH_N", 200_000);
    let rounds = env_or("WEIR_BENCH_ROUNDS", 2);
    let native = std::env::var("WEIR_BENCH_NATIVE").is_ok_and(|v| v == "1");
    let engine = Engine::new().expect("engine");
    let load = || -> Vec<LoadedRule> {
        if native { native_rules::native_rules() } else { load_shipped(&engine).expect("shipped rules load") }
    };
    let mut accounts_only = load();
    accounts_only.retain(|r| r.spec.entity.is_none());
    let sets =
        [("seven account rules", RuleSet::new(accounts_only).unwrap()), ("all ten", RuleSet::new(load()).unwrap())];
    let stream = entity_stream::entity_stream(n, 0.0, 7);
    let backend = if native { "native" } else { "wasm" };
    println!("weir rule times: {n} transactions, {backend}, {rounds} rounds");
    for round in 1..=rounds {
        let mut untimed = Vec::new();
        for (name, set) in &sets {
            let (per_tx, _) = decide(set, &stream, false);
            let (timed_per_tx, times) = decide(set, &stream, true);
            let in_rules: f64 = times.iter().map(|(_, mean, _, runs)| mean * *runs as f64 / n as f64).sum();
            println!("\nround {round}, {name}: {per_tx:.2} µs a transaction ({timed_per_tx:.2} timed)");
            println!("  {:<22} {:>9} {:>9} {:>9}", "rule", "mean µs", "p50 µs", "runs");
            for (id, mean, p50, runs) in &times {
                println!("  {id:<22} {mean:>9.2} {p50:>9.2} {runs:>9}");
            }
            println!(
                "  in the rules {in_rules:.2} µs a transaction; the host's own work {:.2}",
                timed_per_tx - in_rules
            );
            untimed.push(per_tx);
        }
        println!(
            "\nround {round}: all ten at {:.2}x the throughput of the seven account rules",
            untimed[0] / untimed[1]
        );
    }
}
