//! What providers are given to derive their resources: the local files an environment names
//! (templates, uploaded sources, manifests), the store of secret content, and the moment the plan is
//! made for.
//!
//! Local files are read only through [`Inputs`], which keeps an inventory value from steering a read:
//! a path must resolve (symlinks followed) inside the environment directory or a directory the
//! environment declares in `files.source_dirs`; it must be a regular file (a FIFO or `/dev/zero` would
//! hang the run) no bigger than its cap; the runner's own credentials (SSH identity, kubeconfig) are
//! never read as inputs. Every input is recorded by digest, so a saved plan can tell when one changed.

use crate::secret::Secrets;
use crate::Error;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Text inputs (templates, manifests) larger than this are refused.
pub const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on an uploaded source (`files.max_source_bytes`).
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// Everything a provider's `resources` function may use besides the environment model.
pub struct Expansion<'a> {
    pub inputs: &'a Inputs,
    pub secrets: &'a Secrets,
    /// When the plan is made for (seconds since the epoch): zone serials and ignition ages are reckoned
    /// from it, so that a saved plan expands the same way when it is applied.
    pub now: u64,
}

impl Expansion<'_> {
    /// Days since 1970-01-01 (UTC) at `now`.
    pub fn today(&self) -> i64 {
        (self.now / 86_400) as i64
    }

    pub fn env_dir(&self) -> &Path {
        &self.inputs.env_dir
    }
}

/// A local file to upload, as found while expanding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The path as recorded: relative to the environment directory when inside it (so a plan does not
    /// depend on where the repository is checked out), else absolute.
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// A file changed less than this before it was read may change again within the same timestamp tick
/// (the kernel stamps files from a clock that ticks every few milliseconds) and keep its stamp: such a
/// read is not believed to stay current.
const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// The local files an expansion read, each with its stamp when read ([`crate::local::source_stamp`],
/// none where there was nothing to read). While every one is unchanged, expanding the same environment
/// again makes the same resources: a drift loop, which expands on every check, can keep them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStamps(Vec<(PathBuf, Option<String>)>);

