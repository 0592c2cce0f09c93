//! The daemons of the infra hosts on the lab: hosts start bare (packages present, every daemon of
//! their roles stopped and disabled, as after an OS install); one apply enables and starts them after
//! their configuration; a reboot of every infra host brings the whole service back with no groundwork
//! run in between, checked with dig, curl, tftp and TCP through the load balancer.

mod common;

use common::groundwork;
use common::lab::Lab;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 170;

/// The lab's daemons per host, by the Debian unit names groundwork manages there.
const UNITS: &[(&str, &str)] = &[
    ("ns1", "named"),
    ("ns1", "isc-dhcp-server"),
    ("lb1", "haproxy"),
    ("lb1", "firewalld"),
    ("bastion", "nginx"),
    ("bastion", "tftpd-hpa"),
];

fn state(lab: &Lab, host: &str, unit: &str) -> (String, String) {
    let word = |verb: &str| {
        let out = lab.ssh(host, &format!("systemctl {verb} {unit}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    (word("is-enabled"), word("is-active"))
}

fn curl_code(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tcp_answers(ip: &str, port: u16) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("address");
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).is_ok()
}

fn tftp_fetches(lab: &Lab, file: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("got");
    let out = Command::new("tftp")
        .args(["-m", "binary", &lab.host_ip("bastion"), "-c", "get", file, local.to_str().expect("utf-8")])
        .output()
        .expect("tftp");
    out.status.success() && std::fs::metadata(&local).is_ok_and(|m| m.len() > 0)
}

#[test]
fn bare_hosts_are_brought_up_and_come_back_after_a_reboot() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    // Bare: nothing of the roles runs or is enabled.
    for (host, unit) in UNITS.iter().filter(|(_, u)| *u != "firewalld") {
        assert_eq!(state(&lab, host, unit), ("disabled".into(), "inactive".into()), "{host}:{unit} before apply");
    }
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("~ services.unit[ns1:named]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("enabled: disabled → enabled (it comes back after a reboot)"), "{}", plan.stdout);
    assert!(plan.stdout.contains("state: inactive → active"), "{}", plan.stdout);
    // firewalld came enabled with the OS: nothing to change, only to take over (record; a unit that
    // leaves the inventory is forgotten, never stopped).
    assert!(!plan.stdout.contains("~ services.unit[lb1:firewalld]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("= services.unit[lb1:firewalld]"), "{}", plan.stdout);

    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    for (host, unit) in UNITS {
        assert_eq!(state(&lab, host, unit), ("enabled".into(), "active".into()), "{host}:{unit} after apply");
    }
    let again = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);

    let named_pid = lab.ssh_ok("ns1", "cat /run/gwlab/named.pid");
    lab.ssh_ok("ns1", "touch /run/left-by-the-last-boot");
    for host in ["ns1", "lb1", "bastion"] {
        lab.reboot(host);
    }
    // The host really went down: /run was emptied and named is a new process.
    assert!(!lab.ssh("ns1", "test -e /run/left-by-the-last-boot").status.success());
    assert_ne!(lab.ssh_ok("ns1", "cat /run/gwlab/named.pid"), named_pid);
    for (host, unit) in UNITS {
        assert_eq!(state(&lab, host, unit), ("enabled".into(), "active".into()), "{host}:{unit} after the reboot");
    }
    // No groundwork run in between: the service is back, seen by real clients.
    assert_eq!(lab.dig(&["m1.lab.example.test", "A"]), lab.ip(21));
    assert_eq!(lab.dig(&["-x", &lab.ip(21)]), "m1.lab.example.test.");
    let bastion = lab.host_ip("bastion");
    assert_eq!(curl_code(&format!("http://{bastion}/pxeboot.ipxe")), "200");
    // groundwork's site logs who fetched what (the bridge's address is the client here).
    let log = lab.ssh_ok("bastion", "cat /var/log/nginx/groundwork-access.log");
    let client = format!("{} [", lab.ip(1));
    assert!(log.lines().any(|l| l.starts_with(&client) && l.contains("\"GET /pxeboot.ipxe HTTP/1.1\" 200")), "{log}");
    assert!(tftp_fetches(&lab, "undionly.kpxe"), "TFTP answers after the reboot");
    // haproxy listens on the VIPs and firewalld (its permanent rules, reloaded at boot) lets it through.
    let vip = lab.ip(4);
    assert!(tcp_answers(&vip, 6443) && tcp_answers(&vip, 22623), "the LB answers on {vip}");
    // dhcpd is back too (its log says it serves the subnet).
    assert!(lab.ssh_ok("ns1", "cat /var/log/gwlab/dhcpd.log").contains("Server starting service"));
    let after = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(after.code, 0, "nothing drifted over the reboot:\n{}{}", after.stdout, after.stderr);
    // verify's service table: every unit enabled, active, listening on its ports, with its version.
    let verify = groundwork(&["verify", e]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let table = &verify.stdout[verify.stdout.find("Services:").expect("a service table")..];
    let row = |unit: &str| table.lines().find(|l| l.split_whitespace().nth(1) == Some(unit)).unwrap_or_default();
    for unit in ["named", "isc-dhcp-server", "haproxy", "firewalld", "nginx", "tftpd-hpa"] {
        let words: Vec<&str> = row(unit).split_whitespace().collect();
        assert_eq!(words.get(2..4), Some(&["enabled", "active"][..]), "{unit}: {table}");
    }
    assert!(row("named").contains("53/udp 53/tcp"), "{table}");
    assert!(row("named").contains("BIND 9."), "{table}");
    assert!(row("haproxy").contains("6443/tcp") && row("haproxy").contains("HAProxy version"), "{table}");
    assert!(row("isc-dhcp-server").contains("67/udp") && row("tftpd-hpa").contains("69/udp"), "{table}");
    assert!(row("nginx").contains("80/tcp") && row("nginx").contains("nginx/"), "{table}");
    assert!(!table.contains("FAIL") && !table.contains("(closed)"), "{table}");
}

#[test]
fn a_disabled_or_stopped_daemon_is_drift_and_a_missing_package_names_its_install_command() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);

    lab.ssh_ok("lb1", "systemctl disable haproxy");
    lab.ssh_ok("bastion", "systemctl stop nginx");
    let plan = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let block = |addr: &str| {
        let at = plan.stdout.find(addr).unwrap_or_else(|| panic!("{addr} not in\n{}", plan.stdout));
        plan.stdout[at..].lines().take(3).collect::<Vec<_>>().join("\n")
    };
    assert!(block("~ services.unit[lb1:haproxy]").contains("enabled: disabled → enabled"), "{}", plan.stdout);
    assert!(block("~ services.unit[bastion:nginx]").contains("state: inactive → active"), "{}", plan.stdout);
    assert_eq!(plan.stdout.matches("~ services.unit[").count(), 2, "{}", plan.stdout);
    // verify sees it too: nginx is inactive and its port closed.
    let verify = groundwork(&["verify", e, "--json"]);
    assert_eq!(verify.code, 2, "{}{}", verify.stdout, verify.stderr);
    let doc: serde_json::Value = serde_json::from_str(&verify.stdout).expect("verify --json");
    let nginx = doc["services"].as_array().unwrap().iter().find(|r| r["unit"] == "nginx").expect("nginx row").clone();
    assert_eq!((nginx["ok"].as_bool(), nginx["active"].as_str()), (Some(false), Some("inactive")), "{nginx}");
    assert_eq!(nginx["listening"]["80/tcp"], false, "{nginx}");
    let haproxy = doc["services"].as_array().unwrap().iter().find(|r| r["unit"] == "haproxy").expect("haproxy row");
    assert_eq!((haproxy["ok"].as_bool(), haproxy["enabled"].as_str()), (Some(false), Some("disabled")), "{haproxy}");
    let heal = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(heal.code, 0, "{}{}", heal.stdout, heal.stderr);
    assert_eq!(state(&lab, "lb1", "haproxy"), ("enabled".into(), "active".into()));
    assert_eq!(curl_code(&format!("http://{}/pxeboot.ipxe", lab.host_ip("bastion"))), "200");

    // A unit that is there says its package is: a package name the host does not know changes nothing
    // while its unit runs (the package manager is not even asked).
    let env_file = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&env_file).unwrap();
    std::fs::write(&env_file, format!("{text}\nservices: {{ packages: {{ web: groundwork-lab-absent }} }}\n")).unwrap();
    let plan = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    // A unit and package the host lacks: a plan error naming the host, the daemon and the install command.
    std::fs::write(
        &env_file,
        format!("{text}\nservices: {{ units: {{ web: gwlab-absent }}, packages: {{ web: groundwork-lab-absent }} }}\n"),
    )
    .unwrap();
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stderr.contains(
            "package groundwork-lab-absent is not installed on bastion (web needs it): run `apt-get install -y groundwork-lab-absent` there"
        ),
        "{}",
        plan.stderr
    );
}

