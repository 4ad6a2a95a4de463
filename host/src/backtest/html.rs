//! The report as one self-contained HTML page: inline styles and SVG charts
//! (see `svg`), no script, nothing fetched — a file to attach to a change
//! request. Each section of the page is its own function, in page order.

use std::fmt::Write as _;

use crate::events::DecisionType;

use super::report::{Changes, Cost, LabelReport, Outcome, Report, Side};
use super::scores::ALERT_BUDGETS;
use super::svg::{bar_chart, line_chart, score_chart};
use super::text::rate;

/// The report as one self-contained HTML page: inline styles and SVG
/// charts, no script, nothing fetched.
pub fn render_html(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut h = String::new();
    head(&mut h, outcome.title);
    summary(&mut h, r);
    decisions(&mut h, r);
    changes(&mut h, &r.changes);
    rules(&mut h, "Baseline", &r.baseline, &outcome.baseline_cost);
    rules(&mut h, "Candidate", &r.candidate, &outcome.candidate_cost);
    h.push_str("<h2>Score distribution</h2>\n");
    h.push_str(&score_chart(&r.baseline.scores, &r.candidate.scores));
    if let Some(l) = &r.labels {
        labels(&mut h, l);
    }
    h.push_str("</body></html>\n");
    h
}

/// The document's head (title, styles) and its heading.
fn head(h: &mut String, title: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}}\n\
         table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}\n\
         th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}h2{{margin-top:2rem}}.muted{{color:#777}}\n\
         svg{{background:#fafafa;border:1px solid #ddd}}\n</style></head><body>\n<h1>{title}</h1>\n"
    );
}

/// What the records were, and the event time they span.
fn summary(h: &mut String, r: &Report) {
    let _ = writeln!(
        h,
        "<p>{} records: {} transactions, {} dead letters, {} confirmations, {} duplicates. Event time {} to {}.</p>",
        r.input.records,
        r.input.decided(),
        r.input.dead_letters,
        r.input.confirmations,
        r.input.duplicates,
        esc(r.first_event.as_deref().unwrap_or("-")),
        esc(r.last_event.as_deref().unwrap_or("-"))
    );
    if let Some(w) = &r.warm_up {
        let _ = writeln!(
            h,
            "<p>Warm-up: {} transactions ({} records, event time {} to {}) before {} built the accounts' state only; \
             the figures below count from {} on.</p>",
            w.transactions,
            w.records,
            esc(w.first_event.as_deref().unwrap_or("-")),
            esc(w.last_event.as_deref().unwrap_or("-")),
            esc(&w.until),
            esc(&w.until)
        );
    }
}

/// Decisions by type, a row per side.
fn decisions(h: &mut String, r: &Report) {
    h.push_str("<h2>Decisions</h2>\n<table><tr><th class=\"l\"></th>");
    for t in DecisionType::ALL {
        let _ = write!(h, "<th>{}</th>", t.as_str());
    }
    h.push_str("</tr>\n");
    for (name, side) in [("baseline", &r.baseline), ("candidate", &r.candidate)] {
        let _ = write!(h, "<tr><th class=\"l\">{name} <span class=\"muted\">{}</span></th>", esc(&side.rules_dir));
        for t in DecisionType::ALL {
            let _ = write!(h, "<td>{}</td>", side.decisions.get(&t).unwrap_or(&0));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// The changed decisions: a bar per transition, then the examples.
fn changes(h: &mut String, changes: &Changes) {
    let _ = writeln!(h, "<h2>Changed decisions: {}</h2>", changes.total);
    let transitions: Vec<(String, f64)> = changes.by_transition.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    h.push_str(&bar_chart(&transitions));
    if changes.examples.is_empty() {
        return;
    }
    h.push_str("<table><tr><th class=\"l\">event time</th><th class=\"l\">transaction</th><th class=\"l\">account</th><th class=\"l\">from</th><th class=\"l\">to</th><th class=\"l\">baseline reason</th><th class=\"l\">candidate reason</th><th class=\"l\">label</th></tr>\n");
    for e in &changes.examples {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&e.occurred_at),
            esc(&e.transaction_id),
            esc(&e.account_id),
            e.from.as_str(),
            e.to.as_str(),
            esc(e.baseline_reason.as_deref().unwrap_or("")),
            esc(e.candidate_reason.as_deref().unwrap_or("")),
            esc(e.label.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");
    let more = changes.total.saturating_sub(changes.examples.len() as u64);
    if more > 0 {
        let _ = writeln!(h, "<p class=\"muted\">and {more} more (all in the JSON report)</p>");
    }
}

/// One side's rules: a row per rule (outcomes, fuel, time), then their hits
/// over event time.
fn rules(h: &mut String, name: &str, side: &Side, cost: &Cost) {
    let _ = writeln!(h, "<h2>{name} rules <span class=\"muted\">{}</span></h2>", esc(&side.rules_dir));
    h.push_str("<table><tr><th class=\"l\">rule</th><th class=\"l\">version</th><th class=\"l\">mode</th><th>evaluated</th><th>score</th><th>suspect</th><th>lock</th><th>error</th><th>pass</th><th>mean fuel</th><th>mean µs</th><th>p99 µs</th></tr>\n");
    for rule in &side.rules {
        let n = |o: &str| rule.outcomes.get(o).copied().unwrap_or(0);
        let c = cost.rules.get(&rule.rule_id).copied().unwrap_or_default();
        let (mean, p99) = (c.mean_us, c.p99_us);
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{mean:.1}</td><td>{p99:.1}</td></tr>",
            esc(&rule.rule_id),
            esc(&rule.version_label),
            esc(&rule.mode),
            rule.invocations,
            n("score"),
            n("suspect"),
            n("lock"),
            n("error"),
            n("pass"),
            c.fuel_mean
        );
    }
    h.push_str("</table>\n");
    params(h, name, side);
    let _ = writeln!(h, "<h3>{name}: hits per hour of event time</h3>");
    let series: Vec<(String, &_)> = side.rules.iter().map(|rule| (rule.rule_id.clone(), &rule.hits_by_hour)).collect();
    h.push_str(&line_chart(&series));
}

/// One side's parameters: a row per parameter of each rule, with the
/// value it ran with, where the value came from, and what it is.
fn params(h: &mut String, name: &str, side: &Side) {
    if side.params.values().all(Vec::is_empty) {
        return;
    }
    let _ = writeln!(h, "<h3>{name}: parameters</h3>");
    h.push_str("<table><tr><th class=\"l\">rule</th><th class=\"l\">parameter</th><th class=\"l\">value</th><th class=\"l\">from</th><th class=\"l\">what it is</th></tr>\n");
    for (id, lines) in &side.params {
        for l in lines {
            let about = if l.doc.is_empty() { l.kind.clone() } else { format!("{}; {}", l.kind, l.doc) };
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(id),
                esc(&l.name),
                esc(if l.value.is_empty() { "-" } else { &l.value }),
                l.source,
                esc(&about)
            );
        }
    }
    h.push_str("</table>\n");
}

/// Precision, recall, false-positive rate and the confusion matrix of each
/// side's decision and rules.
fn labels(h: &mut String, l: &LabelReport) {
    let _ = writeln!(h, "<h2>Against the labels</h2>\n<p>{} labelled transactions, {} fraud.</p>", l.labelled, l.fraud);
    h.push_str("<table><tr><th class=\"l\"></th><th>precision</th><th>recall</th><th>false-positive rate</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th></tr>\n");
    for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
        let rows = std::iter::once((format!("{name} decision"), &q.decision))
            .chain(q.rules.iter().map(|(id, c)| (format!("{name}: {id}"), c)));
        for (row, c) in rows {
            let _ = writeln!(
                h,
                "<tr><th class=\"l\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&row),
                rate(c.precision),
                rate(c.recall),
                rate(c.false_positive_rate),
                c.true_positives,
                c.false_positives,
                c.true_negatives,
                c.false_negatives
            );
        }
    }
    h.push_str("</table>\n");
    h.push_str(
        "<h3>Scores without a threshold</h3>\n<p>The decisions ranked by outcome (locked, suspected, verified), then by risk score; each model rule by its score.</p>\n",
    );
    h.push_str("<table><tr><th class=\"l\"></th><th>PR-AUC</th><th>ROC-AUC</th>");
    for b in ALERT_BUDGETS {
        let _ = write!(h, "<th>precision, top {0}%</th><th>recall, top {0}%</th>", b * 100.0);
    }
    h.push_str("</tr>\n");
    for (name, q) in [("baseline", &l.baseline), ("candidate", &l.candidate)] {
        let rows = std::iter::once((format!("{name} decisions"), &q.ranking))
            .chain(q.models.iter().map(|(id, s)| (format!("{name}: {id}"), s)));
        for (row, s) in rows {
            let _ = write!(
                h,
                "<tr><th class=\"l\">{}</th><td>{}</td><td>{}</td>",
                esc(&row),
                rate(s.pr_auc),
                rate(s.roc_auc)
            );
            for b in &s.at_budget {
                let _ = write!(h, "<td>{}</td><td>{}</td>", rate(b.precision), rate(b.recall));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table>\n");
}

/// Text made safe inside HTML.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
