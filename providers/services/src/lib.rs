//! # groundwork-services
//!
//! `services.unit[HOST:UNIT]`: a daemon one of the host's roles needs is installed, enabled and
//! running. Its package is only checked (a missing one is a plan error naming the install command:
//! installing packages is the site's business). The unit starts after every resource of the host that
//! configures it, so a daemon never starts on a half-written configuration.
//!
//! Hosts that run no commands (local stand-ins) have no units: nothing is ever run on this machine.

use async_trait::async_trait;
use groundwork_sdk::model::{Daemon, Environment, OsFamily, TransportKind};
use groundwork_sdk::{decode, Action, Address, Change, Cmd, Context, Detail, Error, Provider, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROVIDER: &str = "services";

/// A unit that must be enabled and running, with the package it comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnitSpec {
    pub daemon: Daemon,
    pub unit: String,
    pub package: String,
    pub os: OsFamily,
}

/// What the host says of a unit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObservedUnit {
    pub unit: String,
    /// `systemctl is-enabled`'s word (`enabled`, `disabled`, `masked`, `static`...; `not-found`).
    pub enabled: String,
    /// `systemctl is-active`'s word (`active`, `inactive`, `failed`...).
    pub active: String,
    pub package: String,
    pub installed: bool,
}

impl ObservedUnit {
    /// Enabled: a reboot starts it (`static`, `alias`, `indirect` and `generated` units are started by
    /// something else that is enabled).
    pub fn is_enabled(&self) -> bool {
        matches!(self.enabled.as_str(), "enabled" | "static" | "alias" | "indirect" | "generated")
    }

    pub fn is_active(&self) -> bool {
        self.active == "active"
    }
}

/// The providers whose resources configure a daemon: its unit starts after them.
fn configured_by(daemon: Daemon) -> &'static [&'static str] {
    match daemon {
        Daemon::Named => &["bind"],
        Daemon::Dhcpd => &["dhcpd"],
        // dhcpd stops before Kea starts (both would answer on UDP 67).
        Daemon::Kea => &["kea", "dhcpd"],
        // Port labels: on an enforcing host haproxy cannot bind 22623 without its label.
        Daemon::Haproxy => &["haproxy", "selinux", "firewalld"],
        Daemon::Web | Daemon::Httpd => &["files", "selinux"],
        Daemon::Tftp => &["tftp"],
        Daemon::Firewalld => &[],
        // Its health check watches haproxy: haproxy first, and VRRP let through the firewall.
        Daemon::Keepalived => &["keepalived", "haproxy", "firewalld"],
    }
}

pub fn unit_address(host: &str, unit: &str) -> Address {
    Address::new(PROVIDER, "unit", Some(host), unit)
}

/// The units of `host`'s daemons, in the order of its resources (and so of its read's query).
fn unit_specs(env: &Environment, host: &str) -> Vec<UnitSpec> {
    let Some(h) = env.hosts.get(host) else { return Vec::new() };
    let spec = |daemon| UnitSpec { daemon, unit: env.unit_of(h, daemon), package: env.package_of(h, daemon), os: h.os };
    env.daemons_of(host).into_iter().map(spec).collect()
}

