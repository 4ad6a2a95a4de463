//! weir on Apache Kafka, end to end: throughput and produce-to-decision
//! latency with exactly-once on, against a plain consume→produce passthrough
//! of the same records (a minimal rdkafka loop, no processing) as the
//! reference, all in one run against one broker.
//!
//! Run: `cargo bench -p weir --bench kafka`
//!
//! Environment:
//! - `WEIR_BENCH_KAFKA_BOOTSTRAP`: use this broker. Unset, the bench runs
//!   `bash scripts/kafka.sh start` (a no-op when the project's broker is up)
//!   and uses `bash scripts/kafka.sh bootstrap`. It never stops the broker.
//! - `WEIR_BENCH_N`: records per throughput step (default 50 000).
//! - `WEIR_BENCH_RATES`: the latency runs' rates in transactions/s, comma
//!   separated, one run each (default `1000,5000`).
//! - `WEIR_BENCH_LATENCY_SECS`: how long each latency run produces, after a
//!   one-second warm-up (default 15).
//! - `WEIR_BENCH_WARM_SECS`: that warm-up, in seconds (default 1). A fresh
//!   weir on fresh topics takes up to two seconds with the entity hop to
//!   reach its steady pace (BENCHMARKS.md, "A fresh broker's day"); a
//!   longer warm-up leaves that start-up out of the measured window.
//! - `WEIR_BENCH_COMMIT_INTERVAL_MS`: weir's `kafka.commit_interval_ms`
//!   (default: weir's default).
//! - `WEIR_BENCH_BATCH_MAX_RECORDS`: weir's `kafka.batch_max_records` (the
//!   records a worker's outbox holds before the worker waits for the
//!   committer; default: weir's).
//! - `WEIR_BENCH_CLIENT`: librdkafka properties for every weir client
//!   (`kafka.client`), as `key=value` pairs, comma separated (e.g.
//!   `fetch.wait.max.ms=20`), to measure a client setting.
//! - `WEIR_BENCH_WORKERS`: weir's decide workers in the latency, backlog
//!   and restore steps (default: weir's, a worker per core).
//! - `WEIR_BENCH_INSTANCES`: weir instances in the latency step, members
//!   of one group (default 1); the partitions, and with the entity hop the
//!   entities, spread over them. The peak RSS reported is the largest.
//! - `WEIR_BENCH_PARTITIONS`: partitions of every topic (default 4).
//! - `WEIR_BENCH_BACKLOG`: records of the backlog step (default 4 × N;
//!   0 skips the step).
//! - `WEIR_BENCH_ONLY`: run only these steps, comma separated, of
//!   `throughput` (steps 1 to 3), `latency` (4), `backlog` (5), `restore`
//!   (6), `lists` (7), `clients` (the generator and reader of the
//!   latency step at each of its rates without weir, reading the records
//!   themselves: the broker's CPU that is the bench's own) (default: all
//!   but `restore`, `lists` and `clients`).
//! - `WEIR_BENCH_LIST_CHANGES`: list changes the `lists` step times
//!   (default 30): each is produced to the lists topic, and the clock runs
//!   until both of two running instances show its version in /status;
//!   `WEIR_BENCH_LIST_LOAD`: transactions per second the two instances
//!   decide meanwhile (default 0: idle).
//! - `WEIR_BENCH_RESTORE_ACCOUNTS`: accounts the restore step's
//!   transactions are drawn over (default 1 000 000), and
//!   `WEIR_BENCH_RESTORE_TRANSACTIONS` how many (default three per account,
//!   so that about 95 % of the accounts have one).
//! - `WEIR_BENCH_LATENCY_DUMP=<file>`: the latency step writes each
//!   measured decision to `<file>-<rate>`, a line each in the order sent:
//!   when it was sent (µs from the step's start), its latency (µs) and its
//!   transaction id, to see when the slow ones came.
//! - `WEIR_BENCH_KEEP_TOPICS=1`: keep the bench's topics (deleted by default).
//! - `WEIR_BENCH_ENTITIES`: entity kinds this weir routes (`kafka.entities`,
//!   comma-separated, e.g. `device,counterparty,merchant`): the shipped
//!   entity rules run and every transaction with such an entity takes the
//!   entity hop. Unset: none, as before.
//! - `WEIR_BENCH_HOT_MERCHANT`: a share (0 to 1) of the transactions whose
//!   merchant becomes one merchant, `m-hot` (a skewed key: with the hop, its
//!   partition of `by-merchant` takes that share of all tasks). Unset: 0.
//! - `WEIR_BENCH_IN_ORDER=1`: the records are produced in event-time order
//!   (a stable sort by `occurred_at`; the demo's scenes otherwise put some
//!   transactions hours ahead of their neighbours, which the entity hop
//!   holds until every partition has passed them).
//! - `WEIR_BENCH_WEIR_BIN`: run this `weir` binary instead of this build's
//!   (with this build's configuration: a build of a nearby commit, to
//!   compare latencies run by run).
//! - `WEIR_BENCH_BASELINE_BIN` and `WEIR_BENCH_BASELINE_RULES`: another
//!   `weir` binary (e.g. a build of an earlier commit) and a rules directory
//!   it accepts; its throughput is measured in the same run, with its own
//!   defaults, for a before/after.
//! - `WEIR_BENCH_PERF=<file>`: the backlog step records weir with `perf
//!   record -F 499 --call-graph dwarf` into that file from SIGCONT until
//!   the last backlog decision is read (the drain, nothing else), for
//!   `perf report -i <file>`.
//! - `WEIR_BENCH_WEIR_LOG`: weir's log filter (default `info`), e.g.
//!   `weir::kafka=debug` for a line per transaction; with
//!   `WEIR_BENCH_KEEP_LOGS=1` the working directory with weir's logs is kept
//!   and named at the end.
//!
//! Method. The input is `weir::demo::generate(N, 2000, 42)` (N ordinary
//! transactions over 2 000 accounts plus the demo's scenes and three
//! malformed records), keyed by account id (`unparseable` for a record that
//! is not JSON). Every step has fresh topics (4 partitions by default, replication 1)
//! and its own consumer group:
//!
//! 1. Passthrough, plain: the records are pre-produced to an input topic;
//!    then a `BaseConsumer` (`read_committed`, from the earliest offset)
//!    feeds a `ThreadedProducer` (idempotent, not transactional,
//!    `linger.ms=5`) that copies key and payload to an output topic, until
//!    all N are acknowledged. This is the reference.
//! 2. Passthrough, transactional: the same loop batched and committed the way
//!    weir does it (up to 500 records or 100 ms per Kafka transaction; begin,
//!    send, `send_offsets_to_transaction`, `commit_transaction`) with the
//!    clients' defaults: what exactly-once costs by itself. Then the same
//!    "tuned": it waits until no delivery is in flight before
//!    `commit_transaction` and sets `retry.backoff.ms=10`, which removes two
//!    100 ms waits per transaction (rust-rdkafka's flush inside
//!    `commit_transaction` polls a full 100 ms whenever a message is still in
//!    flight; librdkafka retries an `AddOffsetsToTxn` that the broker refuses
//!    with `CONCURRENT_TRANSACTIONS`, while it still writes the previous
//!    transaction's markers, after `retry.backoff.ms`, 100 ms by default).
//! 3. weir throughput: the records are pre-produced, then the release `weir`
//!    binary (`weir run --config`, the shipped rules, weir's defaults but for
//!    the topics) is spawned; the clock runs from spawn until every decision
//!    (N minus the dead letters) is visible to a `read_committed` reader of
//!    the three decision topics. Once with one decide worker (`workers = 1`),
//!    once with the default (a worker per core), to show what the second core
//!    brings.
//! 4. weir latency: a fresh topic set and a running weir (defaults); records
//!    are produced at a fixed rate (1 000/s, then 5 000/s, in small bursts
//!    every ~1 ms on a monotonic schedule, `linger.ms=5`), the first second
//!    of them (`WEIR_BENCH_WARM_SECS`) as an unmeasured warm-up, then
//!    `WEIR_BENCH_LATENCY_SECS` of them measured. A reader thread
//!    (`read_committed`, `fetch.wait.max.ms=10` so its own long poll adds
//!    nothing) takes the `transaction_id` from each decision and records
//!    arrival minus send time in an HDR histogram (µs). The send time is
//!    the actual `send` call; the pacer's worst lag behind its schedule is
//!    reported, so coordinated omission would show. With the entity hop, the
//!    transactions weir's logs count as late at their entities (their
//!    entity rules passed unrun) are reported too.
//! 5. weir backlog: a warm weir (defaults, fresh topics) decides a first
//!    tenth of the records and is then stopped with SIGSTOP, as a service
//!    that went offline; the rest, the backlog, is produced while it is
//!    stopped; the clock starts at SIGCONT and runs until every backlog
//!    decision is visible to a `read_committed` reader. weir's CPU time
//!    and the broker's over that span come from /proc (`utime + stime`;
//!    the broker is the local `kafka.Kafka` JVM, when there is one), so
//!    the report gives the cores weir used and the broker's CPU seconds
//!    per 100 000 decisions, and weir's CPU by thread (from
//!    /proc/<pid>/task): the decide workers, which scale with cores, and
//!    the serial parts, the intake, the committer and librdkafka's
//!    threads. The latency steps report the broker's CPU per
//!    100 000 decisions too, over the whole run (warm-up included).
//! 6. weir restore (only when asked for): weir decides transactions drawn
//!    over `WEIR_BENCH_RESTORE_ACCOUNTS` accounts and stops; a plain
//!    `read_committed` consumer reads the whole changelog (the raw rate);
//!    then weir starts again and a few records reach every partition, so
//!    each worker restores its partitions from the changelog. weir logs
//!    each partition's restore (accounts, records, ms, and how many
//!    partitions it read `together`); a worker restores an assignment's
//!    partitions at once (a build before this, one after another) and the
//!    workers run in parallel, so the restore's wall time is the largest
//!    per-worker sum.
//!
//! Rates: "overall" is the records over the time from start (subscribe or
//! spawn, so including weir's start-up: compiling the rules, joining the
//! group) to the last one; "first→last" excludes start-up; "steady" is the
//! middle 80 % of the records over the time between the 10 % and the 90 %
//! marks. A record counts when it is acknowledged (plain passthrough), its
//! transaction is committed (transactional passthrough) or its decision is
//! read (weir). Peak RSS is the weir process's `VmHWM` from /proc, read
//! before it is stopped with SIGTERM.
//!
//! The broker runs on the same machine as the bench, weir and the reader;
//! on a 2-core machine they all share the two cores.

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

