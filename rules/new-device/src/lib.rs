//! New device: a purchase from a device the account has never used.
//!
//! Catches account takeover: a fraudster with stolen credentials or card
//! details buys from their own phone or laptop, not the customer's. A new
//! device alone is common (customers replace phones), so it only adds to the
//! risk score; together with another signal (a new country, a burst of
//! purchases) it makes the transaction suspect.
//!
//! How: version 2 of `TransactionRecorded` carries an optional device
//! fingerprint, which rules read as `tx.device_fingerprint()`. Version 1
//! events have none, and the rule passes them without touching the
//! account's state, so old and new producers can share the topic. The rule
//! keeps the account's devices in the key `devices`: up to `max_devices`
//! 64-bit FNV-1a hashes of fingerprints (16 hex digits each, so a
//! fingerprint of any length or content costs the same), comma-separated,
//! least recently used first. A fingerprint missing from that list scores,
//! unless the list is empty: the first device an account is seen with is its
//! baseline. The device is then remembered (the least recently used one is
//! forgotten when the list is full). The key is written only when the list
//! changes.
//!
//! Parameters:
//! - `new_device_score` (integer, default 20): points for a new device; 0
//!   disables the verdict (devices are still recorded).
//! - `max_devices` (integer 1..=32, default 8): devices remembered.
//!
//! Returns: `Verdict::score(new_device_score, "NEW_DEVICE")` with evidence
//! `device` (the fingerprint) and `known_devices` (how many the account had);
//! else pass.

use weir_sdk::prelude::*;

/// The most devices `max_devices` may ask for.
const MAX_DEVICES: u32 = 32;

/// The parameters, read and checked once per rule instance.
pub struct Config {
    new_device_score: u32,
    max_devices: u32,
}

impl FromParams for Config {
    const PARAMS: &'static [Param] = &[
        Param::integer("new_device_score", 20)
            .range(0, u32::MAX as i64)
            .doc("Risk-score points for a purchase from a device new to the account (NEW_DEVICE); 0 turns it off."),
        Param::integer("max_devices", 8)
            .range(1, MAX_DEVICES as i64)
            .doc("How many devices to remember per account; the least recently used is forgotten first."),
    ];

    fn from_params(p: &Params) -> Result<Self, Error> {
        Ok(Config { new_device_score: p.param("new_device_score")?, max_devices: p.param("max_devices")? })
    }
}

pub fn evaluate(tx: &Transaction, ctx: &mut Context, config: &Config) -> Result<Verdict, Error> {
    let &Config { new_device_score, max_devices } = config;
    let Some(fingerprint) = tx.device_fingerprint() else {
        return Ok(Verdict::pass());
    };
    let device = format!("{:016x}", fnv1a(fingerprint.as_bytes()));

    let stored = ctx.get("devices").unwrap_or_default();
    let mut known: Vec<&str> = stored.split(',').filter(|d| d.len() == 16).collect();
    let verdict = match known.iter().position(|d| *d == device) {
        Some(_) => Verdict::pass(),
        None if !known.is_empty() && new_device_score > 0 => {
            Verdict::score(new_device_score, "NEW_DEVICE", "purchase from a device the account has not used before")
                .with("device", fingerprint)
                .with("known_devices", known.len())
        }
        None => Verdict::pass(),
    };

    // Most recently used last; the oldest goes when the list is full.
    known.retain(|d| *d != device);
    known.push(&device);
    let excess = known.len().saturating_sub(max_devices as usize);
    known.drain(..excess);
    let updated = known.join(",");
    if updated != stored {
        ctx.set("devices", &updated);
    }
    Ok(verdict)
}

/// 64-bit FNV-1a: a stable, dependency-free hash (not a secret: fingerprints
/// are not secrets either, only long).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

weir_sdk::rule!(evaluate, Config);

#[cfg(test)]
mod tests {
    use super::{RULE, fnv1a};
    use weir_sdk::Outcome;
    use weir_sdk::testing::{Harness, tx};

    fn devices(h: &Harness) -> Vec<String> {
        h.account.state.get("devices").map(|d| d.split(',').map(str::to_owned).collect()).unwrap_or_default()
    }

    fn hash(fingerprint: &str) -> String {
        format!("{:016x}", fnv1a(fingerprint.as_bytes()))
    }

    #[test]
    fn version_1_events_pass_and_touch_nothing() {
        let mut h = Harness::new(RULE);
        assert!(h.run(&tx().build()).unwrap().is_pass());
        assert_eq!(h.account.state.get("devices"), None);
    }

    #[test]
    fn the_first_device_is_the_baseline_and_a_second_one_scores() {
        let mut h = Harness::new(RULE);
        assert!(h.run(&tx().device_fingerprint("fp-owner-phone").build()).unwrap().is_pass());
        assert_eq!(devices(&h), [hash("fp-owner-phone")]);
        assert!(h.run(&tx().device_fingerprint("fp-owner-phone").after_secs(60).build()).unwrap().is_pass());

        let v = h.run(&tx().device_fingerprint("fp-unknown-laptop").after_secs(120).build()).unwrap();
        assert_eq!(v.outcome, Outcome::Score(20));
        assert_eq!(v.reason_code, "NEW_DEVICE");
        assert_eq!(v.evidence("device"), Some("fp-unknown-laptop"));
        assert_eq!(v.evidence("known_devices"), Some("1"));
        // Remembered: the next purchase from it passes.
        assert!(h.run(&tx().device_fingerprint("fp-unknown-laptop").after_secs(180).build()).unwrap().is_pass());
        assert_eq!(devices(&h), [hash("fp-owner-phone"), hash("fp-unknown-laptop")]);
    }

    #[test]
    fn the_least_recently_used_device_is_forgotten() {
        let mut h = Harness::new(RULE).param("max_devices", 2);
        for (i, fp) in ["fp-a", "fp-b", "fp-a", "fp-c"].into_iter().enumerate() {
            h.run(&tx().device_fingerprint(fp).after_secs(i as i64 * 60).build()).unwrap();
        }
        // fp-b was used least recently.
        assert_eq!(devices(&h), [hash("fp-a"), hash("fp-c")]);
        let v = h.run(&tx().device_fingerprint("fp-b").after_secs(600).build()).unwrap();
        assert_eq!(v.reason_code, "NEW_DEVICE");
    }

    #[test]
    fn any_fingerprint_is_stored_in_the_same_small_space() {
        let mut h = Harness::new(RULE);
        let odd = format!("a,b\n{}", "x".repeat(200));
        h.run(&tx().device_fingerprint(&odd).build()).unwrap();
        assert_eq!(devices(&h), [hash(&odd)]);
        assert_eq!(h.account.state.get("devices").unwrap().len(), 16);
    }

    #[test]
    fn a_zero_score_records_without_scoring() {
        let mut h = Harness::new(RULE).param("new_device_score", 0);
        h.run(&tx().device_fingerprint("fp-a").build()).unwrap();
        assert!(h.run(&tx().device_fingerprint("fp-b").after_secs(60).build()).unwrap().is_pass());
        assert_eq!(devices(&h).len(), 2);
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        for (mut h, name) in [
            (Harness::new(RULE).param("max_devices", 0), "`max_devices`"),
            (Harness::new(RULE).param("max_devices", 33), "`max_devices`"),
            (Harness::new(RULE).param("new_device_score", "high"), "`new_device_score`"),
        ] {
            let err = h.run(&tx().build()).unwrap_err();
            assert!(err.message().contains(name), "{:?} should name {name}", err.message());
        }
    }
}
