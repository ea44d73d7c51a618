//! Linting Dockerfiles: hadolint, `trivy config` and our own policy rules
//! (see [`policy`]) on each Dockerfile, the build context walked with
//! Docker's `.dockerignore` semantics, and one list of findings (file:line,
//! rule, source, severity, message, fix). The tools run in parallel, each
//! one process for every file, bounded by a timeout.

pub mod context;
pub mod hadolint;
pub mod hadolint_view;
pub mod policy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::trivy::{self, Ignores};
pub use super::{Finding, Severity};
use crate::engine::tools::{Tool, HADOLINT, TRIVY};
use crate::model::catalog::Image;
use crate::model::dockerfile;
use policy::{Exception, Subject};

/// One Dockerfile to lint, as one catalog image (or `--file`) builds it.
#[derive(Debug, Clone)]
pub struct Target {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// The catalog image, when it comes from the catalog.
    pub image: Option<String>,
    pub target: Option<String>,
    pub named_contexts: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub arches: Vec<String>,
    pub service: bool,
}

impl Target {
    /// How a catalog image builds its Dockerfile.
    pub fn of(image: &Image) -> Target {
        Target {
            dockerfile: image.dockerfile.clone(),
            context: image.context.clone(),
            image: Some(image.name.clone()),
            target: image.target.clone(),
            named_contexts: image.contexts.keys().cloned().chain(image.needs.iter().cloned()).collect(),
            build_args: image.args.clone(),
            arches: image.platforms.iter().map(|p| p.arch.clone()).collect(),
            service: image.service,
        }
    }

    /// A Dockerfile outside the catalog: built for both architectures, no named contexts.
    pub fn file(dockerfile: PathBuf, context: PathBuf) -> Target {
        Target {
            dockerfile,
            context,
            image: None,
            target: None,
            named_contexts: Vec::new(),
            build_args: BTreeMap::new(),
            arches: vec!["amd64".into(), "arm64".into()],
            service: false,
        }
    }
}

/// What the build context holds, as `docker build` would send it.
#[derive(Debug, Clone, Serialize)]
pub struct ContextSummary {
    pub dir: String,
    pub files: usize,
    pub bytes: u64,
    /// The ignore file in force (`.dockerignore`, or `<Dockerfile>.dockerignore`).
    pub dockerignore: Option<String>,
}

/// Everything found for one Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct FileLint {
    pub file: String,
    /// The catalog images built from it.
    pub images: Vec<String>,
    pub contexts: Vec<ContextSummary>,
    /// Inline exceptions in force.
    pub exceptions: Vec<Exception>,
    pub findings: Vec<Finding>,
    /// What hadolint read of the file: the file, a rewrite (and which lines), or nothing; none when it did not run.
    pub hadolint: Option<hadolint::Coverage>,
}

/// How a tool's run went.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRun {
    pub tool: String,
    pub version: Option<String>,
    pub seconds: f64,
    /// Why it gave no findings, when it failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lint {
    pub files: Vec<FileLint>,
    pub tools: Vec<ToolRun>,
    /// Findings about the tools' configuration (`.hadolint.yaml`).
    pub config: Vec<Finding>,
    /// `.trivyignore.yaml` entries whose date has passed: they ignore nothing.
    pub expired_ignores: Vec<trivy::Ignore>,
}

impl Lint {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.files.iter().flat_map(|f| &f.findings).chain(&self.config)
    }

    /// The part of the lint about `image`'s Dockerfile (with the tools and their configuration).
    pub fn for_image(&self, image: &str) -> Lint {
        Lint {
            files: self.files.iter().filter(|f| f.images.iter().any(|i| i == image)).cloned().collect(),
            ..self.clone()
        }
    }

    /// Why the lint fails: a tool that could not run, or the first error-level finding.
    pub fn failure(&self) -> Option<String> {
        if let Some(e) = self.tools.iter().find_map(|t| t.error.as_deref()) {
            return Some(e.to_string());
        }
        let errors = self.errors();
        self.findings().find(|f| f.severity == Severity::Error).map(|f| {
            format!(
                "{errors} error-level finding{} ({}:{} {}: {}{})",
                if errors == 1 { "" } else { "s" },
                f.file,
                f.line,
                f.rule,
                f.message,
                if errors > 1 { "; …" } else { "" }
            )
        })
    }

    pub fn errors(&self) -> usize {
        self.findings().filter(|f| f.severity == Severity::Error).count()
    }
}

