//! Refresh: read the actual state of every desired resource and of every recorded resource that is
//! no longer desired. Reads are grouped per (provider, host) and the groups run concurrently.

use super::registry::Registry;
use super::state::{self, Record};
use crate::error::{Error, Result};
use crate::transport::Hosts;
use futures::future::try_join_all;
use groundwork_sdk::{Address, Resource};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::Instrument;

pub struct Refreshed {
    pub actual: HashMap<Address, Option<Value>>,
    /// Recorded on a host but no longer desired: candidates for deletion.
    pub orphans: Vec<Resource>,
    pub records: BTreeMap<String, Record>,
}

pub async fn refresh(registry: &Registry, hosts: &Hosts, environment: &str, desired: &[Resource]) -> Result<Refreshed> {
    let host_names: BTreeSet<String> = desired.iter().filter_map(|r| r.address.host.clone()).collect();
    let records: BTreeMap<String, Record> = try_join_all(host_names.iter().map(|h| async move {
        let t = hosts.transport(h).await?;
        Ok::<_, Error>((h.clone(), state::read(t.as_ref(), environment).await?))
    }))
    .await?
    .into_iter()
    .collect();

    let wanted: BTreeSet<&Address> = desired.iter().map(|r| &r.address).collect();
    let orphans: Vec<Resource> =
        records.values().flat_map(|r| r.resources.values()).filter(|r| !wanted.contains(&r.address)).cloned().collect();

    // Group per (provider, host): one batched read each.
    let mut groups: BTreeMap<(String, Option<String>), Vec<Resource>> = BTreeMap::new();
    for r in desired.iter().chain(&orphans) {
        groups.entry((r.address.provider.clone(), r.address.host.clone())).or_default().push(r.clone());
    }
    let reads = groups.into_iter().map(|((provider, host), resources)| {
        let span = tracing::info_span!("read", provider = %provider, host = host.as_deref().unwrap_or("-"), resources = resources.len());
        async move {
            let p = registry.get(&provider).ok_or_else(|| groundwork_sdk::Error::NoProvider {
                address: resources[0].address.to_string(),
                provider: provider.clone(),
            })?;
            let cx = match &host {
                Some(h) => hosts.context(h).await?,
                None => groundwork_sdk::Context::default(),
            };
            let states = p.read(&cx, &resources).await?;
            Ok::<_, Error>(resources.into_iter().map(|r| r.address).zip(states).collect::<Vec<_>>())
        }
        .instrument(span)
    });
    let actual = try_join_all(reads).await?.into_iter().flatten().collect();
    Ok(Refreshed { actual, orphans, records })
}
