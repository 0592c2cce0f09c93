//! Served files on the lab: apply over SSH, then every file fetched by curl over the bridge answers
//! 200 with the expected sha256; a second plan is empty.

mod common;

use common::groundwork;
use common::lab::Lab;
use sha2::{Digest, Sha256};
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 30;

fn curl(url: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", body.to_str().unwrap(), "-w", "%{http_code}", url])
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), std::fs::read(&body).unwrap_or_default())
}

#[test]
fn served_files_answer_200_with_their_digest_and_replan_is_empty() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let plan = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);

    let services: serde_json::Value =
        groundwork_sdk::yaml::from_str(&std::fs::read_to_string(lab.env_dir().join("services.yaml")).unwrap()).unwrap();
    let bastion = lab.host_ip("bastion");
    let mut checked = 0;
    for f in services["files"]["serve"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let (code, body) = curl(&format!("http://{bastion}/{path}"));
        assert_eq!(code, "200", "{path}");
        if let Some(literal) = f["content"].as_str() {
            assert_eq!(hex::encode(Sha256::digest(&body)), hex::encode(Sha256::digest(literal.as_bytes())), "{path}");
        }
        checked += 1;
    }
    assert_eq!(checked, 7);
    let (_, script) = curl(&format!("http://{bastion}/pxeboot.ipxe"));
    let script = String::from_utf8(script).unwrap();
    assert!(script.contains(&format!("chain http://{bastion}/ipxe/${{mac:hexhyp}}.ipxe")), "{script}");
    let m1 = format!("52-54-00-00-{:02x}-21", lab.index);
    let (code, script) = curl(&format!("http://{bastion}/ipxe/{m1}.ipxe"));
    let script = String::from_utf8(script).unwrap();
    assert_eq!(code, "200");
    assert!(script.contains(&format!("coreos.inst.ignition_url=http://{bastion}/master.ign")), "{script}");

    let again = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    // Reads are batched: one exec session per host for a whole plan (-v reports them).
    let verbose = std::process::Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["-v", "plan", e])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&verbose.stderr);
    let trips = log.split("round_trips=").nth(1).unwrap_or_else(|| panic!("{log}")).lines().next().unwrap().to_string();
    let per_host: Vec<(String, usize)> = trips
        .split_whitespace()
        .map(|kv| {
            let (h, n) = kv.split_once('=').unwrap();
            (h.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(per_host.len(), 3, "{trips}");
    assert!(per_host.iter().all(|(_, n)| *n == 1), "{trips}");
    // The ownership record lives on the host it describes.
    let record = lab.ssh_ok("bastion", "cat /var/lib/groundwork/lab.state.json");
    assert!(record.contains("files.file[bastion:/usr/share/nginx/html/pxeboot.ipxe]"), "{record}");
    // Ignition content never appears in output.
    assert!(!apply.stdout.contains("3.1.0") && !plan.stdout.contains("3.1.0"));
}

/// An ignition file holds the cluster's keys: served 0640 to the web server's group only. A hand
/// chmod/chgrp shows as metadata drift and is put back in place (same inode: not sent again).
#[test]
fn mode_and_group_are_kept_and_repaired_in_place() {
    let lab = Lab::up(BASE, &NEXT);
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let line = "    - { path: bootstrap.ign, content: \"{\\\"ignition\\\":{\\\"version\\\":\\\"3.1.0\\\"}}\\n\", kind: ignition";
    assert!(text.contains(line), "{text}");
    std::fs::write(&services, text.replace(line, &format!("{line}, mode: \"0640\", group: www-data"))).unwrap();
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let path = "/usr/share/nginx/html/bootstrap.ign";
    let stat = |f: &str| lab.ssh_ok("bastion", &format!("stat -c '{f}' {path}")).trim().to_string();
    assert_eq!(stat("%a %U %G"), "640 root www-data");
    // nginx's workers (www-data) read it through the group; nobody else can.
    let (code, _) = curl(&format!("http://{}/bootstrap.ign", lab.host_ip("bastion")));
    assert_eq!(code, "200");
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    let inode = stat("%i");
    lab.ssh_ok("bastion", &format!("chmod 0644 {path} && chgrp root {path}"));
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(
        plan.stdout.contains("~ mode 0644 → 0640") && plan.stdout.contains("~ group root → www-data"),
        "{}",
        plan.stdout
    );
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(stat("%a %U %G"), "640 root www-data");
    assert_eq!(stat("%i"), inode, "set in place, not written again");
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}
