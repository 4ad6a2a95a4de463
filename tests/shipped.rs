//! The shipped rules: their sandbox cases pass, the wasm and native builds
//! agree on every verdict, and the demo stream tells the story.

use std::collections::HashMap;

use weir::cases::{CaseFile, run_cases};
use weir::demo;
use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::events::DecisionType;
use weir::manifest::RuleSpec;
use weir::packages::{SHIPPED, load_shipped};
use weir::state::AccountState;

use crate::native_rules::native_rules;
use crate::util::{decide_embedded, position};

#[test]
fn every_shipped_rule_passes_its_sandbox_cases() {
    let engine = Engine::new().unwrap();
    assert!(SHIPPED.len() >= 5, "at least five shipped rules");
    for rule in SHIPPED {
        let spec = RuleSpec::parse(rule.manifest).unwrap();
        let cases: CaseFile = toml::from_str(rule.cases).unwrap();
        assert!(cases.cases.len() >= 3, "{} has too few cases", rule.name);
        assert!(
            cases.cases.iter().any(|c| c.expect.outcome != weir::events::RuleOutcome::Pass),
            "{} has no case that fires",
            rule.name
        );
        let reports = run_cases(&engine, rule.component, rule.manifest, None, &spec, &cases).unwrap();
        for r in reports {
            assert!(r.failure.is_none(), "{} / {}: {}", rule.name, r.name, r.failure.unwrap());
        }
    }
}

#[test]
fn wasm_and_native_builds_give_identical_decisions() {
    let engine = Engine::new().unwrap();
    let mut wasm = Evaluator::new(&RuleSet::new(load_shipped(&engine).unwrap()).unwrap(), Policy::default());
    let mut native = Evaluator::new(&RuleSet::new(native_rules()).unwrap(), Policy::default());
    let stream = demo::generate(4000, 200, 11);
    let (mut a, mut b) = (HashMap::<String, AccountState>::new(), HashMap::<String, AccountState>::new());
    let mut fired = 0;
    for (i, line) in stream.lines.iter().enumerate() {
        let Ok(tx) = weir::events::parse_transaction(line.as_bytes(), 1 << 20) else { continue };
        let dw = wasm.decide(&tx, a.entry(tx.account_id.clone()).or_default(), position(i as i64));
        let dn = native.decide(&tx, b.entry(tx.account_id.clone()).or_default(), position(i as i64));
        assert_eq!(dw, dn, "line {i}");
        fired += usize::from(dw.event_type != DecisionType::TransactionVerified);
    }
    assert!(fired > 5, "the stream exercises the rules ({fired} non-verified decisions)");
    assert_eq!(a, b, "the account state is identical too");
}

#[test]
fn demo_stream_tells_the_story() {
    let stream = demo::generate(5000, 500, 1029);
    let (summary, by_tx) = decide_embedded(&stream.lines);
    assert_eq!(summary.dead_letters, 3, "the three malformed records");
    let outcome = |scene: usize| {
        let (_, tx) = &stream.story[scene];
        by_tx[tx].event_type
    };
    use DecisionType::*;
    let expected = [
        TransactionVerified,
        FraudSuspected, // the device ring's fourth account
        AccountLocked,
        FraudSuspected,
        FraudSuspected,
        FraudSuspected,
        FraudSuspected,
        FraudSuspected,
        FraudSuspected,      // the mule's fourth new sender
        TransactionVerified, // a first-time card at a leaking merchant: scored, not suspected
    ];
    assert_eq!(stream.story.len(), expected.len());
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(outcome(i), *want, "scene {i}: {}", stream.story[i].0);
    }
    let ring = &by_tx[&stream.story[1].1];
    assert!(ring.rules.iter().any(|r| r.rule_id == "shared-device" && r.reason_code == "DEVICE_SHARED"), "{ring:?}");
    let mule = &by_tx[&stream.story[8].1];
    assert!(mule.rules.iter().any(|r| r.rule_id == "mule-beneficiary" && r.reason_code == "MULE_BENEFICIARY"));
    let merchant = &by_tx[&stream.story[9].1];
    assert!(merchant.rules.iter().any(|r| r.rule_id == "merchant-new-cards" && r.reason_code == "MERCHANT_NEW_CARDS"));
    let lock = &by_tx[&stream.story[2].1];
    assert!(lock.rules.iter().any(|r| r.rule_id == "card-testing" && r.reason_code == "CARD_TESTING"));
    assert!(lock.reason.as_deref().unwrap().contains("card-testing"));
    let concert = &by_tx["tx-000184467"];
    assert_eq!(concert.causation_id, "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41");
    assert_eq!(concert.rules.len(), SHIPPED.len(), "every rule took part and is named");
    assert!(concert.rules.iter().all(|r| r.rule_version.starts_with("sha256:")));
    let locks = by_tx.values().filter(|d| d.event_type == AccountLocked).count();
    assert!(locks >= 1 && (locks as u64) < summary.decided() / 50, "locks are rare: {locks}");
}
