//! The embedded pipeline: bad input is dead-lettered and never stops it;
//! batches commit atomically with the state; reruns and restarts decide
//! every transaction exactly once, with exact state.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::Path;

use weir::demo;
use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::events::{DeadLetter, DecisionEvent, DecisionType};
use weir::packages::load_shipped;
use weir::pipeline::{OutputPaths, PipelineError, PipelineOptions, Summary, run_embedded};

use crate::util::{card_testing, jsonl, tempdir, tx, unlock_line};

fn shipped_evaluator() -> Evaluator {
    let engine = Engine::new().unwrap();
    Evaluator::new(&RuleSet::new(load_shipped(&engine).unwrap()).unwrap(), Policy::default())
}

fn run(input: &[u8], out: &Path, batch_size: usize) -> Result<Summary, PipelineError> {
    let opts = PipelineOptions {
        batch_size,
        max_event_bytes: 4096,
        input_name: "input.jsonl".to_owned(),
        ..PipelineOptions::default()
    };
    run_embedded(Cursor::new(input.to_vec()), &mut shipped_evaluator(), &OutputPaths::in_dir(out), &opts, |_| {})
}

fn decisions(out: &Path) -> Vec<DecisionEvent> {
    weir_testkit::jsonl(&out.join("decisions.jsonl"))
}

/// Each decision's transaction id and type, in output order.
fn decided(out: &Path) -> Vec<(String, DecisionType)> {
    decisions(out).into_iter().map(|d| (d.transaction_id, d.event_type)).collect()
}

fn dead_letters(out: &Path) -> Vec<DeadLetter> {
    weir_testkit::jsonl(&out.join("dead-letters.jsonl"))
}

/// The bytes a dead letter kept, from `payload` or `payload_base64`.
fn kept_payload(letter: &DeadLetter) -> Vec<u8> {
    match (&letter.payload, &letter.payload_base64) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => unbase64(encoded),
        other => panic!("exactly one payload expected: {other:?}"),
    }
}

/// Standard padded base64, decoded.
pub fn unbase64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).unwrap_or_else(|| panic!("not base64: {c}")) as u32;
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.as_bytes().chunks(4) {
        assert_eq!(quad.len(), 4, "padded");
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let n = quad.iter().take(4 - pad).fold(0u32, |n, &c| n << 6 | value(c)) << (6 * pad);
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// The embedded pipeline over any reader, with a size limit of `limit`.
fn run_limited(input: impl std::io::Read + Send, out: &Path, limit: usize) -> Result<Summary, PipelineError> {
    let opts = PipelineOptions {
        batch_size: 64,
        max_event_bytes: limit,
        input_name: "input.jsonl".to_owned(),
        ..PipelineOptions::default()
    };
    run_embedded(input, &mut shipped_evaluator(), &OutputPaths::in_dir(out), &opts, |_| {})
}

fn stream(n: usize) -> Vec<u8> {
    let s = demo::generate(n, 50, 7);
    s.lines.join("\n").into_bytes()
}

#[test]
fn malformed_records_are_dead_lettered_and_the_rest_decided() {
    let good: Vec<_> = (0..40).map(|i| tx(&format!("tx-{i}"), i * 10)).collect();
    let mut input = jsonl(&good[..20]).into_bytes();
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"event_id":"e1","event_type":"TransactionRecorded","sche"#.to_vec(), "not valid JSON"),
        (
            serde_json::to_string(&tx("tx-pay", 0)).unwrap().replace("TransactionRecorded", "PaymentMade").into_bytes(),
            "PaymentMade",
        ),
        (vec![0xff, 0xfe, b'{', b'}'], "not valid JSON"),
        (format!("{{\"pad\":\"{}\"}}", "x".repeat(5000)).into_bytes(), "exceeds the 4096-byte limit"),
        (
            serde_json::to_string(&tx("tx-float", 0))
                .unwrap()
                .replace("\"minor_units\":18900", "\"minor_units\":189.5")
                .into_bytes(),
            "minor_units",
        ),
        (serde_json::to_string(&tx("tx-cur", 0)).unwrap().replace("\"EUR\"", "\"eur\"").into_bytes(), "currency"),
    ];
    for (line, _) in &bad {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    input.extend_from_slice(b"\n   \n"); // blank lines are not records
    input.extend_from_slice(jsonl(&good[20..]).as_bytes());

    let dir = tempdir();
    let summary = run(&input, dir.path(), 7).unwrap();
    assert_eq!(summary.records, 46);
    assert_eq!(summary.decided(), 40);
    assert_eq!(summary.dead_letters, 6);

    let ids: Vec<String> = decisions(dir.path()).into_iter().map(|d| d.transaction_id).collect();
    let expected: Vec<String> = good.iter().map(|t| t.transaction_id.clone()).collect();
    assert_eq!(ids, expected, "every good record decided once, in input order");

    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), bad.len());
    for (letter, (payload, reason)) in dead.iter().zip(&bad) {
        assert!(letter.reason.contains(reason), "{:?} should mention {reason:?}", letter.reason);
        assert_eq!(letter.payload_bytes, payload.len() as u64);
        let kept = kept_payload(letter);
        if payload.len() > 4096 {
            assert!(letter.truncated && kept.len() == 4096, "a record over the limit keeps its first bytes");
            assert_eq!(&kept[..], &payload[..4096]);
        } else {
            assert!(!letter.truncated);
            assert_eq!(&kept, payload, "the original record is kept whole");
        }
    }
    assert_eq!(dead[2].payload_base64.as_deref(), Some("//57fQ=="));
    assert_eq!(dead[0].input.offset, 21, "dead letters point at their input line");
}

