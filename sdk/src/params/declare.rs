//! Declared parameters: what a rule says it reads, checked before it runs.
//!
//! A rule declares each parameter once, in its code: name, type, default
//! (or optional), range or allowed values, and a sentence of doc.
//!
//! ```
//! use weir_sdk::Param;
//!
//! const PARAMS: &[Param] = &[
//!     Param::integer("max_count", 10).min(0).doc("Suspect above this many transactions in the window."),
//!     Param::choice("action", &["suspect", "lock"], "suspect").doc("What a match does."),
//!     Param::optional_integer("lock_count").min(1).doc("Lock at this many; off when absent."),
//!     Param::integer_table("max_sum").min(0).doc("Sum limits per currency, in minor units."),
//! ];
//! ```
//!
//! `weir_sdk::rule!` encodes the declaration into the component, in the
//! custom section [`SECTION`], so the host reads it without running the
//! rule. At `weir rule build`, `weir rule test`, deploy and `weir rules`,
//! the manifest's `[params]` is checked against it ([`resolve`]): an unknown
//! name (with a "did you mean"), a wrong type, a value out of range or not
//! among the allowed ones refuses the package. A parameter the manifest
//! leaves out takes its declared default, so the rule reads every declared
//! parameter with [`crate::Params::param`] and never repeats a default.
//! The native harness decodes the same bytes and applies the same check.
//!
//! A component without the section (built with an SDK older than
//! declarations, or for contract 1.0.0) is *undeclared*: its parameters are
//! handed over unchecked, and `weir rules` says so.

use std::fmt;

use super::value::ParamValue;

/// The name of the custom section that carries a rule's declaration.
pub const SECTION: &str = "weir:params";

/// The version of the section's encoding (its first byte).
const ENCODING: u8 = 1;

/// The most parameters one rule can declare.
pub const MAX_PARAMS: usize = 128;
/// The longest parameter name, in bytes.
pub const MAX_NAME: usize = 64;
/// The longest doc sentence, in bytes.
pub const MAX_DOC: usize = 512;
/// The most allowed values (or default list entries) of one parameter.
pub const MAX_CHOICES: usize = 64;
/// The longest allowed value or default text, in bytes.
pub const MAX_TEXT: usize = 256;

/// A parameter's type, as the manifest writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Integer,
    /// A number; an integer in the manifest is taken as a float.
    Float,
    Boolean,
    Text,
    TextList,
    /// `[params.NAME]` with integer entries (`EUR = 500000`).
    IntegerTable,
    /// `[params.NAME]` with number entries.
    FloatTable,
}

impl ParamType {
    const ALL: [ParamType; 7] = [
        ParamType::Integer,
        ParamType::Float,
        ParamType::Boolean,
        ParamType::Text,
        ParamType::TextList,
        ParamType::IntegerTable,
        ParamType::FloatTable,
    ];

    /// The word `weir rules` and the reports show: `integer`, `table of integers`.
    pub fn word(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Boolean => "boolean",
            ParamType::Text => "string",
            ParamType::TextList => "list of strings",
            ParamType::IntegerTable => "table of integers",
            ParamType::FloatTable => "table of floats",
        }
    }

    /// A `[params.NAME]` table.
    pub fn is_table(self) -> bool {
        matches!(self, ParamType::IntegerTable | ParamType::FloatTable)
    }

    /// The type of one value: the type itself, or a table's entries.
    fn scalar(self) -> ParamType {
        match self {
            ParamType::IntegerTable => ParamType::Integer,
            ParamType::FloatTable => ParamType::Float,
            other => other,
        }
    }

    fn numeric(self) -> bool {
        matches!(self.scalar(), ParamType::Integer | ParamType::Float)
    }

    /// What a value must be, for errors: "an integer".
    fn expected(self) -> &'static str {
        match self {
            ParamType::Integer => "an integer",
            ParamType::Float => "a number",
            ParamType::Boolean => "a boolean",
            ParamType::Text => "a string",
            ParamType::TextList => "a list of strings",
            ParamType::IntegerTable => "a table of integers",
            ParamType::FloatTable => "a table of numbers",
        }
    }
}

