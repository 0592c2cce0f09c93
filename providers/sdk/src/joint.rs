//! Resources several environments own together on shared infra hosts (`cluster.shared_infra`,
//! docs/multi-cluster.md). Each environment records only its own part of such a resource; what is
//! written is the merge of every owner's part, so that one cluster's apply never drops another's.
//!
//! - A file made of [`Block`]s (dhcpd.conf, haproxy.cfg, named's zone stanzas): blocks with the same key
//!   must be the same text in every owner (the shared global part), the others are each owner's own;
//!   a claim (a MAC, an address, a listening socket) may be held by one owner only.
//! - Anything else (a firewalld opening, an SELinux rule, a unit): every owner must want exactly the
//!   same. It stays while any owner still records it: refcounted by owner.

use crate::file::ManagedFile;
use crate::{Address, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One owner's part of a jointly owned resource, as it recorded it (or, for this run, as desired).
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub environment: &'a str,
    pub spec: &'a Value,
}

/// A piece of a jointly owned file. The file is its blocks in key order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Block {
    pub key: String,
    pub text: String,
    /// What this block takes that no other owner may (`mac 52:54:…`, `bind 10.88.0.4:6443`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

impl Block {
    pub fn new(key: impl Into<String>, text: impl Into<String>) -> Self {
        Block { key: key.into(), text: text.into(), claims: Vec::new() }
    }

    pub fn claiming(mut self, claims: impl IntoIterator<Item = String>) -> Self {
        self.claims.extend(claims);
        self
    }
}

/// The file's text: its blocks in key order, each once.
pub fn render(blocks: &[Block]) -> String {
    let mut sorted: Vec<&Block> = blocks.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.dedup_by(|a, b| a.key == b.key);
    let texts: Vec<&str> = sorted.iter().map(|b| b.text.as_str()).collect();
    texts.join("\n")
}

fn conflict(address: &Address, a: &str, b: &str, message: impl Into<String>) -> Error {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    Error::Shared {
        address: address.to_string(),
        environments: format!("{first} and {second}"),
        message: message.into(),
    }
}

/// Merge the owners' blocks: one block per key (the same text in every owner that has it), and each
/// claim held by one owner only.
pub fn merge_blocks(address: &Address, parts: &[(&str, &[Block])]) -> Result<Vec<Block>, Error> {
    let mut by_key: BTreeMap<&str, (&str, &Block)> = BTreeMap::new();
    let mut claimed: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (owner, blocks) in parts {
        for b in blocks.iter() {
            match by_key.get(b.key.as_str()) {
                Some((first, seen)) if seen.text != b.text => {
                    return Err(conflict(
                        address,
                        first,
                        owner,
                        format!("both declare its part `{}`, differently; make them the same", b.key),
                    ))
                }
                Some(_) => {}
                None => {
                    by_key.insert(&b.key, (owner, b));
                }
            }
            for c in &b.claims {
                match claimed.get(c.as_str()) {
                    Some((first, key)) if first != owner || *key != b.key => {
                        return Err(conflict(address, first, owner, format!("both use {c}")))
                    }
                    Some(_) => {}
                    None => {
                        claimed.insert(c, (owner, &b.key));
                    }
                }
            }
        }
    }
    Ok(by_key.into_values().map(|(_, b)| b.clone()).collect())
}

/// Fields of a spec that say how it is checked and made live, not what it is.
const HOW_APPLIED: &[&str] = &["check", "activate", "reload"];

