//! `render install-config ENV --out FILE`: the installer's input from the inventory, for people who run
//! openshift-install themselves. The file holds the pull secret: it is written only to a file (mode
//! 0600, never over an existing one unless `--force`), never to standard output; what is printed is its
//! path and digest.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub fn install_config(env: &Path, out: &Path, force: bool) -> Result<String> {
    let loaded = crate::config::load_valid(env)?;
    let install = crate::install::install_settings(&loaded.env)?;
    let inputs = crate::install::read_inputs(&loaded)?;
    let text = crate::install::render(&loaded.env, install, &inputs)?;
    let io = |e: std::io::Error| Error::Io { path: out.display().to_string(), message: e.to_string() };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Io { path: out.display().to_string(), message: "exists: give --force to replace it".into() }
        } else {
            io(e)
        }
    })?;
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(io)?;
    Ok(format!(
        "wrote {} (mode 0600; it holds the pull secret): sha256:{}",
        out.display(),
        hex::encode(Sha256::digest(text.as_bytes()))
    ))
}
