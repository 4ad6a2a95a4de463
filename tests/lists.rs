//! Runtime lists (`weir::lists`, `weir list`, `Context::in_list`): rules
//! read the lists in effect and decisions record their versions; the
//! embedded pipeline follows the lists file; a replay with the same list
//! versions gives byte-identical decisions; bad changes and lists over
//! their bounds are refused with a clear error and nothing written. The
//! Kafka side (two instances, within a second) is in `kafka`.

use std::sync::Arc;

use weir::engine::Engine;
use weir::events::{DecisionType, RuleOutcome};
use weir::lists::{ListSet, version_text};
use weir::packages::load_shipped;

use crate::util::{evaluator, hostile, position, stdout, tempdir, text, weir};

/// The story's purchase from `device` for `account`, as an input line.
fn purchase(id: &str, account: &str, device: &str, after_secs: i64) -> String {
    let tx = weir::cases::CaseTx {
        account: Some(account.into()),
        device_fingerprint: Some(device.into()),
        after_secs: Some(after_secs),
        ..Default::default()
    };
    serde_json::to_string(&tx.to_event(id)).unwrap()
}

#[test]
fn a_rule_reads_the_lists_in_effect_and_the_decision_records_their_versions() {
    let engine = Engine::new().unwrap();
    let blocklist = load_shipped(&engine).unwrap().into_iter().find(|r| r.spec.id == "blocklist").unwrap();
    let mut ev = evaluator(vec![blocklist]);
    let mut account = weir::state::AccountState::default();
    let tx = |id: &str, secs| {
        weir::cases::CaseTx {
            device_fingerprint: Some("fp-stolen".into()),
            after_secs: Some(secs),
            ..Default::default()
        }
        .to_event(id)
    };
    // No lists: the rule passes and records nothing.
    let d = ev.decide(&tx("t1", 0), &mut account, position(0));
    assert_eq!(d.event_type, DecisionType::TransactionVerified);
    assert!(d.rules[0].lists.is_empty(), "{:?}", d.rules[0].lists);

    let lists = ListSet::of([("blocked-devices", "fp-stolen"), ("blocked-merchants", "m-other")]).unwrap();
    let devices = version_text(lists.get("blocked-devices").unwrap().version());
    let merchants = version_text(lists.get("blocked-merchants").unwrap().version());
    ev.set_lists(1, Arc::new(lists));
    let d = ev.decide(&tx("t2", 60), &mut account, position(1));
    assert_eq!(d.event_type, DecisionType::FraudSuspected);
    let r = &d.rules[0];
    assert_eq!((r.outcome, r.reason_code.as_str()), (RuleOutcome::Suspect, "BLOCKED_DEVICE"));
    let read: Vec<(&str, String)> = r.lists.iter().map(|l| (l.list.as_str(), version_text(l.version))).collect();
    // In the order read (accounts, devices, cards, counterparties, merchants,
    // countries), only the lists with entries, and the allow list (empty)
    // read on the hit is not recorded.
    assert_eq!(read, [("blocked-devices", devices)]);

    // A transaction from another device reads the merchants list too.
    let other =
        weir::cases::CaseTx { device_fingerprint: Some("fp-mine".into()), after_secs: Some(120), ..Default::default() }
            .to_event("t3");
    let d = ev.decide(&other, &mut account, position(2));
    let read: Vec<&str> = d.rules[0].lists.iter().map(|l| l.list.as_str()).collect();
    assert_eq!(read, ["blocked-devices", "blocked-merchants"]);
    assert_eq!(version_text(d.rules[0].lists[1].version), merchants);
    // The JSON carries them, as the schema says.
    let mut json = Vec::new();
    d.write_json(&mut json);
    assert_eq!(json, serde_json::to_vec(&d).unwrap());
    assert!(String::from_utf8(json).unwrap().contains(&format!("\"version\":\"{merchants}\"")));

    // Taken off the list: the next transaction passes.
    ev.set_lists(2, Arc::new(ListSet::of([("blocked-merchants", "m-other")]).unwrap()));
    assert_eq!(ev.decide(&tx("t4", 180), &mut account, position(3)).event_type, DecisionType::TransactionVerified);
}

