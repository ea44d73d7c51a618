//! Trivy, offline: `trivy config` on Dockerfiles (misconfigurations), and
//! `trivy image` on one platform of a built image (secrets always,
//! vulnerabilities when a DB is at hand, a CycloneDX SBOM); its JSON in our
//! form; and `.trivyignore.yaml`, which we apply ourselves so that every
//! entry must say why and until when, and an expired one is reported and
//! ignores nothing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use jiff::civil::Date;
use jiff::fmt::temporal::Pieces;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Finding, Severity, Source};
use crate::engine::process::Cmd;
use crate::engine::tools::{self, TRIVY};

/// What every Trivy run gets: no config file of the working directory, no
/// `.trivyignore` of its own, no network.
fn base(subcommand: &str, tmp: &Path) -> Result<Cmd> {
    Ok(TRIVY.command()?.env("TMPDIR", tmp).args([
        subcommand,
        "--config",
        "",
        "--ignorefile",
        "",
        "--disable-telemetry",
        "--skip-version-check",
        "--skip-check-update",
        "--quiet",
        "--format",
        "json",
    ]))
}

// ---------------------------------------------------------------- config

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(default)]
    results: Vec<ReportResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportResult {
    target: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    misconfigurations: Vec<Misconfiguration>,
    #[serde(default)]
    secrets: Vec<RawSecret>,
    #[serde(default)]
    vulnerabilities: Vec<RawVulnerability>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    title: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    resolution: String,
    severity: String,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: String,
    #[serde(default)]
    cause_metadata: CauseMetadata,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CauseMetadata {
    #[serde(default)]
    start_line: usize,
}

/// `trivy config` on `files`, each under the name the report gives it.
/// They are linked into one directory so that one process (its checks
/// compile once, about a second) lints them all.
pub fn config(files: &[(String, PathBuf)], ignores: &Ignores, timeout: Duration) -> Result<Vec<Finding>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let dir =
        tempfile::Builder::new().prefix("xtask-trivy-config-").tempdir().context("creating a scratch directory")?;
    let scan = dir.path().join("scan");
    std::fs::create_dir(&scan)?;
    for (i, (_, path)) in files.iter().enumerate() {
        std::fs::copy(path, scan.join(format!("{i}.Dockerfile")))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    let cmd = base("config", dir.path())?
        .args(["--misconfig-scanners", "dockerfile", "--exit-code", "0", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg(&scan);
    let out = TRIVY.run(&cmd, timeout)?;
    if !out.status.success() {
        return Err(tools::failed(&TRIVY, &out));
    }
    let mut findings = parse_config(&String::from_utf8_lossy(&out.stdout), |target| {
        target
            .strip_suffix(".Dockerfile")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| files.get(i))
            .map(|(name, _)| name.clone())
    })?;
    findings.retain(|f| ignores.find(Kind::Misconfiguration, &f.rule, Some(&f.file), None).is_none());
    Ok(findings)
}

/// Trivy's misconfiguration JSON in our form; `name` maps its targets to our file names.
pub fn parse_config(json: &str, name: impl Fn(&str) -> Option<String>) -> Result<Vec<Finding>> {
    let report: Report =
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("trivy printed JSON we can't read: {e}"))?;
    let mut out = Vec::new();
    for result in report.results {
        let file = name(&result.target).unwrap_or(result.target);
        for m in result.misconfigurations {
            let severity = severity_of(&m.severity);
            let mut fix = m.resolution.clone();
            if !m.primary_url.is_empty() {
                fix += &format!(" ({})", m.primary_url);
            }
            out.push(Finding {
                file: file.clone(),
                line: m.cause_metadata.start_line,
                rule: canonical_id(&m.id),
                source: Source::Trivy,
                severity,
                message: if m.message.is_empty() { m.title } else { m.message },
                fix,
            });
        }
    }
    Ok(out)
}

/// Trivy's severities in ours: CRITICAL and HIGH fail, MEDIUM warns, the rest informs.
pub fn severity_of(trivy: &str) -> Severity {
    match trivy {
        "CRITICAL" | "HIGH" => Severity::Error,
        "MEDIUM" => Severity::Warning,
        _ => Severity::Info,
    }
}

/// `DS001`, `AVD-DS-0001` and `DS-0001` name the same check: `DS-0001`.
pub fn canonical_id(id: &str) -> String {
    let id = id.strip_prefix("AVD-").unwrap_or(id);
    let (prefix, number) = id.split_at(id.find(|c: char| c.is_ascii_digit()).unwrap_or(id.len()));
    let prefix = prefix.trim_end_matches('-');
    match number.parse::<u32>() {
        Ok(n) if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_uppercase()) => format!("{prefix}-{n:04}"),
        _ => id.to_string(),
    }
}

