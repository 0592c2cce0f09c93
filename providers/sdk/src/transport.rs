//! How providers reach a host: commands (argv, never a shell string), file reads, atomic writes and
//! streaming uploads. Implemented by the SSH transport and by [`crate::local::LocalTransport`].

use crate::TransportError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One argument of a command. Paths are kept apart so a transport can map them (the local transport
/// maps `/etc/x` into its root directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Lit(String),
    Path(String),
}

/// A command as argv. Transports that must go through a shell quote every argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<Arg>,
    /// Bytes fed to the command's stdin.
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd { program: program.into(), args: Vec::new(), stdin: None }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(Arg::Lit(a.into()));
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, it: I) -> Self {
        self.args.extend(it.into_iter().map(|a| Arg::Lit(a.into())));
        self
    }
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.args.push(Arg::Path(p.into()));
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command line that identifies this command in a [`Batch`].
    pub fn key(&self) -> String {
        self.to_shell(|p| p.to_string())
    }

    /// The command as one POSIX shell line, every argument single-quoted.
    pub fn to_shell(&self, map_path: impl Fn(&str) -> String) -> String {
        let mut s = shell_quote(&self.program);
        for a in &self.args {
            s.push(' ');
            match a {
                Arg::Lit(v) => s.push_str(&shell_quote(v)),
                Arg::Path(p) => s.push_str(&shell_quote(&map_path(p))),
            }
        }
        s
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// Quote for a POSIX shell: plain words stay as they are, anything else is single-quoted.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
    /// Both streams, trimmed: what a checker printed.
    pub fn message(&self) -> String {
        let mut m = self.stdout_str().trim().to_string();
        let e = self.stderr_str();
        if !e.is_empty() {
            if !m.is_empty() {
                m.push('\n');
            }
            m.push_str(&e);
        }
        m
    }
}

/// Mode (and optionally owner) of a written file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOptions {
    /// Octal mode; None keeps the existing file's mode (0644 for a new file).
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// The directory the file must stay in (a served file: the docroot): a path that leads out of it
    /// through a symlink is refused on the host, before anything is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

/// Digest and metadata of a remote file (what large-file resources compare).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    /// Owner and group names; empty where the transport cannot tell.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub group: String,
}

/// What one batched read returned: file contents and digests by path, command outputs by
/// [`Cmd::key`]. Whatever the host could not give in the batch is absent (its reader asks again).
/// Contents and digests are shared: a transport that keeps what it read (a drift loop) hands out the
/// same bytes and the same digests each time, and two batches holding them compare equal without
/// comparing them entry by entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub contents: std::collections::HashMap<String, Option<std::sync::Arc<[u8]>>>,
    pub metas: std::sync::Arc<std::collections::HashMap<String, Option<FileMeta>>>,
    pub outputs: std::collections::HashMap<String, ExecOutput>,
}

/// What a provider will read for a set of resources, so that the engine can fetch it for every
/// provider of a host in one round trip before the providers' own reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prefetch {
    pub reads: Vec<String>,
    pub metas: Vec<String>,
    /// Read-only queries (no stdin) the provider's read will run; the host runs them side by side.
    pub execs: Vec<Cmd>,
    /// Read-only queries run one after another before anything else of the batch is read or started:
    /// what they see holds from before every other read (the engine's lock guard).
    pub first: Vec<Cmd>,
}

impl Prefetch {
    pub fn extend(&mut self, other: Prefetch) {
        self.reads.extend(other.reads);
        self.metas.extend(other.metas);
        self.execs.extend(other.execs);
        self.first.extend(other.first);
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.metas.is_empty() && self.execs.is_empty() && self.first.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The remote file already had the digest: nothing sent.
    Skipped,
    Uploaded {
        bytes: u64,
    },
}

#[async_trait]
pub trait Transport: Send + Sync {
    /// The host's name in the inventory (for messages).
    fn host(&self) -> &str;

    /// Remote round trips (exec sessions) made so far; transports without them report 0.
    fn round_trips(&self) -> usize {
        0
    }

    /// Run a command; a non-zero exit is returned as output, not as an error.
    async fn exec(&self, cmd: &Cmd) -> Result<ExecOutput, TransportError>;

    /// Read a file; a missing file is `None`.
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError>;

    /// Read several files in as few round trips as the transport can manage.
    async fn read_files(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            out.push(self.read_file(p).await?);
        }
        Ok(out)
    }

    /// sha256, size and mode of files; missing files are `None`.
    async fn file_meta(&self, paths: &[String]) -> Result<Vec<Option<FileMeta>>, TransportError>;

    /// Everything `prefetch` names in as few round trips as the transport can manage (the SSH
    /// transport: one). A query that could not run is left out of the batch.
    async fn read_batch(&self, prefetch: &Prefetch) -> Result<Batch, TransportError> {
        let Prefetch { reads, metas, execs, first } = prefetch;
        let mut outputs = std::collections::HashMap::new();
        // In order, and before anything else is read.
        for cmd in first.iter().filter(|c| c.stdin.is_none()) {
            if let Ok(out) = self.exec(cmd).await {
                outputs.insert(cmd.key(), out);
            }
        }
        let contents = if reads.is_empty() { Vec::new() } else { self.read_files(reads).await? };
        let digests = if metas.is_empty() { Vec::new() } else { self.file_meta(metas).await? };
        for cmd in execs.iter().filter(|c| c.stdin.is_none()) {
            if let Ok(out) = self.exec(cmd).await {
                outputs.insert(cmd.key(), out);
            }
        }
        Ok(Batch {
            contents: reads.iter().cloned().zip(contents.into_iter().map(|c| c.map(Into::into))).collect(),
            metas: std::sync::Arc::new(metas.iter().cloned().zip(digests).collect()),
            outputs,
        })
    }

