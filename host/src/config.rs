//! `weir.toml`: the host's configuration, with environment overrides.
//!
//! ```toml
//! [rules]
//! dir = "rules"              # rule packages (manifest + component)
//! watch = true               # hot deploy: swap rules while running
//! cache_dir = "~/.cache/weir"  # compiled components (default: $XDG_CACHE_HOME/weir)
//! require_signed = false     # true: packages and the rule set need an ed25519 signature
//! trusted_keys = []          # hex public keys (`weir rule keygen`)
//! allow_empty = false        # true: a change that leaves no rule running applies
//!
//! [status]
//! listen = "127.0.0.1:9464"  # /health, /status, /metrics; unset: off
//! token_file = "/etc/weir/status.token"  # optional: /status and /metrics need this bearer token
//!
//! [policy]
//! suspect_score = 50         # total score that suspects fraud
//! lock_score = 150           # total score that locks (unset: scores never lock)
//! confirmation_window_days = 30  # a customer's "it was me" is accepted this long after the suspicion
//! rule_fuel_average = 15000  # fuel a rule may use per evaluation on average (over its last 1 000) before it is quarantined
//! model_fuel_average = 250000  # the same for a rule that scores a model (`[model]` in its manifest)
//!
//! [embedded]
//! output = "weir-out"        # decisions.jsonl, dead-letters.jsonl, state.redb
//! batch_size = 4000          # records per atomic batch (more while a commit runs)
//! max_event_bytes = 1048576  # larger records are dead-lettered
//! entity_max_waiting = 20000 # records that wait for their entities, in order, before the oldest is applied
//!
//! [lists]                    # runtime block and allow lists (`weir list`)
//! file = "lists.jsonl"       # embedded: the list changes, followed while running (on Kafka: kafka.topics.lists)
//! max_lists = 1000           # changes over a bound are refused (logged, in /status)
//! max_entries_per_list = 100000
//! max_entries = 1000000
//! max_bytes = 268435456      # values and analysts' names, plus 64 bytes per entry
//!
//! [kafka]                    # present: weir runs on Kafka instead of embedded
//! bootstrap_servers = "127.0.0.1:9092"
//! group_id = "weir"
//! instance_id = "weir-1"     # stable per instance: its transactional id
//! [kafka.client]             # any librdkafka property, passed through
//! "security.protocol" = "SASL_SSL"
//! ```
//!
//! Every key is optional. Environment variables override the file:
//! `WEIR_RULES_DIR`, `WEIR_RULES_WATCH`, `WEIR_LISTS_FILE`, `WEIR_STATUS_LISTEN`, `WEIR_CONSOLE_LISTEN`, `WEIR_STATUS_TOKEN_FILE`, `WEIR_OUTPUT`, `WEIR_SUSPECT_SCORE`, `WEIR_LOCK_SCORE`, `WEIR_RULE_FUEL_AVERAGE`,
//! `WEIR_BATCH_SIZE`, `WEIR_MAX_EVENT_BYTES`, and for Kafka
//! `WEIR_KAFKA_BOOTSTRAP` (which also switches Kafka mode on),
//! `WEIR_KAFKA_GROUP_ID`, `WEIR_KAFKA_INSTANCE_ID`, `WEIR_KAFKA_INPUT_TOPIC`;
//! command-line flags override both. Unknown keys are errors that name the
//! key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Policy;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rules: RulesConfig,
    pub policy: Policy,
    pub embedded: EmbeddedConfig,
    pub status: StatusConfig,
    /// Runtime lists: the embedded pipeline's file, and the bounds.
    pub lists: crate::lists::ListsConfig,
    /// The analysts' console (`weir console`): listener, users, sessions.
    pub console: crate::console::ConsoleConfig,
    /// Kafka mode; absent: the embedded pipeline.
    pub kafka: Option<crate::kafka::KafkaConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of rule packages.
    pub dir: PathBuf,
    /// Watch the directory and swap rules while running (hot deploy).
    pub watch: bool,
    /// Where compiled components are kept between runs; default
    /// `$XDG_CACHE_HOME/weir` (or `~/.cache/weir`). It must be private to
    /// weir's user and outside `dir`, where deployers write. An empty path
    /// turns the disk cache off.
    pub cache_dir: Option<PathBuf>,
    /// Refuse packages without a valid signature by one of `trusted_keys`.
    pub require_signed: bool,
    /// Hex-encoded ed25519 public keys (`weir rule keygen` makes a pair).
    pub trusted_keys: Vec<String>,
    /// Apply a change that leaves no rule running (deleting every
    /// package). Off by default: such a change is refused and the running
    /// rules stay. With `require_signed`, only a signed empty set does it.
    pub allow_empty: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dir: PathBuf::from("rules"),
            watch: true,
            cache_dir: None,
            require_signed: false,
            trusted_keys: Vec::new(),
            allow_empty: false,
        }
    }
}

