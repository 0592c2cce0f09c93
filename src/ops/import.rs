//! `groundwork import --from HOSTS-OR-ENV --out DIR`: read what hand-made infra declares and write an
//! environment that describes it (docs/import.md). Only reads: nothing on a host is changed.

use crate::config;
use crate::error::{Error, Result};
use crate::import::{self, HostFile, Note, Observed, Served, ServedEntry, ZoneFile};
use crate::transport::Hosts;
use groundwork_sdk::model::{Environment, Host, HostRole, OsFamily};
use groundwork_sdk::transport::{Cmd, Transport};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Where Kea's DHCPv4 server reads its configuration (RHEL 9 and Debian alike).
const KEA_CONF: &str = "/etc/kea/kea-dhcp4.conf";

/// Includes followed from named.conf, at most (a loop of includes ends here too).
const MAX_NAMED_FILES: usize = 32;
/// Files larger than this are not read (a zone or config file is far smaller).
const MAX_FILE_BYTES: usize = 16 << 20;
/// Zones every named serves for itself: not the cluster's.
const STANDARD_ZONES: &[&str] = &[
    ".",
    "localhost",
    "localhost.localdomain",
    "127.in-addr.arpa",
    "0.in-addr.arpa",
    "255.in-addr.arpa",
    "1.0.0.127.in-addr.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
];

/// What an import wrote.
pub struct Outcome {
    pub notes: Vec<Note>,
    pub environment: std::path::PathBuf,
    pub report: std::path::PathBuf,
    pub nodes: usize,
}

pub async fn run(from: &Path, out: &Path, force: bool) -> Result<Outcome> {
    let config::load::HostsOnly { hosts, mut ssh, docroot, named_conf, carried, dir } = config::load::load_hosts(from)?;
    // The written environment lives elsewhere: the SSH files it names are made absolute.
    let absolute = |p: &str| config::load::local_path(&dir, p).display().to_string();
    for p in [&mut ssh.identity, &mut ssh.config].into_iter().flatten() {
        *p = absolute(p);
    }
    for p in ssh.known_hosts.iter_mut().flatten() {
        *p = absolute(p);
    }
    let typed_hosts = hosts.clone();
    let hosts: BTreeMap<String, Host> = hosts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let environment = out.join("environment.yaml");
    let report = out.join("import-report.txt");
    if !force && environment.exists() {
        return Err(Error::Usage(format!("{} exists; --force replaces it", environment.display())));
    }
    // A stand-in environment to reach the hosts with: only hosts and ssh matter to the transport.
    let mut reach: Environment = serde_json::from_value(json!({
        "cluster": { "name": "import", "base_domain": "import.invalid" },
        "networks": { "machine": [], "cluster": { "cidr": "10.128.0.0/14", "host_prefix": 23 }, "service": [] },
    }))
    .map_err(|e| Error::Usage(format!("import: {e}")))?;
    reach.hosts = typed_hosts;
    reach.ssh = ssh.clone();
    let conn = Hosts::new(&reach, &dir, groundwork_sdk::Secrets::default());
    let mut observed = Observed::default();
    let first = |role: HostRole| hosts.iter().find(|(_, h)| h.roles.contains(&role)).map(|(n, h)| (n.clone(), h));
    if let Some((name, _)) = first(HostRole::Dns) {
        let t = conn.transport(&name).await?;
        read_named(&*t, &name, named_conf.as_deref(), &mut observed).await?;
    }
    if let Some((name, _)) = first(HostRole::Dhcp) {
        let t = conn.transport(&name).await?;
        observed.dhcpd = read_text(&*t, &name, "/etc/dhcp/dhcpd.conf", &mut observed.notes).await?;
        if observed.dhcpd.is_none() {
            observed.kea = read_text(&*t, &name, KEA_CONF, &mut observed.notes).await?;
        }
        if observed.dhcpd.is_none() && observed.kea.is_none() {
            observed.notes.push(Note::new(
                format!("{name}:/etc/dhcp/dhcpd.conf or {KEA_CONF}"),
                "not found: DHCP pins are not imported",
            ));
        }
    }
    if let Some((name, _)) = first(HostRole::Lb) {
        let t = conn.transport(&name).await?;
        observed.haproxy = read_text(&*t, &name, "/etc/haproxy/haproxy.cfg", &mut observed.notes).await?;
    }
    if let Some((name, h)) = first(HostRole::Http) {
        let t = conn.transport(&name).await?;
        observed.selinux_http = read_selinux(&*t, &name, &mut observed.notes).await?;
        observed.served = read_docroot(t, &name, h.os, docroot.as_deref()).await?;
    }
    if let Some((name, _)) = first(HostRole::Lb) {
        let t = conn.transport(&name).await?;
        observed.firewall = read_firewall(&*t, &name, &mut observed.notes).await?;
        observed.selinux_lb = read_selinux(&*t, &name, &mut observed.notes).await?;
    }
    let mut imported = import::build(&hosts, &ssh, &observed).map_err(|e| {
        let read: Vec<String> = observed.notes.iter().map(|n| format!("\n  - {n}")).collect();
        Error::Usage(format!("{e}{}", read.concat()))
    })?;
    // What was read from the hosts wins over what --from says.
    let read: Vec<&str> = imported.sections.iter().map(|(k, _)| *k).collect();
    let carried: Vec<_> = carried.into_iter().filter(|(name, _)| !read.contains(name)).collect();
    for (name, v) in carried {
        imported.notes.push(Note::new(
            "",
            format!("{name}: carried over from {} as it is (import does not read it from the hosts)", from.display()),
        ));
        imported.sections.push((name, import::without_nulls(v)));
    }
    let nodes =
        imported.sections.iter().find(|(k, _)| *k == "nodes").and_then(|(_, v)| v.as_array()).map_or(0, Vec::len);
    let header = format!(
        "Imported by groundwork import from {} on {}.\nWhat could not be said here is in import-report.txt, with the file and line it came from.",
        hosts.keys().cloned().collect::<Vec<_>>().join(", "),
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")
    );
    let yaml = import::to_yaml(&imported.sections, &header);
    std::fs::create_dir_all(out).map_err(|e| Error::Usage(format!("{}: {e}", out.display())))?;
    write_atomic(&environment, yaml.as_bytes())?;
    write_atomic(&report, report_text(&imported.notes, imported.served.as_ref()).as_bytes())?;
    // What was written must load as an environment (typed values, every section).
    config::load::load(out)?;
    Ok(Outcome { notes: imported.notes, environment, report, nodes })
}

