//! Transports to infra hosts: one per host per run, created on first use and reused.

use crate::error::{Error, Result};
use groundwork_sdk::local::LocalTransport;
use groundwork_sdk::model::{Environment, TransportKind};
use groundwork_sdk::{Context, Transport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Connections to the environment's hosts, opened lazily and shared by every read and write.
pub struct Hosts {
    env: Environment,
    env_dir: PathBuf,
    open: Mutex<HashMap<String, Arc<dyn Transport>>>,
}

impl Hosts {
    pub fn new(env: &Environment, env_dir: &Path) -> Self {
        Hosts { env: env.clone(), env_dir: env_dir.to_path_buf(), open: Mutex::new(HashMap::new()) }
    }

    pub async fn transport(&self, host: &str) -> Result<Arc<dyn Transport>> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(host) {
            return Ok(t.clone());
        }
        let h = self
            .env
            .hosts
            .get(host)
            .ok_or_else(|| Error::Host { host: host.into(), message: "not declared under hosts".into() })?;
        let t: Arc<dyn Transport> = match h.transport {
            TransportKind::Local => {
                let root = h.root.as_deref().ok_or_else(|| Error::Host {
                    host: host.into(),
                    message: "transport: local needs root: DIR".into(),
                })?;
                Arc::new(LocalTransport::new(host, self.env_dir.join(root)))
            }
            TransportKind::Ssh => {
                return Err(Error::Host {
                    host: host.into(),
                    message: "SSH transport is not available in this build".into(),
                })
            }
        };
        open.insert(host.to_string(), t.clone());
        Ok(t)
    }

    /// The context a provider gets for resources on `host`.
    pub async fn context(&self, host: &str) -> Result<Context> {
        let t = self.transport(host).await?;
        let run = self.env.hosts.get(host).map(|h| h.run_commands).unwrap_or(false);
        Ok(Context::for_host(host, t, run, self.env_dir.clone()))
    }
}
