//! # groundwork-files
//!
//! Files served over HTTP from the http host's docroot: ignition configs, RHCOS kernel/initramfs/image,
//! the iPXE script (rendered from the inventory with minijinja) and any extra declared file.
//!
//! Identity is the sha256 of the content: large files are compared by digest read on the host and
//! uploaded by streaming; small rendered files are read back so the plan can show a text diff.
//! Ignition files and files marked `secret: true` are sensitive: their content is never shown, diffed,
//! read back, or carried in a spec — only its digest ([`groundwork_sdk::SecretRef`]).

mod certs;

use async_trait::async_trait;
use groundwork_sdk::file::ManagedFile;
use groundwork_sdk::model::{Environment, FileKind, FilesSettings, Host, NodeRole, ServedFile, WebServer, WebSite};
use groundwork_sdk::transport::Cmd;
use groundwork_sdk::value::RemotePath;
use groundwork_sdk::{
    decode, Action, Address, Change, Context, Error, Expansion, FileMeta, Provider, Resource, SecretRef, TextDiff,
    WriteOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const PROVIDER: &str = "files";
/// Text files up to this size are read back whole so the plan can diff them.
const DIFF_LIMIT: u64 = 1024 * 1024;
/// Ignition certificates expire 24 h after the installer generated them.
const IGNITION_EXPIRY_HOURS: u64 = 24;

/// Desired state of one served file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileSpec {
    /// Absolute path on the host.
    pub path: String,
    /// URL path under the docroot.
    pub url_path: String,
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    /// Rendered or literal text that is not secret; None for uploads and secret text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Rendered or literal text that is secret: by reference only (the bytes are in the run's store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// Local file to upload, relative to the environment directory (absolute only under a declared
    /// `files.source_dirs`), so that a plan does not depend on where the repository is checked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub sensitive: bool,
    /// Age of the source in hours when the plan was made (ignition only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_hours: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_hours: Option<u64>,
    /// Hours until the first certificate the ignition carries expires, from the plan's moment (negative:
    /// expired that long ago); None when it carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_hours_left: Option<i64>,
    /// Serve an ignition file past its certificates' expiry anyway.
    #[serde(default)]
    pub allow_expired: bool,
    /// Owner and group names to set; None leaves them as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What was read on the host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObservedFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    /// Empty where the transport cannot tell.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl FileSpec {
    /// Metadata differences (mode, owner, group) against what is on the host, as `(what, from, to)`.
    pub fn metadata_changes(&self, actual: &ObservedFile) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if self.mode != actual.mode {
            out.push(("mode", format!("{:04o}", actual.mode), format!("{:04o}", self.mode)));
        }
        // An owner the transport could not read (empty) is not reported as different.
        for (what, want, have) in [("owner", &self.owner, &actual.owner), ("group", &self.group, &actual.group)] {
            if let Some(want) = want.as_ref().filter(|w| !have.is_empty() && *w != have) {
                out.push((what, have.clone(), want.clone()));
            }
        }
        out
    }
}

/// Errors of expansion: a source missing, a template failing.
fn expand_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::Failed { address: format!("files.file[{what}]"), message: message.to_string() }
}

/// The HTTP host: files.host or the first host with role http.
pub fn http_host(env: &Environment) -> Option<(String, std::net::IpAddr)> {
    env.http_host().map(|(n, h)| (n.to_string(), h.address))
}

/// Base URL the nodes fetch served files from.
pub fn http_base(env: &Environment) -> Option<String> {
    groundwork_sdk::boot::http_base(env)
}

/// Render a template named by a served file: the built-in iPXE chain script, or a minijinja file of the
/// environment (read through the confined inputs).
pub fn render_named(env: &Environment, x: &Expansion, template: &str) -> Result<String, Error> {
    if template == "builtin:ipxe" {
        render_builtin_ipxe(env)
    } else {
        let source = x.inputs.read_text(template)?;
        render_template(env, template, &source)
    }
}

/// Render a minijinja template with the inventory. `name` is for messages.
pub fn render_template(env: &Environment, name: &str, source: &str) -> Result<String, Error> {
    let mut j = minijinja::Environment::new();
    j.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    j.set_keep_trailing_newline(true);
    j.add_template(name, source).map_err(|e| expand_err(name, e))?;
    let mut roles: Vec<&str> = vec!["bootstrap", "master", "worker"];
    if env.nodes_with_role(NodeRole::Infra).next().is_some() {
        roles.push("infra");
    }
    let ignition: std::collections::BTreeMap<&str, &str> =
        [NodeRole::Bootstrap, NodeRole::Master, NodeRole::Worker, NodeRole::Infra]
            .iter()
            .map(|r| (r.as_str(), r.ignition()))
            .collect();
    let ctx = minijinja::context! {
        cluster => &env.cluster,
        nodes => &env.nodes,
        hosts => &env.hosts,
        networks => &env.networks,
        boot => env.files.as_ref().and_then(|f| f.boot.as_ref()),
        http_base => http_base(env),
        roles => roles,
        ignition => ignition,
    };
    let t = j.get_template(name).map_err(|e| expand_err(name, e))?;
    t.render(ctx).map_err(|e| expand_err(name, format!("{e:#}")))
}