impl RulesConfig {
    /// The compile cache directory, if on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        match &self.cache_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => default_cache_dir(|var| std::env::var_os(var)),
        }
    }

    /// The validator these settings ask for: an engine with the compile
    /// cache, and the trusted keys. A compile cache inside the rules
    /// directory is refused: whoever may drop a package there could plant
    /// native code in it.
    pub fn validator(&self) -> Result<crate::packages::Validator, ConfigError> {
        let mut engine = crate::engine::Engine::new()?;
        let mut trust = crate::packages::Trust::new(self.require_signed, &self.trusted_keys)?;
        trust.allow_empty = self.allow_empty;
        if let Some(dir) = self.cache_dir() {
            if is_inside(&dir, &self.dir) {
                return Err(ConfigError::CacheInRules { cache_dir: dir, rules_dir: self.dir.clone() });
            }
            trust.memory = Some(crate::packages::set::memory_path(&dir, &self.dir));
            engine = engine.with_cache_dir(dir);
        }
        Ok(crate::packages::Validator::new(engine, trust))
    }
}

/// `$XDG_CACHE_HOME/weir`, else `$HOME/.cache/weir`, else none (no cache).
fn default_cache_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    var("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| var("HOME").and_then(absolute).map(|home| home.join(".cache")))
        .map(|base| base.join("weir"))
}

/// Whether `path` is `dir` or below it, comparing absolute paths with
/// symbolic links resolved as far as they exist.
fn is_inside(path: &Path, dir: &Path) -> bool {
    fn resolve(p: &Path) -> PathBuf {
        let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        // Resolve the longest existing ancestor; keep the rest as written.
        let mut existing = absolute.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or_else(|_| existing.to_owned());
        resolved.extend(rest.iter().rev());
        resolved
    }
    resolve(path).starts_with(resolve(dir))
}

/// The status endpoint (see [`crate::http::status`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Address to serve `/health`, `/status` and `/metrics` on, e.g.
    /// `127.0.0.1:9464`; unset: no endpoint.
    pub listen: Option<String>,
    /// A file holding a bearer token that `/status` and `/metrics` require
    /// (`/health` stays open); it must not be readable by every user.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Output directory: decisions, dead letters and the state store.
    pub output: PathBuf,
    /// Records per atomic batch: a batch is committed once it holds this
    /// many and the previous commit is done (or the input pauses); while a
    /// commit runs, it keeps growing.
    pub batch_size: usize,
    /// Records larger than this are dead-lettered.
    pub max_event_bytes: usize,
    /// With entity rules: records that may wait in input order while
    /// transactions are applied to their entities in event-time order
    /// ([`crate::entity_order`]); past it, the oldest is applied.
    pub entity_max_waiting: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            output: PathBuf::from("weir-out"),
            batch_size: 4000,
            max_event_bytes: crate::events::MAX_EVENT_BYTES,
            entity_max_waiting: crate::entity_order::DEFAULT_LIMIT,
        }
    }
}

