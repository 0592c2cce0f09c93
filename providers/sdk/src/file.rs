//! Whole-file resources that a daemon reads (zone files, dhcpd.conf, haproxy.cfg, ...): rendered
//! whole, checked by the daemon's own checker before they replace the live file, activated by a
//! reload, and restored if the reload fails.

use crate::transport::{Arg, Cmd, Transport, WriteOptions};
use crate::{Action, Address, Change, Context, Error, TextDiff};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Placeholder in check commands for the path of the candidate file.
pub const CANDIDATE: &str = "{candidate}";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManagedFile {
    pub path: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Checker commands (argv; `{candidate}` stands for the candidate file). All must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<Vec<String>>,
    /// Command that makes the daemon load the new file (argv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate: Option<Vec<String>>,
    /// A file several environments own together: its parts (`content` is their rendering).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<crate::joint::Block>,
}

/// What was read back: the file's text (None when absent is expressed by the outer Option).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedFile {
    pub path: String,
    pub content: String,
}

impl ManagedFile {
    pub fn new(path: impl Into<String>, content: impl Into<String>) -> Self {
        ManagedFile {
            path: path.into(),
            content: content.into(),
            mode: None,
            owner: None,
            group: None,
            check: Vec::new(),
            activate: None,
            blocks: Vec::new(),
        }
    }

    /// A file made of parts that environments sharing the host may each add to (`crate::joint`).
    pub fn joint(path: impl Into<String>, blocks: Vec<crate::joint::Block>) -> Self {
        let mut f = ManagedFile::new(path, crate::joint::render(&blocks));
        f.blocks = blocks;
        f
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions { mode: self.mode, owner: self.owner.clone(), group: self.group.clone(), within: None }
    }
}

/// argv → Cmd, with `{candidate}` (or a whole argument that is an absolute path) as a path argument.
pub fn command(argv: &[String], candidate: Option<&str>) -> Option<Cmd> {
    let (program, rest) = argv.split_first()?;
    let mut cmd = Cmd::new(program.clone());
    for a in rest {
        if a == CANDIDATE {
            cmd.args.push(Arg::Path(candidate.unwrap_or_default().to_string()));
        } else if a.starts_with('/') {
            cmd.args.push(Arg::Path(a.clone()));
        } else {
            cmd.args.push(Arg::Lit(a.clone()));
        }
    }
    Some(cmd)
}

/// Read several managed files of one host in one batch.
pub async fn read_files(t: &dyn Transport, paths: &[String]) -> Result<Vec<Option<Value>>, crate::TransportError> {
    let raw = t.read_files(paths).await?;
    Ok(raw
        .into_iter()
        .zip(paths)
        .map(|(b, path)| {
            b.map(|b| {
                serde_json::json!(ObservedFile {
                    path: path.clone(),
                    content: String::from_utf8_lossy(&b).into_owned()
                })
            })
        })
        .collect())
}

/// The `path` of every resource's spec, as a prefetch of contents.
pub fn prefetch_paths(resources: &[&crate::Resource]) -> crate::Prefetch {
    let reads =
        resources.iter().filter_map(|r| r.spec.get("path").and_then(|p| p.as_str()).map(str::to_string)).collect();
    crate::Prefetch { reads, ..Default::default() }
}

/// Read the files of resources whose spec has a `path` (one batched read on their host).
pub async fn read_resources(cx: &Context, resources: &[&crate::Resource]) -> Result<Vec<Option<Value>>, Error> {
    #[derive(Deserialize)]
    struct PathOnly {
        path: String,
    }
    let Some(first) = resources.first() else { return Ok(Vec::new()) };
    let paths: Vec<String> =
        resources.iter().map(|r| r.spec::<PathOnly>().map(|p| p.path)).collect::<Result<_, _>>()?;
    read_files(cx.transport(&first.address)?, &paths).await.map_err(|e| e.at(&first.address))
}

/// Whole-file comparison plus a set-level view of the entries `entries` finds in each version
/// (records, host pins, servers, zone stanzas).
pub fn diff_with_entries(
    address: &Address,
    desired: Option<&ManagedFile>,
    actual: Option<&ObservedFile>,
    entries: impl Fn(&str) -> std::collections::BTreeSet<String>,
) -> Result<Change, Error> {
    let mut c = diff(address, desired, actual)?;
    if c.action != Action::NoOp {
        let before = actual.map(|a| entries(&a.content)).unwrap_or_default();
        let after = desired.map(|d| entries(&d.content)).unwrap_or_default();
        c.details = crate::set_details(&before, &after);
    }
    Ok(c)
}

