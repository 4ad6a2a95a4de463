//! Sandbox test cases: run a rule component on described transactions in
//! the production sandbox and compare its verdicts with expectations.
//!
//! `weir rule test MODULE.wasm CASES.toml` runs a case file:
//!
//! ```toml
//! [params]                       # overrides the manifest's, for every case
//! max_count = 3
//!
//! [[case]]
//! name = "fourth purchase within the hour is suspected"
//! params = { window_secs = 3600 }        # per-case overrides
//! state = { countries = "DE,NL" }        # the rule's stored values before the case
//! confirmed_merchants = ["m-luckybets"]  # merchants the customer confirmed, before the case
//! prior = [{ amount = 1000 }, { amount = 1000, after_secs = 60 }]
//! transaction = { amount = 1000, after_secs = 180, device_fingerprint = "fp-1" }
//! [case.expect]
//! outcome = "suspect"                    # pass | score | suspect | lock | error
//! reason_code = "VELOCITY_COUNT"         # optional
//! score = 30                             # optional
//! evidence = { count = "4" }             # optional, a subset
//!
//! [[case]]
//! name = "a zero window is refused"
//! params = { window_secs = 0 }
//! [case.expect]
//! outcome = "error"
//! kind = "parameter"                     # for outcome = "error", kind or error or both:
//! error = "window_secs"                  #   the kind, and a substring of the error
//! ```
//!
//! The kinds of error: `parameter` (the rule's declaration refuses the
//! case's parameters; the rule does not run), `fuel`, `memory`, `stack`,
//! `panic`, `trap`, `returned` (the rule returned an error), `instantiate`,
//! `verdict` (an explanation over the host's limits), `state` (over the
//! state quota), `budget`, `quarantined`.
//!
//! Transactions default to the concert-ticket purchase from the story;
//! prior transactions run through the rule first, building its state as
//! production would. A `device_fingerprint` makes a transaction version 2, a
//! `counterparty_account` or `card_fingerprint` version 3;
//! `confirmed_merchants` is the account's state the host keeps from customer
//! confirmations, so the rule sees `weir.customer_confirmed_merchant` exactly
//! as in production.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::engine::{
    ERROR_KINDS, Engine, Evaluator, LoadError, LoadedRule, PARAMS_REFUSED, Policy, RuleError, RuleSet, package_hash,
};
use crate::events::{InputEvent, InputPosition, Merchant, RuleOutcome, RuleResult, TransactionRecorded};
use crate::lists::ListSet;
use crate::manifest::{ManifestError, RuleSpec};
use crate::record::{MemoryAccounts, Processed, process};

/// The account of a case's transactions unless they name another.
const DEFAULT_ACCOUNT: &str = "acct-1029";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(default)]
    pub params: toml::Table,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub params: toml::Table,
    #[serde(default)]
    pub state: BTreeMap<String, String>,
    /// Merchant ids the customer has confirmed purchases at, before the case.
    #[serde(default)]
    pub confirmed_merchants: Vec<String>,
    /// Runtime lists in effect for the case: list name → values (never
    /// expiring), as `weir list add` would put them.
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub prior: Vec<CaseTx>,
    #[serde(default)]
    pub transaction: CaseTx,
    pub expect: Expect,
}

/// A transaction described by what differs from the story's purchase.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTx {
    pub id: Option<String>,
    pub account: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub merchant: Option<String>,
    pub category: Option<String>,
    pub country: Option<String>,
    pub channel: Option<weir_sdk::Channel>,
    pub after_secs: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Makes the transaction a version 2 event from this device.
    pub device_fingerprint: Option<String>,
    /// Makes the transaction a version 3 transfer to this account.
    pub counterparty_account: Option<String>,
    /// Makes the transaction a version 3 event paid with this card.
    pub card_fingerprint: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: RuleOutcome,
    pub reason_code: Option<String>,
    pub score: Option<u32>,
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
    /// For `outcome = "error"`: the kind of error (`parameter`, `fuel`,
    /// `panic`, `returned`, ... see [`ERROR_KINDS`]).
    pub kind: Option<String>,
    /// For `outcome = "error"`: a substring of the error.
    pub error: Option<String>,
}

impl Expect {
    /// A case that expects an error says which one, and only such a case
    /// names one: otherwise a case passes for any failure, a panic included.
    fn check(&self) -> Result<(), String> {
        let is_error = self.outcome == RuleOutcome::Error;
        if is_error && self.kind.is_none() && self.error.is_none() {
            return Err(format!(
                "`outcome = \"error\"` must say which error: `kind = ` one of {} or `error = \"a substring\"`",
                ERROR_KINDS.join(", ")
            ));
        }
        if !is_error && (self.kind.is_some() || self.error.is_some()) {
            return Err("`kind` and `error` go only with `outcome = \"error\"`".to_owned());
        }
        match &self.kind {
            Some(kind) if !ERROR_KINDS.contains(&kind.as_str()) => {
                Err(format!("`kind = {kind:?}` is not a kind of error; the kinds are {}", ERROR_KINDS.join(", ")))
            }
            _ => Ok(()),
        }
    }
}

