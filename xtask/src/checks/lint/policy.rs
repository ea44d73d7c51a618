//! Our container policy, where hadolint and Trivy don't reach: each rule a
//! stable id, a message and the fix. Pure: a parsed Dockerfile and what the
//! catalog says of the image in, findings out.
//!
//! | id | rule |
//! |---|---|
//! | RLP000 | the Dockerfile parses as BuildKit reads it |
//! | RLP001 | every `FROM` of an external image is pinned by digest |
//! | RLP002 | the final stage of a multi-stage build holds no build tools |
//! | RLP003 | OS package installs come before the application `COPY`s of a stage |
//! | RLP004 | the final stage runs as a non-root user (UID >= 1000) |
//! | RLP005 | no secret-looking `ENV`/`ARG` holding a value |
//! | RLP006 | no `ADD` of a remote URL without `--checksum` |
//! | RLP007 | no `COPY`/`ADD` of a directory among several sources |
//! | RLP008 | a `HEALTHCHECK` where the catalog marks the image a service |
//! | RLP009 | `WORKDIR` is absolute |
//! | RLP010 | a `.dockerignore` that leaves out `.git`, `.env`, `node_modules`, `test/`, `target/` |
//! | RLP011 | no secret-looking file in the build context |
//! | RLP012 | every inline exception names a rule and says why |
//! | RLP013 | no RUN that reaches the final image runs a download unverified (`curl … \| sh`) |

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::checks::{Finding, Severity, Source};
use crate::model::build::{self, Action, Copy, Model, Options, StageModel, Step};
use crate::model::dockerfile::{self, Dockerfile};

/// A rule: its id, what it asks, and how to fix a finding.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    pub fix: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule { id: "RLP000", title: "The Dockerfile must parse", fix: "fix the line the message names" },
    Rule {
        id: "RLP001",
        title: "External base images are pinned by digest",
        fix: "pin it as NAME:TAG@sha256:DIGEST (`cargo xtask image pin` keeps pins current)",
    },
    Rule {
        id: "RLP002",
        title: "The final stage holds no build tools",
        fix: "install and use build tools (compilers, pip, uv) in a builder stage, \
              copy only the results into the final stage, and clean package-manager caches in the same RUN",
    },
    Rule {
        id: "RLP003",
        title: "Package installs come before application files",
        fix: "move the package install above the COPY of application files, so a code change reuses the package layer",
    },
    Rule {
        id: "RLP004",
        title: "The final stage runs as a non-root user",
        fix: "create a user with UID >= 1000 and end the stage with `USER 1000:1000` (numeric, so runtimes can verify it)",
    },
    Rule {
        id: "RLP005",
        title: "No secrets in ENV or ARG",
        fix: "pass secrets at run time (environment, mounted files) or at build time with `RUN --mount=type=secret`",
    },
    Rule {
        id: "RLP006",
        title: "No ADD of a remote URL without a checksum",
        fix: "add `--checksum=sha256:…` to the ADD, or download in a RUN that verifies what it fetched",
    },
    Rule {
        id: "RLP007",
        title: "No COPY of directories among several sources",
        fix: "copy each directory on its own (`COPY dir/ /dest/dir/`): with several sources a directory's contents, \
              not the directory, land in the destination",
    },
    Rule {
        id: "RLP008",
        title: "Services declare a HEALTHCHECK",
        fix: "add `HEALTHCHECK CMD …` to the final stage (the catalog marks this image `service = true`)",
    },
    Rule { id: "RLP009", title: "WORKDIR is absolute", fix: "write WORKDIR as an absolute path" },
    Rule {
        id: "RLP010",
        title: "The build context has a .dockerignore",
        fix: "add a .dockerignore to the build context that leaves out .git, .env, node_modules, test/ and target/",
    },
    Rule {
        id: "RLP011",
        title: "No secret-looking files in the build context",
        fix: "move the file out of the build context, or leave it out in .dockerignore",
    },
    Rule {
        id: "RLP012",
        title: "Inline exceptions name a rule and say why",
        fix: "write `# ralph-lint ignore=RLP00N: why this instruction is the exception` on the line before it",
    },
    Rule {
        id: "RLP013",
        title: "No remote code piped into a shell",
        fix: "download to a file, verify it against a pinned checksum (`echo \"SHA256  file\" | sha256sum -c -`), \
              then run it",
    },
];

