//! dhcpd.conf and kea-dhcp4.conf as read from a DHCP host.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = groundwork_dhcpd::read_conf(text);
        let _ = groundwork_kea::read_boot_files(text);
        let _ = groundwork_dhcpd::parse_pins(text);
        let _ = groundwork_kea::parse_reservations(text);
    }
});
