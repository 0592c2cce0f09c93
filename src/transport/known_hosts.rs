//! Host key verification the way OpenSSH does it: several known_hosts files (the user's, then the
//! system's), host patterns with wildcards and negation, hashed names, `[host]:port`, `@revoked` keys and
//! `@cert-authority` host certificates. Lines are parsed by ssh-key; matching and the verdict are here.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::ssh_key::{Certificate, PublicKey};
use russh::keys::HashAlg;
use std::path::{Path, PathBuf};

/// Where a known_hosts entry was read from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The outcome of checking a server's key or certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A matching plain key, or a certificate signed by a trusted authority.
    Trusted { by: Place },
    /// The key, or the certificate's authority, is marked `@revoked`.
    Revoked { by: Place },
    /// The host has a recorded key of the same type, and it is another one.
    Changed { recorded: Place },
    /// No entry speaks for this host with this key type. `why` says what was seen instead
    /// (a certificate that did not validate, keys of other types).
    Unknown { why: Option<String> },
}

/// The entries of known_hosts files, in the order read, with lines that could not be parsed named.
#[derive(Default)]
pub struct KnownHosts {
    entries: Vec<(Place, Entry)>,
    /// Lines skipped: unparsable ones (OpenSSH skips them too), named so that a typo is visible.
    pub skipped: Vec<(Place, String)>,
    pub files: Vec<PathBuf>,
}

impl KnownHosts {
    /// Reads each file that exists; a missing file is no entries (as for OpenSSH).
    pub fn read(files: &[PathBuf]) -> Result<Self, String> {
        let mut out = KnownHosts { files: files.to_vec(), ..Default::default() };
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", file.display())),
            };
            out.add(file, &text);
        }
        Ok(out)
    }

    fn add(&mut self, file: &Path, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let place = Place { file: file.to_path_buf(), line: i + 1 };
            // Several spaces or tabs between fields are allowed by OpenSSH; ssh-key wants one space.
            let normal = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match normal.parse::<Entry>() {
                Ok(e) => self.entries.push((place, e)),
                Err(e) => self.skipped.push((place, format!("cannot parse this line: {e}"))),
            }
        }
    }

    /// Whether any `@cert-authority` line speaks for this host: only then are certificates asked for.
    pub fn has_authority_for(&self, host: &str, port: u16) -> bool {
        let name = host_port(host, port);
        self.entries.iter().any(|(_, e)| e.marker() == Some(&Marker::CertAuthority) && matches(e, &name))
    }

    /// Checks a plain key.
    pub fn check_key(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_port(host, port);
        if let Some(p) = self.revoked(&name, key) {
            return Verdict::Revoked { by: p };
        }
        let mut changed = None;
        let mut other_types = Vec::new();
        for (place, e) in self.entries.iter().filter(|(_, e)| e.marker().is_none() && matches(e, &name)) {
            if e.public_key().key_data() == key.key_data() {
                return Verdict::Trusted { by: place.clone() };
            }
            if e.public_key().algorithm() == key.algorithm() {
                changed.get_or_insert_with(|| place.clone());
            } else {
                other_types.push(e.public_key().algorithm().to_string());
            }
        }
        match changed {
            Some(recorded) => Verdict::Changed { recorded },
            None if !other_types.is_empty() => Verdict::Unknown {
                why: Some(format!("only keys of other types are recorded for it ({})", other_types.join(", "))),
            },
            None => Verdict::Unknown { why: None },
        }
    }

    /// Checks a host certificate against the `@cert-authority` lines for this host: a host certificate,
    /// signed by a listed authority, valid now, naming `host` among its principals. A certificate no
    /// authority vouches for falls back to its plain key (as OpenSSH does).
    pub fn check_certificate(&self, host: &str, port: u16, cert: &Certificate, now: u64) -> Verdict {
        let name = host_port(host, port);
        let ca = PublicKey::from(cert.signature_key().clone());
        if let Some(p) = self.revoked(&name, &ca) {
            return Verdict::Revoked { by: p };
        }
        let inner = PublicKey::from(cert.public_key().clone());
        let mut why = None;
        for (place, e) in
            self.entries.iter().filter(|(_, e)| e.marker() == Some(&Marker::CertAuthority) && matches(e, &name))
        {
            if e.public_key().key_data() != ca.key_data() {
                continue;
            }
            let problem = if cert.cert_type() != CertType::Host {
                Some("it is a user certificate, not a host certificate".to_string())
            } else if !cert.valid_principals().iter().any(|p| p == host) {
                Some(format!("its principals {:?} do not name {host}", cert.valid_principals()))
            } else {
                let fp = ca.fingerprint(HashAlg::Sha256);
                cert.validate_at(now, [&fp]).err().map(|e| format!("it does not validate: {e}"))
            };
            match problem {
                None => {
                    if let Some(p) = self.revoked(&name, &inner) {
                        return Verdict::Revoked { by: p };
                    }
                    return Verdict::Trusted { by: place.clone() };
                }
                Some(p) => why = Some(format!("a certificate signed by the authority at {place}, but {p}")),
            }
        }
        match self.check_key(host, port, &inner) {
            Verdict::Unknown { why: plain } => Verdict::Unknown { why: why.or(plain) },
            v => v,
        }
    }

    fn revoked(&self, name: &str, key: &PublicKey) -> Option<Place> {
        self.entries
            .iter()
            .find(|(_, e)| {
                e.marker() == Some(&Marker::Revoked) && e.public_key().key_data() == key.key_data() && matches(e, name)
            })
            .map(|(p, _)| p.clone())
    }
}

