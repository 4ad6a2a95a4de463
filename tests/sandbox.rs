//! The sandbox: a hostile or broken rule costs only its own verdict, and a
//! component that is not a rule for this contract is refused with a reason.

use weir::engine::{Engine, LoadError, RuleError};
use weir::events::{DecisionType, FailurePolicy, RuleOutcome};
use weir::manifest::RuleSpec;
use weir::state::AccountState;

use crate::util::{evaluator, guest, hostile, position, tx};

fn error_of(behaviour: &str) -> String {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "hostile", behaviour, "")]);
    let d = ev.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    assert_eq!(d.rules[0].outcome, RuleOutcome::Error, "{behaviour}: {:?}", d.rules[0]);
    d.rules[0].error.clone().unwrap()
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    assert_eq!(error_of("loop"), RuleError::OutOfFuel { limit: 2_000_000 }.to_string());
}

/// Bulk memory work (filling 8 MiB again and again) is charged too: the
/// rule stops at its fuel, not after an hour of `memory.fill`.
#[test]
fn bulk_memory_work_runs_out_of_fuel() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile_with_limits(&engine, "filler", "memfill", "memory_mib = 16")]);
    let d = ev.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    let limit = weir::manifest::DEFAULT_FUEL;
    assert_eq!(d.rules[0].error.as_deref(), Some(RuleError::OutOfFuel { limit }.to_string().as_str()));
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    assert_eq!(error_of("alloc"), RuleError::MemoryLimit { limit_mib: 8 }.to_string());
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    assert_eq!(error_of("stack"), RuleError::StackOverflow.to_string());
}

#[test]
fn panic_is_a_trap_that_carries_the_panic_message() {
    let err = error_of("panic");
    assert!(err.starts_with("trapped:"), "{err}");
    assert!(err.contains("hostile rule panicked on tx-1"), "{err}");
}

#[test]
fn returned_error_is_recorded_as_is() {
    assert_eq!(error_of("error"), "returned an error: hostile rule gave up");
}

#[test]
fn failing_rule_costs_only_its_own_verdict() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![
        hostile(&engine, "a-looper", "loop", ""),
        hostile(&engine, "b-locker", "lock", ""),
        hostile(&engine, "c-hog", "alloc", ""),
    ]);
    let mut account = AccountState::default();
    for i in 0..3 {
        let d = ev.decide(&tx(&format!("tx-{i}"), i), &mut account, position(i));
        let outcomes: Vec<_> = d.rules.iter().map(|r| (r.rule_id.as_str(), r.outcome)).collect();
        assert_eq!(
            outcomes,
            [("a-looper", RuleOutcome::Error), ("b-locker", RuleOutcome::Lock), ("c-hog", RuleOutcome::Error)]
        );
        let expected = if i == 0 { DecisionType::AccountLocked } else { DecisionType::FraudSuspected };
        assert_eq!(d.event_type, expected, "one AccountLocked per lock; later locks are suspicions");
    }
    let stats: Vec<_> = ev.stats().map(|(id, s)| (id.to_owned(), s.invocations, s.errors)).collect();
    assert_eq!(stats, [("a-looper".into(), 3, 3), ("b-locker".into(), 3, 0), ("c-hog".into(), 3, 3)]);
}

#[test]
fn failed_evaluation_leaves_no_state_behind() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "hostile", "panic", ""), hostile(&engine, "writer", "pass", "")]);
    let mut account = AccountState::default();
    ev.decide(&tx("tx-1", 0), &mut account, position(1));
    assert!(!account.rules.contains_key("hostile"), "the panicking rule's write was rolled back");
    assert_eq!(account.rules["writer"].get("touched"), Some("tx-1"));
    assert_eq!(account.history.len(), 1);
}

#[test]
fn trapped_instance_is_recreated_and_works_again() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "hostile", "panic-on:tx-1", "")]);
    let mut account = AccountState::default();
    let outcomes: Vec<_> =
        (0..4).map(|i| ev.decide(&tx(&format!("tx-{i}"), i), &mut account, position(i)).rules[0].outcome).collect();
    assert_eq!(outcomes, [RuleOutcome::Pass, RuleOutcome::Error, RuleOutcome::Pass, RuleOutcome::Pass]);
    // The instance that trapped was replaced: its successor kept working and
    // wrote its state for the later transactions.
    assert_eq!(account.rules["hostile"].get("touched"), Some("tx-3"));
}

