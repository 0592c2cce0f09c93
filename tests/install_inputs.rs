//! install-config.yaml from the inventory: the reference install's, rendered; its own slip (a service
//! network equal to the intranet) rejected by validate; the pull secret never in any output.

mod common;

use common::copy_dir;
use groundwork::config;
use std::path::Path;
use std::process::Command;

const SENTINEL: &str = "GW-SENTINEL-PULL-SECRET";

fn pull_secret() -> String {
    format!(r#"{{"auths":{{"cloud.openshift.com":{{"auth":"{SENTINEL}","email":"ops@example.localdomain"}}}}}}"#)
}

fn ocp45_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new("environments/ocp45"), dir.path());
    dir
}

/// groundwork with PULL_SECRET set (or not), at the highest verbosity: every output line is an artifact.
fn run(args: &[&str], pull: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_groundwork"));
    cmd.args(args).arg("-vv").env("NO_COLOR", "1").env("RUST_LOG", "trace").env_remove("GROUNDWORK_ENV");
    match pull {
        Some(p) => cmd.env("PULL_SECRET", p),
        None => cmd.env_remove("PULL_SECRET"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_reference_install_config_is_rendered_from_the_inventory() {
    let loaded = config::load_valid(Path::new("environments/ocp45")).unwrap();
    let install = groundwork::install::install_settings(&loaded.env).unwrap();
    let inputs = groundwork::install::Inputs {
        pull_secret: pull_secret(),
        ssh_key: groundwork::install::read_ssh_key(&loaded.dir, install).unwrap(),
        trust_bundle: None,
    };
    let text = groundwork::install::render(&loaded.env, install, &inputs).unwrap();
    // The seed's §4.1 values, read back as YAML.
    let v: serde_json::Value = groundwork_sdk::yaml::from_str(&text).unwrap();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["baseDomain"], "example.localdomain");
    assert_eq!(v["metadata"]["name"], "ocp45");
    assert_eq!(v["controlPlane"]["replicas"], 3);
    assert_eq!(v["compute"][0]["replicas"], 0);
    assert_eq!(v["networking"]["clusterNetwork"][0]["cidr"], "10.128.0.0/14");
    assert_eq!(v["networking"]["clusterNetwork"][0]["hostPrefix"], 23);
    assert_eq!(v["networking"]["networkType"], "OpenShiftSDN");
    assert_eq!(v["networking"]["machineNetwork"][0]["cidr"], "172.16.0.0/24");
    // Not the seed's 192.168.124.0/24: that is the intranet (the next test).
    assert_eq!(v["networking"]["serviceNetwork"][0], "172.30.0.0/16");
    assert!(v["platform"]["none"].as_object().is_some_and(|m| m.is_empty()));
    assert_eq!(v["fips"], false);
    assert_eq!(v["pullSecret"].as_str(), Some(pull_secret().as_str()));
    assert!(v["sshKey"].as_str().unwrap().starts_with("ssh-ed25519 "));
    insta::assert_snapshot!("ocp45_install_config", text.replace(SENTINEL, "<pull secret>"));
}

#[test]
fn the_reference_service_network_slip_is_rejected_naming_both_networks() {
    let env = ocp45_copy();
    let file = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("service: [172.30.0.0/16]", "service: [192.168.124.0/24]")).unwrap();
    let (code, out, err) = run(&["validate", env.path().to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("service network 192.168.124.0/24") && err.contains("intranet network 192.168.124.0/24"),
        "{err}"
    );
    assert!(err.contains("environment.yaml:"), "located: {err}");
}

#[test]
fn the_pull_secret_reaches_the_written_file_and_nothing_else() {
    let env = ocp45_copy();
    let e = env.path().to_str().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("install-config.yaml");
    let t = target.to_str().unwrap();
    let mut outputs = Vec::new();

    // validate without the pipeline's secret: fine (it cannot be checked); with it: checked.
    let (code, out, err) = run(&["validate", e], None);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["validate", e], Some(&pull_secret()));
    assert_eq!(code, 0, "{out}{err}");
    outputs.push(out + &err);
    // Rendering needs it, says so by name.
    let (code, out, err) = run(&["render", "install-config", e, "--out", t], None);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("the environment variable PULL_SECRET is not set"), "{err}");
    assert!(!target.exists());
    // Written: mode 0600, the secret inside; printed: the path and a digest.
    let (code, out, err) = run(&["render", "install-config", e, "--out", t], Some(&pull_secret()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wrote") && out.contains("sha256:"), "{out}");
    outputs.push(out + &err);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&target).unwrap().contains(SENTINEL));
    // Never over an existing file without --force.
    let (code, _, err) = run(&["render", "install-config", e, "--out", t], Some(&pull_secret()));
    assert_eq!(code, 1);
    assert!(err.contains("give --force"), "{err}");
    // A pull secret that is not one: a located error that does not quote it.
    for bad in [format!("{SENTINEL} pasted without its JSON"), format!(r#"{{"auth":"{SENTINEL}"}}"#)] {
        let (code, out, err) = run(&["validate", e], Some(&bad));
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("[install-inputs] the pull secret") && err.contains("services.yaml:"), "{err}");
        outputs.push(out + &err);
    }
    // A served file cannot be the pull secret.
    let services = env.path().join("services.yaml");
    std::fs::write(env.path().join("pull-secret.json"), pull_secret()).unwrap();
    let text = std::fs::read_to_string(&services).unwrap();
    let text = text.replace("pull_secret: { env: PULL_SECRET }", "pull_secret: { file: pull-secret.json }").replace(
        "    - { path: worker.ign,",
        "    - { path: leak.json, source: pull-secret.json }\n    - { path: worker.ign,",
    );
    std::fs::write(&services, text).unwrap();
    let (code, out, err) = run(&["validate", e], None);
    outputs.push(out.clone() + &err);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("pull secret"), "{err}");
    for o in &outputs {
        assert!(!o.contains(SENTINEL), "the pull secret leaked:\n{o}");
    }
}
