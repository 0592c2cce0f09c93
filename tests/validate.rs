//! Every validation rule has a failing input whose finding is located at file:line:column.

use groundwork::config::{self, ConfigError};

const BASE: &str = r#"cluster: { name: lab, base_domain: example.test }
networks:
  machine: [10.88.0.0/24]
  cluster: { cidr: 10.128.0.0/14, host_prefix: 23 }
  service: [172.30.0.0/16]
hosts:
  bastion: { address: 10.88.0.10, roles: [http, tftp], transport: local, root: r/bastion }
  ns1: { address: 10.88.0.2, roles: [dns, dhcp], transport: local, root: r/ns1 }
  lb1:
    address: 10.88.0.3
    roles: [lb]
    vips: { internal: 10.88.0.3, external: 10.88.0.4 }
dhcp:
  subnet: 10.88.0.0/24
  routers: [10.88.0.1]
  pxe: { tftp_host: bastion, script: pxeboot.ipxe }
files:
  boot: { kernel: k, initramfs: i.img, image: m.raw.gz }
  serve:
    - { path: pxeboot.ipxe, template: builtin:ipxe }
    - { path: k, content: "k" }
    - { path: i.img, content: "i" }
    - { path: m.raw.gz, content: "m" }
    - { path: bootstrap.ign, content: '{"ignition":{"version":"3.1.0"}}', kind: ignition }
    - { path: master.ign, content: '{"ignition":{"version":"3.1.0"}}', kind: ignition }
    - { path: worker.ign, content: '{"ignition":{"version":"3.1.0"}}', kind: ignition }
"#;

const NODES: &str = r#"nodes:
  - { name: bs, role: bootstrap, mac: "52:54:00:00:00:11", ip: 10.88.0.11 }
  - { name: m1, role: master, mac: "52:54:00:00:00:21", ip: 10.88.0.21 }
  - { name: m2, role: master, mac: "52:54:00:00:00:22", ip: 10.88.0.22 }
  - { name: m3, role: master, mac: "52:54:00:00:00:23", ip: 10.88.0.23 }
  - { name: w1, role: worker, mac: "52:54:00:00:00:31", ip: 10.88.0.31 }
  - { name: w2, role: worker, mac: "52:54:00:00:00:32", ip: 10.88.0.32 }
"#;

/// Validate an environment of two files (environment.yaml, nodes.yaml) after edits.
fn check(env: &str, nodes: &str) -> Result<(), ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("environment.yaml"), env).unwrap();
    std::fs::write(dir.path().join("nodes.yaml"), nodes).unwrap();
    config::load_valid(dir.path()).map(|_| ())
}

/// The findings as (rule, "file:line:col" without the temp dir, message).
fn findings(env: &str, nodes: &str) -> Vec<(String, String, String)> {
    match check(env, nodes) {
        Ok(()) => vec![],
        Err(ConfigError::Invalid(f)) => f
            .into_iter()
            .map(|f| {
                let at = f.at.unwrap_or_default();
                let at = at.rsplit('/').next().unwrap_or_default().to_string();
                (f.rule.to_string(), at, f.message)
            })
            .collect(),
        Err(other) => panic!("expected findings, got {other}"),
    }
}

/// "file:line:col" of `token` on the first line of `text` that contains `marker`.
fn at(file: &str, text: &str, marker: &str, token: &str) -> String {
    let (i, line) = text.lines().enumerate().find(|(_, l)| l.contains(marker)).expect("marker");
    let col = line.find(token).expect("token") + 1;
    format!("{file}:{}:{col}", i + 1)
}

/// A value refused by its type when loading: (file:line:col without the temp dir, message).
fn refused(env: &str, nodes: &str) -> (String, String) {
    match check(env, nodes) {
        Err(ConfigError::Syntax(s)) => {
            let file = s.file.rsplit('/').next().unwrap_or_default().to_string();
            (format!("{file}:{}:{}", s.line, s.column), s.message.clone())
        }
        other => panic!("expected a value refused at load, got {other:?}"),
    }
}

