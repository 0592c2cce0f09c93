//! What CI relies on: exit codes that mean one thing each, output into closed pipes, and no probe of the
//! network on behalf of local stand-in hosts.

mod common;

use common::{demo_env, groundwork, host_file};
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_usage_error_exits_1_never_2() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    // A mistyped flag: with --detailed-exitcode 2 means "changes present", so this must not be 2.
    let typo = groundwork(&["plan", e, "--detailed-exitcod"]);
    assert_eq!(typo.code, 1, "{}{}", typo.stdout, typo.stderr);
    assert!(typo.stderr.contains("--detailed-exitcod"), "{}", typo.stderr);
    assert_eq!(groundwork(&["no-such-command"]).code, 1);
    assert_eq!(groundwork(&["plan", e, "--lock-timeout", "5m"]).code, 1);
    // Help and version are not errors.
    let help = groundwork(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage:"), "{}", help.stdout);
    assert_eq!(groundwork(&["--version"]).code, 0);
    // The real thing: changes present is 2, none is 0.
    assert_eq!(groundwork(&["plan", e, "--detailed-exitcode"]).code, 2);
}

/// Run groundwork with its stdout a pipe whose only reader is closed before it writes a byte.
fn into_closed_pipe(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn groundwork");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    for args in [vec!["validate", e], vec!["drift", "--json", e], vec!["plan", e], vec!["graph", e]] {
        let (code, stderr) = into_closed_pipe(&args);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_ne!(code, 101, "{args:?}: {stderr}");
    }
    // An apply whose reader went away still finishes (and verifies) rather than dying half-way.
    let (code, stderr) = into_closed_pipe(&["apply", e, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(host_file(env.path(), "bastion", "/usr/share/nginx/html/pxeboot.ipxe").exists());
    assert_eq!(groundwork(&["plan", e, "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_cancelled_apply_exits_1_and_changes_nothing() {
    // `script` gives the apply a terminal, so it asks; the answer is "no".
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux `script` is needed for this test");
    }
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let line = format!("{} apply {e}", env!("CARGO_BIN_EXE_groundwork"));
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"no\n").expect("answer");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Only 'yes' will be accepted"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("apply cancelled"), "{text}");
    assert!(!host_file(env.path(), "bastion", "/usr/share/nginx/html/pxeboot.ipxe").exists());
}

#[test]
fn verify_never_probes_the_network_for_local_stand_ins() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    let run = groundwork(&["verify", e, "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("verify JSON");
    let probes = doc["probes"].as_array().expect("probes");
    let network: Vec<&serde_json::Value> =
        probes.iter().filter(|p| matches!(p["kind"].as_str(), Some("dns-a" | "dns-ptr" | "lb-tcp" | "http"))).collect();
    assert!(!network.is_empty(), "{}", run.stdout);
    for p in &network {
        assert_eq!(p["status"], "skipped", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("local stand-in"), "{p}");
    }
    assert!(!probes.iter().any(|p| p["kind"] == "lb-backend" && p["status"] != "skipped"), "{}", run.stdout);
    assert_eq!(doc["skipped"].as_u64(), Some(network.len() as u64 + 1));
    let text = groundwork(&["verify", e]);
    assert!(text.stdout.contains("skip lb-tcp"), "{}", text.stdout);
    assert!(!text.stdout.contains("ok   lb-tcp"), "{}", text.stdout);
}

#[test]
fn escape_sequences_from_a_host_cannot_rewrite_the_plan_on_a_terminal() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    // Someone on the host hides a line: "clear line, cursor up" in the middle of a served script.
    let f = host_file(env.path(), "bastion", "/usr/share/nginx/html/pxeboot.ipxe");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replacen("|| goto unknown", "|| goto unknown\x1b[2K\x1b[1A", 1)).unwrap();
    let plan = groundwork(&["plan", e]);
    assert!(!plan.stdout.contains('\x1b'), "a raw escape reached the terminal:\n{}", plan.stdout);
    assert!(plan.stdout.contains("|| goto unknown\\u{1b}[2K\\u{1b}[1A"), "{}", plan.stdout);
}

/// An inventory cannot make the machine that runs groundwork a managed host: a stand-in's root stays
/// inside the environment directory, and its commands run only when whoever runs groundwork allows it.
#[test]
fn an_inventory_cannot_steer_the_runner() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();

    for root in ["/", "../outside", "."] {
        std::fs::write(&yaml, text.replace("root: .hosts/bastion", &format!("root: {root}"))).unwrap();
        let run = groundwork(&["plan", e]);
        assert_eq!(run.code, 1, "root {root}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(&format!("root {root:?}")), "{}", run.stderr);
    }

    // run_commands on a stand-in, with a reload the inventory chose: not run unless allowed from outside.
    let marker = env.path().join("reload-ran");
    let steered = text
        .replace("run_commands: false", "run_commands: true")
        .replace("dns:\n  named_conf: null", "dns:\n  named_conf: null\n  reload: [touch, reload-ran]");
    std::fs::write(&yaml, &steered).unwrap();
    let run = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!marker.exists(), "an inventory ran a command on the runner");
    // The same with the operator's consent: the reload runs (so the gate above is what stopped it).
    std::fs::write(
        &yaml,
        steered.replace(
            "  - { name: w2,",
            "  - { name: w3, role: worker, mac: \"52:54:00:00:00:33\", ip: 10.88.0.33 }\n  - { name: w2,",
        ),
    )
    .unwrap();
    // (The other reloads, systemctl on this machine, fail: that is what running them here means.)
    std::process::Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["apply", e, "--auto-approve"])
        .env("GROUNDWORK_LOCAL_COMMANDS", "1")
        .current_dir(env.path())
        .output()
        .unwrap();
    assert!(marker.exists());

    // firewalld on a stand-in would be the runner's own firewalld: refused, saying why.
    std::fs::write(&yaml, format!("{text}firewall: {{ hosts: [bastion], services: [http] }}\n")).unwrap();
    let run = groundwork(&["plan", e]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("firewalld is managed with commands on the host"), "{}", run.stderr);
}

