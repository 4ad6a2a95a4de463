//! The wasm sandbox: compiling, checking, instantiating and calling rule
//! components with wasmtime.
//!
//! Two contracts are linked: `weir:rule@2.0.0` (`sdk/wit/rule.wit`, what
//! the SDK builds), where the transaction and the history cross as one
//! wire-encoded byte string and a verdict's explanation is handed over only
//! when there is one; and the frozen `weir:rule@1.0.0` (`host/wit/v1`), so
//! rules built with the first SDK keep running unchanged, on a slower path
//! (a record of strings per call).
//!
//! Only the rule contract is linked, plus WASI with nothing granted (no
//! preopened directories, environment, arguments, network or stdin; a fixed
//! clock at the Unix epoch and fixed "random" bytes, so a rule that reaches
//! for them stays deterministic). Each rule instance lives in its own
//! [`Store`] with a fuel budget per evaluation, a linear-memory cap and a
//! bounded wasm stack; a trap poisons only that instance, which the caller
//! drops and recreates.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, WasmStr};
use wasmtime::{AsContextMut, Config, Store, StoreContextMut, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_sdk::ParamValue;
use weir_sdk::limits::{ERROR_MESSAGE_MAX, LOG_LINE_MAX, clean};

use super::{CallCtx, Explanation, LoadError, RuleError, Verdict, cache};
use crate::manifest::RuleSpec;

/// The current contract, `weir:rule@2.0.0`.
mod v2 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "rule",
    });
}

/// The first contract, `weir:rule@1.0.0`, frozen.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "wit/v1",
        world: "rule",
    });
}

pub(crate) use self::v1::weir::rule::types as wit;
use self::v2::weir::rule::types as wit2;

/// The contract this host implements: `weir:rule@CONTRACT_VERSION`.
pub const CONTRACT_VERSION: &str = weir_sdk::CONTRACT_VERSION;
/// The first contract, still run for rules built with the first SDK.
pub const LEGACY_CONTRACT_VERSION: &str = "1.0.0";
/// The largest wasm stack a rule may use.
const MAX_WASM_STACK: usize = 512 * 1024;
/// How much of a rule's stderr (panic messages) is kept per instance.
const STDERR_CAPTURE: usize = 4 * 1024;
/// How many log lines one evaluation may write; the rest are counted.
const MAX_LOG_LINES: u32 = 16;

/// The wasmtime engine and the linker with the contract's imports.
pub struct Sandbox {
    engine: wasmtime::Engine,
    linker: Linker<RuleHost>,
}

/// A compiled, checked component, linked for its contract.
#[derive(Clone)]
enum Pre {
    V1(v1::RulePre<RuleHost>),
    V2(v2::RulePre<RuleHost>),
}

/// A compiled, checked component, ready to instantiate.
pub struct Compiled {
    pre: Pre,
    params: Arc<[(String, ParamValue)]>,
    fuel: u64,
    memory_bytes: usize,
    rule_id: Arc<str>,
}

/// One live instance of a rule, in its own store.
pub struct Instance {
    store: Store<RuleHost>,
    bindings: Bindings,
}

enum Bindings {
    V1(v1::Rule),
    V2(v2::Rule),
}

/// The store data: what the contract's imports act on.
pub(crate) struct RuleHost {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    params: Arc<[(String, ParamValue)]>,
    rule_id: Arc<str>,
    /// The account state of the transaction being evaluated.
    call: CallCtx,
    log_lines: u32,
    /// What a `weir:rule@2` rule said through `verdict.explain` or
    /// `verdict.fail` during the evaluation.
    explained: Option<Explanation>,
    failed: Option<String>,
    /// A name and a value read from the guest's memory ([`with_name`]).
    name_buffer: String,
    value_buffer: String,
}

