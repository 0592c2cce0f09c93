use groundwork_sdk::{Address, Provider};
use std::collections::HashMap;
use std::sync::Arc;

/// The providers this build knows, by name.
#[derive(Clone)]
pub struct Registry {
    providers: HashMap<&'static str, Arc<dyn Provider>>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry { providers: HashMap::new() }
    }

    /// Every provider of this build.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        r.add(Arc::new(groundwork_files::FilesProvider));
        r.add(Arc::new(groundwork_bind::BindProvider));
        r.add(Arc::new(groundwork_dhcpd::DhcpdProvider::default()));
        r.add(Arc::new(groundwork_kea::provider()));
        r.add(Arc::new(groundwork_tftp::TftpProvider));
        r.add(Arc::new(groundwork_services::ServicesProvider));
        r.add(Arc::new(groundwork_installer::InstallerProvider));
        r.add(Arc::new(groundwork_haproxy::provider()));
        r.add(Arc::new(groundwork_keepalived::provider()));
        r.add(Arc::new(groundwork_firewalld::FirewalldProvider));
        r.add(Arc::new(groundwork_selinux::SelinuxProvider));
        r.add(Arc::new(groundwork_cluster::ClusterProvider));
        r
    }

    pub fn add(&mut self, p: Arc<dyn Provider>) {
        self.providers.insert(p.name(), p);
    }

    /// Provider names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.providers.keys().copied().collect();
        v.sort();
        v
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// The provider of `address`, or the error that names both.
    pub fn for_address(&self, address: &Address) -> Result<&Arc<dyn Provider>, groundwork_sdk::Error> {
        self.get(&address.provider).ok_or_else(|| groundwork_sdk::Error::NoProvider {
            address: address.to_string(),
            provider: address.provider.clone(),
        })
    }
}
