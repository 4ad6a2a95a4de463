//! The shipped rules compiled natively through the SDK, with the same
//! manifests and version hashes as their wasm builds. Shared by the tests
//! and the engine benchmark (which includes this file by path).

use std::collections::HashMap;

use weir::engine::{Engine, LoadedRule};
use weir::manifest::RuleSpec;
use weir::packages::SHIPPED;

pub fn native_rules() -> Vec<LoadedRule> {
    let natives: HashMap<&str, weir_sdk::NativeRule> = HashMap::from([
        ("large-amount", large_amount::RULE),
        ("velocity", velocity::RULE),
        ("card-testing", card_testing::RULE),
        ("new-country", new_country::RULE),
        ("merchant-block", merchant_block::RULE),
        ("new-device", new_device::RULE),
        ("shared-device", shared_device::RULE),
        ("mule-beneficiary", mule_beneficiary::RULE),
        ("merchant-new-cards", merchant_new_cards::RULE),
        ("blocklist", blocklist::RULE),
    ]);
    SHIPPED
        .iter()
        .map(|r| {
            let spec = RuleSpec::parse(r.manifest).expect("shipped manifests parse");
            let hash = weir::engine::content_hash(r.component, r.manifest);
            Engine::native(spec, natives[r.name], &hash).expect("shipped parameters resolve")
        })
        .collect()
}
