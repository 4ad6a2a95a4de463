//! The values a rule reads and returns: the transaction, its account's past
//! transactions, and the verdict. Plain Rust types, the same natively and in
//! wasm; on wasm the transaction and history arrive in the wire encoding
//! (`crate::wire`) and the verdict leaves through the contract's `verdict`
//! interface.

use std::fmt;

/// How the customer paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Channel {
    CardPresent,
    Ecommerce,
    Transfer,
    Atm,
}

impl Channel {
    /// The wire name, as in `TransactionRecorded.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::CardPresent => "card_present",
            Channel::Ecommerce => "ecommerce",
            Channel::Transfer => "transfer",
            Channel::Atm => "atm",
        }
    }
}

/// Integer minor units (cents for EUR) and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Money {
    pub minor_units: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: String,
    pub name: Option<String>,
    /// ISO 18245 merchant category code, e.g. "7922" for ticket agencies.
    pub category_code: String,
    /// ISO 3166-1 alpha-2, when known.
    pub country: Option<String>,
}

/// One `TransactionRecorded` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub event_id: String,
    pub transaction_id: String,
    pub account_id: String,
    pub amount: Money,
    pub merchant: Merchant,
    pub channel: Channel,
    /// Event time in milliseconds since the Unix epoch (UTC). Rules have no
    /// other clock.
    pub occurred_at_ms: i64,
    /// Fields added to the event after version 1, by name.
    pub attributes: Vec<(String, String)>,
}

/// Attribute names under this prefix are reserved for the host: it sets them
/// from the event and the account's state when it hands a transaction to
/// rules, and drops any a producer sent, so a rule can trust them.
pub const RESERVED_ATTRIBUTE_PREFIX: &str = "weir.";

/// The device fingerprint of a version 2 `TransactionRecorded`, when the
/// producer sent one.
pub const DEVICE_FINGERPRINT_ATTRIBUTE: &str = "weir.device_fingerprint";

/// The account a transfer goes to (IBAN or the bank's own account id), from
/// a version 3 `TransactionRecorded`, when the producer sent one.
pub const COUNTERPARTY_ACCOUNT_ATTRIBUTE: &str = "weir.counterparty_account";

/// The fingerprint of the card used (a token, never the card number), from
/// a version 3 `TransactionRecorded`, when the producer sent one.
pub const CARD_FINGERPRINT_ATTRIBUTE: &str = "weir.card_fingerprint";

/// `"true"` when the account's customer has confirmed ("it was me") an
/// earlier purchase at this transaction's merchant.
pub const CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE: &str = "weir.customer_confirmed_merchant";

impl Transaction {
    /// The attribute `name`, if the event carries it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The fingerprint of the device the purchase was made from, when the
    /// producer sent one (`TransactionRecorded` version 2 and later);
    /// `None` for version 1 events.
    pub fn device_fingerprint(&self) -> Option<&str> {
        self.attribute(DEVICE_FINGERPRINT_ATTRIBUTE)
    }

    /// The account a transfer goes to, when the producer sent it
    /// (`TransactionRecorded` version 3 and later).
    pub fn counterparty_account(&self) -> Option<&str> {
        self.attribute(COUNTERPARTY_ACCOUNT_ATTRIBUTE)
    }

    /// The fingerprint of the card used, when the producer sent it
    /// (`TransactionRecorded` version 3 and later).
    pub fn card_fingerprint(&self) -> Option<&str> {
        self.attribute(CARD_FINGERPRINT_ATTRIBUTE)
    }

    /// Whether the account's customer has confirmed an earlier purchase at
    /// this merchant as their own (a `TransactionVerified` by the customer
    /// in answer to a `FraudSuspected`).
    pub fn merchant_confirmed_by_customer(&self) -> bool {
        self.attribute(CUSTOMER_CONFIRMED_MERCHANT_ATTRIBUTE) == Some("true")
    }
}

/// What an entity rule keeps its state for: one of the transaction's
/// entities other than the account. Named in the rule's manifest
/// (`[rule] entity = "device"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    /// The device fingerprint (`TransactionRecorded` version 2 and later).
    Device,
    /// The merchant (every transaction has one).
    Merchant,
    /// The account a transfer goes to (version 3 and later).
    Counterparty,
    /// The card fingerprint (version 3 and later).
    Card,
}

impl Entity {
    /// Every kind, in the order their rules run.
    pub const ALL: [Entity; 4] = [Entity::Device, Entity::Merchant, Entity::Counterparty, Entity::Card];

    /// The manifest's name of the kind.
    pub const fn name(self) -> &'static str {
        match self {
            Entity::Device => "device",
            Entity::Merchant => "merchant",
            Entity::Counterparty => "counterparty",
            Entity::Card => "card",
        }
    }

    /// The kind a manifest names, if it is one.
    pub fn parse(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The transaction's id of this entity, if it has one.
    pub fn of(self, tx: &Transaction) -> Option<&str> {
        match self {
            Entity::Device => tx.device_fingerprint(),
            Entity::Merchant => Some(&tx.merchant.id),
            Entity::Counterparty => tx.counterparty_account(),
            Entity::Card => tx.card_fingerprint(),
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An earlier transaction of the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PastTransaction {
    pub transaction_id: String,
    pub amount: Money,
    pub merchant_id: String,
    pub category_code: String,
    pub country: Option<String>,
    pub channel: Channel,
    pub occurred_at_ms: i64,
}

impl From<&Transaction> for PastTransaction {
    fn from(tx: &Transaction) -> Self {
        PastTransaction {
            transaction_id: tx.transaction_id.clone(),
            amount: tx.amount.clone(),
            merchant_id: tx.merchant.id.clone(),
            category_code: tx.merchant.category_code.clone(),
            country: tx.merchant.country.clone(),
            channel: tx.channel,
            occurred_at_ms: tx.occurred_at_ms,
        }
    }
}

/// What a rule concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Adds points to the transaction's risk score.
    Score(u32),
    Suspect,
    Lock,
}

/// A name/value pair that explains a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

/// A rule's verdict: an outcome, a reason code, a message and evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reason_code: String,
    pub message: String,
    pub evidence: Vec<Evidence>,
}

impl Verdict {
    /// Nothing suspicious.
    pub fn pass() -> Self {
        Self::new(Outcome::Pass, "", "")
    }

    /// Adds `points` to the risk score.
    pub fn score(points: u32, reason_code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Score(points), reason_code, message)
    }

    /// The customer should confirm this transaction.
    pub fn suspect(reason_code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Suspect, reason_code, message)
    }

    /// The account must be locked.
    pub fn lock(reason_code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Lock, reason_code, message)
    }

    fn new(outcome: Outcome, reason_code: &str, message: impl Into<String>) -> Self {
        Verdict { outcome, reason_code: reason_code.to_owned(), message: message.into(), evidence: Vec::new() }
    }

    /// Adds a piece of evidence.
    pub fn with(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.evidence.push(Evidence { name: name.to_owned(), value: value.to_string() });
        self
    }

    /// The evidence named `name`, if present.
    pub fn evidence(&self, name: &str) -> Option<&str> {
        self.evidence.iter().find(|e| e.name == name).map(|e| e.value.as_str())
    }

    pub fn is_pass(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// A rule's error: the message reaches the decision and the host's log. Any
/// displayable error converts into it, so `?` works in a rule.
pub struct Error(String);

impl Error {
    pub fn msg(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