/// The units of every host that runs commands, each after what configures it among `others` (the
/// environment's other resources).
pub fn resources(env: &Environment, others: &[Resource]) -> Result<Vec<Resource>, Error> {
    if !env.services.manage {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (name, host) in &env.hosts {
        if host.transport == TransportKind::Local || !host.run_commands {
            continue;
        }
        for spec in unit_specs(env, name) {
            let daemon = spec.daemon;
            let mut r = Resource::new(unit_address(name, &spec.unit), spec)?;
            r.depends_on = others
                .iter()
                .filter(|o| {
                    o.address.host.as_deref() == Some(name.as_str())
                        && configured_by(daemon).contains(&o.address.provider.as_str())
                })
                .map(|o| o.address.clone())
                .collect();
            out.push(r);
        }
    }
    Ok(out)
}

/// One exec per host reads every unit: enablement and state, one `systemctl show` of the units (a
/// space-separated list: unit names hold no space or glob character, see `UnitName`) after a marker
/// line, instead of `is-enabled` and `is-active` per unit (each systemctl start costs, and the read runs
/// on every plan and every drift tick); and, when a unit is not found, whether each package is installed
/// (one rpm or dpkg-query call for all: `rpm -q` alone costs tens of milliseconds, and a unit that is
/// there says its package is). Arguments: the OS family, the units, the packages (each a space-separated
/// list).
const READ_SCRIPT: &str = r#"fam=$1 units=$2 packages=$3
LC_ALL=C; export LC_ALL; set -f
shown=$(systemctl show -p Id,LoadState,UnitFileState,ActiveState -- $units 2>/dev/null)
printf '@show\n%s\n\n@end\n' "$shown"
case $shown in
  *LoadState=not-found*|"")
    case $fam in
      rhel) rpm -q --qf '%{NAME}\n' $packages 2>/dev/null ;;
      *) dpkg-query -W -f='${Package} ${db:Status-Status}\n' $packages 2>/dev/null ;;
    esac ;;
esac
exit 0"#;

/// The read for a set of units (the same command in prefetch and read, so the batch answers it).
pub fn read_command(specs: &[UnitSpec]) -> Cmd {
    let fam = match specs.first().map(|s| s.os) {
        Some(OsFamily::Rhel) => "rhel",
        _ => "debian",
    };
    let units: Vec<&str> = specs.iter().map(|s| s.unit.as_str()).collect();
    let packages: Vec<&str> = specs.iter().map(|s| s.package.as_str()).collect();
    Cmd::new("sh")
        .arg("-c")
        .arg(READ_SCRIPT)
        .arg("groundwork-units")
        .arg(fam)
        .arg(units.join(" "))
        .arg(packages.join(" "))
}

/// A unit as `systemctl show` describes it: (`is-enabled`'s word, `is-active`'s word).
fn unit_words(block: &str) -> (String, String) {
    let field =
        |key: &str| block.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('='))).map(str::trim);
    let enabled = match (field("LoadState"), field("UnitFileState")) {
        (None, _) => "not-found",
        (Some("not-found"), _) => "not-found",
        (Some("masked"), _) => "masked",
        // Loaded without a unit file state (a transient or generated unit): started by something else.
        (Some(_), None | Some("")) => "static",
        (Some(_), Some(state)) => state,
    };
    (enabled.to_string(), field("ActiveState").filter(|a| !a.is_empty()).unwrap_or("unknown").to_string())
}

/// The `systemctl show` section of `out`, one (enabled, active) pair per unit asked about, in order, and
/// what follows the section. A unit the host did not describe reads as not found and unknown: never
/// as fine.
fn parse_show(units: usize, out: &str) -> (Vec<(String, String)>, &str) {
    let body = out.split_once("@show\n").map_or("", |(_, b)| b);
    let (section, rest) = body.split_once("\n@end\n").unwrap_or((body, ""));
    let blocks: Vec<&str> = section.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    let words = (0..units)
        .map(|i| match blocks.get(i) {
            Some(b) if blocks.len() == units => unit_words(b),
            _ => ("not-found".to_string(), "unknown".to_string()),
        })
        .collect();
    (words, rest)
}

/// Whether `package` is installed, from the package section of the read.
fn installed(os: OsFamily, package: &str, section: &str) -> bool {
    match os {
        // `rpm -q` prints the name of each installed package asked for, and this line for the others.
        OsFamily::Rhel => {
            let missing = format!("package {package} is not installed");
            !section.trim().is_empty() && !section.lines().any(|l| l.trim() == missing)
        }
        OsFamily::Debian => section.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next().map(|n| n.split(':').next() == Some(package)) == Some(true) && w.next() == Some("installed")
        }),
    }
}

