//! The drift loop's endpoint: the status page at `/`, `/metrics` and `/healthz`. Read-only: GET and
//! HEAD are the only methods, and no request changes anything.

use super::Served;
use crate::render::graph_svg::Layout;
use crate::render::status_page;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A reply before it is written: status line, headers beyond the common ones, body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    fn text(status: &'static str, body: &str) -> Reply {
        Reply { status, headers: vec![("Content-Type", "text/plain; charset=utf-8".into())], body: body.to_string() }
    }
}

/// The page's Content-Security-Policy: its own style sheet, by digest, and nothing else — no script,
/// no inline style attribute, no frame, no request to anywhere.
pub(crate) fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(status_page::STYLE.as_bytes());
        format!(
            "default-src 'none'; style-src 'sha256-{}'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

/// Answer one request line. Pure: no socket, so that routing and headers are unit-tested.
pub(crate) fn respond(method: &str, target: &str, served: &Served, layout: &Layout, now_unix: f64) -> Reply {
    if method != "GET" && method != "HEAD" {
        let mut r = Reply::text("405 Method Not Allowed", "read-only: GET or HEAD\n");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    match path {
        "/" | "/index.html" => Reply {
            status: "200 OK",
            headers: vec![
                ("Content-Type", "text/html; charset=utf-8".into()),
                ("Content-Security-Policy", content_security_policy().into()),
                ("X-Frame-Options", "DENY".into()),
                ("Referrer-Policy", "no-referrer".into()),
            ],
            body: status_page::page(&served.status, layout, now_unix),
        },
        "/metrics" => Reply {
            status: "200 OK",
            headers: vec![("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8".into())],
            body: served.metrics.clone(),
        },
        // Liveness for a Deployment's probe: the process serves (the checks' own health is in
        // groundwork_drift_last_check_success).
        "/healthz" => Reply::text("200 OK", "ok\n"),
        _ => Reply::text("404 Not Found", "try /, /metrics or /healthz\n"),
    }
}

/// A minimal HTTP/1.0 server: one request per connection, answered from the latest check.
pub(crate) async fn serve(listener: tokio::net::TcpListener, served: Arc<Mutex<Served>>, layout: Arc<Layout>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let served = served.clone();
        let layout = layout.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let mut words = request.split_whitespace();
            let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            // The snapshot is shared, not copied: the page renders outside the lock.
            let snapshot = match served.lock() {
                Ok(s) => Served { metrics: s.metrics.clone(), status: s.status.clone() },
                Err(_) => return,
            };
            let reply = respond(method, target, &snapshot, &layout, super::now_unix());
            let mut head = format!("HTTP/1.0 {}\r\n", reply.status);
            for (k, v) in &reply.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
                reply.body.len()
            ));
            let _ = sock.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = sock.write_all(reply.body.as_bytes()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::status_page::Snapshot;

    fn served() -> Served {
        let snapshot = Snapshot {
            environment: "lab".into(),
            every_seconds: 60,
            started_unix: 1_796_000_000.0,
            checks: 0,
            errors: 0,
            heals: 0,
            last: None,
            timeline: Vec::new(),
        };
        Served { metrics: "groundwork_drift_checks_total 1\n# EOF\n".into(), status: Arc::new(snapshot) }
    }

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_page_metrics_and_health_are_served_and_nothing_else() {
        let (s, layout) = (served(), Layout::new([]));
        let page = respond("GET", "/?refresh=1", &s, &layout, 1_796_000_001.0);
        assert_eq!(page.status, "200 OK");
        assert_eq!(header(&page, "Content-Type"), Some("text/html; charset=utf-8"));
        assert!(page.body.contains(r#"data-outcome="pending""#), "{}", page.body);
        let metrics = respond("GET", "/metrics", &s, &layout, 0.0);
        assert_eq!((metrics.status, metrics.body.as_str()), ("200 OK", "groundwork_drift_checks_total 1\n# EOF\n"));
        assert_eq!(respond("HEAD", "/healthz", &s, &layout, 0.0).body, "ok\n");
        assert_eq!(respond("GET", "/metrics/../etc/passwd", &s, &layout, 0.0).status, "404 Not Found");
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", ""] {
            let r = respond(method, "/", &s, &layout, 0.0);
            assert_eq!(r.status, "405 Method Not Allowed", "{method}");
            assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
        }
    }

    #[test]
    fn the_policy_admits_exactly_the_pages_own_style_sheet() {
        use base64::Engine;
        use sha2::Digest;
        let page = respond("GET", "/", &served(), &Layout::new([]), 0.0);
        let csp = header(&page, "Content-Security-Policy").unwrap();
        let sheet = page.body.split("<style>").nth(1).and_then(|r| r.split("</style>").next()).unwrap();
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(sheet.as_bytes()));
        assert!(csp.contains(&format!("style-src 'sha256-{digest}'")), "{csp}");
        assert!(csp.starts_with("default-src 'none';") && !csp.contains("script-src"), "{csp}");
        assert!(!page.body.contains("<script") && !page.body.contains(" style="), "no script, no inline style");
    }
}
