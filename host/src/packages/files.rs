//! A package's files — manifest, component, self-test cases, signature —
//! read whole, so that what is validated is exactly what is installed; and
//! which files of a rules directory are packages.

use std::path::{Path, PathBuf};

use super::Refusal;
use crate::manifest::RuleSpec;

/// A package's files, read whole.
#[derive(Debug, Clone)]
pub struct PackageFiles {
    pub manifest_path: PathBuf,
    pub manifest: String,
    pub spec: RuleSpec,
    pub component_path: PathBuf,
    pub component: Vec<u8>,
    /// Self-test cases: (path, text).
    pub cases: Option<(PathBuf, String)>,
    pub signature: Option<String>,
    /// The version this package would run as (see [`crate::engine::content_hash`]).
    pub hash: String,
}

/// The files next to a manifest `NAME.toml`: `NAME.cases.toml`, `NAME.sig`.
pub fn sibling(manifest_path: &Path, suffix: &str) -> PathBuf {
    let stem = manifest_path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    manifest_path.with_file_name(format!("{stem}{suffix}"))
}

impl PackageFiles {
    /// Reads a package from its manifest path; errors name the file.
    pub fn read(manifest_path: &Path) -> Result<PackageFiles, Refusal> {
        let unreadable =
            |path: &Path, e: std::io::Error| Refusal::Unreadable { path: path.to_owned(), reason: e.to_string() };
        let manifest = std::fs::read_to_string(manifest_path).map_err(|e| unreadable(manifest_path, e))?;
        let spec = RuleSpec::parse(&manifest).map_err(Refusal::Manifest)?;
        let component_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&spec.component);
        let component = std::fs::read(&component_path).map_err(|e| unreadable(&component_path, e))?;
        let read_optional = |path: PathBuf| -> Result<Option<(PathBuf, String)>, Refusal> {
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some((path, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(unreadable(&path, e)),
            }
        };
        let cases = read_optional(sibling(manifest_path, ".cases.toml"))?;
        let signature = read_optional(sibling(manifest_path, ".sig"))?.map(|(_, s)| s);
        let hash = crate::engine::content_hash(&component, &manifest);
        Ok(PackageFiles {
            manifest_path: manifest_path.to_owned(),
            manifest,
            spec,
            component_path,
            component,
            cases,
            signature,
            hash,
        })
    }

    /// Whether any of the package's files was modified within `window`.
    pub fn changed_within(&self, window: std::time::Duration) -> bool {
        let mut paths = vec![self.manifest_path.clone(), self.component_path.clone()];
        paths.extend(self.cases.as_ref().map(|(p, _)| p.clone()));
        paths.push(sibling(&self.manifest_path, ".sig"));
        paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .any(|modified| modified.elapsed().map(|age| age < window).unwrap_or(true))
    }
}

/// The manifests in `dir`, sorted.
pub fn manifests(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut manifests: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_manifest(p)).collect();
    manifests.sort();
    Ok(manifests)
}

/// Manifests are `*.toml` but not `*.cases.toml`; hidden and temporary
/// files are skipped (that is how a deploy stages its files).
pub fn is_manifest(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    path.is_file()
        && name.ends_with(".toml")
        && !name.ends_with(".cases.toml")
        && !name.starts_with('.')
        && !name.starts_with('~')
}
