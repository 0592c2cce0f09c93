//! The apply scheduler with a test provider: order, failure isolation, ownership records.

use async_trait::async_trait;
use groundwork::engine::scope::Matcher;
use groundwork::engine::{self, refresh::refresh, Outcome, Registry};
use groundwork::transport::Hosts;
use groundwork_sdk::model::Environment;
use groundwork_sdk::{Action, Address, Change, Context, Error, Provider, Resource};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Each resource's value: the file named after it under `dir`.
async fn read_values(cx: &Context, resources: &[&Resource], dir: &str) -> Result<Vec<Option<Value>>, Error> {
    let mut out = Vec::new();
    for r in resources {
        let t = cx.transport(&r.address)?;
        let b = t.read_file(&format!("{dir}/{}", r.address.name)).await.map_err(|e| e.at(&r.address))?;
        out.push(b.map(|b| json!(String::from_utf8_lossy(&b))));
    }
    Ok(out)
}

/// As desired when the file holds the spec's `v`.
fn diff_value(address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Change {
    let same = desired.and_then(|d| d.get("v")) == actual;
    Change::compare(address.clone(), desired, actual, same)
}

/// Records the order of applies; resources whose spec says `fail` fail.
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Provider for Recorder {
    fn name(&self) -> &'static str {
        "rec"
    }
    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        read_values(cx, resources, "/rec").await
    }
    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        Ok(diff_value(address, desired, actual))
    }
    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let a = &change.address;
        self.log.lock().unwrap().push(format!("{:?} {}", change.action, a.name));
        let t = cx.transport(a)?;
        match change.action {
            Action::Delete => t.remove_file(&format!("/rec/{}", a.name)).await.map_err(|e| e.at(a)),
            _ => {
                let spec = change.after.as_ref().unwrap();
                if spec.get("fail").is_some() {
                    return Err(Error::failed(a, "told to fail"));
                }
                let v = spec["v"].as_str().unwrap().as_bytes().to_vec();
                t.write_file(&format!("/rec/{}", a.name), &v, &Default::default()).await.map_err(|e| e.at(a))
            }
        }
    }
}

fn env(root: &std::path::Path) -> Environment {
    let yaml = format!(
        r#"cluster: {{ name: t, base_domain: x.test }}
networks: {{ machine: [10.88.0.0/24], cluster: {{ cidr: 10.128.0.0/14, host_prefix: 23 }}, service: [172.30.0.0/16] }}
hosts:
  h1: {{ address: 10.88.0.2, transport: local, root: {0}/h1 }}
  h2: {{ address: 10.88.0.3, transport: local, root: {0}/h2 }}
"#,
        root.display()
    );
    groundwork_sdk::yaml::from_str(&yaml).unwrap()
}

/// Hosts under a temp dir, and a registry of the test providers asked for (`Reloader`, `Recorder`),
/// both writing to one log.
struct Fixture {
    _dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    reg: Registry,
    hosts: Hosts,
}

fn fixture(reloader: bool, recorder: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::empty();
    if reloader {
        reg.add(Arc::new(Reloader { log: log.clone() }));
    }
    if recorder {
        reg.add(Arc::new(Recorder { log: log.clone() }));
    }
    let hosts = Hosts::new(&env(dir.path()), dir.path(), Default::default());
    Fixture { _dir: dir, log, reg, hosts }
}

fn res(host: &str, name: &str, spec: Value, deps: &[Address]) -> Resource {
    let mut r = Resource::new(Address::new("rec", "thing", Some(host), name), spec).unwrap();
    r.depends_on = deps.to_vec();
    r
}

