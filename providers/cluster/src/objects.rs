//! Pure object logic: which fields of a live object groundwork manages (the shape of the desired
//! object), and what differs. Server-populated fields (status, managedFields, resourceVersion, defaults
//! inside objects groundwork does not set) are outside the shape, so they never show as drift.

use base64::Engine;
use groundwork_sdk::secret::{Encoding, SecretRef, Secrets};
use groundwork_sdk::Detail;
use serde_json::{Map, Value};

/// The part of `actual` that `shape` covers: maps recurse into the keys `shape` has; anything else
/// (scalars, lists: atomic as in server-side apply's default) is taken whole.
pub fn project(actual: &Value, shape: &Value) -> Value {
    match (actual, shape) {
        (Value::Object(a), Value::Object(s)) => {
            let mut out = Map::new();
            for (k, sv) in s {
                if let Some(av) = a.get(k) {
                    out.insert(k.clone(), project(av, sv));
                }
            }
            Value::Object(out)
        }
        _ => actual.clone(),
    }
}

/// Field-level differences as display lines (`spec.replicas: 2 → 3`), sorted by path.
pub fn field_details(desired: &Value, actual: &Value) -> Vec<Detail> {
    let mut out = Vec::new();
    walk("", desired, Some(actual), &mut out);
    out
}

