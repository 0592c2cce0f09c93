//! SELinux on the lab. The kernel has SELinux disabled, so enforcement is not tested; the policy store
//! (semanage), the policy's answers (matchpathcon) and the file labels (xattrs written by setfiles, read
//! with stat -c %C) are real.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 80;

fn apply(lab: &Lab) -> String {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.stdout
}

fn label(lab: &Lab, path: &str) -> String {
    let ctx = lab.ssh_ok("bastion", &format!("stat -c %C {path} 2>/dev/null || echo '?'"));
    ctx.trim().split(':').nth(2).unwrap_or("?").to_string()
}

#[test]
fn served_files_carry_the_docroot_type_and_the_403_trap_is_repaired() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    let docroot = "/usr/share/nginx/html";
    for f in ["pxeboot.ipxe", "bootstrap.ign", "rhcos-kernel"] {
        assert_eq!(label(&lab, &format!("{docroot}/{f}")), "httpd_sys_content_t", "{f}");
    }
    assert_eq!(
        lab.ssh_ok("bastion", &format!("matchpathcon -n {docroot}/pxeboot.ipxe")).trim().split(':').nth(2),
        Some("httpd_sys_content_t")
    );
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    // The seed's trap: a file moved in from /root keeps admin_home_t (nginx answers 403 on RHEL).
    lab.ssh_ok(
        "bastion",
        &format!("setfattr -n security.selinux -v system_u:object_r:admin_home_t:s0 {docroot}/pxeboot.ipxe"),
    );
    assert_eq!(label(&lab, &format!("{docroot}/pxeboot.ipxe")), "admin_home_t");
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(
        plan.stdout.contains(&format!("~ {docroot}/pxeboot.ipxe: admin_home_t → httpd_sys_content_t")),
        "{}",
        plan.stdout
    );
    apply(&lab);
    assert_eq!(label(&lab, &format!("{docroot}/pxeboot.ipxe")), "httpd_sys_content_t");

    // A changed served file is relabelled in the same apply (its relabel is planned with it).
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    std::fs::write(
        &services,
        text.replace("lab stand-in for the RHCOS kernel", "lab stand-in for the RHCOS kernel, v2"),
    )
    .unwrap();
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains(&format!("~ selinux.relabel[bastion:{docroot}]")), "{}", plan.stdout);
    apply(&lab);
    assert_eq!(label(&lab, &format!("{docroot}/rhcos-kernel")), "httpd_sys_content_t");
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);

    // A policy change alone, no file touched, is seen too: the clean check remembered for the tree
    // holds only while the policy's file_contexts files are unchanged.
    lab.ssh_ok("bastion", &format!("semanage fcontext -a -t public_content_t '{docroot}/index\\.html'"));
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!("~ {docroot}/index.html: httpd_sys_content_t → public_content_t")),
        "{}",
        plan.stdout
    );
    lab.ssh_ok("bastion", &format!("semanage fcontext -d '{docroot}/index\\.html'"));
    apply(&lab);

    // The docroot's type is the base policy's own: the read keeps that answer on the host, and a
    // policy whose file_contexts changed is read again (the lab host's own copy of it).
    let spec = "/etc/selinux/default/contexts/files/file_contexts";
    let kept = "/var/lib/groundwork/selinux-base-default";
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
    let answer = lab.ssh_ok("bastion", &format!("cat {kept}"));
    assert!(answer.contains("httpd_sys_content_t") && answer.ends_with("@@END\n"), "{answer}");
    let retype = |from: &str, to: &str| {
        lab.ssh_ok("bastion", &format!("sed -i '/^\\/usr\\/share\\/nginx\\/html(/s/{from}/{to}/' {spec}"));
    };
    retype("httpd_sys_content_t", "public_content_t");
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("selinux.fcontext[bastion:"), "{}", plan.stdout);
    retype("public_content_t", "httpd_sys_content_t");
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
}

#[test]
fn booleans_and_port_labels_are_set_once() {
    let lab = Lab::up(BASE, &NEXT);
    // RHEL's targeted policy has haproxy_connect_any; Debian's refpolicy does not: declare it.
    lab.ssh_ok(
        "lb1",
        // /tmp is shared with the machine: a unique name, removed after use.
        "f=$(mktemp /tmp/gw-haproxy-XXXXXX.cil) && printf '(boolean haproxy_connect_any false)\\n' > $f && semodule -i $f; rc=$?; rm -f $f; exit $rc",
    );
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let text = text.replace(
        "selinux:\n",
        "selinux:\n  hosts: [lb1]\n  booleans: { haproxy_connect_any: true }\n  ports: [ { port: 22623/tcp, type: http_port_t } ]\n",
    );
    std::fs::write(&services, text).unwrap();
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(plan.stdout.contains("~ haproxy_connect_any off → on"), "{}", plan.stdout);
    assert!(plan.stdout.contains("+ selinux.port[lb1:tcp/22623]"), "{}", plan.stdout);
    apply(&lab);
    let export = lab.ssh_ok("lb1", "semanage export");
    assert!(export.contains("boolean -m -1 haproxy_connect_any"), "{export}");
    assert!(export.contains("port -a -t http_port_t -r 's0' -p tcp 22623"), "{export}");
    // Idempotent: nothing is re-added (semanage would say "already defined").
    assert_eq!(groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]).code, 0);
    let again = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    // Switched off by hand: the local store says so, and the plan puts it back.
    lab.ssh_ok("lb1", "semanage boolean -m --off haproxy_connect_any");
    let plan = groundwork(&["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("~ haproxy_connect_any off → on"), "{}", plan.stdout);
}
