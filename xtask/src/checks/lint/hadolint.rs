//! hadolint on Dockerfiles: one process for all of them, JSON out, its
//! findings in our form; where its parser can't read a file BuildKit reads,
//! a second run on [`hadolint_view`]'s rewrite of it, lines mapped back; and
//! its configuration, `.hadolint.yaml`, checked for what hadolint would
//! silently pass over (a malformed file) and for an ignored rule without its
//! reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::hadolint_view::{self, Rewrite, View};
use crate::checks::{Finding, Severity, Source};
use crate::engine::tools::{self, HADOLINT};
use crate::model::dockerfile;

/// The rule of a file hadolint's parser can't read where BuildKit's can: a warning, hadolint's limit.
pub const UNPARSED: &str = "hadolint-parser";

/// What hadolint read of one Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub read: Read,
    /// The lines it read rewritten, and why.
    pub rewritten: Vec<Rewrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Read {
    /// The file as it is.
    File,
    /// [`hadolint_view`]'s rewrite of it: its parser can't read the original.
    Rewrite,
    /// Nothing: the file does not parse (RLP000), or hadolint can't parse even the rewrite.
    Nothing,
}

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

/// hadolint's findings for `files` and what it read of each. A file its
/// parser can't read (DL1000) but ours can is linted again as
/// [`hadolint_view`] rewrites it, its findings mapped back to the original
/// lines; a parse error is ours to report (RLP000), so hadolint's DL1000 is
/// never one: where even the rewrite fails, a warning names the line.
pub fn run_readable(
    files: &[String],
    config: Option<&Path>,
    timeout: Duration,
) -> Result<(Vec<Finding>, BTreeMap<String, Coverage>)> {
    let first = run(files, config, timeout)?;
    let mut views: BTreeMap<String, (Finding, Option<View>)> = BTreeMap::new();
    for f in first.iter().filter(|f| f.rule == "DL1000") {
        let view = std::fs::read_to_string(&f.file)
            .ok()
            .and_then(|text| dockerfile::parse(&text).ok().map(|df| hadolint_view::view(&df, &text)));
        views.entry(f.file.clone()).or_insert((f.clone(), view));
    }
    let rewritten: Vec<(&String, &View)> = views
        .iter()
        .filter_map(|(file, (_, v))| v.as_ref().filter(|v| !v.rewrites.is_empty()).map(|v| (file, v)))
        .collect();
    let mut second = Vec::new();
    if !rewritten.is_empty() {
        let dir = tempfile::Builder::new()
            .prefix("xtask-hadolint-view-")
            .tempdir()
            .context("creating a scratch directory")?;
        let mut paths = Vec::new();
        for (i, (_, view)) in rewritten.iter().enumerate() {
            let path = dir.path().join(format!("{i}.Dockerfile"));
            std::fs::write(&path, &view.text).with_context(|| format!("writing {}", path.display()))?;
            paths.push(path.display().to_string());
        }
        for mut f in run(&paths, config, timeout)? {
            if let Some(i) = paths.iter().position(|p| *p == f.file) {
                f.file = rewritten[i].0.clone();
                second.push(f);
            }
        }
    }
    Ok(merge(files, first, &views, &second))
}

