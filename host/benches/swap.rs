//! Hot-deploy benchmark: how long from a package landing in the rules
//! directory to the first decision by the new version, how long validation
//! (compile, self-tests) and the swap take, and what a swap costs the
//! pipeline's throughput.
//!
//! `cargo bench -p weir --bench swap`
//!
//! Method: the embedded pipeline runs in this process over the demo stream
//! (as fast as it can, batches of 500, durable commits) with the shipped
//! rules, watched by [`LiveRules`] as in `weir run`. Every few seconds a new
//! version of `velocity` is installed the way `weir rule deploy` does it
//! (hidden files renamed into place, manifest last). Three kinds of swap:
//!
//! - `params`: the same component, another manifest (a cache hit);
//! - `new code`: a component with different bytes (a custom section
//!   appended), so it is compiled afresh — what a new rule build costs;
//! - `deployed`: new bytes too, but validated first by what `weir rule
//!   deploy` runs, which compiles into the rules directory's compile cache;
//!   the host then loads the compiled component from there;
//! - `rollback`: back to a version compiled earlier (a cache hit).
//!
//! For each swap: end to end (rename of the manifest → the batch holding
//! the first decision by the new version has committed; the 200 ms debounce
//! included), validate+publish (the rescan: reading, signature, compile,
//! self-tests, publishing the set), and the throughput in the second after
//! the rename against the second before it (side by side, because this
//! machine is shared and its speed drifts).

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weir::engine::{Engine, Evaluator, Policy};
use weir::live::LiveRules;
use weir::packages::{PackageFiles, Trust, Validator, install};
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};
use weir::telemetry::Hooks;

/// Serves the demo stream's lines again and again, with fresh transaction
/// ids each round, until `stop` is set.
struct Endless {
    lines: Vec<String>,
    round: usize,
    next: usize,
    pending: Vec<u8>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(0);
            }
            if self.next == self.lines.len() {
                self.next = 0;
                self.round += 1;
            }
            let line = &self.lines[self.next];
            self.next += 1;
            let line = line.replace("\"tx-", &format!("\"r{}-tx-", self.round));
            self.pending = (line + "\n").into_bytes();
            self.pending.reverse();
        }
        let n = buf.len().min(self.pending.len());
        for b in buf.iter_mut().take(n) {
            *b = self.pending.pop().unwrap_or(b'\n');
        }
        Ok(n)
    }
}

