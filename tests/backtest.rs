//! `weir backtest`: the figures on a small labelled set whose right answers
//! are known, reproducible output, and the same result from a Kafka topic
//! range as from the equivalent file.

use serde_json::Value;
use std::path::Path;

use crate::util::{guest, stdout, tempdir, text, weir};

/// A rules directory holding velocity alone, flagging the `max_count + 1`th
/// transaction within an hour.
fn velocity_dir(dir: &Path, max_count: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/velocity/rule.toml")).unwrap();
    std::fs::write(dir.join("velocity.toml"), shipped.replace("max_count = 10", &format!("max_count = {max_count}")))
        .unwrap();
    std::fs::write(dir.join("velocity.wasm"), guest("velocity")).unwrap();
}

/// Account A: five purchases ten minutes apart; account B: two. With
/// max_count 3 the candidate flags A's 4th and 5th; the baseline (10)
/// flags nothing. The labels say A's 4th was fraud and the rest legitimate.
fn history() -> (Vec<String>, String) {
    let tx = |id: &str, account: &str, after_secs: i64| {
        let case = weir::cases::CaseTx {
            account: Some(account.to_owned()),
            after_secs: Some(after_secs),
            ..Default::default()
        };
        serde_json::to_string(&case.to_event(id)).unwrap()
    };
    let mut lines: Vec<String> = (1..=5).map(|i| tx(&format!("a-{i}"), "acct-a", i * 600)).collect();
    lines.push(tx("b-1", "acct-b", 100));
    lines.push(tx("b-2", "acct-b", 200));
    lines.push("{\"not\": \"an event\"}".to_owned());
    let labels =
        "transaction_id,label\na-1,legit\na-2,legit\na-3,legit\na-4,card-testing\na-5,legit\nb-1,legit\nb-2,legit\n";
    (lines, labels.to_owned())
}

/// `weir case resolve` records the same verdicts as `history()`'s labels
/// file, with a correction: a-5 first called fraud, then legitimate. `to`:
/// where they go (`--append FILE`, or `-c CONFIG` for Kafka).
fn resolve_as_the_labels(dir: &Path, to: &[&str]) {
    let resolve = |args: &[&str]| {
        // History weir never decided: labelled unchecked.
        let common = ["case", "resolve", "--analyst", "analyst-7", "--unchecked"];
        let o = weir(&[&common[..], to, args].concat(), dir);
        assert!(o.status.success(), "{}", text(&o));
    };
    resolve(&["--account", "acct-a", "--transaction", "a-5", "--verdict", "fraud"]);
    resolve(&["--account", "acct-a", "--transaction", "a-4", "--verdict", "fraud", "--pattern", "card-testing"]);
    let legit = ["--verdict", "legitimate", "--note", "customer confirmed by phone"];
    let a = ["--account", "acct-a", "--transaction", "a-1", "--transaction", "a-2", "--transaction", "a-3"];
    resolve(&[&a[..], &["--transaction", "a-5"], &legit[..]].concat());
    resolve(&[&["--account", "acct-b", "--transaction", "b-1", "--transaction", "b-2"][..], &legit[..]].concat());
}

/// Labels taken from analysts' dispositions give the same figures as the
/// equivalent labels file, a later verdict replacing an earlier one; a
/// malformed disposition is refused naming its line.
#[test]
fn a_backtest_labelled_by_dispositions_equals_one_labelled_by_the_file() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let (lines, labels) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    resolve_as_the_labels(dir.path(), &["--append", "dispositions.jsonl"]);
    let common = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let report = |labels: &[&str], json: &str| -> Value {
        let o = weir(&[&common[..], labels, &["--json", json]].concat(), dir.path());
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&std::fs::read(dir.path().join(json)).unwrap()).unwrap()
    };
    let by_file = report(&["--labels", "labels.csv"], "file.json");
    let by_dispositions = report(&["--dispositions", "dispositions.jsonl"], "dispositions.json");
    assert_eq!(by_file["labels"]["labelled"], 7);
    assert_eq!(by_dispositions["labels"], by_file["labels"]);
    assert_eq!(by_dispositions["changes"], by_file["changes"], "the changed decisions carry the same labels");

    std::fs::write(dir.path().join("bad.jsonl"), "\n{\"event_type\": \"CaseResolved\"}\n").unwrap();
    let o = weir(&[&common[..], &["--dispositions", "bad.jsonl"]].concat(), dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("bad.jsonl:2: not a disposition"), "{}", text(&o));
}

