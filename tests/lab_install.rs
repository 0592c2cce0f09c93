//! The whole install on the lab: real sshd, named, dhcpd, haproxy, nginx and firewalld, and the
//! project's Kubernetes API simulator (there is no OpenShift here) served on the bootstrap and master
//! stand-ins behind haproxy. One `groundwork apply` goes from empty hosts to day 2.

mod common;

use common::drift_loop::{curl, wait_for_page, DriftLoop};
use common::groundwork;
use common::lab::Lab;
use groundwork_cluster::csr;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::Api;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 110;
const HOSTILE: &str = "undeclared-node serving-bad-ip client-wrong-requestor duplicate-client ready-master-client";

fn workers(lab: &Lab) -> BTreeMap<String, String> {
    [("w1", 31), ("w2", 32), ("w3", 33), ("i1", 41), ("i2", 42)]
        .iter()
        .map(|(n, ip)| (format!("{n}.lab.example.test"), lab.ip(*ip)))
        .collect()
}

/// Which listener answered an HTTPS request through the load balancer's API address.
fn api_backend(lab: &Lab) -> String {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "5", &format!("https://{}:6443/sim/whoami", lab.ip(4))])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Which ingress stand-in answered a TCP connection through the load balancer.
fn ingress_backend(lab: &Lab, port: u16) -> String {
    let script = format!("exec 3<>/dev/tcp/{}/{port}; echo hello >&3; head -1 <&3", lab.ip(4));
    let out = Command::new("timeout").args(["5", "bash", "-c", &script]).output().expect("bash");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apply_takes_empty_hosts_to_day_two_and_resumes_after_a_gate_timeout() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[("GW_SIM_HOSTILE", HOSTILE), ("GW_SIM_BOOTSTRAP_MS", "3000")]);
    let env = lab.env_str();

    // Before anything: the API is not reachable through the LB, and the plan says so.
    let plan = groundwork(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("bootstrap-complete  waiting: the API is not reachable yet ("), "{}", plan.stdout);
    assert!(plan.stdout.contains("waiting on it: 7 resource(s)"), "{}", plan.stdout);

    // A gate that times out stops the run; what is behind it is not applied.
    let first = groundwork(&["apply", env, "--auto-approve", "--gate-timeout", "1s"]);
    assert_eq!(first.code, 1, "{}{}", first.stdout, first.stderr);
    assert!(
        first.stderr.contains("gate bootstrap-complete has not passed after 1s")
            && first.stderr.contains("run apply again to resume"),
        "{}",
        first.stderr
    );
    let cfg = lab.ssh_ok("lb1", "cat /etc/haproxy/haproxy.cfg");
    assert!(cfg.contains(&format!("server bs {}:6443", lab.ip(11))), "bootstrap still in the LB:\n{cfg}");

    // The re-run resumes and goes all the way.
    let run = groundwork(&["apply", env, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for gate in ["bootstrap-complete", "workers-joined", "router-on-infra"] {
        assert!(run.stdout.contains(&format!("✓ {gate}")), "{gate}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("Verified: a fresh plan shows no changes."), "{}", run.stdout);
    // Each later phase has a heading naming the gates that opened it, and one line sums the run up. Which
    // gates open phase 2 depends on how far the install got while the first run timed out (on a busy
    // machine bootstrap may complete before this run's first plan).
    let heading =
        run.stdout.lines().find(|l| l.starts_with("── Phase 2: after ")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(["bootstrap-complete", "masters-ready", "workers-joined"].iter().any(|g| heading.contains(g)), "{heading}");
    // The closing line names the gates that passed during this run, in order. Workers join only once
    // groundwork approves their CSRs, so workers-joined and what follows it always pass in this run; the
    // gates before it may have passed while the first run was timing out.
    let done = run.stdout.lines().find(|l| l.starts_with("Done: ")).unwrap_or_else(|| panic!("{}", run.stdout));
    let listed = done.split("gates passed: ").nth(1).unwrap_or_else(|| panic!("{done}"));
    let listed = listed.rsplit_once(", ").map(|(gates, _took)| gates).unwrap_or_else(|| panic!("{done}"));
    let all = ["bootstrap-complete", "masters-ready", "workers-joined", "install-complete", "router-on-infra"];
    let suffixes: Vec<String> = (0..=2).map(|from| all[from..].join(", ")).collect();
    assert!(suffixes.iter().any(|s| s == listed), "{done}");
    // Hostile CSRs are refused and reported with the reason.
    for reason in [
        "node \"x9.lab.example.test\" is not declared in the inventory",
        "not the node-bootstrapper service account",
        &format!("SAN IPs {{{}}} differ from the inventory's {{{}}}", lab.ip(199), lab.ip(31)),
        // One identity, once: a second client CSR while w1 joins, and a client CSR for a master (left to
        // the bootstrap's approver). The one posted after w1 joined may come after the wait is over: it is
        // checked below.
        "another client CSR for w1.lab.example.test",
        "m1.lab.example.test is a master",
    ] {
        assert!(run.stdout.contains(reason), "{reason}:\n{}", run.stdout);
    }

    // A second plan: nothing to do, nothing waiting.
    let again = groundwork(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // Exactly the declared nodes' CSRs were approved: a client and a serving one each.
    let client = groundwork::transport::cluster::client(&lab.kubeconfig()).await.unwrap();
    let declared = workers(&lab);
    let mut approved: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending = Vec::new();
    for c in Api::<CertificateSigningRequest>::all(client.clone()).list(&ListParams::default()).await.unwrap().items {
        let facts = csr::parse_request(&c.spec.request.0).unwrap();
        let node = facts.common_names[0].trim_start_matches("system:node:").to_string();
        let is_approved = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|x| x.type_ == "Approved" && x.status == "True"));
        if is_approved {
            assert!(declared.contains_key(&node), "approved an undeclared node's CSR: {node}");
            if c.spec.signer_name == csr::SERVING_SIGNER {
                assert_eq!(facts.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(), vec![declared[&node].clone()]);
            } else {
                assert_eq!(c.spec.username.as_deref(), Some(csr::BOOTSTRAPPER));
            }
            *approved.entry(node).or_default() += 1;
        } else {
            pending.push((node, c.spec.username.clone().unwrap_or_default()));
        }
    }
    assert_eq!(approved, declared.keys().map(|n| (n.clone(), 2)).collect::<BTreeMap<_, _>>());
    assert_eq!(pending.len(), 6, "the six hostile CSRs stay pending: {pending:?}");
    // Reviewed now, the client CSR w1 posted after it joined is refused for that reason.
    let loaded = groundwork::config::load(lab.env_dir()).unwrap();
    let mut ledger = groundwork_cluster::gates::ledger(&loaded.env);
    let verdicts =
        groundwork_cluster::gates::review_csrs(&client, &client, &loaded.env, false, &mut ledger).await.unwrap();
    assert!(
        verdicts.iter().any(|d| d.describe().contains("w1.lab.example.test has joined already (its Node is Ready)")),
        "{:#?}",
        verdicts.iter().map(|d| d.describe()).collect::<Vec<_>>()
    );

    // Every declared node is Ready; the infra nodes carry the label and both taints.
    let nodes = Api::<Node>::all(client.clone());
    for name in ["i1.lab.example.test", "i2.lab.example.test"] {
        let n = nodes.get(name).await.unwrap();
        assert_eq!(
            n.metadata.labels.as_ref().unwrap().get("node-role.kubernetes.io/infra").map(String::as_str),
            Some("")
        );
        let taints: Vec<String> = n
            .spec
            .unwrap()
            .taints
            .unwrap()
            .iter()
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect();
        assert_eq!(taints, ["infra=reserved:NoSchedule", "infra=reserved:NoExecute"]);
    }
    let w1 = nodes.get("w1.lab.example.test").await.unwrap();
    assert!(!w1.metadata.labels.unwrap().contains_key("node-role.kubernetes.io/infra"));

    // Day-2 objects: router on infra, registry managed on its PVC, monitoring on infra.
    let ic = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "openshift-ingress-operator",
        &groundwork_cluster::gates::ingress_controller_api(),
    )
    .get("default")
    .await
    .unwrap();
    assert_eq!(ic.data["spec"]["nodePlacement"]["nodeSelector"]["matchLabels"]["node-role.kubernetes.io/infra"], "");
    let reg = ApiResource::from_gvk(&GroupVersionKind::gvk("imageregistry.operator.openshift.io", "v1", "Config"));
    let reg = Api::<DynamicObject>::all_with(client.clone(), &reg).get("cluster").await.unwrap();
    assert_eq!(reg.data["spec"]["managementState"], "Managed");
    assert_eq!(reg.data["spec"]["storage"]["pvc"]["claim"], "image-registry-storage");
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), "openshift-image-registry")
        .get("image-registry-storage")
        .await
        .unwrap();
    assert_eq!(pvc.status.unwrap().phase.as_deref(), Some("Bound"), "bound to the declared StorageClass");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "openshift-monitoring")
        .get("cluster-monitoring-config")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["config.yaml"].contains("node-role.kubernetes.io/infra"));

    // The load balancer: bootstrap gone (file and TCP), 80/443 on the infra nodes only.
    let cfg = lab.ssh_ok("lb1", "cat /etc/haproxy/haproxy.cfg");
    assert!(!cfg.contains("server bs "), "bootstrap left the LB:\n{cfg}");
    for _ in 0..9 {
        let b = api_backend(&lab);
        assert!(["m1", "m2", "m3"].iter().any(|m| b == format!("gw{}-{m}", lab.index)), "API answered by {b:?}");
    }
    for port in [80, 443] {
        let b = ingress_backend(&lab, port);
        assert!(b == format!("i1/{port}") || b == format!("i2/{port}"), "ingress {port} answered by {b:?}");
    }

    // Someone else changes a field groundwork manages: only that field shows, and apply puts it back.
    let ics = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "openshift-ingress-operator",
        &groundwork_cluster::gates::ingress_controller_api(),
    );
    let theirs = serde_json::json!({"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
                                    "metadata": {"name": "default", "namespace": "openshift-ingress-operator"},
                                    "spec": {"replicas": 5}});
    ics.patch("default", &PatchParams::apply("someone-else").force(), &Patch::Apply(&theirs)).await.unwrap();
    let drift = groundwork(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("~ spec.replicas: 5 → 2"), "{}", drift.stdout);
    assert!(drift.stdout.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{}", drift.stdout);
    assert!(!drift.stdout.contains("managedFields") && !drift.stdout.contains("status"), "{}", drift.stdout);
    let fix = groundwork(&["apply", env, "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}{}", fix.stdout, fix.stderr);
    assert_eq!(ics.get("default").await.unwrap().data["spec"]["replicas"], 2);

    // Taken out of the inventory: a field groundwork set is released (the object stays), an object it
    // created is deleted.
    let os = lab.env_dir().join("openshift.yaml");
    let text = std::fs::read_to_string(&os).unwrap();
    let text =
        text.replace("  ingress_replicas: 2\n", "").replace("monitoring_on_infra: true", "monitoring_on_infra: false");
    std::fs::write(&os, text).unwrap();
    let out = groundwork(&["plan", env]);
    assert!(out.stdout.contains("- spec.replicas: no longer in the inventory (released)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("- cluster.object[ConfigMap/openshift-monitoring/cluster-monitoring-config]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Plan: 0 to add, 1 to change, 1 to destroy."), "{}", out.stdout);
    let fix = groundwork(&["apply", env, "--auto-approve"]);
    assert_eq!(fix.code, 0, "{}{}", fix.stdout, fix.stderr);
    let ic = ics.get("default").await.unwrap();
    assert!(ic.data["spec"].get("replicas").is_none(), "released: {}", ic.data["spec"]);
    assert!(ic.data["spec"].get("nodePlacement").is_some(), "still placed on infra: {}", ic.data["spec"]);
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "openshift-monitoring");
    assert!(cms.get_opt("cluster-monitoring-config").await.unwrap().is_none(), "deleted");
    assert_eq!(groundwork(&["plan", env, "--detailed-exitcode"]).code, 0);

    // The JSON plan carries the gates as probed.
    let json = groundwork(&["plan", env, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let gates: Vec<(String, bool)> = doc["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["gate"].as_str().unwrap().to_string(), g["passed"].as_bool().unwrap()))
        .collect();
    let names: Vec<&str> = gates.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(names, ["bootstrap-complete", "masters-ready", "workers-joined", "install-complete", "router-on-infra"]);
    assert!(gates.iter().all(|(_, passed)| *passed), "{gates:?}");
    // Each says since when, in the cluster's own time (the simulator's clock is the wall clock).
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut since = Vec::new();
    for g in doc["gates"].as_array().unwrap() {
        let t = g["since"].as_str().unwrap_or_else(|| panic!("no since: {g}"));
        let at: k8s_openapi::jiff::Timestamp = t.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
        let age = now.duration_since(at).as_secs();
        assert!((0..3600).contains(&age), "{g} is {age} s old");
        since.push(t.to_string());
    }

    // The drift loop's status page shows the gates and the install's timeline.
    let drift = DriftLoop::start(env, "127.0.0.1:0");
    let url = format!("{}/", drift.url);
    wait_for_page(&url, "the gates in sync", |p| p.contains(r#"data-outcome="in-sync""#));
    let page = scraper::Html::parse_document(&curl(&[&url]));
    let select = |s: &str| scraper::Selector::parse(s).unwrap();
    let passed: Vec<String> = page
        .select(&select("#gates tr[data-gate] td.state"))
        .map(|e| e.value().attr("class").unwrap_or_default().to_string())
        .collect();
    assert_eq!(passed, vec!["state passed".to_string(); 5]);
    let timeline: Vec<String> = page.select(&select("#timeline li")).map(|e| e.text().collect()).collect();
    assert_eq!(timeline.len(), 5, "{timeline:?}");
    assert!(timeline[0].starts_with("bootstrap-complete passed: ") && timeline[4].starts_with("router-on-infra"));
    for (t, at) in timeline.iter().zip(&since) {
        assert!(t.ends_with(&format!("{at} (the cluster's time)")), "{t} vs {at}");
    }
}

/// The seed's first trap, seen from the cluster: a master without a PTR record registers as
/// `localhost`. The masters-ready gate names the node by its address and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_registered_as_localhost_is_diagnosed_by_its_address() {
    let lab = Lab::up_with_cluster(
        BASE,
        &NEXT,
        &[("GW_SIM_HOSTILE", "master-named-localhost"), ("GW_SIM_BOOTSTRAP_MS", "500")],
    );
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve", "--gate-timeout", "4s"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let m1 = format!("m1.lab.example.test has no Node, but Node \"localhost\" has its address {}", lab.ip(21));
    assert!(run.stderr.contains("gate masters-ready has not passed after 4s: 2 of 3 Ready"), "{}", run.stderr);
    assert!(run.stderr.contains(&m1) && run.stderr.contains("no PTR record answered"), "{}", run.stderr);
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("✓ bootstrap-complete") && plan.stdout.contains(&m1), "{}", plan.stdout);
}
