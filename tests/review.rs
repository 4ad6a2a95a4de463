//! Review cases (`weir::review`, `weir case list`, `weir case show`): the
//! cases folded from what weir decided and what analysts concluded.

use weir::events::{CaseResolved, DecisionType, Verdict};
use weir::review::{CaseState, Published, cases};

use crate::util::{card_testing, decide_embedded, stdout, tempdir, text, unlock_line, weir};

/// acct-u: card testing locks it (case 1); an analyst unlocks it and calls
/// it fraud; card testing again (case 2, open). acct-v: card testing,
/// called legitimate. acct-w: never flagged, no case.
fn scenario() -> (Vec<String>, Vec<CaseResolved>) {
    let mut lines = card_testing("acct-u", "tx-a", 0);
    lines.push(unlock_line("acct-u", "tx-a-4", 0));
    lines.extend(card_testing("acct-u", "tx-b", 3600));
    lines.extend(card_testing("acct-v", "tx-v", 0));
    lines.push(
        serde_json::to_string(
            &weir::cases::CaseTx { account: Some("acct-w".into()), ..Default::default() }.to_event("tx-w"),
        )
        .unwrap(),
    );
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let dispositions = vec![
        CaseResolved::new(
            "acct-u",
            &ids(&["tx-a-4", "tx-a-5"]),
            Verdict::Fraud,
            Some("card-testing"),
            "analyst-7",
            None,
            at,
        )
        .unwrap(),
        CaseResolved::new(
            "acct-v",
            &ids(&["tx-v-4", "tx-v-5"]),
            Verdict::Legitimate,
            None,
            "analyst-7",
            Some("own purchases"),
            at,
        )
        .unwrap(),
    ];
    (lines, dispositions)
}

#[test]
fn flagged_decisions_open_cases_that_dispositions_resolve() {
    let (lines, dispositions) = scenario();
    let (_, decided) = decide_embedded(&lines);
    let decisions: Vec<_> = decided.into_values().collect();
    let unlocks = vec![serde_json::from_str(&lines[5]).unwrap()];
    let all = cases(Published { decisions: decisions.clone(), unlocks, dispositions, confirmations: Vec::new() });
    let summary: Vec<(&str, CaseState, Vec<&str>)> = all
        .iter()
        .map(|c| (c.account_id.as_str(), c.state, c.decisions.iter().map(|d| d.transaction_id.as_str()).collect()))
        .collect();
    assert_eq!(
        summary,
        [
            ("acct-u", CaseState::Fraud, vec!["tx-a-4", "tx-a-5"]),
            ("acct-u", CaseState::Open, vec!["tx-b-4", "tx-b-5"]),
            ("acct-v", CaseState::Legitimate, vec!["tx-v-4", "tx-v-5"]),
        ],
        "{all:#?}"
    );
    let first = &all[0];
    assert!(first.locked && first.decisions[0].event_type == DecisionType::AccountLocked);
    assert!(
        first.decisions[0].fired.iter().any(|f| f == "card-testing:CARD_TESTING"),
        "{:?}",
        first.decisions[0].fired
    );
    assert_eq!(
        first.decisions[0].rules.iter().find(|r| r.rule_id.as_ref() == "card-testing").unwrap().reason_code,
        "CARD_TESTING"
    );
    assert_eq!(first.unlocks.len(), 1, "the analyst's unlock is on the case it lifted");
    assert_eq!(first.resolution.as_ref().unwrap().pattern.as_deref(), Some("card-testing"));
    let recent: Vec<&str> = first.recent.iter().map(|d| d.transaction_id.as_str()).collect();
    assert_eq!(recent, ["tx-a-1", "tx-a-2", "tx-a-3"], "the account's decisions before the case");
    assert!(all[1].unlocks.is_empty() && all[1].resolution.is_none());

    // The same decisions in another order give the same cases.
    let mut shuffled = decisions;
    shuffled.reverse();
    let (_, dispositions) = scenario();
    let unlocks = vec![serde_json::from_str(&lines[5]).unwrap()];
    let again = cases(Published { decisions: shuffled, unlocks, dispositions, confirmations: Vec::new() });
    assert_eq!(again, all);
}

