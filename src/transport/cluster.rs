//! The connection to the cluster's API: a kube client from the environment's kubeconfig
//! (`openshift.kubeconfig`, relative to the environment directory) or `KUBECONFIG`.

use crate::error::{Error, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::Path;
use std::time::Duration;

pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let err = |m: String| Error::Cluster { message: format!("kubeconfig {}: {m}", kubeconfig.display()) };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    // An unreachable API is a gate that has not passed yet: fail fast and probe again later.
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}
