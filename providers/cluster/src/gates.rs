//! Gate probes (read-only) and the CSR approvals `apply` makes while it waits on workers-joined.

use crate::csr::{self, CsrRequest, DeclaredNode, Verdict};
use groundwork_sdk::model::{Environment, IngressNodes, NodeRole};
use groundwork_sdk::{Gate, GateStatus};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The gates an environment goes through: none without an `openshift` section.
pub fn gates_for(env: &Environment) -> Vec<Gate> {
    if env.openshift.is_none() {
        return Vec::new();
    }
    let mut g = vec![Gate::BootstrapComplete, Gate::MastersReady, Gate::WorkersJoined, Gate::InstallComplete];
    if env.loadbalancer.ingress == IngressNodes::Infra && env.nodes_with_role(NodeRole::Infra).next().is_some() {
        g.push(Gate::RouterOnInfra);
    }
    g
}

/// Label the default router's pods carry.
pub const ROUTER_SELECTOR: &str = "ingresscontroller.operator.openshift.io/deployment-ingresscontroller=default";

fn status(gate: Gate, passed: bool, detail: impl Into<String>) -> GateStatus {
    GateStatus { gate, passed, detail: detail.into(), notes: Vec::new(), since: None }
}

/// What the gate probes and the CSR review read: from the API (a request per read; [`Client`]) or from
/// the caches watches keep current ([`crate::watched::Watched`], no request at all).
#[async_trait::async_trait]
pub trait Reads: Send + Sync {
    /// The API server's version (`gitVersion`).
    async fn version(&self) -> Result<String, kube::Error>;
    /// ConfigMap kube-system/bootstrap, which says when the bootstrap is complete.
    async fn bootstrap(&self) -> Result<Option<ConfigMap>, kube::Error>;
    async fn nodes(&self) -> Result<Vec<Node>, kube::Error>;
    async fn csrs(&self) -> Result<Vec<CertificateSigningRequest>, kube::Error>;
    /// ClusterVersion `version`.
    async fn cluster_version(&self) -> Result<Option<DynamicObject>, kube::Error>;
    async fn cluster_operators(&self) -> Result<Vec<DynamicObject>, kube::Error>;
    /// IngressController openshift-ingress-operator/default.
    async fn ingress_controller(&self) -> Result<Option<DynamicObject>, kube::Error>;
    /// The default router's pods ([`ROUTER_SELECTOR`] in openshift-ingress).
    async fn router_pods(&self) -> Result<Vec<Pod>, kube::Error>;
}

/// The IngressController kind.
pub fn ingress_controller_api() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("operator.openshift.io", "v1", "IngressController"))
}

#[async_trait::async_trait]
impl Reads for Client {
    async fn version(&self) -> Result<String, kube::Error> {
        Ok(self.apiserver_version().await?.git_version)
    }
    async fn bootstrap(&self) -> Result<Option<ConfigMap>, kube::Error> {
        Api::<ConfigMap>::namespaced(self.clone(), "kube-system").get_opt("bootstrap").await
    }
    async fn nodes(&self) -> Result<Vec<Node>, kube::Error> {
        Ok(Api::<Node>::all(self.clone()).list(&ListParams::default()).await?.items)
    }
    async fn csrs(&self) -> Result<Vec<CertificateSigningRequest>, kube::Error> {
        Ok(Api::<CertificateSigningRequest>::all(self.clone()).list(&ListParams::default()).await?.items)
    }
    async fn cluster_version(&self) -> Result<Option<DynamicObject>, kube::Error> {
        Api::<DynamicObject>::all_with(self.clone(), &openshift_api("ClusterVersion")).get_opt("version").await
    }
    async fn cluster_operators(&self) -> Result<Vec<DynamicObject>, kube::Error> {
        let api = Api::<DynamicObject>::all_with(self.clone(), &openshift_api("ClusterOperator"));
        Ok(api.list(&ListParams::default()).await?.items)
    }
    async fn ingress_controller(&self) -> Result<Option<DynamicObject>, kube::Error> {
        let api = Api::<DynamicObject>::namespaced_with(
            self.clone(),
            "openshift-ingress-operator",
            &ingress_controller_api(),
        );
        api.get_opt("default").await
    }
    async fn router_pods(&self) -> Result<Vec<Pod>, kube::Error> {
        let api = Api::<Pod>::namespaced(self.clone(), "openshift-ingress");
        Ok(api.list(&ListParams::default().labels(ROUTER_SELECTOR)).await?.items)
    }
}

