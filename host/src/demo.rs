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
    let mut b = Builder {
        rng: ChaCha8Rng::seed_from_u64(seed),
        seq: 0,
        lines: Vec::with_capacity(n + 64),
        story: Vec::new(),
        labels: Vec::with_capacity(n + 32),
    };
    let accounts = accounts.max(10);
    let mut clock = START_MS;
    let mean_gap_ms = (12 * 3_600_000 / n.max(1)) as i64;

    // Scenes are placed at fixed fractions of the ordinary stream (on a
    // short stream two may fall on one transaction: the first is played).
    let scene_at = |fraction: f64| (n as f64 * fraction) as usize;
    let scenes: [(usize, Scene); 7] = [
        (scene_at(0.15), Builder::concert_tickets),
        (scene_at(0.3), Builder::card_testing),
        (scene_at(0.45), Builder::burst),
        (scene_at(0.5), Builder::impossible_travel),
        (scene_at(0.6), Builder::betting),
        (scene_at(0.75), Builder::large_transfer),
        (scene_at(0.9), Builder::malformed),
    ];

    for i in 0..n {
        clock += b.rng.random_range(0..=2 * mean_gap_ms.max(1));
        b.ordinary(accounts, clock);
        if let Some((_, scene)) = scenes.iter().find(|(at, _)| *at == i) {
            scene(&mut b, clock);
        }
    }
    Stream { lines: b.lines, story: b.story, labels: b.labels }
}

/// A scene of the story, played at a time on the stream's clock.
type Scene = fn(&mut Builder, i64);

/// The stream while it is built: one seeded generator draws every random
/// choice in order, so a seed always gives the same stream.
struct Builder {
    rng: ChaCha8Rng,
    /// Transactions numbered so far.
    seq: u64,
    lines: Vec<String>,
    story: Vec<(&'static str, String)>,
    labels: Vec<(String, &'static str)>,
}

impl Builder {
    /// The next transaction id, and a random event id.
    fn next_id(&mut self) -> (String, String) {
        self.seq += 1;
        (format!("tx-{:09}", 200_000_000 + self.seq), uuid_like(&mut self.rng))
    }

    /// Adds a transaction under the next ids; returns its transaction id.
    #[allow(clippy::too_many_arguments)]
    fn transaction(
        &mut self,
        account: &str,
        amount: i64,
        currency: &str,
        shop: &Shop,
        country: &str,
        channel: &str,
        at_ms: i64,
    ) -> String {
        let (tx_id, event_id) = self.next_id();
        self.lines.push(event(&event_id, &tx_id, account, amount, currency, shop, country, channel, at_ms));
        tx_id
    }

    /// An ordinary customer shopping at home.
    fn ordinary(&mut self, accounts: usize, clock: i64) {
        let account = self.rng.random_range(0..accounts);
        let (country, currency) = HOMES[account % HOMES.len()];
        let shop = &SHOPS[self.rng.random_range(0..SHOPS.len())];
        let amount = self.rng.random_range(shop.typical.0..=shop.typical.1);
        let channel = if shop.online { "ecommerce" } else { "card_present" };
        let tx_id = self.transaction(&format!("acct-{account:05}"), amount, currency, shop, country, channel, clock);
        self.labels.push((tx_id, "legit"));
    }

    /// The story: a customer buys concert tickets. Verified.
    fn concert_tickets(&mut self, clock: i64) {
        self.lines.push(
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
        self.story.push(("acct-1029 buys concert tickets, EUR 189.00", "tx-000184467".to_owned()));
        self.labels.push(("tx-000184467".to_owned(), "legit"));
    }

    /// Card testing: four tiny online charges, then a large purchase, and
    /// another after the lock.
    fn card_testing(&mut self, clock: i64) {
        for k in 0..4 {
            let t = clock + 30_000 * (k + 1);
            let tx_id = self.transaction("acct-6660", 50 + 25 * k, "EUR", &SHOPS[6], "NL", "ecommerce", t);
            self.labels.push((tx_id, "card-testing"));
        }
        let tx_id = self.transaction("acct-6660", 129_900, "EUR", &SHOPS[7], "NL", "ecommerce", clock + 180_000);
        self.labels.push((tx_id.clone(), "card-testing"));
        self.story.push(("acct-6660 makes four tiny charges, then spends EUR 1 299.00", tx_id));
        let tx_id = self.transaction("acct-6660", 89_900, "EUR", &SHOPS[7], "NL", "ecommerce", clock + 240_000);
        self.labels.push((tx_id.clone(), "card-testing"));
        self.story.push(("acct-6660 tries again after the lock", tx_id));
    }

    /// A burst: fourteen purchases in under half an hour.
    fn burst(&mut self, clock: i64) {
        let mut last = String::new();
        for k in 0..14 {
            let shop = &SHOPS[k as usize % 6];
            let tx_id =
                self.transaction("acct-3141", 2_500 + k * 10, "EUR", shop, "NL", "card_present", clock + 120_000 * k);
            self.labels.push((tx_id.clone(), "burst"));
            last = tx_id;
        }
        self.story.push(("acct-3141 makes fourteen purchases in 28 minutes (the last one)", last));
    }

    /// Impossible travel: Amsterdam, then New York 40 minutes later.
    fn impossible_travel(&mut self, clock: i64) {
        let tx_id = self.transaction("acct-2718", 1_450, "EUR", &SHOPS[4], "NL", "card_present", clock);
        self.labels.push((tx_id, "legit"));
        let nyc = Shop { id: "m-bestbuy-nyc", name: "Best Buy", mcc: "5732", online: false, typical: (0, 0) };
        let tx_id = self.transaction("acct-2718", 89_900, "USD", &nyc, "US", "card_present", clock + 2_400_000);
        self.labels.push((tx_id.clone(), "impossible-travel"));
        self.story.push(("acct-2718 pays in Amsterdam, then in New York 40 minutes later", tx_id));
    }

    /// A purchase at a betting merchant (unlabelled).
    fn betting(&mut self, clock: i64) {
        let bet = Shop { id: "m-luckybet", name: "LuckyBet", mcc: "7995", online: true, typical: (0, 0) };
        let tx_id = self.transaction("acct-1618", 25_000, "EUR", &bet, "MT", "ecommerce", clock + 1);
        self.story.push(("acct-1618 pays a betting site", tx_id));
    }

    /// A very large transfer (unlabelled).
    fn large_transfer(&mut self, clock: i64) {
        let bank = Shop { id: "m-wire", name: "Wire transfer", mcc: "4829", online: true, typical: (0, 0) };
        let tx_id = self.transaction("acct-1414", 1_250_000, "EUR", &bank, "NL", "transfer", clock + 1);
        self.story.push(("acct-1414 transfers EUR 12 500.00", tx_id));
    }

    /// Malformed input from a buggy producer.
    fn malformed(&mut self, _clock: i64) {
        self.lines.push(r#"{"event_id":"bad-1","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-1","account_id":"acct-00001","amount":{"minor_units":12.5,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"ecommerce"}"#.to_owned());
        self.lines.push(r#"{"event_id":"bad-2","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-2","account_id":"acct-00002","amount":{"minor_units":1250,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"telepathy"}"#.to_owned());
        self.lines.push(r#"{"event_id":"bad-3","event_type":"TransactionRecorded","sche"#.to_owned());
    }
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
