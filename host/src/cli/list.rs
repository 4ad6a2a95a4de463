//! `weir list ...`: the runtime block and allow lists ([`weir::lists`]).
//! `add` and `remove` write `ListChanged` events — on Kafka to the
//! compacted lists topic that every instance reads, embedded to the lists
//! file `weir run --lists` follows — after checking them against the
//! lists as they are and the bounds, so a change that would be refused
//! is refused here and nothing is written. `show` and `export` read the
//! lists the same way an instance does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use weir::config::Config;
use weir::events::{ListAction, ListChanged};
use weir::lists::{ListSet, LiveLists, version_text};

use super::case::append_lines;

#[derive(Subcommand)]
pub enum ListCommand {
    /// Put values on a runtime list (a block or allow list that rules read).
    ///
    /// Writes one ListChanged event per value (schemas/list-changed.v1.schema.json):
    /// with a `[kafka]` table to the compacted lists topic
    /// (`kafka.topics.lists`, keyed `list/value`), which every instance reads
    /// in full and applies within a second; otherwise as JSON lines appended
    /// to the lists file (--append FILE, or `lists.file`), which `weir run
    /// --lists FILE` follows. Re-adding a value replaces its expiry.
    ///
    /// The values are checked first against the lists as they are and their
    /// bounds (`[lists]` in weir.toml: entries per list, in all, bytes): if
    /// one would be refused, the command says why and writes nothing.
    Add(AddArgs),
    /// Take values off a runtime list.
    Remove(RemoveArgs),
    /// Show the runtime lists (name, entries, version), or one list's entries.
    Show(ShowArgs),
    /// Write every entry as a ListChanged line: a lists file to replay with
    /// (`weir backtest --lists`, `weir run --lists`), with the same versions.
    Export(SourceArgs),
    /// Take off every entry that has expired (by --at, default now).
    ///
    /// An expired entry matches no transaction after its expiry, but it
    /// stays on its list, and counts towards the bounds, until it is
    /// removed: this writes the removals (one ListChanged per entry, as
    /// `weir list remove` does), list by list.
    RemoveExpired(RemoveExpiredArgs),
}

impl ListCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ListCommand::Add(args) => {
                let expires = args.expires.as_deref().map(parse_time).transpose()?;
                args.change.run(ListAction::Add, expires)
            }
            ListCommand::Remove(args) => args.change.run(ListAction::Remove, None),
            ListCommand::Show(args) => args.run(),
            ListCommand::Export(args) => export(&args),
            ListCommand::RemoveExpired(args) => args.run(),
        }
    }
}

/// Where the lists are read from.
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// Configuration file (TOML); with a `[kafka]` table the lists are on
    /// Kafka. WEIR_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Without Kafka: the lists file (overrides `lists.file`).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// The list: lowercase letters, digits, `-`, `_` and `.` (e.g. blocked-devices).
    pub list: String,
    /// The values (merchant ids, device fingerprints, ...), exact.
    pub values: Vec<String>,
    /// Also every line of this file (one value per line; blank lines skipped).
    #[arg(long, value_name = "FILE")]
    pub values_from: Option<PathBuf>,
    /// Who makes the change, as the bank names its analysts (recorded).
    #[arg(long)]
    pub analyst: String,
    /// Why, in the analyst's words (at most 4096 bytes).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub to: Destination,
}

/// Where list changes are written, and how the command reports them.
#[derive(Args, Debug, Clone)]
pub struct Destination {
    /// Configuration file (TOML); with a `[kafka]` table the changes go to Kafka.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Without Kafka: the lists file to append to (overrides `lists.file`).
    #[arg(long, value_name = "FILE")]
    pub append: Option<PathBuf>,
    /// Print what was done as JSON (a line per list).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    /// The entries expire at this event time (RFC 3339, e.g.
    /// 2026-12-31T00:00:00Z): transactions at or after it are not matched.
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Args, Debug)]
pub struct RemoveExpiredArgs {
    /// Only this list (default: every list).
    pub list: Option<String>,
    /// Entries whose expiry is at or before this time (RFC 3339; default: now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Who removes them, as the bank names its analysts (recorded).
    #[arg(long)]
    pub analyst: String,
    #[command(flatten)]
    pub to: Destination,
}