/// Refused at `at` with a message that contains `says`.
fn expect_refused(env: &str, nodes: &str, at: &str, says: &str) {
    let (got, msg) = refused(env, nodes);
    assert_eq!(got, at, "{msg}");
    assert!(msg.contains(says), "{msg}");
}

fn expect(env: &str, nodes: &str, rule: &str, at: &str) -> String {
    let f = findings(env, nodes);
    let hit = f.iter().find(|(r, a, _)| r == rule && a == at);
    assert!(hit.is_some(), "expected {rule} at {at}, got {f:#?}");
    hit.map(|h| h.2.clone()).unwrap_or_default()
}

#[test]
fn base_environment_is_valid() {
    assert_eq!(findings(BASE, NODES), vec![]);
}

#[test]
fn ocp45_is_valid() {
    config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
}

#[test]
fn node_name_must_be_a_dns_label() {
    let nodes = NODES.replace("name: w2", "name: W_2");
    expect_refused(BASE, &nodes, &at("nodes.yaml", &nodes, "W_2", "W_2"), "nodes[5].name: \"W_2\" is not a DNS label");
}

#[test]
fn cluster_name_and_base_domain_must_be_dns_names() {
    let env = BASE.replace("name: lab,", "name: -lab,");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "cluster", "-lab"), "cluster.name: \"-lab\"");
    let env = BASE.replace("base_domain: example.test", "base_domain: ex..test");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "cluster", "ex..test"), "not a domain name");
}

#[test]
fn values_that_reach_config_files_are_typed_when_loaded() {
    let with_dns = |records: &str| format!("{BASE}dns:\n  records:\n{records}");
    // A TXT value with a line break and a record of its own: a valid TXT (escaped when rendered), but
    // a newline in an A record's value is refused.
    let env = with_dns("    - { name: x, type: A, value: \"10.88.0.50\\nm1 IN A 10.88.0.9\" }\n");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "name: x", "{"), "not an IPv4 address");
    let env = with_dns("    - { name: x, type: A, value: not-an-ip }\n");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "name: x", "not-an-ip"), "dns.records[0].value");
    let env = with_dns("    - { name: x, type: BOGUS, value: y }\n");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "name: x", "BOGUS"), "not a record type");
    let env = with_dns(&format!("    - {{ name: x, type: TXT, value: {} }}\n", "a".repeat(256)));
    expect_refused(&env, NODES, &at("environment.yaml", &env, "name: x", "{"), "at most 255 bytes");
    // The PXE boot filename that closed the class and added a host block.
    let env = BASE.replace(
        "script: pxeboot.ipxe }",
        "script: pxeboot.ipxe, bios_file: 'x\"; } host evil { hardware ethernet 52:54:00:00:00:21; fixed-address 10.88.0.99; } #' }",
    );
    expect_refused(&env, NODES, &at("environment.yaml", &env, "bios_file", "'x"), "dhcp.pxe.bios_file");
    // A frontend name with a line break.
    let env = format!("{BASE}loadbalancer:\n  frontends:\n    - {{ name: \"api\\n    server evil 10.88.0.99:6443\", port: 6443, backends: [] }}\n");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "server evil", "\"api"), "not an HAProxy name");
    // A MAC with a '+' (from_str_radix accepts "+f").
    let nodes = NODES.replace("52:54:00:00:00:32", "52:54:00:00:00:+f");
    expect_refused(BASE, &nodes, &at("nodes.yaml", &nodes, "w2", "\"52"), "not a MAC address");
    // A served path that leaves the docroot, and an empty one.
    let env = BASE.replace("path: k, content", "path: ../../../../etc/MARKER, content");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "MARKER", "../"), "'..' component");
    let env = BASE.replace("path: k, content", "path: '', content");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "path: ''", "''"), "is empty");
    // A lease time beyond 32 bits (or whose max-lease-time, 12 times it, would wrap).
    let env = BASE.replace("  routers: [10.88.0.1]", "  routers: [10.88.0.1]\n  default_lease_time: 4294967297");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "default_lease_time", "4294"), "not a lease time");
    let env = BASE.replace("  routers: [10.88.0.1]", "  routers: [10.88.0.1]\n  default_lease_time: 400000000");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "default_lease_time", "4000"), "must fit 32 bits");
    // A firewalld service name that is a path.
    let env = format!("{BASE}firewall:\n  services: [http, ../../etc/shadow]\n");
    expect_refused(&env, NODES, &at("environment.yaml", &env, "shadow", "../"), "firewall.services[1]");
}

