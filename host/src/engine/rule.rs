//! One version of one rule, compiled and ready to run ([`LoadedRule`]),
//! and the content hash that names the version ([`content_hash`]).
//!
//! A loaded rule is immutable and shared (`Arc`) by every rule set and
//! evaluator that runs it; what changes per evaluation lives in the
//! evaluator's slot for it ([`super::slot`]).

use sha2::{Digest, Sha256};
use weir_sdk::{NativeRule, Params};

use super::{Compilation, Parameters, wasm};
use crate::events::SharedStr;
use crate::manifest::RuleSpec;

/// The content hash that identifies a rule version: `sha256:<hex>` of the
/// component bytes and the manifest text together, so a parameter change is
/// a new version too.
pub fn content_hash(component: &[u8], manifest: &str) -> String {
    package_hash(component, manifest, None)
}

/// [`content_hash`] of a package that may carry a model: the model's bytes
/// are hashed too, so a retrained model is a new version (and a package's
/// signature, made over this hash, covers it). Without a model it is
/// [`content_hash`].
pub fn package_hash(component: &[u8], manifest: &str, model: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    h.update((component.len() as u64).to_le_bytes());
    h.update(component);
    if let Some(model) = model {
        h.update(b"\0model\0");
        h.update((model.len() as u64).to_le_bytes());
        h.update(model);
    }
    h.update(manifest.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A rule's code: a component in the sandbox, or a natively compiled rule
/// (benchmarks and tests of the engine itself).
pub(super) enum Code {
    Wasm(wasm::Compiled),
    Native { rule: NativeRule, params: Params },
}

/// One version of one rule, compiled and ready to run.
pub struct LoadedRule {
    pub spec: RuleSpec,
    /// Content hash (see [`content_hash`]).
    pub hash: SharedStr,
    /// `spec.id` and `spec.version_label`, shared by every decision's
    /// result for this rule.
    pub(super) id: SharedStr,
    pub(super) label: SharedStr,
    /// Its parameters: the values it reads and where each came from.
    pub parameters: Parameters,
    /// How its code was obtained (compiled now, or cached).
    pub compilation: Compilation,
    pub(super) code: Code,
}

impl LoadedRule {
    pub fn is_wasm(&self) -> bool {
        matches!(self.code, Code::Wasm(_))
    }

    pub(super) fn new(
        spec: RuleSpec,
        parameters: Parameters,
        hash: String,
        compilation: Compilation,
        code: Code,
    ) -> LoadedRule {
        let (id, label) = (spec.id.as_str().into(), spec.version_label.as_str().into());
        LoadedRule { spec, parameters, hash: hash.into(), id, label, compilation, code }
    }
}
