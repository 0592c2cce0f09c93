//! OpenShift's own CRD schemas for the kinds groundwork touches, checked offline as a real apiserver
//! would check them with `fieldValidation=Strict`: a misspelled field is an error, not silently pruned.
//!
//! The CRDs are vendored in `crds/` from github.com/openshift/api (crds/README.md names the commits):
//! one set of the 4.5 era and one current. The structural schema of each (`openAPIV3Schema`) is turned
//! into a JSON Schema: an object with `properties` and no `x-kubernetes-preserve-unknown-fields` allows
//! no other field, `nullable` admits null, `x-kubernetes-int-or-string` admits both.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Which release's schemas to check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaSet {
    /// openshift/api of July 2020 (4.5): apiextensions v1beta1 CRDs.
    V4_5,
    /// openshift/api as vendored (the `Default` feature set).
    Current,
}

impl SchemaSet {
    /// The set for a declared cluster version (`openshift.version`): 4.5 and older get the 4.5 set,
    /// anything else (or nothing declared) the current one.
    pub fn for_version(version: Option<&str>) -> SchemaSet {
        let minor = version
            .and_then(|v| v.trim_start_matches('v').strip_prefix("4."))
            .and_then(|rest| rest.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        match minor {
            Some(m) if m <= 5 => SchemaSet::V4_5,
            _ => SchemaSet::Current,
        }
    }

    fn sources(self) -> &'static [&'static str] {
        match self {
            SchemaSet::V4_5 => &[
                include_str!("../crds/4.5/clusteroperators.yaml"),
                include_str!("../crds/4.5/clusterversions.yaml"),
                include_str!("../crds/4.5/imageregistry-configs.yaml"),
                include_str!("../crds/4.5/ingresscontrollers.yaml"),
            ],
            SchemaSet::Current => &[
                include_str!("../crds/current/clusteroperators.yaml"),
                include_str!("../crds/current/clusterversions.yaml"),
                include_str!("../crds/current/imageregistry-configs.yaml"),
                include_str!("../crds/current/ingresscontrollers.yaml"),
            ],
        }
    }
}

/// One way an object does not fit its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the value at fault (`spec.replicas`), or of the object holding an unknown field
    /// (then `field` names it).
    pub path: String,
    /// An unknown field, when that is the problem.
    pub field: Option<String>,
    pub message: String,
}

/// How an object is meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// A whole object, as created: required fields must be there.
    Whole,
    /// A server-side apply patch (how groundwork applies every object): the server checks required fields
    /// on the merged result, so only unknown fields, types, enums and patterns are judged here.
    Apply,
}

impl Problem {
    /// The path of what is at fault: the unknown field itself when that is the problem.
    pub fn at(&self) -> String {
        match (&self.field, self.path.is_empty()) {
            (Some(f), true) => f.clone(),
            (Some(f), false) => format!("{}.{f}", self.path),
            (None, _) => self.path.clone(),
        }
    }
}

struct Compiled {
    /// (apiVersion, kind) → validators for a whole object and for an apply patch.
    validators: HashMap<(String, String), (jsonschema::Validator, jsonschema::Validator)>,
}

/// Each set is compiled on first use only (a run needs one).
fn compiled(set: SchemaSet) -> Result<&'static Compiled, String> {
    static V4_5: OnceLock<Result<Compiled, String>> = OnceLock::new();
    static CURRENT: OnceLock<Result<Compiled, String>> = OnceLock::new();
    let cell = match set {
        SchemaSet::V4_5 => &V4_5,
        SchemaSet::Current => &CURRENT,
    };
    cell.get_or_init(|| compile(set)).as_ref().map_err(Clone::clone)
}

/// A vendored CRD's schema for one version: (group, version, kind, `openAPIV3Schema`).
pub type CrdSchema = (String, String, String, Value);

