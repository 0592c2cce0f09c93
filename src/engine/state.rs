//! Ownership records: what groundwork wrote on each host, kept on that host so every pipeline
//! runner sees the same record. Only what is recorded is ever deleted.

use crate::error::{Error, Result};
use groundwork_sdk::{Address, Resource, Transport, WriteOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const STATE_DIR: &str = "/var/lib/groundwork";

pub fn state_path(environment: &str) -> String {
    format!("{STATE_DIR}/{environment}.state.json")
}

/// The record on one host: address → the spec it was last applied with.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub format_version: u32,
    pub environment: String,
    pub resources: BTreeMap<Address, Resource>,
}

impl Record {
    pub fn new(environment: &str) -> Self {
        Record { format_version: 1, environment: environment.to_string(), resources: BTreeMap::new() }
    }
}

pub async fn read(t: &dyn Transport, environment: &str) -> Result<Record> {
    let path = state_path(environment);
    match t.read_file(&path).await {
        Ok(None) => Ok(Record::new(environment)),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| Error::Host {
            host: t.host().to_string(),
            message: format!("{path}: unreadable ownership record: {e}"),
        }),
        Err(e) => Err(Error::Host { host: t.host().to_string(), message: e.to_string() }),
    }
}

pub async fn write(t: &dyn Transport, record: &Record) -> Result<()> {
    let path = state_path(&record.environment);
    let bytes =
        serde_json::to_vec_pretty(record).map_err(|e| Error::Io { path: path.clone(), message: e.to_string() })?;
    t.write_file(&path, &bytes, &WriteOptions { mode: Some(0o600), ..Default::default() })
        .await
        .map_err(|e| Error::Host { host: t.host().to_string(), message: e.to_string() })
}
