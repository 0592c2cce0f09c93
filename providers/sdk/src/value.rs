//! Typed inventory values. Every value that reaches a config file, a path or a command on a host is one
//! of these, checked when the environment is loaded (a bad value is a YAML error at file:line:column).
//! Renderers still escape whatever their format needs; these types make sure that nothing a renderer
//! receives can close a block, start a new line or leave its directory.
//!
//! | type | what | rule |
//! |---|---|---|
//! | [`Label`] | cluster, node and host names | RFC 1123 label: `a-z 0-9 -`, 1–63, no `-` at either end |
//! | [`DomainName`] | base domain, zone, record targets | labels of `a-z 0-9 - _`, ≤ 253, trailing dot optional |
//! | [`MacAddr`] | node MACs | six pairs of hex digits and `:`, unicast |
//! | [`RemotePath`] | files on an infra host | absolute, normalised, `A-Z a-z 0-9 . _ - + @ , = : ~ /` |
//! | [`RelPath`] | served paths, TFTP boot files | relative, normalised, no `..` or hidden component |
//! | [`HaproxyName`] | frontend names | `A-Z a-z 0-9 - _ . :`, 1–64 |
//! | [`FirewalldName`] | zones, services | `A-Z a-z 0-9 - _ . +`, 1–63, no `..` |
//! | [`SelinuxName`] | types, booleans | `A-Z a-z 0-9 _`, not starting with a digit |
//! | [`PosixName`] | users, groups | `A-Z a-z 0-9 _ . -`, 1–32, not starting with `-` |
//! | [`UnitName`] | systemd units | `A-Z a-z 0-9 : _ . @ -`, 1–128, not starting with `-` or `.` |
//! | [`PackageName`] | rpm / deb packages | `a-z 0-9 + . - _`, 1–128, starting with a letter or digit |
//! | [`EnvVarName`] | environment variables | `A-Z a-z 0-9 _`, not starting with a digit |
//! | [`ProxyUrl`] | install-config proxy | `http(s)://` and URL characters, no spaces or quotes |
//! | [`NoProxyEntry`] | install-config noProxy | `A-Z a-z 0-9 . - _ : / *` |
//! | [`ImageRepo`] | mirror registries | `a-z 0-9 . _ - / : @`, no `//` |
//! | [`Text`] | descriptions | printable, one line, ≤ 512 bytes |
//! | [`Argv`] | commands | non-empty argv, no NUL |
//! | [`PortProto`] | `22623/tcp` | port 1–65535, tcp, udp, sctp or dccp |
//! | [`Sha256Hex`] | served files known by digest | 64 lowercase hex digits |
//! | [`DnsRecord`] | extra records | a closed set of types, each value typed (TXT ≤ 255 bytes a string) |

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

macro_rules! string_type {
    ($(#[$m:meta])* $name:ident, $check:path) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $check(s).map($name)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;
            fn try_from(s: &str) -> Result<Self, String> {
                $check(s.to_string()).map($name)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::try_from(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A literal known to satisfy the rule (the model's defaults).
            #[allow(dead_code)]
            pub(crate) fn known(s: &'static str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

/// Printable for a message: the value in quotes with escapes, cut short.
fn shown(s: &str) -> String {
    let q = format!("{s:?}");
    if q.len() > 80 {
        format!(
            "{}…\"",
            &q[..q.char_indices().take_while(|(i, _)| *i < 76).last().map(|(i, c)| i + c.len_utf8()).unwrap_or(0)]
        )
    } else {
        q
    }
}

/// `s` when it is 1 to `max` bytes, every byte `allowed`, and `also` holds; else `what` says what it is
/// not.
fn word(
    s: String,
    max: usize,
    allowed: impl Fn(u8) -> bool,
    also: impl Fn(&str) -> bool,
    what: &str,
) -> Result<String, String> {
    if !s.is_empty() && s.len() <= max && s.bytes().all(allowed) && also(&s) {
        Ok(s)
    } else {
        Err(format!("{} is not {what}", shown(&s)))
    }
}

fn label_ok(l: &str, extra: &[u8]) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || extra.contains(c))
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn check_label(s: String) -> Result<String, String> {
    if label_ok(&s, &[]) {
        Ok(s)
    } else {
        Err(format!(
            "{} is not a DNS label (RFC 1123: lowercase letters, digits and '-', 1 to 63 characters, no '-' at either end)",
            shown(&s)
        ))
    }
}

string_type!(
    /// An RFC 1123 DNS label: a cluster, node or infra host name.
    Label,
    check_label
);

fn check_domain(s: String) -> Result<String, String> {
    // Names are case-insensitive: kept lowercase.
    let lower = s.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| label_ok(l, b"_"));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{} is not a domain name (labels of lowercase letters, digits, '-' and '_', separated by '.', at most 253 characters)",
            shown(&s)
        ))
    }
}

string_type!(
    /// A domain name, absolute, lowercase, without the trailing dot (which is accepted on input).
    DomainName,
    check_domain
);

fn check_mac(s: String) -> Result<String, String> {
    let bad = || format!("{} is not a MAC address like 00:50:56:96:11:c2 (six pairs of hex digits)", shown(&s));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 || !parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(bad());
    }
    let first = u8::from_str_radix(parts[0], 16).map_err(|_| bad())?;
    if first & 1 == 1 {
        return Err(format!("{} is a multicast address, not a NIC's", shown(&s)));
    }
    Ok(s.to_ascii_lowercase())
}

string_type!(
    /// A unicast MAC address, kept lowercase: `00:50:56:96:11:c2`.
    MacAddr,
    check_mac
);

impl MacAddr {
    pub fn octets(&self) -> [u8; 6] {
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(self.0.split(':')) {
            *o = u8::from_str_radix(p, 16).unwrap_or_default();
        }
        out
    }
}

const PATH_CHARS: &[u8] = b"._-+@,=:~";

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || PATH_CHARS.contains(&b)
}

