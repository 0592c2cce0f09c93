//! Zone files: a reader for what is on the host (hand-written ones included) and the renderer for what
//! groundwork writes. Names are kept absolute, lowercase, without the trailing dot; each record's value
//! is in one canonical presentation form ([`groundwork_sdk::value::RecordData::presentation`]), so that
//! what is rendered reads back as exactly the records it was rendered from.
//!
//! The reader follows RFC 1035 §5.1 master files as BIND writes and reads them: `$ORIGIN`, `$TTL`,
//! owners carried over by leading white space, `@`, relative and absolute names, TTLs with units
//! (`1h30m`) and the class in either order, parentheses across lines, `;` comments, quoted strings with
//! `\X` and `\DDD` escapes. `$INCLUDE` is reported, never followed: the file it names lives on the
//! host, and reading a path a zone names on the machine that runs groundwork would let a zone steer
//! what that machine reads. (A maintained parser was considered: hickory-proto's zone parser follows
//! `$INCLUDE` on the local disk, and loses the order and repeats of records; the `domain` crate's reader
//! would have been a second DNS stack for one function.)

use groundwork_sdk::value::quote_character_string;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Serialized as `[name, type, value]`: a zone's spec holds thousands, and as JSON objects each costs
/// a map in every tree a plan holds (the desired spec, the ownership record). Read from either form
/// (records written before were objects).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub struct Record {
    pub name: String,
    pub rtype: String,
    pub value: String,
}

impl serde::Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.name, &self.rtype, &self.value).serialize(s)
    }
}

/// A parsed zone: its serial (from the SOA) and every other record, with what could not be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedZone {
    pub serial: Option<u32>,
    pub records: BTreeSet<Record>,
    /// Files named by `$INCLUDE` (not followed).
    pub includes: Vec<String>,
    /// Entries that could not be read, with their line: the rest of the zone is read all the same.
    pub errors: Vec<String>,
    /// The line each record was first read from (for reports that point into the file).
    pub lines: std::collections::BTreeMap<Record, usize>,
    /// The SOA's primary name server and its line.
    pub soa_mname: Option<(String, usize)>,
}

/// One token of a master file: its bytes (escapes resolved) and whether it was quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    bytes: Vec<u8>,
    quoted: bool,
}

impl Token {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// One entry: the tokens of a logical line, whether it began with white space, and its first line.
#[derive(Debug)]
struct Entry {
    blank_owner: bool,
    tokens: Vec<Token>,
    line: usize,
}

/// Split a master file into entries (RFC 1035 §5.1).
fn entries(text: &str) -> Result<Vec<Entry>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    let (mut i, mut line, mut depth) = (0usize, 1usize, 0usize);
    let mut at_line_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                at_line_start = true;
                i += 1;
                if depth == 0 {
                    out.extend(current.take().filter(|e| !e.tokens.is_empty()));
                }
                continue;
            }
            b' ' | b'\t' | b'\r' => {}
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                if depth == 0 {
                    return Err(format!("line {line}: ')' without '('"));
                }
                depth -= 1;
            }
            _ => {
                let entry =
                    current.get_or_insert_with(|| Entry { blank_owner: !at_line_start, tokens: Vec::new(), line });
                let quoted = c == b'"';
                let mut bytes = Vec::new();
                if quoted {
                    i += 1;
                }
                loop {
                    let Some(&d) = b.get(i) else {
                        if quoted {
                            return Err(format!("line {line}: unterminated quoted string"));
                        }
                        break;
                    };
                    if quoted && d == b'"' {
                        i += 1;
                        break;
                    }
                    if !quoted && matches!(d, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"') {
                        break;
                    }
                    if d == b'\n' {
                        line += 1;
                    }
                    if d == b'\\' {
                        let digits = b.get(i + 1..i + 4).filter(|x| x.iter().all(u8::is_ascii_digit));
                        if let Some(ddd) = digits {
                            let v: u32 = ddd.iter().fold(0, |a, x| a * 10 + u32::from(x - b'0'));
                            let byte = u8::try_from(v).map_err(|_| format!("line {line}: escape \\{v} is over 255"))?;
                            bytes.push(byte);
                            i += 4;
                        } else if let Some(&x) = b.get(i + 1) {
                            bytes.push(x);
                            i += 2;
                        } else {
                            return Err(format!("line {line}: '\\' at the end of the file"));
                        }
                        continue;
                    }
                    bytes.push(d);
                    i += 1;
                }
                entry.tokens.push(Token { bytes, quoted });
                at_line_start = false;
                continue;
            }
        }
        at_line_start = false;
        i += 1;
    }
    if depth > 0 {
        return Err(format!("line {line}: '(' never closed"));
    }
    out.extend(current.take().filter(|e| !e.tokens.is_empty()));
    Ok(out)
}