pub fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).expect("a rule we define")
}

/// A finding of one of our rules.
pub fn finding(file: &str, line: usize, id: &str, message: String) -> Finding {
    let r = rule(id);
    Finding {
        file: file.to_string(),
        line,
        rule: id.to_string(),
        source: Source::Ralph,
        severity: Severity::Error,
        message,
        fix: r.fix.to_string(),
    }
}

/// What the policy needs to know besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    /// The Dockerfile as the report names it.
    pub path: String,
    /// The stage that is built (`target`); the last one when `None`.
    pub target: Option<&'a str>,
    /// Named build contexts (`--build-context NAME=…`, catalog `contexts` and `needs`): not external images.
    pub named_contexts: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// Architectures it is built for (`amd64`, `arm64`): `TARGETARCH` takes each.
    pub arches: Vec<String>,
    /// The catalog marks it a service: it must have a HEALTHCHECK.
    pub service: bool,
    /// The build context, to tell directories from files in COPY sources.
    pub context: Option<&'a Path>,
}

/// Every instruction-level rule (RLP001 to RLP009, RLP013) on a parsed Dockerfile. The rules read the
/// model of what BuildKit builds ([`build::evaluate`]), never the raw text.
pub fn check(df: &Dockerfile, subject: &Subject<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let arches = if subject.arches.is_empty() { vec!["amd64".to_string()] } else { subject.arches.clone() };
    // The build as each platform sees it (a FROM may name `tini-${TARGETARCH}`).
    let mut models: Vec<Model> = Vec::new();
    for arch in &arches {
        let mut args = subject.build_args.clone();
        args.entry("TARGETARCH".into()).or_insert_with(|| arch.clone());
        args.entry("TARGETOS".into()).or_insert_with(|| "linux".into());
        args.entry("TARGETPLATFORM".into()).or_insert_with(|| format!("linux/{arch}"));
        args.entry("BUILDARCH".into()).or_insert_with(|| "amd64".into());
        args.entry("BUILDOS".into()).or_insert_with(|| "linux".into());
        args.entry("BUILDPLATFORM".into()).or_insert_with(|| "linux/amd64".into());
        let options = Options { build_args: &args, target: subject.target, base_config: &|_| None };
        match build::evaluate(df, &options) {
            Ok(model) if model.stages.is_empty() => {
                out.push(finding(&subject.path, 1, "RLP000", "it has no FROM instruction".into()));
                return out;
            }
            Ok(model) => models.push(model),
            Err(e) => {
                let message = match (subject.target, e.message.starts_with("target stage")) {
                    (Some(target), true) => format!("it has no stage named `{target}` (the catalog's target)"),
                    _ => e.message,
                };
                out.push(finding(&subject.path, e.line, "RLP000", message));
                return out;
            }
        }
    }
    let Some(model) = models.first() else { return out };
    for m in &models {
        pinned_bases(m, subject, &mut out);
    }
    dedup(&mut out);
    if model.stages.len() > 1 {
        build_tools(model, subject, &mut out);
    }
    for stage in &model.stages {
        package_order(stage, subject, &mut out);
    }
    user(model, subject, &mut out);
    let steps = model.globals.iter().chain(model.stages.iter().flat_map(|s| s.steps.iter()));
    for step in steps {
        secrets(step, subject, &mut out);
        remote_add(step, subject, &mut out);
        copies(step, subject, &mut out);
        workdir(step, subject, &mut out);
    }
    remote_code(model, subject, &mut out);
    if subject.service {
        healthcheck(model, subject, &mut out);
    }
    dedup(&mut out);
    out.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    out
}

fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.line, f.rule.clone(), f.message.clone())));
}

fn stage_label(stage: &StageModel, index: usize) -> String {
    stage.name.clone().unwrap_or_else(|| format!("number {}", index + 1))
}