/// A memory cap that remembers whether it refused a growth, so an
/// allocation failure is reported as the limit it is.
struct MemoryCap {
    max_bytes: usize,
    refused: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_bytes;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// WASI's wall clock, fixed at the Unix epoch: rules have event time only.
struct EpochClock;

impl HostWallClock for EpochClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for EpochClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for RuleHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Sandbox {
    pub fn new() -> Result<Sandbox, LoadError> {
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
        let engine = wasmtime::Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;
        v2::Rule::add_to_linker::<RuleHost, HasSelf<RuleHost>>(&mut linker, |host| host)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        v1::Rule::add_to_linker::<RuleHost, HasSelf<RuleHost>>(&mut linker, |host| host)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        define_account_v2(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;
        Ok(Sandbox { engine, linker })
    }

    /// Compiles a component and checks it against the contract.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        check_binary_kind(bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        self.check_contract(&component)?;
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
        self.check_contract(&component).ok()?;
        Some(component)
    }

    /// A compiled component as bytes, for the compile cache.
    pub fn serialize(component: &Component) -> Result<Vec<u8>, String> {
        component.serialize().map_err(|e| e.to_string())
    }

    /// Links a checked component and applies a manifest's limits and
    /// parameters.
    pub fn prepare(&self, spec: &RuleSpec, component: &Component) -> Result<Compiled, LoadError> {
        let contract = self.check_contract(component)?;
        let pre = self.linker.instantiate_pre(component).map_err(|e| LoadError::Link(format!("{e}")))?;
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e}"));
        let pre = match contract {
            Contract::V1 => Pre::V1(v1::RulePre::new(pre).map_err(link)?),
            Contract::V2 => Pre::V2(v2::RulePre::new(pre).map_err(link)?),
        };
        Ok(Compiled { pre, params: Arc::from([]), fuel: 0, memory_bytes: 0, rule_id: Arc::from("") }.with_spec(spec))
    }

    /// Refuses a component built for another contract version, or one that
    /// imports something the host does not provide, naming what it found.
    fn check_contract(&self, component: &Component) -> Result<Contract, LoadError> {
        let ty = component.component_type();
        let mut evaluator = None;
        for (name, _) in ty.exports(&self.engine) {
            if let Some(version) = name.strip_prefix("weir:rule/evaluator@") {
                evaluator = Some(version.to_owned());
            }
        }
        let Some(found) = evaluator else {
            let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
            return Err(LoadError::NotARule { exports });
        };
        let Some(contract) = contract_of(&found) else {
            return Err(LoadError::IncompatibleContract { found, supported: CONTRACT_VERSION });
        };
        for (name, _) in ty.imports(&self.engine) {
            if let Some(rest) = name.strip_prefix("weir:rule/") {
                let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
                if contract_of(version) != Some(contract) {
                    return Err(LoadError::IncompatibleContract {
                        found: version.to_owned(),
                        supported: CONTRACT_VERSION,
                    });
                }
            } else if !name.starts_with("wasi:") {
                return Err(LoadError::UnsupportedImport(name.to_owned()));
            }
        }
        Ok(contract)
    }
}

/// Redefines the string-taking functions of `weir:rule/account@2.0.0` to
/// read their names in place from the guest's memory: the generated
/// bindings lift every string argument into a new `String`, an allocation
/// per call on the hottest path a rule has.
fn define_account_v2(linker: &mut Linker<RuleHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut account = linker.instance("weir:rule/account@2.0.0")?;
    account.func_wrap("window-add", |store, (name, value): (WasmStr, i64)| {
        with_name(store, name, |call, name| call.window_add(name, value))?.then_some(()).ok_or_else(over_quota)
    })?;
    account.func_wrap("set", |mut store: StoreContextMut<'_, RuleHost>, (key, value): (WasmStr, WasmStr)| {
        let mut buffer = std::mem::take(&mut store.data_mut().value_buffer);
        buffer.clear();
        buffer.push_str(&value.to_str(&store)?);
        let written = with_name(store.as_context_mut(), key, |call, key| call.set(key, &buffer));
        store.data_mut().value_buffer = buffer;
        written?.then_some(()).ok_or_else(over_quota)
    })?;
    account.func_wrap("window-sum", |store, (name, window_ms): (WasmStr, u64)| {
        with_name(store, name, |call, name| (call.window_sum(name, window_ms),))
    })?;
    account.func_wrap("window-count", |store, (name, window_ms): (WasmStr, u64)| {
        with_name(store, name, |call, name| (call.window_count(name, window_ms),))
    })?;
    account.func_wrap("get", |store, (key,): (WasmStr,)| with_name(store, key, |call, key| (call.get(key),)))?;
    account.func_wrap("remove", |store, (key,): (WasmStr,)| with_name(store, key, |call, key| call.remove(key)))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The trap that stops a rule whose write was refused for its state quota
