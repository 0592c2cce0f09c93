//! # groundwork-bind
//!
//! BIND zones derived from the inventory: a forward zone (every node, the infra hosts, api, api-int,
//! `*.apps`, NS/SOA), the reverse zone(s) of each machine network at the right in-addr.arpa boundary, a
//! stanza file of its own, and one include line in named.conf; named's options (listen-on, allow-query,
//! recursion, forwarders, dnssec-validation) in a file of its own, adopted by the site's options block
//! (docs/providers/bind.md). Files are checked by `named-checkzone` /
//! `named-checkconf -z` before they replace the live ones; serials are dated and only move when the zone's
//! content changes.

pub mod options;
pub mod zone;

use async_trait::async_trait;
use groundwork_sdk::file::{self, ManagedFile, ObservedFile, CANDIDATE};
use groundwork_sdk::joint::{Block, Owner};
use groundwork_sdk::model::{Environment, HostRole, OsFamily};
use groundwork_sdk::{
    decode, Action, Address, Change, Context, Detail, Error, Provider, Resource, SecretRef, TextDiff, WriteOptions,
};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use zone::{DesiredZone, Record};

pub const PROVIDER: &str = "bind";
const DEFAULT_TTL: u32 = 3600;

/// Desired state of one zone file; the serial is decided in `diff` against what is served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ZoneSpec {
    pub path: String,
    pub zone: DesiredZone,
    /// Today's YYYYMMDD00 when the plan was made.
    pub serial_base: u32,
    pub reload: Vec<String>,
    /// Names whose served records are someone else's: carried over unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
}

/// `*` matches any run of characters; everything else is literal (case-insensitive, absolute names).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// groundwork's edits of the site's named.conf: one include line for the zone stanzas and, when
/// groundwork owns named's options, their file adopted by the options block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IncludeSpec {
    pub path: String,
    pub line: String,
    pub reload: Vec<String>,
    /// The options file to include inside the options block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// Checks an options file the way named reads it: inside an options block.
const CHECK_OPTIONS: &str = r#"t=$(mktemp) || exit 1
printf 'options {\n\tinclude "%s";\n};\n' "$1" > "$t"
named-checkconf "$t"; rc=$?
rm -f "$t"; exit $rc"#;

/// Reverse zones covering a network: whole octets, so a /23 is two /24 zones and a /12 is sixteen
/// /16 zones; longer than /24 uses the enclosing /24 (classless delegation is not attempted).
pub fn reverse_zones(net: Ipv4Net) -> Vec<(String, Ipv4Net)> {
    let p = net.prefix_len();
    let boundary = match p {
        0..=8 => 8,
        9..=16 => 16,
        _ => 24,
    };
    let subnets: Vec<Ipv4Net> = if p <= boundary {
        net.subnets(boundary).map(|s| s.collect()).unwrap_or_default()
    } else {
        vec![net.supernet_at(boundary)]
    };
    subnets
        .into_iter()
        .map(|s| {
            let o = s.network().octets();
            let labels: Vec<String> = o[..(boundary / 8) as usize].iter().rev().map(|b| b.to_string()).collect();
            (format!("{}.in-addr.arpa", labels.join(".")), s)
        })
        .collect()
}

trait SupernetAt {
    fn supernet_at(&self, prefix: u8) -> Ipv4Net;
}

impl SupernetAt for Ipv4Net {
    fn supernet_at(&self, prefix: u8) -> Ipv4Net {
        Ipv4Net::new(self.network(), prefix).map(|n| n.trunc()).unwrap_or(*self)
    }
}

/// The PTR owner name of `ip` (absolute).
pub fn ptr_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

fn expand_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::Failed { address: format!("{PROVIDER}[{what}]"), message: message.to_string() }
}

/// Activation: the reload, then every zone asked whether it loaded (`rndc reload` reports success even
/// when a zone cannot be read). With `tolerate_unknown`, a zone named does not know yet (its stanza comes
/// later in the same apply) is fine.
pub fn activation(reload: &[String], rndc: &[String], zones: &[String], tolerate_unknown: bool) -> Vec<String> {
    // Zone names are typed domain names; they are shell-quoted all the same, in messages too.
    use groundwork_sdk::transport::shell_quote;
    let words = |v: &[String]| v.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
    let mut line = words(reload);
    for z in zones {
        let zq = shell_quote(z);
        let status = format!("{} zonestatus {zq}", words(rndc));
        if tolerate_unknown {
            line.push_str(&format!(
                " && {{ out=$({status} 2>&1) || {{ printf '%s\n' \"$out\" | grep -q 'no matching zone' || {{ echo \"zone \"{zq}\": $out\" >&2; exit 1; }}; }}; }}"
            ));
        } else {
            line.push_str(&format!(
                " && {{ out=$({status} 2>&1) || {{ echo \"zone \"{zq}\": $out\" >&2; exit 1; }}; }}"
            ));
        }
    }
    vec!["sh".into(), "-c".into(), line]
}

/// Forward zone name: dns.zone, or the cluster domain.
pub fn forward_zone(env: &Environment) -> String {
    env.dns.zone.as_ref().map(|z| z.to_string()).unwrap_or_else(|| env.cluster.domain())
}

