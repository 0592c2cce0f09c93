//! named's options: the file groundwork owns (listen-on, allow-query, recursion, forwarders,
//! dnssec-validation), and its adoption by the site's named.conf. BIND allows only one `options` block,
//! so the site's block stays where it is: groundwork adds one `include` inside it and comments out the
//! statements its own file sets (each kept whole in a marked comment, so that releasing the file puts
//! them back exactly as they were). Everything else in named.conf is left untouched.

use groundwork_sdk::model::{DnssecValidation, Environment, Host, NamedOptions};
use std::fmt::Write;
use std::net::IpAddr;

/// The statements groundwork's options file owns: commented out in the site's block when adopted.
pub const MANAGED: &[&str] = &[
    "listen-on",
    "listen-on-v6",
    "allow-query",
    "allow-recursion",
    "recursion",
    "forwarders",
    "forward",
    "dnssec-validation",
];

/// The options file of one dns host.
pub fn render(env: &Environment, host: &Host, o: &NamedOptions, named_conf: &str) -> String {
    let mut s = format!(
        "// Managed by groundwork for {}: named's options, included inside the options block of {named_conf}.\n",
        env.managed_for()
    );
    let listen: Vec<IpAddr> = if o.listen_on.is_empty() { vec![host.address] } else { o.listen_on.clone() };
    let v4: Vec<String> = listen.iter().filter(|a| a.is_ipv4()).map(|a| format!("{a}; ")).collect();
    let v6: Vec<String> = listen.iter().filter(|a| a.is_ipv6()).map(|a| format!("{a}; ")).collect();
    let _ = writeln!(s, "listen-on port 53 {{ {}127.0.0.1; }};", v4.concat());
    let _ = writeln!(s, "listen-on-v6 port 53 {{ {}::1; }};", v6.concat());
    let clients: Vec<String> = if o.allow_query.is_empty() {
        env.networks.machine.iter().map(|n| format!("{n}; ")).collect()
    } else {
        o.allow_query.iter().map(|n| format!("{n}; ")).collect()
    };
    let _ = writeln!(s, "allow-query {{ {}localhost; }};", clients.concat());
    let recursion = o.recursion.unwrap_or(!o.forwarders.is_empty());
    if recursion {
        let _ = writeln!(s, "recursion yes;\nallow-recursion {{ {}localhost; }};", clients.concat());
    } else {
        let _ = writeln!(s, "recursion no;");
    }
    if !o.forwarders.is_empty() {
        let f: Vec<String> = o.forwarders.iter().map(|a| format!("{a}; ")).collect();
        // Only the forwarders: an intranet's names are not in the public tree.
        let _ = writeln!(s, "forwarders {{ {}}};\nforward only;", f.concat());
    }
    let v = match o.dnssec_validation {
        DnssecValidation::Auto => "auto",
        DnssecValidation::Yes => "yes",
        DnssecValidation::No => "no",
    };
    let _ = writeln!(s, "dnssec-validation {v};");
    s
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Word,
    Str,
    Open,
    Close,
    Semi,
}

/// named.conf's tokens with their byte ranges; comments (`//`, `#`, `/* */`) are skipped.
fn tokens(text: &str) -> Vec<(Tok, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => i = memchr(b, i, b'\n'),
            b'/' if b.get(i + 1) == Some(&b'/') => i = memchr(b, i, b'\n'),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map(|p| i + 2 + p + 2).unwrap_or(b.len());
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(b.len());
                out.push((Tok::Str, i, end));
                i = end;
            }
            b'{' => {
                out.push((Tok::Open, i, i + 1));
                i += 1;
            }
            b'}' => {
                out.push((Tok::Close, i, i + 1));
                i += 1;
            }
            b';' => {
                out.push((Tok::Semi, i, i + 1));
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"{};\"#".contains(&b[i]) {
                    if b[i] == b'/' && matches!(b.get(i + 1), Some(b'/') | Some(b'*')) {
                        break;
                    }
                    i += 1;
                }
                out.push((Tok::Word, start, i));
            }
        }
    }
    out
}

