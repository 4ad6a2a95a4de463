//! `weir rule new` and `weir rule build`: a rule author's first steps.
//!
//! `new` writes a standalone rule crate (its own workspace) with a working
//! rule, a native unit test, a manifest and sandbox cases — it builds and
//! passes `cargo test` and `weir rule test` as is. The crate gets its own
//! copy of the SDK (`weir-sdk/`, the sources this weir was built with,
//! embedded in the binary), so it builds wherever it is moved and whether
//! or not weir's source tree is still around.
//! With `model`, the crate's rule scores an ONNX model instead: it
//! computes four features, scores the starter model it comes with
//! (`<name>.onnx`, a small LightGBM classifier trained on synthetic
//! transactions by `scripts/models/starter.py`: to be replaced by a model
//! trained on the bank's own features) and explains what it flags.
//! `build` compiles a rule crate for `wasm32-wasip2` (adding the target to
//! the toolchain if it is missing) and lays out a deployable package
//! (`<id>.toml` + `<id>.wasm` + `<id>.cases.toml`, and the model file when
//! the manifest names one) in `target/weir/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::manifest::{ManifestError, RuleSpec};
use crate::toolchain::{self, WASM_TARGET, WasmTarget};

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The directory, inside a new rule crate, that holds its copy of the SDK.
pub const SDK_DIR: &str = "weir-sdk";

/// Why a rule crate could not be made or built, naming the file or
/// directory to look at. An I/O or TOML failure is the variant's
/// `source()`: print the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("rule name {0:?}: use lowercase letters, digits and dashes, starting with a letter (e.g. `night-owl`)")]
    BadName(String),
    #[error("{} already exists; choose another name or remove it", .0.display())]
    Exists(PathBuf),
    #[error("the weir SDK is not at {}", path.display())]
    NoSdk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be created, written or copied:
    /// `action` says which (e.g. "create").
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read rule manifest {}", path.display())]
    ReadManifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rule manifest {}: {problem}", path.display())]
    Manifest { path: PathBuf, problem: ManifestError },
    /// The `wasm32-wasip2` target is missing and could not be added.
    #[error(transparent)]
    Toolchain(#[from] toolchain::WasmTargetError),
    #[error("cannot run {cargo}")]
    Cargo {
        cargo: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo build for {WASM_TARGET} failed in {}", .0.display())]
    BuildFailed(PathBuf),
    #[error("{} is not a rule crate (no Cargo.toml)", dir.display())]
    NotACrate {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}/Cargo.toml", dir.display())]
    CargoToml {
        dir: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}/Cargo.toml has no package.name", .0.display())]
    NoPackageName(PathBuf),
}

/// An I/O error with what was being done to which path.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError {
    let path = path.to_owned();
    move |source| ScaffoldError::Io { action, path, source }
}

/// Checks a rule name: lowercase letters, digits and dashes.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Writes a new rule crate `parent/name`. Returns its path.
///
/// With `sdk`, the crate depends on the SDK at that path (for work on the
/// SDK itself); without, it gets its own copy in `weir-sdk/`.
pub fn new_rule(parent: &Path, name: &str, sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    new_rule_of(parent, name, sdk, Kind::Rule)
}

/// What `weir rule new` writes: a plain rule, or one that scores a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rule,
    Model,
}

/// The starter model a model rule crate comes with (see the module docs).
pub const STARTER_MODEL: &[u8] = include_bytes!("../assets/starter-model.onnx");

/// [`new_rule`], of either kind.
pub fn new_rule_of(parent: &Path, name: &str, sdk: Option<&Path>, kind: Kind) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let sdk_dependency = match sdk {
        Some(sdk) => sdk
            .canonicalize()
            .map_err(|source| ScaffoldError::NoSdk { path: sdk.to_owned(), source })?
            .display()
            .to_string(),
        None => SDK_DIR.to_owned(),
    };
    std::fs::create_dir_all(dir.join("src")).map_err(io("create", &dir))?;
    let (lib, manifest, cases) = match kind {
        Kind::Rule => (LIB_RS, RULE_TOML, CASES_TOML),
        Kind::Model => (MODEL_LIB_RS, MODEL_RULE_TOML, MODEL_CASES_TOML),
    };
    let mut files = vec![
        ("Cargo.toml".to_owned(), cargo_toml(name, &sdk_dependency, kind)),
        ("src/lib.rs".to_owned(), lib.replace("{name}", name)),
        ("rule.toml".to_owned(), manifest.replace("{name}", name)),
        ("cases.toml".to_owned(), cases.to_owned()),
        (".gitignore".to_owned(), "/target\n".to_owned()),
    ];
    if kind == Kind::Model {
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, STARTER_MODEL).map_err(io("write", &path))?;
    }
    if sdk.is_none() {
        files.extend(SDK_FILES.iter().map(|(path, text)| (format!("{SDK_DIR}/{path}"), (*text).to_owned())));
    }
    for (file, text) in files {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    Ok(dir)
}