/// Partitions of every topic (`WEIR_BENCH_PARTITIONS`, default 4).
fn partitions() -> i32 {
    static PARTITIONS: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *PARTITIONS.get_or_init(|| env_or("WEIR_BENCH_PARTITIONS", 4))
}
const ACCOUNTS: usize = 2_000;
const SEED: u64 = 42;
/// Records per Kafka transaction in the transactional passthrough (as weir
/// batched before its committer overlapped deciding).
const BATCH_RECORDS: usize = 500;
/// The transactional passthrough's time limit per transaction.
const THROUGHPUT_BATCH_MS: u64 = 100;
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest any throughput step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

fn main() {
    let n: usize = env_or("WEIR_BENCH_N", 50_000);
    let rates: Vec<u64> = std::env::var("WEIR_BENCH_RATES")
        .unwrap_or_else(|_| "1000,5000".to_owned())
        .split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("WEIR_BENCH_RATES: {s:?} is not a number")))
        .collect();
    let latency_secs: u64 = env_or("WEIR_BENCH_LATENCY_SECS", 15);
    let warm_secs: u64 = env_or("WEIR_BENCH_WARM_SECS", 1);
    let backlog_n: usize = env_or("WEIR_BENCH_BACKLOG", 4 * n);
    let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_else(|_| "throughput,latency,backlog".into());
    let step = |name: &str| only.split(',').any(|s| s.trim() == name);
    assert!(n >= 1_000, "WEIR_BENCH_N must be at least 1000");
    assert!(rates.iter().all(|r| *r > 0), "WEIR_BENCH_RATES must be positive");
    let load_before = read("/proc/loadavg");
    let bench = Bench::new();
    eprintln!(
        "weir kafka bench: broker {}, N = {n}, latency at {rates:?}/s for {latency_secs} s each after {warm_secs} s",
        bench.broker
    );

    let recs = records(n);
    let expected = recs.iter().filter(|r| r.tx_id.is_some()).count();
    let dead = recs.len() - expected;

    let tput = step("throughput").then(|| {
        eprintln!("[1/6] passthrough, plain");
        let plain = passthrough(&bench, &recs, Mode::Plain);
        eprintln!("      {}", plain.line());
        eprintln!("[2/6] passthrough, transactional, client defaults (1/2)");
        let txn = passthrough(&bench, &recs, Mode::Txn);
        eprintln!("      {}", txn.line());
        eprintln!("[2/6] passthrough, transactional, tuned (2/2)");
        let tuned = passthrough(&bench, &recs, Mode::TxnTuned);
        eprintln!("      {}", tuned.line());
        eprintln!("[3/6] weir throughput, one decide worker (1/2)");
        let (weir_one, _) = weir_throughput(&bench, &recs, expected, Some(1));
        eprintln!("      {}", weir_one.line());
        eprintln!("[3/6] weir throughput, default (a decide worker per core) (2/2)");
        let (weir, weir_hwm) = weir_throughput(&bench, &recs, expected, None);
        eprintln!("      {}  (peak RSS {})", weir.line(), mib(weir_hwm));
        let baseline = std::env::var_os("WEIR_BENCH_BASELINE_BIN").map(|bin| {
            let rules =
                std::env::var_os("WEIR_BENCH_BASELINE_RULES").expect("WEIR_BENCH_BASELINE_RULES names its rules");
            eprintln!("[3/6] baseline weir throughput (WEIR_BENCH_BASELINE_BIN)");
            let (run, _) = baseline_throughput(&bench, &recs, expected, Path::new(&bin), Path::new(&rules));
            eprintln!("      {}", run.line());
            run
        });
        Throughput { plain, txn, tuned, weir_one, weir, weir_hwm, baseline }
    });
    let mut latencies = Vec::new();
    for (i, rate) in rates.iter().enumerate().filter(|_| step("latency")) {
        eprintln!("[4/6] weir latency at {rate}/s ({}/{})", i + 1, rates.len());
        let warm = (*rate * warm_secs) as usize;
        let lat_recs = records((*rate * latency_secs) as usize + warm);
        let l = latency(&bench, &lat_recs, warm, *rate);
        eprintln!("      {}", l.line());
        latencies.push(l);
    }
    for rate in rates.iter().filter(|_| step("clients")) {
        eprintln!("[4/6] the bench's own clients at {rate}/s, without weir");
        let recs = records((*rate * latency_secs) as usize + *rate as usize);
        let (cpu, read) = clients_only(&bench, &recs, *rate);
        let per_100k = cpu.map_or_else(|| "unknown".to_owned(), |c| format!("{:.1} s", c / read as f64 * 100_000.0));
        eprintln!("      {read} records produced and read; broker CPU per 100 000 records: {per_100k}");
    }
    let restore_accounts: usize = env_or("WEIR_BENCH_RESTORE_ACCOUNTS", 1_000_000);
    let restore = step("restore").then(|| {
        eprintln!("[6/6] weir restore: {restore_accounts} accounts");
        let transactions: usize = env_or("WEIR_BENCH_RESTORE_TRANSACTIONS", 3 * restore_accounts);
        let r = restore(&bench, transactions, restore_accounts);
        eprintln!("      {}", r.line());
        r
    });
    let lists = step("lists").then(|| {
        let changes: usize = env_or("WEIR_BENCH_LIST_CHANGES", 30);
        eprintln!("[7/7] runtime lists: {changes} changes, two running instances");
        let l = list_changes(&bench, changes);
        eprintln!("      {}", l.line());
        l
    });
    let backlog = (step("backlog") && backlog_n > 0).then(|| {
        eprintln!("[5/6] weir backlog: {backlog_n} records produced while weir is stopped");
        let b = backlog(&bench, &records(backlog_n));
        eprintln!("      {}", b.line());
        eprintln!("      {}", b.threads_line());
        b
    });
    let load_after = read("/proc/loadavg");
    bench.delete_topics();

    // The report.
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let host = bench.broker.split(':').next().unwrap_or("");
    let local = host.starts_with("127.") || host == "localhost" || host == "[::1]";
    println!();
    println!("weir on Kafka, end to end (cargo bench -p weir --bench kafka)");
    println!("machine:  {nproc} CPUs ({cpu}), {:.1} GiB RAM", mem_kb as f64 / 1024.0 / 1024.0);
    println!(
        "broker:   {} — {}{}",
        bench.broker,
        if bench.project_broker { "the project's broker (scripts/kafka.sh), " } else { "WEIR_BENCH_KAFKA_BOOTSTRAP, " },
        if local { "on this same machine, sharing its CPUs" } else { "on another host" }
    );
    println!("load:     {} before, {} after (1/5/15 min)", loadavg(&load_before), loadavg(&load_after));
    println!(
        "input:    {} records ({expected} transactions + {dead} malformed → dead letters), {ACCOUNTS} accounts, {} partitions",
        recs.len(),
        partitions()
    );
    println!();
    let w = 46;
    if let Some(Throughput { plain, txn, tuned, weir_one, weir, weir_hwm, baseline }) = &tput {
        println!(
            "{:<w$} {:>13} {:>13} {:>13} {:>9}",
            "throughput (records/s)", "overall", "first→last", "steady", "start-up"
        );
        for r in [plain, txn, tuned].into_iter().chain(baseline).chain([weir_one, weir]) {
            println!(
                "{:<w$} {:>13} {:>13} {:>13} {:>8.2}s",
                r.name,
                thousands(r.overall_rate()),
                thousands(r.first_to_last_rate()),
                thousands(r.steady_rate()),
                secs(r.done_ns[0])
            );
        }
        let ratio = |f: fn(&Run) -> f64, reference: &Run| f(weir) / f(reference);
        for reference in [plain, txn, tuned].into_iter().chain(baseline) {
            println!(
                "{:<w$} {:>12.2}x {:>12.2}x {:>12.2}x",
                format!("  weir ÷ {}", reference.short),
                ratio(Run::overall_rate, reference),
                ratio(Run::first_to_last_rate, reference),
                ratio(Run::steady_rate, reference),
            );
        }
        let steady_ratio = ratio(Run::steady_rate, plain);
        println!(
            "{:<w$} {}",
            "  target ≥ 0.5x plain passthrough (steady)",
            verdict(steady_ratio >= 0.5, &format!("{steady_ratio:.2}x ({:+.0} %)", (steady_ratio / 0.5 - 1.0) * 100.0))
        );
        println!(
            "{:<w$} {:>12.2}x {:>12.2}x {:>12.2}x",
            "  default ÷ one decide worker",
            weir.overall_rate() / weir_one.overall_rate(),
            weir.first_to_last_rate() / weir_one.first_to_last_rate(),
            weir.steady_rate() / weir_one.steady_rate(),
        );
        println!("{:<w$} {}", "  offsets+commit per txn, txn default", txn.note);
        println!("{:<w$} {}", "  offsets+commit per txn, txn tuned¹", tuned.note);
        println!(
            "{:<w$} {}",
            "  weir peak RSS (VmHWM), throughput run",
            verdict(*weir_hwm < 200 * 1024, &format!("{} (target < 200 MiB)", mib(*weir_hwm)))
        );
    }
    if !latencies.is_empty() {
        println!();
        println!(
            "{:<w$} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>9} {:>9} {:>10}",
            "latency, produce→decision (ms)", "p50", "p90", "p99", "p99.9", "max", "rate/s", "pacer lag", "peak RSS"
        );
    }
    for l in &latencies {
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<w$} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:>9} {:>7.1}ms {:>10}",
            format!("weir @{}/s", l.rate),
            q(&l.e2e, 0.5),
            q(&l.e2e, 0.9),
            q(&l.e2e, 0.99),
            q(&l.e2e, 0.999),
            l.e2e.max() as f64 / 1000.0,
            thousands(l.achieved_rate),
            l.max_lag_ns as f64 / 1e6,
            mib(l.hwm_kb),
        );
        println!(
            "{:<w$} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            "  of which produce→ack (generator side)",
            q(&l.ack, 0.5),
            q(&l.ack, 0.9),
            q(&l.ack, 0.99),
            q(&l.ack, 0.999),
            l.ack.max() as f64 / 1000.0,
        );
        if let Some(cpu) = l.broker_cpu_s {
            let per = cpu / l.decisions as f64 * 100_000.0;
            println!(
                "{:<w$} {}",
                "  broker CPU per 100 000 decisions",
                verdict(per <= 4.0, &format!("{per:.1} s ({cpu:.1} s for {} decisions; target ≤ 4 s)", l.decisions))
            );
        }
        let p99 = q(&l.e2e, 0.99);
        // The targets: p99 ≤ 50 ms at 1 000/s, ≤ 100 ms at 5 000/s.
        let target = if l.rate <= 1_000 { 50.0 } else { 100.0 };
        println!(
            "{:<w$} {}",
            format!("  target p99 ≤ {target:.0} ms; RSS < 200 MiB"),
            verdict(
                p99 <= target && l.hwm_kb < 200 * 1024,
                &format!(
                    "p99 {p99:.1} ms ({:+.0} %), {} decisions measured, {} duplicates, {} late at their entities",
                    (p99 / target - 1.0) * 100.0,
                    l.e2e.len(),
                    l.duplicates,
                    l.late
                )
            )
        );
    }
    if let Some(r) = &restore {
        println!();
        println!("{:<w$} {}", "restore from the changelog", r.line());
    }
    if let Some(l) = &lists {
        println!();
        println!("{:<w$} {}", "a list change, produced → in effect on both", l.line());
        println!(
            "{:<w$} {}",
            "  target: within one second on both",
            verdict(l.max_ms() <= 1000.0, &format!("max {:.0} ms", l.max_ms()))
        );
    }
    if let Some(b) = &backlog {
        println!();
        println!("{:<w$} {}", "backlog, a warm weir resumed (SIGCONT)", b.line());
        println!(
            "{:<w$} {}",
            "  target ≥ 120 000 decisions/s on ≥ 1.8 cores",
            verdict(
                b.rate() >= 120_000.0 && b.cores() >= 1.8,
                &format!("{} /s, {:.2} cores", thousands(b.rate()), b.cores())
            )
        );
        if let Some(per) = b.broker_per_100k() {
            println!("{:<w$} {per:.1} s", "  broker CPU per 100 000 decisions");
        }
        println!("{:<w$} {}", "  weir's CPU by thread (per decision)", b.threads_line());
    }
    if tput.is_some() {
        println!();
        println!(
            "¹ tuned: waits until the producer has no delivery in flight before commit_transaction (rust-rdkafka's \
         commit_transaction flushes first, and its flush polls a full 100 ms whenever a message is still in \
         flight), and retry.backoff.ms=10 (librdkafka retries an AddOffsetsToTxn refused with \
         CONCURRENT_TRANSACTIONS, which the broker answers while it still writes the previous transaction's \
         markers, after retry.backoff.ms, default 100 ms)."
        );
    }
}

