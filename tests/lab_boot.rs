//! The boot chain proven by machines that really boot: QEMU virtual machines on the lab's bridge with a
//! declared node's MAC, under SeaBIOS with the NIC's iPXE ROM, under OVMF with it, and under OVMF's own
//! PXE client (no NIC ROM: the UEFI loader must come over TFTP). They lease their pin from the lab's
//! real dhcpd, fetch the chain script, their own script, a real Linux kernel and initramfs over HTTP
//! from the lab's nginx, and boot. The OS is a stand-in for RHCOS (lab/standin-os.sh): it fetches its
//! ignition and prints the digest on the serial console. Firmware, DHCP, TFTP, HTTP and kernel are real.

mod common;

use common::groundwork;
use common::lab::Lab;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 150;
/// Where scripts/test.sh builds the stand-in OS (lab/standin-os.sh).
const STANDIN: &str = "/var/cache/groundwork-lab/standin";

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The lab's environment with the stand-in OS served as the RHCOS kernel and initramfs.
fn boot_env(lab: &Lab) {
    let dir = lab.env_dir().join("standin");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["kernel", "initramfs.img"] {
        let from = Path::new(STANDIN).join(f);
        assert!(
            from.exists(),
            "{} is missing: build it with `bash lab/standin-os.sh` (scripts/test.sh does)",
            from.display()
        );
        std::fs::copy(&from, dir.join(f)).unwrap();
    }
    let services = lab.env_dir().join("services.yaml");
    replace_in(
        &services,
        r#"{ path: rhcos-kernel, content: "lab stand-in for the RHCOS kernel\n" }"#,
        "{ path: rhcos-kernel, source: standin/kernel }",
    );
    // Masters and workers get different ignition, so a digest on the console says which one was fetched.
    replace_in(
        &services,
        r#"{ path: worker.ign, content: "{\"ignition\":{\"version\":\"3.1.0\"}}\n", kind: ignition }"#,
        r#"{ path: worker.ign, content: "{\"ignition\":{\"version\":\"3.1.0\"},\"storage\":{}}\n", kind: ignition }"#,
    );
    replace_in(
        &services,
        r#"{ path: rhcos-initramfs.img, content: "lab stand-in for the RHCOS initramfs\n" }"#,
        "{ path: rhcos-initramfs.img, source: standin/initramfs.img }",
    );
}

fn apply(lab: &Lab) -> String {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.stdout
}

fn lab_sh(lab: &Lab, args: &[&str]) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args(args)
        .env("GW_LAB_INDEX", lab.index.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "lab.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn serial(lab: &Lab, vm: &str) -> PathBuf {
    lab.state().join("vm").join(format!("{vm}.serial"))
}

/// Wait until the VM's serial console shows `marker` (the machine's own progress, not a clock). A VM
/// that never gets there fails the test after a generous bound, with what it printed.
fn wait_for(lab: &Lab, vm: &str, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(serial(lab, vm)).unwrap_or_default()).into_owned();
        if text.contains(marker) {
            return text;
        }
        assert!(Instant::now() < deadline, "{vm} never printed {marker:?}; its console:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn host_log(lab: &Lab, host: &str, log: &str) -> String {
    std::fs::read_to_string(lab.state().join("hosts").join(host).join("upper/var/log/gwlab").join(log))
        .unwrap_or_default()
}

/// The lab's MACs end in the same digits as their addresses (10.88.N.31 is 52:54:00:00:NN:31).
fn mac(lab: &Lab, last: u8) -> String {
    format!("52:54:00:00:{:02x}:{last}", lab.index)
}

/// What one machine fetched over HTTP, from nginx's access log: the paths, in order.
fn fetched(lab: &Lab, ip: &str) -> Vec<String> {
    host_log(lab, "bastion", "nginx-access.log")
        .lines()
        .filter(|l| l.starts_with(&format!("{ip} ")))
        .filter_map(|l| l.split('"').nth(1).and_then(|r| r.split(' ').nth(1)).map(str::to_string))
        .collect()
}

