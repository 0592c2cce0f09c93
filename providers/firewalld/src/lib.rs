//! # groundwork-firewalld
//!
//! One resource per opening, so that removing it from the environment closes exactly it (and only what
//! groundwork opened): `firewalld.service[HOST:ZONE/NAME]`, `firewalld.port[HOST:ZONE/PORT/PROTO]`, and
//! `firewalld.service_def[HOST:NAME]` for custom services (the reference install's `machine-config`,
//! 22623/tcp). An opening counts as present only when it is in both the runtime and the permanent
//! configuration; apply fixes whichever is missing. Reads are one batched exec per host.

use async_trait::async_trait;
use groundwork_sdk::model::{Environment, HostRole};
use groundwork_sdk::transport::Cmd;
use groundwork_sdk::{decode, Action, Address, Change, Context, Detail, Error, Provider, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const PROVIDER: &str = "firewalld";

/// A service or port opened in a zone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpeningSpec {
    pub zone: String,
    /// `http` for a service, `22623/tcp` for a port.
    pub name: String,
}

/// Where an opening was found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ObservedOpening {
    pub runtime: bool,
    pub permanent: bool,
}

/// A custom service definition (permanent; loaded into the runtime by a reload).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceDefSpec {
    pub name: String,
    pub description: Option<String>,
    pub ports: Vec<String>,
    /// IP protocols (`vrrp`), for what has no port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
}

/// The service groundwork defines and opens on the load balancers when they share VIPs: keepalived's
/// adverts are IP protocol 112, which no port rule lets through.
pub const VRRP_SERVICE: &str = "groundwork-vrrp";

pub fn resources(env: &Environment) -> Result<Vec<Resource>, Error> {
    let Some(fw) = &env.firewall else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for host in env.firewall_hosts() {
        let h = Some(host.as_str());
        let mut defs = BTreeMap::new();
        for (name, svc) in &fw.custom_services {
            let addr = Address::new(PROVIDER, "service_def", h, name.to_string());
            let spec = ServiceDefSpec {
                name: name.to_string(),
                // An empty description is no description (firewalld writes none).
                description: svc.description.as_ref().map(|d| d.to_string()).filter(|d| !d.is_empty()),
                ports: svc.ports.iter().map(|p| p.to_string()).collect(),
                protocols: svc.protocols.iter().map(|p| p.to_string()).collect(),
            };
            out.push(Resource::new(addr.clone(), spec)?);
            defs.insert(name.to_string(), addr);
        }
        let vrrp = env.keepalived().is_some() && env.hosts.get(host.as_str()).is_some_and(|h| h.has_role(HostRole::Lb));
        if vrrp && !defs.contains_key(VRRP_SERVICE) {
            let addr = Address::new(PROVIDER, "service_def", h, VRRP_SERVICE);
            let spec = ServiceDefSpec {
                name: VRRP_SERVICE.into(),
                description: Some("VRRP between the load balancers (keepalived)".into()),
                ports: Vec::new(),
                protocols: vec!["vrrp".into()],
            };
            out.push(Resource::new(addr.clone(), spec)?);
            defs.insert(VRRP_SERVICE.to_string(), addr);
        }
        let zone = fw.zone.to_string();
        // A TFTP server's 69/udp opens with it (the firmware's PXE client fetches iPXE there).
        let tftp = env.hosts.get(host.as_str()).is_some_and(|h| h.has_role(HostRole::Tftp))
            && !fw.services.iter().any(|s| s.as_str() == "tftp");
        let services: Vec<String> = fw
            .services
            .iter()
            .map(|s| s.to_string())
            .chain(tftp.then(|| "tftp".to_string()))
            .chain((vrrp && !fw.services.iter().any(|s| s.as_str() == VRRP_SERVICE)).then(|| VRRP_SERVICE.to_string()))
            .collect();
        for s in &services {
            let addr = Address::new(PROVIDER, "service", h, format!("{zone}/{s}"));
            let mut r = Resource::new(addr, OpeningSpec { zone: zone.clone(), name: s.to_string() })?;
            if let Some(def) = defs.get(s) {
                r = r.depends_on(def.clone());
            }
            out.push(r);
        }
        // The served files' port opens on the host that serves them (8080 beside HAProxy).
        let web_port = format!("{}/tcp", env.http_port());
        let serves_files = env.http_host().is_some_and(|(n, _)| n.as_str() == host.as_str());
        let covered = (env.http_port() == 80 && services.iter().any(|s| s == "http"))
            || fw.ports.iter().any(|p| p.to_string() == web_port);
        let ports: Vec<String> =
            fw.ports.iter().map(|p| p.to_string()).chain((serves_files && !covered).then_some(web_port)).collect();
        for p in &ports {
            let addr = Address::new(PROVIDER, "port", h, format!("{zone}/{p}"));
            out.push(Resource::new(addr, OpeningSpec { zone: zone.clone(), name: p.to_string() })?);
        }
    }
    Ok(out)
}

