//! `destroy ENV`: remove everything the environment's ownership records hold, and nothing else. What
//! other environments sharing the hosts still use is left to them (refcounted by owner); a file they
//! own together keeps their parts. Same confirmation rules and lock as apply.

use super::apply::{apply_and_verify, confirm, refused_without_terminal, show_plan};
use super::{events, Workspace, EXIT_OK};
use crate::error::{Error, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

pub struct DestroyOptions {
    pub auto_approve: bool,
    /// Wait this long for another run's lock instead of failing at once.
    pub lock_timeout: Option<Duration>,
    /// An event stream on stdout instead of text.
    pub json: bool,
}

pub async fn run(target: &Path, opts: &DestroyOptions) -> Result<u8> {
    if opts.json {
        events::enable();
    }
    let result = destroy(target, opts).await;
    events::finished(&result);
    result
}

async fn destroy(target: &Path, opts: &DestroyOptions) -> Result<u8> {
    if !opts.auto_approve && !std::io::stdin().is_terminal() {
        return Err(refused_without_terminal("destroy", ""));
    }
    let mut ws = Workspace::open(target)?;
    ws.nothing_desired = true;
    let lock = ws.lock("destroy", opts.lock_timeout).await?;
    let result = async {
        let plan = ws.plan().await?;
        show_plan(&plan);
        if plan.is_converged() {
            events::text(&format!("Nothing to destroy: no host holds a record of {}.\n", ws.loaded.name));
            return Ok(EXIT_OK);
        }
        if !opts.auto_approve && !confirm()? {
            return Err(Error::Usage("destroy cancelled: nothing was changed".into()));
        }
        apply_and_verify(&ws, &plan).await
    }
    .await;
    ws.unlock(lock).await;
    result
}
