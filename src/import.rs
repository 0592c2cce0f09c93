//! Import: what hand-made infra declares (BIND zones, dhcpd.conf, haproxy.cfg, the web server's docroot),
//! read into an environment. Pure: `ops::import` reads the files over the transport and hands them
//! here; nothing in this module opens a connection.
//!
//! Every value read from a host is checked against its inventory type before it is written (a value a
//! type refuses is reported and left out), and the sections are checked as a whole by deserializing
//! them as the `Environment` they make. What the environment cannot say is reported with the file and
//! line it came from (docs/import.md).

use groundwork_bind::options::ConfZone;
use groundwork_bind::zone::{self, ParsedZone, Record};
use groundwork_sdk::model::{Environment, Host, HostRole, SshSettings};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A file as read from an infra host.
#[derive(Clone, Debug)]
pub struct HostFile {
    pub host: String,
    pub path: String,
    pub text: String,
}

/// A zone named.conf declares, with its file.
#[derive(Clone, Debug)]
pub struct ZoneFile {
    pub stanza: ConfZone,
    /// Where the stanza is: `host:path`.
    pub conf: String,
    pub file: HostFile,
}

/// One regular file under the docroot: its path below it, size and digest (never its content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedEntry {
    pub path: String,
    pub size: u64,
    pub mode: u32,
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct Served {
    pub host: String,
    pub docroot: String,
    pub files: Vec<ServedEntry>,
}

/// Everything read from the hosts.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub zones: Vec<ZoneFile>,
    pub dhcpd: Option<HostFile>,
    /// kea-dhcp4.conf, read where there is no dhcpd.conf.
    pub kea: Option<HostFile>,
    pub haproxy: Option<HostFile>,
    pub served: Option<Served>,
    /// A load balancer's firewalld: its default zone and custom services, as read.
    pub firewall: Option<FirewallRead>,
    /// Local SELinux customizations: the http host's (file contexts) and the load balancer's (booleans,
    /// port labels).
    pub selinux_http: Option<(String, groundwork_selinux::Local)>,
    pub selinux_lb: Option<(String, groundwork_selinux::Local)>,
    /// What the reading side already has to say (a file not found, an include not followed).
    pub notes: Vec<Note>,
}

/// A finding of the import, located where it can be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// `host:path:line`, `host:path` or empty.
    pub at: String,
    pub message: String,
}

