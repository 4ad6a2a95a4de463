//! A rule ready to run ([`Compiled`]: a linked component with its
//! manifest's limits and parameters) and a live instance of it
//! ([`Instance`]), evaluating one transaction at a time.
//!
//! An instance keeps its store between transactions (instantiating is far
//! slower than evaluating); fuel is set per evaluation, and the account
//! state is swapped in and out of the store around each call. A failed
//! evaluation poisons the instance: the caller drops it.

use std::sync::Arc;

use wasmtime::Store;
use weir_sdk::ParamValue;
use weir_sdk::limits::{ERROR_MESSAGE_MAX, clean};

use super::contract::{v1, v2, wit};
use super::imports::MAX_LOG_LINES;
use super::store::{self, RuleHost};
use crate::engine::RuleError;
use crate::engine::call::CallCtx;
use crate::engine::verdict::Verdict;
use crate::manifest::RuleSpec;

/// A compiled, checked component, linked for its contract.
#[derive(Clone)]
pub(super) enum Pre {
    V1(v1::RulePre<RuleHost>),
    V2(v2::RulePre<RuleHost>),
}

/// A compiled, checked component, ready to instantiate.
pub struct Compiled {
    pub(super) pre: Pre,
    pub(super) params: Arc<[(String, ParamValue)]>,
    pub(super) fuel: u64,
    pub(super) memory_bytes: usize,
    pub(super) rule_id: Arc<str>,
    /// The package's model file, handed over by the `model` import, and
    /// the fuel its first reading in an instance is granted.
    pub(super) model: Option<Arc<[u8]>>,
    pub(super) model_fuel: u64,
}

/// One live instance of a rule, in its own store.
pub struct Instance {
    store: Store<RuleHost>,
    bindings: Bindings,
    /// Fuel the last evaluation spent on its model load grant.
    load_fuel: u64,
}

enum Bindings {
    V1(v1::Rule),
    V2(v2::Rule),
}

/// The transaction, in the form an instance's contract takes.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// `weir:rule@2`: the wire encoding.
    Encoded(&'a [u8]),
    /// `weir:rule@1.0.0`: the contract's record.
    Record(&'a wit::Transaction),
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
            model: self.model.clone(),
            model_fuel: spec.model_fuel,
        }
    }

    /// Whether the package carries a model.
    pub(crate) fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The same rule with the package's model.
    pub(crate) fn with_model(self, model: Option<Arc<[u8]>>) -> Compiled {
        Compiled { model, ..self }
    }

    /// A fresh instance in its own store.
    pub fn instantiate(&self) -> Result<Instance, RuleError> {
        let mut host = RuleHost::new(self.params.clone(), self.rule_id.clone(), self.memory_bytes);
        host.model = self.model.clone();
        host.model_fuel = self.model_fuel;
        let engine = match &self.pre {
            Pre::V1(pre) => pre.engine(),
            Pre::V2(pre) => pre.engine(),
        };
        let mut store = store::store(engine, host, self.fuel).map_err(|e| RuleError::Instantiate(e.to_string()))?;
        let bindings = match &self.pre {
            Pre::V1(pre) => pre.instantiate(&mut store).map(Bindings::V1),
            Pre::V2(pre) => pre.instantiate(&mut store).map(Bindings::V2),
        };
        let bindings = bindings.map_err(|e| store.data().classify(e, self.fuel))?;
        Ok(Instance { store, bindings, load_fuel: 0 })
    }

    pub fn fuel(&self) -> u64 {
        self.fuel
    }
}

impl Instance {
    /// The fuel the last evaluation spent reading the model on its load
    /// grant (0 when it did not read it).
    pub(crate) fn load_fuel(&self) -> u64 {
        self.load_fuel
    }

    /// Has the rule's `model.recording` say yes from now on (a rule asks
    /// once, when it first reads its model): the rows it scores are kept
    /// ([`Instance::take_scored`]).
    pub(crate) fn record_scores(&mut self) {
        self.store.data_mut().recording = true;
    }

    /// The row the last evaluation scored and its score, if the rule
    /// handed one over while recording.
    pub(crate) fn take_scored(&mut self) -> Option<super::store::Scored> {
        self.store.data_mut().scored.take()
    }

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
        call: &mut Box<CallCtx>,
        fuel: u64,
    ) -> (Result<Verdict, RuleError>, u64) {
        let host = self.store.data_mut();
        std::mem::swap(&mut host.call, call);
        host.log_lines = 0;
        host.granted = 0;
        if let Err(e) = self.store.set_fuel(fuel) {
            std::mem::swap(&mut self.store.data_mut().call, call);
            return (Err(RuleError::Instantiate(e.to_string())), 0);
        }
        let result = self.call_evaluate(tx);
        // What the rule used of its per-evaluation fuel: reading the model,
        // once per instance, runs on its own grant and is not counted
        // against the rule's average.
        let granted = self.store.data().granted;
        let total = fuel.saturating_add(granted).saturating_sub(self.store.get_fuel().unwrap_or(0));
        let used = total.saturating_sub(granted);
        self.load_fuel = total - used;
        let host = self.store.data_mut();
        host.explained = None;
        host.failed = None;
        std::mem::swap(&mut host.call, call);
        let result = match result {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(message)) => Err(RuleError::Returned(clean(&message, ERROR_MESSAGE_MAX).into_owned())),
            Err(e) => Err(self.store.data().classify(e, fuel)),
        };
        let dropped = self.store.data().log_lines.saturating_sub(MAX_LOG_LINES);
        if dropped > 0 {
            tracing::warn!(rule = %self.store.data().rule_id, dropped, "rule wrote more log lines than allowed; the rest were dropped");
        }
        (result, used)
    }

    /// Calls the rule's `evaluate` export: its verdict, the message of an
    /// error it returned, or the trap that stopped it.
    fn call_evaluate(&mut self, tx: Input<'_>) -> wasmtime::Result<Result<Verdict, String>> {
        match (&self.bindings, tx) {
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
        }
    }
}
