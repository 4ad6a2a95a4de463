//! Block list: transactions whose account, device, card, counterparty,
//! merchant or country is on one of the bank's runtime block lists.
//!
//! Catches what an analyst has already recognised — a device seen in an
//! account takeover, a mule account collecting stolen transfers, a
//! compromised merchant, a stolen card — from the moment the analyst puts it
//! on a list (`weir list add blocked-devices fp-…`), on every weir instance,
//! without a deploy. An entry may expire (in event time): a merchant blocked
//! for the week of a breach passes again afterwards.
//!
//! How: each entity of the transaction is looked up, by exact match, in the
//! list the parameters name for it (`Context::in_list`); the first one found
//! decides. An account on the allow list is exempt from every block (checked
//! only on a hit, so the common path reads six lists). The decision records
//! the version of every list read, so a replay with the same lists decides
//! the same. No account state is touched.
//!
//! Parameters (each a list name; empty skips that lookup):
//! - `accounts` (default `blocked-accounts`): the transaction's account;
//! - `devices` (default `blocked-devices`): its device fingerprint;
//! - `cards` (default `blocked-cards`): its card fingerprint;
//! - `counterparties` (default `blocked-counterparties`): the account a
//!   transfer goes to;
//! - `merchants` (default `blocked-merchants`): the merchant id;
//! - `countries` (default `blocked-countries`): the merchant's ISO country
//!   code;
//! - `allowed_accounts` (default `allowed-accounts`): accounts exempt;
//! - `action` (`"suspect"` or `"lock"`, default `"suspect"`): what a match
//!   does.
//!
//! Returns: `Verdict::suspect` or `Verdict::lock` (per `action`) with reason
//! `BLOCKED_ACCOUNT`, `BLOCKED_DEVICE`, `BLOCKED_CARD`,
//! `BLOCKED_COUNTERPARTY`, `BLOCKED_MERCHANT` or `BLOCKED_COUNTRY`, and
//! evidence `list` and `value`. Otherwise pass.

use weir_sdk::prelude::*;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    /// (list, reason code, what it is) for each entity looked up, in order.
    lists: Vec<(String, &'static str, &'static str)>,
    allowed_accounts: String,
    lock: bool,
}

/// The entities looked up, in order: (parameter, reason code, what it is).
const LOOKUPS: [(&str, &str, &str); 6] = [
    ("accounts", "BLOCKED_ACCOUNT", "account"),
    ("devices", "BLOCKED_DEVICE", "device"),
    ("cards", "BLOCKED_CARD", "card"),
    ("counterparties", "BLOCKED_COUNTERPARTY", "counterparty"),
    ("merchants", "BLOCKED_MERCHANT", "merchant"),
    ("countries", "BLOCKED_COUNTRY", "country"),
];

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::text("accounts", "blocked-accounts").doc("Runtime list of blocked account ids; empty: not checked."),
        Param::text("devices", "blocked-devices").doc("Runtime list of blocked device fingerprints."),
        Param::text("cards", "blocked-cards").doc("Runtime list of blocked card fingerprints."),
        Param::text("counterparties", "blocked-counterparties")
            .doc("Runtime list of accounts no transfer may go to (mules)."),
        Param::text("merchants", "blocked-merchants").doc("Runtime list of blocked merchant ids."),
        Param::text("countries", "blocked-countries").doc("Runtime list of blocked ISO 3166 country codes."),
        Param::text("allowed_accounts", "allowed-accounts").doc("Runtime list of accounts exempt from every block."),
        Param::choice("action", &["suspect", "lock"], "suspect").doc("What a match does."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        let mut lists = Vec::new();
        for (param, code, what) in LOOKUPS {
            let list: String = p.param(param)?;
            if !list.is_empty() {
                lists.push((list, code, what));
            }
        }
        Ok(Config {
            lists,
            allowed_accounts: p.param("allowed_accounts")?,
            lock: p.param::<String>("action")? == "lock",
        })
    }
}

