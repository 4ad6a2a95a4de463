//! A manifest's `[params]` table as the flat list of parameters a rule
//! reads: nested tables flatten to dotted names (`[params.max_sum] EUR = 1`
//! is `max_sum.EUR`). The host reads manifests with it, and so does the
//! native harness ([`crate::testing::Harness::manifest`]).

use super::declare::ParamProblem;
use super::value::ParamValue;

/// Flattens a `[params]` table; a value no parameter can hold (a date, a
/// list of tables) is a problem naming it.
pub fn flatten(table: &toml::Table) -> Result<Vec<(String, ParamValue)>, ParamProblem> {
    let mut out = Vec::new();
    flatten_into("", table, &mut out)?;
    Ok(out)
}

fn flatten_into(prefix: &str, table: &toml::Table, out: &mut Vec<(String, ParamValue)>) -> Result<(), ParamProblem> {
    for (key, value) in table {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let bad = |detail: &str| ParamProblem { name: name.clone(), detail: detail.to_owned() };
        let value = match value {
            toml::Value::Integer(i) => ParamValue::Integer(*i),
            toml::Value::Float(f) => ParamValue::Float(*f),
            toml::Value::Boolean(b) => ParamValue::Boolean(*b),
            toml::Value::String(s) => ParamValue::Text(s.clone()),
            toml::Value::Array(items) => ParamValue::TextList(
                items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => Ok(s.clone()),
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        _ => Err(bad("lists may hold only strings or integers")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => {
                flatten_into(&name, t, out)?;
                continue;
            }
            toml::Value::Datetime(_) => return Err(bad("dates are not supported; use a string")),
        };
        out.push((name, value));
    }
    Ok(())
}
