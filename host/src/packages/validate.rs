//! Validation: everything short of running a rule on traffic. The manifest
//! parses, the signature verifies (when signatures are required), the
//! component compiles for a compatible contract and instantiates, and the
//! self-test cases pass in the sandbox. A package that fails is refused
//! with its reason, a [`Refusal`].

use std::path::{Path, PathBuf};

use super::{PackageFiles, SignatureProblem, Trust};
use crate::cases::{CaseFile, CasesError, run_cases};
use crate::engine::{Engine, LoadError, LoadedRule};
use crate::manifest::ManifestError;

/// Why a package is refused. Its text names the file and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// A file of the package cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("invalid manifest: {0}")]
    Manifest(ManifestError),
    /// Signatures: missing, malformed, or by no trusted key.
    #[error("{0}")]
    Signature(SignatureProblem),
    /// The component is not a rule for this host's contract.
    #[error("{}: {error}", path.display())]
    Component { path: PathBuf, error: LoadError },
    /// The self-test cases file is not valid.
    #[error("{}: {error}", path.display())]
    CasesFile { path: PathBuf, error: Box<toml::de::Error> },
    /// The self-test cases cannot run (bad parameters, a refused component).
    #[error("{}: {problem}", path.display())]
    Cases { path: PathBuf, problem: CasesError },
    #[error(
        "{failed} of {total} self-test cases in {} failed: {}",
        path.display(),
        cases.join("; ")
    )]
    SelfTest { path: PathBuf, failed: usize, total: usize, cases: Vec<String> },
    /// Two packages in a directory have one id.
    #[error("the package {} already has the rule id `{id}`", other.display())]
    DuplicateId { id: String, other: PathBuf },
    /// With `require_signed`: the signed rule set does not list this version.
    #[error("not in the signed rule set #{sequence} (`weir rule seal` signs a new set)")]
    NotInSignedSet { sequence: u64 },
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
        self.validate_with(package, true)
    }

    /// [`Validator::validate`], where failing self-test cases refuse the
    /// package or not. A package a signed rule set lists was tested when the
    /// set was sealed; its cases file is not signed, so at load it cannot
    /// take the rule away: a failure is logged at WARN and the package runs.
    pub fn validate_with(&self, package: &PackageFiles, cases_refuse: bool) -> Result<LoadedRule, Refusal> {
        self.trust.check(&package.hash, package.signature.as_deref())?;
        let rule = self
            .engine
            .load(package.spec.clone(), &package.component, &package.manifest)
            .map_err(|error: LoadError| Refusal::Component { path: package.component_path.clone(), error })?;
        if let Some((path, text)) = &package.cases {
            match self_test(&self.engine, package, path, text) {
                Err(refusal) if !cases_refuse => tracing::warn!(
                    rule = %package.spec.id,
                    "the signed rule set lists this version, so it runs, but its unsigned self-test cases fail: {refusal}"
                ),
                result => result?,
            }
        }
        Ok(rule)
    }
}

/// Runs a package's self-test cases; any failure refuses the package.
fn self_test(engine: &Engine, package: &PackageFiles, path: &Path, text: &str) -> Result<(), Refusal> {
    let file: CaseFile =
        toml::from_str(text).map_err(|error| Refusal::CasesFile { path: path.to_owned(), error: Box::new(error) })?;
    let reports = run_cases(engine, &package.component, &package.manifest, &package.spec, &file)
        .map_err(|problem| Refusal::Cases { path: path.to_owned(), problem })?;
    let cases: Vec<String> =
        reports.iter().filter_map(|r| r.failure.as_ref().map(|why| format!("{:?}: {why}", r.name))).collect();
    if cases.is_empty() {
        Ok(())
    } else {
        Err(Refusal::SelfTest { path: path.to_owned(), failed: cases.len(), total: reports.len(), cases })
    }
}