/// A TTL as BIND reads it: seconds, or units (`1w2d3h4m5s`, any case).
pub fn parse_ttl(s: &str) -> Option<u32> {
    if s.is_empty() || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let (mut total, mut num) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total += num.parse::<u64>().ok()? * unit;
        num.clear();
    }
    if !num.is_empty() {
        return None;
    }
    u32::try_from(total).ok()
}

fn absolute(name: &str, origin: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n == "@" {
        origin.to_string()
    } else if let Some(abs) = n.strip_suffix('.') {
        abs.to_string()
    } else if origin.is_empty() {
        n
    } else {
        format!("{n}.{origin}")
    }
}

fn is_class(t: &str) -> bool {
    matches!(t.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS" | "CS" | "ANY")
}

fn is_type(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The canonical value of one record from its rdata tokens.
fn rdata(rtype: &str, data: &[Token], origin: &str) -> Result<String, String> {
    let text: Vec<String> = data.iter().map(Token::text).collect();
    let need = |n: usize, form: &str| {
        if data.len() == n {
            Ok(())
        } else {
            Err(format!("{rtype} needs {form}, got {} field(s)", data.len()))
        }
    };
    let name = |t: &str| absolute(t, origin);
    let number = |t: &str| t.parse::<u16>().map_err(|_| format!("{rtype}: {t:?} is not a number 0-65535"));
    Ok(match rtype {
        "A" => {
            need(1, "an IPv4 address")?;
            text[0]
                .parse::<std::net::Ipv4Addr>()
                .map_err(|_| format!("A: {:?} is not an IPv4 address", text[0]))?
                .to_string()
        }
        "AAAA" => {
            need(1, "an IPv6 address")?;
            text[0]
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("AAAA: {:?} is not an IPv6 address", text[0]))?
                .to_string()
        }
        "NS" | "PTR" | "CNAME" => {
            need(1, "a name")?;
            name(&text[0])
        }
        "MX" => {
            need(2, "PREFERENCE EXCHANGE")?;
            format!("{} {}", number(&text[0])?, name(&text[1]))
        }
        "SRV" => {
            need(4, "PRIORITY WEIGHT PORT TARGET")?;
            format!("{} {} {} {}", number(&text[0])?, number(&text[1])?, number(&text[2])?, name(&text[3]))
        }
        "TXT" => {
            if data.is_empty() {
                return Err("TXT needs at least one string".into());
            }
            if let Some(long) = data.iter().find(|t| t.bytes.len() > 255) {
                return Err(format!("TXT string of {} bytes (at most 255)", long.bytes.len()));
            }
            data.iter().map(|t| quote_character_string(&t.bytes)).collect::<Vec<_>>().join(" ")
        }
        "CAA" => {
            need(3, "FLAGS TAG VALUE")?;
            let flags: u8 = text[0].parse().map_err(|_| format!("CAA: {:?} is not a flag byte", text[0]))?;
            format!("{flags} {} {}", text[1].to_ascii_lowercase(), quote_character_string(&data[2].bytes))
        }
        // Other types are kept as written (quoted strings re-quoted), compared as such.
        _ => data
            .iter()
            .map(|t| if t.quoted { quote_character_string(&t.bytes) } else { t.text() })
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// Read a zone file. `origin` is the zone's name (used until a `$ORIGIN` says otherwise). An entry that
/// cannot be read is listed in `errors` and the rest is read; Err only when the file cannot be split
/// into entries at all (an unterminated string or parenthesis).
pub fn parse(text: &str, origin: &str) -> Result<ParsedZone, String> {
    let mut origin = origin.trim_end_matches('.').to_ascii_lowercase();
    let mut zone = ParsedZone::default();
    let mut owner: Option<String> = None;
    for e in entries(text)? {
        let at = |m: String| format!("line {}: {m}", e.line);
        let first = e.tokens[0].text();
        if !e.blank_owner && !e.tokens[0].quoted && first.starts_with('$') {
            match first.to_ascii_uppercase().as_str() {
                "$ORIGIN" => match e.tokens.get(1) {
                    Some(t) => origin = absolute(&t.text(), &origin),
                    None => zone.errors.push(at("$ORIGIN without a name".into())),
                },
                "$TTL" => {
                    if e.tokens.get(1).and_then(|t| parse_ttl(&t.text())).is_none() {
                        zone.errors.push(at("$TTL without a valid TTL".into()));
                    }
                }
                "$INCLUDE" => zone.includes.push(e.tokens.get(1).map(Token::text).unwrap_or_default()),
                other => zone.errors.push(at(format!("{other} is not supported"))),
            }
            continue;
        }
        let mut rest: &[Token] = &e.tokens;
        if !e.blank_owner {
            owner = Some(absolute(&first, &origin));
            rest = &rest[1..];
        }
        let Some(name) = owner.clone() else {
            zone.errors.push(at("a record with no owner (leading white space on the first record)".into()));
            continue;
        };
        // TTL and class, in either order.
        while let Some(t) = rest.first().filter(|t| !t.quoted) {
            let w = t.text();
            if parse_ttl(&w).is_some() || is_class(&w) {
                rest = &rest[1..];
            } else {
                break;
            }
        }
        let Some(rtype) = rest.first().map(|t| t.text().to_ascii_uppercase()).filter(|t| is_type(t)) else {
            zone.errors.push(at("no record type".into()));
            continue;
        };
        let data = &rest[1..];
        if rtype == "SOA" {
            zone.soa_mname = data.first().map(|t| (absolute(&t.text(), &origin), e.line));
            match data.get(2).map(Token::text).and_then(|s| s.parse::<u32>().ok()) {
                Some(serial) => zone.serial = Some(serial),
                None => zone.errors.push(at("SOA without a readable serial".into())),
            }
            continue;
        }
        match rdata(&rtype, data, &origin) {
            Ok(value) => {
                let record = Record { name, rtype, value };
                zone.lines.entry(record.clone()).or_insert(e.line);
                zone.records.insert(record);
            }
            Err(m) => zone.errors.push(at(m)),
        }
    }
    Ok(zone)
}

/// What groundwork writes for one zone.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DesiredZone {
    pub origin: String,
    pub ttl: u32,
    /// Primary name server (absolute).
    pub mname: String,
    /// Responsible mailbox (absolute, `root.<domain>`).
    pub rname: String,
    pub records: Vec<Record>,
    /// Comment line naming the owner.
    pub cluster: String,
}

fn relative(name: &str, origin: &str) -> String {
    if name == origin {
        "@".to_string()
    } else if let Some(r) = name.strip_suffix(&format!(".{origin}")) {
        r.to_string()
    } else {
        format!("{name}.")
    }
}

/// Sort key that orders numeric labels by value (PTR 2 before PTR 10), reading names from the root.
pub(crate) fn name_key(name: &str) -> Vec<(u64, String)> {
    name.rsplit('.').map(|l| (l.parse::<u64>().unwrap_or(u64::MAX), l.to_string())).collect()
}

/// Render a zone with the given serial. Records are sorted; the output is deterministic.
/// The serial on the SOA line of a zone as [`render`] writes it, without parsing the zone; None for a
/// zone written otherwise.
pub fn rendered_serial(content: &str) -> Option<u32> {
    let soa = content.lines().nth(3)?.strip_prefix("@\tIN\tSOA\t")?;
    soa.split_once("( ")?.1.split(' ').next()?.parse().ok()
}

pub fn render(z: &DesiredZone, serial: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "; Managed by groundwork for cluster {}. Changes made by hand are overwritten.", z.cluster);
    let _ = writeln!(s, "$ORIGIN {}.", z.origin);
    let _ = writeln!(s, "$TTL {}", z.ttl);
    let _ = writeln!(s, "@\tIN\tSOA\t{}. {}. ( {serial} 3600 900 3600000 {} )", z.mname, z.rname, z.ttl);
    let mut records = z.records.clone();
    records.sort_by(|a, b| {
        (a.rtype != "NS", name_key(&a.name), &a.rtype, &a.value).cmp(&(
            b.rtype != "NS",
            name_key(&b.name),
            &b.rtype,
            &b.value,
        ))
    });
    for r in &records {
        let _ = writeln!(s, "{}\tIN\t{}\t{}", relative(&r.name, &z.origin), r.rtype, written_value(r));
    }
    s
}

/// A canonical value as the master file writes it: target names absolute with their trailing dot.
fn written_value(r: &Record) -> String {
    let dotted = |n: &str| format!("{n}.");
    match r.rtype.as_str() {
        "NS" | "PTR" | "CNAME" => dotted(&r.value),
        "MX" | "SRV" => match r.value.rsplit_once(' ') {
            Some((head, target)) => format!("{head} {}", dotted(target)),
            None => r.value.clone(),
        },
        _ => r.value.clone(),
    }
}

/// `a` is greater than `b` in serial number arithmetic (RFC 1982, 32 bits): what a secondary compares.
pub fn serial_gt(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < (1 << 31)
}

/// The serial a changed zone gets: today's YYYYMMDD00 if that is greater than what is served (RFC 1982),
/// else one more than what is served (wrapping past 2^32 - 1 as RFC 1982 allows). Always greater than
/// the served serial, so a secondary always picks the change up.
pub fn next_serial(served: Option<u32>, base: u32) -> u32 {
    match served {
        Some(s) if !serial_gt(base, s) => s.wrapping_add(1),
        _ => base,
    }
}

/// YYYYMMDD00 for a day count since 1970-01-01 (civil-from-days, proleptic Gregorian).
pub fn serial_base(days_since_epoch: i64) -> u32 {
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y * 1_000_000 + m * 10_000 + d * 100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_FORWARD: &str = r#"$ORIGIN example.localdomain.
$TTL 3600
@       IN      SOA     ns1.example.localdomain. root.example.localdomain.(
                                2000091802      ; Serial
                                3600            ; Refresh
                                900             ; Retry
                                3600000         ; Expire
                                3600 )          ; Minimum
             IN   NS      ns1.example.localdomain.
bs.ocp45.example.localdomain.           IN      A       172.16.0.11 ; offline fixture
m1.ocp45.example.localdomain.           IN      A       172.16.0.21 ; offline fixture
*.apps.ocp45.example.localdomain.    IN   A        172.16.0.111 ; offline fixture
"#;

    #[test]
    fn a_record_is_written_as_a_triple_and_read_from_either_form() {
        let r = Record { name: "m1.lab.example.test".into(), rtype: "A".into(), value: "10.0.0.2".into() };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v, serde_json::json!(["m1.lab.example.test", "A", "10.0.0.2"]));
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), r);
        // Ownership records written before this form hold objects.
        let old = serde_json::json!({"name": "m1.lab.example.test", "rtype": "A", "value": "10.0.0.2"});
        assert_eq!(serde_json::from_value::<Record>(old).unwrap(), r);
    }

    #[test]
    fn parses_the_seed_zone() {
        let z = parse(SEED_FORWARD, "example.localdomain").unwrap();
        assert_eq!(z.serial, Some(2000091802));
        let rec = |n: &str, t: &str, v: &str| Record { name: n.into(), rtype: t.into(), value: v.into() };
        assert!(z.records.contains(&rec("example.localdomain", "NS", "ns1.example.localdomain")));
        assert!(z.records.contains(&rec("bs.ocp45.example.localdomain", "A", "172.16.0.11"))); // offline fixture
        assert!(z.records.contains(&rec("*.apps.ocp45.example.localdomain", "A", "172.16.0.111"))); // offline fixture
        assert_eq!(z.records.len(), 4);
    }

    #[test]
    fn rendered_zones_parse_back_to_the_same_records() {
        let z = DesiredZone {
            origin: "lab.example.test".into(),
            ttl: 300,
            mname: "ns1.lab.example.test".into(),
            rname: "root.lab.example.test".into(),
            cluster: "lab".into(),
            records: vec![
                Record { name: "lab.example.test".into(), rtype: "NS".into(), value: "ns1.lab.example.test".into() },
                Record { name: "m1.lab.example.test".into(), rtype: "A".into(), value: "10.88.0.21".into() },
                Record { name: "*.apps.lab.example.test".into(), rtype: "A".into(), value: "10.88.0.4".into() },
                Record { name: "x.other.test".into(), rtype: "CNAME".into(), value: "m1.lab.example.test".into() },
            ],
        };
        let text = render(&z, 2026112201);
        let back = parse(&text, "lab.example.test").unwrap();
        assert_eq!(back.serial, Some(2026112201));
        assert_eq!(back.records, z.records.iter().cloned().collect());
    }

    #[test]
    fn serials_are_dated_and_never_decrease() {
        assert_eq!(serial_base(0), 1970010100);
        assert_eq!(serial_base(20_414), 2025112200);
        assert_eq!(serial_base(20_779), 2026112200);
        assert_eq!(serial_base(11_016), 2000022900);
        assert_eq!(next_serial(None, 2026112200), 2026112200);
        assert_eq!(next_serial(Some(2000091802), 2026112200), 2026112200);
        assert_eq!(next_serial(Some(2026112200), 2026112200), 2026112201);
        assert_eq!(next_serial(Some(2030010100), 2026112200), 2030010101);
        // In serial arithmetic today's date is greater than 2^32 - 1; where it is not, the served
        // serial is stepped past 2^32 - 1 to 0, which RFC 1982 counts as greater.
        assert_eq!(next_serial(Some(u32::MAX), 2026112200), 2026112200);
        assert_eq!(next_serial(Some(u32::MAX), 2147483647), 0);
        assert!(serial_gt(0, u32::MAX) && !serial_gt(5, 5) && serial_gt(2026112201, 2026112200));
    }

    #[test]
    fn garbage_is_reported_never_a_panic() {
        assert_eq!(parse("@ IN A not-an-ip", "a").unwrap().errors.len(), 1);
        assert_eq!(parse("$ORIGIN", "a").unwrap().errors.len(), 1);
        assert!(parse("((((", "a").is_err());
        assert!(parse("x IN TXT \"open", "a").is_err());
        // A type the renderer never writes is kept as written.
        let z = parse("x IN SSHFP 1 1 ABCDEF", "a").unwrap();
        assert!(z.records.contains(&Record { name: "x.a".into(), rtype: "SSHFP".into(), value: "1 1 ABCDEF".into() }));
    }

    #[test]
    fn master_file_syntax_ttls_classes_origins_and_escapes() {
        let text = r#"$TTL 1h
$ORIGIN lab.example.test.
@       IN SOA ns1 root ( 2026120101 ; serial
                3600 900 3600000 300 )
extra 1h IN A 10.0.0.5   ; TTL with a unit before the class
other IN 1H30m A 10.0.0.6 ; class before the TTL
        3600 AAAA fd00::1  ; owner carried over
$ORIGIN sub.lab.example.test.
deep    TXT "a \"quoted\" word" "semi;colon" plain \065\066
mail    MX 10 mx1
srv     SRV ( 0 5 5060
              sip.example.com. )
abs.example.org. CNAME target
"#;
        let z = parse(text, "lab.example.test").unwrap();
        assert!(z.errors.is_empty(), "{:?}", z.errors);
        assert_eq!(z.serial, Some(2026120101));
        let has = |n: &str, t: &str, v: &str| {
            assert!(
                z.records.contains(&Record { name: n.into(), rtype: t.into(), value: v.into() }),
                "{n} {t} {v} not in {:#?}",
                z.records
            )
        };
        has("extra.lab.example.test", "A", "10.0.0.5");
        has("other.lab.example.test", "A", "10.0.0.6");
        has("other.lab.example.test", "AAAA", "fd00::1");
        has("deep.sub.lab.example.test", "TXT", r#""a \"quoted\" word" "semi;colon" "plain" "AB""#);
        has("mail.sub.lab.example.test", "MX", "10 mx1.sub.lab.example.test");
        has("srv.sub.lab.example.test", "SRV", "0 5 5060 sip.example.com");
        has("abs.example.org", "CNAME", "target.sub.lab.example.test");
        assert_eq!(z.records.len(), 7);
        assert_eq!(parse("$INCLUDE /etc/passwd\n", "a").unwrap().includes, ["/etc/passwd"]);
        assert_eq!(parse_ttl("1w2d3h4m5s"), Some(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5));
        assert_eq!(parse_ttl("1x"), None);
    }

    mod properties {
        use super::super::*;
        use groundwork_sdk::value::{DomainName, RecordData};
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = DomainName> {
            "[a-z0-9_]([a-z0-9_-]{0,8}[a-z0-9_])?(\\.[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?){0,3}"
                .prop_filter_map("a domain name", |s| DomainName::try_from(s).ok())
        }

        /// Any record the inventory can declare, TXT and CAA with arbitrary bytes of text.
        fn data() -> impl Strategy<Value = RecordData> {
            prop_oneof![
                any::<[u8; 4]>().prop_map(|o| RecordData::A(o.into())),
                any::<[u16; 8]>().prop_map(|s| RecordData::Aaaa(s.into())),
                name().prop_map(RecordData::Cname),
                name().prop_map(RecordData::Ns),
                (any::<u16>(), name()).prop_map(|(preference, exchange)| RecordData::Mx { preference, exchange }),
                (any::<u16>(), any::<u16>(), any::<u16>(), name())
                    .prop_map(|(priority, weight, port, target)| RecordData::Srv { priority, weight, port, target }),
                prop::collection::vec(any::<String>().prop_map(|s| s.chars().take(60).collect::<String>()), 1..4)
                    .prop_map(RecordData::Txt),
                (any::<u8>(), "[a-z]{1,10}", any::<String>().prop_map(|s| s.chars().take(40).collect::<String>()))
                    .prop_filter("CAA value", |(_, _, v)| !v.is_empty())
                    .prop_map(|(flags, tag, value)| RecordData::Caa { flags, tag, value }),
            ]
        }

        proptest! {
            #[test]
            fn rendered_zones_read_back_as_exactly_their_records(
                records in prop::collection::vec((name(), data()), 0..12),
                serial in any::<u32>(),
            ) {
                let origin = "lab.example.test";
                let records: Vec<Record> = records
                    .into_iter()
                    .map(|(n, d)| Record { name: format!("{n}.{origin}"), rtype: d.rtype().into(), value: d.presentation() })
                    .collect();
                let z = DesiredZone {
                    origin: origin.into(),
                    ttl: 300,
                    mname: format!("ns1.{origin}"),
                    rname: format!("root.{origin}"),
                    cluster: "lab".into(),
                    records: records.clone(),
                };
                let back = parse(&render(&z, serial), origin).unwrap();
                prop_assert!(back.errors.is_empty(), "{:?}", back.errors);
                prop_assert_eq!(back.serial, Some(serial));
                prop_assert_eq!(back.records, records.into_iter().collect::<BTreeSet<_>>());
            }

            #[test]
            fn a_planned_serial_is_always_greater_than_the_served_one(served in any::<u32>(), base in any::<u32>()) {
                let next = next_serial(Some(served), base);
                prop_assert!(serial_gt(next, served), "{} is not greater than {} (RFC 1982)", next, served);
            }

            #[test]
            fn the_reader_never_panics(text in any::<String>()) {
                let _ = parse(&text, "lab.example.test");
            }
        }
    }
}
