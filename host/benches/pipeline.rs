//! The embedded pipeline end to end, durable — JSON lines in, decisions,
//! dead letters and state committed to disk — on one round of traffic and
//! on ten rounds over the same accounts: what weir costs per transaction
//! must not grow with the accounts' history.
//!
//! Run: `cargo bench -p weir --bench pipeline`. Method and figures are in
//! BENCHMARKS.md.
//!
//! A round is the demo stream (`weir::demo::generate(N, 2 000, 42)`: N
//! ordinary transactions over 2 000 accounts and twelve hours of event time,
//! the story's scenes, three malformed records). Round `r` is the same
//! stream moved `r` × 12 h later in event time, with its ids suffixed by
//! `-r<r>`: the same accounts, the same density of traffic in every velocity
//! window, ever longer histories. Each run starts from an empty output
//! directory, with the six shipped account rules (wasm; `WEIR_BENCH_RULES=all`
//! adds the three entity rules, whose merchant rule runs on every
//! transaction) and the default batch size,
//! `fsync`ed as `weir run` does; the clock covers `run_embedded` only.
//!
//! Environment: `WEIR_BENCH_N` (default 20 000 per round),
//! `WEIR_BENCH_ROUNDS` (default 10), `WEIR_BENCH_REPEAT` (default 3: each
//! run is repeated and the median reported), `WEIR_BENCH_DIR` (where the
//! output goes; default the system's temporary directory),
//! `WEIR_BENCH_WRITE_INPUT` (a directory: write the two inputs there as
//! `1-round.jsonl` and `N-rounds.jsonl`, to feed other builds' `weir run`),
//! `WEIR_BENCH_ENTITY_MAX_WAITING` (`embedded.entity_max_waiting`, with
//! entity rules).

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Cursor;
use std::time::Instant;

use serde_json::Value;
use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::packages::load_shipped;
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};

const ACCOUNTS: usize = 2_000;
const SEED: u64 = 42;
const ROUND_MS: i64 = 12 * 3_600_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `rounds` rounds of the demo stream, as JSON lines.
fn traffic(n: usize, rounds: usize) -> Vec<u8> {
    let base = weir::demo::generate(n, ACCOUNTS, SEED).lines;
    let mut out = Vec::with_capacity(base.len() * rounds * 400);
    for r in 0..rounds {
        for line in &base {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(mut event)) if r > 0 && event.contains_key("transaction_id") => {
                    for id in ["event_id", "transaction_id"] {
                        if let Some(Value::String(s)) = event.get_mut(id) {
                            s.push_str(&format!("-r{r}"));
                        }
                    }
                    let shifted = event
                        .get("occurred_at")
                        .and_then(Value::as_str)
                        .and_then(|t| {
                            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                        })
                        .map(|t| t + time::Duration::milliseconds(ROUND_MS * r as i64));
                    if let Some(t) = shifted {
                        let text = t.format(&time::format_description::well_known::Rfc3339).expect("formats");
                        event.insert("occurred_at".to_owned(), Value::String(text));
                    }
                    out.extend_from_slice(Value::Object(event).to_string().as_bytes());
                }
                _ => out.extend_from_slice(line.as_bytes()),
            }
            out.push(b'\n');
        }
    }
    out
}

struct Measured {
    records: u64,
    decisions: u64,
    secs: f64,
    state_bytes: u64,
    /// Records/s of each round, from the batches' commit times.
    rounds: Vec<f64>,
}

