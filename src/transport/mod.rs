//! Transports to infra hosts: one per host per run, created on first use and reused.

pub mod cluster;
pub mod ssh;
mod tcp;

use crate::error::{Error, Result};
use groundwork_sdk::local::LocalTransport;
use groundwork_sdk::model::{Environment, TransportKind};
use groundwork_sdk::{Context, Transport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Whether commands may run for `transport: local` hosts: set by whoever runs groundwork
/// (`GROUNDWORK_LOCAL_COMMANDS=1`), not by the inventory.
pub fn local_commands_allowed() -> bool {
    std::env::var_os("GROUNDWORK_LOCAL_COMMANDS").is_some_and(|v| v == "1")
}

/// A file's modification time and size (None: not there).
type FileStamp = Option<(std::time::SystemTime, u64)>;

/// Connections to the environment's hosts, opened lazily and shared by every read and write.
pub struct Hosts {
    env: Environment,
    env_dir: PathBuf,
    open: Mutex<HashMap<String, Arc<dyn Transport>>>,
    /// The cluster's API client, made on first use; None when no kubeconfig is configured.
    /// With the kubeconfig's modification time and size when it was made: a kubeconfig rewritten during
    /// the run (the installer generating again) gets a new client.
    cluster: Mutex<Option<(FileStamp, Option<kube::Client>)>>,
    /// Secret content of this run's environment: every context carries it, for apply.
    secrets: groundwork_sdk::Secrets,
}

impl Hosts {
    pub fn new(env: &Environment, env_dir: &Path, secrets: groundwork_sdk::Secrets) -> Self {
        Hosts {
            env: env.clone(),
            env_dir: env_dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            cluster: Mutex::new(None),
            secrets,
        }
    }

    /// The secret store the contexts carry.
    pub fn secrets(&self) -> &groundwork_sdk::Secrets {
        &self.secrets
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
                Arc::new(LocalTransport::new(host, self.local_root(host, root)?))
            }
            TransportKind::Ssh => Arc::new(ssh::SshTransport::new(host, self.ssh_options(h))),
        };
        open.insert(host.to_string(), t.clone());
        Ok(t)
    }

    fn ssh_options(&self, h: &groundwork_sdk::model::Host) -> ssh::SshOptions {
        let s = &self.env.ssh;
        let known_hosts = s
            .known_hosts
            .as_deref()
            .map(|p| self.expand(p))
            .unwrap_or_else(|| crate::config::load::home().join(".ssh/known_hosts"));
        ssh::SshOptions {
            address: h.address.to_string(),
            port: h.port.unwrap_or(s.port).get(),
            user: h.user.as_ref().unwrap_or(&s.user).to_string(),
            identity: s.identity.as_deref().map(|p| self.expand(p)),
            known_hosts,
            accept_new_host_keys: s.accept_new_host_keys,
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            command_timeout: Duration::from_secs(s.command_timeout_secs),
            max_channels: 8,
        }
    }

    /// `~/x` → $HOME/x; relative paths resolve from the environment directory.
    fn expand(&self, p: &str) -> PathBuf {
        crate::config::load::local_path(&self.env_dir, p)
    }

    /// Round trips made so far, per host that was contacted.
    pub async fn round_trips(&self) -> Vec<(String, usize)> {
        let open = self.open.lock().await;
        let mut v: Vec<(String, usize)> = open.iter().map(|(h, t)| (h.clone(), t.round_trips())).collect();
        v.sort();
        v
    }

    /// A stand-in's root: a directory inside the environment directory (resolved), so that an inventory
    /// can never make the machine that runs groundwork stand in for a host with its own `/etc`.
    fn local_root(&self, host: &str, root: &str) -> Result<PathBuf> {
        let refuse = |why: String| Error::Host { host: host.into(), message: format!("root {root:?} {why}") };
        let path = self.env_dir.join(root);
        if Path::new(root).components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(refuse("has a '..' component".into()));
        }
        let env = std::fs::canonicalize(&self.env_dir).map_err(|e| refuse(e.to_string()))?;
        let mut probe = path.clone();
        while !probe.exists() && probe.pop() {}
        let real = std::fs::canonicalize(&probe).map_err(|e| refuse(e.to_string()))?;
        if !real.starts_with(&env) || (real == env && probe == path) {
            return Err(refuse(format!(
                "is not a directory inside the environment directory {} (it resolves to {})",
                env.display(),
                real.display()
            )));
        }
        Ok(path)
    }

    /// Every infra host of the environment, by name.
    pub fn names(&self) -> Vec<String> {
        self.env.hosts.keys().map(|h| h.to_string()).collect()
    }

    /// The host whose ownership record also holds the cluster objects (the first host by name).
    pub fn record_host(&self) -> Option<String> {
        self.env.hosts.keys().next().map(|h| h.to_string())
    }

    /// The kubeconfig to use: `openshift.kubeconfig`, else the one the installer writes when groundwork
    /// runs it, else `KUBECONFIG` (only with an openshift section).
    pub fn kubeconfig(&self) -> Option<PathBuf> {
        let os = self.env.openshift.as_ref()?;
        match os.kubeconfig_path() {
            Some(p) => Some(self.expand(&p)),
            None => std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()).map(PathBuf::from),
        }
    }

    /// The cluster's API client, if the environment has one. A kubeconfig the installer has not
    /// written yet is no client for now, and is looked for again next time.
    pub async fn cluster(&self) -> Result<Option<kube::Client>> {
        let generated = self.env.openshift.as_ref().is_some_and(|o| o.kubeconfig.is_none() && o.installer.is_some());
        let path = self.kubeconfig();
        if generated && path.as_ref().is_some_and(|p| !p.exists()) {
            return Ok(None);
        }
        let stamp =
            path.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut cached = self.cluster.lock().await;
        if let Some((seen, client)) = cached.as_ref() {
            if *seen == stamp {
                return Ok(client.clone());
            }
        }
        let client = match &path {
            Some(p) => Some(cluster::client_for(p, Some(&self.env)).await?),
            None => None,
        };
        *cached = Some((stamp, client.clone()));
        Ok(client)
    }

    /// The machine that runs groundwork, as a host: a local transport rooted at the environment
    /// directory (the installer's directory is inside it). Only host-less resources get it.
    fn runner(&self) -> Arc<dyn Transport> {
        Arc::new(LocalTransport::new("the machine running groundwork", self.env_dir.clone()))
    }

    /// The context host-less resources get: the kube client as an extension, and the runner's
    /// transport (the installer runs there).
    pub async fn cluster_context(&self) -> Result<Context> {
        let mut cx = Context::default().with_secrets(self.secrets.clone());
        cx.transport = Some(self.runner());
        cx.run_commands = true;
        cx.env_dir = self.env_dir.clone();
        if let Some(client) = self.cluster().await? {
            cx.insert(client);
        }
        Ok(cx)
    }

    /// The context for a resource: its host's, or the cluster's for host-less resources.
    pub async fn context_for(&self, host: Option<&str>) -> Result<Context> {
        match host {
            Some(h) => self.context(h).await,
            None => self.cluster_context().await,
        }
    }

    /// The context a provider gets for resources on `host`.
    pub async fn context(&self, host: &str) -> Result<Context> {
        let t = self.transport(host).await?;
        Ok(self.context_with(host, t))
    }

    /// The same, over a given transport (a cached one during refresh).
    pub fn context_with(&self, host: &str, t: Arc<dyn Transport>) -> Context {
        // A local stand-in's commands would run on the machine running groundwork: only when its operator
        // allows it (GROUNDWORK_LOCAL_COMMANDS=1), never because an inventory says so.
        let run = self
            .env
            .hosts
            .get(host)
            .is_some_and(|h| h.run_commands && (h.transport != TransportKind::Local || local_commands_allowed()));
        Context::for_host(host, t, run, self.env_dir.clone()).with_secrets(self.secrets.clone())
    }
}
