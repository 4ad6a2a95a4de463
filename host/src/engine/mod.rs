//! The engine: runs every rule on a transaction and combines their
//! verdicts into exactly one decision.
//!
//! - [`Engine`] compiles rule packages ([`LoadedRule`]) — wasm components in
//!   the sandbox ([`wasm`]), or natively compiled rules for benchmarks.
//! - [`RuleSet`] is an immutable, ordered set of loaded rules: one version
//!   of each rule id. Swapping rules means building a new set.
//! - [`Evaluator`] owns one instance per rule and decides transactions, one
//!   at a time, against the account's [`AccountState`]. It is not shared
//!   between threads; each worker has its own.
//! - [`policy`] turns verdicts into the decision type.
//!
//! A rule's failure (trap, fuel, memory, stack, returned error) costs only
//! that rule's verdict: it is recorded in the decision with the failure
//! policy applied, its state changes are discarded, and its instance is
//! recreated for the next transaction.

pub mod cache;
pub mod policy;
pub mod wasm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use weir_sdk::state::{History, Journal, RuleState};
use weir_sdk::{AccountHost, Context, LogLevel, NativeRule, Params};

use crate::events::{
    DecisionEvent, EngineInfo, Evidence, FailurePolicy, HostFacts, InputPosition, RuleMode, RuleOutcome, RuleResult,
    SharedStr, TransactionRecorded, decision_event_id,
};
use crate::manifest::RuleSpec;
use crate::state::{AccountState, Lock};
pub use policy::Policy;

/// Why a rule package was refused. The running rules are unaffected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file ({len} bytes, no `\\0asm` header)")]
    NotWasm { len: usize },
    #[error(
        "a core WebAssembly module, not a component: build the rule for the `wasm32-wasip2` target (`weir rule build`)"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "built for rule contract weir:rule@{found}; this host runs weir:rule@{supported} (and weir:rule@1.0.0, for rules built with the first SDK): rebuild the rule with this weir's SDK"
    )]
    IncompatibleContract { found: String, supported: &'static str },
    #[error("the component does not export `weir:rule/evaluator`, so it is not a weir rule (it exports: {exports:?})")]
    NotARule { exports: Vec<String> },
    #[error("the component imports `{0}`, which weir does not provide to rules")]
    UnsupportedImport(String),
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error("the wasm engine could not start: {0}")]
    Engine(String),
    #[error("two rules have the id `{0}`")]
    DuplicateId(String),
}

/// Why one evaluation of one rule failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("ran out of fuel after {limit} units")]
    OutOfFuel { limit: u64 },
    #[error("exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: usize },
    #[error("overflowed its stack")]
    StackOverflow,
    #[error("trapped: {trap}{}", panic.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Trap { trap: String, panic: Option<String> },
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("returned an explanation over the host's limits: {0}")]
    Verdict(String),
    #[error("went over its state quota: {0}; none of its writes were kept")]
    StateQuota(String),
    #[error("was not run: the transaction's fuel budget ({TRANSACTION_FUEL} units across all rules) was spent")]
    BudgetSpent,
    #[error(
        "is quarantined after {failures} failures in a row (the last: {last}); it is skipped until a new version is deployed"
    )]
    Quarantined { failures: u32, last: String },
}

/// The fuel one transaction may use across all its rules: a rule gets its
/// own budget or what is left of this, whichever is less.
pub const TRANSACTION_FUEL: u64 = 100_000_000;
/// A rule that fails this many evaluations in a row is quarantined:
/// skipped (its failure policy applies) until a new version is deployed.
pub const QUARANTINE_AFTER: u32 = 50;
/// A rule's failures are logged at most once per this long; the log line
/// says how many were not.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Once the explanations of one decision's rules reach this many bytes,
/// later rules' messages and evidence are left out, so every decision fits
/// the output topic's message size (Kafka's default is 1 MB).
pub const DECISION_EXPLANATIONS_MAX: usize = 256 * 1024;

