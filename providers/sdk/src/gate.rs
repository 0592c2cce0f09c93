//! Install-phase gates: points of the OpenShift install a resource can wait for (`after`) or retire at
//! (`until`). A gate is read-only: probing it never changes the cluster.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The gates, in install order: a gate can pass only once every earlier one has.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// The API answers through the load balancer and ConfigMap kube-system/bootstrap says complete.
    BootstrapComplete,
    /// Every declared master Node is Ready.
    MastersReady,
    /// Every declared worker and infra Node exists and is Ready (CSRs approved on the way).
    WorkersJoined,
    /// ClusterVersion Available and settled; every ClusterOperator Available and not Degraded.
    InstallComplete,
    /// The default router's pods run (and are ready) on infra nodes only.
    RouterOnInfra,
}

impl Gate {
    pub const ALL: [Gate; 5] =
        [Gate::BootstrapComplete, Gate::MastersReady, Gate::WorkersJoined, Gate::InstallComplete, Gate::RouterOnInfra];

    pub fn as_str(self) -> &'static str {
        match self {
            Gate::BootstrapComplete => "bootstrap-complete",
            Gate::MastersReady => "masters-ready",
            Gate::WorkersJoined => "workers-joined",
            Gate::InstallComplete => "install-complete",
            Gate::RouterOnInfra => "router-on-infra",
        }
    }

    pub fn parse(s: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which gates have passed: what the inventory is expanded for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub passed: BTreeSet<Gate>,
}

impl Phase {
    pub fn passed(&self, gate: Gate) -> bool {
        self.passed.contains(&gate)
    }

    /// Every gate passed (a finished install; also what `validate` and `graph` assume nothing about).
    pub fn all() -> Phase {
        Phase { passed: Gate::ALL.into_iter().collect() }
    }
}

/// One gate as probed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GateStatus {
    pub gate: Gate,
    pub passed: bool,
    /// What was seen (e.g. `2 of 3 workers Ready: w3 has no Node`).
    pub detail: String,
    /// Further lines worth showing (CSRs refused and why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When the cluster says the gate came to hold (RFC 3339), where its objects tell: the bootstrap
    /// ConfigMap's creation, the last Ready transition of the nodes, the ClusterVersion's completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}
