//! A rule's declared parameters on the host: read from the component's
//! custom section without running it ([`declaration`]), checked against the
//! manifest's `[params]` and completed with the declared defaults
//! ([`Parameters::resolve`]). Every load goes through it — `weir rule
//! build`, `weir rule test`, a deploy, `weir rules`, a backtest — so a
//! misspelled or mistyped parameter is refused everywhere with one text.

use weir_sdk::ParamValue;
use weir_sdk::declare::{self, ParamSpec, Resolution};

use super::LoadError;

/// The parameters a rule version runs with.
#[derive(Debug, Clone, PartialEq)]
pub enum Parameters {
    /// Checked against the rule's declaration; defaults filled in.
    Declared(Resolution),
    /// The component declares nothing (built before declarations, or for
    /// contract 1.0.0): the manifest's values, unchecked.
    Undeclared(Vec<(String, ParamValue)>),
}

impl Parameters {
    /// Checks `given` against `declared` (`None`: undeclared).
    pub fn resolve(declared: Option<Vec<ParamSpec>>, given: &[(String, ParamValue)]) -> Result<Parameters, LoadError> {
        match declared {
            None => Ok(Parameters::Undeclared(given.to_vec())),
            Some(specs) => declare::resolve(&specs, given)
                .map(Parameters::Declared)
                .map_err(|problems| LoadError::Params(problems.iter().map(ToString::to_string).collect())),
        }
    }

    /// What the rule reads, flattened (`max_sum.EUR`).
    pub fn values(&self) -> Vec<(String, ParamValue)> {
        match self {
            Parameters::Declared(resolution) => resolution.flattened(),
            Parameters::Undeclared(given) => given.clone(),
        }
    }
}

/// The declaration a component carries, if any. Every copy of the section
/// (a component can nest modules) must say the same.
pub fn declaration(component: &[u8]) -> Result<Option<Vec<ParamSpec>>, LoadError> {
    let mut found: Option<&[u8]> = None;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        // A component that does not parse is refused by the compiler, with
        // its own message; here it simply has no declaration.
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else { continue };
        if section.name() != declare::SECTION {
            continue;
        }
        match found {
            Some(earlier) if earlier != section.data() => {
                return Err(LoadError::Declaration(format!(
                    "the component has two different `{}` sections",
                    declare::SECTION
                )));
            }
            _ => found = Some(section.data()),
        }
    }
    found.map(|bytes| declare::decode(bytes).map_err(|e| LoadError::Declaration(e.to_string()))).transpose()
}

/// One parameter as `weir rules` and the reports show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParamLine {
    pub name: String,
    /// The value in TOML syntax (`3600`, `"suspect"`, `{ EUR = 500000 }`);
    /// empty when unset.
    pub value: String,
    /// `rule.toml`, `default`, `unset`, or `undeclared` (unchecked).
    pub source: &'static str,
    /// The declared type and doc; empty when undeclared.
    pub kind: String,
    pub doc: String,
}

impl Parameters {
    /// Every parameter, in declaration order (undeclared: name order).
    pub fn lines(&self) -> Vec<ParamLine> {
        match self {
            Parameters::Declared(resolution) => resolution
                .params
                .iter()
                .map(|p| {
                    let value = if p.spec.ty.is_table() {
                        let entries: Vec<String> = p.values.iter().map(|(k, v)| format!("{k} = {}", toml(v))).collect();
                        if entries.is_empty() { String::new() } else { format!("{{ {} }}", entries.join(", ")) }
                    } else {
                        p.values.first().map(|(_, v)| toml(v)).unwrap_or_default()
                    };
                    ParamLine {
                        name: p.spec.name.clone(),
                        value,
                        source: p.source.word(),
                        kind: p.spec.wanted(),
                        doc: p.spec.doc.clone(),
                    }
                })
                .collect(),
            Parameters::Undeclared(given) => given
                .iter()
                .map(|(name, value)| ParamLine {
                    name: name.clone(),
                    value: toml(value),
                    source: "undeclared",
                    kind: String::new(),
                    doc: String::new(),
                })
                .collect(),
        }
    }
}

/// A value in TOML syntax.
fn toml(value: &ParamValue) -> String {
    match value {
        ParamValue::Integer(i) => i.to_string(),
        ParamValue::Float(x) => format!("{x:?}"),
        ParamValue::Boolean(b) => b.to_string(),
        ParamValue::Text(s) => format!("{s:?}"),
        ParamValue::TextList(l) => format!("{l:?}"),
    }
}
