//! The Kubernetes REST surface: `/version`, health endpoints, and generic CRUD, list (with label
//! selectors), merge patch and server-side apply under `/api/v1` and `/apis/GROUP/VERSION`, with the
//! `approval` and `status` subresources, and watches (`watch=true`: events after a resourceVersion,
//! bookmarks, 410 Expired once the window has moved on). Errors are `Status` objects with the real codes
//! and reasons.

use crate::store::{merge, EventType, Key, Since, StoreError};
use crate::Sim;
use serde_json::{json, Value};

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

pub struct Response {
    pub code: u16,
    pub body: Value,
    /// `Warning` headers (RFC 7234 code 299), as kube-apiserver sends them for dropped unknown fields.
    pub warnings: Vec<String>,
}

fn status(code: u16, reason: &str, message: impl Into<String>) -> Response {
    Response {
        code,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message.into(), "reason": reason, "code": code}),
        warnings: Vec::new(),
    }
}

fn ok(code: u16, body: Value) -> Response {
    Response { code, body, warnings: Vec::new() }
}

#[derive(Debug, PartialEq)]
struct Route {
    api_version: String,
    collection: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

impl Route {
    /// The resource as kube-apiserver names it in messages: `nodes`, `certificatesigningrequests.certificates.k8s.io`.
    fn qualified(&self) -> String {
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{}.{group}", self.plural),
            None => self.plural.clone(),
        }
    }
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let s = |x: &&str| Some(x.to_string());
    let (namespace, plural, name, sub) = match rest {
        [p] => (None, *p, None, None),
        ["namespaces", ns, p] => (s(ns), *p, None, None),
        ["namespaces", ns, p, n] => (s(ns), *p, s(n), None),
        ["namespaces", ns, p, n, sub] => (s(ns), *p, s(n), s(sub)),
        [p, n] => (None, *p, s(n), None),
        [p, n, sub] => (None, *p, s(n), s(sub)),
        _ => return None,
    };
    let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(Route {
        collection: format!("{group}/{version}/{plural}"),
        api_version,
        plural: plural.to_string(),
        namespace,
        name,
        sub,
    })
}

/// A collection the simulator serves: what discovery says of it (what kubectl and client libraries
/// read to map `kubectl get csr` to a URL).
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    /// Subresources served (`status`, `approval`).
    pub subresources: &'static [&'static str],
}

const VERBS: [&str; 8] = ["create", "delete", "get", "list", "patch", "update", "watch", "deletecollection"];

#[rustfmt::skip]
pub const RESOURCES: &[Resource] = &[
    Resource { group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node", namespaced: false, short: &["no"], subresources: &["status"] },
    Resource { group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, short: &["cm"], subresources: &[] },
    Resource { group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, short: &["po"], subresources: &["status"] },
    Resource { group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, short: &["ns"], subresources: &["status"] },
    Resource { group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true, short: &[], subresources: &[] },
    Resource { group: "", version: "v1", plural: "persistentvolumeclaims", singular: "persistentvolumeclaim", kind: "PersistentVolumeClaim", namespaced: true, short: &["pvc"], subresources: &["status"] },
    Resource { group: "certificates.k8s.io", version: "v1", plural: "certificatesigningrequests", singular: "certificatesigningrequest", kind: "CertificateSigningRequest", namespaced: false, short: &["csr"], subresources: &["approval", "status"] },
    Resource { group: "storage.k8s.io", version: "v1", plural: "storageclasses", singular: "storageclass", kind: "StorageClass", namespaced: false, short: &["sc"], subresources: &[] },
    Resource { group: "config.openshift.io", version: "v1", plural: "clusterversions", singular: "clusterversion", kind: "ClusterVersion", namespaced: false, short: &[], subresources: &["status"] },
    Resource { group: "config.openshift.io", version: "v1", plural: "clusteroperators", singular: "clusteroperator", kind: "ClusterOperator", namespaced: false, short: &["co"], subresources: &["status"] },
    Resource { group: "operator.openshift.io", version: "v1", plural: "ingresscontrollers", singular: "ingresscontroller", kind: "IngressController", namespaced: true, short: &[], subresources: &["status"] },
    Resource { group: "imageregistry.operator.openshift.io", version: "v1", plural: "configs", singular: "config", kind: "Config", namespaced: false, short: &[], subresources: &["status"] },
];

/// Built-in collections whose objects always carry a `status` object.
const STATUS_STRUCT: [&str; 5] =
    ["certificatesigningrequests", "nodes", "namespaces", "pods", "persistentvolumeclaims"];

/// Kind of the objects of a collection the simulator knows (for list responses and created objects).
pub fn kind_of(plural: &str) -> Option<&'static str> {
    RESOURCES.iter().find(|r| r.plural == plural).map(|r| r.kind)
}

