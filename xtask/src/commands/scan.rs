//! `cargo xtask image scan`: the image pipeline with the scan check: Trivy
//! on each platform of the built image (this checkout's tag, `--tag`,
//! `--registry`): secrets always, vulnerabilities when a DB is at hand
//! (else `skipped`, never a pass), the gate from images.toml,
//! `.trivyignore.yaml`; a table (the secret scan and the vulnerability scan
//! each with its own result), `--report`, `--sarif` and `--sbom DIR`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::Command;
use crate::checks::scan::{ImageScan, ScanOptions};
use crate::checks::trivy::{self, Ignores};
use crate::checks::{self as checks, Finding, Severity, Source};
use crate::model::catalog::{Catalog, Platform};
use crate::output::table::Table;
use crate::output::{sarif, FindingsOut, Report, Sinks};
use crate::pipeline::{Checks, Pipeline, Selection, Source as ImageSource};

/// Seconds one Trivy run may take, unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: u64 = 600;

#[derive(Debug, Clone, clap::Args)]
pub struct Scan {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub options: ScanOptions,
    /// Seconds one Trivy run may take before it is stopped.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u64,
    #[command(flatten)]
    pub out: FindingsOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub images: Vec<ImageScan>,
    /// The ignore file's entries (and which have expired).
    pub ignores: Ignores,
    #[serde(skip)]
    trivy_version: Option<String>,
}

impl Command for Scan {
    type Report = ScanReport;

    fn run(&self, catalog: &Catalog) -> Result<ScanReport> {
        let targets = self.selection.targets(catalog)?;
        let requested = Platform::parse_list(&self.selection.images.platform)?;
        let trivy_version = trivy_version()?;
        let checks =
            Checks { scan: Some((self.options.clone(), Duration::from_secs(self.timeout))), ..Checks::default() };
        let pipeline = Pipeline { catalog, checks, keep_going: false, purpose: "scan" };
        let runs = pipeline.run(targets, &requested, &ImageSource::Existing)?;
        let ignores = ignores(catalog)?;
        let images = runs.into_iter().filter_map(|r| r.scan).filter_map(Result::ok).collect();
        Ok(ScanReport { images, ignores, trivy_version: Some(trivy_version) })
    }

    fn sinks(&self) -> Sinks<'_> {
        self.out.sinks()
    }
}

fn trivy_version() -> Result<String> {
    crate::engine::tools::TRIVY.version()
}

/// The catalog's `.trivyignore.yaml` (next to images.toml), as of today.
pub fn ignores(catalog: &Catalog) -> Result<Ignores> {
    let root = catalog.path.parent().unwrap_or(std::path::Path::new("."));
    Ignores::load(&root.join(".trivyignore.yaml"), trivy::today())
}

/// Scan results as findings, for SARIF: each against the image's Dockerfile.
pub fn scan_findings(scan: &ImageScan, dockerfile: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &scan.platforms {
        for s in p.secrets.iter().filter(|s| s.ignored.is_none()) {
            out.push(Finding {
                file: dockerfile.to_string(),
                line: 0,
                rule: s.rule.clone(),
                source: Source::Trivy,
                severity: Severity::Error,
                message: format!("{} in {} line {} of {} on {}", s.title, s.target, s.line, scan.reference, p.platform),
                fix: "remove the secret from the image (and rotate it), or pass it at run time".into(),
            });
        }
        for v in p.vulnerabilities.iter().flatten().filter(|v| v.ignored.is_none()) {
            out.push(Finding {
                file: dockerfile.to_string(),
                line: 0,
                rule: v.id.clone(),
                source: Source::Trivy,
                severity: trivy::severity_of(&v.severity),
                message: format!(
                    "{} {} in {} {} on {}: {}",
                    v.severity, v.id, v.package, v.installed, p.platform, v.title
                ),
                fix: if v.fixed.is_empty() {
                    "no fixed version yet: ignore it in .trivyignore.yaml with a statement and an expiry, or drop the package".into()
                } else {
                    format!("upgrade {} to {}", v.package, v.fixed)
                },
            });
        }
    }
    out
}

