//! Runtime lists: block and allow lists (merchant ids, device fingerprints,
//! countries, accounts, counterparties, ...) that analysts change without a
//! deploy, and that rules read through the SDK (`Context::in_list`).
//!
//! [`ListSet`] is one snapshot of every list: the entries, each with an
//! optional expiry in event time, and each list's **version**, a hash of its
//! content (the sum of its entries' hashes, so it is kept up to date in O(1)
//! per change and does not depend on the order the changes came in, nor on
//! where they came from: a topic, a file or an export of either). A list
//! with no entries has no version and is not in the set. A rule's result
//! records the versions of the lists it read, so replaying an input with
//! the same list versions gives the same decisions.
//!
//! [`LiveLists`] is what the pipelines share: the snapshot in effect and a
//! generation number, published by whoever reads the changes — on Kafka
//! the compacted lists topic, read in full by every instance
//! (`crate::kafka`), embedded a JSON-lines file, followed as it grows
//! ([`follow_file`]). The pipelines adopt the newest snapshot between two
//! batches, as they adopt a new rule set, so a batch runs on one version of
//! every list.
//!
//! Bounds ([`ListLimits`]): lists, entries per list, entries in all and
//! bytes in all. A change over a bound is refused — logged, counted and
//! shown in the status — and the lists stay as they were; so is a change
//! that does not parse. Nothing a writer of the topic or the file does can
//! make an instance hold more.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::{ListAction, ListChanged, SharedStr, parse_list_change};

/// How many refusals the status keeps, and how many are logged one by one
/// before only every thousandth is.
const KEPT_REFUSALS: usize = 20;
const LOGGED_REFUSALS: u64 = 100;
/// The longest line of a lists file that is read.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How often a followed lists file is checked for new lines.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// `[lists]` in weir.toml: where the embedded pipeline reads the lists
/// from (on Kafka they come from `kafka.topics.lists`), and their bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    /// Embedded: a JSON-lines file of list changes (`weir list add
    /// --append FILE` writes them), followed while weir runs. Unset: no
    /// lists.
    pub file: Option<PathBuf>,
    pub max_lists: usize,
    pub max_entries_per_list: usize,
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for ListsConfig {
    fn default() -> Self {
        let l = ListLimits::default();
        ListsConfig {
            file: None,
            max_lists: l.max_lists,
            max_entries_per_list: l.max_entries_per_list,
            max_entries: l.max_entries,
            max_bytes: l.max_bytes,
        }
    }
}

impl ListsConfig {
    pub fn limits(&self) -> ListLimits {
        ListLimits {
            max_lists: self.max_lists,
            max_entries_per_list: self.max_entries_per_list,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
        }
    }
}

/// How much the lists may hold; a change that would go over is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLimits {
    /// Lists in all.
    pub max_lists: usize,
    /// Entries on one list.
    pub max_entries_per_list: usize,
    /// Entries on all lists together.
    pub max_entries: usize,
    /// Bytes of values and analysts' names on all lists together (each
    /// entry also counts 64 bytes of bookkeeping).
    pub max_bytes: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits { max_lists: 1_000, max_entries_per_list: 100_000, max_entries: 1_000_000, max_bytes: 256 << 20 }
    }
}

/// Bookkeeping bytes counted per entry on top of its text.
const ENTRY_OVERHEAD: usize = 64;

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// From this event time on (ms since the epoch) the entry no longer matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Who added it, and when (ms since the epoch).
    pub analyst: String,
    pub added_at_ms: i64,
}

impl Entry {
    fn bytes(value: &str, analyst: &str) -> usize {
        value.len() + analyst.len() + ENTRY_OVERHEAD
    }
}

/// One list: its entries and its version.
#[derive(Debug, Clone, Default)]
pub struct List {
    entries: HashMap<String, Entry>,
    version: u64,
}

impl List {
    /// The list's version: a hash of its content, never 0 for a list with entries.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(v, e)| (v.as_str(), e))
    }
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct Refusal {
    /// The change, or where the unreadable one was.
    pub what: String,
    pub reason: String,
}

/// Every list, as of one point in the change log.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    lists: BTreeMap<SharedStr, Arc<List>>,
    entries: usize,
    bytes: usize,
}

/// A list's version as decisions and the status show it: 16 hex digits.
pub fn version_text(version: u64) -> String {
    String::from_utf8_lossy(&crate::events::hex_u64::digits(version)).into_owned()
}

