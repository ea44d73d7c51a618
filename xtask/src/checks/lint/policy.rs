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

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::checks::{Finding, Severity, Source};
use crate::model::dockerfile::{self, Args, Dockerfile, Instruction, Stage};

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
        fix: "install and use build tools (compilers, pip, uv, curl | sh installers) in a builder stage, \
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

/// Every instruction-level rule (RLP001 to RLP009) on a parsed Dockerfile.
pub fn check(df: &Dockerfile, subject: &Subject<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let arches = if subject.arches.is_empty() { vec!["amd64".to_string()] } else { subject.arches.clone() };
    // The stages as each platform sees them (a FROM may name `tini-${TARGETARCH}`).
    let mut per_arch: Vec<Vec<Stage>> = Vec::new();
    for arch in &arches {
        let mut args = subject.build_args.clone();
        args.entry("TARGETARCH".into()).or_insert_with(|| arch.clone());
        args.entry("TARGETOS".into()).or_insert_with(|| "linux".into());
        args.entry("TARGETPLATFORM".into()).or_insert_with(|| format!("linux/{arch}"));
        args.entry("BUILDARCH".into()).or_insert_with(|| "amd64".into());
        args.entry("BUILDPLATFORM".into()).or_insert_with(|| "linux/amd64".into());
        match df.stages(&args) {
            Ok(stages) => per_arch.push(stages),
            Err(e) => {
                out.push(finding(&subject.path, e.line, "RLP000", e.message));
                return out;
            }
        }
    }
    let Some(stages) = per_arch.first() else { return out };
    if stages.is_empty() {
        out.push(finding(&subject.path, 1, "RLP000", "it has no FROM instruction".into()));
        return out;
    }
    for stages in &per_arch {
        pinned_bases(df, stages, subject, &mut out);
    }
    dedup(&mut out);
    let final_index = match subject.target {
        Some(target) => match stages.iter().position(|s| s.name.as_deref() == Some(&target.to_ascii_lowercase())) {
            Some(i) => i,
            None => {
                out.push(finding(
                    &subject.path,
                    1,
                    "RLP000",
                    format!("it has no stage named `{target}` (the catalog's target)"),
                ));
                return out;
            }
        },
        None => stages.len() - 1,
    };
    let chain = ancestry(stages, final_index);
    if stages.len() > 1 {
        build_tools(df, stages, &chain, subject, &mut out);
    }
    for stage in stages {
        package_order(df, stage, subject, &mut out);
    }
    user(df, stages, &chain, subject, &mut out);
    for (i, ins) in df.instructions.iter().enumerate() {
        secrets(ins, subject, &mut out);
        remote_add(ins, subject, &mut out);
        copies(df, stages, i, ins, subject, &mut out);
        workdir(ins, subject, &mut out);
    }
    if subject.service {
        healthcheck(df, stages, &chain, subject, &mut out);
    }
    out.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    out
}

fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.line, f.rule.clone(), f.message.clone())));
}

/// The stages `index` is built on, itself first: FROM another stage makes it part of the image.
fn ancestry(stages: &[Stage], index: usize) -> Vec<usize> {
    let mut chain = vec![index];
    let mut current = index;
    while let Some(parent) =
        stages[..current].iter().rposition(|s| s.name.as_deref() == Some(stages[current].base.as_str()))
    {
        chain.push(parent);
        current = parent;
    }
    chain
}

fn is_stage(stages: &[Stage], before: usize, name: &str) -> bool {
    stages[..before].iter().any(|s| s.name.as_deref() == Some(name))
}

