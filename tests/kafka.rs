//! weir on a real Apache Kafka broker (KRaft, 127.0.0.1), started once per
//! test run by `scripts/kafka.sh` unless `WEIR_TEST_KAFKA_BOOTSTRAP` names
//! one. Every test has its own topics and consumer group; `weir run` runs as
//! a child process, so it can be killed with SIGKILL like a real crash.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use weir::events::{DecisionEvent, DecisionType, TransactionRecorded};
use weir_testkit::{Broker, WeirProcess, kafka_script, read_committed, read_to_end};

use crate::util::{card_testing, decide_embedded, decide_embedded_with, tempdir};

/// Serializes the broker-restart test against the others.
pub(crate) static BROKER_LOCK: RwLock<()> = RwLock::new(());

/// The broker: `WEIR_TEST_KAFKA_BOOTSTRAP`, or the project's.
pub(crate) fn broker() -> &'static Broker {
    Broker::get(&["WEIR_TEST_KAFKA_BOOTSTRAP"])
}

/// Whether the broker is the project's own, which a test may stop. An
/// external broker is not ours to stop: a test that stops the broker says
/// so and does nothing else there.
fn own_broker(test: &str) -> bool {
    if !broker().project {
        eprintln!("{test}: stops the project's broker only; skipped for an external one");
    }
    broker().project
}

/// How long a weir instance may take to stop after SIGTERM.
pub(crate) const STOP_DEADLINE: Duration = Duration::from_secs(90);

/// One test's topics, group and working directory.
pub(crate) struct Setup {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn new(name: &str) -> Setup {
        broker();
        let dir = tempdir();
        weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
        Setup { prefix: weir_testkit::unique_prefix(name), dir }
    }

    pub(crate) fn topic(&self, t: &str) -> String {
        format!("{}.{t}", self.prefix)
    }

    /// weir's configuration for instance `instance`, from weir's own types.
    pub(crate) fn weir_config(&self, instance: &str) -> weir::config::Config {
        let rules = self.dir.path().join("rules");
        let mut config = weir_testkit::config::kafka(&broker().bootstrap, &self.prefix, instance, &rules);
        let kafka = config.kafka.as_mut().unwrap();
        kafka.partitions = 4;
        kafka.batch_max_records = 100;
        kafka.transaction_timeout_ms = 6000;
        config
    }

    /// Writes weir.toml for instance `instance` and returns its path.
    pub(crate) fn config(&self, instance: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{instance}.toml"));
        weir_testkit::config::write(&self.weir_config(instance), &path);
        path
    }

    pub(crate) fn log_path(&self, instance: &str) -> PathBuf {
        self.dir.path().join(format!("{instance}.log"))
    }

    pub(crate) fn start(&self, instance: &str) -> WeirProcess {
        WeirProcess::start(
            Path::new(env!("CARGO_BIN_EXE_weir")),
            &self.config(instance),
            &self.log_path(instance),
            "info",
        )
    }

    /// Starts instance `instance` with `config` (made from
    /// [`Setup::weir_config`] and changed).
    pub(crate) fn start_with(&self, instance: &str, config: &weir::config::Config) -> WeirProcess {
        let config_path = self.dir.path().join(format!("{instance}.toml"));
        weir_testkit::config::write(config, &config_path);
        WeirProcess::start(Path::new(env!("CARGO_BIN_EXE_weir")), &config_path, &self.log_path(instance), "info")
    }

    /// Starts instance `instance` with its status endpoint on a free
    /// address: the process, and the address.
    pub(crate) fn start_with_status(&self, instance: &str) -> (WeirProcess, String) {
        let addr = crate::deploy::free_addr();
        let mut config = self.weir_config(instance);
        config.status.listen = Some(addr.clone());
        (self.start_with(instance, &config), addr)
    }

    pub(crate) fn log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.log_path(instance)).unwrap_or_default()
    }

    /// Produces the records to the input topic, keyed by account id.
    pub(crate) fn produce(&self, lines: &[String]) {
        // weir creates its topics at start; create the input now so records
        // can be produced before weir runs.
        weir::kafka::create_topics(&self.kafka_config(), &Default::default()).unwrap();
        self.produce_quietly(lines);
    }

    /// Produces the records to the (existing) input topic, keyed by account
    /// id, waiting out a broker outage.
    pub(crate) fn produce_quietly(&self, lines: &[String]) {
        weir_testkit::produce_by_account(broker(), &self.topic("in"), lines);
    }

    pub(crate) fn kafka_config(&self) -> weir::kafka::KafkaConfig {
        self.weir_config("admin").kafka.unwrap()
    }

    pub(crate) fn decision_topics(&self) -> Vec<String> {
        vec![self.topic("verified"), self.topic("suspected"), self.topic("locked")]
    }

    /// Waits until `expected` decisions are committed (or panics after `timeout`).
    pub(crate) fn wait_for_decisions(&self, expected: usize, timeout: Duration) {
        read_committed(broker(), &self.decision_topics(), expected, timeout);
    }

    /// Every committed decision, read to the end of the topics (call once
    /// every instance stopped: nothing is pending then).
    pub(crate) fn all_decisions(&self) -> Vec<DecisionEvent> {
        let records = read_to_end(broker(), &self.decision_topics(), Duration::from_secs(60));
        records.iter().map(|r| serde_json::from_slice(&r.payload).unwrap()).collect()
    }

    /// Every committed dead letter: (the `weir.reason` header, payload).
    pub(crate) fn all_dead_letters(&self) -> Vec<(String, String)> {
        read_to_end(broker(), &[self.topic("dead")], Duration::from_secs(60))
            .into_iter()
            .map(|r| {
                (
                    r.header("weir.reason").unwrap_or_default().to_owned(),
                    String::from_utf8_lossy(&r.payload).into_owned(),
                )
            })
            .collect()
    }
}

/// The decisions of an uninterrupted embedded run over the same input,
/// with the rules weir runs on Kafka: the shipped ones but the entity
/// rules, which it refuses there for now.
fn embedded_reference(lines: &[String]) -> HashMap<String, DecisionEvent> {
    decide_embedded_with(lines, |r| r.spec.entity.is_none()).1
}

/// Asserts one decision per transaction, equal to the reference's in
/// everything but the input position.
fn assert_exactly_once_and_equal(got: &[DecisionEvent], reference: &HashMap<String, DecisionEvent>) {
    assert_exactly_once(got, reference);
    for d in got {
        let mut want = reference[&d.transaction_id].clone();
        want.input = d.input.clone();
        assert_eq!(d, &want, "{} differs from the uninterrupted run", d.transaction_id);
    }
}

