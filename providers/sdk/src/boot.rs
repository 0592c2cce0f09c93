//! The boot model: for every declared node, what it boots and with which kernel arguments, derived
//! once from the inventory. The files provider serves each node's iPXE script and the chain script
//! from it; dhcpd and Kea hand out the same loaders and chain script; the TFTP provider serves the
//! loaders. One model, so no two of them can disagree.
//!
//! The chain: the firmware's PXE client gets an iPXE loader over TFTP (`dhcp.pxe.bios_file` or
//! `efi_file`), or the NIC's own iPXE ROM runs; iPXE gets the chain script over HTTP (`dhcp.pxe.script`),
//! which fetches the script of its own MAC (`<files.boot.scripts>/52-54-00-…ipxe`); that script boots
//! the node's role. A MAC that is not in the inventory (or a retired bootstrap's) has no script: the
//! chain script says so and exits, and nothing is installed.

use crate::model::{Environment, HostRole, Node, NodeRole};
use std::net::IpAddr;

/// One node's boot: the served path of its script, and what the script boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootEntry {
    pub node: String,
    pub role: NodeRole,
    /// `52:54:00:00:00:21`
    pub mac: String,
    /// Served path of its script (`ipxe/52-54-00-00-00-21.ipxe`).
    pub script: String,
    pub kernel_url: String,
    /// The initramfs URL and the name iPXE gives it (the kernel's `initrd=` argument).
    pub initrd_url: String,
    pub initrd_name: String,
    /// Every kernel argument, in order.
    pub args: Vec<String>,
    /// The ignition file it installs with.
    pub ignition: String,
}

/// Base URL of the cluster's served files (`http://10.88.0.10`, `http://[fd00::10]`, `http://10.88.0.10/a` on
/// shared infra hosts).
pub fn http_base(env: &Environment) -> Option<String> {
    let (_, host) = env.http_host()?;
    let port = match env.http_port() {
        80 => String::new(),
        p => format!(":{p}"),
    };
    // On infra hosts several clusters share, each cluster's files are under its own directory.
    let dir = match env.cluster.shared_infra {
        true => format!("/{}", env.cluster.name),
        false => String::new(),
    };
    Some(match host.address {
        IpAddr::V6(v6) => format!("http://[{v6}]{port}{dir}"),
        v4 => format!("http://{v4}{port}{dir}"),
    })
}

/// Where a MAC's script is served: `<dir>/52-54-00-00-00-21.ipxe` (iPXE's `${mac:hexhyp}`).
pub fn script_path(dir: &str, mac: &str) -> String {
    format!("{}/{}.ipxe", dir.trim_end_matches('/'), mac.to_ascii_lowercase().replace(':', "-"))
}

fn netmask(prefix: u8) -> String {
    let m: u32 = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    std::net::Ipv4Addr::from(m).to_string()
}

/// The `ip=` (and `nameserver=`) arguments of a node: DHCP, or its static address.
fn address_args(env: &Environment, n: &Node) -> Vec<String> {
    let fqdn = env.node_fqdn(n);
    let nic = n.nic.as_ref().map(|x| x.to_string()).unwrap_or_default();
    let Some(s) = &n.static_ip else {
        return vec![if nic.is_empty() { "ip=dhcp".into() } else { format!("ip={nic}:dhcp") }];
    };
    let prefix = s
        .prefix
        .or_else(|| env.networks.machine.iter().find(|m| m.contains(&n.ip)).map(|m| m.prefix_len()))
        .unwrap_or(24);
    let (ip, gw, mask) = match (n.ip, s.gateway) {
        (IpAddr::V6(ip), IpAddr::V6(gw)) => (format!("[{ip}]"), format!("[{gw}]"), prefix.to_string()),
        (ip, gw) => (ip.to_string(), gw.to_string(), netmask(prefix)),
    };
    let mut out = vec![format!("ip={ip}::{gw}:{mask}:{fqdn}:{nic}:none")];
    let servers: Vec<IpAddr> = if s.nameservers.is_empty() {
        env.hosts_with_role(HostRole::Dns).map(|(_, h)| h.address).collect()
    } else {
        s.nameservers.clone()
    };
    out.extend(servers.iter().map(|a| format!("nameserver={a}")));
    out
}

/// Every declared node's boot entry (none without `files.boot` and an http host).
pub fn entries(env: &Environment) -> Vec<BootEntry> {
    let (Some(boot), Some(base)) = (env.files.as_ref().and_then(|f| f.boot.as_ref()), http_base(env)) else {
        return Vec::new();
    };
    let live = boot.rootfs.is_some();
    let url = |p: &str| format!("{base}/{p}");
    env.nodes
        .iter()
        .map(|n| {
            let dev = n.install_dev.as_ref().unwrap_or(&boot.install_dev).to_string();
            let ignition = n.role.ignition().to_string();
            // 4.6 and later boot the live image with a named initrd; 4.5 names it by its file name.
            let initrd_name = if live {
                "main".to_string()
            } else {
                boot.initramfs.rsplit('/').next().unwrap_or(&boot.initramfs).to_string()
            };
            let mut args = address_args(env, n);
            args.push("rd.neednet=1".into());
            args.push(format!("initrd={initrd_name}"));
            args.extend(boot.console.split(' ').filter(|a| !a.is_empty()).map(str::to_string));
            if live {
                let dev = if dev.starts_with('/') { dev } else { format!("/dev/{dev}") };
                args.push(format!("coreos.inst.install_dev={dev}"));
                if let Some(rootfs) = &boot.rootfs {
                    args.push(format!("coreos.live.rootfs_url={}", url(rootfs)));
                }
                if let Some(image) = &boot.image {
                    args.push(format!("coreos.inst.image_url={}", url(image)));
                }
            } else {
                args.push("coreos.inst=yes".into());
                args.push(format!("coreos.inst.install_dev={dev}"));
                if let Some(image) = &boot.image {
                    args.push(format!("coreos.inst.image_url={}", url(image)));
                }
            }
            args.push(format!("coreos.inst.ignition_url={}", url(&ignition)));
            for extra in [&boot.extra_args, &n.kernel_args].into_iter().flatten() {
                args.extend(extra.split(' ').filter(|a| !a.is_empty()).map(str::to_string));
            }
            BootEntry {
                node: n.name.to_string(),
                role: n.role,
                mac: n.mac.to_string(),
                script: script_path(&boot.scripts, &n.mac),
                kernel_url: url(&boot.kernel),
                initrd_url: url(&boot.initramfs),
                initrd_name,
                args,
                ignition,
            }
        })
        .collect()
}

