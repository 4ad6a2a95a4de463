//! Hot deploy: the rules directory, watched, and the rule set the pipelines
//! run, swapped between batches.
//!
//! [`LiveRules`] owns the directory's state: which package is active for
//! each manifest, which packages were refused and why, and the current
//! [`Generation`] (an immutable [`RuleSet`] with a number). A watcher
//! thread ([`LiveRules::watch`], the `notify` crate, debounced) rescans the
//! directory after every change; a rescan validates each new or changed
//! package off the hot path ([`crate::packages::Validator`]) and, when the set
//! of active versions changed, publishes a new generation. A refused
//! package never replaces the running version.
//!
//! Before a rescan's result is published, the directory is checked as a
//! whole: a change that would leave no rule running is refused (unless
//! `rules.allow_empty`), and with `rules.require_signed` the active
//! packages must be exactly the newest signed rule set
//! ([`crate::packages::set`]): a missing, replayed, expired or mismatched
//! set is refused, logged at ERROR and shown in the status, and the
//! running rules stay.
//!
//! The pipelines call [`LiveRules::adopt`] between two batches: if a newer
//! generation exists, the evaluator swaps to it in one step, before the
//! first record of the next batch. A batch therefore runs on exactly one
//! generation, and every decision names the content hash of every rule
//! that took part. The pipeline then reports where the swap took effect
//! ([`LiveRules::took_effect`]: input line, or Kafka partition offsets),
//! which is logged and kept for the status endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer};
use serde::Serialize;

use crate::engine::{Evaluator, LoadedRule, RuleSet};
use crate::events::RuleMode;
use crate::packages::set::{self, AcceptedSet, SetRefusal, SignedSet};
use crate::packages::{PackageFiles, Refusal, Validator, manifests};

/// How long the directory must be quiet before it is rescanned: a copy in
/// progress keeps writing, so it is not read half-way.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// How many swaps and refusals the status keeps.
const KEPT: usize = 100;

/// One published rule set.
pub struct Generation {
    /// 1 for the rules weir started with, then one more per change.
    pub number: u64,
    pub set: RuleSet,
    /// What changed from the previous generation.
    pub changes: Vec<Change>,
    /// When the directory change was noticed (the start of the rescan).
    pub noticed: Instant,
}

/// One rule version, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub rule_id: String,
    pub version_label: String,
    pub hash: String,
    pub mode: RuleMode,
}

impl Version {
    fn of(rule: &LoadedRule) -> Version {
        Version {
            rule_id: rule.spec.id.clone(),
            version_label: rule.spec.version_label.clone(),
            hash: rule.hash.to_string(),
            mode: rule.spec.mode,
        }
    }
}

/// What one generation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added { to: Version },
    Replaced { from: Version, to: Version },
    Removed { from: Version },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |v: &Version| format!("{} {} ({:?}, {})", v.rule_id, v.version_label, v.mode, short_hash(&v.hash));
        match self {
            Change::Added { to } => write!(f, "added {}", short(to)),
            Change::Replaced { from, to } => write!(f, "replaced {} by {}", short(from), short(to)),
            Change::Removed { from } => write!(f, "removed {}", short(from)),
        }
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..19).unwrap_or(hash)
}

/// A package that was refused while weir ran, as the status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedPackage {
    pub path: PathBuf,
    /// The version it would have been, when the files could be read.
    pub hash: Option<String>,
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// The digest of every file of the package as refused ([`files_digest`]):
    /// the same files are not validated again. `None` (unreadable, a
    /// duplicate id, not in the signed set): tried again at every rescan.
    #[serde(skip)]
    files: Option<String>,
}

/// The directory's rule set, refused as a whole; the running rules stay.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedSet {
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
}

