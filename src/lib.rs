//! # groundwork
//!
//! Declarative plan/apply reconciler for the infrastructure of OpenShift bare-metal (UPI) installs.
//! Pipeline: load → validate → graph → refresh → plan → apply → verify (docs/architecture.md).

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod import;
pub mod install;
pub mod ops;
pub mod output;
pub mod render;
pub mod transport;

pub use error::{Error, Result};
