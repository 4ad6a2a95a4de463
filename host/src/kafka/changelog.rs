//! The changelog topic's records: how an account's parts (see
//! [`crate::state`]) are keyed on it, and how a partition's accounts are put
//! back together from it.
//!
//! A part's key is a NUL byte, the account id's length (`u16`, big-endian),
//! the account id and the part name; the value is the part's record, and a
//! tombstone (no value) deletes the part. Compaction keeps the newest record
//! of each key, so a partition's changelog holds at most one record per
//! part. Earlier versions wrote each account whole under its plain id; such
//! a record still reads, and is deleted (a tombstone under the plain id)
//! when the account is next written, as parts.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use crate::state::{AccountState, Part, PartError};

/// An account on the changelog that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// One of its parts.
    #[error("account {account}: {error}")]
    Part { account: String, error: PartError },
    /// Its whole record, as earlier versions wrote it.
    #[error("account {account}: {error}")]
    Whole { account: String, error: postcard::Error },
}

/// The changelog key of part `part` of account `account`.
pub fn part_key(account: &str, part: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + account.len() + part.len());
    key.push(0);
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account.as_bytes());
    key.extend_from_slice(part.as_bytes());
    key
}

/// The changelog key of a task's own state (the entity hop's positions),
/// named `name`.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(2);
    key.extend_from_slice(name.as_bytes());
    key
}

/// What a changelog key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// One part of an account.
    Part { account: &'a str, part: &'a str },
    /// A task's own state ([`meta_key`]).
    Meta(&'a str),
    /// An account written whole, by an earlier version.
    Whole(&'a str),
}

/// Reads a changelog key; `None` for one that is not UTF-8 where it must be.
pub fn parse_key(key: &[u8]) -> Option<Key<'_>> {
    match key {
        [0, a, b, rest @ ..] => {
            let len = u16::from_be_bytes([*a, *b]) as usize;
            let (account, part) = (rest.get(..len)?, rest.get(len..)?);
            Some(Key::Part { account: std::str::from_utf8(account).ok()?, part: std::str::from_utf8(part).ok()? })
        }
        [2, name @ ..] => std::str::from_utf8(name).ok().map(Key::Meta),
        _ => std::str::from_utf8(key).ok().map(Key::Whole),
    }
}

/// The records of one account to write: its changed parts, and a tombstone
/// for its whole record if it was read from one.
pub fn records(account: &str, state: &mut AccountState) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let whole = state.read_whole();
    let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        state.take_changes().into_iter().map(|Part { name, value }| (part_key(account, &name), value)).collect();
    if whole {
        out.push((account.as_bytes().to_vec(), None));
    }
    out
}

/// A partition's accounts and its task's own state, by name.
pub type Restored = (HashMap<String, AccountState>, BTreeMap<String, Vec<u8>>);

/// A partition's accounts, read back record by record in offset order.
#[derive(Default)]
pub struct Restore {
    accounts: HashMap<String, Restoring>,
    meta: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct Restoring {
    whole: Option<Vec<u8>>,
    parts: BTreeMap<String, Vec<u8>>,
}

impl Restore {
    /// Applies one record (`None`: a tombstone). Keys that are not weir's are skipped.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        match parse_key(key) {
            Some(Key::Part { account, part }) => {
                let entry = self.accounts.entry(account.to_owned()).or_default();
                match value {
                    Some(v) => entry.parts.insert(part.to_owned(), v.to_vec()),
                    None => entry.parts.remove(part),
                };
            }
            Some(Key::Whole(account)) => {
                let entry = self.accounts.entry(account.to_owned()).or_default();
                entry.whole = value.map(<[u8]>::to_vec);
            }
            Some(Key::Meta(name)) => {
                match value {
                    Some(v) => self.meta.insert(name.to_owned(), v.to_vec()),
                    None => self.meta.remove(name),
                };
            }
            None => {}
        }
    }

    /// The accounts: from their parts, or from a whole record where an
    /// account has no parts yet.
    pub fn finish(self) -> Result<HashMap<String, AccountState>, RestoreError> {
        self.finish_with_meta().map(|(accounts, _)| accounts)
    }

    /// The accounts ([`Restore::finish`]) and the task's own state, by name.
    pub fn finish_with_meta(self) -> Result<Restored, RestoreError> {
        let mut out = HashMap::with_capacity(self.accounts.len());
        for (id, r) in self.accounts {
            let state = if !r.parts.is_empty() {
                AccountState::from_parts(r.parts.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .map_err(|error| RestoreError::Part { account: id.clone(), error })?
            } else if let Some(whole) = &r.whole {
                AccountState::decode(whole).map_err(|error| RestoreError::Whole { account: id.clone(), error })?
            } else {
                continue;
            };
            out.insert(id, state);
        }
        Ok((out, self.meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_plain_ids_are_whole_records() {
        let key = part_key("acct-1", "r/velocity");
        assert_eq!(parse_key(&key), Some(Key::Part { account: "acct-1", part: "r/velocity" }));
        assert_eq!(parse_key(b"acct-1"), Some(Key::Whole("acct-1")));
        assert_eq!(parse_key(&key[..4]), None, "a truncated key");
        assert_eq!(parse_key(&meta_key("router")), Some(Key::Meta("router")));
    }

    #[test]
    fn an_account_written_whole_then_as_parts_restores_from_the_parts() {
        let mut old = AccountState::default();
        old.rules.entry("velocity".into()).or_default().set("k", "old");
        let whole = {
            // What an earlier version wrote: the whole account, postcard.
            let mut s = AccountState::default();
            s.rules.entry("velocity".into()).or_default().set("k", "old");
            crate::state::whole_record(&s)
        };
        let mut read = AccountState::decode(&whole).unwrap();
        read.rules.get_mut("velocity").unwrap().set("k", "new");
        read.rule_changed(&"velocity".into());
        let mut restore = Restore::default();
        restore.apply(b"acct-1", Some(&whole));
        for (key, value) in records("acct-1", &mut read) {
            restore.apply(&key, value.as_deref());
        }
        let accounts = restore.finish().unwrap();
        assert_eq!(accounts["acct-1"].rules["velocity"].get("k"), Some("new"));
        assert_eq!(accounts["acct-1"], read);

        let mut restore = Restore::default();
        restore.apply(b"acct-2", Some(&whole));
        assert_eq!(restore.finish().unwrap()["acct-2"], old, "a whole record alone still reads");
    }
}
