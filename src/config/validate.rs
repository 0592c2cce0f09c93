//! Offline validation: schema is checked while loading; these are the cross-resource rules.
//! Nothing here opens a connection. Each finding names every place involved.

use super::error::Finding;
use super::load::{Loaded, Sources};
use groundwork_sdk::model::*;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

struct Findings<'a> {
    sources: &'a Sources,
    out: Vec<Finding>,
}

impl Findings<'_> {
    /// Report at `path`; `others` are further places named in the message's labels.
    fn push(&mut self, rule: &'static str, path: &str, message: String, others: &[(&str, String)]) {
        let loc = self.sources.locate(path);
        let mut labels = Vec::new();
        if let Some(l) = loc {
            labels.push(self.sources.label(l, "here"));
            for (p, text) in others {
                if let Some(o) = self.sources.locate(p) {
                    if o.file == l.file {
                        labels.push(self.sources.label(o, text.clone()));
                    }
                }
            }
        }
        self.out.push(Finding {
            rule,
            message,
            at: loc.map(|l| self.sources.display(l)),
            src: loc.map(|l| self.sources.named_source(l.file)),
            labels,
            help: None,
        });
    }

    fn at(&self, path: &str) -> String {
        self.sources.at(path).unwrap_or_else(|| path.to_string())
    }
}

/// Run every rule; an empty result means the environment is valid.
pub fn validate(loaded: &Loaded) -> Vec<Finding> {
    let env = &loaded.env;
    let mut f = Findings { sources: &loaded.sources, out: Vec::new() };
    names(env, &mut f);
    node_roles(env, &mut f);
    addresses(env, &mut f);
    macs(env, &mut f);
    networks(env, &mut f);
    host_references(env, &mut f);
    dns(env, &mut f);
    loadbalancer(env, &mut f);
    dhcp(env, &mut f);
    served_urls(loaded, &mut f);
    install_inputs(loaded, &mut f);
    f.out
}

/// The installer's inputs, when declared: the pull secret is JSON with `auths` (never quoted), the SSH
/// key a public key, the trust bundle PEM. Reading local files and the run's environment is offline.
fn install_inputs(loaded: &Loaded, f: &mut Findings) {
    let Ok(install) = crate::install::install_settings(&loaded.env) else { return };
    let dir = &loaded.dir;
    let results = [
        (!crate::install::pull_secret_unset(install))
            .then(|| crate::install::read_pull_secret(dir, install).map(|_| ())),
        Some(crate::install::read_ssh_key(dir, install).map(|_| ())),
        Some(crate::install::read_trust_bundle(dir, install).map(|_| ())),
    ];
    for r in results.into_iter().flatten() {
        if let Err(crate::install::InstallError::Input { field, message }) = r {
            f.push("install-inputs", &format!("openshift.install.{field}"), message, &[]);
        }
    }
}

/// Names: every value is a typed DNS name once loaded; here what types cannot see. Node names and infra
/// host names are unique and distinct from each other (each gets an A record and a PTR under the
/// cluster domain), extra records sit under the cluster domain.
fn names(env: &Environment, f: &mut Findings) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (i, n) in env.nodes.iter().enumerate() {
        let path = format!("nodes[{i}].name");
        if let Some(other) = seen.get(n.name.as_str()) {
            let msg = format!("node name {} is used twice ({} and {})", n.name, f.at(other), f.at(&path));
            f.push("name-unique", &path, msg, &[(other, "first here".into())]);
        } else {
            seen.insert(n.name.as_str(), path);
        }
    }
    for h in env.hosts.keys() {
        if let Some(node) = seen.get(h.as_str()) {
            let host = format!("hosts.{h}#key");
            let msg = format!(
                "{h} is both a node ({}) and an infra host ({}): both would get {h}.{} in DNS",
                f.at(node),
                f.at(&host),
                env.cluster.domain()
            );
            f.push("name-unique", node, msg, &[(&host, "infra host".into())]);
        }
    }
    let domain = env.cluster.domain();
    for (i, r) in env.dns.records.iter().enumerate() {
        let fqdn = r.name.absolute(&domain);
        if !(fqdn == domain || fqdn.ends_with(&format!(".{domain}"))) {
            f.push(
                "dns-name",
                &format!("dns.records[{i}].name"),
                format!("{fqdn} is not under the cluster domain {domain}"),
                &[],
            );
        }
    }
}

