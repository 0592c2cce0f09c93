//! The simulator's object store: schemaless JSON objects by (collection, namespace, name), with
//! resourceVersions, uids, and server-side apply field ownership (the part of SSA groundwork relies
//! on: an apply by a manager sets its fields, drops the fields it owned and no longer sends, and
//! leaves everybody else's alone). Every write is an event in its collection's history, which watches
//! read: a bounded window per collection, as kube-apiserver's watch cache keeps one per resource, so an
//! old enough resourceVersion is gone (410).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

/// What happened to an object, as a watch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, as the object read right after it (a deleted object with the deletion's resourceVersion),
/// and the object before it: a watch with a selector turns a MODIFIED that enters or leaves the
/// selection into ADDED or DELETED, as the watch cache does.
#[derive(Clone, Debug)]
pub struct Event {
    pub revision: u64,
    pub kind: EventType,
    pub namespace: String,
    pub object: Value,
    pub previous: Option<Value>,
}

/// A collection's recent events, oldest first, and the newest revision that fell out of the window.
#[derive(Default)]
struct History {
    events: VecDeque<Event>,
    compacted: u64,
}

/// Events after a resourceVersion, or `Gone` when the window no longer reaches back that far.
#[derive(Debug)]
pub enum Since {
    Events(Vec<Event>),
    /// The oldest resourceVersion still watchable.
    Gone {
        oldest: u64,
    },
}

/// Events kept per collection when nobody says otherwise: kube-apiserver's default watch cache size.
pub const DEFAULT_WINDOW: usize = 100;

pub struct Store {
    objects: BTreeMap<(Collection, String, String), Stored>,
    history: BTreeMap<Collection, History>,
    /// Events kept per collection.
    pub window: usize,
    revision: u64,
    uids: u64,
}

impl Default for Store {
    fn default() -> Store {
        Store { objects: BTreeMap::new(), history: BTreeMap::new(), window: DEFAULT_WINDOW, revision: 0, uids: 0 }
    }
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

/// An object without its resourceVersion: what a no-op write is compared on.
fn without_version(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    v
}

impl Store {
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

    /// The newest resourceVersion: what a list is consistent with, and where a watch from it starts.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn record(&mut self, collection: &str, namespace: &str, kind: EventType, object: Value, previous: Option<Value>) {
        let h = self.history.entry(collection.to_string()).or_default();
        let namespace = namespace.to_string();
        h.events.push_back(Event { revision: self.revision, kind, namespace, object, previous });
        while h.events.len() > self.window.max(1) {
            if let Some(e) = h.events.pop_front() {
                h.compacted = e.revision;
            }
        }
    }

    /// A collection's events after `revision`, oldest first; `Gone` if some of them fell out of the window.
    pub fn since(&self, collection: &str, revision: u64) -> Since {
        let Some(h) = self.history.get(collection) else { return Since::Events(Vec::new()) };
        if revision < h.compacted {
            return Since::Gone { oldest: h.compacted };
        }
        Since::Events(h.events.iter().filter(|e| e.revision > revision).cloned().collect())
    }

