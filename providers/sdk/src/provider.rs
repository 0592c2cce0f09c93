//! The provider contract: `read` (I/O, batched per host), `diff` (pure), `apply` (I/O).

use crate::{Address, Change, Error, Resource, Transport};
use async_trait::async_trait;
use serde_json::Value;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a provider gets to do its I/O: the host's transport (for host resources), whether service
/// commands may run there, and typed extensions (the kube client for the cluster provider).
#[derive(Clone, Default)]
pub struct Context {
    pub host: Option<String>,
    pub transport: Option<Arc<dyn Transport>>,
    /// False on local stand-ins: checkers and reloads are skipped.
    pub run_commands: bool,
    /// Where relative sources (files to upload) are resolved.
    pub env_dir: PathBuf,
    /// Secret content of this run's environment, by digest (specs carry only references).
    pub secrets: crate::Secrets,
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Context {
    pub fn for_host(host: &str, transport: Arc<dyn Transport>, run_commands: bool, env_dir: PathBuf) -> Self {
        Context {
            host: Some(host.to_string()),
            transport: Some(transport),
            run_commands,
            env_dir,
            secrets: crate::Secrets::default(),
            extensions: HashMap::new(),
        }
    }

    pub fn with_secrets(mut self, secrets: crate::Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// The content behind a reference in a change: refused if this run's environment does not produce
    /// it (the change was planned from other content).
    pub fn secret(&self, address: &Address, r: &crate::SecretRef) -> Result<Arc<Vec<u8>>, Error> {
        self.secrets.get(r).ok_or_else(|| Error::SecretChanged { address: address.to_string(), digest: r.short() })
    }

    /// A spec with its secret references replaced by their content, for the moment it is sent.
    pub fn reveal(&self, address: &Address, spec: &Value) -> Result<Value, Error> {
        crate::secret::reveal(spec, &self.secrets)
            .map_err(|r| Error::SecretChanged { address: address.to_string(), digest: r.short() })
    }

    /// For resources that exist only through a host's own tools (firewalld, SELinux): refused on a host
    /// that runs no commands, such as a local stand-in, whose tools would be the runner's own.
    pub fn commands(&self, address: &Address, tool: &str) -> Result<&dyn Transport, Error> {
        if !self.run_commands {
            return Err(Error::failed(
                address,
                format!(
                    "{tool} is managed with commands on the host, and {} runs none (a local stand-in: its commands \
                     would run on the machine running groundwork)",
                    self.host.as_deref().unwrap_or("this host")
                ),
            ));
        }
        self.transport(address)
    }

    pub fn transport(&self, address: &Address) -> Result<&dyn Transport, Error> {
        self.transport.as_deref().ok_or_else(|| Error::failed(address, "no transport for this resource's host"))
    }

    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.extensions.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extensions.get(&TypeId::of::<T>()).and_then(|v| v.downcast_ref::<T>())
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Read the actual state of resources that share one host (or the cluster), in as few round
    /// trips as possible. Returns one entry per resource, `None` where it does not exist.
    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error>;

    /// The files `read` will ask for (contents and digests), fetched ahead for the whole host.
    fn prefetch(&self, _resources: &[&Resource]) -> crate::transport::Prefetch {
        crate::transport::Prefetch::default()
    }

    /// Decide what to do. Pure: no I/O. `desired` is the spec (None: the resource is to go).
    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error>;

    /// Carry out one planned change.
    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error>;

    /// The spec to apply for a resource that other environments sharing the host own too (their
    /// recorded parts in `others`; `own` is None when this environment lets go of it). By default a
    /// file of parts is merged part by part and anything else must be the same in every owner
    /// ([`crate::joint::merge`]).
    fn merge(
        &self,
        address: &Address,
        own: Option<crate::joint::Owner<'_>>,
        others: &[crate::joint::Owner<'_>],
    ) -> Result<Value, Error> {
        crate::joint::merge(address, own, others)
    }

    /// Whether this change may run beside others of this provider on its host. No by default: a
    /// daemon's files, checks and reloads stay in order. A change that only writes or removes its own
    /// file, atomically, with nothing to check or reload (a served file) may say yes.
    fn runs_beside_others(&self, _change: &Change) -> bool {
        false
    }

    /// Whether this change's activation (its daemon's reload) may wait for the provider's other changes
    /// on the host, so that one reload covers them all: named reloads once for five zones and its
    /// configuration, not six times. When yes, the engine calls [`Provider::write`] for the change, and
    /// [`Provider::activate`] once for the changes written together. No by default: `apply` does all.
    fn activation_deferred(&self, _change: &Change) -> bool {
        false
    }

    /// A change whose activation waits: everything `apply` does but the activation (written, checked).
    /// Called only for a change [`Provider::activation_deferred`] said yes to.
    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        self.apply(cx, change).await
    }

    /// Activate changes written together (in the order written). If the activation fails, what they
    /// replaced is put back and activated again, and the error names them all.
    async fn activate(&self, _cx: &Context, _changes: &[&Change]) -> Result<(), Error> {
        Ok(())
    }
}