/// Every schema of a set, as its CRDs give them.
pub fn crd_schemas(set: SchemaSet) -> Result<Vec<CrdSchema>, String> {
    let mut out = Vec::new();
    for text in set.sources() {
        let crd: Value =
            groundwork_sdk::yaml::from_str_last_key_wins(text).map_err(|e| format!("vendored CRD: {e}"))?;
        let group = crd["spec"]["group"].as_str().unwrap_or_default().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string();
        // apiextensions v1: a schema per version; v1beta1: one for all versions (or per version).
        let global = crd["spec"]["validation"]["openAPIV3Schema"].clone();
        let versions: Vec<Value> = match crd["spec"]["versions"].as_array() {
            Some(v) => v.clone(),
            None => vec![json!({"name": crd["spec"]["version"]})],
        };
        for v in versions {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            let schema = match &v["schema"]["openAPIV3Schema"] {
                Value::Null => global.clone(),
                s => s.clone(),
            };
            if !schema.is_null() {
                out.push((group.clone(), name, kind.clone(), schema));
            }
        }
    }
    Ok(out)
}

fn compile(set: SchemaSet) -> Result<Compiled, String> {
    let mut validators = HashMap::new();
    for (group, name, kind, schema) in crd_schemas(set)? {
        let mut js = to_json_schema(&schema);
        if let Value::Object(m) = &mut js {
            m.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        }
        let mut patch = js.clone();
        drop_required(&mut patch);
        // Patterns are Go (RE2) syntax, e.g. `[^][ ()]`: Rust's regex engine reads them as RE2 does.
        let build = |schema: &Value| {
            jsonschema::options()
                .with_pattern_options(jsonschema::PatternOptions::regex())
                .build(schema)
                .map_err(|e| format!("the vendored schema of {kind}: {e}"))
        };
        validators.insert((format!("{group}/{name}"), kind.clone()), (build(&js)?, build(&patch)?));
    }
    Ok(Compiled { validators })
}

/// The schema an apply patch is held to: every `required` list removed.
fn drop_required(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("required");
            m.values_mut().for_each(drop_required);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_required),
        _ => {}
    }
}

/// A structural schema as a strict JSON Schema.
fn to_json_schema(s: &Value) -> Value {
    let Value::Object(m) = s else { return s.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "properties" | "patternProperties" => {
                let props: Map<String, Value> =
                    v.as_object().into_iter().flatten().map(|(p, ps)| (p.clone(), to_json_schema(ps))).collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), to_json_schema(v));
            }
            "pattern" => {
                out.insert(k.clone(), v.as_str().map(|p| Value::String(re2_to_rust(p))).unwrap_or_else(|| v.clone()));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list: Vec<Value> = v.as_array().into_iter().flatten().map(to_json_schema).collect();
                out.insert(k.clone(), Value::Array(list));
            }
            "not" => {
                out.insert(k.clone(), to_json_schema(v));
            }
            // What JSON Schema would read differently, or OpenAPI-only annotations.
            "nullable" | "format" | "x-kubernetes-int-or-string" => {}
            k if k.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if m.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserve {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    out.into_iter().collect::<Map<_, _>>().into()
}

/// A Go (RE2) pattern in the syntax of Rust's regex crate: RE2 has no nested classes, so a `[` inside a
/// class is a literal (`[^][ ()]` excludes `]`, `[`, ` `, `(`, `)`), and a `]` first in a class is one too;
/// `&&` and `~~` inside a class are Rust set operators, literal in RE2.
fn re2_to_rust(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                continue;
            }
            ']' if in_class && class_start => out.push_str("\\]"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        class_start = false;
    }
    out
}

/// Check an object against its kind's schema in `set`. `None`: no schema for its apiVersion and kind.
pub fn check(set: SchemaSet, object: &Value, intent: Intent) -> Result<Option<Vec<Problem>>, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let c = compiled(set)?;
    let Some((whole, patch)) = c.validators.get(&(api_version.to_string(), kind.to_string())) else {
        return Ok(None);
    };
    let v = match intent {
        Intent::Whole => whole,
        Intent::Apply => patch,
    };
    let mut problems: Vec<Problem> = Vec::new();
    for e in v.iter_errors(object) {
        let path = pointer_to_path(&e.instance_path().to_string());
        let message = e.to_string();
        // "Additional properties are not allowed ('replica' was unexpected)"
        let field = message
            .split_once("('")
            .and_then(|(_, rest)| rest.split_once("' was unexpected"))
            .map(|(f, _)| f.to_string());
        problems.push(Problem { path, field, message });
    }
    Ok(Some(problems))
}

