//! The drift loop's status page: one self-contained HTML document (no script, no request beyond
//! itself), rendered from a [`Snapshot`] the loop keeps after each check. Pure: the same snapshot
//! and clock give the same page. Everything from an inventory, a host or the cluster is escaped.

use super::graph_svg::{Layout, ResourceState};
use super::html::escape;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The page's style sheet. The page is served with a Content-Security-Policy that admits this sheet
/// by its digest and nothing else: no script, no inline style attribute, no request elsewhere.
pub const STYLE: &str = r#"
:root { color-scheme: light; --ok: #2e7d32; --drift: #e65100; --wait: #1565c0; --fail: #c62828; --muted: #616161; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 0 12px 24px; max-width: 1200px; color: #212121; }
header { border-bottom: 1px solid #e0e0e0; padding: 8px 0; }
h1 { font-size: 1.3em; margin: 8px 0 4px; }
h2 { font-size: 1.1em; margin: 22px 0 8px; }
h3 { font-size: 1em; margin: 0 0 6px; font-family: monospace; word-break: break-all; }
.outcome { display: inline-block; padding: 3px 10px; border-radius: 12px; font-weight: 600; color: #fff; }
.outcome.in-sync { background: var(--ok); } .outcome.drifted { background: var(--drift); }
.outcome.failed { background: var(--fail); } .outcome.pending { background: var(--muted); }
.muted { color: var(--muted); }
pre { background: #fafafa; border: 1px solid #eee; padding: 8px; overflow-x: auto; margin: 0; font-size: 13px; }
.line-add { color: #1b5e20; } .line-remove { color: #b71c1c; } .line-hunk { color: #00695c; }
article.drifted { border-left: 4px solid var(--drift); padding: 6px 10px; margin: 10px 0; background: #fffaf3; }
article.healed { border-left-color: var(--ok); background: #f4fbf4; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
td.mono, .mono { font-family: monospace; }
.state { font-weight: 600; white-space: nowrap; }
.state.in-sync, .state.passed, .state.ok { color: var(--ok); } .state.drifted { color: var(--drift); }
.state.waiting { color: var(--wait); } .state.failed, .state.fail { color: var(--fail); }
.table-scroll { overflow-x: auto; }
figure { margin: 0; overflow: auto; max-height: 80vh; border: 1px solid #eee; }
.legend span { margin-right: 14px; white-space: nowrap; }
ol.timeline { padding-left: 20px; } ol.timeline li { margin: 4px 0; }
footer { margin-top: 28px; font-size: 13px; }
@media (max-width: 640px) { body { font-size: 14px; } th, td { padding: 3px 4px; } }
"#;

/// A drifted resource as the page shows it: the plan's own text for it (digests only for a secret).
#[derive(Clone, Debug, PartialEq)]
pub struct DriftedResource {
    pub address: String,
    pub verb: String,
    pub body: String,
}

/// One install gate as last probed.
#[derive(Clone, Debug, PartialEq)]
pub struct GateRow {
    pub gate: String,
    pub passed: bool,
    pub detail: String,
    pub notes: Vec<String>,
    /// Resources waiting on it.
    pub waiting: usize,
}

/// When a gate passed: as the cluster tells it, and when this loop first saw it hold.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    pub gate: String,
    pub cluster_time: Option<String>,
    pub seen_unix: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VipRow {
    pub vip: String,
    pub instance: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRow {
    pub host: String,
    pub unit: String,
    pub enabled: String,
    pub active: String,
    pub ports: Vec<(String, bool)>,
    pub version: String,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    InSync,
    Drifted,
    /// Drift found and healed in the same check.
    Healed,
    /// Nothing drifted, but a shared VIP is held by no load balancer or by two (no apply fixes that).
    VipsBroken,
    Failed(String),
}

/// What the last check found.
#[derive(Clone, Debug, PartialEq)]
pub struct LastCheck {
    pub finished_unix: f64,
    pub duration_seconds: f64,
    pub outcome: Outcome,
    pub drifted: Vec<DriftedResource>,
    pub gates: Vec<GateRow>,
    pub vips: Vec<VipRow>,
    pub services: Vec<ServiceRow>,
    /// By address; a resource it does not name was not read.
    pub states: BTreeMap<String, ResourceState>,
    pub notes: Vec<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub environment: String,
    pub every_seconds: u64,
    pub started_unix: f64,
    pub checks: u64,
    pub errors: u64,
    pub heals: u64,
    pub last: Option<LastCheck>,
    pub timeline: Vec<TimelineEntry>,
}

/// Seconds between the page's own reloads: the check interval, within 5 s and 60 s.
pub fn refresh_seconds(every_seconds: u64) -> u64 {
    every_seconds.clamp(5, 60)
}

/// The whole page.
pub fn page(s: &Snapshot, layout: &Layout, now_unix: f64) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let env = escape(&s.environment);
    let (class, word) = match s.last.as_ref().map(|l| &l.outcome) {
        None => ("pending", "first check running".to_string()),
        Some(Outcome::InSync) => ("in-sync", "in sync".to_string()),
        Some(Outcome::Drifted) => {
            let n = s.last.as_ref().map_or(0, |l| l.drifted.len());
            ("drifted", format!("{n} drifted"))
        }
        Some(Outcome::Healed) => ("in-sync", "healed".to_string()),
        Some(Outcome::VipsBroken) => ("drifted", "a VIP is not held as it should be".to_string()),
        Some(Outcome::Failed(_)) => ("failed", "check failed".to_string()),
    };
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>{word} · {env} · groundwork</title>
<style>{STYLE}</style></head>
<body>
<header><h1>groundwork drift: <span id="environment">{env}</span></h1>
<p><span id="outcome" class="outcome {class}" data-outcome="{class}">{word}</span> "#,
        refresh = refresh_seconds(s.every_seconds),
    );
    match &s.last {
        None => {
            let _ = write!(h, r#"<span class="muted">since {}</span>"#, utc(s.started_unix));
        }
        Some(l) => {
            let _ = write!(
                h,
                r#"<span class="muted">checked {} ({} ago), took {:.2} s; checks every {}</span>"#,
                utc(l.finished_unix),
                ago(now_unix - l.finished_unix),
                l.duration_seconds,
                interval(s.every_seconds)
            );
        }
    }
    let _ = writeln!(
        h,
        r#"</p><p class="muted" id="counters">{} check(s), {} failed, {} heal(s) since {}. The page reloads every {} s.</p></header>"#,
        s.checks,
        s.errors,
        s.heals,
        utc(s.started_unix),
        refresh_seconds(s.every_seconds)
    );
    if let Some(l) = &s.last {
        drift(&mut h, l);
        gates(&mut h, &l.gates);
    }
    timeline(&mut h, &s.timeline);
    if let Some(l) = &s.last {
        hosts(&mut h, l);
    }
    let empty = BTreeMap::new();
    let states = s.last.as_ref().map_or(&empty, |l| &l.states);
    graph(&mut h, layout, states);
    let _ = write!(
        h,
        r#"<footer class="muted">groundwork {} · read-only · <a href="/metrics">metrics</a> · <a href="/healthz">health</a></footer>
</body></html>
"#,
        escape(super::json::GROUNDWORK_VERSION)
    );
    h
}

/// The error of a failed check, what drifted (or was healed) and the plan's notes.
fn drift(h: &mut String, l: &LastCheck) {
    if let Outcome::Failed(message) = &l.outcome {
        let _ =
            write!(h, r#"<section id="error"><h2>The last check failed</h2><pre>{}</pre></section>"#, escape(message));
        // Nothing was read to the end: no list of what drifted.
        return;
    }
    let healed = l.outcome == Outcome::Healed;
    let _ = write!(
        h,
        r#"<section id="drift"><h2>{} ({})</h2>"#,
        if healed { "Healed in the last check" } else { "Drifted resources" },
        l.drifted.len()
    );
    if l.drifted.is_empty() {
        h.push_str(r#"<p class="muted">None: what was read matches the environment.</p>"#);
    }
    for d in &l.drifted {
        let _ = write!(
            h,
            r#"<article class="drifted{}" data-address="{a}"><h3>{a}</h3><p class="muted">{} by the next apply</p><pre>{}</pre></article>"#,
            if healed { " healed" } else { "" },
            escape(&d.verb),
            diff_lines(&d.body),
            a = escape(&d.address),
        );
    }
    h.push_str("</section>\n");
    for n in &l.notes {
        let _ = write!(h, r#"<p class="muted note">{}</p>"#, escape(n));
    }
}

fn gates(h: &mut String, gates: &[GateRow]) {
    if !gates.is_empty() {
        h.push_str(
            r#"<section id="gates"><h2>Install gates</h2><div class="table-scroll"><table><thead><tr><th>Gate</th><th>Status</th><th>Seen</th><th>Waiting</th></tr></thead><tbody>"#,
        );
        for g in gates {
            let (cls, word) = if g.passed { ("passed", "✓ passed") } else { ("waiting", "◷ not yet") };
            let mut seen = escape(&g.detail);
            for n in &g.notes {
                let _ = write!(seen, "<br>{}", escape(n));
            }
            let _ = write!(
                h,
                r#"<tr data-gate="{gate}"><td class="mono">{gate}</td><td class="state {cls}">{word}</td><td>{seen}</td><td>{}</td></tr>"#,
                g.waiting,
                gate = escape(&g.gate),
            );
        }
        h.push_str("</tbody></table></div></section>\n");
    }
}

/// The shared VIPs and each host's service table.
fn hosts(h: &mut String, l: &LastCheck) {
    if !l.vips.is_empty() {
        h.push_str(r#"<section id="vips"><h2>Shared VIPs</h2><table><tbody>"#);
        for v in &l.vips {
            let (cls, word) = if v.ok { ("ok", "✓") } else { ("fail", "✗") };
            let _ = write!(
                h,
                r#"<tr><td class="state {cls}">{word}</td><td class="mono">{} ({})</td><td>{}</td></tr>"#,
                escape(&v.vip),
                escape(&v.instance),
                escape(&v.detail)
            );
        }
        h.push_str("</tbody></table></section>\n");
    }
    if !l.services.is_empty() {
        h.push_str(
            r#"<section id="hosts"><h2>Hosts and their services</h2><div class="table-scroll"><table><thead><tr><th>Host</th><th>Unit</th><th>Enabled</th><th>Active</th><th>Ports</th><th>Version</th></tr></thead><tbody>"#,
        );
        for r in &l.services {
            let ports: Vec<String> = r
                .ports
                .iter()
                .map(|(p, listening)| {
                    if *listening {
                        escape(p)
                    } else {
                        format!(r#"<span class="state fail">{} closed</span>"#, escape(p))
                    }
                })
                .collect();
            let _ = write!(
                h,
                r#"<tr data-host="{}"><td class="mono">{}</td><td class="mono state {}">{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td class="muted">{}</td></tr>"#,
                escape(&r.host),
                escape(&r.host),
                if r.ok { "ok" } else { "fail" },
                escape(&r.unit),
                escape(&r.enabled),
                escape(&r.active),
                if ports.is_empty() { "-".to_string() } else { ports.join(" ") },
                escape(&r.version)
            );
        }
        h.push_str("</tbody></table></div></section>\n");
    }
}

fn timeline(h: &mut String, entries: &[TimelineEntry]) {
    if entries.is_empty() {
        return;
    }
    h.push_str(r#"<section id="timeline"><h2>Install timeline</h2><ol class="timeline">"#);
    for e in entries {
        let when = match &e.cluster_time {
            Some(t) => format!(r#"<span class="mono">{}</span> (the cluster's time)"#, escape(t)),
            None => format!("seen passed at {} by this loop", utc(e.seen_unix)),
        };
        let _ =
            write!(h, r#"<li data-gate="{g}"><span class="mono">{g}</span> passed: {when}</li>"#, g = escape(&e.gate));
    }
    h.push_str("</ol></section>\n");
}

fn graph(h: &mut String, layout: &Layout, states: &BTreeMap<String, ResourceState>) {
    let _ = write!(
        h,
        r#"<section id="graph-section"><h2>Resources ({})</h2><p class="legend">"#,
        states.len().max(count(layout))
    );
    for st in ResourceState::ALL {
        let _ = write!(h, r#"<span class="state {}">{} {}</span>"#, st.as_str(), st.mark(), st.describe());
    }
    h.push_str("</p><figure>");
    h.push_str(&layout.svg(states));
    h.push_str(r#"</figure><details id="graph-text"><summary>The resources as text</summary><ul class="mono">"#);
    for b in &layout.boxes {
        for m in &b.members {
            let st = states.get(m).copied().unwrap_or_default();
            let _ = write!(
                h,
                r#"<li data-state="{}">{} {} <span class="muted">({})</span></li>"#,
                st.as_str(),
                st.mark(),
                escape(m),
                st.describe()
            );
        }
    }
    h.push_str("</ul></details></section>\n");
}

fn count(layout: &Layout) -> usize {
    layout.boxes.iter().map(|b| b.members.len()).sum()
}

/// A change's text with its diff lines marked for colour.
fn diff_lines(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 64);
    for line in body.lines() {
        let t = line.trim_start();
        let class = if t.starts_with("+++") || t.starts_with("---") {
            None
        } else if t.starts_with('+') {
            Some("line-add")
        } else if t.starts_with('-') {
            Some("line-remove")
        } else if t.starts_with("@@") {
            Some("line-hunk")
        } else {
            None
        };
        match class {
            Some(c) => {
                let _ = writeln!(out, r#"<span class="{c}">{}</span>"#, escape(line));
            }
            None => {
                let _ = writeln!(out, "{}", escape(line));
            }
        }
    }
    out
}

/// `2026-12-02 19:20:31 UTC`.
pub fn utc(unix: f64) -> String {
    jiff::Timestamp::from_second(unix.max(0.0) as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| "?".to_string())
}

fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

fn interval(seconds: u64) -> String {
    if seconds > 0 && seconds.is_multiple_of(3600) {
        format!("{} h", seconds / 3600)
    } else if seconds > 0 && seconds.is_multiple_of(60) {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundwork_sdk::Address;
    use proptest::prelude::*;
    use scraper::{Html, Selector};

    fn layout() -> Layout {
        let zone = Address::new("bind", "zone", Some("ns1"), "lab.example.test");
        let conf = Address::new("bind", "conf", Some("ns1"), "/etc/named.conf");
        let deps = [zone.clone()];
        Layout::new([(&zone, &[][..]), (&conf, &deps[..])])
    }

    fn snapshot(text: &str) -> Snapshot {
        let mut states = BTreeMap::new();
        states.insert("bind.zone[ns1:lab.example.test]".to_string(), ResourceState::Drifted);
        states.insert("bind.conf[ns1:/etc/named.conf]".to_string(), ResourceState::InSync);
        Snapshot {
            environment: "lab".into(),
            every_seconds: 30,
            started_unix: 1_796_000_000.0,
            checks: 3,
            errors: 1,
            heals: 0,
            last: Some(LastCheck {
                finished_unix: 1_796_000_090.0,
                duration_seconds: 0.25,
                outcome: Outcome::Drifted,
                drifted: vec![DriftedResource {
                    address: "bind.zone[ns1:lab.example.test]".into(),
                    verb: "will be updated in place".into(),
                    body: format!("  ~ bind.zone[ns1:lab.example.test]\n      ~ TXT note {text}\n      - A m1 10.0.0.9\n      + A m1 10.0.0.21\n"),
                }],
                gates: vec![GateRow {
                    gate: "bootstrap-complete".into(),
                    passed: true,
                    detail: "API v1.33 answers; bootstrap complete".into(),
                    notes: vec![],
                    waiting: 0,
                }],
                vips: vec![],
                services: vec![ServiceRow {
                    host: "ns1".into(),
                    unit: "named.service".into(),
                    enabled: "enabled".into(),
                    active: "active".into(),
                    ports: vec![("53/udp".into(), true), ("53/tcp".into(), false)],
                    version: "BIND 9.18".into(),
                    ok: false,
                }],
                states,
                notes: vec![],
            }),
            timeline: vec![TimelineEntry {
                gate: "bootstrap-complete".into(),
                cluster_time: Some("2026-12-02T18:00:00Z".into()),
                seen_unix: 1_796_000_000.0,
            }],
        }
    }

    #[test]
    fn the_page_as_rendered() {
        insta::assert_snapshot!(page(&snapshot("\"hello\""), &layout(), 1_796_000_100.0));
    }

    #[test]
    fn before_the_first_check_the_page_says_so() {
        let mut s = snapshot("x");
        s.last = None;
        let html = Html::parse_document(&page(&s, &layout(), 1_796_000_001.0));
        let outcome = html.select(&Selector::parse("#outcome").unwrap()).next().unwrap();
        assert_eq!(outcome.value().attr("data-outcome"), Some("pending"));
        assert_eq!(html.select(&Selector::parse("article.drifted").unwrap()).count(), 0);
    }

    #[test]
    fn a_failed_check_shows_its_error_as_text() {
        let mut s = snapshot("x");
        if let Some(l) = s.last.as_mut() {
            l.outcome = Outcome::Failed("bind.zone[ns1:lab.example.test]: <refused> & more".into());
            l.drifted.clear();
        }
        let html = Html::parse_document(&page(&s, &layout(), 1_796_000_100.0));
        let outcome = html.select(&Selector::parse("#outcome").unwrap()).next().unwrap();
        assert_eq!(outcome.value().attr("data-outcome"), Some("failed"));
        let error: Vec<String> =
            html.select(&Selector::parse("#error pre").unwrap()).map(|e| e.text().collect()).collect();
        assert_eq!(error, ["bind.zone[ns1:lab.example.test]: <refused> & more"]);
        assert_eq!(html.select(&Selector::parse("#drift").unwrap()).count(), 0, "no drift list for a failed check");
    }

    /// The elements the page is built of: anything else in a parsed page came from a value.
    const ELEMENTS: &[&str] = &[
        "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "span", "section",
        "article", "pre", "table", "thead", "tbody", "tr", "th", "td", "div", "ol", "ul", "li", "br", "figure", "svg",
        "g", "path", "rect", "text", "details", "summary", "footer", "a",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any text in any field renders as that text: an HTML5 parser finds it back verbatim, and
        /// finds no element, attribute or script the page does not make itself.
        #[test]
        fn values_render_as_text_never_as_markup(
            env in "[ -~]{1,30}",
            value in prop_oneof![
                Just("<script>alert(1)</script>".to_string()),
                Just("\"><img src=x onerror=alert(1)>".to_string()),
                Just("</pre></article><a href=javascript:x>".to_string()),
                Just("&lt;b&gt;&amp;".to_string()),
                "[ -~]{0,40}",
                "\\PC{0,20}",
            ],
            host in "[ -~]{1,20}",
        ) {
            let mut s = snapshot(&value);
            s.environment = env.clone();
            let address = format!("files.file[{host}:/srv/{value}]");
            if let Some(l) = s.last.as_mut() {
                l.drifted[0].address = address.clone();
                l.services[0].host = host.clone();
                l.services[0].version = value.clone();
                l.gates[0].detail = value.clone();
                l.states.insert(address.clone(), ResourceState::Drifted);
            }
            let a = Address::new("files", "file", Some(&host), format!("/srv/{value}"));
            let lay = Layout::new([(&a, &[][..])]);
            let html = Html::parse_document(&page(&s, &lay, 1_796_000_100.0));
            let text_of = |sel: &str| -> Vec<String> {
                html.select(&Selector::parse(sel).unwrap()).map(|e| e.text().collect::<String>()).collect()
            };
            prop_assert_eq!(text_of("#environment"), vec![env.clone()]);
            prop_assert_eq!(text_of("article.drifted h3"), vec![address.clone()]);
            let article = html.select(&Selector::parse("article.drifted").unwrap()).next().unwrap();
            prop_assert_eq!(article.value().attr("data-address"), Some(address.as_str()));
            let line = format!("~ TXT note {value}");
            prop_assert!(text_of("article.drifted pre")[0].contains(&line));
            prop_assert_eq!(text_of("tr[data-host] td:nth-child(1)"), vec![host.clone()]);
            prop_assert_eq!(text_of("tr[data-host] td:nth-child(6)"), vec![value.clone()]);
            prop_assert_eq!(text_of("tr[data-gate] td:nth-child(3)"), vec![value.clone()]);
            let label = html.select(&Selector::parse("svg g.node").unwrap()).next().unwrap();
            prop_assert_eq!(label.value().attr("data-label"), Some(address.as_str()));
            prop_assert!(text_of("svg g.node title")[0].starts_with(&address));
            prop_assert!(text_of("#graph-text li")[0].contains(&address));
            for e in html.root_element().descendants().filter_map(scraper::ElementRef::wrap) {
                let name = e.value().name();
                prop_assert!(ELEMENTS.contains(&name), "element <{}> came from a value", name);
                for (attr, _) in e.value().attrs() {
                    prop_assert!(!attr.starts_with("on") && attr != "src", "attribute {} came from a value", attr);
                }
            }
        }
    }
}