/// (the evaluation's error says so: [`super::RuleError::StateQuota`]).
fn over_quota() -> wasmtime::Error {
    wasmtime::Error::msg("a write went over the rule's state quota")
}

/// Runs `f` on the call context with `name` read from the guest's memory
/// into a buffer the host reuses.
fn with_name<R>(
    mut store: StoreContextMut<'_, RuleHost>,
    name: WasmStr,
    f: impl FnOnce(&mut CallCtx, &str) -> R,
) -> wasmtime::Result<R> {
    let mut buffer = std::mem::take(&mut store.data_mut().name_buffer);
    buffer.clear();
    buffer.push_str(&name.to_str(&store)?);
    let host = store.data_mut();
    let result = f(&mut host.call, &buffer);
    host.name_buffer = buffer;
    Ok(result)
}

/// The contracts this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contract {
    /// `weir:rule@1.0.0`, the first SDK's.
    V1,
    /// `weir:rule@2.x` up to [`CONTRACT_VERSION`].
    V2,
}

/// Which contract `found` is, if this host runs it: 2.x not newer than
/// [`CONTRACT_VERSION`] (a newer minor may use imports this host lacks), or
/// exactly 1.0.0.
fn contract_of(found: &str) -> Option<Contract> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split(['.', '-', '+']).map(str::parse::<u64>);
        Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    };
    let (f, h) = (parse(found)?, parse(CONTRACT_VERSION)?);
    if f.0 == h.0 && f <= h {
        Some(Contract::V2)
    } else if Some(f) == parse(LEGACY_CONTRACT_VERSION) {
        Some(Contract::V1)
    } else {
        None
    }
}

/// Distinguishes "not wasm" and "a core module" from "a component".
fn check_binary_kind(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm { len: bytes.len() });
    }
    // A core module has version 1 and layer 0; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

impl Compiled {
    /// The same compiled component with another manifest's limits and
    /// parameters: no recompilation.
    pub(crate) fn with_spec(&self, spec: &RuleSpec) -> Compiled {
        Compiled {
            pre: self.pre.clone(),
            params: spec.params.iter().cloned().collect(),
            fuel: spec.fuel,
            memory_bytes: spec.memory_mib as usize * 1024 * 1024,
            rule_id: spec.id.as_str().into(),
        }
    }

    /// A fresh instance in its own store.
    pub fn instantiate(&self) -> Result<Instance, RuleError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .wall_clock(EpochClock)
            .monotonic_clock(EpochClock)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![7; 32]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![7; 32]))
            .insecure_random_seed(7)
            .allow_blocking_current_thread(true)
            .build();
        let host = RuleHost {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: self.memory_bytes, refused: false },
            stderr,
            params: self.params.clone(),
            rule_id: self.rule_id.clone(),
            call: CallCtx::default(),
            log_lines: 0,
            explained: None,
            failed: None,
            name_buffer: String::new(),
            value_buffer: String::new(),
        };
        let engine = match &self.pre {
            Pre::V1(pre) => pre.engine(),
            Pre::V2(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, host);
        store.limiter(|host| &mut host.limiter);
        store.set_fuel(self.fuel).map_err(|e| RuleError::Instantiate(e.to_string()))?;
        let bindings = match &self.pre {
            Pre::V1(pre) => pre.instantiate(&mut store).map(Bindings::V1),
            Pre::V2(pre) => pre.instantiate(&mut store).map(Bindings::V2),
        };
        let bindings = bindings.map_err(|e| classify(e, &store, self.fuel))?;
        Ok(Instance { store, bindings })
    }

    pub fn fuel(&self) -> u64 {
        self.fuel
    }
}

