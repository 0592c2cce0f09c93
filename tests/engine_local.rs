//! Engine and CLI against local stand-in hosts (directories), no SSH.

mod common;

use common::{demo_env, groundwork, host_file};
use groundwork::ops::Workspace;
use groundwork::render;

const IPXE: &str = "/usr/share/nginx/html/pxeboot.ipxe";

#[test]
fn plan_apply_then_plan_is_empty() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let first = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(first.code, 2, "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("Plan: 23 to add, 0 to change, 0 to destroy."), "{}", first.stdout);

    let apply = groundwork(&["apply", e, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("Verified: a fresh plan of what was applied shows no changes."));
    let chain = std::fs::read_to_string(host_file(env.path(), "bastion", IPXE)).unwrap();
    assert!(chain.contains("chain http://10.88.0.10/ipxe/${mac:hexhyp}.ipxe"), "{chain}");
    let w1 =
        std::fs::read_to_string(host_file(env.path(), "bastion", "/usr/share/nginx/html/ipxe/52-54-00-00-00-31.ipxe"))
            .unwrap();
    assert!(w1.contains("coreos.inst.ignition_url=http://10.88.0.10/worker.ign"), "{w1}");

    let again = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."));
}

#[test]
fn apply_without_terminal_or_approval_refuses() {
    let env = demo_env();
    let run = groundwork(&["apply", env.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("stdin is not a terminal"), "{}", run.stderr);
    // Refused before planning: no plan in the log.
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!host_file(env.path(), "bastion", IPXE).exists());
}

#[tokio::test]
async fn plan_text_and_json_snapshots() {
    let env = demo_env();
    let ws = Workspace::open(env.path()).unwrap();
    let plan = ws.plan().await.unwrap();
    // Zone serials are dated: keep the day out of the snapshot.
    insta::with_settings!({ filters => vec![(r"\b20\d{6}00\b", "[SERIAL]")] }, {
        insta::assert_snapshot!("demo_plan_text", render::text::plan(&plan, false));
        insta::assert_snapshot!("demo_plan_json", render::json::plan(&plan));
    });
}

#[test]
fn drift_on_a_host_shows_as_a_unified_diff() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    let f = host_file(env.path(), "bastion", IPXE);
    let text = std::fs::read_to_string(&f).unwrap().replace("|| goto unknown", "|| goto elsewhere");
    std::fs::write(&f, text).unwrap();
    let plan = groundwork(&["plan", e, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains(&format!("~ files.file[bastion:{IPXE}]")), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("-chain http://10.88.0.10/ipxe/${mac:hexhyp}.ipxe || goto elsewhere\n")
            && plan.stdout.contains("+chain http://10.88.0.10/ipxe/${mac:hexhyp}.ipxe || goto unknown\n"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("Plan: 0 to add, 1 to change, 0 to destroy."));
}

#[test]
fn only_recorded_files_are_deleted() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    let hand_made = host_file(env.path(), "bastion", "/usr/share/nginx/html/index.html");
    std::fs::write(&hand_made, "hand made\n").unwrap();
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.replace("    - { path: rhcos-metal.raw.gz, content: \"image stand-in\\n\" }\n", ""))
        .unwrap();
    // The image is no longer served: the iPXE URL check must say so before anything is touched.
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 1);
    assert!(plan.stderr.contains("rhcos-metal.raw.gz"), "{}", plan.stderr);
    // Point the boot image at another served file: now the old image is an orphan.
    let text = std::fs::read_to_string(&yaml).unwrap().replace("image: rhcos-metal.raw.gz", "image: rhcos-kernel");
    std::fs::write(&yaml, text).unwrap();
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("- files.file[bastion:/usr/share/nginx/html/rhcos-metal.raw.gz]"), "{}", plan.stdout);
    assert!(plan.stdout.contains("6 to change, 1 to destroy."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("index.html"));
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    assert!(!host_file(env.path(), "bastion", "/usr/share/nginx/html/rhcos-metal.raw.gz").exists());
    assert!(hand_made.exists());
}

#[test]
fn saved_plan_applies_exactly_and_refuses_when_stale() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let planfile = env.path().join("plan.json");
    let p = planfile.to_str().unwrap();
    assert_eq!(groundwork(&["plan", e, "--out", p]).code, 0);
    let shown = groundwork(&["show", p]);
    assert!(shown.stdout.contains("Plan: 23 to add"), "{}", shown.stdout);
    // Someone writes one of the files by hand between plan and apply: the plan was made against absence.
    let f = host_file(env.path(), "bastion", IPXE);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, "#!ipxe\n").unwrap();
    let stale = groundwork(&["apply", p]);
    assert_eq!(stale.code, 1);
    assert!(stale.stderr.contains("stale") && stale.stderr.contains(IPXE), "{}", stale.stderr);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "#!ipxe\n");
    // A fresh plan applies.
    assert_eq!(groundwork(&["plan", e, "--out", p]).code, 0);
    let ok = groundwork(&["apply", p]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(std::fs::read_to_string(&f).unwrap().contains("|| goto unknown"));
}

