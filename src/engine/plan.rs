//! Plan: diff every resource (pure) and keep what needs doing, with the fingerprints of what was
//! observed so that a saved plan can refuse to apply over changed state.

use super::gates::GateReport;
use super::refresh::Refreshed;
use super::registry::Registry;
use crate::error::Result;
use groundwork_sdk::joint::Owner;
use groundwork_sdk::{fingerprint, Action, Address, Change, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub const PLAN_FORMAT_VERSION: u32 = 2;

/// One change with what the engine needs to order it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Planned {
    #[serde(flatten)]
    pub change: Change,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// Owned together with other environments on a shared host: `after` is every owner's merged part,
    /// and this is what this environment records as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<Shared>,
}

/// A change of a resource that other environments own too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Shared {
    /// The other owners.
    pub with: Vec<String>,
    /// This environment's own part, as it records it (None: it lets go, the others keep theirs).
    pub own: Option<serde_json::Value>,
}

impl Planned {
    pub fn new(change: Change, depends_on: Vec<Address>) -> Self {
        Planned { change, depends_on, shared: None }
    }

    /// What this environment's ownership record holds for it after the change: Some(spec) to record,
    /// None to forget.
    pub fn recorded(&self) -> Option<&serde_json::Value> {
        match &self.shared {
            Some(s) => s.own.as_ref(),
            None if self.change.action == Action::Delete => None,
            None => self.change.after.as_ref(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format_version: u32,
    pub environment: String,
    pub changes: Vec<Planned>,
    /// Fingerprint of the observed state of every resource read, by address.
    pub observed: BTreeMap<String, String>,
    /// The install gates as probed, with what waits on each (empty without an openshift section).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateReport>,
    /// Another run's apply lock found on the hosts while planning: its changes may be half made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<String>,
    /// Resources whose desired content is known only once another change has been applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
    /// Warnings of resources that need no change (an ignition's age, inputs left as they are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Resources already as desired that groundwork has no record of (made by hand, or imported):
    /// nothing is written; apply records them as groundwork's, so that it removes them once they are
    /// no longer desired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopt: Vec<Planned>,
    /// Resources this environment no longer wants that others sharing the host still use, already as
    /// they need them: nothing is written; apply drops them from this environment's record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<Planned>,
    /// On shared hosts: resources as desired whose record is not this environment's own part in a form
    /// the others can merge with (recorded before `shared_infra` was set): nothing is written; apply
    /// records the own part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerecord: Vec<Planned>,
    /// Per host, the apply lock's token read before anything else, where the lock was free: an apply
    /// that takes the lock and finds the same tokens can act on this plan without planning again.
    /// Not saved: a saved plan is always checked against the hosts again.
    #[serde(skip)]
    pub lock_tokens: BTreeMap<String, String>,
    /// Hosts whose record apply writes again though none of its resources changes (see
    /// [`Refreshed::records_to_mend`]); None (a saved plan) reads every host's record to find out.
    #[serde(skip)]
    pub records_to_mend: Option<std::collections::BTreeSet<String>>,
    /// The ownership records of the hosts this plan changes, as the plan read them: apply updates them
    /// without reading them again (under the lock they are current). A saved plan has none.
    #[serde(skip)]
    pub records: BTreeMap<String, super::state::Record>,
}

/// Resources that wait for a change of this plan: the served ignition, while the installer is to
/// run again. They are planned once it has (`apply ENV` does so in the same run).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub waits_for: Address,
    pub addresses: Vec<Address>,
}

impl Plan {
    /// A plan of these changes and nothing else (no gates, nothing observed, pending or recorded only).
    pub fn new(environment: &str, changes: Vec<Planned>) -> Plan {
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            environment: environment.to_string(),
            changes,
            observed: BTreeMap::new(),
            gates: Vec::new(),
            locked_by: None,
            pending: Vec::new(),
            notes: Vec::new(),
            adopt: Vec::new(),
            release: Vec::new(),
            rerecord: Vec::new(),
            lock_tokens: BTreeMap::new(),
            records_to_mend: None,
            records: BTreeMap::new(),
        }
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.change.action == action).count()
    }

    /// Keep the records of the hosts whose record apply will update (moved out of `refreshed`).
    pub fn keep_records(&mut self, records: &mut BTreeMap<String, super::state::Record>) {
        let hosts: std::collections::BTreeSet<String> = (self.changes.iter())
            .chain(&self.adopt)
            .chain(&self.release)
            .chain(&self.rerecord)
            .filter_map(|c| c.change.address.host.clone())
            .collect();
        self.records = hosts.into_iter().filter_map(|h| records.remove(&h).map(|r| (h, r))).collect();
    }

