//! docs/environment.md against the schema: every field the loader accepts (serde's own list of field
//! names for each section's type) is named in that section's row of the reference table, and every
//! section has a row. A field added to the model without its documentation fails here.

use groundwork_sdk::model::*;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names serde expects for `T` (what `deny_unknown_fields` accepts).
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab<'a>(&'a mut Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<E: std::fmt::Display>(_: E) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for Grab<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut got = None;
    let _ = T::deserialize(Grab(&mut got));
    got.unwrap_or_else(|| panic!("{} is not a plain struct", std::any::type_name::<T>()))
}

fn row<'a>(doc: &'a str, section: &str) -> &'a str {
    doc.lines()
        .find(|l| l.starts_with(&format!("| `{section}` |")))
        .unwrap_or_else(|| panic!("docs/environment.md has no row for `{section}`"))
}

#[test]
fn every_field_of_every_section_is_in_the_reference() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/environment.md")).unwrap();
    let checks: Vec<(&str, &str, &[&str])> = vec![
        ("cluster", "Cluster", fields::<Cluster>()),
        ("networks", "Networks", fields::<Networks>()),
        ("networks", "ClusterNetwork", fields::<ClusterNetwork>()),
        ("hosts", "Host", fields::<Host>()),
        ("hosts", "Vips", fields::<Vips>()),
        ("ssh", "SshSettings", fields::<SshSettings>()),
        ("nodes", "Node", fields::<Node>()),
        ("nodes", "StaticAddressing", fields::<StaticAddressing>()),
        ("dns", "DnsSettings", fields::<DnsSettings>()),
        ("dns", "NamedOptions", fields::<NamedOptions>()),
        ("dhcp", "DhcpSettings", fields::<DhcpSettings>()),
        ("dhcp", "PxeSettings", fields::<PxeSettings>()),
        ("loadbalancer", "LoadBalancerSettings", fields::<LoadBalancerSettings>()),
        ("files", "FilesSettings", fields::<FilesSettings>()),
        ("files", "ServedFile", fields::<ServedFile>()),
        ("tftp", "TftpSettings", fields::<TftpSettings>()),
        ("firewall", "FirewallSettings", fields::<FirewallSettings>()),
        ("firewall", "CustomService", fields::<CustomService>()),
        ("selinux", "SelinuxSettings", fields::<SelinuxSettings>()),
        ("selinux", "FcontextRule", fields::<FcontextRule>()),
        ("services", "ServicesSettings", fields::<ServicesSettings>()),
        ("openshift", "OpenShiftSettings", fields::<OpenShiftSettings>()),
        ("openshift", "RegistrySettings", fields::<RegistrySettings>()),
    ];
    let mut missing = Vec::new();
    for (section, ty, names) in checks {
        let r = row(&doc, section);
        for f in names {
            // Named as `field`, `field:` or `{ field,` in the row.
            let named = r.contains(&format!("`{f}`"))
                || r.contains(&format!("{f}:"))
                || r.contains(&format!("{{ {f},"))
                || r.contains(&format!(", {f},"))
                || r.contains(&format!(", {f} "))
                || r.contains(&format!(", {f}}}"))
                || r.contains(&format!("{{ {f} "))
                || r.contains(&format!("{f}\\|"))
                || r.contains(&format!("\\|{f}"));
            if !named {
                missing.push(format!("{section} ({ty}): {f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields the loader accepts but docs/environment.md does not name:\n{}",
        missing.join("\n")
    );
}
