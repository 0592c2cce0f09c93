use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use thiserror::Error;

/// A validation finding: a rule, a message that names every place involved (file:line:column),
/// and the source around the primary place.
#[derive(Debug, Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(groundwork::validate))]
pub struct Finding {
    pub rule: &'static str,
    pub message: String,
    /// `file:line:column` of the primary place, when known.
    pub at: Option<String>,
    #[source_code]
    pub src: Option<NamedSource<String>>,
    #[label(collection)]
    pub labels: Vec<LabeledSpan>,
    #[help]
    pub help: Option<String>,
}

/// YAML that does not parse or does not fit the schema (unknown key, wrong type).
#[derive(Debug, Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
#[diagnostic(code(groundwork::yaml))]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("here")]
    pub span: SourceSpan,
}

/// Everything that can go wrong loading or validating an environment.
#[derive(Debug, Error, Diagnostic)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    #[diagnostic(code(groundwork::io))]
    Io { path: String, message: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(Box<SyntaxError>),

    #[error("{file}:{line}:{column}: section `{section}` is already defined in {other}")]
    #[diagnostic(code(groundwork::duplicate_section))]
    DuplicateSection { file: String, line: usize, column: usize, section: String, other: String },

    #[error("{dir}: no environment file defines `{section}`")]
    #[diagnostic(code(groundwork::missing_section))]
    MissingSection { dir: String, section: &'static str },

    #[error("{dir}: {message}")]
    #[diagnostic(code(groundwork::expand))]
    Expand { dir: String, message: String },

    #[error("{} problem(s) in the environment:\n{}", .0.len(), summary(.0))]
    #[diagnostic(code(groundwork::invalid))]
    Invalid(#[related] Vec<Finding>),
}

fn summary(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| match &f.at {
            Some(at) => format!("  {at}: [{}] {}", f.rule, f.message),
            None => format!("  [{}] {}", f.rule, f.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem, located, for machine-readable output (`validate --json`, `--format github`).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Located {
    /// The file (or directory) concerned, when known.
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The rule that found it (`yaml` for a file that does not parse or fit the schema).
    pub rule: String,
    pub message: String,
}

impl Located {
    fn at(at: Option<&str>, rule: &str, message: String) -> Self {
        // `file:line:column`, the file possibly holding ':' itself.
        let parsed = at.and_then(|a| {
            let mut parts = a.rsplitn(3, ':');
            let column = parts.next()?.parse().ok()?;
            let line = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_string(), line, column))
        });
        match parsed {
            Some((file, line, column)) => {
                Located { file: Some(file), line: Some(line), column: Some(column), rule: rule.into(), message }
            }
            None => Located { file: at.map(str::to_string), line: None, column: None, rule: rule.into(), message },
        }
    }
}

impl ConfigError {
    /// Every problem this error holds, one per finding.
    pub fn located(&self) -> Vec<Located> {
        match self {
            ConfigError::Io { path, message } => vec![Located::at(Some(path), "io", message.clone())],
            ConfigError::Syntax(e) => vec![Located {
                file: Some(e.file.clone()),
                line: Some(e.line),
                column: Some(e.column),
                rule: "yaml".into(),
                message: e.message.clone(),
            }],
            ConfigError::DuplicateSection { file, line, column, section, other } => vec![Located {
                file: Some(file.clone()),
                line: Some(*line),
                column: Some(*column),
                rule: "duplicate-section".into(),
                message: format!("section `{section}` is already defined in {other}"),
            }],
            ConfigError::MissingSection { dir, section } => {
                vec![Located::at(Some(dir), "missing-section", format!("no environment file defines `{section}`"))]
            }
            ConfigError::Expand { dir, message } => vec![Located::at(Some(dir), "expand", message.clone())],
            ConfigError::Invalid(findings) => {
                findings.iter().map(|f| Located::at(f.at.as_deref(), f.rule, f.message.clone())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_split_into_file_line_and_column() {
        let l = Located::at(Some("dir:with:colons/nodes.yaml:12:5"), "r", "m".into());
        assert_eq!((l.file.as_deref(), l.line, l.column), (Some("dir:with:colons/nodes.yaml"), Some(12), Some(5)));
        let l = Located::at(Some("/env"), "r", "m".into());
        assert_eq!((l.file.as_deref(), l.line, l.column), (Some("/env"), None, None));
        assert_eq!(Located::at(None, "r", "m".into()).file, None);
    }
}
