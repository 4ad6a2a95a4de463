//! What each rule instance's [`wasmtime::Store`] holds ([`RuleHost`]):
//! WASI with nothing granted, the memory cap, the captured stderr, and
//! what the contract's imports act on; and how a failure in that store is
//! told apart ([`RuleHost::classify`]).
//!
//! WASI is linked because Rust's standard library imports it, but grants
//! nothing: no preopened directories, environment, arguments, network or
//! stdin; a fixed clock at the Unix epoch and fixed "random" bytes, so a
//! rule that reaches for them stays deterministic. stderr is kept (a few
//! KiB) so a panic's message can be reported.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_sdk::ParamValue;
use weir_sdk::limits::{ERROR_MESSAGE_MAX, clean};

use crate::engine::RuleError;
use crate::engine::call::CallCtx;
use crate::engine::verdict::Explanation;

/// How much of a rule's stderr (panic messages) is kept per instance.
const STDERR_CAPTURE: usize = 4 * 1024;

/// The store data: what the contract's imports act on.
pub(crate) struct RuleHost {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    pub(super) params: Arc<[(String, ParamValue)]>,
    pub(super) rule_id: Arc<str>,
    /// The account state of the transaction being evaluated, boxed so
    /// lending it in and out of an evaluation swaps a pointer.
    pub(super) call: Box<CallCtx>,
    pub(super) log_lines: u32,
    /// What a `weir:rule@2` rule said through `verdict.explain` or
    /// `verdict.fail` during the evaluation.
    pub(super) explained: Option<Explanation>,
    pub(super) failed: Option<String>,
    /// A name and a value read from the guest's memory
    /// ([`super::imports`]).
    pub(super) name_buffer: String,
    pub(super) value_buffer: String,
    /// The package's model, for the `model` import; whether this instance
    /// has had its load grant, and the fuel granted in this evaluation.
    pub(super) model: Option<Arc<[u8]>>,
    pub(super) model_fuel: u64,
    pub(super) model_granted: bool,
    pub(super) granted: u64,
    /// Whether `model.recording` says yes, and the row and score the rule
    /// handed over by `model.scored` in this evaluation.
    pub(super) recording: bool,
    pub(super) scored: Option<Scored>,
}

/// A row of features a model rule scored, and the model's score (none
/// without a model): what `model.scored` hands the host.
pub type Scored = (Vec<f32>, Option<f32>);

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

impl RuleHost {
    /// The data of a fresh store for the rule `rule_id`, with its
    /// parameters and a memory cap of `memory_bytes`.
    pub(super) fn new(params: Arc<[(String, ParamValue)]>, rule_id: Arc<str>, memory_bytes: usize) -> RuleHost {
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
        RuleHost {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: memory_bytes, refused: false },
            stderr,
            params,
            rule_id,
            call: Box::default(),
            log_lines: 0,
            explained: None,
            failed: None,
            name_buffer: String::new(),
            value_buffer: String::new(),
            model: None,
            model_fuel: 0,
            model_granted: false,
            granted: 0,
            recording: false,
            scored: None,
        }
    }

    /// Turns a wasmtime error in this store into the rule error a person
    /// can act on; `fuel` is what the evaluation was given.
    pub(super) fn classify(&self, err: wasmtime::Error, fuel: u64) -> RuleError {
        // A Rust panic prints "thread '…' panicked at FILE:LINE:COL:", the
        // message, then a note about backtraces; keep the first two.
        let stderr = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let lines: Vec<&str> =
            stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note:")).collect();
        let panic = (!lines.is_empty()).then(|| clean(&lines.join(" "), ERROR_MESSAGE_MAX).into_owned());
        let memory_limit = || RuleError::MemoryLimit { limit_mib: self.limiter.max_bytes / (1024 * 1024) };
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return match trap {
                Trap::OutOfFuel => RuleError::OutOfFuel { limit: fuel },
                Trap::StackOverflow => RuleError::StackOverflow,
                _ if self.limiter.refused => memory_limit(),
                Trap::MemoryOutOfBounds if panic.is_none() => RuleError::Trap {
                    trap: trap.to_string(),
                    panic: Some("in a Rust rule this is usually deep recursion overflowing the stack".to_owned()),
                },
                other => RuleError::Trap { trap: other.to_string(), panic },
            };
        }
        if self.limiter.refused {
            return memory_limit();
        }
        // A host function's error (a refused import call): its own message,
        // not wasmtime's backtrace around it.
        RuleError::Trap { trap: clean(&err.root_cause().to_string(), ERROR_MESSAGE_MAX).into_owned(), panic }
    }
}

/// A fresh store for `host`, with its memory cap and `fuel`.
pub(super) fn store(engine: &wasmtime::Engine, host: RuleHost, fuel: u64) -> wasmtime::Result<Store<RuleHost>> {
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.limiter);
    store.set_fuel(fuel)?;
    Ok(store)
}
