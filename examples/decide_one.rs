//! Embedding weir's engine as a library: load the shipped rules, decide one
//! transaction, print the decision.
//!
//! The point: a decision is a plain value you can inspect — its type, the
//! reason, and every rule's verdict with its version hash and evidence. The
//! account state the rules read and write is yours to keep between calls.
//!
//! Run: `cargo run --example decide_one`

#![allow(clippy::unwrap_used)] // a benchmark or example stops at the first failure

use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::events::{InputPosition, parse_transaction};
use weir::state::AccountState;

fn main() -> anyhow::Result<()> {
    let engine = Engine::new()?;
    let rules = RuleSet::new(weir::packages::load_shipped(&engine)?)?;
    let mut evaluator = Evaluator::new(&rules, Policy::default());

    // The concert-ticket purchase from the story, as another team produces it.
    let event = br#"{
        "event_id": "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41",
        "event_type": "TransactionRecorded",
        "schema_version": 1,
        "occurred_at": "2026-11-28T19:42:07.512Z",
        "transaction_id": "tx-000184467",
        "account_id": "acct-1029",
        "amount": { "minor_units": 18900, "currency": "EUR" },
        "merchant": { "id": "m-ticketsrus", "name": "Tickets R Us", "category_code": "7922", "country": "NL" },
        "channel": "ecommerce",
        "attributes": { "card_last4": "4242" }
    }"#;
    let tx = parse_transaction(event, weir::events::MAX_EVENT_BYTES)?;
    let mut account = AccountState::default();
    let input = InputPosition { topic: "example".to_owned(), partition: 0, offset: 0 };
    let decision = evaluator.decide(&tx, &mut account, input);

    println!("{} for {}", decision.event_type.as_str(), decision.transaction_id);
    for r in &decision.rules {
        println!("  {:<15} {:?} {}", r.rule_id, r.outcome, &r.rule_version[..19]);
    }
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(())
}
