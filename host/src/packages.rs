//! Rule packages: what a package is, how one is validated, how it is
//! deployed, rolled back and retired, and the rules weir ships. The CLI
//! (`weir rule deploy|rollback|retire|sign`, `weir rules DIR`) and the
//! running weir's watcher ([`crate::live`]) use these same functions.
//!
//! A package in a rules directory is a manifest `NAME.toml` (see
//! [`crate::manifest`]) next to its component (`rule.component`, by
//! default `<id>.wasm`), optionally with self-test cases `NAME.cases.toml`
//! (the `weir rule test` format) and a signature `NAME.sig`.
//!
//! Validation ([`Validator::validate`]) is everything short of running the
//! rule on traffic: the manifest parses, the signature verifies (when
//! signatures are required), the component compiles for a compatible
//! contract and instantiates, and the self-test cases pass in the sandbox.
//! A package that fails is refused with its reason ([`Refusal`]); the
//! caller decides what a refusal means (at start, it is reported; while
//! running, the previous version keeps running; on deploy, nothing is
//! copied).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::cases::{CaseFile, run_cases};
use crate::engine::{Engine, LoadError, LoadedRule};
use crate::events::RuleMode;
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

/// Why a package is refused. Its text names the file and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// A file of the package cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// Signatures: missing, malformed, or by no trusted key.
    #[error("{0}")]
    Signature(String),
    /// The component is not a rule for this host's contract.
    #[error("{}: {error}", path.display())]
    Component { path: PathBuf, error: LoadError },
    /// The self-test cases do not parse or do not pass.
    #[error("{}: {problem}", path.display())]
    Cases { path: PathBuf, problem: String },
    #[error(
        "{failed} of {total} self-test cases in {} failed: {}",
        path.display(),
        cases.join("; ")
    )]
    SelfTest { path: PathBuf, failed: usize, total: usize, cases: Vec<String> },
    /// Two packages in a directory have one id.
    #[error("the package {} already has the rule id `{id}`", other.display())]
    DuplicateId { id: String, other: PathBuf },
}

/// Which packages are trusted: with `require_signed`, a package must carry
/// a signature (`NAME.sig`) by one of `keys`.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub require_signed: bool,
    pub keys: Vec<VerifyingKey>,
}

impl Trust {
    /// From hex-encoded ed25519 public keys; errors name the bad key.
    pub fn new(require_signed: bool, keys: &[String]) -> Result<Trust, String> {
        let keys = keys.iter().map(|k| parse_public_key(k)).collect::<Result<Vec<_>, _>>()?;
        if require_signed && keys.is_empty() {
            return Err("`rules.require_signed` is on but `rules.trusted_keys` is empty".to_owned());
        }
        Ok(Trust { require_signed, keys })
    }

    /// Checks `signature` (hex, the file's text) over the version hash.
    fn check(&self, version_hash: &str, signature: Option<&str>) -> Result<(), Refusal> {
        let refuse = |why: String| Err(Refusal::Signature(why));
        let Some(text) = signature else {
            return if self.require_signed {
                refuse("unsigned, and signatures are required".to_owned())
            } else {
                Ok(())
            };
        };
        let bytes = match hex::decode(text.trim()) {
            Ok(bytes) => bytes,
            Err(e) => return refuse(format!("the signature is not hex: {e}")),
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return refuse("the signature is not an ed25519 signature".to_owned());
        };
        if self.keys.iter().any(|k| k.verify(version_hash.as_bytes(), &sig).is_ok()) {
            return Ok(());
        }
        if self.require_signed {
            refuse("the signature does not verify with any trusted key".to_owned())
        } else {
            Ok(())
        }
    }
}

fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("trusted key {text:?} is not 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("trusted key {text:?}: {e}"))
}

/// A new signing key: (secret key hex, public key hex).
pub fn generate_key() -> (String, String) {
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let key = SigningKey::from_bytes(&secret);
    (hex::encode(secret), hex::encode(key.verifying_key().to_bytes()))
}

/// Signs a package's version hash with a secret key (hex): the signature, hex.
pub fn sign(version_hash: &str, secret_hex: &str) -> Result<String, String> {
    let secret: [u8; 32] = hex::decode(secret_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the secret key is not 64 hex digits")?;
    Ok(hex::encode(SigningKey::from_bytes(&secret).sign(version_hash.as_bytes()).to_bytes()))
}

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
        let spec = RuleSpec::parse(&manifest).map_err(|e| Refusal::Manifest(e.to_string()))?;
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
}

impl PackageFiles {
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

/// Validates packages and compiles them with one engine.
pub struct Validator {
    pub engine: Engine,
    pub trust: Trust,
}

impl Validator {
    pub fn new(engine: Engine, trust: Trust) -> Validator {
        Validator { engine, trust }
    }

    /// Reads and validates the package whose manifest is `manifest_path`.
    pub fn load(&self, manifest_path: &Path) -> Result<LoadedRule, Refusal> {
        self.validate(&PackageFiles::read(manifest_path)?)
    }

    /// Checks the signature, compiles, and runs the self-test cases.
    pub fn validate(&self, package: &PackageFiles) -> Result<LoadedRule, Refusal> {
        self.trust.check(&package.hash, package.signature.as_deref())?;
        let rule = self
            .engine
            .load(package.spec.clone(), &package.component, &package.manifest)
            .map_err(|error: LoadError| Refusal::Component { path: package.component_path.clone(), error })?;
        if let Some((path, text)) = &package.cases {
            self_test(&self.engine, package, path, text)?;
        }
        Ok(rule)
    }
}

/// Runs a package's self-test cases; any failure refuses the package.
fn self_test(engine: &Engine, package: &PackageFiles, path: &Path, text: &str) -> Result<(), Refusal> {
    let problem = |problem: String| Refusal::Cases { path: path.to_owned(), problem };
    let file: CaseFile = toml::from_str(text).map_err(|e| problem(e.to_string()))?;
    let reports = run_cases(engine, &package.component, &package.manifest, &package.spec, &file).map_err(problem)?;
    let cases: Vec<String> =
        reports.iter().filter_map(|r| r.failure.as_ref().map(|why| format!("{:?}: {why}", r.name))).collect();
    if cases.is_empty() {
        Ok(())
    } else {
        Err(Refusal::SelfTest { path: path.to_owned(), failed: cases.len(), total: reports.len(), cases })
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
    for path in stale.iter().filter(|p| p.exists()) {
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
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
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
    Key { path: PathBuf, reason: String },
    #[error("cannot edit the manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
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
        let edit = |reason: String| PackageError::Manifest { path: manifest_path.clone(), reason };
        let mut doc: toml_edit::DocumentMut = package.manifest.parse().map_err(|e| edit(format!("{e}")))?;
        doc["rule"]["mode"] = toml_edit::value(mode.to_string());
        package.manifest = doc.to_string();
        package.spec = RuleSpec::parse(&package.manifest).map_err(|e| edit(e.to_string()))?;
        package.hash = crate::engine::content_hash(&package.component, &package.manifest);
        signature_dropped = package.signature.take().is_some();
    }
    let rule = validator.validate(&package).map_err(refused)?;
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
        if extra.exists() {
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
        return Err(PackageError::Key { path: out.to_owned(), reason: "exists; not overwriting a key".to_owned() });
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
