//! The event contracts: old fixtures keep parsing, invalid input is rejected with a reason that
//! names the field, and the JSON Schemas in `schemas/` match the Rust event types in both
//! directions (every serialized key is described, every required key is always written).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use weir::events::*;
use weir_sdk::{Channel, Money};

// ---------------------------------------------------------------------------------------------
// Helpers

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn schema(name: &str) -> Value {
    read_json(&repo_path(&format!("schemas/{name}")))
}

/// A draft 2020-12 validator that also checks `format` (date-time, uuid).
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema {} does not compile: {e}", schema["$id"]))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not validate:\n  {}\n{instance:#}", errors.join("\n  "));
}

/// The fixtures under `tests/fixtures/transaction-recorded/<dir>`, sorted by name.
fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = repo_path(&format!("tests/fixtures/transaction-recorded/{dir}"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = format!("{dir}/{}", path.file_name().expect("file name").to_string_lossy());
            let bytes = std::fs::read(&path).expect("fixture is readable");
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", root.display());
    files
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut all = fixtures("v1");
    all.extend(fixtures("v2"));
    all.extend(fixtures("v3"));
    all
}

fn parse(bytes: &[u8]) -> Result<TransactionRecorded, InvalidEvent> {
    parse_transaction(bytes, MAX_EVENT_BYTES)
}

/// The input contract's example (also the v1 schema's `examples`), from its fixture.
fn design_example_bytes() -> Vec<u8> {
    std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/design-example.json")).expect("design example")
}

fn design_example() -> TransactionRecorded {
    parse(&design_example_bytes()).expect("the input contract's example parses")
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("serializes")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().cloned().collect()
}

/// Follows a local `$ref` (`#/$defs/name`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("non-local $ref {reference}"));
            &root["$defs"][name]
        }
        None => node,
    }
}

/// Checks that the object schema `node` describes exactly what the type writes: the union of the
/// samples' keys is the schema's `properties`, and the keys every sample has (the ones the type
/// always writes) are the schema's `required`. Samples must include one with every optional
/// field set and one with none.
fn assert_schema_matches(what: &str, node: &Value, samples: &[Value]) {
    let properties = keys(&node["properties"]);
    let required: BTreeSet<String> = node["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: schema has no `required`"))
        .iter()
        .map(|k| k.as_str().expect("required names are strings").to_owned())
        .collect();
    let written: BTreeSet<String> = samples.iter().flat_map(keys).collect();
    let always: BTreeSet<String> =
        samples.iter().map(keys).reduce(|a, b| a.intersection(&b).cloned().collect()).expect("at least one sample");
    assert_eq!(
        written,
        properties,
        "{what}: keys the type writes (left) differ from the schema's properties (right); \
         not in the schema: {:?}, never written: {:?}",
        written.difference(&properties).collect::<Vec<_>>(),
        properties.difference(&written).collect::<Vec<_>>(),
    );
    assert_eq!(
        always,
        required,
        "{what}: keys the type always writes (left) differ from the schema's required (right); \
         required but sometimes absent: {:?}, always written but not required: {:?}",
        required.difference(&always).collect::<Vec<_>>(),
        always.difference(&required).collect::<Vec<_>>(),
    );
}

fn schema_file(decision: DecisionType) -> &'static str {
    match decision {
        DecisionType::TransactionVerified => "transaction-verified.v1.schema.json",
        DecisionType::FraudSuspected => "fraud-suspected.v1.schema.json",
        DecisionType::AccountLocked => "account-locked.v1.schema.json",
    }
}

// ---------------------------------------------------------------------------------------------
// Samples of the decision types

fn rule(id: &str, mode: RuleMode, outcome: RuleOutcome) -> RuleResult {
    let digit = char::from(b'a' + (id.len() % 6) as u8);
    RuleResult {
        rule_id: id.into(),
        rule_version: format!("sha256:{}", digit.to_string().repeat(64)).into(),
        version_label: "1.0.0".into(),
        mode,
        outcome,
        score: 0,
        reason_code: String::new(),
        message: String::new(),
        evidence: Vec::new(),
        error: None,
        failure_policy: None,
        lists: Vec::new(),
    }
}

fn explained(mut r: RuleResult, code: &str, message: &str, evidence: &[(&str, &str)]) -> RuleResult {
    r.reason_code = code.to_owned();
    r.message = message.to_owned();
    r.evidence = evidence.iter().map(|(n, v)| Evidence { name: (*n).to_owned(), value: (*v).to_owned() }).collect();
    r
}

fn failed(mut r: RuleResult, error: &str, policy: FailurePolicy) -> RuleResult {
    r.error = Some(error.to_owned());
    r.failure_policy = Some(policy);
    r
}

/// Every outcome, in both modes, with and without the optional fields, in rule-id order.
fn sample_rules() -> Vec<RuleResult> {
    use RuleMode::*;
    use RuleOutcome::*;
    let mut scored = explained(rule("b-velocity", Enforce, Score), "VELOCITY", "5 in 60 s", &[("count", "5")]);
    scored.score = 30;
    let mut shadow_scored = rule("g-new-country", Shadow, Score);
    shadow_scored.score = 15;
    let mut listed = explained(
        rule("d-merchant-block", Enforce, Lock),
        "BLOCKED_MERCHANT",
        "merchant on the block list",
        &[("merchant_id", "m-ticketsrus"), ("list", "blocked_merchants")],
    );
    listed.lists = vec![
        ListVersion { list: "blocked-merchants".into(), version: 0x00f1_a2b3_c4d5_e6f7 },
        ListVersion { list: "allowed-\"accounts\"".into(), version: 0x8000_0000_0000_0000 },
    ];
    let rules = vec![
        rule("a-large-amount", Enforce, Pass),
        scored,
        explained(rule("c-card-testing", Shadow, Suspect), "CARD_TESTING", "small amounts then a large one", &[]),
        listed,
        failed(rule("e-hostile", Shadow, Error), "rule ran out of fuel", FailurePolicy::FailOpen),
        failed(rule("f-broken", Enforce, Error), "wasm trap: unreachable", FailurePolicy::FailClosed),
        shadow_scored,
    ];
    let ids: Vec<&str> = rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert!(ids.is_sorted(), "sample rules are in rule-id order");
    rules
}

/// A decision of type `decision` for the input contract's example; `full` sets every optional field.
fn sample_decision(decision: DecisionType, full: bool) -> DecisionEvent {
    let input = design_example();
    let reason = match decision {
        DecisionType::AccountLocked => Some("d-merchant-block: merchant on the block list".to_owned()),
        _ if full => Some("b-velocity: 5 in 60 s".to_owned()),
        _ => None,
    };
    DecisionEvent {
        event_id: decision_event_id(&input.event_id),
        event_type: decision,
        schema_version: DECISION_SCHEMA_VERSION,
        occurred_at: input.occurred_at,
        causation_id: input.event_id.clone(),
        transaction_id: input.transaction_id.clone(),
        account_id: input.account_id.clone(),
        amount: input.amount.clone(),
        merchant_id: input.merchant.id.clone(),
        score: 30,
        reason,
        rules: if full { sample_rules() } else { vec![rule("a-large-amount", RuleMode::Enforce, RuleOutcome::Pass)] },
        engine: EngineInfo::current(),
        input: InputPosition { topic: "transactions".to_owned(), partition: 3, offset: 184_467 },
    }
}

// ---------------------------------------------------------------------------------------------
// TransactionRecorded: fixtures

#[test]
fn every_v1_and_v2_fixture_parses_and_round_trips() {
    let mut channels = BTreeSet::new();
    for (name, bytes) in all_fixtures() {
        let event = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        channels.insert(event.channel.as_str());
        let written = serde_json::to_vec(&event).expect("serializes");
        let again = parse(&written).unwrap_or_else(|e| panic!("{name}, written back: {e}"));
        assert_eq!(again, event, "{name}: serialize → parse changes the value");
        assert_eq!(serde_json::to_vec(&again).expect("serializes"), written, "{name}: output is not stable");
    }
    assert_eq!(
        channels,
        BTreeSet::from(["card_present", "ecommerce", "transfer", "atm"]),
        "fixtures cover every channel"
    );
}