/// The built-in iPXE script: the chain to each machine's own script, by MAC (no menu: nobody sits at
/// a console to pick an entry). Needs `files.boot`.
pub fn render_builtin_ipxe(env: &Environment) -> Result<String, Error> {
    groundwork_sdk::boot::render_chain_script(env)
        .ok_or_else(|| expand_err("builtin:ipxe", "the builtin:ipxe script needs files.boot and an http host"))
}

/// The kind of the web server's site resource (`files.site[HOST:PATH]`).
pub const SITE: &str = "site";
/// A directory of the cluster's own on shared infra hosts (`<docroot>/<cluster>` and those under it):
/// made before its files, removed after them when empty.
pub const DIR: &str = "dir";

/// A directory groundwork made for the cluster's served files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirSpec {
    pub path: String,
}

/// Prints each of its arguments that is a directory (what a read of `files.dir` resources needs).
const EXISTING_DIRS: &str = r#"for d; do [ -d "$d" ] && printf '%s\n' "$d"; done; :"#;

/// Removes an empty directory; one someone put files in stays (and is no longer groundwork's).
const REMOVE_DIR: &str = r#"rmdir -- "$1" 2>/dev/null || [ ! -e "$1" ] || [ -n "$(ls -A -- "$1" 2>/dev/null)" ]"#;

fn dirs_command(resources: &[&Resource]) -> Cmd {
    let mut cmd = Cmd::new("sh").arg("-c").arg(EXISTING_DIRS).arg("groundwork-dirs");
    for r in resources {
        if let Ok(d) = r.spec::<DirSpec>() {
            cmd = cmd.path(d.path);
        }
    }
    cmd
}

/// On shared infra hosts: a `files.dir` resource per directory the cluster's files are in, from its own
/// directory down, and each file depending on its directory.
fn own_dirs(host: &str, top: &str, files: &mut [Resource]) -> Result<Vec<Resource>, Error> {
    let top = top.trim_end_matches('/');
    let mut dirs: std::collections::BTreeSet<String> = std::collections::BTreeSet::from([top.to_string()]);
    for f in files.iter_mut() {
        let Some((parent, _)) = f.address.name.rsplit_once('/') else { continue };
        if !parent.starts_with(top) {
            continue;
        }
        let mut d = parent.to_string();
        while d.len() > top.len() {
            dirs.insert(d.clone());
            d = d.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
        }
        f.depends_on.push(Address::new(PROVIDER, DIR, Some(host), parent));
    }
    dirs.into_iter()
        .map(|d| {
            let parent = d.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
            let mut r = Resource::new(Address::new(PROVIDER, DIR, Some(host), d.clone()), DirSpec { path: d.clone() })?;
            if d != top {
                r.depends_on.push(Address::new(PROVIDER, DIR, Some(host), parent));
            }
            Ok(r)
        })
        .collect()
}

/// Checks an nginx site file the way nginx reads it: inside the `http` block of a configuration of its own.
const CHECK_NGINX_SITE: &str = r#"t=$(mktemp -d) || exit 1
printf 'pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  include %s;\n}\n' "$t" "$1" > "$t/nginx.conf"
nginx -t -q -c "$t/nginx.conf"; rc=$?
rm -rf "$t"; exit $rc"#;

/// Checks an httpd site file with the host's whole configuration. Its `Listen` is left out while
/// checking (`groundwork_candidate`): the live copy of the same file, included by the main
/// configuration, already has it, and httpd refuses two listeners on one address.
const CHECK_HTTPD_SITE: &str = r#"apachectl -t -D groundwork_candidate -c "Include $1""#;

/// The web server's site for the docroot: on the http host's address and `files.port`, every request
/// logged.
pub fn render_site(env: &Environment, files: &FilesSettings, site: &WebSite, host: &str, h: &Host) -> String {
    let port = env.http_port();
    let address = match h.address {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    };
    let log = site.access_log_path(h.os);
    let root = &files.docroot;
    // On shared infra hosts the site is the same for every cluster (each has its directory under it).
    let owner = env.managed_for();
    let head = format!(
        "# Managed by groundwork for {owner}: the served files. Changes made by hand are overwritten.\n\
         # Every request is logged: which node fetched which file.\n"
    );
    match site.server {
        WebServer::Nginx => format!(
            "{head}log_format groundwork '$remote_addr [$time_local] \"$request\" $status $bytes_sent';\n\
             server {{\n    listen {address};\n    server_name _;\n    root {root};\n    \
             access_log {log} groundwork;\n    location / {{\n        autoindex off;\n    }}\n}}\n"
        ),
        WebServer::Httpd => {
            // Port 80 is already a listener of the distributions' main configuration.
            let listen = if port == 80 {
                String::new()
            } else {
                format!("<IfDefine !groundwork_candidate>\n    Listen {address}\n</IfDefine>\n")
            };
            format!(
                "{head}{listen}LogFormat \"%h %t \\\"%r\\\" %>s %B\" groundwork\n\
                 <VirtualHost {address}>\n    ServerName {host}\n    DocumentRoot \"{root}\"\n    \
                 <Directory \"{root}\">\n        Options -Indexes\n        AllowOverride None\n        \
                 Require all granted\n    </Directory>\n    CustomLog \"{log}\" groundwork\n</VirtualHost>\n"
            )
        }
    }
}

