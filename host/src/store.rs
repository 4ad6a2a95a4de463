//! The embedded state store: a redb database file.
//!
//! It holds, per account, the parts of its [`AccountState`] (see
//! [`crate::state`]: a batch writes the parts its transactions changed, not
//! whole accounts); per transaction id, the fact that it was decided (so a
//! rerun of the same input decides nothing twice); and the committed lengths
//! of the embedded sink files; and where the entity order stands
//! ([`crate::entity_order`]): the last transaction applied to its entities,
//! and the results of those applied whose decisions wait for a later batch.
//! All of it changes in one redb write
//! transaction per batch: the embedded counterpart of a Kafka transaction
//! that commits decisions, state and offsets together. Accounts written as
//! one whole record by earlier versions are still read, and replaced by
//! their parts when next written.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use crate::events::RuleResult;
use crate::state::{AccountState, Part};

/// Whole-account records of earlier versions, read and replaced.
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Account parts: (account id, part name) → record.
const PARTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("account_parts");
const DECIDED: TableDefinition<&str, ()> = TableDefinition::new("decided");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Transactions applied to their entities, not decided yet: id → their
/// entity rules' results (JSON).
const ENTITY_HELD: TableDefinition<&str, &[u8]> = TableDefinition::new("entity_held");
/// `released` → (order time, id) of the last transaction applied (JSON).
const ENTITY_ORDER: TableDefinition<&str, &[u8]> = TableDefinition::new("entity_order");

/// A state store failure, naming the database file.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

/// Committed lengths of the embedded sink files, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkOffsets {
    pub decisions: u64,
    pub dead_letters: u64,
}

pub struct StateStore {
    db: Database,
    path: PathBuf,
}

/// What one batch commits.
#[derive(Default)]
pub struct BatchCommit<'a> {
    /// The changed parts of each account the batch touched.
    pub accounts: Vec<(&'a str, &'a [Part])>,
    pub decided: Vec<&'a str>,
    pub offsets: SinkOffsets,
    /// Transactions applied to their entities whose decisions wait: kept
    /// until a later batch names them in `entity_unheld`.
    pub entity_held: &'a [(String, Vec<RuleResult>)],
    pub entity_unheld: &'a [String],
    /// The last transaction applied to its entities, if it moved.
    pub entity_released: Option<&'a (i64, String)>,
}

/// Where the entity order stood at the last commit.
#[derive(Debug, Default)]
pub struct EntityOrderState {
    pub released: Option<(i64, String)>,
    pub held: foldhash::HashMap<String, Vec<RuleResult>>,
}