/// Legacy discovery: `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION` (client-go falls back to it when
/// the server does not answer aggregated discovery).
fn discovery(path: &str) -> Option<Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let list = |group: &str, version: &str| {
        let resources: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .flat_map(|r| {
                let main = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                  "kind": r.kind, "verbs": VERBS, "shortNames": r.short});
                let subs = r.subresources.iter().map(move |sub| {
                    json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                           "kind": r.kind, "verbs": ["get", "patch", "update"]})
                });
                std::iter::once(main).chain(subs)
            })
            .collect();
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        (!resources.is_empty()).then(|| {
            ok(200, json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
        })
    };
    match segs.as_slice() {
        ["api"] => Some(ok(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "api:6443"}]}),
        )),
        ["apis"] => {
            let mut groups: Vec<&str> = RESOURCES.iter().map(|r| r.group).filter(|g| !g.is_empty()).collect();
            groups.dedup();
            groups.sort_unstable();
            groups.dedup();
            let groups: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(ok(200, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})))
        }
        ["api", v] => list("", v),
        ["apis", g, v] => list(g, v),
        _ => None,
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// A boolean query parameter as kube-apiserver parses it (Go's strconv.ParseBool: the Python client
/// sends `watch=True`).
fn flag(query: &str, key: &str) -> bool {
    matches!(query_param(query, key), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The label and field selectors of a list or watch (`labelSelector`, `fieldSelector`).
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    labels: Option<String>,
    fields: Vec<(String, bool, String)>,
}

impl Selectors {
    /// Field selectors every kind supports: `metadata.name` and `metadata.namespace`, `=`/`==`/`!=`.
    /// Anything else is refused as kube-apiserver refuses a field label the kind does not index.
    fn parse(query: &str) -> Result<Selectors, Response> {
        let labels = query_param(query, "labelSelector").map(percent_decode);
        let mut fields = Vec::new();
        for term in query_param(query, "fieldSelector").map(percent_decode).unwrap_or_default().split(',') {
            if term.is_empty() {
                continue;
            }
            let (field, equal, value) = match term.split_once("!=") {
                Some((f, v)) => (f, false, v),
                None => match term.split_once("==").or_else(|| term.split_once('=')) {
                    Some((f, v)) => (f, true, v),
                    None => return Err(status(400, "BadRequest", format!("invalid field selector: {term:?}"))),
                },
            };
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(status(400, "BadRequest", format!("field label not supported: {field}")));
            }
            fields.push((field.to_string(), equal, value.to_string()));
        }
        Ok(Selectors { labels, fields })
    }

    fn matches(&self, object: &Value) -> bool {
        let fields_ok = self.fields.iter().all(|(field, equal, value)| {
            let have = match field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str(),
                _ => object["metadata"]["namespace"].as_str(),
            };
            (have.unwrap_or_default() == value) == *equal
        });
        fields_ok && self.labels.as_deref().is_none_or(|s| selects(s, &object["metadata"]["labels"]))
    }
}

/// Equality-based label selector (`a=b,c`, `a!=b`).
fn selects(selector: &str, labels: &Value) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.get(k).and_then(Value::as_str) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k).and_then(Value::as_str) == Some(v)
        } else {
            labels.get(term).is_some()
        }
    })
}

fn store_error(e: StoreError, r: &Route) -> Response {
    let what = format!("{} {:?}", r.plural, r.name.as_deref().unwrap_or(""));
    match e {
        StoreError::NotFound => status(404, "NotFound", format!("{what} not found")),
        StoreError::AlreadyExists => status(409, "AlreadyExists", format!("{what} already exists")),
        StoreError::Conflict(c) => conflict(&c),
        StoreError::Invalid(m) => status(422, "Invalid", m),
    }
}