#[test]
fn rerun_of_the_same_input_decides_nothing_twice() {
    let input = stream(600);
    let dir = tempdir();
    let first = run(&input, dir.path(), 100).unwrap();
    let before = std::fs::read(dir.path().join("decisions.jsonl")).unwrap();
    let second = run(&input, dir.path(), 100).unwrap();
    assert_eq!(second.decided(), 0);
    assert_eq!(second.duplicates, first.decided());
    assert_eq!(std::fs::read(dir.path().join("decisions.jsonl")).unwrap(), before);
}

#[test]
fn restart_keeps_state_exact() {
    // Deciding the stream in two runs (a restart in between) gives the same
    // decisions as one uninterrupted run: velocity windows, card-testing
    // counts and locks carry over through the embedded store.
    let input = stream(1500);
    let text = String::from_utf8(input.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() / 2;
    let (a, b) = (lines[..cut].join("\n"), lines[cut..].join("\n"));

    let whole = tempdir();
    run(&input, whole.path(), 64).unwrap();
    let split = tempdir();
    run(a.as_bytes(), split.path(), 64).unwrap();
    run(b.as_bytes(), split.path(), 64).unwrap();

    let strip = |ds: Vec<DecisionEvent>| -> Vec<DecisionEvent> {
        ds.into_iter()
            .map(|mut d| {
                d.input.offset = 0;
                d
            })
            .collect()
    };
    let (whole, split) = (strip(decisions(whole.path())), strip(decisions(split.path())));
    assert_eq!(whole.len(), split.len());
    assert!(whole.iter().any(|d| d.event_type == DecisionType::AccountLocked), "the stream exercises state");
    assert_eq!(whole, split);
}

#[test]
fn output_of_an_uncommitted_batch_is_discarded_on_restart() {
    let input = stream(300);
    let dir = tempdir();
    let first = run(&input, dir.path(), 50).unwrap();
    // A crash after the decisions were written but before the batch
    // committed leaves lines the store does not know about.
    let path = dir.path().join("decisions.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"event_type\":\"AccountLocked\",\"half a line");
    std::fs::write(&path, bytes).unwrap();

    let more: Vec<_> = (0..5).map(|i| tx(&format!("tx-more-{i}"), i)).collect();
    let second = run(jsonl(&more).as_bytes(), dir.path(), 50).unwrap();
    assert_eq!(second.decided(), 5);
    let all = decisions(dir.path());
    assert_eq!(all.len() as u64, first.decided() + 5);
    let unique: HashSet<_> = all.iter().map(|d| d.transaction_id.as_str()).collect();
    assert_eq!(unique.len(), all.len());
}

#[test]
fn output_shorter_than_committed_is_refused() {
    let dir = tempdir();
    run(&stream(100), dir.path(), 50).unwrap();
    std::fs::write(dir.path().join("decisions.jsonl"), b"").unwrap();
    let err = run(&stream(100), dir.path(), 50).unwrap_err();
    assert!(matches!(err, PipelineError::OutputTruncated { .. }), "{err}");
    assert!(err.to_string().contains("state.redb"), "{err}");
}

#[test]
fn replay_gives_byte_identical_decisions() {
    let input = stream(800);
    let (a, b) = (tempdir(), tempdir());
    run(&input, a.path(), 100).unwrap();
    run(&input, b.path(), 33).unwrap();
    assert_eq!(
        std::fs::read(a.path().join("decisions.jsonl")).unwrap(),
        std::fs::read(b.path().join("decisions.jsonl")).unwrap()
    );
}

#[test]
fn a_customer_confirmation_changes_later_decisions_and_decides_nothing() {
    // A bet (MCC 7995) is suspected; the customer confirms it; the next bet
    // at the same site is verified, a bet at another site is not. v1 and v2
    // events share the input.
    let bet = |id: &str, merchant: &str, after_secs: i64, fingerprint: Option<&str>| {
        let mut t = tx(id, after_secs);
        t.account_id = "acct-3307".to_owned();
        t.merchant.id = merchant.to_owned();
        t.merchant.category_code = "7995".to_owned();
        if let Some(fp) = fingerprint {
            t.schema_version = 2;
            t.device_fingerprint = Some(fp.to_owned());
        }
        serde_json::to_string(&t).unwrap()
    };
    // The customer answers the FraudSuspected weir published for tx-bet-1.
    let suspected = weir::events::decision_event_id("evt-tx-bet-1").to_string();
    let confirmation = |merchant: &str| confirmation_of(&suspected, "tx-bet-1", merchant, "acct-3307", 60);
    let mut forged = confirmation("m-spinpalace");
    forged = forged.replace("\"customer\"", "\"weir\"");
    let lines = [
        bet("tx-bet-1", "m-luckybets", 0, None),
        confirmation("m-luckybets"),
        forged,
        bet("tx-bet-2", "m-luckybets", 600, Some("fp-phone")),
        bet("tx-bet-3", "m-spinpalace", 700, Some("fp-phone")),
    ];
    let input = lines.join("\n").into_bytes();
    let dir = tempdir();
    let summary = run(&input, dir.path(), 2).unwrap();
    assert_eq!((summary.decided(), summary.confirmations, summary.dead_letters), (3, 1, 1));
    let got = decided(dir.path());
    use DecisionType::*;
    assert_eq!(
        got,
        [
            ("tx-bet-1".to_owned(), FraudSuspected),
            ("tx-bet-2".to_owned(), TransactionVerified),
            ("tx-bet-3".to_owned(), FraudSuspected)
        ]
    );
    assert!(dead_letters(dir.path())[0].reason.contains("verified_by"));

    // The confirmation is kept in the account's state across runs.
    let later = bet("tx-bet-4", "m-luckybets", 900, None);
    run(later.as_bytes(), dir.path(), 2).unwrap();
    let last = decisions(dir.path()).pop().unwrap();
    assert_eq!((last.transaction_id.as_str(), last.event_type), ("tx-bet-4", TransactionVerified));
}

/// An analyst's unlock lifts the lock it names, across runs: the account's
/// next lock emits `AccountLocked` again. An unlock that names no current
/// lock — read twice, or naming a lock a later one replaced — is
/// dead-lettered with the reason and changes nothing.
#[test]
fn an_analyst_unlock_lets_the_next_fraud_lock_the_account_again() {
    use DecisionType::*;
    let dir = tempdir();
    // Run 1: card testing locks the account; the next cash-out is only suspected.
    let first = card_testing("acct-u", "tx-a", 0);
    run(first.join("\n").as_bytes(), dir.path(), 2).unwrap();
    let got = decided(dir.path());
    assert_eq!(got[3], ("tx-a-4".to_owned(), AccountLocked));
    assert_eq!(got[4], ("tx-a-5".to_owned(), FraudSuspected));

    // Run 2: unlocked (the second unlock finds no lock); card testing again locks it again;
    // an unlock naming the first lock does not lift the second.
    let mut second = vec![unlock_line("acct-u", "tx-a-4", 0), unlock_line("acct-u", "tx-a-4", 1)];
    second.extend(card_testing("acct-u", "tx-b", 3600));
    second.push(unlock_line("acct-u", "tx-a-4", 2));
    second.extend(card_testing("acct-u", "tx-c", 7200));
    let summary = run(second.join("\n").as_bytes(), dir.path(), 3).unwrap();
    assert_eq!((summary.decided(), summary.unlocks, summary.dead_letters), (10, 1, 2));
    let got = decided(dir.path());
    assert_eq!(got.len(), 15);
    assert_eq!(got[8], ("tx-b-4".to_owned(), AccountLocked), "locked again after the unlock: {got:?}");
    assert_eq!(got[9], ("tx-b-5".to_owned(), FraudSuspected));
    assert_eq!(got[13], ("tx-c-4".to_owned(), FraudSuspected), "the stale unlock lifted nothing");
    let still_locked = &decisions(dir.path())[13];
    let reason = still_locked.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("ACCOUNT_ALREADY_LOCKED: locked by transaction tx-b-4"), "{reason}");
    let dead = dead_letters(dir.path());
    assert!(dead[0].reason.contains("account unlock not accepted: the account is not locked"), "{}", dead[0].reason);
    assert!(dead[1].reason.contains("locked by transaction tx-b-4"), "{}", dead[1].reason);
    assert!(dead[1].payload.as_deref().is_some_and(|p| p.contains("AccountUnlocked")), "nothing is lost");
}