impl StateStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError { path: path.to_owned(), message: e.to_string() };
        let db = Database::create(path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(ACCOUNTS).map_err(|e| err(&e))?;
        txn.open_table(PARTS).map_err(|e| err(&e))?;
        txn.open_table(DECIDED).map_err(|e| err(&e))?;
        txn.open_table(META).map_err(|e| err(&e))?;
        txn.open_table(ENTITY_HELD).map_err(|e| err(&e))?;
        txn.open_table(ENTITY_ORDER).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(StateStore { db, path: path.to_owned() })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), message: e.to_string() }
    }

    /// A consistent view for reading during a batch.
    pub fn reader(&self) -> Result<StoreReader<'_>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let decided = txn.open_table(DECIDED).map_err(|e| self.err(e))?;
        let parts = txn.open_table(PARTS).map_err(|e| self.err(e))?;
        Ok(StoreReader { txn, decided, parts, store: self })
    }

    /// Commits a batch atomically and durably.
    pub fn commit(&self, batch: &BatchCommit<'_>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut whole = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            let migrating = !whole.is_empty().map_err(|e| self.err(e))?;
            let mut parts = txn.open_table(PARTS).map_err(|e| self.err(e))?;
            for (id, changed) in &batch.accounts {
                for part in changed.iter() {
                    match &part.value {
                        Some(bytes) => parts.insert((*id, part.name.as_str()), bytes.as_slice()),
                        None => parts.remove((*id, part.name.as_str())),
                    }
                    .map_err(|e| self.err(e))?;
                }
                // An account read from a whole record was written out whole,
                // as parts, the first time it changed: the record goes.
                if migrating {
                    whole.remove(*id).map_err(|e| self.err(e))?;
                }
            }
            let mut decided = txn.open_table(DECIDED).map_err(|e| self.err(e))?;
            for id in &batch.decided {
                decided.insert(*id, ()).map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("sink.decisions", batch.offsets.decisions).map_err(|e| self.err(e))?;
            meta.insert("sink.dead_letters", batch.offsets.dead_letters).map_err(|e| self.err(e))?;
            if !batch.entity_held.is_empty() || !batch.entity_unheld.is_empty() {
                let mut held = txn.open_table(ENTITY_HELD).map_err(|e| self.err(e))?;
                for (id, results) in batch.entity_held {
                    let json = serde_json::to_vec(results).expect("rule results serialize");
                    held.insert(id.as_str(), json.as_slice()).map_err(|e| self.err(e))?;
                }
                for id in batch.entity_unheld {
                    held.remove(id.as_str()).map_err(|e| self.err(e))?;
                }
            }
            if let Some(released) = batch.entity_released {
                let json = serde_json::to_vec(released).expect("an order serializes");
                let mut order = txn.open_table(ENTITY_ORDER).map_err(|e| self.err(e))?;
                order.insert("released", json.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

pub struct StoreReader<'a> {
    txn: ReadTransaction,
    /// Opened once per view: they are read for every record.
    decided: ReadOnlyTable<&'static str, ()>,
    parts: ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    store: &'a StateStore,
}

impl StoreReader<'_> {
    pub fn account(&self, id: &str) -> Result<Option<AccountState>, StoreError> {
        let unreadable = |e: &dyn std::fmt::Display| self.store.err(format!("account {id} is unreadable: {e}"));
        let mut records = Vec::new();
        for entry in self.parts.range((id, "")..).map_err(|e| self.store.err(e))? {
            let (key, value) = entry.map_err(|e| self.store.err(e))?;
            let (account, part) = key.value();
            if account != id {
                break;
            }
            records.push((part.to_owned(), value.value().to_vec()));
        }
        if !records.is_empty() {
            let parts = records.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
            return AccountState::from_parts(parts).map(Some).map_err(|e| unreadable(&e));
        }
        let whole = self.txn.open_table(ACCOUNTS).map_err(|e| self.store.err(e))?;
        let Some(bytes) = whole.get(id).map_err(|e| self.store.err(e))? else { return Ok(None) };
        AccountState::decode(bytes.value()).map(Some).map_err(|e| unreadable(&e))
    }

    pub fn is_decided(&self, transaction_id: &str) -> Result<bool, StoreError> {
        Ok(self.decided.get(transaction_id).map_err(|e| self.store.err(e))?.is_some())
    }

    /// Where the entity order stood at the last commit.
    pub fn entity_order(&self) -> Result<EntityOrderState, StoreError> {
        let unreadable = |e: &dyn std::fmt::Display| self.store.err(format!("the entity order is unreadable: {e}"));
        let mut state = EntityOrderState::default();
        let order = self.txn.open_table(ENTITY_ORDER).map_err(|e| self.store.err(e))?;
        if let Some(json) = order.get("released").map_err(|e| self.store.err(e))? {
            state.released = Some(serde_json::from_slice(json.value()).map_err(|e| unreadable(&e))?);
        }
        let held = self.txn.open_table(ENTITY_HELD).map_err(|e| self.store.err(e))?;
        for entry in held.iter().map_err(|e| self.store.err(e))? {
            let (id, json) = entry.map_err(|e| self.store.err(e))?;
            let results = serde_json::from_slice(json.value()).map_err(|e| unreadable(&e))?;
            state.held.insert(id.value().to_owned(), results);
        }
        Ok(state)
    }

    pub fn offsets(&self) -> Result<SinkOffsets, StoreError> {
        let table = self.txn.open_table(META).map_err(|e| self.store.err(e))?;
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(table.get(k).map_err(|e| self.store.err(e))?.map(|v| v.value()).unwrap_or(0))
        };
        Ok(SinkOffsets { decisions: get("sink.decisions")?, dead_letters: get("sink.dead_letters")? })
    }
}