/// Hours from `now` until the first certificate in an ignition config expires (rounded down).
fn cert_hours_left(ignition: &[u8], now: u64) -> Option<i64> {
    certs::earliest_not_after(ignition).map(|t| (t - now as i64).div_euclid(3600))
}

/// The address of the served file at `path` on the web host.
pub fn served_address(host: &str, path: &str) -> Address {
    Address::new(PROVIDER, "file", Some(host), path)
}

/// Expand the environment's served files into resources. Reads (hashes) local sources.
pub fn resources(env: &Environment, x: &Expansion) -> Result<Vec<Resource>, Error> {
    let Some(files) = &env.files else {
        return Ok(Vec::new());
    };
    let Some((host, _)) = http_host(env) else {
        return Ok(Vec::new());
    };
    let retire_bootstrap = env.openshift.as_ref().is_some_and(|o| o.retire_bootstrap);
    let mut out = Vec::new();
    if let (Some(site), Some((name, h))) = (&files.web, env.http_host()) {
        let config = site.config_path(h.os);
        let mut mf = ManagedFile::new(config.clone(), render_site(env, files, site, name, h));
        mf.mode = Some(0o644);
        let check = match site.server {
            WebServer::Nginx => CHECK_NGINX_SITE,
            WebServer::Httpd => CHECK_HTTPD_SITE,
        };
        mf.check = vec![vec![
            "sh".into(),
            "-c".into(),
            check.into(),
            "groundwork-check".into(),
            groundwork_sdk::file::CANDIDATE.into(),
        ]];
        mf.activate = Some(site.reload_argv(&env.unit_of(h, site.server.daemon())));
        out.push(Resource::new(Address::new(PROVIDER, SITE, Some(&host), config), mf)?);
    }
    let served_dir = env.served_dir().unwrap_or_else(|| files.docroot.clone());
    for f in &files.serve {
        let mut spec = file_spec(env, x, f, &served_dir, files.ignition_warn_hours)?;
        spec.allow_expired = files.allow_expired_ignition;
        let mut r = Resource::new(served_address(&host, &spec.path), spec)?;
        if retire_bootstrap && f.kind == FileKind::Ignition && f.path == NodeRole::Bootstrap.ignition() {
            // Its certificates are of no use once bootstrap is over; nothing should fetch it again.
            r = r.until(groundwork_sdk::Gate::BootstrapComplete);
        }
        out.push(r);
    }
    // Each declared node's own iPXE script, by MAC.
    for entry in groundwork_sdk::boot::entries(env) {
        let text = groundwork_sdk::boot::render_node_script(&env.cluster.name, &entry);
        let spec = FileSpec {
            path: format!("{}/{}", served_dir.trim_end_matches('/'), entry.script),
            url_path: entry.script.clone(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            size: text.len() as u64,
            mode: 0o644,
            content: Some(text),
            secret: None,
            source: None,
            sensitive: false,
            age_hours: None,
            cert_hours_left: None,
            warn_hours: None,
            allow_expired: false,
            owner: None,
            group: None,
        };
        let addr = Address::new(PROVIDER, "file", Some(&host), spec.path.clone());
        let mut r = Resource::new(addr, spec)?;
        if entry.role == NodeRole::Bootstrap {
            // Once bootstrap is over, a machine with the bootstrap's MAC boots nothing.
            r = r.until(groundwork_sdk::Gate::BootstrapComplete);
        }
        out.push(r);
    }
    if env.cluster.shared_infra {
        let (mut served, rest): (Vec<Resource>, Vec<Resource>) =
            out.into_iter().partition(|r| r.address.kind == "file");
        let dirs = own_dirs(&host, &served_dir, &mut served)?;
        out = rest.into_iter().chain(dirs).chain(served).collect();
    }
    Ok(out)
}

fn file_spec(
    env: &Environment,
    x: &Expansion,
    f: &ServedFile,
    docroot: &RemotePath,
    warn_hours: u64,
) -> Result<FileSpec, Error> {
    // Typed at load: a relative path without `..`, so it stays under the docroot.
    let path = docroot.join(&f.path);
    let mode = f.mode.map(|m| m.0).unwrap_or(0o644);
    let sensitive = f.kind == FileKind::Ignition || f.secret;
    let ignition = f.kind == FileKind::Ignition;
    let mut spec = FileSpec {
        path,
        url_path: f.path.to_string(),
        sha256: String::new(),
        size: 0,
        mode,
        content: None,
        secret: None,
        source: None,
        sensitive,
        age_hours: None,
        cert_hours_left: None,
        warn_hours: ignition.then_some(warn_hours),
        allow_expired: false,
        owner: f.owner.as_ref().map(|o| o.to_string()),
        group: f.group.as_ref().map(|g| g.to_string()),
    };
    let text = match (&f.source, &f.template, &f.content) {
        // Known by digest only: nothing to upload; a differing file is reported, and apply refuses.
        (None, None, None) if f.sha256.is_some() => {
            spec.sha256 = f.sha256.as_ref().map(|h| h.to_string()).unwrap_or_default();
            spec.size = f.size.unwrap_or(0);
            None
        }
        (Some(src), None, None) if f.sha256.is_none() => {
            let source = x.inputs.source(src)?;
            if ignition {
                // Checked as the very bytes that were hashed: a file that changes in between is refused.
                let text = x.inputs.read_text(src)?;
                if hex::encode(Sha256::digest(text.as_bytes())) != source.sha256 {
                    return Err(expand_err(&f.path, format!("{src} changed while it was read")));
                }
                check_ignition(text.as_bytes()).map_err(|m| expand_err(&f.path, format!("{src} {m}")))?;
                spec.cert_hours_left = cert_hours_left(text.as_bytes(), x.now);
                // Reckoned from the plan's moment, so a saved plan expands the same way when applied.
                let modified = source.modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
                spec.age_hours = modified.map(|m| x.now.saturating_sub(m.as_secs()) / 3600);
            }
            spec.sha256 = source.sha256;
            spec.size = source.size;
            spec.source = Some(source.key);
            None
        }
        (None, Some(t), None) if f.sha256.is_none() => Some(render_named(env, x, t)?),
        (None, None, Some(c)) if f.sha256.is_none() => Some(c.clone()),
        _ => return Err(expand_err(&f.path, "exactly one of source, template, content, sha256 must be given")),
    };
    if let Some(text) = text {
        if ignition {
            check_ignition(text.as_bytes()).map_err(|m| expand_err(&f.path, m))?;
            spec.cert_hours_left = cert_hours_left(text.as_bytes(), x.now);
        }
        spec.sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        spec.size = text.len() as u64;
        if sensitive {
            spec.secret = Some(x.secrets.keep(text.into_bytes()));
        } else {
            spec.content = Some(text);
        }
    }
    Ok(spec)
}

/// The sections an Ignition config of spec `major.minor` has at its top level and inside `ignition`
/// (spec 2.x is OpenShift 4.5 and earlier's; 3.x from 4.6). Held to the vendored 3.x JSON schemas by
/// tests/ignition_check.rs.
pub fn ignition_sections(major: u64, minor: u64) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut top = vec!["ignition", "passwd", "storage", "systemd"];
    let mut inner = vec!["version", "config", "timeouts", "security"];
    if major == 2 {
        top.push("networkd");
    }
    if major == 3 && minor >= 3 {
        top.push("kernelArguments");
    }
    if major == 3 && minor >= 1 {
        inner.push("proxy");
    }
    (top, inner)
}

