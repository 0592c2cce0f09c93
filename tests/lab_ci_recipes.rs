//! The CI recipes of docs/ci.md, run as written against the lab: every shell step of the GitLab and the
//! GitHub pipelines (plan → apply → drift), with the lab's key and known_hosts as the CI secrets, in a
//! fresh HOME. Steps that are the CI vendor's own (`uses:` actions, artifacts) are not run; the work
//! directory stands for the artifact passed between jobs.

mod common;

use common::lab::Lab;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 230;

/// The first ```yaml block after a heading.
fn recipe(heading: &str) -> Value {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ci.md")).unwrap();
    let after = &doc[doc.find(heading).unwrap_or_else(|| panic!("no {heading} in docs/ci.md"))..];
    let start = after.find("```yaml\n").unwrap() + "```yaml\n".len();
    let block = &after[start..start + after[start..].find("\n```").unwrap()];
    // Merge keys (`<<: *ssh`) are applied by the YAML stack.
    groundwork_sdk::yaml::from_str(block).unwrap()
}

struct Runner<'a> {
    lab: &'a Lab,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
    summary: std::path::PathBuf,
}

impl<'a> Runner<'a> {
    fn new(lab: &'a Lab) -> Self {
        // The environment names no key or known_hosts: the pipeline's installed ones must be what works.
        lab.drop_env_lines(&["identity:", "known_hosts:"]);
        let home = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let summary = work.path().join("step-summary.md");
        Runner { lab, home, work, summary }
    }

    /// Run one step's shell text as the CI runner would (bash, stop at the first failure).
    fn step(&self, script: &str, extra_env: &[(String, String)]) -> std::process::Output {
        let bin = Path::new(env!("CARGO_BIN_EXE_groundwork")).parent().unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new("bash");
        c.args(["-e", "-o", "pipefail", "-c", script])
            .current_dir(self.work.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.home.path())
            .env("GROUNDWORK_ENV", self.lab.env_dir())
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            // GitLab's CI variables of the recipe.
            .env("DEPLOY_KEY", lab_secret(self, "DEPLOY_KEY"))
            .env("KNOWN_HOSTS", lab_secret(self, "KNOWN_HOSTS"));
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn must(&self, job: &str, script: &str, extra_env: &[(String, String)]) {
        let out = self.step(script, extra_env);
        assert!(
            out.status.success(),
            "{job}: `{script}` failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A step's `env`, with `${{ secrets.X }}` resolved to the lab's stand-in for that secret.
fn step_env(r: &Runner, step: &Value) -> Vec<(String, String)> {
    let Some(map) = step.get("env").and_then(Value::as_object) else { return Vec::new() };
    map.iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap();
            let k = k.to_string();
            match v.strip_prefix("${{ secrets.").and_then(|s| s.strip_suffix(" }}")) {
                Some(secret) => (k, lab_secret(r, secret)),
                None => (k, v.to_string()),
            }
        })
        .collect()
}

fn lab_secret(r: &Runner, name: &str) -> String {
    let file = match name {
        "DEPLOY_KEY" => "id_ed25519",
        "KNOWN_HOSTS" => "known_hosts",
        other => panic!("the recipe uses a secret the lab does not stand in for: {other}"),
    };
    std::fs::read_to_string(r.lab.state().join(file)).unwrap()
}

#[test]
fn the_github_recipe_runs_as_written() {
    let lab = Lab::up(BASE, &NEXT);
    let r = Runner::new(&lab);
    let wf = recipe("## GitHub Actions");
    for job in ["plan", "apply", "drift"] {
        let steps = wf["jobs"][job]["steps"].as_array().unwrap_or_else(|| panic!("job {job}"));
        let mut ran = 0;
        for s in steps {
            let Some(script) = s.get("run").and_then(Value::as_str) else { continue };
            r.must(job, script, &step_env(&r, s));
            ran += 1;
        }
        assert!(ran >= 2, "job {job} ran {ran} steps");
    }
    // The summary holds the plan as one fenced block.
    let summary = std::fs::read_to_string(&r.summary).unwrap();
    assert!(summary.starts_with("```diff\n") && summary.trim_end().ends_with("```"), "{summary}");
    assert!(summary.contains("haproxy.config[lb1:/etc/haproxy/haproxy.cfg]"), "{summary}");
    // drift ran after apply: a JUnit report with every resource passed.
    let junit = std::fs::read_to_string(r.work.path().join("drift.xml")).unwrap();
    assert!(junit.contains(r#"failures="0""#) && !junit.contains(r#"tests="0""#), "{junit}");
}

#[test]
fn the_gitlab_recipe_runs_as_written() {
    let lab = Lab::up(BASE, &NEXT);
    let r = Runner::new(&lab);
    let ci = recipe("## GitLab CI");
    for job in ["plan", "apply", "drift"] {
        let j = &ci[job];
        let lines: Vec<&str> = ["before_script", "script"]
            .iter()
            .flat_map(|k| j.get(*k).and_then(Value::as_array).into_iter().flatten())
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(lines.len() >= 2, "job {job}");
        for line in lines {
            r.must(job, line, &[]);
        }
    }
    let drift: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.work.path().join("drift.json")).unwrap()).unwrap();
    assert_eq!(drift["drifted"], 0);
    assert!(r.work.path().join("drift.xml").exists());
    assert!(r.work.path().join("plan-review.json").exists());
}