impl Instance {
    /// Whether this instance speaks the first contract, which takes the
    /// transaction as a record ([`Input::Record`]) rather than encoded.
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self.bindings, Bindings::V1(_))
    }

    /// Evaluates one transaction. The account state travels in and out via
    /// `call`; on error the caller discards the instance.
    pub(crate) fn evaluate(
        &mut self,
        tx: Input<'_>,
        call: &mut CallCtx,
        fuel: u64,
    ) -> (Result<Verdict, RuleError>, u64) {
        let host = self.store.data_mut();
        std::mem::swap(&mut host.call, call);
        host.log_lines = 0;
        if let Err(e) = self.store.set_fuel(fuel) {
            std::mem::swap(&mut self.store.data_mut().call, call);
            return (Err(RuleError::Instantiate(e.to_string())), 0);
        }
        let result = match (&self.bindings, tx) {
            (Bindings::V2(rule), Input::Encoded(bytes)) => {
                match rule.weir_rule_evaluator().call_evaluate(&mut self.store, bytes) {
                    Ok(Ok(outcome)) => {
                        let explained = self.store.data_mut().explained.take().unwrap_or_default();
                        Ok(Ok(Verdict::from_v2(outcome, explained)))
                    }
                    Ok(Err(())) => {
                        let why = self.store.data_mut().failed.take();
                        Ok(Err(why.unwrap_or_else(|| "failed without saying why".to_owned())))
                    }
                    Err(e) => Err(e),
                }
            }
            (Bindings::V1(rule), Input::Record(tx)) => {
                rule.weir_rule_evaluator().call_evaluate(&mut self.store, tx).map(|r| r.map(Verdict::from_v1))
            }
            _ => Ok(Err("the host handed the transaction in the wrong contract's form".to_owned())),
        };
        let used = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let host = self.store.data_mut();
        host.explained = None;
        host.failed = None;
        std::mem::swap(&mut host.call, call);
        let result = match result {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(message)) => Err(RuleError::Returned(clean(&message, ERROR_MESSAGE_MAX).into_owned())),
            Err(e) => Err(classify(e, &self.store, fuel)),
        };
        let dropped = self.store.data().log_lines.saturating_sub(MAX_LOG_LINES);
        if dropped > 0 {
            tracing::warn!(rule = %self.store.data().rule_id, dropped, "rule wrote more log lines than allowed; the rest were dropped");
        }
        (result, used)
    }
}

/// The transaction, in the form an instance's contract takes.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// `weir:rule@2`: the wire encoding.
    Encoded(&'a [u8]),
    /// `weir:rule@1.0.0`: the contract's record.
    Record(&'a wit::Transaction),
}

impl Verdict {
    fn from_v2(outcome: wit2::Outcome, explanation: Explanation) -> Verdict {
        use crate::events::RuleOutcome as O;
        let (outcome, score) = match outcome {
            wit2::Outcome::Pass => (O::Pass, 0),
            wit2::Outcome::Score(p) => (O::Score, p),
            wit2::Outcome::Suspect => (O::Suspect, 0),
            wit2::Outcome::Lock => (O::Lock, 0),
        };
        Verdict { outcome, score, explanation }
    }

    fn from_v1(v: wit::Verdict) -> Verdict {
        use crate::events::RuleOutcome as O;
        let (outcome, score) = match v.outcome {
            wit::Outcome::Pass => (O::Pass, 0),
            wit::Outcome::Score(p) => (O::Score, p),
            wit::Outcome::Suspect => (O::Suspect, 0),
            wit::Outcome::Lock => (O::Lock, 0),
        };
        let evidence = v.evidence.into_iter().map(|e| (e.name, e.value)).collect();
        Verdict {
            outcome,
            score,
            explanation: Explanation { reason_code: v.reason_code, message: v.message, evidence },
        }
    }
}

/// Turns a wasmtime error into the rule error a person can act on.
fn classify(err: wasmtime::Error, store: &Store<RuleHost>, fuel: u64) -> RuleError {
    let host = store.data();
    // A Rust panic prints "thread '…' panicked at FILE:LINE:COL:", the
    // message, then a note about backtraces; keep the first two.
    let stderr = String::from_utf8_lossy(&host.stderr.contents()).into_owned();
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note:")).collect();
    let panic = (!lines.is_empty()).then(|| clean(&lines.join(" "), ERROR_MESSAGE_MAX).into_owned());
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => RuleError::OutOfFuel { limit: fuel },
            Trap::StackOverflow => RuleError::StackOverflow,
            _ if host.limiter.refused => RuleError::MemoryLimit { limit_mib: host.limiter.max_bytes / (1024 * 1024) },
            Trap::MemoryOutOfBounds if panic.is_none() => RuleError::Trap {
                trap: trap.to_string(),
                panic: Some("in a Rust rule this is usually deep recursion overflowing the stack".to_owned()),
            },
            other => RuleError::Trap { trap: other.to_string(), panic },
        };
    }
    if host.limiter.refused {
        return RuleError::MemoryLimit { limit_mib: host.limiter.max_bytes / (1024 * 1024) };
    }
    RuleError::Trap { trap: err.to_string(), panic }
}