/// A path as the report names it: relative to `root` when inside it.
pub fn display(path: &Path, root: &Path) -> String {
    let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
    if shown.is_empty() {
        ".".into()
    } else {
        shown
    }
}

/// The nearest `name` from `dir` up to `/`.
fn find_up(dir: &Path, name: &str) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(name)).find(|p| p.exists())
}

/// Lints every target: policy and context per target, hadolint and Trivy
/// once for all Dockerfiles, in parallel. A tool that is missing, fails or
/// hangs is recorded in `tools` (and fails the lint); the rest still runs.
pub fn lint(targets: &[Target], root: &Path, timeout: Duration) -> Lint {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for t in targets {
        let name = display(&t.dockerfile, root);
        if !files.iter().any(|(n, _)| *n == name) {
            files.push((name, t.dockerfile.clone()));
        }
    }
    // The tools' configuration, found next to the files or above them.
    let base = targets.first().and_then(|t| t.dockerfile.parent()).unwrap_or(root);
    let hadolint_config = find_up(base, ".hadolint.yaml");
    let ignore_file = find_up(base, ".trivyignore.yaml");
    let mut config = Vec::new();
    let mut tools = Vec::new();
    let ignores = match ignore_file.as_deref().map(|p| Ignores::load(p, trivy::today())).transpose() {
        Ok(i) => i.unwrap_or_default(),
        Err(e) => {
            tools.push(ToolRun { tool: "trivy".into(), version: None, seconds: 0.0, error: Some(format!("{e:#}")) });
            Ignores::default()
        }
    };
    if let Some(path) = hadolint_config.as_deref().filter(|p| p.is_file()) {
        match hadolint::check_config(path, &display(path, root)) {
            Ok(found) => config.extend(found),
            Err(e) => tools.push(ToolRun {
                tool: "hadolint".into(),
                version: None,
                seconds: 0.0,
                error: Some(format!("{e:#}")),
            }),
        }
    }
    let readable: Vec<(String, PathBuf)> = files.iter().filter(|(_, p)| p.is_file()).cloned().collect();
    let tool_files: Vec<String> = readable.iter().map(|(_, p)| p.display().to_string()).collect();
    let mut coverage = BTreeMap::new();
    let (mut lints, hadolint_run, trivy_run) = std::thread::scope(|scope| {
        let hadolint_run = scope.spawn(|| {
            run_tool(&HADOLINT, || {
                let (found, read) = hadolint::run_readable(&tool_files, hadolint_config.as_deref(), timeout)?;
                coverage = read;
                Ok(found)
            })
        });
        let trivy_run = scope.spawn(|| run_tool(&TRIVY, || trivy::config(&readable, &ignores, timeout)));
        let lints: Vec<FileLint> = files.iter().map(|(name, path)| own_checks(name, path, targets, root)).collect();
        (lints, hadolint_run.join().expect("the hadolint thread"), trivy_run.join().expect("the trivy thread"))
    });
    for (run, found) in [hadolint_run, trivy_run] {
        if let Some(found) = found {
            for mut f in found {
                // hadolint names files as given; make them ours.
                if let Some((name, _)) = files.iter().find(|(n, p)| p.display().to_string() == f.file || *n == f.file) {
                    f.file = name.clone();
                }
                if let Some(lint) = lints.iter_mut().find(|l| l.file == f.file) {
                    lint.findings.push(f);
                }
            }
        }
        tools.push(run);
    }
    for (path, read) in coverage {
        let name = files.iter().find(|(_, p)| p.display().to_string() == path).map(|(n, _)| n);
        if let Some(lint) = lints.iter_mut().find(|l| Some(&l.file) == name) {
            lint.hadolint = Some(read);
        }
    }
    for lint in &mut lints {
        lint.findings.sort_by(|a, b| (a.line, a.source, &a.rule).cmp(&(b.line, b.source, &b.rule)));
        lint.findings.dedup();
    }
    Lint { files: lints, tools, config, expired_ignores: ignores.expired().cloned().collect() }
}