/// Components of a path: non-empty, not `.` or `..`, of safe characters.
fn components(s: &str, what: &str, hidden: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => continue,
            ".." => return Err(format!("{} has a '..' component: {what}s stay inside their directory", shown(s))),
            c if !c.bytes().all(path_char) => {
                return Err(format!(
                    "{} has characters outside A-Z a-z 0-9 . _ - + @ , = : ~ (no spaces, quotes, line breaks or NUL)",
                    shown(s)
                ))
            }
            c if !hidden && c.starts_with('.') => {
                return Err(format!("{} has a hidden component {c:?}: not allowed in a {what}", shown(s)))
            }
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

fn check_remote_path(s: String) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{} is not an absolute path", shown(&s)));
    }
    if s.len() > 4096 {
        return Err("a path longer than 4096 bytes".into());
    }
    let parts = components(&s, "path", true)?;
    Ok(format!("/{}", parts.join("/")))
}

string_type!(
    /// An absolute path on an infra host, normalised (`//` and `/./` collapsed; no `..`).
    RemotePath,
    check_remote_path
);

impl RemotePath {
    /// `self/rel`, which stays below `self`.
    pub fn join(&self, rel: &RelPath) -> String {
        format!("{}/{}", self.0.trim_end_matches('/'), rel.0)
    }

    /// `self/label`: a directory below `self` named by a DNS label (no `/`, no `..`).
    pub fn child(&self, label: &Label) -> RemotePath {
        RemotePath(format!("{}/{}", self.0.trim_end_matches('/'), label.0))
    }
}

fn check_rel_path(s: String) -> Result<String, String> {
    if s.len() > 1024 {
        return Err("a path longer than 1024 bytes".into());
    }
    let parts = components(&s, "served path", false)?;
    if parts.is_empty() {
        return Err(format!("{} is empty: a path names a file", shown(&s)));
    }
    Ok(parts.join("/"))
}

string_type!(
    /// A path relative to a directory (a served file under the docroot, a boot file under the TFTP
    /// root), normalised: `a`, `/a` and `./a` are one path; never `..` nor a hidden component.
    RelPath,
    check_rel_path
);

fn check_haproxy_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    word(s, 64, allowed, |_| true, "an HAProxy name (letters, digits, '-', '_', '.', ':', 1 to 64)")
}

string_type!(
    /// A frontend or backend name in haproxy.cfg.
    HaproxyName,
    check_haproxy_name
);

fn check_firewalld_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.+".contains(&b);
    let also = |s: &str| s.as_bytes()[0].is_ascii_alphanumeric() && !s.contains("..");
    word(
        s,
        63,
        allowed,
        also,
        "a firewalld zone or service name (letters, digits, '-', '_', '.', '+', starting with a letter or digit)",
    )
}

string_type!(
    /// A firewalld zone or service name (also a file name under /etc/firewalld).
    FirewalldName,
    check_firewalld_name
);

fn check_selinux_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    word(s, 128, allowed, |s| !s.as_bytes()[0].is_ascii_digit(), "an SELinux identifier (letters, digits and '_')")
}

string_type!(
    /// An SELinux type or boolean name.
    SelinuxName,
    check_selinux_name
);

