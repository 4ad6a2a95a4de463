//! Writing packages into a rules directory: the atomic install a watcher
//! never sees half of, and the archive of replaced and retired versions
//! that rollback reads.

use std::path::{Path, PathBuf};

use super::{PackageFiles, sibling};

/// Copies a package into a rules directory so that a watcher never sees
/// half of it: every file is first written and synced under a hidden name,
/// then all are renamed into place back to back — the component, cases and
/// signature first, the manifest last — so the directory goes from the old
/// package to the new one within microseconds, far inside the watcher's
/// debounce. Returns the manifest's path in `dir`.
pub fn install(package: &PackageFiles, dir: &Path) -> std::io::Result<PathBuf> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = dir.join(name(&package.manifest_path));
    let mut files: Vec<(PathBuf, &[u8])> = vec![(dir.join(&package.spec.component), &package.component)];
    if let (Some(file), Some(bytes)) = (&package.spec.model, package.model_bytes()) {
        files.push((dir.join(file), bytes));
    }
    let mut stale = Vec::new();
    let cases_target = sibling(&target, ".cases.toml");
    match &package.cases {
        Some((_, text)) => files.push((cases_target, text.as_bytes())),
        None => stale.push(cases_target),
    }
    let sig_target = sibling(&target, ".sig");
    match &package.signature {
        Some(sig) => files.push((sig_target, sig.as_bytes())),
        None => stale.push(sig_target),
    }
    files.push((target.clone(), package.manifest.as_bytes()));
    let mut staged = Vec::with_capacity(files.len());
    for (final_path, bytes) in &files {
        let hidden = dir.join(format!(".{}.deploy-{}", name(final_path), std::process::id()));
        std::fs::write(&hidden, bytes)?;
        std::fs::File::open(&hidden)?.sync_all()?;
        staged.push((hidden, final_path));
    }
    // `symlink_metadata`: a stale link (even a dangling one) is removed too.
    for path in stale.iter().filter(|p| std::fs::symlink_metadata(p).is_ok()) {
        std::fs::remove_file(path)?;
    }
    for (hidden, final_path) in staged {
        std::fs::rename(hidden, final_path)?;
    }
    Ok(target)
}

/// Where replaced and retired packages are kept, inside the rules directory.
pub const ARCHIVE_DIR: &str = ".weir-archive";

/// How many archived versions of one rule are kept: older ones go, so
/// deploys do not grow the rules directory without end.
pub const ARCHIVED_VERSIONS: usize = 20;

/// Keeps a copy of a package being replaced or retired, for rollback:
/// `<dir>/.weir-archive/<id>/<time>-<hash>/`; the newest
/// [`ARCHIVED_VERSIONS`] of a rule stay.
pub fn archive(package: &PackageFiles, dir: &Path) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let short = package.hash.trim_start_matches("sha256:").get(..16).unwrap_or_default().to_owned();
    let target = dir.join(ARCHIVE_DIR).join(&package.spec.id).join(format!("{nanos:024}-{short}"));
    std::fs::create_dir_all(&target)?;
    let manifest = target.join(format!("{}.toml", package.spec.id));
    std::fs::write(target.join(&package.spec.component), &package.component)?;
    if let (Some(file), Some(bytes)) = (&package.spec.model, package.model_bytes()) {
        std::fs::write(target.join(file), bytes)?;
    }
    if let Some((_, cases)) = &package.cases {
        std::fs::write(sibling(&manifest, ".cases.toml"), cases)?;
    }
    if let Some(sig) = &package.signature {
        std::fs::write(sibling(&manifest, ".sig"), sig)?;
    }
    std::fs::write(&manifest, &package.manifest)?;
    let root = dir.join(ARCHIVE_DIR).join(&package.spec.id);
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&root)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    if versions.len() > ARCHIVED_VERSIONS {
        // Named by time: the oldest sort first.
        versions.sort();
        for old in &versions[..versions.len() - ARCHIVED_VERSIONS] {
            std::fs::remove_dir_all(old)?;
        }
    }
    Ok(target)
}

/// The newest archived package of rule `id` whose version is not `except`.
pub fn archived(dir: &Path, id: &str, except: Option<&str>) -> std::io::Result<Option<PackageFiles>> {
    let root = dir.join(ARCHIVE_DIR).join(id);
    let mut versions: Vec<PathBuf> = match std::fs::read_dir(&root) {
        // Only real directories: a link there is not followed out of the archive.
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    versions.sort();
    for version in versions.iter().rev() {
        if let Ok(package) = PackageFiles::read(&version.join(format!("{id}.toml")))
            && Some(package.hash.as_str()) != except
        {
            return Ok(Some(package));
        }
    }
    Ok(None)
}
