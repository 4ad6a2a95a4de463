//! The report as a terminal table: what `weir backtest` and
//! `weir shadow-report` print.

use crate::events::shown as clean;
use std::fmt::Write as _;

use crate::events::DecisionType;

use super::report::{Changes, Cost, LabelReport, Outcome, Side};
use super::scores::ALERT_BUDGETS;

/// The report as a terminal table.
pub fn render_text(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} records ({} transactions, {} dead letters, {} confirmations, {} duplicates), event time {} .. {}",
        outcome.title,
        r.input.records,
        r.input.decided(),
        r.input.dead_letters,
        r.input.confirmations,
        r.input.duplicates,
        r.first_event.as_deref().unwrap_or("-"),
        r.last_event.as_deref().unwrap_or("-")
    );
    if let Some(w) = &r.warm_up {
        let _ = writeln!(
            out,
            "warm-up: {} transactions ({} records, event time {} .. {}) before {} built the accounts' state only; \
             the figures below count from {} on",
            w.transactions,
            w.records,
            w.first_event.as_deref().unwrap_or("-"),
            w.last_event.as_deref().unwrap_or("-"),
            w.until,
            w.until
        );
    }
    side(&mut out, "baseline", &r.baseline, &outcome.baseline_cost);
    params(&mut out, &r.baseline, None);
    side(&mut out, "candidate", &r.candidate, &outcome.candidate_cost);
    params(&mut out, &r.candidate, Some(&r.baseline));
    changes(&mut out, &r.changes);
    if let Some(l) = &r.labels {
        labels(&mut out, l);
    }
    out
}

/// A side's decisions, then a row per rule: outcomes, fuel and time.
fn side(out: &mut String, name: &str, side: &Side, cost: &Cost) {
    let decisions: Vec<String> =
        DecisionType::ALL.iter().map(|t| format!("{} {}", t.as_str(), side.decisions.get(t).unwrap_or(&0))).collect();
    let _ = writeln!(out, "\n{name} ({}): {}", side.rules_dir, decisions.join(", "));
    // Columns as wide as the longest id and version shown, so long ones line up.
    let w = side.rules.iter().map(|r| clean(&r.rule_id, 64).chars().count()).max().unwrap_or(0).max(18);
    let v = side.rules.iter().map(|r| clean(&r.version_label, 64).chars().count()).max().unwrap_or(0).max(9);
    let _ = writeln!(
        out,
        "  {:<w$} {:<v$} {:<8} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9}",
        "rule",
        "version",
        "mode",
        "evaluated",
        "score",
        "suspect",
        "lock",
        "error",
        "pass",
        "avg fuel",
        "mean µs",
        "p99 µs"
    );
    for rule in &side.rules {
        let n = |o: &str| rule.outcomes.get(o).copied().unwrap_or(0);
        let c = cost.rules.get(&rule.rule_id).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<w$} {:<v$} {:<8} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>9.1} {:>9.1}",
            clean(&rule.rule_id, 64),
            clean(&rule.version_label, 64),
            rule.mode,
            rule.invocations,
            n("score"),
            n("suspect"),
            n("lock"),
            n("error"),
            n("pass"),
            c.fuel_mean,
            c.mean_us,
            c.p99_us
        );
    }
}

/// Each rule's parameters, one line per rule: `name = value (source)`; on
/// the candidate's side, a value the baseline's same rule does not share
/// says what the baseline had.
fn params(out: &mut String, side: &Side, baseline: Option<&Side>) {
    if side.params.values().all(Vec::is_empty) {
        return;
    }
    let _ = writeln!(out, "  parameters (value, from where):");
    let w = side.params.keys().map(|id| clean(id, 64).chars().count()).max().unwrap_or(0).max(18);
    for (id, lines) in &side.params {
        if lines.is_empty() {
            continue;
        }
        let before = baseline.and_then(|b| b.params.get(id));
        let shown: Vec<String> = lines
            .iter()
            .map(|l| {
                let value = if l.value.is_empty() { "-" } else { &l.value };
                let was = before
                    .and_then(|b| b.iter().find(|p| p.name == l.name))
                    .filter(|p| p.value != l.value)
                    .map(|p| format!("; baseline {}", if p.value.is_empty() { "-" } else { &p.value }));
                format!("{} = {value} ({}{})", l.name, l.source, was.unwrap_or_default())
            })
            .collect();
        let _ = writeln!(out, "    {:<w$} {}", clean(id, 64), clean(&shown.join(", "), 4096));
    }
}

/// How many changed decisions the terminal shows.
const SHOWN: usize = 10;

/// The changed decisions: counts by transition and the first ten examples.
fn changes(out: &mut String, changes: &Changes) {
    let _ = writeln!(out, "\nChanged decisions: {}", changes.total);
    for (transition, n) in &changes.by_transition {
        let _ = writeln!(out, "  {transition}: {n}");
    }
    for e in changes.examples.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "  {} {} {} {} -> {}: {}{}",
            e.occurred_at,
            clean(&e.transaction_id, 256),
            clean(&e.account_id, 256),
            e.from.as_str(),
            e.to.as_str(),
            clean(e.candidate_reason.as_deref().or(e.baseline_reason.as_deref()).unwrap_or("-"), 256),
            e.label.as_ref().map(|l| format!(" [labelled {}]", clean(l, 64))).unwrap_or_default()
        );
    }
    let shown = changes.examples.len().min(SHOWN) as u64;
    if changes.total > shown {
        let _ = writeln!(
            out,
            "  ... and {} more (every one, with evidence, in the JSON report: --json)",
            changes.total - shown
        );
    }
}

/// Precision, recall and false-positive rate of each side's decision and
/// rules.
fn labels(out: &mut String, l: &LabelReport) {
    let _ = writeln!(out, "\nAgainst the labels ({} labelled transactions, {} fraud):", l.labelled, l.fraud);
    let _ = writeln!(out, "  {:<24} {:>10} {:>10} {:>10}", "", "precision", "recall", "FP rate");
    for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
        let rows = std::iter::once((format!("{name} decision"), &q.decision))
            .chain(q.rules.iter().map(|(id, c)| (format!("  {id}"), c)));
        for (row, c) in rows {
            let _ = writeln!(
                out,
                "  {:<24} {:>10} {:>10} {:>10}",
                row,
                rate(c.precision),
                rate(c.recall),
                rate(c.false_positive_rate)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nScores without a threshold (decisions ranked by outcome, then risk score; models by their score):"
    );
    let budgets: Vec<String> = ALERT_BUDGETS.iter().map(|b| format!("top {}%", b * 100.0)).collect();
    let _ =
        writeln!(out, "  {:<24} {:>8} {:>8}   precision / recall at {}", "", "PR-AUC", "ROC-AUC", budgets.join(", "));
    for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
        let rows = std::iter::once((format!("{name} decisions"), &q.ranking))
            .chain(q.models.iter().map(|(id, s)| (format!("  {id}"), s)));
        for (row, s) in rows {
            let at: Vec<String> =
                s.at_budget.iter().map(|b| format!("{} / {}", rate(b.precision), rate(b.recall))).collect();
            let _ = writeln!(out, "  {:<24} {:>8} {:>8}   {}", row, rate(s.pr_auc), rate(s.roc_auc), at.join(", "));
        }
    }
}

/// A rate to four decimals, or `-` when there is none.
pub(super) fn rate(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{x:.4}"))
}
