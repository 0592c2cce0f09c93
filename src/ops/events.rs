//! `apply --json`: an event stream on stdout, one JSON object per line (docs/schemas/events.schema.json).
//! While it is on, the text a human would read (plans, reports) is not printed: stdout is the stream.

use crate::render::json::GROUNDWORK_VERSION;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// The events' format version: fields are only added within a version.
pub const EVENTS_FORMAT_VERSION: u32 = 1;

static ON: AtomicBool = AtomicBool::new(false);

/// Turn the stream on for this run.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The event as one line: the envelope (versions, time, event name) and the event's own fields.
pub fn line(event: &str, fields: Value) -> String {
    let mut m = Map::new();
    m.insert("format_version".into(), json!(EVENTS_FORMAT_VERSION));
    m.insert("groundwork_version".into(), json!(GROUNDWORK_VERSION));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64());
    m.insert("time_unix".into(), json!(now.unwrap_or_default()));
    m.insert("event".into(), json!(event));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    Value::Object(m).to_string()
}

/// Print the event when the stream is on.
pub fn emit(event: &str, fields: Value) {
    if on() {
        crate::outln!("{}", line(event, fields));
    }
}

/// The last event of a run that changes things (apply, destroy): whether it went well, and its exit code.
pub fn finished(result: &crate::error::Result<u8>) {
    match result {
        Ok(code) => emit("finished", serde_json::json!({"ok": true, "exit_code": code})),
        Err(e) => {
            emit("finished", serde_json::json!({"ok": false, "exit_code": super::EXIT_ERROR, "error": e.to_string()}))
        }
    }
}

/// Print human-readable text only when the stream is off.
pub fn text(s: &str) {
    if !on() {
        crate::out!("{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_with_its_envelope() {
        let l = line("change_failed", json!({"address": "a", "error": "two\nlines"}));
        assert!(!l.contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["event"], "change_failed");
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["groundwork_version"], GROUNDWORK_VERSION);
        assert_eq!(v["error"], "two\nlines");
        assert!(v["time_unix"].as_f64().unwrap() > 1.6e9);
    }
}
