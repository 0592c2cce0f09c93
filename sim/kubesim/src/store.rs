//! The simulator's object store: schemaless JSON objects by (collection, namespace, name), with
//! resourceVersions, uids, and server-side apply field ownership (the part of SSA groundwork relies
//! on: an apply by a manager sets its fields, drops the fields it owned and no longer sends, and
//! leaves everybody else's alone).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `group/version/plural` ("" group for core).
pub type Collection = String;
type Path = Vec<String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub collection: Collection,
    pub namespace: Option<String>,
    pub name: String,
}

struct Stored {
    value: Value,
    owners: BTreeMap<String, BTreeSet<Path>>,
}

#[derive(Default)]
pub struct Store {
    objects: BTreeMap<(Collection, String, String), Stored>,
    revision: u64,
    uids: u64,
    /// Seconds since the store started: creation timestamps are derived from it.
    pub clock: f64,
}

#[derive(Debug, PartialEq)]
pub enum StoreError {
    NotFound,
    AlreadyExists,
    /// Server-side apply conflicts: (the manager that owns the field, the field as `.a.b`).
    Conflict(Vec<(String, String)>),
    Invalid(String),
}

fn key3(k: &Key) -> (Collection, String, String) {
    (k.collection.clone(), k.namespace.clone().unwrap_or_default(), k.name.clone())
}

/// Leaf paths of an object, excluding identity fields: what an apply of it claims.
fn leaf_paths(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, at: &mut Path, out: &mut BTreeSet<Path>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    at.push(k.clone());
                    walk(x, at, out);
                    at.pop();
                }
            }
            _ => {
                out.insert(at.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"]
                | ["kind"]
                | ["metadata", "name"]
                | ["metadata", "namespace"]
                | ["metadata", "managedFields", ..]
                | ["metadata", "resourceVersion"]
                | ["metadata", "uid"]
                | ["metadata", "creationTimestamp"]
                | ["status", ..]
        )
    });
    out
}

fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |v, k| v.get(k))
}

fn remove_path(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else { return };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(x) => cur = x,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// JSON merge of `patch` into `target` (maps recurse; null deletes; anything else replaces).
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch) {
        (Some(t), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), pv);
                }
            }
        }
        _ => {
            *target = match patch {
                Value::Object(p) => {
                    let mut fresh = Value::Object(Map::new());
                    merge(&mut fresh, &Value::Object(p.clone()));
                    fresh
                }
                other => other.clone(),
            }
        }
    }
}

/// `fieldsV1` of a set of paths: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            // Every node is created as an object just above, so this never stops early.
            let Some(m) = cur.as_object_mut() else { break };
            cur = m.entry(format!("f:{k}")).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

impl Store {
    fn stamp(&mut self, v: &mut Value, fresh: bool) {
        self.revision += 1;
        let meta = &mut v["metadata"];
        meta["resourceVersion"] = json!(self.revision.to_string());
        if fresh {
            self.uids += 1;
            meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
            meta["creationTimestamp"] = json!(format!("2026-01-01T00:00:{:02}Z", (self.clock as u64) % 60));
        }
    }

