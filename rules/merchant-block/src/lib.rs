//! Merchant block: transactions at merchants or merchant categories the bank
//! has blocked.
//!
//! Catches payments to merchants known to be fraudulent (a fake web shop, a
//! compromised terminal) and to categories the bank or customer does not
//! allow, e.g. MCC 7995 (betting and casino gambling).
//!
//! How: the merchant id and the ISO 18245 category code are looked up, by
//! exact match, in lists from the manifest. The lists are read once per rule
//! instance, and no account state is touched.
//!
//! A customer's confirmation clears a category block for that merchant: once
//! the customer has answered a `FraudSuspected` with "it was me" for a
//! purchase at a merchant, the host marks the account's later transactions
//! there (`tx.merchant_confirmed_by_customer()`), and the category no longer
//! raises suspicion at that merchant, so a customer who bets at one betting
//! site is asked once, not at every bet. A merchant on the block list stays
//! blocked whatever the customer says: that list names merchants known to be
//! fraudulent.
//!
//! Parameters:
//! - `blocked_merchants` (list of strings, default empty): merchant ids.
//! - `blocked_categories` (list of strings, default empty): category codes.
//! - `action` (`"suspect"` or `"lock"`, default `"suspect"`): what a match
//!   does.
//! - `customer_confirmation_clears_category` (boolean, default true): whether
//!   a merchant the customer confirmed is exempt from the category block.
//!
//! Returns: `Verdict::suspect` or `Verdict::lock` (per `action`) with reason
//! `BLOCKED_MERCHANT` (checked first) and evidence `merchant`, or reason
//! `BLOCKED_CATEGORY` and evidence `category`; both add `merchant`. Otherwise
//! pass.

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    merchants: Vec<String>,
    categories: Vec<String>,
    lock: bool,
    confirmation_clears: bool,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::text_list("blocked_merchants", &[]).doc("Merchant ids (BLOCKED_MERCHANT), exact match."),
        Param::text_list("blocked_categories", &[])
            .doc("ISO 18245 category codes (BLOCKED_CATEGORY), exact match; 7995 is betting and casino gambling."),
        Param::choice("action", &["suspect", "lock"], "suspect").doc("What a match does."),
        Param::boolean("customer_confirmation_clears_category", true)
            .doc("A merchant the customer confirmed a purchase at is exempt from the category block."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            merchants: p.param("blocked_merchants")?,
            categories: p.param("blocked_categories")?,
            lock: p.param::<String>("action")? == "lock",
            confirmation_clears: p.param("customer_confirmation_clears_category")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, _: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let verdict = |reason_code, message: &str| {
        if config.lock { Verdict::lock(reason_code, message) } else { Verdict::suspect(reason_code, message) }
    };

    let merchant = &tx.merchant;
    if config.merchants.contains(&merchant.id) {
        return Ok(verdict("BLOCKED_MERCHANT", "merchant is on the block list").with("merchant", &merchant.id));
    }
    if config.categories.contains(&merchant.category_code)
        && !(config.confirmation_clears && tx.merchant_confirmed_by_customer())
    {
        return Ok(verdict("BLOCKED_CATEGORY", "merchant category is blocked")
            .with("category", &merchant.category_code)
            .with("merchant", &merchant.id));
    }
    Ok(Verdict::pass())
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    fn harness() -> Harness {
        Harness::new(RULE)
            .param("blocked_merchants", ["m-fakeshop", "m-skimmed-pos"])
            .param("blocked_categories", ["7995"])
    }

    #[test]
    fn suspects_a_blocked_merchant() {
        let v = harness().run(&tx().merchant("m-fakeshop", "5732").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "BLOCKED_MERCHANT");
        assert_eq!(v.evidence("merchant"), Some("m-fakeshop"));
        assert_eq!(v.evidence("category"), None);
    }

    #[test]
    fn suspects_a_blocked_category() {
        let v = harness().run(&tx().merchant("m-casino", "7995").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "BLOCKED_CATEGORY");
        assert_eq!(v.evidence("category"), Some("7995"));
        assert_eq!(v.evidence("merchant"), Some("m-casino"));
    }

    #[test]
    fn the_merchant_is_checked_before_the_category() {
        let v = harness().run(&tx().merchant("m-skimmed-pos", "7995").build()).unwrap();
        assert_eq!(v.reason_code, "BLOCKED_MERCHANT");
    }

    #[test]
    fn a_confirmed_merchant_is_exempt_from_the_category_block() {
        let mut h = harness();
        let bet = || tx().merchant("m-luckybets", "7995");
        assert_eq!(h.run(&bet().build()).unwrap().reason_code, "BLOCKED_CATEGORY");
        // The customer said "it was me": the host marks later bets there.
        assert!(h.run(&bet().merchant_confirmed_by_customer().after_secs(60).build()).unwrap().is_pass());
        // Another betting site is still suspected.
        let other = tx().merchant("m-spinpalace", "7995").after_secs(120).build();
        assert_eq!(h.run(&other).unwrap().reason_code, "BLOCKED_CATEGORY");
    }

    #[test]
    fn a_confirmation_does_not_clear_a_blocked_merchant() {
        let v = harness().run(&tx().merchant("m-fakeshop", "7995").merchant_confirmed_by_customer().build()).unwrap();
        assert_eq!(v.reason_code, "BLOCKED_MERCHANT");
    }

    #[test]
    fn the_exemption_can_be_turned_off() {
        let mut h = harness().param("customer_confirmation_clears_category", false);
        let v = h.run(&tx().merchant("m-luckybets", "7995").merchant_confirmed_by_customer().build()).unwrap();
        assert_eq!(v.reason_code, "BLOCKED_CATEGORY");
    }

    #[test]
    fn a_producer_attribute_is_not_a_confirmation() {
        // Only the exact value the host sets counts.
        let v = harness()
            .run(&tx().merchant("m-luckybets", "7995").attribute("weir.customer_confirmed_merchant", "yes").build())
            .unwrap();
        assert_eq!(v.reason_code, "BLOCKED_CATEGORY");
    }

    #[test]
    fn everything_else_passes() {
        let mut h = harness();
        // The story's concert tickets.
        assert!(h.run(&tx().build()).unwrap().is_pass());
        // Exact matches only: no prefixes, no case folding.
        assert!(h.run(&tx().merchant("m-fakeshop2", "799").build()).unwrap().is_pass());
        assert!(h.run(&tx().merchant("M-FAKESHOP", "79950").build()).unwrap().is_pass());
    }

    #[test]
    fn no_lists_means_nothing_is_blocked() {
        assert!(Harness::new(RULE).run(&tx().merchant("m-fakeshop", "7995").build()).unwrap().is_pass());
    }

    #[test]
    fn action_lock_locks() {
        let mut h = harness().param("action", "lock");
        assert_eq!(h.run(&tx().merchant("m-fakeshop", "5732").build()).unwrap().outcome, Outcome::Lock);
        let v = h.run(&tx().merchant("m-casino", "7995").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.reason_code, "BLOCKED_CATEGORY");
        assert_eq!(
            harness().param("action", "suspect").run(&tx().merchant("m-casino", "7995").build()).unwrap().outcome,
            Outcome::Suspect
        );
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let err = harness().param("action", "block").run(&tx().build()).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `action`: expected one of \"suspect\", \"lock\", found a string (\"block\")"
        );
        let err = harness().param("action", true).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("`action`"));
        let err = harness().param("blocked_merchants", "m-fakeshop").run(&tx().build()).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `blocked_merchants`: expected a list of strings, found a string (\"m-fakeshop\")"
        );
        let err = harness().param("blocked_categories", 7995).run(&tx().build()).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `blocked_categories`: expected a list of strings, found an integer (7995)"
        );
    }
}
