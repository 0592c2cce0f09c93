//! # groundwork-tftp
//!
//! The TFTP server of the boot chain on every host with role `tftp` (tftpd-hpa): its settings file, and
//! in its root the iPXE loaders DHCP hands to a firmware's PXE client — `undionly.kpxe` for BIOS,
//! `ipxe.efi` (or `snponly.efi`) for UEFI. A loader comes from the host's ipxe package (copied on the
//! host) or from a declared local source (uploaded); either way it is compared by digest.

use async_trait::async_trait;
use groundwork_sdk::file::{self, ManagedFile, ObservedFile, CANDIDATE};
use groundwork_sdk::model::{Environment, HostRole, Loader};
use groundwork_sdk::{
    decode, Action, Address, Change, Cmd, Context, Detail, Error, Expansion, FileMeta, Provider, Resource, WriteOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROVIDER: &str = "tftp";

/// One loader in the TFTP root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoaderSpec {
    /// Absolute path on the host (under the TFTP root).
    pub path: String,
    /// The TFTP root: the file never leaves it.
    pub root: String,
    /// A file on the host to copy (the ipxe package's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A local file to upload (relative to the environment directory), with its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Literal content to write (a stand-in), with its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// What is on the host: the loader, and the package file it is copied from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedLoader {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FileMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FileMeta>,
}

/// The loaders of an environment: declared ones, else DHCP's BIOS and UEFI file names, from the files
/// of the same type in the host's ipxe package.
pub fn loaders(env: &Environment) -> Vec<Loader> {
    if !env.tftp.loaders.is_empty() {
        return env.tftp.loaders.clone();
    }
    let Some(pxe) = env.dhcp.as_ref().and_then(|d| d.pxe.as_ref()) else { return Vec::new() };
    [(&pxe.bios_file, "undionly.kpxe"), (&pxe.efi_file, "ipxe.efi")]
        .into_iter()
        .map(|(path, package)| Loader {
            path: path.clone(),
            from: format!("{}/{package}", env.tftp.ipxe_dir.trim_end_matches('/')).parse().ok(),
            source: None,
            content: None,
        })
        .collect()
}

/// tftpd-hpa's settings (Debian's /etc/default/tftpd-hpa), when `tftp.config` names the file.
pub fn render_config(env: &Environment) -> String {
    format!(
        "# Managed by groundwork for {}. Changes made by hand are overwritten.\n\
         TFTP_USERNAME=\"tftp\"\nTFTP_DIRECTORY=\"{}\"\nTFTP_ADDRESS=\":69\"\n\
         # --secure: paths are relative to the root; --verbose: every transfer is logged.\n\
         TFTP_OPTIONS=\"--secure --verbose\"\n",
        env.managed_for(),
        env.tftp.root
    )
}

fn expand_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::Failed { address: format!("{PROVIDER}[{what}]"), message: message.to_string() }
}

pub fn resources(env: &Environment, x: &Expansion) -> Result<Vec<Resource>, Error> {
    let tftp = &env.tftp;
    let mut out = Vec::new();
    let root = tftp.root.to_string();
    for (host, _) in env.hosts_with_role(HostRole::Tftp) {
        let conf = tftp.config.as_ref().map(|path| {
            let mut conf = ManagedFile::new(path.to_string(), render_config(env));
            conf.mode = Some(0o644);
            conf.check = vec![vec!["sh".into(), "-n".into(), CANDIDATE.into()]];
            conf.activate = Some(tftp.restart.to_vec());
            (Address::new(PROVIDER, "config", Some(host), path.to_string()), conf)
        });
        for l in loaders(env) {
            let path = tftp.root.join(&l.path);
            let mut spec = LoaderSpec {
                path: path.clone(),
                root: root.clone(),
                from: None,
                source: None,
                content: None,
                sha256: String::new(),
            };
            match (&l.content, &l.source, &l.from) {
                (Some(text), _, _) => {
                    spec.sha256 = groundwork_sdk::SecretRef::of(text.as_bytes()).sha256;
                    spec.content = Some(text.clone());
                }
                (None, Some(src), _) => {
                    let s = x.inputs.source(src)?;
                    spec.source = Some(s.key);
                    spec.sha256 = s.sha256;
                }
                (None, None, Some(from)) => spec.from = Some(from.to_string()),
                (None, None, None) => {
                    let from = format!(
                        "{}/{}",
                        tftp.ipxe_dir.trim_end_matches('/'),
                        l.path.rsplit('/').next().unwrap_or(&l.path)
                    );
                    spec.from = Some(from);
                }
            }
            let addr = Address::new(PROVIDER, "loader", Some(host), path);
            let mut r = Resource::new(addr, spec)?;
            if let Some((conf_addr, _)) = &conf {
                r = r.depends_on(conf_addr.clone());
            }
            out.push(r);
        }
        if let Some((conf_addr, conf)) = conf {
            out.push(Resource::new(conf_addr, conf)?);
        }
    }
    if out.is_empty() && !tftp.loaders.is_empty() {
        return Err(expand_err("loaders", "tftp.loaders are declared but no infra host has the role tftp"));
    }
    Ok(out)
}