/// Whether a served ignition file is an Ignition config: JSON, an `ignition.version` of spec 2.x or
/// 3.x, and each section it has an object. Returns the version. Messages say where, never what: the
/// file holds the cluster's keys.
pub fn check_ignition(bytes: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("is not an Ignition config: not JSON (line {}, column {})", e.line(), e.column()))?;
    let obj = v.as_object().ok_or("is not an Ignition config: not a JSON object")?;
    let ign =
        obj.get("ignition").and_then(|i| i.as_object()).ok_or("is not an Ignition config: no \"ignition\" object")?;
    let version =
        ign.get("version").and_then(|v| v.as_str()).ok_or("is not an Ignition config: no ignition.version")?;
    let numbers: Vec<u64> = version
        .trim_end_matches("-experimental")
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()
        .unwrap_or_default();
    let [major, minor, _patch] = numbers[..] else {
        return Err("is not an Ignition config: ignition.version is not MAJOR.MINOR.PATCH".into());
    };
    if !(major == 2 && minor <= 4 || major == 3 && minor <= 5) {
        return Err(format!(
            "has Ignition spec {version}: RHCOS reads 2.x (OpenShift 4.5 and earlier) and 3.0 to 3.5 (4.6 and later)"
        ));
    }
    let (top, inner) = ignition_sections(major, minor);
    for (section, value) in obj.iter().filter(|(k, _)| top.contains(&k.as_str())) {
        if !value.is_object() {
            return Err(format!("is not an Ignition {version} config: \"{section}\" is not an object"));
        }
    }
    for (key, value) in ign.iter().filter(|(k, _)| inner.contains(&k.as_str()) && k.as_str() != "version") {
        if !value.is_object() {
            return Err(format!("is not an Ignition {version} config: ignition.{key} is not an object"));
        }
    }
    Ok(version.to_string())
}

/// What an iPXE script boots, as read back: per label (`:worker`), its `kernel` URL and arguments and its
/// `initrd` URLs; and the menu's `item` labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpxeEntries {
    pub items: Vec<String>,
    /// (label, kernel URL, kernel arguments)
    pub kernels: Vec<(String, String, Vec<String>)>,
    /// (label, initrd URL)
    pub initrds: Vec<(String, String)>,
}

/// Read an iPXE script: labels, `item`, `kernel` and `initrd` lines (anything else is not an entry).
pub fn read_ipxe(text: &str) -> IpxeEntries {
    let mut out = IpxeEntries::default();
    let mut label = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [l] if l.starts_with(':') => label = l[1..].to_string(),
            ["item", rest @ ..] => {
                let mut it = rest.iter().peekable();
                while let Some(w) = it.next() {
                    match *w {
                        "--gap" => break,
                        "--key" => {
                            it.next();
                        }
                        w if w.starts_with("--") => {}
                        w => {
                            out.items.push(w.to_string());
                            break;
                        }
                    }
                }
            }
            ["kernel", url, args @ ..] => {
                out.kernels.push((label.clone(), url.to_string(), args.iter().map(|a| a.to_string()).collect()))
            }
            ["initrd", url, ..] => out.initrds.push((label.clone(), url.to_string())),
            _ => {}
        }
    }
    out
}

