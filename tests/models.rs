//! Models in rules: weir's ONNX reader scores exactly as onnxruntime does
//! (LightGBM, a scikit-learn random forest, XGBoost and an MLP, exported
//! by onnxmltools and skl2onnx in a Python environment built from PyPI),
//! natively and inside the sandbox; a package's model is part of its
//! version; a broken model is refused at deploy naming the problem.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use weir::cases::CaseTx;
use weir::engine::{Engine, package_hash};
use weir::manifest::RuleSpec;
use weir::state::AccountState;
use weir_sdk::model::Model;

use crate::util::{evaluator, guest, position, tempdir};

/// The largest difference from onnxruntime's probabilities allowed.
const TOLERANCE: f32 = 1e-5;
const MODELS: [&str; 4] = ["lightgbm", "random-forest", "xgboost", "mlp"];

/// The reference models and onnxruntime's scores, made once per test run
/// by `scripts/models/parity.py` in the project's Python environment.
fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = Command::new("bash").arg(root.join("scripts/models/venv.sh")).output().unwrap();
        assert!(venv.status.success(), "the Python environment: {}", String::from_utf8_lossy(&venv.stderr));
        let python = String::from_utf8(venv.stdout).unwrap().lines().last().unwrap().to_owned();
        let dir = root.join("target/model-parity");
        let made = Command::new(python)
            .arg(root.join("scripts/models/parity.py"))
            .arg(&dir)
            .args(["--rows", "10000", "--trees", "100", "--depth", "6"])
            .output()
            .unwrap();
        assert!(made.status.success(), "parity.py: {}", String::from_utf8_lossy(&made.stderr));
        dir
    })
}

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

struct Reference {
    bytes: Vec<u8>,
    rows: Vec<f32>,
    expected: Vec<f32>,
}

fn load(name: &str) -> Reference {
    let dir = reference();
    Reference {
        bytes: std::fs::read(dir.join(format!("{name}.onnx"))).unwrap(),
        rows: floats(&dir.join(format!("{name}.rows.f32"))),
        expected: floats(&dir.join(format!("{name}.expected.f32"))),
    }
}

#[test]
fn scores_equal_onnxruntime_for_four_kinds_of_model() {
    for name in MODELS {
        let r = load(name);
        let model = Model::load(&r.bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (features, outputs) = (model.features(), model.outputs());
        assert_eq!((features, outputs), (30, 2), "{name}");
        let rows = r.rows.len() / features;
        assert_eq!(rows, 10_000, "{name}");
        let (mut worst, mut mismatches) = (0f32, 0);
        for (row, expected) in r.rows.chunks_exact(features).zip(r.expected.chunks_exact(outputs)) {
            let got = model.run(row, |out| out.to_vec()).unwrap();
            for (g, e) in got.iter().zip(expected) {
                let d = (g - e).abs();
                worst = worst.max(d);
                mismatches += usize::from(d > TOLERANCE || d.is_nan());
            }
        }
        assert_eq!(
            mismatches, 0,
            "{name}: {mismatches} values differ from onnxruntime by more than {TOLERANCE} (worst {worst})"
        );
        eprintln!("{name}: {rows} rows, worst difference from onnxruntime {worst:e}");
    }
}

/// The `model-score` rule with the model `bytes`, as the package `id`.
fn scorer(engine: &Engine, id: &str, bytes: &[u8]) -> weir::engine::LoadedRule {
    let manifest = model_manifest(id);
    engine
        .load_with_model(RuleSpec::parse(&manifest).unwrap(), &guest("model-score"), &manifest, Some(Arc::from(bytes)))
        .unwrap()
}

/// The row as the `model-score` guest reads it: attributes `f0`, `f1`, …
/// (a missing value left out), `row`, and `explain` (every tenth).
fn transaction(id: usize, row: &[f32]) -> weir::events::TransactionRecorded {
    let mut attributes: std::collections::BTreeMap<String, String> =
        row.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, v)| (format!("f{i}"), v.to_string())).collect();
    attributes.insert("row".into(), "1".into());
    if id.is_multiple_of(10) {
        attributes.insert("explain".into(), "1".into());
    }
    CaseTx { attributes, after_secs: Some(id as i64), ..CaseTx::default() }.to_event(&format!("tx-{id}"))
}