#[test]
fn names_outside_the_cluster_are_forwarded_to_the_intranet_dns() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let stock = lab.ssh_ok("ns1", "cat /etc/named.conf");
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    // The site's options block adopts groundwork's file: named answers the machine network now.
    let conf = lab.ssh_ok("ns1", "cat /etc/named.conf");
    assert!(conf.contains("options {\n\tinclude \"/etc/named/groundwork.options.conf\";"), "{conf}");
    assert!(conf.contains("/* groundwork (set in /etc/named/groundwork.options.conf): allow-query { localhost; }; */"));
    assert_eq!(lab.dig(&["m1.lab.example.test", "A"]), lab.ip(21));
    // No forwarders: recursion is off, a name outside the served zones gets no answer.
    assert_eq!(lab.dig(&["registry.intranet.test", "A"]), "");

    let env_file = lab.env_dir().join("environment.yaml");
    let text = std::fs::read_to_string(&env_file).unwrap();
    let upstream = lab.ip(53);
    std::fs::write(&env_file, format!("{text}\ndns: {{ options: {{ forwarders: [{upstream}] }} }}\n")).unwrap();
    let plan = groundwork(&["plan", e]);
    assert!(plan.stdout.contains(&format!("+forwarders {{ {upstream}; }};")), "{}", plan.stdout);
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    // The query goes to ns1, which forwards it to the intranet DNS, and the answer comes back.
    assert_eq!(lab.dig(&["registry.intranet.test", "A"]), lab.ip(99));
    let queries = lab.ssh_ok("dns0", "cat /var/log/gwlab/named.log");
    let ns1 = format!(" {}#", lab.host_ip("ns1"));
    assert!(
        queries.lines().any(|l| l.contains(&ns1) && l.contains("query: registry.intranet.test IN A")),
        "the intranet DNS was asked by ns1:\n{queries}"
    );
    let again = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);

    // Giving the options back to the site: named.conf is the stock file again, plus the zones include.
    std::fs::write(&env_file, format!("{text}\ndns: {{ options: null }}\n")).unwrap();
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let conf = lab.ssh_ok("ns1", "cat /etc/named.conf");
    assert_eq!(conf, format!("{stock}include \"/etc/named/groundwork.zones.conf\";\n"));
}

