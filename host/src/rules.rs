//! Rule packages: finding them in a rules directory, and the rules weir
//! ships.
//!
//! A package is a manifest (`NAME.toml`, see [`crate::manifest`]) next to
//! its component (`rule.component`, by default `<id>.wasm`). A package that
//! cannot be loaded is refused with its reason and the others still load;
//! the caller decides whether a refusal is fatal.

use std::path::{Path, PathBuf};

use crate::engine::{Engine, LoadError, LoadedRule};
use crate::manifest::RuleSpec;

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// A rule built into the weir binary.
pub struct ShippedRule {
    /// The crate name under `rules/`.
    pub name: &'static str,
    pub component: &'static [u8],
    pub manifest: &'static str,
    /// Sandbox cases (`weir rule test` format).
    pub cases: &'static str,
}

/// A package that was not loaded, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    pub path: PathBuf,
    pub reason: String,
}

/// Loads one package from its manifest path.
pub fn load_package(engine: &Engine, manifest_path: &Path) -> Result<LoadedRule, String> {
    let text = std::fs::read_to_string(manifest_path).map_err(|e| format!("cannot read the manifest: {e}"))?;
    let spec = RuleSpec::parse(&text).map_err(|e| format!("invalid manifest: {e}"))?;
    let component_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&spec.component);
    let bytes = std::fs::read(&component_path)
        .map_err(|e| format!("cannot read the component {}: {e}", component_path.display()))?;
    engine.load(spec, &bytes, &text).map_err(|e: LoadError| format!("{}: {e}", component_path.display()))
}

/// Loads every package in `dir`: (loaded rules, refused packages).
pub fn load_dir(engine: &Engine, dir: &Path) -> std::io::Result<(Vec<LoadedRule>, Vec<Refused>)> {
    let mut manifests: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_manifest(p)).collect();
    manifests.sort();
    let mut loaded = Vec::new();
    let mut refused = Vec::new();
    for path in manifests {
        match load_package(engine, &path) {
            Ok(rule) => {
                tracing::info!(rule = %rule.spec.id, version = %rule.spec.version_label, hash = %rule.hash, mode = ?rule.spec.mode, path = %path.display(), "rule loaded");
                loaded.push(rule)
            }
            Err(reason) => {
                tracing::error!(path = %path.display(), "rule package refused: {reason}");
                refused.push(Refused { path, reason })
            }
        }
    }
    Ok((loaded, refused))
}

/// Manifests are `*.toml`; hidden and temporary files are skipped.
fn is_manifest(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    path.is_file() && name.ends_with(".toml") && !name.starts_with('.') && !name.starts_with('~')
}

/// Loads the shipped rules into the engine.
pub fn load_shipped(engine: &Engine) -> Result<Vec<LoadedRule>, String> {
    SHIPPED
        .iter()
        .map(|r| {
            let spec = RuleSpec::parse(r.manifest).map_err(|e| format!("shipped rule {}: {e}", r.name))?;
            engine.load(spec, r.component, r.manifest).map_err(|e| format!("shipped rule {}: {e}", r.name))
        })
        .collect()
}

/// Writes the shipped rules as packages into `dir` (manifest + component).
pub fn export_shipped(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for r in SHIPPED {
        let spec = RuleSpec::parse(r.manifest).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(dir.join(&spec.component), r.component)?;
        let manifest = dir.join(format!("{}.toml", spec.id));
        std::fs::write(&manifest, r.manifest)?;
        written.push(manifest);
    }
    Ok(written)
}