/// RLP001: `NAME[:TAG]@sha256:<64 hex>` unless scratch, a stage or a named context.
fn pinned_bases(model: &Model, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    for stage in model.stages.iter().filter(|s| s.parent.is_none()) {
        let base = stage.base.as_str();
        if base.is_empty() {
            out.push(finding(
                &subject.path,
                stage.stage.line,
                "RLP001",
                format!("FROM {} resolves to nothing: give the ARG a default", stage.stage.base_raw),
            ));
            continue;
        }
        if base == "scratch" || subject.named_contexts.iter().any(|c| c == base) {
            continue;
        }
        if !is_digest_pinned(base) {
            out.push(finding(
                &subject.path,
                stage.stage.line,
                "RLP001",
                format!("base image `{base}` is not pinned by digest"),
            ));
        }
    }
}

pub fn is_digest_pinned(reference: &str) -> bool {
    reference
        .split_once("@sha256:")
        .is_some_and(|(name, hex)| !name.is_empty() && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A RUN's shell scripts as one text (shell form, heredoc bodies, an exec form's `sh -c` script); an exec
/// form that runs no shell, as its words.
pub fn run_text(step: &Step) -> String {
    match &step.action {
        Action::Run { exec: Some(argv), .. } if step.scripts().is_empty() => argv.join(" "),
        _ => step.scripts().join("\n"),
    }
}

/// A package-manager install in a command, and what it installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub manager: &'static str,
    pub packages: Vec<String>,
}

const OS_MANAGERS: &[(&str, &[&str], &str)] = &[
    ("apt-get", &["install"], "apt"),
    ("apt", &["install"], "apt"),
    ("apk", &["add"], "apk"),
    ("dnf", &["install"], "dnf"),
    ("microdnf", &["install"], "dnf"),
    ("yum", &["install"], "yum"),
    ("zypper", &["install", "in"], "zypper"),
];

/// Simple commands of a shell text: split at `&&`, `||`, `;`, `|` and newlines.
fn simple_commands(text: &str) -> Vec<Vec<String>> {
    pipelines(text).into_iter().flatten().collect()
}

/// The pipelines of a shell text, each a list of its simple commands' words: split at `&&`, `||`, `;`, `&`
/// and newlines, then at `|`.
fn pipelines(text: &str) -> Vec<Vec<Vec<String>>> {
    // `2>&1` and `<&3` are redirections, not `&`.
    let flat = text.replace("\\\n", " ").replace(">&", "> ").replace("<&", "< ").replace("||", ";").replace("&&", ";");
    let words = |part: &str| -> Vec<String> {
        part.split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\'' || c == '(' || c == ')').to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    flat.split(['\n', ';', '&'])
        .map(|list| list.split('|').map(words).filter(|w| !w.is_empty()).collect::<Vec<_>>())
        .filter(|p: &Vec<Vec<String>>| !p.is_empty())
        .collect()
}

/// A command's program, past `VAR=value` assignments and wrappers (`sudo -E`, `env -i`, `exec`), without its
/// directory; and its arguments.
fn program(words: &[String]) -> Option<(&str, &[String])> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w.contains('=') && !w.starts_with('-') {
            i += 1;
        } else if matches!(w.as_str(), "sudo" | "env" | "exec" | "nohup" | "command") {
            i += 1;
            while words.get(i).is_some_and(|w| w.starts_with('-')) {
                i += 1;
            }
        } else {
            let first = w.as_str();
            return Some((first.rsplit('/').next().unwrap_or(first), &words[i + 1..]));
        }
    }
    None
}

/// The OS package installs in a command.
pub fn os_installs(text: &str) -> Vec<Install> {
    let mut out = Vec::new();
    for words in simple_commands(text) {
        let Some((program, rest)) = program(&words) else { continue };
        for (name, verbs, manager) in OS_MANAGERS {
            if program != *name {
                continue;
            }
            let Some(pos) = rest.iter().position(|w| verbs.contains(&w.as_str())) else { continue };
            let packages = rest[pos + 1..]
                .iter()
                .filter(|w| !w.starts_with('-'))
                .map(|w| w.split(['=', '~']).next().unwrap_or(w).to_string())
                .filter(|w| !w.is_empty())
                .collect();
            out.push(Install { manager, packages });
        }
    }
    out
}

