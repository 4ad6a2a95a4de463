//! Engine throughput with all shipped rules: in wasm, and the same rules
//! compiled natively through the SDK, side by side in one run; plus how long
//! a rule takes to compile and to instantiate.
//!
//! Run: `cargo bench -p weir --bench engine`. Method and figures are in
//! BENCHMARKS.md.
//!
//! Each iteration decides a batch of demo transactions (one thread) from a
//! fresh, empty account state, so every iteration does the same work:
//! - `decide`: the engine alone (transactions already parsed);
//! - `parse+decide`: from the embedded source's JSON lines, writing each
//!   decision's JSON, as the pipelines do (without the sink and store).

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::events::{InputPosition, TransactionRecorded, parse_transaction};
use weir::manifest::RuleSpec;
use weir::packages::{SHIPPED, load_shipped};
use weir::state::AccountState;

#[path = "../../tests/native_rules.rs"]
mod native_rules;

const BATCH: usize = 2_000;

fn workload() -> (Vec<String>, Vec<TransactionRecorded>) {
    let stream = weir::demo::generate(BATCH, 200, 42);
    let lines: Vec<String> =
        stream.lines.into_iter().filter(|l| parse_transaction(l.as_bytes(), 1 << 20).is_ok()).take(BATCH).collect();
    let txs = lines.iter().map(|l| parse_transaction(l.as_bytes(), 1 << 20).expect("filtered")).collect();
    (lines, txs)
}

fn position(i: usize) -> InputPosition {
    InputPosition { topic: "bench".to_owned(), partition: 0, offset: i as i64 }
}

fn throughput(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let (lines, txs) = workload();
    let sets = [
        ("wasm", RuleSet::new(load_shipped(&engine).expect("shipped rules load")).expect("set")),
        ("native", RuleSet::new(native_rules::native_rules()).expect("set")),
    ];
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.sample_size(30);
    for (name, set) in &sets {
        let mut evaluator = Evaluator::new(set, Policy::default());
        group.bench_function(format!("decide/{name}"), |b| {
            b.iter_batched_ref(
                HashMap::<String, AccountState>::new,
                |accounts| {
                    for (i, tx) in txs.iter().enumerate() {
                        let account = accounts.entry(tx.account_id.clone()).or_default();
                        black_box(evaluator.decide(tx, account, position(i)));
                    }
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("parse+decide/{name}"), |b| {
            b.iter_batched_ref(
                HashMap::<String, AccountState>::new,
                |accounts| {
                    for (i, line) in lines.iter().enumerate() {
                        let tx = parse_transaction(line.as_bytes(), 1 << 20).expect("valid");
                        let account = accounts.entry(tx.account_id.clone()).or_default();
                        let mut json = Vec::with_capacity(2048);
                        evaluator.decide(&tx, account, position(i)).write_json(&mut json);
                        black_box(json);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn compile_and_instantiate(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let mut group = c.benchmark_group("rule");
    group.sample_size(10);
    for rule in SHIPPED {
        let spec = RuleSpec::parse(rule.manifest).expect("manifest");
        group.bench_function(format!("compile/{}", rule.name), |b| {
            b.iter(|| engine.load(spec.clone(), rule.component, rule.manifest).expect("loads"))
        });
    }
    let velocity = SHIPPED.iter().find(|r| r.name == "velocity").expect("velocity ships");
    let loaded =
        engine.load(RuleSpec::parse(velocity.manifest).expect("manifest"), velocity.component, velocity.manifest);
    let set = RuleSet::new(vec![loaded.expect("loads")]).expect("set");
    let (_, txs) = workload();
    group.bench_function("instantiate+first-decision/velocity", |b| {
        b.iter(|| {
            // A new evaluator instantiates the rule on its first decision.
            let mut evaluator = Evaluator::new(&set, Policy::default());
            black_box(evaluator.decide(&txs[0], &mut AccountState::default(), position(0)))
        })
    });
    group.finish();
}

/// Both cores: the same transactions decided by one thread, and split by
/// account over two threads (as the Kafka workers split partitions), each
/// with its own evaluator and accounts. Measured as wall time for the lot.
fn parallel(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let set = RuleSet::new(load_shipped(&engine).expect("shipped rules load")).expect("set");
    let stream = weir::demo::generate(20_000, 2_000, 42);
    let txs: Vec<TransactionRecorded> =
        stream.lines.iter().filter_map(|l| parse_transaction(l.as_bytes(), 1 << 20).ok()).collect();
    let mut group = c.benchmark_group("parallel");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.sample_size(10);
    for threads in [1usize, 2] {
        let shares: Vec<Vec<&TransactionRecorded>> = (0..threads)
            .map(|t| {
                txs.iter()
                    .filter(|tx| {
                        let h = tx.account_id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
                        h % threads == t
                    })
                    .collect()
            })
            .collect();
        let mut evaluators: Vec<Evaluator> = (0..threads).map(|_| Evaluator::new(&set, Policy::default())).collect();
        group.bench_function(format!("decide/{threads}-threads"), |b| {
            b.iter_custom(|iters| {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    std::thread::scope(|scope| {
                        for (evaluator, share) in evaluators.iter_mut().zip(&shares) {
                            scope.spawn(move || {
                                let mut accounts: HashMap<String, AccountState> = HashMap::new();
                                for (i, tx) in share.iter().enumerate() {
                                    let account = accounts.entry(tx.account_id.clone()).or_default();
                                    black_box(evaluator.decide(tx, account, position(i)));
                                }
                            });
                        }
                    });
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, throughput, parallel, compile_and_instantiate);
criterion_main!(benches);