#[tokio::test]
async fn failure_stops_dependents_and_independent_branches_go_on() {
    let Fixture { _dir, log, reg, hosts } = fixture(false, true);

    let a = res("h1", "a", json!({"v": "a", "fail": true}), &[]);
    let b = res("h1", "b", json!({"v": "b"}), std::slice::from_ref(&a.address));
    let c = res("h2", "c", json!({"v": "c"}), std::slice::from_ref(&b.address));
    let d = res("h2", "d", json!({"v": "d"}), &[]);
    let e = res("h1", "e", json!({"v": "e"}), std::slice::from_ref(&d.address));
    let desired = vec![a.clone(), b.clone(), c.clone(), d.clone(), e.clone()];

    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    assert_eq!(plan.count(Action::Create), 5);
    let report = engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    let outcome = |addr: &Address| report.outcomes.iter().find(|(x, _, _)| x == addr).unwrap().2.clone();
    assert!(matches!(outcome(&a.address), Outcome::Failed(m) if m.contains("told to fail")));
    assert!(matches!(outcome(&b.address), Outcome::Skipped(m) if m.contains("rec.thing[h1:a]")));
    assert!(matches!(outcome(&c.address), Outcome::Skipped(_)));
    assert_eq!(outcome(&d.address), Outcome::Applied);
    assert_eq!(outcome(&e.address), Outcome::Applied);
    let order = log.lock().unwrap().clone();
    let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
    assert!(pos("Create d") < pos("Create e"), "{order:?}");
    assert!(!order.iter().any(|x| x.ends_with(" b") || x.ends_with(" c")), "{order:?}");

    // Only what was written is recorded; a re-run converges once the cause is gone.
    let fixed: Vec<Resource> = vec![res("h1", "a", json!({"v": "a"}), &[]), b, c, d, e];
    let refreshed = refresh(&reg, &hosts, "t", &fixed, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &fixed, &refreshed).unwrap();
    assert_eq!(plan.changes.len(), 3, "{:?}", plan.changes);
    let report = engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    assert_eq!(report.failed(), 0);
    let refreshed = refresh(&reg, &hosts, "t", &fixed, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    assert!(engine::make_plan(&reg, "t", &fixed, &refreshed).unwrap().is_empty());
}

#[tokio::test]
async fn deletes_run_in_reverse_dependency_order() {
    let Fixture { _dir, log, reg, hosts } = fixture(false, true);
    let a = res("h1", "a", json!({"v": "a"}), &[]);
    let b = res("h1", "b", json!({"v": "b"}), std::slice::from_ref(&a.address));
    let keep = res("h1", "keep", json!({"v": "k"}), &[]);
    let all = vec![a, b, keep.clone()];
    let refreshed =
        refresh(&reg, &hosts, "t", &all, &Default::default(), &Matcher::default(), &Default::default()).await.unwrap();
    let plan = engine::make_plan(&reg, "t", &all, &refreshed).unwrap();
    engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    log.lock().unwrap().clear();

    let only_keep = vec![keep];
    let refreshed =
        refresh(&reg, &hosts, "t", &only_keep, &Default::default(), &Matcher::default(), &Default::default())
            .await
            .unwrap();
    assert_eq!(refreshed.orphans.len(), 2);
    let plan = engine::make_plan(&reg, "t", &only_keep, &refreshed).unwrap();
    assert_eq!(plan.count(Action::Delete), 2);
    engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["Delete b".to_string(), "Delete a".to_string()]);
    let refreshed =
        refresh(&reg, &hosts, "t", &only_keep, &Default::default(), &Matcher::default(), &Default::default())
            .await
            .unwrap();
    assert!(refreshed.orphans.is_empty());
}

