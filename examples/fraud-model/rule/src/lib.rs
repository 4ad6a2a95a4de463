//! `fraud-model`: scores every transaction with a gradient-boosted model
//! trained on the features this rule computes, and suspects those it
//! scores at or above `threshold`.
//!
//! The features come from the transaction and the state this rule keeps
//! for the account (windows, the devices, countries and merchants it has
//! seen), so `weir features` writes the training table with exactly the
//! values the model is served: there is no second implementation of them
//! in Python. Their names and order are rule.toml's `[model] features`.

use std::time::Duration;

use weir_sdk::prelude::*;

const PARAMS: &[Param] = &[Param::float("threshold", 0.5)
    .range_float(0.0, 1.0)
    .doc("Suspect transactions the model scores at or above this probability of fraud.")];

/// The features' names, in the model's column order (rule.toml's `[model]
/// features`); they also name the evidence of a flagged transaction.
pub const FEATURES: [&str; 14] = [
    "amount",
    "hour",
    "ecommerce",
    "card_present",
    "count_10m",
    "count_1h",
    "amount_1h",
    "minutes_since_last",
    "amount_vs_usual",
    "has_device",
    "new_device",
    "new_country",
    "new_merchant",
    "foreign",
];

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

/// 1.0 or 0.0.
fn flag(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// Whether `member` is new to the set `name` (never seen in the last 30
/// days); records it as seen now.
fn first_time(ctx: &mut Context, name: &str, member: &str) -> bool {
    let new = ctx.last_seen(name, member).is_none();
    ctx.distinct_add(name, member);
    // Counting over 30 days keeps the set's members for 30 days.
    ctx.distinct_count(name, MONTH);
    new
}

/// The row the model scores, from the transaction and the account's
/// state; records this transaction in that state.
pub fn features(tx: &Transaction, ctx: &mut Context) -> [f32; 14] {
    let amount = tx.amount.minor_units as f32 / 100.0;
    let hour = (tx.occurred_at_ms.rem_euclid(86_400_000) / 3_600_000) as f32;
    let count_10m = ctx.window_count("tx", 10 * MINUTE) as f32;
    let count_1h = ctx.window_count("tx", HOUR) as f32;
    let amount_1h = ctx.window_sum("amount", HOUR) as f32 / 100.0;
    let (month_sum, month_count) = (ctx.window_sum("amount", MONTH), ctx.window_count("amount", MONTH));
    let amount_vs_usual =
        if month_count == 0 { 1.0 } else { amount / (month_sum as f32 / 100.0 / month_count as f32).max(1.0) };
    let minutes_since_last = match ctx.get("last").and_then(|t| t.parse::<i64>().ok()) {
        Some(last) => ((tx.occurred_at_ms - last) as f32 / 60_000.0).clamp(0.0, 1440.0),
        None => 1440.0,
    };
    let country = tx.merchant.country.as_deref().unwrap_or("");
    let home = ctx.get("home");
    let foreign = home.as_deref().is_some_and(|home| home != country);
    if home.is_none() {
        ctx.set("home", country);
    }
    let has_device = tx.device_fingerprint().is_some();
    let new_device = match tx.device_fingerprint() {
        Some(device) => first_time(ctx, "devices", device),
        None => false,
    };
    let new_country = first_time(ctx, "countries", country);
    let new_merchant = first_time(ctx, "merchants", &tx.merchant.id);
    ctx.window_add("tx", 1);
    ctx.window_add("amount", tx.amount.minor_units);
    ctx.set("last", tx.occurred_at_ms);
    [
        amount,
        hour,
        flag(tx.channel == Channel::Ecommerce),
        flag(tx.channel == Channel::CardPresent),
        count_10m,
        count_1h,
        amount_1h,
        minutes_since_last,
        amount_vs_usual,
        flag(has_device),
        flag(new_device),
        flag(new_country),
        flag(new_merchant),
        flag(foreign),
    ]
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    let threshold: f64 = ctx.param("threshold")?;
    let row = features(tx, ctx);
    // `ctx.score` also hands the row to `weir features` and the backtest.
    let p = ctx.score(&row)?;
    if f64::from(p) < threshold {
        return Ok(Verdict::pass());
    }
    Ok(Verdict::suspect("MODEL_SCORE", "the fraud model scores this transaction as likely fraud").with_model(
        ctx.model()?,
        &row,
        &FEATURES,
        p,
    ))
}

weir_sdk::rule!(evaluate, params = PARAMS);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{MemoryAccount, tx};

    /// The rows of `txs`, one after the other on one account.
    fn rows(txs: &[Transaction]) -> Vec<[f32; 14]> {
        let (mut account, params) = (MemoryAccount::default(), Params::new(Vec::new()));
        txs.iter()
            .map(|t| {
                account.now_ms = t.occurred_at_ms;
                features(t, &mut Context::native(&mut account, &params, t.occurred_at_ms))
            })
            .collect()
    }

    #[test]
    fn the_features_follow_the_accounts_history() {
        let rows = rows(&[
            tx().amount(2_000, "EUR").device_fingerprint("fp-home").build(),
            tx().amount(8_000, "EUR").device_fingerprint("fp-new").after_secs(120).build(),
        ]);
        let (a, b) = (rows[0], rows[1]);
        assert_eq!((a[4], a[5], a[10]), (0.0, 0.0, 1.0), "the first transaction: nothing before, a new device");
        assert_eq!((b[4], b[5], b[10]), (1.0, 1.0, 1.0), "one before in 10 minutes; another new device");
        assert_eq!(b[7], 2.0, "two minutes since the last");
        assert_eq!(b[8], 4.0, "four times the usual amount");
        assert_eq!((b[11], b[12], b[13]), (0.0, 0.0, 0.0), "the same country and merchant, at home");
    }
}
