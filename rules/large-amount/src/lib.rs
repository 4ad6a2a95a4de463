//! Large amount: one transaction far above what is normal for its currency.
//!
//! Catches the cash-out of a stolen card or a taken-over account: a single
//! purchase or transfer much larger than the bank expects. The rule looks at
//! the transaction alone, so it needs no account state and makes no host
//! calls beyond reading its parameters.
//!
//! How: the amount (integer minor units) is compared with thresholds for the
//! transaction's own currency; currencies are never converted or mixed. A
//! threshold is crossed when the amount is strictly above it.
//!
//! Parameters (all thresholds in minor units of the currency they name):
//! - `suspect_over.<CUR>` (table of integers): suspect above this amount,
//!   e.g. `[params.suspect_over] EUR = 500000`.
//! - `default_suspect_over` (integer, optional): the suspect threshold for
//!   currencies missing from `suspect_over`; without it they pass.
//! - `lock_over.<CUR>` (table of integers, optional) and `default_lock_over`
//!   (integer, optional): the same for locking the account; checked first.
//! - `score_from_percent` (integer 1..=100, optional): amounts above this
//!   percentage of the suspect threshold, but not above the threshold, add
//!   `score_points` (integer, default 20) to the risk score.
//!
//! Parameters are read and checked once per rule instance: every entry of
//! the threshold tables, not only the one for the transaction's currency,
//! so a mistyped entry fails every evaluation, from the first.
//!
//! Returns: `Verdict::lock("LARGE_AMOUNT")` over the lock threshold,
//! `Verdict::suspect("LARGE_AMOUNT")` over the suspect threshold,
//! `Verdict::score(score_points, "NEAR_LARGE_AMOUNT")` near it, else pass.
//! Evidence: `amount`, `currency`, `threshold` (the threshold crossed; for a
//! score, the suspect threshold) and, for a score, `percent`.

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance; thresholds are
/// minor units.
pub struct Config {
    lock_over: Table<u64>,
    default_lock_over: Option<u64>,
    suspect_over: Table<u64>,
    default_suspect_over: Option<u64>,
    near: Option<Near>,
}

/// Scoring amounts near the suspect threshold.
struct Near {
    percent: i64,
    points: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::integer_table("suspect_over")
            .min(0)
            .doc("Suspect (LARGE_AMOUNT) when the amount is strictly above this, per currency, in minor units."),
        Param::integer_table("lock_over")
            .min(0)
            .doc("Lock (LARGE_AMOUNT) above this, per currency, in minor units; checked before suspect_over."),
        Param::optional_integer("default_suspect_over")
            .min(0)
            .doc("suspect_over for currencies missing from its table; without it they pass."),
        Param::optional_integer("default_lock_over")
            .min(0)
            .doc("lock_over for currencies missing from its table; without it they are never locked."),
        Param::optional_integer("score_from_percent")
            .range(1, 100)
            .doc("Score (NEAR_LARGE_AMOUNT) amounts above this percentage of the suspect threshold; off when absent."),
        Param::integer("score_points", 20).range(0, u32::MAX as i64).doc("Risk-score points for NEAR_LARGE_AMOUNT."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            lock_over: p.typed_table("lock_over")?,
            default_lock_over: p.param_opt("default_lock_over")?,
            suspect_over: p.typed_table("suspect_over")?,
            default_suspect_over: p.param_opt("default_suspect_over")?,
            near: match p.param_opt("score_from_percent")? {
                None => None,
                Some(percent) => Some(Near { percent, points: p.param("score_points")? }),
            },
        })
    }
}

pub fn evaluate(tx: &Transaction, _: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let amount = tx.amount.minor_units;
    let currency = tx.amount.currency.as_str();

    if let Some(lock_over) = threshold(&config.lock_over, config.default_lock_over, currency)
        && above(amount, lock_over)
    {
        return Ok(evidence(Verdict::lock("LARGE_AMOUNT", "amount above the lock threshold"), tx, lock_over));
    }

    let Some(suspect_over) = threshold(&config.suspect_over, config.default_suspect_over, currency) else {
        return Ok(Verdict::pass());
    };
    if above(amount, suspect_over) {
        return Ok(evidence(Verdict::suspect("LARGE_AMOUNT", "amount above the suspect threshold"), tx, suspect_over));
    }

    // amount > suspect_over * percent / 100, without rounding or overflow.
    if let Some(near) = &config.near
        && i128::from(amount) * 100 > i128::from(suspect_over) * i128::from(near.percent)
    {
        let verdict = Verdict::score(near.points, "NEAR_LARGE_AMOUNT", "amount close to the suspect threshold");
        return Ok(evidence(verdict, tx, suspect_over).with("percent", near.percent));
    }

    Ok(Verdict::pass())
}

/// The threshold for `currency` from its table, else the default, else none.
fn threshold(table: &Table<u64>, default: Option<u64>, currency: &str) -> Option<u64> {
    table.get(currency).copied().or(default)
}

/// Whether `amount` is strictly above `threshold` (a refund never is).
fn above(amount: i64, threshold: u64) -> bool {
    u64::try_from(amount).is_ok_and(|amount| amount > threshold)
}

