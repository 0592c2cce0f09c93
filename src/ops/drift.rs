//! `drift`: plan, report what differs (exit 0 none, 2 drift, 1 error), optionally heal it; once, or every
//! interval while serving Prometheus metrics.

use super::write_atomically;
use super::{stdout_color, Workspace, EXIT_CHANGES, EXIT_OK};
use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::render;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct DriftOptions {
    pub json: bool,
    pub junit: Option<PathBuf>,
    pub metrics_file: Option<PathBuf>,
    pub every: Option<Duration>,
    pub listen: String,
    pub heal: bool,
    pub lock_timeout: Option<Duration>,
    pub scope: super::Scope,
}

/// What the metrics say, kept across checks in `--every` mode.
#[derive(Default)]
pub struct Metrics {
    pub environment: String,
    pub drifted_by_provider: BTreeMap<String, usize>,
    pub last_check_unix: f64,
    pub last_duration: f64,
    pub checks: u64,
    pub errors: u64,
    pub heals: u64,
    pub last_ok: bool,
    /// Install gates as last probed (gate → passed), when the environment has an openshift section.
    pub gates: BTreeMap<String, bool>,
    /// Shared VIPs (keepalived): how many load balancers hold each (1 is healthy).
    pub vip_holders: BTreeMap<String, usize>,
}

impl Metrics {
    /// Prometheus text exposition (also the node_exporter textfile format).
    pub fn render(&self) -> String {
        let env = &self.environment;
        let mut s = String::new();
        s.push_str("# HELP groundwork_drift_resources Resources whose actual state differs from the environment.\n");
        s.push_str("# TYPE groundwork_drift_resources gauge\n");
        for (p, n) in &self.drifted_by_provider {
            s.push_str(&format!("groundwork_drift_resources{{environment=\"{env}\",provider=\"{p}\"}} {n}\n"));
        }
        let total: usize = self.drifted_by_provider.values().sum();
        if !self.gates.is_empty() {
            s.push_str("# HELP groundwork_gate_passed Whether an install gate holds (1) or not (0), as last probed.\n");
            s.push_str("# TYPE groundwork_gate_passed gauge\n");
            for (g, passed) in &self.gates {
                s.push_str(&format!(
                    "groundwork_gate_passed{{environment=\"{env}\",gate=\"{g}\"}} {}\n",
                    *passed as u8
                ));
            }
        }
        if !self.vip_holders.is_empty() {
            s.push_str("# HELP groundwork_vip_holders Load balancers holding a shared VIP (1 healthy, 0 down, 2+ split brain).\n");
            s.push_str("# TYPE groundwork_vip_holders gauge\n");
            for (vip, n) in &self.vip_holders {
                s.push_str(&format!("groundwork_vip_holders{{environment=\"{env}\",vip=\"{vip}\"}} {n}\n"));
            }
        }
        s.push_str("# HELP groundwork_drift_resources_total Drifted resources, all providers.\n");
        s.push_str("# TYPE groundwork_drift_resources_total gauge\n");
        s.push_str(&format!("groundwork_drift_resources_total{{environment=\"{env}\"}} {total}\n"));
        for (name, kind, help, value) in [
            (
                "groundwork_drift_last_check_timestamp_seconds",
                "gauge",
                "When the last check finished.",
                self.last_check_unix,
            ),
            (
                "groundwork_drift_last_check_duration_seconds",
                "gauge",
                "How long the last check took.",
                self.last_duration,
            ),
            (
                "groundwork_drift_last_check_success",
                "gauge",
                "1 if the last check completed.",
                if self.last_ok { 1.0 } else { 0.0 },
            ),
            ("groundwork_drift_checks_total", "counter", "Checks run.", self.checks as f64),
            ("groundwork_drift_errors_total", "counter", "Checks that failed.", self.errors as f64),
            ("groundwork_drift_heals_total", "counter", "Drift-correcting applies.", self.heals as f64),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{environment=\"{env}\"}} {value}\n"
            ));
        }
        s
    }
}

#[derive(Serialize)]
struct DriftJson<'a> {
    checked_at_unix: f64,
    duration_seconds: f64,
    drifted: usize,
    /// Shared VIPs and who holds each (absent without keepalived).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    vips: &'a [super::verify::VipHolding],
    #[serde(flatten)]
    plan: render::json::JsonPlan<'a>,
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One check: plan, report, update metrics, heal if asked.
async fn check(ws: &Workspace, opts: &DriftOptions, metrics: &mut Metrics) -> Result<u8> {
    let started = Instant::now();
    let result = ws.plan().await;
    metrics.checks += 1;
    metrics.last_check_unix = now_unix();
    metrics.last_duration = started.elapsed().as_secs_f64();
    let plan: Plan = match result {
        Ok(p) => p,
        Err(e) => {
            metrics.errors += 1;
            metrics.last_ok = false;
            return Err(e);
        }
    };
    metrics.last_ok = true;
    metrics.drifted_by_provider.clear();
    // Every provider gets a series, zero included, so alerts see it disappear rather than go stale.
    for p in ws.registry.names() {
        metrics.drifted_by_provider.insert(p.to_string(), 0);
    }
    for c in &plan.changes {
        *metrics.drifted_by_provider.entry(c.change.address.provider.clone()).or_default() += 1;
    }
    // A gate that stops holding after the install (a master NotReady, an operator Degraded) is worth an alert.
    metrics.gates = plan.gates.iter().map(|g| (g.status.gate.to_string(), g.status.passed)).collect();
    // The VIPs the load balancers share: exactly one holder each. None or two is no config drift (no
    // apply fixes it) but breaks what the environment promises, so it is reported as drift.
    let vips = super::verify::vip_holders(ws).await?;
    metrics.vip_holders = vips.iter().map(|v| (v.vip.to_string(), v.holders.len())).collect();
    let vips_broken = vips.iter().any(|v| !v.ok());
    if let Some(f) = &opts.junit {
        write_atomically(f, &junit(ws, &plan, &vips))?;
    }
    if opts.json {
        let doc = DriftJson {
            checked_at_unix: metrics.last_check_unix,
            duration_seconds: metrics.last_duration,
            drifted: plan.changes.len(),
            vips: &vips,
            plan: render::json::document(&plan),
        };
        crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        crate::out!("{}", render::text::drift(&plan, stdout_color()));
        if !vips.is_empty() {
            crate::outln!("\nVIPs:");
            for v in &vips {
                let mark = if v.ok() { "ok  " } else { "FAIL" };
                crate::outln!("  {mark} {} ({}): {}", v.vip, v.instance, v.describe());
            }
        }
    }
    if plan.is_empty() {
        return Ok(if vips_broken { EXIT_CHANGES } else { EXIT_OK });
    }
    if !opts.heal {
        return Ok(EXIT_CHANGES);
    }
    // Heal under the same lock and safety as apply: re-plan once the lock is held.
    let lock = ws.lock("drift --heal", opts.lock_timeout).await?;
    let healed = async {
        let fresh = ws.plan().await?;
        super::apply::apply_and_verify(ws, &fresh).await
    }
    .await;
    ws.unlock(lock).await;
    healed?;
    metrics.heals += 1;
    crate::outln!("Healed: the infrastructure matches the environment again.");
    Ok(EXIT_OK)
}

