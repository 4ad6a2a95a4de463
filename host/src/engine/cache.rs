//! The compile cache: compiled components kept on disk between runs, which
//! only this host can have written.
//!
//! A compiled component is native code; wasmtime's `deserialize` trusts its
//! bytes. So an artifact is used only if it carries a MAC (HMAC-SHA256)
//! under a key the host keeps in the cache directory (`key`, mode 0600),
//! over the digest of the component it was compiled from and the artifact
//! itself. A file planted in the cache, or one component's artifact renamed
//! to another's digest, fails the check and the component is compiled
//! afresh. The directory is created private (0700) and refused when others
//! may write to it; it must not be inside the rules directory, where
//! deployers write (see [`crate::config::RulesConfig::validator`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What an artifact file starts with, before its MAC.
const MAGIC: &[u8; 8] = b"weirc\x01\0\0";
const KEY_LEN: usize = 32;
/// At most this many compiled components are kept; beyond it the least
/// recently written go, so deploying many distinct components cannot fill
/// the disk (a rule's artifact is a few MiB at most).
pub const MAX_ARTIFACTS: usize = 256;
const MAC_LEN: usize = 32;

/// A compile cache directory and its key.
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
    max_artifacts: usize,
}

/// An artifact whose MAC verified: the only way to the bytes
/// `deserialize` is given ([`crate::engine::wasm::Sandbox::load_compiled`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Authentic(Vec<u8>);

impl Authentic {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Why an artifact in the cache was not used.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// No artifact for this component.
    Missing,
    /// The file is not an artifact this host wrote: no header, or its MAC
    /// does not verify under the host's key for this component's digest.
    NotAuthentic,
}

/// Why the compile cache could not be opened; weir then runs without it
/// (and compiles every rule at start).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot read {}: {source}", dir.display())]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error(
        "{} may be written by other users (mode {mode:o}); the compile cache must be private to weir's user (chmod 700)",
        dir.display()
    )]
    Shared { dir: PathBuf, mode: u32 },
    #[error("cannot read the compile cache key {}: {source}", path.display())]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("the compile cache key {} is not {} bytes", path.display(), KEY_LEN)]
    KeyLength { path: PathBuf },
    #[error("cannot write the compile cache key {}: {source}", path.display())]
    WriteKey { path: PathBuf, source: std::io::Error },
}

impl CompileCache {
    /// Opens (creating if needed) the cache in `dir`, with its key.
    pub fn open(dir: &Path) -> Result<CompileCache, OpenError> {
        create_private_dir(dir)?;
        check_not_shared(dir)?;
        let key = load_or_create_key(&dir.join("key"))?;
        Ok(CompileCache { dir: dir.to_owned(), key, max_artifacts: MAX_ARTIFACTS })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    fn mac(&self, digest: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(MAGIC);
        mac.update(digest.as_bytes());
        mac.update(&(artifact.len() as u64).to_le_bytes());
        mac.update(artifact);
        mac
    }

    /// The artifact compiled from the component with SHA-256 `digest`, if
    /// this host wrote it. Read into memory rather than mapped, so a file
    /// changed on disk later cannot pull code from under a running rule.
    pub fn read(&self, digest: &str) -> Result<Authentic, Rejected> {
        let bytes = std::fs::read(self.file(digest)).map_err(|_| Rejected::Missing)?;
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(Rejected::NotAuthentic);
        };
        if rest.len() < MAC_LEN {
            return Err(Rejected::NotAuthentic);
        }
        let (tag, artifact) = rest.split_at(MAC_LEN);
        self.mac(digest, artifact).verify_slice(tag).map_err(|_| Rejected::NotAuthentic)?;
        Ok(Authentic(artifact.to_vec()))
    }

