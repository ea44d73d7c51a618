//! Trivy on a built image, platform by platform: secrets always;
//! vulnerabilities when a Trivy DB is at hand (else one line saying they
//! were not scanned); a CycloneDX SBOM when asked. The gate is the
//! standards': no secret, no CRITICAL and fewer than five HIGH
//! vulnerabilities (per image in images.toml), after `.trivyignore.yaml`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::trivy::{self, Db, Ignores, Secret, Vulnerability};
use crate::engine::image::BuiltImage;
use crate::engine::layout::Layout;
use crate::model::catalog::{Platform, ScanGate};

/// The line that says vulnerabilities were not scanned.
pub const NO_DB: &str = "vulnerability DB unavailable (offline): vulnerabilities not scanned";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScanOptions {
    /// A Trivy cache directory that holds a vulnerability DB (made on a
    /// networked machine with `trivy image --download-db-only --cache-dir DIR`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// A Trivy DB repository (a mirror) to download the vulnerability DB from.
    #[arg(long)]
    pub db_repository: Option<String>,
    /// Fail when vulnerabilities can't be scanned for want of a DB.
    #[arg(long)]
    pub require_vuln_db: bool,
    /// Write a CycloneDX SBOM per image and platform into DIR.
    #[arg(long, value_name = "DIR")]
    pub sbom: Option<PathBuf>,
}

impl ScanOptions {
    pub fn db(&self) -> Db {
        Db { cache_dir: self.cache_dir.clone(), repository: self.db_repository.clone() }
    }
}

/// Vulnerabilities counted by severity (those not ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub ignored: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformScan {
    pub platform: Platform,
    pub secrets: Vec<Secret>,
    /// `None` when no DB was at hand.
    pub vulnerabilities: Option<Vec<Vulnerability>>,
    pub counts: Counts,
    /// The SBOM written for this platform.
    pub sbom: Option<String>,
    pub passed: bool,
    /// Why it failed, one line each.
    pub failures: Vec<String>,
    /// What the report should say besides (the DB was unavailable).
    pub notes: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageScan {
    pub image: String,
    pub reference: String,
    /// The image's Dockerfile (where SARIF places the results).
    pub dockerfile: String,
    pub gate: ScanGate,
    pub platforms: Vec<PlatformScan>,
}

/// Counts the vulnerabilities that are not ignored.
pub fn count(vulnerabilities: &[Vulnerability]) -> Counts {
    let mut c = Counts::default();
    for v in vulnerabilities {
        if v.ignored.is_some() {
            c.ignored += 1;
            continue;
        }
        match v.severity.as_str() {
            "CRITICAL" => c.critical += 1,
            "HIGH" => c.high += 1,
            "MEDIUM" => c.medium += 1,
            _ => c.low += 1,
        }
    }
    c
}

/// Why a platform fails the gate: every secret not ignored, CRITICAL above
/// `max_critical`, HIGH above `max_high`.
pub fn gate(secrets: &[Secret], counts: &Counts, gate: &ScanGate) -> Vec<String> {
    let mut failures: Vec<String> = secrets
        .iter()
        .filter(|s| s.ignored.is_none())
        .map(|s| format!("secret `{}` ({}) in {} line {}", s.rule, s.title, s.target, s.line))
        .collect();
    if counts.critical > gate.max_critical as usize {
        failures.push(format!("{} CRITICAL vulnerabilities (at most {} allowed)", counts.critical, gate.max_critical));
    }
    if counts.high > gate.max_high as usize {
        failures.push(format!("{} HIGH vulnerabilities (at most {} allowed)", counts.high, gate.max_high));
    }
    failures
}

