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
        for daemon in env.daemons_of(name) {
            let spec = UnitSpec {
                daemon,
                unit: env.unit_of(host, daemon),
                package: env.package_of(host, daemon),
                os: host.os,
            };
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

/// One exec per host reads every unit: enablement, state and whether its package is installed.
/// Arguments: triples of OS family, unit, package. Output: `UNIT ENABLED ACTIVE yes|no` per triple.
const READ_SCRIPT: &str = r#"while [ $# -ge 3 ]; do
  fam=$1 u=$2 p=$3; shift 3
  e=$(systemctl is-enabled "$u" 2>/dev/null | head -n1)
  a=$(systemctl is-active "$u" 2>/dev/null | head -n1)
  case $fam in
    rhel) if rpm -q --quiet "$p" 2>/dev/null; then i=yes; else i=no; fi ;;
    *) if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ]; then i=yes; else i=no; fi ;;
  esac
  printf '%s %s %s %s\n' "$u" "${e:-not-found}" "${a:-unknown}" "$i"
done"#;

/// The read for a set of units (the same command in prefetch and read, so the batch answers it).
pub fn read_command(specs: &[UnitSpec]) -> Cmd {
    let mut cmd = Cmd::new("sh").arg("-c").arg(READ_SCRIPT).arg("groundwork-units");
    for s in specs {
        let fam = match s.os {
            OsFamily::Rhel => "rhel",
            OsFamily::Debian => "debian",
        };
        cmd = cmd.arg(fam).arg(&s.unit).arg(&s.package);
    }
    cmd
}

/// Parse the read's output into one observation per spec (in order).
pub fn parse_read(specs: &[UnitSpec], stdout: &str) -> Vec<ObservedUnit> {
    let mut lines = stdout.lines();
    specs
        .iter()
        .map(|s| {
            let words: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
            let word = |i: usize, default: &str| words.get(i).copied().unwrap_or(default).to_string();
            ObservedUnit {
                unit: s.unit.clone(),
                enabled: word(1, "not-found"),
                active: word(2, "unknown"),
                package: s.package.clone(),
                installed: words.get(3) == Some(&"yes"),
            }
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
    /// `53/udp` → whether something listens there.
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

/// One exec per host: for each pair of arguments (unit, version command) three lines (enablement,
/// state, version), then the listening sockets after a marker line.
const STATUS_SCRIPT: &str = r#"while [ $# -ge 2 ]; do
  u=$1 v=$2; shift 2
  systemctl is-enabled "$u" 2>/dev/null | head -n1 | grep . || echo not-found
  systemctl is-active "$u" 2>/dev/null | head -n1 | grep . || echo unknown
  sh -c "$v" 2>&1 | head -n1 | grep . || echo unknown
done
echo groundwork-listening
ss -Hltun"#;

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

/// The service table of one host: every unit groundwork manages there, through the host's transport.
pub async fn service_rows(
    t: &dyn groundwork_sdk::Transport,
    env: &Environment,
    host: &str,
) -> Result<Vec<ServiceRow>, Error> {
    let Some(h) = env.hosts.get(host) else { return Ok(Vec::new()) };
    let at = |e: groundwork_sdk::TransportError| Error::Failed {
        address: format!("{PROVIDER}[{host}]"),
        message: e.to_string(),
    };
    let daemons = env.daemons_of(host);
    let units: Vec<String> = daemons.iter().map(|d| env.unit_of(h, *d)).collect();
    let mut cmd = Cmd::new("sh").arg("-c").arg(STATUS_SCRIPT).arg("groundwork-service");
    for (daemon, unit) in daemons.iter().zip(&units) {
        cmd = cmd.arg(unit).arg(version_command(*daemon));
    }
    let out = t.exec(&cmd).await.map_err(at)?.stdout_str();
    let (status, ss) = out.split_once("groundwork-listening\n").unwrap_or((&out, ""));
    let listening = parse_listening(ss);
    let mut lines = status.lines().map(str::trim);
    let mut next = |default: &str| lines.next().filter(|l| !l.is_empty()).unwrap_or(default).to_string();
    let mut rows = Vec::new();
    for (daemon, unit) in daemons.into_iter().zip(units) {
        let (enabled, active, version) = (next("not-found"), next("unknown"), next("unknown"));
        let ports = served_ports(env, daemon)
            .into_iter()
            .map(|(port, proto)| (format!("{port}/{proto}"), listening.contains(&(port, proto.to_string()))))
            .collect();
        rows.push(ServiceRow { host: host.to_string(), daemon, unit, enabled, active, ports, version });
    }
    Ok(rows)
}

pub struct ServicesProvider;

fn specs(resources: &[Resource]) -> Result<Vec<UnitSpec>, Error> {
    resources.iter().map(|r| r.spec::<UnitSpec>()).collect()
}

#[async_trait]
impl Provider for ServicesProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn prefetch(&self, resources: &[Resource]) -> groundwork_sdk::Prefetch {
        let mut p = groundwork_sdk::Prefetch::default();
        if let Ok(specs) = specs(resources) {
            p.execs.push(read_command(&specs));
        }
        p
    }

    async fn read(&self, cx: &Context, resources: &[Resource]) -> Result<Vec<Option<Value>>, Error> {
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

    #[test]
    fn the_read_is_parsed_per_unit_in_order() {
        let specs = vec![spec(), UnitSpec { unit: "haproxy".into(), package: "haproxy".into(), ..spec() }];
        let got = parse_read(&specs, "named enabled active yes\nhaproxy not-found inactive no\n");
        assert_eq!(got[0], seen("enabled", "active", true));
        assert_eq!((got[1].enabled.as_str(), got[1].installed), ("not-found", false));
        // A short answer (the host died half-way) reads as unknown, never as fine.
        let got = parse_read(&specs, "named enabled active yes\n");
        assert!(!got[1].is_active() && !got[1].installed);
    }
}