fn stream(n: usize, seed: u64) -> Vec<String> {
    weir::demo::generate(n, 80, seed).lines
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_transaction_is_decided_exactly_once_and_bad_records_are_dead_lettered() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("once");
    let mut lines = stream(1500, 3);
    // Some events published twice upstream, as an outbox relay that died
    // before marking them sent would: still one decision each.
    let republished: Vec<String> = lines
        .iter()
        .filter(|l| weir::events::parse_transaction(l.as_bytes(), weir::events::MAX_EVENT_BYTES).is_ok())
        .step_by(50)
        .cloned()
        .collect();
    lines.extend(republished);
    setup.produce(&lines);
    let reference = embedded_reference(&lines);
    let mut weir = setup.start("a");
    setup.wait_for_decisions(reference.len(), Duration::from_secs(90));
    let out = weir.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    let dead = setup.all_dead_letters();
    assert_exactly_once_and_equal(&got, &reference);
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead.iter().any(|(reason, _)| reason.contains("minor_units")), "{dead:?}");
    assert!(dead.iter().all(|(reason, payload)| !reason.is_empty() && !payload.is_empty()));
    assert!(out.contains("Transactions:"), "{out}");
    assert!(out.contains("duplicates"), "the republished events were recognized: {out}");
    assert!(setup.log("a").contains("weir is leaving the group"), "graceful shutdown leaves the group");
}

/// A record within the size limit but too large for the producer's message
/// size, and one over the limit: each is dead-lettered cut to fit, with its
/// size in the headers, and every transaction around them is decided once.
#[test]
fn records_too_large_for_a_dead_letter_are_cut_to_fit_the_producer() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("oversized");
    let good = stream(300, 11);
    let padded = |size: usize| {
        let head = r#"{"event_id":"big","pad":""#;
        format!("{head}{}", "x".repeat(size - head.len()))
    };
    // Over the producer's 1 000 000 bytes, within weir's limit; over both.
    let (within, over) = (padded(1_010_000), padded(1_040_000));
    weir::kafka::create_topics(&setup.kafka_config(), &Default::default()).unwrap();
    let producer: BaseProducer = broker().client().set("message.max.bytes", "2000000").create().unwrap();
    let topic = setup.topic("in");
    for (i, line) in good.iter().enumerate() {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["account_id"].as_str().map(str::to_owned));
        let key = key.unwrap_or_else(|| "unparseable".to_owned());
        producer.send(BaseRecord::to(&topic).key(&key).payload(line)).unwrap();
        if i == 100 {
            producer.send(BaseRecord::to(&topic).key("big").payload(&within)).unwrap();
        }
        if i == 200 {
            producer.send(BaseRecord::to(&topic).key("big").payload(&over)).unwrap();
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let mut config = setup.weir_config("a");
    config.kafka.as_mut().unwrap().max_event_bytes = 1_020_000;
    let config_path = setup.dir.path().join("a.toml");
    weir_testkit::config::write(&config, &config_path);
    let mut weir =
        WeirProcess::start(Path::new(env!("CARGO_BIN_EXE_weir")), &config_path, &setup.log_path("a"), "info");
    let reference = embedded_reference(&good);
    setup.wait_for_decisions(reference.len(), Duration::from_secs(90));
    weir.terminate(STOP_DEADLINE);
    assert_exactly_once_and_equal(&setup.all_decisions(), &reference);

    let dead = read_to_end(broker(), &[setup.topic("dead")], Duration::from_secs(60));
    let big: Vec<_> = dead.iter().filter(|r| r.key.as_deref() == Some(b"big")).collect();
    assert_eq!(big.len(), 2, "each large record is dead-lettered once");
    for (record, original) in big.iter().zip([&within, &over]) {
        let header = |name: &str| record.header(name).unwrap_or_else(|| panic!("header {name}")).to_owned();
        assert_eq!(header("weir.payload.bytes"), original.len().to_string());
        assert_eq!(header("weir.truncated"), "true");
        assert!(original.as_bytes().starts_with(&record.payload), "the payload is the record's start");
        assert!(
            record.payload.len() + 4096 <= 1_000_000,
            "{} bytes fit the producer's message size",
            record.payload.len()
        );
    }
    assert_eq!(big[1].payload.len(), weir::events::TRUNCATED_PAYLOAD_BYTES, "a record over the limit keeps 64 KiB");
    assert!(big[1].header("weir.reason").unwrap().contains("payload of 1040000 bytes exceeds the 1020000-byte limit"));
    assert!(big[0].header("weir.reason").unwrap().contains("not valid JSON"));
}

#[test]
fn kill_nine_mid_stream_and_restart_keeps_decisions_exact() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("crash");
    let lines = stream(3000, 5);
    setup.produce(&lines);
    let reference = embedded_reference(&lines);
    let mut config = setup.weir_config("a");
    config.kafka.as_mut().unwrap().workers = Some(2);
    for round in 1..=3 {
        let mut weir = setup.start_with("a", &config);
        let target = reference.len() * round / 4;
        setup.wait_for_decisions(target, Duration::from_secs(90));
        weir.crash();
    }
    let mut weir = setup.start_with("a", &config);
    setup.wait_for_decisions(reference.len(), Duration::from_secs(120));
    weir.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    assert_exactly_once_and_equal(&got, &reference);
    assert!(got.iter().any(|d| d.event_type == DecisionType::AccountLocked), "state-dependent rules fired");
    // Every start that joined restored a worker's two partitions (four
    // over two workers) together, on their assignment.
    let log = setup.log("a");
    let restores: Vec<&str> = log.lines().filter(|l| l.contains("state restored from the changelog")).collect();
    assert!(restores.len() >= 4, "at least the first start restored its four partitions:\n{log}");
    assert!(restores.iter().all(|l| l.contains("together=2")), "read two at a time:\n{}", restores.join("\n"));
}

#[test]
fn survivor_takes_over_the_partitions_with_their_state() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("scale");
    let lines = stream(3000, 9);
    let (first, second) = lines.split_at(lines.len() / 2);
    setup.produce(first);
    let reference = embedded_reference(&lines);
    let first_half = embedded_reference(first).len();
    let mut a = setup.start("a");
    setup.wait_for_decisions(first_half, Duration::from_secs(90));
    let mut b = setup.start("b");
    wait_for("the group to rebalance over both instances", Duration::from_secs(90), || {
        setup.log("b").contains("partitions assigned") && setup.log("a").matches("partitions assigned").count() >= 2
    });
    a.crash();
    // The second half spans every partition: the survivor can only decide
    // it by taking over the dead instance's partitions and their state.
    setup.produce(second);
    setup.wait_for_decisions(reference.len(), Duration::from_secs(120));
    b.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    assert_exactly_once_and_equal(&got, &reference);
    let assignments = setup.log("b").matches("partitions assigned").count();
    assert!(assignments >= 2, "the survivor was assigned the dead instance's partitions ({assignments} assignments)");
}

#[test]
fn broker_outage_mid_run_loses_nothing() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    if !own_broker("broker_outage_mid_run_loses_nothing") {
        return;
    }
    let setup = Setup::new("outage");
    let lines = stream(2000, 13);
    let (first, second) = lines.split_at(lines.len() / 2);
    setup.produce(first);
    let reference = embedded_reference(&lines);
    let mut weir = setup.start("a");
    setup.wait_for_decisions(1, Duration::from_secs(90));
    kafka_script(&["stop"]);
    std::thread::sleep(Duration::from_secs(3));
    kafka_script(&["start"]);
    setup.produce(second);
    setup.wait_for_decisions(reference.len(), Duration::from_secs(150));
    weir.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    assert_exactly_once_and_equal(&got, &reference);
}

