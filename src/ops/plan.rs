use super::{stdout_color, Workspace, EXIT_CHANGES, EXIT_OK};
use crate::error::Result;
use crate::render;
use std::path::{Path, PathBuf};

pub struct PlanOptions {
    pub json: bool,
    pub out: Option<PathBuf>,
    pub detailed_exitcode: bool,
    pub scope: super::Scope,
}

pub async fn run(path: &Path, opts: &PlanOptions) -> Result<u8> {
    let ws = Workspace::open(path)?.scope(&opts.scope)?;
    let plan = ws.plan().await?;
    if opts.json {
        crate::outln!("{}", render::json::plan(&plan));
    } else {
        crate::out!("{}", render::text::plan(&plan, stdout_color()));
    }
    if let Some(out) = &opts.out {
        super::show::save(&plan, &ws.identity(), path, ws.now, out)?;
        if !opts.json {
            crate::outln!("Saved the plan to {}; apply it with: groundwork apply {}", out.display(), out.display());
        }
    }
    // Resources waiting on a gate are changes still to come.
    Ok(if opts.detailed_exitcode && !plan.is_converged() { EXIT_CHANGES } else { EXIT_OK })
}
