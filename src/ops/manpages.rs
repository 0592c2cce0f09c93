//! `manpages DIR`: roff man pages generated from the CLI definition (clap_mangen), so they never
//! disagree with `--help`.

use crate::cli::Cli;
use crate::error::{Error, Result};
use clap::CommandFactory;
use std::path::Path;

/// Writes groundwork.1 and groundwork-COMMAND.1 (and groundwork-COMMAND-SUB.1); returns what was written.
pub fn write(dir: &Path) -> Result<String> {
    let io = |p: &Path, e: std::io::Error| Error::Io { path: p.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = Vec::new();
    let root = Cli::command().version(crate::cli::VERSION);
    page(&root, "groundwork", dir, &mut written).map_err(|(p, e)| io(&p, e))?;
    Ok(format!("wrote {} man page(s) to {}: {}", written.len(), dir.display(), written.join(", ")))
}

fn page(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> std::result::Result<(), (std::path::PathBuf, std::io::Error)> {
    let cmd = cmd.clone().name(name.to_string());
    let file = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out).map_err(|e| (file.clone(), e))?;
    std::fs::write(&file, out).map_err(|e| (file.clone(), e))?;
    written.push(format!("{name}.1"));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