#[test]
fn hot_deploy_on_kafka_under_a_continuous_stream() {
    use crate::deploy::{assert_decisions, decidable, deploy_steps, feed, initial_rules};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("deploy");
    let rules = setup.dir.path().join("rules");
    std::fs::remove_dir_all(&rules).unwrap();
    initial_rules(&rules);
    weir::kafka::create_topics(&setup.kafka_config(), &Default::default()).unwrap();
    let (mut weir, addr) = setup.start_with_status("a");
    let lines = weir::demo::generate(20_000, 400, 23).lines;
    let expected = decidable(&lines);
    let go = Arc::new(AtomicBool::new(false));
    let feeder = {
        let go = go.clone();
        let input = setup.topic("in");
        std::thread::spawn(move || {
            let producer: BaseProducer =
                broker().client().set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap();
            feed(lines, 2500, 13_000, go, |part| {
                for line in part {
                    let key = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["account_id"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    producer.send(BaseRecord::to(&input).key(&key).payload(line)).unwrap();
                }
                producer.poll(Duration::ZERO);
            });
            producer.flush(Duration::from_secs(30)).unwrap();
        })
    };
    let deployed = deploy_steps(&rules, &addr, setup.dir.path(), 4);
    go.store(true, std::sync::atomic::Ordering::Release);
    feeder.join().unwrap();
    setup.wait_for_decisions(expected.len(), Duration::from_secs(120));
    weir.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    assert_decisions(&got, &expected, &deployed);
    assert!(setup.log("a").contains("rules swapped"), "swaps are logged with their partition offsets");
}

/// A deploy that lands while the input topic is idle decides the very next
/// record: the records produced after version 2 is published are all
/// decided by it, those before by version 1.
#[test]
fn a_deploy_while_idle_decides_the_next_record_on_kafka() {
    use crate::deploy::{active_label, decidable, velocity_manifest, velocity_package, wait_status};

    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("idle-deploy");
    let rules = setup.dir.path().join("rules");
    std::fs::remove_dir_all(&rules).unwrap();
    velocity_package(&rules, "1.0.0", 10);
    let lines = weir::demo::generate(60, 10, 3).lines;
    let (before, after) = lines.split_at(30);
    setup.produce(before);
    let (mut weir, addr) = setup.start_with_status("a");
    setup.wait_for_decisions(decidable(before).len(), Duration::from_secs(120));

    // The input is idle; version 2 is deployed and published.
    std::fs::write(rules.join("velocity.toml"), velocity_manifest("2.0.0", 4)).unwrap();
    wait_status(&addr, "version 2 published", |s| active_label(s, "velocity").as_deref() == Some("\"2.0.0\""));
    let v2 = weir::packages::PackageFiles::read(&rules.join("velocity.toml")).unwrap().hash;
    setup.produce_quietly(after);
    setup.wait_for_decisions(decidable(&lines).len(), Duration::from_secs(120));
    weir.terminate(STOP_DEADLINE);

    let got = setup.all_decisions();
    let (ids_before, ids_after) = (decidable(before), decidable(after));
    assert!(!ids_after.is_empty());
    assert_eq!(got.len(), ids_before.len() + ids_after.len(), "one decision per transaction");
    for d in &got {
        let version = d.rules.iter().find(|r| &*r.rule_id == "velocity").unwrap().rule_version.to_string();
        if ids_after.contains(&d.transaction_id) {
            assert_eq!(version, v2, "{} came after the deploy and was decided by the old version", d.transaction_id);
        } else {
            assert!(ids_before.contains(&d.transaction_id));
            assert_ne!(version, v2, "{} came before the deploy", d.transaction_id);
        }
    }
}

/// `kafka.commit_interval_ms` spaces transactions: records trickling in
/// every 100 ms, which back-to-back commits would take in one transaction
/// each, go in at most one transaction per interval, every one decided
/// once.
#[test]
fn the_commit_interval_makes_fewer_fuller_transactions() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("interval");
    let lines = stream(120, 43);
    setup.produce(&lines[..4]);
    let mut config = setup.weir_config("a");
    let interval = Duration::from_millis(500);
    config.kafka.as_mut().unwrap().commit_interval_ms = interval.as_millis() as u64;
    let started = Instant::now();
    let mut weir = setup.start_with("a", &config);
    let producer: BaseProducer = broker().client().set("enable.idempotence", "true").create().unwrap();
    for chunk in lines[4..].chunks(4) {
        std::thread::sleep(Duration::from_millis(100));
        for line in chunk {
            let key = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["account_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            producer.send(BaseRecord::to(&setup.topic("in")).key(&key).payload(line)).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    let expected = crate::deploy::decidable(&lines).len();
    setup.wait_for_decisions(expected, Duration::from_secs(120));
    let out = weir.terminate(STOP_DEADLINE);
    let elapsed = started.elapsed();
    let committed: u128 = out
        .lines()
        .find_map(|l| l.strip_prefix("Transactions: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no transaction count in {out}"));
    let chunks = lines[4..].chunks(4).count() as u128;
    // One per interval at most, and one more for the flush at the stop.
    let most = elapsed.as_millis() / interval.as_millis() + 2;
    assert!(committed <= most, "{committed} transactions in {elapsed:?}: more than one per {interval:?}");
    assert!(committed < chunks, "{committed} transactions for {chunks} trickles: none was shared");
    let ids: std::collections::HashSet<String> = setup.all_decisions().into_iter().map(|d| d.transaction_id).collect();
    assert_eq!(ids, crate::deploy::decidable(&lines), "each transaction decided once");
    assert_eq!(setup.all_decisions().len(), expected, "and no more");
}

/// Every wait for the broker honours a stop: with nothing listening at the
/// bootstrap address, weir keeps retrying (creating its topics, registering
/// its producer) until SIGTERM, then ends within 10 s, cleanly.
#[test]
fn sigterm_ends_weir_within_ten_seconds_while_the_broker_is_away() {
    let dir = tempdir();
    let away = crate::deploy::free_addr();
    weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
    for (name, create_topics) in [("topics", true), ("producer", false)] {
        let mut config = weir_testkit::config::kafka(&away, &format!("away-{name}"), name, &dir.path().join("rules"));
        config.kafka.as_mut().unwrap().create_topics = create_topics;
        let config_path = dir.path().join(format!("{name}.toml"));
        weir_testkit::config::write(&config, &config_path);
        let log = dir.path().join(format!("{name}.log"));
        let mut weir = WeirProcess::start(Path::new(env!("CARGO_BIN_EXE_weir")), &config_path, &log, "info");
        weir.wait_for_log("will be retried", Duration::from_secs(60));
        let asked = Instant::now();
        let out = weir.stop(Duration::from_secs(10)).unwrap_or_else(|why| panic!("{name}: {why}"));
        assert!(asked.elapsed() < Duration::from_secs(10));
        assert!(out.contains("Stopped as asked"), "{name}: {out}");
    }
}

/// At the largest limits a manifest may ask for, an account's state record
/// fits the changelog and every decision fits its topic, on the real broker
/// with its default message size: a rule keeping a state of nearly 512 KiB
/// per account, next to 48 rules explaining themselves with everything the
/// verdict limits allow (in characters JSON must escape).
#[test]
fn state_and_decisions_at_the_largest_limits_fit_the_broker() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("limits");
    let rules = setup.dir.path().join("rules");
    std::fs::write(rules.join("hostile.wasm"), crate::util::guest("hostile")).unwrap();
    let rule = |id: &str, behaviour: &str, limits: &str| {
        let manifest = format!(
            "[rule]\nid = \"{id}\"\nversion = \"1\"\ncomponent = \"hostile.wasm\"\n[limits]\n{limits}\n[params]\nbehaviour = \"{behaviour}\"\n"
        );
        std::fs::write(rules.join(format!("{id}.toml")), manifest).unwrap();
    };
    let fill = 512 * 1024 - 200;
    rule("filler", &format!("fill:{fill}"), "state_kib = 512\nfuel = 5000000");
    for i in 0..48 {
        rule(&format!("explainer-{i}"), "max-verdict", "fuel = 5000000");
    }
    let lines = stream(30, 41);
    setup.produce(&lines);
    // Each evaluation of the filler costs about 500 000 fuel units: the
    // default average would quarantine it within 30 transactions. A bank
    // that accepts the cost says so.
    let mut config = setup.weir_config("a");
    config.policy.rule_fuel_average = weir::manifest::MAX_FUEL;
    let mut weir = setup.start_with("a", &config);
    let expected = crate::deploy::decidable(&lines).len();
    setup.wait_for_decisions(expected, Duration::from_secs(120));
    weir.terminate(STOP_DEADLINE);

    let decisions = read_to_end(broker(), &setup.decision_topics(), Duration::from_secs(60));
    assert_eq!(decisions.len(), expected);
    let largest = decisions.iter().map(|d| d.payload.len()).max().unwrap();
    assert!(largest > 400_000 && largest < 1_000_000, "the largest decision is {largest} bytes");
    for record in &decisions {
        let d: DecisionEvent = serde_json::from_slice(&record.payload).unwrap();
        let filler = d.rules.iter().find(|r| &*r.rule_id == "filler").unwrap();
        assert_eq!(filler.error, None, "the state at its quota was kept: {filler:?}");
        assert!(d.rules.iter().filter(|r| r.error.is_some()).count() == 0, "{:?}", d.rules);
        let left_out = d.rules.iter().filter(|r| r.message.starts_with("(left out")).count();
        assert!(left_out > 0 && left_out < 48, "{left_out} explanations left out");
    }
    let state = read_to_end(broker(), &[setup.topic("state")], Duration::from_secs(60));
    let part = state.iter().map(|r| r.payload.len()).max().unwrap();
    assert!(part > fill, "the changelog holds the rule's state part whole ({part} bytes)");
}

/// The chaos run: a continuous stream, weir SIGKILLed again and again, the
/// broker stopped for a while, and weir asked to stop (SIGTERM) while the
/// broker is away, which it must answer within 10 s; then every transaction
/// is decided exactly once, as an uninterrupted run decides it. Sized by
/// `WEIR_CHAOS_KILLS` (default 3) and `WEIR_CHAOS_OUTAGE_SECS` (default 5);
/// `scripts/chaos.sh` runs the full one (10 kills, 30 s).
#[test]
fn chaos_kills_and_a_broker_outage_lose_nothing() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    if !own_broker("chaos") {
        return;
    }
    let env = |var: &str, default: u64| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let kills = env("WEIR_CHAOS_KILLS", 3);
    let outage = Duration::from_secs(env("WEIR_CHAOS_OUTAGE_SECS", 5));
    let setup = Setup::new("chaos");
    let lines = stream(kills as usize * 500 + 1500, 17);
    let reference = embedded_reference(&lines);
    weir::kafka::create_topics(&setup.kafka_config(), &Default::default()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The stream: 40 records every 200 ms, on through kills and outage.
        scope.spawn(|| {
            for chunk in lines.chunks(40) {
                setup.produce_quietly(chunk);
                std::thread::sleep(Duration::from_millis(200));
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut weir = setup.start("a");
        for k in 0..kills {
            std::thread::sleep(Duration::from_millis(1500 + 500 * (k % 3)));
            if k == kills / 2 {
                kafka_script(&["stop"]);
                std::thread::sleep(Duration::from_secs(1));
                let asked = Instant::now();
                let stopped = weir.stop(Duration::from_secs(10));
                let took = asked.elapsed();
                std::thread::sleep(outage.saturating_sub(took));
                kafka_script(&["start"]);
                stopped.unwrap_or_else(|why| panic!("SIGTERM while the broker was away: {why}"));
                eprintln!("chaos: SIGTERM answered in {took:?} while the broker was away");
            } else {
                weir.crash();
            }
            weir = setup.start("a");
        }
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(200));
        }
        setup.wait_for_decisions(reference.len(), Duration::from_secs(300));
        weir.terminate(STOP_DEADLINE);
    });
    assert_exactly_once_and_equal(&setup.all_decisions(), &reference);
}

/// On Kafka, `/metrics` has the same families as embedded plus the consumer
/// lag per partition (librdkafka's statistics) and the time from a record's
/// timestamp to its decision; every metric the dashboard queries is there.
#[test]
fn metrics_on_kafka_include_lag_and_latency() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("metrics");
    let lines = stream(600, 19);
    setup.produce(&lines);
    let (mut weir, addr) = setup.start_with_status("a");
    setup.wait_for_decisions(decide_embedded(&lines).1.len(), Duration::from_secs(90));
    let mut metrics = String::new();
    wait_for("the consumer lag in /metrics", Duration::from_secs(30), || {
        metrics = crate::deploy::get_text(&addr, "/metrics");
        metrics.contains("weir_consumer_lag{partition=")
    });
    weir.terminate(STOP_DEADLINE);
    let series = crate::deploy::exported_series(&metrics);
    let count = |name: &str| -> f64 {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    };
    assert!(count("weir_decision_latency_seconds_count") > 0.0, "{metrics}");
    assert!(count("weir_commit_seconds_count") > 0.0, "{metrics}");
    assert!(metrics.contains("weir_rule_evaluation_seconds_bucket{rule=\"velocity\""), "{metrics}");
    for (name, query) in crate::deploy::dashboard_metrics() {
        assert!(series.contains(&name), "the dashboard queries {name}, which weir on Kafka does not export ({query})");
    }
}

