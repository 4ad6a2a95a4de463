//! Card testing: a few tiny "probe" payments, then a large purchase.
//!
//! Catches the usual way stolen card numbers are used: the fraudster first
//! checks that the card works with several tiny transactions (often at a
//! donation page or a small web shop), then cashes out with a large one.
//!
//! How: every tiny transaction (`0 <= amount <= tiny_max`) adds a point to
//! the account's `tiny` series. A large transaction (`amount >= large_min`)
//! counts the tiny ones in the last `window_secs` of event time; a tiny one
//! counts them too, itself included. Transactions in between make no host
//! calls at all. Thresholds are in the transaction's own minor units and
//! apply to every currency; the count of tiny transactions spans currencies,
//! because probes and cash-out need not share one.
//!
//! Parameters:
//! - `tiny_max` (integer, default 200): the largest amount that is a probe.
//! - `large_min` (integer, default 10000, must exceed `tiny_max`): the
//!   smallest amount that is a cash-out.
//! - `window_secs` (integer, default 600; 1 ..= 31 days): how far back probes
//!   count, `(now - window_secs, now]`.
//! - `min_tiny` (integer >= 1, default 3): probes before a large transaction
//!   that lock the account.
//! - `suspect_tiny` (integer >= 1, default 5): probes (this one included)
//!   that make a tiny transaction suspect on their own.
//!
//! Returns: `Verdict::lock("CARD_TESTING")` for a large transaction after
//! at least `min_tiny` probes; `Verdict::suspect("CARD_TESTING_PROBES")` for
//! the probe that brings the count to `suspect_tiny` or more; else pass.
//! Evidence: `tiny_count`, `window_secs`, `amount`, `currency`, and the
//! threshold reached (`min_tiny` or `suspect_tiny`).