/// A store written by an earlier version holds each account whole, under its
/// id. It is read as it is, and the account is written as parts (and its
/// whole record removed) the first time it changes.
#[test]
fn accounts_stored_whole_by_an_earlier_version_are_read_and_then_written_as_parts() {
    use std::collections::BTreeMap;
    use weir::state::Lock;
    use weir_sdk::state::{History, RuleState};

    let dir = tempdir();
    let whole = redb::TableDefinition::<&str, &[u8]>::new("accounts");
    {
        let db = redb::Database::create(dir.path().join("state.redb")).unwrap();
        let write = db.begin_write().unwrap();
        {
            // The whole-account record: rules, history, lock, and the
            // merchants the customer confirmed.
            let confirmed = vec!["m-luckybets".to_owned()];
            let record = (BTreeMap::<String, RuleState>::new(), History::default(), None::<Lock>, confirmed);
            let mut table = write.open_table(whole).unwrap();
            table.insert("acct-9", postcard::to_stdvec(&record).unwrap().as_slice()).unwrap();
        }
        write.commit().unwrap();
    }
    let bet = |id: &str, account: &str, secs: i64| {
        let mut t = tx(id, secs);
        t.account_id = account.to_owned();
        t.merchant.id = "m-luckybets".to_owned();
        t.merchant.category_code = "7995".to_owned();
        t
    };
    // The confirmation the old record holds exempts the bets of acct-9 (in
    // both runs: read whole, then from parts); a bet of another account is
    // suspected.
    run(jsonl(&[bet("tx-1", "acct-9", 0), bet("tx-2", "acct-7", 10)]).as_bytes(), dir.path(), 10).unwrap();
    run(jsonl(&[bet("tx-3", "acct-9", 60)]).as_bytes(), dir.path(), 10).unwrap();
    let got = decided(dir.path());
    use DecisionType::*;
    assert_eq!(
        got,
        [
            ("tx-1".to_owned(), TransactionVerified),
            ("tx-2".to_owned(), FraudSuspected),
            ("tx-3".to_owned(), TransactionVerified)
        ]
    );
    let db = redb::Database::open(dir.path().join("state.redb")).unwrap();
    let read = redb::ReadableDatabase::begin_read(&db).unwrap();
    let table = read.open_table(whole).unwrap();
    assert!(table.get("acct-9").unwrap().is_none(), "the whole record was replaced by parts");
}

