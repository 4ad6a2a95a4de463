//! The console with many cases: how long the cases take to fold, and how
//! fast a case page and the queue render once they are folded.
//!
//! Run: `cargo bench -p weir --bench console`. Method and figures are in
//! BENCHMARKS.md ("The analysts' console").
//!
//! The demo stream (`weir::demo::generate(20 000, 2 000, 42)`) runs through
//! the six shipped account rules, embedded; every flagged decision it makes
//! is a template. The decisions file holds `WEIR_BENCH_CASES` (default
//! 100 000) of them, each on an account of its own (`<account>-c<i>`), so
//! each opens a case, plus each account's verified decisions before it for
//! the first `WEIR_BENCH_CASES / 10` cases' timelines. The console serves
//! that file embedded (one thread folds, two serve); the clock covers each
//! request from connect to the last byte, over loopback, one at a time.

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Cursor, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// GET `path` with the session cookie; (status, body length).
fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: __Host-weir-console={token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    (status, raw.len())
}

fn login(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = "user=bench&password=bench+password";
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let at = raw.find("__Host-weir-console=").expect("a session cookie") + 20;
    raw[at..at + 64].to_owned()
}

/// Median, 99th percentile and maximum of `samples` (ms).
fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!("median {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)", at(0.5), at(0.99), at(1.0), samples.len())
}

fn timed(n: usize, mut request: impl FnMut(usize) -> (u16, usize)) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let started = Instant::now();
            let (status, _) = request(i);
            assert_eq!(status, 200);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let cases: usize = env_or("WEIR_BENCH_CASES", 100_000);
    let dir = tempfile::tempdir().unwrap();

    // Real decisions of the shipped rules on the demo stream.
    let stream = weir::demo::generate(20_000, 2_000, 42).lines.join("\n");
    let engine = Engine::new().unwrap();
    let mut rules = weir::packages::load_shipped(&engine).unwrap();
    rules.retain(|r| r.spec.entity.is_none());
    let mut evaluator = Evaluator::new(&RuleSet::new(rules).unwrap(), Policy::default());
    let demo = OutputPaths::in_dir(&dir.path().join("demo"));
    std::fs::create_dir_all(dir.path().join("demo")).unwrap();
    run_embedded(Cursor::new(stream.into_bytes()), &mut evaluator, &demo, &PipelineOptions::default(), |_| {}).unwrap();
    let decided: Vec<Value> =
        std::fs::read_to_string(&demo.decisions).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let flagged: Vec<&Value> = decided.iter().filter(|d| d["event_type"] != "TransactionVerified").collect();
    let verified: Vec<&Value> = decided.iter().filter(|d| d["event_type"] == "TransactionVerified").take(5).collect();
    eprintln!("{} decisions, {} flagged: the templates", decided.len(), flagged.len());

    // One case per flagged decision, each on its own account.
    let path = dir.path().join("decisions.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut offset = 0i64;
    let mut write = |d: &Value, account: &str, suffix: &str, out: &mut std::io::BufWriter<std::fs::File>| {
        let mut d = d.clone();
        d["account_id"] = Value::String(account.to_owned());
        for id in ["transaction_id", "causation_id"] {
            let v = format!("{}{suffix}", d[id].as_str().unwrap_or(""));
            d[id] = Value::String(v);
        }
        d["event_id"] = Value::String(
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{account}{suffix}").as_bytes()).to_string(),
        );
        d["input"]["offset"] = Value::from(offset);
        offset += 1;
        serde_json::to_writer(&mut *out, &d).unwrap();
        out.write_all(b"\n").unwrap();
    };
    for i in 0..cases {
        let template = flagged[i % flagged.len()];
        let account = format!("{}-c{i}", template["account_id"].as_str().unwrap());
        if i < cases / 10 {
            for (k, v) in verified.iter().enumerate() {
                write(v, &account, &format!("-c{i}-v{k}"), &mut out);
            }
        }
        write(template, &account, &format!("-c{i}"), &mut out);
    }
    drop(out);
    let bytes = std::fs::metadata(&path).unwrap().len();
    eprintln!("decisions file: {:.0} MiB", bytes as f64 / 1048576.0);

    // The fold alone, as the console's thread does it.
    let files = weir::review::Files { decisions: Some(path.clone()), ..Default::default() };
    let rss_before = rss_mib();
    let started = Instant::now();
    let published = weir::review::read_published(None, &files, true).unwrap();
    let read = started.elapsed();
    let folded = weir::review::cases(published);
    let fold = started.elapsed() - read;
    println!(
        "fold: {} cases from {} MiB in {:.2} s (read and parse {:.2} s, fold {:.2} s)",
        folded.len(),
        bytes / 1048576,
        (read + fold).as_secs_f64(),
        read.as_secs_f64(),
        fold.as_secs_f64()
    );
    let ids: Vec<String> = folded.iter().map(|c| c.case_id.clone()).collect();
    drop(folded);

    // The console over the same file.
    let console = weir::console::ConsoleConfig {
        listen: "127.0.0.1:0".to_owned(),
        users: vec![weir::console::UserConfig {
            name: "bench".to_owned(),
            role: weir::console::Role::Analyst,
            password_hash: Some(weir::console::hash_password("bench password")),
        }],
        refresh_ms: 3_600_000,
        decisions: Some(path),
        ..Default::default()
    };
    let started = Instant::now();
    let running = weir::console::start(&console, &Default::default(), None).unwrap();
    println!(
        "console start (first fold included): {:.2} s; process RSS {:.0} MiB (before the fold {:.0} MiB)",
        started.elapsed().as_secs_f64(),
        rss_mib(),
        rss_before
    );
    let addr = running.addr;
    let token = login(addr);
    let n: usize = env_or("WEIR_BENCH_REQUESTS", 300);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let case_pages = timed(n, |_| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        get(addr, &format!("/cases/{}", ids[(seed % ids.len() as u64) as usize]), &token)
    });
    println!("case page: {}", summary(case_pages));
    for (what, path) in [
        ("queue, open cases by score", "/".to_owned()),
        ("queue, one rule, by amount", "/?rule=card-testing&sort=amount".to_owned()),
        ("queue, all states, an account no case has (a full scan)", "/?state=all&account=acct-none".to_owned()),
        ("queue, last page", "/?page=100000".to_owned()),
    ] {
        let samples = timed(n / 10, |_| get(addr, &path, &token));
        println!("{what}: {}", summary(samples));
    }
    std::thread::sleep(Duration::from_millis(10));
}
