//! What rules see of a transaction: its fields, and attributes to which the host adds reserved
//! `weir.*` ones, from the event (`weir.device_fingerprint`, `weir.counterparty_account`,
//! `weir.card_fingerprint`) and from the account's state
//! ([`HostFacts`]: `weir.customer_confirmed_merchant`), after dropping any a producer sent, so a
//! producer cannot forge them. Also the transaction in the shapes the engine hands on: the wasm
//! wire encoding ([`TransactionRecorded::encode_for_rules`]), the SDK's view for native rules and
//! the test harness ([`TransactionRecorded::to_rule_transaction`]), which give every rule the
//! same attribute list, and what the account's history keeps ([`TransactionRecorded::to_past`]).

use super::TransactionRecorded;

/// What the host knows about a transaction beyond the event itself, from its account's state;
/// it reaches rules as reserved attributes (see [`TransactionRecorded::rule_attributes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The customer has confirmed an earlier purchase at this merchant as their own.
    pub merchant_confirmed_by_customer: bool,
}

impl TransactionRecorded {
    /// The attributes rules see, in key order: the producer's, except the reserved `weir.*`
    /// ones (a producer cannot forge them), plus those the host sets from the event and from
    /// `facts`: `weir.device_fingerprint` and `weir.customer_confirmed_merchant`. Both the wasm
    /// and the native lowering use this, so every rule sees the same list.
    pub fn rule_attributes(&self, facts: HostFacts) -> Vec<(String, String)> {
        let mut attributes: Vec<(String, String)> = self
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with(weir_sdk::RESERVED_ATTRIBUTE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if facts.merchant_confirmed_by_customer {
            attributes.push((weir_sdk::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE.to_owned(), "true".to_owned()));
        }
        for (name, value) in self.reserved_attributes() {
            attributes.push((name.to_owned(), value.to_owned()));
        }
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        attributes
    }

    /// The reserved attributes the event itself carries, in key order:
    /// `weir.card_fingerprint`, `weir.counterparty_account`, `weir.device_fingerprint`.
    fn reserved_fields(&self) -> [Option<(&'static str, &str)>; 3] {
        [
            self.card_fingerprint.as_deref().map(|v| (weir_sdk::CARD_FINGERPRINT_ATTRIBUTE, v)),
            self.counterparty_account.as_deref().map(|v| (weir_sdk::COUNTERPARTY_ACCOUNT_ATTRIBUTE, v)),
            self.device_fingerprint.as_deref().map(|v| (weir_sdk::DEVICE_FINGERPRINT_ATTRIBUTE, v)),
        ]
    }

    fn reserved_attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.reserved_fields().into_iter().flatten()
    }

    /// Appends the wire encoding rules of contract `weir:rule@2` read
    /// (`weir_sdk::wire`) to `out`: the event's fields and the same attribute
    /// list as [`rule_attributes`](Self::rule_attributes), without copying
    /// any string but into `out`.
    pub fn encode_for_rules(&self, facts: HostFacts, out: &mut Vec<u8>) {
        let fields = weir_sdk::wire::TransactionFields {
            event_id: &self.event_id,
            transaction_id: &self.transaction_id,
            account_id: &self.account_id,
            minor_units: self.amount.minor_units,
            currency: &self.amount.currency,
            merchant_id: &self.merchant.id,
            merchant_name: self.merchant.name.as_deref(),
            category_code: &self.merchant.category_code,
            country: self.merchant.country.as_deref(),
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
        };
        // Both lists are sorted by name; merged, they give rule_attributes' order.
        let producer = self
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with(weir_sdk::RESERVED_ATTRIBUTE_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let confirmed =
            facts.merchant_confirmed_by_customer.then_some((weir_sdk::CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE, "true"));
        // In key order: card, counterparty, customer, device.
        let [card, counterparty, device] = self.reserved_fields();
        let mut reserved = card.into_iter().chain(counterparty).chain(confirmed).chain(device).peekable();
        let mut producer = producer.peekable();
        let merged = std::iter::from_fn(move || match (producer.peek(), reserved.peek()) {
            (Some(p), Some(r)) if r.0 < p.0 => reserved.next(),
            (Some(_), _) => producer.next(),
            (None, _) => reserved.next(),
        });
        weir_sdk::wire::encode_transaction(out, &fields, merged);
    }

    /// The SDK's view of it (for native rules and the test harness), with the
    /// [`rule_attributes`](Self::rule_attributes) for `facts`.
    pub fn to_rule_transaction(&self, facts: HostFacts) -> weir_sdk::Transaction {
        weir_sdk::Transaction {
            event_id: self.event_id.clone(),
            transaction_id: self.transaction_id.clone(),
            account_id: self.account_id.clone(),
            amount: self.amount.clone(),
            merchant: weir_sdk::Merchant {
                id: self.merchant.id.clone(),
                name: self.merchant.name.clone(),
                category_code: self.merchant.category_code.clone(),
                country: self.merchant.country.clone(),
            },
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
            attributes: self.rule_attributes(facts),
        }
    }

    /// What the account's history keeps of it.
    pub fn to_past(&self) -> weir_sdk::PastTransaction {
        weir_sdk::PastTransaction {
            transaction_id: self.transaction_id.clone(),
            amount: self.amount.clone(),
            merchant_id: self.merchant.id.clone(),
            category_code: self.merchant.category_code.clone(),
            country: self.merchant.country.clone(),
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms(),
        }
    }
}