#[test]
fn a_rule_that_reads_too_many_lists_costs_only_its_own_verdict() {
    let engine = Engine::new().unwrap();
    let greedy = hostile(&engine, "greedy", "many-lists", "");
    let same = hostile(&engine, "same", "same-list", "");
    let mut ev = evaluator(vec![greedy, same]);
    let names: Vec<String> = (0..100).map(|i| format!("list-{i}")).collect();
    let lists = ListSet::of(names.iter().map(|n| (n.as_str(), "acct-elsewhere"))).unwrap();
    ev.set_lists(1, Arc::new(lists));
    let mut account = weir::state::AccountState::default();
    let d = ev.decide(&crate::util::tx("t1", 0), &mut account, position(0));
    let greedy = d.rules.iter().find(|r| &*r.rule_id == "greedy").unwrap();
    assert_eq!(greedy.outcome, RuleOutcome::Error);
    let error = greedy.error.as_deref().unwrap();
    assert!(error.contains("read more than 8 different lists"), "{error}");
    assert_eq!(weir::engine::RuleError::kind_of(error), "lists");
    assert!(greedy.lists.len() <= 8, "at most eight recorded: {:?}", greedy.lists);
    let same = d.rules.iter().find(|r| &*r.rule_id == "same").unwrap();
    assert_eq!(same.outcome, RuleOutcome::Pass, "one list read a thousand times is one list");
    assert_eq!(same.lists.len(), 1);
    assert_eq!(d.event_type, DecisionType::TransactionVerified, "fail-open: only the rule's own verdict is lost");
}

/// `weir list add --append` writes the lists file `weir run --lists`
/// follows; `weir list export` writes one that replays byte for byte.
#[test]
fn weir_run_reads_the_lists_file_and_a_replay_with_the_same_lists_is_byte_identical() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    let input: Vec<String> = vec![
        purchase("tx-1", "acct-a", "fp-stolen", 0),
        purchase("tx-2", "acct-b", "fp-owner", 60),
        purchase("tx-3", "acct-vip", "fp-stolen", 120),
    ];
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n")).unwrap();
    let list = |args: &[&str]| {
        let o = weir(&[&["list"], args].concat(), dir.path());
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };
    let added = list(&["add", "blocked-devices", "fp-stolen", "--analyst", "analyst-7", "--append", "lists.jsonl"]);
    assert!(added.contains("1 value(s) added to list blocked-devices: 1 entries, version"), "{added}");
    list(&[
        "add",
        "allowed-accounts",
        "acct-vip",
        "--analyst",
        "analyst-7",
        "--note",
        "vouched",
        "--append",
        "lists.jsonl",
    ]);
    let shown: serde_json::Value = serde_json::from_str(&list(&["show", "--from", "lists.jsonl", "--json"])).unwrap();
    let names: Vec<&str> = shown["lists"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["allowed-accounts", "blocked-devices"]);
    let version = shown["lists"][1]["version"].as_str().unwrap().to_owned();

    let run = |out: &str, lists: &str| {
        let o =
            weir(&["run", "--rules", "rules", "--input", "in.jsonl", "--output", out, "--lists", lists], dir.path());
        assert!(o.status.success(), "{}", text(&o));
        std::fs::read(dir.path().join(out).join("decisions.jsonl")).unwrap()
    };
    let first = run("out-1", "lists.jsonl");
    let decisions: Vec<serde_json::Value> =
        String::from_utf8_lossy(&first).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = decisions.iter().map(|d| d["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["FraudSuspected", "TransactionVerified", "TransactionVerified"], "acct-vip is allowed");
    let blocklist = |d: &serde_json::Value| {
        d["rules"].as_array().unwrap().iter().find(|r| r["rule_id"] == "blocklist").unwrap().clone()
    };
    assert_eq!(blocklist(&decisions[0])["reason_code"], "BLOCKED_DEVICE");
    assert_eq!(blocklist(&decisions[0])["lists"][0]["version"], version.as_str());

    // The export has the same entries, so the same versions: the replay is byte-identical.
    let export = list(&["export", "--from", "lists.jsonl"]);
    assert_eq!(export.lines().count(), 2, "{export}");
    std::fs::write(dir.path().join("export.jsonl"), &export).unwrap();
    assert_eq!(run("out-2", "export.jsonl"), first);

    // Another version of the list is another version in the decision.
    list(&["add", "blocked-devices", "fp-other", "--analyst", "analyst-7", "--append", "export.jsonl"]);
    let third = run("out-3", "export.jsonl");
    assert_ne!(third, first);
    let d: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&third).lines().next().unwrap()).unwrap();
    assert_ne!(blocklist(&d)["lists"][0]["version"], version.as_str());

    // A backtest with the lists sees the hit; without them, nothing.
    let backtest = |extra: &[&str]| {
        let args = ["backtest", "--candidate", "rules", "--baseline", "rules", "--input", "in.jsonl"];
        let o = weir(&[&args[..], &["--json", "report.json"], extra].concat(), dir.path());
        assert!(o.status.success(), "{}", text(&o));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
        report["candidate"]["decisions"]["FraudSuspected"].as_u64().unwrap_or(0)
    };
    assert_eq!(backtest(&["--lists", "lists.jsonl"]), 1);
    assert_eq!(backtest(&[]), 0);
}