/// Every record the inventory implies: (forward records, PTR records by address).
pub fn derived_records(env: &Environment) -> (Vec<Record>, BTreeMap<Ipv4Addr, String>) {
    let domain = env.cluster.domain();
    let fqdn = |n: &str| format!("{n}.{domain}");
    let a = |name: String, ip: IpAddr| Record {
        name,
        rtype: if ip.is_ipv4() { "A" } else { "AAAA" }.to_string(),
        value: ip.to_string(),
    };
    let mut forward = Vec::new();
    let mut ptr: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let shared = env.cluster.shared_infra;
    // Nodes first: their PTRs win over any other name on the same address.
    for n in &env.nodes {
        forward.push(a(fqdn(&n.name), n.ip));
        if let IpAddr::V4(v4) = n.ip {
            ptr.insert(v4, fqdn(&n.name));
        }
    }
    if let Some((_, lb)) = env.first_host_with_role(HostRole::Lb) {
        if let Some(v) = &lb.vips {
            forward.push(a(fqdn("api"), v.external));
            forward.push(a(fqdn("api-int"), v.internal));
            forward.push(a(fqdn("*.apps"), v.external));
            for (ip, name) in [(v.internal, "api-int"), (v.external, "api")] {
                // On shared infra hosts an infra host's own address is every cluster's: no one
                // cluster's name answers for it.
                let hosts_own = env.hosts.values().any(|h| h.address == ip);
                if let (IpAddr::V4(v4), false) = (ip, shared && hosts_own) {
                    ptr.entry(v4).or_insert_with(|| fqdn(name));
                }
            }
        }
    }
    for (name, h) in &env.hosts {
        forward.push(a(fqdn(name), h.address));
        if let (IpAddr::V4(v4), false) = (h.address, shared) {
            ptr.entry(v4).or_insert_with(|| fqdn(name));
        }
    }
    for r in &env.dns.records {
        // Typed at load; the value is in the form the zone reader gives back.
        let name = r.name.absolute(&domain);
        forward.push(Record { name, rtype: r.rtype().to_string(), value: r.data.presentation() });
    }
    (forward, ptr)
}

fn nameserver(env: &Environment) -> Option<String> {
    env.dns
        .nameserver
        .clone()
        .or_else(|| env.first_host_with_role(HostRole::Dns).map(|(n, _)| n.clone()))
        .map(|n| n.to_string())
}

/// The TSIG key of zone transfers between the primary and its secondaries: its name, and the key file
/// (`key "NAME" { algorithm hmac-sha256; secret "…"; };`) by reference — it is secret.
#[derive(Clone, Debug)]
pub struct TransferKey {
    pub name: String,
    pub file: SecretRef,
}

/// The key's name for a cluster (a DNS label: safe in named.conf).
pub fn transfer_key_name(env: &Environment) -> String {
    format!("groundwork-{}-transfer", env.cluster.name)
}

/// The key file named.conf includes, for a base64 secret.
pub fn transfer_key_file(name: &str, secret_b64: &str) -> String {
    format!("key \"{name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret_b64}\";\n}};\n")
}

/// Every zone groundwork serves: the forward zone, then the reverse zones of the machine networks.
pub fn zone_names(env: &Environment) -> Vec<String> {
    let mut out = vec![forward_zone(env)];
    for net in &env.networks.machine {
        let ipnet::IpNet::V4(v4) = net else { continue };
        for (name, _) in reverse_zones(*v4) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The name server's address (the primary's, with secondaries).
pub fn primary_address(env: &Environment) -> Option<IpAddr> {
    nameserver(env).and_then(|n| env.hosts.get(n.as_str()).map(|h| h.address))
}

/// The dns hosts that are secondaries of the name server (every dns host but it).
pub fn secondaries(env: &Environment) -> Vec<(String, IpAddr)> {
    let primary = nameserver(env);
    env.hosts_with_role(HostRole::Dns)
        .filter(|(n, _)| Some(n.to_string()) != primary)
        .map(|(n, h)| (n.to_string(), h.address))
        .collect()
}

/// A TSIG key file on a dns host: carried by reference, read back by digest only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeySpec {
    pub path: String,
    pub secret: SecretRef,
    pub mode: u32,
    pub group: String,
    /// named re-reads its keys on a reload.
    pub reload: Vec<String>,
}

/// A key file as found: digest and mode, never its content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedKey {
    pub path: String,
    pub sha256: String,
    pub mode: u32,
    #[serde(default)]
    pub group: String,
}

