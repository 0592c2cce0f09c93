use super::{events, stdout_color, Workspace, EXIT_OK};
use crate::engine::{self, Plan};
use crate::error::{Error, Result};
use crate::render;
use groundwork_cluster::csr::Verdict;
use groundwork_cluster::gates::Reads;
use groundwork_cluster::watched::Watched;
use groundwork_sdk::{fingerprint, Gate};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;
use tracing::Instrument;

pub struct ApplyOptions {
    pub auto_approve: bool,
    /// For a plan file: the environment to apply it to (default: where the plan says, relative to the
    /// current directory).
    pub env: Option<std::path::PathBuf>,
    /// Wait this long for another apply's lock instead of failing at once.
    pub lock_timeout: Option<Duration>,
    /// Wait at most this long for each install gate (default: `openshift.gate_timeouts`).
    pub gate_timeout: Option<Duration>,
    pub scope: super::Scope,
    /// An event stream on stdout instead of text (docs/schemas/events.schema.json).
    pub json: bool,
}

/// `apply ENV` (plan, confirm, apply through the install gates) or `apply PLANFILE` (exactly that plan,
/// if still current; no gate is waited for). Both hold the environment's lock on every host from
/// before the state they act on is read until the end; an apply that finds nothing to do is a plan
/// and takes none.
pub async fn run(target: &Path, opts: &ApplyOptions) -> Result<u8> {
    if opts.json {
        events::enable();
    }
    let result =
        if super::show::is_plan_file(target) { apply_saved(target, opts).await } else { apply_env(target, opts).await };
    events::finished(&result);
    result
}

async fn apply_env(target: &Path, opts: &ApplyOptions) -> Result<u8> {
    // Nobody can answer: refuse before anything is read or printed (a CI log gets one line, not a plan).
    if !opts.auto_approve && !std::io::stdin().is_terminal() {
        return Err(no_terminal());
    }
    let mut ws = Workspace::open(target)?.scope(&opts.scope)?;
    // Nothing to change and nothing waiting: the apply is a plan, and a plan takes no lock. Otherwise
    // what is applied is what the lock holder saw: the plan made before the lock stands only if nobody
    // took the lock between its first read and ours (the lock's tokens); else it is made again under
    // the lock. On shared infra hosts the lock comes first: another cluster's apply may be rewriting
    // what this plan merges with.
    let mut unlocked = None;
    if !ws.hosts.shared_infra() {
        let plan = ws.plan().await?;
        if plan.is_converged() {
            show_plan(&plan);
            return Ok(EXIT_OK);
        }
        ws.spend_expansion();
        unlocked = Some(plan);
    }
    let mut lock = Some(ws.lock("apply", opts.lock_timeout).await?);
    let current = unlocked.filter(|p| lock.as_ref().is_some_and(|held| held.nothing_since(&p.lock_tokens)));
    let result = async {
        let plan = match current {
            Some(plan) => {
                tracing::info!("nobody took the lock since the plan was read: it stands under the lock");
                plan
            }
            None => ws.plan().await?,
        };
        show_plan(&plan);
        if plan.is_converged() {
            return Ok(EXIT_OK);
        }
        if !opts.auto_approve && !confirm()? {
            return Err(Error::Usage("apply cancelled: nothing was changed".into()));
        }
        converge(&ws, plan, opts, &mut lock).await
    }
    .await;
    if let Some(held) = lock {
        ws.unlock(held).await;
    }
    result
}

/// How long an install run on shared infra hosts waits to take the shared lock back after a gate
/// passed, when `--lock-timeout` does not say: another cluster's apply is short.
const RETAKE_SHARED_LOCK: Duration = Duration::from_secs(30 * 60);