impl wit::Host for RuleHost {}
impl wit2::Host for RuleHost {}

/// The account functions of a contract's `account` interface: the same
/// state and semantics in both contracts, only `history`'s form differs.
macro_rules! account_host {
    ($interface:path, $history:ty, |$host:ident, $limit:ident| $encode:expr) => {
        impl $interface for RuleHost {
            fn get(&mut self, key: String) -> Option<String> {
                self.call.get(&key)
            }

            fn set(&mut self, key: String, value: String) {
                self.call.set(&key, &value);
            }

            fn remove(&mut self, key: String) {
                self.call.remove(&key)
            }

            fn window_add(&mut self, name: String, value: i64) {
                self.call.window_add(&name, value);
            }

            fn window_sum(&mut self, name: String, window_ms: u64) -> i64 {
                self.call.window_sum(&name, window_ms)
            }

            fn window_count(&mut self, name: String, window_ms: u64) -> u32 {
                self.call.window_count(&name, window_ms)
            }

            fn history(&mut self, $limit: u32) -> $history {
                let $host = &*self;
                $encode
            }
        }
    };
}

account_host!(v1::weir::rule::account::Host, Vec<wit::PastTransaction>, |host, limit| {
    host.call.history.recent(limit).map(past_to_wit).collect()
});

account_host!(v2::weir::rule::account::Host, Vec<u8>, |host, limit| {
    let entries = host.call.history.recent(limit);
    let mut out = Vec::with_capacity(8 + entries.len() * 96);
    weir_sdk::wire::encode_history(&mut out, entries);
    out
});

/// The `params` import of both contracts: the manifest's parameters, copied
/// into each contract's own types.
macro_rules! params_host {
    ($interface:path, $wit:ident) => {
        impl $interface for RuleHost {
            fn all(&mut self) -> Vec<(String, $wit::ParamValue)> {
                self.params
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            ParamValue::Integer(i) => $wit::ParamValue::Integer(*i),
                            ParamValue::Float(f) => $wit::ParamValue::Float(*f),
                            ParamValue::Boolean(b) => $wit::ParamValue::Boolean(*b),
                            ParamValue::Text(s) => $wit::ParamValue::Text(s.clone()),
                            ParamValue::TextList(l) => $wit::ParamValue::TextList(l.clone()),
                        };
                        (k.clone(), v)
                    })
                    .collect()
            }
        }
    };
}

params_host!(v1::weir::rule::params::Host, wit);
params_host!(v2::weir::rule::params::Host, wit2);

impl v2::weir::rule::verdict::Host for RuleHost {
    fn explain(&mut self, reason_code: String, message: String, evidence: Vec<wit2::Evidence>) {
        let evidence = evidence.into_iter().map(|e| (e.name, e.value)).collect();
        self.explained = Some(Explanation { reason_code, message, evidence });
    }

