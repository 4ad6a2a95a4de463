//! What weir's integration tests, benchmarks and the Tributary story share,
//! so that each is written once:
//!
//! - [`Broker`]: the project's Kafka broker (`scripts/kafka.sh`, started
//!   once per process) or one named by an environment variable;
//! - [`config`]: a weir configuration for a Kafka run, built as weir's own
//!   [`weir::config::Config`] and written as TOML — no hand-kept template;
//! - [`WeirProcess`]: `weir run --config` as a child process, stopped with
//!   SIGTERM and a deadline, its log's tail printed when a test fails;
//! - [`read_committed`] and [`read_to_end`]: readers of committed records
//!   that stop at an expected count, or at the end of every partition;
//! - [`jsonl`]: the records of a JSON-lines file;
//! - [`without_package_env`]: a cargo run from a test, without the
//!   variables cargo set for the test's own package.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The workspace's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository exists")
}

/// Removes from `cmd`'s environment the variables cargo sets for a test
/// process of one package (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// `CARGO_BIN_EXE_*`, `OUT_DIR`, ...), for a cargo (or a script running
/// cargo) started from a test. Some dependencies' build scripts read them
/// (ring's reads `CARGO_MANIFEST_DIR`), so passing them on makes the nested
/// cargo rebuild those dependencies and everything above them: minutes of
/// work inside a workspace test run that is otherwise a no-op.
pub fn without_package_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let is_package_var = name.to_str().is_some_and(|n| {
            n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_BIN_")
                || n.starts_with("CARGO_MANIFEST_")
                || matches!(n, "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR")
        });
        if is_package_var {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A topic prefix no other run and no other test of this run uses.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{millis}-{n}", std::process::id())
}

/// A Kafka broker to run against.
#[derive(Debug, Clone)]
pub struct Broker {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Whether it is the project's broker (which the caller may stop and
    /// restart); false for one named by the environment.
    pub project: bool,
}

impl Broker {
    /// The broker named by the first of `vars` that is set, else the
    /// project's broker, started once per process with `scripts/kafka.sh`
    /// (which honours `WEIR_KAFKA_PORT`).
    pub fn get(vars: &[&str]) -> &'static Broker {
        static BROKER: OnceLock<Broker> = OnceLock::new();
        BROKER.get_or_init(|| {
            for var in vars {
                if let Ok(bootstrap) = std::env::var(var) {
                    return Broker { bootstrap, project: false };
                }
            }
            kafka_script(&["start"]);
            let out = Command::new("bash")
                .arg(repo_root().join("scripts/kafka.sh"))
                .arg("bootstrap")
                .output()
                .expect("scripts/kafka.sh runs");
            Broker { bootstrap: String::from_utf8_lossy(&out.stdout).trim().to_owned(), project: true }
        })
    }

    /// A client configuration for this broker.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }
}

/// Runs `scripts/kafka.sh ARGS`, panicking if it fails.
pub fn kafka_script(args: &[&str]) {
    let status = Command::new("bash").arg(repo_root().join("scripts/kafka.sh")).args(args).status().expect("bash runs");
    assert!(status.success(), "scripts/kafka.sh {args:?} failed");
}

pub mod config {
    //! weir configurations for Kafka runs, built as weir's own types.

    use std::path::Path;

    use weir::config::Config;
    use weir::kafka::{KafkaConfig, TopicsConfig};

    /// The topics of a run with `prefix`: `<prefix>.in`, `.verified`,
    /// `.suspected`, `.locked`, `.dead`, `.state`, `.by-<kind>`, `.verdicts`,
    /// `.dispositions`, `.lists`, `.audit`.
    pub fn topics(prefix: &str) -> TopicsConfig {
        TopicsConfig {
            input: format!("{prefix}.in"),
            transaction_verified: format!("{prefix}.verified"),
            fraud_suspected: format!("{prefix}.suspected"),
            account_locked: format!("{prefix}.locked"),
            dead_letters: format!("{prefix}.dead"),
            changelog: format!("{prefix}.state"),
            entity_prefix: format!("{prefix}.by-"),
            entity_verdicts: format!("{prefix}.verdicts"),
            dispositions: format!("{prefix}.dispositions"),
            lists: format!("{prefix}.lists"),
            audit: format!("{prefix}.audit"),
        }
    }

