//! The apply lock: one lock file per environment on every infra host it touches, so every pipeline
//! runner sees it (never only the runner's own disk). Created with O_EXCL (`set -C`), holding who, where,
//! since when, and for which plan. While held, its holder touches it every [`HEARTBEAT`]: a lock whose
//! file has not been touched for [`STALE_AFTER`] (measured by the host's own clock) was left by a job
//! that is gone, whichever runner it ran on.

use crate::error::{Error, Result};
use crate::transport::Hosts;
use groundwork_sdk::transport::Cmd;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock environments sharing their infra hosts all take (`cluster.shared_infra`): their applies
/// write the same files, so they run one at a time. Not a cluster name (those are DNS labels).
pub const SHARED_LOCK: &str = "_shared-infra";

/// Whose lock an environment's apply takes: its own, or the one of every environment sharing the hosts.
pub fn lock_name(environment: &str, shared_infra: bool) -> String {
    if shared_infra {
        SHARED_LOCK.to_string()
    } else {
        environment.to_string()
    }
}

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
    /// Seconds since the holder last touched the lock file, as the host that has it saw it.
    #[serde(skip)]
    pub heartbeat_age: Option<u64>,
    /// The lock file exists but does not read as a lock (empty, cut short, garbage): its size.
    #[serde(skip)]
    pub corrupt: Option<usize>,
}

/// The id under which a corrupt lock file is cleared: `groundwork force-unlock corrupt ENV`.
pub const CORRUPT_ID: &str = "corrupt";

/// How often a holder touches its lock.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock untouched for this long has no live holder.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

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
            heartbeat_age: None,
            corrupt: None,
        }
    }

    /// A lock file that does not read as a lock.
    fn corrupt(bytes: usize, heartbeat_age: Option<u64>) -> Self {
        LockInfo {
            id: CORRUPT_ID.into(),
            holder: "?".into(),
            runner: "?".into(),
            pid: 0,
            started_unix: 0,
            environment: String::new(),
            operation: String::new(),
            heartbeat_age,
            corrupt: Some(bytes),
        }
    }

    /// Held by this very process (an apply reading its own lock).
    pub fn is_ours(&self) -> bool {
        self.runner == runner_name() && self.pid == std::process::id()
    }

    /// A lock left by a job on this same runner whose process is gone is certainly stale.
    pub fn is_stale_here(&self) -> bool {
        self.runner == runner_name() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    pub fn describe(&self) -> String {
        if let Some(bytes) = self.corrupt {
            let touched = self.heartbeat_age.map(|a| format!(", last touched {a}s ago")).unwrap_or_default();
            return format!(
                "corrupt lock: the lock file does not read as a lock ({bytes} bytes{touched}), probably left by a run \
                 that could not finish writing it; nothing holds it"
            );
        }
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(self.started_unix);
        let beat = self.heartbeat_age.map(|a| format!(", last heartbeat {a}s ago")).unwrap_or_default();
        let stale = if self.is_stale_here() {
            " — STALE: that process is gone".to_string()
        } else if let Some(a) = self.heartbeat_age.filter(|a| *a > STALE_AFTER.as_secs()) {
            format!(" — STALE: no heartbeat for {a}s (a live holder touches it every {}s)", HEARTBEAT.as_secs())
        } else {
            String::new()
        };
        format!(
            "lock {} held by {} on {} (pid {}) for `{}` since {}s ago{beat}{stale}",
            self.id, self.holder, self.runner, self.pid, self.operation, age
        )
    }
}

