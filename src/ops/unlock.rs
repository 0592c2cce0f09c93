use super::Workspace;
use crate::engine::lock;
use crate::error::{Error, Result};
use std::path::Path;

/// `force-unlock ID ENV`: remove a lock whose holder is gone, only if it has that id.
pub async fn run(path: &Path, id: &str) -> Result<String> {
    let ws = Workspace::open(path)?;
    match lock::current(&ws.hosts, &ws.host_names(), &ws.lock_name()).await? {
        None => Ok(format!("{} is not locked.", ws.loaded.name)),
        Some(info) if info.id != id => {
            Err(Error::Locked { message: format!("the lock is not {id}: {}; nothing was removed", info.describe()) })
        }
        Some(info) => {
            let n = lock::force_unlock(&ws.hosts, &ws.host_names(), &ws.lock_name(), id).await?;
            Ok(format!("Removed {} from {n} host(s).", info.describe()))
        }
    }
}
