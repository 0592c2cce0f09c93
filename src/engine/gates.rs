//! Install gates in the engine: probe them in order (a gate passes only after every earlier one),
//! derive the phase the inventory is expanded for, and split the resources into those that apply now
//! and those blocked behind a gate.

use groundwork_cluster::gates::{self as cluster_gates, CsrDecision};
use groundwork_sdk::model::Environment;
use groundwork_sdk::{Address, Gate, GateStatus, Phase, Resource};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A gate as a plan shows it: its status and what waits on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GateReport {
    #[serde(flatten)]
    pub status: GateStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Address>,
}

/// Probe the environment's gates in install order, reading the API or watched caches. `reads` is None
/// when no kubeconfig is set.
pub async fn probe_all(reads: Option<&dyn cluster_gates::Reads>, env: &Environment) -> Vec<GateStatus> {
    let mut out: Vec<GateStatus> = Vec::new();
    for gate in cluster_gates::gates_for(env) {
        if let Some(prev) = out.last().filter(|p| !p.passed) {
            let detail = format!("waits for {}", prev.gate);
            out.push(GateStatus { gate, passed: false, detail, notes: Vec::new(), since: None });
            continue;
        }
        let status = match reads {
            Some(c) => cluster_gates::probe(c, env, gate).await,
            None => GateStatus { gate, passed: false, detail: no_connection(env), notes: Vec::new(), since: None },
        };
        out.push(status);
    }
    out
}

fn no_connection(env: &Environment) -> String {
    match env.openshift.as_ref().filter(|o| o.kubeconfig.is_none()).and_then(|o| o.installer.as_ref()) {
        Some(i) => format!(
            "no cluster connection yet: the installer writes {} when it generates the ignition",
            i.under("auth/kubeconfig")
        ),
        None => "no cluster connection: set openshift.kubeconfig or KUBECONFIG".into(),
    }
}

/// For a plan: while workers-joined waits, what apply would make of each pending CSR (read-only; apply
/// itself reviews them while it waits, so probing does not list them again).
pub async fn add_csr_verdicts(client: Option<&kube::Client>, env: &Environment, statuses: &mut [GateStatus]) {
    let waiting = statuses.iter_mut().find(|s| s.gate == Gate::WorkersJoined && !s.passed);
    if let (Some(status), Some(c)) = (waiting, client) {
        let mut ledger = cluster_gates::ledger(env);
        if let Ok(decisions) = cluster_gates::review_csrs(c, c, env, false, &mut ledger).await {
            status.notes = decisions.iter().map(CsrDecision::describe).collect();
        }
    }
}

pub fn phase_of(statuses: &[GateStatus]) -> Phase {
    Phase { passed: statuses.iter().filter(|s| s.passed).map(|s| s.gate).collect() }
}

/// Resources that apply in `phase`, and those blocked behind a gate that has not passed. A resource
/// whose `until` gate has passed is left out (if it was applied before, it is deleted as an orphan).
pub fn partition<'a>(
    resources: Cow<'a, [Resource]>,
    phase: &Phase,
) -> (Cow<'a, [Resource]>, BTreeMap<Gate, Vec<Address>>) {
    let gone = |r: &Resource| r.lifecycle.until.is_some_and(|g| phase.passed(g));
    let waits = |r: &Resource| r.lifecycle.after.filter(|g| !phase.passed(*g));
    let mut blocked: BTreeMap<Gate, Vec<Address>> = BTreeMap::new();
    for r in resources.iter().filter(|r| !gone(r)) {
        if let Some(g) = waits(r) {
            blocked.entry(g).or_default().push(r.address.clone());
        }
    }
    // Most plans hold back nothing: the resources go on as they came, borrowed or not.
    if !resources.iter().any(|r| gone(r) || waits(r).is_some()) {
        return (resources, blocked);
    }
    let active = resources.into_owned().into_iter().filter(|r| !gone(r) && waits(r).is_none()).collect::<Vec<_>>();
    (Cow::Owned(active), blocked)
}