/// A declared default, as written in a rule's code.
#[derive(Debug, Clone, Copy)]
pub enum Fallback {
    /// Optional: absent unless the manifest sets it (tables are empty).
    Absent,
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Text(&'static str),
    TextList(&'static [&'static str]),
}

/// One declared parameter, built in a `const` with the constructors below.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    name: &'static str,
    ty: ParamType,
    default: Fallback,
    min: Option<f64>,
    max: Option<f64>,
    choices: &'static [&'static str],
    doc: &'static str,
}

impl Param {
    const fn new(name: &'static str, ty: ParamType, default: Fallback) -> Param {
        assert!(!name.is_empty() && name.len() <= MAX_NAME, "a parameter name is 1 to 64 bytes");
        Param { name, ty, default, min: None, max: None, choices: &[], doc: "" }
    }
    pub const fn integer(name: &'static str, default: i64) -> Param {
        Param::new(name, ParamType::Integer, Fallback::Integer(default))
    }
    /// A window of event time in whole seconds: an integer in 1 ..= the
    /// longest window the host keeps series points for
    /// ([`crate::limits::MAX_WINDOW_SECS`], 31 days).
    pub const fn window_secs(name: &'static str, default: i64) -> Param {
        Param::integer(name, default).range(1, crate::limits::MAX_WINDOW_SECS)
    }
    /// An integer the manifest may leave out (the rule reads `None`).
    pub const fn optional_integer(name: &'static str) -> Param {
        Param::new(name, ParamType::Integer, Fallback::Absent)
    }
    pub const fn float(name: &'static str, default: f64) -> Param {
        Param::new(name, ParamType::Float, Fallback::Float(default))
    }
    pub const fn optional_float(name: &'static str) -> Param {
        Param::new(name, ParamType::Float, Fallback::Absent)
    }
    pub const fn boolean(name: &'static str, default: bool) -> Param {
        Param::new(name, ParamType::Boolean, Fallback::Boolean(default))
    }
    pub const fn text(name: &'static str, default: &'static str) -> Param {
        Param::new(name, ParamType::Text, Fallback::Text(default))
    }
    /// A string that must be one of `allowed`.
    pub const fn choice(name: &'static str, allowed: &'static [&'static str], default: &'static str) -> Param {
        let mut p = Param::new(name, ParamType::Text, Fallback::Text(default));
        p.choices = allowed;
        p
    }
    pub const fn text_list(name: &'static str, default: &'static [&'static str]) -> Param {
        Param::new(name, ParamType::TextList, Fallback::TextList(default))
    }
    /// `[params.NAME]` of integers, empty unless the manifest has it.
    pub const fn integer_table(name: &'static str) -> Param {
        Param::new(name, ParamType::IntegerTable, Fallback::Absent)
    }
    /// `[params.NAME]` of numbers, empty unless the manifest has it.
    pub const fn float_table(name: &'static str) -> Param {
        Param::new(name, ParamType::FloatTable, Fallback::Absent)
    }
    /// The smallest value allowed (inclusive); for tables, of each entry.
    pub const fn min(mut self, min: i64) -> Param {
        self.min = Some(min as f64);
        self
    }
    /// The largest value allowed (inclusive).
    pub const fn max(mut self, max: i64) -> Param {
        self.max = Some(max as f64);
        self
    }
    /// `min ..= max`.
    pub const fn range(self, min: i64, max: i64) -> Param {
        self.min(min).max(max)
    }
    /// `min ..= max` for a float parameter.
    pub const fn range_float(mut self, min: f64, max: f64) -> Param {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    /// A sentence that says what the parameter does.
    pub const fn doc(mut self, doc: &'static str) -> Param {
        assert!(doc.len() <= MAX_DOC, "a parameter's doc is at most 512 bytes");
        self.doc = doc;
        self
    }
}

/// Writes the section's bytes into an `N`-byte array, counting every byte
/// even past `N`: [`encoded_len`] runs it with `N = 0`.
struct Writer<const N: usize> {
    buf: [u8; N],
    pos: usize,
}

impl<const N: usize> Writer<N> {
    const fn byte(mut self, b: u8) -> Self {
        if self.pos < N {
            self.buf[self.pos] = b;
        }
        self.pos += 1;
        self
    }
    const fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self = self.byte(bytes[i]);
            i += 1;
        }
        self
    }
    const fn str(self, s: &str) -> Self {
        assert!(s.len() <= u16::MAX as usize);
        self.bytes(&(s.len() as u16).to_le_bytes()).bytes(s.as_bytes())
    }
    const fn strs(mut self, list: &[&str]) -> Self {
        assert!(list.len() <= MAX_CHOICES, "at most 64 allowed values or list entries");
        self = self.byte(list.len() as u8);
        let mut i = 0;
        while i < list.len() {
            self = self.str(list[i]);
            i += 1;
        }
        self
    }
    const fn bound(self, b: Option<f64>) -> Self {
        match b {
            None => self.byte(0),
            Some(x) => self.byte(1).bytes(&x.to_bits().to_le_bytes()),
        }
    }

    const fn param(self, p: &Param) -> Self {
        let ty = match p.ty {
            ParamType::Integer => 0,
            ParamType::Float => 1,
            ParamType::Boolean => 2,
            ParamType::Text => 3,
            ParamType::TextList => 4,
            ParamType::IntegerTable => 5,
            ParamType::FloatTable => 6,
        };
        let w = self.str(p.name).byte(ty);
        let w = match p.default {
            Fallback::Absent => w.byte(0),
            Fallback::Integer(i) => w.byte(1).bytes(&i.to_le_bytes()),
            Fallback::Float(x) => w.byte(2).bytes(&x.to_bits().to_le_bytes()),
            Fallback::Boolean(b) => w.byte(3).byte(b as u8),
            Fallback::Text(s) => w.byte(4).str(s),
            Fallback::TextList(l) => w.byte(5).strs(l),
        };
        w.bound(p.min).bound(p.max).strs(p.choices).str(p.doc)
    }
}

const fn write<const N: usize>(params: &[Param]) -> Writer<N> {
    assert!(params.len() <= MAX_PARAMS, "a rule declares at most 128 parameters");
    let mut w = Writer { buf: [0; N], pos: 0 }.byte(ENCODING).byte(params.len() as u8);
    let mut i = 0;
    while i < params.len() {
        w = w.param(&params[i]);
        i += 1;
    }
    w
}

/// How many bytes [`encode`] writes for `params`.
pub const fn encoded_len(params: &[Param]) -> usize {
    write::<0>(params).pos
}

/// The section's bytes for `params`; `N` is [`encoded_len`]`(params)`.
pub const fn encode<const N: usize>(params: &[Param]) -> [u8; N] {
    let w = write::<N>(params);
    assert!(w.pos == N, "encode::<N> with N = encoded_len(params)");
    w.buf
}

/// One declared parameter, as the host and the harness read it back.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    /// `None`: optional (or a table, empty by default).
    pub default: Option<ParamValue>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The allowed values of a string; empty when any string goes.
    pub choices: Vec<String>,
    pub doc: String,
}

