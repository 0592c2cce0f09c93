//! # groundwork-dhcpd
//!
//! One whole `dhcpd.conf` per dhcp host, rendered from the inventory: the subnet (routers, DNS servers,
//! domain), the iPXE chain-loading class of the reference install (first boot: TFTP ipxe.efi or
//! undionly.kpxe; second boot, user-class iPXE: the HTTP script URL) and a `host` pin per node. Checked
//! with `dhcpd -t -cf` before it replaces the live file; dhcpd restarts only when the content changed.
//! [`intent`] (what any DHCP server must hand out) and the host pins are shared with the Kea backend.

use groundwork_sdk::file::{self, ManagedFile, CANDIDATE};
use groundwork_sdk::model::{DhcpBackend, Environment, HostRole};
use groundwork_sdk::{Address, Detail, Error, Resource};
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
    Open,
    Close,
    Semi,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let flush = |w: &mut String, out: &mut Vec<Token>| {
        if !w.is_empty() {
            out.push(Token::Word(std::mem::take(w)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, &mut out);
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                word.push(c);
                for c in chars.by_ref() {
                    word.push(c);
                    if c == '"' {
                        break;
                    }
                }
            }
            '{' | '}' | ';' => {
                flush(&mut word, &mut out);
                out.push(match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    _ => Token::Semi,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Every `host NAME { hardware ethernet MAC; fixed-address IP; }` of a dhcpd.conf, wherever it is nested.
pub fn parse_pins(text: &str) -> BTreeMap<String, Pin> {
    let tokens = tokenize(text);
    let mut pins = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if let (Token::Word(kw), Some(Token::Word(name)), Some(Token::Open)) =
            (&tokens[i], tokens.get(i + 1), tokens.get(i + 2))
        {
            if kw == "host" {
                let mut pin = Pin { mac: String::new(), address: String::new() };
                let mut j = i + 3;
                let mut depth = 1;
                while j < tokens.len() && depth > 0 {
                    match &tokens[j] {
                        Token::Open => depth += 1,
                        Token::Close => depth -= 1,
                        Token::Word(w) if w == "hardware" => {
                            if let (Some(Token::Word(_)), Some(Token::Word(mac))) =
                                (tokens.get(j + 1), tokens.get(j + 2))
                            {
                                pin.mac = mac.to_ascii_lowercase();
                            }
                        }
                        Token::Word(w) if w == "fixed-address" => {
                            if let Some(Token::Word(ip)) = tokens.get(j + 1) {
                                pin.address = ip.clone();
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                pins.insert(name.clone(), pin);
                i = j;
                continue;
            }
        }
        i += 1;
    }
    pins
}

fn dotted_mask(prefix: u8) -> String {
    let m: u32 = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    std::net::Ipv4Addr::from(m).to_string()
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
    pub lease_time: u32,
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
        let tftp = env.hosts.get(&pxe.tftp_host).map(|h| h.address.to_string()).unwrap_or_default();
        let http = env
            .files
            .as_ref()
            .and_then(|f| f.host.as_ref().and_then(|h| env.hosts.get(h)))
            .or_else(|| env.first_host_with_role(HostRole::Http).map(|(_, h)| h))
            .map(|h| h.address.to_string())
            .unwrap_or_else(|| tftp.clone());
        PxeIntent {
            script_url: format!("http://{http}/{}", pxe.script.trim_start_matches('/')),
            next_server: tftp,
            efi_file: pxe.efi_file.clone(),
            bios_file: pxe.bios_file.clone(),
        }
    });
    Some(DhcpIntent {
        cluster: env.cluster.name.clone(),
        domain: env.cluster.domain(),
        subnet,
        routers: d.routers.iter().map(IpAddr::to_string).collect(),
        dns,
        lease_time: d.default_lease_time,
        pxe,
        pins: env
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Pin { mac: n.mac.to_ascii_lowercase(), address: n.ip.to_string() }))
            .collect(),
    })
}

/// Render dhcpd.conf for the environment.
pub fn render(env: &Environment) -> Option<String> {
    let i = intent(env)?;
    let mut s = String::new();
    let _ = writeln!(s, "# Managed by groundwork for cluster {}. Changes made by hand are overwritten.", i.cluster);
    let _ = writeln!(s, "authoritative;\nddns-update-style none;");
    let _ = writeln!(s, "default-lease-time {};\nmax-lease-time {};", i.lease_time, i.lease_time * 12);
    let _ = writeln!(s, "option domain-name \"{}\";", i.domain);
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
        let _ = writeln!(s, "    next-server {};", pxe.next_server);
        let _ = writeln!(s, "    if exists user-class and option user-class = \"iPXE\" {{");
        let _ = writeln!(s, "        filename \"{}\";", pxe.script_url);
        let _ = writeln!(s, "    }} elsif option client-arch = 00:07 or option client-arch = 00:09 {{");
        let _ = writeln!(s, "        filename \"{}\";", pxe.efi_file);
        let _ = writeln!(s, "    }} else {{");
        let _ = writeln!(s, "        filename \"{}\";", pxe.bios_file);
        let _ = writeln!(s, "    }}\n}}");
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
        let _ = writeln!(s, "    option host-name \"{name}\";");
        let _ = writeln!(s, "}}");
    }
    Some(s)
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let (Some(d), Some(content)) = (&env.dhcp, render(env)) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (host, _) in env.hosts_with_role(HostRole::Dhcp).filter(|(h, _)| d.backend_of(h) == DhcpBackend::Dhcpd) {
        let mut mf = ManagedFile::new(d.config.clone(), content.clone());
        mf.mode = Some(0o644);
        mf.check = vec![vec!["dhcpd".into(), "-t".into(), "-q".into(), "-cf".into(), CANDIDATE.into()]];
        mf.activate = Some(d.restart.clone());
        out.push(Resource::new(Address::new(PROVIDER, "config", Some(host), d.config.clone()), mf)?);
    }
    Ok(out)
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

/// The provider: whole dhcpd.conf files, described by their host pins.
pub fn provider() -> file::WholeFiles {
    file::WholeFiles {
        name: PROVIDER,
        details: |old, new| {
            pin_details(&old.map(parse_pins).unwrap_or_default(), &new.map(parse_pins).unwrap_or_default())
        },
    }
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
    fn masks() {
        assert_eq!(dotted_mask(24), "255.255.255.0");
        assert_eq!(dotted_mask(23), "255.255.254.0");
        assert_eq!(dotted_mask(0), "0.0.0.0");
    }
}
