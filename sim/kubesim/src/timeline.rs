//! The install timeline the simulator plays, driven by what the client does:
//!
//! 1. the first authenticated request marks the API reachable; `bootstrap_delay` later ConfigMap
//!    kube-system/bootstrap says `complete` and the masters' Nodes are Ready;
//! 2. each worker then posts a client CSR as the node-bootstrapper; once approved (and issued) it posts
//!    a serving CSR as `system:node:<name>`; once that is approved its Node turns Ready;
//! 3. once every worker is Ready, the ClusterOperators and the ClusterVersion turn Available;
//! 4. all along, the default router's pods are placed on Ready nodes that match the IngressController's
//!    nodePlacement and tolerate their taints; PVCs bind once their StorageClass exists.
//!
//! Hostile CSRs (undeclared node, serving CSR with a foreign SAN IP, client CSR from another requestor,
//! a duplicate client CSR before and after a worker joined, a client CSR for a Ready master) are posted
//! beside the real ones and stay pending unless someone approves them.

use crate::store::Key;
use crate::{Hostile, Sim, SimNode};
use base64::Engine;
use rcgen::{CertificateParams, CertificateSigningRequestParams, DnType, KeyPair, SanType};
use serde_json::{json, Value};
use std::time::Instant;

pub const BOOTSTRAPPER: &str = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper";
pub const OPERATORS: [&str; 10] = [
    "authentication",
    "console",
    "dns",
    "image-registry",
    "ingress",
    "kube-apiserver",
    "machine-config",
    "monitoring",
    "network",
    "openshift-apiserver",
];
const ROUTER_LABEL: &str = "ingresscontroller.operator.openshift.io/deployment-ingresscontroller";

#[derive(Clone, Debug, PartialEq)]
pub enum Join {
    BootAt(Instant),
    ClientPending(String),
    ServingAt(Instant),
    ServingPending(String),
    ReadyAt(Instant),
    Ready,
}

fn key(collection: &str, namespace: Option<&str>, name: &str) -> Key {
    Key { collection: collection.into(), namespace: namespace.map(str::to_string), name: name.into() }
}

pub const CSRS: &str = "certificates.k8s.io/v1/certificatesigningrequests";
pub const NODES: &str = "/v1/nodes";
pub const CONFIGMAPS: &str = "/v1/configmaps";
pub const PODS: &str = "/v1/pods";
pub const PVCS: &str = "/v1/persistentvolumeclaims";
pub const CLUSTER_OPERATORS: &str = "config.openshift.io/v1/clusteroperators";
pub const CLUSTER_VERSIONS: &str = "config.openshift.io/v1/clusterversions";
pub const INGRESS_CONTROLLERS: &str = "operator.openshift.io/v1/ingresscontrollers";
pub const REGISTRY_CONFIGS: &str = "imageregistry.operator.openshift.io/v1/configs";
pub const STORAGE_CLASSES: &str = "storage.k8s.io/v1/storageclasses";

/// Conditions as they change now: their transition time is the wall clock's, as an apiserver's is (the
/// status page's install timeline shows them).
fn conditions(pairs: &[(&str, &str)]) -> Value {
    let now = crate::store::now_rfc3339();
    Value::Array(
        pairs
            .iter()
            .map(|(t, s)| json!({"type": t, "status": s, "lastTransitionTime": now, "reason": "Simulated"}))
            .collect(),
    )
}

fn csr_pem(cn: &str, sans: Vec<SanType>) -> Option<String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).ok()?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "system:nodes");
    p.subject_alt_names = sans;
    let key = KeyPair::generate().ok()?;
    p.serialize_request(&key).ok()?.pem().ok()
}

