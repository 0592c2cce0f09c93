//! BIND and dhcpd on the lab, checked with real clients: dig for every A, the wildcard and every PTR,
//! dhclient in a node namespace with a pinned MAC.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 50;

const NODES: &[(&str, u8)] = &[("bs", 11), ("m1", 21), ("m2", 22), ("m3", 23), ("w1", 31), ("w2", 32), ("w3", 33)];

fn apply(lab: &Lab) -> common::Run {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run
}

fn set_w3_ip(lab: &Lab, last: u8) {
    let p = lab.env_dir().join("nodes.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replace(&format!("ip: {} }}", lab.ip(33)), &format!("ip: {} }}", lab.ip(last)));
    std::fs::write(p, text).unwrap();
}

#[test]
fn records_and_pins_answer_and_a_node_move_changes_exactly_its_entries() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    let d = "lab.example.test";
    for (name, last) in NODES {
        assert_eq!(lab.dig(&[&format!("{name}.{d}")]), lab.ip(*last), "A {name}");
        assert_eq!(lab.dig(&["-x", &lab.ip(*last)]), format!("{name}.{d}."), "PTR {name}");
    }
    assert_eq!(lab.dig(&[&format!("api.{d}")]), lab.ip(4));
    assert_eq!(lab.dig(&[&format!("api-int.{d}")]), lab.ip(3));
    assert_eq!(lab.dig(&[&format!("console-openshift-console.apps.{d}")]), lab.ip(4));
    assert_eq!(lab.dig(&[&format!("anything.at.all.apps.{d}")]), lab.ip(4));
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(33).as_str()));
    let again = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);

    // Move w3: exactly its A, its PTR, its pin and its LB servers change; nothing else is planned.
    let fwd_serial = lab.serial(d);
    let rev = format!("{}.88.10.in-addr.arpa", lab.index);
    set_w3_ip(&lab, 35);
    let plan = groundwork(&["plan", lab.env_str(), "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let mut changed: Vec<(String, Vec<String>)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let details = c["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| format!("{} {}", d["op"].as_str().unwrap(), d["text"].as_str().unwrap()));
            (c["address"].as_str().unwrap().to_string(), details.filter(|d| !d.contains("serial")).collect())
        })
        .collect();
    changed.sort();
    let mac = format!("52:54:00:00:{:02x}:33", lab.index);
    assert_eq!(
        changed,
        vec![
            (format!("bind.zone[ns1:{rev}]"), vec![format!("remove PTR 33 → w3.{d}"), format!("add PTR 35 → w3.{d}")]),
            (format!("bind.zone[ns1:{d}]"), vec![format!("modify A w3.{d} {} → {}", lab.ip(33), lab.ip(35))]),
            (
                "dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]".to_string(),
                vec![format!("modify host w3 {mac} → {} (was {mac} → {})", lab.ip(35), lab.ip(33))]
            ),
            // w3 is an ingress backend: its two servers move with it.
            (
                "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]".to_string(),
                vec![
                    format!("remove server w3 in backend ingress-http ({}:80)", lab.ip(33)),
                    format!("remove server w3 in backend ingress-https ({}:443)", lab.ip(33)),
                    format!("add server w3 in backend ingress-http ({}:80)", lab.ip(35)),
                    format!("add server w3 in backend ingress-https ({}:443)", lab.ip(35)),
                ]
            ),
        ]
    );
    apply(&lab);
    assert_eq!(lab.dig(&[&format!("w3.{d}")]), lab.ip(35));
    assert_eq!(lab.dig(&["-x", &lab.ip(35)]), format!("w3.{d}."));
    assert_eq!(lab.dig(&["-x", &lab.ip(33)]), "");
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(35).as_str()));
    assert!(lab.serial(d) > fwd_serial, "the serial moves with the content");
    let settled = lab.serial(d);
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
    assert_eq!(lab.serial(d), settled, "no change, no new serial");
}

#[test]
fn a_rejected_zone_or_dhcpd_conf_never_reaches_the_live_daemons() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    let d = "lab.example.test";
    let zone_before = lab.ssh_ok("ns1", &format!("cat /var/named/{d}.zone"));
    let dhcp_before = lab.ssh_ok("ns1", "cat /etc/dhcp/dhcpd.conf");

    // Values that pass loading but not the daemons' own checkers: a CNAME beside other data at one name
    // (named-checkzone), and an IPv6 name server in a DHCPv4 option (dhcpd -t).
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let broken = text.replace("  routers: [", "  dns_servers: [fd00::53]\n  routers: [")
        + "\ndns:\n  records:\n    - { name: broken, type: CNAME, value: m1.lab.example.test }\n    - { name: broken, type: TXT, value: x }\n";
    std::fs::write(&services, broken).unwrap();
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("named-checkzone") && all.contains("CNAME and other data"), "{all}");
    assert!(all.contains("dhcpd -t"), "{all}");

    // The served data and the files are the old ones; the daemons still answer.
    assert_eq!(lab.ssh_ok("ns1", &format!("cat /var/named/{d}.zone")), zone_before);
    assert_eq!(lab.ssh_ok("ns1", "cat /etc/dhcp/dhcpd.conf"), dhcp_before);
    assert_eq!(lab.dig(&[&format!("m1.{d}")]), lab.ip(21));
    assert_eq!(lab.dig(&[&format!("broken.{d}")]), "");
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(33).as_str()));
    assert_eq!(lab.ssh_ok("ns1", "ls -A /var/named /etc/dhcp | grep -c candidate || true").trim(), "0");

    // Fixed input converges.
    std::fs::write(&services, text).unwrap();
    apply(&lab);
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}

