//! No inventory value can add, drop or change an entry of a config file: for arbitrary values that the
//! loader accepts, every rendered config read back by the project's own reader yields exactly the
//! declared entries. Values come from strategies that mix well-formed values with hostile ones (quotes,
//! semicolons, braces, line breaks, `${...}`, `..`, Unicode); whatever the loader refuses is counted,
//! whatever it accepts is rendered and read back.

use groundwork::config;
use groundwork_sdk::value::RecordData;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Strings that are often valid for a field and often hostile.
fn word(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        60 => valid,
        1 => "[ -~]{0,24}",
        1 => any::<String>().prop_map(|s| s.chars().take(24).collect()),
        1 => prop::sample::select(vec![
            "x\n    server evil 10.88.0.99:6443",
            "a\"; } host evil { hardware ethernet 52:54:00:00:00:21; fixed-address 10.88.0.99; } #",
            "../../../../etc/MARKER",
            "k ${evil}",
            "a b",
            "ok.name",
            "",
        ])
        .prop_map(str::to_string),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
        Just("say \"hi\"; \\ (x) {y} ${z}\nnext line".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<String>,
    records: Vec<(String, String, Value)>,
    frontends: Vec<String>,
    script: String,
    efi: String,
    bios: String,
    kernel: String,
    initramfs: String,
    image: String,
    install_dev: String,
    extra_args: String,
    service: String,
    description: String,
}

fn case() -> impl Strategy<Value = Case> {
    let path = || word("[a-z0-9][a-z0-9._+-]{3,10}(/[a-z0-9][a-z0-9._-]{0,8}){0,2}");
    // Mostly a type with a value of its kind; sometimes any type with any value.
    let typed = prop_oneof![
        ("TXT|txt", text().prop_map(Value::from)),
        ("TXT", prop::collection::vec(text(), 1..3).prop_map(Value::from)),
        ("A", "10\\.88\\.0\\.[0-9]{1,3}".prop_map(Value::from)),
        ("AAAA", "fd00::[0-9a-f]{1,4}".prop_map(Value::from)),
        ("CNAME|NS", "[a-z]{1,8}\\.example\\.org\\.?".prop_map(Value::from)),
        ("MX", "[0-9]{1,3} [a-z]{1,8}\\.example\\.org".prop_map(Value::from)),
        ("SRV", "[0-9]{1,3} [0-9]{1,3} [0-9]{1,5} [a-z]{1,8}\\.example\\.org".prop_map(Value::from)),
        ("CAA", "[0-9]{1,3} (issue|iodef) [!-~]{1,20}".prop_map(Value::from)),
        ("A|AAAA|CNAME|MX|SRV|CAA|PTR|BOGUS", text().prop_map(Value::from)),
    ];
    let record = (word("[a-z0-9_]([a-z0-9_-]{0,6}[a-z0-9_])?(\\.[a-z]{1,5}){0,2}"), typed);
    (
        prop::collection::vec(word("[a-z][a-z0-9-]{2,8}[a-z0-9]"), 6),
        prop::collection::vec(record.prop_map(|(n, (t, v))| (n, t, v)), 0..5),
        prop::collection::vec(word("[A-Za-z0-9_.:-]{1,16}"), 4),
        (path(), path(), path()),
        (path(), path(), path()),
        (
            word("(sd[a-z]|nvme[0-9]n[0-9]|/dev/disk/by-id/[a-z0-9-]{1,12})"),
            word("([a-z.]{1,8}=[a-z0-9,:]{1,8} ?){0,3}"),
        ),
        (word("[a-z][a-z0-9-]{0,10}"), text()),
    )
        .prop_map(
            |(nodes, records, frontends, (script, efi, bios), (kernel, initramfs, image), (dev, args), (svc, desc))| {
                Case {
                    nodes,
                    records,
                    frontends,
                    script,
                    efi,
                    bios,
                    kernel,
                    initramfs,
                    image,
                    install_dev: dev,
                    extra_args: args,
                    service: svc,
                    description: desc,
                }
            },
        )
}

fn environment(c: &Case) -> Value {
    let roles = ["bootstrap", "master", "master", "master", "worker", "worker"];
    let nodes: Vec<Value> = c
        .nodes
        .iter()
        .zip(roles)
        .enumerate()
        .map(|(i, (name, role))| {
            json!({"name": name, "role": role, "mac": format!("52:54:00:00:00:{:02x}", 0x10 + i), "ip": format!("10.88.0.{}", 11 + i)})
        })
        .collect();
    let control: Vec<&String> = c.nodes[..4].iter().collect();
    let workers: Vec<&String> = c.nodes[4..].iter().collect();
    let fe = |name: &String, port: u16, names: &[&String]| json!({"name": name, "port": port, "backends": names.iter().map(|n| json!({"node": n, "port": port})).collect::<Vec<_>>()});
    let records: Vec<Value> = c.records.iter().map(|(n, t, v)| json!({"name": n, "type": t, "value": v})).collect();
    json!({
        "cluster": {"name": "lab", "base_domain": "example.test"},
        "networks": {"machine": ["10.88.0.0/24"], "cluster": {"cidr": "10.128.0.0/14", "host_prefix": 23}, "service": ["172.30.0.0/16"]},
        "hosts": {
            "bastion": {"address": "10.88.0.10", "roles": ["http", "tftp"], "transport": "local", "root": "r/bastion"},
            "ns1": {"address": "10.88.0.2", "roles": ["dns", "dhcp"], "transport": "local", "root": "r/ns1"},
            "lb1": {"address": "10.88.0.3", "roles": ["lb"], "vips": {"internal": "10.88.0.3", "external": "10.88.0.4"}},
        },
        "nodes": nodes,
        "dns": {"records": records},
        "dhcp": {"subnet": "10.88.0.0/24", "routers": ["10.88.0.1"],
                 "pxe": {"tftp_host": "bastion", "script": c.script, "efi_file": c.efi, "bios_file": c.bios}},
        "loadbalancer": {"frontends": [
            fe(&c.frontends[0], 6443, &control), fe(&c.frontends[1], 22623, &control),
            fe(&c.frontends[2], 80, &workers), fe(&c.frontends[3], 443, &workers)]},
        "files": {
            "boot": {"kernel": c.kernel, "initramfs": c.initramfs, "image": c.image,
                     "install_dev": c.install_dev, "extra_args": c.extra_args},
            "serve": [
                {"path": c.script, "template": "builtin:ipxe"},
                {"path": c.kernel, "content": "k"}, {"path": c.initramfs, "content": "i"}, {"path": c.image, "content": "m"},
                {"path": "bootstrap.ign", "content": "{\"ignition\":{\"version\":\"3.1.0\"}}", "kind": "ignition"},
                {"path": "master.ign", "content": "{\"ignition\":{\"version\":\"3.1.0\"}}", "kind": "ignition"},
                {"path": "worker.ign", "content": "{\"ignition\":{\"version\":\"3.1.0\"}}", "kind": "ignition"},
            ],
        },
        "firewall": {"custom_services": {c.service.clone(): {"description": c.description, "ports": ["22623/tcp"]}}},
    })
}

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static TRIED: AtomicUsize = AtomicUsize::new(0);

fn check(c: &Case) -> Result<(), TestCaseError> {
    TRIED.fetch_add(1, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let yaml = groundwork_sdk::yaml::to_string(&environment(c)).unwrap();
    std::fs::write(dir.path().join("environment.yaml"), &yaml).unwrap();
    let loaded = match config::load_valid(dir.path()) {
        Ok(l) => l,
        Err(e) => {
            if std::env::var_os("ROUNDTRIP_DEBUG").is_some() {
                eprintln!("refused: {e}");
            }
            return Ok(());
        }
    };
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    let env = &loaded.env;
    let resources = config::expand::resources(&loaded).map_err(|e| TestCaseError::fail(e.to_string()))?;

    // Zones: every record rendered reads back, nothing more.
    for r in resources.iter().filter(|r| r.address.provider == "bind" && r.address.kind == "zone") {
        let spec: groundwork_bind::ZoneSpec = r.spec().unwrap();
        let back =
            groundwork_bind::zone::parse(&groundwork_bind::zone::render(&spec.zone, 2026120100), &spec.zone.origin)
                .map_err(TestCaseError::fail)?;
        prop_assert!(back.errors.is_empty(), "{:?}\n{yaml}", back.errors);
        let want: BTreeSet<_> = spec.zone.records.iter().cloned().collect();
        prop_assert_eq!(&back.records, &want, "{}", yaml);
    }
    // The declared extra records are in the forward zone exactly as typed.
    let forward: BTreeSet<(String, String)> = resources
        .iter()
        .filter(|r| r.address.kind == "zone")
        .flat_map(|r| r.spec::<groundwork_bind::ZoneSpec>().unwrap().zone.records)
        .map(|r| (r.rtype, r.value))
        .collect();
    for r in &env.dns.records {
        prop_assert!(forward.contains(&(r.rtype().to_string(), r.data.presentation())), "{:?} missing", r);
        if let RecordData::Txt(strings) = &r.data {
            prop_assert!(strings.iter().all(|s| s.len() <= 255));
        }
    }

    // dhcpd.conf and kea-dhcp4.conf: a pin per node in order, the three PXE file names, one domain.
    let pins: Vec<(String, groundwork_dhcpd::Pin)> = env
        .nodes
        .iter()
        .map(|n| (n.name.to_string(), groundwork_dhcpd::Pin { mac: n.mac.to_string(), address: n.ip.to_string() }))
        .collect();
    let pxe = env.dhcp.as_ref().and_then(|d| d.pxe.as_ref()).unwrap();
    let files = vec![format!("http://10.88.0.10/{}", pxe.script), pxe.efi_file.to_string(), pxe.bios_file.to_string()];
    let dhcpd = groundwork_dhcpd::read_conf(&groundwork_dhcpd::render(env).unwrap());
    prop_assert_eq!(&dhcpd.hosts, &pins);
    prop_assert_eq!(&dhcpd.filenames, &files);
    prop_assert_eq!(dhcpd.domain_names, vec!["lab.example.test".to_string()]);
    let kea = groundwork_kea::render(env, &env.dhcp.as_ref().unwrap().kea.interfaces).unwrap();
    prop_assert_eq!(&groundwork_kea::read_reservations(&kea), &pins);
    prop_assert_eq!(&groundwork_kea::read_boot_files(&kea), &files);

    // haproxy.cfg: each frontend binds its port and sends to its own backend, whose servers are exactly
    // the declared nodes.
    let cfg = groundwork_haproxy::read_config(&groundwork_haproxy::render(env));
    let want_fe: Vec<(String, String, String)> =
        env.frontends().iter().map(|f| (f.name.to_string(), f.port.to_string(), f.name.to_string())).collect();
    let fe_names: Vec<(String, String, String)> = cfg.frontends.iter().filter(|f| !f.1.is_empty()).cloned().collect();
    prop_assert_eq!(fe_names, want_fe);
    let want_servers: Vec<(String, String, String)> = env
        .frontends()
        .iter()
        .flat_map(|f| {
            f.backends.iter().map(|b| {
                let ip = env.node(&b.node).unwrap().ip;
                (f.name.to_string(), b.node.to_string(), format!("{ip}:{}", b.port))
            })
        })
        .collect();
    prop_assert_eq!(cfg.servers, want_servers);

    // firewalld service XML: the definition reads back as declared.
    for r in resources.iter().filter(|r| r.address.kind == "service_def") {
        let def: groundwork_firewalld::ServiceDefSpec = r.spec().unwrap();
        let back = groundwork_firewalld::parse_service_xml(&def.name, &groundwork_firewalld::render_service_xml(&def));
        prop_assert_eq!(back, def);
    }

    // Each node's iPXE script: one kernel with exactly the expected arguments, one initrd.
    let boot = env.files.as_ref().unwrap().boot.as_ref().unwrap();
    let base = "http://10.88.0.10";
    let entries = groundwork_sdk::boot::entries(env);
    prop_assert_eq!(entries.len(), env.nodes.len());
    for (n, e) in env.nodes.iter().zip(&entries) {
        let ipxe = groundwork_files::read_ipxe(&groundwork_sdk::boot::render_node_script("lab", e));
        prop_assert_eq!(ipxe.kernels.len(), 1);
        let (_, url, args) = &ipxe.kernels[0];
        prop_assert_eq!(url, &format!("{base}/{}", boot.kernel));
        let mut want = vec![
            "ip=dhcp".to_string(),
            "rd.neednet=1".into(),
            format!("initrd={}", boot.initramfs.rsplit('/').next().unwrap()),
            "console=tty0".into(),
            "console=ttyS0".into(),
            "coreos.inst=yes".into(),
            format!("coreos.inst.install_dev={}", boot.install_dev),
            format!("coreos.inst.image_url={base}/{}", boot.image.as_ref().unwrap()),
            format!("coreos.inst.ignition_url={base}/{}", n.role.ignition()),
        ];
        want.extend(boot.extra_args.iter().flat_map(|a| a.split(' ').filter(|w| !w.is_empty()).map(str::to_string)));
        prop_assert_eq!(args, &want);
        prop_assert_eq!(&ipxe.initrds, &vec![(String::new(), format!("{base}/{}", boot.initramfs))]);
        prop_assert_eq!(&e.script, &format!("ipxe/{}.ipxe", n.mac.replace(':', "-")));
    }
    Ok(())
}

#[test]
fn every_rendered_config_reads_back_as_exactly_the_declared_entries() {
    let config = ProptestConfig { cases: 768, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(c in case())| { check(&c)?; });
    let (accepted, tried) = (ACCEPTED.load(Ordering::Relaxed), TRIED.load(Ordering::Relaxed));
    // Both sides are exercised: hostile values refused, and many accepted ones rendered and read back.
    eprintln!("{accepted} of {tried} generated environments accepted, rendered and read back");
    assert!(accepted >= 20, "only {accepted} of {tried} generated environments were accepted");
    assert!(accepted < tried, "no generated environment was refused: the strategies are too tame");
}