/// `apply PLANFILE`: only onto the environment it was made from, unchanged since, over the state it
/// saw, and exactly the changes it shows. Every check runs before anything is written.
async fn apply_saved(target: &Path, opts: &ApplyOptions) -> Result<u8> {
    let shown = target.display().to_string();
    let refuse = |m: String| Error::PlanFile { path: shown.clone(), message: m };
    let file = super::show::load(target)?;
    let env_dir = opts.env.clone().unwrap_or_else(|| std::path::PathBuf::from(&file.env_path));
    if !env_dir.exists() {
        return Err(refuse(format!(
            "it was made from the environment {} (relative to where the plan was made), which is not at {}; \
             run from that directory or give the environment with --env DIR",
            file.env_path,
            env_dir.display()
        )));
    }
    // Expanded for the plan's own moment: dated serials and ignition ages come out as planned.
    let ws = Workspace::open_at(&env_dir, file.created_unix)?;
    let now = ws.identity();
    if now.cluster != file.environment.cluster {
        return Err(refuse(format!(
            "it belongs to the environment of cluster {:?}, not {:?} ({}): refusing to apply it there",
            file.environment.cluster,
            now.cluster,
            env_dir.display()
        )));
    }
    if now.digest != file.environment.digest {
        return Err(refuse(format!(
            "the environment changed since the plan was made ({}); make a new plan",
            file.environment.differences(&now)
        )));
    }
    let lock = ws.lock(&format!("apply {}", target.display()), opts.lock_timeout).await?;
    let result = async {
        check_current(&ws, &file.plan).await?;
        apply_and_verify(&ws, &file.plan).await
    }
    .await;
    ws.unlock(lock).await;
    result
}

/// Apply what is unblocked, wait for the next gate, re-plan for the phase it opens, and so on until
/// nothing is left; a gate that times out stops the run (a re-run resumes from the cluster's state).
async fn converge(
    ws: &Workspace,
    mut plan: Plan,
    opts: &ApplyOptions,
    lock: &mut Option<crate::engine::lock::Held>,
) -> Result<u8> {
    let gate_timeout = opts.gate_timeout;
    // Each round opens at least one gate or settles a phase; more rounds than that means gates flap.
    let max_rounds = 4 * (plan.gates.len() + 1);
    // Gates that passed before this run are not news; each one that passes during it is told once.
    let before: BTreeSet<Gate> = passed(&plan).into_iter().collect();
    let mut announced = before.clone();
    let mut totals = Totals { started: std::time::Instant::now(), phases: 1, applied: 0 };
    let mut read_back_only = false;
    for _ in 0..max_rounds {
        // Nothing applied (only a gate to wait for): the plan in hand is still fresh.
        let fresh = if plan.is_empty() && !plan.records_only() {
            plan.clone()
        } else {
            totals.applied += apply_plan(ws, &plan).await?;
            // No gate that could open and nothing waiting on these changes: the rest was read under the
            // lock and needed nothing, so reading back what was applied is the whole verification.
            read_back_only = plan.gates.is_empty() && plan.pending.is_empty();
            if read_back_only {
                ws.plan_in(&applied(&plan)).await?
            } else {
                ws.plan().await?
            }
        };
        announce_passed(&fresh, &mut announced);
        if passed(&fresh) == passed(&plan) {
            check_read_back(&plan, &fresh)?;
        } else {
            for g in plan.gates.iter().filter(|g| g.status.passed) {
                if fresh.gates.iter().any(|f| f.status.gate == g.status.gate && !f.status.passed) {
                    let detail = fresh_detail(&fresh, g.status.gate);
                    events::emit("gate_lost", json!({"gate": g.status.gate.to_string(), "detail": detail}));
                    events::text(&format!("note: gate {} no longer holds: {detail}\n", g.status.gate));
                }
            }
        }
        if fresh.is_empty() && fresh.records_only() {
            // Found as desired only now (a phase opened onto something already there): recorded.
            apply_plan(ws, &fresh).await?;
        }
        if !fresh.is_empty() {
            // A gate passed meanwhile (or the phase moved on): the next phase's changes.
            totals.next_phase(&fresh, &before);
            show_plan(&fresh);
            plan = fresh;
            continue;
        }
        let Some(next) = fresh.next_gate() else {
            let what = if read_back_only { "a fresh plan of what was applied" } else { "a fresh plan" };
            events::emit("verified", json!({"detail": format!("{what} shows no changes")}));
            events::text(&format!("Verified: {what} shows no changes.\n"));
            // One phase with no gate passing during it needs no summary beyond the report above.
            if totals.phases > 1 || announced.len() > before.len() {
                events::text(&totals.summary(&announced, &before));
            }
            return Ok(EXIT_OK);
        };
        // On shared infra hosts the lock is every cluster's: an install does not hold it while it waits
        // for its cluster. Everything after the wait is planned again under the lock.
        let shared = ws.hosts.shared_infra();
        // Only on shared hosts is the lock let go of (taken out of `lock` only then: a lock dropped
        // without release would stay on the hosts).
        if let Some(held) = lock.take_if(|_| shared) {
            ws.unlock(held).await;
            events::text(&format!(
                "note: the shared lock is released while {} is waited for; other clusters may apply meanwhile\n",
                next.status.gate
            ));
        }
        wait_gate(ws, next.status.gate, gate_timeout).await?;
        if shared {
            let wait = opts.lock_timeout.unwrap_or(RETAKE_SHARED_LOCK);
            *lock = Some(ws.lock("apply", Some(wait)).await?);
        }
        announced.insert(next.status.gate);
        plan = ws.plan().await?;
        announce_passed(&plan, &mut announced);
        if !plan.is_empty() {
            totals.next_phase(&plan, &before);
            show_plan(&plan);
        }
    }
    Err(Error::Usage(format!(
        "the install gates did not settle after {max_rounds} rounds (a gate keeps passing and failing); see the plan"
    )))
}