fn node_roles(env: &Environment, f: &mut Findings) {
    let count = |r| env.nodes_with_role(r).count();
    let bootstraps: Vec<usize> =
        env.nodes.iter().enumerate().filter(|(_, n)| n.role == NodeRole::Bootstrap).map(|(i, _)| i).collect();
    if bootstraps.len() != 1 {
        let path = bootstraps.get(1).map(|i| format!("nodes[{i}].role")).unwrap_or_else(|| "nodes".into());
        f.push(
            "bootstrap-count",
            &path,
            format!("exactly one bootstrap node is needed, found {}", bootstraps.len()),
            &[],
        );
    }
    let masters = count(NodeRole::Master);
    if masters != 3 {
        f.push("master-count", "nodes", format!("OpenShift needs exactly 3 master nodes, found {masters}"), &[]);
    }
    if env.cluster.compact {
        if let Some(i) = env.nodes.iter().position(|n| n.role == NodeRole::Worker) {
            f.push(
                "master-count",
                &format!("nodes[{i}].role"),
                "cluster.compact is set (3 schedulable masters, no workers) but this node is a worker".into(),
                &[],
            );
        }
    } else if count(NodeRole::Worker) + count(NodeRole::Infra) < 2 && !env.nodes.is_empty() {
        f.push(
            "worker-count",
            "nodes",
            "a non-compact cluster needs at least 2 workers for the router; set cluster.compact for 3 nodes".into(),
            &[],
        );
    }
}

fn addresses(env: &Environment, f: &mut Findings) {
    // Every address in use, with who uses it and where it is written.
    let mut seen: HashMap<IpAddr, (String, String)> = HashMap::new();
    let mut claim = |f: &mut Findings, ip: IpAddr, who: String, path: String| {
        if let Some((other, other_path)) = seen.get(&ip) {
            if other != &who {
                let msg = format!("{ip} used by {other} ({}) and {who} ({})", f.at(other_path), f.at(&path));
                f.push("ip-unique", &path, msg, &[(other_path, format!("also used by {other}"))]);
            }
            return;
        }
        seen.insert(ip, (who, path));
    };
    for (i, n) in env.nodes.iter().enumerate() {
        claim(f, n.ip, n.name.to_string(), format!("nodes[{i}].ip"));
    }
    for (name, h) in &env.hosts {
        claim(f, h.address, name.to_string(), format!("hosts.{name}.address"));
        if let Some(v) = &h.vips {
            claim(f, v.internal, name.to_string(), format!("hosts.{name}.vips.internal"));
            claim(f, v.external, name.to_string(), format!("hosts.{name}.vips.external"));
        }
    }
    for (i, n) in env.nodes.iter().enumerate() {
        if !env.networks.machine.iter().any(|m| m.contains(&n.ip)) {
            let nets: Vec<String> = env.networks.machine.iter().map(|m| m.to_string()).collect();
            f.push(
                "ip-in-machine-network",
                &format!("nodes[{i}].ip"),
                format!("{} ({}) is outside the machine network(s) {}", n.ip, n.name, nets.join(", ")),
                &[],
            );
        }
    }
    for (name, h) in &env.hosts {
        if let Some(v) = &h.vips {
            for (which, ip) in [("internal", v.internal), ("external", v.external)] {
                if !env.networks.machine.iter().any(|m| m.contains(&ip)) {
                    f.push(
                        "ip-in-machine-network",
                        &format!("hosts.{name}.vips.{which}"),
                        format!("VIP {ip} of {name} is outside the machine network(s): nodes could not reach it"),
                        &[],
                    );
                }
            }
        }
    }
}

