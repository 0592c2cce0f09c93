//! # groundwork-cluster
//!
//! The cluster side of an install, through the Kubernetes API (kube-rs; the client comes from the
//! engine through the provider context, never opened here):
//!
//! - `cluster.node[NAME]`: the infra role label and the `infra=reserved` taints on an infra node;
//! - `cluster.object[Kind.group/namespace/name]`: the default IngressController, the image registry
//!   config and its PVC, the cluster-monitoring-config ConfigMap, and every manifest under
//!   `openshift.manifests`.
//!
//! Objects are written with server-side apply under one field manager (`groundwork`); the diff looks
//! only at the fields groundwork sets ([`objects::project`]). Every object waits for the
//! install-complete gate (with `fieldValidation=Strict`: a misspelled field is refused, never dropped).
//! The gates themselves and the CSR approvals are in [`gates`] and [`csr`], the caches a gate wait
//! reads from while watches keep them current in [`watched`]; OpenShift's CRD schemas, checked offline,
//! in [`schema`].

pub mod csr;
pub mod gates;
pub mod objects;
pub mod schema;
pub mod watched;

use async_trait::async_trait;
use groundwork_sdk::model::{Environment, IngressNodes, NodeRole};
use groundwork_sdk::{Action, Address, Change, Context, Error, Expansion, Gate, Provider, Resource, Secrets};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

pub const PROVIDER: &str = "cluster";
/// The field manager of every server-side apply groundwork makes.
pub const FIELD_MANAGER: &str = "groundwork";

/// How groundwork writes: server-side apply as the source of truth for its fields (`force`), and strict
/// field validation, so a misspelled field is refused rather than dropped by the server.
fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force().validation_strict()
}
pub const INFRA_LABEL: &str = "node-role.kubernetes.io/infra";

fn infra_tolerations() -> Value {
    json!([
        {"key": "infra", "value": "reserved", "effect": "NoSchedule"},
        {"key": "infra", "value": "reserved", "effect": "NoExecute"}
    ])
}

fn infra_selector() -> Value {
    json!({ INFRA_LABEL: "" })
}

fn object_resource(mut object: Value, secrets: &Secrets) -> Result<Resource, Error> {
    // Never echo the object: it may be a Secret.
    let id = objects::identity(&object).ok_or_else(|| Error::Spec {
        address: "cluster.object[?]".into(),
        message: "an object needs apiVersion, kind and metadata.name".into(),
    })?;
    let address = Address::new(PROVIDER, "object", None, id);
    if objects::is_secret(&object) {
        objects::conceal_desired_secret(&mut object, secrets)
            .map_err(|m| Error::Spec { address: address.to_string(), message: m })?;
    }
    Ok(Resource::new(address, object)?.after(Gate::InstallComplete))
}