fn check_posix_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_.-".contains(&b);
    word(s, 32, allowed, |s| !s.starts_with('-'), "a user or group name (letters, digits, '_', '.', '-', 1 to 32)")
}

string_type!(
    /// A user or group name.
    PosixName,
    check_posix_name
);

fn check_unit_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b":_.@-".contains(&b);
    word(
        s,
        128,
        allowed,
        |s| !s.starts_with(['-', '.']),
        "a systemd unit name (letters, digits, ':', '_', '.', '@', '-')",
    )
}

string_type!(
    /// A systemd unit (`named`, `tftp.socket`, `getty@tty1`).
    UnitName,
    check_unit_name
);

fn check_package_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-_".contains(&b);
    word(
        s,
        128,
        allowed,
        |s| s.as_bytes()[0].is_ascii_alphanumeric(),
        "a package name (lower-case letters, digits, '+', '.', '-', '_', starting with a letter or digit)",
    )
}

string_type!(
    /// An rpm or Debian package name.
    PackageName,
    check_package_name
);

fn check_env_var_name(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    word(s, 128, allowed, |s| !s.as_bytes()[0].is_ascii_digit(), "an environment variable name (letters, digits, '_')")
}

string_type!(
    /// The name of an environment variable of the run (`PULL_SECRET`).
    EnvVarName,
    check_env_var_name
);

fn check_proxy_url(s: String) -> Result<String, String> {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty()
            && r.len() <= 2048
            && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&b))
    });
    if ok {
        Ok(s)
    } else {
        Err(format!("{} is not a proxy URL (http:// or https://, no spaces, quotes or control characters)", shown(&s)))
    }
}

string_type!(
    /// A proxy URL (`http://user:pass@proxy.example.com:3128`).
    ProxyUrl,
    check_proxy_url
);