/// The content hash that identifies a rule version: `sha256:<hex>` of the
/// component bytes and the manifest text together, so a parameter change is
/// a new version too.
pub fn content_hash(component: &[u8], manifest: &str) -> String {
    let mut h = Sha256::new();
    h.update((component.len() as u64).to_le_bytes());
    h.update(component);
    h.update(manifest.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

enum Code {
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
    id: SharedStr,
    label: SharedStr,
    /// How its code was obtained (compiled now, or cached).
    pub compilation: Compilation,
    code: Code,
}

impl LoadedRule {
    pub fn is_wasm(&self) -> bool {
        matches!(self.code, Code::Wasm(_))
    }

    fn new(spec: RuleSpec, hash: String, compilation: Compilation, code: Code) -> LoadedRule {
        let (id, label) = (spec.id.as_str().into(), spec.version_label.as_str().into());
        LoadedRule { spec, hash: hash.into(), id, label, compilation, code }
    }
}

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
    pub fn load(&self, spec: RuleSpec, component: &[u8], manifest: &str) -> Result<LoadedRule, LoadError> {
        let (code, compilation) = self.component(component)?;
        let compiled = self.sandbox.prepare(&spec, &code)?;
        // Instantiate once now, so a rule that cannot start is refused at load.
        compiled.instantiate().map_err(|e| LoadError::Link(e.to_string()))?;
        Ok(LoadedRule::new(spec, content_hash(component, manifest), compilation, Code::Wasm(compiled)))
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
        if let Some(cache) = &self.cache {
            let written = wasm::Sandbox::serialize(&component)
                .map_err(std::io::Error::other)
                .and_then(|artifact| cache.write(&digest, &artifact));
            if let Err(e) = written {
                tracing::warn!(dir = %cache.dir().display(), "cannot write to the compile cache: {e}");
            }
        }
        self.components.lock().unwrap_or_else(|e| e.into_inner()).insert(digest, component.clone());
        Ok((component, compilation))
    }

    /// The same rule code with another manifest (parameters, limits, mode):
    /// no recompilation. `manifest` is the new manifest's text.
    pub fn reconfigure(&self, rule: &LoadedRule, spec: RuleSpec, manifest: &str, component: &[u8]) -> LoadedRule {
        let code = match &rule.code {
            Code::Wasm(compiled) => Code::Wasm(compiled.with_spec(&spec)),
            Code::Native { rule, .. } => Code::Native { rule: *rule, params: Params::new(spec.params.clone()) },
        };
        LoadedRule::new(spec, content_hash(component, manifest), Compilation::Memory, code)
    }

    /// A natively compiled rule (benchmarks and tests of the engine itself).
    pub fn native(spec: RuleSpec, rule: NativeRule, version_hash: &str) -> LoadedRule {
        let params = Params::new(spec.params.clone());
        LoadedRule::new(spec, version_hash.to_owned(), Compilation::Native, Code::Native { rule, params })
    }
}

/// An ordered set of rules, one version per id.
#[derive(Clone, Default)]
pub struct RuleSet {
    rules: Vec<Arc<LoadedRule>>,
}

impl RuleSet {
    pub fn new(rules: Vec<LoadedRule>) -> Result<RuleSet, LoadError> {
        RuleSet::from_shared(rules.into_iter().map(Arc::new).collect())
    }

    /// A set of rules that other sets may share (one compiled copy each).
    pub fn from_shared(mut rules: Vec<Arc<LoadedRule>>) -> Result<RuleSet, LoadError> {
        rules.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        if let Some(w) = rules.windows(2).find(|w| w[0].spec.id == w[1].spec.id) {
            return Err(LoadError::DuplicateId(w[0].spec.id.clone()));
        }
        Ok(RuleSet { rules })
    }

    pub fn rules(&self) -> &[Arc<LoadedRule>] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The account state and event time one rule evaluation runs against.
///
/// The rule's own state is moved in and out (no copy); its writes are
/// recorded in a journal, so a failed evaluation is undone at the cost of
/// what it wrote.
#[derive(Default)]
pub(crate) struct CallCtx {
    state: RuleState,
    journal: Journal,
    /// The evaluating rule's state quota, the bytes it has written so far
    /// in this evaluation, and whether a write was refused for the quota.
    quota: weir_sdk::limits::StateQuota,
    written: usize,
    over_quota: bool,
    history: History,
    now_ms: i64,
    /// For log lines; a buffer reused from transaction to transaction.
    transaction_id: String,
}

impl CallCtx {
    fn get(&self, key: &str) -> Option<String> {
        self.state.get(key).map(str::to_owned)
    }

    /// Writes `key`; false (nothing written) once the evaluation has gone
    /// over its state quota.
    fn set(&mut self, key: &str, value: &str) -> bool {
        let ok = self.charge(key.len() + value.len());
        if ok {
            self.state.journaled(&mut self.journal).set(key, value)
        }
        ok
    }

    /// Counts `bytes` written by this evaluation; false (and the write is
    /// refused) once they pass the whole quota, so a rule writing in a loop
    /// cannot make the host hold more than its quota before it is stopped.
    fn charge(&mut self, bytes: usize) -> bool {
        self.written += bytes;
        self.over_quota |= self.written > self.quota.bytes;
        !self.over_quota
    }

    /// Starts an evaluation of a rule with `quota`.
    fn begin(&mut self, quota: weir_sdk::limits::StateQuota) {
        self.quota = quota;
        self.written = 0;
        self.over_quota = false;
    }

    /// Whether the evaluation left the rule's state within its quota.
    fn check_quota(&self) -> Result<(), RuleError> {
        if self.over_quota {
            let quota = self.quota.bytes;
            return Err(RuleError::StateQuota(format!("wrote more than the whole quota of {quota} bytes")));
        }
        if self.journal.is_empty() {
            return Ok(());
        }
        self.quota.check(&self.state).map_err(RuleError::StateQuota)
    }

    fn remove(&mut self, key: &str) {
        self.state.journaled(&mut self.journal).remove(key)
    }

    /// Adds a point; false (nothing added) once the evaluation has gone
    /// over its state quota.
    fn window_add(&mut self, name: &str, value: i64) -> bool {
        let now = self.now_ms;
        let ok = self.charge(name.len() + 16);
        if ok {
            self.state.journaled(&mut self.journal).window_add(now, name, value)
        }
        ok
    }

    /// Window queries may lengthen a series' retention, which is a write.
    fn window_sum(&mut self, name: &str, window_ms: u64) -> i64 {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).window_sum(now, name, window_ms)
    }

    fn window_count(&mut self, name: &str, window_ms: u64) -> u32 {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).window_count(now, name, window_ms)
    }

    /// The rule state to keep — as written on success, as it was on
    /// failure — and whether it changed.
    fn finish(&mut self, ok: bool) -> (RuleState, bool) {
        let changed = ok && !self.journal.is_empty();
        if !ok {
            self.state.undo(&mut self.journal);
        }
        self.journal.clear();
        (std::mem::take(&mut self.state), changed)
    }
}

