//! `drift`: plan, report what differs (exit 0 none, 2 drift, 1 error), optionally heal it; once, or every
//! interval while serving Prometheus metrics.

mod http;
mod status;

use super::write_atomically;
use super::{stdout_color, Workspace, EXIT_CHANGES, EXIT_OK};
use crate::engine::refresh::Asks;
use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::render;
use groundwork_services::TableAsks;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The drift metrics (prometheus-client): one registry for the run, so that in `--every` mode the
/// counters count every check since the process started and the gauges hold the last check's values.
pub struct Metrics {
    registry: Registry,
    environment: String,
    providers: Vec<String>,
    drifted: Family<Labels, Gauge>,
    drifted_all: Gauge,
    gates: Family<Labels, Gauge>,
    vip_holders: Family<Labels, Gauge>,
    last_check: FloatGauge,
    last_duration: FloatGauge,
    /// Every check's duration (its sum and count give a loop's mean tick).
    durations: Histogram,
    last_success: Gauge,
    checks: Counter,
    errors: Counter,
    heals: Counter,
}

impl Metrics {
    pub fn new(environment: &str, providers: &[&str]) -> Self {
        let mut registry = Registry::with_labels(
            [(std::borrow::Cow::Borrowed("environment"), std::borrow::Cow::Owned(environment.to_string()))].into_iter(),
        );
        let m = Metrics {
            environment: environment.to_string(),
            providers: providers.iter().map(|p| p.to_string()).collect(),
            drifted: Family::default(),
            drifted_all: Gauge::default(),
            gates: Family::default(),
            vip_holders: Family::default(),
            last_check: FloatGauge::default(),
            last_duration: FloatGauge::default(),
            // 5 ms to about 20 s.
            durations: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            last_success: Gauge::default(),
            checks: Counter::default(),
            errors: Counter::default(),
            heals: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "groundwork_drift_resources",
            "Resources whose actual state differs from the environment, by provider.",
            m.drifted.clone(),
        );
        registry.register(
            "groundwork_drifted_resources",
            "Resources whose actual state differs from the environment, all providers.",
            m.drifted_all.clone(),
        );
        registry.register(
            "groundwork_gate_passed",
            "Whether an install gate holds (1) or not (0), as last probed.",
            m.gates.clone(),
        );
        registry.register(
            "groundwork_vip_holders",
            "Load balancers holding a shared VIP (1 healthy, 0 down, 2+ split brain).",
            m.vip_holders.clone(),
        );
        registry.register(
            "groundwork_drift_last_check_timestamp_seconds",
            "When the last check finished.",
            m.last_check.clone(),
        );
        registry.register(
            "groundwork_drift_last_check_duration_seconds",
            "How long the last check took.",
            m.last_duration.clone(),
        );
        registry.register("groundwork_drift_check_duration_seconds", "How long each check took.", m.durations.clone());
        registry.register(
            "groundwork_drift_last_check_success",
            "1 if the last check completed.",
            m.last_success.clone(),
        );
        registry.register("groundwork_drift_checks", "Checks run.", m.checks.clone());
        registry.register("groundwork_drift_errors", "Checks that failed.", m.errors.clone());
        registry.register("groundwork_drift_heals", "Drift-correcting applies.", m.heals.clone());
        for p in &m.providers {
            m.drifted.get_or_create(&vec![("provider".into(), p.clone())]).set(0);
        }
        Metrics { registry, ..m }
    }

    fn check_started(&self) {
        self.checks.inc();
    }

    fn check_failed(&self, duration: f64) {
        self.errors.inc();
        self.last_success.set(0);
        self.finished(duration);
    }

    fn finished(&self, duration: f64) {
        self.last_check.set(now_unix());
        self.last_duration.set(duration);
        self.durations.observe(duration);
    }

