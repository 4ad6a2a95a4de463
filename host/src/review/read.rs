//! Where the cases are read from: weir's decision topics, the unlocks on
//! the account-locked topic, the dispositions topic and the customers'
//! confirmations on the input topic; or, embedded, the files of a run.
//! Shared by `weir case` and the console ([`crate::console`]).

use std::path::{Path, PathBuf};

use crate::events::{
    ACCOUNT_UNLOCKED, AccountUnlocked, CustomerConfirmation, InputEvent, MAX_EVENT_BYTES, parse_disposition,
    parse_input,
};
use crate::kafka::{Bound, KafkaConfig};

use super::Published;

/// The embedded files cases are folded from (ignored on Kafka).
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// The decisions weir wrote (decisions.jsonl).
    pub decisions: Option<PathBuf>,
    /// The dispositions (`weir case resolve --append FILE`); a missing file has none.
    pub dispositions: Option<PathBuf>,
    /// The input weir read: the customers' confirmations and the analysts' unlocks.
    pub input: Option<PathBuf>,
}

/// Why the cases could not be read: what was being read, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ReadError {
    pub what: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(what: impl Into<String>) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ReadError {
    let what = what.into();
    move |source| ReadError { what, source }
}

/// What the cases are folded from: the Kafka topics with `kafka` when
/// `files.decisions` is not given, otherwise the embedded files; the
/// customers' confirmations only `with_confirmations`.
pub fn read_published(
    kafka: Option<&KafkaConfig>,
    files: &Files,
    with_confirmations: bool,
) -> Result<Published, ReadError> {
    match (kafka, &files.decisions) {
        (_, Some(decisions)) => read_files(decisions, files, with_confirmations),
        (Some(kafka), None) => {
            if files.dispositions.is_some() || files.input.is_some() {
                return Err(failed("the files")(
                    "dispositions and input files go with a decisions file; on Kafka the topics are read".into(),
                ));
            }
            read_topics(kafka, with_confirmations)
        }
        (None, None) => Err(failed("the decisions")(
            "give the decisions: a decisions file (embedded), or a config with a [kafka] table".into(),
        )),
    }
}

fn read_files(decisions: &Path, files: &Files, with_confirmations: bool) -> Result<Published, ReadError> {
    let mut published = Published {
        decisions: crate::backtest::read_decisions(decisions).map_err(|e| failed("the decisions")(e.into()))?,
        ..Published::default()
    };
    if let Some(path) = &files.input {
        let text = std::fs::read(path).map_err(|e| failed(format!("cannot read {}", path.display()))(e.into()))?;
        if with_confirmations {
            published.confirmations = confirmations(text.split(|b| *b == b'\n'));
        }
        published.unlocks = unlocks_in(&text);
    }
    if let Some(path) = files.dispositions.as_ref().filter(|p| p.exists()) {
        let text = std::fs::read(path).map_err(|e| failed(format!("cannot read {}", path.display()))(e.into()))?;
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let r = parse_disposition(line)
                .map_err(|e| failed(format!("{}:{}: not a disposition", path.display(), n + 1))(e.into()))?;
            published.dispositions.push(r);
        }
    }
    Ok(published)
}

/// Which of weir's topics a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A decision topic: decisions, and on the account-locked topic the unlocks weir accepted.
    Decisions,
    /// The dispositions topic.
    Dispositions,
    /// weir's input: the customers' confirmations (the rest is passed over).
    Input,
}

/// One record that cases are folded from.
#[derive(Debug)]
pub enum Record {
    Decision(crate::events::DecisionEvent),
    Unlock(AccountUnlocked),
    Disposition(crate::events::CaseResolved),
    Confirmation(CustomerConfirmation),
}

