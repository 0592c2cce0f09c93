use crate::engine::apply::{ApplyReport, Outcome};
use crate::engine::Plan;
use groundwork_sdk::{Action, DetailOp};
use std::fmt::Write;

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn action(&self, a: Action, s: &str) -> String {
        match a {
            Action::Create => self.paint("32", s),
            Action::Update => self.paint("33", s),
            Action::Delete => self.paint("31", s),
            Action::Replace => self.paint("35", s),
            Action::NoOp => s.to_string(),
        }
    }
}

/// What a change's heading says it does ("will be created").
pub fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Delete => "will be destroyed",
        Action::Replace => "must be replaced",
        Action::NoOp => "is unchanged",
    }
}

/// "Plan: N to add, M to change, K to destroy." (a replace counts as one add and one destroy).
pub fn summary(plan: &Plan) -> String {
    let add = plan.count(Action::Create) + plan.count(Action::Replace);
    let change = plan.count(Action::Update);
    let destroy = plan.count(Action::Delete) + plan.count(Action::Replace);
    let mut text = format!("Plan: {add} to add, {change} to change, {destroy} to destroy");
    if !plan.adopt.is_empty() {
        text.push_str(&format!(", {} to take over", plan.adopt.len()));
    }
    if !plan.release.is_empty() {
        text.push_str(&format!(", {} to leave to others", plan.release.len()));
    }
    text + "."
}

pub fn plan(plan: &Plan, color: bool) -> String {
    let mut out = changes(
        plan,
        color,
        "groundwork will perform the following actions:",
        "No changes. The infrastructure matches the environment.",
    );
    out.push_str(&adoptions(plan, color));
    out
}

/// Resources already as desired that groundwork has no record of: apply records them, nothing else.
fn adoptions(plan: &Plan, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    if plan.adopt.is_empty() {
        return releases(plan, color);
    }
    let heading = format!(
        "To take over: {} resource(s) already as desired that groundwork has no record of; apply records them as \
         groundwork's (nothing is written to them):",
        plan.adopt.len()
    );
    let _ = writeln!(out, "\n{}", st.paint("1", &heading));
    for a in &plan.adopt {
        let _ = writeln!(out, "  {} {}", st.paint("36", "="), a.change.address);
    }
    out.push_str(&releases(plan, color));
    out
}

/// Resources this environment no longer wants that others sharing the host still use as they are.
fn releases(plan: &Plan, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    if !plan.rerecord.is_empty() {
        let heading = format!(
            "To record: {} resource(s) as desired whose record predates the shared hosts; apply records this \
             environment's own part of each, for the others to merge with (nothing is written).",
            plan.rerecord.len()
        );
        let _ = writeln!(out, "\n{}", st.paint("1", &heading));
    }
    if plan.release.is_empty() {
        return out;
    }
    let heading = format!(
        "To leave to others: {} resource(s) this environment no longer wants, still used as they are by other \
         environments sharing the host; apply drops them from this environment's record (nothing is written):",
        plan.release.len()
    );
    let _ = writeln!(out, "\n{}", st.paint("1", &heading));
    for r in &plan.release {
        let with = r.shared.as_ref().map(|s| s.with.join(", ")).unwrap_or_default();
        let _ = writeln!(out, "  {} {} (kept for {with})", st.paint("36", "="), r.change.address);
    }
    out
}

/// The drift report: the same per-resource view, under another heading.
pub fn drift(plan: &Plan, color: bool) -> String {
    let heading = format!("Drift: {} resource(s) differ from the environment:", plan.changes.len());
    changes(plan, color, &heading, "No drift. The infrastructure matches the environment.")
}

fn changes(plan: &Plan, color: bool, heading: &str, nothing: &str) -> String {
    let mut out = changes_only(plan, color, heading, nothing);
    out.push_str(&pending(plan, color));
    out.push_str(&gates(plan, color));
    if let Some(lock) = &plan.locked_by {
        let st = Style { color };
        if lock.starts_with("corrupt lock") {
            let _ = writeln!(
                out,
                "\n{} {lock}. An apply will refuse to run until it is cleared: groundwork force-unlock corrupt ENV",
                st.paint("33", "Note:")
            );
        } else {
            let _ = writeln!(
                out,
                "\n{} another run holds the apply lock ({lock}); what it is still changing shows here as differences.",
                st.paint("33", "Note:")
            );
        }
    }
    out
}

