//! Zone files as read from a name server.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork_bind::zone::parse(text, "lab.example.test");
    }
});
