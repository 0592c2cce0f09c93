//! The connection to the cluster's API: a kube client from the environment's kubeconfig
//! (`openshift.kubeconfig`, relative to the environment directory) or `KUBECONFIG`.

use crate::error::{Error, Result};
use groundwork_sdk::model::Environment;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the cluster's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeSource {
    /// kubeconfig files, merged in order as kubectl merges a `KUBECONFIG` list (the first file to set a
    /// value wins).
    Files(Vec<PathBuf>),
    /// The pod's service account (token and CA under /var/run/secrets/kubernetes.io/serviceaccount,
    /// KUBERNETES_SERVICE_HOST/PORT): the drift CronJob of docs/ci.md.
    InCluster,
}

impl KubeSource {
    /// `KUBECONFIG` as kubectl reads it (colon-separated, empty entries skipped); else in-cluster when
    /// running in a pod; else nothing.
    pub fn from_process_env() -> Option<KubeSource> {
        let files: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            return Some(KubeSource::Files(files));
        }
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists();
        in_pod.then_some(KubeSource::InCluster)
    }

    /// Modification times and sizes of the files: a rewritten kubeconfig gets a new client.
    pub fn stamp(&self) -> Vec<Option<(std::time::SystemTime, u64)>> {
        match self {
            KubeSource::Files(files) => files
                .iter()
                .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
                .collect(),
            KubeSource::InCluster => Vec::new(),
        }
    }

    fn describe(&self) -> String {
        match self {
            KubeSource::Files(f) => {
                format!("kubeconfig {}", f.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))
            }
            KubeSource::InCluster => "in-cluster config".into(),
        }
    }
}

pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    client_for(&KubeSource::Files(vec![kubeconfig.to_path_buf()]), None, None).await
}

/// A client for the environment's cluster: its own API names are reached at the inventory's VIPs.
pub async fn client_for(source: &KubeSource, context: Option<&str>, env: Option<&Environment>) -> Result<kube::Client> {
    let err = |m: String| Error::Cluster { message: format!("{}: {m}", source.describe()) };
    let mut config = match source {
        KubeSource::Files(files) => {
            let mut merged: Option<Kubeconfig> = None;
            for f in files {
                // kubectl skips a listed file that does not exist; one that is there must parse.
                if !f.exists() && files.len() > 1 {
                    continue;
                }
                let kc = Kubeconfig::read_from(f).map_err(|e| err(format!("{}: {e}", f.display())))?;
                merged = Some(match merged {
                    None => kc,
                    Some(m) => m.merge(kc).map_err(|e| err(e.to_string()))?,
                });
            }
            let kc = merged.ok_or_else(|| err("none of the files exists".into()))?;
            if let Some(c) = context {
                if !kc.contexts.iter().any(|n| n.name == c) {
                    let known: Vec<&str> = kc.contexts.iter().map(|n| n.name.as_str()).collect();
                    return Err(err(format!("no context {c:?} (it has: {})", known.join(", "))));
                }
            }
            let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
            kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| err(e.to_string()))?
        }
        KubeSource::InCluster => kube::Config::incluster().map_err(|e| err(e.to_string()))?,
    };
    if let Some((url, name)) = env.and_then(|env| through_inventory(&config.cluster_url, env)) {
        config.cluster_url = url;
        config.tls_server_name = config.tls_server_name.or(Some(name));
    }
    // An unreachable API is a gate that has not passed yet: fail fast and probe again later.
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    let count = tower::util::MapRequestLayer::new(|r: http::Request<kube::client::Body>| {
        API_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r
    });
    Ok(kube::client::ClientBuilder::try_from(config).map_err(|e| err(e.to_string()))?.with_layer(&count).build())
}

/// Requests sent to cluster APIs by this process (every client, failed connections included): what a
/// gate wait cost is reported from it.
static API_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn api_requests() -> u64 {
    API_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The cluster's own API names (`api.` and `api-int.` under the cluster's domain) are records groundwork
/// itself serves from the inventory, which the machine running groundwork often cannot resolve (its
/// resolver is not the cluster's DNS). Such a URL is reached at the address those records give — the
/// load balancer's external or internal VIP — and its certificate is still verified for the name.
/// Nothing is looked up: no query leaves for a resolver the inventory does not name.
pub fn through_inventory(url: &http::Uri, env: &Environment) -> Option<(http::Uri, String)> {
    let host = url.host()?.trim_end_matches('.').to_ascii_lowercase();
    let domain = format!("{}.{}", env.cluster.name, env.cluster.base_domain).to_ascii_lowercase();
    let (_, lb) = env.hosts.iter().find(|(_, h)| h.roles.contains(&groundwork_sdk::model::HostRole::Lb))?;
    let vips = lb.vips.as_ref()?;
    let address = if host == format!("api.{domain}") {
        vips.external
    } else if host == format!("api-int.{domain}") {
        vips.internal
    } else {
        return None;
    };
    let authority = match url.port_u16() {
        Some(p) => format!("{address}:{p}"),
        None => address.to_string(),
    };
    let rebuilt = format!("{}://{authority}{}", url.scheme_str().unwrap_or("https"), url.path());
    Some((rebuilt.parse().ok()?, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clusters_api_names_are_reached_at_their_vips() {
        let env: Environment = groundwork_sdk::yaml::from_str(
            "cluster: { name: lab, base_domain: example.test }\n\
             networks: { machine: [10.88.0.0/24], cluster: { cidr: 10.128.0.0/14, host_prefix: 23 }, service: [172.30.0.0/16] }\n\
             hosts:\n  lb1: { address: 10.88.0.3, roles: [lb], vips: { internal: 10.88.0.3, external: 10.88.0.4 } }\n",
        )
        .unwrap();
        let u = |s: &str| s.parse::<http::Uri>().unwrap();
        let (url, name) = through_inventory(&u("https://api.lab.example.test:6443"), &env).unwrap();
        assert_eq!((url.to_string().as_str(), name.as_str()), ("https://10.88.0.4:6443/", "api.lab.example.test"));
        let (url, _) = through_inventory(&u("https://API-INT.lab.example.test.:6443"), &env).unwrap();
        assert_eq!(url.to_string(), "https://10.88.0.3:6443/");
        assert!(through_inventory(&u("https://api.other.example.test:6443"), &env).is_none());
        assert!(through_inventory(&u("https://10.88.0.4:6443"), &env).is_none());
    }
}
