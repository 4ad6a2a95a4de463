//! [`Sandbox`]: the wasmtime engine and its configuration (fuel, a bounded
//! wasm stack, single-threaded compilation, the optional perf map), the
//! linker with both contracts' imports and WASI, and compiling and linking
//! components into [`Compiled`] rules.
//!
//! One sandbox serves every rule of a host: compiled code and the linker
//! are shared; each instance gets its own store ([`super::store`]).

use std::sync::Arc;

use wasmtime::Config;
use wasmtime::component::{Component, HasSelf, Linker};

use super::contract::{self, Contract, v1, v2};
use super::imports::{define_account_v2, define_model};
use super::instance::{Compiled, Pre};
use super::store::RuleHost;
use crate::engine::{LoadError, cache};
use crate::manifest::RuleSpec;

/// The largest wasm stack a rule may use.
const MAX_WASM_STACK: usize = 512 * 1024;

/// The wasmtime engine and the linker with the contract's imports.
pub struct Sandbox {
    engine: wasmtime::Engine,
    linker: Linker<RuleHost>,
}

impl Sandbox {
    pub fn new() -> Result<Sandbox, LoadError> {
        let engine = wasmtime::Engine::new(&config()).map_err(|e| LoadError::Engine(e.to_string()))?;
        let linker = linker(&engine).map_err(|e| LoadError::Engine(e.to_string()))?;
        Ok(Sandbox { engine, linker })
    }

    /// Compiles a component and checks it against the contract.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        contract::check_binary_kind(bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        contract::check(&self.engine, &component)?;
        Ok(component)
    }

    /// A component compiled earlier by [`Sandbox::compile`] and saved with
    /// [`Sandbox::serialize`]; `None` if it was made by another wasmtime or
    /// configuration (then it is compiled afresh).
    pub fn load_compiled(&self, artifact: &cache::Authentic) -> Option<Component> {
        // SAFETY: `deserialize` runs the bytes as native code. They come
        // from the host's compile cache and passed its MAC check: the host
        // itself serialized them from a component with this digest (see
        // `cache`), under a key only the host holds. wasmtime then checks
        // the header, its version and the engine configuration.
        let component = unsafe { Component::deserialize(&self.engine, artifact.bytes()) }.ok()?;
        contract::check(&self.engine, &component).ok()?;
        Some(component)
    }

    /// A compiled component as bytes, for the compile cache.
    pub fn serialize(component: &Component) -> Result<Vec<u8>, String> {
        component.serialize().map_err(|e| e.to_string())
    }

    /// Links a checked component and applies a manifest's limits and
    /// parameters.
    pub fn prepare(&self, spec: &RuleSpec, component: &Component) -> Result<Compiled, LoadError> {
        let contract = contract::check(&self.engine, component)?;
        let pre = self.linker.instantiate_pre(component).map_err(|e| LoadError::Link(format!("{e}")))?;
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e}"));
        let pre = match contract {
            Contract::V1 => Pre::V1(v1::RulePre::new(pre).map_err(link)?),
            Contract::V2 => Pre::V2(v2::RulePre::new(pre).map_err(link)?),
        };
        let compiled = Compiled {
            pre,
            params: Arc::from([]),
            fuel: 0,
            memory_bytes: 0,
            rule_id: Arc::from(""),
            model: None,
            model_fuel: 0,
        };
        Ok(compiled.with_spec(spec))
    }
}

/// The engine's configuration: fuel metering, the stack limit, and code
/// optimized for speed.
fn config() -> Config {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // A rule is compiled while transactions flow (hot deploy): on one
    // thread, so the pipeline keeps the other cores.
    config.parallel_compilation(false);
    // `WEIR_WASM_PROFILER=perfmap`: name the rules' compiled functions
    // in /tmp/perf-<pid>.map, so `perf report` shows where a rule's time
    // goes instead of an anonymous JIT region.
    if std::env::var_os("WEIR_WASM_PROFILER").is_some_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// The linker: WASI (nothing granted; see [`super::store`]) and both
/// contracts' imports, with the hot string-taking account functions of
/// `weir:rule@2` reading their arguments in place.
fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<RuleHost>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    v2::Rule::add_to_linker::<RuleHost, HasSelf<RuleHost>>(&mut linker, |host| host)?;
    v1::Rule::add_to_linker::<RuleHost, HasSelf<RuleHost>>(&mut linker, |host| host)?;
    define_account_v2(&mut linker)?;
    define_model(&mut linker)?;
    Ok(linker)
}
