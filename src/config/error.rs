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
