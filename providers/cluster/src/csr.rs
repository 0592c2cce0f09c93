//! Which CertificateSigningRequests groundwork approves: only a declared worker's or infra node's, only
//! in the exact shape a joining kubelet produces, and each identity once. Pure: the decision is
//! unit-tested without a cluster.
//!
//! - A client CSR is approved for a declared worker or infra node with no Ready Node yet, at most one
//!   per node per wait; another one for the same node is refused, saying why.
//! - A serving CSR likewise, at most one per node per wait.
//! - Masters' CSRs are left to the bootstrap's own approver (UPI), unless the environment asks
//!   (`openshift.approve_master_csrs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Who asks for a node's first (client) certificate: the machine-config operator's bootstrap account.
pub const BOOTSTRAPPER: &str = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper";
pub const BOOTSTRAPPER_GROUPS: [&str; 3] =
    ["system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"];
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
pub const NODES_GROUP: &str = "system:nodes";

/// A node of the inventory as a CSR must match it.
#[derive(Clone, Debug)]
pub struct DeclaredNode {
    /// The Kubernetes node name (the FQDN).
    pub name: String,
    /// DNS names a serving certificate may carry (FQDN and short name).
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
    /// A control-plane node: its CSRs are the bootstrap approver's unless the environment says otherwise.
    pub master: bool,
}

/// What one wait for workers knows besides each request: the nodes that have joined, and what it has
/// approved so far. Kept for the length of one wait (one `apply`'s workers-joined gate).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Nodes whose Node object is Ready.
    pub ready: BTreeSet<String>,
    /// (node, signer) → the CSR approved for it during this wait.
    pub approved: BTreeMap<(String, String), String>,
    /// `openshift.approve_master_csrs`.
    pub approve_masters: bool,
}

impl Ledger {
    /// Remember an approval, so that another CSR for the same identity is refused.
    pub fn record(&mut self, node: &str, signer: &str, csr: &str) {
        self.approved.insert((node.to_string(), signer.to_string()), csr.to_string());
    }
}

/// The fields of a CSR object the decision rests on.
#[derive(Clone, Debug)]
pub struct CsrRequest<'a> {
    pub signer_name: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub usages: &'a [String],
    /// `spec.request`: the PEM-encoded PKCS#10 request.
    pub request: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve { node: String },
    Refuse(String),
}

/// What the PKCS#10 request itself says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub common_names: Vec<String>,
    pub organizations: Vec<String>,
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

pub fn parse_request(pem: &[u8]) -> Result<RequestFacts, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("request is not PEM: {e}"))?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err(format!("request is a {:?}, not a CERTIFICATE REQUEST", pem.label));
    }
    let (_, req) =
        X509CertificationRequest::from_der(&pem.contents).map_err(|e| format!("request is not PKCS#10: {e}"))?;
    req.verify_signature().map_err(|e| format!("request signature does not verify: {e}"))?;
    let subject = &req.certification_request_info.subject;
    let text = |it: &x509_parser::x509::AttributeTypeAndValue| it.as_str().map(str::to_string).unwrap_or_default();
    let mut facts = RequestFacts {
        common_names: subject.iter_common_name().map(text).collect(),
        organizations: subject.iter_organization().map(text).collect(),
        ..Default::default()
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => {
                        facts.dns.insert(d.to_string());
                    }
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).map(IpAddr::from).ok(),
                            16 => <[u8; 16]>::try_from(*b).map(IpAddr::from).ok(),
                            _ => None,
                        };
                        facts.ips.extend(ip);
                    }
                    other => return Err(format!("unexpected subject alternative name {other:?}")),
                }
            }
        }
    }
    Ok(facts)
}

fn usages_ok(usages: &[String], required: &str) -> Result<(), String> {
    let got: BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let allowed: BTreeSet<&str> = ["digital signature", "key encipherment", required].into();
    let extra: Vec<&&str> = got.difference(&allowed).collect();
    if !extra.is_empty() {
        return Err(format!("usages {extra:?} are not a kubelet's"));
    }
    if !got.contains("digital signature") || !got.contains(required) {
        return Err(format!("usages {got:?} lack digital signature and {required}"));
    }
    Ok(())
}

