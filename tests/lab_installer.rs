//! The ignition made by the installer, served and booted from, on the lab: one `groundwork apply` runs
//! the stand-in installer (lab/openshift-install: the real one cannot be downloaded here), serves the
//! .ign files from the real nginx, and the bootstrap stand-in "boots" from the served bootstrap.ign —
//! fetched with curl from its own namespace — serving the API (the project's simulator) with the
//! certificate the installer put in it. The gates then pass with the kubeconfig the installer wrote,
//! through the real haproxy, at the address the inventory gives api.lab.example.test.

mod common;

use common::lab::Lab;
use common::Run;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 190;
const SENTINEL: &str = "R1ctU0VOVElORUwtTEFCLUlOU1RBTExFUg==";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkVJIvZ6gDg3DlzUBt6FDmvrZf3T0DX6frAHL2dPcjO lab\n";

fn gw(args: &[&str]) -> Run {
    let pull_secret = format!(r#"{{"auths":{{"quay.io":{{"auth":"{SENTINEL}"}}}}}}"#);
    common::groundwork_with_secret(args, &pull_secret, SENTINEL, &[])
}

/// The lab's environment with its ignition left to the installer: no .ign served by hand, no
/// kubeconfig (the installer writes one), the install inputs and one extra manifest.
fn installer_env(lab: &Lab) {
    let dir = lab.env_dir();
    let services = std::fs::read_to_string(dir.join("services.yaml")).unwrap();
    let services: String =
        services.lines().filter(|l| !l.contains(".ign, content")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("services.yaml"), services).unwrap();
    let openshift = std::fs::read_to_string(dir.join("openshift.yaml")).unwrap();
    let mut openshift: String =
        openshift.lines().filter(|l| !l.starts_with("  kubeconfig:")).map(|l| format!("{l}\n")).collect();
    openshift = openshift.replacen(
        "openshift:\n",
        &format!(
            "openshift:\n  installer: {}\n  install:\n    pull_secret: {{ env: PULL_SECRET }}\n    ssh_key: {{ file: ssh-key.pub }}\n    \
             manifests: install-manifests\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/openshift-install").display()
        ),
        1,
    );
    std::fs::write(dir.join("openshift.yaml"), openshift).unwrap();
    std::fs::write(dir.join("ssh-key.pub"), SSH_KEY).unwrap();
    std::fs::create_dir(dir.join("install-manifests")).unwrap();
    std::fs::write(
        dir.join("install-manifests/99-worker-chrony.yaml"),
        "apiVersion: machineconfiguration.openshift.io/v1\nkind: MachineConfig\nmetadata:\n  name: 99-worker-chrony\nspec: {}\n",
    )
    .unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn the_installers_ignition_is_served_booted_from_and_its_kubeconfig_drives_the_gates() {
    let lab = Lab::up_without_sim(BASE, &NEXT);
    installer_env(&lab);
    let env = lab.env_str();
    let v = gw(&["validate", env]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    // The bootstrap machine is powered on and waits for its ignition, as in the reference install.
    let bootstrap = lab.spawn_sim_from_ignition(600);
    let run = gw(&["apply", env, "--auto-approve"]);
    let booted = bootstrap.wait_with_output().unwrap();
    assert!(
        booted.status.success(),
        "the bootstrap stand-in did not boot from the served ignition:\n{}",
        String::from_utf8_lossy(&booted.stderr)
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("+ installer.ignition[lab]: done"), "{}", run.stdout);
    for gate in ["bootstrap-complete", "masters-ready", "workers-joined", "install-complete", "router-on-infra"] {
        assert!(run.stdout.contains(&format!("✓ {gate}")), "{gate}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("Verified: a fresh plan shows no changes."), "{}", run.stdout);

    // What nginx serves is what the installer made; the bootstrap's carries the scheduler edit and the
    // extra manifest.
    let installdir = lab.env_dir().join("installdir");
    for name in ["bootstrap.ign", "master.ign", "worker.ign"] {
        let served = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("http://{}/{name}", lab.host_ip("bastion"))])
            .output()
            .unwrap();
        assert!(served.status.success(), "{name} not served");
        assert_eq!(sha256(&served.stdout), sha256(&std::fs::read(installdir.join(name)).unwrap()), "{name}");
    }
    let bootstrap_ign = std::fs::read_to_string(installdir.join("bootstrap.ign")).unwrap();
    assert!(bootstrap_ign.contains("/opt/openshift/openshift/99-worker-chrony.yaml"));
    let kept = std::fs::read_to_string(installdir.join(".groundwork/inputs/openshift/99-worker-chrony.yaml")).unwrap();
    assert!(kept.contains("99-worker-chrony"));

    // A real client with the generated kubeconfig's credentials (curl: its CA, the admin's client
    // certificate), naming the API as the kubeconfig does and reaching it at the VIP: authenticated by
    // the certificate alone. Without it: refused.
    let kc: serde_json::Value =
        groundwork_sdk::yaml::from_str(&std::fs::read_to_string(installdir.join("auth/kubeconfig")).unwrap()).unwrap();
    assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://api.lab.example.test:6443");
    let creds = tempfile::tempdir().unwrap();
    use base64::Engine;
    for (field, node, file) in [
        ("certificate-authority-data", &kc["clusters"][0]["cluster"], "ca.crt"),
        ("client-certificate-data", &kc["users"][0]["user"], "admin.crt"),
        ("client-key-data", &kc["users"][0]["user"], "admin.key"),
    ] {
        let pem = base64::engine::general_purpose::STANDARD.decode(node[field].as_str().unwrap()).unwrap();
        std::fs::write(creds.path().join(file), pem).unwrap();
    }
    let resolve = format!("api.lab.example.test:6443:{}", lab.ip(4));
    let curl = |with_cert: bool| {
        let mut c = Command::new("curl");
        c.args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", "--resolve", &resolve, "--cacert"])
            .arg(creds.path().join("ca.crt"));
        if with_cert {
            c.arg("--cert").arg(creds.path().join("admin.crt")).arg("--key").arg(creds.path().join("admin.key"));
        }
        let out = c.arg("https://api.lab.example.test:6443/api/v1/nodes").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nodes = curl(true);
    assert!(nodes.ends_with("\n200") && nodes.contains("\"kind\":\"NodeList\""), "{nodes}");
    assert!(nodes.contains("m1.lab.example.test"), "{nodes}");
    assert!(curl(false).ends_with("\n401"), "without the client certificate");

    // Idempotent: nothing regenerated, nothing to change.
    let plan = gw(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let verify = gw(&["verify", env, "--json"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);

    // The install is past bootstrap: an input that changes now does not regenerate the ignition (the
    // cluster's identity is in the one it was made from); the plan says so and changes nothing.
    std::fs::write(
        lab.env_dir().join("install-manifests/99-master-kargs.yaml"),
        "apiVersion: machineconfiguration.openshift.io/v1\nkind: MachineConfig\nmetadata:\n  name: 99-master-kargs\nspec: {}\n",
    )
    .unwrap();
    let plan = gw(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("installer.ignition[lab]: not regenerated: bootstrap has completed")
            && plan.stdout.contains("inputs changed: digest of install-config and manifests"),
        "{}",
        plan.stdout
    );

    // The pull secret is in the bootstrap's ignition (the machine needs it) and in no host record.
    for host in ["bastion", "ns1", "lb1"] {
        let records = lab.ssh_ok(host, "cat /var/lib/groundwork/*.json 2>/dev/null; true");
        assert!(!records.contains(SENTINEL), "{host}'s records hold the pull secret");
    }
}
