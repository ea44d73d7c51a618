//! `cargo xtask image lint`: hadolint, `trivy config` and our container
//! policy on the catalog's Dockerfiles (or any with `--file`), and their
//! build contexts; one merged report: a table, `--report` JSON, `--sarif`;
//! exit 1 on any error-level finding or a tool that could not run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use super::Command;
use crate::checks::lint::{self, hadolint, Lint as Linted, Target};
use crate::checks::{self as checks, Finding, Severity, Source};
use crate::model::catalog::Catalog;
use crate::output::table::Table;
use crate::output::{sarif, FindingsOut, Report, Sinks};

/// Seconds hadolint or Trivy may take, unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: u64 = 120;

#[derive(Debug, Clone, clap::Args)]
pub struct Lint {
    /// Images from the catalog (default: every image in it).
    #[arg(conflicts_with = "files")]
    pub images: Vec<String>,
    /// Lint these Dockerfiles instead (in the catalog or not).
    #[arg(long = "file", value_name = "PATH", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The build context of the --file Dockerfiles (default: each file's directory).
    #[arg(long, value_name = "DIR", requires = "files")]
    pub context: Option<PathBuf>,
    /// Seconds hadolint or Trivy may take before they are stopped.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u64,
    #[command(flatten)]
    pub out: FindingsOut,
}

/// The lint, as the command reports it.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub errors: usize,
    pub warnings: usize,
    #[serde(flatten)]
    pub lint: Linted,
}

impl Command for Lint {
    type Report = LintReport;

    fn run(&self, catalog: &Catalog) -> Result<LintReport> {
        let root = catalog.path.parent().map(PathBuf::from).unwrap_or_default();
        let targets: Vec<Target> = if self.files.is_empty() {
            catalog.select(&self.images)?.into_iter().map(Target::of).collect()
        } else {
            let cwd = std::env::current_dir()?;
            self.files
                .iter()
                .map(|f| {
                    let file = cwd.join(f);
                    let context = self
                        .context
                        .as_ref()
                        .map(|c| cwd.join(c))
                        .unwrap_or_else(|| file.parent().map(PathBuf::from).unwrap_or_else(|| cwd.clone()));
                    Target::file(file, context)
                })
                .collect()
        };
        let root = if self.files.is_empty() { root } else { std::env::current_dir()? };
        if targets.is_empty() {
            bail!("nothing to lint: name images of the catalog or pass --file PATH");
        }
        Ok(LintReport::new(lint::lint(&targets, &root, Duration::from_secs(self.timeout))))
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

impl LintReport {
    pub fn new(lint: Linted) -> LintReport {
        let count = |s: Severity| lint.findings().filter(|f| f.severity == s).count();
        LintReport { errors: count(Severity::Error), warnings: count(Severity::Warning), lint }
    }
}

/// The findings table: location, rule, source, severity, message, fix.
pub fn findings_table<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Table {
    let mut table = Table::new(["LOCATION", "RULE", "SOURCE", "SEVERITY", "MESSAGE", "FIX"]);
    for f in findings {
        let location = if f.line > 0 { format!("{}:{}", f.file, f.line) } else { f.file.clone() };
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        table.row([
            location,
            f.rule.clone(),
            f.source.name().to_string(),
            severity.to_string(),
            f.message.clone(),
            f.fix.clone(),
        ]);
    }
    table
}

impl Report for LintReport {
    fn render(&self) -> String {
        let lint = &self.lint;
        let mut out = String::new();
        let findings: Vec<&Finding> = lint.findings().collect();
        if findings.is_empty() {
            out += "no findings\n";
        } else {
            out += &findings_table(findings).render();
        }
        out.push('\n');
        let mut files = Table::new(["DOCKERFILE", "IMAGES", "CONTEXT", "FILES", "SIZE", "ERRORS", "WARNINGS"]);
        for f in &lint.files {
            let errors = f.findings.iter().filter(|x| x.severity == Severity::Error).count();
            let warnings = f.findings.iter().filter(|x| x.severity == Severity::Warning).count();
            let (dir, count, size) = match f.contexts.as_slice() {
                [] => ("-".to_string(), "-".to_string(), "-".to_string()),
                cs => (
                    cs.iter().map(|c| c.dir.clone()).collect::<Vec<_>>().join(", "),
                    cs.iter().map(|c| c.files.to_string()).collect::<Vec<_>>().join(", "),
                    cs.iter().map(|c| checks::size::human(c.bytes)).collect::<Vec<_>>().join(", "),
                ),
            };
            files.row([
                f.file.clone(),
                if f.images.is_empty() { "-".into() } else { f.images.join(", ") },
                dir,
                count,
                size,
                errors.to_string(),
                warnings.to_string(),
            ]);
        }
        out += &files.render();
        let exceptions: Vec<_> = lint.files.iter().flat_map(|f| &f.exceptions).collect();
        if !exceptions.is_empty() {
            out += "\nexceptions in force:\n";
            for e in exceptions {
                let _ = writeln!(out, "  {}:{} {}: {}", e.file, e.applies_to, e.rules.join(","), e.reason);
            }
        }
        let rewritten: Vec<_> = lint
            .files
            .iter()
            .filter_map(|f| f.hadolint.as_ref().filter(|c| c.read == hadolint::Read::Rewrite).map(|c| (f, c)))
            .collect();
        if !rewritten.is_empty() {
            out += "\nhadolint read these lines rewritten (its parser can't read them as BuildKit does):\n";
            for (f, c) in rewritten {
                for r in &c.rewritten {
                    let _ = writeln!(out, "  {}:{}-{} {}", f.file, r.line, r.end_line, r.why);
                }
            }
        }
        for e in &lint.expired_ignores {
            let _ = writeln!(
                out,
                "expired: .trivyignore.yaml entry {} ({}) expired on {}: it ignores nothing",
                e.id, e.statement, e.expired_at
            );
        }
        out.push('\n');
        let mut tools = Table::new(["TOOL", "VERSION", "TIME", "STATUS"]);
        tools.row(["ralph".to_string(), env!("CARGO_PKG_VERSION").to_string(), "-".into(), "ok".into()]);
        for t in &lint.tools {
            tools.row([
                t.tool.clone(),
                t.version.clone().unwrap_or_else(|| "-".into()),
                format!("{:.2}s", t.seconds),
                t.error.clone().unwrap_or_else(|| "ok".into()),
            ]);
        }
        out += &tools.render();
        out
    }

    fn sarif(&self) -> Option<sarif::Log> {
        let version = |name: &str| self.lint.tools.iter().find(|t| t.tool == name).and_then(|t| t.version.clone());
        let versions = [
            (Source::Ralph, Some(env!("CARGO_PKG_VERSION").to_string())),
            (Source::Hadolint, version("hadolint")),
            (Source::Trivy, version("trivy")),
        ];
        Some(checks::sarif(self.lint.findings(), &versions))
    }

    fn failure(&self) -> Option<String> {
        self.lint.failure()
    }
}