#[test]
fn failure_policy_decides_what_a_failure_counts_as() {
    let engine = Engine::new().unwrap();
    let mut open = evaluator(vec![hostile(&engine, "hostile", "loop", "failure = \"fail-open\"")]);
    let d = open.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    assert_eq!(d.event_type, DecisionType::TransactionVerified);
    assert_eq!(d.rules[0].failure_policy, Some(FailurePolicy::FailOpen));

    let mut closed = evaluator(vec![hostile(&engine, "hostile", "loop", "failure = \"fail-closed\"")]);
    let d = closed.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    assert_eq!(d.event_type, DecisionType::FraudSuspected);
    assert_eq!(d.rules[0].failure_policy, Some(FailurePolicy::FailClosed));
    assert!(d.reason.unwrap().contains("ran out of fuel"));
}

#[test]
fn shadow_rule_is_recorded_but_never_decides() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "hostile", "lock", "mode = \"shadow\"")]);
    let d = ev.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    assert_eq!(d.rules[0].outcome, RuleOutcome::Lock);
    assert_eq!(d.event_type, DecisionType::TransactionVerified);
}

fn refusal(bytes: &[u8]) -> LoadError {
    let engine = Engine::new().unwrap();
    let manifest = "[rule]\nid = \"x\"\nversion = \"1\"\n";
    match engine.load(RuleSpec::parse(manifest).unwrap(), bytes, manifest) {
        Ok(_) => panic!("the component was accepted"),
        Err(e) => e,
    }
}

