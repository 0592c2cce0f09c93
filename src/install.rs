//! The installer's inputs from the inventory (docs/install-inputs.md): install-config.yaml rendered
//! from the cluster, networks and nodes, with the pull secret and SSH key read from their sources. The
//! pull secret is secret: it is read when install-config is written and checked, and nothing it is
//! part of is ever printed; errors about it never quote it.

use crate::config::load::local_path;
use crate::config::Loaded;
use groundwork_installer::{GenerationSpec, Observed, Verdict};
use groundwork_sdk::expansion::note_read;
use groundwork_sdk::model::{
    Environment, FileKind, InstallSettings, InstallerSettings, NetworkType, NodeRole, ServedFile, ValueSource,
};
use groundwork_sdk::value::RelPath;
use groundwork_sdk::{Expansion, Gate, Phase, Resource};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("openshift.install is not declared: install-config.yaml needs its pull_secret and ssh_key")]
    NotDeclared,
    #[error("openshift.install.{field}: {message}")]
    Input { field: &'static str, message: String },
    #[error("openshift.installer: {0}")]
    Installer(String),
}

/// The install inputs read from their sources. `pull_secret` never leaves memory except into the
/// install-config file itself.
pub struct Inputs {
    pub pull_secret: String,
    pub ssh_key: String,
    pub trust_bundle: Option<String>,
}

/// A value from its source: a local file (relative to the environment directory, or `~/…`) or an
/// environment variable of the run. Errors name the field, never the value.
pub fn read_source(dir: &Path, field: &'static str, source: &ValueSource) -> Result<String, InstallError> {
    let err = |message: String| InstallError::Input { field, message };
    match (&source.file, &source.env) {
        (Some(file), None) => {
            let path = local_path(dir, file);
            note_read(&path);
            std::fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))
        }
        (None, Some(var)) => std::env::var(var.as_str())
            .map_err(|_| err(format!("the environment variable {var} is not set (or not UTF-8)"))),
        _ => Err(err("give exactly one of `file` or `env`".into())),
    }
}

/// A pull secret is a JSON object with an `auths` object of registries, each with an `auth`. Nothing of
/// its content is ever quoted in a message.
pub fn check_pull_secret(text: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("is not JSON (line {}, column {})", e.line(), e.column()))?;
    let auths = v.get("auths").and_then(|a| a.as_object()).ok_or("has no \"auths\" object")?;
    if auths.is_empty() {
        return Err("its \"auths\" lists no registry".into());
    }
    for (registry, entry) in auths {
        if entry.get("auth").and_then(|a| a.as_str()).is_none_or(str::is_empty) {
            // The registry name is not secret; its credentials are.
            return Err(format!("the registry {registry:?} in \"auths\" has no \"auth\""));
        }
    }
    Ok(())
}

/// An OpenSSH public key line: a known type, then base64 whose first field names the same type.
pub fn check_ssh_key(text: &str) -> Result<(), String> {
    use base64::Engine;
    let line = text.trim();
    if line.contains('\n') {
        return Err("holds more than one line: give one public key".into());
    }
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("is not an OpenSSH public key line (TYPE BASE64 [COMMENT])".into());
    };
    const KINDS: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !KINDS.contains(&kind) {
        // The file may be something else entirely (a secret named by mistake): its words are never quoted.
        return Err(if kind.starts_with("-----BEGIN") {
            "is a private key: give the public key (the .pub file)".into()
        } else {
            "does not start with an OpenSSH public key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)".into()
        });
    }
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(blob).map_err(|_| "its key is not base64".to_string())?;
    let len = bytes.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(usize::MAX);
    if bytes.get(4..4usize.saturating_add(len)) != Some(kind.as_bytes()) {
        return Err(format!("its key does not hold a {kind} key"));
    }
    Ok(())
}

/// Whether the pull secret is named by an environment variable this run does not have: `validate` (run
/// in a merge request, without the pipeline's secrets) cannot check it then; rendering needs it.
pub fn pull_secret_unset(install: &InstallSettings) -> bool {
    install.pull_secret.file.is_none()
        && install.pull_secret.env.as_ref().is_some_and(|v| std::env::var_os(v.as_str()).is_none())
}