/// The hash an entry adds to its list's version: of the list, the value and the expiry (who
/// added it, and when, do not change what the list matches).
fn entry_hash(list: &str, value: &str, expires_at_ms: Option<i64>) -> u64 {
    let mut h = Sha256::new();
    h.update(list.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.update([0]);
    match expires_at_ms {
        Some(ms) => h.update(ms.to_be_bytes()),
        None => h.update(b"never"),
    }
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("a sha256 digest has 8 bytes"))
}

impl ListSet {
    /// The list `name`, if it has entries.
    pub fn get(&self, name: &str) -> Option<&List> {
        self.lists.get(name).map(|l| &**l)
    }

    /// Whether `value` is on `list` at event time `now_ms` (an entry whose
    /// expiry is at or before `now_ms` does not match), and the list's
    /// version; `None` if the list has no entries.
    pub fn contains(&self, list: &str, value: &str, now_ms: i64) -> Option<(bool, u64)> {
        self.lookup(list, value, now_ms).map(|(on, _, version)| (on, version))
    }

    /// [`ListSet::contains`] with the list's shared name.
    pub fn lookup(&self, list: &str, value: &str, now_ms: i64) -> Option<(bool, &SharedStr, u64)> {
        let (name, list) = self.lists.get_key_value(list)?;
        let on = list.entries.get(value).is_some_and(|e| e.expires_at_ms.is_none_or(|at| now_ms < at));
        Some((on, name, list.version))
    }

    /// The lists with entries, by name.
    pub fn lists(&self) -> impl Iterator<Item = (&str, &List)> {
        self.lists.iter().map(|(n, l)| (n.as_str(), &**l))
    }

    /// Entries on all lists.
    pub fn total_entries(&self) -> usize {
        self.entries
    }

    /// The lists holding `entries` (list, value), never expiring, within
    /// the default limits: for self-test cases and tests. A bad name or
    /// value is refused as a change would be.
    pub fn of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ListSet, Refusal> {
        let mut set = ListSet::default();
        let limits = ListLimits::default();
        for (list, value) in entries {
            let at = time::OffsetDateTime::UNIX_EPOCH;
            let change = ListChanged::new(list, value, ListAction::Add, None, "weir", None, at)
                .map_err(|e| Refusal { what: format!("`{value}` on list `{list}`"), reason: e.to_string() })?;
            set.apply(&change, &limits)?;
        }
        Ok(set)
    }

    /// Applies one change, or refuses it (the set is then unchanged).
    pub fn apply(&mut self, change: &ListChanged, limits: &ListLimits) -> Result<(), Refusal> {
        let refuse = |reason: String| Refusal {
            what: format!("{} `{}` on list `{}`", change.action.as_str(), change.value, change.list),
            reason,
        };
        match change.action {
            ListAction::Remove => {
                let Some(list) = self.lists.get_mut(change.list.as_str()) else { return Ok(()) };
                let list = Arc::make_mut(list);
                if let Some(old) = list.entries.remove(&change.value) {
                    list.version =
                        list.version.wrapping_sub(entry_hash(&change.list, &change.value, old.expires_at_ms));
                    self.entries -= 1;
                    self.bytes -= Entry::bytes(&change.value, &old.analyst);
                }
                if list.entries.is_empty() {
                    self.lists.remove(change.list.as_str());
                }
                Ok(())
            }
            ListAction::Add => {
                let expires_at_ms = change.expires_at_ms();
                let entry =
                    Entry { expires_at_ms, analyst: change.analyst.clone(), added_at_ms: change.occurred_at_ms() };
                let bytes = Entry::bytes(&change.value, &change.analyst);
                let existing = self.lists.get(change.list.as_str());
                let old = existing.and_then(|l| l.entries.get(&change.value));
                let old_bytes = old.map_or(0, |o| Entry::bytes(&change.value, &o.analyst));
                if existing.is_none() && self.lists.len() >= limits.max_lists {
                    return Err(refuse(format!(
                        "there are already {} lists, the limit (lists.max_lists)",
                        limits.max_lists
                    )));
                }
                if old.is_none() {
                    let on_list = existing.map_or(0, |l| l.len());
                    if on_list >= limits.max_entries_per_list {
                        return Err(refuse(format!(
                            "the list has {on_list} entries, the limit (lists.max_entries_per_list)"
                        )));
                    }
                    if self.entries >= limits.max_entries {
                        return Err(refuse(format!(
                            "the lists have {} entries in all, the limit (lists.max_entries)",
                            self.entries
                        )));
                    }
                }
                if self.bytes - old_bytes + bytes > limits.max_bytes {
                    return Err(refuse(format!(
                        "the lists would hold more than {} bytes (lists.max_bytes)",
                        limits.max_bytes
                    )));
                }
                let list = Arc::make_mut(self.lists.entry(change.list.as_str().into()).or_default());
                let added = entry_hash(&change.list, &change.value, expires_at_ms);
                match list.entries.insert(change.value.clone(), entry) {
                    Some(old) => {
                        list.version =
                            list.version.wrapping_sub(entry_hash(&change.list, &change.value, old.expires_at_ms));
                    }
                    None => self.entries += 1,
                }
                list.version = list.version.wrapping_add(added);
                self.bytes = self.bytes - old_bytes + bytes;
                Ok(())
            }
        }
    }
}

