//! A lab of real daemons for one test: `scripts/lab.sh up` with its own index (bridge gwlabN,
//! 10.88.N.0/24), torn down on drop. Each test binary takes indices from its own range.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Lab {
    pub index: u32,
    /// A copy of environments/lab rewritten for this lab's addresses and key paths.
    pub env: tempfile::TempDir,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_sh(index: u32, verb: &str) -> Output {
    lab_sh_with(index, &[verb], &[])
}

fn lab_sh_with(index: u32, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/lab.sh"))
        .args(args)
        .env("GW_LAB_INDEX", index.to_string())
        // Packages are installed once by scripts/test.sh, never by tests running side by side.
        .env("GW_LAB_DEPS", "check")
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/lab.sh")
}

/// The API simulator's binary (sim/kubesim, its own crate so that the product binary does not link it),
/// built once per test process: `cargo test --test X` builds only this package's binaries.
pub fn sim_binary() -> &'static str {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let ours = Path::new(env!("CARGO_BIN_EXE_groundwork"));
        let release = ours.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "--locked", "--quiet", "-p", "groundwork-kubesim", "--bin", "groundwork-kubesim"])
            .current_dir(repo());
        if release {
            c.arg("--release");
        }
        let out = c.output().expect("run cargo build for the simulator");
        assert!(out.status.success(), "building groundwork-kubesim: {}", String::from_utf8_lossy(&out.stderr));
        let bin = ours.with_file_name("groundwork-kubesim");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin.to_string_lossy().into_owned()
    })
}