/// Packages that are build tools: compilers, build systems, headers, pip.
const BUILD_PACKAGES: &[&str] = &[
    "gcc",
    "g++",
    "gcc-c++",
    "clang",
    "llvm",
    "make",
    "cmake",
    "ninja-build",
    "build-essential",
    "build-base",
    "musl-dev",
    "libc-dev",
    "libc6-dev",
    "glibc-devel",
    "golang",
    "go",
    "rustc",
    "cargo",
    "python3-pip",
    "python3.11-pip",
    "py3-pip",
    "python-pip",
    "python3-dev",
    "python3-devel",
    "autoconf",
    "automake",
    "libtool",
];

/// What in a RUN leaves build tools or caches in its stage, said in words.
pub fn build_tool_uses(step: &Step) -> Vec<String> {
    let Action::Run { mounts, .. } = &step.action else { return Vec::new() };
    let text = run_text(step);
    let mut found = Vec::new();
    let cache_mounts: Vec<&String> = mounts.iter().filter(|v| v.contains("type=cache")).collect();
    let cached = |dir: &str| cache_mounts.iter().any(|m| m.contains(dir));
    for install in os_installs(&text) {
        let tools: Vec<&String> =
            install.packages.iter().filter(|p| BUILD_PACKAGES.contains(&p.to_ascii_lowercase().as_str())).collect();
        if !tools.is_empty() {
            found.push(format!("installs {}", tools.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")));
        }
        let cleaned = match install.manager {
            "apt" => text.contains("/var/lib/apt/lists") || cached("/var/lib/apt"),
            "apk" => text.contains("--no-cache") || text.contains("/var/cache/apk") || cached("/var/cache/apk"),
            "dnf" | "yum" => {
                text.contains("clean all")
                    || text.contains("/var/cache/dnf")
                    || text.contains("/var/cache/yum")
                    || cached("/var/cache")
            }
            _ => text.contains("clean"),
        };
        if !cleaned {
            found.push(format!("leaves the {} package cache in the layer", install.manager));
        }
    }
    for words in simple_commands(&text) {
        let Some((program, rest)) = program(&words) else { continue };
        let pip = matches!(program, "pip" | "pip3")
            || (program.starts_with("python") && rest.windows(2).any(|w| w[0] == "-m" && w[1] == "pip"));
        if pip && rest.iter().any(|w| w == "install") {
            found.push("runs pip install".into());
        }
        if program == "uv" {
            found.push("runs uv".into());
        }
    }
    found
}

/// RLP002: in the final stage and the stages it is built on (their `ONBUILD` triggers included), no RUN that
/// installs or uses build tools or leaves a package cache, and no COPY of uv or pip.
fn build_tools(model: &Model, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let target = &model.stages[model.target];
    let final_name = stage_label(target, model.target);
    for step in model.final_steps() {
        let mut uses = build_tool_uses(step);
        if let Action::Copy(copy) = &step.action {
            if copy
                .sources
                .iter()
                .any(|s| matches!(s.trim_end_matches('/').rsplit('/').next(), Some("uv" | "uvx" | "pip" | "pip3")))
            {
                uses.push("copies uv or pip in".into());
            }
        }
        if uses.is_empty() {
            continue;
        }
        let trigger = if step.trigger { " (an ONBUILD trigger)" } else { "" };
        if step.stage == model.target {
            out.push(finding(
                &subject.path,
                step.line,
                "RLP002",
                format!("the final stage `{final_name}`{trigger} {}", uses.join("; ")),
            ));
        } else {
            out.push(finding(
                &subject.path,
                target.stage.line,
                "RLP002",
                format!(
                    "the final stage `{final_name}` is built on stage `{}`, whose {}{trigger} at line {} {}",
                    stage_label(&model.stages[step.stage], step.stage),
                    step.keyword,
                    step.line,
                    uses.join("; ")
                ),
            ));
        }
    }
}

/// A COPY/ADD from the build context (not another stage, image or named context, not a heredoc).
fn from_context(copy: &Copy) -> bool {
    copy.from.is_none() && copy.heredocs.is_empty()
}

/// RLP003: within a stage, OS package installs before the first COPY of application files.
fn package_order(stage: &StageModel, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let mut first_copy: Option<&Step> = None;
    for step in &stage.steps {
        match &step.action {
            Action::Copy(copy)
                if first_copy.is_none() && from_context(copy) && !copy.sources.iter().all(|s| is_url(s)) =>
            {
                first_copy = Some(step);
            }
            Action::Run { .. } => {
                if let (Some(copy), Some(install)) = (first_copy, os_installs(&run_text(step)).first()) {
                    out.push(finding(
                        &subject.path,
                        step.line,
                        "RLP003",
                        format!(
                            "an OS package install ({}) comes after the COPY of application files at line {}",
                            install.manager, copy.line
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// RLP004: the USER the final stage ends with (set in the stages it is built on or by an `ONBUILD` trigger
/// included) is numeric >= 1000, or a name the file creates with such a UID.
fn user(model: &Model, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let last_user = model.final_steps().filter(|s| matches!(s.action, Action::User(_))).last();
    let Some(step) = last_user else {
        out.push(finding(
            &subject.path,
            model.stages[model.target].stage.line,
            "RLP004",
            "the final stage sets no USER, so it runs as root".into(),
        ));
        return;
    };
    let Action::User(value) = &step.action else { return };
    let trigger = if step.trigger { " (an ONBUILD trigger)" } else { "" };
    let name = value.split(':').next().unwrap_or("").trim().to_string();
    let verdict = match name.parse::<u64>() {
        Ok(uid) if uid >= 1000 => None,
        Ok(uid) => Some(format!("USER {value}{trigger} runs as UID {uid}, below 1000")),
        Err(_) if name.is_empty() || name == "root" => Some(format!("USER {value}{trigger} is root")),
        Err(_) => match created_uid(model, &name) {
            Some(uid) if uid >= 1000 => None,
            Some(uid) => Some(format!("USER {value}{trigger} is created with UID {uid}, below 1000")),
            None => Some(format!("USER {value}{trigger} is a name this Dockerfile doesn't create with a UID >= 1000")),
        },
    };
    if let Some(message) = verdict {
        out.push(finding(&subject.path, step.line, "RLP004", message));
    }
}

/// The UID a RUN of this file gives user `name` (`useradd -u N name`, `adduser -u N … name`).
fn created_uid(model: &Model, name: &str) -> Option<u64> {
    for step in model.stages.iter().flat_map(|s| s.steps.iter()) {
        let Action::Run { vars, .. } = &step.action else { continue };
        // The shell expands `--uid "${UID}"` with the stage's ARGs and ENV.
        let text = run_text(step);
        let text = dockerfile::expand(&text, &|k| vars.get(k).cloned(), '\\').unwrap_or(text);
        for words in simple_commands(&text) {
            let Some((program, rest)) = program(&words) else { continue };
            if !matches!(program, "useradd" | "adduser") || rest.last().map(String::as_str) != Some(name) {
                continue;
            }
            let uid =
                rest.windows(2).find_map(|w| (w[0] == "-u" || w[0] == "--uid").then(|| w[1].parse().ok()).flatten());
            let uid = uid.or_else(|| rest.iter().find_map(|w| w.strip_prefix("--uid=").and_then(|v| v.parse().ok())));
            if uid.is_some() {
                return uid;
            }
        }
    }
    None
}

const SECRET_WORDS: &[&str] =
    &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL"];

/// Whether a variable name looks like it holds a secret (`*_FILE`, `*_PATH`
/// and `*_DIR` name where a secret is, not the secret).
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w)) && !["_FILE", "_PATH", "_DIR"].iter().any(|s| upper.ends_with(s))
}

/// RLP005: an ENV or ARG whose name looks secret and that holds a value.
fn secrets(step: &Step, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let pairs: Vec<(&String, Option<&String>)> = match &step.action {
        Action::Env(kv) => kv.iter().map(|(k, v)| (k, Some(v))).collect(),
        Action::Arg(kv) => kv.iter().map(|(k, v)| (k, v.as_ref())).collect(),
        _ => return,
    };
    for (key, value) in pairs {
        if secret_name(key) && value.is_some_and(|v| !v.is_empty()) {
            out.push(finding(
                &subject.path,
                step.line,
                "RLP005",
                format!("{} {key} holds a value: it stays in the image's config and history", step.keyword),
            ));
        }
    }
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("git@")
        || lower.starts_with("ssh://")
}

/// RLP006: ADD of a URL (after expansion) without `--checksum`.
fn remote_add(step: &Step, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let Action::Copy(copy) = &step.action else { return };
    if !copy.add || copy.checksum {
        return;
    }
    for source in copy.sources.iter().filter(|s| is_url(s)) {
        out.push(finding(&subject.path, step.line, "RLP006", format!("ADD fetches {source} without verifying it")));
    }
}

/// The context paths a wildcard source matches, with whether each is a directory.
fn wildcard_matches(context: &Path, pattern: &str) -> Vec<(String, bool)> {
    let pattern = build::clean_path(pattern).trim_start_matches('/').to_string();
    let depth = pattern.split('/').count();
    walkdir::WalkDir::new(context)
        .min_depth(depth)
        .max_depth(depth)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let rel = e.path().strip_prefix(context).ok()?.to_string_lossy().replace('\\', "/");
            build::glob_path(&pattern, &rel).then(|| (rel, e.file_type().is_dir()))
        })
        .collect()
}

/// RLP007: several sources (a wildcard's matches counted each) of which one is a directory (in the context:
/// a directory there; elsewhere: written with a trailing `/`).
fn copies(step: &Step, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let Action::Copy(copy) = &step.action else { return };
    let context = subject.context.filter(|_| from_context(copy));
    let mut sources: Vec<(String, bool)> = Vec::new();
    for s in copy.sources.iter().filter(|s| !is_url(s)) {
        match context {
            Some(c) if s.contains(['*', '?', '[']) => sources.extend(wildcard_matches(c, s)),
            Some(c) => sources.push((s.clone(), s.ends_with('/') || c.join(s.trim_start_matches('/')).is_dir())),
            None => sources.push((s.clone(), s.ends_with('/'))),
        }
    }
    if sources.len() + copy.heredocs.len() < 2 {
        return;
    }
    let dirs: Vec<&str> = sources.iter().filter(|(_, dir)| *dir).map(|(s, _)| s.as_str()).collect();
    if !dirs.is_empty() {
        out.push(finding(
            &subject.path,
            step.line,
            "RLP007",
            format!(
                "{} copies {} with other sources into one destination: the contents of {} land there, not the directory",
                step.keyword,
                dirs.join(", "),
                if dirs.len() == 1 { "it" } else { "each" }
            ),
        ));
    }
}

/// RLP009: WORKDIR, expanded and unquoted as BuildKit reads it, starts with `/`.
fn workdir(step: &Step, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let Action::Workdir { written, .. } = &step.action else { return };
    if !written.starts_with('/') {
        out.push(finding(
            &subject.path,
            step.line,
            "RLP009",
            format!("WORKDIR {written} is relative: it depends on the WORKDIR before it"),
        ));
    }
}

/// RLP008: a HEALTHCHECK (not NONE) in the image the final stage makes.
fn healthcheck(model: &Model, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let none = model.config().healthcheck.as_ref().is_none_or(|t| t.first().map(String::as_str) == Some("NONE"));
    if none {
        out.push(finding(
            &subject.path,
            model.stages[model.target].stage.line,
            "RLP008",
            "the catalog marks this image a service, and its final stage declares no HEALTHCHECK".into(),
        ));
    }
}

const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch"];
const INTERPRETERS: &[&str] =
    &["sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "python", "python3", "python2", "perl", "ruby", "node", "php"];

/// Where a shell script runs what it downloads: `curl … | sh`, `sh -c "$(curl …)"`, `bash <(wget …)`. The
/// downloader and the interpreter, for the message.
pub fn remote_pipes(script: &str) -> Vec<(String, String)> {
    let is = |list: &[&str], p: &str| list.contains(&p) || (p.starts_with("python") && list.contains(&"python"));
    let mut found = Vec::new();
    for pipeline in pipelines(script) {
        let programs: Vec<&str> = pipeline.iter().filter_map(|c| program(c).map(|(p, _)| p)).collect();
        if let Some(d) = programs.iter().position(|p| is(DOWNLOADERS, p)) {
            if let Some(i) = programs[d + 1..].iter().find(|p| is(INTERPRETERS, p)) {
                found.push((programs[d].to_string(), i.to_string()));
            }
        }
    }
    // Command or process substitution handed to an interpreter.
    let flat = script.replace("\\\n", " ");
    for (open, _) in flat.match_indices("$(").chain(flat.match_indices("<(")) {
        let inner = flat[open + 2..].split(')').next().unwrap_or("");
        let Some(downloader) = inner.split_whitespace().next().map(|w| w.rsplit('/').next().unwrap_or(w)) else {
            continue;
        };
        if !DOWNLOADERS.contains(&downloader) {
            continue;
        }
        let before = flat[..open].rsplit(['\n', ';', '&', '|']).next().unwrap_or("");
        let words: Vec<String> = before.split_whitespace().map(str::to_string).collect();
        if let Some((interpreter, _)) = program(&words).filter(|(p, _)| is(INTERPRETERS, p)) {
            found.push((downloader.to_string(), interpreter.to_string()));
        }
    }
    found
}

/// RLP013: no RUN of a stage whose work reaches the final image hands a download to a shell or interpreter.
fn remote_code(model: &Model, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    for index in model.reaching() {
        for step in &model.stages[index].steps {
            for script in step.scripts() {
                for (downloader, interpreter) in remote_pipes(&script) {
                    out.push(finding(
                        &subject.path,
                        step.line,
                        "RLP013",
                        format!(
                            "RUN in stage `{}` runs what {downloader} downloads with {interpreter}, unverified",
                            stage_label(&model.stages[index], index)
                        ),
                    ));
                }
            }
        }
    }
}

/// An inline exception: `# ralph-lint ignore=RLP004,RLP010: why`. It
/// covers the instruction after it; before a `FROM`, the whole stage (and,
/// before the first one, the file-level findings: the build context's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exception {
    pub file: String,
    /// The comment's line.
    pub line: usize,
    /// The line of the instruction it applies to.
    pub applies_to: usize,
    /// The last line it covers.
    pub until: usize,
    pub rules: Vec<String>,
    pub reason: String,
}

/// The inline exceptions of a Dockerfile, and findings for malformed ones (RLP012).
pub fn exceptions(df: &Dockerfile, path: &str) -> (Vec<Exception>, Vec<Finding>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for comment in &df.comments {
        let Some(rest) = comment.text.strip_prefix("ralph-lint") else { continue };
        let Some(rest) = rest.trim_start().strip_prefix("ignore=") else {
            problems.push(finding(
                path,
                comment.line,
                "RLP012",
                format!("`# {}` is not `ralph-lint ignore=RLP00N: reason`", comment.text),
            ));
            continue;
        };
        let (ids, reason) = rest.split_once(':').map_or((rest, ""), |(ids, reason)| (ids, reason.trim()));
        let rules: Vec<String> = ids.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if let Some(unknown) = rules.iter().find(|r| !RULES.iter().any(|known| known.id == r.as_str())) {
            problems.push(finding(
                path,
                comment.line,
                "RLP012",
                format!("the exception names `{unknown}`, which is not a ralph-lint rule"),
            ));
            continue;
        }
        if rules.is_empty() || reason.is_empty() {
            problems.push(finding(
                path,
                comment.line,
                "RLP012",
                "the exception says no rule or no reason, so it is not in force".into(),
            ));
            continue;
        }
        let Some(next) = df.instructions.iter().find(|i| i.line > comment.line) else {
            problems.push(finding(
                path,
                comment.line,
                "RLP012",
                "the exception is not followed by an instruction".into(),
            ));
            continue;
        };
        let until = if next.keyword == "FROM" {
            df.instructions
                .iter()
                .find(|i| i.line > next.line && i.keyword == "FROM")
                .map_or(usize::MAX, |i| i.line - 1)
        } else {
            next.end_line
        };
        found.push(Exception {
            file: path.to_string(),
            line: comment.line,
            applies_to: next.line,
            until,
            rules,
            reason: reason.to_string(),
        });
    }
    (found, problems)
}

/// Findings an exception covers are taken out; the exceptions that covered
/// something are returned (the report lists them).
pub fn apply_exceptions(
    findings: &mut Vec<Finding>,
    exceptions: &[Exception],
    first_instruction: usize,
) -> Vec<Exception> {
    let mut used = vec![false; exceptions.len()];
    findings.retain(|f| {
        // File-level findings (line 0, the context's) belong to the first instruction.
        let line = if f.line == 0 { first_instruction } else { f.line };
        let covers = |e: &Exception| (e.applies_to..=e.until).contains(&line) && e.rules.contains(&f.rule);
        match exceptions.iter().position(|e| covers(e) && f.source == Source::Ralph) {
            Some(i) => {
                used[i] = true;
                false
            }
            None => true,
        }
    });
    exceptions.iter().zip(used).filter(|(_, u)| *u).map(|(e, _)| e.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipes(script: &str) -> Vec<(String, String)> {
        remote_pipes(script)
    }

    fn pair(d: &str, i: &str) -> Vec<(String, String)> {
        vec![(d.to_string(), i.to_string())]
    }

    #[test]
    fn remote_code_into_an_interpreter_is_found_in_every_form() {
        assert_eq!(pipes("curl -fsSL https://x/i.sh | sh"), pair("curl", "sh"));
        assert_eq!(pipes("set -e; wget -qO- https://x | sudo -E bash -s -- --yes"), pair("wget", "bash"));
        assert_eq!(pipes("curl -sSL https://x 2>&1 | python3 -"), pair("curl", "python3"));
        assert_eq!(pipes("apk add curl && \\\n  curl https://x \\\n  | /bin/ash"), pair("curl", "ash"));
        assert_eq!(pipes("sh -c \"$(curl -fsSL https://x)\""), pair("curl", "sh"));
        assert_eq!(pipes("bash <(wget -qO- https://x)"), pair("wget", "bash"));
        assert_eq!(pipes("curl https://x | tee /tmp/log | perl"), pair("curl", "perl"));
    }

    #[test]
    fn near_misses_are_not_remote_code() {
        // Downloaded, verified, then run; piped into tar; `||` is no pipe; an echo of a substitution.
        assert!(pipes("curl -fsSLo /tmp/i.sh https://x && echo \"abc  /tmp/i.sh\" | sha256sum -c - && sh /tmp/i.sh")
            .is_empty());
        assert!(pipes("curl -Ls https://x/a.tgz | tar xzv").is_empty());
        assert!(pipes("curl -f https://x || sh -c 'echo failed'").is_empty());
        assert!(pipes("echo \"$(curl -s https://x/version)\" > /v").is_empty());
        assert!(pipes("cat script.sh | sh").is_empty());
    }

    #[test]
    fn package_installs_and_build_tools_are_read_from_the_script() {
        let installs =
            os_installs("DEBIAN_FRONTEND=noninteractive apt-get install -y gcc=4:12 make\napk add --no-cache musl-dev");
        assert_eq!(
            installs,
            [
                Install { manager: "apt", packages: vec!["gcc".into(), "make".into()] },
                Install { manager: "apk", packages: vec!["musl-dev".into()] },
            ]
        );
        assert_eq!(
            program(&["A=1".into(), "sudo".into(), "/usr/bin/pip3".into(), "install".into()]).unwrap().0,
            "pip3"
        );
    }
}
