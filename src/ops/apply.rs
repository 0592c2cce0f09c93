use super::{stdout_color, Workspace, EXIT_OK};
use crate::engine::{self, Plan};
use crate::error::{Error, Result};
use crate::render;
use groundwork_sdk::fingerprint;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

pub struct ApplyOptions {
    pub auto_approve: bool,
    /// Wait this long for another apply's lock instead of failing at once.
    pub lock_timeout: Option<Duration>,
    pub scope: super::Scope,
}

/// `apply ENV` (plan, confirm, apply) or `apply PLANFILE` (exactly that plan, if still current). Both
/// hold the environment's lock on every host from before the state is read until the end.
pub async fn run(target: &Path, opts: &ApplyOptions) -> Result<u8> {
    if target.is_file() && super::show::load(target).is_ok() {
        let file = super::show::load(target)?;
        let ws = Workspace::open(&file.env_dir)?;
        let lock = ws.lock(&format!("apply {}", target.display()), opts.lock_timeout).await?;
        let result = async {
            check_current(&ws, &file.plan).await?;
            apply_and_verify(&ws, &file.plan).await
        }
        .await;
        lock.release(&ws.hosts).await;
        return result;
    }
    let ws = Workspace::open(target)?.scope(&opts.scope)?;
    let lock = ws.lock("apply", opts.lock_timeout).await?;
    let result = async {
        let plan = ws.plan().await?;
        print!("{}", render::text::plan(&plan, stdout_color()));
        if plan.is_empty() {
            return Ok(EXIT_OK);
        }
        if !opts.auto_approve && !confirm()? {
            println!("Apply cancelled.");
            return Ok(EXIT_OK);
        }
        apply_and_verify(&ws, &plan).await
    }
    .await;
    lock.release(&ws.hosts).await;
    result
}

/// Apply a plan (the caller holds the lock), report, and check that a fresh plan is empty.
pub async fn apply_and_verify(ws: &Workspace, plan: &Plan) -> Result<u8> {
    let bar = progress(plan.changes.len());
    let on_done = |addr: &groundwork_sdk::Address, _: &engine::Outcome| {
        bar.set_message(addr.to_string());
        bar.inc(1);
    };
    let started = std::time::Instant::now();
    let report = engine::apply(&ws.registry, &ws.hosts, plan, &on_done).await?;
    bar.finish_and_clear();
    tracing::info!(apply_ms = started.elapsed().as_millis() as u64, changes = plan.changes.len(), "apply");
    print!("{}", render::text::apply_report(&report, stdout_color()));
    if report.failed() > 0 {
        return Err(Error::ApplyFailed { failed: report.failed() });
    }
    // Verify: what was applied must now read back as desired.
    let after = ws.plan().await?;
    if !after.is_empty() {
        print!("{}", render::text::plan(&after, stdout_color()));
        return Err(Error::Usage(format!(
            "apply finished but {} change(s) remain: the hosts do not read back as desired",
            after.changes.len()
        )));
    }
    println!("Verified: a fresh plan shows no changes.");
    Ok(EXIT_OK)
}

/// A saved plan applies only over the state it was made against.
async fn check_current(ws: &Workspace, saved: &Plan) -> Result<()> {
    let now = ws.plan().await?;
    let stale: Vec<String> = saved
        .observed
        .iter()
        .filter(|(addr, fp)| now.observed.get(*addr).map(String::as_str).unwrap_or(&fingerprint(None)) != fp.as_str())
        .map(|(a, _)| a.clone())
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(Error::StalePlan { addresses: stale })
    }
}

fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "refusing to apply without confirmation: stdin is not a terminal (use --auto-approve or apply a saved plan)".into(),
        ));
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Io { path: "stdin".into(), message: e.to_string() })?;
    Ok(line.trim() == "yes")
}

fn progress(n: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}") {
        bar.set_style(style);
    }
    bar
}
