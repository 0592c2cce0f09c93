//! Public-key auth through ssh-agent (no identity file in the environment, no keys in ~/.ssh).

mod common;

use common::lab::Lab;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 40;

#[test]
fn authenticates_with_a_key_held_by_ssh_agent() {
    let lab = Lab::up(BASE, &NEXT);
    let home = tempfile::tempdir().unwrap();
    let sock = home.path().join("agent.sock");
    let agent = Command::new("ssh-agent").args(["-a", sock.to_str().unwrap()]).output().unwrap();
    assert!(agent.status.success());
    let pid: String = String::from_utf8_lossy(&agent.stdout)
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    let add = Command::new("ssh-add").arg(lab.state().join("id_ed25519")).env("SSH_AUTH_SOCK", &sock).output().unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    lab.drop_env_lines(&["identity:"]);
    let yaml = lab.env_dir().join("environment.yaml");

    let run = |sock: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_groundwork"));
        c.args(["plan", lab.env_str()]).env("HOME", home.path()).env("NO_COLOR", "1");
        match sock {
            Some(s) => c.env("SSH_AUTH_SOCK", s),
            None => c.env_remove("SSH_AUTH_SOCK"),
        };
        c.output().unwrap()
    };
    let with_agent = run(Some(&sock));
    let without = run(None);

    // A passphrase-protected copy of the key as the identity: used through the agent that holds the
    // key; without an agent it is named as skipped, never passed over silently.
    let locked = home.path().join("locked_key");
    std::fs::copy(lab.state().join("id_ed25519"), &locked).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "correct horse", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.replace("ssh:\n", &format!("ssh:\n  identity: {}\n", locked.display()))).unwrap();
    let locked_with_agent = run(Some(&sock));
    let locked_without = run(None);
    // The agent holds the only key: with it the plan runs, without it authentication fails.
    let _ = Command::new("kill").arg(pid.trim()).status();
    assert!(locked_with_agent.status.success(), "{}", String::from_utf8_lossy(&locked_with_agent.stderr));
    let err = String::from_utf8_lossy(&locked_without.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!locked_without.status.success());
    assert!(err.contains("protected by a passphrase and no ssh-agent holds it") && err.contains("locked_key"), "{err}");
    assert!(with_agent.status.success(), "{}", String::from_utf8_lossy(&with_agent.stderr));
    assert!(String::from_utf8_lossy(&with_agent.stdout).contains("to add"));
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("authentication to"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
}
