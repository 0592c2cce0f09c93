//! `--target` / `--exclude`: narrow a run to resources whose address matches a glob, always keeping
//! what a kept resource depends on (and saying so).

use crate::error::{Error, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use groundwork_sdk::{Address, Resource};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

fn set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // Addresses contain `[`: match them literally, only `*` and `?` are wildcards.
        let escaped = p.replace('[', "\\[").replace(']', "\\]");
        b.add(Glob::new(&escaped).map_err(|e| Error::Usage(format!("--target/--exclude {p:?}: {e}")))?);
    }
    b.build().map(Some).map_err(|e| Error::Usage(e.to_string()))
}

/// `--target` / `--exclude` compiled once, or a set of exact addresses (what an apply changed, read
/// back after it).
#[derive(Default)]
pub struct Matcher {
    targets: Option<GlobSet>,
    excludes: Option<GlobSet>,
    exactly: Option<BTreeSet<Address>>,
}

impl Matcher {
    pub fn new(targets: &[String], excludes: &[String]) -> Result<Matcher> {
        Ok(Matcher { targets: set(targets)?, excludes: set(excludes)?, exactly: None })
    }

    /// These addresses and nothing else.
    pub fn exactly(addresses: impl IntoIterator<Item = Address>) -> Matcher {
        Matcher { exactly: Some(addresses.into_iter().collect()), ..Matcher::default() }
    }

    /// No pattern at all: everything is in scope.
    pub fn is_everything(&self) -> bool {
        self.targets.is_none() && self.excludes.is_none() && self.exactly.is_none()
    }

    /// Whether anything on this host (None: the cluster) can be in scope. Only an exact set says no.
    pub fn may_hold(&self, host: Option<&str>) -> bool {
        self.exactly.as_ref().is_none_or(|only| only.iter().any(|a| a.host.as_deref() == host))
    }

    pub fn matches(&self, address: &Address) -> bool {
        if let Some(only) = &self.exactly {
            return only.contains(address);
        }
        let s = address.to_string();
        self.targets.as_ref().is_none_or(|t| t.is_match(&s)) && !self.excludes.as_ref().is_some_and(|x| x.is_match(&s))
    }

    /// The patterns that match none of `resources` (a typo would otherwise narrow a run to nothing).
    pub fn unmatched(targets: &[String], excludes: &[String], resources: &[Resource]) -> Result<Vec<String>> {
        let addresses: Vec<String> = resources.iter().map(|r| r.address.to_string()).collect();
        let mut out = Vec::new();
        for (flag, patterns) in [("--target", targets), ("--exclude", excludes)] {
            for p in patterns {
                let one = set(std::slice::from_ref(p))?;
                if !one.is_some_and(|g| addresses.iter().any(|a| g.is_match(a))) {
                    out.push(format!("{flag} {p:?}"));
                }
            }
        }
        Ok(out)
    }

    /// [`Matcher::select`], without a copy when everything is in scope.
    pub fn narrow<'a>(&self, resources: Cow<'a, [Resource]>) -> Cow<'a, [Resource]> {
        match self.is_everything() {
            true => resources,
            false => Cow::Owned(self.select(&resources).0),
        }
    }

    /// The resources in scope, and a note for every dependency pulled in.
    pub fn select(&self, resources: &[Resource]) -> (Vec<Resource>, Vec<String>) {
        if self.is_everything() {
            return (resources.to_vec(), Vec::new());
        }
        let by_addr: BTreeMap<&Address, &Resource> = resources.iter().map(|r| (&r.address, r)).collect();
        let mut keep: BTreeSet<&Address> = resources.iter().map(|r| &r.address).filter(|a| self.matches(a)).collect();
        let mut notes = Vec::new();
        let mut queue: Vec<&Address> = keep.iter().copied().collect();
        while let Some(a) = queue.pop() {
            for d in &by_addr[a].depends_on {
                if let Some((dep, _)) = by_addr.get_key_value(d) {
                    if keep.insert(dep) {
                        notes.push(format!("including {dep}: {a} depends on it"));
                        queue.push(dep);
                    }
                }
            }
        }
        (resources.iter().filter(|r| keep.contains(&r.address)).cloned().collect(), notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(addr: &str, deps: &[&str]) -> Resource {
        let mut r = Resource::new(Address::parse(addr).unwrap(), serde_json::json!({})).unwrap();
        r.depends_on = deps.iter().map(|d| Address::parse(d).unwrap()).collect();
        r
    }

    #[test]
    fn targets_pull_in_their_dependencies() {
        let all = vec![
            r("bind.zone[ns1:a]", &[]),
            r("bind.stanzas[ns1:/etc/x]", &["bind.zone[ns1:a]"]),
            r("files.file[bastion:/f]", &[]),
        ];
        let m = Matcher::new(&["bind.stanzas*".into()], &[]).unwrap();
        let (kept, notes) = m.select(&all);
        let names: Vec<String> = kept.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(names, vec!["bind.zone[ns1:a]", "bind.stanzas[ns1:/etc/x]"]);
        assert_eq!(notes, vec!["including bind.zone[ns1:a]: bind.stanzas[ns1:/etc/x] depends on it"]);
        let (kept, _) = Matcher::new(&[], &["bind.*".into()]).unwrap().select(&all);
        assert_eq!(kept.len(), 1);
        assert!(Matcher::new(&["files.*".into()], &[])
            .unwrap()
            .matches(&Address::parse("files.file[bastion:/f]").unwrap()));
    }

    #[test]
    fn an_exact_set_matches_only_its_addresses_literally() {
        let all = vec![r("bind.zone[ns1:a]", &[]), r("bind.zone[ns1:a*]", &[]), r("files.file[bastion:/f]", &[])];
        let m = Matcher::exactly([Address::parse("bind.zone[ns1:a*]").unwrap()]);
        assert!(!m.is_everything());
        let (kept, _) = m.select(&all);
        assert_eq!(kept.iter().map(|r| r.address.to_string()).collect::<Vec<_>>(), ["bind.zone[ns1:a*]"]);
        assert!(Matcher::exactly([]).select(&all).0.is_empty());
        assert!(m.may_hold(Some("ns1")) && !m.may_hold(Some("bastion")) && !m.may_hold(None));
        assert!(Matcher::new(&["bind.*".into()], &[]).unwrap().may_hold(Some("bastion")));
    }
}
