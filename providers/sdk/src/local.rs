//! A transport over a local directory that stands in for a host's `/`. Used by the test kit and by
//! environments that declare `transport: local`.

use crate::transport::{Arg, Cmd, ExecOutput, FileMeta, Transport, WriteOptions};
use crate::TransportError;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct LocalTransport {
    host: String,
    root: PathBuf,
}

impl LocalTransport {
    pub fn new(host: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = root.into();
        // Absolute, so that paths are compared with their resolved forms.
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalTransport { host: host.into(), root }
    }

    /// Where the host path lives on this machine (no check: see [`LocalTransport::confined`]).
    pub fn map(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The host path on this machine, refused if it leads out of the stand-in root: a `..` component,
    /// or a symlink on the way (or, with `follow_last`, the file itself) that resolves outside it.
    /// Writing through a stand-in must never touch the machine that runs groundwork.
    pub fn confined(&self, path: &str, follow_last: bool) -> Result<PathBuf, TransportError> {
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(self.io(path, "not a plain absolute path (a '..' or '.' component)"));
        }
        let target = self.root.join(rel);
        let Ok(root) = std::fs::canonicalize(&self.root) else { return Ok(target) };
        // The deepest part that exists, resolved, must lie under the root.
        let mut probe =
            if follow_last { target.clone() } else { target.parent().map(Path::to_path_buf).unwrap_or_default() };
        while !probe.exists() && probe.pop() {}
        let real = std::fs::canonicalize(&probe).map_err(|e| self.io(path, e))?;
        if !real.starts_with(&root) {
            return Err(self.io(
                path,
                format!("leads out of the stand-in root {} (to {}): refused", self.root.display(), real.display()),
            ));
        }
        Ok(target)
    }

    fn io(&self, path: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Io { host: self.host.clone(), path: path.to_string(), message: e.to_string() }
    }

    fn write_sync(&self, path: &str, contents: &mut dyn Read, opts: &WriteOptions) -> Result<u64, TransportError> {
        std::fs::create_dir_all(&self.root).map_err(|e| self.io(path, e))?;
        let target = self.confined(path, false)?;
        if let Some(within) = &opts.within {
            let inside = resolved(&self.confined(within, true)?);
            let mut probe = target.parent().map(Path::to_path_buf).unwrap_or_default();
            while !probe.exists() && probe.pop() {}
            let real = std::fs::canonicalize(&probe).map_err(|e| self.io(path, e))?;
            // Below `within`; or `within` is not there yet and the part that is lies on its own path.
            let on_its_path = self.map(within).starts_with(&probe) && inside.starts_with(&real);
            if !real.starts_with(&inside) && !on_its_path {
                return Err(self.io(path, format!("leads out of {within} (through a symlink): refused")));
            }
        }
        let dir = target.parent().ok_or_else(|| self.io(path, "no parent directory"))?;
        std::fs::create_dir_all(dir).map_err(|e| self.io(path, e))?;
        let mode = match opts.mode {
            Some(m) => m,
            None => std::fs::metadata(&target).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644),
        };
        let mut tmp = tempfile::Builder::new().prefix(".groundwork-").tempfile_in(dir).map_err(|e| self.io(path, e))?;
        let n = std::io::copy(contents, &mut tmp).map_err(|e| self.io(path, e))?;
        tmp.flush().map_err(|e| self.io(path, e))?;
        tmp.as_file().sync_all().map_err(|e| self.io(path, e))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(|e| self.io(path, e))?;
        tmp.persist(&target).map_err(|e| self.io(path, e.error))?;
        Ok(n)
    }
}

/// A path with its deepest existing part resolved (symlinks followed) and the rest appended as written.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.pop()) {
            (Some(name), true) => rest.push(name),
            _ => return path.to_path_buf(),
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    out.extend(rest.iter().rev());
    out
}

pub fn sha256_reader(r: &mut dyn Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// sha256 of a local file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    sha256_reader(&mut f)
}

/// Files at least this big have their digest cached locally.
const CACHE_FROM: u64 = 1 << 20;

