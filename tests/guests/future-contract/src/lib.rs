//! A rule built against a future contract, `weir:rule@3.0.0`, with the same
//! shape as 1.0.0. The host must refuse it and say which version it asked for.

#[cfg(target_family = "wasm")]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "rule" });

    use exports::weir::rule::evaluator::Guest;
    use weir::rule::types::{Outcome, Transaction, Verdict};

    struct Future;

    impl Guest for Future {
        fn evaluate(_tx: Transaction) -> Result<Verdict, String> {
            Ok(Verdict { outcome: Outcome::Pass, reason_code: String::new(), message: String::new(), evidence: vec![] })
        }
    }

    export!(Future);
}
