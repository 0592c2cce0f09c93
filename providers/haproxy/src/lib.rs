//! # groundwork-haproxy
//!
//! One whole haproxy.cfg per lb host: TCP frontends for the API (6443), machine config (22623) and
//! ingress (80/443), backends by node IP from the inventory with health checks (`/readyz` over TLS for the
//! API, `/healthz` for machine config, TCP for ingress), the bootstrap server marked `backup` and tagged
//! so the install gates can remove it, and an admin stats socket. `haproxy -c` on the candidate before it
//! replaces the live file; graceful reload.

use groundwork_sdk::file::{self, ManagedFile, CANDIDATE};
use groundwork_sdk::joint::Block;
use groundwork_sdk::model::{Environment, Frontend, HostRole, NodeRole};
use groundwork_sdk::transport::{Cmd, Transport};
use groundwork_sdk::{Address, Error, Resource, TransportError};
use std::collections::BTreeSet;
use std::fmt::Write;

pub const PROVIDER: &str = "haproxy";
/// Tag on server lines of the bootstrap node (removed once bootstrap completes).
pub const BOOTSTRAP_TAG: &str = "# groundwork:bootstrap";

fn health(fe: &Frontend) -> (&'static str, Option<&'static str>, &'static str) {
    // (balance, HTTP check path over TLS, server check options)
    match fe.port.get() {
        6443 => ("roundrobin", Some("/readyz"), "check check-ssl verify none inter 10s fall 2 rise 3"),
        22623 => ("roundrobin", Some("/healthz"), "check check-ssl verify none inter 10s fall 2 rise 3"),
        _ => ("source", None, "check inter 1s fall 2 rise 3"),
    }
}

/// Render haproxy.cfg for the environment.
pub fn render(env: &Environment) -> String {
    let mut s =
        format!("# Managed by groundwork for cluster {}. Changes made by hand are overwritten.\n", env.cluster.name);
    s.push_str(&render_global(env));
    s.push_str(&render_frontends(env, &[], ""));
    s
}

/// haproxy.cfg as parts for a load balancer several clusters share (`cluster.shared_infra`): the
/// global settings are the same in every cluster's part; each cluster's frontends are named after it
/// and bound to its own VIPs on the host, each claiming its address and port.
pub fn render_blocks(env: &Environment, host: &str) -> Vec<Block> {
    let global =
        format!("# Managed by groundwork for {}: one part per cluster.\n{}", env.managed_for(), render_global(env));
    let mut vips: Vec<String> = env
        .hosts
        .get(host)
        .map(|h| match &h.vips {
            Some(v) => vec![v.internal, v.external],
            None => vec![h.address],
        })
        .unwrap_or_default()
        .into_iter()
        .map(|ip| match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        })
        .collect();
    vips.sort();
    vips.dedup();
    let prefix = format!("{}-", env.cluster.name);
    let own = format!("# Cluster {}.{}", env.cluster.name, render_frontends(env, &vips, &prefix));
    let claims =
        env.frontends().iter().flat_map(|fe| vips.iter().map(move |v| format!("{v}:{}", fe.port))).collect::<Vec<_>>();
    vec![Block::new("0 global", global), Block::new(format!("5 cluster {}", env.cluster.name), own).claiming(claims)]
}

/// global and defaults.
fn render_global(env: &Environment) -> String {
    let lb = &env.loadbalancer;
    let mut s = String::new();
    let _ = writeln!(s, "global");
    let _ = writeln!(s, "    log         127.0.0.1 local2");
    let _ = writeln!(s, "    chroot      /var/lib/haproxy");
    let _ = writeln!(s, "    maxconn     4000");
    let _ = writeln!(s, "    user        haproxy");
    let _ = writeln!(s, "    group       haproxy");
    let _ = writeln!(s, "    stats socket {} mode 600 level admin", lb.stats_socket);
    let _ = writeln!(s);
    let _ = writeln!(s, "defaults");
    for line in [
        "mode                    tcp",
        "log                     global",
        "option                  tcplog",
        "option                  dontlognull",
        "retries                 3",
        "option                  redispatch",
        "timeout connect         10s",
        "timeout client          1m",
        "timeout server          1m",
        "timeout check           10s",
        "maxconn                 3000",
    ] {
        let _ = writeln!(s, "    {line}");
    }
    let _ =
        writeln!(s, "    # Servers are addressed by IP from the inventory. Should a name ever be used, a start or a");
    let _ =
        writeln!(s, "    # reload must not fail because it does not resolve yet (nodes are added before they boot).");
    let _ = writeln!(s, "    default-server init-addr last,libc,none");
    s
}

