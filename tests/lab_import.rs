//! `groundwork import` on the lab: the reference install's own hand-written configs (zone files,
//! dhcpd.conf, haproxy.cfg from ../shared/seeds/001, addresses rewritten to the lab's) put on the lab
//! hosts, read over SSH into an environment; validate then names the reference's slips. And the round
//! trip: files groundwork wrote, with its ownership record gone (what a hand-made copy looks like), import
//! into an environment whose plan changes none of them.

mod common;

use common::groundwork;
use common::lab::Lab;
use sha2::{Digest, Sha256};
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 248;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference");

/// A fixture with the seed's machine network moved onto the lab's (192.2.0.0/24, the DHCP side the
/// seed elides, stays as it is: it is only ever text in a file here).
fn fixture(lab: &Lab, name: &str) -> String {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    text.replace("172.16.0.", &format!("10.88.{}.", lab.index))
        .replace("0.16.172.in-addr.arpa", &format!("{}.88.10.in-addr.arpa", lab.index))
}

fn put(lab: &Lab, host: &str, path: &str, text: &str) {
    assert!(!text.contains("\nGWEOF\n"));
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    lab.ssh_ok(host, &format!("mkdir -p {dir} && cat > {path} <<'GWEOF'\n{text}\nGWEOF"));
}

fn digests(lab: &Lab, host: &str, paths: &str) -> String {
    lab.ssh_ok(host, &format!("sha256sum {paths}"))
}