fn runner_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Print a lock file and, after `@@AGE`, the seconds since it was last touched (the host's clock).
macro_rules! show_lock {
    () => {
        r#"cat "$1" 2>/dev/null && a=$(stat -c %Y "$1" 2>/dev/null) && printf '\n@@AGE %s\n' "$(( $(date +%s) - a ))""#
    };
}
/// Print the lock's token on one line: how many times it was taken (its `.serial` file, written by
/// ACQUIRE), and the inode, size and mtime of the environment's ownership record. A run that takes
/// the lock and finds the token it read before its plan's first read (with the lock free then) knows
/// that nobody took the lock, and no older groundwork without a serial wrote the record, in between.
macro_rules! lock_token {
    () => {
        r#"s=; { read -r s < "$1.serial"; } 2>/dev/null; printf '%s|%s\n' "$s" "$(stat -c '%i %s %Y' -- "${1%.lock}.state.json" 2>/dev/null)""#
    };
}

/// Before every other read of a plan's batch: the lock's token, then `held` if the lock is held.
const GUARD: &str = concat!(lock_token!(), r#"; [ -e "$1" ] && echo held; exit 0"#);

/// Create the lock file only if it does not exist, whole or not at all: written to a temp file first,
/// then linked into place (link(2) fails if the lock exists, and a full disk fails the temp file, not
/// the lock); print the existing one otherwise. Once taken: print `@@WAS` and the lock's token as it
/// was, then count the taking in the serial file (a count that cannot be written gives the lock back:
/// a taking nobody counted would let another run's plan pass for current). Exit 3: held; 4: could not
/// be written.
const ACQUIRE: &str = concat!(
    r#"d=${1%/*}; [ -d "$d" ] || mkdir -p "$d" || exit 4
t=$(mktemp "$d/.groundwork-lock-XXXXXX") || exit 4
if ! { printf '%s\n' "$2" > "$t" && sync -- "$t"; } 2>/dev/null; then rm -f -- "$t"; echo "cannot write the lock in $d" >&2; df -h -- "$d" >&2; exit 4; fi
if ln -- "$t" "$1" 2>/dev/null; then rm -f -- "$t"
printf '@@WAS '; "#,
    lock_token!(),
    r#"
n=${s%%[!0-9]*}
if ! { printf '%s\n' $((${n:-0} + 1)) > "$1.serial.new" && sync -- "$1.serial.new" && mv -f -- "$1.serial.new" "$1.serial"; } 2>/dev/null; then
rm -f -- "$1.serial.new" "$1"; echo "cannot count the lock in $d" >&2; df -h -- "$d" >&2; exit 4; fi
exit 0; fi
rm -f -- "$t"
"#,
    show_lock!(),
    "; exit 3"
);
/// The lock as it stands, if any.
const SHOW: &str = concat!(r#"[ -e "$1" ] || exit 0; "#, show_lock!());
/// Remove the lock only if it is ours (by id).
const RELEASE: &str = r#"grep -q "\"id\":\"$2\"" "$1" 2>/dev/null && rm -f "$1"; exit 0"#;
/// Remove the lock file only if it is still the same corrupt file ($2: its content's sha256, or "").
const CLEAR_CORRUPT: &str =
    r#"[ -e "$1" ] || exit 0; s=$(sha256sum < "$1" | cut -c1-64); [ "$s" = "$2" ] && rm -f -- "$1"; exit 0"#;
/// Touch the lock only if it is still ours.
const TOUCH: &str = r#"grep -q "\"id\":\"$2\"" "$1" 2>/dev/null && touch -c "$1"; exit 0"#;

/// A lock as SHOW/ACQUIRE print it (or the bare lock file): None when there is no lock, a corrupt lock
/// when there is a file that does not read as one.
pub fn parse_shown(out: &[u8]) -> Option<LockInfo> {
    let text = String::from_utf8_lossy(out);
    let (json, age) = match text.rsplit_once("@@AGE ") {
        Some((json, age)) => (json.strip_suffix('\n').unwrap_or(json).to_string(), age.trim().parse().ok()),
        None => (text.to_string(), None),
    };
    match serde_json::from_str::<LockInfo>(json.trim()) {
        Ok(mut info) => {
            info.heartbeat_age = age;
            Some(info)
        }
        // SHOW prints @@AGE only for a file that exists; a bare read is a file that exists.
        Err(_) if age.is_some() || !out.is_empty() => Some(LockInfo::corrupt(json.len(), age)),
        Err(_) => None,
    }
}

/// A lock file as read whole (the batched read of a plan): None when absent.
pub fn parse_file(bytes: Option<&[u8]>) -> Option<LockInfo> {
    let bytes = bytes?;
    parse_shown(bytes).or_else(|| Some(LockInfo::corrupt(bytes.len(), None)))
}

/// The lock guard a plan runs on each host before anything else it reads ([`GUARD`]).
pub fn guard(lock_name: &str) -> Cmd {
    Cmd::new("sh").arg("-c").arg(GUARD).arg("groundwork-lock-guard").path(lock_path(lock_name))
}

/// The token a [`guard`] printed, if the lock was free.
pub fn parse_guard(out: &groundwork_sdk::ExecOutput) -> Option<String> {
    let text = out.stdout_str();
    let mut lines = text.lines();
    let token = lines.next()?;
    (out.success() && token.contains('|') && lines.next().is_none()).then(|| token.to_string())
}

/// The token an ACQUIRE that took the lock printed (`@@WAS …`).
fn parse_taken(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    text.lines().find_map(|l| l.strip_prefix("@@WAS ")).filter(|t| t.contains('|')).map(str::to_string)
}

fn lock_cmd(script: &str, name: &str, info: &LockInfo, arg: &str) -> Cmd {
    Cmd::new("sh").arg("-c").arg(script).arg(name).path(lock_path(&info.environment)).arg(arg)
}

/// Locks held on a set of hosts; released with [`Held::release`]. Touched every [`HEARTBEAT`] meanwhile.
pub struct Held {
    pub info: LockInfo,
    hosts: Vec<String>,
    /// Per host, the lock's token as it was just before this run took it.
    taken_after: BTreeMap<String, String>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Held {
    fn new(info: &LockInfo, hosts: Vec<String>) -> Self {
        Held { info: info.clone(), hosts, taken_after: BTreeMap::new(), heartbeat: None }
    }

    /// Nobody took the lock on any host since these tokens were read (each with the lock free, before
    /// anything else of a plan): what that plan read is what this holder would read now.
    pub fn nothing_since(&self, read: &BTreeMap<String, String>) -> bool {
        !self.hosts.is_empty()
            && self.hosts.iter().all(|h| matches!((self.taken_after.get(h), read.get(h)), (Some(a), Some(b)) if a == b))
    }

    /// Touch the lock on every host it is held on, every `every`, until released.
    async fn beat(mut self, all: &Hosts, every: Duration) -> Self {
        let mut transports = Vec::new();
        for h in &self.hosts {
            if let Ok(t) = all.transport(h).await {
                transports.push(t);
            }
        }
        let cmd = lock_cmd(TOUCH, "groundwork-lock-heartbeat", &self.info, &self.info.id);
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for t in &transports {
                    if let Err(e) = t.exec(&cmd).await {
                        tracing::debug!(host = t.host(), error = %e, "lock heartbeat failed");
                    }
                }
            }
        }));
        self
    }
}

