//! The legacy bank: purchases in its own SQLite database, a transactional
//! outbox relayed to Kafka, and the account lock it learns from weir.
//!
//! The dual-write problem, solved rather than ignored: a purchase and its
//! `TransactionRecorded` event are written in one SQLite transaction
//! ([`Bank::purchase`]), so there is never a purchase without its event or
//! an event without its purchase. The [`Relay`] then publishes the outbox in
//! order with an idempotent producer and marks a row published only after
//! the broker acknowledged it. A relay that dies between the
//! acknowledgement and the mark publishes that row again when it restarts:
//! delivery to Kafka is at least once, the event keeps its `event_id`, and
//! weir's decisions carry deterministic ids, so downstream consumers
//! deduplicate (as [`crate::notifier`] does).
//!
//! Once the event is in the outbox the purchase is complete: nobody waits
//! for fraud analysis, and the bank never calls weir. When weir locks an
//! account, the [`LockListener`] sets the account's flag in the bank's
//! database; the next purchase checks the flag locally and is refused. When
//! an analyst unlocks the account (`weir case unlock`), weir writes the
//! `AccountUnlocked` on to the same topic, after the lock, and the listener
//! clears the flag.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::events::{AccountUnlocked, Decision, Merchant, Money, TransactionRecorded};
use crate::{Deliveries, Kafka, idempotent_producer, now_rfc3339};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    account_id    TEXT PRIMARY KEY,
    locked        INTEGER NOT NULL DEFAULT 0,
    lock_reason   TEXT,
    lock_event_id TEXT,
    locked_at     TEXT
);
CREATE TABLE IF NOT EXISTS purchases (
    transaction_id     TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    amount_minor       INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    merchant_id        TEXT NOT NULL,
    merchant_name      TEXT,
    category_code      TEXT NOT NULL,
    country            TEXT,
    channel            TEXT NOT NULL,
    device_fingerprint TEXT,
    status             TEXT NOT NULL CHECK (status IN ('completed', 'refused')),
    refusal            TEXT,
    occurred_at        TEXT NOT NULL
);
-- The transactional outbox: written with the purchase, emptied by the relay.
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    partition    INTEGER,
    offset       INTEGER
);
";

/// Opens the bank's database (creating its tables), in WAL mode so the
/// till, the relay and the lock listener can each have a connection.
pub fn open_db(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening the bank database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(SCHEMA).with_context(|| format!("creating the tables of {}", path.display()))?;
    Ok(conn)
}

/// A purchase the customer makes at the till or online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub account_id: String,
    pub amount: Money,
    pub merchant: Merchant,
    /// `card_present`, `ecommerce`, `transfer` or `atm`.
    pub channel: String,
    /// Known for purchases from the bank's app: the event is then version 2.
    pub device_fingerprint: Option<String>,
}

/// What the bank told the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The purchase is complete; its event is in the outbox.
    Accepted { transaction_id: String, event: Box<TransactionRecorded> },
    /// Refused locally: the account is locked. No event is written.
    Refused { transaction_id: String, reason: String },
}

impl Outcome {
    pub fn transaction_id(&self) -> &str {
        match self {
            Outcome::Accepted { transaction_id, .. } | Outcome::Refused { transaction_id, .. } => transaction_id,
        }
    }
}

/// The bank's till: records purchases.
pub struct Bank {
    conn: Connection,
    /// The topic outbox rows are for (weir's input).
    topic: String,
}

impl Bank {
    pub fn open(path: &Path, input_topic: &str) -> anyhow::Result<Bank> {
        Ok(Bank { conn: open_db(path)?, topic: input_topic.to_owned() })
    }

