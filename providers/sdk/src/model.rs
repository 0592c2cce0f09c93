//! The environment model: one inventory (cluster, networks, infra hosts, nodes) plus the settings each
//! provider derives its resources from. Field names are documented in docs/environment.md.
//!
//! These are plain data types; loading (files, locations, validation) lives in the `groundwork` crate.

pub use crate::value::DnsRecord;
use crate::value::{
    Argv, DeviceName, DomainName, EnvVarName, FcontextPattern, FileMode, FirewalldName, HaproxyName, ImageRepo,
    Interface, K8sName, KernelArgs, Label, LeaseTime, MacAddr, NamePattern, NicName, NoProxyEntry, PackageName, Port,
    PortProto, PosixName, ProxyUrl, Quantity, RelPath, RemotePath, SelinuxName, Sha256Hex, Text, Ttl, UnitName,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub cluster: Cluster,
    pub networks: Networks,
    #[serde(default)]
    pub hosts: BTreeMap<Label, Host>,
    #[serde(default)]
    pub ssh: SshSettings,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub dns: DnsSettings,
    #[serde(default)]
    pub dhcp: Option<DhcpSettings>,
    #[serde(default)]
    pub loadbalancer: LoadBalancerSettings,
    #[serde(default)]
    pub files: Option<FilesSettings>,
    #[serde(default)]
    pub tftp: TftpSettings,
    #[serde(default)]
    pub firewall: Option<FirewallSettings>,
    #[serde(default)]
    pub selinux: Option<SelinuxSettings>,
    #[serde(default)]
    pub openshift: Option<OpenShiftSettings>,
    #[serde(default)]
    pub services: ServicesSettings,
    /// The install phase this environment is expanded for (not read from files).
    #[serde(skip)]
    pub phase: crate::Phase,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: Label,
    pub base_domain: DomainName,
    /// Three schedulable masters and no workers (OpenShift's compact cluster).
    #[serde(default)]
    pub compact: bool,
    /// Other clusters' environments use the same infra hosts (docs/multi-cluster.md): the files they
    /// share are owned jointly, part by part, and this cluster's own parts are named after it.
    #[serde(default)]
    pub shared_infra: bool,
}

impl Cluster {
    /// `<name>.<base_domain>`: every node FQDN sits under it.
    pub fn domain(&self) -> String {
        format!("{}.{}", self.name, self.base_domain)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Networks {
    pub machine: Vec<IpNet>,
    pub cluster: ClusterNetwork,
    pub service: Vec<IpNet>,
    /// Other ranges in use nearby (office LAN, ...), declared only so overlaps are caught.
    #[serde(default)]
    pub other: BTreeMap<String, IpNet>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterNetwork {
    pub cidr: IpNet,
    pub host_prefix: u8,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    Dns,
    Dhcp,
    Lb,
    Http,
    Tftp,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Ssh,
    /// A directory on the machine running groundwork stands in for the host's `/`.
    Local,
}

/// An infra host groundwork manages over SSH (or a local directory standing in for one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub address: IpAddr,
    #[serde(default)]
    pub roles: Vec<HostRole>,
    #[serde(default)]
    pub vips: Option<Vips>,
    #[serde(default)]
    pub port: Option<Port>,
    #[serde(default)]
    pub user: Option<PosixName>,
    #[serde(default)]
    pub transport: TransportKind,
    /// For `transport: local`: the directory that stands for `/` (relative to the environment dir).
    #[serde(default)]
    pub root: Option<String>,
    /// Whether service commands (checkers, reloads) run on this host. Local stand-ins usually say no.
    #[serde(default = "yes")]
    pub run_commands: bool,
    /// The host's operating system family: the names of its services and packages.
    #[serde(default)]
    pub os: OsFamily,
}

/// An infra host's operating system family.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// RHEL and its rebuilds (rpm, dnf): the reference install's.
    #[default]
    Rhel,
    /// Debian and Ubuntu (dpkg, apt).
    Debian,
}

impl OsFamily {
    /// The command that installs `package` on a host of this family.
    pub fn install_command(self, package: &str) -> String {
        match self {
            OsFamily::Rhel => format!("dnf install -y {package}"),
            OsFamily::Debian => format!("apt-get install -y {package}"),
        }
    }
}

/// A daemon an infra host's roles need.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    /// BIND (role dns).
    Named,
    /// ISC dhcpd (role dhcp, backend dhcpd).
    Dhcpd,
    /// Kea's DHCPv4 server (role dhcp, backend kea).
    Kea,
    /// HAProxy (role lb).
    Haproxy,
    /// The web server of the served files (role http): nginx.
    Web,
    /// Apache httpd as the web server of the served files (`files.web.server: httpd`).
    Httpd,
    /// The TFTP server (role tftp).
    Tftp,
    /// firewalld (hosts whose firewall groundwork manages).
    Firewalld,
    /// keepalived: VRRP for the VIPs (role lb, when the load balancers share them).
    Keepalived,
}

impl Daemon {
    /// Its systemd unit and its package on a host of `os` (the distributions' own names).
    pub fn names(self, os: OsFamily) -> (&'static str, &'static str) {
        use OsFamily::*;
        match (self, os) {
            (Daemon::Named, Rhel) => ("named", "bind"),
            (Daemon::Named, Debian) => ("named", "bind9"),
            (Daemon::Dhcpd, Rhel) => ("dhcpd", "dhcp-server"),
            (Daemon::Dhcpd, Debian) => ("isc-dhcp-server", "isc-dhcp-server"),
            (Daemon::Kea, Rhel) => ("kea-dhcp4", "kea"),
            (Daemon::Kea, Debian) => ("kea-dhcp4-server", "kea-dhcp4-server"),
            (Daemon::Haproxy, _) => ("haproxy", "haproxy"),
            (Daemon::Web, _) => ("nginx", "nginx"),
            (Daemon::Httpd, Rhel) => ("httpd", "httpd"),
            (Daemon::Httpd, Debian) => ("apache2", "apache2"),
            // RHEL's tftp-server is socket-activated.
            (Daemon::Tftp, Rhel) => ("tftp.socket", "tftp-server"),
            (Daemon::Tftp, Debian) => ("tftpd-hpa", "tftpd-hpa"),
            (Daemon::Firewalld, _) => ("firewalld", "firewalld"),
            (Daemon::Keepalived, _) => ("keepalived", "keepalived"),
        }
    }
}