fn memchr(b: &[u8], from: usize, c: u8) -> usize {
    b[from..].iter().position(|&x| x == c).map(|p| from + p).unwrap_or(b.len())
}

/// One statement of the options block: its first word and byte range (through its `;`).
struct Statement {
    word: String,
    start: usize,
    end: usize,
}

/// The options block: the byte just after its `{`, and its statements.
fn options_block(text: &str) -> Option<(usize, Vec<Statement>)> {
    let toks = tokens(text);
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let (t, s, e) = toks[i];
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Word
                if depth == 0 && &text[s..e] == "options" && toks.get(i + 1).is_some_and(|n| n.0 == Tok::Open) =>
            {
                let body = toks[i + 1].2;
                let mut stmts = Vec::new();
                let mut d = 0usize;
                let mut current: Option<(String, usize)> = None;
                for &(t, s, e) in &toks[i + 2..] {
                    match t {
                        Tok::Close if d == 0 => return Some((body, stmts)),
                        Tok::Open => d += 1,
                        Tok::Close => d -= 1,
                        Tok::Semi if d == 0 => {
                            if let Some((word, start)) = current.take() {
                                stmts.push(Statement { word, start, end: e });
                            }
                        }
                        _ => {}
                    }
                    if current.is_none() && t != Tok::Semi && !(t == Tok::Close && d == 0) {
                        current = Some((text[s..e].to_string(), s));
                    }
                }
                return None;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A `zone` statement of a named.conf, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfZone {
    pub name: String,
    /// `type` (master/primary, slave/secondary, hint, forward, ...).
    pub kind: String,
    pub file: Option<String>,
    pub line: usize,
}

/// What a named.conf declares at its top level: zones, included files, the options' `directory`
/// (relative zone file names are under it), and the lines of `view` blocks (not read into).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamedConf {
    pub zones: Vec<ConfZone>,
    pub includes: Vec<(String, usize)>,
    pub directory: Option<String>,
    pub views: Vec<usize>,
}

/// Read any named.conf's top level (hand-written ones included). Nothing is followed or opened.
pub fn read_named_conf(text: &str) -> NamedConf {
    let toks = tokens(text);
    let word = |i: usize| toks.get(i).map(|&(t, s, e)| (t, unquote(&text[s..e])));
    let line = |i: usize| toks.get(i).map(|&(_, s, _)| text[..s].matches('\n').count() + 1).unwrap_or(0);
    let mut out = NamedConf::default();
    let mut depth = 0usize;
    let mut i = 0;
    // The block a depth-1 statement is in: (keyword, index of the zone in `out.zones`).
    let mut block: Option<(String, Option<usize>)> = None;
    while i < toks.len() {
        let (t, s, e) = toks[i];
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    block = None;
                }
            }
            Tok::Word | Tok::Str if depth == 0 => {
                let w = &text[s..e];
                match w {
                    "zone" => {
                        if let Some((_, name)) = word(i + 1) {
                            out.zones.push(ConfZone {
                                name: match name.trim_end_matches('.') {
                                    "" => ".".to_string(),
                                    n => n.to_ascii_lowercase(),
                                },
                                kind: String::new(),
                                file: None,
                                line: line(i),
                            });
                            block = Some(("zone".into(), Some(out.zones.len() - 1)));
                        }
                    }
                    "include" => {
                        if let Some((Tok::Str, file)) = word(i + 1) {
                            out.includes.push((file, line(i)));
                        }
                    }
                    "options" => block = Some(("options".into(), None)),
                    "view" => {
                        out.views.push(line(i));
                        block = Some(("view".into(), None));
                    }
                    _ => block = None,
                }
                // Skip to the statement's block or end.
                while i + 1 < toks.len() && !matches!(toks[i + 1].0, Tok::Open | Tok::Semi) {
                    i += 1;
                }
            }
            Tok::Word if depth == 1 => {
                let value = word(i + 1).map(|(_, v)| v);
                match (block.as_ref(), &text[s..e]) {
                    (Some((_, Some(z))), "type") => out.zones[*z].kind = value.unwrap_or_default(),
                    (Some((_, Some(z))), "file") => out.zones[*z].file = value,
                    (Some((k, None)), "directory") if k == "options" => out.directory = value,
                    _ => {}
                }
                while i + 1 < toks.len() && !matches!(toks[i + 1].0, Tok::Open | Tok::Semi | Tok::Close) {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A named.conf string's text: quotes removed, `\"` and `\\` resolved.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').map(|r| r.strip_suffix('"').unwrap_or(r)) else { return s.to_string() };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn include_line(file: &str) -> String {
    format!("include \"{file}\";")
}

fn marker(file: &str) -> String {
    format!("/* groundwork (set in {file}): ")
}

/// named.conf with groundwork's options file adopted: an include as the first statement of the options
/// block, and each statement the file sets commented out. Idempotent. An error says why it cannot be
/// done safely (no options block; a statement that holds a `*/`).
pub fn adopt(text: &str, file: &str) -> Result<String, String> {
    let Some((body, stmts)) = options_block(text) else {
        return Err("named.conf has no options block to include groundwork's options in".into());
    };
    let include = include_line(file);
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    let included =
        stmts.iter().any(|s| text[s.start..s.end].split_whitespace().collect::<Vec<_>>().join(" ") == include);
    if !included {
        out.push_str(&text[..body]);
        let _ = write!(out, "\n\t{include}");
        at = body;
    }
    for s in stmts.iter().filter(|s| MANAGED.contains(&s.word.as_str())) {
        let stmt = &text[s.start..s.end];
        if stmt.contains("*/") {
            return Err(format!("the statement {stmt:?} in named.conf's options holds \"*/\": comment it out by hand"));
        }
        out.push_str(&text[at..s.start]);
        let _ = write!(out, "{}{stmt} */", marker(file));
        at = s.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// named.conf without groundwork's options file: the include removed and the site's statements put back.
pub fn release(text: &str, file: &str) -> String {
    let mark = marker(file);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find(&mark) {
        out.push_str(&rest[..p]);
        let inner = &rest[p + mark.len()..];
        match inner.find(" */") {
            Some(q) => {
                out.push_str(&inner[..q]);
                rest = &inner[q + 3..];
            }
            None => {
                out.push_str(&rest[p..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let include = include_line(file);
    let inserted = format!("\n\t{include}");
    if out.contains(&inserted) {
        out.replacen(&inserted, "", 1)
    } else {
        out.replacen(&include, "", 1)
    }
}

/// The options file named.conf's options block includes for groundwork, if any: the file its marked
/// comments name, else an included file whose name starts with `groundwork`.
pub fn adopted_file(text: &str) -> Option<String> {
    if let Some(p) = text.find("/* groundwork (set in ") {
        let rest = &text[p + "/* groundwork (set in ".len()..];
        return rest.find("): ").map(|q| rest[..q].to_string());
    }
    let (_, stmts) = options_block(text)?;
    stmts.iter().filter(|s| s.word == "include").find_map(|s| {
        let stmt = &text[s.start..s.end];
        let file = stmt.split('"').nth(1)?;
        file.rsplit('/').next()?.starts_with("groundwork").then(|| file.to_string())
    })
}

/// Whether named.conf already has groundwork's options file adopted exactly.
pub fn adopted(text: &str, file: &str) -> bool {
    adopt(text, file).is_ok_and(|t| t == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_written_named_conf_gives_its_zones_includes_and_directory() {
        let conf = "options {\n\tdirectory \"/var/named\";\n\tlisten-on port 53 { any; };\n};\n\
            // a comment with zone \"x\" { file \"no\"; };\n\
            zone \".\" IN {\n\ttype hint;\n\tfile \"named.ca\";\n};\n\
            include \"/etc/named.rfc1912.zones\";\n\
            zone \"example.localdomain\" {\n      type master;\n      file \"/etc/named/fwd.zone\";\n};\n\
            zone \"0.16.172.in-addr.arpa\" in {\n type master;\n file \"rev.zone\";\n allow-update { none; };\n};\n\
            view \"inside\" { zone \"hidden.test\" { type master; file \"h\"; }; };\n";
        let c = read_named_conf(conf);
        assert_eq!(c.directory.as_deref(), Some("/var/named"));
        assert_eq!(c.includes, vec![("/etc/named.rfc1912.zones".to_string(), 10)]);
        let zones: Vec<(&str, &str, Option<&str>, usize)> =
            c.zones.iter().map(|z| (z.name.as_str(), z.kind.as_str(), z.file.as_deref(), z.line)).collect();
        assert_eq!(
            zones,
            vec![
                (".", "hint", Some("named.ca"), 6),
                ("example.localdomain", "master", Some("/etc/named/fwd.zone"), 11),
                ("0.16.172.in-addr.arpa", "master", Some("rev.zone"), 15),
            ]
        );
        assert_eq!(c.views, vec![20]);
    }

    /// RHEL 9's stock /etc/named.conf (bind-9.16), with the comment block inside its options.
    pub const RHEL: &str = include_str!("../../../tests/fixtures/rhel9_named.conf");

    const FILE: &str = "/etc/named/groundwork.options.conf";

    #[test]
    fn the_sites_options_are_commented_out_and_come_back_whole() {
        let adopted_text = adopt(RHEL, FILE).unwrap();
        assert!(adopted_text.contains("options {\n\tinclude \"/etc/named/groundwork.options.conf\";\n\t/* groundwork"));
        for kept in ["directory", "pid-file", "include \"/etc/crypto-policies", "zone \".\" IN", "logging {"] {
            assert!(adopted_text.contains(kept), "{kept}");
        }
        assert!(adopted_text.contains(
            "/* groundwork (set in /etc/named/groundwork.options.conf): listen-on port 53 { 127.0.0.1; }; */"
        ));
        assert!(adopted_text.contains("/* groundwork (set in /etc/named/groundwork.options.conf): recursion yes; */"));
        // Nothing managed is left live in the block.
        let (_, stmts) = options_block(&adopted_text).unwrap();
        let live: Vec<&str> = stmts.iter().map(|s| s.word.as_str()).filter(|w| MANAGED.contains(w)).collect();
        assert!(live.is_empty(), "{live:?}");
        // Idempotent, and releasable back to the byte.
        assert_eq!(adopt(&adopted_text, FILE).unwrap(), adopted_text);
        assert!(adopted(&adopted_text, FILE) && !adopted(RHEL, FILE));
        assert_eq!(release(&adopted_text, FILE), RHEL);
        assert_eq!(adopted_file(&adopted_text).as_deref(), Some(FILE));
        assert_eq!(adopted_file(RHEL), None);
    }

    #[test]
    fn tricky_layouts_are_read_as_named_reads_them() {
        // A statement over several lines, a brace in a string, comments of all three kinds.
        let text = "# site\noptions { // x\n  directory \"/var/{named}\";\n  forwarders {\n    192.0.2.1; // a\n  };\n  recursion\n    no;\n};\nzone \"a\" { type master; file \"a\"; };\n";
        let got = adopt(text, FILE).unwrap();
        assert!(
            got.contains("/* groundwork (set in /etc/named/groundwork.options.conf): recursion\n    no; */"),
            "{got}"
        );
        assert!(got.contains("): forwarders {\n    192.0.2.1; // a\n  }; */"), "{got}");
        assert!(got.contains("directory \"/var/{named}\";") && got.contains("zone \"a\""), "{got}");
        assert_eq!(release(&got, FILE), text);
        assert!(adopt("zone \"a\" { type master; file \"a\"; };\n", FILE).unwrap_err().contains("no options block"));
        // The word `options` inside a zone or a string is not the block.
        assert!(adopt("zone \"options\" { type master; file \"options\"; };\n", FILE).is_err());
    }

    #[test]
    fn a_statement_that_holds_a_comment_end_is_refused() {
        let text = "options {\n  forwarders { 192.0.2.1; /* upstream */ };\n};\n";
        let e = adopt(text, FILE).unwrap_err();
        assert!(e.contains("comment it out by hand"), "{e}");
    }
}