    /// Write a whole file atomically: temp file in the same directory, then rename. Parent
    /// directories are created.
    async fn write_file(&self, path: &str, contents: &[u8], opts: &WriteOptions) -> Result<(), TransportError>;

    /// Stream a local file to the host with constant memory, atomically; the host refuses it unless
    /// the bytes sent have `sha256` (a source changed since the plan is not installed). Returns the
    /// bytes sent.
    async fn send_file(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<u64, TransportError>;

    /// Upload unless the remote file already has the digest.
    async fn upload(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<UploadOutcome, TransportError> {
        if let Some(Some(m)) = self.file_meta(&[remote.to_string()]).await?.pop() {
            if m.sha256 == sha256 {
                return Ok(UploadOutcome::Skipped);
            }
        }
        let bytes = self.send_file(local, remote, sha256, opts).await?;
        Ok(UploadOutcome::Uploaded { bytes })
    }

    /// Remove a file; a missing file is not an error.
    async fn remove_file(&self, path: &str) -> Result<(), TransportError>;

    /// Write a file through its checkers: `contents` become `candidate` (a name beside `path`), every
    /// check runs on it, and only if all pass does `path` get the contents. `Ok(Err(…))`: a check
    /// refused it; the candidate is gone and `path` untouched. The SSH transport does all of it in one
    /// round trip (the candidate, checked, is renamed into place).
    async fn write_checked(
        &self,
        path: &str,
        candidate: &str,
        contents: &[u8],
        opts: &WriteOptions,
        checks: &[Cmd],
    ) -> Result<Result<(), CheckRejection>, TransportError> {
        self.write_file(candidate, contents, opts).await?;
        let mut verdict = Ok(());
        for check in checks {
            let out = match self.exec(check).await {
                Ok(out) => out,
                Err(e) => {
                    let _ = self.remove_file(candidate).await;
                    return Err(e);
                }
            };
            if !out.success() {
                verdict = Err(CheckRejection { command: check.to_string(), message: out.message() });
                break;
            }
        }
        self.remove_file(candidate).await?;
        if verdict.is_ok() {
            self.write_file(path, contents, opts).await?;
        }
        Ok(verdict)
    }

    /// Remove what an interrupted run left in these directories: temp files of atomic writes
    /// ([`LEFTOVER_PATTERNS`]), never anything else. Returns each (path, bytes). Only called while the
    /// apply lock is held, so no other run is writing them.
    async fn sweep(&self, dirs: &[String]) -> Result<Vec<(String, u64)>, TransportError> {
        let _ = dirs;
        Ok(Vec::new())
    }
}

/// A checker refused a candidate file: its command line and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRejection {
    pub command: String,
    pub message: String,
}

/// Names of the temp files groundwork's writes use (shell globs): `.groundwork-XXXXXX` for atomic
/// writes and uploads, `.groundwork-lock-XXXXXX` for the lock, `.NAME.groundwork-candidate` for a file
/// being checked by its daemon's checker.
pub const LEFTOVER_PATTERNS: [&str; 3] = [".groundwork-??????", ".groundwork-lock-??????", ".*.groundwork-candidate"];

/// Whether a file name is one of [`LEFTOVER_PATTERNS`].
pub fn is_leftover(name: &str) -> bool {
    let random = |s: &str| s.len() == 6 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    name.strip_prefix(".groundwork-lock-").is_some_and(random)
        || name.strip_prefix(".groundwork-").is_some_and(random)
        || (name.starts_with('.')
            && name.ends_with(".groundwork-candidate")
            && name.len() > ".groundwork-candidate".len() + 1)
}

/// Bytes of content this process has sent to hosts (uploads, written files): what progress displays show.
static BYTES_SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count bytes handed to a host (transports call this as they send).
pub fn note_sent(n: u64) {
    BYTES_SENT.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes sent so far by this process.
pub fn bytes_sent() -> u64 {
    BYTES_SENT.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_values_as_single_words() {
        let c = Cmd::new("firewall-cmd")
            .arg("--set-description=OpenShift machine config")
            .arg("$(reboot)")
            .arg("it's")
            .path("/etc/named.conf");
        assert_eq!(
            c.to_string(),
            r#"firewall-cmd '--set-description=OpenShift machine config' '$(reboot)' 'it'\''s' /etc/named.conf"#
        );
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn leftovers_are_only_groundwork_temp_files() {
        for name in [".groundwork-Ab12Cd", ".groundwork-lock-x1Y2z3", ".haproxy.cfg.groundwork-candidate"] {
            assert!(is_leftover(name), "{name}");
        }
        for name in [
            "groundwork-Ab12Cd",
            ".groundwork-Ab12",
            ".groundwork-lock",
            "pxeboot.ipxe",
            ".groundwork-candidate",
            "x.groundwork-candidate",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
    }
}
