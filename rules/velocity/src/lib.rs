//! Velocity: too many transactions, or too much money, on one account in a
//! short span of event time.
//!
//! Catches a stolen card or a taken-over account being emptied quickly: many
//! purchases or transfers in a row, each unremarkable on its own.
//!
//! How: every transaction adds 1 to the account's `count` series; when a sum
//! limit is configured for the transaction's currency it also adds its amount
//! (negative amounts count as 0) to the series `sum:<CUR>`. Both are read
//! back over the last `window_secs` of event time, this transaction included.
//! Sums are kept per currency and compared only with that currency's limit;
//! currencies without a limit keep no sum series at all.
//!
//! Parameters:
//! - `window_secs` (integer, default 3600; 1 ..= 31 days, the host's series
//!   retention): the sliding window, `(now - window_secs, now]`.
//! - `max_count` (integer, default 10): suspect when more transactions than
//!   this fall in the window.
//! - `max_sum.<CUR>` (table of integers, minor units, optional): suspect when
//!   the window's sum in that currency exceeds the limit.
//! - `lock_count` (integer >= 1, optional): lock when the count reaches it.
//!
//! Returns: `Verdict::lock("VELOCITY_COUNT")` when `count >= lock_count`,
//! else `Verdict::suspect("VELOCITY_COUNT")` when `count > max_count`, else
//! `Verdict::suspect("VELOCITY_SUM")` when `sum > max_sum.<CUR>`, else pass.
//! Evidence: `count`, `max_count` (or `lock_count` for a lock),
//! `window_secs`, and when the currency has a sum limit `currency`, `sum`,
//! `max_sum`.

use std::time::Duration;

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    window: Duration,
    max_count: u32,
    lock_count: Option<u32>,
    /// Sum limits by currency, in minor units. Every entry is checked, so a
    /// mistyped limit for any currency fails at once.
    max_sum: Table<u64>,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::window_secs("window_secs", 3600).doc("The sliding window, in seconds of event time."),
        Param::integer("max_count", 10)
            .range(0, u32::MAX as i64)
            .doc("Suspect (VELOCITY_COUNT) when more transactions than this fall in the window."),
        Param::optional_integer("lock_count")
            .range(1, u32::MAX as i64)
            .doc("Lock the account once this many transactions fall in the window; off when absent."),
        Param::integer_table("max_sum")
            .min(0)
            .doc("Suspect (VELOCITY_SUM) when the window's amounts in a currency add up to more, in minor units."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            window: Duration::from_secs(p.param("window_secs")?),
            max_count: p.param("max_count")?,
            lock_count: p.param_opt("lock_count")?,
            max_sum: p.typed_table("max_sum")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let window = config.window;
    ctx.window_add("count", 1);
    let count = ctx.window_count("count", window);
    let sum = match config.max_sum.get(&tx.amount.currency) {
        None => None,
        Some(&limit) => {
            let series = format!("sum:{}", tx.amount.currency);
            ctx.window_add(&series, tx.amount.minor_units.max(0));
            Some((ctx.window_sum(&series, window), limit))
        }
    };

    let verdict = if let Some(lock_count) = config.lock_count.filter(|&l| count >= l) {
        Verdict::lock("VELOCITY_COUNT", "too many transactions in the window; locking the account")
            .with("count", count)
            .with("lock_count", lock_count)
    } else if count > config.max_count {
        Verdict::suspect("VELOCITY_COUNT", "too many transactions in the window")
            .with("count", count)
            .with("max_count", config.max_count)
    } else if sum.is_some_and(|(sum, limit)| over(sum, limit)) {
        Verdict::suspect("VELOCITY_SUM", "too much money spent in the window")
            .with("count", count)
            .with("max_count", config.max_count)
    } else {
        return Ok(Verdict::pass());
    };
    let verdict = verdict.with("window_secs", window.as_secs());
    Ok(match sum {
        Some((sum, limit)) => verdict.with("currency", &tx.amount.currency).with("sum", sum).with("max_sum", limit),
        None => verdict,
    })
}

