//! The stand-in installer (lab/openshift-install) is held to what the real openshift-install does with
//! the install-config groundwork renders: it accepts the reference install's, writes the documented
//! layout, and refuses what the real one refuses — so the orchestration tests do not test an echo. Its
//! ignition is validated against the Ignition 3.1 JSON schema vendored from coreos/ignition.
//!
//! The real installer has not been run here (it cannot be downloaded on these machines).

use groundwork::config;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SENTINEL: &str = "R1ctU0VOVElORUwtU1RBTkQtSU4=";

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/openshift-install")
}

/// install-config.yaml of environments/ocp45 (the reference install), as groundwork renders it.
fn reference_install_config() -> serde_json::Value {
    let loaded = config::load_valid(Path::new("environments/ocp45")).unwrap();
    let install = groundwork::install::install_settings(&loaded.env).unwrap();
    let inputs = groundwork::install::Inputs {
        pull_secret: format!(r#"{{"auths":{{"quay.io":{{"auth":"{SENTINEL}"}}}}}}"#),
        ssh_key: groundwork::install::read_ssh_key(&loaded.dir, install).unwrap(),
        trust_bundle: None,
    };
    groundwork_sdk::yaml::from_str(&groundwork::install::render(&loaded.env, install, &inputs).unwrap()).unwrap()
}

fn run(dir: &Path, step: &str) -> Output {
    Command::new(standin()).args(["create", step, "--dir"]).arg(dir).output().unwrap()
}

fn write(dir: &Path, ic: &serde_json::Value) {
    std::fs::write(dir.join("install-config.yaml"), groundwork_sdk::yaml::to_string(ic).unwrap()).unwrap();
}

fn set(ic: &mut serde_json::Value, path: &[&str], v: serde_json::Value) {
    let mut node = ic;
    for (i, k) in path.iter().enumerate() {
        node = match k.parse::<usize>() {
            Ok(n) => &mut node[n],
            Err(_) => &mut node[*k],
        };
        if i == path.len() - 1 {
            *node = v.clone();
        }
    }
}

/// Validate `v` against a JSON schema node, with the keywords the Ignition schemas use ($ref, allOf,
/// type, properties, items, required). Returns the paths that do not conform.
fn conform(v: &serde_json::Value, node: &serde_json::Value, root: &serde_json::Value, at: &str) -> Vec<String> {
    let mut bad = conform_parts(v, node, root, at);
    // Ignition itself refuses unknown keys (its parser reports them): known is what any part names.
    if let Some(obj) = v.as_object() {
        let known = known_keys(node, root);
        bad.extend(obj.keys().filter(|k| !known.contains(*k)).map(|k| format!("{at}.{k}: not in the schema")));
    }
    bad
}

fn resolve<'a>(node: &'a serde_json::Value, root: &'a serde_json::Value) -> Vec<&'a serde_json::Value> {
    let mut parts = vec![node];
    if let Some(r) = node["$ref"].as_str() {
        let def = root.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("unresolved {r}"));
        parts.extend(resolve(def, root));
    }
    for sub in node["allOf"].as_array().into_iter().flatten() {
        parts.extend(resolve(sub, root));
    }
    parts
}

fn known_keys(node: &serde_json::Value, root: &serde_json::Value) -> Vec<String> {
    resolve(node, root).iter().filter_map(|p| p["properties"].as_object()).flat_map(|o| o.keys().cloned()).collect()
}

fn conform_parts(v: &serde_json::Value, node: &serde_json::Value, root: &serde_json::Value, at: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for part in resolve(node, root).into_iter().skip(1) {
        bad.extend(conform_parts(v, part, root, at).into_iter().filter(|b| !bad.contains(b)).collect::<Vec<_>>());
    }
    if let Some(t) = node.get("type") {
        let types: Vec<&str> = match t {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            bad.push(format!("{at}: not {types:?}"));
            return bad;
        }
    }
    for req in node["required"].as_array().into_iter().flatten() {
        if v.get(req.as_str().unwrap()).is_none() {
            bad.push(format!("{at}: lacks {req}"));
        }
    }
    if let (Some(props), Some(obj)) = (node["properties"].as_object(), v.as_object()) {
        for (k, val) in obj {
            if let Some(p) = props.get(k) {
                bad.extend(conform(val, p, root, &format!("{at}.{k}")));
            }
        }
    }
    if let (Some(items), Some(arr)) = (node.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            bad.extend(conform(x, items, root, &format!("{at}[{i}]")));
        }
    }
    bad
}