impl RemoveExpiredArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.to.config.as_deref())?;
        let at = match &self.at {
            Some(text) => parse_time(text)?,
            None => OffsetDateTime::now_utc(),
        };
        let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--at is out of range")?;
        let (live, stop) = load(&config, self.to.append.as_deref())?;
        let lists = live.current();
        stop.store(true, Ordering::Relaxed);
        let mut expired: Vec<(String, Vec<String>)> = Vec::new();
        for (name, list) in lists.lists() {
            if self.list.as_deref().is_some_and(|only| only != name) {
                continue;
            }
            let mut values: Vec<String> = list
                .entries()
                .filter(|(_, e)| e.expires_at_ms.is_some_and(|ms| ms <= at_ms))
                .map(|(v, _)| v.to_owned())
                .collect();
            values.sort();
            if !values.is_empty() {
                expired.push((name.to_owned(), values));
            }
        }
        if expired.is_empty() {
            println!("no expired entries");
        }
        for (list, values) in expired {
            let change = ChangeArgs {
                list,
                values,
                values_from: None,
                analyst: self.analyst.clone(),
                note: Some("expired".to_owned()),
                to: self.to.clone(),
            };
            change.run(ListAction::Remove, None)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Show this list's entries (value, expiry, who added it and when).
    pub list: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("--expires {text:?} is not an RFC 3339 time (e.g. 2026-12-31T00:00:00Z)"))
}

/// The lists as an instance reading `config` would have them now (the
/// lists file `file` without Kafka), and the stop flag of a Kafka reader.
fn load(config: &Config, file: Option<&Path>) -> anyhow::Result<(Arc<LiveLists>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let limits = config.lists.limits();
    if let Some(kafka) = &config.kafka {
        if kafka.create_topics {
            weir::kafka::create_topics(kafka, &stop).context("cannot create weir's topics")?;
        }
        let lists = LiveLists::new(format!("kafka:{}", kafka.topics.lists), limits);
        weir::kafka::lists::start(kafka, lists.clone(), &stop)
            .with_context(|| format!("cannot read the lists topic `{}`", kafka.topics.lists))?;
        return Ok((lists, stop));
    }
    let Some(path) = file.or(config.lists.file.as_deref()) else {
        bail!(
            "no lists: give the lists file (--from/--append FILE, or `lists.file`), or a config with a [kafka] table"
        );
    };
    let lists = weir::lists::follow_file(path.to_owned(), limits, false)
        .with_context(|| format!("cannot read the lists file {}", path.display()))?;
    Ok((lists, stop))
}

