//! What commands print and write, in one place. Every command returns a
//! [`Report`]; [`emit`] prints its readable form on stdout, writes it as
//! JSON (`--report FILE`) and JUnit XML (`--junit FILE`) when asked, and
//! turns a failed report into the one-line error that makes the exit status
//! non-zero. Progress goes to stderr as the work happens; stdout is only
//! for the report.

#[cfg(test)]
pub mod golden;
pub mod junit;
pub mod sarif;
pub mod table;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// A command's result.
pub trait Report: Serialize {
    /// The readable form, printed on stdout (tables).
    fn render(&self) -> String;

    /// The JUnit test suites, for reports made of pass/fail checks.
    fn junit(&self) -> Option<junit::Suites> {
        None
    }

    /// The findings as SARIF, for reports made of static-analysis findings.
    fn sarif(&self) -> Option<sarif::Log> {
        None
    }

    /// One line saying what failed, when the command must exit non-zero.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// `--report FILE`, for commands whose report is figures.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JsonOut {
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `--report FILE` and `--junit FILE`, for commands whose report is checks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TestOut {
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the checks as JUnit XML to FILE.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// `--report FILE` and `--sarif FILE`, for commands whose report is findings.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FindingsOut {
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the findings as SARIF 2.1.0 to FILE (one run per tool).
    #[arg(long)]
    pub sarif: Option<PathBuf>,
}

/// `--report`, `--junit` and `--sarif`, for `image check`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AllOut {
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the checks as JUnit XML to FILE.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write lint's and scan's findings as SARIF 2.1.0 to FILE (one run per tool).
    #[arg(long)]
    pub sarif: Option<PathBuf>,
}

/// Where a report goes besides stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sinks<'a> {
    pub json: Option<&'a Path>,
    pub junit: Option<&'a Path>,
    pub sarif: Option<&'a Path>,
}

impl JsonOut {
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks { json: self.report.as_deref(), ..Sinks::default() }
    }
}

impl TestOut {
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks { json: self.report.as_deref(), junit: self.junit.as_deref(), sarif: None }
    }
}

impl FindingsOut {
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks { json: self.report.as_deref(), junit: None, sarif: self.sarif.as_deref() }
    }
}

impl AllOut {
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks { json: self.report.as_deref(), junit: self.junit.as_deref(), sarif: self.sarif.as_deref() }
    }
}

/// Prints the report, writes its files, and fails with its failure line.
pub fn emit(report: &impl Report, sinks: Sinks<'_>) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(report.render().as_bytes()).context("writing the report to stdout")?;
    stdout.flush().context("writing the report to stdout")?;
    if let Some(path) = sinks.json {
        write_json(path, report)?;
    }
    if let Some(path) = sinks.junit {
        let suites = report.junit().context("this report has no JUnit form")?;
        std::fs::write(path, suites.to_xml()).with_context(|| format!("writing JUnit XML to {}", path.display()))?;
    }
    if let Some(path) = sinks.sarif {
        let log = report.sarif().context("this report has no SARIF form")?;
        write_json(path, &log.to_json())?;
    }
    if let Some(line) = report.failure() {
        bail!("{line}");
    }
    Ok(())
}

pub fn write_json(path: &Path, report: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing the report to {}", path.display()))
}
