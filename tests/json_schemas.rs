//! Every machine-readable output against its published JSON Schema (docs/schemas), on the demo
//! environment (local stand-ins): plan, show, drift, verify, validate, and apply's event stream. The
//! schemas are strict (no undocumented field), so a field added in code without the docs fails here.

mod common;

use common::{demo_env, groundwork, schema_errors};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn conforms(schema: &str, doc: &Value) {
    let errors = schema_errors(schema, doc);
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{doc:#}");
}

#[test]
fn plan_show_drift_and_verify_documents_match_their_schemas() {
    let env = demo_env();
    let dir = env.path().to_str().unwrap();
    let plan = groundwork(&["plan", dir, "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let doc = json(&plan.stdout);
    assert_eq!(doc["groundwork_version"], env!("CARGO_PKG_VERSION"));
    conforms("plan", &doc);
    assert!(!doc["changes"].as_array().unwrap().is_empty());

    // The schema is not vacuous: a missing field, an unknown one and a bad action are refused.
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("summary");
    assert!(!schema_errors("plan", &broken).is_empty());
    let mut broken = doc.clone();
    broken["surprise"] = Value::Bool(true);
    assert!(!schema_errors("plan", &broken).is_empty());
    let mut broken = doc.clone();
    broken["changes"][0]["action"] = Value::String("explode".into());
    assert!(!schema_errors("plan", &broken).is_empty());

    let saved = env.path().join("saved.plan");
    let out = groundwork(&["plan", dir, "--out", saved.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = groundwork(&["show", saved.to_str().unwrap(), "--json"]);
    conforms("plan", &json(&show.stdout));

    let drift = groundwork(&["drift", dir, "--json"]);
    assert_eq!(drift.code, 2, "{}", drift.stderr);
    let doc = json(&drift.stdout);
    conforms("drift", &doc);
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("drifted");
    assert!(!schema_errors("drift", &broken).is_empty());

    let verify = groundwork(&["verify", dir, "--json"]);
    conforms("verify", &json(&verify.stdout));
}

#[test]
fn validate_reports_match_the_schema_and_locate_each_problem() {
    let env = demo_env();
    let dir = env.path().to_str().unwrap();
    let ok = groundwork(&["validate", dir, "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let doc = json(&ok.stdout);
    conforms("validate", &doc);
    assert_eq!(doc["valid"], true);

    // A YAML error: one diagnostic at its file, line and column.
    let yaml = env.path().join("environment.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let (line_no, line) = text.lines().enumerate().find(|(_, l)| l.contains("bastion:")).unwrap();
    let bad = text.replacen(line, &line.replacen("bastion:", "bastion: [", 1), 1);
    std::fs::write(&yaml, bad).unwrap();
    let run = groundwork(&["validate", dir, "--json"]);
    assert_eq!(run.code, 1);
    let doc = json(&run.stdout);
    conforms("validate", &doc);
    let d = &doc["diagnostics"][0];
    assert!(d["file"].as_str().unwrap().ends_with("environment.yaml"), "{d}");
    assert!(d["line"].as_u64().unwrap() > line_no as u64, "{d}");
    assert_eq!(d["rule"], "yaml");

    // Rule violations: every finding is its own diagnostic with its rule; --format github annotates each.
    let macs: Vec<&str> = text.split("mac: ").skip(1).map(|r| r.split([',', ' ', '}', '\n']).next().unwrap()).collect();
    assert!(macs.len() >= 2);
    std::fs::write(&yaml, text.replacen(macs[1], macs[0], 1)).unwrap();
    let run = groundwork(&["validate", dir, "--json"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let doc = json(&run.stdout);
    conforms("validate", &doc);
    let diags = doc["diagnostics"].as_array().unwrap();
    assert!(
        diags.iter().any(
            |d| d["file"].as_str().is_some_and(|f| f.ends_with("environment.yaml")) && d["line"].as_u64().is_some()
        ),
        "{doc:#}"
    );
    let gh = groundwork(&["validate", dir, "--format", "github"]);
    assert_eq!(gh.code, 1);
    let lines: Vec<&str> = gh.stdout.lines().collect();
    assert_eq!(lines.len(), diags.len(), "{}", gh.stdout);
    assert!(
        lines.iter().all(|l| l.starts_with("::error file=") && l.contains(",line=") && l.contains("::")),
        "{}",
        gh.stdout
    );
}

#[test]
fn apply_events_match_the_schema_and_tell_the_whole_story() {
    let env = demo_env();
    let dir = env.path().to_str().unwrap();
    let run = groundwork(&["apply", dir, "--json", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let events: Vec<Value> = run.stdout.lines().map(json).collect();
    for e in &events {
        conforms("events", e);
    }
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"lock_taken"));
    assert_eq!(&names[names.len() - 2..], &["lock_released", "finished"]);
    let plan = events.iter().find(|e| e["event"] == "plan").unwrap();
    let planned: Vec<&str> =
        plan["plan"]["changes"].as_array().unwrap().iter().map(|c| c["address"].as_str().unwrap()).collect();
    // Each planned change started, then was done, exactly once.
    for address in &planned {
        let at = |kind: &str| events.iter().position(|e| e["event"] == kind && e["address"] == *address);
        let (started, done) = (at("change_started").unwrap(), at("change_done").unwrap());
        assert!(started < done, "{address}");
        assert_eq!(events.iter().filter(|e| e["event"] == "change_done" && e["address"] == *address).count(), 1);
    }
    assert!(names.contains(&"verified"));
    assert_eq!(events.last().unwrap()["ok"], true);
    // Nothing but events on stdout.
    assert!(run.stdout.lines().all(|l| l.starts_with('{')));

    // A refused apply still ends its stream with a finished event that says why.
    let run = groundwork(&["apply", dir, "--json", "--auto-approve", "--target", "no-such-*"]);
    assert_eq!(run.code, 1);
    let last = json(run.stdout.lines().last().unwrap());
    conforms("events", &last);
    assert_eq!(last["ok"], false);
    assert!(last["error"].as_str().unwrap().contains("no-such-*"), "{last}");
}

/// `--junit FILE`: drift makes each resource read a test case (failed when drifted), verify each probe
/// and service; the XML is read back with Python's parser as a CI system would.
#[test]
fn junit_reports_count_what_drifted_and_what_was_probed() {
    let env = demo_env();
    let dir = env.path().to_str().unwrap();
    let xml = env.path().join("drift.xml");
    let drift = groundwork(&["drift", dir, "--json", "--junit", xml.to_str().unwrap()]);
    assert_eq!(drift.code, 2);
    let drifted = json(&drift.stdout)["drifted"].as_u64().unwrap();
    let counts = |file: &std::path::Path| -> (u64, u64, u64) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot().find('testsuite'); \
                          print(s.get('tests'), s.get('failures'), s.get('skipped'), len(s.findall('testcase')))",
            ])
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let n: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert_eq!(n.len(), 4, "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(n[0], n[3], "tests attribute = test cases");
        (n[0], n[1], n[2])
    };
    let (tests, failures, _) = counts(&xml);
    assert_eq!(failures, drifted);
    assert!(tests >= failures && drifted > 0);
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains("drifted: apply would create it"), "{text}");

    // After apply nothing drifts: the same cases, none failed.
    assert_eq!(groundwork(&["apply", dir, "--auto-approve"]).code, 0);
    assert_eq!(groundwork(&["drift", dir, "--junit", xml.to_str().unwrap()]).code, 0);
    let (after, failures, _) = counts(&xml);
    assert_eq!((after, failures), (tests, 0));

    let vxml = env.path().join("verify.xml");
    let verify = groundwork(&["verify", dir, "--json", "--junit", vxml.to_str().unwrap()]);
    let doc = json(&verify.stdout);
    let (tests, failures, skipped) = counts(&vxml);
    let probes = doc["probes"].as_array().unwrap().len() as u64;
    let services = doc["services"].as_array().unwrap().len() as u64;
    assert_eq!(tests, probes + services);
    assert_eq!(failures, doc["failed"].as_u64().unwrap());
    assert_eq!(skipped, doc["skipped"].as_u64().unwrap());
}
