//! Desired resources, observed state and planned changes: the data the engine moves between providers.

use crate::{Address, Gate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Install phases a resource can be tied to (see the install-gates docs).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lifecycle {
    /// Created only once this gate has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Gate>,
    /// Removed once this gate has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Gate>,
}

/// One desired resource. `spec` is the provider's own typed spec, serialized.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    pub address: Address,
    pub spec: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

impl Resource {
    pub fn new(address: Address, spec: impl Serialize) -> Result<Self, crate::Error> {
        let spec = serde_json::to_value(spec)
            .map_err(|e| crate::Error::Spec { address: address.to_string(), message: e.to_string() })?;
        Ok(Resource { address, spec, depends_on: Vec::new(), lifecycle: Lifecycle::default() })
    }

    pub fn depends_on(mut self, addr: Address) -> Self {
        if !self.depends_on.contains(&addr) {
            self.depends_on.push(addr);
        }
        self
    }

    /// Created only once `gate` has passed.
    pub fn after(mut self, gate: Gate) -> Self {
        self.lifecycle.after = Some(gate);
        self
    }

    /// Removed once `gate` has passed.
    pub fn until(mut self, gate: Gate) -> Self {
        self.lifecycle.until = Some(gate);
        self
    }

    /// Decode the spec into the provider's type.
    pub fn spec<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        decode(&self.address, &self.spec)
    }
}

pub fn decode<T: serde::de::DeserializeOwned>(addr: &Address, v: &Value) -> Result<T, crate::Error> {
    // From the borrowed tree: no copy of the spec per decode (a zone's holds thousands of records).
    T::deserialize(v).map_err(|e| crate::Error::Spec { address: addr.to_string(), message: e.to_string() })
}

/// Stable digest of observed state: what a saved plan compares before it applies.
pub fn fingerprint(v: Option<&Value>) -> String {
    match v {
        None => "absent".to_string(),
        Some(v) => {
            // serde_json's Map is ordered (BTreeMap) without the preserve_order feature: stable output.
            let bytes = serde_json::to_vec(v).unwrap_or_default();
            hex::encode(Sha256::digest(bytes))
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Delete,
    Replace,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
        }
    }
}

/// One line of a record-, entry- or backend-level view of a change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Detail {
    pub op: DetailOp,
    pub text: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DetailOp {
    Add,
    Remove,
    Modify,
}

impl Detail {
    pub fn add(text: impl Into<String>) -> Self {
        Detail { op: DetailOp::Add, text: text.into() }
    }
    pub fn remove(text: impl Into<String>) -> Self {
        Detail { op: DetailOp::Remove, text: text.into() }
    }
    pub fn modify(text: impl Into<String>) -> Self {
        Detail { op: DetailOp::Modify, text: text.into() }
    }
}

/// Set-level view of two collections of display lines: what one adds and what it drops.
pub fn set_details<'a>(
    before: impl IntoIterator<Item = &'a String>,
    after: impl IntoIterator<Item = &'a String>,
) -> Vec<Detail> {
    let before: std::collections::BTreeSet<&String> = before.into_iter().collect();
    let after: std::collections::BTreeSet<&String> = after.into_iter().collect();
    let mut out: Vec<Detail> = before.difference(&after).map(|s| Detail::remove(*s)).collect();
    out.extend(after.difference(&before).map(|s| Detail::add(*s)));
    out
}

/// Whole-file text change, rendered as a unified diff.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TextDiff {
    pub path: String,
    pub old: String,
    pub new: String,
}

/// A planned change: what the provider will do to one resource. `after` is what apply uses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Observed state (as read).
    pub before: Option<Value>,
    /// Desired spec (None for Delete).
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<TextDiff>,
    /// Contents are secret: never shown, never diffed in output.
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Change {
    pub fn new(address: Address, action: Action, before: Option<&Value>, after: Option<&Value>) -> Self {
        Change {
            address,
            action,
            before: before.cloned(),
            after: after.cloned(),
            details: Vec::new(),
            diff: None,
            sensitive: false,
            warnings: Vec::new(),
        }
    }

    /// The usual decision for a resource whose state is compared as a whole.
    pub fn compare(address: Address, desired: Option<&Value>, actual: Option<&Value>, same: bool) -> Self {
        let action = match (desired, actual) {
            (Some(_), None) => Action::Create,
            (None, Some(_)) => Action::Delete,
            (None, None) => Action::NoOp,
            (Some(_), Some(_)) if same => Action::NoOp,
            (Some(_), Some(_)) => Action::Update,
        };
        Change::new(address, action, actual, desired)
    }
}