pub struct FilesProvider;

#[async_trait]
impl Provider for FilesProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let (dirs, resources_but_dirs): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().copied().partition(|r| r.address.kind == DIR);
        let (sites, served): (Vec<&Resource>, Vec<&Resource>) =
            resources_but_dirs.into_iter().partition(|r| r.address.kind == SITE);
        let mut site_states = groundwork_sdk::file::read_resources(cx, &sites).await?.into_iter();
        let mut served_states = self.read_served(cx, &served).await?.into_iter();
        let existing: std::collections::BTreeSet<String> = match dirs.first() {
            Some(first) => {
                let out = cx.commands(&first.address, "directories")?.exec(&dirs_command(&dirs)).await;
                out.map_err(|e| e.at(&first.address))?.stdout_str().lines().map(str::to_string).collect()
            }
            None => Default::default(),
        };
        Ok(resources
            .iter()
            .map(|r| match r.address.kind.as_str() {
                DIR => existing.contains(&r.address.name).then(|| serde_json::json!({ "path": r.address.name })),
                SITE => site_states.next().flatten(),
                _ => served_states.next().flatten(),
            })
            .collect())
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        // Served files are most of a large environment's resources: their paths are taken from the
        // specs as they are, without decoding them.
        let (mut dirs, mut sites, mut p) = (Vec::new(), Vec::new(), groundwork_sdk::Prefetch::default());
        for &r in resources {
            match r.address.kind.as_str() {
                DIR => dirs.push(r),
                SITE => sites.push(r),
                // Digests only: a file is read whole (for the plan's diff) only where its digest is not
                // the desired one, which is rare (at 2000 nodes the per-node scripts alone are 2 MB a plan).
                _ => p.metas.extend(r.spec.get("path").and_then(Value::as_str).map(str::to_string)),
            }
        }
        p.extend(groundwork_sdk::file::prefetch_paths(&sites));
        if !dirs.is_empty() {
            p.execs.push(dirs_command(&dirs));
        }
        p
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        if address.kind == DIR {
            return Ok(Change::compare(address.clone(), desired, actual, desired.is_some() == actual.is_some()));
        }
        if address.kind == SITE {
            let d: Option<ManagedFile> = desired.map(|v| decode(address, v)).transpose()?;
            let a: Option<groundwork_sdk::file::ObservedFile> = actual.map(|v| decode(address, v)).transpose()?;
            return groundwork_sdk::file::diff(address, d.as_ref(), a.as_ref());
        }
        let d: Option<FileSpec> = desired.map(|v| decode(address, v)).transpose()?;
        let a: Option<ObservedFile> = actual.map(|v| decode(address, v)).transpose()?;
        diff_file(address, d.as_ref(), a.as_ref())
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        if change.address.kind == SITE {
            return groundwork_sdk::file::apply(cx, change).await;
        }
        if change.address.kind == DIR {
            let a = &change.address;
            let cmd = match change.action {
                Action::Delete => Cmd::new("sh").arg("-c").arg(REMOVE_DIR).arg("groundwork-rmdir").path(a.name.clone()),
                Action::NoOp => return Ok(()),
                _ => Cmd::new("mkdir").arg("-p").arg("--").path(a.name.clone()),
            };
            let out = cx.commands(a, "directories")?.exec(&cmd).await.map_err(|e| e.at(a))?;
            return match out.success() {
                true => Ok(()),
                false => Err(Error::failed(a, out.message())),
            };
        }
        self.apply_served(cx, change).await
    }

    /// A served file is its own atomic write: a thousand nodes' iPXE scripts go side by side (as many
    /// at once as the connection's channels allow). The web server's site file is checked and reloaded:
    /// it goes alone.
    fn runs_beside_others(&self, change: &Change) -> bool {
        change.address.kind != SITE
    }

    fn activation_deferred(&self, change: &Change) -> bool {
        change.address.kind == SITE && groundwork_sdk::file::defers_activation(change)
    }

    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        groundwork_sdk::file::write(cx, change).await
    }

    async fn activate(&self, cx: &Context, changes: &[&Change]) -> Result<(), Error> {
        groundwork_sdk::file::activate_together(cx, changes).await
    }
}

impl FilesProvider {
    async fn read_served(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let Some(first) = resources.first() else {
            return Ok(Vec::new());
        };
        /// What reading a served file needs of its spec: not its content (a plan of 2000 per-node
        /// scripts would copy them all).
        #[derive(Deserialize)]
        struct Served {
            path: String,
            sha256: String,
            #[serde(default)]
            content: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            sensitive: bool,
        }
        let t = cx.transport(&first.address)?;
        let specs: Vec<Served> = resources.iter().map(|r| r.spec()).collect::<Result<_, _>>()?;
        let paths: Vec<String> = specs.iter().map(|s| s.path.clone()).collect();
        let metas = t.file_meta(&paths).await.map_err(|e| e.at(&first.address))?;
        // Small text files that differ are read back whole so the plan can show what changes.
        let wanted: Vec<String> = specs
            .iter()
            .zip(&metas)
            .filter(|(s, m)| {
                s.content.is_some()
                    && !s.sensitive
                    && m.as_ref().is_some_and(|m| m.size <= DIFF_LIMIT && m.sha256 != s.sha256)
            })
            .map(|(s, _)| s.path.clone())
            .collect();
        let texts = if wanted.is_empty() {
            Vec::new()
        } else {
            t.read_files(&wanted).await.map_err(|e| e.at(&first.address))?
        };
        let mut text_of: HashMap<String, Vec<u8>> =
            wanted.into_iter().zip(texts).filter_map(|(p, b)| Some((p, b?))).collect();
        let mut out = Vec::with_capacity(specs.len());
        for (s, m) in specs.iter().zip(metas) {
            let Some(FileMeta { sha256, size, mode, owner, group }) = m else {
                out.push(None);
                continue;
            };
            let content = text_of.remove(&s.path).map(|b| String::from_utf8_lossy(&b).into_owned());
            let obs = ObservedFile { path: s.path.clone(), sha256, size, mode, owner, group, content };
            out.push(Some(serde_json::to_value(obs).map_err(|e| expand_err(&s.path, e))?));
        }
        Ok(out)
    }

