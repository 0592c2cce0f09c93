//! Ownership records: what groundwork wrote on each host, kept on that host so every pipeline
//! runner sees the same record. Only what is recorded is ever deleted.

use crate::error::{Error, Result};
use groundwork_sdk::{Address, Cmd, Resource, Transport, WriteOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const STATE_DIR: &str = "/var/lib/groundwork";

pub fn state_path(environment: &str) -> String {
    format!("{STATE_DIR}/{environment}.state.json")
}

/// The record on one host: address → the spec it was last applied with.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub format_version: u32,
    pub environment: String,
    /// Written by an environment that shares the host (`cluster.shared_infra`): its resources are its
    /// own parts, which the others merge with. Without it, the environment owns its files whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_infra: bool,
    pub resources: BTreeMap<Address, Recorded>,
}

/// One recorded resource as the record's JSON holds it, parsed only where it is needed: a plan needs
/// every address, but a spec only of what is deleted or merged with others (at 2000 nodes, every entry
/// parsed held 5 MB for the plan's whole run).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recorded(Box<serde_json::value::RawValue>);

impl Recorded {
    pub fn new(r: &Resource) -> std::result::Result<Recorded, groundwork_sdk::Error> {
        serde_json::value::to_raw_value(r)
            .map(Recorded)
            .map_err(|e| groundwork_sdk::Error::Spec { address: r.address.to_string(), message: e.to_string() })
    }

    /// The resource, parsed.
    pub fn resource(&self) -> std::result::Result<Resource, groundwork_sdk::Error> {
        serde_json::from_str(self.0.get())
            .map_err(|e| groundwork_sdk::Error::Spec { address: "an ownership record".into(), message: e.to_string() })
    }

    /// The spec it was applied with.
    pub fn spec(&self) -> std::result::Result<serde_json::Value, groundwork_sdk::Error> {
        self.resource().map(|r| r.spec)
    }
}

impl PartialEq for Recorded {
    fn eq(&self, other: &Recorded) -> bool {
        self.0.get() == other.0.get()
    }
}

/// [`Record::scrub`] of one resource: whether anything was replaced.
fn scrub_resource(r: &mut Resource) -> bool {
    let mut changed = false;
    let spec = &mut r.spec;
    if r.address.provider == "files" && spec.get("sensitive").and_then(|v| v.as_bool()) == Some(true) {
        if let Some(serde_json::Value::String(text)) = spec.as_object_mut().and_then(|m| m.remove("content")) {
            spec["secret"] =
                serde_json::to_value(groundwork_sdk::SecretRef::of(text.as_bytes())).unwrap_or(serde_json::Value::Null);
            changed = true;
        }
    }
    if r.address.provider == "cluster" && groundwork_cluster::objects::is_secret(spec) {
        let before = spec.clone();
        groundwork_cluster::objects::conceal_live_secret(spec);
        if let Some(serde_json::Value::Object(data)) = before.get("stringData") {
            for (k, v) in data {
                let bytes = v.as_str().unwrap_or_default().as_bytes();
                spec["data"][k] = serde_json::to_value(
                    groundwork_sdk::SecretRef::of(bytes).encoded(groundwork_sdk::secret::Encoding::Base64),
                )
                .unwrap_or(serde_json::Value::Null);
            }
        }
        changed |= *spec != before;
    }
    changed
}

/// Records written since secret content is carried by digest only.
pub const RECORD_FORMAT_VERSION: u32 = 2;

impl Record {
    pub fn new(environment: &str) -> Self {
        Record {
            format_version: RECORD_FORMAT_VERSION,
            environment: environment.to_string(),
            shared_infra: false,
            resources: BTreeMap::new(),
        }
    }

    /// Replace secret content an older version kept in the record (an ignition file's `content`, a
    /// Secret's `data`) by its digest. Returns whether anything was replaced: the record must then be
    /// written back.
    pub fn scrub(&mut self) -> std::result::Result<bool, groundwork_sdk::Error> {
        let mut changed = false;
        for (address, recorded) in self.resources.iter_mut() {
            // Only a sensitive file's content or a cluster Secret can be: nothing else is parsed.
            let raw = recorded.0.get();
            let may_hold = match address.provider.as_str() {
                "files" => raw.contains("\"content\"") && !raw.contains("\"sensitive\":false"),
                "cluster" => raw.contains("Secret"),
                _ => false,
            };
            if !may_hold {
                continue;
            }
            // An entry that may hold secret content and cannot be read is not kept as it is.
            let mut r = recorded.resource()?;
            if scrub_resource(&mut r) {
                *recorded = Recorded::new(&r)?;
                changed = true;
            }
        }
        if changed || self.format_version < RECORD_FORMAT_VERSION {
            self.format_version = RECORD_FORMAT_VERSION;
        }
        Ok(changed)
    }
}

