//! `verify`: behaviour probes, run from a host inside the network (by default the http host, where the
//! reference install ran its own dig and curl checks): DNS answers for every node, TCP to every LB
//! frontend, every served file over HTTP with its digest, ignition age, backend states from haproxy's
//! stats socket. What is expected is the environment in the install phase the cluster's gates put it in
//! (a retired bootstrap's boot script is gone on purpose).
//! Exit 0 all pass, 2 a probe failed, 1 error.

use super::{Workspace, EXIT_CHANGES, EXIT_OK};
use crate::engine::refresh::Answers;
use crate::error::{Error, Result};
use groundwork_sdk::cached::CachedTransport;
use groundwork_sdk::model::HostRole;
use groundwork_sdk::transport::{Cmd, Transport};
use groundwork_services::TableAsks;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

/// Files larger than this are checked by size (Content-Length), not by digest.
const DIGEST_LIMIT: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub ok: bool,
    /// Not run: its host is a local stand-in (a directory), which has no network of its own to probe.
    pub skipped: bool,
    pub kind: &'static str,
    pub target: String,
    pub detail: String,
}

impl Probe {
    fn new(ok: bool, kind: &'static str, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Probe { ok, skipped: false, kind, target: target.into(), detail: detail.into() }
    }

    fn skipped(kind: &'static str, target: impl Into<String>, host: &str) -> Self {
        Probe {
            ok: true,
            skipped: true,
            kind,
            target: target.into(),
            detail: format!("skipped: {host} is a local stand-in (transport: local), nothing was probed"),
        }
    }

    fn status(&self) -> &'static str {
        match (self.skipped, self.ok) {
            (true, _) => "skipped",
            (false, true) => "pass",
            (false, false) => "fail",
        }
    }
}

/// A local stand-in is a directory on this machine: a probe "from" it would run here and reach whatever
/// answers at the inventory's addresses on this machine's network, which says nothing about the hosts.
fn is_local(ws: &Workspace, host: &str) -> bool {
    ws.loaded.env.hosts.get(host).is_some_and(|h| h.transport == groundwork_sdk::model::TransportKind::Local)
}

/// One shell line per probe; its output is `PASS detail` or `FAIL detail`.
struct Check {
    kind: &'static str,
    target: String,
    /// argv run through `sh -c SCRIPT check ARGS` on the probe host.
    script: &'static str,
    args: Vec<String>,
    /// Why it matters when it fails.
    cause: String,
}

const DIG_A: &str = r#"got=$(dig +short +time=2 +tries=2 "@$1" "$2" A | tail -n1); if [ "$got" = "$3" ]; then echo "PASS $got"; else echo "FAIL answered '${got:-nothing}', expected $3"; fi"#;
const DIG_PTR: &str = r#"got=$(dig +short +time=2 +tries=2 "@$1" -x "$2" | tail -n1); if [ "$got" = "$3." ]; then echo "PASS $got"; else echo "FAIL answered '${got:-nothing}', expected $3."; fi"#;
const DIG_SERIAL: &str = r#"soa() { dig +short +time=2 +tries=2 "@$1" "$2" SOA | awk '{print $3}' | tail -n1; }; p=$(soa "$1" "$3"); s=$(soa "$2" "$3"); if [ -n "$p" ] && [ "$p" = "$s" ]; then echo "PASS serial $s, as the primary's"; else echo "FAIL serial ${s:-none}, the primary's ${p:-none}: the secondary lags"; fi"#;
const TCP: &str = r#"if timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "PASS accepts connections"; else echo "FAIL no TCP connection to $1:$2"; fi"#;
const HTTP: &str = r#"t=$(mktemp); code=$(curl -s -o "$t" -w '%{http_code}' --max-time 60 "$1"); size=$(stat -c %s "$t"); sum=$(sha256sum < "$t" | cut -c1-64); rm -f "$t"
if [ "$code" != 200 ]; then echo "FAIL HTTP $code"; elif [ -n "$2" ] && [ "$sum" != "$2" ]; then echo "FAIL digest $sum, expected $2"; elif [ "$size" != "$3" ]; then echo "FAIL $size bytes, expected $3"; else echo "PASS HTTP 200, $size bytes"; fi"#;
const HTTP_HEAD: &str = r#"out=$(curl -sI --max-time 10 "$1"); code=$(printf '%s' "$out" | head -n1 | cut -d' ' -f2); len=$(printf '%s' "$out" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')
if [ "$code" != 200 ]; then echo "FAIL HTTP $code"; elif [ "$len" != "$2" ]; then echo "FAIL Content-Length $len, expected $2"; else echo "PASS HTTP 200, $len bytes (size only)"; fi"#;