/// Parse the read's output into one observation per spec (in order).
pub fn parse_read(specs: &[UnitSpec], stdout: &str) -> Vec<ObservedUnit> {
    let (words, packages) = parse_show(specs.len(), stdout);
    specs
        .iter()
        .zip(words)
        .map(|(s, (enabled, active))| ObservedUnit {
            unit: s.unit.clone(),
            // The package is asked about only when its unit is not found.
            installed: enabled != "not-found" || installed(s.os, &s.package, packages),
            enabled,
            active,
            package: s.package.clone(),
        })
        .collect()
}

/// Pure: a unit against what the host says. A unit gone from the inventory is forgotten, never
/// stopped: the host may still need it for something else.
pub fn diff_unit(
    address: &Address,
    desired: Option<&UnitSpec>,
    actual: Option<&ObservedUnit>,
) -> Result<Change, Error> {
    let av = actual.map(|a| serde_json::json!(a));
    let Some(d) = desired else {
        let mut c = Change::compare(address.clone(), None, av.as_ref(), false);
        if c.action == Action::Delete {
            c.details.push(Detail::remove("no longer managed: left as it is on the host"));
        }
        return Ok(c);
    };
    let Some(a) = actual else {
        return Err(Error::failed(address, "the host did not report this unit"));
    };
    let host = address.host.as_deref().unwrap_or("the host");
    let daemon = serde_json::to_value(d.daemon).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    if !a.installed {
        return Err(Error::failed(
            address,
            format!(
                "package {} is not installed on {host} ({daemon} needs it): run `{}` there",
                d.package,
                d.os.install_command(&d.package)
            ),
        ));
    }
    match a.enabled.as_str() {
        "masked" => {
            return Err(Error::failed(
                address,
                format!(
                    "{} is masked on {host}: someone stopped it on purpose; `systemctl unmask {}` if it should run",
                    d.unit, d.unit
                ),
            ))
        }
        "not-found" => {
            return Err(Error::failed(
                address,
                format!(
                    "{host} has no unit {} although {} is installed: name the site's unit in services.units.{daemon}",
                    d.unit, d.package
                ),
            ))
        }
        _ => {}
    }
    let dv = serde_json::json!(d);
    let mut c = Change::compare(address.clone(), Some(&dv), av.as_ref(), a.is_enabled() && a.is_active());
    if !a.is_enabled() {
        c.details.push(Detail::modify(format!("enabled: {} → enabled (it comes back after a reboot)", a.enabled)));
    }
    if !a.is_active() {
        c.details.push(Detail::modify(format!("state: {} → active", a.active)));
    }
    Ok(c)
}

/// One row of verify's service table: a managed unit on a host, the ports its role serves and the
/// daemon's version.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServiceRow {
    pub host: String,
    pub daemon: Daemon,
    pub unit: String,
    pub enabled: String,
    pub active: String,
    /// `53/udp` → whether something listens there (empty when the table did not ask).
    pub ports: Vec<(String, bool)>,
    pub version: String,
}

impl ServiceRow {
    pub fn ok(&self) -> bool {
        let seen = ObservedUnit {
            unit: self.unit.clone(),
            enabled: self.enabled.clone(),
            active: self.active.clone(),
            package: String::new(),
            installed: true,
        };
        seen.is_enabled() && seen.is_active() && self.ports.iter().all(|(_, listening)| *listening)
    }
}