/// RLP001: `NAME[:TAG]@sha256:<64 hex>` unless scratch, a stage or a named context.
fn pinned_bases(df: &Dockerfile, stages: &[Stage], subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let _ = df;
    for stage in stages {
        let base = stage.base.as_str();
        if base.is_empty() {
            out.push(finding(
                &subject.path,
                stage.line,
                "RLP001",
                format!("FROM {} resolves to nothing: give the ARG a default", stage.base_raw),
            ));
            continue;
        }
        let lower = base.to_ascii_lowercase();
        if lower == "scratch"
            || is_stage(stages, stage.index, &lower)
            || subject.named_contexts.iter().any(|c| c == base)
        {
            continue;
        }
        if !is_digest_pinned(base) {
            out.push(finding(
                &subject.path,
                stage.line,
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

/// A RUN's command text: its shell form, exec form or heredoc bodies.
pub fn run_text(ins: &Instruction) -> String {
    let mut text = match &ins.args {
        Args::Shell(s) => s.clone(),
        Args::Exec(v) => v.join(" "),
    };
    for h in &ins.heredocs {
        text.push('\n');
        text.push_str(&h.content);
    }
    text
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
    let flat = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for part in flat.split(['\n', ';', '|', '&']) {
        let words: Vec<String> = part
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

/// The OS package installs in a command.
pub fn os_installs(text: &str) -> Vec<Install> {
    let mut out = Vec::new();
    for words in simple_commands(text) {
        // Skip leading VAR=value assignments and sudo.
        let words: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .skip_while(|w| w.contains('=') && !w.starts_with('-') || *w == "sudo")
            .collect();
        let Some((&program, rest)) = words.split_first() else { continue };
        let program = program.rsplit('/').next().unwrap_or(program);
        for (name, verbs, manager) in OS_MANAGERS {
            if program != *name {
                continue;
            }
            let Some(pos) = rest.iter().position(|w| verbs.contains(w)) else { continue };
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
pub fn build_tool_uses(ins: &Instruction) -> Vec<String> {
    let text = run_text(ins);
    let mut found = Vec::new();
    let cache_mounts: Vec<&str> = ins
        .flags
        .iter()
        .filter(|f| f.name == "mount")
        .filter_map(|f| f.value.as_deref())
        .filter(|v| v.contains("type=cache"))
        .collect();
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
        let words: Vec<&str> =
            words.iter().map(String::as_str).skip_while(|w| w.contains('=') && !w.starts_with('-')).collect();
        let Some(&first) = words.first() else { continue };
        let program = first.rsplit('/').next().unwrap_or(first);
        let pip = matches!(program, "pip" | "pip3")
            || (program.starts_with("python") && words.windows(2).any(|w| w == ["-m", "pip"]));
        if pip && words.contains(&"install") {
            found.push("runs pip install".into());
        }
        if program == "uv" {
            found.push("runs uv".into());
        }
    }
    // An installer piped into a shell: `curl … | sh`.
    let piped = text.split('|').skip(1).any(|after| {
        let next = after.split_whitespace().next().unwrap_or("");
        matches!(next.rsplit('/').next().unwrap_or(""), "sh" | "bash" | "ash" | "zsh" | "dash")
    });
    if piped && (text.contains("curl") || text.contains("wget")) {
        found.push("pipes a download into a shell".into());
    }
    found
}

/// RLP002: in the final stage and the stages it is built on, no RUN that
/// installs or uses build tools or leaves a package cache, and no COPY of uv or pip.
fn build_tools(df: &Dockerfile, stages: &[Stage], chain: &[usize], subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let final_stage = &stages[chain[0]];
    for &index in chain {
        let stage = &stages[index];
        for ins in &df.instructions[stage.instructions.clone()] {
            let mut uses = Vec::new();
            if ins.keyword == "RUN" {
                uses = build_tool_uses(ins);
            } else if ins.keyword == "COPY" || ins.keyword == "ADD" {
                let sources = copy_sources(ins);
                if sources
                    .iter()
                    .any(|s| matches!(s.trim_end_matches('/').rsplit('/').next(), Some("uv" | "uvx" | "pip" | "pip3")))
                {
                    uses.push("copies uv or pip in".into());
                }
            }
            if uses.is_empty() {
                continue;
            }
            let stage_name = stage.name.clone().unwrap_or_else(|| format!("number {}", stage.index + 1));
            if index == chain[0] {
                out.push(finding(
                    &subject.path,
                    ins.line,
                    "RLP002",
                    format!("the final stage `{stage_name}` {}", uses.join("; ")),
                ));
            } else {
                let final_name =
                    final_stage.name.clone().unwrap_or_else(|| format!("number {}", final_stage.index + 1));
                out.push(finding(
                    &subject.path,
                    final_stage.line,
                    "RLP002",
                    format!(
                        "the final stage `{final_name}` is built on stage `{stage_name}`, whose {} at line {} {}",
                        ins.keyword,
                        ins.line,
                        uses.join("; ")
                    ),
                ));
            }
        }
    }
}

/// The sources of a COPY/ADD (everything but the destination).
pub fn copy_sources(ins: &Instruction) -> Vec<String> {
    let words: Vec<String> = match &ins.args {
        Args::Exec(v) => v.clone(),
        // Quotes removed; variables kept as written (what they hold is not known here).
        Args::Shell(s) => dockerfile::expand_words(s, &|k| Some(format!("${{{k}}}")), '\\')
            .unwrap_or_else(|_| s.split_whitespace().map(str::to_string).collect()),
    };
    let heredoc_names: Vec<String> = ins.heredocs.iter().map(|h| format!("<<{}", h.name)).collect();
    let mut sources: Vec<String> =
        words.iter().filter(|w| !w.starts_with("<<") && !heredoc_names.contains(w)).cloned().collect();
    sources.pop(); // the destination
    sources
}

/// A COPY/ADD from the build context (not another stage, image or named context, not a heredoc).
fn from_context(ins: &Instruction) -> bool {
    (ins.keyword == "COPY" || ins.keyword == "ADD")
        && !ins.flags.iter().any(|f| f.name == "from")
        && ins.heredocs.is_empty()
}

/// RLP003: within a stage, OS package installs before the first COPY of application files.
fn package_order(df: &Dockerfile, stage: &Stage, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let mut first_copy: Option<&Instruction> = None;
    for ins in &df.instructions[stage.instructions.clone()] {
        if from_context(ins) && first_copy.is_none() && !copy_sources(ins).iter().all(|s| is_url(s)) {
            first_copy = Some(ins);
        }
        if ins.keyword == "RUN" {
            if let (Some(copy), Some(install)) = (first_copy, os_installs(&run_text(ins)).first()) {
                out.push(finding(
                    &subject.path,
                    ins.line,
                    "RLP003",
                    format!(
                        "an OS package install ({}) comes after the COPY of application files at line {}",
                        install.manager, copy.line
                    ),
                ));
            }
        }
    }
}

/// RLP004: the USER the final stage ends with (inherited from the stages it
/// is built on) is numeric >= 1000, or a name the file creates with such a UID.
fn user(df: &Dockerfile, stages: &[Stage], chain: &[usize], subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let final_stage = &stages[chain[0]];
    let last_user = chain.iter().find_map(|&i| {
        df.instructions[stages[i].instructions.clone()]
            .iter()
            .rev()
            .find(|ins| ins.keyword == "USER")
            .map(|ins| (i, ins))
    });
    let Some((stage_index, ins)) = last_user else {
        out.push(finding(
            &subject.path,
            final_stage.line,
            "RLP004",
            "the final stage sets no USER, so it runs as root".into(),
        ));
        return;
    };
    let raw = match &ins.args {
        Args::Shell(s) => s.trim().to_string(),
        Args::Exec(v) => v.join(" "),
    };
    let vars = stage_vars(df, &stages[stage_index], ins.line, subject);
    let value = dockerfile::expand(&raw, &|k| vars.get(k).cloned(), df.directives.escape).unwrap_or(raw.clone());
    let name = value.split(':').next().unwrap_or("").trim().to_string();
    let verdict = match name.parse::<u64>() {
        Ok(uid) if uid >= 1000 => None,
        Ok(uid) => Some(format!("USER {value} runs as UID {uid}, below 1000")),
        Err(_) if name.is_empty() || name == "root" => Some(format!("USER {value} is root")),
        Err(_) => match created_uid(df, &name) {
            Some(uid) if uid >= 1000 => None,
            Some(uid) => Some(format!("USER {value} is created with UID {uid}, below 1000")),
            None => Some(format!("USER {value} is a name this Dockerfile doesn't create with a UID >= 1000")),
        },
    };
    if let Some(message) = verdict {
        out.push(finding(&subject.path, ins.line, "RLP004", message));
    }
}

/// The UID a RUN of this file gives user `name` (`useradd -u N name`, `adduser -u N … name`).
fn created_uid(df: &Dockerfile, name: &str) -> Option<u64> {
    for ins in df.instructions.iter().filter(|i| i.keyword == "RUN") {
        for words in simple_commands(&run_text(ins)) {
            let program = words[0].rsplit('/').next().unwrap_or(&words[0]);
            if !matches!(program, "useradd" | "adduser") || words.last().map(String::as_str) != Some(name) {
                continue;
            }
            let uid =
                words.windows(2).find_map(|w| (w[0] == "-u" || w[0] == "--uid").then(|| w[1].parse().ok()).flatten());
            let uid = uid.or_else(|| words.iter().find_map(|w| w.strip_prefix("--uid=").and_then(|v| v.parse().ok())));
            if uid.is_some() {
                return uid;
            }
        }
    }
    None
}

/// The ARG and ENV values known in `stage` before `line` (defaults and build args).
fn stage_vars(df: &Dockerfile, stage: &Stage, line: usize, subject: &Subject<'_>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for ins in df.instructions[stage.instructions.clone()].iter().filter(|i| i.line < line) {
        if ins.keyword == "ARG" || ins.keyword == "ENV" {
            let text = match &ins.args {
                Args::Shell(s) => s.clone(),
                Args::Exec(v) => v.join(" "),
            };
            for (k, v) in dockerfile::key_values(&ins.keyword, &text) {
                let value = if ins.keyword == "ARG" { subject.build_args.get(&k).cloned().or(v) } else { v };
                if let Some(value) = value {
                    vars.insert(k, value);
                }
            }
        }
    }
    vars
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
fn secrets(ins: &Instruction, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    if ins.keyword != "ENV" && ins.keyword != "ARG" {
        return;
    }
    let text = match &ins.args {
        Args::Shell(s) => s.clone(),
        Args::Exec(v) => v.join(" "),
    };
    for (key, value) in dockerfile::key_values(&ins.keyword, &text) {
        if secret_name(&key) && value.as_deref().is_some_and(|v| !v.is_empty()) {
            out.push(finding(
                &subject.path,
                ins.line,
                "RLP005",
                format!("{} {key} holds a value: it stays in the image's config and history", ins.keyword),
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

/// RLP006: ADD of a URL without `--checksum`.
fn remote_add(ins: &Instruction, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    if ins.keyword != "ADD" || ins.flags.iter().any(|f| f.name == "checksum") {
        return;
    }
    for source in copy_sources(ins).iter().filter(|s| is_url(s)) {
        out.push(finding(&subject.path, ins.line, "RLP006", format!("ADD fetches {source} without verifying it")));
    }
}

/// RLP007: several sources of which one is a directory (in the context:
/// a directory there; elsewhere: written with a trailing `/`).
fn copies(
    df: &Dockerfile,
    stages: &[Stage],
    index: usize,
    ins: &Instruction,
    subject: &Subject<'_>,
    out: &mut Vec<Finding>,
) {
    let _ = (df, stages, index);
    if ins.keyword != "COPY" && ins.keyword != "ADD" {
        return;
    }
    let sources = copy_sources(ins);
    if sources.len() < 2 {
        return;
    }
    let context = subject.context.filter(|_| from_context(ins));
    let dirs: Vec<&String> = sources
        .iter()
        .filter(|s| !is_url(s))
        .filter(|s| s.ends_with('/') || context.is_some_and(|c| c.join(s.trim_start_matches('/')).is_dir()))
        .collect();
    if !dirs.is_empty() {
        out.push(finding(
            &subject.path,
            ins.line,
            "RLP007",
            format!(
                "{} copies {} with other sources into one destination: the contents of {} land there, not the directory",
                ins.keyword,
                dirs.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                if dirs.len() == 1 { "it" } else { "each" }
            ),
        ));
    }
}

/// RLP009: WORKDIR starts with `/` (or a variable, which can't be judged here).
fn workdir(ins: &Instruction, subject: &Subject<'_>, out: &mut Vec<Finding>) {
    if ins.keyword != "WORKDIR" {
        return;
    }
    let dir = match &ins.args {
        Args::Shell(s) => s.trim().to_string(),
        Args::Exec(v) => v.join(" "),
    };
    if !dir.starts_with('/') && !dir.starts_with('$') {
        out.push(finding(
            &subject.path,
            ins.line,
            "RLP009",
            format!("WORKDIR {dir} is relative: it depends on the WORKDIR before it"),
        ));
    }
}

/// RLP008: a HEALTHCHECK (not NONE) in the final stage or a stage it is built on.
fn healthcheck(df: &Dockerfile, stages: &[Stage], chain: &[usize], subject: &Subject<'_>, out: &mut Vec<Finding>) {
    let declared = chain.iter().find_map(|&i| {
        df.instructions[stages[i].instructions.clone()].iter().rev().find(|ins| ins.keyword == "HEALTHCHECK")
    });
    let none = declared.is_some_and(|ins| matches!(&ins.args, Args::Shell(s) if s.trim().eq_ignore_ascii_case("none")));
    if declared.is_none() || none {
        out.push(finding(
            &subject.path,
            stages[chain[0]].line,
            "RLP008",
            "the catalog marks this image a service, and its final stage declares no HEALTHCHECK".into(),
        ));
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