impl Note {
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Note {
        Note { at: at.into(), message: message.into() }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

/// The imported environment: its sections in the order they are written, and the findings.
#[derive(Debug)]
pub struct Imported {
    pub sections: Vec<(&'static str, Value)>,
    pub notes: Vec<Note>,
    /// The served files found (by digest), for the report.
    pub served: Option<Served>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no zone has an A record for api.<cluster>.<base domain>: the cluster's name cannot be told from the zones read ({0})")]
    NoApiRecord(String),
    #[error("{0}")]
    Invalid(String),
}

/// `host:path:line`, or `host:path` where no line applies (0).
fn at(f: &HostFile, line: usize) -> String {
    if line == 0 {
        format!("{}:{}", f.host, f.path)
    } else {
        format!("{}:{}:{line}", f.host, f.path)
    }
}

fn is_reverse(zone: &str) -> bool {
    zone.ends_with("in-addr.arpa") || zone.ends_with("ip6.arpa")
}

/// A value as its inventory type takes it, else None with a note.
fn typed<T: serde::de::DeserializeOwned>(v: Value, what: &str, at: &str, notes: &mut Vec<Note>) -> Option<T> {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            notes.push(Note::new(at, format!("{what} {v} is not usable in an environment ({e}); left out")));
            None
        }
    }
}

/// A node as the files describe it.
#[derive(Clone, Debug)]
struct NodeFacts {
    name: String,
    ip: IpAddr,
    mac: Option<String>,
    /// Where the name's A record is.
    dns_at: Option<String>,
    dhcp_at: Option<String>,
}

/// Build the environment from what was read. `hosts` and `ssh` come from the environment or hosts file
/// the import was pointed at; the lb host gets the VIPs the zones give api and api-int.
pub fn build(hosts: &BTreeMap<String, Host>, ssh: &SshSettings, observed: &Observed) -> Result<Imported, ImportError> {
    let mut notes = observed.notes.clone();
    // Zones, parsed.
    let mut parsed: Vec<(&ZoneFile, ParsedZone)> = Vec::new();
    for z in &observed.zones {
        match zone::parse(&z.file.text, &z.stanza.name) {
            Ok(p) => {
                for e in &p.errors {
                    notes.push(Note::new(at(&z.file, 0), format!("{e}: not read, and not carried over")));
                }
                for i in &p.includes {
                    notes.push(Note::new(
                        at(&z.file, 0),
                        format!("$INCLUDE {i:?} is not followed: its records are not imported"),
                    ));
                }
                parsed.push((z, p));
            }
            Err(e) => notes.push(Note::new(at(&z.file, 0), format!("{e}: zone not read"))),
        }
    }
    // The cluster domain: the owner of api's A record, in a forward zone.
    let api = parsed
        .iter()
        .filter(|(z, _)| !is_reverse(&z.stanza.name))
        .flat_map(|(z, p)| p.records.iter().map(move |r| (*z, p, r)))
        .find(|(_, _, r)| r.rtype == "A" && r.name.starts_with("api.") && r.name.matches('.').count() >= 2);
    let Some((fwd, fwd_zone, api_record)) = api else {
        let read: Vec<String> = observed.zones.iter().map(|z| z.stanza.name.clone()).collect();
        return Err(ImportError::NoApiRecord(if read.is_empty() {
            "no zone was read".into()
        } else {
            read.join(", ")
        }));
    };
    let domain = api_record.name["api.".len()..].to_string();
    let (cluster_name, base_domain) = domain.split_once('.').unwrap_or((&domain, ""));
    let cluster = json!({ "name": cluster_name, "base_domain": base_domain });
    let fqdn = |label: &str| format!("{label}.{domain}");
    let line_of = |p: &ParsedZone, r: &Record| p.lines.get(r).copied().unwrap_or(0);
    let a_of = |name: &str| {
        fwd_zone.records.iter().find(|r| r.name == name && r.rtype == "A").and_then(|r| r.value.parse::<IpAddr>().ok())
    };
    let external: IpAddr =
        api_record.value.parse().map_err(|_| ImportError::Invalid(format!("api's A record {}", api_record.value)))?;
    let internal = match a_of(&fqdn("api-int")) {
        Some(ip) => ip,
        None => {
            notes.push(Note::new(
                at(&fwd.file, 0),
                format!("no A record for {}: the internal VIP is taken to be api's ({external})", fqdn("api-int")),
            ));
            external
        }
    };
    if a_of(&fqdn("*.apps")).is_some_and(|ip| ip != external) {
        notes.push(Note::new(
            at(&fwd.file, 0),
            format!("*.apps does not point at api's address {external}: groundwork points both at the external VIP"),
        ));
    }

    // Nodes from the forward zone: `<label>.<cluster domain>` A records that are not api, api-int, *.apps
    // or an infra host.
    let reserved = ["api", "api-int"];
    let mut nodes: Vec<NodeFacts> = Vec::new();
    let mut kept: Vec<Record> = Vec::new();
    for r in &fwd_zone.records {
        let line = line_of(fwd_zone, r);
        let label = r.name.strip_suffix(&format!(".{domain}")).filter(|l| !l.contains('.'));
        match (r.rtype.as_str(), label) {
            ("A", Some(l)) if reserved.contains(&l) => {}
            ("A", Some(l)) if hosts.contains_key(l) => {
                if r.value.parse::<IpAddr>().ok() != hosts.get(l).map(|h| h.address) {
                    notes.push(Note::new(
                        at(&fwd.file, line),
                        format!(
                            "{} has A {} but the host {l} is at another address: groundwork writes the host's",
                            r.name, r.value
                        ),
                    ));
                }
            }
            ("A", Some(l)) if l != "*" => match r.value.parse::<IpAddr>() {
                Ok(ip) => nodes.push(NodeFacts {
                    name: l.to_string(),
                    ip,
                    mac: None,
                    dns_at: Some(at(&fwd.file, line)),
                    dhcp_at: None,
                }),
                Err(_) => kept.push(r.clone()),
            },
            ("A", None) if r.name == fqdn("*.apps") => {}
            ("NS", _) if r.name == fwd.stanza.name => {}
            _ => kept.push(r.clone()),
        }
    }
    // NS targets inside the zone need an address there (named-checkzone refuses the zone otherwise).
    for ns in fwd_zone.records.iter().filter(|r| r.rtype == "NS" && r.name == fwd.stanza.name) {
        let inside = ns.value == fwd.stanza.name || ns.value.ends_with(&format!(".{}", fwd.stanza.name));
        if inside && !fwd_zone.records.iter().any(|r| r.name == ns.value && (r.rtype == "A" || r.rtype == "AAAA")) {
            notes.push(Note::new(
                at(&fwd.file, line_of(fwd_zone, ns)),
                format!("NS {} has no address record in the zone: named-checkzone refuses the zone as it is", ns.value),
            ));
        }
    }
    // Reverse zones: PTRs that say something else than the nodes' names, and SOAs naming another server.
    for (z, p) in parsed.iter().filter(|(z, _)| is_reverse(&z.stanza.name)) {
        if let Some((mname, line)) = &p.soa_mname {
            if let Some(fm) = &fwd_zone.soa_mname {
                if *mname != fm.0 {
                    notes.push(Note::new(
                        at(&z.file, *line),
                        format!(
                            "the SOA names {mname} as primary, the forward zone {}: groundwork writes one name",
                            fm.0
                        ),
                    ));
                }
            }
        }
        for r in p.records.iter().filter(|r| r.rtype == "PTR") {
            let label = r.value.strip_suffix(&format!(".{domain}")).filter(|l| !l.contains('.'));
            let known = label
                .is_some_and(|l| nodes.iter().any(|n| n.name == l) || hosts.contains_key(l) || reserved.contains(&l));
            if !known {
                notes.push(Note::new(
                    at(&z.file, line_of(p, r)),
                    format!("PTR {} → {} names no node or host: not carried over", r.name, r.value),
                ));
            }
        }
        for r in p.records.iter().filter(|r| r.rtype != "PTR" && !(r.rtype == "NS" && r.name == z.stanza.name)) {
            notes.push(Note::new(
                at(&z.file, line_of(p, r)),
                format!("{} {} {} in a reverse zone: not carried over", r.name, r.rtype, r.value),
            ));
        }
    }

    // DHCP pins: MACs by name or address; a pin's address is what the machine gets.
    let mut dhcp = None;
    let kea = observed.kea.as_ref().filter(|_| observed.dhcpd.is_none());
    let kea_entries = kea.and_then(|f| {
        let e = groundwork_kea::read_entries(&f.text);
        if e.is_none() {
            notes.push(Note::new(at(f, 0), "not Kea's JSON: DHCP pins are not imported"));
        }
        e.map(|e| (f, e))
    });
    let dhcp_file = observed.dhcpd.as_ref().map(|f| (f, groundwork_dhcpd::read_conf(&f.text))).or(kea_entries);
    if let Some((f, entries)) = &dhcp_file {
        for ((name, pin), line) in entries.hosts.iter().zip(&entries.host_lines) {
            let here = at(f, *line);
            let Ok(ip) = pin.address.parse::<IpAddr>() else {
                notes.push(Note::new(
                    here,
                    format!("host {name}: fixed-address {:?} is not an IP address; left out", pin.address),
                ));
                continue;
            };
            let by_name = nodes.iter().position(|n| n.name == *name);
            let by_ip = nodes.iter().position(|n| n.ip == ip);
            match by_name.or(by_ip) {
                Some(i) => {
                    let n = &mut nodes[i];
                    if n.mac.is_some() {
                        notes.push(Note::new(here, format!("a second pin for {}: left out", n.name)));
                        continue;
                    }
                    if n.ip != ip {
                        notes.push(Note::new(
                            here.clone(),
                            format!(
                                "host {name} is pinned to {ip}, but {} has A {} ({}): the node takes the pinned address",
                                fqdn(&n.name),
                                n.ip,
                                n.dns_at.clone().unwrap_or_default()
                            ),
                        ));
                        n.ip = ip;
                    }
                    n.mac = Some(pin.mac.clone());
                    n.dhcp_at = Some(here);
                }
                None => nodes.push(NodeFacts {
                    name: name.clone(),
                    ip,
                    mac: Some(pin.mac.clone()),
                    dns_at: None,
                    dhcp_at: Some(here),
                }),
            }
        }
        let mut section = dhcp_section(f, entries, hosts, &mut notes);
        if kea.is_some() {
            section["backend"] = json!("kea");
            let interfaces = groundwork_kea::read_interfaces(&f.text);
            let typed = interfaces.iter().all(|i| groundwork_sdk::value::Interface::try_from(i.as_str()).is_ok());
            if typed && interfaces != ["*"] && !interfaces.is_empty() {
                section["kea"] = json!({ "interfaces": interfaces });
            }
        }
        dhcp = Some(section);
    }

    // The DHCP file's order (what it was written in), then the zone's for nodes without a pin.
    if let Some((f, _)) = &dhcp_file {
        let line = |n: &NodeFacts| {
            n.dhcp_at
                .as_deref()
                .and_then(|a| a.strip_prefix(&format!("{}:{}:", f.host, f.path)))
                .and_then(|l| l.parse::<usize>().ok())
        };
        nodes.sort_by_key(|n| line(n).unwrap_or(usize::MAX));
    }
    // Roles from the load balancer's backends.
    let mut lb = LbFacts::default();
    if let Some(f) = &observed.haproxy {
        lb = lb_facts(f, &nodes, &domain, &mut notes);
    }
    let mut node_values = Vec::new();
    let mut roles: BTreeMap<String, &'static str> = BTreeMap::new();
    for n in &nodes {
        let here = n.dns_at.clone().or(n.dhcp_at.clone()).unwrap_or_default();
        let role = lb.role_of(&n.name);
        let role = match role {
            Some(r) => r,
            // In no backend while others are: an infra node before day 2 moves ingress to it (the
            // reference install adds them so); with no load balancer read at all, a worker.
            None if !lb.frontends.is_empty() => {
                notes.push(Note::new(
                    here.clone(),
                    format!(
                        "{} is in no load balancer backend: imported as an infra node (say worker if it is one)",
                        n.name
                    ),
                ));
                "infra"
            }
            None => {
                notes.push(Note::new(
                    here.clone(),
                    format!("{}: no load balancer was read to tell its role: imported as a worker", n.name),
                ));
                "worker"
            }
        };
        let Some(mac) = &n.mac else {
            notes.push(Note::new(
                here.clone(),
                format!(
                    "{} has no DHCP pin (no MAC): not imported as a node; its A record is kept as an extra record",
                    n.name
                ),
            ));
            kept.push(Record { name: fqdn(&n.name), rtype: "A".into(), value: n.ip.to_string() });
            continue;
        };
        let v = json!({ "name": n.name, "role": role, "mac": mac, "ip": n.ip.to_string() });
        if typed::<groundwork_sdk::model::Node>(v.clone(), "node", &here, &mut notes).is_some() {
            roles.insert(n.name.clone(), role);
            node_values.push(v);
        }
    }

    // Records groundwork does not derive: extra records where the type allows, else kept as they are.
    let mut records = Vec::new();
    let mut ignore = BTreeSet::new();
    for r in &kept {
        let line = line_of(fwd_zone, r);
        let raw = json!({ "name": format!("{}.", r.name), "type": r.rtype, "value": r.value });
        match serde_json::from_value::<groundwork_sdk::value::DnsRecord>(raw.clone()) {
            Ok(_) if r.name == fwd.stanza.name || r.name.ends_with(&format!(".{}", fwd.stanza.name)) => {
                records.push(raw)
            }
            _ => {
                notes.push(Note::new(
                    at(&fwd.file, line),
                    format!("{} {} {}: kept as it is (dns.ignore_records)", r.name, r.rtype, r.value),
                ));
                ignore.insert(format!("{}.", r.name));
            }
        }
    }

    // Hosts: as given, with the VIPs on the first lb host.
    let mut host_values = Map::new();
    let mut vips_set = false;
    for (name, h) in hosts {
        let mut v = prune_host(h);
        if !vips_set && h.roles.contains(&HostRole::Lb) {
            v["vips"] = json!({ "internal": internal.to_string(), "external": external.to_string() });
            vips_set = true;
        }
        host_values.insert(name.clone(), v);
    }
    if !vips_set {
        notes.push(Note::new("", "no host has role lb: the VIPs api and api-int point at are not recorded"));
    }

    let machine = machine_networks(hosts, external);
    let networks = json!({
        "machine": machine,
        "cluster": { "cidr": "10.128.0.0/14", "host_prefix": 23 },
        "service": ["172.30.0.0/16"],
    });
    notes.push(Note::new(
        "",
        format!(
            "networks.machine is taken to be {} (around the infra hosts and the API VIP); networks.cluster and networks.service are not visible on the infra hosts: OpenShift's defaults are written. Check all three against install-config.yaml",
            machine.join(", ")
        ),
    ));

    let mut dns = Map::new();
    if fwd.stanza.name != domain {
        dns.insert("zone".into(), json!(fwd.stanza.name));
    }
    if !records.is_empty() {
        dns.insert("records".into(), Value::Array(records));
    }
    if !ignore.is_empty() {
        dns.insert("ignore_records".into(), json!(ignore));
    }
    if let Some(dir) = fwd.file.path.rsplit_once('/').map(|(d, _)| d).filter(|d| !d.is_empty()) {
        dns.insert("zone_dir".into(), json!(dir));
    }

    let mut sections: Vec<(&'static str, Value)> = vec![
        ("cluster", cluster),
        ("networks", networks),
        ("hosts", Value::Object(host_values)),
        ("ssh", prune(serde_json::to_value(ssh).unwrap_or_default(), &default_of::<SshSettings>(json!({})))),
        ("nodes", Value::Array(node_values)),
    ];
    if !dns.is_empty() {
        sections.push(("dns", Value::Object(dns)));
    }
    if let Some(d) = dhcp {
        sections.push(("dhcp", d));
    }
    if let Some(fe) = lb.explicit_frontends(&roles) {
        sections.push(("loadbalancer", json!({ "frontends": fe })));
    }
    if let Some(f) = observed.firewall.as_ref().and_then(|f| firewall_section(f, &mut notes)) {
        sections.push(("firewall", f));
    }
    if let Some(s) = selinux_section(observed.selinux_http.as_ref(), observed.selinux_lb.as_ref(), &mut notes) {
        sections.push(("selinux", s));
    }
    if let Some(s) = &observed.served {
        let serve = served_files(s, &mut notes);
        let mut files = json!({ "docroot": s.docroot });
        if !serve.is_empty() {
            files["serve"] = Value::Array(serve);
        }
        sections.push(("files", files));
    }
    // The whole must load as an environment.
    let whole = Value::Object(sections.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    serde_json::from_value::<Environment>(whole)
        .map_err(|e| ImportError::Invalid(format!("the imported sections do not make an environment: {e}")))?;
    notes.sort();
    notes.dedup();
    Ok(Imported { sections, notes, served: observed.served.clone() })
}

/// A load balancer's firewalld as read: its default zone, and the snapshot of that zone and of the
/// custom services defined on the host.
#[derive(Clone, Debug)]
pub struct FirewallRead {
    pub host: String,
    pub zone: String,
    pub snapshot: groundwork_firewalld::Snapshot,
}

/// Services firewalld opens on a fresh install: left to the OS, never managed (a later removal from the
/// list would close ssh under the operator).
const OS_SERVICES: &[&str] = &["ssh", "dhcpv6-client", "cockpit", "mdns", "samba-client"];

/// `firewall`: what the zone opens permanently (what survives a reload), less what the OS opens, with
/// the custom services it uses. Values that do not type are reported and left out.
fn firewall_section(f: &FirewallRead, notes: &mut Vec<Note>) -> Option<Value> {
    use groundwork_sdk::value::{FirewalldName, PortProto};
    let at = format!("{}:firewalld zone {}", f.host, f.zone);
    let (services, ports) = f.snapshot.zones.get(&(f.zone.clone(), "permanent".into()))?;
    let (rt_services, rt_ports) =
        f.snapshot.zones.get(&(f.zone.clone(), "runtime".into())).cloned().unwrap_or_default();
    for s in rt_services.difference(services).chain(rt_ports.difference(ports)) {
        notes.push(Note::new(at.clone(), format!("{s} is open at runtime only (a reload closes it): not imported")));
    }
    let mut kept = Vec::new();
    for s in services {
        if OS_SERVICES.contains(&s.as_str()) {
            notes.push(Note::new(at.clone(), format!("{s}: opened by the OS, left to it (not managed)")));
        } else if FirewalldName::try_from(s.as_str()).is_ok() {
            kept.push(s.clone());
        } else {
            notes.push(Note::new(at.clone(), format!("service {s:?} is not a firewalld name groundwork takes")));
        }
    }
    let kept_ports: Vec<String> = ports
        .iter()
        .filter(|p| {
            let ok = PortProto::try_from(p.as_str()).is_ok();
            if !ok {
                notes.push(Note::new(at.clone(), format!("port {p:?} is not PORT/PROTO: not imported")));
            }
            ok
        })
        .cloned()
        .collect();
    let mut custom = Map::new();
    for (name, def) in &f.snapshot.defs {
        let Some(def) = def.as_ref().filter(|_| kept.contains(name)) else { continue };
        let mut v = json!({ "ports": def.ports, "protocols": def.protocols });
        if let Some(d) = &def.description {
            v["description"] = json!(d);
        }
        custom.insert(name.clone(), v);
    }
    if kept.is_empty() && kept_ports.is_empty() {
        return None;
    }
    let mut v = json!({ "zone": f.zone, "services": kept, "hosts": [f.host] });
    if !kept_ports.is_empty() {
        v["ports"] = json!(kept_ports);
    }
    if !custom.is_empty() {
        v["custom_services"] = Value::Object(custom);
    }
    Some(v)
}

/// `selinux`: the http host's local file contexts, the load balancer's local booleans and port labels.
/// Values that do not type are reported and left out.
fn selinux_section(
    http: Option<&(String, groundwork_selinux::Local)>,
    lb: Option<&(String, groundwork_selinux::Local)>,
    notes: &mut Vec<Note>,
) -> Option<Value> {
    use groundwork_sdk::value::{FcontextPattern, PortProto, SelinuxName};
    let mut v = Map::new();
    if let Some((host, local)) = http {
        let mut rules = Vec::new();
        for (path, setype) in &local.fcontexts {
            if FcontextPattern::try_from(path.as_str()).is_ok() && SelinuxName::try_from(setype.as_str()).is_ok() {
                rules.push(json!({ "path": path, "type": setype, "hosts": [host] }));
            } else {
                notes.push(Note::new(
                    format!("{host}:SELinux"),
                    format!("file context {path:?} → {setype:?}: not imported"),
                ));
            }
        }
        if !rules.is_empty() {
            v.insert("fcontexts".into(), Value::Array(rules));
        }
    }
    if let Some((host, local)) = lb {
        let booleans: Map<String, Value> = local
            .booleans
            .iter()
            .filter(|(b, _)| SelinuxName::try_from(b.as_str()).is_ok())
            .map(|(b, on)| (b.clone(), json!(on)))
            .collect();
        let ports: Vec<Value> = local
            .ports
            .iter()
            .map(|((proto, port), t)| (format!("{port}/{proto}"), t))
            .filter(|(p, t)| PortProto::try_from(p.as_str()).is_ok() && SelinuxName::try_from(t.as_str()).is_ok())
            .map(|(p, t)| json!({ "port": p, "type": t }))
            .collect();
        if !booleans.is_empty() || !ports.is_empty() {
            v.insert("hosts".into(), json!([host]));
        }
        if !booleans.is_empty() {
            v.insert("booleans".into(), Value::Object(booleans));
        }
        if !ports.is_empty() {
            v.insert("ports".into(), Value::Array(ports));
        }
    }
    (!v.is_empty()).then_some(Value::Object(v))
}

/// `files.serve` entries known by digest (content never read off the host): plan reports a file that
/// changes; giving an entry a `source` lets groundwork write it.
fn served_files(s: &Served, notes: &mut Vec<Note>) -> Vec<Value> {
    let mut out = Vec::new();
    for f in &s.files {
        let at = format!("{}:{}/{}", s.host, s.docroot.trim_end_matches('/'), f.path);
        let mut v = json!({ "path": f.path, "sha256": f.sha256, "size": f.size });
        if f.path.ends_with(".ign") {
            v["kind"] = json!("ignition");
        }
        if f.mode != 0o644 {
            v["mode"] = json!(format!("{:04o}", f.mode));
        }
        if typed::<groundwork_sdk::model::ServedFile>(v.clone(), "served file", &at, notes).is_some() {
            out.push(v);
        }
    }
    if !out.is_empty() {
        notes.push(Note::new(
            format!("{}:{}", s.host, s.docroot),
            format!(
                "{} served file(s) imported by digest (files.serve sha256): groundwork reports when one changes, and writes one once it has a source",
                out.len()
            ),
        ));
    }
    out
}

/// The machine networks: the /24 (IPv6: /64) around each infra host and the API VIP, in that order.
/// Where the infra hosts are is the one address fact not read from a file that may be wrong; the DHCP
/// subnet is checked against these by validate.
fn machine_networks(hosts: &BTreeMap<String, Host>, external: IpAddr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ip in hosts.values().map(|h| h.address).chain([external]) {
        let net = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}/24", Ipv4Addr::new(o[0], o[1], o[2], 0))
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{}/64", std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        };
        if !out.contains(&net) {
            out.push(net);
        }
    }
    out
}

/// `dhcp`: subnet, routers, PXE (next-server and the iPXE script's URL).
fn dhcp_section(
    f: &HostFile,
    e: &groundwork_dhcpd::DhcpdEntries,
    hosts: &BTreeMap<String, Host>,
    notes: &mut Vec<Note>,
) -> Value {
    let mut d = Map::new();
    if let Some((net, mask, line)) = e.subnets.first() {
        let prefix = mask.parse::<Ipv4Addr>().map(|m| u32::from(m).count_ones()).unwrap_or(24);
        d.insert("subnet".into(), json!(format!("{net}/{prefix}")));
        for (net, _, line) in e.subnets.iter().skip(1) {
            notes.push(Note::new(at(f, *line), format!("subnet {net}: groundwork serves one subnet; left out")));
        }
        let _ = line;
    } else {
        notes.push(Note::new(at(f, 0), "no subnet declaration: dhcp.subnet must be set by hand"));
    }
    if !e.routers.is_empty() {
        d.insert("routers".into(), json!(e.routers));
    }
    let dns_hosts: Vec<String> =
        hosts.values().filter(|h| h.roles.contains(&HostRole::Dns)).map(|h| h.address.to_string()).collect();
    if !e.name_servers.is_empty() && e.name_servers != dns_hosts {
        d.insert("dns_servers".into(), json!(e.name_servers));
    }
    // PXE: next-server is the TFTP host; the http:// filename is the iPXE script.
    let tftp = e.next_servers.iter().find_map(|ns| {
        let ip: IpAddr = ns.parse().ok()?;
        hosts.iter().find(|(_, h)| h.address == ip).map(|(n, _)| n.clone())
    });
    let script = e.filenames.iter().find_map(|f| {
        let rest = f.strip_prefix("http://").or_else(|| f.strip_prefix("https://"))?;
        rest.split_once('/').map(|(_, p)| p.to_string())
    });
    let loaders: Vec<&String> = e.filenames.iter().filter(|f| !f.contains("://")).collect();
    for l in loaders.iter().filter(|l| !l.ends_with(".efi") && !l.ends_with(".kpxe")) {
        notes.push(Note::new(
            at(f, 0),
            format!("filename {l:?}: groundwork hands out the iPXE loaders and script only; left out"),
        ));
    }
    match (tftp, script) {
        (Some(t), Some(s)) => {
            let mut pxe = json!({ "tftp_host": t, "script": s });
            if let Some(efi) = loaders.iter().find(|l| l.ends_with(".efi")) {
                if efi.as_str() != "efi/ipxe.efi" {
                    pxe["efi_file"] = json!(efi);
                }
            }
            d.insert("pxe".into(), pxe);
        }
        (None, _) if !e.next_servers.is_empty() => notes.push(Note::new(
            at(f, 0),
            format!("next-server {} is none of the hosts: PXE settings left out", e.next_servers.join(", ")),
        )),
        _ => {}
    }
    Value::Object(d)
}

/// A backend server as a node and the port it is reached on.
type NodePort = (String, u16);

/// What haproxy.cfg says about the nodes.
#[derive(Default)]
struct LbFacts {
    /// (frontend name, bind port, [(node, port)]) per frontend that reaches nodes.
    frontends: Vec<(String, u16, Vec<NodePort>)>,
    control: BTreeSet<String>,
    bootstrap: BTreeSet<String>,
    ingress: BTreeSet<String>,
}

impl LbFacts {
    fn role_of(&self, node: &str) -> Option<&'static str> {
        if self.bootstrap.contains(node) {
            Some("bootstrap")
        } else if self.control.contains(node) {
            Some("master")
        } else if self.ingress.contains(node) {
            Some("worker")
        } else {
            None
        }
    }

