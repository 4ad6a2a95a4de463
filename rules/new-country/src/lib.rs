//! New country: impossible travel, and card use in a country never seen
//! before for the account.
//!
//! Catches cloned or stolen physical cards: a card used in Amsterdam cannot
//! be used in Lisbon twenty minutes later, and a card suddenly used in a
//! country where it has never been is riskier than one used at home.
//!
//! How: only `card_present` and `atm` transactions with a merchant country
//! are looked at; e-commerce merchants' countries say nothing about where the
//! card is. Country codes are ISO 3166-1 alpha-2, compared case-insensitively;
//! anything else counts as no country.
//!
//! 1. Impossible travel: the rule reads the last `history_len` transactions of
//!    the account and takes the newest card-present or ATM one with a country.
//!    If that country differs and less than `min_travel_secs` of event time
//!    separate the two (in either order, since events may arrive late), the
//!    transaction is suspect.
//! 2. New country: the rule keeps the account's known card-present countries
//!    in the key `countries`, a sorted comma-separated list of at most 32
//!    codes (e.g. "DE,NL"), merged with the countries in the history it read
//!    (so accounts older than the rule start with a baseline). A country
//!    missing from that set scores, unless the set is empty: the first
//!    card-present or ATM transaction of an account passes, whatever online
//!    purchases came before it. The country
//!    is then added; once 32 are known, further new ones keep scoring but are
//!    not stored. The key is written only when the set changes.
//!
//! Parameters:
//! - `min_travel_secs` (integer, default 7200): the shortest plausible time
//!   between card-present transactions in two countries; 0 disables step 1.
//! - `new_country_score` (integer, default 30): points for a new country;
//!   0 disables step 2's verdict (countries are still recorded).
//! - `history_len` (integer 1..=32, default 8): how many earlier
//!   transactions to read; the host keeps 32.
//!
//! Returns: `Verdict::suspect("IMPOSSIBLE_TRAVEL")` with evidence `from`,
//! `to`, `seconds`, `min_travel_secs`, `previous_transaction`; else
//! `Verdict::score(new_country_score, "NEW_COUNTRY")` with evidence
//! `country`, `known_countries`; else pass.

use weir_sdk::prelude::*;
use weir_sdk::wire::{HistoryView, PastRef};

/// The most countries kept in the `countries` key.
const MAX_COUNTRIES: usize = 32;

/// An ISO 3166-1 alpha-2 code, upper case.
type Country = [u8; 2];

/// The parameters, read and checked once per rule instance.
pub struct Config {
    min_travel_secs: u64,
    new_country_score: u32,
    history_len: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::integer("min_travel_secs", 7200).min(0).doc(
            "Card-present or ATM use in two countries less than this many seconds apart is IMPOSSIBLE_TRAVEL; 0 turns it off.",
        ),
        Param::integer("new_country_score", 30)
            .range(0, u32::MAX as i64)
            .doc("Risk-score points for a country new to the account (NEW_COUNTRY); 0 turns the verdict off."),
        Param::integer("history_len", 8)
            .range(1, weir_sdk::limits::MAX_HISTORY_LEN)
            .doc("How many earlier transactions to read."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config {
            min_travel_secs: p.param("min_travel_secs")?,
            new_country_score: p.param("new_country_score")?,
            history_len: p.param("history_len")?,
        })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let &Config { min_travel_secs, new_country_score, history_len } = config;
    if !is_physical(tx.channel) {
        return Ok(Verdict::pass());
    }
    let Some(here) = tx.merchant.country.as_deref().and_then(parse_country) else {
        return Ok(Verdict::pass());
    };

