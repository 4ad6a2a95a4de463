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

pub mod policy;
pub mod wasm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
}

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
/// [`Engine::with_cache_dir`], on disk, so a restart does not recompile.
pub struct Engine {
    sandbox: wasm::Sandbox,
    components: Mutex<HashMap<String, wasmtime::component::Component>>,
    cache_dir: Option<PathBuf>,
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
    /// Not wasm (a native rule).
    Native,
}

impl std::fmt::Display for Compilation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compilation::Fresh(d) => write!(f, "compiled in {} ms", d.as_millis()),
            Compilation::Memory => f.write_str("already compiled"),
            Compilation::Disk(d) => write!(f, "read from the compile cache in {} ms", d.as_millis()),
            Compilation::Native => f.write_str("native"),
        }
    }
}

impl Engine {
    pub fn new() -> Result<Engine, LoadError> {
        Ok(Engine { sandbox: wasm::Sandbox::new()?, components: Mutex::default(), cache_dir: None })
    }

    /// Also keeps compiled components in `dir` (created if missing).
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Engine {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), "the compile cache is off: cannot create its directory: {e}");
            return self;
        }
        self.cache_dir = Some(dir);
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
        let file = self.cache_dir.as_ref().map(|d| d.join(format!("{digest}.cwasm")));
        let (component, compilation) = match file.as_deref().and_then(|f| self.sandbox.load_compiled(f)) {
            Some(c) => (c, Compilation::Disk(started.elapsed())),
            None => {
                let c = self.sandbox.compile(bytes)?;
                let took = started.elapsed();
                if let Some(file) = &file
                    && let Err(e) = write_atomically(file, &c)
                {
                    tracing::warn!(file = %file.display(), "cannot write to the compile cache: {e}");
                }
                (c, Compilation::Fresh(took))
            }
        };
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

/// Writes a serialized component next to `file` and renames it into place,
/// so a reader never sees half a file.
fn write_atomically(file: &Path, component: &wasmtime::component::Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
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
    history: History,
    now_ms: i64,
    /// For log lines; a buffer reused from transaction to transaction.
    transaction_id: String,
}

impl CallCtx {
    fn get(&self, key: &str) -> Option<String> {
        self.state.get(key).map(str::to_owned)
    }

    fn set(&mut self, key: &str, value: &str) {
        self.state.journaled(&mut self.journal).set(key, value)
    }

    fn remove(&mut self, key: &str) {
        self.state.journaled(&mut self.journal).remove(key)
    }

    fn window_add(&mut self, name: &str, value: i64) {
        let now = self.now_ms;
        self.state.journaled(&mut self.journal).window_add(now, name, value)
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
        CallCtx::set(self, key, value)
    }
    fn remove(&mut self, key: &str) {
        CallCtx::remove(self, key)
    }
    fn window_add(&mut self, name: &str, value: i64) {
        CallCtx::window_add(self, name, value)
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
    pub errors: u64,
    pub fuel: u64,
}

struct Slot {
    rule: Arc<LoadedRule>,
    instance: Option<wasm::Instance>,
    stats: RuleStats,
}

/// Decides transactions with one rule set. One per worker thread.
pub struct Evaluator {
    slots: Vec<Slot>,
    policy: Policy,
    /// Reused from transaction to transaction, so deciding allocates
    /// nothing for them once they have grown.
    call: CallCtx,
    inputs: Inputs,
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
        let slots = rules.rules().iter().map(|r| Slot { rule: r.clone(), instance: None, stats: RuleStats::default() });
        Evaluator { slots: slots.collect(), policy, call: CallCtx::default(), inputs: Inputs::default() }
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
                Some(slot) => Slot { rule: r.clone(), instance: None, stats: slot.stats },
                None => Slot { rule: r.clone(), instance: None, stats: RuleStats::default() },
            })
            .collect();
    }

    /// The rule versions this evaluator runs: (id, content hash).
    pub fn versions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots.iter().map(|s| (s.rule.spec.id.as_str(), &*s.rule.hash))
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
        let Evaluator { slots, policy, call, inputs } = self;
        call.history = std::mem::take(&mut account.history);
        call.now_ms = now_ms;
        call.transaction_id.clear();
        call.transaction_id.push_str(&tx.transaction_id);
        inputs.clear();
        let facts = account.facts(tx);
        let mut results = Vec::with_capacity(slots.len());
        for slot in slots.iter_mut() {
            let rule = &*slot.rule;
            let mut slot_state = account.rules.get_mut(&rule.spec.id);
            call.state = slot_state.as_deref_mut().map(std::mem::take).unwrap_or_default();
            let (verdict, fuel) = match &rule.code {
                Code::Wasm(compiled) => evaluate_wasm(compiled, &mut slot.instance, tx, facts, inputs, call),
                Code::Native { rule: native, params } => {
                    let sdk_tx = inputs.sdk.get_or_insert_with(|| tx.to_rule_transaction(facts));
                    let mut ctx = Context::native(call, params, now_ms);
                    let verdict = (native.evaluate)(sdk_tx, &mut ctx)
                        .map(Verdict::from_sdk)
                        .map_err(|e| RuleError::Returned(e.message().to_owned()));
                    (verdict, 0)
                }
            };
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
            if let Err(e) = &verdict {
                slot.stats.errors += 1;
                tracing::warn!(rule = %rule.spec.id, version = %rule.spec.version_label, transaction_id = %tx.transaction_id, "rule {e}; failure policy {:?} applied", rule.spec.failure);
            } else if verdict.as_ref().is_ok_and(|v| v.outcome != RuleOutcome::Pass) {
                slot.stats.hits += 1;
            }
            results.push(rule_result(rule, verdict));
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
    let (result, fuel) = live.evaluate(input, call, compiled.fuel());
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