/// Prints every ownership record on the host as `NAME BYTES\n` and the record itself: what the other
/// environments sharing the host own. Read-only; in the same batch as the host's other reads.
const LIST_RECORDS: &str = r#"export LC_ALL=C
for f in /var/lib/groundwork/*.state.json; do
  [ -f "$f" ] || continue
  c=$(cat "$f") || continue
  printf '%s %s\n%s' "${f##*/}" "${#c}" "$c"
done"#;

/// The command that lists every environment's record on a host.
pub fn list_records() -> Cmd {
    Cmd::new("sh").arg("-c").arg(LIST_RECORDS)
}

/// The records of the other environments, from [`list_records`]'s output.
pub fn parse_records(host: &str, out: &[u8], own: &str) -> Result<Vec<Record>> {
    let bad = |message: String| Error::Host { host: host.to_string(), message };
    let mut rest = out;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("record list cut short".into()))?;
        let head = String::from_utf8_lossy(&rest[..nl]).to_string();
        let (name, len) = head.rsplit_once(' ').ok_or_else(|| bad(format!("record list: bad line {head:?}")))?;
        let len: usize = len.parse().map_err(|_| bad(format!("record list: bad line {head:?}")))?;
        let body = rest.get(nl + 1..nl + 1 + len).ok_or_else(|| bad(format!("{name}: record cut short")))?;
        rest = &rest[nl + 1 + len..];
        if name == format!("{own}.state.json") {
            continue;
        }
        let mut record: Record = serde_json::from_slice(body)
            .map_err(|e| bad(format!("{STATE_DIR}/{name}: unreadable ownership record of another environment: {e}")))?;
        if record.environment == own {
            continue;
        }
        record.scrub().map_err(|e| bad(format!("{STATE_DIR}/{name}: {e}")))?;
        records.push(record);
    }
    Ok(records)
}

pub async fn read(t: &dyn Transport, environment: &str) -> Result<Record> {
    read_scrubbed(t, environment).await.map(|(record, _)| record)
}

/// The record, and whether it held secret content an older version wrote (it must then be written back).
pub async fn read_scrubbed(t: &dyn Transport, environment: &str) -> Result<(Record, bool)> {
    match t.read_file(&state_path(environment)).await {
        Ok(bytes) => parse_scrubbed(t.host(), environment, bytes.as_deref()),
        Err(e) => Err(Error::Host { host: t.host().to_string(), message: e.to_string() }),
    }
}

/// [`read_scrubbed`] of the record's bytes as read (None: there is no record).
pub fn parse_scrubbed(host: &str, environment: &str, bytes: Option<&[u8]>) -> Result<(Record, bool)> {
    let Some(bytes) = bytes else { return Ok((Record::new(environment), false)) };
    let mut record: Record = serde_json::from_slice(bytes).map_err(|e| Error::Host {
        host: host.to_string(),
        message: format!("{}: unreadable ownership record: {e}", state_path(environment)),
    })?;
    // Never hold secret content in memory from an older record; it is written back scrubbed.
    let scrubbed = record.scrub().map_err(|e| Error::Host {
        host: host.to_string(),
        message: format!("{}: unreadable ownership record: {e}", state_path(environment)),
    })?;
    Ok((record, scrubbed))
}

/// A record that does not say whether its environment shares the host as it now does (and holds
/// something): it must be written again saying so.
pub fn needs_shared_mark(record: &Record, shared_infra: bool) -> bool {
    record.shared_infra != shared_infra && !record.resources.is_empty()
}

/// Remove an environment's record from the host (nothing of it is left there).
pub async fn remove(t: &dyn Transport, environment: &str) -> Result<()> {
    let path = state_path(environment);
    t.remove_file(&path).await.map_err(|e| Error::Host { host: t.host().to_string(), message: e.to_string() })
}

