//! Command-line interface (clap derive). Parsing only: ops do the work.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// `90`, `30s`, `15m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Parser, Debug)]
#[command(name = "groundwork", version, about = "Plan/apply reconciler for OpenShift bare-metal (UPI) infrastructure")]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--target` / `--exclude`, shared by plan, apply and drift.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Only resources whose address matches this glob (repeatable), plus what they depend on.
    #[arg(long = "target", value_name = "PATTERN")]
    pub targets: Vec<String>,
    /// Leave out resources whose address matches this glob (repeatable).
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the environment offline: schema and cross-resource rules. Opens no connection.
    Validate {
        /// Environment directory (or file).
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
    },
    /// Read the actual state and show what apply would change.
    Plan {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        /// Machine-readable output (docs/plan-json.md).
        #[arg(long)]
        json: bool,
        /// Save the plan for `apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Apply changes: a saved plan exactly, or a fresh plan after confirmation.
    Apply {
        /// Environment directory, or a plan file saved with `plan --out`.
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        target: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// With a plan file: the environment directory to apply it to (default: the one the plan names,
        /// relative to the current directory). Its identity must match the plan's.
        #[arg(long, value_name = "DIR")]
        env: Option<PathBuf>,
        /// Wait this long for another run's lock (e.g. 30s, 5m) instead of failing at once.
        #[arg(long, value_parser = parse_duration)]
        lock_timeout: Option<Duration>,
        /// Wait at most this long for each install gate (default: openshift.gate_timeouts).
        #[arg(long, value_parser = parse_duration)]
        gate_timeout: Option<Duration>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Report drift: exit 0 none, 2 drift, 1 error.
    Drift {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also write Prometheus metrics to this file (node_exporter textfile format).
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
        /// Keep running: check on this interval (e.g. 15m) and serve /metrics.
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
        /// Address of the metrics endpoint in --every mode.
        #[arg(long, default_value = "127.0.0.1:9810")]
        listen: String,
        /// Apply the drift-correcting plan (same lock and checks as apply).
        #[arg(long)]
        heal: bool,
        #[arg(long, value_parser = parse_duration)]
        lock_timeout: Option<Duration>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Probe behaviour from a host inside the network: DNS answers, LB frontends, served files, backends.
    Verify {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        #[arg(long)]
        json: bool,
        /// Infra host the probes run on (default: the http host).
        #[arg(long)]
        from: Option<String>,
    },
    /// Remove a lock left by a job that is gone (only the lock with this id).
    ForceUnlock {
        id: String,
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
    },
    /// Print the resource graph as DOT.
    Graph {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
    },
    /// Render an input of the installer from the environment.
    Render {
        #[command(subcommand)]
        what: RenderWhat,
    },
    /// Render a saved plan.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RenderWhat {
    /// install-config.yaml for openshift-install (it holds the pull secret: written to a file only).
    InstallConfig {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        /// Where to write it (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}