/// What the status shows of the lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListsStatus {
    /// Where the changes come from: `kafka:<topic>` or `file:<path>`.
    pub source: String,
    /// Whether the source was read to its end once (an instance decides nothing before).
    pub loaded: bool,
    /// Changes applied and refused since the start.
    pub applied: u64,
    pub refused: u64,
    /// The last refusals, oldest first.
    pub refusals: Vec<Refusal>,
    /// Each list with entries: its entries and version.
    pub lists: Vec<ListSummary>,
    /// The snapshot's generation: one more per published change.
    pub generation: u64,
    /// The last changes applied, oldest first: who changed what, when (for
    /// the console; not in `/status`, which does not show the values).
    #[serde(skip)]
    pub recent: std::collections::VecDeque<AppliedChange>,
}

/// How many applied changes the status keeps.
pub const KEPT_CHANGES: usize = 100;

/// One change applied to the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    pub list: String,
    pub value: String,
    pub action: crate::events::ListAction,
    pub analyst: String,
    /// When the analyst made it (ms since the epoch).
    pub at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// One list in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    pub name: String,
    pub entries: usize,
    pub version: String,
}

struct Working {
    set: ListSet,
    status: ListsStatus,
}

/// The lists the pipelines share: the snapshot in effect, replaced as
/// changes are read, and a generation number the pipelines compare with
/// theirs between batches.
pub struct LiveLists {
    limits: ListLimits,
    current: Mutex<Arc<ListSet>>,
    generation: AtomicU64,
    working: Mutex<Working>,
}

impl std::fmt::Debug for LiveLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLists").field("generation", &self.generation()).finish()
    }
}

impl LiveLists {
    /// Empty lists, fed from `source` (for the status).
    pub fn new(source: impl Into<String>, limits: ListLimits) -> Arc<LiveLists> {
        let status = ListsStatus { source: source.into(), ..ListsStatus::default() };
        Arc::new(LiveLists {
            limits,
            current: Mutex::new(Arc::new(ListSet::default())),
            generation: AtomicU64::new(0),
            working: Mutex::new(Working { set: ListSet::default(), status }),
        })
    }