/// What waits for a change of this plan, and the warnings of resources that need none.
fn pending(plan: &Plan, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    for p in &plan.pending {
        let heading = format!("Waiting for {} (planned once it has been applied):", p.waits_for);
        let _ = writeln!(out, "\n{}", st.paint("1", &heading));
        for a in &p.addresses {
            let _ = writeln!(out, "  {a}");
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\n{}", st.paint("1", "Notes:"));
        for n in &plan.notes {
            let _ = writeln!(out, "  {}", st.paint("33", &visible(n)));
        }
    }
    out
}

/// The install gates: status, what was seen, CSR verdicts, and what waits behind each.
pub fn gates(plan: &Plan, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    if plan.gates.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\n{}", st.paint("1", "Install gates:"));
    for g in &plan.gates {
        let s = &g.status;
        let mark = if s.passed { st.paint("32", "✓") } else { st.paint("33", "…") };
        let _ = writeln!(out, "  {mark} {:<19} {}", s.gate.as_str(), s.detail);
        for n in &s.notes {
            let _ = writeln!(out, "      {n}");
        }
        if !g.blocked.is_empty() {
            let _ = writeln!(out, "      waiting on it: {} resource(s)", g.blocked.len());
            for a in &g.blocked {
                let _ = writeln!(out, "        {a}");
            }
        }
    }
    out
}

fn changes_only(plan: &Plan, color: bool, heading: &str, nothing: &str) -> String {
    let st = Style { color };
    let mut out = String::new();
    if plan.is_empty() {
        if plan.blocked() > 0 {
            let _ = writeln!(out, "No changes now; {} resource(s) wait on install gates (below).", plan.blocked());
        } else {
            out.push_str(nothing);
            out.push('\n');
        }
        return out;
    }
    out.push_str(heading);
    out.push('\n');
    for p in &plan.changes {
        let c = &p.change;
        let _ = writeln!(out, "\n  {}", st.paint("1", &format!("# {} {}", c.address, verb(c.action))));
        out.push_str(&change_body(c, color));
    }
    let _ = writeln!(out, "\n{}", st.paint("1", &summary(plan)));
    out
}

/// What a change does, as the plan prints it under its heading: the action and address, warnings, and
/// the details or the diff (neither for a secret: its content is never shown).
pub fn change_body(c: &groundwork_sdk::Change, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(out, "  {} {}", st.action(c.action, c.action.symbol()), c.address);
    for w in &c.warnings {
        let _ = writeln!(out, "      {}", st.paint("33", &format!("warning: {}", visible(w))));
    }
    if c.sensitive {
        let _ = writeln!(out, "      (sensitive content hidden)");
    }
    for d in &c.details {
        let (sym, a) = match d.op {
            DetailOp::Add => ("+", Action::Create),
            DetailOp::Remove => ("-", Action::Delete),
            DetailOp::Modify => ("~", Action::Update),
        };
        let _ = writeln!(out, "      {}", st.action(a, &format!("{sym} {}", visible(&d.text))));
    }
    if let Some(d) = &c.diff {
        for line in unified(&d.old, &d.new, &d.path).lines().map(visible) {
            let line = line.as_str();
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                st.paint("1", line)
            } else if line.starts_with('+') {
                st.paint("32", line)
            } else if line.starts_with('-') {
                st.paint("31", line)
            } else if line.starts_with("@@") {
                st.paint("36", line)
            } else {
                line.to_string()
            };
            let _ = writeln!(out, "      {painted}");
        }
    }
    out
}