/// Why a node registers as `localhost`, and what to do about it.
pub const LOCALHOST_HINT: &str = "a node names itself localhost when no PTR record answered for its address \
     when it booted: fix the reverse zone (groundwork plan shows the PTR records) and reinstall the node";

/// `localhost` or `localhost.<anything>`.
pub fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.starts_with("localhost.")
}

/// Decide one pending CSR against the inventory and what this wait has seen.
pub fn judge(req: &CsrRequest, declared: &[DeclaredNode], ledger: &Ledger) -> Verdict {
    match judge_inner(req, declared).and_then(|node| once(req, node, ledger)) {
        Ok(node) => Verdict::Approve { node },
        Err(reason) => Verdict::Refuse(reason),
    }
}

/// One identity, once: not for a master (unless asked), not a second client certificate for a node that
/// has joined, not a second CSR of a kind for a node in one wait.
fn once(req: &CsrRequest, node: &DeclaredNode, ledger: &Ledger) -> Result<String, String> {
    let name = &node.name;
    if node.master && !ledger.approve_masters {
        return Err(format!(
            "{name} is a master: in a UPI install the bootstrap's own approver signs masters' CSRs \
             (set openshift.approve_master_csrs to let groundwork approve them)"
        ));
    }
    let kind = if req.signer_name == CLIENT_SIGNER { "client" } else { "serving" };
    if kind == "client" && ledger.ready.contains(name) {
        return Err(format!("{name} has joined already (its Node is Ready): no second client certificate"));
    }
    if let Some(other) = ledger.approved.get(&(name.clone(), req.signer_name.to_string())) {
        return Err(format!("another {kind} CSR for {name} ({other}) was approved in this wait: one per node"));
    }
    Ok(name.clone())
}

