//! HTML escaping for the status page: every text that comes from an inventory, a host or the cluster
//! goes through [`escape`], in element content and in quoted attribute values alike.

/// `&`, `<`, `>`, `"` and `'` as character references; control characters (but tab and line feed) as
/// visible `\u{…}` escapes, as the terminal output shows them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_quotes_become_references() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('1')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(escape("a\u{1b}[31mb\r"), "a\\u{1b}[31mb\\u{d}");
    }
}
