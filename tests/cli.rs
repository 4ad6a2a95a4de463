//! The `weir` binary, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{card_testing, guest_path, stdout, tempdir, weir};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn help_explains_every_command() {
    let dir = tempdir();
    let o = weir(&["--help"], dir.path());
    assert!(o.status.success());
    let text = stdout(&o);
    for cmd in ["demo", "run", "rule", "rules", "case"] {
        assert!(text.contains(&format!("  {cmd} ")), "--help lists {cmd}:\n{text}");
    }
    let o = weir(&["rule", "test", "--help"], dir.path());
    assert!(stdout(&o).contains("production sandbox"));
}

#[test]
fn demo_runs_with_nothing_set_up_and_reports() {
    let dir = tempdir();
    let o = weir(&["demo", "--out", "out", "--transactions", "3000"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    for expected in
        ["TransactionVerified", "FraudSuspected", "AccountLocked", "dead-lettered", "The story", "Throughput"]
    {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("acct-1029 buys concert tickets, EUR 189.00\n    → TransactionVerified"), "{text}");
    let out = dir.path().join("out");
    let decisions = std::fs::read_to_string(out.join("decisions.jsonl")).unwrap();
    let inputs = std::fs::read_to_string(out.join("transactions.jsonl")).unwrap();
    let dead = std::fs::read_to_string(out.join("dead-letters.jsonl")).unwrap();
    assert_eq!(decisions.lines().count() + dead.lines().count(), inputs.lines().count());
    assert!(out.join("state.redb").is_file());
    assert!(out.join("rules/velocity.toml").is_file() && out.join("rules/velocity.wasm").is_file());

    // The exported packages run with `weir run`, and a second demo starts afresh.
    let o =
        weir(&["run", "--rules", "out/rules", "--input", "out/transactions.jsonl", "--output", "rerun"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rerun = std::fs::read_to_string(dir.path().join("rerun/decisions.jsonl")).unwrap();
    assert_eq!(rerun.lines().count(), decisions.lines().count());
    let o = weir(&["demo", "--out", "out", "--transactions", "3000"], dir.path());
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(out.join("decisions.jsonl")).unwrap(), decisions);
}

/// `weir demo --days 21`: three weeks of event time, each account with a
/// history (many days, returning devices), labelled; the same seed gives
/// the same stream, another seed another.
#[test]
fn demo_over_days_spans_weeks_with_histories_and_is_deterministic() {
    let dir = tempdir();
    let demo = |out: &str, seed: &str| {
        let args =
            ["demo", "--days", "21", "--transactions", "5000", "--accounts", "120", "--seed", seed, "--out", out];
        let o = weir(&args, dir.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout(&o).contains("over 21 days of event time"), "{}", stdout(&o));
        let read = |f: &str| std::fs::read_to_string(dir.path().join(out).join(f)).unwrap();
        (read("transactions.jsonl"), read("labels.csv"))
    };
    let (lines, labels) = demo("a", "5");
    assert_eq!(demo("b", "5"), (lines.clone(), labels.clone()), "the same seed, the same stream and labels");
    assert_ne!(demo("c", "6").0, lines, "another seed, another stream");

    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let mut times = Vec::new();
    let mut days: std::collections::HashMap<String, std::collections::HashSet<i64>> = Default::default();
    let mut devices: std::collections::HashMap<(String, String), std::collections::HashSet<i64>> = Default::default();
    let mut ids = std::collections::HashSet::new();
    for line in lines.lines() {
        if weir::events::parse_input(line.as_bytes(), weir::events::MAX_EVENT_BYTES).is_err() {
            continue; // the malformed records, dead-lettered
        }
        let tx: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(id) = tx["transaction_id"].as_str() else { continue };
        let at = time::OffsetDateTime::parse(tx["occurred_at"].as_str().unwrap(), rfc3339).unwrap();
        let day = at.unix_timestamp() / 86_400;
        let account = tx["account_id"].as_str().unwrap().to_owned();
        if let Some(device) = tx["device_fingerprint"].as_str() {
            assert_eq!(tx["schema_version"], 2);
            devices.entry((account.clone(), device.to_owned())).or_default().insert(day);
        }
        days.entry(account).or_default().insert(day);
        times.push(at);
        ids.insert(id.to_owned());
    }
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(span >= time::Duration::days(20) && span <= time::Duration::days(21), "the stream spans {span}");
    let ordinary: Vec<_> = days.iter().filter(|(a, _)| a.starts_with("acct-0")).collect();
    let long = ordinary.iter().filter(|(_, d)| d.len() >= 10).count();
    assert!(long * 2 > ordinary.len(), "{long} of {} accounts shop on 10 days or more", ordinary.len());
    let returning = devices.values().filter(|d| d.len() >= 3).count();
    assert!(returning >= 100, "{returning} devices come back on three days or more");

    // labels.csv names each transaction once, and only transactions of the stream.
    let mut labelled = std::collections::HashMap::new();
    for row in labels.lines().skip(1) {
        let (id, label) = row.split_once(',').unwrap();
        assert!(ids.contains(id), "{id} is labelled but not in the stream");
        assert!(labelled.insert(id.to_owned(), label.to_owned()).is_none(), "{id} labelled twice");
    }
    for pattern in ["legit", "card-testing", "burst", "impossible-travel", "account-takeover"] {
        let n = labelled.values().filter(|l| *l == pattern).count();
        assert!(n > 0, "no {pattern} in the labels");
    }
    let incidents = labelled.values().filter(|l| *l == "account-takeover").count();
    assert!(incidents >= 3 * 3, "three account takeovers of three purchases: {incidents} transactions");
    assert_eq!(ids.len() - labelled.len(), 2, "only the story's betting purchase and transfer are unlabelled");
}

#[test]
fn rules_reports_refused_packages_and_run_uses_the_rest() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let velocity = std::fs::read(guest_path("velocity")).unwrap();
    std::fs::write(rules.join("velocity.wasm"), &velocity).unwrap();
    std::fs::write(rules.join("velocity.toml"), std::fs::read(repo_root().join("rules/velocity/rule.toml")).unwrap())
        .unwrap();
    std::fs::write(rules.join("broken.wasm"), &velocity[..velocity.len() / 3]).unwrap();
    std::fs::write(rules.join("broken.toml"), "[rule]\nid = \"broken\"\nversion = \"1\"\n").unwrap();
    std::fs::write(rules.join("typo.toml"), "[rule]\nid = \"typo\"\nversion = \"1\"\nmdoe = \"shadow\"\n").unwrap();

    let o = weir(&["rules", "rules"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("loaded   velocity"), "{text}");
    assert!(text.contains("broken.toml") && text.contains("does not compile"), "{text}");
    assert!(text.contains("typo.toml") && text.contains("mdoe"), "{text}");
    assert!(text.contains("1 loaded, 2 refused"), "{text}");

    let input = "{\"event_id\":\"e-1\",\"event_type\":\"TransactionRecorded\",\"schema_version\":1,\"occurred_at\":\"2026-11-28T19:42:07.512Z\",\"transaction_id\":\"tx-1\",\"account_id\":\"acct-1\",\"amount\":{\"minor_units\":18900,\"currency\":\"EUR\"},\"merchant\":{\"id\":\"m-1\",\"category_code\":\"7922\"},\"channel\":\"ecommerce\"}\n";
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let o = weir(&["run", "--rules", "rules", "--input", "in.jsonl", "--output", "out"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused"));
    let decisions = std::fs::read_to_string(dir.path().join("out/decisions.jsonl")).unwrap();
    assert_eq!(decisions.lines().count(), 1);
    assert!(decisions.contains("\"rule_id\":\"velocity\""));
}

#[test]
fn rule_test_reports_each_case_and_fails_on_a_wrong_expectation() {
    let dir = tempdir();
    let module = guest_path("velocity");
    let manifest = repo_root().join("rules/velocity/rule.toml");
    let good = repo_root().join("rules/velocity/cases.toml");
    let o = weir(&["rule", "test", module.to_str().unwrap(), good.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains(" 0 failed"));

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[[case]]\nname = \"a single purchase locks\"\n[case.expect]\noutcome = \"lock\"\n")
        .unwrap();
    let o = weir(
        &["rule", "test", module.to_str().unwrap(), wrong.to_str().unwrap(), "--manifest", manifest.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("FAIL  a single purchase locks — expected outcome lock, got pass"), "{text}");
    assert!(text.contains("0 passed, 1 failed"), "{text}");
}

/// The README's walkthrough block, exactly as written, as a new user runs
/// it: `weir` on the PATH (a copy of the binary outside the source tree), in
/// an empty directory, with nothing of weir's source tree referenced by the
/// rule crate it makes.
/// `weir case unlock` for the embedded pipeline: the event appended to an
/// input file (or printed), which `weir run` applies, so the next card
/// testing locks the account again; a bad argument is refused naming the field.
#[test]
fn case_unlock_feeds_the_embedded_pipeline_and_refuses_bad_input() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("first.jsonl"), card_testing("acct-u", "tx-a", 0).join("\n")).unwrap();
    let run = |input: &str| {
        let o = weir(&["run", "--rules", "rules", "--input", input, "--output", "out"], dir.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    run("first.jsonl");
    let unlock = ["case", "unlock", "--account", "acct-u", "--transaction", "tx-a-4", "--analyst", "analyst-7"];
    let o = weir(&[&unlock[..], &["--note", "identity checked", "--append", "second.jsonl"]].concat(), dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("appended to second.jsonl"), "{}", stdout(&o));
    let mut second = std::fs::read_to_string(dir.path().join("second.jsonl")).unwrap();
    second.push_str(&card_testing("acct-u", "tx-b", 3600).join("\n"));
    std::fs::write(dir.path().join("second.jsonl"), second).unwrap();
    let summary = run("second.jsonl");
    assert!(summary.contains("unlocks") && summary.contains("analysts' unlocks"), "{summary}");
    let decisions = std::fs::read_to_string(dir.path().join("out/decisions.jsonl")).unwrap();
    let locks: Vec<String> = decisions
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|d| d["event_type"] == "AccountLocked")
        .map(|d| d["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(locks, ["tx-a-4", "tx-b-4"], "locked again after the unlock");

    // Without --append, the event is printed, one JSON line.
    let o = weir(&unlock, dir.path());
    let printed: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (printed["event_type"].as_str(), printed["transaction_id"].as_str()),
        (Some("AccountUnlocked"), Some("tx-a-4"))
    );
    // A bad argument is refused, naming the field; nothing is written.
    let o = weir(
        &["case", "unlock", "--account", "", "--transaction", "tx-1", "--analyst", "a", "--append", "bad.jsonl"],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("account_id"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("bad.jsonl").exists());
}

#[test]
fn readme_walkthrough_runs_verbatim() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let marker = "run verbatim by the test cli::readme_walkthrough_runs_verbatim";
    let after = &readme[readme.find(marker).expect("the README marks its walkthrough")..];
    let block = after.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("a sh block");
    assert!(block.contains("weir rule new night-owl") && block.contains("weir run"), "{block}");

    let dir = tempdir();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_weir"), bin.join("weir")).unwrap();
    let work = dir.path().join("fraud-rules");
    std::fs::create_dir(&work).unwrap();
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut path = vec![bin.clone()];
    path.extend(cargo.parent().map(Path::to_path_buf));
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    // Builds share one target directory across runs, so the SDK's
    // dependencies compile once per machine rather than once per run.
    let target = repo_root().join("target/readme-walkthrough");
    let o = weir_testkit::without_package_env(&mut Command::new("bash"))
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(&work)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "the walkthrough failed:\n{out}\n{err}");

    // cargo test: the scaffold's four unit tests; weir rule test: its three cases.
    assert!(out.contains("4 passed"), "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    assert!(out.contains("Deployed night-owl 0.1.0 (shadow"), "{out}");
    // The backtest compared the shipped rules with them plus night-owl, enforced.
    assert!(out.contains("Changed decisions:") && out.contains("Against the labels"), "{out}");
    let report = std::fs::read_to_string(work.join("backtest.html")).unwrap();
    assert!(report.contains("night-owl") && report.contains("<svg"), "the HTML report names the new rule");
    // The run decided the demo's traffic with night-owl beside the shipped rules.
    let decisions = std::fs::read_to_string(work.join("night-owl-out/decisions.jsonl")).unwrap();
    let inputs = std::fs::read_to_string(work.join("weir-demo/transactions.jsonl")).unwrap();
    let dead = std::fs::read_to_string(work.join("night-owl-out/dead-letters.jsonl")).unwrap();
    assert_eq!(decisions.lines().count() + dead.lines().count(), inputs.lines().count());
    let first: serde_json::Value = serde_json::from_str(decisions.lines().next().unwrap()).unwrap();
    let rules: Vec<&str> = first["rules"].as_array().unwrap().iter().map(|r| r["rule_id"].as_str().unwrap()).collect();
    assert!(rules.contains(&"night-owl") && rules.contains(&"velocity"), "{rules:?}");
    assert!(out.contains("night-owl"), "the run summary lists the new rule:\n{out}");

    // The crate stands on its own: nothing in it points into weir's source tree.
    let crate_dir = work.join("night-owl");
    let root = repo_root().canonicalize().unwrap().display().to_string();
    for file in files(&crate_dir) {
        if file.starts_with(crate_dir.join("target")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!text.contains(&root), "{} refers to weir's source tree ({root})", file.display());
    }
    assert!(crate_dir.join("weir-sdk/wit/rule.wit").is_file());
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(files(&path)) } else { out.push(path) }
    }
    out
}