/// MACs are typed (six hex pairs, unicast) when loaded; here, that no two nodes share one.
fn macs(env: &Environment, f: &mut Findings) {
    let mut seen: HashMap<[u8; 6], usize> = HashMap::new();
    for (i, n) in env.nodes.iter().enumerate() {
        let path = format!("nodes[{i}].mac");
        let m = n.mac.octets();
        if let Some(&j) = seen.get(&m) {
            let other = &env.nodes[j];
            let other_path = format!("nodes[{j}].mac");
            let msg =
                format!("{} used by {} ({}) and {} ({})", n.mac, other.name, f.at(&other_path), n.name, f.at(&path));
            f.push("mac-unique", &path, msg, &[(&other_path, format!("also used by {}", other.name))]);
        } else {
            seen.insert(m, i);
        }
    }
}

pub fn is_private(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => {
            let rfc1918: [ipnet::Ipv4Net; 3] = [
                "10.0.0.0/8".parse().expect("literal"),
                "172.16.0.0/12".parse().expect("literal"),
                "192.168.0.0/16".parse().expect("literal"),
            ];
            rfc1918.iter().any(|r| r.contains(n))
        }
        IpNet::V6(n) => "fc00::/7".parse::<ipnet::Ipv6Net>().map(|ula| ula.contains(n)).unwrap_or(false),
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn networks(env: &Environment, f: &mut Findings) {
    let n = &env.networks;
    let mut all: Vec<(String, String, IpNet)> = Vec::new();
    for (i, m) in n.machine.iter().enumerate() {
        all.push((format!("machine network {m}"), format!("networks.machine[{i}]"), *m));
    }
    all.push((format!("cluster network {}", n.cluster.cidr), "networks.cluster.cidr".into(), n.cluster.cidr));
    for (i, s) in n.service.iter().enumerate() {
        all.push((format!("service network {s}"), format!("networks.service[{i}]"), *s));
    }
    for (name, o) in &n.other {
        all.push((format!("{name} network {o}"), format!("networks.other.{name}"), *o));
    }
    for (what, path, net) in &all {
        if !is_private(net) {
            f.push("network-private", path, format!("{what} is not a private range (RFC 1918 / ULA)"), &[]);
        }
    }
    for (i, (wa, pa, a)) in all.iter().enumerate() {
        for (wb, pb, b) in &all[i + 1..] {
            if overlaps(a, b) {
                let msg = format!("{wa} ({}) overlaps {wb} ({})", f.at(pa), f.at(pb));
                f.push("network-overlap", pb, msg, &[(pa, "overlaps this".into())]);
            }
        }
    }
    let hp = n.cluster.host_prefix;
    let max = if n.cluster.cidr.addr().is_ipv4() { 32 } else { 128 };
    if hp < n.cluster.cidr.prefix_len() || hp > max - 2 {
        f.push(
            "network-overlap",
            "networks.cluster.host_prefix",
            format!(
                "host_prefix /{hp} must lie between the cluster network's /{} and /{}",
                n.cluster.cidr.prefix_len(),
                max - 2
            ),
            &[],
        );
    }
}

fn host_references(env: &Environment, f: &mut Findings) {
    let check = |f: &mut Findings, name: &str, path: String, role: Option<HostRole>| match env.hosts.get(name) {
        None => f.push("host-reference", &path, format!("no infra host named {name:?} under hosts"), &[]),
        Some(h) => {
            if let Some(r) = role {
                if !h.has_role(r) {
                    f.push(
                        "host-reference",
                        &path,
                        format!("host {name} does not have the role {r:?}").to_lowercase(),
                        &[],
                    );
                }
            }
        }
    };
    if let Some(ns) = &env.dns.nameserver {
        check(f, ns, "dns.nameserver".into(), Some(HostRole::Dns));
    }
    if let Some(pxe) = env.dhcp.as_ref().and_then(|d| d.pxe.as_ref()) {
        check(f, &pxe.tftp_host, "dhcp.pxe.tftp_host".into(), Some(HostRole::Tftp));
    }
    for host in env.dhcp.iter().flat_map(|d| d.backends.keys()) {
        check(f, host, format!("dhcp.backends.{host}"), Some(HostRole::Dhcp));
    }
    if let Some(h) = env.files.as_ref().and_then(|x| x.host.as_ref()) {
        check(f, h, "files.host".into(), Some(HostRole::Http));
    }
    if let Some(fw) = &env.firewall {
        for (i, h) in fw.hosts.iter().enumerate() {
            check(f, h, format!("firewall.hosts[{i}]"), None);
        }
    }
    if let Some(se) = &env.selinux {
        for (i, r) in se.fcontexts.iter().enumerate() {
            for (j, h) in r.hosts.iter().enumerate() {
                check(f, h, format!("selinux.fcontexts[{i}].hosts[{j}]"), None);
            }
        }
    }
    if env.first_host_with_role(HostRole::Lb).is_some_and(|(_, h)| h.vips.is_none()) {
        let (name, _) = env.first_host_with_role(HostRole::Lb).expect("checked above");
        f.push(
            "host-reference",
            &format!("hosts.{name}"),
            format!("lb host {name} needs vips: {{ internal, external }}"),
            &[],
        );
    }
}

fn dns(env: &Environment, f: &mut Findings) {
    if !env.nodes.is_empty() && env.first_host_with_role(HostRole::Dns).is_none() {
        f.push(
            "node-records",
            "hosts#key",
            "no infra host has the role dns: nodes would get no A and PTR records (a node without PTR registers as localhost)".into(),
            &[],
        );
    }
    // Extra records must not shadow a derived one: every node keeps exactly its own A and PTR.
    let domain = env.cluster.domain();
    let derived: BTreeMap<String, String> = env
        .nodes
        .iter()
        .map(|n| (format!("{}.{domain}", n.name), n.name.to_string()))
        .chain(["api", "api-int"].iter().map(|a| (format!("{a}.{domain}"), a.to_string())))
        .collect();
    for (i, r) in env.dns.records.iter().enumerate() {
        let fqdn = r.name.absolute(&domain);
        if let Some(owner) = derived.get(&fqdn) {
            f.push(
                "node-records",
                &format!("dns.records[{i}].name"),
                format!("{fqdn} is derived from the inventory ({owner}); an extra record would shadow it"),
                &[],
            );
        }
        if r.rtype() == "PTR" {
            f.push(
                "node-records",
                &format!("dns.records[{i}].type"),
                "PTR records are derived for every node; declare the node instead".into(),
                &[],
            );
        }
    }
}

fn loadbalancer(env: &Environment, f: &mut Findings) {
    if env.first_host_with_role(HostRole::Lb).is_none() {
        return;
    }
    let explicit = !env.loadbalancer.frontends.is_empty();
    let fe_path = |i: usize| {
        if explicit {
            format!("loadbalancer.frontends[{i}]")
        } else {
            "loadbalancer".to_string()
        }
    };
    let control: Vec<&str> = env
        .nodes
        .iter()
        .filter(|n| matches!(n.role, NodeRole::Bootstrap | NodeRole::Master))
        .map(|n| n.name.as_str())
        .collect();
    let ingress: Vec<&str> = env.ingress_nodes().iter().map(|n| n.name.as_str()).collect();
    let frontends = env.frontends();
    for port in [6443u16, 22623, 80, 443] {
        if !frontends.iter().any(|fe| fe.port == port) {
            f.push("lb-frontends", "loadbalancer.frontends", format!("no frontend on port {port}"), &[]);
        }
    }
    for (i, fe) in frontends.iter().enumerate() {
        let expected: &[&str] = match fe.port.get() {
            6443 | 22623 => &control,
            80 | 443 => &ingress,
            _ => continue,
        };
        let what = if matches!(fe.port.get(), 6443 | 22623) { "bootstrap + masters" } else { "the ingress nodes" };
        for (j, b) in fe.backends.iter().enumerate() {
            let path = if explicit { format!("loadbalancer.frontends[{i}].backends[{j}]") } else { fe_path(i) };
            if env.node(&b.node).is_none() {
                f.push(
                    "lb-backends",
                    &format!("{path}.node"),
                    format!("backend {} of {} is not a declared node", b.node, fe.name),
                    &[],
                );
            } else if !expected.contains(&b.node.as_str()) {
                f.push(
                    "lb-backends",
                    &format!("{path}.node"),
                    format!("{} must reach {what}, but {} is not one of them", fe.name, b.node),
                    &[],
                );
            }
            if b.port != fe.port {
                f.push(
                    "lb-backends",
                    &format!("{path}.port"),
                    format!(
                        "backend {} of {} uses port {} but the frontend listens on {}",
                        b.node, fe.name, b.port, fe.port
                    ),
                    &[],
                );
            }
        }
        for n in expected {
            if !fe.backends.iter().any(|b| b.node == *n) {
                f.push(
                    "lb-backends",
                    &fe_path(i),
                    format!("{} (port {}) has no backend for {n}", fe.name, fe.port),
                    &[],
                );
            }
        }
    }
}

fn dhcp(env: &Environment, f: &mut Findings) {
    let Some(d) = &env.dhcp else { return };
    // The subnet a DHCP server answers for lies inside a machine network: a /0, or anything wider than
    // the machine network, would hand out leases on networks the cluster does not own.
    if !env.networks.machine.iter().any(|m| m.contains(&d.subnet)) {
        let nets: Vec<String> = env.networks.machine.iter().map(|m| m.to_string()).collect();
        f.push(
            "dhcp-subnet",
            "dhcp.subnet",
            format!("DHCP subnet {} is not inside the machine network(s) {}", d.subnet, nets.join(", ")),
            &[],
        );
    }
    for (i, n) in env.nodes.iter().enumerate() {
        if !d.subnet.contains(&n.ip) {
            f.push(
                "dhcp-subnet",
                &format!("nodes[{i}].ip"),
                format!(
                    "fixed address {} of {} is outside the DHCP subnet {} ({})",
                    n.ip,
                    n.name,
                    d.subnet,
                    f.at("dhcp.subnet")
                ),
                &[],
            );
        }
    }
    for (i, r) in d.routers.iter().enumerate() {
        if !d.subnet.contains(r) {
            f.push(
                "dhcp-subnet",
                &format!("dhcp.routers[{i}]"),
                format!("router {r} is outside the DHCP subnet {}", d.subnet),
                &[],
            );
        }
    }
    if env.first_host_with_role(HostRole::Dhcp).is_none() {
        f.push("host-reference", "dhcp", "dhcp is configured but no infra host has the role dhcp".into(), &[]);
    }
}

/// URLs in a text (the iPXE script): whitespace-separated tokens and `key=URL` arguments.
/// URLs that name an iPXE setting (`${mac:hexhyp}`) are filled in on the machine and are not checked.
pub fn urls_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|t| t.find("http://").map(|i| t[i..].to_string()))
        .filter(|u| !u.contains("${"))
        .collect()
}

