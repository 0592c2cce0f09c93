//! Pipelines on the lab: saved plans refused when stale, the apply lock, drift reports, healing and
//! the metrics endpoint scraped by a real HTTP client.

mod common;

use common::groundwork;
use common::lab::Lab;
use groundwork::engine::lock;
use groundwork::ops::Workspace;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 90;
const ZONE: &str = "/var/named/lab.example.test.zone";

fn apply(lab: &Lab) {
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

fn hand_edit_m1(lab: &Lab) {
    lab.ssh_ok("ns1", &format!("sed -i 's/{}/{}/' {ZONE}", lab.ip(21), lab.ip(99)));
}

#[test]
fn a_saved_plan_is_refused_after_a_hand_edit() {
    let lab = Lab::up(BASE, &NEXT);
    let planfile = lab.env_dir().join("plan.json");
    let p = planfile.to_str().unwrap();
    assert_eq!(groundwork(&["plan", lab.env_str(), "--out", p]).code, 0);
    apply(&lab);
    // Made against empty hosts; they are not empty any more.
    let stale = groundwork(&["apply", p]);
    assert_eq!(stale.code, 1);
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("bind.zone[ns1:lab.example.test]"),
        "{}",
        stale.stderr
    );

    // A plan made now, then a hand edit on ns1 before it is applied: refused, naming the zone.
    let edit = lab.env_dir().join("nodes.yaml");
    let text = std::fs::read_to_string(&edit).unwrap();
    std::fs::write(&edit, text.replace(&format!("ip: {} }}", lab.ip(33)), &format!("ip: {} }}", lab.ip(36)))).unwrap();
    assert_eq!(groundwork(&["plan", lab.env_str(), "--out", p]).code, 0);
    hand_edit_m1(&lab);
    let stale = groundwork(&["apply", p]);
    assert_eq!(stale.code, 1);
    assert!(stale.stderr.contains("bind.zone[ns1:lab.example.test]"), "{}", stale.stderr);
    assert!(!stale.stderr.contains("dhcpd"), "only what changed is named: {}", stale.stderr);
    assert!(lab.ssh_ok("ns1", &format!("cat {ZONE}")).contains(&lab.ip(99)), "nothing was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_reports_the_holder_or_waits_for_it() {
    let lab = Lab::up(BASE, &NEXT);
    let ws = Workspace::open(lab.env_dir()).unwrap();
    // Another runner holds the lock (taken through the same code an apply uses).
    let held = ws.lock("apply (the other pipeline)", None).await.unwrap();
    let id = held.info.id.clone();
    let blocked = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(blocked.code, 1);
    assert!(blocked.stderr.contains(&format!("lock {id} held by")), "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("apply (the other pipeline)") && blocked.stderr.contains("force-unlock"),
        "{}",
        blocked.stderr
    );
    assert!(!lab.ssh_ok("ns1", "ls /var/named").contains("lab.example.test.zone"), "nothing applied");
    // A plan meanwhile says that someone is applying (read in the same batch, no extra round trip).
    let plan = groundwork(&["plan", lab.env_str()]);
    assert!(
        plan.stdout.contains(&format!("Note: another run holds the apply lock (lock {id} held by")),
        "{}",
        plan.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&groundwork(&["plan", lab.env_str(), "--json"]).stdout).unwrap();
    assert!(json["locked_by"].as_str().unwrap_or_default().contains("apply (the other pipeline)"), "{json}");
    // Every host has the same lock: the holder, its pid and when.
    let on_lb = lab.ssh_ok("lb1", "cat /var/lib/groundwork/lab.lock");
    assert!(on_lb.contains(&id) && on_lb.contains(&format!("\"pid\":{}", std::process::id())), "{on_lb}");

    // With --lock-timeout the second apply waits and goes on once the first releases.
    let waiting = std::thread::spawn({
        let env = lab.env_str().to_string();
        move || groundwork(&["apply", &env, "--auto-approve", "--lock-timeout", "60s"])
    });
    // Release once the waiter is certainly polling: its process exists and the lock is still ours.
    for _ in 0..50 {
        if std::process::Command::new("pgrep").args(["-f", "lock-timeout 60s"]).output().unwrap().status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    held.release(&ws.hosts).await;
    let done = waiting.join().unwrap();
    assert_eq!(done.code, 0, "{}{}", done.stdout, done.stderr);
    assert!(!done.stdout.contains("another run holds"), "its own lock is not another run's: {}", done.stdout);
    assert!(lab.ssh("lb1", "test -e /var/lib/groundwork/lab.lock").status.code() == Some(1), "released after apply");
}

/// `apply` acts on the plan it made before taking the lock only if nobody took the lock in between (and
/// no older groundwork rewrote a record): the lock's tokens, read before anything else of the plan,
/// are what the lock finds when it is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_stands_under_the_lock_only_if_nobody_took_it_since_it_was_read() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    let ws = Workspace::open(lab.env_dir()).unwrap();
    let names = ws.host_names();
    let take = || lock::acquire(&ws.hosts, &names, "lab", "apply (test)", None, lock::HEARTBEAT);

    let plan = ws.plan().await.unwrap();
    assert_eq!(plan.lock_tokens.keys().collect::<Vec<_>>(), ["bastion", "lb1", "ns1"]);
    let held = take().await.unwrap();
    assert!(held.nothing_since(&plan.lock_tokens), "nobody took the lock in between");
    held.release(&ws.hosts).await;

    // Another run took the lock and let it go after the plan was read.
    let plan = ws.plan().await.unwrap();
    take().await.unwrap().release(&ws.hosts).await;
    let held = take().await.unwrap();
    assert!(!held.nothing_since(&plan.lock_tokens), "another run took the lock in between");
    held.release(&ws.hosts).await;

    // A record rewritten without the lock being counted (an older groundwork): the plan does not stand.
    let plan = ws.plan().await.unwrap();
    lab.ssh_ok("ns1", "f=/var/lib/groundwork/lab.state.json; cp -p $f $f.new && mv $f.new $f");
    let held = take().await.unwrap();
    assert!(!held.nothing_since(&plan.lock_tokens), "the record was rewritten in between");

    // A plan made while the lock is held has no token: nothing it read can stand for the lock holder.
    let plan = ws.plan().await.unwrap();
    assert!(plan.lock_tokens.is_empty(), "{:?}", plan.lock_tokens);
    held.release(&ws.hosts).await;

    // The lock's count cannot be written: the lock is not taken (a taking nobody counted would let
    // another run's plan stand).
    lab.ssh_ok("lb1", "mkdir -p /var/lib/groundwork/lab.lock.serial.new");
    let refused = take().await.err().expect("the lock is refused").to_string();
    assert!(refused.contains("cannot count the lock"), "{refused}");
    for h in ["bastion", "lb1", "ns1"] {
        assert_eq!(lab.ssh(h, "test -e /var/lib/groundwork/lab.lock").status.code(), Some(1), "{h} keeps no lock");
    }
    lab.ssh_ok("lb1", "rmdir /var/lib/groundwork/lab.lock.serial.new");
    apply(&lab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_killed_job_is_stale_and_force_unlock_removes_it() {
    let lab = Lab::up(BASE, &NEXT);
    let ws = Workspace::open(lab.env_dir()).unwrap();
    // A job that died holding the lock: its pid no longer exists on this runner.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let mut info = lock::LockInfo::new("lab", "apply (killed)");
    info.pid = pid;
    let json = serde_json::to_string(&info).unwrap();
    for h in ["bastion", "lb1", "ns1"] {
        lab.ssh_ok(
            h,
            &format!("mkdir -p /var/lib/groundwork && printf '%s\\n' '{json}' > /var/lib/groundwork/lab.lock"),
        );
    }
    let blocked = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(blocked.code, 1);
    assert!(blocked.stderr.contains("STALE: that process is gone"), "{}", blocked.stderr);
    let wrong = groundwork(&["force-unlock", "0000", lab.env_str()]);
    assert_eq!(wrong.code, 1, "a wrong id removes nothing");
    let unlock = groundwork(&["force-unlock", &info.id, lab.env_str()]);
    assert_eq!(unlock.code, 0, "{}", unlock.stderr);
    assert!(unlock.stdout.contains("from 3 host(s)"), "{}", unlock.stdout);
    assert!(lock::current(&ws.hosts, &ws.host_names(), "lab").await.unwrap().is_none());
    apply(&lab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_touched_and_one_from_a_vanished_runner_is_stale() {
    let lab = Lab::up(BASE, &NEXT);
    let ws = Workspace::open(lab.env_dir()).unwrap();
    let path = "/var/lib/groundwork/lab.lock";
    // Held with a short heartbeat: its file, aged by hand on every host, is touched again.
    let names = ws.host_names();
    let beat = std::time::Duration::from_millis(200);
    let held = lock::acquire(&ws.hosts, &names, "lab", "apply (heartbeat)", None, beat).await.unwrap();
    for h in ["bastion", "lb1", "ns1"] {
        lab.ssh_ok(h, &format!("touch -d '20 minutes ago' {path}"));
    }
    let age = |h: &str| {
        let out = lab.ssh_ok(h, &format!("echo $(( $(date +%s) - $(stat -c %Y {path}) ))"));
        out.trim().parse::<u64>().unwrap()
    };
    // Aged to 20 minutes, seen young again: only the holder's heartbeat touches it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ["bastion", "lb1", "ns1"].iter().any(|h| age(h) > 60) {
        assert!(std::time::Instant::now() < deadline, "the holder did not touch its lock");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let shown = lock::current(&ws.hosts, &names, "lab").await.unwrap().unwrap();
    assert!(shown.describe().contains("last heartbeat") && !shown.describe().contains("STALE"), "{}", shown.describe());
    held.release(&ws.hosts).await;
    assert_eq!(lab.ssh("lb1", &format!("test -e {path}")).status.code(), Some(1));

    // A job on another runner died holding the lock 10 minutes ago: its pid cannot be checked from
    // here, but its heartbeat stopped.
    let mut info = lock::LockInfo::new("lab", "apply (runner gone)");
    info.runner = "ci-runner-7".into();
    let json = serde_json::to_string(&info).unwrap();
    for h in ["bastion", "lb1", "ns1"] {
        lab.ssh_ok(
            h,
            &format!(
                "mkdir -p /var/lib/groundwork && printf '%s\\n' '{json}' > {path} && touch -d '10 minutes ago' {path}"
            ),
        );
    }
    let blocked = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(blocked.code, 1);
    assert!(blocked.stderr.contains("on ci-runner-7"), "{}", blocked.stderr);
    assert!(blocked.stderr.contains("STALE: no heartbeat for 6"), "{}", blocked.stderr);
    assert!(blocked.stderr.contains(&format!("force-unlock {}", info.id)), "{}", blocked.stderr);
}

#[test]
fn drift_is_reported_healed_and_exported_as_metrics() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    assert_eq!(groundwork(&["drift", lab.env_str()]).code, 0);
    hand_edit_m1(&lab);
    let drift = groundwork(&["drift", lab.env_str()]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("Drift: 1 resource(s) differ"), "{}", drift.stdout);
    assert!(
        drift.stdout.contains(&format!("~ A m1.lab.example.test {} → {}", lab.ip(99), lab.ip(21))),
        "{}",
        drift.stdout
    );
    let json = groundwork(&["drift", lab.env_str(), "--json"]);
    assert_eq!(json.code, 2);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["drifted"], 1);
    assert_eq!(doc["changes"][0]["address"], "bind.zone[ns1:lab.example.test]");

    // The textfile for node_exporter.
    let prom = lab.env_dir().join("drift.prom");
    assert_eq!(groundwork(&["drift", lab.env_str(), "--metrics-file", prom.to_str().unwrap()]).code, 2);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("groundwork_drift_resources{environment=\"lab\",provider=\"bind\"} 1"), "{text}");

    // The long-running mode, scraped by curl.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["drift", lab.env_str(), "--every", "2s", "--listen", &format!("127.0.0.1:{port}")])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut scraped = String::new();
    for _ in 0..300 {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .unwrap();
        scraped = String::from_utf8_lossy(&out.stdout).into_owned();
        // Two ticks: the counter counts across them (one process, one registry).
        if scraped.contains("groundwork_drift_checks_total{environment=\"lab\"} 2") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let health = std::process::Command::new("curl")
        .args(["-s", "--max-time", "2", &format!("http://127.0.0.1:{port}/healthz")])
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(scraped.contains("groundwork_drift_checks_total{environment=\"lab\"} 2"), "{scraped}");
    assert!(scraped.contains("groundwork_drifted_resources{environment=\"lab\"} 1"), "{scraped}");
    assert!(scraped.contains("groundwork_drift_last_check_success{environment=\"lab\"} 1"), "{scraped}");
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n");

    // Heal: the drift-correcting apply, then no drift.
    let heal = groundwork(&["drift", lab.env_str(), "--heal"]);
    assert_eq!(heal.code, 0, "{}{}", heal.stdout, heal.stderr);
    assert!(heal.stdout.contains("Healed"), "{}", heal.stdout);
    assert_eq!(lab.dig(&["m1.lab.example.test"]), lab.ip(21));
    assert_eq!(groundwork(&["drift", lab.env_str()]).code, 0);
}

#[test]
fn verify_catches_a_deleted_ptr_and_an_unreadable_served_file() {
    let lab = Lab::up(BASE, &NEXT);
    apply(&lab);
    let ok = groundwork(&["verify", lab.env_str()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains(", 0 failed"), "{}", ok.stdout);

    // Someone deletes w1's PTR by hand and reloads; a served file loses its read permission.
    let rev = format!("/var/named/{}.88.10.in-addr.arpa.zone", lab.index);
    lab.ssh_ok("ns1", &format!("sed -i '/^31\\t/d' {rev} && rndc -k /etc/rndc.key reload >/dev/null"));
    lab.ssh_ok("bastion", "chmod 000 /usr/share/nginx/html/pxeboot.ipxe");
    let bad = groundwork(&["verify", lab.env_str(), "--json"]);
    assert_eq!(bad.code, 2, "{}{}", bad.stdout, bad.stderr);
    let doc: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    let failed: Vec<String> = doc["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ok"] == false)
        .map(|p| {
            format!(
                "{} {}: {}",
                p["kind"].as_str().unwrap(),
                p["target"].as_str().unwrap(),
                p["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed[0].starts_with(&format!("dns-ptr {} @ns1: answered 'nothing'", lab.ip(31))), "{failed:#?}");
    assert!(failed[0].contains("the node will register as localhost"), "{failed:#?}");
    assert!(failed[1].contains("pxeboot.ipxe: HTTP 403") && failed[1].contains("SELinux label"), "{failed:#?}");
    // Both show up as drift too, and apply repairs them.
    apply(&lab);
    assert_eq!(groundwork(&["verify", lab.env_str()]).code, 0);
}