#[test]
fn names_are_unique_across_nodes_and_hosts() {
    let nodes = NODES.replace("name: w2,", "name: w1,");
    let msg = expect(BASE, &nodes, "name-unique", &at("nodes.yaml", &nodes, "\"52:54:00:00:00:32\"", "w1"));
    assert!(msg.contains("node name w1 is used twice"), "{msg}");
    let nodes = NODES.replace("name: w2,", "name: ns1,");
    let msg = expect(BASE, &nodes, "name-unique", &at("nodes.yaml", &nodes, "ns1", "ns1"));
    assert!(msg.contains("ns1 is both a node") && msg.contains("infra host"), "{msg}");
}

#[test]
fn served_paths_are_one_path_however_written() {
    let env = BASE.replace(
        "    - { path: k, content: \"k\" }",
        "    - { path: k, content: \"k\" }\n    - { path: /k, content: \"k\" }",
    );
    let msg = expect(&env, NODES, "served-path-unique", &at("environment.yaml", &env, "path: /k", "/k"));
    assert!(msg.contains("k is served twice"), "{msg}");
}

#[test]
fn the_dhcp_subnet_lies_inside_a_machine_network() {
    for subnet in ["0.0.0.0/0", "10.88.0.0/16"] {
        let env = BASE.replace("  subnet: 10.88.0.0/24", &format!("  subnet: {subnet}"));
        let msg = expect(&env, NODES, "dhcp-subnet", &at("environment.yaml", &env, "subnet:", subnet));
        assert!(msg.contains("not inside the machine network"), "{msg}");
    }
}

#[test]
fn extra_records_must_sit_under_the_cluster_domain() {
    let env = format!("{BASE}dns:\n  records:\n    - {{ name: registry.other.test., type: A, value: 10.88.0.50 }}\n");
    let msg = expect(&env, NODES, "dns-name", &at("environment.yaml", &env, "registry", "registry"));
    assert!(msg.contains("not under the cluster domain lab.example.test"), "{msg}");
}

#[test]
fn exactly_one_bootstrap() {
    let nodes = NODES.replace("name: m3, role: master", "name: m3, role: bootstrap");
    expect(BASE, &nodes, "bootstrap-count", &at("nodes.yaml", &nodes, "m3", "bootstrap"));
}

#[test]
fn three_masters_or_compact() {
    let nodes: String = NODES.lines().filter(|l| !l.contains("m3")).map(|l| format!("{l}\n")).collect();
    let msg = expect(BASE, &nodes, "master-count", &at("nodes.yaml", &nodes, "bs", "- {"));
    assert!(msg.contains("found 2"), "{msg}");
    let compact = BASE.replace("base_domain: example.test }", "base_domain: example.test, compact: true }");
    expect(&compact, NODES, "master-count", &at("nodes.yaml", NODES, "w1", "worker"));
}

#[test]
fn ip_unique_names_both_sides() {
    let nodes = NODES.replace("ip: 10.88.0.32", "ip: 10.88.0.31");
    let msg = expect(BASE, &nodes, "ip-unique", &at("nodes.yaml", &nodes, "w2", "10.88"));
    assert!(
        msg.contains("10.88.0.31 used by w1 (")
            && msg.contains(&format!("{}) and w2 (", at("nodes.yaml", &nodes, "w1", "10.88"))),
        "{msg}"
    );
}