fn model_manifest(id: &str) -> String {
    format!("[rule]\nid = \"{id}\"\nversion = \"1\"\ncomponent = \"model-score.wasm\"\n[model]\nfile = \"{id}.onnx\"\n")
}

#[test]
fn in_the_sandbox_a_rule_scores_its_packages_model_as_onnxruntime_does() {
    let engine = Engine::new().unwrap();
    let component = guest("model-score");
    for name in MODELS {
        let r = load(name);
        let manifest = model_manifest(name);
        let rule = scorer(&engine, name, &r.bytes);
        assert_eq!(&*rule.hash, package_hash(&component, &manifest, Some(&r.bytes)), "{name}");
        let mut ev = evaluator(vec![rule]);
        let mut worst = 0f32;
        // Every row, every tenth explained.
        for (i, (row, expected)) in r.rows.chunks_exact(30).zip(r.expected.chunks_exact(2)).enumerate() {
            let d = ev.decide(&transaction(i, row), &mut AccountState::default(), position(i as i64));
            let result = &d.rules[0];
            assert_eq!(result.error, None, "{name} row {i}");
            let p =
                result.evidence.iter().find(|e| e.name == "p").unwrap_or_else(|| panic!("{name} row {i}: {result:?}"));
            let p: f32 = p.value.parse().unwrap();
            worst = worst.max((p - expected[1]).abs());
            if i.is_multiple_of(10) {
                let score = result.evidence.iter().find(|e| e.name == "model.score").unwrap();
                assert_eq!(score.value, format!("{p:.4}"), "{name} row {i}");
            }
        }
        assert!(worst <= TOLERANCE, "{name}: worst difference {worst}");
        let (_, stats) = ev.stats().next().unwrap();
        eprintln!(
            "{name}: in the sandbox, worst difference from onnxruntime {worst:e}; {} fuel units an evaluation",
            stats.fuel / stats.invocations
        );
    }
}

#[test]
fn a_tree_models_decision_names_the_features_that_moved_it() {
    let r = load("lightgbm");
    let engine = Engine::new().unwrap();
    let rule = scorer(&engine, "lightgbm", &r.bytes);
    let model = Model::load(&r.bytes).unwrap();
    let mut ev = evaluator(vec![rule]);
    let row = &r.rows[..30];
    let d = ev.decide(&transaction(0, row), &mut AccountState::default(), position(0));
    let explained: Vec<(String, String)> = d.rules[0]
        .evidence
        .iter()
        .filter(|e| e.name.starts_with("model.f"))
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let expected: Vec<(String, String)> =
        model.top_contributions(row, 3).into_iter().map(|(i, c)| (format!("model.f{i}"), format!("{c:+.4}"))).collect();
    assert_eq!(explained.len(), 3, "{:?}", d.rules[0].evidence);
    assert_eq!(explained, expected);
    // The contributions and the bias add up to the raw score: the logit of
    // the probability.
    let c = model.contributions(row).unwrap();
    let p = model.score(row).unwrap();
    let raw = c.bias + c.per_feature.iter().sum::<f32>();
    assert!((raw - (p / (1.0 - p)).ln()).abs() < 1e-3, "raw {raw}, p {p}");
}

/// A package directory with the `model-score` rule and `model` as its
/// model file.
fn package(dir: &Path, model: &[u8]) -> PathBuf {
    std::fs::write(dir.join("model-score.wasm"), guest("model-score")).unwrap();
    std::fs::write(dir.join("scorer.onnx"), model).unwrap();
    let manifest = dir.join("scorer.toml");
    std::fs::write(
        &manifest,
        "[rule]\nid = \"scorer\"\nversion = \"1\"\ncomponent = \"model-score.wasm\"\n[model]\nfile = \"scorer.onnx\"\n",
    )
    .unwrap();
    manifest
}

