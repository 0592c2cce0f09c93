//! What the status page shows, kept by the drift loop: the graph's layout (once per environment) and a
//! snapshot replaced after each check, with the install timeline carried across checks.

use super::Checked;
use crate::engine::Plan;
use crate::error::Result;
use crate::ops::Workspace;
use crate::render::graph_svg::{Layout, ResourceState};
use crate::render::status_page::{
    DriftedResource, GateRow, LastCheck, Outcome, ServiceRow, Snapshot, TimelineEntry, VipRow,
};
use groundwork_services::TableAsks;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Status {
    pub layout: Arc<Layout>,
    pub snapshot: Arc<Snapshot>,
    /// Every address in the picture, to find the ones a failed check's error names.
    addresses: Vec<String>,
    /// The daemons' versions by (host, unit), and when they were last asked.
    versions: BTreeMap<(String, String), String>,
    versions_read: Option<Instant>,
    /// Each unit's ports and whether something listened there, and when the sockets were last asked.
    ports: BTreeMap<(String, String), Vec<(String, bool)>>,
    ports_read: Option<Instant>,
}

/// How often the daemons are asked their versions (a package update shows within this).
const VERSIONS_EVERY: Duration = Duration::from_secs(3600);
/// How often the hosts are asked their listening sockets: an `ss` per host, which a loop checking more
/// often than this would otherwise run on every check (a port that stops listening shows within this).
const PORTS_EVERY: Duration = Duration::from_secs(10);

impl Status {
    pub fn new(ws: &Workspace, every: Duration) -> Status {
        let layout = Layout::new(ws.desired.iter().map(|r| (&r.address, r.depends_on.as_slice())));
        let addresses = ws.desired.iter().map(|r| r.address.to_string()).collect();
        let snapshot = Snapshot {
            environment: ws.loaded.name.clone(),
            every_seconds: every.as_secs(),
            started_unix: super::now_unix(),
            checks: 0,
            errors: 0,
            heals: 0,
            last: None,
            timeline: Vec::new(),
        };
        Status {
            layout: Arc::new(layout),
            snapshot: Arc::new(snapshot),
            addresses,
            versions: BTreeMap::new(),
            versions_read: None,
            ports: BTreeMap::new(),
            ports_read: None,
        }
    }

    /// What the next check's service table asks besides the units' state: everything on the first
    /// check; after, the listening sockets every [`PORTS_EVERY`] and the versions hourly.
    pub fn service_table(&self) -> TableAsks {
        let due = |read: Option<Instant>, every: Duration| read.is_none_or(|at| at.elapsed() >= every);
        TableAsks { listening: due(self.ports_read, PORTS_EVERY), versions: due(self.versions_read, VERSIONS_EVERY) }
    }

    /// Take in one check's result and the run's counters.
    pub fn record(&mut self, result: Result<Checked>, (checks, errors, heals): (u64, u64, u64)) {
        let mut next = (*self.snapshot).clone();
        (next.checks, next.errors, next.heals) = (checks, errors, heals);
        let finished_unix = super::now_unix();
        next.last = Some(match result {
            Ok(mut c) => {
                next.timeline = timeline(&next.timeline, &c.plan, finished_unix);
                // What the check did not ask is carried over from the last check that did.
                let asked = c.asked.unwrap_or_default();
                if asked.versions {
                    self.versions_read = Some(Instant::now());
                }
                if asked.listening {
                    self.ports_read = Some(Instant::now());
                }
                for r in &mut c.services {
                    let key = (r.host.clone(), r.unit.clone());
                    if asked.versions {
                        self.versions.insert(key.clone(), r.version.clone());
                    } else {
                        r.version = self.versions.get(&key).cloned().unwrap_or_default();
                    }
                    if asked.listening {
                        self.ports.insert(key, r.ports.clone());
                    } else {
                        r.ports = self.ports.get(&key).cloned().unwrap_or_default();
                    }
                }
                last_check(c, finished_unix)
            }
            Err(e) => {
                let message = e.to_string();
                // A resource the error names failed; the others were not read to the end.
                let states = self
                    .addresses
                    .iter()
                    .filter(|a| message.contains(a.as_str()))
                    .map(|a| (a.clone(), ResourceState::Failed))
                    .collect();
                LastCheck {
                    finished_unix,
                    duration_seconds: 0.0,
                    outcome: Outcome::Failed(message),
                    drifted: Vec::new(),
                    gates: Vec::new(),
                    vips: Vec::new(),
                    services: Vec::new(),
                    states,
                    notes: Vec::new(),
                }
            }
        });
        self.snapshot = Arc::new(next);
    }
}