#[test]
fn ip_of_node_and_host_clash() {
    let nodes = NODES.replace("ip: 10.88.0.32", "ip: 10.88.0.10");
    let msg = expect(BASE, &nodes, "ip-unique", &at("environment.yaml", BASE, "bastion:", "10.88"));
    assert!(msg.contains("used by w2") && msg.contains("bastion"), "{msg}");
}

#[test]
fn ip_inside_machine_network() {
    let nodes = NODES.replace("ip: 10.88.0.32", "ip: 10.89.0.32");
    expect(BASE, &nodes, "ip-in-machine-network", &at("nodes.yaml", &nodes, "w2", "10.89"));
}

#[test]
fn mac_well_formed_and_unique() {
    let nodes = NODES.replace("52:54:00:00:00:32", "52:54:00:00:00:3g");
    expect_refused(BASE, &nodes, &at("nodes.yaml", &nodes, "w2", "\"52"), "nodes[5].mac");
    let nodes = NODES.replace("52:54:00:00:00:32", "52:54:00:00:00:31");
    let msg = expect(BASE, &nodes, "mac-unique", &at("nodes.yaml", &nodes, "w2", "\"52"));
    assert!(msg.contains("used by w1") && msg.contains("and w2"), "{msg}");
}

#[test]
fn networks_private() {
    let env = BASE.replace("service: [172.30.0.0/16]", "service: [8.8.0.0/16]");
    expect(&env, NODES, "network-private", &at("environment.yaml", &env, "service", "8.8"));
}

#[test]
fn networks_do_not_overlap() {
    let env = BASE.replace("service: [172.30.0.0/16]", "service: [10.130.0.0/16]");
    let msg = expect(&env, NODES, "network-overlap", &at("environment.yaml", &env, "service", "10.130"));
    assert!(msg.contains("cluster network 10.128.0.0/14") && msg.contains("service network 10.130.0.0/16"), "{msg}");
    let env =
        BASE.replace("service: [172.30.0.0/16]\n", "service: [172.30.0.0/16]\n  other: { office: 10.88.0.0/16 }\n");
    expect(&env, NODES, "network-overlap", &at("environment.yaml", &env, "office", "10.88"));
}

#[test]
fn every_node_gets_records_from_a_dns_host() {
    let env = BASE.replace("roles: [dns, dhcp]", "roles: [dhcp]");
    let msg = expect(&env, NODES, "node-records", &at("environment.yaml", &env, "hosts:", "hosts"));
    assert!(msg.contains("localhost"), "{msg}");
    let env = format!("{BASE}dns:\n  records:\n    - {{ name: m1, type: A, value: 10.88.0.99 }}\n");
    expect(&env, NODES, "node-records", &at("environment.yaml", &env, "10.88.0.99", "m1"));
}

#[test]
fn lb_frontends_reach_the_right_nodes_on_their_port() {
    let lb = r#"loadbalancer:
  frontends:
    - { name: api, port: 6443, backends: [{ node: bs, port: 6443 }, { node: m1, port: 6443 }, { node: m2, port: 6443 }, { node: m3, port: 6443 }] }
    - { name: mc, port: 22623, backends: [{ node: bs, port: 22623 }, { node: m1, port: 22623 }, { node: m2, port: 22623 }, { node: w1, port: 22623 }] }
    - { name: http, port: 80, backends: [{ node: w1, port: 80 }, { node: w2, port: 80 }] }
    - { name: https, port: 443, backends: [{ node: w1, port: 443 }, { node: w2, port: 80 }] }
"#;
    let env = format!("{BASE}{lb}");
    let msg = expect(&env, NODES, "lb-backends", &at("environment.yaml", &env, "name: mc", "w1"));
    assert!(msg.contains("w1 is not one of them"), "{msg}");
    let msg = expect(&env, NODES, "lb-backends", &at("environment.yaml", &env, "name: mc", "{ name"));
    assert!(msg.contains("no backend for m3"), "{msg}");
    // The seed's own slip: w3 on port 80 in the 443 backend.
    let msg = expect(&env, NODES, "lb-backends", &at("environment.yaml", &env, "name: https", "80"));
    assert!(msg.contains("uses port 80 but the frontend listens on 443"), "{msg}");
}