/// Where digests of big local sources are cached: `$XDG_CACHE_HOME/groundwork/digests` or
/// `~/.cache/groundwork/digests` (override with `GROUNDWORK_CACHE_DIR`).
fn digest_cache_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("GROUNDWORK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(std::path::PathBuf::from(d).join("digests"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("groundwork").join("digests"))
}

/// Device, inode, size, mtime and ctime (to the nanosecond) of a local file: any write changes it, and
/// nobody can set a ctime back.
pub fn source_stamp(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// sha256 of a local file, cached for big files while its [`source_stamp`] is unchanged: a plan of a
/// multi-GiB image does not re-read it every run, and an upload can check that its source is still
/// the one planned without hashing it again. Only regular files are read.
pub fn sha256_file_cached(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = crate::expansion::open_regular(path)?;
    sha256_open_cached(&mut file, path)
}

/// [`sha256_file_cached`] of a file already opened (`path` names it in the cache).
pub fn sha256_open_cached(file: &mut std::fs::File, path: &Path) -> std::io::Result<(String, u64)> {
    let meta = file.metadata()?;
    let (Some(dir), true) = (digest_cache_dir(), meta.len() >= CACHE_FROM) else { return sha256_reader(file) };
    let stamp = source_stamp(&meta);
    let canonical = std::fs::canonicalize(path)?;
    let entry = dir.join(hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes())));
    if let Ok(text) = std::fs::read_to_string(&entry) {
        if let Some((sum, rest)) = text.trim_end().split_once(' ') {
            if rest == stamp && sum.len() == 64 {
                return Ok((sum.to_string(), meta.len()));
            }
        }
    }
    let (sum, size) = sha256_reader(file)?;
    // Best effort: a cache that cannot be written only costs time.
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        writeln!(tmp, "{sum} {stamp}")?;
        tmp.persist(&entry).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!(path = %path.display(), error = %e, "digest cache not written");
    }
    Ok((sum, size))
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &Cmd) -> Result<ExecOutput, TransportError> {
        let mut c = tokio::process::Command::new(&cmd.program);
        for a in &cmd.args {
            match a {
                Arg::Lit(s) => c.arg(s),
                Arg::Path(p) => c.arg(self.confined(p, true)?),
            };
        }
        c.stdin(if cmd.stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(|e| TransportError::Command {
            host: self.host.clone(),
            command: cmd.to_string(),
            code: 127,
            stderr: e.to_string(),
        })?;
        if let (Some(bytes), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(bytes).await.map_err(|e| self.io(&cmd.program, e))?;
        }
        let out = child.wait_with_output().await.map_err(|e| self.io(&cmd.program, e))?;
        Ok(ExecOutput { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr })
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match std::fs::read(self.confined(path, true)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(path, e)),
        }
    }

    async fn file_meta(&self, paths: &[String]) -> Result<Vec<Option<FileMeta>>, TransportError> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let target = self.confined(p, true)?;
            let meta = match std::fs::metadata(&target) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.push(None);
                    continue;
                }
                Err(e) => return Err(self.io(p, e)),
            };
            let (sha256, size) = sha256_file(&target).map_err(|e| self.io(p, e))?;
            // Owner names are not looked up for a local stand-in: empty means not known.
            let mode = meta.permissions().mode() & 0o7777;
            out.push(Some(FileMeta { sha256, size, mode, owner: String::new(), group: String::new() }));
        }
        Ok(out)
    }

    async fn write_file(&self, path: &str, contents: &[u8], opts: &WriteOptions) -> Result<(), TransportError> {
        self.write_sync(path, &mut &contents[..], opts).map(|_| ())
    }

    async fn send_file(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<u64, TransportError> {
        let mut f = crate::expansion::open_regular(local).map_err(|e| self.io(&local.display().to_string(), e))?;
        let bytes = self.write_sync(remote, &mut f, opts)?;
        crate::transport::note_sent(bytes);
        let (got, _) = sha256_file(&self.confined(remote, true)?).map_err(|e| self.io(remote, e))?;
        if got != sha256 {
            return Err(self.io(remote, format!("digest after transfer is {got}, expected {sha256}")));
        }
        Ok(bytes)
    }

    async fn sweep(&self, dirs: &[String]) -> Result<Vec<(String, u64)>, TransportError> {
        let mut out = Vec::new();
        for d in dirs {
            let Ok(dir) = self.confined(d, true) else { continue };
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let is_file = e.file_type().is_ok_and(|t| t.is_file());
                if is_file && crate::transport::is_leftover(&name) {
                    let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
                    std::fs::remove_file(e.path()).map_err(|err| self.io(d, err))?;
                    out.push((format!("{}/{name}", d.trim_end_matches('/')), bytes));
                }
            }
        }
        Ok(out)
    }

    async fn remove_file(&self, path: &str) -> Result<(), TransportError> {
        match std::fs::remove_file(self.confined(path, false)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(path, e)),
        }
    }
}

