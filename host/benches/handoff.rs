//! Why the Kafka runtime's stages are plain threads and not tokio tasks:
//! the only thing the choice changes is how work is handed from stage to
//! stage, because every stage blocks (librdkafka's poll and transactional
//! calls, the rules' CPU work). This measures those hand-offs both ways.
//!
//! Run: `cargo bench -p weir --bench handoff`. Figures in ARCHITECTURE.md.
//!
//! - `chunks/*`: 20 000 chunks of 256 records (as the intake hands them to
//!   a worker) through a channel holding at most 4, one thread sending, the
//!   receiver summing them: a std `sync_channel` between threads; tokio's
//!   `mpsc` used from threads (`blocking_send`/`blocking_recv`); and tokio's
//!   `mpsc` received by an async task on a multi-thread runtime (the shape a
//!   tokio committer would have).
//! - `roundtrip/*`: 10 000 request/answer pairs between two stages (as the
//!   intake asks the committer to flush and waits): std channels between
//!   threads, against an async task answering on a tokio runtime.

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

/// The allocator the weir binary ships with (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHUNKS: u64 = 20_000;
const CHUNK: usize = 256;
const ROUNDTRIPS: u64 = 10_000;

fn chunk(i: u64) -> Vec<u64> {
    vec![i; CHUNK]
}

fn chunks(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunks");
    group.throughput(Throughput::Elements(CHUNKS));
    group.sample_size(10);
    group.bench_function("std-threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(4);
                let consumer = std::thread::spawn(move || rx.into_iter().map(|c| c.iter().sum::<u64>()).sum::<u64>());
                for i in 0..CHUNKS {
                    tx.send(chunk(i)).expect("sent");
                }
                drop(tx);
                black_box(consumer.join().expect("joined"));
            }
            started.elapsed()
        })
    });
    group.bench_function("tokio-from-threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u64>>(4);
                let consumer = std::thread::spawn(move || {
                    let mut total = 0u64;
                    while let Some(c) = rx.blocking_recv() {
                        total += c.iter().sum::<u64>();
                    }
                    total
                });
                for i in 0..CHUNKS {
                    tx.blocking_send(chunk(i)).expect("sent");
                }
                drop(tx);
                black_box(consumer.join().expect("joined"));
            }
            started.elapsed()
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("a runtime");
    group.bench_function("tokio-async-receiver", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u64>>(4);
                let consumer = runtime.spawn(async move {
                    let mut total = 0u64;
                    while let Some(c) = rx.recv().await {
                        total += c.iter().sum::<u64>();
                    }
                    total
                });
                let producer = std::thread::spawn(move || {
                    for i in 0..CHUNKS {
                        tx.blocking_send(chunk(i)).expect("sent");
                    }
                });
                producer.join().expect("joined");
                black_box(runtime.block_on(consumer).expect("joined"));
            }
            started.elapsed()
        })
    });
    group.finish();
}

fn roundtrips(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip");
    group.throughput(Throughput::Elements(ROUNDTRIPS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("std-threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (ask, asked) = std::sync::mpsc::sync_channel::<u64>(1);
                let (answer, answered) = std::sync::mpsc::sync_channel::<u64>(1);
                let server = std::thread::spawn(move || {
                    for q in asked {
                        answer.send(q + 1).expect("answered");
                    }
                });
                for i in 0..ROUNDTRIPS {
                    ask.send(i).expect("asked");
                    black_box(answered.recv().expect("an answer"));
                }
                drop(ask);
                server.join().expect("joined");
            }
            started.elapsed()
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("a runtime");
    group.bench_function("tokio-async-server", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (ask, mut asked) = tokio::sync::mpsc::channel::<u64>(1);
                let (answer, mut answered) = tokio::sync::mpsc::channel::<u64>(1);
                let server = runtime.spawn(async move {
                    while let Some(q) = asked.recv().await {
                        answer.send(q + 1).await.expect("answered");
                    }
                });
                let client = std::thread::spawn(move || {
                    for i in 0..ROUNDTRIPS {
                        ask.blocking_send(i).expect("asked");
                        black_box(answered.blocking_recv().expect("an answer"));
                    }
                });
                client.join().expect("joined");
                runtime.block_on(server).expect("joined");
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, chunks, roundtrips);
criterion_main!(benches);
