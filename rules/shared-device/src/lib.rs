//! Shared device: one device fingerprint used by many accounts.
//!
//! Catches what no single account shows: an account-takeover ring logging
//! into stolen accounts from the same phone, or a mule herder moving money
//! through many accounts from one laptop. A family shares a tablet, so a
//! few accounts on one device are normal; many within a day are not.
//!
//! How: an entity rule (`entity = "device"` in the manifest), so the host
//! lends it the state of the transaction's device, not of its account, and
//! passes transactions without a fingerprint (version 1 events) without
//! running it. The rule adds the account to the device's distinct set
//! `accounts` and counts the accounts last seen on the device within the
//! window, this one included.
//!
//! Parameters:
//! - `window_secs` (integer, default 86400; 1 ..= 31 days): the sliding
//!   window, `(now - window_secs, now]`.
//! - `max_accounts` (integer, default 3, at least 1): the most accounts a
//!   device may see in the window before its transactions are suspected.
//!
//! Returns: `Verdict::suspect("DEVICE_SHARED")` with evidence `device`,
//! `accounts` (how many used it in the window) and `window_secs`; else
//! pass.

use std::time::Duration;

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    window: Duration,
    max_accounts: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::window_secs("window_secs", 86_400).doc("The sliding window, in seconds of event time."),
        Param::integer("max_accounts", 3)
            .range(1, u32::MAX as i64)
            .doc("Suspect when more accounts than this used the device in the window (DEVICE_SHARED)."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config { window: Duration::from_secs(p.param("window_secs")?), max_accounts: p.param("max_accounts")? })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let Some(device) = tx.device_fingerprint() else {
        return Ok(Verdict::pass());
    };
    ctx.distinct_add("accounts", &tx.account_id);
    let accounts = ctx.distinct_count("accounts", config.window);
    if accounts <= config.max_accounts {
        return Ok(Verdict::pass());
    }
    Ok(Verdict::suspect("DEVICE_SHARED", "many accounts used this device within the window")
        .with("device", device)
        .with("accounts", accounts)
        .with("window_secs", config.window.as_secs()))
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    fn harness() -> Harness {
        Harness::new(RULE).manifest(include_str!("../rule.toml"))
    }

    #[test]
    fn the_fourth_account_on_a_device_within_a_day_is_suspected() {
        let mut h = harness();
        for (i, account) in ["acct-a", "acct-b", "acct-c"].into_iter().enumerate() {
            let t = tx().account(account).device_fingerprint("fp-ring").after_secs(600 * i as i64).build();
            assert!(h.run(&t).unwrap().is_pass(), "{account}");
        }
        // The same accounts again change nothing.
        assert!(
            h.run(&tx().account("acct-a").device_fingerprint("fp-ring").after_secs(3_000).build()).unwrap().is_pass()
        );
        let v = h.run(&tx().account("acct-d").device_fingerprint("fp-ring").after_secs(3_600).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "DEVICE_SHARED");
        assert_eq!(v.evidence("accounts"), Some("4"));
        assert_eq!(v.evidence("device"), Some("fp-ring"));
        assert_eq!(v.evidence("window_secs"), Some("86400"));
        // Another device has its own state.
        assert!(
            h.run(&tx().account("acct-d").device_fingerprint("fp-home").after_secs(3_700).build()).unwrap().is_pass()
        );
        assert!(h.entity_state("fp-home").is_some() && h.entity_state("fp-ring").is_some());
    }

    #[test]
    fn accounts_last_seen_outside_the_window_no_longer_count() {
        let mut h = harness();
        for (i, account) in ["acct-a", "acct-b", "acct-c"].into_iter().enumerate() {
            h.run(&tx().account(account).device_fingerprint("fp-1").after_secs(i as i64).build()).unwrap();
        }
        // A day and more later: a, b and c are out of the window.
        let t = tx().account("acct-d").device_fingerprint("fp-1").after_secs(86_400 + 10).build();
        assert!(h.run(&t).unwrap().is_pass());
    }

    #[test]
    fn version_1_events_pass_and_touch_no_device() {
        let mut h = harness();
        assert!(h.run(&tx().build()).unwrap().is_pass());
        assert!(h.entity_state("").is_none());
    }
}