fn names(env: &Environment, roles: &[NodeRole]) -> Vec<String> {
    declared(env, roles).into_iter().map(|(name, _)| name).collect()
}

/// Kubernetes names and addresses of the inventory's nodes with these roles.
fn declared(env: &Environment, roles: &[NodeRole]) -> Vec<(String, String)> {
    env.nodes.iter().filter(|n| roles.contains(&n.role)).map(|n| (env.node_k8s_name(n), n.ip.to_string())).collect()
}

/// A declared node whose address belongs to a Node of another name.
fn misnamed(name: &str, ip: &str, other: &str) -> String {
    let why = if crate::csr::is_localhost(other) {
        crate::csr::LOCALHOST_HINT.to_string()
    } else {
        format!("its hostname is not the inventory's name {name}")
    };
    format!("{name} has no Node, but Node {other:?} has its address {ip}: {why}")
}

/// Probe one gate. Failures to reach the API are a gate that has not passed, with the reason.
pub async fn probe(reads: &dyn Reads, env: &Environment, gate: Gate) -> GateStatus {
    match probe_inner(reads, env, gate).await {
        Ok(s) => s,
        // The API said no (401, 403, 5xx): its own words. Anything else is the API not there yet — before
        // the load balancer exists, or while the bootstrap starts — which is what waiting looks like.
        Err(kube::Error::Api(ae)) => status(gate, false, format!("the API answered {}: {}", ae.code, ae.message)),
        Err(e) => status(
            gate,
            false,
            format!("waiting: the API is not reachable yet ({})", error_chain(&e).trim_start_matches("ServiceError: ")),
        ),
    }
}

/// An error with its causes (`client error (Connect): tcp connect error: Connection refused`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

async fn probe_inner(reads: &dyn Reads, env: &Environment, gate: Gate) -> Result<GateStatus, kube::Error> {
    Ok(match gate {
        Gate::BootstrapComplete => {
            let version = reads.version().await?;
            let cm = reads.bootstrap().await?;
            // The progress service creates the ConfigMap when bootstrapping completes.
            let created = cm.as_ref().and_then(|c| c.metadata.creation_timestamp.as_ref()).map(|t| t.0.to_string());
            let state = cm.and_then(|c| c.data).and_then(|d| d.get("status").cloned());
            match state.as_deref() {
                Some("complete") => GateStatus {
                    since: created,
                    ..status(gate, true, format!("API {version} answers; bootstrap complete"))
                },
                Some(s) => status(gate, false, format!("API {version} answers; bootstrap status {s:?}")),
                None => status(gate, false, format!("API {version} answers; bootstrap still running")),
            }
        }
        Gate::MastersReady => nodes_ready(&reads.nodes().await?, gate, &declared(env, &[NodeRole::Master])),
        Gate::WorkersJoined => {
            nodes_ready(&reads.nodes().await?, gate, &declared(env, &[NodeRole::Worker, NodeRole::Infra]))
        }
        Gate::InstallComplete => {
            install_complete(reads.cluster_version().await?.as_ref(), &reads.cluster_operators().await?)
        }
        Gate::RouterOnInfra => {
            router_on_infra(env, reads.ingress_controller().await?.as_ref(), &reads.router_pods().await?)
        }
    })
}

