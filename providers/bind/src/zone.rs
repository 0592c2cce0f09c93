//! Zone files: a parser for what is on the host (hand-written ones included) and the renderer for what
//! groundwork writes. Names are kept absolute, lowercase, without the trailing dot.

use std::collections::BTreeSet;
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub name: String,
    pub rtype: String,
    pub value: String,
}

/// A parsed zone: its serial (from the SOA) and every other record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedZone {
    pub serial: Option<u32>,
    pub records: BTreeSet<Record>,
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Logical lines: comments dropped, parenthesised continuations joined. Each keeps whether it started
/// with white space (an owner carried over from the previous record).
fn logical_lines(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut current: Option<(bool, String)> = None;
    let mut depth = 0i32;
    for raw in text.lines() {
        let line = strip_comment(raw);
        let opens = line.matches('(').count() as i32;
        let closes = line.matches(')').count() as i32;
        let cleaned = line.replace(['(', ')'], " ");
        match current.as_mut() {
            Some((_, buf)) if depth > 0 => {
                buf.push(' ');
                buf.push_str(cleaned.trim());
            }
            _ => {
                if !cleaned.trim().is_empty() {
                    let indented = line.starts_with([' ', '\t']);
                    current = Some((indented, cleaned.trim_end().to_string()));
                }
            }
        }
        depth += opens - closes;
        if depth <= 0 {
            depth = 0;
            if let Some(c) = current.take() {
                out.push(c);
            }
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
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

const TYPES: &[&str] = &["A", "AAAA", "NS", "PTR", "CNAME", "MX", "TXT", "SRV", "SOA", "CAA"];

/// Parse a zone file. `origin` is the zone's name (used until a $ORIGIN says otherwise).
pub fn parse(text: &str, origin: &str) -> Result<ParsedZone, String> {
    let mut origin = origin.trim_end_matches('.').to_ascii_lowercase();
    let mut zone = ParsedZone::default();
    let mut owner = origin.clone();
    for (n, (indented, line)) in logical_lines(text).into_iter().enumerate() {
        let mut tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        match tokens[0].to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                origin = tokens.get(1).map(|o| absolute(o, &origin)).ok_or("$ORIGIN without a name")?;
                continue;
            }
            "$TTL" | "$INCLUDE" | "$GENERATE" => continue,
            _ => {}
        }
        if !indented {
            owner = absolute(tokens.remove(0), &origin);
        }
        // Skip TTL and class, in either order.
        while let Some(t) = tokens.first() {
            let up = t.to_ascii_uppercase();
            if t.chars().all(|c| c.is_ascii_digit()) || matches!(up.as_str(), "IN" | "CH" | "HS") {
                tokens.remove(0);
            } else {
                break;
            }
        }
        let Some(rtype) = tokens.first().map(|t| t.to_ascii_uppercase()) else {
            return Err(format!("logical line {}: no record type", n + 1));
        };
        if !TYPES.contains(&rtype.as_str()) {
            return Err(format!("logical line {}: unknown record type {rtype}", n + 1));
        }
        let rdata = &tokens[1..];
        if rtype == "SOA" {
            zone.serial = rdata.get(2).and_then(|s| s.parse().ok());
            continue;
        }
        let value = match rtype.as_str() {
            "NS" | "PTR" | "CNAME" => rdata.first().map(|v| absolute(v, &origin)).unwrap_or_default(),
            "MX" => match rdata {
                [pref, host, ..] => format!("{pref} {}", absolute(host, &origin)),
                _ => rdata.join(" "),
            },
            _ => rdata.join(" "),
        };
        zone.records.insert(Record { name: owner.clone(), rtype, value });
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
fn name_key(name: &str) -> Vec<(u64, String)> {
    name.rsplit('.').map(|l| (l.parse::<u64>().unwrap_or(u64::MAX), l.to_string())).collect()
}

/// Render a zone with the given serial. Records are sorted; the output is deterministic.
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
        let value = match r.rtype.as_str() {
            "NS" | "PTR" | "CNAME" => format!("{}.", r.value),
            _ => r.value.clone(),
        };
        let _ = writeln!(s, "{}\tIN\t{}\t{}", relative(&r.name, &z.origin), r.rtype, value);
    }
    s
}

/// The serial a changed zone gets: today's YYYYMMDD00, or one more than what is served if that is
/// already higher. Never decreases.
pub fn next_serial(served: Option<u32>, base: u32) -> u32 {
    match served {
        Some(s) if s >= base => s.saturating_add(1),
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
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("@ IN BOGUS x", "a").is_err());
        assert!(parse("$ORIGIN", "a").is_err());
        assert!(parse("((((", "a").is_ok());
    }
}
