//! A saved plan applies only where it was made, exactly as made: its body is digest-checked, it is bound
//! to its environment's identity (cluster and every input file), it holds exactly what the environment
//! produces, and it does not depend on the absolute path of the checkout. Local stand-in hosts.

mod common;

use common::{copy_dir, demo_env, groundwork, host_file};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

const IPXE: &str = "/usr/share/nginx/html/pxeboot.ipxe";

fn plan_to(env: &Path, out: &Path) {
    let run = groundwork(&["plan", env.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Rewrite a plan file's body with `change` and store a freshly computed body digest: what someone with
/// write access to the artifact could do.
fn forge(plan: &Path, change: impl Fn(&mut serde_json::Value)) {
    let outer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    let mut body = outer["body"].clone();
    change(&mut body);
    let body = serde_json::to_string(&body).unwrap();
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    std::fs::write(plan, format!("{{\"format_version\":2,\"body_sha256\":\"{digest}\",\"body\":{body}}}")).unwrap();
}

#[test]
fn an_edited_plan_is_refused_before_anything_is_written() {
    let env = demo_env();
    let plan = env.path().join("plan.out");
    plan_to(env.path(), &plan);
    let p = plan.to_str().unwrap();

    // Edited without care for the digest.
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replacen("goto unknown", "goto unknowx", 1)).unwrap();
    let run = groundwork(&["apply", p]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("modified after it was saved"), "{}", run.stderr);
    assert!(groundwork(&["show", p]).stderr.contains("modified after it was saved"));

    // Edited with the digest recomputed: the content is not what the environment produces.
    plan_to(env.path(), &plan);
    forge(&plan, |body| {
        for c in body["plan"]["changes"].as_array_mut().unwrap() {
            if c["address"].as_str().unwrap().ends_with("pxeboot.ipxe]") {
                let content = c["after"]["content"].as_str().unwrap().replace("goto unknown", "goto elsewhere");
                c["after"]["content"] = content.into();
            }
        }
    });
    assert!(groundwork(&["show", p]).code == 0, "a well-formed forgery renders");
    let run = groundwork(&["apply", p]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("not what the environment produces") && run.stderr.contains("pxeboot.ipxe"),
        "{}",
        run.stderr
    );
    assert!(!host_file(env.path(), "bastion", IPXE).exists(), "nothing was written");
    assert!(!host_file(env.path(), "ns1", "/var/lib/groundwork/demo.state.json").exists());

    // Unedited, it applies.
    plan_to(env.path(), &plan);
    let run = groundwork(&["apply", p]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(std::fs::read_to_string(host_file(env.path(), "bastion", IPXE)).unwrap().contains("|| goto unknown"));
}

#[test]
fn a_plan_applies_only_to_its_own_environment_unchanged() {
    let env = demo_env();
    let plan = env.path().join("plan.out");
    let p = plan.to_str().unwrap();
    plan_to(env.path(), &plan);

    // Pointed at another cluster's environment.
    let other = demo_env();
    edit(&other.path().join("environment.yaml"), "name: demo", "name: other");
    let run = groundwork(&["apply", p, "--env", other.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cluster \"demo\", not \"other\""), "{}", run.stderr);
    assert!(!host_file(other.path(), "bastion", IPXE).exists());

    // The same cluster, another inventory.
    let twin = demo_env();
    edit(&twin.path().join("environment.yaml"), "ip: 10.88.0.32", "ip: 10.88.0.33");
    let run = groundwork(&["apply", p, "--env", twin.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("environment changed since the plan was made (changed: environment.yaml)"),
        "{}",
        run.stderr
    );

    // Its own environment, after a source file changed.
    std::fs::write(env.path().join("notice.txt"), "v1\n").unwrap();
    edit(
        &env.path().join("environment.yaml"),
        "    - { path: pxeboot.ipxe,",
        "    - { path: notice.txt, source: notice.txt }\n    - { path: pxeboot.ipxe,",
    );
    plan_to(env.path(), &plan);
    std::fs::write(env.path().join("notice.txt"), "v2\n").unwrap();
    let run = groundwork(&["apply", p]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("changed: notice.txt"), "{}", run.stderr);
    assert!(!host_file(env.path(), "bastion", "/usr/share/nginx/html/notice.txt").exists());

    // Secret content edited in the environment: the plan cannot be applied either.
    plan_to(env.path(), &plan);
    edit(
        &env.path().join("environment.yaml"),
        r#"path: master.ign, content: "{"#,
        r#"path: master.ign, content: "{\"x\":1,"#,
    );
    let run = groundwork(&["apply", p]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("changed: environment.yaml"), "{}", run.stderr);
    assert!(!host_file(env.path(), "bastion", "/usr/share/nginx/html/master.ign").exists());
}

#[test]
fn a_plan_made_in_one_checkout_applies_in_another() {
    // CI job 1 checks out into one directory and plans with a relative path...
    let job1 = tempfile::tempdir().unwrap();
    let repo1 = job1.path().join("build-1234/repo");
    std::fs::create_dir_all(repo1.join("environments")).unwrap();
    let env1 = demo_env();
    copy_dir(env1.path(), &repo1.join("environments/demo"));
    std::fs::write(repo1.join("environments/demo/notice.txt"), "hello\n").unwrap();
    edit(
        &repo1.join("environments/demo/environment.yaml"),
        "    - { path: pxeboot.ipxe,",
        "    - { path: notice.txt, source: notice.txt }\n    - { path: pxeboot.ipxe,",
    );
    let artifact = job1.path().join("plan.out");
    let out = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["plan", "environments/demo", "--out", artifact.to_str().unwrap()])
        .current_dir(&repo1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&artifact).unwrap();
    assert!(!text.contains("build-1234"), "the plan names the checkout path:\n{text}");

    // ...job 2 checks out the same commit elsewhere and applies the artifact from its checkout.
    let job2 = tempfile::tempdir().unwrap();
    let repo2 = job2.path().join("build-5678/repo");
    copy_dir(&repo1, &repo2);
    let out = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["apply", artifact.to_str().unwrap()])
        .current_dir(&repo2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let served = host_file(&repo2.join("environments/demo"), "bastion", "/usr/share/nginx/html/notice.txt");
    assert_eq!(std::fs::read_to_string(served).unwrap(), "hello\n");
    assert!(!host_file(&repo1.join("environments/demo"), "bastion", IPXE).exists(), "job 1's checkout untouched");

    // From a directory where the environment is not: a clear refusal, and --env finds it.
    let out = Command::new(env!("CARGO_BIN_EXE_groundwork"))
        .args(["apply", artifact.to_str().unwrap()])
        .current_dir(job2.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--env DIR"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_plan_of_an_older_format_is_refused_by_name() {
    let env = demo_env();
    let old = env.path().join("old.plan");
    std::fs::write(&old, r#"{"env_dir": "/somewhere", "created_unix": 1, "plan": {"format_version": 1, "environment": "demo", "changes": [], "observed": {}}}"#).unwrap();
    let run = groundwork(&["apply", old.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("plan file format 1 is not supported"), "{}", run.stderr);
}
