//! Trivy on a built image, platform by platform: secrets always;
//! vulnerabilities when a Trivy DB is at hand (else that part is `skipped`,
//! with the reason, never a pass: `--require-vuln-db` makes it a failure);
//! a CycloneDX SBOM when asked. The gate is the standards': no secret, no
//! CRITICAL and fewer than five HIGH vulnerabilities (per image in
//! images.toml), after `.trivyignore.yaml`. Each part has its own result:
//! the secret scan passes or fails, the vulnerability scan passes, fails or
//! is skipped.

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

/// How one part of a platform's scan came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// Not looked at (no vulnerability DB): no failure, and no pass either.
    Skipped,
}

/// One part of a platform's scan (secrets, or vulnerabilities): its status,
/// and why when it did not pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub status: Status,
    /// Why it failed (its failures, `; ` between) or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long its Trivy run took (0 when skipped).
    pub seconds: f64,
}

impl Part {
    /// Passed without failures, else failed with them.
    pub fn of(failures: &[String]) -> Part {
        if failures.is_empty() {
            Part { status: Status::Passed, reason: None, seconds: 0.0 }
        } else {
            Part { status: Status::Failed, reason: Some(failures.join("; ")), seconds: 0.0 }
        }
    }

    pub fn skipped(reason: &str) -> Part {
        Part { status: Status::Skipped, reason: Some(reason.to_string()), seconds: 0.0 }
    }
}

impl Status {
    /// As a table cell: `pass`, `FAIL` or `skipped`.
    pub fn cell(self) -> &'static str {
        match self {
            Status::Passed => "pass",
            Status::Failed => "FAIL",
            Status::Skipped => "skipped",
        }
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
    /// The secret scan: passed or failed.
    pub secret_scan: Part,
    /// The vulnerability scan: passed or failed (the gate, or
    /// `--require-vuln-db` without a DB), or skipped (no DB).
    pub vuln_scan: Part,
    /// No part failed (a skipped part is no failure: see `vuln_scan`).
    pub passed: bool,
    /// Why it failed, one line each.
    pub failures: Vec<String>,
    /// What the report should say besides (the DB was unavailable).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// A platform's scan judged: each part's result, and the report's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub secret_scan: Part,
    pub vuln_scan: Part,
    pub counts: Counts,
    /// Why it failed, one line each (secrets first).
    pub failures: Vec<String>,
    pub notes: Vec<String>,
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

/// Every secret not ignored, one line each: each fails the secret scan.
pub fn secret_failures(secrets: &[Secret]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| s.ignored.is_none())
        .map(|s| format!("secret `{}` ({}) in {} line {}", s.rule, s.title, s.target, s.line))
        .collect()
}

/// What fails the vulnerability gate: CRITICAL above `max_critical`, HIGH
/// above `max_high`.
pub fn vuln_failures(counts: &Counts, gate: &ScanGate) -> Vec<String> {
    let mut failures = Vec::new();
    if counts.critical > gate.max_critical as usize {
        failures.push(format!("{} CRITICAL vulnerabilities (at most {} allowed)", counts.critical, gate.max_critical));
    }
    if counts.high > gate.max_high as usize {
        failures.push(format!("{} HIGH vulnerabilities (at most {} allowed)", counts.high, gate.max_high));
    }
    failures
}

/// Judges one platform: the secrets pass or fail; the vulnerabilities, when
/// they were looked for (`Some`), pass or fail the gate, else they are
/// skipped, which `require_db` (`--require-vuln-db`) turns into a failure.
pub fn judge(
    secrets: &[Secret],
    vulnerabilities: Option<&[Vulnerability]>,
    scan_gate: &ScanGate,
    require_db: bool,
) -> Verdict {
    let mut failures = secret_failures(secrets);
    let secret_scan = Part::of(&failures);
    let mut notes = Vec::new();
    let counts = vulnerabilities.map(count).unwrap_or_default();
    let vulns = match vulnerabilities {
        Some(_) => vuln_failures(&counts, scan_gate),
        None => {
            notes.push(NO_DB.to_string());
            if require_db {
                vec![format!(
                    "{NO_DB}, and --require-vuln-db asks for them: pass --cache-dir DIR holding a Trivy DB, or --db-repository"
                )]
            } else {
                Vec::new()
            }
        }
    };
    let vuln_scan = if vulnerabilities.is_none() && vulns.is_empty() { Part::skipped(NO_DB) } else { Part::of(&vulns) };
    failures.extend(vulns);
    Verdict { secret_scan, vuln_scan, counts, failures, notes }
}

