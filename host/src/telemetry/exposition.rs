//! The Prometheus text exposition of [`Metrics`] (`/metrics`), written by
//! `prometheus-client`, which escapes every label value: the counters
//! (records, decisions by type, dead letters, duplicates, confirmations,
//! batches, per-rule invocations, hits, errors, fuel, quarantined rules,
//! rule swaps, refused packages and the active rule versions), the
//! histograms and the consumer lag. `dashboards/weir.json` is a Grafana
//! dashboard over exactly these families.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::metrics::{Counters, EVALUATION_SAMPLE, Labels, Metrics};
use crate::engine::RuleStats;
use crate::events::DecisionType;
use crate::live::{LiveRules, RulesStatus};

impl Metrics {
    /// The Prometheus text exposition of these metrics, with the rule
    /// versions of `live`.
    pub fn exposition(&self, live: Option<&LiveRules>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot { counters: self.snapshot(), live: live.map(|l| l.status()) }));
        registry.register(
            "weir_rule_evaluation_seconds",
            format!("Time of one rule evaluation, by rule (one transaction in {EVALUATION_SAMPLE} is timed)"),
            self.evaluation.clone(),
        );
        registry.register(
            "weir_commit_seconds",
            "Time to commit one batch (on Kafka, one transaction)",
            self.commit.clone(),
        );
        registry.register(
            "weir_batch_decide_seconds",
            "Time to decide one batch (on Kafka, one decide worker's chunk of records)",
            self.batch.clone(),
        );
        registry.register(
            "weir_decision_latency_seconds",
            "From an input record's Kafka timestamp to its decision (Kafka only)",
            self.decision_latency.clone(),
        );
        registry.register(
            "weir_consumer_lag",
            "Records on the input partition not yet consumed, from librdkafka's statistics (Kafka only)",
            self.consumer_lag.clone(),
        );
        registry.register(
            "weir_entity_delivery_allowance_seconds",
            "How long the entity hop allows a record to be on its way before an idle partition passes it: \
             twice the largest delay from a record's timestamp to weir lately, 0.1 to 3 s (Kafka with kafka.entities)",
            self.delivery_allowance.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// The counters as they were at a scrape, encoded by `prometheus-client`
/// (which escapes every label value).
#[derive(Debug)]
struct Snapshot {
    counters: Counters,
    live: Option<RulesStatus>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_records(&mut encoder, &self.counters)?;
        encode_rules(&mut encoder, &self.counters)?;
        if let Some(status) = &self.live {
            encode_live(&mut encoder, status)?;
        }
        Ok(())
    }
}

/// One counter without labels.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One family: a series per label set.
fn by_label<'a, T: EncodeMetric + 'a>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    series: impl IntoIterator<Item = (Labels, T)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// What became of the records, and the batches committed.
fn encode_records(encoder: &mut DescriptorEncoder, c: &Counters) -> std::fmt::Result {
    let r = &c.records;
    counter(encoder, "weir_records", "Input records processed (on Kafka: in committed transactions)", r.records)?;
    by_label(
        encoder,
        ("weir_decisions", "Decisions published, by type", MetricType::Counter),
        DecisionType::ALL.map(|t| {
            (vec![("type", t.as_str().to_owned())], ConstCounter::new(r.decisions.get(&t).copied().unwrap_or(0)))
        }),
    )?;
    counter(encoder, "weir_dead_letters", "Malformed records dead-lettered", r.dead_letters)?;
    counter(encoder, "weir_duplicates", "Transactions skipped because they were decided before", r.duplicates)?;
    counter(encoder, "weir_confirmations", "Customer confirmations recorded in account state", r.confirmations)?;
    counter(encoder, "weir_unlocks", "Analysts' unlocks applied to account state", r.unlocks)?;
    counter(
        encoder,
        "weir_entity_late",
        "Transactions that came to an entity after a later one was applied there; its rules passed them unrun",
        r.entity_late,
    )?;
    counter(encoder, "weir_batches", "Batches committed (on Kafka: transactions)", c.batches)
}

