//! The invariants ARCHITECTURE.md states about where things live, kept
//! true: only the engine knows wasmtime, only the Kafka module knows
//! rdkafka, the SDK depends on neither; the host's modules form layers
//! (a module imports only modules below it, so no two import each other);
//! the SDK's modules import each other in one direction only; the command
//! line and `anyhow` belong to the binary.

use std::collections::{BTreeMap, BTreeSet};
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
    out.sort();
    out
}

/// A file's code: every line that is not a comment or a doc comment
/// (comments may name anything), up to its unit tests (`#[cfg(test)]`,
/// which may use any module of the crate, come last).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut code = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if !line.trim_start().starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The lines of the host's sources outside `allowed` that use `krate` in
/// code (comments and doc comments may name it).
fn uses_outside(krate: &str, allowed: &[&str]) -> Vec<String> {
    let src = repo().join("host/src");
    let mut found = Vec::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if allowed.iter().any(|a| relative.starts_with(a)) {
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

/// The first path segments after every `crate::` in `code`, with grouped
/// imports (`use crate::{a::X, b::{Y, Z}}`) taken apart.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` in a macro is the SDK naming itself from a rule crate.
        let qualified = at > 0 && rest.as_bytes()[at - 1] == b'$';
        rest = &rest[at + "crate::".len()..];
        if qualified {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut segment_start = true;
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => segment_start = true,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && segment_start {
                    if c.is_alphanumeric() || c == '_' {
                        word.push(c);
                    } else if !word.is_empty() {
                        found.insert(std::mem::take(&mut word));
                        segment_start = false;
                    }
                }
            }
        } else {
            let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !word.is_empty() {
                found.insert(word);
            }
        }
    }
    found
}

/// For each module directly under `src` (a file `x.rs` or a folder `x/`),
/// the other modules of the same crate its code imports.
fn module_imports(src: &Path, skip: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src) {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        if skip.contains(&module.as_str()) {
            continue;
        }
        let imports = crate_imports(&code_of(&file));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports.into_iter().filter(|m| *m != module && m != "self" && m != "super"));
    }
    graph
}

/// The host library's modules from the bottom up: a module may import only
/// modules listed before it. What each layer owns is in ARCHITECTURE.md.
const HOST_LAYERS: &[&str] = &[
    // Wire types and formats, known to everything above.
    "toolchain",
    "events",
    "manifest",
    "state",
    "lists",
    // The sandbox and the evaluator.
    "engine",
    // What one record, one case file, one package, one store is.
    "store",
    "record",
    "entity_order",
    "cases",
    "scaffold",
    "demo",
    "packages",
    "live",
    // What the pipelines are handed: metrics and hooks.
    "telemetry",
    // The pipelines, and what runs over history.
    "pipeline",
    "kafka",
    "backtest",
    "features",
    // The review cases folded from what the pipelines published, and the
    // analysts' console over them.
    "review",
    "console",
    // The configuration that assembles them, and the HTTP layer on top.
    "config",
    "http",
];

#[test]
fn only_the_engine_knows_wasmtime() {
    for krate in ["wasmtime", "wasmtime_wasi"] {
        let found = uses_outside(krate, &["engine/"]);
        assert!(found.is_empty(), "{krate} used outside host/src/engine/:\n{}", found.join("\n"));
    }
}

#[test]
fn only_the_kafka_module_knows_rdkafka() {
    let found = uses_outside("rdkafka", &["kafka/"]);
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

#[test]
fn host_modules_import_only_the_layers_below_them() {
    let graph = module_imports(&repo().join("host/src"), &["lib", "main", "cli"]);
    let layer = |m: &str| HOST_LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        let Some(own) = layer(module) else {
            wrong.push(format!("host/src/{module} is in no layer: add it to HOST_LAYERS and ARCHITECTURE.md"));
            continue;
        };
        for import in imports {
            match layer(import) {
                Some(theirs) if theirs < own => {}
                Some(_) => wrong.push(format!("{module} imports {import}, which is not below it")),
                None => wrong.push(format!("{module} imports {import}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "the host's layering is broken:\n{}", wrong.join("\n"));
    for listed in HOST_LAYERS {
        assert!(graph.contains_key(*listed), "HOST_LAYERS names `{listed}`, which is not a module of host/src");
    }
}

#[test]
fn sdk_modules_import_each_other_in_one_direction_only() {
    let graph = module_imports(&repo().join("sdk/src"), &["lib"]);
    let mut circles = Vec::new();
    for (module, imports) in &graph {
        for import in imports {
            if graph.get(import).is_some_and(|theirs| theirs.contains(module)) && module < import {
                circles.push(format!("sdk/src/{module} and sdk/src/{import} import each other"));
            }
        }
    }
    assert!(circles.is_empty(), "{}", circles.join("\n"));
}

#[test]
fn the_command_line_and_anyhow_belong_to_the_binary() {
    let lib = std::fs::read_to_string(repo().join("host/src/lib.rs")).unwrap();
    for line in lib.lines().filter(|l| l.starts_with("pub mod") || l.starts_with("mod")) {
        assert!(!line.contains("cli") && !line.contains("commands"), "the library declares the CLI: {line}");
    }
    let found = uses_outside("anyhow", &["main.rs", "cli/"]);
    assert!(found.is_empty(), "anyhow used in the library:\n{}", found.join("\n"));
    for file in sources(&repo().join("host/src")) {
        let relative = file.strip_prefix(repo().join("host/src")).unwrap().to_string_lossy().into_owned();
        if relative == "main.rs" || relative.starts_with("cli/") {
            continue;
        }
        let code = code_of(&file);
        for krate in ["clap::", "indicatif::"] {
            assert!(
                !code.contains(krate),
                "host/src/{relative} uses {krate}: command-line crates belong to the binary"
            );
        }
    }
}

#[test]
fn grouped_imports_are_taken_apart() {
    let code = "use crate::{engine::{A, B}, events::C};\nfn f() { crate::state::x(); $crate::sdk::y() }";
    let found: Vec<String> = crate_imports(code).into_iter().collect();
    assert_eq!(found, ["engine", "events", "state"]);
}