/// Steps 1 to 3: the passthroughs and weir's throughput.
struct Throughput {
    plain: Run,
    txn: Run,
    tuned: Run,
    weir_one: Run,
    weir: Run,
    weir_hwm: u64,
    baseline: Option<Run>,
}

// ---------------------------------------------------------------- set-up

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// One input record.
struct Rec {
    key: String,
    payload: String,
    /// The transaction id if weir decides the record (not a dead letter).
    tx_id: Option<String>,
}

fn records(n: usize) -> Vec<Rec> {
    let hot: f64 = env_or("WEIR_BENCH_HOT_MERCHANT", 0.0);
    assert!((0.0..=1.0).contains(&hot), "WEIR_BENCH_HOT_MERCHANT must be a share between 0 and 1");
    let recs = weir::demo::generate(n, ACCOUNTS, SEED)
        .lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            // Every record whose spread index falls under the share (the
            // same records in every run) is moved to the hot merchant.
            let spread = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            let line = if (spread as f64) < hot * (1u64 << 53) as f64 { to_hot_merchant(line) } else { line };
            let key = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("account_id").and_then(|a| a.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "unparseable".to_owned());
            let tx_id = weir::events::parse_transaction(line.as_bytes(), weir::events::MAX_EVENT_BYTES)
                .ok()
                .map(|t| t.transaction_id);
            Rec { key, payload: line, tx_id }
        })
        .collect::<Vec<Rec>>();
    if std::env::var("WEIR_BENCH_IN_ORDER").is_ok_and(|v| v == "1") {
        // A record that is not a transaction keeps its place among the
        // ones before it.
        let mut at = i64::MIN;
        let mut keyed: Vec<(i64, Rec)> = recs
            .into_iter()
            .map(|r| {
                if let Ok(tx) = weir::events::parse_transaction(r.payload.as_bytes(), weir::events::MAX_EVENT_BYTES) {
                    at = tx.occurred_at_ms();
                }
                (at, r)
            })
            .collect();
        keyed.sort_by_key(|(at, _)| *at);
        return keyed.into_iter().map(|(_, r)| r).collect();
    }
    recs
}

/// The transaction at the hot merchant, `m-hot` (a record that is not a
/// transaction with a merchant stays as it is).
fn to_hot_merchant(line: String) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line) else { return line };
    match v.pointer_mut("/merchant/id") {
        Some(id) => *id = serde_json::Value::from("m-hot"),
        None => return line,
    }
    v.to_string()
}

/// The broker, the working directory (rules, configs, logs) and the topics
/// this run made.
struct Bench {
    broker: String,
    project_broker: bool,
    dir: tempfile::TempDir,
    run: String,
    topics: Mutex<Vec<String>>,
}

impl Bench {
    fn new() -> Bench {
        let broker = weir_testkit::Broker::get(&["WEIR_BENCH_KAFKA_BOOTSTRAP"]);
        let (broker, project_broker) = (broker.bootstrap.clone(), broker.project);
        assert!(!broker.is_empty(), "no bootstrap address");
        let mut dir = tempfile::Builder::new().prefix("weir-bench-kafka-").tempdir().expect("a temporary directory");
        if std::env::var("WEIR_BENCH_KEEP_LOGS").is_ok_and(|v| v == "1") {
            dir.disable_cleanup(true);
            eprintln!("weir's logs are kept in {}", dir.path().display());
        }
        weir::packages::export_shipped(&dir.path().join("rules")).expect("exporting the shipped rules");
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let run = format!("{}-{secs}", std::process::id());
        Bench { broker, project_broker, dir, run, topics: Mutex::new(Vec::new()) }
    }

