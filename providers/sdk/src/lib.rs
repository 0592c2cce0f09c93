//! # groundwork-sdk
//!
//! The contract between the groundwork engine and its providers:
//!
//! - [`Address`], [`Resource`], [`Change`] and [`Action`]: the data the engine plans with;
//! - [`Provider`]: `read` (I/O, batched per host), `diff` (pure), `apply` (I/O);
//! - [`Transport`]: the only way a provider reaches a host (commands as argv, file reads, atomic
//!   writes, streaming uploads), with [`local::LocalTransport`] for tests and local stand-ins;
//! - [`file`]: the shared whole-file logic (checker before activation, restore on failed reload);
//! - [`secret`]: secret-bearing content, carried by digest only ([`SecretRef`]) and held in memory
//!   ([`Secrets`]);
//! - [`expansion`]: what providers derive resources with: confined, recorded local inputs ([`Inputs`]);
//! - [`model`]: the environment model every provider derives its resources from.

pub mod address;
pub mod boot;
pub mod cached;
pub mod error;
pub mod expansion;
pub mod file;
pub mod gate;
pub mod joint;
pub mod local;
pub mod model;
pub mod provider;
pub mod resource;
pub mod secret;
pub mod transport;
pub mod value;
pub mod yaml;

pub use address::Address;
pub use error::{Error, TransportError};
pub use expansion::{Expansion, Inputs};
pub use gate::{Gate, GateStatus, Phase};
pub use provider::{Context, Provider};
pub use resource::{decode, fingerprint, set_details, Action, Change, Detail, DetailOp, Lifecycle, Resource, TextDiff};
pub use secret::{SecretRef, Secrets};
pub use transport::{Batch, Cmd, ExecOutput, FileMeta, Prefetch, Transport, UploadOutcome, WriteOptions};