#[test]
fn a_broken_or_hostile_model_is_refused_at_deploy_naming_the_problem() {
    let dir = tempdir();
    let validator = weir::packages::Validator::new(Engine::new().unwrap(), weir::packages::Trust::default());
    let good = load("random-forest").bytes;
    let manifest = package(dir.path(), &good);
    let loaded = validator.load(&manifest).unwrap();
    // The model is part of the version: the same rule with another model
    // is another version.
    let other = package(dir.path(), &load("xgboost").bytes);
    assert_ne!(validator.load(&other).unwrap().hash, loaded.hash);

    let refusal = |model: &[u8]| {
        let manifest = package(dir.path(), model);
        validator.load(&manifest).err().map(|r| r.to_string()).unwrap_or_else(|| "accepted".into())
    };
    let e = refusal(b"this is not a model");
    assert!(e.contains("scorer.onnx") && e.contains("invalid model: not an ONNX model"), "{e}");
    // Truncated.
    let e = refusal(&good[..good.len() / 2]);
    assert!(e.contains("invalid model"), "{e}");
    // A model whose reading needs more memory than the rule may have: a
    // tree ensemble claiming a billion nodes in a small file is refused by
    // its bounds; a file larger than the rule's memory stops the rule.
    let big = vec![0u8; 40 << 20];
    let e = refusal(&big);
    assert!(e.contains("scorer.onnx") && (e.contains("memory") || e.contains("invalid model")), "{e}");
    // Missing.
    std::fs::remove_file(dir.path().join("scorer.onnx")).unwrap();
    let e = validator.load(&manifest).err().unwrap().to_string();
    assert!(e.contains("scorer.onnx") && e.contains("no such file"), "{e}");
}

