//! Rule packages: what a package is, how one is validated, and the rules
//! weir ships.
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
//! A package that fails is refused with its reason; the caller decides
//! what a refusal means (at start, it is reported; while running, the
//! previous version keeps running).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::engine::{Engine, LoadError, LoadedRule};
use crate::manifest::RuleSpec;
use crate::sandbox::{CaseFile, run_cases};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: PathBuf,
    pub reason: String,
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
    fn check(&self, version_hash: &str, signature: Option<&str>) -> Result<(), String> {
        let Some(text) = signature else {
            return if self.require_signed { Err("unsigned, and signatures are required".to_owned()) } else { Ok(()) };
        };
        let bytes = hex::decode(text.trim()).map_err(|e| format!("the signature is not hex: {e}"))?;
        let sig = Signature::from_slice(&bytes).map_err(|_| "the signature is not an ed25519 signature".to_owned())?;
        if self.keys.iter().any(|k| k.verify(version_hash.as_bytes(), &sig).is_ok()) {
            return Ok(());
        }
        if self.require_signed { Err("the signature does not verify with any trusted key".to_owned()) } else { Ok(()) }
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
    pub fn read(manifest_path: &Path) -> Result<PackageFiles, String> {
        let manifest = std::fs::read_to_string(manifest_path).map_err(|e| format!("cannot read the manifest: {e}"))?;
        let spec = RuleSpec::parse(&manifest).map_err(|e| format!("invalid manifest: {e}"))?;
        let component_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&spec.component);
        let component = std::fs::read(&component_path)
            .map_err(|e| format!("cannot read the component {}: {e}", component_path.display()))?;
        let read_optional = |path: PathBuf| -> Result<Option<(PathBuf, String)>, String> {
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some((path, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
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
    pub fn load(&self, manifest_path: &Path) -> Result<LoadedRule, String> {
        self.validate(&PackageFiles::read(manifest_path)?)
    }

    /// Checks the signature, compiles, and runs the self-test cases.
    pub fn validate(&self, package: &PackageFiles) -> Result<LoadedRule, String> {
        self.trust.check(&package.hash, package.signature.as_deref())?;
        let rule = self
            .engine
            .load(package.spec.clone(), &package.component, &package.manifest)
            .map_err(|e: LoadError| format!("{}: {e}", package.component_path.display()))?;
        if let Some((path, text)) = &package.cases {
            self_test(&self.engine, package, path, text)?;
        }
        Ok(rule)
    }
}

/// Runs a package's self-test cases; any failure refuses the package.
fn self_test(engine: &Engine, package: &PackageFiles, path: &Path, text: &str) -> Result<(), String> {
    let file: CaseFile = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let reports = run_cases(engine, &package.component, &package.manifest, &package.spec, &file)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let failed: Vec<String> =
        reports.iter().filter_map(|r| r.failure.as_ref().map(|why| format!("{:?}: {why}", r.name))).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} self-test cases in {} failed: {}",
            failed.len(),
            reports.len(),
            path.display(),
            failed.join("; ")
        ))
    }
}

/// The manifests in `dir`, sorted.
pub fn manifests(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut manifests: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_manifest(p)).collect();
    manifests.sort();
    Ok(manifests)
}

/// Loads every package in `dir`: (loaded rules, refused packages).
pub fn load_dir(validator: &Validator, dir: &Path) -> std::io::Result<(Vec<LoadedRule>, Vec<Refused>)> {
    let mut loaded: Vec<LoadedRule> = Vec::new();
    let mut refused = Vec::new();
    for path in manifests(dir)? {
        match validator.load(&path) {
            Ok(rule) if loaded.iter().any(|r| r.spec.id == rule.spec.id) => {
                let reason = format!("another package in the directory already has the id `{}`", rule.spec.id);
                tracing::error!(path = %path.display(), "rule package refused: {reason}");
                refused.push(Refused { path, reason });
            }
            Ok(rule) => {
                tracing::info!(rule = %rule.spec.id, version = %rule.spec.version_label, hash = %rule.hash, mode = ?rule.spec.mode, path = %path.display(), "rule loaded ({})", rule.compilation);
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

/// Keeps a copy of a package being replaced or retired, for rollback:
/// `<dir>/.weir-archive/<id>/<time>-<hash>/`.
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
