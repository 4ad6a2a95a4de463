//! `weir demo`: a realistic synthetic stream with the story's purchase and
//! a few fraud patterns woven in, for the embedded pipeline.
//!
//! The stream is deterministic for a seed. Ordinary customers shop in their
//! home country at everyday merchants; woven in are:
//! - the concert-ticket purchase from the story (acct-1029, tx-000184467),
//! - card testing: tiny online charges, then a large one (acct-6660), and a
//!   purchase after the lock,
//! - a burst of purchases (acct-3141),
//! - impossible travel: card present in NL, then in the US 40 minutes later
//!   (acct-2718),
//! - a purchase at a betting merchant (acct-1618),
//! - a very large transfer (acct-1414),
//! - malformed records, which are dead-lettered with their reasons.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// What the demo generated.
pub struct Stream {
    /// One JSON record per line.
    pub lines: Vec<String>,
    /// The story's moments: (what happens, transaction id to look up).
    pub story: Vec<(&'static str, String)>,
    /// What each transaction really is, as a bank learns later: `legit`,
    /// or the fraud pattern's name (`card-testing`, `burst`,
    /// `impossible-travel`); for `weir backtest --labels`. The betting
    /// purchase and the large transfer are left unlabelled: the bank never
    /// found out.
    pub labels: Vec<(String, &'static str)>,
}

const START_MS: i64 = 1_795_852_800_000; // 2026-11-28T08:00:00Z

struct Shop {
    id: &'static str,
    name: &'static str,
    mcc: &'static str,
    online: bool,
    typical: (i64, i64),
}

const SHOPS: &[Shop] = &[
    Shop { id: "m-albertheijn", name: "Albert Heijn", mcc: "5411", online: false, typical: (800, 9_000) },
    Shop { id: "m-lidl", name: "Lidl", mcc: "5411", online: false, typical: (500, 7_000) },
    Shop { id: "m-shell", name: "Shell", mcc: "5541", online: false, typical: (2_000, 9_000) },
    Shop { id: "m-ns", name: "NS Reizigers", mcc: "4111", online: false, typical: (300, 4_000) },
    Shop { id: "m-cafe", name: "Cafe de Jaren", mcc: "5812", online: false, typical: (400, 6_000) },
    Shop { id: "m-zara", name: "Zara", mcc: "5691", online: false, typical: (2_000, 15_000) },
    Shop { id: "m-bol", name: "bol.com", mcc: "5999", online: true, typical: (1_000, 12_000) },
    Shop { id: "m-coolblue", name: "Coolblue", mcc: "5732", online: true, typical: (3_000, 90_000) },
    Shop { id: "m-ticketsrus", name: "Tickets R Us", mcc: "7922", online: true, typical: (2_500, 25_000) },
    Shop { id: "m-thuisbezorgd", name: "Thuisbezorgd", mcc: "5814", online: true, typical: (1_200, 5_000) },
];

const HOMES: &[(&str, &str)] = &[("NL", "EUR"), ("DE", "EUR"), ("BE", "EUR"), ("FR", "EUR"), ("GB", "GBP")];

/// Builds the stream: `n` ordinary transactions over `accounts` accounts,
/// plus the story's scenes and malformed records.
pub fn generate(n: usize, accounts: usize, seed: u64) -> Stream {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let accounts = accounts.max(10);
    let mut lines = Vec::with_capacity(n + 64);
    let mut story = Vec::new();
    let mut labels = Vec::with_capacity(n + 32);
    let mut clock = START_MS;
    let mean_gap_ms = (12 * 3_600_000 / n.max(1)) as i64;
    let mut seq = 0u64;
    let mut next_id = |rng: &mut ChaCha8Rng| {
        seq += 1;
        (format!("tx-{:09}", 200_000_000 + seq), uuid_like(rng))
    };

    // Scenes are placed at fixed fractions of the ordinary stream.
    let scene_at = |fraction: f64| (n as f64 * fraction) as usize;
    let scenes =
        [scene_at(0.15), scene_at(0.3), scene_at(0.45), scene_at(0.5), scene_at(0.6), scene_at(0.75), scene_at(0.9)];

    for i in 0..n {
        clock += rng.random_range(0..=2 * mean_gap_ms.max(1));
        let account = rng.random_range(0..accounts);
        let (country, currency) = HOMES[account % HOMES.len()];
        let shop = &SHOPS[rng.random_range(0..SHOPS.len())];
        let amount = rng.random_range(shop.typical.0..=shop.typical.1);
        let channel = if shop.online { "ecommerce" } else { "card_present" };
        let (tx_id, event_id) = next_id(&mut rng);
        lines.push(event(
            &event_id,
            &tx_id,
            &format!("acct-{account:05}"),
            amount,
            currency,
            shop,
            country,
            channel,
            clock,
        ));
        labels.push((tx_id, "legit"));

        if i == scenes[0] {
            // The story: a customer buys concert tickets. Verified.
            lines.push(
                json!({
                    "event_id": "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41",
                    "event_type": "TransactionRecorded",
                    "schema_version": 1,
                    "occurred_at": rfc3339(clock + 1),
                    "transaction_id": "tx-000184467",
                    "account_id": "acct-1029",
                    "amount": { "minor_units": 18900, "currency": "EUR" },
                    "merchant": { "id": "m-ticketsrus", "name": "Tickets R Us", "category_code": "7922", "country": "NL" },
                    "channel": "ecommerce",
                    "attributes": { "card_last4": "4242" }
                })
                .to_string(),
            );
            story.push(("acct-1029 buys concert tickets, EUR 189.00", "tx-000184467".to_owned()));
            labels.push(("tx-000184467".to_owned(), "legit"));
        } else if i == scenes[1] {
            // Card testing: four tiny online charges, then a large purchase.
            let shop = &SHOPS[6];
            for k in 0..4 {
                let (tx_id, event_id) = next_id(&mut rng);
                let t = clock + 30_000 * (k + 1);
                lines.push(event(&event_id, &tx_id, "acct-6660", 50 + 25 * k, "EUR", shop, "NL", "ecommerce", t));
                labels.push((tx_id, "card-testing"));
            }
            let (tx_id, event_id) = next_id(&mut rng);
            lines.push(event(
                &event_id,
                &tx_id,
                "acct-6660",
                129_900,
                "EUR",
                &SHOPS[7],
                "NL",
                "ecommerce",
                clock + 180_000,
            ));
            labels.push((tx_id.clone(), "card-testing"));
            story.push(("acct-6660 makes four tiny charges, then spends EUR 1 299.00", tx_id));
            let (tx_id, event_id) = next_id(&mut rng);
            lines.push(event(
                &event_id,
                &tx_id,
                "acct-6660",
                89_900,
                "EUR",
                &SHOPS[7],
                "NL",
                "ecommerce",
                clock + 240_000,
            ));
            labels.push((tx_id.clone(), "card-testing"));
            story.push(("acct-6660 tries again after the lock", tx_id));
        } else if i == scenes[2] {
            // A burst: fourteen purchases in under half an hour.
            let mut last = String::new();
            for k in 0..14 {
                let (tx_id, event_id) = next_id(&mut rng);
                let shop = &SHOPS[k as usize % 6];
                lines.push(event(
                    &event_id,
                    &tx_id,
                    "acct-3141",
                    2_500 + k * 10,
                    "EUR",
                    shop,
                    "NL",
                    "card_present",
                    clock + 120_000 * k,
                ));
                labels.push((tx_id.clone(), "burst"));
                last = tx_id;
            }
            story.push(("acct-3141 makes fourteen purchases in 28 minutes (the last one)", last));
        } else if i == scenes[3] {
            // Impossible travel: Amsterdam, then New York 40 minutes later.
            let (tx_id, event_id) = next_id(&mut rng);
            lines.push(event(&event_id, &tx_id, "acct-2718", 1_450, "EUR", &SHOPS[4], "NL", "card_present", clock));
            labels.push((tx_id, "legit"));
            let (tx_id, event_id) = next_id(&mut rng);
            let nyc = Shop { id: "m-bestbuy-nyc", name: "Best Buy", mcc: "5732", online: false, typical: (0, 0) };
            lines.push(event(
                &event_id,
                &tx_id,
                "acct-2718",
                89_900,
                "USD",
                &nyc,
                "US",
                "card_present",
                clock + 2_400_000,
            ));
            labels.push((tx_id.clone(), "impossible-travel"));
            story.push(("acct-2718 pays in Amsterdam, then in New York 40 minutes later", tx_id));
        } else if i == scenes[4] {
            let (tx_id, event_id) = next_id(&mut rng);
            let bet = Shop { id: "m-luckybet", name: "LuckyBet", mcc: "7995", online: true, typical: (0, 0) };
            lines.push(event(&event_id, &tx_id, "acct-1618", 25_000, "EUR", &bet, "MT", "ecommerce", clock + 1));
            story.push(("acct-1618 pays a betting site", tx_id));
        } else if i == scenes[5] {
            let (tx_id, event_id) = next_id(&mut rng);
            let bank = Shop { id: "m-wire", name: "Wire transfer", mcc: "4829", online: true, typical: (0, 0) };
            lines.push(event(&event_id, &tx_id, "acct-1414", 1_250_000, "EUR", &bank, "NL", "transfer", clock + 1));
            story.push(("acct-1414 transfers EUR 12 500.00", tx_id));
        } else if i == scenes[6] {
            // Malformed input from a buggy producer.
            lines.push(r#"{"event_id":"bad-1","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-1","account_id":"acct-00001","amount":{"minor_units":12.5,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"ecommerce"}"#.to_owned());
            lines.push(r#"{"event_id":"bad-2","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-2","account_id":"acct-00002","amount":{"minor_units":1250,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"telepathy"}"#.to_owned());
            lines.push(r#"{"event_id":"bad-3","event_type":"TransactionRecorded","sche"#.to_owned());
        }
    }
    Stream { lines, story, labels }
}

#[allow(clippy::too_many_arguments)]
fn event(
    event_id: &str,
    tx_id: &str,
    account: &str,
    amount: i64,
    currency: &str,
    shop: &Shop,
    country: &str,
    channel: &str,
    at_ms: i64,
) -> String {
    json!({
        "event_id": event_id,
        "event_type": "TransactionRecorded",
        "schema_version": 1,
        "occurred_at": rfc3339(at_ms),
        "transaction_id": tx_id,
        "account_id": account,
        "amount": { "minor_units": amount, "currency": currency },
        "merchant": { "id": shop.id, "name": shop.name, "category_code": shop.mcc, "country": country },
        "channel": channel,
    })
    .to_string()
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("demo times are valid");
    t.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats every UTC time")
}

fn uuid_like(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}
