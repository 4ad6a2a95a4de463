//! A rule built for `weir:rule@2.0.0` (the frozen WIT in `host/wit/v2.0`),
//! directly with wit-bindgen, as the SDK built rules before 2.1.0 added the
//! `distinct` interface. The host binds 2.3.0 and must keep running it.
//!
//! Each transaction adds to the series `n` and stores its own size in the
//! key `previous`; the third within an hour is suspected (`V2_0_BURST`,
//! with evidence `count`, `history` and `previous`, the size of the
//! previous transaction's encoding).

#[cfg(target_family = "wasm")]
mod bindings {
    wit_bindgen::generate!({ path: "../../../host/wit/v2.0", world: "rule" });

    use exports::weir::rule::evaluator::Guest;
    use weir::rule::types::{Evidence, Outcome};
    use weir::rule::{account, verdict};

    struct V2;

    impl Guest for V2 {
        fn evaluate(tx: Vec<u8>) -> Result<Outcome, ()> {
            account::window_add("n", 1);
            let count = account::window_count("n", 3_600_000);
            let history = account::history(32).len();
            let previous = account::get("previous").unwrap_or_default();
            account::set("previous", &tx.len().to_string());
            if count < 3 {
                return Ok(Outcome::Pass);
            }
            let evidence = |name: &str, value: String| Evidence { name: name.to_owned(), value };
            verdict::explain(
                "V2_0_BURST",
                &format!("{count} transactions within an hour"),
                &[
                    evidence("count", count.to_string()),
                    evidence("history", history.to_string()),
                    evidence("previous", previous),
                ],
            );
            Ok(Outcome::Suspect)
        }
    }

    export!(V2);
}
