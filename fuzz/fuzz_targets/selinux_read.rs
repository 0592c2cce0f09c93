//! The SELinux read: store customizations (export form), `semanage boolean/port -l`, setfiles dry runs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork_selinux::parse_export(text);
        let _ = groundwork_selinux::parse_boolean_list(text);
        let _ = groundwork_selinux::parse_port_list(text, &[("tcp".into(), 80), ("tcp".into(), 22623)]);
        let _ = groundwork_selinux::parse_relabel(text);
        let _ = groundwork_selinux::regex_base(text);
    }
});
