//! Command-line interface (clap derive). Parsing only: ops do the work.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// A duration as people write them: `90` (seconds), `30s`, `15m`, `2h`, `1h30m`, `2m30s`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let bad = || format!("{s:?} is not a duration like 90s, 15m, 2h or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h, d)")),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The version with the commit it was built from (`0.1.0 (abc1234)`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GROUNDWORK_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "groundwork",
    version = VERSION,
    about = "Plan/apply reconciler for OpenShift bare-metal (UPI) infrastructure"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors in the log, and no progress bars (what is printed as the result stays).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No colour, even on a terminal (as NO_COLOR does).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// OpenSSH client config to read instead of the environment's `ssh.config` or ~/.ssh/config
    /// (`none`: read none), as `ssh -F`.
    #[arg(short = 'F', long, global = true, value_name = "FILE", env = "GROUNDWORK_SSH_CONFIG")]
    pub ssh_config: Option<PathBuf>,
    /// kubeconfig context to use instead of `openshift.context` or the current-context, as `kubectl --context`.
    #[arg(long, global = true, value_name = "NAME", env = "GROUNDWORK_CONTEXT")]
    pub context: Option<String>,
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
        /// How to report: text, json (a diagnostics array with file, line, column, rule, message), or
        /// github (workflow annotations on the lines at fault).
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// The same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Read the actual state and show what apply would change.
    Plan {
        /// Environment directory (or file).
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
        /// An event stream on stdout, one JSON object per line: plan, change started/done/failed, gate
        /// waiting/passed, CSR approved/refused, lock taken/released, finished (docs/schemas/events.schema.json).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Remove everything the environment's ownership records hold (what other environments sharing the
    /// hosts still use is left to them), after confirmation like apply.
    Destroy {
        /// Environment directory.
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Wait this long for another run's lock (e.g. 30s, 5m) instead of failing at once.
        #[arg(long, value_parser = parse_duration)]
        lock_timeout: Option<Duration>,
        /// An event stream on stdout, one JSON object per line (docs/schemas/events.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Report drift: exit 0 none, 2 drift, 1 error.
    Drift {
        /// Environment directory (or file).
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        /// Machine-readable report: the plan's JSON with when, how long, how many drifted, and the VIPs.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report: each resource a test case, failed when it drifted (and each VIP).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write Prometheus metrics to this file (node_exporter textfile format).
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
        /// Keep running: check on this interval (e.g. 15m) and serve the status page at /, /metrics and /healthz.
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
        /// Address of the status page and metrics in --every mode (loopback unless you say otherwise).
        #[arg(long, default_value = "127.0.0.1:9810")]
        listen: String,
        /// Apply the drift-correcting plan (same lock and checks as apply).
        #[arg(long)]
        heal: bool,
        /// With --heal: wait this long for another run's lock (e.g. 30s, 5m) instead of failing at once.
        #[arg(long, value_parser = parse_duration)]
        lock_timeout: Option<Duration>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Probe behaviour from a host inside the network: DNS answers, LB frontends, served files, backends.
    Verify {
        /// Environment directory (or file).
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
        /// Machine-readable report: every probe with its status, and the service table.
        #[arg(long)]
        json: bool,
        /// Also write a JUnit XML report: each probe and each service a test case.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Infra host the probes run on (default: the http host).
        #[arg(long)]
        from: Option<String>,
    },
    /// Read hand-made infra (BIND zones, dhcpd.conf, haproxy.cfg, the docroot) and write an environment
    /// that describes it, with a report of what it cannot say (file:line). Changes nothing on the hosts.
    Import {
        /// An environment, or a YAML file with `hosts:` (and `ssh:`), naming the infra hosts to read.
        #[arg(long, value_name = "HOSTS-OR-ENV")]
        from: PathBuf,
        /// Directory for environment.yaml and import-report.txt.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace an environment.yaml already there.
        #[arg(long)]
        force: bool,
    },
    /// Remove a lock left by a job that is gone (only the lock with this id).
    ForceUnlock {
        /// The lock's id, as plan and apply show it (`lock 189d974040f28aed held by …`).
        id: String,
        /// Environment directory (or file).
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
    },
    /// Print the resource graph as DOT.
    Graph {
        /// Environment directory (or file).
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
        /// A plan saved with `plan --out`.
        file: PathBuf,
        /// The plan as JSON (docs/plan-json.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `groundwork completions bash > /etc/bash_completion.d/groundwork`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages: groundwork.1 and one groundwork-COMMAND.1 per command (e.g. into /usr/local/share/man/man1).
    Manpages {
        /// Directory to write them into (created if missing).
        dir: PathBuf,
    },
}

/// validate's report formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    Github,
}

#[derive(Subcommand, Debug)]
pub enum RenderWhat {
    /// install-config.yaml for openshift-install (it holds the pull secret: written to a file only).
    InstallConfig {
        /// Environment directory (or file).
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_read_as_people_write_them() {
        let d = |s: &str| parse_duration(s).unwrap().as_millis();
        assert_eq!(d("90"), 90_000);
        assert_eq!(d("90s"), 90_000);
        assert_eq!(d("15m"), 900_000);
        assert_eq!(d("1h30m"), 5_400_000);
        assert_eq!(d("2m30s"), 150_000);
        assert_eq!(d("500ms"), 500);
        assert_eq!(d("1d"), 86_400_000);
        for bad in ["", "m", "1x", "1h30", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Every argument of every command says what it is.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.get_id() == "help" || a.get_id() == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "groundwork", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:?}");
        Cli::command().debug_assert();
    }
}