impl Report for ScanReport {
    fn render(&self) -> String {
        let mut table = Table::new([
            "IMAGE",
            "PLATFORM",
            "SECRETS",
            "CRITICAL",
            "HIGH",
            "MEDIUM",
            "LOW",
            "IGNORED",
            "GATE",
            "SECRET SCAN",
            "VULN SCAN",
        ]);
        let mut notes = String::new();
        for image in &self.images {
            for p in &image.platforms {
                let vuln = |n: usize| if p.vulnerabilities.is_some() { n.to_string() } else { "-".into() };
                let secrets = p.secrets.iter().filter(|s| s.ignored.is_none()).count();
                let ignored = p.counts.ignored + p.secrets.iter().filter(|s| s.ignored.is_some()).count();
                table.row([
                    image.image.clone(),
                    p.platform.to_string(),
                    secrets.to_string(),
                    vuln(p.counts.critical),
                    vuln(p.counts.high),
                    vuln(p.counts.medium),
                    vuln(p.counts.low),
                    ignored.to_string(),
                    format!("critical <= {}, high <= {}", image.gate.max_critical, image.gate.max_high),
                    p.secret_scan.status.cell().into(),
                    p.vuln_scan.status.cell().into(),
                ]);
                for f in &p.failures {
                    let _ = writeln!(notes, "{} {}: {f}", image.image, p.platform);
                }
                for n in &p.notes {
                    let _ = writeln!(notes, "{} {}: {n}", image.image, p.platform);
                }
                if let Some(sbom) = &p.sbom {
                    let _ = writeln!(notes, "{} {}: SBOM (CycloneDX) in {sbom}", image.image, p.platform);
                }
            }
        }
        for e in self.ignores.expired() {
            let _ = writeln!(
                notes,
                "expired: .trivyignore.yaml entry {} ({}) expired on {}: it ignores nothing",
                e.id, e.statement, e.expired_at
            );
        }
        if notes.is_empty() {
            table.render()
        } else {
            table.render() + "\n" + &notes
        }
    }

    fn sarif(&self) -> Option<sarif::Log> {
        let findings: Vec<Finding> = self.images.iter().flat_map(|i| scan_findings(i, &i.dockerfile)).collect();
        Some(checks::sarif(&findings, &[(Source::Trivy, self.trivy_version.clone())]))
    }

    fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| {
                i.platforms
                    .iter()
                    .filter(|p| !p.passed)
                    .map(move |p| format!("{} {}: {}", i.image, p.platform, p.failures.join("; ")))
            })
            .collect();
        (!failed.is_empty()).then(|| format!("image scan failed: {}", failed.join(" | ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::scan::{self, Status};

    #[test]
    fn the_table_and_the_json_give_each_part_its_result_and_say_skipped() {
        let report = ScanReport { images: scan::examples(), ignores: Ignores::default(), trivy_version: None };
        crate::output::golden::check("scan-table.txt", &report.render());
        let json = serde_json::to_value(&report).unwrap();
        let part = |image: usize, platform: usize, part: &str| {
            json["images"][image]["platforms"][platform][part]["status"].as_str().unwrap().to_string()
        };
        assert_eq!(
            [part(0, 0, "vuln_scan"), part(0, 1, "vuln_scan"), part(1, 0, "vuln_scan"), part(1, 1, "vuln_scan")],
            ["passed", "failed", "skipped", "skipped"]
        );
        assert_eq!([part(1, 0, "secret_scan"), part(1, 1, "secret_scan")], ["passed", "failed"]);
        assert_eq!(json["images"][1]["platforms"][0]["vuln_scan"]["reason"], scan::NO_DB);
        assert_eq!(report.images[1].platforms[0].vuln_scan.status, Status::Skipped);
        assert_eq!(
            report.failure().unwrap(),
            "image scan failed: w linux/arm64: 1 CRITICAL vulnerabilities (at most 0 allowed) | \
             p linux/arm64: secret `aws-access-key-id` (AWS Access Key ID) in /etc/creds line 2"
        );
    }
}
