//! The cases the console shows: folded from what weir published
//! ([`crate::review`]) by a thread of their own, and handed to the pages as
//! an immutable snapshot with its indexes, so a page is a lookup whatever
//! the number of cases. The thread folds again every `refresh` and as soon
//! as an action asks (an analyst's verdict shows on the next fold).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::kafka::KafkaConfig;
use crate::review::{Case, CaseState, Files, read_published};

/// One fold of the cases, with the indexes the pages use.
#[derive(Default)]
pub struct Snapshot {
    /// Every case, by account then input order.
    pub cases: Vec<Case>,
    by_id: HashMap<String, usize>,
    by_account: HashMap<String, Vec<usize>>,
    /// The open cases.
    pub waiting: usize,
    /// The rules that fired in some case, for the queue's filter.
    pub rules: BTreeSet<String>,
    /// When it was folded, and how long reading and folding took.
    pub folded_at: Option<time::OffsetDateTime>,
    pub took: Duration,
}

impl Snapshot {
    pub fn new(cases: Vec<Case>, took: Duration) -> Snapshot {
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
        self.by_id.get(id).map(|i| &self.cases[*i])
    }

    /// The account's cases, oldest first.
    pub fn account_cases(&self, account: &str) -> impl Iterator<Item = &Case> {
        self.by_account.get(account).into_iter().flatten().map(|i| &self.cases[*i])
    }
}

/// The latest snapshot and the thread that folds the next.
pub struct CaseStore {
    current: RwLock<Arc<Snapshot>>,
    /// Why the last fold failed, if it did (the previous snapshot stays).
    error: Mutex<Option<String>>,
    wake: Mutex<Sender<()>>,
}

impl CaseStore {
    /// Folds the cases once (an error is kept and shown, not fatal), then
    /// starts the thread that folds them again every `refresh` until `stop`.
    pub fn start(kafka: Option<KafkaConfig>, files: Files, refresh: Duration, stop: Arc<AtomicBool>) -> Arc<CaseStore> {
        let (tx, rx) = std::sync::mpsc::channel();
        let store = Arc::new(CaseStore { current: RwLock::default(), error: Mutex::new(None), wake: Mutex::new(tx) });
        store.fold(kafka.as_ref(), &files);
        let s = store.clone();
        std::thread::Builder::new()
            .name("weir-console-cases".into())
            .spawn(move || s.run(kafka.as_ref(), &files, refresh, &rx, &stop))
            .expect("spawning the console's case thread");
        store
    }

    fn run(
        &self,
        kafka: Option<&KafkaConfig>,
        files: &Files,
        refresh: Duration,
        wake: &Receiver<()>,
        stop: &AtomicBool,
    ) {
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
            self.fold(kafka, files);
            last = Instant::now();
        }
    }

    fn fold(&self, kafka: Option<&KafkaConfig>, files: &Files) {
        let started = Instant::now();
        match read_published(kafka, files, true) {
            Ok(published) => {
                let cases = crate::review::cases(published);
                let snapshot = Arc::new(Snapshot::new(cases, started.elapsed()));
                tracing::debug!(cases = snapshot.cases.len(), took_ms = started.elapsed().as_millis(), "cases folded");
                *self.current.write().expect("snapshot") = snapshot;
                *self.error.lock().expect("error") = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cases; the console shows the last ones read");
                *self.error.lock().expect("error") = Some(e.to_string());
            }
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("snapshot").clone()
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("error").clone()
    }

    /// Asks for a fold now (after an action).
    pub fn refresh(&self) {
        let _ = self.wake.lock().expect("wake").send(());
    }
}