/// The daemons of the infra hosts: each one its roles need is installed, enabled and running.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServicesSettings {
    /// Keep every daemon the hosts' roles need enabled and running (default: yes). With `false`,
    /// groundwork leaves enablement to the site.
    #[serde(default = "yes")]
    pub manage: bool,
    /// Unit names where the site's differ from the OS family's, by daemon (`tftp: tftp.service`).
    #[serde(default)]
    pub units: BTreeMap<Daemon, UnitName>,
    /// Package names where the site's differ from the OS family's, by daemon.
    #[serde(default)]
    pub packages: BTreeMap<Daemon, PackageName>,
}

impl Default for ServicesSettings {
    fn default() -> Self {
        ServicesSettings { manage: true, units: BTreeMap::new(), packages: BTreeMap::new() }
    }
}

fn yes() -> bool {
    true
}

impl Host {
    pub fn has_role(&self, role: HostRole) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vips {
    /// api-int: what the nodes use.
    pub internal: IpAddr,
    /// api and *.apps: what users use.
    pub external: IpAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    #[serde(default = "root_user")]
    pub user: PosixName,
    #[serde(default)]
    pub identity: Option<String>,
    /// The user's known_hosts files (one path or a list; a new key is recorded in the first).
    /// Default: the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts.
    #[serde(default, deserialize_with = "one_or_many")]
    pub known_hosts: Option<Vec<String>>,
    /// The system's known_hosts files. Default: the ssh config's GlobalKnownHostsFile, else
    /// /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2.
    #[serde(default, deserialize_with = "one_or_many")]
    pub global_known_hosts: Option<Vec<String>>,
    /// The OpenSSH client configuration to read: a path, or `none`. Default: ~/.ssh/config if it exists.
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default = "ssh_port")]
    pub port: Port,
    /// Trust an unknown host key on first use (a changed key is always refused).
    #[serde(default)]
    pub accept_new_host_keys: bool,
    #[serde(default = "connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "command_timeout")]
    pub command_timeout_secs: u64,
}

/// `x` or `[x, y]`, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

fn root_user() -> PosixName {
    PosixName::known("root")
}
fn ssh_port() -> Port {
    Port::known(22)
}
fn connect_timeout() -> u64 {
    10
}
fn command_timeout() -> u64 {
    120
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            user: root_user(),
            identity: None,
            known_hosts: None,
            global_known_hosts: None,
            config: None,
            port: ssh_port(),
            accept_new_host_keys: false,
            connect_timeout_secs: connect_timeout(),
            command_timeout_secs: command_timeout(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Bootstrap,
    Master,
    Worker,
    Infra,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Bootstrap => "bootstrap",
            NodeRole::Master => "master",
            NodeRole::Worker => "worker",
            NodeRole::Infra => "infra",
        }
    }

    /// The ignition file a node of this role boots with (infra nodes are workers to the installer).
    pub fn ignition(self) -> &'static str {
        match self {
            NodeRole::Bootstrap => "bootstrap.ign",
            NodeRole::Master => "master.ign",
            NodeRole::Worker | NodeRole::Infra => "worker.ign",
        }
    }
}

/// A cluster node: gets an A and a PTR record, a DHCP pin, and LB backends by role.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: Label,
    pub role: NodeRole,
    pub mac: MacAddr,
    pub ip: IpAddr,
    /// The disk RHCOS installs to (default: `files.boot.install_dev`).
    #[serde(default)]
    pub install_dev: Option<DeviceName>,
    /// Kernel arguments for this node, after `files.boot.extra_args`.
    #[serde(default)]
    pub kernel_args: Option<KernelArgs>,
    /// The NIC it is addressed on (`ip=NIC:dhcp`, or the device of its static address).
    #[serde(default)]
    pub nic: Option<NicName>,
    /// A static address instead of DHCP once installed (the DHCP pin still serves the PXE boot).
    #[serde(default, rename = "static")]
    pub static_ip: Option<StaticAddressing>,
}

/// A node's static addressing: its `ip` with this gateway and prefix, and these name servers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticAddressing {
    pub gateway: IpAddr,
    /// Prefix length (default: the machine network's that holds the node).
    #[serde(default)]
    pub prefix: Option<u8>,
    /// Default: the dns hosts' addresses.
    #[serde(default)]
    pub nameservers: Vec<IpAddr>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// Infra host that holds the primary name server's name (default: the first host with role dns).
    #[serde(default)]
    pub nameserver: Option<Label>,
    #[serde(default)]
    pub ttl: Option<Ttl>,
    /// Extra records beside the derived ones.
    #[serde(default)]
    pub records: Vec<DnsRecord>,
    /// Records owned by someone else: names (globs with `*`, absolute) whose records found in a served
    /// zone are kept as they are, never planned away.
    #[serde(default)]
    pub ignore_records: Vec<NamePattern>,
    /// Forward zone (default: the cluster domain `<name>.<base_domain>`; the reference install uses
    /// the base domain).
    #[serde(default)]
    pub zone: Option<DomainName>,
    /// Where zone files go (RHEL: /var/named).
    #[serde(default = "zone_dir")]
    pub zone_dir: RemotePath,
    /// The named.conf that gets one include line for groundwork's zone stanzas; `null` when the site
    /// includes the stanza file itself.
    #[serde(default = "named_conf")]
    pub named_conf: Option<RemotePath>,
    /// The file groundwork owns with its zone stanzas.
    #[serde(default = "zones_conf")]
    pub zones_conf: RemotePath,
    /// Command that makes named load new files.
    #[serde(default = "named_reload")]
    pub reload: Argv,
    /// rndc as it must be called on the dns hosts (after a reload, each zone is asked whether it loaded:
    /// `rndc reload` succeeds even when a zone fails to load).
    #[serde(default = "rndc")]
    pub rndc: Argv,
    /// named's options, owned by groundwork in a file of its own included inside named.conf's options
    /// block; `null` leaves them to the site.
    #[serde(default = "named_options")]
    pub options: Option<NamedOptions>,
    /// With more than one dns host, the others are secondaries of `nameserver`, fed by zone transfers
    /// signed with this TSIG key (hmac-sha256). Its secret: a file or the run's environment (base64);
    /// default: derived from the runner's SSH identity, so every run with that identity makes the same.
    #[serde(default)]
    pub transfer_key: Option<ValueSource>,
    /// Where the TSIG key file goes on every dns host (mode 0640, group named/bind).
    #[serde(default = "transfer_key_path")]
    pub transfer_key_path: RemotePath,
}

