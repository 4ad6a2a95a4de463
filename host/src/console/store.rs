//! The cases the console shows, kept up to date by a thread of their own
//! and handed to the pages as an immutable snapshot with its indexes, so a
//! page is a lookup whatever the number of cases.
//!
//! On Kafka the thread follows weir's topics (the decision topics, the
//! dispositions, the input for confirmations) with one consumer from their
//! beginning, keeps what it read account by account, and folds again only
//! the accounts that something new arrived for ([`crate::review::cases`]
//! is a function of one account's records). Embedded, it reads the files
//! again. It looks every `refresh`, and at once when an action asks (an
//! analyst's verdict shows on the next look).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::kafka::KafkaConfig;
use crate::kafka::follow::Follower;
use crate::review::{Case, CaseState, Files, Published, Record, Source, case_topics, read_published};

/// One fold of the cases, with the indexes the pages use.
#[derive(Default)]
pub struct Snapshot {
    /// Every case, by account then input order.
    pub cases: Vec<Arc<Case>>,
    by_id: HashMap<String, usize>,
    by_account: HashMap<String, Vec<usize>>,
    /// The open cases.
    pub waiting: usize,
    /// The rules that fired in some case, for the queue's filter.
    pub rules: BTreeSet<String>,
    /// When it was made, and how long reading and folding what was new took.
    pub folded_at: Option<time::OffsetDateTime>,
    pub took: Duration,
}

impl Snapshot {
    pub fn new(cases: Vec<Arc<Case>>, took: Duration) -> Snapshot {
        let mut by_id = HashMap::with_capacity(cases.len());
        let mut by_account: HashMap<String, Vec<usize>> = HashMap::new();
        let mut rules = BTreeSet::new();
        for (i, c) in cases.iter().enumerate() {
            by_id.insert(c.case_id.clone(), i);
            by_account.entry(c.account_id.clone()).or_default().push(i);
            for d in &c.decisions {
                rules.extend(d.rules.iter().map(|r| r.rule_id.to_string()));
            }
        }
        let waiting = cases.iter().filter(|c| c.state == CaseState::Open).count();
        Snapshot { cases, by_id, by_account, waiting, rules, folded_at: Some(time::OffsetDateTime::now_utc()), took }
    }

    pub fn case(&self, id: &str) -> Option<&Case> {
        self.by_id.get(id).map(|i| &*self.cases[*i])
    }

    /// The account's cases, oldest first.
    pub fn account_cases(&self, account: &str) -> impl Iterator<Item = &Case> {
        self.by_account.get(account).into_iter().flatten().map(|i| &*self.cases[*i])
    }
}

/// Where the cases come from, and what was read of it.
enum Feed {
    Files(Files),
    Kafka {
        config: Box<KafkaConfig>,
        /// Opened on the first look (and again after an error).
        follower: Option<Follower>,
        sources: Vec<Source>,
        /// What was read, account by account.
        accounts: HashMap<String, Published>,
        /// Each account's cases.
        cases: BTreeMap<String, Vec<Arc<Case>>>,
    },
}

/// How long one look reads before it shows what it has (a long backlog
/// is read over several looks, each showing more).
const LOOK_BUDGET: Duration = Duration::from_secs(5);
/// A poll that brings nothing for this long ends a look.
const QUIET: Duration = Duration::from_millis(150);