/// Changes that stand alone (`beside` in their spec) wait for each other at a barrier: they pass it only
/// if all of them run at once. The others count who else is in flight on the host when they run.
struct Beside {
    barrier: Arc<tokio::sync::Barrier>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    seen_by_alone: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl Provider for Beside {
    fn name(&self) -> &'static str {
        "par"
    }
    async fn read(&self, _cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        Ok(vec![None; resources.len()])
    }
    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        Ok(Change::compare(address.clone(), desired, actual, false))
    }
    fn runs_beside_others(&self, change: &Change) -> bool {
        change.after.as_ref().is_some_and(|s| s.get("beside").is_some())
    }
    async fn apply(&self, _cx: &Context, change: &Change) -> Result<(), Error> {
        use std::sync::atomic::Ordering;
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if self.runs_beside_others(change) {
            self.barrier.wait().await;
        } else {
            self.seen_by_alone.lock().unwrap().push(n);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn changes_that_stand_alone_run_side_by_side_and_the_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(Beside {
        barrier: Arc::new(tokio::sync::Barrier::new(4)),
        in_flight: Default::default(),
        seen_by_alone: Default::default(),
    });
    let mut reg = Registry::empty();
    reg.add(provider.clone());
    let hosts = Hosts::new(&env(dir.path()), dir.path(), Default::default());
    let mut desired: Vec<Resource> = (0..4)
        .map(|i| {
            Resource::new(Address::new("par", "file", Some("h1"), format!("f{i}")), json!({"beside": true})).unwrap()
        })
        .collect();
    // The others come after the first of them (a writer queued among the readers would hold back the
    // readers behind it, and the barrier would never open: that order is tokio's fair RwLock's, not a bug).
    let first = desired[0].address.clone();
    desired.extend((0..3).map(|i| {
        let mut r = Resource::new(Address::new("par", "conf", Some("h1"), format!("c{i}")), json!({})).unwrap();
        r.depends_on = vec![first.clone()];
        r
    }));
    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    // The four pass the barrier only together; if they ran one at a time this would never finish.
    let report =
        tokio::time::timeout(std::time::Duration::from_secs(60), engine::apply(&reg, &hosts, &plan, &|_, _| {}))
            .await
            .expect("the changes that stand alone did not run side by side")
            .unwrap();
    assert_eq!(report.failed(), 0);
    assert_eq!(
        *provider.seen_by_alone.lock().unwrap(),
        vec![1, 1, 1],
        "a change that does not stand alone ran beside another"
    );
}

/// On shared infra hosts, what another environment still records is never deleted: left as it is when
/// it is already what the other needs, rewritten to the other's part when not; and what this
/// environment records is always its own part.
#[test]
fn what_others_still_record_is_left_to_them() {
    use groundwork::engine::refresh::Refreshed;
    use groundwork::engine::state::Record;
    let mut reg = Registry::empty();
    reg.add(Arc::new(Recorder { log: Arc::new(Mutex::new(Vec::new())) }));
    let same = res("h1", "same", json!({"v": "open"}), &[]);
    let differs = res("h1", "differs", json!({"v": "ours"}), &[]);
    let record = |env: &str, items: &[&Resource]| {
        let mut r = Record::new(env);
        r.shared_infra = true;
        for i in items {
            r.resources.insert(i.address.clone(), engine::state::Recorded::new(i).unwrap());
        }
        r
    };
    let theirs = res("h1", "differs", json!({"v": "theirs"}), &[]);
    let refreshed = Refreshed {
        actual: [(same.address.clone(), Some(json!("open"))), (differs.address.clone(), Some(json!("ours")))]
            .into_iter()
            .collect(),
        orphans: vec![same.clone(), differs.clone()],
        records: [("h1".to_string(), record("a", &[&same, &differs]))].into_iter().collect(),
        others: [("h1".to_string(), vec![record("b", &[&same, &theirs])])].into_iter().collect(),
        shared_infra: true,
        lock: None,
        lock_tokens: Default::default(),
        records_to_mend: Default::default(),
        answers: Default::default(),
        from_batches_only: false,
    };
    let plan = engine::make_plan(&reg, "a", &[], &refreshed).unwrap();
    assert_eq!(plan.count(Action::Delete), 0, "{:?}", plan.changes);
    assert_eq!(plan.release.len(), 1);
    assert_eq!(plan.release[0].change.address, same.address);
    assert_eq!(plan.release[0].recorded(), None, "dropped from a's record");
    assert_eq!(plan.changes.len(), 1);
    let c = &plan.changes[0];
    assert_eq!(c.change.address, differs.address);
    assert_eq!(c.change.after, Some(json!({"v": "theirs"})), "what b needs is written");
    assert_eq!(c.recorded(), None);
    assert!(!plan.is_converged());

    // Desired by a and recorded by b the same way: nothing to write, and a records its own part.
    let refreshed = Refreshed { orphans: vec![], records: Default::default(), ..refreshed };
    let plan = engine::make_plan(&reg, "a", std::slice::from_ref(&same), &refreshed).unwrap();
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.adopt.len(), 1);
    assert_eq!(plan.adopt[0].recorded(), Some(&json!({"v": "open"})));
    assert_eq!(plan.adopt[0].shared.as_ref().map(|s| s.with.clone()), Some(vec!["b".to_string()]));
    // Recorded by a in a form b cannot merge with (before the hosts were shared): recorded again.
    let old_form = res("h1", "same", json!({"v": "open", "written": "whole"}), &[]);
    let refreshed = Refreshed {
        records: [("h1".to_string(), record("a", &[&old_form]))].into_iter().collect(),
        others: Default::default(),
        ..refreshed
    };
    let plan = engine::make_plan(&reg, "a", std::slice::from_ref(&same), &refreshed).unwrap();
    assert!(plan.changes.is_empty() && plan.adopt.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.rerecord.len(), 1);
    assert_eq!(plan.rerecord[0].recorded(), Some(&json!({"v": "open"})));
    assert!(!plan.is_converged());
    let refreshed = Refreshed {
        others: [("h1".to_string(), vec![record("b", &[&same, &theirs])])].into_iter().collect(),
        ..refreshed
    };
    // b's record predates its sharing the host: b owns it whole, and nothing is merged with it.
    let mut whole = record("b", &[&same]);
    whole.shared_infra = false;
    let alone = Refreshed { others: [("h1".to_string(), vec![whole])].into_iter().collect(), ..refreshed };
    let err = engine::make_plan(&reg, "a", std::slice::from_ref(&same), &alone).unwrap_err().to_string();
    assert!(err.contains("b owns it whole") && err.contains("apply b with shared_infra: true first"), "{err}");
    let refreshed = Refreshed { others: alone.others.clone(), ..alone };
    let refreshed = Refreshed {
        others: [("h1".to_string(), vec![record("b", &[&same, &theirs])])].into_iter().collect(),
        ..refreshed
    };
    // Declared differently from b: an error naming both, nothing planned.
    let err = engine::make_plan(&reg, "a", std::slice::from_ref(&differs), &refreshed).unwrap_err().to_string();
    assert!(err.contains("shared by environments a and b"), "{err}");
}