impl AccountHost for CallCtx {
    fn get(&self, key: &str) -> Option<String> {
        CallCtx::get(self, key)
    }
    fn set(&mut self, key: &str, value: &str) {
        CallCtx::set(self, key, value);
    }
    fn remove(&mut self, key: &str) {
        CallCtx::remove(self, key)
    }
    fn window_add(&mut self, name: &str, value: i64) {
        CallCtx::window_add(self, name, value);
    }
    fn window_sum(&mut self, name: &str, window_ms: u64) -> i64 {
        CallCtx::window_sum(self, name, window_ms)
    }
    fn window_count(&mut self, name: &str, window_ms: u64) -> u32 {
        CallCtx::window_count(self, name, window_ms)
    }
    fn history(&self, limit: u32) -> Vec<weir_sdk::PastTransaction> {
        self.history.recent(limit).cloned().collect()
    }
    fn history_encoded(&self, limit: u32, out: &mut Vec<u8>) {
        weir_sdk::wire::encode_history(out, self.history.recent(limit))
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        let message = weir_sdk::limits::clean(message, weir_sdk::limits::LOG_LINE_MAX);
        let tx = self.transaction_id.as_str();
        match level {
            LogLevel::Debug => tracing::debug!(transaction_id = tx, "{message}"),
            LogLevel::Info => tracing::info!(transaction_id = tx, "{message}"),
            LogLevel::Warn => tracing::warn!(transaction_id = tx, "{message}"),
        }
    }
}

