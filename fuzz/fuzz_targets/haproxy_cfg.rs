//! haproxy.cfg and the stats socket's `show stat` CSV.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork_haproxy::read_config(text);
        let _ = groundwork_haproxy::servers(text);
        let _ = groundwork_haproxy::parse_show_stat(text);
    }
});