// ---------------------------------------------------------------- image

/// A secret Trivy found in an image.
#[derive(Debug, Clone, Serialize)]
pub struct Secret {
    /// The file inside the image.
    pub target: String,
    pub rule: String,
    pub title: String,
    pub severity: String,
    pub line: usize,
    /// The `.trivyignore.yaml` statement that lets it pass, when one does.
    pub ignored: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSecret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    title: String,
    severity: String,
    #[serde(default)]
    start_line: usize,
}

/// A vulnerable package Trivy found in an image.
#[derive(Debug, Clone, Serialize)]
pub struct Vulnerability {
    pub id: String,
    pub package: String,
    pub installed: String,
    pub fixed: String,
    pub severity: String,
    pub title: String,
    pub ignored: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: String,
    severity: String,
    #[serde(default)]
    title: String,
    #[serde(default, rename = "PkgIdentifier")]
    identifier: Option<PkgIdentifier>,
}

#[derive(Debug, Deserialize)]
struct PkgIdentifier {
    #[serde(default, rename = "PURL")]
    purl: String,
}

/// The secrets in a `trivy image --scanners secret` report, judged against the ignores.
pub fn parse_secrets(json: &str, ignores: &Ignores) -> Result<Vec<Secret>> {
    let report: Report =
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("trivy printed JSON we can't read: {e}"))?;
    Ok(report
        .results
        .into_iter()
        .filter(|r| r.class == "secret")
        .flat_map(|r| {
            let target = r.target;
            r.secrets.into_iter().map(move |s| Secret {
                ignored: ignores.find(Kind::Secret, &s.rule_id, Some(&target), None).map(|e| e.statement.clone()),
                target: target.clone(),
                rule: s.rule_id,
                title: s.title,
                severity: s.severity,
                line: s.start_line,
            })
        })
        .collect())
}

/// The vulnerabilities in a `trivy image --scanners vuln` report, judged against the ignores.
pub fn parse_vulnerabilities(json: &str, ignores: &Ignores) -> Result<Vec<Vulnerability>> {
    let report: Report =
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("trivy printed JSON we can't read: {e}"))?;
    Ok(report
        .results
        .into_iter()
        .flat_map(|r| r.vulnerabilities)
        .map(|v| {
            let purl = v.identifier.as_ref().map(|i| i.purl.as_str()).filter(|p| !p.is_empty());
            Vulnerability {
                ignored: ignores.find(Kind::Vulnerability, &v.id, None, purl).map(|e| e.statement.clone()),
                id: v.id,
                package: v.pkg_name,
                installed: v.installed_version,
                fixed: v.fixed_version,
                severity: v.severity,
                title: v.title,
            }
        })
        .collect())
}

/// Where Trivy's vulnerability DB comes from.
#[derive(Debug, Clone, Default)]
pub struct Db {
    /// A cache directory that holds a DB (`db/metadata.json`).
    pub cache_dir: Option<PathBuf>,
    /// A DB mirror to download from (a networked machine).
    pub repository: Option<String>,
}

impl Db {
    /// Whether vulnerabilities can be scanned: a DB in the cache, or a repository to fetch one from.
    pub fn available(&self) -> bool {
        self.repository.is_some() || self.cache_dir.as_ref().is_some_and(|d| d.join("db/metadata.json").is_file())
    }
}