/// The per-rule counters and the quarantine gauge.
fn encode_rules(encoder: &mut DescriptorEncoder, c: &Counters) -> std::fmt::Result {
    let rule = |id: &String| vec![("rule", id.clone())];
    let per_rule = |f: fn(&RuleStats) -> u64| c.rules.iter().map(move |(id, s)| (rule(id), ConstCounter::new(f(s))));
    type PerRule = (&'static str, &'static str, fn(&RuleStats) -> u64);
    let families: [PerRule; 4] = [
        ("weir_rule_invocations", "Rule evaluations, by rule", |s| s.invocations),
        ("weir_rule_hits", "Rule verdicts other than pass, by rule", |s| s.hits),
        ("weir_rule_errors", "Rule evaluations that failed or were skipped in quarantine, by rule", |s| s.errors),
        ("weir_rule_fuel", "Wasm fuel consumed, by rule", |s| s.fuel),
    ];
    for (name, help, f) in families {
        by_label(encoder, (name, help, MetricType::Counter), per_rule(f))?;
    }
    by_label(
        encoder,
        (
            "weir_rule_quarantined",
            "1 while a rule's running version is quarantined (skipped after failing or costing too much), by rule",
            MetricType::Gauge,
        ),
        c.rules.iter().map(|(id, s)| (rule(id), ConstGauge::new(i64::from(s.quarantined)))),
    )
}

/// The rules directory: swaps, refusals and the active versions.
fn encode_live(encoder: &mut DescriptorEncoder, status: &RulesStatus) -> std::fmt::Result {
    let swaps = status.swaps_total.saturating_sub(1);
    counter(encoder, "weir_rule_swaps", "Rule sets published after a change in the rules directory", swaps)?;
    let refused = status.refusals_total;
    counter(encoder, "weir_rule_packages_refused", "Rule packages refused while running", refused)?;
    let sets = status.set_refusals_total;
    counter(encoder, "weir_rule_set_refusals", "Times the rules directory was refused as a whole", sets)?;
    gauge(
        encoder,
        "weir_rule_set_refused",
        "1 while the rules directory is refused as a whole (the running rules stay)",
        i64::from(status.set_refused.is_some()),
    )?;
    if let Some(set) = &status.signed_set {
        let sequence = i64::try_from(set.sequence).unwrap_or(i64::MAX);
        gauge(encoder, "weir_rule_set_sequence", "The sequence number of the signed rule set running", sequence)?;
    }
    by_label(
        encoder,
        ("weir_rule_active", "Active rule versions (1 per rule id and content hash)", MetricType::Gauge),
        status.active.iter().map(|v| {
            let labels = vec![
                ("rule", v.rule_id.clone()),
                ("version", v.version_label.clone()),
                ("hash", v.hash.clone()),
                ("mode", v.mode.to_string()),
            ];
            (labels, ConstGauge::new(1i64))
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    #[test]
    fn the_exposition_escapes_labels_and_has_every_family() {
        let metrics = Metrics::default();
        let mut rules = BTreeMap::new();
        rules.insert("velocity".to_owned(), RuleStats { invocations: 3, hits: 1, ..Default::default() });
        let stats: Vec<(String, RuleStats)> = rules.into_iter().collect();
        metrics.record(&crate::record::Counters { records: 3, entity_late: 2, ..Default::default() }, &stats);
        metrics.observe_commit(Duration::from_millis(5));
        metrics.set_consumer_lag(2, 40);
        metrics.set_delivery_allowance(250);
        let text = metrics.exposition(None);
        assert!(text.contains("weir_records_total 3"), "{text}");
        assert!(text.contains("weir_entity_late_total 2"), "{text}");
        assert!(text.contains("weir_rule_invocations_total{rule=\"velocity\"} 3"), "{text}");
        assert!(text.contains("weir_commit_seconds_count 1"), "{text}");
        assert!(text.contains("weir_consumer_lag{partition=\"2\"} 40"), "{text}");
        assert!(text.contains("weir_entity_delivery_allowance_seconds 0.25"), "{text}");
        // A label value with a quote, a backslash and a line feed.
        let family: Family<Labels, Gauge> = Family::default();
        family.get_or_create(&vec![("version", "2.0 \"beta\"\\x\ny".to_owned())]).set(1);
        let mut registry = Registry::default();
        registry.register("probe", "a probe", family);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains(r#"probe{version="2.0 \"beta\"\\x\ny"} 1"#), "{out}");
    }
}
