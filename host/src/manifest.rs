//! Rule manifests: the TOML file that travels with a rule's component.
//!
//! ```toml
//! [rule]
//! id = "velocity"
//! version = "1.0.0"          # a label for people; decisions carry the content hash
//! description = "Too many transactions in an hour."
//! mode = "enforce"           # or "shadow": evaluated and recorded, never decides
//! failure = "fail-open"      # or "fail-closed": an error counts as a suspect verdict
//! entity = "device"          # an entity rule: state per device, merchant, counterparty or card
//!
//! [limits]
//! fuel = 2000000             # wasm fuel per evaluation
//! memory_mib = 16            # linear memory cap
//! state_kib = 64             # account state this rule may keep per account
//! state_keys = 1024          # key/value entries, per account
//! state_series = 64          # event-time series, per account
//!
//! [params]                   # handed to the rule; tables flatten to dotted names
//! window_secs = 3600
//!
//! [model]                    # a rule that scores a machine-learning model
//! file = "fraud-gbm.onnx"    # ONNX, next to the manifest; part of the version
//! features = ["amount", "hour"]  # the columns of `weir features`' training table
//! ```
//!
//! Parsing is strict (unknown keys are errors that name the key and file);
//! [`RawManifest`] is the file as written, [`RuleSpec`] the validated form
//! the engine uses.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use weir_sdk::limits::StateQuota;
use weir_sdk::{Entity, ParamValue};

use crate::events::{FailurePolicy, RuleMode};

/// Default fuel per evaluation: ample for the shipped rules (which use
/// 1 300 to 4 600), small enough that a loop is stopped within a
/// millisecond.
pub const DEFAULT_FUEL: u64 = 1_000_000;
/// Default linear-memory cap per rule instance.
pub const DEFAULT_MEMORY_MIB: u32 = 32;
/// The largest limits a manifest may ask for.
///
/// Fuel: derived from the per-transaction budget at the throughput target
/// (see [`crate::engine::FUEL_AVERAGE_MAX`]). A rule may average 15 000
/// units over its last 1 000 evaluations; one evaluation may ask for a
/// third of that window's allowance, so it can use its maximum now and
/// then without being quarantined. At the slowest rate measured (4e9 units
/// a second; a bare loop is faster) that is at most 1.25 ms of one core,
/// a fortieth of the 50 ms p99 latency target.
pub const MAX_FUEL: u64 = 5_000_000;
/// Default fuel granted once per rule instance for reading its model
/// (`limits.model_fuel`): loading the 300-tree benchmark model takes about
/// a tenth of it.
pub const DEFAULT_MODEL_FUEL: u64 = 2_000_000_000;
/// The most a manifest may grant for reading a model: about 5 s of one
/// core at the slowest rate measured, once per instance.
pub const MAX_MODEL_FUEL: u64 = 20_000_000_000;
pub const MAX_MEMORY_MIB: u32 = 1024;

/// The manifest file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub rule: RawRule,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub params: toml::Table,
    #[serde(default)]
    pub model: Option<RawModel>,
}

/// `[model]`: the package's machine-learning model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The ONNX file, next to the manifest.
    pub file: String,
    /// The names of the model's input features, in column order: the
    /// header of the training table `weir features` writes.
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Stable identifier: lowercase letters, digits and dashes.
    pub id: String,
    /// A label for people, e.g. "1.2.0".
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub mode: Option<RuleMode>,
    #[serde(default)]
    pub failure: FailurePolicy,
    /// The component file, relative to the manifest. Defaults to `<id>.wasm`.
    #[serde(default)]
    pub component: Option<String>,
    /// For an entity rule, the entity its state is kept for.
    #[serde(default)]
    pub entity: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub fuel: Option<u64>,
    pub memory_mib: Option<u32>,
    pub state_kib: Option<usize>,
    pub state_keys: Option<usize>,
    pub state_series: Option<usize>,
    pub model_fuel: Option<u64>,
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub id: String,
    pub version_label: String,
    pub description: String,
    pub mode: RuleMode,
    pub failure: FailurePolicy,
    /// The component's file name, relative to the manifest.
    pub component: String,
    pub fuel: u64,
    pub memory_mib: u32,
    /// How much state the rule may keep per account (or entity).
    pub state_quota: StateQuota,
    /// For an entity rule, the entity whose state it keeps (not the
    /// account's).
    pub entity: Option<Entity>,
    /// Flattened parameters, sorted by name.
    pub params: Vec<(String, ParamValue)>,
    /// The model's file name, relative to the manifest (`[model] file`).
    pub model: Option<String>,
    /// Fuel granted once per instance for reading the model.
    pub model_fuel: u64,
    /// The model's feature names, in column order (`[model] features`;
    /// empty when not given).
    pub model_features: Vec<String>,
}