pub async fn write(t: &dyn Transport, record: &Record) -> Result<()> {
    let path = state_path(&record.environment);
    // Compact: every plan reads it (1.2 MB pretty-printed at 1000 nodes); `jq .` shows it indented.
    let bytes = serde_json::to_vec(record).map_err(|e| Error::Io { path: path.clone(), message: e.to_string() })?;
    t.write_file(&path, &bytes, &WriteOptions { mode: Some(0o600), ..Default::default() })
        .await
        .map_err(|e| Error::Host { host: t.host().to_string(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn other_environments_records_are_read_from_one_listing() {
        let a = serde_json::to_string(&Record::new("a")).unwrap();
        let mut b = Record::new("b");
        let addr = Address::new("firewalld", "service", Some("lb1"), "public/https");
        b.resources.insert(
            addr.clone(),
            Recorded::new(&Resource::new(addr.clone(), json!({"zone": "public", "name": "https"})).unwrap()).unwrap(),
        );
        let b = serde_json::to_string(&b).unwrap();
        let out = format!("a.state.json {}\n{a}b.state.json {}\n{b}", a.len(), b.len());
        let others = parse_records("lb1", out.as_bytes(), "a").unwrap();
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].environment, "b");
        assert!(others[0].resources.contains_key(&addr));
        assert!(parse_records("lb1", b"", "a").unwrap().is_empty());
        let cut = format!("b.state.json {}\n{}", b.len(), &b[..10]);
        assert!(parse_records("lb1", cut.as_bytes(), "a").unwrap_err().to_string().contains("cut short"));
        let bad = "b.state.json 3\n{{{";
        assert!(parse_records("lb1", bad.as_bytes(), "a").unwrap_err().to_string().contains("another environment"));
    }

    #[test]
    fn a_record_is_written_back_as_it_was_read_and_parsed_entry_by_entry() {
        let text = r#"{"format_version":2,"environment":"lab","resources":{"files.file[bastion:/srv/a]":{"address":"files.file[bastion:/srv/a]","spec":{"path":"/srv/a","z":[1,2]},"depends_on":["files.dir[bastion:/srv]"],"lifecycle":{}}}}"#;
        let mut record: Record = serde_json::from_str(text).unwrap();
        assert!(!record.scrub().unwrap());
        assert_eq!(serde_json::to_string(&record).unwrap(), text);
        let addr = Address::parse("files.file[bastion:/srv/a]").unwrap();
        let r = record.resources[&addr].resource().unwrap();
        assert_eq!(r.address, addr);
        assert_eq!(r.spec, json!({"path": "/srv/a", "z": [1, 2]}));
        assert_eq!(r.depends_on, [Address::parse("files.dir[bastion:/srv]").unwrap()]);
    }

    #[test]
    fn an_unreadable_entry_that_may_hold_a_secret_is_refused_not_kept() {
        let text = r#"{"format_version":1,"environment":"lab","resources":{"files.file[bastion:/srv/m.ign]":{"spec":{"content":"SENTINEL","sensitive":true}}}}"#;
        let err = parse_scrubbed("bastion", "lab", Some(text.as_bytes())).unwrap_err().to_string();
        assert!(err.contains("unreadable ownership record") && !err.contains("SENTINEL"), "{err}");
    }

    #[test]
    fn records_of_older_versions_lose_their_secret_content() {
        let text = json!({"format_version": 1, "environment": "lab", "resources": {
            "files.file[bastion:/srv/www/master.ign]": {"address": "files.file[bastion:/srv/www/master.ign]",
                "spec": {"path": "/srv/www/master.ign", "content": "SENTINEL-IGN", "sensitive": true, "sha256": "x"}},
            "files.file[bastion:/srv/www/notice.txt]": {"address": "files.file[bastion:/srv/www/notice.txt]",
                "spec": {"path": "/srv/www/notice.txt", "content": "public", "sensitive": false}},
            "cluster.object[Secret/n/s]": {"address": "cluster.object[Secret/n/s]",
                "spec": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
                         "data": {"a": "U0VOVElORUwtREFUQQ=="}, "stringData": {"b": "SENTINEL-STRING"}}}
        }});
        let mut record: Record = serde_json::from_value(text).unwrap();
        assert!(record.scrub().unwrap());
        let out = serde_json::to_string(&record).unwrap();
        assert!(!out.contains("SENTINEL") && !out.contains("U0VOVElORUwtREFUQQ"), "{out}");
        assert!(out.contains("public"), "non-secret content stays");
        assert_eq!(record.format_version, RECORD_FORMAT_VERSION);
        assert!(!record.scrub().unwrap(), "scrubbing twice changes nothing");
    }
}
