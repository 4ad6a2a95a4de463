//! Signed rule sets: with `rules.require_signed`, what runs is what a
//! trusted key signed as a whole, not only package by package.
//!
//! A signed package says "this version of this rule is fine"; it says
//! nothing about which rules run together. A deployer without a key could
//! still delete packages, put back any version ever signed, or mix two
//! releases. The rule-set statement closes that, after The Update
//! Framework's threat model:
//!
//! - `weir-rules.set` in the rules directory lists every rule that runs,
//!   each with its version hash, under a `sequence` number and an optional
//!   `expires` time; `weir-rules.set.sig` is an ed25519 signature by one of
//!   `rules.trusted_keys` over the statement's SHA-256, in a domain of its
//!   own (`weir-rule-set:`), so a package's signature is never a set's;
//! - weir runs a directory only when it matches the newest set exactly:
//!   a listed rule that is missing, refused or at another version
//!   (deletion, mix-and-match) refuses the whole directory and the running
//!   rules stay; a package the set does not list is refused;
//! - weir remembers the highest sequence it accepted (in the compile cache
//!   directory, private to weir's user), and refuses a lower one (replay,
//!   rollback) and a different statement under the same number; going back
//!   to an older version takes a new set with a higher number — a signed
//!   rollback;
//! - an expired set is refused (a frozen directory is noticed); an empty
//!   set runs only when it is signed as such.
//!
//! `weir rule seal` validates every package, signs them and writes the
//! statement with the next sequence number.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::files::{FileProblem, MAX_SIGNATURE_BYTES, read_capped};
use super::{KeyError, SignatureProblem, Trust};

/// The rule-set statement's file name in the rules directory.
pub const SET_FILE: &str = "weir-rules.set";
/// Its signature's file name.
pub const SET_SIGNATURE_FILE: &str = "weir-rules.set.sig";
/// The largest statement read (about 2 000 rules).
pub const SET_MAX_BYTES: u64 = 256 * 1024;

/// The statement: which rule versions run, under which sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatement {
    /// Higher than every set a weir accepted before.
    pub sequence: u64,
    /// RFC 3339; after it the set is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Every rule that runs; none means an empty rule set, signed as such.
    #[serde(default, rename = "rule")]
    pub rules: Vec<SetEntry>,
}

/// One rule of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEntry {
    pub id: String,
    /// The package's version hash (`sha256:…`).
    pub version: String,
}

/// A statement whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSet {
    pub statement: SetStatement,
    /// `sha256:` of the statement's bytes.
    pub digest: String,
}

/// The set a weir accepted last, as remembered between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedSet {
    pub sequence: u64,
    pub digest: String,
}

/// Why a directory's rule set is not run. The running rules stay.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetRefusal {
    #[error(
        "no signed rule set ({SET_FILE}) in the rules directory, and `rules.require_signed` is on (`weir rule seal` writes one)"
    )]
    Missing,
    #[error("cannot read {file}: {reason}")]
    Unreadable { file: &'static str, reason: String },
    #[error("{SET_FILE} is not a rule-set statement: {reason}")]
    Invalid { reason: String },
    #[error("{SET_FILE}: {0}")]
    Signature(SignatureProblem),
    #[error("the signed rule set #{sequence} expired at {expires}")]
    Expired { sequence: u64, expires: String },
    #[error("the signed rule set #{sequence} is older than #{accepted}, accepted before: a replayed set is not run")]
    Replayed { sequence: u64, accepted: u64 },
    #[error("the signed rule set #{sequence} differs from the set #{sequence} accepted before")]
    Conflict { sequence: u64 },
    #[error("the signed rule set #{sequence} lists `{id}` at {listed}, but the directory holds {found}")]
    Mismatch { sequence: u64, id: String, listed: String, found: String },
    #[error(
        "the change would leave no rule running; an empty rule set runs only when signed as such, or with `rules.allow_empty = true`"
    )]
    Empty,
}

