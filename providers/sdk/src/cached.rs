//! A transport that answers reads from a batch fetched ahead (one round trip per host for every
//! provider's files) and passes everything else, and any read it does not hold, to the real one.

use crate::transport::{Batch, Cmd, ExecOutput, FileMeta, Transport, WriteOptions};
use crate::TransportError;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

pub struct CachedTransport {
    inner: Arc<dyn Transport>,
    batch: Batch,
}

impl CachedTransport {
    pub fn new(inner: Arc<dyn Transport>, batch: Batch) -> Self {
        CachedTransport { inner, batch }
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
        self.inner.exec(cmd).await
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match self.batch.contents.get(path) {
            Some(c) => Ok(c.clone()),
            None => self.inner.read_file(path).await,
        }
    }

    async fn read_files(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
        if paths.iter().all(|p| self.batch.contents.contains_key(p)) {
            return Ok(paths.iter().map(|p| self.batch.contents.get(p).cloned().flatten()).collect());
        }
        self.inner.read_files(paths).await
    }

    async fn file_meta(&self, paths: &[String]) -> Result<Vec<Option<FileMeta>>, TransportError> {
        if paths.iter().all(|p| self.batch.metas.contains_key(p)) {
            return Ok(paths.iter().map(|p| self.batch.metas.get(p).cloned().flatten()).collect());
        }
        self.inner.file_meta(paths).await
    }

    async fn write_file(&self, path: &str, contents: &[u8], opts: &WriteOptions) -> Result<(), TransportError> {
        self.inner.write_file(path, contents, opts).await
    }

    async fn send_file(
        &self,
        local: &Path,
        remote: &str,
        sha256: &str,
        opts: &WriteOptions,
    ) -> Result<u64, TransportError> {
        self.inner.send_file(local, remote, sha256, opts).await
    }

    async fn remove_file(&self, path: &str) -> Result<(), TransportError> {
        self.inner.remove_file(path).await
    }
}