/// The pull secret, read and checked.
pub fn read_pull_secret(dir: &Path, install: &InstallSettings) -> Result<String, InstallError> {
    let text = read_source(dir, "pull_secret", &install.pull_secret)?;
    check_pull_secret(&text)
        .map_err(|m| InstallError::Input { field: "pull_secret", message: format!("the pull secret {m}") })?;
    Ok(text.trim().to_string())
}

/// The SSH public key, read and checked.
pub fn read_ssh_key(dir: &Path, install: &InstallSettings) -> Result<String, InstallError> {
    let text = read_source(dir, "ssh_key", &install.ssh_key)?;
    check_ssh_key(&text).map_err(|m| InstallError::Input { field: "ssh_key", message: format!("the key {m}") })?;
    Ok(text.trim().to_string())
}

/// The additional trust bundle, if declared: PEM certificates.
pub fn read_trust_bundle(dir: &Path, install: &InstallSettings) -> Result<Option<String>, InstallError> {
    let Some(f) = &install.additional_trust_bundle else { return Ok(None) };
    let path = local_path(dir, f);
    let err = |message: String| InstallError::Input { field: "additional_trust_bundle", message };
    note_read(&path);
    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(err(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(Some(text))
}

/// Read and check the install inputs of an environment.
pub fn read_inputs(loaded: &Loaded) -> Result<Inputs, InstallError> {
    let install = install_settings(&loaded.env)?;
    Ok(Inputs {
        pull_secret: read_pull_secret(&loaded.dir, install)?,
        ssh_key: read_ssh_key(&loaded.dir, install)?,
        trust_bundle: read_trust_bundle(&loaded.dir, install)?,
    })
}

pub fn install_settings(env: &Environment) -> Result<&InstallSettings, InstallError> {
    env.openshift.as_ref().and_then(|o| o.install.as_ref()).ok_or(InstallError::NotDeclared)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstallConfig<'a> {
    api_version: &'static str,
    base_domain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<Proxy>,
    compute: Vec<Pool>,
    control_plane: Pool,
    metadata: Metadata,
    networking: Networking,
    platform: Platform,
    fips: bool,
    pull_secret: &'a str,
    ssh_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_trust_bundle: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_content_sources: Vec<ContentSource>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pool {
    hyperthreading: &'static str,
    name: &'static str,
    replicas: usize,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    cluster_network: Vec<ClusterNet>,
    network_type: &'static str,
    service_network: Vec<String>,
    machine_network: Vec<Cidr>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterNet {
    cidr: String,
    host_prefix: u8,
}

#[derive(Serialize)]
struct Cidr {
    cidr: String,
}

#[derive(Serialize)]
struct Platform {
    none: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Proxy {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    https_proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_proxy: Option<String>,
}

#[derive(Serialize)]
struct ContentSource {
    mirrors: Vec<String>,
    source: String,
}

/// install-config.yaml for the environment, with `inputs` in place. UPI: compute replicas 0 (workers
/// join by their own ignition), control plane replicas the declared masters, `platform: none`.
pub fn render(env: &Environment, install: &InstallSettings, inputs: &Inputs) -> Result<String, InstallError> {
    let masters = env.nodes_with_role(NodeRole::Master).count();
    let n = &env.networks;
    let config = InstallConfig {
        api_version: "v1",
        base_domain: env.cluster.base_domain.to_string(),
        proxy: install.proxy.as_ref().map(|p| Proxy {
            http_proxy: p.http_proxy.as_ref().map(|u| u.to_string()),
            https_proxy: p.https_proxy.as_ref().map(|u| u.to_string()),
            no_proxy: (!p.no_proxy.is_empty())
                .then(|| p.no_proxy.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(",")),
        }),
        compute: vec![Pool { hyperthreading: "Enabled", name: "worker", replicas: 0 }],
        control_plane: Pool { hyperthreading: "Enabled", name: "master", replicas: masters },
        metadata: Metadata { name: env.cluster.name.to_string() },
        networking: Networking {
            cluster_network: vec![ClusterNet { cidr: n.cluster.cidr.to_string(), host_prefix: n.cluster.host_prefix }],
            network_type: match install.network_type {
                NetworkType::OVNKubernetes => "OVNKubernetes",
                NetworkType::OpenShiftSDN => "OpenShiftSDN",
            },
            service_network: n.service.iter().map(|s| s.to_string()).collect(),
            machine_network: n.machine.iter().map(|m| Cidr { cidr: m.to_string() }).collect(),
        },
        platform: Platform { none: Default::default() },
        fips: install.fips,
        pull_secret: &inputs.pull_secret,
        ssh_key: &inputs.ssh_key,
        additional_trust_bundle: inputs.trust_bundle.as_deref(),
        image_content_sources: install
            .image_content_sources
            .iter()
            .map(|c| ContentSource {
                mirrors: c.mirrors.iter().map(|m| m.to_string()).collect(),
                source: c.source.to_string(),
            })
            .collect(),
    };
    groundwork_sdk::yaml::to_string(&config)
        .map_err(|e| InstallError::Input { field: "install", message: e.to_string() })
}

/// The installer's run as the plan sees it: its resource, what to do about it, and the served files
/// it makes.
pub struct Generation {
    pub resource: Resource,
    pub verdict: Verdict,
    /// The three .ign files as served files (source: the installer's directory).
    pub served: Vec<ServedFile>,
}

/// The generation of an environment that names an installer, as of `x.now` in `phase`: its inputs
/// rendered and hashed (install-config by reference: it holds the pull secret), the installer binary
/// hashed, and the record of the last generation read from the installer's directory.
pub fn generation(
    dir: &Path,
    env: &Environment,
    x: &Expansion,
    phase: &Phase,
) -> Result<Option<Generation>, InstallError> {
    let Some(installer) = env.openshift.as_ref().and_then(|o| o.installer.as_ref()) else { return Ok(None) };
    let install = install_settings(env)?;
    let err = |field: &'static str| move |message: String| InstallError::Input { field, message };
    let binary = local_path(dir, &installer.path);
    note_read(&binary);
    let installer_sha256 = {
        let mut f = groundwork_sdk::expansion::open_regular(&binary)
            .map_err(|e| InstallError::Installer(format!("{}: {e}", binary.display())))?;
        groundwork_sdk::local::sha256_open_cached(&mut f, &binary)
            .map_err(|e| InstallError::Installer(format!("{}: {e}", binary.display())))?
            .0
    };
    // A merge request's pipeline has no pull secret: the plan says what it cannot tell.
    let install_config = if pull_secret_unset(install) {
        None
    } else {
        let inputs = Inputs {
            pull_secret: read_pull_secret(dir, install)?,
            ssh_key: read_ssh_key(dir, install)?,
            trust_bundle: read_trust_bundle(dir, install)?,
        };
        Some(render(env, install, &inputs)?)
    };
    let mut manifests = BTreeMap::new();
    if let Some(mdir) = &install.manifests {
        for path in x.inputs.list(mdir, &["yaml", "yml", "json"]).map_err(|e| err("manifests")(e.to_string()))? {
            let text = x.inputs.read_text(&path).map_err(|e| err("manifests")(e.to_string()))?;
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            manifests.insert(name, text.into_bytes());
        }
    }
    let masters_schedulable =
        env.nodes_with_role(NodeRole::Worker).next().is_none() && env.nodes_with_role(NodeRole::Infra).next().is_none();
    let inputs_sha256 = install_config.as_ref().map(|ic| {
        let mut h = Sha256::new();
        h.update(b"install-config.yaml\0");
        h.update(ic.as_bytes());
        for (name, bytes) in &manifests {
            h.update(format!("\0openshift/{name}\0").as_bytes());
            h.update(bytes);
        }
        h.update(format!("\0mastersSchedulable={masters_schedulable}").as_bytes());
        hex::encode(h.finalize())
    });
    let spec = GenerationSpec {
        dir: installer.dir.to_string(),
        installer: binary.display().to_string(),
        installer_sha256,
        inputs_sha256,
        install_config: install_config.map(|ic| x.secrets.keep(ic.into_bytes())),
        manifests: manifests.into_iter().map(|(n, b)| (n, x.secrets.keep(b))).collect(),
        masters_schedulable,
        generated_after: x.now.saturating_sub(groundwork_installer::CERT_WINDOW_SECS),
        frozen: phase.passed(Gate::BootstrapComplete),
    };
    let verdict = groundwork_installer::verdict(&spec, &observe(dir, &installer.dir), x.now);
    let address = groundwork_installer::address(&env.cluster.name);
    let resource = Resource::new(address, &spec).map_err(|e| InstallError::Installer(e.to_string()))?;
    let served = InstallerSettings::IGNITION
        .iter()
        .filter_map(|name| {
            Some(ServedFile {
                path: RelPath::try_from(*name).ok()?,
                source: Some(installer.under(name)),
                template: None,
                content: None,
                sha256: None,
                size: None,
                kind: FileKind::Ignition,
                secret: false,
                mode: None,
                owner: None,
                group: None,
            })
        })
        .collect();
    Ok(Some(Generation { resource, verdict, served }))
}

/// The record of the last generation and each output's digest, read from the installer's directory
/// (the same the provider reads through its transport at refresh). Regular files only.
fn observe(env_dir: &Path, dir: &RelPath) -> Observed {
    let base = env_dir.join(dir.as_str());
    let read = |rel: &str| -> Option<Vec<u8>> {
        note_read(&base.join(rel));
        let mut f = groundwork_sdk::expansion::open_regular(&base.join(rel)).ok()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).ok()?;
        Some(bytes)
    };
    Observed {
        record: read(groundwork_installer::RECORD).and_then(|b| serde_json::from_slice(&b).ok()),
        outputs: groundwork_installer::OUTPUTS
            .iter()
            .map(|o| (o.to_string(), read(o).map(|b| hex::encode(Sha256::digest(&b)))))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkVJIvZ6gDg3DlzUBt6FDmvrZf3T0DX6frAHL2dPcjO lab";

    #[test]
    fn pull_secrets_are_json_with_auths_and_never_quoted() {
        let sentinel = "GW-SENTINEL-PULL";
        assert!(check_pull_secret(&format!(r#"{{"auths":{{"quay.io":{{"auth":"{sentinel}"}}}}}}"#)).is_ok());
        for bad in [
            format!("{sentinel} not json"),
            format!(r#"{{"auth":"{sentinel}"}}"#),
            r#"{"auths":{}}"#.to_string(),
            format!(r#"{{"auths":{{"quay.io":{{"email":"{sentinel}"}}}}}}"#),
        ] {
            let e = check_pull_secret(&bad).unwrap_err();
            assert!(!e.contains(sentinel), "{e}");
        }
    }

    #[test]
    fn ssh_keys_are_public_keys_of_the_type_they_say() {
        assert!(check_ssh_key(ED25519).is_ok());
        assert!(check_ssh_key(&format!("{ED25519}\n")).is_ok());
        assert!(check_ssh_key("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
            .unwrap_err()
            .contains("holds more than one line"));
        assert!(check_ssh_key("-----BEGIN OPENSSH PRIVATE KEY----- abc").unwrap_err().contains("private key"));
        // The blob of an ed25519 key under an rsa label.
        let relabelled = ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(check_ssh_key(&relabelled).unwrap_err().contains("does not hold a ssh-rsa key"));
        assert!(check_ssh_key("ssh-ed25519 !!!").unwrap_err().contains("not base64"));
        assert!(check_ssh_key("ssh-dss AAAA").unwrap_err().contains("does not start with an OpenSSH public key type"));
        // A pull secret named as the SSH key by mistake: refused without a word of it.
        let e = check_ssh_key(r#"{"auths":{"quay.io":{"auth":"GW-SENTINEL"}}} x"#).unwrap_err();
        assert!(!e.contains("GW-SENTINEL"), "{e}");
    }
}
