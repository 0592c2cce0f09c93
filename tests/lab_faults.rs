//! The fault suite: each scenario exits non-zero with a clear message, leaves no half-written file,
//! keeps every daemon serving its last good configuration, and converges on a re-run.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 100;

fn apply_ok(lab: &Lab) {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// No temp or candidate file anywhere groundwork writes.
fn no_leftovers(lab: &Lab) {
    for (host, dirs) in
        [("ns1", "/var/named /etc/named /etc/dhcp /etc"), ("bastion", "/usr/share/nginx/html"), ("lb1", "/etc/haproxy")]
    {
        let found =
            lab.ssh_ok(host, &format!("ls -A {dirs} 2>/dev/null | grep -E 'groundwork-|\\.groundwork' || true"));
        assert_eq!(found.trim(), "", "leftovers on {host}");
    }
}

#[test]
fn a_reload_that_fails_after_the_checker_passed_restores_the_previous_file() {
    let lab = Lab::up(BASE, &NEXT);
    apply_ok(&lab);
    let d = "lab.example.test";
    let before = lab.ssh_ok("ns1", &format!("cat /var/named/{d}.zone"));
    // Zone files moved to a directory named (user bind) cannot read: named-checkzone (root) passes,
    // the reload fails.
    lab.ssh_ok("ns1", "mkdir -p /srv/zones && chmod 0700 /srv/zones");
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    std::fs::write(&services, format!("{text}\ndns:\n  zone_dir: /srv/zones\n")).unwrap();
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    // The zones and the stanzas that moved them were written together and reloaded once: all fail.
    assert!(all.contains("activation failed") && all.contains("the previous files were restored"), "{all}");
    assert!(all.contains("Apply: 0 done, 3 failed or skipped."), "{all}");
    // The live configuration and data are the old ones; named answers.
    assert!(!lab.ssh_ok("ns1", "cat /etc/named/groundwork.zones.conf").contains("/srv/zones"));
    assert_eq!(lab.ssh_ok("ns1", &format!("cat /var/named/{d}.zone")), before);
    assert_eq!(lab.dig(&[&format!("m1.{d}")]), lab.ip(21));
    no_leftovers(&lab);
    // Fixed input converges.
    std::fs::write(&services, text).unwrap();
    apply_ok(&lab);
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_full_or_read_only_target_leaves_the_old_files_whole() {
    let lab = Lab::up(BASE, &NEXT);
    apply_ok(&lab);
    let docroot = "/usr/share/nginx/html";
    let script_before = lab.ssh_ok("bastion", &format!("cat {docroot}/pxeboot.ipxe"));
    let big = lab.env_dir().join("big.img");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let with_big = text.replace(
        "    - { path: pxeboot.ipxe, template: builtin:ipxe }",
        "    - { path: pxeboot.ipxe, template: builtin:ipxe }\n    - { path: big.img, source: big.img }",
    );
    std::fs::write(&services, with_big).unwrap();

    // No space: a 1 MiB filesystem over the docroot (in bastion's own mount namespace), holding a copy.
    lab.ssh_ok(
        "bastion",
        &format!("c=$(mktemp -d /tmp/gw-docroot-XXXXXX) && cp -a {docroot}/. $c/ && mount -t tmpfs -o size=1m gw-full {docroot} && cp -a $c/. {docroot}/ && rm -rf $c"),
    );
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("No space left on device"), "{all}");
    assert!(all.contains("files.file[bastion:/usr/share/nginx/html/big.img]"), "{all}");
    assert_eq!(lab.ssh_ok("bastion", &format!("cat {docroot}/pxeboot.ipxe")), script_before);
    assert!(!lab.ssh("bastion", &format!("test -e {docroot}/big.img")).status.success());
    no_leftovers(&lab);

    // Permission denied: the docroot read-only.
    lab.ssh_ok("bastion", &format!("mount -o remount,ro {docroot}"));
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1);
    assert!(format!("{}{}", run.stdout, run.stderr).contains("Read-only file system"), "{}{}", run.stdout, run.stderr);
    assert_eq!(lab.ssh_ok("bastion", &format!("cat {docroot}/pxeboot.ipxe")), script_before);

    // The cause goes away: a re-run converges.
    lab.ssh_ok("bastion", &format!("umount {docroot}"));
    apply_ok(&lab);
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
    no_leftovers(&lab);
}

#[test]
fn a_changed_host_key_stops_the_run_before_anything_is_written() {
    let lab = Lab::up(BASE, &NEXT);
    // bastion gets a new host key (reinstalled, or someone in the middle) between runs.
    lab.ssh_ok(
        "bastion",
        "k=$(mktemp -u /tmp/gw-hostkey-XXXXXX) && ssh-keygen -q -t ed25519 -N '' -f $k && cp $k /etc/ssh/gwlab_host_ed25519_key && rm -f $k $k.pub && systemctl restart sshd",
    );
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("host key of bastion CHANGED"), "{}", run.stderr);
    // The lock is taken on every host first: nothing was applied anywhere, no lock left behind.
    assert!(!lab.ssh("ns1", "test -e /var/named/lab.example.test.zone").status.success());
    assert!(!lab.ssh("ns1", "test -e /var/lib/groundwork/lab.lock").status.success());
}