/// A server-side apply conflict as kube-apiserver reports it: the message kubectl prints and one
/// `FieldManagerConflict` cause per field.
fn conflict(conflicts: &[(String, String)]) -> Response {
    let message = match conflicts {
        [(manager, field)] => format!("Apply failed with 1 conflict: conflict with \"{manager}\": {field}"),
        _ => {
            let mut by_manager: Vec<(&str, Vec<&str>)> = Vec::new();
            for (m, f) in conflicts {
                match by_manager.iter_mut().find(|(x, _)| *x == m) {
                    Some((_, fields)) => fields.push(f),
                    None => by_manager.push((m, vec![f])),
                }
            }
            let parts: Vec<String> = by_manager
                .iter()
                .map(|(m, fields)| {
                    let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                    format!("conflicts with \"{m}\":\n{}", list.join("\n"))
                })
                .collect();
            format!("Apply failed with {} conflicts: {}", conflicts.len(), parts.join("\n"))
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(
            |(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f}),
        )
        .collect();
    let mut r = status(409, "Conflict", message);
    r.body["details"] = json!({"causes": causes});
    r
}

/// What a real apiserver does with what it is sent. A custom resource with a structural schema (the
/// vendored OpenShift CRDs, current set): a field the schema does not declare is an error with
/// `fieldValidation=Strict`, else it is dropped (pruned); a wrong type, enum or pattern is 422 Invalid.
/// A core kind (read into k8s-openapi's types, as the apiserver decodes into its Go types): an unknown
/// field likewise, a value of the wrong type 400 (it cannot be decoded). `apply`: the body is an apply
/// patch (required fields are checked on the merged object, which the simulator does not do).
fn admit(body: &mut Value, query: &str, apply: bool) -> Result<Vec<String>, Response> {
    use groundwork_cluster::schema::{check, check_core, Intent, SchemaSet};
    let intent = if apply { Intent::Apply } else { Intent::Whole };
    let core = check_core(body);
    let is_core = core.is_some();
    let problems =
        match core.map(Ok).unwrap_or_else(|| check(SchemaSet::Current, body, intent).map(|p| p.unwrap_or_default())) {
            Ok(p) if p.is_empty() => return Ok(Vec::new()),
            Ok(p) => p,
            Err(e) => return Err(status(500, "InternalError", e)),
        };
    let (unknown, invalid): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.field.is_some());
    if !unknown.is_empty() && query_param(query, "fieldValidation") == Some("Strict") {
        let kind = body["kind"].as_str().unwrap_or_default();
        // As Go prints a GroupVersionKind: the core group is the empty string before the slash.
        let api_version = match body["apiVersion"].as_str().unwrap_or_default() {
            v if v.contains('/') => v.to_string(),
            v => format!("/{v}"),
        };
        let message = if apply {
            let fields: Vec<String> =
                unknown.iter().map(|p| format!(".{}: field not declared in schema", p.at())).collect();
            format!("failed to create typed patch object ({api_version}, Kind={kind}): {}", fields.join(", "))
        } else {
            let fields: Vec<String> = unknown.iter().map(|p| format!("unknown field \"{}\"", p.at())).collect();
            format!("strict decoding error: {}", fields.join(", "))
        };
        return Err(status(400, "BadRequest", message));
    }
    if let (Some(first), true) = (invalid.first(), is_core) {
        let kind = body["kind"].as_str().unwrap_or_default();
        let version = body["apiVersion"].as_str().unwrap_or_default();
        return Err(status(
            400,
            "BadRequest",
            format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {}: {}", first.path, first.message),
        ));
    }
    if let Some(first) = invalid.first() {
        let group = body["apiVersion"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string();
        let kind = body["kind"].as_str().unwrap_or_default();
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        return Err(status(
            422,
            "Invalid",
            format!("{kind}.{group} \"{name}\" is invalid: {}: Invalid value: {}", first.path, first.message),
        ));
    }
    // Warn (the default) and Ignore: the unknown fields are dropped, as pruning does; Warn says so.
    for p in &unknown {
        prune(body, &p.path, p.field.as_deref().unwrap_or_default());
    }
    let warn = query_param(query, "fieldValidation") != Some("Ignore");
    Ok(if warn { unknown.iter().map(|p| format!("unknown field \"{}\"", p.at())).collect() } else { Vec::new() })
}

/// Remove `field` from the object at dotted `path` (`spec`, `spec.tolerations[0]`).
fn prune(body: &mut Value, path: &str, field: &str) {
    let mut node = body;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some(next) = node.get_mut(name) else { return };
        node = match index {
            Some(i) => match next.get_mut(i) {
                Some(n) => n,
                None => return,
            },
            None => next,
        };
    }
    if let Value::Object(m) = node {
        m.remove(field);
    }
}