#[test]
fn design_example_has_the_exact_expected_values() {
    let event = design_example();
    assert_eq!(event.event_id, "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41");
    assert_eq!(event.event_type, "TransactionRecorded");
    assert_eq!(event.schema_version, 1);
    assert_eq!(event.occurred_at, time::macros::datetime!(2026-11-28 19:42:07.512 UTC));
    assert_eq!(event.occurred_at_ms(), 1_795_894_927_512);
    assert_eq!(event.transaction_id, "tx-000184467");
    assert_eq!(event.account_id, "acct-1029");
    assert_eq!(event.amount, Money { minor_units: 18900, currency: "EUR".to_owned() });
    assert_eq!(
        event.merchant,
        Merchant {
            id: "m-ticketsrus".to_owned(),
            name: Some("Tickets R Us".to_owned()),
            category_code: "7922".to_owned(),
            country: Some("NL".to_owned()),
        }
    );
    assert_eq!(event.channel, Channel::Ecommerce);
    assert_eq!(event.attributes.len(), 1);
    assert_eq!(event.attributes["card_last4"], "4242");

    // Written back, it is the input contract's example, key for key and value for value.
    let original: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    assert_eq!(to_value(&event), original);
}

#[test]
fn design_example_converts_to_the_sdk_view() {
    let event = design_example();
    let tx = event.to_rule_transaction(HostFacts::default());
    assert_eq!(tx.event_id, event.event_id);
    assert_eq!(tx.transaction_id, "tx-000184467");
    assert_eq!(tx.account_id, "acct-1029");
    assert_eq!(tx.amount.minor_units, 18900);
    assert_eq!(tx.merchant.id, "m-ticketsrus");
    assert_eq!(tx.merchant.name.as_deref(), Some("Tickets R Us"));
    assert_eq!(tx.merchant.category_code, "7922");
    assert_eq!(tx.merchant.country.as_deref(), Some("NL"));
    assert_eq!(tx.channel, Channel::Ecommerce);
    assert_eq!(tx.occurred_at_ms, 1_795_894_927_512);
    assert_eq!(tx.attribute("card_last4"), Some("4242"));

    let past = event.to_past();
    assert_eq!(past, weir_sdk::PastTransaction::from(&tx));

    // Attributes reach rules in key order, whatever the order on the wire.
    let mut value: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    value["attributes"] = json!({ "zeta": "1", "alpha": "2", "mid": "3" });
    let reordered = parse(value.to_string().as_bytes()).expect("parses");
    let attributes = reordered.to_rule_transaction(HostFacts::default()).attributes;
    let names: Vec<&str> = attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

#[test]
fn optional_fields_may_be_absent() {
    let event = parse(&std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/minimal.json")).unwrap())
        .expect("minimal fixture parses");
    assert_eq!(event.merchant.name, None);
    assert_eq!(event.merchant.country, None);
    assert!(event.attributes.is_empty());
    let written = to_value(&event);
    assert_eq!(keys(&written["merchant"]), BTreeSet::from(["id".to_owned(), "category_code".to_owned()]));
    assert!(written.get("attributes").is_none(), "empty attributes are not written");
}

#[test]
fn unknown_fields_are_ignored_at_the_top_level_and_inside_objects() {
    let event = parse(&std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/unknown-fields.json")).unwrap())
        .expect("unknown fields are ignored");
    assert_eq!(event.merchant.id, "m-nordic-rail");
    assert_eq!(event.amount, Money { minor_units: 4250, currency: "SEK".to_owned() });
    let written = to_value(&event);
    for unknown in ["producer", "trace", "risk_flags", "legacy_amount", "note"] {
        assert!(written.get(unknown).is_none(), "{unknown} is dropped");
    }
    assert!(written["merchant"].get("acquirer").is_none());
}

fn v2_fixture(file: &str) -> (String, Vec<u8>) {
    fixtures("v2").into_iter().find(|(n, _)| n.ends_with(file)).unwrap_or_else(|| panic!("no v2 fixture {file}"))
}

#[test]
fn a_v2_event_carries_its_device_fingerprint_to_rules() {
    let (name, bytes) = v2_fixture("device-fingerprint.json");
    let event = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(event.schema_version, 2);
    assert_eq!(event.device_fingerprint.as_deref(), Some("fp-9d4c2a7e61b03f58"));
    assert_eq!(to_value(&event)["device_fingerprint"], "fp-9d4c2a7e61b03f58", "written back");
    let tx = event.to_rule_transaction(HostFacts::default());
    assert_eq!(tx.device_fingerprint(), Some("fp-9d4c2a7e61b03f58"));
    assert_eq!(tx.attribute("card_last4"), Some("4242"), "the producer's attributes are kept");
    assert!(!tx.merchant_confirmed_by_customer());
    // A v1 event has none, and writes none.
    let v1 = design_example();
    assert_eq!(v1.device_fingerprint, None);
    assert!(to_value(&v1).get("device_fingerprint").is_none());
    assert_eq!(v1.to_rule_transaction(HostFacts::default()).device_fingerprint(), None);
}

#[test]
fn a_v2_event_with_an_unknown_device_object_parses() {
    let (name, bytes) = v2_fixture("unknown-device-object.json");
    let raw: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(raw["device"]["fingerprint"], "fp-9d4c2a7e61b03f58", "{name} carries a field weir does not know");
    let event = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(event.schema_version, 2);
    assert_eq!(event.transaction_id, "tx-000290001");
    assert_eq!(event.device_fingerprint, None, "only the top-level device_fingerprint is the v2 field");
    assert!(to_value(&event).get("device").is_none());
}

#[test]
fn reserved_attributes_come_from_the_host_never_from_the_producer() {
    let mut value: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    value["attributes"] = json!({
        "card_last4": "4242",
        "weir.customer_confirmed_merchant": "true",
        "weir.device_fingerprint": "fp-forged",
        "weir.counterparty_account": "NL00FORGED",
        "weir.card_fingerprint": "card-forged",
        "weir.anything": "x"
    });
    let event = parse(value.to_string().as_bytes()).expect("parses");
    let tx = event.to_rule_transaction(HostFacts::default());
    assert_eq!(tx.attributes, [("card_last4".to_owned(), "4242".to_owned())]);
    assert!(!tx.merchant_confirmed_by_customer());
    assert_eq!(tx.device_fingerprint(), None);
    assert_eq!((tx.counterparty_account(), tx.card_fingerprint()), (None, None));

    let confirmed = HostFacts { merchant_confirmed_by_customer: true };
    let mut v2 = event.clone();
    v2.device_fingerprint = Some("fp-real".to_owned());
    v2.counterparty_account = Some("NL91ABNA0417164300".to_owned());
    v2.card_fingerprint = Some("card-real".to_owned());
    let names: Vec<(String, String)> = v2.rule_attributes(confirmed);
    assert_eq!(
        names,
        [
            ("card_last4".to_owned(), "4242".to_owned()),
            ("weir.card_fingerprint".to_owned(), "card-real".to_owned()),
            ("weir.counterparty_account".to_owned(), "NL91ABNA0417164300".to_owned()),
            ("weir.customer_confirmed_merchant".to_owned(), "true".to_owned()),
            ("weir.device_fingerprint".to_owned(), "fp-real".to_owned()),
        ],
        "in key order"
    );
    let tx = v2.to_rule_transaction(confirmed);
    assert!(tx.merchant_confirmed_by_customer());
    assert_eq!(tx.device_fingerprint(), Some("fp-real"));
}

/// Rules built for `weir:rule@2` get the transaction in the wire encoding;
/// decoded, it is exactly what the record form and native rules get,
/// reserved attributes and their order included — also for producer
/// attributes that sort after `weir.`.
#[test]
fn the_wire_encoding_gives_rules_the_same_transaction() {
    let mut value: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    value["attributes"] = json!({ "a": "1", "weir.forged": "x", "zeta": "2", "card_last4": "4242" });
    let event = parse(value.to_string().as_bytes()).expect("parses");
    let mut v2 = event.clone();
    v2.device_fingerprint = Some("fp-real".to_owned());
    v2.merchant.name = None;
    let mut v3 = v2.clone();
    v3.counterparty_account = Some("NL91ABNA0417164300".to_owned());
    v3.card_fingerprint = Some("card-real".to_owned());
    for tx in [&event, &v2, &v3] {
        for confirmed in [false, true] {
            let facts = HostFacts { merchant_confirmed_by_customer: confirmed };
            let mut bytes = Vec::new();
            tx.encode_for_rules(facts, &mut bytes);
            let decoded = weir_sdk::wire::decode_transaction(&bytes).expect("decodes");
            assert_eq!(decoded, tx.to_rule_transaction(facts), "confirmed: {confirmed}");
        }
    }
}

#[test]
fn v2_schema_is_v1_plus_the_optional_device_fingerprint() {
    let v1 = schema("transaction-recorded.v1.schema.json");
    let v2 = schema("transaction-recorded.v2.schema.json");
    let mut added: Vec<&String> = v2["properties"].as_object().unwrap().keys().collect();
    added.retain(|k| v1["properties"].get(k.as_str()).is_none());
    assert_eq!(added, ["device_fingerprint"], "v2 adds one field");
    assert_eq!(v1["required"], v2["required"], "and makes nothing new required");
    for key in v1["properties"].as_object().unwrap().keys() {
        if key != "schema_version" {
            assert_eq!(v1["properties"][key], v2["properties"][key], "{key} is unchanged");
        }
    }
    assert_eq!(v1["$defs"], v2["$defs"]);

    let validator = validator(&v2);
    for (name, bytes) in all_fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_valid(&validator, &value, &format!("{name} against v2"));
    }
    let (_, bytes) = v2_fixture("device-fingerprint.json");
    let full = to_value(&parse(&bytes).unwrap());
    let minimal = to_value(
        &parse(&std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/minimal.json")).unwrap()).unwrap(),
    );
    assert_schema_matches("TransactionRecorded v2", &v2, &[full, minimal]);
    // The v2 field is checked like an identifier, by the schema and by the parser.
    let mut value: Value = serde_json::from_slice(&bytes).unwrap();
    value["device_fingerprint"] = json!("");
    assert!(!validator.is_valid(&value));
    let error = parse(value.to_string().as_bytes()).unwrap_err().to_string();
    assert!(error.contains("field `device_fingerprint`: must not be empty"), "{error}");
    value["device_fingerprint"] = json!(42);
    assert!(!validator.is_valid(&value));
    let error = parse(value.to_string().as_bytes()).unwrap_err().to_string();
    assert!(error.contains("`device_fingerprint`"), "{error}");
    for example in v2["examples"].as_array().expect("the v2 schema has examples") {
        assert_valid(&validator, example, "the v2 schema's example");
        let event: TransactionRecorded = serde_json::from_value(example.clone()).expect("the example parses");
        assert_eq!(&to_value(&event), example);
    }
}

fn v3_fixture(file: &str) -> (String, Vec<u8>) {
    fixtures("v3").into_iter().find(|(n, _)| n.ends_with(file)).unwrap_or_else(|| panic!("no v3 fixture {file}"))
}

#[test]
fn a_v3_event_carries_its_counterparty_and_card_to_rules() {
    let (name, bytes) = v3_fixture("transfer.json");
    let transfer = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(transfer.schema_version, 3);
    assert_eq!(transfer.counterparty_account.as_deref(), Some("NL91ABNA0417164300"));
    assert_eq!(to_value(&transfer)["counterparty_account"], "NL91ABNA0417164300", "written back");
    let tx = transfer.to_rule_transaction(HostFacts::default());
    assert_eq!((tx.counterparty_account(), tx.card_fingerprint()), (Some("NL91ABNA0417164300"), None));

    let (name, bytes) = v3_fixture("card.json");
    let card = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let tx = card.to_rule_transaction(HostFacts::default());
    assert_eq!(tx.card_fingerprint(), Some("card-5f0e1d2c3b4a"));
    assert_eq!(tx.device_fingerprint(), Some("fp-9d4c2a7e61b03f58"), "the v2 field stays");
    assert_eq!(tx.counterparty_account(), None);
    // Earlier versions have neither, and write neither.
    let v1 = design_example();
    assert!(to_value(&v1).get("counterparty_account").is_none() && to_value(&v1).get("card_fingerprint").is_none());
}

#[test]
fn v3_schema_is_v2_plus_the_optional_counterparty_and_card() {
    let v2 = schema("transaction-recorded.v2.schema.json");
    let v3 = schema("transaction-recorded.v3.schema.json");
    let mut added: Vec<&String> = v3["properties"].as_object().unwrap().keys().collect();
    added.retain(|k| v2["properties"].get(k.as_str()).is_none());
    added.sort();
    assert_eq!(added, ["card_fingerprint", "counterparty_account"], "v3 adds two fields");
    assert_eq!(v2["required"], v3["required"], "and makes nothing new required");
    for key in v2["properties"].as_object().unwrap().keys() {
        if key != "schema_version" {
            assert_eq!(v2["properties"][key], v3["properties"][key], "{key} is unchanged");
        }
    }
    assert_eq!(v2["$defs"], v3["$defs"]);

    // Every fixture, of every version, is valid against v1, v2 and v3:
    // the versions share a topic.
    let validators: Vec<_> = ["v1", "v2", "v3"]
        .iter()
        .map(|v| validator(&schema(&format!("transaction-recorded.{v}.schema.json"))))
        .collect();
    for (name, bytes) in all_fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("JSON");
        for (i, validator) in validators.iter().enumerate() {
            assert_valid(validator, &value, &format!("{name} against v{}", i + 1));
        }
    }
    let full: Vec<Value> = fixtures("v3").iter().map(|(_, bytes)| to_value(&parse(bytes).unwrap())).collect();
    assert_schema_matches("TransactionRecorded v3", &v3, &full);
    // The v3 fields are checked like identifiers, by the schema and by the parser.
    let (_, bytes) = v3_fixture("card.json");
    for field in ["counterparty_account", "card_fingerprint"] {
        let mut value: Value = serde_json::from_slice(&bytes).unwrap();
        value[field] = json!("");
        assert!(!validators[2].is_valid(&value));
        let error = parse(value.to_string().as_bytes()).unwrap_err().to_string();
        assert!(error.contains(&format!("field `{field}`: must not be empty")), "{error}");
        value[field] = json!(42);
        assert!(!validators[2].is_valid(&value));
        let error = parse(value.to_string().as_bytes()).unwrap_err().to_string();
        assert!(error.contains(&format!("`{field}`")), "{error}");
    }
    for example in v3["examples"].as_array().expect("the v3 schema has examples") {
        assert_valid(&validators[2], example, "the v3 schema's example");
        let event: TransactionRecorded = serde_json::from_value(example.clone()).expect("the example parses");
        assert_eq!(&to_value(&event), example);
    }
}

// ---------------------------------------------------------------------------------------------
// Customer confirmations

fn confirmation_json() -> Value {
    json!({
        "event_id": "c0a80101-0000-4000-8000-000000000001",
        "event_type": "TransactionVerified",
        "schema_version": 1,
        "occurred_at": "2026-11-28T19:50:00.000Z",
        "causation_id": "9f1c3b2a-5d4e-5f60-8a7b-1c2d3e4f5a6b",
        "transaction_id": "tx-000184470",
        "account_id": "acct-3307",
        "merchant_id": "m-luckybets",
        "verified_by": "customer"
    })
}

#[test]
fn a_customer_confirmation_is_an_input_event_of_its_own() {
    let value = confirmation_json();
    let event = parse_input(value.to_string().as_bytes(), MAX_EVENT_BYTES).expect("parses");
    let InputEvent::CustomerConfirmation(c) = &event else { panic!("not a confirmation: {event:?}") };
    assert_eq!(event.account_id(), "acct-3307");
    assert_eq!(c.merchant_id, "m-luckybets");
    assert_eq!(c.transaction_id, "tx-000184470");
    assert_eq!(c.verified_by, "customer");
    assert_eq!(to_value(c), value, "written back key for key");
    // Transactions still parse as transactions.
    assert!(matches!(parse_input(&design_example_bytes(), MAX_EVENT_BYTES), Ok(InputEvent::Transaction(_))));
    // Unknown fields are ignored here too.
    let mut extra = confirmation_json();
    extra["channel_of_answer"] = json!("app");
    assert!(parse_input(extra.to_string().as_bytes(), MAX_EVENT_BYTES).is_ok());
}

#[test]
fn malformed_confirmations_are_rejected_naming_the_field() {
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "verified by someone else",
            {
                let mut v = confirmation_json();
                v["verified_by"] = json!("weir");
                v
            },
            &["field `verified_by`", "\"weir\""],
        ),
        (
            "no merchant",
            {
                let mut v = confirmation_json();
                v.as_object_mut().unwrap().remove("merchant_id");
                v
            },
            &["customer confirmation", "missing field `merchant_id`", "`merchant_id`"],
        ),
        (
            "empty account",
            {
                let mut v = confirmation_json();
                v["account_id"] = json!("");
                v
            },
            &["field `account_id`: must not be empty"],
        ),
        (
            "a time that is not RFC 3339",
            {
                let mut v = confirmation_json();
                v["occurred_at"] = json!("yesterday");
                v
            },
            &["customer confirmation", "`occurred_at`"],
        ),
    ];
    let validator = validator(&schema("customer-confirmation.v1.schema.json"));
    for (name, value, expected) in cases {
        let error = parse_input(value.to_string().as_bytes(), MAX_EVENT_BYTES).expect_err(name).to_string();
        for e in expected {
            assert!(error.contains(e), "{name}: {error:?} does not contain {e:?}");
        }
        assert!(!validator.is_valid(&value), "{name}: the schema accepts what the parser rejects");
    }
}

