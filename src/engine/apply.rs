//! Apply: the graph is rebuilt from the plan; changes run in dependency order (deletes in reverse),
//! hosts in parallel, and on a host one change at a time per provider (a daemon's files, checks and
//! reloads stay in order; different daemons' go side by side; changes that stand alone, such as served
//! files, go side by side too); a failure stops only its dependents.

use super::plan::{Plan, Planned};
use super::registry::Registry;
use super::state;
use crate::engine::graph::Graph;
use crate::error::{Error, Result};
use crate::transport::Hosts;
use futures::stream::{FuturesUnordered, StreamExt};
use groundwork_sdk::{Action, Address, Lifecycle, Resource};
use petgraph::visit::{Dfs, EdgeRef};
use petgraph::Direction;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tracing::Instrument;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Failed(String),
    Skipped(String),
}

/// What the engine tells its caller while applying (progress bars, `apply --json` events).
#[derive(Debug)]
pub enum Progress<'a> {
    /// The change starts now (its dependencies are done and its host is free).
    Started(Action),
    Finished(&'a Outcome),
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub outcomes: Vec<(Address, Action, Outcome)>,
    /// Temp files an interrupted run had left, removed before applying: (host, path, bytes).
    pub swept: Vec<(String, String, u64)>,
}

impl ApplyReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|(_, _, o)| !matches!(o, Outcome::Applied)).count()
    }
}

/// Dependencies as the apply order needs them: a delete waits for the deletes of its dependents, and for
/// their rewriting when this environment lets go of them (a shared file that includes what is deleted
/// stops including it first).
fn apply_edges(plan: &Plan) -> Vec<(Address, Vec<Address>)> {
    let letting_go = |c: &Planned| c.shared.as_ref().is_some_and(|s| s.own.is_none());
    let deletes: Vec<&Planned> =
        plan.changes.iter().filter(|c| c.change.action == Action::Delete || letting_go(c)).collect();
    plan.changes
        .iter()
        .map(|c| {
            let deps = if c.change.action == Action::Delete {
                deletes
                    .iter()
                    .filter(|d| d.depends_on.contains(&c.change.address))
                    .map(|d| d.change.address.clone())
                    .collect()
            } else if letting_go(c) {
                // What it depended on is going: it goes first, and waits for nothing that is.
                let going = |a: &Address| deletes.iter().any(|d| &d.change.address == a);
                c.depends_on.iter().filter(|a| !going(a)).cloned().collect()
            } else {
                c.depends_on.clone()
            };
            (c.change.address.clone(), deps)
        })
        .collect()
}

/// Every secret a change will send must be content this run's environment produces: otherwise the plan
/// was made from other content, and nothing at all is written.
pub fn check_secrets(plan: &Plan, secrets: &groundwork_sdk::Secrets) -> Result<()> {
    for c in &plan.changes {
        for r in c.change.after.iter().flat_map(groundwork_sdk::secret::refs_in) {
            if !secrets.contains(&r) {
                return Err(Error::Provider(groundwork_sdk::Error::SecretChanged {
                    address: c.change.address.to_string(),
                    digest: r.short(),
                }));
            }
        }
    }
    Ok(())
}

