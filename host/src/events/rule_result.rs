//! [`RuleResult`], one rule's part in a decision, and the vocabulary it is written in: the rule's
//! [`RuleMode`], its [`RuleOutcome`], the [`FailurePolicy`] applied when it failed and the
//! [`Evidence`] behind its verdict. Manifests and the deploy command speak the same words, so
//! they read them from here.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SharedStr;

/// One rule's part in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Shared with the rule's other results (as are `rule_version` and
    /// `version_label`): a decision copies no rule's names.
    pub rule_id: SharedStr,
    /// Content hash of the rule package (component and manifest), `sha256:<64 lowercase hex digits>`.
    pub rule_version: SharedStr,
    /// The version label from the rule's manifest.
    pub version_label: SharedStr,
    pub mode: RuleMode,
    pub outcome: RuleOutcome,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub score: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// For outcome = error: what went wrong (trap, out of fuel, memory limit, rule error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For outcome = error: the failure policy that was applied. Only set on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// The runtime lists the rule read ([`crate::lists`]) that had entries,
    /// each with its version, in the order first read: replaying the input
    /// with the same list versions gives the same result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListVersion>,
}

/// A runtime list a rule read, and the version it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersion {
    pub list: String,
    /// The list's content hash, 16 lowercase hex digits.
    pub version: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Whether a rule's verdict counts (`enforce`) or is only recorded (`shadow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    Enforce,
    Shadow,
}

impl RuleMode {
    /// The wire name, as in a decision and a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::Enforce => "enforce",
            RuleMode::Shadow => "shadow",
        }
    }
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuleMode {
    type Err = UnknownRuleMode;
    fn from_str(s: &str) -> Result<Self, UnknownRuleMode> {
        match s {
            "enforce" => Ok(RuleMode::Enforce),
            "shadow" => Ok(RuleMode::Shadow),
            other => Err(UnknownRuleMode(other.to_owned())),
        }
    }
}

/// A rule mode that is neither `enforce` nor `shadow` (from [`RuleMode`]'s `FromStr`); it holds
/// the text that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode {0:?}: use `enforce` or `shadow`")]
pub struct UnknownRuleMode(pub String);

/// What a rule concluded, or `error` when it could not conclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Pass,
    Score,
    Suspect,
    Lock,
    Error,
}

impl RuleOutcome {
    /// The wire name, as in a decision.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOutcome::Pass => "pass",
            RuleOutcome::Score => "score",
            RuleOutcome::Suspect => "suspect",
            RuleOutcome::Lock => "lock",
            RuleOutcome::Error => "error",
        }
    }
}

impl fmt::Display for RuleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule error does to the decision: `fail-open` (as if the rule passed) or `fail-closed`
/// (as if it suspected the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    #[default]
    FailOpen,
    FailClosed,
}

impl FailurePolicy {
    /// The wire name, as in a decision and a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::FailOpen => "fail-open",
            FailurePolicy::FailClosed => "fail-closed",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name/value pair that explains a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}