#[test]
fn graph_is_dot() {
    let env = demo_env();
    let g = groundwork(&["graph", env.path().to_str().unwrap()]);
    assert_eq!(g.code, 0);
    assert!(g.stdout.starts_with("digraph groundwork {"));
    assert!(g.stdout.contains(&format!("\"files.file[bastion:{IPXE}]\"")));
}

#[test]
fn expired_ignition_is_refused_unless_allowed() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let ign = env.path().join("worker.ign");
    std::fs::write(&ign, "{\"ignition\":{\"version\":\"3.1.0\"}}\n").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 3600);
    std::fs::File::options().write(true).open(&ign).unwrap().set_modified(old).unwrap();
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        "    - { path: worker.ign, content: \"{\\\"ignition\\\":{\\\"version\\\":\\\"3.1.0\\\"}}\\n\", kind: ignition }",
        "    - { path: worker.ign, source: worker.ign, kind: ignition }",
    );
    assert!(text.contains("source: worker.ign"));
    std::fs::write(&yaml, &text).unwrap();
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 1);
    assert!(plan.stderr.contains("refusing to serve worker.ign: it is 30 h old"), "{}", plan.stderr);
    std::fs::write(
        &yaml,
        text.replace(
            "  docroot: /usr/share/nginx/html",
            "  docroot: /usr/share/nginx/html\n  allow_expired_ignition: true",
        ),
    )
    .unwrap();
    let plan = groundwork(&["plan", e]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("warning: worker.ign is 30 h old: its certificates expired"), "{}", plan.stdout);
    // The ignition file's content never shows.
    assert!(!plan.stdout.contains("3.1.0"));
}

