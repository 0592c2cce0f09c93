//! Command-line interface (clap derive). Parsing only: ops do the work.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "groundwork", version, about = "Plan/apply reconciler for OpenShift bare-metal (UPI) infrastructure")]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
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
    },
    /// Apply changes: a saved plan exactly, or a fresh plan after confirmation.
    Apply {
        /// Environment directory, or a plan file saved with `plan --out`.
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        target: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Print the resource graph as DOT.
    Graph {
        #[arg(default_value = ".", env = "GROUNDWORK_ENV")]
        env: PathBuf,
    },
    /// Render a saved plan.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}