/// The frontends and their backends, bound to `binds` (every address when empty), named with `prefix`.
fn render_frontends(env: &Environment, binds: &[String], prefix: &str) -> String {
    let mut s = String::new();
    for fe in env.frontends() {
        let (balance, http_check, opts) = health(&fe);
        let name = format!("{prefix}{}", fe.name);
        let _ = writeln!(s);
        let _ = writeln!(s, "frontend {name}");
        if binds.is_empty() {
            let _ = writeln!(s, "    bind *:{}", fe.port);
        }
        for b in binds {
            let _ = writeln!(s, "    bind {b}:{}", fe.port);
        }
        let _ = writeln!(s, "    default_backend {name}");
        let _ = writeln!(s);
        let _ = writeln!(s, "backend {name}");
        let _ = writeln!(s, "    balance {balance}");
        if let Some(path) = http_check {
            let _ = writeln!(s, "    option httpchk GET {path} HTTP/1.0");
            let _ = writeln!(s, "    option log-health-checks");
            let _ = writeln!(s, "    http-check expect status 200");
        }
        for b in &fe.backends {
            let Some(node) = env.node(&b.node) else { continue };
            if node.role == NodeRole::Bootstrap && env.phase.passed(groundwork_sdk::Gate::BootstrapComplete) {
                continue;
            }
            let addr = match node.ip {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            if node.role == NodeRole::Bootstrap {
                let _ = writeln!(s, "    server {} {addr}:{} {opts} backup {BOOTSTRAP_TAG}", b.node, b.port);
            } else {
                let _ = writeln!(s, "    server {} {addr}:{} {opts}", b.node, b.port);
            }
        }
    }
    s
}

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let lb = &env.loadbalancer;
    let mut out = Vec::new();
    for (host, _) in env.hosts_with_role(HostRole::Lb) {
        let mut mf = match env.cluster.shared_infra {
            true => ManagedFile::joint(lb.config.to_string(), render_blocks(env, host)),
            false => ManagedFile::new(lb.config.to_string(), render(env)),
        };
        mf.mode = Some(0o644);
        mf.check = vec![vec!["haproxy".into(), "-c".into(), "-q".into(), "-f".into(), CANDIDATE.into()]];
        mf.activate = Some(lb.reload.to_vec());
        out.push(Resource::new(Address::new(PROVIDER, "config", Some(host), lb.config.to_string()), mf)?);
    }
    Ok(out)
}

/// What a haproxy.cfg declares, as read back: frontends (name, bind port, default backend) and backend
/// servers (backend, server, address), in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaproxyEntries {
    pub frontends: Vec<(String, String, String)>,
    pub servers: Vec<(String, String, String)>,
    /// For each frontend, in the order of `frontends`: its line and its `bind` addresses as written
    /// (`*:6443`, `10.0.0.5:443`).
    pub frontend_lines: Vec<usize>,
    pub binds: Vec<Vec<String>>,
    /// The line of each server, in the order of `servers`.
    pub server_lines: Vec<usize>,
}