/// sshd of one host dies while an apply is under way (connections open, lock held): the other hosts
/// complete, the failed host's changes are reported, its files are old or new, never half-written; once
/// sshd is back and the lock it could not release is cleared, a re-run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_during_an_apply_fails_only_that_host() {
    use groundwork::engine::{self, Outcome};
    use groundwork::ops::Workspace;
    let lab = Lab::up(BASE, &NEXT);
    apply_ok(&lab);
    let zone = "/var/named/lab.example.test.zone";
    let zone_before = lab.ssh_ok("ns1", &format!("cat {zone}"));
    // A change for every host: m2 moves (ns1: zone, PTR, DHCP; lb1: backends) and a new served file.
    let nodes = lab.env_dir().join("nodes.yaml");
    let text = std::fs::read_to_string(&nodes).unwrap();
    std::fs::write(&nodes, text.replace(&format!("ip: {} }}", lab.ip(22)), &format!("ip: {} }}", lab.ip(26)))).unwrap();
    let services = lab.env_dir().join("services.yaml");
    let svc = std::fs::read_to_string(&services).unwrap();
    std::fs::write(
        &services,
        svc.replace(
            "    - { path: pxeboot.ipxe,",
            "    - { path: notice.txt, content: \"maintenance\\n\" }\n    - { path: pxeboot.ipxe,",
        ),
    )
    .unwrap();

    let ws = Workspace::open(lab.env_dir()).unwrap();
    let lock = ws.lock("apply (sshd fault)", None).await.unwrap();
    let plan = ws.plan().await.unwrap();
    let hosts_with_changes: std::collections::BTreeSet<String> =
        plan.changes.iter().filter_map(|c| c.change.address.host.clone()).collect();
    assert_eq!(hosts_with_changes.into_iter().collect::<Vec<_>>(), ["bastion", "lb1", "ns1"]);
    // Every connection is open. Now ns1's sshd (listener and sessions) dies, inside ns1 only.
    let killed = lab.in_host("ns1", "pkill -KILL -x sshd; sleep 0.2; pgrep -x sshd || echo none");
    assert_eq!(String::from_utf8_lossy(&killed.stdout).trim(), "none");

    let report = engine::apply(&ws.registry, &ws.hosts, &plan, &|_, _| {}).await.unwrap();
    lock.release(&ws.hosts).await;
    for (addr, _, outcome) in &report.outcomes {
        match addr.host.as_deref() {
            Some("ns1") => {
                assert!(!matches!(outcome, Outcome::Applied), "{addr} cannot have been applied: {outcome:?}")
            }
            _ => assert_eq!(outcome, &Outcome::Applied, "{addr}"),
        }
    }
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter_map(|(a, _, o)| match o {
            Outcome::Failed(m) => Some(format!("{a}: {m}")),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty() && failed.iter().all(|f| f.contains("ns1")), "{failed:?}");
    // The other hosts took their changes.
    let cfg = lab.ssh_ok("lb1", "cat /etc/haproxy/haproxy.cfg");
    assert!(cfg.contains(&format!("server m2 {}:6443", lab.ip(26))), "{cfg}");
    assert_eq!(lab.ssh_ok("bastion", "cat /usr/share/nginx/html/notice.txt"), "maintenance\n");

    // sshd back. ns1 kept its old files whole, and named still serves the old address.
    let started = lab.in_host("ns1", "systemctl start sshd");
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    assert_eq!(lab.ssh_ok("ns1", &format!("cat {zone}")), zone_before);
    assert_eq!(lab.dig(&["m2.lab.example.test"]), lab.ip(22));
    no_leftovers(&lab);

    // The lock could not be released on ns1: the next run says so and how to clear it.
    let blocked = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(blocked.code, 1, "{}{}", blocked.stdout, blocked.stderr);
    assert!(blocked.stderr.contains("force-unlock"), "{}", blocked.stderr);
    let unlock = groundwork(&["force-unlock", &lock_id_from_hint(&blocked.stderr), lab.env_str()]);
    assert_eq!(unlock.code, 0, "{}{}", unlock.stdout, unlock.stderr);
    apply_ok(&lab);
    assert_eq!(lab.dig(&["m2.lab.example.test"]), lab.ip(26));
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}

/// The lock id from a "force-unlock ID ENV" hint.
fn lock_id_from_hint(stderr: &str) -> String {
    let after = stderr.split("force-unlock ").nth(1).expect("a force-unlock hint");
    after.split_whitespace().next().expect("an id").to_string()
}
