//! The notification service: tells customers about locks and suspected
//! purchases, each event once, even when Kafka delivers it again.
//!
//! It consumes `AccountLocked` (an email), `AccountUnlocked` (an email: the
//! account is unlocked; weir writes it on to the account-locked topic when
//! an analyst unlocks the account) and `FraudSuspected` (a push message
//! asking "was this you?") with `read_committed`, and "sends" by
//! writing the message to its own outbox table, `notifications`, which a
//! mail or push gateway would drain. weir does not know it exists.
//!
//! Exactly once, by the consumer: for each record, one SQLite transaction
//! inserts the decision's `event_id` into `handled` (weir's decision ids are
//! deterministic, so a replayed decision has the same id), inserts the
//! notification only if that id is new, and records the next offset of the
//! record's partition in `consumed`. On start the notifier resumes from
//! those offsets, so its progress and its sends can never disagree; and a
//! redelivery (offsets lost, rewound with [`rewind`], or the same decision
//! published twice) finds the id handled and sends nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::events::{AccountUnlocked, Decision};
use crate::{Kafka, now_rfc3339};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS handled (
    event_id TEXT PRIMARY KEY
);
-- The outbox of messages to customers.
CREATE TABLE IF NOT EXISTS notifications (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    account_id     TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    merchant_id    TEXT NOT NULL,
    message        TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consumed (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
";

/// A message to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The decision it is about (unique: one notification per decision).
    pub event_id: String,
    pub event_type: String,
    /// `email` or `push`.
    pub channel: String,
    pub account_id: String,
    pub transaction_id: String,
    pub merchant_id: String,
    pub message: String,
}

/// What one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Sent(Notification),
    /// Already handled: nothing sent.
    Duplicate {
        event_id: String,
    },
    /// Not a decision this service notifies about.
    Ignored,
}

pub fn open_db(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening the notifier database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(SCHEMA).with_context(|| format!("creating the tables of {}", path.display()))?;
    Ok(conn)
}

/// Forgets where the notifier was in the topics, so it reads them again
/// from the beginning: a forced redelivery of everything.
pub fn rewind(db: &Path) -> anyhow::Result<()> {
    open_db(db)?.execute("DELETE FROM consumed", [])?;
    Ok(())
}

/// Every notification sent, oldest first.
pub fn sent(db: &Path) -> anyhow::Result<Vec<Notification>> {
    let conn = open_db(db)?;
    let mut stmt = conn.prepare(
        "SELECT event_id, event_type, channel, account_id, transaction_id, merchant_id, message
         FROM notifications ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Notification {
            event_id: r.get(0)?,
            event_type: r.get(1)?,
            channel: r.get(2)?,
            account_id: r.get(3)?,
            transaction_id: r.get(4)?,
            merchant_id: r.get(5)?,
            message: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The notification service.
pub struct Notifier {
    conn: Connection,
    consumer: BaseConsumer,
}

impl Notifier {
    /// Assigns every partition of the account-locked and fraud-suspected
    /// topics, each at the offset recorded in the database (or the start).
    pub fn new(db: &Path, kafka: &Kafka) -> anyhow::Result<Notifier> {
        let conn = open_db(db)?;
        let consumer: BaseConsumer = kafka
            .client()
            .set("group.id", "tributary-notifier")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .context("creating the notifier's consumer")?;
        let mut tpl = TopicPartitionList::new();
        for topic in [&kafka.topics.account_locked, &kafka.topics.fraud_suspected] {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
            anyhow::ensure!(partitions > 0, "topic {topic} does not exist (weir creates it when it starts)");
            for p in 0..partitions as i32 {
                let next: Option<i64> = conn
                    .query_row(
                        "SELECT next_offset FROM consumed WHERE topic = ?1 AND partition = ?2",
                        params![topic, p],
                        |r| r.get(0),
                    )
                    .optional()?;
                tpl.add_partition_offset(topic, p, next.map(Offset::Offset).unwrap_or(Offset::Beginning))?;
            }
        }
        consumer.assign(&tpl)?;
        Ok(Notifier { conn, consumer })
    }

    /// Handles at most one record.
    pub fn poll(&mut self, timeout: Duration) -> anyhow::Result<Option<Handled>> {
        let Some(message) = self.consumer.poll(timeout) else { return Ok(None) };
        let message = message?;
        let payload = message.payload().unwrap_or_default();
        let notification = match serde_json::from_slice::<AccountUnlocked>(payload) {
            Ok(u) if u.event_type == "AccountUnlocked" => Some(compose_unlock(&u)),
            _ => match serde_json::from_slice::<Decision>(payload) {
                Ok(d) if d.event_type == "AccountLocked" || d.event_type == "FraudSuspected" => Some(compose(&d)),
                other => {
                    tracing::warn!(
                        topic = message.topic(),
                        offset = message.offset(),
                        "not a decision to notify about: {other:?}"
                    );
                    None
                }
            },
        };
        let db = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let handled = match notification {
            Some(n) => {
                let new = db.execute("INSERT OR IGNORE INTO handled (event_id) VALUES (?1)", [&n.event_id])? == 1;
                if new {
                    db.execute(
                        "INSERT INTO notifications (event_id, event_type, channel, account_id, transaction_id, merchant_id, message, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![n.event_id, n.event_type, n.channel, n.account_id, n.transaction_id, n.merchant_id, n.message, now_rfc3339()],
                    )?;
                    tracing::info!(channel = %n.channel, account_id = %n.account_id, "sent: {}", n.message);
                    Handled::Sent(n)
                } else {
                    tracing::info!(event_id = %n.event_id, "already notified; nothing sent");
                    Handled::Duplicate { event_id: n.event_id }
                }
            }
            None => Handled::Ignored,
        };
        db.execute(
            "INSERT INTO consumed (topic, partition, next_offset) VALUES (?1, ?2, ?3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = ?3",
            params![message.topic(), message.partition(), message.offset() + 1],
        )?;
        db.commit()?;
        Ok(Some(handled))
    }

    /// Notifies until `stop` is set; `on` sees each record's outcome.
    pub fn run(&mut self, stop: &AtomicBool, mut on: impl FnMut(&Handled)) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if let Some(h) = self.poll(Duration::from_millis(100))? {
                on(&h);
            }
        }
        Ok(())
    }
}

/// The message for an analyst's unlock weir accepted: the customer can pay again.
fn compose_unlock(u: &AccountUnlocked) -> Notification {
    Notification {
        event_id: u.event_id.clone(),
        event_type: u.event_type.clone(),
        channel: "email".to_owned(),
        account_id: u.account_id.clone(),
        transaction_id: u.transaction_id.clone(),
        merchant_id: String::new(),
        message: format!("To the holder of {}: your account is unlocked. You can pay with it again.", u.account_id),
    }
}

/// The message for a decision.
fn compose(d: &Decision) -> Notification {
    let (channel, message) = if d.event_type == "AccountLocked" {
        (
            "email",
            format!(
                "To the holder of {}: we locked your account after a purchase of {} at {} ({}). Call us to unlock it.",
                d.account_id,
                d.amount,
                d.merchant_id,
                d.reason.as_deref().unwrap_or("suspected fraud")
            ),
        )
    } else {
        (
            "push",
            format!(
                "Did you just pay {} at {}? If it was you, tap \"It was me\" (transaction {}).",
                d.amount, d.merchant_id, d.transaction_id
            ),
        )
    };
    Notification {
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        channel: channel.to_owned(),
        account_id: d.account_id.clone(),
        transaction_id: d.transaction_id.clone(),
        merchant_id: d.merchant_id.clone(),
        message,
    }
}