/// Entity rules on Kafka: each transaction visits its device's and its
/// beneficiary's partitions and comes back to its account. Through SIGKILLs
/// and a rebalance between two instances, every transaction is decided
/// exactly once, the shipped entity rules flag exactly what the brute-force
/// oracle says, and the decisions equal the embedded run's.
#[test]
fn entity_rules_on_kafka_through_crashes_and_a_rebalance_equal_the_oracle_and_the_embedded_run() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("entities");
    let txs = crate::entities::stream(1_500, 13);
    // Out of event-time order across accounts, as a lagging partition's
    // producer would send it: each partition in order within the grace.
    let input = crate::entities::interleaved(&txs, 30);
    let lines: Vec<String> = input.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    let mut oracle = crate::entities::oracle(&txs);
    for expected in oracle.values_mut() {
        // The probes are native rules; on Kafka the shipped (wasm) ones run.
        expected.probes.clear();
    }
    let reference = decide_embedded(&lines).1;
    let with_entities = |instance: &str| {
        let mut config = setup.weir_config(instance);
        let kafka = config.kafka.as_mut().unwrap();
        kafka.entities = vec!["device".into(), "merchant".into(), "counterparty".into()];
        // The interleaving puts a partition's transactions up to hours out
        // of order.
        kafka.entity_grace_ms = 86_400_000;
        let path = setup.dir.path().join(format!("{instance}.toml"));
        weir_testkit::config::write(&config, &path);
        WeirProcess::start(Path::new(env!("CARGO_BIN_EXE_weir")), &path, &setup.log_path(instance), "info")
    };
    let mut admin = setup.kafka_config();
    admin.entities = vec!["device".into(), "merchant".into(), "counterparty".into()];
    weir::kafka::create_topics(&admin, &Default::default()).unwrap();
    setup.produce_quietly(&lines);

    let mut a = with_entities("a");
    setup.wait_for_decisions(reference.len() / 4, Duration::from_secs(120));
    a.crash();
    let mut a = with_entities("a");
    let mut b = with_entities("b");
    wait_for("the group to rebalance over both instances", Duration::from_secs(90), || {
        setup.log("b").contains("partitions assigned")
    });
    setup.wait_for_decisions(reference.len() / 2, Duration::from_secs(120));
    a.crash();
    setup.wait_for_decisions(reference.len(), Duration::from_secs(180));
    b.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    assert_exactly_once_and_equal(&got, &reference);
    let features: HashMap<String, crate::entities::Expected> = got
        .iter()
        .map(|d| {
            let entity_rules: Vec<weir::events::RuleResult> = d
                .rules
                .iter()
                .filter(|r| ["shared-device", "mule-beneficiary", "merchant-new-cards"].contains(&r.rule_id.as_str()))
                .cloned()
                .collect();
            (d.transaction_id.clone(), crate::entities::from_results(&entity_rules))
        })
        .collect();
    let (n, first) = crate::entities::mismatches(&oracle, &features);
    assert_eq!(n, 0, "{first:#?}");
    assert!(oracle.values().filter(|e| !e.flags.is_empty()).count() > 10, "the stream exercises the entity rules");
}