/// A line of `size` bytes that starts like a transaction, streamed without
/// ever being held: `{"event_id":"huge","pad":"xxxx…`.
fn huge_line(size: u64) -> impl std::io::Read + Send {
    use std::io::Read as _;
    let head = br#"{"event_id":"huge","pad":""#;
    std::io::Cursor::new(head.to_vec()).chain(std::io::repeat(b'x').take(size - head.len() as u64))
}

#[test]
fn a_line_far_over_the_limit_is_dead_lettered_with_its_size_and_a_prefix_and_later_lines_keep_their_numbers() {
    use std::io::Read as _;
    const HUGE: u64 = 64 << 20;
    let before: Vec<_> = (0..3).map(|i| tx(&format!("tx-a{i}"), i)).collect();
    let after: Vec<_> = (0..3).map(|i| tx(&format!("tx-b{i}"), 100 + i)).collect();
    let input = || {
        std::io::Cursor::new(jsonl(&before).into_bytes())
            .chain(huge_line(HUGE))
            .chain(std::io::Cursor::new(format!("\r\n{}", jsonl(&after)).into_bytes()))
    };
    let dir = tempdir();
    let first = run_limited(input(), dir.path(), 4096).unwrap();
    assert_eq!((first.records, first.decided(), first.dead_letters), (7, 6, 1));
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(letter.payload_bytes, HUGE, "the original size, newline excluded");
    assert!(letter.truncated);
    assert!(
        letter.reason.contains(&format!("payload of {HUGE} bytes exceeds the 4096-byte limit")),
        "{}",
        letter.reason
    );
    let kept = kept_payload(letter);
    assert_eq!(kept.len(), 4096, "the prefix is capped at the limit");
    assert!(kept.starts_with(br#"{"event_id":"huge","pad":"xxx"#));
    assert_eq!(letter.input.offset, 4, "the line's own number");
    let offsets: Vec<i64> = decisions(dir.path()).iter().map(|d| d.input.offset).collect();
    assert_eq!(offsets, [1, 2, 3, 5, 6, 7], "the lines after it keep their numbers");

    // A restart that reads it again dead-letters it again, and decides
    // nothing twice.
    let second = run_limited(input(), dir.path(), 4096).unwrap();
    assert_eq!((second.decided(), second.duplicates, second.dead_letters), (0, 6, 1));
    assert_eq!(decisions(dir.path()).len(), 6);
    assert_eq!(dead_letters(dir.path()), [letter.clone(), letter.clone()]);
}

#[test]
fn weir_run_reads_a_line_far_over_the_limit_in_bounded_memory() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    const HUGE: usize = 256 << 20;
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--rules", "rules", "--input", "-", "--output", "out"])
        .env("WEIR_MAX_EVENT_BYTES", "4096")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let before: Vec<_> = (0..3).map(|i| tx(&format!("tx-a{i}"), i)).collect();
    let after: Vec<_> = (0..3).map(|i| tx(&format!("tx-b{i}"), 100 + i)).collect();
    stdin.write_all(jsonl(&before).as_bytes()).unwrap();
    let piece = vec![b'x'; 1 << 20];
    stdin.write_all(br#"{"event_id":"huge","pad":""#).unwrap();
    for _ in 0..HUGE >> 20 {
        stdin.write_all(&piece).unwrap();
    }
    stdin.write_all(b"\n").unwrap();
    stdin.write_all(jsonl(&after).as_bytes()).unwrap();
    stdin.flush().unwrap();

    // While weir still runs (its input open), once everything is decided:
    // its peak memory.
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(out.join("decisions.jsonl")).map_or(0, |d| d.lines().count()) < 6 {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the records around the line are decided");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(
        peak_kib * 1024 < (HUGE / 2) as u64,
        "weir's peak memory, {peak_kib} KiB, stays far below the {HUGE}-byte line"
    );
    let dead = dead_letters(&out);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload_bytes, HUGE as u64 + 26);
    assert!(dead[0].truncated);
}

/// Lines full of control bytes, within and over the limit, escape to at
/// most 1.5 times their size (base64 instead of `\u00XX`).
#[test]
fn dead_letters_of_control_bytes_stay_within_one_and_a_half_times_the_input() {
    let limit = 16 << 10;
    let mut input = Vec::new();
    let mut lines = Vec::new();
    for i in 0..400usize {
        // Mostly control bytes, some text, some not UTF-8; a few over the limit.
        let len = if i % 50 == 0 { 100_000 } else { 2000 + i * 31 % 9000 };
        let line: Vec<u8> = (0..len)
            .map(|j| match (i + j) % 7 {
                0 => b'"',
                1..=3 => 1 + (j % 7) as u8,
                4 if i % 3 == 0 => 0xff,
                _ => b'a' + (j % 26) as u8,
            })
            .collect();
        input.extend_from_slice(&line);
        input.push(b'\n');
        lines.push(line);
    }
    assert!(input.len() > 2 << 20);
    let dir = tempdir();
    let summary = run_limited(std::io::Cursor::new(input.clone()), dir.path(), limit).unwrap();
    assert_eq!(summary.dead_letters, 400);
    let written = std::fs::metadata(dir.path().join("dead-letters.jsonl")).unwrap().len();
    assert!(
        written * 2 <= input.len() as u64 * 3,
        "{written} bytes of dead letters for {} bytes of input: more than 1.5 times",
        input.len()
    );
    // Nothing is lost within the limit, and the prefix of a longer line is its start.
    for (letter, line) in dead_letters(dir.path()).iter().zip(&lines) {
        let kept = kept_payload(letter);
        assert_eq!(letter.payload_bytes, line.len() as u64);
        assert_eq!(letter.truncated, line.len() > limit);
        assert_eq!(&line[..kept.len()], &kept[..]);
        if !letter.truncated {
            assert_eq!(kept.len(), line.len());
        }
    }
}

#[test]
fn a_payload_that_is_not_utf8_round_trips_through_base64() {
    let whole: Vec<u8> = (0..3000u32).map(|i| [0xff, b'{', 0x80, 0x00, b'a'][i as usize % 5]).collect();
    let over: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).map(|b| if b == b'\n' { 0xfe } else { b }).collect();
    let input = [&whole[..], b"\n", &over[..], b"\n"].concat();
    let dir = tempdir();
    run_limited(std::io::Cursor::new(input), dir.path(), 4096).unwrap();
    let dead = dead_letters(dir.path());
    assert!(dead.iter().all(|d| d.payload.is_none() && d.payload_base64.is_some()));
    assert_eq!(kept_payload(&dead[0]), whole);
    assert_eq!(kept_payload(&dead[1]), &over[..4096]);
    assert_eq!((dead[1].payload_bytes, dead[1].truncated), (9000, true));
}

