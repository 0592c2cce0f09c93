//! The API simulator held against clients nobody here wrote: kubectl and the official Python client
//! (Debian's python3-kubernetes), through the lab's real haproxy, after groundwork took the lab to day 2.
//! What they see must be what groundwork's own client saw; where the simulator cannot behave like a real
//! apiserver, the test pins the difference and docs/simulator.md lists it.

mod common;

use common::groundwork;
use common::lab::Lab;
use serde_json::Value;
use std::process::{Command, Output};
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 240;

fn kubectl(lab: &Lab, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", lab.kubeconfig())
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .output()
        .unwrap()
}

fn kubectl_ok(lab: &Lab, args: &[&str]) -> String {
    let out = kubectl(lab, args);
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Machines that joined: every declared node but the bootstrap.
const NODES: [&str; 8] = ["i1", "i2", "m1", "m2", "m3", "w1", "w2", "w3"];

#[test]
fn kubectl_and_the_python_client_see_what_groundwork_made() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[]);
    let apply = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let fqdn = |n: &str| format!("{n}.lab.example.test");

    // Discovery: kubectl maps short names and kinds from the server's resource lists.
    let resources = kubectl_ok(&lab, &["api-resources", "--no-headers"]);
    for (name, group, namespaced) in [
        ("certificatesigningrequests", "certificates.k8s.io/v1", "false"),
        ("clusterversions", "config.openshift.io/v1", "false"),
        ("ingresscontrollers", "operator.openshift.io/v1", "true"),
        ("nodes", "v1", "false"),
    ] {
        assert!(
            resources.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&name) && cols.contains(&group) && cols.contains(&namespaced)
            }),
            "{name}:\n{resources}"
        );
    }

    // Reads: the objects groundwork waited for and applied.
    let list = json(&kubectl_ok(&lab, &["get", "nodes,csr,clusterversion,clusteroperators", "-o", "json"]));
    let items = list["items"].as_array().unwrap();
    let of = |kind: &str| items.iter().filter(|i| i["kind"] == kind).collect::<Vec<_>>();
    let mut nodes: Vec<String> =
        of("Node").iter().map(|n| n["metadata"]["name"].as_str().unwrap().to_string()).collect();
    nodes.sort();
    assert_eq!(nodes, NODES.map(fqdn));
    assert!(of("Node").iter().all(|n| n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")));
    // Every CSR the joining nodes posted was approved (by groundwork, once each).
    let csrs = of("CertificateSigningRequest");
    assert_eq!(csrs.len(), 10);
    assert!(csrs.iter().all(|c| c["status"]["conditions"][0]["type"] == "Approved"), "{csrs:#?}");
    assert_eq!(of("ClusterVersion").len(), 1);
    assert!(!of("ClusterOperator").is_empty());
    let ic = json(&kubectl_ok(
        &lab,
        &["get", "ingresscontroller", "-n", "openshift-ingress-operator", "default", "-o", "json"],
    ));
    assert_eq!(ic["spec"]["replicas"], 2);
    assert_eq!(ic["spec"]["nodePlacement"]["nodeSelector"]["matchLabels"]["node-role.kubernetes.io/infra"], "");
    // The infra role groundwork set on day 2, as kubectl reads it with a label selector.
    let infra = kubectl_ok(&lab, &["get", "nodes", "-l", "node-role.kubernetes.io/infra", "-o", "name"]);
    assert_eq!(infra.lines().collect::<Vec<_>>(), ["node/i1.lab.example.test", "node/i2.lab.example.test"]);

    // Writes kubectl makes with its own patch types: label and taint a node.
    kubectl_ok(&lab, &["label", "node", &fqdn("w1"), "team=storage"]);
    kubectl_ok(&lab, &["taint", "node", &fqdn("w1"), "dedicated=storage:NoSchedule"]);
    let w1 = json(&kubectl_ok(&lab, &["get", "node", &fqdn("w1"), "-o", "json"]));
    assert_eq!(w1["metadata"]["labels"]["team"], "storage");
    assert!(
        w1["spec"]["taints"].as_array().unwrap().iter().any(|t| t["key"] == "dedicated" && t["effect"] == "NoSchedule"),
        "{w1}"
    );

    // A CSR nobody declared, denied by the Python client (kubectl's own approve/deny: below, and in the
    // known differences); groundwork's next apply leaves it denied.
    let dir = tempfile::tempdir().unwrap();
    let manifest = intruder_csr(dir.path(), "csr-intruder");
    kubectl_ok(&lab, &["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    python(&lab, DENY, &["csr-intruder"]);
    let csr = json(&kubectl_ok(&lab, &["get", "csr", "csr-intruder", "-o", "json"]));
    assert_eq!(csr["status"]["conditions"][0]["type"], "Denied", "{csr}");

    // Server-side apply by another field manager: a conflict on groundwork's field, reported as
    // kube-apiserver reports it; --force-conflicts takes the field; groundwork sees that as drift and
    // takes it back.
    let other = dir.path().join("ic.json");
    std::fs::write(
        &other,
        r#"{"apiVersion":"operator.openshift.io/v1","kind":"IngressController","metadata":{"name":"default","namespace":"openshift-ingress-operator"},"spec":{"replicas":5}}"#,
    )
    .unwrap();
    let ssa =
        ["apply", "--server-side", "--field-manager=someone-else", "--validate=false", "-f", other.to_str().unwrap()];
    let refused = kubectl(&lab, &ssa);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(r#"Apply failed with 1 conflict: conflict with "groundwork": .spec.replicas"#), "{err}");
    let mut forced = ssa.to_vec();
    forced.push("--force-conflicts");
    kubectl_ok(&lab, &forced);
    let ic = json(&kubectl_ok(
        &lab,
        &["get", "ingresscontroller", "-n", "openshift-ingress-operator", "default", "-o", "json"],
    ));
    assert_eq!(ic["spec"]["replicas"], 5);
    // managedFields as the server wrote them (kubectl hides them from `get`; `--raw` shows the object whole).
    let ic = json(&kubectl_ok(
        &lab,
        &[
            "get",
            "--raw",
            "/apis/operator.openshift.io/v1/namespaces/openshift-ingress-operator/ingresscontrollers/default",
        ],
    ));
    let owners: Vec<&str> =
        ic["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
    assert!(owners.contains(&"someone-else"), "{owners:?}");
    let drift = groundwork(&["drift", lab.env_str(), "--json"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(
        drift.stdout.contains("IngressController.operator.openshift.io/openshift-ingress-operator/default"),
        "{}",
        drift.stdout
    );
    let heal = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(heal.code, 0, "{}{}", heal.stdout, heal.stderr);
    let ic = json(&kubectl_ok(
        &lab,
        &["get", "ingresscontroller", "-n", "openshift-ingress-operator", "default", "-o", "json"],
    ));
    assert_eq!(ic["spec"]["replicas"], 2);
    let csr = json(&kubectl_ok(&lab, &["get", "csr", "csr-intruder", "-o", "json"]));
    assert_eq!(csr["status"]["conditions"].as_array().unwrap().len(), 1, "groundwork approved nothing more: {csr}");

    // Schemas (OpenShift's CRDs, as a real apiserver with them installed): a misspelled field is refused
    // with fieldValidation=Strict — the way groundwork applies — and pruned without; a wrong type is 422.
    let path = "/apis/operator.openshift.io/v1/namespaces/openshift-ingress-operator/ingresscontrollers/default";
    let patch = |body: &str, query: &str| curl_patch(&lab, &format!("{path}?fieldManager=someone-else&{query}"), body);
    let (code, reply) = patch(
        r#"{"apiVersion":"operator.openshift.io/v1","kind":"IngressController","metadata":{"name":"default","namespace":"openshift-ingress-operator"},"spec":{"replica":3}}"#,
        "fieldValidation=Strict",
    );
    assert_eq!(code, 400, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains(".spec.replica: field not declared in schema"), "{reply}");
    let (code, reply) = patch(
        r#"{"apiVersion":"operator.openshift.io/v1","kind":"IngressController","metadata":{"name":"default","namespace":"openshift-ingress-operator"},"spec":{"replica":3,"unsupportedConfigOverrides":null}}"#,
        "",
    );
    assert_eq!(code, 200, "{reply}");
    assert!(reply["spec"].get("replica").is_none(), "pruned: {reply}");
    let (code, reply) = patch(
        r#"{"apiVersion":"operator.openshift.io/v1","kind":"IngressController","metadata":{"name":"default","namespace":"openshift-ingress-operator"},"spec":{"replicas":"three"}}"#,
        "force=true",
    );
    assert_eq!(code, 422, "{reply}");
    assert_eq!(reply["reason"], "Invalid", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("spec.replicas"), "{reply}");

    // The official Python client: the same nodes, the cluster version, the CSRs.
    let seen = json(&python(&lab, READ, &[]));
    assert_eq!(seen["nodes"], serde_json::json!(NODES.map(fqdn)));
    assert_eq!(seen["cv"], "ClusterVersion");
    assert_eq!(seen["csrs"], 11);
    assert_eq!(seen["denied"], serde_json::json!(["csr-intruder"]));
}

const READ: &str = r#"
import json, sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
nodes = sorted(n.metadata.name for n in client.CoreV1Api().list_node().items)
cv = client.CustomObjectsApi().get_cluster_custom_object("config.openshift.io", "v1", "clusterversions", "version")
csrs = client.CertificatesV1Api().list_certificate_signing_request().items
print(json.dumps({"nodes": nodes, "cv": cv["kind"], "csrs": len(csrs),
                  "denied": [c.metadata.name for c in csrs if any(x.type == "Denied" for x in (c.status.conditions or []))]}))
"#;

const DENY: &str = r#"
import sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
api = client.CertificatesV1Api()
csr = api.read_certificate_signing_request(sys.argv[2])
csr.status.conditions = [client.V1CertificateSigningRequestCondition(
    type="Denied", status="True", reason="PythonDeny", message="denied by the official client")]
api.replace_certificate_signing_request_approval(sys.argv[2], csr)
"#;

/// Run a script with the official Python client (Debian's python3-kubernetes, so /usr/bin/python3).
fn python(lab: &Lab, script: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).arg(lab.kubeconfig()).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server-side apply patch sent with curl: the status code and the reply.
fn curl_patch(lab: &Lab, path_and_query: &str, body: &str) -> (u16, Value) {
    lab.api("PATCH", path_and_query, "application/apply-patch+yaml", body)
}

/// A client CSR for a node nobody declared.
fn intruder_csr(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let key = dir.join(format!("{name}.key"));
    let req = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", "/O=system:nodes/CN=system:node:intruder.lab.example.test"])
        .output()
        .unwrap();
    assert!(req.status.success());
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD.encode(&req.stdout);
    let manifest = dir.join(format!("{name}.json"));
    std::fs::write(
        &manifest,
        serde_json::json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": pem, "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["client auth"]}})
        .to_string(),
    )
    .unwrap();
    manifest
}

/// Watches as kubectl and the Python client use them: `kubectl wait` blocks on a watch until the node
/// turns Ready; the Python client gets 410 Expired for a version the window has left behind, resumes from
/// a list's version without missing a change, and sees bookmarks. The simulator keeps 20 events per
/// collection and bookmarks an idle watch every 300 ms here (GW_SIM_WATCH_WINDOW, GW_SIM_BOOKMARK_MS).
#[test]
fn watches_as_kubectl_and_the_python_client_use_them() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[("GW_SIM_WATCH_WINDOW", "20"), ("GW_SIM_BOOKMARK_MS", "300")]);
    let apply = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(lab.sim_requests()["watch"].as_u64().unwrap_or(0) > 0, "groundwork's gate waits watched");

    let m1 = "m1.lab.example.test";
    let ready = |status: &str| {
        let body = format!(r#"{{"status":{{"conditions":[{{"type":"Ready","status":"{status}"}}]}}}}"#);
        let (code, reply) =
            lab.api("PATCH", &format!("/api/v1/nodes/{m1}/status"), "application/merge-patch+json", &body);
        assert_eq!(code, 200, "{reply}");
    };
    ready("False");
    let watches = lab.sim_requests()["watch"].as_u64().unwrap_or(0);
    let mut wait = Command::new("kubectl")
        .args(["wait", "--for=condition=Ready", &format!("node/{m1}"), "--timeout=60s"])
        .env("KUBECONFIG", lab.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once its watch is open, the node turns Ready: kubectl hears it from the watch.
    let opened = std::time::Instant::now();
    while lab.sim_requests()["watch"].as_u64().unwrap_or(0) == watches {
        assert!(opened.elapsed() < std::time::Duration::from_secs(30), "kubectl wait opened no watch");
        assert!(wait.try_wait().unwrap().is_none(), "kubectl wait ended before its watch");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(wait.try_wait().unwrap().is_none(), "kubectl wait returned while the node was NotReady");
    ready("True");
    let out = wait.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("condition met"), "{said}{}", String::from_utf8_lossy(&out.stderr));

    let seen = json(&python(&lab, WATCH, &[]));
    assert_eq!(seen["gone"], serde_json::json!([410, "Expired"]), "{seen}");
    assert_eq!(seen["resumed"], serde_json::json!([["MODIFIED", "after"]]), "{seen}");
    let (bookmark, last) = (seen["bookmark"].as_u64().unwrap(), seen["last"].as_u64().unwrap());
    assert!(bookmark >= last, "a bookmark behind the last event: {seen}");
}

/// The Python client's watches: an expired version, a resume from a list, bookmarks (the watch ends after
/// its timeoutSeconds, on the server's side).
const WATCH: &str = r#"
import json, sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="churn"), data={"n": "0"})
v1.create_namespaced_config_map("default", cm)
start = v1.list_namespaced_config_map("default").metadata.resource_version
for i in range(25):
    v1.patch_namespaced_config_map("churn", "default", {"data": {"n": str(i + 1)}})
gone = None
try:
    for _ in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=start):
        pass
except client.exceptions.ApiException as e:
    gone = [e.status, e.reason.split(":")[0]]
listed = v1.list_namespaced_config_map("default").metadata.resource_version
v1.patch_namespaced_config_map("churn", "default", {"data": {"n": "after"}})
resumed, bookmark, last = [], 0, 0
for ev in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=listed,
                               allow_watch_bookmarks=True, timeout_seconds=2):
    rv = int(ev["raw_object"]["metadata"]["resourceVersion"])
    if ev["type"] == "BOOKMARK":
        bookmark = max(bookmark, rv)
    else:
        resumed.append([ev["type"], ev["object"].data["n"]])
        last = rv