/// Pure: a loader against what the host has. The wanted digest is the source's, or the package
/// file's as found on the same host.
pub fn diff_loader(
    address: &Address,
    desired: Option<&LoaderSpec>,
    actual: Option<&ObservedLoader>,
) -> Result<Change, Error> {
    let target = actual.and_then(|a| a.target.as_ref());
    let av = target
        .map(|t| serde_json::json!(ObservedLoader { path: address.name.clone(), target: Some(t.clone()), from: None }));
    let Some(d) = desired else {
        return Ok(Change::compare(address.clone(), None, av.as_ref(), false));
    };
    let want = if d.source.is_some() || d.content.is_some() {
        d.sha256.clone()
    } else {
        let from = d.from.clone().unwrap_or_default();
        match actual.and_then(|a| a.from.as_ref()) {
            Some(m) => m.sha256.clone(),
            None => {
                return Err(Error::failed(
                    address,
                    format!(
                        "{from} is not on the host: install its ipxe package (RHEL: dnf install ipxe-bootimgs; \
                         Debian: apt install ipxe), set tftp.ipxe_dir, or give the loader a source"
                    ),
                ))
            }
        }
    };
    let same = target.is_some_and(|t| t.sha256 == want && t.mode & 0o444 == 0o444);
    let mut dv = serde_json::to_value(d).map_err(|e| Error::failed(address, e.to_string()))?;
    dv["sha256"] = Value::String(want.clone());
    let mut c = Change::compare(address.clone(), Some(&dv), av.as_ref(), same);
    if c.action != Action::NoOp {
        let short = |s: &str| format!("sha256:{}…", &s[..12.min(s.len())]);
        let whence = d.from.as_deref().map(|f| format!(" (from {f})")).unwrap_or_else(|| " (uploaded)".into());
        c.details.push(Detail::modify(match target {
            Some(t) => format!("{} → {}{whence}", short(&t.sha256), short(&want)),
            None => format!("→ {}{whence}", short(&want)),
        }));
    }
    Ok(c)
}

/// Copy a file on the host into place atomically (temp file beside it, then rename), readable by all.
const COPY_SCRIPT: &str = r#"set -e
d=$(dirname -- "$2"); mkdir -p -- "$d"
t=$(mktemp -- "$d/.groundwork-XXXXXX")
trap 'rm -f -- "$t"' EXIT
cp -- "$1" "$t"; chmod 0644 "$t"; sync -- "$t" 2>/dev/null || true
mv -f -- "$t" "$2"; trap - EXIT
"#;

pub struct TftpProvider;