#[test]
fn the_confirmation_schema_matches_the_type() {
    let schema = schema("customer-confirmation.v1.schema.json");
    let validator = validator(&schema);
    let value = confirmation_json();
    assert_valid(&validator, &value, "the confirmation");
    let InputEvent::CustomerConfirmation(c) = parse_input(value.to_string().as_bytes(), MAX_EVENT_BYTES).unwrap()
    else {
        panic!("not a confirmation")
    };
    assert_schema_matches("CustomerConfirmation", &schema, &[to_value(&c)]);
    for example in schema["examples"].as_array().expect("the confirmation schema has examples") {
        assert_valid(&validator, example, "the schema's example");
        assert!(parse_input(example.to_string().as_bytes(), MAX_EVENT_BYTES).is_ok());
    }
}

fn unlock_json() -> Value {
    json!({
        "event_id": "u-0001",
        "event_type": "AccountUnlocked",
        "schema_version": 1,
        "occurred_at": "2026-11-29T09:15:00.000Z",
        "account_id": "acct-3307",
        "transaction_id": "tx-000184470",
        "analyst": "analyst-12",
        "note": "identity checked by phone"
    })
}

#[test]
fn the_unlock_schema_matches_the_type() {
    let schema = schema("account-unlocked.v1.schema.json");
    let validator = validator(&schema);
    let mut samples = Vec::new();
    for value in [unlock_json(), {
        let mut v = unlock_json();
        v.as_object_mut().unwrap().remove("note");
        v
    }] {
        assert_valid(&validator, &value, "the unlock");
        let Ok(InputEvent::AccountUnlocked(u)) = parse_input(value.to_string().as_bytes(), MAX_EVENT_BYTES) else {
            panic!("not an unlock: {value}")
        };
        samples.push(to_value(&u));
    }
    assert_schema_matches("AccountUnlocked", &schema, &samples);
    for example in schema["examples"].as_array().expect("the unlock schema has examples") {
        assert_valid(&validator, example, "the schema's example");
        assert!(matches!(
            parse_input(example.to_string().as_bytes(), MAX_EVENT_BYTES),
            Ok(InputEvent::AccountUnlocked(_))
        ));
    }
}

