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
    /// Shared with the lists: a decision copies no list's name.
    pub list: SharedStr,
    /// The list's content hash, written as 16 lowercase hex digits.
    #[serde(with = "hex_u64")]
    pub version: u64,
}

/// A list's version as decisions write it: 16 lowercase hex digits.
pub mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// `version` as 16 lowercase hex digits, in a buffer of its own.
    pub fn digits(version: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((version >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }

    pub fn serialize<S: Serializer>(version: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        let digits = digits(*version);
        serializer.serialize_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() != 16 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(serde::de::Error::custom("a list version is 16 lowercase hex digits"));
        }
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
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
