//! Engine throughput with the six shipped account rules: in wasm, and the
//! same rules compiled natively through the SDK, side by side in one run;
//! with the shipped entity rules added (`entity/*`: per device,
//! counterparty and merchant, and with one merchant taking 30 % of the
//! transactions); plus how long a rule takes to compile and to instantiate.
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
use weir::engine::{Engine, Evaluator, LoadedRule, Policy, RuleSet};
use weir::events::{InputPosition, TransactionRecorded, parse_transaction};
use weir::manifest::RuleSpec;
use weir::packages::{SHIPPED, load_shipped};
use weir::record::MemoryAccounts;
use weir::state::AccountState;

#[path = "../../tests/native_rules.rs"]
mod native_rules;

#[path = "common/entity_stream.rs"]
mod entity_stream;
use entity_stream::entity_stream;

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

/// The shipped account rules (the six the figures before entity rules
/// and runtime lists were measured with), in wasm.
fn account_rules(engine: &Engine) -> Vec<LoadedRule> {
    let mut rules = load_shipped(engine).expect("shipped rules load");
    rules.retain(|r| r.spec.entity.is_none() && r.spec.id != "blocklist");
    rules
}

/// Each iteration decides `txs` from a fresh, empty account state.
fn decide_all(b: &mut criterion::Bencher<'_>, evaluator: &mut Evaluator, txs: &[TransactionRecorded]) {
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
}