    /// Keeps `artifact`, compiled from the component with SHA-256 `digest`:
    /// written next to its place and renamed, so a reader never sees half a
    /// file.
    pub fn write(&self, digest: &str, artifact: &[u8]) -> std::io::Result<()> {
        let tag = self.mac(digest, artifact).finalize().into_bytes();
        let file = self.file(digest);
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(MAGIC)?;
        out.write_all(&tag)?;
        out.write_all(artifact)?;
        drop(out);
        std::fs::rename(&tmp, file)?;
        self.prune()
    }

    /// Removes the least recently written artifacts beyond the limit.
    fn prune(&self) -> std::io::Result<()> {
        let mut artifacts = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                artifacts.push((written, path));
            }
        }
        if artifacts.len() > self.max_artifacts {
            artifacts.sort();
            for (_, path) in &artifacts[..artifacts.len() - self.max_artifacts] {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), OpenError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| OpenError::CreateDir { dir: dir.to_owned(), source })
}

/// Refuses a directory that users other than weir's may write to: whoever
/// writes the cache could try to plant code, and could replace the key.
fn check_not_shared(dir: &Path) -> Result<(), OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|source| OpenError::ReadDir { dir: dir.to_owned(), source })?;
        if meta.mode() & 0o022 != 0 {
            return Err(OpenError::Shared { dir: dir.to_owned(), mode: meta.mode() & 0o777 });
        }
    }
    Ok(())
}

/// The host's key: read, or made from the system's randomness and linked
/// into place, so two processes starting together agree on one key.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], OpenError> {
    let read = |path: &Path| -> Result<[u8; KEY_LEN], OpenError> {
        let bytes = std::fs::read(path).map_err(|source| OpenError::ReadKey { path: path.to_owned(), source })?;
        bytes.try_into().map_err(|_| OpenError::KeyLength { path: path.to_owned() })
    };
    if path.exists() {
        return read(path);
    }
    let mut key = [0u8; KEY_LEN];
    rand::fill(&mut key);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(OpenError::WriteKey { path: path.to_owned(), source });
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(source) => Err(OpenError::WriteKey { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_artifacts_written_under_the_key_for_that_digest_are_read() {
        let dir = std::env::temp_dir().join(format!("weir-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CompileCache::open(&dir).unwrap();
        cache.write("aaaa", b"artifact of a").unwrap();
        cache.write("bbbb", b"artifact of b").unwrap();
        assert_eq!(cache.read("aaaa").unwrap().bytes(), b"artifact of a");
        assert_eq!(cache.read("cccc"), Err(Rejected::Missing));
        // One component's artifact renamed to another's digest.
        std::fs::copy(dir.join("aaaa.cwasm"), dir.join("bbbb.cwasm")).unwrap();
        assert_eq!(cache.read("bbbb"), Err(Rejected::NotAuthentic));
        // A file planted without the key.
        std::fs::write(dir.join("aaaa.cwasm"), b"weirc\x01\0\0 plus anything at all, long enough").unwrap();
        assert_eq!(cache.read("aaaa"), Err(Rejected::NotAuthentic));
        // A second opening shares the key.
        let again = CompileCache::open(&dir).unwrap();
        again.write("dddd", b"d").unwrap();
        assert_eq!(cache.read("dddd").unwrap().bytes(), b"d");
        // Another key (another host's cache) does not verify.
        std::fs::remove_file(dir.join("key")).unwrap();
        let other = CompileCache::open(&dir).unwrap();
        assert_eq!(other.read("dddd"), Err(Rejected::NotAuthentic));
        // The oldest artifacts go beyond the limit.
        let small = CompileCache { max_artifacts: 2, ..CompileCache::open(&dir).unwrap() };
        for digest in ["e1", "e2", "e3"] {
            small.write(digest, b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm"));
        assert_eq!(left.count(), 2);
        assert_eq!(small.read("e3").unwrap().bytes(), b"x", "the newest stays");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            let err = CompileCache::open(&dir).err().unwrap().to_string();
            assert!(err.contains("other users"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