/// A published generation and where it took effect.
#[derive(Debug, Clone, Serialize)]
pub struct Swap {
    pub generation: u64,
    pub changes: Vec<Change>,
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// Where the pipeline first used it, for people (e.g. `stdin after line
    /// 1200` or `transactions[0]@1182, transactions[1]@977`); empty until then.
    pub took_effect: String,
    /// The same, for tools: per input partition (the embedded pipeline's
    /// one is 0, its offsets line numbers), the first offset decided by
    /// this generation (`None`: the partition's start).
    pub cutover: Vec<Cutover>,
    /// From the directory change to the rule set being published.
    pub validate_ms: f64,
}

/// Where a generation took effect on one input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cutover {
    pub partition: i32,
    pub offset: Option<i64>,
}

/// Where a pipeline first decided with a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TookEffect {
    /// Embedded: from the line after `after_line` of `input` on.
    Line { input: String, after_line: i64 },
    /// Kafka: from these offsets of `topic`'s partitions on (`None`: the
    /// partition's start).
    Offsets { topic: String, partitions: Vec<(i32, Option<i64>)> },
}

impl TookEffect {
    fn cutovers(&self) -> Vec<Cutover> {
        match self {
            TookEffect::Line { after_line, .. } => vec![Cutover { partition: 0, offset: Some(after_line + 1) }],
            TookEffect::Offsets { partitions, .. } => partitions
                .iter()
                .map(|(partition, offset)| Cutover { partition: *partition, offset: *offset })
                .collect(),
        }
    }
}

