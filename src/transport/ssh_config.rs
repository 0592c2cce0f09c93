//! OpenSSH client configuration (`~/.ssh/config`, `ssh.config`, `-F`): parsed by ssh2-config, applied
//! here to an inventory host. Precedence: what the inventory says about the host itself (`user`,
//! `port`), then the ssh config, then the environment's `ssh` section.

use groundwork_sdk::model::{Environment, Host};
use ssh2_config::{HostParams, ParseRule, SshConfig};
use std::path::{Path, PathBuf};

/// Where a host is reached and how, once the ssh config is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// What the user calls it (inventory name, ProxyJump word): for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identities: Vec<PathBuf>,
    pub identities_only: bool,
    pub known_hosts: Vec<PathBuf>,
    /// Jump hosts, first hop first (ProxyJump).
    pub jumps: Vec<Endpoint>,
}

impl Endpoint {
    /// Identifies one connection: hosts reached the same way share it.
    pub fn key(&self) -> String {
        let via: Vec<String> = self.jumps.iter().map(Endpoint::key).collect();
        format!(
            "{}@{}:{}{}",
            self.user,
            self.address,
            self.port,
            if via.is_empty() { String::new() } else { format!(" via {}", via.join(",")) }
        )
    }
}

/// The ssh config an environment names (`ssh.config`, relative to its directory; `none` kept as is).
pub fn configured_path(env: &Environment, env_dir: &Path) -> Option<PathBuf> {
    env.ssh.config.as_deref().map(|p| {
        if p == "none" {
            PathBuf::from(p)
        } else {
            crate::config::load::local_path(env_dir, p)
        }
    })
}

/// The parsed ssh config (none: no file), with its path for messages.
pub struct ClientConfig {
    parsed: Option<(PathBuf, SshConfig)>,
}

/// The global known_hosts files OpenSSH reads when the config names none.
const GLOBAL_KNOWN_HOSTS: [&str; 2] = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// How deep ProxyJump chains may nest (a jump host with its own ProxyJump), against loops.
const MAX_JUMP_DEPTH: usize = 8;

