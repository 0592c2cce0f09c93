//! Refresh: read the actual state of every desired resource and of every recorded resource that is
//! no longer desired. Each host first gets one batched read (its ownership record, its lock file, and
//! every file and query its providers announced in `prefetch`); then each (provider, host) group
//! reads, concurrently, from that batch.

use super::registry::Registry;
use super::scope::Matcher;
use super::state::{self, Record};
use crate::error::{Error, Result};
use crate::transport::Hosts;
use futures::future::try_join_all;
use groundwork_sdk::cached::CachedTransport;
use groundwork_sdk::{Address, Batch, Cmd, Prefetch, Resource, Transport};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tracing::Instrument;

pub struct Refreshed {
    pub actual: HashMap<Address, Option<Value>>,
    /// Recorded on a host but no longer desired: candidates for deletion.
    pub orphans: Vec<Resource>,
    pub records: BTreeMap<String, Record>,
    /// The records of other environments sharing each host (`cluster.shared_infra`), by host.
    pub others: BTreeMap<String, Vec<Record>>,
    /// The hosts are shared with other environments: what is recorded is always this environment's own
    /// part (its desired spec), which the others merge with theirs.
    pub shared_infra: bool,
    /// Another run's apply lock, as found on the hosts (read in the same batch).
    pub lock: Option<super::lock::LockInfo>,
    /// Per host where the lock was free before anything else was read: its token (see
    /// [`super::lock::Held::nothing_since`]).
    pub lock_tokens: BTreeMap<String, String>,
    /// Hosts whose record must be written again though nothing of it changes: it held secret content an
    /// older version wrote, or does not say whether the environment shares the host.
    pub records_to_mend: BTreeSet<String>,
    /// Per host, the answers to the queries that rode along in its batch (see [`refresh`]).
    pub answers: Answers,
    /// Everything came from the hosts' batches: no read was passed on to a host, none went to the
    /// cluster. The same batches would then make the same refresh (providers read through their
    /// context only).
    pub from_batches_only: bool,
}

/// Per host, the outputs of read-only queries that rode along in its batched read, as a batch: a
/// [`CachedTransport`] made of it answers them without another round trip.
pub type Answers = BTreeMap<String, Batch>;

/// What a caller asks of a refresh besides the state of the resources.
#[derive(Default)]
pub struct Asks {
    /// Per host, read-only queries of the caller's own (a drift tick's service table), run in the
    /// same batch, their outputs returned in [`Refreshed::answers`]; a host the refresh does not read
    /// gets no answers.
    pub riders: BTreeMap<String, Vec<Cmd>>,
    /// No lock tokens: the plan is only looked at (a drift check; its heal plans again under the
    /// lock), never applied as it was read, so nothing need run before the batch's other reads.
    pub no_lock_tokens: bool,
}

/// `in_scope` decides which recorded-but-undeclared resources are read as deletion candidates: those
/// outside a `--target`/`--exclude` scope are not read at all. `waiting` are declared but blocked
/// behind a gate: recorded, they are not orphans. `asks`: the caller's own queries, and whether it wants
/// lock tokens.
pub async fn refresh(
    registry: &Registry,
    hosts: &Hosts,
    environment: &str,
    desired: &[Resource],
    waiting: &BTreeSet<Address>,
    in_scope: &Matcher,
    asks: &Asks,
) -> Result<Refreshed> {
    let reading = Reading { registry, hosts, environment, desired, waiting, in_scope, asks };
    let batches = reading.batches().await?;
    reading.refresh_from(batches).await
}

/// One refresh, in its two steps: each host's batched read ([`Reading::batches`]), then what is made of
/// the batches ([`Reading::refresh_from`]). A caller may look at the batches in between (a drift loop's
/// batches, the same as last time, make the same plan: see [`Refreshed::from_batches_only`]).
pub struct Reading<'a> {
    pub registry: &'a Registry,
    pub hosts: &'a Hosts,
    pub environment: &'a str,
    pub desired: &'a [Resource],
    pub waiting: &'a BTreeSet<Address>,
    pub in_scope: &'a Matcher,
    pub asks: &'a Asks,
}

/// Each host's batched read, as it came.
pub struct HostBatches {
    by_host: BTreeMap<String, (Arc<dyn Transport>, Batch)>,
}

