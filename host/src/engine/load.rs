//! Loading rules: [`Engine`] compiles rule packages into [`LoadedRule`]s
//! and keeps what it compiled; [`Compilation`] says how a rule's code was
//! obtained.
//!
//! Compiling a component is the slow step of a deploy (seconds for a large
//! rule), so the engine compiles each distinct component once: it keeps
//! compiled components in memory and, optionally, in the compile cache on
//! disk ([`super::cache`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use weir_sdk::{NativeRule, Params};

use super::params::{Parameters, declaration};
use super::rule::Code;
use super::{LoadError, LoadedRule, cache, package_hash, wasm};
use crate::manifest::RuleSpec;

/// Compiles rule packages, and keeps what it compiled.
///
/// Compiled components are cached by the SHA-256 of the component bytes: in
/// memory for the life of the engine (a rollback or a manifest-only change
/// such as promoting a shadow rule compiles nothing), and, with
/// [`Engine::with_cache_dir`], on disk, so a restart does not recompile;
/// an artifact on disk is used only if the host can prove it wrote it
/// ([`cache`]).
pub struct Engine {
    sandbox: wasm::Sandbox,
    components: Mutex<HashMap<String, wasmtime::component::Component>>,
    cache: Option<cache::CompileCache>,
}

/// Has the rule read its model, in its sandbox, as it will in every
/// instance: a rule built with the SDK's `model` feature reads it before
/// the transaction, so an evaluation of an empty input loads the model and
/// then fails on the input. A model error, a trap or running out of fuel
/// or memory while reading refuses the package with what the rule said; a
/// rule that does not read its model is not refused for it.
fn probe_model(mut instance: wasm::Instance, fuel: u64) -> Result<(), LoadError> {
    let mut call = Box::<super::call::CallCtx>::default();
    let (result, _) = instance.evaluate(wasm::Input::Encoded(&[]), &mut call, fuel);
    match result {
        Err(super::RuleError::Returned(message)) if weir_sdk::limits::is_model_error(&message) => {
            Err(LoadError::Model(message))
        }
        Err(super::RuleError::Returned(_)) | Ok(_) => Ok(()),
        Err(e) => Err(LoadError::Model(format!("the rule stopped while reading it: {e}"))),
    }
}

/// How a rule's code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compilation {
    /// Compiled now, taking this long.
    Fresh(Duration),
    /// Compiled earlier by this engine.
    Memory,
    /// Read from the on-disk cache, taking this long.
    Disk(Duration),
    /// Compiled now, taking this long, because the cache held a file for
    /// this component that the host did not write (planted or damaged).
    Distrusted(Duration),
    /// Not wasm (a native rule).
    Native,
}

impl std::fmt::Display for Compilation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compilation::Fresh(d) => write!(f, "compiled in {} ms", d.as_millis()),
            Compilation::Memory => f.write_str("already compiled"),
            Compilation::Disk(d) => write!(f, "read from the compile cache in {} ms", d.as_millis()),
            Compilation::Distrusted(d) => write!(
                f,
                "compiled in {} ms; the compile cache held a file for it that weir did not write, which was not used",
                d.as_millis()
            ),
            Compilation::Native => f.write_str("native"),
        }
    }
}

impl Engine {
    pub fn new() -> Result<Engine, LoadError> {
        Ok(Engine { sandbox: wasm::Sandbox::new()?, components: Mutex::default(), cache: None })
    }

