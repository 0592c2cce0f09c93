//! Secret-bearing content: ignition configs, a Secret's data, pull secrets, keys, any file marked
//! `secret: true`.
//!
//! Everywhere groundwork writes — plans, saved plans, ownership records, logs, reports, metrics — such
//! content appears only as a [`SecretRef`]: its sha256 and size, as `{"$secret": "<sha256>", "size": N}`
//! inside a spec. The bytes themselves live in memory, in a [`Secrets`] store that is filled while the
//! environment is expanded, and reach a host only when a provider asks the store for them at apply
//! time. A plan that names content the environment no longer produces finds nothing in the store and is
//! refused before anything is written.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The key that marks a secret reference inside a spec.
pub const SECRET_KEY: &str = "$secret";

/// How the content appears where it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// As a base64 string (a Kubernetes Secret's `data`).
    Base64,
}

/// Secret content, by digest: all that any artifact ever carries of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretRef {
    #[serde(rename = "$secret")]
    pub sha256: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

impl SecretRef {
    pub fn of(bytes: &[u8]) -> Self {
        SecretRef { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len() as u64, encoding: None }
    }

    pub fn encoded(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// `sha256:0123456789ab… (N bytes)`: how plans show it.
    pub fn short(&self) -> String {
        format!("sha256:{}… ({} bytes)", &self.sha256[..12.min(self.sha256.len())], self.size)
    }

    /// A reference at this place of a spec, if one stands there.
    pub fn from_value(v: &Value) -> Option<SecretRef> {
        if v.get(SECRET_KEY).is_some() {
            serde_json::from_value(v.clone()).ok()
        } else {
            None
        }
    }
}

/// Secret content held in memory by digest, shared by every clone of the store. Its `Debug` shows
/// digests only.
#[derive(Clone, Default)]
pub struct Secrets {
    by_digest: Arc<RwLock<HashMap<String, Arc<Vec<u8>>>>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digests: Vec<String> = self
            .by_digest
            .read()
            .map(|m| m.keys().map(|k| format!("sha256:{}…", &k[..12.min(k.len())])).collect())
            .unwrap_or_default();
        f.debug_struct("Secrets").field("digests", &digests).finish()
    }
}

impl Secrets {
    /// Keep `bytes` and return the reference that stands for them.
    pub fn keep(&self, bytes: Vec<u8>) -> SecretRef {
        let r = SecretRef::of(&bytes);
        if let Ok(mut m) = self.by_digest.write() {
            m.entry(r.sha256.clone()).or_insert_with(|| Arc::new(bytes));
        }
        r
    }

    /// The content a reference stands for, if this run's environment produced it.
    pub fn get(&self, r: &SecretRef) -> Option<Arc<Vec<u8>>> {
        self.by_digest.read().ok()?.get(&r.sha256).cloned()
    }

    pub fn contains(&self, r: &SecretRef) -> bool {
        self.by_digest.read().is_ok_and(|m| m.contains_key(&r.sha256))
    }

    pub fn len(&self) -> usize {
        self.by_digest.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every secret reference inside a value (a spec, an observed state).
pub fn refs_in(v: &Value) -> Vec<SecretRef> {
    fn walk(v: &Value, out: &mut Vec<SecretRef>) {
        if let Some(r) = SecretRef::from_value(v) {
            out.push(r);
            return;
        }
        match v {
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// The value with every reference replaced by its content: a string (base64 where the reference says
/// so). Err names the first reference the store does not hold.
pub fn reveal(v: &Value, secrets: &Secrets) -> Result<Value, SecretRef> {
    if let Some(r) = SecretRef::from_value(v) {
        let bytes = secrets.get(&r).ok_or_else(|| r.clone())?;
        return Ok(match r.encoding {
            Some(Encoding::Base64) => {
                use base64::Engine;
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
            }
            None => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        });
    }
    Ok(match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(k.clone(), reveal(x, secrets)?);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| reveal(x, secrets)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_carry_the_digest_only_and_reveal_from_the_store() {
        let store = Secrets::default();
        let r = store.keep(b"hunter2-sentinel".to_vec());
        let spec = json!({"kind": "Secret", "data": {"password": serde_json::to_value(r.clone().encoded(Encoding::Base64)).unwrap()}});
        let text = spec.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(&r.sha256));
        assert_eq!(refs_in(&spec), vec![r.clone().encoded(Encoding::Base64)]);
        let shown = reveal(&spec, &store).unwrap();
        assert_eq!(shown["data"]["password"], "aHVudGVyMi1zZW50aW5lbA==");
        // Another run's store (the content changed since): the reference is named, nothing revealed.
        let other = Secrets::default();
        assert_eq!(reveal(&spec, &other).unwrap_err().sha256, r.sha256);
        assert!(!format!("{store:?}").contains("hunter2"));
        assert!(r.short().starts_with("sha256:") && r.short().ends_with("(16 bytes)"));
    }
}
