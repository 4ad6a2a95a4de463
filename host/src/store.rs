//! The embedded state store: a redb database file.
//!
//! It holds, per account, the [`AccountState`]; per transaction id, the fact
//! that it was decided (so a rerun of the same input decides nothing twice);
//! and the committed lengths of the embedded sink files. All three change in
//! one redb write transaction per batch: the embedded counterpart of a Kafka
//! transaction that commits decisions, state and offsets together.

use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition};

use crate::state::AccountState;

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const DECIDED: TableDefinition<&str, ()> = TableDefinition::new("decided");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

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
    pub accounts: Vec<(&'a str, &'a AccountState)>,
    pub decided: Vec<&'a str>,
    pub offsets: SinkOffsets,
}

impl StateStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError { path: path.to_owned(), message: e.to_string() };
        let db = Database::create(path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(ACCOUNTS).map_err(|e| err(&e))?;
        txn.open_table(DECIDED).map_err(|e| err(&e))?;
        txn.open_table(META).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(StateStore { db, path: path.to_owned() })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), message: e.to_string() }
    }

    /// A consistent view for reading during a batch.
    pub fn reader(&self) -> Result<StoreReader<'_>, StoreError> {
        Ok(StoreReader { txn: self.db.begin_read().map_err(|e| self.err(e))?, store: self })
    }

    /// Commits a batch atomically and durably.
    pub fn commit(&self, batch: &BatchCommit<'_>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
            for (id, state) in &batch.accounts {
                accounts.insert(*id, state.encode().as_slice()).map_err(|e| self.err(e))?;
            }
            let mut decided = txn.open_table(DECIDED).map_err(|e| self.err(e))?;
            for id in &batch.decided {
                decided.insert(*id, ()).map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("sink.decisions", batch.offsets.decisions).map_err(|e| self.err(e))?;
            meta.insert("sink.dead_letters", batch.offsets.dead_letters).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

pub struct StoreReader<'a> {
    txn: ReadTransaction,
    store: &'a StateStore,
}

impl StoreReader<'_> {
    pub fn account(&self, id: &str) -> Result<Option<AccountState>, StoreError> {
        let table = self.txn.open_table(ACCOUNTS).map_err(|e| self.store.err(e))?;
        let Some(bytes) = table.get(id).map_err(|e| self.store.err(e))? else { return Ok(None) };
        AccountState::decode(bytes.value())
            .map(Some)
            .map_err(|e| self.store.err(format!("account {id} is unreadable: {e}")))
    }

    pub fn is_decided(&self, transaction_id: &str) -> Result<bool, StoreError> {
        let table = self.txn.open_table(DECIDED).map_err(|e| self.store.err(e))?;
        Ok(table.get(transaction_id).map_err(|e| self.store.err(e))?.is_some())
    }

    pub fn offsets(&self) -> Result<SinkOffsets, StoreError> {
        let table = self.txn.open_table(META).map_err(|e| self.store.err(e))?;
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(table.get(k).map_err(|e| self.store.err(e))?.map(|v| v.value()).unwrap_or(0))
        };
        Ok(SinkOffsets { decisions: get("sink.decisions")?, dead_letters: get("sink.dead_letters")? })
    }
}