fn cargo_toml(name: &str, sdk: &str, kind: Kind) -> String {
    let features = if kind == Kind::Model { ", features = [\"model\"]" } else { "" };
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
# The weir SDK, copied into the crate by `weir rule new` (`weir-sdk/`).
weir-sdk = {{ path = {sdk:?}{features} }}

# A standalone workspace: the rule builds on its own, wherever it is.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

const LIB_RS: &str = r#"//! `{name}`: suspects purchases above a limit at night (event time, UTC).
//!
//! A purchase strictly above `limit` (minor units of its own currency)
//! whose event time falls from `night_starts_hour` up to `night_ends_hour`
//! (UTC) is suspected, with reason `NIGHT_SPEND` and evidence `amount`,
//! `limit` and `hour`; everything else passes. The parameters, with their
//! types, defaults and ranges, are declared in `PARAMS`.

use weir_sdk::prelude::*;

/// The parameters this rule reads. `weir rule build`, `weir rule test` and
/// every deploy check `rule.toml`'s `[params]` against them (a misspelled
/// name or a wrong type is refused); what `rule.toml` leaves out takes the
/// default given here. `weir rules` lists them with their values.
const PARAMS: &[Param] = &[
    Param::integer("limit", 50_000).min(0).doc("Suspect night purchases above this amount, in minor units."),
    Param::integer("night_starts_hour", 0).range(0, 23).doc("The night starts at this hour (UTC)."),
    Param::integer("night_ends_hour", 6).range(1, 24).doc("The night ends before this hour (UTC)."),
];

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let limit: i64 = ctx.param("limit")?;
    let starts: i64 = ctx.param("night_starts_hour")?;
    let ends: i64 = ctx.param("night_ends_hour")?;
    let hour = tx.occurred_at_ms.rem_euclid(86_400_000) / 3_600_000;
    if (starts..ends).contains(&hour) && tx.amount.minor_units > limit {
        return Ok(Verdict::suspect("NIGHT_SPEND", "a large purchase in the middle of the night")
            .with("amount", tx.amount.minor_units)
            .with("limit", limit)
            .with("hour", hour));
    }
    Ok(Verdict::pass())
}

weir_sdk::rule!(evaluate, params = PARAMS);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::testing::{Harness, tx};

    #[test]
    fn large_purchase_at_night_is_suspected() {
        // 19:42 UTC plus 5 hours is 00:42 UTC.
        let night = tx().amount(60_000, "EUR").after_secs(5 * 3600).build();
        let verdict = Harness::new(RULE).run(&night).unwrap();
        assert_eq!(verdict.reason_code, "NIGHT_SPEND");
        assert_eq!(verdict.evidence("hour"), Some("0"));
    }

    #[test]
    fn the_shipped_manifest_applies() {
        let night = tx().amount(60_000, "EUR").after_secs(5 * 3600).build();
        let mut h = Harness::new(RULE).manifest(include_str!("../rule.toml"));
        assert_eq!(h.run(&night).unwrap().evidence("limit"), Some("50000"));
    }

    #[test]
    fn a_misspelled_parameter_is_refused() {
        let err = Harness::new(RULE).param("limt", 10_000).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("did you mean `limit`"), "{}", err.message());
    }

    #[test]
    fn daytime_and_small_purchases_pass() {
        let evening = tx().amount(60_000, "EUR").build();
        assert!(Harness::new(RULE).run(&evening).unwrap().is_pass());
        let small = tx().amount(1_000, "EUR").after_secs(5 * 3600).build();
        assert!(Harness::new(RULE).run(&small).unwrap().is_pass());
    }
}
"#;

const RULE_TOML: &str = r#"[rule]
id = "{name}"
version = "0.1.0"
description = "Suspects large purchases at night."
mode = "shadow"            # try it on live traffic first; "enforce" when ready
failure = "fail-open"

[limits]
fuel = 1000000
memory_mib = 16

[params]
limit = 50000
night_starts_hour = 0
night_ends_hour = 6
"#;

const CASES_TOML: &str = r#"# Sandbox cases: `weir rule test target/weir/<name>.wasm cases.toml`.
# Transactions default to a EUR 189.00 concert-ticket purchase at
# 2026-11-28T19:42:07Z; `after_secs` moves event time forward.

[[case]]
name = "large purchase at night is suspected"
transaction = { amount = 60000, after_secs = 18000 }
[case.expect]
outcome = "suspect"
reason_code = "NIGHT_SPEND"
evidence = { hour = "0", limit = "50000" }