impl ParamSpec {
    /// What a value must be: `an integer in 1..=2678400`, `one of "suspect", "lock"`.
    pub fn wanted(&self) -> String {
        self.wanted_as(self.ty)
    }

    /// What one value (a table's entry) must be.
    fn wanted_value(&self) -> String {
        self.wanted_as(self.ty.scalar())
    }

    fn wanted_as(&self, ty: ParamType) -> String {
        let mut out = ty.expected().to_owned();
        if !self.choices.is_empty() {
            let list: Vec<String> = self.choices.iter().map(|c| format!("{c:?}")).collect();
            out = format!("one of {}", list.join(", "));
        }
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => out.push_str(&format!(" in {lo}..={hi}")),
            (Some(lo), None) => out.push_str(&format!(" of at least {lo}")),
            (None, Some(hi)) => out.push_str(&format!(" of at most {hi}")),
            (None, None) => {}
        }
        out
    }
}

/// A malformed section: the component was not built by this SDK, or was
/// altered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclarationError(pub String);

impl fmt::Display for DeclarationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the rule's parameter declaration (custom section `{SECTION}`) is malformed: {}", self.0)
    }
}

impl std::error::Error for DeclarationError {}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DeclarationError> {
        if self.0.len() < n {
            return Err(DeclarationError("it ends early".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, DeclarationError> {
        Ok(self.take(1)?[0])
    }
    fn eight(&mut self) -> Result<[u8; 8], DeclarationError> {
        let mut out = [0; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(out)
    }
    fn str(&mut self, max: usize) -> Result<String, DeclarationError> {
        let mut len = [0; 2];
        len.copy_from_slice(self.take(2)?);
        let len = usize::from(u16::from_le_bytes(len));
        if len > max {
            return Err(DeclarationError(format!("a text of {len} bytes, over its cap of {max}")));
        }
        let text = std::str::from_utf8(self.take(len)?).map_err(|_| DeclarationError("a text is not UTF-8".into()))?;
        if text.chars().any(char::is_control) {
            return Err(DeclarationError("a text holds control characters".into()));
        }
        Ok(text.to_owned())
    }
    fn strs(&mut self) -> Result<Vec<String>, DeclarationError> {
        let n = usize::from(self.byte()?);
        if n > MAX_CHOICES {
            return Err(DeclarationError(format!("{n} list entries, over the cap of {MAX_CHOICES}")));
        }
        (0..n).map(|_| self.str(MAX_TEXT)).collect()
    }
    fn bound(&mut self) -> Result<Option<f64>, DeclarationError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(f64::from_bits(u64::from_le_bytes(self.eight()?))).filter(|x| !x.is_nan())),
            b => Err(DeclarationError(format!("unknown bound tag {b}"))),
        }
    }

    fn param(&mut self) -> Result<ParamSpec, DeclarationError> {
        let name = self.str(MAX_NAME)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(DeclarationError(format!("the parameter name {name:?} is not letters, digits, `_` or `-`")));
        }
        let ty = *ParamType::ALL
            .get(usize::from(self.byte()?))
            .ok_or_else(|| DeclarationError(format!("`{name}` has an unknown type")))?;
        let default = match self.byte()? {
            0 => None,
            1 => Some(ParamValue::Integer(i64::from_le_bytes(self.eight()?))),
            2 => Some(ParamValue::Float(f64::from_bits(u64::from_le_bytes(self.eight()?)))),
            3 => Some(ParamValue::Boolean(self.byte()? != 0)),
            4 => Some(ParamValue::Text(self.str(MAX_TEXT)?)),
            5 => Some(ParamValue::TextList(self.strs()?)),
            b => return Err(DeclarationError(format!("`{name}` has an unknown default tag {b}"))),
        };
        let (min, max) = (self.bound()?, self.bound()?);
        let choices = self.strs()?;
        let doc = self.str(MAX_DOC)?;
        let spec = ParamSpec { name, ty, default, min, max, choices, doc };
        if (spec.min.is_some() || spec.max.is_some()) && !ty.numeric() {
            return Err(DeclarationError(format!("`{}` is {} and cannot have a range", spec.name, ty.word())));
        }
        if !spec.choices.is_empty() && ty != ParamType::Text {
            return Err(DeclarationError(format!("`{}` is {} and cannot have allowed values", spec.name, ty.word())));
        }
        if let Some(default) = &spec.default
            && let Err(why) = check_value(&spec, default)
        {
            return Err(DeclarationError(format!("the default of `{}` is wrong: {why}", spec.name)));
        }
        Ok(spec)
    }
}