/// Scans every platform of `built`.
pub fn scan(built: &BuiltImage<'_>, options: &ScanOptions, ignores: &Ignores, timeout: Duration) -> Result<ImageScan> {
    let tmp = tempfile::Builder::new().prefix("xtask-scan-").tempdir().context("creating a scratch directory")?;
    let db = options.db();
    let mut platforms = Vec::new();
    for (i, (reference, wanted)) in built.exports().into_iter().enumerate() {
        let dir = tmp.path().join(format!("image-{i}"));
        let layout = match &built.layout {
            Some(build) => Layout::view(build, &dir)?,
            None => Layout::export(reference, &dir)?,
        };
        for platform in wanted {
            let started = Instant::now();
            eprintln!("==> scan {} ({reference}) on {platform}", built.image.name);
            layout.select(&platform)?;
            let json = trivy::scan_image(&layout.dir, "secret", &db, tmp.path(), timeout)?;
            let secrets = trivy::parse_secrets(&json, ignores)?;
            let secret_seconds = started.elapsed().as_secs_f64();
            let vuln_started = Instant::now();
            let vulnerabilities = if db.available() {
                let json = trivy::scan_image(&layout.dir, "vuln", &db, tmp.path(), timeout)?;
                Some(trivy::parse_vulnerabilities(&json, ignores)?)
            } else {
                None
            };
            let vuln_seconds = if vulnerabilities.is_some() { vuln_started.elapsed().as_secs_f64() } else { 0.0 };
            let verdict = judge(&secrets, vulnerabilities.as_deref(), &built.image.scan, options.require_vuln_db);
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
                passed: verdict.failures.is_empty(),
                secrets,
                vulnerabilities,
                counts: verdict.counts,
                sbom,
                secret_scan: Part { seconds: secret_seconds, ..verdict.secret_scan },
                vuln_scan: Part { seconds: vuln_seconds, ..verdict.vuln_scan },
                failures: verdict.failures,
                notes: verdict.notes,
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

/// Scans as a report shows them, judged by [`judge`] from Trivy JSON: `w`
/// with a DB (amd64 passes its gate, arm64 has a CRITICAL), `p` without
/// one (vulnerabilities skipped; a secret planted on arm64).
#[cfg(test)]
pub fn examples() -> Vec<ImageScan> {
    let amd = Platform::parse("linux/amd64").unwrap();
    let arm = Platform::parse("linux/arm64").unwrap();
    let none = Ignores::default();
    let vulns = |json: &str| trivy::parse_vulnerabilities(json, &none).unwrap();
    let scanned = r#"{"Results":[{"Target":"debian","Class":"os-pkgs","Vulnerabilities":[
        {"VulnerabilityID":"CVE-2026-2001","PkgName":"openssl","InstalledVersion":"3.0.15","FixedVersion":"3.0.16","Severity":"HIGH","Title":"t"},
        {"VulnerabilityID":"CVE-2026-2002","PkgName":"zlib","InstalledVersion":"1.2","Severity":"HIGH","Title":"t"},
        {"VulnerabilityID":"CVE-2026-3001","PkgName":"curl","InstalledVersion":"8","Severity":"MEDIUM","Title":"t"}]}]}"#;
    let critical = r#"{"Results":[{"Target":"debian","Class":"os-pkgs","Vulnerabilities":[
        {"VulnerabilityID":"CVE-2026-1001","PkgName":"glibc","InstalledVersion":"2.36","FixedVersion":"2.36-9","Severity":"CRITICAL","Title":"t"}]}]}"#;
    let planted = r#"{"Results":[{"Target":"/etc/creds","Class":"secret","Secrets":[
        {"RuleID":"aws-access-key-id","Severity":"CRITICAL","Title":"AWS Access Key ID","StartLine":2}]}]}"#;
    let platform = |platform: &Platform, secrets: Vec<Secret>, vulnerabilities: Option<Vec<Vulnerability>>| {
        let v = judge(&secrets, vulnerabilities.as_deref(), &ScanGate::default(), false);
        let seconds = if vulnerabilities.is_some() { 2.0 } else { 0.0 };
        PlatformScan {
            platform: platform.clone(),
            secrets,
            vulnerabilities,
            counts: v.counts,
            sbom: None,
            secret_scan: Part { seconds: 1.0, ..v.secret_scan },
            vuln_scan: Part { seconds, ..v.vuln_scan },
            passed: v.failures.is_empty(),
            failures: v.failures,
            notes: v.notes,
            seconds: 1.0 + seconds,
        }
    };
    let image = |name: &str, platforms| ImageScan {
        image: name.into(),
        reference: format!("{name}:1"),
        dockerfile: format!("test/images/{name}/Dockerfile"),
        gate: ScanGate::default(),
        platforms,
    };
    vec![
        image("w", vec![platform(&amd, vec![], Some(vulns(scanned))), platform(&arm, vec![], Some(vulns(critical)))]),
        image(
            "p",
            vec![platform(&amd, vec![], None), platform(&arm, trivy::parse_secrets(planted, &none).unwrap(), None)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: jiff::civil::Date = jiff::civil::date(2026, 11, 25);

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

    fn gate_of(json: &str, ignores: &Ignores) -> Vec<String> {
        let v = trivy::parse_vulnerabilities(json, ignores).unwrap();
        vuln_failures(&count(&v), &ScanGate::default())
    }

    #[test]
    fn the_gate_is_no_critical_and_fewer_than_five_high() {
        let none = Ignores::default();
        assert!(gate_of(&report(0, 4), &none).is_empty(), "0 CRITICAL and 4 HIGH pass");
        assert_eq!(gate_of(&report(1, 0), &none), ["1 CRITICAL vulnerabilities (at most 0 allowed)"]);
        assert_eq!(gate_of(&report(0, 5), &none), ["5 HIGH vulnerabilities (at most 4 allowed)"]);
        let relaxed = ScanGate { max_critical: 1, max_high: 10 };
        let v = trivy::parse_vulnerabilities(&report(1, 5), &none).unwrap();
        assert!(vuln_failures(&count(&v), &relaxed).is_empty(), "the catalog can set the gate per image");
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
        assert_eq!(vuln_failures(&c, &ScanGate::default()), ["5 HIGH vulnerabilities (at most 4 allowed)"]);
    }

    fn secret(ignored: Option<&str>) -> Secret {
        Secret {
            target: "/etc/creds".into(),
            rule: "aws-access-key-id".into(),
            title: "AWS Access Key ID".into(),
            severity: "CRITICAL".into(),
            line: 2,
            ignored: ignored.map(str::to_string),
        }
    }

    #[test]
    fn every_secret_not_ignored_fails() {
        let failures = secret_failures(&[secret(None), secret(Some("a test key"))]);
        assert_eq!(failures, ["secret `aws-access-key-id` (AWS Access Key ID) in /etc/creds line 2"]);
    }

    #[test]
    fn each_part_has_its_own_result_and_vulnerabilities_not_looked_for_are_skipped() {
        let none = Ignores::default();
        let gate = ScanGate::default();
        // Looked for: the gate passes them or fails them, whatever the secrets did.
        let clean = trivy::parse_vulnerabilities(&report(0, 4), &none).unwrap();
        let v = judge(&[], Some(&clean), &gate, false);
        assert_eq!((v.secret_scan.status, v.vuln_scan.status), (Status::Passed, Status::Passed));
        assert_eq!((v.counts.high, v.failures.len(), v.notes.len()), (4, 0, 0));
        let bad = trivy::parse_vulnerabilities(&report(1, 5), &none).unwrap();
        let v = judge(&[secret(Some("a test key"))], Some(&bad), &gate, true);
        assert_eq!(v.secret_scan.status, Status::Passed, "an ignored secret passes");
        assert_eq!(v.vuln_scan.status, Status::Failed);
        assert_eq!(
            v.vuln_scan.reason.as_deref(),
            Some("1 CRITICAL vulnerabilities (at most 0 allowed); 5 HIGH vulnerabilities (at most 4 allowed)")
        );
        assert_eq!(v.failures.len(), 2);

        // Not looked for (no DB): skipped with the reason, never passed; secrets still judged.
        let v = judge(&[secret(None)], None, &gate, false);
        assert_eq!(v.secret_scan.status, Status::Failed);
        assert_eq!(v.vuln_scan, Part::skipped(NO_DB));
        assert_eq!(v.failures, ["secret `aws-access-key-id` (AWS Access Key ID) in /etc/creds line 2"]);
        assert_eq!(v.notes, [NO_DB]);
        assert_eq!(
            serde_json::to_value(&v.vuln_scan).unwrap(),
            serde_json::json!({"status": "skipped", "reason": NO_DB, "seconds": 0.0})
        );
        assert_eq!(serde_json::to_value(&v.secret_scan).unwrap()["status"], "failed");

        // --require-vuln-db: the missing DB is a failure of the vulnerability scan.
        let v = judge(&[], None, &gate, true);
        assert_eq!((v.secret_scan.status, v.vuln_scan.status), (Status::Passed, Status::Failed));
        assert!(v.failures[0].starts_with(&format!("{NO_DB}, and --require-vuln-db asks for them")), "{v:?}");
        assert_eq!(v.vuln_scan.reason.as_ref(), v.failures.first());
    }
}