    /// Explicit frontends when what haproxy.cfg does differs from what groundwork derives from the roles
    /// (an https backend on port 80, a master in the ingress): validate then says what is off.
    fn explicit_frontends(&self, roles: &BTreeMap<String, &'static str>) -> Option<Vec<Value>> {
        if self.frontends.is_empty() {
            return None;
        }
        let derived = |port: u16| -> BTreeSet<(String, u16)> {
            let want: &[&str] = match port {
                6443 | 22623 => &["bootstrap", "master"],
                _ => &["worker"],
            };
            roles.iter().filter(|(_, r)| want.contains(r)).map(|(n, _)| (n.clone(), port)).collect()
        };
        let ports: BTreeSet<u16> = self.frontends.iter().map(|f| f.1).collect();
        let same = ports == [6443, 22623, 80, 443].into_iter().collect()
            && self.frontends.len() == 4
            && self.frontends.iter().all(|(_, port, b)| {
                b.iter().filter(|(n, _)| roles.contains_key(n)).cloned().collect::<BTreeSet<_>>() == derived(*port)
            });
        if same {
            return None;
        }
        Some(
            self.frontends
                .iter()
                .map(|(name, port, b)| {
                    let backends: Vec<Value> = b
                        .iter()
                        .filter(|(n, _)| roles.contains_key(n))
                        .map(|(n, p)| json!({ "node": n, "port": p }))
                        .collect();
                    json!({ "name": name, "port": port, "backends": backends })
                })
                .collect(),
        )
    }
}