    /// The last check's findings: every provider gets a series, zero included, so alerts see drift
    /// disappear rather than go stale.
    fn record(&self, plan: &Plan, vips: &[super::verify::VipHolding], duration: f64) {
        self.last_success.set(1);
        self.finished(duration);
        let mut by_provider: BTreeMap<&str, i64> = self.providers.iter().map(|p| (p.as_str(), 0)).collect();
        for c in &plan.changes {
            *by_provider.entry(c.change.address.provider.as_str()).or_default() += 1;
        }
        for (p, n) in &by_provider {
            self.drifted.get_or_create(&vec![("provider".into(), p.to_string())]).set(*n);
        }
        self.drifted_all.set(plan.changes.len() as i64);
        // A gate that stops holding after the install (a master NotReady, an operator Degraded) is worth an alert.
        for g in &plan.gates {
            self.gates.get_or_create(&vec![("gate".into(), g.status.gate.to_string())]).set(g.status.passed as i64);
        }
        for v in vips {
            self.vip_holders.get_or_create(&vec![("vip".into(), v.vip.to_string())]).set(v.holders.len() as i64);
        }
    }

    fn healed(&self) {
        self.heals.inc();
    }

    /// (checks, errors, heals) since the process started.
    fn counts(&self) -> (u64, u64, u64) {
        (self.checks.get(), self.errors.get(), self.heals.get())
    }

    /// OpenMetrics text (Prometheus scrapes it; node_exporter's textfile collector reads it).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            return format!("# groundwork: metrics of {} could not be encoded\n", self.environment);
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

/// What one check found: for the exit code, and for the status page.
pub(crate) struct Checked {
    code: u8,
    plan: Plan,
    vips: Vec<super::verify::VipHolding>,
    services: Vec<groundwork_services::ServiceRow>,
    /// What the service table asked besides the units' state (none: no table).
    asked: Option<TableAsks>,
    healed: bool,
    duration: f64,
}

/// One check: plan, report, update metrics, heal if asked. The page's service table and the VIP
/// holders ride in the plan's batch: one exec per infra host.
/// `table`: the status page's service table, and what it asks besides the units' state (the
/// listening sockets and the versions are asked now and then, not on every check).
async fn check(ws: &Workspace, opts: &DriftOptions, metrics: &Metrics, table: Option<TableAsks>) -> Result<Checked> {
    let started = Instant::now();
    metrics.check_started();
    // A check's plan is never applied as read (a heal plans again under the lock): no lock tokens.
    let asks = Asks { riders: super::verify::status_riders(ws, table), no_lock_tokens: true };
    let before = ws.hosts.round_trips().await;
    let read = async {
        let (plan, answers) = ws.plan_asking(&ws.scope, &asks).await?;
        // The VIPs the load balancers share: exactly one holder each. None or two is no config drift
        // (no apply fixes it) but breaks what the environment promises, so it is reported as drift.
        let vips = super::verify::vip_holders(ws, &answers).await?;
        // The page's service table is extra: a host that cannot answer it does not fail the check.
        let services = match table {
            None => Ok(Vec::new()),
            Some(t) => super::verify::service_rows(ws, &ws.loaded.env, t, &answers).await,
        };
        let services = services.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the service table failed");
            Vec::new()
        });
        Ok::<_, Error>((plan, vips, services))
    };
    let (plan, vips, services) = match read.await {
        Ok(v) => v,
        Err(e) => {
            metrics.check_failed(started.elapsed().as_secs_f64());
            return Err(e);
        }
    };
    // The whole check's exec sessions per host (the plan's own line counts only its window).
    tracing::info!(round_trips = %super::trips_since(&before, &ws.hosts.round_trips().await), "check");
    let duration = started.elapsed().as_secs_f64();
    metrics.record(&plan, &vips, duration);
    let vips_broken = vips.iter().any(|v| !v.ok());
    if let Some(f) = &opts.junit {
        write_atomically(f, &junit(ws, &plan, &vips))?;
    }
    if opts.json {
        let doc = DriftJson {
            checked_at_unix: now_unix(),
            duration_seconds: duration,
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
    let mut checked = Checked { code: EXIT_CHANGES, plan, vips, services, asked: table, healed: false, duration };
    if checked.plan.is_empty() {
        checked.code = if vips_broken { EXIT_CHANGES } else { EXIT_OK };
        return Ok(checked);
    }
    if !opts.heal {
        return Ok(checked);
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
    metrics.healed();
    crate::outln!("Healed: the infrastructure matches the environment again.");
    checked.code = EXIT_OK;
    checked.healed = true;
    Ok(checked)
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
    let mut ws = Workspace::open(path)?.scope(&opts.scope)?;
    let metrics = Metrics::new(&ws.loaded.name, &ws.registry.names());
    let Some(every) = opts.every else {
        let code = check(&ws, opts, &metrics, None).await.map(|c| c.code);
        if let Some(f) = &opts.metrics_file {
            write_atomically(f, &metrics.render())?;
        }
        return code;
    };
    // Every tick reads the same files: each host sends only those that changed since the last; and
    // expands the same environment: kept while the local files it reads are unchanged.
    ws.hosts.keep_reads();
    ws.keep_expansions();
    let mut status = status::Status::new(&ws, every);
    let shared = Arc::new(Mutex::new(Served { metrics: metrics.render(), status: status.snapshot.clone() }));
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| Error::Io { path: opts.listen.clone(), message: e.to_string() })?;
    // The address actually bound (`--listen 127.0.0.1:0` picks a free port).
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| opts.listen.clone());
    crate::errln!(
        "groundwork drift: checking every {}s; status page on http://{bound}/, metrics on http://{bound}/metrics",
        every.as_secs()
    );
    tokio::spawn(http::serve(listener, shared.clone(), status.layout.clone()));
    loop {
        let result = check(&ws, opts, &metrics, Some(status.service_table())).await;
        if let Err(e) = &result {
            crate::errln!("error: {e}");
        }
        status.record(result, metrics.counts());
        let text = metrics.render();
        if let Some(f) = &opts.metrics_file {
            if let Err(e) = write_atomically(f, &text) {
                crate::errln!("error: {e}");
            }
        }
        if let Ok(mut m) = shared.lock() {
            *m = Served { metrics: text, status: status.snapshot.clone() };
        }
        release_freed_memory();
        tokio::time::sleep(every).await;
    }
}