fn served_urls(loaded: &Loaded, f: &mut Findings) {
    let env = &loaded.env;
    let Some(files) = &env.files else {
        if env.dhcp.as_ref().is_some_and(|d| d.pxe.is_some()) {
            f.push(
                "served-urls",
                "dhcp.pxe.script",
                "DHCP hands out an iPXE script URL but no files are served".into(),
                &[],
            );
        }
        return;
    };
    let base = groundwork_files::http_base(env);
    // Served paths are normalised when loaded (`a`, `/a` and `./a` are one path): two entries for one
    // file would never converge.
    let mut served: HashMap<&str, usize> = HashMap::new();
    for (i, s) in files.serve.iter().enumerate() {
        let path = format!("files.serve[{i}].path");
        if let Some(&j) = served.get(s.path.as_str()) {
            let first = format!("files.serve[{j}].path");
            let msg = format!("{} is served twice ({} and {})", s.path, f.at(&first), f.at(&path));
            f.push("served-path-unique", &path, msg, &[(&first, "first here".into())]);
        } else {
            served.insert(s.path.as_str(), i);
        }
    }
    let check_url = |f: &mut Findings, url: &str, path: &str, from: &str| {
        let Some(base) = &base else { return };
        match url.strip_prefix(base.as_str()).and_then(|r| r.strip_prefix('/')) {
            None => f.push(
                "served-urls",
                path,
                format!("{from} points to {url}, which is not on the http host ({base})"),
                &[],
            ),
            Some(p) if !served.contains_key(p) => f.push(
                "served-urls",
                path,
                format!("{from} points to {url}, but no served file has the path {p:?}"),
                &[],
            ),
            Some(_) => {}
        }
    };
    if base.is_none() {
        f.push("served-urls", "files", "files are declared but no infra host has the role http".into(), &[]);
    }
    if let Some(pxe) = env.dhcp.as_ref().and_then(|d| d.pxe.as_ref()) {
        if let Some(b) = &base {
            check_url(f, &format!("{b}/{}", pxe.script), "dhcp.pxe.script", "the DHCP iPXE filename");
        }
    }
    for (i, s) in files.serve.iter().enumerate() {
        let Some(t) = &s.template else { continue };
        let path = format!("files.serve[{i}].template");
        if t == "builtin:ipxe" && files.boot.is_none() {
            f.push(
                "served-urls",
                &path,
                "the builtin:ipxe script needs files.boot (kernel, initramfs, and image or rootfs)".into(),
                &[],
            );
            continue;
        }
        let secrets = groundwork_sdk::Secrets::default();
        let x = super::expand::expansion(loaded, &secrets, super::expand::now_unix());
        let rendered = groundwork_files::render_named(env, &x, t);
        match rendered {
            Err(e) => f.push("template", &path, format!("template {t} does not render: {e}"), &[]),
            Ok(text) => {
                for url in urls_in(&text) {
                    check_url(f, &url, &path, &format!("{} (rendered)", s.path));
                }
            }
        }
    }
    boot(env, files, &served, &check_url, f);
}