fn lb_facts(f: &HostFile, nodes: &[NodeFacts], domain: &str, notes: &mut Vec<Note>) -> LbFacts {
    let cfg = groundwork_haproxy::read_config(&f.text);
    let mut facts = LbFacts::default();
    // A server's node: by address, or by name (`m1`, `m1.<domain>`).
    let node_of = |addr: &str, server: &str| -> Option<(String, u16)> {
        let (host, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let by_ip = host.parse::<IpAddr>().ok().and_then(|ip| nodes.iter().find(|n| n.ip == ip));
        let label = host.strip_suffix(&format!(".{domain}")).unwrap_or(&host).to_string();
        let by_name =
            nodes.iter().find(|n| n.name == label || (by_ip.is_none() && host.is_empty() && n.name == server));
        by_ip.or(by_name).map(|n| (n.name.clone(), port))
    };
    for (i, (name, port, backend)) in cfg.frontends.iter().enumerate() {
        let fline = cfg.frontend_lines.get(i).copied().unwrap_or(0);
        for b in cfg.binds.get(i).into_iter().flatten() {
            let host = b.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
            if !(host.is_empty() || host == "*" || host == "0.0.0.0" || host == "::") {
                notes.push(Note::new(
                    at(f, fline),
                    format!("frontend {name} binds {b}: groundwork binds every address (*:{port})"),
                ));
            }
        }
        let Ok(port) = port.parse::<u16>() else { continue };
        // A `listen` section is its own backend.
        let backend = if backend.is_empty() { name } else { backend };
        let mut reached = Vec::new();
        for ((be, server, addr), line) in cfg.servers.iter().zip(&cfg.server_lines) {
            if be != backend {
                continue;
            }
            match node_of(addr, server) {
                Some((node, p)) => {
                    let is_bootstrap = server.contains("bootstrap") || server == "bs" || node.contains("bootstrap");
                    match port {
                        6443 | 22623 if is_bootstrap => {
                            facts.bootstrap.insert(node.clone());
                        }
                        6443 | 22623 => {
                            facts.control.insert(node.clone());
                        }
                        _ => {
                            facts.ingress.insert(node.clone());
                        }
                    }
                    reached.push((node, p));
                }
                None => notes.push(Note::new(
                    at(f, *line),
                    format!(
                        "server {server} ({addr}) in backend {be} is no node the zones or DHCP pins name; left out"
                    ),
                )),
            }
        }
        if !reached.is_empty() {
            facts.frontends.push((name.clone(), port, reached));
        }
    }
    // A node in both the control plane and the ingress is a master that takes ingress (compact).
    let both: Vec<String> = facts.ingress.intersection(&facts.control).cloned().collect();
    for n in both {
        notes.push(Note::new(at(f, 0), format!("{n} is in the API and the ingress backends: imported as a master")));
        facts.ingress.remove(&n);
    }
    facts
}

/// `v` without null values, at every depth (an unset option reads back as unset).
pub fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k, without_nulls(x))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// `T`'s serialization with the defaults a minimal `seed` gives it.
fn default_of<T: serde::de::DeserializeOwned + serde::Serialize>(seed: Value) -> Value {
    serde_json::from_value::<T>(seed).ok().and_then(|t| serde_json::to_value(t).ok()).unwrap_or(Value::Null)
}