impl Drop for Held {
    /// A lock dropped without release (an error path) stops its heartbeat: it will read as STALE.
    fn drop(&mut self) {
        if let Some(beat) = &self.heartbeat {
            beat.abort();
        }
    }
}

async fn try_acquire(
    hosts: &Hosts,
    host_names: &[String],
    info: &LockInfo,
    heartbeat: Duration,
) -> Result<std::result::Result<Held, LockInfo>> {
    let json = serde_json::to_string(info).map_err(|e| Error::Io { path: "lock".into(), message: e.to_string() })?;
    let take = |h: String| {
        let json = json.clone();
        async move {
            let t = hosts.transport(&h).await?;
            let cmd = lock_cmd(ACQUIRE, "groundwork-lock", info, &json);
            let out = t.exec(&cmd).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
            Ok::<_, Error>((h, out))
        }
    };
    // The first host (by name) is taken alone: a second runner stops there, so the others can be taken
    // side by side without two runners ever holding parts of the set.
    let Some((first, rest)) = host_names.split_first() else {
        return Ok(Ok(Held::new(info, Vec::new())));
    };
    let mut results = vec![take(first.clone()).await];
    if results[0].as_ref().is_ok_and(|(_, out)| out.success()) {
        results.extend(futures::future::join_all(rest.iter().cloned().map(take)).await);
    }
    let mut got = Vec::new();
    let mut taken_after = BTreeMap::new();
    let mut refused: Option<Result<LockInfo>> = None;
    for r in results {
        match r {
            Ok((h, out)) if out.success() => {
                if let Some(token) = parse_taken(&out.stdout) {
                    taken_after.insert(h.clone(), token);
                }
                got.push(h)
            }
            Ok((h, out)) => {
                let other = match (out.code, parse_shown(&out.stdout)) {
                    (3, Some(info)) => Ok(info),
                    _ => Err(Error::Host {
                        host: h.clone(),
                        message: format!("cannot take the lock (nothing was written): {}", out.message()),
                    }),
                };
                refused.get_or_insert(other);
            }
            Err(e) => {
                refused.get_or_insert(Err(e));
            }
        }
    }
    match refused {
        None => {
            let mut held = Held::new(info, got);
            held.taken_after = taken_after;
            Ok(Ok(held.beat(hosts, heartbeat).await))
        }
        Some(other) => {
            // Someone else holds it (or a host failed): give back what we took, in any case.
            Held::new(info, got).release(hosts).await;
            other.map(Err)
        }
    }
}