    /// Also keeps compiled components in `dir` (created private if
    /// missing; see [`cache`]). A cache that cannot be opened is off, with
    /// a warning: weir then compiles every rule at start.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Engine {
        match cache::CompileCache::open(&dir) {
            Ok(cache) => self.cache = Some(cache),
            Err(e) => tracing::warn!(dir = %dir.display(), "the compile cache is off: {e}"),
        }
        self
    }

    /// Compiles and checks a component for `spec`. `manifest` is the
    /// manifest's text, part of the version hash.
    ///
    /// The manifest's parameters are checked against the rule's declaration
    /// first (the cheapest check, and the one an analyst most often fails);
    /// the loaded rule runs with the declared defaults filled in.
    pub fn load(&self, spec: RuleSpec, component: &[u8], manifest: &str) -> Result<LoadedRule, LoadError> {
        self.load_with_model(spec, component, manifest, None)
    }

    /// [`Engine::load`] for a package that carries a model (`[model]`):
    /// its bytes are handed to the rule through the contract's `model`
    /// import and are part of the version hash ([`package_hash`]).
    pub fn load_with_model(
        &self,
        mut spec: RuleSpec,
        component: &[u8],
        manifest: &str,
        model: Option<Arc<[u8]>>,
    ) -> Result<LoadedRule, LoadError> {
        let parameters = Parameters::resolve(declaration(component)?, &spec.params)?;
        spec.params = parameters.values();
        let (code, compilation) = self.component(component)?;
        let hash = package_hash(component, manifest, model.as_deref());
        let compiled = self.sandbox.prepare(&spec, &code)?.with_model(model);
        // Instantiate once now, so a rule that cannot start is refused at load.
        let instance = compiled.instantiate().map_err(|e| LoadError::Link(e.to_string()))?;
        if compiled.has_model() {
            probe_model(instance, compiled.fuel())?;
        }
        Ok(LoadedRule::new(spec, parameters, hash, compilation, Code::Wasm(compiled)))
    }

    /// The compiled component for `bytes`: from memory, from the disk
    /// cache, or compiled now (and then cached).
    fn component(&self, bytes: &[u8]) -> Result<(wasmtime::component::Component, Compilation), LoadError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(c) = self.components.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Ok((c.clone(), Compilation::Memory));
        }
        let started = Instant::now();
        let cached = self.cache.as_ref().map(|cache| cache.read(&digest));
        if let Some(Ok(artifact)) = &cached
            && let Some(component) = self.sandbox.load_compiled(artifact)
        {
            self.components.lock().unwrap_or_else(|e| e.into_inner()).insert(digest, component.clone());
            return Ok((component, Compilation::Disk(started.elapsed())));
        }
        let component = self.sandbox.compile(bytes)?;
        let took = started.elapsed();
        let compilation = match cached {
            Some(Err(cache::Rejected::NotAuthentic)) => {
                tracing::warn!(
                    digest,
                    "the compile cache held a file for this component that weir did not write; it was compiled afresh and the file replaced"
                );
                Compilation::Distrusted(took)
            }
            _ => Compilation::Fresh(took),
        };
        self.keep_on_disk(&digest, &component);
        self.components.lock().unwrap_or_else(|e| e.into_inner()).insert(digest, component.clone());
        Ok((component, compilation))
    }

    /// Writes a freshly compiled component to the compile cache, if there
    /// is one; a failure costs only a warning (the next start compiles it).
    fn keep_on_disk(&self, digest: &str, component: &wasmtime::component::Component) {
        let Some(cache) = &self.cache else { return };
        let written = wasm::Sandbox::serialize(component)
            .map_err(std::io::Error::other)
            .and_then(|artifact| cache.write(digest, &artifact));
        if let Err(e) = written {
            tracing::warn!(dir = %cache.dir().display(), "cannot write to the compile cache: {e}");
        }
    }

    /// A natively compiled rule (benchmarks and tests of the engine itself).
    /// Its parameters are checked against its declaration, as a
    /// component's are.
    pub fn native(mut spec: RuleSpec, rule: NativeRule, version_hash: &str) -> Result<LoadedRule, LoadError> {
        let declared = rule.declared().map_err(|e| LoadError::Declaration(e.to_string()))?;
        let parameters = Parameters::resolve(Some(declared), &spec.params)?;
        spec.params = parameters.values();
        let params = Params::new(spec.params.clone());
        let code = Code::Native { rule, params };
        Ok(LoadedRule::new(spec, parameters, version_hash.to_owned(), Compilation::Native, code))
    }
}
