//! Checked readers for the shapes rule parameters take: a value of a type
//! (with a default, or optional), an integer in a range, a choice among
//! words, a list of strings, a table of typed values, a window of event
//! time and a history length. Each error names the parameter and what was
//! expected, so a rule needs no [`ParamValue`] matching of its own.
//!
//! The host's own limits (how long series points and the history are kept)
//! are checked here, so a rule author never needs to know them.

use std::fmt::{self, Display};
use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use super::set::{Params, same};
use super::value::{FromParam, ParamError, ParamValue};
use crate::state::{HISTORY_LEN, SERIES_RETENTION_MS};

/// The longest window of event time a rule can query: series points older
/// than this are not kept.
const MAX_WINDOW_SECS: u64 = SERIES_RETENTION_MS.unsigned_abs() / 1000;

impl Params {
    /// The parameter `name`, which must be present and of type `T`.
    pub fn param<T: FromParam>(&self, name: &str) -> Result<T, ParamError> {
        self.typed(name)?.ok_or_else(|| ParamError::new(name, "missing from the manifest"))
    }

    /// The parameter `name` if present (it must then be of type `T`).
    pub fn param_opt<T: FromParam>(&self, name: &str) -> Result<Option<T>, ParamError> {
        self.typed(name)
    }

    /// The parameter `name` if present (it must then be of type `T`), else `default`.
    pub fn param_or<T: FromParam>(&self, name: &str, default: T) -> Result<T, ParamError> {
        Ok(self.typed(name)?.unwrap_or(default))
    }

    /// The integer parameter `name` (else `default`), which must lie in
    /// `range`: `1..=100`, `1..` (at least 1), `0..` (not negative).
    pub fn in_range<T>(&self, name: &str, default: T, range: impl RangeBounds<T>) -> Result<T, ParamError>
    where
        T: FromParam + PartialOrd + Display,
    {
        check_range(name, self.param_or(name, default)?, &range)
    }

    /// The same, for a parameter without a default: `None` when absent.
    pub fn in_range_opt<T>(&self, name: &str, range: impl RangeBounds<T>) -> Result<Option<T>, ParamError>
    where
        T: FromParam + PartialOrd + Display,
    {
        self.typed(name)?.map(|value| check_range(name, value, &range)).transpose()
    }