    fn prefix(&self, step: &str) -> String {
        format!("weir-bench-{}-{step}", self.run)
    }

    fn remember(&self, topics: &[&str]) {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).extend(topics.iter().map(|t| (*t).to_owned()));
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new().set("bootstrap.servers", &self.broker).create().expect("an admin client")
    }

    fn create_topics(&self, names: &[&str]) {
        self.remember(names);
        let topics: Vec<NewTopic> =
            names.iter().map(|n| NewTopic::new(n, partitions(), TopicReplication::Fixed(1))).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures_executor::block_on(self.admin().create_topics(&topics, &opts))
            .unwrap_or_else(|e| panic!("creating topics {names:?}: {e}"));
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => panic!("creating topic {t}: {code}"),
            }
        }
    }

    fn delete_topics(&self) {
        let mut topics = std::mem::take(&mut *self.topics.lock().unwrap_or_else(|e| e.into_inner()));
        // Instances of one step share topics: each name once.
        topics.sort();
        topics.dedup();
        if topics.is_empty() || std::env::var("WEIR_BENCH_KEEP_TOPICS").is_ok_and(|v| v == "1") {
            return;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        match futures_executor::block_on(self.admin().delete_topics(&names, &opts)) {
            Ok(results) => {
                for r in results {
                    if let Err((t, code)) = r {
                        eprintln!("deleting topic {t}: {code}");
                    }
                }
            }
            Err(e) => eprintln!("deleting the bench's topics: {e}"),
        }
    }

    /// A producer configured like weir's: idempotent, `linger.ms=5`, queues
    /// bounded like weir's.
    fn producer(&self, acks: &Arc<Acks>, extra: &[(&str, &str)]) -> ThreadedProducer<AckContext> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.broker)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.kbytes", "65536")
            .set("queue.buffering.max.messages", "100000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create_with_context(AckContext(acks.clone())).expect("a producer")
    }

    /// A group member configured like weir's consumer.
    fn consumer(&self, group: &str, auto_commit: bool) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.broker)
            .set("group.id", group)
            .set("enable.auto.commit", auto_commit.to_string())
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("queued.max.messages.kbytes", "16384")
            .create()
            .expect("a consumer")
    }

    /// A `read_committed` reader of every partition of `topics` from the
    /// beginning, with `fetch.wait.max.ms=10` so its own long poll adds
    /// nothing to a latency.
    fn reader(&self, topics: &[String]) -> BaseConsumer {
        self.reader_with(topics, ("fetch.wait.max.ms", "10"))
    }

    /// A `read_committed` reader of every partition of `topics` from the
    /// beginning, with one more client property.
    fn reader_with(&self, topics: &[String], (key, value): (&str, &str)) -> BaseConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.broker)
            .set("group.id", format!("{}-reader", self.prefix("r")))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set(key, value)
            .create()
            .expect("a reader");
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..partitions() {
                tpl.add_partition_offset(t, p, Offset::Beginning).expect("a partition offset");
            }
        }
        consumer.assign(&tpl).unwrap_or_else(|e| panic!("assigning {topics:?}: {e}"));
        consumer
    }

    /// Produces the records to `topic` and waits until all are acknowledged.
    fn preproduce(&self, topic: &str, recs: &[Rec]) {
        let acks = Acks::new(Instant::now(), 0);
        let producer = self.producer(&acks, &[]);
        for r in recs {
            send(&producer, topic, r.key.as_bytes(), r.payload.as_bytes(), usize::MAX);
        }
        producer.flush(Duration::from_secs(120)).unwrap_or_else(|e| panic!("pre-producing to {topic}: {e}"));
        acks.check(recs.len(), &format!("pre-producing to {topic}"));
    }
}

/// Delivery reports: counts, the first error, and when each record was
/// acknowledged (ns after `base`, for records sent with an index).
struct Acks {
    base: Instant,
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    at_ns: Vec<AtomicU64>,
}

impl Acks {
    fn new(base: Instant, slots: usize) -> Arc<Acks> {
        Arc::new(Acks {
            base,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            at_ns: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn check(&self, expected: usize, what: &str) {
        let failed = self.failed.load(Ordering::SeqCst);
        if failed > 0 {
            let first = self.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("{what}: {failed} records were not delivered; the first error: {}", first.unwrap_or_default());
        }
        let ok = self.ok.load(Ordering::SeqCst);
        assert_eq!(ok, expected as u64, "{what}: records acknowledged");
    }
}

struct AckContext(Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::SeqCst);
                if let Some(slot) = self.0.at_ns.get(index) {
                    slot.store(ns_since(self.0.base), Ordering::SeqCst);
                }
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::SeqCst);
                self.0.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn ns_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Sends a record, waiting while the producer's queue is full.
fn send(producer: &ThreadedProducer<AckContext>, topic: &str, key: &[u8], payload: &[u8], index: usize) {
    let mut record = BaseRecord::with_opaque_to(topic, index).key(key).payload(payload);
    let started = Instant::now();
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                assert!(started.elapsed() < Duration::from_secs(60), "producing to {topic}: queue full for 60 s");
                std::thread::sleep(Duration::from_millis(1));
                record = r;
            }
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
}

// ------------------------------------------------------------ throughput

/// One throughput measurement: when each record was done, in ns after the
/// start, sorted.
struct Run {
    name: String,
    short: &'static str,
    done_ns: Vec<u64>,
    note: String,
}

impl Run {
    fn new(name: String, short: &'static str, mut done_ns: Vec<u64>, note: String) -> Run {
        assert!(done_ns.len() >= 10, "{name}: too few records measured");
        done_ns.sort_unstable();
        Run { name, short, done_ns, note }
    }

    fn overall_rate(&self) -> f64 {
        self.done_ns.len() as f64 / secs(*self.done_ns.last().expect("not empty")).max(1e-9)
    }

    fn first_to_last_rate(&self) -> f64 {
        let d = &self.done_ns;
        (d.len() - 1) as f64 / secs(d[d.len() - 1] - d[0]).max(1e-9)
    }

    fn steady_rate(&self) -> f64 {
        let d = &self.done_ns;
        let (a, z) = (d.len() / 10, d.len() * 9 / 10);
        (z - a) as f64 / secs(d[z] - d[a]).max(1e-9)
    }

