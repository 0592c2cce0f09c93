//! firewalld on the lab's lb1: filtering is real inside its namespace. A port is blocked before apply,
//! reachable from another lab host after, and closed again when the environment drops it.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 70;

fn apply(lab: &Lab) {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// Does a TLS request from node w1's namespace to lb1:port get an answer?
fn reachable(lab: &Lab, port: u16) -> bool {
    let out = lab.in_node("w1", &["curl", "-sk", "--max-time", "3", &format!("https://{}:{port}/readyz", lab.ip(3))]);
    out.status.success() && !out.stdout.is_empty()
}

#[test]
fn ports_open_with_the_environment_and_close_without_it() {
    let lab = Lab::up(BASE, &NEXT);
    let services = lab.env_dir().join("services.yaml");
    let full = std::fs::read_to_string(&services).unwrap();
    let without_firewall = full.split("\n# lb1 runs firewalld").next().unwrap().to_string();
    std::fs::write(&services, &without_firewall).unwrap();
    apply(&lab);
    // haproxy listens, but lb1's firewalld (public zone: ssh only) rejects the API port.
    assert_eq!(lab.ssh_ok("lb1", "systemctl is-active haproxy").trim(), "active");
    assert!(!reachable(&lab, 6443));
    assert!(!reachable(&lab, 22623));

    std::fs::write(&services, &full).unwrap();
    apply(&lab);
    assert!(reachable(&lab, 6443));
    assert!(reachable(&lab, 22623));
    let permanent = lab.ssh_ok("lb1", "firewall-cmd --permanent --zone=public --list-services");
    let runtime = lab.ssh_ok("lb1", "firewall-cmd --zone=public --list-services");
    for s in ["http", "https", "kube-apiserver", "machine-config"] {
        assert!(permanent.split_whitespace().any(|x| x == s), "{s} permanent: {permanent}");
        assert!(runtime.split_whitespace().any(|x| x == s), "{s} runtime: {runtime}");
    }
    let def = lab.ssh_ok("lb1", "firewall-cmd -v --permanent --info-service=machine-config");
    assert!(def.contains("22623/tcp") && def.contains("OpenShift machine config access"), "{def}");
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    // Drift: someone removes a service at runtime only; the plan says so and apply restores it.
    lab.ssh_ok("lb1", "firewall-cmd -q --zone=public --remove-service=kube-apiserver");
    assert!(!reachable(&lab, 6443));
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("add to the runtime configuration"), "{}", plan.stdout);
    apply(&lab);
    assert!(reachable(&lab, 6443));

    // Drift in the permanent configuration only (it would be lost at the next reload or boot). The
    // plan reads it from the zone's file; without a file to read, over D-Bus: the same plan.
    lab.ssh_ok("lb1", "firewall-cmd -q --permanent --zone=public --remove-service=machine-config");
    let from_file = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(from_file.code, 2, "{}{}", from_file.stdout, from_file.stderr);
    assert!(from_file.stdout.contains("~ firewalld.service[lb1:public/machine-config]"), "{}", from_file.stdout);
    assert!(from_file.stdout.contains("add to the permanent configuration"), "{}", from_file.stdout);
    // Only in lb1's own mount namespace (private propagation): no zone file is a regular file there.
    let hide = "mount --bind /dev/null /etc/firewalld/zones/public.xml && mount --bind /dev/null /usr/lib/firewalld/zones/public.xml";
    lab.ssh_ok("lb1", hide);
    let over_dbus = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    lab.ssh_ok("lb1", "umount /etc/firewalld/zones/public.xml /usr/lib/firewalld/zones/public.xml");
    assert_eq!(over_dbus.code, 2, "{}{}", over_dbus.stdout, over_dbus.stderr);
    assert_eq!(over_dbus.stdout, from_file.stdout);
    apply(&lab);
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    // The environment drops kube-apiserver: exactly it closes; machine-config stays open.
    std::fs::write(
        &services,
        full.replace(
            "services: [http, https, kube-apiserver, machine-config]",
            "services: [http, https, machine-config]",
        ),
    )
    .unwrap();
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("- firewalld.service[lb1:public/kube-apiserver]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add, 0 to change, 1 to destroy."), "{}", plan.stdout);
    apply(&lab);
    assert!(!reachable(&lab, 6443));
    assert!(reachable(&lab, 22623));
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}

/// Hosts without busctl (or whose D-Bus call fails) are read with `firewall-cmd --list-all`: the same
/// state, the same plans.
#[test]
fn without_busctl_the_firewall_cmd_read_sees_the_same_state() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    // Only in lb1's own mount namespace (private propagation): busctl now fails there.
    lab.ssh_ok("lb1", "mount --bind /bin/false /usr/bin/busctl");
    assert_eq!(lab.ssh("lb1", "busctl --version").status.code(), Some(1));
    assert!(std::process::Command::new("busctl").arg("--version").output().unwrap().status.success());
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    lab.ssh_ok("lb1", "firewall-cmd -q --zone=public --remove-service=kube-apiserver");
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("~ firewalld.service[lb1:public/kube-apiserver]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("add to the runtime configuration"), "{}", plan.stdout);
    apply(&lab);
    assert!(reachable(&lab, 6443));
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}