#[test]
fn the_reference_install_config_makes_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &reference_install_config());
    let out = run(dir.path(), "manifests");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("install-config.yaml").exists(), "consumed, as the real installer does");
    assert!(dir.path().join(".openshift_install_state.json").is_file());
    let scheduler: serde_json::Value = groundwork_sdk::yaml::from_str(
        &std::fs::read_to_string(dir.path().join("manifests/cluster-scheduler-02-config.yml")).unwrap(),
    )
    .unwrap();
    // No compute replicas (UPI): the installer makes the masters schedulable; the seed edits it by hand.
    assert_eq!(scheduler["kind"], "Scheduler");
    assert_eq!(scheduler["spec"]["mastersSchedulable"], serde_json::Value::Bool(true));
    // groundwork's edit of that very file reads back.
    let edited = groundwork_installer::set_masters_schedulable(
        &std::fs::read_to_string(dir.path().join("manifests/cluster-scheduler-02-config.yml")).unwrap(),
        false,
    )
    .unwrap();
    std::fs::write(dir.path().join("manifests/cluster-scheduler-02-config.yml"), edited).unwrap();

    let out = run(dir.path(), "ignition-configs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in
        ["bootstrap.ign", "master.ign", "worker.ign", "auth/kubeconfig", "auth/kubeadmin-password", "metadata.json"]
    {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert!(!dir.path().join("manifests").exists() && !dir.path().join("openshift").exists(), "consumed");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/ignition/v3_1.json").unwrap()).unwrap();
    for f in ["bootstrap.ign", "master.ign", "worker.ign"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert_eq!(groundwork_files::check_ignition(&bytes).unwrap(), "3.1.0", "{f}");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(conform(&v, &schema, &schema, f), Vec::<String>::new(), "{f} against the 3.1 schema");
    }
    // The check itself can fail: a mode as a string, an unknown key.
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bootstrap.ign")).unwrap()).unwrap();
    v["storage"]["files"][0]["mode"] = "0644".into();
    v["storage"]["files"][1]["contentz"] = serde_json::json!({});
    let bad = conform(&v, &schema, &schema, "b");
    assert_eq!(
        bad,
        ["b.storage.files[0].mode: not [\"integer\", \"null\"]", "b.storage.files[1].contentz: not in the schema"]
    );
    let bootstrap = std::fs::read_to_string(dir.path().join("bootstrap.ign")).unwrap();
    assert!(bootstrap.contains("/opt/openshift/manifests/cluster-scheduler-02-config.yml"));
    let kc: serde_json::Value =
        groundwork_sdk::yaml::from_str(&std::fs::read_to_string(dir.path().join("auth/kubeconfig")).unwrap()).unwrap();
    assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://api.ocp45.example.localdomain:6443");
    assert!(kc["users"][0]["user"]["client-certificate-data"].is_string());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["clusterName"], "ocp45");
}

#[test]
fn it_refuses_what_the_real_installer_refuses() {
    use serde_json::Value;
    let cases: Vec<(&[&str], Value, &str)> = vec![
        // The reference install's own slip, had it reached the installer: a service network on the machines'.
        (&["networking", "serviceNetwork", "0"], "172.16.0.0/24".into(), "networking.serviceNetwork[0]: Invalid value"),
        (&["networking", "clusterNetwork", "0", "hostPrefix"], 12.into(), "networking.clusterNetwork[0].hostPrefix"),
        (&["apiVersion"], "v2".into(), "apiVersion: Invalid value"),
        (&["metadata", "name"], "Not_A_Label".into(), "metadata.name: Invalid value"),
        (&["sshKey"], "-----BEGIN OPENSSH PRIVATE KEY-----".into(), "sshKey: Invalid value"),
        (&["controlPlane", "replicas"], 0.into(), "controlPlane.replicas"),
        (&["networking", "networkType"], "Calico".into(), "networking.networkType"),
        (&["pullSecret"], format!(r#"{{"registry":"{SENTINEL}"}}"#).into(), "pullSecret: Invalid value"),
    ];
    for (path, value, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut ic = reference_install_config();
        set(&mut ic, path, value);
        write(dir.path(), &ic);
        let out = run(dir.path(), "manifests");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{path:?} accepted:\n{stderr}");
        assert!(stderr.contains(want), "{path:?}: {stderr}");
        assert!(!dir.path().join("manifests").exists(), "{path:?}: nothing written");
        // Like the real one, it quotes the value it refuses — the pull secret too. What groundwork shows
        // of an installer's output has it taken out.
        let ic_bytes = std::fs::read(dir.path().join("install-config.yaml")).unwrap();
        assert!(!groundwork_installer::redact(&stderr, &ic_bytes).contains(SENTINEL), "{path:?}");
        if path == ["pullSecret"] {
            assert!(stderr.contains(SENTINEL), "the stand-in quotes the value as the real installer does");
        }
    }
    // groundwork's own validate refuses the first two before any installer runs (tests/validate.rs,
    // tests/install_inputs.rs): network-overlap, host prefix.

    // No install-config at all: the real installer would ask on a terminal; without one it fails.
    let empty = tempfile::tempdir().unwrap();
    let out = run(empty.path(), "manifests");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("install-config.yaml not found"));

    // A manifest added between the two steps that is not YAML stops ignition-configs.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &reference_install_config());
    assert!(run(dir.path(), "manifests").status.success());
    std::fs::write(dir.path().join("openshift/99-bad.yaml"), "kind: [unclosed\n").unwrap();
    let out = run(dir.path(), "ignition-configs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to unmarshal openshift/99-bad.yaml"));
    assert!(!dir.path().join("bootstrap.ign").exists());
}