/// The cargo that runs the tests.
fn cargo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `program` with `args` in `cwd` as a rule author would, with this
/// cargo on the PATH and this weir as `$WEIR`; its output, stdout then
/// stderr. The SDK's dependencies compile once per machine, in the target
/// directory of the README's walkthrough.
fn run<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(program: &Path, args: &[S], cwd: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut path = vec![];
    path.extend(cargo().parent().map(Path::to_path_buf));
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let o = weir_testkit::without_package_env(&mut Command::new(program))
        .args(args)
        .current_dir(cwd)
        .env("PATH", std::env::join_paths(&path).unwrap())
        .env("WEIR", env!("CARGO_BIN_EXE_weir"))
        .env("CARGO_TARGET_DIR", root.join("target/readme-walkthrough"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{} {args:?}:\n{text}", program.display());
    text
}

/// `weir rule new NAME --model`: a crate whose rule scores its starter
/// model passes its own tests natively, builds into a package that carries
/// the model, passes its cases in the sandbox, and is accepted at deploy.
#[test]
fn a_new_model_rule_builds_tests_and_deploys_as_is() {
    let dir = tempdir();
    let cargo = cargo();
    let weir = PathBuf::from(env!("CARGO_BIN_EXE_weir"));
    let out = run(&weir, &["rule", "new", "fraud-score", "--model"], dir.path());
    assert!(out.contains("scores them with fraud-score.onnx"), "{out}");
    let crate_dir = dir.path().join("fraud-score");
    assert_eq!(std::fs::read(crate_dir.join("fraud-score.onnx")).unwrap(), weir::scaffold::STARTER_MODEL);
    let out = run(&cargo, &["test"], &crate_dir);
    assert!(out.contains("2 passed; 0 failed"), "{out}");
    run(&weir, &["rule", "build"], &crate_dir);
    let package = crate_dir.join("target/weir");
    assert!(package.join("fraud-score.onnx").is_file(), "the package carries the model");
    let out = run(&weir, &["rule", "test", "target/weir/fraud-score.wasm", "cases.toml"], &crate_dir);
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    let validator = weir::packages::Validator::new(Engine::new().unwrap(), weir::packages::Trust::default());
    let rule = validator.load(&package.join("fraud-score.toml")).unwrap();
    let model = std::fs::read(package.join("fraud-score.onnx")).unwrap();
    let manifest = std::fs::read_to_string(package.join("fraud-score.toml")).unwrap();
    let component = std::fs::read(package.join("fraud-score.wasm")).unwrap();
    assert_eq!(&*rule.hash, package_hash(&component, &manifest, Some(&model)));
}

/// Two rules in one rules directory cannot share a model file: deploying
/// the second would replace the first one's model under it.
#[test]
fn a_deploy_that_would_overwrite_another_rules_model_is_refused() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    for d in [&rules, &first, &second] {
        std::fs::create_dir(d).unwrap();
    }
    let validator = weir::packages::Validator::new(Engine::new().unwrap(), weir::packages::Trust::default());
    let forest = load("random-forest").bytes;
    weir::packages::deploy(&package(&first, &forest), &rules, None, &validator).unwrap();
    // Another rule, with its own component but the same model file name.
    std::fs::write(second.join("other.wasm"), guest("model-score")).unwrap();
    std::fs::write(second.join("scorer.onnx"), load("xgboost").bytes).unwrap();
    let manifest = second.join("other-scorer.toml");
    std::fs::write(
        &manifest,
        "[rule]\nid = \"other-scorer\"\nversion = \"1\"\ncomponent = \"other.wasm\"\n[model]\nfile = \"scorer.onnx\"\n",
    )
    .unwrap();
    let e = weir::packages::deploy(&manifest, &rules, None, &validator).unwrap_err().to_string();
    assert!(e.contains("`scorer.onnx`, the file of another rule (`scorer`)") && e.contains("model"), "{e}");
    assert_eq!(std::fs::read(rules.join("scorer.onnx")).unwrap(), forest, "the first rule's model is untouched");
    assert!(!rules.join("other-scorer.toml").exists());
}

/// Reading the model once per instance is free; a rule that traps to have
/// its instance, and so its model, made again pays for every read again
/// and is quarantined for its cost, though only a third of its
/// evaluations fail (under the failure share that quarantines).
#[test]
fn a_rule_that_traps_to_reload_its_model_pays_for_it() {
    let r = load("lightgbm");
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![scorer(&engine, "lightgbm", &r.bytes)]);
    let row = &r.rows[..30];
    let mut quarantined_at = None;
    for i in 0..300 {
        let mut tx = transaction(i + 1, row);
        if i % 3 == 2 {
            tx.attributes.insert("trap".into(), "1".into());
        }
        let d = ev.decide(&tx, &mut AccountState::default(), position(i as i64));
        if d.rules[0].error.as_deref().is_some_and(|e| e.contains("quarantined")) {
            quarantined_at = Some(i);
            let why = d.rules[0].error.clone().unwrap();
            assert!(why.contains("fuel units"), "quarantined for its cost: {why}");
            break;
        }
    }
    assert!(quarantined_at.is_some(), "a rule reloading its model every third evaluation is quarantined");

    // The same rule without traps runs on: its one read is not counted.
    let mut ev = evaluator(vec![scorer(&engine, "lightgbm", &r.bytes)]);
    for i in 0..300 {
        let d = ev.decide(&transaction(i + 1, row), &mut AccountState::default(), position(i as i64));
        assert_eq!(d.rules[0].error, None, "evaluation {i}");
    }
}