[[case]]
name = "large purchase in the evening passes"
transaction = { amount = 60000 }
[case.expect]
outcome = "pass"

[[case]]
name = "a lower limit catches smaller purchases"
params = { limit = 10000 }
transaction = { amount = 18900, after_secs = 18000 }
[case.expect]
outcome = "suspect"
"#;

const MODEL_LIB_RS: &str = r#"//! `{name}`: scores each purchase with the package's model and suspects
//! those it scores at or above `threshold`.
//!
//! The model (`{name}.onnx`, named in rule.toml's `[model]`) takes four
//! features, computed here the same way in training and in serving:
//! the amount in major units, the hour of day (UTC, event time), the
//! account's transactions in the hour before, and whether the merchant is
//! new to the account (1 or 0). The starter model was trained on synthetic
//! transactions; train yours on the features this rule computes, export it
//! to ONNX (float input of shape [N, 4]) and replace the file: the rule's
//! code is not recompiled, and the new model is a new version of the rule.

use std::time::Duration;

use weir_sdk::prelude::*;

const PARAMS: &[Param] = &[Param::float("threshold", 0.8)
    .range_float(0.0, 1.0)
    .doc("Suspect purchases the model scores at or above this probability of fraud.")];

/// The features' names, in the model's column order (they name the
/// evidence of a flagged purchase; rule.toml's `[model] features` gives
/// the same names to the columns of `weir features`' training table).
pub const FEATURES: [&str; 4] = ["amount", "hour", "count_1h", "new_merchant"];

/// The row the model scores, from the transaction and the account's state.
pub fn features(tx: &Transaction, ctx: &mut Context) -> [f32; 4] {
    let amount = tx.amount.minor_units as f32 / 100.0;
    let hour = (tx.occurred_at_ms.rem_euclid(86_400_000) / 3_600_000) as f32;
    let before = ctx.window_count("tx", Duration::from_secs(3600)) as f32;
    ctx.window_add("tx", 1);
    let new_merchant = if ctx.last_seen("merchants", &tx.merchant.id).is_none() { 1.0 } else { 0.0 };
    ctx.distinct_add("merchants", &tx.merchant.id);
    [amount, hour, before, new_merchant]
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let threshold: f64 = ctx.param("threshold")?;
    let row = features(tx, ctx);
    // `ctx.score` also hands the row to `weir features`, which writes the
    // training table from exactly what the rule serves.
    let p = ctx.score(&row)?;
    if f64::from(p) < threshold {
        return Ok(Verdict::pass());
    }
    Ok(Verdict::suspect("MODEL_SCORE", "the model scores this purchase as likely fraud")
        .with_model(ctx.model()?, &row, &FEATURES, p))
}

weir_sdk::rule!(evaluate, params = PARAMS);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::testing::{Harness, tx};

    fn harness() -> Harness {
        Harness::new(RULE).manifest(include_str!("../rule.toml")).model(concat!(env!("CARGO_MANIFEST_DIR"), "/{name}.onnx"))
    }

    #[test]
    fn a_large_purchase_at_night_at_a_new_merchant_is_suspected_and_explained() {
        let mut h = harness();
        // 19:42 UTC plus 5 hours is 00:42 UTC.
        let night = tx().amount(60_000, "EUR").after_secs(5 * 3600).build();
        let verdict = h.run(&night).unwrap();
        assert_eq!(verdict.reason_code, "MODEL_SCORE");
        let score: f32 = verdict.evidence("model.score").unwrap().parse().unwrap();
        assert!(score >= 0.8, "{score}");
        assert!(verdict.evidence.iter().any(|e| e.name == "model.amount"), "{:?}", verdict.evidence);
    }

    #[test]
    fn an_ordinary_evening_purchase_passes() {
        let mut h = harness();
        assert!(h.run(&tx().amount(3_000, "EUR").build()).unwrap().is_pass());
    }
}
"#;

const MODEL_RULE_TOML: &str = r#"[rule]
id = "{name}"
version = "0.1.0"
description = "Suspects purchases its model scores as likely fraud."
mode = "shadow"            # try it on live traffic first; "enforce" when ready
failure = "fail-open"

[limits]
fuel = 1000000
memory_mib = 16

[params]
threshold = 0.8

[model]
file = "{name}.onnx"       # ONNX, next to this file; part of the rule's version
features = ["amount", "hour", "count_1h", "new_merchant"]  # its input columns, for `weir features`
"#;

const MODEL_CASES_TOML: &str = r#"# Sandbox cases: `weir rule test target/weir/<name>.wasm cases.toml`.
# Transactions default to a EUR 189.00 concert-ticket purchase at
# 2026-11-28T19:42:07Z; `after_secs` moves event time forward.

