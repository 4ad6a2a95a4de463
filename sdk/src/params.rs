//! Typed access to a rule's parameters.
//!
//! Parameters come from the `[params]` table of the rule's manifest. Nested
//! tables are flattened to dotted names, so `[params.limits] EUR = 500000`
//! is read as `ctx.param::<i64>("limits.EUR")`.

use std::fmt;

/// One parameter value, as the manifest gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Text(String),
    TextList(Vec<String>),
}

impl ParamValue {
    /// What kind of value this is, for error messages ("an integer").
    pub fn kind(&self) -> &'static str {
        match self {
            ParamValue::Integer(_) => "an integer",
            ParamValue::Float(_) => "a float",
            ParamValue::Boolean(_) => "a boolean",
            ParamValue::Text(_) => "a string",
            ParamValue::TextList(_) => "a list of strings",
        }
    }
}

impl fmt::Display for ParamValue {
    /// The kind and the value: `an integer (-1)`, `a string ("x")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Integer(i) => write!(f, "{} ({i})", self.kind()),
            ParamValue::Float(x) => write!(f, "{} ({x})", self.kind()),
            ParamValue::Boolean(b) => write!(f, "{} ({b})", self.kind()),
            ParamValue::Text(s) => write!(f, "{} ({s:?})", self.kind()),
            ParamValue::TextList(l) => write!(f, "{} ({l:?})", self.kind()),
        }
    }
}

/// Whether two short byte strings are equal, without a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// All parameters of a rule version, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Vec<(String, ParamValue)>);

impl Params {
    pub fn new(mut entries: Vec<(String, ParamValue)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Params(entries)
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        // A rule reads a handful of parameters per evaluation from a short
        // list: a scan that compares lengths first beats a binary search
        // whose every step calls `memcmp`, which in wasm is not inlined.
        self.0.iter().find(|(k, _)| same(k.as_bytes(), name.as_bytes())).map(|(_, v)| v)
    }

    /// Every parameter whose name starts with `prefix.`, with the prefix
    /// removed: the entries of a flattened table.
    pub fn table<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a ParamValue)> + 'a {
        self.0.iter().filter_map(move |(k, v)| {
            k.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')).map(|rest| (rest, v))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The parameter `name` as `T`: `None` if absent, an error naming the
    /// parameter if it has another type.
    pub fn typed<T: FromParam>(&self, name: &str) -> Result<Option<T>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => T::from_param(v).map(Some).ok_or_else(|| ParamError {
                name: name.to_owned(),
                detail: format!("expected {}, found {v}", T::EXPECTED),
            }),
        }
    }
}

/// A parameter that is missing or has the wrong type.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub name: String,
    pub detail: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.name, self.detail)
    }
}

impl std::error::Error for ParamError {}

/// A Rust type a parameter can be read as.
pub trait FromParam: Sized {
    /// What the type expects, for error messages ("an integer").
    const EXPECTED: &'static str;
    fn from_param(value: &ParamValue) -> Option<Self>;
}

impl FromParam for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromParam for u32 {
    const EXPECTED: &'static str = "a non-negative integer below 2^32";
    fn from_param(value: &ParamValue) -> Option<Self> {
        i64::from_param(value).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromParam for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_param(value: &ParamValue) -> Option<Self> {
        i64::from_param(value).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromParam for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Float(f) => Some(*f),
            ParamValue::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromParam for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromParam for String {
    const EXPECTED: &'static str = "a string";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromParam for Vec<String> {
    const EXPECTED: &'static str = "a list of strings";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::TextList(l) => Some(l.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_and_reports_wrong_types() {
        let p = Params::new(vec![
            ("limit".into(), ParamValue::Integer(5)),
            ("limits.EUR".into(), ParamValue::Integer(500)),
            ("limits.USD".into(), ParamValue::Integer(600)),
            ("name".into(), ParamValue::Text("x".into())),
        ]);
        assert_eq!(p.typed::<i64>("limit").unwrap(), Some(5));
        assert_eq!(p.typed::<i64>("missing").unwrap(), None);
        let err = p.typed::<i64>("name").unwrap_err();
        assert_eq!(err.to_string(), "parameter `name`: expected an integer, found a string (\"x\")");
        let err = p
            .typed::<u32>("limits.EUR")
            .map(|_| ())
            .and_then(|_| Params::new(vec![("n".into(), ParamValue::Integer(-1))]).typed::<u32>("n"))
            .unwrap_err();
        assert!(err.to_string().ends_with("found an integer (-1)"), "{err}");
        let table: Vec<_> = p.table("limits").map(|(k, _)| k).collect();
        assert_eq!(table, ["EUR", "USD"]);
    }
}
