//! What the SSH transport's batched read, digest and query scripts print (any bytes a host may send back).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let paths = vec!["/a".to_string(), "/b".to_string(), "/c".to_string()];
    let _ = groundwork::transport::ssh::parse_read_output(&paths, data);
    let _ = groundwork::transport::ssh::parse_batch_output(&paths[..1], &paths[1..], 2, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork::transport::ssh::parse_meta_output(&paths, text);
    }
});