impl ClientConfig {
    /// `path`: `Some("none")` reads no file (as `ssh -F none`); `None` reads `~/.ssh/config` if it exists.
    pub fn load(path: Option<&Path>, home: &Path) -> Result<Self, String> {
        let (path, required) = match path {
            Some(p) if p == Path::new("none") => return Ok(ClientConfig { parsed: None }),
            Some(p) => (p.to_path_buf(), true),
            None => (home.join(".ssh/config"), false),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientConfig { parsed: None })
            }
            Err(e) => return Err(format!("ssh config {}: {e}", path.display())),
        };
        let parsed = SshConfig::default()
            .home_dir(home)
            .parse(&mut std::io::BufReader::new(file), ParseRule::ALLOW_UNSUPPORTED_FIELDS)
            .map_err(|e| format!("ssh config {}: {}", path.display(), parse_error(&e)))?;
        Ok(ClientConfig { parsed: Some((path, parsed)) })
    }

    /// Every IdentityFile the config names, for any host: credentials that are never inputs.
    pub fn identity_files(&self) -> Vec<PathBuf> {
        let Some((_, c)) = &self.parsed else { return Vec::new() };
        c.get_hosts().iter().flat_map(|h| h.params.identity_file.clone().unwrap_or_default()).collect()
    }

    /// What the config says for `name`; patterns are matched against the inventory name and then the
    /// address (a `Host 10.0.0.*` block applies to hosts declared by address).
    fn params(&self, names: &[&str]) -> Option<HostParams> {
        let (_, c) = self.parsed.as_ref()?;
        let mut p = c.query(names[0]);
        for n in &names[1..] {
            p.overwrite_if_none(&c.query(n));
        }
        Some(p)
    }

    /// An inventory host's endpoint.
    pub fn resolve(
        &self,
        env: &Environment,
        name: &str,
        host: &Host,
        expand: &dyn Fn(&str) -> PathBuf,
    ) -> Result<Endpoint, String> {
        let address = host.address.to_string();
        let mut e = self.endpoint(env, name, &[name, &address], Some(&address), expand, 0)?;
        if let Some(u) = &host.user {
            e.user = u.to_string();
        }
        if let Some(p) = host.port {
            e.port = p.get();
        }
        Ok(e)
    }

    fn endpoint(
        &self,
        env: &Environment,
        name: &str,
        names: &[&str],
        address: Option<&str>,
        expand: &dyn Fn(&str) -> PathBuf,
        depth: usize,
    ) -> Result<Endpoint, String> {
        let s = &env.ssh;
        let p = self.params(names);
        let unsupported = |field: &str| p.as_ref().and_then(|p| p.unsupported_fields.get(field).cloned());
        if unsupported("proxycommand").is_some_and(|v| v.first().is_some_and(|c| !c.eq_ignore_ascii_case("none"))) {
            return Err(format!(
                "{name}: the ssh config sets ProxyCommand; groundwork runs no local commands to connect: use ProxyJump"
            ));
        }
        let mut identities: Vec<PathBuf> = p.as_ref().and_then(|p| p.identity_file.clone()).unwrap_or_default();
        if let Some(id) = &s.identity {
            identities.push(expand(id));
        }
        let identities_only = s.identity.is_some()
            || unsupported("identitiesonly").is_some_and(|v| v.first().is_some_and(|x| x.eq_ignore_ascii_case("yes")));
        let mut known_hosts: Vec<PathBuf> = match &s.known_hosts {
            Some(list) => list.iter().map(|f| expand(f)).collect(),
            None => match unsupported("userknownhostsfile") {
                Some(files) => files.iter().map(|f| expand_tilde(f)).collect(),
                None => vec![crate::config::load::home().join(".ssh/known_hosts")],
            },
        };
        // The same order for the system's files: the environment, then the ssh config, then OpenSSH's default.
        match (&s.global_known_hosts, unsupported("globalknownhostsfile")) {
            (Some(list), _) => known_hosts.extend(list.iter().map(|f| expand(f))),
            (None, Some(files)) => known_hosts.extend(files.iter().map(|f| expand_tilde(f))),
            (None, None) => known_hosts.extend(GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from)),
        }
        let host_name =
            p.as_ref().and_then(|p| p.host_name.clone()).map(|h| h.replace("%h", names[0]).replace("%%", "%"));
        let mut e = Endpoint {
            name: name.to_string(),
            address: host_name.or(address.map(str::to_string)).unwrap_or_else(|| name.to_string()),
            port: p.as_ref().and_then(|p| p.port).unwrap_or(s.port.get()),
            user: p.as_ref().and_then(|p| p.user.clone()).unwrap_or_else(|| s.user.to_string()),
            identities,
            identities_only,
            known_hosts,
            jumps: Vec::new(),
        };
        let jumps = p.and_then(|p| p.proxy_jump).unwrap_or_default();
        if jumps.iter().any(|j| j.eq_ignore_ascii_case("none")) {
            return Ok(e);
        }
        for j in jumps {
            if depth >= MAX_JUMP_DEPTH {
                return Err(format!("{name}: ProxyJump chains nest deeper than {MAX_JUMP_DEPTH} (a loop?)"));
            }
            let (user, rest) = match j.trim_start_matches("ssh://").rsplit_once('@') {
                Some((u, r)) => (Some(u.to_string()), r.to_string()),
                None => (None, j.trim_start_matches("ssh://").to_string()),
            };
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                    let port = p.parse::<u16>().map_err(|_| format!("{name}: ProxyJump {j:?}: bad port {p:?}"))?;
                    (h.trim_start_matches('[').trim_end_matches(']').to_string(), Some(port))
                }
                _ => (rest.clone(), None),
            };
            // A jump named after an inventory host is reached at that host's address unless the config
            // says otherwise.
            let inv = env.hosts.iter().find(|(n, _)| n.as_str() == host).map(|(_, h)| h.address.to_string());
            let names: Vec<&str> = [host.as_str()].into_iter().chain(inv.as_deref()).collect();
            let mut hop = self.endpoint(env, &host, &names, inv.as_deref(), expand, depth + 1)?;
            if let Some(u) = user {
                hop.user = u;
            }
            if let Some(p) = port {
                hop.port = p;
            }
            // The hop's own jumps come before it.
            let mut chain = std::mem::take(&mut hop.jumps);
            chain.push(hop);
            e.jumps.extend(chain);
        }
        Ok(e)
    }
}

/// The parser's error without the file's words: the path may come from an inventory and name a file
/// that is no ssh config at all (a token), whose first word the parser would quote back.
fn parse_error(e: &ssh2_config::SshParserError) -> String {
    use ssh2_config::SshParserError as E;
    match e {
        E::UnknownField(..) | E::UnsupportedField(..) => {
            "a line starts with a word that is no ssh_config option (not repeated here: the file may not be an ssh config)".into()
        }
        E::HomeNotFound(_) => "a path needs a home directory, and there is none".into(),
        E::InvalidRemoteForward(_) => "a RemoteForward line does not parse".into(),
        other => other.to_string(),
    }
}