fn walk(path: &str, desired: &Value, actual: Option<&Value>, out: &mut Vec<Detail>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match (desired, actual) {
        // A secret reference is one value (digest and size), shown as such.
        (d, Some(a)) if SecretRef::from_value(d).is_some() && d != a => {
            out.push(Detail::modify(format!("{path}: {} → {}", short(a), short(d))))
        }
        (d, Some(_)) if SecretRef::from_value(d).is_some() => {}
        (Value::Object(d), Some(Value::Object(a))) => {
            for (k, dv) in d {
                walk(&join(k), dv, a.get(k), out);
            }
        }
        (d, None) => out.push(Detail::add(format!("{path}: {}", short(d)))),
        (d, Some(a)) if d != a => out.push(Detail::modify(format!("{path}: {} → {}", short(a), short(d)))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    if let Some(r) = SecretRef::from_value(v) {
        return r.short();
    }
    let s = v.to_string();
    if s.len() > 160 {
        format!(
            "{}…",
            &s[..s.char_indices().take_while(|(i, _)| *i < 157).last().map(|(i, c)| i + c.len_utf8()).unwrap_or(0)]
        )
    } else {
        s
    }
}

/// A core v1 Secret: its `data` and `stringData` are secret content.
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

fn reference(bytes: Vec<u8>, secrets: Option<&Secrets>) -> Value {
    let r = match secrets {
        Some(s) => s.keep(bytes),
        None => SecretRef::of(&bytes),
    };
    serde_json::to_value(r.encoded(Encoding::Base64)).unwrap_or(Value::Null)
}

/// A desired Secret as groundwork carries it: `stringData` folded into `data` (as the API server does;
/// `stringData` wins), every value a reference to content kept in `secrets`. Err names the key whose
/// `data` value is not base64 (never the value).
pub fn conceal_desired_secret(object: &mut Value, secrets: &Secrets) -> Result<(), String> {
    let Some(obj) = object.as_object_mut() else { return Ok(()) };
    let mut content: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    if let Some(Value::Object(data)) = obj.remove("data") {
        for (k, v) in data {
            let text = v.as_str().ok_or_else(|| format!("data.{k} is not a string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| format!("data.{k} is not base64 (put plain text under stringData)"))?;
            content.insert(k, bytes);
        }
    }
    if let Some(Value::Object(data)) = obj.remove("stringData") {
        for (k, v) in data {
            let text = v.as_str().ok_or_else(|| format!("stringData.{k} is not a string"))?;
            content.insert(k, text.as_bytes().to_vec());
        }
    }
    if !content.is_empty() {
        let data: Map<String, Value> = content.into_iter().map(|(k, b)| (k, reference(b, Some(secrets)))).collect();
        obj.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

/// A live Secret's `data` (base64 strings) as references, so observed state carries digests only.
pub fn conceal_live_secret(object: &mut Value) {
    let Some(Value::Object(data)) = object.get_mut("data") else { return };
    for v in data.values_mut().filter(|v| SecretRef::from_value(v).is_none()) {
        let bytes = v
            .as_str()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t.trim()).ok())
            .unwrap_or_else(|| v.to_string().into_bytes());
        *v = reference(bytes, None);
    }
    // Write-only on the server; never read back, but never carried either.
    if let Some(obj) = object.as_object_mut() {
        obj.remove("stringData");
    }
}

/// Key under which `read` reports fields groundwork still owns on the live object but no longer sets.
pub const RELEASE_KEY: &str = "groundworkReleases";

/// Leaf field paths an object sets (maps recurse; scalars and lists are leaves), without its identity.
pub fn leaf_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(x, &if at.is_empty() { k.clone() } else { format!("{at}.{k}") }, out);
                }
            }
            Value::Object(_) => {}
            _ => out.push(at.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out.retain(|p| !matches!(p.as_str(), "apiVersion" | "kind" | "metadata.name" | "metadata.namespace"));
    out
}

/// Leaf paths a manager owns according to `metadata.managedFields` (FieldsV1): a path ends where a
/// node has no `f:` children (list items and set members belong to their list).
pub fn owned_paths(live: &Value, manager: &str) -> Vec<String> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        let children: Vec<(&String, &Value)> =
            v.as_object().map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect()).unwrap_or_default();
        if children.is_empty() {
            if !at.is_empty() {
                out.push(at.to_string());
            }
            return;
        }
        for (k, x) in children {
            let k = &k[2..];
            walk(x, &if at.is_empty() { k.to_string() } else { format!("{at}.{k}") }, out);
        }
    }
    let mut out = Vec::new();
    for entry in live["metadata"]["managedFields"].as_array().into_iter().flatten() {
        if entry["manager"] == manager && entry["operation"] == "Apply" {
            walk(&entry["fieldsV1"], "", &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Fields `manager` owns on `live` that `desired` no longer sets: the next apply releases them.
pub fn released(live: &Value, desired: &Value, manager: &str) -> Vec<String> {
    let wanted = leaf_paths(desired);
    owned_paths(live, manager)
        .into_iter()
        .filter(|p| !matches!(p.as_str(), "metadata.name" | "metadata.namespace" | "apiVersion" | "kind"))
        .filter(|p| {
            !wanted.iter().any(|w| w == p || w.starts_with(&format!("{p}.")) || p.starts_with(&format!("{w}.")))
        })
        .collect()
}

/// `apiVersion` split into (group, version); the core group is "".
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Identity of an object as used in addresses: `Kind[.group]/[namespace/]name`.
pub fn identity(object: &Value) -> Option<String> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let (group, _) = group_version(api_version);
    let head = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) => format!("{head}/{ns}/{name}"),
        None => format!("{head}/{name}"),
    })
}

