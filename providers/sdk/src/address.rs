//! Resource addresses: `provider.kind[host:name]` (or `provider.kind[name]` for cluster-wide ones).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one resource across plans, state records and CLI patterns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Address {
    pub provider: String,
    pub kind: String,
    pub host: Option<String>,
    pub name: String,
}

impl Address {
    pub fn new(provider: &str, kind: &str, host: Option<&str>, name: impl Into<String>) -> Self {
        Address {
            provider: provider.to_string(),
            kind: kind.to_string(),
            host: host.map(str::to_string),
            name: name.into(),
        }
    }

    /// Parse the display form back (used for plan files and `--target`).
    pub fn parse(s: &str) -> Option<Self> {
        let (head, rest) = s.split_once('[')?;
        let inner = rest.strip_suffix(']')?;
        let (provider, kind) = head.split_once('.')?;
        if provider.is_empty() || kind.is_empty() || inner.is_empty() {
            return None;
        }
        let (host, name) = match inner.split_once(':') {
            Some((h, n)) if !h.is_empty() && !h.contains('/') => (Some(h), n),
            _ => (None, inner),
        };
        Some(Address::new(provider, kind, host, name))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{}.{}[{}:{}]", self.provider, self.kind, h, self.name),
            None => write!(f, "{}.{}[{}]", self.provider, self.kind, self.name),
        }
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Address::parse(&s).ok_or_else(|| format!("not a resource address: {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_host() {
        for s in [
            "bind.zone[ns1:example.localdomain]",
            "files.file[bastion:/usr/share/nginx/html/bootstrap.ign]",
            "cluster.node_label[i1]",
        ] {
            assert_eq!(Address::parse(s).unwrap().to_string(), s);
        }
        let a = Address::parse("files.file[bastion:/srv/a:b]").unwrap();
        assert_eq!(a.host.as_deref(), Some("bastion"));
        assert_eq!(a.name, "/srv/a:b");
    }

    #[test]
    fn rejects_malformed() {
        for s in ["bind", "bind.zone", "bind.zone[]", ".zone[x]", "bind.zone[x"] {
            assert!(Address::parse(s).is_none(), "{s}");
        }
    }
}