#[test]
fn dhcp_fixed_addresses_inside_subnet() {
    let env = BASE.replace("subnet: 10.88.0.0/24", "subnet: 10.88.0.0/27");
    let msg = expect(&env, NODES, "dhcp-subnet", &at("nodes.yaml", NODES, "w2", "10.88"));
    assert!(msg.contains("outside the DHCP subnet 10.88.0.0/27"), "{msg}");
}

#[test]
fn served_urls_point_to_served_files() {
    let env = BASE
        .replace("    - { path: worker.ign, content: '{\"ignition\":{\"version\":\"3.1.0\"}}', kind: ignition }\n", "");
    // The workers' boot scripts point at it.
    let msg = expect(&env, NODES, "served-urls", &at("nodes.yaml", NODES, "w1", "{"));
    assert!(msg.contains("worker.ign") && msg.contains("boot script of w1"), "{msg}");
    let env = BASE.replace("script: pxeboot.ipxe", "script: boot.ipxe");
    expect(&env, NODES, "served-urls", &at("environment.yaml", &env, "script:", "boot.ipxe"));
}

#[test]
fn every_declared_machine_boots_something_served_and_sane() {
    // Neither a metal image nor a live rootfs: the installer would have nothing to install.
    let env = BASE.replace("image: m.raw.gz }", "}");
    let msg = expect(&env, NODES, "boot", &at("environment.yaml", &env, "boot:", "{ kernel"));
    assert!(msg.contains("image") && msg.contains("rootfs"), "{msg}");
    // A served file in the place of a node's boot script would boot it as something else.
    let env = BASE.replace(
        "    - { path: k,",
        "    - { path: ipxe/52-54-00-00-00-31.ipxe, content: \"#!ipxe\" }\n    - { path: k,",
    );
    let msg = expect(&env, NODES, "served-path-unique", &at("environment.yaml", &env, "52-54", "ipxe/"));
    assert!(msg.contains("boot script of w1"), "{msg}");
    // Its kernel must be served.
    let env = BASE.replace("    - { path: k, content: \"k\" }\n", "");
    let msg = expect(&env, NODES, "served-urls", &at("nodes.yaml", NODES, "bs", "{"));
    assert!(msg.contains("/k") && msg.contains("boot script of bs"), "{msg}");
    // Static addressing of the wrong family, or a prefix that is no prefix.
    for bad in ["static: { gateway: \"fd00::1\" }", "static: { gateway: 10.88.0.1, prefix: 33 }"] {
        let nodes = NODES.replace("ip: 10.88.0.31 }", &format!("ip: 10.88.0.31, {bad} }}"));
        let msg = expect(BASE, &nodes, "boot", &at("nodes.yaml", &nodes, "w1", "{ gateway"));
        assert!(msg.contains("w1: static addressing"), "{msg}");
    }
    let nodes = NODES.replace("ip: 10.88.0.31 }", "ip: 10.88.0.31, static: { gateway: 10.88.0.1, prefix: 24 } }");
    assert_eq!(findings(BASE, &nodes), vec![]);
}

