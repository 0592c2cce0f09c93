//! Reaching the cluster the way kubectl does, against the lab's API simulator behind the real haproxy:
//! a `KUBECONFIG` list merged (first file wins), `--context` / `GROUNDWORK_CONTEXT` / `openshift.context`,
//! and the in-cluster service account of a pod (token and CA under /var/run/secrets, in a private mount
//! namespace of the test so that this machine's /run is untouched).

mod common;

use common::groundwork_env;
use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 220;

/// A kubeconfig whose only context points at a loopback port nothing listens on.
const NOWHERE: &str = "apiVersion: v1\nkind: Config\n\
    clusters:\n- name: nowhere\n  cluster: { server: \"https://127.0.0.1:9\" }\n\
    users:\n- name: nobody\n  user: { token: x }\n\
    contexts:\n- name: elsewhere\n  context: { cluster: nowhere, user: nobody }\n\
    current-context: elsewhere\n";

#[test]
fn kubeconfig_lists_contexts_and_in_cluster_config() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[]);
    let dir = tempfile::tempdir().unwrap();
    // The environment names no kubeconfig: KUBECONFIG decides.
    let os_yaml = lab.env_dir().join("openshift.yaml");
    let text = std::fs::read_to_string(&os_yaml).unwrap();
    let without: String = text.lines().filter(|l| !l.contains("kubeconfig:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&os_yaml, &without).unwrap();
    let nowhere = dir.path().join("nowhere.kc");
    std::fs::write(&nowhere, NOWHERE).unwrap();
    let lab_kc = dir.path().join("lab.kc");
    let sim = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    std::fs::write(
        &lab_kc,
        sim.replace("contexts:\n- name: admin", "contexts:\n- name: lab")
            .replace("current-context: admin", "current-context: lab"),
    )
    .unwrap();
    // A listed file that does not exist is skipped, as kubectl does.
    let list = format!("{}:{}:{}", dir.path().join("missing.kc").display(), nowhere.display(), lab_kc.display());
    let kube = |args: &[&str], set: &[(&str, &str)]| {
        let mut all = vec![("KUBECONFIG", list.as_str())];
        all.extend_from_slice(set);
        groundwork_env(args, &all, &["GROUNDWORK_CONTEXT", "KUBERNETES_SERVICE_HOST"])
    };

    // --context picks the lab's context out of the merged files: the whole install goes through.
    // As an event stream: every line conforms to docs/schemas/events.schema.json, and every gate passes.
    let apply = kube(&["apply", lab.env_str(), "--auto-approve", "--context", "lab", "--json"], &[]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let events: Vec<serde_json::Value> = apply.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in &events {
        let errors = common::schema_errors("events", e);
        assert!(errors.is_empty(), "{errors:?}: {e}");
    }
    let passed: Vec<&str> =
        events.iter().filter(|e| e["event"] == "gate_passed").map(|e| e["gate"].as_str().unwrap()).collect();
    assert_eq!(
        passed,
        ["bootstrap-complete", "masters-ready", "workers-joined", "install-complete", "router-on-infra"]
    );
    // Each wait says what it cost the API, and the waits that took time watched (gate_waits: watch, the
    // default): the simulator served watch requests.
    assert!(events.iter().filter(|e| e["event"] == "gate_passed").all(|e| e["api_requests"].is_u64()));
    let waited: u64 = events.iter().filter_map(|e| e["api_requests"].as_u64()).sum();
    assert!(waited > 0, "the gate waits sent no request");
    let served = lab.sim_requests();
    assert!(served["watch"].as_u64().unwrap_or(0) > 0, "no watch: {served}");
    // Each joining node's client and serving CSR approved once, as events.
    let mut csrs: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "csr_approved")
        .map(|e| (e["node"].as_str().unwrap().to_string(), e["kind"].as_str().unwrap().to_string()))
        .collect();
    csrs.sort();
    let nodes = ["i1", "i2", "w1", "w2", "w3"];
    let expected: Vec<(String, String)> = nodes
        .iter()
        .flat_map(|n| ["client", "serving"].map(|k| (format!("{n}.lab.example.test"), k.to_string())))
        .collect();
    assert_eq!(csrs, expected);
    // Without it, the first file's current-context wins: the API there is not reachable.
    let plan = kube(&["plan", lab.env_str()], &[]);
    assert!(
        plan.stdout.contains("bootstrap-complete  waiting: the API is not reachable yet"),
        "{}{}",
        plan.stdout,
        plan.stderr
    );
    // GROUNDWORK_CONTEXT, and openshift.context in the inventory, do what --context does.
    let plan = kube(&["plan", lab.env_str(), "--detailed-exitcode"], &[("GROUNDWORK_CONTEXT", "lab")]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    std::fs::write(&os_yaml, without.replace("openshift:\n", "openshift:\n  context: lab\n")).unwrap();
    let plan = kube(&["plan", lab.env_str(), "--detailed-exitcode"], &[]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    // A context that is in none of the files: an error naming the ones there are.
    let bad = kube(&["plan", lab.env_str(), "--context", "nope"], &[]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("no context \"nope\" (it has: elsewhere, lab)"), "{}", bad.stderr);
    std::fs::write(&os_yaml, &without).unwrap();

    let run_secrets_before = std::path::Path::new("/run/secrets/kubernetes.io").exists();
    // In a pod: no KUBECONFIG, the service account's token and CA, KUBERNETES_SERVICE_HOST/PORT.
    let parsed: serde_json::Value = groundwork_sdk::yaml::from_str(&sim).unwrap();
    let token = parsed["users"][0]["user"]["token"].as_str().unwrap();
    let ca = parsed["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap();
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.decode(ca).unwrap();
    let server: http::Uri = parsed["clusters"][0]["cluster"]["server"].as_str().unwrap().parse().unwrap();
    let sa = dir.path().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), token).unwrap();
    std::fs::write(sa.join("ca.crt"), ca).unwrap();
    std::fs::write(sa.join("namespace"), "groundwork").unwrap();
    let script = format!(
        "mount -t tmpfs none /run && mkdir -p /run/secrets/kubernetes.io && cp -r {} /run/secrets/kubernetes.io/ && \
         exec {} plan {} --detailed-exitcode",
        sa.display(),
        env!("CARGO_BIN_EXE_groundwork"),
        lab.env_str()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("GROUNDWORK_CONTEXT")
        .env("KUBERNETES_SERVICE_HOST", server.host().unwrap())
        .env("KUBERNETES_SERVICE_PORT", server.port_u16().unwrap().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✓ install-complete"), "{stdout}");
    // This machine's /run was not touched.
    assert_eq!(std::path::Path::new("/run/secrets/kubernetes.io").exists(), run_secrets_before);
}