    /// The text parameter `name` (else `default`), which must be one of
    /// `allowed`; returns the entry of `allowed` it equals.
    pub fn choice<'c>(&self, name: &str, allowed: &[&'c str], default: &'c str) -> Result<&'c str, ParamError> {
        let found = match self.get(name) {
            None => return Ok(default),
            Some(ParamValue::Text(text)) => allowed.iter().find(|word| **word == text.as_str()),
            Some(_) => None,
        };
        found.copied().ok_or_else(|| ParamError::new(name, format!("expected {}", OneOf(allowed))))
    }

    /// The list parameter `name` (`["a", "b"]`), borrowed; empty when absent.
    pub fn list(&self, name: &str) -> Result<&[String], ParamError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(ParamValue::TextList(list)) => Ok(list),
            Some(_) => Err(ParamError::new(name, "expected a list of strings")),
        }
    }

    /// The table `prefix` (`[params.limits] EUR = 500000` is the table
    /// `limits`), every entry read as `T`; empty when absent. An entry of
    /// another type is an error naming it (`limits.EUR`), whichever entry a
    /// transaction would use.
    pub fn typed_table<T: FromParam>(&self, prefix: &str) -> Result<Table<T>, ParamError> {
        let entries = self.table(prefix).map(|(key, value)| match T::from_param(value) {
            Some(value) => Ok((key.to_owned(), value)),
            None => Err(ParamError::new(&format!("{prefix}.{key}"), format!("expected {}", T::EXPECTED))),
        });
        Ok(Table { entries: entries.collect::<Result<_, _>>()? })
    }

    /// The parameter `name` as a window of event time in whole seconds
    /// (else `default_secs`): at least one second and at most the longest
    /// window the host keeps series points for (31 days), which the error
    /// names.
    pub fn window_secs(&self, name: &str, default_secs: u64) -> Result<Duration, ParamError> {
        let secs = self.param_or(name, default_secs)?;
        if !(1..=MAX_WINDOW_SECS).contains(&secs) {
            return Err(ParamError::new(
                name,
                format!(
                    "must be 1..={MAX_WINDOW_SECS} seconds ({} days, the longest the host keeps series points), found {secs}",
                    MAX_WINDOW_SECS / 86_400
                ),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    /// The parameter `name` as a number of earlier transactions to read
    /// with [`crate::Context::recent`] (else `default`): at least one and at
    /// most as many as the host keeps per account, which the error names.
    pub fn history_len(&self, name: &str, default: u32) -> Result<u32, ParamError> {
        let max = HISTORY_LEN as u32;
        let len = self.param_or(name, default)?;
        if !(1..=max).contains(&len) {
            return Err(ParamError::new(
                name,
                format!("must be 1..={max} (the host keeps an account's last {max} transactions), found {len}"),
            ));
        }
        Ok(len)
    }
}

fn check_range<T: PartialOrd + Display>(name: &str, value: T, range: &impl RangeBounds<T>) -> Result<T, ParamError> {
    if range.contains(&value) {
        return Ok(value);
    }
    let (start, end) = (range.start_bound(), range.end_bound());
    let wanted = match (start, end) {
        (Bound::Included(lo), Bound::Included(hi)) => format!("{lo}..={hi}"),
        (Bound::Included(lo), Bound::Excluded(hi)) => format!("{lo}..{hi}"),
        _ => {
            let start = match start {
                Bound::Included(lo) => Some(format!("at least {lo}")),
                Bound::Excluded(lo) => Some(format!("above {lo}")),
                Bound::Unbounded => None,
            };
            let end = match end {
                Bound::Included(hi) => Some(format!("at most {hi}")),
                Bound::Excluded(hi) => Some(format!("below {hi}")),
                Bound::Unbounded => None,
            };
            start.into_iter().chain(end).collect::<Vec<_>>().join(" and ")
        }
    };
    Err(ParamError::new(name, format!("must be {wanted}, found {value}")))
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
struct OneOf<'a>(&'a [&'a str]);

impl Display for OneOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.0.iter().enumerate() {
            match i {
                0 => {}
                _ if i + 1 == self.0.len() => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "{word:?}")?;
        }
        Ok(())
    }
}

/// A table parameter read as one type ([`Params::typed_table`]): its
/// entries by name, in name order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table<T> {
    entries: Vec<(String, T)>,
}

impl<T> Table<T> {
    /// The entry `key` (`"EUR"` of the table `limits`), if present.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.entries.iter().find(|(k, _)| same(k.as_bytes(), key.as_bytes())).map(|(_, v)| v)
    }

    /// The entries, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &T)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { entries: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(entries: &[(&str, ParamValue)]) -> Params {
        Params::new(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
    }

    fn message<T: fmt::Debug>(result: Result<T, ParamError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn ranges_check_the_value_or_the_default_and_say_what_they_wanted() {
        let p = params(&[("n", ParamValue::Integer(0)), ("pct", ParamValue::Integer(150))]);
        assert_eq!(p.in_range::<u32>("absent", 5, 1..).unwrap(), 5);
        assert_eq!(message(p.in_range::<u32>("n", 3, 1..)), "parameter `n`: must be at least 1, found 0");
        assert_eq!(message(p.in_range::<i64>("pct", 3, 1..=100)), "parameter `pct`: must be 1..=100, found 150");
        assert_eq!(message(p.in_range::<i64>("pct", 3, ..100)), "parameter `pct`: must be below 100, found 150");
        assert_eq!(p.in_range_opt::<i64>("absent", 1..=100).unwrap(), None);
        assert_eq!(p.in_range_opt::<i64>("n", 0..).unwrap(), Some(0));
        assert!(message(p.in_range_opt::<i64>("pct", 1..=100)).contains("found 150"));
        let typed = params(&[("n", ParamValue::Text("x".into()))]);
        assert_eq!(
            message(typed.in_range::<i64>("n", 1, 1..)),
            "parameter `n`: expected an integer, found a string (\"x\")"
        );
    }

    #[test]
    fn a_choice_is_one_of_the_allowed_words() {
        let allowed = ["suspect", "lock"];
        assert_eq!(params(&[]).choice("action", &allowed, "suspect").unwrap(), "suspect");
        let p = params(&[("action", ParamValue::Text("lock".into()))]);
        assert_eq!(p.choice("action", &allowed, "suspect").unwrap(), "lock");
        let p = params(&[("action", ParamValue::Text("block".into()))]);
        assert_eq!(
            message(p.choice("action", &allowed, "suspect")),
            "parameter `action`: expected \"suspect\" or \"lock\""
        );
        let p = params(&[("action", ParamValue::Boolean(true))]);
        assert_eq!(
            message(p.choice("action", &["a", "b", "c"], "a")),
            "parameter `action`: expected \"a\", \"b\" or \"c\""
        );
    }

    #[test]
    fn a_list_is_borrowed_and_empty_when_absent() {
        let p = params(&[("ids", ParamValue::TextList(vec!["a".into()])), ("one", ParamValue::Text("a".into()))]);
        assert_eq!(p.list("ids").unwrap(), ["a"]);
        assert!(p.list("absent").unwrap().is_empty());
        assert_eq!(message(p.list("one")), "parameter `one`: expected a list of strings");
    }

    #[test]
    fn a_table_reads_every_entry_as_one_type() {
        let p = params(&[
            ("limits.EUR", ParamValue::Integer(500)),
            ("limits.USD", ParamValue::Integer(600)),
            ("limitsX", ParamValue::Integer(1)),
        ]);
        let limits = p.typed_table::<u64>("limits").unwrap();
        assert_eq!(limits.get("USD"), Some(&600));
        assert_eq!(limits.get("GBP"), None);
        assert_eq!(limits.iter().collect::<Vec<_>>(), [("EUR", &500), ("USD", &600)]);
        assert!(p.typed_table::<u64>("absent").unwrap().is_empty());
        let p = params(&[("limits.EUR", ParamValue::Integer(500)), ("limits.USD", ParamValue::Integer(-1))]);
        assert_eq!(message(p.typed_table::<u64>("limits")), "parameter `limits.USD`: expected a non-negative integer");
    }

    #[test]
    fn windows_and_history_lengths_name_the_hosts_limit() {
        let p = params(&[("w", ParamValue::Integer(40 * 24 * 3600)), ("zero", ParamValue::Integer(0))]);
        assert_eq!(params(&[]).window_secs("w", 600).unwrap(), Duration::from_secs(600));
        let err = message(p.window_secs("w", 600));
        assert!(err.starts_with("parameter `w`: must be 1..=2678400 seconds (31 days"), "{err}");
        assert!(err.ends_with("found 3456000"), "{err}");
        assert!(message(p.window_secs("zero", 600)).ends_with("found 0"));
        assert_eq!(params(&[]).history_len("h", 8).unwrap(), 8);
        let err = message(params(&[("h", ParamValue::Integer(33))]).history_len("h", 8));
        assert_eq!(err, "parameter `h`: must be 1..=32 (the host keeps an account's last 32 transactions), found 33");
    }
}