/// Reads a section written by [`encode`]: the rule's declared parameters,
/// checked (unique names, defaults of the declared type and in range).
pub fn decode(bytes: &[u8]) -> Result<Vec<ParamSpec>, DeclarationError> {
    let mut r = Reader(bytes);
    let version = r.byte()?;
    if version != ENCODING {
        return Err(DeclarationError(format!(
            "encoding {version}, this host reads encoding {ENCODING}: rebuild the rule with this weir's SDK"
        )));
    }
    let n = usize::from(r.byte()?);
    if n > MAX_PARAMS {
        return Err(DeclarationError(format!("{n} parameters, over the cap of {MAX_PARAMS}")));
    }
    let mut specs: Vec<ParamSpec> = Vec::with_capacity(n);
    for _ in 0..n {
        let spec = r.param()?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(DeclarationError(format!("`{}` is declared twice", spec.name)));
        }
        specs.push(spec);
    }
    if !r.0.is_empty() {
        return Err(DeclarationError(format!("{} bytes after the last parameter", r.0.len())));
    }
    Ok(specs)
}

/// Checks one value (a scalar, or one table entry) against its spec, and
/// returns it as the rule will read it (an integer given for a float is a
/// float).
fn check_value(spec: &ParamSpec, value: &ParamValue) -> Result<ParamValue, String> {
    let ty = spec.ty.scalar();
    let value = match (ty, value) {
        (ParamType::Float, ParamValue::Integer(i)) => ParamValue::Float(*i as f64),
        (ParamType::Integer, ParamValue::Integer(_))
        | (ParamType::Float, ParamValue::Float(_))
        | (ParamType::Boolean, ParamValue::Boolean(_))
        | (ParamType::Text, ParamValue::Text(_))
        | (ParamType::TextList, ParamValue::TextList(_)) => value.clone(),
        _ => return Err(format!("expected {}, found {value}", spec.wanted_value())),
    };
    let number = match &value {
        ParamValue::Integer(i) => Some(*i as f64),
        ParamValue::Float(x) => Some(*x),
        _ => None,
    };
    if let Some(x) = number
        && (x.is_nan() || spec.min.is_some_and(|lo| x < lo) || spec.max.is_some_and(|hi| x > hi))
    {
        return Err(format!("expected {}, found {value}", spec.wanted_value()));
    }
    if let ParamValue::Text(text) = &value
        && !spec.choices.is_empty()
        && !spec.choices.contains(text)
    {
        return Err(format!("expected {}, found {value}", spec.wanted_value()));
    }
    Ok(value)
}