/// Where the default router's pods run: on the infra nodes, Ready, once the IngressController places
/// them there. Pods that happen to sit on infra nodes do not count until the router is placed there.
fn router_on_infra(env: &Environment, ic: Option<&DynamicObject>, pods: &[Pod]) -> GateStatus {
    let gate = Gate::RouterOnInfra;
    let placed = ic.is_some_and(|ic| {
        ic.data["spec"]["nodePlacement"]["nodeSelector"]["matchLabels"].get(crate::INFRA_LABEL).is_some()
    });
    if !placed {
        return status(gate, false, "IngressController default does not select the infra nodes yet");
    }
    let infra: BTreeSet<String> = names(env, &[NodeRole::Infra]).into_iter().collect();
    let mut off = Vec::new();
    let mut latest = None;
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let ready_since = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
            .map(|c| c.last_transition_time.as_ref().map(|t| t.0));
        let ready = ready_since.is_some();
        if infra.contains(&node) {
            latest = latest.max(ready_since.flatten());
        }
        if !infra.contains(&node) || !ready {
            off.push(format!(
                "{name} on {}{}",
                if node.is_empty() { "no node" } else { &node },
                if ready { "" } else { " (not ready)" }
            ));
        }
    }
    off.sort();
    if pods.is_empty() {
        status(gate, false, "no router pods yet")
    } else if off.is_empty() {
        GateStatus {
            since: latest.map(|t| t.to_string()),
            ..status(gate, true, format!("{} router pod(s) ready on infra nodes", pods.len()))
        }
    } else {
        status(gate, false, format!("router pods not on infra nodes yet: {}", off.join(", ")))
    }
}

fn condition<'a>(conditions: &'a Value, kind: &str) -> Option<&'a str> {
    conditions.as_array()?.iter().find(|c| c["type"] == kind).and_then(|c| c["status"].as_str())
}

fn nodes_ready(nodes: &[Node], gate: Gate, want: &[(String, String)]) -> GateStatus {
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    // When each node last became Ready (the gate holds since the last of the declared ones).
    let mut ready_since: BTreeMap<String, Option<k8s_openapi::jiff::Timestamp>> = BTreeMap::new();
    // Nodes by InternalIP: a declared node that registered under another name is found by its address.
    let mut by_address: BTreeMap<String, String> = BTreeMap::new();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let status = n.status.as_ref();
        let ready_condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"));
        let is_ready = ready_condition.is_some();
        ready_since.insert(name.clone(), ready_condition.and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0));
        for a in status.and_then(|s| s.addresses.as_ref()).into_iter().flatten() {
            if a.type_ == "InternalIP" {
                by_address.insert(a.address.clone(), name.clone());
            }
        }
        ready.insert(name, is_ready);
    }
    let missing: Vec<String> = want
        .iter()
        .filter_map(|(n, ip)| match ready.get(n) {
            Some(true) => None,
            Some(false) => Some(format!("{n} NotReady")),
            None => Some(match by_address.get(ip) {
                Some(other) => misnamed(n, ip, other),
                None => format!("{n} has no Node"),
            }),
        })
        .collect();
    let ok = want.len() - missing.len();
    if missing.is_empty() {
        let since = want.iter().filter_map(|(n, _)| ready_since.get(n).copied().flatten()).max();
        GateStatus {
            since: since.map(|t| t.to_string()),
            ..status(gate, true, format!("{ok} of {} Ready", want.len()))
        }
    } else {
        status(gate, false, format!("{ok} of {} Ready: {}", want.len(), missing.join(", ")))
    }
}

/// A config.openshift.io/v1 kind (ClusterVersion, ClusterOperator).
pub fn openshift_api(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("config.openshift.io", "v1", kind))
}