/// Expand the environment into bind resources on every dns host. `today` is days since 1970-01-01.
/// With more than one dns host the others are secondaries, and `transfer` must be given.
pub fn resources(env: &Environment, today: i64, transfer: Option<&TransferKey>) -> Result<Vec<Resource>, Error> {
    let Some(ns_host) = nameserver(env) else { return Ok(Vec::new()) };
    let domain = env.cluster.domain();
    let ns_fqdn = format!("{ns_host}.{domain}");
    let origin = forward_zone(env);
    let ttl = env.dns.ttl.map(|t| t.get()).unwrap_or(DEFAULT_TTL);
    let secondaries = secondaries(env);
    let transfer = match (secondaries.is_empty(), transfer) {
        (true, _) => None,
        (false, Some(t)) => Some(t),
        (false, None) => {
            return Err(expand_err(&origin, "secondary name servers need the zone transfer key (dns.transfer_key)"))
        }
    };
    // Every name server of the zone is in its NS set (the primary's NOTIFY goes to them too).
    let name_servers: Vec<String> =
        std::iter::once(ns_fqdn.clone()).chain(secondaries.iter().map(|(n, _)| format!("{n}.{domain}"))).collect();
    let (mut forward, ptrs) = derived_records(env);
    for ns in &name_servers {
        forward.push(Record { name: origin.clone(), rtype: "NS".into(), value: ns.clone() });
    }
    let outside: Vec<&Record> =
        forward.iter().filter(|r| r.name != origin && !r.name.ends_with(&format!(".{origin}"))).collect();
    if let Some(r) = outside.first() {
        return Err(expand_err(&origin, format!("{} is not inside the forward zone {origin}", r.name)));
    }
    let soa = |origin: &str, records: Vec<Record>| DesiredZone {
        origin: origin.to_string(),
        ttl,
        mname: ns_fqdn.clone(),
        rname: format!("root.{domain}"),
        records,
        cluster: env.cluster.name.to_string(),
    };
    let mut zones = vec![soa(&origin, forward)];
    let mut seen = BTreeSet::new();
    for net in &env.networks.machine {
        let ipnet::IpNet::V4(v4) = net else { continue };
        for (name, covered) in reverse_zones(*v4) {
            if !seen.insert(name.clone()) {
                continue;
            }
            let mut records: Vec<Record> = name_servers
                .iter()
                .map(|ns| Record { name: name.clone(), rtype: "NS".into(), value: ns.clone() })
                .collect();
            for (ip, host) in &ptrs {
                if covered.contains(ip) {
                    records.push(Record { name: ptr_name(*ip), rtype: "PTR".into(), value: host.clone() });
                }
            }
            zones.push(soa(&name, records));
        }
    }
    let serial_base = zone::serial_base(today);
    let dns = &env.dns;
    let mut out = Vec::new();
    let primary_ip = env.hosts.get(ns_host.as_str()).map(|h| h.address);
    for (host, h) in env.hosts_with_role(HostRole::Dns) {
        let mut zone_addrs = Vec::new();
        let included_from = dns.named_conf.as_deref().unwrap_or("the site's named.conf");
        let mut stanzas =
            format!("// Managed by groundwork for cluster {}. Included from {included_from}.\n", env.cluster.name);
        // On shared infra hosts the file is in parts: a zone's stanza is its own part (a reverse zone
        // several clusters' nodes share is one part, the same in each).
        let mut blocks = vec![Block::new(
            "0 header",
            format!("// Managed by groundwork for {}. Included from {included_from}.\n", env.managed_for()),
        )];
        let mut stanza_block = |stanzas: &mut String, key: String, text: String| {
            stanzas.push_str(&text);
            blocks.push(Block::new(key, text));
        };
        let secondary = host.as_str() != ns_host && transfer.is_some();
        if let Some(t) = transfer {
            stanza_block(&mut stanzas, "1 key".into(), format!("include \"{}\";\n", dns.transfer_key_path));
            let key = KeySpec {
                path: dns.transfer_key_path.to_string(),
                secret: t.file.clone(),
                mode: 0o640,
                group: match h.os {
                    OsFamily::Rhel => "named".into(),
                    OsFamily::Debian => "bind".into(),
                },
                reload: dns.reload.to_vec(),
            };
            let addr = Address::new(PROVIDER, "key", Some(host), dns.transfer_key_path.to_string());
            out.push(Resource::new(addr.clone(), key)?);
            zone_addrs.push(addr);
        }
        for z in &zones {
            // The zone name is a typed domain name: a file name of safe characters, no '/'.
            let dir = dns.zone_dir.trim_end_matches('/');
            if let (true, Some(t), Some(ip)) = (secondary, transfer, primary_ip) {
                // named writes a secondary's zone file itself, from the transfer.
                stanza_block(
                    &mut stanzas,
                    format!("2 zone {}", z.origin),
                    format!(
                        "zone \"{}\" IN {{\n\ttype slave;\n\tmasters {{ {ip} key \"{}\"; }};\n\tfile \"{dir}/{}.secondary\";\n\t\
                         allow-transfer {{ none; }};\n}};\n",
                        z.origin, t.name, z.origin
                    ),
                );
                continue;
            }
            let path = format!("{dir}/{}.zone", z.origin);
            let transfers = match transfer {
                Some(t) => {
                    let peers: Vec<String> = secondaries.iter().map(|(_, ip)| format!("{ip};")).collect();
                    format!(
                        "\tallow-transfer {{ key \"{}\"; }};\n\tnotify yes;\n\talso-notify {{ {} }};\n",
                        t.name,
                        peers.join(" ")
                    )
                }
                None => String::new(),
            };
            stanza_block(
                &mut stanzas,
                format!("2 zone {}", z.origin),
                format!(
                    "zone \"{}\" IN {{\n\ttype master;\n\tfile \"{path}\";\n\tallow-update {{ none; }};\n{transfers}}};\n",
                    z.origin
                ),
            );
            let addr = Address::new(PROVIDER, "zone", Some(host), z.origin.clone());
            zone_addrs.push(addr.clone());
            let spec = ZoneSpec {
                path,
                zone: z.clone(),
                serial_base,
                reload: dns.reload.to_vec(),
                keep: dns.ignore_records.iter().map(|p| p.to_string()).collect(),
            };
            out.push(Resource::new(addr, spec)?);
        }
        let mut conf = match env.cluster.shared_infra {
            true => ManagedFile::joint(dns.zones_conf.to_string(), blocks),
            false => ManagedFile::new(dns.zones_conf.to_string(), stanzas),
        };
        conf.mode = Some(0o644);
        conf.check = vec![vec!["named-checkconf".into(), "-z".into(), CANDIDATE.into()]];
        // A secondary's zones load once transferred: its reload is not asked about them.
        let all: Vec<String> = if secondary { Vec::new() } else { zones.iter().map(|z| z.origin.clone()).collect() };
        // Until named.conf includes the stanza file (the next step), its zones are unknown to named.
        conf.activate = Some(activation(&dns.reload, &dns.rndc, &all, dns.named_conf.is_some()));
        let conf_addr = Address::new(PROVIDER, "stanzas", Some(host), dns.zones_conf.to_string());
        let mut r = Resource::new(conf_addr.clone(), conf)?;
        r.depends_on = zone_addrs;
        if secondary {
            // A secondary asks for its zones as soon as it loads them; the primary must serve them by
            // then, or the first transfer fails and waits out the SOA retry (15 min).
            let primary_conf = match &dns.named_conf {
                Some(nc) => Address::new(PROVIDER, "include", Some(ns_host.as_str()), nc.to_string()),
                None => Address::new(PROVIDER, "stanzas", Some(ns_host.as_str()), dns.zones_conf.to_string()),
            };
            r.depends_on.push(primary_conf);
        }
        out.push(r);
        let mut options_addr = None;
        if let (Some(o), Some(h)) = (&dns.options, env.hosts.get(host.as_str())) {
            let shown = dns.named_conf.as_deref().unwrap_or("the site's named.conf");
            let mut mf = ManagedFile::new(o.path.to_string(), options::render(env, h, o, shown));
            mf.mode = Some(0o644);
            mf.check =
                vec![vec!["sh".into(), "-c".into(), CHECK_OPTIONS.into(), "groundwork-check".into(), CANDIDATE.into()]];
            mf.activate = Some(activation(&dns.reload, &dns.rndc, &all, true));
            let addr = Address::new(PROVIDER, "options", Some(host), o.path.to_string());
            out.push(Resource::new(addr.clone(), mf)?);
            options_addr = Some(addr);
        }
        if let Some(named_conf) = &dns.named_conf {
            let include = IncludeSpec {
                path: named_conf.to_string(),
                line: format!("include \"{}\";", dns.zones_conf),
                reload: activation(&dns.reload, &dns.rndc, &all, false),
                options: dns.options.as_ref().map(|o| o.path.to_string()),
            };
            let addr = Address::new(PROVIDER, "include", Some(host), named_conf.to_string());
            let mut r = Resource::new(addr, include)?.depends_on(conf_addr);
            r.depends_on.extend(options_addr);
            out.push(r);
        }
    }
    Ok(out)
}

