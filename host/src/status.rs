//! The status endpoint and the counters behind it.
//!
//! With `[status] listen = "127.0.0.1:9464"` (or `WEIR_STATUS_LISTEN`),
//! `weir run` serves, over plain HTTP:
//!
//! - `GET /health` — `ok` while the process runs;
//! - `GET /status` — JSON: the active rule versions, the refused packages
//!   with their reasons, recent swaps and where they took effect, and the
//!   pipeline's counters;
//! - `GET /metrics` — the same counters in the Prometheus text format:
//!   decisions by type, dead letters, batches, per-rule invocations, hits,
//!   errors and fuel, rule swaps and refused packages.
//!
//! [`Metrics`] is written by the pipeline after each batch and read by the
//! server thread; [`Hooks`] is what a pipeline is handed to report there
//! and to swap rules between batches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::engine::{Evaluator, RuleStats};
use crate::events::DecisionType;

use crate::live::{Generation, LiveRules};

/// The pipeline's counters since start, as the status shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// What became of the records (the same on Kafka and embedded: on
    /// Kafka, those of committed transactions).
    #[serde(flatten)]
    pub records: crate::record::Counters,
    /// Batches (on Kafka, transactions) committed.
    pub batches: u64,
    /// Per rule id, across its versions (and workers).
    pub rules: BTreeMap<String, RuleStats>,
}