    fn working(&self) -> MutexGuard<'_, Working> {
        self.working.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot in effect.
    pub fn current(&self) -> Arc<ListSet> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The generation of the snapshot in effect (0: nothing published yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Between two batches: the newest snapshot if it is newer than
    /// `*running` (which then becomes its generation).
    pub fn adopt(&self, running: &mut u64) -> Option<Arc<ListSet>> {
        let now = self.generation();
        if now == *running {
            return None;
        }
        *running = now;
        Some(self.current())
    }

    /// Applies one change read from the source (or the reason it could not
    /// be read, and where); not in effect before [`LiveLists::publish`].
    pub fn apply(&self, change: Result<ListChanged, Refusal>) {
        let mut w = self.working();
        let Working { set, status } = &mut *w;
        match change.and_then(|c| set.apply(&c, &self.limits).map(|()| c)) {
            Ok(c) => {
                status.applied += 1;
                if status.recent.len() == KEPT_CHANGES {
                    status.recent.pop_front();
                }
                status.recent.push_back(AppliedChange {
                    at_ms: c.occurred_at_ms(),
                    expires_at_ms: c.expires_at_ms(),
                    list: c.list,
                    value: c.value,
                    action: c.action,
                    analyst: c.analyst,
                });
            }
            Err(refusal) => {
                status.refused += 1;
                if status.refused <= LOGGED_REFUSALS || status.refused.is_multiple_of(1000) {
                    tracing::warn!(source = %status.source, refused = status.refused, "list change refused: {refusal}");
                }
                if status.refusals.len() == KEPT_REFUSALS {
                    status.refusals.remove(0);
                }
                status.refusals.push(refusal);
            }
        }
    }

    /// Puts the changes applied so far in effect; `loaded` once the source
    /// was read to its end.
    pub fn publish(&self, loaded: bool) {
        let mut w = self.working();
        let fresh = Arc::new(w.set.clone());
        let was_loaded = w.status.loaded;
        w.status.loaded |= loaded;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        w.status.generation = generation;
        if loaded && !was_loaded {
            tracing::info!(
                source = %w.status.source,
                lists = w.set.lists.len(),
                entries = w.set.entries,
                refused = w.status.refused,
                "lists loaded"
            );
        }
    }

    /// Forgets every list (a followed file was replaced): the next changes
    /// start from nothing.
    fn reset(&self) {
        self.working().set = ListSet::default();
    }

    /// What the status shows.
    pub fn status(&self) -> ListsStatus {
        let w = self.working();
        let current = self.current();
        let mut status = w.status.clone();
        status.lists = current
            .lists()
            .map(|(name, l)| ListSummary { name: name.to_owned(), entries: l.len(), version: version_text(l.version) })
            .collect();
        status
    }
}

/// A time in ms since the epoch as RFC 3339 (the ms themselves if out of range).
pub fn time_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// The change a line or a record holds, or why it is refused (`at` says where it was).
pub fn read_change(payload: &[u8], at: impl FnOnce() -> String) -> Result<ListChanged, Refusal> {
    parse_list_change(payload).map_err(|e| Refusal { what: at(), reason: e.to_string() })
}

/// Reads a lists file (JSON lines of [`ListChanged`]) into `lists` and
/// publishes it; returns how many bytes were read (complete lines only).
fn read_from(lists: &LiveLists, path: &Path, from: u64) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut line_start = from;
    for line in bytes[..complete].split(|b| *b == b'\n') {
        let at = line_start;
        line_start += line.len() as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let change = if line.len() > MAX_LINE_BYTES {
            Err(Refusal { what: format!("{} at byte {at}", path.display()), reason: "the line is over 64 KiB".into() })
        } else {
            read_change(line, || format!("{} at byte {at}", path.display()))
        };
        lists.apply(change);
    }
    Ok(from + complete as u64)
}

