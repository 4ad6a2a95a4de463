//! Entity state: features per device and per beneficiary equal a
//! brute-force oracle recomputed from the input, over windows of 1 hour,
//! 24 hours and 7 days — in the embedded pipeline (in one run, and split
//! over two runs that share the store) and in a backtest, for an input in
//! event-time order and for one whose accounts are interleaved out of it
//! (through a crash between applying and deciding, too); the shipped
//! entity rules flag exactly what the oracle says; Kafka refuses entity
//! rules of kinds it does not route.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;
use std::time::Duration;

use weir::backtest::RulesUnder;
use weir::engine::{Engine, Evaluator, LoadedRule, Policy, RuleSet};
use weir::events::{DecisionEvent, RuleOutcome, RuleResult, TransactionRecorded};
use weir::manifest::RuleSpec;
use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};
use weir_sdk::prelude::*;

use crate::util::tempdir;

const HOUR: i64 = 3_600;
/// The probes' windows, in hours, and their evidence names.
const WINDOWS: [(i64, &str); 3] = [(1, "h1"), (24, "h24"), (168, "h168")];

/// A native entity rule that reports the distinct accounts its entity saw
/// in each window, and how many transactions it saw in all (which a
/// transaction applied twice would change), on every transaction with the
/// entity (a suspicion, so that a backtest against no rules lists every one).
fn probe(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    ctx.distinct_add("accounts", &tx.account_id);
    let seen = ctx.get("seen").map_or(0, |n| n.parse::<u64>().unwrap()) + 1;
    ctx.set("seen", seen);
    let mut verdict = Verdict::suspect("PROBE", "entity features");
    for (hours, name) in WINDOWS {
        verdict = verdict.with(name, ctx.distinct_count("accounts", Duration::from_secs(hours as u64 * 3_600)));
    }
    Ok(verdict.with("seen", seen))
}

fn probe_rule(id: &str, entity: &str) -> LoadedRule {
    let manifest = format!("[rule]\nid = \"{id}\"\nversion = \"1\"\nentity = \"{entity}\"\n");
    let spec = RuleSpec::parse(&manifest).unwrap();
    Engine::native(spec, weir_sdk::NativeRule::new(probe), id).unwrap()
}

/// The probes and the shipped entity rules, in wasm (the stream has no
/// cards, so merchant-new-cards passes every transaction).
fn entity_rules() -> RuleSet {
    let engine = Engine::new().unwrap();
    let shipped = weir::packages::load_shipped(&engine).unwrap();
    let mut rules = vec![probe_rule("probe-device", "device"), probe_rule("probe-counterparty", "counterparty")];
    rules.extend(shipped.into_iter().filter(|r| r.spec.entity.is_some()));
    assert_eq!(rules.len(), 5, "shared-device, mule-beneficiary and merchant-new-cards ship");
    RuleSet::new(rules).unwrap()
}

/// A seeded stream over ten days, in event-time order: 200 accounts, a
/// pool of 30 devices (a device is used by many accounts), transfers to 12
/// beneficiaries, and version 1 purchases with neither.
pub(crate) fn stream(n: usize, seed: u64) -> Vec<TransactionRecorded> {
    let mut state = seed;
    let mut next = move |below: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    let mut after_secs = 0;
    (0..n)
        .map(|i| {
            after_secs += next(600) as i64;
            let kind = next(10);
            let case = weir::cases::CaseTx {
                account: Some(format!("acct-{:03}", next(200))),
                after_secs: Some(after_secs),
                device_fingerprint: (kind < 6).then(|| format!("fp-{:02}", next(30))),
                counterparty_account: (kind >= 8).then(|| format!("payee-{:02}", next(12))),
                ..Default::default()
            };
            case.to_event(&format!("tx-{i:05}"))
        })
        .collect()
}

/// Evidence as (name, value) pairs.
type Evidence = Vec<(String, String)>;

fn evidence<const N: usize>(pairs: [(&str, String); N]) -> Evidence {
    pairs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

/// What the oracle expects of one transaction.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Expected {
    /// Per probe: the distinct accounts in each window.
    pub(crate) probes: BTreeMap<String, Evidence>,
    /// Per shipped entity rule that flags it: its evidence.
    pub(crate) flags: BTreeMap<String, Evidence>,
}