/// The cluster objects the inventory implies (none without an `openshift` section).
pub fn resources(env: &Environment, x: &Expansion) -> Result<Vec<Resource>, Error> {
    let Some(os) = &env.openshift else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let has_infra = env.nodes_with_role(NodeRole::Infra).next().is_some();
    let mut node_addrs = Vec::new();
    if os.infra_nodes {
        for n in env.nodes_with_role(NodeRole::Infra) {
            let name = env.node_k8s_name(n);
            let object = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": infra_selector()},
                "spec": {"taints": infra_tolerations()}
            });
            let addr = Address::new(PROVIDER, "node", None, name);
            node_addrs.push(addr.clone());
            out.push(Resource::new(addr, object)?.after(Gate::InstallComplete));
        }
    }
    let on_infra = os.infra_nodes && has_infra;
    // The default router: on the infra nodes when the LB sends 80/443 there (seed §8).
    if env.loadbalancer.ingress == IngressNodes::Infra || os.ingress_replicas.is_some() {
        let mut spec = serde_json::Map::new();
        if let Some(r) = os.ingress_replicas {
            spec.insert("replicas".into(), json!(r));
        }
        if env.loadbalancer.ingress == IngressNodes::Infra && on_infra {
            spec.insert(
                "nodePlacement".into(),
                json!({"nodeSelector": {"matchLabels": infra_selector()}, "tolerations": infra_tolerations()}),
            );
        }
        let ic = json!({
            "apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
            "metadata": {"name": "default", "namespace": "openshift-ingress-operator"},
            "spec": spec
        });
        let mut r = object_resource(ic, x.secrets)?;
        for a in &node_addrs {
            r = r.depends_on(a.clone());
        }
        out.push(r);
    }
    if let Some(reg) = &os.registry {
        let pvc = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": reg.claim, "namespace": "openshift-image-registry"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": reg.size}},
                     "storageClassName": reg.storage_class}
        });
        let pvc = object_resource(pvc, x.secrets)?;
        let mut spec = json!({"managementState": "Managed", "storage": {"pvc": {"claim": reg.claim}}});
        if on_infra {
            spec["nodeSelector"] = infra_selector();
            spec["tolerations"] = infra_tolerations();
        }
        let config = json!({
            "apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config",
            "metadata": {"name": "cluster"}, "spec": spec
        });
        let mut config = object_resource(config, x.secrets)?.depends_on(pvc.address.clone());
        for a in &node_addrs {
            config = config.depends_on(a.clone());
        }
        out.push(pvc);
        out.push(config);
    }
    if os.monitoring_on_infra && on_infra {
        let place = json!({"nodeSelector": infra_selector(), "tolerations": infra_tolerations()});
        let components = [
            "alertmanagerMain",
            "prometheusK8s",
            "prometheusOperator",
            "grafana",
            "k8sPrometheusAdapter",
            "kubeStateMetrics",
            "telemeterClient",
            "openshiftStateMetrics",
            "thanosQuerier",
        ];
        let config: serde_json::Map<String, Value> =
            components.iter().map(|c| (c.to_string(), place.clone())).collect();
        let text = groundwork_sdk::yaml::to_string(&config).map_err(|e| Error::Spec {
            address: "cluster.object[ConfigMap/openshift-monitoring/cluster-monitoring-config]".into(),
            message: e.to_string(),
        })?;
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-monitoring-config", "namespace": "openshift-monitoring"},
            "data": {"config.yaml": text}
        });
        let mut r = object_resource(cm, x.secrets)?;
        for a in &node_addrs {
            r = r.depends_on(a.clone());
        }
        out.push(r);
    }
    if let Some(dir) = &os.manifests {
        out.extend(manifests(x, dir)?);
    }
    link_claims(&mut out);
    Ok(out)
}

/// Every object of every `*.yaml`/`*.yml`/`*.json` in `dir` (YAML files may hold several documents).
pub fn manifests(x: &Expansion, dir: &str) -> Result<Vec<Resource>, Error> {
    let bad = |path: &str, m: String| Error::Spec { address: format!("cluster manifests {path}"), message: m };
    let mut out = Vec::new();
    for path in x.inputs.list(dir, &["yaml", "yml", "json"])? {
        let text = x.inputs.read_text(&path)?;
        // The YAML stack's errors carry no source snippet: a Secret's data is not echoed.
        let docs: Vec<Value> = groundwork_sdk::yaml::documents(&text).map_err(|e| bad(&path, e.to_string()))?;
        for v in docs {
            if v.is_null() {
                continue;
            }
            out.push(object_resource(v, x.secrets).map_err(|e| bad(&path, e.to_string()))?);
        }
    }
    Ok(out)
}

/// A PVC waits for the StorageClass it names when that class is declared too.
fn link_claims(out: &mut [Resource]) {
    let classes: Vec<(String, Address)> = out
        .iter()
        .filter(|r| r.spec["kind"] == "StorageClass")
        .filter_map(|r| Some((r.spec["metadata"]["name"].as_str()?.to_string(), r.address.clone())))
        .collect();
    for r in out.iter_mut().filter(|r| r.spec["kind"] == "PersistentVolumeClaim") {
        let wanted = r.spec["spec"]["storageClassName"].as_str().map(str::to_string);
        for (name, addr) in &classes {
            if wanted.as_deref() == Some(name) && !r.depends_on.contains(addr) {
                r.depends_on.push(addr.clone());
            }
        }
    }
}

fn api_for(client: &Client, object: &Value, address: &Address) -> Result<(Api<DynamicObject>, String), Error> {
    let bad = || Error::Spec {
        address: address.to_string(),
        message: "object lacks apiVersion, kind or metadata.name".into(),
    };
    let (group, version) = objects::group_version(object["apiVersion"].as_str().ok_or_else(bad)?);
    let kind = object["kind"].as_str().ok_or_else(bad)?;
    let name = object["metadata"]["name"].as_str().ok_or_else(bad)?.to_string();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    Ok((api, name))
}

