//! The one YAML stack of the project (serde-saphyr, which kube also uses): every YAML read or written —
//! inventories, manifests, install-config, kubeconfigs — goes through here, with the same options.
//!
//! Errors never carry a snippet of the source: a manifest may hold a Secret, and a message must not echo
//! it (the inventory's own errors are rendered with their source by the loader, which knows the file).

pub use serde_saphyr::Error;

/// YAML 1.2 as the inventory means it: `yes`/`no` are strings, not booleans; duplicate keys are errors;
/// merge keys (`<<`) apply; no source snippets in errors.
pub fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o.with_snippet = false;
    o.crop_radius = 0;
    o
}

pub fn from_str<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// For files written elsewhere and vendored as they are (openshift/api's 4.5 CRDs repeat a key): a
/// repeated key keeps its last value, as the Go YAML readers that consumed them did. Never for inventories.
pub fn from_str_last_key_wins<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    let mut o = options();
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    serde_saphyr::from_str_with_options(text, o)
}

pub fn from_slice<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    serde_saphyr::from_slice_with_options(bytes, options())
}

/// Every document of a multi-document stream (`---` separated), empty ones skipped.
pub fn documents<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, Error> {
    serde_saphyr::from_str_multiple_with_options(text, options())
}

/// Plain or quoted scalars only: a long value (an SSH key) stays on one line, as people and other
/// tools write it, instead of a folded block.
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, o)
}

/// A document that does not parse or does not fit its type: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The path of the value at fault (`nodes[5].name`), empty at the root.
    pub path: String,
    /// The deserializer's message, without its location.
    pub message: String,
    /// 1-based, when known.
    pub line: usize,
    pub column: usize,
    /// Byte offset, when known.
    pub offset: Option<usize>,
}

/// Deserialize, remembering the path of the value that failed (serde_path_to_error) and where it is.
pub fn from_str_located<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Located> {
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let loc = e.location();
        Located {
            path: if path == "." { String::new() } else { path },
            message: message(&e),
            line: loc.map(|l| l.line() as usize).filter(|l| *l > 0).unwrap_or(1),
            column: loc.map(|l| l.column() as usize).filter(|c| *c > 0).unwrap_or(1),
            offset: loc.and_then(|l| l.span().byte_offset()).map(|o| o as usize),
        }
    })
}

/// The message of an error without its location (callers that know the file say where).
pub fn message(e: &Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    // serde-saphyr ends a message with ` at line L, column C`.
    match first.rfind(" at line ") {
        Some(i) if first[i..].contains(", column ") => first[..i].to_string(),
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_one_point_two_and_no_echo() {
        #[derive(serde::Deserialize, Debug)]
        struct S {
            #[allow(dead_code)]
            b: bool,
        }
        assert!(from_str::<S>("b: yes\n").is_err(), "yes is not a boolean");
        assert!(from_str::<S>("b: true\n").is_ok());
        assert!(from_str::<serde_json::Value>("a: 1\na: 2\n").is_err(), "duplicate keys");
        let e = from_str::<S>("b: \"s3cr3t-token\"\n").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let docs: Vec<serde_json::Value> = documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}
