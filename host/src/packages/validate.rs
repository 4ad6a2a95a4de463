//! Validation: everything short of running a rule on traffic. The manifest
//! parses, the signature verifies (when signatures are required), the
//! component compiles for a compatible contract and instantiates, and the
//! self-test cases pass in the sandbox. A package that fails is refused
//! with its reason, a [`Refusal`], whose text — in the log, `weir rules`
//! and `/status` — is at most [`REFUSAL_TEXT_MAX`] bytes and quotes no
//! file's content beyond the name of an offending key or case.

use std::path::{Path, PathBuf};

use crate::events::shown as clean;

use super::{FileProblem, PackageFiles, SignatureProblem, Trust};
use crate::cases::{CaseFile, CasesError, run_cases};
use crate::engine::{Engine, LoadError, LoadedRule};
use crate::manifest::{ManifestError, toml_error_text};

/// The longest text of a refusal: what the log, `weir rules` and `/status`
/// show of one refused package. Longer text (many failing self-test cases,
/// a long value in a manifest) is cut, marked with `…`.
pub const REFUSAL_TEXT_MAX: usize = 1024;

/// Why a package is refused. Its text names the file and what is wrong,
/// quotes no file's content beyond the name of an offending key or case,
/// holds no control characters and is at most [`REFUSAL_TEXT_MAX`] bytes.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A file of the package cannot be read, or is not a regular file
    /// within its size cap.
    Unreadable {
        path: PathBuf,
        problem: FileProblem,
    },
    Manifest(ManifestError),
    /// Signatures: missing, malformed, or by no trusted key.
    Signature(SignatureProblem),
    /// The component is not a rule for this host's contract, or the
    /// manifest's parameters are not what it declares (then `path` is the
    /// manifest's).
    Component {
        path: PathBuf,
        error: LoadError,
    },
    /// The self-test cases file is not valid: where, and what is wrong
    /// (see [`crate::manifest::toml_error_text`]).
    CasesFile {
        path: PathBuf,
        error: String,
    },
    /// The self-test cases cannot run (bad parameters, a refused component).
    Cases {
        path: PathBuf,
        problem: CasesError,
    },
    SelfTest {
        path: PathBuf,
        failed: usize,
        total: usize,
        cases: Vec<String>,
    },
    /// Two packages in a directory have one id.
    DuplicateId {
        id: String,
        other: PathBuf,
    },
    /// With `require_signed`: the signed rule set does not list this version.
    NotInSignedSet {
        sequence: u64,
    },
    /// An entity rule of a kind this pipeline does not route (on Kafka, a
    /// kind missing from `kafka.entities`).
    EntityRule {
        entity: weir_sdk::Entity,
    },
}

impl Refusal {
    /// The whole text, before it is cleaned and cut.
    fn full_text(&self) -> String {
        match self {
            Refusal::Unreadable { path, problem } => format!("cannot read {}: {problem}", path.display()),
            Refusal::Manifest(error) => format!("invalid manifest: {error}"),
            Refusal::Signature(problem) => problem.to_string(),
            Refusal::Component { path, error } => format!("{}: {error}", path.display()),
            Refusal::CasesFile { path, error } => format!("{}: {error}", path.display()),
            Refusal::Cases { path, problem } => format!("{}: {problem}", path.display()),
            Refusal::SelfTest { path, failed, total, cases } => {
                format!("{failed} of {total} self-test cases in {} failed: {}", path.display(), cases.join("; "))
            }
            Refusal::DuplicateId { id, other } => {
                format!("the package {} already has the rule id `{id}`", other.display())
            }
            Refusal::NotInSignedSet { sequence } => {
                format!("not in the signed rule set #{sequence} (`weir rule seal` signs a new set)")
            }
            Refusal::EntityRule { entity } => format!(
                "an entity rule (`rule.entity` = \"{entity}\") of a kind this instance does not route: on Kafka, add \"{entity}\" to `kafka.entities` (all instances of the group, then restart them) so that transactions visit their {entity}'s partitions"
            ),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&clean(&self.full_text(), REFUSAL_TEXT_MAX))
    }
}

impl std::error::Error for Refusal {}

/// Validates packages and compiles them with one engine.
pub struct Validator {
    pub engine: Engine,
    pub trust: Trust,
    /// The entity kinds whose rules may run (`None`: all; on Kafka, the
    /// kinds routed).
    pub entity_kinds: Option<Vec<weir_sdk::Entity>>,
}

impl Validator {
    pub fn new(engine: Engine, trust: Trust) -> Validator {
        Validator { engine, trust, entity_kinds: None }
    }

    /// Refuses entity rules but those of `kinds`, for a pipeline that
    /// routes only these.
    pub fn only_entity_kinds(self, kinds: Vec<weir_sdk::Entity>) -> Validator {
        Validator { entity_kinds: Some(kinds), ..self }
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
        if let Some(entity) =
            package.spec.entity.filter(|e| self.entity_kinds.as_ref().is_some_and(|kinds| !kinds.contains(e)))
        {
            return Err(Refusal::EntityRule { entity });
        }
        let model = package.model.as_ref().map(|(_, bytes)| bytes.clone());
        let rule = self
            .engine
            .load_with_model(package.spec.clone(), &package.component, &package.manifest, model)
            .map_err(|error: LoadError| {
                // A parameter the declaration refuses is the manifest's fault:
                // the refusal names the manifest, not the component; a model
                // refused names the model.
                let path = match (&error, &package.model) {
                    (LoadError::Params(_), _) => &package.manifest_path,
                    (LoadError::Model(_), Some((path, _))) => path,
                    _ => &package.component_path,
                };
                Refusal::Component { path: path.clone(), error }
            })?;
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
    let file: CaseFile = toml::from_str(text)
        .map_err(|e| Refusal::CasesFile { path: path.to_owned(), error: toml_error_text(&e, text) })?;
    let model = package.model.as_ref().map(|(_, bytes)| bytes.clone());
    let reports = run_cases(engine, &package.component, &package.manifest, model, &package.spec, &file)
        .map_err(|problem| Refusal::Cases { path: path.to_owned(), problem })?;
    let cases: Vec<String> =
        reports.iter().filter_map(|r| r.failure.as_ref().map(|why| format!("{:?}: {why}", r.name))).collect();
    if cases.is_empty() {
        Ok(())
    } else {
        Err(Refusal::SelfTest { path: path.to_owned(), failed: cases.len(), total: reports.len(), cases })
    }
}
