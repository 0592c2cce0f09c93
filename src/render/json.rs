//! The machine-readable plan (`plan --json`), format documented in docs/plan-json.md.

use crate::engine::Plan;
use groundwork_sdk::{Action, Detail};
use serde::Serialize;

pub const JSON_FORMAT_VERSION: u32 = 1;

/// The release that wrote a JSON document: every machine-readable output names it beside its format version.
pub const GROUNDWORK_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize)]
pub struct JsonPlan<'a> {
    pub format_version: u32,
    pub groundwork_version: &'static str,
    pub environment: &'a str,
    pub summary: Summary,
    pub changes: Vec<JsonChange<'a>>,
    /// Install gates (absent without an openshift section).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub gates: &'a [crate::engine::gates::GateReport],
    /// Another run's apply lock, found while planning (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<&'a str>,
    /// Resources planned once a change of this plan is applied (the served ignition, after the installer).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub pending: &'a [crate::engine::plan::Pending],
    /// Warnings of resources that need no change.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub notes: &'a [String],
    /// Resources already as desired that apply records as groundwork's (nothing is written to them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adopt: Vec<String>,
    /// Resources this environment lets go of while other environments sharing the host keep them as
    /// they are: apply drops them from its record (nothing is written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<String>,
    /// Resources as desired whose record predates the shared hosts: apply records this environment's
    /// own part (nothing is written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rerecord: Vec<String>,
}

#[derive(Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

#[derive(Serialize)]
pub struct JsonChange<'a> {
    pub address: String,
    pub provider: &'a str,
    pub kind: &'a str,
    pub host: Option<&'a str>,
    pub name: &'a str,
    pub action: Action,
    pub details: &'a [Detail],
    /// Unified diff of the file, absent for sensitive or non-file resources.
    pub diff: Option<String>,
    pub sensitive: bool,
    pub warnings: &'a [String],
}

pub fn plan(plan: &Plan) -> String {
    serde_json::to_string_pretty(&document(plan)).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The plan as the documented JSON structure (also embedded in the drift report).
pub fn document(plan: &Plan) -> JsonPlan<'_> {
    let changes = plan
        .changes
        .iter()
        .map(|p| {
            let c = &p.change;
            JsonChange {
                address: c.address.to_string(),
                provider: &c.address.provider,
                kind: &c.address.kind,
                host: c.address.host.as_deref(),
                name: &c.address.name,
                action: c.action,
                details: &c.details,
                diff: c.diff.as_ref().filter(|_| !c.sensitive).map(|d| super::text::unified(&d.old, &d.new, &d.path)),
                sensitive: c.sensitive,
                warnings: &c.warnings,
            }
        })
        .collect();
    JsonPlan {
        format_version: JSON_FORMAT_VERSION,
        groundwork_version: GROUNDWORK_VERSION,
        environment: &plan.environment,
        summary: Summary {
            add: plan.count(Action::Create) + plan.count(Action::Replace),
            change: plan.count(Action::Update),
            destroy: plan.count(Action::Delete) + plan.count(Action::Replace),
        },
        changes,
        gates: &plan.gates,
        locked_by: plan.locked_by.as_deref(),
        pending: &plan.pending,
        notes: &plan.notes,
        adopt: plan.adopt.iter().map(|a| a.change.address.to_string()).collect(),
        release: plan.release.iter().map(|a| a.change.address.to_string()).collect(),
        rerecord: plan.rerecord.iter().map(|a| a.change.address.to_string()).collect(),
    }
}