    /// Records a purchase and its event in one database transaction, unless
    /// the account is locked: then it is refused, without asking anyone.
    pub fn purchase(&mut self, p: &Purchase) -> anyhow::Result<Outcome> {
        let transaction_id = format!("tx-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let occurred_at = now_rfc3339();
        let db = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lock: Option<String> = db
            .query_row(
                "SELECT lock_reason FROM accounts WHERE account_id = ?1 AND locked = 1",
                [&p.account_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()?
            .map(|reason| reason.unwrap_or_default());
        let insert_purchase = |status: &str, refusal: Option<&str>| {
            db.execute(
                "INSERT INTO purchases (transaction_id, account_id, amount_minor, currency, merchant_id, merchant_name,
                     category_code, country, channel, device_fingerprint, status, refusal, occurred_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    transaction_id,
                    p.account_id,
                    p.amount.minor_units,
                    p.amount.currency,
                    p.merchant.id,
                    p.merchant.name,
                    p.merchant.category_code,
                    p.merchant.country,
                    p.channel,
                    p.device_fingerprint,
                    status,
                    refusal,
                    occurred_at
                ],
            )
        };
        if let Some(reason) = lock {
            let reason = format!("the account is locked ({reason})");
            insert_purchase("refused", Some(&reason))?;
            db.commit()?;
            tracing::info!(account_id = %p.account_id, %transaction_id, "purchase refused locally: {reason}");
            return Ok(Outcome::Refused { transaction_id, reason });
        }
        insert_purchase("completed", None)?;
        let event = TransactionRecorded {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: "TransactionRecorded".to_owned(),
            schema_version: if p.device_fingerprint.is_some() { 2 } else { 1 },
            occurred_at: occurred_at.clone(),
            transaction_id: transaction_id.clone(),
            account_id: p.account_id.clone(),
            amount: p.amount.clone(),
            merchant: p.merchant.clone(),
            channel: p.channel.clone(),
            device_fingerprint: p.device_fingerprint.clone(),
        };
        db.execute(
            "INSERT INTO outbox (event_id, topic, key, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![event.event_id, self.topic, event.account_id, serde_json::to_string(&event)?, occurred_at],
        )?;
        db.commit()?;
        tracing::info!(account_id = %p.account_id, %transaction_id, "purchase completed; its event is in the outbox");
        Ok(Outcome::Accepted { transaction_id, event: Box::new(event) })
    }

    /// Whether the account is locked, and why.
    pub fn lock_of(&self, account_id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT lock_reason FROM accounts WHERE account_id = ?1 AND locked = 1", [account_id], |row| {
                row.get::<_, Option<String>>(0)
            })
            .optional()?
            .map(|r| r.unwrap_or_default()))
    }

    /// Outbox rows not yet acknowledged by the broker.
    pub fn unpublished(&self) -> anyhow::Result<u64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL", [], |r| r.get(0))?)
    }

    /// Every event ever written to the outbox, published or not.
    pub fn outbox_len(&self) -> anyhow::Result<u64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?)
    }

    /// (transaction id, status) of every purchase, in the order they were made.
    pub fn purchases(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare("SELECT transaction_id, status FROM purchases ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Publishes the outbox to Kafka, in order, with an idempotent producer.
pub struct Relay {
    conn: Connection,
    producer: ThreadedProducer<Deliveries>,
}

impl Relay {
    pub fn new(db: &Path, kafka: &Kafka) -> anyhow::Result<Relay> {
        let producer = idempotent_producer(kafka).context("creating the relay's producer")?;
        Ok(Relay { conn: open_db(db)?, producer })
    }

    /// Publishes the oldest unpublished rows (at most 100) and marks each
    /// published once the broker has acknowledged it. Returns how many were
    /// published; a row that failed stays for the next round.
    pub fn publish_pending(&mut self) -> anyhow::Result<usize> {
        let rows: Vec<(i64, String, String, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT seq, topic, key, payload FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 100",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        // Sent in order; the idempotent producer keeps each partition's
        // order through retries.
        for (seq, topic, key, payload) in &rows {
            let record = BaseRecord::with_opaque_to(topic, Box::new(*seq)).key(key).payload(payload);
            if let Err((e, _)) = self.producer.send(record) {
                tracing::warn!(seq, "an outbox row could not be queued, it will be retried: {e}");
                break;
            }
        }
        self.producer.flush(Duration::from_secs(30))?;
        let mut published = 0;
        for (seq, report) in self.producer.context().take() {
            match report {
                Ok((partition, offset)) => {
                    self.conn.execute(
                        "UPDATE outbox SET published_at = ?1, partition = ?2, offset = ?3 WHERE seq = ?4",
                        params![now_rfc3339(), partition, offset, seq],
                    )?;
                    published += 1;
                }
                Err(e) => tracing::warn!(seq, "publishing an outbox row failed, it will be retried: {e}"),
            }
        }
        Ok(published)
    }

    /// Publishes until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if self.publish_pending()? == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.producer.flush(Duration::from_secs(10))?;
        Ok(())
    }
}

/// Consumes the account-locked topic: `AccountLocked` sets the account's
/// flag in the bank's database, `AccountUnlocked` (an analyst's, accepted by
/// weir) clears it. Both come in the account's order on one topic.
pub struct LockListener {
    conn: Connection,
    consumer: BaseConsumer,
}

/// A lock the bank applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLock {
    pub account_id: String,
    pub reason: String,
    /// The `AccountLocked` event.
    pub event_id: String,
}

impl LockListener {
    /// Joins the consumer group `group` on the account-locked topic.
    pub fn new(db: &Path, kafka: &Kafka, group: &str) -> anyhow::Result<LockListener> {
        let consumer: BaseConsumer = kafka
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // Only decisions of committed weir transactions.
            .set("isolation.level", "read_committed")
            .create()
            .context("creating the lock listener's consumer")?;
        consumer.subscribe(&[&kafka.topics.account_locked])?;
        Ok(LockListener { conn: open_db(db)?, consumer })
    }

    /// Handles at most one record. Setting and clearing a flag are
    /// idempotent and the topic keeps each account's order, so a redelivered
    /// record (after a crash before the offset commit) is harmless.
    pub fn poll(&mut self, timeout: Duration) -> anyhow::Result<Option<AppliedLock>> {
        let Some(message) = self.consumer.poll(timeout) else { return Ok(None) };
        let message = message?;
        if let Some(Ok(unlock)) = message.payload().map(serde_json::from_slice::<AccountUnlocked>)
            && unlock.event_type == "AccountUnlocked"
        {
            self.conn.execute(
                "UPDATE accounts SET locked = 0, lock_reason = NULL, lock_event_id = NULL, locked_at = NULL
                 WHERE account_id = ?1",
                [&unlock.account_id],
            )?;
            tracing::info!(account_id = %unlock.account_id, analyst = %unlock.analyst, "account unlocked in the bank's database");
            self.consumer.commit_message(&message, CommitMode::Sync)?;
            return Ok(None);
        }
        let applied = match message.payload().map(serde_json::from_slice::<Decision>) {
            Some(Ok(d)) if d.event_type == "AccountLocked" => {
                let reason = d.reason.clone().unwrap_or_default();
                self.conn.execute(
                    "INSERT INTO accounts (account_id, locked, lock_reason, lock_event_id, locked_at)
                     VALUES (?1, 1, ?2, ?3, ?4)
                     ON CONFLICT (account_id) DO UPDATE SET locked = 1, lock_reason = ?2, lock_event_id = ?3, locked_at = ?4",
                    params![d.account_id, reason, d.event_id, now_rfc3339()],
                )?;
                tracing::info!(account_id = %d.account_id, "account locked in the bank's database: {reason}");
                Some(AppliedLock { account_id: d.account_id, reason, event_id: d.event_id })
            }
            other => {
                tracing::warn!(offset = message.offset(), "not an AccountLocked event, skipped: {other:?}");
                None
            }
        };
        self.consumer.commit_message(&message, CommitMode::Sync)?;
        Ok(applied)
    }

    /// Listens until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll(Duration::from_millis(100))?;
        }
        Ok(())
    }
}
