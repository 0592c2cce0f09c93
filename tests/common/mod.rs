#![allow(dead_code)]
//! Shared helpers for integration tests.

pub mod drift_loop;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of environments/demo in a temp dir (its hosts are directories under .hosts/).
pub fn demo_env() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/demo/environment.yaml");
    std::fs::copy(src, dir.path().join("environment.yaml")).expect("copy demo env");
    dir
}

/// Path of a file on a local stand-in host.
pub fn host_file(env: &Path, host: &str, path: &str) -> PathBuf {
    env.join(".hosts").join(host).join(path.trim_start_matches('/'))
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the groundwork binary.
pub fn groundwork(args: &[&str]) -> Run {
    groundwork_env(args, &[], &[])
}

/// Run the groundwork binary with these environment variables set and those removed.
pub fn groundwork_env(args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_groundwork"));
    c.args(args).env("NO_COLOR", "1").env_remove("GROUNDWORK_ENV");
    for u in unset {
        c.env_remove(u);
    }
    c.envs(set.iter().copied());
    let out = c.output().expect("run groundwork");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
/// Check a JSON document against one of the published schemas (docs/schemas/NAME.schema.json); the plan
/// schema is registered so that the drift and events schemas can refer to it. Returns the errors.
pub fn schema_errors(name: &str, doc: &serde_json::Value) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schemas");
    let read = |n: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{n}.schema.json"))).expect("schema file"))
            .expect("schema JSON")
    };
    let plan = read("plan");
    let registry = jsonschema::Registry::new()
        .add("https://groundwork.invalid/schemas/plan.schema.json", plan)
        .expect("register the plan schema")
        .prepare()
        .expect("prepare the registry");
    let schema = read(name);
    let validator = jsonschema::options().with_registry(&registry).build(&schema).expect("a valid schema");
    validator.iter_errors(doc).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// groundwork with a pull secret in `PULL_SECRET`, checked never to appear in what it prints (logs at
/// `extra` verbosity included): the installer tests' one way to run it.
pub fn groundwork_with_secret(args: &[&str], pull_secret: &str, sentinel: &str, extra: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(extra);
    let verbose = extra.iter().any(|a| a.starts_with("-v"));
    let mut set = vec![("PULL_SECRET", pull_secret)];
    if verbose {
        set.push(("RUST_LOG", "trace"));
    }
    let run = groundwork_env(&all, &set, &[]);
    assert!(!run.stdout.contains(sentinel) && !run.stderr.contains(sentinel), "the pull secret leaked: {args:?}");
    run
}

pub mod lab;