/// One scan of an OCI layout directory holding one platform of an image.
pub fn scan_image(layout: &Path, scanners: &str, db: &Db, tmp: &Path, timeout: Duration) -> Result<String> {
    let mut cmd = base("image", tmp)?.args(["--scanners", scanners, "--exit-code", "0", "--input"]).arg(layout);
    cmd = match (scanners, &db.repository, &db.cache_dir) {
        ("vuln", Some(repository), cache) => {
            let cmd = cmd.args(["--db-repository", repository]);
            match cache {
                Some(dir) => cmd.arg("--cache-dir").arg(dir),
                None => cmd.arg("--cache-dir").arg(tmp.join("cache")),
            }
        }
        ("vuln", None, Some(dir)) => {
            cmd.args(["--skip-db-update", "--cache-backend", "memory", "--cache-dir"]).arg(dir)
        }
        _ => cmd.args(["--skip-db-update", "--cache-backend", "memory", "--cache-dir"]).arg(tmp.join("cache")),
    };
    let out = TRIVY.run(&cmd, timeout)?;
    if !out.status.success() {
        return Err(tools::failed(&TRIVY, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CycloneDX SBOM of an OCI layout directory, written to `file`.
pub fn sbom(layout: &Path, file: &Path, tmp: &Path, timeout: Duration) -> Result<()> {
    sbom_of(&[OsStr::new("--input"), layout.as_os_str()], file, tmp, timeout)
}

/// A CycloneDX SBOM of an image in a registry (`REPO@DIGEST`: exactly what
/// was pushed), written to `file`.
pub fn sbom_remote(reference: &str, file: &Path, tmp: &Path, timeout: Duration) -> Result<()> {
    sbom_of(&[OsStr::new("--image-src"), OsStr::new("remote"), OsStr::new(reference)], file, tmp, timeout)
}

fn sbom_of(source: &[&OsStr], file: &Path, tmp: &Path, timeout: Duration) -> Result<()> {
    let cmd = TRIVY
        .command()?
        .env("TMPDIR", tmp)
        .args([
            "image",
            "--config",
            "",
            "--disable-telemetry",
            "--skip-version-check",
            "--skip-check-update",
            "--quiet",
        ])
        .args(["--skip-db-update", "--cache-backend", "memory", "--cache-dir"])
        .arg(tmp.join("cache"))
        .args(["--format", "cyclonedx", "--output"])
        .arg(file)
        .args(source);
    let out = TRIVY.run(&cmd, timeout)?;
    if !out.status.success() {
        return Err(tools::failed(&TRIVY, &out));
    }
    Ok(())
}

// ---------------------------------------------------------------- ignores

/// What an ignore entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Vulnerability,
    Misconfiguration,
    Secret,
    License,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreFile {
    #[serde(default)]
    vulnerabilities: Vec<RawIgnore>,
    #[serde(default)]
    misconfigurations: Vec<RawIgnore>,
    #[serde(default)]
    secrets: Vec<RawIgnore>,
    #[serde(default)]
    licenses: Vec<RawIgnore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    id: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    purls: Vec<String>,
    statement: String,
    expired_at: String,
}

/// One entry of `.trivyignore.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct Ignore {
    pub kind: Kind,
    pub id: String,
    pub paths: Vec<String>,
    pub purls: Vec<String>,
    pub statement: String,
    /// `YYYY-MM-DD`.
    pub expired_at: String,
    pub expired: bool,
}

/// The entries of `.trivyignore.yaml`, as of today.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ignores {
    pub file: Option<String>,
    pub entries: Vec<Ignore>,
}

impl Ignores {
    /// Reads `path` (none there: nothing is ignored). Every entry needs an
    /// `id`, a `statement` and an `expired_at` date; anything else is an
    /// error naming the file, the line and the fix.
    pub fn load(path: &Path, today: Date) -> Result<Ignores> {
        if !path.exists() {
            return Ok(Ignores::default());
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ignores::parse(&text, &path.display().to_string(), today)
    }

    pub fn parse(text: &str, file: &str, today: Date) -> Result<Ignores> {
        let raw: IgnoreFile = if text.trim().is_empty() {
            IgnoreFile { vulnerabilities: vec![], misconfigurations: vec![], secrets: vec![], licenses: vec![] }
        } else {
            serde_norway::from_str(text).map_err(|e| {
                let at = e.location().map_or(String::new(), |l| format!(" line {}:", l.line()));
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or(&what).to_string();
                anyhow::anyhow!(
                    "{file}:{at} {what}: each entry is `- id: …` with `statement: why` and `expired_at: YYYY-MM-DD` \
                     (and optional `paths:`/`purls:`), under vulnerabilities, misconfigurations, secrets or licenses"
                )
            })?
        };
        let mut entries = Vec::new();
        for (kind, list) in [
            (Kind::Vulnerability, raw.vulnerabilities),
            (Kind::Misconfiguration, raw.misconfigurations),
            (Kind::Secret, raw.secrets),
            (Kind::License, raw.licenses),
        ] {
            for e in list {
                if e.statement.trim().is_empty() {
                    bail!("{file}: the entry for {} has an empty statement: say why it is ignored", e.id);
                }
                let Some(date) = parse_date(&e.expired_at) else {
                    bail!(
                        "{file}: the entry for {} has expired_at `{}`: write a date that exists as YYYY-MM-DD",
                        e.id,
                        e.expired_at
                    );
                };
                entries.push(Ignore {
                    kind,
                    id: if kind == Kind::Misconfiguration { canonical_id(&e.id) } else { e.id },
                    paths: e.paths,
                    purls: e.purls,
                    statement: e.statement.trim().to_string(),
                    expired_at: date.to_string(),
                    expired: date <= today,
                });
            }
        }
        Ok(Ignores { file: Some(file.to_string()), entries })
    }

    /// The entry in force (not expired) that ignores this finding.
    pub fn find(&self, kind: Kind, id: &str, path: Option<&str>, purl: Option<&str>) -> Option<&Ignore> {
        let id = if kind == Kind::Misconfiguration { canonical_id(id) } else { id.to_string() };
        self.entries.iter().filter(|e| !e.expired && e.kind == kind && e.id == id).find(|e| {
            let path_ok = e.paths.is_empty() || path.is_some_and(|p| e.paths.iter().any(|g| glob_match(g, p)));
            let purl_ok =
                e.purls.is_empty() || purl.is_some_and(|p| e.purls.iter().any(|want| p.starts_with(want.as_str())));
            path_ok && purl_ok
        })
    }

    pub fn expired(&self) -> impl Iterator<Item = &Ignore> {
        self.entries.iter().filter(|e| e.expired)
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 time whose date is taken; `None` for a day that does not exist.
fn parse_date(s: &str) -> Option<Date> {
    Pieces::parse(s.trim()).ok().map(|pieces| pieces.date())
}

/// Today's date (UTC).
pub fn today() -> Date {
    Timestamp::now().to_zoned(TimeZone::UTC).date()
}

/// A path glob as Trivy's ignore `paths` take it: `*` within a path part, `**` across parts.
pub fn glob_match(glob: &str, path: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = jiff::civil::date(2026, 11, 25);

    #[test]
    fn check_ids_are_one_form() {
        assert_eq!(canonical_id("DS001"), "DS-0001");
        assert_eq!(canonical_id("AVD-DS-0026"), "DS-0026");
        assert_eq!(canonical_id("DS-0026"), "DS-0026");
        assert_eq!(canonical_id("aws-access-key-id"), "aws-access-key-id");
    }

    #[test]
    fn misconfigurations_become_findings_under_our_names() {
        let json = r#"{"SchemaVersion":2,"Results":[{"Target":"0.Dockerfile","Class":"config","Type":"dockerfile",
            "Misconfigurations":[{"ID":"DS-0002","Title":"Image user should not be 'root'","Message":"Specify at least 1 USER command","Resolution":"Add 'USER <non root user name>' line","Severity":"HIGH","PrimaryURL":"https://avd.aquasec.com/misconfig/ds-0002","CauseMetadata":{"StartLine":4}},
            {"ID":"DS-0026","Title":"No HEALTHCHECK defined","Message":"Add HEALTHCHECK","Resolution":"Add HEALTHCHECK","Severity":"LOW","CauseMetadata":{}}]}]}"#;
        let f = parse_config(json, |t| (t == "0.Dockerfile").then(|| "test/images/x/Dockerfile".to_string())).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].file.as_str(), f[0].line, f[0].rule.as_str()), ("test/images/x/Dockerfile", 4, "DS-0002"));
        assert_eq!((f[0].severity, f[1].severity, f[1].line), (Severity::Error, Severity::Info, 0));
        assert!(f[0].fix.ends_with("(https://avd.aquasec.com/misconfig/ds-0002)"));
    }

    fn ignores() -> Ignores {
        Ignores::parse(
            "secrets:\n  - id: aws-access-key-id\n    paths: [\"/etc/creds\"]\n    statement: fake key of the test image\n    expired_at: 2099-01-01\n\
             vulnerabilities:\n  - id: CVE-2024-0001\n    statement: not reachable\n    expired_at: 2026-01-31\n\
             \x20 - id: CVE-2024-0002\n    purls: [\"pkg:deb/debian/openssl\"]\n    statement: fixed upstream, waiting for Debian\n    expired_at: 2027-03-01\n\
             misconfigurations:\n  - id: DS026\n    paths: [\"**/Dockerfile\"]\n    statement: RLP008 asks services only\n    expired_at: 2027-06-01T00:00:00Z\n",
            ".trivyignore.yaml",
            TODAY,
        )
        .unwrap()
    }

    #[test]
    fn ignores_match_by_id_path_and_purl_until_they_expire() {
        let ig = ignores();
        assert!(ig.find(Kind::Secret, "aws-access-key-id", Some("/etc/creds"), None).is_some());
        assert!(ig.find(Kind::Secret, "aws-access-key-id", Some("/etc/other"), None).is_none(), "another file");
        assert!(ig.find(Kind::Secret, "aws-secret-access-key", Some("/etc/creds"), None).is_none(), "another rule");
        assert!(ig.find(Kind::Vulnerability, "CVE-2024-0001", None, None).is_none(), "expired on 2026-01-31");
        assert_eq!(ig.expired().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["CVE-2024-0001"]);
        assert!(ig
            .find(Kind::Vulnerability, "CVE-2024-0002", None, Some("pkg:deb/debian/openssl@3.0.15?arch=amd64"))
            .is_some());
        assert!(ig.find(Kind::Vulnerability, "CVE-2024-0002", None, Some("pkg:deb/debian/curl@8")).is_none());
        assert!(ig.find(Kind::Misconfiguration, "DS-0026", Some("test/images/x/Dockerfile"), None).is_some());
    }

    #[test]
    fn every_entry_says_why_and_until_when() {
        let err = Ignores::parse("secrets:\n  - id: x\n    expired_at: 2027-01-01\n", "f.yaml", TODAY)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.yaml: line 2: secrets[0]: missing field `statement`: each entry is `- id: …` with `statement: why` and `expired_at: YYYY-MM-DD` (and optional `paths:`/`purls:`), under vulnerabilities, misconfigurations, secrets or licenses"
        );
        let err = Ignores::parse("secrets:\n  - id: x\n    statement: y\n", "f.yaml", TODAY).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yaml: line 2: secrets[0]: missing field `expired_at`: each entry is `- id: …` with `statement: why` and `expired_at: YYYY-MM-DD` (and optional `paths:`/`purls:`), under vulnerabilities, misconfigurations, secrets or licenses"
        );
        let err = Ignores::parse("secret:\n  - id: x\n", "f.yaml", TODAY).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yaml: line 1: unknown field `secret`, expected one of `vulnerabilities`, `misconfigurations`, `secrets`, `licenses`: each entry is `- id: …` with `statement: why` and `expired_at: YYYY-MM-DD` (and optional `paths:`/`purls:`), under vulnerabilities, misconfigurations, secrets or licenses"
        );
        let err = Ignores::parse("secrets:\n  - id: x\n    statement: y\n    expired_at: soon\n", "f.yaml", TODAY)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "f.yaml: the entry for x has expired_at `soon`: write a date that exists as YYYY-MM-DD");
        assert!(Ignores::parse("", "f.yaml", TODAY).unwrap().entries.is_empty());
    }

    #[test]
    fn secrets_and_vulnerabilities_are_judged_against_the_ignores() {
        let json = r#"{"Results":[{"Target":"/etc/creds","Class":"secret","Secrets":[
            {"RuleID":"aws-access-key-id","Category":"AWS","Severity":"CRITICAL","Title":"AWS Access Key ID","StartLine":2},
            {"RuleID":"aws-secret-access-key","Category":"AWS","Severity":"CRITICAL","Title":"AWS Secret Access Key","StartLine":3}]},
            {"Target":"debian 12.15","Class":"os-pkgs"}]}"#;
        let s = parse_secrets(json, &ignores()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ignored.as_deref(), Some("fake key of the test image"));
        assert_eq!(s[1].ignored, None);
        let json = r#"{"Results":[{"Target":"debian","Class":"os-pkgs","Vulnerabilities":[
            {"VulnerabilityID":"CVE-2024-0002","PkgName":"openssl","InstalledVersion":"3.0.15","FixedVersion":"3.0.16","Severity":"HIGH","PkgIdentifier":{"PURL":"pkg:deb/debian/openssl@3.0.15"}},
            {"VulnerabilityID":"CVE-2024-0001","PkgName":"zlib","Severity":"CRITICAL"}]}]}"#;
        let v = parse_vulnerabilities(json, &ignores()).unwrap();
        assert!(v[0].ignored.is_some());
        assert!(v[1].ignored.is_none(), "its entry expired");
    }

    #[test]
    fn globs_match_as_trivy_paths_do() {
        assert!(glob_match("/etc/creds", "/etc/creds"));
        assert!(!glob_match("etc/creds", "/etc/creds"));
        assert!(glob_match("**/creds", "/etc/creds"));
        assert!(glob_match("/etc/*", "/etc/creds"));
        assert!(!glob_match("/etc/*", "/etc/a/creds"));
        assert!(glob_match("**/Dockerfile", "Dockerfile"));
    }

    #[test]
    fn an_expiry_on_a_day_that_does_not_exist_is_refused() {
        // Before: any day 1..=31 of any month passed, so 2026-02-31 was a date.
        for bad in ["2026-02-31", "2026-04-31", "2027-02-29", "2026-00-10", "2026-02-31T00:00:00Z"] {
            let text = format!("secrets:\n  - id: x\n    statement: y\n    expired_at: {bad}\n");
            let err = match Ignores::parse(&text, "f.yaml", TODAY) {
                Ok(ignores) => panic!("{bad} was taken as {}", ignores.entries[0].expired_at),
                Err(err) => err.to_string(),
            };
            assert!(err.starts_with(&format!("f.yaml: the entry for x has expired_at `{bad}`")), "{err}");
        }
        let leap =
            Ignores::parse("secrets:\n  - id: x\n    statement: y\n    expired_at: 2028-02-29\n", "f.yaml", TODAY);
        assert_eq!(leap.unwrap().entries[0].expired_at, "2028-02-29");
    }

    #[test]
    fn dates_and_today() {
        assert_eq!(parse_date("2027-06-01T00:00:00Z"), Some(jiff::civil::date(2027, 6, 1)));
        assert_eq!(parse_date("2027-06-01T23:00:00-05:00"), Some(jiff::civil::date(2027, 6, 1)), "the date as written");
        assert_eq!(parse_date(" 2027-06-01 "), Some(jiff::civil::date(2027, 6, 1)));
        assert_eq!(parse_date("2027-13-01"), None);
        assert_eq!(parse_date("2027-06-01 and more"), None);
        assert!(today().year() >= 2026);
    }
}