#[test]
fn backtest_figures_on_a_labelled_set_with_known_answers() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let (lines, labels) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    let args = [
        "backtest",
        "--baseline",
        "baseline",
        "--candidate",
        "candidate",
        "--input",
        "history.jsonl",
        "--labels",
        "labels.csv",
        "--json",
        "report.json",
        "--html",
        "report.html",
    ];
    let o = weir(&args, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let printed = text(&o);
    assert!(printed.contains("Changed decisions: 2"), "{printed}");
    assert!(printed.contains("TransactionVerified -> FraudSuspected: 2"), "{printed}");

    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(r["input"]["records"], 8);
    assert_eq!(r["input"]["dead_letters"], 1);
    assert_eq!(r["baseline"]["decisions"]["TransactionVerified"], 7);
    assert_eq!(r["candidate"]["decisions"]["FraudSuspected"], 2);
    let examples: Vec<&str> =
        r["changes"]["examples"].as_array().unwrap().iter().map(|e| e["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(examples, ["a-4", "a-5"]);
    assert_eq!(r["changes"]["examples"][0]["label"], "card-testing");
    let velocity = &r["candidate"]["rules"][0];
    assert_eq!(velocity["rule_id"], "velocity");
    assert_eq!(velocity["invocations"], 7);
    assert_eq!(velocity["outcomes"]["suspect"], 2);
    assert_eq!(velocity["outcomes"]["pass"], 5);

    // Labels: 7 labelled, 1 fraud. Candidate flags a-4 (fraud) and a-5 (legit).
    let l = &r["labels"];
    assert_eq!(l["labelled"], 7);
    assert_eq!(l["fraud"], 1);
    let c = &l["candidate"]["decision"];
    assert_eq!((c["true_positives"].as_u64(), c["false_positives"].as_u64()), (Some(1), Some(1)));
    assert_eq!((c["true_negatives"].as_u64(), c["false_negatives"].as_u64()), (Some(5), Some(0)));
    assert_eq!(c["precision"], 0.5);
    assert_eq!(c["recall"], 1.0);
    assert_eq!(c["false_positive_rate"], 0.1667);
    let b = &l["baseline"]["decision"];
    assert_eq!(b["precision"], Value::Null, "the baseline flagged nothing");
    assert_eq!(b["recall"], 0.0);
    assert_eq!(b["false_positive_rate"], 0.0);
    assert_eq!(l["candidate"]["rules"]["velocity"]["precision"], 0.5);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("<svg") && html.contains("a-4") && html.contains("0.1667"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
}

#[test]
fn backtest_results_are_byte_identical_whatever_the_accounts_interleaving() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let (lines, labels) = history();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    // The same history with account B's records first: each account's
    // records keep their order, as on a Kafka partition.
    let (a, b): (Vec<&String>, Vec<&String>) = lines.iter().partition(|l| !l.contains("acct-b"));
    let reordered: Vec<&String> = b.into_iter().chain(a).collect();
    let inputs = [("one.jsonl", lines.iter().collect::<Vec<_>>()), ("two.jsonl", reordered)];
    let mut outputs = Vec::new();
    for (i, (file, lines)) in inputs.iter().enumerate() {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join(file), body).unwrap();
        for round in 0..2 {
            let json = format!("report-{i}-{round}.json");
            let args = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", file];
            let o = weir(&[&args[..], &["--labels", "labels.csv", "--json", &json]].concat(), dir.path());
            assert!(o.status.success(), "{}", text(&o));
            outputs.push(std::fs::read(dir.path().join(&json)).unwrap());
        }
    }
    assert!(outputs.iter().all(|o| o == &outputs[0]), "every run wrote the same bytes");
}

/// The history produced to a topic, keyed by account, and backtested from
/// an offset range: the same report as from the file.
#[test]
fn backtest_from_a_kafka_topic_range_equals_the_file() {
    let broker = weir_testkit::Broker::get(&["WEIR_TEST_KAFKA_BOOTSTRAP"]);
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let lines = weir::demo::generate(3000, 60, 77).lines;
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let prefix = weir_testkit::unique_prefix("backtest");
    let topic = format!("{prefix}.history");
    let mut config = weir_testkit::config::kafka(&broker.bootstrap, &prefix, "bt", &dir.path().join("baseline"));
    let kafka = config.kafka.as_mut().unwrap();
    kafka.topics.input = topic.clone();
    kafka.partitions = 3;
    weir::kafka::create_topics(kafka, &Default::default()).unwrap();
    weir_testkit::config::write(&config, &dir.path().join("weir.toml"));
    let rfc3339 = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let before = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    weir_testkit::produce_by_account(broker, &topic, &lines);
    let after = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(1));

    let common = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "-c", "weir.toml"];
    let o = weir(&[&common[..], &["--input", "history.jsonl", "--json", "file.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o =
        weir(&[&common[..], &["--topic", &topic, "--from-offset", "0", "--json", "topic.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let file = std::fs::read_to_string(dir.path().join("file.json")).unwrap();
    let from_topic = std::fs::read_to_string(dir.path().join("topic.json")).unwrap();
    let changed: Value = serde_json::from_str(&file).unwrap();
    assert!(changed["changes"]["total"].as_u64() > Some(0), "the candidate changes something: {file}");
    assert_eq!(from_topic, file, "the topic range and the file give the same report");

    // The same range by the records' timestamps.
    let by_time = ["--topic", &topic, "--from-time", &before, "--to-time", &after, "--json", "time.json"];
    let o = weir(&[&common[..], &by_time].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("time.json")).unwrap(), file, "by timestamps too");
    let o =
        weir(&[&common[..], &["--topic", &topic, "--to-time", &before, "--json", "early.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let early: Value = serde_json::from_slice(&std::fs::read(dir.path().join("early.json")).unwrap()).unwrap();
    assert_eq!(early["input"]["records"], 0, "nothing was produced before {before}");

    // A range that ends before anything was produced holds nothing.
    let o = weir(&[&common[..], &["--topic", &topic, "--to-offset", "0", "--json", "empty.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let empty: Value = serde_json::from_slice(&std::fs::read(dir.path().join("empty.json")).unwrap()).unwrap();
    assert_eq!(empty["input"]["records"], 0);
}

/// Dispositions written to their Kafka topic by `weir case resolve` label a
/// backtest (`--dispositions kafka`) as the equivalent labels file does.
#[test]
fn dispositions_on_kafka_label_a_backtest_as_the_file_does() {
    let broker = weir_testkit::Broker::get(&["WEIR_TEST_KAFKA_BOOTSTRAP"]);
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let (lines, labels) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    let prefix = weir_testkit::unique_prefix("dispositions");
    let config = weir_testkit::config::kafka(&broker.bootstrap, &prefix, "bt", &dir.path().join("baseline"));
    weir_testkit::config::write(&config, &dir.path().join("weir.toml"));
    resolve_as_the_labels(dir.path(), &["-c", "weir.toml"]);
    let written =
        weir_testkit::read_to_end(broker, &[format!("{prefix}.dispositions")], std::time::Duration::from_secs(30));
    assert_eq!(written.len(), 4, "one record per `weir case resolve`");
    assert!(written.iter().all(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"acct-"))), "keyed by account");

    let common = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let report = |labels: &[&str], json: &str| -> Value {
        let o = weir(&[&common[..], labels, &["-c", "weir.toml", "--json", json]].concat(), dir.path());
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&std::fs::read(dir.path().join(json)).unwrap()).unwrap()
    };
    let by_file = report(&["--labels", "labels.csv"], "file.json");
    let by_topic = report(&["--dispositions", "kafka"], "topic.json");
    assert_eq!(by_file["labels"]["labelled"], 7);
    assert_eq!(by_topic["labels"], by_file["labels"]);
}

/// The shadow report over published decisions says what the shadow rule
/// would have changed, exactly as a backtest with that rule enforced does.
#[test]
fn shadow_report_equals_a_backtest_with_the_shadow_rule_enforced() {
    let dir = tempdir();
    let with_shadow = dir.path().join("with-shadow");
    weir::packages::export_shipped(&with_shadow).unwrap();
    let tight = |mode: &str| {
        let shipped = std::fs::read_to_string(with_shadow.join("velocity.toml")).unwrap();
        shipped
            .replace("id = \"velocity\"", "id = \"velocity-tight\"")
            .replace("max_count = 10", "max_count = 4")
            .replace("mode = \"enforce\"", &format!("mode = \"{mode}\"\ncomponent = \"velocity.wasm\""))
    };
    std::fs::write(with_shadow.join("velocity-tight.toml"), tight("shadow")).unwrap();
    let enforced = dir.path().join("enforced");
    weir::packages::export_shipped(&enforced).unwrap();
    std::fs::write(enforced.join("velocity-tight.toml"), tight("enforce")).unwrap();
    let lines = weir::demo::generate(4000, 100, 5).lines;
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();

    // What weir published with the rule in shadow mode.
    let run = ["run", "--rules", "with-shadow", "--input", "history.jsonl", "--output", "out"];
    let o = weir(&run, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = weir(&["shadow-report", "--decisions", "out/decisions.jsonl", "--json", "shadow.json"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("weir shadow report:"), "{}", text(&o));
    let shadow: Value = serde_json::from_slice(&std::fs::read(dir.path().join("shadow.json")).unwrap()).unwrap();

    let args = ["backtest", "--baseline", "with-shadow", "--candidate", "enforced", "--input", "history.jsonl"];
    let o = weir(&[&args[..], &["--json", "backtest.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let backtest: Value = serde_json::from_slice(&std::fs::read(dir.path().join("backtest.json")).unwrap()).unwrap();

    assert!(shadow["changes"]["total"].as_u64() > Some(0), "the tighter rule changes something: {shadow:#}");
    assert_eq!(shadow["changes"], backtest["changes"], "the same changed decisions, with the same examples");
    assert_eq!(shadow["candidate"]["decisions"], backtest["candidate"]["decisions"]);
    assert_eq!(shadow["baseline"]["decisions"], backtest["baseline"]["decisions"]);

    // An event-time range keeps only the decisions inside it.
    let o = weir(
        &[
            "shadow-report",
            "--decisions",
            "out/decisions.jsonl",
            "--to-time",
            "2026-11-28T08:00:00Z",
            "--json",
            "none.json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let none: Value = serde_json::from_slice(&std::fs::read(dir.path().join("none.json")).unwrap()).unwrap();
    assert_eq!(none["input"]["records"], 0, "the demo's traffic starts at 08:00");
}

/// A candidate package that is refused (here: a failing self-test case)
/// stops the backtest instead of counting as a rule that changes nothing;
/// `--allow-refused` compares without it and says so first.
#[test]
fn a_refused_candidate_package_stops_the_backtest() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    let candidate = dir.path().join("candidate");
    velocity_dir(&candidate, 3);
    let failing = "[[case]]\nname = \"expects the wrong outcome\"\n[case.expect]\noutcome = \"lock\"\n";
    std::fs::write(candidate.join("velocity.cases.toml"), failing).unwrap();
    let (lines, _) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let args = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let o = weir(&args, dir.path());
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("candidate velocity.toml refused"), "{}", text(&o));
    assert!(!text(&o).contains("Changed decisions"), "{}", text(&o));

    let o = weir(&[&args[..], &["--allow-refused"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let first = stdout(&o).lines().next().unwrap_or_default().to_owned();
    assert!(first.starts_with("WARNING: compared without 1 refused package(s): candidate velocity.toml"), "{first}");
}

#[test]
fn the_report_shows_each_rules_parameters_and_what_the_candidate_changed() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let (lines, _) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let args = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let o = weir(&[&args[..], &["--json", "report.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let candidate = out.split("\ncandidate (").nth(1).unwrap_or_default();
    assert!(candidate.contains("max_count = 3 (rule.toml; baseline 10)"), "{out}");
    assert!(candidate.contains("window_secs = 3600 (rule.toml)"), "{out}");
    assert!(candidate.contains("lock_count = - (unset)"), "{out}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let params = report["candidate"]["params"]["velocity"].as_array().unwrap();
    let max_count = params.iter().find(|p| p["name"] == "max_count").unwrap();
    assert_eq!((max_count["value"].as_str(), max_count["source"].as_str()), (Some("3"), Some("rule.toml")));
}

/// The shipped rules, and a candidate whose new-device rule suspects on its
/// own (50 points, the suspect threshold): a signal that depends entirely
/// on what the account's history holds.
fn new_device_candidate(dir: &Path) {
    weir::packages::export_shipped(&dir.join("baseline")).unwrap();
    let candidate = dir.join("candidate");
    weir::packages::export_shipped(&candidate).unwrap();
    for (file, from, to) in [
        ("new-device.toml", "new_device_score = 20", "new_device_score = 50"),
        ("new-device.cases.toml", "score = 20", "score = 50"),
    ] {
        let text = std::fs::read_to_string(candidate.join(file)).unwrap();
        assert!(text.contains(from), "{file} holds {from}");
        std::fs::write(candidate.join(file), text.replace(from, to)).unwrap();
    }
}

/// The event time of a transaction line, if it is one.
fn transaction_time(line: &str) -> Option<time::OffsetDateTime> {
    match weir::events::parse_input(line.as_bytes(), weir::events::MAX_EVENT_BYTES) {
        Ok(weir::events::InputEvent::Transaction(tx)) => Some(tx.occurred_at),
        _ => None,
    }
}

/// Three weeks of traffic; the last week measured. With the first two
/// weeks as warm-up, the accounts' devices are known, so the new-device
/// candidate raises fewer false alarms on that week than on the same week
/// from a cold start — and the warm-up's transactions are counted nowhere.
#[test]
fn a_warm_up_builds_the_accounts_history_and_is_not_counted() {
    let dir = tempdir();
    new_device_candidate(dir.path());
    let stream = weir::demo::generate_days(6_000, 150, 21, 3);
    let labels: String = std::iter::once("transaction_id,label\n".to_owned())
        .chain(stream.labels.iter().map(|(id, label)| format!("{id},{label}\n")))
        .collect();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    std::fs::write(dir.path().join("all.jsonl"), stream.lines.join("\n") + "\n").unwrap();
    let until = "2026-12-12T00:00:00Z";
    let until_t = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339).unwrap();
    let times: Vec<time::OffsetDateTime> = stream.lines.iter().filter_map(|l| transaction_time(l)).collect();
    let measured = times.iter().filter(|&&t| t >= until_t).count() as u64;
    let warm_up = times.len() as u64 - measured;
    assert!(measured > 1000 && warm_up > 3000, "{measured} measured, {warm_up} before");
    // The same last week alone: a cold start.
    let late: Vec<&String> =
        stream.lines.iter().filter(|l| transaction_time(l).is_some_and(|t| t >= until_t)).collect();
    std::fs::write(dir.path().join("late.jsonl"), late.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();

    let common = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--labels", "labels.csv"];
    let warm = ["--input", "all.jsonl", "--warm-up-until", until, "--json", "warm.json", "--html", "warm.html"];
    let o = weir(&[&common[..], &warm].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let second = stdout(&o).lines().nth(1).unwrap_or_default().to_owned();
    assert!(second.starts_with(&format!("warm-up: {warm_up} transactions")), "{second}");
    assert!(second.contains(&format!("before {until}")), "{second}");
    let o = weir(&[&common[..], &["--input", "late.jsonl", "--json", "cold.json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let read = |f: &str| -> Value { serde_json::from_slice(&std::fs::read(dir.path().join(f)).unwrap()).unwrap() };
    let (warm, cold) = (read("warm.json"), read("cold.json"));

    // The warm-up's transactions are in the warm-up, and only there.
    assert_eq!(warm["warm_up"]["transactions"], warm_up);
    assert_eq!(warm["warm_up"]["until"], until);
    assert!(warm["warm_up"]["last_event"].as_str().unwrap() < until);
    assert!(warm["first_event"].as_str().unwrap() >= until);
    let decided = |r: &Value, side: &str| {
        r[side]["decisions"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>()
    };
    for side in ["baseline", "candidate"] {
        assert_eq!(decided(&warm, side), measured, "{side} counts the measured week only");
        assert_eq!(decided(&cold, side), measured);
    }
    let rules = warm["candidate"]["rules"].as_array().unwrap();
    let new_device = rules.iter().find(|r| r["rule_id"] == "new-device").unwrap();
    assert_eq!(new_device["invocations"], measured);
    assert_eq!(cold.get("warm_up"), None, "no warm-up, no field");

    // Fewer false alarms on the same week once the devices are known.
    let false_alarms = |r: &Value| r["labels"]["candidate"]["decision"]["false_positives"].as_u64().unwrap();
    let (warm_fp, cold_fp) = (false_alarms(&warm), false_alarms(&cold));
    assert!(cold_fp > 0 && warm_fp < cold_fp, "false alarms: {warm_fp} after the warm-up, {cold_fp} from a cold start");
    let device_fp = |r: &Value| r["labels"]["candidate"]["rules"]["new-device"]["false_positives"].as_u64().unwrap();
    assert!(device_fp(&warm) < device_fp(&cold));
    assert!(
        std::fs::read_to_string(dir.path().join("warm.html"))
            .unwrap()
            .contains(&format!("Warm-up: {warm_up} transactions"))
    );

    // A time that is not RFC 3339, and one after every transaction.
    let o = weir(&[&common[..], &["--input", "all.jsonl", "--warm-up-until", "2026-12-12"]].concat(), dir.path());
    assert!(
        !o.status.success() && text(&o).contains("--warm-up-until \"2026-12-12\": not an RFC 3339 time"),
        "{}",
        text(&o)
    );
    let o =
        weir(&[&common[..], &["--input", "all.jsonl", "--warm-up-until", "2027-01-01T00:00:00Z"]].concat(), dir.path());
    assert!(!o.status.success(), "{}", text(&o));
    let expected = format!(
        "no transaction has an event time at or after the warm-up's end, 2027-01-01T00:00:00Z ({} transactions before it)",
        times.len()
    );
    assert!(text(&o).contains(&expected), "{}", text(&o));
}

/// More than 20 changed decisions: the JSON report holds every one, with
/// the rules' evidence; the examples are its first 20, and the terminal
/// and the page say how many more the JSON holds.
#[test]
fn the_json_report_holds_every_changed_decision() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    velocity_dir(&dir.path().join("candidate"), 3);
    let lines = weir::demo::generate(3000, 60, 77).lines;
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let args = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let o = weir(&[&args[..], &["--json", "report.json", "--html", "report.html"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let total = r["changes"]["total"].as_u64().unwrap();
    assert!(total > 100, "{total} changed decisions");
    let all = r["changes"]["all"].as_array().unwrap();
    assert_eq!(all.len() as u64, total, "every changed decision is in the JSON");
    let examples = r["changes"]["examples"].as_array().unwrap();
    assert_eq!(examples.len(), weir::backtest::EXAMPLES);
    assert_eq!(examples[..], all[..examples.len()], "the examples are the first of them");
    let ids: std::collections::HashSet<&str> = all.iter().map(|e| e["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "each once");
    let order: Vec<(&str, &str)> =
        all.iter().map(|e| (e["occurred_at"].as_str().unwrap(), e["transaction_id"].as_str().unwrap())).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order of event time, then transaction id");
    for e in all {
        assert_eq!(e["from"], "TransactionVerified");
        assert_eq!(e["to"], "FraudSuspected");
        let hit = &e["candidate_hits"][0];
        assert_eq!(
            (&hit["rule_id"], &hit["outcome"], &hit["reason_code"]),
            (&"velocity".into(), &"suspect".into(), &"VELOCITY_COUNT".into())
        );
        let evidence = hit["evidence"].as_array().unwrap();
        let count = evidence.iter().find(|v| v["name"] == "count").unwrap()["value"].as_str().unwrap();
        assert!(count.parse::<u32>().unwrap() > 3, "{e}");
        assert_eq!(e.get("baseline_hits"), None, "the baseline passed it: {e}");
    }
    assert!(
        stdout(&o).contains(&format!("... and {} more (every one, with evidence, in the JSON report", total - 10)),
        "{}",
        stdout(&o)
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains(&format!("and {} more (all in the JSON report)", total - 20)));
}

#[test]
fn the_rules_table_fits_a_long_rule_id() {
    let dir = tempdir();
    velocity_dir(&dir.path().join("baseline"), 10);
    let candidate = dir.path().join("candidate");
    velocity_dir(&candidate, 3);
    let long = "velocity-per-account-within-the-hour";
    let manifest = std::fs::read_to_string(candidate.join("velocity.toml")).unwrap();
    let manifest = manifest.replace("id = \"velocity\"", &format!("id = \"{long}\"\ncomponent = \"velocity.wasm\""));
    std::fs::write(candidate.join("velocity.toml"), manifest).unwrap();
    let (lines, _) = history();
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let args = ["backtest", "--baseline", "baseline", "--candidate", "candidate", "--input", "history.jsonl"];
    let o = weir(&args, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let table = out.split("\ncandidate (").nth(1).unwrap_or_default();
    let header = table.lines().find(|l| l.trim_start().starts_with("rule ")).unwrap_or_default();
    let row = table.lines().find(|l| l.trim_start().starts_with(long)).unwrap_or_default();
    assert_eq!(header.find("version"), row.find("1.0.0"), "the version column lines up:\n{header}\n{row}");
    assert_eq!(header.chars().count(), row.chars().count(), "the last column ends together:\n{header}\n{row}");
}