    /// No change to make now (resources may still wait on gates).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Something for apply to record (resources to take over or to leave to others), written or not.
    pub fn records_only(&self) -> bool {
        !self.adopt.is_empty() || !self.release.is_empty() || !self.rerecord.is_empty()
    }

    /// Resources that wait on a gate that has not passed.
    pub fn blocked(&self) -> usize {
        self.gates.iter().map(|g| g.blocked.len()).sum()
    }

    /// Nothing to do now and nothing waiting: the environment is where the inventory says, and
    /// everything in it is recorded as groundwork's.
    pub fn is_converged(&self) -> bool {
        self.is_empty()
            && self.blocked() == 0
            && self.pending.is_empty()
            && self.adopt.is_empty()
            && self.release.is_empty()
            && self.rerecord.is_empty()
    }

    /// Resources that wait for a change of this plan.
    pub fn pending_count(&self) -> usize {
        self.pending.iter().map(|p| p.addresses.len()).sum()
    }

    /// The first gate that has not passed.
    pub fn next_gate(&self) -> Option<&GateReport> {
        self.gates.iter().find(|g| !g.status.passed)
    }
}

/// Other environments' recorded parts, as owners to merge with.
fn as_owners<'a>(parts: &'a [(&'a str, Value)]) -> Vec<Owner<'a>> {
    parts.iter().map(|(environment, spec)| Owner { environment, spec }).collect()
}

/// The resources a plan found as desired, each with the fingerprint of what was observed and what its
/// diff said besides (warnings; whether it is sensitive). A diff is a pure function of the desired spec
/// and the observed state: the next plan of the very same desired resources (a drift loop's kept
/// expansion) need not diff again a resource observed with the same fingerprint.
#[derive(Debug, Default)]
pub struct InSync(HashMap<Address, (String, Vec<String>, bool)>);

impl InSync {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Diff desired against observed. Pure apart from the registry lookup. A resource other environments
/// sharing the host own too is diffed as the merge of every owner's part (`Provider::merge`); one this
/// environment no longer wants is left to them instead of deleted.
pub fn make_plan(registry: &Registry, environment: &str, desired: &[Resource], refreshed: &Refreshed) -> Result<Plan> {
    make_plan_remembering(registry, environment, desired, refreshed, &mut InSync::default())
}

/// [`make_plan`], with what the last plan of the same `desired` found in sync: such a resource observed
/// as it was then is not diffed again. `in_sync` is left holding what this plan found in sync.
pub fn make_plan_remembering(
    registry: &Registry,
    environment: &str,
    desired: &[Resource],
    refreshed: &Refreshed,
    in_sync: &mut InSync,
) -> Result<Plan> {
    let last = std::mem::take(in_sync);
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    let mut rerecord = Vec::new();
    let recorded_spec = |a: &Address| {
        a.host.as_ref().and_then(|h| refreshed.records.get(h)).and_then(|r| r.resources.get(a)).map(|r| r.spec())
    };
    let recorded = |a: &Address| {
        a.host.as_ref().is_none_or(|h| refreshed.records.get(h).is_some_and(|r| r.resources.contains_key(a)))
    };
    // The other owners' recorded parts of an address on its host. An owner that does not share the host
    // owns its files whole: nothing can be merged with it until it says it shares them.
    let co_owners = |a: &Address| -> std::result::Result<Vec<(&str, Value)>, groundwork_sdk::Error> {
        let Some(records) = a.host.as_ref().and_then(|h| refreshed.others.get(h)) else { return Ok(Vec::new()) };
        let mut owners = Vec::new();
        for r in records {
            let Some(res) = r.resources.get(a) else { continue };
            if !r.shared_infra {
                return Err(groundwork_sdk::Error::Shared {
                    address: a.to_string(),
                    environments: format!("{environment} and {}", r.environment),
                    message: format!(
                        "cannot share it yet: {} owns it whole (its record predates cluster.shared_infra); apply {} \
                         with shared_infra: true first",
                        r.environment, r.environment
                    ),
                });
            }
            owners.push((r.environment.as_str(), res.spec()?));
        }
        Ok(owners)
    };
    let mut observed = BTreeMap::new();
    let lookup = |r: &Resource| registry.for_address(&r.address).cloned();
    for r in desired {
        let actual = refreshed.actual.get(&r.address).and_then(|v| v.as_ref());
        let seen = fingerprint(actual);
        let provider = lookup(r)?;
        let parts = co_owners(&r.address)?;
        let others = as_owners(&parts);
        let alone = !refreshed.shared_infra && others.is_empty();
        let known = last.0.get(&r.address).filter(|(f, _, _)| alone && *f == seen);
        observed.insert(r.address.to_string(), seen.clone());
        if let Some((_, warnings, sensitive)) = known {
            notes.extend(warnings.iter().map(|w| format!("{}: {w}", r.address)));
            if actual.is_some() && !recorded(&r.address) {
                let mut taken = Change::new(r.address.clone(), Action::NoOp, None, Some(&r.spec));
                taken.sensitive = *sensitive;
                adopt.push(Planned { change: taken, depends_on: r.depends_on.clone(), shared: None });
            }
            in_sync.0.insert(r.address.clone(), (seen, warnings.clone(), *sensitive));
            continue;
        }
        // On shared hosts even a resource one environment owns alone is merged (of itself): what is
        // applied is then the same whichever owner applies it, as others come and go.
        // Borrowed where nothing is merged: a zone's spec holds every record, and a plan diffs them all.
        let spec: std::borrow::Cow<'_, Value> = match refreshed.shared_infra || !others.is_empty() {
            false => std::borrow::Cow::Borrowed(&r.spec),
            true => std::borrow::Cow::Owned(provider.merge(
                &r.address,
                Some(Owner { environment, spec: &r.spec }),
                &others,
            )?),
        };
        // On shared hosts the record holds this environment's own part, whoever else owns it now.
        let shared = (refreshed.shared_infra || !others.is_empty()).then(|| Shared {
            with: others.iter().map(|o| o.environment.to_string()).collect(),
            own: Some(r.spec.clone()),
        });
        let change = provider.diff(&r.address, Some(&*spec), actual)?;
        if change.action != Action::NoOp {
            changes.push(Planned { change, depends_on: r.depends_on.clone(), shared });
        } else {
            notes.extend(change.warnings.iter().map(|w| format!("{}: {w}", r.address)));
            if alone {
                in_sync.0.insert(r.address.clone(), (seen, change.warnings.clone(), change.sensitive));
            }
            // There and as desired, but not groundwork's yet (host resources: cluster objects are
            // recorded once groundwork writes them). Its own part is what is recorded.
            if actual.is_some() && !recorded(&r.address) {
                let mut taken = Change::new(r.address.clone(), Action::NoOp, None, Some(&r.spec));
                taken.sensitive = change.sensitive;
                adopt.push(Planned { change: taken, depends_on: r.depends_on.clone(), shared });
            } else if let Some(spec) =
                refreshed.shared_infra.then(|| recorded_spec(&r.address)).flatten().transpose()?
            {
                // What the others would merge with must merge: a record made before the hosts were
                // shared (a zone recorded as the file written, say) is replaced by the own part. (The
                // entry is parsed only on shared hosts: each tick of a drift loop would parse them all.)
                let as_other = [Owner { environment, spec: &spec }];
                if provider.merge(&r.address, Some(Owner { environment, spec: &r.spec }), &as_other).is_err() {
                    let mut again = Change::new(r.address.clone(), Action::NoOp, None, Some(&r.spec));
                    again.sensitive = change.sensitive;
                    rerecord.push(Planned { change: again, depends_on: r.depends_on.clone(), shared });
                }
            }
        }
    }
    for r in &refreshed.orphans {
        let actual = refreshed.actual.get(&r.address).and_then(|v| v.as_ref());
        observed.insert(r.address.to_string(), fingerprint(actual));
        let provider = lookup(r)?;
        let parts = co_owners(&r.address)?;
        let others = as_owners(&parts);
        if others.is_empty() {
            let change = provider.diff(&r.address, None, actual)?;
            if change.action != Action::NoOp {
                changes.push(Planned::new(change, r.depends_on.clone()));
            }
            continue;
        }
        // Still used by others: what is left is their parts.
        let left = provider.merge(&r.address, None, &others)?;
        let change = provider.diff(&r.address, Some(&left), actual)?;
        let shared = Some(Shared { with: others.iter().map(|o| o.environment.to_string()).collect(), own: None });
        let planned = Planned { change, depends_on: r.depends_on.clone(), shared };
        match planned.change.action {
            Action::NoOp => release.push(planned),
            _ => changes.push(planned),
        }
    }
    changes.sort_by(|a, b| a.change.address.cmp(&b.change.address));
    Ok(Plan {
        observed,
        locked_by: refreshed.lock.as_ref().map(|l| l.describe()),
        notes,
        adopt,
        release,
        rerecord,
        lock_tokens: refreshed.lock_tokens.clone(),
        records_to_mend: Some(refreshed.records_to_mend.clone()),
        ..Plan::new(environment, changes)
    })
}