fn throughput(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let (lines, txs) = workload();
    let mut native = native_rules::native_rules();
    native.retain(|r| r.spec.entity.is_none() && r.spec.id != "blocklist");
    let sets =
        [("wasm", RuleSet::new(account_rules(&engine)).expect("set")), ("native", RuleSet::new(native).expect("set"))];
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.sample_size(30);
    for (name, set) in &sets {
        let mut evaluator = Evaluator::new(set, Policy::default());
        group.bench_function(format!("decide/{name}"), |b| decide_all(b, &mut evaluator, &txs));
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

/// The six account rules, then the same with the shipped `blocklist` rule
/// (six list lookups per transaction) reading no lists, and reading six
/// lists of 90 000 entries each (plus a tenth of the demo's devices, so
/// some transactions hit): what runtime lists cost a decision.
fn lists(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let (_, txs) = workload();
    let six = RuleSet::new(account_rules(&engine)).expect("set");
    let mut with_blocklist = account_rules(&engine);
    with_blocklist.extend(load_shipped(&engine).expect("shipped").into_iter().filter(|r| r.spec.id == "blocklist"));
    let seven = RuleSet::new(with_blocklist).expect("set");
    // The same rule with every list's name empty: no lookup, the rule's own cost.
    let shipped = SHIPPED.iter().find(|r| r.name == "blocklist").expect("blocklist ships");
    let mut manifest = shipped.manifest.to_owned();
    for (name, _) in
        [("accounts", 0), ("devices", 0), ("cards", 0), ("counterparties", 0), ("merchants", 0), ("countries", 0)]
    {
        manifest = manifest.replace(&format!("{name} = \"blocked-{name}\""), &format!("{name} = \"\""));
    }
    let spec = RuleSpec::parse(&manifest).expect("manifest");
    let mut no_lookups = account_rules(&engine);
    no_lookups.push(engine.load(spec, shipped.component, &manifest).expect("loads"));
    let seven_without_lookups = RuleSet::new(no_lookups).expect("set");
    let names = ["blocked-accounts", "blocked-devices", "blocked-cards", "blocked-counterparties", "blocked-merchants"];
    let mut values: Vec<(String, String)> = Vec::new();
    for name in names.iter().chain(&["blocked-countries"]) {
        values.extend((0..90_000).map(|i| (name.to_string(), format!("{name}-{i}"))));
    }
    let devices: std::collections::BTreeSet<&str> =
        txs.iter().filter_map(|t| t.device_fingerprint.as_deref()).collect();
    values.extend(devices.iter().step_by(10).map(|d| ("blocked-devices".to_owned(), d.to_string())));
    let full = std::sync::Arc::new(
        weir::lists::ListSet::of(values.iter().map(|(l, v)| (l.as_str(), v.as_str()))).expect("within the bounds"),
    );
    let mut group = c.benchmark_group("lists");
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.sample_size(30);
    let runs: [(&str, &RuleSet, Option<&std::sync::Arc<weir::lists::ListSet>>); 4] = [
        ("six-rules", &six, None),
        ("blocklist/no-lookups", &seven_without_lookups, None),
        ("blocklist/no-lists", &seven, None),
        ("blocklist/540k-entries", &seven, Some(&full)),
    ];
    for (name, set, lists) in runs {
        let mut evaluator = Evaluator::new(set, Policy::default());
        if let Some(lists) = lists {
            evaluator.set_lists(1, lists.clone());
        }
        group.bench_function(format!("decide/{name}"), |b| decide_all(b, &mut evaluator, &txs));
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
    let set = RuleSet::new(account_rules(&engine)).expect("set");
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

/// Entity rules: one stream decided by the six account rules alone, by the
/// seven shipped account rules (the six and `blocklist`: the shipped
/// deployment without its entity rules) and by all ten shipped rules (the
/// three entity rules on every transaction), through
/// the pipelines' own step (`record::decide`) from a state warmed up by
/// 20 000 earlier transactions; and the same with one merchant taking 30 %
/// of the transactions (a hot key: its distinct set of cards and its
/// series are the largest).
fn entity(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let all = RuleSet::new(load_shipped(&engine).expect("shipped rules load")).expect("set");
    let accounts_only = RuleSet::new(account_rules(&engine)).expect("set");
    // The shipped deployment without its entity rules: the six and
    // `blocklist`, so against `all-rules` only the entity rules differ.
    let mut without_entities = load_shipped(&engine).expect("shipped rules load");
    without_entities.retain(|r| r.spec.entity.is_none());
    let without_entities = RuleSet::new(without_entities).expect("set");
    let mut group = c.benchmark_group("entity");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, hot) in [("uniform", 0.0), ("hot-merchant-30%", 0.3)] {
        let stream = entity_stream(20_000 + BATCH, hot, 7);
        let (warm_up, measured) = stream.split_at(20_000);
        let with = |id: &str| {
            let mut rules = account_rules(&engine);
            rules.extend(load_shipped(&engine).expect("loads").into_iter().filter(|r| r.spec.id == id));
            RuleSet::new(rules).expect("set")
        };
        let (device, payee, merchant) = (with("shared-device"), with("mule-beneficiary"), with("merchant-new-cards"));
        let native_all = RuleSet::new(native_rules::native_rules()).expect("set");
        let mut native_accounts = native_rules::native_rules();
        native_accounts.retain(|r| r.spec.entity.is_none());
        let native_accounts = RuleSet::new(native_accounts).expect("set");
        let sets = [
            ("account-rules", &accounts_only),
            ("all-account-rules", &without_entities),
            ("all-rules", &all),
            ("+device", &device),
            ("+payee", &payee),
            ("+merchant", &merchant),
            ("native-account-rules", &native_accounts),
            ("native-all-rules", &native_all),
        ];
        for (rules, set) in sets {
            let mut evaluator = Evaluator::new(set, Policy::default());
            let mut warm = MemoryAccounts::default();
            for (i, tx) in warm_up.iter().enumerate() {
                weir::record::decide(&mut evaluator, tx, position(i), &mut warm).expect("in memory");
            }
            group.bench_function(format!("decide/{rules}/{name}"), |b| {
                b.iter_batched_ref(
                    || warm.clone(),
                    |accounts| {
                        for (i, tx) in measured.iter().enumerate() {
                            black_box(
                                weir::record::decide(&mut evaluator, tx, position(i), accounts).expect("in memory"),
                            );
                        }
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, throughput, parallel, entity, lists, compile_and_instantiate);
criterion_main!(benches);
