//! The rules weir ships: built from `rules/` by host/build.rs and embedded
//! in the binary. `weir demo` runs them and writes them out as packages (a
//! rules directory to start from); the tests and benchmarks load them.

use std::path::{Path, PathBuf};

use crate::engine::{Engine, LoadError, LoadedRule};
use crate::manifest::{ManifestError, RuleSpec};

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

/// A shipped rule that does not load: a build of weir that is broken.
#[derive(Debug, thiserror::Error)]
pub enum ShippedError {
    #[error("shipped rule {name}: {error}")]
    Manifest { name: &'static str, error: ManifestError },
    #[error("shipped rule {name}: {error}")]
    Load { name: &'static str, error: LoadError },
}

/// Loads the shipped rules into the engine.
pub fn load_shipped(engine: &Engine) -> Result<Vec<LoadedRule>, ShippedError> {
    SHIPPED
        .iter()
        .map(|r| {
            let spec = RuleSpec::parse(r.manifest).map_err(|error| ShippedError::Manifest { name: r.name, error })?;
            engine.load(spec, r.component, r.manifest).map_err(|error| ShippedError::Load { name: r.name, error })
        })
        .collect()
}

/// Writes the shipped rules as packages into `dir` (manifest, component,
/// self-test cases).
pub fn export_shipped(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for r in SHIPPED {
        let spec = RuleSpec::parse(r.manifest).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(dir.join(&spec.component), r.component)?;
        std::fs::write(dir.join(format!("{}.cases.toml", spec.id)), r.cases)?;
        let manifest = dir.join(format!("{}.toml", spec.id));
        std::fs::write(&manifest, r.manifest)?;
        written.push(manifest);
    }
    Ok(written)
}