impl SetStatement {
    /// Parses a statement strictly; the error never quotes the file.
    pub fn parse(text: &str) -> Result<SetStatement, SetRefusal> {
        let statement: SetStatement = toml::from_str(text)
            .map_err(|e| SetRefusal::Invalid { reason: crate::manifest::toml_error_text(&e, text) })?;
        if let Some(expires) = &statement.expires {
            OffsetDateTime::parse(expires, &Rfc3339).map_err(|_| SetRefusal::Invalid {
                reason: "`expires` is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)".to_owned(),
            })?;
        }
        let mut ids: Vec<&str> = statement.rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(SetRefusal::Invalid { reason: format!("rule `{}` is listed twice", pair[0]) });
        }
        Ok(statement)
    }

    /// Whether the set has expired at `now`.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires.as_deref().and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok()).is_some_and(|e| e <= now)
    }

    /// The statement as written to [`SET_FILE`].
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# The signed rule set: with `rules.require_signed`, weir runs exactly these rule\n\
             # versions. Written by `weir rule seal`; any edit breaks {SET_SIGNATURE_FILE}.\n{body}"
        )
    }
}

/// `sha256:` of a statement's bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What a set's signature covers: its digest, in a domain of its own.
fn message(digest: &str) -> String {
    format!("weir-rule-set:{digest}")
}

/// Reads `dir`'s statement and checks its signature against `trust`.
pub fn read_signed(dir: &Path, trust: &Trust) -> Result<SignedSet, SetRefusal> {
    let bytes = match read_capped(&dir.join(SET_FILE), "rule-set statement", SET_MAX_BYTES) {
        Ok(bytes) => bytes,
        Err(FileProblem::Missing) => return Err(SetRefusal::Missing),
        Err(problem) => return Err(SetRefusal::Unreadable { file: SET_FILE, reason: problem.to_string() }),
    };
    let text =
        std::str::from_utf8(&bytes).map_err(|_| SetRefusal::Invalid { reason: "the file is not UTF-8".to_owned() })?;
    let digest = digest(&bytes);
    let signature = match read_capped(&dir.join(SET_SIGNATURE_FILE), "signature", MAX_SIGNATURE_BYTES) {
        Ok(sig) => String::from_utf8_lossy(&sig).into_owned(),
        Err(FileProblem::Missing) => return Err(SetRefusal::Signature(SignatureProblem::Missing)),
        Err(problem) => return Err(SetRefusal::Unreadable { file: SET_SIGNATURE_FILE, reason: problem.to_string() }),
    };
    verify(trust, &digest, &signature).map_err(SetRefusal::Signature)?;
    let statement = SetStatement::parse(text)?;
    Ok(SignedSet { statement, digest })
}

fn verify(trust: &Trust, digest: &str, signature: &str) -> Result<(), SignatureProblem> {
    let bytes = hex::decode(signature.trim()).map_err(SignatureProblem::NotHex)?;
    let sig = Signature::from_slice(&bytes).map_err(|_| SignatureProblem::NotEd25519)?;
    let message = message(digest);
    if trust.keys.iter().any(|k| k.verify(message.as_bytes(), &sig).is_ok()) {
        Ok(())
    } else {
        Err(SignatureProblem::Untrusted)
    }
}

/// Signs a statement's bytes with a secret key (hex): the signature, hex.
pub fn sign_set(statement_bytes: &[u8], secret_hex: &str) -> Result<String, KeyError> {
    let secret: [u8; 32] =
        hex::decode(secret_hex.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(KeyError::SecretNotHex)?;
    let message = message(&digest(statement_bytes));
    Ok(hex::encode(SigningKey::from_bytes(&secret).sign(message.as_bytes()).to_bytes()))
}

/// Where the highest accepted set of a rules directory is remembered: a
/// file in `state_dir` (weir's private compile cache directory) named by
/// the directory's canonical path.
pub fn memory_path(state_dir: &Path, rules_dir: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(rules_dir).unwrap_or_else(|_| rules_dir.to_owned());
    let key = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
    state_dir.join("rule-sets").join(&key[..32])
}

/// The set remembered at `path`, if any.
pub fn remembered(path: &Path) -> Option<AcceptedSet> {
    let text = std::fs::read_to_string(path).ok()?;
    toml::from_str(&text).ok()
}

/// Remembers `accepted` at `path` (written whole, then renamed).
pub fn remember(path: &Path, accepted: &AcceptedSet) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let staged = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&staged, toml::to_string(accepted).unwrap_or_default())?;
    std::fs::rename(staged, path)
}