#[test]
fn component_for_another_contract_version_is_refused_naming_it() {
    let err = refusal(&guest("future-contract"));
    assert!(matches!(err, LoadError::IncompatibleContract { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("weir:rule@3.0.0") && text.contains("weir:rule@2.4.0"), "{text}");
    assert!(text.contains("rebuild the rule"), "{text}");
}

/// A rule built for `weir:rule@1.0.0` — the first SDK's contract, where the
/// transaction crosses as a record of strings — runs unchanged beside rules
/// built for the current contract, with the same state, history, verdict
/// and failure semantics.
#[test]
fn rules_built_for_the_first_contract_still_run() {
    let engine = Engine::new().unwrap();
    let manifest = "[rule]\nid = \"legacy\"\nversion = \"1\"\n[params]\nburst = 3\n";
    let legacy = engine.load(RuleSpec::parse(manifest).unwrap(), &guest("legacy-v1"), manifest).unwrap();
    let mut ev = evaluator(vec![legacy, hostile(&engine, "writer", "pass", "")]);
    let mut account = AccountState::default();
    let mut decide = |id: &str, secs: i64, attribute: Option<&str>| {
        let mut t = tx(id, secs);
        if let Some(name) = attribute {
            t.attributes.insert(name.to_owned(), "1".to_owned());
        }
        ev.decide(&t, &mut account, position(secs)).rules
    };
    assert_eq!(decide("tx-1", 0, None)[0].outcome, RuleOutcome::Pass);
    assert_eq!(decide("tx-2", 60, None)[0].outcome, RuleOutcome::Pass);
    let third = decide("tx-3", 120, None);
    assert_eq!((third[0].rule_id.as_str(), third[0].outcome), ("legacy", RuleOutcome::Suspect));
    assert_eq!(third[0].reason_code, "LEGACY_BURST");
    assert_eq!(third[0].message, "3 transactions within an hour");
    let evidence: Vec<(&str, &str)> = third[0].evidence.iter().map(|e| (e.name.as_str(), e.value.as_str())).collect();
    assert_eq!(evidence, [("count", "3"), ("history", "2"), ("previous", "tx-2")]);
    assert_eq!((third[1].rule_id.as_str(), third[1].outcome), ("writer", RuleOutcome::Pass));

    // A returned error and a trap cost the legacy rule its verdict and keep
    // none of its writes; the next transaction sees the state of tx-3.
    let failed = decide("tx-4", 180, Some("legacy.fail"));
    assert_eq!(failed[0].error.as_deref(), Some("returned an error: asked to fail on tx-4"));
    let trapped = decide("tx-5", 240, Some("legacy.trap"));
    assert!(trapped[0].error.as_deref().unwrap().starts_with("trapped:"), "{:?}", trapped[0]);
    let after = decide("tx-6", 300, None);
    let previous = after[0].evidence.iter().find(|e| e.name == "previous").map(|e| e.value.as_str());
    assert_eq!((after[0].outcome, previous), (RuleOutcome::Suspect, Some("tx-3")));
    let count = after[0].evidence.iter().find(|e| e.name == "count").map(|e| e.value.as_str());
    assert_eq!(count, Some("4"), "tx-4 and tx-5 added nothing to the series");
}

/// A rule built for `weir:rule@2.0.0`, before 2.1.0 added `distinct`,
/// runs unchanged: its imports and its export resolve to 2.3.0's.
#[test]
fn rules_built_for_contract_2_0_still_run() {
    let engine = Engine::new().unwrap();
    let manifest = "[rule]\nid = \"v2-0\"\nversion = \"1\"\n";
    let rule = engine.load(RuleSpec::parse(manifest).unwrap(), &guest("legacy-v2-0"), manifest).unwrap();
    let mut ev = evaluator(vec![rule]);
    let mut account = AccountState::default();
    let mut decide = |id: &str, secs: i64| ev.decide(&tx(id, secs), &mut account, position(secs)).rules;
    assert_eq!(decide("tx-1", 0)[0].outcome, RuleOutcome::Pass);
    assert_eq!(decide("tx-2", 60)[0].outcome, RuleOutcome::Pass);
    let third = decide("tx-3", 120);
    assert_eq!((third[0].outcome, third[0].reason_code.as_str()), (RuleOutcome::Suspect, "V2_0_BURST"));
    let evidence: Vec<(&str, &str)> = third[0].evidence.iter().map(|e| (e.name.as_str(), e.value.as_str())).collect();
    assert_eq!(evidence[0], ("count", "3"));
    // The history and the transaction cross as wire-encoded bytes.
    assert!(evidence[1].1.parse::<usize>().unwrap() > 0, "two earlier transactions: {evidence:?}");
    assert!(evidence[2].1.parse::<usize>().unwrap() > 0, "the previous transaction's size was stored: {evidence:?}");
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    // The smallest valid core module: magic and version 1.
    let err = refusal(b"\0asm\x01\0\0\0");
    assert!(matches!(err, LoadError::CoreModule));
    assert!(err.to_string().contains("wasm32-wasip2"));
}

#[test]
fn garbage_and_truncated_files_are_refused() {
    assert!(matches!(refusal(b"this is not wasm at all"), LoadError::NotWasm { .. }));
    let full = guest("velocity");
    let err = refusal(&full[..full.len() / 2]);
    assert!(matches!(err, LoadError::Compile(_)), "{err:?}");
}

/// The hostile rule with `behaviour` and extra `[limits]` lines.
fn hostile_with_limits(engine: &Engine, id: &str, behaviour: &str, limits: &str) -> weir::engine::LoadedRule {
    let manifest =
        format!("[rule]\nid = \"{id}\"\nversion = \"1\"\n[limits]\n{limits}\n[params]\nbehaviour = \"{behaviour}\"\n");
    engine.load(RuleSpec::parse(&manifest).unwrap(), &guest("hostile"), &manifest).unwrap()
}

#[test]
fn state_over_the_quota_is_the_rules_error_and_none_of_it_is_kept() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile_with_limits(&engine, "hoarder", "hoard", "state_kib = 256")]);
    let mut account = AccountState::default();
    let mut errors = Vec::new();
    for i in 0..40 {
        let d = ev.decide(&tx(&format!("tx-{i}"), i), &mut account, position(i));
        errors.push(d.rules[0].error.clone());
        let usage = account.rules["hoarder"].usage();
        assert!(usage.bytes <= 256 * 1024, "after tx-{i} the rule keeps {} bytes", usage.bytes);
    }
    // Three 64 KiB values fit in 256 KiB; the fourth would not.
    assert!(errors[..3].iter().all(Option::is_none), "{errors:?}");
    let err = errors[3].as_deref().unwrap();
    assert!(err.contains("state quota") && err.contains("262144"), "{err}");
    assert_eq!(account.rules["hoarder"].get("n"), Some("3"), "the failed evaluations' writes were undone");
}