    fn line(&self) -> String {
        format!(
            "{} records: {} overall ({:.2} s), {} first→last, {} steady (records/s)",
            self.done_ns.len(),
            thousands(self.overall_rate()),
            secs(*self.done_ns.last().expect("not empty")),
            thousands(self.first_to_last_rate()),
            thousands(self.steady_rate())
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Idempotent, not transactional.
    Plain,
    /// Transactions made the way weir makes them, with the clients' defaults.
    Txn,
    /// Transactions without the two 100 ms waits (see the report's note).
    TxnTuned,
}

/// The reference: consume → produce with no processing; plain or in
/// transactions of up to 500 records / 100 ms, as weir batches.
fn passthrough(bench: &Bench, recs: &[Rec], mode: Mode) -> Run {
    let transactional = mode != Mode::Plain;
    let step = match mode {
        Mode::Plain => "plain",
        Mode::Txn => "ptxn",
        Mode::TxnTuned => "ptuned",
    };
    let prefix = bench.prefix(step);
    let (input, output) = (format!("{prefix}.in"), format!("{prefix}.out"));
    bench.create_topics(&[&input, &output]);
    bench.preproduce(&input, recs);

    let total = recs.len();
    let start = Instant::now();
    let acks = Acks::new(start, total);
    let txn_id = format!("{prefix}-txn");
    let mut extra = vec![("transactional.id", txn_id.as_str()), ("transaction.timeout.ms", "10000")];
    match mode {
        Mode::Plain => extra.clear(),
        Mode::Txn => {}
        Mode::TxnTuned => extra.push(("retry.backoff.ms", "10")),
    }
    let producer = bench.producer(&acks, &extra);
    let consumer = bench.consumer(&format!("{prefix}-group"), !transactional);
    consumer.subscribe(&[&input]).expect("subscribing");
    let deadline = start + STEP_TIMEOUT;
    let timed_out = |done: usize| {
        assert!(Instant::now() < deadline, "{step} passthrough: only {done} of {total} records after {STEP_TIMEOUT:?}")
    };

    if !transactional {
        let mut forwarded = 0;
        while forwarded < total {
            timed_out(forwarded);
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    send(&producer, &output, m.key().unwrap_or_default(), m.payload().unwrap_or_default(), forwarded);
                    forwarded += 1;
                }
                Some(Err(e)) => panic!("plain passthrough: consumer: {e}"),
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flushing the passthrough producer");
        acks.check(total, "plain passthrough");
        let done = acks.at_ns.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        return Run::new("passthrough, plain (idempotent, linger 5 ms)".to_owned(), "plain", done, String::new());
    }

    producer.init_transactions(TXN_TIMEOUT).expect("registering the transactional producer");
    let mut done = Vec::with_capacity(total);
    let mut commit_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("a histogram");
    let mut batch: Vec<(i32, i64, Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH_RECORDS);
    while done.len() < total {
        timed_out(done.len());
        batch.clear();
        let batch_deadline = Instant::now() + Duration::from_millis(THROUGHPUT_BATCH_MS);
        while batch.len() < BATCH_RECORDS {
            let left = batch_deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                None => break,
                Some(Ok(m)) => batch.push((
                    m.partition(),
                    m.offset(),
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Some(Err(e)) => panic!("transactional passthrough: consumer: {e}"),
            }
        }
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction().expect("begin_transaction");
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (i, (partition, offset, key, payload)) in batch.iter().enumerate() {
            send(&producer, &output, key, payload, done.len() + i);
            next.insert(*partition, offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (p, o) in &next {
            offsets.add_partition_offset(&input, *p, Offset::Offset(*o)).expect("an offset");
        }
        let c0 = Instant::now();
        let metadata = consumer.group_metadata().expect("the group's metadata");
        producer.send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT).expect("send_offsets_to_transaction");
        if mode == Mode::TxnTuned {
            while producer.in_flight_count() > 0 {
                assert!(c0.elapsed() < TXN_TIMEOUT, "deliveries still in flight after {TXN_TIMEOUT:?}");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        producer.commit_transaction(TXN_TIMEOUT).expect("commit_transaction");
        commit_us.saturating_record(c0.elapsed().as_micros() as u64);
        let at = ns_since(start);
        done.extend(std::iter::repeat_n(at, batch.len()));
    }
    acks.check(total, "transactional passthrough");
    let note = format!(
        "{} transactions, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        commit_us.len(),
        commit_us.value_at_quantile(0.5) as f64 / 1000.0,
        commit_us.value_at_quantile(0.99) as f64 / 1000.0,
        commit_us.max() as f64 / 1000.0
    );
    let (name, short) = match mode {
        Mode::TxnTuned => ("passthrough, txn tuned¹", "txn tuned"),
        _ => ("passthrough, txn default", "txn default"),
    };
    Run::new(format!("{name} ({BATCH_RECORDS} rec / {THROUGHPUT_BATCH_MS} ms)"), short, done, note)
}

/// weir from spawn until every decision is readable; (the run, peak RSS kB).
fn weir_throughput(bench: &Bench, recs: &[Rec], expected: usize, workers: Option<usize>) -> (Run, u64) {
    let step = workers.map(|w| format!("tput{w}")).unwrap_or_else(|| "tput".to_owned());
    let weir = WeirProcess::prepare(bench, &step, workers);
    let name = match workers {
        Some(w) => format!("weir, exactly-once, {w} decide worker(s)"),
        None => "weir, exactly-once (defaults)".to_owned(),
    };
    throughput_of(bench, weir, recs, expected, name)
}

/// The baseline binary's throughput, with its defaults.
fn baseline_throughput(bench: &Bench, recs: &[Rec], expected: usize, binary: &Path, rules: &Path) -> (Run, u64) {
    let weir = WeirProcess::prepare_baseline(bench, binary, rules);
    throughput_of(bench, weir, recs, expected, "baseline weir (WEIR_BENCH_BASELINE_BIN)".to_owned())
}

fn throughput_of(bench: &Bench, mut weir: WeirProcess, recs: &[Rec], expected: usize, name: String) -> (Run, u64) {
    bench.preproduce(&weir.kafka.topics.input, recs);
    let reader = bench.reader(&weir.decision_topics());
    let start = Instant::now();
    weir.spawn();
    let mut done = Vec::with_capacity(expected);
    let mut checked = Instant::now();
    while done.len() < expected {
        if start.elapsed() > STEP_TIMEOUT {
            panic!("weir decided only {} of {expected} transactions in {STEP_TIMEOUT:?}", done.len());
        }
        match reader.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(_)) => done.push(ns_since(start)),
            Some(Err(e)) => panic!("reading decisions: {e}"),
        }
        if checked.elapsed() > Duration::from_millis(500) {
            weir.check_alive();
            checked = Instant::now();
        }
    }
    let hwm = weir.vm_hwm_kb();
    // Exactly once: nothing more arrives.
    let extra_until = Instant::now() + Duration::from_secs(1);
    let mut extra = 0;
    while Instant::now() < extra_until {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(100)) {
            extra += 1;
        }
    }
    assert_eq!(extra, 0, "weir published {extra} decisions more than the {expected} transactions");
    weir.terminate();
    (Run::new(name, "weir", done, String::new()), hwm)
}

// --------------------------------------------------------------- latency

struct Latency {
    rate: u64,
    /// Produce → decision read, µs, for the measured records.
    e2e: Histogram<u64>,
    /// Produce → acknowledged by the broker, µs.
    ack: Histogram<u64>,
    achieved_rate: f64,
    max_lag_ns: u64,
    duplicates: u64,
    hwm_kb: u64,
    /// Decisions read (warm-up included), and the broker's CPU seconds
    /// over the run, when the broker is a local process.
    decisions: usize,
    broker_cpu_s: Option<f64>,
    /// Transactions that came late at their entities (their entity rules
    /// passed them unrun), counted from the instances' logs.
    late: u64,
}

impl Latency {
    fn line(&self) -> String {
        let q = |q: f64| self.e2e.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{} decisions: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} records/s; peak RSS {}",
            self.e2e.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            self.e2e.max() as f64 / 1000.0,
            thousands(self.achieved_rate),
            mib(self.hwm_kb)
        )
    }
}

#[derive(Deserialize)]
struct DecisionTx {
    transaction_id: String,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("a histogram")
}

/// Produces `recs` at `rate`/s to a running weir; the first `warm` are not
/// measured.
fn latency(bench: &Bench, recs: &[Rec], warm: usize, rate: u64) -> Latency {
    let step = format!("lat{rate}");
    let mut weir = WeirProcess::prepare(bench, &step, None);
    // More members of the group, when asked for: partitions (and, with the
    // entity hop, the entities) spread over them.
    let instances: usize = env_or("WEIR_BENCH_INSTANCES", 1);
    assert!(instances >= 1, "WEIR_BENCH_INSTANCES must be at least 1");
    let mut others: Vec<WeirProcess> =
        (1..instances).map(|i| WeirProcess::prepare_instance(bench, &step, &format!("bench-{i}"), None)).collect();
    let n = recs.len();
    let expected = recs.iter().filter(|r| r.tx_id.is_some()).count();
    let index: HashMap<String, usize> =
        recs.iter().enumerate().filter_map(|(i, r)| r.tx_id.clone().map(|t| (t, i))).collect();
    assert_eq!(index.len(), expected, "transaction ids are unique");
    let base = Instant::now();
    let sent_ns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());