/// Read any haproxy.cfg: `frontend`/`listen` sections with their `bind` and `default_backend`, and the
/// `server` lines of `backend`/`listen` sections.
pub fn read_config(text: &str) -> HaproxyEntries {
    let mut out = HaproxyEntries::default();
    let mut section: Option<(String, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [kind @ ("frontend" | "backend" | "listen"), name, ..] => {
                section = Some((kind.to_string(), name.to_string()));
                if *kind != "backend" {
                    out.frontends.push((name.to_string(), String::new(), String::new()));
                    out.frontend_lines.push(n + 1);
                    out.binds.push(Vec::new());
                }
            }
            ["global" | "defaults", ..] => section = None,
            ["bind", addr, ..] => {
                if let (Some((k, _)), Some(fe)) = (&section, out.frontends.last_mut()) {
                    if k != "backend" {
                        fe.1 = addr.rsplit(':').next().unwrap_or_default().to_string();
                        if let Some(b) = out.binds.last_mut() {
                            b.push(addr.to_string());
                        }
                    }
                }
            }
            ["default_backend", name, ..] => {
                if let Some(fe) = out.frontends.last_mut() {
                    fe.2 = name.to_string();
                }
            }
            ["server", name, addr, ..] => {
                if let Some((k, backend)) = &section {
                    if k != "frontend" {
                        out.servers.push((backend.clone(), name.to_string(), addr.to_string()));
                        out.server_lines.push(n + 1);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every `server` line as `server NAME in backend BACKEND (ADDR)`, from any haproxy.cfg.
pub fn servers(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["backend" | "listen", name, ..] => section = name.to_string(),
            ["frontend" | "global" | "defaults", ..] => section.clear(),
            ["server", name, addr, ..] if !section.is_empty() => {
                out.insert(format!("server {name} in backend {section} ({addr})"));
            }
            _ => {}
        }
    }
    out
}

/// One server's live state from the stats socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    /// UP, DOWN, MAINT, no check, …
    pub status: String,
}

/// Parse `show stat` CSV.
pub fn parse_show_stat(csv: &str) -> Vec<ServerState> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st)) = (idx("pxname"), idx("svname"), idx("status")) else { return Vec::new() };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let server = f.get(sv)?;
            if *server == "FRONTEND" || *server == "BACKEND" {
                return None;
            }
            Some(ServerState {
                backend: f.get(px)?.to_string(),
                server: server.to_string(),
                status: f.get(st)?.to_string(),
            })
        })
        .collect()
}

/// Live backend state through the admin socket (needs socat on the host, as RHEL's haproxy docs use).
pub async fn live_state(t: &dyn Transport, socket: &str) -> Result<Vec<ServerState>, TransportError> {
    let cmd = Cmd::new("socat").arg("stdio").arg(format!("UNIX-CONNECT:{socket}")).stdin(b"show stat\n".to_vec());
    let out = t.exec(&cmd).await?;
    if !out.success() {
        return Err(TransportError::Command {
            host: t.host().to_string(),
            command: cmd.to_string(),
            code: out.code,
            stderr: out.stderr_str(),
        });
    }
    Ok(parse_show_stat(&out.stdout_str()))
}

/// The provider: whole haproxy.cfg files, described by their backend servers.
pub fn provider() -> file::WholeFiles {
    file::WholeFiles {
        name: PROVIDER,
        details: |old, new| {
            groundwork_sdk::set_details(&old.map(servers).unwrap_or_default(), &new.map(servers).unwrap_or_default())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "backend worker_https\n    mode tcp\n    balance     source\n    server w1 w1.ocp45.example.localdomain:443  check\n    server w3 w3.ocp45.example.localdomain:80  check\nfrontend x\n    bind *:1\n";

    #[test]
    fn servers_by_backend() {
        let s: Vec<String> = servers(SEED).into_iter().collect();
        assert_eq!(
            s,
            vec![
                "server w1 in backend worker_https (w1.ocp45.example.localdomain:443)",
                "server w3 in backend worker_https (w3.ocp45.example.localdomain:80)",
            ]
        );
    }

    #[test]
    fn show_stat() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\napi,FRONTEND,,,0,0,,,,,,,,,,,,OPEN\napi,m1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP\napi,bs,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN\napi,BACKEND,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP\n";
        let st = parse_show_stat(csv);
        assert_eq!(st.len(), 2);
        assert_eq!(st[1], ServerState { backend: "api".into(), server: "bs".into(), status: "DOWN".into() });
    }
}
