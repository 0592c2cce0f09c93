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
        "// Managed by groundwork for cluster {}: named's options, included inside the options block of {named_conf}.\n",
        env.cluster.name
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