#[test]
fn an_invalid_unlock_is_rejected_by_parser_and_schema_naming_the_field() {
    let with = |key: &str, value: Value| {
        let mut v = unlock_json();
        v[key] = value;
        v
    };
    let without = |key: &str| {
        let mut v = unlock_json();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("no analyst", without("analyst"), &["AccountUnlocked", "`analyst`"]),
        ("no transaction", without("transaction_id"), &["AccountUnlocked", "`transaction_id`"]),
        ("empty account", with("account_id", json!("")), &["field `account_id`: must not be empty"]),
        ("a note too long", with("note", json!("n".repeat(MAX_NOTE_BYTES + 1))), &["field `note`"]),
        ("a number for a note", with("note", json!(7)), &["AccountUnlocked", "`note`"]),
        ("a time that is not RFC 3339", with("occurred_at", json!("now")), &["AccountUnlocked", "`occurred_at`"]),
    ];
    let validator = validator(&schema("account-unlocked.v1.schema.json"));
    for (name, value, expected) in cases {
        let error = parse_input(value.to_string().as_bytes(), MAX_EVENT_BYTES).expect_err(name).to_string();
        for e in expected {
            assert!(error.contains(e), "{name}: {error:?} does not contain {e:?}");
        }
        assert!(!validator.is_valid(&value), "{name}: the schema accepts what the parser rejects");
    }
}

fn disposition_json() -> Value {
    json!({
        "event_id": "r-0001",
        "event_type": "CaseResolved",
        "schema_version": 1,
        "occurred_at": "2026-11-29T10:02:00.000Z",
        "account_id": "acct-2211",
        "transaction_ids": ["tx-1", "tx-2"],
        "verdict": "fraud",
        "pattern": "card-testing",
        "analyst": "analyst-12",
        "note": "card reported stolen"
    })
}

#[test]
fn the_disposition_schema_matches_the_type() {
    let schema = schema("case-resolved.v1.schema.json");
    let validator = validator(&schema);
    let mut samples = Vec::new();
    let mut bare = disposition_json();
    for key in ["pattern", "note"] {
        bare.as_object_mut().unwrap().remove(key);
    }
    for value in [disposition_json(), bare] {
        assert_valid(&validator, &value, "the disposition");
        let resolved = parse_disposition(value.to_string().as_bytes()).unwrap_or_else(|e| panic!("{value}: {e}"));
        samples.push(to_value(&resolved));
    }
    assert_schema_matches("CaseResolved", &schema, &samples);
    for example in schema["examples"].as_array().expect("the disposition schema has examples") {
        assert_valid(&validator, example, "the schema's example");
        assert!(parse_disposition(example.to_string().as_bytes()).is_ok());
    }
}

fn list_change_json() -> Value {
    json!({
        "event_id": "l-0001",
        "event_type": "ListChanged",
        "schema_version": 1,
        "occurred_at": "2026-12-05T09:15:00.000Z",
        "list": "blocked-devices",
        "value": "fp-7c1e9a",
        "action": "add",
        "expires_at": "2027-01-05T00:00:00.000Z",
        "analyst": "analyst-12",
        "note": "seen in three takeovers"
    })
}

#[test]
fn the_list_change_schema_matches_the_type() {
    let schema = schema("list-changed.v1.schema.json");
    let validator = validator(&schema);
    let mut samples = Vec::new();
    let mut bare = list_change_json();
    for key in ["expires_at", "note"] {
        bare.as_object_mut().unwrap().remove(key);
    }
    let mut removal = bare.clone();
    removal["action"] = json!("remove");
    for value in [list_change_json(), bare, removal] {
        assert_valid(&validator, &value, "the list change");
        let change = parse_list_change(value.to_string().as_bytes()).unwrap_or_else(|e| panic!("{value}: {e}"));
        samples.push(to_value(&change));
    }
    assert_schema_matches("ListChanged", &schema, &samples);
    for example in schema["examples"].as_array().expect("the list change schema has examples") {
        assert_valid(&validator, example, "the schema's example");
        assert!(parse_list_change(example.to_string().as_bytes()).is_ok());
    }
}

#[test]
fn an_invalid_list_change_is_rejected_by_parser_and_schema_naming_the_field() {
    let with = |key: &str, value: Value| {
        let mut v = list_change_json();
        v[key] = value;
        v
    };
    let removal_with_expiry = with("action", json!("remove"));
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("an upper-case list name", with("list", json!("Blocked")), &["field `list`"]),
        ("a list name with a slash", with("list", json!("a/b")), &["field `list`"]),
        ("a list name too long", with("list", json!("l".repeat(MAX_LIST_NAME_BYTES + 1))), &["field `list`"]),
        ("an empty value", with("value", json!("")), &["field `value`"]),
        ("a value too long", with("value", json!("v".repeat(MAX_ID_BYTES + 1))), &["field `value`"]),
        ("an unknown action", with("action", json!("block")), &["ListChanged", "unknown variant"]),
        ("an expiry on a removal", removal_with_expiry, &["field `expires_at`"]),
        ("an empty analyst", with("analyst", json!("")), &["field `analyst`"]),
        ("a note too long", with("note", json!("n".repeat(MAX_NOTE_BYTES + 1))), &["field `note`"]),
    ];
    let validator = validator(&schema("list-changed.v1.schema.json"));
    for (name, value, expected) in cases {
        let error = parse_list_change(value.to_string().as_bytes()).expect_err(name).to_string();
        for e in expected {
            assert!(error.contains(e), "{name}: {error:?} does not contain {e:?}");
        }
        assert!(!validator.is_valid(&value), "{name}: the schema accepts what the parser rejects");
    }
}