/// Counters per rule, for summaries and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleStats {
    pub invocations: u64,
    /// Verdicts other than pass.
    pub hits: u64,
    /// Evaluations that failed, and transactions the rule was skipped for
    /// while quarantined.
    pub errors: u64,
    pub fuel: u64,
    /// Whether the running version is quarantined ([`QUARANTINE_AFTER`]).
    pub quarantined: bool,
}

struct Slot {
    rule: Arc<LoadedRule>,
    instance: Option<wasm::Instance>,
    stats: RuleStats,
    /// Failed evaluations since the last success, and, once quarantined,
    /// the last one's error.
    failures_in_a_row: u32,
    quarantine: Option<String>,
    /// When a failure of this rule was last logged, and how many were not
    /// logged since.
    warned_at: Option<Instant>,
    unlogged: u64,
    /// Each evaluation's wall time in nanoseconds, when timing is on
    /// ([`Evaluator::time_evaluations`]).
    nanos: Vec<u32>,
}

impl Slot {
    fn new(rule: Arc<LoadedRule>, stats: RuleStats) -> Slot {
        let stats = RuleStats { quarantined: false, ..stats };
        Slot {
            rule,
            instance: None,
            stats,
            failures_in_a_row: 0,
            quarantine: None,
            warned_at: None,
            unlogged: 0,
            nanos: Vec::new(),
        }
    }

    /// Counts a failed evaluation: logs it (at most once per
    /// [`WARN_EVERY`]) and quarantines the rule after [`QUARANTINE_AFTER`]
    /// in a row.
    fn failed(&mut self, error: &RuleError, transaction_id: &str, log: bool) {
        self.stats.errors += 1;
        if matches!(error, RuleError::Quarantined { .. }) {
            return;
        }
        self.failures_in_a_row += 1;
        let rule = &self.rule.spec;
        let now = Instant::now();
        if !log {
            // Counted, not logged.
        } else if self.warned_at.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
            let unlogged = std::mem::take(&mut self.unlogged);
            tracing::warn!(rule = %rule.id, version = %rule.version_label, transaction_id, unlogged, "rule {error}; failure policy {:?} applied", rule.failure);
            self.warned_at = Some(now);
        } else {
            self.unlogged += 1;
        }
        if self.failures_in_a_row >= QUARANTINE_AFTER && log {
            tracing::error!(rule = %rule.id, version = %rule.version_label, failures = self.failures_in_a_row, "rule quarantined: it failed {QUARANTINE_AFTER} evaluations in a row (the last: {error}); it is skipped, with failure policy {:?}, until a new version is deployed", rule.failure);
            self.quarantine = Some(error.to_string());
            self.stats.quarantined = true;
            self.instance = None;
        }
    }
}

/// Decides transactions with one rule set. One per worker thread.
pub struct Evaluator {
    slots: Vec<Slot>,
    policy: Policy,
    /// Reused from transaction to transaction, so deciding allocates
    /// nothing for them once they have grown.
    call: CallCtx,
    inputs: Inputs,
    /// Every how many transactions the rules' evaluation times are kept (0:
    /// never; 1: always, for backtests), and transactions decided so far.
    sample_every: u32,
    tick: u32,
    /// Whether rule failures are logged and may quarantine a rule (not for
    /// self-test cases, whose failures are expected and reported by the
    /// case runner).
    log_failures: bool,
}

/// The transaction in each form a rule may take it, built at most once per
/// transaction, and only if a rule needs that form.
#[derive(Default)]
struct Inputs {
    /// `weir:rule@2`: the wire encoding.
    encoded: Vec<u8>,
    encoded_ready: bool,
    /// `weir:rule@1.0.0`: the contract's record.
    record: Option<wasm::wit::Transaction>,
    /// Native rules: the SDK's type.
    sdk: Option<weir_sdk::Transaction>,
}