fn expand_tilde(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => crate::config::load::home().join(rest),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(yaml: &str) -> Environment {
        groundwork_sdk::yaml::from_str(yaml).unwrap()
    }

    const ENV: &str = "cluster: { name: c, base_domain: example.test }\n\
        networks: { machine: [10.0.0.0/24], cluster: { cidr: 10.128.0.0/14, host_prefix: 23 }, service: [172.30.0.0/16] }\n\
        hosts:\n  lb1: { address: 10.0.0.3 }\n  ns1: { address: 10.0.0.2, user: admin, port: 2200 }\n  bastion: { address: 10.0.0.10 }\n";

    fn resolve(config: &str, env_yaml: &str, host: &str) -> Result<Endpoint, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, config).unwrap();
        let c = ClientConfig::load(Some(&path), dir.path())?;
        let e = env(env_yaml);
        let h = e.hosts.iter().find(|(n, _)| n.as_str() == host).unwrap().1.clone();
        c.resolve(&e, host, &h, &|p| PathBuf::from(p))
    }

    #[test]
    fn aliases_users_ports_and_identities_apply_with_the_inventory_first() {
        let cfg =
            "Host lb1\n  HostName mgmt-lb1\n  User core\n  Port 2022\n  IdentityFile /keys/lb\n  IdentitiesOnly yes\n\
                   Host 10.0.0.*\n  User ops\n  Port 2222\n";
        let e = resolve(cfg, ENV, "lb1").unwrap();
        assert_eq!((e.address.as_str(), e.port, e.user.as_str()), ("mgmt-lb1", 2022, "core"));
        assert_eq!(e.identities, vec![PathBuf::from("/keys/lb")]);
        assert!(e.identities_only);
        // ns1's own user and port in the inventory beat the config's; the address block still applies.
        let e = resolve(cfg, ENV, "ns1").unwrap();
        assert_eq!((e.address.as_str(), e.port, e.user.as_str()), ("10.0.0.2", 2200, "admin"));
        assert!(!e.identities_only);
        // Neither: the environment's defaults.
        let e = resolve("Host other\n  User x\n", ENV, "bastion").unwrap();
        assert_eq!((e.address.as_str(), e.port, e.user.as_str()), ("10.0.0.10", 22, "root"));
        assert!(e
            .known_hosts
            .ends_with(&[PathBuf::from("/etc/ssh/ssh_known_hosts"), PathBuf::from("/etc/ssh/ssh_known_hosts2")]));
        // The environment's own lists win over the config's files, the config's over the defaults.
        let cfg = "Host *\n  UserKnownHostsFile /k/user\n  GlobalKnownHostsFile /k/global\n";
        let e = resolve(cfg, ENV, "bastion").unwrap();
        assert_eq!(e.known_hosts, vec![PathBuf::from("/k/user"), PathBuf::from("/k/global")]);
        let env = format!("{ENV}ssh: {{ known_hosts: mine, global_known_hosts: [] }}\n");
        let e = resolve(cfg, &env, "bastion").unwrap();
        assert_eq!(e.known_hosts, vec![PathBuf::from("mine")]);
    }

    #[test]
    fn proxy_jump_chains_resolve_each_hop() {
        let cfg = "Host lb1 ns1\n  ProxyJump bastion,ops@gw2:2201\nHost gw2\n  HostName 10.9.9.9\nHost bastion\n  User jump\n";
        let e = resolve(cfg, ENV, "lb1").unwrap();
        let hops: Vec<(String, u16, String)> =
            e.jumps.iter().map(|j| (j.address.clone(), j.port, j.user.clone())).collect();
        assert_eq!(hops, vec![("10.0.0.10".into(), 22, "jump".into()), ("10.9.9.9".into(), 2201, "ops".into())]);
        assert!(e.key().contains(" via "));
        // A jump host's own ProxyJump comes before it; `ProxyJump none` stops.
        let cfg = "Host lb1\n  ProxyJump bastion\nHost bastion\n  ProxyJump edge\nHost edge\n  HostName 10.1.1.1\n";
        let e = resolve(cfg, ENV, "lb1").unwrap();
        let hops: Vec<&str> = e.jumps.iter().map(|j| j.address.as_str()).collect();
        assert_eq!(hops, vec!["10.1.1.1", "10.0.0.10"]);
        let e = resolve("Host lb1\n  ProxyJump none\nHost *\n  ProxyJump bastion\n", ENV, "lb1").unwrap();
        assert!(e.jumps.is_empty());
    }

    #[test]
    fn loops_proxy_command_and_bad_files_are_errors() {
        let e =
            resolve("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\nHost lb1\n  ProxyJump a\n", ENV, "lb1").unwrap_err();
        assert!(e.contains("deeper"), "{e}");
        let e = resolve("Host lb1\n  ProxyCommand nc %h %p\n", ENV, "lb1").unwrap_err();
        assert!(e.contains("ProxyJump"), "{e}");
        let e = resolve("Host lb1\n  Port notaport\n", ENV, "lb1").unwrap_err();
        assert!(e.contains("ssh config"), "{e}");
        // A file that is no ssh config (a token an inventory points at): its words are not quoted back.
        let e = resolve("ghp_s3cr3tT0ken expires-2027\n", ENV, "lb1").unwrap_err();
        assert!(e.contains("no ssh_config option") && !e.contains("s3cr3t"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert!(ClientConfig::load(Some(&dir.path().join("missing")), dir.path()).is_err());
        assert!(ClientConfig::load(None, dir.path()).unwrap().parsed.is_none());
        assert!(ClientConfig::load(Some(Path::new("none")), dir.path()).unwrap().parsed.is_none());
    }
}
