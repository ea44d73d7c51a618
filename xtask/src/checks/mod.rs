//! The checks: each looks at an image and says what it found. On a
//! [`BuiltImage`](crate::engine::image::BuiltImage): `smoke` (the image's
//! declared checks, in container-structure-test's schema), `readonly` (it
//! starts and stays up on a read-only root filesystem), `size` (what it
//! weighs against its budget), `runtime` (startup time and peak memory) and
//! `scan` (Trivy: secrets, vulnerabilities, SBOM). On its Dockerfile: `lint`
//! (hadolint, Trivy and our policy, and the build context). They know
//! nothing of the command line: the pipeline runs them, the commands print
//! them. `re2` is the regex dialect both the smoke specs and `.dockerignore`
//! patterns are written in.

pub mod lint;
pub mod re2;
pub mod readonly;
pub mod runtime;
pub mod scan;
pub mod size;
pub mod smoke;
pub mod trivy;

use serde::Serialize;

use crate::output::sarif;

/// The kinds of pass/fail check lines (smoke's four kinds and the read-only check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Command,
    FileExistence,
    FileContent,
    Metadata,
    ReadOnly,
}

impl CheckKind {
    /// container-structure-test's name prefix for the kind.
    pub fn title(self) -> &'static str {
        match self {
            CheckKind::Command => "Command Test",
            CheckKind::FileExistence => "File Existence Test",
            CheckKind::FileContent => "File Content Test",
            CheckKind::Metadata => "Metadata Test",
            CheckKind::ReadOnly => "Read-only Test",
        }
    }
}

/// One check of one image on one platform: pass or fail, with what it
/// wanted and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub kind: CheckKind,
    pub name: String,
    pub passed: bool,
    /// What the check wanted, in short.
    pub expected: String,
    /// What it found, in short.
    pub actual: String,
    /// One line per way it failed.
    pub errors: Vec<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl CheckResult {
    pub fn title(&self) -> String {
        match self.kind {
            CheckKind::Metadata => self.kind.title().to_string(),
            _ => format!("{}: {}", self.kind.title(), self.name),
        }
    }

    /// Prints the result as it comes (`PASS  Command Test: x (0.2s)`), with
    /// expected and actual when it failed: the progress of a check run.
    pub fn print_progress(&self) {
        static PRINT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = PRINT.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("{}  {} ({:.1}s)", if self.passed { "PASS" } else { "FAIL" }, self.title(), self.seconds);
        if !self.passed {
            eprintln!("      expected: {}", self.expected);
            eprintln!("      actual:   {}", self.actual);
            for e in &self.errors {
                eprintln!("      - {e}");
            }
        }
    }
}

/// A path inside an image as Go's `path.Clean` makes it (as dive and
/// container-structure-test see it), without the leading slash:
/// `./usr/bin/` → `usr/bin`, `/a/b/../c` → `a/c`; `None` for the root itself.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// How bad a finding is: errors fail the lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// Who found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Ralph,
    Hadolint,
    Trivy,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Ralph => "ralph",
            Source::Hadolint => "hadolint",
            Source::Trivy => "trivy",
        }
    }
}

/// One thing wrong with a Dockerfile or its build context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: String,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub rule: String,
    pub source: Source,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

/// Findings as SARIF: one run per tool that took part (in `versions`), even
/// one that found nothing, each with the rules its results name.
pub fn sarif<'a>(findings: impl IntoIterator<Item = &'a Finding>, versions: &[(Source, Option<String>)]) -> sarif::Log {
    let findings: Vec<&Finding> = findings.into_iter().collect();
    let runs = versions
        .iter()
        .map(|(source, version)| {
            let mine: Vec<&&Finding> = findings.iter().filter(|f| f.source == *source).collect();
            let mut rules: Vec<sarif::Rule> = Vec::new();
            for f in &mine {
                if !rules.iter().any(|r| r.id == f.rule) {
                    let (title, help_uri) = match source {
                        Source::Ralph => (lint::policy::rule(&f.rule).title.to_string(), None),
                        Source::Hadolint => (f.rule.clone(), Some(lint::hadolint::help_uri(&f.rule))),
                        Source::Trivy => (f.rule.clone(), None),
                    };
                    rules.push(sarif::Rule { id: f.rule.clone(), title, help: f.fix.clone(), help_uri });
                }
            }
            sarif::Run {
                tool: source.name().to_string(),
                version: version.clone(),
                information_uri: match source {
                    Source::Ralph => None,
                    Source::Hadolint => Some("https://github.com/hadolint/hadolint".to_string()),
                    Source::Trivy => Some("https://trivy.dev".to_string()),
                },
                rules,
                results: mine
                    .iter()
                    .map(|f| sarif::SarifResult {
                        rule_id: f.rule.clone(),
                        level: match f.severity {
                            Severity::Error => sarif::Level::Error,
                            Severity::Warning => sarif::Level::Warning,
                            Severity::Info => sarif::Level::Note,
                        },
                        message: f.message.clone(),
                        uri: f.file.clone(),
                        line: (f.line > 0).then_some(f.line),
                    })
                    .collect(),
            }
        })
        .collect();
    sarif::Log { runs }
}
