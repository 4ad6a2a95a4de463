//! The Tributary Bank story, scripted: every system of the case study
//! working together on a real broker, narrated as it happens, each step's
//! outcome checked.
//!
//! [`run`] starts `weir run` as a child process (so it can be stopped and
//! restarted like a real service) with the shipped rules and its own fresh
//! topics, and runs the bank's till, outbox relay and lock listener, the
//! notifier and the decision log on threads. Then:
//!
//! 1. A customer buys concert tickets, once from the web (a version 1
//!    event) and once from the bank's app (version 2, with the device
//!    fingerprint): both verified.
//! 2. A fraudster tests a stolen card with tiny payments from an unknown
//!    device, then cashes out: `AccountLocked`. The bank sets its flag and
//!    refuses the next purchase locally. Bram calls; an analyst unlocks the
//!    account (`weir case unlock`); weir writes the `AccountUnlocked` on and
//!    the bank clears its flag; Bram shops again. The thief cashes out
//!    again: `AccountLocked` again, and the bank's flag follows. The analyst
//!    resolves the first case as fraud; the new lock has a case of its own.
//!    The analyst puts the thief's laptop on the block list (`weir list
//!    add`); its next purchase, on another account, is suspected at once.
//! 3. A customer's bet is suspected; they confirm "it was me"; the next bet
//!    at that site is verified, a bet at another site is still suspected.
//! 4. weir is stopped. Purchases go on and succeed; their events wait in
//!    Kafka, undecided. weir is restarted, catches up, decides every one of
//!    them once, and the lock of a fraud made meanwhile still arrives; the
//!    customer's confirmation still holds (restored from the changelog).
//! 5. The notifier has sent one message per lock, unlock or suspicion; forced to
//!    read everything again, it sends nothing twice.
//!
//! Every check that fails stops the story with an error that says what was
//! expected and what happened; [`Report`] holds the outcomes for tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_testkit::{Broker, WeirProcess};

use crate::bank::{Bank, LockListener, Outcome, Purchase, Relay};
use crate::events::{AccountUnlocked, Decision, Merchant, Money};
use crate::notifier::{self, Handled, Notification, Notifier};
use crate::{Kafka, Topics, confirm};

/// How long weir may take to stop after SIGTERM.
const WEIR_STOP_DEADLINE: Duration = Duration::from_secs(90);

/// How long any one outcome may take to show up.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the story needs from outside.
#[derive(Debug, Clone)]
pub struct Options {
    /// The broker.
    pub bootstrap: String,
    /// The `weir` binary.
    pub weir: PathBuf,
    /// Where the databases, weir's configuration, rules and log go.
    pub work_dir: PathBuf,
    /// Prefix of this run's topic names (fresh topics, fresh state).
    pub prefix: String,
}

/// What happened, step by step (the story has already checked it).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Scene 1: (schema version of the event, decision) of each ticket purchase.
    pub concert: Vec<(u32, String)>,
    /// Scene 2: the fraud chain's decisions, in order.
    pub fraud_chain: Vec<String>,
    /// Scene 2: the lock reason the bank stored.
    pub bank_lock_reason: Option<String>,
    /// Scene 2: the purchase after the lock was refused by the bank itself.
    pub refused_after_lock: bool,
    /// Scene 2: after the analyst's unlock, the owner's purchase and the
    /// thief's next cash-out, decided.
    pub after_unlock: Vec<String>,
    /// Scene 2: the bank cleared its flag on the unlock, then set it again.
    pub bank_unlocked_then_locked: bool,
    /// Scene 2: `AccountUnlocked` records on the account-locked topic.
    pub unlocks_published: usize,
    /// Scene 2: the states of the owner's review cases once the analyst
    /// resolved the first (`weir case show`).
    pub bram_cases: Vec<String>,
    /// Scene 2: what fired on the thief's laptop, used on another account
    /// after the analyst blocked it (`weir list add`).
    pub blocked_device: Vec<String>,
    /// Scenes 3 and 4: the first bet, the bet after the confirmation, the bet
    /// elsewhere, and a bet at the confirmed site while weir was stopped.
    pub bets: Vec<String>,
    /// Scene 4: purchases accepted while weir was stopped.
    pub accepted_while_stopped: usize,
    /// Scene 4: decisions that appeared for them while weir was stopped.
    pub decided_while_stopped: usize,
    /// Scene 4: decisions for them once weir was back.
    pub decided_after_restart: usize,
    /// Scene 4: the lock of the fraud made while weir was stopped.
    pub lock_after_restart: Option<String>,
    /// Scene 4: the purchase after that lock was refused locally.
    pub refused_after_restart: bool,
    /// Scene 5: every notification sent.
    pub notifications: Vec<Notification>,
    /// Scene 5: records the notifier read again after being rewound.
    pub redelivered: usize,
    /// Scene 5: notifications sent because of the redelivery.
    pub resent: usize,
    /// Every accepted purchase's transaction id, and how many decisions it got.
    pub decisions_per_transaction: BTreeMap<String, usize>,
    /// Refused purchases (no event, so no decision).
    pub refused: Vec<String>,
    /// Schema versions of the events weir decided.
    pub schema_versions_decided: BTreeSet<u32>,
    /// Records on the dead-letter topic.
    pub dead_letters: usize,
}