/// The findings of both runs as the report gives them, and what hadolint
/// read of each file. `views`: for each file hadolint could not parse, its
/// DL1000 and our view of the file (none when our parser refuses
/// it); `second`: the findings on the views, named as the originals, lines as
/// in the view.
fn merge(
    files: &[String],
    first: Vec<Finding>,
    views: &BTreeMap<String, (Finding, Option<View>)>,
    second: &[Finding],
) -> (Vec<Finding>, BTreeMap<String, Coverage>) {
    let mut coverage: BTreeMap<String, Coverage> =
        files.iter().map(|f| (f.clone(), Coverage { read: Read::File, rewritten: Vec::new() })).collect();
    let mut findings: Vec<Finding> = first.into_iter().filter(|f| !views.contains_key(&f.file)).collect();
    for (file, (stopped, view)) in views {
        let cov = coverage.entry(file.clone()).or_insert(Coverage { read: Read::Nothing, rewritten: Vec::new() });
        cov.read = Read::Nothing;
        // Our parser refuses the file: RLP000 says why, hadolint had nothing to read.
        let Some(view) = view else { continue };
        cov.rewritten.clone_from(&view.rewrites);
        let mine: Vec<Finding> = second
            .iter()
            .filter(|f| f.file == *file)
            .map(|f| Finding { line: view.original_line(f.line), ..f.clone() })
            .collect();
        if view.rewrites.is_empty() || mine.iter().any(|f| f.rule == "DL1000") {
            let failed = mine.iter().find(|f| f.rule == "DL1000").unwrap_or(stopped);
            let (line, why) = (failed.line, failed.message.lines().next().unwrap_or_default());
            let even = if view.rewrites.is_empty() {
                " (a form hadolint_view does not rewrite)".to_string()
            } else {
                let lines: Vec<String> = view.rewrites.iter().map(|r| format!("{}-{}", r.line, r.end_line)).collect();
                format!(" even with lines {} rewritten", lines.join(", "))
            };
            findings.push(Finding {
                file: file.clone(),
                line,
                rule: UNPARSED.into(),
                source: Source::Hadolint,
                severity: Severity::Warning,
                message: format!(
                    "hadolint's parser can't read the file{}{even}, which BuildKit reads: hadolint checked none of its lines (our policy and Trivy did){}",
                    if line > 0 { format!(" at line {line}") } else { String::new() },
                    if why.is_empty() { String::new() } else { format!("; it says: {why}") }
                ),
                fix: "nothing to change for BuildKit; for hadolint to check the file, teach \
                      xtask/src/checks/lint/hadolint_view.rs to rewrite this form"
                    .into(),
            });
            continue;
        }
        cov.read = Read::Rewrite;
        findings.extend(mine);
    }
    (findings, coverage)
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
    if code == UNPARSED {
        "https://github.com/hadolint/hadolint/wiki/DL1000".to_string()
    } else if code.starts_with("SC") {
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

    fn finding(file: &str, line: usize, rule: &str, message: &str) -> Finding {
        Finding {
            file: file.into(),
            line,
            rule: rule.into(),
            source: Source::Hadolint,
            severity: if rule == "DL1000" { Severity::Error } else { Severity::Warning },
            message: message.into(),
            fix: String::new(),
        }
    }

    #[test]
    fn a_file_hadolint_cant_parse_is_linted_as_rewritten_lines_mapped_back() {
        let text = "FROM alpine:3.20\nRUN <<-EOT\n\tapk add curl\n\tEOT\nRUN echo x\n";
        let view = hadolint_view::view(&dockerfile::parse(text).unwrap(), text);
        let files = ["ok".to_string(), "heredoc".to_string(), "broken".to_string(), "odd".to_string()];
        let first = vec![
            finding("ok", 3, "DL3006", "tag"),
            finding("heredoc", 3, "DL1000", "unexpected 'a'\nexpecting ..."),
            finding("broken", 2, "DL1000", "missing whitespace"),
            finding("odd", 7, "DL1000", "unexpected 'x'"),
        ];
        let views = BTreeMap::from([
            ("heredoc".to_string(), (first[1].clone(), Some(view.clone()))),
            ("broken".to_string(), (first[2].clone(), None)),
            ("odd".to_string(), (first[3].clone(), Some(View { rewrites: vec![], ..view.clone() }))),
        ]);
        // The view puts a blank line after the heredoc: its line 6 is the original's 5.
        let second = vec![finding("heredoc", 2, "DL3018", "pin"), finding("heredoc", 6, "DL3059", "consecutive")];
        let (found, read) = merge(&files, first, &views, &second);
        let got: Vec<(&str, usize, &str)> = found.iter().map(|f| (f.file.as_str(), f.line, f.rule.as_str())).collect();
        assert_eq!(
            got,
            [("ok", 3, "DL3006"), ("heredoc", 2, "DL3018"), ("heredoc", 5, "DL3059"), ("odd", 7, UNPARSED)]
        );
        assert_eq!(read["ok"], Coverage { read: Read::File, rewritten: vec![] });
        assert_eq!((read["heredoc"].read, read["heredoc"].rewritten[0].line), (Read::Rewrite, 2));
        assert_eq!((read["broken"].read, read["odd"].read), (Read::Nothing, Read::Nothing));
        let odd = &found[3];
        assert_eq!(odd.severity, Severity::Warning);
        assert!(
            odd.message
                .starts_with("hadolint's parser can't read the file at line 7 (a form hadolint_view does not rewrite)")
                && odd.message.ends_with("it says: unexpected 'x'"),
            "{}",
            odd.message
        );

        // Still unreadable rewritten: a warning naming the original line and the lines rewritten, no DL1000.
        let views = BTreeMap::from([("heredoc".to_string(), (finding("heredoc", 3, "DL1000", "x"), Some(view)))]);
        let (found, read) =
            merge(&files[1..2], vec![], &views, &[finding("heredoc", 6, "DL1000", "unexpected 'R'\nexpecting")]);
        assert_eq!((found.len(), found[0].line, found[0].rule.as_str()), (1, 5, UNPARSED));
        assert!(found[0].message.contains("even with lines 2-4 rewritten"), "{}", found[0].message);
        assert!(found[0].message.ends_with("it says: unexpected 'R'"), "{}", found[0].message);
        assert_eq!(read["heredoc"].read, Read::Nothing);
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