/// What is expected now: the environment in the phase the cluster's gates put it in, and the resources
/// active in that phase. A retired bootstrap's boot script and ignition are gone on purpose, not missing.
struct Expected {
    env: groundwork_sdk::model::Environment,
    resources: Vec<groundwork_sdk::Resource>,
}

impl Expected {
    async fn now(ws: &Workspace) -> Result<Expected> {
        let phase = crate::engine::gates::phase_of(&ws.gates().await?);
        let (resources, _) = crate::engine::gates::partition(ws.expand(&phase)?, &phase);
        Ok(Expected { env: ws.loaded.env.for_phase(&phase), resources: resources.into_owned() })
    }

    fn served_files(&self) -> impl Iterator<Item = groundwork_files::FileSpec> + '_ {
        self.resources
            .iter()
            .filter(|r| r.address.provider == "files")
            .filter_map(|r| r.spec::<groundwork_files::FileSpec>().ok())
    }
}

fn checks(x: &Expected) -> Vec<Check> {
    let env = &x.env;
    let domain = env.cluster.domain();
    let mut out = Vec::new();
    for (ns_name, ns) in env.hosts_with_role(HostRole::Dns) {
        let ns_ip = ns.address.to_string();
        for n in &env.nodes {
            let fqdn = format!("{}.{domain}", n.name);
            out.push(Check {
                kind: "dns-a",
                target: format!("{fqdn} @{ns_name}"),
                script: DIG_A,
                args: vec![ns_ip.clone(), fqdn.clone(), n.ip.to_string()],
                cause: format!("{} cannot be found by name; the installer and the LB health checks need it", n.name),
            });
            out.push(Check {
                kind: "dns-ptr",
                target: format!("{} @{ns_name}", n.ip),
                script: DIG_PTR,
                args: vec![ns_ip.clone(), n.ip.to_string(), fqdn.clone()],
                cause: "PTR missing or wrong: the node will register as localhost".into(),
            });
        }
        if let Some((_, lb)) = env.first_host_with_role(HostRole::Lb) {
            if let Some(v) = &lb.vips {
                for (name, ip, why) in [
                    ("api-int", v.internal, "nodes cannot reach the API server"),
                    ("api", v.external, "clients cannot reach the API server"),
                    ("test.apps", v.external, "*.apps wildcard missing: routes (console, oauth) do not resolve"),
                ] {
                    out.push(Check {
                        kind: "dns-a",
                        target: format!("{name}.{domain} @{ns_name}"),
                        script: DIG_A,
                        args: vec![ns_ip.clone(), format!("{name}.{domain}"), ip.to_string()],
                        cause: why.into(),
                    });
                }
            }
        }
    }
    // Secondaries serve what the primary serves: the same serial in every zone.
    if let Some(primary) = groundwork_bind::primary_address(env) {
        for (name, ip) in groundwork_bind::secondaries(env) {
            for zone in groundwork_bind::zone_names(env) {
                out.push(Check {
                    kind: "dns-serial",
                    target: format!("{zone} @{name}"),
                    script: DIG_SERIAL,
                    args: vec![primary.to_string(), ip.to_string(), zone.clone()],
                    cause: "the secondary has not transferred the zone (NOTIFY, the transfer key, or the primary's \
                            allow-transfer)"
                        .into(),
                });
            }
        }
    }
    if let Some((_, lb)) = env.first_host_with_role(HostRole::Lb) {
        if let Some(v) = &lb.vips {
            for fe in env.frontends() {
                for ip in [v.internal, v.external] {
                    out.push(Check {
                        kind: "lb-tcp",
                        target: format!("{}:{} ({})", ip, fe.port, fe.name),
                        script: TCP,
                        args: vec![ip.to_string(), fe.port.to_string()],
                        cause: "haproxy is not listening there, or firewalld blocks the port".into(),
                    });
                }
            }
        }
    }
    if let Some(base) = groundwork_files::http_base(env) {
        for spec in x.served_files() {
            let url = format!("{base}/{}", spec.url_path);
            let (script, args) = if spec.size <= DIGEST_LIMIT {
                (HTTP, vec![url.clone(), spec.sha256.clone(), spec.size.to_string()])
            } else {
                (HTTP_HEAD, vec![url.clone(), spec.size.to_string()])
            };
            out.push(Check {
                kind: "http",
                target: url,
                script,
                args,
                cause: "403: SELinux label (the file kept another type, e.g. admin_home_t) or file permissions; 404: not served"
                    .into(),
            });
        }
    }
    out
}