#[test]
fn host_references_exist_with_the_role() {
    let env = BASE.replace("tftp_host: bastion", "tftp_host: bastoin");
    let msg = expect(&env, NODES, "host-reference", &at("environment.yaml", &env, "bastoin", "bastoin"));
    assert!(msg.contains("bastoin"), "{msg}");
    // A DHCP backend chosen for a host that serves no DHCP.
    let env = BASE.replace("  routers: [10.88.0.1]\n", "  routers: [10.88.0.1]\n  backends: { lb1: kea }\n");
    let msg = expect(&env, NODES, "host-reference", &at("environment.yaml", &env, "backends", "kea"));
    assert!(msg.contains("lb1 does not have the role dhcp"), "{msg}");
}

#[test]
fn unknown_keys_are_located_syntax_errors() {
    let env = BASE.replace("  routers:", "  router:");
    match check(&env, NODES) {
        Err(ConfigError::Syntax(s)) => {
            assert_eq!((s.line, s.column), (15, 3));
            assert!(s.message.contains("unknown field `router`"), "{}", s.message);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn malformed_yaml_is_located() {
    let nodes = NODES.replace("ip: 10.88.0.32 }", "ip: 10.88.0.32");
    match check(BASE, &nodes) {
        Err(ConfigError::Syntax(s)) => {
            assert!(s.file.ends_with("nodes.yaml"));
            // The unclosed mapping is on line 7; the parser may only see it end at the next line.
            assert!((7..=8).contains(&s.line), "{s:?}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_section_defined_twice_names_both_files() {
    let nodes = format!("{NODES}cluster: {{ name: x, base_domain: y.test }}\n");
    match check(BASE, &nodes) {
        Err(e @ ConfigError::DuplicateSection { .. }) => {
            let s = e.to_string();
            assert!(s.contains("nodes.yaml:8:1") && s.contains("environment.yaml:1:1"), "{s}");
        }
        other => panic!("expected a duplicate section, got {other:?}"),
    }
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!("{BASE}dns:\n  records: {}\n", "[".repeat(100_000));
    let (at, msg) = refused(&deep, NODES);
    assert!(msg.contains("nested deeper than 64 levels"), "{msg}");
    let (line, text) = deep.lines().enumerate().find(|(_, l)| l.contains("records:")).unwrap();
    assert_eq!(at, format!("environment.yaml:{}:{}", line + 1, text.find('[').unwrap() + 65));
    // 64 levels of flow collections are fine as far as nesting goes.
    let ok = format!("{BASE}x: {}{}\n", "[".repeat(64), "]".repeat(64));
    assert!(!refused(&ok, NODES).1.contains("nested deeper"));
}

/// Run `groundwork validate DIR`; fail (instead of hanging) if it does not finish.
fn validate_cli(dir: &std::path::Path) -> (i32, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["validate", dir.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("groundwork validate did not finish: it hangs on this input");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    // miette wraps long messages in a box: one line of words.
    let err = String::from_utf8_lossy(&out.stderr);
    let words: Vec<&str> = err.split_whitespace().filter(|w| !["│", "×"].contains(w)).collect();
    (out.status.code().unwrap_or(-1), words.join(" "))
}

#[test]
fn sources_are_regular_files_inside_the_environment_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
    let with_source = |source: &str, extra: &str| {
        let env =
            BASE.replace("    - { path: k, content: \"k\" }", &format!("    - {{ path: k, source: \"{source}\" }}"));
        std::fs::write(dir.path().join("environment.yaml"), env.replace("files:\n", &format!("files:\n{extra}")))
            .unwrap();
        validate_cli(dir.path())
    };
    assert!(std::process::Command::new("mkfifo").arg(dir.path().join("fifo")).status().unwrap().success());
    let (code, err) = with_source("fifo", "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    let (code, err) = with_source("/dev/zero", "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("outside the environment directory"), "{err}");
    std::fs::write(dir.path().join("big"), vec![b'x'; 100]).unwrap();
    let (code, err) = with_source("big", "  max_source_bytes: 99\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("more than files.max_source_bytes (99)"), "{err}");
    let (code, err) = with_source("big", "  max_source_bytes: 100\n");
    assert_eq!(code, 0, "{err}");
}

/// Day-2 manifests against OpenShift's CRD schemas: a misspelled field is found at its key, a wrong type
/// at its value, and the release declared in `openshift.version` picks the schema set.
#[test]
fn manifests_are_checked_against_openshifts_crd_schemas() {
    let run = |version: &str, manifest: &str| -> Vec<(String, String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let os = format!("openshift:\n  kubeconfig: kc\n  manifests: cluster\n{version}");
        std::fs::write(dir.path().join("environment.yaml"), format!("{BASE}{os}")).unwrap();
        std::fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
        std::fs::create_dir(dir.path().join("cluster")).unwrap();
        std::fs::write(dir.path().join("cluster/ingress.yaml"), manifest).unwrap();
        match config::load_valid(dir.path()) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(f)) => f
                .iter()
                .filter(|f| f.rule == "manifest-schema")
                .map(|f| {
                    let at = f.at.clone().unwrap_or_default();
                    (at.rsplit('/').next().unwrap_or_default().to_string(), f.message.clone(), f.rule.to_string())
                })
                .collect(),
            Err(other) => panic!("{other}"),
        }
    };
    let ic = |spec: &str| {
        format!(
            "apiVersion: operator.openshift.io/v1\nkind: IngressController\nmetadata:\n  name: sharded\n  namespace: openshift-ingress-operator\nspec:\n{spec}"
        )
    };
    assert_eq!(run("", &ic("  replicas: 2\n  domain: apps2.example.test\n")), vec![]);
    let typo = ic("  replica: 2\n");
    let f = run("", &typo);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ingress.yaml:7:3");
    assert!(f[0].1.contains("IngressController sharded: spec.replica: unknown field"), "{}", f[0].1);
    let f = run("", &ic("  replicas: two\n"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ingress.yaml:7:13");
    assert!(f[0].1.contains("spec.replicas"), "{}", f[0].1);
    // httpHeaders exists in current releases, not in 4.5's IngressController.
    let headers = ic("  httpHeaders:\n    forwardedHeaderPolicy: Append\n");
    assert_eq!(run("", &headers), vec![]);
    let f = run("  version: \"4.5\"\n", &headers);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].1.contains("spec.httpHeaders: unknown field (not in the V4_5 schema"), "{}", f[0].1);
    // A core kind is read into its Kubernetes type: the lab's StorageClass with a misspelled field.
    let sc = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: lab-registry-fs\nprovisioner: kubernetes.io/no-provisioner\nreclaimPolicyy: Retain\n";
    let f = run("", sc);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "ingress.yaml:6:1");
    assert!(
        f[0].1.contains("StorageClass lab-registry-fs: reclaimPolicyy: unknown field (not in its Kubernetes type)"),
        "{}",
        f[0].1
    );
}

#[test]
fn shared_infra_hosts_take_only_what_groundwork_owns_part_by_part() {
    let shared = BASE.replace("base_domain: example.test }", "base_domain: example.test, shared_infra: true }");
    assert_eq!(findings(&shared, NODES), vec![], "the lab's layout is fine shared");
    let kea = shared.replace("  routers: [10.88.0.1]\n", "  routers: [10.88.0.1]\n  backend: kea\n");
    let msg = expect(&kea, NODES, "shared-infra", &at("environment.yaml", &kea, "backend: kea", "kea"));
    assert!(msg.contains("Kea is not supported"), "{msg}");
    let pair = shared.replace(
        "dhcp:\n",
        "  lb2:\n    address: 10.88.0.5\n    roles: [lb]\n    vips: { internal: 10.88.0.6, external: 10.88.0.4 }\ndhcp:\n",
    );
    let findings = findings(&pair, NODES);
    assert!(findings.iter().any(|(r, _, m)| r == "shared-infra" && m.contains("keepalived")), "{findings:#?}");
}