/// A customer's confirmation (`TransactionVerified` by the customer) of
/// `transaction_id`, answering the decision `causation_id`, `after_secs`
/// after the test transactions' base time.
fn confirmation_of(causation_id: &str, transaction_id: &str, merchant: &str, account: &str, after_secs: i64) -> String {
    let at = serde_json::to_value(tx("time", after_secs)).unwrap()["occurred_at"].clone();
    serde_json::json!({
        "event_id": format!("confirm-{causation_id}-{merchant}"), "event_type": "TransactionVerified", "schema_version": 1,
        "occurred_at": at, "causation_id": causation_id, "transaction_id": transaction_id,
        "account_id": account, "merchant_id": merchant, "verified_by": "customer"
    })
    .to_string()
}

/// A confirmation counts only as the answer to a FraudSuspected weir
/// published for the account — the decision's event id, the same
/// transaction and merchant, within the window; anything else is
/// dead-lettered with its reason, and forged ones cannot crowd out the
/// customer's real one.
#[test]
fn a_confirmation_counts_only_as_the_answer_to_a_suspicion_weir_published() {
    let bet = |id: &str, merchant: &str, after_secs: i64| {
        let mut t = tx(id, after_secs);
        t.account_id = "acct-77".to_owned();
        t.merchant.id = merchant.to_owned();
        t.merchant.category_code = "7995".to_owned();
        serde_json::to_string(&t).unwrap()
    };
    let suspected = weir::events::decision_event_id("evt-tx-bet-1").to_string();
    let mut lines = vec![bet("tx-bet-1", "m-luckybets", 0)];
    // 70 forged confirmations for other merchants, naming no suspicion.
    for i in 0..70 {
        lines.push(confirmation_of(&format!("forged-{i}"), "tx-bet-1", &format!("m-forged-{i}"), "acct-77", 30));
    }
    lines.push(confirmation_of(&suspected, "tx-other", "m-luckybets", "acct-77", 40));
    lines.push(confirmation_of(&suspected, "tx-bet-1", "m-spinpalace", "acct-77", 40));
    lines.push(confirmation_of(&suspected, "tx-bet-1", "m-luckybets", "acct-77", 31 * 86_400));
    lines.push(confirmation_of(&suspected, "tx-bet-1", "m-luckybets", "acct-other", 50));
    lines.push(confirmation_of(&suspected, "tx-bet-1", "m-luckybets", "acct-77", 60));
    lines.push(bet("tx-bet-2", "m-luckybets", 600));
    lines.push(bet("tx-bet-3", "m-forged-3", 700));
    let dir = tempdir();
    let summary = run(lines.join("\n").as_bytes(), dir.path(), 16).unwrap();
    assert_eq!((summary.decided(), summary.confirmations, summary.dead_letters), (3, 1, 74));
    let reasons: Vec<String> = dead_letters(dir.path()).into_iter().map(|d| d.reason).collect();
    assert!(reasons[..70].iter().all(|r| r.contains("names no FraudSuspected")), "{:?}", &reasons[..2]);
    assert!(reasons[70].contains("transaction_id"), "{}", reasons[70]);
    assert!(reasons[71].contains("merchant_id"), "{}", reasons[71]);
    assert!(reasons[72].contains("confirmations are accepted for 30 days"), "{}", reasons[72]);
    assert!(reasons[73].contains("names no FraudSuspected"), "another account's: {}", reasons[73]);
    let dead = dead_letters(dir.path());
    assert!(dead[0].payload.as_deref().is_some_and(|p| p.contains("forged-0")), "nothing is lost");
    let got = decided(dir.path());
    use DecisionType::*;
    assert_eq!(
        got,
        [
            ("tx-bet-1".to_owned(), FraudSuspected),
            ("tx-bet-2".to_owned(), TransactionVerified),
            ("tx-bet-3".to_owned(), FraudSuspected)
        ],
        "the genuine confirmation counts; the forged merchants stay suspect"
    );
}

