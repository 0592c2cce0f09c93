//! # groundwork-dhcpd
//!
//! One whole `dhcpd.conf` per dhcp host, rendered from the inventory: the subnet (routers, DNS servers,
//! domain), the iPXE chain-loading class of the reference install (first boot: TFTP ipxe.efi or
//! undionly.kpxe; second boot, user-class iPXE: the HTTP script URL) and a `host` pin per node. Checked
//! with `dhcpd -t -cf` before it replaces the live file; dhcpd restarts only when the content changed.
//! [`intent`] (what any DHCP server must hand out) and the host pins are shared with the Kea backend.

use groundwork_sdk::file::{self, ManagedFile, CANDIDATE};
use groundwork_sdk::joint::Block;
use groundwork_sdk::model::{DhcpBackend, Environment, HostRole};
use groundwork_sdk::value::LeaseTime;
use groundwork_sdk::{Address, Change, Context, Detail, Error, Provider, Resource};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

pub const PROVIDER: &str = "dhcpd";

/// A `host` pin as read from a dhcpd.conf.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pin {
    pub mac: String,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// A quoted string, unescaped.
    Quoted(String),
    Open,
    Close,
    Semi,
}

impl Token {
    fn text(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// The tokens of a dhcpd.conf, each with the line it starts on.
fn tokenize(text: &str) -> (Vec<Token>, Vec<usize>) {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut line = 1usize;
    let flush = |w: &mut String, out: &mut Vec<Token>, lines: &mut Vec<usize>, line: usize| {
        if !w.is_empty() {
            out.push(Token::Word(std::mem::take(w)));
            lines.push(line);
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, &mut out, &mut lines, line);
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                flush(&mut word, &mut out, &mut lines, line);
                let start = line;
                let mut q = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => q.extend(chars.next()),
                        '"' => break,
                        '\n' => {
                            line += 1;
                            q.push('\n');
                        }
                        c => q.push(c),
                    }
                }
                out.push(Token::Quoted(q));
                lines.push(start);
            }
            '{' | '}' | ';' => {
                flush(&mut word, &mut out, &mut lines, line);
                out.push(match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    _ => Token::Semi,
                });
                lines.push(line);
            }
            c if c.is_whitespace() => {
                flush(&mut word, &mut out, &mut lines, line);
                if c == '\n' {
                    line += 1;
                }
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out, &mut lines, line);
    (out, lines)
}

/// What a dhcpd.conf hands out, as read back: every `host` block in file order (a name may come twice),
/// every `filename`, `next-server` and `option domain-name` statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhcpdEntries {
    pub hosts: Vec<(String, Pin)>,
    /// The line of each `host` block, in the order of `hosts`.
    pub host_lines: Vec<usize>,
    pub filenames: Vec<String>,
    pub next_servers: Vec<String>,
    pub domain_names: Vec<String>,
    /// `subnet NET netmask MASK` declarations: (network, mask, line).
    pub subnets: Vec<(String, String, usize)>,
    /// `option routers` values.
    pub routers: Vec<String>,
    /// `option domain-name-servers` values.
    pub name_servers: Vec<String>,
}