/// The ports a daemon serves for its role on `host`.
pub fn served_ports(env: &Environment, daemon: Daemon) -> Vec<(u16, &'static str)> {
    match daemon {
        Daemon::Named => vec![(53, "udp"), (53, "tcp")],
        Daemon::Dhcpd | Daemon::Kea => vec![(67, "udp")],
        Daemon::Haproxy => {
            let mut ports: Vec<(u16, &'static str)> =
                env.frontends().iter().map(|f| (u16::from(f.port), "tcp")).collect();
            ports.sort();
            ports.dedup();
            ports
        }
        Daemon::Web | Daemon::Httpd => vec![(env.http_port(), "tcp")],
        Daemon::Tftp => vec![(69, "udp")],
        Daemon::Firewalld | Daemon::Keepalived => Vec::new(),
    }
}

/// How a daemon tells its version (the first line of its answer, stdout or stderr). A constant shell
/// command: nothing of the inventory is in it.
pub fn version_command(daemon: Daemon) -> &'static str {
    match daemon {
        Daemon::Named => "named -v",
        Daemon::Dhcpd => "dhcpd --version",
        Daemon::Kea => "kea-dhcp4 -v",
        Daemon::Haproxy => "haproxy -v",
        Daemon::Web => "nginx -v",
        // RHEL names the binary httpd, Debian apache2.
        Daemon::Httpd => "httpd -v 2>/dev/null || apache2 -v",
        Daemon::Tftp => "in.tftpd -V",
        Daemon::Firewalld => "firewall-cmd --version",
        Daemon::Keepalived => "keepalived --version",
    }
}

/// Per version command (from the second argument on) its first line, then, when the first argument is
/// `listening`, the listening sockets after a marker line. The units' state comes from the units' own
/// read ([`read_command`]), the query a plan already runs.
const LISTENING_SCRIPT: &str = r#"sockets=$1; shift
for v in "$@"; do
  sh -c "$v" 2>&1 | head -n1 | grep . || echo unknown
done
[ "$sockets" = listening ] || exit 0
echo groundwork-listening
ss -Hltun"#;

/// What a service table asks besides the units' state (which the plan's own read answers): the
/// listening sockets (an `ss`, ~5 ms a host here) and the daemons' versions (a process per daemon).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableAsks {
    pub listening: bool,
    pub versions: bool,
}

impl TableAsks {
    /// Everything: what `verify` shows, and a drift loop's first check.
    pub const ALL: TableAsks = TableAsks { listening: true, versions: true };
}

/// Listening sockets from `ss -Hltun`: (port, tcp|udp).
pub fn parse_listening(ss: &str) -> std::collections::BTreeSet<(u16, String)> {
    ss.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let proto = cols.first()?;
            let port = cols.get(4)?.rsplit(':').next()?.parse().ok()?;
            Some((port, proto.to_string()))
        })
        .collect()
}

/// The read-only queries [`service_rows`] runs on `host` (none where groundwork manages no daemon): the
/// units' read, the very command the services provider's plan read runs (a batch runs it once for
/// both), then, if `asks` wants either, the versions and listening sockets. A caller may run them
/// ahead, in a batch, and answer them from there.
pub fn status_queries(env: &Environment, host: &str, asks: TableAsks) -> Vec<Cmd> {
    let specs = unit_specs(env, host);
    if specs.is_empty() {
        return Vec::new();
    }
    let mut queries = vec![read_command(&specs)];
    if asks.listening || asks.versions {
        let sockets = if asks.listening { "listening" } else { "-" };
        let mut extra = Cmd::new("sh").arg("-c").arg(LISTENING_SCRIPT).arg("groundwork-listening").arg(sockets);
        for spec in specs.iter().filter(|_| asks.versions) {
            extra = extra.arg(version_command(spec.daemon));
        }
        queries.push(extra);
    }
    queries
}