/// Loads the lists file `path` (JSON lines of [`ListChanged`], as `weir
/// list add --append` writes them) into new [`LiveLists`], and with
/// `follow` keeps reading the lines appended to it (every
/// [`FOLLOW_INTERVAL`], in a thread of its own; a file that shrinks was
/// replaced and is read again from the start). A missing file is no lists
/// yet.
pub fn follow_file(path: PathBuf, limits: ListLimits, follow: bool) -> std::io::Result<Arc<LiveLists>> {
    let lists = LiveLists::new(format!("file:{}", path.display()), limits);
    let mut read = match read_from(&lists, &path, 0) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    lists.publish(true);
    if follow {
        let live = lists.clone();
        std::thread::Builder::new().name("weir-lists".into()).spawn(move || {
            loop {
                std::thread::sleep(FOLLOW_INTERVAL);
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if len == read {
                    continue;
                }
                if len < read {
                    live.reset();
                    read = 0;
                }
                match read_from(&live, &path, read) {
                    Ok(n) if n != read => {
                        read = n;
                        live.publish(true);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(file = %path.display(), "cannot read the lists file: {e}"),
                }
            }
        })?;
    }
    Ok(lists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn add(list: &str, value: &str, expires_at_ms: Option<i64>) -> ListChanged {
        let expires = expires_at_ms.map(|ms| OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap());
        ListChanged::new(list, value, ListAction::Add, expires, "analyst-1", None, OffsetDateTime::UNIX_EPOCH).unwrap()
    }

    fn remove(list: &str, value: &str) -> ListChanged {
        ListChanged::new(list, value, ListAction::Remove, None, "analyst-2", None, OffsetDateTime::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn an_entry_matches_until_it_expires_in_event_time() {
        let mut set = ListSet::default();
        let limits = ListLimits::default();
        set.apply(&add("blocked-devices", "fp-1", Some(10_000)), &limits).unwrap();
        set.apply(&add("blocked-devices", "fp-2", None), &limits).unwrap();
        let version = set.get("blocked-devices").unwrap().version();
        assert_eq!(set.contains("blocked-devices", "fp-1", 9_999), Some((true, version)));
        assert_eq!(set.contains("blocked-devices", "fp-1", 10_000), Some((false, version)), "expired at its time");
        assert_eq!(set.contains("blocked-devices", "fp-2", i64::MAX), Some((true, version)));
        assert_eq!(set.contains("blocked-devices", "FP-2", 0), Some((false, version)), "exact match");
        assert_eq!(set.contains("other", "fp-2", 0), None, "a list without entries has no version");
    }

    #[test]
    fn the_version_is_the_content_whatever_the_order_of_the_changes() {
        let limits = ListLimits::default();
        let mut a = ListSet::default();
        for c in [add("l", "x", None), add("l", "y", Some(5_000)), add("l", "z", None), remove("l", "z")] {
            a.apply(&c, &limits).unwrap();
        }
        let mut b = ListSet::default();
        for c in [add("l", "y", Some(5_000)), add("l", "x", None)] {
            b.apply(&c, &limits).unwrap();
        }
        let (va, vb) = (a.get("l").unwrap().version(), b.get("l").unwrap().version());
        assert_eq!(va, vb);
        assert_ne!(va, 0);
        b.apply(&add("l", "y", None), &limits).unwrap();
        assert_ne!(b.get("l").unwrap().version(), va, "a changed expiry is another version");
        assert_eq!(b.total_entries(), 2, "a re-added entry is replaced, not counted twice");
        b.apply(&remove("l", "x"), &limits).unwrap();
        b.apply(&remove("l", "y"), &limits).unwrap();
        assert!(b.get("l").is_none(), "an emptied list is gone");
        assert_eq!(b.total_entries(), 0);
        b.apply(&remove("l", "never-there"), &limits).unwrap();
    }

    #[test]
    fn changes_over_the_bounds_are_refused_and_change_nothing() {
        let limits = ListLimits { max_lists: 2, max_entries_per_list: 3, max_entries: 5, max_bytes: 1 << 20 };
        let mut set = ListSet::default();
        for v in ["a", "b", "c"] {
            set.apply(&add("one", v, None), &limits).unwrap();
        }
        let before = set.get("one").unwrap().version();
        let err = set.apply(&add("one", "d", None), &limits).unwrap_err();
        assert!(err.reason.contains("lists.max_entries_per_list"), "{err}");
        assert!(err.to_string().contains("`d` on list `one`"), "{err}");
        assert_eq!(set.get("one").unwrap().version(), before);
        set.apply(&add("one", "a", Some(1_000)), &limits).expect("replacing an entry adds none");
        set.apply(&add("two", "a", None), &limits).unwrap();
        set.apply(&add("two", "b", None), &limits).unwrap();
        let err = set.apply(&add("two", "c", None), &limits).unwrap_err();
        assert!(err.reason.contains("lists.max_entries"), "{err}");
        let err = set.apply(&add("three", "a", None), &limits).unwrap_err();
        assert!(err.reason.contains("lists.max_lists"), "{err}");
        let tight = ListLimits { max_bytes: 200, ..limits };
        let mut small = ListSet::default();
        small.apply(&add("one", "a", None), &tight).unwrap();
        let err = small.apply(&add("one", &"v".repeat(200), None), &tight).unwrap_err();
        assert!(err.reason.contains("lists.max_bytes"), "{err}");
    }

    #[test]
    fn a_followed_file_is_read_as_it_grows_and_bad_lines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.jsonl");
        let line = |c: &ListChanged| format!("{}\n", serde_json::to_string(c).unwrap());
        std::fs::write(&path, format!("{}not json\n\n", line(&add("l", "x", None)))).unwrap();
        let lists = follow_file(path.clone(), ListLimits::default(), true).unwrap();
        let status = lists.status();
        assert!(status.loaded);
        assert_eq!((status.applied, status.refused), (1, 1));
        assert!(status.refusals[0].what.contains("at byte"), "{:?}", status.refusals);
        let mut running = 0;
        assert!(lists.adopt(&mut running).unwrap().contains("l", "x", 0).unwrap().0);
        assert!(lists.adopt(&mut running).is_none(), "nothing newer");
        // A line written in two pieces is read once it is whole.
        let next = line(&add("l", "y", None));
        let (head, tail) = next.split_at(10);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(head.as_bytes()).unwrap();
        std::thread::sleep(FOLLOW_INTERVAL * 3);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(tail.as_bytes()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lists.current().contains("l", "y", 0) != Some((true, lists.current().get("l").unwrap().version())) {
            assert!(std::time::Instant::now() < deadline, "the appended line was not read: {:?}", lists.status());
            std::thread::sleep(FOLLOW_INTERVAL);
        }
        assert_eq!(lists.status().refused, 1, "the half line was not refused");
    }

    use std::io::Write as _;
}
