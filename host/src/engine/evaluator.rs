//! [`Evaluator`]: decides transactions with one rule set, one transaction
//! at a time, against the account's state. One per worker thread, never
//! shared, so deciding takes no lock.
//!
//! A decision is a pass over the rules in order ([`Pass`]): each rule is
//! lent its state, run within what is left of the transaction's fuel, its
//! writes kept or undone, its outcome counted and its result recorded; then
//! the policy combines the results into the one decision.
//!
//! Entity rules (a manifest's `rule.entity`) run first, in a pass of their
//! own per entity kind against that entity's state
//! ([`Evaluator::decide_entity`]), with a fuel budget of their own and no
//! account facts, as they would in a stage that holds the entity and not
//! the account; their results wait in the evaluator until the account's
//! pass ([`Evaluator::decide`]) puts them in their place among the rules. This is the hot
//! path: the buffers it needs live in the evaluator and are reused from
//! transaction to transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use weir_sdk::Context;

use super::call::CallCtx;
use super::inputs::Inputs;
use super::policy::Combined;
use super::rule::Code;
use super::slot::Slot;
use super::verdict::{Verdict, limit_explanations, rule_result};
use super::{LoadedRule, Policy, RuleError, RuleSet, RuleStats, wasm};
use crate::events::{
    DecisionEvent, DecisionType, EngineInfo, HostFacts, InputPosition, RuleResult, TransactionRecorded,
    decision_event_id,
};
use crate::lists::ListSet;
use crate::state::{AccountState, Lock};
use weir_sdk::Entity;

/// The fuel one transaction may use across all its rules: a rule gets its
/// own budget or what is left of this, whichever is less. Four rules at
/// their maximum ([`crate::manifest::MAX_FUEL`]); the shipped rules use
/// about 16 000 together.
pub const TRANSACTION_FUEL: u64 = 20_000_000;

/// Decides transactions with one rule set. One per worker thread.
pub struct Evaluator {
    slots: Vec<Slot>,
    policy: Policy,
    /// Reused from transaction to transaction, so deciding allocates
    /// nothing for them once they have grown. Boxed: an evaluation
    /// borrows it by swapping a pointer ([`wasm::Instance::evaluate`]).
    call: Box<CallCtx>,
    inputs: Inputs,
    /// Every how many transactions the rules' evaluation times are kept (0:
    /// never; 1: always, for backtests), and transactions decided so far.
    sample_every: u32,
    tick: u32,
    /// Whether rule failures are logged and may quarantine a rule (not for
    /// self-test cases, whose failures are expected and reported by the
    /// case runner).
    log_failures: bool,
    /// The entity rules' results for the transaction being decided, by
    /// slot, from [`Evaluator::decide_entity`] until [`Evaluator::decide`].
    entity_results: Vec<Option<RuleResult>>,
    /// The transaction they are of: results of another one (whose decision
    /// never came) are not taken for this one.
    entity_tx: String,
    /// The entity kinds the rules keep state for, in [`Entity::ALL`]'s order.
    kinds: Vec<Entity>,
    /// The generation of the runtime lists in `call`.
    lists_generation: u64,
    /// Whether model rules hand over the rows they score
    /// ([`Evaluator::record_scores`]).
    recording: bool,
    /// The buffer [`Evaluator::entity_key`] writes keys into.
    key: String,
}

/// The key entity state is kept under, next to accounts: the kind and the
/// id after a control character, which no account id may hold, so an
/// entity never shares a key with an account.
pub fn entity_key(kind: Entity, id: &str) -> String {
    let mut key = String::new();
    entity_key_into(kind, id, &mut key);
    key
}

/// [`entity_key`], written into `key` (cleared first), so the hot path
/// reuses one buffer.
fn entity_key_into(kind: Entity, id: &str, key: &mut String) {
    key.clear();
    key.push('\u{1}');
    key.push_str(kind.name());
    key.push('\u{1}');
    key.push_str(id);
}

/// The transaction's id of the entity `kind`, if it has one.
pub fn entity_id(kind: Entity, tx: &TransactionRecorded) -> Option<&str> {
    match kind {
        Entity::Device => tx.device_fingerprint.as_deref(),
        Entity::Merchant => Some(&tx.merchant.id),
        Entity::Counterparty => tx.counterparty_account.as_deref(),
        Entity::Card => tx.card_fingerprint.as_deref(),
    }
}