#[test]
fn target_and_exclude_scope_a_run_and_keep_dependencies() {
    let env = demo_env();
    let e = env.path().to_str().unwrap();
    let plan = groundwork(&["plan", e, "--target", "bind.stanzas*"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stderr.contains("note: including bind.zone[ns1:demo.lab.test]: bind.stanzas"), "{}", plan.stderr);
    assert!(plan.stdout.contains("Plan: 3 to add, 0 to change, 0 to destroy."), "{}", plan.stdout);
    let apply = groundwork(&["apply", e, "--auto-approve", "--exclude", "files.*"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(!host_file(env.path(), "bastion", IPXE).exists(), "excluded files were not written");
    assert!(host_file(env.path(), "ns1", "/var/named/demo.lab.test.zone").exists());
    // Out of scope orphans stay: drop a served file from the environment, plan only bind: no delete.
    assert_eq!(groundwork(&["apply", e, "--auto-approve"]).code, 0);
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace("image: rhcos-metal.raw.gz", "image: rhcos-kernel")
            .replace("    - { path: rhcos-metal.raw.gz, content: \"image stand-in\\n\" }\n", ""),
    )
    .unwrap();
    let scoped = groundwork(&["plan", e, "--target", "bind.*"]);
    assert!(scoped.stdout.contains("No changes."), "{}", scoped.stdout);
    let all = groundwork(&["plan", e]);
    assert!(all.stdout.contains("- files.file[bastion:/usr/share/nginx/html/rhcos-metal.raw.gz]"), "{}", all.stdout);
    // A narrowed run says it may be incomplete; a pattern that matches nothing is an error naming it.
    assert!(scoped.stderr.contains("warning: the run is narrowed by --target/--exclude"), "{}", scoped.stderr);
    let typo = groundwork(&["plan", e, "--target", "bind.zones*", "--exclude", "haproxy.*"]);
    assert_eq!(typo.code, 1, "{}{}", typo.stdout, typo.stderr);
    assert!(typo.stderr.contains("--target \"bind.zones*\" matches no resource"), "{}", typo.stderr);
    assert!(typo.stdout.is_empty(), "{}", typo.stdout);
}

/// A drift loop keeps its expansion while the local files it read are unchanged, and expands again as
/// soon as one changes: a source re-pointed, or rewritten (then not kept while the rewrite is recent
/// enough that another could hide in the same timestamp tick).
#[tokio::test]
async fn a_kept_expansion_lasts_exactly_while_its_local_files_do() {
    use sha2::{Digest, Sha256};
    let env = demo_env();
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let entry = r#"{ path: rhcos-kernel, content: "kernel stand-in\n" }"#;
    assert!(text.contains(entry));
    // Sources changed long ago (files of this repository), so that a read of them is believed.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = text.replace(entry, "{ path: rhcos-kernel, source: kernel.bin }");
    std::fs::write(&yaml, text.replace("files:\n", &format!("files:\n  source_dirs: [{}]\n", repo.display()))).unwrap();
    let (a, b) = (repo.join("Cargo.lock"), repo.join("rustfmt.toml"));
    let source = env.path().join("kernel.bin");
    std::os::unix::fs::symlink(&a, &source).unwrap();
    let digest = |p: &std::path::Path| hex::encode(Sha256::digest(std::fs::read(p).unwrap()));
    let planned = |plan: &groundwork::engine::Plan| {
        let c = plan.changes.iter().find(|c| c.change.address.to_string().ends_with("/rhcos-kernel]")).unwrap();
        serde_json::to_string(&c.change.after).unwrap()
    };

    let mut ws = Workspace::open(env.path()).unwrap();
    ws.keep_expansions();
    let first = ws.plan().await.unwrap();
    assert!(planned(&first).contains(&digest(&a)));
    assert_eq!(ws.expansions(), 0, "the first plan uses what opening expanded");
    let second = ws.plan().await.unwrap();
    assert_eq!(ws.expansions(), 1);
    let third = ws.plan().await.unwrap();
    assert_eq!(ws.expansions(), 1, "kept: nothing read changed");
    assert_eq!(render::json::plan(&third), render::json::plan(&second));

    // Re-pointed to another file: expanded again, and kept (that file changed long ago).
    std::fs::remove_file(&source).unwrap();
    std::os::unix::fs::symlink(&b, &source).unwrap();
    let repointed = ws.plan().await.unwrap();
    assert_eq!(ws.expansions(), 2);
    assert!(planned(&repointed).contains(&digest(&b)), "{}", planned(&repointed));
    ws.plan().await.unwrap();
    assert_eq!(ws.expansions(), 2);

    // Rewritten in place: expanded again, and again on the next plan, while the write is recent.
    std::fs::remove_file(&source).unwrap();
    let written = std::time::Instant::now();
    std::fs::write(&source, "a new kernel\n").unwrap();
    let rewritten = ws.plan().await.unwrap();
    assert!(planned(&rewritten).contains(&digest(&source)), "{}", planned(&rewritten));
    assert_eq!(ws.expansions(), 3);
    ws.plan().await.unwrap();
    // (Unless the machine stalled for a second: the write is then old enough to be believed.)
    if written.elapsed() < std::time::Duration::from_secs(1) {
        assert_eq!(ws.expansions(), 4, "a read of a file written a moment ago is not kept");
    }
}

/// A drift loop's plan (a kept expansion, no lock tokens) is the one the plan before made while every
/// host answers the same: a file changed on a host, or a plan that wants lock tokens, is planned afresh.
#[tokio::test]
async fn a_plan_only_looked_at_is_remembered_while_every_host_answers_the_same() {
    use groundwork::engine::refresh::Asks;
    let env = demo_env();
    let mut ws = Workspace::open(env.path()).unwrap();
    ws.keep_expansions();
    let looked_at = Asks { no_lock_tokens: true, ..Default::default() };
    async fn looked(ws: &Workspace, asks: &Asks) -> groundwork::engine::Plan {
        ws.plan_asking(&ws.scope, asks).await.unwrap().0
    }
    looked(&ws, &looked_at).await; // what opening expanded
    let made = looked(&ws, &looked_at).await;
    assert_eq!(ws.plans_remembered(), 0);
    assert!(!made.is_empty());
    let again = looked(&ws, &looked_at).await;
    assert_eq!(ws.plans_remembered(), 1);
    assert_eq!(render::json::plan(&again), render::json::plan(&made));

    // A plan that wants lock tokens is made, never remembered.
    ws.plan().await.unwrap();
    assert_eq!(ws.plans_remembered(), 1);

    // A host's file changed (the served iPXE script written by hand): planned afresh, and it shows.
    // Its plan read the file's content besides the batch (to show the difference): not remembered.
    let ipxe = host_file(env.path(), "bastion", IPXE);
    std::fs::create_dir_all(ipxe.parent().unwrap()).unwrap();
    std::fs::write(&ipxe, "#!ipxe\nexit\n").unwrap();
    let changed = looked(&ws, &looked_at).await;
    assert_ne!(render::json::plan(&changed), render::json::plan(&made));
    looked(&ws, &looked_at).await;
    assert_eq!(ws.plans_remembered(), 1);
    // Gone again: the plan of before, made afresh, then remembered.
    std::fs::remove_file(&ipxe).unwrap();
    let back = looked(&ws, &looked_at).await;
    assert_eq!(ws.plans_remembered(), 1);
    assert_eq!(render::json::plan(&back), render::json::plan(&made));
    looked(&ws, &looked_at).await;
    assert_eq!(ws.plans_remembered(), 2);
}
