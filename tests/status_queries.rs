//! The status page's queries against the plan's own, offline: what a drift tick asks of a host once.

use groundwork::config;
use groundwork_sdk::Provider;
use groundwork_services::TableAsks;

/// The service table's unit query is the very command the services provider's plan read runs on each
/// host (same key), so a drift tick's batch runs one `systemctl show` per host for both.
#[test]
fn the_service_tables_unit_query_is_the_plans_unit_read() {
    for dir in ["environments/ocp45", "environments/lab"] {
        let loaded = config::load_valid(std::path::Path::new(dir)).unwrap();
        let resources = config::expand::resources(&loaded).unwrap();
        let mut hosts = 0;
        for host in loaded.env.hosts.keys() {
            let units: Vec<&groundwork_sdk::Resource> = resources
                .iter()
                .filter(|r| r.address.provider == "services" && r.address.host.as_deref() == Some(host.as_str()))
                .collect();
            let only_units = groundwork_services::status_queries(&loaded.env, host, TableAsks::default());
            let queries =
                groundwork_services::status_queries(&loaded.env, host, TableAsks { listening: true, versions: false });
            if units.is_empty() {
                continue;
            }
            hosts += 1;
            let read = groundwork_services::ServicesProvider.prefetch(&units).execs;
            assert_eq!(read.len(), 1, "{dir} {host}");
            assert_eq!(queries.len(), 2, "{dir} {host}: the units, then the listening sockets");
            assert_eq!(queries[0].key(), read[0].key(), "{dir} {host}");
            // Asking neither the sockets nor the versions asks nothing the plan does not.
            assert_eq!(only_units.iter().map(|q| q.key()).collect::<Vec<_>>(), vec![read[0].key()], "{dir} {host}");
            // Asking versions changes only the second query.
            let with_versions = groundwork_services::status_queries(&loaded.env, host, TableAsks::ALL);
            assert_eq!(with_versions[0].key(), read[0].key());
            assert_ne!(with_versions[1].key(), queries[1].key());
        }
        assert!(hosts >= 2, "{dir}: {hosts} hosts with units");
    }
}