impl Record {
    /// What `payload`, read from `source`, gives the cases: `None` for an
    /// input record that is no confirmation; an error for a record that is
    /// not what its topic holds.
    pub fn of(source: Source, payload: &[u8]) -> Result<Option<Record>, String> {
        match source {
            Source::Decisions => {
                if let Ok(unlock) = serde_json::from_slice::<AccountUnlocked>(payload)
                    && unlock.event_type == ACCOUNT_UNLOCKED
                {
                    return Ok(Some(Record::Unlock(unlock)));
                }
                serde_json::from_slice(payload)
                    .map(|d| Some(Record::Decision(d)))
                    .map_err(|e| format!("not a weir decision: {e}"))
            }
            Source::Dispositions => parse_disposition(payload)
                .map(|r| Some(Record::Disposition(r)))
                .map_err(|e| format!("not a disposition: {e}")),
            // Only a confirmation says who verified it: the rest is not parsed.
            Source::Input if !payload.windows(13).any(|w| w == b"\"verified_by\"") => Ok(None),
            Source::Input => Ok(match parse_input(payload, MAX_EVENT_BYTES) {
                Ok(InputEvent::CustomerConfirmation(c)) => Some(Record::Confirmation(c)),
                _ => None,
            }),
        }
    }

    /// The account it is about.
    pub fn account(&self) -> &str {
        match self {
            Record::Decision(d) => &d.account_id,
            Record::Unlock(u) => &u.account_id,
            Record::Disposition(r) => &r.account_id,
            Record::Confirmation(c) => &c.account_id,
        }
    }
}

impl Published {
    pub fn push(&mut self, record: Record) {
        match record {
            Record::Decision(d) => self.decisions.push(d),
            Record::Unlock(u) => self.unlocks.push(u),
            Record::Disposition(r) => self.dispositions.push(r),
            Record::Confirmation(c) => self.confirmations.push(c),
        }
    }
}

/// weir's topics the cases are folded from, and what each holds; the input
/// only `with_confirmations`.
pub fn case_topics(kafka: &KafkaConfig, with_confirmations: bool) -> Vec<(&str, Source)> {
    let t = &kafka.topics;
    let mut topics = vec![
        (t.transaction_verified.as_str(), Source::Decisions),
        (t.fraud_suspected.as_str(), Source::Decisions),
        (t.account_locked.as_str(), Source::Decisions),
        (t.dispositions.as_str(), Source::Dispositions),
    ];
    if with_confirmations {
        topics.push((t.input.as_str(), Source::Input));
    }
    topics
}

fn read_topics(kafka: &KafkaConfig, with_confirmations: bool) -> Result<Published, ReadError> {
    let mut published = Published::default();
    for (topic, source) in case_topics(kafka, with_confirmations) {
        let records = crate::kafka::read_range(kafka, topic, Bound::Edge, Bound::Edge)
            .map_err(|e| failed(format!("cannot read `{topic}`"))(e.into()))?;
        for (n, payload) in records.iter().enumerate() {
            let record =
                Record::of(source, payload).map_err(|e| failed(format!("`{topic}`, record {}", n + 1))(e.into()))?;
            if let Some(record) = record {
                published.push(record);
            }
        }
    }
    Ok(published)
}

/// The customers' confirmations among input records: records that are not
/// confirmations (transactions, unlocks, malformed ones) are passed over.
fn confirmations<'a>(records: impl Iterator<Item = &'a [u8]>) -> Vec<CustomerConfirmation> {
    records
        .filter_map(|r| match Record::of(Source::Input, r) {
            Ok(Some(Record::Confirmation(c))) => Some(c),
            _ => None,
        })
        .collect()
}

/// The analysts' unlocks in an embedded input file (on Kafka weir writes
/// the accepted ones on to the account-locked topic).
fn unlocks_in(lines: &[u8]) -> Vec<AccountUnlocked> {
    lines
        .split(|b| *b == b'\n')
        .filter(|r| r.windows(17).any(|w| w == b"\"AccountUnlocked\""))
        .filter_map(|r| match parse_input(r, MAX_EVENT_BYTES) {
            Ok(InputEvent::AccountUnlocked(u)) => Some(u),
            _ => None,
        })
        .collect()
}