impl CaseTx {
    /// The full event, defaults from the story's concert-ticket purchase.
    pub fn to_event(&self, default_id: &str) -> TransactionRecorded {
        let id = self.id.clone().unwrap_or_else(|| default_id.to_owned());
        let ms = weir_sdk::testing::BASE_TIME_MS.saturating_add(self.after_secs.unwrap_or(0).saturating_mul(1000));
        let occurred_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let merchant_id = self.merchant.clone().unwrap_or_else(|| "m-ticketsrus".to_owned());
        TransactionRecorded {
            event_id: format!("evt-{id}"),
            event_type: "TransactionRecorded".to_owned(),
            schema_version: if self.counterparty_account.is_some() || self.card_fingerprint.is_some() {
                3
            } else if self.device_fingerprint.is_some() {
                2
            } else {
                1
            },
            occurred_at,
            account_id: self.account.clone().unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned()),
            amount: weir_sdk::Money {
                minor_units: self.amount.unwrap_or(18_900),
                currency: self.currency.clone().unwrap_or_else(|| "EUR".to_owned()),
            },
            merchant: Merchant {
                name: (merchant_id == "m-ticketsrus").then(|| "Tickets R Us".to_owned()),
                id: merchant_id,
                category_code: self.category.clone().unwrap_or_else(|| "7922".to_owned()),
                country: Some(self.country.clone().unwrap_or_else(|| "NL".to_owned())),
            },
            channel: self.channel.unwrap_or(weir_sdk::Channel::Ecommerce),
            attributes: self.attributes.clone(),
            device_fingerprint: self.device_fingerprint.clone(),
            counterparty_account: self.counterparty_account.clone(),
            card_fingerprint: self.card_fingerprint.clone(),
            transaction_id: id,
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub name: String,
    /// `None` if the case passed, else what differed.
    pub failure: Option<String>,
    pub result: RuleResult,
}

/// Why a case file could not run (a case that fails is a [`CaseReport`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CasesError {
    /// The file's `[params]` do not fit the manifest's.
    #[error("[params]: {0}")]
    Params(ManifestError),
    /// A case's `params` do not fit.
    #[error("case {case:?}: {error}")]
    CaseParams { case: String, error: ManifestError },
    #[error("{0}")]
    Refused(LoadError),
    #[error("{0}")]
    RuleSet(LoadError),
    #[error("the rule produced no result")]
    NoResult,
    /// A case's `expect` cannot be checked as written.
    #[error("case {case:?}: {problem}")]
    Expect { case: String, problem: String },
    /// A case's `lists` are not valid list entries.
    #[error("case {case:?}: lists: {error}")]
    Lists { case: String, error: String },
}

/// Runs every case of `file` against `rule` (compiled for `base`).
pub fn run_cases(
    engine: &Engine,
    component: &[u8],
    manifest_text: &str,
    model: Option<std::sync::Arc<[u8]>>,
    base: &RuleSpec,
    file: &CaseFile,
) -> Result<Vec<CaseReport>, CasesError> {
    for case in &file.cases {
        case.expect.check().map_err(|problem| CasesError::Expect { case: case.name.clone(), problem })?;
    }
    let file_spec = base.clone().with_params(&file.params).map_err(CasesError::Params)?;
    let mut reports = Vec::new();
    for case in &file.cases {
        let spec = file_spec
            .clone()
            .with_params(&case.params)
            .map_err(|error| CasesError::CaseParams { case: case.name.clone(), error })?;
        let rule: LoadedRule = match engine.load_with_model(spec.clone(), component, manifest_text, model.clone()) {
            Ok(rule) => rule,
            // The declaration refuses the case's parameters: the rule does
            // not run, and the case passes only if it expects just that.
            Err(LoadError::Params(problems)) if !case.params.is_empty() => {
                let version = package_hash(component, manifest_text, model.as_deref());
                let result = refused_params(&spec, &version, &problems.join("; "));
                reports.push(CaseReport { name: case.name.clone(), failure: compare(&case.expect, &result), result });
                continue;
            }
            Err(e) => return Err(CasesError::Refused(e)),
        };
        let set = RuleSet::new(vec![rule]).map_err(CasesError::RuleSet)?;
        let mut evaluator = Evaluator::new(&set, Policy::default());
        // A case may expect an error: the report says what failed.
        evaluator.quiet();
        if !case.lists.is_empty() {
            let entries =
                case.lists.iter().flat_map(|(list, values)| values.iter().map(move |v| (list.as_str(), v.as_str())));
            let lists = ListSet::of(entries)
                .map_err(|e| CasesError::Lists { case: case.name.clone(), error: e.to_string() })?;
            evaluator.set_lists(1, std::sync::Arc::new(lists));
        }
        let mut confirmed_merchants = case.confirmed_merchants.clone();
        confirmed_merchants.sort();
        confirmed_merchants.dedup();
        // Through the pipelines' own step, so an entity rule runs against
        // the entity's state, kept apart from the account's.
        let mut accounts = MemoryAccounts::default();
        let account_id = case.transaction.account.clone().unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
        let account = accounts.accounts.entry(account_id).or_default();
        account.confirmed_merchants = confirmed_merchants;
        if !case.state.is_empty() {
            let state = account.rules.entry(spec.id.clone()).or_default();
            for (k, v) in &case.state {
                state.set(k, v);
            }
        }
        let position = |offset| InputPosition { topic: "cases".to_owned(), partition: 0, offset };
        let mut decide = |tx: TransactionRecorded, offset| match process(
            &mut evaluator,
            Ok(InputEvent::Transaction(tx)),
            position(offset),
            &mut accounts,
        ) {
            Ok(Processed::Decided(decision)) => Ok(*decision),
            _ => Err(CasesError::NoResult),
        };
        for (i, prior) in case.prior.iter().enumerate() {
            decide(prior.to_event(&format!("prior-{}", i + 1)), i as i64)?;
        }
        let decision = decide(case.transaction.to_event("tx-000184467"), case.prior.len() as i64)?;
        let result = decision.rules.into_iter().next().ok_or(CasesError::NoResult)?;
        reports.push(CaseReport { name: case.name.clone(), failure: compare(&case.expect, &result), result });
    }
    Ok(reports)
}

