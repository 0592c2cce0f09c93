//! Inventory expansion: the environment becomes the list of desired resources, each provider
//! deriving its own.

use super::{ConfigError, Loaded};
use groundwork_sdk::{Expansion, Phase, Resource, Secrets};

/// The resources of the environment at the start of an install (no gate passed), as of now. Secret
/// content goes to a store that is dropped: for offline commands (validate, graph).
pub fn resources(loaded: &Loaded) -> Result<Vec<Resource>, ConfigError> {
    resources_in(loaded, &Phase::default())
}

/// The same in `phase` (offline: the secret store is dropped).
pub fn resources_in(loaded: &Loaded, phase: &Phase) -> Result<Vec<Resource>, ConfigError> {
    let secrets = Secrets::default();
    resources_for(loaded, phase, &expansion(loaded, &secrets, now_unix()))
}

/// What providers expand with: the loaded environment's confined inputs, a secret store, the moment.
pub fn expansion<'a>(loaded: &'a Loaded, secrets: &'a Secrets, now: u64) -> Expansion<'a> {
    Expansion { inputs: &loaded.inputs, secrets, now }
}

/// The resources of the environment as it stands in `phase` (bootstrap gone from the LB once it has
/// completed, ingress on infra once the router runs there, ...).
pub fn resources_for(loaded: &Loaded, phase: &Phase, x: &Expansion) -> Result<Vec<Resource>, ConfigError> {
    let mut env = loaded.env.for_phase(phase);
    let expand_err = |e: groundwork_sdk::Error| ConfigError::Expand {
        dir: loaded.dir.display().to_string(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    // The installer's run comes first: the ignition it made is served only while it is current.
    let generation = generation(loaded, &env, x, phase)?;
    if let Some(g) = &generation {
        out.push(g.resource.clone());
        if let (true, Some(files)) = (g.verdict.serves_outputs(), env.files.as_mut()) {
            files.serve.extend(g.served.iter().cloned());
        }
    }
    let served_from = out.len();
    out.extend(groundwork_files::resources(&env, x).map_err(expand_err)?);
    if let Some(g) = &generation {
        let generated: Vec<String> = g.served.iter().filter_map(|f| f.source.clone()).collect();
        for r in &mut out[served_from..] {
            if r.spec["source"].as_str().is_some_and(|s| generated.iter().any(|g| g == s)) {
                r.depends_on.push(g.resource.address.clone());
            }
        }
    }
    let transfer = transfer_key(loaded, &env, x)?;
    out.extend(groundwork_bind::resources(&env, x.today(), transfer.as_ref()).map_err(expand_err)?);
    out.extend(groundwork_dhcpd::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_kea::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_tftp::resources(&env, x).map_err(expand_err)?);
    out.extend(groundwork_haproxy::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_keepalived::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_firewalld::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_selinux::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_cluster::resources(&env, x).map_err(expand_err)?);
    // Last: each unit starts after the resources that configure it.
    let units = groundwork_services::resources(&env, &out).map_err(expand_err)?;
    out.extend(units);
    // Cross-provider edges the providers cannot see on their own.
    groundwork_selinux::link_relabels(&mut out);
    Ok(out)
}

/// The installer's run, if the environment names an installer.
pub fn generation(
    loaded: &Loaded,
    env: &groundwork_sdk::model::Environment,
    x: &Expansion,
    phase: &Phase,
) -> Result<Option<crate::install::Generation>, ConfigError> {
    crate::install::generation(&loaded.dir, env, x, phase)
        .map_err(|e| ConfigError::Expand { dir: loaded.dir.display().to_string(), message: e.to_string() })
}

/// What waits for the installer: the served ignition files, while the ignition is to be regenerated
/// (their content is known once it has been).
pub fn pending_for(
    loaded: &Loaded,
    phase: &Phase,
    x: &Expansion,
) -> Result<Option<(groundwork_sdk::Address, Vec<groundwork_sdk::Address>)>, ConfigError> {
    let env = loaded.env.for_phase(phase);
    let Some(g) = generation(loaded, &env, x, phase)? else { return Ok(None) };
    if g.verdict.serves_outputs() {
        return Ok(None);
    }
    let waiting = match (env.served_dir(), env.http_host()) {
        (Some(dir), Some((host, _))) => {
            g.served.iter().map(|f| groundwork_files::served_address(host, &dir.join(&f.path))).collect()
        }
        _ => Vec::new(),
    };
    Ok(Some((g.resource.address, waiting)))
}

/// The TSIG key of zone transfers, when the environment has secondary name servers: its secret from
/// `dns.transfer_key`, else derived from the runner's SSH identity (HMAC-SHA256 of the cluster's name
/// under the private key's bytes), so that every run with that identity makes the same key and none
/// has to be stored. The key file goes to the run's secret store; the plan carries its digest.
fn transfer_key(
    loaded: &Loaded,
    env: &groundwork_sdk::model::Environment,
    x: &Expansion,
) -> Result<Option<groundwork_bind::TransferKey>, ConfigError> {
    use base64::Engine;
    if groundwork_bind::secondaries(env).is_empty() {
        return Ok(None);
    }
    let err = |message: String| ConfigError::Expand { dir: loaded.dir.display().to_string(), message };
    let secret = match &env.dns.transfer_key {
        Some(source) => {
            let text = crate::install::read_source(&loaded.dir, "transfer_key", source)
                .map_err(|e| err(e.to_string().replace("openshift.install.", "dns.")))?;
            let text = text.trim().to_string();
            let decoded = base64::engine::general_purpose::STANDARD.decode(&text).map_err(|_| {
                err("dns.transfer_key: the secret is not base64 (make one with `openssl rand -base64 32`)".into())
            })?;
            if decoded.len() < 16 {
                return Err(err("dns.transfer_key: the secret is shorter than 16 bytes".into()));
            }
            text
        }
        None => {
            let identity =
                env.ssh.identity.as_deref().map(|p| super::load::local_path(&loaded.dir, p)).ok_or_else(|| {
                    err("dns: secondary name servers need a zone transfer key: set dns.transfer_key, or ssh.identity \
                     (the key is derived from it)"
                        .into())
                })?;
            groundwork_sdk::expansion::note_read(&identity);
            let key = std::fs::read(&identity).map_err(|e| {
                err(format!(
                    "dns: the zone transfer key is derived from the SSH identity {}, which cannot be read ({e}); set \
                     dns.transfer_key",
                    identity.display()
                ))
            })?;
            let mac = hmac_sha256(&key, format!("groundwork dns transfer key {}", env.cluster.name).as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac)
        }
    };
    let name = groundwork_bind::transfer_key_name(env);
    let file = groundwork_bind::transfer_key_file(&name, &secret);
    Ok(Some(groundwork_bind::TransferKey { name, file: x.secrets.keep(file.into_bytes()) }))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Seconds since 1970-01-01 (UTC).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_sha256_is_rfc_4231s() {
        // RFC 4231, test case 2.
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block.
        let mac = super::hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
}
