//! Saved plans: written by `plan --out`, rendered by `show`, applied by `apply FILE`.

use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::render;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A plan file: the plan plus where its environment lives.
#[derive(Serialize, Deserialize)]
pub struct PlanFile {
    /// Environment directory, absolute.
    pub env_dir: PathBuf,
    pub created_unix: u64,
    pub plan: Plan,
}

pub fn save(plan: &Plan, env_dir: &Path, out: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: out.display().to_string(), message: e.to_string() };
    let env_dir = std::fs::canonicalize(env_dir).map_err(io)?;
    let created_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let file = PlanFile { env_dir, created_unix, plan: plan.clone() };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::PlanFile { path: out.display().to_string(), message: e.to_string() })?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

pub fn load(path: &Path) -> Result<PlanFile> {
    let bad = |m: String| Error::PlanFile { path: path.display().to_string(), message: m };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file: PlanFile = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a groundwork plan: {e}")))?;
    if file.plan.format_version != crate::engine::plan::PLAN_FORMAT_VERSION {
        return Err(bad(format!("plan format {} is not supported by this version", file.plan.format_version)));
    }
    Ok(file)
}

pub fn run(path: &Path, json: bool) -> Result<String> {
    let file = load(path)?;
    Ok(if json { render::json::plan(&file.plan) } else { render::text::plan(&file.plan, super::stdout_color()) })
}
