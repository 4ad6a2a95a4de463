//! What the pipelines' commands print alike: a progress bar on a terminal,
//! the counters of what became of the records, the per-rule summary, and
//! a rule's parameters.

use std::collections::HashMap;
use std::fs::File;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use weir::engine::{LoadedRule, Parameters, RuleSet};
use weir::events::DecisionType;
use weir::pipeline::Summary;
use weir::record::Counters;

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A file that moves a progress bar by the bytes read from it.
pub struct CountingReader {
    pub inner: File,
    pub bar: ProgressBar,
}

impl std::io::Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// What became of the records: the same for both pipelines.
pub fn print_counters(c: &Counters) {
    println!("Decisions");
    for t in DecisionType::ALL {
        println!("  {:<22} {:>9}", t.as_str(), c.decisions.get(&t).copied().unwrap_or(0));
    }
    println!("  {:<22} {:>9}   (malformed input, written with the reason)", "dead-lettered", c.dead_letters);
    if c.duplicates > 0 {
        println!("  {:<22} {:>9}   (already decided; skipped)", "duplicates", c.duplicates);
    }
    if c.confirmations > 0 {
        println!("  {:<22} {:>9}   (customer confirmations; no decision)", "confirmations", c.confirmations);
    }
    if c.unlocks > 0 {
        println!("  {:<22} {:>9}   (analysts' unlocks; no decision)", "unlocks", c.unlocks);
    }
    if c.entity_late > 0 {
        println!(
            "  {:<22} {:>9}   (dated before a transaction already applied to its entities; entity rules passed them unrun)",
            "late to their entities", c.entity_late
        );
    }
}

/// The counters, a row per rule of `set` (invocations, hits, errors, fuel)
/// and the throughput of an embedded run.
pub fn print_summary(summary: &Summary, set: &RuleSet) {
    print_counters(&summary.counters);
    let versions: HashMap<&str, &LoadedRule> = set.rules().iter().map(|r| (r.spec.id.as_str(), &**r)).collect();
    // As wide as the longest id and version label, so long ones line up.
    let w = summary.rules.iter().map(|(id, _)| id.len()).max().unwrap_or(0).max(16);
    let v = versions.values().map(|r| r.spec.version_label.len()).max().unwrap_or(0).max(8);
    println!(
        "\n  {:<w$} {:<v$} {:<8} {:>11} {:>7} {:>7} {:>9}",
        "rule", "version", "mode", "invocations", "hits", "errors", "avg fuel"
    );
    for (id, s) in &summary.rules {
        let rule = versions.get(id.as_str());
        println!(
            "  {:<w$} {:<v$} {:<8} {:>11} {:>7} {:>7} {:>9}",
            id,
            rule.map(|r| r.spec.version_label.as_str()).unwrap_or("?"),
            rule.map(|r| r.spec.mode.to_string()).unwrap_or_default(),
            s.invocations,
            s.hits,
            s.errors,
            s.fuel.checked_div(s.invocations).unwrap_or(0)
        );
        if let Some(why) = &s.quarantine_reason {
            println!("  {:<w$} quarantined: {why}; skipped until a new version is deployed", "");
        }
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "\nThroughput: {:.0} records/s ({} records in {:.2} s, rules in wasm, batches committed durably; reading, deciding and committing overlap)",
        summary.records as f64 / secs.max(1e-9),
        summary.records,
        secs
    );
}

/// The packages refused as the run ends, and the rules directory if it is
/// refused as a whole: a summary that left them out would look as if every
/// rule ran.
pub fn print_refused(live: &weir::live::LiveRules) {
    let refused = live.refused();
    let set = live.status().set_refused;
    if refused.is_empty() && set.is_none() {
        return;
    }
    println!("\nRefused, not run ({}):", refused.len() + usize::from(set.is_some()));
    for r in &refused {
        println!("  {}: {}", r.path.display(), r.reason);
    }
    if let Some(set) = set {
        println!("  the rules directory as a whole (the earlier rules ran): {}", set.reason);
    }
}

/// A rule's parameters, one per line under the rule.
pub fn print_params(parameters: &Parameters) {
    let lines = parameters.lines();
    if let Parameters::Undeclared(_) = parameters {
        println!("             parameters: not declared by the rule (built with an older SDK), so not checked");
    }
    let name_width = lines.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let value_width = lines.iter().map(|l| l.value.chars().count()).max().unwrap_or(0).min(40);
    for l in &lines {
        let value = if l.value.is_empty() { "-" } else { &l.value };
        let about = if l.doc.is_empty() { l.kind.clone() } else { format!("{}; {}", l.kind, l.doc) };
        println!("             {:<name_width$} = {value:<value_width$}  ({}) {about}", l.name, l.source,);
    }
}