/// The most feature names `[model] features` may give (the SDK's model
/// reader takes at most as many features).
pub const MAX_MODEL_FEATURES: usize = weir_sdk::limits::MAX_SCORED_FEATURES;

/// The longest `rule.version` label (it is shown in tables and logs).
pub const MAX_VERSION_BYTES: usize = 64;
/// The longest `rule.description`.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// What is wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Toml(String),
    #[error("`rule.id` = {0:?}: use 1-64 lowercase letters, digits and dashes, starting with a letter")]
    BadId(String),
    #[error("`rule.version` must not be empty")]
    EmptyVersion,
    /// A label shown in logs and on terminals holds what could forge them.
    #[error("`{key}` holds a control or bidirectional-override character, or is over {max} bytes")]
    UnsafeText { key: &'static str, max: usize },
    #[error("`limits.fuel` = {0}: must be between 1 and {MAX_FUEL}")]
    BadFuel(u64),
    #[error("`limits.memory_mib` = {0}: must be between 1 and {MAX_MEMORY_MIB}")]
    BadMemory(u32),
    #[error("`limits.{name}` = {value}: must be between 1 and {max}")]
    BadQuota { name: &'static str, value: usize, max: usize },
    #[error(
        "`rule.component` = {0:?}: give the file name only (like \"velocity.wasm\"), in the manifest's directory; paths are not allowed"
    )]
    BadComponent(String),
    #[error(
        "`model.file` = {0:?}: give the file name only (like \"fraud-gbm.onnx\"), in the manifest's directory; paths are not allowed"
    )]
    BadModel(String),
    #[error("`limits.model_fuel` = {0}: must be between 1 and {MAX_MODEL_FUEL}")]
    BadModelFuel(u64),
    #[error(
        "`model.features`: {0}; give each feature's name once, in the model's column order, with ASCII letters, digits, `_`, `.` and `-` (at most 64 characters, at most {MAX_MODEL_FEATURES} names)"
    )]
    BadModelFeatures(String),
    #[error("`rule.entity` = {0:?}: use one of \"device\", \"merchant\", \"counterparty\" or \"card\"")]
    BadEntity(String),
    #[error("`params.{name}`: {problem}")]
    BadParam { name: String, problem: String },
}

/// A manifest file that cannot be read or is not valid; the text names
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestFileError {
    #[error("cannot read rule manifest {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("rule manifest {}: {error}", path.display())]
    Invalid { path: PathBuf, error: ManifestError },
}