    // Read in place: the entries are looked at, never copied.
    let history = ctx.recent(history_len);
    let travel = match located(&history).next() {
        Some((there, previous)) if there != here => {
            let elapsed_ms = tx.occurred_at_ms.abs_diff(previous.occurred_at_ms);
            (elapsed_ms < min_travel_secs.saturating_mul(1000)).then(|| {
                Verdict::suspect("IMPOSSIBLE_TRAVEL", "card used in two countries too far apart for the time between")
                    .with("from", code(&there))
                    .with("to", code(&here))
                    .with("seconds", elapsed_ms / 1000)
                    .with("min_travel_secs", min_travel_secs)
                    .with("previous_transaction", previous.transaction_id)
            })
        }
        _ => None,
    };

    // The known set: what is stored, plus what the history shows.
    let stored = ctx.get("countries");
    let mut known: Vec<Country> = Vec::with_capacity(MAX_COUNTRIES);
    for c in stored.as_deref().unwrap_or("").split(',').filter_map(parse_country) {
        insert(&mut known, c);
    }
    let mut changed = false;
    for (c, _) in located(&history) {
        changed |= insert(&mut known, c);
    }
    let is_new = known.binary_search(&here).is_err();
    // Only a card that has been used somewhere can be used somewhere new.
    let had_history = !known.is_empty();

    let verdict = match travel {
        Some(travel) => travel,
        None if is_new && had_history && new_country_score > 0 => {
            Verdict::score(new_country_score, "NEW_COUNTRY", "card used in a country new for the account")
                .with("country", code(&here))
                .with("known_countries", join(&known))
        }
        None => Verdict::pass(),
    };

    changed |= insert(&mut known, here);
    if changed {
        ctx.set("countries", join(&known));
    }
    Ok(verdict)
}

/// Card-present and ATM transactions of `history` with a country, newest first.
fn located(history: &HistoryView) -> impl Iterator<Item = (Country, PastRef<'_>)> {
    history.iter().filter(|p| is_physical(p.channel)).filter_map(|p| p.country.and_then(parse_country).map(|c| (c, p)))
}

fn is_physical(channel: Channel) -> bool {
    matches!(channel, Channel::CardPresent | Channel::Atm)
}