print(json.dumps({"gone": gone, "resumed": resumed, "bookmark": bookmark, "last": last}))
"#;

/// The minor version of the kubectl on PATH (`kubectl version --client`).
fn kubectl_minor() -> u32 {
    let out = Command::new("kubectl").args(["version", "--client", "-o", "json"]).output().unwrap();
    let v = json(&String::from_utf8_lossy(&out.stdout));
    v["clientVersion"]["minor"].as_str().unwrap().trim_end_matches('+').parse().unwrap()
}

/// OpenAPI and what rests on it, and the known differences, pinned so that closing one is noticed
/// (docs/simulator.md lists them). The simulator serves `/openapi/v3` (not v2, which kubectl before 1.27
/// reads, as protobuf): a kubectl that reads v3 learns that every PATCH takes `fieldValidation`, leaves
/// validation to the server — a misspelled field is 400 — and explains kinds, core and OpenShift's; an
/// older kubectl cannot validate (`--validate=false` needed). And no protobuf: a kubectl that sends its
/// CSR approval as protobuf (1.32 and later do) gets 400, one that sends JSON gets it done.
#[test]
fn known_differences_are_what_the_docs_say() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[]);
    let apply = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cm = write(
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"},"data":{"a":"b"}}"#,
    );
    let typo = write(
        "typo.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y","namespace":"default"},"dta":{"a":"b"}}"#,
    );
    let out = kubectl(&lab, &["apply", "--server-side", "-f", &cm]);
    let err = String::from_utf8_lossy(&out.stderr);
    if kubectl_minor() >= 27 {
        assert!(out.status.success(), "{err}");
        // Server-side validation, as against a real server: the typo is refused, by create and by apply.
        let out = kubectl(&lab, &["apply", "--server-side", "-f", &typo]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(
                "failed to create typed patch object (/v1, Kind=ConfigMap): .dta: field not declared in schema"
            ),
            "{err}"
        );
        let out = kubectl(&lab, &["create", "-f", &typo]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("strict decoding error: unknown field \"dta\""), "{err}");
        // With validation at warn, the field is dropped and the server's Warning header says so.
        let out = kubectl(&lab, &["create", "--validate=warn", "-f", &typo]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.contains("Warning: unknown field \"dta\""), "{err}");
        let made = json(&kubectl_ok(&lab, &["get", "configmap", "y", "-o", "json"]));
        assert!(made.get("dta").is_none(), "{made}");
        // explain reads the kinds' schemas: a core kind's from Kubernetes, OpenShift's from its CRD.
        let node = kubectl_ok(&lab, &["explain", "node.spec.taints"]);
        assert!(node.contains("FIELD: taints <[]Taint>") && node.contains("effect"), "{node}");
        let ic = kubectl_ok(&lab, &["explain", "ingresscontroller.spec.nodePlacement"]);
        assert!(ic.contains("GROUP:      operator.openshift.io") && ic.contains("nodeSelector"), "{ic}");
    } else {
        // kubectl validates against the server's OpenAPI v2 document before sending: there is none.
        assert!(!out.status.success());
        assert!(err.contains("openapi") || err.contains("could not find the requested resource"), "{err}");
        kubectl_ok(&lab, &["apply", "--server-side", "--validate=false", "-f", &cm]);
    }

    let manifest = intruder_csr(dir.path(), "csr-by-kubectl");
    kubectl_ok(&lab, &["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    let out = kubectl(&lab, &["certificate", "deny", "csr-by-kubectl", "-v=8"]);
    let log = String::from_utf8_lossy(&out.stderr);
    let protobuf = log.lines().any(|l| l.contains("Content-Type: application/vnd.kubernetes.protobuf"));
    let csr = json(&kubectl_ok(&lab, &["get", "csr", "csr-by-kubectl", "-o", "json"]));
    if protobuf {
        assert!(!out.status.success() && log.contains("BadRequest"), "{log}");
        assert!(csr["status"]["conditions"].is_null(), "{csr}");
    } else {
        assert!(out.status.success(), "{log}");
        assert_eq!(csr["status"]["conditions"][0]["type"], "Denied", "{csr}");
    }
}