impl Outcome {
    /// What the command prints: what was written, and every finding.
    pub fn summary(&self) -> String {
        let mut s = format!("Imported {} node(s) into {}.\n", self.nodes, self.environment.display());
        if !self.notes.is_empty() {
            s.push_str(&format!("{} finding(s), also in {}:\n", self.notes.len(), self.report.display()));
            for n in &self.notes {
                s.push_str(&format!("  - {n}\n"));
            }
        }
        s.push_str("Next: groundwork validate, then groundwork plan (it lists what groundwork would take over).\n");
        s
    }
}

fn report_text(notes: &[Note], served: Option<&Served>) -> String {
    let mut s = String::from("# groundwork import report\n\n## Not imported, or imported with a caveat\n\n");
    if notes.is_empty() {
        s.push_str("Nothing.\n");
    }
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    if let Some(sv) = served {
        s.push_str(&format!(
            "\n## Served files under {}:{} (sha256, bytes; content not copied)\n\n",
            sv.host, sv.docroot
        ));
        for f in &sv.files {
            s.push_str(&format!("- {}  {}  {}\n", f.sha256, f.size, f.path));
        }
    }
    s
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-import");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// A load balancer's firewalld: its default zone and the custom services defined on the host (None,
/// with a note, where firewalld does not answer).
async fn read_firewall(t: &dyn Transport, host: &str, notes: &mut Vec<Note>) -> Result<Option<import::FirewallRead>> {
    let host_err = |e: groundwork_sdk::TransportError| Error::Host { host: host.into(), message: e.to_string() };
    let zone = t.exec(&Cmd::new("firewall-cmd").arg("--get-default-zone")).await.map_err(host_err)?;
    let zone = zone.stdout_str().trim().to_string();
    if zone.is_empty() || groundwork_sdk::value::FirewalldName::try_from(zone.as_str()).is_err() {
        notes.push(Note::new(format!("{host}:firewalld"), "firewalld does not answer: the firewall is not imported"));
        return Ok(None);
    }
    let list = Cmd::new("sh")
        .arg("-c")
        .arg(r#"for f in /etc/firewalld/services/*.xml; do [ -f "$f" ] && { b=${f##*/}; echo "${b%.xml}"; }; done; :"#);
    let names = t.exec(&list).await.map_err(host_err)?;
    let names: Vec<String> = names
        .stdout_str()
        .lines()
        .filter(|n| groundwork_sdk::value::FirewalldName::try_from(*n).is_ok())
        .map(str::to_string)
        .collect();
    let out = t.exec(&groundwork_firewalld::zone_command(&zone, &names)).await.map_err(host_err)?;
    match groundwork_firewalld::parse_snapshot(&out.stdout_str()) {
        Ok(snapshot) => Ok(Some(import::FirewallRead { host: host.into(), zone, snapshot })),
        Err(e) => {
            notes.push(Note::new(format!("{host}:firewalld"), format!("{e}: the firewall is not imported")));
            Ok(None)
        }
    }
}

/// A host's local SELinux customizations (None, with a note, where there is no policy store).
async fn read_selinux(
    t: &dyn Transport,
    host: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<(String, groundwork_selinux::Local)>> {
    let out = t
        .exec(&groundwork_selinux::local_command())
        .await
        .map_err(|e| Error::Host { host: host.into(), message: e.to_string() })?;
    match groundwork_selinux::parse_local(&out.stdout_str()) {
        Ok(local) => Ok(Some((host.to_string(), local))),
        Err(e) => {
            notes.push(Note::new(format!("{host}:SELinux"), format!("{e}: SELinux is not imported")));
            Ok(None)
        }
    }
}

/// A text file from a host (None when absent). Files that are too large or not UTF-8 are noted.
async fn read_text(t: &dyn Transport, host: &str, path: &str, notes: &mut Vec<Note>) -> Result<Option<HostFile>> {
    let bytes = t.read_file(path).await.map_err(|e| Error::Host { host: host.into(), message: e.to_string() })?;
    Ok(text_of(host, path, bytes, notes))
}

/// A file's bytes as text, within the size cap.
fn text_of(host: &str, path: &str, bytes: Option<Vec<u8>>, notes: &mut Vec<Note>) -> Option<HostFile> {
    let bytes = bytes?;
    if bytes.len() > MAX_FILE_BYTES {
        notes.push(Note::new(format!("{host}:{path}"), "larger than 16 MiB: not read"));
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(HostFile { host: host.into(), path: path.into(), text }),
        Err(_) => {
            notes.push(Note::new(format!("{host}:{path}"), "not UTF-8: not read"));
            None
        }
    }
}

/// named.conf (the one the environment names, else groundwork's default /etc/named.conf, else Debian's
/// /etc/bind/named.conf) and what it includes; the zone files of the primary zones it declares.
async fn read_named(t: &dyn Transport, host: &str, named: Option<&str>, observed: &mut Observed) -> Result<()> {
    let candidates: Vec<String> = match named {
        Some(n) => vec![n.to_string()],
        None => vec!["/etc/named.conf".into(), "/etc/bind/named.conf".into()],
    };
    let metas =
        t.file_meta(&candidates).await.map_err(|e| Error::Host { host: host.into(), message: e.to_string() })?;
    let Some(main) = candidates.iter().zip(metas).find(|(_, m)| m.is_some()).map(|(c, _)| c.clone()) else {
        observed.notes.push(Note::new(format!("{host}:{}", candidates.join(" or ")), "no named.conf: no zone read"));
        return Ok(());
    };
    // Relative zone files are under the options' directory, else the packages' default.
    let default_dir = if main.starts_with("/etc/bind/") { "/var/cache/bind" } else { "/var/named" };
    let mut queue = vec![main];
    let mut seen = Vec::new();
    let mut stanzas = Vec::new();
    let mut directory = None;
    while let Some(path) = queue.pop() {
        if seen.contains(&path) {
            continue;
        }
        if seen.len() >= MAX_NAMED_FILES {
            observed.notes.push(Note::new(format!("{host}:{path}"), "more than 32 named.conf files: not followed"));
            continue;
        }
        seen.push(path.clone());
        let Some(f) = read_text(t, host, &path, &mut observed.notes).await? else {
            observed.notes.push(Note::new(format!("{host}:{path}"), "not found: not read"));
            continue;
        };
        let conf = groundwork_bind::options::read_named_conf(&f.text);
        for line in &conf.views {
            observed.notes.push(Note::new(
                format!("{host}:{path}:{line}"),
                "a view: its zones are not imported (groundwork serves one view)",
            ));
        }
        directory = directory.or(conf.directory.clone());
        for (inc, _) in conf.includes.iter().rev() {
            queue.push(inc.clone());
        }
        stanzas.extend(conf.zones.into_iter().map(|z| (format!("{host}:{path}"), z)));
    }
    let dir = directory.unwrap_or_else(|| default_dir.to_string());
    let mut wanted = Vec::new();
    for (conf, z) in stanzas {
        if STANDARD_ZONES.contains(&z.name.as_str()) {
            continue;
        }
        if !matches!(z.kind.as_str(), "master" | "primary") {
            observed.notes.push(Note::new(
                format!("{conf}:{}", z.line),
                format!("zone {} is of type {:?}: only primary zones are imported", z.name, z.kind),
            ));
            continue;
        }
        let Some(file) = &z.file else { continue };
        let path = if file.starts_with('/') { file.clone() } else { format!("{}/{file}", dir.trim_end_matches('/')) };
        wanted.push((conf, z, path));
    }
    // Every zone file in one round trip.
    let paths: Vec<String> = wanted.iter().map(|(_, _, p)| p.clone()).collect();
    let contents = t.read_files(&paths).await.map_err(|e| Error::Host { host: host.into(), message: e.to_string() })?;
    for ((conf, z, path), bytes) in wanted.into_iter().zip(contents) {
        match text_of(host, &path, bytes, &mut observed.notes) {
            Some(f) => observed.zones.push(ZoneFile { stanza: z, conf, file: f }),
            None => observed.notes.push(Note::new(
                format!("{conf}:{}", z.line),
                format!("zone {}: its file {path} is not there", z.name),
            )),
        }
    }
    Ok(())
}

/// Size and digest of every regular file under the docroot (content never leaves the host).
const DOCROOT_SCRIPT: &str = r#"d=$1
[ -d "$d" ] || { printf 'NODIR\0'; exit 0; }
printf 'DIR\0'
cd "$d" && find . -xdev -type f -print0 | while IFS= read -r -d '' f; do
  s=$(stat -c %s:%a -- "$f") && h=$(sha256sum < "$f") && printf '%s\0%s\0%s\0' "$s" "${h%% *}" "${f#./}"
done
"#;

/// The docroot the environment names, else the web servers' usual ones for the host's OS.
async fn read_docroot(t: Arc<dyn Transport>, host: &str, os: OsFamily, named: Option<&str>) -> Result<Option<Served>> {
    let usual: &[&str] = match os {
        OsFamily::Debian => &["/var/www/html", "/usr/share/nginx/html"],
        _ => &["/usr/share/nginx/html", "/var/www/html"],
    };
    let candidates: Vec<&str> = named.map(|d| vec![d]).unwrap_or_else(|| usual.to_vec());
    for docroot in candidates {
        let cmd = Cmd::new("bash").args(["-c", DOCROOT_SCRIPT, "bash", docroot]);
        let out = t.exec(&cmd).await.map_err(|e| Error::Host { host: host.into(), message: e.to_string() })?;
        if !out.success() {
            return Err(Error::Host { host: host.into(), message: format!("listing {docroot}: {}", out.message()) });
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut fields = text.split('\0');
        if fields.next() != Some("DIR") {
            continue;
        }
        let rest: Vec<&str> = fields.collect();
        let files = rest
            .chunks(3)
            .filter_map(|c| match c {
                [stat, sha, path] => {
                    let (size, mode) = stat.split_once(':')?;
                    Some(ServedEntry {
                        path: path.to_string(),
                        size: size.parse().ok()?,
                        mode: u32::from_str_radix(mode, 8).ok()?,
                        sha256: sha.to_string(),
                    })
                }
                _ => None,
            })
            .collect();
        return Ok(Some(Served { host: host.into(), docroot: docroot.to_string(), files }));
    }
    Ok(None)
}