fn must(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// Bring up the next lab of the range starting at `base` (one range per test binary).
    pub fn up(base: u32, counter: &AtomicU32) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        must(lab_sh(index, "up"), &format!("lab {index} did not come up"));
        Lab::with_env(index, &["environment.yaml", "nodes.yaml", "services.yaml"])
    }

    /// A lab whose API is the project's simulator (started with `sim_env`, e.g. GW_SIM_HOSTILE), served
    /// on the bootstrap and master stand-ins behind haproxy; the environment includes openshift.yaml.
    pub fn up_with_cluster(base: u32, counter: &AtomicU32, sim_env: &[(&str, &str)]) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        must(lab_sh_with(index, &["up"], &[("GW_LAB_API", "sim")]), &format!("lab {index} did not come up"));
        let mut env = vec![("GW_LAB_API", "sim")];
        env.extend_from_slice(sim_env);
        must(lab_sh_with(index, &["sim", sim_binary()], &env), &format!("the simulator of lab {index} did not start"));
        Lab::with_cluster_env(index)
    }

    /// A lab with every infra role doubled (GW_LAB_HA=1: lb2, ns2) and the API simulator, with
    /// environments/lab-ha's hosts and the lab's nodes, services and cluster side.
    pub fn up_ha_with_cluster(base: u32, counter: &AtomicU32) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        let mode = [("GW_LAB_API", "sim"), ("GW_LAB_HA", "1")];
        must(lab_sh_with(index, &["up"], &mode), &format!("lab {index} did not come up"));
        must(lab_sh_with(index, &["sim", sim_binary()], &mode), &format!("the simulator of lab {index} did not start"));
        let lab = Lab::with_cluster_env(index);
        let text = std::fs::read_to_string(repo().join("environments/lab-ha/environment.yaml")).expect("read lab-ha");
        std::fs::write(lab.env.path().join("environment.yaml"), Lab::rewrite_for(index, &text)).expect("write lab-ha");
        lab
    }

    /// A lab with the node stand-ins of a second cluster (GW_LAB_CLUSTERS=2: b0-b3 and lb1's .8), whose
    /// environment (the lab's) says its infra hosts are shared: tests/data/two-clusters has the other.
    pub fn up_two_clusters(base: u32, counter: &AtomicU32) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        must(lab_sh_with(index, &["up"], &[("GW_LAB_CLUSTERS", "2")]), &format!("lab {index} did not come up"));
        let lab = Lab::with_env(index, &["environment.yaml", "nodes.yaml", "services.yaml"]);
        lab.share_infra();
        lab
    }

    /// [`Lab::up_two_clusters`] with the API simulator (started with `sim_env`) and the lab cluster's
    /// openshift side.
    pub fn up_two_clusters_with_cluster(base: u32, counter: &AtomicU32, sim_env: &[(&str, &str)]) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        let mode = [("GW_LAB_API", "sim"), ("GW_LAB_CLUSTERS", "2")];
        must(lab_sh_with(index, &["up"], &mode), &format!("lab {index} did not come up"));
        let mut env = mode.to_vec();
        env.extend_from_slice(sim_env);
        must(lab_sh_with(index, &["sim", sim_binary()], &env), &format!("the simulator of lab {index} did not start"));
        let lab = Lab::with_cluster_env(index);
        lab.share_infra();
        lab
    }

    /// The lab's environment says its infra hosts are shared (`cluster.shared_infra`).
    fn share_infra(&self) {
        let yaml = self.env.path().join("environment.yaml");
        let text = std::fs::read_to_string(&yaml).expect("environment.yaml");
        let shared = "cluster: { name: lab, base_domain: example.test, shared_infra: true }";
        let text = text.replace("cluster: { name: lab, base_domain: example.test }", shared);
        assert!(text.contains(shared));
        std::fs::write(&yaml, text).expect("write environment.yaml");
    }

    /// The lab environment with its cluster side: openshift.yaml and the day-2 manifests.
    fn with_cluster_env(index: u32) -> Lab {
        let lab = Lab::with_env(index, &["environment.yaml", "nodes.yaml", "services.yaml", "openshift.yaml"]);
        let manifests = lab.env.path().join("cluster");
        std::fs::create_dir_all(&manifests).expect("mkdir cluster");
        for e in std::fs::read_dir(repo().join("environments/lab/cluster")).expect("read manifests") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, manifests.join(p.file_name().expect("name"))).expect("copy manifest");
        }
        lab
    }

    /// A lab in the simulator's API mode whose simulator is not started yet: see
    /// [`Lab::spawn_sim_from_ignition`]. The environment includes openshift.yaml.
    pub fn up_without_sim(base: u32, counter: &AtomicU32) -> Lab {
        let index = base + counter.fetch_add(1, Ordering::SeqCst);
        assert!(index <= 250, "lab index {index} out of range");
        must(lab_sh_with(index, &["up"], &[("GW_LAB_API", "sim")]), &format!("lab {index} did not come up"));
        Lab::with_cluster_env(index)
    }

    /// The bootstrap boots when its ignition is served: `lab.sh sim` in the background, waiting up to
    /// `secs` for bastion to serve a bootstrap.ign with the installer's API identity, then serving with it.
    pub fn spawn_sim_from_ignition(&self, secs: u32) -> std::process::Child {
        Command::new("bash")
            .arg(repo().join("scripts/lab.sh"))
            .args(["sim", sim_binary()])
            .env("GW_LAB_INDEX", self.index.to_string())
            .env("GW_LAB_DEPS", "check")
            .env("GW_LAB_API", "sim")
            .env("GW_SIM_FROM_IGNITION", secs.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run scripts/lab.sh sim")
    }

    fn with_env(index: u32, files: &[&str]) -> Lab {
        let env = tempfile::tempdir().expect("tempdir");
        for f in files {
            let text = std::fs::read_to_string(repo().join("environments/lab").join(f)).expect("read lab env");
            std::fs::write(env.path().join(f), Lab::rewrite_for(index, &text)).expect("write lab env");
        }
        Lab { index, env }
    }

    /// Remove the lines of the environment's environment.yaml that contain any of `keys` (e.g. `identity:`,
    /// to make a test find its key another way).
    pub fn drop_env_lines(&self, keys: &[&str]) {
        let yaml = self.env_dir().join("environment.yaml");
        let text = std::fs::read_to_string(&yaml).expect("environment.yaml");
        let kept: String =
            text.lines().filter(|l| !keys.iter().any(|k| l.contains(k))).map(|l| format!("{l}\n")).collect();
        std::fs::write(&yaml, kept).expect("write environment.yaml");
    }

    /// `scripts/lab.sh jump-only HOST...`: those hosts' sshd answers only from inside the lab.
    pub fn jump_only(&self, hosts: &[&str]) {
        let mut args = vec!["jump-only"];
        args.extend_from_slice(hosts);
        must(lab_sh_with(self.index, &args, &[]), "lab.sh jump-only");
    }

    /// Run a shell command inside an infra host's namespaces (net, mount, UTS, PID) without SSH: for
    /// faults that take SSH away. Only that host's processes are visible to it.
    pub fn in_host(&self, host: &str, command: &str) -> Output {
        let pid = std::fs::read_to_string(self.state().join("hosts").join(host).join("init.pid")).expect("init.pid");
        Command::new("nsenter")
            .args(["-t", pid.trim(), "-n", "-m", "-u", "-p", "--", "sh", "-c", command])
            .output()
            .expect("nsenter")
    }

    /// The simulator's kubeconfig (written by `scripts/lab.sh sim`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state().join("kubeconfig")
    }

    /// One request to the simulator's API with curl (the kubeconfig's server, token and CA): the status
    /// code and the reply's JSON.
    pub fn api(&self, method: &str, path_and_query: &str, content_type: &str, body: &str) -> (u16, serde_json::Value) {
        use base64::Engine;
        let text = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let kc: serde_json::Value = groundwork_sdk::yaml::from_str(&text).expect("kubeconfig YAML");
        let server = kc["clusters"][0]["cluster"]["server"].as_str().expect("server").to_string();
        let token = kc["users"][0]["user"]["token"].as_str().expect("token").to_string();
        let ca = base64::engine::general_purpose::STANDARD
            .decode(kc["clusters"][0]["cluster"]["certificate-authority-data"].as_str().expect("CA"))
            .expect("CA base64");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.crt"), ca).expect("write CA");
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(dir.path().join("ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {token}"), "-H", &format!("Content-Type: {content_type}")])
            .args(if body.is_empty() { vec![] } else { vec!["--data-binary", body] })
            .arg(format!("{server}{path_and_query}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (reply, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl: {text}"));
        let json = serde_json::from_str(reply).unwrap_or_else(|e| panic!("not JSON ({e}): {reply}"));
        (code.trim().parse().expect("status code"), json)
    }

    /// What the simulator has served, by verb (`get`, `list`, `watch`, …).
    pub fn sim_requests(&self) -> serde_json::Value {
        let (code, counts) = self.api("GET", "/sim/requests", "application/json", "");
        assert_eq!(code, 200, "{counts}");
        counts
    }

    /// Lab 0's addresses, MACs and paths → this lab's.
    pub fn rewrite_for(index: u32, text: &str) -> String {
        text.replace("10.88.0.", &format!("10.88.{index}."))
            .replace("/tmp/groundwork-lab/0/", &format!("/tmp/groundwork-lab/{index}/"))
            .replace("52:54:00:00:00:", &format!("52:54:00:00:{index:02x}:"))
            .replace("52:54:00:01:00:", &format!("52:54:00:01:{index:02x}:"))
    }

    pub fn rewrite(&self, text: &str) -> String {
        Lab::rewrite_for(self.index, text)
    }

    pub fn ip(&self, last: u8) -> String {
        format!("10.88.{}.{last}", self.index)
    }

    pub fn host_ip(&self, host: &str) -> String {
        self.ip(match host {
            "bastion" => 10,
            "ns1" => 2,
            "lb1" => 3,
            "dns0" => 53,
            other => panic!("no infra host {other}"),
        })
    }

    pub fn state(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/groundwork-lab/{}", self.index))
    }

    pub fn env_dir(&self) -> &Path {
        self.env.path()
    }

    pub fn env_str(&self) -> &str {
        self.env.path().to_str().expect("utf-8 path")
    }

    /// How groundwork's SSH transport reaches an infra host of this lab.
    pub fn ssh_options(&self, host: &str) -> groundwork::transport::ssh::SshOptions {
        groundwork::transport::ssh::SshOptions {
            address: self.host_ip(host),
            port: 22,
            user: "root".into(),
            identities: vec![self.state().join("id_ed25519")],
            identities_only: true,
            known_hosts: vec![self.state().join("known_hosts")],
            accept_new_host_keys: false,
            connect_timeout: std::time::Duration::from_secs(5),
            command_timeout: std::time::Duration::from_secs(60),
            max_channels: 8,
            via: None,
        }
    }

    /// Run a command on an infra host with the OpenSSH client (a real client, independent of ours).
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        let s = self.state();
        Command::new("ssh")
            .args(["-i", s.join("id_ed25519").to_str().unwrap_or_default()])
            .args(["-o", &format!("UserKnownHostsFile={}", s.join("known_hosts").display())])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .arg(format!("root@{}", self.host_ip(host)))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// stdout of a command that must succeed on an infra host.
    pub fn ssh_ok(&self, host: &str, command: &str) -> String {
        let out = self.ssh(host, command);
        assert!(
            out.status.success(),
            "`{command}` on {host} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Reboot an infra host (`scripts/lab.sh reboot`): every process of its PID namespace stops, its
    /// /run is emptied, and what is enabled starts. Returns once its boot sequence has finished.
    pub fn reboot(&self, host: &str) {
        must(lab_sh_with(self.index, &["reboot", host], &[]), &format!("reboot of {host}"));
    }

    /// Run a command inside a node namespace (gwN-NAME).
    pub fn in_node(&self, node: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("gw{}-{node}", self.index)])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Lab {
    /// `dig +short` against the lab's name server.
    pub fn dig(&self, args: &[&str]) -> String {
        let out = Command::new("dig")
            .arg(format!("@{}", self.host_ip("ns1")))
            .args(["+short", "+time=2", "+tries=2"])
            .args(args)
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The SOA serial the lab's name server answers for a zone.
    pub fn serial(&self, zone: &str) -> u32 {
        let soa = self.dig(&[zone, "SOA"]);
        soa.split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no SOA for {zone}: {soa:?}"))
    }

    /// Boot a node namespace by DHCP (its veth carries the pinned MAC): the address it was offered.
    pub fn dhcp_lease(&self, node: &str) -> Option<String> {
        lease_value(&self.dhcp_lease_file(node)?, "fixed-address ")
    }

    /// The address leased to `node` by a real dhclient, the server that leased it, and the name servers
    /// it handed out.
    pub fn dhcp_lease_and_server(&self, node: &str) -> Option<(String, String, String)> {
        let leases = self.dhcp_lease_file(node)?;
        Some((
            lease_value(&leases, "fixed-address ")?,
            lease_value(&leases, "option dhcp-server-identifier ")?,
            lease_value(&leases, "option domain-name-servers ")?,
        ))
    }

    /// dhclient's lease file after one run with the node's pinned MAC (None: no lease).
    fn dhcp_lease_file(&self, node: &str) -> Option<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let lf = dir.path().join("leases");
        let pf = dir.path().join("pid");
        let script = self.state().join("dhclient-script");
        let got = self.in_node(
            node,
            &[
                "timeout",
                "20",
                "dhclient",
                "-1",
                "-sf",
                script.to_str()?,
                "-lf",
                lf.to_str()?,
                "-pf",
                pf.to_str()?,
                "eth0",
            ],
        );
        // dhclient stays in the background holding the lease: stop it (its pidfile is ours).
        self.in_node(node, &["dhclient", "-x", "-pf", pf.to_str()?, "eth0"]);
        if !got.status.success() {
            return None;
        }
        std::fs::read_to_string(&lf).ok()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = lab_sh(self.index, "down");
        if !out.status.success() {
            eprintln!("lab {} down failed: {}", self.index, String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The last value of a lease-file option (`fixed-address 10.88.0.33;` → `10.88.0.33`).
fn lease_value(leases: &str, key: &str) -> Option<String> {
    leases.lines().rev().find_map(|l| l.trim().strip_prefix(key)).map(|a| a.trim_end_matches(';').to_string())
}