fn record_line(r: &Record) -> String {
    match r.rtype.as_str() {
        "PTR" => format!("PTR {} → {}", r.name.split('.').next().unwrap_or(&r.name), r.value),
        _ => format!("{} {} {}", r.rtype, r.name, r.value),
    }
}

/// Record-level view: `+ A w4… 10.88.0.34`, `- …`, `~ A m1… 10.88.0.21 → 10.88.0.25`.
pub fn record_details(before: &BTreeSet<Record>, after: &BTreeSet<Record>) -> Vec<Detail> {
    // In the zone's own order: names label by label from the right, numbers as numbers (PTR 9 before
    // PTR 10, as addresses), not as text.
    let order = |v: &mut Vec<&Record>| {
        v.sort_by(|a, b| (zone::name_key(&a.name), &a.rtype).cmp(&(zone::name_key(&b.name), &b.rtype)))
    };
    let mut removed: Vec<&Record> = before.difference(after).collect();
    let mut added: Vec<&Record> = after.difference(before).collect();
    order(&mut removed);
    order(&mut added);
    let mut out = Vec::new();
    let mut paired: BTreeSet<&Record> = BTreeSet::new();
    for r in &removed {
        let twin = added.iter().copied().find(|a| a.name == r.name && a.rtype == r.rtype && !paired.contains(a));
        match twin {
            Some(a) => {
                paired.insert(a);
                out.push(Detail::modify(format!("{} → {}", record_line(r), a.value)));
            }
            None => out.push(Detail::remove(record_line(r))),
        }
    }
    for a in added {
        if !paired.contains(a) {
            out.push(Detail::add(record_line(a)));
        }
    }
    out
}

fn check_zone(zone: &str) -> Vec<Vec<String>> {
    vec![vec!["named-checkzone".into(), zone.into(), CANDIDATE.into()]]
}