/// Scans every platform of `built`.
pub fn scan(built: &BuiltImage<'_>, options: &ScanOptions, ignores: &Ignores, timeout: Duration) -> Result<ImageScan> {
    let tmp = tempfile::Builder::new().prefix("xtask-scan-").tempdir().context("creating a scratch directory")?;
    let db = options.db();
    let mut platforms = Vec::new();
    for (i, (reference, wanted)) in built.exports().into_iter().enumerate() {
        let layout = Layout::export(reference, &tmp.path().join(format!("image-{i}")))?;
        for platform in wanted {
            let started = Instant::now();
            eprintln!("==> scan {} ({reference}) on {platform}", built.image.name);
            layout.select(&platform)?;
            let json = trivy::scan_image(&layout.dir, "secret", &db, tmp.path(), timeout)?;
            let secrets = trivy::parse_secrets(&json, ignores)?;
            let mut notes = Vec::new();
            let vulnerabilities = if db.available() {
                let json = trivy::scan_image(&layout.dir, "vuln", &db, tmp.path(), timeout)?;
                Some(trivy::parse_vulnerabilities(&json, ignores)?)
            } else {
                notes.push(NO_DB.to_string());
                None
            };
            let counts = vulnerabilities.as_deref().map(count).unwrap_or_default();
            let mut failures = gate(&secrets, &counts, &built.image.scan);
            if vulnerabilities.is_none() && options.require_vuln_db {
                failures.push(format!(
                    "{NO_DB}, and --require-vuln-db asks for them: pass --cache-dir DIR holding a Trivy DB, or --db-repository"
                ));
            }
            let sbom = match &options.sbom {
                Some(dir) => {
                    let dir = std::env::current_dir().map(|cwd| cwd.join(dir)).unwrap_or_else(|_| dir.clone());
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    let file = dir.join(format!(
                        "{}-{}-{}{}.cdx.json",
                        built.image.name,
                        platform.os,
                        platform.arch,
                        platform.variant.as_deref().map(|v| format!("-{v}")).unwrap_or_default()
                    ));
                    trivy::sbom(&layout.dir, &file, tmp.path(), timeout)?;
                    Some(file.display().to_string())
                }
                None => None,
            };
            platforms.push(PlatformScan {
                platform,
                passed: failures.is_empty(),
                secrets,
                vulnerabilities,
                counts,
                sbom,
                failures,
                notes,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
    platforms.sort_by_key(|p| built.platforms.iter().position(|q| *q == p.platform));
    let cwd = std::env::current_dir().unwrap_or_default();
    let dockerfile = &built.image.dockerfile;
    Ok(ImageScan {
        image: built.image.name.clone(),
        reference: built.reference.clone(),
        dockerfile: dockerfile.strip_prefix(&cwd).unwrap_or(dockerfile).display().to_string(),
        gate: built.image.scan,
        platforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i32, u32, u32) = (2026, 11, 25);

    fn report(critical: usize, high: usize) -> String {
        let mut v = Vec::new();
        for i in 0..critical {
            v.push(format!(r#"{{"VulnerabilityID":"CVE-2026-1{i:03}","PkgName":"p","Severity":"CRITICAL"}}"#));
        }
        for i in 0..high {
            v.push(format!(r#"{{"VulnerabilityID":"CVE-2026-2{i:03}","PkgName":"p","Severity":"HIGH"}}"#));
        }
        format!(r#"{{"Results":[{{"Target":"debian","Class":"os-pkgs","Vulnerabilities":[{}]}}]}}"#, v.join(","))
    }

    fn judge(json: &str, ignores: &Ignores) -> Vec<String> {
        let v = trivy::parse_vulnerabilities(json, ignores).unwrap();
        gate(&[], &count(&v), &ScanGate::default())
    }

    #[test]
    fn the_gate_is_no_critical_and_fewer_than_five_high() {
        let none = Ignores::default();
        assert!(judge(&report(0, 4), &none).is_empty(), "0 CRITICAL and 4 HIGH pass");
        assert_eq!(judge(&report(1, 0), &none), ["1 CRITICAL vulnerabilities (at most 0 allowed)"]);
        assert_eq!(judge(&report(0, 5), &none), ["5 HIGH vulnerabilities (at most 4 allowed)"]);
        let relaxed = ScanGate { max_critical: 1, max_high: 10 };
        let v = trivy::parse_vulnerabilities(&report(1, 5), &none).unwrap();
        assert!(gate(&[], &count(&v), &relaxed).is_empty(), "the catalog can set the gate per image");
    }

    #[test]
    fn ignored_entries_lift_the_gate_until_they_expire() {
        let ignores = Ignores::parse(
            "vulnerabilities:\n  - id: CVE-2026-1000\n    statement: not reachable from ralph\n    expired_at: 2027-01-01\n\
             \x20 - id: CVE-2026-2004\n    statement: old\n    expired_at: 2026-11-01\n",
            ".trivyignore.yaml",
            TODAY,
        )
        .unwrap();
        let v = trivy::parse_vulnerabilities(&report(1, 5), &ignores).unwrap();
        let c = count(&v);
        assert_eq!((c.critical, c.high, c.ignored), (0, 5, 1), "the expired entry ignores nothing");
        assert_eq!(gate(&[], &c, &ScanGate::default()), ["5 HIGH vulnerabilities (at most 4 allowed)"]);
    }

    #[test]
    fn every_secret_not_ignored_fails() {
        let secret = |ignored: Option<&str>| Secret {
            target: "/etc/creds".into(),
            rule: "aws-access-key-id".into(),
            title: "AWS Access Key ID".into(),
            severity: "CRITICAL".into(),
            line: 2,
            ignored: ignored.map(str::to_string),
        };
        let failures = gate(&[secret(None), secret(Some("a test key"))], &Counts::default(), &ScanGate::default());
        assert_eq!(failures, ["secret `aws-access-key-id` (AWS Access Key ID) in /etc/creds line 2"]);
    }
}
