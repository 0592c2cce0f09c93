//! The certificates an ignition config carries (files, CA bundles, as `data:` URLs) and when the first
//! of them expires. The installer's certificates are good for 24 h: the file's age only estimates that,
//! the certificates say it. Nothing of them is ever quoted.

use base64::Engine;
use serde_json::Value;

/// The earliest not-after (seconds since the epoch) of the X.509 certificates in `data:` URLs anywhere
/// in an ignition config; None when it carries none (or is not JSON).
pub fn earliest_not_after(ignition: &[u8]) -> Option<i64> {
    let v: Value = serde_json::from_slice(ignition).ok()?;
    let mut urls = Vec::new();
    data_urls(&v, &mut urls);
    urls.iter().filter_map(|u| decode_data_url(u)).flat_map(|bytes| not_afters(&bytes)).min()
}

fn data_urls<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) if s.starts_with("data:") => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| data_urls(x, out)),
        Value::Object(o) => o.values().for_each(|x| data_urls(x, out)),
        _ => {}
    }
}

/// RFC 2397: `data:[<mediatype>][;base64],<data>`, the data base64 or percent-encoded.
fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let (head, data) = url.strip_prefix("data:")?.split_once(',')?;
    if head.ends_with(";base64") {
        return base64::engine::general_purpose::STANDARD.decode(data.trim()).ok();
    }
    let bytes = data.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Not-after of every PEM certificate in `bytes` (a file may hold a key and a chain).
fn not_afters(bytes: &[u8]) -> Vec<i64> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let Ok(text) = std::str::from_utf8(bytes) else { return Vec::new() };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(end) = after.find(END) else { break };
        let body: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body) {
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) {
                out.push(cert.validity().not_after.timestamp());
            }
        }
        rest = &after[end + END.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed certificate (openssl req -x509 -days 1), not after 2026-12-03 05:48:41 UTC.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUIwq1Z6XCH68A0lcxv0OSr8qnROQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJZ3ctdGVzdGNhMB4XDTI2MTIwMjA1NDg0MVoXDTI2MTIwMzA1
NDg0MVowFDESMBAGA1UEAwwJZ3ctdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEZQ4R8636wTYojRub2FsTBgC6fJk6p7Cq3Axr0BWiVB1U6upmqyLD6XoM
oRN1FgByDO790P/PCn3tMLsm2THsxaNTMFEwHQYDVR0OBBYEFKH45F/q0v8x9tLh
0HG/H4kpS7L7MB8GA1UdIwQYMBaAFKH45F/q0v8x9tLh0HG/H4kpS7L7MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgQ1Bo+de2IFUZHUMys3Tm9cFG
hOO+GLp6k/0F+dU0kfcCICcHWOflyPTssUud8Dn2pr+N8ohnjmKGBn+uIRXgiUUM
-----END CERTIFICATE-----
";

    #[test]
    fn the_earliest_certificate_of_a_config_is_found_in_any_data_url() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(CERT);
        let pct: String = CERT.bytes().map(|b| format!("%{b:02X}")).collect();
        for config in [
            serde_json::json!({"ignition": {"version": "3.1.0"}, "storage": {"files": [
                {"path": "/k", "contents": {"source": "data:,plain"}},
                {"path": "/c", "contents": {"source": format!("data:;base64,{b64}")}}]}}),
            serde_json::json!({"ignition": {"version": "3.1.0", "security": {"tls": {"certificateAuthorities": [
                {"source": format!("data:text/plain;charset=utf-8,{pct}")}]}}}}),
        ] {
            let bytes = serde_json::to_vec(&config).unwrap();
            assert_eq!(earliest_not_after(&bytes), Some(1_796_276_921), "{config}");
        }
        assert_eq!(earliest_not_after(br#"{"ignition":{"version":"3.1.0"}}"#), None);
        assert_eq!(earliest_not_after(b"not json"), None);
        assert_eq!(earliest_not_after(br#"{"a":"data:;base64,!!!"}"#), None);
    }
}
