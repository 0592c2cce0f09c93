//! groundwork's check of served ignition (`groundwork_files::check_ignition`), held to the Ignition 3.x
//! JSON schemas vendored from coreos/ignition (tests/data/ignition/README.md): the sections each spec
//! version has, the one it requires, and real-shaped configs accepted or refused.

use groundwork_files::{check_ignition, ignition_sections};

fn schema(minor: u64) -> serde_json::Value {
    let path = format!("tests/data/ignition/v3_{minor}.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn the_sections_of_every_3x_spec_are_the_schemas() {
    for minor in 0..=5 {
        let s = schema(minor);
        let (top, inner) = ignition_sections(3, minor);
        let mut top: Vec<String> = top.into_iter().map(String::from).collect();
        top.sort();
        assert_eq!(top, keys(&s["properties"]), "3.{minor} top level");
        let mut inner: Vec<String> = inner.into_iter().map(String::from).collect();
        inner.sort();
        assert_eq!(inner, keys(&s["definitions"]["ignition"]["properties"]), "3.{minor} ignition");
        assert_eq!(s["required"], serde_json::json!(["ignition"]), "3.{minor}: only ignition is required");
        // Every section is an object in the schema, as the check requires.
        for section in s["properties"].as_object().unwrap().keys() {
            let r = s["properties"][section]["$ref"].as_str().unwrap();
            let def = &s["definitions"][r.trim_start_matches("#/definitions/")];
            assert_eq!(def["type"], "object", "3.{minor} {section}");
        }
    }
}

#[test]
fn real_shaped_configs_pass_and_others_are_named_without_their_content() {
    // What openshift-install 4.6+ writes for a master: a pointer config with the machine-config
    // server's CA embedded.
    let pointer = r#"{"ignition":{"config":{"merge":[{"source":"https://api-int.lab.example.test:22623/config/master"}]},
        "security":{"tls":{"certificateAuthorities":[{"source":"data:text/plain;charset=utf-8;base64,R1ctU0VDUkVU"}]}},
        "version":"3.1.0"}}"#;
    assert_eq!(check_ignition(pointer.as_bytes()).unwrap(), "3.1.0");
    // 4.5 and earlier: spec 2.2 (the reference install's).
    assert_eq!(check_ignition(br#"{"ignition":{"version":"2.2.0"},"networkd":{}}"#).unwrap(), "2.2.0");
    assert_eq!(
        check_ignition(br#"{"ignition":{"version":"3.5.0-experimental"},"kernelArguments":{}}"#).unwrap(),
        "3.5.0-experimental"
    );
    for (bad, says) in [
        (&b"GW-SECRET not json"[..], "not JSON (line 1, column 1)"),
        (br#"["GW-SECRET"]"#, "not a JSON object"),
        (br#"{"storage":{"files":[{"contents":{"source":"GW-SECRET"}}]}}"#, "no \"ignition\" object"),
        (br#"{"ignition":{"config":"GW-SECRET"}}"#, "no ignition.version"),
        (br#"{"ignition":{"version":"3.1"}}"#, "not MAJOR.MINOR.PATCH"),
        (br#"{"ignition":{"version":"1.0.0"}}"#, "RHCOS reads 2.x"),
        (br#"{"ignition":{"version":"3.1.0"},"storage":"GW-SECRET"}"#, "\"storage\" is not an object"),
        (br#"{"ignition":{"version":"3.1.0","security":"GW-SECRET"}}"#, "ignition.security is not an object"),
    ] {
        let e = check_ignition(bad).unwrap_err();
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("GW-SECRET"), "the content leaked into {e}");
    }
}
