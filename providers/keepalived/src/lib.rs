//! keepalived.conf for the load balancers that share the VIPs (docs/providers/keepalived.md).
//!
//! Every host with role lb gets the same instances: one per distinct VIP (the internal one for api-int,
//! the external one for api and the ingress), unicast to the other lb hosts only (`check_unicast_src`:
//! an advert from anyone else is dropped), all in state BACKUP so that the election decides, with
//! priorities by host order. A track script gives the VIPs up when haproxy is not running on the holder.
//! Every value written is typed at load (addresses, an interface name, the cluster name as a DNS label).

use groundwork_sdk::file::{self, ManagedFile, CANDIDATE};
use groundwork_sdk::model::{Environment, HostRole};
use groundwork_sdk::{Address, Error, Resource};
use std::fmt::Write;
use std::net::IpAddr;

pub const PROVIDER: &str = "keepalived";
/// The priority of the first lb host; each next one is this much lower.
const TOP_PRIORITY: u8 = 150;
const PRIORITY_STEP: u8 = 10;
/// Checks that haproxy runs (a path every distribution has, as keepalived's script security wants).
const HAPROXY_CHECK: &str = "/usr/bin/pgrep -x haproxy";

/// One VRRP instance: a VIP and its router id.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub name: String,
    pub vip: IpAddr,
    pub prefix: u8,
    pub virtual_router_id: u8,
}

/// The instances of the environment: the internal VIP's, and the external one's unless it is the same.
pub fn instances(env: &Environment) -> Vec<Instance> {
    let (Some(k), Some((_, lb))) = (env.keepalived(), env.first_host_with_role(HostRole::Lb)) else {
        return Vec::new();
    };
    let Some(vips) = &lb.vips else { return Vec::new() };
    // The VIP's prefix is its machine network's, so it is added as the hosts' own addresses are.
    let prefix = |ip: IpAddr| {
        env.networks.machine.iter().find(|n| n.contains(&ip)).map(|n| n.prefix_len()).unwrap_or(match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        })
    };
    let cluster = env.cluster.name.to_string();
    let mut out = vec![Instance {
        name: format!("{cluster}_internal"),
        vip: vips.internal,
        prefix: prefix(vips.internal),
        virtual_router_id: k.virtual_router_id,
    }];
    if vips.external != vips.internal {
        out.push(Instance {
            name: format!("{cluster}_external"),
            vip: vips.external,
            prefix: prefix(vips.external),
            virtual_router_id: k.virtual_router_id.wrapping_add(1),
        });
    }
    out
}

/// The lb hosts in priority order (by name) with their priorities.
pub fn priorities(env: &Environment) -> Vec<(String, IpAddr, u8)> {
    env.hosts_with_role(HostRole::Lb)
        .enumerate()
        .map(|(i, (name, h))| {
            let p = TOP_PRIORITY.saturating_sub(PRIORITY_STEP.saturating_mul(i.min(14) as u8));
            (name.to_string(), h.address, p)
        })
        .collect()
}

/// keepalived.conf for one lb host.
pub fn render(env: &Environment, host: &str) -> String {
    let Some(k) = env.keepalived() else { return String::new() };
    let peers = priorities(env);
    let Some((_, own, priority)) = peers.iter().find(|(n, _, _)| n == host).cloned() else { return String::new() };
    let mut s = format!(
        "# Managed by groundwork for cluster {}. Changes made by hand are overwritten.\n\
         global_defs {{\n    router_id {host}\n    enable_script_security\n    script_user root\n}}\n\n\
         vrrp_script groundwork_haproxy {{\n    script \"{HAPROXY_CHECK}\"\n    interval 1\n    fall 2\n    rise 2\n}}\n",
        env.cluster.name
    );
    for i in instances(env) {
        let _ = write!(
            s,
            "\nvrrp_instance {} {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n    priority {priority}\n    \
             advert_int 1\n",
            i.name, k.interface, i.virtual_router_id
        );
        if !k.preempt {
            s.push_str("    nopreempt\n");
        }
        let _ = writeln!(s, "    unicast_src_ip {own}\n    unicast_peer {{");
        for (name, addr, _) in &peers {
            if name != host {
                let _ = writeln!(s, "        {addr}");
            }
        }
        let _ = write!(
            s,
            "    }}\n    check_unicast_src\n    virtual_ipaddress {{\n        {}/{} dev {}\n    }}\n    \
             track_script {{\n        groundwork_haproxy\n    }}\n}}\n",
            i.vip, i.prefix, k.interface
        );
    }
    s
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let Some(k) = env.keepalived() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (host, _) in env.hosts_with_role(HostRole::Lb) {
        let mut mf = ManagedFile::new(k.config.to_string(), render(env, host));
        mf.mode = Some(0o644);
        mf.check = vec![vec!["keepalived".into(), "-t".into(), "-f".into(), CANDIDATE.into()]];
        // As haproxy's: a running keepalived re-reads its file; a stopped one starts with it.
        mf.activate = Some(vec!["systemctl".into(), "reload-or-restart".into(), "keepalived".into()]);
        out.push(Resource::new(Address::new(PROVIDER, "config", Some(host), k.config.to_string()), mf)?);
    }
    Ok(out)
}