/// Each resource's state after a check: read and matching, drifted, or waiting (on a gate, or on
/// another change). A healed check leaves everything it read in sync.
pub(crate) fn states(plan: &Plan, healed: bool) -> BTreeMap<String, ResourceState> {
    let mut states: BTreeMap<String, ResourceState> =
        plan.observed.keys().map(|a| (a.clone(), ResourceState::InSync)).collect();
    for c in &plan.changes {
        let state = if healed { ResourceState::InSync } else { ResourceState::Drifted };
        states.insert(c.change.address.to_string(), state);
    }
    let waiting = plan.gates.iter().flat_map(|g| &g.blocked).chain(plan.pending.iter().flat_map(|p| &p.addresses));
    for a in waiting {
        states.insert(a.to_string(), ResourceState::Waiting);
    }
    states
}

fn last_check(c: Checked, finished_unix: f64) -> LastCheck {
    let plan = &c.plan;
    let outcome = match (plan.changes.is_empty(), c.healed) {
        (true, _) if c.vips.iter().any(|v| !v.ok()) => Outcome::VipsBroken,
        (true, _) => Outcome::InSync,
        (false, true) => Outcome::Healed,
        (false, false) => Outcome::Drifted,
    };
    let drifted = plan
        .changes
        .iter()
        .map(|p| DriftedResource {
            address: p.change.address.to_string(),
            verb: crate::render::text::verb(p.change.action).to_string(),
            body: crate::render::text::change_body(&p.change, false),
        })
        .collect();
    let gates = plan
        .gates
        .iter()
        .map(|g| GateRow {
            gate: g.status.gate.to_string(),
            passed: g.status.passed,
            detail: g.status.detail.clone(),
            notes: g.status.notes.clone(),
            waiting: g.blocked.len(),
        })
        .collect();
    let vips = c
        .vips
        .iter()
        .map(|v| VipRow { vip: v.vip.to_string(), instance: v.instance.clone(), ok: v.ok(), detail: v.describe() })
        .collect();
    let services = c
        .services
        .iter()
        .map(|r| ServiceRow {
            host: r.host.clone(),
            unit: r.unit.clone(),
            enabled: r.enabled.clone(),
            active: r.active.clone(),
            ports: r.ports.clone(),
            version: r.version.clone(),
            ok: r.ok(),
        })
        .collect();
    let mut notes = plan.notes.clone();
    if let Some(lock) = &plan.locked_by {
        notes.push(format!("Another run holds the apply lock ({lock}): what it is still changing shows as drift."));
    }
    LastCheck {
        finished_unix,
        duration_seconds: c.duration,
        outcome,
        drifted,
        gates,
        vips,
        services,
        states: states(plan, c.healed),
        notes,
    }
}