#[test]
fn an_invalid_disposition_is_rejected_by_parser_and_schema_naming_the_field() {
    let with = |key: &str, value: Value| {
        let mut v = disposition_json();
        v[key] = value;
        v
    };
    let legit_with_pattern = {
        let mut v = disposition_json();
        v["verdict"] = json!("legitimate");
        v
    };
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("no transactions", with("transaction_ids", json!([])), &["field `transaction_ids`"]),
        ("an empty transaction id", with("transaction_ids", json!(["tx-1", ""])), &["field `transaction_ids`"]),
        (
            "too many transactions",
            with("transaction_ids", json!(vec!["tx"; MAX_RESOLVED_TRANSACTIONS + 1])),
            &["field `transaction_ids`"],
        ),
        ("an unknown verdict", with("verdict", json!("maybe")), &["CaseResolved", "unknown variant"]),
        ("a pattern on a legitimate verdict", legit_with_pattern, &["field `pattern`"]),
        ("an empty analyst", with("analyst", json!("")), &["field `analyst`"]),
        ("a note too long", with("note", json!("n".repeat(MAX_NOTE_BYTES + 1))), &["field `note`"]),
    ];
    let validator = validator(&schema("case-resolved.v1.schema.json"));
    for (name, value, expected) in cases {
        let error = parse_disposition(value.to_string().as_bytes()).expect_err(name).to_string();
        for e in expected {
            assert!(error.contains(e), "{name}: {error:?} does not contain {e:?}");
        }
        assert!(!validator.is_valid(&value), "{name}: the schema accepts what the parser rejects");
    }
}

#[test]
fn times_with_offsets_are_read_as_utc_and_written_as_utc_millis() {
    let offset =
        parse(&std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/non-utc-offset.json")).unwrap())
            .expect("offset time parses");
    assert_eq!(offset.occurred_at, design_example().occurred_at, "20:42:07.512+01:00 is 19:42:07.512Z");
    assert_eq!(offset.occurred_at.offset(), time::UtcOffset::UTC);
    assert_eq!(to_value(&offset)["occurred_at"], "2026-11-28T19:42:07.512Z");

    let mut value: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    for (input, written) in [
        ("2026-11-28T08:00:00Z", "2026-11-28T08:00:00.000Z"),
        ("2026-11-28T08:00:00.5Z", "2026-11-28T08:00:00.500Z"),
        ("2026-11-28T08:00:00.123999-05:30", "2026-11-28T13:30:00.123Z"),
        ("2026-11-28T00:30:00+01:00", "2026-11-27T23:30:00.000Z"),
        ("1969-12-31T23:59:59.250Z", "1969-12-31T23:59:59.250Z"),
    ] {
        value["occurred_at"] = json!(input);
        let event = parse(value.to_string().as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(to_value(&event)["occurred_at"], written, "{input}");
    }
    value["occurred_at"] = json!("1969-12-31T23:59:59.250Z");
    assert_eq!(parse(value.to_string().as_bytes()).unwrap().occurred_at_ms(), -750);
}

#[test]
fn every_fixture_validates_against_the_input_schema() {
    let schema = schema("transaction-recorded.v1.schema.json");
    let validator = validator(&schema);
    for (name, bytes) in all_fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_valid(&validator, &value, &name);
        // What weir writes back (e.g. into backtest files) is valid too.
        let written = to_value(&parse(&bytes).expect("parses"));
        assert_valid(&validator, &written, &format!("{name}, written back"));
    }
    for example in schema["examples"].as_array().expect("the input schema has examples") {
        assert_valid(&validator, example, "the schema's example");
        let event: TransactionRecorded = serde_json::from_value(example.clone()).expect("the example parses");
        assert_eq!(&to_value(&event), example);
    }
}

#[test]
fn input_schema_properties_match_the_type() {
    let schema = schema("transaction-recorded.v1.schema.json");
    let full = to_value(&design_example());
    let minimal = to_value(
        &parse(&std::fs::read(repo_path("tests/fixtures/transaction-recorded/v1/minimal.json")).unwrap()).unwrap(),
    );
    assert_schema_matches("TransactionRecorded", &schema, &[full.clone(), minimal.clone()]);
    let samples = [full, minimal];
    let amounts: Vec<Value> = samples.iter().map(|s| s["amount"].clone()).collect();
    assert_schema_matches("TransactionRecorded.amount", resolve(&schema, &schema["properties"]["amount"]), &amounts);
    let merchants: Vec<Value> = samples.iter().map(|s| s["merchant"].clone()).collect();
    assert_schema_matches("TransactionRecorded.merchant", &schema["properties"]["merchant"], &merchants);
}

// ---------------------------------------------------------------------------------------------
// TransactionRecorded: invalid input

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    TooLarge,
    Malformed,
    WrongType,
    Invalid(&'static str),
}

fn kind(error: &InvalidEvent) -> Kind {
    match error {
        InvalidEvent::TooLarge { .. } => Kind::TooLarge,
        InvalidEvent::Malformed(_)
        | InvalidEvent::MalformedConfirmation(_)
        | InvalidEvent::MalformedUnlock(_)
        | InvalidEvent::MalformedDisposition(_)
        | InvalidEvent::MalformedListChange(_) => Kind::Malformed,
        InvalidEvent::WrongType(_) => Kind::WrongType,
        InvalidEvent::Invalid { field, .. } => Kind::Invalid(field),
    }
}

struct Case {
    name: &'static str,
    payload: Vec<u8>,
    limit: usize,
    kind: Kind,
    /// Substrings of the error's Display.
    expect: &'static [&'static str],
}

/// The input contract's example, changed by `change`, pretty-printed (so line and column mean something).
fn mutated(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&design_example_bytes()).expect("JSON");
    change(&mut value);
    serde_json::to_vec_pretty(&value).expect("serializes")
}

fn remove(path: &[&str]) -> impl FnOnce(&mut Value) {
    let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    move |value| {
        let (last, parents) = path.split_last().expect("non-empty path");
        let mut node = value;
        for p in parents {
            node = &mut node[p.as_str()];
        }
        node.as_object_mut().expect("object").remove(last.as_str()).expect("field exists");
    }
}

