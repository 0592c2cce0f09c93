//! The SSH transport against the lab's real sshd, and the lab harness itself.

mod common;

use common::lab::Lab;
use groundwork::transport::ssh::{SshOptions, SshTransport};
use groundwork_sdk::transport::{Cmd, Transport, UploadOutcome, WriteOptions};
use groundwork_sdk::TransportError;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 10;

fn options(lab: &Lab, host: &str) -> SshOptions {
    lab.ssh_options(host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_read_write_on_every_host() {
    let lab = Lab::up(BASE, &NEXT);
    for host in ["bastion", "ns1", "lb1"] {
        let t = SshTransport::new(host, options(&lab, host));
        let out = t.exec(&Cmd::new("hostname")).await.unwrap();
        assert_eq!(out.stdout_str().trim(), host);
        // Its own PID namespace: PID 1 is the lab's init, not the machine's.
        let ps = t.exec(&Cmd::new("ps").args(["-o", "comm=", "-p", "1"])).await.unwrap();
        assert_eq!(ps.stdout_str().trim(), "host-init.sh", "{host}");

        let path = format!("/etc/groundwork-test/{host}.conf");
        assert_eq!(t.read_file(&path).await.unwrap(), None);
        t.write_file(&path, b"one\n", &WriteOptions { mode: Some(0o600), ..Default::default() }).await.unwrap();
        assert_eq!(t.read_file(&path).await.unwrap().as_deref(), Some(&b"one\n"[..]));
        // Rewrite without a mode: the existing mode is kept.
        t.write_file(&path, b"two\n", &WriteOptions::default()).await.unwrap();
        let meta = t.file_meta(std::slice::from_ref(&path)).await.unwrap().pop().flatten().unwrap();
        assert_eq!((meta.size, meta.mode), (4, 0o600));
        assert_eq!(lab.ssh_ok(host, &format!("cat {path}")), "two\n");
        // No temp file is left beside the target.
        assert_eq!(lab.ssh_ok(host, "ls -A /etc/groundwork-test"), format!("{host}.conf\n"));
        // Batched read: present, missing, binary.
        t.write_file("/srv/bin", &[0, 159, 146, 150, b'\n', 0], &WriteOptions::default()).await.unwrap();
        let many = t.read_files(&[path.clone(), "/nope".into(), "/srv/bin".into()]).await.unwrap();
        assert_eq!(many, vec![Some(b"two\n".to_vec()), None, Some(vec![0, 159, 146, 150, b'\n', 0])]);
    }
    // Each host has its own /etc: bastion's file is not on ns1, nor on this machine.
    assert!(!lab.ssh(host_other(), "test -e /etc/groundwork-test/bastion.conf").status.success());
    assert!(!std::path::Path::new("/etc/groundwork-test").exists());
}

/// One batch: a query asked twice runs once and answers both; the others run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_asked_twice_in_a_batch_runs_once() {
    let lab = Lab::up(BASE, &NEXT);
    let t = SshTransport::new("ns1", options(&lab, "ns1"));
    // In the host's own /etc (its /tmp is the machine's), and fresh: another run may have left one.
    lab.ssh_ok("ns1", "rm -f /etc/groundwork-asked");
    let counted = Cmd::new("sh").args(["-c", "echo x >> /etc/groundwork-asked; echo answered"]);
    let other = Cmd::new("sh").args(["-c", "echo other"]);
    let prefetch = groundwork_sdk::Prefetch {
        execs: vec![counted.clone(), other.clone(), counted.clone()],
        first: vec![counted.clone()],
        ..Default::default()
    };
    let batch = t.read_batch(&prefetch).await.unwrap();
    assert_eq!(batch.outputs[&counted.key()].stdout_str(), "answered\n");
    assert_eq!(batch.outputs[&other.key()].stdout_str(), "other\n");
    assert_eq!(lab.ssh_ok("ns1", "cat /etc/groundwork-asked"), "x\n", "the query ran more than once");
    lab.ssh_ok("ns1", "rm -f /etc/groundwork-asked");
}

/// A process that reads again and again (a drift loop) sends its batches to one shell kept open on the
/// host: the same answers as a batch run on its own, one round trip each, no exec session. A kept shell
/// killed on the host costs one batch run on its own; the next batch opens another shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_to_a_shell_kept_open_and_survive_its_loss() {
    let lab = Lab::up(BASE, &NEXT);
    let t = SshTransport::new("ns1", options(&lab, "ns1"));
    let files = vec!["/etc/hostname".to_string(), "/etc/groundwork-absent".to_string()];
    let prefetch = groundwork_sdk::Prefetch {
        reads: files.clone(),
        metas: files.clone(),
        execs: vec![Cmd::new("sh").args(["-c", "echo \"$1 $$ ${gw_kept:-}\"", "q", "$(reboot)"])],
        ..Default::default()
    };
    let alone = t.read_batch(&prefetch).await.unwrap();
    let kept_shells =
        || String::from_utf8_lossy(&lab.in_host("ns1", "pgrep -c -x -f 'sh -s' || true").stdout).trim().to_string();
    assert_eq!(kept_shells(), "0");
    t.keep_reads();
    let answer = |b: &groundwork_sdk::Batch| {
        let out = b.outputs.values().next().unwrap().stdout_str();
        (b.contents.clone(), b.metas.clone(), out.split(' ').next().unwrap().to_string())
    };
    let mut pids = Vec::new();
    for _ in 0..3 {
        let before = t.round_trips();
        let kept = t.read_batch(&prefetch).await.unwrap();
        assert_eq!(t.round_trips(), before + 1);
        assert_eq!(answer(&kept), answer(&alone));
        pids.push(kept.outputs.values().next().unwrap().stdout_str());
        assert_eq!(kept_shells(), "1");
    }
    // `$$` is the shell's own process id, also in the subshell a request runs in: one shell for all.
    assert!(pids[0] == pids[1] && pids[1] == pids[2], "{pids:?}");
    // A digest the shell remembers names its owner from the host's /etc/passwd: the account renamed
    // there, the file is stated again and named anew.
    lab.ssh_ok(
        "ns1",
        "echo 'gwowner:x:4242:4242::/nonexistent:/usr/sbin/nologin' >> /etc/passwd && echo x > /etc/groundwork-owned && chown 4242 /etc/groundwork-owned",
    );
    let owned = groundwork_sdk::Prefetch { metas: vec!["/etc/groundwork-owned".to_string()], ..Default::default() };
    let owner = |b: &groundwork_sdk::Batch| b.metas["/etc/groundwork-owned"].as_ref().map(|m| m.owner.clone());
    // New lists: answered in full. The same lists again: a probe (find's lines only), one round trip
    // while nothing changed; a probe that finds a line changed is followed by a full request.
    for _ in 0..3 {
        let before = t.round_trips();
        assert_eq!(owner(&t.read_batch(&owned).await.unwrap()).as_deref(), Some("gwowner"));
        assert_eq!(t.round_trips(), before + 1);
    }
    lab.ssh_ok("ns1", "sed -i 's/^gwowner:/gwrenamed:/' /etc/passwd");
    let before = t.round_trips();
    assert_eq!(owner(&t.read_batch(&owned).await.unwrap()).as_deref(), Some("gwrenamed"));
    assert_eq!(t.round_trips(), before + 2, "a probe, then the full request");
    // Changed on the host (mode), the file is stated and digested again.
    lab.ssh_ok("ns1", "chmod 600 /etc/groundwork-owned");
    let changed = t.read_batch(&owned).await.unwrap();
    assert_eq!(changed.metas["/etc/groundwork-owned"].as_ref().map(|m| m.mode), Some(0o600));
    // Rewritten in place to the same size: find's line is not the same (its times), and the probe
    // is followed by a full request. (An mtime set back by hand is believed by the host's digest
    // index, by design: docs/transport.md.)
    lab.ssh_ok("ns1", "echo y > /etc/groundwork-owned");
    let rewritten = t.read_batch(&owned).await.unwrap();
    let sha_y = lab.ssh_ok("ns1", "sha256sum /etc/groundwork-owned");
    assert_eq!(rewritten.metas["/etc/groundwork-owned"].as_ref().map(|m| m.sha256.as_str()), sha_y.split(' ').next());
    lab.ssh_ok("ns1", "sed -i '/^gwrenamed:/d' /etc/passwd; rm -f /etc/groundwork-owned");
    // The shell dies on the host (inside the lab host's own PID namespace): the next batch is answered
    // all the same, and the one after goes to a new shell.
    let killed = lab.in_host("ns1", "pkill -x -f 'sh -s'");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    // Killed by a signal, it could not remove its scratch directory (docs/transport.md): the test does.
    let left = pids[0].split_whitespace().nth(2).expect("the kept shell's scratch directory").to_string();
    assert!(left.starts_with("/dev/shm/tmp."), "{left}");
    lab.in_host("ns1", &format!("rm -rf {left}"));
    let mut after = Vec::new();
    for _ in 0..3 {
        let again = t.read_batch(&prefetch).await.unwrap();
        assert_eq!(answer(&again), answer(&alone));
        after.push(again.outputs.values().next().unwrap().stdout_str());
    }
    assert!(after[0] != pids[0] && after[1] != pids[0] && after[1] == after[2], "{pids:?} then {after:?}");
    assert_eq!(kept_shells(), "1");
    assert_eq!(t.reconnects(), 0, "the connection stayed");
    // The connection closes (the process ends): the shell reads the end of its input, exits, and
    // removes its scratch directory. Waited for on the host, for at most 30 s.
    let scratch = after[2].split_whitespace().nth(2).expect("the kept shell's scratch directory").to_string();
    assert!(lab.in_host("ns1", &format!("test -d {scratch}")).status.success(), "{scratch}");
    drop(t);
    let gone = lab.in_host("ns1", &format!("timeout 30 sh -c 'while [ -e {scratch} ]; do sleep 0.05; done'"));
    assert!(gone.status.success(), "{scratch} left behind");
    assert_eq!(kept_shells(), "0");

    // A batch run on its own whose connection goes while it runs removes its scratch directory too
    // (its next write raises SIGPIPE).
    lab.ssh_ok("ns1", "rm -f /etc/groundwork-scratch");
    let t = SshTransport::new("ns1", options(&lab, "ns1"));
    let slow = Cmd::new("sh").args(["-c", "echo \"$t\" > /etc/groundwork-scratch; sleep 1; echo done", "q"]);
    let prefetch = groundwork_sdk::Prefetch { execs: vec![slow], ..Default::default() };
    let cut = tokio::time::timeout(std::time::Duration::from_millis(300), t.read_batch(&prefetch)).await;
    assert!(cut.is_err(), "the batch ended before the connection was cut");
    drop(t);
    let scratch = lab.ssh_ok(
        "ns1",
        "timeout 30 sh -c 'until [ -s /etc/groundwork-scratch ]; do sleep 0.05; done'; cat /etc/groundwork-scratch",
    );
    let gone = lab.in_host("ns1", &format!("timeout 30 sh -c 'while [ -e {} ]; do sleep 0.05; done'", scratch.trim()));
    assert!(gone.status.success(), "{scratch} left behind");
    lab.ssh_ok("ns1", "rm -f /etc/groundwork-scratch");
}