/// `/spec/tolerations/0/key` → `spec.tolerations[0].key`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// Core kinds, checked with k8s-openapi's types (the Kubernetes API's own Go types, generated): a value
/// of the wrong type is an error at its path, and a field the type does not have — found by reading the
/// object into the type and writing it back — is an unknown field. Fields the type requires are not
/// asked for (an apply patch may leave them to the object on the server). `None`: not a core kind
/// checked here.
pub fn check_core(object: &Value) -> Option<Vec<Problem>> {
    use k8s_openapi::api::{apps, core, rbac, storage};
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => typed::<core::v1::ConfigMap>(object),
        // A Secret's values never reach a message: only where the problem is.
        ("v1", "Secret") => typed::<core::v1::Secret>(object)
            .into_iter()
            .map(|p| Problem {
                message: if p.field.is_some() {
                    p.message
                } else {
                    "a value of the wrong type (not shown: a Secret)".into()
                },
                ..p
            })
            .collect(),
        ("v1", "Namespace") => typed::<core::v1::Namespace>(object),
        ("v1", "Node") => typed::<core::v1::Node>(object),
        ("v1", "Pod") => typed::<core::v1::Pod>(object),
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            typed::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(object)
        }
        ("v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>(object),
        ("v1", "Service") => typed::<core::v1::Service>(object),
        ("v1", "PersistentVolumeClaim") => typed::<core::v1::PersistentVolumeClaim>(object),
        ("v1", "PersistentVolume") => typed::<core::v1::PersistentVolume>(object),
        ("storage.k8s.io/v1", "StorageClass") => typed::<storage::v1::StorageClass>(object),
        ("apps/v1", "Deployment") => typed::<apps::v1::Deployment>(object),
        ("apps/v1", "DaemonSet") => typed::<apps::v1::DaemonSet>(object),
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<rbac::v1::Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<rbac::v1::RoleBinding>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<rbac::v1::ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => typed::<rbac::v1::ClusterRoleBinding>(object),
        _ => return None,
    })
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Vec<Problem> {
    match serde_path_to_error::deserialize::<_, T>(object) {
        Ok(t) => {
            let back = serde_json::to_value(&t).unwrap_or(Value::Null);
            let mut problems = Vec::new();
            dropped(object, &back, "", &mut problems);
            problems
        }
        // A required field left out is the server's to judge on the merged object.
        Err(e) if e.inner().to_string().starts_with("missing field") => Vec::new(),
        Err(e) => {
            let path = e.path().to_string();
            vec![Problem {
                path: if path == "." { String::new() } else { path },
                field: None,
                message: e.inner().to_string(),
            }]
        }
    }
}