impl std::fmt::Display for TookEffect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TookEffect::Line { input, after_line } => write!(f, "{input} after line {after_line}"),
            TookEffect::Offsets { topic, partitions } => {
                for (i, (p, offset)) in partitions.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    match offset {
                        Some(o) => write!(f, "{sep}{topic}[{p}]@{o}")?,
                        None => write!(f, "{sep}{topic}[{p}]@start")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// What `/status` shows about rules.
#[derive(Debug, Clone, Serialize)]
pub struct RulesStatus {
    pub dir: PathBuf,
    pub generation: u64,
    pub active: Vec<Version>,
    /// Packages in the directory that are refused now (the previous
    /// version of their rule, if any, keeps running).
    pub refused: Vec<RefusedPackage>,
    /// Recent swaps, oldest first.
    pub swaps: Vec<Swap>,
    /// Every refusal since start, newest last (at most 100 kept).
    pub refusals: Vec<RefusedPackage>,
    pub swaps_total: u64,
    pub refusals_total: u64,
    /// With `require_signed`: the signed rule set running now.
    pub signed_set: Option<AcceptedSet>,
    /// Why the directory, as it is now, is not run (a missing, replayed,
    /// expired or mismatched signed set, or a change that would leave no
    /// rule); `None` when the directory runs as it is.
    pub set_refused: Option<RefusedSet>,
    pub set_refusals_total: u64,
}

struct State {
    current: Arc<Generation>,
    /// The active package of each manifest path.
    active: BTreeMap<PathBuf, Arc<LoadedRule>>,
    /// Refused packages still in the directory, by manifest path.
    refused: BTreeMap<PathBuf, RefusedPackage>,
    swaps: Vec<Swap>,
    refusals: Vec<RefusedPackage>,
    swaps_total: u64,
    refusals_total: u64,
    /// The highest signed set accepted (remembered between runs).
    accepted: Option<AcceptedSet>,
    set_refused: Option<RefusedSet>,
    set_refusals_total: u64,
}

/// Why the rules directory cannot be run from; the text names it.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Every package was refused (or there is none).
    #[error("no rule could be loaded from {}", dir.display())]
    NoRules { dir: PathBuf },
    /// The directory's rule set is refused as a whole (see [`SetRefusal`]).
    #[error("the rules in {} are not run: {reason}", dir.display())]
    SetRefused { dir: PathBuf, reason: String },
    #[error("cannot read the rules directory {}: {error}", dir.display())]
    Read { dir: PathBuf, error: std::io::Error },
    /// The directory cannot be watched for changes.
    #[error("{error}")]
    Watch { dir: PathBuf, error: notify_debouncer_mini::notify::Error },
}

/// The rules directory and the generation the pipelines run.
pub struct LiveRules {
    dir: PathBuf,
    validator: Validator,
    generation: AtomicU64,
    state: Mutex<State>,
    /// Serializes rescans (the watcher's and explicit ones).
    scanning: Mutex<()>,
}

impl LiveRules {
    /// Loads the directory as generation 1. Refused packages are reported
    /// (and kept in the status); it is an error if no rule loads.
    pub fn start(dir: &Path, validator: Validator) -> Result<Arc<LiveRules>, LiveError> {
        let live = LiveRules::load(dir, validator)?;
        let refused = live.lock().set_refused.clone();
        if let Some(refused) = refused
            && live.current().number == 0
        {
            return Err(LiveError::SetRefused { dir: dir.to_owned(), reason: refused.reason });
        }
        if live.current().set.is_empty() {
            return Err(LiveError::NoRules { dir: dir.to_owned() });
        }
        Ok(live)
    }

    /// Reads the directory once, as the running weir does (`weir rules DIR`):
    /// what loads is generation 1, the rest is refused with its reason.
    pub fn load(dir: &Path, validator: Validator) -> Result<Arc<LiveRules>, LiveError> {
        let empty =
            Arc::new(Generation { number: 0, set: RuleSet::default(), changes: vec![], noticed: Instant::now() });
        let accepted = validator.trust.memory.as_deref().and_then(set::remembered);
        let live = Arc::new(LiveRules {
            dir: dir.to_owned(),
            validator,
            generation: AtomicU64::new(0),
            state: Mutex::new(State {
                current: empty,
                active: BTreeMap::new(),
                refused: BTreeMap::new(),
                swaps: Vec::new(),
                refusals: Vec::new(),
                swaps_total: 0,
                refusals_total: 0,
                accepted,
                set_refused: None,
                set_refusals_total: 0,
            }),
            scanning: Mutex::new(()),
        });
        live.rescan().map_err(|error| LiveError::Read { dir: dir.to_owned(), error })?;
        Ok(live)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest published generation.
    pub fn current(&self) -> Arc<Generation> {
        self.lock().current.clone()
    }

    /// The currently refused packages.
    pub fn refused(&self) -> Vec<RefusedPackage> {
        self.lock().refused.values().cloned().collect()
    }

    /// Between two batches: if a generation newer than `*running` exists,
    /// swaps `evaluator` to it and returns it. The caller reports where it
    /// took effect with [`LiveRules::took_effect`].
    pub fn adopt(&self, running: &mut u64, evaluator: &mut Evaluator) -> Option<Arc<Generation>> {
        if self.generation.load(Ordering::Acquire) == *running {
            return None;
        }
        let generation = self.current();
        evaluator.swap(&generation.set);
        *running = generation.number;
        Some(generation)
    }

    /// Records and logs where a generation was first used.
    pub fn took_effect(&self, generation: &Generation, position: &TookEffect) {
        let elapsed = generation.noticed.elapsed();
        let changes: Vec<String> = generation.changes.iter().map(ToString::to_string).collect();
        if generation.number == 1 {
            let rules: Vec<String> = generation
                .set
                .rules()
                .iter()
                .map(|r| Version::of(r))
                .map(|v| format!("{} {} ({:?}, {})", v.rule_id, v.version_label, v.mode, short_hash(&v.hash)))
                .collect();
            tracing::info!(generation = 1, from = %position, "rules in effect: {}", rules.join("; "));
        } else {
            tracing::info!(
                generation = generation.number,
                took_effect = %position,
                since_change_ms = elapsed.as_millis() as u64,
                "rules swapped: {}",
                changes.join("; ")
            );
        }
        let mut state = self.lock();
        if let Some(swap) = state.swaps.iter_mut().rev().find(|s| s.generation == generation.number) {
            // Kafka reports once per worker, each for its partitions.
            if !swap.took_effect.is_empty() {
                swap.took_effect.push_str(", ");
            }
            swap.took_effect.push_str(&position.to_string());
            for cutover in position.cutovers() {
                swap.cutover.retain(|c| c.partition != cutover.partition);
                swap.cutover.push(cutover);
            }
            swap.cutover.sort_by_key(|c| c.partition);
        }
    }

    /// The status endpoint's view.
    pub fn status(&self) -> RulesStatus {
        let state = self.lock();
        RulesStatus {
            dir: self.dir.clone(),
            generation: state.current.number,
            active: state.current.set.rules().iter().map(|r| Version::of(r)).collect(),
            refused: state.refused.values().cloned().collect(),
            swaps: state.swaps.clone(),
            refusals: state.refusals.clone(),
            swaps_total: state.swaps_total,
            refusals_total: state.refusals_total,
            signed_set: if self.validator.trust.require_signed { state.accepted.clone() } else { None },
            set_refused: state.set_refused.clone(),
            set_refusals_total: state.set_refusals_total,
        }
    }

    /// Reads the directory again: validates new and changed packages,
    /// retires removed ones, and publishes a new generation if the active
    /// versions changed. Returns the new generation's number, if any.
    pub fn rescan(&self) -> std::io::Result<Option<u64>> {
        self.scan(false)
    }

    /// A rescan after a change: a package one of whose files changed within
    /// the debounce is left as it was for now (another file of it may still
    /// be on its way); the watcher rescans once that file is quiet.
    pub fn rescan_settled(&self) -> std::io::Result<Option<u64>> {
        self.scan(true)
    }

    fn scan(&self, settled_only: bool) -> std::io::Result<Option<u64>> {
        let _scan = self.scanning.lock().unwrap_or_else(|e| e.into_inner());
        let noticed = Instant::now();
        let paths = manifests(&self.dir)?;
        let (mut active, mut refused, accepted, running_empty) = {
            let state = self.lock();
            (state.active.clone(), state.refused.clone(), state.accepted.clone(), state.current.set.is_empty())
        };
        let signed = self.validator.trust.require_signed.then(|| {
            let set = set::read_signed(&self.dir, &self.validator.trust)?;
            set::check_fresh(&set, accepted.as_ref(), time::OffsetDateTime::now_utc())?;
            Ok::<_, SetRefusal>(set)
        });
        let listed = |package: &PackageFiles| {
            signed
                .as_ref()
                .and_then(|s| s.as_ref().ok())
                .is_some_and(|s| s.statement.rules.iter().any(|r| r.id == package.spec.id && r.version == package.hash))
        };
        let mut new_refusals = Vec::new();
        active.retain(|path, _| paths.contains(path));
        refused.retain(|path, _| paths.contains(path));
        for path in &paths {
            let package = match PackageFiles::read(path) {
                Ok(p) => p,
                Err(refusal) => {
                    refuse(&mut refused, &mut new_refusals, path, (None, None), refusal);
                    continue;
                }
            };
            if active.get(path).is_some_and(|r| *r.hash == *package.hash) {
                refused.remove(path);
                continue;
            }
            let files = files_digest(&package);
            if refused.get(path).is_some_and(|r| r.files.as_deref() == Some(files.as_str())) {
                continue; // the same refused content: already reported
            }
            if settled_only && package.changed_within(DEBOUNCE) {
                tracing::debug!(path = %path.display(), "a file of this package changed just now; waiting for it to settle");
                continue;
            }
            let taken = active.iter().find(|(p, r)| *p != path && r.spec.id == package.spec.id).map(|(p, _)| p.clone());
            if let Some(other) = taken {
                let refusal = Refusal::DuplicateId { id: package.spec.id.clone(), other };
                refuse(&mut refused, &mut new_refusals, path, (Some(package.hash), None), refusal);
                continue;
            }
            match self.validator.validate_with(&package, !listed(&package)) {
                Ok(rule) => {
                    tracing::info!(rule = %rule.spec.id, version = %rule.spec.version_label, hash = %rule.hash, mode = %rule.spec.mode, path = %path.display(), "rule package accepted ({})", rule.compilation);
                    refused.remove(path);
                    active.insert(path.clone(), Arc::new(rule));
                }
                Err(refusal) => {
                    refuse(&mut refused, &mut new_refusals, path, (Some(package.hash), Some(files)), refusal)
                }
            }
        }

        let verdict = gate(signed, &mut active, &mut refused, &mut new_refusals, running_empty, &self.validator);

        let mut state = self.lock();
        state.refusals_total += new_refusals.len() as u64;
        state.refusals.extend(new_refusals);
        let excess = state.refusals.len().saturating_sub(KEPT);
        state.refusals.drain(..excess);
        state.refused = refused;
        match verdict {
            Err(refusal) => {
                let reason = refusal.to_string();
                if state.set_refused.as_ref().is_none_or(|r| r.reason != reason) {
                    tracing::error!(dir = %self.dir.display(), "the rules directory is refused as a whole, the running rules stay: {reason}");
                    state.set_refusals_total += 1;
                    state.set_refused = Some(RefusedSet { reason, at: unix_now() });
                }
                return Ok(None);
            }
            Ok(newly) => {
                if state.set_refused.take().is_some() {
                    tracing::info!(dir = %self.dir.display(), "the rules directory is accepted again");
                }
                if let Some(newly) = newly.filter(|n| state.accepted.as_ref() != Some(n)) {
                    tracing::info!(sequence = newly.sequence, digest = %newly.digest, "signed rule set accepted");
                    if let Some(path) = &self.validator.trust.memory
                        && let Err(e) = set::remember(path, &newly)
                    {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remember the accepted rule set; a replay is refused only until restart");
                    }
                    state.accepted = Some(newly);
                }
            }
        }
        let changes = diff(state.current.set.rules(), &active);
        state.active = active;
        if changes.is_empty() {
            return Ok(None);
        }
        let set = RuleSet::from_shared(state.active.values().cloned().collect())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let number = state.current.number + 1;
        state.swaps.push(Swap {
            generation: number,
            changes: changes.clone(),
            at: unix_now(),
            took_effect: String::new(),
            cutover: Vec::new(),
            validate_ms: noticed.elapsed().as_secs_f64() * 1000.0,
        });
        let excess = state.swaps.len().saturating_sub(KEPT);
        state.swaps.drain(..excess);
        state.swaps_total += 1;
        if number > 1 {
            let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
            tracing::info!(generation = number, "rules changed: {}", text.join("; "));
        }
        state.current = Arc::new(Generation { number, set, changes, noticed });
        self.generation.store(number, Ordering::Release);
        Ok(Some(number))
    }

    /// Watches the directory; every change (debounced) triggers a rescan.
    /// The watch lasts as long as the returned handle.
    pub fn watch(self: &Arc<Self>) -> Result<Watch, LiveError> {
        let live = Arc::clone(self);
        let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
            // `AnyContinuous` means a file is still being written: wait
            // until some file has been quiet for the whole debounce.
            Ok(events) if !events.iter().any(|e| e.kind == DebouncedEventKind::Any) => {}
            Ok(_) => {
                if let Err(e) = live.rescan_settled() {
                    tracing::error!(dir = %live.dir.display(), error = %e, "cannot rescan the rules directory");
                }
            }
            Err(e) => tracing::error!(dir = %live.dir.display(), error = %e, "watching the rules directory"),
        })
        .map_err(|error| LiveError::Watch { dir: self.dir.clone(), error })?;
        debouncer
            .watcher()
            .watch(&self.dir, RecursiveMode::NonRecursive)
            .map_err(|error| LiveError::Watch { dir: self.dir.clone(), error })?;
        tracing::info!(dir = %self.dir.display(), "watching the rules directory for packages");
        Ok(Watch { _debouncer: debouncer })
    }
}