fn parse_body(req: &Request) -> Result<Value, Response> {
    if req.body.is_empty() {
        return Ok(Value::Null);
    }
    let parsed: Result<Value, String> = if req.content_type.contains("yaml") {
        serde_saphyr::from_slice(req.body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(req.body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| status(400, "BadRequest", format!("request body: {e}")))
}

/// The version the simulator says it is (`/version`).
const GIT_VERSION: &str = "v1.33.5-sim";

pub fn handle(sim: &mut Sim, req: &Request) -> Response {
    if req.method == "GET" {
        if req.path == "/openapi/v3" {
            return ok(200, crate::openapi::index());
        }
        if let Some(gv) = req.path.strip_prefix("/openapi/v3/") {
            return match crate::openapi::document(gv, GIT_VERSION) {
                Some(doc) => ok(200, doc),
                None => status(404, "NotFound", format!("the server could not find {}", req.path)),
            };
        }
    }
    if req.path == "/version" {
        return ok(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": GIT_VERSION, "platform": "linux/amd64",
                               "goVersion": "go1.24", "compiler": "gc", "buildDate": "2026-01-01T00:00:00Z",
                               "gitCommit": "0000000", "gitTreeState": "clean"}),
        );
    }
    if req.method == "GET" {
        if let Some(d) = discovery(req.path) {
            return d;
        }
    }
    let Some(r) = route(req.path) else {
        return status(404, "NotFound", format!("the server could not find {}", req.path));
    };
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let key =
        |name: &str| Key { collection: r.collection.clone(), namespace: r.namespace.clone(), name: name.to_string() };
    match (req.method, r.name.as_deref(), r.sub.as_deref()) {
        ("GET", None, None) => {
            let selectors = match Selectors::parse(req.query) {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            let items: Vec<Value> = sim
                .store
                .list(&r.collection, r.namespace.as_deref())
                .into_iter()
                .filter(|o| selectors.matches(o))
                .collect();
            let kind = kind_of(&r.plural).map(|k| format!("{k}List")).unwrap_or_else(|| "List".into());
            // The list is consistent with the newest revision: a watch from it misses nothing.
            let revision = sim.store.revision().to_string();
            ok(
                200,
                json!({"apiVersion": r.api_version, "kind": kind, "metadata": {"resourceVersion": revision}, "items": items}),
            )
        }
        ("GET", Some(n), None | Some("status" | "approval")) => match sim.store.get(&key(n)) {
            Some(v) => ok(200, v),
            None => store_error(StoreError::NotFound, &r),
        },
        ("POST", None, None) => {
            let mut obj = body;
            let name = match obj["metadata"]["name"].as_str() {
                Some(n) => n.to_string(),
                None => match obj["metadata"]["generateName"].as_str() {
                    Some(prefix) => sim.generate_name(prefix),
                    None => return status(422, "Invalid", "metadata.name or generateName is required"),
                },
            };
            if obj.get("kind").is_none() {
                obj["kind"] = json!(kind_of(&r.plural).unwrap_or("Object"));
            }
            let warnings = match admit(&mut obj, req.query, false) {
                Ok(w) => w,
                Err(resp) => return resp,
            };
            // Built-in kinds whose status is a struct come back with `status: {}` from a real apiserver
            // (clients read `csr.status.conditions` right after creating it).
            if STATUS_STRUCT.contains(&r.plural.as_str()) && obj.get("status").is_none_or(Value::is_null) {
                obj["status"] = json!({});
            }
            obj["apiVersion"] = json!(r.api_version);
            match sim.store.create(&key(&name), obj) {
                Ok(v) => {
                    sim.changed();
                    Response { warnings, ..ok(201, v) }
                }
                Err(e) => store_error(e, &r),
            }
        }
        ("PATCH", Some(n), sub) if req.content_type.starts_with("application/apply-patch") => {
            if sub.is_some() {
                return status(405, "MethodNotAllowed", "apply to subresources is not simulated");
            }
            let Some(manager) = query_param(req.query, "fieldManager") else {
                return status(422, "Invalid", "PATCH with apply requires a fieldManager");
            };
            let force = flag(req.query, "force");
            let mut body = body;
            let warnings = match admit(&mut body, req.query, true) {
                Ok(w) => w,
                Err(resp) => return resp,
            };
            match sim.store.apply(&key(n), &body, &percent_decode(manager), force) {
                Ok(v) => {
                    sim.changed();
                    Response { warnings, ..ok(200, v) }
                }
                Err(e) => store_error(e, &r),
            }
        }
        ("PATCH" | "PUT", Some(n), sub) => {
            let is_patch = req.method == "PATCH";
            // An update names the version it was made from; a newer one is a conflict (optimistic
            // concurrency), as kube-apiserver answers it.
            if let Some(sent) = body["metadata"]["resourceVersion"].as_str() {
                let current = sim.store.get(&key(n)).map(|v| v["metadata"]["resourceVersion"].clone());
                if current.as_ref().is_some_and(|c| c.as_str() != Some(sent)) {
                    let what = format!("{} \"{n}\"", r.qualified());
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {what}: the object has been modified; please apply your \
                             changes to the latest version and try again"
                        ),
                    );
                }
            }
            let result = match sub {
                // Subresources change only status (an approval is a status condition).
                Some("status" | "approval") => {
                    let Some(mut current) = sim.store.get(&key(n)) else {
                        return store_error(StoreError::NotFound, &r);
                    };
                    let new_status = if is_patch {
                        let mut s = current["status"].clone();
                        merge(&mut s, &body["status"]);
                        s
                    } else {
                        body["status"].clone()
                    };
                    current["status"] = new_status;
                    sim.store.update(&key(n), &json!({"status": current["status"]}), true)
                }
                Some(other) => return status(404, "NotFound", format!("subresource {other} is not simulated")),
                None => sim.store.update(&key(n), &body, is_patch),
            };
            match result {
                Ok(v) => {
                    sim.changed();
                    ok(200, v)
                }
                Err(e) => store_error(e, &r),
            }
        }
        ("DELETE", Some(n), None) => match sim.store.delete(&key(n)) {
            Ok(v) => {
                sim.changed();
                ok(200, v)
            }
            Err(e) => store_error(e, &r),
        },
        (m, _, _) => status(405, "MethodNotAllowed", format!("{m} {} is not simulated", req.path)),
    }
}

