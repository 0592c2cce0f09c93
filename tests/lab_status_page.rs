//! The drift loop's status page, loaded by a real browser: Debian's chromium, headless, run inside one
//! of the lab's node namespaces (it has no route anywhere but the lab's bridge), reading the page from a
//! drift loop that checks the lab. The DOM it builds is asserted on; screenshots are kept under
//! target/tmp/status-page/.

mod common;

use common::drift_loop::{curl, wait_for_page, DriftLoop};
use common::groundwork;
use common::lab::Lab;
use scraper::{Html, Selector};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU32;

static NEXT: AtomicU32 = AtomicU32::new(0);
const BASE: u32 = 246;
/// Values with markup in them: a TXT record's text and a served file's content.
const TXT: &str = r#"<img src=x onerror=alert(1)><script>alert(2)</script>"#;
const SERVED: &str = "<b>bold</b><script>alert(3)</script>";

fn chromium(lab: &Lab, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("gw{}-i2", lab.index), "chromium"])
        // Root has no sandbox to drop into; nothing but the lab is reachable from this namespace.
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .env("HOME", profile.path())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The DOM chromium built from the page.
fn dom(lab: &Lab, url: &str) -> Html {
    let out = chromium(lab, &["--dump-dom", url]);
    Html::parse_document(&String::from_utf8_lossy(&out.stdout))
}

fn texts(html: &Html, selector: &str) -> Vec<String> {
    html.select(&Selector::parse(selector).unwrap()).map(|e| e.text().collect::<String>()).collect()
}

fn attrs(html: &Html, selector: &str, attr: &str) -> Vec<String> {
    html.select(&Selector::parse(selector).unwrap()).filter_map(|e| e.value().attr(attr).map(str::to_string)).collect()
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("read the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

fn screenshot(lab: &Lab, url: &str, name: &str, width: u32, height: u32) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    chromium(
        lab,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={width},{height}"),
            "--hide-scrollbars",
            url,
        ],
    );
    assert_eq!(png_size(&path), (width, height), "{}", path.display());
    eprintln!("status page screenshot: {}", path.display());
    path
}

