//! Each kind of container-structure-test check against a real container,
//! with its messages: command tests in their own container (the image's
//! entrypoint cleared, as container-structure-test does), file tests through
//! `docker cp` from a created container, the metadata test from that
//! container's configuration (the platform's image config).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::spec::{self, CommandTest, FileContentTest, FileExistenceTest, MetadataTest, Spec};
use crate::checks::{CheckKind, CheckResult};
use crate::engine::container::{self, Session};
use crate::engine::docker;
use crate::engine::files::{self, EntryKind, PathEntry};
use crate::model::catalog::Platform;

/// The image configuration of one platform, as a created container shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

impl ImageConfig {
    pub fn inspect(container: &str) -> Result<ImageConfig> {
        let json = docker::docker()
            .args(["container", "inspect", "--format", "{{json .Config}}", container])
            .probe()
            .read()?;
        serde_json::from_str(&json).context("docker inspect's Config is not what the checks expect")
    }

    /// `KEY=VALUE` entries split at the first `=`.
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .flatten()
            .map(|kv| kv.split_once('=').map_or((kv.clone(), String::new()), |(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }
}

/// One check to run.
pub enum Job<'a> {
    Command(&'a CommandTest),
    FileExistence(&'a FileExistenceTest),
    FileContent(&'a FileContentTest),
    Metadata(&'a MetadataTest),
}

/// The checks of a spec in container-structure-test's order.
pub fn jobs(spec: &Spec) -> Vec<Job<'_>> {
    let mut jobs: Vec<Job<'_>> = spec.command_tests.iter().map(Job::Command).collect();
    jobs.extend(spec.file_content_tests.iter().map(Job::FileContent));
    jobs.extend(spec.file_existence_tests.iter().map(Job::FileExistence));
    jobs.extend(spec.metadata_test.iter().filter(|m| !m.is_empty()).map(Job::Metadata));
    jobs
}

pub struct Context<'a> {
    pub session: &'a Session,
    pub spec: &'a Spec,
    pub reference: &'a str,
    pub platform: &'a Platform,
    /// A created container of the image, for file and metadata checks.
    pub probe: &'a str,
    pub config: &'a ImageConfig,
    pub timeout: Duration,
}

impl Context<'_> {
    pub fn run(&self, job: &Job<'_>) -> CheckResult {
        let started = Instant::now();
        let (kind, name) = match job {
            Job::Command(t) => (CheckKind::Command, t.name.clone()),
            Job::FileExistence(t) => (CheckKind::FileExistence, t.name.clone()),
            Job::FileContent(t) => (CheckKind::FileContent, t.name.clone()),
            Job::Metadata(_) => (CheckKind::Metadata, "metadata".to_string()),
        };
        let outcome = match job {
            Job::Command(t) => self.command(t),
            Job::FileExistence(t) => self.file_existence(t),
            Job::FileContent(t) => self.file_content(t),
            Job::Metadata(t) => Ok(metadata(t, self.config)),
        };
        let outcome = outcome.unwrap_or_else(|e| Outcome { errors: vec![format!("{e:#}")], ..Outcome::default() });
        CheckResult {
            kind,
            name,
            passed: outcome.errors.is_empty(),
            expected: outcome.expected,
            actual: outcome.actual,
            errors: outcome.errors,
            seconds: started.elapsed().as_secs_f64(),
            stdout: outcome.stdout,
            stderr: outcome.stderr,
        }
    }

    /// The image's environment plus the spec's global variables: what `$X`
    /// expands against, everywhere a spec names something in the image:
    /// setup and test commands, their environment values, and the paths of
    /// file existence and file content tests.
    fn expansion_env(&self) -> BTreeMap<String, String> {
        let mut env = self.config.env_map();
        for v in &self.spec.global_env_vars {
            let value = spec::expand(&v.value, &|k| env.get(k).cloned());
            env.insert(v.key.clone(), value);
        }
        env
    }

    fn command(&self, t: &CommandTest) -> Result<Outcome> {
        let expansion = self.expansion_env();
        let expand = |s: &String| spec::expand(s, &|k| expansion.get(k).cloned());
        let mut env: Vec<(String, String)> =
            self.spec.global_env_vars.iter().map(|v| (v.key.clone(), expansion[&v.key].clone())).collect();
        let options = self.spec.container_run_options.clone().unwrap_or_default();
        for name in &options.env_vars {
            if let Ok(value) = std::env::var(name) {
                if !value.is_empty() {
                    env.push((name.clone(), value));
                }
            }
        }
        env.extend(t.env_vars.iter().map(|v| (v.key.clone(), expand(&v.value))));
        let run = |image: String, argv: &[String]| container::Spec {
            image,
            platform: Some(self.platform.clone()),
            entrypoint: Some(vec![]),
            args: argv.iter().map(expand).collect(),
            env: env.clone(),
            user: options.user.clone(),
            ..Default::default()
        };
        let mut image = self.reference.to_string();
        for (i, setup) in t.setup.iter().enumerate() {
            image = self
                .session
                .run_and_commit(&run(image, setup), &t.name, self.timeout)
                .with_context(|| format!("setup command {} of `{}`", i + 1, t.name))?;
        }
        let argv: Vec<String> = std::iter::once(&t.command).chain(&t.args).cloned().collect();
        let finished = self.session.run(&run(image, &argv), &t.name, self.timeout)?;
        Ok(judge_command(t, &finished, self.timeout))
    }

    /// A spec's path with `$X` expanded.
    fn path(&self, path: &str) -> String {
        let env = self.expansion_env();
        spec::expand(path, &|k| env.get(k).cloned())
    }

    fn file_existence(&self, t: &FileExistenceTest) -> Result<Outcome> {
        let path = self.path(&t.path);
        let entry = files::read_path(self.probe, &path, false)?;
        Ok(judge_file_existence(t, &path, entry.as_ref()))
    }

    fn file_content(&self, t: &FileContentTest) -> Result<Outcome> {
        let path = self.path(&t.path);
        let entry = follow_links(&path, |p| files::read_path(self.probe, p, true))?;
        Ok(judge_file_content(t, &path, entry.as_ref()))
    }
}

/// How many symlinks a file content test follows before giving up.
const MAX_LINKS: usize = 8;

/// Reads `path`, following symlinks (each relative target from the
/// directory of the link it belongs to) to what they point at.
pub fn follow_links(path: &str, mut read: impl FnMut(&str) -> Result<Option<PathEntry>>) -> Result<Option<PathEntry>> {
    let mut current = path.to_string();
    for _ in 0..=MAX_LINKS {
        let entry = read(&current)?;
        match entry.as_ref().filter(|e| e.kind == EntryKind::Symlink).and_then(|e| e.link_target.as_deref()) {
            Some(target) => current = link_destination(&current, target),
            None => return Ok(entry),
        }
    }
    anyhow::bail!("{path}: more than {MAX_LINKS} symlinks to follow (a loop?)")
}

/// Where the symlink at `link` pointing at `target` leads, as a clean
/// absolute path.
pub fn link_destination(link: &str, target: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", link.rsplit_once('/').map_or("", |(dir, _)| dir))
    };
    format!("/{}", crate::checks::normalize_path(&joined).unwrap_or_default())
}

/// What a check found.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub expected: String,
    pub actual: String,
    pub errors: Vec<String>,
    pub stdout: String,
    pub stderr: String,
}

