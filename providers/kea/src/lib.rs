//! # groundwork-kea
//!
//! Kea DHCPv4 as a second DHCP backend, chosen per dhcp host. One whole `kea-dhcp4.conf` per host,
//! rendered from the same [`groundwork_dhcpd::intent`] as dhcpd.conf: the subnet and its options, a
//! reservation per node and the iPXE chain-loading classes. Checked with `kea-dhcp4 -t` before it
//! replaces the live file; kea-dhcp4 restarts only when the content changed.

use groundwork_dhcpd::{intent, pin_details, DhcpdEntries, Pin};
use groundwork_sdk::file::{self, ManagedFile, CANDIDATE};
use groundwork_sdk::model::{DhcpBackend, Environment, HostRole};
use groundwork_sdk::value::Interface;
use groundwork_sdk::{Address, Error, Resource};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const PROVIDER: &str = "kea";

/// Render kea-dhcp4.conf for the environment (`interfaces`: what kea-dhcp4 listens on).
pub fn render(env: &Environment, interfaces: &[Interface]) -> Option<String> {
    let i = intent(env)?;
    let mut options = vec![json!({ "name": "domain-name", "data": i.domain })];
    if !i.dns.is_empty() {
        options.push(json!({ "name": "domain-name-servers", "data": i.dns.join(", ") }));
    }
    let mut subnet_options = Vec::new();
    if !i.routers.is_empty() {
        subnet_options.push(json!({ "name": "routers", "data": i.routers.join(", ") }));
    }
    let reservations: Vec<Value> = i
        .pins
        .iter()
        .map(|(name, pin)| json!({ "hw-address": pin.mac, "ip-address": pin.address, "hostname": name }))
        .collect();
    let mut dhcp4 = json!({
        "interfaces-config": { "interfaces": interfaces },
        "authoritative": true,
        "valid-lifetime": i.lease_time.get(),
        "max-valid-lifetime": i.lease_time.max(),
        "option-data": options,
        "subnet4": [{
            "id": 1,
            "subnet": i.subnet.trunc().to_string(),
            "option-data": subnet_options,
            "reservations": reservations,
        }],
    });
    if let Some(pxe) = &i.pxe {
        // Classes are evaluated in order: iPXE (user class 77) first, then the firmware's PXE client
        // by architecture (RFC 4578 option 93: EFI x86-64 is 7 or 9).
        dhcp4["client-classes"] = json!([
            { "name": "ipxe", "test": "substring(option[77].hex,0,4) == 'iPXE'", "boot-file-name": pxe.script_url },
            {
                "name": "pxe-efi",
                "test": "not member('ipxe') and substring(option[60].hex,0,9) == 'PXEClient' and (option[93].hex == 0x0007 or option[93].hex == 0x0009)",
                "next-server": pxe.next_server,
                "boot-file-name": pxe.efi_file,
            },
            {
                "name": "pxe-bios",
                "test": "not member('ipxe') and not member('pxe-efi') and substring(option[60].hex,0,9) == 'PXEClient'",
                "next-server": pxe.next_server,
                "boot-file-name": pxe.bios_file,
            },
        ]);
    }
    let body = serde_json::to_string_pretty(&json!({ "Dhcp4": dhcp4 })).ok()?;
    Some(format!("# Managed by groundwork for cluster {}. Changes made by hand are overwritten.\n{body}\n", i.cluster))
}

/// Every reservation of a kea-dhcp4.conf (global and per subnet), by hostname (else hw-address); a
/// name that comes again is numbered, never hidden (see [`groundwork_dhcpd::keyed`]).
pub fn parse_reservations(text: &str) -> BTreeMap<String, Pin> {
    groundwork_dhcpd::keyed(read_reservations(text))
}

/// A kea-dhcp4.conf as JSON (Kea allows `#` and `//` comment lines).
fn kea_json(text: &str) -> Option<Value> {
    let json: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str::<Value>(&json).ok()
}

