//! What the console writes, and where: the analysts' events (verdicts to
//! the dispositions topic, unlocks to weir's input, list changes to the
//! lists topic), the same events `weir case` and `weir list` write, and
//! one audit record per action. On Kafka each goes to its topic;
//! embedded, to the run's JSON-lines files.

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::events::rfc3339_utc_millis;
use crate::kafka::KafkaConfig;

/// The kinds of record the console writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Disposition,
    Unlock,
    ListChange,
    Audit,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Disposition => "the verdict",
            Kind::Unlock => "the unlock",
            Kind::ListChange => "the list change",
            Kind::Audit => "the audit record",
        }
    }
}

/// Where the console's records go.
pub enum Sink {
    /// weir's topics, through one kept idempotent producer.
    Kafka(Box<KafkaConfig>, crate::kafka::Publisher),
    /// The embedded pipeline's files: verdicts, weir's input (unlocks), the
    /// lists file, and the audit log.
    Files { dispositions: Option<PathBuf>, input: Option<PathBuf>, lists: Option<PathBuf>, audit: Option<PathBuf> },
}

/// A record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {what}: {problem}")]
pub struct WriteError {
    pub what: &'static str,
    pub problem: String,
}

impl Sink {
    /// Where records of `kind` go, as the pages name it.
    pub fn place(&self, kind: Kind) -> Option<String> {
        match self {
            Sink::Kafka(k, _) => Some(format!("topic {}", self.topic(k, kind))),
            Sink::Files { dispositions, input, lists, audit } => {
                let path = match kind {
                    Kind::Disposition => dispositions,
                    Kind::Unlock => input,
                    Kind::ListChange => lists,
                    Kind::Audit => audit,
                };
                path.as_ref().map(|p| format!("file {}", p.display()))
            }
        }
    }

    fn topic<'a>(&self, k: &'a KafkaConfig, kind: Kind) -> &'a str {
        match kind {
            Kind::Disposition => &k.topics.dispositions,
            Kind::Unlock => &k.topics.input,
            Kind::ListChange => &k.topics.lists,
            Kind::Audit => &k.topics.audit,
        }
    }

    /// Writes one record keyed `key`; blocking until the broker (or the
    /// file) has it. Returns where it landed.
    pub fn write(&self, kind: Kind, key: &str, line: &str) -> Result<String, WriteError> {
        let failed = |problem: String| WriteError { what: kind.what(), problem };
        match self {
            Sink::Kafka(k, publisher) => {
                let topic = self.topic(k, kind);
                let at = publisher
                    .publish(topic, key, line.as_bytes())
                    .map_err(|e| failed(format!("topic `{topic}`: {e}")))?;
                Ok(format!("{} partition {} offset {}", at.topic, at.partition, at.offset))
            }
            Sink::Files { .. } => {
                let place = self.place(kind).ok_or_else(|| failed("no file is configured for it".into()))?;
                let Sink::Files { dispositions, input, lists, audit } = self else { unreachable!() };
                let path = match kind {
                    Kind::Disposition => dispositions,
                    Kind::Unlock => input,
                    Kind::ListChange => lists,
                    Kind::Audit => audit,
                }
                .as_ref()
                .expect("place found it");
                crate::review::append_lines(path, &[line.to_owned()])
                    .map_err(|e| failed(format!("{}: {e}", path.display())))?;
                Ok(place)
            }
        }
    }
}

/// `ConsoleAction`: one action in the console, as the audit log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub event_id: String,
    /// Always `ConsoleAction`.
    pub event_type: &'static str,
    pub schema_version: u32,
    #[serde(with = "rfc3339_utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// Who: the user, with the role they had.
    pub user: String,
    pub role: &'static str,
    /// The address the request came from.
    pub address: String,
    /// What: `login`, `login-refused`, `logout`, `case-resolve`,
    /// `account-unlock`, `list-add`, `list-remove`.
    pub action: &'static str,
    /// What it was about: a case, an account, `list/value`.
    pub target: String,
    /// How it was before, and how the action leaves it.
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `done` (and where the event landed) or `refused` (and why).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    pub fn new(user: &str, role: &'static str, address: String, action: &'static str, target: String) -> AuditRecord {
        AuditRecord {
            event_id: super::auth::random_hex(16),
            event_type: "ConsoleAction",
            schema_version: 1,
            occurred_at: rfc3339_utc_millis::normalize(OffsetDateTime::now_utc()).expect("now is within range"),
            user: user.to_owned(),
            role,
            address,
            action,
            target,
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            note: None,
            outcome: "done",
            detail: None,
        }
    }
}