/// A watch in progress: what it selects, and the revision it has reported up to.
#[derive(Debug)]
pub struct Watch {
    collection: String,
    namespace: Option<String>,
    selectors: Selectors,
    api_version: String,
    kind: String,
    /// Events after this revision are still to be looked at.
    pub from: u64,
    /// The client asked for bookmarks (`allowWatchBookmarks=true`).
    pub bookmarks: bool,
    /// `timeoutSeconds`: the server ends the watch after this long.
    pub timeout: Option<std::time::Duration>,
}

/// One line of a watch stream.
fn frame(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

impl Watch {
    /// A bookmark at the newest revision: the client may resume from it without missing an event.
    pub fn bookmark(&self, revision: u64) -> Value {
        frame(
            "BOOKMARK",
            json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": {"resourceVersion": revision.to_string()}}),
        )
    }

    fn in_scope(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}

/// The start of a watch (`GET collection?watch=true`), or `None` if the request is not one. What the
/// stream opens with: ADDED for every selected object when the client did not give a resourceVersion (or
/// gave "0") or asked for `sendInitialEvents`; else nothing, and the events after its version follow. A
/// version older than the window opens with an ERROR event carrying 410 Expired — a watch request is
/// answered 200 and the error is its first event, as kube-apiserver's watch cache does it.
pub fn watch_start(sim: &Sim, req: &Request) -> Option<Result<(Watch, Vec<Value>), Response>> {
    if req.method != "GET" || !flag(req.query, "watch") {
        return None;
    }
    let r = route(req.path)?;
    if r.name.is_some() {
        return Some(Err(status(405, "MethodNotAllowed", "watch a collection, with a fieldSelector for one object")));
    }
    Some(start_on(&sim.store, req, r))
}

fn start_on(store: &crate::store::Store, req: &Request, r: Route) -> Result<(Watch, Vec<Value>), Response> {
    let selectors = Selectors::parse(req.query)?;
    let timeout = match query_param(req.query, "timeoutSeconds") {
        Some(t) => Some(std::time::Duration::from_secs(
            t.parse().map_err(|_| status(400, "BadRequest", format!("timeoutSeconds {t:?} is not a number")))?,
        )),
        None => None,
    };
    let bookmarks = flag(req.query, "allowWatchBookmarks");
    let initial_events = flag(req.query, "sendInitialEvents");
    let version = query_param(req.query, "resourceVersion").unwrap_or("");
    let mut watch = Watch {
        collection: r.collection.clone(),
        namespace: r.namespace.clone(),
        selectors,
        api_version: r.api_version.clone(),
        kind: kind_of(&r.plural).unwrap_or("Object").to_string(),
        from: store.revision(),
        bookmarks,
        timeout,
    };
    let mut frames = Vec::new();
    if version.is_empty() || version == "0" || initial_events {
        for o in store.list(&r.collection, r.namespace.as_deref()) {
            if watch.selectors.matches(&o) {
                frames.push(frame("ADDED", o));
            }
        }
        if initial_events && bookmarks {
            let mut b = watch.bookmark(watch.from);
            b["object"]["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            frames.push(b);
        }
        return Ok((watch, frames));
    }
    watch.from =
        version.parse().map_err(|_| status(400, "BadRequest", format!("invalid resource version: {version:?}")))?;
    Ok((watch, frames))
}

/// The frames of a watch since it last looked, up to the newest revision; `Err` with the final ERROR
/// frame once the window has moved past where it stood.
pub fn watch_next(sim: &Sim, w: &mut Watch) -> Result<Vec<Value>, Value> {
    next_on(&sim.store, w)
}

fn next_on(store: &crate::store::Store, w: &mut Watch) -> Result<Vec<Value>, Value> {
    let events = match store.since(&w.collection, w.from) {
        Since::Events(e) => e,
        Since::Gone { oldest } => {
            return Err(frame(
                "ERROR",
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": format!("too old resource version: {} ({oldest})", w.from),
                       "reason": "Expired", "code": 410}),
            ))
        }
    };
    w.from = store.revision();
    let mut frames = Vec::new();
    for e in events.into_iter().filter(|e| w.in_scope(&e.namespace)) {
        let now = w.selectors.matches(&e.object);
        let before = e.previous.as_ref().is_some_and(|p| w.selectors.matches(p));
        let kind = match (e.kind, before, now) {
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Added | EventType::Deleted, _, true) => e.kind.as_str(),
            _ => continue,
        };
        frames.push(frame(kind, e.object));
    }
    Ok(frames)
}