pub fn reports(statuses: Vec<GateStatus>, mut blocked: BTreeMap<Gate, Vec<Address>>) -> Vec<GateReport> {
    statuses
        .into_iter()
        .map(|status| {
            let blocked = blocked.remove(&status.gate).unwrap_or_default();
            GateReport { status, blocked }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> Resource {
        Resource::new(Address::new("t", "r", None, name), serde_json::json!({})).unwrap()
    }

    /// What a cluster shows, held in memory: the probes read it as they read the API or the watched caches.
    #[derive(Default)]
    struct Shown {
        bootstrap: Option<k8s_openapi::api::core::v1::ConfigMap>,
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
    }

    #[async_trait::async_trait]
    impl cluster_gates::Reads for Shown {
        async fn version(&self) -> Result<String, kube::Error> {
            Ok("v1.33.5".into())
        }
        async fn bootstrap(&self) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, kube::Error> {
            Ok(self.bootstrap.clone())
        }
        async fn nodes(&self) -> Result<Vec<k8s_openapi::api::core::v1::Node>, kube::Error> {
            Ok(self.nodes.clone())
        }
        async fn csrs(
            &self,
        ) -> Result<Vec<k8s_openapi::api::certificates::v1::CertificateSigningRequest>, kube::Error> {
            Ok(Vec::new())
        }
        async fn cluster_version(&self) -> Result<Option<kube::api::DynamicObject>, kube::Error> {
            Ok(None)
        }
        async fn cluster_operators(&self) -> Result<Vec<kube::api::DynamicObject>, kube::Error> {
            Ok(Vec::new())
        }
        async fn ingress_controller(&self) -> Result<Option<kube::api::DynamicObject>, kube::Error> {
            Ok(None)
        }
        async fn router_pods(&self) -> Result<Vec<k8s_openapi::api::core::v1::Pod>, kube::Error> {
            Ok(Vec::new())
        }
    }

    fn node(name: &str, ip: &str, ready: bool) -> k8s_openapi::api::core::v1::Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                       "addresses": [{"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn gates_read_in_order_from_whatever_shows_the_cluster() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/lab");
        let env = crate::config::load(&root).unwrap().env;
        let fqdn = |n: &str| format!("{n}.lab.example.test");
        let mut shown = Shown::default();
        let statuses = probe_all(Some(&shown), &env).await;
        assert_eq!(statuses[0].detail, "API v1.33.5 answers; bootstrap still running");
        assert!(statuses[1..].iter().all(|s| !s.passed && s.detail.starts_with("waits for ")), "{statuses:?}");

        shown.bootstrap = serde_json::from_value(serde_json::json!({"data": {"status": "complete"}})).unwrap();
        shown.nodes = ["m1", "m2", "m3"].iter().map(|m| node(&fqdn(m), "10.0.0.9", true)).collect();
        // A worker that registered as localhost (no PTR record) is found by its address and named.
        let w1 = env.nodes.iter().find(|n| n.name == "w1").unwrap();
        shown.nodes.push(node("localhost", &w1.ip.to_string(), true));
        let statuses = probe_all(Some(&shown), &env).await;
        let passed: Vec<bool> = statuses.iter().map(|s| s.passed).collect();
        assert_eq!(&passed[..3], [true, true, false]);
        assert!(statuses[2].detail.contains("w1.lab.example.test has no Node, but Node \"localhost\" has its address"));
        assert_eq!(statuses[3].detail, "waits for workers-joined");
    }

    #[test]
    fn partition_follows_after_and_until() {
        let all = vec![
            r("always"),
            r("bootstrap-only").until(Gate::BootstrapComplete),
            r("day2").after(Gate::InstallComplete),
        ];
        let (active, blocked) = partition(Cow::Borrowed(&all), &Phase::default());
        let names: Vec<&str> = active.iter().map(|r| r.address.name.as_str()).collect();
        assert_eq!(names, ["always", "bootstrap-only"]);
        assert_eq!(blocked[&Gate::InstallComplete][0].name, "day2");
        let phase = Phase {
            passed: [Gate::BootstrapComplete, Gate::MastersReady, Gate::WorkersJoined, Gate::InstallComplete].into(),
        };
        let (active, blocked) = partition(Cow::Owned(all.clone()), &phase);
        let names: Vec<&str> = active.iter().map(|r| r.address.name.as_str()).collect();
        assert_eq!(names, ["always", "day2"]);
        assert!(blocked.is_empty());
        // Nothing held back: what was borrowed stays borrowed (no copy of a large environment).
        let (active, _) = partition(Cow::Borrowed(&all[..1]), &phase);
        assert!(matches!(active, Cow::Borrowed(_)), "{active:?}");
    }

    #[test]
    fn phase_counts_only_passed_gates() {
        let s = |gate, passed| GateStatus { gate, passed, detail: String::new(), notes: vec![], since: None };
        let p = phase_of(&[s(Gate::BootstrapComplete, true), s(Gate::MastersReady, false)]);
        assert!(p.passed(Gate::BootstrapComplete));
        assert!(!p.passed(Gate::MastersReady));
    }
}