impl HostBatches {
    /// Every host answered exactly what `seen` holds (the same hosts, byte for byte).
    pub fn same_as(&self, seen: &BTreeMap<String, Batch>) -> bool {
        self.by_host.len() == seen.len() && self.by_host.iter().all(|(h, (_, b))| seen.get(h) == Some(b))
    }

    /// A copy of what each host answered.
    pub fn copy(&self) -> BTreeMap<String, Batch> {
        self.by_host.iter().map(|(h, (_, b))| (h.clone(), b.clone())).collect()
    }

    /// The answers to the caller's own queries ([`Asks::riders`]), as [`Refreshed::answers`] has them.
    pub fn answers(&self, asks: &Asks) -> Answers {
        let mut answered = Answers::new();
        for (h, (_, batch)) in &self.by_host {
            let riding = asks.riders.get(h).map(Vec::as_slice).unwrap_or_default();
            let mut answers = Batch::default();
            for key in riding.iter().map(Cmd::key) {
                if let Some(out) = batch.outputs.get(&key) {
                    answers.outputs.insert(key, out.clone());
                }
            }
            if !answers.outputs.is_empty() {
                answered.insert(h.clone(), answers);
            }
        }
        answered
    }
}

impl Reading<'_> {
    /// Group per (provider, host): one read each, served from the host's batch where it can be. The
    /// groups borrow the resources (at 2000 nodes they are megabytes).
    fn groups(&self) -> BTreeMap<(&str, Option<&str>), Vec<&Resource>> {
        let mut groups: BTreeMap<(&str, Option<&str>), Vec<&Resource>> = BTreeMap::new();
        for r in self.desired {
            groups.entry((&r.address.provider, r.address.host.as_deref())).or_default().push(r);
        }
        groups
    }

    fn lock_name(&self) -> String {
        super::lock::lock_name(self.environment, self.hosts.shared_infra())
    }

    /// Per host: one batched read of its ownership record and of every file its providers will read.
    pub async fn batches(&self) -> Result<HostBatches> {
        let (hosts, environment, asks) = (self.hosts, self.environment, self.asks);
        let groups = self.groups();
        let mut by_host: BTreeMap<String, Vec<&[&Resource]>> = BTreeMap::new();
        for ((_, host), resources) in &groups {
            if let Some(h) = host {
                by_host.entry(h.to_string()).or_default().push(resources);
            }
        }
        // Every host is read, with or without desired resources: a host whose resources all left the
        // environment still has a record of them to delete. Not so for an exact set of addresses (what an
        // apply changed, read back): only the hosts that hold them.
        for h in hosts.names() {
            if self.in_scope.may_hold(Some(&h)) {
                by_host.entry(h).or_default();
            }
        }
        if let Some(h) = hosts.record_host() {
            if self.desired.iter().any(|r| r.address.host.is_none())
                || !self.in_scope.is_everything() && self.in_scope.may_hold(None)
            {
                by_host.entry(h).or_default();
            }
        }
        let shared = hosts.shared_infra();
        let lock_name = &self.lock_name();
        let read = try_join_all(by_host.iter().map(|(h, groups)| async move {
            let reads = vec![state::state_path(environment), super::lock::lock_path(lock_name)];
            let execs = if shared { vec![state::list_records()] } else { Vec::new() };
            let first = if asks.no_lock_tokens { Vec::new() } else { vec![super::lock::guard(lock_name)] };
            let mut prefetch = Prefetch { reads, execs, first, ..Default::default() };
            for resources in groups {
                prefetch.extend(self.registry.for_address(&resources[0].address)?.prefetch(resources));
            }
            let riding = asks.riders.get(h).map(Vec::as_slice).unwrap_or_default();
            prefetch.execs.extend(riding.iter().cloned());
            let t = hosts.transport(h).await?;
            let batch =
                t.read_batch(&prefetch).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
            Ok::<_, Error>((h.clone(), (t, batch)))
        }))
        .await?;
        Ok(HostBatches { by_host: read.into_iter().collect() })
    }

    /// What the batches say, and every provider's read of its resources (from the batches where they
    /// can answer).
    pub async fn refresh_from(&self, batches: HostBatches) -> Result<Refreshed> {
        let (hosts, environment, asks) = (self.hosts, self.environment, self.asks);
        let riders_answered = batches.answers(asks);
        let mut groups = self.groups();
        let mut found_lock = None;
        let mut lock_tokens = BTreeMap::new();
        let mut records_to_mend = BTreeSet::new();
        let mut co_owners = BTreeMap::new();
        let shared = hosts.shared_infra();
        let lock_name = &self.lock_name();
        let mut records = BTreeMap::new();
        let made = try_join_all(batches.by_host.into_iter().map(|(h, (t, mut batch))| async move {
            let guard = super::lock::guard(lock_name);
            // The record is parsed from the batch and its bytes let go (at 2000 nodes the bastion's is
            // 2.4 MB); a transport that did not read it in the batch reads it now.
            let record = match batch.contents.remove(&state::state_path(environment)) {
                Some(bytes) => state::parse_scrubbed(&h, environment, bytes.as_deref())?,
                None => state::read_scrubbed(t.as_ref(), environment).await?,
            };
            let guard_ran_first = batch.outputs.contains_key(&guard.key());
            let cached = Arc::new(CachedTransport::new(t, batch));
            let t: Arc<dyn Transport> = cached.clone();
            let (record, scrubbed) = record;
            let mend = scrubbed || state::needs_shared_mark(&record, shared);
            let others = match shared {
                true => {
                    let out = t
                        .exec(&state::list_records())
                        .await
                        .map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
                    state::parse_records(&h, &out.stdout, environment)?
                }
                false => Vec::new(),
            };
            // Answered from the batch when the transport ran it first; otherwise no token.
            let token = match guard_ran_first {
                true => t.exec(&guard).await.ok().and_then(|o| super::lock::parse_guard(&o)),
                false => None,
            };
            let lock = t.read_file(&super::lock::lock_path(lock_name)).await.ok().flatten();
            let lock = super::lock::parse_file(lock.as_deref()).filter(|l| !l.is_ours());
            Ok::<_, Error>((h, (cached, record, lock, others, token, mend)))
        }))
        .await?;
        let cached: BTreeMap<String, Arc<CachedTransport>> = made
            .into_iter()
            .map(|(h, (t, record, lock, others, token, mend))| {
                if mend {
                    records_to_mend.insert(h.clone());
                }
                if let Some(token) = token {
                    lock_tokens.insert(h.clone(), token);
                }
                found_lock = found_lock.take().or(lock);
                if !others.is_empty() {
                    co_owners.insert(h.clone(), others);
                }
                records.insert(h.clone(), record);
                (h, t)
            })
            .collect();

        let wanted: BTreeSet<&Address> = self.desired.iter().map(|r| &r.address).collect();
        // Only the orphans' entries are parsed.
        let orphans: Vec<Resource> = records
            .values()
            .flat_map(|r| r.resources.iter())
            .filter(|(a, _)| !wanted.contains(a) && !self.waiting.contains(a) && self.in_scope.matches(a))
            .map(|(_, r)| r.resource())
            .collect::<std::result::Result<_, _>>()?;

        for r in &orphans {
            groups.entry((&r.address.provider, r.address.host.as_deref())).or_default().push(r);
        }
        let from_cluster = groups.keys().any(|(_, host)| host.is_none());
        let cached = &cached;
        let reads = groups.into_iter().map(|((name, host), resources)| {
            let span =
                tracing::info_span!("read", provider = %name, host = host.unwrap_or("-"), resources = resources.len());
            async move {
                let p = self.registry.for_address(&resources[0].address)?;
                let cx = match host {
                    Some(h) => match cached.get(h) {
                        Some(t) => hosts.context_with(h, t.clone()),
                        None => hosts.context(h).await?,
                    },
                    None => hosts.cluster_context().await?,
                };
                let states = p.read(&cx, &resources).await?;
                Ok::<_, Error>(resources.into_iter().map(|r| r.address.clone()).zip(states).collect::<Vec<_>>())
            }
            .instrument(span)
        });
        let actual = try_join_all(reads).await?.into_iter().flatten().collect();
        let passed_on = cached.values().map(|t| t.passed_on()).sum::<usize>();
        Ok(Refreshed {
            actual,
            orphans,
            records,
            others: co_owners,
            shared_infra: shared,
            lock: found_lock,
            lock_tokens,
            records_to_mend,
            answers: riders_answered,
            from_batches_only: !from_cluster && passed_on == 0,
        })
    }
}