    /// A configuration for instance `instance` of group `<prefix>-group` on
    /// `bootstrap`, with the rules in `rules`; adjust what a run needs.
    pub fn kafka(bootstrap: &str, prefix: &str, instance: &str, rules: &Path) -> Config {
        let mut config = Config::default();
        config.rules.dir = rules.to_owned();
        config.kafka = Some(KafkaConfig {
            bootstrap_servers: bootstrap.to_owned(),
            group_id: format!("{prefix}-group"),
            instance_id: Some(instance.to_owned()),
            topics: topics(prefix),
            ..KafkaConfig::default()
        });
        config
    }

    /// Writes `config` as weir.toml at `path`; weir reads it back (checked).
    pub fn write(config: &Config, path: &Path) {
        let text = toml::to_string(config).expect("a configuration serializes");
        let back = Config::parse(&text).expect("weir reads the configuration it wrote");
        assert_eq!(&back, config, "weir reads back the configuration it wrote");
        std::fs::write(path, text).expect("the configuration is written");
    }
}

/// `weir run --config` as a child process, with its log in a file. Killed
/// if dropped while running; when a test fails (panics), the tail of its log
/// is printed.
pub struct WeirProcess {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl WeirProcess {
    /// Starts `binary run --config CONFIG`, logging at `log_filter` to `log`.
    /// The environment's `WEIR_*` variables are not passed on.
    pub fn start(binary: &Path, config: &Path, log: &Path, log_filter: &str) -> WeirProcess {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("the log file opens");
        let mut cmd = Command::new(binary);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WEIR_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["run", "--config"])
            .arg(config)
            .env("WEIR_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let name = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        WeirProcess { name, log: log.to_owned(), child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs; panics with its log's tail if it exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("weir `{}` exited with {status}:\n{}", self.name, tail(&self.log, 40));
        }
    }