fn judge_inner<'a>(req: &CsrRequest, declared: &'a [DeclaredNode]) -> Result<&'a DeclaredNode, String> {
    let facts = parse_request(req.request)?;
    let cn = match facts.common_names.as_slice() {
        [one] => one.clone(),
        other => return Err(format!("subject has {} common names", other.len())),
    };
    let node_name = cn.strip_prefix("system:node:").ok_or_else(|| format!("CN {cn:?} is not system:node:<name>"))?;
    let node = declared.iter().find(|n| n.name == node_name).ok_or_else(|| {
        let why = if is_localhost(node_name) { format!(" ({})", LOCALHOST_HINT) } else { String::new() };
        format!("node {node_name:?} is not declared in the inventory{why}")
    })?;
    if facts.organizations != [NODES_GROUP] {
        return Err(format!("organisation {:?} is not [\"{NODES_GROUP}\"]", facts.organizations));
    }
    let has_groups = |want: &[&str]| want.iter().all(|g| req.groups.iter().any(|x| x == g));
    match req.signer_name {
        CLIENT_SIGNER => {
            if req.username != BOOTSTRAPPER {
                return Err(format!("client CSR from {:?}, not the node-bootstrapper service account", req.username));
            }
            if !has_groups(&BOOTSTRAPPER_GROUPS) {
                return Err(format!("requestor groups {:?} lack {BOOTSTRAPPER_GROUPS:?}", req.groups));
            }
            usages_ok(req.usages, "client auth")?;
            if !facts.dns.is_empty() || !facts.ips.is_empty() {
                return Err("a client certificate request carries subject alternative names".into());
            }
        }
        SERVING_SIGNER => {
            if req.username != cn {
                return Err(format!("serving CSR from {:?} for {cn:?}: a node asks only for itself", req.username));
            }
            if !has_groups(&[NODES_GROUP, "system:authenticated"]) {
                return Err(format!("requestor groups {:?} lack {NODES_GROUP}", req.groups));
            }
            usages_ok(req.usages, "server auth")?;
            if facts.ips != node.ips {
                return Err(format!("SAN IPs {:?} differ from the inventory's {:?}", facts.ips, node.ips));
            }
            if facts.dns.is_empty() || !facts.dns.is_subset(&node.dns) {
                return Err(format!("SAN DNS names {:?} are not within the inventory's {:?}", facts.dns, node.dns));
            }
        }
        other => return Err(format!("signer {other:?} is not a kubelet signer")),
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn pem(cn: &str, org: &str, sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, org);
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        p.serialize_request(&key).unwrap().pem().unwrap().into_bytes()
    }

    fn declared() -> Vec<DeclaredNode> {
        vec![
            DeclaredNode {
                name: "w1.lab.example.test".into(),
                dns: ["w1.lab.example.test".to_string(), "w1".to_string()].into(),
                ips: ["10.88.1.31".parse().unwrap()].into(),
                master: false,
            },
            DeclaredNode {
                name: "m1.lab.example.test".into(),
                dns: ["m1.lab.example.test".to_string(), "m1".to_string()].into(),
                ips: ["10.88.1.21".parse().unwrap()].into(),
                master: true,
            },
        ]
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn client(cn: &str, username: &str) -> (Vec<u8>, String, Vec<String>, Vec<String>) {
        (
            pem(cn, NODES_GROUP, vec![]),
            username.to_string(),
            strings(&BOOTSTRAPPER_GROUPS),
            strings(&["digital signature", "key encipherment", "client auth"]),
        )
    }

    fn decide(signer: &str, csr: &(Vec<u8>, String, Vec<String>, Vec<String>)) -> Verdict {
        decide_with(signer, csr, &Ledger::default())
    }

    fn decide_with(
        signer: &str,
        (request, username, groups, usages): &(Vec<u8>, String, Vec<String>, Vec<String>),
        ledger: &Ledger,
    ) -> Verdict {
        judge(&CsrRequest { signer_name: signer, username, groups, usages, request }, &declared(), ledger)
    }

    fn serving(ips: &[&str], dns: &[&str]) -> (Vec<u8>, String, Vec<String>, Vec<String>) {
        let mut sans: Vec<SanType> = dns.iter().map(|d| SanType::DnsName((*d).try_into().unwrap())).collect();
        sans.extend(ips.iter().map(|i| SanType::IpAddress(i.parse().unwrap())));
        (
            pem("system:node:w1.lab.example.test", NODES_GROUP, sans),
            "system:node:w1.lab.example.test".into(),
            strings(&[NODES_GROUP, "system:authenticated"]),
            strings(&["digital signature", "key encipherment", "server auth"]),
        )
    }

    #[test]
    fn approves_a_declared_nodes_client_and_serving_csrs() {
        let ok = Verdict::Approve { node: "w1.lab.example.test".into() };
        assert_eq!(decide(CLIENT_SIGNER, &client("system:node:w1.lab.example.test", BOOTSTRAPPER)), ok);
        assert_eq!(decide(SERVING_SIGNER, &serving(&["10.88.1.31"], &["w1.lab.example.test"])), ok);
    }

    #[test]
    fn refuses_undeclared_nodes_and_other_requestors() {
        let v = decide(CLIENT_SIGNER, &client("system:node:x9.lab.example.test", BOOTSTRAPPER));
        assert_eq!(v, Verdict::Refuse("node \"x9.lab.example.test\" is not declared in the inventory".into()));
        // The seed's trap: a node without a PTR record calls itself localhost; the refusal says why.
        let v = decide(CLIENT_SIGNER, &client("system:node:localhost", BOOTSTRAPPER));
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("no PTR record answered for its address")), "{v:?}");
        let v =
            decide(CLIENT_SIGNER, &client("system:node:w1.lab.example.test", "system:serviceaccount:default:builder"));
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("not the node-bootstrapper")), "{v:?}");
        let mut c = client("system:node:w1.lab.example.test", BOOTSTRAPPER);
        c.2 = strings(&["system:authenticated"]);
        assert!(matches!(decide(CLIENT_SIGNER, &c), Verdict::Refuse(r) if r.contains("groups")));
        let mut c = client("system:node:w1.lab.example.test", BOOTSTRAPPER);
        c.3 = strings(&["digital signature", "client auth", "cert sign"]);
        assert!(matches!(decide(CLIENT_SIGNER, &c), Verdict::Refuse(r) if r.contains("cert sign")));
        let mut c = client("system:node:w1.lab.example.test", BOOTSTRAPPER);
        c.0 = pem("system:node:w1.lab.example.test", "system:masters", vec![]);
        assert!(matches!(decide(CLIENT_SIGNER, &c), Verdict::Refuse(r) if r.contains("organisation")));
    }

    #[test]
    fn refuses_serving_csrs_that_do_not_match_the_inventory() {
        let v = decide(SERVING_SIGNER, &serving(&["10.88.1.31", "10.88.1.99"], &["w1.lab.example.test"]));
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("SAN IPs")), "{v:?}");
        let v = decide(SERVING_SIGNER, &serving(&["10.88.1.31"], &["w1.lab.example.test", "evil.example.com"]));
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("SAN DNS")), "{v:?}");
        let mut s = serving(&["10.88.1.31"], &["w1"]);
        s.1 = "system:node:w2.lab.example.test".into();
        assert!(matches!(decide(SERVING_SIGNER, &s), Verdict::Refuse(r) if r.contains("asks only for itself")));
        let mut s = serving(&["10.88.1.31"], &["w1"]);
        s.3 = strings(&["digital signature", "client auth"]);
        assert!(matches!(decide(SERVING_SIGNER, &s), Verdict::Refuse(r) if r.contains("client auth")));
        let s = serving(&["10.88.1.31"], &["w1"]);
        assert!(matches!(decide("example.com/custom", &s), Verdict::Refuse(r) if r.contains("not a kubelet signer")));
    }

    #[test]
    fn one_identity_once_per_wait() {
        let w1 = "w1.lab.example.test";
        let mut ledger = Ledger::default();
        let first = client(&format!("system:node:{w1}"), BOOTSTRAPPER);
        assert_eq!(decide_with(CLIENT_SIGNER, &first, &ledger), Verdict::Approve { node: w1.into() });
        ledger.record(w1, CLIENT_SIGNER, "csr-first");
        // A second client CSR for the same node in the same wait: refused, naming the first.
        let second = client(&format!("system:node:{w1}"), BOOTSTRAPPER);
        let v = decide_with(CLIENT_SIGNER, &second, &ledger);
        assert!(
            matches!(&v, Verdict::Refuse(r) if r.contains("another client CSR") && r.contains("csr-first")),
            "{v:?}"
        );
        // The serving CSR is another identity: still approved once.
        let serving = serving(&["10.88.1.31"], &[w1]);
        assert_eq!(decide_with(SERVING_SIGNER, &serving, &ledger), Verdict::Approve { node: w1.into() });
        ledger.record(w1, SERVING_SIGNER, "csr-serving");
        let v = decide_with(SERVING_SIGNER, &serving, &ledger);
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("another serving CSR")), "{v:?}");
        // A new wait, but the node has joined: no new client certificate for it.
        let joined = Ledger { ready: [w1.to_string()].into(), ..Default::default() };
        let v = decide_with(CLIENT_SIGNER, &second, &joined);
        assert!(matches!(&v, Verdict::Refuse(r) if r.contains("has joined already")), "{v:?}");
    }

    #[test]
    fn masters_are_left_to_the_bootstrap_approver_unless_asked() {
        let m1 = client("system:node:m1.lab.example.test", BOOTSTRAPPER);
        let v = decide(CLIENT_SIGNER, &m1);
        assert!(
            matches!(&v, Verdict::Refuse(r) if r.contains("is a master") && r.contains("approve_master_csrs")),
            "{v:?}"
        );
        let asked = Ledger { approve_masters: true, ..Default::default() };
        assert_eq!(decide_with(CLIENT_SIGNER, &m1, &asked), Verdict::Approve { node: "m1.lab.example.test".into() });
        // Asked, but the master is Ready already: a second client certificate is still refused.
        let ready =
            Ledger { approve_masters: true, ready: ["m1.lab.example.test".to_string()].into(), ..Default::default() };
        assert!(
            matches!(decide_with(CLIENT_SIGNER, &m1, &ready), Verdict::Refuse(r) if r.contains("has joined already"))
        );
    }

    #[test]
    fn garbage_requests_are_refused_with_a_reason() {
        let junk = (b"not pem".to_vec(), BOOTSTRAPPER.to_string(), vec![], vec![]);
        assert!(matches!(decide(CLIENT_SIGNER, &junk), Verdict::Refuse(r) if r.contains("PEM")));
    }
}
