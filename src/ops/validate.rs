use crate::config;
use crate::config::error::Located;
use crate::error::{Error, Result};
use crate::render::json::GROUNDWORK_VERSION;
use std::path::Path;

/// How validate reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A summary line, or located errors with their source (miette).
    Text,
    /// One JSON document: `valid`, the counts, and a `diagnostics` array (docs/schemas/validate.schema.json).
    Json,
    /// GitHub Actions workflow commands: an `::error file=…,line=…,col=…` annotation per problem.
    Github,
}

/// Offline: load, validate, expand. Returns what to print and the exit code; in text format an invalid
/// environment is returned as the error (the binary renders it with its source).
pub fn run(path: &Path, format: Format) -> Result<(String, u8)> {
    let checked = check(path);
    match format {
        Format::Text => checked.map(|s| (s.line(), super::EXIT_OK)),
        Format::Json => {
            let (valid, summary, diagnostics) = match checked {
                Ok(s) => (true, Some(s), Vec::new()),
                Err(e) => (false, None, located(&e)),
            };
            let doc = serde_json::json!({
                "format_version": 1,
                "groundwork_version": GROUNDWORK_VERSION,
                "valid": valid,
                "environment": summary.as_ref().map(|s| s.name.clone()),
                "counts": summary.as_ref().map(|s| serde_json::json!({"nodes": s.nodes, "hosts": s.hosts, "resources": s.resources})),
                "diagnostics": diagnostics,
            });
            let code = if valid { super::EXIT_OK } else { super::EXIT_ERROR };
            Ok((serde_json::to_string_pretty(&doc).unwrap_or_default(), code))
        }
        Format::Github => match checked {
            Ok(s) => Ok((s.line(), super::EXIT_OK)),
            Err(e) => Ok((located(&e).iter().map(github_annotation).collect::<Vec<_>>().join("\n"), super::EXIT_ERROR)),
        },
    }
}

struct Summary {
    name: String,
    nodes: usize,
    hosts: usize,
    resources: usize,
}

impl Summary {
    fn line(&self) -> String {
        format!(
            "Environment {} is valid: {} nodes, {} infra hosts, {} resources.",
            self.name, self.nodes, self.hosts, self.resources
        )
    }
}

fn check(path: &Path) -> Result<Summary> {
    let loaded = config::load_valid(path)?;
    let resources = config::expand::resources(&loaded)?;
    Ok(Summary {
        name: loaded.name.clone(),
        nodes: loaded.env.nodes.len(),
        hosts: loaded.env.hosts.len(),
        resources: resources.len(),
    })
}

/// Every problem of an error, located where it can be.
fn located(e: &Error) -> Vec<Located> {
    match e {
        Error::Config(c) => c.located(),
        other => {
            vec![Located { file: None, line: None, column: None, rule: "error".into(), message: other.to_string() }]
        }
    }
}

/// `::error file=F,line=L,col=C,title=T::MESSAGE`, escaped as the runner expects (a message may hold
/// newlines, a path commas or colons).
fn github_annotation(l: &Located) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
    }
    fn property(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut props = Vec::new();
    if let Some(f) = &l.file {
        props.push(format!("file={}", property(f)));
    }
    if let Some(n) = l.line {
        props.push(format!("line={n}"));
    }
    if let Some(n) = l.column {
        props.push(format!("col={n}"));
    }
    props.push(format!("title={}", property(&format!("groundwork validate: {}", l.rule))));
    format!("::error {}::{}", props.join(","), data(&l.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_annotations_escape_what_the_runner_parses() {
        let l = Located {
            file: Some("envs/a,b:c.yaml".into()),
            line: Some(3),
            column: Some(7),
            rule: "dup".into(),
            message: "100% wrong\nsecond line".into(),
        };
        assert_eq!(
            github_annotation(&l),
            "::error file=envs/a%2Cb%3Ac.yaml,line=3,col=7,title=groundwork validate%3A dup::100%25 wrong%0Asecond line"
        );
        let bare = Located { file: None, line: None, column: None, rule: "error".into(), message: "m".into() };
        assert_eq!(github_annotation(&bare), "::error title=groundwork validate%3A error::m");
    }
}
