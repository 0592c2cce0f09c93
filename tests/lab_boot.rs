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

/// The lab's own probe: where QEMU cannot run, these tests fail with why (scripts/test.sh skips them
/// there, and says so) — they never pass without a machine booting.
fn vms_can_run() {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .arg("vm-probe")
        .output()
        .unwrap();
    assert!(out.status.success(), "virtual machines cannot run here: {}", String::from_utf8_lossy(&out.stdout));
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
        // iPXE wraps its console at 80 columns: a long line arrives cut in two.
        if text.replace(['\r', '\n'], "").contains(marker) {
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

fn access_log(lab: &Lab) -> String {
    lab.ssh_ok("bastion", "cat /var/log/nginx/groundwork-access.log")
}

/// The lab's MACs end in the same digits as their addresses (10.88.N.31 is 52:54:00:00:NN:31).
fn mac(lab: &Lab, last: u8) -> String {
    format!("52:54:00:00:{:02x}:{last}", lab.index)
}

/// What one machine fetched over HTTP, from nginx's access log: the paths, in order.
/// What a client fetched, from groundwork's access log of the served files (`files.web.access_log`).
fn fetched(lab: &Lab, ip: &str) -> Vec<String> {
    access_log(lab)
        .lines()
        .filter(|l| l.starts_with(&format!("{ip} ")))
        .filter_map(|l| l.split('"').nth(1).and_then(|r| r.split(' ').nth(1)).map(str::to_string))
        .collect()
}

/// sha256 of what nginx serves at `/name`, fetched with curl from the lab's bridge.
fn served_digest(lab: &Lab, name: &str) -> String {
    let out = Command::new("curl").args(["-sf", &format!("http://{}/{name}", lab.ip(10))]).output().unwrap();
    assert!(out.status.success(), "curl {name}");
    hex::encode(Sha256::digest(&out.stdout))
}

/// The VM with the MAC and address ending in `last` booted the stand-in OS with its pinned address and
/// fetched exactly `role_ign` (the digest it printed is what nginx serves), after the chain script, its
/// own script, the kernel and the initramfs — and no other ignition.
fn booted_with(lab: &Lab, vm: &str, last: u8, role_ign: &str) {
    let console = wait_for(lab, vm, "GW-STANDIN done");
    let ip = lab.ip(last);
    assert!(console.contains(&format!("GW-STANDIN mac={} ip={ip}", mac(lab, last))), "{vm}:\n{console}");
    let want = format!(
        "GW-STANDIN fetched coreos.inst.ignition_url http://{}/{role_ign} sha256={}",
        lab.ip(10),
        served_digest(lab, role_ign)
    );
    assert!(console.contains(&want), "{vm} did not fetch exactly {role_ign}:\n{console}");
    let script = format!("/ipxe/{}.ipxe", mac(lab, last).replace(':', "-"));
    let got = fetched(lab, &ip);
    for path in ["/pxeboot.ipxe", &script, "/rhcos-kernel", "/rhcos-initramfs.img", &format!("/{role_ign}")] {
        assert!(got.iter().any(|p| p == path), "{vm} did not fetch {path}: {got:?}");
    }
    assert_eq!(got.iter().filter(|p| p.ends_with(".ign")).count(), 1, "{vm}: {got:?}");
}

#[test]
fn vm_declared_machines_boot_their_own_role_under_bios_and_uefi() {
    vms_can_run();
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
    for (vm, last, role_ign) in [("w1", 31u8, "worker.ign"), ("m2", 22, "master.ign"), ("w2", 32, "worker.ign")] {
        booted_with(&lab, vm, last, role_ign);
    }
    assert_ne!(served_digest(&lab, "master.ign"), served_digest(&lab, "worker.ign"));
    // A real TFTP client gets both loaders DHCP names, byte for byte the ipxe package's. (A BIOS machine
    // here always runs the NIC's iPXE ROM, which goes straight to HTTP: QEMU has no non-iPXE PXE ROM, so
    // undionly.kpxe is fetched by this client, not by firmware.)
    let got = tempfile::tempdir().unwrap();
    for (remote, package) in
        [("undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe"), ("efi/ipxe.efi", "/usr/lib/ipxe/ipxe.efi")]
    {
        let local = got.path().join(remote.replace('/', "_"));
        let out = Command::new("tftp")
            .args(["-m", "binary", &lab.ip(10), "-c", "get", remote, local.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "tftp get {remote}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&local).unwrap(), std::fs::read(package).unwrap(), "{remote}");
    }
    // Only the machine without a NIC ROM asked TFTP for the UEFI loader (the others ran iPXE from ROM).
    let tftp = host_log(&lab, "bastion", "tftp-transfers.log");
    assert!(tftp.contains(&format!("RRQ from {} filename efi/ipxe.efi", lab.ip(22))), "{tftp}");
    assert!(!tftp.contains(&lab.ip(31)) && !tftp.contains(&lab.ip(32)), "{tftp}");
    assert!(wait_for(&lab, "m2", "GW-STANDIN done").contains("NBP filename is efi/ipxe.efi"));
}

#[test]
fn vm_a_machine_that_is_not_declared_installs_nothing() {
    vms_can_run();
    let lab = Lab::up(BASE, &NEXT);
    boot_env(&lab);
    apply(&lab);
    // No pin, no lease: iPXE gives up and the firmware finds nothing to boot.
    lab_sh(&lab, &["vm", "x9", "52:54:00:ee:ee:09", "bios"]);
    let console = wait_for(&lab, "x9", "No bootable device");
    lab_sh(&lab, &["vm-stop", "x9"]);
    assert!(!console.contains("GW-STANDIN"), "{console}");
    let log = access_log(&lab);
    assert!(!log.contains(".ign"), "nothing fetched an ignition file:\n{log}");
    let dhcpd = host_log(&lab, "ns1", "dhcpd.log");
    assert!(dhcpd.contains("52:54:00:ee:ee:09") && dhcpd.contains("no free leases"), "{dhcpd}");
}

#[test]
fn vm_once_the_bootstrap_retires_its_mac_boots_nothing() {
    vms_can_run();
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

#[test]
fn vm_kea_hands_out_the_same_chain() {
    vms_can_run();
    let lab = Lab::up(BASE, &NEXT);
    boot_env(&lab);
    // ns1 serves DHCP with Kea instead of dhcpd: the same pins, loaders and chain script.
    replace_in(
        &lab.env_dir().join("services.yaml"),
        "  pxe: { tftp_host",
        "  backends: { ns1: kea }\n  pxe: { tftp_host",
    );
    let out = apply(&lab);
    assert!(out.contains("kea.config[ns1:"), "{out}");
    // OVMF's own PXE client: Kea's architecture class hands it the UEFI loader over TFTP, Kea's iPXE
    // class then hands iPXE the chain script.
    lab_sh(&lab, &["vm", "w1", &mac(&lab, 31), "uefi-norom"]);
    booted_with(&lab, "w1", 31, "worker.ign");
    let tftp = host_log(&lab, "bastion", "tftp-transfers.log");
    assert!(tftp.contains(&format!("RRQ from {} filename efi/ipxe.efi", lab.ip(31))), "{tftp}");
    let kea = host_log(&lab, "ns1", "kea-dhcp4.log");
    assert!(kea.contains(&mac(&lab, 31)), "Kea answered w1:\n{kea}");
}
