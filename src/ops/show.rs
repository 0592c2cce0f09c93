//! Saved plans: written by `plan --out`, rendered by `show`, applied by `apply FILE`.
//!
//! A plan file is bound to what it was made from and guarded against edits:
//!
//! ```text
//! {"format_version": 2, "body_sha256": "<sha256 of the body's exact bytes>", "body": {
//!    "environment": {"cluster": "lab", "digest": "…", "inputs": {"nodes.yaml": "<sha256>", …}},
//!    "env_path": "environments/lab", "created_unix": …, "plan": {…}}}
//! ```
//!
//! Secret content is in it by digest only (`{"$secret": …}`). It names its environment by a path
//! relative to the directory it was made in, so a plan made in one CI job applies in another whose
//! checkout directory differs; the environment found there must have the same identity.

use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::render;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const PLAN_FILE_FORMAT: u32 = 2;

/// What a saved plan belongs to: the cluster and every file its environment was read from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    pub cluster: String,
    /// sha256 over `inputs` (path and digest of each, in order).
    pub digest: String,
    /// Path (relative to the environment directory, or absolute under `files.source_dirs`) → sha256:
    /// the YAML files, templates, uploaded sources, manifests (a directory's listing ends in `/`).
    pub inputs: BTreeMap<String, String>,
}

impl Identity {
    pub fn new(cluster: &str, inputs: BTreeMap<String, String>) -> Identity {
        let mut h = Sha256::new();
        for (k, v) in &inputs {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([b'\n']);
        }
        Identity { cluster: cluster.to_string(), digest: hex::encode(h.finalize()), inputs }
    }

    /// What differs from `now`, as `changed: a, b; added: c; removed: d`; empty when they are equal.
    pub fn differences(&self, now: &Identity) -> String {
        let list = |v: Vec<&String>| v.into_iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        let changed: Vec<&String> =
            self.inputs.iter().filter(|(k, v)| now.inputs.get(*k).is_some_and(|n| n != *v)).map(|(k, _)| k).collect();
        let removed: Vec<&String> = self.inputs.keys().filter(|k| !now.inputs.contains_key(*k)).collect();
        let added: Vec<&String> = now.inputs.keys().filter(|k| !self.inputs.contains_key(*k)).collect();
        let mut parts = Vec::new();
        for (what, v) in [("changed", changed), ("added", added), ("removed", removed)] {
            if !v.is_empty() {
                parts.push(format!("{what}: {}", list(v)));
            }
        }
        parts.join("; ")
    }
}

/// The body of a plan file.
#[derive(Serialize, Deserialize)]
pub struct PlanBody {
    pub environment: Identity,
    /// The environment directory, relative to the directory the plan was made in when it lies below it.
    pub env_path: String,
    pub created_unix: u64,
    pub plan: Plan,
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    format_version: u32,
    body_sha256: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// `env_dir` as a path relative to the current directory when it lies below it, else as given.
fn portable(env_dir: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let rel = match (env_dir.is_absolute(), cwd) {
        (true, Some(cwd)) => env_dir.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or_else(|_| env_dir.into()),
        _ => env_dir.to_path_buf(),
    };
    // `./a/b/` → `a/b`
    let clean: PathBuf = rel.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    if clean.as_os_str().is_empty() {
        ".".into()
    } else {
        clean.to_string_lossy().into_owned()
    }
}

pub fn save(plan: &Plan, identity: &Identity, env_dir: &Path, created_unix: u64, out: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: out.display().to_string(), message: e.to_string() };
    let bad = |e: serde_json::Error| Error::PlanFile { path: out.display().to_string(), message: e.to_string() };
    let body =
        PlanBody { environment: identity.clone(), env_path: portable(env_dir), created_unix, plan: plan.clone() };
    let body = serde_json::to_string_pretty(&body).map_err(bad)?;
    let raw = RawValue::from_string(body).map_err(bad)?;
    let envelope = Envelope {
        format_version: PLAN_FILE_FORMAT,
        body_sha256: hex::encode(Sha256::digest(raw.get().as_bytes())),
        body: &raw,
    };
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(bad)?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

/// Read a plan file: refused unless its body still has the digest it was saved with.
pub fn load(path: &Path) -> Result<PlanBody> {
    let bad = |m: String| Error::PlanFile { path: path.display().to_string(), message: m };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(|f| f.as_u64()))
        .or_else(|| {
            // Format 1 kept its version inside the plan.
            serde_json::from_str::<serde_json::Value>(&text).ok()?.get("plan")?.get("format_version")?.as_u64()
        });
    if version.is_some_and(|v| v != u64::from(PLAN_FILE_FORMAT)) {
        return Err(bad(format!(
            "plan file format {} is not supported by this version (make the plan again)",
            version.unwrap_or_default()
        )));
    }
    let envelope: Envelope = serde_json::from_str(&text).map_err(|e| bad(format!("not a groundwork plan: {e}")))?;
    if envelope.format_version != PLAN_FILE_FORMAT {
        return Err(bad(format!(
            "plan file format {} is not supported by this version (make the plan again)",
            envelope.format_version
        )));
    }
    let digest = hex::encode(Sha256::digest(envelope.body.get().as_bytes()));
    if digest != envelope.body_sha256 {
        return Err(bad(format!(
            "the plan was modified after it was saved (body digest {digest}, saved as {}); make a new plan",
            envelope.body_sha256
        )));
    }
    let body: PlanBody =
        serde_json::from_str(envelope.body.get()).map_err(|e| bad(format!("not a groundwork plan: {e}")))?;
    if body.plan.format_version != crate::engine::plan::PLAN_FORMAT_VERSION {
        return Err(bad(format!("plan format {} is not supported by this version", body.plan.format_version)));
    }
    Ok(body)
}

/// Whether `path` is a plan file (as opposed to an environment): JSON with a format version and a body
/// digest (this format), or a versioned plan inside (format 1, which `load` then refuses by name).
pub fn is_plan_file(path: &Path) -> bool {
    path.is_file()
        && std::fs::read(path).is_ok_and(|b| {
            serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| {
                (v.get("format_version").is_some() && v.get("body_sha256").is_some())
                    || v.get("plan").and_then(|p| p.get("format_version")).is_some()
            })
        })
}

pub fn run(path: &Path, json: bool) -> Result<String> {
    let file = load(path)?;
    Ok(if json { render::json::plan(&file.plan) } else { render::text::plan(&file.plan, super::stdout_color()) })
}
