//! Apply: the graph is rebuilt from the plan; changes run in dependency order (deletes in reverse),
//! hosts in parallel, and on a host one change at a time per provider (a daemon's files, checks and
//! reloads stay in order; different daemons' go side by side; changes that stand alone, such as served
//! files, go side by side too); a failure stops only its dependents. A daemon's files whose reload can
//! wait are written side by side, each checked, and reloaded once for all (see `Finished::Activation`).

use super::plan::{Plan, Planned};
use super::registry::Registry;
use super::state;
use crate::engine::graph::Graph;
use crate::error::{Error, Result};
use crate::transport::Hosts;
use futures::future::{BoxFuture, FutureExt};
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
    let host_locks: HashMap<Group, Arc<tokio::sync::RwLock<()>>> = plan
        .changes
        .iter()
        .filter_map(|c| group_of(&c.change.address))
        .map(|k| (k, Arc::new(tokio::sync::RwLock::new(()))))
        .collect();

    let mut outcomes: BTreeMap<Address, Outcome> = BTreeMap::new();
    let mut running: FuturesUnordered<BoxFuture<'_, Finished>> = FuturesUnordered::new();
    // A change whose activation waits (`Provider::activation_deferred`) is written and joins its group's
    // pending changes; once none of the group's other deferring changes is under way, one activation
    // runs for all of them. Its dependents in the group that defer too may go on meanwhile (their
    // checkers read the files, not the daemon); the others wait for the activation.
    let mut deferring: HashMap<Group, usize> = HashMap::new();
    let mut pending: HashMap<Group, Vec<Address>> = HashMap::new();
    let defers = |addr: &Address| {
        addr.host.is_some()
            && registry.get(&addr.provider).is_some_and(|p| p.activation_deferred(&by_addr[addr].change))
    };
    let start = |addr: Address| {
        let planned = by_addr[&addr];
        let lock = group_of(&addr).and_then(|g| host_locks.get(&g)).cloned();
        let deferred = defers(&addr);
        // A change whose activation waits is its own atomic, checked write: it goes beside the others
        // like it, and its group's activation waits for all of them (it takes the lock alone).
        let beside = deferred || registry.get(&addr.provider).is_some_and(|p| p.runs_beside_others(&planned.change));
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
            let result = apply_one(registry, hosts, planned, deferred).await;
            Finished::Change(addr, deferred, result)
        }
        .instrument(span)
        .boxed()
    };
    let activate = |group: Group, written: Vec<Address>| {
        let lock = host_locks.get(&group).cloned();
        let by_addr = &by_addr;
        let span = tracing::info_span!("activate", host = %group.0, provider = %group.1, changes = written.len());
        async move {
            let _alone = match &lock {
                Some(l) => Some(l.write().await),
                None => None,
            };
            let changes: Vec<&groundwork_sdk::Change> = written.iter().map(|a| &by_addr[a].change).collect();
            let result = activate_written(registry, hosts, &group, &changes).await;
            Finished::Activation(group, written, result)
        }
        .instrument(span)
        .boxed()
    };
    let launch = |addr: Address, running: &mut FuturesUnordered<_>, deferring: &mut HashMap<Group, usize>| {
        if let (Some(g), true) = (group_of(&addr), defers(&addr)) {
            *deferring.entry(g).or_default() += 1;
        }
        running.push(start(addr));
    };
    // Count down a finished change's dependents that `which` accepts; those it freed are returned.
    let release = |addr: &Address,
                   which: &dyn Fn(&Address) -> bool,
                   waiting: &mut HashMap<Address, usize>,
                   outcomes: &BTreeMap<Address, Outcome>| {
        let mut ready = Vec::new();
        for e in graph.graph.edges_directed(graph.index[addr], Direction::Outgoing) {
            let next = &graph.graph[e.target()];
            if outcomes.contains_key(next) || !which(next) {
                continue;
            }
            if let Some(n) = waiting.get_mut(next) {
                *n -= 1;
                if *n == 0 {
                    ready.push(next.clone());
                }
            }
        }
        ready
    };
    // Failures: everything downstream is skipped; independent branches go on.
    let fail = |failed: &[Address], message: String, outcomes: &mut BTreeMap<Address, Outcome>| {
        for addr in failed {
            tracing::error!(address = %addr, error = %message, "failed");
            on_progress(addr, Progress::Finished(&Outcome::Failed(message.clone())));
            outcomes.insert(addr.clone(), Outcome::Failed(message.clone()));
        }
        for addr in failed {
            let mut dfs = Dfs::new(&graph.graph, graph.index[addr]);
            while let Some(n) = dfs.next(&graph.graph) {
                let dep = &graph.graph[n];
                if !outcomes.contains_key(dep) {
                    let o = Outcome::Skipped(format!("depends on {addr}, which failed"));
                    on_progress(dep, Progress::Finished(&o));
                    outcomes.insert(dep.clone(), o);
                }
            }
        }
    };
    let applied = |addr: &Address, outcomes: &mut BTreeMap<Address, Outcome>| {
        tracing::info!(address = %addr, "applied");
        on_progress(addr, Progress::Finished(&Outcome::Applied));
        outcomes.insert(addr.clone(), Outcome::Applied);
    };

    for (addr, n) in &waiting {
        if *n == 0 {
            launch(addr.clone(), &mut running, &mut deferring);
        }
    }
    while let Some(finished) = running.next().await {
        let mut ready = Vec::new();
        let group = match finished {
            Finished::Change(addr, deferred, result) => {
                let group = group_of(&addr);
                match (result, &group) {
                    (Ok(()), Some(g)) if deferred => {
                        // Applied once its group's activation succeeds; its dependents in the group whose
                        // activation waits too are written before that activation, and covered by it.
                        let covered = |a: &Address| group_of(a).as_ref() == Some(g) && defers(a);
                        ready = release(&addr, &covered, &mut waiting, &outcomes);
                        pending.entry(g.clone()).or_default().push(addr);
                    }
                    (Ok(()), _) => {
                        applied(&addr, &mut outcomes);
                        ready = release(&addr, &|_| true, &mut waiting, &outcomes);
                    }
                    (Err(e), _) => fail(std::slice::from_ref(&addr), e.to_string(), &mut outcomes),
                }
                if let (Some(n), true) = (group.as_ref().and_then(|g| deferring.get_mut(g)), deferred) {
                    *n -= 1;
                }
                group
            }
            Finished::Activation(group, written, result) => {
                match result {
                    Ok(()) => {
                        for addr in &written {
                            applied(addr, &mut outcomes);
                        }
                        for addr in &written {
                            let other = |a: &Address| group_of(a).as_ref() != Some(&group) || !defers(a);
                            ready.extend(release(addr, &other, &mut waiting, &outcomes));
                        }
                    }
                    Err(e) => fail(&written, e.to_string(), &mut outcomes),
                }
                Some(group)
            }
        };
        for addr in ready {
            launch(addr, &mut running, &mut deferring);
        }
        // None of the group's deferring changes under way any more: activate what it wrote.
        if let Some(g) = group.filter(|g| deferring.get(g).copied().unwrap_or(0) == 0) {
            if let Some(written) = pending.remove(&g) {
                running.push(activate(g, written));
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

/// Carry out one change; a `deferred` one without its activation.
async fn apply_one(registry: &Registry, hosts: &Hosts, planned: &Planned, deferred: bool) -> Result<()> {
    let addr = &planned.change.address;
    let p = provider(registry, addr)?;
    let cx = hosts.context_for(addr.host.as_deref()).await?;
    match deferred {
        true => p.write(&cx, &planned.change).await,
        false => p.apply(&cx, &planned.change).await,
    }
    .map_err(Error::from)
}

/// One activation for the changes a group wrote (see `Provider::activate`).
async fn activate_written(
    registry: &Registry,
    hosts: &Hosts,
    group: &Group,
    changes: &[&groundwork_sdk::Change],
) -> Result<()> {
    let Some(first) = changes.first() else { return Ok(()) };
    let p = provider(registry, &first.address)?;
    let cx = hosts.context_for(Some(&group.0)).await?;
    p.activate(&cx, changes).await.map_err(Error::from)
}

fn provider<'r>(registry: &'r Registry, addr: &Address) -> Result<&'r Arc<dyn groundwork_sdk::Provider>> {
    registry.for_address(addr).map_err(Error::from)
}

/// Changes on one host by one provider: they take turns (see `apply`), and their activations can be one.
type Group = (String, String);

fn group_of(addr: &Address) -> Option<Group> {
    Some((addr.host.clone()?, addr.provider.clone()))
}

/// What a future of the apply loop reports: a change done (and whether its activation waits), or the
/// activation of changes a group wrote.
enum Finished {
    Change(Address, bool, Result<()>),
    Activation(Group, Vec<Address>, Result<()>),
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