/// Every resource read is a case, failed when it drifted; every shared VIP is one too.
fn junit(ws: &Workspace, plan: &Plan, vips: &[super::verify::VipHolding]) -> String {
    use render::junit::{Case, Outcome};
    let mut cases: Vec<Case> = plan
        .observed
        .keys()
        .map(|address| {
            let change = plan.changes.iter().find(|c| c.change.address.to_string() == *address);
            let class = address.split('.').next().unwrap_or_default().to_string();
            let outcome = match change {
                None => Outcome::Pass,
                Some(c) => Outcome::Fail {
                    message: format!("drifted: apply would {:?} it", c.change.action).to_lowercase(),
                    detail: c.change.details.iter().map(|d| d.text.clone()).collect::<Vec<_>>().join("\n"),
                },
            };
            Case { class, name: address.clone(), outcome }
        })
        .collect();
    cases.extend(vips.iter().map(|v| Case {
        class: "vip".into(),
        name: format!("{} ({})", v.vip, v.instance),
        outcome: if v.ok() { Outcome::Pass } else { Outcome::Fail { message: v.describe(), detail: v.describe() } },
    }));
    render::junit::report(&format!("groundwork drift {}", ws.loaded.name), cases)
}

pub async fn run(path: &Path, opts: &DriftOptions) -> Result<u8> {
    let ws = Workspace::open(path)?.scope(&opts.scope)?;
    let mut metrics = Metrics { environment: ws.loaded.name.clone(), ..Default::default() };
    let Some(every) = opts.every else {
        let code = check(&ws, opts, &mut metrics).await;
        if let Some(f) = &opts.metrics_file {
            write_atomically(f, &metrics.render())?;
        }
        return code;
    };
    let shared = Arc::new(Mutex::new(metrics.render()));
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| Error::Io { path: opts.listen.clone(), message: e.to_string() })?;
    // The address actually bound (`--listen 127.0.0.1:0` picks a free port).
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| opts.listen.clone());
    crate::errln!("groundwork drift: checking every {}s, metrics on http://{bound}/metrics", every.as_secs());
    tokio::spawn(serve(listener, shared.clone()));
    loop {
        if let Err(e) = check(&ws, opts, &mut metrics).await {
            crate::errln!("error: {e}");
        }
        let text = metrics.render();
        if let Some(f) = &opts.metrics_file {
            if let Err(e) = write_atomically(f, &text) {
                crate::errln!("error: {e}");
            }
        }
        if let Ok(mut m) = shared.lock() {
            *m = text;
        }
        tokio::time::sleep(every).await;
    }
}

/// A minimal HTTP/1.0 endpoint: GET /metrics answers the latest metrics, anything else 404.
async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Mutex<String>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" {
                ("200 OK", metrics.lock().map(|m| m.clone()).unwrap_or_default())
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let reply = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_every_provider_and_each_gate() {
        let m = Metrics {
            environment: "lab".into(),
            drifted_by_provider: [("bind".to_string(), 0), ("haproxy".to_string(), 2)].into(),
            gates: [("bootstrap-complete".to_string(), true), ("install-complete".to_string(), false)].into(),
            vip_holders: [("10.88.0.4".to_string(), 2)].into(),
            last_ok: true,
            checks: 3,
            ..Default::default()
        };
        let text = m.render();
        for line in [
            "groundwork_drift_resources{environment=\"lab\",provider=\"bind\"} 0",
            "groundwork_drift_resources{environment=\"lab\",provider=\"haproxy\"} 2",
            "groundwork_drift_resources_total{environment=\"lab\"} 2",
            "groundwork_gate_passed{environment=\"lab\",gate=\"bootstrap-complete\"} 1",
            "groundwork_gate_passed{environment=\"lab\",gate=\"install-complete\"} 0",
            "groundwork_drift_checks_total{environment=\"lab\"} 3",
            "groundwork_vip_holders{environment=\"lab\",vip=\"10.88.0.4\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        assert!(!Metrics::default().render().contains("groundwork_gate_passed"));
    }
}