#[test]
fn declared_machines_boot_their_own_role_under_bios_and_uefi() {
    let lab = Lab::up(BASE, &NEXT);
    boot_env(&lab);
    let out = apply(&lab);
    assert!(out.contains("+ tftp.loader[bastion:/srv/tftp/efi/ipxe.efi]"), "{out}");
    // The plan shows each machine's boot entry.
    assert!(out.contains(&format!("+ boot w1 {} → worker.ign", mac(&lab, 31))), "{out}");
    // Three machines at once: a worker under BIOS (SeaBIOS + the NIC's iPXE ROM), a master under UEFI
    // with no NIC ROM (OVMF's PXE client, iPXE over TFTP), a worker under UEFI with the ROM.
    lab_sh(&lab, &["vm", "w1", &mac(&lab, 31), "bios"]);
    lab_sh(&lab, &["vm", "m2", &mac(&lab, 22), "uefi-norom"]);
    lab_sh(&lab, &["vm", "w2", &mac(&lab, 32), "uefi"]);
    let ign = |name: &str| {
        let body =
            Command::new("curl").args(["-sf", &format!("http://{}/{name}", lab.ip(10))]).output().unwrap().stdout;
        hex::encode(Sha256::digest(&body))
    };
    for (vm, last, role_ign) in [("w1", 31u8, "worker.ign"), ("m2", 22, "master.ign"), ("w2", 32, "worker.ign")] {
        let console = wait_for(&lab, vm, "GW-STANDIN done");
        let ip = lab.ip(last);
        assert!(console.contains(&format!("GW-STANDIN mac={} ip={ip}", mac(&lab, last))), "{vm}:\n{console}");
        let want = format!(
            "GW-STANDIN fetched coreos.inst.ignition_url http://{}/{role_ign} sha256={}",
            lab.ip(10),
            ign(role_ign)
        );
        assert!(console.contains(&want), "{vm} did not fetch exactly {role_ign}:\n{console}");
        // nginx: the chain script, its own script, the kernel, the initramfs, the image, its ignition —
        // and no other ignition.
        let script = format!("/ipxe/{}.ipxe", mac(&lab, last).replace(':', "-"));
        let got = fetched(&lab, &ip);
        for path in ["/pxeboot.ipxe", &script, "/rhcos-kernel", "/rhcos-initramfs.img", &format!("/{role_ign}")] {
            assert!(got.iter().any(|p| p == path), "{vm} did not fetch {path}: {got:?}");
        }
        assert_eq!(got.iter().filter(|p| p.ends_with(".ign")).count(), 1, "{vm}: {got:?}");
    }
    // Only the machine without a NIC ROM asked TFTP for the UEFI loader (the others ran iPXE from ROM).
    let tftp = host_log(&lab, "bastion", "tftp-transfers.log");
    assert!(tftp.contains(&format!("RRQ from {} filename efi/ipxe.efi", lab.ip(22))), "{tftp}");
    assert!(!tftp.contains(&lab.ip(31)) && !tftp.contains(&lab.ip(32)), "{tftp}");
    assert!(wait_for(&lab, "m2", "GW-STANDIN done").contains("NBP filename is efi/ipxe.efi"));
}

#[test]
fn a_machine_that_is_not_declared_installs_nothing() {
    let lab = Lab::up(BASE, &NEXT);
    boot_env(&lab);
    apply(&lab);
    // No pin, no lease: iPXE gives up and the firmware finds nothing to boot.
    lab_sh(&lab, &["vm", "x9", "52:54:00:ee:ee:09", "bios"]);
    let console = wait_for(&lab, "x9", "No bootable device");
    lab_sh(&lab, &["vm-stop", "x9"]);
    assert!(!console.contains("GW-STANDIN"), "{console}");
    let log = host_log(&lab, "bastion", "nginx-access.log");
    assert!(!log.contains(".ign"), "nothing fetched an ignition file:\n{log}");
    let dhcpd = host_log(&lab, "ns1", "dhcpd.log");
    assert!(dhcpd.contains("52:54:00:ee:ee:09") && dhcpd.contains("no free leases"), "{dhcpd}");
}

#[test]
fn once_the_bootstrap_retires_its_mac_boots_nothing() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[]);
    boot_env(&lab);
    let out = apply(&lab);
    assert!(out.contains("✓ bootstrap-complete"), "{out}");
    let script = format!("/usr/share/nginx/html/ipxe/{}.ipxe", mac(&lab, 11).replace(':', "-"));
    assert!(!lab.ssh("bastion", &format!("test -e {script}")).status.success(), "the bootstrap's script is gone");
    lab_sh(&lab, &["vm", "bs", &mac(&lab, 11), "bios"]);
    let console = wait_for(&lab, "bs", "has no boot script in the inventory of cluster lab: nothing is installed");
    lab_sh(&lab, &["vm-stop", "bs"]);
    assert!(!console.contains("GW-STANDIN"), "{console}");
    let got = fetched(&lab, &lab.ip(11));
    assert!(got.iter().any(|p| p == "/pxeboot.ipxe"), "{got:?}");
    assert!(!got.iter().any(|p| p.ends_with(".ign")), "{got:?}");
}