fn transfer_key_path() -> RemotePath {
    RemotePath::known("/etc/named/groundwork.transfer.key")
}

/// named's options: who it listens to and answers, and where it sends what it does not know.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamedOptions {
    /// The file groundwork owns with the options.
    #[serde(default = "options_conf")]
    pub path: RemotePath,
    /// Addresses named listens on, besides loopback (default: the dns host's own address).
    #[serde(default)]
    pub listen_on: Vec<IpAddr>,
    /// Networks that may query, besides localhost (default: the machine networks).
    #[serde(default)]
    pub allow_query: Vec<IpNet>,
    /// Upstream resolvers (the site's intranet DNS) for names outside the served zones.
    #[serde(default)]
    pub forwarders: Vec<IpAddr>,
    /// Recursion for the allowed clients (default: on when forwarders are declared).
    #[serde(default)]
    pub recursion: Option<bool>,
    /// DNSSEC validation of answers (default `no`: an intranet's names are not signed under the root).
    #[serde(default)]
    pub dnssec_validation: DnssecValidation,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnssecValidation {
    Auto,
    Yes,
    #[default]
    No,
}

impl Default for NamedOptions {
    fn default() -> Self {
        NamedOptions {
            path: options_conf(),
            listen_on: Vec::new(),
            allow_query: Vec::new(),
            forwarders: Vec::new(),
            recursion: None,
            dnssec_validation: DnssecValidation::No,
        }
    }
}

fn options_conf() -> RemotePath {
    RemotePath::known("/etc/named/groundwork.options.conf")
}

fn named_options() -> Option<NamedOptions> {
    Some(NamedOptions::default())
}

fn rndc() -> Argv {
    Argv::of(&["rndc"])
}