/// A daemon's files: written one at a time, their reloads left to one activation for all that were
/// written together (`reload` in the spec). A spec with `reload_fails` makes that activation fail.
struct Reloader {
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Provider for Reloader {
    fn name(&self) -> &'static str {
        "rl"
    }
    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        read_values(cx, resources, "/rl").await
    }
    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        Ok(diff_value(address, desired, actual))
    }
    fn activation_deferred(&self, change: &Change) -> bool {
        change.after.as_ref().is_some_and(|s| s.get("reload").is_some())
    }
    async fn write(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let a = &change.address;
        self.log.lock().unwrap().push(format!("write {}", a.name));
        let v = change.after.as_ref().unwrap()["v"].as_str().unwrap().as_bytes().to_vec();
        cx.transport(a)?.write_file(&format!("/rl/{}", a.name), &v, &Default::default()).await.map_err(|e| e.at(a))
    }
    async fn activate(&self, _cx: &Context, changes: &[&Change]) -> Result<(), Error> {
        let names: Vec<&str> = changes.iter().map(|c| c.address.name.as_str()).collect();
        self.log.lock().unwrap().push(format!("activate {}", names.join(",")));
        match changes.iter().any(|c| c.after.as_ref().is_some_and(|s| s.get("reload_fails").is_some())) {
            true => Err(Error::failed(&changes[0].address, "the reload failed")),
            false => Ok(()),
        }
    }
    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        self.write(cx, change).await?;
        self.activate(cx, &[change]).await
    }
}

fn reloaded(host: &str, name: &str, spec: Value, deps: &[Address]) -> Resource {
    let mut r = Resource::new(Address::new("rl", "file", Some(host), name), spec).unwrap();
    r.depends_on = deps.to_vec();
    r
}