    /// Stamp and record a write to an object already in the map.
    fn written(&mut self, k: &Key, kind: EventType, previous: Option<Value>) -> Option<Value> {
        let k3 = key3(k);
        self.revision += 1;
        let revision = self.revision;
        let stored = self.objects.get_mut(&k3)?;
        stored.value["metadata"]["resourceVersion"] = json!(revision.to_string());
        let v = Self::with_managed_fields(stored);
        self.record(&k3.0, &k3.1, kind, v.clone(), previous);
        Some(v)
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

    pub fn create(&mut self, k: &Key, v: Value) -> Result<Value, StoreError> {
        self.insert(k, v, BTreeMap::new())
    }

    fn insert(&mut self, k: &Key, mut v: Value, owners: BTreeMap<String, BTreeSet<Path>>) -> Result<Value, StoreError> {
        if self.objects.contains_key(&key3(k)) {
            return Err(StoreError::AlreadyExists);
        }
        v["metadata"]["name"] = json!(k.name);
        if let Some(ns) = &k.namespace {
            v["metadata"]["namespace"] = json!(ns);
        }
        self.uids += 1;
        v["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
        v["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        self.objects.insert(key3(k), Stored { value: v, owners });
        self.written(k, EventType::Added, None).ok_or(StoreError::NotFound)
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
        self.replace(k, value, None)
    }

    /// Store a new value (and owners) for an existing object: a new revision and a MODIFIED event, unless
    /// nothing changed — a real apiserver neither bumps resourceVersion nor tells watchers of a no-op.
    fn replace(
        &mut self,
        k: &Key,
        value: Value,
        owners: Option<BTreeMap<String, BTreeSet<Path>>>,
    ) -> Result<Value, StoreError> {
        let stored = self.objects.get_mut(&key3(k)).ok_or(StoreError::NotFound)?;
        let same_owners = owners.as_ref().is_none_or(|o| *o == stored.owners);
        if same_owners && without_version(&stored.value) == without_version(&value) {
            return Ok(Self::with_managed_fields(stored));
        }
        let previous = Self::with_managed_fields(stored);
        stored.value = value;
        if let Some(o) = owners {
            stored.owners = o;
        }
        self.written(k, EventType::Modified, Some(previous)).ok_or(StoreError::NotFound)
    }

    /// Server-side apply of `body` by `manager`.
    pub fn apply(&mut self, k: &Key, body: &Value, manager: &str, force: bool) -> Result<Value, StoreError> {
        if body.get("apiVersion").is_none() || body.get("kind").is_none() {
            return Err(StoreError::Invalid("apply needs apiVersion and kind".into()));
        }
        let new_paths = leaf_paths(body);
        let mut patch = body.clone();
        if let Some(m) = patch["metadata"].as_object_mut() {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        let Some(stored) = self.objects.get(&key3(k)) else {
            // A new object: one ADDED event, owned by its first manager.
            return self.insert(k, patch, BTreeMap::from([(manager.to_string(), new_paths)]));
        };
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
        let mut value = stored.value.clone();
        let mut owners = stored.owners.clone();
        let old = owners.get(manager).cloned().unwrap_or_default();
        for p in old.difference(&new_paths) {
            let shared = owners.iter().any(|(m, ps)| m != manager && ps.contains(p));
            if !shared {
                remove_path(&mut value, p);
            }
        }
        merge(&mut value, &patch);
        for (m, ps) in owners.iter_mut() {
            if m != manager {
                ps.retain(|p| !new_paths.contains(p));
            }
        }
        owners.insert(manager.to_string(), new_paths);
        self.replace(k, value, Some(owners))
    }

    pub fn delete(&mut self, k: &Key) -> Result<Value, StoreError> {
        let k3 = key3(k);
        let stored = self.objects.remove(&k3).ok_or(StoreError::NotFound)?;
        self.revision += 1;
        let mut v = Self::with_managed_fields(&stored);
        v["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(&k3.0, &k3.1, EventType::Deleted, v.clone(), None);
        Ok(v)
    }
}

/// The wall clock in RFC 3339, to the second (as metadata and conditions carry it).
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
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
    fn writes_are_events_and_no_op_writes_are_not() {
        let mut s = Store::default();
        let start = s.revision();
        s.create(&node(), json!({"apiVersion": "v1", "kind": "Node", "metadata": {"labels": {"a": "1"}}})).unwrap();
        let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"labels": {"b": "2"}}});
        let first = s.apply(&node(), &body, "groundwork", false).unwrap();
        let again = s.apply(&node(), &body, "groundwork", false).unwrap();
        assert_eq!(first["metadata"]["resourceVersion"], again["metadata"]["resourceVersion"], "a no-op apply");
        s.update(&node(), &json!({"metadata": {"labels": {"a": "1"}}}), true).unwrap();
        s.delete(&node()).unwrap();
        let Since::Events(events) = s.since("/v1/nodes", start) else { panic!("gone") };
        let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::Added, EventType::Modified, EventType::Deleted]);
        assert_eq!(events[1].previous.as_ref().unwrap()["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(events[2].revision, s.revision(), "a deletion has its own revision");
        let Since::Events(later) = s.since("/v1/nodes", events[1].revision) else { panic!("gone") };
        assert_eq!(later.len(), 1);
        // A fresh apply is one ADDED, owned by its manager.
        let created = s.apply(&node(), &body, "groundwork", false).unwrap();
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "groundwork");
        let Since::Events(after) = s.since("/v1/nodes", events[2].revision) else { panic!("gone") };
        assert_eq!(after.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventType::Added]);
    }

    #[test]
    fn the_window_moves_on_and_older_versions_are_gone() {
        let mut s = Store { window: 3, ..Store::default() };
        s.create(&node(), json!({"apiVersion": "v1", "kind": "Node"})).unwrap();
        let first = s.revision();
        for i in 0..5 {
            s.update(&node(), &json!({"metadata": {"labels": {"n": i.to_string()}}}), true).unwrap();
        }
        match s.since("/v1/nodes", first) {
            Since::Gone { oldest } => assert!(oldest > first),
            Since::Events(e) => panic!("still {} events", e.len()),
        }
        let Since::Events(kept) = s.since("/v1/nodes", s.revision() - 3) else { panic!("gone") };
        assert_eq!(kept.len(), 3);
        // Another collection's window is its own.
        assert!(matches!(s.since("/v1/configmaps", 0), Since::Events(e) if e.is_empty()));
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