[[case]]
name = "a large purchase at night at a new merchant is suspected"
transaction = { amount = 60000, after_secs = 18000 }
[case.expect]
outcome = "suspect"
reason_code = "MODEL_SCORE"

[[case]]
name = "an ordinary evening purchase passes"
transaction = { amount = 3000 }
[case.expect]
outcome = "pass"
"#;

/// Builds the rule crate in `dir` for wasm and writes the package
/// (manifest, component, self-test cases) to `dir/target/weir/`. Returns the manifest path of the package.
pub fn build_rule(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest_path = dir.join("rule.toml");
    let spec = load_manifest(&manifest_path)?;
    // The toolchain that builds the crate is the one `rustc` resolves to there.
    let (rustc, rustup) = toolchain::tools();
    match toolchain::ensure_wasm_target(&rustc, &rustup, dir)? {
        WasmTarget::Present => {}
        WasmTarget::Added { toolchain } => {
            eprintln!("Added the {WASM_TARGET} target to the {toolchain} toolchain (rules are built for it).");
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", WASM_TARGET])
        .status()
        .map_err(|source| ScaffoldError::Cargo { cargo: cargo.clone(), source })?;
    if !status.success() {
        return Err(ScaffoldError::BuildFailed(dir.to_owned()));
    }
    let crate_name = package_name(dir)?;
    let target_dir = target_dir(dir);
    let wasm = target_dir.join(WASM_TARGET).join("release").join(format!("{}.wasm", crate_name.replace('-', "_")));
    let out = dir.join("target/weir");
    std::fs::create_dir_all(&out).map_err(io("create", &out))?;
    let component = out.join(&spec.component);
    std::fs::copy(&wasm, &component).map_err(io("copy", &wasm))?;
    // The sandbox cases travel with the package: a running weir runs them
    // as self-tests before the package goes live.
    let cases = dir.join("cases.toml");
    if cases.is_file() {
        let target = out.join(format!("{}.cases.toml", spec.id));
        std::fs::copy(&cases, &target).map_err(io("copy", &cases))?;
    }
    if let Some(model) = &spec.model {
        let source = dir.join(model);
        if source.is_file() {
            std::fs::copy(&source, out.join(model)).map_err(io("copy", &source))?;
        } else {
            // Before there is a model: `weir features` writes the training
            // table from such a package; deploy refuses it.
            let _ = std::fs::remove_file(out.join(model));
            eprintln!(
                "rule.toml names the model {model}, which is not in {} yet: the package has none                  (`weir features` runs it to write a training table; deploy refuses it)",
                dir.display()
            );
        }
    }
    let package = out.join(format!("{}.toml", spec.id));
    std::fs::copy(&manifest_path, &package).map_err(io("copy", &manifest_path))?;
    Ok(package)
}

/// The rule crate's manifest (`rule.toml`), parsed strictly.
fn load_manifest(path: &Path) -> Result<RuleSpec, ScaffoldError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ScaffoldError::ReadManifest { path: path.to_owned(), source })?;
    RuleSpec::parse(&text).map_err(|problem| ScaffoldError::Manifest { path: path.to_owned(), problem })
}

fn package_name(dir: &Path) -> Result<String, ScaffoldError> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|source| ScaffoldError::NotACrate { dir: dir.to_owned(), source })?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|source| ScaffoldError::CargoToml { dir: dir.to_owned(), source })?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned)
        .ok_or_else(|| ScaffoldError::NoPackageName(dir.to_owned()))
}

/// The crate's target directory, as cargo would choose it.
fn target_dir(dir: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => dir.join(t),
        None => dir.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_is_the_one_this_weir_was_built_with() {
        let paths: Vec<&str> = SDK_FILES.iter().map(|(p, _)| *p).collect();
        for needed in ["Cargo.toml", "src/lib.rs", "src/context.rs", "wit/rule.wit"] {
            assert!(paths.contains(&needed), "{needed} is embedded: {paths:?}");
        }
        let (_, manifest) = SDK_FILES.iter().find(|(p, _)| *p == "Cargo.toml").unwrap();
        assert!(
            manifest.contains(&format!("\nversion = \"{}\"\n", env!("CARGO_PKG_VERSION"))),
            "sdk/Cargo.toml has the workspace's version:\n{manifest}"
        );
        assert!(!manifest.contains(".workspace = true"), "a rule crate has no weir workspace to inherit from");
        let (_, wit) = SDK_FILES.iter().find(|(p, _)| *p == "wit/rule.wit").unwrap();
        assert!(wit.contains(&format!("package weir:rule@{};", weir_sdk::CONTRACT_VERSION)));
    }
}