/// Pure: decide a zone file's change; the serial moves only when the content does.
pub fn diff_zone(
    address: &Address,
    desired: Option<&ZoneSpec>,
    actual: Option<&ObservedFile>,
) -> Result<Change, Error> {
    // Nothing changed, the common case (every drift tick): the served file is exactly what groundwork
    // renders at the serial on its SOA line, found without parsing the zone (4000 records at 2000 nodes).
    if let (Some(d), Some(a)) = (desired.filter(|d| d.keep.is_empty()), actual) {
        if zone::rendered_serial(&a.content).is_some_and(|serial| zone::render(&d.zone, serial) == a.content) {
            return Ok(Change::new(address.clone(), Action::NoOp, Some(&serde_json::json!(a)), None));
        }
    }
    let parsed = actual.map(|a| zone::parse(&a.content, &address.name));
    let served_serial = parsed.as_ref().and_then(|p| p.as_ref().ok()).and_then(|p| p.serial);
    let before_records: BTreeSet<Record> =
        parsed.as_ref().and_then(|p| p.as_ref().ok()).map(|p| p.records.clone()).unwrap_or_default();
    let before = actual.map(|a| serde_json::json!(a));
    let Some(d) = desired else {
        let mut c = Change::compare(address.clone(), None, before.as_ref(), false);
        c.details = record_details(&before_records, &BTreeSet::new());
        return Ok(c);
    };
    // Records someone else owns (dns.ignore_records) are carried over from what is served.
    let mut desired_zone = d.zone.clone();
    for r in &before_records {
        if d.keep.iter().any(|p| name_matches(p, &r.name)) && !desired_zone.records.contains(r) {
            desired_zone.records.push(r.clone());
        }
    }
    let d = &ZoneSpec { zone: desired_zone, ..d.clone() };
    if let (Some(a), Some(serial)) = (actual, served_serial) {
        if zone::render(&d.zone, serial) == a.content {
            return Ok(Change::new(address.clone(), Action::NoOp, before.as_ref(), None));
        }
    }
    let serial = zone::next_serial(served_serial, d.serial_base);
    let content = zone::render(&d.zone, serial);
    let mut mf = ManagedFile::new(d.path.clone(), content.clone());
    mf.mode = Some(0o644);
    mf.check = check_zone(&d.zone.origin);
    mf.activate = Some(d.reload.clone());
    let after = serde_json::to_value(&mf).map_err(|e| Error::failed(address, e.to_string()))?;
    let action = if actual.is_some() { Action::Update } else { Action::Create };
    let mut c = Change::new(address.clone(), action, before.as_ref(), Some(&after));
    let desired_records: BTreeSet<Record> = d.zone.records.iter().cloned().collect();
    c.details = record_details(&before_records, &desired_records);
    match &parsed {
        Some(Err(e)) => c.warnings.push(format!("the served zone does not parse ({e}); it will be replaced whole")),
        Some(Ok(p)) => {
            for e in p.errors.iter().take(3) {
                c.warnings.push(format!("the served zone has an entry groundwork cannot read ({e}); it goes"));
            }
            for i in &p.includes {
                c.warnings.push(format!("the served zone includes {i:?} ($INCLUDE is not followed); it goes"));
            }
        }
        None => {}
    }
    if let Some(s) = served_serial {
        c.details.push(Detail::modify(format!("serial {s} → {serial}")));
    }
    c.diff = Some(TextDiff {
        path: d.path.clone(),
        old: actual.map(|a| a.content.clone()).unwrap_or_default(),
        new: content,
    });
    Ok(c)
}

fn zone_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("zone "))
        .map(|l| l.trim().trim_end_matches('{').trim().to_string())
        .collect()
}

/// Pure: the stanza file (whole-file) with zone-level details.
pub fn diff_stanzas(
    address: &Address,
    desired: Option<&ManagedFile>,
    actual: Option<&ObservedFile>,
) -> Result<Change, Error> {
    file::diff_with_entries(address, desired, actual, zone_lines)
}

/// Pure: groundwork's edits of named.conf (the stanza include line; the options file adopted or
/// released), nothing else touched.
pub fn diff_include(
    address: &Address,
    desired: Option<&IncludeSpec>,
    actual: Option<&ObservedFile>,
    recorded: Option<&IncludeSpec>,
) -> Result<Change, Error> {
    let before = actual.map(|a| serde_json::json!(a));
    let spec = desired.or(recorded);
    let Some(spec) = spec else { return Ok(Change::new(address.clone(), Action::NoOp, before.as_ref(), None)) };
    let Some(a) = actual else {
        return Err(Error::failed(address, format!("{} does not exist on the host: is BIND installed?", spec.path)));
    };
    let mut details = Vec::new();
    let mut text = a.content.clone();
    match desired.and_then(|d| d.options.as_deref()) {
        Some(file) => {
            let adopted = options::adopt(&text, file).map_err(|e| Error::failed(address, e))?;
            if adopted != text {
                let commented = adopted.matches("/* groundwork (set in ").count();
                details.push(Detail::add(format!(
                    "options: include {file}; the site's own {commented} statement(s) it sets commented out"
                )));
                text = adopted;
            }
        }
        None => {
            if let Some(file) = options::adopted_file(&text) {
                text = options::release(&text, &file);
                details.push(Detail::remove(format!("options: include {file} (the site's statements put back)")));
            }
        }
    }
    let present = text.lines().any(|l| l.trim() == spec.line);
    match (desired.is_some(), present) {
        (true, false) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&spec.line);
            text.push('\n');
            details.push(Detail::add(spec.line.clone()));
        }
        (false, true) => {
            text = text.lines().filter(|l| l.trim() != spec.line).map(|l| format!("{l}\n")).collect();
            details.push(Detail::remove(spec.line.clone()));
        }
        _ => {}
    }
    if text == a.content {
        return Ok(Change::new(address.clone(), Action::NoOp, before.as_ref(), None));
    }
    let mut mf = ManagedFile::new(spec.path.clone(), text.clone());
    mf.check = vec![vec!["named-checkconf".into(), "-z".into(), CANDIDATE.into()]];
    mf.activate = Some(spec.reload.clone());
    let after = serde_json::to_value(&mf).map_err(|e| Error::failed(address, e.to_string()))?;
    // Removing the edits is an update of named.conf, never a deletion of it.
    let mut c = Change::new(address.clone(), Action::Update, before.as_ref(), Some(&after));
    c.details = details;
    c.diff = Some(TextDiff { path: spec.path.clone(), old: a.content.clone(), new: text });
    Ok(c)
}