/// A configuration problem, naming the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, or a key weir does not know (the text names it).
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: toml::de::Error },
    #[error("environment variable {var}={value:?}: {message}")]
    Env { var: &'static str, value: String, message: &'static str },
    /// A number below what the key allows.
    #[error("`{key}` must be at least {min}")]
    TooSmall { key: &'static str, min: usize },
    #[error(
        "`policy.rule_fuel_average` = {0}: must be between 1 and {max} (the most one evaluation may use)",
        max = crate::manifest::MAX_FUEL
    )]
    RuleFuelAverage(u64),
    #[error(
        "`policy.model_fuel_average` = {0}: must be between 1 and {max} (the most one evaluation may use)",
        max = crate::manifest::MAX_FUEL
    )]
    ModelFuelAverage(u64),
    #[error("`policy.lock_score` ({lock}) is below `policy.suspect_score` ({suspect})")]
    LockBelowSuspect { lock: u32, suspect: u32 },
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaConfigError),
    /// A compile cache where packages are dropped: whoever may drop one
    /// could plant native code in it.
    #[error(
        "`rules.cache_dir` ({cache_dir}) is inside the rules directory ({rules_dir}), where packages are dropped: \
         put the compile cache where only weir writes (the default is $XDG_CACHE_HOME/weir), or set it to \"\" to turn it off"
    )]
    CacheInRules { cache_dir: PathBuf, rules_dir: PathBuf },
    /// `rules.trusted_keys` and `rules.require_signed` do not fit.
    #[error(transparent)]
    Trust(#[from] crate::packages::TrustError),
    /// The wasm engine the validator compiles with could not start.
    #[error(transparent)]
    Engine(#[from] crate::engine::LoadError),
}

impl Config {
    /// Reads `path` (if given), then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                Config::parse(&text).map_err(|error| ConfigError::Parse { path: path.to_owned(), error })?
            }
            None => Config::default(),
        };
        config.apply_env(|var| std::env::var(var).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses weir.toml's text; the error names the line and the key.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies `WEIR_*` overrides from `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn number<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError> {
            value.parse().map_err(|_| ConfigError::Env { var, value, message: "expected a whole number" })
        }
        if let Some(v) = lookup("WEIR_RULES_DIR") {
            self.rules.dir = PathBuf::from(v);
        }
        if let Some(v) = lookup("WEIR_RULES_WATCH") {
            self.rules.watch = match v.as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Env {
                        var: "WEIR_RULES_WATCH",
                        value: v,
                        message: "expected true or false",
                    });
                }
            };
        }
        if let Some(v) = lookup("WEIR_LISTS_FILE") {
            self.lists.file = Some(PathBuf::from(v));
        }
        if let Some(v) = lookup("WEIR_CONSOLE_LISTEN") {
            self.console.listen = v;
        }
        if let Some(v) = lookup("WEIR_STATUS_LISTEN") {
            self.status.listen = Some(v);
        }
        if let Some(v) = lookup("WEIR_STATUS_TOKEN_FILE") {
            self.status.token_file = Some(PathBuf::from(v));
        }
        if let Some(v) = lookup("WEIR_OUTPUT") {
            self.embedded.output = PathBuf::from(v);
        }
        if let Some(v) = lookup("WEIR_SUSPECT_SCORE") {
            self.policy.suspect_score = number("WEIR_SUSPECT_SCORE", v)?;
        }
        if let Some(v) = lookup("WEIR_LOCK_SCORE") {
            self.policy.lock_score = Some(number("WEIR_LOCK_SCORE", v)?);
        }
        if let Some(v) = lookup("WEIR_RULE_FUEL_AVERAGE") {
            self.policy.rule_fuel_average = number("WEIR_RULE_FUEL_AVERAGE", v)?;
        }
        if let Some(v) = lookup("WEIR_MODEL_FUEL_AVERAGE") {
            self.policy.model_fuel_average = number("WEIR_MODEL_FUEL_AVERAGE", v)?;
        }
        if let Some(v) = lookup("WEIR_BATCH_SIZE") {
            self.embedded.batch_size = number("WEIR_BATCH_SIZE", v)?;
        }
        if let Some(v) = lookup("WEIR_MAX_EVENT_BYTES") {
            self.embedded.max_event_bytes = number("WEIR_MAX_EVENT_BYTES", v)?;
        }
        if let Some(v) = lookup("WEIR_KAFKA_BOOTSTRAP") {
            self.kafka.get_or_insert_with(Default::default).bootstrap_servers = v;
        }
        if let Some(kafka) = &mut self.kafka {
            if let Some(v) = lookup("WEIR_KAFKA_GROUP_ID") {
                kafka.group_id = v;
            }
            if let Some(v) = lookup("WEIR_KAFKA_INSTANCE_ID") {
                kafka.instance_id = Some(v);
            }
            if let Some(v) = lookup("WEIR_KAFKA_INPUT_TOPIC") {
                kafka.topics.input = v;
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.embedded.batch_size == 0 {
            return Err(ConfigError::TooSmall { key: "embedded.batch_size", min: 1 });
        }
        if self.embedded.max_event_bytes < 256 {
            return Err(ConfigError::TooSmall { key: "embedded.max_event_bytes", min: 256 });
        }
        if self.embedded.entity_max_waiting == 0 {
            return Err(ConfigError::TooSmall { key: "embedded.entity_max_waiting", min: 1 });
        }
        if let Some(kafka) = &self.kafka {
            kafka.validate()?;
        }
        let fuel_average = self.policy.rule_fuel_average;
        if !(1..=crate::manifest::MAX_FUEL).contains(&fuel_average) {
            return Err(ConfigError::RuleFuelAverage(fuel_average));
        }
        let model_average = self.policy.model_fuel_average;
        if !(1..=crate::manifest::MAX_FUEL).contains(&model_average) {
            return Err(ConfigError::ModelFuelAverage(model_average));
        }
        if let Some(lock) = self.policy.lock_score
            && lock < self.policy.suspect_score
        {
            return Err(ConfigError::LockBelowSuspect { lock, suspect: self.policy.suspect_score });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let mut c = Config::parse("[policy]\nsuspect_score = 70\n[rules]\ndir = 'r'\n").unwrap();
        assert_eq!(c.policy.suspect_score, 70);
        c.apply_env(|v| (v == "WEIR_SUSPECT_SCORE").then(|| "80".to_owned())).unwrap();
        assert_eq!(c.policy.suspect_score, 80);
        assert_eq!(c.rules.dir, PathBuf::from("r"));
        let err = c.apply_env(|v| (v == "WEIR_BATCH_SIZE").then(|| "many".to_owned())).unwrap_err();
        assert!(err.to_string().contains("WEIR_BATCH_SIZE"));
        c.apply_env(|v| (v == "WEIR_RULE_FUEL_AVERAGE").then(|| "200000".to_owned())).unwrap();
        assert_eq!(c.policy.rule_fuel_average, 200_000);
        c.validate().unwrap();
        c.policy.rule_fuel_average = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`policy.rule_fuel_average` = 0: must be between 1 and 5000000"), "{err}");
        c.policy.rule_fuel_average = 15_000;
        c.apply_env(|v| (v == "WEIR_MODEL_FUEL_AVERAGE").then(|| "400000".to_owned())).unwrap();
        assert_eq!(c.policy.model_fuel_average, 400_000);
        c.policy.model_fuel_average = 6_000_000;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`policy.model_fuel_average` = 6000000: must be between 1 and 5000000"), "{err}");
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let example = Config::parse(include_str!("../../weir.example.toml")).unwrap();
        assert_eq!(example, Config::default());
    }

    #[test]
    fn the_compile_cache_is_outside_the_rules_directory() {
        fn env(xdg: Option<&'static str>, home: Option<&'static str>) -> impl Fn(&str) -> Option<std::ffi::OsString> {
            move |var: &str| match var {
                "XDG_CACHE_HOME" => xdg.map(Into::into),
                "HOME" => home.map(Into::into),
                _ => None,
            }
        }
        assert_eq!(default_cache_dir(env(Some("/var/cache"), Some("/home/w"))), Some(PathBuf::from("/var/cache/weir")));
        assert_eq!(default_cache_dir(env(None, Some("/home/w"))), Some(PathBuf::from("/home/w/.cache/weir")));
        assert_eq!(default_cache_dir(env(Some("relative"), None)), None);
        let dir = std::env::temp_dir().join(format!("weir-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        assert!(is_inside(&dir.join("rules/.weir-cache"), &dir.join("rules")));
        assert!(is_inside(&dir.join("rules/../rules/x"), &dir.join("rules")));
        assert!(!is_inside(&dir.join("cache"), &dir.join("rules")));
        let rules = RulesConfig {
            dir: dir.join("rules"),
            cache_dir: Some(dir.join("rules/.weir-cache")),
            ..Default::default()
        };
        let err = rules.validator().err().unwrap().to_string();
        assert!(err.contains("inside the rules directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[policy]\nsuspect = 70\n").unwrap_err().to_string();
        assert!(err.contains("suspect"), "{err}");
    }
}