#[async_trait]
impl Provider for TftpProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        let (loaders, files): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().copied().partition(|r| r.address.kind == "loader");
        let mut p = file::prefetch_paths(&files);
        for r in loaders {
            if let Ok(spec) = r.spec::<LoaderSpec>() {
                p.metas.push(spec.path.clone());
                p.metas.extend(spec.from);
            }
        }
        p
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let Some(first) = resources.first() else { return Ok(Vec::new()) };
        let configs: Vec<&Resource> = resources.iter().copied().filter(|r| r.address.kind != "loader").collect();
        let mut config_states = file::read_resources(cx, &configs).await?.into_iter();
        let t = cx.transport(&first.address)?;
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            if r.address.kind != "loader" {
                out.push(config_states.next().flatten());
                continue;
            }
            let spec: LoaderSpec = r.spec()?;
            let mut paths = vec![spec.path.clone()];
            paths.extend(spec.from.clone());
            let mut metas = t.file_meta(&paths).await.map_err(|e| e.at(&r.address))?.into_iter();
            let target = metas.next().flatten();
            let from = metas.next().flatten();
            let o = ObservedLoader { path: spec.path, target, from };
            out.push((o.target.is_some() || o.from.is_some()).then(|| serde_json::json!(o)));
        }
        Ok(out)
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        if address.kind != "loader" {
            let d: Option<ManagedFile> = desired.map(|v| decode(address, v)).transpose()?;
            let a: Option<ObservedFile> = actual.map(|v| decode(address, v)).transpose()?;
            return file::diff(address, d.as_ref(), a.as_ref());
        }
        let d: Option<LoaderSpec> = desired.map(|v| decode(address, v)).transpose()?;
        let a: Option<ObservedLoader> = actual.map(|v| decode(address, v)).transpose()?;
        diff_loader(address, d.as_ref(), a.as_ref())
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        if address.kind != "loader" {
            return file::apply(cx, change).await;
        }
        let t = cx.transport(address)?;
        match (change.action, &change.after) {
            (Action::Delete, _) => t.remove_file(&address.name).await.map_err(|e| e.at(address)),
            (_, Some(after)) => {
                let spec: LoaderSpec = decode(address, after)?;
                let opts = WriteOptions { mode: Some(0o644), within: Some(spec.root.clone()), ..Default::default() };
                match (&spec.content, &spec.source, &spec.from) {
                    (Some(text), _, _) => {
                        t.write_file(&spec.path, text.as_bytes(), &opts).await.map_err(|e| e.at(address))
                    }
                    (None, Some(src), _) => t
                        .upload(&cx.env_dir.join(src), &spec.path, &spec.sha256, &opts)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.at(address)),
                    (None, None, Some(from)) => {
                        let cmd = Cmd::new("sh")
                            .arg("-c")
                            .arg(COPY_SCRIPT)
                            .arg("groundwork-loader")
                            .path(from)
                            .path(&spec.path);
                        let out = t.exec(&cmd).await.map_err(|e| e.at(address))?;
                        if out.success() {
                            Ok(())
                        } else {
                            Err(Error::failed(address, format!("copying {from}: {}", out.message())))
                        }
                    }
                    (None, None, None) => Err(Error::failed(address, "a loader needs a source or a host file")),
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sha: &str) -> FileMeta {
        FileMeta { sha256: sha.into(), size: 1, mode: 0o644, owner: String::new(), group: String::new() }
    }

    #[test]
    fn a_loader_follows_the_package_file_on_the_host() {
        let a = Address::new(PROVIDER, "loader", Some("bastion"), "/srv/tftp/undionly.kpxe");
        let spec = LoaderSpec {
            path: "/srv/tftp/undionly.kpxe".into(),
            root: "/srv/tftp".into(),
            from: Some("/usr/lib/ipxe/undionly.kpxe".into()),
            source: None,
            content: None,
            sha256: String::new(),
        };
        let seen = |target: Option<&str>, from: Option<&str>| ObservedLoader {
            path: spec.path.clone(),
            target: target.map(meta),
            from: from.map(meta),
        };
        assert_eq!(diff_loader(&a, Some(&spec), Some(&seen(None, Some("aa")))).unwrap().action, Action::Create);
        assert_eq!(diff_loader(&a, Some(&spec), Some(&seen(Some("aa"), Some("aa")))).unwrap().action, Action::NoOp);
        let c = diff_loader(&a, Some(&spec), Some(&seen(Some("bb"), Some("aa")))).unwrap();
        assert_eq!(c.action, Action::Update);
        assert!(c.details[0].text.contains("(from /usr/lib/ipxe/undionly.kpxe)"), "{:?}", c.details);
        let err = diff_loader(&a, Some(&spec), Some(&seen(None, None))).unwrap_err().to_string();
        assert!(err.contains("install its ipxe package"), "{err}");
    }
}
