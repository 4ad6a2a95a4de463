//! Every place where text from a deployer, a producer or a rule reaches a
//! terminal or a log line, fed escape sequences, newlines and
//! bidirectional overrides: none arrives raw, so no line can be forged.
//! The sinks: `weir rules` (a manifest's version), `weir run`'s log at
//! debug level (the same manifest; dead-letter reasons of records whose
//! ids or keys carry them), `weir backtest` (its report and refusals) and
//! `weir rule test` (a case's name).

use crate::deploy::{velocity_manifest, velocity_package};
use crate::util::{guest, tempdir, text, tx};

const FORGERY: &str = "\u{1b}[2K\rINFO all rules loaded\n\u{202e}";

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn assert_clean(what: &str, output: &str) {
    let raw = ['\u{1b}', '\u{202e}', '\r'];
    assert!(!output.contains(raw), "{what} shows raw control text:\n{output:?}");
    assert!(!output.contains("\nINFO all rules loaded"), "{what} has a forged line:\n{output}");
}

#[test]
fn no_sink_shows_control_text_raw() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    velocity_package(&rules, "1.0.0", 10);
    // A deployer's manifest whose version forges a log line.
    std::fs::write(rules.join("forger.wasm"), guest("velocity")).unwrap();
    let forged = velocity_manifest("1.0.0", 10)
        .replace("id = \"velocity\"", "id = \"forger\"")
        .replace("version = \"1.0.0\"", &format!("version = {}", toml_string(FORGERY)));
    std::fs::write(rules.join("forger.toml"), forged).unwrap();
    let o = crate::util::weir(&["rules", "rules"], dir.path());
    assert!(text(&o).contains("rule.version"), "{}", text(&o));
    assert_clean("weir rules", &text(&o));

    // A producer's records: an id, a key and a merchant carrying the forgery.
    let mut bad_id = tx("x", 0);
    bad_id.transaction_id = format!("tx{FORGERY}");
    let confirmation = serde_json::json!({
        "event_id": "c-1", "event_type": "TransactionVerified", "schema_version": 1,
        "occurred_at": "2026-03-14T09:01:00Z", "causation_id": "d-1", "transaction_id": "tx-1",
        "account_id": "acct-1", "merchant_id": format!("m{FORGERY}"), "verified_by": "customer"
    });
    let lines = [
        serde_json::to_string(&tx("good", 0)).unwrap(),
        serde_json::to_string(&bad_id).unwrap(),
        format!("{{{}: 1}}", serde_json::to_string(FORGERY).unwrap()),
        confirmation.to_string(),
    ];
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "history.jsonl", "--rules", "rules", "--output", "out"])
        .current_dir(dir.path())
        .env("WEIR_LOG", "debug")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert_clean("weir run", &text(&run));
    let dead = std::fs::read_to_string(dir.path().join("out/dead-letters.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 3, "the three records carrying the forgery are dead letters");

    let args =
        ["backtest", "--baseline", "rules", "--candidate", "rules", "--input", "history.jsonl", "--allow-refused"];
    let o = crate::util::weir(&args, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_clean("weir backtest", &text(&o));

    // A deployer's case file whose case name forges a line.
    let cases = format!("[[case]]\nname = {}\n[case.expect]\noutcome = \"pass\"\n", toml_string(FORGERY));
    std::fs::write(dir.path().join("cases.toml"), cases).unwrap();
    let o = crate::util::weir(
        &["rule", "test", "rules/velocity.wasm", "cases.toml", "--manifest", "rules/velocity.toml"],
        dir.path(),
    );
    assert_clean("weir rule test", &text(&o));
}
