//! The package operations the CLI runs on a rules directory — deploy,
//! rollback, retire, sign, keygen — and their errors. A running weir's
//! watcher picks up what they install.

use std::path::{Path, PathBuf};

use super::set::{self, SET_FILE, SET_SIGNATURE_FILE, SetEntry, SetStatement};
use super::{
    KeyError, PackageFiles, Refusal, Validator, archive, archived, generate_key, install, manifests, sibling, sign,
};
use crate::events::RuleMode;
use crate::manifest::{ManifestError, RuleSpec};

/// What went wrong in a package operation (deploy, rollback, retire).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the rules directory {} does not exist", .0.display())]
    NoRulesDirectory(PathBuf),
    #[error("{} holds no package manifest (<id>.toml)", .0.display())]
    NoPackage(PathBuf),
    #[error("{} holds {count} packages; name the manifest to deploy", dir.display())]
    ManyPackages { dir: PathBuf, count: usize },
    /// The package itself: unreadable or refused.
    #[error("refused {}: {refusal}", path.display())]
    Refused { path: PathBuf, refusal: Refusal },
    #[error("no deployed package for `{id}` in {}", dir.display())]
    NotDeployed { id: String, dir: PathBuf },
    #[error("no earlier version of `{id}` is archived in {}", dir.display())]
    NothingToRollBack { id: String, dir: PathBuf },
    #[error("the key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: KeyError },
    /// `--mode` could not be written into the manifest: it is not TOML.
    #[error("cannot edit the manifest {}: {error}", path.display())]
    ManifestSyntax { path: PathBuf, error: toml_edit::TomlError },
    /// The manifest with the new mode is not valid.
    #[error("cannot edit the manifest {}: {error}", path.display())]
    Manifest { path: PathBuf, error: ManifestError },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Another package in the rules directory already uses a file of this
    /// one's name (its component or its model): installing would replace
    /// that package's file under it.
    #[error(
        "the rules directory {} already has `{file}`, the file of another rule (`{other}`); give this package's {what} another name",
        dir.display()
    )]
    FileTaken { dir: PathBuf, file: String, what: &'static str, other: String },
    /// `weir rule seal` on a directory without packages, without `--empty`.
    #[error("{} holds no package; sealing it signs an empty rule set, which needs --empty", .0.display())]
    EmptySet(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_owned(), source }
}

/// What a deploy did.
#[derive(Debug)]
pub enum Deployed {
    /// This exact version (content hash) was already deployed: nothing changed.
    Already { spec: RuleSpec, hash: String },
    /// Installed at `manifest`, replacing `replaced` (archived for rollback).
    Installed { spec: RuleSpec, hash: String, manifest: PathBuf, replaced: Option<Box<PackageFiles>> },
}

/// The manifest of a package given as a manifest or a directory with one.
pub fn package_manifest(path: &Path) -> Result<PathBuf, PackageError> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let found = manifests(path).map_err(io(path))?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(PackageError::NoPackage(path.to_owned())),
        many => Err(PackageError::ManyPackages { dir: path.to_owned(), count: many.len() }),
    }
}

/// Validates the package at `package` (a manifest, or a directory holding
/// one) as a running weir would and installs it into `dir`, archiving the
/// version it replaces. With `mode`, the manifest's `rule.mode` is
/// rewritten first (its comments kept); a signature made for the manifest
/// as it was is then dropped, and `signature_dropped` says so.
pub fn deploy(
    package: &Path,
    dir: &Path,
    mode: Option<RuleMode>,
    validator: &Validator,
) -> Result<(Deployed, bool), PackageError> {
    if !dir.is_dir() {
        return Err(PackageError::NoRulesDirectory(dir.to_owned()));
    }
    let manifest_path = package_manifest(package)?;
    let refused = |refusal| PackageError::Refused { path: manifest_path.clone(), refusal };
    let mut package = PackageFiles::read(&manifest_path).map_err(refused)?;
    let mut signature_dropped = false;
    if let Some(mode) = mode {
        let path = || manifest_path.clone();
        let mut doc: toml_edit::DocumentMut =
            package.manifest.parse().map_err(|error| PackageError::ManifestSyntax { path: path(), error })?;
        doc["rule"]["mode"] = toml_edit::value(mode.to_string());
        package.manifest = doc.to_string();
        package.spec =
            RuleSpec::parse(&package.manifest).map_err(|error| PackageError::Manifest { path: path(), error })?;
        package.rehash();
        signature_dropped = package.signature.take().is_some();
    }
    let rule = validator.validate(&package).map_err(refused)?;
    check_files_free(&package.spec, dir)?;
    let target = dir.join(format!("{}.toml", rule.spec.id));
    let previous = PackageFiles::read(&target).ok();
    if previous.as_ref().is_some_and(|p| p.hash == package.hash) {
        return Ok((Deployed::Already { spec: rule.spec.clone(), hash: package.hash }, signature_dropped));
    }
    if let Some(previous) = &previous {
        archive(previous, dir).map_err(io(dir))?;
    }
    let hash = package.hash.clone();
    let manifest = install(&PackageFiles { manifest_path: target, ..package }, dir).map_err(io(dir))?;
    let replaced = previous.map(Box::new);
    Ok((Deployed::Installed { spec: rule.spec.clone(), hash, manifest, replaced }, signature_dropped))
}

