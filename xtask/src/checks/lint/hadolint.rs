//! hadolint on Dockerfiles: one process for all of them, JSON out, its
//! findings in our form; and its configuration, `.hadolint.yaml`, checked
//! for what hadolint would silently pass over (a malformed file) and for an
//! ignored rule without its reason.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::checks::{Finding, Severity, Source};
use crate::engine::tools::{self, HADOLINT};

#[derive(Debug, Deserialize)]
struct Raw {
    code: String,
    file: String,
    level: String,
    line: usize,
    message: String,
}

/// hadolint's findings for `files` (as given on its command line), with
/// `config` as its configuration when there is one.
pub fn run(files: &[String], config: Option<&Path>, timeout: Duration) -> Result<Vec<Finding>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = HADOLINT.command()?.args(["--format", "json", "--no-fail"]);
    if let Some(config) = config {
        cmd = cmd.arg("--config").arg(config);
    }
    let out = HADOLINT.run(&cmd.args(files), timeout)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // hadolint reads a broken config, says so on stderr, and goes on with its defaults.
    if let Some(at) = stderr.find("Error parsing your config file") {
        let why = stderr[at..].replace("\\n", " ").replace('"', "");
        anyhow::bail!(
            "hadolint can't read {}: {}: fix the file (hadolint would otherwise lint with its defaults)",
            config.map_or("its configuration".into(), |c| c.display().to_string()),
            why.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim().is_empty() {
        return Err(tools::failed(&HADOLINT, &out));
    }
    parse(&stdout)
}

/// hadolint's JSON findings in our form.
pub fn parse(json: &str) -> Result<Vec<Finding>> {
    let raw: Vec<Raw> =
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("hadolint printed JSON we can't read: {e}"))?;
    Ok(raw
        .into_iter()
        .map(|r| Finding {
            file: r.file,
            line: r.line,
            severity: match r.level.as_str() {
                "error" => Severity::Error,
                "warning" => Severity::Warning,
                _ => Severity::Info,
            },
            fix: fix_for(&r.code),
            rule: r.code,
            source: Source::Hadolint,
            message: r.message,
        })
        .collect())
}

/// Where a hadolint rule is explained.
pub fn help_uri(code: &str) -> String {
    if code.starts_with("SC") {
        format!("https://www.shellcheck.net/wiki/{code}")
    } else {
        format!("https://github.com/hadolint/hadolint/wiki/{code}")
    }
}

fn fix_for(code: &str) -> String {
    if code == "DL1000" {
        "fix the syntax hadolint names".into()
    } else {
        format!("see {} (or `# hadolint ignore={code}` on the line before, with a comment saying why)", help_uri(code))
    }
}

/// `.hadolint.yaml`: each rule it ignores must say why, in a comment on the
/// lines right above it or at the end of its line.
pub fn check_config(path: &Path, display: &str) -> Result<Vec<Finding>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let value: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| {
        let at = e.location().map_or(String::new(), |l| format!(" at line {}", l.line()));
        anyhow::anyhow!("{display} is not valid YAML{at}: {e}: fix it (hadolint would lint with its defaults)")
    })?;
    if !value.is_mapping() && !value.is_null() {
        anyhow::bail!("{display} is not a YAML mapping: write `ignored: [...]`, `failure-threshold: …` and so on");
    }
    let mut findings = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut in_ignored = false;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') && !line.starts_with('-') && !trimmed.starts_with('#') && !trimmed.is_empty() {
            in_ignored = trimmed.starts_with("ignored:");
            continue;
        }
        let Some(item) = trimmed.strip_prefix("- ").filter(|_| in_ignored) else { continue };
        let (rule, trailing) = item.split_once('#').map_or((item.trim(), ""), |(r, c)| (r.trim(), c.trim()));
        let above = lines[..i].iter().rev().take_while(|l| l.trim_start().starts_with('#')).count() > 0;
        if trailing.is_empty() && !above {
            findings.push(Finding {
                file: display.to_string(),
                line: i + 1,
                rule: "RLP012".into(),
                source: Source::Ralph,
                severity: Severity::Error,
                message: format!("{display} ignores {rule} without saying why"),
                fix: "write the reason in a comment on the line above the ignored rule".into(),
            });
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hadolint_json_becomes_findings() {
        let json = r#"[{"code":"DL3006","column":1,"file":"bad.Dockerfile","level":"warning","line":1,"message":"Always tag the version of an image explicitly"},
            {"code":"DL1000","column":1,"file":"x/Dockerfile","level":"error","line":3,"message":"unexpected flag --from with no value"},
            {"code":"SC2086","column":1,"file":"x/Dockerfile","level":"info","line":5,"message":"Double quote"}]"#;
        let f = parse(json).unwrap();
        assert_eq!((f[0].rule.as_str(), f[0].severity, f[0].line), ("DL3006", Severity::Warning, 1));
        assert_eq!((f[1].severity, f[1].fix.as_str()), (Severity::Error, "fix the syntax hadolint names"));
        assert_eq!(f[2].severity, Severity::Info);
        assert!(f[2].fix.contains("shellcheck.net/wiki/SC2086"));
        assert!(parse("not json").unwrap_err().to_string().starts_with("hadolint printed JSON we can't read"));
    }

    #[test]
    fn every_ignored_rule_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".hadolint.yaml");
        std::fs::write(&path, "failure-threshold: info\nignored:\n  # pinned by digest already\n  - DL3041\n  - DL3008  # apt versions: Debian's are pinned by the base\n  - DL3059\ntrustedRegistries:\n  - docker.io\n").unwrap();
        let f = check_config(&path, ".hadolint.yaml").unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].line, f[0].message.as_str()), (6, ".hadolint.yaml ignores DL3059 without saying why"));
        std::fs::write(&path, "ignored: [\n").unwrap();
        assert!(check_config(&path, ".hadolint.yaml")
            .unwrap_err()
            .to_string()
            .starts_with(".hadolint.yaml is not valid YAML at line"));
    }
}
