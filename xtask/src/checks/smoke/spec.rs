//! The checks declared with each image, in the schema of Google's
//! container-structure-test (schemaVersion 2.0.0), so the same file also
//! runs under `container-structure-test test --config FILE`. Field names,
//! defaults and meanings follow its v2 types: regexes are unanchored RE2
//! (see [`crate::checks::re2`] for how RE2's semantics are kept), `exitCode` defaults to 0,
//! `shouldExist` to true, `uid`/`gid` to -1 (unchecked).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub schema_version: String,
    #[serde(default)]
    pub global_env_vars: Vec<EnvVar>,
    #[serde(default)]
    pub command_tests: Vec<CommandTest>,
    #[serde(default)]
    pub file_existence_tests: Vec<FileExistenceTest>,
    #[serde(default)]
    pub file_content_tests: Vec<FileContentTest>,
    pub metadata_test: Option<MetadataTest>,
    pub container_run_options: Option<RunOptions>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandTest {
    pub name: String,
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// Accepted for compatibility: the docker driver of
    /// container-structure-test does nothing with it either.
    #[serde(default)]
    pub teardown: Vec<Vec<String>>,
    #[serde(default)]
    pub env_vars: Vec<EnvVar>,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub expected_output: Vec<String>,
    #[serde(default)]
    pub excluded_output: Vec<String>,
    #[serde(default)]
    pub expected_error: Vec<String>,
    #[serde(default)]
    pub excluded_error: Vec<String>,
    #[serde(default)]
    pub exit_code: i32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileExistenceTest {
    pub name: String,
    pub path: String,
    #[serde(default = "yes")]
    pub should_exist: bool,
    pub permissions: Option<String>,
    #[serde(default = "unchecked")]
    pub uid: i64,
    #[serde(default = "unchecked")]
    pub gid: i64,
    pub is_executable_by: Option<String>,
}

fn yes() -> bool {
    true
}

fn unchecked() -> i64 {
    -1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileContentTest {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub expected_contents: Vec<String>,
    #[serde(default)]
    pub excluded_contents: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataTest {
    #[serde(default)]
    pub env_vars: Vec<KeyValue>,
    #[serde(default)]
    pub unbound_env_vars: Vec<Key>,
    #[serde(default)]
    pub labels: Vec<KeyValue>,
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub unexposed_ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub unmounted_volumes: Vec<String>,
    /// `None` (absent or null): not checked; `[]`: must be empty.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub workdir: String,
    #[serde(default)]
    pub user: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub key: String,
}

/// The part of container-structure-test's `containerRunOptions` that
/// applies to checks run without privileges.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunOptions {
    pub user: Option<String>,
    /// Names of host variables passed into command tests.
    #[serde(default)]
    pub env_vars: Vec<String>,
}

impl MetadataTest {
    pub fn is_empty(&self) -> bool {
        self.env_vars.is_empty()
            && self.unbound_env_vars.is_empty()
            && self.labels.is_empty()
            && self.exposed_ports.is_empty()
            && self.unexposed_ports.is_empty()
            && self.volumes.is_empty()
            && self.unmounted_volumes.is_empty()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.workdir.is_empty()
            && self.user.is_empty()
    }
}

impl Spec {
    /// Reads and validates a spec file. Every error names the file, and
    /// parse errors the line and the field.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the smoke spec {}: fix `smoke` in images.toml", path.display()))?;
        Spec::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Spec> {
        let spec: Spec = serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{}", describe_yaml_error(&e)))?;
        spec.validate()?;
        Ok(spec)
    }

    /// container-structure-test's own validation rules, plus compiling
    /// every regex up front so a bad one fails before any container runs.
    fn validate(&self) -> Result<()> {
        if self.schema_version != "2.0.0" {
            bail!("schemaVersion `{}` is not supported: write schemaVersion: \"2.0.0\"", self.schema_version);
        }
        let env_ok = |vars: &[EnvVar]| vars.iter().all(|v| !v.key.is_empty() && !v.value.is_empty());
        if !env_ok(&self.global_env_vars) {
            bail!("globalEnvVars: every variable needs a non-empty key and value");
        }
        for (i, t) in self.command_tests.iter().enumerate() {
            let at = format!("commandTests[{i}]");
            if t.name.trim().is_empty() {
                bail!("{at}: give the test a name");
            }
            if t.command.is_empty() {
                bail!("{at} `{}`: give the test a command", t.name);
            }
            if t.setup.iter().any(|c| c.is_empty()) || t.teardown.iter().any(|c| c.is_empty()) {
                bail!("{at} `{}`: remove the empty setup/teardown commands", t.name);
            }
            if !env_ok(&t.env_vars) {
                bail!("{at} `{}`: envVars need non-empty keys and values", t.name);
            }
            for re in
                t.expected_output.iter().chain(&t.excluded_output).chain(&t.expected_error).chain(&t.excluded_error)
            {
                compile(re).with_context(|| format!("{at} `{}`", t.name))?;
            }
        }
        for (i, t) in self.file_existence_tests.iter().enumerate() {
            let at = format!("fileExistenceTests[{i}]");
            if t.name.trim().is_empty() || t.path.is_empty() {
                bail!("{at}: give the test a name and a path");
            }
            if let Some(who) = &t.is_executable_by {
                if !["owner", "group", "other", "any"].contains(&who.as_str()) {
                    bail!("{at} `{}`: isExecutableBy `{who}` is not one of owner, group, other, any", t.name);
                }
            }
        }
        for (i, t) in self.file_content_tests.iter().enumerate() {
            let at = format!("fileContentTests[{i}]");
            if t.name.trim().is_empty() || t.path.is_empty() {
                bail!("{at}: give the test a name and a path");
            }
            for re in t.expected_contents.iter().chain(&t.excluded_contents) {
                compile(re).with_context(|| format!("{at} `{}`", t.name))?;
            }
        }
        if let Some(m) = &self.metadata_test {
            if m.env_vars.iter().chain(&m.labels).any(|kv| kv.key.is_empty())
                || m.unbound_env_vars.iter().any(|k| k.key.is_empty())
            {
                bail!("metadataTest: envVars and labels keys cannot be empty");
            }
            for kv in m.env_vars.iter().chain(&m.labels).filter(|kv| kv.is_regex) {
                compile(&kv.value).with_context(|| format!("metadataTest `{}`", kv.key))?;
            }
        }
        Ok(())
    }
}

pub use crate::checks::re2::compile;

/// serde_norway's error on one line: "line L column C: what", with the path
/// of the field when it knows one (`commandTests[2]: unknown field …`).
fn describe_yaml_error(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    // serde_norway ends its message with " at line L column C".
    let what = text.split(" at line ").next().unwrap_or(&text).to_string();
    match e.location() {
        Some(loc) => format!("line {}: {what} (column {})", loc.line(), loc.column()),
        None => what,
    }
}

/// `$NAME` and `${NAME}` replaced from `env`, as Go's `os.Expand` does for
/// container-structure-test: unknown names become empty, `$` followed by one
/// of `*#$@!?-` or a digit is a (special) name too, a `$` before anything
/// else is kept.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        if next == '{' {
            match chars[i + 2..].iter().position(|&c| c == '}') {
                Some(len) => {
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    if !name.is_empty() {
                        out.push_str(&env(&name).unwrap_or_default());
                    }
                    i += len + 3;
                }
                // Bad syntax: an unclosed `${` is dropped, the rest kept.
                None => i += 2,
            }
        } else if "*#$@!?-".contains(next) || next.is_ascii_digit() {
            out.push_str(&env(&next.to_string()).unwrap_or_default());
            i += 2;
        } else if next == '_' || next.is_ascii_alphabetic() {
            let len = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(&env(&name).unwrap_or_default());
            i += 1 + len;
        } else {
            out.push('$');
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
schemaVersion: "2.0.0"
commandTests:
  - name: claude runs
    command: claude
    args: ["--version"]
    expectedOutput: ['\d+\.\d+\.\d+ \(Claude Code\)']
fileExistenceTests:
  - name: workspace
    path: /workspace
    uid: 1000
    permissions: drwxr-xr-x
metadataTest:
  user: "1000:1000"
  cmd: ["build"]
  envVars:
    - key: RALPH_HOME
      value: /opt/ralph
"#;

    #[test]
    fn parses_with_structure_test_defaults() {
        let spec = Spec::parse(SAMPLE).unwrap();
        assert_eq!(spec.command_tests[0].exit_code, 0);
        let f = &spec.file_existence_tests[0];
        assert!(f.should_exist);
        assert_eq!((f.uid, f.gid), (1000, -1));
        let m = spec.metadata_test.unwrap();
        assert_eq!(m.cmd, Some(vec!["build".to_string()]));
        assert_eq!(m.entrypoint, None);
        assert!(!m.is_empty());
    }

    #[test]
    fn unknown_fields_and_type_errors_name_the_line_and_the_field() {
        let typo = SAMPLE.replace("    args: [\"--version\"]", "    argz: [\"--version\"]");
        let err = Spec::parse(&typo).unwrap_err().to_string();
        assert!(err.starts_with("line 6: commandTests[0]: unknown field `argz`"), "{err}");
        let wrong_type = SAMPLE.replace("uid: 1000", "uid: root");
        let err = Spec::parse(&wrong_type).unwrap_err().to_string();
        assert!(err.starts_with("line 11: fileExistenceTests[0].uid: invalid type"), "{err}");
        let err = Spec::parse("schemaVersion: \"1.0.0\"\n").unwrap_err().to_string();
        assert!(err.contains("schemaVersion `1.0.0` is not supported"), "{err}");
    }

    #[test]
    fn bad_regexes_and_missing_names_fail_before_anything_runs() {
        let bad = SAMPLE.replace(r"'\d+\.\d+\.\d+ \(Claude Code\)'", "'(unclosed'");
        let err = format!("{:#}", Spec::parse(&bad).unwrap_err());
        assert!(err.contains("commandTests[0] `claude runs`: `(unclosed` is not a valid regex"), "{err}");
        let nameless = SAMPLE.replace("  - name: claude runs", "  - name: \"\"");
        assert!(Spec::parse(&nameless).unwrap_err().to_string().contains("commandTests[0]: give the test a name"));
        let exec = SAMPLE.replace("permissions: drwxr-xr-x", "isExecutableBy: everyone");
        assert!(Spec::parse(&exec).unwrap_err().to_string().contains("isExecutableBy `everyone`"));
    }

    #[test]
    fn expansion_follows_go_os_expand() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/ralph".to_string()),
            "A_1" => Some("x".to_string()),
            _ => None,
        };
        assert_eq!(expand("$HOME/.claude", &env), "/home/ralph/.claude");
        assert_eq!(expand("${HOME}x ${A_1}$A_1", &env), "/home/ralphx xx");
        assert_eq!(expand("$NOPE|$$|$1|$", &env), "|||$");
        assert_eq!(expand("100$ and $%", &env), "100$ and $%");
        assert_eq!(expand("a${HOME", &env), "aHOME");
        assert_eq!(expand("${}b", &env), "b");
    }
}