/// The gates that have passed, in install order: when the cluster says so, and when this loop first
/// saw it. A gate seen passed stays on the timeline if it stops holding later (the gates table shows
/// that).
pub(crate) fn timeline(before: &[TimelineEntry], plan: &Plan, now_unix: f64) -> Vec<TimelineEntry> {
    let mut out: Vec<TimelineEntry> = before.to_vec();
    for g in plan.gates.iter().filter(|g| g.status.passed) {
        let gate = g.status.gate.to_string();
        match out.iter_mut().find(|e| e.gate == gate) {
            Some(e) => {
                if e.cluster_time.is_none() {
                    e.cluster_time = g.status.since.clone();
                }
            }
            None => out.push(TimelineEntry { gate, cluster_time: g.status.since.clone(), seen_unix: now_unix }),
        }
    }
    let order = |gate: &str| groundwork_sdk::Gate::ALL.iter().position(|g| g.as_str() == gate);
    out.sort_by_key(|e| order(&e.gate));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gates::GateReport;
    use groundwork_sdk::{Address, Gate, GateStatus};

    fn plan(gates: Vec<GateReport>) -> Plan {
        let mut p: Plan = serde_json::from_value(serde_json::json!({
            "format_version": 2, "environment": "lab", "changes": [],
            "observed": {"bind.zone[ns1:z]": "x", "files.file[bastion:/srv/a]": "y"}
        }))
        .unwrap();
        p.gates = gates;
        p
    }

    fn gate(gate: Gate, passed: bool, since: Option<&str>, blocked: Vec<Address>) -> GateReport {
        GateReport {
            status: GateStatus { gate, passed, detail: String::new(), notes: vec![], since: since.map(str::to_string) },
            blocked,
        }
    }

    /// A check whose table asked `asked`, and found `version` and port 53/udp listening or not where
    /// it asked them.
    fn checked_asking(asked: TableAsks, version: &str, listening: bool) -> Checked {
        let row = groundwork_services::ServiceRow {
            host: "ns1".into(),
            daemon: groundwork_sdk::model::Daemon::Named,
            unit: "named.service".into(),
            enabled: "enabled".into(),
            active: "active".into(),
            ports: if asked.listening { vec![("53/udp".into(), listening)] } else { vec![] },
            version: if asked.versions { version.into() } else { String::new() },
        };
        let (plan, services) = (plan(vec![]), vec![row]);
        Checked { code: 0, plan, vips: vec![], services, asked: Some(asked), healed: false, duration: 0.1 }
    }

    fn checked(version: &str) -> Checked {
        checked_asking(TableAsks::ALL, version, true)
    }

    fn status(addresses: &[&Address]) -> Status {
        Status {
            layout: Arc::new(Layout::new([])),
            snapshot: Arc::new(Snapshot {
                environment: "lab".into(),
                every_seconds: 1,
                started_unix: 0.0,
                checks: 0,
                errors: 0,
                heals: 0,
                last: None,
                timeline: vec![],
            }),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            versions: BTreeMap::new(),
            versions_read: None,
            ports: BTreeMap::new(),
            ports_read: None,
        }
    }

    #[test]
    fn versions_and_sockets_are_asked_first_and_carried_over_checks_that_do_not_ask() {
        let mut st = status(&[]);
        assert_eq!(st.service_table(), TableAsks::ALL);
        st.record(Ok(checked_asking(TableAsks::ALL, "BIND 9.18", false)), (1, 0, 0));
        assert_eq!(st.service_table(), TableAsks { listening: false, versions: false });
        st.record(Ok(checked_asking(TableAsks::default(), "", true)), (2, 0, 0));
        let row = &st.snapshot.last.as_ref().unwrap().services[0];
        assert_eq!(row.version, "BIND 9.18");
        assert_eq!(row.ports, vec![("53/udp".to_string(), false)]);
        assert_eq!(st.snapshot.checks, 2);
        // A check that asks the sockets again replaces them; the versions stay carried.
        st.record(Ok(checked_asking(TableAsks { listening: true, versions: false }, "", true)), (3, 0, 0));
        let row = &st.snapshot.last.as_ref().unwrap().services[0];
        assert_eq!((row.version.as_str(), row.ports[0].1), ("BIND 9.18", true));
        // The sockets fall due again after PORTS_EVERY, the versions after VERSIONS_EVERY.
        st.ports_read = Instant::now().checked_sub(PORTS_EVERY);
        assert_eq!(st.service_table(), TableAsks { listening: true, versions: false });
    }

    #[test]
    fn a_failed_check_marks_the_resource_its_error_names_and_keeps_the_timeline() {
        let zone = Address::new("bind", "zone", Some("ns1"), "lab.example.test");
        let other = Address::new("files", "file", Some("bastion"), "/srv/a");
        let mut st = status(&[&zone, &other]);
        let passed = plan(vec![gate(Gate::BootstrapComplete, true, None, vec![])]);
        st.record(Ok(Checked { plan: passed, ..checked("x") }), (1, 0, 0));
        let message = format!("{zone}: named-checkzone refused the candidate: <bad> line 3");
        st.record(Err(crate::error::Error::Usage(message.clone())), (2, 1, 0));
        let last = st.snapshot.last.as_ref().unwrap();
        assert_eq!(last.outcome, Outcome::Failed(message));
        assert_eq!(last.states.get(&zone.to_string()), Some(&ResourceState::Failed));
        assert_eq!(last.states.get(&other.to_string()), None, "not read to the end: unknown");
        assert_eq!(st.snapshot.timeline.len(), 1, "what passed before stays on the timeline");
        assert_eq!((st.snapshot.checks, st.snapshot.errors), (2, 1));
    }

    #[test]
    fn a_vip_held_by_nobody_is_not_in_sync_even_without_drift() {
        let mut st = status(&[]);
        let vip = crate::ops::verify::VipHolding {
            vip: "10.88.0.5".parse().unwrap(),
            instance: "api".into(),
            holders: vec![],
            unread: vec![],
        };
        st.record(Ok(Checked { vips: vec![vip], ..checked("x") }), (1, 0, 0));
        let last = st.snapshot.last.as_ref().unwrap();
        assert_eq!(last.outcome, Outcome::VipsBroken);
        assert!(!last.vips[0].ok && last.vips[0].detail.contains("held by no load balancer"), "{:?}", last.vips);
    }

    #[test]
    fn read_resources_are_in_sync_and_blocked_ones_wait() {
        let waiting = Address::new("cluster", "patch", None, "ingress");
        let p = plan(vec![gate(Gate::InstallComplete, false, None, vec![waiting.clone()])]);
        let st = states(&p, false);
        assert_eq!(st["bind.zone[ns1:z]"], ResourceState::InSync);
        assert_eq!(st[&waiting.to_string()], ResourceState::Waiting);
        assert_eq!(st.len(), 3);
    }

    #[test]
    fn the_timeline_keeps_install_order_first_sightings_and_the_clusters_times() {
        let first = plan(vec![
            gate(Gate::BootstrapComplete, true, Some("2026-12-02T10:00:00Z"), vec![]),
            gate(Gate::MastersReady, true, None, vec![]),
            gate(Gate::WorkersJoined, false, None, vec![]),
        ]);
        let t1 = timeline(&[], &first, 100.0);
        assert_eq!(t1.iter().map(|e| e.gate.as_str()).collect::<Vec<_>>(), ["bootstrap-complete", "masters-ready"]);
        let second = plan(vec![
            gate(Gate::WorkersJoined, true, Some("2026-12-02T11:00:00Z"), vec![]),
            gate(Gate::MastersReady, true, Some("2026-12-02T10:30:00Z"), vec![]),
            // Lost since: it stays on the timeline.
            gate(Gate::BootstrapComplete, false, None, vec![]),
        ]);
        let t2 = timeline(&t1, &second, 200.0);
        let got: Vec<(&str, Option<&str>, f64)> =
            t2.iter().map(|e| (e.gate.as_str(), e.cluster_time.as_deref(), e.seen_unix)).collect();
        assert_eq!(
            got,
            [
                ("bootstrap-complete", Some("2026-12-02T10:00:00Z"), 100.0),
                ("masters-ready", Some("2026-12-02T10:30:00Z"), 100.0),
                ("workers-joined", Some("2026-12-02T11:00:00Z"), 200.0),
            ]
        );
    }
}