/// Run every probe from `from` (an infra host).
async fn probes(ws: &Workspace, x: &Expected, from: &str) -> Result<Vec<Probe>> {
    let mut results = Vec::new();
    if is_local(ws, from) {
        results.extend(checks(x).into_iter().map(|c| Probe::skipped(c.kind, c.target, from)));
    } else {
        results.extend(network_probes(ws, x, from).await?);
    }
    host_probes(ws, x, &mut results).await?;
    Ok(results)
}

/// DNS, TCP and HTTP probes, run on `from` (one exec per probe keeps each probe's arguments quoted;
/// they run concurrently on one connection).
async fn network_probes(ws: &Workspace, x: &Expected, from: &str) -> Result<Vec<Probe>> {
    let t = ws.hosts.transport(from).await?;
    let mut results = Vec::new();
    // One exec per probe keeps each probe's arguments quoted; they run concurrently on one connection.
    let runs = checks(x).into_iter().map(|c| {
        let t = t.clone();
        async move {
            let cmd = Cmd::new("bash").arg("-c").arg(c.script).arg("groundwork-verify").args(c.args.iter().cloned());
            let out = t.exec(&cmd).await;
            (c, out)
        }
    });
    for (c, out) in futures::future::join_all(runs).await {
        let out = out.map_err(|e| Error::Host { host: from.to_string(), message: e.to_string() })?;
        let line = out.stdout_str().lines().last().unwrap_or("FAIL no output").to_string();
        let ok = line.starts_with("PASS");
        let mut detail = line.trim_start_matches("PASS").trim_start_matches("FAIL").trim().to_string();
        if !ok {
            let _ = write!(detail, " — {}", c.cause);
        }
        results.push(Probe::new(ok, c.kind, c.target, detail));
    }
    Ok(results)
}

/// The other probes: ignition age (local), and each lb host's backend states.
async fn host_probes(ws: &Workspace, x: &Expected, results: &mut Vec<Probe>) -> Result<()> {
    // Ignition files: their certificates expire 24 h after generation.
    for spec in x.served_files() {
        if let (Some(age), Some(warn)) = (spec.age_hours, spec.warn_hours) {
            let (ok, detail) = if age >= 24 {
                (
                    false,
                    format!(
                        "{age} h old — its certificates have expired: nodes booting with it will fail; regenerate it"
                    ),
                )
            } else if age >= warn {
                (true, format!("{age} h old — its certificates expire 24 h after generation"))
            } else {
                (true, format!("{age} h old"))
            };
            results.push(Probe::new(ok, "ignition", spec.url_path.clone(), detail));
        }
    }
    // Shared VIPs: exactly one load balancer holds each (none: the API is down; two: split brain).
    for v in vip_holders(ws, &Answers::new()).await? {
        results.push(Probe::new(v.ok(), "vip", format!("{} ({})", v.vip, v.instance), v.describe()));
    }
    // Backend states, from the stats socket of each lb host (a down backend is reported, not failed:
    // during an install nodes come and go).
    for (lb, _) in ws.loaded.env.hosts_with_role(HostRole::Lb) {
        if is_local(ws, lb) {
            results.push(Probe::skipped("lb-backend", format!("{lb}: stats socket"), lb));
            continue;
        }
        let lt = ws.hosts.transport(lb).await?;
        match groundwork_haproxy::live_state(lt.as_ref(), &ws.loaded.env.loadbalancer.stats_socket).await {
            Ok(states) => {
                for s in states {
                    results.push(Probe::new(true, "lb-backend", format!("{lb}: {}/{}", s.backend, s.server), s.status));
                }
            }
            Err(e) => results.push(Probe::new(
                false,
                "lb-backend",
                format!("{lb}: stats socket"),
                format!("{e} — haproxy not running or the stats socket is missing"),
            )),
        }
    }
    Ok(())
}

/// Which load balancers hold a shared VIP now.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VipHolding {
    pub vip: std::net::IpAddr,
    pub instance: String,
    pub holders: Vec<String>,
    /// lb hosts whose addresses could not be read (they may hold it too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

impl VipHolding {
    /// Exactly one holder, and every lb host read.
    pub fn ok(&self) -> bool {
        self.holders.len() == 1 && self.unread.is_empty()
    }