fn host_other() -> &'static str {
    "ns1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_argv_and_failures_carry_code_and_stderr() {
    let lab = Lab::up(BASE, &NEXT);
    let t = SshTransport::new("bastion", options(&lab, "bastion"));
    let out = t.exec(&Cmd::new("sh").arg("-c").arg("echo oops >&2; exit 7")).await.unwrap();
    assert_eq!(out.code, 7);
    assert_eq!(out.stderr_str(), "oops");
    // A value that looks like shell is passed as one argument and never run.
    let out = t.exec(&Cmd::new("echo").arg("$(touch /tmp/pwned) `id`; true")).await.unwrap();
    assert_eq!(out.stdout_str(), "$(touch /tmp/pwned) `id`; true\n");
    assert!(!lab.ssh(host_other(), "test -e /tmp/pwned").status.success());
    let out = t.exec(&Cmd::new("cat").stdin(b"fed via stdin".to_vec())).await.unwrap();
    assert_eq!(out.stdout_str(), "fed via stdin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_verified() {
    let lab = Lab::up(BASE, &NEXT);
    let dir = tempfile::tempdir().unwrap();

    // Unknown: refused, saying so.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let t = SshTransport::new("bastion", SshOptions { known_hosts: vec![empty.clone()], ..options(&lab, "bastion") });
    match t.exec(&Cmd::new("true")).await {
        Err(TransportError::UnknownHostKey { host, fingerprint }) => {
            assert_eq!(host, "bastion");
            assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        }
        other => panic!("expected an unknown host key, got {other:?}"),
    }
    // Accepting new keys records it, and the next connection verifies against the record.
    let t = SshTransport::new(
        "bastion",
        SshOptions { known_hosts: vec![empty.clone()], accept_new_host_keys: true, ..options(&lab, "bastion") },
    );
    t.exec(&Cmd::new("true")).await.unwrap();
    let recorded = std::fs::read_to_string(&empty).unwrap();
    assert!(recorded.contains("ssh-ed25519"), "{recorded}");
    let t = SshTransport::new("bastion", SshOptions { known_hosts: vec![empty.clone()], ..options(&lab, "bastion") });
    t.exec(&Cmd::new("true")).await.unwrap();

    // Changed: ns1's key recorded under bastion's address is a mismatch, refused even when new keys
    // are accepted.
    let real = std::fs::read_to_string(lab.state().join("known_hosts")).unwrap();
    let ns1_key = real.lines().find(|l| l.starts_with(&format!("{} ", lab.host_ip("ns1")))).unwrap();
    let forged = dir.path().join("forged_known_hosts");
    std::fs::write(&forged, ns1_key.replacen(&lab.host_ip("ns1"), &lab.host_ip("bastion"), 1) + "\n").unwrap();
    let t = SshTransport::new(
        "bastion",
        SshOptions { known_hosts: vec![forged], accept_new_host_keys: true, ..options(&lab, "bastion") },
    );
    match t.exec(&Cmd::new("true")).await {
        Err(e @ TransportError::HostKeyMismatch { .. }) => assert!(e.to_string().contains("CHANGED"), "{e}"),
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
}

/// `@cert-authority`: the lab's sshd offers a host certificate signed by the lab's CA; a known_hosts
/// holding only the CA line trusts every lab host, and `@revoked` (the CA, or one host's key) refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_certificates_and_revocations() {
    let lab = Lab::up(BASE, &NEXT);
    let dir = tempfile::tempdir().unwrap();
    let ca_only = lab.state().join("known_hosts_ca");
    for host in ["bastion", "ns1", "lb1"] {
        let t = SshTransport::new(host, SshOptions { known_hosts: vec![ca_only.clone()], ..options(&lab, host) });
        let out = t.exec(&Cmd::new("hostname")).await.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(out.stdout_str().trim(), host);
    }
    // The real OpenSSH client agrees with that file (the certificate is what is verified).
    let ssh = std::process::Command::new("ssh")
        .args(["-i", lab.state().join("id_ed25519").to_str().unwrap(), "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", ca_only.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"])
        .arg(format!("root@{}", lab.host_ip("lb1")))
        .arg("hostname")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "lb1", "{}", String::from_utf8_lossy(&ssh.stderr));

    // A second file may revoke: the CA itself ...
    let ca_pub = std::fs::read_to_string(lab.state().join("ssh_ca.pub")).unwrap();
    let revoke_ca = dir.path().join("revoke_ca");
    std::fs::write(&revoke_ca, format!("@revoked * {ca_pub}")).unwrap();
    let t = SshTransport::new(
        "lb1",
        SshOptions {
            known_hosts: vec![ca_only.clone(), revoke_ca],
            accept_new_host_keys: true,
            ..options(&lab, "lb1")
        },
    );
    match t.exec(&Cmd::new("true")).await {
        Err(e @ TransportError::HostKeyMismatch { .. }) => assert!(e.to_string().contains("REVOKED"), "{e}"),
        other => panic!("expected a revoked key, got {other:?}"),
    }
    // ... or one host's key: that host is refused, the others still trusted through the CA.
    let lb1_key = std::fs::read_to_string(lab.state().join("hosts/lb1/ssh_host_ed25519_key.pub")).unwrap();
    let revoke_lb1 = dir.path().join("revoke_lb1");
    std::fs::write(&revoke_lb1, format!("@revoked * {lb1_key}")).unwrap();
    let with = |host: &str| {
        SshTransport::new(
            host,
            SshOptions { known_hosts: vec![ca_only.clone(), revoke_lb1.clone()], ..options(&lab, host) },
        )
    };
    assert!(matches!(with("lb1").exec(&Cmd::new("true")).await, Err(TransportError::HostKeyMismatch { .. })));
    with("ns1").exec(&Cmd::new("true")).await.unwrap();

    // A CA line for another network does not vouch; the error names the files read.
    let elsewhere = dir.path().join("ca_elsewhere");
    std::fs::write(&elsewhere, format!("@cert-authority 192.0.2.* {ca_pub}")).unwrap();
    let t = SshTransport::new("lb1", SshOptions { known_hosts: vec![elsewhere.clone()], ..options(&lab, "lb1") });
    match t.exec(&Cmd::new("true")).await {
        Err(e @ TransportError::UnknownHostKey { .. }) => {
            assert!(e.to_string().contains(&elsewhere.display().to_string()), "{e}")
        }
        other => panic!("expected an unknown host key, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_and_unreachable_are_distinct() {
    let lab = Lab::up(BASE, &NEXT);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("stranger");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let t = SshTransport::new("bastion", SshOptions { identities: vec![key], ..options(&lab, "bastion") });
    assert!(matches!(t.exec(&Cmd::new("true")).await, Err(TransportError::Auth { .. })));
    // Nothing listens on port 2222 of the lab host: refused at once.
    let t = SshTransport::new("bastion", SshOptions { port: 2222, ..options(&lab, "bastion") });
    assert!(matches!(t.exec(&Cmd::new("true")).await, Err(TransportError::Unreachable { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_many_concurrent_operations() {
    let lab = Lab::up(BASE, &NEXT);
    let t = SshTransport::new("lb1", options(&lab, "lb1"));
    let reads = (0..20).map(|i| {
        let t = &t;
        async move { t.exec(&Cmd::new("echo").arg(i.to_string())).await.unwrap().stdout_str() }
    });
    let outs = futures::future::join_all(reads).await;
    assert_eq!(outs[19], "19\n");
    // sshd's view: exactly one established connection from us.
    let ss = t.exec(&Cmd::new("ss").args(["-Htn", "state", "established", "( sport = :22 )"])).await.unwrap();
    assert_eq!(ss.stdout_str().lines().count(), 1, "{}", ss.stdout_str());
    assert_eq!(t.reconnects(), 0);
    // The connection dies on the host's side (its sshd processes killed, inside the lab host's own PID
    // namespace): the next operation connects again, once, and goes through.
    let killed = lab.in_host("lb1", "pkill -f '^sshd: root'");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    let after = t.exec(&Cmd::new("echo").arg("again")).await.unwrap();
    assert_eq!(after.stdout_str(), "again\n");
    assert_eq!(t.reconnects(), 1);
    let ss = t.exec(&Cmd::new("ss").args(["-Htn", "state", "established", "( sport = :22 )"])).await.unwrap();
    assert_eq!(ss.stdout_str().lines().count(), 1, "{}", ss.stdout_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_streams_verifies_and_skips_when_the_digest_matches() {
    let lab = Lab::up(BASE, &NEXT);
    let t = SshTransport::new("bastion", options(&lab, "bastion"));
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("image.raw");
    // 48 MiB of non-repeating bytes.
    let mut data = Vec::with_capacity(48 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while data.len() < 48 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&local, &data).unwrap();
    let (sha, size) = groundwork_sdk::local::sha256_file(&local).unwrap();
    let remote = "/usr/share/nginx/html/image.raw";
    let first =
        t.upload(&local, remote, &sha, &WriteOptions { mode: Some(0o644), ..Default::default() }).await.unwrap();
    assert_eq!(first, UploadOutcome::Uploaded { bytes: size });
    assert_eq!(lab.ssh_ok("bastion", &format!("sha256sum {remote}")).split(' ').next().unwrap(), sha);
    let second = t.upload(&local, remote, &sha, &WriteOptions::default()).await.unwrap();
    assert_eq!(second, UploadOutcome::Skipped);
    // A source that no longer has the planned digest is refused before anything is sent...
    let wrong = "0".repeat(64);
    std::fs::write(&local, b"other").unwrap();
    let err = t.upload(&local, remote, &wrong, &WriteOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("changed since the plan"), "{err}");
    // ...and one touched while it streams ends without the planned digest line: the host refuses it.
    let mut stream: &[u8] = b"otherchanged\n";
    let bound = std::time::Duration::from_secs(30);
    let err = t.write_stream(remote, &mut stream, &WriteOptions::default(), &sha, Some(5), bound).await.unwrap_err();
    assert!(err.to_string().contains("the source changed during the upload"), "{err}");
    assert_eq!(lab.ssh_ok("bastion", &format!("sha256sum {remote}")).split(' ').next().unwrap(), sha);
    assert_eq!(lab.ssh_ok("bastion", "ls -A /usr/share/nginx/html | grep -c groundwork || true").trim(), "0");
    // The docroot is the host's own: nothing landed on this machine's.
    assert!(!std::path::Path::new(remote).exists());
}

#[test]
fn lab_up_is_idempotent_and_down_leaves_nothing() {
    let lab = Lab::up(BASE, &NEXT);
    let index = lab.index;
    let again = std::process::Command::new("bash")
        .args(["scripts/lab.sh", "up"])
        .env("GW_LAB_INDEX", index.to_string())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));
    // A bare host: the daemons of its roles are installed but stopped and disabled; the lab's systemctl
    // starts them, and then real clients get answers (named, as on a fresh RHEL, only on loopback).
    assert_eq!(lab.ssh("ns1", "systemctl is-active named").status.code(), Some(3));
    assert_eq!(lab.ssh("ns1", "systemctl is-enabled named").stdout, b"disabled\n");
    lab.ssh_ok("ns1", "systemctl start named");
    let dig = lab.ssh_ok("ns1", "dig @127.0.0.1 +time=2 +tries=1 version.bind CH TXT");
    assert!(dig.contains("status:"), "{dig}");
    lab.ssh_ok("bastion", "systemctl start nginx");
    let curl = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{}/", lab.host_ip("bastion"))])
        .output()
        .unwrap();
    assert!(matches!(&String::from_utf8_lossy(&curl.stdout)[..], "200" | "403" | "404"));
    let out = lab.in_node("w1", &["curl", "-sk", "--max-time", "3", &format!("https://{}:6443/readyz", lab.ip(21))]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "m1/6443");
    let out = lab.in_node("w1", &["sh", "-c", &format!("echo | socat -t 5 -T 5 - TCP:{}:443", lab.ip(32))]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "w2/443");
    // systemctl stand-in on a host.
    assert_eq!(lab.ssh_ok("ns1", "systemctl is-active named").trim(), "active");
    assert!(!lab.ssh("lb1", "systemctl reload haproxy").status.success());
    drop(lab);
    let netns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("gw{index}-");
    assert!(!String::from_utf8_lossy(&netns.stdout).lines().any(|l| l.starts_with(&prefix)));
    let link = std::process::Command::new("ip").args(["link", "show", &format!("gwlab{index}")]).output().unwrap();
    assert!(!link.status.success());
    assert!(!std::path::Path::new(&format!("/tmp/groundwork-lab/{index}")).exists());
}