    /// Waits until its log contains `what`.
    pub fn wait_for_log(&mut self, what: &str, timeout: Duration) {
        let started = Instant::now();
        while !std::fs::read_to_string(&self.log).unwrap_or_default().contains(what) {
            self.check_alive();
            assert!(started.elapsed() < timeout, "weir `{}` did not log {what:?} within {timeout:?}", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its peak resident memory (`VmHWM`), in KiB.
    pub fn vm_hwm_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    /// SIGKILL: a crash, leaving an open transaction behind.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status, if it exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `deadline` for a clean exit; its stdout,
    /// or why it did not stop cleanly (with its log's tail).
    pub fn stop(&mut self, deadline: Duration) -> Result<String, String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let asked = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for weir `{}`: {e}", self.name)),
            }
            if asked.elapsed() > deadline {
                self.crash();
                return Err(format!(
                    "weir `{}` did not stop within {deadline:?} of SIGTERM:\n{}",
                    self.name,
                    tail(&self.log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if !status.success() {
            return Err(format!("weir `{}` exited with {status}: {out}\n{}", self.name, tail(&self.log, 40)));
        }
        Ok(out)
    }

    /// [`WeirProcess::stop`], panicking if weir does not stop cleanly.
    pub fn terminate(&mut self, deadline: Duration) -> String {
        self.stop(deadline).unwrap_or_else(|why| panic!("{why}"))
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- weir `{}`: {} (last 40 lines)\n{}", self.name, self.log.display(), tail(&self.log, 40));
        }
        if let Ok(None) = self.child.try_wait() {
            self.crash();
        }
    }
}

/// The last `n` lines of a log, without the lines of rules loading.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("rule package accepted")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The transactions a weir log counts as late at their entities (their
/// entity rules passed them unrun): the sum of `late=` on its lines saying
/// they came later than `kafka.entity_grace_ms` allows.
pub fn entity_late(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("later than `kafka.entity_grace_ms`"))
        .filter_map(|l| l.rsplit("late=").next()?.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Per line of a weir log saying transactions came later than
/// `kafka.entity_grace_ms` allows: the longest any of them was on its way
/// to weir (its `delay_ms=`, ms; 0 if the line has none). Empty: none
/// came late.
pub fn entity_late_delays(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("later than `kafka.entity_grace_ms`"))
        .map(|l| {
            let field = l.rsplit("delay_ms=").next().and_then(|v| v.split_whitespace().next());
            field.and_then(|v| v.parse().ok()).unwrap_or(0)
        })
        .collect()
}

/// One committed record.
#[derive(Debug, Clone)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Its headers, as text.
    pub headers: Vec<(String, String)>,
}

impl Committed {
    /// The header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A `read_committed` consumer of every partition of `topics`, from their
/// beginning, committing nothing.
fn committed_consumer(broker: &Broker, topics: &[String]) -> BaseConsumer {
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "weir-testkit-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10)).expect("topic metadata");
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(t, p.id(), Offset::Beginning).expect("a partition");
        }
    }
    consumer.assign(&tpl).expect("the partitions are assigned");
    consumer
}

fn committed(m: &rdkafka::message::BorrowedMessage<'_>) -> Committed {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    Committed {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// Reads committed records of `topics` until `expected` have arrived (or
/// panics after `timeout`). For waiting on progress; to check that nothing
/// more was committed, stop the writer and use [`read_to_end`].
pub fn read_committed(broker: &Broker, topics: &[String], expected: usize, timeout: Duration) -> Vec<Committed> {
    let consumer = committed_consumer(broker, topics);
    let started = Instant::now();
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        assert!(
            started.elapsed() < timeout,
            "read {} of {expected} committed records of {topics:?} in {timeout:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(committed(&m)),
            Some(Err(e)) => panic!("reading {topics:?}: {e}"),
            None => {}
        }
    }
    out
}

/// Reads every committed record of `topics`, to the end of every partition
/// as it is now (its high watermark: stop the writers first, and nothing is
/// pending).
pub fn read_to_end(broker: &Broker, topics: &[String], timeout: Duration) -> Vec<Committed> {
    let consumer = committed_consumer(broker, topics);
    let mut ends = Vec::new();
    for element in consumer.assignment().expect("an assignment").elements() {
        let (_, high) = consumer
            .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(10))
            .expect("the partition's end");
        ends.push((element.topic().to_owned(), element.partition(), high));
    }
    let started = Instant::now();
    let mut out = Vec::new();
    let done = |consumer: &BaseConsumer| {
        let position = consumer.position().expect("positions");
        ends.iter().all(|(t, p, high)| {
            *high == 0
                || matches!(position.find_partition(t, *p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= *high)
        })
    };
    while !done(&consumer) {
        assert!(started.elapsed() < timeout, "{topics:?} not read to the end in {timeout:?}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(committed(&m)),
            Some(Err(e)) => panic!("reading {topics:?}: {e}"),
            None => {}
        }
    }
    out
}

/// The records of a JSON-lines file.
pub fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()))).collect()
}

/// Produces `lines` to `topic`, each keyed by its `account_id` (records
/// that do not parse share one key), idempotently, waiting out a full queue
/// or a broker outage.
pub fn produce_by_account(broker: &Broker, topic: &str, lines: &[String]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = broker.client().set("enable.idempotence", "true").create().expect("a producer");
    for line in lines {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("account_id").and_then(|a| a.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "unparseable".to_owned());
        let mut record = BaseRecord::to(topic).key(&key).payload(line);
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
    producer.flush(Duration::from_secs(120)).expect("the records are delivered");
}