impl ChangeArgs {
    fn run(&self, action: ListAction, expires: Option<OffsetDateTime>) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.to.config.as_deref())?;
        if config.kafka.is_some() && self.to.append.is_some() {
            bail!("--append is for files; the config names a Kafka broker");
        }
        let mut values = self.values.clone();
        if let Some(path) = &self.values_from {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            values.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
        }
        if values.is_empty() {
            bail!("no values: give them after the list's name, or --values-from FILE");
        }
        let now = OffsetDateTime::now_utc();
        let mut changes = Vec::with_capacity(values.len());
        for value in &values {
            let change = ListChanged::new(&self.list, value, action, expires, &self.analyst, self.note.as_deref(), now)
                .with_context(|| {
                    format!("`{}` on list `{}` is not a valid change", weir::events::shown(value, 80), self.list)
                })?;
            changes.push(change);
        }
        // Check against the lists as they are: what would be refused is refused here.
        let (live, stop) = load(&config, self.to.append.as_deref())?;
        let mut after: ListSet = (*live.current()).clone();
        stop.store(true, Ordering::Relaxed);
        let limits = config.lists.limits();
        for (i, change) in changes.iter().enumerate() {
            if let Err(refusal) = after.apply(change, &limits) {
                bail!("{refusal}; {i} of the {} values fit, nothing was written", changes.len());
            }
        }
        let lines: Vec<String> = changes.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
        let what = format!("{} change(s) of list `{}`", changes.len(), self.list);
        let place = if let Some(kafka) = &config.kafka {
            let keys: Vec<String> = changes.iter().map(ListChanged::key).collect();
            let records = keys.iter().zip(&lines).map(|(k, l)| (k.as_str(), l.as_bytes()));
            let at = weir::kafka::publish_changes(kafka, &kafka.topics.lists, records)
                .with_context(|| format!("cannot write {what} to `{}`", kafka.topics.lists))?;
            let text = format!("written to {} partition {} (last offset {})", at.topic, at.partition, at.offset);
            (serde_json::json!({ "topic": at.topic, "partition": at.partition, "last_offset": at.offset }), text)
        } else {
            let path = self.to.append.as_deref().or(config.lists.file.as_deref()).expect("load found the file");
            append_lines(path, &lines, &what)?;
            (serde_json::json!({ "file": path }), format!("appended to {}", path.display()))
        };
        let (place, place_text) = place;
        let list = after.get(&self.list);
        let (entries, version) = (list.map_or(0, |l| l.len()), list.map(|l| version_text(l.version())));
        if self.to.json {
            let out = serde_json::json!({
                "list": self.list, "action": action.as_str(), "values": changes.len(),
                "entries": entries, "version": version, "written": place,
            });
            println!("{out}");
        } else {
            let verb = if action == ListAction::Add { "added to" } else { "removed from" };
            let version = version.unwrap_or_else(|| "none (empty)".to_owned());
            println!(
                "{} value(s) {verb} list {}: {entries} entries, version {version}; {place_text}",
                changes.len(),
                self.list
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ShowArgs {
    fn run(&self) -> anyhow::Result<ExitCode> {
        let config = Config::load(self.source.config.as_deref())?;
        let (live, stop) = load(&config, self.source.from.as_deref())?;
        let lists = live.current();
        stop.store(true, Ordering::Relaxed);
        let status = live.status();
        match &self.list {
            None if self.json => println!("{}", serde_json::to_string_pretty(&status)?),
            None => {
                println!("{} list(s) from {}", status.lists.len(), status.source);
                for l in &status.lists {
                    println!("  {:<32} {:>8} entries  version {}", l.name, l.entries, l.version);
                }
                if status.refused > 0 {
                    println!("{} change(s) refused; the last:", status.refused);
                    for r in &status.refusals {
                        println!("  {r}");
                    }
                }
            }
            Some(name) => {
                let mut entries: Vec<_> = lists.get(name).map(|l| l.entries().collect()).unwrap_or_default();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let version = lists.get(name).map(|l| version_text(l.version()));
                if self.json {
                    let entries: Vec<_> = entries
                        .iter()
                        .map(|(value, e)| {
                            serde_json::json!({
                                "value": value, "expires_at": e.expires_at_ms.map(weir::lists::time_text),
                                "analyst": e.analyst, "added_at": weir::lists::time_text(e.added_at_ms),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::json!({ "list": name, "version": version, "entries": entries }));
                } else {
                    let version = version.unwrap_or_else(|| "none (empty)".to_owned());
                    println!("list {name}: {} entries, version {version}", entries.len());
                    for (value, e) in entries {
                        let expires = e
                            .expires_at_ms
                            .map(|ms| format!(" until {}", weir::lists::time_text(ms)))
                            .unwrap_or_default();
                        println!(
                            "  {}{expires}  (by {} at {})",
                            weir::events::shown(value, 256),
                            weir::events::shown(&e.analyst, 256),
                            weir::lists::time_text(e.added_at_ms)
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn export(args: &SourceArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let (live, stop) = load(&config, args.from.as_deref())?;
    let lists = live.current();
    stop.store(true, Ordering::Relaxed);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (name, list) in lists.lists() {
        let mut entries: Vec<_> = list.entries().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (value, e) in entries {
            let time = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
            let added = time(e.added_at_ms).context("an entry's time is out of range")?;
            let expires = e.expires_at_ms.map(time).transpose().context("an expiry is out of range")?;
            let change = ListChanged::new(name, value, ListAction::Add, expires, &e.analyst, None, added)?;
            use std::io::Write as _;
            writeln!(out, "{}", serde_json::to_string(&change)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