/// The name a known_hosts line is matched against: `host`, or `[host]:port` off port 22.
fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's rule: a line matches when some pattern matches and no negated pattern does.
fn matches(e: &Entry, name: &str) -> bool {
    match e.host_patterns() {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else { return false };
            mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(patterns) => {
            let mut hit = false;
            for p in patterns {
                match p.strip_prefix('!') {
                    Some(neg) if wildcard(neg, name) => return false,
                    Some(_) => {}
                    None => hit |= wildcard(p, name),
                }
            }
            hit
        }
    }
}

/// `*` and `?` globbing, case-insensitive as host names are.
fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::{certificate, private::Ed25519Keypair, PrivateKey};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A distinct key each call, from a fixed seed (no RNG needed).
    fn key() -> PrivateKey {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        PrivateKey::from(Ed25519Keypair::from_seed(&[NEXT.fetch_add(1, Ordering::Relaxed); 32]))
    }

    fn hosts(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("kh"), text);
        k
    }

    fn line(patterns: &str, k: &PrivateKey) -> String {
        format!("{patterns} {}\n", k.public_key().to_openssh().unwrap())
    }

    fn host_cert(ca: &PrivateKey, subject: &PrivateKey, principals: &[&str], kind: CertType) -> Certificate {
        let mut b = certificate::Builder::new([9u8; 16], subject.public_key(), 0, u64::MAX / 2).unwrap();
        b.serial(1).unwrap().key_id("t").unwrap().cert_type(kind).unwrap();
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        b.sign(ca).unwrap()
    }

    #[test]
    fn patterns_negation_ports_and_hashes() {
        let k = key();
        let pk = k.public_key();
        let h = hosts(&line("10.0.0.*,!10.0.0.9", &k));
        assert!(matches!(h.check_key("10.0.0.3", 22, pk), Verdict::Trusted { .. }));
        assert_eq!(h.check_key("10.0.0.9", 22, pk), Verdict::Unknown { why: None });
        assert_eq!(h.check_key("10.0.0.3", 2222, pk), Verdict::Unknown { why: None });
        let h = hosts(&line("[10.0.0.3]:2222", &k));
        assert!(matches!(h.check_key("10.0.0.3", 2222, pk), Verdict::Trusted { .. }));
        // `ssh-keygen -H` form: HMAC-SHA1 of the name under a salt.
        let salt = [7u8; 20];
        let mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap().chain_update(b"lb1.example.test").finalize();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.into_bytes()));
        let h = hosts(&line(&hashed, &k));
        assert!(matches!(h.check_key("lb1.example.test", 22, pk), Verdict::Trusted { .. }));
        assert_eq!(h.check_key("lb2.example.test", 22, pk), Verdict::Unknown { why: None });
    }

    #[test]
    fn a_changed_key_names_the_line_and_another_line_with_the_key_still_trusts() {
        let (a, b) = (key(), key());
        let h = hosts(&format!("# comment\n{}{}", line("h1", &a), line("h1", &b)));
        assert!(matches!(h.check_key("h1", 22, b.public_key()), Verdict::Trusted { by } if by.line == 3));
        let h = hosts(&line("h1", &a));
        assert_eq!(
            h.check_key("h1", 22, b.public_key()),
            Verdict::Changed { recorded: Place { file: "kh".into(), line: 1 } }
        );
    }

    #[test]
    fn revoked_wins_over_a_trusting_line() {
        let k = key();
        let h = hosts(&format!("{}@revoked * {}\n", line("h1", &k), k.public_key().to_openssh().unwrap()));
        assert!(matches!(h.check_key("h1", 22, k.public_key()), Verdict::Revoked { by } if by.line == 2));
    }

    #[test]
    fn certificates_need_a_listed_authority_the_principal_and_a_host_type() {
        let (ca, other_ca, host) = (key(), key(), key());
        let ca_line = format!("@cert-authority 10.0.0.* {}\n", ca.public_key().to_openssh().unwrap());
        let h = hosts(&ca_line);
        assert!(h.has_authority_for("10.0.0.3", 22));
        assert!(!h.has_authority_for("10.1.0.3", 22));
        let now = 1_000_000;
        let good = host_cert(&ca, &host, &["10.0.0.3"], CertType::Host);
        assert!(matches!(h.check_certificate("10.0.0.3", 22, &good, now), Verdict::Trusted { .. }));
        // Another principal, a user certificate, another authority: not trusted, and the reason is said.
        let v = h.check_certificate("10.0.0.4", 22, &good, now);
        assert!(matches!(&v, Verdict::Unknown { why: Some(w) } if w.contains("principals")), "{v:?}");
        let user = host_cert(&ca, &host, &["10.0.0.3"], CertType::User);
        let v = h.check_certificate("10.0.0.3", 22, &user, now);
        assert!(matches!(&v, Verdict::Unknown { why: Some(w) } if w.contains("user certificate")), "{v:?}");
        let foreign = host_cert(&other_ca, &host, &["10.0.0.3"], CertType::Host);
        assert_eq!(h.check_certificate("10.0.0.3", 22, &foreign, now), Verdict::Unknown { why: None });
        // Expired.
        let v = h.check_certificate("10.0.0.3", 22, &good, u64::MAX - 1);
        assert!(matches!(&v, Verdict::Unknown { why: Some(w) } if w.contains("validate")), "{v:?}");
        // A revoked authority, or a revoked host key under a good certificate.
        let h2 = hosts(&format!("{ca_line}@revoked * {}\n", ca.public_key().to_openssh().unwrap()));
        assert!(matches!(h2.check_certificate("10.0.0.3", 22, &good, now), Verdict::Revoked { .. }));
        let h3 = hosts(&format!("{ca_line}@revoked * {}\n", host.public_key().to_openssh().unwrap()));
        assert!(matches!(h3.check_certificate("10.0.0.3", 22, &good, now), Verdict::Revoked { .. }));
        // No authority vouches, but the plain key is recorded: trusted as a key.
        let h4 = hosts(&line("10.0.0.3", &host));
        assert!(matches!(h4.check_certificate("10.0.0.3", 22, &foreign, now), Verdict::Trusted { .. }));
    }

    #[test]
    fn unparsable_lines_are_named_not_fatal() {
        let k = key();
        let h = hosts(&format!("h1 ssh-ed25519 not-base64\n{}", line("h1", &k)));
        assert_eq!(h.skipped.len(), 1);
        assert_eq!(h.skipped[0].0.line, 1);
        assert!(matches!(h.check_key("h1", 22, k.public_key()), Verdict::Trusted { .. }));
    }
}
