//! Which packages are trusted, and the keys behind that: a host with
//! `rules.require_signed` runs only packages whose version hash carries an
//! ed25519 signature by one of `rules.trusted_keys`; `weir rule keygen`
//! and `weir rule sign` make the keys and signatures.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::Refusal;

/// Which packages are trusted: with `require_signed`, a package must carry
/// a signature (`NAME.sig`) by one of `keys`, and the directory must match
/// a rule set signed by one of them ([`super::set`]).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub require_signed: bool,
    pub keys: Vec<VerifyingKey>,
    /// Where the highest signed set accepted for the rules directory is
    /// remembered between runs (see [`super::set::memory_path`]); without
    /// it, a replayed set is refused only within one run.
    pub memory: Option<std::path::PathBuf>,
    /// Without `require_signed`: whether a change that leaves no rule
    /// running is applied (by default it is refused).
    pub allow_empty: bool,
}

/// What is wrong with the trusted keys; the text names the bad key.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trusted key {key:?} is not 64 hex digits")]
    NotHex { key: String },
    /// 32 bytes, but not an ed25519 public key.
    #[error("trusted key {key:?}: {error}")]
    NotEd25519 { key: String, error: ed25519_dalek::SignatureError },
    #[error("`rules.require_signed` is on but `rules.trusted_keys` is empty")]
    NoKeys,
}

/// Why a package's signature does not make it trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("unsigned, and signatures are required")]
    Missing,
    #[error("the signature is not hex: {0}")]
    NotHex(hex::FromHexError),
    #[error("the signature is not an ed25519 signature")]
    NotEd25519,
    #[error("the signature does not verify with any trusted key")]
    Untrusted,
}

/// What is wrong with a secret key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key is not 64 hex digits")]
    SecretNotHex,
    /// `weir rule keygen` never writes over a file.
    #[error("exists; not overwriting a key")]
    Exists,
}

impl Trust {
    /// From hex-encoded ed25519 public keys; errors name the bad key.
    pub fn new(require_signed: bool, keys: &[String]) -> Result<Trust, TrustError> {
        let keys = keys.iter().map(|k| parse_public_key(k)).collect::<Result<Vec<_>, _>>()?;
        if require_signed && keys.is_empty() {
            return Err(TrustError::NoKeys);
        }
        Ok(Trust { require_signed, keys, memory: None, allow_empty: false })
    }

    /// Checks `signature` (hex, the file's text) over the version hash.
    pub(super) fn check(&self, version_hash: &str, signature: Option<&str>) -> Result<(), Refusal> {
        match self.verify(version_hash, signature) {
            Ok(()) => Ok(()),
            // Without `require_signed`, a package needs no signature and
            // may carry one by a key this host does not know; a signature
            // file that is not a signature is refused all the same.
            Err(SignatureProblem::Missing | SignatureProblem::Untrusted) if !self.require_signed => Ok(()),
            Err(problem) => Err(Refusal::Signature(problem)),
        }
    }

    fn verify(&self, version_hash: &str, signature: Option<&str>) -> Result<(), SignatureProblem> {
        let text = signature.ok_or(SignatureProblem::Missing)?;
        let bytes = hex::decode(text.trim()).map_err(SignatureProblem::NotHex)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| SignatureProblem::NotEd25519)?;
        if self.keys.iter().any(|k| k.verify(version_hash.as_bytes(), &sig).is_ok()) {
            Ok(())
        } else {
            Err(SignatureProblem::Untrusted)
        }
    }
}

fn parse_public_key(text: &str) -> Result<VerifyingKey, TrustError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::NotHex { key: text.to_owned() })?;
    VerifyingKey::from_bytes(&bytes).map_err(|error| TrustError::NotEd25519 { key: text.to_owned(), error })
}

/// A new signing key: (secret key hex, public key hex).
pub fn generate_key() -> (String, String) {
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let key = SigningKey::from_bytes(&secret);
    (hex::encode(secret), hex::encode(key.verifying_key().to_bytes()))
}

/// Signs a package's version hash with a secret key (hex): the signature, hex.
pub fn sign(version_hash: &str, secret_hex: &str) -> Result<String, KeyError> {
    let secret: [u8; 32] =
        hex::decode(secret_hex.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(KeyError::SecretNotHex)?;
    Ok(hex::encode(SigningKey::from_bytes(&secret).sign(version_hash.as_bytes()).to_bytes()))
}