/// The addresses a plan changes, as a scope: what a read-back plan reads.
fn applied(plan: &Plan) -> crate::engine::scope::Matcher {
    crate::engine::scope::Matcher::exactly(plan.changes.iter().map(|c| c.change.address.clone()))
}

/// What one `apply ENV` did across its phases, for the headings and the closing line.
struct Totals {
    started: std::time::Instant,
    phases: usize,
    applied: usize,
}

impl Totals {
    /// A heading before the plan of each phase after the first: which gates opened it.
    fn next_phase(&mut self, plan: &Plan, before: &BTreeSet<Gate>) {
        self.phases += 1;
        let opened: Vec<String> =
            passed(plan).into_iter().filter(|g| !before.contains(g)).map(|g| g.to_string()).collect();
        let after = if opened.is_empty() { String::new() } else { format!(": after {}", opened.join(", ")) };
        events::text(&format!("\n── Phase {}{after} ──\n", self.phases));
    }

    fn summary(&self, announced: &BTreeSet<Gate>, before: &BTreeSet<Gate>) -> String {
        let gates: Vec<String> = announced.iter().filter(|g| !before.contains(g)).map(|g| g.to_string()).collect();
        let took = self.started.elapsed().as_secs();
        format!(
            "Done: {} change(s) applied in {} phase(s){}, {}m{:02}s.\n",
            self.applied,
            self.phases,
            if gates.is_empty() { String::new() } else { format!("; gates passed: {}", gates.join(", ")) },
            took / 60,
            took % 60
        )
    }
}

/// A `gate_passed` event for each gate a re-plan found passed without waiting for it (it passed while
/// the changes before it were applied).
fn announce_passed(plan: &Plan, announced: &mut BTreeSet<Gate>) {
    for g in plan.gates.iter().filter(|g| g.status.passed) {
        if announced.insert(g.status.gate) {
            let detail = &g.status.detail;
            events::emit(
                "gate_passed",
                json!({"gate": g.status.gate.to_string(), "detail": detail, "waited_seconds": 0.0, "api_requests": 0}),
            );
        }
    }
}

fn passed(plan: &Plan) -> Vec<Gate> {
    plan.gates.iter().filter(|g| g.status.passed).map(|g| g.status.gate).collect()
}

fn fresh_detail(plan: &Plan, gate: Gate) -> String {
    plan.gates.iter().find(|g| g.status.gate == gate).map(|g| g.status.detail.clone()).unwrap_or_default()
}

/// Everything the plan changed must read back as desired in the fresh plan. A resource whose desired
/// state itself moved since (a relabel that now covers the ignition the installer just made) is new
/// work for the next round, not a failed read-back.
fn check_read_back(applied: &Plan, fresh: &Plan) -> Result<()> {
    let remaining: Vec<&crate::engine::Planned> = fresh
        .changes
        .iter()
        .filter(|c| {
            applied.changes.iter().any(|a| a.change.address == c.change.address && a.change.after == c.change.after)
        })
        .collect();
    if remaining.is_empty() {
        return Ok(());
    }
    for c in &remaining {
        crate::errln!("still differs: {}", c.change.address);
    }
    Err(Error::Usage(format!(
        "apply finished but {} change(s) remain: the hosts do not read back as desired",
        remaining.len()
    )))
}