/// Recomputes every feature from scratch: for each transaction, the
/// transactions up to it in the input that share its entity.
pub(crate) fn oracle(txs: &[TransactionRecorded]) -> HashMap<String, Expected> {
    let distinct = |earlier: &[&TransactionRecorded], now: i64| -> Evidence {
        let mut features: Evidence = WINDOWS
            .iter()
            .map(|&(hours, name)| {
                let inside: HashSet<&str> = earlier
                    .iter()
                    .filter(|t| t.occurred_at_ms() > now - hours * HOUR * 1_000)
                    .map(|t| t.account_id.as_str())
                    .collect();
                (name.to_owned(), inside.len().to_string())
            })
            .collect();
        features.push(("seen".to_owned(), earlier.len().to_string()));
        features
    };
    let mut out = HashMap::new();
    for (i, tx) in txs.iter().enumerate() {
        let now = tx.occurred_at_ms();
        let mut expected = Expected::default();
        if let Some(device) = &tx.device_fingerprint {
            let same: Vec<&TransactionRecorded> =
                txs[..=i].iter().filter(|t| t.device_fingerprint.as_ref() == Some(device)).collect();
            let features = distinct(&same, now);
            let day = features[1].1.parse::<u32>().unwrap();
            if day > 3 {
                let evidence = evidence([
                    ("device", device.clone()),
                    ("accounts", day.to_string()),
                    ("window_secs", "86400".into()),
                ]);
                expected.flags.insert("shared-device".into(), evidence);
            }
            expected.probes.insert("probe-device".into(), features);
        }
        if let Some(payee) = &tx.counterparty_account {
            let same: Vec<&TransactionRecorded> =
                txs[..=i].iter().filter(|t| t.counterparty_account.as_ref() == Some(payee)).collect();
            expected.probes.insert("probe-counterparty".into(), distinct(&same, now));
            // A new sender: none of its transfers to the payee came before.
            let is_new = |k: usize| !same[..k].iter().any(|t| t.account_id == same[k].account_id);
            let last = same.len() - 1;
            let week = (0..=last).filter(|&k| is_new(k) && same[k].occurred_at_ms() > now - 168 * HOUR * 1_000).count();
            if is_new(last) && week > 3 {
                let evidence = evidence([
                    ("beneficiary", payee.clone()),
                    ("new_senders", week.to_string()),
                    ("window_secs", "604800".into()),
                ]);
                expected.flags.insert("mule-beneficiary".into(), evidence);
            }
        }
        out.insert(tx.transaction_id.clone(), expected);
    }
    out
}

/// What the rules' results say of one transaction, in the oracle's terms.
fn observed<'a>(results: impl IntoIterator<Item = (&'a str, RuleOutcome, Evidence)>) -> Expected {
    let mut seen = Expected::default();
    for (rule, outcome, evidence) in results {
        // A rule whose entity the transaction lacks passes unrun.
        if outcome == RuleOutcome::Pass {
            continue;
        }
        let kept = if rule.starts_with("probe-") { &mut seen.probes } else { &mut seen.flags };
        kept.insert(rule.to_owned(), evidence);
    }
    seen
}

pub(crate) fn from_results(results: &[RuleResult]) -> Expected {
    observed(results.iter().map(|r| {
        let pairs = r.evidence.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
        (r.rule_id.as_str(), r.outcome, pairs)
    }))
}

/// Counts the transactions whose features differ from the oracle's, and
/// shows the first few.
pub(crate) fn mismatches(oracle: &HashMap<String, Expected>, got: &HashMap<String, Expected>) -> (usize, Vec<String>) {
    let mut differing: Vec<String> = oracle
        .iter()
        .filter(|(id, expected)| got.get(*id).unwrap_or(&Expected::default()) != *expected)
        .map(|(id, expected)| format!("{id}: expected {expected:?}, got {:?}", got.get(id)))
        .collect();
    differing.sort();
    let n = differing.len();
    differing.truncate(3);
    (n, differing)
}

/// `txs` (in event-time order) as two streams, the accounts of one
/// interleaved with the other's `lag` transactions behind, as two Kafka
/// partitions one of which lags: each account's transactions stay in
/// order, the whole is not.
pub(crate) fn interleaved(txs: &[TransactionRecorded], lag: usize) -> Vec<TransactionRecorded> {
    let (ahead, behind): (Vec<_>, Vec<_>) =
        txs.iter().cloned().partition(|t| t.account_id.bytes().last().is_some_and(|b| b % 2 == 0));
    let mut out = Vec::with_capacity(txs.len());
    let mut behind = behind.into_iter();
    for (i, tx) in ahead.into_iter().enumerate() {
        out.push(tx);
        if i >= lag {
            out.extend(behind.next());
        }
    }
    out.extend(behind);
    out
}