/// A command test's verdict, with container-structure-test's messages.
pub fn judge_command(t: &CommandTest, run: &container::Finished, timeout: Duration) -> Outcome {
    let mut expected = vec![format!("exit {}", t.exit_code)];
    expected.extend(t.expected_output.iter().map(|r| format!("stdout ~ /{r}/")));
    expected.extend(t.excluded_output.iter().map(|r| format!("stdout !~ /{r}/")));
    expected.extend(t.expected_error.iter().map(|r| format!("stderr ~ /{r}/")));
    expected.extend(t.excluded_error.iter().map(|r| format!("stderr !~ /{r}/")));
    let mut out = Outcome {
        expected: expected.join(", "),
        stdout: run.stdout.clone(),
        stderr: run.stderr.clone(),
        ..Outcome::default()
    };
    let Some(code) = run.exit_code else {
        out.actual = format!("still running after {}s", timeout.as_secs());
        out.errors.push(format!(
            "`{}` timed out after {}s: the container was stopped and removed",
            t.name,
            timeout.as_secs()
        ));
        return out;
    };
    out.actual = format!("exit {code}, stdout {}, stderr {}", excerpt(&run.stdout), excerpt(&run.stderr));
    let matches = |re: &str, text: &str| spec::compile(re).map(|r| r.is_match(text.as_bytes())).unwrap_or(false);
    for re in &t.expected_error {
        if !matches(re, &run.stderr) {
            out.errors.push(format!("Expected string '{re}' not found in error {}", excerpt(&run.stderr)));
        }
    }
    for re in &t.excluded_error {
        if matches(re, &run.stderr) {
            out.errors.push(format!("Excluded string '{re}' found in error {}", excerpt(&run.stderr)));
        }
    }
    for re in &t.expected_output {
        if !matches(re, &run.stdout) {
            out.errors.push(format!("Expected string '{re}' not found in output {}", excerpt(&run.stdout)));
        }
    }
    for re in &t.excluded_output {
        if matches(re, &run.stdout) {
            out.errors.push(format!("Excluded string '{re}' found in output {}", excerpt(&run.stdout)));
        }
    }
    if code != t.exit_code {
        out.errors.push(format!(
            "Test '{}' exited with incorrect error code. Expected: {}, Actual: {code}",
            t.name, t.exit_code
        ));
    }
    out
}