impl Evaluator {
    /// The decision policy it applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn new(rules: &RuleSet, policy: Policy) -> Evaluator {
        let slots: Vec<Slot> = rules
            .rules()
            .iter()
            .map(|r| Slot::new(r.clone(), RuleStats::default(), policy.fuel_average_of(r)))
            .collect();
        Evaluator {
            kinds: Evaluator::kinds_of(&slots),
            slots,
            policy,
            call: Box::default(),
            inputs: Inputs::default(),
            sample_every: 0,
            tick: 0,
            log_failures: true,
            entity_results: Vec::new(),
            entity_tx: String::new(),
            lists_generation: 0,
            recording: false,
            key: String::new(),
        }
    }

    /// The entity kinds the rules keep state for, each once, in the order
    /// their passes run ([`Entity::ALL`]'s).
    pub fn entity_kinds(&self) -> &[Entity] {
        &self.kinds
    }

    /// The key the state of `tx`'s entity of `kind` is kept under
    /// ([`entity_key`]), if it has one; written into a buffer the
    /// evaluator reuses, so finding an entity allocates nothing.
    pub fn entity_key(&mut self, kind: Entity, tx: &TransactionRecorded) -> Option<&str> {
        entity_key_into(kind, entity_id(kind, tx)?, &mut self.key);
        Some(&self.key)
    }

    fn kinds_of(slots: &[Slot]) -> Vec<Entity> {
        Entity::ALL.into_iter().filter(|kind| slots.iter().any(|s| s.rule.spec.entity == Some(*kind))).collect()
    }

    /// Runs the entity rules of `kind` on `tx` against `entity`'s state
    /// (the transaction's entity of that kind; see [`entity_id`]), and
    /// keeps their results for [`Evaluator::decide`]. Call it for every
    /// kind of [`Evaluator::entity_kinds`] the transaction has, before
    /// deciding it.
    pub fn decide_entity(&mut self, kind: Entity, tx: &TransactionRecorded, entity: &mut AccountState) {
        let now_ms = tx.occurred_at_ms();
        let timing = self.sampled();
        let Evaluator { slots, call, inputs, log_failures, entity_results, entity_tx, recording, .. } = self;
        if *entity_tx != tx.transaction_id {
            // Results of another transaction (its decision never came): dropped.
            // Usually there are none, `decide` took them.
            entity_results.iter_mut().for_each(|r| *r = None);
            entity_tx.clear();
            entity_tx.push_str(&tx.transaction_id);
        }
        entity_results.resize(slots.len(), None);
        call.enter(&tx.transaction_id, now_ms, Default::default());
        inputs.prepare(tx, HostFacts::default());
        let mut pass = Pass {
            tx,
            now_ms,
            facts: HostFacts::default(),
            inputs,
            call,
            timing,
            log_failures: *log_failures,
            fuel_left: TRANSACTION_FUEL,
            explained: 0,
            recording: *recording,
        };
        for (slot, result) in slots.iter_mut().zip(entity_results.iter_mut()) {
            if slot.rule.spec.entity == Some(kind) {
                *result = Some(pass.step(slot, entity));
            }
        }
        pass.call.leave();
    }

    /// Runs the entity rules of `kind` on `tx` against `entity`'s state
    /// ([`Evaluator::decide_entity`]) for a decision made elsewhere: their
    /// results, in the rules' order.
    pub fn entity_verdict(
        &mut self,
        kind: Entity,
        tx: &TransactionRecorded,
        entity: &mut AccountState,
    ) -> Vec<RuleResult> {
        self.decide_entity(kind, tx, entity);
        self.entity_tx.clear();
        self.entity_results.iter_mut().filter_map(Option::take).collect()
    }

    /// Takes the results of `tx`'s entity rules, run elsewhere
    /// ([`Evaluator::entity_verdict`]), for its decision: each goes to the
    /// rule of its id. An entity rule without a result passes unrun.
    pub fn accept_entity_results(&mut self, tx: &TransactionRecorded, results: Vec<RuleResult>) {
        let Evaluator { slots, entity_results, entity_tx, .. } = self;
        entity_results.clear();
        entity_results.resize(slots.len(), None);
        entity_tx.clear();
        entity_tx.push_str(&tx.transaction_id);
        for result in results {
            let slot = slots.iter().position(|s| s.rule.spec.entity.is_some() && *s.rule.spec.id == *result.rule_id);
            if let Some(i) = slot {
                entity_results[i] = Some(result);
            }
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
                Some(slot) if slot.rule.hash == r.hash => slot.renewed(r.clone()),
                Some(slot) => Slot::new(r.clone(), slot.stats, self.policy.fuel_average_of(r)),
                None => Slot::new(r.clone(), RuleStats::default(), self.policy.fuel_average_of(r)),
            })
            .collect();
        self.kinds = Evaluator::kinds_of(&self.slots);
        // Results by slot are of the old set's slots.
        self.entity_results.clear();
        self.entity_tx.clear();
    }

    /// The runtime lists the next transactions are decided with, and their
    /// generation ([`crate::lists::LiveLists`]): swapped between batches.
    pub fn set_lists(&mut self, generation: u64, lists: Arc<ListSet>) {
        self.lists_generation = generation;
        self.call.set_lists(lists);
    }

    /// The generation of the runtime lists in use (0: none yet).
    pub fn lists_generation(&self) -> u64 {
        self.lists_generation
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

    /// Has model rules hand over the row of features they score and the
    /// score, for each transaction from now on ([`Evaluator::scored`]):
    /// for `weir features` and the backtest's score metrics; off in the
    /// pipelines. Rules built for contract 2.4.0 or later and scoring with
    /// `Context::score` do; others hand over nothing.
    pub fn record_scores(&mut self) {
        self.recording = true;
        for slot in &mut self.slots {
            if let Some(instance) = &mut slot.instance {
                instance.record_scores();
            }
        }
    }

    /// What each model rule scored for the transaction decided last, while
    /// recording: (rule id, row of features, score — none when the package
    /// has no model yet).
    pub fn scored(&self) -> impl Iterator<Item = (&str, &[f32], Option<f32>)> {
        self.slots.iter().filter_map(|s| {
            let (row, score) = s.scored.as_ref()?;
            Some((s.rule.spec.id.as_str(), row.as_slice(), *score))
        })
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
        let timing = self.sampled();
        let Evaluator { slots, policy, call, inputs, log_failures, entity_results, entity_tx, recording, .. } = self;
        if *entity_tx != tx.transaction_id {
            entity_results.clear();
        }
        entity_tx.clear();
        // The account's history is lent to the rules for the transaction.
        call.enter(&tx.transaction_id, now_ms, std::mem::take(&mut account.history));
        let facts = account.facts(tx);
        inputs.prepare(tx, facts);
        let mut pass = Pass {
            tx,
            now_ms,
            facts,
            inputs,
            call,
            timing,
            log_failures: *log_failures,
            fuel_left: TRANSACTION_FUEL,
            explained: 0,
            recording: *recording,
        };
        let mut results = Vec::with_capacity(slots.len());
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.rule.spec.entity.is_none() {
                results.push(pass.step(slot, account));
                continue;
            }
            // An entity rule ran in its entity's pass; a transaction
            // without that entity passes it unrun.
            let mut result = entity_results.get_mut(i).and_then(Option::take).unwrap_or_else(|| unrun(&slot.rule));
            limit_explanations(&mut result, &mut pass.explained);
            results.push(result);
        }
        account.history = pass.call.leave();
        pass.inputs.finish();
        account.record_history(tx.to_past());

        let combined = policy.combine(&results, account.lock.as_ref());
        if combined.event_type == DecisionType::AccountLocked {
            lock(account, tx, now_ms, &combined);
        }
        decision_event(tx, combined, results, input)
    }

    /// Counts a transaction; whether its evaluation times are kept.
    fn sampled(&mut self) -> bool {
        self.sample_every != 0 && {
            self.tick = self.tick.wrapping_add(1);
            self.tick.is_multiple_of(self.sample_every)
        }
    }
}