    fn fail(&mut self, message: String) {
        self.failed = Some(message);
    }
}

impl RuleHost {
    fn log_line(&mut self, level: weir_sdk::LogLevel, message: &str) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = clean(message, LOG_LINE_MAX);
        let rule = &*self.rule_id;
        let tx = self.call.transaction_id.as_str();
        match level {
            weir_sdk::LogLevel::Debug => tracing::debug!(rule, transaction_id = tx, "{message}"),
            weir_sdk::LogLevel::Info => tracing::info!(rule, transaction_id = tx, "{message}"),
            weir_sdk::LogLevel::Warn => tracing::warn!(rule, transaction_id = tx, "{message}"),
        }
    }
}

impl v1::weir::rule::log::Host for RuleHost {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        let level = match level {
            wit::LogLevel::Debug => weir_sdk::LogLevel::Debug,
            wit::LogLevel::Info => weir_sdk::LogLevel::Info,
            wit::LogLevel::Warn => weir_sdk::LogLevel::Warn,
        };
        self.log_line(level, &message)
    }
}

impl v2::weir::rule::log::Host for RuleHost {
    fn log(&mut self, level: wit2::LogLevel, message: String) {
        let level = match level {
            wit2::LogLevel::Debug => weir_sdk::LogLevel::Debug,
            wit2::LogLevel::Info => weir_sdk::LogLevel::Info,
            wit2::LogLevel::Warn => weir_sdk::LogLevel::Warn,
        };
        self.log_line(level, &message)
    }
}

pub(crate) fn channel_to_wit(c: weir_sdk::Channel) -> wit::Channel {
    match c {
        weir_sdk::Channel::CardPresent => wit::Channel::CardPresent,
        weir_sdk::Channel::Ecommerce => wit::Channel::Ecommerce,
        weir_sdk::Channel::Transfer => wit::Channel::Transfer,
        weir_sdk::Channel::Atm => wit::Channel::Atm,
    }
}

fn past_to_wit(p: &weir_sdk::PastTransaction) -> wit::PastTransaction {
    wit::PastTransaction {
        transaction_id: p.transaction_id.clone(),
        amount: wit::Money { minor_units: p.amount.minor_units, currency: p.amount.currency.clone() },
        merchant_id: p.merchant_id.clone(),
        category_code: p.category_code.clone(),
        country: p.country.clone(),
        channel: channel_to_wit(p.channel),
        occurred_at_ms: p.occurred_at_ms,
    }
}

/// The transaction as the first contract carries it.
pub(crate) fn transaction_to_wit(
    tx: &crate::events::TransactionRecorded,
    facts: crate::events::HostFacts,
) -> wit::Transaction {
    wit::Transaction {
        event_id: tx.event_id.clone(),
        transaction_id: tx.transaction_id.clone(),
        account_id: tx.account_id.clone(),
        amount: wit::Money { minor_units: tx.amount.minor_units, currency: tx.amount.currency.clone() },
        merchant: wit::Merchant {
            id: tx.merchant.id.clone(),
            name: tx.merchant.name.clone(),
            category_code: tx.merchant.category_code.clone(),
            country: tx.merchant.country.clone(),
        },
        channel: channel_to_wit(tx.channel),
        occurred_at_ms: tx.occurred_at_ms(),
        attributes: tx.rule_attributes(facts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_follow_semver() {
        assert_eq!(contract_of("2.0.0"), Some(Contract::V2));
        assert_eq!(contract_of("1.0.0"), Some(Contract::V1), "rules built with the first SDK still run");
        assert_eq!(contract_of("3.0.0"), None);
        assert_eq!(contract_of("0.9.0"), None);
        assert_eq!(contract_of("1.1.0"), None, "the first contract is frozen at 1.0.0");
        assert_eq!(contract_of("2.1.0"), None, "a newer minor may use imports this host lacks");
        assert_eq!(contract_of("garbage"), None);
    }

    #[test]
    fn binary_kind_is_checked_before_compiling() {
        assert!(matches!(check_binary_kind(b"hello"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_binary_kind(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(check_binary_kind(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
