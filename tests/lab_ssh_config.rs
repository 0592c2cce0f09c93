//! OpenSSH conventions against the lab's real sshd: `~/.ssh/config` (aliases, users, identities,
//! UserKnownHostsFile) and ProxyJump for real, with lb1 and ns1 unreachable from this machine except
//! through the bastion.

mod common;

use common::lab::Lab;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 210;

/// groundwork with this HOME (whose .ssh/config is the one read) and no agent.
fn gw(home: &std::path::Path, args: &[&str]) -> common::Run {
    common::groundwork_env(args, &[("HOME", home.to_str().unwrap())], &["SSH_AUTH_SOCK"])
}

/// Connections sshd on `host` accepted, by the address they came from.
fn accepted_from(lab: &Lab, host: &str, from: &str) -> usize {
    let out = lab.in_host(host, "cat /var/log/gwlab/sshd.log");
    let log = String::from_utf8_lossy(&out.stdout);
    log.lines().filter(|l| l.contains("Accepted publickey") && l.contains(&format!(" from {from} port "))).count()
}

#[test]
fn proxy_jump_through_the_bastion_with_settings_from_ssh_config() {
    let lab = Lab::up(BASE, &NEXT);
    lab.jump_only(&["lb1", "ns1"]);
    // This machine cannot reach their sshd any more; the bastion can.
    for host in ["lb1", "ns1"] {
        let addr: std::net::SocketAddr = format!("{}:22", lab.host_ip(host)).parse().unwrap();
        assert!(std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).is_err(), "{host}");
        let probe =
            lab.in_host("bastion", &format!("bash -c 'exec 3<>/dev/tcp/{}/22 && echo open'", lab.host_ip(host)));
        assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "open", "{host} from the bastion");
    }

    // Identity and known_hosts come from ~/.ssh/config only: the environment names neither.
    lab.drop_env_lines(&["identity:", "known_hosts:"]);
    let home = tempfile::tempdir().unwrap();
    let state = lab.state();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    let config = format!(
        "# jump hosts by inventory name; the bastion is matched by its address\n\
         Host lb1 ns1\n    ProxyJump bastion\n\n\
         Host {net}.*\n    User root\n    IdentityFile {key}\n    IdentitiesOnly yes\n    UserKnownHostsFile {kh}\n",
        net = lab.ip(0).trim_end_matches(".0"),
        key = state.join("id_ed25519").display(),
        kh = state.join("known_hosts").display(),
    );
    std::fs::write(home.path().join(".ssh/config"), config).unwrap();

    let before = |h: &str, from: &str| accepted_from(&lab, h, from);
    let (lb1_0, ns1_0, bastion_0) =
        (before("lb1", &lab.host_ip("bastion")), before("ns1", &lab.host_ip("bastion")), before("bastion", &lab.ip(1)));
    let plan = gw(home.path(), &["plan", lab.env_str()]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("to add"), "{}", plan.stdout);
    // One connection per host for the whole run: lb1 and ns1 see theirs come from the bastion, and the
    // bastion sees one from this machine (the jump and its own resources share it).
    assert_eq!(accepted_from(&lab, "lb1", &lab.host_ip("bastion")), lb1_0 + 1);
    assert_eq!(accepted_from(&lab, "ns1", &lab.host_ip("bastion")), ns1_0 + 1);
    assert_eq!(accepted_from(&lab, "bastion", &lab.ip(1)), bastion_0 + 1);
    assert_eq!(accepted_from(&lab, "lb1", &lab.ip(1)), 0);

    let apply = gw(home.path(), &["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    // What was applied through the jump is really there (read with the real client, from the bastion).
    let cfg = lab.in_host("lb1", "cat /etc/haproxy/haproxy.cfg");
    assert!(String::from_utf8_lossy(&cfg.stdout).contains("backend"), "haproxy.cfg on lb1");
    let again = gw(home.path(), &["plan", lab.env_str(), "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);

    // Without the config, the same environment cannot reach lb1: the jump was needed, and the error
    // says which host and why.
    let empty_home = tempfile::tempdir().unwrap();
    let direct = gw(empty_home.path(), &["plan", lab.env_str()]);
    assert_ne!(direct.code, 0);
    assert!(direct.stderr.contains("lb1") || direct.stderr.contains("ns1"), "{}", direct.stderr);
}

#[test]
fn ssh_config_errors_are_clear_and_proxy_command_is_refused() {
    let lab = Lab::up(BASE, &NEXT);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/config"), "Host lb1\n    ProxyCommand nc %h %p\n").unwrap();
    let run = gw(home.path(), &["plan", lab.env_str()]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("ProxyCommand") && run.stderr.contains("ProxyJump"), "{}", run.stderr);
    // An explicit config file that is missing is an error, not silently no config.
    let yaml = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.replace("ssh:\n", "ssh:\n  config: ./no-such-ssh-config\n")).unwrap();
    let run = gw(home.path(), &["plan", lab.env_str()]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no-such-ssh-config"), "{}", run.stderr);
    // `config: none` ignores ~/.ssh/config (whose ProxyCommand would be refused).
    std::fs::write(&yaml, text.replace("ssh:\n", "ssh:\n  config: none\n")).unwrap();
    let run = gw(home.path(), &["plan", lab.env_str()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}
