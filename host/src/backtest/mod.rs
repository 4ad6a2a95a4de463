//! Backtests: what a candidate rules directory would have decided on
//! historical transactions, next to a baseline, before it goes live.
//!
//! Both rule sets run over the same records, each against its own
//! in-memory account state, exactly as the pipelines run them (the same
//! per-record core, [`crate::record::process`]): read-only, nothing written
//! to a live store or a topic. Decisions depend on event time and the rule
//! versions only, so the same input and rules give the same [`Report`],
//! byte for byte, whatever order the accounts' records interleave in
//! (records of one account keep their order, as on a Kafka partition).
//!
//! A warm-up ([`run_warmed_up`]) decides the records before a given event
//! time only to build the accounts' state, so that a rule that depends on
//! an account's history (a 30-day window, a device or country never seen)
//! is judged on accounts with one rather than from a cold start; the report
//! counts and compares only the records from that time on, and says how
//! many came before.
//!
//! The report has, per side, each rule's invocations, hits by outcome,
//! errors and fuel; the decisions that change from baseline to candidate
//! (counts by transition, and every one with both sides' reasons and the
//! evidence of the rules that did not pass); with a labels
//! file, precision, recall and false-positive rate per rule and for the
//! whole decision, and threshold-free measures (PR-AUC, ROC-AUC,
//! precision and recall at alert budgets) of the decisions as a ranking
//! and of each model rule's scores ([`ScoreQuality`]); hits over event time and the score distribution for the
//! charts. What evaluations cost — time (mean, p99) and fuel — is kept apart
//! ([`Cost`]) from the report that must be reproducible: time is measured,
//! and fuel depends on the rule instance's history (its allocator's state),
//! which follows the order the accounts' records interleave in.
//!
//! The shadow report ([`shadow`]) builds the same comparison from decisions
//! weir published: as published, against the same rule results with every
//! shadow rule enforced.
//!
//! A program embedding weir runs a backtest as the `weir backtest` command
//! does: [`History::read`] the records, [`Labels::read`] the labels, [`run`]
//! (or [`run_warmed_up`]) the two rule sets, then [`render_text`], [`render_html`] or
//! [`Report::to_json`].
//!
//! Layout:
//! - `history`: the records to backtest (a JSON-lines file, standard input
//!   or a Kafka topic range) and the published decisions of a shadow report.
//! - `labels`: the labels file — what each transaction really was.
//! - `run`: the two rule sets over the history, each on its own thread.
//! - `shadow`: the shadow report over published decisions.
//! - `scores`: the threshold-free measures of a score against the labels.
//! - `tally`: one side's decisions, counted; `compare`: the pairs of
//!   decisions, compared.
//! - `report`: the serializable report and the measured cost.
//! - `text`, `html`, `svg`: the report for a terminal and as a web page.
//! - `error`: what can go wrong reading the inputs.

mod compare;
mod error;
mod history;
mod html;
mod labels;
mod report;
mod run;
mod scores;
mod shadow;
mod svg;
mod tally;
mod text;

pub use error::{BacktestError, LabelProblem};
pub use history::{History, parse_time, read_decisions};
pub use html::render_html;
pub use labels::{Label, Labels};
pub use report::{
    Changes, Confusion, Cost, EXAMPLES, Example, Hit, LabelReport, Outcome, Quality, Report, RuleCost, RuleReport,
    Side, WarmUp,
};
pub use run::{RulesUnder, run, run_warmed_up};
pub use scores::{ALERT_BUDGETS, AtBudget, ScoreQuality};
pub use shadow::shadow;
pub use text::render_text;
