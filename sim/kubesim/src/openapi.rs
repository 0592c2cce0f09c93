//! `/openapi/v3`: the OpenAPI v3 documents kubectl reads to validate what it sends (whether a kind's PATCH
//! takes `fieldValidation`, so that the server validates) and to `explain` a kind. One document per
//! group-version the simulator serves: a path per resource with its operations (each tagged with
//! `x-kubernetes-group-version-kind`, PATCH with its query parameters), and the kinds' schemas — core
//! kinds' from k8s-openapi (generated from Kubernetes' own OpenAPI document), OpenShift's from the
//! vendored CRDs, named as kube-apiserver names a CRD's schema (the group reversed).

use crate::api::{Resource, RESOURCES};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{json, Map, Value};

/// `api/v1`, `apis/GROUP/VERSION`: how a group-version is named in the index.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The index: where each group-version's document is.
pub fn index() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        let gv = gv_path(r.group, r.version);
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    json!({"paths": paths})
}

/// The schema name of a kind and its definitions (the kind's and everything it refers to).
fn kind_schema(r: &Resource) -> Option<(String, Map<String, Value>)> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let name = match r.kind {
        "Node" => generator.subschema_for::<Node>(),
        "ConfigMap" => generator.subschema_for::<ConfigMap>(),
        "Pod" => generator.subschema_for::<Pod>(),
        "Namespace" => generator.subschema_for::<Namespace>(),
        "Secret" => generator.subschema_for::<Secret>(),
        "PersistentVolumeClaim" => generator.subschema_for::<PersistentVolumeClaim>(),
        "CertificateSigningRequest" => generator.subschema_for::<CertificateSigningRequest>(),
        "StorageClass" => generator.subschema_for::<StorageClass>(),
        _ => {
            let set = groundwork_cluster::schema::SchemaSet::Current;
            let crds = groundwork_cluster::schema::crd_schemas(set).ok()?;
            let (group, version, kind, schema) =
                crds.into_iter().find(|(g, v, k, _)| g == r.group && v == r.version && k == r.kind)?;
            let reversed: Vec<&str> = group.split('.').rev().collect();
            let name = format!("{}.{version}.{kind}", reversed.join("."));
            return Some((name.clone(), Map::from_iter([(name, schema)])));
        }
    };
    let reference = name.as_object()?.get("$ref")?.as_str()?;
    let name = reference.rsplit('/').next()?.to_string();
    Some((name, generator.take_definitions(true)))
}

/// One group-version's document, or `None` for one the simulator does not serve.
pub fn document(gv: &str, server_version: &str) -> Option<Value> {
    let resources: Vec<&Resource> = RESOURCES.iter().filter(|r| gv_path(r.group, r.version) == gv).collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in resources {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let (name, definitions) = kind_schema(r)?;
        schemas.extend(definitions);
        if let Some(s) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
        let body =
            json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
        let query =
            |n: &str, what: &str| json!({"name": n, "in": "query", "schema": {"type": "string"}, "description": what});
        let operation = |action: &str, extra: Vec<Value>| {
            let mut op = json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                                "responses": {"200": {"description": "OK", "content": body["content"]}}});
            if !extra.is_empty() {
                op["parameters"] = Value::Array(extra);
            }
            op
        };
        let write_params = || {
            vec![
                query("dryRun", "When present, indicates that modifications should not be persisted."),
                query("fieldManager", "A name associated with the actor or entity that is making these changes."),
                query("fieldValidation", "How the server handles unknown or duplicate fields: Ignore, Warn or Strict."),
            ]
        };
        let mut patch_params = write_params();
        patch_params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean"},
                                 "description": "Force is going to \"force\" Apply requests."}));
        let base =
            if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
        let scope = if r.namespaced { "/namespaces/{namespace}" } else { "" };
        let path_param = |n: &str| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}});
        let mut params = vec![path_param("name")];
        if r.namespaced {
            params.push(path_param("namespace"));
        }
        let mut item = json!({"get": operation("get", vec![]), "put": operation("put", write_params()),
                              "patch": operation("patch", patch_params), "delete": operation("delete", vec![]),
                              "parameters": params.clone()});
        item["patch"]["requestBody"] = json!({"content": {"application/apply-patch+yaml": body["content"]["application/json"],
                                                          "application/merge-patch+json": body["content"]["application/json"]}});
        paths.insert(format!("{base}{scope}/{}/{{name}}", r.plural), item);
        let mut collection = json!({"get": operation("list", vec![]), "post": operation("post", write_params())});
        if r.namespaced {
            collection["parameters"] = json!([path_param("namespace")]);
        }
        paths.insert(format!("{base}{scope}/{}", r.plural), collection);
    }
    Some(json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": server_version},
                "paths": paths, "components": {"schemas": schemas}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_group_version_has_a_document_with_its_kinds() {
        let index = index();
        for (gv, entry) in index["paths"].as_object().unwrap() {
            assert_eq!(entry["serverRelativeURL"], format!("/openapi/v3/{gv}"));
            let doc = document(gv, "v1.33.5").unwrap_or_else(|| panic!("{gv}"));
            for r in RESOURCES.iter().filter(|r| gv_path(r.group, r.version) == *gv) {
                let kinds: Vec<&Value> = doc["components"]["schemas"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == r.kind)
                    .collect();
                assert_eq!(kinds.len(), 1, "{gv} {}", r.kind);
                assert!(kinds[0]["properties"]["metadata"].is_object(), "{gv} {}", r.kind);
            }
            // Every PATCH says the server validates (kubectl then leaves validation to it).
            for (path, item) in doc["paths"].as_object().unwrap() {
                if let Some(patch) = item.get("patch") {
                    let names: Vec<&str> =
                        patch["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
                    assert!(names.contains(&"fieldValidation"), "{path}");
                }
            }
        }
        assert!(document("apis/unknown.example/v1", "v1").is_none());
        let core = document("api/v1", "v1").unwrap();
        let node = &core["components"]["schemas"]["io.k8s.api.core.v1.Node"];
        assert!(node["description"].as_str().unwrap().starts_with("Node is a worker node"), "{node}");
        let ic = document("apis/operator.openshift.io/v1", "v1").unwrap();
        assert!(
            ic["components"]["schemas"]["io.openshift.operator.v1.IngressController"]["properties"]["spec"].is_object()
        );
    }
}