/// One batched read of every zone, runtime and permanent, and each custom service's XML. $1 is the
/// number of zones; then the zones; then the service names. firewalld is asked over D-Bus with busctl
/// where it exists (~10 ms a call: the same settings firewall-cmd prints); otherwise the two
/// `firewall-cmd --list-all` calls of a zone run side by side (each is mostly Python start-up, ~0.35 s).
const READ_SCRIPT: &str = r#"n=$1; shift; i=0
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
fw=org.fedoraproject.FirewallD1; fp=/org/fedoraproject/FirewallD1
bus() { busctl --system --json=short call "$fw" "$@" 2>/dev/null; }
for a in "$@"; do
  if [ "$i" -lt "$n" ] && command -v busctl >/dev/null 2>&1 \
     && r=$(bus "$fp" "$fw.zone" getZoneSettings2 s "$a") \
     && zp=$(bus "$fp/config" "$fw.config" getZoneByName s "$a" | sed -n 's/.*"data":\["\([^"]*\)"\].*/\1/p') \
     && [ -n "$zp" ] && p=$(bus "$zp" "$fw.config.zone" getSettings2); then
    printf '@@ZONEJSON %s runtime\n%s\n' "$a" "$r"
    printf '@@ZONEJSON %s permanent\n%s\n' "$a" "$p"
  elif [ "$i" -lt "$n" ]; then
    { firewall-cmd --zone="$a" --list-all > "$t/r" 2>&1 || printf '@@ERR\n' >> "$t/r"; } &
    { firewall-cmd --permanent --zone="$a" --list-all > "$t/p" 2>&1 || printf '@@ERR\n' >> "$t/p"; } &
    wait
    printf '@@ZONE %s runtime\n' "$a"; cat "$t/r"
    printf '@@ZONE %s permanent\n' "$a"; cat "$t/p"
  else
    printf '@@SVC %s\n' "$a"
    if [ -f "/etc/firewalld/services/$a.xml" ]; then cat "/etc/firewalld/services/$a.xml"; echo; else printf '@@MISSING\n'; fi
  fi
  i=$((i+1))
done
"#;

/// What one read found: per (zone, runtime|permanent) the services and ports; per custom service its
/// definition.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub zones: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)>,
    pub defs: BTreeMap<String, Option<ServiceDefSpec>>,
}

/// Parse a firewalld service XML (as in /etc/firewalld/services) with an XML parser: entities and
/// character references are resolved, comments and odd spacing do not matter. A file that is not XML
/// reads as a service with nothing in it (the plan then rewrites it).
pub fn parse_service_xml(name: &str, xml: &str) -> ServiceDefSpec {
    let mut def =
        ServiceDefSpec { name: name.to_string(), description: None, ports: Vec::new(), protocols: Vec::new() };
    let Ok(doc) = roxmltree::Document::parse(xml.trim()) else { return def };
    for node in doc.root_element().children().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "description" => {
                def.description = Some(node.text().unwrap_or_default().trim().to_string()).filter(|d| !d.is_empty())
            }
            "port" => {
                if let (Some(p), Some(proto)) = (node.attribute("port"), node.attribute("protocol")) {
                    def.ports.push(format!("{p}/{proto}"));
                }
            }
            "protocol" => def.protocols.extend(node.attribute("value").map(str::to_string)),
            _ => {}
        }
    }
    def
}