/// How long a watched gate goes without a change before it is probed anyway: a safety net, not the pace.
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// Changes come in bursts (a node's conditions, then its labels): those this close are taken as one.
const BURST: Duration = Duration::from_millis(100);

/// Wait for the next change the watches report, at most `idle` (a burst of changes is one); `Err` with
/// why when they failed (the API is not there yet, or it cut them).
async fn next_change(changes: &mut groundwork_cluster::watched::Changes, idle: Duration) -> Result<(), String> {
    use futures::StreamExt;
    match tokio::time::timeout(idle, changes.next()).await {
        Err(_) => return Ok(()),
        Ok(None) => return Err("the watches ended".into()),
        Ok(Some(Err(why))) => return Err(why),
        Ok(Some(Ok(()))) => {}
    }
    while let Ok(Some(Ok(()))) = tokio::time::timeout(BURST, changes.next()).await {}
    Ok(())
}

/// Wait on one gate until it passes or its timeout runs out: probed again each time the watches on
/// what it reads report a change (`gate_waits: poll`, or while the API does not answer yet: every poll
/// interval). While workers join, approve the CSRs that match the inventory (and only those), and say
/// once which were refused and why.
async fn wait_gate(ws: &Workspace, gate: Gate, timeout: Option<Duration>) -> Result<()> {
    let os = ws
        .loaded
        .env
        .openshift
        .as_ref()
        .ok_or_else(|| Error::Usage("install gates need an openshift section".into()))?;
    let timeout = timeout.unwrap_or(Duration::from_secs(os.gate_timeout(gate)));
    let poll = Duration::from_millis(os.poll_interval_ms.max(50));
    let watch = os.gate_waits == groundwork_sdk::model::GateWaits::Watch;
    // With watches: caches of what the gate reads, and the stream that keeps them current.
    let mut watched: Option<(Watched, groundwork_cluster::watched::Changes)> = None;
    let requests_before = crate::transport::cluster::api_requests();
    let started = std::time::Instant::now();
    let bar = spinner(&format!("waiting for {gate}"));
    let mut reported: BTreeSet<String> = BTreeSet::new();
    // The gate's last detail sent as an event: a new event only when what is seen changes.
    let mut last_detail: Option<String> = None;
    // What this wait has approved: each node's client and serving certificate, once.
    let mut ledger = groundwork_cluster::gates::ledger(&ws.loaded.env);
    let span = tracing::info_span!("gate", gate = %gate, timeout_secs = timeout.as_secs());
    async move {
        loop {
            let client = ws.hosts.cluster().await?;
            // The caches once every watch has listed; until then (and without watches) the API.
            let cached: Option<&dyn Reads> = watched.as_ref().filter(|(w, _)| w.listed()).map(|(w, _)| w as &dyn Reads);
            if gate == Gate::WorkersJoined {
                if let Some(client) = &client {
                    let reads = cached.unwrap_or(client);
                    match groundwork_cluster::gates::review_csrs(client, reads, &ws.loaded.env, true, &mut ledger).await
                    {
                        Ok(decisions) => {
                            for d in decisions {
                                if reported.insert(d.name.clone()) {
                                    let kind = d.kind.to_string();
                                    match &d.verdict {
                                        Verdict::Approve { node } => events::emit(
                                            "csr_approved",
                                            json!({"csr": d.name, "kind": kind, "node": node}),
                                        ),
                                        Verdict::Refuse(why) => events::emit(
                                            "csr_refused",
                                            json!({"csr": d.name, "kind": kind, "reason": why.to_string()}),
                                        ),
                                    }
                                    bar.suspend(|| match &d.verdict {
                                        Verdict::Approve { node } => events::text(&format!(
                                            "  approved CSR {} ({}) for {node}\n",
                                            d.name, d.kind
                                        )),
                                        Verdict::Refuse(_) => events::text(&format!("  {}\n", d.describe())),
                                    });
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "listing CSRs failed; retrying"),
                    }
                }
            }
            let statuses = match cached {
                Some(reads) => crate::engine::gates::probe_all(Some(reads), &ws.loaded.env).await,
                None => ws.gates().await?,
            };
            let status = statuses.iter().find(|s| s.gate == gate).cloned();
            let detail = status.as_ref().map(|s| s.detail.clone()).unwrap_or_else(|| "not probed".into());
            if status.as_ref().is_some_and(|s| s.passed) {
                bar.finish_and_clear();
                let secs = started.elapsed().as_secs_f64();
                let requests = crate::transport::cluster::api_requests() - requests_before;
                tracing::info!(api_requests = requests, waited_seconds = secs, "gate passed");
                events::emit(
                    "gate_passed",
                    json!({"gate": gate.to_string(), "detail": detail, "waited_seconds": secs,
                           "api_requests": requests}),
                );
                events::text(&format!("✓ {gate}: {detail} (after {}s)\n", started.elapsed().as_secs()));
                return Ok(());
            }
            if started.elapsed() >= timeout {
                bar.finish_and_clear();
                return Err(Error::GateTimeout { gate: gate.to_string(), waited_secs: timeout.as_secs(), detail });
            }
            if last_detail.as_deref() != Some(detail.as_str()) {
                events::emit("gate_waiting", json!({"gate": gate.to_string(), "detail": detail}));
                last_detail = Some(detail.clone());
            }
            bar.set_message(format!("waiting for {gate}: {detail}"));
            if let (true, None, Some(client)) = (watch, &watched, &client) {
                match Watched::start(client, &ws.loaded.env, gate).await {
                    Ok(started) => watched = Some(started),
                    Err(e) => tracing::debug!(error = %e, "no gate watches yet; probing every poll interval"),
                }
            }
            let Some((caches, changes)) = watched.as_mut() else {
                tokio::time::sleep(poll).await;
                continue;
            };
            // Never past the gate's timeout: the wait ends on time even when nothing changes.
            let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(10));
            let idle = if caches.listed() { IDLE_RECHECK.max(poll) } else { poll }.min(left);
            if let Err(why) = next_change(changes, idle).await {
                // Started again next round, from the client of that moment (a rewritten kubeconfig).
                tracing::debug!(error = %why, "gate watches failed; probing every poll interval until they run");
                watched = None;
                tokio::time::sleep(poll).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Apply a plan (the caller holds the lock), report, and check that a fresh plan is empty.
pub async fn apply_and_verify(ws: &Workspace, plan: &Plan) -> Result<u8> {
    apply_plan(ws, plan).await?;
    // Read back what was changed: the rest was read under the lock and found as desired.
    let after = ws.plan_in(&applied(plan)).await?;
    if let Err(e) = check_read_back(plan, &after) {
        show_plan(&after);
        return Err(e);
    }
    events::emit("verified", json!({"detail": "what was applied reads back as desired"}));
    events::text("Verified: what was applied reads back as desired.\n");
    if plan.pending_count() > 0 {
        events::text(&format!(
            "{} resource(s) waited for what this plan applied and are planned now: make a new plan and apply it.\n",
            plan.pending_count()
        ));
    }
    Ok(EXIT_OK)
}

/// Apply with a progress bar and print the report; any failed change fails the run. Returns how many
/// changes were applied.
async fn apply_plan(ws: &Workspace, plan: &Plan) -> Result<usize> {
    ws.applying();
    let bar = progress(plan.changes.len());
    let on_progress = |addr: &groundwork_sdk::Address, p: engine::apply::Progress<'_>| {
        let address = addr.to_string();
        match p {
            engine::apply::Progress::Started(action) => {
                events::emit("change_started", json!({"address": address, "action": action}));
            }
            engine::apply::Progress::Finished(outcome) => {
                match outcome {
                    engine::Outcome::Applied => events::emit("change_done", json!({"address": address})),
                    engine::Outcome::Failed(e) => {
                        events::emit("change_failed", json!({"address": address, "error": e}))
                    }
                    engine::Outcome::Skipped(why) => {
                        events::emit("change_skipped", json!({"address": address, "reason": why}))
                    }
                }
                bar.set_message(address);
                bar.inc(1);
            }
        }
    };
    let started = std::time::Instant::now();
    // Byte progress: uploads of large images take minutes; the bar says how much has gone and how fast.
    let from = groundwork_sdk::transport::bytes_sent();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_prefix(sent_since(from, started));
            }
        })
    };
    let report = engine::apply(&ws.registry, &ws.hosts, plan, &on_progress).await;
    ticker.abort();
    bar.finish_and_clear();
    let report = report?;
    tracing::info!(apply_ms = started.elapsed().as_millis() as u64, changes = plan.changes.len(), "apply");
    events::text(&render::text::apply_report(&report, stdout_color()));
    if !plan.adopt.is_empty() {
        events::text(&format!(
            "Taken over: {} resource(s) already as desired, recorded as groundwork's.\n",
            plan.adopt.len()
        ));
    }
    if !plan.release.is_empty() {
        events::text(&format!(
            "Left to others: {} resource(s) other environments still use, dropped from this environment's record.\n",
            plan.release.len()
        ));
    }
    if report.failed() > 0 {
        return Err(Error::ApplyFailed { failed: report.failed() });
    }
    Ok(report.outcomes.len())
}

