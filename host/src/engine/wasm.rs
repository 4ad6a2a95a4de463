//! The wasm sandbox: compiling, checking, instantiating and calling rule
//! components with wasmtime.
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

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_sdk::ParamValue;

use super::{CallCtx, LoadError, RuleError};
use crate::manifest::RuleSpec;

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "rule",
});

pub(crate) use self::weir::rule::types as wit;

/// The contract this host implements: `weir:rule@CONTRACT_VERSION`.
pub const CONTRACT_VERSION: &str = weir_sdk::CONTRACT_VERSION;
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

/// A compiled, checked component, ready to instantiate.
pub struct Compiled {
    pre: RulePre<RuleHost>,
    params: Arc<[(String, wit::ParamValue)]>,
    fuel: u64,
    memory_bytes: usize,
    rule_id: Arc<str>,
}

/// One live instance of a rule, in its own store.
pub struct Instance {
    store: Store<RuleHost>,
    bindings: Rule,
}

/// The store data: what the contract's imports act on.
pub(crate) struct RuleHost {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    params: Arc<[(String, wit::ParamValue)]>,
    rule_id: Arc<str>,
    /// The account state of the transaction being evaluated.
    call: CallCtx,
    log_lines: u32,
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
        let engine = wasmtime::Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;
        Rule::add_to_linker::<RuleHost, HasSelf<RuleHost>>(&mut linker, |host| host)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
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
    /// [`Component::serialize`]; `None` if the file is missing or was made
    /// by another wasmtime or configuration (then it is compiled afresh).
    pub fn load_compiled(&self, path: &std::path::Path) -> Option<Component> {
        // Read into memory rather than mapped: a file changed on disk later
        // cannot pull code from under a running rule.
        let bytes = std::fs::read(path).ok()?;
        // SAFETY: the cache directory is the host's own: it holds only
        // artifacts weir serialized, named by the component's digest, and
        // written by rename. wasmtime checks the header, its version and
        // the engine configuration before using them.
        let component = unsafe { Component::deserialize(&self.engine, bytes) }.ok()?;
        self.check_contract(&component).ok()?;
        Some(component)
    }

    /// Links a checked component and applies a manifest's limits and
    /// parameters.
    pub fn prepare(&self, spec: &RuleSpec, component: &Component) -> Result<Compiled, LoadError> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| LoadError::Link(format!("{e}")))?;
        let pre = RulePre::new(pre).map_err(|e| LoadError::Link(format!("{e}")))?;
        Ok(Compiled { pre, params: Arc::from([]), fuel: 0, memory_bytes: 0, rule_id: Arc::from("") }.with_spec(spec))
    }

    /// Refuses a component built for another contract version, or one that
    /// imports something the host does not provide, naming what it found.
    fn check_contract(&self, component: &Component) -> Result<(), LoadError> {
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
        if !compatible(&found) {
            return Err(LoadError::IncompatibleContract { found, supported: CONTRACT_VERSION });
        }
        for (name, _) in ty.imports(&self.engine) {
            if let Some(rest) = name.strip_prefix("weir:rule/") {
                let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
                if !compatible(version) {
                    return Err(LoadError::IncompatibleContract {
                        found: version.to_owned(),
                        supported: CONTRACT_VERSION,
                    });
                }
            } else if !name.starts_with("wasi:") {
                return Err(LoadError::UnsupportedImport(name.to_owned()));
            }
        }
        Ok(())
    }
}

