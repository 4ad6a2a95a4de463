//! `weir rule new` and `weir rule build`: a rule author's first steps.
//!
//! `new` writes a standalone rule crate (its own workspace) that depends on
//! the SDK, with a working rule, a native unit test, a manifest and sandbox
//! cases — it builds and passes `cargo test` and `weir rule test` as is.
//! `build` compiles a rule crate for `wasm32-wasip2` and lays out a
//! deployable package (`<id>.toml` + `<id>.wasm`) in `target/weir/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Where the SDK was when this weir was built; rule crates made by
/// `weir rule new` depend on it by path unless told otherwise.
pub const SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// Checks a rule name: lowercase letters, digits and dashes.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "rule name {name:?}: use lowercase letters, digits and dashes, starting with a letter (e.g. `night-owl`)"
        );
    }
    Ok(())
}

/// Writes a new rule crate `dir/name`. Returns its path.
pub fn new_rule(parent: &Path, name: &str, sdk: &Path) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists; choose another name or remove it", dir.display());
    }
    let sdk = sdk.canonicalize().with_context(|| format!("the weir SDK is not at {}", sdk.display()))?;
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("src/lib.rs", LIB_RS.replace("{name}", name)),
        ("rule.toml", RULE_TOML.replace("{name}", name)),
        ("cases.toml", CASES_TOML.to_owned()),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).with_context(|| format!("cannot write {}", dir.join(file).display()))?;
    }
    Ok(dir)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-sdk = {{ path = {sdk:?} }}

# A standalone workspace: the rule builds on its own.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#,
        sdk = sdk.display().to_string()
    )
}

const LIB_RS: &str = r#"//! `{name}`: suspects purchases above a limit at night (event time, UTC).
//!
//! Parameters: `limit` (minor units, default 50 000), `night_starts_hour` and
//! `night_ends_hour` (default 0 and 6). Returns `suspect` with reason
//! `NIGHT_SPEND` and evidence `amount`, `limit` and `hour`.

use weir_sdk::prelude::*;

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let limit: i64 = ctx.param_or("limit", 50_000)?;
    let starts: i64 = ctx.param_or("night_starts_hour", 0)?;
    let ends: i64 = ctx.param_or("night_ends_hour", 6)?;
    let hour = tx.occurred_at_ms.rem_euclid(86_400_000) / 3_600_000;
    if (starts..ends).contains(&hour) && tx.amount.minor_units > limit {
        return Ok(Verdict::suspect("NIGHT_SPEND", "a large purchase in the middle of the night")
            .with("amount", tx.amount.minor_units)
            .with("limit", limit)
            .with("hour", hour));
    }
    Ok(Verdict::pass())
}

weir_sdk::rule!(evaluate);

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

/// Builds the rule crate in `dir` for wasm and writes the package
/// (manifest, component, self-test cases) to `dir/target/weir/`. Returns the manifest path of the package.
pub fn build_rule(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("rule.toml");
    let spec = crate::manifest::RuleSpec::load(&manifest_path)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo build for wasm32-wasip2 failed in {}", dir.display());
    }
    let crate_name = package_name(dir)?;
    let target_dir = target_dir(dir)?;
    let wasm = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", crate_name.replace('-', "_")));
    let out = dir.join("target/weir");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let component = out.join(&spec.component);
    std::fs::copy(&wasm, &component).with_context(|| format!("cannot copy {}", wasm.display()))?;
    // The sandbox cases travel with the package: a running weir runs them
    // as self-tests before the package goes live.
    let cases = dir.join("cases.toml");
    if cases.is_file() {
        let target = out.join(format!("{}.cases.toml", spec.id));
        std::fs::copy(&cases, &target).with_context(|| format!("cannot copy {}", cases.display()))?;
    }
    let package = out.join(format!("{}.toml", spec.id));
    std::fs::copy(&manifest_path, &package).with_context(|| format!("cannot copy {}", manifest_path.display()))?;
    Ok(package)
}

fn package_name(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("{} is not a rule crate (no Cargo.toml)", dir.display()))?;
    let value: toml::Table = toml::from_str(&text).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned)
        .with_context(|| format!("{}/Cargo.toml has no package.name", dir.display()))
}

/// The crate's target directory, as cargo would choose it.
fn target_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        return Ok(if t.is_absolute() { t } else { dir.join(t) });
    }
    Ok(dir.join("target"))
}
