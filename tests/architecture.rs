//! The invariants ARCHITECTURE.md states about where things live, kept
//! true: only the engine knows wasmtime, only the Kafka module knows
//! rdkafka, and the SDK depends on neither.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `.rs` files under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

/// The lines of the host's sources outside `allowed` that use `krate` in
/// code (comments and doc comments may name it).
fn uses_outside(krate: &str, allowed: &str) -> Vec<String> {
    let src = repo().join("host/src");
    let mut found = Vec::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if relative.starts_with(allowed) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}")) {
                found.push(format!("host/src/{relative}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn only_the_engine_knows_wasmtime() {
    for krate in ["wasmtime", "wasmtime_wasi"] {
        let found = uses_outside(krate, "engine/");
        assert!(found.is_empty(), "{krate} used outside host/src/engine/:\n{}", found.join("\n"));
    }
}

#[test]
fn only_the_kafka_module_knows_rdkafka() {
    let found = uses_outside("rdkafka", "kafka/");
    assert!(found.is_empty(), "rdkafka used outside host/src/kafka/:\n{}", found.join("\n"));
}

#[test]
fn the_sdk_depends_on_neither() {
    let manifest = std::fs::read_to_string(repo().join("sdk/Cargo.toml")).unwrap();
    for krate in ["wasmtime", "rdkafka"] {
        assert!(!manifest.contains(krate), "sdk/Cargo.toml depends on {krate}");
    }
    for file in sources(&repo().join("sdk/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("wasmtime::") && !text.contains("rdkafka::"),
            "{} uses the host's crates",
            file.display()
        );
    }
}