pub fn judge_file_existence(t: &FileExistenceTest, path: &str, entry: Option<&PathEntry>) -> Outcome {
    let mut expected = vec![if t.should_exist { "exists" } else { "absent" }.to_string()];
    if t.should_exist {
        expected.extend(t.permissions.iter().map(|p| format!("permissions {p}")));
        if t.uid >= 0 {
            expected.push(format!("uid {}", t.uid));
        }
        if t.gid >= 0 {
            expected.push(format!("gid {}", t.gid));
        }
        expected.extend(t.is_executable_by.iter().map(|w| format!("executable by {w}")));
    }
    let mut out = Outcome { expected: expected.join(", "), ..Outcome::default() };
    let Some(e) = entry else {
        out.actual = "absent".into();
        if t.should_exist {
            out.errors.push(format!("File {} not found in image", path));
        }
        return out;
    };
    let mode = files::mode_string(e.kind, e.mode);
    out.actual = format!("exists, permissions {mode}, uid {}, gid {}", e.uid, e.gid);
    if !t.should_exist {
        out.errors.push(format!("File {} should not exist but does", path));
        return out;
    }
    if let Some(p) = &t.permissions {
        if *p != mode {
            out.errors.push(format!("{} has incorrect permissions. Expected: {p}, Actual: {mode}", path));
        }
    }
    if let Some(who) = &t.is_executable_by {
        let bits = match who.as_str() {
            "owner" => 0o100,
            "group" => 0o010,
            "other" => 0o001,
            _ => 0o111,
        };
        if e.mode & bits == 0 {
            out.errors.push(format!(
                "{} has incorrect executable bit. Expected to be executable by {who}, Actual: {mode}",
                path
            ));
        }
    }
    if t.uid >= 0 && e.uid as i64 != t.uid {
        out.errors.push(format!("{} has incorrect user ownership. Expected: {}, Actual: {}", path, t.uid, e.uid));
    }
    if t.gid >= 0 && e.gid as i64 != t.gid {
        out.errors.push(format!("{} has incorrect group ownership. Expected: {}, Actual: {}", path, t.gid, e.gid));
    }
    out
}