/// Where a parameter's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The manifest's `[params]` (or a self-test case's `params`).
    Given,
    /// The rule's declared default.
    Default,
    /// Optional and not given: the rule reads `None` (a table: empty).
    Unset,
}

impl Source {
    pub fn word(self) -> &'static str {
        match self {
            Source::Given => "rule.toml",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

/// A declared parameter with the value the rule will read.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub spec: ParamSpec,
    /// The value, or for a table its entries (`EUR`, value), in name order.
    pub values: Vec<(String, ParamValue)>,
    pub source: Source,
}

/// One parameter the manifest gives that the declaration refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// As the manifest names it: `max_sum.EUR`.
    pub name: String,
    pub detail: String,
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.name, self.detail)
    }
}

/// The parameters a rule reads once the manifest's are checked against
/// its declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub params: Vec<Resolved>,
}

impl Resolution {
    /// Every value the rule reads, flattened as the host hands them over
    /// (`max_sum.EUR`), defaults included.
    pub fn flattened(&self) -> Vec<(String, ParamValue)> {
        let mut out = Vec::new();
        for p in &self.params {
            for (key, value) in &p.values {
                let name = if p.spec.ty.is_table() { format!("{}.{key}", p.spec.name) } else { p.spec.name.clone() };
                out.push((name, value.clone()));
            }
        }
        out
    }
}

