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
//! - a device ring: five accounts buy online from one phone within two
//!   hours (acct-4401 to acct-4405), which only the device's state shows,
//! - a mule beneficiary: five accounts that never paid it transfer money to
//!   acct-mule-8080 within a few hours (acct-5501 to acct-5505), which only
//!   the beneficiary's state shows (version 3 events with a counterparty),
//! - a merchant with a leaking payment page: 25 first-time cards of 25
//!   accounts pay m-gadgetzone within the hour (version 3 events with card
//!   fingerprints), which only the merchant's state shows,
//! - malformed records, which are dead-lettered with their reasons.
//!
//! [`generate`] spreads the stream over 12 hours. [`generate_days`] spreads
//! it over weeks of event time, so that each account has a history a rule
//! can be judged on: every customer has habits — a few favourite merchants,
//! one to three devices it shops online from (version 2 events carry the
//! device fingerprint), an activity of its own — and shops in a daily rhythm
//! (quiet nights, a lunch and an evening peak, quieter weekends). The story
//! is played once; on top, a few fraud incidents a day strike ordinary
//! accounts with a history (card testing and account takeover from a device
//! the account never used, bursts, impossible travel), each labelled, after
//! which the account's card is replaced and it shops no more.

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
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The most days [`generate_days`] spreads a stream over.
pub const MAX_DAYS: u32 = 366;

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
    let mut b = Builder::new(n, seed);
    let accounts = accounts.max(10);
    let mut clock = START_MS;
    let mean_gap_ms = (12 * 3_600_000 / n.max(1)) as i64;
    let scenes = scenes(n);

    for i in 0..n {
        clock += b.rng.random_range(0..=2 * mean_gap_ms.max(1));
        b.ordinary(accounts, clock);
        if let Some((_, scene)) = scenes.iter().find(|(at, _)| *at == i) {
            scene(&mut b, clock);
        }
    }
    Stream { lines: b.lines, story: b.story, labels: b.labels }
}

/// Builds a stream over `days` days of event time (1 to [`MAX_DAYS`]),
/// from midnight UTC of 2026-11-28: `n` ordinary transactions by
/// `accounts` customers with habits, in a daily rhythm, plus the story's
/// scenes (once), malformed records and about three fraud incidents a day
/// on accounts with a history (at most one account in ten). The same
/// arguments give the same stream.
pub fn generate_days(n: usize, accounts: usize, days: u32, seed: u64) -> Stream {
    let days = days.clamp(1, MAX_DAYS);
    let mut b = Builder::new(n, seed);
    let accounts = accounts.max(10);
    let customers: Vec<Customer> = (0..accounts).map(|a| Customer::draw(&mut b.rng, a)).collect();
    let mut activity = Vec::with_capacity(accounts);
    let mut total = 0.0;
    for c in &customers {
        total += c.activity;
        activity.push(total);
    }

    // When the ordinary transactions happen: a day (weekends are quieter),
    // an hour by the daily rhythm, any second of it; then in order.
    let midnight = START_MS - 8 * HOUR_MS;
    let day_weights: Vec<f64> =
        (0..days).map(|d| if is_weekend(midnight + i64::from(d) * DAY_MS) { 0.8 } else { 1.0 }).collect();
    let mut times: Vec<i64> = (0..n).map(|_| midnight + b.moment(&day_weights)).collect();
    times.sort_unstable();

    let scenes = scenes(n);
    let incidents = (days as usize * 3).min(accounts / 10).min(n / 20);
    let every = n / (incidents + 1);
    let mut replaced = vec![false; accounts];
    for (i, &clock) in times.iter().enumerate() {
        let account = b.pick(&activity, &replaced);
        b.habitual(&customers[account], clock);
        if let Some((_, scene)) = scenes.iter().find(|(at, _)| *at == i) {
            scene(&mut b, clock);
        }
        if incidents > 0 && i % every == every / 2 && i / every < incidents {
            let victim = b.pick(&activity, &replaced);
            replaced[victim] = true;
            let incident = INCIDENTS[(i / every) % INCIDENTS.len()];
            incident(&mut b, &customers[victim], clock);
        }
    }
    Stream { lines: b.lines, story: b.story, labels: b.labels }
}