fn install_complete(cv: Option<&DynamicObject>, operators: &[DynamicObject]) -> GateStatus {
    let gate = Gate::InstallComplete;
    let Some(cv) = cv else { return status(gate, false, "no ClusterVersion yet") };
    let conds = &cv.data["status"]["conditions"];
    let (available, progressing, failing) =
        (condition(conds, "Available"), condition(conds, "Progressing"), condition(conds, "Failing"));
    let mut not_ok: Vec<String> = operators
        .iter()
        .filter_map(|o| {
            let c = &o.data["status"]["conditions"];
            let name = o.metadata.name.clone().unwrap_or_default();
            if condition(c, "Available") != Some("True") {
                Some(format!("{name} not Available"))
            } else if condition(c, "Degraded") == Some("True") {
                Some(format!("{name} Degraded"))
            } else {
                None
            }
        })
        .collect();
    not_ok.sort();
    if available != Some("True") || progressing != Some("False") || failing == Some("True") {
        let mut d = format!(
            "ClusterVersion Available={} Progressing={} Failing={}",
            available.unwrap_or("?"),
            progressing.unwrap_or("?"),
            failing.unwrap_or("False")
        );
        if !not_ok.is_empty() {
            d.push_str(&format!("; {} operator(s) waiting: {}", not_ok.len(), not_ok.join(", ")));
        }
        status(gate, false, d)
    } else if operators.is_empty() || !not_ok.is_empty() {
        status(gate, false, format!("operators waiting: {}", not_ok.join(", ")))
    } else {
        // The history's newest completed update (the install itself, on a new cluster).
        let completed = cv.data["status"]["history"]
            .as_array()
            .and_then(|h| h.iter().find(|u| u["state"] == "Completed"))
            .and_then(|u| u["completionTime"].as_str());
        let available_since = conds
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Available"))
            .and_then(|c| c["lastTransitionTime"].as_str());
        GateStatus {
            since: completed.or(available_since).map(str::to_string),
            ..status(gate, true, format!("ClusterVersion Available; {} operators Available", operators.len()))
        }
    }
}

/// The nodes whose CSRs may be approved: every declared node but the bootstrap (masters only when the
/// environment asks, see [`csr::Ledger::approve_masters`]).
pub fn declared_nodes(env: &Environment) -> Vec<DeclaredNode> {
    env.nodes
        .iter()
        .filter(|n| n.role != NodeRole::Bootstrap)
        .map(|n| DeclaredNode {
            name: env.node_k8s_name(n),
            dns: [env.node_fqdn(n), n.name.to_string()].into(),
            ips: [n.ip].into(),
            master: n.role == NodeRole::Master,
        })
        .collect()
}

/// A ledger for one wait: the environment's master policy, nothing approved yet.
pub fn ledger(env: &Environment) -> csr::Ledger {
    csr::Ledger { approve_masters: env.openshift.as_ref().is_some_and(|o| o.approve_master_csrs), ..Default::default() }
}

/// Names of the Nodes that are Ready.
fn ready_nodes(nodes: Vec<Node>) -> BTreeSet<String> {
    nodes
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name)
        .collect()
}

/// One pending CSR and what groundwork made (or would make) of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrDecision {
    pub name: String,
    pub requestor: String,
    /// `client` (kubelet's client certificate), `serving` (its serving certificate), or the signer.
    pub kind: String,
    pub verdict: Verdict,
}

/// What a CSR is for, by its signer.
pub fn csr_kind(signer: &str) -> String {
    match signer {
        csr::CLIENT_SIGNER => "client".into(),
        csr::SERVING_SIGNER => "serving".into(),
        other => other.to_string(),
    }
}

impl CsrDecision {
    pub fn describe(&self) -> String {
        let (name, kind, from) = (&self.name, &self.kind, &self.requestor);
        match &self.verdict {
            Verdict::Approve { node } => format!("CSR {name} ({kind}) from {from} for {node}: approve"),
            Verdict::Refuse(reason) => format!("CSR {name} ({kind}) from {from} refused: {reason}"),
        }
    }
}