/// Fields of `input` that did not survive the typed round trip (`null` values never do, and are fine).
fn dropped(input: &Value, back: &Value, path: &str, out: &mut Vec<Problem>) {
    match (input, back) {
        (Value::Object(i), Value::Object(b)) => {
            for (k, v) in i {
                match b.get(k) {
                    Some(bv) => {
                        let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                        dropped(v, bv, &sub, out);
                    }
                    None if v.is_null() => {}
                    None => out.push(Problem {
                        path: path.to_string(),
                        field: Some(k.clone()),
                        message: format!("unknown field \"{k}\""),
                    }),
                }
            }
        }
        (Value::Array(i), Value::Array(b)) => {
            for (n, (v, bv)) in i.iter().zip(b).enumerate() {
                dropped(v, bv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// The kinds a set has schemas for, as `apiVersion kind`.
pub fn kinds(set: SchemaSet) -> Result<Vec<String>, String> {
    let mut k: Vec<String> = compiled(set)?.validators.keys().map(|(a, k)| format!("{a} {k}")).collect();
    k.sort();
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a string matches the pattern, through the same engine the validator uses.
    fn regex_lite_check(pattern: &str) -> impl Fn(&str) -> bool {
        let v = jsonschema::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&json!({"type": "string", "pattern": pattern}))
            .unwrap();
        move |s: &str| v.is_valid(&json!(s))
    }

    fn ingress(spec: Value) -> Value {
        json!({"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
               "metadata": {"name": "default", "namespace": "openshift-ingress-operator"}, "spec": spec})
    }

    #[test]
    fn both_sets_compile_and_cover_the_kinds_groundwork_touches() {
        for set in [SchemaSet::V4_5, SchemaSet::Current] {
            let k = kinds(set).unwrap();
            for want in [
                "operator.openshift.io/v1 IngressController",
                "imageregistry.operator.openshift.io/v1 Config",
                "config.openshift.io/v1 ClusterVersion",
                "config.openshift.io/v1 ClusterOperator",
            ] {
                assert!(k.contains(&want.to_string()), "{set:?}: {k:?}");
            }
        }
    }

    #[test]
    fn a_misspelled_field_is_named_and_a_wrong_type_located() {
        for set in [SchemaSet::V4_5, SchemaSet::Current] {
            let ok = ingress(
                json!({"replicas": 2, "nodePlacement": {"nodeSelector": {"matchLabels": {"node-role.kubernetes.io/infra": ""}}}}),
            );
            assert_eq!(check(set, &ok, Intent::Apply).unwrap(), Some(vec![]), "{set:?}");
            let typo = ingress(json!({"replica": 2}));
            let p = check(set, &typo, Intent::Apply).unwrap().unwrap();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!((p[0].path.as_str(), p[0].field.as_deref()), ("spec", Some("replica")));
            let wrong = ingress(json!({"replicas": "two"}));
            let p = check(set, &wrong, Intent::Apply).unwrap().unwrap();
            assert_eq!(p[0].path, "spec.replicas", "{p:?}");
        }
        // A kind without a vendored schema is not judged.
        assert_eq!(
            check(SchemaSet::Current, &json!({"apiVersion": "v1", "kind": "ConfigMap"}), Intent::Whole).unwrap(),
            None
        );
        // A whole image registry Config of 4.5 needs what an apply patch may leave to the server.
        let cfg = json!({"apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config",
                         "metadata": {"name": "cluster"}, "spec": {"managementState": "Managed"}});
        assert_eq!(check(SchemaSet::V4_5, &cfg, Intent::Apply).unwrap(), Some(vec![]));
        let whole = check(SchemaSet::V4_5, &cfg, Intent::Whole).unwrap().unwrap();
        assert!(whole.iter().any(|p| p.message.contains("required")), "{whole:?}");
    }

    #[test]
    fn core_kinds_are_read_into_their_types() {
        let sc = |extra: Value| {
            let mut o = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                               "metadata": {"name": "fast"}, "provisioner": "kubernetes.io/no-provisioner"});
            if let (Value::Object(m), Value::Object(e)) = (&mut o, extra) {
                m.extend(e);
            }
            check_core(&o).unwrap()
        };
        assert_eq!(sc(json!({"reclaimPolicy": "Retain"})), vec![]);
        let p = sc(json!({"reclaimPolicyy": "Retain"}));
        assert_eq!((p.len(), p[0].at()), (1, "reclaimPolicyy".to_string()), "{p:?}");
        let p = sc(json!({"metadata": {"name": "fast", "labelz": {"a": "b"}}}));
        assert_eq!(p[0].at(), "metadata.labelz", "{p:?}");
        let p = sc(json!({"allowVolumeExpansion": "yes"}));
        assert_eq!(p[0].path, "allowVolumeExpansion", "{p:?}");
        // A partial object (an apply patch) is not asked for what the type requires.
        assert_eq!(
            check_core(&json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"}})),
            Some(vec![])
        );
        assert_eq!(check_core(&json!({"apiVersion": "batch/v1", "kind": "Job"})), None);
        // A Secret's value is never quoted back, even when it is of the wrong type.
        let p = check_core(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                   "stringData": {"token": 42424242}}))
        .unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].path.starts_with("stringData") && !p[0].message.contains("42424242"), "{p:?}");
    }

    #[test]
    fn versions_select_sets() {
        assert_eq!(SchemaSet::for_version(Some("4.5")), SchemaSet::V4_5);
        assert_eq!(SchemaSet::for_version(Some("4.4.3")), SchemaSet::V4_5);
        assert_eq!(SchemaSet::for_version(Some("4.16")), SchemaSet::Current);
        assert_eq!(SchemaSet::for_version(None), SchemaSet::Current);
        assert_eq!(pointer_to_path("/spec/tolerations/0/key"), "spec.tolerations[0].key");
        assert_eq!(re2_to_rust(r"^[^][ ()]+$"), r"^[^\]\[ ()]+$");
        let re = regex_lite_check(&re2_to_rust(r"^[^][ ()]+$"));
        assert!(re("abc") && !re("a]b") && !re("a[b") && !re("a b"));
    }
}
