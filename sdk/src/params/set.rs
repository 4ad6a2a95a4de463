//! [`Params`]: all parameters of a rule version, as the manifest gave them,
//! and a slot for what a rule parsed from them ([`super::FromParams`]).
//!
//! Parameters never change during the life of a `Params` (the host gives a
//! rule instance its manifest's parameters when it creates it, and a new
//! manifest means a new instance), so what was parsed from them once stays
//! right: the slot is filled at most once and never cleared.

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

use super::value::{FromParam, ParamError, ParamValue};

/// Whether two short byte strings are equal, without a call to `memcmp`.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// All parameters of a rule version, sorted by name.
#[derive(Default)]
pub struct Params {
    entries: Vec<(String, ParamValue)>,
    /// The rule's parameters struct, parsed on first use and kept for as
    /// long as these parameters live: for the life of a wasm instance, of a
    /// test harness, of a rule version loaded natively by the host.
    pub(super) parsed: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Params {
    pub fn new(mut entries: Vec<(String, ParamValue)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Params { entries, parsed: OnceLock::new() }
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        // A rule reads a handful of parameters per evaluation from a short
        // list: a scan that compares lengths first beats a binary search
        // whose every step calls `memcmp`, which in wasm is not inlined.
        self.entries.iter().find(|(k, _)| same(k.as_bytes(), name.as_bytes())).map(|(_, v)| v)
    }

    /// Every parameter whose name starts with `prefix.`, with the prefix
    /// removed: the entries of a flattened table, as the manifest gave
    /// them. [`Params::typed_table`] reads them as one type.
    pub fn table<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a ParamValue)> + 'a {
        self.entries.iter().filter_map(move |(k, v)| {
            k.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')).map(|rest| (rest, v))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The parameter `name` as `T`: `None` if absent, an error naming the
    /// parameter if it has another type.
    pub fn typed<T: FromParam>(&self, name: &str) -> Result<Option<T>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => T::from_param(v)
                .map(Some)
                .ok_or_else(|| ParamError::new(name, format!("expected {}, found {v}", T::EXPECTED))),
        }
    }
}

/// A copy has the same parameters and parses them afresh.
impl Clone for Params {
    fn clone(&self) -> Self {
        Params { entries: self.entries.clone(), parsed: OnceLock::new() }
    }
}

/// Parameters are equal when their names and values are.
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Params").field(&self.entries).finish()
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

    #[test]
    fn a_copy_compares_equal_and_parses_afresh() {
        let p = Params::new(vec![("limit".into(), ParamValue::Integer(5))]);
        assert!(p.parsed.set(Box::new(5i64)).is_ok());
        let copy = p.clone();
        assert_eq!(copy, p);
        assert!(copy.parsed.get().is_none());
        assert_eq!(format!("{p:?}"), "Params([(\"limit\", Integer(5))])");
    }
}