/// The addresses a host holds, from `ip -o addr show` (one line per address: `2: eth0 inet 10.0.0.4/24 ...`).
pub fn addresses_in(ip_output: &str) -> std::collections::BTreeSet<IpAddr> {
    ip_output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6");
            words.next()?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// The read-only query [`held`] runs: a caller may run it ahead, in a batch.
pub fn held_query() -> groundwork_sdk::Cmd {
    groundwork_sdk::Cmd::new("ip").args(["-o", "addr", "show"])
}

/// The addresses a host holds now (which of the VIPs are on it).
pub async fn held(t: &dyn groundwork_sdk::Transport) -> Result<std::collections::BTreeSet<IpAddr>, String> {
    let out = t.exec(&held_query()).await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(out.message());
    }
    Ok(addresses_in(&out.stdout_str()))
}

/// `VIP priority N` lines of a keepalived.conf, for the plan's entry-level view.
fn vips_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut priority = String::new();
    let mut in_vips = false;
    for line in text.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("priority ") {
            priority = p.to_string();
        } else if line.starts_with("virtual_ipaddress") {
            in_vips = true;
        } else if in_vips && line == "}" {
            in_vips = false;
        } else if in_vips {
            let vip = line.split_whitespace().next().unwrap_or_default();
            out.push(format!("VIP {vip} priority {priority}"));
        }
    }
    out
}

pub fn provider() -> file::WholeFiles {
    file::WholeFiles {
        name: PROVIDER,
        details: |old, new| {
            groundwork_sdk::set_details(&old.map(vips_of).unwrap_or_default(), &new.map(vips_of).unwrap_or_default())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(lbs: &str) -> Environment {
        groundwork_sdk::yaml::from_str(&format!(
            "cluster: {{ name: lab, base_domain: example.test }}\n\
             networks: {{ machine: [10.88.0.0/24], cluster: {{ cidr: 10.128.0.0/14, host_prefix: 23 }}, service: [172.30.0.0/16] }}\n\
             hosts:\n{lbs}"
        ))
        .unwrap()
    }

    const TWO: &str =
        "  lb1: { address: 10.88.0.3, roles: [lb], vips: { internal: 10.88.0.6, external: 10.88.0.4 } }\n  \
                       lb2: { address: 10.88.0.5, roles: [lb], vips: { internal: 10.88.0.6, external: 10.88.0.4 } }\n";

    #[test]
    fn two_load_balancers_share_both_vips() {
        let e = env(TWO);
        insta::assert_snapshot!(render(&e, "lb1"));
        let lb2 = render(&e, "lb2");
        assert!(lb2.contains("priority 140") && lb2.contains("unicast_src_ip 10.88.0.5"));
        assert!(lb2.contains("unicast_peer {\n        10.88.0.3\n    }"), "{lb2}");
        assert_eq!(vips_of(&lb2), ["VIP 10.88.0.6/24 priority 140", "VIP 10.88.0.4/24 priority 140"]);
        assert_eq!(resources(&e).unwrap().len(), 2);
    }

    #[test]
    fn held_addresses_are_read_from_ip_addr() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   2: eth0    inet 10.88.0.3/24 brd 10.88.0.255 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet 10.88.0.6/24 scope global secondary eth0\\       valid_lft forever\n\
                   2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n";
        let held = addresses_in(out);
        let want: Vec<IpAddr> =
            ["10.88.0.3", "10.88.0.6", "127.0.0.1", "fe80::1"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(held.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn one_load_balancer_has_no_vrrp_unless_asked() {
        let one = "  lb1: { address: 10.88.0.3, roles: [lb], vips: { internal: 10.88.0.3, external: 10.88.0.4 } }\n";
        assert!(resources(&env(one)).unwrap().is_empty());
        let mut e = env(TWO);
        e.loadbalancer.keepalived =
            Some(groundwork_sdk::model::KeepalivedSettings { preempt: true, ..Default::default() });
        assert!(!render(&e, "lb1").contains("nopreempt"));
    }
}
