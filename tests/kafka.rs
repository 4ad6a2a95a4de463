//! weir on a real Apache Kafka broker (KRaft, 127.0.0.1), started once per
//! test run by `scripts/kafka.sh` unless `WEIR_TEST_KAFKA_BOOTSTRAP` names
//! one. Every test has its own topics and consumer group; `weir run` runs as
//! a child process, so it can be killed with SIGKILL like a real crash.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use weir::events::{DecisionEvent, DecisionType};

use crate::util::{decide_embedded, tempdir};

/// Serializes the broker-restart test against the others.
static BROKER_LOCK: RwLock<()> = RwLock::new(());
static BROKER: OnceLock<String> = OnceLock::new();
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn kafka_script(args: &[&str]) {
    let status = Command::new("bash").arg(repo().join("scripts/kafka.sh")).args(args).status().unwrap();
    assert!(status.success(), "scripts/kafka.sh {args:?} failed");
}

/// The broker's bootstrap address, starting the project's broker if needed.
fn broker() -> &'static str {
    BROKER.get_or_init(|| match std::env::var("WEIR_TEST_KAFKA_BOOTSTRAP") {
        Ok(b) => b,
        Err(_) => {
            kafka_script(&["start"]);
            let out = Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg("bootstrap").output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    })
}

/// A running `weir run`, killed if the test ends without stopping it.
struct Instance(Child);

