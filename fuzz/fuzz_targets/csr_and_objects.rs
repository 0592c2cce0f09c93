//! Cluster state: CSR requests (PEM/PKCS#10 from the API) and live objects' managedFields.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = groundwork_cluster::csr::parse_request(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = groundwork_cluster::objects::owned_paths(&v, "groundwork");
        let _ = groundwork_cluster::objects::released(&v, &v, "groundwork");
        let _ = groundwork_cluster::objects::project(&v, &v);
        let _ = groundwork_cluster::objects::field_details(&v, &serde_json::Value::Null);
    }
});