/// The transaction's value for the entity `what`, if it has one.
fn value_of<'t>(tx: &'t Transaction, what: &str) -> Option<&'t str> {
    match what {
        "account" => Some(&tx.account_id),
        "device" => tx.device_fingerprint(),
        "card" => tx.card_fingerprint(),
        "counterparty" => tx.counterparty_account(),
        "merchant" => Some(&tx.merchant.id),
        "country" => tx.merchant.country.as_deref(),
        _ => None,
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    for (list, code, what) in &config.lists {
        let Some(value) = value_of(tx, what) else { continue };
        if !ctx.in_list(list, value) {
            continue;
        }
        if !config.allowed_accounts.is_empty() && ctx.in_list(&config.allowed_accounts, &tx.account_id) {
            return Ok(Verdict::pass());
        }
        let message = format!("the {what} is on the block list {list}");
        let verdict = if config.lock { Verdict::lock(code, &message) } else { Verdict::suspect(code, &message) };
        return Ok(verdict.with("list", list).with("value", value));
    }
    Ok(Verdict::pass())
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::RULE;
    use weir_sdk::Outcome;
    use weir_sdk::testing::{BASE_TIME_MS, Harness, tx};

    fn harness() -> Harness {
        Harness::new(RULE)
            .list("blocked-devices", ["fp-stolen"])
            .list("blocked-merchants", ["m-fakeshop"])
            .list("blocked-counterparties", ["acct-mule-8080"])
            .list("blocked-countries", ["KP"])
            .list("blocked-cards", ["card-skimmed"])
            .list("blocked-accounts", ["acct-closed"])
    }

    #[test]
    fn each_entity_on_its_list_is_suspected_naming_list_and_value() {
        let cases = [
            (tx().device_fingerprint("fp-stolen").build(), "BLOCKED_DEVICE", "blocked-devices", "fp-stolen"),
            (tx().merchant("m-fakeshop", "5732").build(), "BLOCKED_MERCHANT", "blocked-merchants", "m-fakeshop"),
            (
                tx().counterparty_account("acct-mule-8080").build(),
                "BLOCKED_COUNTERPARTY",
                "blocked-counterparties",
                "acct-mule-8080",
            ),
            (tx().country("KP").build(), "BLOCKED_COUNTRY", "blocked-countries", "KP"),
            (tx().card_fingerprint("card-skimmed").build(), "BLOCKED_CARD", "blocked-cards", "card-skimmed"),
            (tx().account("acct-closed").build(), "BLOCKED_ACCOUNT", "blocked-accounts", "acct-closed"),
        ];
        for (t, code, list, value) in cases {
            let v = harness().run(&t).unwrap();
            assert_eq!((v.outcome, v.reason_code.as_str()), (Outcome::Suspect, code));
            assert_eq!((v.evidence("list"), v.evidence("value")), (Some(list), Some(value)));
        }
    }

    #[test]
    fn everything_else_passes_and_matches_are_exact() {
        let mut h = harness();
        assert!(h.run(&tx().build()).unwrap().is_pass(), "the story's concert tickets");
        assert!(h.run(&tx().device_fingerprint("FP-STOLEN").build()).unwrap().is_pass());
        assert!(h.run(&tx().merchant("m-fakeshop2", "5732").build()).unwrap().is_pass());
        assert!(Harness::new(RULE).run(&tx().device_fingerprint("fp-stolen").build()).unwrap().is_pass(), "no lists");
    }

    #[test]
    fn an_allowed_account_is_exempt() {
        let mut h = harness().list("allowed-accounts", ["acct-vip"]);
        assert!(h.run(&tx().account("acct-vip").device_fingerprint("fp-stolen").build()).unwrap().is_pass());
        let v = h.run(&tx().account("acct-other").device_fingerprint("fp-stolen").build()).unwrap();
        assert_eq!(v.reason_code, "BLOCKED_DEVICE");
    }

    #[test]
    fn an_entry_expires_in_event_time() {
        let mut h = Harness::new(RULE).list_entry_until("blocked-merchants", "m-breached", BASE_TIME_MS + 3_600_000);
        assert_eq!(h.run(&tx().merchant("m-breached", "5411").build()).unwrap().reason_code, "BLOCKED_MERCHANT");
        let later = tx().merchant("m-breached", "5411").after_secs(3_600).build();
        assert!(h.run(&later).unwrap().is_pass(), "from its expiry on, the entry no longer matches");
    }

    #[test]
    fn lists_can_be_renamed_or_skipped_and_action_lock_locks() {
        let mut h = harness().param("devices", "").param("merchants", "shops-under-review").param("action", "lock");
        assert!(h.run(&tx().device_fingerprint("fp-stolen").build()).unwrap().is_pass(), "devices not checked");
        assert!(h.run(&tx().merchant("m-fakeshop", "5732").build()).unwrap().is_pass(), "another list");
        let mut h = h.list("shops-under-review", ["m-fakeshop"]);
        assert_eq!(h.run(&tx().merchant("m-fakeshop", "5732").build()).unwrap().outcome, Outcome::Lock);
    }
}