/// Version 3's entity ids follow the schema: an empty, oversized or
/// non-string `counterparty_account` or `card_fingerprint` is dead-lettered
/// with the field named, and a well-formed v3 event is decided like any
/// other (a missing entity is simply absent).
#[test]
fn bad_entity_ids_are_dead_lettered_naming_the_field_and_good_v3_events_are_decided() {
    let v3 = |id: &str, field: &str, value: serde_json::Value| {
        let mut event = serde_json::to_value(tx(id, 0)).unwrap();
        event["schema_version"] = 3.into();
        event[field] = value;
        event.to_string()
    };
    let good = [
        v3("tx-transfer", "counterparty_account", "NL91ABNA0417164300".into()),
        v3("tx-card", "card_fingerprint", "card-5f0e1d2c3b4a".into()),
    ];
    let bad = [
        (v3("tx-empty", "counterparty_account", "".into()), "`counterparty_account`: must not be empty"),
        (v3("tx-long", "card_fingerprint", "c".repeat(300).into()), "`card_fingerprint`"),
        (v3("tx-number", "card_fingerprint", 42.into()), "card_fingerprint"),
    ];
    let lines: Vec<&str> = good.iter().map(String::as_str).chain(bad.iter().map(|(l, _)| l.as_str())).collect();
    let dir = tempdir();
    let summary = run((lines.join("\n") + "\n").as_bytes(), dir.path(), 10).unwrap();
    assert_eq!((summary.decided(), summary.dead_letters), (2, 3));
    let ids: Vec<String> = decisions(dir.path()).into_iter().map(|d| d.transaction_id).collect();
    assert_eq!(ids, ["tx-transfer", "tx-card"]);
    for (letter, (_, reason)) in dead_letters(dir.path()).iter().zip(&bad) {
        assert!(letter.reason.contains(reason), "{:?} should name {reason:?}", letter.reason);
    }
}
