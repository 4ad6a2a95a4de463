//! Declared parameters: a rule's manifest is checked against what the rule
//! declares before it runs. The traps an analyst fell into — a misspelled
//! parameter silently ignored, a wrongly typed one deployed and failing
//! every evaluation, an error case passing for any error — are refused,
//! with the parameter named; `weir rules` shows where each value came from.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::deploy::velocity_package;
use crate::util::{stdout, tempdir, text, weir};

/// A velocity package whose manifest has `line` added to `[params]`.
fn velocity_with(dir: &Path, line: &str) -> PathBuf {
    let package = velocity_package(dir, "1.0.0", 10);
    let manifest = package.join("velocity.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("[params]\n", &format!("[params]\n{line}\n"), 1)).unwrap();
    package
}

/// `weir rules` on `package`, and `weir rule deploy` of it into an empty
/// rules directory: both must refuse it, naming `expected`.
fn refused_by_rules_and_deploy(root: &Path, package: &Path, expected: &str) {
    let o = weir(&["rules", package.to_str().unwrap()], root);
    assert!(!o.status.success(), "weir rules passed it:\n{}", text(&o));
    assert!(stdout(&o).contains("REFUSED") && stdout(&o).contains(expected), "{}", text(&o));
    assert!(stdout(&o).contains("0 loaded, 1 refused"), "{}", text(&o));

    let rules = root.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let o = weir(&["rule", "deploy", package.to_str().unwrap(), "--rules", rules.to_str().unwrap()], root);
    assert!(!o.status.success(), "the deploy passed:\n{}", text(&o));
    assert!(text(&o).contains(expected), "{}", text(&o));
    assert!(!rules.join("velocity.toml").exists(), "a refused package is not installed");
}

#[test]
fn a_misspelled_parameter_is_refused_with_the_nearest_declared_name() {
    let dir = tempdir();
    let package = velocity_with(&dir.path().join("pkg"), "max_cuont = 8");
    refused_by_rules_and_deploy(
        dir.path(),
        &package,
        "parameter `max_cuont`: not a parameter of this rule; did you mean `max_count`?",
    );
}

#[test]
fn a_wrongly_typed_parameter_is_refused_before_it_runs() {
    let dir = tempdir();
    let package = velocity_with(&dir.path().join("pkg"), "window_secs = \"30\"");
    let package_text = std::fs::read_to_string(package.join("velocity.toml")).unwrap();
    // The shipped manifest sets window_secs too: keep only the string.
    std::fs::write(package.join("velocity.toml"), package_text.replacen("window_secs = 3600\n", "", 1)).unwrap();
    refused_by_rules_and_deploy(
        dir.path(),
        &package,
        "parameter `window_secs`: expected an integer in 1..=2678400, found a string (\"30\")",
    );
}

#[test]
fn weir_rules_shows_each_parameter_and_where_its_value_came_from() {
    let dir = tempdir();
    let package = velocity_package(&dir.path().join("pkg"), "1.0.0", 8);
    let manifest = package.join("velocity.toml");
    let text_before = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text_before.replacen("window_secs = 3600\n", "", 1)).unwrap();
    let o = weir(&["rules", package.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let line = |name: &str| out.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default().to_owned();
    assert!(line("max_count").contains("= 8") && line("max_count").contains("(rule.toml)"), "{out}");
    assert!(line("window_secs").contains("= 3600") && line("window_secs").contains("(default)"), "{out}");
    assert!(line("lock_count").contains("(unset)"), "{out}");
    assert!(line("max_sum").contains("EUR = 1000000"), "{out}");
    assert!(line("window_secs").contains("The sliding window"), "the declared doc is shown:\n{out}");
}

#[test]
fn an_error_case_must_say_which_error_and_gets_only_that_one() {
    let dir = tempdir();
    let package = velocity_package(&dir.path().join("pkg"), "1.0.0", 10);
    let wasm = package.join("velocity.wasm");
    let run = |cases: &str| {
        let file = dir.path().join("cases.toml");
        std::fs::write(&file, cases).unwrap();
        let manifest = package.join("velocity.toml");
        weir(
            &["rule", "test", wasm.to_str().unwrap(), file.to_str().unwrap(), "--manifest", manifest.to_str().unwrap()],
            dir.path(),
        )
    };
    let case = |params: &str, expect: &str| {
        format!(
            "[[case]]\nname = \"zero window\"\nparams = {{ {params} }}\n[case.expect]\noutcome = \"error\"\n{expect}\n"
        )
    };

    // Today's trap: an error case without a kind passed for any error.
    let o = run(&case("window_secs = 0", ""));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("`outcome = \"error\"` must say which error"), "{}", text(&o));

    let o = run(&case("window_secs = 0", "kind = \"parameter\""));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&case("window_secs = 0", "kind = \"parameter\"\nerror = \"window_secs\""));
    assert!(o.status.success(), "{}", text(&o));

    // Another kind of error is a failure, naming both kinds.
    let o = run(&case("window_secs = 0", "kind = \"fuel\""));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("expected a fuel error, got a parameter error"), "{}", text(&o));

    let o = run(&case("window_secs = 0", "kind = \"oops\""));
    assert!(text(&o).contains("`kind = \"oops\"` is not a kind of error"), "{}", text(&o));
}

