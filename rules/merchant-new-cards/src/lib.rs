//! Merchant new cards: a merchant whose recent sales are mostly cards it
//! never saw before.
//!
//! A neighbourhood shop sees the same cards again and again. A merchant
//! whose payment page was compromised, or one used to test stolen cards
//! spread over many cards and accounts, suddenly sees mostly first-time
//! cards. No account shows it; the merchant's state does.
//!
//! How: an entity rule (`entity = "merchant"` in the manifest), so the host
//! lends it the state of the transaction's merchant. Purchases without a
//! card fingerprint (version 1 and 2 events) pass and touch nothing. A card
//! is new when it is not in the merchant's distinct set `cards` (which keeps
//! cards for 31 days of event time, at most 4096 of them, the least
//! recently seen going first); every card sale adds to the series `sales`,
//! a new card's also to `new_cards`. A new card's purchase is scored when
//! the merchant made at least `min_sales` card sales in the window and more
//! than `max_new_share` of them were first-time cards. It scores rather
//! than suspects: a merchant's first busy day looks the same.
//!
//! Parameters:
//! - `window_secs` (integer, default 3600; 1 ..= 31 days): the window.
//! - `min_sales` (integer, default 20, at least 1): sales before judging.
//! - `max_new_share` (float, default 0.8, 0 ..= 1): the share of new cards
//!   above which a new card scores.
//! - `score` (integer, default 30): the points.
//!
//! Returns: `Verdict::score(score, "MERCHANT_NEW_CARDS")` with evidence
//! `sales`, `new_cards` and `window_secs`; else pass.

use std::time::Duration;

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    window: Duration,
    min_sales: u32,
    max_new_share: f64,
    score: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::window_secs("window_secs", 3_600).doc("The sliding window, in seconds of event time."),
        Param::integer("min_sales", 20)
            .range(1, u32::MAX as i64)
            .doc("Judge a merchant only once it made this many card sales in the window."),
        Param::float("max_new_share", 0.8)
            .range_float(0.0, 1.0)
            .doc("Score when more than this share of the window's card sales were first-time cards."),
        Param::integer("score", 30).range(0, u32::MAX as i64).doc("Risk-score points (MERCHANT_NEW_CARDS)."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            window: Duration::from_secs(p.param("window_secs")?),
            min_sales: p.param("min_sales")?,
            max_new_share: p.param("max_new_share")?,
            score: p.param("score")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let Some(card) = tx.card_fingerprint() else {
        return Ok(Verdict::pass());
    };
    let new = ctx.last_seen("cards", card).is_none();
    ctx.distinct_add("cards", card);
    ctx.window_add("sales", 1);
    if !new {
        return Ok(Verdict::pass());
    }
    ctx.window_add("new_cards", 1);
    let sales = ctx.window_count("sales", config.window);
    let new_cards = ctx.window_count("new_cards", config.window);
    if sales < config.min_sales || f64::from(new_cards) <= config.max_new_share * f64::from(sales) {
        return Ok(Verdict::pass());
    }
    Ok(Verdict::score(config.score, "MERCHANT_NEW_CARDS", "most of the merchant's recent sales were first-time cards")
        .with("sales", sales)
        .with("new_cards", new_cards)
        .with("window_secs", config.window.as_secs()))
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    fn harness() -> Harness {
        Harness::new(RULE).manifest(include_str!("../rule.toml")).param("min_sales", 5)
    }

    fn sale(card: &str, after_secs: i64) -> weir_sdk::Transaction {
        tx().merchant("m-shop", "5999").card_fingerprint(card).after_secs(after_secs).build()
    }

    #[test]
    fn a_merchant_seeing_mostly_new_cards_scores_the_next_new_card() {
        let mut h = harness();
        for i in 0..4 {
            assert!(h.run(&sale(&format!("card-{i}"), i * 60)).unwrap().is_pass(), "under min_sales");
        }
        let v = h.run(&sale("card-4", 300)).unwrap();
        assert_eq!(v.outcome, Outcome::Score(30));
        assert_eq!(v.reason_code, "MERCHANT_NEW_CARDS");
        assert_eq!((v.evidence("sales"), v.evidence("new_cards")), (Some("5"), Some("5")));
        // A card seen before passes, whatever the share.
        assert!(h.run(&sale("card-0", 360)).unwrap().is_pass());
    }

    #[test]
    fn a_merchant_with_returning_cards_passes() {
        let mut h = harness();
        for i in 0..10 {
            h.run(&sale(&format!("card-{}", i % 3), i * 60)).unwrap();
        }
        // 11 sales, 4 of them new: under the share.
        assert!(h.run(&sale("card-new", 700)).unwrap().is_pass());
    }

    #[test]
    fn purchases_without_a_card_pass_and_touch_nothing() {
        let mut h = harness();
        assert!(h.run(&tx().build()).unwrap().is_pass());
        assert_eq!(h.entity_state("m-ticketsrus").map(|s| s.is_empty()), Some(true));
    }
}