/// Every transaction of `reference` decided, each once.
fn assert_exactly_once(got: &[DecisionEvent], reference: &HashMap<String, DecisionEvent>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in got {
        *counts.entry(d.transaction_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "decided more than once: {twice:?}");
    assert_eq!(got.len(), reference.len(), "every transaction decided");
    assert!(got.iter().all(|d| reference.contains_key(&d.transaction_id)), "only the transactions sent are decided");
}

/// Starts weir (`a`) routing devices, merchants and counterparties, with
/// `tweak` applied to its Kafka configuration, and waits until it joined.
fn start_with_entities(setup: &Setup, tweak: impl FnOnce(&mut weir::kafka::KafkaConfig)) -> WeirProcess {
    start_with_entities_listening(setup, tweak, None)
}

/// As [`start_with_entities`], with the status endpoint on `status`.
fn start_with_entities_listening(
    setup: &Setup,
    tweak: impl FnOnce(&mut weir::kafka::KafkaConfig),
    status: Option<&str>,
) -> WeirProcess {
    start_instance_with_entities(setup, "a", tweak, status)
}

/// As [`start_with_entities_listening`], as instance `instance` of the
/// group.
fn start_instance_with_entities(
    setup: &Setup,
    instance: &str,
    tweak: impl FnOnce(&mut weir::kafka::KafkaConfig),
    status: Option<&str>,
) -> WeirProcess {
    let mut config = setup.weir_config(instance);
    config.status.listen = status.map(str::to_owned);
    let kafka = config.kafka.as_mut().unwrap();
    kafka.entities = vec!["device".into(), "merchant".into(), "counterparty".into()];
    tweak(kafka);
    weir::kafka::create_topics(kafka, &Default::default()).unwrap();
    let path = setup.dir.path().join(format!("{instance}.toml"));
    weir_testkit::config::write(&config, &path);
    let weir = WeirProcess::start(Path::new(env!("CARGO_BIN_EXE_weir")), &path, &setup.log_path(instance), "info");
    wait_for("weir to join", Duration::from_secs(60), || setup.log(instance).contains("partitions assigned"));
    weir
}

/// Sends `txs` live, `chunk` at a time with `pause(i)` after chunk `i`,
/// each dated when its chunk is sent (a millisecond apart; a transaction
/// dated after 2099 keeps its date). One producer sends them all, as a
/// bank's service keeps one: what it sends is on its way for
/// milliseconds. Returns the lines sent.
fn send_live(
    setup: &Setup,
    txs: &mut [TransactionRecorded],
    chunk: usize,
    pause: impl Fn(usize) -> Duration,
) -> Vec<String> {
    let producer: BaseProducer =
        broker().client().set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap();
    let input = setup.topic("in");
    let mut lines = Vec::new();
    for (i, part) in txs.chunks_mut(chunk).enumerate() {
        let now = time::OffsetDateTime::now_utc();
        for (j, tx) in part.iter_mut().enumerate() {
            if tx.occurred_at.year() < 2099 {
                tx.occurred_at = now + time::Duration::milliseconds(j as i64);
            }
            let line = serde_json::to_string(tx).unwrap();
            producer.send(BaseRecord::to(&input).key(&tx.account_id).payload(&line)).unwrap();
            lines.push(line);
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(pause(i));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    lines
}

/// Two ways the entity hop could hold a partition's decisions back for
/// good, on a real broker, with the stream produced live (each transaction
/// dated when it is sent, as in production). A transaction dated 2099 is
/// applied to its entities at its record's timestamp, not at its date (it
/// would otherwise wait for every partition to reach 2099). With
/// `entity_max_waiting = 8` every partition fills up and is paused, and a
/// paused partition waives its grace of a day (its queue would otherwise
/// wait for records it does not read). Every transaction is decided exactly
/// once, as embedded but for the few that came late.
#[test]
fn a_transaction_dated_in_the_future_and_a_full_queue_hold_no_partition_back() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("entity-bounds");
    let mut a = start_with_entities(&setup, |kafka| {
        kafka.entity_grace_ms = 86_400_000;
        kafka.entity_max_waiting = 8;
    });

    let mut txs = crate::entities::stream(600, 29);
    let future = weir::cases::CaseTx {
        account: Some("acct-future".into()),
        merchant: Some("m-future".into()),
        after_secs: Some(73 * 365 * 86_400),
        ..Default::default()
    };
    txs.insert(10, future.to_event("tx-future"));
    assert!(txs[10].occurred_at.year() >= 2099, "{}", txs[10].occurred_at);
    // About 600 a second: faster than a partition's grace of a day lets its
    // entities release, so the queues fill up between two reports of where
    // the partitions end.
    let lines = send_live(&setup, &mut txs, 20, |_| Duration::from_millis(30));
    let reference = decide_embedded(&lines).1;
    setup.wait_for_decisions(reference.len(), Duration::from_secs(120));
    a.terminate(STOP_DEADLINE);
    let log = setup.log("a");
    // A full partition waives its grace and passes its latest time, so a
    // transaction of another partition read after that, dated before it,
    // comes late (its entity rules pass it unrun, and weir counts it).
    // Those, and later ones at the same entities (which then miss it in
    // their counts), may differ from the embedded run; few do.
    let late = weir_testkit::entity_late(&log) as usize;
    let got = setup.all_decisions();
    assert_exactly_once(&got, &reference);
    let differ: Vec<&str> = got
        .iter()
        .filter(|d| {
            let mut want = reference[&d.transaction_id].clone();
            want.input = d.input.clone();
            **d != want
        })
        .map(|d| d.transaction_id.as_str())
        .collect();
    assert!(late < got.len() / 20, "{late} of {} came late", got.len());
    assert!(
        differ.len() < got.len() / 10,
        "{} differ from the embedded run ({late} came late): {differ:?}",
        differ.len()
    );
    assert!(differ.is_empty() || late > 0, "only lateness makes a decision differ: {differ:?}");
    assert!(!differ.contains(&"tx-future"), "the transaction dated 2099 is decided as embedded");
    assert!(log.contains("reached `kafka.entity_max_waiting`"), "a partition filled up and was paused:\n{log}");
    assert!(log.contains("the partition's queue drained"), "and was read again:\n{log}");
}

/// A full partition passes only what is dated before its latest time (see
/// `TaskHop::progress`), so it could wait for good if more than half its
/// queue were dated at that time: here every transaction carries the same
/// date, as in a file dated by the day, and `entity_max_waiting = 8`.
/// Every transaction is decided exactly once, as embedded, none late.
#[test]
fn a_full_queue_dated_alike_still_drains() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("entity-alike");
    let mut a = start_with_entities(&setup, |kafka| kafka.entity_max_waiting = 8);
    let day = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let lines: Vec<String> = crate::entities::stream(300, 41)
        .into_iter()
        .map(|mut tx| {
            tx.occurred_at = day;
            serde_json::to_string(&tx).unwrap()
        })
        .collect();
    weir_testkit::produce_by_account(broker(), &setup.topic("in"), &lines);
    let reference = decide_embedded(&lines).1;
    setup.wait_for_decisions(reference.len(), Duration::from_secs(120));
    a.terminate(STOP_DEADLINE);
    let log = setup.log("a");
    assert!(log.contains("reached `kafka.entity_max_waiting`"), "a partition filled up:\n{log}");
    assert!(!log.contains("later than `kafka.entity_grace_ms`"), "a transaction came late:\n{log}");
    assert_exactly_once_and_equal(&setup.all_decisions(), &reference);
}

/// With the entity hop, `/metrics` says how long weir allows a record to
/// be on its way before an idle partition passes it (the gauge an operator
/// reads next to a late warning's `delay_ms`): set by the decide workers,
/// so at least a report (0.1 s) and at most the bound (3 s), where a gauge
/// never set would read 0.
#[test]
fn metrics_with_the_entity_hop_include_the_delivery_allowance() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("entity-metrics");
    let addr = crate::deploy::free_addr();
    let mut a = start_with_entities_listening(&setup, |_| {}, Some(&addr));
    let lines: Vec<String> =
        crate::entities::stream(300, 43).iter().map(|tx| serde_json::to_string(tx).unwrap()).collect();
    weir_testkit::produce_by_account(broker(), &setup.topic("in"), &lines);
    setup.wait_for_decisions(decide_embedded(&lines).1.len(), Duration::from_secs(90));
    let metrics = crate::deploy::get_text(&addr, "/metrics");
    a.terminate(STOP_DEADLINE);
    let allowance = metrics
        .lines()
        .find_map(|l| l.strip_prefix("weir_entity_delivery_allowance_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(allowance.is_some_and(|s| (0.1..=3.0).contains(&s)), "allowance {allowance:?}:\n{metrics}");
}

/// Runs an entity scenario whose promise is that none comes late, for
/// records delivered within weir's delivery allowance (`hop::Delivery`):
/// `scenario` sends its stream to weir started on `setup` (as each of
/// `instances`, members of one group) and returns the embedded run's
/// decisions. When weir reports transactions late and every
/// one of them took longer than [`STALLED_MS`] from being sent to reaching
/// it, the run tested the machine, not the promise: the test's producer,
/// the broker and weir share two cores with the rest of the suite, and a
/// stall of theirs has held records back for 4 s, longer than the
/// allowance's bound of 3 s. Such a run says so and runs once more on
/// fresh topics; a second one fails, as does any transaction late that
/// reached weir within [`STALLED_MS`]. Returns the decisions of the run
/// that counted.
fn in_order_unless_stalled(
    name: &str,
    instances: &[&str],
    scenario: impl Fn(&Setup) -> HashMap<String, DecisionEvent>,
) -> Vec<DecisionEvent> {
    for attempt in 1..=2 {
        let setup = Setup::new(name);
        let mut running: Vec<WeirProcess> =
            instances.iter().map(|i| start_instance_with_entities(&setup, i, |_| {}, None)).collect();
        let reference = scenario(&setup);
        setup.wait_for_decisions(reference.len(), Duration::from_secs(120));
        for weir in &mut running {
            weir.terminate(STOP_DEADLINE);
        }
        let log: String = instances.iter().map(|i| setup.log(i)).collect();
        let delays = weir_testkit::entity_late_delays(&log);
        if delays.is_empty() {
            let got = setup.all_decisions();
            assert_exactly_once_and_equal(&got, &reference);
            return got;
        }
        let stalled = delays.iter().all(|&d| d > STALLED_MS);
        assert!(stalled && attempt == 1, "transactions came late, on their way {delays:?} ms:\n{log}");
        eprintln!("{name}: late transactions on their way {delays:?} ms, longer than {STALLED_MS} ms: once more");
    }
    unreachable!("the second attempt returns or fails")
}

/// How long a record on its way means the machine stalled (ms): this
/// machine delivers the tests' records within tens of milliseconds, and
/// weir allows for twice what it saw lately.
const STALLED_MS: u64 = 1_000;

/// A live stream in event-time order, sent a few transactions at a time
/// while weir runs with the entity hop, its tasks and progress handed over
/// in memory: a partition read to its end holds no task back until it has
/// stayed there a report, so a transaction still on its way to one
/// partition is not passed by a later one of another. None comes late, and
/// every decision is the embedded run's (see [`in_order_unless_stalled`]).
/// The test has the broker to itself: with other tests' instances on it as
/// well, this machine's broker has taken up to 4 s to append a burst.
#[test]
fn a_live_stream_in_event_time_order_reaches_its_entities_in_order() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let got = in_order_unless_stalled("entity-live", &["a"], |setup| {
        let mut txs = crate::entities::stream(1200, 31);
        // Now and then the stream pauses for longer than a report of where
        // the partitions end, so they go idle between bursts.
        let pause = |i: usize| Duration::from_millis(if i % 10 == 9 { 400 } else { 15 });
        let lines = send_live(setup, &mut txs, 12, pause);
        decide_embedded(&lines).1
    });
    let entity_hits = got
        .iter()
        .flat_map(|d| &d.rules)
        .filter(|r| ["shared-device", "mule-beneficiary"].contains(&r.rule_id.as_str()))
        .filter(|r| r.outcome != weir::events::RuleOutcome::Pass)
        .count();
    assert!(entity_hits > 0, "the entity rules saw across accounts");
}

/// A burst into an instance idle for longer than a second, as when an
/// upstream outage ends: every partition receives its share within
/// milliseconds, but the partition read first must not release its tasks
/// past the others, which had been idle long enough to hold nothing back
/// and have not read theirs yet. None comes late, and every decision is
/// the embedded run's (see [`in_order_unless_stalled`]). The broker is
/// the test's alone, as for the live stream above.
#[test]
fn a_burst_into_an_idle_instance_reaches_its_entities_in_order() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    in_order_unless_stalled("entity-burst", &["a"], |setup| {
        // Idle at the end of every partition for well over a second.
        wait_for("the partitions to be restored", Duration::from_secs(60), || {
            setup.log("a").matches("state restored from the changelog").count() >= 2
        });
        std::thread::sleep(Duration::from_millis(2500));
        let mut txs = crate::entities::stream(1200, 37);
        let lines = send_live(setup, &mut txs, 1200, |_| Duration::ZERO);
        decide_embedded(&lines).1
    });
}