/// Text from a host or an inventory as the terminal should show it: control characters (an escape
/// sequence in a file on a host could rewrite what a reviewer sees) become visible `\u{1b}` escapes.
pub fn visible(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

/// A unified diff with three lines of context.
pub fn unified(old: &str, new: &str, path: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .missing_newline_hint(false)
        .to_string()
}

pub fn apply_report(report: &ApplyReport, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    for (host, path, bytes) in &report.swept {
        let _ = writeln!(
            out,
            "{}",
            st.paint("33", &format!("removed {path} on {host} ({bytes} bytes): left by an interrupted run"))
        );
    }
    for (addr, action, o) in &report.outcomes {
        let line = match o {
            Outcome::Applied => st.action(*action, &format!("{} {addr}: done", action.symbol())),
            Outcome::Failed(m) => st.paint("31", &format!("✗ {addr}: FAILED: {m}")),
            Outcome::Skipped(m) => st.paint("33", &format!("… {addr}: skipped: {m}")),
        };
        let _ = writeln!(out, "{line}");
    }
    let applied = report.outcomes.len() - report.failed();
    let _ = writeln!(out, "\nApply: {applied} done, {} failed or skipped.", report.failed());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gates::GateReport;
    use groundwork_sdk::{Address, Gate, GateStatus};

    fn gate(gate: Gate, passed: bool, detail: &str) -> GateReport {
        GateReport {
            status: GateStatus { gate, passed, detail: detail.into(), notes: vec![], since: None },
            blocked: vec![],
        }
    }

    #[test]
    fn a_plan_with_nothing_to_do_now_lists_the_gates_and_what_waits() {
        let mut workers = gate(Gate::WorkersJoined, false, "4 of 5 Ready: i2.lab.example.test has no Node");
        workers.status.notes =
            vec!["CSR csr-x (client) from system:serviceaccount:default:intruder refused: not the node-bootstrapper"
                .into()];
        let mut install = gate(Gate::InstallComplete, false, "waits for workers-joined");
        install.blocked = vec![Address::new("cluster", "node", None, "i1.lab.example.test")];
        let plan = Plan {
            gates: vec![
                gate(Gate::BootstrapComplete, true, "API v1.33.5 answers; bootstrap complete"),
                gate(Gate::MastersReady, true, "3 of 3 Ready"),
                workers,
                install,
            ],
            ..Plan::new("lab", vec![])
        };
        assert!(!plan.is_converged());
        assert_eq!(visible("a\x1b[2Kb\tc"), "a\\u{1b}[2Kb\tc");
        assert_eq!(plan.next_gate().map(|g| g.status.gate), Some(Gate::WorkersJoined));
        insta::assert_snapshot!(super::plan(&plan, false));
    }

    #[test]
    fn the_installers_run_shows_why_and_what_waits_for_it() {
        use groundwork_sdk::Provider;
        let spec = serde_json::json!({
            "dir": "installdir", "installer": "/usr/local/bin/openshift-install",
            "installer_sha256": "1".repeat(64), "inputs_sha256": "b".repeat(64),
            "masters_schedulable": false, "generated_after": 1_000_000, "frozen": false
        });
        let outputs: serde_json::Value = ["bootstrap.ign", "master.ign", "worker.ign"]
            .iter()
            .map(|o| (o.to_string(), serde_json::json!("d")))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let observed = serde_json::json!({
            "record": {"inputs_sha256": "a".repeat(64), "installer_sha256": "1".repeat(64),
                       "generated_unix": 1_000_000 - 7200, "outputs": outputs},
            "outputs": outputs
        });
        let addr = groundwork_installer::address("ocp45");
        let change = groundwork_installer::InstallerProvider.diff(&addr, Some(&spec), Some(&observed)).unwrap();
        let file = |n: &str| Address::new("files", "file", Some("bastion"), format!("/usr/share/nginx/html/{n}"));
        let plan = Plan {
            pending: vec![crate::engine::plan::Pending {
                waits_for: addr,
                addresses: vec![file("bootstrap.ign"), file("master.ign"), file("worker.ign")],
            }],
            notes: vec!["files.file[bastion:/usr/share/nginx/html/rhcos-kernel]: a note".into()],
            adopt: vec![crate::engine::Planned::new(
                groundwork_sdk::Change::new(
                    file("index.html"),
                    groundwork_sdk::Action::NoOp,
                    None,
                    Some(&serde_json::json!({})),
                ),
                vec![],
            )],
            ..Plan::new("ocp45", vec![crate::engine::Planned::new(change, vec![])])
        };
        assert_eq!(plan.pending_count(), 3);
        insta::assert_snapshot!(super::plan(&plan, false));
    }
}