/// The per-node boot scripts: what they boot is served, and their paths do not collide with a declared
/// served file.
fn boot(
    env: &Environment,
    files: &FilesSettings,
    served: &HashMap<&str, usize>,
    check_url: &dyn Fn(&mut Findings, &str, &str, &str),
    f: &mut Findings,
) {
    let Some(boot) = &files.boot else { return };
    if boot.image.is_none() && boot.rootfs.is_none() {
        f.push(
            "boot",
            "files.boot",
            "files.boot needs image (4.5: coreos.inst.image_url) or rootfs (4.6 and later: coreos.live.rootfs_url)"
                .into(),
            &[],
        );
    }
    for (i, n) in env.nodes.iter().enumerate() {
        let Some(st) = &n.static_ip else { continue };
        let max = if n.ip.is_ipv4() { 32 } else { 128 };
        if st.gateway.is_ipv4() != n.ip.is_ipv4() || st.prefix.is_some_and(|p| p == 0 || p > max) {
            f.push(
                "boot",
                &format!("nodes[{i}].static"),
                format!(
                    "{}: static addressing needs a gateway of the same family as {} and a prefix of 1–{max}",
                    n.name, n.ip
                ),
                &[],
            );
        }
    }
    for (e, (i, _)) in groundwork_sdk::boot::entries(env).iter().zip(env.nodes.iter().enumerate()) {
        let at = format!("nodes[{i}]");
        if let Some(&j) = served.get(e.script.as_str()) {
            f.push(
                "served-path-unique",
                &format!("files.serve[{j}].path"),
                format!("{} is the boot script of {} ({})", e.script, e.node, f.at(&at)),
                &[],
            );
        }
        let from = format!("the boot script of {}", e.node);
        let args = e.args.iter().filter_map(|a| a.split_once("_url=").map(|(_, u)| u.to_string()));
        for url in [e.kernel_url.clone(), e.initrd_url.clone()].into_iter().chain(args) {
            check_url(f, &url, &at, &from);
        }
    }
}