impl Feed {
    /// Reads what is new and folds it: the next snapshot's cases, `None`
    /// if nothing changed since the last look, or why not.
    fn look(&mut self) -> Result<Option<Vec<Arc<Case>>>, String> {
        match self {
            Feed::Files(files) => {
                let published = read_published(None, files, true).map_err(|e| e.to_string())?;
                Ok(Some(crate::review::cases(published).into_iter().map(Arc::new).collect()))
            }
            Feed::Kafka { config, follower, sources, accounts, cases } => {
                let first = follower.is_none() && cases.is_empty();
                if follower.is_none() {
                    let topics = case_topics(config, true);
                    *sources = topics.iter().map(|(_, s)| *s).collect();
                    let names: Vec<&str> = topics.iter().map(|(t, _)| *t).collect();
                    *follower = Some(Follower::new(config, &names, "console").map_err(|e| e.to_string())?);
                }
                let f = follower.as_mut().expect("opened above");
                let records = match f.poll(LOOK_BUDGET, QUIET) {
                    Ok(r) => r,
                    Err(e) => {
                        *follower = None;
                        return Err(e.to_string());
                    }
                };
                let mut dirty = BTreeSet::new();
                let mut refused = 0u64;
                for (topic, payload) in records {
                    match Record::of(sources[topic], &payload) {
                        Ok(Some(record)) => {
                            let account = record.account().to_owned();
                            accounts.entry(account.clone()).or_default().push(record);
                            dirty.insert(account);
                        }
                        Ok(None) => {}
                        Err(_) => refused += 1,
                    }
                }
                if refused > 0 {
                    tracing::warn!(
                        records = refused,
                        "records on weir's topics that are not what the topic holds were passed over"
                    );
                }
                if dirty.is_empty() && !first {
                    return Ok(None);
                }
                for account in dirty {
                    let folded = crate::review::cases(accounts[&account].clone());
                    cases.insert(account, folded.into_iter().map(Arc::new).collect());
                }
                Ok(Some(cases.values().flatten().cloned().collect()))
            }
        }
    }
}

/// The latest snapshot and the thread that makes the next.
pub struct CaseStore {
    current: RwLock<Arc<Snapshot>>,
    /// Why the last look failed, if it did (the previous snapshot stays).
    error: Mutex<Option<String>>,
    wake: Mutex<Sender<()>>,
}

impl CaseStore {
    /// Looks once (an error is kept and shown, not fatal), then starts the
    /// thread that looks again every `refresh` until `stop`.
    pub fn start(kafka: Option<KafkaConfig>, files: Files, refresh: Duration, stop: Arc<AtomicBool>) -> Arc<CaseStore> {
        let (tx, rx) = std::sync::mpsc::channel();
        let store = Arc::new(CaseStore { current: RwLock::default(), error: Mutex::new(None), wake: Mutex::new(tx) });
        let mut feed = match kafka {
            Some(config) => Feed::Kafka {
                config: Box::new(config),
                follower: None,
                sources: Vec::new(),
                accounts: HashMap::new(),
                cases: BTreeMap::new(),
            },
            None => Feed::Files(files),
        };
        store.look(&mut feed);
        let s = store.clone();
        std::thread::Builder::new()
            .name("weir-console-cases".into())
            .spawn(move || s.run(&mut feed, refresh, &rx, &stop))
            .expect("spawning the console's case thread");
        store
    }

    fn run(&self, feed: &mut Feed, refresh: Duration, wake: &Receiver<()>, stop: &AtomicBool) {
        let tick = Duration::from_millis(200).min(refresh);
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match wake.recv_timeout(tick) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) if last.elapsed() < refresh => continue,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while wake.try_recv().is_ok() {}
            self.look(feed);
            last = Instant::now();
        }
    }

    fn look(&self, feed: &mut Feed) {
        let started = Instant::now();
        match feed.look() {
            Ok(None) => *self.error.lock().expect("error") = None,
            Ok(Some(cases)) => {
                let snapshot = Arc::new(Snapshot::new(cases, started.elapsed()));
                tracing::debug!(cases = snapshot.cases.len(), took_ms = started.elapsed().as_millis(), "cases folded");
                *self.current.write().expect("snapshot") = snapshot;
                *self.error.lock().expect("error") = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cases; the console shows the last ones read");
                *self.error.lock().expect("error") = Some(e);
            }
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("snapshot").clone()
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("error").clone()
    }

    /// Asks for a look now (after an action).
    pub fn refresh(&self) {
        let _ = self.wake.lock().expect("wake").send(());
    }
}