#[test]
fn hand_written_zones_are_adopted_with_a_record_level_plan() {
    let lab = Lab::up(BASE, &NEXT);
    let d = "lab.example.test";
    // What an operator wrote by hand, the seed's way (multi-line SOA, comments, a record we do not derive).
    let hand = format!(
        "$ORIGIN {d}.\n$TTL 3600\n@       IN      SOA     ns1.{d}. root.{d}.(\n        2000091802      ; Serial\n        3600 900 3600000 3600 )\n             IN   NS      ns1.{d}.\nm1.{d}.   IN  A   {}\nold.{d}.  IN  A   {}\n",
        lab.ip(99),
        lab.ip(98)
    );
    lab.ssh_ok("ns1", &format!("mkdir -p /var/named && cat > /var/named/{d}.zone <<'Z'\n{hand}Z"));
    let plan = groundwork(&["plan", lab.env_str()]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let out = plan.stdout;
    assert!(out.contains(&format!("~ bind.zone[ns1:{d}]")), "{out}");
    assert!(out.contains(&format!("~ A m1.{d} {} → {}", lab.ip(99), lab.ip(21))), "{out}");
    assert!(out.contains(&format!("- A old.{d} {}", lab.ip(98))), "{out}");
    assert!(out.contains(&format!("+ A w1.{d} {}", lab.ip(31))), "{out}");
    assert!(out.contains("~ serial 2000091802 → "), "{out}");
    apply(&lab);
    assert_eq!(lab.dig(&[&format!("m1.{d}")]), lab.ip(21));
    assert_eq!(lab.dig(&[&format!("old.{d}")]), "");
}

/// The second DHCP backend: ns1 moved to Kea serves the same pins; a config kea-dhcp4 rejects never
/// goes live.
#[test]
fn kea_serves_the_pins_and_a_rejected_kea_config_never_goes_live() {
    let lab = Lab::up(BASE, &NEXT);
    // ns1 serves with dhcpd first.
    apply(&lab);
    assert_eq!(lab.ssh_ok("ns1", "systemctl is-active dhcpd").trim(), "active");
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(33).as_str()));

    // Moved to Kea: dhcpd is stopped before Kea starts, its config goes, Kea answers.
    let services = lab.env_dir().join("services.yaml");
    let original = std::fs::read_to_string(&services).unwrap();
    let kea = original.replace("  pxe: { tftp_host", "  backends: { ns1: kea }\n  pxe: { tftp_host");
    std::fs::write(&services, &kea).unwrap();
    let first = apply(&lab);
    // The package's example kea-dhcp4.conf is adopted: replaced, with every reservation shown.
    assert!(first.stdout.contains("~ kea.config[ns1:/etc/kea/kea-dhcp4.conf]"), "{}", first.stdout);
    let w3_mac = format!("52:54:00:00:{:02x}:33", lab.index);
    assert!(first.stdout.contains(&format!("+ host w3 {w3_mac} → {}", lab.ip(33))), "{}", first.stdout);
    assert!(first.stdout.contains("- dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]"), "{}", first.stdout);
    assert!(first.stdout.contains("~ dhcpd running → stopped and disabled"), "{}", first.stdout);
    assert_eq!(lab.ssh_ok("ns1", "systemctl is-active kea-dhcp4").trim(), "active");
    assert_eq!(lab.ssh("ns1", "systemctl is-active dhcpd").status.code(), Some(3), "dhcpd stopped");
    assert_eq!(lab.ssh("ns1", "test -e /etc/dhcp/dhcpd.conf").status.code(), Some(1), "its config removed");
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(33).as_str()));
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    // A node moves: exactly its reservation changes, and Kea hands out the new address.
    set_w3_ip(&lab, 35);
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("~ kea.config[ns1:/etc/kea/kea-dhcp4.conf]"), "{}", plan.stdout);
    let moved = format!("~ host w3 {w3_mac} → {} (was {w3_mac} → {})", lab.ip(35), lab.ip(33));
    assert!(plan.stdout.contains(&moved), "{}", plan.stdout);
    apply(&lab);
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(35).as_str()));

    // An interface ns1 does not have: refused by `kea-dhcp4 -t` (it looks at the host's interfaces), the
    // live file and the running server stay as they were.
    let live = lab.ssh_ok("ns1", "cat /etc/kea/kea-dhcp4.conf");
    std::fs::write(&services, format!("{kea}\n").replace("dhcp:\n", "dhcp:\n  kea: { interfaces: [nosuchif0] }\n"))
        .unwrap();
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("kea-dhcp4 -t") && all.contains("nosuchif0"), "{all}");
    assert_eq!(lab.ssh_ok("ns1", "cat /etc/kea/kea-dhcp4.conf"), live);
    assert_eq!(lab.ssh_ok("ns1", "ls -A /etc/kea | grep -c candidate || true").trim(), "0");
    assert_eq!(lab.dhcp_lease("w3").as_deref(), Some(lab.ip(35).as_str()));

    std::fs::write(&services, &kea).unwrap();
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}