pub async fn apply(
    registry: &Registry,
    hosts: &Hosts,
    plan: &Plan,
    on_progress: &(dyn Fn(&Address, Progress<'_>) + Sync),
) -> Result<ApplyReport> {
    check_secrets(plan, hosts.secrets())?;
    let swept = sweep(hosts, plan).await;
    let edges = apply_edges(plan);
    let graph = Graph::build(edges.iter().map(|(a, d)| (a, d.as_slice())), true)?;
    let by_addr: HashMap<&Address, &Planned> = plan.changes.iter().map(|c| (&c.change.address, c)).collect();
    let mut waiting: HashMap<Address, usize> = graph
        .index
        .iter()
        .map(|(a, &n)| (a.clone(), graph.graph.edges_directed(n, Direction::Incoming).count()))
        .collect();
    // One change at a time per (host, provider): what one provider does on a host (named's zones and
    // its reloads, say) never interleaves, while dhcpd's or the firewall's changes on the same host run
    // beside it. Order across providers is the graph's. A change its provider says stands alone (a
    // served file: its own atomic write, nothing to check or reload) shares the lock with others like it.
    let host_locks: HashMap<(String, String), Arc<tokio::sync::RwLock<()>>> = plan
        .changes
        .iter()
        .filter_map(|c| Some((c.change.address.host.clone()?, c.change.address.provider.clone())))
        .map(|k| (k, Arc::new(tokio::sync::RwLock::new(()))))
        .collect();

    let mut outcomes: BTreeMap<Address, Outcome> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    let start = |addr: Address| {
        let planned = by_addr[&addr];
        let lock = addr.host.clone().and_then(|h| host_locks.get(&(h, addr.provider.clone()))).cloned();
        let beside = registry.get(&addr.provider).is_some_and(|p| p.runs_beside_others(&planned.change));
        let span =
            tracing::info_span!("apply", address = %addr, action = ?planned.change.action, provider = %addr.provider);
        async move {
            // Held for the change: beside others that stand alone too, or alone.
            let (_beside, _alone) = match &lock {
                Some(l) if beside => (Some(l.read().await), None),
                Some(l) => (None, Some(l.write().await)),
                None => (None, None),
            };
            on_progress(&addr, Progress::Started(planned.change.action));
            let result = apply_one(registry, hosts, planned).await;
            (addr, result)
        }
        .instrument(span)
    };
    for (addr, n) in &waiting {
        if *n == 0 {
            running.push(start(addr.clone()));
        }
    }
    while let Some((addr, result)) = running.next().await {
        let node = graph.index[&addr];
        match result {
            Ok(()) => {
                tracing::info!(address = %addr, "applied");
                on_progress(&addr, Progress::Finished(&Outcome::Applied));
                outcomes.insert(addr.clone(), Outcome::Applied);
                for e in graph.graph.edges_directed(node, Direction::Outgoing) {
                    let next = graph.graph[e.target()].clone();
                    if outcomes.contains_key(&next) {
                        continue;
                    }
                    if let Some(n) = waiting.get_mut(&next) {
                        *n -= 1;
                        if *n == 0 {
                            running.push(start(next));
                        }
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(address = %addr, error = %message, "failed");
                on_progress(&addr, Progress::Finished(&Outcome::Failed(message.clone())));
                outcomes.insert(addr.clone(), Outcome::Failed(message));
                // Everything downstream is skipped; independent branches go on.
                let mut dfs = Dfs::new(&graph.graph, node);
                while let Some(n) = dfs.next(&graph.graph) {
                    let dep = &graph.graph[n];
                    if dep != &addr && !outcomes.contains_key(dep) {
                        let o = Outcome::Skipped(format!("depends on {addr}, which failed"));
                        on_progress(dep, Progress::Finished(&o));
                        outcomes.insert(dep.clone(), o);
                    }
                }
            }
        }
    }
    drop(running);
    record(hosts, plan, &outcomes).await?;
    let outcomes = plan
        .changes
        .iter()
        .map(|c| {
            let o = outcomes.get(&c.change.address).cloned().unwrap_or_else(|| Outcome::Skipped("not reached".into()));
            (c.change.address.clone(), c.change.action, o)
        })
        .collect();
    Ok(ApplyReport { outcomes, swept })
}

/// Before writing, remove what an interrupted run left (temp files of atomic writes) in the directories
/// this plan writes to and in the state directory, on every host it touches. The caller holds the lock:
/// no other run is writing there. A host that cannot be swept is left for its changes to report.
async fn sweep(hosts: &Hosts, plan: &Plan) -> Vec<(String, String, u64)> {
    let mut dirs: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for c in &plan.changes {
        let Some(h) = &c.change.address.host else { continue };
        let set = dirs.entry(h.clone()).or_default();
        set.insert(state::STATE_DIR.to_string());
        for v in [&c.change.after, &c.change.before].into_iter().flatten() {
            if let Some((dir, _)) = v.get("path").and_then(|p| p.as_str()).and_then(|p| p.rsplit_once('/')) {
                if !dir.is_empty() {
                    set.insert(dir.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (host, set) in dirs {
        let Ok(t) = hosts.transport(&host).await else { continue };
        let list: Vec<String> = set.into_iter().collect();
        match t.sweep(&list).await {
            Ok(found) => out.extend(found.into_iter().map(|(p, n)| (host.clone(), p, n))),
            Err(e) => tracing::warn!(host = %host, error = %e, "could not look for leftover temp files"),
        }
    }
    out
}

async fn apply_one(registry: &Registry, hosts: &Hosts, planned: &Planned) -> Result<()> {
    let addr = &planned.change.address;
    let p = registry.get(&addr.provider).ok_or_else(|| groundwork_sdk::Error::NoProvider {
        address: addr.to_string(),
        provider: addr.provider.clone(),
    })?;
    let cx = hosts.context_for(addr.host.as_deref()).await?;
    p.apply(&cx, &planned.change).await.map_err(Error::from)
}

/// Update each touched host's ownership record with what was written or removed.
async fn record(hosts: &Hosts, plan: &Plan, outcomes: &BTreeMap<Address, Outcome>) -> Result<()> {
    let mut per_host: BTreeMap<String, Vec<&Planned>> = BTreeMap::new();
    let record_host = hosts.record_host();
    for c in &plan.changes {
        if !matches!(outcomes.get(&c.change.address), Some(Outcome::Applied)) {
            continue;
        }
        // Cluster objects have no host: their record is kept on the environment's record host.
        if let Some(h) = c.change.address.host.as_ref().or(record_host.as_ref()) {
            per_host.entry(h.clone()).or_default().push(c);
        }
    }
    // Taken over: already as desired, recorded as groundwork's from now on. Let go: others keep it.
    for c in plan.adopt.iter().chain(&plan.release).chain(&plan.rerecord) {
        if let Some(h) = c.change.address.host.as_ref() {
            per_host.entry(h.clone()).or_default().push(c);
        }
    }
    // Records an older version wrote with secret content in them are rewritten scrubbed, on every host;
    // on shared hosts, a record made before the environment shared them says it does now. The plan
    // knows which (a saved plan does not: every host's record is then read again).
    let to_mend: Vec<String> = (hosts.names().into_iter())
        .filter(|h| !per_host.contains_key(h))
        .filter(|h| plan.records_to_mend.as_ref().is_none_or(|known| known.contains(h)))
        .collect();
    let mend = to_mend.into_iter().map(|host| async move {
        let t = hosts.transport(&host).await?;
        // One read: an unreadable record is left for the next plan to report.
        let Ok((mut rec, scrubbed)) = state::read_scrubbed(t.as_ref(), &plan.environment).await else {
            return Ok(());
        };
        if scrubbed || state::needs_shared_mark(&rec, hosts.shared_infra()) {
            rec.shared_infra = hosts.shared_infra();
            state::write(t.as_ref(), &rec).await?;
        }
        Ok::<_, Error>(())
    });
    let update = per_host.into_iter().map(|(host, changes)| async move {
        let t = hosts.transport(&host).await?;
        let mut rec = match plan.records.get(&host) {
            Some(read) => read.clone(),
            None => state::read(t.as_ref(), &plan.environment).await?,
        };
        rec.shared_infra = hosts.shared_infra();
        for c in changes {
            let addr = c.change.address.clone();
            match c.recorded() {
                None => {
                    rec.resources.remove(&addr);
                }
                Some(spec) => {
                    let r = Resource {
                        address: addr.clone(),
                        spec: spec.clone(),
                        depends_on: c.depends_on.clone(),
                        lifecycle: Lifecycle::default(),
                    };
                    rec.resources.insert(addr, state::Recorded::new(&r)?);
                }
            }
        }
        // A record left empty (everything removed, or left to others) is removed: nothing stays behind.
        if rec.resources.is_empty() {
            state::remove(t.as_ref(), &plan.environment).await
        } else {
            state::write(t.as_ref(), &rec).await
        }
    });
    futures::future::try_join(futures::future::try_join_all(mend), futures::future::try_join_all(update)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundwork_sdk::{Change, Secrets};

    #[test]
    fn a_shared_file_stops_including_what_is_deleted_before_it_goes() {
        let fragment = Address::new("dhcpd", "fragment", Some("ns1"), "/etc/dhcp/groundwork.d/a.conf");
        let main = Address::new("dhcpd", "config", Some("ns1"), "/etc/dhcp/dhcpd.conf");
        let gone = Planned::new(Change::new(fragment.clone(), Action::Delete, None, None), vec![]);
        let rewritten = Planned {
            change: Change::new(main.clone(), Action::Update, None, Some(&serde_json::json!({}))),
            depends_on: vec![fragment.clone()],
            shared: Some(crate::engine::plan::Shared { with: vec!["b".into()], own: None }),
        };
        let plan = Plan::new("a", vec![gone, rewritten]);
        let edges: BTreeMap<Address, Vec<Address>> = apply_edges(&plan).into_iter().collect();
        assert_eq!(edges[&fragment], vec![main.clone()], "the fragment waits for the main file");
        assert!(edges[&main].is_empty(), "the main file waits for nothing that goes");
    }

    #[test]
    fn a_change_whose_secret_the_environment_no_longer_produces_is_refused() {
        let planned_with = Secrets::default();
        let r = planned_with.keep(b"old ignition".to_vec());
        let addr = Address::new("files", "file", Some("bastion"), "/srv/www/master.ign");
        let after = serde_json::json!({"path": "/srv/www/master.ign", "secret": r});
        let plan = Plan::new("lab", vec![Planned::new(Change::new(addr, Action::Create, None, Some(&after)), vec![])]);
        assert!(check_secrets(&plan, &planned_with).is_ok());
        let now = Secrets::default();
        now.keep(b"new ignition".to_vec());
        let err = check_secrets(&plan, &now).unwrap_err().to_string();
        assert!(err.contains("master.ign") && err.contains("not what the environment produces now"), "{err}");
        assert!(!err.contains("old ignition"), "{err}");
    }
}