fn xml_escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A service XML as firewalld writes it (Python's XMLGenerator: text and attribute values escaped).
/// groundwork defines services through firewall-cmd; this is the shape its reader is held against.
pub fn render_service_xml(def: &ServiceDefSpec) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service>\n");
    if let Some(d) = &def.description {
        s.push_str(&format!("  <description>{}</description>\n", xml_escape(d, false)));
    }
    for p in &def.ports {
        let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        s.push_str(&format!(
            "  <port port=\"{}\" protocol=\"{}\"/>\n",
            xml_escape(port, true),
            xml_escape(proto, true)
        ));
    }
    for p in &def.protocols {
        s.push_str(&format!("  <protocol value=\"{}\"/>\n", xml_escape(p, true)));
    }
    s.push_str("</service>\n");
    s
}

/// Parse READ_SCRIPT output.
pub fn parse_snapshot(out: &str) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        if line.starts_with("@@ZONE ") || line.starts_with("@@ZONEJSON ") || line.starts_with("@@SVC ") {
            sections.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    for (head, body) in sections {
        if let Some(rest) = head.strip_prefix("@@ZONE ") {
            let (zone, which) = rest.rsplit_once(' ').ok_or("bad zone header")?;
            if body.contains("@@ERR") {
                return Err(format!(
                    "firewall-cmd failed for zone {zone} ({which}): {}",
                    body.replace("@@ERR", "").trim()
                ));
            }
            let field = |name: &str| -> BTreeSet<String> {
                body.lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
                    .map(|v| v.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default()
            };
            snap.zones.insert((zone.to_string(), which.to_string()), (field("services"), field("ports")));
        } else if let Some(rest) = head.strip_prefix("@@ZONEJSON ") {
            let (zone, which) = rest.rsplit_once(' ').ok_or("bad zone header")?;
            snap.zones.insert((zone.to_string(), which.to_string()), zone_settings(&body)?);
        } else if let Some(name) = head.strip_prefix("@@SVC ") {
            let def = (!body.contains("@@MISSING")).then(|| parse_service_xml(name, &body));
            snap.defs.insert(name.to_string(), def);
        }
    }
    Ok(snap)
}

/// Services and `port/proto`s of a zone from busctl's JSON of its settings (`a{sv}`).
fn zone_settings(json: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let v: Value = serde_json::from_str(json.trim()).map_err(|e| format!("zone settings from D-Bus: {e}"))?;
    let settings = &v["data"][0];
    let services = settings["services"]["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let ports = settings["ports"]["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| Some(format!("{}/{}", p.get(0)?.as_str()?, p.get(1)?.as_str()?))).collect())
        .unwrap_or_default();
    Ok((services, ports))
}

fn observe(snap: &Snapshot, r: &Resource) -> Result<Option<Value>, Error> {
    let value = |v: &dyn ToValue| v.to_json().map_err(|e| Error::failed(&r.address, e.to_string()));
    match r.address.kind.as_str() {
        "service_def" => {
            let spec: ServiceDefSpec = r.spec()?;
            snap.defs.get(&spec.name).cloned().flatten().map(|d| value(&d)).transpose()
        }
        kind @ ("service" | "port") => {
            let spec: OpeningSpec = r.spec()?;
            let has = |which: &str| {
                snap.zones.get(&(spec.zone.clone(), which.to_string())).is_some_and(|(services, ports)| {
                    if kind == "service" {
                        services.contains(&spec.name)
                    } else {
                        ports.contains(&spec.name)
                    }
                })
            };
            let o = ObservedOpening { runtime: has("runtime"), permanent: has("permanent") };
            (o.runtime || o.permanent).then(|| value(&o)).transpose()
        }
        other => Err(Error::failed(&r.address, format!("unknown firewalld resource kind {other}"))),
    }
}

/// Serialize either observed type through one closure.
trait ToValue {
    fn to_json(&self) -> serde_json::Result<Value>;
}

impl<T: Serialize> ToValue for T {
    fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// Pure: an opening in a zone.
pub fn diff_opening(address: &Address, desired: Option<&OpeningSpec>, actual: Option<&ObservedOpening>) -> Change {
    let dv = desired.and_then(|d| serde_json::to_value(d).ok());
    let av = actual.and_then(|a| serde_json::to_value(a).ok());
    let complete = actual.is_some_and(|a| a.runtime && a.permanent);
    let mut c = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), complete);
    if let (Some(a), Action::Update) = (actual, c.action) {
        let missing = if a.runtime { "permanent" } else { "runtime" };
        c.details.push(Detail::modify(format!("only partly open: add to the {missing} configuration")));
    }
    c
}