    fn with_managed_fields(stored: &Stored) -> Value {
        let mut v = stored.value.clone();
        let managed: Vec<Value> = stored
            .owners
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(m, p)| {
                json!({"manager": m, "operation": "Apply", "apiVersion": v["apiVersion"], "fieldsType": "FieldsV1",
                       "fieldsV1": fields_v1(p)})
            })
            .collect();
        if !managed.is_empty() {
            v["metadata"]["managedFields"] = Value::Array(managed);
        }
        v
    }

    pub fn get(&self, k: &Key) -> Option<Value> {
        self.objects.get(&key3(k)).map(Self::with_managed_fields)
    }

    /// Objects of a collection (one namespace, or all), sorted by namespace and name.
    pub fn list(&self, collection: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((c, ns, _), _)| c == collection && namespace.is_none_or(|n| n == ns))
            .map(|(_, s)| Self::with_managed_fields(s))
            .collect()
    }

    pub fn create(&mut self, k: &Key, mut v: Value) -> Result<Value, StoreError> {
        if self.objects.contains_key(&key3(k)) {
            return Err(StoreError::AlreadyExists);
        }
        v["metadata"]["name"] = json!(k.name);
        if let Some(ns) = &k.namespace {
            v["metadata"]["namespace"] = json!(ns);
        }
        self.stamp(&mut v, true);
        self.objects.insert(key3(k), Stored { value: v.clone(), owners: BTreeMap::new() });
        Ok(v)
    }

    /// Replace or merge-patch (`merge_patch`) an existing object; status is replaced too.
    pub fn update(&mut self, k: &Key, body: &Value, merge_patch: bool) -> Result<Value, StoreError> {
        let mut value = self.objects.get(&key3(k)).ok_or(StoreError::NotFound)?.value.clone();
        if merge_patch {
            merge(&mut value, body);
        } else {
            let meta = value["metadata"].clone();
            value = body.clone();
            value["metadata"] = meta;
            if let Some(l) = body["metadata"].get("labels") {
                value["metadata"]["labels"] = l.clone();
            }
        }
        self.stamp(&mut value, false);
        let stored = self.objects.get_mut(&key3(k)).ok_or(StoreError::NotFound)?;
        stored.value = value;
        Ok(Self::with_managed_fields(stored))
    }

    /// Server-side apply of `body` by `manager`.
    pub fn apply(&mut self, k: &Key, body: &Value, manager: &str, force: bool) -> Result<Value, StoreError> {
        if body.get("apiVersion").is_none() || body.get("kind").is_none() {
            return Err(StoreError::Invalid("apply needs apiVersion and kind".into()));
        }
        let new_paths = leaf_paths(body);
        let exists = self.objects.contains_key(&key3(k));
        if !exists {
            let mut v = body.clone();
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            self.create(k, v)?;
        }
        let stored = self.objects.get_mut(&key3(k)).ok_or(StoreError::NotFound)?;
        if exists {
            if !force {
                let mut conflicts = Vec::new();
                for (other, paths) in stored.owners.iter().filter(|(m, _)| m.as_str() != manager) {
                    for p in paths.intersection(&new_paths) {
                        if get_path(&stored.value, p) != get_path(body, p) {
                            conflicts.push((other.clone(), format!(".{}", p.join("."))));
                        }
                    }
                }
                if !conflicts.is_empty() {
                    return Err(StoreError::Conflict(conflicts));
                }
            }
            let old = stored.owners.get(manager).cloned().unwrap_or_default();
            for p in old.difference(&new_paths) {
                let shared = stored.owners.iter().any(|(m, ps)| m != manager && ps.contains(p));
                if !shared {
                    remove_path(&mut stored.value, p);
                }
            }
            let mut patch = body.clone();
            if let Some(m) = patch["metadata"].as_object_mut() {
                m.remove("managedFields");
                m.remove("resourceVersion");
            }
            merge(&mut stored.value, &patch);
        }
        for (m, ps) in stored.owners.iter_mut() {
            if m != manager {
                ps.retain(|p| !new_paths.contains(p));
            }
        }
        stored.owners.insert(manager.to_string(), new_paths);
        let mut value = stored.value.clone();
        self.stamp(&mut value, false);
        let stored = self.objects.get_mut(&key3(k)).ok_or(StoreError::NotFound)?;
        stored.value = value;
        Ok(Self::with_managed_fields(stored))
    }

    pub fn delete(&mut self, k: &Key) -> Result<Value, StoreError> {
        self.objects.remove(&key3(k)).map(|s| s.value).ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Key {
        Key { collection: "/v1/nodes".into(), namespace: None, name: "i1".into() }
    }

    #[test]
    fn apply_sets_then_releases_only_its_own_fields() {
        let mut s = Store::default();
        s.create(&node(), json!({"apiVersion": "v1", "kind": "Node", "metadata": {"labels": {"kubelet": "x"}}}))
            .unwrap();
        let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "i1", "labels": {"infra": ""}},
                          "spec": {"taints": [{"key": "infra", "effect": "NoSchedule"}]}});
        let v = s.apply(&node(), &body, "groundwork", true).unwrap();
        assert_eq!(v["metadata"]["labels"], json!({"kubelet": "x", "infra": ""}));
        assert_eq!(v["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:labels"], json!({"f:infra": {}}));
        let rv1 = v["metadata"]["resourceVersion"].clone();
        let bare = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "i1"}});
        let v = s.apply(&node(), &bare, "groundwork", true).unwrap();
        assert_eq!(v["metadata"]["labels"], json!({"kubelet": "x"}));
        assert!(v["spec"].get("taints").is_none());
        assert_ne!(v["metadata"]["resourceVersion"], rv1);
    }

    #[test]
    fn apply_without_force_conflicts_with_another_managers_field() {
        let mut s = Store::default();
        let a = json!({"apiVersion": "v1", "kind": "Node", "spec": {"podCIDR": "10.0.0.0/24"}});
        s.apply(&node(), &a, "other", true).unwrap();
        let b = json!({"apiVersion": "v1", "kind": "Node", "spec": {"podCIDR": "10.9.0.0/24"}});
        assert!(matches!(s.apply(&node(), &b, "groundwork", false), Err(StoreError::Conflict(_))));
        let v = s.apply(&node(), &b, "groundwork", true).unwrap();
        assert_eq!(v["spec"]["podCIDR"], "10.9.0.0/24");
    }
}