    async fn apply_served(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        let t = cx.transport(address)?;
        match change.action {
            Action::NoOp => Ok(()),
            Action::Delete => {
                let path = change
                    .before
                    .as_ref()
                    .map(|v| decode::<ObservedFile>(address, v))
                    .transpose()?
                    .map(|o| o.path)
                    .unwrap_or_else(|| address.name.clone());
                t.remove_file(&path).await.map_err(|e| e.at(address))
            }
            Action::Create | Action::Update | Action::Replace => {
                let spec: FileSpec = change
                    .after
                    .as_ref()
                    .map(|v| decode(address, v))
                    .transpose()?
                    .ok_or_else(|| Error::failed(address, "change has no desired state"))?;
                // The file stays under the docroot: a symlink out of it is refused on the host.
                let within = spec.path.strip_suffix(&spec.url_path).map(|d| d.trim_end_matches('/').to_string());
                let opts = WriteOptions {
                    mode: Some(spec.mode),
                    owner: spec.owner.clone(),
                    group: spec.group.clone(),
                    within,
                };
                let before: Option<ObservedFile> = change.before.as_ref().map(|v| decode(address, v)).transpose()?;
                if let Some(b) = before.filter(|b| b.sha256 == spec.sha256) {
                    // Same bytes, other mode or owner: set them in place instead of sending the file again.
                    return set_metadata(t, &spec, &b).await.map_err(|e| e.at(address));
                }
                match (&spec.content, &spec.secret, &spec.source) {
                    (Some(text), _, _) => {
                        t.write_file(&spec.path, text.as_bytes(), &opts).await.map_err(|e| e.at(address))
                    }
                    (None, Some(secret), _) => {
                        let bytes = cx.secret(address, secret)?;
                        t.write_file(&spec.path, &bytes, &opts).await.map_err(|e| e.at(address))
                    }
                    // The transport refuses a source that no longer has the planned digest, and says so.
                    (None, None, Some(src)) => t
                        .upload(&cx.env_dir.join(src), &spec.path, &spec.sha256, &opts)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.at(address)),
                    (None, None, None) => Err(Error::failed(
                        address,
                        "served by digest only (files.serve sha256): groundwork has no source to write it from; \
                         give it a source, or put the file there by hand",
                    )),
                }
            }
        }
    }
}

/// Who a node script boots (`m1 52:54:00:00:00:21`), from its header line.
fn boot_owner(text: &str) -> Option<String> {
    let head = text.lines().nth(1)?.strip_prefix("# ")?;
    let (who, _) = head.split_once(". Rendered by groundwork")?;
    let name = who.split(' ').next()?;
    let mac = who.rsplit(", ").next()?;
    Some(format!("{name} {mac}"))
}

/// A node script as lines: its kernel, each kernel argument, its initrd.
fn boot_lines(who: &str, text: &str) -> std::collections::BTreeSet<String> {
    let e = read_ipxe(text);
    let mut out: std::collections::BTreeSet<String> = Default::default();
    for (_, url, args) in &e.kernels {
        out.insert(format!("boot {who}: kernel {url}"));
        out.extend(args.iter().map(|a| format!("boot {who}: {a}")));
    }
    out.extend(e.initrds.iter().map(|(_, url)| format!("boot {who}: initrd {url}")));
    out
}

/// Entry-level view of a change to a node's boot script, like DNS records: a new or removed machine in
/// one line (`+ boot m1 52:54:… → master.ign`), a changed one argument by argument.
fn boot_details(old: Option<&str>, new: Option<&str>) -> Vec<groundwork_sdk::Detail> {
    let summary = |text: &str| -> Option<String> {
        let who = boot_owner(text)?;
        let ign = read_ipxe(text).kernels.first().and_then(|(_, _, args)| {
            args.iter()
                .find_map(|a| a.strip_prefix("coreos.inst.ignition_url="))
                .map(|u| u.rsplit('/').next().unwrap_or(u).to_string())
        });
        Some(format!("boot {who} → {}", ign.unwrap_or_else(|| "?".into())))
    };
    match (old, new) {
        (None, Some(n)) => summary(n).map(groundwork_sdk::Detail::add).into_iter().collect(),
        (Some(o), None) => summary(o).map(groundwork_sdk::Detail::remove).into_iter().collect(),
        (Some(o), Some(n)) => match (boot_owner(o), boot_owner(n)) {
            (Some(a), Some(b)) => groundwork_sdk::set_details(&boot_lines(&a, o), &boot_lines(&b, n)),
            _ => Vec::new(),
        },
        (None, None) => Vec::new(),
    }
}