/// Objects groundwork must never delete when they leave the inventory: cluster singletons that the
/// installer or an operator owns. For those, removal releases groundwork's fields instead.
pub fn released_not_deleted(object: &Value) -> bool {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, _) = group_version(api_version);
    kind == "Node"
        || kind == "Namespace"
        || (group.ends_with(".openshift.io") && (group.starts_with("config.") || group.contains("operator.")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_only_managed_fields() {
        let actual = json!({
            "apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
            "metadata": {"name": "default", "namespace": "openshift-ingress-operator", "resourceVersion": "42",
                         "managedFields": [{"manager": "groundwork"}], "labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 2, "httpErrorCodePages": {"name": ""}},
            "status": {"availableReplicas": 2}
        });
        let shape = json!({
            "apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
            "metadata": {"name": "default", "namespace": "openshift-ingress-operator", "labels": {"a": "1"}},
            "spec": {"replicas": 3}
        });
        let p = project(&actual, &shape);
        assert_eq!(
            p,
            json!({"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
                   "metadata": {"name": "default", "namespace": "openshift-ingress-operator", "labels": {"a": "1"}},
                   "spec": {"replicas": 2}})
        );
        let d = field_details(&shape, &p);
        assert_eq!(d, vec![Detail::modify("spec.replicas: 2 → 3")]);
    }

    #[test]
    fn lists_are_atomic_and_missing_fields_are_additions() {
        let shape = json!({"spec": {"taints": [{"key": "infra", "effect": "NoSchedule"}], "x": {"y": 1}}});
        let actual = json!({"spec": {"taints": [{"key": "infra", "effect": "NoSchedule", "timeAdded": null}]}});
        let p = project(&actual, &shape);
        assert_eq!(p["spec"]["taints"][0]["timeAdded"], Value::Null);
        let d = field_details(&shape, &p);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|x| x.text == "spec.x: {\"y\":1}"));
        assert!(d.iter().any(|x| x.text.starts_with("spec.taints: ")));
        assert!(field_details(&shape, &project(&shape, &shape)).is_empty());
    }

    #[test]
    fn fields_owned_but_no_longer_set_are_released() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "groundwork", "operation": "Apply", "fieldsV1": {
                "f:metadata": {"f:labels": {"f:infra": {}}},
                "f:spec": {".": {}, "f:replicas": {}, "f:nodePlacement": {"f:tolerations": {}}}}},
            {"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {"f:phase": {}}}}
        ]}});
        assert_eq!(
            owned_paths(&live, "groundwork"),
            ["metadata.labels.infra", "spec.nodePlacement.tolerations", "spec.replicas"]
        );
        let desired = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"infra": ""}},
                             "spec": {"nodePlacement": {"tolerations": []}}});
        assert_eq!(released(&live, &desired, "groundwork"), ["spec.replicas"]);
        assert!(released(&live, &desired, "someone").is_empty());
    }

    #[test]
    fn secrets_are_carried_by_reference_desired_and_live_alike() {
        let store = Secrets::default();
        let mut desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"a": "U0VOVElORUwtREFUQQ==", "b": "b2xk"}, "stringData": {"b": "SENTINEL-STRING"}});
        conceal_desired_secret(&mut desired, &store).unwrap();
        let text = desired.to_string();
        assert!(!text.contains("SENTINEL") && !text.contains("U0VOVElORUwtREFUQQ"), "{text}");
        assert!(desired.get("stringData").is_none());
        assert_eq!(store.len(), 2);
        // The live object, as the API server returns it, reads as the same references.
        let mut live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"a": "U0VOVElORUwtREFUQQ==", "b": "U0VOVElORUwtU1RSSU5H"}});
        conceal_live_secret(&mut live);
        assert_eq!(live["data"], desired["data"]);
        let shown = groundwork_sdk::secret::reveal(&desired, &store).unwrap();
        assert_eq!(shown["data"]["b"], "U0VOVElORUwtU1RSSU5H");
        let mut bad = json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!SENTINEL"}});
        let err = conceal_desired_secret(&mut bad, &store).unwrap_err();
        assert!(err.contains("data.k") && !err.contains("SENTINEL"), "{err}");
    }

    #[test]
    fn identities_and_release_policy() {
        let ic = json!({"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
                        "metadata": {"name": "default", "namespace": "openshift-ingress-operator"}});
        assert_eq!(
            identity(&ic).unwrap(),
            "IngressController.operator.openshift.io/openshift-ingress-operator/default"
        );
        assert!(released_not_deleted(&ic));
        let reg = json!({"apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config", "metadata": {"name": "cluster"}});
        assert!(released_not_deleted(&reg));
        let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fs"}});
        assert_eq!(identity(&sc).unwrap(), "StorageClass.storage.k8s.io/fs");
        assert!(!released_not_deleted(&sc));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});
        assert_eq!(identity(&cm).unwrap(), "ConfigMap/n/c");
        assert_eq!(group_version("v1"), ("", "v1"));
    }
}