fn zone_dir() -> RemotePath {
    RemotePath::known("/var/named")
}
fn named_conf() -> Option<RemotePath> {
    Some(RemotePath::known("/etc/named.conf"))
}
fn zones_conf() -> RemotePath {
    RemotePath::known("/etc/named/groundwork.zones.conf")
}
fn named_reload() -> Argv {
    Argv::of(&["systemctl", "reload-or-restart", "named"])
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            nameserver: None,
            ttl: None,
            records: Vec::new(),
            ignore_records: Vec::new(),
            zone: None,
            zone_dir: zone_dir(),
            named_conf: named_conf(),
            zones_conf: zones_conf(),
            reload: named_reload(),
            rndc: rndc(),
            options: named_options(),
            transfer_key: None,
            transfer_key_path: transfer_key_path(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DhcpSettings {
    pub subnet: IpNet,
    #[serde(default)]
    pub routers: Vec<IpAddr>,
    /// Default: the addresses of the dns hosts.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    #[serde(default)]
    pub pxe: Option<PxeSettings>,
    /// dhcpd.conf path (RHEL and Debian: /etc/dhcp/dhcpd.conf).
    #[serde(default = "dhcpd_conf")]
    pub config: RemotePath,
    /// Command that makes dhcpd load a new file (dhcpd has no reload).
    #[serde(default = "dhcpd_restart")]
    pub restart: Argv,
    #[serde(default = "lease_time")]
    pub default_lease_time: LeaseTime,
    /// The DHCP server of every dhcp host: `dhcpd` (ISC dhcpd) or `kea` (kea-dhcp4).
    #[serde(default)]
    pub backend: DhcpBackend,
    /// Per dhcp host, a backend other than `backend` (e.g. one host moved to Kea first).
    #[serde(default)]
    pub backends: BTreeMap<Label, DhcpBackend>,
    #[serde(default)]
    pub kea: KeaSettings,
}

impl DhcpSettings {
    pub fn backend_of(&self, host: &str) -> DhcpBackend {
        self.backends.get(host).copied().unwrap_or(self.backend)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DhcpBackend {
    #[default]
    Dhcpd,
    Kea,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeaSettings {
    /// kea-dhcp4's configuration file (RHEL 9 and Debian: /etc/kea/kea-dhcp4.conf).
    #[serde(default = "kea_conf")]
    pub config: RemotePath,
    /// Command that makes kea-dhcp4 load a new file.
    #[serde(default = "kea_restart")]
    pub restart: Argv,
    /// `interfaces-config.interfaces`: the interfaces (or `IFACE/ADDRESS`) kea-dhcp4 listens on.
    #[serde(default = "all_interfaces")]
    pub interfaces: Vec<Interface>,
}

impl Default for KeaSettings {
    fn default() -> Self {
        KeaSettings { config: kea_conf(), restart: kea_restart(), interfaces: all_interfaces() }
    }
}

fn kea_conf() -> RemotePath {
    RemotePath::known("/etc/kea/kea-dhcp4.conf")
}
fn kea_restart() -> Argv {
    Argv::of(&["systemctl", "restart", "kea-dhcp4"])
}
fn all_interfaces() -> Vec<Interface> {
    vec![Interface::known("*")]
}

fn dhcpd_conf() -> RemotePath {
    RemotePath::known("/etc/dhcp/dhcpd.conf")
}
fn dhcpd_restart() -> Argv {
    Argv::of(&["systemctl", "restart", "dhcpd"])
}
fn lease_time() -> LeaseTime {
    LeaseTime::known(600)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PxeSettings {
    /// Infra host serving TFTP (first boot) and HTTP (the iPXE script).
    pub tftp_host: Label,
    /// Served file that DHCP hands to iPXE on the second boot.
    pub script: RelPath,
    #[serde(default = "efi_file")]
    pub efi_file: RelPath,
    #[serde(default = "bios_file")]
    pub bios_file: RelPath,
}

fn efi_file() -> RelPath {
    RelPath::known("efi/ipxe.efi")
}
fn bios_file() -> RelPath {
    RelPath::known("undionly.kpxe")
}

/// Which nodes receive the ingress frontends (80/443).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IngressNodes {
    #[default]
    Workers,
    Infra,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSettings {
    #[serde(default)]
    pub ingress: IngressNodes,
    /// Explicit frontends replace the derived ones (validated the same way).
    #[serde(default)]
    pub frontends: Vec<Frontend>,
    #[serde(default = "haproxy_cfg")]
    pub config: RemotePath,
    /// haproxy's admin socket (live backend state is read from it).
    #[serde(default = "stats_socket")]
    pub stats_socket: RemotePath,
    /// Graceful reload (haproxy -c then SIGUSR2 to the master, as RHEL's unit does).
    #[serde(default = "haproxy_reload")]
    pub reload: Argv,
    /// VRRP between the load balancers (keepalived): on whenever more than one host has role lb.
    #[serde(default)]
    pub keepalived: Option<KeepalivedSettings>,
}

/// How the load balancers share the VIPs: one VRRP instance per VIP, unicast between the lb hosts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeepalivedSettings {
    /// The interface the VIPs live on (the same name on every lb host).
    #[serde(default = "vrrp_interface")]
    pub interface: NicName,
    /// The internal VIP's virtual router id; the external VIP's is the next one. Unique on the segment.
    #[serde(default = "virtual_router_id")]
    pub virtual_router_id: u8,
    /// A master that comes back takes the VIPs again (default: it does not, one move instead of two).
    #[serde(default)]
    pub preempt: bool,
    #[serde(default = "keepalived_conf")]
    pub config: RemotePath,
}

impl Default for KeepalivedSettings {
    fn default() -> Self {
        KeepalivedSettings {
            interface: vrrp_interface(),
            virtual_router_id: virtual_router_id(),
            preempt: false,
            config: keepalived_conf(),
        }
    }
}

fn vrrp_interface() -> NicName {
    NicName::known("eth0")
}
fn virtual_router_id() -> u8 {
    51
}
fn keepalived_conf() -> RemotePath {
    RemotePath::known("/etc/keepalived/keepalived.conf")
}

fn haproxy_cfg() -> RemotePath {
    RemotePath::known("/etc/haproxy/haproxy.cfg")
}
fn stats_socket() -> RemotePath {
    RemotePath::known("/var/lib/haproxy/stats")
}
fn haproxy_reload() -> Argv {
    Argv::of(&["systemctl", "reload-or-restart", "haproxy"])
}

impl Default for LoadBalancerSettings {
    fn default() -> Self {
        LoadBalancerSettings {
            ingress: IngressNodes::default(),
            frontends: Vec::new(),
            config: haproxy_cfg(),
            stats_socket: stats_socket(),
            reload: haproxy_reload(),
            keepalived: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub name: HaproxyName,
    pub port: Port,
    pub backends: Vec<Backend>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// A node name.
    pub node: Label,
    pub port: Port,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    #[serde(default = "docroot")]
    pub docroot: RemotePath,
    /// Infra host serving the files (default: the first host with role http).
    #[serde(default)]
    pub host: Option<Label>,
    #[serde(default)]
    pub serve: Vec<ServedFile>,
    /// Warn when an ignition file is older than this many hours; refuse past 24 h.
    #[serde(default = "ignition_warn_hours")]
    pub ignition_warn_hours: u64,
    /// Serve ignition files older than 24 h anyway (their certificates have expired).
    #[serde(default)]
    pub allow_expired_ignition: bool,
    /// What the iPXE script boots (served paths), for the built-in `builtin:ipxe` template.
    #[serde(default)]
    pub boot: Option<BootSettings>,
    /// Directories outside the environment directory that sources and templates may come from (e.g.
    /// the installer's directory). Nothing else outside the environment directory is ever read.
    #[serde(default)]
    pub source_dirs: Vec<String>,
    /// Largest source file that is uploaded (bytes; default 8 GiB).
    #[serde(default)]
    pub max_source_bytes: Option<u64>,
    /// The port the files are served on. Default 80; 8080 when the http host is also an lb host
    /// (HAProxy takes 80 and 443 there).
    #[serde(default)]
    pub port: Option<Port>,
    /// The web server's site for the docroot, owned by groundwork (`null`: the site's own).
    #[serde(default = "web_site")]
    pub web: Option<WebSite>,
}

/// The web server's site that serves the docroot: its own port and an access log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebSite {
    /// `nginx` (default, the reference install's) or `httpd` (Apache).
    #[serde(default)]
    pub server: WebServer,
    /// The site's file, in a directory the web server's main configuration includes (default by server
    /// and OS family: /etc/nginx/conf.d/groundwork.conf, /etc/httpd/conf.d/groundwork.conf,
    /// /etc/apache2/conf-enabled/groundwork.conf).
    #[serde(default)]
    pub config: Option<RemotePath>,
    /// Every request: client, time, request line, status, bytes (which node fetched which file).
    #[serde(default)]
    pub access_log: Option<RemotePath>,
    /// Command that makes the web server load a new site file (default `systemctl reload-or-restart UNIT`).
    #[serde(default)]
    pub reload: Option<Argv>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebServer {
    #[default]
    Nginx,
    Httpd,
}

impl WebServer {
    /// The daemon that runs it.
    pub fn daemon(self) -> Daemon {
        match self {
            WebServer::Nginx => Daemon::Web,
            WebServer::Httpd => Daemon::Httpd,
        }
    }
}

impl WebSite {
    /// The site's file on a host of `os`.
    pub fn config_path(&self, os: OsFamily) -> String {
        if let Some(c) = &self.config {
            return c.to_string();
        }
        match (self.server, os) {
            (WebServer::Nginx, _) => "/etc/nginx/conf.d/groundwork.conf",
            (WebServer::Httpd, OsFamily::Rhel) => "/etc/httpd/conf.d/groundwork.conf",
            (WebServer::Httpd, OsFamily::Debian) => "/etc/apache2/conf-enabled/groundwork.conf",
        }
        .to_string()
    }

    /// The site's access log on a host of `os`.
    pub fn access_log_path(&self, os: OsFamily) -> String {
        if let Some(l) = &self.access_log {
            return l.to_string();
        }
        match (self.server, os) {
            (WebServer::Nginx, _) => "/var/log/nginx/groundwork-access.log",
            (WebServer::Httpd, OsFamily::Rhel) => "/var/log/httpd/groundwork-access.log",
            (WebServer::Httpd, OsFamily::Debian) => "/var/log/apache2/groundwork-access.log",
        }
        .to_string()
    }

    /// The reload command on a host of `os` (its unit named by the OS family, or `services.units`).
    pub fn reload_argv(&self, unit: &str) -> Vec<String> {
        match &self.reload {
            Some(r) => r.to_vec(),
            None => ["systemctl", "reload-or-restart", unit].map(String::from).to_vec(),
        }
    }
}

fn web_site() -> Option<WebSite> {
    Some(WebSite::default())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BootSettings {
    pub kernel: RelPath,
    pub initramfs: RelPath,
    /// The metal image the 4.5-style installer writes (`coreos.inst.image_url`).
    #[serde(default)]
    pub image: Option<RelPath>,
    /// The live root filesystem of 4.6 and later (`coreos.live.rootfs_url`).
    #[serde(default)]
    pub rootfs: Option<RelPath>,
    #[serde(default = "install_dev")]
    pub install_dev: DeviceName,
    #[serde(default)]
    pub extra_args: Option<KernelArgs>,
    /// Console arguments of every node.
    #[serde(default = "console")]
    pub console: KernelArgs,
    /// Directory under the docroot of the per-node scripts (`<dir>/<mac as 52-54-00-…>.ipxe`).
    #[serde(default = "scripts_dir")]
    pub scripts: RelPath,
}

fn install_dev() -> DeviceName {
    DeviceName::known("sda")
}
fn console() -> KernelArgs {
    KernelArgs::known("console=tty0 console=ttyS0")
}
fn scripts_dir() -> RelPath {
    RelPath::known("ipxe")
}

fn docroot() -> RemotePath {
    RemotePath::known("/usr/share/nginx/html")
}
fn ignition_warn_hours() -> u64 {
    12
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    Plain,
    /// Ignition config: carries short-lived certificates and secrets; never shown in output.
    Ignition,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServedFile {
    /// Path under the docroot (also the URL path).
    pub path: RelPath,
    /// A local file to upload (relative to the environment dir).
    #[serde(default)]
    pub source: Option<String>,
    /// A minijinja template (relative to the environment dir) rendered with the inventory.
    #[serde(default)]
    pub template: Option<String>,
    /// Literal content.
    #[serde(default)]
    pub content: Option<String>,
    /// A file already there, known by its digest only (what `import` writes for served files it
    /// found): plan reports when it differs; apply cannot write it without a source and says so.
    #[serde(default)]
    pub sha256: Option<Sha256Hex>,
    /// Its size in bytes, with `sha256`.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub kind: FileKind,
    /// Secret content (a pull secret, a key): carried by digest only, never shown or diffed, like
    /// ignition files.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub mode: Option<FileMode>,
    /// Owner and group to set (names); unset: a new file is root's, an existing one keeps its own.
    #[serde(default)]
    pub owner: Option<PosixName>,
    #[serde(default)]
    pub group: Option<PosixName>,
}

/// The TFTP server of the hosts with role `tftp` (tftpd-hpa): where the firmware's PXE client fetches
/// iPXE.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TftpSettings {
    /// The TFTP root (RHEL: /var/lib/tftpboot; Debian: /srv/tftp).
    #[serde(default = "tftp_root")]
    pub root: RemotePath,
    /// tftpd-hpa's settings file (Debian: /etc/default/tftpd-hpa), owned whole. Default: none — RHEL's
    /// socket-activated tftp-server carries its root in its unit and has no settings file to manage.
    #[serde(default)]
    pub config: Option<RemotePath>,
    /// Command that makes the TFTP server use new settings (with `config`).
    #[serde(default = "tftp_restart")]
    pub restart: Argv,
    /// Where the host's ipxe package puts its boot loaders (RHEL's ipxe-bootimgs: /usr/share/ipxe;
    /// Debian's ipxe: /usr/lib/ipxe).
    #[serde(default = "ipxe_dir")]
    pub ipxe_dir: RemotePath,
    /// The boot loaders in the root; default: `dhcp.pxe.bios_file` from `undionly.kpxe` and
    /// `dhcp.pxe.efi_file` from `ipxe.efi`, both out of `ipxe_dir`.
    #[serde(default)]
    pub loaders: Vec<Loader>,
}

/// A boot loader in the TFTP root: a file of the host's ipxe package, or a local file uploaded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Loader {
    /// Path under the TFTP root (what DHCP hands out).
    pub path: RelPath,
    /// A file on the host (default: the file of the same name in `ipxe_dir`).
    #[serde(default)]
    pub from: Option<RemotePath>,
    /// A local file to upload instead (relative to the environment directory).
    #[serde(default)]
    pub source: Option<String>,
    /// Literal content instead (stand-ins for tests and demos).
    #[serde(default)]
    pub content: Option<String>,
}

impl Default for TftpSettings {
    fn default() -> Self {
        TftpSettings {
            root: tftp_root(),
            config: None,
            restart: tftp_restart(),
            ipxe_dir: ipxe_dir(),
            loaders: Vec::new(),
        }
    }
}

fn tftp_root() -> RemotePath {
    RemotePath::known("/var/lib/tftpboot")
}
fn tftp_restart() -> Argv {
    Argv::of(&["systemctl", "restart", "tftpd-hpa"])
}
fn ipxe_dir() -> RemotePath {
    RemotePath::known("/usr/share/ipxe")
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FirewallSettings {
    #[serde(default = "public_zone")]
    pub zone: FirewalldName,
    /// Hosts whose firewalld is managed (default: hosts with role lb).
    #[serde(default)]
    pub hosts: Vec<Label>,
    #[serde(default)]
    pub services: Vec<FirewalldName>,
    #[serde(default)]
    pub ports: Vec<PortProto>,
    #[serde(default)]
    pub custom_services: BTreeMap<FirewalldName, CustomService>,
}

fn public_zone() -> FirewalldName {
    FirewalldName::known("public")
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomService {
    #[serde(default)]
    pub description: Option<Text>,
    #[serde(default)]
    pub ports: Vec<PortProto>,
    /// IP protocols by name (`vrrp`, `gre`): what has no port.
    #[serde(default)]
    pub protocols: Vec<FirewalldName>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelinuxSettings {
    /// Hosts whose booleans and port labels are managed (default: hosts with role lb).
    #[serde(default)]
    pub hosts: Vec<Label>,
    #[serde(default)]
    pub fcontexts: Vec<FcontextRule>,
    #[serde(default)]
    pub booleans: BTreeMap<SelinuxName, bool>,
    #[serde(default)]
    pub ports: Vec<PortLabel>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FcontextRule {
    pub path: FcontextPattern,
    #[serde(rename = "type")]
    pub setype: SelinuxName,
    /// Hosts the rule applies to (default: hosts with role http).
    #[serde(default)]
    pub hosts: Vec<Label>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortLabel {
    pub port: PortProto,
    #[serde(rename = "type")]
    pub setype: SelinuxName,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenShiftSettings {
    /// The kubeconfig (relative to the environment directory). Without it: the installer's, else
    /// `KUBECONFIG` (a colon-separated list is merged as kubectl does), else the in-cluster service
    /// account (a pod's token and CA).
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use (default: its current-context); `--context` overrides it.
    #[serde(default)]
    pub context: Option<String>,
    /// The cluster's OpenShift version (`4.5`, `4.16`): which release's CRD schemas `validate` holds
    /// the manifests to (4.5 and older: the 4.5 set; otherwise the current one).
    #[serde(default)]
    pub version: Option<String>,
    /// Directory (relative to the environment dir) of extra day-2 manifests.
    #[serde(default)]
    pub manifests: Option<String>,
    /// Nodes that get node-role.kubernetes.io/infra and the infra taints on day 2.
    #[serde(default = "yes")]
    pub infra_nodes: bool,
    #[serde(default)]
    pub registry: Option<RegistrySettings>,
    #[serde(default)]
    pub monitoring_on_infra: bool,
    #[serde(default)]
    pub ingress_replicas: Option<u32>,
    /// Once bootstrap completes, drop the bootstrap node from DNS, DHCP and PXE too and stop serving
    /// bootstrap.ign (it always leaves the load balancer).
    #[serde(default)]
    pub retire_bootstrap: bool,
    /// How long `apply` waits for each gate, in seconds (defaults: the installer's own waits).
    #[serde(default)]
    pub gate_timeouts: BTreeMap<crate::Gate, u64>,
    /// How often a gate is probed while `apply` waits on it.
    #[serde(default = "poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How `apply` notices a gate's progress: `watch` (the default) or `poll`.
    #[serde(default)]
    pub gate_waits: GateWaits,
    /// Approve masters' CSRs too (in UPI the bootstrap's own approver does; leave this off unless the
    /// masters' CSRs are known to need a hand).
    #[serde(default)]
    pub approve_master_csrs: bool,
    /// The installer's inputs: what install-config.yaml needs beyond the inventory
    /// (docs/install-inputs.md).
    #[serde(default)]
    pub install: Option<InstallSettings>,
    /// openshift-install on the machine that runs groundwork: when given, groundwork generates the
    /// ignition itself from `install` (docs/install-inputs.md).
    #[serde(default)]
    pub installer: Option<InstallerSettings>,
}

/// The installer groundwork runs to make the ignition, and where it keeps what it made.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InstallerSettings {
    /// The openshift-install binary (absolute, `~/…`, or relative to the environment directory).
    pub path: String,
    /// The installer's directory, inside the environment directory: the .ign files, auth/kubeconfig,
    /// metadata.json, and groundwork's record of the generation (`.groundwork/`).
    pub dir: RelPath,
}

impl<'de> Deserialize<'de> for InstallerSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            path: String,
            #[serde(default = "installer_dir")]
            dir: RelPath,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Path(String),
            Full(Full),
        }
        match Form::deserialize(d)? {
            Form::Path(path) => Ok(InstallerSettings { path, dir: installer_dir() }),
            Form::Full(f) => Ok(InstallerSettings { path: f.path, dir: f.dir }),
        }
    }
}

fn installer_dir() -> RelPath {
    RelPath::known("installdir")
}

impl InstallerSettings {
    /// The ignition files the installer writes, by name, in the order of the roles.
    pub const IGNITION: [&'static str; 3] = ["bootstrap.ign", "master.ign", "worker.ign"];

    /// A path under the installer's directory, relative to the environment directory.
    pub fn under(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }
}

/// What install-config.yaml needs beyond the inventory. The pull secret is secret: read when needed,
/// carried by digest everywhere else.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallSettings {
    /// `OVNKubernetes` (default) or `OpenShiftSDN` (4.5's, the reference install's).
    #[serde(default)]
    pub network_type: NetworkType,
    #[serde(default)]
    pub fips: bool,
    pub pull_secret: ValueSource,
    pub ssh_key: ValueSource,
    /// A cluster-wide proxy, for sites that reach the internet through one.
    #[serde(default)]
    pub proxy: Option<ProxySettings>,
    /// CA certificates (PEM file) the cluster trusts, e.g. a mirror registry's.
    #[serde(default)]
    pub additional_trust_bundle: Option<String>,
    /// Mirror registries for a disconnected install.
    #[serde(default)]
    pub image_content_sources: Vec<ImageContentSource>,
    /// Directory (relative to the environment dir) of extra install manifests (MachineConfigs, ...):
    /// added to the installer's `openshift/` before the ignition is made.
    #[serde(default)]
    pub manifests: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum NetworkType {
    #[default]
    OVNKubernetes,
    OpenShiftSDN,
}

/// Where a value comes from: a local file (relative to the environment directory, or `~/…`), or an
/// environment variable of the run (a CI secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValueSource {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub env: Option<EnvVarName>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    #[serde(default)]
    pub http_proxy: Option<ProxyUrl>,
    #[serde(default)]
    pub https_proxy: Option<ProxyUrl>,
    /// Destinations reached directly: domains (`.example.com`), addresses, CIDRs.
    #[serde(default)]
    pub no_proxy: Vec<NoProxyEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageContentSource {
    pub source: ImageRepo,
    pub mirrors: Vec<ImageRepo>,
}

fn poll_interval_ms() -> u64 {
    2000
}

/// How `apply` notices a gate's progress while it waits.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GateWaits {
    /// Watches on what the gate reads: it is probed when they report a change (and every
    /// `poll_interval_ms` while they cannot run, before the API answers).
    #[default]
    Watch,
    /// Probed every `poll_interval_ms`: for a proxy in front of the API that cuts long requests.
    Poll,
}

impl OpenShiftSettings {
    /// The kubeconfig the gates use, relative to the environment directory: `kubeconfig`, else the
    /// one the installer writes (`DIR/auth/kubeconfig`) when groundwork runs it.
    pub fn kubeconfig_path(&self) -> Option<String> {
        self.kubeconfig.clone().or_else(|| self.installer.as_ref().map(|i| i.under("auth/kubeconfig")))
    }

    /// Seconds `apply` waits for `gate`.
    pub fn gate_timeout(&self, gate: crate::Gate) -> u64 {
        use crate::Gate::*;
        self.gate_timeouts.get(&gate).copied().unwrap_or(match gate {
            BootstrapComplete => 40 * 60,
            MastersReady => 30 * 60,
            WorkersJoined => 60 * 60,
            InstallComplete => 40 * 60,
            RouterOnInfra => 10 * 60,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// StorageClass of the registry's PVC (declare it under the manifests directory if it is new).
    pub storage_class: K8sName,
    #[serde(default = "registry_claim")]
    pub claim: K8sName,
    #[serde(default = "registry_size")]
    pub size: Quantity,
}

fn registry_claim() -> K8sName {
    K8sName::known("image-registry-storage")
}
fn registry_size() -> Quantity {
    Quantity::known("100Gi")
}

impl Environment {
    pub fn hosts_with_role(&self, role: HostRole) -> impl Iterator<Item = (&Label, &Host)> {
        self.hosts.iter().filter(move |(_, h)| h.has_role(role))
    }

    /// The hosts whose firewalld groundwork manages: `firewall.hosts`, else the lb hosts.
    pub fn firewall_hosts(&self) -> Vec<String> {
        let Some(fw) = &self.firewall else { return Vec::new() };
        if fw.hosts.is_empty() {
            self.hosts_with_role(HostRole::Lb).map(|(n, _)| n.to_string()).collect()
        } else {
            fw.hosts.iter().map(|h| h.to_string()).collect()
        }
    }

    /// The infra host that serves the files, with its name.
    pub fn http_host(&self) -> Option<(&Label, &Host)> {
        let files = self.files.as_ref()?;
        match &files.host {
            Some(h) => self.hosts.get_key_value(h.as_str()),
            None => self.first_host_with_role(HostRole::Http),
        }
    }

    /// The port the files are served on: `files.port`, else 80, or 8080 on a host that is also a load
    /// balancer.
    /// Whom a file groundwork writes is managed for, as its header says: `cluster NAME`, or on infra hosts
    /// several clusters share, all of them (a header naming one would differ between their parts).
    pub fn managed_for(&self) -> String {
        match self.cluster.shared_infra {
            true => "the clusters that share this host".to_string(),
            false => format!("cluster {}", self.cluster.name),
        }
    }

    /// The directory this cluster's served files are in: the docroot, or on infra hosts several
    /// clusters share, the cluster's own directory under it (served as `/<cluster>/…`).
    pub fn served_dir(&self) -> Option<RemotePath> {
        let files = self.files.as_ref()?;
        Some(match self.cluster.shared_infra {
            true => files.docroot.child(&self.cluster.name),
            false => files.docroot.clone(),
        })
    }

    pub fn http_port(&self) -> u16 {
        if let Some(p) = self.files.as_ref().and_then(|f| f.port) {
            return p.into();
        }
        match self.http_host() {
            Some((_, h)) if h.has_role(HostRole::Lb) => 8080,
            _ => 80,
        }
    }

    /// The daemons `host` runs for its roles, in the order they start.
    pub fn daemons_of(&self, host: &str) -> Vec<Daemon> {
        let Some(h) = self.hosts.get(host) else { return Vec::new() };
        let mut out = Vec::new();
        if self.firewall_hosts().iter().any(|f| f == host) {
            out.push(Daemon::Firewalld);
        }
        if h.has_role(HostRole::Dns) {
            out.push(Daemon::Named);
        }
        if let (true, Some(d)) = (h.has_role(HostRole::Dhcp), &self.dhcp) {
            out.push(match d.backend_of(host) {
                DhcpBackend::Dhcpd => Daemon::Dhcpd,
                DhcpBackend::Kea => Daemon::Kea,
            });
        }
        if h.has_role(HostRole::Lb) {
            out.push(Daemon::Haproxy);
            if self.keepalived().is_some() {
                out.push(Daemon::Keepalived);
            }
        }
        if let (true, Some(files)) = (h.has_role(HostRole::Http), &self.files) {
            out.push(files.web.as_ref().map(|w| w.server.daemon()).unwrap_or(Daemon::Web));
        }
        if h.has_role(HostRole::Tftp) {
            out.push(Daemon::Tftp);
        }
        out
    }

    /// A daemon's unit on `host`: the site's name if declared, else its OS family's.
    pub fn unit_of(&self, host: &Host, daemon: Daemon) -> String {
        self.services.units.get(&daemon).map(|u| u.to_string()).unwrap_or_else(|| daemon.names(host.os).0.to_string())
    }

    /// A daemon's package on `host`.
    pub fn package_of(&self, host: &Host, daemon: Daemon) -> String {
        self.services
            .packages
            .get(&daemon)
            .map(|p| p.to_string())
            .unwrap_or_else(|| daemon.names(host.os).1.to_string())
    }

    /// The VRRP settings when the load balancers share their VIPs: declared, or more than one lb host.
    pub fn keepalived(&self) -> Option<KeepalivedSettings> {
        let declared = self.loadbalancer.keepalived.clone();
        if declared.is_some() || self.hosts_with_role(HostRole::Lb).count() > 1 {
            Some(declared.unwrap_or_default())
        } else {
            None
        }
    }

    pub fn first_host_with_role(&self, role: HostRole) -> Option<(&Label, &Host)> {
        self.hosts_with_role(role).next()
    }

    pub fn nodes_with_role(&self, role: NodeRole) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_fqdn(&self, node: &Node) -> String {
        format!("{}.{}", node.name, self.cluster.domain())
    }

    /// The nodes that receive 80/443 under the current ingress setting. With `ingress: infra` and an
    /// install to follow (an `openshift` section), the router runs on any worker (infra nodes are
    /// workers to the installer) until it has moved to the infra nodes (gate router-on-infra); only
    /// then do the workers leave the backends.
    pub fn ingress_nodes(&self) -> Vec<&Node> {
        let roles: &[NodeRole] = match self.loadbalancer.ingress {
            IngressNodes::Workers if self.cluster.compact => &[NodeRole::Master],
            IngressNodes::Workers => &[NodeRole::Worker],
            // Without an openshift section there are no gates: the router is where the inventory says.
            IngressNodes::Infra if self.openshift.is_none() || self.phase.passed(crate::Gate::RouterOnInfra) => {
                &[NodeRole::Infra]
            }
            IngressNodes::Infra => &[NodeRole::Worker, NodeRole::Infra],
        };
        self.nodes.iter().filter(|n| roles.contains(&n.role)).collect()
    }

    /// The Kubernetes name of a node: its FQDN (what the kubelet registers on RHCOS with DNS names).
    pub fn node_k8s_name(&self, node: &Node) -> String {
        self.node_fqdn(node)
    }

    /// This environment as it stands in `phase`: bootstrap leaves the load balancer once it has
    /// completed (and DNS, DHCP and the PXE menu with `openshift.retire_bootstrap`; its ignition file
    /// is a resource that lives `until` the gate).
    pub fn for_phase(&self, phase: &crate::Phase) -> Environment {
        let mut env = self.clone();
        env.phase = phase.clone();
        let retire = env.openshift.as_ref().map(|o| o.retire_bootstrap).unwrap_or(false);
        if retire && phase.passed(crate::Gate::BootstrapComplete) {
            env.nodes.retain(|n| n.role != NodeRole::Bootstrap);
        }
        env
    }

    /// Frontends: explicit ones if declared, else the OpenShift defaults derived from the inventory.
    pub fn frontends(&self) -> Vec<Frontend> {
        if !self.loadbalancer.frontends.is_empty() {
            return self.loadbalancer.frontends.clone();
        }
        let bootstrap_done = self.phase.passed(crate::Gate::BootstrapComplete);
        let control: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.role == NodeRole::Master || (n.role == NodeRole::Bootstrap && !bootstrap_done))
            .collect();
        let ingress = self.ingress_nodes();
        let fe = |name: &'static str, port: u16, nodes: &[&Node]| Frontend {
            name: HaproxyName::known(name),
            port: Port::known(port),
            backends: nodes.iter().map(|n| Backend { node: n.name.clone(), port: Port::known(port) }).collect(),
        };
        vec![
            fe("api", 6443, &control),
            fe("machine-config", 22623, &control),
            fe("ingress-http", 80, &ingress),
            fe("ingress-https", 443, &ingress),
        ]
    }
}