/// A provider whose resources are all whole managed files, differing only in how they describe what
/// changes inside a file (host pins, backend servers, ...).
pub struct WholeFiles {
    pub name: &'static str,
    /// Entry-level lines from the old and new text (None: the file is absent on that side).
    pub details: fn(Option<&str>, Option<&str>) -> Vec<crate::Detail>,
}

#[async_trait::async_trait]
impl crate::Provider for WholeFiles {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn read(&self, cx: &Context, resources: &[&crate::Resource]) -> Result<Vec<Option<Value>>, Error> {
        read_resources(cx, resources).await
    }

    fn prefetch(&self, resources: &[&crate::Resource]) -> crate::Prefetch {
        prefetch_paths(resources)
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        let d: Option<ManagedFile> = desired.map(|v| crate::decode(address, v)).transpose()?;
        let a: Option<ObservedFile> = actual.map(|v| crate::decode(address, v)).transpose()?;
        let mut c = diff(address, d.as_ref(), a.as_ref())?;
        if c.action != Action::NoOp {
            c.details = (self.details)(a.as_ref().map(|a| a.content.as_str()), d.as_ref().map(|d| d.content.as_str()));
        }
        Ok(c)
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        apply(cx, change).await
    }

    fn activation_deferred(&self, change: &Change) -> bool {
        defers_activation(change)
    }

    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        write(cx, change).await
    }

    async fn activate(&self, cx: &Context, changes: &[&Change]) -> Result<(), Error> {
        activate_together(cx, changes).await
    }
}

/// Pure: compare desired and observed file text.
pub fn diff(address: &Address, desired: Option<&ManagedFile>, actual: Option<&ObservedFile>) -> Result<Change, Error> {
    let dv = desired.map(serde_json::to_value).transpose().map_err(|e| spec_err(address, e))?;
    let av = actual.map(serde_json::to_value).transpose().map_err(|e| spec_err(address, e))?;
    let same = matches!((desired, actual), (Some(d), Some(a)) if d.content == a.content);
    let mut change = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), same);
    if change.action != Action::NoOp {
        let path = desired.map(|d| d.path.clone()).unwrap_or_else(|| address.name.clone());
        change.diff = Some(TextDiff {
            path,
            old: actual.map(|a| a.content.clone()).unwrap_or_default(),
            new: desired.map(|d| d.content.clone()).unwrap_or_default(),
        });
    }
    Ok(change)
}

fn spec_err(address: &Address, e: impl std::fmt::Display) -> Error {
    Error::Spec { address: address.to_string(), message: e.to_string() }
}

/// Temp name beside the target, so a rename is atomic and checkers see the same directory.
pub fn candidate_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.groundwork-candidate"),
        None => format!(".{path}.groundwork-candidate"),
    }
}

/// Run the activation command; Ok(None) when it succeeded, Ok(Some(message)) when it failed.
pub async fn activate(
    cx: &Context,
    address: &Address,
    argv: Option<&Vec<String>>,
) -> Result<Option<(String, String)>, Error> {
    let Some(cmd) = argv.and_then(|a| command(a, None)) else {
        return Ok(None);
    };
    if !cx.run_commands {
        return Ok(None);
    }
    let out = cx.transport(address)?.exec(&cmd).await.map_err(|e| e.at(address))?;
    Ok(if out.success() { None } else { Some((cmd.to_string(), out.message())) })
}

/// Apply a file change: check the candidate, replace atomically, activate; on a failed
/// activation put the previous file back and activate again.
pub async fn apply(cx: &Context, change: &Change) -> Result<(), Error> {
    write(cx, change).await?;
    activate_together(cx, &[change]).await
}

/// Whether a change writes a file that has an activation, which can then wait for others' (see
/// [`crate::Provider::activation_deferred`]).
pub fn defers_activation(change: &Change) -> bool {
    matches!(change.action, Action::Create | Action::Update | Action::Replace)
        && change.after.as_ref().is_some_and(|a| a.get("activate").is_some_and(|v| !v.is_null()))
}