impl RuleSpec {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<RuleSpec, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Toml(toml_error_text(&e, text)))?;
        RuleSpec::validate(raw)
    }

    /// Reads a manifest file; errors name the file.
    pub fn load(path: &Path) -> Result<RuleSpec, ManifestFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|error| ManifestFileError::Read { path: path.to_owned(), error })?;
        RuleSpec::parse(&text).map_err(|error| ManifestFileError::Invalid { path: path.to_owned(), error })
    }

    pub fn validate(raw: RawManifest) -> Result<RuleSpec, ManifestError> {
        let id = raw.rule.id;
        let id_ok = (1..=64).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(ManifestError::BadId(id));
        }
        if raw.rule.version.trim().is_empty() {
            return Err(ManifestError::EmptyVersion);
        }
        if raw.rule.version.len() > MAX_VERSION_BYTES || raw.rule.version.chars().any(crate::events::forges_text) {
            return Err(ManifestError::UnsafeText { key: "rule.version", max: MAX_VERSION_BYTES });
        }
        // A description may span lines; nothing else that moves a terminal.
        let description_ok = |c: char| c == '\n' || c == '\t' || !crate::events::forges_text(c);
        if raw.rule.description.len() > MAX_DESCRIPTION_BYTES || !raw.rule.description.chars().all(description_ok) {
            return Err(ManifestError::UnsafeText { key: "rule.description", max: MAX_DESCRIPTION_BYTES });
        }
        let fuel = raw.limits.fuel.unwrap_or(DEFAULT_FUEL);
        if fuel == 0 || fuel > MAX_FUEL {
            return Err(ManifestError::BadFuel(fuel));
        }
        let memory_mib = raw.limits.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
        if memory_mib == 0 || memory_mib > MAX_MEMORY_MIB {
            return Err(ManifestError::BadMemory(memory_mib));
        }
        let quota = |name: &'static str, value: Option<usize>, default: usize, max: usize, unit: usize| match value {
            None => Ok(default),
            Some(v) if v == 0 || v > max / unit => Err(ManifestError::BadQuota { name, value: v, max: max / unit }),
            Some(v) => Ok(v * unit),
        };
        let (default, max) = (StateQuota::DEFAULT, StateQuota::MAX);
        let state_quota = StateQuota {
            bytes: quota("state_kib", raw.limits.state_kib, default.bytes, max.bytes, 1024)?,
            keys: quota("state_keys", raw.limits.state_keys, default.keys, max.keys, 1)?,
            series: quota("state_series", raw.limits.state_series, default.series, max.series, 1)?,
        };
        let component = raw.rule.component.unwrap_or_else(|| format!("{id}.wasm"));
        if !is_bare_file_name(&component) {
            return Err(ManifestError::BadComponent(component));
        }
        let (model, model_features) = match raw.model {
            Some(m) if !is_bare_file_name(&m.file) || m.file == component => {
                return Err(ManifestError::BadModel(m.file));
            }
            Some(m) => {
                check_feature_names(&m.features)?;
                (Some(m.file), m.features)
            }
            None => (None, Vec::new()),
        };
        let model_fuel = raw.limits.model_fuel.unwrap_or(DEFAULT_MODEL_FUEL);
        if model_fuel == 0 || model_fuel > MAX_MODEL_FUEL {
            return Err(ManifestError::BadModelFuel(model_fuel));
        }
        let entity = match raw.rule.entity {
            None => None,
            Some(name) => Some(Entity::parse(&name).ok_or(ManifestError::BadEntity(name))?),
        };
        let mut params = flatten_params(&raw.params)?;
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(RuleSpec {
            component,
            id,
            version_label: raw.rule.version,
            description: raw.rule.description,
            mode: raw.rule.mode.unwrap_or(RuleMode::Enforce),
            failure: raw.rule.failure,
            fuel,
            memory_mib,
            state_quota,
            entity,
            params,
            model,
            model_fuel,
            model_features,
        })
    }

    /// Overrides parameters (e.g. from a sandbox case file).
    pub fn with_params(mut self, overrides: &toml::Table) -> Result<RuleSpec, ManifestError> {
        for (name, value) in flatten_params(overrides)? {
            match self.params.binary_search_by(|(k, _)| k.cmp(&name)) {
                Ok(i) => self.params[i].1 = value,
                Err(i) => self.params.insert(i, (name, value)),
            }
        }
        Ok(self)
    }
}

/// The longest message [`toml_error_text`] keeps.
const TOML_MESSAGE_MAX: usize = 256;