/// A saved plan applies only over the state it was made against, and only if it holds exactly the
/// changes the environment produces over that state (a plan edited by hand — digest recomputed or not
/// — is refused before anything is written).
async fn check_current(ws: &Workspace, saved: &Plan) -> Result<()> {
    let now = ws.plan().await?;
    let stale: Vec<String> = saved
        .observed
        .iter()
        .filter(|(addr, fp)| now.observed.get(*addr).map(String::as_str).unwrap_or(&fingerprint(None)) != fp.as_str())
        .map(|(a, _)| a.clone())
        .collect();
    if !stale.is_empty() {
        return Err(Error::StalePlan { addresses: stale });
    }
    let differing: Vec<String> = saved
        .changes
        .iter()
        .filter(|s| {
            !now.changes.iter().any(|n| {
                n.change.address == s.change.address
                    && n.change.action == s.change.action
                    && n.change.after == s.change.after
                    && n.depends_on == s.depends_on
                    && n.shared == s.shared
            })
        })
        .map(|s| s.change.address.to_string())
        .collect();
    // What it takes over is what the environment would take over now (no record is made for a
    // resource the environment does not declare as it is).
    let adopting: Vec<String> = saved
        .adopt
        .iter()
        .filter(|s| !now.adopt.iter().any(|n| n.change.address == s.change.address && n.change.after == s.change.after))
        .map(|s| s.change.address.to_string())
        .collect();
    let releasing = saved
        .release
        .iter()
        .chain(&saved.rerecord)
        .filter(|s| !now.release.iter().chain(&now.rerecord).any(|n| n.change.address == s.change.address))
        .map(|s| s.change.address.to_string());
    let differing: Vec<String> = differing.into_iter().chain(adopting).chain(releasing).collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(Error::PlanMismatch { addresses: differing })
    }
}