/// The result a case records when the rule's declaration refused its
/// parameters: an error of kind `parameter`.
fn refused_params(spec: &RuleSpec, version: &str, problems: &str) -> RuleResult {
    RuleResult {
        rule_id: spec.id.as_str().into(),
        rule_version: version.into(),
        version_label: spec.version_label.as_str().into(),
        mode: spec.mode,
        outcome: RuleOutcome::Error,
        score: 0,
        reason_code: String::new(),
        message: String::new(),
        evidence: Vec::new(),
        error: Some(format!("{PARAMS_REFUSED}{problems}")),
        failure_policy: None,
        lists: Vec::new(),
    }
}

/// What differs between `expect` and `got`, if anything.
fn compare(expect: &Expect, got: &RuleResult) -> Option<String> {
    // An unexpected failure is the root cause of every other difference:
    // it comes alone, first, with its kind.
    if got.outcome == RuleOutcome::Error && expect.outcome != RuleOutcome::Error {
        let error = got.error.as_deref().unwrap_or("unknown error");
        return Some(format!(
            "the rule failed ({} error): {error}; expected outcome {}",
            RuleError::kind_of(error),
            expect.outcome
        ));
    }
    let mut problems = Vec::new();
    if got.outcome != expect.outcome {
        problems.push(format!("expected outcome {}, got {}", expect.outcome, got.outcome));
    }
    if let Some(code) = &expect.reason_code
        && &got.reason_code != code
    {
        problems.push(format!("expected reason_code {code:?}, got {:?}", got.reason_code));
    }
    if let Some(score) = expect.score
        && got.score != score
    {
        problems.push(format!("expected score {score}, got {}", got.score));
    }
    for (name, value) in &expect.evidence {
        match got.evidence.iter().find(|e| &e.name == name) {
            Some(e) if &e.value == value => {}
            Some(e) => problems.push(format!("expected evidence {name} = {value:?}, got {:?}", e.value)),
            None => problems.push(format!("expected evidence {name} = {value:?}, but the verdict has none")),
        }
    }
    if let Some(kind) = &expect.kind {
        let got_kind = got.error.as_deref().map(RuleError::kind_of);
        if got_kind != Some(kind.as_str()) {
            problems.push(match &got.error {
                Some(error) => format!("expected a {kind} error, got a {} error: {error}", RuleError::kind_of(error)),
                None => format!("expected a {kind} error, got no error"),
            });
        }
    }
    if let Some(fragment) = &expect.error {
        let error = got.error.as_deref().unwrap_or("");
        if !error.contains(fragment.as_str()) {
            problems.push(format!("expected an error containing {fragment:?}, got {error:?}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// One line describing what the rule returned.
pub fn describe(r: &RuleResult) -> String {
    let mut s = r.outcome.to_string();
    if r.score > 0 {
        let _ = write!(s, " {}", r.score);
    }
    if !r.reason_code.is_empty() {
        let _ = write!(s, " {}", r.reason_code);
    }
    if !r.evidence.is_empty() {
        let ev: Vec<String> = r.evidence.iter().map(|e| format!("{}={}", e.name, e.value)).collect();
        let _ = write!(s, " [{}]", ev.join(", "));
    }
    if let Some(e) = &r.error {
        let _ = write!(s, " ({e})");
    }
    s
}
