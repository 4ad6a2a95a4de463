//! The host side of the contracts' imports — `account`, `distinct`,
//! `params`, `verdict` and `log`, `lists` and `model` — for both `weir:rule@2.4.0` (which also
//! serves rules built for 2.0.0) and `weir:rule@1.0.0`, all acting on the
//! instance's [`RuleHost`].
//!
//! Both contracts share one implementation of each function; they differ
//! only in their types (`history`'s form, the param and log types). The
//! string-taking account functions of `weir:rule@2` are redefined to read
//! their arguments in place ([`define_account_v2`]): they are the hottest
//! calls a rule makes.

use wasmtime::AsContextMut;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmStr};
use weir_sdk::ParamValue;
use weir_sdk::limits::{LOG_LINE_MAX, clean};

use super::contract::{v1, v2, wit, wit2};
use super::convert::past_to_wit;
use super::store::RuleHost;
use crate::engine::call::CallCtx;
use crate::engine::verdict::Explanation;

/// How many log lines one evaluation may write; the rest are counted.
pub(super) const MAX_LOG_LINES: u32 = 16;

/// Redefines the string-taking functions of `weir:rule/account`,
/// `weir:rule/distinct` and `weir:rule/lists` to read their names in place from the
/// guest's memory: the generated bindings lift every string argument into
/// a new `String`, an allocation per call on the hottest path a rule has.
pub(super) fn define_account_v2(linker: &mut Linker<RuleHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut account = linker.instance(&format!("weir:rule/account@{}", super::CONTRACT_VERSION))?;
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
    let mut distinct = linker.instance(&format!("weir:rule/distinct@{}", super::CONTRACT_VERSION))?;
    distinct.func_wrap("add", |store, (name, member): (WasmStr, WasmStr)| {
        with_name_and_member(store, name, member, |call, name, member| call.distinct_add(name, member))?
            .then_some(())
            .ok_or_else(over_quota)
    })?;
    distinct.func_wrap("count", |store, (name, window_ms): (WasmStr, u64)| {
        with_name(store, name, |call, name| (call.distinct_count(name, window_ms),))
    })?;
    distinct.func_wrap("last-seen", |store, (name, member): (WasmStr, WasmStr)| {
        with_name_and_member(store, name, member, |call, name, member| (call.last_seen(name, member),))
    })?;
    let mut lists = linker.instance(&format!("weir:rule/lists@{}", super::CONTRACT_VERSION))?;
    lists.func_wrap("contains", |store, (list, value): (WasmStr, WasmStr)| {
        with_name_and_member(store, list, value, |call, list, value| (call.list_contains(list, value),))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Defines `weir:rule/model`: `bytes`, the package's model, and, on the
/// first call in an instance, the load grant (`limits.model_fuel`) added
/// to the evaluation's fuel, so reading the model once is not paid from
/// the per-transaction budget (later calls grant nothing); `recording` and
/// `scored`, which keep the row a rule scored only when the evaluator
/// records ([`crate::engine::Evaluator::record_scores`]).
pub(super) fn define_model(linker: &mut Linker<RuleHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut model = linker.instance(&format!("weir:rule/model@{}", super::CONTRACT_VERSION))?;
    model.func_wrap("bytes", |mut store: StoreContextMut<'_, RuleHost>, (): ()| {
        let host = store.data_mut();
        let bytes = host.model.as_deref().map(<[u8]>::to_vec).unwrap_or_default();
        if !bytes.is_empty() && !std::mem::replace(&mut host.model_granted, true) {
            let grant = host.model_fuel;
            host.granted = host.granted.saturating_add(grant);
            let fuel = store.get_fuel()?;
            store.set_fuel(fuel.saturating_add(grant))?;
        }
        Ok((bytes,))
    })?;
    model.func_wrap("recording", |store: StoreContextMut<'_, RuleHost>, (): ()| Ok((store.data().recording,)))?;
    model.func_wrap("scored", |mut store: StoreContextMut<'_, RuleHost>, (row, score): (Vec<f32>, Option<f32>)| {
        if row.len() > weir_sdk::limits::MAX_SCORED_FEATURES {
            return Err(wasmtime::Error::msg(format!(
                "the rule scored a row of {} features; at most {} are kept",
                row.len(),
                weir_sdk::limits::MAX_SCORED_FEATURES
            )));
        }
        let host = store.data_mut();
        if host.recording {
            host.scored = Some((row, score));
        }
        Ok(())
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The trap that stops a rule whose write was refused for its state quota
/// (the evaluation's error says so: [`crate::engine::RuleError::StateQuota`]).
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

/// Runs `f` with a name and a member read from the guest's memory into
/// buffers the host reuses.
fn with_name_and_member<R>(
    mut store: StoreContextMut<'_, RuleHost>,
    name: WasmStr,
    member: WasmStr,
    f: impl FnOnce(&mut CallCtx, &str, &str) -> R,
) -> wasmtime::Result<R> {
    let mut buffer = std::mem::take(&mut store.data_mut().value_buffer);
    buffer.clear();
    buffer.push_str(&member.to_str(&store)?);
    let result = with_name(store.as_context_mut(), name, |call, name| f(call, name, &buffer));
    store.data_mut().value_buffer = buffer;
    result
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

impl v2::weir::rule::distinct::Host for RuleHost {
    fn add(&mut self, name: String, member: String) {
        self.call.distinct_add(&name, &member);
    }

    fn count(&mut self, name: String, window_ms: u64) -> u32 {
        self.call.distinct_count(&name, window_ms)
    }

    fn last_seen(&mut self, name: String, member: String) -> Option<i64> {
        self.call.last_seen(&name, &member)
    }
}

/// Shadowed by [`define_model`], which also grants the load fuel.
impl v2::weir::rule::model::Host for RuleHost {
    fn bytes(&mut self) -> Vec<u8> {
        self.model.as_deref().map(<[u8]>::to_vec).unwrap_or_default()
    }
    fn recording(&mut self) -> bool {
        self.recording
    }
    fn scored(&mut self, row: Vec<f32>, score: Option<f32>) {
        if self.recording && row.len() <= weir_sdk::limits::MAX_SCORED_FEATURES {
            self.scored = Some((row, score));
        }
    }
}

impl v2::weir::rule::lists::Host for RuleHost {
    fn contains(&mut self, name: String, value: String) -> bool {
        self.call.list_contains(&name, &value)
    }
}

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
    /// Logs a rule's line, up to [`MAX_LOG_LINES`] per evaluation.
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
