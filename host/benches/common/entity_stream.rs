//! The stream the entity benchmarks decide (`engine`'s `entity/*`
//! groups and `rule_times`), included by path.

use weir::events::TransactionRecorded;

/// A stream where every transaction has a device, a card and a merchant,
/// and three in ten are transfers, so the entity rules run on every
/// transaction; fraud is rare, as in a bank's traffic. 4 000 accounts,
/// each with its own phone (one transaction in 50 from one of 20 phones a
/// ring shares), its own card, two favourite merchants of 40 (or, with
/// `hot`, that share of the transactions at one merchant) and payees it
/// shares with two other accounts (one transfer in 50 to one of 5 mules).
pub fn entity_stream(n: usize, hot: f64, seed: u64) -> Vec<TransactionRecorded> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let account = (next() * 4_000.0) as usize;
            let favourite = if next() < 0.5 { account % 40 } else { (account * 7 + 3) % 40 };
            let merchant = if next() < hot { "m-hot".to_owned() } else { format!("m-{favourite:02}") };
            let device = if next() < 0.02 {
                format!("fp-ring-{:02}", (next() * 20.0) as usize)
            } else {
                format!("fp-{account:04}")
            };
            let payee = if next() < 0.02 {
                format!("mule-{}", (next() * 5.0) as usize)
            } else {
                format!("payee-{:04}", account / 3)
            };
            let case = weir::cases::CaseTx {
                account: Some(format!("acct-{account:04}")),
                merchant: Some(merchant),
                amount: Some(500 + (next() * 20_000.0) as i64),
                after_secs: Some(i as i64 * 2),
                device_fingerprint: Some(device),
                card_fingerprint: Some(format!("card-{account:04}")),
                counterparty_account: (next() < 0.3).then_some(payee),
                ..Default::default()
            };
            case.to_event(&format!("tx-{i:06}"))
        })
        .collect()
}