/// The story's scenes, at fixed fractions of `n` ordinary transactions (on
/// a short stream two may fall on one transaction: the first is played).
fn scenes(n: usize) -> [(usize, Scene); 10] {
    let scene_at = |fraction: f64| (n as f64 * fraction) as usize;
    [
        (scene_at(0.15), Builder::concert_tickets),
        (scene_at(0.2), Builder::device_ring),
        (scene_at(0.8), Builder::mule_beneficiary),
        (scene_at(0.85), Builder::new_cards_at_a_merchant),
        (scene_at(0.3), Builder::card_testing),
        (scene_at(0.45), Builder::burst),
        (scene_at(0.5), Builder::impossible_travel),
        (scene_at(0.6), Builder::betting),
        (scene_at(0.75), Builder::large_transfer),
        (scene_at(0.9), Builder::malformed),
    ]
}

/// Whether the day of `ms` is a Saturday or a Sunday (UTC).
fn is_weekend(ms: i64) -> bool {
    // 1970-01-01 was a Thursday: day 2 of the week counted from Saturday.
    (ms.div_euclid(DAY_MS) + 5) % 7 < 2
}

/// How many transactions start in each hour of the day, relative: quiet
/// nights, a lunch peak and an evening peak.
const HOURLY: [f64; 24] = [
    1.0, 0.5, 0.3, 0.3, 0.3, 0.6, 2.0, 5.0, 7.0, 7.0, 8.0, 10.0, 13.0, 11.0, 9.0, 9.0, 10.0, 12.0, 14.0, 13.0, 10.0,
    7.0, 4.0, 2.0,
];

/// A customer's habits in [`generate_days`].
struct Customer {
    /// `acct-NNNNN`.
    account: String,
    country: &'static str,
    currency: &'static str,
    /// Relative to other customers: how often this one shops.
    activity: f64,
    /// Indices into [`SHOPS`] of the merchants it returns to.
    favourites: Vec<usize>,
    /// The devices it shops online from, the first one most.
    devices: Vec<String>,
}

impl Customer {
    fn draw(rng: &mut ChaCha8Rng, account: usize) -> Customer {
        let (country, currency) = HOMES[account % HOMES.len()];
        let activity: f64 = rng.random_range(0.5..2.0f64).powi(2);
        let mut favourites: Vec<usize> = Vec::new();
        for _ in 0..rng.random_range(3..=5) {
            let shop = rng.random_range(0..SHOPS.len());
            if !favourites.contains(&shop) {
                favourites.push(shop);
            }
        }
        let devices = (0..rng.random_range(1..=3)).map(|_| format!("fp-{:016x}", rng.random::<u64>())).collect();
        Customer { account: format!("acct-{account:05}"), country, currency, activity, favourites, devices }
    }
}

/// A fraud incident on a customer's account, at a time on the stream's clock.
type Incident = fn(&mut Builder, &Customer, i64);

