use crate::config::ConfigError;
use thiserror::Error;

/// Errors of the groundwork crate (engine, transports, ops). Provider errors carry their address.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Provider(#[from] groundwork_sdk::Error),
    #[error("dependency cycle between: {}", .members.join(" → "))]
    Cycle { members: Vec<String> },
    #[error("{address} depends on {missing}, which is not declared")]
    MissingDependency { address: String, missing: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("plan file {path}: {message}")]
    PlanFile { path: String, message: String },
    #[error("the plan is stale: observed state changed since it was made for {}", .addresses.join(", "))]
    StalePlan { addresses: Vec<String> },
    #[error("the plan is not what the environment produces over the state it was made against, for {}: it was edited after it was made; make a new plan", .addresses.join(", "))]
    PlanMismatch { addresses: Vec<String> },
    #[error("host {host}: {message}")]
    Host { host: String, message: String },
    #[error("apply failed for {failed} resource(s)")]
    ApplyFailed { failed: usize },
    #[error("{message}")]
    Locked { message: String },
    #[error("cluster: {message}")]
    Cluster { message: String },
    #[error("gate {gate} has not passed after {waited_secs}s: {detail}. Nothing behind it was applied; run apply again to resume from here")]
    GateTimeout { gate: String, waited_secs: u64, detail: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