/// Keeps the rules directory watched while alive.
pub struct Watch {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

fn refuse(
    refused: &mut BTreeMap<PathBuf, RefusedPackage>,
    log: &mut Vec<RefusedPackage>,
    path: &Path,
    (hash, files): (Option<String>, Option<String>),
    refusal: Refusal,
) {
    let reason = refusal.to_string();
    if refused.get(path).is_some_and(|r| r.reason == reason && r.hash == hash) {
        return;
    }
    tracing::error!(path = %path.display(), "rule package refused, the running version stays: {reason}");
    let refused_package = RefusedPackage { path: path.to_owned(), hash, reason, at: unix_now(), files };
    refused.insert(path.to_owned(), refused_package.clone());
    log.push(refused_package);
}

/// A digest of everything a package's validation reads: its version hash
/// (component and manifest), its cases and its signature, so that signing
/// a refused package or fixing its cases is noticed.
fn files_digest(package: &PackageFiles) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(package.hash.as_bytes());
    for part in [package.cases.as_ref().map(|(_, text)| text.as_str()), package.signature.as_deref()] {
        let part = part.unwrap_or_default();
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    hex::encode(digest.finalize())
}

/// Whether the directory's packages, as validated, may run as a whole:
/// without `require_signed`, unless they would leave no rule running;
/// with it, only when they are exactly the newest signed set (packages it
/// does not list are refused, and left out). Returns the set to remember.
fn gate(
    signed: Option<Result<SignedSet, SetRefusal>>,
    active: &mut BTreeMap<PathBuf, Arc<LoadedRule>>,
    refused: &mut BTreeMap<PathBuf, RefusedPackage>,
    log: &mut Vec<RefusedPackage>,
    running_empty: bool,
    validator: &Validator,
) -> Result<Option<AcceptedSet>, SetRefusal> {
    let Some(signed) = signed else {
        if active.is_empty() && !running_empty && !validator.trust.allow_empty {
            return Err(SetRefusal::Empty);
        }
        return Ok(None);
    };
    let set = signed?;
    let sequence = set.statement.sequence;
    for entry in &set.statement.rules {
        match active.values().find(|r| r.spec.id == entry.id) {
            Some(rule) if *rule.hash == *entry.version => {}
            other => {
                let found = match other {
                    Some(rule) => format!("version {}", rule.hash),
                    None => match refused.iter().find(|(p, _)| p.file_stem().is_some_and(|s| *s == *entry.id)) {
                        Some((_, r)) => format!("a refused package ({})", r.reason),
                        None => "no package of it".to_owned(),
                    },
                };
                return Err(SetRefusal::Mismatch {
                    sequence,
                    id: entry.id.clone(),
                    listed: entry.version.clone(),
                    found,
                });
            }
        }
    }
    let outside: Vec<PathBuf> = active
        .iter()
        .filter(|(_, r)| !set.statement.rules.iter().any(|e| e.id == r.spec.id && *e.version == *r.hash))
        .map(|(p, _)| p.clone())
        .collect();
    for path in outside {
        if let Some(rule) = active.remove(&path) {
            let refusal = Refusal::NotInSignedSet { sequence };
            refuse(refused, log, &path, (Some(rule.hash.to_string()), None), refusal);
        }
    }
    Ok(Some(AcceptedSet { sequence, digest: set.digest }))
}

/// What changed between the running set and the new active packages.
fn diff(running: &[Arc<LoadedRule>], active: &BTreeMap<PathBuf, Arc<LoadedRule>>) -> Vec<Change> {
    let before: BTreeMap<&str, &LoadedRule> = running.iter().map(|r| (r.spec.id.as_str(), &**r)).collect();
    let after: BTreeMap<&str, &LoadedRule> = active.values().map(|r| (r.spec.id.as_str(), &**r)).collect();
    let mut changes = Vec::new();
    for (id, new) in &after {
        match before.get(id) {
            None => changes.push(Change::Added { to: Version::of(new) }),
            Some(old) if old.hash != new.hash => {
                changes.push(Change::Replaced { from: Version::of(old), to: Version::of(new) })
            }
            Some(_) => {}
        }
    }
    for (id, old) in &before {
        if !after.contains_key(id) {
            changes.push(Change::Removed { from: Version::of(old) });
        }
    }
    changes
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