/// A file change without its activation: the candidate checked and moved into place, or the file
/// removed.
pub async fn write(cx: &Context, change: &Change) -> Result<(), Error> {
    let address = &change.address;
    match change.action {
        Action::NoOp => Ok(()),
        Action::Delete => {
            let previous: Option<ObservedFile> =
                change.before.as_ref().map(|v| crate::decode(address, v)).transpose()?;
            if let Some(old) = &previous {
                cx.transport(address)?.remove_file(&old.path).await.map_err(|e| e.at(address))?;
            }
            Ok(())
        }
        Action::Create | Action::Update | Action::Replace => write_checked(cx, address, &desired(change)?).await,
    }
}

fn desired(change: &Change) -> Result<ManagedFile, Error> {
    let address = &change.address;
    change
        .after
        .as_ref()
        .map(|v| crate::decode(address, v))
        .transpose()?
        .ok_or_else(|| Error::failed(address, "change has no desired state"))
}

/// The activations of changes written together: each distinct command once, in the order written.
pub fn activations(changes: &[&Change]) -> Result<Vec<Vec<String>>, Error> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for c in changes.iter().filter(|c| defers_activation(c)) {
        if let Some(argv) = desired(c)?.activate {
            if !out.contains(&argv) {
                out.push(argv);
            }
        }
    }
    Ok(out)
}

/// Activate changes written together with their distinct activations, in order.
pub async fn activate_together(cx: &Context, changes: &[&Change]) -> Result<(), Error> {
    activate_with(cx, changes, &activations(changes)?).await
}

/// Run `commands` for changes written together. On the first that fails, every change's file is put
/// back (newest first) and the commands run again to bring the daemon back onto them.
pub async fn activate_with(cx: &Context, changes: &[&Change], commands: &[Vec<String>]) -> Result<(), Error> {
    let Some(first) = changes.first() else { return Ok(()) };
    let address = &first.address;
    for argv in commands {
        let Some((command, message)) = activate(cx, address, Some(argv)).await? else { continue };
        for c in changes.iter().rev().filter(|c| defers_activation(c)) {
            restore(cx, c).await?;
        }
        // Best effort: the failure is what is reported.
        for argv in commands {
            let _ = activate(cx, address, Some(argv)).await?;
        }
        return Err(match changes {
            [one] => Error::ActivationFailed { address: one.address.to_string(), command, message },
            _ => Error::ActivationFailedTogether {
                addresses: changes.iter().map(|c| c.address.to_string()).collect::<Vec<_>>().join(", "),
                command,
                message,
            },
        });
    }
    Ok(())
}

/// Write the candidate, run the checkers on it, then move it into place.
pub async fn write_checked(cx: &Context, address: &Address, spec: &ManagedFile) -> Result<(), Error> {
    let t = cx.transport(address)?;
    let opts = spec.write_options();
    if spec.check.is_empty() || !cx.run_commands {
        return t.write_file(&spec.path, spec.content.as_bytes(), &opts).await.map_err(|e| e.at(address));
    }
    let candidate = candidate_path(&spec.path);
    let checks: Vec<Cmd> = spec.check.iter().filter_map(|argv| command(argv, Some(&candidate))).collect();
    t.write_checked(&spec.path, &candidate, spec.content.as_bytes(), &opts, &checks)
        .await
        .map_err(|e| e.at(address))?
        .map_err(|r| Error::Rejected { address: address.to_string(), command: r.command, message: r.message })
}