/// Refuses a package whose component or model has the name of another
/// rule's component or model in `dir`: the install would overwrite it, and
/// that rule would run with this package's file (for a model, silently, as
/// a new version of itself).
fn check_files_free(spec: &RuleSpec, dir: &Path) -> Result<(), PackageError> {
    let ours = [("component", Some(&spec.component)), ("model", spec.model.as_ref())];
    for manifest in manifests(dir).map_err(io(dir))? {
        // Read as the watcher reads it: a regular file within its cap.
        let Ok(bytes) = super::files::read_capped(&manifest, "manifest", super::MAX_MANIFEST_BYTES) else { continue };
        let Ok(other) = RuleSpec::parse(&String::from_utf8_lossy(&bytes)) else { continue };
        if other.id == spec.id {
            continue;
        }
        let theirs = [Some(&other.component), other.model.as_ref()];
        for (what, file) in ours {
            if let Some(file) = file.filter(|f| theirs.contains(&Some(*f))) {
                return Err(PackageError::FileTaken { dir: dir.to_owned(), file: file.clone(), what, other: other.id });
            }
        }
    }
    Ok(())
}

/// What a rollback did: `to` is running now, `replaced` was (archived).
#[derive(Debug)]
pub struct RolledBack {
    pub to: PackageFiles,
    pub replaced: Option<PackageFiles>,
}

/// Redeploys the version of rule `id` that ran before the current one,
/// validated again as a running weir would.
pub fn rollback(dir: &Path, id: &str, validator: &Validator) -> Result<RolledBack, PackageError> {
    let manifest = dir.join(format!("{id}.toml"));
    let current = PackageFiles::read(&manifest).ok();
    let except = current.as_ref().map(|c| c.hash.as_str());
    let Some(previous) = archived(dir, id, except).map_err(io(dir))? else {
        return Err(PackageError::NothingToRollBack { id: id.to_owned(), dir: dir.to_owned() });
    };
    validator
        .validate(&previous)
        .map_err(|refusal| PackageError::Refused { path: previous.manifest_path.clone(), refusal })?;
    if let Some(current) = &current {
        archive(current, dir).map_err(io(dir))?;
    }
    install(&PackageFiles { manifest_path: manifest, ..previous.clone() }, dir).map_err(io(dir))?;
    Ok(RolledBack { to: previous, replaced: current })
}

/// Removes rule `id`'s package from `dir` (archived, so a rollback brings
/// it back). Returns the retired package.
pub fn retire(dir: &Path, id: &str) -> Result<PackageFiles, PackageError> {
    let manifest = dir.join(format!("{id}.toml"));
    let current = PackageFiles::read(&manifest)
        .map_err(|_| PackageError::NotDeployed { id: id.to_owned(), dir: dir.to_owned() })?;
    archive(&current, dir).map_err(io(dir))?;
    std::fs::remove_file(&manifest).map_err(io(&manifest))?;
    for extra in [sibling(&manifest, ".cases.toml"), sibling(&manifest, ".sig")] {
        if std::fs::symlink_metadata(&extra).is_ok() {
            std::fs::remove_file(&extra).map_err(io(&extra))?;
        }
    }
    Ok(current)
}

/// Signs the package whose manifest is `manifest` with the secret key in
/// `key_file` (written by [`write_key_pair`]): writes `<id>.sig` next to the
/// manifest. Returns the package and the signature's path.
pub fn sign_package(manifest: &Path, key_file: &Path) -> Result<(PackageFiles, PathBuf), PackageError> {
    let package =
        PackageFiles::read(manifest).map_err(|refusal| PackageError::Refused { path: manifest.to_owned(), refusal })?;
    let secret = std::fs::read_to_string(key_file).map_err(io(key_file))?;
    let signature =
        sign(&package.hash, &secret).map_err(|reason| PackageError::Key { path: key_file.to_owned(), reason })?;
    let path = sibling(manifest, ".sig");
    std::fs::write(&path, format!("{signature}\n")).map_err(io(&path))?;
    Ok((package, path))
}