/// The service table of one host: every unit groundwork manages there, through the host's transport.
/// What `asks` leaves out stays empty: the ports (listening sockets) and the versions (a process each,
/// firewall-cmd's a Python one).
pub async fn service_rows(
    t: &dyn groundwork_sdk::Transport,
    env: &Environment,
    host: &str,
    asks: TableAsks,
) -> Result<Vec<ServiceRow>, Error> {
    let at = |e: groundwork_sdk::TransportError| Error::Failed {
        address: format!("{PROVIDER}[{host}]"),
        message: e.to_string(),
    };
    let queries = status_queries(env, host, asks);
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip for all, or all answered by the batch they rode in; a query the batch could not
    // answer runs on its own, and its failure is this table's.
    let batch =
        t.read_batch(&groundwork_sdk::Prefetch { execs: queries.clone(), ..Default::default() }).await.map_err(at)?;
    let mut outputs = Vec::new();
    for cmd in &queries {
        outputs.push(match batch.outputs.get(&cmd.key()) {
            Some(out) => out.stdout_str(),
            None => t.exec(cmd).await.map_err(at)?.stdout_str(),
        });
    }
    let specs = unit_specs(env, host);
    let (words, _) = parse_show(specs.len(), &outputs[0]);
    let after = outputs.get(1).map(String::as_str).unwrap_or_default();
    let (version_text, ss) = after.split_once("groundwork-listening\n").unwrap_or((after, ""));
    let listening = parse_listening(ss);
    let mut version_lines = version_text.lines().map(str::trim);
    let mut rows = Vec::new();
    for (UnitSpec { daemon, unit, .. }, (enabled, active)) in specs.into_iter().zip(words) {
        let version = match version_lines.next() {
            Some(l) if !l.is_empty() => l.to_string(),
            _ if asks.versions => "unknown".to_string(),
            _ => String::new(),
        };
        let ports = match asks.listening {
            true => served_ports(env, daemon)
                .into_iter()
                .map(|(port, proto)| (format!("{port}/{proto}"), listening.contains(&(port, proto.to_string()))))
                .collect(),
            false => Vec::new(),
        };
        rows.push(ServiceRow { host: host.to_string(), daemon, unit, enabled, active, ports, version });
    }
    Ok(rows)
}

pub struct ServicesProvider;

fn specs(resources: &[&Resource]) -> Result<Vec<UnitSpec>, Error> {
    resources.iter().map(|r| r.spec::<UnitSpec>()).collect()
}