/// Runs the story, narrating to `out`.
pub fn run(opts: &Options, out: &mut dyn Write) -> anyhow::Result<Report> {
    let mut story = Story::start(opts, out)?;
    let result = story.play();
    story.finish();
    result.with_context(|| format!("the story stopped; weir's log is {}", opts.work_dir.join("weir.log").display()))
}

macro_rules! say {
    ($story:expr, $($arg:tt)*) => {{
        let _ = writeln!($story.out, $($arg)*);
        let _ = $story.out.flush();
    }};
}

/// A system running on a thread until it is stopped.
struct Running {
    name: &'static str,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn spawn(name: &'static str, body: impl FnOnce(&AtomicBool) -> anyhow::Result<()> + Send + 'static) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(&flag))
            .expect("threads can be spawned");
        Running { name, stop, handle: Some(handle) }
    }

    /// Stops the system; its error, if it failed.
    fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.with_context(|| format!("the {} failed", self.name)),
            Some(Err(_)) => bail!("the {} panicked", self.name),
            None => Ok(()),
        }
    }

    fn failed(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| h.is_finished())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Every committed decision and dead letter, read by a thread.
#[derive(Default)]
struct DecisionLog {
    decisions: Mutex<Vec<Decision>>,
    dead_letters: Mutex<usize>,
    /// The event ids of analysts' unlocks weir wrote on to the account-locked topic.
    unlocks: Mutex<Vec<String>>,
}

impl DecisionLog {
    fn of(&self, transaction_id: &str) -> Vec<Decision> {
        let all = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|d| d.transaction_id == transaction_id).cloned().collect()
    }
}

fn read_decisions(kafka: &Kafka, log: &DecisionLog, stop: &AtomicBool) -> anyhow::Result<()> {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", "tributary-story")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let t = &kafka.topics;
    let mut tpl = TopicPartitionList::new();
    for topic in [&t.transaction_verified, &t.fraud_suspected, &t.account_locked, &t.dead_letters] {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for p in metadata.topics().first().map(|m| m.partitions()).unwrap_or_default() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message?;
        if message.topic() == t.dead_letters {
            *log.dead_letters.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            continue;
        }
        let payload = message.payload().unwrap_or_default();
        if let Ok(u) = serde_json::from_slice::<AccountUnlocked>(payload)
            && u.event_type == "AccountUnlocked"
        {
            log.unlocks.lock().unwrap_or_else(|e| e.into_inner()).push(u.event_id);
            continue;
        }
        let decision: Decision = serde_json::from_slice(payload)
            .with_context(|| format!("a record on {} is not a decision", message.topic()))?;
        log.decisions.lock().unwrap_or_else(|e| e.into_inner()).push(decision);
    }
    Ok(())
}

struct Story<'a> {
    opts: &'a Options,
    out: &'a mut dyn Write,
    kafka: Kafka,
    bank: Bank,
    bank_db: PathBuf,
    notifier_db: PathBuf,
    weir: Option<WeirProcess>,
    systems: Vec<Running>,
    notifier: Option<Running>,
    notifier_outcomes: Arc<Mutex<Vec<Handled>>>,
    decisions: Arc<DecisionLog>,
    report: Report,
    /// Schema version of each accepted purchase's event.
    versions: BTreeMap<String, u32>,
}

impl<'a> Story<'a> {
    fn start(opts: &'a Options, out: &'a mut dyn Write) -> anyhow::Result<Story<'a>> {
        std::fs::create_dir_all(&opts.work_dir)?;
        let kafka = Kafka { bootstrap: opts.bootstrap.clone(), topics: Topics::with_prefix(&opts.prefix) };
        let bank_db = opts.work_dir.join("legacy-bank.sqlite");
        let notifier_db = opts.work_dir.join("notifier.sqlite");
        let bank = Bank::open(&bank_db, &kafka.topics.input)?;
        let mut story = Story {
            opts,
            out,
            kafka,
            bank,
            bank_db,
            notifier_db,
            weir: None,
            systems: Vec::new(),
            notifier: None,
            notifier_outcomes: Arc::default(),
            decisions: Arc::default(),
            report: Report::default(),
            versions: BTreeMap::new(),
        };
        say!(
            story,
            "Tributary Bank, runnable. Broker {}; this run's topics start with `{}.`",
            opts.bootstrap,
            opts.prefix
        );
        let rules = opts.work_dir.join("rules");
        weir::packages::export_shipped(&rules)
            .with_context(|| format!("writing the shipped rules to {}", rules.display()))?;
        story.start_weir("weir starts: the fraud service, with the shipped rules, in its own process")?;
        story.wait_for_topics()?;