fn lines(txs: &[TransactionRecorded]) -> String {
    txs.iter().map(|t| serde_json::to_string(t).unwrap() + "\n").collect()
}

fn decide_embedded(input: &str, out: &OutputPaths) -> weir::pipeline::Summary {
    decide_embedded_with(Cursor::new(input.as_bytes().to_vec()), out, &PipelineOptions::default()).unwrap()
}

fn decide_embedded_with(
    input: impl std::io::Read + Send,
    out: &OutputPaths,
    opts: &PipelineOptions,
) -> Result<weir::pipeline::Summary, weir::pipeline::PipelineError> {
    let mut ev = Evaluator::new(&entity_rules(), Policy::default());
    run_embedded(input, &mut ev, out, opts, |_| {})
}

fn embedded_features(out: &OutputPaths) -> HashMap<String, Expected> {
    weir_testkit::jsonl::<DecisionEvent>(&out.decisions)
        .into_iter()
        .map(|d| (d.transaction_id.clone(), from_results(&d.rules)))
        .collect()
}

#[test]
fn entity_features_equal_a_brute_force_oracle_embedded_and_across_runs() {
    let txs = stream(3_000, 7);
    let oracle = oracle(&txs);
    let flagged = oracle.values().filter(|e| !e.flags.is_empty()).count();
    let both = oracle.values().filter(|e| e.probes.len() == 2).count();
    assert!(flagged > 20, "the stream exercises the shipped rules: {flagged} flagged");
    let busy =
        oracle.values().filter(|e| e.probes.get("probe-device").is_some_and(|f| f[2].1.parse::<u32>().unwrap() > 10));
    assert!(busy.count() > 100, "devices see many accounts in a week");
    assert_eq!(both, 0, "the stream has no transaction with both entities; each is checked on its own");

    let dir = tempdir();
    let whole = OutputPaths::in_dir(&dir.path().join("whole"));
    decide_embedded(&lines(&txs), &whole);
    let (n, first) = mismatches(&oracle, &embedded_features(&whole));
    assert_eq!(n, 0, "in one run: {first:#?}");

    // Two runs over one store: the second reads the entity state the first
    // committed, and decides only what is new.
    let split = OutputPaths::in_dir(&dir.path().join("split"));
    decide_embedded(&lines(&txs[..1_234]), &split);
    decide_embedded(&lines(&txs), &split);
    let decisions = weir_testkit::jsonl::<DecisionEvent>(&split.decisions);
    assert_eq!(decisions.len(), txs.len(), "each transaction decided once");
    let (n, first) = mismatches(&oracle, &embedded_features(&split));
    assert_eq!(n, 0, "over two runs: {first:#?}");
}

#[test]
fn a_backtest_gives_the_oracles_entity_features() {
    let txs = stream(2_000, 11);
    let oracle = oracle(&txs);
    let got = backtest_features(&txs);
    let with_entity = oracle.values().filter(|e| !e.probes.is_empty()).count();
    assert_eq!(got.len(), with_entity, "every transaction with an entity changed");
    let (n, first) = mismatches(&oracle, &got);
    assert_eq!(n, 0, "{first:#?}");
}

/// The entity features a backtest of `txs` (in their order) gives.
fn backtest_features(txs: &[TransactionRecorded]) -> HashMap<String, Expected> {
    let records: Vec<Vec<u8>> = txs.iter().map(|t| serde_json::to_vec(t).unwrap()).collect();
    let (none, rules) = (RuleSet::new(Vec::new()).unwrap(), entity_rules());
    let dir = tempdir();
    let under = |rules| RulesUnder { dir: dir.path(), rules, lists: None };
    let outcome = weir::backtest::run(&records, under(&none), under(&rules), &Policy::default(), None);
    // Against no rules, every transaction with an entity is a change (the
    // probes suspect it), and the change lists the candidate's hits.
    outcome
        .report
        .changes
        .all
        .iter()
        .map(|change| {
            let hits = change.candidate_hits.iter().map(|h| {
                let pairs = h.evidence.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
                (h.rule_id.as_str(), h.outcome, pairs)
            });
            (change.transaction_id.clone(), observed(hits))
        })
        .collect()
}