/// A TOML error as one line that quotes nothing of the file but key names:
/// where (`line L, column C`), what is wrong, and in which key. toml's own
/// `Display` shows the offending line of the source, which for a file that
/// is not what it claims (a secret behind a link, megabytes on one line)
/// would put any content in a refusal; string values quoted in the message
/// (`invalid type: string "…"`) are left out too.
pub fn toml_error_text(error: &toml::de::Error, source: &str) -> String {
    // Without its input, the error displays as its message and the key.
    let mut bare = error.clone();
    bare.set_input(None);
    let bare = bare.to_string();
    let mut message = String::with_capacity(bare.len().min(TOML_MESSAGE_MAX + 8));
    let (mut quoted, mut escaped) = (false, false);
    for c in bare.trim().chars() {
        match (quoted, c) {
            (false, '"') => {
                quoted = true;
                message.push_str("\"…\"");
            }
            (false, '\n') => message.push_str("; "),
            (false, c) => message.push(if c.is_control() { ' ' } else { c }),
            (true, '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (true, '"') if !escaped => quoted = false,
            (true, _) => {}
        }
        escaped = false;
        if message.len() > TOML_MESSAGE_MAX {
            message.truncate(message.floor_char_boundary(TOML_MESSAGE_MAX));
            message.push('…');
            break;
        }
    }
    let Some(start) = error.span().map(|s| s.start.min(source.len())) else { return message };
    let before = source.as_bytes().get(..start).unwrap_or_default();
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    format!("line {line}, column {column}: {message}")
}

/// A file name in the manifest's own directory: no separators, no `..`,
/// nothing hidden (weir's own files there start with a dot), no control
/// characters, at most 255 bytes. Installing and archiving join it to
/// directories, so anything else could reach outside them.
fn is_bare_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
}

/// Turns a TOML table into dotted-name parameters.
fn flatten_params(table: &toml::Table) -> Result<Vec<(String, ParamValue)>, ManifestError> {
    weir_sdk::params_from_toml(table).map_err(|p| ManifestError::BadParam { name: p.name, problem: p.detail })
}