pub fn judge_file_content(t: &FileContentTest, path: &str, entry: Option<&PathEntry>) -> Outcome {
    let mut expected: Vec<String> = t.expected_contents.iter().map(|r| format!("~ /{r}/")).collect();
    expected.extend(t.excluded_contents.iter().map(|r| format!("!~ /{r}/")));
    let mut out = Outcome { expected: expected.join(", "), ..Outcome::default() };
    let content = match entry {
        None => {
            out.actual = "absent".into();
            out.errors.push(format!("Failed to open {}: it does not exist", path));
            return out;
        }
        Some(e) if e.kind == EntryKind::Dir => {
            out.actual = "a directory".into();
            out.errors.push(format!("Cannot read specified path: {} is a directory, not a file", path));
            return out;
        }
        Some(e) => String::from_utf8_lossy(e.content.as_deref().unwrap_or_default()).into_owned(),
    };
    out.actual = excerpt(&content);
    let matches = |re: &str| spec::compile(re).map(|r| r.is_match(content.as_bytes())).unwrap_or(false);
    for re in &t.expected_contents {
        if !matches(re) {
            out.errors.push(format!("Expected string '{re}' not found in file content string {}", excerpt(&content)));
        }
    }
    for re in &t.excluded_contents {
        if matches(re) {
            out.errors.push(format!("Excluded string '{re}' found in file content string {}", excerpt(&content)));
        }
    }
    out
}

/// The metadata test against one platform's image config.
pub fn metadata(t: &MetadataTest, c: &ImageConfig) -> Outcome {
    let mut out = Outcome::default();
    let mut expected = Vec::new();
    let env = c.env_map();
    let labels = c.labels.clone().unwrap_or_default();
    let value_matches = |kv: &spec::KeyValue, actual: &str| {
        if kv.is_regex {
            spec::compile(&kv.value).map(|r| r.is_match(actual.as_bytes())).unwrap_or(false)
        } else {
            kv.value == actual
        }
    };
    for kv in &t.env_vars {
        expected.push(format!("env {}={}", kv.key, kv.value));
        match env.get(&kv.key) {
            None => out.errors.push(format!("variable {} not found in image env", kv.key)),
            Some(v) if !value_matches(kv, v) => {
                out.errors.push(format!("env var {} value {v} does not match expected value: {}", kv.key, kv.value))
            }
            Some(_) => {}
        }
    }
    for k in &t.unbound_env_vars {
        expected.push(format!("no env {}", k.key));
        if env.contains_key(&k.key) {
            out.errors.push(format!("env variable {} should not be present in image metadata", k.key));
        }
    }
    for kv in &t.labels {
        expected.push(format!("label {}={}", kv.key, kv.value));
        match labels.get(&kv.key) {
            None => out.errors.push(format!("label {} not found in image metadata", kv.key)),
            Some(v) if !value_matches(kv, v) => {
                out.errors.push(format!("label {} value {v} does not match expected value: {}", kv.key, kv.value))
            }
            Some(_) => {}
        }
    }
    let ports: Vec<String> = c.exposed_ports.iter().flatten().map(|(p, _)| p.clone()).collect();
    // "8080" matches "8080/tcp" (container-structure-test compares port numbers).
    let has_port = |want: &str| ports.iter().any(|p| p == want || p.split('/').next() == Some(want));
    for p in &t.exposed_ports {
        expected.push(format!("port {p}"));
        if !has_port(p) {
            out.errors.push(format!("Port {p} not found in config"));
        }
    }
    for p in &t.unexposed_ports {
        expected.push(format!("no port {p}"));
        if has_port(p) {
            out.errors.push(format!("Port {p} should not be exposed"));
        }
    }
    let volumes: Vec<&String> = c.volumes.iter().flatten().map(|(v, _)| v).collect();
    for v in &t.volumes {
        expected.push(format!("volume {v}"));
        if !volumes.contains(&v) {
            out.errors.push(format!("Volume {v} not found in config"));
        }
    }
    for v in &t.unmounted_volumes {
        expected.push(format!("no volume {v}"));
        if volumes.contains(&v) {
            out.errors.push(format!("Volume {v} should not be mounted"));
        }
    }
    for (what, want, have) in [("Entrypoint", &t.entrypoint, &c.entrypoint), ("Cmd", &t.cmd, &c.cmd)] {
        if let Some(want) = want {
            expected.push(format!("{} {want:?}", what.to_lowercase()));
            let have = have.clone().unwrap_or_default();
            if have != *want {
                out.errors.push(format!("Image {what} {have:?} does not match expected {what}: {want:?}"));
            }
        }
    }
    if !t.workdir.is_empty() {
        expected.push(format!("workdir {}", t.workdir));
        if c.working_dir != t.workdir {
            out.errors.push(format!("Image workdir {} does not match config workdir: {}", c.working_dir, t.workdir));
        }
    }
    if !t.user.is_empty() {
        expected.push(format!("user {}", t.user));
        if c.user != t.user {
            out.errors.push(format!("Image user {} does not match config user: {}", c.user, t.user));
        }
    }
    out.expected = expected.join(", ");
    out.actual = format!(
        "user {:?}, workdir {:?}, entrypoint {:?}, cmd {:?}, {} env, {} labels, ports {ports:?}, volumes {volumes:?}",
        c.user,
        c.working_dir,
        c.entrypoint.clone().unwrap_or_default(),
        c.cmd.clone().unwrap_or_default(),
        env.len(),
        labels.len()
    );
    out
}