/// An input whose accounts are interleaved out of event-time order (as a
/// lagging Kafka partition's are) has its entities applied in event-time
/// order, as Kafka applies them: the embedded run and a backtest give the
/// oracle's features, computed over the input in event-time order, and the
/// decisions come in input order. A copy of a transaction waiting is not
/// applied again.
#[test]
fn an_input_out_of_event_time_order_gives_the_oracles_features_embedded_and_in_a_backtest() {
    let txs = stream(2_500, 23);
    let oracle = oracle(&txs);
    let mut input = interleaved(&txs, 40);
    // Three transactions published twice while the first copy waits: each
    // is applied to its entities once (the probes count what they saw).
    for k in [100, 700, 1_500] {
        input.insert(k + 5, input[k].clone());
    }
    let dir = tempdir();
    let out = OutputPaths::in_dir(dir.path());
    let summary = decide_embedded(&lines(&input), &out);
    assert_eq!(summary.entity_late, 0);
    assert_eq!(summary.duplicates, 3);
    let (n, first) = mismatches(&oracle, &embedded_features(&out));
    assert_eq!(n, 0, "embedded: {first:#?}");
    let decisions = weir_testkit::jsonl::<DecisionEvent>(&out.decisions);
    assert_eq!(decisions.len(), txs.len(), "each transaction decided once");
    assert!(decisions.windows(2).all(|w| w[0].input.offset < w[1].input.offset), "decisions in input order");
    let (n, first) = mismatches(&oracle, &backtest_features(&input));
    assert_eq!(n, 0, "backtest: {first:#?}");
    // Taken in input order, the features would differ.
    let (n, _) = mismatches(&oracle, &self::oracle(&input));
    assert!(n > 100, "the interleaving changes what input order sees: {n}");
}

/// A run that stops (its input fails) after committing transactions
/// applied to their entities but waiting behind older ones: the rerun
/// takes their results from the store, applies none twice (the probes
/// count what their entities saw), and decides each once. A queue shorter
/// than the input's disorder makes transactions late: their entity rules
/// pass them unrun, and they are counted.
#[test]
fn a_stop_between_applying_and_deciding_applies_nothing_twice_and_a_short_queue_counts_the_late() {
    let txs = stream(1_500, 29);
    let oracle = oracle(&txs);
    let input = lines(&interleaved(&txs, 30));
    let opts = PipelineOptions { batch_size: 50, entity_max_waiting: 150, ..PipelineOptions::default() };
    let dir = tempdir();
    let out = OutputPaths::in_dir(&dir.path().join("stopped"));
    let failing = FailAfter { inner: Cursor::new(input.as_bytes().to_vec()), left: input.len() / 2 };
    assert!(decide_embedded_with(failing, &out, &opts).is_err(), "the input failed");
    {
        let store = weir::store::StateStore::open(&out.state).unwrap();
        let order = store.reader().unwrap().entity_order().unwrap();
        assert!(!order.held.is_empty(), "transactions applied and not decided were committed");
        assert!(order.released.is_some());
    }
    let summary = decide_embedded_with(Cursor::new(input.as_bytes().to_vec()), &out, &opts).unwrap();
    assert_eq!(summary.entity_late, 0);
    let decisions = weir_testkit::jsonl::<DecisionEvent>(&out.decisions);
    assert_eq!(decisions.len(), txs.len(), "each transaction decided once");
    let (n, first) = mismatches(&oracle, &embedded_features(&out));
    assert_eq!(n, 0, "over the stop: {first:#?}");
    let store = weir::store::StateStore::open(&out.state).unwrap();
    assert!(store.reader().unwrap().entity_order().unwrap().held.is_empty(), "nothing is left held");

    // A queue of 10 is shorter than the disorder: some come late.
    let short = OutputPaths::in_dir(&dir.path().join("short"));
    let opts = PipelineOptions { entity_max_waiting: 10, ..PipelineOptions::default() };
    let summary = decide_embedded_with(Cursor::new(input.as_bytes().to_vec()), &short, &opts).unwrap();
    assert!(summary.entity_late > 0, "late: {}", summary.entity_late);
    let decisions = weir_testkit::jsonl::<DecisionEvent>(&short.decisions);
    assert_eq!(decisions.len(), txs.len(), "late ones are decided too");
    let with_entity: HashSet<&str> = txs
        .iter()
        .filter(|t| t.device_fingerprint.is_some() || t.counterparty_account.is_some())
        .map(|t| t.transaction_id.as_str())
        .collect();
    let unrun = decisions
        .iter()
        .filter(|d| with_entity.contains(d.transaction_id.as_str()) && from_results(&d.rules).probes.is_empty())
        .count();
    // Every transaction goes to its merchant too (merchant-new-cards), so
    // the late count includes some with neither probe's entity.
    assert!(unrun > 0 && unrun as u64 <= summary.entity_late, "late transactions' probes pass unrun: {unrun}");
}

