//! The engine's errors: why a rule package is refused ([`LoadError`]) and
//! why one evaluation of one rule failed ([`RuleError`]).
//!
//! Both are what an operator reads — in the deploy report, the log, or a
//! decision's `error` field — so each variant carries what it is about and
//! says what to do where there is something to do.

use super::TRANSACTION_FUEL;

/// Why a rule package was refused. The running rules are unaffected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file ({len} bytes, no `\\0asm` header)")]
    NotWasm { len: usize },
    #[error(
        "a core WebAssembly module, not a component: build the rule for the `wasm32-wasip2` target (`weir rule build`)"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "built for rule contract weir:rule@{found}; this host runs weir:rule@{supported} (and weir:rule@1.0.0, for rules built with the first SDK): rebuild the rule with this weir's SDK"
    )]
    IncompatibleContract { found: String, supported: &'static str },
    #[error("the component does not export `weir:rule/evaluator`, so it is not a weir rule (it exports: {exports:?})")]
    NotARule { exports: Vec<String> },
    #[error("the component imports `{0}`, which weir does not provide to rules")]
    UnsupportedImport(String),
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error("the wasm engine could not start: {0}")]
    Engine(String),
    #[error("two rules have the id `{0}`")]
    DuplicateId(String),
    /// The manifest's `[params]` against the rule's declaration: every
    /// problem, each naming its parameter.
    #[error("{}", .0.join("; "))]
    Params(Vec<String>),
    #[error("{0}")]
    Declaration(String),
    /// The package's model, read in the sandbox by the rule itself, is
    /// refused: what the rule's model reader said.
    #[error("the model: {0}")]
    Model(String),
}

/// The kinds of rule error a self-test case can expect
/// (`expect.kind`), as [`RuleError::kind_of`] names them; `parameter` is a
/// case whose parameters the rule's declaration refuses.
pub const ERROR_KINDS: [&str; 13] = [
    "parameter",
    "fuel",
    "memory",
    "stack",
    "panic",
    "trap",
    "returned",
    "instantiate",
    "verdict",
    "state",
    "lists",
    "budget",
    "quarantined",
];

impl RuleError {
    /// The kind of the error whose text (as a decision records it) is
    /// `text`: `fuel`, `panic`, `returned`, ... (see [`ERROR_KINDS`]).
    pub fn kind_of(text: &str) -> &'static str {
        const PREFIXES: [(&str, &str); 12] = [
            (PARAMS_REFUSED, "parameter"),
            ("ran out of fuel", "fuel"),
            ("exceeded its memory limit", "memory"),
            ("overflowed its stack", "stack"),
            ("trapped: ", "trap"),
            ("returned an error: ", "returned"),
            ("could not be instantiated", "instantiate"),
            ("returned an explanation over", "verdict"),
            ("went over its state quota", "state"),
            ("read more than", "lists"),
            ("was not run: ", "budget"),
            ("is quarantined", "quarantined"),
        ];
        match PREFIXES.iter().find(|(prefix, _)| text.starts_with(prefix)) {
            // A Rust panic leaves "panicked at" in the trap's text.
            Some((_, "trap")) if text.contains("panicked at") => "panic",
            Some((_, kind)) => kind,
            None => "other",
        }
    }
}

/// How a self-test case's result begins when the rule's declaration
/// refused the case's parameters (the rule did not run).
pub const PARAMS_REFUSED: &str = "its parameters were refused: ";

/// Why one evaluation of one rule failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("ran out of fuel after {limit} units")]
    OutOfFuel { limit: u64 },
    #[error("exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: usize },
    #[error("overflowed its stack")]
    StackOverflow,
    #[error("trapped: {trap}{}", panic.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Trap { trap: String, panic: Option<String> },
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("returned an explanation over the host's limits: {0}")]
    Verdict(String),
    #[error("went over its state quota: {0}; none of its writes were kept")]
    StateQuota(String),
    /// It asked about more different runtime lists than one evaluation may.
    #[error("read more than {0} different lists in one evaluation")]
    TooManyLists(usize),
    #[error("was not run: the transaction's fuel budget ({TRANSACTION_FUEL} units across all rules) was spent")]
    BudgetSpent,
    #[error("is quarantined: {why}; it is skipped until a new version is deployed")]
    Quarantined { why: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_error_text_names_its_kind() {
        let cases = [
            (RuleError::OutOfFuel { limit: 5 }, "fuel"),
            (RuleError::MemoryLimit { limit_mib: 16 }, "memory"),
            (RuleError::StackOverflow, "stack"),
            (RuleError::Trap { trap: "unreachable".into(), panic: None }, "trap"),
            (
                RuleError::Trap { trap: "unreachable".into(), panic: Some("panicked at src/lib.rs:3:5: boom".into()) },
                "panic",
            ),
            (RuleError::Returned("trapped: a rule's own words".into()), "returned"),
            (RuleError::Instantiate("x".into()), "instantiate"),
            (RuleError::Verdict("x".into()), "verdict"),
            (RuleError::StateQuota("x".into()), "state"),
            (RuleError::TooManyLists(8), "lists"),
            (RuleError::BudgetSpent, "budget"),
            (RuleError::Quarantined { why: "50 of its last 100 evaluations failed".into() }, "quarantined"),
        ];
        for (error, kind) in cases {
            assert_eq!(RuleError::kind_of(&error.to_string()), kind, "{error}");
            assert!(ERROR_KINDS.contains(&kind));
        }
        assert_eq!(RuleError::kind_of(&format!("{PARAMS_REFUSED}parameter `n`: expected an integer")), "parameter");
    }
}