/// `weir features` writes, for each transaction a model rule scored, the
/// row the rule handed its model in the sandbox, the model's score and the
/// label; before there is a model, the rows alone. The backtest measures
/// the same scores without a threshold: labels that put every fraud above
/// every legitimate score make both areas 1.
#[test]
fn weir_features_writes_the_rows_a_rule_scores_and_the_backtest_measures_them() {
    let dir = tempdir();
    let r = load("random-forest");
    let native = Model::load(&r.bytes).unwrap();
    let rows: Vec<&[f32]> = r.rows.chunks_exact(30).filter(|row| row.iter().all(|v| !v.is_nan())).take(600).collect();
    let scores: Vec<f32> = rows.iter().map(|row| native.score(row).unwrap()).collect();
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[sorted.len() * 9 / 10];
    assert!(cut > sorted[0], "the scores differ");
    let history: String =
        rows.iter().enumerate().map(|(i, row)| serde_json::to_string(&transaction(i, row)).unwrap() + "\n").collect();
    let labels: String = std::iter::once("transaction_id,label\n".to_owned())
        .chain(
            scores.iter().enumerate().map(|(i, &s)| format!("tx-{i},{}\n", if s >= cut { "fraud" } else { "legit" })),
        )
        .collect();
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    std::fs::write(dir.path().join("labels.csv"), labels).unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let manifest = package(&pkg, &r.bytes);
    let names: Vec<String> = (0..30).map(|i| format!("\"x{i}\"")).collect();
    let text = std::fs::read_to_string(&manifest).unwrap() + &format!("features = [{}]\n", names.join(", "));
    std::fs::write(&manifest, text).unwrap();

    let features = |out: &str| {
        let o = crate::util::weir(
            &["features", "pkg/scorer.toml", "--input", "history.jsonl", "--labels", "labels.csv", "--out", out],
            dir.path(),
        );
        assert!(o.status.success(), "{}", crate::util::text(&o));
        (std::fs::read_to_string(dir.path().join(out)).unwrap(), crate::util::text(&o))
    };
    let (table, said) = features("table.csv");
    assert!(said.contains("600 rows of 30 features from 600 transactions, 600 labelled (60 fraud)"), "{said}");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["transaction_id", "account_id", "occurred_at"]);
    assert_eq!(header[3], "x0");
    assert_eq!(header[32..], ["x29", "score", "label"]);
    let mut n = 0;
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], format!("tx-{i}"));
        let row: Vec<f32> = cells[3..33].iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(row, rows[i], "row {i}: the features as served");
        let score: f32 = cells[33].parse().unwrap();
        assert!((score - scores[i]).abs() <= TOLERANCE, "row {i}: {score} against {}", scores[i]);
        assert_eq!(cells[34], if scores[i] >= cut { "1" } else { "0" }, "row {i}");
        n += 1;
    }
    assert_eq!(n, 600);

    // The backtest measures the rule's scores: the labels rank every fraud
    // first.
    let o = crate::util::weir(
        &[
            "backtest",
            "--baseline",
            "pkg",
            "--candidate",
            "pkg",
            "--input",
            "history.jsonl",
            "--labels",
            "labels.csv",
            "--json",
            "report.json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", crate::util::text(&o));
    assert!(crate::util::stdout(&o).contains("PR-AUC"), "{}", crate::util::stdout(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let model = &report["labels"]["candidate"]["models"]["scorer"];
    assert_eq!((model["scored"].as_u64(), model["fraud"].as_u64()), (Some(600), Some(60)), "{model}");
    assert_eq!((model["pr_auc"].as_f64(), model["roc_auc"].as_f64()), (Some(1.0), Some(1.0)), "{model}");
    let top = &model["at_budget"][2];
    assert_eq!(
        (top["budget"].as_f64(), top["alerts"].as_u64(), top["precision"].as_f64()),
        (Some(0.01), Some(6), Some(1.0))
    );

    // Before there is a model: the same rows, no score.
    std::fs::remove_file(pkg.join("scorer.onnx")).unwrap();
    let (table, said) = features("rows.csv");
    assert!(said.contains("has no model file yet"), "{said}");
    let first = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = first.split(',').collect();
    assert_eq!(cells[3..33].iter().map(|c| c.parse::<f32>().unwrap()).collect::<Vec<_>>(), rows[0]);
    assert_eq!(cells[33], "", "no score without a model");
    assert_eq!(table.lines().count(), 601);
}

/// `examples/fraud-model`, end to end, as a data scientist runs it: the
/// demo's history, the rule's features written by `weir features`,
/// LightGBM trained in Python on the earlier 70 % and exported to ONNX,
/// the package backtested against the shipped rules on the held-out 30 %,
/// shadowed on the stream, then enforced. weir's PR-AUC of the model's
/// scores is scikit-learn's on the same rows, and the model ranks the
/// held-out fraud better than the shipped rules' decisions do.
#[test]
fn the_fraud_model_example_runs_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempdir();
    let cargo = cargo();
    // The rule's own tests of its features, natively.
    let said = run(&cargo, &["test"], &root.join("examples/fraud-model/rule"));
    assert!(said.contains("1 passed; 0 failed"), "{said}");
    let said = run(Path::new("bash"), &[&root.join("examples/fraud-model/run.sh"), out.path()], &root);
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.path().join(name)).unwrap()).unwrap()
    };

    // The training table: the manifest's feature names, every transaction
    // labelled.
    let table = std::fs::read_to_string(out.path().join("features.csv")).unwrap();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("transaction_id,account_id,occurred_at,amount,hour,"), "{header}");
    assert!(header.ends_with(",new_merchant,foreign,score,label"), "{header}");

    let backtest = json("backtest.json");
    let labels = &backtest["labels"];
    let model = &labels["candidate"]["models"]["fraud-model"];
    let rules = &labels["baseline"]["ranking"];
    let pr_auc = model["pr_auc"].as_f64().unwrap_or_else(|| panic!("{model}"));
    let held_out = said.split("held out: PR-AUC ").nth(1).unwrap().split(',').next().unwrap();
    let sklearn: f64 = held_out.parse().unwrap();
    assert!((pr_auc - sklearn).abs() < 0.005, "weir {pr_auc} against scikit-learn {sklearn}:\n{said}");
    assert_eq!(model["scored"], labels["labelled"], "every held-out transaction scored");
    let rules_pr_auc = rules["pr_auc"].as_f64().unwrap();
    assert!(pr_auc > rules_pr_auc, "the model {pr_auc} against the shipped rules {rules_pr_auc}");

    // Shadowed on the stream: its verdicts are published, not counted.
    let shadow = json("shadow-report.json");
    let in_shadow = shadow["baseline"]["rules"].as_array().unwrap().iter().find(|r| r["rule_id"] == "fraud-model");
    let in_shadow = in_shadow.unwrap_or_else(|| panic!("{shadow}"));
    assert_eq!(in_shadow["mode"], "shadow");
    assert!(in_shadow["outcomes"]["suspect"].as_u64().unwrap_or(0) > 0, "{in_shadow}");
    // Enforced: it catches more of the held-out fraud.
    let enforce = json("enforce.json");
    let recall = |side: &str| enforce["labels"][side]["decision"]["recall"].as_f64().unwrap();
    assert!(recall("candidate") > recall("baseline"), "{}", enforce["labels"]);
}