impl Inputs {
    fn clear(&mut self) {
        self.encoded.clear();
        self.encoded_ready = false;
        self.record = None;
        self.sdk = None;
    }

    fn encoded(&mut self, tx: &TransactionRecorded, facts: HostFacts) -> &[u8] {
        if !self.encoded_ready {
            tx.encode_for_rules(facts, &mut self.encoded);
            self.encoded_ready = true;
        }
        &self.encoded
    }
}

impl Evaluator {
    pub fn new(rules: &RuleSet, policy: Policy) -> Evaluator {
        let slots = rules.rules().iter().map(|r| Slot::new(r.clone(), RuleStats::default()));
        Evaluator {
            slots: slots.collect(),
            policy,
            call: CallCtx::default(),
            inputs: Inputs::default(),
            sample_every: 0,
            tick: 0,
            log_failures: true,
        }
    }

    /// Switches to another rule set between two transactions. Rules whose
    /// version (content hash) is unchanged keep their live instance; every
    /// rule id keeps its counters. What the set no longer has is retired.
    pub fn swap(&mut self, rules: &RuleSet) {
        let mut old: HashMap<String, Slot> = self.slots.drain(..).map(|s| (s.rule.spec.id.clone(), s)).collect();
        self.slots = rules
            .rules()
            .iter()
            .map(|r| match old.remove(&r.spec.id) {
                Some(slot) if slot.rule.hash == r.hash => Slot { rule: r.clone(), ..slot },
                Some(slot) => Slot::new(r.clone(), slot.stats),
                None => Slot::new(r.clone(), RuleStats::default()),
            })
            .collect();
    }