/// Read a dhcpd.conf (any, hand-written ones included): the entries wherever they are nested.
pub fn read_conf(text: &str) -> DhcpdEntries {
    let (tokens, lines) = tokenize(text);
    let mut out = DhcpdEntries::default();
    // The comma-separated values of a statement that starts at `i` (up to its `;`).
    let list = |i: usize| -> Vec<String> {
        tokens[i..]
            .iter()
            .take_while(|t| **t != Token::Semi)
            .filter_map(Token::text)
            .flat_map(|w| w.split(','))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let word = |i: usize| tokens.get(i).and_then(Token::text);
    let mut i = 0;
    while i < tokens.len() {
        match (word(i), word(i + 1), tokens.get(i + 2)) {
            (Some("host"), Some(name), Some(Token::Open)) if matches!(tokens[i], Token::Word(_)) => {
                let mut pin = Pin { mac: String::new(), address: String::new() };
                let mut j = i + 3;
                let mut depth = 1;
                while j < tokens.len() && depth > 0 {
                    match (&tokens[j], word(j)) {
                        (Token::Open, _) => depth += 1,
                        (Token::Close, _) => depth -= 1,
                        (_, Some("hardware")) => pin.mac = word(j + 2).unwrap_or_default().to_ascii_lowercase(),
                        (_, Some("fixed-address")) => pin.address = word(j + 1).unwrap_or_default().to_string(),
                        _ => {}
                    }
                    j += 1;
                }
                out.hosts.push((name.to_string(), pin));
                out.host_lines.push(lines[i]);
                i = j;
                continue;
            }
            (Some("filename"), Some(f), _) => out.filenames.push(f.to_string()),
            (Some("next-server"), Some(n), _) => out.next_servers.push(n.to_string()),
            (Some("option"), Some("domain-name"), Some(t)) => out.domain_names.extend(t.text().map(str::to_string)),
            (Some("option"), Some("routers"), _) => out.routers.extend(list(i + 2)),
            (Some("option"), Some("domain-name-servers"), _) => out.name_servers.extend(list(i + 2)),
            (Some("subnet"), Some(net), _) if word(i + 2) == Some("netmask") => {
                out.subnets.push((net.to_string(), word(i + 3).unwrap_or_default().to_string(), lines[i]));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every `host NAME { hardware ethernet MAC; fixed-address IP; }` of a dhcpd.conf, wherever it is
/// nested, keyed by name; a name that comes again is keyed `NAME (2nd)`, `NAME (3rd)`, ... so that an
/// extra block is never hidden behind the first.
pub fn parse_pins(text: &str) -> BTreeMap<String, Pin> {
    keyed(read_conf(text).hosts)
}

/// Host entries keyed by name, repeats numbered.
pub fn keyed(hosts: Vec<(String, Pin)>) -> BTreeMap<String, Pin> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (name, pin) in hosts {
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        let key = match *n {
            1 => name,
            2 => format!("{name} (2nd)"),
            3 => format!("{name} (3rd)"),
            k => format!("{name} ({k}th)"),
        };
        out.insert(key, pin);
    }
    out
}

fn dotted_mask(prefix: u8) -> String {
    let m: u32 = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    std::net::Ipv4Addr::from(m).to_string()
}

/// A string for dhcpd.conf, quoted and escaped (values are typed at load; this is the second guard).
pub fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// What every DHCP backend hands out, derived from the inventory once: the subnet and its options,
/// the iPXE chain-loading answers and a pin per node.
#[derive(Clone, Debug, PartialEq)]
pub struct DhcpIntent {
    pub cluster: String,
    pub domain: String,
    pub subnet: ipnet::Ipv4Net,
    pub routers: Vec<String>,
    pub dns: Vec<String>,
    pub lease_time: LeaseTime,
    pub pxe: Option<PxeIntent>,
    /// Node name → pin, in inventory order.
    pub pins: Vec<(String, Pin)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PxeIntent {
    /// TFTP server for the firmware's first boot.
    pub next_server: String,
    /// What iPXE fetches on the second boot.
    pub script_url: String,
    pub efi_file: String,
    pub bios_file: String,
}

pub fn intent(env: &Environment) -> Option<DhcpIntent> {
    let d = env.dhcp.as_ref()?;
    let ipnet::IpNet::V4(subnet) = d.subnet else { return None };
    let dns: Vec<String> = if d.dns_servers.is_empty() {
        env.hosts_with_role(HostRole::Dns).map(|(_, h)| h.address.to_string()).collect()
    } else {
        d.dns_servers.iter().map(IpAddr::to_string).collect()
    };
    let pxe = d.pxe.as_ref().map(|pxe| {
        let tftp = env.hosts.get(pxe.tftp_host.as_str()).map(|h| h.address.to_string()).unwrap_or_default();
        let http = env
            .files
            .as_ref()
            .and_then(|f| f.host.as_ref().and_then(|h| env.hosts.get(h.as_str())))
            .or_else(|| env.first_host_with_role(HostRole::Http).map(|(_, h)| h))
            .map(|h| match h.address {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            })
            .unwrap_or_else(|| tftp.clone());
        PxeIntent {
            script_url: match groundwork_sdk::boot::http_base(env) {
                Some(base) => format!("{base}/{}", pxe.script),
                None => format!("http://{http}/{}", pxe.script),
            },
            next_server: tftp,
            efi_file: pxe.efi_file.to_string(),
            bios_file: pxe.bios_file.to_string(),
        }
    });
    Some(DhcpIntent {
        cluster: env.cluster.name.to_string(),
        domain: env.cluster.domain(),
        subnet,
        routers: d.routers.iter().map(IpAddr::to_string).collect(),
        dns,
        lease_time: d.default_lease_time,
        pxe,
        pins: env
            .nodes
            .iter()
            .map(|n| (n.name.to_string(), Pin { mac: n.mac.to_string(), address: n.ip.to_string() }))
            .collect(),
    })
}

/// The iPXE chain-loading answers, inside a class or a host block: firmware PXE gets iPXE over TFTP
/// (the EFI or BIOS loader by architecture), iPXE gets the script over HTTP.
fn pxe_answers(s: &mut String, pxe: &PxeIntent) {
    let _ = writeln!(s, "    next-server {};", pxe.next_server);
    let _ = writeln!(s, "    if exists user-class and option user-class = \"iPXE\" {{");
    let _ = writeln!(s, "        filename {};", quoted(&pxe.script_url));
    let _ = writeln!(s, "    }} elsif option client-arch = 00:07 or option client-arch = 00:09 {{");
    let _ = writeln!(s, "        filename {};", quoted(&pxe.efi_file));
    let _ = writeln!(s, "    }} else {{");
    let _ = writeln!(s, "        filename {};", quoted(&pxe.bios_file));
    let _ = writeln!(s, "    }}");
}

/// Render dhcpd.conf for the environment.
pub fn render(env: &Environment) -> Option<String> {
    let i = intent(env)?;
    let mut s = String::new();
    let _ = writeln!(s, "# Managed by groundwork for cluster {}. Changes made by hand are overwritten.", i.cluster);
    let _ = writeln!(s, "authoritative;\nddns-update-style none;");
    let _ = writeln!(s, "default-lease-time {};\nmax-lease-time {};", i.lease_time.get(), i.lease_time.max());
    let _ = writeln!(s, "option domain-name {};", quoted(&i.domain));
    if !i.dns.is_empty() {
        let _ = writeln!(s, "option domain-name-servers {};", i.dns.join(", "));
    }
    if let Some(pxe) = &i.pxe {
        let _ = writeln!(s, "# RFC 4578 client system architecture (EFI x86-64 is 7 or 9).");
        let _ = writeln!(s, "option client-arch code 93 = unsigned integer 16;");
        let _ = writeln!(s);
        let _ = writeln!(s, "# iPXE chain-loading: firmware PXE gets iPXE over TFTP, iPXE gets the script over HTTP.");
        let _ = writeln!(s, "class \"pxeclients\" {{");
        let _ = writeln!(s, "    match if substring (option vendor-class-identifier, 0, 9) = \"PXEClient\";");
        pxe_answers(&mut s, pxe);
        let _ = writeln!(s, "}}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "subnet {} netmask {} {{", i.subnet.network(), dotted_mask(i.subnet.prefix_len()));
    if !i.routers.is_empty() {
        let _ = writeln!(s, "    option routers {};", i.routers.join(", "));
    }
    let _ = writeln!(s, "    option subnet-mask {};", dotted_mask(i.subnet.prefix_len()));
    let _ = writeln!(s, "}}");
    for (name, pin) in &i.pins {
        let _ = writeln!(s);
        let _ = writeln!(s, "host {name} {{");
        let _ = writeln!(s, "    hardware ethernet {};", pin.mac);
        let _ = writeln!(s, "    fixed-address {};", pin.address);
        let _ = writeln!(s, "    option host-name {};", quoted(name));
        let _ = writeln!(s, "}}");
    }
    Some(s)
}

/// dhcpd.conf for infra hosts that several clusters share (`cluster.shared_infra`), in parts: the global
/// settings and the subnet are the same in every cluster's part; the cluster's own part includes its
/// fragment, which holds its pins (each with its own domain and PXE answers, named `<cluster>-<node>`),
/// and claims their MACs and addresses.
pub fn render_shared(env: &Environment) -> Option<SharedConf> {
    let i = intent(env)?;
    let mut global = String::new();
    let _ = writeln!(global, "# Managed by groundwork for {}: one part per cluster.", env.managed_for());
    let _ = writeln!(global, "authoritative;\nddns-update-style none;");
    let _ = writeln!(global, "default-lease-time {};\nmax-lease-time {};", i.lease_time.get(), i.lease_time.max());
    if !i.dns.is_empty() {
        let _ = writeln!(global, "option domain-name-servers {};", i.dns.join(", "));
    }
    let _ = writeln!(global, "# RFC 4578 client system architecture (EFI x86-64 is 7 or 9).");
    let _ = writeln!(global, "option client-arch code 93 = unsigned integer 16;");
    let mut subnet = String::new();
    let _ = writeln!(subnet, "subnet {} netmask {} {{", i.subnet.network(), dotted_mask(i.subnet.prefix_len()));
    if !i.routers.is_empty() {
        let _ = writeln!(subnet, "    option routers {};", i.routers.join(", "));
    }
    let _ = writeln!(subnet, "    option subnet-mask {};", dotted_mask(i.subnet.prefix_len()));
    let _ = writeln!(subnet, "}}");
    let mut own = format!(
        "# Managed by groundwork for cluster {}: its pins, included from {}.\n",
        i.cluster,
        env.dhcp.as_ref().map(|d| d.config.to_string()).unwrap_or_default()
    );
    let mut claims = Vec::new();
    for (name, pin) in &i.pins {
        let _ = writeln!(own, "host {}-{name} {{", i.cluster);
        let _ = writeln!(own, "    hardware ethernet {};", pin.mac);
        let _ = writeln!(own, "    fixed-address {};", pin.address);
        let _ = writeln!(own, "    option host-name {};", quoted(name));
        let _ = writeln!(own, "    option domain-name {};", quoted(&i.domain));
        if let Some(pxe) = &i.pxe {
            pxe_answers(&mut own, pxe);
        }
        let _ = writeln!(own, "}}");
        claims.push(format!("MAC {}", pin.mac.to_ascii_lowercase()));
        claims.push(format!("address {}", pin.address));
    }
    let fragment = fragment_path(env)?;
    let include = format!("# Cluster {}.\ninclude {};\n", i.cluster, quoted(&fragment));
    Some(SharedConf {
        blocks: vec![
            Block::new("0 global", global),
            Block::new(format!("1 subnet {}", i.subnet), subnet),
            Block::new(format!("5 cluster {}", i.cluster), include).claiming(claims),
        ],
        fragment,
        pins: own,
    })
}

/// Checks a cluster's fragment the way dhcpd reads it: included after the option the main file defines
/// (its PXE answers test the client's architecture).
const CHECK_FRAGMENT: &str = r#"t=$(mktemp) || exit 1
printf 'option client-arch code 93 = unsigned integer 16;\ninclude "%s";\n' "$1" > "$t"
dhcpd -t -cf "$t"; rc=$?
rm -f "$t"; exit $rc"#;

/// Restarts dhcpd (`$3…`) for a changed fragment (`$1`) only if the live main file (`$2`) includes it.
const RESTART_IF_INCLUDED: &str = r#"f=$1 main=$2; shift 2
grep -qsF "include \"$f\";" "$main" || exit 0
exec "$@""#;

/// dhcpd.conf on hosts several clusters share: the main file's parts, and this cluster's fragment.
pub struct SharedConf {
    pub blocks: Vec<Block>,
    pub fragment: String,
    pub pins: String,
}

/// This cluster's fragment on shared hosts: `<dir of dhcp.config>/groundwork.d/<cluster>.conf`.
pub fn fragment_path(env: &Environment) -> Option<String> {
    let d = env.dhcp.as_ref()?;
    let config = d.config.to_string();
    let dir = config.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    Some(format!("{dir}/groundwork.d/{}.conf", env.cluster.name))
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let Some(d) = &env.dhcp else { return Ok(Vec::new()) };
    let (file, fragment) = match env.cluster.shared_infra {
        true => match render_shared(env) {
            Some(c) => (ManagedFile::joint(d.config.to_string(), c.blocks), Some(ManagedFile::new(c.fragment, c.pins))),
            None => return Ok(Vec::new()),
        },
        false => match render(env) {
            Some(content) => (ManagedFile::new(d.config.to_string(), content), None),
            None => return Ok(Vec::new()),
        },
    };
    let checked = |mut mf: ManagedFile| {
        mf.mode = Some(0o644);
        mf.check = vec![vec!["dhcpd".into(), "-t".into(), "-q".into(), "-cf".into(), CANDIDATE.into()]];
        mf.activate = Some(d.restart.to_vec());
        mf
    };
    let mut out = Vec::new();
    for (host, _) in env.hosts_with_role(HostRole::Dhcp) {
        if d.backend_of(host) == DhcpBackend::Dhcpd {
            let mut config = Resource::new(
                Address::new(PROVIDER, "config", Some(host), d.config.to_string()),
                checked(file.clone()),
            )?;
            if let Some(f) = &fragment {
                // Written before the main file includes it; removed only once it no longer does.
                let addr = Address::new(PROVIDER, "fragment", Some(host), f.path.clone());
                let mut f = checked(f.clone());
                f.check = vec![vec![
                    "sh".into(),
                    "-c".into(),
                    CHECK_FRAGMENT.into(),
                    "groundwork-check".into(),
                    CANDIDATE.into(),
                ]];
                // dhcpd reads the fragment only once the main file includes it: until then (the first
                // apply writes the fragment first) a restart would load the old main file.
                let mut activate = vec![
                    "sh".into(),
                    "-c".into(),
                    RESTART_IF_INCLUDED.into(),
                    "groundwork-activate".into(),
                    f.path.clone(),
                    d.config.to_string(),
                ];
                activate.extend(d.restart.iter().cloned());
                f.activate = Some(activate);
                out.push(Resource::new(addr.clone(), f)?);
                config.depends_on.push(addr);
            }
            out.push(config);
        } else {
            // Another backend serves this host: dhcpd must not answer too (both bind UDP 67).
            let unit = dhcpd_unit(d);
            out.push(Resource::new(stopped_address(host, &unit), StoppedSpec { unit })?);
        }
    }
    Ok(out)
}

/// The systemd unit dhcpd runs as: the last word of `dhcp.restart` when that is a systemctl command.
pub fn dhcpd_unit(d: &groundwork_sdk::model::DhcpSettings) -> String {
    match &d.restart[..] {
        [ctl, .., unit] if ctl.ends_with("systemctl") => unit.clone(),
        _ => "dhcpd".into(),
    }
}

/// `dhcpd.stopped[HOST:UNIT]`: dhcpd is not running on a host another backend serves. Other backends'
/// configs depend on it, so dhcpd stops before they start.
pub fn stopped_address(host: &str, unit: &str) -> Address {
    Address::new(PROVIDER, "stopped", Some(host), unit)
}

/// A host's dhcpd unit that must not run (its address names the unit).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoppedSpec {
    pub unit: String,
}

/// What `systemctl is-active` said.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObservedUnit {
    pub unit: String,
    pub active: bool,
}

fn is_active(unit: &str) -> groundwork_sdk::Cmd {
    groundwork_sdk::Cmd::new("systemctl").arg("is-active").arg(unit)
}

/// Pure: a unit that must not run, against what runs. Gone from the inventory (the host is back on
/// dhcpd): deleted from the record only; the config's restart starts dhcpd again.
pub fn diff_stopped(address: &Address, desired: Option<&StoppedSpec>, actual: Option<&ObservedUnit>) -> Change {
    let active = actual.is_some_and(|a| a.active);
    let dv = desired.and_then(|d| serde_json::to_value(d).ok());
    let av = actual.and_then(|a| serde_json::to_value(a).ok());
    let mut c = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), !active);
    if let (Some(d), true) = (desired, active) {
        c.details.push(Detail::modify(format!("{} running → stopped and disabled", d.unit)));
    }
    c
}

/// The provider: whole dhcpd.conf files described by their host pins, and dhcpd kept stopped where
/// another backend serves.
pub struct DhcpdProvider {
    files: file::WholeFiles,
}

impl Default for DhcpdProvider {
    fn default() -> Self {
        DhcpdProvider {
            files: file::WholeFiles {
                name: PROVIDER,
                details: |old, new| {
                    pin_details(&old.map(parse_pins).unwrap_or_default(), &new.map(parse_pins).unwrap_or_default())
                },
            },
        }
    }
}

#[async_trait::async_trait]
impl Provider for DhcpdProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        let (units, files): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().copied().partition(|r| r.address.kind == "stopped");
        let mut p = self.files.prefetch(&files);
        p.execs.extend(units.iter().filter_map(|r| r.spec::<StoppedSpec>().ok()).map(|s| is_active(&s.unit)));
        p
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let mut out = Vec::with_capacity(resources.len());
        let files: Vec<&Resource> = resources.iter().copied().filter(|r| r.address.kind != "stopped").collect();
        let mut file_states = self.files.read(cx, &files).await?.into_iter();
        for r in resources {
            if r.address.kind != "stopped" {
                out.push(file_states.next().flatten());
                continue;
            }
            let unit = r.spec::<StoppedSpec>()?.unit;
            // A local stand-in runs no services.
            let active = cx.run_commands
                && cx.transport(&r.address)?.exec(&is_active(&unit)).await.map_err(|e| e.at(&r.address))?.success();
            out.push(serde_json::to_value(ObservedUnit { unit, active }).ok());
        }
        Ok(out)
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        if address.kind != "stopped" {
            return self.files.diff(address, desired, actual);
        }
        let d: Option<StoppedSpec> = desired.map(|v| groundwork_sdk::decode(address, v)).transpose()?;
        let a: Option<ObservedUnit> = actual.map(|v| groundwork_sdk::decode(address, v)).transpose()?;
        Ok(diff_stopped(address, d.as_ref(), a.as_ref()))
    }

    /// dhcpd.conf and its fragments restart dhcpd once (it has no reload).
    fn activation_deferred(&self, change: &Change) -> bool {
        change.address.kind != "stopped" && file::defers_activation(change)
    }

    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        file::write(cx, change).await
    }

    async fn activate(&self, cx: &Context, changes: &[&Change]) -> Result<(), Error> {
        file::activate_together(cx, changes).await
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        if address.kind != "stopped" {
            return self.files.apply(cx, change).await;
        }
        // Nothing to do on the host for NoOp and Delete (forgetting it), nor on a local stand-in.
        if change.action != groundwork_sdk::Action::Update || !cx.run_commands {
            return Ok(());
        }
        let t = cx.transport(address)?;
        for verb in ["stop", "disable"] {
            let cmd = groundwork_sdk::Cmd::new("systemctl").arg(verb).arg(&address.name);
            let out = t.exec(&cmd).await.map_err(|e| e.at(address))?;
            if !out.success() {
                return Err(Error::failed(address, format!("{cmd}: {}", out.message())));
            }
        }
        Ok(())
    }
}

/// Host-level view: `+ host w4 52:54:… → 10.88.0.34`.
pub fn pin_details(before: &BTreeMap<String, Pin>, after: &BTreeMap<String, Pin>) -> Vec<Detail> {
    let mut out = Vec::new();
    for (name, b) in before {
        match after.get(name) {
            None => out.push(Detail::remove(format!("host {name} {} → {}", b.mac, b.address))),
            Some(a) if a != b => out
                .push(Detail::modify(format!("host {name} {} → {} (was {} → {})", a.mac, a.address, b.mac, b.address))),
            Some(_) => {}
        }
    }
    for (name, a) in after {
        if !before.contains_key(name) {
            out.push(Detail::add(format!("host {name} {} → {}", a.mac, a.address)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
 class "pxeclients" {
      match if substring (option vendor-class-identifier, 0, 9) = "PXEClient";
      next-server 192.2.0.101;  # TFTP Server address (offline fixture)
 }
 host bs{
                hardware ethernet 00:50:56:96:11:c2;
                fixed-address 192.2.0.11; # offline fixture
 }
 host w3{
                hardware ethernet 00:50:56:96:E3:F5;
                fixed-address 172.16.0.33; # offline fixture
 }
"#;

    #[test]
    fn parses_the_seed_pins() {
        let pins = parse_pins(SEED);
        assert_eq!(pins.len(), 2);
        assert_eq!(pins["bs"], Pin { mac: "00:50:56:96:11:c2".into(), address: "192.2.0.11".into() }); // offline fixture
        assert_eq!(pins["w3"].mac, "00:50:56:96:e3:f5");
    }

    #[test]
    fn pin_changes_are_host_level() {
        let before = parse_pins(SEED);
        let mut after = before.clone();
        after.remove("bs");
        after.insert("w3".into(), Pin { mac: "00:50:56:96:e3:f5".into(), address: "172.16.0.35".into() }); // offline fixture
        after.insert("w4".into(), Pin { mac: "00:50:56:96:00:04".into(), address: "172.16.0.34".into() }); // offline fixture
        let d: Vec<String> = pin_details(&before, &after).iter().map(|d| format!("{:?} {}", d.op, d.text)).collect();
        assert_eq!(
            d,
            vec![
                "Remove host bs 00:50:56:96:11:c2 → 192.2.0.11", // offline fixture
                "Modify host w3 00:50:56:96:e3:f5 → 172.16.0.35 (was 00:50:56:96:e3:f5 → 172.16.0.33)", // offline fixture
                "Add host w4 00:50:56:96:00:04 → 172.16.0.34", // offline fixture
            ]
        );
    }

    #[test]
    fn dhcpd_is_stopped_where_another_backend_serves_and_forgotten_after() {
        let a = stopped_address("ns1", "dhcpd");
        let want = StoppedSpec { unit: "dhcpd".into() };
        let running = ObservedUnit { unit: "dhcpd".into(), active: true };
        let stopped = ObservedUnit { unit: "dhcpd".into(), active: false };
        let c = diff_stopped(&a, Some(&want), Some(&running));
        assert_eq!(c.action, groundwork_sdk::Action::Update);
        assert_eq!(c.details[0].text, "dhcpd running → stopped and disabled");
        assert_eq!(diff_stopped(&a, Some(&want), Some(&stopped)).action, groundwork_sdk::Action::NoOp);
        assert_eq!(diff_stopped(&a, None, Some(&stopped)).action, groundwork_sdk::Action::Delete);
    }

    #[test]
    fn masks() {
        assert_eq!(dotted_mask(24), "255.255.255.0");
        assert_eq!(dotted_mask(23), "255.255.254.0");
        assert_eq!(dotted_mask(0), "0.0.0.0");
    }
}
