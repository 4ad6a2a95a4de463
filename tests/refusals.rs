//! Refusals are loud: a package refused at start is listed in `weir run`'s
//! summary, not only in a log line before it (the backtest's refusals are
//! in `backtest`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{guest, stdout, tempdir, text};

#[test]
fn weir_run_lists_refused_packages_in_its_summary() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    crate::deploy::velocity_package(&rules, "1.0.0", 10);
    std::fs::write(rules.join("broken.wasm"), guest("velocity")).unwrap();
    let failing =
        "[rule]\nid = \"broken\"\nversion = \"1\"\ncomponent = \"broken.wasm\"\n[params]\nmax_count = \"ten\"\n";
    std::fs::write(rules.join("broken.toml"), failing).unwrap();
    std::fs::write(rules.join("broken.cases.toml"), "[[case]]\nname = \"runs\"\n[case.expect]\noutcome = \"pass\"\n")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input", "-", "--rules", "rules", "--output", "out"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in weir::demo::generate(10, 5, 1).lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary = stdout(&o);
    let listed = summary.split_once("Refused, not run (1):").map(|(_, rest)| rest).unwrap_or_default();
    assert!(listed.contains("broken.toml"), "{summary}");
}
