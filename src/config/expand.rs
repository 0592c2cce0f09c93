//! Inventory expansion: the environment becomes the list of desired resources, each provider
//! deriving its own.

use super::{ConfigError, Loaded};
use groundwork_sdk::{Phase, Resource};

/// The resources of the environment at the start of an install (no gate passed).
pub fn resources(loaded: &Loaded) -> Result<Vec<Resource>, ConfigError> {
    resources_for(loaded, &Phase::default())
}

/// The resources of the environment as it stands in `phase` (bootstrap gone from the LB once it has
/// completed, ingress on infra once the router runs there, ...).
pub fn resources_for(loaded: &Loaded, phase: &Phase) -> Result<Vec<Resource>, ConfigError> {
    let env = loaded.env.for_phase(phase);
    let expand_err = |e: groundwork_sdk::Error| ConfigError::Expand {
        dir: loaded.dir.display().to_string(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    out.extend(groundwork_files::resources(&env, &loaded.dir).map_err(expand_err)?);
    out.extend(groundwork_bind::resources(&env, today()).map_err(expand_err)?);
    out.extend(groundwork_dhcpd::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_kea::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_haproxy::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_firewalld::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_selinux::resources(&env).map_err(expand_err)?);
    out.extend(groundwork_cluster::resources(&env, &loaded.dir).map_err(expand_err)?);
    // Cross-provider edges the providers cannot see on their own.
    groundwork_selinux::link_relabels(&mut out);
    Ok(out)
}

/// Days since 1970-01-01 (UTC): the date zone serials start from.
fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0)
}