        let relay_db = story.bank_db.clone();
        let relay_kafka = story.kafka.clone();
        story.systems.push(Running::spawn("outbox relay", move |stop| Relay::new(&relay_db, &relay_kafka)?.run(stop)));
        let lock_db = story.bank_db.clone();
        let lock_kafka = story.kafka.clone();
        let group = format!("{}-legacy-bank", opts.prefix);
        story.systems.push(Running::spawn("lock listener", move |stop| {
            LockListener::new(&lock_db, &lock_kafka, &group)?.run(stop)
        }));
        let log_kafka = story.kafka.clone();
        let log = Arc::clone(&story.decisions);
        story.systems.push(Running::spawn("decision log", move |stop| read_decisions(&log_kafka, &log, stop)));
        story.start_notifier();
        say!(
            story,
            "The legacy bank (SQLite + outbox relay + lock listener) and the notifier are running. None of them calls weir.\n"
        );
        Ok(story)
    }

    fn weir_config(&self) -> anyhow::Result<PathBuf> {
        let rules = self.opts.work_dir.join("rules");
        let mut config = weir_testkit::config::kafka(&self.kafka.bootstrap, &self.opts.prefix, "weir-1", &rules);
        let kafka = config.kafka.as_mut().context("a Kafka configuration")?;
        let t = &self.kafka.topics;
        kafka.group_id = format!("{}-weir", self.opts.prefix);
        kafka.partitions = 3;
        kafka.batch_max_records = 200;
        kafka.batch_max_ms = 50;
        kafka.transaction_timeout_ms = 10_000;
        kafka.topics = weir::kafka::TopicsConfig {
            input: t.input.clone(),
            transaction_verified: t.transaction_verified.clone(),
            fraud_suspected: t.fraud_suspected.clone(),
            account_locked: t.account_locked.clone(),
            dead_letters: t.dead_letters.clone(),
            changelog: t.changelog.clone(),
            // The story's own, so a run never sees another run's verdicts or lists.
            dispositions: format!("{}.dispositions", self.opts.prefix),
            lists: format!("{}.lists", self.opts.prefix),
            ..weir::kafka::TopicsConfig::default()
        };
        let path = self.opts.work_dir.join("weir.toml");
        weir_testkit::config::write(&config, &path);
        Ok(path)
    }

    fn start_weir(&mut self, narration: &str) -> anyhow::Result<()> {
        let config = self.weir_config()?;
        self.weir = Some(WeirProcess::start(&self.opts.weir, &config, &self.opts.work_dir.join("weir.log"), "info"));
        say!(self, "▶ {narration} (`weir run --config {}`).", config.display());
        Ok(())
    }

    fn wait_for_topics(&mut self) -> anyhow::Result<()> {
        let consumer: BaseConsumer = self.kafka.client().create()?;
        let t = self.kafka.topics.clone();
        let topics = [&t.input, &t.transaction_verified, &t.fraud_suspected, &t.account_locked, &t.dead_letters];
        let started = Instant::now();
        for topic in topics {
            loop {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
                if metadata.topics().first().is_some_and(|m| !m.partitions().is_empty() && m.error().is_none()) {
                    break;
                }
                if let Some(status) = self.weir.as_mut().and_then(WeirProcess::exited) {
                    bail!("weir exited with {status} before creating its topics");
                }
                ensure!(started.elapsed() < PATIENCE, "weir did not create {topic} within {PATIENCE:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    fn start_notifier(&mut self) {
        let db = self.notifier_db.clone();
        let kafka = self.kafka.clone();
        let outcomes = Arc::clone(&self.notifier_outcomes);
        self.notifier = Some(Running::spawn("notifier", move |stop| {
            Notifier::new(&db, &kafka)?
                .run(stop, |h| outcomes.lock().unwrap_or_else(|e| e.into_inner()).push(h.clone()))
        }));
    }

    fn play(&mut self) -> anyhow::Result<Report> {
        self.concert()?;
        self.fraud_chain()?;
        self.confirmation()?;
        self.outage()?;
        self.notifications()?;
        self.totals()?;
        say!(self, "\nThe story is complete: every system did its part, and every outcome was as expected.");
        Ok(std::mem::take(&mut self.report))
    }

    /// Stops everything; the first failure of a system is reported by `play`'s checks.
    fn finish(&mut self) {
        for mut system in self.systems.drain(..).chain(self.notifier.take()) {
            if let Err(e) = system.stop() {
                let _ = writeln!(self.out, "  ({e:#})");
            }
        }
        if let Some(mut weir) = self.weir.take() {
            let _ = weir.stop(WEIR_STOP_DEADLINE);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

    fn buy(
        &mut self,
        account: &str,
        amount: i64,
        merchant: (&str, &str, &str, &str),
        channel: &str,
        device: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let (id, name, category, country) = merchant;
        let purchase = Purchase {
            account_id: account.to_owned(),
            amount: Money { minor_units: amount, currency: "EUR".to_owned() },
            merchant: Merchant {
                id: id.to_owned(),
                name: Some(name.to_owned()),
                category_code: category.to_owned(),
                country: Some(country.to_owned()),
            },
            channel: channel.to_owned(),
            device_fingerprint: device.map(str::to_owned),
        };
        let outcome = self.bank.purchase(&purchase)?;
        match &outcome {
            Outcome::Accepted { transaction_id, event } => {
                let device = device.map(|d| format!(", device {d}")).unwrap_or_default();
                say!(
                    self,
                    "  🛒 {account} pays {} at {name} ({channel}{device}): accepted as {transaction_id}; TransactionRecorded v{} is in the outbox.",
                    purchase.amount,
                    event.schema_version
                );
                self.versions.insert(transaction_id.clone(), event.schema_version);
                self.report.decisions_per_transaction.insert(transaction_id.clone(), 0);
            }
            Outcome::Refused { transaction_id, reason } => {
                say!(
                    self,
                    "  ⛔ {account} tries to pay {} at {name}: refused by the bank itself ({reason}), no call to anyone.",
                    purchase.amount
                );
                self.report.refused.push(transaction_id.clone());
            }
        }
        Ok(outcome)
    }

    fn accepted(
        &mut self,
        account: &str,
        amount: i64,
        merchant: (&str, &str, &str, &str),
        channel: &str,
        device: Option<&str>,
    ) -> anyhow::Result<String> {
        match self.buy(account, amount, merchant, channel, device)? {
            Outcome::Accepted { transaction_id, .. } => Ok(transaction_id),
            Outcome::Refused { reason, .. } => {
                bail!("a purchase by {account} was refused ({reason}); it should have been accepted")
            }
        }
    }

    fn check_systems(&self) -> anyhow::Result<()> {
        for system in self.systems.iter().chain(&self.notifier) {
            ensure!(!system.failed(), "the {} stopped unexpectedly", system.name);
        }
        Ok(())
    }

    /// Waits for weir's decision on a transaction.
    fn decision(&mut self, transaction_id: &str) -> anyhow::Result<Decision> {
        let started = Instant::now();
        loop {
            if let Some(d) = self.decisions.of(transaction_id).into_iter().next() {
                let fired = d.fired();
                let why = if fired.is_empty() { String::new() } else { format!(" [{}]", fired.join(", ")) };
                say!(self, "     weir → {} for {transaction_id}{why}", d.event_type);
                return Ok(d);
            }
            self.check_systems()?;
            if let Some(status) = self.weir.as_mut().and_then(WeirProcess::exited) {
                bail!("weir exited with {status}");
            }
            ensure!(started.elapsed() < PATIENCE, "no decision for {transaction_id} within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn expect_decision(&mut self, transaction_id: &str, expected: &str) -> anyhow::Result<Decision> {
        let d = self.decision(transaction_id)?;
        ensure!(d.event_type == expected, "{transaction_id} was decided {}, expected {expected}", d.event_type);
        Ok(d)
    }

    fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&mut Self) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while !done(self)? {
            self.check_systems()?;
            ensure!(started.elapsed() < PATIENCE, "timed out after {PATIENCE:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn bank_lock(&mut self, account: &str) -> anyhow::Result<String> {
        let mut reason = None;
        self.wait_until(&format!("the bank to lock {account}"), |s| {
            reason = s.bank.lock_of(account)?;
            Ok(reason.is_some())
        })?;
        let reason = reason.unwrap_or_default();
        say!(self, "  🏦 The bank consumed AccountLocked and set the flag on {account} in its own database.");
        Ok(reason)
    }

    fn sent(&self) -> anyhow::Result<Vec<Notification>> {
        notifier::sent(&self.notifier_db)
    }

    // -----------------------------------------------------------------------------------------
    // The scenes

    fn concert(&mut self) -> anyhow::Result<()> {
        say!(self, "1. Anna buys concert tickets.");
        let tickets = ("m-ticketsrus", "Tickets R Us", "7922", "NL");
        let web = self.accepted("acct-1029", 18_900, tickets, "ecommerce", None)?;
        let app = self.accepted("acct-1029", 7_450, tickets, "ecommerce", Some("fp-anna-phone"))?;
        for tx in [web, app] {
            let d = self.expect_decision(&tx, "TransactionVerified")?;
            self.report.concert.push((self.versions[&tx], d.event_type));
        }
        say!(self, "   Both verified: weir reads version 1 and version 2 events from the same topic.\n");
        Ok(())
    }

    fn fraud_chain(&mut self) -> anyhow::Result<()> {
        say!(
            self,
            "2. Bram's card is stolen. The thief tests it with tiny payments from an unknown laptop, then cashes out."
        );
        let grocer = ("m-albert", "Albert Heijn", "5411", "NL");
        let charity = ("m-givewell", "Give Well Online", "8398", "NL");
        let electro = ("m-megaelectro", "Mega Electro", "5732", "DE");
        let own = self.accepted("acct-2211", 4_520, grocer, "card_present", Some("fp-bram-phone"))?;
        self.expect_decision(&own, "TransactionVerified")?;
        for _ in 0..3 {
            let probe = self.accepted("acct-2211", 100, charity, "ecommerce", Some("fp-unknown-laptop"))?;
            let d = self.decision(&probe)?;
            self.report.fraud_chain.push(d.event_type);
        }
        let cash_out = self.accepted("acct-2211", 94_900, electro, "ecommerce", Some("fp-unknown-laptop"))?;
        let lock = self.expect_decision(&cash_out, "AccountLocked")?;
        self.report.fraud_chain.push(lock.event_type.clone());
        ensure!(
            lock.fired().iter().any(|f| f == "card-testing:CARD_TESTING"),
            "the lock should come from card-testing: {:?}",
            lock.fired()
        );
        self.report.bank_lock_reason = Some(self.bank_lock("acct-2211")?);
        // The relay publishes concurrently: count every outbox row, not the unpublished ones.
        let before = self.bank.outbox_len()?;
        let next = self.buy("acct-2211", 1_200, grocer, "card_present", Some("fp-unknown-laptop"))?;
        ensure!(matches!(next, Outcome::Refused { .. }), "the purchase on the locked account was accepted");
        ensure!(self.bank.outbox_len()? == before, "a refused purchase wrote an event");
        self.report.refused_after_lock = true;
        self.unlock_and_lock_again(&cash_out, grocer, electro)?;
        say!(self, "");
        Ok(())
    }

    /// Bram calls; an analyst unlocks his account; the thief tries again.
    fn unlock_and_lock_again(
        &mut self,
        locked_by: &str,
        grocer: (&str, &str, &str, &str),
        electro: (&str, &str, &str, &str),
    ) -> anyhow::Result<()> {
        say!(self, "   Bram calls the bank and passes the identity check. An analyst unlocks the account:");
        let unlock = ["case", "unlock", "--account", "acct-2211", "--transaction", locked_by];
        let out =
            self.weir_cli(&[&unlock[..], &["--analyst", "fraud-ops/analyst-12", "--note", "owner verified"]].concat())?;
        say!(self, "  $ weir case unlock --account acct-2211 --transaction {locked_by} ...");
        say!(self, "    {}", out.trim());
        self.wait_until("the bank to clear the flag on acct-2211", |s| Ok(s.bank.lock_of("acct-2211")?.is_none()))?;
        say!(self, "  🏦 weir wrote AccountUnlocked on after the lock; the bank consumed it and cleared its flag.");
        let own = self.accepted("acct-2211", 1_200, grocer, "card_present", Some("fp-bram-phone"))?;
        let d = self.decision(&own)?;
        self.report.after_unlock.push(d.event_type);
        let again = self.accepted("acct-2211", 89_900, electro, "ecommerce", Some("fp-unknown-laptop"))?;
        let lock = self.expect_decision(&again, "AccountLocked")?;
        self.report.after_unlock.push(lock.event_type);
        self.bank_lock("acct-2211")?;
        self.report.bank_unlocked_then_locked = true;
        self.report.unlocks_published = self.decisions.unlocks.lock().unwrap_or_else(|e| e.into_inner()).len();

        say!(self, "   The analyst closes the first case as card testing; the new lock waits in a case of its own:");
        let resolve = ["case", "resolve", "--account", "acct-2211", "--transaction", locked_by, "--verdict", "fraud"];
        let out = self
            .weir_cli(&[&resolve[..], &["--pattern", "card-testing", "--analyst", "fraud-ops/analyst-12"]].concat())?;
        say!(
            self,
            "  $ weir case resolve --account acct-2211 --transaction {locked_by} --verdict fraud --pattern card-testing ..."
        );
        say!(self, "    {}", out.trim());
        let shown: serde_json::Value =
            serde_json::from_str(&self.weir_cli(&["case", "show", "acct-2211", "--json"])?)
                .context("weir case show --json prints JSON")?;
        for case in shown.as_array().context("an array of cases")? {
            let state = case["state"].as_str().unwrap_or_default().to_owned();
            let decisions = case["decisions"].as_array().map_or(0, Vec::len);
            say!(
                self,
                "    case {} of acct-2211: {state}, {decisions} flagged decision(s)",
                &case["case_id"].as_str().unwrap_or_default()[..8]
            );
            self.report.bram_cases.push(state);
        }
        self.block_the_laptop()
    }

    /// The analyst blocks the thief's laptop; its next purchase, on another
    /// account, is suspected at once.
    fn block_the_laptop(&mut self) -> anyhow::Result<()> {
        say!(self, "   The analyst puts the thief's laptop on the block list, without a deploy:");
        let add = ["list", "add", "blocked-devices", "fp-unknown-laptop", "--analyst", "fraud-ops/analyst-12"];
        let out = self.weir_cli(&[&add[..], &["--note", "card testing on acct-2211"]].concat())?;
        say!(self, "  $ weir list add blocked-devices fp-unknown-laptop ...");
        say!(self, "    {}", out.trim());
        let shop = ("m-bol", "bol.com", "5999", "NL");
        let probe = self.accepted("acct-5120", 1_500, shop, "ecommerce", Some("fp-unknown-laptop"))?;
        let d = self.expect_decision(&probe, "FraudSuspected")?;
        ensure!(
            d.fired().iter().any(|f| f == "blocklist:BLOCKED_DEVICE"),
            "the suspicion should come from the block list: {:?}",
            d.fired()
        );
        self.report.blocked_device = d.fired();
        say!(self, "   The same laptop on another account: suspected at once, by the list the analyst just changed.");
        Ok(())
    }

    /// Runs `weir` with `args` and the story's configuration: its stdout.
    fn weir_cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let config = self.weir_config()?;
        let out = Command::new(&self.opts.weir)
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .with_context(|| format!("running weir {}", args.join(" ")))?;
        ensure!(out.status.success(), "weir {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn confirmation(&mut self) -> anyhow::Result<()> {
        say!(self, "3. Carla bets online. The bank's rules suspect betting; Carla confirms it was her.");
        let lucky = ("m-luckybets", "Lucky Bets", "7995", "MT");
        let spin = ("m-spinpalace", "Spin Palace", "7995", "MT");
        let first = self.accepted("acct-3307", 2_500, lucky, "ecommerce", None)?;
        let suspected = self.expect_decision(&first, "FraudSuspected")?;
        self.report.bets.push(suspected.event_type.clone());
        let event_id = suspected.event_id.clone();
        self.wait_until("the notifier to ask Carla", |s| Ok(s.sent()?.iter().any(|n| n.event_id == event_id)))?;
        say!(self, "  📱 The notifier pushed: \"Did you just pay EUR 25.00 at m-luckybets?\"");
        let confirmation = confirm::confirm(&self.kafka, &suspected)?;
        say!(
            self,
            "  👍 Carla taps \"It was me\": TransactionVerified (verified_by = customer) for {} goes to weir's input topic.",
            confirmation.transaction_id
        );
        let second = self.accepted("acct-3307", 3_000, lucky, "ecommerce", None)?;
        let d = self.expect_decision(&second, "TransactionVerified")?;
        self.report.bets.push(d.event_type);
        say!(self, "   A confirmed merchant no longer raises suspicion.");
        let elsewhere = self.accepted("acct-3307", 2_000, spin, "ecommerce", None)?;
        let d = self.expect_decision(&elsewhere, "FraudSuspected")?;
        self.report.bets.push(d.event_type);
        say!(self, "   The confirmation was for Lucky Bets only: another betting site is still suspected.\n");
        Ok(())
    }

    fn outage(&mut self) -> anyhow::Result<()> {
        say!(self, "4. weir is stopped for maintenance. The bank does not notice.");
        if let Some(mut weir) = self.weir.take() {
            weir.stop(WEIR_STOP_DEADLINE).map_err(anyhow::Error::msg)?;
        }
        say!(self, "  ⏹ weir stopped (SIGTERM: it finished its batch and left the consumer group).");
        let shop = ("m-bol", "bol.com", "5999", "NL");
        let train = ("m-ns", "NS Trains", "4112", "NL");
        let charity = ("m-givewell", "Give Well Online", "8398", "NL");
        let electro = ("m-megaelectro", "Mega Electro", "5732", "DE");
        let lucky = ("m-luckybets", "Lucky Bets", "7995", "MT");
        let mut pending = vec![
            self.accepted("acct-1029", 3_599, shop, "ecommerce", Some("fp-anna-phone"))?,
            self.accepted("acct-1029", 1_240, train, "card_present", None)?,
        ];
        let bet = self.accepted("acct-3307", 1_500, lucky, "ecommerce", None)?;
        pending.push(bet.clone());
        say!(self, "   Meanwhile Dirk's card is tested and cashed out too.");
        for _ in 0..3 {
            pending.push(self.accepted("acct-4410", 150, charity, "ecommerce", Some("fp-other-laptop"))?);
        }
        let cash_out = self.accepted("acct-4410", 120_000, electro, "ecommerce", Some("fp-other-laptop"))?;
        pending.push(cash_out.clone());
        self.report.accepted_while_stopped = pending.len();
        self.wait_until("the relay to publish the outbox", |s| Ok(s.bank.unpublished()? == 0))?;
        std::thread::sleep(Duration::from_secs(2));
        let decided = pending.iter().filter(|t| !self.decisions.of(t).is_empty()).count();
        self.report.decided_while_stopped = decided;
        ensure!(decided == 0, "{decided} purchases were decided while weir was stopped");
        say!(self, "   {} purchases succeeded; their events are in Kafka, waiting, undecided.", pending.len());

        self.start_weir("weir restarts")?;
        let others: Vec<String> = pending.iter().filter(|t| **t != bet && **t != cash_out).cloned().collect();
        for tx in &others {
            self.decision(tx)?;
        }
        let lock = self.expect_decision(&cash_out, "AccountLocked")?;
        let d = self.expect_decision(&bet, "TransactionVerified")?;
        self.report.bets.push(d.event_type);
        say!(
            self,
            "   Carla's confirmation survived the restart: weir read the account's state back from its changelog."
        );
        self.report.decided_after_restart = pending.iter().filter(|t| !self.decisions.of(t).is_empty()).count();
        say!(
            self,
            "   weir resumed from its committed offsets and caught up: every waiting purchase decided, the lock included."
        );
        self.report.lock_after_restart = lock.reason.clone();
        self.bank_lock("acct-4410")?;
        let next = self.buy("acct-4410", 999, shop, "ecommerce", Some("fp-other-laptop"))?;
        ensure!(matches!(next, Outcome::Refused { .. }), "the purchase on the locked account was accepted");
        self.report.refused_after_restart = true;
        say!(self, "");
        Ok(())
    }

    fn notifications(&mut self) -> anyhow::Result<()> {
        say!(self, "5. The notifier, which weir does not know about, told each customer once.");
        let expected: BTreeSet<String> = {
            let all = self.decisions.decisions.lock().unwrap_or_else(|e| e.into_inner());
            let unlocks = self.decisions.unlocks.lock().unwrap_or_else(|e| e.into_inner());
            all.iter()
                .filter(|d| d.event_type != "TransactionVerified")
                .map(|d| d.event_id.clone())
                .chain(unlocks.iter().cloned())
                .collect()
        };
        ensure!(expected.len() == 7, "expected 3 locks, 1 unlock and 3 suspicions, got {} such events", expected.len());
        self.wait_until("the notifier to send every notification", |s| Ok(s.sent()?.len() >= expected.len()))?;
        let sent = self.sent()?;
        for n in &sent {
            say!(self, "  ✉ {} to {}: {}", n.channel, n.account_id, n.message);
        }
        let ids: BTreeSet<String> = sent.iter().map(|n| n.event_id.clone()).collect();
        ensure!(
            ids == expected && sent.len() == expected.len(),
            "notifications {ids:?} differ from decisions {expected:?}"
        );

        say!(
            self,
            "   Forced redelivery: the notifier is stopped, its offsets are rewound, and it reads both topics again."
        );
        if let Some(mut n) = self.notifier.take() {
            n.stop()?;
        }
        self.notifier_outcomes.lock().unwrap_or_else(|e| e.into_inner()).clear();
        notifier::rewind(&self.notifier_db)?;
        self.start_notifier();
        let count = expected.len();
        self.wait_until("the notifier to read everything again", |s| {
            Ok(s.notifier_outcomes.lock().unwrap_or_else(|e| e.into_inner()).len() >= count)
        })?;
        std::thread::sleep(Duration::from_millis(500));
        let outcomes = self.notifier_outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.report.redelivered = outcomes.iter().filter(|h| matches!(h, Handled::Duplicate { .. })).count();
        self.report.resent = outcomes.iter().filter(|h| matches!(h, Handled::Sent(_))).count();
        let after = self.sent()?;
        ensure!(
            self.report.resent == 0 && after.len() == sent.len(),
            "the redelivery sent {} notifications again",
            self.report.resent
        );
        say!(
            self,
            "   {} decisions delivered again, 0 notifications sent again: each decision's id was already handled.\n",
            self.report.redelivered
        );
        self.report.notifications = after;
        Ok(())
    }

    fn totals(&mut self) -> anyhow::Result<()> {
        say!(self, "Totals, from the topics themselves (read_committed):");
        std::thread::sleep(Duration::from_secs(1));
        let all = self.decisions.decisions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for d in &all {
            if let Some(n) = self.report.decisions_per_transaction.get_mut(&d.transaction_id) {
                *n += 1;
            } else {
                bail!("a decision for {}, which the bank never published", d.transaction_id);
            }
        }
        let wrong: Vec<_> = self.report.decisions_per_transaction.iter().filter(|(_, n)| **n != 1).collect();
        ensure!(wrong.is_empty(), "transactions not decided exactly once: {wrong:?}");
        for refused in &self.report.refused {
            ensure!(self.decisions.of(refused).is_empty(), "refused purchase {refused} was decided");
        }
        self.report.schema_versions_decided = self.versions.values().copied().collect();
        ensure!(
            self.report.schema_versions_decided == BTreeSet::from([1, 2]),
            "decided schema versions: {:?}",
            self.report.schema_versions_decided
        );
        self.report.dead_letters = *self.decisions.dead_letters.lock().unwrap_or_else(|e| e.into_inner());
        ensure!(self.report.dead_letters == 0, "{} records were dead-lettered", self.report.dead_letters);
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &all {
            *by_type.entry(d.event_type.as_str()).or_default() += 1;
        }
        say!(
            self,
            "  {} purchases accepted and published, {} refused by the bank; {} decisions, exactly one per published purchase: {by_type:?}.",
            self.report.decisions_per_transaction.len(),
            self.report.refused.len(),
            all.len()
        );
        say!(self, "  Events of schema versions {:?} decided; no dead letters.", self.report.schema_versions_decided);
        Ok(())
    }
}

/// The bootstrap address: `TRIBUTARY_KAFKA_BOOTSTRAP` or
/// `WEIR_TEST_KAFKA_BOOTSTRAP` if set, else the project's own broker,
/// started with `scripts/kafka.sh` (which honours `WEIR_KAFKA_PORT`).
pub fn broker() -> anyhow::Result<String> {
    Ok(Broker::get(&["TRIBUTARY_KAFKA_BOOTSTRAP", "WEIR_TEST_KAFKA_BOOTSTRAP"]).bootstrap.clone())
}

/// The `weir` binary: `WEIR_BIN` if set; else, under cargo, `cargo build
/// -p weir` is run (a no-op when it is up to date) and its binary used.
pub fn weir_binary() -> anyhow::Result<PathBuf> {
    built_weir(&["build", "--quiet", "-p", "weir", "--bin", "weir"])
}

/// The `weir` binary for a test run: `WEIR_BIN` if set; else the binary
/// `cargo test --workspace` builds for the host's integration tests. The
/// same cargo command is run with `--no-run` (a no-op inside a workspace
/// test run): a plain `cargo build -p weir` would resolve dependency
/// features differently and rebuild much of the dependency tree.
pub fn weir_binary_for_tests() -> anyhow::Result<PathBuf> {
    built_weir(&["test", "--quiet", "--workspace", "--no-run"])
}

/// `WEIR_BIN`, or the `weir` next to this executable after running cargo
/// with `args` (in the same profile).
fn built_weir(args: &[&str]) -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("WEIR_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("the executable has a directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.current_dir(repo_root()).args(args);
    weir_testkit::without_package_env(&mut build);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().context("running cargo to build weir (or set WEIR_BIN)")?;
    ensure!(status.success(), "building weir failed");
    let bin = dir.join("weir");
    ensure!(bin.exists(), "{} does not exist after the build (set WEIR_BIN)", bin.display());
    Ok(bin)
}

/// A topic prefix no earlier run used.
pub fn fresh_prefix() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("tributary-{}-{millis}", std::process::id())
}

fn repo_root() -> PathBuf {
    weir_testkit::repo_root()
}