/// Makes a signing key pair: writes the secret key to `out` (mode 0600,
/// never over an existing file) and returns the public key (hex).
pub fn write_key_pair(out: &Path) -> Result<String, PackageError> {
    use std::io::Write as _;
    if out.exists() {
        return Err(PackageError::Key { path: out.to_owned(), reason: KeyError::Exists });
    }
    let (secret, public) = generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(io(out))?;
    writeln!(file, "{secret}").map_err(io(out))?;
    Ok(public)
}

/// What `weir rule seal` did.
#[derive(Debug)]
pub struct Sealed {
    pub statement: SetStatement,
    /// The statement's path.
    pub path: PathBuf,
    /// The packages whose signature was written (or rewritten) with the key.
    pub signed: Vec<String>,
}

/// Seals the rules directory `dir`: validates every package in it as a
/// running weir would (self-test cases included), signs each with the
/// secret key in `key_file`, and writes the signed rule-set statement
/// listing them all under the next sequence number (past the directory's
/// set and the one this host remembers accepting; at least `sequence`).
/// An empty directory is sealed only with `empty`. Nothing is written if a
/// package is refused.
pub fn seal(
    dir: &Path,
    key_file: &Path,
    validator: &Validator,
    sequence: Option<u64>,
    expires: Option<String>,
    empty: bool,
) -> Result<Sealed, PackageError> {
    if !dir.is_dir() {
        return Err(PackageError::NoRulesDirectory(dir.to_owned()));
    }
    let secret = std::fs::read_to_string(key_file).map_err(io(key_file))?;
    let key = |reason| PackageError::Key { path: key_file.to_owned(), reason };
    let mut packages: Vec<(PackageFiles, bool)> = Vec::new();
    for manifest in manifests(dir).map_err(io(dir))? {
        let refused = |refusal| PackageError::Refused { path: manifest.clone(), refusal };
        let mut package = PackageFiles::read(&manifest).map_err(refused)?;
        let signature = sign(&package.hash, &secret).map_err(key)?;
        let resign = package.signature.as_deref().map(str::trim) != Some(signature.as_str());
        package.signature = Some(format!("{signature}\n"));
        validator.validate(&package).map_err(refused)?;
        if let Some((other, _)) = packages.iter().find(|(p, _)| p.spec.id == package.spec.id) {
            let refusal = Refusal::DuplicateId { id: package.spec.id.clone(), other: other.manifest_path.clone() };
            return Err(PackageError::Refused { path: manifest.clone(), refusal });
        }
        packages.push((package, resign));
    }
    if packages.is_empty() && !empty {
        return Err(PackageError::EmptySet(dir.to_owned()));
    }
    let previous = std::fs::read_to_string(dir.join(SET_FILE)).ok().and_then(|t| SetStatement::parse(&t).ok());
    // Past the directory's set and the set this host accepted last, which
    // a replayed directory may hide.
    let remembered = validator.trust.memory.as_deref().and_then(set::remembered).map(|a| a.sequence);
    let last = previous.map(|p| p.sequence).max(remembered);
    let next = last.map_or(1, |s| s + 1).max(sequence.unwrap_or(0));
    let mut rules: Vec<SetEntry> =
        packages.iter().map(|(p, _)| SetEntry { id: p.spec.id.clone(), version: p.hash.clone() }).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let statement = SetStatement { sequence: next, expires, rules };
    let text = statement.to_text();
    let set_signature = set::sign_set(text.as_bytes(), &secret).map_err(key)?;

    // Package signatures first, then the statement and its signature back
    // to back, each written under a hidden name and renamed into place.
    let mut files: Vec<(PathBuf, String)> = packages
        .iter()
        .filter(|(_, resign)| *resign)
        .map(|(p, _)| (sibling(&p.manifest_path, ".sig"), p.signature.clone().unwrap_or_default()))
        .collect();
    files.push((dir.join(SET_SIGNATURE_FILE), format!("{set_signature}\n")));
    files.push((dir.join(SET_FILE), text));
    for (path, text) in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hidden = dir.join(format!(".{name}.seal-{}", std::process::id()));
        std::fs::write(&hidden, text).map_err(io(&hidden))?;
        std::fs::File::open(&hidden).and_then(|f| f.sync_all()).map_err(io(&hidden))?;
        std::fs::rename(&hidden, path).map_err(io(path))?;
    }
    let signed = packages.iter().filter(|(_, resign)| *resign).map(|(p, _)| p.spec.id.clone()).collect();
    Ok(Sealed { statement, path: dir.join(SET_FILE), signed })
}