/// Checks `given` (the manifest's flattened `[params]`) against the
/// declaration, and fills in the defaults. Every problem is returned, each
/// naming the parameter; an unknown name gets a "did you mean".
pub fn resolve(declared: &[ParamSpec], given: &[(String, ParamValue)]) -> Result<Resolution, Vec<ParamProblem>> {
    let mut problems = Vec::new();
    let mut found: Vec<Vec<(String, ParamValue)>> = vec![Vec::new(); declared.len()];
    for (name, value) in given {
        let (head, key) = match name.split_once('.') {
            Some((head, key)) => (head, Some(key)),
            None => (name.as_str(), None),
        };
        let problem = |detail: String| ParamProblem { name: name.clone(), detail };
        let Some(i) = declared.iter().position(|s| s.name == head) else {
            problems.push(problem(unknown(declared, head)));
            continue;
        };
        let spec = &declared[i];
        match (spec.ty.is_table(), key) {
            (true, None) => problems.push(problem(format!(
                "expected {} (`[params.{head}]` with one entry per key), found {value}",
                spec.ty.expected()
            ))),
            (false, Some(_)) => {
                problems.push(problem(format!("`{head}` is {}, not a table", spec.ty.expected())));
            }
            (is_table, key) => match check_value(spec, value) {
                Ok(value) => found[i].push((if is_table { key.unwrap_or_default() } else { "" }.to_owned(), value)),
                Err(detail) => problems.push(problem(detail)),
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let params = declared
        .iter()
        .zip(found)
        .map(|(spec, mut values)| {
            values.sort_by(|a, b| a.0.cmp(&b.0));
            let source = match (&spec.default, values.is_empty()) {
                (_, false) => Source::Given,
                (Some(default), true) => {
                    values.push((String::new(), default.clone()));
                    Source::Default
                }
                (None, true) => Source::Unset,
            };
            Resolved { spec: spec.clone(), values, source }
        })
        .collect();
    Ok(Resolution { params })
}

/// "not a parameter of this rule", with the nearest declared name.
fn unknown(declared: &[ParamSpec], name: &str) -> String {
    let nearest = declared
        .iter()
        .map(|s| (edit_distance(&s.name, name), &s.name))
        .filter(|(d, s)| *d <= (s.len().max(name.len()) / 3).max(2))
        .min();
    match nearest {
        Some((_, near)) => format!("not a parameter of this rule; did you mean `{near}`?"),
        None if declared.is_empty() => "not a parameter of this rule, which declares none".to_owned(),
        None => {
            let names: Vec<String> = declared.iter().map(|s| format!("`{}`", s.name)).collect();
            format!("not a parameter of this rule, which declares {}", names.join(", "))
        }
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param] = &[
        Param::integer("window_secs", 3600).range(1, 2_678_400).doc("The window."),
        Param::integer("max_count", 10).min(0),
        Param::optional_integer("lock_count").min(1),
        Param::integer_table("max_sum").min(0),
        Param::choice("action", &["suspect", "lock"], "suspect"),
        Param::float("ratio", 0.5).range_float(0.0, 1.0),
        Param::text_list("blocked", &["7995"]),
        Param::boolean("clears", true),
    ];
    const LEN: usize = encoded_len(PARAMS);
    const BYTES: [u8; LEN] = encode::<LEN>(PARAMS);

    fn given(entries: &[(&str, ParamValue)]) -> Vec<(String, ParamValue)> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn a_declaration_round_trips_through_its_bytes() {
        let specs = decode(&BYTES).unwrap();
        assert_eq!(specs.len(), PARAMS.len());
        assert_eq!(specs[0].name, "window_secs");
        assert_eq!(specs[0].default, Some(ParamValue::Integer(3600)));
        assert_eq!((specs[0].min, specs[0].max), (Some(1.0), Some(2_678_400.0)));
        assert_eq!(specs[0].doc, "The window.");
        assert_eq!(specs[4].choices, ["suspect", "lock"]);
        assert_eq!(specs[6].default, Some(ParamValue::TextList(vec!["7995".into()])));
        assert_eq!(specs[3].ty, ParamType::IntegerTable);
        assert_eq!(specs[2].default, None);
    }

    #[test]
    fn defaults_fill_what_the_manifest_leaves_out() {
        let specs = decode(&BYTES).unwrap();
        let r = resolve(&specs, &given(&[("max_count", ParamValue::Integer(8)), ("max_sum.EUR", 5.into())])).unwrap();
        let flat = r.flattened();
        assert!(flat.contains(&("window_secs".into(), ParamValue::Integer(3600))));
        assert!(flat.contains(&("max_count".into(), ParamValue::Integer(8))));
        assert!(flat.contains(&("max_sum.EUR".into(), ParamValue::Integer(5))));
        assert!(!flat.iter().any(|(k, _)| k == "lock_count"));
        let sources: Vec<Source> = r.params.iter().map(|p| p.source).collect();
        assert_eq!(sources[..4], [Source::Default, Source::Given, Source::Unset, Source::Given]);
    }

    #[test]
    fn a_misspelled_name_is_refused_with_the_nearest_declared_one() {
        let specs = decode(&BYTES).unwrap();
        let problems = resolve(&specs, &given(&[("max_cuont", 8.into())])).unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "parameter `max_cuont`: not a parameter of this rule; did you mean `max_count`?"
        );
        let problems = resolve(&specs, &given(&[("zzzzzzzzzzzz", 8.into())])).unwrap_err();
        assert!(problems[0].detail.starts_with("not a parameter of this rule, which declares `window_secs`,"));
    }

    #[test]
    fn a_wrong_type_a_value_out_of_range_and_a_wrong_choice_are_refused() {
        let specs = decode(&BYTES).unwrap();
        let problems = resolve(
            &specs,
            &given(&[
                ("window_secs", "30".into()),
                ("max_count", (-1).into()),
                ("action", "block".into()),
                ("max_sum", 5.into()),
                ("clears.x", true.into()),
                ("ratio", 1.into()),
            ]),
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "parameter `window_secs`: expected an integer in 1..=2678400, found a string (\"30\")",
                "parameter `max_count`: expected an integer of at least 0, found an integer (-1)",
                "parameter `action`: expected one of \"suspect\", \"lock\", found a string (\"block\")",
                "parameter `max_sum`: expected a table of integers (`[params.max_sum]` with one entry per key), found an integer (5)",
                "parameter `clears.x`: `clears` is a boolean, not a table",
            ]
        );
    }

    #[test]
    fn a_damaged_section_is_refused() {
        assert!(decode(&BYTES[..BYTES.len() - 1]).is_err());
        let mut twice = BYTES.to_vec();
        twice[1] = 9;
        assert!(decode(&twice).is_err());
        let mut version = BYTES.to_vec();
        version[0] = 2;
        assert!(decode(&version).unwrap_err().to_string().contains("encoding 2"));
        const BAD: &[Param] = &[Param::integer("n", -5).min(0)];
        const BAD_LEN: usize = encoded_len(BAD);
        let err = decode(&encode::<BAD_LEN>(BAD)).unwrap_err();
        assert!(err.to_string().contains("the default of `n` is wrong"), "{err}");
    }

    #[test]
    fn damaged_bytes_never_panic_and_never_pass_a_bad_default() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut bytes = BYTES.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(bytes.len() - (next() as usize % 3));
            if let Ok(specs) = decode(&bytes) {
                for spec in &specs {
                    if let Some(default) = &spec.default {
                        assert!(check_value(spec, default).is_ok(), "{spec:?}");
                    }
                }
            }
        }
    }
}
