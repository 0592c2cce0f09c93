use crate::config;
use crate::error::Result;
use std::path::Path;

/// Offline: load, validate, expand. Returns the summary line.
pub fn run(path: &Path) -> Result<String> {
    let loaded = config::load_valid(path)?;
    let resources = config::expand::resources(&loaded)?;
    Ok(format!(
        "Environment {} is valid: {} nodes, {} infra hosts, {} resources.",
        loaded.name,
        loaded.env.nodes.len(),
        loaded.env.hosts.len(),
        resources.len()
    ))
}