/// A short, quoted, one-line view of some output.
fn excerpt(s: &str) -> String {
    let one_line = s.trim().replace('\n', "\\n");
    let mut short: String = one_line.chars().take(160).collect();
    if short.len() < one_line.len() {
        short.push('…');
    }
    format!("'{short}'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container::Finished;

    fn command(yaml: &str) -> CommandTest {
        serde_norway::from_str(yaml).unwrap()
    }

    fn finished(code: Option<i32>, stdout: &str, stderr: &str) -> Finished {
        Finished { exit_code: code, stdout: stdout.into(), stderr: stderr.into() }
    }

    #[test]
    fn command_verdicts_check_exit_code_and_unanchored_regexes() {
        let t = command(
            "name: v\ncommand: claude\nexpectedOutput: ['\\d+\\.\\d+ \\(Claude Code\\)']\nexcludedError: ['panic']\n",
        );
        let t0 = Duration::from_secs(5);
        assert!(judge_command(&t, &finished(Some(0), "2.1.328 (Claude Code)\n", ""), t0).errors.is_empty());
        let bad = judge_command(&t, &finished(Some(1), "nope", "thread panicked"), t0);
        assert_eq!(bad.errors.len(), 3, "{:?}", bad.errors);
        assert!(bad.errors[0].starts_with("Excluded string 'panic' found in error"));
        assert!(bad.errors[2].contains("Expected: 0, Actual: 1"));
        assert!(bad.actual.starts_with("exit 1, stdout 'nope'"));
        let hung = judge_command(&t, &finished(None, "", ""), t0);
        assert_eq!(hung.errors, vec!["`v` timed out after 5s: the container was stopped and removed"]);
    }

    fn entry(kind: EntryKind, mode: u32, uid: u64) -> PathEntry {
        PathEntry { kind, mode, uid, gid: uid, link_target: None, content: None }
    }

    #[test]
    fn file_existence_checks_mode_owner_and_executable_bits() {
        let t: FileExistenceTest = serde_norway::from_str(
            "name: ws\npath: /workspace\nuid: 1000\npermissions: drwxr-xr-x\nisExecutableBy: other\n",
        )
        .unwrap();
        assert!(judge_file_existence(&t, "/workspace", Some(&entry(EntryKind::Dir, 0o755, 1000))).errors.is_empty());
        let wrong = judge_file_existence(&t, "/workspace", Some(&entry(EntryKind::Dir, 0o750, 0)));
        assert_eq!(
            wrong.errors,
            vec![
                "/workspace has incorrect permissions. Expected: drwxr-xr-x, Actual: drwxr-x---",
                "/workspace has incorrect executable bit. Expected to be executable by other, Actual: drwxr-x---",
                "/workspace has incorrect user ownership. Expected: 1000, Actual: 0",
            ]
        );
        assert_eq!(judge_file_existence(&t, "/workspace", None).errors, vec!["File /workspace not found in image"]);
        let absent: FileExistenceTest =
            serde_norway::from_str("name: no node\npath: /usr/bin/node\nshouldExist: false\n").unwrap();
        assert!(judge_file_existence(&absent, "/usr/bin/node", None).errors.is_empty());
        assert!(!judge_file_existence(&absent, "/usr/bin/node", Some(&entry(EntryKind::File, 0o755, 0)))
            .errors
            .is_empty());
    }

    #[test]
    fn file_content_matches_the_whole_file() {
        let t: FileContentTest = serde_norway::from_str(
            "name: m\npath: /opt/ralph/models.json\nexpectedContents: ['\"default\"']\nexcludedContents: ['sk-ant-']\n",
        )
        .unwrap();
        let mut e = entry(EntryKind::File, 0o644, 0);
        e.content = Some(b"{\n  \"default\": \"sonnet\"\n}\n".to_vec());
        assert!(judge_file_content(&t, "/opt/ralph/models.json", Some(&e)).errors.is_empty());
        e.content = Some(b"key: sk-ant-123".to_vec());
        assert_eq!(judge_file_content(&t, "/opt/ralph/models.json", Some(&e)).errors.len(), 2);
        assert!(judge_file_content(&t, "/opt/ralph/models.json", Some(&entry(EntryKind::Dir, 0o755, 0))).errors[0]
            .contains("is a directory"));
    }

    #[test]
    fn symlinks_resolve_from_the_directory_of_each_link() {
        // /etc/app.conf -> ../opt/app/current.conf -> releases/1.conf: the second
        // hop is relative to /opt/app, not to /etc (before: /etc/releases/1.conf).
        let link = |target: &str| PathEntry { link_target: Some(target.into()), ..entry(EntryKind::Symlink, 0o777, 0) };
        let mut file = entry(EntryKind::File, 0o644, 0);
        file.content = Some(b"the real one".to_vec());
        let mut read = Vec::new();
        let found = follow_links("/etc/app.conf", |p| {
            read.push(p.to_string());
            Ok(match p {
                "/etc/app.conf" => Some(link("../opt/app/current.conf")),
                "/opt/app/current.conf" => Some(link("releases/./1.conf")),
                "/opt/app/releases/1.conf" => Some(file.clone()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(found, Some(file));
        assert_eq!(read, ["/etc/app.conf", "/opt/app/current.conf", "/opt/app/releases/1.conf"]);
        assert_eq!(link_destination("/a/b/c", "/x/../y"), "/y");
        let looped = follow_links("/l", |_| Ok(Some(link("/l")))).unwrap_err().to_string();
        assert_eq!(looped, "/l: more than 8 symlinks to follow (a loop?)");
    }

    #[test]
    fn metadata_compares_each_declared_field() {
        let c = ImageConfig {
            user: "1000:1000".into(),
            working_dir: "/workspace".into(),
            entrypoint: Some(vec!["tini".into(), "--".into(), "/opt/ralph/docker/entrypoint.sh".into()]),
            cmd: Some(vec!["build".into()]),
            env: Some(vec!["PATH=/opt/ralph:/usr/bin".into(), "A=b=c".into()]),
            labels: Some([("org.opencontainers.image.title".to_string(), "ralph-worker".to_string())].into()),
            exposed_ports: Some([("8080/tcp".to_string(), serde_json::json!({}))].into()),
            volumes: None,
        };
        let ok: MetadataTest = serde_norway::from_str(
            "user: '1000:1000'\nworkdir: /workspace\ncmd: [build]\nenvVars: [{key: A, value: b=c}, {key: PATH, value: '^/opt/ralph:', isRegex: true}]\nexposedPorts: ['8080']\nunmountedVolumes: [/data]\nlabels: [{key: org.opencontainers.image.title, value: ralph-worker}]\n",
        )
        .unwrap();
        assert_eq!(metadata(&ok, &c).errors, Vec::<String>::new());
        let bad: MetadataTest =
            serde_norway::from_str("user: root\nentrypoint: []\nunboundEnvVars: [{key: A}]\nvolumes: [/data]\n")
                .unwrap();
        let errors = metadata(&bad, &c).errors;
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors.iter().any(|e| e == "Image user 1000:1000 does not match config user: root"));
        assert!(errors.iter().any(|e| e.starts_with("Image Entrypoint [\"tini\"")));
    }
}
