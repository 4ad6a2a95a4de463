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
//!
//! - [`files`]: a package's files, read whole (regular files only, each
//!   within its size cap, never through a link, never blocking on a pipe),
//!   and finding packages in a directory;
//! - [`validate`]: the [`Validator`] and why a package is refused (a
//!   [`Refusal`]'s text is at most [`REFUSAL_TEXT_MAX`] bytes and quotes no
//!   file's content);
//! - [`trust`]: trusted keys and signatures;
//! - [`set`]: signed rule sets — what runs as a whole, with
//!   `rules.require_signed`;
//! - [`rules_dir`]: the atomic copy into a rules directory, and the archive
//!   of replaced versions;
//! - [`operations`]: deploy, rollback, retire and sign, as the CLI runs them;
//! - [`shipped`]: the rules built into weir.

pub mod files;
pub mod operations;
pub mod rules_dir;
pub mod set;
pub mod shipped;
pub mod trust;
pub mod validate;

pub use files::{
    FileProblem, MAX_CASES_BYTES, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, PackageFiles,
    is_manifest, manifests, sibling,
};
pub use operations::{
    Deployed, PackageError, RolledBack, Sealed, deploy, package_manifest, retire, rollback, seal, sign_package,
    write_key_pair,
};
pub use rules_dir::{ARCHIVE_DIR, ARCHIVED_VERSIONS, archive, archived, install};
pub use set::{AcceptedSet, SET_FILE, SET_SIGNATURE_FILE, SetEntry, SetRefusal, SetStatement, SignedSet};
pub use shipped::{SHIPPED, ShippedError, ShippedRule, export_shipped, load_shipped};
pub use trust::{KeyError, SignatureProblem, Trust, TrustError, generate_key, sign};
pub use validate::{REFUSAL_TEXT_MAX, Refusal, Validator};