/// Counters shared between the pipeline and the status endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// After a committed batch: the pipeline's totals so far.
    pub fn record(&self, records: &crate::record::Counters, rules: &[(String, RuleStats)]) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.records = records.clone();
        c.batches += 1;
        for (id, stats) in rules {
            c.rules.insert(id.clone(), stats.clone());
        }
    }

    pub fn snapshot(&self) -> Counters {
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a pipeline shares with the running host; both parts optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The watched rules directory: swap to its newest generation between batches.
    pub live: Option<Arc<LiveRules>>,
    /// Where to count batches for the status endpoint.
    pub metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("live", &self.live.as_ref().map(|l| l.dir().to_owned()))
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Hooks {
    /// Between two batches: swaps `evaluator` to a newer generation if
    /// there is one (`running` is the generation it runs now).
    pub fn adopt(&self, running: &mut u64, evaluator: &mut Evaluator) -> Option<Arc<Generation>> {
        self.live.as_ref()?.adopt(running, evaluator)
    }

    /// Reports where a generation was first used.
    pub fn took_effect(&self, generation: &Generation, position: &crate::live::TookEffect) {
        if let Some(live) = &self.live {
            live.took_effect(generation, position);
        }
    }

    /// After a committed batch: the pipeline's totals so far.
    pub fn record(&self, records: &crate::record::Counters, rules: &[(String, RuleStats)]) {
        if let Some(m) = &self.metrics {
            m.record(records, rules);
        }
    }
}

#[derive(Serialize)]
struct StatusBody {
    engine_version: &'static str,
    pipeline: Counters,
    rules: Option<crate::live::RulesStatus>,
}

/// Serves `/health`, `/status` and `/metrics` on `listen` from a
/// background thread.
pub fn serve(listen: &str, live: Option<Arc<LiveRules>>, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(listen)
        .map_err(|e| anyhow::anyhow!("cannot serve the status endpoint on {listen}: {e}"))?;
    tracing::info!(listen, "status endpoint: /health /status /metrics");
    std::thread::Builder::new().name("weir-status".to_owned()).spawn(move || {
        for request in server.incoming_requests() {
            let (code, content_type, body) = match request.url() {
                "/health" => (200, "text/plain", "ok\n".to_owned()),
                "/status" => {
                    let body = StatusBody {
                        engine_version: env!("CARGO_PKG_VERSION"),
                        pipeline: metrics.snapshot(),
                        rules: live.as_ref().map(|l| l.status()),
                    };
                    (200, "application/json", serde_json::to_string_pretty(&body).unwrap_or_default())
                }
                "/metrics" => (200, "text/plain; version=0.0.4", prometheus(&metrics.snapshot(), live.as_deref())),
                _ => (404, "text/plain", "not found: try /health, /status or /metrics\n".to_owned()),
            };
            let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
            let response = tiny_http::Response::from_string(body).with_status_code(code).with_header(header);
            if let Err(e) = request.respond(response) {
                tracing::debug!("status endpoint: {e}");
            }
        }
    })?;
    Ok(())
}

/// The Prometheus text exposition of the counters.
fn prometheus(c: &Counters, live: Option<&LiveRules>) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family("weir_records_total", "counter", "Input records processed (on Kafka: in committed transactions).");
    family("weir_decisions_total", "counter", "Decisions published, by type.");
    family("weir_dead_letters_total", "counter", "Malformed records dead-lettered.");
    family("weir_batches_total", "counter", "Batches committed.");
    family("weir_rule_invocations_total", "counter", "Rule evaluations, by rule.");
    family("weir_rule_hits_total", "counter", "Rule verdicts other than pass, by rule.");
    family("weir_rule_errors_total", "counter", "Rule evaluations that failed, by rule.");
    family("weir_rule_fuel_total", "counter", "Wasm fuel consumed, by rule.");
    family(
        "weir_rule_quarantined",
        "gauge",
        "1 while a rule's running version is quarantined (skipped after failing too often in a row), by rule.",
    );
    family("weir_rule_swaps_total", "counter", "Rule sets published after a change in the rules directory.");
    family("weir_rule_packages_refused_total", "counter", "Rule packages refused while running.");
    family("weir_rule_active", "gauge", "Active rule versions (1 per rule id and content hash).");
    family("weir_duplicates_total", "counter", "Transactions skipped because they were decided before.");
    family("weir_confirmations_total", "counter", "Customer confirmations recorded in account state.");
    let r = &c.records;
    let _ = writeln!(out, "weir_records_total {}", r.records);
    for t in DecisionType::ALL {
        let _ = writeln!(out, "weir_decisions_total{{type=\"{}\"}} {}", t.as_str(), r.decisions.get(&t).unwrap_or(&0));
    }
    let _ = writeln!(out, "weir_dead_letters_total {}", r.dead_letters);
    let _ = writeln!(out, "weir_duplicates_total {}", r.duplicates);
    let _ = writeln!(out, "weir_confirmations_total {}", r.confirmations);
    let _ = writeln!(out, "weir_batches_total {}", c.batches);
    for (id, s) in &c.rules {
        let _ = writeln!(out, "weir_rule_invocations_total{{rule=\"{id}\"}} {}", s.invocations);
        let _ = writeln!(out, "weir_rule_hits_total{{rule=\"{id}\"}} {}", s.hits);
        let _ = writeln!(out, "weir_rule_errors_total{{rule=\"{id}\"}} {}", s.errors);
        let _ = writeln!(out, "weir_rule_fuel_total{{rule=\"{id}\"}} {}", s.fuel);
        let _ = writeln!(out, "weir_rule_quarantined{{rule=\"{id}\"}} {}", u8::from(s.quarantined));
    }
    if let Some(live) = live {
        let status = live.status();
        let _ = writeln!(out, "weir_rule_swaps_total {}", status.swaps_total.saturating_sub(1));
        let _ = writeln!(out, "weir_rule_packages_refused_total {}", status.refusals_total);
        for v in &status.active {
            let _ = writeln!(
                out,
                "weir_rule_active{{rule=\"{}\",version=\"{}\",hash=\"{}\",mode=\"{}\"}} 1",
                label_value(&v.rule_id),
                label_value(&v.version_label),
                label_value(&v.hash),
                v.mode
            );
        }
    }
    out
}

/// A label value in the text exposition format: `\`, `"` and line feeds
/// escaped, so a version label such as `2.0 "beta"` cannot break `/metrics`.
fn label_value(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_are_escaped_as_the_exposition_format_says() {
        assert_eq!(label_value("1.0.0"), "1.0.0");
        assert_eq!(label_value("2.0 \"beta\""), "2.0 \\\"beta\\\"");
        assert_eq!(label_value("a\\b\nc"), "a\\\\b\\nc");
    }
}