/// One transaction's pass over the rules: what they share while they run
/// one after another.
struct Pass<'a> {
    tx: &'a TransactionRecorded,
    /// The transaction's event time, the rules' "now".
    now_ms: i64,
    facts: HostFacts,
    inputs: &'a mut Inputs,
    call: &'a mut Box<CallCtx>,
    /// Whether this transaction's evaluation times are kept.
    timing: bool,
    log_failures: bool,
    /// What is left of the transaction's fuel ([`TRANSACTION_FUEL`]).
    fuel_left: u64,
    /// The bytes of the explanations recorded so far
    /// ([`super::DECISION_EXPLANATIONS_MAX`]).
    explained: usize,
    /// Whether model rules' scored rows are kept ([`Evaluator::record_scores`]).
    recording: bool,
}

impl Pass<'_> {
    /// One rule's step: lends it its state from `account`, runs it, keeps
    /// its writes (or, if it failed, undoes them), counts the outcome, and
    /// returns the result the decision records.
    fn step(&mut self, slot: &mut Slot, account: &mut AccountState) -> RuleResult {
        let mut kept = account.rules.get_mut(&slot.rule.spec.id);
        self.call.begin(kept.as_deref_mut().map(std::mem::take).unwrap_or_default(), slot.rule.spec.state_quota);
        let started = self.timing.then(Instant::now);
        let (verdict, fuel) = self.run(slot);
        if let Some(started) = started {
            slot.timed(started);
        }
        self.fuel_left = self.fuel_left.saturating_sub(fuel);
        // Going over the quota is the error even if the rule then
        // trapped on the refused write.
        let verdict =
            self.call.check_quota().and(self.call.check_lists()).and(verdict).and_then(|v| v.check().map(|()| v));
        let (state, changed) = self.call.finish(verdict.is_ok());
        let id = &slot.rule.spec.id;
        match kept {
            Some(kept) => *kept = state,
            None if !state.is_empty() => {
                account.rules.insert(id.clone(), state);
            }
            None => {}
        }
        if changed {
            account.rule_changed(&slot.rule.id);
        }
        slot.count(&verdict, fuel, &self.tx.transaction_id, self.log_failures);
        let mut result = rule_result(&slot.rule, verdict);
        result.lists = self.call.lists_read();
        limit_explanations(&mut result, &mut self.explained);
        result
    }

    /// Runs the rule of `slot` within what is left of the transaction's
    /// fuel: its verdict, and the fuel it used. A quarantined rule is not
    /// run; nor is a wasm rule once the transaction's fuel is spent.
    fn run(&mut self, slot: &mut Slot) -> (Result<Verdict, RuleError>, u64) {
        if self.recording {
            slot.scored = None;
        }
        if let Some(quarantined) = slot.quarantined() {
            return (Err(quarantined), 0);
        }
        match &slot.rule.code {
            Code::Wasm(_) if self.fuel_left == 0 => (Err(RuleError::BudgetSpent), 0),
            Code::Wasm(compiled) => {
                let fuel = compiled.fuel().min(self.fuel_left);
                let (verdict, fuel) = self.run_wasm(compiled, &mut slot.instance, &mut slot.model_read, fuel);
                if self.recording {
                    slot.scored = slot.instance.as_mut().and_then(wasm::Instance::take_scored);
                }
                (verdict, fuel)
            }
            Code::Native { rule, params } => {
                let tx = self.inputs.sdk(self.tx, self.facts);
                let mut ctx = Context::native(&mut **self.call, params, self.now_ms);
                let verdict = (rule.evaluate)(tx, &mut ctx).map(Verdict::from_sdk).map_err(|e| {
                    RuleError::Returned(
                        weir_sdk::limits::clean(e.message(), weir_sdk::limits::ERROR_MESSAGE_MAX).into_owned(),
                    )
                });
                (verdict, 0)
            }
        }
    }

    /// Runs a wasm rule in its live instance (made now if it has none),
    /// with `fuel`; a failure other than a returned error drops the
    /// instance.
    ///
    /// Reading the model runs on its own grant: the first read of a slot's
    /// rule is not counted against its fuel average, a read again (the
    /// instance was dropped after a trap) is (`model_read` says which), so
    /// a rule that traps to have its model read again and again pays for it.
    fn run_wasm(
        &mut self,
        compiled: &wasm::Compiled,
        instance: &mut Option<wasm::Instance>,
        model_read: &mut bool,
        fuel: u64,
    ) -> (Result<Verdict, RuleError>, u64) {
        let live = match instance {
            Some(live) => live,
            None => match compiled.instantiate() {
                Ok(mut fresh) => {
                    if self.recording {
                        fresh.record_scores();
                    }
                    instance.insert(fresh)
                }
                Err(e) => return (Err(e), 0),
            },
        };
        let input = if live.is_legacy() {
            wasm::Input::Record(self.inputs.record(self.tx, self.facts))
        } else {
            wasm::Input::Encoded(self.inputs.encoded(self.tx, self.facts))
        };
        let (result, mut fuel) = live.evaluate(input, self.call, fuel);
        if live.load_fuel() > 0 && std::mem::replace(model_read, true) {
            fuel = fuel.saturating_add(live.load_fuel());
        }
        if result.as_ref().is_err_and(|e| !matches!(e, RuleError::Returned(_))) {
            // A trapped instance is poisoned: start the next evaluation afresh.
            *instance = None;
        }
        (result, fuel)
    }
}

/// The result of an entity rule for a transaction without its entity.
fn unrun(rule: &LoadedRule) -> RuleResult {
    let pass = Verdict { outcome: crate::events::RuleOutcome::Pass, score: 0, explanation: Default::default() };
    rule_result(rule, Ok(pass))
}

/// Locks `account` for the decision on `tx`, with the policy's reason.
fn lock(account: &mut AccountState, tx: &TransactionRecorded, now_ms: i64, combined: &Combined) {
    account.set_lock(Lock {
        transaction_id: tx.transaction_id.clone(),
        occurred_at_ms: now_ms,
        reason: combined.reason.clone().unwrap_or_default(),
    });
}

/// The decision event for `tx`: the policy's answer and every rule's result.
fn decision_event(
    tx: &TransactionRecorded,
    combined: Combined,
    results: Vec<RuleResult>,
    input: InputPosition,
) -> DecisionEvent {
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
