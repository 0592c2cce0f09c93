//! The firewalld read: `firewall-cmd --list-all` text, busctl JSON, service XML.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork_firewalld::parse_snapshot(text);
        let _ = groundwork_firewalld::parse_service_xml("x", text);
    }
});