/// A copy of `component` with a custom section appended: valid, and new bytes.
fn with_custom_section(component: &[u8], tag: u32) -> Vec<u8> {
    let name = b"weir-bench";
    let payload = tag.to_le_bytes();
    let mut out = component.to_vec();
    out.push(0); // custom section
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Makes the package of one swap, from the round's tag.
type MakePackage<'a> = Box<dyn Fn(u32) -> PackageFiles + 'a>;

struct Timeline {
    /// (when a batch committed, records so far)
    batches: Vec<(Instant, u64)>,
    /// When the first batch on each generation committed.
    first_on: Vec<(u64, Instant)>,
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules");
    weir::packages::export_shipped(&rules).unwrap();
    let staging = work.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let v1 = PackageFiles::read(&rules.join("velocity.toml")).unwrap();

    // As `weir run` and `weir rule deploy` do by default: the compile cache
    // lives in the rules directory.
    let cache = rules.join(".weir-cache");
    let validator = Validator::new(Engine::new().unwrap().with_cache_dir(cache.clone()), Trust::default());
    // What `weir rule deploy` runs before it installs a package.
    let deployer = Validator::new(Engine::new().unwrap().with_cache_dir(cache), Trust::default());
    let live = LiveRules::start(&rules, validator).unwrap();
    let _watch = live.watch().unwrap();
    let mut evaluator = Evaluator::new(&live.current().set, Policy::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let input = Endless {
        lines: weir::demo::generate(50_000, 2_000, 7).lines,
        round: 0,
        next: 0,
        pending: Vec::new(),
        stop: stop.clone(),
    };
    let timeline = Arc::new(Mutex::new(Timeline { batches: Vec::new(), first_on: Vec::new() }));
    let pipeline = {
        let live = live.clone();
        let timeline = timeline.clone();
        let out = OutputPaths::in_dir(&work.path().join("out"));
        std::thread::spawn(move || {
            let opts = PipelineOptions {
                batch_size: 500,
                hooks: Hooks { live: Some(live.clone()), metrics: None, lists: None },
                ..PipelineOptions::default()
            };
            run_embedded(BufReader::new(input), &mut evaluator, &out, &opts, |s| {
                let now = Instant::now();
                let mut t = timeline.lock().unwrap();
                t.batches.push((now, s.records));
                // The swap log gets its position when a batch starts on a
                // new generation; this is that batch's commit.
                let status = live.status();
                if let Some(swap) = status.swaps.last()
                    && !swap.took_effect.is_empty()
                    && t.first_on.last().is_none_or(|(g, _)| *g < swap.generation)
                {
                    t.first_on.push((swap.generation, now));
                }
            })
            .unwrap()
        })
    };

    std::thread::sleep(Duration::from_secs(5));
    let steady_end = Instant::now();
    let plan: Vec<(&str, MakePackage)> = vec![
        (
            "params",
            Box::new(|i| {
                let manifest = v1.manifest.replace("max_count = 10", &format!("max_count = {}", 10 + i));
                PackageFiles { hash: weir::engine::content_hash(&v1.component, &manifest), manifest, ..v1.clone() }
            }),
        ),
        (
            "new code",
            Box::new(|i| {
                let component = with_custom_section(&v1.component, i);
                PackageFiles { hash: weir::engine::content_hash(&component, &v1.manifest), component, ..v1.clone() }
            }),
        ),
        (
            "deployed",
            Box::new(|i| {
                let component = with_custom_section(&v1.component, 1000 + i);
                PackageFiles { hash: weir::engine::content_hash(&component, &v1.manifest), component, ..v1.clone() }
            }),
        ),
        ("rollback", Box::new(|_| v1.clone())),
    ];
    let mut rows = Vec::new();
    for round in 0..3u32 {
        for (kind, make) in &plan {
            let package = make(100 + round);
            let package = PackageFiles { manifest_path: staging.join("velocity.toml"), ..package };
            if *kind == "deployed" {
                // `weir rule deploy`: validated (and so compiled into the
                // cache) before it is installed; the host reads the cache.
                deployer.validate(&package).unwrap();
            }
            install(&package, Path::new(&rules)).unwrap();
            let landed = Instant::now();
            let deadline = Instant::now() + Duration::from_secs(10);
            let generation = loop {
                let current = live.current();
                if current.set.rules().iter().any(|r| *r.hash == *package.hash) {
                    break current.number;
                }
                assert!(Instant::now() < deadline, "{kind} was never published");
                std::thread::sleep(Duration::from_millis(1));
            };
            let effect = loop {
                if let Some((_, at)) = timeline.lock().unwrap().first_on.iter().find(|(g, _)| *g == generation) {
                    break *at;
                }
                assert!(Instant::now() < deadline, "generation {generation} never took effect");
                std::thread::sleep(Duration::from_millis(2));
            };
            let status = live.status();
            let swap = status.swaps.iter().find(|s| s.generation == generation).unwrap();
            rows.push((kind.to_string(), effect.duration_since(landed), swap.validate_ms, landed));
            std::thread::sleep(Duration::from_millis(2500));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let summary = pipeline.join().unwrap();

    let t = timeline.lock().unwrap();
    let rate_between = |from: Instant, to: Instant| -> f64 {
        let at = |when: Instant| -> (Instant, u64) {
            let i = t.batches.partition_point(|(b, _)| *b < when).min(t.batches.len() - 1);
            t.batches[i]
        };
        let (a, ra) = at(from);
        let (b, rb) = at(to);
        (rb - ra) as f64 / b.duration_since(a).as_secs_f64().max(1e-9)
    };
    let start = t.batches[0].0 + Duration::from_secs(1);
    let steady: Vec<f64> = (0..)
        .map(|i| start + Duration::from_secs(i))
        .take_while(|s| *s + Duration::from_secs(1) <= steady_end)
        .map(|s| rate_between(s, s + Duration::from_secs(1)))
        .collect();
    let steady_median = median(steady.clone());
    println!("Hot deploy of velocity into a running embedded pipeline ({} records decided)", summary.records);
    println!(
        "steady throughput: median {:.0} records/s over {} one-second windows (min {:.0}, max {:.0})\n",
        steady_median,
        steady.len(),
        steady.iter().cloned().fold(f64::INFINITY, f64::min),
        steady.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "{:<10} {:>16} {:>22} {:>28}",
        "swap", "end to end (ms)", "validate+publish (ms)", "records/s 1 s before → after"
    );
    let mut by_kind: std::collections::BTreeMap<String, Vec<(f64, f64, f64)>> = Default::default();
    for (kind, e2e, validate_ms, landed) in &rows {
        let during = rate_between(*landed, *landed + Duration::from_secs(1));
        let before = rate_between(*landed - Duration::from_secs(1), *landed);
        let ratio = during / before;
        println!(
            "{:<10} {:>16.1} {:>22.1} {:>12.0} → {:>6.0} ({:.2}x)",
            kind,
            e2e.as_secs_f64() * 1000.0,
            validate_ms,
            before,
            during,
            ratio
        );
        by_kind.entry(kind.clone()).or_default().push((e2e.as_secs_f64() * 1000.0, *validate_ms, ratio));
    }
    println!("\nmedians per kind");
    for (kind, v) in by_kind {
        println!(
            "{:<10} end to end {:>7.1} ms   validate+publish {:>7.1} ms   throughput after/before {:.2}x",
            kind,
            median(v.iter().map(|r| r.0).collect()),
            median(v.iter().map(|r| r.1).collect()),
            median(v.iter().map(|r| r.2).collect())
        );
    }
}
