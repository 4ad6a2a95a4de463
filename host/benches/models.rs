//! Models in rules: a rule scoring a 300-tree, depth-6 LightGBM model over
//! 30 features (the target: at least 50 000 decisions a second per
//! core), an MLP, the reader's native speed side by side, and what loading
//! a model costs an instance (time, and the smallest memory cap it loads in).
//!
//! Run: `cargo bench -p weir --bench models`. The models are trained and
//! exported by `scripts/models/parity.py` in the project's Python
//! environment (`scripts/models/venv.sh`, built from PyPI on first use) into
//! `target/model-bench`. Method and figures are in BENCHMARKS.md.
//!
//! - `decide/NAME`: the engine deciding 2 000 transactions with the
//!   `model-score` test rule (it reads the 30 features from the
//!   transaction's attributes, scores, and explains with the three top
//!   path contributions), one thread, in wasm;
//! - `score/NAME`: `weir_sdk::model::Model::score` natively, per row;
//! - `load/NAME`: a fresh evaluator's first decision: instantiating the
//!   rule and reading its model in the sandbox.

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir::cases::CaseTx;
use weir::engine::{Engine, Evaluator, LoadedRule, Policy, RuleSet};
use weir::events::{InputPosition, TransactionRecorded};
use weir::manifest::RuleSpec;
use weir::state::AccountState;
use weir_sdk::model::Model;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

const ROWS: usize = 2_000;
const FEATURES: usize = 30;

/// The models, made once into target/model-bench.
fn models() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target/model-bench");
    if dir.join("manifest.json").exists() {
        return dir;
    }
    let venv = Command::new("bash").arg(root.join("scripts/models/venv.sh")).output().unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().lines().last().unwrap().to_owned();
    let made = Command::new(python)
        .arg(root.join("scripts/models/parity.py"))
        .arg(&dir)
        .args(["--rows", &ROWS.to_string(), "--trees", "300", "--depth", "6"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    dir
}

fn component() -> Vec<u8> {
    let path = GUESTS.iter().find(|(n, _)| *n == "model-score").map(|(_, p)| *p).unwrap();
    std::fs::read(path).unwrap()
}

fn rows(dir: &Path, name: &str) -> Vec<f32> {
    std::fs::read(dir.join(format!("{name}.rows.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn transactions(rows: &[f32]) -> Vec<TransactionRecorded> {
    rows.chunks_exact(FEATURES)
        .enumerate()
        .map(|(i, row)| {
            let mut attributes: std::collections::BTreeMap<String, String> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(i, v)| (format!("f{i}"), v.to_string()))
                .collect();
            attributes.insert("row".into(), "1".into());
            CaseTx { attributes, after_secs: Some(i as i64), ..CaseTx::default() }.to_event(&format!("tx-{i}"))
        })
        .collect()
}

fn rule(engine: &Engine, component: &[u8], model: &[u8], memory_mib: u32) -> Result<LoadedRule, String> {
    let manifest = format!(
        "[rule]\nid = \"scorer\"\nversion = \"1\"\ncomponent = \"model-score.wasm\"\n[limits]\nmemory_mib = {memory_mib}\n[model]\nfile = \"m.onnx\"\n"
    );
    engine
        .load_with_model(RuleSpec::parse(&manifest).unwrap(), component, &manifest, Some(Arc::from(model)))
        .map_err(|e| e.to_string())
}

fn position(i: usize) -> InputPosition {
    InputPosition { topic: "bench".to_owned(), partition: 0, offset: i as i64 }
}

fn bench(c: &mut Criterion) {
    let dir = models();
    let engine = Engine::new().unwrap();
    let component = component();
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    for name in ["lightgbm", "random-forest", "xgboost", "mlp"] {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let rows = rows(&dir, name);
        let txs = transactions(&rows);
        // The smallest memory cap the rule loads its model in, in MiB.
        let fits = (1..=64).find(|&mib| rule(&engine, &component, &bytes, mib).is_ok());
        let model = Model::load(&bytes).unwrap();
        eprintln!(
            "{name}: {} bytes, {} operations a row at most; an instance loads it within a {} MiB memory cap",
            bytes.len(),
            model.cost(),
            fits.map_or("(none up to 64)".to_owned(), |m| m.to_string())
        );
        let set = RuleSet::new(vec![rule(&engine, &component, &bytes, 64).unwrap()]).unwrap();
        let policy = Policy { model_fuel_average: weir::manifest::MAX_FUEL, ..Policy::default() };
        let mut evaluator = Evaluator::new(&set, policy.clone());
        group.throughput(Throughput::Elements(txs.len() as u64));
        group.bench_function(format!("decide/{name}"), |b| {
            b.iter(|| {
                for (i, tx) in txs.iter().enumerate() {
                    black_box(evaluator.decide(tx, &mut AccountState::default(), position(i)));
                }
            })
        });
        let (_, stats) = evaluator.stats().next().unwrap();
        eprintln!("{name}: {} fuel units a decision, {} errors", stats.fuel / stats.invocations.max(1), stats.errors);
        group.bench_function(format!("score/{name}"), |b| {
            b.iter(|| {
                for row in rows.chunks_exact(FEATURES) {
                    black_box(model.score(row).unwrap());
                }
            })
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("load/{name}"), |b| {
            b.iter_batched(
                || Evaluator::new(&set, policy.clone()),
                |mut evaluator| black_box(evaluator.decide(&txs[0], &mut AccountState::default(), position(0))),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