    pub fn describe(&self) -> String {
        let base = match self.holders.as_slice() {
            [one] => format!("held by {one}"),
            [] => "held by no load balancer: nothing answers on it".to_string(),
            many => format!("split brain: held by {} at once", many.join(" and ")),
        };
        if self.unread.is_empty() {
            base
        } else {
            format!("{base} ({} could not be read)", self.unread.join(", "))
        }
    }
}

/// The load balancers [`vip_holders`] asks (over SSH; none without shared VIPs).
fn vip_hosts(ws: &Workspace) -> Vec<&str> {
    if groundwork_keepalived::instances(&ws.loaded.env).is_empty() {
        return Vec::new();
    }
    let lbs = ws.loaded.env.hosts_with_role(HostRole::Lb).map(|(lb, _)| lb.as_str());
    lbs.filter(|lb| !is_local(ws, lb)).collect()
}

/// The hosts [`service_rows`] asks: those that run commands over SSH.
fn service_hosts(env: &groundwork_sdk::model::Environment) -> Vec<&str> {
    if !env.services.manage {
        return Vec::new();
    }
    let hosts = env.hosts.iter();
    let asked = hosts.filter(|(_, h)| h.transport != groundwork_sdk::model::TransportKind::Local && h.run_commands);
    asked.map(|(name, _)| name.as_str()).collect()
}

/// Per host, the read-only queries of [`service_rows`] (when `table` is some, asking what it says)
/// and of [`vip_holders`]: a drift tick runs them in its plan's batch.
pub(crate) fn status_riders(ws: &Workspace, table: Option<TableAsks>) -> BTreeMap<String, Vec<Cmd>> {
    let mut riders: BTreeMap<String, Vec<Cmd>> = BTreeMap::new();
    for host in table.map(|_| service_hosts(&ws.loaded.env)).unwrap_or_default() {
        let queries = groundwork_services::status_queries(&ws.loaded.env, host, table.unwrap_or_default());
        if !queries.is_empty() {
            riders.entry(host.to_string()).or_default().extend(queries);
        }
    }
    for lb in vip_hosts(ws) {
        riders.entry(lb.to_string()).or_default().push(groundwork_keepalived::held_query());
    }
    riders
}

/// The host's transport; where `answers` holds answers for it (queries that rode along in a batch),
/// one that gives those first.
async fn answering(ws: &Workspace, host: &str, answers: &Answers) -> Result<Arc<dyn Transport>> {
    let t = ws.hosts.transport(host).await?;
    Ok(match answers.get(host) {
        Some(batch) => Arc::new(CachedTransport::new(t, batch.clone())),
        None => t,
    })
}