#[test]
fn a_real_browser_sees_drift_appear_and_heal_and_markup_in_values_stays_text() {
    let lab = Lab::up(BASE, &NEXT);
    // A TXT record and a served file whose values carry markup.
    let extra = format!(
        "dns:\n  records:\n    - {{ name: note, type: TXT, value: {} }}\n",
        serde_json::to_string(TXT).unwrap()
    );
    std::fs::write(lab.env_dir().join("records.yaml"), extra).unwrap();
    let services = lab.env_dir().join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let served =
        format!("  serve:\n    - {{ path: note.html, content: {} }}\n", serde_json::to_string(SERVED).unwrap());
    assert!(text.contains("  serve:\n"));
    std::fs::write(&services, text.replacen("  serve:\n", &served, 1)).unwrap();
    let run = groundwork(&["apply", lab.env_str(), "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    let drift = DriftLoop::start(lab.env_str(), &format!("{}:0", lab.ip(1)));
    let url = format!("{}/", drift.url);
    wait_for_page(&url, "in sync", |p| p.contains(r#"data-outcome="in-sync""#));
    let page = dom(&lab, &url);
    assert_eq!(texts(&page, "#environment"), ["lab"]);
    assert!(texts(&page, "article.drifted").is_empty());
    // The service table: named on ns1 is enabled and active.
    let named: Vec<String> = texts(&page, r#"tr[data-host="ns1"]"#);
    assert!(named.iter().any(|r| r.contains("named") && r.contains("active")), "{named:?}");
    // It rode in the check's batch: every check so far was one exec session per host.
    let log = drift.log();
    let checks: Vec<&str> = log.lines().filter(|l| l.contains(" check ") && l.contains("round_trips=")).collect();
    assert!(!checks.is_empty(), "{log}");
    for c in &checks {
        let trips = c.split("round_trips=").nth(1).unwrap_or_default();
        let per_host: Vec<&str> = trips.split_whitespace().collect();
        assert!(per_host.len() == 3 && per_host.iter().all(|t| t.ends_with("=1")), "{c}");
    }
    // The picture: every box in sync, the zone's among them.
    let states = attrs(&page, "svg#graph g.node", "data-state");
    assert!(!states.is_empty() && states.iter().all(|s| s == "in-sync"), "{states:?}");
    let zone = "bind.zone[ns1:lab.example.test]";
    assert!(attrs(&page, "svg#graph g.node", "data-label").iter().any(|l| l == zone));

    // Hand edits: the TXT record goes from the zone (named reloads it), the served file is rewritten.
    let zone_file = "/var/named/lab.example.test.zone";
    lab.ssh_ok("ns1", &format!("sed -i '/^note/d' {zone_file} && rndc -k /etc/rndc.key reload >/dev/null"));
    lab.ssh_ok("bastion", "echo 'by hand' > /usr/share/nginx/html/note.html");
    // An ignition is secret-bearing: the page, like the plan, shows its digests and never its content.
    lab.ssh_ok("bastion", r#"echo '{"secret":"SENTINEL-7f3a"}' > /usr/share/nginx/html/bootstrap.ign"#);
    let file = "files.file[bastion:/usr/share/nginx/html/note.html]";
    let ignition = "files.file[bastion:/usr/share/nginx/html/bootstrap.ign]";
    wait_for_page(&url, "the drifted resources", |p| {
        p.contains(r#"data-outcome="drifted""#) && p.contains("3 drifted")
    });
    let page = dom(&lab, &url);
    let mut drifted = attrs(&page, "article.drifted", "data-address");
    drifted.sort();
    assert_eq!(drifted, [zone, ignition, file], "{drifted:?}");
    let raw = curl(&[&url]);
    assert!(!raw.contains("SENTINEL") && !raw.contains("3.1.0"), "secret content on the page");
    let secret = texts(&page, &format!(r#"article.drifted[data-address="{ignition}"] pre"#)).join("");
    assert!(secret.contains("sensitive content hidden") && secret.contains("sha256:"), "{secret}");
    let diffs = texts(&page, "article.drifted pre").join("\n");
    // The markup is text in the diff, exactly as written in the inventory...
    assert!(diffs.contains(&format!("TXT note \"{TXT}\"")) || diffs.contains(TXT), "{diffs}");
    assert!(diffs.contains(SERVED), "{diffs}");
    // ...and the browser made no element of it.
    for tag in ["img", "script", "b"] {
        assert_eq!(page.select(&Selector::parse(tag).unwrap()).count(), 0, "a <{tag}> element came from a value");
    }
    let states = attrs(&page, "svg#graph g.node", "data-state");
    // The zone's box, and the box of the files' group (note.html and bootstrap.ign are among its members).
    assert_eq!(states.iter().filter(|s| *s == "drifted").count(), 2, "{states:?}");
    screenshot(&lab, &url, "status-page.png", 1280, 2000);
    screenshot(&lab, &url, "status-page-phone.png", 390, 844);

    // /metrics and /healthz keep answering beside the page; the page takes no action.
    assert!(curl(&[&format!("{}/metrics", drift.url)]).contains("groundwork_drifted_resources{environment=\"lab\"} 3"));
    assert_eq!(curl(&[&format!("{}/healthz", drift.url)]), "ok\n");
    let post = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &url]);
    assert_eq!(post, "405");

    // Healed by another run: the page follows.
    let heal = groundwork(&["drift", lab.env_str(), "--heal"]);
    assert_eq!(heal.code, 0, "{}{}", heal.stdout, heal.stderr);
    wait_for_page(&url, "in sync after the heal", |p| p.contains(r#"data-outcome="in-sync""#));
    let page = dom(&lab, &url);
    assert!(texts(&page, "article.drifted").is_empty());
    assert!(attrs(&page, "svg#graph g.node", "data-state").iter().all(|s| s == "in-sync"));
    assert_eq!(lab.dig(&["note.lab.example.test", "TXT"]), format!("\"{TXT}\""));
}
