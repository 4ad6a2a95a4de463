//! Builds every shipped rule (`rules/*`) and every test guest
//! (`tests/guests/*`) for `wasm32-wasip2`, so the host can embed the shipped
//! rules and the tests can load real components. Guest modules are never
//! committed: they are built here, from source, every time they change.
//!
//! The build fails if a shipped rule has no native unit test (`#[test]` in
//! its sources) or no sandbox cases (`cases.toml` with at least one
//! `[[case]]`), or no manifest (`rule.toml`).
//!
//! When the toolchain lacks the `wasm32-wasip2` target (rustup does not add
//! `rust-toolchain.toml`'s targets to a toolchain installed earlier), it is
//! added with rustup first, or the build stops with the command to run.
//!
//! It also embeds the SDK's sources (`sdk/Cargo.toml`, `sdk/src`, `sdk/wit`)
//! in the binary, so `weir rule new` can give a rule crate its own copy of
//! the SDK, wherever weir was built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

#[path = "src/toolchain.rs"]
#[allow(dead_code)]
mod toolchain;

use toolchain::WASM_TARGET;

const PROFILE: &str = "rule";

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = host_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    for watched in ["rules", "tests/guests", "sdk/src", "sdk/wit", "sdk/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let rules = crates_in(&root.join("rules"));
    for rule in &rules {
        check_rule_has_tests(rule);
    }
    let guests = crates_in(&root.join("tests/guests"));

    let target_dir = env::var_os("WEIR_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-rules"));
    let packages: Vec<String> = rules.iter().chain(&guests).map(|dir| package_name(dir)).collect();

    let (rustc, rustup) = toolchain::tools();
    match toolchain::ensure_wasm_target(&rustc, &rustup, &root) {
        Ok(toolchain::WasmTarget::Present) => {}
        Ok(toolchain::WasmTarget::Added { toolchain }) => {
            println!(
                "cargo:warning=added the {WASM_TARGET} target (rules are built for it) to the {toolchain} toolchain with rustup"
            );
            // cargo shows a build script's warnings again on every build
            // until the script runs again: make the next build run it once
            // more (the target is then present, and nothing is said).
            let marker = out_dir.join("wasm-target-added");
            let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
            if fs::write(&marker, "").is_ok()
                && fs::File::options().write(true).open(&marker).and_then(|f| f.set_modified(later)).is_ok()
            {
                println!("cargo:rerun-if-changed={}", marker.display());
            }
        }
        Err(sentence) => panic!("{sentence}"),
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "--target", WASM_TARGET, "--profile", PROFILE, "--target-dir"])
        .arg(&target_dir);
    for p in &packages {
        cmd.args(["-p", p]);
    }
    // The nested build must not inherit the host build's flags or wrappers
    // (clippy, coverage), which are meant for the host target.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo for the wasm rules");
    if !status.success() {
        panic!("building the rules for {WASM_TARGET} failed (see the errors above)");
    }

    let wasm_dir = target_dir.join(WASM_TARGET).join(PROFILE);
    let wasm_of = |dir: &Path| wasm_dir.join(format!("{}.wasm", package_name(dir).replace('-', "_")));

    let mut shipped = String::from(
        "/// The rules weir ships, built from `rules/` by host/build.rs.\npub const SHIPPED: &[ShippedRule] = &[\n",
    );
    for rule in &rules {
        shipped.push_str(&format!(
            "    ShippedRule {{ name: {:?}, component: include_bytes!({:?}), manifest: include_str!({:?}), cases: include_str!({:?}) }},\n",
            package_name(rule),
            wasm_of(rule).display().to_string(),
            rule.join("rule.toml").display().to_string(),
            rule.join("cases.toml").display().to_string(),
        ));
    }
    shipped.push_str("];\n");
    write_if_changed(&out_dir.join("shipped.rs"), &shipped);

    let mut paths = String::from(
        "/// Built test guests: (package name, path of the component).\npub const GUESTS: &[(&str, &str)] = &[\n",
    );
    for guest in rules.iter().chain(&guests) {
        paths.push_str(&format!("    ({:?}, {:?}),\n", package_name(guest), wasm_of(guest).display().to_string()));
    }
    paths.push_str("];\n");
    write_if_changed(&out_dir.join("guests.rs"), &paths);

    write_if_changed(&out_dir.join("sdk_files.rs"), &sdk_files(&root.join("sdk")));
}

/// `SDK_FILES`: every file a rule crate needs of the SDK, by its path
/// inside the SDK, with its text.
fn sdk_files(sdk: &Path) -> String {
    let mut files = vec![sdk.join("Cargo.toml")];
    for dir in ["src", "wit"] {
        files.extend(walk_all(&sdk.join(dir)));
    }
    files.sort();
    let mut out = String::from(
        "/// The SDK's sources, embedded by host/build.rs: (path inside the SDK, text).\npub const SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        let relative = file.strip_prefix(sdk).expect("under the SDK").to_string_lossy().replace('\\', "/");
        out.push_str(&format!("    ({relative:?}, include_str!({:?})),\n", file.display().to_string()));
    }
    out.push_str("];\n");
    out
}

/// Every file under `dir`, recursively.
fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk_all(&p));
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Crate directories directly under `dir`, sorted.
fn crates_in(dir: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    crates
}

fn package_name(dir: &Path) -> String {
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("crate has a Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = ").map(|n| n.trim_matches('"').to_owned()))
        .unwrap_or_else(|| panic!("{} has no package name", dir.display()))
}

fn check_rule_has_tests(dir: &Path) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    if !dir.join("rule.toml").is_file() {
        panic!("shipped rule `{name}` has no manifest: add {}", dir.join("rule.toml").display());
    }
    let cases = fs::read_to_string(dir.join("cases.toml")).unwrap_or_default();
    if !cases.contains("[[case]]") {
        panic!(
            "shipped rule `{name}` has no sandbox cases: add at least one [[case]] to {}",
            dir.join("cases.toml").display()
        );
    }
    let has_unit_test = walk_all(&dir.join("src"))
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rs"))
        .any(|f| fs::read_to_string(f).is_ok_and(|s| s.contains("#[test]")));
    if !has_unit_test {
        panic!("shipped rule `{name}` has no native unit test: add a #[test] under {}", dir.join("src").display());
    }
}

fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