/// What a request is, in the words of kube-apiserver's audit log: the simulator counts requests by verb.
pub fn verb(req: &Request) -> &'static str {
    let named = route(req.path).is_some_and(|r| r.name.is_some());
    match req.method {
        "GET" if route(req.path).is_none() => "discovery",
        "GET" if flag(req.query, "watch") => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_core_group_namespaced_and_subresources() {
        let r = route("/api/v1/namespaces/kube-system/configmaps/bootstrap").unwrap();
        assert_eq!(
            (r.collection.as_str(), r.namespace.as_deref(), r.name.as_deref()),
            ("/v1/configmaps", Some("kube-system"), Some("bootstrap"))
        );
        let r = route("/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval").unwrap();
        assert_eq!(
            (r.api_version.as_str(), r.name.as_deref(), r.sub.as_deref()),
            ("certificates.k8s.io/v1", Some("csr-1"), Some("approval"))
        );
        let r =
            route("/apis/operator.openshift.io/v1/namespaces/openshift-ingress-operator/ingresscontrollers").unwrap();
        assert_eq!((r.plural.as_str(), r.name), ("ingresscontrollers", None));
        assert!(route("/healthz/x").is_none());
    }

    fn get(path: &'static str, query: &'static str) -> Request<'static> {
        Request { method: "GET", path, query, content_type: "", body: b"" }
    }

    #[test]
    fn watches_turn_selector_transitions_into_added_and_deleted() {
        let mut store = crate::store::Store::default();
        let k = |n: &str| Key { collection: "/v1/nodes".into(), namespace: None, name: n.into() };
        store.create(&k("a"), json!({"apiVersion": "v1", "kind": "Node", "metadata": {"labels": {"r": "x"}}})).unwrap();
        store.create(&k("b"), json!({"apiVersion": "v1", "kind": "Node"})).unwrap();
        let r = route("/api/v1/nodes").unwrap();
        let req = get("/api/v1/nodes", "watch=True&labelSelector=r%3Dx&resourceVersion=0&allowWatchBookmarks=1");
        // The opening frames: ADDED for what the selector picks, nothing else.
        let Ok((mut w, opening)) = start_on(&store, &req, r) else { panic!("refused") };
        assert_eq!(opening.iter().map(|f| f["object"]["metadata"]["name"].clone()).collect::<Vec<_>>(), ["a"]);
        assert!(w.bookmarks);
        store.update(&k("a"), &json!({"metadata": {"labels": {"r": "y"}}}), true).unwrap(); // leaves
        store.update(&k("b"), &json!({"metadata": {"labels": {"r": "x"}}}), true).unwrap(); // enters
        store.update(&k("b"), &json!({"metadata": {"labels": {"z": "1"}}}), true).unwrap(); // stays
        let frames = next_on(&store, &mut w).unwrap();
        let seen: Vec<(String, String)> = frames
            .iter()
            .map(|f| (f["type"].as_str().unwrap().into(), f["object"]["metadata"]["name"].as_str().unwrap().into()))
            .collect();
        let want = [("DELETED", "a"), ("ADDED", "b"), ("MODIFIED", "b")];
        assert_eq!(seen, want.map(|(t, n)| (t.to_string(), n.to_string())));
        assert_eq!(w.from, store.revision());
        assert!(next_on(&store, &mut w).unwrap().is_empty(), "nothing is reported twice");
    }

    #[test]
    fn an_expired_version_is_an_error_event_and_bad_selectors_are_refused() {
        let mut store = crate::store::Store::default();
        store.window = 2;
        let k = Key { collection: "/v1/configmaps".into(), namespace: Some("ns".into()), name: "c".into() };
        store.create(&k, json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap();
        for i in 0..4 {
            store.update(&k, &json!({"data": {"i": i.to_string()}}), true).unwrap();
        }
        let req = get("/api/v1/namespaces/ns/configmaps", "watch=true&resourceVersion=1");
        let Ok((mut w, opening)) = start_on(&store, &req, route(req.path).unwrap()) else { panic!("refused") };
        assert!(opening.is_empty());
        let error = next_on(&store, &mut w).unwrap_err();
        assert_eq!((error["type"].as_str(), error["object"]["code"].as_u64()), (Some("ERROR"), Some(410)));
        assert_eq!(error["object"]["reason"], "Expired");
        let bad = get("/api/v1/nodes", "watch=true&fieldSelector=spec.unschedulable%3Dtrue");
        let Err(resp) = Selectors::parse(bad.query) else { panic!("accepted") };
        assert_eq!(resp.code, 400);
        assert_eq!(verb(&bad), "watch");
        assert_eq!(verb(&get("/api/v1/nodes/x", "")), "get");
        assert_eq!(verb(&get("/apis", "")), "discovery");
    }

    #[test]
    fn label_selectors_and_query_decoding() {
        let labels = json!({"a": "1", "b": ""});
        assert!(selects("a=1,b", &labels));
        assert!(selects("a==1", &labels));
        assert!(!selects("a!=1", &labels));
        assert!(!selects("c", &labels));
        assert_eq!(percent_decode("a%3D1%2Cb"), "a=1,b");
    }
}