/// The `boot-file-name` of every client class, in order (what PXE clients are handed).
pub fn read_boot_files(text: &str) -> Vec<String> {
    let Some(v) = kea_json(text) else { return Vec::new() };
    v["Dhcp4"]["client-classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["boot-file-name"].as_str().map(str::to_string))
        .collect()
}

/// The reservations of a kea-dhcp4.conf in file order, global ones first. Kea allows `#` and `//`
/// comment lines; anything that is not then JSON has no reservations to show.
pub fn read_reservations(text: &str) -> Vec<(String, Pin)> {
    let Some(v) = kea_json(text) else { return Vec::new() };
    let dhcp4 = &v["Dhcp4"];
    let global = dhcp4["reservations"].as_array().into_iter().flatten();
    let in_subnets = dhcp4["subnet4"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["reservations"].as_array().into_iter().flatten());
    global
        .chain(in_subnets)
        .filter_map(|r| {
            let mac = r["hw-address"].as_str()?.to_ascii_lowercase();
            let address = r["ip-address"].as_str().unwrap_or_default().to_string();
            let name = r["hostname"].as_str().map(str::to_string).unwrap_or_else(|| mac.clone());
            Some((name, Pin { mac, address }))
        })
        .collect()
}

/// What a kea-dhcp4.conf declares, in the form dhcpd.conf is read into (what `groundwork import` takes):
/// reservations with the line their hw-address is on, subnets, routers, name servers, and the PXE
/// classes' next-server and boot files. None when the text is not Kea's JSON.
pub fn read_entries(text: &str) -> Option<DhcpdEntries> {
    let v = kea_json(text)?;
    let dhcp4 = &v["Dhcp4"];
    let mut e = DhcpdEntries { hosts: read_reservations(text), ..Default::default() };
    // A reservation's line: where its MAC first stands after the previous one's.
    let mut from = 0;
    let lower = text.to_ascii_lowercase();
    for (_, pin) in &e.hosts {
        let at = lower[from..].find(&pin.mac).map(|i| from + i).unwrap_or(from);
        from = at + pin.mac.len().min(lower.len() - at);
        e.host_lines.push(text[..at].matches('\n').count() + 1);
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_str().unwrap_or_default().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    let options = |scope: &Value, name: &str| -> Vec<String> {
        scope["option-data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["name"] == name)
            .flat_map(|o| list(&o["data"]))
            .collect()
    };
    e.name_servers = options(dhcp4, "domain-name-servers");
    for s in dhcp4["subnet4"].as_array().into_iter().flatten() {
        let Some(net) = s["subnet"].as_str() else { continue };
        let line = text.find(net).map(|i| text[..i].matches('\n').count() + 1).unwrap_or(0);
        let (addr, prefix) = net.split_once('/').unwrap_or((net, "24"));
        let prefix: u32 = prefix.parse().unwrap_or(24).min(32);
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        e.subnets.push((addr.to_string(), std::net::Ipv4Addr::from(mask).to_string(), line));
        e.routers.extend(options(s, "routers"));
        if e.name_servers.is_empty() {
            e.name_servers = options(s, "domain-name-servers");
        }
        e.next_servers.extend(s["next-server"].as_str().map(str::to_string));
    }
    for c in dhcp4["client-classes"].as_array().into_iter().flatten() {
        e.next_servers.extend(c["next-server"].as_str().map(str::to_string));
        e.filenames.extend(c["boot-file-name"].as_str().map(str::to_string));
    }
    e.domain_names = options(dhcp4, "domain-name");
    Some(e)
}

/// `interfaces-config.interfaces` of a kea-dhcp4.conf.
pub fn read_interfaces(text: &str) -> Vec<String> {
    let Some(v) = kea_json(text) else { return Vec::new() };
    v["Dhcp4"]["interfaces-config"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect()
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let Some(d) = &env.dhcp else { return Ok(Vec::new()) };
    let hosts: Vec<_> =
        env.hosts_with_role(HostRole::Dhcp).filter(|(h, _)| d.backend_of(h) == DhcpBackend::Kea).collect();
    // Rendered only where a host runs Kea: at 1000 nodes a render is a few ms of every plan.
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let Some(content) = render(env, &d.kea.interfaces) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (host, _) in hosts {
        let mut mf = ManagedFile::new(d.kea.config.to_string(), content.clone());
        mf.mode = Some(0o644);
        mf.check = vec![vec!["kea-dhcp4".into(), "-t".into(), CANDIDATE.into()]];
        mf.activate = Some(d.kea.restart.to_vec());
        // ISC dhcpd stops first on this host: both would answer on UDP 67.
        let dhcpd = groundwork_dhcpd::stopped_address(host, &groundwork_dhcpd::dhcpd_unit(d));
        let addr = Address::new(PROVIDER, "config", Some(host), d.kea.config.to_string());
        out.push(Resource::new(addr, mf)?.depends_on(dhcpd));
    }
    Ok(out)
}

/// The provider: whole kea-dhcp4.conf files, described by their reservations.
pub fn provider() -> file::WholeFiles {
    file::WholeFiles {
        name: PROVIDER,
        details: |old, new| {
            pin_details(
                &old.map(parse_reservations).unwrap_or_default(),
                &new.map(parse_reservations).unwrap_or_default(),
            )
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_groundwork_renders_reads_back_as_dhcpd_entries() {
        let env: groundwork_sdk::model::Environment = serde_json::from_value(serde_json::json!({
            "cluster": { "name": "lab", "base_domain": "example.test" },
            "networks": { "machine": ["10.88.0.0/24"], "cluster": { "cidr": "10.128.0.0/14", "host_prefix": 23 }, "service": ["172.30.0.0/16"] },
            "hosts": {
                "bastion": { "address": "10.88.0.10", "roles": ["http", "tftp"] },
                "ns1": { "address": "10.88.0.2", "roles": ["dns", "dhcp"] }
            },
            "nodes": [
                { "name": "m1", "role": "master", "mac": "52:54:00:00:00:21", "ip": "10.88.0.21" },
                { "name": "m2", "role": "master", "mac": "52:54:00:00:00:22", "ip": "10.88.0.22" }
            ],
            "dhcp": { "subnet": "10.88.0.0/24", "routers": ["10.88.0.1"], "pxe": { "tftp_host": "bastion", "script": "pxeboot.ipxe" } }
        }))
        .unwrap();
        let text = render(&env, &[]).unwrap();
        let e = read_entries(&text).unwrap();
        assert_eq!(e.hosts.len(), 2);
        assert_eq!(e.hosts[1].1, Pin { mac: "52:54:00:00:00:22".into(), address: "10.88.0.22".into() });
        assert!(e.host_lines[0] > 1 && e.host_lines[1] > e.host_lines[0], "{:?}", e.host_lines);
        assert!(text.lines().nth(e.host_lines[1] - 1).unwrap().contains("52:54:00:00:00:22"));
        assert_eq!(e.subnets, vec![("10.88.0.0".into(), "255.255.255.0".into(), e.subnets[0].2)]);
        assert_eq!(e.routers, vec!["10.88.0.1".to_string()]);
        assert_eq!(e.name_servers, vec!["10.88.0.2".to_string()]);
        assert!(e.next_servers.contains(&"10.88.0.10".to_string()));
        assert!(e.filenames.contains(&"http://10.88.0.10/pxeboot.ipxe".to_string()), "{:?}", e.filenames);
        assert!(read_entries("not json").is_none());
    }

    use super::*;

    #[test]
    fn reservations_are_read_back_from_comments_global_and_subnet_scopes() {
        let text = r#"# a comment
// another
{ "Dhcp4": {
  "reservations": [ { "hw-address": "52:54:00:AA:00:01", "ip-address": "10.88.0.5" } ],
  "subnet4": [ { "subnet": "10.88.0.0/24",
    "reservations": [ { "hw-address": "52:54:00:00:00:33", "ip-address": "10.88.0.33", "hostname": "w3" } ] } ]
} }"#;
        let r = parse_reservations(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r["w3"], Pin { mac: "52:54:00:00:00:33".into(), address: "10.88.0.33".into() });
        assert_eq!(r["52:54:00:aa:00:01"].address, "10.88.0.5");
        assert!(parse_reservations("{ not json").is_empty());
    }
}