use std::time::Duration;

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    tiny_max: i64,
    large_min: i64,
    window: Duration,
    min_tiny: u32,
    suspect_tiny: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::integer("tiny_max", 200).min(0).doc("A transaction of 0 up to this amount (minor units) is a probe."),
        Param::integer("large_min", 10_000)
            .min(0)
            .doc("A transaction of at least this amount (minor units) is a cash-out; must exceed tiny_max."),
        Param::window_secs("window_secs", 600).doc("How far back probes count, in seconds of event time."),
        Param::integer("min_tiny", 3)
            .range(1, u32::MAX as i64)
            .doc("Lock (CARD_TESTING) on a cash-out after at least this many probes."),
        Param::integer("suspect_tiny", 5)
            .range(1, u32::MAX as i64)
            .doc("Suspect (CARD_TESTING_PROBES) the probe that brings the count to this."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        let tiny_max = p.param("tiny_max")?;
        let large_min = p.param("large_min")?;
        if large_min <= tiny_max {
            return Err(Error::msg(format!(
                "parameter `large_min`: must exceed `tiny_max` ({tiny_max}), found {large_min}"
            )));
        }
        Ok(Config {
            tiny_max,
            large_min,
            window: Duration::from_secs(p.param("window_secs")?),
            min_tiny: p.param("min_tiny")?,
            suspect_tiny: p.param("suspect_tiny")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let amount = tx.amount.minor_units;
    let window = config.window;
    let verdict = if (0..=config.tiny_max).contains(&amount) {
        ctx.window_add("tiny", 1);
        let tiny_count = ctx.window_count("tiny", window);
        if tiny_count < config.suspect_tiny {
            return Ok(Verdict::pass());
        }
        Verdict::suspect("CARD_TESTING_PROBES", "many tiny transactions in a short time, as when testing a card")
            .with("tiny_count", tiny_count)
            .with("suspect_tiny", config.suspect_tiny)
    } else if amount >= config.large_min {
        let tiny_count = ctx.window_count("tiny", window);
        if tiny_count < config.min_tiny {
            return Ok(Verdict::pass());
        }
        Verdict::lock("CARD_TESTING", "large transaction right after tiny test transactions")
            .with("tiny_count", tiny_count)
            .with("min_tiny", config.min_tiny)
    } else {
        return Ok(Verdict::pass());
    };
    Ok(verdict.with("window_secs", window.as_secs()).with("amount", amount).with("currency", &tx.amount.currency))
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    /// Runs `n` probes of `amount` EUR minor units, 30 s apart from `start`.
    fn probes(h: &mut Harness, n: i64, amount: i64, start: i64) {
        for i in 0..n {
            let v = h.run(&tx().amount(amount, "EUR").after_secs(start + 30 * i).build()).unwrap();
            assert!(v.is_pass(), "probe {i} gave {v:?}");
        }
    }

    #[test]
    fn locks_a_large_purchase_after_three_probes() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 3, 100, 0);
        let v = h.run(&tx().amount(25_000, "EUR").after_secs(120).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.reason_code, "CARD_TESTING");
        assert_eq!(v.evidence("tiny_count"), Some("3"));
        assert_eq!(v.evidence("min_tiny"), Some("3"));
        assert_eq!(v.evidence("window_secs"), Some("600"));
        assert_eq!(v.evidence("amount"), Some("25000"));
        assert_eq!(v.evidence("currency"), Some("EUR"));
    }

    #[test]
    fn two_probes_are_not_enough() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 2, 100, 0);
        assert!(h.run(&tx().amount(25_000, "EUR").after_secs(120).build()).unwrap().is_pass());
    }

    #[test]
    fn tiny_max_is_inclusive() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 2, 200, 0);
        probes(&mut h, 1, 201, 60);
        assert!(h.run(&tx().amount(10_000, "EUR").after_secs(120).build()).unwrap().is_pass());
        probes(&mut h, 1, 200, 150);
        assert_eq!(h.run(&tx().amount(10_000, "EUR").after_secs(180).build()).unwrap().outcome, Outcome::Lock);
    }

    #[test]
    fn large_min_is_inclusive() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 3, 1, 0);
        assert!(h.run(&tx().amount(9_999, "EUR").after_secs(100).build()).unwrap().is_pass());
        assert_eq!(h.run(&tx().amount(10_000, "EUR").after_secs(110).build()).unwrap().outcome, Outcome::Lock);
    }

    #[test]
    fn probes_expire_in_event_time() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 3, 50, 0); // at 0, 30, 60 s
        // At 600 s the window is (0, 600]: the first probe has left it.
        assert!(h.run(&tx().amount(50_000, "EUR").after_secs(600).build()).unwrap().is_pass());

        let mut h = Harness::new(RULE);
        probes(&mut h, 3, 50, 0);
        let v = h.run(&tx().amount(50_000, "EUR").after_secs(599).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
    }

    #[test]
    fn probes_in_any_currency_count() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 1, 100, 0);
        assert!(h.run(&tx().amount(100, "USD").after_secs(10).build()).unwrap().is_pass());
        assert!(h.run(&tx().amount(0, "GBP").after_secs(20).build()).unwrap().is_pass());
        let v = h.run(&tx().amount(20_000, "USD").after_secs(30).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.evidence("currency"), Some("USD"));
    }

    #[test]
    fn refunds_are_not_probes() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 3, -100, 0);
        assert!(h.run(&tx().amount(25_000, "EUR").after_secs(120).build()).unwrap().is_pass());
    }

    #[test]
    fn the_fifth_probe_is_suspected() {
        let mut h = Harness::new(RULE);
        probes(&mut h, 4, 100, 0);
        let v = h.run(&tx().amount(100, "EUR").after_secs(120).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "CARD_TESTING_PROBES");
        assert_eq!(v.evidence("tiny_count"), Some("5"));
        assert_eq!(v.evidence("suspect_tiny"), Some("5"));
        assert_eq!(v.evidence("amount"), Some("100"));
        // A mid-sized transaction is neither a probe nor a cash-out.
        assert!(h.run(&tx().amount(5_000, "EUR").after_secs(130).build()).unwrap().is_pass());
        // The next probe is suspected too.
        assert_eq!(h.run(&tx().amount(100, "EUR").after_secs(140).build()).unwrap().evidence("tiny_count"), Some("6"));
    }

    #[test]
    fn thresholds_come_from_parameters() {
        let mut h = Harness::new(RULE)
            .param("tiny_max", 500)
            .param("large_min", 2_000)
            .param("min_tiny", 1)
            .param("window_secs", 60);
        probes(&mut h, 1, 500, 0);
        assert!(h.run(&tx().amount(2_000, "EUR").after_secs(60).build()).unwrap().is_pass());
        probes(&mut h, 1, 500, 100);
        let v = h.run(&tx().amount(2_000, "EUR").after_secs(159).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.evidence("window_secs"), Some("60"));
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let cases = [
            (Harness::new(RULE).param("tiny_max", "2.00"), "`tiny_max`"),
            (Harness::new(RULE).param("tiny_max", -1), "`tiny_max`"),
            (Harness::new(RULE).param("large_min", 200), "`large_min`"),
            (Harness::new(RULE).param("window_secs", 1.5), "`window_secs`"),
            (Harness::new(RULE).param("window_secs", 0), "`window_secs`"),
            (Harness::new(RULE).param("min_tiny", 0), "`min_tiny`"),
            (Harness::new(RULE).param("suspect_tiny", "five"), "`suspect_tiny`"),
        ];
        for (mut h, name) in cases {
            let err = h.run(&tx().build()).unwrap_err();
            assert!(err.message().contains(name), "{:?} should name {name}", err.message());
        }
    }
}
