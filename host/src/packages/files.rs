//! A package's files — manifest, component, self-test cases, signature —
//! read whole, so that what is validated is exactly what is installed; and
//! which files of a rules directory are packages.
//!
//! Whoever deploys writes the rules directory, so its files are read as
//! untrusted: only regular files, each up to a size cap. A file is opened
//! without following a symbolic link and without blocking (a named pipe
//! would otherwise hold the open, and every later rescan, until someone
//! writes to it); the opened file is checked to be a regular file, its size
//! is checked against the cap before anything is read, and the read stops
//! one byte past the cap for a file that grows meanwhile. A link, a pipe, a
//! socket, a device or a directory where a package file belongs is refused
//! with what it is, and never read. Listing the directory stats nothing:
//! whatever is named like a manifest is a package, so a manifest that is
//! not a regular file is refused (the analyst sees why) rather than
//! skipped.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::Refusal;
use crate::manifest::RuleSpec;

/// The largest component read: wasm components of real rules are a few
/// hundred KiB (the shipped ones about 140 KiB); a debug build with its
/// names and a large embedded table stays well under this.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// The largest manifest read: the shipped ones are about 1 KiB; this leaves
/// room for parameters such as a few thousand listed merchants.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;
/// The largest self-test cases file read (the shipped ones are about 2 KiB).
pub const MAX_CASES_BYTES: u64 = 1 << 20;
/// The largest signature file read: a signature is 128 hex digits.
pub const MAX_SIGNATURE_BYTES: u64 = 4 << 10;
/// The largest model file read: a 300-tree gradient-boosted model is about
/// 1 MiB; the rule reads it into its own memory, under its memory cap.
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

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
    /// The model (`[model] file`): its path and bytes.
    pub model: Option<(PathBuf, std::sync::Arc<[u8]>)>,
    /// The version this package would run as (see [`crate::engine::package_hash`]).
    pub hash: String,
}

/// Why a file of a package is not read. The text never quotes the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error("no such file")]
    Missing,
    /// Package files are never read through a link: it could point at any
    /// file weir may read, or at weir's own stdin.
    #[error("is a symbolic link; package files must be regular files, links are not followed")]
    Symlink,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes; a {what} may be at most {max} bytes")]
    TooLarge { what: &'static str, size: u64, max: u64 },
    #[error("is not UTF-8 text")]
    NotText,
    /// Any other error from the operating system, as its text.
    #[error("{0}")]
    Io(String),
}

/// Which file of a package, and its cap.
#[derive(Debug, Clone, Copy)]
struct Kind {
    what: &'static str,
    max: u64,
}

const MANIFEST: Kind = Kind { what: "manifest", max: MAX_MANIFEST_BYTES };
const COMPONENT: Kind = Kind { what: "component", max: MAX_COMPONENT_BYTES };
const CASES: Kind = Kind { what: "self-test cases file", max: MAX_CASES_BYTES };
const SIGNATURE: Kind = Kind { what: "signature", max: MAX_SIGNATURE_BYTES };
const MODEL: Kind = Kind { what: "model", max: MAX_MODEL_BYTES };

/// What a file type is, for a refusal.
fn describe(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() { "a directory" } else { "not a regular file" }
}

fn io_problem(e: &std::io::Error) -> FileProblem {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        // O_NOFOLLOW on a link that replaced the file since it was listed.
        return FileProblem::Symlink;
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Io(e.to_string()),
    }
}