/// `weir case list` and `weir case show` over the embedded pipeline's files.
#[test]
fn case_list_and_show_over_the_embedded_files() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    let (lines, dispositions) = scenario();
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n")).unwrap();
    let d: Vec<String> = dispositions.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    std::fs::write(dir.path().join("dispositions.jsonl"), d.join("\n")).unwrap();
    let o = weir(&["run", "--rules", "rules", "--input", "input.jsonl", "--output", "out"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let source = ["--decisions", "out/decisions.jsonl", "--dispositions", "dispositions.jsonl"];

    let o = weir(&[&["case", "list"][..], &source].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let listed = stdout(&o);
    assert!(
        listed.starts_with("1 case(s)") && listed.contains("acct-u") && listed.contains("card-testing:CARD_TESTING"),
        "{listed}"
    );
    let o = weir(&[&["case", "list", "--state", "all", "--sort", "score", "--json"][..], &source].concat(), dir.path());
    let all: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let states: Vec<&str> = all.as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(states.len(), 3);
    assert!(states.contains(&"fraud") && states.contains(&"legitimate") && states.contains(&"open"), "{states:?}");

    let o = weir(&[&["case", "show", "acct-v"][..], &source].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let shown = stdout(&o);
    assert!(shown.contains("Legitimate") && shown.contains("own purchases") && shown.contains("tx-v-4"), "{shown}");
    // With the input, the analyst's unlock shows on the case whose lock it lifted.
    let o = weir(&[&["case", "show", "acct-u", "--input", "input.jsonl"][..], &source].concat(), dir.path());
    let shown = stdout(&o);
    assert_eq!(shown.matches("unlocked (the lock by tx-a-4)").count(), 1, "{shown}");
    let id = all[0]["case_id"].as_str().unwrap();
    let o = weir(&[&["case", "show", &id[..8], "--json"][..], &source].concat(), dir.path());
    let one: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(one[0]["case_id"], id);
    let o = weir(&[&["case", "show", "no-such-case"][..], &source].concat(), dir.path());
    assert!(!o.status.success() && text(&o).contains("no case no-such-case"), "{}", text(&o));

    // `weir case resolve --case` covers every flagged decision of the open case; then none is open.
    let open = all.as_array().unwrap().iter().find(|c| c["state"] == "open").unwrap();
    let open_id = open["case_id"].as_str().unwrap();
    let resolve = ["case", "resolve", "--verdict", "fraud", "--pattern", "card-testing", "--analyst", "analyst-7"];
    let files = ["--decisions", "out/decisions.jsonl", "--append", "dispositions.jsonl"];
    let o = weir(&[&resolve[..], &["--case", &open_id[..8]], &files[..]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let written: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("dispositions.jsonl")).unwrap().lines().last().unwrap(),
    )
    .unwrap();
    assert_eq!(written["account_id"], open["account_id"]);
    let named: Vec<&str> = written["transaction_ids"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let flagged: Vec<&str> =
        open["decisions"].as_array().unwrap().iter().map(|d| d["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(named, flagged);
    let o = weir(&[&["case", "list"][..], &source].concat(), dir.path());
    assert!(stdout(&o).starts_with("0 case(s)"), "{}", stdout(&o));
    // An unknown case is refused and nothing is written.
    let before = std::fs::read_to_string(dir.path().join("dispositions.jsonl")).unwrap();
    let o = weir(&[&resolve[..], &["--case", "ffffffff"], &files[..]].concat(), dir.path());
    assert!(!o.status.success() && text(&o).contains("no case ffffffff"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("dispositions.jsonl")).unwrap(), before);
}

/// A customer's confirmation ("it was me") of a flagged transaction shows on
/// its case (`--input`); a verdict on a transaction weir never decided for
/// the account is refused, naming it, and nothing is written.
#[test]
fn a_case_shows_the_customers_confirmation_and_a_verdict_needs_a_decided_transaction() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    let bet = weir::cases::CaseTx {
        account: Some("acct-c".into()),
        merchant: Some("m-luckybets".into()),
        category: Some("7995".into()),
        ..Default::default()
    }
    .to_event("tx-bet");
    let confirmation = serde_json::json!({
        "event_id": "confirm-1", "event_type": "TransactionVerified", "schema_version": 1,
        "occurred_at": serde_json::to_value(&bet).unwrap()["occurred_at"],
        "causation_id": weir::events::decision_event_id(&bet.event_id).to_string(),
        "transaction_id": "tx-bet", "account_id": "acct-c", "merchant_id": "m-luckybets", "verified_by": "customer"
    });
    let lines = [serde_json::to_string(&bet).unwrap(), confirmation.to_string()];
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n")).unwrap();
    let o = weir(&["run", "--rules", "rules", "--input", "input.jsonl", "--output", "out"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let source = ["--decisions", "out/decisions.jsonl", "--input", "input.jsonl"];
    let o = weir(&[&["case", "show", "acct-c", "--json"][..], &source].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown[0]["decisions"][0]["event_type"], "FraudSuspected");
    assert_eq!(shown[0]["confirmations"][0]["transaction_id"], "tx-bet", "{shown}");
    let o = weir(&[&["case", "show", "acct-c"][..], &source].concat(), dir.path());
    assert!(stdout(&o).contains("the customer confirmed tx-bet"), "{}", stdout(&o));
    // Without the input, no confirmation is claimed.
    let o = weir(&["case", "show", "acct-c", "--json", "--decisions", "out/decisions.jsonl"], dir.path());
    assert!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()[0].get("confirmations").is_none());

    let resolve = ["case", "resolve", "--verdict", "legitimate", "--analyst", "analyst-7", "--account", "acct-c"];
    let files = ["--decisions", "out/decisions.jsonl", "--append", "dispositions.jsonl"];
    let o = weir(
        &[&resolve[..], &["--transaction", "tx-bet", "--transaction", "tx-never"], &files[..]].concat(),
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("weir decided no transaction tx-never of account acct-c"), "{}", text(&o));
    assert!(!dir.path().join("dispositions.jsonl").exists(), "nothing was written");
    let o = weir(&[&resolve[..], &["--transaction", "tx-bet"], &files[..]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = weir(
        &[
            "case",
            "list",
            "--state",
            "all",
            "--decisions",
            "out/decisions.jsonl",
            "--dispositions",
            "dispositions.jsonl",
        ],
        dir.path(),
    );
    assert!(stdout(&o).contains("legitimate") || stdout(&o).contains("Legitimate"), "{}", stdout(&o));
}