/// Judge every pending CSR, oldest first, against the inventory and `ledger` (this wait's approvals;
/// its Ready nodes are read again here, from `reads`); with `approve`, approve those that pass (never any
/// other, through `client`) and record them, so that no identity is granted twice. Without `approve` (a
/// plan), the ledger is a copy: the verdicts say what an apply would do now. A CSR this wait approved is
/// not judged again while a cache still shows it pending.
pub async fn review_csrs(
    client: &Client,
    reads: &dyn Reads,
    env: &Environment,
    approve: bool,
    ledger: &mut csr::Ledger,
) -> Result<Vec<CsrDecision>, kube::Error> {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let declared = declared_nodes(env);
    ledger.ready = ready_nodes(reads.nodes().await?);
    let mut scratch = ledger.clone();
    let book = if approve { ledger } else { &mut scratch };
    let mut pending: Vec<CertificateSigningRequest> = reads
        .csrs()
        .await?
        .into_iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.conditions.as_ref()).is_none_or(|c| c.is_empty()))
        .filter(|c| c.metadata.name.as_ref().is_none_or(|n| !book.approved.values().any(|a| a == n)))
        .collect();
    // Oldest first: of two requests for one identity the first is the one granted.
    let rv = |c: &CertificateSigningRequest| c.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
    pending.sort_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref().map(|t| t.0), rv(a), &a.metadata.name).cmp(&(
            b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rv(b),
            &b.metadata.name,
        ))
    });
    let mut out = Vec::new();
    for c in pending {
        let name = c.metadata.name.clone().unwrap_or_default();
        let spec = &c.spec;
        let (groups, usages) = (spec.groups.clone().unwrap_or_default(), spec.usages.clone().unwrap_or_default());
        let requestor = spec.username.clone().unwrap_or_default();
        let verdict = csr::judge(
            &CsrRequest {
                signer_name: &spec.signer_name,
                username: &requestor,
                groups: &groups,
                usages: &usages,
                request: &spec.request.0,
            },
            &declared,
            book,
        );
        if let Verdict::Approve { node } = &verdict {
            if approve {
                let patch = json!({"status": {"conditions": [{
                    "type": "Approved", "status": "True", "reason": "GroundworkApproved",
                    "message": format!("approved by groundwork: {node} is declared in the inventory and the request matches it"),
                }]}});
                api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                tracing::info!(csr = %name, node = %node, "approved CSR");
            }
            book.record(node, &spec.signer_name, &name);
        }
        out.push(CsrDecision { name, requestor, kind: csr_kind(&spec.signer_name), verdict });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_registered_under_another_name_is_named_with_the_likely_cause() {
        let m = misnamed("m1.lab.example.test", "10.88.0.21", "localhost");
        assert!(
            m.starts_with("m1.lab.example.test has no Node, but Node \"localhost\" has its address 10.88.0.21"),
            "{m}"
        );
        assert!(m.contains("no PTR record"), "{m}");
        let m = misnamed("m1.lab.example.test", "10.88.0.21", "m1");
        assert!(m.ends_with("its hostname is not the inventory's name m1.lab.example.test"), "{m}");
    }

    #[test]
    fn a_passed_gate_says_since_when_from_the_clusters_own_times() {
        let node = |name: &str, ready_at: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}
            }))
            .unwrap()
        };
        let nodes =
            [node("m1", "2026-12-02T10:05:00Z"), node("m2", "2026-12-02T10:09:30Z"), node("x", "2026-12-03T00:00:00Z")];
        let want = [("m1".to_string(), String::new()), ("m2".to_string(), String::new())];
        let s = nodes_ready(&nodes, Gate::MastersReady, &want);
        assert!(s.passed);
        // The last declared node to become Ready; an undeclared one does not count.
        assert_eq!(s.since.as_deref(), Some("2026-12-02T10:09:30Z"));
        assert_eq!(nodes_ready(&nodes[..1], Gate::MastersReady, &want).since, None);

        let cv: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": {"name": "version"},
            "status": {
                "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": "2026-12-02T11:00:00Z"},
                               {"type": "Progressing", "status": "False"}],
                "history": [{"state": "Completed", "completionTime": "2026-12-02T10:58:00Z"}]
            }
        }))
        .unwrap();
        let op: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "config.openshift.io/v1", "kind": "ClusterOperator", "metadata": {"name": "dns"},
            "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Degraded", "status": "False"}]}
        }))
        .unwrap();
        let s = install_complete(Some(&cv), std::slice::from_ref(&op));
        assert!(s.passed, "{s:?}");
        assert_eq!(s.since.as_deref(), Some("2026-12-02T10:58:00Z"));
    }
}
