//! One module per command. Each is a thin use of the config and engine layers.

pub mod apply;
pub mod drift;
pub mod graph;
pub mod plan;
pub mod show;
pub mod unlock;
pub mod validate;
pub mod verify;

use crate::config::{self, Loaded};
use crate::engine::{make_plan, refresh::refresh, Plan, Registry};
use crate::error::Result;
use crate::transport::Hosts;
use groundwork_sdk::Resource;
use std::path::Path;

/// Exit codes shared by plan, apply and drift.
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;

/// A loaded, validated and expanded environment with its connections.
pub struct Workspace {
    pub loaded: Loaded,
    pub desired: Vec<Resource>,
    pub hosts: Hosts,
    pub registry: Registry,
}

impl Workspace {
    pub fn open(path: &Path) -> Result<Workspace> {
        let loaded = config::load_valid(path)?;
        let desired = config::expand::resources(&loaded)?;
        let hosts = Hosts::new(&loaded.env, &loaded.dir);
        Ok(Workspace { loaded, desired, hosts, registry: Registry::builtin() })
    }

    /// Every infra host of the environment: where its lock lives.
    pub fn host_names(&self) -> Vec<String> {
        self.loaded.env.hosts.keys().cloned().collect()
    }

    /// Take the environment's apply lock on every host.
    pub async fn lock(&self, operation: &str, wait: Option<std::time::Duration>) -> Result<crate::engine::lock::Held> {
        crate::engine::lock::acquire(&self.hosts, &self.host_names(), &self.loaded.name, operation, wait).await
    }

    /// Refresh and diff.
    pub async fn plan(&self) -> Result<Plan> {
        let refreshed = refresh(&self.registry, &self.hosts, &self.loaded.name, &self.desired).await?;
        make_plan(&self.registry, &self.loaded.name, &self.desired, &refreshed)
    }
}

/// Whether stdout is a terminal that wants colour.
pub fn stdout_color() -> bool {
    use std::io::IsTerminal;
    crate::render::use_color(std::io::stdout().is_terminal())
}
