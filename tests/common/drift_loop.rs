//! A `drift --every` loop run for a test, its status page fetched with curl.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `drift --every`, its URL, and its stderr collected on a thread (a full pipe would stall it).
pub struct DriftLoop {
    child: Child,
    /// `http://ADDRESS:PORT`, no trailing slash.
    pub url: String,
    /// What it logged so far (info level), after its first line.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for DriftLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DriftLoop {
    /// `drift ENV --every 1s --listen LISTEN` (port 0: the kernel picks one; the loop says which).
    pub fn start(env: &str, listen: &str) -> DriftLoop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_groundwork"))
            .args(["drift", env, "--every", "1s", "--listen", listen])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "groundwork=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the drift loop");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        // A line says where it listens (port 0: the kernel picked one); log lines may come before it.
        let mut first = String::new();
        let mut before = String::new();
        while !first.contains("status page on ") {
            before.push_str(&first);
            first.clear();
            let n = stderr.read_line(&mut first).expect("the loop's stderr");
            assert!(n > 0, "the loop ended before it listened: {before}");
        }
        let log = std::sync::Arc::new(std::sync::Mutex::new(before));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let url = first
            .split("status page on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("no status page address in {first:?}"));
        DriftLoop { child, url, log }
    }

    /// The loop's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-s", "--max-time", "5"]).args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until the page (fetched with curl) satisfies `done`: each check of the loop takes a second.
pub fn wait_for_page(url: &str, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = curl(&[url]);
        if done(&last) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the page never showed {what}; last page:\n{last}");
}