/// The incidents of [`generate_days`], in turn.
const INCIDENTS: [Incident; 4] =
    [Builder::account_takeover, Builder::tested_card, Builder::burst_on, Builder::travel_on];

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
    fn new(n: usize, seed: u64) -> Builder {
        Builder {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seq: 0,
            lines: Vec::with_capacity(n + 64),
            story: Vec::new(),
            labels: Vec::with_capacity(n + 32),
        }
    }

    /// A moment in ms from the first midnight: a day drawn by
    /// `day_weights`, an hour by [`HOURLY`], any millisecond in it.
    fn moment(&mut self, day_weights: &[f64]) -> i64 {
        let day = weighted(&mut self.rng, day_weights);
        let hour = weighted(&mut self.rng, &HOURLY);
        day as i64 * DAY_MS + hour as i64 * HOUR_MS + self.rng.random_range(0..HOUR_MS)
    }

    /// A customer by activity (`cumulative` is the running sum of the
    /// customers' activities), one whose card was not replaced.
    fn pick(&mut self, cumulative: &[f64], replaced: &[bool]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        for _ in 0..64 {
            let x = self.rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
            let at = cumulative.partition_point(|&c| c <= x).min(cumulative.len() - 1);
            if !replaced[at] {
                return at;
            }
        }
        replaced.iter().position(|r| !r).unwrap_or(0)
    }

    /// A customer shopping as it does: mostly at a favourite merchant, in
    /// its home country, online from one of its devices (mostly the first).
    fn habitual(&mut self, c: &Customer, clock: i64) {
        let shop = if self.rng.random_bool(0.85) {
            c.favourites[self.rng.random_range(0..c.favourites.len())]
        } else {
            self.rng.random_range(0..SHOPS.len())
        };
        let shop = &SHOPS[shop];
        let amount = self.rng.random_range(shop.typical.0..=shop.typical.1);
        let (channel, device) = if shop.online {
            let d = if c.devices.len() > 1 && self.rng.random_bool(0.3) {
                self.rng.random_range(1..c.devices.len())
            } else {
                0
            };
            ("ecommerce", Some(c.devices[d].as_str()))
        } else {
            ("card_present", None)
        };
        let tx_id = self.transaction_from(&c.account, amount, c.currency, shop, c.country, channel, clock, device);
        self.labels.push((tx_id, "legit"));
    }

    /// Account takeover: from a device the account never used, three
    /// expensive online purchases within the hour.
    fn account_takeover(&mut self, c: &Customer, clock: i64) {
        let device = format!("fp-{:016x}", self.rng.random::<u64>());
        for (k, shop) in [7, 8, 7].into_iter().enumerate() {
            let shop = &SHOPS[shop];
            let amount = self.rng.random_range(shop.typical.1 / 2..=shop.typical.1);
            let at = clock + 60_000 + k as i64 * 1_200_000;
            let tx_id =
                self.transaction_from(&c.account, amount, c.currency, shop, c.country, "ecommerce", at, Some(&device));
            self.labels.push((tx_id, "account-takeover"));
        }
    }

    /// Card testing from a device the account never used: four tiny online
    /// charges, then a large purchase.
    fn tested_card(&mut self, c: &Customer, clock: i64) {
        let device = format!("fp-{:016x}", self.rng.random::<u64>());
        for k in 0..4 {
            let at = clock + 30_000 * (k + 1);
            let tx_id = self.transaction_from(
                &c.account,
                50 + 25 * k,
                c.currency,
                &SHOPS[6],
                c.country,
                "ecommerce",
                at,
                Some(&device),
            );
            self.labels.push((tx_id, "card-testing"));
        }
        let at = clock + 180_000;
        let tx_id = self.transaction_from(
            &c.account,
            129_900,
            c.currency,
            &SHOPS[7],
            c.country,
            "ecommerce",
            at,
            Some(&device),
        );
        self.labels.push((tx_id, "card-testing"));
    }

    /// A burst: fourteen purchases at home in under half an hour.
    fn burst_on(&mut self, c: &Customer, clock: i64) {
        for k in 0..14 {
            let shop = &SHOPS[k as usize % 6];
            let at = clock + 60_000 + 120_000 * k;
            let tx_id = self.transaction_from(
                &c.account,
                2_500 + k * 10,
                c.currency,
                shop,
                c.country,
                "card_present",
                at,
                None,
            );
            self.labels.push((tx_id, "burst"));
        }
    }

    /// Impossible travel: the card at home, then in New York 40 minutes later.
    fn travel_on(&mut self, c: &Customer, clock: i64) {
        let tx_id =
            self.transaction_from(&c.account, 1_450, c.currency, &SHOPS[4], c.country, "card_present", clock + 1, None);
        self.labels.push((tx_id, "legit"));
        let nyc = Shop { id: "m-bestbuy-nyc", name: "Best Buy", mcc: "5732", online: false, typical: (0, 0) };
        let tx_id =
            self.transaction_from(&c.account, 89_900, "USD", &nyc, "US", "card_present", clock + 2_400_001, None);
        self.labels.push((tx_id, "impossible-travel"));
    }

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
        self.lines
            .push(event_value(&event_id, &tx_id, account, amount, currency, shop, country, channel, at_ms).to_string());
        tx_id
    }

    /// Adds a transaction as [`Builder::transaction`] does, a version 2
    /// event with the device's fingerprint when there is one.
    #[allow(clippy::too_many_arguments)]
    fn transaction_from(
        &mut self,
        account: &str,
        amount: i64,
        currency: &str,
        shop: &Shop,
        country: &str,
        channel: &str,
        at_ms: i64,
        device: Option<&str>,
    ) -> String {
        let Some(device) = device else {
            return self.transaction(account, amount, currency, shop, country, channel, at_ms);
        };
        let (tx_id, event_id) = self.next_id();
        let mut line = event_value(&event_id, &tx_id, account, amount, currency, shop, country, channel, at_ms);
        line["schema_version"] = json!(2);
        line["device_fingerprint"] = json!(device);
        self.lines.push(line.to_string());
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

    /// A device ring: five accounts buy online from one phone within two
    /// hours; from the fourth on, the device has seen too many accounts.
    fn device_ring(&mut self, clock: i64) {
        for k in 0..5 {
            let account = format!("acct-{}", 4401 + k);
            let shop = &SHOPS[7 + k as usize % 2];
            let at = clock + 1 + k * 1_500_000;
            let tx_id = self.transaction_from(
                &account,
                35_000 + 1_000 * k,
                "EUR",
                shop,
                "NL",
                "ecommerce",
                at,
                Some("fp-ring-7731"),
            );
            self.labels.push((tx_id.clone(), "device-ring"));
            if k == 3 {
                self.story.push(("acct-4404 buys from a phone three other accounts used this hour", tx_id));
            }
        }
    }

    /// A mule beneficiary: five accounts that never paid acct-mule-8080
    /// transfer money to it within a few hours; from the fourth on, it has
    /// too many new senders.
    fn mule_beneficiary(&mut self, clock: i64) {
        let bank = Shop { id: "m-wire", name: "Wire transfer", mcc: "4829", online: true, typical: (0, 0) };
        for k in 0..5 {
            let account = format!("acct-{}", 5501 + k);
            let (tx_id, event_id) = self.next_id();
            let at = clock + 1 + k * 2_400_000;
            let mut line =
                event_value(&event_id, &tx_id, &account, 48_000 + 500 * k, "EUR", &bank, "NL", "transfer", at);
            line["schema_version"] = json!(3);
            line["counterparty_account"] = json!("acct-mule-8080");
            self.lines.push(line.to_string());
            self.labels.push((tx_id.clone(), "mule"));
            if k == 3 {
                self.story
                    .push(("acct-5504 transfers EUR 495.00 to a payee three other new senders paid today", tx_id));
            }
        }
    }

    /// A merchant with a leaking payment page: 25 cards it never saw, of 25
    /// accounts, within the hour; from the 21st on, the merchant has sales
    /// enough to judge and its first-time cards score.
    fn new_cards_at_a_merchant(&mut self, clock: i64) {
        let shop = Shop { id: "m-gadgetzone", name: "GadgetZone", mcc: "5732", online: true, typical: (0, 0) };
        for k in 0..25 {
            let account = format!("acct-{}", 6601 + k);
            let (tx_id, event_id) = self.next_id();
            let at = clock + 1 + k * 120_000;
            let mut line =
                event_value(&event_id, &tx_id, &account, 2_000 + 10 * k, "EUR", &shop, "NL", "ecommerce", at);
            line["schema_version"] = json!(3);
            line["card_fingerprint"] = json!(format!("card-{:016x}", self.rng.random::<u64>()));
            self.lines.push(line.to_string());
            self.labels.push((tx_id.clone(), "compromised-merchant"));
            if k == 20 {
                self.story.push(("acct-6621 is the 21st first-time card at GadgetZone this hour", tx_id));
            }
        }
    }

    /// Malformed input from a buggy producer.
    fn malformed(&mut self, _clock: i64) {
        self.lines.push(r#"{"event_id":"bad-1","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-1","account_id":"acct-00001","amount":{"minor_units":12.5,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"ecommerce"}"#.to_owned());
        self.lines.push(r#"{"event_id":"bad-2","event_type":"TransactionRecorded","schema_version":1,"occurred_at":"2026-11-28T20:00:00Z","transaction_id":"tx-bad-2","account_id":"acct-00002","amount":{"minor_units":1250,"currency":"EUR"},"merchant":{"id":"m-bol","category_code":"5999"},"channel":"telepathy"}"#.to_owned());
        self.lines.push(r#"{"event_id":"bad-3","event_type":"TransactionRecorded","sche"#.to_owned());
    }
}

/// A version 1 `TransactionRecorded`.
#[allow(clippy::too_many_arguments)]
fn event_value(
    event_id: &str,
    tx_id: &str,
    account: &str,
    amount: i64,
    currency: &str,
    shop: &Shop,
    country: &str,
    channel: &str,
    at_ms: i64,
) -> serde_json::Value {
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
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("demo times are valid");
    t.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats every UTC time")
}

/// An index drawn with probability proportional to its weight.
fn weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn uuid_like(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}