    // The reader thread.
    let reader = bench.reader(&weir.decision_topics());
    let reader_timeout = Duration::from_secs(n as u64 / rate + 240);
    let sent = sent_ns.clone();
    let dump =
        std::env::var_os("WEIR_BENCH_LATENCY_DUMP").map(|d| PathBuf::from(format!("{}-{rate}", d.to_string_lossy())));
    let reading = std::thread::spawn(move || {
        let mut hist = histogram();
        let mut each = Vec::new();
        let mut seen = vec![false; n];
        let (mut count, mut duplicates) = (0, 0u64);
        while count < expected {
            assert!(base.elapsed() < reader_timeout, "latency reader: only {count} of {expected} decisions read");
            match reader.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    let arrived = ns_since(base);
                    let d: DecisionTx = serde_json::from_slice(m.payload().unwrap_or_default())
                        .unwrap_or_else(|e| panic!("a decision without transaction_id: {e}"));
                    let i = *index.get(&d.transaction_id).unwrap_or_else(|| panic!("unknown {}", d.transaction_id));
                    if std::mem::replace(&mut seen[i], true) {
                        duplicates += 1;
                        continue;
                    }
                    count += 1;
                    let at = sent[i].load(Ordering::SeqCst);
                    assert!(at > 0, "{} decided before it was sent", d.transaction_id);
                    if i >= warm {
                        hist.saturating_record(arrived.saturating_sub(at) / 1000);
                        if dump.is_some() {
                            each.push((at / 1000, arrived.saturating_sub(at) / 1000, d.transaction_id));
                        }
                    }
                }
                Some(Err(e)) => panic!("latency reader: {e}"),
            }
        }
        if let Some(dump) = dump {
            each.sort_unstable();
            let lines: String = each.iter().map(|(at, us, tx)| format!("{at} {us} {tx}\n")).collect();
            std::fs::write(&dump, lines).unwrap_or_else(|e| panic!("writing {}: {e}", dump.display()));
        }
        (hist, duplicates)
    });

    weir.spawn();
    weir.wait_for_log("partitions assigned", Duration::from_secs(120));
    for other in &mut others {
        other.spawn();
        other.wait_for_log("partitions assigned", Duration::from_secs(120));
    }
    if !others.is_empty() {
        // The rebalance that gave the later members their partitions is
        // over once each has restored them.
        for w in std::iter::once(&mut weir).chain(others.iter_mut()) {
            w.wait_for_log("state restored from the changelog", Duration::from_secs(120));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let broker_before = broker_cpu();
    let acks = Acks::new(base, n);
    let producer = bench.producer(&acks, &[]);
    let input = weir.kafka.topics.input.clone();
    let max_lag_ns = produce_paced(&producer, &input, recs, rate, warm, base, &sent_ns, || {
        weir.check_alive();
        others.iter_mut().for_each(WeirProcess::check_alive);
    });
    producer.flush(Duration::from_secs(60)).expect("flushing the load generator");
    acks.check(n, "the load generator");
    let window = sent_ns[n - 1].load(Ordering::SeqCst) - sent_ns[warm].load(Ordering::SeqCst);
    let achieved_rate = (n - 1 - warm) as f64 / secs(window).max(1e-9);
    let mut ack = histogram();
    for j in warm..n {
        let (s, a) = (sent_ns[j].load(Ordering::SeqCst), acks.at_ns[j].load(Ordering::SeqCst));
        ack.saturating_record(a.saturating_sub(s) / 1000);
    }

    // Wait for the reader, checking on weir.
    while !reading.is_finished() {
        weir.check_alive();
        others.iter_mut().for_each(WeirProcess::check_alive);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (e2e, duplicates) = reading.join().unwrap_or_else(|_| panic!("the latency reader failed (see above)"));
    let broker_cpu_s = broker_before.zip(broker_cpu()).map(|(before, after)| after - before);
    let hwm_kb = others.iter_mut().map(WeirProcess::vm_hwm_kb).fold(weir.vm_hwm_kb(), u64::max);
    for other in &mut others {
        other.terminate();
    }
    weir.terminate();
    let late = std::iter::once(&weir)
        .chain(&others)
        .map(|w| weir_testkit::entity_late(&std::fs::read_to_string(&w.log).unwrap_or_default()))
        .sum();
    Latency { rate, e2e, ack, achieved_rate, max_lag_ns, duplicates, hwm_kb, decisions: expected, broker_cpu_s, late }
}

/// Produces `recs` to `topic` at `rate` a second on a monotonic schedule
/// (a record every 1/rate s, sent in the millisecond it is due), noting
/// when each was sent in `sent_ns`; calls `tick` every half second. The
/// largest lag behind the schedule after the first `warm` records.
#[allow(clippy::too_many_arguments)] // the schedule's parts, all needed
fn produce_paced(
    producer: &ThreadedProducer<AckContext>,
    topic: &str,
    recs: &[Rec],
    rate: u64,
    warm: usize,
    base: Instant,
    sent_ns: &[AtomicU64],
    mut tick: impl FnMut(),
) -> u64 {
    let n = recs.len();
    let period_ns = 1_000_000_000 / rate;
    let t0 = Instant::now();
    let mut i = 0;
    let mut max_lag_ns = 0;
    let mut checked = Instant::now();
    while i < n {
        let due = ((t0.elapsed().as_nanos() as u64 / period_ns) as usize + 1).min(n);
        while i < due {
            sent_ns[i].store(ns_since(base), Ordering::SeqCst);
            send(producer, topic, recs[i].key.as_bytes(), recs[i].payload.as_bytes(), i);
            i += 1;
        }
        let lag = (t0.elapsed().as_nanos() as u64).saturating_sub((i as u64 - 1) * period_ns);
        if i > warm {
            max_lag_ns = max_lag_ns.max(lag);
        }
        if checked.elapsed() > Duration::from_millis(500) {
            tick();
            checked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    max_lag_ns
}

/// The bench's own clients without weir: the load generator at `rate`
/// (as in the latency step) and a `read_committed` reader like the
/// latency step's, reading the records themselves, as it would read
/// weir's decisions. The broker's CPU seconds over the run, and the
/// records read: what the latency step's broker figure holds that is not
/// weir's.
fn clients_only(bench: &Bench, recs: &[Rec], rate: u64) -> (Option<f64>, usize) {
    let topic = format!("{}-in", bench.prefix(&format!("cli{rate}")));
    bench.create_topics(&[&topic]);
    let n = recs.len();
    let reader = bench.reader(std::slice::from_ref(&topic));
    let reader_timeout = Duration::from_secs(n as u64 / rate + 240);
    let reading = std::thread::spawn(move || {
        read_records(&reader, n, "clients reader", reader_timeout, || {});
        n
    });
    let base = Instant::now();
    let sent_ns: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let broker_before = broker_cpu();
    let acks = Acks::new(base, n);
    let producer = bench.producer(&acks, &[]);
    produce_paced(&producer, &topic, recs, rate, 0, base, &sent_ns, || {});
    producer.flush(Duration::from_secs(60)).expect("flushing the load generator");
    acks.check(n, "the load generator");
    let read = reading.join().unwrap_or_else(|_| panic!("the clients reader failed (see above)"));
    let broker_cpu_s = broker_before.zip(broker_cpu()).map(|(before, after)| after - before);
    (broker_cpu_s, read)
}

// --------------------------------------------------------------- backlog

/// Step 5: a warm weir, stopped while a backlog was produced, resumed.
struct Backlog {
    decisions: usize,
    wall_s: f64,
    weir_cpu_s: f64,
    /// weir's CPU seconds over the drain by kind of thread.
    threads: BTreeMap<&'static str, f64>,
    broker_cpu_s: Option<f64>,
    hwm_kb: u64,
}

impl Backlog {
    fn rate(&self) -> f64 {
        self.decisions as f64 / self.wall_s.max(1e-9)
    }

    /// weir's CPU time over the wall time: the cores it kept busy.
    fn cores(&self) -> f64 {
        self.weir_cpu_s / self.wall_s.max(1e-9)
    }

    fn broker_per_100k(&self) -> Option<f64> {
        self.broker_cpu_s.map(|cpu| cpu / self.decisions as f64 * 100_000.0)
    }

    /// weir's CPU per thread kind, in µs per decision.
    fn threads_line(&self) -> String {
        let per = |s: f64| s * 1e6 / self.decisions.max(1) as f64;
        let kinds: Vec<String> =
            self.threads.iter().map(|(kind, s)| format!("{kind} {s:.1} s ({:.1} µs)", per(*s))).collect();
        kinds.join(", ")
    }

    fn line(&self) -> String {
        let broker = self.broker_cpu_s.map(|c| format!(", broker {c:.1} CPU-s")).unwrap_or_default();
        format!(
            "{} decisions in {:.2} s: {} /s; weir {:.1} CPU-s ({:.2} cores){broker}; peak RSS {}",
            self.decisions,
            self.wall_s,
            thousands(self.rate()),
            self.weir_cpu_s,
            self.cores(),
            mib(self.hwm_kb)
        )
    }
}

fn backlog(bench: &Bench, recs: &[Rec]) -> Backlog {
    let mut weir = WeirProcess::prepare(bench, "backlog", None);
    let reader = bench.reader(&weir.decision_topics());
    let (warm, rest) = recs.split_at(recs.len() / 10);
    let decided = |r: &[Rec]| r.iter().filter(|r| r.tx_id.is_some()).count();
    let read = |count: usize, what: &str, weir: &mut WeirProcess| read_decisions(&reader, count, what, weir);
    weir.spawn();
    weir.wait_for_log("partitions assigned", Duration::from_secs(120));
    bench.preproduce(&weir.kafka.topics.input, warm);
    read(decided(warm), "the warm-up", &mut weir);
    // Nothing in flight: no Kafka transaction is left open while stopped.
    std::thread::sleep(Duration::from_secs(1));
    let pid = weir.running().pid();
    signal(pid, "STOP");
    bench.preproduce(&weir.kafka.topics.input, rest);
    let (weir_before, broker_before) = (cpu_secs(pid).expect("weir's CPU time"), broker_cpu());
    let threads_before = thread_cpu(pid);
    let perf = std::env::var_os("WEIR_BENCH_PERF").map(|out| {
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,32768", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .spawn()
            .expect("WEIR_BENCH_PERF: running perf");
        // perf attaches within this while weir is stopped.
        std::thread::sleep(Duration::from_millis(500));
        child
    });
    let started = Instant::now();
    signal(pid, "CONT");
    let decisions = decided(rest);
    read(decisions, "the backlog", &mut weir);
    let wall_s = started.elapsed().as_secs_f64();
    if let Some(mut perf) = perf {
        signal(perf.id(), "INT");
        let _ = perf.wait();
    }
    let weir_cpu_s = cpu_secs(pid).expect("weir's CPU time") - weir_before;
    let mut threads: BTreeMap<&'static str, f64> = BTreeMap::new();
    for ((kind, after), (_, before)) in thread_cpu(pid).into_iter().zip(threads_before) {
        *threads.entry(kind).or_default() += after - before;
    }
    let broker_cpu_s = broker_before.zip(broker_cpu()).map(|(before, after)| after - before);
    let hwm_kb = weir.vm_hwm_kb();
    weir.terminate();
    Backlog { decisions, wall_s, weir_cpu_s, threads, broker_cpu_s, hwm_kb }
}

// ----------------------------------------------------------------- lists

/// Step 7: how long a list change takes to be in effect on two running
/// instances: from the produce (`weir list add` writes the same record) to
/// the moment both instances' /status show the list's new version (they
/// publish a snapshot as they read a change, and adopt it before their next
/// batch), in ms per change.
struct ListChanges {
    ms: Vec<f64>,
    /// Of which the produce, until the broker acknowledged it.
    ack_ms: Vec<f64>,
    /// Transactions per second the instances decided meanwhile.
    load: u64,
}

impl ListChanges {
    fn quantile(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0)
    }

    fn max_ms(&self) -> f64 {
        self.ms.iter().copied().fold(0.0, f64::max)
    }

    fn line(&self) -> String {
        format!(
            "{} changes at {}/s of transactions: median {:.0} ms, p90 {:.0} ms, max {:.0} ms (of which the produce's ack: median {:.0} ms)",
            self.ms.len(),
            self.load,
            Self::quantile(&self.ms, 0.5),
            Self::quantile(&self.ms, 0.9),
            self.max_ms(),
            Self::quantile(&self.ack_ms, 0.5),
        )
    }
}

/// `GET /status` on `addr`, as JSON; `None` while it is not up.
fn status(addr: &str) -> Option<serde_json::Value> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    serde_json::from_str(response.split_once("\r\n\r\n")?.1).ok()
}

fn list_changes(bench: &Bench, changes: usize) -> ListChanges {
    let p = bench.prefix("lists");
    let rules = bench.dir.path().join("rules");
    let binary = std::env::var_os("WEIR_BENCH_WEIR_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weir")), PathBuf::from);
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let mut config = weir_testkit::config::kafka(&bench.broker, &p, name, &rules);
        config.kafka.as_mut().expect("a Kafka configuration").partitions = partitions();
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            format!("127.0.0.1:{}", listener.local_addr().expect("an address").port())
        };
        config.status.listen = Some(addr.clone());
        let path = bench.dir.path().join(format!("lists-{name}.toml"));
        weir_testkit::config::write(&config, &path);
        let kafka = config.kafka.expect("a Kafka configuration");
        let mut weir = WeirProcess::with_config(bench, &format!("lists-{name}"), binary.clone(), path, kafka);
        weir.spawn();
        instances.push((weir, addr));
    }
    for (weir, _) in &mut instances {
        weir.wait_for_log("lists loaded", Duration::from_secs(120));
    }
    let kafka = instances[0].0.kafka.clone();
    // Optionally a stream for the instances to decide meanwhile, paced.
    let load: u64 = env_or("WEIR_BENCH_LIST_LOAD", 0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = (load > 0).then(|| {
        let recs = records((load as usize * (changes + 10) / 4).max(1_000));
        let acks = Acks::new(Instant::now(), 0);
        let producer = bench.producer(&acks, &[]);
        let (stop, topic) = (stop.clone(), kafka.topics.input.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            for (i, r) in recs.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = started + Duration::from_nanos(i as u64 * 1_000_000_000 / load);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                send(&producer, &topic, r.key.as_bytes(), r.payload.as_bytes(), usize::MAX);
            }
            let _ = producer.flush(Duration::from_secs(30));
        })
    });
    let shows = |addr: &str, version: &str| {
        status(addr).is_some_and(|s| {
            s["lists"]["lists"].as_array().is_some_and(|l| l.iter().any(|l| l["version"].as_str() == Some(version)))
        })
    };
    let mut expected = weir::lists::ListSet::default();
    let (mut ms, mut ack_ms) = (Vec::new(), Vec::new());
    for i in 0..changes {
        let change = weir::events::ListChanged::new(
            "bench-blocked-devices",
            &format!("fp-{i}"),
            weir::events::ListAction::Add,
            None,
            "bench",
            None,
            time::OffsetDateTime::now_utc(),
        )
        .expect("a valid change");
        expected.apply(&change, &weir::lists::ListLimits::default()).expect("within the bounds");
        let version = weir::lists::version_text(expected.get("bench-blocked-devices").expect("the list").version());
        let json = serde_json::to_vec(&change).expect("serializes");
        let started = Instant::now();
        weir::kafka::publish_changes(&kafka, &kafka.topics.lists, [(change.key().as_str(), json.as_slice())])
            .expect("the change is written");
        ack_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let mut seen = [false, false];
        while !seen.iter().all(|s| *s) {
            for (s, (_, addr)) in seen.iter_mut().zip(&instances) {
                *s = *s || shows(addr, &version);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "change {i} was not in effect on both within 60 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        // Changes a human makes are seconds apart; a pause keeps them from
        // landing in one poll.
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(loader) = loader {
        loader.join().expect("the load generator");
    }
    for (weir, _) in &mut instances {
        weir.check_alive();
        weir.terminate();
    }
    ListChanges { ms, ack_ms, load }
}

// --------------------------------------------------------------- restore

/// Step 6: weir's restore of a partition's state, against a raw read of
/// the same changelog.
struct RestoreRun {
    accounts: u64,
    records: u64,
    /// The largest per-worker sum of its partitions' restore times.
    weir_ms: u64,
    raw_records: u64,
    raw_bytes: u64,
    raw_ms: u64,
}

impl RestoreRun {
    fn line(&self) -> String {
        let per_s = |n: u64, ms: u64| n as f64 * 1000.0 / ms.max(1) as f64;
        let mb = self.raw_bytes as f64 / 1e6;
        format!(
            "weir: {} accounts ({} records) in {:.2} s, {} accounts/s, {:.1} MB/s; raw read: {} records, {mb:.1} MB in {:.2} s, {:.1} MB/s; weir ÷ raw {:.2}x",
            self.accounts,
            self.records,
            self.weir_ms as f64 / 1000.0,
            thousands(per_s(self.accounts, self.weir_ms)),
            mb * 1000.0 / self.weir_ms.max(1) as f64,
            self.raw_records,
            self.raw_ms as f64 / 1000.0,
            mb * 1000.0 / self.raw_ms.max(1) as f64,
            self.raw_ms as f64 / self.weir_ms.max(1) as f64,
        )
    }
}

fn restore(bench: &Bench, transactions: usize, accounts: usize) -> RestoreRun {
    let recs: Vec<Rec> = weir::demo::generate(transactions, accounts, SEED)
        .lines
        .into_iter()
        .map(|line| {
            let tx = weir::events::parse_transaction(line.as_bytes(), weir::events::MAX_EVENT_BYTES).ok();
            let key = tx.as_ref().map_or_else(|| "unparseable".to_owned(), |t| t.account_id.clone());
            Rec { key, payload: line, tx_id: tx.map(|t| t.transaction_id) }
        })
        .collect();
    let mut weir = WeirProcess::prepare(bench, "restore", None);
    bench.preproduce(&weir.kafka.topics.input, &recs);
    let reader = bench.reader(&weir.decision_topics());
    weir.spawn();
    let expected = recs.iter().filter(|r| r.tx_id.is_some()).count();
    read_decisions(&reader, expected, "restore", &mut weir);
    weir.terminate();

    // The raw read: one consumer, every partition, to the end.
    let raw = bench.reader_with(std::slice::from_ref(&weir.kafka.topics.changelog), ("enable.partition.eof", "true"));
    let started = Instant::now();
    let (mut raw_records, mut raw_bytes, mut ended) = (0u64, 0u64, 0);
    while ended < partitions() {
        assert!(started.elapsed() < STEP_TIMEOUT, "the raw read did not end");
        match raw.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                raw_records += 1;
                raw_bytes += (m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => panic!("reading the changelog: {e}"),
            None => {}
        }
    }
    let raw_ms = started.elapsed().as_millis() as u64;

    // weir again: a few records reach every partition, which restores it.
    let log_before = std::fs::read_to_string(&weir.log).map(|s| s.len()).unwrap_or(0);
    weir.spawn();
    let nudge: Vec<Rec> = (0..20 * partitions())
        .map(|i| Rec { key: format!("restore-nudge-{i}"), payload: "{}".to_owned(), tx_id: None })
        .collect();
    bench.preproduce(&weir.kafka.topics.input, &nudge);
    let started = Instant::now();
    let lines = loop {
        let log = std::fs::read_to_string(&weir.log).unwrap_or_default();
        let lines: Vec<String> = log[log_before..]
            .lines()
            .filter(|l| l.contains("state restored from the changelog"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= partitions() as usize {
            break lines;
        }
        assert!(started.elapsed() < STEP_TIMEOUT, "only {} partitions restored", lines.len());
        weir.check_alive();
        std::thread::sleep(Duration::from_millis(200));
    };
    weir.terminate();
    let field = |line: &str, name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 1;
        line[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    // A worker reads the partitions of an assignment together: each of
    // their lines gives the time of them all (`together` of them); a build
    // before read them one after another, a line's time its own.
    let mut per_worker: HashMap<u64, u64> = HashMap::new();
    let (mut accounts, mut records) = (0, 0);
    for line in &lines {
        let together = if line.contains("together=") { field(line, "together").max(1) } else { 1 };
        let share = field(line, "ms") / together;
        *per_worker.entry(field(line, "worker")).or_default() += share;
        accounts += field(line, "accounts");
        records += field(line, "records");
    }
    let weir_ms = per_worker.values().copied().max().unwrap_or(0);
    RestoreRun { accounts, records, weir_ms, raw_records, raw_bytes, raw_ms }
}

/// Reads `count` decisions with `reader`, checking that `weir` still runs.
fn read_decisions(reader: &BaseConsumer, count: usize, what: &str, weir: &mut WeirProcess) {
    read_records(reader, count, what, STEP_TIMEOUT, || weir.check_alive());
}

/// Reads `count` records with `reader` within `timeout`, calling `tick`
/// every half second.
fn read_records(reader: &BaseConsumer, count: usize, what: &str, timeout: Duration, mut tick: impl FnMut()) {
    let started = Instant::now();
    let mut n = 0;
    let mut checked = Instant::now();
    while n < count {
        assert!(started.elapsed() < timeout, "{what}: only {n} of {count} records in {timeout:?}");
        match reader.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(_)) => n += 1,
            Some(Err(e)) => panic!("{what}: {e}"),
        }
        if checked.elapsed() > Duration::from_millis(500) {
            tick();
            checked = Instant::now();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

/// CPU seconds so far of each kind of thread of process `pid`, always in
/// the same order: `workers`, `intake`, `committer`, `librdkafka`,
/// `other`.
fn thread_cpu(pid: u32) -> [(&'static str, f64); 5] {
    let mut kinds = [("workers", 0.0), ("intake", 0.0), ("committer", 0.0), ("librdkafka", 0.0), ("other", 0.0)];
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return kinds };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let kind = match name.trim() {
            n if n.starts_with("weir-worker") => 0,
            // The intake runs on weir's main thread.
            "weir" => 1,
            "weir-committer" => 2,
            n if n.starts_with("rdk:") || n.starts_with("producer") => 3,
            _ => 4,
        };
        kinds[kind].1 += task_cpu_secs(pid, tid).unwrap_or(0.0);
    }
    kinds
}

fn task_cpu_secs(pid: u32, tid: u32) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// CPU time (user and system) of process `pid` so far, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU seconds in a /proc `stat` line.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // After the command name's closing parenthesis: the state (field 3),
    // ..., utime (14) and stime (15), in clock ticks.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux by default).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The CPU seconds of the local Kafka broker (the `kafka.Kafka` JVM) so
/// far; `None` without one on this machine.
fn broker_cpu() -> Option<f64> {
    let pid = std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline.split(|b| *b == 0).any(|arg| arg == b"kafka.Kafka").then_some(pid)
    })?;
    cpu_secs(pid)
}

// ------------------------------------------------------------ weir itself

/// One step's `weir run`: its topics, config and log, and the process
/// (the test kit's) once spawned.
struct WeirProcess {
    name: String,
    /// The binary to run: this build's, or the baseline's.
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    kafka: weir::kafka::KafkaConfig,
    process: Option<weir_testkit::WeirProcess>,
}

impl WeirProcess {
    /// Writes weir.toml from weir's own configuration type (the test kit)
    /// and creates weir's topics.
    fn prepare(bench: &Bench, step: &str, workers: Option<usize>) -> WeirProcess {
        Self::prepare_instance(bench, step, "bench", workers)
    }

    /// As [`WeirProcess::prepare`], as the group member `instance` of the
    /// step (another instance shares the step's topics and group).
    fn prepare_instance(bench: &Bench, step: &str, instance: &str, workers: Option<usize>) -> WeirProcess {
        let p = bench.prefix(step);
        let rules = bench.dir.path().join("rules");
        let mut config = weir_testkit::config::kafka(&bench.broker, &p, instance, &rules);
        let kafka = config.kafka.as_mut().expect("a Kafka configuration");
        kafka.partitions = partitions();
        kafka.workers = workers.or_else(|| std::env::var("WEIR_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()));
        kafka.commit_interval_ms = env_or("WEIR_BENCH_COMMIT_INTERVAL_MS", kafka.commit_interval_ms);
        kafka.batch_max_records = env_or("WEIR_BENCH_BATCH_MAX_RECORDS", kafka.batch_max_records);
        // librdkafka properties for every weir client (`kafka.client`).
        for pair in std::env::var("WEIR_BENCH_CLIENT").unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').expect("WEIR_BENCH_CLIENT: key=value pairs, comma separated");
            kafka.client.insert(key.trim().to_owned(), toml::Value::String(value.trim().to_owned()));
        }
        // The entity hop, when asked for: every transaction with a routed
        // entity visits its entity's partition before its decision.
        if let Ok(kinds) = std::env::var("WEIR_BENCH_ENTITIES") {
            kafka.entities = kinds.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
        }
        let name = if instance == "bench" { step.to_owned() } else { format!("{step}-{instance}") };
        let path = bench.dir.path().join(format!("{name}.toml"));
        weir_testkit::config::write(&config, &path);
        let binary = std::env::var_os("WEIR_BENCH_WEIR_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weir")), PathBuf::from);
        Self::with_config(bench, &name, binary, path, config.kafka.expect("a Kafka configuration"))
    }

    /// Another build's `weir` (the baseline), with its own defaults: only
    /// what a run needs is written, in the format every version reads.
    fn prepare_baseline(bench: &Bench, binary: &Path, rules: &Path) -> WeirProcess {
        let p = bench.prefix("base");
        let mut kafka =
            weir_testkit::config::kafka(&bench.broker, &p, "bench", rules).kafka.expect("a Kafka configuration");
        kafka.partitions = partitions();
        let t = &kafka.topics;
        let text = format!(
            "[rules]\ndir = {rules:?}\n\n[kafka]\nbootstrap_servers = {:?}\ngroup_id = {:?}\ninstance_id = \"bench\"\npartitions = {}\n\n[kafka.topics]\ninput = {:?}\ntransaction_verified = {:?}\nfraud_suspected = {:?}\naccount_locked = {:?}\ndead_letters = {:?}\nchangelog = {:?}\n",
            kafka.bootstrap_servers,
            kafka.group_id,
            partitions(),
            t.input,
            t.transaction_verified,
            t.fraud_suspected,
            t.account_locked,
            t.dead_letters,
            t.changelog,
            rules = rules.display().to_string(),
        );
        let path = bench.dir.path().join("base.toml");
        std::fs::write(&path, text).expect("writing the baseline's weir.toml");
        Self::with_config(bench, "base", binary.to_owned(), path, kafka)
    }

    fn with_config(
        bench: &Bench,
        step: &str,
        binary: PathBuf,
        config: PathBuf,
        kafka: weir::kafka::KafkaConfig,
    ) -> WeirProcess {
        let t = &kafka.topics;
        bench.remember(&[
            &t.input,
            &t.transaction_verified,
            &t.fraud_suspected,
            &t.account_locked,
            &t.dead_letters,
            &t.changelog,
            &t.dispositions,
            &t.lists,
        ]);
        weir::kafka::create_topics(&kafka, &Default::default())
            .unwrap_or_else(|e| panic!("creating {}.*: {e}", bench.prefix(step)));
        let log = bench.dir.path().join(format!("{step}.log"));
        WeirProcess { name: step.to_owned(), binary, config, log, kafka, process: None }
    }

    fn decision_topics(&self) -> Vec<String> {
        let t = &self.kafka.topics;
        vec![t.transaction_verified.clone(), t.fraud_suspected.clone(), t.account_locked.clone()]
    }

    fn spawn(&mut self) {
        let filter = std::env::var("WEIR_BENCH_WEIR_LOG").unwrap_or_else(|_| "info".to_owned());
        self.process = Some(weir_testkit::WeirProcess::start(&self.binary, &self.config, &self.log, &filter));
    }

    fn running(&mut self) -> &mut weir_testkit::WeirProcess {
        let name = &self.name;
        self.process.as_mut().unwrap_or_else(|| panic!("weir ({name}) was not started"))
    }

    fn check_alive(&mut self) {
        self.running().check_alive();
    }

    fn wait_for_log(&mut self, what: &str, timeout: Duration) {
        self.running().wait_for_log(what, timeout);
    }

    /// Peak resident set size, kB.
    fn vm_hwm_kb(&mut self) -> u64 {
        self.running().vm_hwm_kb()
    }

    /// SIGTERM, then waits up to 60 s for a clean exit; returns its stdout.
    fn terminate(&mut self) -> String {
        self.running().terminate(Duration::from_secs(60))
    }
}

// ------------------------------------------------------------- formatting

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn mib(kb: u64) -> String {
    format!("{:.0} MiB", kb as f64 / 1024.0)
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn loadavg(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn verdict(ok: bool, what: &str) -> String {
    format!("{} {what}", if ok { "MET   " } else { "MISSED" })
}