#[cfg(test)]
mod digest_cache_tests {
    use super::*;

    #[test]
    fn big_files_digests_are_cached_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("GROUNDWORK_CACHE_DIR", dir.path().join("cache"));
        let f = dir.path().join("image.raw");
        std::fs::write(&f, vec![7u8; 2 << 20]).unwrap();
        let real = sha256_file(&f).unwrap();
        assert_eq!(sha256_file_cached(&f).unwrap(), real);
        // The cached entry is what answers while the file is unchanged (planted: a fake digest).
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("cache/digests")).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let entry = entries[0].as_ref().unwrap().path();
        let text = std::fs::read_to_string(&entry).unwrap();
        let fake = "f".repeat(64);
        std::fs::write(&entry, text.replacen(&real.0, &fake, 1)).unwrap();
        assert_eq!(sha256_file_cached(&f).unwrap().0, fake);
        // Same size, new content: mtime/ctime move, the digest is computed again.
        std::fs::write(&f, vec![8u8; 2 << 20]).unwrap();
        let now = sha256_file(&f).unwrap();
        assert_ne!(now.0, real.0);
        assert_eq!(sha256_file_cached(&f).unwrap(), now);
        // Small files are never cached.
        let small = dir.path().join("small");
        std::fs::write(&small, b"x").unwrap();
        sha256_file_cached(&small).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("cache/digests")).unwrap().count(), 1);
    }
}

#[cfg(test)]
mod confinement_tests {
    use super::*;

    #[tokio::test]
    async fn a_stand_in_never_writes_outside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("srv/www")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("srv/www/sub")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside/secret"), root.join("srv/www/link")).unwrap();
        std::fs::write(outside.join("secret"), "outside").unwrap();
        let t = LocalTransport::new("bastion", &root);
        let opts = WriteOptions { within: Some("/srv/www".into()), ..Default::default() };

        let err = t.write_file("/srv/www/../../../outside/x", b"x", &opts).await.unwrap_err().to_string();
        assert!(err.contains("'..'"), "{err}");
        let err = t.write_file("/srv/www/sub/MARKER", b"x", &opts).await.unwrap_err().to_string();
        assert!(err.contains("stand-in root"), "{err}");
        assert!(!outside.join("MARKER").exists());
        // Reading through a symlink out of the root is refused too.
        assert!(t.read_file("/srv/www/link").await.is_err());
        assert!(t.remove_file("/srv/www/sub/secret").await.is_err());
        assert!(outside.join("secret").exists());

        // Inside the root but out of `within`: refused; inside both: written.
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(root.join("etc"), root.join("srv/www/etc")).unwrap();
        let err = t.write_file("/srv/www/etc/passwd", b"x", &opts).await.unwrap_err().to_string();
        assert!(err.contains("leads out of /srv/www"), "{err}");
        t.write_file("/srv/www/a/b.txt", b"ok", &opts).await.unwrap();
        assert_eq!(std::fs::read_to_string(root.join("srv/www/a/b.txt")).unwrap(), "ok");
        // `within` not there yet: created on its own path.
        let fresh = WriteOptions { within: Some("/var/www/html".into()), ..Default::default() };
        t.write_file("/var/www/html/x", b"ok", &fresh).await.unwrap();
    }
}
