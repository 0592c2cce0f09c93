//! Snapshots of what groundwork renders for the reference install (environments/ocp45), offline.

use groundwork::config;
use groundwork_sdk::file::ManagedFile;
use groundwork_sdk::Resource;

fn resources() -> Vec<Resource> {
    let loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    config::expand::resources(&loaded).unwrap()
}

fn find<'a>(rs: &'a [Resource], addr: &str) -> &'a Resource {
    rs.iter().find(|r| r.address.to_string() == addr).unwrap_or_else(|| {
        let all: Vec<String> = rs.iter().map(|r| r.address.to_string()).collect();
        panic!("{addr} not among {all:#?}")
    })
}

#[test]
fn zones() {
    let rs = resources();
    for (addr, name) in [
        ("bind.zone[ns1:example.localdomain]", "ocp45_forward_zone"),
        ("bind.zone[ns1:0.16.172.in-addr.arpa]", "ocp45_reverse_zone"),
    ] {
        let spec: groundwork_bind::ZoneSpec = find(&rs, addr).spec().unwrap();
        // A fixed serial: the real one is dated.
        insta::assert_snapshot!(name, groundwork_bind::zone::render(&spec.zone, 2026010100));
    }
    let stanzas: ManagedFile = find(&rs, "bind.stanzas[ns1:/etc/named/groundwork.zones.conf]").spec().unwrap();
    insta::assert_snapshot!("ocp45_named_stanzas", stanzas.content);
}

#[test]
fn named_options_and_their_adoption_by_rhels_named_conf() {
    let rs = resources();
    let options: ManagedFile = find(&rs, "bind.options[ns1:/etc/named/groundwork.options.conf]").spec().unwrap();
    insta::assert_snapshot!("ocp45_named_options", options.content);
    // RHEL's stock named.conf with groundwork's options adopted: the include and the commented-out lines.
    let stock = std::fs::read_to_string("tests/fixtures/rhel9_named.conf").unwrap();
    let include: groundwork_bind::IncludeSpec = find(&rs, "bind.include[ns1:/etc/named.conf]").spec().unwrap();
    let observed = groundwork_sdk::file::ObservedFile { path: include.path.clone(), content: stock };
    let address = find(&rs, "bind.include[ns1:/etc/named.conf]").address.clone();
    let change = groundwork_bind::diff_include(&address, Some(&include), Some(&observed), None).unwrap();
    let details: Vec<String> = change.details.iter().map(|d| d.text.clone()).collect();
    assert_eq!(
        details,
        [
            "options: include /etc/named/groundwork.options.conf; the site's own 5 statement(s) it sets commented out",
            "include \"/etc/named/groundwork.zones.conf\";"
        ]
    );
    insta::assert_snapshot!("ocp45_named_conf_adopted", change.diff.unwrap().new);
}

#[test]
fn dhcpd_conf() {
    let rs = resources();
    let conf: ManagedFile = find(&rs, "dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]").spec().unwrap();
    insta::assert_snapshot!("ocp45_dhcpd_conf", conf.content);
    assert_eq!(conf.check, vec![vec!["dhcpd", "-t", "-q", "-cf", "{candidate}"]]);
}

#[test]
fn kea_dhcp4_conf_when_a_host_moves_to_kea() {
    let mut loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    let dhcp = loaded.env.dhcp.as_mut().unwrap();
    dhcp.backends.insert("ns1".parse().unwrap(), groundwork_sdk::model::DhcpBackend::Kea);
    let rs = config::expand::resources(&loaded).unwrap();
    // The host gets kea-dhcp4.conf instead of dhcpd.conf, with the same pins as reservations, and
    // dhcpd is kept stopped there, before Kea starts.
    assert!(!rs.iter().any(|r| r.address.provider == "dhcpd" && r.address.kind == "config"));
    find(&rs, "dhcpd.stopped[ns1:dhcpd]");
    let kea = find(&rs, "kea.config[ns1:/etc/kea/kea-dhcp4.conf]");
    assert_eq!(kea.depends_on.iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["dhcpd.stopped[ns1:dhcpd]"]);
    let conf: ManagedFile = kea.spec().unwrap();
    insta::assert_snapshot!("ocp45_kea_dhcp4_conf", conf.content);
    assert_eq!(conf.check, vec![vec!["kea-dhcp4", "-t", "{candidate}"]]);
    let dhcpd: ManagedFile = find(&resources(), "dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]").spec().unwrap();
    assert_eq!(groundwork_kea::parse_reservations(&conf.content), groundwork_dhcpd::parse_pins(&dhcpd.content));
}