fn run_tool(tool: &Tool, run: impl FnOnce() -> anyhow::Result<Vec<Finding>>) -> (ToolRun, Option<Vec<Finding>>) {
    let started = Instant::now();
    let version = match tool.version() {
        Ok(v) => v,
        Err(e) => {
            return (
                ToolRun { tool: tool.name.into(), version: None, seconds: 0.0, error: Some(format!("{e:#}")) },
                None,
            )
        }
    };
    let result = run();
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(found) => (ToolRun { tool: tool.name.into(), version: Some(version), seconds, error: None }, Some(found)),
        Err(e) => {
            (ToolRun { tool: tool.name.into(), version: Some(version), seconds, error: Some(format!("{e:#}")) }, None)
        }
    }
}

/// Our checks of one Dockerfile for every target built from it: parse,
/// policy, inline exceptions, and each target's build context.
fn own_checks(name: &str, path: &Path, targets: &[Target], root: &Path) -> FileLint {
    let mine: Vec<&Target> = targets.iter().filter(|t| t.dockerfile == path).collect();
    let mut lint = FileLint {
        file: name.to_string(),
        images: mine.iter().filter_map(|t| t.image.clone()).collect(),
        contexts: Vec::new(),
        exceptions: Vec::new(),
        findings: Vec::new(),
        hadolint: None,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            lint.findings.push(policy::finding(name, 0, "RLP000", format!("cannot read {}: {e}", path.display())));
            return lint;
        }
    };
    let df = match dockerfile::parse(&text) {
        Ok(df) => df,
        Err(e) => {
            lint.findings.push(policy::finding(name, e.line, "RLP000", e.message));
            return lint;
        }
    };
    let mut findings = Vec::new();
    for t in &mine {
        let subject = Subject {
            path: name.to_string(),
            target: t.target.as_deref(),
            named_contexts: t.named_contexts.clone(),
            build_args: t.build_args.clone(),
            arches: t.arches.clone(),
            service: t.service,
            context: Some(&t.context),
        };
        findings.extend(policy::check(&df, &subject));
        if !lint.contexts.iter().any(|c| c.dir == display(&t.context, root)) {
            let (summary, found) = context_checks(name, path, &t.context, root);
            lint.contexts.extend(summary);
            findings.extend(found);
        }
    }
    let (exceptions, problems) = policy::exceptions(&df, name);
    findings.extend(problems);
    let first = df.instructions.first().map_or(1, |i| i.line);
    lint.exceptions = policy::apply_exceptions(&mut findings, &exceptions, first);
    // Not covering anything is worth saying: a stale exception hides the next real finding.
    let stale: Vec<Exception> = exceptions
        .iter()
        .filter(|e| !lint.exceptions.contains(e))
        .map(|e| Exception { reason: format!("{} (covers nothing now)", e.reason), ..e.clone() })
        .collect();
    lint.exceptions.extend(stale);
    for f in &mut findings {
        if f.line == 0 {
            f.line = first;
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    findings.retain(|f| seen.insert((f.line, f.rule.clone(), f.message.clone())));
    lint.findings = findings;
    lint
}

/// RLP010 and RLP011 on a build context; its summary.
fn context_checks(name: &str, dockerfile: &Path, dir: &Path, root: &Path) -> (Option<ContextSummary>, Vec<Finding>) {
    let mut findings = Vec::new();
    if !dir.is_dir() {
        findings.push(policy::finding(
            name,
            0,
            "RLP010",
            format!("the build context {} is not a directory", dir.display()),
        ));
        return (None, findings);
    }
    // BuildKit prefers <Dockerfile>.dockerignore next to the Dockerfile.
    let (ignore_path, ignore) = match context::Ignore::read(dir, Some(dockerfile)) {
        Ok(Some((path, ignore))) => (Some(path), Some(ignore)),
        Ok(None) => (None, None),
        Err(e) => {
            findings.push(policy::finding(name, 0, "RLP010", format!("{e:#}")));
            (None, None)
        }
    };
    match &ignore {
        None => findings.push(policy::finding(
            name,
            0,
            "RLP010",
            format!("the build context {} has no .dockerignore", display(dir, root)),
        )),
        Some(ignore) => {
            let kept: Vec<&str> = [".git", ".env", "node_modules", "test", "target"]
                .into_iter()
                .filter(|p| !ignore.excludes(p))
                .collect();
            if !kept.is_empty() {
                findings.push(policy::finding(
                    name,
                    0,
                    "RLP010",
                    format!(
                        "the .dockerignore of {} lets {} into the build context",
                        display(dir, root),
                        kept.join(", ")
                    ),
                ));
            }
        }
    }
    match context::walk(dir, ignore.as_ref()) {
        Ok(walked) => {
            for file in walked.files.iter().filter(|f| secret_file(dir, &f.path)) {
                findings.push(policy::finding(
                    name,
                    0,
                    "RLP011",
                    format!(
                        "{} would enter the build context of {} and looks like a secret",
                        file.path,
                        display(dir, root)
                    ),
                ));
            }
            let summary = ContextSummary {
                dir: display(dir, root),
                files: walked.files.len(),
                bytes: walked.bytes,
                dockerignore: ignore_path.map(|p| display(&p, root)),
            };
            (Some(summary), findings)
        }
        Err(e) => {
            findings.push(policy::finding(name, 0, "RLP010", format!("walking the build context: {e:#}")));
            (None, findings)
        }
    }
}

/// Names that hold credentials; `.pem`/`.key` files count when they hold a private key.
pub fn secret_file(context: &Path, rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let env = base == ".env"
        || (base.starts_with(".env.") && !matches!(base, ".env.example" | ".env.sample" | ".env.template"));
    let keys =
        matches!(base, "id_rsa" | "id_dsa" | "id_ecdsa" | "id_ed25519" | ".netrc" | ".git-credentials" | ".pypirc");
    let cloud = rel.ends_with(".aws/credentials")
        || rel.ends_with(".docker/config.json")
        || base == "application_default_credentials.json"
        || base == "credentials.json";
    let key_file = [".pem", ".key", ".p12", ".pfx"].iter().any(|ext| base.ends_with(ext)) && {
        use std::io::Read;
        let mut head = Vec::new();
        std::fs::File::open(context.join(rel)).and_then(|f| f.take(64 * 1024).read_to_end(&mut head)).is_ok()
            && (String::from_utf8_lossy(&head).contains("PRIVATE KEY")
                || base.ends_with(".p12")
                || base.ends_with(".pfx"))
    };
    env || keys || cloud || key_file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_ignore_file_is_read_like_dockerignore() {
        // Before: `<Dockerfile>.dockerignore` went through `read_to_string` (a byte that is not
        // UTF-8 failed the read) and its errors did not name the file; `.dockerignore` did both.
        let patterns: &[u8] = b".git\n.env\nnode_modules\ntest/\ntarget/\nlatin1-\xe9\n";
        for own in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let dockerfile = dir.path().join("Dockerfile.worker");
            std::fs::write(&dockerfile, "FROM scratch\n").unwrap();
            let ignore_name = if own { "Dockerfile.worker.dockerignore" } else { ".dockerignore" };
            std::fs::write(dir.path().join(ignore_name), patterns).unwrap();
            let (summary, findings) = context_checks("w", &dockerfile, dir.path(), dir.path());
            assert!(findings.is_empty(), "{ignore_name}: {findings:?}");
            assert_eq!(summary.unwrap().dockerignore.as_deref(), Some(ignore_name));

            std::fs::write(dir.path().join(ignore_name), "ok\n[\n").unwrap();
            let (_, findings) = context_checks("w", &dockerfile, dir.path(), dir.path());
            let message = &findings.first().unwrap_or_else(|| panic!("{ignore_name}: no finding")).message;
            assert!(
                message.starts_with("parsing ") && message.contains(&format!("{ignore_name}: line 2: ")),
                "{message}"
            );
        }
    }

    #[test]
    fn secret_looking_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.key"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        for secret in
            [".env", "config/.env.production", "home/.ssh/id_ed25519", "home/.aws/credentials", "server.key", ".netrc"]
        {
            assert!(secret_file(dir.path(), secret), "{secret}");
        }
        for fine in [".env.example", "id_ed25519.pub", "ca.pem", "docs/credentials.md", "environment"] {
            assert!(!secret_file(dir.path(), fine), "{fine}");
        }
    }
}