fn client<'a>(cx: &'a Context, address: &Address) -> Result<&'a Client, Error> {
    cx.get::<Client>()
        .ok_or_else(|| Error::failed(address, "no cluster connection: set openshift.kubeconfig or KUBECONFIG"))
}

pub struct ClusterProvider;

#[async_trait]
impl Provider for ClusterProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn read(&self, cx: &Context, resources: &[&Resource]) -> Result<Vec<Option<Value>>, Error> {
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            let client = client(cx, &r.address)?;
            let (api, name) = api_for(client, &r.spec, &r.address)?;
            let live = api.get_opt(&name).await.map_err(|e| Error::failed(&r.address, format!("reading: {e}")))?;
            out.push(match live {
                None => None,
                Some(obj) => {
                    let v = serde_json::to_value(&obj).map_err(|e| Error::failed(&r.address, e.to_string()))?;
                    let mut seen = objects::project(&v, &r.spec);
                    if objects::is_secret(&r.spec) {
                        objects::conceal_live_secret(&mut seen);
                    }
                    let released = objects::released(&v, &r.spec, FIELD_MANAGER);
                    if !released.is_empty() {
                        seen[objects::RELEASE_KEY] = json!(released);
                    }
                    Some(seen)
                }
            });
        }
        Ok(out)
    }

    fn diff(&self, address: &Address, desired: Option<&Value>, actual: Option<&Value>) -> Result<Change, Error> {
        let releases: Vec<String> = actual
            .and_then(|a| a.get(objects::RELEASE_KEY))
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let mut seen = actual.cloned();
        if let Some(Value::Object(m)) = &mut seen {
            m.remove(objects::RELEASE_KEY);
        }
        let same = releases.is_empty() && matches!((desired, &seen), (Some(d), Some(a)) if d == a);
        let mut change = Change::compare(address.clone(), desired, seen.as_ref(), same);
        let secret = |v: Option<&Value>| v.is_some_and(objects::is_secret);
        change.sensitive = secret(desired) || secret(actual);
        match (change.action, desired, seen.as_ref()) {
            (Action::Update, Some(d), Some(a)) => {
                change.details = objects::field_details(d, a);
                change.details.extend(
                    releases
                        .iter()
                        .map(|p| groundwork_sdk::Detail::remove(format!("{p}: no longer in the inventory (released)"))),
                );
            }
            (Action::Delete, None, Some(a)) if objects::released_not_deleted(a) => {
                change.details = vec![groundwork_sdk::Detail::remove("release groundwork's fields (the object stays)")]
            }
            _ => {}
        }
        Ok(change)
    }

    async fn apply(&self, cx: &Context, change: &Change) -> Result<(), Error> {
        let address = &change.address;
        let client = client(cx, address)?;
        let failed = |what: &str, e: kube::Error| Error::failed(address, format!("{what}: {e}"));
        match (change.action, &change.after, &change.before) {
            (Action::Create | Action::Update | Action::Replace, Some(object), _) => {
                let (api, name) = api_for(client, object, address)?;
                // Secret content joins the object only now, on its way to the API server.
                let object = cx.reveal(address, object)?;
                api.patch(&name, &apply_params(), &Patch::Apply(&object))
                    .await
                    .map_err(|e| failed("server-side apply", e))?;
            }
            (Action::Delete, _, Some(object)) => {
                let (api, name) = api_for(client, object, address)?;
                if objects::released_not_deleted(object) {
                    // Applying only the identity releases every field groundwork owned.
                    let mut bare = json!({"apiVersion": object["apiVersion"], "kind": object["kind"],
                                          "metadata": {"name": name}});
                    if let Some(ns) = object["metadata"].get("namespace") {
                        bare["metadata"]["namespace"] = ns.clone();
                    }
                    api.patch(&name, &apply_params(), &Patch::Apply(&bare))
                        .await
                        .map_err(|e| failed("releasing fields", e))?;
                } else {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.is_not_found() => {}
                        Err(e) => return Err(failed("deleting", e)),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