#[test]
fn bad_list_changes_and_lists_over_their_bounds_are_refused_and_nothing_is_written() {
    let dir = tempdir();
    let list = |args: &[&str]| weir(&[&["list"], args].concat(), dir.path());
    let lists = dir.path().join("lists.jsonl");
    let add = ["add", "--analyst", "analyst-7", "--append", "lists.jsonl"];
    let o = list(&[&add[..], &["Blocked Devices", "fp-1"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("field `list`"), "{}", text(&o));
    let o = list(&[&add[..], &["blocked-devices", "fp-1", "--expires", "next week"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--expires \"next week\" is not an RFC 3339 time"), "{}", text(&o));
    let o = list(&[&add[..], &["blocked-devices", &"v".repeat(300)]].concat());
    assert!(text(&o).contains("field `value`"), "{}", text(&o));
    assert!(!lists.exists(), "nothing was written");

    // A million values: over the bound of one list, refused whole.
    let million: String = (0..1_000_000).map(|i| format!("fp-{i}\n")).collect();
    std::fs::write(dir.path().join("million.txt"), million).unwrap();
    let o = list(&[&add[..], &["blocked-devices", "--values-from", "million.txt"]].concat());
    assert!(!o.status.success());
    let error = text(&o);
    assert!(error.contains("lists.max_entries_per_list"), "{error}");
    assert!(error.contains("100000 of the 1000000 values fit, nothing was written"), "{error}");
    assert!(!lists.exists(), "nothing was written");

    // A malformed line in the file (written by hand) is refused when read,
    // the rest applies, and `weir list show` says so.
    let o = list(&[&add[..], &["blocked-devices", "fp-1", "fp-2"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let mut file = std::fs::read_to_string(&lists).unwrap();
    file.push_str("{\"event_type\":\"ListChanged\",\"list\":\"x\"}\n");
    std::fs::write(&lists, file).unwrap();
    let o = list(&["show", "--from", "lists.jsonl"]);
    let shown = stdout(&o);
    assert!(shown.contains("blocked-devices") && shown.contains("2 entries"), "{shown}");
    assert!(shown.contains("1 change(s) refused") && shown.contains("ListChanged"), "{shown}");
    let o = list(&["show", "blocked-devices", "--from", "lists.jsonl"]);
    assert!(stdout(&o).contains("fp-2  (by analyst-7 at"), "{}", stdout(&o));
    // Removing leaves one.
    let o = list(&["remove", "blocked-devices", "fp-1", "--analyst", "analyst-7", "--append", "lists.jsonl", "--json"]);
    let done: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((done["action"].as_str(), done["entries"].as_u64()), (Some("remove"), Some(1)));

    // Expired entries match nothing but stay until removed: `remove-expired` takes them off.
    let until = |value: &str, at: &str| {
        let o = list(&[&add[..], &["blocked-merchants", value, "--expires", at]].concat());
        assert!(o.status.success(), "{}", text(&o));
    };
    until("m-breached", "2026-01-01T00:00:00Z");
    until("m-later", "2027-06-01T00:00:00Z");
    let o =
        list(&["remove-expired", "--at", "2026-12-01T00:00:00Z", "--analyst", "analyst-7", "--append", "lists.jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("1 value(s) removed from list blocked-merchants: 1 entries"), "{}", stdout(&o));
    let o = list(&["show", "blocked-merchants", "--from", "lists.jsonl"]);
    assert!(stdout(&o).contains("m-later") && !stdout(&o).contains("m-breached"), "{}", stdout(&o));
    let o =
        list(&["remove-expired", "--at", "2026-12-01T00:00:00Z", "--analyst", "analyst-7", "--append", "lists.jsonl"]);
    assert!(stdout(&o).contains("no expired entries"), "{}", stdout(&o));
}