/// Runs the embedded pipeline over `input` (`round_len` records a round)
/// into a fresh directory.
fn run(engine: &Engine, input: &[u8], round_len: u64) -> Measured {
    let root = std::env::var_os("WEIR_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new().prefix("weir-bench-pipeline-").tempdir_in(root).expect("a directory");
    let out = OutputPaths::in_dir(dir.path());
    let mut rules = load_shipped(engine).expect("the shipped rules load");
    if std::env::var("WEIR_BENCH_RULES").as_deref() != Ok("all") {
        rules.retain(|r| r.spec.entity.is_none());
    }
    let set = RuleSet::new(rules).expect("a rule set");
    let mut evaluator = Evaluator::new(&set, Policy::default());
    let opts = PipelineOptions {
        input_name: "bench.jsonl".to_owned(),
        entity_max_waiting: env_or("WEIR_BENCH_ENTITY_MAX_WAITING", weir::entity_order::DEFAULT_LIMIT),
        ..PipelineOptions::default()
    };
    // The previous run's output is written back first, so it does not slow
    // this one down.
    let _ = std::process::Command::new("sync").status();
    let started = Instant::now();
    // (records, seconds) at each batch, to cut the run into rounds.
    let mut marks: Vec<(u64, f64)> = vec![(0, 0.0)];
    let summary = run_embedded(Cursor::new(input), &mut evaluator, &out, &opts, |s| {
        marks.push((s.records, started.elapsed().as_secs_f64()))
    })
    .expect("the pipeline runs");
    let secs = started.elapsed().as_secs_f64();
    let state_bytes = std::fs::metadata(&out.state).map(|m| m.len()).unwrap_or(0);
    let at = |records: u64| -> (u64, f64) {
        *marks.iter().find(|(r, _)| *r >= records).unwrap_or(marks.last().expect("a mark"))
    };
    let rounds = (0..summary.records.div_ceil(round_len))
        .map(|r| {
            let (a, b) = (at(r * round_len), at((r + 1) * round_len));
            (b.0 - a.0) as f64 / (b.1 - a.1).max(1e-9)
        })
        .collect();
    Measured { records: summary.records, decisions: summary.decided(), secs, state_bytes, rounds }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: usize = env_or("WEIR_BENCH_N", 20_000);
    let rounds: usize = env_or("WEIR_BENCH_ROUNDS", 10);
    let repeat: usize = env_or("WEIR_BENCH_REPEAT", 3).max(1);
    let engine = Engine::new().expect("an engine");
    // Compile the rules once, outside the clock.
    load_shipped(&engine).expect("the shipped rules load");
    let one = traffic(n, 1);
    let many = traffic(n, rounds);
    let round_len = one.iter().filter(|b| **b == b'\n').count() as u64;
    if let Some(dir) = std::env::var_os("WEIR_BENCH_WRITE_INPUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the input directory");
        std::fs::write(dir.join("1-round.jsonl"), &one).expect("writing the input");
        std::fs::write(dir.join(format!("{rounds}-rounds.jsonl")), &many).expect("writing the input");
        eprintln!("inputs written to {}", dir.display());
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let (mut rate_1x, mut rate_nx) = (Vec::new(), Vec::new());
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); rounds];
    let (mut last_1x, mut last_nx) = (None, None);
    // Alternated, so drift on a shared machine hits both alike.
    for i in 0..repeat {
        let m1 = run(&engine, &one, round_len);
        let mn = run(&engine, &many, round_len);
        eprintln!(
            "run {}/{repeat}: 1 round {:.0} records/s ({} in {:.2} s); {rounds} rounds {:.0} records/s ({} in {:.2} s)",
            i + 1,
            m1.records as f64 / m1.secs,
            m1.records,
            m1.secs,
            mn.records as f64 / mn.secs,
            mn.records,
            mn.secs
        );
        rate_1x.push(m1.records as f64 / m1.secs);
        for (r, rate) in mn.rounds.iter().enumerate().take(rounds) {
            per_round[r].push(*rate);
        }
        rate_nx.push(mn.records as f64 / mn.secs);
        last_1x = Some(m1);
        last_nx = Some(mn);
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (m1, mn) = (last_1x.expect("ran"), last_nx.expect("ran"));
    let (r1, rn) = (median(rate_1x), median(rate_nx));
    let load = |l: &str| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    println!();
    println!("Embedded pipeline, durable (cargo bench -p weir --bench pipeline)");
    println!("load:   {} before, {} after (1/5/15 min)", load(&load_before), load(&load_after));
    println!(
        "input:  {n} transactions per round over {ACCOUNTS} accounts (+ scenes, 3 malformed); medians of {repeat} runs"
    );
    println!("{:<34} {:>14} {:>12} {:>14}", "", "records/s", "decisions", "state.redb");
    println!("{:<34} {:>14.0} {:>12} {:>11} KiB", "1 round", r1, m1.decisions, m1.state_bytes / 1024);
    println!(
        "{:<34} {:>14.0} {:>12} {:>11} KiB",
        format!("{rounds} rounds, same accounts"),
        rn,
        mn.decisions,
        mn.state_bytes / 1024
    );
    let rounds_median: Vec<f64> = per_round.into_iter().map(median).collect();
    println!(
        "{:<34} {}",
        "  each round of the 10, records/s",
        rounds_median.iter().map(|r| format!("{:.0}", r)).collect::<Vec<_>>().join(" ")
    );
    let (first, last) = (rounds_median[0], rounds_median[rounds - 1]);
    println!(
        "{:<34} {:>13.2}x  (round {rounds}, histories full, against round 1, accounts new)",
        "  last round ÷ first round",
        last / first
    );
    let ratio = rn / r1;
    let verdict = |ok: bool| if ok { "MET   " } else { "MISSED" };
    println!(
        "{:<34} {:>13.2}x  {} (target: within 10 %)",
        format!("{rounds} rounds ÷ 1 round"),
        ratio,
        verdict(ratio >= 0.9)
    );
    println!(
        "{:<34} {:>14.0}  {} (target ≥ 100 000 records/s)",
        "best of the two",
        r1.max(rn),
        verdict(r1.max(rn) >= 100_000.0)
    );
}
