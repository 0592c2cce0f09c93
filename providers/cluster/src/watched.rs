//! The gates' reads kept current by watches (kube-runtime's watcher and reflector: one list per kind,
//! then one long request that the API answers change by change). A gate wait re-evaluates from these
//! caches when they report a change — no request per look — instead of asking every poll interval.

use crate::gates::{gates_for, ingress_controller_api, openshift_api, Reads, ROUTER_SELECTOR};
use futures::StreamExt;
use groundwork_sdk::model::Environment;
use groundwork_sdk::Gate;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long one watch request lasts before the server ends it and it resumes from where it stood: under
/// the client's 30 s read timeout, so an idle watch on an API that sends bookmarks only every minute
/// ends cleanly instead of timing out.
const WATCH_SECONDS: u32 = 25;

/// Something the caches hold changed (`Ok`), or a watch failed (`Err`, with why).
pub type Changes = futures::stream::BoxStream<'static, Result<(), String>>;

/// Caches of what the probes of one gate and of the gates before it read. A kind no watched gate reads
/// reads as empty: a gate that needs it does not pass on a cache.
pub struct Watched {
    version: String,
    bootstrap: Option<Store<ConfigMap>>,
    nodes: Option<Store<Node>>,
    csrs: Option<Store<CertificateSigningRequest>>,
    cluster_version: Option<Store<DynamicObject>>,
    operators: Option<Store<DynamicObject>>,
    ingress: Option<Store<DynamicObject>>,
    router_pods: Option<Store<Pod>>,
    /// One flag per watch: its first list is complete.
    listed: Vec<Arc<AtomicBool>>,
}

impl Watched {
    /// Start the watches `gate` needs (the API's version read once). The caches fill as the returned
    /// stream is polled; it yields once each watch has listed, then on every change.
    pub async fn start(client: &Client, env: &Environment, gate: Gate) -> Result<(Watched, Changes), kube::Error> {
        let upto: Vec<Gate> = {
            let all = gates_for(env);
            let n = all.iter().position(|g| *g == gate).map_or(all.len(), |i| i + 1);
            all.into_iter().take(n).collect()
        };
        let reads = |g: &[Gate]| upto.iter().any(|u| g.contains(u));
        let config = || watcher::Config::default().timeout(WATCH_SECONDS);
        let mut w = Watched {
            version: client.apiserver_version().await?.git_version,
            bootstrap: None,
            nodes: None,
            csrs: None,
            cluster_version: None,
            operators: None,
            ingress: None,
            router_pods: None,
            listed: Vec::new(),
        };
        let mut streams: Vec<Changes> = Vec::new();
        if reads(&[Gate::BootstrapComplete]) {
            let api = Api::<ConfigMap>::namespaced(client.clone(), "kube-system");
            w.bootstrap = Some(w.cache(&mut streams, api, (), config().fields("metadata.name=bootstrap")));
        }
        if reads(&[Gate::MastersReady, Gate::WorkersJoined]) {
            w.nodes = Some(w.cache(&mut streams, Api::all(client.clone()), (), config()));
        }
        if reads(&[Gate::WorkersJoined]) {
            w.csrs = Some(w.cache(&mut streams, Api::all(client.clone()), (), config()));
        }
        if reads(&[Gate::InstallComplete]) {
            let (cv, co) = (openshift_api("ClusterVersion"), openshift_api("ClusterOperator"));
            let api = Api::<DynamicObject>::all_with(client.clone(), &cv);
            w.cluster_version = Some(w.cache(&mut streams, api, cv, config().fields("metadata.name=version")));
            let api = Api::<DynamicObject>::all_with(client.clone(), &co);
            w.operators = Some(w.cache(&mut streams, api, co, config()));
        }
        if reads(&[Gate::RouterOnInfra]) {
            let ic = ingress_controller_api();
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), "openshift-ingress-operator", &ic);
            w.ingress = Some(w.cache(&mut streams, api, ic, config().fields("metadata.name=default")));
            let api = Api::<Pod>::namespaced(client.clone(), "openshift-ingress");
            w.router_pods = Some(w.cache(&mut streams, api, (), config().labels(ROUTER_SELECTOR)));
        }
        Ok((w, futures::stream::select_all(streams).boxed()))
    }

    /// A cache of `api`'s objects, kept by a watch whose wake-ups go into `streams`.
    fn cache<K>(
        &mut self,
        streams: &mut Vec<Changes>,
        api: Api<K>,
        dyntype: K::DynamicType,
        config: watcher::Config,
    ) -> Store<K>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let writer = Writer::new(dyntype);
        let store = writer.as_reader();
        let listed = Arc::new(AtomicBool::new(false));
        self.listed.push(listed.clone());
        streams.push(
            reflector::reflector(writer, watcher::watcher(api, config))
                .filter_map(move |e| {
                    let listed = listed.clone();
                    async move {
                        match e {
                            Ok(Event::Init | Event::InitApply(_)) => None,
                            Ok(Event::InitDone) => {
                                listed.store(true, Ordering::Relaxed);
                                Some(Ok(()))
                            }
                            Ok(Event::Apply(_) | Event::Delete(_)) => Some(Ok(())),
                            Err(e) => Some(Err(crate::gates::error_chain(&e))),
                        }
                    }
                })
                .boxed(),
        );
        store
    }

    /// Every watch has listed once: the caches hold the whole picture.
    pub fn listed(&self) -> bool {
        self.listed.iter().all(|l| l.load(Ordering::Relaxed))
    }
}

fn all<K: Clone + kube::Resource>(store: &Option<Store<K>>) -> Vec<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.as_ref().map(|s| s.state().iter().map(|o| (**o).clone()).collect()).unwrap_or_default()
}

fn first<K: Clone + kube::Resource>(store: &Option<Store<K>>) -> Option<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    all(store).into_iter().next()
}

#[async_trait::async_trait]
impl Reads for Watched {
    async fn version(&self) -> Result<String, kube::Error> {
        Ok(self.version.clone())
    }
    async fn bootstrap(&self) -> Result<Option<ConfigMap>, kube::Error> {
        Ok(first(&self.bootstrap))
    }
    async fn nodes(&self) -> Result<Vec<Node>, kube::Error> {
        Ok(all(&self.nodes))
    }
    async fn csrs(&self) -> Result<Vec<CertificateSigningRequest>, kube::Error> {
        Ok(all(&self.csrs))
    }
    async fn cluster_version(&self) -> Result<Option<DynamicObject>, kube::Error> {
        Ok(first(&self.cluster_version))
    }
    async fn cluster_operators(&self) -> Result<Vec<DynamicObject>, kube::Error> {
        Ok(all(&self.operators))
    }
    async fn ingress_controller(&self) -> Result<Option<DynamicObject>, kube::Error> {
        Ok(first(&self.ingress))
    }
    async fn router_pods(&self) -> Result<Vec<Pod>, kube::Error> {
        Ok(all(&self.router_pods))
    }
}