#[tokio::test]
async fn a_daemon_s_files_written_together_reload_once_and_what_needs_the_reload_waits_for_it() {
    let Fixture { _dir, log, reg, hosts } = fixture(true, true);
    // Three zones, the configuration that lists them, and a service (another provider) that needs
    // the daemon to have loaded them all; h2's daemon is another group.
    let zones: Vec<Resource> =
        (1..=3).map(|i| reloaded("h1", &format!("z{i}"), json!({"v": format!("z{i}"), "reload": true}), &[])).collect();
    let zone_addrs: Vec<Address> = zones.iter().map(|z| z.address.clone()).collect();
    let conf = reloaded("h1", "conf", json!({"v": "conf", "reload": true}), &zone_addrs);
    let svc = res("h1", "svc", json!({"v": "up"}), std::slice::from_ref(&conf.address));
    let other = reloaded("h2", "o", json!({"v": "o", "reload": true}), &[]);
    let mut desired = zones.clone();
    desired.extend([conf.clone(), svc.clone(), other]);

    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    let report = engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    assert_eq!(report.failed(), 0, "{:?}", report.outcomes);
    let order = log.lock().unwrap().clone();
    let activations: Vec<&String> = order.iter().filter(|l| l.starts_with("activate")).collect();
    assert_eq!(activations.len(), 2, "one activation per daemon: {order:?}");
    let h1 = activations.iter().find(|l| !l.ends_with(" o")).unwrap();
    let mut covered: Vec<&str> = h1.trim_start_matches("activate ").split(',').collect();
    covered.sort();
    assert_eq!(covered, ["conf", "z1", "z2", "z3"], "{order:?}");
    let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
    assert!(pos("write conf") < pos(h1), "{order:?}");
    assert!(pos(h1) < pos("Create svc"), "the service started before its daemon reloaded: {order:?}");

    // Nothing left to do.
    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    assert!(engine::make_plan(&reg, "t", &desired, &refreshed).unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_activation_fails_every_change_it_covered_and_skips_what_needs_them() {
    let Fixture { _dir, log, reg, hosts } = fixture(true, true);
    let z1 = reloaded("h1", "z1", json!({"v": "z1", "reload": true}), &[]);
    let z2 = reloaded("h1", "z2", json!({"v": "z2", "reload": true, "reload_fails": true}), &[]);
    let svc = res("h1", "svc", json!({"v": "up"}), &[z1.address.clone(), z2.address.clone()]);
    let apart = res("h2", "apart", json!({"v": "a"}), &[]);
    let desired = vec![z1.clone(), z2.clone(), svc.clone(), apart.clone()];

    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    let finished = Mutex::new(Vec::new());
    let on_progress = |a: &Address, p: engine::apply::Progress<'_>| {
        if let engine::apply::Progress::Finished(_) = p {
            finished.lock().unwrap().push(a.clone());
        }
    };
    let report = engine::apply(&reg, &hosts, &plan, &on_progress).await.unwrap();
    let outcome = |addr: &Address| report.outcomes.iter().find(|(x, _, _)| x == addr).unwrap().2.clone();
    for z in [&z1, &z2] {
        assert!(matches!(outcome(&z.address), Outcome::Failed(m) if m.contains("the reload failed")), "{z:?}");
    }
    assert!(matches!(outcome(&svc.address), Outcome::Skipped(_)));
    assert_eq!(outcome(&apart.address), Outcome::Applied);
    let order = log.lock().unwrap().clone();
    assert_eq!(order.iter().filter(|l| l.starts_with("activate")).count(), 1, "{order:?}");
    assert!(!order.contains(&"Create svc".to_string()), "{order:?}");
    // Each change is reported finished once.
    let mut seen = finished.into_inner().unwrap();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((n, seen.len()), (4, 4));
    // Not recorded as applied: the next plan writes them again.
    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let again = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    assert!(again.changes.iter().any(|c| c.change.address == svc.address), "{:?}", again.changes);
}

#[tokio::test]
async fn a_change_of_the_same_daemon_that_activates_on_its_own_waits_for_the_shared_activation() {
    let Fixture { _dir, log, reg, hosts } = fixture(true, false);
    let z1 = reloaded("h1", "z1", json!({"v": "z1", "reload": true}), &[]);
    let z2 = reloaded("h1", "z2", json!({"v": "z2", "reload": true}), &[]);
    // A key: its own reload, right after its write (not deferred); it needs the zones loaded.
    let key = reloaded("h1", "key", json!({"v": "key"}), &[z1.address.clone(), z2.address.clone()]);
    let desired = vec![z1, z2, key];
    let refreshed = refresh(&reg, &hosts, "t", &desired, &Default::default(), &Matcher::default(), &Default::default())
        .await
        .unwrap();
    let plan = engine::make_plan(&reg, "t", &desired, &refreshed).unwrap();
    let report = engine::apply(&reg, &hosts, &plan, &|_, _| {}).await.unwrap();
    assert_eq!(report.failed(), 0);
    let order = log.lock().unwrap().clone();
    let pos = |s: &str| order.iter().position(|x| x == s).unwrap_or_else(|| panic!("{s} not in {order:?}"));
    let shared = order.iter().position(|x| x == "activate z1,z2" || x == "activate z2,z1").expect("one activation");
    assert!(shared < pos("write key"), "{order:?}");
    assert!(pos("write key") < pos("activate key"), "{order:?}");
}

/// Counts its diffs, and warns of each resource it finds in sync.
struct Counted {
    diffs: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Provider for Counted {
    fn name(&self) -> &'static str {
        "rec"
    }
    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        read_values(cx, resources, "/rec").await
    }
    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        self.diffs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut change = diff_value(address, desired, actual);
        if change.action == Action::NoOp {
            change.warnings.push("checked".into());
        }
        Ok(change)
    }
    async fn apply(&self, _: &Context, _: &Change) -> Result<(), Error> {
        Ok(())
    }
}