#[test]
fn ipxe_script() {
    let rs = resources();
    let f: groundwork_files::FileSpec =
        find(&rs, "files.file[bastion:/usr/share/nginx/html/pxeboot.ipxe]").spec().unwrap();
    insta::assert_snapshot!("ocp45_pxeboot_ipxe", f.content.unwrap());
}

#[test]
fn haproxy_cfg() {
    let rs = resources();
    let conf: ManagedFile = find(&rs, "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]").spec().unwrap();
    insta::assert_snapshot!("ocp45_haproxy_cfg", conf.content);
    // Day 2 of the reference install: 80/443 go to the infra nodes, each on its frontend's port.
    let servers = groundwork_haproxy::servers(&conf.content);
    assert!(servers.contains("server i1 in backend ingress-https (172.16.0.41:443)")); // offline render only
    assert!(!servers.iter().any(|s| s.contains("backend ingress-https") && s.ends_with(":80)")));
}

/// Day 2 of the reference install: bootstrap out of the LB, 80/443 on the infra nodes only (seed §8),
/// and the cluster objects §8 makes by hand.
#[test]
fn day_two() {
    let loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    let rs = config::expand::resources_in(&loaded, &groundwork_sdk::Phase::all()).unwrap();
    let cfg: ManagedFile = find(&rs, "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]").spec().unwrap();
    insta::assert_snapshot!("ocp45_haproxy_cfg_day2", cfg.content);
    let cluster: Vec<(String, serde_json::Value)> = rs
        .iter()
        .filter(|r| r.address.provider == "cluster")
        .map(|r| {
            assert_eq!(r.lifecycle.after, Some(groundwork_sdk::Gate::InstallComplete), "{}", r.address);
            (r.address.to_string(), r.spec.clone())
        })
        .collect();
    insta::assert_json_snapshot!("ocp45_cluster_objects", cluster);
}

/// `retire_bootstrap`: once bootstrap completes the node leaves DNS and DHCP too, and bootstrap.ign
/// (a resource that lives `until` the gate) is no longer desired — an apply deletes it as recorded.
#[test]
fn retired_bootstrap_leaves_dns_dhcp_and_the_docroot() {
    use groundwork::engine::gates::partition;
    use groundwork_sdk::{Gate, Phase};
    let mut loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    loaded.env.openshift.as_mut().unwrap().retire_bootstrap = true;
    let ign = "files.file[bastion:/usr/share/nginx/html/bootstrap.ign]";
    let zone = "bind.zone[ns1:example.localdomain]";
    let dhcp = "dhcpd.config[ns1:/etc/dhcp/dhcpd.conf]";
    let before = Phase::default();
    let (active, _) = partition(config::expand::resources_in(&loaded, &before).unwrap().into(), &before);
    assert_eq!(find(&active, ign).lifecycle.until, Some(Gate::BootstrapComplete));
    let text = |rs: &[Resource], a: &str| serde_json::to_string(&find(rs, a).spec).unwrap();
    assert!(text(&active, zone).contains("bs.ocp45"), "{}", text(&active, zone));
    assert!(text(&active, dhcp).contains("host bs"));
    let after = Phase { passed: [Gate::BootstrapComplete].into() };
    let (active, _) = partition(config::expand::resources_in(&loaded, &after).unwrap().into(), &after);
    assert!(!active.iter().any(|r| r.address.to_string() == ign));
    assert!(!text(&active, zone).contains("bs.ocp45"));
    assert!(!text(&active, dhcp).contains("host bs"));
    let cfg: ManagedFile = find(&active, "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]").spec().unwrap();
    assert!(!cfg.content.contains("server bs "));
}

#[test]
fn per_node_boot_scripts_and_tftp() {
    let rs = resources();
    let mut scripts = Vec::new();
    for r in rs.iter().filter(|r| r.address.provider == "files" && r.address.name.contains("/ipxe/")) {
        let spec: groundwork_files::FileSpec = r.spec().unwrap();
        scripts.push(format!("== {}\n{}", spec.url_path, spec.content.unwrap()));
    }
    assert_eq!(scripts.len(), 10, "one script per node");
    insta::assert_snapshot!("ocp45_node_scripts", scripts.join("\n"));
    // RHEL's tftp-server keeps its root in its socket-activated unit: no settings file is managed.
    assert!(!rs.iter().any(|r| r.address.provider == "tftp" && r.address.kind == "config"));
    // Where tftpd-hpa is used (tftp.config set), its settings file.
    let mut loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    loaded.env.tftp.config = Some("/etc/default/tftpd-hpa".parse().unwrap());
    let rs = config::expand::resources(&loaded).unwrap();
    let conf: ManagedFile = find(&rs, "tftp.config[bastion:/etc/default/tftpd-hpa]").spec().unwrap();
    insta::assert_snapshot!("ocp45_tftpd_hpa", conf.content);
    // The loaders DHCP names, from the host's ipxe package (RHEL's ipxe-bootimgs).
    for (path, from) in [
        ("/var/lib/tftpboot/undionly.kpxe", "/usr/share/ipxe/undionly.kpxe"),
        ("/var/lib/tftpboot/efi/ipxe.efi", "/usr/share/ipxe/ipxe.efi"),
    ] {
        let l: groundwork_tftp::LoaderSpec = find(&rs, &format!("tftp.loader[bastion:{path}]")).spec().unwrap();
        assert_eq!(l.from.as_deref(), Some(from));
    }
}