    /// The rule versions this evaluator runs: (id, content hash).
    pub fn versions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots.iter().map(|s| (s.rule.spec.id.as_str(), &*s.rule.hash))
    }

    /// For self-test cases: rule failures are neither logged nor counted
    /// towards quarantine; the caller reports them itself.
    pub fn quiet(&mut self) {
        self.log_failures = false;
    }

    /// Keeps each evaluation's wall time from now on (see
    /// [`Evaluator::timings`]); off in the pipelines.
    pub fn time_evaluations(&mut self) {
        self.sample_every = 1;
    }

    /// Keeps the evaluation times of one transaction in `every`, for the
    /// metrics ([`Evaluator::drain_timings`]).
    pub fn sample_evaluations(&mut self, every: u32) {
        self.sample_every = every;
    }

    /// Hands each rule's kept evaluation times to `f`, then forgets them.
    pub fn drain_timings(&mut self, mut f: impl FnMut(&str, &[u32])) {
        for slot in &mut self.slots {
            if !slot.nanos.is_empty() {
                f(&slot.rule.spec.id, &slot.nanos);
                slot.nanos.clear();
            }
        }
    }

    /// Each rule's evaluation times in nanoseconds, in order, while timing
    /// was on: (rule id, times).
    pub fn timings(&self) -> impl Iterator<Item = (&str, &[u32])> {
        self.slots.iter().map(|s| (s.rule.spec.id.as_str(), s.nanos.as_slice()))
    }

    /// The rules this evaluator runs, in order.
    pub fn rules(&self) -> impl Iterator<Item = &LoadedRule> {
        self.slots.iter().map(|s| &*s.rule)
    }

    /// Per-rule counters since this evaluator started: (rule id, stats).
    pub fn stats(&self) -> impl Iterator<Item = (&str, &RuleStats)> {
        self.slots.iter().map(|s| (s.rule.spec.id.as_str(), &s.stats))
    }

    /// Runs every rule on `tx` and returns its one decision. Updates the
    /// account's state (rule state, history, lock) in place.
    pub fn decide(
        &mut self,
        tx: &TransactionRecorded,
        account: &mut AccountState,
        input: InputPosition,
    ) -> DecisionEvent {
        let now_ms = tx.occurred_at_ms();
        let Evaluator { slots, policy, call, inputs, sample_every, tick, log_failures } = self;
        let timing = *sample_every != 0 && {
            *tick = tick.wrapping_add(1);
            *tick % *sample_every == 0
        };
        call.history = std::mem::take(&mut account.history);
        call.now_ms = now_ms;
        call.transaction_id.clear();
        call.transaction_id.push_str(&tx.transaction_id);
        inputs.clear();
        let facts = account.facts(tx);
        let mut results = Vec::with_capacity(slots.len());
        let mut fuel_left = TRANSACTION_FUEL;
        let mut explained = 0usize;
        for slot in slots.iter_mut() {
            let rule = &*slot.rule;
            let mut slot_state = account.rules.get_mut(&rule.spec.id);
            call.state = slot_state.as_deref_mut().map(std::mem::take).unwrap_or_default();
            call.begin(rule.spec.state_quota);
            let started = timing.then(Instant::now);
            let (verdict, fuel) = match &rule.code {
                _ if slot.quarantine.is_some() => {
                    let last = slot.quarantine.clone().unwrap_or_default();
                    (Err(RuleError::Quarantined { failures: slot.failures_in_a_row, last }), 0)
                }
                Code::Wasm(_) if fuel_left == 0 => (Err(RuleError::BudgetSpent), 0),
                Code::Wasm(compiled) => {
                    let fuel = compiled.fuel().min(fuel_left);
                    evaluate_wasm(compiled, &mut slot.instance, tx, facts, inputs, call, fuel)
                }
                Code::Native { rule: native, params } => {
                    let sdk_tx = inputs.sdk.get_or_insert_with(|| tx.to_rule_transaction(facts));
                    let mut ctx = Context::native(call, params, now_ms);
                    let verdict = (native.evaluate)(sdk_tx, &mut ctx).map(Verdict::from_sdk).map_err(|e| {
                        RuleError::Returned(
                            weir_sdk::limits::clean(e.message(), weir_sdk::limits::ERROR_MESSAGE_MAX).into_owned(),
                        )
                    });
                    (verdict, 0)
                }
            };
            if let Some(started) = started {
                slot.nanos.push(u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX));
            }
            fuel_left = fuel_left.saturating_sub(fuel);
            // Going over the quota is the error even if the rule then
            // trapped on the refused write.
            let verdict = call.check_quota().and(verdict).and_then(|v| v.check().map(|()| v));
            let (state, changed) = call.finish(verdict.is_ok());
            match slot_state {
                Some(slot_state) => *slot_state = state,
                None if !state.is_empty() => {
                    account.rules.insert(rule.spec.id.clone(), state);
                }
                None => {}
            }
            if changed {
                account.rule_changed(&rule.spec.id);
            }
            slot.stats.invocations += 1;
            slot.stats.fuel += fuel;
            match &verdict {
                Err(e) => slot.failed(e, &tx.transaction_id, *log_failures),
                Ok(v) => {
                    slot.failures_in_a_row = 0;
                    slot.stats.hits += u64::from(v.outcome != RuleOutcome::Pass);
                }
            }
            let mut result = rule_result(&slot.rule, verdict);
            explained += result.reason_code.len() + result.message.len() + result.error.as_ref().map_or(0, String::len);
            explained += result.evidence.iter().map(|e| e.name.len() + e.value.len()).sum::<usize>();
            if explained > DECISION_EXPLANATIONS_MAX {
                result.message = "(left out: this decision's explanations reached their size limit)".to_owned();
                result.evidence = Vec::new();
            }
            results.push(result);
        }
        account.history = std::mem::take(&mut call.history);
        account.record_history(tx.to_past());

        let combined = policy.combine(&results, account.lock.as_ref());
        if combined.event_type == crate::events::DecisionType::AccountLocked {
            account.set_lock(Lock {
                transaction_id: tx.transaction_id.clone(),
                occurred_at_ms: now_ms,
                reason: combined.reason.clone().unwrap_or_default(),
            });
        }
        DecisionEvent {
            event_id: decision_event_id(&tx.event_id),
            event_type: combined.event_type,
            schema_version: crate::events::DECISION_SCHEMA_VERSION,
            occurred_at: tx.occurred_at,
            causation_id: tx.event_id.clone(),
            transaction_id: tx.transaction_id.clone(),
            account_id: tx.account_id.clone(),
            amount: tx.amount.clone(),
            merchant_id: tx.merchant.id.clone(),
            score: combined.score,
            reason: combined.reason,
            rules: results,
            engine: EngineInfo::current(),
            input,
        }
    }
}