impl Sim {
    /// Seed the objects a fresh cluster has before anyone joins.
    pub fn seed(&mut self) {
        let s = &mut self.store;
        let _ = s.create(
            &key(CLUSTER_VERSIONS, None, "version"),
            json!({"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "spec": {"channel": "stable-4.20"},
                   "status": {"conditions": conditions(&[("Available", "False"), ("Progressing", "True"), ("Failing", "False")])}}),
        );
        for op in OPERATORS {
            let _ = s.create(
                &key(CLUSTER_OPERATORS, None, op),
                json!({"apiVersion": "config.openshift.io/v1", "kind": "ClusterOperator", "spec": {},
                       "status": {"conditions": conditions(&[("Available", "False"), ("Progressing", "True"), ("Degraded", "False")])}}),
            );
        }
        let _ = s.create(
            &key(INGRESS_CONTROLLERS, Some("openshift-ingress-operator"), "default"),
            json!({"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
                   "spec": {"httpErrorCodePages": {"name": ""}}, "status": {"domain": format!("apps.{}", self.config.domain)}}),
        );
        let _ = s.create(
            &key(REGISTRY_CONFIGS, None, "cluster"),
            json!({"apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config",
                   "spec": {"managementState": "Removed", "replicas": 1, "storage": {}, "logLevel": "Normal"}}),
        );
    }

