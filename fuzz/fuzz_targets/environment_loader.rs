//! The environment loader on arbitrary text: returns (valid, or a located error), never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let d = dir().path();
    if std::fs::write(d.join("environment.yaml"), text).is_err() {
        return;
    }
    if let Err(groundwork::config::ConfigError::Syntax(s)) = groundwork::config::load_valid(d) {
        assert!(s.line >= 1 && s.column >= 1, "unlocated syntax error: {s}");
    }
});