/// The script of one node.
pub fn render_node_script(cluster: &str, e: &BootEntry) -> String {
    let initrd = if e.initrd_name == "main" {
        format!("initrd --name main {}", e.initrd_url)
    } else {
        format!("initrd {}", e.initrd_url)
    };
    format!(
        "#!ipxe\n# {} ({}) of cluster {cluster}, {}. Rendered by groundwork from the inventory; do not edit by hand.\n\
         kernel {} {}\n{initrd}\nboot\n",
        e.node,
        e.role.as_str(),
        e.mac,
        e.kernel_url,
        e.args.join(" ")
    )
}

/// The chain script DHCP hands to iPXE: fetch the script of this machine's MAC, or say that the machine
/// is not in the inventory and exit (nothing is installed).
pub fn render_chain_script(env: &Environment) -> Option<String> {
    let boot = env.files.as_ref()?.boot.as_ref()?;
    let base = http_base(env)?;
    let cluster = &env.cluster.name;
    Some(format!(
        "#!ipxe\n# Rendered by groundwork for cluster {cluster}: each declared machine boots its own script, by MAC.\n\
         chain {base}/{}/${{mac:hexhyp}}.ipxe || goto unknown\n\
         :unknown\n\
         echo ${{mac}} has no boot script in the inventory of cluster {cluster}: nothing is installed.\n\
         exit\n",
        boot.scripts.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(boot: &str, node_extra: &str) -> Environment {
        let yaml = format!(
            r#"cluster: {{ name: lab, base_domain: example.test }}
networks: {{ machine: [10.88.0.0/24], cluster: {{ cidr: 10.128.0.0/14, host_prefix: 23 }}, service: [172.30.0.0/16] }}
hosts:
  bastion: {{ address: 10.88.0.10, roles: [http, tftp] }}
  ns1: {{ address: 10.88.0.2, roles: [dns] }}
nodes:
  - {{ name: m1, role: master, mac: "52:54:00:00:00:21", ip: 10.88.0.21{node_extra} }}
files:
  boot: {boot}
"#
        );
        crate::yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn a_45_node_boots_the_metal_image_with_the_seed_arguments() {
        let e = env("{ kernel: k, initramfs: i.img, image: m.raw.gz }", "");
        let b = &entries(&e)[0];
        assert_eq!(b.script, "ipxe/52-54-00-00-00-21.ipxe");
        assert_eq!(
            b.args.join(" "),
            "ip=dhcp rd.neednet=1 initrd=i.img console=tty0 console=ttyS0 coreos.inst=yes coreos.inst.install_dev=sda \
             coreos.inst.image_url=http://10.88.0.10/m.raw.gz coreos.inst.ignition_url=http://10.88.0.10/master.ign"
        );
        let script = render_node_script("lab", b);
        assert!(script.contains("\ninitrd http://10.88.0.10/i.img\nboot\n"), "{script}");
    }

    #[test]
    fn a_46_node_boots_the_live_rootfs_with_its_own_disk_nic_and_static_address() {
        let e = env(
            "{ kernel: k, initramfs: i.img, rootfs: r.img, extra_args: \"a=1\" }",
            ", install_dev: nvme0n1, nic: ens3, kernel_args: \"b=2\", static: { gateway: 10.88.0.1 }",
        );
        let b = &entries(&e)[0];
        assert_eq!(
            b.args.join(" "),
            "ip=10.88.0.21::10.88.0.1:255.255.255.0:m1.lab.example.test:ens3:none nameserver=10.88.0.2 rd.neednet=1 \
             initrd=main console=tty0 console=ttyS0 coreos.inst.install_dev=/dev/nvme0n1 \
             coreos.live.rootfs_url=http://10.88.0.10/r.img coreos.inst.ignition_url=http://10.88.0.10/master.ign a=1 b=2"
        );
        assert!(render_node_script("lab", b).contains("\ninitrd --name main http://10.88.0.10/i.img\n"));
        let chain = render_chain_script(&e).unwrap();
        assert!(chain.contains("chain http://10.88.0.10/ipxe/${mac:hexhyp}.ipxe || goto unknown"), "{chain}");
        assert!(
            chain.contains("has no boot script in the inventory of cluster lab: nothing is installed.\nexit\n"),
            "{chain}"
        );
    }
}