/// A plan of the same desired resources diffs again only what is observed otherwise than when it was
/// last found in sync, and says the same: notes, adoptions, changes.
#[tokio::test]
async fn a_remembered_plan_diffs_again_only_what_was_observed_otherwise() {
    use std::sync::atomic::Ordering::SeqCst;
    let Fixture { _dir, hosts, .. } = fixture(false, false);
    let diffs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut reg = Registry::empty();
    reg.add(Arc::new(Counted { diffs: diffs.clone() }));
    let on_h1 = |name: &str, v: &str| {
        std::fs::create_dir_all(_dir.path().join("h1/rec")).unwrap();
        std::fs::write(_dir.path().join("h1/rec").join(name), v).unwrap();
    };
    on_h1("a", "1");
    on_h1("b", "2");
    let desired = vec![
        res("h1", "a", json!({"v": "1"}), &[]),
        res("h1", "b", json!({"v": "2"}), &[]),
        res("h1", "c", json!({"v": "3"}), &[]),
    ];
    let json = |p: &engine::Plan| serde_json::to_value(p).unwrap();

    let mut memo = engine::InSync::default();
    let first = remembered_plan(&reg, &hosts, &desired, &mut memo).await;
    assert_eq!(diffs.load(SeqCst), 3);
    assert_eq!(memo.len(), 2, "a and b are in sync");
    assert_eq!(first.notes, ["rec.thing[h1:a]: checked", "rec.thing[h1:b]: checked"]);
    assert_eq!((first.count(Action::Create), first.adopt.len()), (1, 2), "c to make; a and b to record");

    let second = remembered_plan(&reg, &hosts, &desired, &mut memo).await;
    assert_eq!(diffs.load(SeqCst), 4, "only c, which was not in sync, is diffed again");
    assert_eq!(json(&second), json(&first));

    on_h1("b", "two");
    let third = remembered_plan(&reg, &hosts, &desired, &mut memo).await;
    assert_eq!(diffs.load(SeqCst), 6, "b observed otherwise, and c");
    assert_eq!(third.count(Action::Update), 1);
    assert_eq!(third.notes, ["rec.thing[h1:a]: checked"]);
    assert_eq!(memo.len(), 1);
    // Without a memory every resource is diffed.
    remembered_plan(&reg, &hosts, &desired, &mut engine::InSync::default()).await;
    assert_eq!(diffs.load(SeqCst), 9);
}

async fn remembered_plan(
    reg: &Registry,
    hosts: &Hosts,
    desired: &[Resource],
    memo: &mut engine::InSync,
) -> engine::Plan {
    let refreshed =
        refresh(reg, hosts, "t", desired, &Default::default(), &Matcher::default(), &Default::default()).await.unwrap();
    engine::make_plan_remembering(reg, "t", desired, &refreshed, memo).unwrap()
}