impl ReadStamps {
    /// Whether every file read is as it was then (one `stat` each).
    pub fn unchanged(&self) -> bool {
        self.0.iter().all(|(path, stamp)| stamp_now(path).map(|(s, _)| s) == *stamp)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The stamp of `path` (symlinks followed), and whether it changed too recently to be believed.
fn stamp_now(path: &Path) -> Option<(String, bool)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let changed =
        std::time::UNIX_EPOCH + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    let racy = SystemTime::now().duration_since(changed).map_or(true, |age| age < RACY_WINDOW);
    Some((crate::local::source_stamp(&meta), racy))
}

/// The reads noted on this thread while [`journaled`] runs, and whether one was racy.
type Journal = (Vec<(PathBuf, Option<String>)>, bool);

thread_local! {
    static JOURNAL: std::cell::RefCell<Option<Journal>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` (an expansion: synchronous, on this thread), noting the stamps of the local files it reads.
/// The stamps are none when a file read had changed within the last moments (see [`RACY_WINDOW`]): what
/// `f` made is then not to be kept.
pub fn journaled<T>(f: impl FnOnce() -> T) -> (T, Option<ReadStamps>) {
    let outer = JOURNAL.with(|j| j.borrow_mut().replace((Vec::new(), false)));
    let out = f();
    let (reads, racy) = JOURNAL.with(|j| std::mem::replace(&mut *j.borrow_mut(), outer)).unwrap_or_default();
    (out, (!racy).then_some(ReadStamps(reads)))
}

/// Note that `path` is about to be read (or looked for) by an expansion. Every local read expansion
/// makes calls this before it opens the file, so a change after the stamp is taken shows in a later
/// stamp. Nothing happens outside [`journaled`].
pub fn note_read(path: &Path) {
    JOURNAL.with(|j| {
        if let Some((reads, racy)) = j.borrow_mut().as_mut() {
            let stamp = stamp_now(path);
            *racy |= stamp.as_ref().is_some_and(|(_, r)| *r);
            reads.push((path.to_path_buf(), stamp.map(|(s, _)| s)));
        }
    });
}

/// The local files expansion reads, confined and recorded.
pub struct Inputs {
    env_dir: PathBuf,
    /// The environment directory first, then `files.source_dirs` (all canonical).
    roots: Vec<PathBuf>,
    /// Files that are never inputs (canonical): the runner's SSH identity and kubeconfig.
    forbidden: Vec<(PathBuf, &'static str)>,
    max_source: u64,
    seen: Mutex<BTreeMap<String, String>>,
}

fn input_err(path: &str, message: impl Into<String>) -> Error {
    Error::Input { path: path.to_string(), message: message.into() }
}

/// The canonical path `p` has or will have: its deepest existing ancestor resolved, the rest appended.
fn canonical_to_be(p: &Path) -> Option<PathBuf> {
    let mut base = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&base) {
            return Some(rest.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part)));
        }
        rest.push(base.file_name()?.to_os_string());
        if !base.pop() {
            return None;
        }
    }
}

/// Open a local file for reading only if it is a regular file: opened non-blocking, so a FIFO put in its
/// place cannot hang the run, then checked on the open descriptor.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what));
    }
    Ok(file)
}

impl Inputs {
    /// `source_dirs` are relative to `env_dir` unless absolute; `forbidden` are (path, what it is).
    pub fn new(
        env_dir: &Path,
        source_dirs: &[String],
        forbidden: &[(PathBuf, &'static str)],
        max_source: u64,
    ) -> Result<Inputs, Error> {
        let canonical = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| input_err(&p.display().to_string(), format!("cannot resolve: {e}")))
        };
        let mut roots = vec![canonical(env_dir)?];
        for d in source_dirs {
            let dir = canonical(&env_dir.join(d))
                .map_err(|e| input_err(d, format!("files.source_dirs entry cannot be used: {e}")))?;
            if !dir.is_dir() {
                return Err(input_err(d, "files.source_dirs entry is not a directory"));
            }
            roots.push(dir);
        }
        // A credential that is not there yet (the installer writes it later) is refused by the path it
        // will have: its deepest existing directory resolved, the rest appended.
        let forbidden = forbidden.iter().filter_map(|(p, what)| Some((canonical_to_be(p)?, *what))).collect();
        Ok(Inputs { env_dir: env_dir.to_path_buf(), roots, forbidden, max_source, seen: Mutex::new(BTreeMap::new()) })
    }

    /// Inputs of an environment directory with no extra source directories (tests, validation).
    pub fn in_dir(env_dir: &Path) -> Result<Inputs, Error> {
        Inputs::new(env_dir, &[], &[], DEFAULT_MAX_SOURCE_BYTES)
    }

    /// Resolve an inventory path: (canonical path, key to record it under).
    pub fn resolve(&self, path: &str) -> Result<(PathBuf, String), Error> {
        if path.is_empty() || path.contains(['\0', '\n', '\r']) {
            return Err(input_err(path, "an input path must be non-empty, without NUL or line breaks"));
        }
        let joined = self.env_dir.join(path);
        // Every read and listing resolves its path first: the one place to note it.
        note_read(&joined);
        let real = std::fs::canonicalize(&joined).map_err(|e| input_err(path, e.to_string()))?;
        if let Some((_, what)) = self.forbidden.iter().find(|(f, _)| *f == real) {
            return Err(input_err(path, format!("is the runner's {what}: it is never read as an input")));
        }
        let Some(root) = self.roots.iter().find(|r| real.starts_with(r)) else {
            return Err(input_err(
                path,
                format!(
                    "resolves to {}, outside the environment directory; declare its directory in files.source_dirs to allow it",
                    real.display()
                ),
            ));
        };
        let key = if root == &self.roots[0] {
            real.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            real.to_string_lossy().into_owned()
        };
        Ok((real, key))
    }

    fn record(&self, key: String, sha256: String) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key, sha256);
        }
    }

    /// A text input (template, manifest), read whole.
    pub fn read_text(&self, path: &str) -> Result<String, Error> {
        let (real, key) = self.resolve(path)?;
        let mut file = open_regular(&real).map_err(|e| input_err(path, e.to_string()))?;
        let mut bytes = Vec::new();
        (&mut file).take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| input_err(path, e.to_string()))?;
        if bytes.len() as u64 > MAX_TEXT_BYTES {
            return Err(input_err(path, format!("larger than {} MiB", MAX_TEXT_BYTES >> 20)));
        }
        self.record(key, hex::encode(Sha256::digest(&bytes)));
        String::from_utf8(bytes).map_err(|_| input_err(path, "is not UTF-8 text"))
    }

    /// A file to upload: its digest (cached for big files), size and age.
    pub fn source(&self, path: &str) -> Result<Source, Error> {
        let (real, key) = self.resolve(path)?;
        let mut file = open_regular(&real).map_err(|e| input_err(path, e.to_string()))?;
        let meta = file.metadata().map_err(|e| input_err(path, e.to_string()))?;
        if meta.len() > self.max_source {
            return Err(input_err(
                path,
                format!("is {} bytes, more than files.max_source_bytes ({})", meta.len(), self.max_source),
            ));
        }
        let (sha256, size) =
            crate::local::sha256_open_cached(&mut file, &real).map_err(|e| input_err(path, e.to_string()))?;
        self.record(key.clone(), sha256.clone());
        Ok(Source { key, sha256, size, modified: meta.modified().ok() })
    }

    /// The files of a directory whose extension is one of `extensions`, sorted, as paths to read with
    /// [`Inputs::read_text`]; the listing itself is recorded (a file added or removed is a change).
    pub fn list(&self, dir: &str, extensions: &[&str]) -> Result<Vec<String>, Error> {
        let (real, key) = self.resolve(dir)?;
        let mut names: Vec<String> = std::fs::read_dir(&real)
            .map_err(|e| input_err(dir, e.to_string()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| Path::new(n).extension().and_then(|x| x.to_str()).is_some_and(|x| extensions.contains(&x)))
            .collect();
        names.sort();
        self.record(format!("{}/", key.trim_end_matches('/')), hex::encode(Sha256::digest(names.join("\n"))));
        let base = dir.trim_end_matches('/');
        Ok(names.into_iter().map(|n| format!("{base}/{n}")).collect())
    }

    /// Record an input read elsewhere (the environment's own YAML files).
    pub fn note(&self, key: &str, bytes: &[u8]) {
        self.record(key.to_string(), hex::encode(Sha256::digest(bytes)));
    }

    /// Every input read so far: key → sha256.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_notes_each_read_and_sees_any_change_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // Files changed long ago (the crate's own) are believed; a missing one is noted as missing.
        let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let missing = dir.path().join("later.ign");
        let ((), reads) = journaled(|| {
            note_read(&old);
            note_read(&missing);
        });
        let reads = reads.expect("old files are not racy");
        assert_eq!(reads.len(), 2);
        assert!(reads.unchanged());
        // The missing file appears: a change.
        std::fs::write(&missing, "{}").unwrap();
        assert!(!reads.unchanged());
        // A file changed a moment ago may change again within its timestamp's tick: nothing is kept.
        let ((), racy) = journaled(|| note_read(&missing));
        assert_eq!(racy, None);
        // Outside a journal nothing is noted, and a journal ends with its closure.
        note_read(&old);
        let ((), empty) = journaled(|| ());
        assert_eq!(empty.map(|r| r.len()), Some(0));

        // Every kind of change shows: in place (same size), replaced by rename, a symlink re-pointed.
        let f = dir.path().join("f");
        std::fs::write(&f, "aaaa").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&old, &link).unwrap();
        let stamps = |p: &Path| ReadStamps(vec![(p.to_path_buf(), stamp_now(p).map(|(s, _)| s))]);
        let before = stamps(&f);
        std::fs::write(&f, "bbbb").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(std::time::UNIX_EPOCH).unwrap();
        assert!(!before.unchanged(), "same size, mtime set back");
        let before = stamps(&f);
        std::fs::write(dir.path().join("g"), "bbbb").unwrap();
        std::fs::rename(dir.path().join("g"), &f).unwrap();
        assert!(!before.unchanged(), "replaced by rename");
        let before = stamps(&link);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"), &link).unwrap();
        assert!(!before.unchanged(), "re-pointed");
    }

    #[test]
    fn a_credential_written_after_loading_is_refused_too() {
        // The installer writes auth/kubeconfig during the run: refused by the path it will have.
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir_all(&env).unwrap();
        let kubeconfig = env.join("installdir/auth/kubeconfig");
        let inputs = Inputs::new(&env, &[], &[(kubeconfig.clone(), "kubeconfig")], 1024).unwrap();
        std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
        std::fs::write(&kubeconfig, "apiVersion: v1").unwrap();
        let e = inputs.read_text("installdir/auth/kubeconfig").unwrap_err().to_string();
        assert!(e.contains("is the runner's kubeconfig"), "{e}");
        std::fs::write(env.join("installdir/bootstrap.ign"), "{}").unwrap();
        assert!(inputs.read_text("installdir/bootstrap.ign").is_ok());
    }

    #[test]
    fn inputs_are_confined_regular_capped_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir_all(env.join("sub")).unwrap();
        std::fs::write(env.join("sub/a.j2"), "hello").unwrap();
        std::fs::write(dir.path().join("outside"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), env.join("link")).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();
        std::os::unix::fs::symlink(&key, env.join("key")).unwrap();
        let fifo = env.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let inputs = Inputs::new(&env, &[], &[(key.clone(), "SSH identity")], 10).unwrap();

        // `a`, `./a` and `sub/../a` are one input.
        assert_eq!(inputs.read_text("sub/a.j2").unwrap(), "hello");
        assert_eq!(inputs.read_text("./sub/../sub/a.j2").unwrap(), "hello");
        assert_eq!(inputs.resolve("./sub/a.j2").unwrap().1, "sub/a.j2");
        assert_eq!(inputs.digests().len(), 1);

        let err = |p: &str| inputs.read_text(p).unwrap_err().to_string();
        assert!(err("../outside").contains("outside the environment directory"), "{}", err("../outside"));
        assert!(err("link").contains("outside the environment directory"));
        assert!(err(&dir.path().join("outside").display().to_string()).contains("outside"));
        assert!(err("key").contains("never read as an input"), "{}", err("key"));
        assert!(err("fifo").contains("not a regular file"), "{}", err("fifo"));
        assert!(err("sub").contains("directory"), "{}", err("sub"));
        assert!(err("").contains("non-empty"));
        std::fs::write(env.join("big"), vec![b'x'; 11]).unwrap();
        assert!(inputs.source("big").unwrap_err().to_string().contains("max_source_bytes"));

        // A declared source directory is allowed, recorded by its absolute path.
        let extra = Inputs::new(&env, &[dir.path().display().to_string()], &[], 100).unwrap();
        let s = extra.source("../outside").unwrap();
        assert_eq!(s.key, dir.path().canonicalize().unwrap().join("outside").display().to_string());
        assert_eq!(s.size, 6);
    }
}