pub struct BindProvider;

/// A zone several clusters' environments share (the reverse zone of a machine network their nodes
/// share): every owner's records, each name and type held by one owner only (name servers excepted),
/// under the SOA of the first owner by name, so that every owner renders it the same.
pub fn merge_zone(address: &Address, own: Option<Owner<'_>>, others: &[Owner<'_>]) -> Result<Value, Error> {
    let mut owners: Vec<Owner<'_>> = own.into_iter().chain(others.iter().copied()).collect();
    owners.sort_by(|a, b| a.environment.cmp(b.environment));
    let specs: Vec<(&str, ZoneSpec)> = owners
        .iter()
        .map(|o| decode::<ZoneSpec>(address, o.spec).map(|z| (o.environment, z)))
        .collect::<Result<_, _>>()?;
    let Some((_, first)) = specs.first() else { return Err(Error::failed(address, "no owner left to merge")) };
    let mut merged = first.clone();
    let mut held: BTreeMap<(String, String), (&str, &str)> = BTreeMap::new();
    let mut records = BTreeSet::new();
    for (owner, spec) in &specs {
        for r in &spec.zone.records {
            if r.rtype != "NS" {
                if let Some((other, value)) = held.get(&(r.name.clone(), r.rtype.clone())) {
                    if other != owner && *value != r.value {
                        return Err(Error::Shared {
                            address: address.to_string(),
                            environments: format!("{other} and {owner}"),
                            message: format!("both have a {} record for {}", r.rtype, r.name),
                        });
                    }
                }
                held.insert((r.name.clone(), r.rtype.clone()), (owner, &r.value));
            }
            records.insert(r.clone());
        }
        merged.serial_base = merged.serial_base.max(spec.serial_base);
        merged.keep.extend(spec.keep.iter().cloned());
    }
    merged.keep.sort();
    merged.keep.dedup();
    merged.zone.records = records.into_iter().collect();
    merged.zone.cluster = specs.iter().map(|(o, _)| *o).collect::<Vec<_>>().join(", ");
    serde_json::to_value(merged).map_err(|e| Error::failed(address, e.to_string()))
}

#[async_trait]
impl Provider for BindProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn merge(&self, address: &Address, own: Option<Owner<'_>>, others: &[Owner<'_>]) -> Result<Value, Error> {
        match address.kind.as_str() {
            "zone" => merge_zone(address, own, others),
            _ => groundwork_sdk::joint::merge(address, own, others),
        }
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        // Key files are secret: their digest is read, never their content.
        let (keys, files): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().copied().partition(|r| r.address.kind == "key");
        let mut file_states = file::read_resources(cx, &files).await?.into_iter();
        let mut key_states = Vec::new();
        if let Some(first) = keys.first() {
            let paths: Vec<String> =
                keys.iter().map(|r| r.spec::<KeySpec>().map(|k| k.path)).collect::<Result<_, _>>()?;
            let metas = cx.transport(&first.address)?.file_meta(&paths).await.map_err(|e| e.at(&first.address))?;
            key_states = paths
                .into_iter()
                .zip(metas)
                .map(|(path, m)| {
                    m.map(|m| serde_json::json!(ObservedKey { path, sha256: m.sha256, mode: m.mode, group: m.group }))
                })
                .collect();
        }
        let mut key_states = key_states.into_iter();
        Ok(resources
            .iter()
            .map(|r| if r.address.kind == "key" { key_states.next().flatten() } else { file_states.next().flatten() })
            .collect())
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        let (keys, files): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().copied().partition(|r| r.address.kind == "key");
        let mut p = file::prefetch_paths(&files);
        p.metas = keys.iter().filter_map(|r| r.spec::<KeySpec>().ok().map(|k| k.path)).collect();
        p
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        if address.kind == "key" {
            let d: Option<KeySpec> = desired.map(|v| decode(address, v)).transpose()?;
            let a: Option<ObservedKey> = actual.map(|v| decode(address, v)).transpose()?;
            return Ok(diff_key(address, d.as_ref(), a.as_ref()));
        }
        let observed: Option<ObservedFile> = actual.map(|v| decode(address, v)).transpose()?;
        match address.kind.as_str() {
            "zone" => {
                let d: Option<ZoneSpec> = desired.map(|v| decode(address, v)).transpose()?;
                diff_zone(address, d.as_ref(), observed.as_ref())
            }
            "stanzas" => {
                let d: Option<ManagedFile> = desired.map(|v| decode(address, v)).transpose()?;
                diff_stanzas(address, d.as_ref(), observed.as_ref())
            }
            "options" => {
                let d: Option<ManagedFile> = desired.map(|v| decode(address, v)).transpose()?;
                file::diff(address, d.as_ref(), observed.as_ref())
            }
            "include" => {
                let d: Option<IncludeSpec> = desired.map(|v| decode(address, v)).transpose()?;
                // An orphaned include is identified by its path and the line it added.
                let recorded = observed.as_ref().filter(|_| d.is_none()).map(|o| IncludeSpec {
                    path: o.path.clone(),
                    line: o
                        .content
                        .lines()
                        .find(|l| l.trim().starts_with("include ") && l.contains("groundwork"))
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    reload: Vec::new(),
                    options: None,
                });
                diff_include(address, d.as_ref(), observed.as_ref(), recorded.as_ref())
            }
            other => Err(Error::failed(address, format!("unknown bind resource kind {other}"))),
        }
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        if change.address.kind == "key" {
            return apply_key(cx, change).await;
        }
        file::apply(cx, change).await
    }

    /// named's files reload together: a fresh apply's zones, options, stanzas and include once, not
    /// once each. A key's reload is tolerant of a stopped named and stays its own.
    fn activation_deferred(&self, change: &Change) -> bool {
        change.address.kind != "key" && file::defers_activation(change)
    }

    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        file::write(cx, change).await
    }

    async fn activate(&self, cx: &Context, changes: &[&Change]) -> Result<(), Error> {
        file::activate_with(cx, changes, &strictest_activation(changes)?).await
    }
}