/// The same burst into two idle instances of one group, which share the
/// partitions and with them the entities: a task of one instance's router
/// reaches an entity partition of the other through Kafka, after its
/// instance's transaction, and the progress saying that router had read
/// nothing (so held nothing back) must not let the other instance release
/// its tasks past it meanwhile. None comes late, and every decision is the
/// embedded run's.
#[test]
fn a_burst_into_two_idle_instances_reaches_their_entities_in_order() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    in_order_unless_stalled("entity-burst-two", &["a", "b"], |setup| {
        // Both hold their share, restored, and are idle for well over a second.
        wait_for("the group to settle over both instances", Duration::from_secs(90), || {
            setup.log("b").contains("state restored from the changelog")
                && setup.log("a").matches("partitions assigned").count() >= 2
        });
        std::thread::sleep(Duration::from_millis(2500));
        let mut txs = crate::entities::stream(1200, 41);
        let lines = send_live(setup, &mut txs, 1200, |_| Duration::ZERO);
        decide_embedded(&lines).1
    });
}

/// On the real broker, across a weir restart: card testing locks an account;
/// an analyst unlocks it with `weir case unlock` (to the input topic); the
/// next card testing locks it again, exactly once, and the unlock is written
/// on to the account-locked topic between the locks. The same unlock run again,
/// and one naming the first lock after the second, are dead-lettered with
/// the reason and lift nothing.
#[test]
fn an_analyst_unlock_on_kafka_lets_the_next_fraud_lock_again_across_a_restart() {
    use DecisionType::*;
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("unlock");
    setup.produce(&card_testing("acct-u", "tx-a", 0));
    let mut weir = setup.start("a");
    setup.wait_for_decisions(5, Duration::from_secs(90));
    weir.terminate(STOP_DEADLINE);

    let unlock = |transaction: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["case", "unlock", "--account", "acct-u", "--transaction", transaction])
            .args(["--analyst", "analyst-7", "--note", "identity checked by phone", "--json", "--config"])
            .arg(setup.config("cli"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(written["topic"], setup.topic("in"));
        assert_eq!(written["event"]["event_type"], "AccountUnlocked");
        assert!(written["offset"].as_i64().is_some(), "{written}");
    };
    // Weir is down: the unlocks wait on the topic, in order with the account's transactions.
    unlock("tx-a-4");
    unlock("tx-a-4");
    setup.produce_quietly(&card_testing("acct-u", "tx-b", 3600));
    unlock("tx-a-4");
    setup.produce_quietly(&card_testing("acct-u", "tx-c", 7200));

    let mut weir = setup.start("a");
    setup.wait_for_decisions(15, Duration::from_secs(90));
    weir.terminate(STOP_DEADLINE);
    // The accepted unlock is written on to the account-locked topic, between the two locks.
    let on_locked: Vec<serde_json::Value> = read_to_end(broker(), &[setup.topic("locked")], Duration::from_secs(60))
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let order: Vec<(&str, &str)> =
        on_locked.iter().map(|v| (v["event_type"].as_str().unwrap(), v["transaction_id"].as_str().unwrap())).collect();
    assert_eq!(order, [("AccountLocked", "tx-a-4"), ("AccountUnlocked", "tx-a-4"), ("AccountLocked", "tx-b-4")]);
    assert_eq!(on_locked[1]["analyst"], "analyst-7");
    let records = read_to_end(broker(), &setup.decision_topics(), Duration::from_secs(60));
    let got: Vec<DecisionEvent> = records
        .iter()
        .filter(|r| !r.payload.windows(17).any(|w| w == b"\"AccountUnlocked\""))
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let by_tx: HashMap<&str, &DecisionEvent> = got.iter().map(|d| (d.transaction_id.as_str(), d)).collect();
    assert_eq!((got.len(), by_tx.len()), (15, 15), "exactly once");
    let kind = |tx: &str| by_tx[tx].event_type;
    assert_eq!([kind("tx-a-4"), kind("tx-a-5")], [AccountLocked, FraudSuspected]);
    assert_eq!([kind("tx-b-4"), kind("tx-b-5")], [AccountLocked, FraudSuspected], "locked again after the unlock");
    assert_eq!(kind("tx-c-4"), FraudSuspected, "the stale unlock lifted nothing");
    let reason = by_tx["tx-c-4"].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("ACCOUNT_ALREADY_LOCKED: locked by transaction tx-b-4"), "{reason}");
    let locks = got.iter().filter(|d| d.event_type == AccountLocked).count();
    assert_eq!(locks, 2, "one AccountLocked per lock");
    let dead = setup.all_dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].0.contains("the account is not locked"), "{dead:?}");
    assert!(dead[1].0.contains("locked by transaction tx-b-4"), "{dead:?}");
    assert!(dead.iter().all(|(_, payload)| payload.contains("AccountUnlocked")), "nothing is lost");

    // `weir case list` folds the case from the topics: no disposition yet, so one open
    // case holds every flagged decision, with the unlock noted.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["case", "list", "--state", "all", "--json", "--config"])
        .arg(setup.config("cli"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let flagged: Vec<&str> =
        cases[0]["decisions"].as_array().unwrap().iter().map(|d| d["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(flagged, ["tx-a-4", "tx-a-5", "tx-b-4", "tx-b-5", "tx-c-4", "tx-c-5"]);
    assert_eq!((cases[0]["state"].as_str(), cases[0]["locked"].as_bool()), (Some("open"), Some(true)));
    assert_eq!(cases[0]["unlocks"][0]["transaction_id"], "tx-a-4");
}

/// The entity hop's records below the committed offsets are deleted from
/// its topics (`kafka.hop_purge_interval_ms`), and every transaction is
/// still decided once.
#[test]
fn the_entity_hop_deletes_what_it_committed() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("purge");
    let txs = crate::entities::stream(600, 17);
    let lines: Vec<String> = txs.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    let mut config = setup.weir_config("a");
    let kafka = config.kafka.as_mut().unwrap();
    kafka.entities = vec!["device".into()];
    kafka.hop_purge_interval_ms = 200;
    weir::kafka::create_topics(kafka, &Default::default()).unwrap();
    let hop = [setup.topic("by-device"), setup.topic("verdicts")];
    setup.produce_quietly(&lines);
    let mut weir = setup.start_with("a", &config);
    setup.wait_for_decisions(lines.len(), Duration::from_secs(120));

    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &broker().bootstrap).create().unwrap();
    use rdkafka::consumer::Consumer as _;
    let watermarks = |topic: &str| -> Vec<(i64, i64)> {
        (0..4).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap()).collect()
    };
    wait_for("the hop's committed records to be deleted", Duration::from_secs(60), || {
        hop.iter().all(|t| watermarks(t).iter().filter(|(_, high)| *high > 0).all(|(low, _)| *low > 0))
    });
    for topic in &hop {
        let marks = watermarks(topic);
        assert!(marks.iter().any(|(_, high)| *high > 0), "{topic} carried records: {marks:?}");
    }
    weir.terminate(STOP_DEADLINE);
    let got = setup.all_decisions();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for d in &got {
        *counts.entry(d.transaction_id.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), lines.len(), "every transaction decided");
    assert!(counts.values().all(|n| *n == 1), "each once");
}

