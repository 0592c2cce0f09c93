//! Transports to infra hosts: one per host per run, created on first use and reused.

pub mod cluster;
pub mod known_hosts;
pub mod ssh;
pub mod ssh_config;
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

/// The kubeconfig files' modification times and sizes (None: no source).
type FileStamp = Option<Vec<Option<(std::time::SystemTime, u64)>>>;

/// Connections to the environment's hosts, opened lazily and shared by every read and write.
pub struct Hosts {
    env: Environment,
    env_dir: PathBuf,
    open: Mutex<HashMap<String, Arc<dyn Transport>>>,
    /// SSH connections by endpoint (user, address, port, jumps): a jump host shared by several hosts,
    /// or also declared as a host, is one connection.
    ssh: std::sync::Mutex<HashMap<String, Arc<ssh::SshTransport>>>,
    /// The OpenSSH client config, parsed on first use.
    ssh_config: std::sync::OnceLock<std::result::Result<ssh_config::ClientConfig, String>>,
    /// The cluster's API client, made on first use; None when no kubeconfig is configured.
    /// With the kubeconfig's modification time and size when it was made: a kubeconfig rewritten during
    /// the run (the installer generating again) gets a new client.
    cluster: Mutex<Option<(FileStamp, Option<kube::Client>)>>,
    /// Secret content of this run's environment: every context carries it, for apply.
    secrets: groundwork_sdk::Secrets,
    /// SSH transports keep what batches read (see [`Hosts::keep_reads`]).
    keep_reads: std::sync::atomic::AtomicBool,
}

impl Hosts {
    pub fn new(env: &Environment, env_dir: &Path, secrets: groundwork_sdk::Secrets) -> Self {
        Hosts {
            env: env.clone(),
            env_dir: env_dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            ssh: std::sync::Mutex::new(HashMap::new()),
            ssh_config: std::sync::OnceLock::new(),
            cluster: Mutex::new(None),
            secrets,
            keep_reads: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// For a process that plans again and again (`drift --every`): every SSH transport, open or still
    /// to be opened, keeps the files its batches read and is sent only those that changed since.
    pub fn keep_reads(&self) {
        self.keep_reads.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.ssh.lock().unwrap_or_else(|p| p.into_inner()).values() {
            t.keep_reads();
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
            TransportKind::Ssh => {
                let e = self.endpoint(host, h)?;
                self.ssh_transport(&e)
            }
        };
        open.insert(host.to_string(), t.clone());
        Ok(t)
    }

    /// Where and how an inventory host is reached, the ssh config applied.
    pub fn endpoint(&self, host: &str, h: &groundwork_sdk::model::Host) -> Result<ssh_config::Endpoint> {
        let err = |message: String| Error::Host { host: host.into(), message };
        let config = self
            .ssh_config
            .get_or_init(|| {
                let path = ssh_config::configured_path(&self.env, &self.env_dir);
                ssh_config::ClientConfig::load(path.as_deref(), &crate::config::load::home())
            })
            .as_ref()
            .map_err(|m| err(m.clone()))?;
        config.resolve(&self.env, host, h, &|p| self.expand(p)).map_err(err)
    }

    /// The connection to an endpoint, shared: its jump hosts first, each one connection.
    fn ssh_transport(&self, e: &ssh_config::Endpoint) -> Arc<ssh::SshTransport> {
        let mut via: Option<Arc<ssh::SshTransport>> = None;
        let mut hops = e.jumps.clone();
        let mut target = e.clone();
        target.jumps.clear();
        hops.push(target);
        let mut chain: Vec<ssh_config::Endpoint> = Vec::new();
        let mut map = self.ssh.lock().unwrap_or_else(|p| p.into_inner());
        for hop in hops {
            let mut keyed = hop.clone();
            keyed.jumps = chain.clone();
            let key = keyed.key();
            let t = map
                .entry(key)
                .or_insert_with(|| {
                    let t = ssh::SshTransport::new(hop.name.clone(), self.ssh_options(&hop, via.clone()));
                    if self.keep_reads.load(std::sync::atomic::Ordering::SeqCst) {
                        t.keep_reads();
                    }
                    Arc::new(t)
                })
                .clone();
            chain.push(hop);
            via = Some(t);
        }
        // The loop ran at least once (the target itself).
        via.unwrap_or_else(|| Arc::new(ssh::SshTransport::new(e.name.clone(), self.ssh_options(e, None))))
    }

    fn ssh_options(&self, e: &ssh_config::Endpoint, via: Option<Arc<ssh::SshTransport>>) -> ssh::SshOptions {
        let s = &self.env.ssh;
        ssh::SshOptions {
            address: e.address.clone(),
            port: e.port,
            user: e.user.clone(),
            identities: e.identities.clone(),
            identities_only: e.identities_only,
            known_hosts: e.known_hosts.clone(),
            accept_new_host_keys: s.accept_new_host_keys,
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            command_timeout: Duration::from_secs(s.command_timeout_secs),
            max_channels: 8,
            via,
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

    /// Whether other clusters' environments share these infra hosts (`cluster.shared_infra`).
    pub fn shared_infra(&self) -> bool {
        self.env.cluster.shared_infra
    }

    /// The host whose ownership record also holds the cluster objects (the first host by name).
    pub fn record_host(&self) -> Option<String> {
        self.env.hosts.keys().next().map(|h| h.to_string())
    }

    /// Where the cluster's credentials come from: `openshift.kubeconfig`, else the one the installer
    /// writes when groundwork runs it, else `KUBECONFIG` or the in-cluster service account (only with an
    /// openshift section).
    pub fn kube_source(&self) -> Option<cluster::KubeSource> {
        let os = self.env.openshift.as_ref()?;
        match os.kubeconfig_path() {
            Some(p) => Some(cluster::KubeSource::Files(vec![self.expand(&p)])),
            None => cluster::KubeSource::from_process_env(),
        }
    }

    /// The cluster's API client, if the environment has one. A kubeconfig the installer has not
    /// written yet is no client for now, and is looked for again next time.
    pub async fn cluster(&self) -> Result<Option<kube::Client>> {
        let generated = self.env.openshift.as_ref().is_some_and(|o| o.kubeconfig.is_none() && o.installer.is_some());
        let source = self.kube_source();
        if generated && matches!(&source, Some(cluster::KubeSource::Files(f)) if f.iter().all(|p| !p.exists())) {
            return Ok(None);
        }
        let stamp = source.as_ref().map(cluster::KubeSource::stamp);
        let mut cached = self.cluster.lock().await;
        if let Some((seen, client)) = cached.as_ref() {
            if *seen == stamp {
                return Ok(client.clone());
            }
        }
        let context = self.env.openshift.as_ref().and_then(|o| o.context.as_deref());
        let client = match &source {
            Some(s) => Some(cluster::client_for(s, context, Some(&self.env)).await?),
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