/// The one activation that covers those of named's files written together: each is the reload and
/// then a look at more of the zones; the include's is the strictest (every zone must be loaded), then
/// the stanzas' and options' (every zone loaded or not yet known), then a zone's (the reload alone).
pub fn strictest_activation(changes: &[&Change]) -> Result<Vec<Vec<String>>, Error> {
    let rank = |kind: &str| match kind {
        "include" => 2,
        "stanzas" | "options" => 1,
        _ => 0,
    };
    let strictest = changes.iter().filter(|c| file::defers_activation(c)).max_by_key(|c| rank(&c.address.kind));
    Ok(strictest.map(|c| file::activations(std::slice::from_ref(c))).transpose()?.unwrap_or_default())
}

/// Pure: a key file differs when its digest, mode or group does. Never shown.
pub fn diff_key(address: &Address, desired: Option<&KeySpec>, actual: Option<&ObservedKey>) -> Change {
    let dv = desired.and_then(|d| serde_json::to_value(d).ok());
    let av = actual.and_then(|a| serde_json::to_value(a).ok());
    let same = matches!((desired, actual), (Some(d), Some(a))
        if d.secret.sha256 == a.sha256 && d.mode == a.mode && (a.group.is_empty() || a.group == d.group));
    let mut c = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), same);
    c.sensitive = true;
    if c.action == Action::Update {
        c.details.push(Detail::modify("the zone transfer key (TSIG) changes"));
    }
    c
}