#[async_trait]
impl Provider for ServicesProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn prefetch(&self, resources: &[&Resource]) -> groundwork_sdk::Prefetch {
        let mut p = groundwork_sdk::Prefetch::default();
        if let Ok(specs) = specs(resources) {
            p.execs.push(read_command(&specs));
        }
        p
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let Some(first) = resources.first() else { return Ok(Vec::new()) };
        let specs = specs(resources)?;
        let out = cx.transport(&first.address)?.exec(&read_command(&specs)).await.map_err(|e| e.at(&first.address))?;
        if !out.success() {
            return Err(Error::failed(&first.address, format!("reading the units: {}", out.message())));
        }
        Ok(parse_read(&specs, &out.stdout_str()).into_iter().map(|o| Some(serde_json::json!(o))).collect())
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        let d: Option<UnitSpec> = desired.map(|v| decode(address, v)).transpose()?;
        let a: Option<ObservedUnit> = actual.map(|v| decode(address, v)).transpose()?;
        diff_unit(address, d.as_ref(), a.as_ref())
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        // Forgetting a unit changes nothing on the host.
        let (Some(after), true) = (&change.after, matches!(change.action, Action::Create | Action::Update)) else {
            return Ok(());
        };
        let spec: UnitSpec = decode(address, after)?;
        let t = cx.transport(address)?;
        for verb in ["enable", "start"] {
            let cmd = Cmd::new("systemctl").arg(verb).arg(&spec.unit);
            let out = t.exec(&cmd).await.map_err(|e| e.at(address))?;
            if !out.success() {
                return Err(Error::failed(address, format!("{cmd}: {}", out.message())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec { daemon: Daemon::Named, unit: "named".into(), package: "bind".into(), os: OsFamily::Rhel }
    }

    fn seen(enabled: &str, active: &str, installed: bool) -> ObservedUnit {
        ObservedUnit {
            unit: "named".into(),
            enabled: enabled.into(),
            active: active.into(),
            package: "bind".into(),
            installed,
        }
    }

    #[test]
    fn a_unit_is_enabled_and_started_until_both_hold() {
        let a = unit_address("ns1", "named");
        let c = diff_unit(&a, Some(&spec()), Some(&seen("disabled", "inactive", true))).unwrap();
        assert_eq!(c.action, Action::Update);
        let texts: Vec<&str> = c.details.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["enabled: disabled → enabled (it comes back after a reboot)", "state: inactive → active"]);
        let c = diff_unit(&a, Some(&spec()), Some(&seen("disabled", "active", true))).unwrap();
        assert_eq!((c.action, c.details.len()), (Action::Update, 1));
        for enabled in ["enabled", "static", "alias"] {
            assert_eq!(
                diff_unit(&a, Some(&spec()), Some(&seen(enabled, "active", true))).unwrap().action,
                Action::NoOp
            );
        }
    }

    #[test]
    fn a_missing_package_or_a_masked_unit_is_an_error_that_says_what_to_do() {
        let a = unit_address("ns1", "named");
        let e = diff_unit(&a, Some(&spec()), Some(&seen("not-found", "inactive", false))).unwrap_err().to_string();
        assert!(
            e.contains("package bind is not installed on ns1 (named needs it): run `dnf install -y bind` there"),
            "{e}"
        );
        let e = diff_unit(&a, Some(&spec()), Some(&seen("masked", "inactive", true))).unwrap_err().to_string();
        assert!(e.contains("systemctl unmask named"), "{e}");
        let e = diff_unit(&a, Some(&spec()), Some(&seen("not-found", "inactive", true))).unwrap_err().to_string();
        assert!(e.contains("services.units.named"), "{e}");
    }

    #[test]
    fn a_unit_gone_from_the_inventory_is_forgotten_not_stopped() {
        let a = unit_address("ns1", "named");
        let c = diff_unit(&a, None, Some(&seen("enabled", "active", true))).unwrap();
        assert_eq!(c.action, Action::Delete);
        assert!(c.details[0].text.contains("left as it is"));
    }

    #[test]
    fn listening_sockets_are_read_from_ss() {
        let ss = "udp   UNCONN 0      0         10.88.0.2:53        0.0.0.0:*\n\
                  tcp   LISTEN 0      10        10.88.0.2:53        0.0.0.0:*\n\
                  udp   UNCONN 0      0           0.0.0.0:67        0.0.0.0:*\n\
                  tcp   LISTEN 0      128            [::]:22           [::]:*\n";
        let got = parse_listening(ss);
        for want in [(53, "udp"), (53, "tcp"), (67, "udp"), (22, "tcp")] {
            assert!(got.contains(&(want.0, want.1.to_string())), "{want:?} in {got:?}");
        }
        assert!(!got.contains(&(67, "tcp".to_string())));
    }

    /// `systemctl show -p Id,LoadState,UnitFileState,ActiveState` output in the form systemd prints it, for a
    /// running unit, a masked one and one that does not exist, then rpm's answer.
    const SHOWN: &str = "@show\nId=named.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
        Id=haproxy.service\nLoadState=masked\nActiveState=inactive\nUnitFileState=masked\n\n\
        Id=nosuch.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n\n@end\n\
        bind\nhaproxy\npackage nosuch is not installed\n";

    #[test]
    fn the_read_is_parsed_per_unit_in_order() {
        let specs = vec![
            spec(),
            UnitSpec { unit: "haproxy".into(), package: "haproxy".into(), ..spec() },
            UnitSpec { unit: "nosuch".into(), package: "nosuch".into(), ..spec() },
        ];
        let got = parse_read(&specs, SHOWN);
        assert_eq!(got[0], seen("enabled", "active", true));
        assert_eq!((got[1].enabled.as_str(), got[1].active.as_str(), got[1].installed), ("masked", "inactive", true));
        assert_eq!((got[2].enabled.as_str(), got[2].installed), ("not-found", false));
        // A short answer (the host died half-way) reads as unknown, never as fine.
        let short = SHOWN.split("\n\nId=haproxy").next().unwrap();
        for u in parse_read(&specs, short) {
            assert!(!u.is_active() && !u.installed && u.enabled == "not-found", "{u:?}");
        }
        // A unit that is there says its package is (rpm was not asked); for one that is not, no answer
        // from rpm at all (rpm missing or failing) is not "installed".
        assert!(parse_read(&specs[..1], "@show\nLoadState=loaded\nActiveState=active\n\n@end\n")[0].installed);
        assert!(!parse_read(&specs[..1], "@show\nLoadState=not-found\nActiveState=inactive\n\n@end\n")[0].installed);
    }

    #[test]
    fn debian_packages_are_installed_only_when_dpkg_says_so() {
        let debian = UnitSpec { package: "bind9".into(), os: OsFamily::Debian, ..spec() };
        let out =
            |pkgs: &str| format!("@show\nLoadState=loaded\nActiveState=active\nUnitFileState=static\n\n@end\n{pkgs}");
        assert!(parse_read(std::slice::from_ref(&debian), &out(""))[0].is_enabled());
        let out = |pkgs: &str| format!("@show\nLoadState=not-found\nActiveState=inactive\n\n@end\n{pkgs}");
        assert!(parse_read(std::slice::from_ref(&debian), &out("bind9 installed\n"))[0].installed);
        assert!(parse_read(std::slice::from_ref(&debian), &out("bind9:amd64 installed\n"))[0].installed);
        assert!(!parse_read(std::slice::from_ref(&debian), &out("bind9 config-files\n"))[0].installed);
        assert!(!parse_read(std::slice::from_ref(&debian), &out("bind9-utils installed\n"))[0].installed);
    }

    /// The read script run for real by sh, with stand-ins for systemctl and rpm on PATH that print what
    /// systemd and rpm print: the arguments arrive as the script expects, and its output parses.
    #[test]
    fn the_read_script_asks_once_and_its_output_parses() {
        let dir = std::env::temp_dir().join(format!("gw-units-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls");
        let tool = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> {}\n{body}\n", log.display()))
                .unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        let named = "Id=named.service\\nLoadState=loaded\\nActiveState=active\\nUnitFileState=enabled\\n";
        let haproxy = "Id=haproxy.service\\nLoadState=loaded\\nActiveState=failed\\nUnitFileState=disabled\\n";
        tool("systemctl", &format!("printf '{named}\\n{haproxy}'"));
        tool("rpm", "echo bind; echo 'package haproxy is not installed'; exit 1");
        let specs = vec![spec(), UnitSpec { unit: "haproxy".into(), package: "haproxy".into(), ..spec() }];
        let cmd = read_command(&specs);
        let args = || {
            cmd.args.iter().map(|a| match a {
                groundwork_sdk::transport::Arg::Lit(s) | groundwork_sdk::transport::Arg::Path(s) => s.as_str(),
            })
        };
        let path = format!("{}:/usr/bin:/bin", dir.display());
        let out = std::process::Command::new("sh").args(args()).env("PATH", &path).output().unwrap();
        let got = parse_read(&specs, &String::from_utf8_lossy(&out.stdout));
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(out.status.success());
        let show = "systemctl show -p Id,LoadState,UnitFileState,ActiveState -- named haproxy\n";
        assert_eq!(calls, show, "both units are there: rpm is not asked");
        assert_eq!(got[0], seen("enabled", "active", true));
        assert_eq!((got[1].enabled.as_str(), got[1].active.as_str(), got[1].installed), ("disabled", "failed", true));
        // haproxy's unit is gone: now rpm is asked, once, about both packages.
        let gone = "Id=haproxy.service\\nLoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\n";
        tool("systemctl", &format!("printf '{named}\\n{gone}'"));
        let out = std::process::Command::new("sh").args(args()).env("PATH", &path).output().unwrap();
        let got = parse_read(&specs, &String::from_utf8_lossy(&out.stdout));
        let calls = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(calls, format!("{show}{show}rpm -q --qf %{{NAME}}\\n bind haproxy\n"));
        assert_eq!((got[0].installed, got[1].enabled.as_str(), got[1].installed), (true, "not-found", false));
    }
}