fn invalid_cases() -> Vec<Case> {
    use Kind::*;
    let case = |name, payload, kind, expect| Case { name, payload, limit: MAX_EVENT_BYTES, kind, expect };
    let design = design_example_bytes();
    let mut non_utf8 = design.clone();
    let at = non_utf8.windows(7).position(|w| w == b"Tickets").expect("merchant name");
    non_utf8[at] = 0xff;
    vec![
        case(
            "float amount",
            mutated(|v| v["amount"]["minor_units"] = json!(189.5)),
            Malformed,
            &["not valid JSON", "invalid type: floating point `189.5`, expected i64", "`amount.minor_units`"],
        ),
        case(
            "amount minor_units as a string",
            mutated(|v| v["amount"]["minor_units"] = json!("18900")),
            Malformed,
            &["invalid type: string \"18900\"", "`amount.minor_units`"],
        ),
        case(
            "amount as a string",
            mutated(|v| v["amount"] = json!("189.00 EUR")),
            Malformed,
            &["invalid type: string \"189.00 EUR\"", "(offending field: `amount`)"],
        ),
        case("missing account_id", mutated(remove(&["account_id"])), Malformed, &["missing field `account_id`"]),
        case(
            "missing merchant.category_code",
            mutated(remove(&["merchant", "category_code"])),
            Malformed,
            &["missing field `category_code`", "`merchant.category_code`"],
        ),
        case("missing event_type", mutated(remove(&["event_type"])), Malformed, &["missing field `event_type`"]),
        case(
            "wrong event_type",
            mutated(|v| v["event_type"] = json!("FraudSuspected")),
            WrongType,
            &["event_type is `FraudSuspected`, expected `TransactionRecorded`"],
        ),
        case(
            "another event's shape",
            serde_json::to_vec(&json!({
                "event_id": "x", "event_type": "AccountLocked", "account_id": "acct-1029", "reason": "fraud"
            }))
            .unwrap(),
            WrongType,
            &["event_type is `AccountLocked`"],
        ),
        case(
            "lowercase currency",
            mutated(|v| v["amount"]["currency"] = json!("eur")),
            Invalid("amount.currency"),
            &["field `amount.currency`", "3 uppercase letters", "\"eur\""],
        ),
        case(
            "currency too long",
            mutated(|v| v["amount"]["currency"] = json!("EURO")),
            Invalid("amount.currency"),
            &["field `amount.currency`"],
        ),
        case(
            "bad MCC",
            mutated(|v| v["merchant"]["category_code"] = json!("79A2")),
            Invalid("merchant.category_code"),
            &["field `merchant.category_code`", "4 digits", "\"79A2\""],
        ),
        case(
            "MCC as a number",
            mutated(|v| v["merchant"]["category_code"] = json!(7922)),
            Malformed,
            &["invalid type: integer `7922`", "`merchant.category_code`"],
        ),
        case(
            "lowercase country",
            mutated(|v| v["merchant"]["country"] = json!("nl")),
            Invalid("merchant.country"),
            &["field `merchant.country`", "\"nl\""],
        ),
        case(
            "negative amount",
            mutated(|v| v["amount"]["minor_units"] = json!(-100)),
            Invalid("amount.minor_units"),
            &["field `amount.minor_units`", "negative"],
        ),
        case(
            "empty account_id",
            mutated(|v| v["account_id"] = json!("")),
            Invalid("account_id"),
            &["field `account_id`: must not be empty"],
        ),
        case(
            "empty merchant.id",
            mutated(|v| v["merchant"]["id"] = json!("")),
            Invalid("merchant.id"),
            &["field `merchant.id`: must not be empty"],
        ),
        case(
            "transaction_id over 256 bytes",
            mutated(|v| v["transaction_id"] = json!("t".repeat(257))),
            Invalid("transaction_id"),
            &["field `transaction_id`", "257 bytes"],
        ),
        case(
            "schema_version 0",
            mutated(|v| v["schema_version"] = json!(0)),
            Invalid("schema_version"),
            &["field `schema_version`"],
        ),
        case("negative schema_version", mutated(|v| v["schema_version"] = json!(-1)), Malformed, &["`schema_version`"]),
        case(
            "channel telepathy",
            mutated(|v| v["channel"] = json!("telepathy")),
            Malformed,
            &["unknown variant `telepathy`", "`channel`"],
        ),
        case(
            "occurred_at without an offset",
            mutated(|v| v["occurred_at"] = json!("2026-11-28T19:42:07.512")),
            Malformed,
            &["invalid RFC 3339 date-time", "`occurred_at`"],
        ),
        case(
            "occurred_at as epoch milliseconds",
            mutated(|v| v["occurred_at"] = json!(1_795_894_927_512_i64)),
            Malformed,
            &["expected an RFC 3339 date-time", "`occurred_at`"],
        ),
        case(
            "attribute that is not a string",
            mutated(|v| v["attributes"]["card_last4"] = json!(4242)),
            Malformed,
            &["invalid type: integer `4242`", "`attributes.card_last4`"],
        ),
        case("merchant as a string", mutated(|v| v["merchant"] = json!("m-ticketsrus")), Malformed, &["`merchant`"]),
        case(
            "amount as an array",
            mutated(|v| v["amount"] = json!([18900, "EUR"])),
            Malformed,
            &["invalid type: sequence, expected a JSON object", "(offending field: `amount`)"],
        ),
        case(
            "merchant as an array",
            mutated(|v| v["merchant"] = json!(["m-ticketsrus", "Tickets R Us", "7922", "NL"])),
            Malformed,
            &["invalid type: sequence, expected a JSON object", "(offending field: `merchant`)"],
        ),
        case("a JSON array", b"[1, 2, 3]".to_vec(), Malformed, &["invalid type: sequence, expected a JSON object"]),
        case(
            "the fields as a JSON array, in order",
            mutated(|v| {
                let fields = ["event_id", "event_type", "schema_version", "occurred_at", "transaction_id"];
                let more = ["account_id", "amount", "merchant", "channel", "attributes"];
                *v = fields.iter().chain(&more).map(|k| v[*k].clone()).collect();
            }),
            Malformed,
            &["invalid type: sequence, expected a JSON object"],
        ),
        case("truncated JSON", design[..design.len() / 2].to_vec(), Malformed, &["EOF while parsing"]),
        case("trailing characters", [design.as_slice(), b"}"].concat(), Malformed, &["trailing characters"]),
        case("empty payload", Vec::new(), Malformed, &["payload is empty"]),
        case("not JSON at all", b"acct-1029;tx-000184467;189.00".to_vec(), Malformed, &["expected value"]),
        case("non-UTF-8 bytes", non_utf8, Malformed, &["not valid JSON", "invalid unicode code point"]),
        Case {
            name: "over the size limit",
            payload: design.clone(),
            limit: 64,
            kind: TooLarge,
            expect: &["exceeds the 64-byte limit"],
        },
    ]
}

#[test]
fn invalid_inputs_give_the_expected_error_naming_the_field() {
    for case in invalid_cases() {
        let error = match parse_transaction(&case.payload, case.limit) {
            Ok(event) => panic!("{}: accepted as {event:?}", case.name),
            Err(error) => error,
        };
        let text = error.to_string();
        assert_eq!(kind(&error), case.kind, "{}: {text}", case.name);
        for expected in case.expect {
            assert!(text.contains(expected), "{}: {text:?} does not contain {expected:?}", case.name);
        }
    }
}

#[test]
fn the_input_schema_rejects_every_invalid_case_that_is_json() {
    let validator = validator(&schema("transaction-recorded.v1.schema.json"));
    let mut checked = Vec::new();
    for case in invalid_cases() {
        if case.kind == Kind::TooLarge {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&case.payload) else { continue };
        assert!(!validator.is_valid(&value), "{}: the schema accepts what the parser rejects", case.name);
        checked.push(case.name);
    }
    for named in ["float amount", "missing account_id", "lowercase currency", "channel telepathy", "bad MCC"] {
        assert!(checked.contains(&named), "{named} is checked against the schema");
    }
}