/// Reads `left` bytes of `inner`, then fails.
struct FailAfter {
    inner: Cursor<Vec<u8>>,
    left: usize,
}

impl std::io::Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the input failed"));
        }
        let n = buf.len().min(self.left);
        let read = self.inner.read(&mut buf[..n])?;
        self.left -= read;
        Ok(read)
    }
}

#[test]
fn kafka_refuses_entity_rules_of_kinds_it_does_not_route_naming_why() {
    let dir = tempdir();
    let rules = dir.path().join("rules");
    weir::packages::export_shipped(&rules).unwrap();
    let validator = weir::packages::Validator::new(Engine::new().unwrap(), weir::packages::Trust::default());
    let live =
        weir::live::LiveRules::load(&rules, validator.only_entity_kinds(vec![weir_sdk::Entity::Merchant])).unwrap();
    let running: Vec<String> = live.current().set.rules().iter().map(|r| r.spec.id.clone()).collect();
    assert!(running.contains(&"velocity".to_owned()) && !running.contains(&"shared-device".to_owned()), "{running:?}");
    assert!(running.contains(&"merchant-new-cards".to_owned()), "a routed kind's rule runs: {running:?}");
    let refused = live.refused();
    let ids: Vec<String> = refused.iter().map(|r| r.path.display().to_string()).collect();
    assert_eq!(refused.len(), 2, "{ids:?}");
    for r in &refused {
        assert!(r.reason.contains("an entity rule") && r.reason.contains("`kafka.entities`"), "{}", r.reason);
    }
}

#[test]
fn weir_rules_says_whose_state_each_rule_keeps() {
    let dir = tempdir();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    let o = crate::util::weir(&["rules", "rules"], dir.path());
    let text = crate::util::stdout(&o);
    assert!(o.status.success(), "{text}");
    let line = |id: &str| text.lines().find(|l| l.contains(&format!(" {id} "))).unwrap_or_default().to_owned();
    assert!(line("shared-device").contains(" device "), "{text}");
    assert!(line("mule-beneficiary").contains(" counterparty "), "{text}");
    assert!(line("merchant-new-cards").contains(" merchant "), "{text}");
    assert!(line("velocity").contains(" account "), "{text}");
}

/// An entity pass whose decision never came (its account could not be
/// read) leaves nothing for the next transaction: its results are of
/// another transaction.
#[test]
fn entity_results_of_an_undecided_transaction_are_not_taken_by_the_next() {
    let set = RuleSet::new(vec![probe_rule("probe-device", "device")]).unwrap();
    let mut ev = Evaluator::new(&set, Policy::default());
    let txs = stream(40, 3);
    let with = txs.iter().find(|t| t.device_fingerprint.is_some()).unwrap();
    let without = txs.iter().find(|t| t.device_fingerprint.is_none()).unwrap();
    let mut entity = weir::state::AccountState::default();
    ev.decide_entity(weir_sdk::Entity::Device, with, &mut entity);
    let decision = ev.decide(without, &mut weir::state::AccountState::default(), crate::util::position(1));
    assert_eq!(decision.rules[0].outcome, RuleOutcome::Pass, "unrun, not the other transaction's suspicion");
    assert!(decision.rules[0].evidence.is_empty());
    // And its own pass is taken.
    ev.decide_entity(weir_sdk::Entity::Device, with, &mut entity);
    let decision = ev.decide(with, &mut weir::state::AccountState::default(), crate::util::position(2));
    assert_eq!(decision.rules[0].outcome, RuleOutcome::Suspect);
}