/// What the endpoint serves: the metrics text and the page's snapshot, replaced after each check.
pub(crate) struct Served {
    pub(crate) metrics: String,
    pub(crate) status: Arc<render::status_page::Snapshot>,
}

/// Give the memory a tick freed back to the system. glibc's malloc keeps freed heap pages (and, after a
/// large block is freed, serves the next large ones from the heap instead of mmap), so a long drift loop's
/// RSS crept up by a few MiB per hundred ticks at 1000 nodes without anything being leaked.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's own arenas to the system; it
    // touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_every_provider_and_each_gate_and_counters_accumulate() {
        use groundwork_sdk::{Gate, GateStatus};
        let m = Metrics::new("lab", &["bind", "haproxy"]);
        let mut plan: Plan = serde_json::from_value(serde_json::json!({
            "format_version": 2, "environment": "lab", "changes": [], "observed": {}
        }))
        .unwrap();
        plan.gates = vec![
            crate::engine::gates::GateReport {
                status: GateStatus {
                    gate: Gate::BootstrapComplete,
                    passed: true,
                    detail: String::new(),
                    notes: vec![],
                    since: None,
                },
                blocked: vec![],
            },
            crate::engine::gates::GateReport {
                status: GateStatus {
                    gate: Gate::InstallComplete,
                    passed: false,
                    detail: String::new(),
                    notes: vec![],
                    since: None,
                },
                blocked: vec![],
            },
        ];
        for _ in 0..3 {
            m.check_started();
            m.record(&plan, &[], 0.5);
        }
        m.check_started();
        m.check_failed(0.1);
        let text = m.render();
        for line in [
            "groundwork_drift_resources{environment=\"lab\",provider=\"bind\"} 0",
            "groundwork_drift_resources{environment=\"lab\",provider=\"haproxy\"} 0",
            "groundwork_drifted_resources{environment=\"lab\"} 0",
            "groundwork_gate_passed{environment=\"lab\",gate=\"bootstrap-complete\"} 1",
            "groundwork_gate_passed{environment=\"lab\",gate=\"install-complete\"} 0",
            "groundwork_drift_checks_total{environment=\"lab\"} 4",
            "groundwork_drift_errors_total{environment=\"lab\"} 1",
            "groundwork_drift_heals_total{environment=\"lab\"} 0",
            "groundwork_drift_last_check_success{environment=\"lab\"} 0",
            "# TYPE groundwork_drifted_resources gauge",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        // No gauge is named like a counter.
        for l in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" gauge")) {
            assert!(!l.split_whitespace().nth(2).unwrap().ends_with("_total"), "{l}");
        }
        assert!(!Metrics::new("x", &[]).render().contains("groundwork_gate_passed{"));
    }
}