#[test]
fn the_reference_configs_import_over_ssh_and_validate_names_their_slips() {
    let lab = Lab::up(BASE, &NEXT);
    let n = lab.index;
    let rev = format!("{n}.88.10.in-addr.arpa");
    put(&lab, "ns1", "/etc/named.conf", &fixture(&lab, "named.conf"));
    put(&lab, "ns1", "/etc/named/named.example.localdomain.zone", &fixture(&lab, "named.example.localdomain.zone"));
    put(&lab, "ns1", &format!("/etc/named/{rev}.zone"), &fixture(&lab, "0.16.172.in-addr.arpa.zone"));
    put(&lab, "ns1", "/etc/dhcp/dhcpd.conf", &fixture(&lab, "dhcpd.conf"));
    put(&lab, "lb1", "/etc/haproxy/haproxy.cfg", &fixture(&lab, "haproxy.cfg"));
    // A served file whose content must not travel: only its digest.
    let sentinel = format!("import-sentinel-{}", std::process::id());
    put(&lab, "bastion", "/usr/share/nginx/html/images/probe.raw", &sentinel);
    let probe_digest = hex::encode(Sha256::digest(format!("{sentinel}\n").as_bytes()));
    let ns1_files = "/etc/named.conf /etc/named/*.zone /etc/dhcp/dhcpd.conf";
    let before = (digests(&lab, "ns1", ns1_files), digests(&lab, "lb1", "/etc/haproxy/haproxy.cfg"));

    // The hosts alone (what an operator starts from), with relative SSH paths: the written environment
    // names them absolutely.
    let out = tempfile::tempdir().unwrap();
    let state = format!("/tmp/groundwork-lab/{n}");
    std::os::unix::fs::symlink(&state, out.path().join("lab-keys")).unwrap();
    let hosts_file = out.path().join("hosts.yaml");
    std::fs::write(
        &hosts_file,
        format!(
            "hosts:\n  bastion: {{ address: {}, roles: [http, tftp] }}\n  ns1: {{ address: {}, roles: [dns, dhcp] }}\n  \
             lb1: {{ address: {}, roles: [lb] }}\nssh: {{ user: root, identity: lab-keys/id_ed25519, known_hosts: lab-keys/known_hosts }}\n",
            lab.ip(10),
            lab.ip(2),
            lab.ip(3)
        ),
    )
    .unwrap();
    let out_dir = out.path().join("imported");
    let run = groundwork(&["import", "--from", hosts_file.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Imported 7 node(s)"), "{}", run.stdout);
    // Nothing on the hosts changed.
    assert_eq!((digests(&lab, "ns1", ns1_files), digests(&lab, "lb1", "/etc/haproxy/haproxy.cfg")), before);

    let env_text = std::fs::read_to_string(out_dir.join("environment.yaml")).unwrap();
    let report = std::fs::read_to_string(out_dir.join("import-report.txt")).unwrap();
    for text in [&env_text, &report, &run.stdout, &run.stderr] {
        assert!(!text.contains(&sentinel), "served content leaked:\n{text}");
    }
    assert!(report.contains(&format!("{probe_digest}  {}  images/probe.raw", sentinel.len() + 1)), "{report}");

    let loaded = groundwork::config::load::load(&out_dir).unwrap();
    let env = &loaded.env;
    let keys = out.path().join("lab-keys/id_ed25519").display().to_string();
    assert_eq!(env.ssh.identity.as_deref(), Some(keys.as_str()));
    assert_eq!((env.cluster.name.as_str(), &*env.cluster.base_domain), ("ocp45", "example.localdomain"));
    assert_eq!(env.dns.zone.as_deref(), Some("example.localdomain"));
    let vips = env.hosts.get("lb1").and_then(|h| h.vips.clone()).unwrap();
    assert_eq!((vips.internal.to_string(), vips.external.to_string()), (lab.ip(110), lab.ip(111)));
    let nodes: Vec<String> =
        env.nodes.iter().map(|x| format!("{} {} {} {}", x.name, x.role.as_str(), x.mac, x.ip)).collect();
    assert_eq!(
        nodes,
        [
            "bs bootstrap 00:50:56:96:11:c2 192.2.0.11",
            "m1 master 00:50:56:96:37:c8 192.2.0.21",
            "m2 master 00:50:56:96:ec:a7 192.2.0.22",
            "m3 master 00:50:56:96:e5:2f 192.2.0.23",
            "w1 worker 00:50:56:96:6b:da 192.2.0.31",
            "w2 worker 00:50:56:96:c1:c5 192.2.0.32",
            &format!("w3 worker 00:50:56:96:e3:f5 {}", lab.ip(33)),
        ]
    );
    // Findings point into the hosts' files.
    for finding in [
        "ns1:/etc/named/named.example.localdomain.zone:9: NS ns1.example.localdomain has no address record".to_string(),
        format!("ns1:/etc/named/{rev}.zone:2: the SOA names ns1.example.local as primary"),
        format!(
            "ns1:/etc/dhcp/dhcpd.conf:45: host bs is pinned to 192.2.0.11, but bs.ocp45.example.localdomain has A {}",
            lab.ip(11)
        ),
        "ns1:/etc/dhcp/dhcpd.conf: filename \"pxelinux.cfg/default\"".to_string(),
    ] {
        assert!(report.contains(&finding), "{finding}:\n{report}");
        assert!(run.stdout.contains(&finding), "{finding}:\n{}", run.stdout);
    }

    // validate names the reference's slips, located in the imported file.
    let v = groundwork(&["validate", out_dir.to_str().unwrap(), "--json"]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let doc: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    let diags = doc["diagnostics"].as_array().unwrap();
    let find = |needle: &str| {
        diags
            .iter()
            .find(|d| d["message"].as_str().unwrap_or_default().contains(needle))
            .unwrap_or_else(|| panic!("{needle}:\n{}", v.stdout))
    };
    let https = find("backend w3 of workerhttps uses port 80 but the frontend listens on 443");
    assert!(https["file"].as_str().unwrap().ends_with("environment.yaml"), "{https}");
    assert!(https["line"].as_u64().unwrap() > 0, "{https}");
    find(&format!("DHCP subnet 192.2.0.0/24 is not inside the machine network(s) 10.88.{n}.0/24"));
    find(&format!("192.2.0.11 (bs) is outside the machine network(s) 10.88.{n}.0/24"));

    // An existing environment is not replaced unless asked.
    let again = groundwork(&["import", "--from", hosts_file.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
}

#[test]
fn files_groundwork_wrote_import_into_an_environment_whose_plan_changes_none_of_them() {
    let lab = Lab::up(BASE, &NEXT);
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // Without the ownership records the files are what a careful hand would have written.
    for host in ["bastion", "ns1", "lb1"] {
        lab.ssh_ok(host, "rm -f /var/lib/groundwork/lab.state.json");
    }
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("imported");
    let dir = out_dir.to_str().unwrap();
    let imported = groundwork(&["import", "--from", lab.env_str(), "--out", dir]);
    assert_eq!(imported.code, 0, "{}{}", imported.stdout, imported.stderr);
    // The firewall is read from lb1's firewalld, not carried over; the OS's own ssh is left to it.
    assert!(!imported.stdout.contains("firewall: carried over"), "{}", imported.stdout);
    assert!(
        imported.stdout.contains("lb1:firewalld zone public: ssh: opened by the OS, left to it"),
        "{}",
        imported.stdout
    );
    let env_text = std::fs::read_to_string(out_dir.join("environment.yaml")).unwrap();
    let v = groundwork(&["validate", dir]);
    assert_eq!(v.code, 0, "{}{}\n{env_text}", v.stdout, v.stderr);

    // Zones, dhcpd.conf, haproxy.cfg, the named.conf include and every served file read back as they
    // are. The one change: the docroot's relabel, which groundwork has no record of having done.
    let plan = groundwork(&["plan", dir, "--json"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let changed: Vec<&str> =
        doc["changes"].as_array().unwrap().iter().map(|c| c["address"].as_str().unwrap()).collect();
    assert_eq!(changed, ["selinux.relabel[bastion:/usr/share/nginx/html]"], "{}\n{env_text}", plan.stdout);
    // Each file is listed as one to take over: as desired, not yet recorded as groundwork's.
    let adopt: Vec<&str> = doc["adopt"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for a in [
        "bind.zone[ns1:lab.example.test]",
        "dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]",
        "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]",
        "files.file[bastion:/usr/share/nginx/html/index.html]",
    ] {
        assert!(adopt.contains(&a), "{a}: {adopt:?}");
    }
    let text = groundwork(&["plan", dir]);
    assert!(text.stdout.contains(&format!("{} to take over.", adopt.len())), "{}", text.stdout);
    assert!(text.stdout.contains("= haproxy.config[lb1:/etc/haproxy/haproxy.cfg]"), "{}", text.stdout);
    let apply = groundwork(&["apply", dir, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains(&format!("Taken over: {} resource(s)", adopt.len())), "{}", apply.stdout);
    let again = groundwork(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    // Taken over means owned: a served file dropped from the environment is now planned away.
    let yaml = out_dir.join("environment.yaml");
    let without: String =
        env_text.lines().filter(|l| !l.contains("path: \"index.html\"")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&yaml, &without).unwrap();
    let dropped = groundwork(&["plan", dir]);
    assert!(dropped.stdout.contains("- files.file[bastion:/usr/share/nginx/html/index.html]"), "{}", dropped.stdout);
    std::fs::write(&yaml, &env_text).unwrap();

    // A served file known by digest only: a change on the host is reported by digest, and apply,
    // having no source, says so and leaves the file alone.
    lab.ssh_ok("bastion", "echo changed by hand > /usr/share/nginx/html/rhcos-kernel");
    let drift = groundwork(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("files.file[bastion:/usr/share/nginx/html/rhcos-kernel]"), "{}", drift.stdout);
    assert!(drift.stdout.contains("→ sha256:"), "{}", drift.stdout);
    let refused = groundwork(&["apply", dir, "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    let both = format!("{}{}", refused.stdout, refused.stderr);
    assert!(both.contains("served by digest only"), "{both}");
    assert_eq!(lab.ssh_ok("bastion", "cat /usr/share/nginx/html/rhcos-kernel").trim(), "changed by hand");
}