/// Refuses `[model] features` that would not make a training table's
/// header: too many, a duplicate, or a name that is empty, long or not
/// plain ASCII.
fn check_feature_names(names: &[String]) -> Result<(), ManifestError> {
    if names.len() > MAX_MODEL_FEATURES {
        return Err(ManifestError::BadModelFeatures(format!("{} names", names.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if name.is_empty() || name.len() > 64 || !plain {
            return Err(ManifestError::BadModelFeatures(format!(
                "{:?} is not a feature name",
                crate::events::shown(name, 64)
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(ManifestError::BadModelFeatures(format!("{name:?} is given twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest_and_flattens_tables() {
        let spec = RuleSpec::parse(
            r#"
            [rule]
            id = "large-amount"
            version = "2.1.0"
            mode = "shadow"
            failure = "fail-closed"
            [limits]
            fuel = 1000
            [params]
            blocked = ["7995", "m-1"]
            [params.suspect_over]
            EUR = 500000
            "#,
        )
        .unwrap();
        assert_eq!(spec.mode, RuleMode::Shadow);
        assert_eq!(spec.failure, FailurePolicy::FailClosed);
        assert_eq!(spec.fuel, 1000);
        assert_eq!(spec.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(spec.component, "large-amount.wasm");
        assert_eq!(
            spec.params,
            vec![
                ("blocked".to_owned(), ParamValue::TextList(vec!["7995".into(), "m-1".into()])),
                ("suspect_over.EUR".to_owned(), ParamValue::Integer(500000)),
            ]
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values_naming_them() {
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\nfule=3\n").unwrap_err();
        assert!(err.to_string().contains("fule"), "{err}");
        let err = RuleSpec::parse("[rule]\nid='Bad Id'\nversion='1'\n").unwrap_err();
        assert!(err.to_string().contains("rule.id"), "{err}");
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[limits]\nfuel=0\n").unwrap_err();
        assert!(err.to_string().contains("limits.fuel"), "{err}");
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[limits]\nstate_kib=100000\n").unwrap_err();
        assert!(err.to_string().contains("limits.state_kib") && err.to_string().contains("512"), "{err}");
        let spec = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[limits]\nstate_kib=512\nstate_keys=3\n").unwrap();
        assert_eq!(spec.state_quota, StateQuota { bytes: 512 * 1024, keys: 3, series: StateQuota::DEFAULT.series });
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[limits]\nfuel=1000000000\n").unwrap_err();
        assert!(err.to_string().contains("limits.fuel"), "{err}");
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\nmode='loud'\n").unwrap_err();
        assert!(err.to_string().contains("loud"), "{err}");
    }

    #[test]
    fn toml_errors_give_the_place_and_the_key_not_the_line() {
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\nroot:secret-hash:1:::\n").unwrap_err().to_string();
        assert!(err.starts_with("line 4, column 22: key with no value"), "{err}");
        assert!(!err.contains("secret") && !err.contains('\n'), "{err}");
        let text = "[rule]\nid='x'\nversion='1'\n[limits]\nfuel='\"a\" secret \\\\'\n";
        let err = RuleSpec::parse(text).unwrap_err().to_string();
        assert!(err.starts_with("line 5, column 6: ") && err.contains("`limits.fuel`"), "{err}");
        assert!(err.contains("expected u64") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn a_model_is_a_bare_file_name_beside_the_manifest() {
        let spec = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[model]\nfile='gbm.onnx'\n").unwrap();
        assert_eq!(spec.model.as_deref(), Some("gbm.onnx"));
        assert_eq!(spec.model_fuel, DEFAULT_MODEL_FUEL);
        assert_eq!(RuleSpec::parse("[rule]\nid='x'\nversion='1'\n").unwrap().model, None);
        let spec =
            RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[model]\nfile='m.onnx'\nfeatures=['amount','count_1h']\n");
        assert_eq!(spec.unwrap().model_features, ["amount", "count_1h"]);
        for (bad, why) in [("['a','a']", "twice"), ("['a b']", "not a feature name"), ("['']", "not a feature name")] {
            let text = format!("[rule]\nid='x'\nversion='1'\n[model]\nfile='m.onnx'\nfeatures={bad}\n");
            let err = RuleSpec::parse(&text).unwrap_err().to_string();
            assert!(err.contains("model.features") && err.contains(why), "{bad}: {err}");
        }
        for bad in ["../gbm.onnx", "/etc/passwd", "sub/m.onnx", ".m.onnx", "x.wasm", ""] {
            let text = format!("[rule]\nid='x'\nversion='1'\n[model]\nfile={bad:?}\n");
            let err = RuleSpec::parse(&text).unwrap_err().to_string();
            assert!(err.contains("model.file"), "{bad:?}: {err}");
        }
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[model]\nfile='m.onnx'\npath='y'\n").unwrap_err();
        assert!(err.to_string().contains("path"), "{err}");
        let err = RuleSpec::parse("[rule]\nid='x'\nversion='1'\n[limits]\nmodel_fuel=0\n").unwrap_err();
        assert!(err.to_string().contains("limits.model_fuel"), "{err}");
    }

    #[test]
    fn the_component_is_a_bare_file_name() {
        for bad in [
            "../x.wasm",
            "/etc/passwd",
            "sub/x.wasm",
            "..",
            ".",
            "",
            ".hidden.wasm",
            "a\\b.wasm",
            "c:x.wasm",
            "x\n.wasm",
        ] {
            let text = format!("[rule]\nid='x'\nversion='1'\ncomponent={bad:?}\n");
            let err = RuleSpec::parse(&text).unwrap_err();
            assert!(err.to_string().contains("rule.component"), "{bad:?}: {err}");
        }
        let spec = RuleSpec::parse("[rule]\nid='x'\nversion='1'\ncomponent='x-2.wasm'\n").unwrap();
        assert_eq!(spec.component, "x-2.wasm");
    }
}