/// Pure: a custom service definition.
pub fn diff_def(address: &Address, desired: Option<&ServiceDefSpec>, actual: Option<&ServiceDefSpec>) -> Change {
    let dv = desired.and_then(|d| serde_json::to_value(d).ok());
    let av = actual.and_then(|a| serde_json::to_value(a).ok());
    let same = match (desired, actual) {
        (Some(d), Some(a)) => {
            d.description == a.description
                && d.ports.iter().collect::<BTreeSet<_>>() == a.ports.iter().collect::<BTreeSet<_>>()
                && d.protocols.iter().collect::<BTreeSet<_>>() == a.protocols.iter().collect::<BTreeSet<_>>()
        }
        _ => false,
    };
    let mut c = Change::compare(address.clone(), dv.as_ref(), av.as_ref(), same);
    let entries = |s: &ServiceDefSpec| -> BTreeSet<String> {
        s.ports.iter().map(|p| format!("port {p}")).chain(s.protocols.iter().map(|p| format!("protocol {p}"))).collect()
    };
    let before: BTreeSet<String> = actual.map(entries).unwrap_or_default();
    let after: BTreeSet<String> = desired.map(entries).unwrap_or_default();
    c.details = groundwork_sdk::set_details(&before, &after);
    if let (Some(d), Some(a)) = (desired, actual) {
        if d.description != a.description {
            c.details.push(Detail::modify(format!("description {:?} → {:?}", a.description, d.description)));
        }
    }
    c
}

#[derive(Deserialize)]
struct AnyName {
    #[serde(default)]
    zone: Option<String>,
    name: String,
}

pub struct FirewalldProvider;

async fn run(cx: &Context, address: &Address, args: &[String]) -> Result<(), Error> {
    let out = cx
        .commands(address, "firewalld")?
        .exec(&Cmd::new("firewall-cmd").args(args.iter().cloned()))
        .await
        .map_err(|e| e.at(address))?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(address, format!("firewall-cmd {}: {}", args.join(" "), out.message())))
    }
}

/// The one query that reads every zone and custom service these resources name (READ_SCRIPT).
fn read_command(resources: &[Resource]) -> Result<Cmd, Error> {
    let mut zones = BTreeSet::new();
    let mut defs = BTreeSet::new();
    for r in resources {
        let n: AnyName = r.spec()?;
        match (r.address.kind.as_str(), n.zone) {
            ("service_def", _) => {
                defs.insert(n.name);
            }
            (_, Some(z)) => {
                zones.insert(z);
            }
            _ => {}
        }
    }
    let cmd = Cmd::new("sh").arg("-c").arg(READ_SCRIPT).arg("groundwork-firewalld").arg(zones.len().to_string());
    Ok(cmd.args(zones).args(defs))
}

