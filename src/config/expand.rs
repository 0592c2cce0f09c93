//! Inventory expansion: the environment becomes the list of desired resources, each provider
//! deriving its own.

use super::{ConfigError, Loaded};
use groundwork_sdk::Resource;

pub fn resources(loaded: &Loaded) -> Result<Vec<Resource>, ConfigError> {
    let expand_err = |e: groundwork_sdk::Error| ConfigError::Expand {
        dir: loaded.dir.display().to_string(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    out.extend(groundwork_files::resources(&loaded.env, &loaded.dir).map_err(expand_err)?);
    out.extend(groundwork_bind::resources(&loaded.env, today()).map_err(expand_err)?);
    out.extend(groundwork_dhcpd::resources(&loaded.env).map_err(expand_err)?);
    out.extend(groundwork_haproxy::resources(&loaded.env).map_err(expand_err)?);
    out.extend(groundwork_firewalld::resources(&loaded.env).map_err(expand_err)?);
    out.extend(groundwork_selinux::resources(&loaded.env).map_err(expand_err)?);
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
