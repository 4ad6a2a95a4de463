//! Mule beneficiary: one account receiving transfers from many senders it
//! never dealt with before.
//!
//! Catches the collecting end of a scam or a cash-out: a mule account is
//! paid by victim after victim, each paying it for the first time. Each
//! sender's own history looks ordinary (one transfer to someone new); only
//! the beneficiary's side shows the pattern.
//!
//! How: an entity rule (`entity = "counterparty"` in the manifest), so the
//! host lends it the state of the account the transfer goes to and passes
//! transactions without a counterparty (purchases, version 1 and 2 events)
//! without running it. A sender is new when it is not in the beneficiary's
//! distinct set `senders` (which keeps senders for 31 days of event time,
//! at most 4096 of them); a new sender adds a point to the series
//! `new_senders`. The transfer of a new sender is suspected when the new
//! senders in the window, this one included, are more than the maximum: the
//! customer is warned before paying a beneficiary that other new senders
//! have just paid. Senders who paid before pass.
//!
//! Parameters:
//! - `window_secs` (integer, default 604800 = 7 days; 1 ..= 31 days): the
//!   sliding window, `(now - window_secs, now]`.
//! - `max_new_senders` (integer, default 3, at least 1): the most new
//!   senders a beneficiary may have in the window.
//!
//! Returns: `Verdict::suspect("MULE_BENEFICIARY")` with evidence
//! `beneficiary`, `new_senders` and `window_secs`; else pass.

use std::time::Duration;

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    window: Duration,
    max_new_senders: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::window_secs("window_secs", 604_800).doc("The sliding window, in seconds of event time."),
        Param::integer("max_new_senders", 3)
            .range(1, u32::MAX as i64)
            .doc("Suspect a new sender's transfer when more new senders than this paid the beneficiary in the window (MULE_BENEFICIARY)."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            window: Duration::from_secs(p.param("window_secs")?),
            max_new_senders: p.param("max_new_senders")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let Some(beneficiary) = tx.counterparty_account() else {
        return Ok(Verdict::pass());
    };
    let new = ctx.last_seen("senders", &tx.account_id).is_none();
    ctx.distinct_add("senders", &tx.account_id);
    if !new {
        return Ok(Verdict::pass());
    }
    ctx.window_add("new_senders", 1);
    let new_senders = ctx.window_count("new_senders", config.window);
    if new_senders <= config.max_new_senders {
        return Ok(Verdict::pass());
    }
    Ok(Verdict::suspect("MULE_BENEFICIARY", "many new senders paid this beneficiary within the window")
        .with("beneficiary", beneficiary)
        .with("new_senders", new_senders)
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

    fn transfer(from: &str, to: &str, after_secs: i64) -> weir_sdk::Transaction {
        tx().account(from).counterparty_account(to).after_secs(after_secs).build()
    }

    #[test]
    fn the_fourth_new_sender_within_a_week_is_suspected() {
        let mut h = harness();
        for (i, from) in ["acct-a", "acct-b", "acct-c"].into_iter().enumerate() {
            assert!(h.run(&transfer(from, "acct-mule", 3_600 * i as i64)).unwrap().is_pass(), "{from}");
        }
        // A sender who paid before is no new sender, and passes.
        assert!(h.run(&transfer("acct-a", "acct-mule", 20_000)).unwrap().is_pass());
        let v = h.run(&transfer("acct-d", "acct-mule", 86_400)).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "MULE_BENEFICIARY");
        assert_eq!(v.evidence("new_senders"), Some("4"));
        assert_eq!(v.evidence("beneficiary"), Some("acct-mule"));
        // Another beneficiary has its own senders.
        assert!(h.run(&transfer("acct-d", "acct-landlord", 86_500)).unwrap().is_pass());
    }

    #[test]
    fn new_senders_older_than_the_window_no_longer_count() {
        let mut h = harness();
        for (i, from) in ["acct-a", "acct-b", "acct-c"].into_iter().enumerate() {
            h.run(&transfer(from, "acct-payee", i as i64)).unwrap();
        }
        assert!(h.run(&transfer("acct-d", "acct-payee", 604_800 + 10)).unwrap().is_pass());
    }

    #[test]
    fn purchases_pass_and_touch_no_beneficiary() {
        let mut h = harness();
        assert!(h.run(&tx().build()).unwrap().is_pass());
        assert!(h.entity_state("acct-1029").is_none());
    }
}
