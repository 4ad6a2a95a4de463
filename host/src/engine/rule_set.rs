//! [`RuleSet`]: an immutable, ordered set of loaded rules, one version of
//! each rule id.
//!
//! Swapping rules means building a new set; the rules themselves are
//! shared, so sets that differ in one rule share the compiled code of the
//! others.

use std::sync::Arc;

use super::{LoadError, LoadedRule};

/// An ordered set of rules, one version per id.
#[derive(Clone, Default)]
pub struct RuleSet {
    rules: Vec<Arc<LoadedRule>>,
}

impl RuleSet {
    pub fn new(rules: Vec<LoadedRule>) -> Result<RuleSet, LoadError> {
        RuleSet::from_shared(rules.into_iter().map(Arc::new).collect())
    }

    /// A set of rules that other sets may share (one compiled copy each).
    pub fn from_shared(mut rules: Vec<Arc<LoadedRule>>) -> Result<RuleSet, LoadError> {
        rules.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        if let Some(w) = rules.windows(2).find(|w| w[0].spec.id == w[1].spec.id) {
            return Err(LoadError::DuplicateId(w[0].spec.id.clone()));
        }
        Ok(RuleSet { rules })
    }

    pub fn rules(&self) -> &[Arc<LoadedRule>] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
