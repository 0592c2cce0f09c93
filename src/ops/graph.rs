use crate::engine::graph::Graph;
use crate::error::Result;
use std::path::Path;

/// The desired resources' dependency graph as DOT. Offline.
pub fn run(path: &Path) -> Result<String> {
    let loaded = crate::config::load_valid(path)?;
    let resources = crate::config::expand::resources(&loaded)?;
    let g = Graph::build(resources.iter().map(|r| (&r.address, r.depends_on.as_slice())), false)?;
    Ok(g.to_dot())
}