/// The spec to apply for a resource with several owners. `own` is None when this environment lets
/// go of it while others keep it.
pub fn merge(address: &Address, own: Option<Owner<'_>>, others: &[Owner<'_>]) -> Result<Value, Error> {
    let all: Vec<Owner<'_>> = own.into_iter().chain(others.iter().copied()).collect();
    let Some(base) = all.first() else { return Err(Error::failed(address, "no owner left to merge")) };
    let has_blocks = |v: &Value| v.get("blocks").and_then(|b| b.as_array()).is_some_and(|a| !a.is_empty());
    if all.iter().any(|o| has_blocks(o.spec)) {
        let files: Vec<(&str, ManagedFile)> = all
            .iter()
            .map(|o| {
                serde_json::from_value::<ManagedFile>(o.spec.clone())
                    .map(|f| (o.environment, f))
                    .map_err(|e| Error::Spec { address: address.to_string(), message: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        if let Some((env, _)) = files.iter().find(|(_, f)| f.blocks.is_empty()) {
            return Err(conflict(address, base.environment, env, "one owns the whole file, not a part of it"));
        }
        let parts: Vec<(&str, &[Block])> = files.iter().map(|(e, f)| (*e, f.blocks.as_slice())).collect();
        let blocks = merge_blocks(address, &parts)?;
        let mut merged = files[0].1.clone();
        merged.content = render(&blocks);
        merged.blocks = blocks;
        return serde_json::to_value(merged)
            .map_err(|e| Error::Spec { address: address.to_string(), message: e.to_string() });
    }
    // The same if what is written is: how it is checked and made live may differ (each owner reloads
    // its own zones, say), and is the applying owner's.
    let written = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for k in HOW_APPLIED {
                m.remove(*k);
            }
        }
        v
    };
    let base_written = written(base.spec);
    if let Some(other) = all.iter().find(|o| written(o.spec) != base_written) {
        return Err(conflict(address, base.environment, other.environment, "they declare it differently"));
    }
    Ok(base.spec.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addr() -> Address {
        Address::new("dhcpd", "config", Some("ns1"), "/etc/dhcp/dhcpd.conf")
    }

    fn file(blocks: Vec<Block>) -> Value {
        let mut f = ManagedFile::new("/etc/dhcp/dhcpd.conf", render(&blocks));
        f.blocks = blocks;
        serde_json::to_value(f).unwrap()
    }

    #[test]
    fn blocks_of_every_owner_are_merged_in_key_order() {
        let a = file(vec![Block::new("0 global", "g\n"), Block::new("5 cluster a", "host a\n")]);
        let b = file(vec![Block::new("0 global", "g\n"), Block::new("5 cluster b", "host b\n")]);
        let merged =
            merge(&addr(), Some(Owner { environment: "b", spec: &b }), &[Owner { environment: "a", spec: &a }])
                .unwrap();
        assert_eq!(merged["content"], "g\n\nhost a\n\nhost b\n");
        assert_eq!(merged["blocks"].as_array().unwrap().len(), 3);
        // Letting go: only the others' parts are left.
        let left = merge(&addr(), None, &[Owner { environment: "a", spec: &a }]).unwrap();
        assert_eq!(left["content"], "g\n\nhost a\n");
    }

    #[test]
    fn a_shared_part_declared_differently_names_both_environments() {
        let a = file(vec![Block::new("0 global", "lease 600\n")]);
        let b = file(vec![Block::new("0 global", "lease 900\n")]);
        let err = merge(&addr(), Some(Owner { environment: "b", spec: &b }), &[Owner { environment: "a", spec: &a }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a and b") && err.contains("0 global"), "{err}");
    }

    #[test]
    fn a_claim_held_by_two_owners_names_both() {
        let mac = "mac 52:54:00:00:00:21".to_string();
        let a = file(vec![Block::new("5 cluster a", "host a-m1\n").claiming([mac.clone()])]);
        let b = file(vec![Block::new("5 cluster b", "host b-m1\n").claiming([mac])]);
        let err = merge(&addr(), Some(Owner { environment: "b", spec: &b }), &[Owner { environment: "a", spec: &a }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a and b") && err.contains("52:54:00:00:00:21"), "{err}");
        // The same claim twice in one owner's own block is no conflict.
        let c = file(vec![Block::new("5 cluster c", "x\n").claiming(["ip 1".to_string(), "ip 1".to_string()])]);
        assert!(merge(&addr(), Some(Owner { environment: "c", spec: &c }), &[]).is_ok());
    }

    #[test]
    fn a_whole_file_is_the_same_if_what_is_written_is() {
        let mut a = ManagedFile::new("/etc/named/options.conf", "recursion no;\n");
        a.activate = Some(vec!["reload".into(), "a.example.test".into()]);
        let mut b = a.clone();
        b.activate = Some(vec!["reload".into(), "b.example.test".into()]);
        let (a, b) = (serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap());
        let merged =
            merge(&addr(), Some(Owner { environment: "b", spec: &b }), &[Owner { environment: "a", spec: &a }])
                .unwrap();
        assert_eq!(merged, b, "the applying owner's reload");
        let mut c: ManagedFile = serde_json::from_value(a.clone()).unwrap();
        c.content = "recursion yes;\n".into();
        let c = serde_json::to_value(c).unwrap();
        assert!(merge(&addr(), Some(Owner { environment: "c", spec: &c }), &[Owner { environment: "a", spec: &a }])
            .is_err());
    }

    #[test]
    fn anything_else_must_be_the_same_in_every_owner() {
        let https = json!({"zone": "public", "name": "https"});
        let same = merge(
            &Address::new("firewalld", "service", Some("lb1"), "public/https"),
            None,
            &[Owner { environment: "b", spec: &https }],
        )
        .unwrap();
        assert_eq!(same, https);
        let other = json!({"zone": "internal", "name": "https"});
        let err = merge(
            &Address::new("firewalld", "service", Some("lb1"), "public/https"),
            Some(Owner { environment: "a", spec: &other }),
            &[Owner { environment: "b", spec: &https }],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a and b"), "{err}");
    }
}