/// `v` without the keys whose value equals the default's, and without nulls.
fn prune(v: Value, default: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(k, x)| !x.is_null() && default.get(k) != Some(x)).collect())
        }
        other => other,
    }
}

fn prune_host(h: &Host) -> Value {
    let v = serde_json::to_value(h).unwrap_or_default();
    let d = default_of::<Host>(json!({ "address": h.address.to_string() }));
    let mut out = prune(v, &d);
    // The address and roles are always written: they say where and what was looked for.
    out["address"] = json!(h.address.to_string());
    out["roles"] = serde_json::to_value(&h.roles).unwrap_or_default();
    out
}

/// The environment as YAML: block mappings for the sections, one flow mapping per list item, every
/// scalar written as a JSON string (YAML 1.2 reads it back as written, whatever characters it holds).
pub fn to_yaml(sections: &[(&'static str, Value)], header: &str) -> String {
    let mut out = String::new();
    for l in header.lines() {
        out.push_str(&format!("# {l}\n"));
    }
    for (name, v) in sections {
        out.push('\n');
        emit(&mut out, name, v, 0);
    }
    out
}

fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && !k.starts_with('-') {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn emit(out: &mut String, k: &str, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) if !m.is_empty() && depth < 2 => {
            out.push_str(&format!("{pad}{}:\n", key(k)));
            for (k2, v2) in m {
                emit(out, k2, v2, depth + 1);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            out.push_str(&format!("{pad}{}:\n", key(k)));
            for i in items {
                out.push_str(&format!("{pad}  - {}\n", flow(i)));
            }
        }
        other => out.push_str(&format!("{pad}{}: {}\n", key(k), flow(other))),
    }
}

/// A JSON value as a YAML flow node, keys unquoted where they are plain words.
fn flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{}: {}", key(k), flow(v))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firewall_is_what_survives_a_reload_less_what_the_os_opens() {
        let out = "@@ZONE public runtime\n  services: ssh http extra\n  ports: 8080/tcp\n\
                   @@ZONE public permanent\n  services: ssh http machine-config bad$name\n  ports: 8080/tcp\n\
                   @@SVC machine-config\n<service><description>MCS</description><port port=\"22623\" protocol=\"tcp\"/></service>\n";
        let snapshot = groundwork_firewalld::parse_snapshot(out).unwrap();
        let read = FirewallRead { host: "lb1".into(), zone: "public".into(), snapshot };
        let mut notes = Vec::new();
        let v = firewall_section(&read, &mut notes).unwrap();
        assert_eq!(v["services"], json!(["http", "machine-config"]), "{v}");
        assert_eq!(v["ports"], json!(["8080/tcp"]));
        assert_eq!(v["custom_services"]["machine-config"]["ports"], json!(["22623/tcp"]));
        assert_eq!(v["custom_services"]["machine-config"]["description"], json!("MCS"));
        assert_eq!(v["hosts"], json!(["lb1"]));
        let said: Vec<String> = notes.iter().map(|n| n.to_string()).collect();
        assert!(said.iter().any(|n| n.contains("ssh: opened by the OS")), "{said:?}");
        assert!(said.iter().any(|n| n.contains("extra is open at runtime only")), "{said:?}");
        assert!(said.iter().any(|n| n.contains("bad$name")), "{said:?}");
        // What loads as an environment's firewall section.
        let typed: groundwork_sdk::model::FirewallSettings = serde_json::from_value(v).unwrap();
        assert_eq!(typed.services.len(), 2);
    }

    #[test]
    fn selinux_customizations_come_from_the_hosts_that_use_them() {
        let http = groundwork_selinux::parse_export(
            "fcontext -a -t httpd_sys_content_t '/srv/www(/.*)?'\nfcontext -a -t bad\"type '/x'\n",
        );
        let lb =
            groundwork_selinux::parse_export("boolean -m -1 haproxy_connect_any\nport -a -t http_port_t -p tcp 8443\n");
        let mut notes = Vec::new();
        let v = selinux_section(Some(&("bastion".into(), http)), Some(&("lb1".into(), lb)), &mut notes).unwrap();
        assert_eq!(
            v["fcontexts"],
            json!([{ "path": "/srv/www(/.*)?", "type": "httpd_sys_content_t", "hosts": ["bastion"] }])
        );
        assert_eq!(v["booleans"], json!({ "haproxy_connect_any": true }));
        assert_eq!(v["ports"], json!([{ "port": "8443/tcp", "type": "http_port_t" }]));
        assert_eq!(v["hosts"], json!(["lb1"]));
        assert_eq!(notes.len(), 1, "{notes:?}");
        let _: groundwork_sdk::model::SelinuxSettings = serde_json::from_value(v).unwrap();
        assert!(selinux_section(None, None, &mut notes).is_none());
    }

    #[test]
    fn yaml_keys_and_scalars_read_back_as_written() {
        let v = json!({ "a b": "x\n: y", "plain": ["1", 2, true], "nested": { "k": "{ not: flow }" } });
        let text = to_yaml(&[("section", v.clone())], "header");
        let back: Value = groundwork_sdk::yaml::from_str_located(&text).map_err(|e| e.message).unwrap();
        assert_eq!(back["section"], v, "{text}");
    }

    /// The reference install's files with the seed's own addresses. Offline only: `build` is pure and
    /// nothing here opens a connection (the lab test moves them onto the lab's network first).
    fn reference() -> (BTreeMap<String, Host>, Observed) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference");
        let read = |host: &str, path: &str, file: &str| HostFile {
            host: host.into(),
            path: path.into(),
            text: std::fs::read_to_string(format!("{dir}/{file}")).unwrap(),
        };
        let hosts: BTreeMap<String, Host> = serde_json::from_value(json!({
            "bastion": { "address": "172.16.0.101", "roles": ["http", "tftp"] },
            "ns1": { "address": "172.16.0.102", "roles": ["dns", "dhcp"] },
            "lb1": { "address": "172.16.0.110", "roles": ["lb"] },
        }))
        .unwrap();
        let conf = groundwork_bind::options::read_named_conf(&read("ns1", "/etc/named.conf", "named.conf").text);
        let zones = conf
            .zones
            .iter()
            .filter(|z| z.kind == "master")
            .map(|z| {
                let path = z.file.clone().unwrap();
                let name = path.rsplit('/').next().unwrap().to_string();
                ZoneFile { stanza: z.clone(), conf: "ns1:/etc/named.conf".into(), file: read("ns1", &path, &name) }
            })
            .collect();
        let observed = Observed {
            zones,
            dhcpd: Some(read("ns1", "/etc/dhcp/dhcpd.conf", "dhcpd.conf")),
            haproxy: Some(read("lb1", "/etc/haproxy/haproxy.cfg", "haproxy.cfg")),
            served: None,
            notes: Vec::new(),
            ..Default::default()
        };
        (hosts, observed)
    }

    fn section<'a>(i: &'a Imported, name: &str) -> &'a Value {
        &i.sections.iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("no {name}")).1
    }

    /// The reference's pins served by Kea instead: the same nodes, with the Kea backend and the
    /// reservations' lines. Offline only, as the reference test: its seed addresses (192.2.0.0/24,
    /// 172.16.0.0/24) are values `build` reads, and nothing here opens a connection.
    #[test]
    fn kea_reservations_import_as_dhcpd_pins_do() {
        let (hosts, mut observed) = reference();
        let dhcpd = observed.dhcpd.take().unwrap();
        let e = groundwork_dhcpd::read_conf(&dhcpd.text);
        let reservations: Vec<Value> = e
            .hosts
            .iter()
            .map(|(n, p)| json!({ "hw-address": p.mac.to_ascii_uppercase(), "ip-address": p.address, "hostname": n }))
            .collect();
        let text = format!(
            "// hand-written\n{}\n",
            serde_json::to_string_pretty(&json!({ "Dhcp4": {
                "interfaces-config": { "interfaces": ["ens192"] },
                "subnet4": [{ "id": 1, "subnet": "192.2.0.0/24",
                    "option-data": [{ "name": "routers", "data": "192.2.0.254" }],
                    "reservations": reservations }]
            }}))
            .unwrap()
        );
        observed.kea = Some(HostFile { host: "ns1".into(), path: "/etc/kea/kea-dhcp4.conf".into(), text });
        let with_dhcpd = {
            let (hosts, observed) = reference();
            build(&hosts, &SshSettings::default(), &observed).unwrap()
        };
        let i = build(&hosts, &SshSettings::default(), &observed).unwrap();
        assert_eq!(section(&i, "nodes"), section(&with_dhcpd, "nodes"));
        let d = section(&i, "dhcp");
        assert_eq!(d["backend"], "kea");
        assert_eq!(d["kea"]["interfaces"], json!(["ens192"]));
        assert_eq!(d["subnet"], "192.2.0.0/24");
        assert_eq!(d["routers"], json!(["192.2.0.254"]));
        let said: Vec<String> = i.notes.iter().map(|n| n.to_string()).collect();
        assert!(
            said.iter().any(|n| n.starts_with("ns1:/etc/kea/kea-dhcp4.conf:") && n.contains("host bs")),
            "{said:?}"
        );
        // Not Kea's JSON: said so, and no pins.
        observed.kea.as_mut().unwrap().text = "{ not json".into();
        let i = build(&hosts, &SshSettings::default(), &observed).unwrap();
        let said: Vec<String> = i.notes.iter().map(|n| n.to_string()).collect();
        assert!(said.iter().any(|n| n.contains("not Kea's JSON")), "{said:?}");
    }

    #[test]
    fn the_reference_install_imports_with_its_slips_located() {
        let (hosts, observed) = reference();
        let i = build(&hosts, &SshSettings::default(), &observed).unwrap();
        assert_eq!(section(&i, "cluster"), &json!({ "name": "ocp45", "base_domain": "example.localdomain" }));
        assert_eq!(section(&i, "dns")["zone"], "example.localdomain");
        assert_eq!(section(&i, "dns")["zone_dir"], "/etc/named");
        assert_eq!(
            section(&i, "hosts")["lb1"]["vips"],
            json!({ "internal": "172.16.0.110", "external": "172.16.0.111" })
        );
        assert_eq!(section(&i, "networks")["machine"], json!(["172.16.0.0/24"]));
        let nodes: Vec<(String, String, String, String)> = section(&i, "nodes")
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let s = |k: &str| n[k].as_str().unwrap().to_string();
                (s("name"), s("role"), s("mac"), s("ip"))
            })
            .collect();
        let want =
            |n: &str, r: &str, mac: &str, ip: &str| (n.to_string(), r.to_string(), mac.to_string(), ip.to_string());
        assert_eq!(
            nodes,
            vec![
                want("bs", "bootstrap", "00:50:56:96:11:c2", "192.2.0.11"),
                want("m1", "master", "00:50:56:96:37:c8", "192.2.0.21"),
                want("m2", "master", "00:50:56:96:ec:a7", "192.2.0.22"),
                want("m3", "master", "00:50:56:96:e5:2f", "192.2.0.23"),
                want("w1", "worker", "00:50:56:96:6b:da", "192.2.0.31"),
                want("w2", "worker", "00:50:56:96:c1:c5", "192.2.0.32"),
                want("w3", "worker", "00:50:56:96:e3:f5", "172.16.0.33"),
            ]
        );
        // The https frontend's w3 on port 80 is kept as it is, so validate can say so.
        let fe = section(&i, "loadbalancer")["frontends"].as_array().unwrap().clone();
        let https = fe.iter().find(|f| f["port"] == 443).unwrap();
        assert!(https["backends"].as_array().unwrap().contains(&json!({ "node": "w3", "port": 80 })), "{https}");
        let notes: Vec<String> = i.notes.iter().map(|n| n.to_string()).collect();
        let has = |s: &str| assert!(notes.iter().any(|n| n.contains(s)), "{s}:\n{}", notes.join("\n"));
        has("ns1:/etc/named/named.example.localdomain.zone:9: NS ns1.example.localdomain has no address record");
        has("ns1:/etc/named/0.16.172.in-addr.arpa.zone:2: the SOA names ns1.example.local as primary");
        has("ns1:/etc/dhcp/dhcpd.conf:45: host bs is pinned to 192.2.0.11, but bs.ocp45.example.localdomain has A 172.16.0.11 (ns1:/etc/named/named.example.localdomain.zone:10)");
        has("next-server 192.2.0.101 is none of the hosts");
        has("filename \"pxelinux.cfg/default\"");
        // The whole thing loads as an environment and validates to the reference's slips.
        let yaml = to_yaml(&i.sections, "test");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("environment.yaml"), &yaml).unwrap();
        let loaded = crate::config::load::load(dir.path()).unwrap();
        assert_eq!(loaded.env.nodes.len(), 7);
        let findings: Vec<String> =
            crate::config::validate::validate(&loaded).iter().map(|f| f.message.clone()).collect();
        let found = |s: &str| assert!(findings.iter().any(|f| f.contains(s)), "{s}:\n{}\n{yaml}", findings.join("\n"));
        found("backend w3 of workerhttps uses port 80 but the frontend listens on 443");
        found("DHCP subnet 192.2.0.0/24 is not inside the machine network(s) 172.16.0.0/24");
        found("192.2.0.11 (bs) is outside the machine network(s) 172.16.0.0/24");
        found("fixed address 172.16.0.33 of w3 is outside the DHCP subnet 192.2.0.0/24");
    }
}