#[test]
fn a_rule_writing_in_a_loop_is_stopped_at_its_quota_not_at_its_fuel() {
    let engine = Engine::new().unwrap();
    let mut ev =
        evaluator(vec![hostile_with_limits(&engine, "writer", "write-loop", "fuel = 5000000\nmemory_mib = 64")]);
    let mut account = AccountState::default();
    let d = ev.decide(&tx("tx-1", 0), &mut account, position(1));
    let err = d.rules[0].error.as_deref().unwrap();
    assert!(err.contains("wrote more than the whole quota of 65536 bytes"), "{err}");
    assert!(account.rules.get("writer").is_none_or(|s| s.is_empty()), "nothing of it was kept");
}

#[test]
fn explanations_over_the_limits_are_the_rules_error() {
    let engine = Engine::new().unwrap();
    let huge = hostile_with_limits(&engine, "huge", "huge-message", "memory_mib = 128\nfuel = 5000000");
    let escape = hostile_with_limits(&engine, "escape", "escape", "");
    let mut ev = evaluator(vec![huge, escape]);
    let d = ev.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    let by_id = |id: &str| d.rules.iter().find(|r| &*r.rule_id == id).unwrap();
    let err = by_id("huge").error.as_deref().unwrap();
    assert!(err.contains("message is 2097152 bytes; at most 1024"), "{err}");
    let err = by_id("escape").error.as_deref().unwrap();
    assert!(err.contains("reason code"), "{err}");
    assert_eq!(d.event_type, DecisionType::TransactionVerified, "fail-open: the errors do not suspect");
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.len() < 16 * 1024, "the decision stays small: {} bytes", json.len());
    assert!(!json.contains('\u{1b}') && !json.contains("\\u001b"), "no terminal escape reaches the decision: {json}");
}

/// Decides `n` transactions `t0`, `t1`, ... with `ev`, one account.
fn decide_n(ev: &mut weir::engine::Evaluator, n: i64) -> Vec<weir::events::DecisionEvent> {
    let mut account = AccountState::default();
    (0..n).map(|i| ev.decide(&tx(&format!("t{i}"), i), &mut account, position(i))).collect()
}

#[test]
fn a_rule_failing_again_and_again_is_quarantined_until_a_new_version() {
    use weir::engine::QUARANTINE_AFTER;
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "grumpy", "error", "")]);
    let n = i64::from(QUARANTINE_AFTER) + 10;
    let decisions = decide_n(&mut ev, n);
    let error = |i: usize| decisions[i].rules[0].error.clone().unwrap();
    assert!(error(0).contains("returned an error"), "{}", error(0));
    assert!(error(QUARANTINE_AFTER as usize - 1).contains("returned an error"));
    let skipped = error(QUARANTINE_AFTER as usize);
    assert!(
        skipped.contains("is quarantined: 50 of its last 100 evaluations failed")
            && skipped.contains("hostile rule gave up"),
        "{skipped}"
    );
    assert!(decisions.iter().all(|d| d.rules[0].outcome == RuleOutcome::Error));
    let stats = ev.stats().next().unwrap().1.clone();
    assert!(stats.quarantined);
    assert!(stats.quarantine_reason.as_deref().is_some_and(|r| r.starts_with("50 of its last 100")), "{stats:?}");
    assert_eq!(stats.errors, n as u64, "skipped transactions count as errors");
    // A new version (here: a new manifest) runs again.
    let fixed = hostile(&engine, "grumpy", "pass", "");
    ev.swap(&weir::engine::RuleSet::new(vec![fixed]).unwrap());
    let mut account = AccountState::default();
    let d = ev.decide(&tx("after", n), &mut account, position(n));
    assert_eq!(d.rules[0].outcome, RuleOutcome::Pass, "{:?}", d.rules[0]);
    assert!(!ev.stats().next().unwrap().1.quarantined);
}