fn evidence(verdict: Verdict, tx: &Transaction, threshold: u64) -> Verdict {
    verdict.with("amount", tx.amount.minor_units).with("currency", &tx.amount.currency).with("threshold", threshold)
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    /// The production thresholds from `rule.toml`.
    fn harness() -> Harness {
        Harness::new(RULE)
            .param("suspect_over.EUR", 500_000)
            .param("suspect_over.USD", 550_000)
            .param("suspect_over.GBP", 450_000)
    }

    #[test]
    fn suspects_strictly_above_the_currency_threshold() {
        let mut h = harness();
        assert!(h.run(&tx().amount(499_999, "EUR").build()).unwrap().is_pass());
        assert!(h.run(&tx().amount(500_000, "EUR").build()).unwrap().is_pass());
        let v = h.run(&tx().amount(500_001, "EUR").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "LARGE_AMOUNT");
        assert_eq!(v.evidence("amount"), Some("500001"));
        assert_eq!(v.evidence("currency"), Some("EUR"));
        assert_eq!(v.evidence("threshold"), Some("500000"));
    }

    #[test]
    fn each_currency_uses_its_own_threshold() {
        let mut h = harness();
        // 5 200.00 is over the EUR threshold but under the USD one.
        assert!(h.run(&tx().amount(520_000, "USD").build()).unwrap().is_pass());
        assert_eq!(h.run(&tx().amount(520_000, "EUR").build()).unwrap().outcome, Outcome::Suspect);
        assert!(h.run(&tx().amount(450_000, "GBP").build()).unwrap().is_pass());
        let v = h.run(&tx().amount(450_001, "GBP").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.evidence("threshold"), Some("450000"));
    }

    #[test]
    fn unlisted_currency_passes_without_a_default() {
        let v = harness().run(&tx().amount(1_000_000_000, "JPY").build()).unwrap();
        assert!(v.is_pass());
    }

    #[test]
    fn unlisted_currency_uses_the_default() {
        let mut h = harness().param("default_suspect_over", 100_000_000);
        assert!(h.run(&tx().amount(100_000_000, "JPY").build()).unwrap().is_pass());
        let v = h.run(&tx().amount(100_000_001, "JPY").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.evidence("threshold"), Some("100000000"));
        // A listed currency keeps its own threshold.
        assert_eq!(h.run(&tx().amount(500_001, "EUR").build()).unwrap().outcome, Outcome::Suspect);
    }

    #[test]
    fn locks_above_the_lock_threshold() {
        let mut h = harness().param("lock_over.EUR", 2_000_000);
        assert_eq!(h.run(&tx().amount(2_000_000, "EUR").build()).unwrap().outcome, Outcome::Suspect);
        let v = h.run(&tx().amount(2_000_001, "EUR").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Lock);
        assert_eq!(v.reason_code, "LARGE_AMOUNT");
        assert_eq!(v.evidence("threshold"), Some("2000000"));
        // No lock threshold for USD and no default: only suspect.
        assert_eq!(h.run(&tx().amount(9_000_000, "USD").build()).unwrap().outcome, Outcome::Suspect);
    }

    #[test]
    fn default_lock_threshold_applies_to_unlisted_currencies() {
        let mut h = harness().param("lock_over.EUR", 2_000_000).param("default_lock_over", 3_000_000);
        assert_eq!(h.run(&tx().amount(3_000_001, "USD").build()).unwrap().outcome, Outcome::Lock);
        assert_eq!(h.run(&tx().amount(3_000_000, "USD").build()).unwrap().outcome, Outcome::Suspect);
        // Locks even where there is no suspect threshold at all.
        assert_eq!(h.run(&tx().amount(3_000_001, "CHF").build()).unwrap().outcome, Outcome::Lock);
        assert!(h.run(&tx().amount(3_000_000, "CHF").build()).unwrap().is_pass());
    }

    #[test]
    fn scores_amounts_near_the_threshold() {
        let mut h = harness().param("score_from_percent", 80).param("score_points", 25);
        // 80% of 500 000 is 400 000.
        assert!(h.run(&tx().amount(400_000, "EUR").build()).unwrap().is_pass());
        let v = h.run(&tx().amount(400_001, "EUR").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(25));
        assert_eq!(v.reason_code, "NEAR_LARGE_AMOUNT");
        assert_eq!(v.evidence("threshold"), Some("500000"));
        assert_eq!(v.evidence("percent"), Some("80"));
        assert_eq!(h.run(&tx().amount(500_000, "EUR").build()).unwrap().outcome, Outcome::Score(25));
        assert_eq!(h.run(&tx().amount(500_001, "EUR").build()).unwrap().outcome, Outcome::Suspect);
    }

    #[test]
    fn score_points_default_to_20() {
        let v = harness().param("score_from_percent", 50).run(&tx().amount(300_000, "EUR").build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(20));
    }

    #[test]
    fn small_and_negative_amounts_pass() {
        let mut h = harness().param("score_from_percent", 1);
        assert!(h.run(&tx().amount(5_000, "EUR").build()).unwrap().is_pass());
        assert!(h.run(&tx().amount(-9_000_000, "EUR").build()).unwrap().is_pass());
    }

    #[test]
    fn wrong_parameter_types_name_the_parameter() {
        let err = harness().param("suspect_over.USD", "lots").run(&tx().build()).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `suspect_over.USD`: expected an integer of at least 0, found a string (\"lots\")"
        );
        let err = harness().param("suspect_over.EUR", -1).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("`suspect_over.EUR`"), "{}", err.message());
        let err = harness().param("default_suspect_over", 1.5).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("`default_suspect_over`"), "{}", err.message());
        let err = harness().param("score_from_percent", 150).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("`score_from_percent`"), "{}", err.message());
        let err = harness().param("score_from_percent", 90).param("score_points", -5).run(&tx().build()).unwrap_err();
        assert!(err.message().contains("`score_points`"), "{}", err.message());
    }
}
