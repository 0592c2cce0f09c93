//! Import under hostile files: zone, dhcpd.conf and haproxy.cfg text with arbitrary names, MACs and
//! served paths. Import never panics; what it writes loads back as an environment holding exactly the
//! values that passed their type, and each one refused is in the report.

use groundwork::import::{build, to_yaml, HostFile, Observed, Served, ServedEntry, ZoneFile};
use groundwork_sdk::model::{Host, SshSettings};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-z][a-z0-9]{0,6}",
        1 => Just("w-1".to_string()),
        1 => Just("bad_name".to_string()),
        1 => Just("x\"y".to_string()),
        1 => Just("-lead".to_string()),
        1 => Just("UPPER".to_string()),
        1 => Just("é".to_string()),
        1 => Just("a{b".to_string()),
        1 => Just("a;b".to_string()),
    ]
}

fn mac() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => "52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}",
        1 => Just("zz:zz:zz:zz:zz:zz".to_string()),
        1 => Just("01:00:5e:00:00:01".to_string()),
        1 => Just("52:54:00:00:00".to_string()),
    ]
}

fn served_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}\\.(ign|img|ipxe)",
        Just("../etc/passwd".to_string()),
        Just(".hidden/key".to_string()),
        Just("a\nb".to_string()),
        Just("dir/\"quoted\".txt".to_string()),
        Just("sp ace.txt".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<(String, String, u8)>,
    served: Vec<String>,
}

fn case() -> impl Strategy<Value = Case> {
    (prop::collection::vec((name(), mac(), 20u8..200), 1..8), prop::collection::vec(served_path(), 0..5))
        .prop_map(|(nodes, served)| Case { nodes, served })
}

fn observed(c: &Case) -> Observed {
    let file = |host: &str, path: &str, text: String| HostFile { host: host.into(), path: path.into(), text };
    let mut zone =
        String::from("$TTL 300\n@ IN SOA ns1.lab.example.test. root.lab.example.test. 1 3600 900 86400 300\n");
    zone.push_str("@ IN NS ns1.lab.example.test.\nns1 IN A 10.88.0.2\napi IN A 10.88.0.4\napi-int IN A 10.88.0.3\n");
    let mut dhcpd = String::from("subnet 10.88.0.0 netmask 255.255.255.0 {\n  option routers 10.88.0.1;\n");
    let mut haproxy = String::from("frontend api\n  bind *:6443\n  default_backend api\nbackend api\n");
    for (n, m, last) in &c.nodes {
        zone.push_str(&format!("{n} IN A 10.88.0.{last}\n"));
        dhcpd.push_str(&format!("  host {n} {{ hardware ethernet {m}; fixed-address 10.88.0.{last}; }}\n"));
        haproxy.push_str(&format!("  server {n} 10.88.0.{last}:6443 check\n"));
    }
    dhcpd.push_str("}\n");
    let stanza = groundwork_bind::options::read_named_conf(
        "zone \"lab.example.test\" { type master; file \"/var/named/lab.example.test.zone\"; };",
    )
    .zones
    .remove(0);
    Observed {
        zones: vec![ZoneFile {
            stanza,
            conf: "ns1:/etc/named.conf".into(),
            file: file("ns1", "/var/named/lab.example.test.zone", zone),
        }],
        dhcpd: Some(file("ns1", "/etc/dhcp/dhcpd.conf", dhcpd)),
        haproxy: Some(file("lb1", "/etc/haproxy/haproxy.cfg", haproxy)),
        served: Some(Served {
            host: "bastion".into(),
            docroot: "/usr/share/nginx/html".into(),
            files: c
                .served
                .iter()
                .map(|p| ServedEntry { path: p.clone(), size: 1, mode: 0o644, sha256: "ab".repeat(32) })
                .collect(),
        }),
        notes: Vec::new(),
        ..Default::default()
    }
}

fn hosts() -> BTreeMap<String, Host> {
    serde_json::from_value(serde_json::json!({
        "bastion": { "address": "10.88.0.10", "roles": ["http"] },
        "ns1": { "address": "10.88.0.2", "roles": ["dns", "dhcp"] },
        "lb1": { "address": "10.88.0.3", "roles": ["lb"] },
    }))
    .unwrap()
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let imported = match build(&hosts(), &SshSettings::default(), &observed(c)) {
        Ok(i) => i,
        Err(e) => {
            // Refused as a whole only with a reason, never by panicking.
            prop_assert!(!e.to_string().is_empty());
            return Ok(());
        }
    };
    let yaml = to_yaml(&imported.sections, "property test");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("environment.yaml"), &yaml).unwrap();
    let loaded = groundwork::config::load::load(dir.path()).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
    let report: String = imported.notes.iter().map(|n| format!("{n}\n")).collect();
    // Every written node is made of what the files gave: its MAC and address from one pin, its name
    // one the files hold (DNS names lowercased; a malformed line like `host a{b {` is read as dhcpd's
    // own grammar reads it, as the host `a`).
    for n in &loaded.env.nodes {
        let pin = c
            .nodes
            .iter()
            .any(|(_, mac, last)| n.mac.as_ref() == mac.as_str() && n.ip.to_string() == format!("10.88.0.{last}"));
        let named = c.nodes.iter().any(|(name, _, _)| name.to_ascii_lowercase().contains(n.name.as_str()));
        prop_assert!(pin && named, "{n:?} was not in the files\n{yaml}");
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
    }
    // A name refused by its type is named in the report.
    for (name, _, _) in &c.nodes {
        if !loaded.env.nodes.iter().any(|n| n.name.as_str() == name.to_ascii_lowercase()) {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            prop_assert!(!report.is_empty(), "{name} went missing silently\n{yaml}");
        }
    }
    // Served paths: only relative, normalised ones under the docroot.
    for f in loaded.env.files.iter().flat_map(|f| &f.serve) {
        prop_assert!(c.served.contains(&f.path.to_string()), "{:?} was not served\n{yaml}", f.path);
        prop_assert!(!f.path.contains("..") && !f.path.contains('\n'));
    }
    Ok(())
}

#[test]
fn hostile_files_import_into_values_that_load_back_or_are_reported() {
    let config = ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(c in case())| { check(&c)?; });
    let (accepted, refused) = (ACCEPTED.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed));
    eprintln!("{accepted} nodes imported, {refused} refused and reported");
    assert!(accepted >= 50 && refused >= 20, "accepted {accepted}, refused {refused}: the strategies are too tame");
}
