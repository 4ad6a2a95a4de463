//! A rule built for the first contract, `weir:rule@1.0.0` (the frozen WIT in
//! `host/wit/v1`), directly with wit-bindgen, exactly as the first SDK's
//! rules were: the transaction arrives as a record of strings and the
//! verdict leaves as one. The host must keep running such rules unchanged.
//!
//! It uses every import of that contract: each transaction adds to the
//! series `n`; the third within an hour is suspected (`LEGACY_BURST`, with
//! evidence `count`, `history` and `previous`, the transaction id stored by
//! the previous call); a transaction with the attribute `legacy.fail`
//! returns an error; one with `legacy.trap` traps.

#[cfg(target_family = "wasm")]
mod bindings {
    wit_bindgen::generate!({ path: "../../../host/wit/v1", world: "rule" });

    use exports::weir::rule::evaluator::Guest;
    use weir::rule::types::{Evidence, LogLevel, Outcome, ParamValue, Transaction, Verdict};
    use weir::rule::{account, log, params};

    struct Legacy;

    impl Guest for Legacy {
        fn evaluate(tx: Transaction) -> Result<Verdict, String> {
            let has = |name: &str| tx.attributes.iter().any(|(k, _)| k == name);
            if has("legacy.fail") {
                return Err(format!("asked to fail on {}", tx.transaction_id));
            }
            if has("legacy.trap") {
                core::arch::wasm32::unreachable();
            }
            let burst = params::all()
                .into_iter()
                .find_map(|(k, v)| match (k.as_str(), v) {
                    ("burst", ParamValue::Integer(n)) => Some(n as u32),
                    _ => None,
                })
                .unwrap_or(3);
            account::window_add("n", 1);
            let count = account::window_count("n", 3_600_000);
            let history = account::history(32).len();
            let previous = account::get("previous").unwrap_or_default();
            account::set("previous", &tx.transaction_id);
            log::log(LogLevel::Debug, &format!("legacy rule saw {}", tx.transaction_id));
            if count < burst {
                return Ok(Verdict {
                    outcome: Outcome::Pass,
                    reason_code: String::new(),
                    message: String::new(),
                    evidence: vec![],
                });
            }
            let evidence = |name: &str, value: String| Evidence { name: name.to_owned(), value };
            Ok(Verdict {
                outcome: Outcome::Suspect,
                reason_code: "LEGACY_BURST".to_owned(),
                message: format!("{count} transactions within an hour"),
                evidence: vec![
                    evidence("count", count.to_string()),
                    evidence("history", history.to_string()),
                    evidence("previous", previous),
                ],
            })
        }
    }

    export!(Legacy);
}
