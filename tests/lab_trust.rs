//! Trust under hostile input, on the lab of real daemons: secret-bearing content stays out of every
//! artifact groundwork writes, at every verbosity; saved plans apply only where and as they were made.

mod common;

use base64::Engine;
use common::lab::Lab;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 130;

/// A marker no output could contain by chance.
fn sentinel(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("GWSENTINEL{what}{:x}{:x}", std::process::id(), nanos)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// groundwork at the highest verbosity (-vv and RUST_LOG=trace); stdout and stderr together.
fn loud(args: &[&str], kubeconfig: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(args)
        .arg("-vv")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "trace")
        .env("KUBECONFIG", kubeconfig)
        .env_remove("GROUNDWORK_ENV")
        .output()
        .expect("run groundwork");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_every_artifact_at_every_verbosity() {
    let lab = Lab::up_with_cluster(BASE, &NEXT, &[]);
    let env = lab.env_dir();
    let e = lab.env_str();
    let content = sentinel("CONTENT");
    let source = sentinel("SOURCE");
    let template = sentinel("TEMPLATE");
    let pull = sentinel("PULL");
    let data = sentinel("DATA");
    let string_data = sentinel("STRINGDATA");

    // Every kind of secret-bearing input: ignition as content, as an uploaded source and as a template;
    // a file marked secret; a Secret's data and stringData.
    std::fs::create_dir_all(env.join("installdir")).unwrap();
    std::fs::write(
        env.join("installdir/master.ign"),
        format!("{{\"ignition\":{{\"version\":\"3.1.0\"}},\"s\":\"{source}\"}}\n"),
    )
    .unwrap();
    std::fs::write(
        env.join("installdir/worker.ign.j2"),
        format!("{{\"ignition\":{{\"version\":\"3.1.0\"}},\"c\":\"{{{{ cluster.name }}}}\",\"s\":\"{template}\"}}\n"),
    )
    .unwrap();
    let services = env.join("services.yaml");
    replace_in(
        &services,
        r#"{ path: bootstrap.ign, content: "{\"ignition\":{\"version\":\"3.1.0\"}}\n", kind: ignition }"#,
        &format!(
            r#"{{ path: bootstrap.ign, content: "{{\"ignition\":{{\"version\":\"3.1.0\"}},\"s\":\"{content}\"}}\n", kind: ignition }}"#
        ),
    );
    replace_in(
        &services,
        r#"{ path: master.ign, content: "{\"ignition\":{\"version\":\"3.1.0\"}}\n", kind: ignition }"#,
        "{ path: master.ign, source: installdir/master.ign, kind: ignition }",
    );
    replace_in(
        &services,
        r#"{ path: worker.ign, content: "{\"ignition\":{\"version\":\"3.1.0\"}}\n", kind: ignition }"#,
        &format!("{{ path: worker.ign, template: installdir/worker.ign.j2, kind: ignition }}\n    - {{ path: pull-secret.json, content: '{{\"auths\":{{\"r\":{{\"auth\":\"{pull}\"}}}}}}', secret: true }}"),
    );
    std::fs::write(
        env.join("cluster/secret.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{ name: lab-credentials, namespace: openshift-config }}\ntype: Opaque\ndata:\n  a: {}\nstringData:\n  b: {string_data}\n",
            b64(&data)
        ),
    )
    .unwrap();

    // The kubeconfig's token is a random secret already; give it a client key as well (the simulator
    // does not ask for one, but the client loads it).
    let creds = tempfile::tempdir().unwrap();
    let (key, crt) = (creds.path().join("k.pem"), creds.path().join("c.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=groundwork-test", "-keyout", key.to_str().unwrap(), "-out", crt.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_data = b64(&key_pem);
    let key_line = key_pem.lines().nth(1).unwrap().to_string();
    let kubeconfig_text = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    let token = kubeconfig_text.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().trim().to_string();
    assert!(token.len() >= 16, "{kubeconfig_text}");
    let kubeconfig = creds.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_text.replace(
            &format!("    token: {token}"),
            &format!(
                "    token: {token}\n    client-certificate-data: {}\n    client-key-data: {key_data}",
                b64(&std::fs::read_to_string(&crt).unwrap())
            ),
        ),
    )
    .unwrap();
    let openshift = env.join("openshift.yaml");
    let old = std::fs::read_to_string(&openshift).unwrap();
    let line = old.lines().find(|l| l.trim_start().starts_with("kubeconfig:")).unwrap().to_string();
    replace_in(&openshift, &line, &format!("  kubeconfig: {}", kubeconfig.display()));

    // Everything a pipeline runs, at the highest verbosity.
    let planfile = creds.path().join("plan.json");
    let p = planfile.to_str().unwrap();
    let mut artifacts: Vec<(String, String)> = Vec::new();
    let mut run = |args: &[&str], want: &[i32]| {
        let (code, text) = loud(args, &kubeconfig);
        // The output without its log lines: the report itself says what failed.
        let report: Vec<&str> = text.lines().filter(|l| !l.contains(" TRACE ") && !l.contains(" DEBUG ")).collect();
        assert!(want.contains(&code), "{args:?} exited {code}:\n{}", report.join("\n"));
        artifacts.push((args.join(" "), text));
    };
    run(&["validate", e], &[0]);
    run(&["plan", e], &[0]);
    run(&["plan", e, "--json"], &[0]);
    run(&["plan", e, "--out", p], &[0]);
    run(&["show", p], &[0]);
    run(&["show", p, "--json"], &[0]);
    // The saved plan applies (its secret content is found again in the environment, by digest)...
    run(&["apply", p], &[0]);
    // ...then one apply takes it through the gates to day 2.
    run(&["apply", e, "--auto-approve"], &[0]);
    run(&["drift", e, "--json"], &[0]);
    run(&["verify", e, "--json"], &[0]);
    let trace_lines = artifacts.iter().map(|(_, t)| t.matches("TRACE").count()).sum::<usize>();
    assert!(trace_lines > 100, "the runs were not at trace level ({trace_lines} TRACE lines)");
    artifacts.push(("plan file".into(), std::fs::read_to_string(&planfile).unwrap()));

    // The drift loop and its metrics endpoint, scraped by curl once a check has finished.
    let loop_out = creds.path().join("drift-every.out");
    let mut every = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["drift", e, "--every", "1s", "--listen", "127.0.0.1:0", "-vv"])
        .env("RUST_LOG", "trace")
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::fs::File::create(&loop_out).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its log is read on a thread of its own all along: at trace level it fills any pipe.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = every.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("metrics on ") {
                let _ = tx.send(line.clone());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let first = rx.recv().expect("drift --every printed where its metrics are");
    let url = first[first.find("metrics on ").unwrap() + "metrics on ".len()..].trim().to_string();
    let metrics = loop {
        let got = Command::new("curl").args(["-sf", "--max-time", "5", &url]).output().unwrap();
        let text = String::from_utf8_lossy(&got.stdout).into_owned();
        if text.lines().any(|l| l.starts_with("groundwork_drift_checks_total") && !l.ends_with(" 0")) {
            break text;
        }
        // Poll the endpoint until the first check is in it.
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    every.kill().unwrap();
    every.wait().unwrap();
    let loop_log = reader.join().unwrap() + &std::fs::read_to_string(&loop_out).unwrap();
    artifacts.push(("metrics".into(), metrics));
    artifacts.push(("drift --every log".into(), loop_log));

    // What groundwork keeps on every host.
    for host in ["bastion", "ns1", "lb1"] {
        let kept = lab.ssh_ok(host, "find /var/lib/groundwork -type f -exec cat {} +");
        assert!(kept.contains("\"resources\""), "{host} has no ownership record:\n{kept}");
        artifacts.push((format!("/var/lib/groundwork on {host}"), kept));
    }

    // The content did reach where it belongs: the web server and the API.
    let served = |path: &str| {
        let out = Command::new("curl").args(["-sf", &format!("http://{}/{path}", lab.ip(10))]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(served("bootstrap.ign").contains(&content));
    assert!(served("master.ign").contains(&source));
    assert!(served("worker.ign").contains(&template) && served("worker.ign").contains("\"c\":\"lab\""));
    assert!(served("pull-secret.json").contains(&pull));
    let client = groundwork::transport::cluster::client(&lab.kubeconfig()).await.unwrap();
    let secret = Api::<Secret>::namespaced(client, "openshift-config").get("lab-credentials").await.unwrap();
    let got = secret.data.unwrap();
    assert_eq!(got["a"].0, data.as_bytes());
    assert_eq!(got["b"].0, string_data.as_bytes());

    // And nowhere else: no artifact holds any secret, raw or base64.
    let secrets = [
        ("ignition content", content.clone()),
        ("ignition source", source.clone()),
        ("ignition template", template.clone()),
        ("pull secret", pull.clone()),
        ("Secret data", data.clone()),
        ("Secret data (base64)", b64(&data)),
        ("Secret stringData", string_data.clone()),
        ("Secret stringData (base64)", b64(&string_data)),
        ("kubeconfig token", token.clone()),
        ("kubeconfig client key", key_data.clone()),
        ("kubeconfig client key (PEM)", key_line.clone()),
    ];
    let mut leaks = Vec::new();
    for (what, value) in &secrets {
        for (artifact, text) in &artifacts {
            if text.contains(value.as_str()) {
                leaks.push(format!("{what} in {artifact}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secret content leaked:\n{}", leaks.join("\n"));
}

/// A served path is relative and normalised when loaded; on the host, a symlink that leads out of the
/// docroot is refused before anything is written (real sshd and coreutils on the bastion).
#[test]
fn served_files_stay_inside_the_docroot_on_the_host() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let services = lab.env_dir().join("services.yaml");
    // `..` never gets past loading.
    replace_in(
        &services,
        "    - { path: pxeboot.ipxe,",
        "    - { path: ../../../../etc/MARKER, content: \"x\\n\" }\n    - { path: pxeboot.ipxe,",
    );
    let run = common::groundwork(&["validate", e]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("'..' component"), "{}", run.stderr);
    // A symlink planted in the docroot that points at /etc.
    replace_in(&services, "../../../../etc/MARKER", "conf/MARKER");
    lab.ssh_ok("bastion", "mkdir -p /usr/share/nginx/html && ln -s /etc /usr/share/nginx/html/conf");
    let run = common::groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("leads out of /usr/share/nginx/html"), "{}", run.stdout);
    assert!(!lab.ssh("bastion", "test -e /etc/MARKER").status.success(), "/etc/MARKER was written");
    // Everything else went on.
    assert!(lab.ssh_ok("bastion", "cat /usr/share/nginx/html/pxeboot.ipxe").contains("#!ipxe"));
}

/// Values that once broke out of their config files now render inside them, read back as declared by
/// the real daemons' own tools (dig, firewall-cmd), and a re-plan is empty; an entry added on a host
/// by hand is reported as drift and taken away.
#[test]
fn hostile_values_stay_in_their_place_and_extra_entries_are_drift() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let env = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    let txt = "say \"hi\"; \\ {x} $(reboot) ${y}\nm1 IN A 10.88.0.99";
    // A JSON string is a YAML double-quoted scalar with the same escapes.
    let record = format!(
        "dns:\n  records:\n    - {{ name: note, type: TXT, value: {} }}\n",
        serde_json::to_string(txt).unwrap()
    );
    std::fs::write(&env, format!("{text}{record}")).unwrap();
    let services = lab.env_dir().join("services.yaml");
    let description = r#"OpenShift <machine> config & "access" $(reboot) ${x}"#;
    replace_in(
        &services,
        "{ description: OpenShift machine config access,",
        &format!("{{ description: '{description}',"),
    );

    let run = common::groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let again = common::groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "read back as declared, so nothing to do:\n{}", again.stdout);
    // dig sees one TXT record with exactly the declared bytes, and m1 keeps its single address.
    assert_eq!(
        lab.dig(&["note.lab.example.test", "TXT"]),
        r#""say \"hi\"; \\ {x} $(reboot) ${y}\010m1 IN A 10.88.0.99""#
    );
    assert_eq!(lab.dig(&["m1.lab.example.test", "A"]), lab.ip(21));
    let info = lab.ssh_ok("lb1", "firewall-cmd -v --permanent --info-service=machine-config");
    assert!(info.contains(description), "{info}");

    // By hand: an extra host block in dhcpd.conf and an extra A record in the zone.
    lab.ssh_ok(
        "ns1",
        &format!(
            "printf 'host evil {{ hardware ethernet 52:54:00:00:00:99; fixed-address {}; }}\\n' >> /etc/dhcp/dhcpd.conf && printf 'evil IN A {}\\n' >> /var/named/lab.example.test.zone",
            lab.ip(99),
            lab.ip(99)
        ),
    );
    let drift = common::groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.stdout);
    assert!(drift.stdout.contains(&format!("- host evil 52:54:00:00:00:99 → {}", lab.ip(99))), "{}", drift.stdout);
    assert!(drift.stdout.contains(&format!("- A evil.lab.example.test {}", lab.ip(99))), "{}", drift.stdout);
    let run = common::groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!lab.ssh_ok("ns1", "cat /etc/dhcp/dhcpd.conf").contains("evil"));
    assert_eq!(lab.dig(&["evil.lab.example.test", "A"]), "");
}

/// A lock that could not be written whole leaves nothing behind; one that reads as garbage is named
/// "corrupt" (not "not locked") and force-unlock clears it; the temp file a killed upload left in the
/// docroot is found and removed by the next apply, and reported.
#[test]
fn locks_and_leftovers_recover_by_themselves() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let apply = || common::groundwork(&["apply", e, "--auto-approve"]);
    let run = apply();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lock = "/var/lib/groundwork/lab.lock";
    let nodes = lab.env_dir().join("nodes.yaml");
    replace_in(&nodes, &format!("ip: {} }}", lab.ip(32)), &format!("ip: {} }}", lab.ip(36)));

    // A full disk on ns1 where the lock goes: refused, and no lock file anywhere (whole or not at all).
    let full = lab.in_host("ns1", "mount -t tmpfs -o size=8k gw-full /var/lib/groundwork && dd if=/dev/zero of=/var/lib/groundwork/fill bs=1k count=64 2>/dev/null; df /var/lib/groundwork | tail -1");
    assert!(full.status.success(), "{}", String::from_utf8_lossy(&full.stderr));
    let run = apply();
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cannot take the lock (nothing was written)"), "{}", run.stderr);
    for host in ["bastion", "ns1", "lb1"] {
        assert!(!lab.ssh(host, &format!("test -e {lock}")).status.success(), "a lock was left on {host}");
        assert_eq!(lab.ssh_ok(host, "ls -A /var/lib/groundwork | grep -c groundwork-lock || true").trim(), "0");
    }
    assert!(lab.in_host("ns1", "umount /var/lib/groundwork").status.success());

    // An empty lock file (what a full disk used to leave): plan names it, apply refuses, force-unlock clears.
    lab.ssh_ok("lb1", &format!(": > {lock}"));
    let plan = common::groundwork(&["plan", e]);
    assert!(plan.stdout.contains("corrupt lock") && plan.stdout.contains("force-unlock corrupt"), "{}", plan.stdout);
    let run = apply();
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("corrupt lock") && run.stderr.contains("groundwork force-unlock corrupt"),
        "{}",
        run.stderr
    );
    let cleared = common::groundwork(&["force-unlock", "corrupt", e]);
    assert_eq!(cleared.code, 0, "{}{}", cleared.stdout, cleared.stderr);
    assert!(cleared.stdout.contains("Removed corrupt lock"), "{}", cleared.stdout);
    let run = apply();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // kill -9 during a 1 GiB upload: its temp file stays in the docroot (and so does its lock).
    let big = lab.env_dir().join("big.img");
    let services = lab.env_dir().join("services.yaml");
    replace_in(
        &services,
        "    - { path: pxeboot.ipxe,",
        "    - { path: big.img, source: big.img }\n    - { path: pxeboot.ipxe,",
    );
    let docroot = "/usr/share/nginx/html";
    let mut leftover = None;
    for attempt in 0..8u8 {
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(1 << 30).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, &[attempt + 1], 0).unwrap();
        drop(f);
        let mut child = Command::new(env!("CARGO_BIN_EXE_groundwork"))
            .args(["apply", e, "--auto-approve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Watch the docroot from inside bastion until the upload's temp file is there.
        loop {
            let seen = lab.in_host("bastion", &format!("ls -A {docroot} | grep '^\\.groundwork-' | head -1"));
            let name = String::from_utf8_lossy(&seen.stdout).trim().to_string();
            if !name.is_empty() {
                child.kill().unwrap();
                child.wait().unwrap();
                // The host's side of the upload ends on its own once the channel is gone: when it gets to
                // run its exit trap it removes the temp file itself (nothing is left to sweep), when the
                // closed channel kills it first the file stays. Wait for it to end, then look.
                // `[.]`: the pattern must not match the shell that runs pgrep (its own command line).
                let pattern = format!("of={docroot}/[.]{}", name.trim_start_matches('.'));
                let running = format!("pgrep -f '{pattern}' || true");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !String::from_utf8_lossy(&lab.in_host("bastion", &running).stdout).trim().is_empty() {
                    assert!(std::time::Instant::now() < deadline, "the host's upload did not end");
                    std::thread::yield_now();
                }
                let still = lab.in_host("bastion", &format!("test -e {docroot}/{name} && echo yes"));
                if String::from_utf8_lossy(&still.stdout).trim() == "yes" {
                    leftover = Some(name);
                } else {
                    // Cleaned up by the host: release the killed run's lock and try again.
                    let held: serde_json::Value =
                        serde_json::from_str(&lab.ssh_ok("bastion", &format!("cat {lock}"))).unwrap();
                    let id = held["id"].as_str().unwrap().to_string();
                    assert_eq!(common::groundwork(&["force-unlock", &id, e]).code, 0);
                }
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break; // the upload finished before it was seen: try again with other content
            }
        }
        if leftover.is_some() {
            break;
        }
    }
    let name = leftover.expect("a temp file during the upload");
    let size: u64 = lab.ssh_ok("bastion", &format!("stat -c %s {docroot}/{name}")).trim().parse().unwrap();
    let held = lab.ssh_ok("bastion", &format!("cat {lock}"));
    let id: serde_json::Value = serde_json::from_str(&held).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let cleared = common::groundwork(&["force-unlock", &id, e]);
    assert_eq!(cleared.code, 0, "{}{}", cleared.stdout, cleared.stderr);

    let run = apply();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("removed {docroot}/{name} on bastion ({size} bytes): left by an interrupted run")),
        "{}",
        run.stdout
    );
    assert!(!lab.ssh("bastion", &format!("test -e {docroot}/{name}")).status.success());
    assert_eq!(lab.ssh_ok("bastion", &format!("stat -c %s {docroot}/big.img")).trim(), (1u64 << 30).to_string());
    assert_eq!(common::groundwork(&["plan", e, "--detailed-exitcode"]).code, 0);
}