/// Checks a verified set against the set accepted before and the time:
/// replays, conflicts and expired sets are refused.
pub fn check_fresh(set: &SignedSet, accepted: Option<&AcceptedSet>, now: OffsetDateTime) -> Result<(), SetRefusal> {
    let sequence = set.statement.sequence;
    if let Some(accepted) = accepted {
        if sequence < accepted.sequence {
            return Err(SetRefusal::Replayed { sequence, accepted: accepted.sequence });
        }
        if sequence == accepted.sequence && set.digest != accepted.digest {
            return Err(SetRefusal::Conflict { sequence });
        }
    }
    if set.statement.expired_at(now) {
        let expires = set.statement.expires.clone().unwrap_or_default();
        return Err(SetRefusal::Expired { sequence, expires });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust_and_key() -> (Trust, String) {
        let (secret, public) = super::super::generate_key();
        (Trust::new(true, &[public]).unwrap(), secret)
    }

    fn statement(sequence: u64) -> SetStatement {
        SetStatement {
            sequence,
            expires: None,
            rules: vec![SetEntry { id: "velocity".into(), version: "sha256:ab".into() }],
        }
    }

    fn write_signed(dir: &Path, statement: &SetStatement, secret: &str) {
        let text = statement.to_text();
        std::fs::write(dir.join(SET_FILE), &text).unwrap();
        std::fs::write(dir.join(SET_SIGNATURE_FILE), sign_set(text.as_bytes(), secret).unwrap()).unwrap();
    }

    #[test]
    fn a_signed_statement_reads_back_and_an_edited_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (trust, secret) = trust_and_key();
        write_signed(dir.path(), &statement(3), &secret);
        let set = read_signed(dir.path(), &trust).unwrap();
        assert_eq!(set.statement, statement(3));
        let text = std::fs::read_to_string(dir.path().join(SET_FILE)).unwrap();
        std::fs::write(dir.path().join(SET_FILE), text.replace("sequence = 3", "sequence = 9")).unwrap();
        assert_eq!(read_signed(dir.path(), &trust), Err(SetRefusal::Signature(SignatureProblem::Untrusted)));
    }

    #[test]
    fn a_package_signature_is_not_a_set_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (trust, secret) = trust_and_key();
        let text = statement(1).to_text();
        std::fs::write(dir.path().join(SET_FILE), &text).unwrap();
        // The package domain signs the bare digest.
        let package_style = super::super::sign(&digest(text.as_bytes()), &secret).unwrap();
        std::fs::write(dir.path().join(SET_SIGNATURE_FILE), package_style).unwrap();
        assert_eq!(read_signed(dir.path(), &trust), Err(SetRefusal::Signature(SignatureProblem::Untrusted)));
    }

    #[test]
    fn older_conflicting_and_expired_sets_are_refused() {
        let set = |sequence, expires: Option<&str>| SignedSet {
            statement: SetStatement { sequence, expires: expires.map(str::to_owned), rules: vec![] },
            digest: format!("sha256:{sequence}"),
        };
        let accepted = AcceptedSet { sequence: 5, digest: "sha256:5".into() };
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            check_fresh(&set(4, None), Some(&accepted), now),
            Err(SetRefusal::Replayed { sequence: 4, accepted: 5 })
        );
        let mut other = set(5, None);
        other.digest = "sha256:other".into();
        assert_eq!(check_fresh(&other, Some(&accepted), now), Err(SetRefusal::Conflict { sequence: 5 }));
        assert_eq!(check_fresh(&set(5, None), Some(&accepted), now), Ok(()));
        assert!(matches!(
            check_fresh(&set(6, Some("2020-01-01T00:00:00Z")), Some(&accepted), now),
            Err(SetRefusal::Expired { sequence: 6, .. })
        ));
        assert_eq!(check_fresh(&set(6, Some("2999-01-01T00:00:00Z")), Some(&accepted), now), Ok(()));
    }

    #[test]
    fn a_statement_is_parsed_strictly_without_quoting_the_file() {
        let secret_line = "sequence = 1\nsecret-token = \"hunter2\"\n";
        let err = SetStatement::parse(secret_line).unwrap_err().to_string();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
        let twice = "sequence = 1\n[[rule]]\nid = \"a\"\nversion = \"x\"\n[[rule]]\nid = \"a\"\nversion = \"y\"\n";
        assert!(SetStatement::parse(twice).unwrap_err().to_string().contains("listed twice"));
    }

    #[test]
    fn the_accepted_set_is_remembered_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = memory_path(dir.path(), Path::new("rules"));
        assert_eq!(remembered(&path), None);
        let accepted = AcceptedSet { sequence: 7, digest: "sha256:7".into() };
        remember(&path, &accepted).unwrap();
        assert_eq!(remembered(&path), Some(accepted));
    }
}