/// chmod/chown a file whose content is already right.
async fn set_metadata(
    t: &dyn groundwork_sdk::Transport,
    spec: &FileSpec,
    actual: &ObservedFile,
) -> Result<(), groundwork_sdk::TransportError> {
    // One exec for all of them: $1 the path, then (program, value) pairs.
    const SET: &str = r#"p=$1; shift; while [ $# -gt 1 ]; do "$1" "$2" -- "$p" || exit; shift 2; done"#;
    let mut cmd =
        groundwork_sdk::Cmd::new("sh").arg("-c").arg(SET).arg("groundwork-set-metadata").path(spec.path.clone());
    for (what, _, to) in spec.metadata_changes(actual) {
        let program = match what {
            "mode" => "chmod",
            "owner" => "chown",
            _ => "chgrp",
        };
        cmd = cmd.arg(program).arg(to);
    }
    let out = t.exec(&cmd).await?;
    if out.success() {
        Ok(())
    } else {
        Err(groundwork_sdk::TransportError::Io {
            host: t.host().to_string(),
            path: spec.path.clone(),
            message: format!("setting mode/owner: {}", out.message()),
        })
    }
}

/// Pure comparison of one served file. Refuses to upload an ignition file whose certificates have
/// expired (older than 24 h) unless `files.allow_expired_ignition` says otherwise.
pub fn diff_file(
    address: &Address,
    desired: Option<&FileSpec>,
    actual: Option<&ObservedFile>,
) -> Result<Change, Error> {
    let dv = desired.and_then(|d| serde_json::to_value(d).ok());
    let av = actual.and_then(|a| serde_json::to_value(a).ok());
    let same =
        matches!((desired, actual), (Some(d), Some(a)) if d.sha256 == a.sha256 && d.metadata_changes(a).is_empty());
    let mut change = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), same);
    change.sensitive = desired.is_some_and(|d| d.sensitive);
    if let (Some(d), Some(a)) = (desired, actual) {
        if d.sha256 == a.sha256 {
            for (what, from, to) in d.metadata_changes(a) {
                change.details.push(groundwork_sdk::Detail::modify(format!("{what} {from} → {to}")));
            }
        }
    }
    // Where no content is shown (a secret, or a file read by digest only), the digests say what changes.
    let digests = |change: &mut Change| {
        if let Some(d) = desired.filter(|d| actual.is_none_or(|a| a.sha256 != d.sha256)) {
            let from = actual.map(|a| format!("sha256:{}… ", &a.sha256[..12.min(a.sha256.len())])).unwrap_or_default();
            change.details.push(groundwork_sdk::Detail::modify(format!(
                "{from}→ sha256:{}… ({} bytes)",
                &d.sha256[..12.min(d.sha256.len())],
                d.size
            )));
        }
    };
    if change.action != Action::NoOp && change.sensitive {
        digests(&mut change);
    } else if change.action != Action::NoOp {
        let new = desired.and_then(|d| d.content.clone());
        let old = actual.and_then(|a| a.content.clone());
        change.details.extend(boot_details(old.as_deref(), new.as_deref()));
        if new.is_some() || old.is_some() {
            change.diff = Some(TextDiff {
                path: desired.map(|d| d.path.clone()).unwrap_or_else(|| address.name.clone()),
                old: old.unwrap_or_default(),
                new: new.unwrap_or_default(),
            });
        } else {
            digests(&mut change);
        }
    }
    if let Some(d) = desired {
        // The certificates themselves, when the ignition carries any: what they say beats the file's age.
        match d.cert_hours_left {
            Some(left) if left < 0 && change.action != Action::NoOp && !d.allow_expired => {
                return Err(Error::failed(
                    address,
                    format!(
                        "refusing to serve {}: a certificate in it expired {} h ago; regenerate it (or set \
                         files.allow_expired_ignition)",
                        d.url_path, -left
                    ),
                ));
            }
            Some(left) if left < 0 => change
                .warnings
                .push(format!("{}: a certificate in it expired {} h ago; regenerate it", d.url_path, -left)),
            Some(left) if d.warn_hours.is_some_and(|w| left < IGNITION_EXPIRY_HOURS.saturating_sub(w) as i64) => {
                change.warnings.push(format!("{}: a certificate in it expires in {left} h", d.url_path))
            }
            _ => {}
        }
        if let (Some(age), Some(warn)) = (d.age_hours, d.warn_hours) {
            if age >= IGNITION_EXPIRY_HOURS && change.action != Action::NoOp && !d.allow_expired {
                return Err(Error::failed(
                    address,
                    format!(
                        "refusing to serve {}: it is {age} h old and its certificates expired after {IGNITION_EXPIRY_HOURS} h; \
                         regenerate it with openshift-install (or set files.allow_expired_ignition)",
                        d.url_path
                    ),
                ));
            }
            if age >= IGNITION_EXPIRY_HOURS {
                change.warnings.push(format!(
                    "{} is {age} h old: its certificates expired after {IGNITION_EXPIRY_HOURS} h; regenerate it",
                    d.url_path
                ));
            } else if age >= warn {
                change.warnings.push(format!(
                    "{} is {age} h old; its certificates expire {IGNITION_EXPIRY_HOURS} h after generation",
                    d.url_path
                ));
            }
        }
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sha: &str, content: Option<&str>) -> FileSpec {
        FileSpec {
            path: "/srv/www/a".into(),
            url_path: "a".into(),
            sha256: sha.into(),
            size: 1,
            mode: 0o644,
            content: content.map(str::to_string),
            secret: None,
            source: None,
            sensitive: false,
            age_hours: None,
            cert_hours_left: None,
            warn_hours: None,
            allow_expired: false,
            owner: None,
            group: None,
        }
    }

    fn obs(sha: &str, mode: u32) -> ObservedFile {
        ObservedFile {
            path: "/srv/www/a".into(),
            sha256: sha.into(),
            size: 1,
            mode,
            owner: "root".into(),
            group: "root".into(),
            content: Some("old\n".into()),
        }
    }

    fn addr() -> Address {
        Address::new(PROVIDER, "file", Some("bastion"), "/srv/www/a")
    }

    #[test]
    fn digest_and_mode_decide() {
        assert_eq!(
            diff_file(&addr(), Some(&spec("aa", Some("x"))), Some(&obs("aa", 0o644))).unwrap().action,
            Action::NoOp
        );
        let c = diff_file(&addr(), Some(&spec("aa", Some("x"))), Some(&obs("aa", 0o600))).unwrap();
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.details[0].text, "mode 0600 → 0644");
        let c = diff_file(&addr(), Some(&spec("bb", Some("new\n"))), Some(&obs("aa", 0o644))).unwrap();
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.diff.unwrap().old, "old\n");
        assert_eq!(diff_file(&addr(), Some(&spec("bb", None)), None).unwrap().action, Action::Create);
    }

    #[test]
    fn owner_and_group_decide_when_declared_and_known() {
        let mut want = spec("aa", Some("x"));
        want.group = Some("nginx".into());
        let c = diff_file(&addr(), Some(&want), Some(&obs("aa", 0o644))).unwrap();
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.details.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(), ["group root → nginx"]);
        // Not declared: whatever owns it is fine.
        assert_eq!(
            diff_file(&addr(), Some(&spec("aa", Some("x"))), Some(&obs("aa", 0o644))).unwrap().action,
            Action::NoOp
        );
        // Not known (a local stand-in cannot tell): not reported as different.
        let mut unknown = obs("aa", 0o644);
        unknown.group = String::new();
        assert_eq!(diff_file(&addr(), Some(&want), Some(&unknown)).unwrap().action, Action::NoOp);
    }

    #[test]
    fn ignition_is_never_diffed_and_age_warns() {
        let mut s = spec("bb", None);
        s.sensitive = true;
        s.age_hours = Some(13);
        s.warn_hours = Some(12);
        let c = diff_file(&addr(), Some(&s), Some(&obs("aa", 0o644))).unwrap();
        assert!(c.sensitive && c.diff.is_none());
        // Only the digests say what changes.
        let details: Vec<&str> = c.details.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(details, [format!("sha256:aa… → sha256:bb… ({} bytes)", s.size)]);
        assert!(c.warnings[0].contains("13 h old"), "{:?}", c.warnings);
        s.age_hours = Some(30);
        let err = diff_file(&addr(), Some(&s), None).unwrap_err();
        assert!(err.to_string().contains("refusing to serve a: it is 30 h old"), "{err}");
        s.allow_expired = true;
        let c = diff_file(&addr(), Some(&s), None).unwrap();
        assert!(c.warnings[0].contains("expired"), "{:?}", c.warnings);
        // Already served: a warning, not a refusal (nothing would be uploaded).
        s.allow_expired = false;
        let c = diff_file(&addr(), Some(&s), Some(&ObservedFile { sha256: "bb".into(), ..obs("bb", 0o644) })).unwrap();
        assert_eq!(c.action, Action::NoOp);
        assert!(c.warnings[0].contains("expired"), "{:?}", c.warnings);
    }

    #[test]
    fn the_certificates_in_an_ignition_decide_before_its_age() {
        let mut s = spec("bb", None);
        s.sensitive = true;
        s.warn_hours = Some(12);
        s.age_hours = Some(1);
        s.cert_hours_left = Some(-2);
        let err = diff_file(&addr(), Some(&s), None).unwrap_err();
        assert!(err.to_string().contains("refusing to serve a: a certificate in it expired 2 h ago"), "{err}");
        let served = ObservedFile { sha256: "bb".into(), ..obs("bb", 0o644) };
        let c = diff_file(&addr(), Some(&s), Some(&served)).unwrap();
        assert_eq!(c.action, Action::NoOp);
        assert_eq!(c.warnings, ["a: a certificate in it expired 2 h ago; regenerate it"]);
        s.cert_hours_left = Some(5);
        assert_eq!(diff_file(&addr(), Some(&s), None).unwrap().warnings, ["a: a certificate in it expires in 5 h"]);
        s.cert_hours_left = Some(20);
        assert!(diff_file(&addr(), Some(&s), None).unwrap().warnings.is_empty());
        // A 10-year CA (master.ign, worker.ign) says nothing.
        s.cert_hours_left = Some(87_000);
        assert!(diff_file(&addr(), Some(&s), None).unwrap().warnings.is_empty());
    }
}