/// A recording host keeps a scored row of up to 10 000 features; a wider
/// one stops the rule. A host that does not record keeps nothing, and the
/// same rule's error is then its model's.
#[test]
fn a_scored_row_wider_than_the_host_keeps_stops_the_rule_only_while_recording() {
    let engine = Engine::new().unwrap();
    let wide = |width: usize| {
        let attributes = [("row", "1".to_owned()), ("width", width.to_string())];
        let attributes = attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        CaseTx { attributes, ..CaseTx::default() }.to_event(&format!("tx-{width}"))
    };
    let bound = weir_sdk::limits::MAX_SCORED_FEATURES;
    let mut live = evaluator(vec![scorer(&engine, "wide", weir::scaffold::STARTER_MODEL)]);
    let d = live.decide(&wide(bound + 1), &mut AccountState::default(), position(0));
    let e = d.rules[0].error.clone().unwrap();
    assert!(e.contains("the model takes 4 features") && !e.contains("are kept"), "{e}");
    assert_eq!(live.scored().count(), 0, "not recording: nothing kept");

    let mut recording = evaluator(vec![scorer(&engine, "wide", weir::scaffold::STARTER_MODEL)]);
    recording.record_scores();
    let d = recording.decide(&wide(bound), &mut AccountState::default(), position(0));
    let (_, row, score) = recording.scored().next().unwrap_or_else(|| panic!("{:?}", d.rules[0]));
    assert_eq!((row.len(), score), (bound, None), "kept, unscored: the model takes 4");
    let d = recording.decide(&wide(bound + 1), &mut AccountState::default(), position(1));
    let e = d.rules[0].error.clone().unwrap();
    assert!(e.contains(&format!("a row of {} features; at most {bound} are kept", bound + 1)), "{e}");
    assert_eq!(recording.scored().count(), 0);
}