#[async_trait]
impl Provider for FirewalldProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn prefetch(&self, resources: &[Resource]) -> groundwork_sdk::Prefetch {
        groundwork_sdk::Prefetch { execs: read_command(resources).ok().into_iter().collect(), ..Default::default() }
    }

    async fn read(&self, cx: &Context, resources: &[Resource]) -> Result<Vec<Option<Value>>, Error> {
        let Some(first) = resources.first() else { return Ok(Vec::new()) };
        let cmd = read_command(resources)?;
        let out = cx.commands(&first.address, "firewalld")?.exec(&cmd).await.map_err(|e| e.at(&first.address))?;
        let snap = parse_snapshot(&out.stdout_str()).map_err(|m| Error::failed(&first.address, m))?;
        resources.iter().map(|r| observe(&snap, r)).collect()
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        Ok(match address.kind.as_str() {
            "service_def" => {
                let d: Option<ServiceDefSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<ServiceDefSpec> = actual.map(|v| decode(address, v)).transpose()?;
                diff_def(address, d.as_ref(), a.as_ref())
            }
            _ => {
                let d: Option<OpeningSpec> = desired.map(|v| decode(address, v)).transpose()?;
                let a: Option<ObservedOpening> = actual.map(|v| decode(address, v)).transpose()?;
                diff_opening(address, d.as_ref(), a.as_ref())
            }
        })
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        match address.kind.as_str() {
            "service_def" => {
                let before: Option<ServiceDefSpec> = change.before.as_ref().map(|v| decode(address, v)).transpose()?;
                let after: Option<ServiceDefSpec> = change.after.as_ref().map(|v| decode(address, v)).transpose()?;
                let name =
                    after.as_ref().or(before.as_ref()).map(|s| s.name.clone()).unwrap_or_else(|| address.name.clone());
                let perm = |args: &[&str]| -> Vec<String> {
                    std::iter::once("--permanent".to_string()).chain(args.iter().map(|s| s.to_string())).collect()
                };
                match (&before, &after) {
                    (Some(_), None) => run(cx, address, &perm(&[&format!("--delete-service={name}")])).await?,
                    (_, Some(d)) => {
                        if before.is_none() {
                            run(cx, address, &perm(&[&format!("--new-service={name}")])).await?;
                        }
                        let svc = format!("--service={name}");
                        if before.as_ref().map(|b| &b.description) != Some(&d.description) {
                            let desc = d.description.clone().unwrap_or_default();
                            run(cx, address, &perm(&[&svc, &format!("--set-description={desc}")])).await?;
                        }
                        let had: BTreeSet<&String> =
                            before.as_ref().map(|b| b.ports.iter().collect()).unwrap_or_default();
                        let want: BTreeSet<&String> = d.ports.iter().collect();
                        for p in want.difference(&had) {
                            run(cx, address, &perm(&[&svc, &format!("--add-port={p}")])).await?;
                        }
                        for p in had.difference(&want) {
                            run(cx, address, &perm(&[&svc, &format!("--remove-port={p}")])).await?;
                        }
                        let had: BTreeSet<&String> =
                            before.as_ref().map(|b| b.protocols.iter().collect()).unwrap_or_default();
                        let want: BTreeSet<&String> = d.protocols.iter().collect();
                        for p in want.difference(&had) {
                            run(cx, address, &perm(&[&svc, &format!("--add-protocol={p}")])).await?;
                        }
                        for p in had.difference(&want) {
                            run(cx, address, &perm(&[&svc, &format!("--remove-protocol={p}")])).await?;
                        }
                    }
                    (None, None) => return Ok(()),
                }
                // Custom services reach the runtime only through a reload.
                run(cx, address, &["--reload".to_string()]).await
            }
            kind => {
                let spec: OpeningSpec = match &change.after {
                    Some(v) => decode(address, v)?,
                    None => opening_from_address(address)?,
                };
                let seen: ObservedOpening =
                    change.before.as_ref().map(|v| decode(address, v)).transpose()?.unwrap_or_default();
                let flag = if kind == "service" { "service" } else { "port" };
                let zone = format!("--zone={}", spec.zone);
                if change.action == Action::Delete {
                    if seen.permanent {
                        run(
                            cx,
                            address,
                            &["--permanent".into(), zone.clone(), format!("--remove-{flag}={}", spec.name)],
                        )
                        .await?;
                    }
                    if seen.runtime {
                        run(cx, address, &[zone, format!("--remove-{flag}={}", spec.name)]).await?;
                    }
                    return Ok(());
                }
                if !seen.permanent {
                    run(cx, address, &["--permanent".into(), zone.clone(), format!("--add-{flag}={}", spec.name)])
                        .await?;
                }
                if !seen.runtime {
                    run(cx, address, &[zone, format!("--add-{flag}={}", spec.name)]).await?;
                }
                Ok(())
            }
        }
    }
}