/// Failing every other evaluation is half of the window: quarantined at
/// the 50th failure, the 100th evaluation, though it never failed twice in
/// a row.
#[test]
fn a_rule_failing_half_the_time_is_quarantined_on_its_share() {
    let engine = Engine::new().unwrap();
    let mut ev = evaluator(vec![hostile(&engine, "flaky", "every-other:error", "")]);
    let decisions = decide_n(&mut ev, 120);
    let outcome = |i: usize| &decisions[i].rules[0];
    assert_eq!(outcome(98).outcome, RuleOutcome::Pass, "49 failures of 99: still running");
    assert!(outcome(99).error.as_deref().is_some_and(|e| e.starts_with("returned an error")), "{:?}", outcome(99));
    let skipped = outcome(100).error.clone().unwrap();
    assert!(skipped.contains("is quarantined: 50 of its last 100 evaluations failed"), "{skipped}");
    assert!(decisions[100..].iter().all(|d| d.rules[0].error.as_deref().is_some_and(|e| e.contains("quarantined"))));
    assert!(ev.stats().next().unwrap().1.quarantined);
}

/// A rule that mostly succeeds but spends its whole fuel on every other
/// transaction is quarantined on its cost, after a handful of evaluations,
/// long before its failure share would tell; a rule at the average stays.
#[test]
fn a_rule_costing_more_than_its_average_allows_is_quarantined_on_its_fuel() {
    use weir::engine::{FUEL_AVERAGE_MAX, FUEL_WINDOW};
    use weir::manifest::MAX_FUEL;
    let engine = Engine::new().unwrap();
    let limits = format!("fuel = {MAX_FUEL}");
    let mut ev = evaluator(vec![hostile_with_limits(&engine, "pricey", "every-other:loop", &limits)]);
    let decisions = decide_n(&mut ev, 20);
    let allowance = FUEL_AVERAGE_MAX * FUEL_WINDOW as u64;
    let first_skipped = decisions
        .iter()
        .position(|d| d.rules[0].error.as_deref().is_some_and(|e| e.contains("quarantined")))
        .expect("quarantined");
    // Three evaluations at the maximum use the window's whole allowance;
    // with the passes' own fuel they go over it.
    assert_eq!(allowance, 3 * MAX_FUEL);
    assert_eq!(first_skipped, 6, "t1, t3 and t5 ran out of fuel; t6 is skipped");
    let why = decisions[first_skipped].rules[0].error.clone().unwrap();
    assert!(
        why.contains("its last 6 evaluations used")
            && why.contains(&format!("more than its last {FUEL_WINDOW} may use ({allowance}, {FUEL_AVERAGE_MAX} each")),
        "{why}"
    );
    let stats = ev.stats().next().unwrap().1.clone();
    assert!(stats.quarantined);
    assert!(stats.fuel > allowance && stats.fuel <= allowance + MAX_FUEL, "it spent {} at most", stats.fuel);
    assert!(stats.errors - 3 == 20 - first_skipped as u64, "three failures, then skips: {stats:?}");
}

#[test]
fn one_transactions_rules_share_a_fuel_budget() {
    use weir::engine::TRANSACTION_FUEL;
    use weir::manifest::MAX_FUEL;
    let engine = Engine::new().unwrap();
    let limits = format!("fuel = {MAX_FUEL}");
    let at_most = (TRANSACTION_FUEL / MAX_FUEL) as usize;
    let ids: Vec<String> = (0..=at_most).map(|i| format!("r{i}")).collect();
    let rules = ids.iter().map(|id| hostile_with_limits(&engine, id, "loop", &limits)).collect();
    let mut ev = evaluator(rules);
    let d = ev.decide(&tx("tx-1", 0), &mut AccountState::default(), position(1));
    let errors: Vec<_> = d.rules.iter().map(|r| r.error.clone().unwrap()).collect();
    let ran_out = format!("ran out of fuel after {MAX_FUEL}");
    assert!(errors[..at_most].iter().all(|e| e.contains(&ran_out)), "{errors:?}");
    assert_eq!(errors[at_most], RuleError::BudgetSpent.to_string());
}