#[test]
fn the_web_site_moves_off_80_when_haproxy_shares_its_host() {
    let mut loaded = config::load_valid(std::path::Path::new("environments/ocp45")).unwrap();
    let rs = config::expand::resources(&loaded).unwrap();
    let site: ManagedFile = find(&rs, "files.site[bastion:/etc/nginx/conf.d/groundwork.conf]").spec().unwrap();
    insta::assert_snapshot!("ocp45_nginx_site", site.content);
    assert_eq!(groundwork_files::http_base(&loaded.env).as_deref(), Some("http://172.16.0.101"));
    // The bastion also balances: HAProxy takes 80 and 443 there, the files go to 8080, and every URL says so.
    let bastion = loaded.env.hosts.keys().find(|k| k.as_str() == "bastion").unwrap().clone();
    loaded.env.hosts.get_mut(&bastion).unwrap().roles.push(groundwork_sdk::model::HostRole::Lb);
    assert_eq!(groundwork_files::http_base(&loaded.env).as_deref(), Some("http://172.16.0.101:8080"));
    let rs = config::expand::resources(&loaded).unwrap();
    let site: ManagedFile = find(&rs, "files.site[bastion:/etc/nginx/conf.d/groundwork.conf]").spec().unwrap();
    assert!(site.content.contains("listen 172.16.0.101:8080;"), "{}", site.content);
    let chain = find(&rs, "files.file[bastion:/usr/share/nginx/html/pxeboot.ipxe]");
    let chain: groundwork_files::FileSpec = chain.spec().unwrap();
    assert!(chain.content.unwrap().contains("http://172.16.0.101:8080/"), "the chain script's URLs");
    // Apache instead of nginx, RHEL's layout: its own Listen (port 80 is the main configuration's).
    loaded.env.files.as_mut().unwrap().web.as_mut().unwrap().server = groundwork_sdk::model::WebServer::Httpd;
    let rs_httpd = config::expand::resources(&loaded).unwrap();
    let site: ManagedFile = find(&rs_httpd, "files.site[bastion:/etc/httpd/conf.d/groundwork.conf]").spec().unwrap();
    insta::assert_snapshot!("ocp45_httpd_site_8080", site.content);
    assert_eq!(
        site.activate.as_deref(),
        Some(&["systemctl".to_string(), "reload-or-restart".into(), "httpd".into()][..])
    );
    find(&rs_httpd, "services.unit[bastion:httpd]");
    // bastion is now an lb host, so its firewall is managed: 8080 opens there.
    find(&rs, "firewalld.port[bastion:public/8080/tcp]");
    assert!(!rs.iter().any(|r| r.address.to_string() == "firewalld.port[lb1:public/8080/tcp]"));
}

/// The cluster objects groundwork applies on day 2 fit OpenShift's own CRD schemas, strictly (no
/// unknown field), for the 4.5 era and for a current release: the reference install and the lab. They
/// are apply patches: required fields are checked by the server on the merged object.
#[test]
fn cluster_objects_fit_openshifts_crd_schemas() {
    use groundwork_cluster::schema::{check, Intent, SchemaSet};
    for env in ["environments/ocp45", "environments/lab"] {
        let loaded = config::load_valid(std::path::Path::new(env)).unwrap();
        let rs = config::expand::resources_in(&loaded, &groundwork_sdk::Phase::all()).unwrap();
        let mut checked = 0;
        for r in rs.iter().filter(|r| r.address.provider == "cluster") {
            for set in [SchemaSet::V4_5, SchemaSet::Current] {
                if let Some(problems) = check(set, &r.spec, Intent::Apply).unwrap() {
                    assert!(problems.is_empty(), "{env} {} against {set:?}: {problems:#?}", r.address);
                    checked += 1;
                }
            }
        }
        // The IngressController and the image registry Config, in both sets.
        assert_eq!(checked, 4, "{env}");
    }
}