/// `public/http` → the opening it names (a deleted opening has only its address left).
fn opening_from_address(address: &Address) -> Result<OpeningSpec, Error> {
    let (zone, name) =
        address.name.split_once('/').ok_or_else(|| Error::failed(address, "address is not ZONE/NAME"))?;
    Ok(OpeningSpec { zone: zone.to_string(), name: name.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "@@ZONE public runtime\npublic (active)\n  target: default\n  services: dhcpv6-client ssh http\n  ports: 8080/tcp\n@@ZONE public permanent\npublic\n  services: dhcpv6-client ssh\n  ports: \n@@SVC machine-config\n<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service>\n  <description>OpenShift machine config access</description>\n  <port port=\"22623\" protocol=\"tcp\"/>\n</service>\n@@SVC other\n@@MISSING\n";

    #[test]
    fn parses_a_batched_read() {
        let s = parse_snapshot(OUT).unwrap();
        let (svc, ports) = &s.zones[&("public".to_string(), "runtime".to_string())];
        assert!(svc.contains("http") && ports.contains("8080/tcp"));
        let (svc, _) = &s.zones[&("public".to_string(), "permanent".to_string())];
        assert!(!svc.contains("http"));
        let def = s.defs["machine-config"].clone().unwrap();
        assert_eq!(def.ports, vec!["22623/tcp"]);
        assert_eq!(def.description.as_deref(), Some("OpenShift machine config access"));
        assert_eq!(s.defs["other"], None);
        assert!(parse_snapshot("@@ZONE public runtime\nFirewallD is not running\n@@ERR\n")
            .unwrap_err()
            .contains("not running"));
    }

    #[test]
    fn parses_zone_settings_read_over_dbus() {
        // As busctl --json=short prints getZoneSettings2 / getSettings2 (captured on the lab).
        let out = concat!(
            "@@ZONEJSON public runtime\n",
            r#"{"type":"a{sv}","data":[{"target":{"type":"s","data":"default"},"services":{"type":"as","data":["ssh","dhcpv6-client"]},"ports":{"type":"a(ss)","data":[["6443","tcp"]]}}]}"#,
            "\n@@ZONEJSON public permanent\n",
            r#"{"type":"a{sv}","data":[{"services":{"type":"as","data":["ssh"]}}]}"#,
            "\n"
        );
        let s = parse_snapshot(out).unwrap();
        let (svc, ports) = &s.zones[&("public".to_string(), "runtime".to_string())];
        assert_eq!(svc.iter().map(String::as_str).collect::<Vec<_>>(), ["dhcpv6-client", "ssh"]);
        assert_eq!(ports.iter().map(String::as_str).collect::<Vec<_>>(), ["6443/tcp"]);
        let (svc, ports) = &s.zones[&("public".to_string(), "permanent".to_string())];
        assert!(svc.contains("ssh") && ports.is_empty());
        assert!(parse_snapshot("@@ZONEJSON public runtime\nnot json\n").unwrap_err().contains("D-Bus"));
    }

    #[test]
    fn runtime_and_permanent_in_step() {
        let a = Address::new(PROVIDER, "service", Some("lb1"), "public/http");
        let spec = OpeningSpec { zone: "public".into(), name: "http".into() };
        let half = ObservedOpening { runtime: true, permanent: false };
        let c = diff_opening(&a, Some(&spec), Some(&half));
        assert_eq!(c.action, Action::Update);
        assert!(c.details[0].text.contains("permanent"));
        let full = ObservedOpening { runtime: true, permanent: true };
        assert_eq!(diff_opening(&a, Some(&spec), Some(&full)).action, Action::NoOp);
        assert_eq!(diff_opening(&a, Some(&spec), None).action, Action::Create);
        assert_eq!(diff_opening(&a, None, Some(&full)).action, Action::Delete);
    }

    #[test]
    fn service_def_ports_are_a_set() {
        let a = Address::new(PROVIDER, "service_def", Some("lb1"), "mc");
        let d = ServiceDefSpec {
            name: "mc".into(),
            description: Some("x".into()),
            ports: vec!["1/tcp".into(), "2/tcp".into()],
            protocols: vec![],
        };
        let mut o = d.clone();
        o.ports.reverse();
        assert_eq!(diff_def(&a, Some(&d), Some(&o)).action, Action::NoOp);
        o.ports = vec!["1/tcp".into()];
        let c = diff_def(&a, Some(&d), Some(&o));
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.details, vec![Detail::add("port 2/tcp")]);
        // A protocol (VRRP has no port) reads back from the XML firewalld writes.
        let vrrp = ServiceDefSpec { protocols: vec!["vrrp".into()], ports: vec![], ..d.clone() };
        let xml = render_service_xml(&vrrp);
        assert!(xml.contains("<protocol value=\"vrrp\"/>"), "{xml}");
        assert_eq!(parse_service_xml("mc", &xml), vrrp);
        let c = diff_def(&a, Some(&vrrp), Some(&ServiceDefSpec { protocols: vec![], ..vrrp.clone() }));
        assert_eq!(c.details, vec![Detail::add("protocol vrrp")]);
    }
}