/// The holder of each VIP the load balancers share (keepalived): one `ip -o addr show` per lb host,
/// unless `answers` has it.
pub async fn vip_holders(ws: &Workspace, answers: &Answers) -> Result<Vec<VipHolding>> {
    let instances = groundwork_keepalived::instances(&ws.loaded.env);
    let mut out: Vec<VipHolding> = instances
        .iter()
        .map(|i| VipHolding { vip: i.vip, instance: i.name.clone(), holders: Vec::new(), unread: Vec::new() })
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    for lb in vip_hosts(ws) {
        let lt = answering(ws, lb, answers).await?;
        match groundwork_keepalived::held(lt.as_ref()).await {
            Ok(held) => {
                for v in out.iter_mut().filter(|v| held.contains(&v.vip)) {
                    v.holders.push(lb.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(host = %lb, error = %e, "reading the host's addresses failed");
                for v in &mut out {
                    v.unread.push(lb.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The service table (like the helpernode's `helpernodecheck`): every unit groundwork manages on each
/// host that runs commands — enabled, active, listening on its role's ports — and the daemon's version.
/// One round trip per host, the hosts side by side, unless `answers` has it.
pub(crate) async fn service_rows(
    ws: &Workspace,
    env: &groundwork_sdk::model::Environment,
    asks: TableAsks,
    answers: &Answers,
) -> Result<Vec<groundwork_services::ServiceRow>> {
    let per_host = futures::future::try_join_all(service_hosts(env).into_iter().map(|name| async move {
        let t = answering(ws, name, answers).await?;
        Ok::<_, Error>(groundwork_services::service_rows(t.as_ref(), env, name, asks).await?)
    }))
    .await?;
    Ok(per_host.into_iter().flatten().collect())
}

fn service_table(rows: &[groundwork_services::ServiceRow]) -> String {
    let header = ["HOST", "UNIT", "ENABLED", "ACTIVE", "PORTS", "VERSION"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let ports: Vec<String> = r
                .ports
                .iter()
                .map(|(p, listening)| if *listening { p.clone() } else { format!("{p}(closed)") })
                .collect();
            let mark = if r.ok() { "" } else { " FAIL" };
            [
                r.host.clone(),
                format!("{}{mark}", r.unit),
                r.enabled.clone(),
                r.active.clone(),
                if ports.is_empty() { "-".into() } else { ports.join(" ") },
                r.version.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut l = String::from(" ");
        for (i, (w, c)) in widths.iter().zip(cols).enumerate() {
            if i + 1 == cols.len() {
                let _ = write!(l, " {c}");
            } else {
                let _ = write!(l, " {c:<w$}");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&header.map(String::from));
    for c in &cells {
        line(c);
    }
    out
}

/// Each probe and each service row is a case.
fn junit(environment: &str, probes: &[Probe], services: &[groundwork_services::ServiceRow]) -> String {
    use crate::render::junit::{Case, Outcome};
    let mut cases: Vec<Case> = probes
        .iter()
        .map(|p| Case {
            class: p.kind.to_string(),
            name: format!("{} {}", p.kind, p.target),
            outcome: if p.skipped {
                Outcome::Skipped { message: p.detail.clone() }
            } else if p.ok {
                Outcome::Pass
            } else {
                Outcome::Fail { message: p.detail.clone(), detail: p.detail.clone() }
            },
        })
        .collect();
    let table = service_table(services);
    cases.extend(services.iter().map(|r| Case {
        class: "service".into(),
        name: format!("service {} {}", r.host, r.unit),
        outcome: if r.ok() {
            Outcome::Pass
        } else {
            Outcome::Fail {
                message: format!("{} on {}: enabled {}, active {}", r.unit, r.host, r.enabled, r.active),
                detail: table.clone(),
            }
        },
    }));
    crate::render::junit::report(&format!("groundwork verify {environment}"), cases)
}

pub struct VerifyOptions {
    pub json: bool,
    pub junit: Option<std::path::PathBuf>,
    pub from: Option<String>,
}

pub async fn run(path: &Path, opts: &VerifyOptions) -> Result<u8> {
    let ws = Workspace::open(path)?;
    let env = &ws.loaded.env;
    let from = match &opts.from {
        Some(h) => h.clone(),
        None => env
            .first_host_with_role(HostRole::Http)
            .or_else(|| env.hosts.iter().next())
            .map(|(n, _)| n.to_string())
            .ok_or_else(|| Error::Usage("no infra host to probe from".into()))?,
    };
    let x = Expected::now(&ws).await?;
    let results = probes(&ws, &x, &from).await?;
    let services = service_rows(&ws, &x.env, TableAsks::ALL, &Answers::new()).await?;
    let failed = results.iter().filter(|p| !p.ok).count() + services.iter().filter(|r| !r.ok()).count();
    let skipped = results.iter().filter(|p| p.skipped).count();
    if let Some(f) = &opts.junit {
        super::write_atomically(f, &junit(&ws.loaded.name, &results, &services))?;
    }
    if opts.json {
        let items: Vec<serde_json::Value> = results
            .iter()
            .map(|p| {
                serde_json::json!({"ok": p.ok, "status": p.status(), "kind": p.kind, "target": p.target, "detail": p.detail})
            })
            .collect();
        let service_items: Vec<serde_json::Value> = services
            .iter()
            .map(|r| {
                let ports: serde_json::Map<String, serde_json::Value> =
                    r.ports.iter().map(|(p, l)| (p.clone(), serde_json::Value::Bool(*l))).collect();
                serde_json::json!({"ok": r.ok(), "host": r.host, "daemon": r.daemon, "unit": r.unit,
                                   "enabled": r.enabled, "active": r.active, "listening": ports, "version": r.version})
            })
            .collect();
        let doc = serde_json::json!({"format_version": 1, "groundwork_version": crate::render::json::GROUNDWORK_VERSION, "environment": ws.loaded.name, "from": from,
                                     "failed": failed, "skipped": skipped, "probes": items, "services": service_items});
        crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        for p in &results {
            let mark = match p.status() {
                "pass" => "ok  ",
                "skipped" => "skip",
                _ => "FAIL",
            };
            crate::outln!("{mark} {:<10} {}: {}", p.kind, p.target, p.detail);
        }
        if !services.is_empty() {
            crate::outln!("\nServices:\n{}", service_table(&services).trim_end());
        }
        crate::outln!(
            "\nVerify from {from}: {} probes and {} services, {failed} failed, {skipped} skipped.",
            results.len(),
            services.len()
        );
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_CHANGES })
}