#[test]
fn apache_httpd_serves_the_files_when_the_inventory_says_so() {
    let lab = Lab::up(BASE, &NEXT);
    let e = lab.env_str();
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    std::fs::write(
        &services,
        text.replace(
            "  docroot: /usr/share/nginx/html\n",
            "  docroot: /usr/share/nginx/html\n  web: { server: httpd }\n",
        ),
    )
    .unwrap();
    let plan = groundwork(&["plan", e]);
    assert!(plan.stdout.contains("+ files.site[bastion:/etc/apache2/conf-enabled/groundwork.conf]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("~ services.unit[bastion:apache2]"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("services.unit[bastion:nginx]"), "{}", plan.stdout);
    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(state(&lab, "bastion", "apache2"), ("enabled".into(), "active".into()));
    assert_eq!(state(&lab, "bastion", "nginx"), ("disabled".into(), "inactive".into()));
    // Apache answers with the served file, and its access log says who fetched it.
    let bastion = lab.host_ip("bastion");
    let out =
        Command::new("curl").args(["-sS", "-D", "-", &format!("http://{bastion}/pxeboot.ipxe")]).output().unwrap();
    let response = String::from_utf8_lossy(&out.stdout);
    assert!(response.starts_with("HTTP/1.1 200") && response.contains("Server: Apache"), "{response}");
    assert!(response.contains(&format!("chain http://{bastion}/ipxe/")), "{response}");
    let log = lab.ssh_ok("bastion", "cat /var/log/apache2/groundwork-access.log");
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("{} [", lab.ip(1))) && l.contains("\"GET /pxeboot.ipxe HTTP/1.1\" 200")),
        "{log}"
    );
    let again = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    // verify's service table has Apache on the files' port.
    let verify = groundwork(&["verify", e]);
    assert!(
        verify.stdout.lines().any(|l| l.contains("apache2") && l.contains("80/tcp") && l.contains("Apache/2")),
        "{}",
        verify.stdout
    );
}
