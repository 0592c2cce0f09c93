//! Two clusters on one set of infra hosts (docs/multi-cluster.md): the lab's own cluster and cluster b
//! (tests/data/two-clusters) share ns1, lb1 and bastion. Both are applied at once; real clients (dig,
//! dhclient with each cluster's pinned MAC, curl through haproxy to each cluster's VIP, curl of the
//! served files) see both; a pin another cluster holds is refused naming both; destroying the lab's
//! cluster leaves b serving and nothing of the lab's behind.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 243;

/// Cluster b's environment, rewritten for this lab; `edit` changes its text.
fn env_b(lab: &Lab, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/two-clusters/b/environment.yaml");
    let text = lab.rewrite(&std::fs::read_to_string(src).expect("read b"));
    std::fs::write(dir.path().join("environment.yaml"), edit(text)).expect("write b");
    dir
}

fn plan_is_clean(env: &str) {
    let run = groundwork(&["plan", env]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
}

/// Which stand-in answers through haproxy at VIP:6443 (TLS), asked from a node of the lab.
fn api_answer(lab: &Lab, vip: &str) -> String {
    let once = || {
        let out = lab.in_node("w1", &["curl", "-sk", "--max-time", "10", &format!("https://{vip}:6443/readyz")]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    (0..3).map(|_| once()).find(|a| !a.is_empty()).unwrap_or_default()
}

fn http(lab: &Lab, path: &str) -> String {
    let url = format!("http://{}/{path}", lab.host_ip("bastion"));
    let out = lab.in_node("w1", &["curl", "-s", "--max-time", "10", "-o", "-", "-w", " %{http_code}", &url]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn two_clusters_share_the_infra_hosts_and_one_leaves_nothing_behind() {
    let lab = Lab::up_two_clusters(BASE, &NEXT);
    let a = lab.env_str().to_string();
    let b_dir = env_b(&lab, |t| t);
    let b = b_dir.path().to_str().expect("path").to_string();

    // The lab's cluster was there first, owning its files whole (the usual start: a second cluster
    // is planned on a bastion that serves one already).
    let alone = tempfile::tempdir().expect("tempdir");
    for f in ["environment.yaml", "nodes.yaml", "services.yaml"] {
        let text = std::fs::read_to_string(lab.env_dir().join(f)).expect("read env");
        std::fs::write(alone.path().join(f), text.replace(", shared_infra: true", "")).expect("write env");
    }
    let first = groundwork(&["apply", alone.path().to_str().expect("path"), "--auto-approve"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    // b cannot share what the lab's cluster owns whole: it is told what to do, and nothing is written.
    let early = groundwork(&["plan", &b]);
    assert_eq!(early.code, 1, "{}{}", early.stdout, early.stderr);
    assert!(early.stderr.contains("apply lab with shared_infra: true first"), "{}", early.stderr);

    // Then it says its hosts are shared: its files are rewritten in parts, its served files move.
    let moved = groundwork(&["apply", &a, "--auto-approve"]);
    assert_eq!(moved.code, 0, "{}{}", moved.stdout, moved.stderr);
    plan_is_clean(&a);

    // b arrives while the lab's cluster changes too: both applied at the same moment. One waits for the
    // other's lock, and neither loses the other's part of the files they share.
    let yaml = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).expect("environment.yaml");
    std::fs::write(&yaml, format!("{text}dns:\n  records:\n    - {{ name: note, type: TXT, value: shared }}\n"))
        .expect("write environment.yaml");
    let spawn = |env: &str| {
        Command::new(env!("CARGO_BIN_EXE_groundwork"))
            .args(["apply", env, "--auto-approve", "--lock-timeout", "10m"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn apply")
    };
    let (run_a, run_b) = (spawn(&a), spawn(&b));
    for (name, run) in [("lab", run_a), ("b", run_b)] {
        let out = run.wait_with_output().expect("wait apply");
        assert!(
            out.status.success(),
            "apply of {name}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    plan_is_clean(&a);
    plan_is_clean(&b);
    let dhcpd = lab.ssh_ok("ns1", "cat /etc/dhcp/dhcpd.conf");
    assert!(dhcpd.contains("include \"/etc/dhcp/groundwork.d/lab.conf\";"), "{dhcpd}");
    assert!(dhcpd.contains("include \"/etc/dhcp/groundwork.d/b.conf\";"), "{dhcpd}");
    assert_eq!(dhcpd.matches("subnet ").count(), 1, "one subnet declaration for both: {dhcpd}");
    let pins = lab.ssh_ok("ns1", "cat /etc/dhcp/groundwork.d/lab.conf /etc/dhcp/groundwork.d/b.conf");
    assert!(pins.contains("host lab-m1 {") && pins.contains("host b-m1 {"), "{pins}");
    let haproxy = lab.ssh_ok("lb1", "cat /etc/haproxy/haproxy.cfg");
    assert!(!haproxy.contains("bind *:"), "each cluster binds its own VIPs: {haproxy}");
    assert!(haproxy.contains(&format!("bind {}:6443", lab.ip(8))), "{haproxy}");
    assert!(haproxy.contains(&format!("bind {}:6443", lab.ip(4))), "{haproxy}");

    // Real clients see both clusters.
    assert_eq!(lab.dig(&["api.lab.example.test"]), lab.ip(4));
    assert_eq!(lab.dig(&["api.b.example.test"]), lab.ip(8));
    assert_eq!(lab.dig(&["m1.b.example.test"]), lab.ip(61));
    assert_eq!(lab.dig(&["-x", &lab.ip(61)]), "m1.b.example.test.");
    assert_eq!(lab.dig(&["-x", &lab.ip(21)]), "m1.lab.example.test.");
    assert_eq!(lab.dhcp_lease("m1").as_deref(), Some(lab.ip(21).as_str()), "the lab's pin");
    assert_eq!(lab.dhcp_lease("b1").as_deref(), Some(lab.ip(61).as_str()), "b's pin");
    let lab_api = api_answer(&lab, &lab.ip(4));
    assert!(["bs", "m1", "m2", "m3"].iter().any(|n| lab_api == format!("{n}/6443")), "{lab_api:?}");
    let b_api = api_answer(&lab, &lab.ip(8));
    assert!(["b0", "b1", "b2", "b3"].iter().any(|n| b_api == format!("{n}/6443")), "{b_api:?}");
    assert_eq!(http(&lab, "b/pxeboot.ipxe"), "#!ipxe\necho cluster b\n 200");
    assert!(http(&lab, "lab/pxeboot.ipxe").ends_with(" 200"), "the lab's own directory");

    // A pin another cluster holds is refused, naming both environments; nothing is written.
    let c_dir = env_b(&lab, |t| {
        t.replace("name: b,", "name: c,")
            .replace(&lab.ip(8), &lab.ip(9))
            .replace(&format!("52:54:00:01:{:02x}:61", lab.index), &format!("52:54:00:00:{:02x}:21", lab.index))
            .replace("52:54:00:01:", "52:54:00:02:")
            .replace(&lab.ip(61), &lab.ip(91))
            .replace(&lab.ip(62), &lab.ip(92))
            .replace(&lab.ip(63), &lab.ip(93))
            .replace(&lab.ip(60), &lab.ip(90))
    });
    let c = groundwork(&["plan", c_dir.path().to_str().expect("path")]);
    assert_eq!(c.code, 1, "{}{}", c.stdout, c.stderr);
    assert!(c.stderr.contains("shared by environments c and lab"), "{}", c.stderr);
    assert!(c.stderr.contains(&format!("MAC 52:54:00:00:{:02x}:21", lab.index)), "{}", c.stderr);

    // Destroy asks like apply: without a terminal and without --auto-approve nothing happens.
    let refused = groundwork(&["destroy", &a]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("refusing"), "{}", refused.stderr);
    assert_eq!(lab.dig(&["api.lab.example.test"]), lab.ip(4));

    let gone = groundwork(&["destroy", &a, "--auto-approve"]);
    assert_eq!(gone.code, 0, "{}{}", gone.stdout, gone.stderr);
    assert!(gone.stdout.contains("to leave to others"), "{}", gone.stdout);
    // b keeps serving, as real clients see it, and its plan is still clean.
    plan_is_clean(&b);
    assert_eq!(lab.dig(&["api.b.example.test"]), lab.ip(8));
    assert_eq!(lab.dig(&["-x", &lab.ip(61)]), "m1.b.example.test.");
    assert_eq!(lab.dhcp_lease("b1").as_deref(), Some(lab.ip(61).as_str()));
    let b_api = api_answer(&lab, &lab.ip(8));
    assert!(["b0", "b1", "b2", "b3"].iter().any(|n| b_api == format!("{n}/6443")), "{b_api:?}");
    assert_eq!(http(&lab, "b/pxeboot.ipxe"), "#!ipxe\necho cluster b\n 200");
    let services = lab.ssh_ok("lb1", "firewall-cmd --zone=public --list-services");
    assert!(services.contains("https") && services.contains("machine-config"), "b still needs them: {services}");
    // The lab's cluster left nothing behind.
    assert_eq!(lab.dig(&["api.lab.example.test"]), "");
    assert_eq!(lab.dig(&["-x", &lab.ip(21)]), "");
    assert_eq!(lab.dhcp_lease("m1"), None, "the lab's pin is gone");
    assert_eq!(api_answer(&lab, &lab.ip(4)), "", "nothing listens on the lab's VIP");
    for host in ["ns1", "lb1", "bastion"] {
        let records = lab.ssh_ok(host, "ls /var/lib/groundwork/");
        assert!(!records.contains("lab.state.json"), "{host}: {records}");
        assert!(records.contains("b.state.json"), "{host}: {records}");
    }
    let fragments = lab.ssh_ok("ns1", "ls /etc/dhcp/groundwork.d");
    assert_eq!(fragments.trim(), "b.conf", "the lab's fragment is gone");
    for (host, file) in [
        ("ns1", "/etc/dhcp/dhcpd.conf"),
        ("ns1", "/etc/named/groundwork.zones.conf"),
        ("lb1", "/etc/haproxy/haproxy.cfg"),
    ] {
        let text = lab.ssh_ok(host, &format!("cat {file}"));
        assert!(!text.contains("lab-") && !text.contains("lab.example.test"), "{host}:{file}:\n{text}");
    }
    let zones = lab.ssh_ok("ns1", "ls /var/named");
    assert!(!zones.contains("lab.example.test") && zones.contains("b.example.test"), "{zones}");
    let left = lab.ssh_ok("bastion", "find /usr/share/nginx/html");
    assert!(!left.contains("/usr/share/nginx/html/lab"), "no file or directory of the lab's is left: {left}");
    assert!(left.contains("/usr/share/nginx/html/b/pxeboot.ipxe"), "{left}");
}

/// An install on shared hosts does not hold the shared lock while it waits for its cluster: the other
/// cluster applies meanwhile, and the install takes the lock back before it plans again.
#[test]
fn an_install_waiting_for_its_cluster_lets_the_other_cluster_apply() {
    // The masters never get Ready (one registers as localhost): the install waits at masters-ready.
    let lab = Lab::up_two_clusters_with_cluster(
        BASE,
        &NEXT,
        &[("GW_SIM_HOSTILE", "master-named-localhost"), ("GW_SIM_BOOTSTRAP_MS", "500")],
    );
    let b_dir = env_b(&lab, |t| t);
    let b = b_dir.path().to_str().expect("path").to_string();
    let mut install = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["apply", lab.env_str(), "--auto-approve", "--gate-timeout", "45s"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the install");
    // The install takes the shared lock first (it names the cluster whose run holds it).
    let mut held = false;
    for _ in 0..200 {
        let lock = lab.ssh("ns1", "cat /var/lib/groundwork/_shared-infra.lock 2>/dev/null");
        if String::from_utf8_lossy(&lock.stdout).contains("apply of lab") {
            held = true;
            break;
        }
        if install.try_wait().expect("install").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(held, "the install never held the shared lock");
    // b without --lock-timeout: refused while the install applies, applied once it waits.
    let mut applied = None;
    for _ in 0..120 {
        let run = groundwork(&["apply", &b, "--auto-approve"]);
        if run.code == 0 {
            applied = Some(run);
            break;
        }
        assert!(run.stderr.contains("another apply is running"), "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("apply of lab"), "the install holds it: {}", run.stderr);
        if install.try_wait().expect("install").is_some() {
            let out = install.wait_with_output().expect("wait install");
            panic!(
                "the install ended before b could apply:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let applied = applied.expect("b never applied while the install waited");
    assert!(applied.stderr.is_empty() || !applied.stderr.contains("error"), "{}", applied.stderr);
    let still_waiting = install.try_wait().expect("install").is_none();
    let out = install.wait_with_output().expect("wait install");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(still_waiting, "b applied while the install was still waiting:\n{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("the shared lock is released while masters-ready is waited for"), "{stdout}");
    assert!(stderr.contains("gate masters-ready has not passed after 45s"), "{stderr}");
    // Neither lost the other's part.
    plan_is_clean(&b);
    let dhcpd = lab.ssh_ok("ns1", "cat /etc/dhcp/dhcpd.conf");
    assert!(dhcpd.contains("groundwork.d/lab.conf") && dhcpd.contains("groundwork.d/b.conf"), "{dhcpd}");
    assert_eq!(lab.dig(&["api.b.example.test"]), lab.ip(8));
    assert_eq!(lab.dig(&["api.lab.example.test"]), lab.ip(4));
}
