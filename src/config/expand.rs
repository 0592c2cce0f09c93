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
    Ok(out)
}