/// Reads the regular file at `path`, at most `kind.max` bytes (see the
/// module docs): never through a link, never blocking, never past the cap.
fn read_regular(path: &Path, kind: Kind) -> Result<Vec<u8>, FileProblem> {
    // Neither a link nor a special file is opened at all (opening a device
    // can have effects of its own); the checks after opening catch a file
    // swapped in between.
    let listed = std::fs::symlink_metadata(path).map_err(|e| io_problem(&e))?;
    if listed.file_type().is_symlink() {
        return Err(FileProblem::Symlink);
    }
    if !listed.is_file() {
        return Err(FileProblem::NotRegular(describe(listed.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| io_problem(&e))?;
    let opened = file.metadata().map_err(|e| io_problem(&e))?;
    if !opened.is_file() {
        return Err(FileProblem::NotRegular(describe(opened.file_type())));
    }
    let too_large = |size| FileProblem::TooLarge { what: kind.what, size, max: kind.max };
    if opened.len() > kind.max {
        return Err(too_large(opened.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0));
    file.take(kind.max + 1).read_to_end(&mut bytes).map_err(|e| io_problem(&e))?;
    if bytes.len() as u64 > kind.max {
        // It grew while being read.
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_regular`] for another file of the rules directory (the signed
/// rule set), `what` naming it in a refusal.
pub(super) fn read_capped(path: &Path, what: &'static str, max: u64) -> Result<Vec<u8>, FileProblem> {
    read_regular(path, Kind { what, max })
}

fn read_text(path: &Path, kind: Kind) -> Result<String, FileProblem> {
    String::from_utf8(read_regular(path, kind)?).map_err(|_| FileProblem::NotText)
}

/// The files next to a manifest `NAME.toml`: `NAME.cases.toml`, `NAME.sig`.
pub fn sibling(manifest_path: &Path, suffix: &str) -> PathBuf {
    let stem = manifest_path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    manifest_path.with_file_name(format!("{stem}{suffix}"))
}

impl PackageFiles {
    /// Reads a package from its manifest path, each file a regular file
    /// within its cap ([`MAX_MANIFEST_BYTES`] and the others); errors name
    /// the file and what is wrong with it.
    pub fn read(manifest_path: &Path) -> Result<PackageFiles, Refusal> {
        let unreadable = |path: &Path, problem| Refusal::Unreadable { path: path.to_owned(), problem };
        let manifest = read_text(manifest_path, MANIFEST).map_err(|p| unreadable(manifest_path, p))?;
        let spec = RuleSpec::parse(&manifest).map_err(Refusal::Manifest)?;
        let component_path = manifest_path.parent().unwrap_or(Path::new(".")).join(&spec.component);
        let component = read_regular(&component_path, COMPONENT).map_err(|p| unreadable(&component_path, p))?;
        // Optional, but a link or special file in their place is refused,
        // not taken for a missing file.
        let read_optional = |path: PathBuf, kind| -> Result<Option<(PathBuf, String)>, Refusal> {
            match read_text(&path, kind) {
                Ok(text) => Ok(Some((path, text))),
                Err(FileProblem::Missing) => Ok(None),
                Err(problem) => Err(unreadable(&path, problem)),
            }
        };
        let cases = read_optional(sibling(manifest_path, ".cases.toml"), CASES)?;
        let signature = read_optional(sibling(manifest_path, ".sig"), SIGNATURE)?.map(|(_, s)| s);
        let model = match &spec.model {
            Some(file) => {
                let path = manifest_path.parent().unwrap_or(Path::new(".")).join(file);
                let bytes = read_regular(&path, MODEL).map_err(|p| unreadable(&path, p))?;
                Some((path, std::sync::Arc::from(bytes)))
            }
            None => None,
        };
        let mut package = PackageFiles {
            manifest_path: manifest_path.to_owned(),
            manifest,
            spec,
            component_path,
            component,
            cases,
            signature,
            model,
            hash: String::new(),
        };
        package.rehash();
        Ok(package)
    }

    /// Computes [`PackageFiles::hash`] again, after a change to a file.
    pub fn rehash(&mut self) {
        self.hash = crate::engine::package_hash(&self.component, &self.manifest, self.model_bytes());
    }

    /// The model's bytes, if the package has one.
    pub fn model_bytes(&self) -> Option<&[u8]> {
        self.model.as_ref().map(|(_, bytes)| &bytes[..])
    }

    /// Whether any of the package's files was modified within `window`
    /// (a link counts by its own time; nothing is followed).
    pub fn changed_within(&self, window: std::time::Duration) -> bool {
        let mut paths = vec![self.manifest_path.clone(), self.component_path.clone()];
        paths.extend(self.cases.as_ref().map(|(p, _)| p.clone()));
        paths.push(sibling(&self.manifest_path, ".sig"));
        paths.extend(self.model.as_ref().map(|(p, _)| p.clone()));
        paths
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok())
            .any(|modified| modified.elapsed().map(|age| age < window).unwrap_or(true))
    }
}

/// The manifests in `dir`, sorted: every entry named like one
/// ([`is_manifest`]), whatever it is. Nothing is stat'ed or followed; a
/// link or special file so named is refused when read.
pub fn manifests(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut manifests: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_manifest(p)).collect();
    manifests.sort();
    Ok(manifests)
}

/// Whether `path` is named like a manifest: `*.toml` but not
/// `*.cases.toml`; hidden and temporary files are skipped (that is how a
/// deploy stages its files). Only the name counts: the file is not looked
/// at, so a link named like a manifest is a package that is refused, not
/// one that is read or silently left out.
pub fn is_manifest(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.ends_with(".toml") && !name.ends_with(".cases.toml") && !name.starts_with('.') && !name.starts_with('~')
}