/// Runtime lists on Kafka: a `weir list add` reaches two running instances
/// (their /status shows the list's version), the transactions both decide
/// afterwards are blocked and record that version, a malformed record on
/// the lists topic is refused by both and changes nothing, and a removal
/// lets the next transactions through.
#[test]
fn a_list_change_reaches_two_running_instances_and_their_decisions_record_its_version() {
    use DecisionType::*;
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("lists");
    // Accounts on every partition, so both instances decide some.
    let accounts: Vec<String> = (0..16).map(|i| format!("acct-l{i}")).collect();
    let purchases = |prefix: &str, device: &str, secs: i64| -> Vec<String> {
        accounts
            .iter()
            .map(|a| {
                let tx = weir::cases::CaseTx {
                    account: Some(a.clone()),
                    device_fingerprint: Some(device.into()),
                    after_secs: Some(secs),
                    ..Default::default()
                };
                serde_json::to_string(&tx.to_event(&format!("{prefix}-{a}"))).unwrap()
            })
            .collect()
    };
    setup.produce(&purchases("before", "fp-stolen", 0));
    let (mut a, addr_a) = setup.start_with_status("a");
    let (mut b, addr_b) = setup.start_with_status("b");
    setup.wait_for_decisions(16, Duration::from_secs(90));
    let list = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("list")
            .args(args)
            .args(["--analyst", "analyst-7", "--json", "--config"])
            .arg(setup.config("cli"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let added = list(&["add", "blocked-devices", "fp-stolen"]);
    assert_eq!(added["written"]["topic"], setup.topic("lists"));
    let version = added["version"].as_str().unwrap().to_owned();
    let has = |addr: &str, version: &str| {
        crate::deploy::get(addr, "/status")
            .is_some_and(|s| s["lists"]["lists"].as_array().is_some_and(|l| l.iter().any(|l| l["version"] == version)))
    };
    wait_for("the change on both instances", Duration::from_secs(30), || {
        has(&addr_a, &version) && has(&addr_b, &version)
    });

    // Someone writes garbage to the lists topic: refused by both, nothing changes.
    weir_testkit::produce_by_account(broker(), &setup.topic("lists"), &["{\"event_type\":\"ListChanged\"}".to_owned()]);
    let refused = |addr: &str| crate::deploy::get(addr, "/status").is_some_and(|s| s["lists"]["refused"] == 1);
    wait_for("the refusal on both instances", Duration::from_secs(30), || refused(&addr_a) && refused(&addr_b));
    assert!(has(&addr_a, &version) && has(&addr_b, &version));

    setup.produce_quietly(&purchases("after", "fp-stolen", 60));
    setup.wait_for_decisions(32, Duration::from_secs(90));
    let removed = list(&["remove", "blocked-devices", "fp-stolen"]);
    assert!(removed["version"].is_null(), "{removed}");
    wait_for("the removal on both instances", Duration::from_secs(30), || {
        [&addr_a, &addr_b].iter().all(|addr| {
            crate::deploy::get(addr, "/status")
                .is_some_and(|s| s["lists"]["lists"].as_array().is_some_and(Vec::is_empty))
        })
    });
    setup.produce_quietly(&purchases("later", "fp-stolen", 120));
    setup.wait_for_decisions(48, Duration::from_secs(90));
    a.terminate(STOP_DEADLINE);
    b.terminate(STOP_DEADLINE);
    let logs = setup.log("a") + &setup.log("b");
    assert!(logs.matches("lists loaded").count() >= 2, "{logs}");

    let got = setup.all_decisions();
    assert_eq!(got.len(), 48, "exactly once");
    for d in &got {
        let blocklist = d.rules.iter().find(|r| &*r.rule_id == "blocklist").unwrap();
        if d.transaction_id.starts_with("after-") {
            assert_eq!((d.event_type, blocklist.reason_code.as_str()), (FraudSuspected, "BLOCKED_DEVICE"), "{d:?}");
            assert_eq!(blocklist.lists.len(), 1, "{d:?}");
            assert_eq!(
                (blocklist.lists[0].list.as_str(), weir::lists::version_text(blocklist.lists[0].version)),
                ("blocked-devices", version.clone())
            );
        } else {
            assert_eq!(d.event_type, TransactionVerified, "{d:?}");
            assert!(blocklist.lists.is_empty(), "{d:?}");
        }
    }
}