async fn apply_key(cx: &Context, change: &Change) -> Result<(), Error> {
    let address = &change.address;
    let t = cx.transport(address)?;
    match (&change.action, &change.after) {
        (Action::Delete, _) => {
            let path = change.before.as_ref().and_then(|b| b["path"].as_str()).unwrap_or(&address.name);
            t.remove_file(path).await.map_err(|e| e.at(address))
        }
        (_, Some(after)) => {
            let spec: KeySpec = decode(address, after)?;
            let bytes = cx.secret(address, &spec.secret)?;
            let opts = WriteOptions { mode: Some(spec.mode), group: Some(spec.group.clone()), ..Default::default() };
            t.write_file(&spec.path, &bytes, &opts).await.map_err(|e| e.at(address))?;
            // A running named re-reads its keys on a reload; a stopped one reads them when it starts.
            if let Some((command, message)) = file::activate(cx, address, Some(&spec.reload)).await? {
                let running = t.exec(&groundwork_sdk::Cmd::new("systemctl").args(["is-active", "named"])).await;
                if running.is_ok_and(|o| o.success()) {
                    return Err(Error::ActivationFailed { address: address.to_string(), command, message });
                }
            }
            Ok(())
        }
        (_, None) => Err(Error::failed(address, "no spec to apply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(keep: &[&str]) -> ZoneSpec {
        ZoneSpec {
            path: "/var/named/lab.test.zone".into(),
            zone: DesiredZone {
                origin: "lab.test".into(),
                ttl: 300,
                mname: "ns1.lab.test".into(),
                rname: "root.lab.test".into(),
                cluster: "lab".into(),
                records: vec![Record { name: "m1.lab.test".into(), rtype: "A".into(), value: "10.0.0.21".into() }],
            },
            serial_base: 2026010100,
            reload: vec![],
            keep: keep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn files_written_together_activate_once_with_the_strictest_look_at_the_zones() {
        let change = |kind: &str, activate: Vec<String>| {
            let mut f = ManagedFile::new(format!("/etc/{kind}"), "x");
            f.activate = Some(activate);
            let after = serde_json::to_value(f).unwrap();
            Change::new(Address::new(PROVIDER, kind, Some("ns1"), kind), Action::Create, None, Some(&after))
        };
        let reload: Vec<String> = vec!["rndc".into(), "reload".into()];
        let zones = vec!["lab.test".to_string()];
        let zone = change("zone", reload.clone());
        let stanzas = change("stanzas", activation(&reload, &["rndc".into()], &zones, true));
        let include = change("include", activation(&reload, &["rndc".into()], &zones, false));
        assert_eq!(strictest_activation(&[&zone]).unwrap(), vec![reload.clone()]);
        assert_eq!(
            strictest_activation(&[&zone, &stanzas]).unwrap(),
            vec![activation(&reload, &["rndc".into()], &zones, true)]
        );
        let all = strictest_activation(&[&zone, &stanzas, &include]).unwrap();
        assert_eq!(all, vec![activation(&reload, &["rndc".into()], &zones, false)]);
        // Each is the reload and then more: the strictest starts with the reload the others run.
        assert!(all[0][2].starts_with("rndc reload && "), "{all:?}");
    }

    #[test]
    fn ptr_details_come_in_address_order() {
        let ptr = |last: u8| Record {
            name: format!("{last}.0.88.10.in-addr.arpa"),
            rtype: "PTR".into(),
            value: format!("n{last}.lab.test"),
        };
        let after: BTreeSet<Record> = [ptr(100), ptr(21), ptr(9)].into_iter().collect();
        let lines: Vec<String> = record_details(&BTreeSet::new(), &after).into_iter().map(|d| d.text).collect();
        assert_eq!(lines, ["PTR 9 → n9.lab.test", "PTR 21 → n21.lab.test", "PTR 100 → n100.lab.test"]);
    }

    #[test]
    fn ignored_records_are_carried_over_and_others_are_planned_away() {
        let a = Address::new(PROVIDER, "zone", Some("ns1"), "lab.test");
        let mut served = spec(&[]).zone.clone();
        served.records.push(Record { name: "registry.lab.test".into(), rtype: "A".into(), value: "10.0.0.50".into() });
        let observed =
            ObservedFile { path: "/var/named/lab.test.zone".into(), content: zone::render(&served, 2026010105) };
        // Not ignored: the hand-made record is planned away.
        let c = diff_zone(&a, Some(&spec(&[])), Some(&observed)).unwrap();
        assert_eq!(c.action, Action::Update);
        assert!(c.details.iter().any(|d| d.text == "A registry.lab.test 10.0.0.50"));
        // Ignored: nothing to do, serial untouched.
        let c = diff_zone(&a, Some(&spec(&["registry.*"])), Some(&observed)).unwrap();
        assert_eq!(c.action, Action::NoOp);
        assert!(name_matches("*.apps.lab.test", "x.apps.lab.test") && !name_matches("registry.*", "m1.lab.test"));
    }

    #[test]
    fn a_hand_added_record_with_a_ttl_unit_is_read_and_the_serial_only_rises() {
        let a = Address::new(PROVIDER, "zone", Some("ns1"), "lab.test");
        let mut served = zone::render(&spec(&[]).zone, 2026010101);
        served.push_str("extra 1h IN A 10.0.0.99\n");
        let observed = ObservedFile { path: "/var/named/lab.test.zone".into(), content: served };
        let c = diff_zone(&a, Some(&spec(&[])), Some(&observed)).unwrap();
        assert_eq!(c.action, Action::Update);
        // Exactly the extra record goes; the node's record is not planned again; the serial goes up.
        let details: Vec<String> = c.details.iter().map(|d| format!("{:?} {}", d.op, d.text)).collect();
        assert_eq!(details, ["Remove A extra.lab.test 10.0.0.99", "Modify serial 2026010101 → 2026010102"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// The shortcut for an unchanged zone (its serial from the SOA line, no parse) decides as the full
    /// comparison does: the zone as rendered is unchanged at any serial, anything else is not.
    #[test]
    fn an_unchanged_zone_is_found_unchanged_without_parsing_and_nothing_else_is() {
        let a = Address::new(PROVIDER, "zone", Some("ns1"), "lab.test");
        let observed = |content: String| ObservedFile { path: "/var/named/lab.test.zone".into(), content };
        for serial in [1, 2026010101, u32::MAX] {
            let served = zone::render(&spec(&[]).zone, serial);
            assert_eq!(zone::rendered_serial(&served), Some(serial));
            let c = diff_zone(&a, Some(&spec(&[])), Some(&observed(served.clone()))).unwrap();
            assert_eq!(c.action, Action::NoOp, "serial {serial}");
            // A record changed, the SOA moved to another line, a comment added: each is a change.
            for edited in [
                served.replace("10.0.0.21", "10.0.0.22"),
                served.replacen("$TTL 300\n", "", 1).replacen("@\tIN", "$TTL 300\n@\tIN", 1) + "; x\n",
                format!("{served}; by hand\n"),
            ] {
                let c = diff_zone(&a, Some(&spec(&[])), Some(&observed(edited.clone()))).unwrap();
                assert_ne!(c.action, Action::NoOp, "{edited}");
            }
        }
        assert_eq!(zone::rendered_serial("; a zone\n$ORIGIN x.\n$TTL 1\n@ IN SOA a. b. 7 1 1 1 1\n"), None);
    }
}