/// Two ASCII letters, upper-cased; anything else is not a country.
fn parse_country(s: &str) -> Option<Country> {
    match s.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

fn code(c: &Country) -> &str {
    // parse_country only makes ASCII letters.
    std::str::from_utf8(c).unwrap_or("??")
}

/// Adds `c` to the sorted set if absent and there is room; true if added.
fn insert(known: &mut Vec<Country>, c: Country) -> bool {
    match known.binary_search(&c) {
        Err(at) if known.len() < MAX_COUNTRIES => {
            known.insert(at, c);
            true
        }
        _ => false,
    }
}

fn join(known: &[Country]) -> String {
    let mut out = String::with_capacity(known.len() * 3);
    for (i, c) in known.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(code(c));
    }
    out
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::testing::{Harness, TxBuilder, tx};
    use weir_sdk::{Channel, Outcome, PastTransaction};

    fn shop(country: &str, after_secs: i64) -> TxBuilder {
        tx().channel(Channel::CardPresent).country(country).after_secs(after_secs)
    }

    fn countries(h: &Harness) -> Option<&str> {
        h.account.state.get("countries")
    }

    #[test]
    fn first_transaction_of_an_account_passes_and_is_recorded() {
        let mut h = Harness::new(RULE);
        assert!(h.run(&shop("NL", 0).build()).unwrap().is_pass());
        assert_eq!(countries(&h), Some("NL"));
        // The same country again: nothing new, nothing written.
        assert!(h.run(&shop("NL", 60).build()).unwrap().is_pass());
        assert_eq!(countries(&h), Some("NL"));
    }

    #[test]
    fn impossible_travel_just_under_the_minimum() {
        let mut h = Harness::new(RULE);
        h.run(&shop("NL", 0).id("tx-ams").build()).unwrap();
        let v = h.run(&shop("PT", 7199).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Suspect);
        assert_eq!(v.reason_code, "IMPOSSIBLE_TRAVEL");
        assert_eq!(v.evidence("from"), Some("NL"));
        assert_eq!(v.evidence("to"), Some("PT"));
        assert_eq!(v.evidence("seconds"), Some("7199"));
        assert_eq!(v.evidence("min_travel_secs"), Some("7200"));
        assert_eq!(v.evidence("previous_transaction"), Some("tx-ams"));
        // The country is recorded even though the transaction is suspect.
        assert_eq!(countries(&h), Some("NL,PT"));
    }

    #[test]
    fn travel_at_the_minimum_is_possible_but_the_country_is_new() {
        let mut h = Harness::new(RULE);
        h.run(&shop("NL", 0).build()).unwrap();
        let v = h.run(&shop("PT", 7200).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(30));
        assert_eq!(v.reason_code, "NEW_COUNTRY");
        assert_eq!(v.evidence("country"), Some("PT"));
        assert_eq!(v.evidence("known_countries"), Some("NL"));
        assert_eq!(countries(&h), Some("NL,PT"));
        // Back home after the minimum: known, so it passes.
        assert!(h.run(&shop("NL", 14_400).build()).unwrap().is_pass());
    }

    #[test]
    fn travel_within_a_country_passes() {
        let mut h = Harness::new(RULE);
        h.run(&shop("NL", 0).build()).unwrap();
        assert!(h.run(&shop("NL", 1).build()).unwrap().is_pass());
    }

    #[test]
    fn atm_counts_as_card_present() {
        let mut h = Harness::new(RULE);
        h.run(&shop("NL", 0).build()).unwrap();
        let v = h.run(&shop("BE", 600).channel(Channel::Atm).build()).unwrap();
        assert_eq!(v.reason_code, "IMPOSSIBLE_TRAVEL");
        assert_eq!(v.evidence("seconds"), Some("600"));
    }

    #[test]
    fn ecommerce_says_nothing_about_where_the_card_is() {
        let mut h = Harness::new(RULE);
        // An online shop in the US says nothing about where the card is.
        assert!(h.run(&tx().country("US").build()).unwrap().is_pass());
        assert_eq!(countries(&h), None);
        // So the first card-present country is the card's first, not a new one.
        assert!(h.run(&shop("NL", 60).build()).unwrap().is_pass());
        assert_eq!(countries(&h), Some("NL"));
        // The travel check looks past online transactions to the last card-present one.
        assert!(h.run(&tx().country("US").after_secs(120).build()).unwrap().is_pass());
        let v = h.run(&shop("DE", 180).build()).unwrap();
        assert_eq!(v.reason_code, "IMPOSSIBLE_TRAVEL");
        assert_eq!(v.evidence("from"), Some("NL"));
        assert_eq!(v.evidence("seconds"), Some("120"));
    }

    #[test]
    fn known_countries_come_from_state() {
        let mut h = Harness::new(RULE);
        h.account.state.set("countries", "DE,NL");
        assert!(h.run(&shop("DE", 0).build()).unwrap().is_pass());
        let v = h.run(&shop("FR", 8000).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(30));
        assert_eq!(v.evidence("country"), Some("FR"));
        assert_eq!(v.evidence("known_countries"), Some("DE,NL"));
        assert_eq!(countries(&h), Some("DE,FR,NL"));
    }

    #[test]
    fn stored_countries_alone_are_enough_history() {
        let mut h = Harness::new(RULE);
        h.account.state.set("countries", "DE");
        assert_eq!(h.run(&shop("FR", 0).build()).unwrap().outcome, Outcome::Score(30));
    }

    #[test]
    fn history_older_than_the_rule_seeds_the_known_countries() {
        let mut h = Harness::new(RULE);
        // Transactions the account made before the rule was deployed.
        for (i, country) in ["FR", "BE"].into_iter().enumerate() {
            let earlier = shop(country, -86_400 + i as i64 * 3600).build();
            h.account.history.push(PastTransaction::from(&earlier));
        }
        assert!(h.run(&shop("FR", 0).build()).unwrap().is_pass());
        assert_eq!(countries(&h), Some("BE,FR"));
    }

    #[test]
    fn late_events_are_checked_in_either_order() {
        let mut h = Harness::new(RULE);
        h.run(&shop("NL", 3600).build()).unwrap();
        let v = h.run(&shop("PT", 0).build()).unwrap();
        assert_eq!(v.reason_code, "IMPOSSIBLE_TRAVEL");
        assert_eq!(v.evidence("seconds"), Some("3600"));
    }

    #[test]
    fn country_codes_are_normalised_and_junk_is_ignored() {
        let mut h = Harness::new(RULE);
        h.run(&shop("nl", 0).build()).unwrap();
        assert_eq!(countries(&h), Some("NL"));
        assert!(h.run(&shop("NL", 10).build()).unwrap().is_pass());
        assert!(h.run(&shop("N,L", 20).build()).unwrap().is_pass());
        assert!(h.run(&shop("NLD", 30).build()).unwrap().is_pass());
        let mut no_country = shop("NL", 40).build();
        no_country.merchant.country = None;
        assert!(h.run(&no_country).unwrap().is_pass());
        assert_eq!(countries(&h), Some("NL"));
    }

    #[test]
    fn the_known_set_is_bounded() {
        let mut h = Harness::new(RULE);
        // 32 distinct codes in order: AA..AZ, BA..BF.
        let full: Vec<String> =
            (0..32u8).map(|i| String::from_utf8(vec![b'A' + i / 26, b'A' + i % 26]).unwrap()).collect();
        let stored = full.join(",");
        h.account.state.set("countries", &stored);
        let v = h.run(&shop("ZZ", 0).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(30));
        assert_eq!(countries(&h), Some(stored.as_str()));
        // Not stored, so it is still new next time.
        assert_eq!(h.run(&shop("ZZ", 60).build()).unwrap().outcome, Outcome::Score(30));
    }

    #[test]
    fn parameters_change_the_thresholds() {
        let mut h = Harness::new(RULE).param("min_travel_secs", 600).param("new_country_score", 45);
        h.run(&shop("NL", 0).build()).unwrap();
        assert_eq!(h.run(&shop("BE", 599).build()).unwrap().reason_code, "IMPOSSIBLE_TRAVEL");
        assert_eq!(h.run(&shop("DE", 1200).build()).unwrap().outcome, Outcome::Score(45));

        let mut h = Harness::new(RULE).param("min_travel_secs", 0).param("new_country_score", 0);
        h.run(&shop("NL", 0).build()).unwrap();
        assert!(h.run(&shop("BE", 1).build()).unwrap().is_pass());
        assert_eq!(countries(&h), Some("BE,NL"));
    }

    #[test]
    fn history_len_limits_the_lookback() {
        let mut h = Harness::new(RULE).param("history_len", 1);
        h.run(&shop("NL", 0).build()).unwrap();
        h.run(&tx().after_secs(10).build()).unwrap();
        // Only the online purchase is read: no previous location, no travel.
        let v = h.run(&shop("BE", 20).build()).unwrap();
        assert_eq!(v.reason_code, "NEW_COUNTRY");
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let cases = [
            (Harness::new(RULE).param("min_travel_secs", "2h"), "`min_travel_secs`"),
            (Harness::new(RULE).param("min_travel_secs", -1), "`min_travel_secs`"),
            (Harness::new(RULE).param("new_country_score", 2.5), "`new_country_score`"),
            (Harness::new(RULE).param("history_len", 0), "`history_len`"),
            (Harness::new(RULE).param("history_len", 33), "`history_len`"),
        ];
        for (mut h, name) in cases {
            // Parameters are checked on every transaction, not only card-present ones.
            let err = h.run(&tx().build()).unwrap_err();
            assert!(err.message().contains(name), "{:?} should name {name}", err.message());
        }
    }
}