/// Where the parser is stricter than JSON Schema can be. Both are documented in the schema.
#[test]
fn the_parser_rejects_what_the_schema_cannot_express() {
    let validator = validator(&schema("transaction-recorded.v1.schema.json"));
    for (name, payload, expected) in [
        // JSON Schema's "integer" includes 18900.0; the contract says integer, never a float.
        (
            "integral float amount",
            mutated(|v| v["amount"]["minor_units"] = json!(18900.0)),
            "invalid type: floating point `18900.0`, expected i64",
        ),
        // A valid RFC 3339 time that is in the year -1 in UTC: it could not be written back.
        (
            "time before the year 0000 in UTC",
            mutated(|v| v["occurred_at"] = json!("0000-01-01T00:30:00+01:00")),
            "is outside the years 0000 to 9999 in UTC",
        ),
    ] {
        let value: Value = serde_json::from_slice(&payload).expect("JSON");
        assert!(validator.is_valid(&value), "{name}: the schema accepts it");
        let error = parse(&payload).expect_err(name).to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

#[test]
fn the_size_limit_is_inclusive_and_checked_before_parsing() {
    let design = design_example_bytes();
    assert!(parse_transaction(&design, design.len()).is_ok());
    assert_eq!(
        parse_transaction(&design, design.len() - 1),
        Err(InvalidEvent::TooLarge { size: design.len(), limit: design.len() - 1 })
    );
    let garbage = vec![b'x'; 100];
    assert!(matches!(parse_transaction(&garbage, 10), Err(InvalidEvent::TooLarge { size: 100, limit: 10 })));
}

// ---------------------------------------------------------------------------------------------
// Decision events

#[test]
fn every_decision_type_validates_against_its_schema() {
    for decision in DecisionType::ALL {
        let validator = validator(&schema(schema_file(decision)));
        for full in [true, false] {
            let sample = to_value(&sample_decision(decision, full));
            assert_valid(&validator, &sample, &format!("{} (full: {full})", decision.as_str()));
        }
    }
}

#[test]
fn decision_schemas_describe_exactly_what_the_type_writes() {
    for decision in DecisionType::ALL {
        let schema = schema(schema_file(decision));
        let samples: Vec<Value> = [true, false].map(|full| to_value(&sample_decision(decision, full))).to_vec();
        let name = decision.as_str();
        assert_schema_matches(name, &schema, &samples);

        let part = |key: &str| -> Vec<Value> { samples.iter().map(|s| s[key].clone()).collect() };
        let properties = &schema["properties"];
        assert_schema_matches(&format!("{name}.amount"), resolve(&schema, &properties["amount"]), &part("amount"));
        assert_schema_matches(&format!("{name}.engine"), resolve(&schema, &properties["engine"]), &part("engine"));
        assert_schema_matches(&format!("{name}.input"), resolve(&schema, &properties["input"]), &part("input"));

        let rules: Vec<Value> = samples.iter().flat_map(|s| s["rules"].as_array().unwrap().clone()).collect();
        let rule_schema = resolve(&schema, &properties["rules"]["items"]);
        assert_schema_matches(&format!("{name}.rules[]"), rule_schema, &rules);
        let evidence: Vec<Value> =
            rules.iter().filter_map(|r| r.get("evidence")).flat_map(|e| e.as_array().unwrap().clone()).collect();
        assert_schema_matches(
            &format!("{name}.rules[].evidence[]"),
            &rule_schema["properties"]["evidence"]["items"],
            &evidence,
        );
    }
}

#[test]
fn account_locked_requires_a_reason() {
    let locked = validator(&schema(schema_file(DecisionType::AccountLocked)));
    let mut sample = to_value(&sample_decision(DecisionType::AccountLocked, true));
    sample.as_object_mut().unwrap().remove("reason");
    assert!(!locked.is_valid(&sample), "AccountLocked without a reason is rejected");
    for other in [DecisionType::TransactionVerified, DecisionType::FraudSuspected] {
        let validator = validator(&schema(schema_file(other)));
        assert!(validator.is_valid(&to_value(&sample_decision(other, false))), "{other:?} needs no reason");
    }
}

#[test]
fn a_decision_of_one_type_fails_the_schema_of_another() {
    for written in DecisionType::ALL {
        let sample = to_value(&sample_decision(written, true));
        for schema_of in DecisionType::ALL {
            let validator = validator(&schema(schema_file(schema_of)));
            assert_eq!(
                validator.is_valid(&sample),
                written == schema_of,
                "{} against the {} schema",
                written.as_str(),
                schema_of.as_str()
            );
            // ... and only because of event_type: relabelled, it passes.
            let mut relabelled = sample.clone();
            relabelled["event_type"] = json!(schema_of.as_str());
            assert_valid(&validator, &relabelled, &format!("{} relabelled {}", written.as_str(), schema_of.as_str()));
        }
    }
}

#[test]
fn rule_results_carry_error_and_failure_policy_only_on_error() {
    let validator = validator(&schema(schema_file(DecisionType::FraudSuspected)));
    let base = to_value(&sample_decision(DecisionType::FraudSuspected, true));
    let error_at = sample_rules().iter().position(|r| r.outcome == RuleOutcome::Error).unwrap();

    let mut without_policy = base.clone();
    without_policy["rules"][error_at].as_object_mut().unwrap().remove("failure_policy");
    assert!(!validator.is_valid(&without_policy), "an error rule must say which failure policy applied");

    let mut policy_on_pass = base.clone();
    policy_on_pass["rules"][0]["failure_policy"] = json!("fail-open");
    assert!(!validator.is_valid(&policy_on_pass), "failure_policy is only set on error");
}

#[test]
fn schema_examples_are_what_the_types_write() {
    for decision in DecisionType::ALL {
        let schema = schema(schema_file(decision));
        let validator = validator(&schema);
        let examples = schema["examples"].as_array().expect("decision schemas have examples");
        assert!(!examples.is_empty());
        for example in examples {
            assert_valid(&validator, example, &format!("{} example", decision.as_str()));
            let event: DecisionEvent = serde_json::from_value(example.clone()).expect("the example deserializes");
            assert_eq!(event.event_type, decision);
            assert_eq!(&to_value(&event), example, "the example is exactly what weir writes");
            assert_eq!(event.event_id, decision_event_id(&event.causation_id), "example ids are decision ids");
            let ids: Vec<&str> = event.rules.iter().map(|r| r.rule_id.as_str()).collect();
            assert!(ids.is_sorted(), "example rules are in rule-id order");
            let enforced: u32 = event.rules.iter().filter(|r| r.mode == RuleMode::Enforce).map(|r| r.score).sum();
            assert_eq!(event.score, enforced, "example score is the sum over enforced rules");
        }
    }
    let schema = schema("dead-letter.v1.schema.json");
    let validator = validator(&schema);
    for example in schema["examples"].as_array().expect("the dead-letter schema has examples") {
        assert_valid(&validator, example, "dead-letter example");
        let letter: DeadLetter = serde_json::from_value(example.clone()).expect("deserializes");
        assert_eq!(&to_value(&letter), example);
    }
}

#[test]
fn decisions_round_trip_with_utc_millisecond_times() {
    for decision in DecisionType::ALL {
        for full in [true, false] {
            let event = sample_decision(decision, full);
            let text = serde_json::to_string(&event).expect("serializes");
            let back: DecisionEvent = serde_json::from_str(&text).expect("deserializes");
            assert_eq!(back, event);
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["occurred_at"], "2026-11-28T19:42:07.512Z");
            assert_eq!(value["event_type"], decision.as_str());
            assert_eq!(value["schema_version"], 1);
            assert_eq!(value["engine"], json!({ "name": "weir", "version": env!("CARGO_PKG_VERSION") }));
        }
    }
    // A time built with an offset is still written in UTC.
    let mut event = sample_decision(DecisionType::TransactionVerified, false);
    event.occurred_at = time::macros::datetime!(2026-11-28 20:42:07.512 +01:00);
    assert_eq!(to_value(&event)["occurred_at"], "2026-11-28T19:42:07.512Z");
}

#[test]
fn enums_have_their_wire_names() {
    let names: Vec<Value> = DecisionType::ALL.iter().map(to_value).collect();
    assert_eq!(names, [json!("TransactionVerified"), json!("FraudSuspected"), json!("AccountLocked")]);
    for decision in DecisionType::ALL {
        assert_eq!(to_value(&decision), decision.as_str());
        assert_eq!(serde_json::from_value::<DecisionType>(json!(decision.as_str())).unwrap(), decision);
    }
    assert_eq!(to_value(&[RuleMode::Enforce, RuleMode::Shadow]), json!(["enforce", "shadow"]));
    assert_eq!(
        to_value(&[RuleOutcome::Pass, RuleOutcome::Score, RuleOutcome::Suspect, RuleOutcome::Lock, RuleOutcome::Error]),
        json!(["pass", "score", "suspect", "lock", "error"])
    );
    assert_eq!(to_value(&[FailurePolicy::FailOpen, FailurePolicy::FailClosed]), json!(["fail-open", "fail-closed"]));
    assert_eq!(FailurePolicy::default(), FailurePolicy::FailOpen);
}

#[test]
fn decision_event_id_is_deterministic_and_differs_per_causation_id() {
    let id = decision_event_id("7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41");
    assert_eq!(id, decision_event_id("7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41"));
    assert_eq!(id.get_version_num(), 5);
    // Pinned: changing the namespace would change every decision id downstream deduplicates on.
    assert_eq!(id.to_string(), "ea459acc-f7c7-5d4e-b7cf-ed80b247a50c");
    let ids: BTreeSet<uuid::Uuid> =
        ["a", "b", "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d41", "7f0c2a8e-1b7d-4c39-9d3e-2f1a9b6c0d42", ""]
            .into_iter()
            .map(decision_event_id)
            .collect();
    assert_eq!(ids.len(), 5, "different causation ids give different decision ids");
}

// ---------------------------------------------------------------------------------------------
// Dead letters

fn position() -> InputPosition {
    InputPosition { topic: "transactions".to_owned(), partition: 0, offset: 17 }
}

#[test]
fn dead_letters_keep_the_payload_and_validate() {
    let schema = schema("dead-letter.v1.schema.json");
    let validator = validator(&schema);

    let text = DeadLetter::new("payload is empty".to_owned(), position(), b"{\"amount\": 1.5}");
    assert_eq!(text.payload.as_deref(), Some("{\"amount\": 1.5}"));
    assert_eq!(text.payload_base64, None);

    let binary = DeadLetter::new("not UTF-8".to_owned(), position(), b"\xfffoobar");
    assert_eq!(binary.payload, None);
    assert_eq!(binary.payload_base64.as_deref(), Some("/2Zvb2Jhcg=="));

    let samples = [to_value(&text), to_value(&binary)];
    for sample in &samples {
        assert_valid(&validator, sample, "dead letter");
        let back: DeadLetter = serde_json::from_value(sample.clone()).unwrap();
        assert_eq!(&to_value(&back), sample);
    }
    assert_schema_matches("DeadLetter", &schema, &samples);
    let positions: Vec<Value> = samples.iter().map(|s| s["input"].clone()).collect();
    assert_schema_matches("DeadLetter.input", resolve(&schema, &schema["properties"]["input"]), &positions);

    // Exactly one of payload and payload_base64.
    let mut both = samples[0].clone();
    both["payload_base64"] = json!("e30=");
    assert!(!validator.is_valid(&both));
    let mut neither = samples[0].clone();
    neither.as_object_mut().unwrap().remove("payload");
    assert!(!validator.is_valid(&neither));
}

#[test]
fn dead_letter_base64_is_standard_and_padded() {
    // RFC 4648 section 10 test vectors, made non-UTF-8 by a leading 0xff byte.
    for (tail, expected) in [
        (&b""[..], "/w=="),
        (b"f", "/2Y="),
        (b"fo", "/2Zv"),
        (b"foo", "/2Zvbw=="),
        (b"foob", "/2Zvb2I="),
        (b"fooba", "/2Zvb2Jh"),
        (b"foobar", "/2Zvb2Jhcg=="),
    ] {
        let payload = [&[0xff_u8][..], tail].concat();
        let letter = DeadLetter::new(String::new(), position(), &payload);
        assert_eq!(letter.payload_base64.as_deref(), Some(expected), "{payload:?}");
    }
    let all_bytes: Vec<u8> = (0..=255).rev().collect();
    let letter = DeadLetter::new(String::new(), position(), &all_bytes);
    let encoded = letter.payload_base64.expect("not UTF-8");
    assert_eq!(encoded.len(), 344);
    assert!(encoded.starts_with("//79/Pv6+fj39vX08/Lx8O/u7ezr6uno"), "{encoded}");
    assert!(encoded.ends_with("AwIBAA=="), "{encoded}");
}

#[test]
fn a_dead_letter_is_bounded_whatever_the_record() {
    let validator = validator(&schema("dead-letter.v1.schema.json"));

    // A record over the limit: its first 64 KiB and its size.
    let huge = vec![b'x'; 200_000];
    let letter = DeadLetter::of_record("too large".to_owned(), position(), &huge, 1 << 30);
    assert_eq!(letter.payload.as_deref().map(str::len), Some(TRUNCATED_PAYLOAD_BYTES));
    assert_eq!((letter.payload_bytes, letter.truncated), (1 << 30, true));
    assert_valid(&validator, &to_value(&letter), "a truncated dead letter");

    // A prefix cut inside a character stays text, cut back to the character.
    let text = "€".repeat(30_000);
    let letter = DeadLetter::of_record(String::new(), position(), text.as_bytes(), 1 << 20);
    let kept = letter.payload.expect("still text");
    assert!(text.starts_with(&kept) && kept.len() > TRUNCATED_PAYLOAD_BYTES - 3, "{}", kept.len());

    // Text whose JSON escaping would be more than 1.5 times its size is
    // written as base64; ordinary JSON text is not.
    let controls: Vec<u8> = (0..3000).map(|i| [1u8, b'a', 2, b'"'][i % 4]).collect();
    let letter = DeadLetter::new(String::new(), position(), &controls);
    assert!(letter.payload.is_none() && letter.payload_base64.is_some());
    assert!(serde_json::to_vec(&letter).unwrap().len() * 2 <= controls.len() * 3 + 400);
    let json = design_example_bytes();
    assert!(DeadLetter::new(String::new(), position(), &json).payload.is_some());

    // A reason quoting a huge value with control characters is cut and cleaned.
    let wrong = InvalidEvent::WrongType(format!("Pay\u{1b}[31m{}", "x".repeat(1 << 20)));
    let reason = dead_letter_reason(&wrong);
    assert!(reason.len() <= MAX_REASON_BYTES && reason.ends_with('…'), "{}", reason.len());
    assert!(!reason.chars().any(char::is_control), "{reason}");
    let letter = DeadLetter::new(wrong.to_string(), position(), b"{}");
    assert_eq!(letter.reason, reason, "a dead letter bounds its reason the same way");
    assert_valid(&validator, &to_value(&letter), "a dead letter with a long reason");
}

#[test]
fn a_rejected_record_becomes_a_dead_letter_with_the_reason() {
    let payload = mutated(|v| v["amount"]["currency"] = json!("eur"));
    let error = parse(&payload).expect_err("lowercase currency is invalid");
    let letter = DeadLetter::new(error.to_string(), position(), &payload);
    assert!(letter.reason.contains("amount.currency"));
    assert_eq!(letter.payload.as_deref().map(str::as_bytes), Some(payload.as_slice()), "nothing is lost");
    assert_valid(&validator(&schema("dead-letter.v1.schema.json")), &to_value(&letter), "dead letter");
}

// ---------------------------------------------------------------------------------------------
// The schemas themselves

#[test]
fn every_schema_is_draft_2020_12_titled_and_describes_every_property() {
    fn undescribed(node: &Value, path: &str, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, property) in properties {
                        if property.is_object() && property.get("description").is_none() {
                            out.push(format!("{path}/properties/{name}"));
                        }
                    }
                }
                for (key, child) in map {
                    // Examples are instances, not schemas.
                    if key != "examples" {
                        undescribed(child, &format!("{path}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    undescribed(child, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    let mut names: Vec<String> = std::fs::read_dir(repo_path("schemas"))
        .expect("schemas/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".schema.json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "account-locked.v1.schema.json",
            "account-unlocked.v1.schema.json",
            "case-resolved.v1.schema.json",
            "customer-confirmation.v1.schema.json",
            "dead-letter.v1.schema.json",
            "fraud-suspected.v1.schema.json",
            "list-changed.v1.schema.json",
            "transaction-recorded.v1.schema.json",
            "transaction-recorded.v2.schema.json",
            "transaction-recorded.v3.schema.json",
            "transaction-verified.v1.schema.json",
        ]
    );
    for name in &names {
        let schema = schema(name);
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        assert!(jsonschema::meta::is_valid(&schema), "{name} is not a valid JSON Schema");
        validator(&schema);
        for key in ["title", "description"] {
            assert!(schema[key].as_str().is_some_and(|s| s.len() > 10), "{name} has no {key}");
        }
        assert_eq!(schema["additionalProperties"], true, "{name}: readers are tolerant");
        let mut missing = Vec::new();
        undescribed(&schema, "", &mut missing);
        assert!(missing.is_empty(), "{name}: properties without a description: {missing:?}");
    }
}

/// Decisions are written by hand, not by serde (it was a tenth of the time
/// a decision took): the bytes must be serde_json's, for every kind of
/// decision and every string a rule or an input may carry.
#[test]
fn decisions_written_by_hand_are_serde_json_byte_for_byte() {
    let mut decisions: Vec<DecisionEvent> = Vec::new();
    for t in DecisionType::ALL {
        decisions.push(sample_decision(t, true));
        decisions.push(sample_decision(t, false));
    }
    let lines = weir::demo::generate(2_000, 50, 11).lines;
    decisions.extend(crate::util::decide_embedded(&lines).1.into_values());
    let mut odd = sample_decision(DecisionType::FraudSuspected, true);
    let nasty = "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \u{0} bs \u{8} ff \u{c} esc \u{1b} del \u{7f} é 漢 🦀 \u{2028}";
    odd.reason = Some(nasty.to_owned());
    odd.account_id = nasty.to_owned();
    odd.input.topic = nasty.to_owned();
    odd.input.offset = -1;
    odd.amount.minor_units = i64::MIN;
    odd.score = u32::MAX;
    odd.rules[1].message = nasty.to_owned();
    odd.rules[1].evidence.push(weir::events::Evidence { name: nasty.to_owned(), value: String::new() });
    odd.occurred_at = time::macros::datetime!(0001-02-03 04:05:06.789 UTC);
    decisions.push(odd);
    for d in &decisions {
        let mut fast = Vec::new();
        d.write_json(&mut fast);
        let serde = serde_json::to_vec(d).unwrap();
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde), "{}", d.transaction_id);
    }
    assert!(decisions.len() > 2_000, "{} decisions compared", decisions.len());
}
