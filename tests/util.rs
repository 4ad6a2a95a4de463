//! Test helpers: built guest components, manifests, transactions, and a
//! fresh temporary directory per test.

#![allow(dead_code)]

use std::path::PathBuf;

use std::collections::HashMap;
use std::io::Cursor;

use weir::cases::CaseTx;
use weir::engine::{Engine, Evaluator, LoadedRule, Policy, RuleSet};
use weir::events::{DecisionEvent, InputPosition, TransactionRecorded};
use weir::manifest::RuleSpec;
use weir::pipeline::{OutputPaths, PipelineOptions, Summary, run_embedded};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The bytes of a guest component built by host/build.rs (a shipped rule or
/// a test guest), by package name.
pub fn guest(name: &str) -> Vec<u8> {
    let path = GUESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| PathBuf::from(p))
        .unwrap_or_else(|| panic!("no guest named {name}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn guest_path(name: &str) -> PathBuf {
    GUESTS.iter().find(|(n, _)| *n == name).map(|(_, p)| PathBuf::from(p)).expect("known guest")
}

/// A manifest for the hostile test rule with the given behaviour.
pub fn hostile_manifest(id: &str, behaviour: &str, extra: &str) -> String {
    format!(
        "[rule]\nid = \"{id}\"\nversion = \"1\"\n{extra}\n[limits]\nfuel = 2000000\nmemory_mib = 8\n[params]\nbehaviour = \"{behaviour}\"\n"
    )
}

/// Loads the hostile guest under `id` with `behaviour`.
pub fn hostile(engine: &Engine, id: &str, behaviour: &str, extra: &str) -> LoadedRule {
    let manifest = hostile_manifest(id, behaviour, extra);
    engine.load(RuleSpec::parse(&manifest).unwrap(), &guest("hostile"), &manifest).unwrap()
}

pub fn evaluator(rules: Vec<LoadedRule>) -> Evaluator {
    Evaluator::new(&RuleSet::new(rules).unwrap(), Policy::default())
}

/// A transaction: the story's purchase, with id `id` and `after_secs`.
pub fn tx(id: &str, after_secs: i64) -> TransactionRecorded {
    CaseTx { after_secs: Some(after_secs), ..CaseTx::default() }.to_event(id)
}

pub fn position(offset: i64) -> InputPosition {
    InputPosition { topic: "test".to_owned(), partition: 0, offset }
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("weir-test-").tempdir().expect("temp dir")
}

/// One JSON line per transaction.
pub fn jsonl(txs: &[TransactionRecorded]) -> String {
    txs.iter().map(|t| serde_json::to_string(t).unwrap() + "\n").collect()
}

/// Runs `lines` through the shipped rules in a fresh embedded pipeline:
/// the summary and the decisions by transaction id.
pub fn decide_embedded(lines: &[String]) -> (Summary, HashMap<String, DecisionEvent>) {
    decide_embedded_with(lines, |_| true)
}

/// [`decide_embedded`] with the shipped rules `keep` keeps.
pub fn decide_embedded_with(
    lines: &[String],
    keep: impl Fn(&weir::engine::LoadedRule) -> bool,
) -> (Summary, HashMap<String, DecisionEvent>) {
    let engine = Engine::new().unwrap();
    let mut rules = weir::packages::load_shipped(&engine).unwrap();
    rules.retain(keep);
    let mut ev = Evaluator::new(&RuleSet::new(rules).unwrap(), Policy::default());
    let dir = tempdir();
    let input = lines.join("\n");
    let out = OutputPaths::in_dir(dir.path());
    let summary =
        run_embedded(Cursor::new(input.into_bytes()), &mut ev, &out, &PipelineOptions::default(), |_| {}).unwrap();
    let decisions = weir_testkit::jsonl::<DecisionEvent>(&out.decisions)
        .into_iter()
        .map(|d| (d.transaction_id.clone(), d))
        .collect();
    (summary, decisions)
}

/// Runs the `weir` binary with `args` in `cwd`.
pub fn weir(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(cwd).output().expect("weir runs")
}

/// What a command wrote to stdout.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a command wrote, stdout then stderr.
pub fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Card testing on `account` that makes the shipped rules lock it: three
/// probes of 1.00, then a cash-out of 200.00 (the lock's transaction is
/// `<prefix>-4`), then one more cash-out (suspected: already locked).
/// Starts `after_secs` after the test transactions' base time.
pub fn card_testing(account: &str, prefix: &str, after_secs: i64) -> Vec<String> {
    let amounts = [100, 100, 100, 20_000, 20_000];
    amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| {
            let case = CaseTx {
                account: Some(account.to_owned()),
                amount: Some(*amount),
                after_secs: Some(after_secs + 10 * i as i64),
                ..CaseTx::default()
            };
            serde_json::to_string(&case.to_event(&format!("{prefix}-{}", i + 1))).unwrap()
        })
        .collect()
}

/// An analyst's unlock of `account`'s lock by `transaction`, as one input line.
pub fn unlock_line(account: &str, transaction: &str, at_secs: i64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_800_000_000 + at_secs);
    let unlock =
        weir::events::AccountUnlocked::new(account, transaction, "analyst-7", Some("identity checked"), at).unwrap();
    serde_json::to_string(&unlock).unwrap()
}