/// Take the lock on every host (sorted, so two runners cannot deadlock), failing fast with the holder's
/// details, or waiting up to `wait` for it; touch it every `heartbeat` while held.
pub async fn acquire(
    hosts: &Hosts,
    host_names: &[String],
    environment: &str,
    operation: &str,
    wait: Option<Duration>,
    heartbeat: Duration,
) -> Result<Held> {
    let mut names = host_names.to_vec();
    names.sort();
    names.dedup();
    let info = LockInfo::new(environment, operation);
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        match try_acquire(hosts, &names, &info, heartbeat).await? {
            Ok(held) => return Ok(held),
            Err(other) => match deadline {
                Some(d) if tokio::time::Instant::now() < d => tokio::time::sleep(Duration::from_millis(500)).await,
                _ if other.corrupt.is_some() => {
                    return Err(Error::Locked {
                        message: format!(
                            "{}; clear it with: groundwork force-unlock {CORRUPT_ID} ENV",
                            other.describe()
                        ),
                    })
                }
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
        if let Some(beat) = &self.heartbeat {
            beat.abort();
        }
        let cmd = lock_cmd(RELEASE, "groundwork-unlock", &self.info, &self.info.id);
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

/// Remove locks with this id from every host (the holder is gone); with [`CORRUPT_ID`], the lock files
/// that do not read as a lock (each removed only if it is still the file that was read).
pub async fn force_unlock(hosts: &Hosts, host_names: &[String], environment: &str, id: &str) -> Result<usize> {
    let mut removed = 0;
    for h in host_names {
        let t = hosts.transport(h).await?;
        let path = lock_path(environment);
        let host_err = |e: groundwork_sdk::TransportError| Error::Host { host: h.clone(), message: e.to_string() };
        let Some(before) = t.read_file(&path).await.map_err(host_err)? else { continue };
        let lock = parse_file(Some(&before));
        if id == CORRUPT_ID && lock.as_ref().is_some_and(|l| l.corrupt.is_some()) {
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&before));
            let cmd = Cmd::new("sh").arg("-c").arg(CLEAR_CORRUPT).arg("groundwork-unlock").path(path).arg(digest);
            t.exec(&cmd).await.map_err(host_err)?;
            removed += 1;
        } else if lock.is_some_and(|l| l.corrupt.is_none() && l.id == id) {
            t.remove_file(&path).await.map_err(host_err)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The lock currently on any host, if one is.
pub async fn current(hosts: &Hosts, host_names: &[String], environment: &str) -> Result<Option<LockInfo>> {
    let show = Cmd::new("sh").arg("-c").arg(SHOW).arg("groundwork-lock-show").path(lock_path(environment));
    for h in host_names {
        let t = hosts.transport(h).await?;
        let out = t.exec(&show).await.map_err(|e| Error::Host { host: h.clone(), message: e.to_string() })?;
        if let Some(info) = parse_shown(&out.stdout) {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_lock_carries_its_heartbeat_age_and_is_stale_after_five_minutes() {
        let mut info = LockInfo::new("lab", "apply");
        info.runner = "another-runner".into();
        let json = serde_json::to_string(&info).unwrap();
        let fresh = parse_shown(format!("{json}\n\n@@AGE 12\n").as_bytes()).unwrap();
        assert_eq!(fresh.heartbeat_age, Some(12));
        assert!(fresh.describe().contains("last heartbeat 12s ago") && !fresh.describe().contains("STALE"));
        let old = parse_shown(format!("{json}\n\n@@AGE 900\n").as_bytes()).unwrap();
        assert!(old.describe().contains("STALE: no heartbeat for 900s"), "{}", old.describe());
        // A lock file written before heartbeats existed still reads.
        assert_eq!(parse_shown(json.as_bytes()).unwrap().heartbeat_age, None);
        // A lock file that exists but does not read as a lock: corrupt, never "not locked".
        let empty = parse_shown(b"\n@@AGE 0\n").unwrap();
        assert_eq!((empty.id.as_str(), empty.corrupt), (CORRUPT_ID, Some(0)));
        assert!(empty.describe().contains("corrupt lock") && empty.describe().contains("nothing holds it"));
        assert!(parse_shown(b"garbage").unwrap().corrupt.is_some());
        assert!(parse_shown(b"").is_none());
        assert!(parse_file(Some(b"")).unwrap().corrupt == Some(0));
        assert!(parse_file(None).is_none());
    }
}
