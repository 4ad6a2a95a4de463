//! One parameter's value as the manifest gave it ([`ParamValue`]), the Rust
//! types a value can be read as ([`FromParam`]), and the error that names a
//! parameter that is missing or not what a rule expects ([`ParamError`]).

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

/// A parameter that is missing or has the wrong type.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub name: String,
    pub detail: String,
}

impl ParamError {
    pub(crate) fn new(name: &str, detail: impl Into<String>) -> Self {
        ParamError { name: name.to_owned(), detail: detail.into() }
    }
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