/// A rule with two declared parameters, written, built and deployed as an
/// analyst would; `weir rule build`, `weir rules` and a deploy refuse a
/// misspelled and a mistyped parameter, each naming it.
#[test]
fn a_rule_with_two_declared_parameters_refuses_misspelled_and_mistyped_ones_everywhere() {
    let dir = tempdir();
    let o = weir(&["rule", "new", "big-spender"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let crate_dir = dir.path().join("big-spender");
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        r#"//! Suspects purchases above a limit in chosen currencies.
use weir_sdk::prelude::*;

const PARAMS: &[Param] = &[
    Param::integer("threshold", 100_000).min(0).doc("Suspect above this amount, in minor units."),
    Param::text_list("currencies", &["EUR"]).doc("The currencies checked."),
];

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let threshold: i64 = ctx.param("threshold")?;
    let currencies: Vec<String> = ctx.param("currencies")?;
    if currencies.contains(&tx.amount.currency) && tx.amount.minor_units > threshold {
        return Ok(Verdict::suspect("BIG_SPENDER", "a large purchase").with("threshold", threshold));
    }
    Ok(Verdict::pass())
}

weir_sdk::rule!(evaluate, params = PARAMS);
"#,
    )
    .unwrap();
    std::fs::write(
        crate_dir.join("cases.toml"),
        "[[case]]\nname = \"large\"\ntransaction = { amount = 200000 }\n[case.expect]\noutcome = \"suspect\"\n",
    )
    .unwrap();
    let manifest = |params: &str| {
        let text =
            format!("[rule]\nid = \"big-spender\"\nversion = \"0.1.0\"\nmode = \"shadow\"\n\n[params]\n{params}\n");
        std::fs::write(crate_dir.join("rule.toml"), text).unwrap();
    };
    let build = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["rule", "build"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/readme-walkthrough"))
            .env_remove("CARGO_MANIFEST_DIR")
            .output()
            .unwrap()
    };
    let package = crate_dir.join("target/weir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();

    manifest("threshold = 150000\ncurrencies = [\"EUR\", \"USD\"]");
    let o = build();
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("threshold") && stdout(&o).contains("(rule.toml)"), "{}", text(&o));

    for (params, expected) in [
        ("treshold = 150000", "parameter `treshold`: not a parameter of this rule; did you mean `threshold`?"),
        ("threshold = \"150000\"", "parameter `threshold`: expected an integer of at least 0, found a string"),
    ] {
        manifest(params);
        let o = build();
        assert!(!o.status.success(), "weir rule build passed {params}:\n{}", text(&o));
        assert!(text(&o).contains(expected), "{}", text(&o));

        let o = weir(&["rules", package.to_str().unwrap()], dir.path());
        assert!(!o.status.success() && stdout(&o).contains(expected), "{}", text(&o));

        let o = weir(&["rule", "deploy", package.to_str().unwrap(), "--rules", rules.to_str().unwrap()], dir.path());
        assert!(!o.status.success() && text(&o).contains(expected), "{}", text(&o));
        assert!(!rules.join("big-spender.toml").exists());
    }

    manifest("threshold = 150000");
    assert!(build().status.success());
    let o = weir(&["rule", "deploy", package.to_str().unwrap(), "--rules", rules.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = weir(&["rules", rules.to_str().unwrap()], dir.path());
    let out = stdout(&o);
    let currencies = out.lines().find(|l| l.trim_start().starts_with("currencies")).unwrap_or_default();
    assert!(currencies.contains("[\"EUR\"]") && currencies.contains("(default)"), "{out}");
}

/// A component built before declarations (here, for contract 1.0.0) has
/// no `weir:params` section: it still loads, its parameters unchecked,
/// and `weir rules` says so rather than showing them as checked.
#[test]
fn a_component_without_a_declaration_runs_unchecked_and_weir_rules_says_so() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("legacy.wasm"), crate::util::guest("legacy-v1")).unwrap();
    std::fs::write(rules.join("legacy.toml"), "[rule]\nid = \"legacy\"\nversion = \"1\"\n[params]\nburts = 3\n")
        .unwrap();
    let o = weir(&["rules", rules.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("parameters: not declared by the rule"), "{out}");
    assert!(out.contains("burts") && out.contains("(undeclared)"), "{out}");
}
