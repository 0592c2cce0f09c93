//! Highly available infra on the lab (GW_LAB_HA=1: lb2 and ns2 beside lb1 and ns1), environments/lab-ha:
//! two load balancers share the VIPs through keepalived (real VRRP between their namespaces, through
//! their real firewalld), every DHCP pin is served by both DHCP servers, and ns2 is a secondary of ns1
//! fed by NOTIFY and TSIG-signed transfers. Hosts are
//! failed for real — haproxy stopped, keepalived stopped, dhcpd stopped, named stopped — and real
//! clients (curl through the VIP, dhclient with a pinned MAC, dig) must still be answered.

mod common;

use common::lab::Lab;
use common::Run;
use std::process::Command;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 200;

fn gw(args: &[&str]) -> Run {
    common::groundwork(args)
}

/// Whether a lab host holds an address now (`ip -n` into its network namespace).
fn holds(lab: &Lab, host: &str, ip: &str) -> bool {
    let out =
        Command::new("ip").args(["-n", &format!("gw{}-{host}", lab.index), "-o", "addr", "show"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == format!("{ip}/24"))
}

/// Which API listener answers through the external VIP (the simulator's /sim/whoami), if any.
fn api_backend(lab: &Lab) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "2", &format!("https://{}:6443/sim/whoami", lab.ip(4))])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Poll until `cond` holds (the condition itself, not a sleep); the time it took.
fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn in_host_ok(lab: &Lab, host: &str, command: &str) {
    let out = lab.in_host(host, command);
    assert!(out.status.success(), "{host}: {command}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_infra_role_survives_losing_a_host() {
    let lab = Lab::up_ha_with_cluster(BASE, &NEXT);
    let env = lab.env_str();
    let run = gw(&["apply", env, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("✓ install-complete"), "{}", run.stdout);
    let plan = gw(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let (vip_ext, vip_int) = (lab.ip(4), lab.ip(6));
    // Zone transfers are asynchronous: wait for ns2 to serve the primary's serial before verify looks.
    let soa = |server: &str| {
        let out = Command::new("dig")
            .args([&format!("@{server}"), "+short", "+time=1", "+tries=1", "lab.example.test", "SOA"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).map(str::to_string)
    };
    let transferred = until("ns2 to serve the zone", Duration::from_secs(30), || {
        soa(&lab.ip(7)).is_some() && soa(&lab.ip(7)) == soa(&lab.ip(2))
    });
    eprintln!("ns2 served the primary's serial {transferred:?} after the apply");

    // One holder for both VIPs, and verify says which. The two VRRP instances elect on their own
    // clocks, so wait for the settled state itself: one load balancer holds both, the other neither.
    let settled_on = |who: &str, other: &str| {
        holds(&lab, who, &vip_ext)
            && holds(&lab, who, &vip_int)
            && !holds(&lab, other, &vip_ext)
            && !holds(&lab, other, &vip_int)
    };
    until("one load balancer to hold both VIPs", Duration::from_secs(30), || {
        settled_on("lb1", "lb2") || settled_on("lb2", "lb1")
    });
    let first = if holds(&lab, "lb1", &vip_ext) { "lb1" } else { "lb2" };
    let other = if first == "lb1" { "lb2" } else { "lb1" };
    let verify = gw(&["verify", env]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains(&format!("{vip_ext} (lab_external): held by {first}")), "{}", verify.stdout);
    // drift says who holds each VIP, and a VIP on both load balancers (split brain) is drift.
    let drift = gw(&["drift", env, "--json"]);
    assert_eq!(drift.code, 0, "{}{}", drift.stdout, drift.stderr);
    let doc: serde_json::Value = serde_json::from_str(&drift.stdout).unwrap();
    let holders: Vec<&str> =
        doc["vips"].as_array().unwrap().iter().map(|v| v["holders"][0].as_str().unwrap()).collect();
    assert_eq!(holders, [first, first], "{}", drift.stdout);
    in_host_ok(&lab, other, &format!("ip addr add {vip_ext}/24 dev eth0"));
    let drift = gw(&["drift", env]);
    in_host_ok(&lab, other, &format!("ip addr del {vip_ext}/24 dev eth0"));
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    let (a, b) = if first < other { (first, other) } else { (other, first) };
    assert!(
        drift.stdout.contains(&format!("FAIL {vip_ext} (lab_external): split brain: held by {a} and {b} at once")),
        "{}",
        drift.stdout
    );
    let master = |who: &str| ["m1", "m2", "m3"].iter().any(|m| who == format!("gw{}-{m}", lab.index));
    let before = api_backend(&lab).expect("the API answers through the VIP");
    assert!(master(&before), "the API answered from {before:?}, not a master (never the bootstrap)");

    // DNS: ns2 is a secondary. A record added to the inventory reaches it by NOTIFY and a signed
    // transfer: the apply writes on ns1 only, and ns2 answers within seconds.
    let dig_at = |server: &str, args: &[&str]| {
        let out =
            Command::new("dig").arg(format!("@{server}")).args(["+time=2", "+tries=2"]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(dig_at(&lab.ip(2), &["lab.example.test", "AXFR"]).contains("Transfer failed"), "an unsigned transfer");
    let env_yaml = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&env_yaml).unwrap();
    std::fs::write(
        &env_yaml,
        format!("{text}dns:\n  records:\n    - {{ name: registry, type: A, value: {} }}\n", lab.ip(99)),
    )
    .unwrap();
    let run = gw(&["apply", env, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("~ bind.zone[ns1:lab.example.test]: done"), "{}", run.stdout);
    assert!(!run.stdout.contains("[ns2:"), "groundwork wrote on the secondary:\n{}", run.stdout);
    let notified = until("ns2 to answer the new record", Duration::from_secs(30), || {
        dig_at(&lab.ip(7), &["+short", "registry.lab.example.test"]) == lab.ip(99)
    });
    eprintln!("a new record answered by the secondary {notified:?} after the apply");
    let verify = gw(&["verify", env]);
    assert!(verify.stdout.contains("ok   dns-serial lab.example.test @ns2: serial"), "{}", verify.stdout);

    // haproxy dies on the holder: the VIPs move, and the API answers through them again.
    in_host_ok(&lab, first, "systemctl stop haproxy");
    let moved = until("the VIPs to move", Duration::from_secs(20), || settled_on(other, first));
    let answered = until("the API through the VIP", Duration::from_secs(20), || api_backend(&lab).is_some());
    eprintln!("haproxy stopped on {first}: VIP on {other} after {moved:?}, API answering after {answered:?} more");
    for _ in 0..5 {
        let who = api_backend(&lab).expect("answers");
        assert!(master(&who), "the API answered from {who:?}, not a master (never the bootstrap)");
    }
    let verify = gw(&["verify", env]);
    assert!(verify.stdout.contains(&format!("{vip_ext} (lab_external): held by {other}")), "{}", verify.stdout);

    // Back on its feet, the first does not take the VIPs back (nopreempt: one move, not two)...
    in_host_ok(&lab, first, "systemctl start haproxy");
    // ...until keepalived dies on the new holder.
    in_host_ok(&lab, other, "systemctl stop keepalived");
    // keepalived takes its VIPs down with it: the first holds both again, the stopped one neither.
    let back = until("the VIPs to move back", Duration::from_secs(20), || settled_on(first, other));
    until("the API through the VIP", Duration::from_secs(20), || api_backend(&lab).is_some());
    eprintln!("keepalived stopped on {other}: VIP on {first} after {back:?}");

    // DHCP: the first server stops; the pin is still leased, by the second.
    in_host_ok(&lab, "ns1", "systemctl stop isc-dhcp-server");
    let (addr, server, dns) = lab.dhcp_lease_and_server("w3").expect("a lease from ns2");
    assert_eq!((addr.as_str(), server.as_str()), (lab.ip(33).as_str(), lab.ip(7).as_str()));
    assert_eq!(dns, format!("{},{}", lab.ip(2), lab.ip(7)), "both name servers handed out");

    // DNS: the first server stops; the second answers every name, reverse and wildcard.
    in_host_ok(&lab, "ns1", "systemctl stop named");
    let dig_ns2 = |args: &[&str]| {
        let out = Command::new("dig")
            .arg(format!("@{}", lab.ip(7)))
            .args(["+short", "+time=2", "+tries=2"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(dig_ns2(&["api.lab.example.test"]), vip_ext);
    assert_eq!(dig_ns2(&["api-int.lab.example.test"]), vip_int);
    assert_eq!(dig_ns2(&["anything.apps.lab.example.test"]), vip_ext);
    assert_eq!(dig_ns2(&["-x", &lab.ip(21)]), "m1.lab.example.test.");

    // groundwork puts back what was stopped by hand, and the plan is empty again.
    let heal = gw(&["apply", env, "--auto-approve"]);
    assert_eq!(heal.code, 0, "{}{}", heal.stdout, heal.stderr);
    for unit in ["ns1:named", "ns1:isc-dhcp-server", &format!("{other}:keepalived")] {
        assert!(heal.stdout.contains(&format!("~ services.unit[{unit}]: done")), "{unit}:\n{}", heal.stdout);
    }
    let plan = gw(&["plan", env, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
}