impl Instance {
    /// SIGKILL: a crash, leaving an open transaction behind.
    fn crash(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One test's topics, group and working directory.
struct Setup {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        broker();
        let prefix = format!("{name}-{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let dir = tempdir();
        weir::packages::export_shipped(&dir.path().join("rules")).unwrap();
        Setup { prefix, dir }
    }

    fn topic(&self, t: &str) -> String {
        format!("{}.{t}", self.prefix)
    }

    /// Writes weir.toml for instance `instance` and returns its path.
    fn config(&self, instance: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{instance}.toml"));
        let text = format!(
            r#"[rules]
dir = "{rules}"

[kafka]
bootstrap_servers = "{broker}"
group_id = "{p}-group"
instance_id = "{instance}"
partitions = 4
batch_max_records = 100
batch_max_ms = 50
transaction_timeout_ms = 6000

[kafka.topics]
input = "{p}.in"
transaction_verified = "{p}.verified"
fraud_suspected = "{p}.suspected"
account_locked = "{p}.locked"
dead_letters = "{p}.dead"
changelog = "{p}.state"
"#,
            rules = self.dir.path().join("rules").display(),
            broker = broker(),
            p = self.prefix,
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(&self, instance: &str) -> Instance {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{instance}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--config"])
            .arg(self.config(instance))
            .env("WEIR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        Instance(child)
    }

    fn log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{instance}.log"))).unwrap_or_default()
    }

    /// Produces the records to the input topic, keyed by account id.
    fn produce(&self, lines: &[String]) {
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", broker()).set("enable.idempotence", "true").create().unwrap();
        // weir creates its topics at start; create the input now so records
        // can be produced before weir runs.
        weir::kafka::create_topics(&self.kafka_config()).unwrap();
        for line in lines {
            let key = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("account_id").and_then(|a| a.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "unparseable".to_owned());
            let input = self.topic("in");
            let mut record = BaseRecord::to(&input).key(&key).payload(line);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    fn kafka_config(&self) -> weir::kafka::KafkaConfig {
        let text = std::fs::read_to_string(self.config("admin")).unwrap();
        weir::config::Config::parse(&text).unwrap().kafka.unwrap()
    }

    /// Reads every committed decision (`read_committed`) until `expected`
    /// have arrived and no more come for a while, or the time is up.
    fn decisions(&self, expected: usize, timeout: Duration) -> Vec<DecisionEvent> {
        let topics = [self.topic("verified"), self.topic("suspected"), self.topic("locked")];
        let records = read_committed(&topics, expected, timeout);
        records.into_iter().map(|(_, payload)| serde_json::from_slice(&payload).unwrap()).collect()
    }

    fn dead_letters(&self, expected: usize) -> Vec<(String, String)> {
        read_committed(&[self.topic("dead")], expected, Duration::from_secs(30))
            .into_iter()
            .map(|(reason, payload)| (reason, String::from_utf8_lossy(&payload).into_owned()))
            .collect()
    }
}

impl Drop for Setup {
    /// A failed test shows what its weir instances logged.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().filter(|l| !l.contains("rule loaded")).collect();
                eprintln!("--- {} (last 40 lines)", path.display());
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// (the `weir.reason` header, payload) of every committed record.
fn read_committed(topics: &[String], expected: usize, timeout: Duration) -> Vec<(String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", "weir-tests-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10)).unwrap();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(t, p.id(), Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut last_new = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < timeout {
        if out.len() >= expected && last_new.elapsed() > Duration::from_secs(3) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let reason = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "weir.reason").and_then(|h| h.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                out.push((reason, m.payload().unwrap_or_default().to_vec()));
                last_new = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topics:?}: {e}"),
            None => {}
        }
    }
    out
}

/// The decisions of an uninterrupted embedded run over the same input.
fn embedded_reference(lines: &[String]) -> HashMap<String, DecisionEvent> {
    decide_embedded(lines).1
}

/// Asserts one decision per transaction, equal to the reference's in
/// everything but the input position.
fn assert_exactly_once_and_equal(got: &[DecisionEvent], reference: &HashMap<String, DecisionEvent>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in got {
        *counts.entry(d.transaction_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "decided more than once: {twice:?}");
    assert_eq!(got.len(), reference.len(), "every transaction decided");
    for d in got {
        let mut want = reference[&d.transaction_id].clone();
        want.input = d.input.clone();
        assert_eq!(d, &want, "{} differs from the uninterrupted run", d.transaction_id);
    }
}

fn stream(n: usize, seed: u64) -> Vec<String> {
    weir::demo::generate(n, 80, seed).lines
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops weir with SIGTERM; returns its stdout. Panics unless it exits cleanly.
fn terminate(instance: &mut Instance) -> String {
    let child = &mut instance.0;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weir did not stop within 90 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    }
    assert!(status.success(), "weir exited with {status}: {out}");
    out
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
    let got = setup.decisions(reference.len(), Duration::from_secs(90));
    let dead = setup.dead_letters(3);
    let out = terminate(&mut weir);
    assert_exactly_once_and_equal(&got, &reference);
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead.iter().any(|(reason, _)| reason.contains("minor_units")), "{dead:?}");
    assert!(dead.iter().all(|(reason, payload)| !reason.is_empty() && !payload.is_empty()));
    assert!(out.contains("Transactions:"), "{out}");
    assert!(out.contains("duplicates"), "the republished events were recognized: {out}");
    assert!(setup.log("a").contains("weir is leaving the group"), "graceful shutdown leaves the group");
}

#[test]
fn kill_nine_mid_stream_and_restart_keeps_decisions_exact() {
    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("crash");
    let lines = stream(3000, 5);
    setup.produce(&lines);
    let reference = embedded_reference(&lines);
    for round in 1..=3 {
        let mut weir = setup.start("a");
        let target = reference.len() * round / 4;
        wait_for("decisions before the crash", Duration::from_secs(90), || {
            setup.decisions(target, Duration::from_millis(1500)).len() >= target
        });
        weir.crash();
    }
    let mut weir = setup.start("a");
    let got = setup.decisions(reference.len(), Duration::from_secs(120));
    terminate(&mut weir);
    assert_exactly_once_and_equal(&got, &reference);
    assert!(got.iter().any(|d| d.event_type == DecisionType::AccountLocked), "state-dependent rules fired");
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
    wait_for("the first half decided", Duration::from_secs(90), || {
        setup.decisions(first_half, Duration::from_millis(1500)).len() >= first_half
    });
    let mut b = setup.start("b");
    wait_for("the group to rebalance over both instances", Duration::from_secs(90), || {
        setup.log("b").contains("partitions assigned") && setup.log("a").matches("partitions assigned").count() >= 2
    });
    a.crash();
    // The second half spans every partition: the survivor can only decide
    // it by taking over the dead instance's partitions and their state.
    setup.produce(second);
    let got = setup.decisions(reference.len(), Duration::from_secs(120));
    terminate(&mut b);
    assert_exactly_once_and_equal(&got, &reference);
    let assignments = setup.log("b").matches("partitions assigned").count();
    assert!(assignments >= 2, "the survivor was assigned the dead instance's partitions ({assignments} assignments)");
}

#[test]
fn broker_outage_mid_run_loses_nothing() {
    let _exclusive = BROKER_LOCK.write().unwrap_or_else(|e| e.into_inner());
    if std::env::var("WEIR_TEST_KAFKA_BOOTSTRAP").is_ok() {
        // An external broker is not ours to stop: the outage is simulated
        // only on the project's own broker.
        eprintln!("broker_outage_mid_run_loses_nothing: uses the project's broker only; skipped for an external one");
        return;
    }
    let setup = Setup::new("outage");
    let lines = stream(2000, 13);
    let (first, second) = lines.split_at(lines.len() / 2);
    setup.produce(first);
    let reference = embedded_reference(&lines);
    let mut weir = setup.start("a");
    wait_for("some decisions", Duration::from_secs(90), || !setup.decisions(1, Duration::from_millis(1000)).is_empty());
    kafka_script(&["stop"]);
    std::thread::sleep(Duration::from_secs(3));
    kafka_script(&["start"]);
    setup.produce(second);
    let got = setup.decisions(reference.len(), Duration::from_secs(150));
    terminate(&mut weir);
    assert_exactly_once_and_equal(&got, &reference);
}

#[test]
fn hot_deploy_on_kafka_under_a_continuous_stream() {
    use crate::deploy::{assert_decisions, decidable, deploy_steps, feed, free_addr, initial_rules};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let _shared = BROKER_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("deploy");
    let rules = setup.dir.path().join("rules");
    std::fs::remove_dir_all(&rules).unwrap();
    initial_rules(&rules);
    weir::kafka::create_topics(&setup.kafka_config()).unwrap();
    let addr = free_addr();
    let config = setup.config("a");
    let log = std::fs::File::create(setup.dir.path().join("a.log")).unwrap();
    let mut weir = Instance(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--config"])
            .arg(&config)
            .env("WEIR_LOG", "info")
            .env("WEIR_STATUS_LISTEN", &addr)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let lines = weir::demo::generate(20_000, 400, 23).lines;
    let expected = decidable(&lines);
    let go = Arc::new(AtomicBool::new(false));
    let feeder = {
        let go = go.clone();
        let input = setup.topic("in");
        std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", broker())
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .unwrap();
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
    let deployed = deploy_steps(&rules, &addr, setup.dir.path());
    go.store(true, std::sync::atomic::Ordering::Release);
    feeder.join().unwrap();
    let got = setup.decisions(expected.len(), Duration::from_secs(120));
    terminate(&mut weir);
    assert_decisions(&got, &expected, &deployed);
    assert!(setup.log("a").contains("rules swapped"), "swaps are logged with their partition offsets");
}
