//! JUnit XML (`drift --junit FILE`, `verify --junit FILE`), written with quick-junit: a CI system shows
//! each drifted resource or failed probe as a failed test case, and the rest as passed ones.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// One test case.
pub struct Case {
    /// Groups cases in the CI view (the provider, the probe kind).
    pub class: String,
    pub name: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    Pass,
    /// `message` is the one-line summary; `detail` the longer text (a diff's details, a probe's answer).
    Fail {
        message: String,
        detail: String,
    },
    Skipped {
        message: String,
    },
}

/// A report of one suite.
pub fn report(name: &str, cases: Vec<Case>) -> String {
    let mut suite = TestSuite::new(name);
    for c in cases {
        let status = match c.outcome {
            Outcome::Pass => TestCaseStatus::success(),
            Outcome::Fail { message, detail } => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(message).set_description(detail);
                s
            }
            Outcome::Skipped { message } => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(message);
                s
            }
        };
        let mut case = TestCase::new(c.name, status);
        case.set_classname(c.class);
        suite.add_test_case(case);
    }
    let mut report = Report::new("groundwork");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_skips_are_counted_and_text_is_escaped() {
        let xml = report(
            "drift lab",
            vec![
                Case { class: "bind".into(), name: "bind.zone[ns1:a]".into(), outcome: Outcome::Pass },
                Case {
                    class: "haproxy".into(),
                    name: "haproxy.config[lb1:/etc/haproxy/haproxy.cfg]".into(),
                    outcome: Outcome::Fail {
                        message: "will be updated".into(),
                        detail: "backend <api> & \"x\"".into(),
                    },
                },
                Case {
                    class: "http".into(),
                    name: "GET /x".into(),
                    outcome: Outcome::Skipped { message: "local".into() },
                },
            ],
        );
        assert!(
            xml.contains(r#"tests="3""#) && xml.contains(r#"failures="1""#) && xml.contains(r#"skipped="1""#),
            "{xml}"
        );
        assert!(
            xml.contains("backend &lt;api&gt; &amp; &quot;x&quot;") || xml.contains("backend &lt;api&gt; &amp; \"x\""),
            "{xml}"
        );
    }
}