fn check_no_proxy(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_:/*".contains(&b);
    word(s, 253, allowed, |_| true, "a no_proxy entry (a domain, an address or a CIDR)")
}

string_type!(
    /// One `noProxy` destination: `.example.com`, `10.0.0.0/16`, `registry.local`.
    NoProxyEntry,
    check_no_proxy
);

fn check_image_repo(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:@".contains(&b);
    word(
        s,
        255,
        allowed,
        |s| s.as_bytes()[0].is_ascii_alphanumeric() && !s.contains("//"),
        "an image repository (registry.example.com:5000/ocp4/openshift4: lower-case, digits, '.', '_', '-', '/', ':', '@')",
    )
}

string_type!(
    /// An image repository (`quay.io/openshift-release-dev/ocp-release`).
    ImageRepo,
    check_image_repo
);

fn check_text(s: String) -> Result<String, String> {
    if s.len() > 512 {
        return Err("text longer than 512 bytes".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(format!("{} has a control character (line break, tab, NUL...): one line of text", shown(&s)));
    }
    // White space at either end is not kept by the tools that store descriptions: not kept here either.
    Ok(s.trim().to_string())
}

string_type!(
    /// One line of printable text (a description), at most 512 bytes, trimmed.
    Text,
    check_text
);

fn check_fcontext(s: String) -> Result<String, String> {
    if !s.starts_with('/') || s.len() > 4096 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{} is not a file context pattern (an absolute path regex, no white space or control characters)",
            shown(&s)
        ));
    }
    Ok(s)
}

string_type!(
    /// A `semanage fcontext` path pattern (a regular expression over absolute paths).
    FcontextPattern,
    check_fcontext
);

fn check_kernel_args(s: String) -> Result<String, String> {
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        if !word.bytes().all(|b| b.is_ascii_alphanumeric() || b"._,:=/+@~%-".contains(&b)) {
            return Err(format!(
                "kernel argument {} has characters outside A-Z a-z 0-9 . _ , : = / + @ ~ % - (no quotes, '$', line breaks)",
                shown(word)
            ));
        }
    }
    Ok(s.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "))
}

string_type!(
    /// Kernel arguments, separated by single spaces.
    KernelArgs,
    check_kernel_args
);

fn check_device(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._:/-".contains(&b);
    word(s, 255, allowed, |_| true, "a device name like sda or /dev/disk/by-id/...")
}

string_type!(
    /// A block device: `sda`, `nvme0n1`, `/dev/disk/by-path/...`.
    DeviceName,
    check_device
);

fn check_k8s_name(s: String) -> Result<String, String> {
    let also = |s: &str| s.split('.').all(|l| label_ok(l, &[]));
    word(s, 253, |_| true, also, "a Kubernetes object name (DNS-1123 subdomain)")
}

string_type!(
    /// A Kubernetes object name (DNS-1123 subdomain).
    K8sName,
    check_k8s_name
);

fn check_quantity(s: String) -> Result<String, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let num_ok = !num.is_empty() && num.split('.').count() <= 2 && num.split('.').all(|p| !p.is_empty());
    let unit_ok = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"].contains(&unit);
    if num_ok && unit_ok {
        Ok(s)
    } else {
        Err(format!("{} is not a Kubernetes quantity like 100Gi", shown(&s)))
    }
}

string_type!(
    /// A Kubernetes resource quantity (`100Gi`).
    Quantity,
    check_quantity
);

fn check_interface(s: String) -> Result<String, String> {
    let (name, addr) = s.split_once('/').unwrap_or((&s, ""));
    let name_ok = name == "*"
        || (!name.is_empty()
            && name.len() <= 15
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b)));
    // The DHCPv4 server's interface addresses are IPv4.
    let addr_ok = addr.is_empty() || addr.parse::<std::net::Ipv4Addr>().is_ok();
    if name_ok && addr_ok {
        Ok(s)
    } else {
        Err(format!("{} is not an interface (`*`, `eth0` or `eth0/IPV4-ADDRESS`)", shown(&s)))
    }
}

string_type!(
    /// A network interface for a DHCP server to listen on: `*`, `eth0`, `eth0/ADDRESS`.
    Interface,
    check_interface
);

fn check_nic(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_.-".contains(&b);
    word(s, 15, allowed, |s| !s.starts_with(['.', '-']), "a network interface name like ens3 (at most 15 characters)")
}

string_type!(
    /// A network interface of a node (`ens3`, `eno1`): what its kernel arguments name.
    NicName,
    check_nic
);

fn check_name_pattern(s: String) -> Result<String, String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.*".contains(&b);
    word(s, 253, allowed, |_| true, "a name pattern (lowercase letters, digits, '-', '_', '.', '*')")
}

string_type!(
    /// A DNS name glob: `*` matches any run of characters.
    NamePattern,
    check_name_pattern
);

fn check_sha256(s: String) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(s)
    } else {
        Err(format!("{} is not a sha256 digest (64 lowercase hex digits)", shown(&s)))
    }
}

string_type!(
    /// A SHA-256 digest in lowercase hex: a served file known by its digest only.
    Sha256Hex,
    check_sha256
);

/// A command as argv: a program and its arguments, never a shell line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Argv(Vec<String>);

impl TryFrom<Vec<String>> for Argv {
    type Error = String;
    fn try_from(v: Vec<String>) -> Result<Self, String> {
        if v.first().is_none_or(|p| p.trim().is_empty()) {
            return Err("a command needs a program: [program, arg, ...]".into());
        }
        if v.iter().any(|a| a.contains('\0')) {
            return Err("a command argument contains NUL".into());
        }
        Ok(Argv(v))
    }
}

impl From<Argv> for Vec<String> {
    fn from(a: Argv) -> Vec<String> {
        a.0
    }
}

impl std::ops::Deref for Argv {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl Argv {
    /// An argv from literal words (defaults).
    pub fn of(words: &[&str]) -> Argv {
        Argv(words.iter().map(|w| w.to_string()).collect())
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

/// A TCP/UDP port, 1–65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u16")]
pub struct Port(u16);

impl TryFrom<u64> for Port {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u16::try_from(v) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(format!("{v} is not a port (1 to 65535)")),
        }
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl Port {
    pub(crate) fn known(p: u16) -> Port {
        Port(p)
    }
    pub fn new(p: u16) -> Result<Port, String> {
        Port::try_from(u64::from(p))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialEq<u16> for Port {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

/// `PORT/PROTO`, as firewalld and SELinux write it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortProto {
    pub port: u16,
    pub proto: String,
}

impl TryFrom<String> for PortProto {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{} is not PORT/PROTO like 22623/tcp (port 1-65535; tcp, udp, sctp or dccp)", shown(&s));
        let (p, proto) = s.split_once('/').ok_or_else(bad)?;
        let port: u16 = p.parse().map_err(|_| bad())?;
        if port == 0 || !p.bytes().all(|b| b.is_ascii_digit()) || !matches!(proto, "tcp" | "udp" | "sctp" | "dccp") {
            return Err(bad());
        }
        Ok(PortProto { port, proto: proto.to_string() })
    }
}

impl TryFrom<&str> for PortProto {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        PortProto::try_from(s.to_string())
    }
}

impl From<PortProto> for String {
    fn from(p: PortProto) -> String {
        p.to_string()
    }
}

impl fmt::Display for PortProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// A file mode, written in octal (`"0644"`, `"644"` or `"0o644"`), at most 07777.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileMode(pub u32);

impl TryFrom<String> for FileMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(FileMode(m)),
            _ => Err(format!("{} is not an octal file mode like \"0644\"", shown(&s))),
        }
    }
}

impl From<FileMode> for String {
    fn from(m: FileMode) -> String {
        format!("{:04o}", m.0)
    }
}

/// Seconds of a DNS TTL: at most 2^31 - 1 (RFC 2181).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct Ttl(u32);

impl TryFrom<u64> for Ttl {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if v <= i32::MAX as u64 {
            Ok(Ttl(v as u32))
        } else {
            Err(format!("{v} is not a TTL (0 to 2147483647 seconds, RFC 2181)"))
        }
    }
}

impl From<Ttl> for u32 {
    fn from(t: Ttl) -> u32 {
        t.0
    }
}

impl Ttl {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A DHCP lease time in seconds: 1 up to a bound under which every derived time (max-lease-time is 12
/// times it) still fits the protocol's 32 bits without reaching 0xffffffff ("infinite").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct LeaseTime(u32);

/// The longest lease time accepted (about 11 years).
pub const MAX_LEASE_TIME: u32 = (u32::MAX - 1) / 12;

impl TryFrom<u64> for LeaseTime {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if (1..=MAX_LEASE_TIME as u64).contains(&v) {
            Ok(LeaseTime(v as u32))
        } else {
            Err(format!("{v} is not a lease time (1 to {MAX_LEASE_TIME} seconds: max-lease-time, 12 times it, must fit 32 bits)"))
        }
    }
}

impl From<LeaseTime> for u32 {
    fn from(t: LeaseTime) -> u32 {
        t.0
    }
}

impl LeaseTime {
    pub(crate) fn known(t: u32) -> LeaseTime {
        LeaseTime(t)
    }
    pub fn get(self) -> u32 {
        self.0
    }
    /// The longest lease handed out (dhcpd's max-lease-time, Kea's max-valid-lifetime).
    pub fn max(self) -> u32 {
        self.0 * 12
    }
}

/// The record types an extra record may have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(DomainName),
    Ns(DomainName),
    Ptr(DomainName),
    Mx {
        preference: u16,
        exchange: DomainName,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: DomainName,
    },
    /// One or more character-strings, each at most 255 bytes.
    Txt(Vec<String>),
    Caa {
        flags: u8,
        tag: String,
        value: String,
    },
}

impl RecordData {
    pub fn rtype(&self) -> &'static str {
        match self {
            RecordData::A(_) => "A",
            RecordData::Aaaa(_) => "AAAA",
            RecordData::Cname(_) => "CNAME",
            RecordData::Ns(_) => "NS",
            RecordData::Ptr(_) => "PTR",
            RecordData::Mx { .. } => "MX",
            RecordData::Srv { .. } => "SRV",
            RecordData::Txt(_) => "TXT",
            RecordData::Caa { .. } => "CAA",
        }
    }

    /// The value as a master file writes it (targets absolute, without their trailing dot; strings
    /// quoted and escaped): the form the zone reader gives back.
    pub fn presentation(&self) -> String {
        match self {
            RecordData::A(ip) => ip.to_string(),
            RecordData::Aaaa(ip) => ip.to_string(),
            RecordData::Cname(n) | RecordData::Ns(n) | RecordData::Ptr(n) => n.to_string(),
            RecordData::Mx { preference, exchange } => format!("{preference} {exchange}"),
            RecordData::Srv { priority, weight, port, target } => format!("{priority} {weight} {port} {target}"),
            RecordData::Txt(strings) => {
                strings.iter().map(|s| quote_character_string(s.as_bytes())).collect::<Vec<_>>().join(" ")
            }
            RecordData::Caa { flags, tag, value } => {
                format!("{flags} {tag} {}", quote_character_string(value.as_bytes()))
            }
        }
    }

    /// Parse a value of type `rtype` as the inventory writes it (`10 mail.example.com` for MX, ...).
    pub fn parse(rtype: &str, value: &RecordValue) -> Result<RecordData, String> {
        let text = || match value {
            RecordValue::One(s) => Ok(s.as_str()),
            RecordValue::Many(_) => Err(format!("a {rtype} record has one value, not a list")),
        };
        let name = |s: &str| DomainName::try_from(s.to_string());
        let fields = |s: &str, n: usize, form: &str| -> Result<Vec<String>, String> {
            let f: Vec<String> = s.split_whitespace().map(str::to_string).collect();
            if f.len() == n {
                Ok(f)
            } else {
                Err(format!("{} is not a {rtype} value ({form})", shown(s)))
            }
        };
        let number = |s: &str, what: &str| s.parse::<u16>().map_err(|_| format!("{what} {} is not 0-65535", shown(s)));
        Ok(match rtype.to_ascii_uppercase().as_str() {
            "A" => RecordData::A(
                text()?.parse().map_err(|_| format!("{} is not an IPv4 address", shown(text().unwrap_or_default())))?,
            ),
            "AAAA" => RecordData::Aaaa(
                text()?.parse().map_err(|_| format!("{} is not an IPv6 address", shown(text().unwrap_or_default())))?,
            ),
            "CNAME" => RecordData::Cname(name(text()?)?),
            "NS" => RecordData::Ns(name(text()?)?),
            "PTR" => RecordData::Ptr(name(text()?)?),
            "MX" => {
                let f = fields(text()?, 2, "PREFERENCE EXCHANGE")?;
                RecordData::Mx { preference: number(&f[0], "preference")?, exchange: name(&f[1])? }
            }
            "SRV" => {
                let f = fields(text()?, 4, "PRIORITY WEIGHT PORT TARGET")?;
                RecordData::Srv {
                    priority: number(&f[0], "priority")?,
                    weight: number(&f[1], "weight")?,
                    port: number(&f[2], "port")?,
                    target: name(&f[3])?,
                }
            }
            "TXT" => {
                let strings = match value {
                    RecordValue::One(s) => vec![s.clone()],
                    RecordValue::Many(v) => v.clone(),
                };
                if strings.is_empty() {
                    return Err("a TXT record needs at least one string".into());
                }
                if let Some(long) = strings.iter().find(|s| s.len() > 255) {
                    return Err(format!(
                        "TXT string of {} bytes: each string is at most 255 bytes (give a list for longer text)",
                        long.len()
                    ));
                }
                RecordData::Txt(strings)
            }
            "CAA" => {
                let s = text()?;
                let mut it = s.splitn(3, ' ');
                let (flags, tag, v) = (it.next().unwrap_or(""), it.next().unwrap_or(""), it.next().unwrap_or(""));
                let flags: u8 =
                    flags.parse().map_err(|_| format!("{} is not a CAA value (FLAGS TAG VALUE)", shown(s)))?;
                if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) || v.is_empty() || v.len() > 255 {
                    return Err(format!("{} is not a CAA value (FLAGS TAG VALUE)", shown(s)));
                }
                RecordData::Caa { flags, tag: tag.to_ascii_lowercase(), value: v.trim_matches('"').to_string() }
            }
            other => {
                return Err(format!(
                    "{} is not a record type groundwork writes (A, AAAA, CNAME, NS, PTR, MX, SRV, TXT, CAA)",
                    shown(other)
                ))
            }
        })
    }
}

/// A character-string as a master file writes it: in double quotes, `"` and `\` escaped, every byte
/// outside printable ASCII as `\DDD`.
pub fn quote_character_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03}")),
        }
    }
    s.push('"');
    s
}

/// A record value as written in the inventory: one string, or (TXT) a list of strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordValue {
    One(String),
    Many(Vec<String>),
}

/// An owner name of an extra record: relative to the cluster domain, or absolute with a trailing dot;
/// `*` may stand as the first label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerName(String);

impl TryFrom<String> for OwnerName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let name = s.strip_suffix('.').unwrap_or(&s);
        let rest = name.strip_prefix("*.").unwrap_or(if name == "*" { "" } else { name });
        let ok = name.len() <= 253 && (rest.is_empty() && name == "*" || rest.split('.').all(|l| label_ok(l, b"_")));
        if ok && !name.is_empty() {
            Ok(OwnerName(s))
        } else {
            Err(format!(
                "{} is not a record name (labels of lowercase letters, digits, '-' and '_'; '*' first; a trailing '.' makes it absolute)",
                shown(&s)
            ))
        }
    }
}

impl From<OwnerName> for String {
    fn from(n: OwnerName) -> String {
        n.0
    }
}

impl OwnerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute name (no trailing dot): relative names are under `domain`.
    pub fn absolute(&self, domain: &str) -> String {
        match self.0.strip_suffix('.') {
            Some(abs) => abs.to_string(),
            None => format!("{}.{domain}", self.0),
        }
    }
}

impl fmt::Display for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An extra DNS record: `{ name, type, value }`, typed when loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRecord", into = "RawRecord")]
pub struct DnsRecord {
    pub name: OwnerName,
    pub data: RecordData,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub value: RecordValue,
}

impl TryFrom<RawRecord> for DnsRecord {
    type Error = String;
    fn try_from(r: RawRecord) -> Result<Self, String> {
        let name = OwnerName::try_from(r.name)?;
        let data = RecordData::parse(&r.rtype, &r.value).map_err(|e| format!("{e} (record {name})"))?;
        Ok(DnsRecord { name, data })
    }
}

impl From<DnsRecord> for RawRecord {
    fn from(r: DnsRecord) -> RawRecord {
        let value = match &r.data {
            RecordData::Txt(v) if v.len() == 1 => RecordValue::One(v[0].clone()),
            RecordData::Txt(v) => RecordValue::Many(v.clone()),
            RecordData::Caa { flags, tag, value } => RecordValue::One(format!("{flags} {tag} {value}")),
            other => RecordValue::One(other.presentation()),
        };
        RawRecord { name: r.name.0, rtype: r.data.rtype().to_string(), value }
    }
}

impl DnsRecord {
    pub fn rtype(&self) -> &'static str {
        self.data.rtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Label::try_from("m1").is_ok());
        for bad in ["", "-a", "a-", "A", "a.b", "a b", "a\nb", &"x".repeat(64)] {
            assert!(Label::try_from(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DomainName::try_from("example.com.").unwrap(), "example.com");
        assert!(DomainName::try_from("_sip._tcp.example.com").is_ok());
        for bad in ["", ".", "a..b", "a b", "a\"b", "a;b"] {
            assert!(DomainName::try_from(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DomainName::try_from("Example.COM").unwrap(), "example.com");
    }

    #[test]
    fn macs_are_six_hex_pairs_and_unicast() {
        assert_eq!(MacAddr::try_from("00:50:56:96:E3:F5").unwrap(), "00:50:56:96:e3:f5");
        assert_eq!(MacAddr::try_from("52:54:00:00:00:11").unwrap().octets(), [0x52, 0x54, 0, 0, 0, 0x11]);
        // `+f` parses as hex with from_str_radix: the old check let it through.
        for bad in ["00:50:56:96:11:+f", "00:50:56:96:11", "00-50-56-96-11-c2", "0:50:56:96:11:c2", "g0:50:56:96:11:c2"]
        {
            assert!(MacAddr::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(MacAddr::try_from("01:00:5e:00:00:01").unwrap_err().contains("multicast"));
    }

    #[test]
    fn paths_are_normalised_and_confined() {
        assert_eq!(RelPath::try_from("a").unwrap(), "a");
        assert_eq!(RelPath::try_from("/a").unwrap(), "a");
        assert_eq!(RelPath::try_from("./a//b/").unwrap(), "a/b");
        for bad in [
            "",
            "/",
            "..",
            "../../../../etc/MARKER",
            "a/../b",
            ".hidden",
            "a/.groundwork-x",
            "a b",
            "a\nb",
            "a\0b",
            "a\"b",
        ] {
            assert!(RelPath::try_from(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RemotePath::try_from("/usr//share/./nginx/html/").unwrap(), "/usr/share/nginx/html");
        for bad in ["", "relative", "/a/../etc", "/a b", "/a\n", "/a;b", "/a'b"] {
            assert!(RemotePath::try_from(bad).is_err(), "{bad:?}");
        }
        let root = RemotePath::try_from("/srv/www").unwrap();
        assert_eq!(root.join(&RelPath::try_from("/x/y").unwrap()), "/srv/www/x/y");
    }

    #[test]
    fn numbers_have_their_bounds() {
        assert!(Port::try_from(0u64).is_err() && Port::try_from(65536u64).is_err());
        assert_eq!(Port::try_from(6443u64).unwrap(), 6443);
        assert!(LeaseTime::try_from(u64::from(u32::MAX) + 5).is_err());
        assert!(LeaseTime::try_from(MAX_LEASE_TIME as u64 + 1).is_err());
        assert_eq!(LeaseTime::try_from(MAX_LEASE_TIME as u64).unwrap().max(), MAX_LEASE_TIME * 12);
        assert!(Ttl::try_from(1u64 << 31).is_err());
        assert_eq!(String::from(FileMode::try_from("0o640".to_string()).unwrap()), "0640");
        assert!(FileMode::try_from("999".to_string()).is_err() && FileMode::try_from("17777".to_string()).is_err());
        assert!(PortProto::try_from("22623/tcp").is_ok());
        for bad in ["22623", "0/tcp", "70000/tcp", "+1/tcp", "1/icmp", "1/tcp\n"] {
            assert!(PortProto::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_are_typed_by_their_type() {
        let rec = |t: &str, v: &str| RecordData::parse(t, &RecordValue::One(v.to_string()));
        assert!(rec("A", "10.0.0.1").is_ok());
        assert!(rec("A", "not-an-ip").unwrap_err().contains("IPv4"));
        assert!(rec("A", "10.0.0.1\nm1 IN A 10.0.0.9").is_err());
        assert!(rec("BOGUS", "x").unwrap_err().contains("not a record type"));
        assert_eq!(rec("mx", "10 Mail.example.com.").unwrap(), rec("MX", "10 mail.example.com").unwrap());
        assert_eq!(rec("MX", "10 mail.example.com.").unwrap().presentation(), "10 mail.example.com");
        assert!(rec("SRV", "0 5 5060").is_err());
        let txt = rec("TXT", "say \"hi\"\n\\ ;x").unwrap();
        assert_eq!(txt.presentation(), r#""say \"hi\"\010\\ ;x""#);
        assert!(rec("TXT", &"x".repeat(256)).is_err());
        let many = RecordData::parse("TXT", &RecordValue::Many(vec!["a".into(), "b".into()])).unwrap();
        assert_eq!(many.presentation(), r#""a" "b""#);
        assert!(OwnerName::try_from("*.apps".to_string()).is_ok());
        assert!(OwnerName::try_from("a b".to_string()).is_err());
        assert_eq!(OwnerName::try_from("x".to_string()).unwrap().absolute("lab.test"), "x.lab.test");
        assert_eq!(OwnerName::try_from("x.other.".to_string()).unwrap().absolute("lab.test"), "x.other");
    }

    #[test]
    fn install_config_words() {
        assert!(EnvVarName::try_from("PULL_SECRET").is_ok());
        for bad in ["", "1X", "A-B", "A B", "$(x)"] {
            assert!(EnvVarName::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(ProxyUrl::try_from("http://user:p%40ss@proxy.example.com:3128").is_ok());
        for bad in ["proxy:3128", "http://", "http://a b", "http://a\"b", "http://a\nb", "ftp://a"] {
            assert!(ProxyUrl::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(ImageRepo::try_from("registry.example.com:5000/ocp4/openshift4").is_ok());
        for bad in ["", "/x", "a//b", "Quay.io/x", "a b", "a\nb"] {
            assert!(ImageRepo::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(NoProxyEntry::try_from(".example.com").is_ok() && NoProxyEntry::try_from("a,b").is_err());
    }

    #[test]
    fn units_and_packages() {
        for ok in ["named", "tftp.socket", "kea-dhcp4-server", "getty@tty1.service", "systemd-fsck-root"] {
            assert!(UnitName::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-now", ".hidden", "a b", "a;b", "a/b", "a\nb", "$(x)"] {
            assert!(UnitName::try_from(bad).is_err(), "{bad:?}");
        }
        for ok in ["bind", "bind9", "isc-dhcp-server", "libstdc++6", "python3.11"] {
            assert!(PackageName::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-y", "Bind", "a b", "a;b", "a/b", "*", "a\nb"] {
            assert!(PackageName::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn other_words() {
        assert!(HaproxyName::try_from("ingress-https").is_ok());
        assert!(HaproxyName::try_from("api\n    server evil 1.2.3.4:6443").is_err());
        assert!(FirewalldName::try_from("machine-config").is_ok());
        assert!(FirewalldName::try_from("../../etc/passwd").is_err());
        assert!(Text::try_from("OpenShift machine config access").is_ok());
        assert!(Text::try_from("a\nb").is_err());
        assert_eq!(KernelArgs::try_from("  a=1   b ").unwrap(), "a=1 b");
        assert!(KernelArgs::try_from("a=${x}").is_err() && KernelArgs::try_from("a\nboot").is_err());
        assert!(Quantity::try_from("100Gi").is_ok() && Quantity::try_from("1.5T").is_ok());
        assert!(Quantity::try_from("100 Gi").is_err() && Quantity::try_from("Gi").is_err());
        assert!(Argv::try_from(vec![]).is_err() && Argv::try_from(vec!["".to_string()]).is_err());
        assert!(Interface::try_from("eth0/10.0.0.2").is_ok() && Interface::try_from("eth0;x").is_err());
    }
}