/// Whether a window's sum (never negative) is above its limit.
fn over(sum: i64, limit: u64) -> bool {
    u64::try_from(sum).is_ok_and(|sum| sum > limit)
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    /// Runs `n` EUR 10.00 transactions one minute apart, starting at `start`
    /// seconds; asserts they all pass.
    fn quiet(h: &mut Harness, n: i64, start: i64) {
        for i in 0..n {
            let v = h.run(&tx().amount(1_000, "EUR").after_secs(start + 60 * i).build()).unwrap();
            assert!(v.is_pass(), "transaction {i} gave {v:?}");
        }
    }

    #[test]
    fn suspects_the_transaction_after_max_count() {
        let mut h = Harness::new(RULE);
        quiet(&mut h, 10, 0);
        let v = h.run(&tx().after_secs(600).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "VELOCITY_COUNT");
        assert_eq!(v.evidence("count"), Some("11"));
        assert_eq!(v.evidence("max_count"), Some("10"));
        assert_eq!(v.evidence("window_secs"), Some("3600"));
        // No sum limit configured: no sum evidence.
        assert_eq!(v.evidence("sum"), None);
    }

    #[test]
    fn count_boundary_with_a_small_max() {
        let mut h = Harness::new(RULE).param("max_count", 3);
        quiet(&mut h, 3, 0);
        let v = h.run(&tx().after_secs(180).build()).unwrap();
        assert_eq!(v.reason_code, "VELOCITY_COUNT");
        assert_eq!(v.evidence("count"), Some("4"));
    }

    #[test]
    fn window_expires_in_event_time() {
        let mut h = Harness::new(RULE).param("max_count", 3).param("window_secs", 600);
        quiet(&mut h, 3, 0); // at 0, 60, 120 s
        // At 600 s the window is (0, 600]: the point at 0 s has left it.
        assert!(h.run(&tx().after_secs(600).build()).unwrap().is_pass());
        // At 660 s: (60, 660] holds 120, 600 and 660 only.
        assert!(h.run(&tx().after_secs(660).build()).unwrap().is_pass());
        // At 719 s: (119, 719] holds 120, 600, 660, 719.
        let v = h.run(&tx().after_secs(719).build()).unwrap();
        assert_eq!(v.reason_code, "VELOCITY_COUNT");
        assert_eq!(v.evidence("count"), Some("4"));
        assert_eq!(v.evidence("window_secs"), Some("600"));
    }

    #[test]
    fn suspects_when_the_sum_exceeds_the_currency_limit() {
        let mut h = Harness::new(RULE).param("max_sum.EUR", 100_000);
        assert!(h.run(&tx().amount(60_000, "EUR").build()).unwrap().is_pass());
        // Exactly at the limit passes.
        assert!(h.run(&tx().amount(40_000, "EUR").after_secs(60).build()).unwrap().is_pass());
        let v = h.run(&tx().amount(1, "EUR").after_secs(120).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "VELOCITY_SUM");
        assert_eq!(v.evidence("sum"), Some("100001"));
        assert_eq!(v.evidence("max_sum"), Some("100000"));
        assert_eq!(v.evidence("currency"), Some("EUR"));
        assert_eq!(v.evidence("count"), Some("3"));
        assert_eq!(v.evidence("window_secs"), Some("3600"));
    }

    #[test]
    fn sums_are_kept_per_currency() {
        let mut h = Harness::new(RULE).param("max_sum.EUR", 100_000).param("max_sum.USD", 100_000);
        assert!(h.run(&tx().amount(90_000, "EUR").build()).unwrap().is_pass());
        assert!(h.run(&tx().amount(90_000, "USD").after_secs(60).build()).unwrap().is_pass());
        // Currencies without a limit are not summed and never trip the rule.
        assert!(h.run(&tx().amount(9_000_000, "GBP").after_secs(90).build()).unwrap().is_pass());
        let v = h.run(&tx().amount(10_001, "USD").after_secs(120).build()).unwrap();
        assert_eq!(v.reason_code, "VELOCITY_SUM");
        assert_eq!(v.evidence("currency"), Some("USD"));
        assert_eq!(v.evidence("sum"), Some("100001"));
    }

    #[test]
    fn refunds_do_not_lower_the_sum() {
        let mut h = Harness::new(RULE).param("max_sum.EUR", 100_000);
        assert!(h.run(&tx().amount(-50_000, "EUR").build()).unwrap().is_pass());
        assert!(h.run(&tx().amount(100_000, "EUR").after_secs(1).build()).unwrap().is_pass());
        let v = h.run(&tx().amount(1, "EUR").after_secs(2).build()).unwrap();
        assert_eq!(v.evidence("sum"), Some("100001"));
    }

    #[test]
    fn sum_window_expires_in_event_time() {
        let mut h = Harness::new(RULE).param("max_sum.EUR", 100_000).param("window_secs", 3600);
        assert!(h.run(&tx().amount(100_000, "EUR").build()).unwrap().is_pass());
        assert_eq!(h.run(&tx().amount(1, "EUR").after_secs(3599).build()).unwrap().reason_code, "VELOCITY_SUM");
        // At 3600 s the first point is out: 1 + 1.
        assert!(h.run(&tx().amount(1, "EUR").after_secs(3600).build()).unwrap().is_pass());
    }

    #[test]
    fn count_takes_precedence_and_carries_the_sum() {
        let mut h = Harness::new(RULE).param("max_count", 1).param("max_sum.EUR", 100);
        assert!(h.run(&tx().amount(50, "EUR").build()).unwrap().is_pass());
        let v = h.run(&tx().amount(500, "EUR").after_secs(1).build()).unwrap();
        assert_eq!(v.reason_code, "VELOCITY_COUNT");
        assert_eq!(v.evidence("sum"), Some("550"));
        assert_eq!(v.evidence("max_sum"), Some("100"));
    }

    #[test]
    fn locks_when_lock_count_is_reached() {
        let mut h = Harness::new(RULE).param("max_count", 3).param("lock_count", 5);
        quiet(&mut h, 3, 0);
        assert_eq!(h.run(&tx().after_secs(180).build()).unwrap().outcome, Outcome::Suspect);
        let v = h.run(&tx().after_secs(240).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.reason_code, "VELOCITY_COUNT");
        assert_eq!(v.evidence("count"), Some("5"));
        assert_eq!(v.evidence("lock_count"), Some("5"));
        assert_eq!(v.evidence("window_secs"), Some("3600"));
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let run = |h: Harness| h.param("max_count", 3).run(&tx().build()).unwrap_err().message().to_owned();
        let cases = [
            (Harness::new(RULE).param("window_secs", "1h"), "`window_secs`"),
            (Harness::new(RULE).param("window_secs", 0), "`window_secs`"),
            (Harness::new(RULE).param("window_secs", 40 * 24 * 3600), "`window_secs`"),
            (Harness::new(RULE).param("lock_count", true), "`lock_count`"),
            (Harness::new(RULE).param("lock_count", 0), "`lock_count`"),
            (Harness::new(RULE).param("max_sum.USD", "x"), "`max_sum.USD`"),
        ];
        for (h, name) in cases {
            let message = run(h);
            assert!(message.contains(name), "{message:?} should name {name}");
        }
        let err = Harness::new(RULE).param("max_count", -1).run(&tx().build()).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `max_count`: expected an integer in 0..=4294967295, found an integer (-1)"
        );
    }
}
