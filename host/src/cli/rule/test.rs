//! `weir rule test`: sandbox cases against a rule component, in the
//! production sandbox, each reported.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use weir::cases::{CaseFile, describe, run_cases};
use weir::engine::Engine;
use weir::events::shown as clean;
use weir::manifest::RuleSpec;

/// What `weir rule test --help` says of the cases file: every key.
pub const CASES_FORMAT: &str = "\
The cases file (TOML), one [[case]] per transaction to check:
  [params]              parameters for every case, over the manifest's
  [[case]]
  name = \"...\"          the case's name (required)
  params = { ... }      this case's parameters, over the file's
  state = { k = \"v\" }   the rule's stored values before the case
  confirmed_merchants = [\"m-1\"]   merchants the customer confirmed, before the case
  prior = [{ amount = 1000 }, ...] earlier transactions, run through the rule first
  transaction = { ... } the transaction the case is about
  [case.expect]
  outcome = \"suspect\"   pass | score | suspect | lock | error (required)
  reason_code, score    checked when given
  evidence = { k = \"v\" }  a subset of the verdict's evidence
  kind = \"parameter\"    for outcome = \"error\": parameter (the declaration refuses
                        the case's params; the rule does not run), fuel, memory,
                        stack, panic, trap, returned, instantiate, verdict,
                        state, budget, quarantined
  error = \"...\"         for outcome = \"error\": a substring of the error
An error case needs kind, error or both. A transaction is the story's
purchase (EUR 189.00, m-ticketsrus, category 7922, NL, ecommerce, account
acct-1029, 2026-11-28T19:42:07Z) changed by: id, account, amount (minor
units), currency, merchant, category, country, channel (card_present,
ecommerce, transfer, atm), after_secs, attributes = { k = \"v\" },
device_fingerprint (makes it a version 2 event), counterparty_account and
card_fingerprint (a version 3 event).";

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The rule component (.wasm).
    pub module: PathBuf,
    /// The sandbox cases (TOML).
    pub cases: PathBuf,
    /// The rule's manifest. Default: the package manifest next to the module
    /// (`<id>.toml`), else `rule.toml` next to the cases.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

impl TestArgs {
    /// Runs every case; fails if any case fails.
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let manifest_path = match &self.manifest {
            Some(p) => p.clone(),
            None => find_manifest(&self.module, &self.cases)?,
        };
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read the manifest {}", manifest_path.display()))?;
        let spec =
            RuleSpec::parse(&manifest_text).with_context(|| format!("rule manifest {}", manifest_path.display()))?;
        let component = std::fs::read(&self.module)
            .with_context(|| format!("cannot read the component {}", self.module.display()))?;
        let cases_text =
            std::fs::read_to_string(&self.cases).with_context(|| format!("cannot read {}", self.cases.display()))?;
        let file: CaseFile =
            toml::from_str(&cases_text).with_context(|| format!("sandbox cases {}", self.cases.display()))?;
        if file.cases.is_empty() {
            bail!("{} has no [[case]]", self.cases.display());
        }
        let model = match &spec.model {
            Some(file) => {
                let path = manifest_path.parent().unwrap_or(std::path::Path::new(".")).join(file);
                let bytes =
                    std::fs::read(&path).with_context(|| format!("cannot read the model {}", path.display()))?;
                Some(std::sync::Arc::from(bytes))
            }
            None => None,
        };
        let engine = Engine::new()?;
        let reports = run_cases(&engine, &component, &manifest_text, model, &spec, &file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.module.display()))?;
        println!("{} {} ({} cases, in the sandbox)", spec.id, spec.version_label, reports.len());
        let mut failed = 0;
        for r in &reports {
            match &r.failure {
                None => println!("  ok    {} — {}", clean(&r.name, 256), describe(&r.result)),
                Some(why) => {
                    failed += 1;
                    println!("  FAIL  {} — {}", clean(&r.name, 256), clean(why, 4096));
                }
            }
        }
        println!("{} passed, {} failed", reports.len() - failed, failed);
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// The manifest of a component: the package manifest next to it, else the
/// crate's `rule.toml` next to the cases.
fn find_manifest(module: &Path, cases: &Path) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let (Some(dir), Some(stem)) = (module.parent(), module.file_stem().and_then(|s| s.to_str())) {
        candidates.push(dir.join(format!("{stem}.toml")));
        candidates.push(dir.join(format!("{}.toml", stem.replace('_', "-"))));
    }
    if let Some(dir) = cases.parent() {
        candidates.push(dir.join("rule.toml"));
    }
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        format!("no manifest found next to {} or {}; pass --manifest", module.display(), cases.display())
    })
}