    fn post_csr(
        &mut self,
        cn: &str,
        sans: Vec<SanType>,
        username: &str,
        groups: &[&str],
        signer: &str,
        usages: &[&str],
    ) -> String {
        let name = self.generate_name("csr-");
        let request = csr_pem(cn, sans).unwrap_or_default();
        let obj = json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "spec": {"request": base64::engine::general_purpose::STANDARD.encode(request), "signerName": signer,
                     "usages": usages, "username": username, "groups": groups},
            "status": {}
        });
        let _ = self.store.create(&key(CSRS, None, &name), obj);
        name
    }

    fn post_client_csr(&mut self, node: &str, username: &str) -> String {
        let groups = [
            "system:serviceaccounts",
            "system:serviceaccounts:openshift-machine-config-operator",
            "system:authenticated",
        ];
        self.post_csr(
            &format!("system:node:{node}"),
            Vec::new(),
            username,
            &groups,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "key encipherment", "client auth"],
        )
    }

    fn post_serving_csr(&mut self, node: &SimNode, ip: std::net::IpAddr) -> String {
        let user = format!("system:node:{}", node.name);
        let mut sans = vec![SanType::IpAddress(ip)];
        if let Ok(dns) = node.name.as_str().try_into() {
            sans.insert(0, SanType::DnsName(dns));
        }
        self.post_csr(
            &user,
            sans,
            &user,
            &["system:nodes", "system:authenticated"],
            "kubernetes.io/kubelet-serving",
            &["digital signature", "key encipherment", "server auth"],
        )
    }

    /// Whether a CSR is approved; issues its certificate the first time it is seen approved.
    fn approved(&mut self, name: &str) -> bool {
        let k = key(CSRS, None, name);
        let Some(csr) = self.store.get(&k) else { return false };
        let approved = csr["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Approved" && c["status"] == "True"));
        if approved && csr["status"].get("certificate").is_none() {
            let pem = csr["spec"]["request"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let issued = CertificateSigningRequestParams::from_pem(&pem)
                .and_then(|p| p.signed_by(&self.ca))
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c.pem()));
            if let Ok(cert) = issued {
                let _ = self.store.update(&k, &json!({"status": {"certificate": cert}}), true);
            }
        }
        approved
    }

    fn node_ready(&mut self, node: &SimNode) {
        let role = if node.role == "master" { "master" } else { "worker" };
        let obj = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"labels": {"kubernetes.io/hostname": node.name, format!("node-role.kubernetes.io/{role}"): "",
                                    "kubernetes.io/os": "linux"}},
            "spec": {},
            "status": {"conditions": conditions(&[("Ready", "True"), ("MemoryPressure", "False"), ("DiskPressure", "False")]),
                       "addresses": [{"type": "InternalIP", "address": node.ip.to_string()}, {"type": "Hostname", "address": node.name}],
                       "nodeInfo": {"kubeletVersion": "v1.33.5", "osImage": "Red Hat Enterprise Linux CoreOS (simulated)",
                                    "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "cri-o://1.33",
                                    "kernelVersion": "5.14", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux",
                                    "systemUUID": ""}}
        });
        let _ = self.store.create(&key(NODES, None, &node.name), obj);
    }

    /// Advance the timeline to `now`.
    pub fn tick(&mut self, now: Instant) {
        let Some(reachable) = self.reachable_at else { return };
        let cfg = self.config.clone();
        if !self.bootstrap_done && now >= reachable + cfg.bootstrap_delay {
            let _ = self.store.create(
                &key(CONFIGMAPS, Some("kube-system"), "bootstrap"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"status": "complete"}}),
            );
            for (i, m) in cfg.nodes.iter().filter(|n| n.role == "master").enumerate() {
                if i == 0 && cfg.hostile.contains(&Hostile::MasterNamedLocalhost) {
                    // What RHCOS does when reverse DNS has no name for its address.
                    self.node_ready(&SimNode { name: "localhost".into(), ..m.clone() });
                } else {
                    self.node_ready(m);
                }
            }
            self.bootstrap_done = true;
            if cfg.hostile.contains(&Hostile::ReadyMasterClient) {
                if let Some(m) = cfg.nodes.iter().find(|n| n.role == "master") {
                    self.post_client_csr(&m.name, BOOTSTRAPPER);
                }
            }
            for w in cfg.nodes.iter().filter(|n| n.role != "master") {
                self.joins.insert(w.name.clone(), Join::BootAt(now + cfg.step));
            }
        }
        if !self.bootstrap_done {
            return;
        }
        let workers: Vec<SimNode> = cfg.nodes.iter().filter(|n| n.role != "master").cloned().collect();
        for (i, w) in workers.iter().enumerate() {
            let Some(state) = self.joins.get(&w.name).cloned() else { continue };
            let next = match state {
                Join::BootAt(t) if now >= t => {
                    if i == 0 {
                        self.post_hostile_clients(&workers);
                    }
                    let real = self.post_client_csr(&w.name, BOOTSTRAPPER);
                    if i == 0 && cfg.hostile.contains(&Hostile::DuplicateClient) {
                        self.post_client_csr(&w.name, BOOTSTRAPPER);
                    }
                    Some(Join::ClientPending(real))
                }
                Join::ClientPending(c) if self.approved(&c) => Some(Join::ServingAt(now + cfg.step)),
                Join::ServingAt(t) if now >= t => {
                    if i == 0 && cfg.hostile.contains(&Hostile::ServingBadIp) {
                        let foreign = foreign_ip(w.ip);
                        self.post_serving_csr(w, foreign);
                    }
                    Some(Join::ServingPending(self.post_serving_csr(w, w.ip)))
                }
                Join::ServingPending(c) if self.approved(&c) => Some(Join::ReadyAt(now + cfg.step)),
                Join::ReadyAt(t) if now >= t => {
                    self.node_ready(w);
                    if i == 0 && cfg.hostile.contains(&Hostile::DuplicateClient) {
                        self.post_client_csr(&w.name, BOOTSTRAPPER);
                    }
                    Some(Join::Ready)
                }
                _ => None,
            };
            if let Some(n) = next {
                self.joins.insert(w.name.clone(), n);
            }
        }
        let all_ready = self.joins.values().all(|j| *j == Join::Ready);
        if all_ready && self.operators_at.is_none() {
            self.operators_at = Some(now + cfg.step);
        }
        if let Some(t) = self.operators_at {
            if now >= t && !self.operators_done {
                for op in OPERATORS {
                    let c = conditions(&[("Available", "True"), ("Progressing", "False"), ("Degraded", "False")]);
                    let _ = self.store.update(
                        &key(CLUSTER_OPERATORS, None, op),
                        &json!({"status": {"conditions": c}}),
                        true,
                    );
                }
                let c = conditions(&[("Available", "True"), ("Progressing", "False"), ("Failing", "False")]);
                let history = json!([{"state": "Completed", "version": "4.20.0", "startedTime": crate::store::now_rfc3339(),
                                      "completionTime": crate::store::now_rfc3339()}]);
                let _ = self.store.update(
                    &key(CLUSTER_VERSIONS, None, "version"),
                    &json!({"status": {"conditions": c, "history": history}}),
                    true,
                );
                self.operators_done = true;
            }
        }
        self.place_routers(now);
        self.bind_claims();
    }

    fn post_hostile_clients(&mut self, workers: &[SimNode]) {
        let domain = self.config.domain.clone();
        if self.config.hostile.contains(&Hostile::UndeclaredNode) {
            self.post_client_csr(&format!("x9.{domain}"), BOOTSTRAPPER);
        }
        if self.config.hostile.contains(&Hostile::ClientWrongRequestor) {
            if let Some(w) = workers.last() {
                self.post_client_csr(&w.name, "system:serviceaccount:default:intruder");
            }
        }
    }

    /// The default router's pods: `replicas` of them on Ready nodes that match the nodePlacement and
    /// tolerate every NoSchedule/NoExecute taint. A pod on a node that no longer qualifies is replaced.
    fn place_routers(&mut self, now: Instant) {
        let Some(ic) = self.store.get(&key(INGRESS_CONTROLLERS, Some("openshift-ingress-operator"), "default")) else {
            return;
        };
        let replicas = ic["spec"]["replicas"].as_u64().unwrap_or(2) as usize;
        let selector = ic["spec"]["nodePlacement"]["nodeSelector"]["matchLabels"].clone();
        let selector = if selector.is_object() { selector } else { json!({"node-role.kubernetes.io/worker": ""}) };
        let tolerations = ic["spec"]["nodePlacement"]["tolerations"].as_array().cloned().unwrap_or_default();
        let eligible: Vec<String> = self
            .store
            .list(NODES, None)
            .into_iter()
            .filter(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                let matches = selector
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| n["metadata"]["labels"].get(k) == Some(v)));
                let tolerated = n["spec"]["taints"].as_array().is_none_or(|taints| {
                    taints.iter().all(|t| {
                        t["effect"] == "PreferNoSchedule"
                            || tolerations.iter().any(|tol| {
                                tol["key"] == t["key"]
                                    && (tol["value"] == t["value"] || tol["operator"] == "Exists")
                                    && (tol["effect"].is_null() || tol["effect"] == t["effect"])
                            })
                    })
                });
                ready && matches && tolerated
            })
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let pods = self.store.list(PODS, Some("openshift-ingress"));
        let mut kept = 0;
        for p in &pods {
            let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let on = p["spec"]["nodeName"].as_str().unwrap_or_default();
            if eligible.iter().any(|e| e == on) && kept < replicas {
                kept += 1;
                if p["status"]["conditions"][0]["status"] == "False" {
                    if let Some(at) = self.pod_ready_at.get(&name) {
                        if now >= *at {
                            let c = conditions(&[("Ready", "True")]);
                            let _ = self.store.update(
                                &key(PODS, Some("openshift-ingress"), &name),
                                &json!({"status": {"conditions": c}}),
                                true,
                            );
                        }
                    }
                }
            } else {
                let _ = self.store.delete(&key(PODS, Some("openshift-ingress"), &name));
            }
        }
        let used: Vec<String> = self
            .store
            .list(PODS, Some("openshift-ingress"))
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        let mut free = eligible.iter().filter(|e| !used.contains(e));
        for _ in kept..replicas {
            let Some(node) = free.next() else { break };
            let name = self.generate_name("router-default-");
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"labels": {ROUTER_LABEL: "default"}},
                "spec": {"nodeName": node, "containers": [{"name": "router", "image": "simulated/router"}]},
                "status": {"phase": "Running", "conditions": conditions(&[("Ready", "False")])}
            });
            let _ = self.store.create(&key(PODS, Some("openshift-ingress"), &name), pod);
            self.pod_ready_at.insert(name, now + self.config.step);
        }
    }

    fn bind_claims(&mut self) {
        for pvc in self.store.list(PVCS, None) {
            let class = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
            let bound = pvc["status"]["phase"] == "Bound";
            let exists = self.store.get(&key(STORAGE_CLASSES, None, class)).is_some();
            let (Some(ns), Some(name)) = (pvc["metadata"]["namespace"].as_str(), pvc["metadata"]["name"].as_str())
            else {
                continue;
            };
            if exists != bound {
                let phase = if exists { "Bound" } else { "Pending" };
                let _ = self.store.update(&key(PVCS, Some(ns), name), &json!({"status": {"phase": phase}}), true);
            }
        }
    }
}

/// An address next to `ip` that no inventory declares for that node.
fn foreign_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            std::net::IpAddr::from([o[0], o[1], o[2], 199])
        }
        v6 => v6,
    }
}
