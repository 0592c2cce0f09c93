//! The apply lock: one lock file per environment on every infra host it touches, so every pipeline
//! runner sees it (never only the runner's own disk). Created with O_EXCL (`set -C`), holding who, where,
//! since when, and for which plan.

use crate::error::{Error, Result};
use crate::transport::Hosts;
use groundwork_sdk::transport::Cmd;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn lock_path(environment: &str) -> String {
    format!("{}/{environment}.lock", super::state::STATE_DIR)
}

/// What a lock records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub id: String,
    pub holder: String,
    pub runner: String,
    pub pid: u32,
    pub started_unix: u64,
    pub environment: String,
    /// What the holder is doing (`apply`, `apply plan.json`, `drift --heal`).
    pub operation: String,
}

impl LockInfo {
    pub fn new(environment: &str, operation: &str) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let pid = std::process::id();
        LockInfo {
            id: format!("{:016x}", (now as u64) ^ ((pid as u64) << 40)),
            holder: std::env::var("USER")
                .or_else(|_| std::env::var("GITLAB_USER_LOGIN"))
                .unwrap_or_else(|_| "unknown".into()),
            runner: runner_name(),
            pid,
            started_unix: (now / 1_000_000_000) as u64,
            environment: environment.to_string(),
            operation: operation.to_string(),
        }
    }

    /// A lock left by a job on this same runner whose process is gone is certainly stale.
    pub fn is_stale_here(&self) -> bool {
        self.runner == runner_name() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    pub fn describe(&self) -> String {
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(self.started_unix);
        let stale = if self.is_stale_here() { " — STALE: that process is gone" } else { "" };
        format!(
            "lock {} held by {} on {} (pid {}) for `{}` since {}s ago{stale}",
            self.id, self.holder, self.runner, self.pid, self.operation, age
        )
    }
}

fn runner_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Create the lock file only if it does not exist; print the existing one otherwise.
const ACQUIRE: &str = r#"set -C; mkdir -p "$(dirname "$1")" && { printf '%s\n' "$2" > "$1"; } 2>/dev/null && exit 0; cat "$1" 2>/dev/null; exit 3"#;
/// Remove the lock only if it is ours (by id).
const RELEASE: &str = r#"grep -q "\"id\":\"$2\"" "$1" 2>/dev/null && rm -f "$1"; exit 0"#;

/// Locks held on a set of hosts; released with [`Held::release`].
pub struct Held {
    pub info: LockInfo,
    hosts: Vec<String>,
}

async fn try_acquire(
    hosts: &Hosts,
    host_names: &[String],
    info: &LockInfo,
) -> Result<std::result::Result<Held, LockInfo>> {
    let json = serde_json::to_string(info).map_err(|e| Error::Io { path: "lock".into(), message: e.to_string() })?;
    let take = |h: String| {
        let json = json.clone();
        async move {
            let t = hosts.transport(&h).await?;
            let cmd = Cmd::new("sh")
                .arg("-c")
                .arg(ACQUIRE)
                .arg("groundwork-lock")
                .path(lock_path(&info.environment))
                .arg(&json);
            let out = t.exec(&cmd).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
            Ok::<_, Error>((h, out))
        }
    };
    // The first host (by name) is taken alone: a second runner stops there, so the others can be taken
    // side by side without two runners ever holding parts of the set.
    let Some((first, rest)) = host_names.split_first() else {
        return Ok(Ok(Held { info: info.clone(), hosts: Vec::new() }));
    };
    let mut results = vec![take(first.clone()).await];
    if results[0].as_ref().is_ok_and(|(_, out)| out.success()) {
        results.extend(futures::future::join_all(rest.iter().cloned().map(take)).await);
    }
    let mut got = Vec::new();
    let mut refused: Option<Result<LockInfo>> = None;
    for r in results {
        match r {
            Ok((h, out)) if out.success() => got.push(h),
            Ok((h, out)) => {
                let other = serde_json::from_slice::<LockInfo>(&out.stdout).ok().ok_or_else(|| Error::Host {
                    host: h.clone(),
                    message: format!("cannot take the lock: {}", out.message()),
                });
                refused.get_or_insert(other);
            }
            Err(e) => {
                refused.get_or_insert(Err(e));
            }
        }
    }
    match refused {
        None => Ok(Ok(Held { info: info.clone(), hosts: got })),
        Some(other) => {
            // Someone else holds it (or a host failed): give back what we took, in any case.
            Held { info: info.clone(), hosts: got }.release(hosts).await;
            other.map(Err)
        }
    }
}

/// Take the lock on every host (sorted, so two runners cannot deadlock), failing fast with the holder's
/// details, or waiting up to `wait` for it.
pub async fn acquire(
    hosts: &Hosts,
    host_names: &[String],
    environment: &str,
    operation: &str,
    wait: Option<Duration>,
) -> Result<Held> {
    let mut names = host_names.to_vec();
    names.sort();
    names.dedup();
    let info = LockInfo::new(environment, operation);
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        match try_acquire(hosts, &names, &info).await? {
            Ok(held) => return Ok(held),
            Err(other) => match deadline {
                Some(d) if tokio::time::Instant::now() < d => tokio::time::sleep(Duration::from_millis(500)).await,
                _ => {
                    let hint =
                        if wait.is_some() { "still held after --lock-timeout" } else { "another apply is running" };
                    return Err(Error::Locked {
                        message: format!(
                            "{hint}: {}; if that job is gone: groundwork force-unlock {} ENV",
                            other.describe(),
                            other.id
                        ),
                    });
                }
            },
        }
    }
}

impl Held {
    /// Give the lock back on every host at once. A host that cannot be reached keeps its lock file;
    /// the next run names it and the force-unlock command.
    pub async fn release(self, hosts: &Hosts) {
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg(RELEASE)
            .arg("groundwork-unlock")
            .path(lock_path(&self.info.environment))
            .arg(&self.info.id);
        let id = &self.info.id;
        futures::future::join_all(self.hosts.iter().map(|h| {
            let cmd = cmd.clone();
            async move {
                let result = match hosts.transport(h).await {
                    Ok(t) => t.exec(&cmd).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = result {
                    tracing::warn!(host = %h, error = %e, "could not release the lock (id {id})");
                }
            }
        }))
        .await;
    }
}

/// Remove locks with this id from every host (the holder is gone).
pub async fn force_unlock(hosts: &Hosts, host_names: &[String], environment: &str, id: &str) -> Result<usize> {
    let mut removed = 0;
    for h in host_names {
        let t = hosts.transport(h).await?;
        let path = lock_path(environment);
        let before = t.read_file(&path).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
        let ours = before.as_ref().and_then(|b| serde_json::from_slice::<LockInfo>(b).ok()).is_some_and(|l| l.id == id);
        if ours {
            t.remove_file(&path).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The lock currently on any host, if one is.
pub async fn current(hosts: &Hosts, host_names: &[String], environment: &str) -> Result<Option<LockInfo>> {
    for h in host_names {
        let t = hosts.transport(h).await?;
        let b = t
            .read_file(&lock_path(environment))
            .await
            .map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
        if let Some(info) = b.and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok()) {
            return Ok(Some(info));
        }
    }
    Ok(None)
}
