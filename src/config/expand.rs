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
    out.extend(groundwork_bind::resources(&env, x.today()).map_err(expand_err)?);
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
    let waiting = match (&env.files, env.http_host()) {
        (Some(files), Some((host, _))) => {
            g.served.iter().map(|f| groundwork_files::served_address(host, &files.docroot.join(&f.path))).collect()
        }
        _ => Vec::new(),
    };
    Ok(Some((g.resource.address, waiting)))
}

/// Seconds since 1970-01-01 (UTC).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
