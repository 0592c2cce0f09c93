//! A transport that answers reads from a batch fetched ahead (one round trip per host for every
//! provider's files and read-only queries) and passes everything else, and any read it does not
//! hold, to the real one. It lives for one refresh only: after a write its answers would be stale.

use crate::transport::{Batch, Cmd, ExecOutput, FileMeta, Transport, WriteOptions};
use crate::TransportError;
use async_trait::async_trait;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct CachedTransport {
    inner: Arc<dyn Transport>,
    batch: Batch,
    /// Calls passed on to the real transport.
    passed_on: AtomicUsize,
}

impl CachedTransport {
    pub fn new(inner: Arc<dyn Transport>, batch: Batch) -> Self {
        CachedTransport { inner, batch, passed_on: AtomicUsize::new(0) }
    }

    /// How many calls went to the real transport (none: everything read came from the batch).
    pub fn passed_on(&self) -> usize {
        self.passed_on.load(Ordering::Relaxed)
    }

    fn pass(&self) -> &dyn Transport {
        self.passed_on.fetch_add(1, Ordering::Relaxed);
        self.inner.as_ref()
    }
}

#[async_trait]
impl Transport for CachedTransport {
    fn host(&self) -> &str {
        self.inner.host()
    }

    fn round_trips(&self) -> usize {
        self.inner.round_trips()
    }

    async fn exec(&self, cmd: &Cmd) -> Result<ExecOutput, TransportError> {
        if cmd.stdin.is_none() {
            if let Some(out) = self.batch.outputs.get(&cmd.key()) {
                return Ok(out.clone());
            }
        }
        self.pass().exec(cmd).await
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match self.batch.contents.get(path) {
            Some(c) => Ok(c.as_deref().map(<[u8]>::to_vec)),
            None => self.pass().read_file(path).await,
        }
    }

    async fn read_files(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
        if paths.iter().all(|p| self.batch.contents.contains_key(p)) {
            return Ok(paths
                .iter()
                .map(|p| self.batch.contents.get(p).and_then(|c| c.as_deref().map(<[u8]>::to_vec)))
                .collect());
        }
        self.pass().read_files(paths).await
    }

    async fn file_meta(&self, paths: &[String]) -> Result<Vec<Option<FileMeta>>, TransportError> {
        if paths.iter().all(|p| self.batch.metas.contains_key(p)) {
            return Ok(paths.iter().map(|p| self.batch.metas.get(p).cloned().flatten()).collect());
        }
        self.pass().file_meta(paths).await
    }

    async fn write_file(&self, path: &str, contents: &[u8], opts: &WriteOptions) -> Result<(), TransportError> {
        self.pass().write_file(path, contents, opts).await
    }

    async fn send_file(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<u64, TransportError> {
        self.pass().send_file(local, remote, sha256, opts).await
    }

    async fn remove_file(&self, path: &str) -> Result<(), TransportError> {
        self.pass().remove_file(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalTransport;

    #[tokio::test]
    async fn answers_batched_queries_and_passes_the_rest_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "on disk").unwrap();
        let query = Cmd::new("sh").arg("-c").arg("cat >/dev/null; echo live");
        let mut batch = Batch::default();
        batch.contents.insert("/f".into(), Some(b"batched".as_slice().into()));
        let batched = ExecOutput { code: 0, stdout: b"batched\n".to_vec(), stderr: vec![] };
        batch.outputs.insert(query.key(), batched.clone());
        let t = CachedTransport::new(Arc::new(LocalTransport::new("h", dir.path())), batch);
        assert_eq!(t.exec(&query).await.unwrap(), batched);
        assert_eq!(t.read_file("/f").await.unwrap(), Some(b"batched".to_vec()));
        assert_eq!(t.passed_on(), 0);
        // Not in the batch: read for real.
        std::fs::write(dir.path().join("g"), "real").unwrap();
        assert_eq!(t.read_file("/g").await.unwrap(), Some(b"real".to_vec()));
        assert_eq!(t.passed_on(), 1);
        // A command fed on stdin is never answered from the batch.
        let fed = query.clone().stdin("x");
        assert_eq!(t.exec(&fed).await.unwrap().stdout, b"live\n".to_vec());
        assert_eq!(t.passed_on(), 2);
    }
}