/// The plan as text, or as a `plan` event carrying the plan's JSON document.
pub(super) fn show_plan(plan: &Plan) {
    if events::on() {
        let doc = serde_json::to_value(render::json::document(plan)).unwrap_or_default();
        events::emit("plan", json!({"plan": doc}));
    } else {
        crate::out!("{}", render::text::plan(plan, stdout_color()));
    }
}

pub(super) fn no_terminal() -> Error {
    refused_without_terminal("apply", " or apply a saved plan")
}

/// `what` was not confirmed: nobody can answer on stdin. `otherwise`: another way to go on.
pub(super) fn refused_without_terminal(what: &str, otherwise: &str) -> Error {
    Error::Usage(format!(
        "refusing to {what} without confirmation: stdin is not a terminal (use --auto-approve{otherwise})"
    ))
}

pub(super) fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal());
    }
    crate::out!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Io { path: "stdin".into(), message: e.to_string() })?;
    Ok(line.trim() == "yes")
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = crate::output::add_bar(indicatif::ProgressBar::new_spinner());
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn progress(n: usize) -> indicatif::ProgressBar {
    let bar = crate::output::add_bar(indicatif::ProgressBar::new(n as u64));
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {prefix} {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

/// Bytes sent to the hosts since `from`, and the rate, for the apply bar ("412.0 MiB sent, 85.3 MiB/s").
fn sent_since(from: u64, started: std::time::Instant) -> String {
    let sent = groundwork_sdk::transport::bytes_sent().saturating_sub(from);
    if sent < 1024 * 1024 {
        return String::new();
    }
    let mib = sent as f64 / (1024.0 * 1024.0);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    format!("{mib:.1} MiB sent, {:.1} MiB/s", mib / secs)
}