/// Put back what a written change replaced: the previous file, or nothing where there was none or it
/// was at another path (which the write did not touch).
async fn restore(cx: &Context, change: &Change) -> Result<(), Error> {
    let address = &change.address;
    let spec = desired(change)?;
    let previous: Option<ObservedFile> = change.before.as_ref().map(|v| crate::decode(address, v)).transpose()?;
    let t = cx.transport(address)?;
    match previous.filter(|p| p.path == spec.path) {
        Some(p) => t.write_file(&spec.path, p.content.as_bytes(), &spec.write_options()).await,
        None => t.remove_file(&spec.path).await,
    }
    .map_err(|e| e.at(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Address {
        Address::new("test", "file", Some("h"), "/etc/x")
    }

    #[test]
    fn same_content_is_noop_other_is_update_with_diff() {
        let d = ManagedFile::new("/etc/x", "a\n");
        let same =
            diff(&addr(), Some(&d), Some(&ObservedFile { path: "/etc/x".into(), content: "a\n".into() })).unwrap();
        assert_eq!(same.action, Action::NoOp);
        assert!(same.diff.is_none());
        let other =
            diff(&addr(), Some(&d), Some(&ObservedFile { path: "/etc/x".into(), content: "b\n".into() })).unwrap();
        assert_eq!(other.action, Action::Update);
        assert_eq!(other.diff.unwrap().old, "b\n");
        assert_eq!(diff(&addr(), Some(&d), None).unwrap().action, Action::Create);
        assert_eq!(
            diff(&addr(), None, Some(&ObservedFile { path: "/etc/x".into(), content: "b".into() })).unwrap().action,
            Action::Delete
        );
    }

    /// Two files written together, one of them moving: a failed activation puts the first back, removes
    /// the moved one's new file and leaves its old one as it was; the activation runs again after.
    #[tokio::test]
    async fn a_failed_activation_puts_back_every_file_written_with_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/a"), "old a").unwrap();
        std::fs::write(root.path().join("etc/b-old"), "old b").unwrap();
        let t = crate::local::LocalTransport::new("h", root.path());
        let cx = Context::for_host("h", std::sync::Arc::new(t), true, root.path().into());
        // The daemon "loads" only while /etc/ok exists; each run of the activation leaves a mark.
        let reload = vec![
            "sh".into(),
            "-c".into(),
            "echo >> \"$1\"; test -e \"$2\"".into(),
            "reload".into(),
            "/etc/marks".into(),
            "/etc/ok".into(),
        ];
        let change = |name: &str, before: Option<(&str, &str)>, path: &str| {
            let mut f = ManagedFile::new(path, format!("new {name}"));
            f.activate = Some(reload.clone());
            let before =
                before.map(|(p, c)| serde_json::to_value(ObservedFile { path: p.into(), content: c.into() }).unwrap());
            let action = if before.is_some() { Action::Update } else { Action::Create };
            Change::new(
                Address::new("test", "file", Some("h"), name),
                action,
                before.as_ref(),
                Some(&serde_json::to_value(f).unwrap()),
            )
        };
        let a = change("a", Some(("/etc/a", "old a")), "/etc/a");
        let b = change("b", Some(("/etc/b-old", "old b")), "/etc/b-new");
        for c in [&a, &b] {
            write(&cx, c).await.unwrap();
        }
        assert_eq!(activations(&[&a, &b]).unwrap().len(), 1, "the same reload is run once");
        let err = activate_together(&cx, &[&a, &b]).await.unwrap_err().to_string();
        assert!(
            err.contains("test.file[h:a], test.file[h:b]") && err.contains("previous files were restored"),
            "{err}"
        );
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).ok();
        assert_eq!(read("etc/a").as_deref(), Some("old a"));
        assert_eq!(read("etc/b-old").as_deref(), Some("old b"));
        assert_eq!(read("etc/b-new"), None);
        assert_eq!(read("etc/marks").as_deref(), Some("\n\n"), "the activation, then again after putting back");

        std::fs::write(root.path().join("etc/ok"), "").unwrap();
        for c in [&a, &b] {
            write(&cx, c).await.unwrap();
        }
        activate_together(&cx, &[&a, &b]).await.unwrap();
        assert_eq!(read("etc/a").as_deref(), Some("new a"));
        assert_eq!(read("etc/b-new").as_deref(), Some("new b"));
    }

    #[test]
    fn command_maps_candidate_and_absolute_paths() {
        let argv: Vec<String> = ["named-checkzone", "example.com", CANDIDATE].iter().map(|s| s.to_string()).collect();
        let c = command(&argv, Some("/var/named/.z.groundwork-candidate")).unwrap();
        assert_eq!(c.args[1], Arg::Path("/var/named/.z.groundwork-candidate".into()));
        assert_eq!(candidate_path("/etc/haproxy/haproxy.cfg"), "/etc/haproxy/.haproxy.cfg.groundwork-candidate");
    }
}