/// `found` is compatible with [`CONTRACT_VERSION`]: same major, or for a
/// 0.x contract the same minor; and not newer than the host.
fn compatible(found: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split(['.', '-', '+']).map(str::parse::<u64>);
        Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    };
    match (parse(found), parse(CONTRACT_VERSION)) {
        (Some(f), Some(h)) => f.0 == h.0 && (h.0 != 0 || f.1 == h.1) && f <= h,
        _ => false,
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

fn to_wit_param(v: &ParamValue) -> wit::ParamValue {
    match v {
        ParamValue::Integer(i) => wit::ParamValue::Integer(*i),
        ParamValue::Float(f) => wit::ParamValue::Float(*f),
        ParamValue::Boolean(b) => wit::ParamValue::Boolean(*b),
        ParamValue::Text(s) => wit::ParamValue::Text(s.clone()),
        ParamValue::TextList(l) => wit::ParamValue::TextList(l.clone()),
    }
}

impl Compiled {
    /// The same compiled component with another manifest's limits and
    /// parameters: no recompilation.
    pub(crate) fn with_spec(&self, spec: &RuleSpec) -> Compiled {
        Compiled {
            pre: self.pre.clone(),
            params: spec.params.iter().map(|(k, v)| (k.clone(), to_wit_param(v))).collect(),
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
        };
        let mut store = Store::new(self.pre.engine(), host);
        store.limiter(|host| &mut host.limiter);
        store.set_fuel(self.fuel).map_err(|e| RuleError::Instantiate(e.to_string()))?;
        let bindings = self.pre.instantiate(&mut store).map_err(|e| classify(e, &store, self.fuel))?;
        Ok(Instance { store, bindings })
    }

    pub fn fuel(&self) -> u64 {
        self.fuel
    }
}

impl Instance {
    /// Evaluates one transaction. The account state travels in and out via
    /// `call`; on error the caller discards the instance.
    pub(crate) fn evaluate(
        &mut self,
        tx: &wit::Transaction,
        call: &mut CallCtx,
        fuel: u64,
    ) -> (Result<wit::Verdict, RuleError>, u64) {
        let host = self.store.data_mut();
        std::mem::swap(&mut host.call, call);
        host.log_lines = 0;
        if let Err(e) = self.store.set_fuel(fuel) {
            std::mem::swap(&mut self.store.data_mut().call, call);
            return (Err(RuleError::Instantiate(e.to_string())), 0);
        }
        let result = self.bindings.weir_rule_evaluator().call_evaluate(&mut self.store, tx);
        let used = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        std::mem::swap(&mut self.store.data_mut().call, call);
        let result = match result {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(message)) => Err(RuleError::Returned(message)),
            Err(e) => Err(classify(e, &self.store, fuel)),
        };
        let dropped = self.store.data().log_lines.saturating_sub(MAX_LOG_LINES);
        if dropped > 0 {
            tracing::warn!(rule = %self.store.data().rule_id, dropped, "rule wrote more log lines than allowed; the rest were dropped");
        }
        (result, used)
    }
}

/// Turns a wasmtime error into the rule error a person can act on.
fn classify(err: wasmtime::Error, store: &Store<RuleHost>, fuel: u64) -> RuleError {
    let host = store.data();
    // A Rust panic prints "thread '…' panicked at FILE:LINE:COL:", the
    // message, then a note about backtraces; keep the first two.
    let stderr = String::from_utf8_lossy(&host.stderr.contents()).into_owned();
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note:")).collect();
    let panic = (!lines.is_empty()).then(|| lines.join(" "));
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

impl self::weir::rule::types::Host for RuleHost {}

impl self::weir::rule::account::Host for RuleHost {
    fn get(&mut self, key: String) -> Option<String> {
        self.call.state().get(&key).map(str::to_owned)
    }

    fn set(&mut self, key: String, value: String) {
        self.call.state_mut().set(&key, &value)
    }

    fn remove(&mut self, key: String) {
        self.call.state_mut().remove(&key)
    }

    fn window_add(&mut self, name: String, value: i64) {
        let now = self.call.now_ms;
        self.call.state_mut().window_add(now, &name, value)
    }

    fn window_sum(&mut self, name: String, window_ms: u64) -> i64 {
        let now = self.call.now_ms;
        self.call.state_for_query().window_sum(now, &name, window_ms)
    }

    fn window_count(&mut self, name: String, window_ms: u64) -> u32 {
        let now = self.call.now_ms;
        self.call.state_for_query().window_count(now, &name, window_ms)
    }

    fn history(&mut self, limit: u32) -> Vec<wit::PastTransaction> {
        self.call.history.recent(limit).map(past_to_wit).collect()
    }
}

impl self::weir::rule::params::Host for RuleHost {
    fn all(&mut self) -> Vec<(String, wit::ParamValue)> {
        self.params.to_vec()
    }
}

impl self::weir::rule::log::Host for RuleHost {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let rule = &*self.rule_id;
        let tx = &*self.call.transaction_id;
        match level {
            wit::LogLevel::Debug => tracing::debug!(rule, transaction_id = tx, "{message}"),
            wit::LogLevel::Info => tracing::info!(rule, transaction_id = tx, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(rule, transaction_id = tx, "{message}"),
        }
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

/// The transaction as the contract carries it.
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
        assert!(compatible("1.0.0"));
        assert!(!compatible("2.0.0"));
        assert!(!compatible("0.9.0"));
        assert!(!compatible("1.1.0"), "a newer minor may use imports this host lacks");
        assert!(!compatible("garbage"));
    }

    #[test]
    fn binary_kind_is_checked_before_compiling() {
        assert!(matches!(check_binary_kind(b"hello"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_binary_kind(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(check_binary_kind(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