/// On a terminal (a pty from `script`) the progress bars are drawn, and log lines and results written
/// meanwhile come out whole: every log line of `-v` is intact and the run ends with its verdict.
#[test]
fn on_a_terminal_bars_and_log_lines_do_not_tear() {
    let env = demo_env();
    let cmd = format!("{} -v apply {} --auto-approve", env!("CARGO_BIN_EXE_groundwork"), env.path().display());
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("NO_COLOR", "1").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Verified"), "{text}");
    // Each `applied` log line (one per change) is written whole, after the bar was erased (`\r`, ESC[2K):
    // what follows the erase is the log line from its first character to its last.
    let segments: Vec<&str> =
        text.split(['\r', '\n']).map(|seg| seg.rsplit("\u{1b}[2K").next().unwrap_or(seg)).collect();
    let applied: Vec<&&str> = segments.iter().filter(|seg| seg.contains(" INFO ") && seg.contains("applied")).collect();
    assert_eq!(applied.len(), 23, "{text}");
    for seg in applied {
        assert!(seg.starts_with("20") && seg.contains("address=") && seg.trim_end().ends_with(']'), "{seg:?}");
    }
}

/// `manpages DIR`: a page per command, rendered by groff as man would, saying what --help says.
#[test]
fn man_pages_render_and_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = groundwork(&["manpages", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in ["groundwork.1", "groundwork-apply.1", "groundwork-drift.1", "groundwork-render-install-config.1"] {
        assert!(dir.path().join(page).exists(), "{page}: {}", run.stdout);
    }
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.path().join("groundwork-apply.1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for option in ["--auto-approve", "--lock-timeout", "--json", "Do not ask for confirmation"] {
        assert!(text.contains(option), "{option} missing:\n{text}");
    }
}

/// `drift --every` without `--listen` serves on loopback only: started in a network namespace of its
/// own (port 9810 is free there whatever runs beside the test), its one listening socket is read back
/// with ss.
#[test]
fn the_drift_loop_listens_on_loopback_unless_told_otherwise() {
    let env = demo_env();
    let script = r#"ip link set lo up
"$GW" drift "$ENV" --every 1h >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do ss -Hltn | grep -q . && break; sleep 0.05; done
ss -Hltn
kill "$pid""#;
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .env("GW", env!("CARGO_BIN_EXE_groundwork"))
        .env("ENV", env.path())
        .output()
        .expect("unshare");
    let listening: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect();
    assert_eq!(listening, ["127.0.0.1:9810"], "{}", String::from_utf8_lossy(&out.stderr));
}