fn evaluate_wasm(
    compiled: &wasm::Compiled,
    instance: &mut Option<wasm::Instance>,
    tx: &TransactionRecorded,
    facts: HostFacts,
    inputs: &mut Inputs,
    call: &mut CallCtx,
    fuel: u64,
) -> (Result<Verdict, RuleError>, u64) {
    let live = match instance {
        Some(live) => live,
        None => match compiled.instantiate() {
            Ok(fresh) => instance.insert(fresh),
            Err(e) => return (Err(e), 0),
        },
    };
    let input = if live.is_legacy() {
        wasm::Input::Record(inputs.record.get_or_insert_with(|| wasm::transaction_to_wit(tx, facts)))
    } else {
        wasm::Input::Encoded(inputs.encoded(tx, facts))
    };
    let (result, fuel) = live.evaluate(input, call, fuel);
    if result.as_ref().is_err_and(|e| !matches!(e, RuleError::Returned(_))) {
        // A trapped instance is poisoned: start the next evaluation afresh.
        *instance = None;
    }
    (result, fuel)
}

/// A rule's verdict in the host's terms, from any backend.
pub(crate) struct Verdict {
    pub outcome: RuleOutcome,
    pub score: u32,
    pub explanation: Explanation,
}

/// A verdict's reason code, message and evidence.
#[derive(Debug, Default)]
pub(crate) struct Explanation {
    pub reason_code: String,
    pub message: String,
    pub evidence: Vec<(String, String)>,
}

impl Verdict {
    /// Checks the explanation against the host's limits
    /// ([`weir_sdk::limits`]).
    fn check(&self) -> Result<(), RuleError> {
        let e = &self.explanation;
        let evidence = e.evidence.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        weir_sdk::limits::check_verdict(&e.reason_code, &e.message, evidence).map_err(RuleError::Verdict)
    }

    fn from_sdk(v: weir_sdk::Verdict) -> Verdict {
        let (outcome, score) = match v.outcome {
            weir_sdk::Outcome::Pass => (RuleOutcome::Pass, 0),
            weir_sdk::Outcome::Score(p) => (RuleOutcome::Score, p),
            weir_sdk::Outcome::Suspect => (RuleOutcome::Suspect, 0),
            weir_sdk::Outcome::Lock => (RuleOutcome::Lock, 0),
        };
        let evidence = v.evidence.into_iter().map(|e| (e.name, e.value)).collect();
        Verdict {
            outcome,
            score,
            explanation: Explanation { reason_code: v.reason_code, message: v.message, evidence },
        }
    }
}

fn rule_result(rule: &LoadedRule, verdict: Result<Verdict, RuleError>) -> RuleResult {
    let base = RuleResult {
        rule_id: rule.id.clone(),
        rule_version: rule.hash.clone(),
        version_label: rule.label.clone(),
        mode: rule.spec.mode,
        outcome: RuleOutcome::Pass,
        score: 0,
        reason_code: String::new(),
        message: String::new(),
        evidence: Vec::new(),
        error: None,
        failure_policy: None,
    };
    match verdict {
        Ok(v) => RuleResult {
            outcome: v.outcome,
            score: v.score,
            reason_code: v.explanation.reason_code,
            message: v.explanation.message,
            evidence: v.explanation.evidence.into_iter().map(|(name, value)| Evidence { name, value }).collect(),
            ..base
        },
        Err(e) => RuleResult {
            outcome: RuleOutcome::Error,
            reason_code: match rule.spec.failure {
                FailurePolicy::FailOpen => String::new(),
                FailurePolicy::FailClosed => "RULE_FAILED".to_owned(),
            },
            error: Some(e.to_string()),
            failure_policy: Some(rule.spec.failure),
            ..base
        },
    }
}

/// Whether a result counts towards the decision.
pub(crate) fn enforced(r: &RuleResult) -> bool {
    r.mode == RuleMode::Enforce
}
